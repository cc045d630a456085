package s2s

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"verlauf.im/verlauf/xmppfront/stream"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "verlauf test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// certOpts say what names a test certificate carries.
type certOpts struct {
	dns      []string
	xmppAddr []string
}

// issue makes a server+client certificate; a nil ca self-signs it.
func (ca *testCA) issue(t testing.TB, o certOpts) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     o.dns,
	}
	if len(o.xmppAddr) > 0 {
		tmpl.DNSNames = nil
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidSAN, Value: sanWithXmppAddr(t, o.dns, o.xmppAddr)}}
	}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// sanWithXmppAddr encodes a subjectAltName with DNS names and XmppAddr
// otherNames, which crypto/x509 cannot write itself.
func sanWithXmppAddr(t testing.TB, dns, xmpp []string) []byte {
	t.Helper()
	var names []asn1.RawValue
	for _, d := range dns {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(d)})
	}
	for _, a := range xmpp {
		s, err := asn1.MarshalWithParams(a, "utf8")
		if err != nil {
			t.Fatal(err)
		}
		oid, _ := asn1.Marshal(oidXmppAddr)
		val, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: s})
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, val...)})
	}
	b, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeRouter records what a Server hands to the router.
type fakeRouter struct {
	mu     sync.Mutex
	peer   []*stream.Element // FromPeer
	routed []*stream.Element // Route (bounces)
	change chan struct{}
}

func newFakeRouter() *fakeRouter { return &fakeRouter{change: make(chan struct{}, 1)} }

func (f *fakeRouter) FromPeer(_ context.Context, st *stream.Element) error {
	f.mu.Lock()
	f.peer = append(f.peer, st)
	f.mu.Unlock()
	f.poke()
	return nil
}

func (f *fakeRouter) Route(_ context.Context, st *stream.Element) {
	f.mu.Lock()
	f.routed = append(f.routed, st)
	f.mu.Unlock()
	f.poke()
}

func (f *fakeRouter) poke() {
	select {
	case f.change <- struct{}{}:
	default:
	}
}

// waitFor polls cond until it holds or the test's patience runs out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fakeRouter) fromPeer() []*stream.Element {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*stream.Element(nil), f.peer...)
}

func (f *fakeRouter) bounces() []*stream.Element {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*stream.Element(nil), f.routed...)
}

// node is one Server listening on loopback for a test.
type node struct {
	*Server
	r *fakeRouter
}

func startNode(t testing.TB, domain string, cert tls.Certificate, roots *x509.CertPool, mod func(*Config)) *node {
	t.Helper()
	r := newFakeRouter()
	cfg := Config{
		Domain:         domain,
		TLS:            &tls.Config{Certificates: []tls.Certificate{cert}},
		Listen:         "127.0.0.1:0",
		RootCAs:        roots,
		Router:         r,
		Routes:         map[string]string{},
		ConnectTimeout: 5 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &node{Server: s, r: r}
}

// routeTo points n's static route for domain at other's listener.
func (n *node) routeTo(domain string, other *node) {
	n.cfg.Routes[domain] = other.Addr(false).String()
}

func msg(from, to, body string) *stream.Element {
	return stream.NewElement(stream.NSClient, "message", "from", from, "to", to, "type", "chat").
		AddChild(stream.NewElement(stream.NSClient, "body").AddText(body))
}

// rawPeer is a hostile or hand-driven peer: a TCP connection with a
// stream reader and writer.
type rawPeer struct {
	conn net.Conn
	r    *stream.Reader
	w    *stream.Writer
}

func dialRaw(t testing.TB, addr net.Addr) *rawPeer {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawPeer{conn: c, r: stream.NewReader(c, stream.Limits{}), w: stream.NewWriter(c)}
}

// streamError reads until a stream error and returns its condition.
func (p *rawPeer) streamError(t testing.TB) stream.Condition {
	t.Helper()
	for {
		el, err := p.r.Next()
		if err != nil {
			t.Fatalf("no stream error before: %v", err)
		}
		if se, ok := stream.ParseStreamError(el); ok {
			return se.Condition
		}
	}
}
