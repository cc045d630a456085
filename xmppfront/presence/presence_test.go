package presence_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/xmppfront/roster"
	"verlauf.im/verlauf/xmppfront/roster/rostertest"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// describe renders what a client was sent, one string per stanza, in a
// form the tests compare: presence as "presence <type> <from> -> <to>
// [show/status]", roster pushes as "push ver=N <jid> <sub>[ ask][ approved]",
// presence errors as "error <condition>".
func describe(sts []*stream.Element) []string {
	var out []string
	for _, st := range sts {
		switch st.Name.Local {
		case "presence":
			typ := st.Attr("type")
			if typ == "" {
				typ = "available"
			}
			s := fmt.Sprintf("presence %s %s -> %s", typ, st.Attr("from"), st.Attr("to"))
			if typ == "error" {
				for c := range st.Child("error", "").Children() {
					if c.Name.Space == stanza.NSStanzas && c.Name.Local != "text" {
						s = "error " + c.Name.Local
					}
				}
			}
			for _, n := range []string{"show", "status"} {
				if c := st.Child(n, ""); c != nil {
					s += " " + n + "=" + c.Text()
				}
			}
			out = append(out, s)
		case "iq":
			q := st.Child("query", roster.NS)
			if q == nil {
				out = append(out, st.String())
				continue
			}
			for it := range q.Children() {
				s := fmt.Sprintf("push ver=%s %s %s", q.Attr("ver"), it.Attr("jid"), it.Attr("subscription"))
				if it.Attr("ask") != "" {
					s += " ask"
				}
				if it.Attr("approved") == "true" {
					s += " approved"
				}
				out = append(out, s)
			}
		default:
			out = append(out, st.String())
		}
	}
	return out
}

