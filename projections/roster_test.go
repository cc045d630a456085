package projections

import (
	"context"
	"reflect"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/embedded"
)

var rosterClock = domain.ClockFunc(func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) })

var rosterAgg = eventstore.Aggregate[domain.Roster]{
	Init: domain.NewRoster(0),
	Fold: func(r domain.Roster, ev domain.Event) (domain.Roster, error) {
		p, err := domain.Decode(ev)
		if err != nil {
			return r, err
		}
		return r.Apply(p), nil
	},
}

func openRosterStore(t *testing.T, dir string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), dir, embedded.Options{CacheSize: 4 << 20, MemTableSize: 2 << 20})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

func openRosterDB(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatalf("open projection db: %v", err)
	}
	return db
}

func rosterJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// command runs one roster rule through the real command path.
func rosterCommand(t *testing.T, store eventstore.Store, user jid.JID, decide func(domain.Roster) (domain.RosterOutcome, error)) {
	t.Helper()
	_, _, err := eventstore.Execute(context.Background(), store, domain.RosterStream(user), rosterAgg,
		func(r domain.Roster) ([]domain.Event, error) {
			out, err := decide(r)
			if err != nil {
				return nil, err
			}
			return domain.NewEvents(rosterClock, out.Events...)
		})
	if err != nil {
		t.Fatalf("command on %s: %v", user, err)
	}
}

// catchUp feeds the projection every event after its checkpoint, as the
// Runner does from the bus, and returns how many it applied.
func rosterCatchUp(t *testing.T, store eventstore.Store, p *Roster) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	for {
		cp, err := p.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := store.ReadAll(ctx, cp, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return n
		}
		for _, ev := range evs {
			if err := p.Apply(ctx, []eventstore.RecordedEvent{ev}); err != nil {
				t.Fatalf("apply %s: %v", ev.Type, err)
			}
			n++
		}
	}
}

// rosterView is everything the projection answers for one user.
type rosterView struct {
	Items         []domain.RosterItem
	Ver           uint64
	Subscribers   []string
	Subscriptions []string
	Pending       []string
}

func rosterViewOf(t *testing.T, p *Roster, user jid.JID) rosterView {
	t.Helper()
	ctx := context.Background()
	var v rosterView
	var err error
	if v.Items, v.Ver, err = p.Items(ctx, user); err != nil {
		t.Fatal(err)
	}
	if v.Subscribers, err = p.Subscribers(ctx, user); err != nil {
		t.Fatal(err)
	}
	if v.Subscriptions, err = p.Subscriptions(ctx, user); err != nil {
		t.Fatal(err)
	}
	if v.Pending, err = p.PendingRequests(ctx, user); err != nil {
		t.Fatal(err)
	}
	return v
}

// viewOfAggregate derives the same view from the aggregate, the source of
// truth the projection must agree with.
func rosterViewOfAggregate(t *testing.T, store eventstore.Store, user jid.JID) rosterView {
	t.Helper()
	l, err := eventstore.Load(context.Background(), store, domain.RosterStream(user), rosterAgg)
	if err != nil {
		t.Fatal(err)
	}
	v := rosterView{Ver: l.State.Ver()}
	for _, it := range l.State.Items() {
		v.Items = append(v.Items, it)
		if it.Subscription == domain.SubscriptionFrom || it.Subscription == domain.SubscriptionBoth {
			v.Subscribers = append(v.Subscribers, it.JID)
		}
		if it.Subscription == domain.SubscriptionTo || it.Subscription == domain.SubscriptionBoth {
			v.Subscriptions = append(v.Subscriptions, it.JID)
		}
	}
	if pr := l.State.PendingRequests(); len(pr) > 0 {
		v.Pending = pr
	}
	return v
}

