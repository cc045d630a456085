package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrCertificate is wrapped by every reason a peer's certificate does not
// authenticate its domain.
var ErrCertificate = errors.New("s2s: certificate does not authenticate the domain")

var (
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	oidSRVName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
)

// verifyPeer checks that certs (leaf first, as presented in TLS) chain to
// roots and name domain as RFC 6125 and XEP-0178 allow: a DNS-ID (with a
// wildcard in the left-most label only), an SRV-ID for _xmpp-server or
// _xmpps-server, or an XmppAddr equal to the domain. Server certificates
// are usually also client certificates (for SASL EXTERNAL), so either
// extended key usage is accepted.
func verifyPeer(certs []*x509.Certificate, domain string, roots *x509.CertPool, now time.Time) error {
	if len(certs) == 0 {
		return fmt.Errorf("%w: no certificate presented", ErrCertificate)
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrCertificate, err)
	}
	if leaf.VerifyHostname(domain) == nil {
		return nil
	}
	xmpp, srv := otherNames(leaf)
	for _, a := range xmpp {
		if strings.EqualFold(a, domain) {
			return nil
		}
	}
	for _, n := range srv {
		if strings.EqualFold(n, "_xmpp-server."+domain) || strings.EqualFold(n, "_xmpps-server."+domain) {
			return nil
		}
	}
	return fmt.Errorf("%w: not valid for %s", ErrCertificate, domain)
}

// otherNames returns the XmppAddr and SRVName subject alternative names,
// which crypto/x509 does not parse. Malformed entries are skipped: they
// can only fail to match.
func otherNames(c *x509.Certificate) (xmpp, srv []string) {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) > 0 {
			return nil, nil
		}
		in := seq.Bytes
		for len(in) > 0 {
			var gn asn1.RawValue
			rest, err := asn1.Unmarshal(in, &gn)
			if err != nil {
				return xmpp, srv
			}
			in = rest
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue // not an otherName
			}
			var oid asn1.ObjectIdentifier
			val, err := asn1.Unmarshal(gn.Bytes, &oid)
			if err != nil {
				continue
			}
			var wrapped asn1.RawValue // [0] EXPLICIT
			if _, err := asn1.Unmarshal(val, &wrapped); err != nil {
				continue
			}
			var s string
			if _, err := asn1.Unmarshal(wrapped.Bytes, &s); err != nil {
				continue
			}
			switch {
			case oid.Equal(oidXmppAddr):
				xmpp = append(xmpp, s)
			case oid.Equal(oidSRVName):
				srv = append(srv, s)
			}
		}
	}
	return xmpp, srv
}

// dialbackKey is XEP-0185's key: HMAC-SHA256 keyed with the hex SHA-256
// of our secret, over "receiving originating streamID", in hex. It needs
// no state, so any node that shares the secret can vouch for a key any
// other issued.
func dialbackKey(secret []byte, receiving, originating, streamID string) string {
	h := sha256.Sum256(secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(h[:])))
	m.Write([]byte(strings.ToLower(receiving) + " " + strings.ToLower(originating) + " " + streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// checkDialbackKey compares a key in constant time.
func checkDialbackKey(secret []byte, receiving, originating, streamID, key string) bool {
	want := dialbackKey(secret, receiving, originating, streamID)
	return hmac.Equal([]byte(want), []byte(strings.ToLower(strings.TrimSpace(key))))
}