func expect(t *testing.T, c *rostertest.Client, want ...string) {
	t.Helper()
	got := describe(c.Take())
	if !slices.Equal(got, want) {
		t.Errorf("%s was sent:\n  %s\nwant:\n  %s", c.JID, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// expectSet is expect for stanzas whose relative order does not matter.
func expectSet(t *testing.T, c *rostertest.Client, want ...string) {
	t.Helper()
	got := describe(c.Take())
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s was sent (any order):\n  %s\nwant:\n  %s", c.JID, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// online logs a resource in the way clients do: roster get, then initial
// presence; what that produced is discarded.
func online(t *testing.T, env *rostertest.Env, full string, presence ...*stream.Element) *rostertest.Client {
	t.Helper()
	c := env.Login(full)
	if _, err := c.RosterGet(""); err != nil {
		t.Fatal(err)
	}
	if len(presence) > 0 {
		c.Send(presence[0])
	} else {
		c.Presence()
	}
	c.Take()
	return c
}

func rosterOf(t *testing.T, env *rostertest.Env, user string) []string {
	t.Helper()
	items, _, err := env.Proj.Items(context.Background(), jid.MustParse(user))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		s := it.JID + " " + string(it.Subscription)
		if it.Ask {
			s += " ask"
		}
		if it.Approved {
			s += " approved"
		}
		out = append(out, s)
	}
	return out
}

func status(s string) *stream.Element {
	p := stream.NewElement(stanza.NSClient, "presence")
	p.AddChild(stream.NewElement(stanza.NSClient, "show").AddText("away"))
	p.AddChild(stream.NewElement(stanza.NSClient, "status").AddText(s))
	return p
}

// befriend runs the whole handshake in both directions between two online
// resources and drains what it produced.
func befriend(t *testing.T, a, b *rostertest.Client) {
	t.Helper()
	ab, bb := a.JID.Bare().String(), b.JID.Bare().String()
	a.Presence("type", "subscribe", "to", bb)
	b.Presence("type", "subscribed", "to", ab)
	b.Presence("type", "subscribe", "to", ab)
	a.Presence("type", "subscribed", "to", bb)
	a.Take()
	b.Take()
}

func TestSubscriptionHandshakeAndPresence(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{}, "alice@example.org", "bob@example.org")
	alice := online(t, env, "alice@example.org/phone")
	bob := online(t, env, "bob@example.org/desk")

	// Alice adds Bob and asks to see his presence.
	if err := alice.RosterSet(stream.NewElement(roster.NS, "item", "jid", "bob@example.org", "name", "Bob")); err != nil {
		t.Fatal(err)
	}
	alice.Presence("type", "subscribe", "to", "bob@example.org/desk")
	expect(t, alice,
		"push ver=1 bob@example.org none",
		"push ver=2 bob@example.org none ask")
	// Stamped with alice's bare JID and addressed to bob's (§3.1.2).
	expect(t, bob, "presence subscribe alice@example.org -> bob@example.org")

	// Bob approves: both rosters change, alice learns his presence.
	bob.Presence("type", "subscribed", "to", "alice@example.org")
	expect(t, bob, "push ver=1 alice@example.org from")
	expect(t, alice,
		"push ver=3 bob@example.org to",
		"presence subscribed bob@example.org -> alice@example.org",
		"presence available bob@example.org/desk -> alice@example.org")

	// And the other way round.
	bob.Presence("type", "subscribe", "to", "alice@example.org")
	expect(t, bob, "push ver=2 alice@example.org from ask")
	expect(t, alice, "presence subscribe bob@example.org -> alice@example.org")
	alice.Presence("type", "subscribed", "to", "bob@example.org")
	expect(t, alice, "push ver=4 bob@example.org both")
	expect(t, bob,
		"push ver=3 alice@example.org both",
		"presence subscribed alice@example.org -> bob@example.org",
		"presence available alice@example.org/phone -> bob@example.org")
	if a, b := rosterOf(t, env, "alice@example.org"), rosterOf(t, env, "bob@example.org"); !slices.Equal(a, []string{"bob@example.org both"}) || !slices.Equal(b, []string{"alice@example.org both"}) {
		t.Fatalf("rosters after the handshake: alice %q, bob %q", a, b)
	}

	// A presence update reaches the subscriber and the user's own resource.
	bob.Send(status("meeting"))
	expect(t, alice, "presence available bob@example.org/desk -> alice@example.org show=away status=meeting")
	expect(t, bob, "presence available bob@example.org/desk -> bob@example.org/desk show=away status=meeting")

	// A session that ends without a word goes unavailable for its subscribers.
	bob.End()
	expect(t, alice, "presence unavailable bob@example.org/desk -> alice@example.org")

	// Alice unsubscribes from Bob's presence: she keeps "from", he keeps "to".
	alice.Presence("type", "unsubscribe", "to", "bob@example.org")
	expect(t, alice, "push ver=5 bob@example.org from")
	if b := rosterOf(t, env, "bob@example.org"); !slices.Equal(b, []string{"alice@example.org to"}) {
		t.Errorf("bob's roster after unsubscribe: %q", b)
	}

	// Removing Bob cancels his subscription too (§2.5.2).
	if err := alice.RosterSet(stream.NewElement(roster.NS, "item", "jid", "bob@example.org", "subscription", "remove")); err != nil {
		t.Fatal(err)
	}
	expect(t, alice, "push ver=6 bob@example.org remove")
	if a, b := rosterOf(t, env, "alice@example.org"), rosterOf(t, env, "bob@example.org"); len(a) != 0 || !slices.Equal(b, []string{"alice@example.org none"}) {
		t.Errorf("rosters after remove: alice %q, bob %q", a, b)
	}
	// Bob, back online, sees his roster change and no stale request.
	bob = online(t, env, "bob@example.org/desk")
	q, err := bob.RosterGet("")
	if err != nil || len(q.Child("item", roster.NS).Attrs) == 0 || q.Child("item", roster.NS).Attr("subscription") != "none" {
		t.Errorf("bob's roster get: %v, %v", q, err)
	}
}

func TestPendingRequestRedeliveredAfterRestart(t *testing.T) {
	dir := t.TempDir()
	env := rostertest.Start(t, dir, roster.Options{}, "alice@example.org", "bob@example.org")
	alice := online(t, env, "alice@example.org/phone")
	alice.Presence("type", "subscribe", "to", "bob@example.org")
	env.Close()

	env = rostertest.Start(t, dir, roster.Options{}, "alice@example.org", "bob@example.org")
	desk := env.Login("bob@example.org/desk")
	desk.Presence()
	expect(t, desk,
		"presence available bob@example.org/desk -> bob@example.org/desk",
		"presence subscribe alice@example.org -> bob@example.org")
	// Still unanswered, so the next resource gets it as well.
	laptop := env.Login("bob@example.org/laptop")
	laptop.Presence()
	expectSet(t, laptop,
		"presence available bob@example.org/laptop -> bob@example.org/laptop",
		"presence available bob@example.org/desk -> bob@example.org/laptop",
		"presence subscribe alice@example.org -> bob@example.org")
	expect(t, desk, "presence available bob@example.org/laptop -> bob@example.org/desk")

	desk.Presence("type", "subscribed", "to", "alice@example.org")
	tablet := env.Login("bob@example.org/tablet")
	tablet.Presence()
	for _, s := range describe(tablet.Take()) {
		if strings.Contains(s, "subscribe ") {
			t.Errorf("answered request redelivered: %s", s)
		}
	}
	if a := rosterOf(t, env, "alice@example.org"); !slices.Equal(a, []string{"bob@example.org to"}) {
		t.Errorf("alice's roster: %q", a)
	}
}

func TestInitialPresenceProbesAndOwnResources(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{}, "alice@example.org", "bob@example.org")
	phone := online(t, env, "alice@example.org/phone")
	bob := online(t, env, "bob@example.org/desk")
	befriend(t, phone, bob)
	bob.Send(status("coding"))
	phone.Take()
	bob.Take()

	laptop := env.Login("alice@example.org/laptop")
	laptop.Presence()
	expectSet(t, laptop,
		"presence available alice@example.org/laptop -> alice@example.org/laptop",
		"presence available alice@example.org/phone -> alice@example.org/laptop",
		"presence available bob@example.org/desk -> alice@example.org show=away status=coding")
	// The probe answer goes to the bare JID, so the phone sees it again.
	expectSet(t, phone,
		"presence available alice@example.org/laptop -> alice@example.org/phone",
		"presence available bob@example.org/desk -> alice@example.org show=away status=coding")
	expect(t, bob, "presence available alice@example.org/laptop -> bob@example.org")

	// Once bob is gone, a probe gets his last unavailable presence.
	bob.End()
	phone.Take()
	laptop.Take()
	tablet := env.Login("alice@example.org/tablet")
	tablet.Presence()
	got := describe(tablet.Take())
	if !slices.Contains(got, "presence unavailable bob@example.org/desk -> alice@example.org") {
		t.Errorf("probe of an offline contact: %q", got)
	}
}

func TestPreApproval(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{}, "alice@example.org", "bob@example.org")
	alice := online(t, env, "alice@example.org/phone")
	bob := online(t, env, "bob@example.org/desk")

	alice.Presence("type", "subscribed", "to", "bob@example.org")
	expect(t, alice, "push ver=1 bob@example.org none approved")
	expect(t, bob) // a pre-approval is not routed (§3.4)

	bob.Presence("type", "subscribe", "to", "alice@example.org")
	expect(t, alice, "push ver=2 bob@example.org from") // not asked
	expect(t, bob,
		"push ver=1 alice@example.org none ask",
		"push ver=2 alice@example.org to",
		"presence subscribed alice@example.org -> bob@example.org",
		"presence available alice@example.org/phone -> bob@example.org")
}

