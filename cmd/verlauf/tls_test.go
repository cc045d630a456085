package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// BenchmarkTLSHandshake measures what TLS costs a login, server and
// client together in one process, with the server's policy and its
// self-signed P-256 certificate: a full TLS 1.3 handshake (Go's default
// key exchange, X25519 with ML-KEM-768) over an in-memory pipe.
func BenchmarkTLSHandshake(b *testing.B) {
	certPEM, keyPEM, err := selfSigned("localhost", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	srvCfg := serverTLS(cert, "xmpp-client")
	cliCfg := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"xmpp-client"}}
	b.ReportAllocs()
	for b.Loop() {
		c, s := net.Pipe()
		errc := make(chan error, 1)
		go func() {
			srv := tls.Server(s, srvCfg)
			errc <- srv.Handshake()
		}()
		cli := tls.Client(c, cliCfg)
		if err := cli.Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if v := cli.ConnectionState().Version; v != tls.VersionTLS13 {
			b.Fatalf("negotiated %x, want TLS 1.3", v)
		}
		c.Close()
		s.Close()
	}
}