// history records a varied roster life for alice (and a little for bob, so
// that users do not leak into each other), one command per step.
func rosterHistory(t *testing.T, store eventstore.Store) []func() {
	alice := rosterJID(t, "alice@example.org")
	bob := rosterJID(t, "bob@example.org")
	carol := rosterJID(t, "carol@example.org")
	dave := rosterJID(t, "dave@example.net")
	alicex := rosterJID(t, "alice@example.orgx")
	on := func(user jid.JID, decide func(domain.Roster) (domain.RosterOutcome, error)) func() {
		return func() { rosterCommand(t, store, user, decide) }
	}
	return []func(){
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) {
			return r.SetItem(bob, "Bob", []string{"Friends", "Work"})
		}),
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) { return r.Outbound(bob, domain.StanzaSubscribe) }),
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) { return r.Inbound(bob, domain.StanzaSubscribed) }),
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) { return r.Inbound(bob, domain.StanzaSubscribe) }),
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) { return r.Outbound(bob, domain.StanzaSubscribed) }),
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) { return r.Inbound(carol, domain.StanzaSubscribe) }),
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) { return r.SetItem(dave, "", nil) }),
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) { return r.Outbound(dave, domain.StanzaSubscribed) }),
		on(bob, func(r domain.Roster) (domain.RosterOutcome, error) { return r.SetItem(alice, "Alice", nil) }),
		on(alicex, func(r domain.Roster) (domain.RosterOutcome, error) { return r.SetItem(bob, "other", nil) }),
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) { return r.RemoveItem(dave) }),
		on(alice, func(r domain.Roster) (domain.RosterOutcome, error) { return r.SetItem(dave, "Dave", []string{"Later"}) }),
	}
}

func TestRosterProjectionFollowsAggregate(t *testing.T) {
	store := openRosterStore(t, t.TempDir())
	defer store.Close()
	db := openRosterDB(t, t.TempDir())
	defer db.Close()
	p := NewRoster(db)

	alice := rosterJID(t, "alice@example.org")
	for _, run := range rosterHistory(t, store) {
		run()
		rosterCatchUp(t, store, p)
		if got, want := rosterViewOf(t, p, alice), rosterViewOfAggregate(t, store, alice); !reflect.DeepEqual(got, want) {
			t.Fatalf("projection diverged from aggregate:\n got  %+v\n want %+v", got, want)
		}
	}

	want := rosterView{
		Items: []domain.RosterItem{
			{JID: "bob@example.org", Name: "Bob", Groups: []string{"Friends", "Work"}, Subscription: domain.SubscriptionBoth},
			{JID: "dave@example.net", Name: "Dave", Groups: []string{"Later"}, Subscription: domain.SubscriptionNone},
		},
		Ver:           8,
		Subscribers:   []string{"bob@example.org"},
		Subscriptions: []string{"bob@example.org"},
		Pending:       []string{"carol@example.org"},
	}
	if got := rosterViewOf(t, p, alice); !reflect.DeepEqual(got, want) {
		t.Fatalf("alice's roster:\n got  %+v\n want %+v", got, want)
	}

	ctx := context.Background()
	it, ok, err := p.Item(ctx, alice, rosterJID(t, "bob@example.org/phone"))
	if err != nil || !ok || it.Name != "Bob" {
		t.Errorf("Item(bob) = %+v, %v, %v; want Bob", it, ok, err)
	}
	if _, ok, err := p.Item(ctx, alice, rosterJID(t, "carol@example.org")); err != nil || ok {
		t.Errorf("Item(carol) found=%v err=%v; a request alone creates no item", ok, err)
	}
	for contact, want := range map[string]bool{"bob@example.org": true, "dave@example.net": false, "carol@example.org": false} {
		if got, err := p.IsSubscriber(ctx, alice, rosterJID(t, contact)); err != nil || got != want {
			t.Errorf("IsSubscriber(%s) = %v, %v; want %v", contact, got, err, want)
		}
	}
	// The roster of alice@example.orgx shares a key prefix with alice's
	// and must not bleed into it (checked by want above) nor the reverse.
	other, _, err := p.Items(ctx, rosterJID(t, "alice@example.orgx"))
	if err != nil || len(other) != 1 || other[0].Name != "other" {
		t.Errorf("alice@example.orgx items = %+v, %v", other, err)
	}
}

