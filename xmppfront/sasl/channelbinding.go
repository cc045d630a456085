package sasl

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	// Registers the hashes crypto.Hash.New needs below.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// The channel-binding types this server can check.
const (
	// TLSExporter is RFC 9266's binding: keying material exported from the
	// TLS 1.3 session. It is unique to the connection.
	TLSExporter = "tls-exporter"
	// TLSServerEndPoint is RFC 5929 §4's binding: a hash of the server's
	// certificate. It only proves that the client talks to the holder of
	// that certificate, but it works through TLS-terminating setups that
	// know the certificate and with clients that lack tls-exporter.
	TLSServerEndPoint = "tls-server-end-point"
)

// exporterLabel and exporterLen are fixed by RFC 9266 §2.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// ChannelBinding is one channel-binding type with the data this end of the
// TLS connection computed for it.
type ChannelBinding struct {
	Type string
	Data []byte
}

// TLSExporterBinding computes tls-exporter data (RFC 9266). It refuses
// anything but TLS 1.3: on TLS 1.2 the exporter is only safe with the
// extended master secret, and verlauf does not rely on that.
func TLSExporterBinding(cs tls.ConnectionState) (ChannelBinding, error) {
	if !cs.HandshakeComplete {
		return ChannelBinding{}, errors.New("sasl: tls-exporter: handshake not complete")
	}
	if cs.Version != tls.VersionTLS13 {
		return ChannelBinding{}, fmt.Errorf("sasl: tls-exporter needs TLS 1.3, connection uses %s", tls.VersionName(cs.Version))
	}
	ekm, err := cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
	if err != nil {
		return ChannelBinding{}, fmt.Errorf("sasl: tls-exporter: %w", err)
	}
	return ChannelBinding{Type: TLSExporter, Data: ekm}, nil
}

// TLSServerEndPointBinding computes tls-server-end-point data (RFC 5929
// §4.1) for the server certificate: its DER hashed with the hash of its own
// signature algorithm, SHA-256 in place of MD5 and SHA-1. Certificates whose
// signature uses no single hash (Ed25519) have no such binding.
//
// The server must pass the leaf certificate it served on this connection;
// crypto/tls does not record it in the server's ConnectionState.
func TLSServerEndPointBinding(leaf *x509.Certificate) (ChannelBinding, error) {
	if leaf == nil {
		return ChannelBinding{}, errors.New("sasl: tls-server-end-point: no certificate")
	}
	var h crypto.Hash
	switch leaf.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		h = crypto.SHA256
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = crypto.SHA512
	default:
		return ChannelBinding{}, fmt.Errorf("sasl: tls-server-end-point undefined for %v certificates", leaf.SignatureAlgorithm)
	}
	d := h.New()
	d.Write(leaf.Raw)
	return ChannelBinding{Type: TLSServerEndPoint, Data: d.Sum(nil)}, nil
}

// ChannelBindings returns every binding this server can check on the
// connection: tls-exporter on TLS 1.3, and tls-server-end-point when
// servedLeaf (the certificate this server presented) is known and has one.
// An empty result means: do not offer the -PLUS mechanisms.
func ChannelBindings(cs tls.ConnectionState, servedLeaf *x509.Certificate) []ChannelBinding {
	var out []ChannelBinding
	if cb, err := TLSExporterBinding(cs); err == nil {
		out = append(out, cb)
	}
	if servedLeaf != nil {
		if cb, err := TLSServerEndPointBinding(servedLeaf); err == nil {
			out = append(out, cb)
		}
	}
	return out
}
