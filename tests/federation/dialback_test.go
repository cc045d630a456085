package federation

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"verlauf.im/verlauf/tests/peers"
	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
	"verlauf.im/verlauf/xmppfront/stream"
)

// logLines returns the records of verlauf's JSON log whose msg is msg
// and whose fields include want.
func logLines(s *testserver.Server, msg string, want map[string]any) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(s.Log(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) != nil || rec["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range want {
			if rec[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, rec)
		}
	}
	return out
}

// expectLog waits until verlauf has logged msg with the fields want.
func expectLog(t *testing.T, s *testserver.Server, msg string, want map[string]any) {
	t.Helper()
	testserver.WaitFor(t, 5*time.Second, func() error {
		if len(logLines(s, msg, want)) == 0 {
			return fmt.Errorf("verlauf never logged %q with %v", msg, want)
		}
		return nil
	})
}

// expectMethod checks, in verlauf's log, that each side proved its domain
// to the other with method (EXTERNAL or dialback) and nothing else, and
// that verlauf verified the peer's certificate exactly when EXTERNAL was
// used (with dialback, it could not).
func expectMethod(t *testing.T, s *testserver.Server, peer, method string) {
	t.Helper()
	expectLog(t, s, "s2s: outbound stream ready", map[string]any{"peer": peer, "method": method, "verified": method == "EXTERNAL"})
	expectLog(t, s, "s2s: peer authenticated", map[string]any{"peer": peer, "method": method, "dir": "in"})
	for _, msg := range []string{"s2s: outbound stream ready", "s2s: peer authenticated"} {
		for _, l := range logLines(s, msg, map[string]any{"peer": peer}) {
			if l["method"] != method {
				t.Fatalf("%s used %v, not %s: %v", peer, l["method"], method, l)
			}
		}
	}
}

// localChat proves that alice and carol, both on verlauf, still talk:
// whatever happened on federation, the local users notice nothing. It
// fails if alice receives anything from notFrom's domain meanwhile.
func localChat(t *testing.T, alice, carol *xmppclient.Client, notFrom string) {
	t.Helper()
	id := fmt.Sprintf("local%d", time.Now().UnixNano())
	alice.Send(t, fmt.Sprintf(`<message to='carol@verlauf.test' type='chat' id='%s'><body>are you there?</body></message>`, id))
	carol.Expect(t, "alice's message", func(e *stream.Element) bool { return e.Name.Local == "message" && e.Attr("id") == id })
	carol.Send(t, fmt.Sprintf(`<message to='%s' type='chat' id='%s-re'><body>yes</body></message>`, alice.JID, id))
	alice.Expect(t, "carol's answer", func(e *stream.Element) bool {
		if notFrom != "" && e.Name.Local == "message" && strings.Contains(e.Attr("from"), "@"+notFrom) {
			t.Fatalf("alice got a message from %s: %s", notFrom, e)
		}
		return e.Name.Local == "message" && e.Attr("id") == id+"-re"
	})
}

// Prosody's certificate comes from a CA verlauf does not trust, and
// Prosody trusts none that signed verlauf's: neither side can
// authenticate the other with SASL EXTERNAL. With dialback allowed
// (verlauf's default) both directions authenticate by dialback over TLS
// and the users are contacts as usual; with verified certificates
// required, the same Prosody is refused both ways while verlauf's own
// users chat on.
func TestDialbackProsody(t *testing.T) {
	p := setUp(t, "prosody.test", prosodyIP)
	other := untrustedCA(t, p)
	pn := runProsody(t, peers.ProsodyOptions{Peer: peers.Peer{Domain: "prosody.test", IP: prosodyIP, CA: other, Dialback: true}})
	bob := userOn(t, &pn.Peer, "bob")
	routes := map[string]string{"prosody.test": pn.S2S()}

	t.Run("allowed", func(t *testing.T) {
		// Stopped when the subtest ends, for the next one's verlauf.
		s := startVerlauf(t, p, verlaufOptions{routes: routes})
		alice := login(t, s, p, "alice")
		exchange(t, alice, bob, "prosody.test")
		expectMethod(t, s, "prosody.test", "dialback")
	})

	t.Run("refused without dialback", func(t *testing.T) {
		s := startVerlauf(t, p, verlaufOptions{routes: routes, requireVerified: true})
		alice := login(t, s, p, "alice")
		carol := login(t, s, p, "carol")
		bob := bob.in(t)
		// Inbound: Prosody cannot prove prosody.test, and its message
		// comes back to bob undelivered (Prosody's bounce carries no
		// body).
		bob.do(map[string]any{"cmd": "message", "to": "alice@verlauf.test", "body": "unverified hello"})
		if ev := bob.expect("bounce", func(ev map[string]any) bool { return ev["frm"] == "alice@verlauf.test" }); ev["condition"] == "" {
			t.Fatalf("bounce without a condition: %v", ev)
		}
		// Outbound: verlauf will not talk to a server it cannot verify.
		alice.Send(t, `<message to='bob@prosody.test' type='chat' id='out1'><body>to an unverified server</body></message>`)
		bounce := alice.ExpectID(t, "out1")
		if bounce.Attr("type") != "error" || bounce.Child("error", "") == nil ||
			bounce.Child("error", "").Child("remote-server-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas") == nil {
			t.Fatalf("alice's message to an unverified server: %s", bounce)
		}
		localChat(t, alice, carol, "prosody.test")
		if l := logLines(s, "s2s: peer authenticated", map[string]any{"peer": "prosody.test"}); len(l) > 0 {
			t.Fatalf("Prosody was authenticated: %v", l)
		}
		if l := logLines(s, "s2s: outbound stream ready", map[string]any{"peer": "prosody.test"}); len(l) > 0 {
			t.Fatalf("verlauf set up a stream to Prosody: %v", l)
		}
	})
}

// The same against ejabberd, whose certificate verlauf cannot verify and
// which cannot verify verlauf's: dialback both ways.
func TestDialbackEjabberd(t *testing.T) {
	p := setUp(t, "ejabberd.test", ejabberdIP)
	other := untrustedCA(t, p)
	en := runEjabberd(t, peers.Peer{CA: other, Dialback: true})
	s := startVerlauf(t, p, verlaufOptions{routes: map[string]string{"ejabberd.test": en.S2S()}})
	alice := login(t, s, p, "alice")
	bob := userOn(t, &en.Peer, "bob")
	exchange(t, alice, bob, "ejabberd.test")
	expectMethod(t, s, "ejabberd.test", "dialback")
}
