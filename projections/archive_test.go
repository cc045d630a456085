package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

func archiveID(minute int) uuid.UUID {
	id := domain.ArchiveIDBound(time.Date(2025, 1, 1, 0, minute, 0, 0, time.UTC), false)
	binary.BigEndian.PutUint64(id[8:], uint64(minute))
	id[6], id[8] = 0x70, 0x80
	return id
}

func term(b byte) []byte { return bytes.Repeat([]byte{b}, TermSize) }

// archiveStored is message m (its id is archiveID(m)) stored with the
// blind index term tm (nil: not indexed yet).
func archiveStored(m int, tm []byte) domain.Payload {
	return domain.ArchiveMessageStored{ArchiveID: archiveID(m), KeyID: archiveID(0), Sealed: []byte{1}, Index: tm}
}

// newArchiveIndex opens a log and an empty MAM index in a test folder.
func newArchiveIndex(t *testing.T) (eventstore.Store, *Archive) {
	t.Helper()
	dir := t.TempDir()
	store := openRosterStore(t, dir+"/events")
	t.Cleanup(func() { store.Close() })
	db := openRosterDB(t, dir+"/proj")
	t.Cleanup(func() { db.Close() })
	return store, NewArchive(db)
}

func appendArchive(t *testing.T, store eventstore.Store, stream string, ps ...domain.Payload) {
	t.Helper()
	evs, err := domain.NewEvents(rosterClock, ps...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(context.Background(), stream, eventstore.Any(), evs...); err != nil {
		t.Fatal(err)
	}
}

// archiveCatchUp applies what the log holds beyond p's checkpoint, one
// event per Apply or, if batched, up to 100 at once.
func archiveCatchUp(t *testing.T, store eventstore.Store, p *Archive, batched bool) {
	t.Helper()
	ctx := context.Background()
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
			return
		}
		if batched {
			if err := p.Apply(ctx, evs); err != nil {
				t.Fatalf("apply %d events: %v", len(evs), err)
			}
			continue
		}
		for _, ev := range evs {
			if err := p.Apply(ctx, []eventstore.RecordedEvent{ev}); err != nil {
				t.Fatalf("apply %s: %v", ev.Type, err)
			}
		}
	}
}

// archiveView is everything the index answers for one user.
type archiveView struct {
	All, WithA, WithB, Pending []ArchiveEntry
	Count, CountA, CountB      int
}

