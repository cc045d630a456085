package xmppfront_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	mstream "mellium.im/xmpp/stream"

	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/xmppfront"
	"verlauf.im/verlauf/xmppfront/router"
	vsasl "verlauf.im/verlauf/xmppfront/sasl"
)

// oneUser is a CredentialStore with alice/secret.
type oneUser struct {
	creds map[vsasl.Hash]vsasl.Credentials
}

func (o oneUser) Credentials(_ context.Context, user jid.JID, h vsasl.Hash) (vsasl.Credentials, error) {
	if user.Localpart() != "alice" {
		return vsasl.Credentials{}, vsasl.ErrUnknownUser
	}
	return o.creds[h], nil
}

// TestServeAndShutdown assembles the front end as cmd does, logs in with
// mellium.im/xmpp, pings the server, and shuts down on context cancel.
func TestServeAndShutdown(t *testing.T) {
	cert, roots := selfSigned(t, "example.test")
	u := oneUser{creds: map[vsasl.Hash]vsasl.Credentials{}}
	for _, h := range []vsasl.Hash{vsasl.SHA1, vsasl.SHA256} {
		_, c, err := vsasl.DeriveKeys(h, "secret", []byte("0123456789abcdef"), 4096)
		if err != nil {
			t.Fatal(err)
		}
		u.creds[h] = c
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	b := bus.InProcess(logrus.NewEntry(log))
	defer b.Close()
	var plugged bool
	front, err := xmppfront.New(xmppfront.Config{
		Domain:     "example.test",
		TLS:        &tls.Config{Certificates: []tls.Certificate{cert}},
		Listen:     "127.0.0.1:0",
		SASLSecret: []byte("0123456789abcdef0123456789abcdef"),
	}, xmppfront.Deps{
		Publisher: b, Subscriber: b, Credentials: u,
		UserExists: func(context.Context, jid.JID) bool { return true },
		Features: func(m *router.Mux, r *router.Router) error {
			plugged = m != nil && r != nil
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !plugged {
		t.Fatal("Features was not called with the mux and router")
	}
	if err := front.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- front.Serve(ctx) }()

	conn, err := net.Dial("tcp", front.C2S.Addr(false).String())
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer lcancel()
	s, err := xmpp.NewClientSession(lctx, jid.MustParse("alice@example.test"), conn,
		xmpp.StartTLS(&tls.Config{ServerName: "example.test", RootCAs: roots, MinVersion: tls.VersionTLS12}),
		xmpp.SASL("", "secret", sasl.ScramSha256), xmpp.BindResource())
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	ended := make(chan error, 1)
	go func() { ended <- s.Serve(xmpp.HandlerFunc(nil)) }()
	if err := ping.Send(lctx, s, jid.MustParse("example.test")); err != nil {
		t.Fatalf("ping: %v", err)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	var se mstream.Error
	if err := <-ended; !errors.As(err, &se) || se.Err != "system-shutdown" {
		t.Fatalf("client stream ended with %v, want system-shutdown", err)
	}
}

func selfSigned(t *testing.T, domain string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, DNSNames: []string{domain},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
