package sasl

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"testing"
	"time"
)

// selfSigned makes a certificate for localhost signed by its own key.
func selfSigned(t testing.TB, key crypto.Signer) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func ecdsaCert(t testing.TB, c elliptic.Curve) tls.Certificate {
	key, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return selfSigned(t, key)
}

// tlsPair runs a real TLS handshake over net.Pipe and returns both ends'
// connection states.
func tlsPair(t testing.TB, cert tls.Certificate, version uint16) (server, client tls.ConnectionState) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	cli := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: version, MaxVersion: version})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return srv.ConnectionState(), cli.ConnectionState()
}

func TestTLSExporterBinding(t *testing.T) {
	cert := ecdsaCert(t, elliptic.P256())
	srv, cli := tlsPair(t, cert, tls.VersionTLS13)
	a, err := TLSExporterBinding(srv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := TLSExporterBinding(cli)
	if err != nil {
		t.Fatal(err)
	}
	if a.Type != TLSExporter || len(a.Data) != 32 || string(a.Data) != string(b.Data) {
		t.Fatalf("server %x, client %x", a.Data, b.Data)
	}
	// Another connection, other data.
	srv2, _ := tlsPair(t, cert, tls.VersionTLS13)
	if c, _ := TLSExporterBinding(srv2); string(c.Data) == string(a.Data) {
		t.Fatal("tls-exporter data repeats across connections")
	}

	srv12, _ := tlsPair(t, cert, tls.VersionTLS12)
	if _, err := TLSExporterBinding(srv12); err == nil {
		t.Fatal("tls-exporter on TLS 1.2")
	}
	if _, err := TLSExporterBinding(tls.ConnectionState{}); err == nil {
		t.Fatal("tls-exporter before the handshake")
	}
}

func TestTLSServerEndPointBinding(t *testing.T) {
	raw := []byte("certificate DER")
	h256, h384, h512 := sha256.Sum256(raw), sha512.Sum384(raw), sha512.Sum512(raw)
	tests := []struct {
		alg  x509.SignatureAlgorithm
		want []byte // nil: no binding defined
	}{
		// RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256.
		{x509.MD5WithRSA, h256[:]},
		{x509.SHA1WithRSA, h256[:]},
		{x509.ECDSAWithSHA1, h256[:]},
		{x509.SHA256WithRSA, h256[:]},
		{x509.SHA256WithRSAPSS, h256[:]},
		{x509.ECDSAWithSHA256, h256[:]},
		{x509.SHA384WithRSA, h384[:]},
		{x509.ECDSAWithSHA384, h384[:]},
		{x509.SHA512WithRSAPSS, h512[:]},
		{x509.ECDSAWithSHA512, h512[:]},
		{x509.PureEd25519, nil},
		{x509.UnknownSignatureAlgorithm, nil},
	}
	for _, tt := range tests {
		t.Run(tt.alg.String(), func(t *testing.T) {
			cb, err := TLSServerEndPointBinding(&x509.Certificate{Raw: raw, SignatureAlgorithm: tt.alg})
			if tt.want == nil {
				if err == nil {
					t.Fatalf("binding %x for %v", cb.Data, tt.alg)
				}
				return
			}
			if err != nil || cb.Type != TLSServerEndPoint || string(cb.Data) != string(tt.want) {
				t.Fatalf("got %x, %v; want %x", cb.Data, err, tt.want)
			}
		})
	}
	if _, err := TLSServerEndPointBinding(nil); err == nil {
		t.Fatal("binding without certificate")
	}

	// Real certificates: a P-384 key signs with ECDSA-SHA384.
	for _, c := range []struct {
		cert tls.Certificate
		want func([]byte) []byte
	}{
		{ecdsaCert(t, elliptic.P256()), func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{ecdsaCert(t, elliptic.P384()), func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }},
	} {
		_, cli := tlsPair(t, c.cert, tls.VersionTLS13)
		// The client sees the server's certificate as the peer's.
		cb, err := TLSServerEndPointBinding(cli.PeerCertificates[0])
		if err != nil || string(cb.Data) != string(c.want(c.cert.Leaf.Raw)) {
			t.Fatalf("%v: got %x, %v", c.cert.Leaf.SignatureAlgorithm, cb.Data, err)
		}
	}
}

func TestChannelBindings(t *testing.T) {
	cert := ecdsaCert(t, elliptic.P256())
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edCert := selfSigned(t, edKey)
	srv13, _ := tlsPair(t, cert, tls.VersionTLS13)
	srv12, _ := tlsPair(t, cert, tls.VersionTLS12)
	tests := []struct {
		name string
		cs   tls.ConnectionState
		leaf *x509.Certificate
		want []string
	}{
		{"TLS 1.3 with leaf", srv13, cert.Leaf, []string{TLSExporter, TLSServerEndPoint}},
		{"TLS 1.3 without leaf", srv13, nil, []string{TLSExporter}},
		{"TLS 1.3 Ed25519 leaf", srv13, edCert.Leaf, []string{TLSExporter}},
		{"TLS 1.2 with leaf", srv12, cert.Leaf, []string{TLSServerEndPoint}},
		{"TLS 1.2 without leaf", srv12, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ChannelBindings(tt.cs, tt.leaf)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d bindings, want %v", len(got), tt.want)
			}
			for i := range got {
				if got[i].Type != tt.want[i] || len(got[i].Data) == 0 {
					t.Fatalf("binding %d = %s (%d bytes), want %s", i, got[i].Type, len(got[i].Data), tt.want[i])
				}
			}
		})
	}
}

