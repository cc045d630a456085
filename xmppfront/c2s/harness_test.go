package c2s_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/tests/xmppclient"
	"verlauf.im/verlauf/xmppfront/c2s"
	"verlauf.im/verlauf/xmppfront/ping"
	"verlauf.im/verlauf/xmppfront/router"
	vsasl "verlauf.im/verlauf/xmppfront/sasl"
	"verlauf.im/verlauf/xmppfront/stream"
)

const testDomain = "example.test"

// wait bounds every wait in these tests; a healthy run never gets near it.
const wait = 10 * time.Second

type testServer struct {
	srv    *c2s.Server
	router *router.Router
	mux    *router.Mux
	store  *memStore
	roots  *x509.CertPool
	addr   string // STARTTLS
	tlsAdr string // direct TLS

	mu     sync.Mutex
	authed []vsasl.Result
	ended  []string
}

// startServer runs a c2s server with a router on the in-process bus, on
// loopback ports, with users alice, bob and carol (password "secret").
func startServer(t *testing.T, tweak func(*c2s.Config)) *testServer {
	t.Helper()
	cert, roots := selfSigned(t)
	ts := &testServer{store: newMemStore(), roots: roots}
	for _, u := range []string{"alice", "bob", "carol"} {
		ts.addUser(t, u, "secret")
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	if testing.Verbose() {
		log.SetOutput(testWriter{t})
		log.SetLevel(logrus.DebugLevel)
	}
	entry := logrus.NewEntry(log)
	b := bus.InProcess(entry)
	creds := c2s.StoreCredentials{Store: ts.store}
	mux := router.NewMux()
	ping.Register(mux)
	mux.Handle(c2s.NSSession, "session", c2s.LegacySession)
	ts.mux = mux
	ts.router = router.New(router.Config{
		Domain: testDomain, Publisher: b, Subscriber: b, Mux: mux,
		UserExists: creds.Exists, Log: entry,
	})
	cfg := c2s.Config{
		Domain:      testDomain,
		TLS:         &tls.Config{Certificates: []tls.Certificate{cert}},
		Listen:      "127.0.0.1:0",
		ListenTLS:   "127.0.0.1:0",
		Credentials: creds,
		SASLSecret:  []byte("0123456789abcdef0123456789abcdef"),
		Router:      ts.router,
		Log:         entry,
		OnAuthenticated: func(_ context.Context, _ jid.JID, res vsasl.Result) {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			res.ClientKey = bytes.Clone(res.ClientKey)
			ts.authed = append(ts.authed, res)
		},
		OnSessionEnd: func(_ context.Context, user jid.JID) {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			ts.ended = append(ts.ended, user.String())
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := c2s.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ts.addr = srv.Addr(false).String()
	ts.tlsAdr = srv.Addr(true).String()
	ctx, cancel := context.WithCancel(context.Background())
	if err := ts.router.Start(ctx); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-served
		ts.router.Wait()
		_ = b.Close()
	})
	return ts
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (ts *testServer) addUser(t *testing.T, name, password string) {
	t.Helper()
	user := jid.MustParse(name + "@" + testDomain)
	vs, err := domain.NewSCRAMVerifiers(rand.Reader, password, 4096)
	if err != nil {
		t.Fatal(err)
	}
	payloads, err := domain.Account{}.Register(user, vs)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := domain.NewEvents(domain.SystemClock{}, payloads...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.store.Append(context.Background(), domain.AccountStream(user), eventstore.Any(), evs...); err != nil {
		t.Fatal(err)
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: testDomain},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{testDomain},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func (ts *testServer) clientTLS() *tls.Config {
	return &tls.Config{ServerName: testDomain, RootCAs: ts.roots, MinVersion: tls.VersionTLS13}
}

// client is a mellium.im/xmpp session (the shared test client of
// tests/xmppclient) with its incoming stanzas parsed into a channel. It
// answers XEP-0199 pings, as real clients do.
type client struct {
	*xmppclient.Client
	jid jid.JID
	in  chan *stream.Element
}

// dial logs in over STARTTLS with mellium.im/xmpp.
func (ts *testServer) dial(ctx context.Context, user, password, resource string, mech sasl.Mechanism) (*xmpp.Session, error) {
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		return nil, err
	}
	origin := jid.MustParse(user + "@" + testDomain)
	if resource != "" {
		origin = jid.MustParse(user + "@" + testDomain + "/" + resource)
	}
	s, err := xmpp.NewClientSession(ctx, origin, conn,
		xmpp.StartTLS(ts.clientTLS()),
		xmpp.SASL("", password, mech),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func (ts *testServer) login(t *testing.T, user, resource string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := ts.dial(ctx, user, "secret", resource, sasl.ScramSha256)
	if err != nil {
		t.Fatalf("login %s/%s: %v", user, resource, err)
	}
	c := serve(s)
	t.Cleanup(func() { _ = s.Close() })
	return c
}

func serve(s *xmpp.Session) *client {
	c := xmppclient.Serve(s)
	return &client{Client: c, jid: c.JID, in: c.In}
}

func (c *client) send(t *testing.T, raw string) { t.Helper(); c.Send(t, raw) }

func (c *client) expectID(t *testing.T, id string) *stream.Element {
	t.Helper()
	return c.ExpectID(t, id)
}

func (c *client) ended(t *testing.T) error { t.Helper(); return c.Ended(t) }

// pingServer checks that the client's session still works end to end.
func (c *client) pingServer(t *testing.T) {
	t.Helper()
	id := "ping-" + randomString()
	c.send(t, "<iq xmlns='jabber:client' type='get' id='"+id+"' to='"+testDomain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := c.expectID(t, id); el.Attr("type") != "result" {
		t.Fatalf("%s: ping answered %s", c.jid, el)
	}
}

func randomString() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// stanzaError returns the defined condition of a stanza error reply.
func stanzaError(el *stream.Element) string {
	if el.Attr("type") != "error" {
		return ""
	}
	e := el.Child("error", "")
	if e == nil {
		return ""
	}
	for c := range e.Children() {
		if c.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return ""
}

// raw is a byte-level client for inputs no library would send.
type raw struct {
	conn  net.Conn
	r     *stream.Reader
	inHdr bool // the server's header has been read
}

// dialRaw connects to the STARTTLS port without negotiating anything.
func (ts *testServer) dialRaw(t *testing.T) *raw {
	t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(wait))
	return &raw{conn: conn, r: stream.NewReader(conn, stream.Limits{MaxStanzaSize: 1 << 20})}
}

const rawHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>"

func (c *raw) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// open sends a stream header and returns the server's features.
func (c *raw) open(t *testing.T) *stream.Element {
	t.Helper()
	c.write(t, rawHeader)
	return c.expect(t, "features")
}

// next reads the next element, after the server's header.
func (c *raw) next() (*stream.Element, error) {
	if !c.inHdr {
		if _, err := c.r.ReadHeader(); err != nil {
			return nil, err
		}
		c.inHdr = true
	}
	return c.r.Next()
}

func (c *raw) expect(t *testing.T, local string) *stream.Element {
	t.Helper()
	el, err := c.next()
	if err != nil {
		t.Fatalf("raw: waiting for <%s/>: %v", local, err)
	}
	if el.Name.Local != local {
		t.Fatalf("raw: got %s, want <%s/>", el, local)
	}
	return el
}

// streamError reads up to the server's stream error and returns its
// condition ("" if the stream ended without one).
func (c *raw) streamError(t *testing.T) stream.Condition {
	t.Helper()
	for {
		el, err := c.next()
		if err != nil {
			t.Logf("raw: stream ended without an error: %v", err)
			return ""
		}
		if se, ok := stream.ParseStreamError(el); ok {
			return se.Condition
		}
	}
}

// startTLS negotiates STARTTLS on an opened stream and returns the
// features after it.
func (c *raw) startTLS(t *testing.T, cfg *tls.Config) *stream.Element {
	t.Helper()
	c.write(t, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	c.expect(t, "proceed")
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("raw: TLS: %v", err)
	}
	c.conn, c.r, c.inHdr = tc, stream.NewReader(tc, stream.Limits{MaxStanzaSize: 1 << 20}), false
	return c.open(t)
}

// rawLogin logs in with PLAIN and binds resource, byte by byte.
func (ts *testServer) rawLogin(t *testing.T, user, resource string) (*raw, jid.JID) {
	t.Helper()
	c := ts.dialRaw(t)
	c.open(t)
	c.startTLS(t, ts.clientTLS())
	c.write(t, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00secret"))+"</auth>")
	c.expect(t, "success")
	c.r.Restart()
	c.inHdr = false
	c.open(t)
	c.write(t, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>")
	res := c.expect(t, "iq")
	j, err := jid.Parse(res.Child("bind", "urn:ietf:params:xml:ns:xmpp-bind").Child("jid", "").Text())
	if err != nil || res.Attr("type") != "result" {
		t.Fatalf("raw: bind: %s", res)
	}
	return c, j
}
