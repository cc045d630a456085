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
	"encoding/xml"
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
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
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

// client is a mellium.im/xmpp session with its incoming stanzas parsed
// into a channel. It answers XEP-0199 pings, as real clients do.
type client struct {
	s      *xmpp.Session
	jid    jid.JID
	in     chan *stream.Element
	served chan error
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
	c := &client{s: s, jid: s.LocalAddr(), in: make(chan *stream.Element, 64), served: make(chan error, 1)}
	go func() {
		c.served <- s.Serve(xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			var buf bytes.Buffer
			enc := xml.NewEncoder(&buf)
			if err := enc.EncodeToken(stripDecls(*start)); err != nil {
				return err
			}
			// The reader yields the inner tokens and the end tag.
			for {
				tok, err := t.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				if se, ok := tok.(xml.StartElement); ok {
					tok = stripDecls(se)
				}
				if err := enc.EncodeToken(tok); err != nil {
					return err
				}
			}
			if err := enc.Flush(); err != nil {
				return err
			}
			el, err := parseElement(buf.Bytes())
			if err != nil {
				return err
			}
			if el.Name.Local == "iq" && el.Attr("type") == "get" && el.Child("ping", ping.NS) != nil {
				res := fmt.Sprintf("<iq xmlns='jabber:client' type='result' id='%s' to='%s'/>", el.Attr("id"), el.Attr("from"))
				if _, err := xmlstream.Copy(t, xml.NewDecoder(strings.NewReader(res))); err != nil {
					return err
				}
			}
			c.in <- el
			return nil
		}))
	}()
	return c
}

// stripDecls drops namespace declarations, which encoding/xml's Encoder
// writes again from the names and would then duplicate.
func stripDecls(se xml.StartElement) xml.StartElement {
	attrs := se.Attr[:0:0]
	for _, a := range se.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		attrs = append(attrs, a)
	}
	se.Attr = attrs
	return se
}

// parseElement parses one stanza as it arrived on a jabber:client stream.
func parseElement(b []byte) (*stream.Element, error) {
	const hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	r := stream.NewReader(io.MultiReader(strings.NewReader(hdr), bytes.NewReader(b)), stream.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	return r.Next()
}

// send writes raw XML on the client's stream.
func (c *client) send(t *testing.T, raw string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.s.Send(ctx, xml.NewDecoder(strings.NewReader(raw))); err != nil {
		t.Fatalf("%s: send: %v", c.jid, err)
	}
}

// expect returns the next stanza received that matches; others are
// skipped.
func (c *client) expect(t *testing.T, what string, match func(*stream.Element) bool) *stream.Element {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case el := <-c.in:
			if match(el) {
				return el
			}
			t.Logf("%s: skipping %s", c.jid, el)
		case err := <-c.served:
			t.Fatalf("%s: stream ended waiting for %s: %v", c.jid, what, err)
		case <-timer.C:
			t.Fatalf("%s: no %s", c.jid, what)
		}
	}
}

func (c *client) expectID(t *testing.T, id string) *stream.Element {
	t.Helper()
	return c.expect(t, "reply to "+id, func(el *stream.Element) bool { return el.Attr("id") == id })
}

// ended waits for the client's stream to end and returns the error.
func (c *client) ended(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.served:
		return err
	case <-time.After(wait):
		t.Fatalf("%s: stream did not end", c.jid)
		return nil
	}
}

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
