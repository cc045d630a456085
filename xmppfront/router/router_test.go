package router

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// fakeSession records what the router sends it and runs worker tasks
// inline, so routing can be checked synchronously.
type fakeSession struct {
	id       string
	jid      jid.JID
	mu       sync.Mutex
	got      []*stream.Element
	full     bool // Do refuses, as a session with a full worker queue
	replaced bool
	kicked   stream.Condition
}

func (s *fakeSession) ID() string   { return s.id }
func (s *fakeSession) JID() jid.JID { return s.jid }
func (s *fakeSession) Send(st *stream.Element) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st)
	return true
}
func (s *fakeSession) Do(f func(context.Context)) bool {
	if s.full {
		return false
	}
	f(context.Background())
	return true
}
func (s *fakeSession) Replace()                             { s.replaced = true }
func (s *fakeSession) Kick(cond stream.Condition, _ string) { s.kicked = cond }

func (s *fakeSession) take() []*stream.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.got
	s.got = nil
	return g
}

const domain = "example.test"

type fixture struct {
	r        *Router
	sessions map[string]*fakeSession
}

// newFixture binds sessions given as "user/resource:priority" (priority
// "-" for a bound but unavailable session); users alice, bob, carol, dave
// exist.
func newFixture(t *testing.T, binds ...string) *fixture {
	t.Helper()
	f := &fixture{sessions: map[string]*fakeSession{}}
	mux := NewMux()
	mux.Handle("urn:xmpp:ping", "ping", IQHandlerFunc(func(context.Context, IQ) (*stream.Element, error) { return nil, nil }))
	mux.Handle("test:fail", "q", IQHandlerFunc(func(context.Context, IQ) (*stream.Element, error) {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}))
	f.r = New(Config{Domain: domain, Mux: mux, UserExists: func(_ context.Context, bare jid.JID) bool {
		return slices.Contains([]string{"alice", "bob", "carol", "dave"}, bare.Localpart())
	}})
	for _, b := range binds {
		addr, prio, _ := strings.Cut(b, ":")
		s := &fakeSession{id: addr, jid: jid.MustParse(addr + "@" + domain)}
		user, res, _ := strings.Cut(addr, "/")
		s.jid = jid.MustParse(user + "@" + domain + "/" + res)
		f.sessions[addr] = s
		f.r.Bind(s)
		if prio != "-" {
			p := stream.NewElement(stream.NSClient, "presence")
			if prio != "" {
				p.AddChild(stream.NewElement(stream.NSClient, "priority").AddText(prio))
			}
			f.r.SetPresence(s.jid, p)
		}
	}
	return f
}

// send routes raw XML as if the session addr had sent it (from stamped).
func (f *fixture) send(t *testing.T, addr, raw string) {
	t.Helper()
	el := parse(t, raw)
	s := f.sessions[addr]
	el.SetAttr("from", s.jid.String())
	f.r.fromSession(context.Background(), s.id, el)
}

func parse(t testing.TB, raw string) *stream.Element {
	t.Helper()
	el, err := DecodeStanza([]byte(raw), stream.DefaultMaxStanzaSize)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return el
}

// delivered lists, per session, the stanzas it got as "name/type/id[:condition]".
func (f *fixture) delivered() map[string][]string {
	out := map[string][]string{}
	for addr, s := range f.sessions {
		for _, st := range s.take() {
			d := st.Name.Local + "/" + st.Attr("type") + "/" + st.Attr("id")
			if e := st.Child("error", ""); e != nil {
				for c := range e.Children() {
					d += ":" + c.Name.Local
					break
				}
			}
			out[addr] = append(out[addr], d)
		}
	}
	return out
}

