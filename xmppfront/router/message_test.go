package router

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// fakeArchiver keeps every message with a body, under ids a1, a2, … per
// local party, and records what it was asked.
type fakeArchiver struct {
	calls []string
	n     int
}

func (a *fakeArchiver) Keeps(st *stream.Element) bool { return st.Child("body", "") != nil }

func (a *fakeArchiver) Archive(_ context.Context, m *Message) error {
	a.calls = append(a.calls, m.From.String()+">"+m.To.String())
	for _, u := range []jid.JID{m.From, m.To} {
		if u.Domainpart() == domain {
			a.n++
			m.SetID(u, fmt.Sprint("a", a.n))
		}
	}
	return nil
}

// stanzaIDs lists the <stanza-id/> of a stanza as "by=id".
func stanzaIDs(st *stream.Element) []string {
	var out []string
	for c := range st.Children() {
		if c.Name == (stream.Name{Space: NSStanzaID, Local: "stanza-id"}) {
			out = append(out, c.Attr("by")+"="+c.Attr("id"))
		}
	}
	return out
}

func TestArchiverHook(t *testing.T) {
	a, b := "alice@"+domain, "bob@"+domain
	tests := []struct {
		name   string
		from   string
		raw    string
		calls  []string
		bobIDs []string // stanza-ids of what bob/1 got; nil: got nothing
		sender []string // what alice/a got
	}{
		{"a chat message is archived before delivery, the copy carries the recipient's id",
			"alice/a", "<message to='" + b + "' type='chat' id='m'><body>hi</body></message>",
			[]string{a + "/a>" + b}, []string{b + "=a2"}, nil},
		{"a client's stanza-id by the recipient is removed, others stay",
			"alice/a", "<message to='" + b + "' type='chat' id='m'><body>hi</body>" +
				"<stanza-id xmlns='urn:xmpp:sid:0' by='" + b + "' id='forged'/><stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='x'/></message>",
			[]string{a + "/a>" + b}, []string{"elsewhere.example=x", b + "=a2"}, nil},
		{"a message without what the archiver keeps is not offered to it",
			"alice/a", "<message to='" + b + "' type='chat' id='m'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
			nil, []string{}, nil},
		{"a message to an unknown user is not archived",
			"alice/a", "<message to='nobody@" + domain + "' type='chat' id='m'><body>hi</body></message>",
			nil, nil, []string{"message/error/m:service-unavailable"}},
		{"a message to someone who blocks the sender is not archived",
			"carol/1", "<message to='" + b + "' type='chat' id='m'><body>hi</body></message>",
			nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "alice/a:0", "bob/1:0", "carol/1:0")
			f.r.UseBlocker(blocks{{b, "carol@" + domain}: true})
			arch := &fakeArchiver{}
			f.r.UseArchiver(arch)
			f.send(t, tt.from, tt.raw)
			if !slices.Equal(arch.calls, tt.calls) {
				t.Fatalf("archiver calls %q, want %q", arch.calls, tt.calls)
			}
			got := f.sessions["bob/1"].take()
			switch {
			case tt.bobIDs == nil && len(got) != 0:
				t.Fatalf("bob got %v, want nothing", got)
			case tt.bobIDs != nil && len(got) != 1:
				t.Fatalf("bob got %v, want one message", got)
			case tt.bobIDs != nil:
				if ids := stanzaIDs(got[0]); !slices.Equal(ids, tt.bobIDs) && !(len(ids) == 0 && len(tt.bobIDs) == 0) {
					t.Fatalf("bob's copy has stanza-ids %q, want %q", ids, tt.bobIDs)
				}
			}
			if d := f.delivered()["alice/a"]; !slices.Equal(d, tt.sender) {
				t.Fatalf("sender got %q, want %q", d, tt.sender)
			}
		})
	}
}

func TestMessageForLeavesTheOriginalAlone(t *testing.T) {
	st := parse(t, "<message to='bob@example.test' type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>")
	orig := st.Clone()
	m := &Message{Stanza: st, From: jid.MustParse("alice@example.test/a"), To: jid.MustParse("bob@example.test")}
	m.SetID(m.To, "id1")
	c := m.For(m.To)
	if !st.Equal(orig) {
		t.Fatalf("For changed the original: %s", st)
	}
	if c.Child("private", NSCarbons) != nil || !slices.Equal(stanzaIDs(c), []string{"bob@example.test=id1"}) {
		t.Fatalf("bob's copy %s: want no <private/> and stanza-id id1", c)
	}
	m.SetID(m.To, "")
	if ids := stanzaIDs(m.For(m.To)); len(ids) != 0 {
		t.Fatalf("after the id was taken back, copy has %q", ids)
	}
	plain := &Message{Stanza: parse(t, "<message><body>x</body></message>")}
	if plain.For(jid.MustParse("bob@example.test")) != plain.Stanza {
		t.Fatal("For copied a message that needed no change")
	}
}