func TestRosterProjectionIgnoresOtherConcerns(t *testing.T) {
	store := openRosterStore(t, t.TempDir())
	defer store.Close()
	db := openRosterDB(t, t.TempDir())
	defer db.Close()
	p := NewRoster(db)
	ctx := context.Background()

	alice := rosterJID(t, "alice@example.org")
	ev, err := domain.NewEvent(rosterClock, domain.ArchivePrefsSet{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Append(ctx, domain.PrefsStream(alice), eventstore.Any(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if n := rosterCatchUp(t, store, p); n != 1 {
		t.Fatalf("applied %d events, want 1", n)
	}
	cp, err := p.Checkpoint(ctx)
	if err != nil || cp != res.Position {
		t.Fatalf("checkpoint = %v, %v; want %v", cp, err, res.Position)
	}
	if v := rosterViewOf(t, p, alice); !reflect.DeepEqual(v, rosterView{}) {
		t.Fatalf("prefs event changed the roster view: %+v", v)
	}
}

func TestRosterProjectionResumesAfterRestart(t *testing.T) {
	storeDir, dbDir := t.TempDir(), t.TempDir()
	store := openRosterStore(t, storeDir)
	db := openRosterDB(t, dbDir)
	steps := rosterHistory(t, store)
	half := len(steps) / 2
	for _, run := range steps[:half] {
		run()
	}
	first := rosterCatchUp(t, store, NewRoster(db))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, run := range steps[half:] {
		run()
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store = openRosterStore(t, storeDir)
	defer store.Close()
	db = openRosterDB(t, dbDir)
	defer db.Close()
	p := NewRoster(db)
	second := rosterCatchUp(t, store, p)
	head, err := store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Resuming from the checkpoint applies only what was appended while
	// the projection was down.
	if total := int(head.Commit); first+second != total || first == 0 || second == 0 {
		t.Fatalf("applied %d before and %d after the restart, want a split of %d", first, second, total)
	}
	for _, user := range []string{"alice@example.org", "bob@example.org", "alice@example.orgx"} {
		u := rosterJID(t, user)
		if got, want := rosterViewOf(t, p, u), rosterViewOfAggregate(t, store, u); !reflect.DeepEqual(got, want) {
			t.Errorf("%s after restart:\n got  %+v\n want %+v", user, got, want)
		}
	}
}

func TestRosterProjectionRebuild(t *testing.T) {
	store := openRosterStore(t, t.TempDir())
	defer store.Close()
	db := openRosterDB(t, t.TempDir())
	defer db.Close()
	p := NewRoster(db)
	ctx := context.Background()
	for _, run := range rosterHistory(t, store) {
		run()
	}
	rosterCatchUp(t, store, p)
	users := []jid.JID{rosterJID(t, "alice@example.org"), rosterJID(t, "bob@example.org"), rosterJID(t, "alice@example.orgx")}
	before := make([]rosterView, len(users))
	for i, u := range users {
		before[i] = rosterViewOf(t, p, u)
	}

	if err := p.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if cp, err := p.Checkpoint(ctx); err != nil || cp != eventstore.Start {
		t.Fatalf("checkpoint after reset = %v, %v", cp, err)
	}
	if v := rosterViewOf(t, p, users[0]); !reflect.DeepEqual(v, rosterView{}) {
		t.Fatalf("reset left state behind: %+v", v)
	}
	rosterCatchUp(t, store, p)
	for i, u := range users {
		if got := rosterViewOf(t, p, u); !reflect.DeepEqual(got, before[i]) {
			t.Errorf("%s rebuilt:\n got  %+v\n want %+v", u, got, before[i])
		}
	}
}