// TestServerEndPointExchange runs SCRAM-SHA-256-PLUS with
// tls-server-end-point, which mellium's client lacks: the client side here
// computes its binding from the certificate it received, the server from
// the one it served.
func TestServerEndPointExchange(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cert := ecdsaCert(t, elliptic.P384())
			srv, cli := tlsPair(t, cert, version)
			clientCB, err := TLSServerEndPointBinding(cli.PeerCertificates[0])
			if err != nil {
				t.Fatal(err)
			}
			u := testUsers(t)
			ctx := context.Background()
			s := newTestServer(t, ScramSHA256Plus, Config{Lookup: u.lookup, MockSecret: testSecret, ChannelBindings: ChannelBindings(srv, cert.Leaf)}, "")
			header, bare := "p=tls-server-end-point,,", "n=user,r=clientnonce"
			sf, _, err := s.Step(ctx, []byte(header+bare))
			if err != nil {
				t.Fatal(err)
			}
			cbind := base64.StdEncoding.EncodeToString(append([]byte(header), clientCB.Data...))
			final, want := scramFinal(t, SHA256, "pencil", bare, string(sf), cbind, "")
			out, done, err := s.Step(ctx, []byte(final))
			if err != nil || !done || string(out) != want {
				t.Fatalf("out=%q done=%v err=%v", out, done, err)
			}
			if r := s.Result(); r.ChannelBinding != TLSServerEndPoint || !bytes.Equal(r.ClientKey, u["user"].clientKey[SHA256]) {
				t.Fatalf("result = %+v", r)
			}

			// A certificate other than the one served does not bind.
			s = newTestServer(t, ScramSHA256Plus, Config{Lookup: u.lookup, MockSecret: testSecret, ChannelBindings: ChannelBindings(srv, ecdsaCert(t, elliptic.P384()).Leaf)}, "")
			if sf, _, err = s.Step(ctx, []byte(header+bare)); err != nil {
				t.Fatal(err)
			}
			final, _ = scramFinal(t, SHA256, "pencil", bare, string(sf), cbind, "")
			_, _, err = s.Step(ctx, []byte(final))
			wantFailure(t, err, NotAuthorized, errChannelBindingsDontMatch)
		})
	}
}