func TestRouting(t *testing.T) {
	a := "alice/a"
	tests := []struct {
		name  string
		binds []string
		raw   string
		want  map[string][]string
	}{
		{"chat to bare goes to all of the highest priority",
			[]string{a + ":0", "bob/1:5", "bob/2:5", "bob/3:1"},
			"<message to='bob@example.test' type='chat' id='m'/>",
			map[string][]string{"bob/1": {"message/chat/m"}, "bob/2": {"message/chat/m"}}},
		{"normal to bare skips negative priority",
			[]string{a + ":0", "bob/1:-1", "bob/2:0"},
			"<message to='bob@example.test' id='m'/>",
			map[string][]string{"bob/2": {"message//m"}}},
		{"chat to bare skips unavailable sessions",
			[]string{a + ":0", "bob/1:-", "bob/2:"},
			"<message to='bob@example.test' type='chat' id='m'/>",
			map[string][]string{"bob/2": {"message/chat/m"}}},
		{"chat to bare with only negative priority bounces",
			[]string{a + ":0", "bob/1:-5"},
			"<message to='bob@example.test' type='chat' id='m'/>",
			map[string][]string{a: {"message/error/m:service-unavailable"}}},
		{"chat to offline user bounces",
			[]string{a + ":0"},
			"<message to='carol@example.test' type='chat' id='m'/>",
			map[string][]string{a: {"message/error/m:service-unavailable"}}},
		{"headline to bare goes to every non-negative resource",
			[]string{a + ":0", "bob/1:5", "bob/2:1", "bob/3:-1"},
			"<message to='bob@example.test' type='headline' id='m'/>",
			map[string][]string{"bob/1": {"message/headline/m"}, "bob/2": {"message/headline/m"}}},
		{"headline to offline user is dropped",
			[]string{a + ":0"},
			"<message to='carol@example.test' type='headline' id='m'/>",
			map[string][]string{}},
		{"groupchat to bare bounces",
			[]string{a + ":0", "bob/1:0"},
			"<message to='bob@example.test' type='groupchat' id='m'/>",
			map[string][]string{a: {"message/error/m:service-unavailable"}}},
		{"error message to offline user is dropped",
			[]string{a + ":0"},
			"<message to='carol@example.test' type='error' id='m'/>",
			map[string][]string{}},
		{"message to full JID goes to that resource even if lower priority",
			[]string{a + ":0", "bob/1:5", "bob/2:-1"},
			"<message to='bob@example.test/2' type='chat' id='m'/>",
			map[string][]string{"bob/2": {"message/chat/m"}}},
		{"chat to a gone resource falls back to the bare JID",
			[]string{a + ":0", "bob/1:0"},
			"<message to='bob@example.test/gone' type='chat' id='m'/>",
			map[string][]string{"bob/1": {"message/chat/m"}}},
		{"headline to a gone resource is dropped",
			[]string{a + ":0", "bob/1:0"},
			"<message to='bob@example.test/gone' type='headline' id='m'/>",
			map[string][]string{}},
		{"groupchat to a gone resource bounces",
			[]string{a + ":0", "bob/1:0"},
			"<message to='bob@example.test/gone' type='groupchat' id='m'/>",
			map[string][]string{a: {"message/error/m:service-unavailable"}}},
		{"message to unknown user bounces",
			[]string{a + ":0"},
			"<message to='nobody@example.test' type='chat' id='m'/>",
			map[string][]string{a: {"message/error/m:service-unavailable"}}},
		{"message between two resources of one user",
			[]string{a + ":0", "alice/b:0"},
			"<message to='alice@example.test/b' type='chat' id='m'/>",
			map[string][]string{"alice/b": {"message/chat/m"}}},
		{"message to remote domain without s2s",
			[]string{a + ":0"},
			"<message to='x@remote.example' type='chat' id='m'/>",
			map[string][]string{a: {"message/error/m:remote-server-not-found"}}},
		{"malformed to",
			[]string{a + ":0"},
			"<message to='a@b@c' type='chat' id='m'/>",
			map[string][]string{a: {"message/error/m:jid-malformed"}}},
		{"iq to full JID is delivered",
			[]string{a + ":0", "bob/1:-"},
			"<iq to='bob@example.test/1' type='get' id='q'><x xmlns='y'/></iq>",
			map[string][]string{"bob/1": {"iq/get/q"}}},
		{"iq to a gone full JID bounces",
			[]string{a + ":0"},
			"<iq to='bob@example.test/1' type='get' id='q'><x xmlns='y'/></iq>",
			map[string][]string{a: {"iq/error/q:service-unavailable"}}},
		{"iq result to a gone full JID is dropped",
			[]string{a + ":0"},
			"<iq to='bob@example.test/1' type='result' id='q'/>",
			map[string][]string{}},
		{"iq to the server is answered by the mux",
			[]string{a + ":0"},
			"<iq to='example.test' type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>",
			map[string][]string{a: {"iq/result/q"}}},
		{"iq with no to is answered by the mux",
			[]string{a + ":0"},
			"<iq type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>",
			map[string][]string{a: {"iq/result/q"}}},
		{"iq to a local bare JID is answered by the mux",
			[]string{a + ":0"},
			"<iq to='carol@example.test' type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>",
			map[string][]string{a: {"iq/result/q"}}},
		{"iq to an unknown user bounces",
			[]string{a + ":0"},
			"<iq to='nobody@example.test' type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>",
			map[string][]string{a: {"iq/error/q:service-unavailable"}}},
		{"iq with an unknown payload bounces",
			[]string{a + ":0"},
			"<iq to='example.test' type='get' id='q'><what xmlns='urn:unknown'/></iq>",
			map[string][]string{a: {"iq/error/q:service-unavailable"}}},
		{"iq handler error is returned",
			[]string{a + ":0"},
			"<iq to='example.test' type='set' id='q'><q xmlns='test:fail'/></iq>",
			map[string][]string{a: {"iq/error/q:item-not-found"}}},
		{"iq get with two children",
			[]string{a + ":0"},
			"<iq to='example.test' type='get' id='q'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>",
			map[string][]string{a: {"iq/error/q:bad-request"}}},
		{"iq set with no child",
			[]string{a + ":0", "bob/1:0"},
			"<iq to='bob@example.test/1' type='set' id='q'/>",
			map[string][]string{a: {"iq/error/q:bad-request"}}},
		{"iq result to the server is dropped",
			[]string{a + ":0"},
			"<iq to='example.test' type='result' id='q'/>",
			map[string][]string{}},
		{"directed presence without a presence handler",
			[]string{a + ":0", "bob/1:0"},
			"<presence to='bob@example.test/1' id='p'/>",
			map[string][]string{"bob/1": {"presence//p"}}},
		{"presence to unknown user is dropped",
			[]string{a + ":0"},
			"<presence to='nobody@example.test' type='subscribe' id='p'/>",
			map[string][]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.binds...)
			f.send(t, a, tt.raw)
			got := f.delivered()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("delivered %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWorkerFullAnswersResourceConstraint(t *testing.T) {
	f := newFixture(t, "alice/a:0")
	f.sessions["alice/a"].full = true
	f.send(t, "alice/a", "<iq to='example.test' type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>")
	want := map[string][]string{"alice/a": {"iq/error/q:resource-constraint"}}
	if got := f.delivered(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

type offlineFunc func(ctx context.Context, to jid.JID, st *stream.Element) bool

func (f offlineFunc) Offline(ctx context.Context, to jid.JID, st *stream.Element) bool {
	return f(ctx, to, st)
}

func TestOfflineHook(t *testing.T) {
	f := newFixture(t, "alice/a:0")
	var took []string
	f.r.UseOffline(offlineFunc(func(_ context.Context, to jid.JID, st *stream.Element) bool {
		took = append(took, to.String()+" "+st.Attr("id"))
		return true
	}))
	f.send(t, "alice/a", "<message to='carol@example.test' type='chat' id='m'/>")
	if got := f.delivered(); len(got) != 0 {
		t.Fatalf("delivered %v, want nothing (taken offline)", got)
	}
	if want := []string{"carol@example.test m"}; !slices.Equal(took, want) {
		t.Fatalf("offline took %v, want %v", took, want)
	}
}

func TestBindReplacesAndRegistry(t *testing.T) {
	f := newFixture(t, "alice/a:3")
	old := f.sessions["alice/a"]
	neu := &fakeSession{id: "new", jid: old.jid}
	f.r.Bind(neu)
	if !old.replaced {
		t.Fatal("old session not told it was replaced")
	}
	if last, was := f.r.Unbind(old); was || last != nil {
		t.Fatal("Unbind of the replaced session removed something")
	}
	rs := f.r.Resources(jid.MustParse("alice@example.test"))
	if len(rs) != 1 || rs[0].Available || rs[0].Interested {
		t.Fatalf("resources after replace = %+v, want one fresh unavailable resource", rs)
	}
	f.r.SetPresence(neu.jid, parse(t, "<presence><priority>7</priority></presence>"))
	f.r.SetInterested(neu.jid)
	rs = f.r.Resources(jid.MustParse("alice@example.test"))
	if len(rs) != 1 || !rs[0].Available || rs[0].Priority != 7 || !rs[0].Interested || rs[0].Presence == nil {
		t.Fatalf("resources = %+v, want available priority 7 interested", rs)
	}
	if !f.r.SendToResource(context.Background(), neu.jid, parse(t, "<message id='x'/>")) || len(neu.take()) != 1 {
		t.Fatal("SendToResource did not reach the session")
	}
	if f.r.SendToResource(context.Background(), jid.MustParse("alice@example.test/zzz"), parse(t, "<message/>")) {
		t.Fatal("SendToResource to no session reported success")
	}
	if last, was := f.r.Unbind(neu); !was || last == nil {
		t.Fatal("Unbind did not return the last presence")
	}
	if rs := f.r.Resources(jid.MustParse("alice@example.test")); len(rs) != 0 {
		t.Fatalf("resources after unbind = %+v", rs)
	}
}

type presenceRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (p *presenceRecorder) Outbound(_ context.Context, from jid.JID, st *stream.Element) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "out "+from.String()+" "+st.Attr("to"))
}
func (p *presenceRecorder) Inbound(context.Context, *stream.Element) {}
func (p *presenceRecorder) Ended(_ context.Context, full jid.JID, last *stream.Element) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, fmt.Sprintf("ended %s %v", full, last != nil))
}

