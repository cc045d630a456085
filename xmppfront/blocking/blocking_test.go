package blocking

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// fakeRouter records pushes to the resources it knows.
type fakeRouter struct {
	mu    sync.Mutex
	bound map[string][]string // bare → full
	sent  map[string][]*stream.Element
}

func (r *fakeRouter) Resources(bare jid.JID) []router.Resource {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []router.Resource
	for _, f := range r.bound[bare.String()] {
		out = append(out, router.Resource{JID: jid.MustParse(f), Available: true})
	}
	return out
}

func (r *fakeRouter) SendToResource(_ context.Context, full jid.JID, st *stream.Element) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent[full.String()] = append(r.sent[full.String()], st)
	return true
}

func (r *fakeRouter) take(full string) []*stream.Element {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent[full]
	delete(r.sent, full)
	return out
}

const (
	phone  = "juliet@example.org/phone"
	laptop = "juliet@example.org/laptop"
	tablet = "juliet@example.org/tablet"
	bare   = "juliet@example.org"
)

type fixture struct {
	s       *Service
	h       router.IQHandler
	r       *fakeRouter
	store   eventstore.Store
	changes []domain.BlocklistChanged
}

func setup(t *testing.T, maxItems int) *fixture {
	t.Helper()
	st, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{store: st, r: &fakeRouter{
		bound: map[string][]string{bare: {phone, laptop, tablet}},
		sent:  map[string][]*stream.Element{},
	}}
	f.s = New(Config{Store: st, Router: f.r, MaxItems: maxItems,
		OnChange: func(_ context.Context, _ jid.JID, c domain.BlocklistChanged) { f.changes = append(f.changes, c) }})
	m := router.NewMux()
	f.s.Register(m)
	if !slices.Contains(m.Features(), NS) {
		t.Fatalf("feature %s not registered", NS)
	}
	f.h = m.Lookup(stream.Name{Space: NS, Local: "block"})
	for _, l := range []string{"blocklist", "unblock"} {
		if m.Lookup(stream.Name{Space: NS, Local: l}) == nil {
			t.Fatalf("no handler for %s", l)
		}
	}
	return f
}

func cmd(local string, jids ...string) *stream.Element {
	el := stream.NewElement(NS, local)
	for _, j := range jids {
		el.AddChild(stream.NewElement(NS, "item", "jid", j))
	}
	return el
}

func (f *fixture) do(t *testing.T, from, typ string, payload *stream.Element) (*stream.Element, error) {
	t.Helper()
	return f.h.HandleIQ(context.Background(), router.IQ{
		From: jid.MustParse(from), To: jid.MustParse(from).Bare(), Type: typ, Payload: payload,
	})
}

