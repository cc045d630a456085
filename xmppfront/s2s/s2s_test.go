package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// pair starts a.test and b.test routed to each other.
func pair(t *testing.T, certA, certB tls.Certificate, roots *x509.CertPool, modA, modB func(*Config)) (a, b *node) {
	t.Helper()
	a = startNode(t, "a.test", certA, roots, modA)
	b = startNode(t, "b.test", certB, roots, modB)
	a.routeTo("b.test", b)
	b.routeTo("a.test", a)
	return a, b
}

func bodies(els []*stream.Element) []string {
	var out []string
	for _, e := range els {
		if b := e.Child("body", ""); b != nil {
			out = append(out, b.Text())
		}
	}
	return out
}

// Both directions with certificates from a CA both trust: SASL EXTERNAL,
// stanzas in order, one stream per direction, jabber:client on arrival.
func TestFederationWithExternal(t *testing.T) {
	ca := newCA(t)
	a, b := pair(t, ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.issue(t, certOpts{dns: []string{"b.test"}}), ca.pool, nil, nil)
	ctx := context.Background()
	const n = 50
	for i := range n {
		if err := a.SendRemote(ctx, msg("alice@a.test/x", "bob@b.test", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SendRemote(ctx, msg("bob@b.test/y", "alice@a.test", "back")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to receive everything", func() bool { return len(b.r.fromPeer()) == n })
	waitFor(t, "a to receive the answer", func() bool { return len(a.r.fromPeer()) == 1 })
	got := bodies(b.r.fromPeer())
	for i, s := range got {
		if s != fmt.Sprint(i) {
			t.Fatalf("message %d arrived as %q: order lost: %v", i, s, got)
		}
	}
	st := b.r.fromPeer()[0]
	if st.Name.Space != stream.NSClient || st.Child("body", stream.NSClient) == nil || st.Attr("from") != "alice@a.test/x" {
		t.Fatalf("stanza handed to the router: %s", st)
	}
	b.mu.Lock()
	inbound := len(b.in)
	b.mu.Unlock()
	if inbound != 1 {
		t.Fatalf("b has %d inbound streams, want the one stream reused", inbound)
	}
	if bs := a.r.bounces(); len(bs) != 0 {
		t.Fatalf("bounces: %v", bs)
	}
}

// b's certificate is self-signed: a cannot verify it. With dialback
// allowed on a, b authenticates to a by dialback (a calls b back); with
// dialback not allowed, b's stanzas bounce and a's cannot reach b.
func TestDialback(t *testing.T) {
	ca := newCA(t)
	certA := ca.issue(t, certOpts{dns: []string{"a.test"}})
	selfB := (*testCA)(nil).issue(t, certOpts{dns: []string{"b.test"}})
	allow := func(c *Config) { c.AllowDialback = true }
	t.Run("allowed", func(t *testing.T) {
		a, b := pair(t, certA, selfB, ca.pool, allow, allow)
		if err := b.SendRemote(context.Background(), msg("bob@b.test/y", "alice@a.test", "via dialback")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a to receive b's message", func() bool { return len(a.r.fromPeer()) == 1 })
		if err := a.SendRemote(context.Background(), msg("alice@a.test/x", "bob@b.test", "to an unverified peer")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "b to receive a's message", func() bool { return len(b.r.fromPeer()) == 1 })
	})
	t.Run("refused", func(t *testing.T) {
		a, b := pair(t, certA, selfB, ca.pool, nil, allow)
		if err := b.SendRemote(context.Background(), msg("bob@b.test/y", "alice@a.test", "refused")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "b's message to bounce", func() bool { return len(b.r.bounces()) == 1 })
		checkBounce(t, b.r.bounces()[0], stanza.RemoteServerNotFound)
		if err := a.SendRemote(context.Background(), msg("alice@a.test/x", "bob@b.test", "unverified peer")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a's message to bounce", func() bool { return len(a.r.bounces()) == 1 })
		checkBounce(t, a.r.bounces()[0], stanza.RemoteServerNotFound)
		if n := len(a.r.fromPeer()); n != 0 {
			t.Fatalf("a routed %d stanzas from an unauthenticated peer", n)
		}
	})
}

func checkBounce(t *testing.T, st *stream.Element, want stanza.Condition) {
	t.Helper()
	e := st.Child("error", "")
	if st.Attr("type") != "error" || e == nil || e.Child(string(want), stanza.NSStanzas) == nil {
		t.Fatalf("bounce %s, want %s", st, want)
	}
	if st.Attr("to") != "bob@b.test/y" && st.Attr("to") != "alice@a.test/x" {
		t.Fatalf("bounce goes to %q", st.Attr("to"))
	}
}

func TestUnreachablePeerBounces(t *testing.T) {
	ca := newCA(t)
	a := startNode(t, "a.test", ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.pool, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.cfg.Routes["gone.test"] = l.Addr().String()
	l.Close()
	for i := range 3 {
		if err := a.SendRemote(context.Background(), msg("alice@a.test/x", "x@gone.test", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three bounces", func() bool { return len(a.r.bounces()) == 3 })
	for _, st := range a.r.bounces() {
		checkBounce(t, st, stanza.RemoteServerNotFound)
	}
}

// A peer that answers TCP but never speaks XMPP times the stanza out.
func TestSilentPeerTimesOut(t *testing.T) {
	ca := newCA(t)
	a := startNode(t, "a.test", ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.pool, func(c *Config) { c.ConnectTimeout = 200 * time.Millisecond })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(2 * time.Second)
		}
	}()
	a.cfg.Routes["silent.test"] = l.Addr().String()
	if err := a.SendRemote(context.Background(), msg("alice@a.test/x", "x@silent.test", "hello?")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a bounce", func() bool { return len(a.r.bounces()) == 1 })
	checkBounce(t, a.r.bounces()[0], stanza.RemoteServerTimeout)
}

// A peer without TLS is refused both ways.
func TestPlaintextRefused(t *testing.T) {
	ca := newCA(t)
	a := startNode(t, "a.test", ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.pool, nil)
	hdr := stream.Header{From: "evil.test", To: "a.test", Namespace: stream.NSServer, Decls: map[string]string{"db": NSDialback}}
	for _, first := range []*stream.Element{
		msg("eve@evil.test", "alice@a.test", "in clear"),
		stream.NewElement(NSDialback, "result", "from", "evil.test", "to", "a.test").AddText("key"),
		stream.NewElement(NSSASL, "auth", "mechanism", "EXTERNAL"),
	} {
		t.Run("inbound "+first.Name.Local, func(t *testing.T) {
			p := dialRaw(t, a.Addr(false))
			if err := p.w.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			if _, err := p.r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			if err := p.w.WriteElement(first); err != nil {
				t.Fatal(err)
			}
			if c := p.streamError(t); c != stream.PolicyViolation {
				t.Fatalf("stream error %s, want policy-violation", c)
			}
		})
	}
	if n := len(a.r.fromPeer()); n != 0 {
		t.Fatalf("%d plaintext stanzas routed", n)
	}
	t.Run("outbound", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			r, w := stream.NewReader(c, stream.Limits{}), stream.NewWriter(c)
			if _, err := r.ReadHeader(); err != nil {
				return
			}
			_ = w.WriteHeader(stream.Header{From: "clear.test", ID: "x", Namespace: stream.NSServer})
			_ = w.WriteElement(stream.NewElement(stream.NSStream, "features").
				AddChild(stream.NewElement(NSDialbackFeature, "dialback")))
			for {
				el, err := r.Next()
				if err != nil {
					return
				}
				if el.Name.Space == stream.NSServer {
					t.Errorf("a sent a stanza in plaintext: %s", el)
				}
			}
		}()
		a.cfg.Routes["clear.test"] = l.Addr().String()
		if err := a.SendRemote(context.Background(), msg("alice@a.test/x", "x@clear.test", "secret")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a bounce", func() bool { return len(a.r.bounces()) == 1 })
		checkBounce(t, a.r.bounces()[0], stanza.RemoteServerNotFound)
	})
}

// hostile is a peer server driven by hand: a Server that does not
// listen, used for its client side.
// dialExternal connects h to a.test as a peer that authenticates with
// SASL EXTERNAL, closed when the test ends.
func dialExternal(ctx context.Context, t *testing.T, h *Server) *peerConn {
	t.Helper()
	pc, err := h.dial(ctx, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.close)
	if ok, err := pc.external(); err != nil || !ok {
		t.Fatalf("EXTERNAL: %v %v", ok, err)
	}
	return pc
}

func hostile(t *testing.T, domain string, cert tls.Certificate, roots *x509.CertPool, target *node) *Server {
	t.Helper()
	s, err := New(Config{
		Domain: domain, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, RootCAs: roots,
		Router: newFakeRouter(), Routes: map[string]string{"a.test": target.Addr(false).String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestExternalWithCertificateForAnotherDomain(t *testing.T) {
	ca := newCA(t)
	a := startNode(t, "a.test", ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.pool, nil)
	// Claims b.test, holds a valid certificate for evil.test.
	h := hostile(t, "b.test", ca.issue(t, certOpts{dns: []string{"evil.test"}}), ca.pool, a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pc, err := h.dial(ctx, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.close()
	if pc.features.Child("dialback", NSDialbackFeature) != nil {
		t.Fatal("dialback offered to an unverified peer while it is not allowed")
	}
	ok, err := pc.external()
	if err != nil || ok {
		t.Fatalf("EXTERNAL with someone else's certificate: ok %v, err %v", ok, err)
	}
	// Dialback is not allowed: the claim is refused too.
	if err := pc.dialback(); err == nil {
		t.Fatal("dialback accepted though not allowed")
	}
	// And a stanza sent anyway cuts the stream.
	if err := pc.w.WriteElement(msg("eve@b.test", "alice@a.test", "let me in")); err != nil {
		t.Fatal(err)
	}
	if c := nextStreamError(t, pc); c != stream.InvalidFrom {
		t.Fatalf("stream error %s, want invalid-from", c)
	}
	if n := len(a.r.fromPeer()); n != 0 {
		t.Fatalf("%d stanzas routed from an unauthenticated peer", n)
	}
}

func nextStreamError(t *testing.T, pc *peerConn) stream.Condition {
	t.Helper()
	for {
		el, err := pc.r.Next()
		if err != nil {
			t.Fatalf("no stream error: %v", err)
		}
		if se, ok := stream.ParseStreamError(el); ok {
			return se.Condition
		}
	}
}

// A peer authenticated as b.test that sends as c.test is cut off; what it
// sent before as b.test was routed; a's other streams go on.
func TestForgedFromCutsTheStream(t *testing.T) {
	ca := newCA(t)
	a := startNode(t, "a.test", ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.pool, nil)
	good := startNode(t, "good.test", ca.issue(t, certOpts{dns: []string{"good.test"}}), ca.pool, nil)
	good.routeTo("a.test", a)
	h := hostile(t, "b.test", ca.issue(t, certOpts{dns: []string{"b.test"}}), ca.pool, a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pc := dialExternal(ctx, t, h)
	if err := pc.w.WriteElement(msg("bob@b.test/r", "alice@a.test", "honest")); err != nil {
		t.Fatal(err)
	}
	if err := pc.w.WriteElement(msg("carol@c.test/r", "alice@a.test", "forged")); err != nil {
		t.Fatal(err)
	}
	if c := nextStreamError(t, pc); c != stream.InvalidFrom {
		t.Fatalf("stream error %s, want invalid-from", c)
	}
	if got := bodies(a.r.fromPeer()); len(got) != 1 || got[0] != "honest" {
		t.Fatalf("routed %v, want only the honest message", got)
	}
	if err := good.SendRemote(ctx, msg("dave@good.test/r", "alice@a.test", "unaffected")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other peer's message", func() bool { return len(a.r.fromPeer()) == 2 })
}

func TestAddressingErrors(t *testing.T) {
	ca := newCA(t)
	a := startNode(t, "a.test", ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.pool, nil)
	tests := []struct {
		name string
		st   *stream.Element
		want stream.Condition
	}{
		{"not our domain", msg("bob@b.test", "x@elsewhere.test", "relay?"), stream.HostUnknown},
		{"no to", stream.NewElement(stream.NSServer, "message", "from", "bob@b.test"), stream.ImproperAddressing},
		{"no from", stream.NewElement(stream.NSServer, "message", "to", "alice@a.test"), stream.ImproperAddressing},
		{"not a stanza", stream.NewElement("urn:x", "thing"), stream.UnsupportedStanzaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hostile(t, "b.test", ca.issue(t, certOpts{dns: []string{"b.test"}}), ca.pool, a)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pc := dialExternal(ctx, t, h)
			if err := pc.w.WriteElement(tt.st); err != nil {
				t.Fatal(err)
			}
			if c := nextStreamError(t, pc); c != tt.want {
				t.Fatalf("stream error %s, want %s", c, tt.want)
			}
		})
	}
}

// An idle outbound stream is closed, and the next stanza opens another.
func TestIdleStreamClosedAndReopened(t *testing.T) {
	ca := newCA(t)
	idle := func(c *Config) { c.IdleTimeout = 100 * time.Millisecond }
	a, b := pair(t, ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.issue(t, certOpts{dns: []string{"b.test"}}), ca.pool, idle, nil)
	ctx := context.Background()
	if err := a.SendRemote(ctx, msg("alice@a.test/x", "bob@b.test", "one")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first message", func() bool { return len(b.r.fromPeer()) == 1 })
	waitFor(t, "the idle stream to close", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(a.out) == 0 && len(b.in) == 0
	})
	if err := a.SendRemote(ctx, msg("alice@a.test/x", "bob@b.test", "two")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second message", func() bool { return len(b.r.fromPeer()) == 2 })
}

func TestDirectTLS(t *testing.T) {
	ca := newCA(t)
	a := startNode(t, "a.test", ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.pool, func(c *Config) { c.ListenTLS = "127.0.0.1:0" })
	b := startNode(t, "b.test", ca.issue(t, certOpts{dns: []string{"b.test"}}), ca.pool, func(c *Config) {
		c.Resolver = fakeResolver{"_xmpps-server._tcp.a.test": {{Target: "127.0.0.1.", Port: uint16(a.Addr(true).(*net.TCPAddr).Port)}}}
	})
	if err := b.SendRemote(context.Background(), msg("bob@b.test/y", "alice@a.test", "direct")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to receive over direct TLS", func() bool { return len(a.r.fromPeer()) == 1 })
}

type fakeResolver map[string][]*net.SRV

func (f fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := "_" + service + "._" + proto + "." + name
	if r, ok := f[key]; ok {
		return key, r, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
}

func TestResolve(t *testing.T) {
	r := fakeResolver{
		"_xmpps-server._tcp.both.test": {{Target: "tls.both.test.", Port: 5270, Priority: 10}},
		"_xmpp-server._tcp.both.test":  {{Target: "low.both.test.", Port: 5269, Priority: 5}, {Target: "same.both.test.", Port: 5269, Priority: 10}},
		"_xmpp-server._tcp.none.test":  {{Target: ".", Port: 0}},
	}
	tests := []struct {
		domain string
		want   []target
	}{
		{"both.test", []target{{"low.both.test:5269", false}, {"tls.both.test:5270", true}, {"same.both.test:5269", false}}},
		{"plain.test", []target{{"plain.test:5269", false}}},
		{"routed.test", []target{{"127.0.0.9:1234", false}}},
		{"none.test", nil},
	}
	for _, tt := range tests {
		got, err := resolve(context.Background(), r, map[string]string{"routed.test": "127.0.0.9:1234"}, tt.domain)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: %v, want %v", tt.domain, got, tt.want)
		}
	}
}

func TestVerifyPeer(t *testing.T) {
	ca := newCA(t)
	now := time.Now()
	tests := []struct {
		name   string
		cert   tls.Certificate
		domain string
		ok     bool
	}{
		{"DNS-ID", ca.issue(t, certOpts{dns: []string{"a.test"}}), "a.test", true},
		{"wildcard", ca.issue(t, certOpts{dns: []string{"*.a.test"}}), "chat.a.test", true},
		{"wildcard is one label", ca.issue(t, certOpts{dns: []string{"*.a.test"}}), "a.test", false},
		{"XmppAddr", ca.issue(t, certOpts{xmppAddr: []string{"x.test"}}), "x.test", true},
		{"other domain", ca.issue(t, certOpts{dns: []string{"evil.test"}}), "a.test", false},
		{"self-signed", (*testCA)(nil).issue(t, certOpts{dns: []string{"a.test"}}), "a.test", false},
	}
	for _, tt := range tests {
		err := verifyPeer([]*x509.Certificate{tt.cert.Leaf}, tt.domain, ca.pool, now)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestDialbackKey(t *testing.T) {
	s := []byte("s3cr3tf0rd14lb4ck")
	k := dialbackKey(s, "b.test", "a.test", "id1")
	if len(k) != 64 || dialbackKey([]byte("another secret"), "b.test", "a.test", "id1") == k {
		t.Fatalf("key %q: not a hex SHA-256 HMAC depending on the secret", k)
	}
	if !checkDialbackKey(s, "B.test", "a.test", "id1", strings.ToUpper(k)) {
		t.Fatal("key not accepted")
	}
	if checkDialbackKey(s, "b.test", "a.test", "id2", k) || checkDialbackKey(s, "c.test", "a.test", "id1", k) {
		t.Fatal("key accepted for another stream or domain")
	}
}

// A peer may not have us connect to any number of servers: past
// maxPendingDialback checks in flight on one stream, the stream ends with
// policy-violation; up to it, the stream goes on.
func TestDialbackChecksBounded(t *testing.T) {
	ca := newCA(t)
	a := startNode(t, "a.test", ca.issue(t, certOpts{dns: []string{"a.test"}}), ca.pool, func(c *Config) { c.AllowDialback = true })
	// The claimed domains' servers accept and never answer, so that the
	// checks stay in flight.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 2*maxPendingDialback)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	for i := range maxPendingDialback + 1 {
		a.cfg.Routes[fmt.Sprintf("d%d.test", i)] = l.Addr().String()
	}
	h := hostile(t, "d0.test", ca.issue(t, certOpts{dns: []string{"evil.test"}}), ca.pool, a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pc, err := h.dial(ctx, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.close()
	for i := range maxPendingDialback {
		if err := pc.writeRaw(dbElement("result", fmt.Sprintf("d%d.test", i), "a.test", "", "", "00")); err != nil {
			t.Fatal(err)
		}
	}
	// Still served: a db:verify is answered.
	if err := pc.writeRaw(dbElement("verify", "d0.test", "a.test", "x", "", "00")); err != nil {
		t.Fatal(err)
	}
	if el, err := pc.r.Next(); err != nil || el.Name.Local != "verify" || el.Attr("type") != "invalid" {
		t.Fatalf("db:verify with %d checks in flight: %v %v", maxPendingDialback, el, err)
	}
	if err := pc.writeRaw(dbElement("result", fmt.Sprintf("d%d.test", maxPendingDialback), "a.test", "", "", "00")); err != nil {
		t.Fatal(err)
	}
	if c := nextStreamError(t, pc); c != stream.PolicyViolation {
		t.Fatalf("stream error %s, want policy-violation", c)
	}
}