func TestPresenceHandler(t *testing.T) {
	f := newFixture(t, "alice/a:-")
	p := &presenceRecorder{}
	f.r.UsePresence(p)
	f.send(t, "alice/a", "<presence/>")
	f.send(t, "alice/a", "<presence to='bob@example.test' type='subscribe'/>")
	f.r.SetPresence(f.sessions["alice/a"].jid, parse(t, "<presence/>"))
	f.r.Ended(context.Background(), f.sessions["alice/a"])
	want := []string{"out alice@example.test/a ", "out alice@example.test/a bob@example.test", "ended alice@example.test/a true"}
	if !slices.Equal(p.calls, want) {
		t.Fatalf("presence handler calls %q, want %q", p.calls, want)
	}
}

// FuzzRoute feeds arbitrary stanzas from a bound session through the
// routing rules: nothing may panic, and every error reply must go back to
// the sender only.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		"<message to='bob@example.test' type='chat'><body>x</body></message>",
		"<iq to='example.test' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<iq type='set' id='2'/>",
		"<presence to='bob@example.test/1' type='unavailable'/>",
		"<message to='bob@example.test/1' type='groupchat'/>",
		"<iq to='x@remote' type='error' id='3'/>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		fx := newFixture(t, "alice/a:0", "bob/1:1", "bob/2:-1")
		el, err := DecodeStanza([]byte(raw), stream.DefaultMaxStanzaSize)
		if err != nil || el.Name.Space != stream.NSClient {
			return
		}
		switch el.Name.Local {
		case "message", "presence", "iq":
		default:
			return
		}
		el.SetAttr("from", fx.sessions["alice/a"].jid.String())
		fx.r.fromSession(context.Background(), "alice/a", el)
		for addr, s := range fx.sessions {
			for _, st := range s.take() {
				if st.Attr("type") == "error" && addr != "alice/a" && el.Attr("type") != "error" {
					t.Fatalf("%s got an error reply meant for the sender: %s", addr, st)
				}
			}
		}
	})
}

func TestBusDecoderRecovers(t *testing.T) {
	d := &busDecoder{max: 1 << 16}
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"<message id='1'/>", true},
		{"<message id='2'><body>x</body></message>", true},
		{"<message id='3'>", false},       // truncated
		{"<message id='4'/><iq/>", false}, // two elements
		{"<presence id='5'/>", true},
	} {
		el, err := d.decode([]byte(c.in))
		if (err == nil) != c.ok {
			t.Fatalf("decode %q: %v, want ok=%v", c.in, err, c.ok)
		}
		if c.ok && el.Attr("id") == "" {
			t.Fatalf("decode %q: %s", c.in, el)
		}
	}
}