func (f *fixture) list(t *testing.T, from string) []string {
	t.Helper()
	res, err := f.do(t, from, "get", cmd("blocklist"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for c := range res.Children() {
		out = append(out, c.Attr("jid"))
	}
	return out
}

func TestBlockUnblock(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0)
	juliet := jid.MustParse(bare)
	romeo := jid.MustParse("romeo@example.net/orchard")
	spam := jid.MustParse("bot@spam.example/x")

	if got := f.list(t, phone); len(got) != 0 {
		t.Fatalf("initial list %q", got)
	}
	f.list(t, laptop) // the tablet never asks: no pushes for it

	if f.s.Blocks(ctx, juliet, romeo) {
		t.Fatal("blocks before any block")
	}
	if _, err := f.do(t, phone, "set", cmd("block", "romeo@example.net", "spam.example")); err != nil {
		t.Fatal(err)
	}
	if !f.s.Blocks(ctx, juliet, romeo) || !f.s.Blocks(ctx, juliet, spam) {
		t.Error("block not effective")
	}
	if f.s.Blocks(ctx, juliet, jid.MustParse("nurse@example.org")) {
		t.Error("blocks an unrelated JID")
	}
	if got := f.list(t, laptop); !slices.Equal(got, []string{"romeo@example.net", "spam.example"}) {
		t.Errorf("list %q", got)
	}
	wantPush := `<block xmlns='urn:xmpp:blocking'><item jid='romeo@example.net'/><item jid='spam.example'/></block>`
	for _, r := range []string{phone, laptop} {
		got := f.r.take(r)
		if len(got) != 1 || got[0].Attr("type") != "set" || got[0].Attr("to") != r || got[0].Child("block", NS).String() != wantPush {
			t.Errorf("push to %s: %v", r, got)
		}
	}
	if got := f.r.take(tablet); len(got) != 0 {
		t.Errorf("push to a resource that never asked: %v", got)
	}

	// Blocking again changes nothing: no event, no push.
	head, _ := f.store.Head(ctx)
	if _, err := f.do(t, phone, "set", cmd("block", "romeo@example.net")); err != nil {
		t.Fatal(err)
	}
	if h, _ := f.store.Head(ctx); h != head || len(f.r.take(phone)) != 0 {
		t.Error("a no-op block was recorded or pushed")
	}

	if _, err := f.do(t, laptop, "set", cmd("unblock", "romeo@example.net")); err != nil {
		t.Fatal(err)
	}
	if f.s.Blocks(ctx, juliet, romeo) || !f.s.Blocks(ctx, juliet, spam) {
		t.Error("unblock not effective")
	}
	if got := f.r.take(phone); len(got) != 1 || got[0].Child("unblock", NS).String() != `<unblock xmlns='urn:xmpp:blocking'><item jid='romeo@example.net'/></unblock>` {
		t.Errorf("unblock push %v", got)
	}
	f.r.take(laptop)

	if _, err := f.do(t, laptop, "set", cmd("unblock")); err != nil {
		t.Fatal(err)
	}
	if f.s.Blocks(ctx, juliet, spam) || len(f.list(t, phone)) != 0 {
		t.Error("unblock all not effective")
	}
	if got := f.r.take(laptop); len(got) != 1 || got[0].Child("unblock", NS).String() != `<unblock xmlns='urn:xmpp:blocking'/>` {
		t.Errorf("unblock-all push %v", got)
	}
	if len(f.changes) != 3 || !f.changes[2].UnblockAll {
		t.Errorf("OnChange saw %+v", f.changes)
	}

	// A fresh service (a restart) sees the same list from the store.
	if _, err := f.do(t, phone, "set", cmd("block", "romeo@example.net")); err != nil {
		t.Fatal(err)
	}
	fresh := New(Config{Store: f.store})
	if !fresh.Blocks(ctx, juliet, romeo) {
		t.Error("the blocklist did not survive a restart")
	}
}

func TestPushesFollowSessions(t *testing.T) {
	f := setup(t, 0)
	f.list(t, phone)
	f.list(t, laptop)
	// The laptop's session ends; a new session with the same full JID
	// must ask for the list before it gets pushes.
	f.s.Ended(jid.MustParse(laptop))
	// The phone is gone without Ended: the router no longer lists it.
	f.r.bound[bare] = []string{laptop, tablet}
	if _, err := f.do(t, tablet, "set", cmd("block", "x@example.net")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{phone, laptop, tablet} {
		if got := f.r.take(r); len(got) != 0 {
			t.Errorf("push to %s: %v", r, got)
		}
	}
	if len(f.s.requested) != 0 {
		t.Errorf("stale registrations kept: %v", f.s.requested)
	}
}

func TestRefusals(t *testing.T) {
	f := setup(t, 2)
	tests := []struct {
		name     string
		from, to string
		typ      string
		payload  *stream.Element
		want     stanza.Condition
	}{
		{"empty block", phone, bare, "set", cmd("block"), stanza.BadRequest},
		{"bad jid", phone, bare, "set", cmd("block", "@@"), stanza.JIDMalformed},
		{"empty jid", phone, bare, "set", cmd("block", ""), stanza.JIDMalformed},
		{"too many", phone, bare, "set", cmd("block", "a@x.example", "b@x.example", "c@x.example"), stanza.ResourceConstraint},
		{"get a block", phone, bare, "get", cmd("block", "a@x.example"), stanza.BadRequest},
		{"set the list", phone, bare, "set", cmd("blocklist"), stanza.BadRequest},
		{"another user's list", "romeo@example.net/orchard", bare, "get", cmd("blocklist"), stanza.Forbidden},
		{"on the server", phone, "example.org", "set", cmd("block", "a@x.example"), stanza.Forbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.h.HandleIQ(context.Background(), router.IQ{
				From: jid.MustParse(tt.from), To: jid.MustParse(tt.to), Type: tt.typ, Payload: tt.payload,
			})
			var se *stanza.Error
			if !errors.As(err, &se) || se.Condition != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
	if h, err := f.store.Head(context.Background()); err != nil || h != eventstore.Start {
		t.Errorf("refused commands wrote to the store: %v, %v", h, err)
	}
}

func TestBlockedError(t *testing.T) {
	e := BlockedError()
	el := e.Element(stanza.NSClient)
	if e.Condition != stanza.NotAcceptable || el.Child("blocked", NSErrors) == nil {
		t.Errorf("BlockedError = %v", el)
	}
}

func TestCacheBound(t *testing.T) {
	f := setup(t, 0)
	s := New(Config{Store: f.store, MaxCached: 2})
	ctx := context.Background()
	for _, u := range []string{"a@example.org", "b@example.org", "c@example.org"} {
		s.Blocks(ctx, jid.MustParse(u), jid.MustParse("x@example.net"))
	}
	if n := len(s.lists); n != 2 {
		t.Errorf("%d lists cached, want 2", n)
	}
}

func BenchmarkBlocks(b *testing.B) {
	st, err := embedded.Open(context.Background(), b.TempDir(), embedded.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := New(Config{Store: st})
	ctx := context.Background()
	user := jid.MustParse(bare)
	if err := s.change(ctx, user, func(bl domain.Blocklist) ([]domain.Payload, error) {
		return bl.Block(jid.MustParse("spam.example"), jid.MustParse("romeo@example.net"))
	}); err != nil {
		b.Fatal(err)
	}
	peer := jid.MustParse("nurse@example.org/kitchen")
	b.ReportAllocs()
	for b.Loop() {
		if s.Blocks(ctx, user, peer) {
			b.Fatal("blocked")
		}
	}
}