func archiveViewOf(t *testing.T, p *Archive, user string) archiveView {
	t.Helper()
	ctx := context.Background()
	u := rosterJID(t, user)
	var v archiveView
	page := func(r ArchiveRange) []ArchiveEntry {
		pg, err := p.Page(ctx, u, r, 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		return pg.Entries
	}
	count := func(r ArchiveRange) int {
		n, err := p.Count(ctx, u, r)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	v.All, v.WithA, v.WithB = page(ArchiveRange{}), page(ArchiveRange{Term: term('a')}), page(ArchiveRange{Term: term('b')})
	v.Count, v.CountA, v.CountB = count(ArchiveRange{}), count(ArchiveRange{Term: term('a')}), count(ArchiveRange{Term: term('b')})
	var err error
	if v.Pending, err = p.Unindexed(ctx, u, uuid.Nil, 1000); err != nil {
		t.Fatal(err)
	}
	return v
}

func ids(es []ArchiveEntry) []uuid.UUID {
	var out []uuid.UUID
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// TestArchiveIndex applies the same log one event at a time and in
// batches: a batch must read what its earlier events wrote (an id stored
// and then indexed or forgotten within one batch).
func TestArchiveIndex(t *testing.T) {
	for _, batched := range []bool{false, true} {
		name := "one event per batch"
		if batched {
			name = "batched"
		}
		t.Run(name, func(t *testing.T) { testArchiveIndex(t, batched) })
	}
}

func testArchiveIndex(t *testing.T, batched bool) {
	ctx := context.Background()
	store, p := newArchiveIndex(t)
	alice := "archive-alice@example.org"
	stored := archiveStored
	appendArchive(t, store, alice,
		stored(1, term('a')), stored(2, term('b')), stored(3, nil), stored(4, term('a')), stored(5, nil),
		stored(1, term('b'))) // an id stored twice keeps its first entry
	appendArchive(t, store, "archive-bob@example.org", stored(9, term('a')))
	appendArchive(t, store, "roster-alice@example.org", domain.RosterRequestReceived{JID: "x@y.example"})
	archiveCatchUp(t, store, p, batched)

	v := archiveViewOf(t, p, "alice@example.org")
	if got := ids(v.All); !reflect.DeepEqual(got, []uuid.UUID{archiveID(1), archiveID(2), archiveID(3), archiveID(4), archiveID(5)}) {
		t.Fatalf("all: %v", got)
	}
	if v.All[2].Revision != 2 || v.All[2].Term != nil || !bytes.Equal(v.All[3].Term, term('a')) ||
		v.All[4].KeyID != archiveID(0) || !bytes.Equal(v.All[4].Sealed, []byte{1}) {
		t.Fatalf("entries: %+v", v.All)
	}
	if got := ids(v.WithA); !reflect.DeepEqual(got, []uuid.UUID{archiveID(1), archiveID(4)}) || v.CountA != 2 || v.Count != 5 {
		t.Fatalf("with a: %v, count %d/%d", got, v.CountA, v.Count)
	}
	if got := ids(v.WithB); !reflect.DeepEqual(got, []uuid.UUID{archiveID(2)}) || v.CountB != 1 {
		t.Fatalf("with b: %v, count %d", got, v.CountB)
	}
	if got := ids(v.Pending); !reflect.DeepEqual(got, []uuid.UUID{archiveID(3), archiveID(5)}) || v.Pending[1].Revision != 4 {
		t.Fatalf("pending: %+v", v.Pending)
	}

	// Indexed at login, then partly forgotten.
	appendArchive(t, store, alice,
		domain.ArchivePartnerIndexed{Entries: []domain.ArchiveIndexEntry{
			{ArchiveID: archiveID(3), Index: term('b')}, {ArchiveID: archiveID(5), Index: term('a')},
			{ArchiveID: archiveID(3), Index: term('b')}, // twice in one event counts once
			{ArchiveID: archiveID(1), Index: term('b')}, // already indexed: ignored
		}},
		domain.ArchiveForgotten{IDs: []uuid.UUID{archiveID(2)}, Ranges: []domain.ArchiveRange{{From: archiveID(4), To: archiveID(4)}}},
	)
	archiveCatchUp(t, store, p, batched)
	v = archiveViewOf(t, p, "alice@example.org")
	if got := ids(v.All); !reflect.DeepEqual(got, []uuid.UUID{archiveID(1), archiveID(3), archiveID(5)}) || v.Count != 3 {
		t.Fatalf("after forgetting: %v, count %d", got, v.Count)
	}
	if got := ids(v.WithA); !reflect.DeepEqual(got, []uuid.UUID{archiveID(1), archiveID(5)}) || v.CountA != 2 {
		t.Fatalf("with a: %v count %d", got, v.CountA)
	}
	if got := ids(v.WithB); !reflect.DeepEqual(got, []uuid.UUID{archiveID(3)}) || v.CountB != 1 {
		t.Fatalf("with b: %v count %d", got, v.CountB)
	}
	if len(v.Pending) != 0 {
		t.Fatalf("still pending: %v", v.Pending)
	}

	// Paging by range and backwards.
	u := rosterJID(t, "alice@example.org")
	pg, err := p.Page(ctx, u, ArchiveRange{From: archiveID(2)}, 1, false)
	if err != nil || !reflect.DeepEqual(ids(pg.Entries), []uuid.UUID{archiveID(3)}) || !pg.More {
		t.Fatalf("from 2, one: %+v %v", pg, err)
	}
	pg, err = p.Page(ctx, u, ArchiveRange{To: archiveID(4)}, 5, true)
	if err != nil || !reflect.DeepEqual(ids(pg.Entries), []uuid.UUID{archiveID(1), archiveID(3)}) || pg.More {
		t.Fatalf("to 4, backwards: %+v %v", pg, err)
	}
	if n, _ := p.Count(ctx, u, ArchiveRange{From: archiveID(2), To: archiveID(5)}); n != 2 {
		t.Fatalf("count of a range: %d", n)
	}

	// A rebuild from the log gives the same index.
	before := archiveViewOf(t, p, "alice@example.org")
	if err := p.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if v := archiveViewOf(t, p, "alice@example.org"); len(v.All) != 0 {
		t.Fatal("reset left entries")
	}
	archiveCatchUp(t, store, p, batched)
	if after := archiveViewOf(t, p, "alice@example.org"); !reflect.DeepEqual(before, after) {
		t.Fatalf("rebuilt index differs:\n%+v\n%+v", before, after)
	}

	// Deleting the account drops its index, and only its.
	appendArchive(t, store, "account-alice@example.org", domain.AccountDeleted{})
	archiveCatchUp(t, store, p, batched)
	if v := archiveViewOf(t, p, "alice@example.org"); len(v.All) != 0 || v.Count != 0 || v.CountA != 0 {
		t.Fatalf("after account deletion: %+v", v)
	}
	if v := archiveViewOf(t, p, "bob@example.org"); len(v.All) != 1 {
		t.Fatalf("bob's index: %+v", v)
	}
}

// TestArchiveRangeCountKept: a count of a range bounded by ids walks the
// range once and is then kept, and every change to that user's index
// (a message stored, indexed or forgotten, a rebuild) makes the next
// count walk again; another user's change does not.
func TestArchiveRangeCountKept(t *testing.T) {
	ctx := context.Background()
	store, p := newArchiveIndex(t)
	alice, bob := "archive-alice@example.org", "archive-bob@example.org"
	stored := archiveStored
	appendArchive(t, store, alice, stored(1, term('a')), stored(2, term('b')), stored(3, nil), stored(4, term('a')), stored(5, term('b')))
	archiveCatchUp(t, store, p, true)

	u := rosterJID(t, "alice@example.org")
	all := ArchiveRange{From: archiveID(2), To: archiveID(10)}
	withB := ArchiveRange{Term: term('b'), From: archiveID(2), To: archiveID(10)}
	check := func(step string, r ArchiveRange, want int, walked bool) {
		t.Helper()
		before := p.walks.Load()
		n, err := p.Count(ctx, u, r)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s: count %d, want %d", step, n, want)
		}
		if got := p.walks.Load() > before; got != walked {
			t.Errorf("%s: walked the range %v, want %v", step, got, walked)
		}
	}
	check("first", all, 4, true)
	check("again", all, 4, false)
	check("with b", withB, 2, true)
	check("with b again", withB, 2, false)

	appendArchive(t, store, bob, stored(6, term('a')))
	archiveCatchUp(t, store, p, true)
	check("after bob's message", all, 4, false)

	appendArchive(t, store, alice, stored(7, term('b')))
	archiveCatchUp(t, store, p, true)
	check("after a message in the range", all, 5, true)
	check("with b, after it", withB, 3, true)

	appendArchive(t, store, alice, domain.ArchivePartnerIndexed{Entries: []domain.ArchiveIndexEntry{{ArchiveID: archiveID(3), Index: term('b')}}})
	archiveCatchUp(t, store, p, true)
	check("with b, after indexing", withB, 4, true)

	appendArchive(t, store, alice, domain.ArchiveForgotten{IDs: []uuid.UUID{archiveID(2)}})
	archiveCatchUp(t, store, p, true)
	check("after forgetting", all, 4, true)
	check("with b, after forgetting", withB, 3, true)

	if err := p.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	check("after reset", all, 0, true)
	archiveCatchUp(t, store, p, true)
	check("rebuilt", all, 4, true)
}
