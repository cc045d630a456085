package c2s

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// ALPN is the protocol name of XMPP client streams on direct TLS
// (XEP-0368).
const ALPN = "xmpp-client"

// tlsConfig is the server's configuration for one connection: TLS 1.2 at
// least, ALPN on direct TLS, and a certificate hook that remembers which
// certificate was served, because tls-server-end-point channel binding
// hashes it and crypto/tls does not record it on the server side.
func (c *session) tlsConfig() *tls.Config {
	base := c.srv.cfg.TLS
	cfg := base.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if c.direct {
		cfg.NextProtos = []string{ALPN}
	} else {
		cfg.NextProtos = nil
	}
	cfg.Certificates = nil
	cfg.GetCertificate = func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := pickCertificate(base, hi)
		if err == nil {
			c.leaf = cert
		}
		return cert, err
	}
	return cfg
}

func pickCertificate(base *tls.Config, hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if base.GetCertificate != nil {
		if cert, err := base.GetCertificate(hi); cert != nil || err != nil {
			return cert, err
		}
	}
	if len(base.Certificates) == 0 {
		return nil, errors.New("c2s: no certificate configured")
	}
	for i := range base.Certificates {
		if hi.SupportsCertificate(&base.Certificates[i]) == nil {
			return &base.Certificates[i], nil
		}
	}
	return &base.Certificates[0], nil
}

// leafCert returns the parsed certificate served on this connection.
func (c *session) leafCert() *x509.Certificate {
	if c.leaf == nil {
		return nil
	}
	if c.leaf.Leaf != nil {
		return c.leaf.Leaf
	}
	if len(c.leaf.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.leaf.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}
