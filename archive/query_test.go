package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/eventstore"
)

// history stores n messages of alice, one a minute from base, with bob on
// even and carol on odd indexes, and returns their ids.
func history(t *testing.T, e *env, alice account, base time.Time, n int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, n)
	for i := range n {
		partner, dir := "bob@example.org", domain.DirectionIn
		if i%2 == 1 {
			partner, dir = "carol@example.org", domain.DirectionOut
		}
		ids[i] = idAt(base.Add(time.Duration(i)*time.Minute), uint64(i))
		at := base.Add(time.Duration(i) * time.Minute)
		if err := e.svc.StoreWithID(context.Background(), ids[i], alice.jid, mustJID(t, partner+"/phone"), stanza(partner, "alice@example.org", fmt.Sprint("msg ", i)), dir, at); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func TestQuery(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{MaxPageSize: 25, PageSize: 10}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	e.unlock(alice)
	base := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	ids := history(t, e, alice, base, 30)
	minute := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	span := func(from, to, step int) []int {
		var out []int
		for i := from; i <= to; i += step {
			out = append(out, i)
		}
		return out
	}
	bob, carol := mustJID(t, "bob@example.org"), mustJID(t, "carol@example.org")

	tests := []struct {
		name     string
		q        Query
		want     []int // indexes into ids, in the order returned
		complete bool
		count    int
		capped   bool
	}{
		{"default page", Query{}, span(0, 9, 1), false, 30, false},
		{"after", Query{AfterID: ids[9], Max: 10}, span(10, 19, 1), false, 30, false},
		{"after to the end", Query{AfterID: ids[19], Max: 10}, span(20, 29, 1), true, 30, false},
		{"last page", Query{Last: true, Max: 10}, span(20, 29, 1), false, 30, false},
		{"before", Query{BeforeID: ids[20], Last: true, Max: 10}, span(10, 19, 1), false, 30, false},
		{"before to the start", Query{BeforeID: ids[10], Last: true, Max: 10}, span(0, 9, 1), true, 30, false},
		{"between", Query{AfterID: ids[3], BeforeID: ids[7]}, span(4, 6, 1), true, 30, false},
		{"start and end", Query{Start: minute(5), End: minute(14), Max: 20}, span(5, 14, 1), true, 10, false},
		{"start only", Query{Start: minute(25)}, span(25, 29, 1), true, 5, false},
		{"end only, last", Query{End: minute(4), Last: true, Max: 3}, span(2, 4, 1), false, 5, false},
		{"with", Query{With: bob, Max: 5}, span(0, 8, 2), false, 15, false},
		{"with, full JID", Query{With: mustJID(t, "carol@example.org/pc"), Max: 25}, span(1, 29, 2), true, 15, false},
		{"with and start", Query{With: bob, Start: minute(20)}, span(20, 28, 2), true, 5, false},
		{"with, last", Query{With: carol, Last: true, Max: 2}, []int{27, 29}, false, 15, false},
		{"with, after", Query{With: carol, AfterID: ids[25]}, []int{27, 29}, true, 15, false},
		{"with nobody", Query{With: mustJID(t, "dave@example.org")}, nil, true, 0, false},
		{"ids", Query{IDs: []uuid.UUID{ids[7], ids[1], ids[3]}}, []int{1, 3, 7}, true, 3, false},
		{"ids and with", Query{IDs: []uuid.UUID{ids[7], ids[2], ids[4]}, With: bob}, []int{2, 4}, true, 2, false},
		{"ids, capped page", Query{IDs: []uuid.UUID{ids[7], ids[1], ids[3]}, Max: 2}, []int{1, 3}, false, 3, false},
		{"flip page", Query{Max: 3, FlipPage: true}, []int{2, 1, 0}, false, 30, false},
		{"flip last page", Query{Max: 3, Last: true, FlipPage: true}, []int{29, 28, 27}, false, 30, false},
		{"max capped", Query{Max: 100_000}, span(0, 24, 1), false, 30, true},
		{"empty range", Query{Start: minute(40)}, nil, true, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := e.svc.Query(ctx, alice.jid, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range p.Messages {
				if m.Err != nil {
					t.Fatalf("message %s: %v", m.ID, m.Err)
				}
				i := slices.Index(ids, m.ID)
				got = append(got, i)
				partner, dir := "bob@example.org", domain.DirectionIn
				if i%2 == 1 {
					partner, dir = "carol@example.org", domain.DirectionOut
				}
				if m.Partner != partner || m.Direction != dir || !m.At.Equal(minute(i)) ||
					!bytes.Equal(m.Stanza, stanza(partner, "alice@example.org", fmt.Sprint("msg ", i))) {
					t.Errorf("message %d: %+v", i, m)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if p.Complete != tc.complete || p.Count != tc.count || p.Capped != tc.capped {
				t.Errorf("complete %v count %d capped %v, want %v %d %v", p.Complete, p.Count, p.Capped, tc.complete, tc.count, tc.capped)
			}
			if len(tc.want) > 0 {
				lo, hi := slices.Min(tc.want), slices.Max(tc.want)
				if p.First != ids[lo] || p.Last != ids[hi] {
					t.Errorf("first/last %s/%s, want %s/%s", p.First, p.Last, ids[lo], ids[hi])
				}
			}
		})
	}

	unknown := idAt(minute(3), 999)
	for name, q := range map[string]Query{
		"after":  {AfterID: unknown},
		"before": {BeforeID: unknown, Last: true},
		"ids":    {IDs: []uuid.UUID{ids[1], unknown}},
	} {
		if _, err := e.svc.Query(ctx, alice.jid, q); !errors.Is(err, ErrItemNotFound) {
			t.Errorf("unknown id in %s: %v, want ErrItemNotFound", name, err)
		}
	}
	if _, err := e.svc.Query(ctx, alice.jid, Query{Start: minute(5), End: minute(4)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("end before start: %v, want ErrInvalid", err)
	}
}

// Paging through the whole archive forwards and backwards, page by page as
// a client does, visits every message exactly once.
func TestQueryPagesThroughEverything(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	e.unlock(alice)
	ids := history(t, e, alice, time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC), 23)

	var fwd []uuid.UUID
	q := Query{Max: 5}
	for {
		p, err := e.svc.Query(ctx, alice.jid, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			fwd = append(fwd, m.ID)
		}
		if p.Complete {
			break
		}
		q.AfterID = p.Last
	}
	if !slices.Equal(fwd, ids) {
		t.Fatalf("forwards: %d ids, want all %d in order", len(fwd), len(ids))
	}
	var back []uuid.UUID
	q = Query{Max: 5, Last: true}
	for {
		p, err := e.svc.Query(ctx, alice.jid, q)
		if err != nil {
			t.Fatal(err)
		}
		var page []uuid.UUID
		for _, m := range p.Messages {
			page = append(page, m.ID)
		}
		back = append(page, back...)
		if p.Complete {
			break
		}
		q.BeforeID = p.First
	}
	if !slices.Equal(back, ids) {
		t.Fatalf("backwards: %d ids, want all %d in order", len(back), len(ids))
	}
}

// Messages archived while alice is offline are sealed to her public key,
// readable at her next login, and found by `with` once IndexPending has
// run; messages archived while she is online are indexed at once.
func TestStoreOfflineThenIndexAtLogin(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	bob := mustJID(t, "bob@example.org")
	for i := range 3 {
		if _, err := e.svc.Store(ctx, alice.jid, bob, stanza("bob@example.org", "alice@example.org", fmt.Sprint("offline ", i)), domain.DirectionIn, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.IndexPending(ctx, alice.jid); !errors.Is(err, ErrLocked) {
		t.Fatalf("IndexPending while locked: %v, want ErrLocked", err)
	}

	e.unlock(alice)
	if _, err := e.svc.Store(ctx, alice.jid, bob, stanza("bob@example.org", "alice@example.org", "online"), domain.DirectionIn, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	all, err := e.svc.Query(ctx, alice.jid, Query{})
	if err != nil || len(all.Messages) != 4 {
		t.Fatalf("all: %+v %v", all, err)
	}
	with, err := e.svc.Query(ctx, alice.jid, Query{With: bob})
	if err != nil {
		t.Fatal(err)
	}
	if len(with.Messages) != 1 || with.Messages[0].ID != all.Messages[3].ID {
		t.Fatalf("before indexing, with bob finds %d messages, want only the one stored online", len(with.Messages))
	}
	n, err := e.svc.IndexPending(ctx, alice.jid)
	if err != nil || n != 3 {
		t.Fatalf("IndexPending: %d, %v; want 3", n, err)
	}
	with, err = e.svc.Query(ctx, alice.jid, Query{With: bob})
	if err != nil || len(with.Messages) != 4 || with.Count != 4 {
		t.Fatalf("after indexing: %d messages, count %d, %v; want 4", len(with.Messages), with.Count, err)
	}
	// Nothing left to index, and nothing is indexed twice.
	if n, err := e.svc.IndexPending(ctx, alice.jid); err != nil || n != 0 {
		t.Fatalf("second IndexPending: %d, %v", n, err)
	}
}

// flipStore flips one byte of the sealed record of the target-th archived
// message on its way to the log, as a bit rot that got past the storage
// engine's checksums would: the log and the index built from it hold the
// damaged record.
type flipStore struct {
	eventstore.Store
	seen   *int
	target int
}

func (f flipStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...domain.Event) (eventstore.AppendResult, error) {
	for i, ev := range events {
		if ev.Type != domain.TypeArchiveMessageStored {
			continue
		}
		if *f.seen++; *f.seen != f.target {
			continue
		}
		var body domain.ArchiveMessageStored
		if err := json.Unmarshal(ev.Body, &body); err != nil {
			return eventstore.AppendResult{}, err
		}
		body.Sealed[len(body.Sealed)-20] ^= 0x01
		b, err := json.Marshal(body)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		events[i].Body = b
	}
	return f.Store.Append(ctx, stream, expected, events...)
}

func TestCorruptRecordIsIsolated(t *testing.T) {
	ctx := context.Background()
	seen := 0
	e := newEnv(t, t.TempDir(), Config{}, func(s eventstore.Store) eventstore.Store {
		return flipStore{Store: s, seen: &seen, target: 3}
	})
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	e.unlock(alice)
	ids := history(t, e, alice, time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC), 5)
	p, err := e.svc.Query(ctx, alice.jid, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 5 {
		t.Fatalf("%d messages, want 5", len(p.Messages))
	}
	for i, m := range p.Messages {
		if m.ID != ids[i] {
			t.Fatalf("message %d has id %s", i, m.ID)
		}
		if i == 2 {
			if !errors.Is(m.Err, envelope.ErrAuth) || m.Stanza != nil {
				t.Fatalf("corrupt record: err %v, stanza %q; want ErrAuth and nothing", m.Err, m.Stanza)
			}
			continue
		}
		if m.Err != nil || !bytes.Contains(m.Stanza, []byte(fmt.Sprint("msg ", i))) {
			t.Fatalf("record %d next to the corrupt one: %+v", i, m)
		}
	}
}

// StoreCopies keeps one message in both parties' archives, each under its
// owner's keys, in one append; a copy that cannot be made (an account
// without keys, a missing id, one user twice) stores neither.
func TestStoreCopies(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	bob := newAccount(t, "bob@example.org", "battery staple")
	for _, a := range []account{alice, bob} {
		e.provision(a)
		e.unlock(a)
	}
	carol := mustJID(t, "carol@example.org") // no keys
	at := e.clock.Now()
	msg := stanza("alice@example.org", "bob@example.org", "both")
	aliceID, bobID := idAt(at, 1), idAt(at, 2)
	copies := func(ids ...uuid.UUID) []Copy {
		return []Copy{
			{User: alice.jid, Entry: Entry{ID: ids[0], Partner: bob.jid, Direction: domain.DirectionOut, At: at, Stanza: msg}},
			{User: bob.jid, Entry: Entry{ID: ids[1], Partner: alice.jid, Direction: domain.DirectionIn, At: at, Stanza: msg}},
		}
	}
	refused := []struct {
		name   string
		copies []Copy
	}{
		{"a copy without an id", copies(aliceID, uuid.Nil)},
		{"one user twice", append(copies(aliceID, bobID)[:1], Copy{User: alice.jid, Entry: Entry{ID: bobID, Partner: bob.jid, Direction: domain.DirectionOut, At: at, Stanza: msg}})},
		{"a party without keys", append(copies(aliceID, bobID)[:1], Copy{User: carol, Entry: Entry{ID: bobID, Partner: alice.jid, Direction: domain.DirectionIn, At: at, Stanza: msg}})},
	}
	for _, tc := range refused {
		if err := e.svc.StoreCopies(ctx, tc.copies...); err == nil {
			t.Fatalf("%s: StoreCopies succeeded", tc.name)
		}
		if got, err := e.svc.Query(ctx, alice.jid, Query{}); err != nil || len(got.Messages) != 0 {
			t.Fatalf("%s: alice's archive holds %d messages (%v), want none", tc.name, len(got.Messages), err)
		}
	}
	if err := e.svc.StoreCopies(ctx, copies(aliceID, bobID)...); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		owner   account
		partner jid.JID
		id      uuid.UUID
	}{{alice, bob.jid, aliceID}, {bob, alice.jid, bobID}} {
		got, err := e.svc.Query(ctx, c.owner.jid, Query{With: c.partner})
		if err != nil || len(got.Messages) != 1 || got.Messages[0].ID != c.id || got.Messages[0].Err != nil {
			t.Fatalf("%s's archive with %s: %+v, %v; want the message as %s", c.owner.jid, c.partner, got, err, c.id)
		}
	}
}

// recordWaits is a Waiter that notes what it is asked to wait for.
type recordWaits struct {
	Waiter
	mu  sync.Mutex
	pos []eventstore.Position
}

func (r *recordWaits) WaitFor(ctx context.Context, name string, pos eventstore.Position) error {
	r.mu.Lock()
	r.pos = append(r.pos, pos)
	r.mu.Unlock()
	return r.Waiter.WaitFor(ctx, name, pos)
}

// TestQueryDoesNotWaitForIndexPending: the terms IndexPending adds after
// a login are not the user's writes, so a query waits for the user's last
// stored message, not for them (after a 1 M import, waiting for them held
// a newest page for 17 s); IndexPending itself returns once they are in
// the index.
func TestQueryDoesNotWaitForIndexPending(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	rec := &recordWaits{Waiter: e.runner}
	svc, err := New(Config{Store: e.store, KeyStore: e.ks, Index: e.index, Waiter: rec, Clock: e.clock}, e.keys)
	if err != nil {
		t.Fatal(err)
	}
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	bob := mustJID(t, "bob@example.org")
	for i := range 3 { // offline: no term yet
		if _, err := svc.Store(ctx, alice.jid, bob, stanza("bob@example.org", "alice@example.org", fmt.Sprint("offline ", i)), domain.DirectionIn, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	stored, err := e.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.unlock(alice)
	if n, err := svc.IndexPending(ctx, alice.jid); err != nil || n != 3 {
		t.Fatalf("IndexPending: %d, %v; want 3", n, err)
	}
	indexed, err := e.store.Head(ctx)
	if err != nil || !stored.Less(indexed) {
		t.Fatalf("IndexPending appended nothing: %v, %v", indexed, err)
	}
	rec.mu.Lock()
	rec.pos = nil
	rec.mu.Unlock()
	with, err := svc.Query(ctx, alice.jid, Query{With: bob})
	if err != nil || len(with.Messages) != 3 {
		t.Fatalf("with bob after indexing: %d messages, %v; want 3", len(with.Messages), err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, p := range rec.pos {
		if stored.Less(p) {
			t.Errorf("the query waited for %v, past alice's last stored message at %v", p, stored)
		}
	}
}