// deferredSession queues worker tasks until run is called, like a busy
// worker.
type deferredSession struct {
	fakeSession
	tasks []func(context.Context)
}

func (s *deferredSession) Do(f func(context.Context)) bool {
	s.tasks = append(s.tasks, f)
	return true
}

func (s *deferredSession) run() {
	for len(s.tasks) > 0 {
		f := s.tasks[0]
		s.tasks = s.tasks[1:]
		f(context.Background())
	}
}

// A message waiting on the worker for the archive must not be overtaken
// by the sender's next stanza, which alone would be delivered at once.
func TestMessagesStayInOrderBehindTheArchive(t *testing.T) {
	f := newFixture(t, "bob/1:0")
	alice := &deferredSession{fakeSession: fakeSession{id: "alice/a", jid: jid.MustParse("alice@" + domain + "/a")}}
	f.r.Bind(alice)
	f.r.UseArchiver(&fakeArchiver{})
	for _, raw := range []string{
		"<message to='bob@example.test' type='chat' id='1'><body>x</body></message>",
		"<message to='bob@example.test' type='chat' id='2'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
	} {
		el := parse(t, raw)
		el.SetAttr("from", alice.jid.String())
		f.r.fromSession(context.Background(), alice.id, el)
	}
	if got := f.sessions["bob/1"].take(); len(got) != 0 {
		t.Fatalf("bob got %d stanzas before the archived message was delivered", len(got))
	}
	alice.run()
	var ids []string
	for _, st := range f.sessions["bob/1"].take() {
		ids = append(ids, st.Attr("id"))
	}
	if !slices.Equal(ids, []string{"1", "2"}) {
		t.Fatalf("bob got %q, want [1 2]", ids)
	}
	// With nothing left on the worker, the next stanza goes at once.
	el := parse(t, "<message to='bob@example.test' type='chat' id='3'/>")
	el.SetAttr("from", alice.jid.String())
	f.r.fromSession(context.Background(), alice.id, el)
	if got := f.sessions["bob/1"].take(); len(got) != 1 {
		t.Fatalf("bob got %d stanzas, want the third at once", len(got))
	}
}

type availableRecorder []string

func (a *availableRecorder) Available(_ context.Context, full jid.JID) {
	*a = append(*a, full.String())
}

func TestAvailableHook(t *testing.T) {
	f := newFixture(t, "bob/1:-")
	var got availableRecorder
	f.r.UseAvailable(&got)
	full := f.sessions["bob/1"].jid
	for _, p := range []string{
		"<presence><priority>-1</priority></presence>", // not a target yet
		"<presence/>", // becomes one
		"<presence><priority>5</priority></presence>", // still one
		"<presence type='unavailable'/>",
		"<presence><priority>1</priority></presence>", // again
	} {
		f.r.SetPresence(full, parse(t, p))
	}
	if want := []string{full.String(), full.String()}; !slices.Equal(got, want) {
		t.Fatalf("available hook calls %q, want %q", got, want)
	}
}

// offlineErr refuses with resource-constraint.
type offlineErr struct{}

func (offlineErr) Offline(context.Context, jid.JID, *stream.Element) bool { return true }
func (offlineErr) OfflineErr(context.Context, jid.JID, *stream.Element) error {
	return &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
}

func TestOfflineErrorerBounces(t *testing.T) {
	f := newFixture(t, "alice/a:0")
	f.r.UseOffline(offlineErr{})
	f.send(t, "alice/a", "<message to='carol@example.test' type='chat' id='m'><body>x</body></message>")
	got := f.sessions["alice/a"].take()
	if len(got) != 1 || got[0].Attr("type") != "error" || got[0].Child("error", "").Attr("type") != "wait" ||
		!strings.Contains(got[0].String(), "resource-constraint") {
		t.Fatalf("sender got %v, want a resource-constraint error of type wait", got)
	}
}

func TestSetCarbons(t *testing.T) {
	f := newFixture(t, "alice/a:0")
	full := f.sessions["alice/a"].jid
	if !f.r.SetCarbons(full, true) || !f.r.Resources(full.Bare())[0].Carbons {
		t.Fatal("carbons not recorded as on")
	}
	if !f.r.SetCarbons(full, false) || f.r.Resources(full.Bare())[0].Carbons {
		t.Fatal("carbons not recorded as off")
	}
	if f.r.SetCarbons(jid.MustParse("alice@example.test/none"), true) {
		t.Fatal("SetCarbons for an unbound resource reported success")
	}
}
