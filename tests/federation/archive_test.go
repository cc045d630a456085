package federation

import (
	"fmt"
	"slices"
	"testing"

	"verlauf.im/verlauf/tests/xmppclient"
	"verlauf.im/verlauf/xmppfront/stream"
)

// history returns the bodies of c's whole archive, oldest first.
func history(t *testing.T, c *xmppclient.Client, qid string) []string {
	t.Helper()
	bodies, _ := c.MAMQuery(t, qid, "", "")
	return bodies
}

// stanzaID is the archive id alice's server stamped on a message, "" if
// none.
func stanzaID(e *stream.Element, by string) string {
	for ch := range e.Children() {
		if ch.Name == (stream.Name{Space: xmppclient.NSSID, Local: "stanza-id"}) && ch.Attr("by") == by {
			return ch.Attr("id")
		}
	}
	return ""
}

// carbonOf matches a carbon (kind sent or received) of the message with
// body.
func carbonOf(kind, body string) func(*stream.Element) bool {
	return func(e *stream.Element) bool {
		c := e.Child(kind, xmppclient.NSCarbons)
		// From her own account: her bare JID, or no 'from' at all,
		// which RFC 6120 §8.1.2.1 reads the same.
		if f := e.Attr("from"); e.Name.Local != "message" || c == nil || f != "" && f != "alice@verlauf.test" {
			return false
		}
		m := c.Child("forwarded", xmppclient.NSForward).Child("message", xmppclient.NSClient)
		return m != nil && m.Child("body", xmppclient.NSClient) != nil && m.Child("body", xmppclient.NSClient).Text() == body
	}
}

// Remote partners get the archive's rules as local ones do: with history
// on, what alice and a Prosody user say to each other lands in her MAM
// archive, OTR and no-store messages are delivered but not kept, and her
// second device gets carbons of the conversation.
func TestRemoteArchive(t *testing.T) {
	p := setUp(t, "prosody.test", prosodyIP)
	pn := startProsody(t, p)
	s := startVerlauf(t, p, verlaufOptions{routes: map[string]string{"prosody.test": pn.S2S()}})
	phone := login(t, s, p, "alice")
	pc := login(t, s, p, "alice")
	phone.HistoryOn(t)
	pc.Send(t, "<iq type='set' id='cc'><enable xmlns='"+xmppclient.NSCarbons+"'/></iq>")
	if r := pc.ExpectID(t, "cc"); r.Attr("type") != "result" {
		t.Fatalf("carbons: %s", r)
	}
	bob := userOn(t, &pn.Peer, "bob")
	alicePhone := phone.JID.String()

	// fromBob sends a message from bob to alice's phone, which must get
	// it, and returns it as delivered.
	fromBob := func(t *testing.T, body, hint string) *stream.Element {
		t.Helper()
		bob.in(t).do(map[string]any{"cmd": "message", "to": alicePhone, "body": body, "hint": hint})
		return phone.Expect(t, fmt.Sprintf("bob's %q", body), isBody(body))
	}
	// toBob sends a message from alice's phone, which bob must get.
	toBob := func(t *testing.T, body string) {
		t.Helper()
		phone.Send(t, fmt.Sprintf(`<message to='bob@prosody.test' type='chat'><body>%s</body></message>`, body))
		bob.in(t).expect("message", func(ev map[string]any) bool { return ev["body"] == body })
	}

	t.Run("history and carbons", func(t *testing.T) {
		toBob(t, "hello bob")
		pc.Expect(t, "the carbon of alice's message", carbonOf("sent", "hello bob"))
		got := fromBob(t, "hello alice", "")
		if stanzaID(got, "alice@verlauf.test") == "" {
			t.Fatalf("bob's message, archived for alice, carries no stanza-id: %s", got)
		}
		pc.Expect(t, "the carbon of bob's message", carbonOf("received", "hello alice"))
	})

	t.Run("OTR and no-store are delivered, not kept", func(t *testing.T) {
		for _, c := range []struct{ body, hint string }{
			{"?OTR:AAMDzCyMLgAAAAAAAAABAAAAAQAAAMBJuS5vNQ==.", ""},
			{"?OTRv23? bob would like an Off-the-Record conversation.", ""},
			{"not for the record", "no-store"},
			{"not for the archive", "no-permanent-store"},
		} {
			got := fromBob(t, c.body, c.hint)
			if id := stanzaID(got, "alice@verlauf.test"); id != "" {
				t.Fatalf("%q was archived as %s", c.body, id)
			}
		}
		toBob(t, "?OTR:AAMDAAAAAQAAAAEAAAAGKmFsaWNl.")
	})

	t.Run("MAM", func(t *testing.T) {
		fromBob(t, "last words", "")
		want := []string{"hello bob", "hello alice", "last words"}
		if got := history(t, phone, "q1"); !slices.Equal(got, want) {
			t.Fatalf("alice's archive holds %q, want %q", got, want)
		}
		// Her other device reads the same history.
		if got := history(t, pc, "q2"); !slices.Equal(got, want) {
			t.Fatalf("from the pc, alice's archive holds %q, want %q", got, want)
		}
	})
}
