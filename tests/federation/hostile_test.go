package federation

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"verlauf.im/verlauf/tests/peers"
	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/xmppfront/stream"
)

const (
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsDialback = "jabber:server:dialback"
	nsDBFeat   = "urn:xmpp:features:dialback"
)

// attacker is a scripted peer that speaks raw XML to verlauf's s2s
// port: it plays what no real server would.
type attacker struct {
	t        *testing.T
	claim    string // the domain its headers name
	conn     net.Conn
	r        *stream.Reader
	w        *stream.Writer
	id       string // the stream id verlauf gave, which dialback keys bind
	features *stream.Element
}

// dialAttacker connects to verlauf.test and opens a stream claiming to be
// from claim.
func dialAttacker(t *testing.T, claim string) *attacker {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(verlaufIP, "5269"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	a := &attacker{t: t, claim: claim, conn: c, r: stream.NewReader(c, stream.Limits{}), w: stream.NewWriter(c)}
	a.open()
	return a
}

// open sends a header and reads verlauf's header and features.
func (a *attacker) open() {
	a.t.Helper()
	if err := a.w.WriteHeader(stream.Header{From: a.claim, To: "verlauf.test", Version: "1.0", Namespace: stream.NSServer,
		Decls: map[string]string{"db": nsDialback}}); err != nil {
		a.t.Fatal(err)
	}
	h, err := a.r.ReadHeader()
	if err != nil {
		a.t.Fatal(err)
	}
	a.id = h.ID
	a.features = a.next()
	if a.features.Name.Local != "features" {
		a.t.Fatalf("features expected, got %s", a.features)
	}
}

// startTLS upgrades the stream, presenting cert, and opens it again.
func (a *attacker) startTLS(cert tls.Certificate) {
	a.t.Helper()
	if a.features.Child("starttls", nsTLS) == nil {
		a.t.Fatalf("verlauf does not offer STARTTLS: %s", a.features)
	}
	a.send(stream.NewElement(nsTLS, "starttls"))
	if el := a.next(); el.Name.Local != "proceed" {
		a.t.Fatalf("STARTTLS answered with %s", el)
	}
	tc := tls.Client(a.conn, &tls.Config{ServerName: "verlauf.test", Certificates: []tls.Certificate{cert},
		InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // an attacker does not care
	if err := tc.Handshake(); err != nil {
		a.t.Fatalf("TLS: %v", err)
	}
	a.conn = tc
	if err := a.r.Reset(tc); err != nil {
		a.t.Fatal(err)
	}
	a.w.Reset(tc)
	a.open()
}

// external tries SASL EXTERNAL as the claimed domain and reports success.
func (a *attacker) external() bool {
	a.t.Helper()
	a.send(stream.NewElement(nsSASL, "auth", "mechanism", "EXTERNAL").AddText(base64.StdEncoding.EncodeToString([]byte(a.claim))))
	el := a.next()
	switch el.Name.Local {
	case "success":
		a.r.Restart()
		a.w.Restart()
		a.open()
		return true
	case "failure":
		return false
	}
	a.t.Fatalf("SASL answered with %s", el)
	return false
}

func (a *attacker) send(el *stream.Element) {
	a.t.Helper()
	if err := a.w.WriteElement(el); err != nil {
		a.t.Fatal(err)
	}
}

// sendRaw writes XML as is: dialback elements with their db: prefix.
func (a *attacker) sendRaw(s string) {
	a.t.Helper()
	if _, err := io.WriteString(a.conn, s); err != nil {
		a.t.Fatal(err)
	}
}

func (a *attacker) next() *stream.Element {
	a.t.Helper()
	el, err := a.r.Next()
	if err != nil {
		a.t.Fatalf("reading from verlauf: %v", err)
	}
	return el
}

// expectStreamError reads until verlauf's stream error, which must be
// cond, and then the end of the connection.
func (a *attacker) expectStreamError(cond stream.Condition) {
	a.t.Helper()
	for {
		el, err := a.r.Next()
		if err != nil {
			a.t.Fatalf("no stream error: %v", err)
		}
		if se, ok := stream.ParseStreamError(el); ok {
			if se.Condition != cond {
				a.t.Fatalf("stream error %s, want %s", se.Condition, cond)
			}
			break
		}
		a.t.Logf("before the stream error: %s", el)
	}
	// Then verlauf ends the stream and the connection: reading ends in
	// an error that is not our deadline.
	for {
		if _, err := a.r.Next(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				a.t.Fatalf("verlauf kept the connection open after the stream error")
			}
			return
		}
	}
}

// forged is a message that must never reach alice.
func forged(from, text string) *stream.Element {
	return stream.NewElement(stream.NSServer, "message", "from", from, "to", "alice@verlauf.test", "type", "chat", "id", "forged").
		AddChild(stream.NewElement(stream.NSServer, "body").AddText("forged: " + text))
}

// issueCert is a certificate for name from p, loaded.
func issueCert(t *testing.T, p *peers.CA, name string) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(p.Issue(t, name, name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Hostile peers against the real binary, with dialback allowed (the
// default) and a real Prosody as prosody.test's authoritative server:
// none of them gets a stanza through, and the local users, and the
// honest federation with Prosody, notice nothing.
func TestHostilePeers(t *testing.T) {
	p := setUp(t, "prosody.test", prosodyIP)
	pn := startProsody(t, p)
	plain := plaintextPeer(t)
	s := startVerlauf(t, p, verlaufOptions{routes: map[string]string{
		"prosody.test":    net.JoinHostPort(prosodyIP, "5269"),
		"notls.test":      plain.addr,
		"tlsrefused.test": plain.addr,
	}})
	alice := login(t, s, p, "alice")
	carol := login(t, s, p, "carol")
	bob := userOn(t, &pn.Peer, "bob")
	// The honest federation is up before the attacks.
	bob.do(map[string]any{"cmd": "message", "to": "alice@verlauf.test", "body": "before"})
	alice.Expect(t, "bob's first message", isBody("before"))

	t.Run("no TLS", func(t *testing.T) {
		for _, c := range []struct {
			name string
			do   func(a *attacker)
		}{
			{"stanza", func(a *attacker) { a.send(forged("bob@prosody.test/x", "in plaintext")) }},
			{"dialback", func(a *attacker) {
				a.sendRaw(`<db:result from='prosody.test' to='verlauf.test'>0123456789abcdef</db:result>`)
			}},
			{"SASL", func(a *attacker) {
				a.send(stream.NewElement(nsSASL, "auth", "mechanism", "EXTERNAL").AddText("cHJvc29keS50ZXN0"))
			}},
			{"stanza without a from domain header", func(a *attacker) { a.send(forged("bob@prosody.test/x", "anonymous")) }},
		} {
			t.Run(c.name, func(t *testing.T) {
				claim := "prosody.test"
				if strings.Contains(c.name, "without") {
					claim = ""
				}
				a := dialAttacker(t, claim)
				if a.features.Child("starttls", nsTLS) == nil || a.features.Child("starttls", nsTLS).Child("required", nsTLS) == nil {
					t.Fatalf("STARTTLS not offered as required: %s", a.features)
				}
				if a.features.Child("mechanisms", nsSASL) != nil || a.features.Child("dialback", nsDBFeat) != nil {
					t.Fatalf("authentication offered before TLS: %s", a.features)
				}
				c.do(a)
				a.expectStreamError(stream.PolicyViolation)
			})
		}
	})

	t.Run("peer offers no TLS", func(t *testing.T) {
		// verlauf dials a peer that offers no STARTTLS, or refuses it:
		// the message bounces, and not a byte of it crosses in
		// plaintext.
		for i, domain := range []string{"notls.test", "tlsrefused.test"} {
			id := fmt.Sprintf("plain%d", i)
			alice.Send(t, fmt.Sprintf(`<message to='eve@%s' type='chat' id='%s'><body>secret</body></message>`, domain, id))
			bounce := alice.ExpectID(t, id)
			if bounce.Attr("type") != "error" || bounce.Child("error", "") == nil ||
				bounce.Child("error", "").Child("remote-server-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas") == nil {
				t.Fatalf("message to %s: %s", domain, bounce)
			}
		}
		// The first peer got a policy-violation, the second a STARTTLS
		// attempt, and neither anything else.
		testserver.WaitFor(t, 5*time.Second, func() error {
			if got := plain.seen(); !slices.Contains(got, "error:policy-violation") || !slices.Contains(got, "starttls") {
				return fmt.Errorf("the plaintext peer saw %v", got)
			}
			return nil
		})
		for _, e := range plain.seen() {
			if e != "starttls" && e != "error:policy-violation" {
				t.Fatalf("the plaintext peer received <%s>: %v", e, plain.seen())
			}
		}
	})

	t.Run("certificate for another domain", func(t *testing.T) {
		// A certificate from the CA verlauf trusts, but for evil.test,
		// while the stream claims prosody.test.
		a := dialAttacker(t, "prosody.test")
		a.startTLS(issueCert(t, p, "evil.test"))
		if a.features.Child("mechanisms", nsSASL) == nil || a.features.Child("dialback", nsDBFeat) == nil {
			t.Fatalf("EXTERNAL and dialback should both be offered: %s", a.features)
		}
		if a.external() {
			t.Fatal("SASL EXTERNAL accepted prosody.test with a certificate for evil.test")
		}
		// Dialback with a key the attacker made up: verlauf asks
		// Prosody, prosody.test's authoritative server, which says
		// invalid.
		a.sendRaw(`<db:result from='prosody.test' to='verlauf.test'>` + strings.Repeat("ab", 32) + `</db:result>`)
		res := a.next()
		if res.Name != (stream.Name{Space: nsDialback, Local: "result"}) || res.Attr("type") != "invalid" {
			t.Fatalf("forged dialback answered with %s", res)
		}
		// Prosody was the one asked, about this very stream.
		b, err := os.ReadFile(filepath.Join(pn.Dir, "prosody.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !verifiedBy(string(b), a.id) {
			t.Fatalf("Prosody's log shows no db:verify for stream %s", a.id)
		}
		// Sending anyway cuts the stream.
		a.send(forged("bob@prosody.test/x", "after a failed dialback"))
		a.expectStreamError(stream.InvalidFrom)
	})

	t.Run("stanza while dialback is pending", func(t *testing.T) {
		// The stanza follows the claim at once, before Prosody could
		// have answered: it is not taken on credit.
		a := dialAttacker(t, "prosody.test")
		a.startTLS(issueCert(t, p, "evil.test"))
		a.sendRaw(`<db:result from='prosody.test' to='verlauf.test'>` + strings.Repeat("cd", 32) + `</db:result>`)
		a.send(forged("bob@prosody.test/x", "while dialback is pending"))
		a.expectStreamError(stream.InvalidFrom)
	})

	t.Run("forged from after authenticating", func(t *testing.T) {
		// attacker.test holds a valid certificate of its own and proves
		// its domain, then speaks for prosody.test.
		a := dialAttacker(t, "attacker.test")
		a.startTLS(issueCert(t, p, "attacker.test"))
		if !a.external() {
			t.Fatal("SASL EXTERNAL refused a valid certificate for attacker.test")
		}
		a.send(forged("bob@prosody.test/x", "from another domain"))
		a.expectStreamError(stream.InvalidFrom)
	})

	t.Run("local users notice nothing", func(t *testing.T) {
		localChat(t, alice, carol, "prosody.test")
		// Nothing forged reached alice: the next message from bob she
		// sees is the one he sends now.
		bob.in(t).do(map[string]any{"cmd": "message", "to": "alice@verlauf.test", "body": "after"})
		el := alice.Expect(t, "bob's next message", func(e *stream.Element) bool {
			return e.Name.Local == "message" && e.Child("body", "") != nil
		})
		if b := el.Child("body", "").Text(); b != "after" {
			t.Fatalf("alice got %q: an attacker's message was delivered", b)
		}
		alice.Send(t, `<message to='bob@prosody.test' type='chat'><body>still federated</body></message>`)
		bob.in(t).expect("message", func(ev map[string]any) bool { return ev["body"] == "still federated" })
	})
}

// plainPeer is a server without TLS: it offers no STARTTLS to streams
// for notls.test, and answers STARTTLS with <failure/> for
// tlsrefused.test. It records the name of every element it reads.
type plainPeer struct {
	addr string
	mu   sync.Mutex
	got  []string
}

func plaintextPeer(t *testing.T) *plainPeer {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(plainIP, "5269"))
	if err != nil {
		t.Fatal(err)
	}
	pp := &plainPeer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				pp.serve(c)
			}()
		}
	}()
	return pp
}

func (pp *plainPeer) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := stream.NewReader(c, stream.Limits{}), stream.NewWriter(c)
	h, err := r.ReadHeader()
	if err != nil {
		return
	}
	if w.WriteHeader(stream.Header{From: h.To, To: h.From, ID: "plain", Version: "1.0", Namespace: stream.NSServer}) != nil {
		return
	}
	f := stream.NewElement(stream.NSStream, "features")
	if h.To == "tlsrefused.test" {
		f.AddChild(stream.NewElement(nsTLS, "starttls"))
	}
	f.AddChild(stream.NewElement(nsDBFeat, "dialback"))
	if w.WriteElement(f) != nil {
		return
	}
	for {
		el, err := r.Next()
		if err != nil {
			return
		}
		name := el.Name.Local
		if se, ok := stream.ParseStreamError(el); ok {
			name = "error:" + string(se.Condition)
		}
		pp.mu.Lock()
		pp.got = append(pp.got, name)
		pp.mu.Unlock()
		if el.Name.Local == "starttls" {
			_ = w.WriteElement(stream.NewElement(nsTLS, "failure"))
		}
	}
}

func (pp *plainPeer) seen() []string {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return slices.Clone(pp.got)
}

func isBody(text string) func(*stream.Element) bool {
	return func(e *stream.Element) bool {
		b := e.Child("body", "")
		return e.Name.Local == "message" && b != nil && b.Text() == text
	}
}

// verifiedBy reports whether Prosody's debug log shows it answering
// invalid to a db:verify about stream id.
func verifiedBy(log, id string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "verify") && strings.Contains(l, "id='"+id+"'") && strings.Contains(l, "type='invalid'") {
			return true
		}
	}
	return false
}