func TestDirectedPresence(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{}, "alice@example.org", "carol@example.org", "dave@example.org")
	alice := online(t, env, "alice@example.org/phone")
	carol := online(t, env, "carol@example.org/x")
	dave := online(t, env, "dave@example.org/y")

	alice.Presence("to", "carol@example.org/x")
	alice.Presence("to", "dave@example.org")
	alice.Presence("to", "dave@example.org", "type", "unavailable")
	expect(t, carol, "presence available alice@example.org/phone -> carol@example.org/x")
	expect(t, dave,
		"presence available alice@example.org/phone -> dave@example.org",
		"presence unavailable alice@example.org/phone -> dave@example.org")

	alice.End()
	expect(t, carol, "presence unavailable alice@example.org/phone -> carol@example.org/x")
	expect(t, dave) // already told

	// Directed presence to another domain is routed there.
	bob := online(t, env, "dave@example.org/z")
	env.TakeRemote()
	bob.Presence("to", "someone@remote.example")
	if got := describe(env.TakeRemote()); !slices.Equal(got, []string{"presence available dave@example.org/z -> someone@remote.example"}) {
		t.Errorf("remote directed presence: %q", got)
	}
}

func TestUnknownContact(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{}, "alice@example.org")
	alice := online(t, env, "alice@example.org/phone")
	alice.Presence("type", "subscribe", "to", "nobody@example.org")
	expect(t, alice,
		"push ver=1 nobody@example.org none ask",
		"push ver=2 nobody@example.org none",
		"presence unsubscribed nobody@example.org -> alice@example.org")
	evs, err := env.Store.ReadStream(context.Background(), domain.RosterStream(jid.MustParse("nobody@example.org")), 0, eventstore.Forwards, 10)
	if err != nil || len(evs) != 0 {
		t.Errorf("a roster was recorded for a user who does not exist: %d events, %v", len(evs), err)
	}
}

