package c2s_test

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/c2s"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stream"
)

// TestBadInput sends what no client library would and checks the stream
// error of RFC 6120, while another session keeps working.
func TestBadInput(t *testing.T) {
	ts := startServer(t, nil)
	witness := ts.login(t, "carol", "w")
	bob := ts.login(t, "bob", "b")
	big := "<message to='bob@example.test'><body>" + strings.Repeat("a", stream.DefaultMaxStanzaSize) + "</body></message>"
	const header = rawHeader
	tests := []struct {
		name  string
		tls   bool // negotiate STARTTLS first
		login bool // log in as alice first
		send  string
		want  stream.Condition
	}{
		{"malformed XML", false, false, header + "<message><body></message>", stream.NotWellFormed},
		{"undefined entity", false, false, header + "<message><body>&bogus;</body></message>", stream.NotWellFormed},
		{"DTD", false, false, "<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol 'lol'>]>" + header[len("<?xml version='1.0'?>"):], stream.RestrictedXML},
		{"comment", false, false, header + "<!-- hello -->", stream.RestrictedXML},
		{"processing instruction", false, false, header + "<?evil?>", stream.RestrictedXML},
		{"oversized stanza", false, false, header + big, stream.PolicyViolation},
		{"unknown stream namespace", false, false, "<stream:stream xmlns='jabber:client' xmlns:stream='urn:example:bogus' to='example.test' version='1.0'>", stream.InvalidNamespace},
		{"server namespace on c2s", false, false, "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>", stream.InvalidNamespace},
		{"unknown host", false, false, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='other.example' version='1.0'>", stream.HostUnknown},
		{"no version", false, false, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.test'>", stream.UnsupportedVersion},
		{"stanza before TLS", false, false, header + "<message to='bob@example.test'><body>x</body></message>", stream.NotAuthorized},
		{"stanza before auth", true, false, "<message to='bob@example.test'><body>x</body></message>", stream.NotAuthorized},
		{"text at stream level", true, false, "hello", stream.BadFormat},
		{"unknown element after bind", false, true, "<r xmlns='urn:xmpp:sm:3'/>", stream.UnsupportedStanzaType},
		{"malformed XML after bind", false, true, "<message><body></msg>", stream.NotWellFormed},
		{"oversized stanza after bind", false, true, big, stream.PolicyViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *raw
			switch {
			case tt.login:
				c, _ = ts.rawLogin(t, "alice", "bad")
			case tt.tls:
				c = ts.dialRaw(t)
				c.open(t)
				c.startTLS(t, ts.clientTLS())
			default:
				c = ts.dialRaw(t)
			}
			c.write(t, tt.send)
			if got := c.streamError(t); got != tt.want {
				t.Fatalf("stream error %q, want %q", got, tt.want)
			}
			witness.pingServer(t)
		})
	}
	// Nothing that happened above reached bob.
	bob.pingServer(t)
	select {
	case el := <-bob.in:
		t.Fatalf("bob got %s from a refused stream", el)
	default:
	}
}

func TestFeatures(t *testing.T) {
	ts := startServer(t, func(c *c2s.Config) { c.Register = func(netip.Addr) router.IQHandler { return registerStub{} } })
	c := ts.dialRaw(t)
	f := c.open(t)
	if got := names(f); got != "starttls" {
		t.Fatalf("features before TLS: %s, want starttls alone", got)
	}
	if f.Child("starttls", c2s.NSTLS).Child("required", c2s.NSTLS) == nil {
		t.Fatalf("STARTTLS not marked required: %s", f)
	}
	f = c.startTLS(t, ts.clientTLS())
	if got := names(f); got != "mechanisms sasl-channel-binding register" {
		t.Fatalf("features after TLS: %s, want mechanisms sasl-channel-binding register", got)
	}
	var cbs []string
	for cb := range f.Child("sasl-channel-binding", c2s.NSSASLChannelBinding).Children() {
		cbs = append(cbs, cb.Attr("type"))
	}
	if got := strings.Join(cbs, " "); got != "tls-exporter tls-server-end-point" {
		t.Fatalf("XEP-0440 channel bindings %q, want tls-exporter tls-server-end-point", got)
	}
	var mechs []string
	for m := range f.Child("mechanisms", c2s.NSSASL).Children() {
		mechs = append(mechs, m.Text())
	}
	if got := strings.Join(mechs, " "); got != "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN" {
		t.Fatalf("mechanisms %s", got)
	}
	// In-band registration before authentication reaches the hook.
	c.write(t, "<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>")
	if el := c.expect(t, "iq"); el.Attr("type") != "result" || el.Attr("id") != "r1" || el.Child("query", c2s.NSRegister).Child("username", c2s.NSRegister) == nil {
		t.Fatalf("register form: %s", el)
	}
	// Bad base64 in SASL.
	c.write(t, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>***</auth>")
	if el := c.expect(t, "failure"); el.Child("incorrect-encoding", c2s.NSSASL) == nil {
		t.Fatalf("bad base64: %s", el)
	}
	c.write(t, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'/>")
	if el := c.expect(t, "failure"); el.Child("invalid-mechanism", c2s.NSSASL) == nil {
		t.Fatalf("unknown mechanism: %s", el)
	}
	c.write(t, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>")
	c.expect(t, "challenge")
	c.write(t, "<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
	if el := c.expect(t, "failure"); el.Child("aborted", c2s.NSSASL) == nil {
		t.Fatalf("abort: %s", el)
	}
}

func names(f *stream.Element) string {
	var n []string
	for c := range f.Children() {
		n = append(n, c.Name.Local)
	}
	return strings.Join(n, " ")
}

func TestIdleTimeoutAndKeepalive(t *testing.T) {
	ts := startServer(t, func(c *c2s.Config) { c.IdleTimeout = 300 * time.Millisecond })
	// Whitespace keeps a stream alive well past the timeout...
	alive := ts.dialRaw(t)
	alive.open(t)
	for range 20 {
		alive.write(t, " ")
		time.Sleep(50 * time.Millisecond)
	}
	alive.write(t, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	alive.expect(t, "proceed")
	// ...and silence ends it.
	silent := ts.dialRaw(t)
	if got := silent.streamError(t); got != stream.ConnectionTimeout {
		t.Fatalf("silent connection got %q, want connection-timeout", got)
	}
}

// Keepalives do not buy an unauthenticated connection unlimited time: it
// must log in and bind within the login timeout, or it is closed with
// connection-timeout, even while it keeps sending whitespace. Once bound,
// keepalives hold the stream open as before.
func TestLoginTimeout(t *testing.T) {
	ts := startServer(t, func(c *c2s.Config) { c.LoginTimeout = 2 * time.Second })
	lingerer := ts.dialRaw(t)
	lingerer.open(t)
	deadline := time.Now().Add(wait)
	for {
		if time.Now().After(deadline) {
			t.Fatal("an unauthenticated connection kept its slot with keepalives")
		}
		if _, err := lingerer.conn.Write([]byte(" ")); err != nil {
			break // closed by the server
		}
		time.Sleep(50 * time.Millisecond)
		_ = lingerer.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		buf := make([]byte, 4096)
		n, _ := lingerer.conn.Read(buf)
		if n > 0 && strings.Contains(string(buf[:n]), "connection-timeout") {
			break
		}
	}
	// A client that binds in time is unaffected afterwards.
	alice := ts.login(t, "alice", "a")
	time.Sleep(2500 * time.Millisecond) // past the login timeout
	alice.pingServer(t)
}

func TestConnectionLimitPerAddress(t *testing.T) {
	ts := startServer(t, func(c *c2s.Config) { c.MaxPerAddress = 2 })
	ts.dialRaw(t).open(t)
	ts.dialRaw(t).open(t)
	if got := ts.dialRaw(t).streamError(t); got != stream.PolicyViolation {
		t.Fatalf("third connection got %q, want policy-violation", got)
	}
}

// TestSlowReaderIsDisconnected: a client that never reads cannot make the
// server buffer without bound; it is cut off and its sender is unaffected.
func TestSlowReaderIsDisconnected(t *testing.T) {
	ts := startServer(t, func(c *c2s.Config) {
		c.SendQueue = 8
		c.WriteTimeout = 200 * time.Millisecond
	})
	_, bobJID := ts.rawLogin(t, "bob", "sleepy") // never reads again
	// alice writes raw bytes: under this burst mellium's client has been
	// seen to fail its own writes with i/o timeouts, which are not what
	// this test is about.
	alice, _ := ts.rawLogin(t, "alice", "a")
	_ = alice.conn.SetDeadline(time.Now().Add(4 * wait))
	body := strings.Repeat("x", 8<<10)
	gone := func() bool { return len(ts.router.Resources(bobJID.Bare())) == 0 }
	for i := 0; !gone(); i++ {
		if i == 5000 {
			t.Fatal("bob still bound after 40 MiB sent to him")
		}
		alice.write(t, "<message type='headline' to='"+bobJID.String()+"'><body>"+body+"</body></message>")
	}
	alice.write(t, "<iq type='get' id='ping' to='example.test'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := alice.expect(t, "iq"); r.Attr("type") != "result" {
		t.Fatalf("alice's ping after bob was cut off: %s", r)
	}
}

// TestSlowReaderIsCutOffAtOnce: a client whose queue overflows is cut off
// then, not after the write timeout that its blocked writer is waiting
// out (an hour here), so its session, queue and buffers are freed at once.
func TestSlowReaderIsCutOffAtOnce(t *testing.T) {
	ended := make(chan struct{})
	var once sync.Once
	ts := startServer(t, func(c *c2s.Config) {
		c.WriteTimeout = time.Hour // and the default queue of 256
		c.OnSessionEnd = func(_ context.Context, user jid.JID) {
			if user.Localpart() == "bob" {
				once.Do(func() { close(ended) })
			}
		}
	})
	_, bobJID := ts.rawLogin(t, "bob", "sleepy") // never reads again
	// alice writes raw bytes: a client library's own write deadlines
	// have no place in this test.
	alice, _ := ts.rawLogin(t, "alice", "a")
	_ = alice.conn.SetDeadline(time.Time{})
	ping := func() {
		t.Helper()
		_ = alice.conn.SetDeadline(time.Now().Add(wait))
		alice.write(t, "<iq type='get' id='ping' to='example.test'><ping xmlns='urn:xmpp:ping'/></iq>")
		if r := alice.expect(t, "iq"); r.Attr("type") != "result" {
			t.Fatalf("ping: %s", r)
		}
	}
	body := strings.Repeat("x", 8<<10)
	// The writer outpaces one sender until the socket buffers are full,
	// so it is blocked in a write when the queue overflows. 40 MiB fill
	// both several times over.
	for i := 0; ; i++ {
		select {
		case <-ended:
			ping()
			return
		default:
		}
		if i == 5000 {
			break
		}
		alice.write(t, "<message type='headline' to='"+bobJID.String()+"'><body>"+body+"</body></message>")
	}
	select {
	case <-ended:
		ping()
	case <-time.After(20 * time.Second):
		t.Fatal("bob's session is still there long after his queue overflowed: the cut-off waits for the write timeout")
	}
}