func TestRemoteSubscription(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{}, "alice@example.org")
	alice := online(t, env, "alice@example.org/phone")
	env.TakeRemote()

	alice.Presence("type", "subscribe", "to", "romeo@remote.example/balcony")
	if got := describe(env.TakeRemote()); !slices.Equal(got, []string{"presence subscribe alice@example.org -> romeo@remote.example"}) {
		t.Errorf("outbound to a remote contact: %q", got)
	}
	alice.Take()

	// The peer server answers through Inbound.
	env.Presence.Inbound(context.Background(), stream.NewElement(stanza.NSServer, "presence",
		"type", "subscribed", "from", "romeo@remote.example/balcony", "to", "alice@example.org"))
	expect(t, alice,
		"push ver=2 romeo@remote.example to",
		"presence subscribed romeo@remote.example -> alice@example.org")
	env.Presence.Inbound(context.Background(), stream.NewElement(stanza.NSServer, "presence",
		"from", "romeo@remote.example/balcony", "to", "alice@example.org"))
	expect(t, alice, "presence available romeo@remote.example/balcony -> alice@example.org")
}

func TestOutboundBadPresence(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{}, "alice@example.org")
	alice := online(t, env, "alice@example.org/phone")
	tests := []struct {
		name  string
		attrs []string
		want  []string
	}{
		{"subscribe without to", []string{"type", "subscribe"}, []string{"error bad-request"}},
		{"probe without to", []string{"type", "probe"}, []string{"error bad-request"}},
		{"unknown type", []string{"type", "dance", "to", "bob@example.org"}, []string{"error bad-request"}},
		{"malformed to", []string{"type", "subscribe", "to", "a@b@c"}, []string{"error jid-malformed"}},
		{"error without to is dropped", []string{"type", "error"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head, _ := env.Store.Head(t.Context())
			alice.Presence(tt.attrs...)
			expect(t, alice, tt.want...)
			if after, _ := env.Store.Head(t.Context()); after != head {
				t.Errorf("bad presence wrote to the store")
			}
		})
	}
}

func TestProbeAnswers(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{}, "alice@example.org", "bob@example.org", "carol@example.org")
	alice := online(t, env, "alice@example.org/phone", status("here"))
	bob := online(t, env, "bob@example.org/desk")
	befriend(t, alice, bob)
	carol := online(t, env, "carol@example.org/x")
	befriend(t, carol, bob)
	carol.End()
	env.TakeRemote()

	tests := []struct {
		name, from, to string
		want           []string
	}{
		{"subscribed, online", "bob@example.org", "alice@example.org",
			[]string{"presence available alice@example.org/phone -> bob@example.org show=away status=here"}},
		{"subscribed, offline", "bob@example.org", "carol@example.org",
			[]string{"presence unavailable carol@example.org/x -> bob@example.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bob.Take()
			env.Presence.Inbound(context.Background(), stream.NewElement(stanza.NSClient, "presence", "type", "probe", "from", tt.from, "to", tt.to))
			expect(t, bob, tt.want...)
		})
	}
	// Probes from a remote server are answered the same way, over s2s.
	for _, tc := range []struct{ to, want string }{
		{"alice@example.org", "presence unsubscribed alice@example.org -> juliet@remote.example"},
		{"nobody@example.org", "presence unsubscribed nobody@example.org -> juliet@remote.example"},
	} {
		env.Presence.Inbound(context.Background(), stream.NewElement(stanza.NSServer, "presence", "type", "probe", "from", "juliet@remote.example", "to", tc.to))
		if got := describe(env.TakeRemote()); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("remote probe of %s: %q, want %q", tc.to, got, tc.want)
		}
	}
}
