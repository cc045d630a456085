package archive

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/eventstore"
)

func TestForget(t *testing.T) {
	base := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	minute := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name string
		sel  func(t *testing.T) ForgetSelection
		// forgotten says whether message i (bob on even, carol on odd)
		// is forgotten.
		forgotten func(i int) bool
	}{
		{"all", func(*testing.T) ForgetSelection { return ForgetSelection{All: true} }, func(int) bool { return true }},
		{"range", func(*testing.T) ForgetSelection { return ForgetSelection{Start: minute(5), End: minute(14)} },
			func(i int) bool { return i >= 5 && i <= 14 }},
		{"start only", func(*testing.T) ForgetSelection { return ForgetSelection{Start: minute(25)} },
			func(i int) bool { return i >= 25 }},
		{"partner, some unindexed", func(t *testing.T) ForgetSelection { return ForgetSelection{With: mustJID(t, "carol@example.org")} },
			func(i int) bool { return i%2 == 1 }},
		{"partner", func(t *testing.T) ForgetSelection { return ForgetSelection{With: mustJID(t, "bob@example.org/x")} },
			func(i int) bool { return i%2 == 0 }},
		{"partner in range", func(t *testing.T) ForgetSelection {
			return ForgetSelection{With: mustJID(t, "carol@example.org"), End: minute(9)}
		}, func(i int) bool { return i%2 == 1 && i <= 9 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			// Keys rotate every 4 records, so a selection shares keys
			// with kept records at its edges.
			e := newEnv(t, t.TempDir(), Config{MaxPageSize: 100, Rotation: envelope.RotationPolicy{MaxUses: 4}}, nil)
			alice := newAccount(t, "alice@example.org", "correct horse")
			e.provision(alice)
			e.unlock(alice)
			// The last four arrive while alice is away, so they have no
			// blind index term yet: forgetting by partner must find them
			// anyway.
			ids := make([]uuid.UUID, 34)
			for i := range ids {
				if i == 30 {
					e.keys.Release(alice.jid)
				}
				partner, dir := "bob@example.org", domain.DirectionIn
				if i%2 == 1 {
					partner, dir = "carol@example.org", domain.DirectionOut
				}
				ids[i] = idAt(minute(i), uint64(i))
				if err := e.svc.StoreWithID(ctx, ids[i], alice.jid, mustJID(t, partner), stanza(partner, "alice@example.org", "hi"), dir, minute(i)); err != nil {
					t.Fatal(err)
				}
			}
			e.unlock(alice)

			res, err := e.svc.Forget(ctx, alice.jid, tc.sel(t))
			if err != nil {
				t.Fatal(err)
			}
			var gone, kept []uuid.UUID
			for i, id := range ids {
				if tc.forgotten(i) {
					gone = append(gone, id)
				} else {
					kept = append(kept, id)
				}
			}
			if res.Count != len(gone) || res.First != gone[0] || res.Last != gone[len(gone)-1] {
				t.Errorf("result %+v, want %d from %s to %s", res, len(gone), gone[0], gone[len(gone)-1])
			}
			if res.KeysDeleted == 0 {
				t.Error("no key deleted")
			}

			p, err := e.svc.Query(ctx, alice.jid, Query{Max: 100})
			if err != nil {
				t.Fatal(err)
			}
			var got []uuid.UUID
			for _, m := range p.Messages {
				if m.Err != nil {
					t.Errorf("kept message %s unreadable: %v", m.ID, m.Err)
				}
				got = append(got, m.ID)
			}
			if !slices.Equal(got, kept) || p.Count != len(kept) {
				t.Fatalf("after forget: %d messages (count %d), want %d", len(got), p.Count, len(kept))
			}

			// At rest: every copy in the log of a forgotten record names
			// a key the key store no longer has, and so does the old copy
			// of every re-sealed record.
			evs, err := e.store.ReadStream(ctx, domain.ArchiveStream(alice.jid), 0, eventstore.Forwards, math.MaxInt)
			if err != nil {
				t.Fatal(err)
			}
			copies := map[uuid.UUID]int{}
			for _, ev := range evs {
				if ev.Type != domain.TypeArchiveMessageStored {
					continue
				}
				pl, err := domain.Decode(ev.Event)
				if err != nil {
					t.Fatal(err)
				}
				ms := pl.(domain.ArchiveMessageStored)
				_, ok, err := e.ks.DataKey(ctx, alice.jid.String(), ms.KeyID)
				if err != nil {
					t.Fatal(err)
				}
				copies[ms.ArchiveID]++
				if slices.Contains(gone, ms.ArchiveID) && ok {
					t.Errorf("forgotten record %s: key %s still in the key store", ms.ArchiveID, ms.KeyID)
				}
				if ok {
					copies[ms.ArchiveID] += 100 // a readable copy
				}
			}
			// A kept record has exactly one readable copy; one with two
			// copies was sealed again.
			resealed := 0
			for _, id := range kept {
				if copies[id] < 100 || copies[id] >= 200 {
					t.Errorf("kept record %s: copies %d", id, copies[id])
				}
				if copies[id] > 101 {
					resealed++
				}
			}
			if res.Resealed != resealed {
				t.Errorf("resealed %d, the log shows %d", res.Resealed, resealed)
			}
			if tc.name != "all" && resealed == 0 {
				t.Error("no record shared a key with a forgotten one: the test proves nothing about re-sealing")
			}
		})
	}
}

func TestForgetRefuses(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	if _, err := e.svc.Forget(ctx, alice.jid, ForgetSelection{All: true}); !errors.Is(err, ErrLocked) {
		t.Errorf("locked: %v, want ErrLocked", err)
	}
	e.unlock(alice)
	if _, err := e.svc.Forget(ctx, alice.jid, ForgetSelection{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty selection: %v, want ErrInvalid", err)
	}
	now := time.Now()
	if _, err := e.svc.Forget(ctx, alice.jid, ForgetSelection{Start: now, End: now.Add(-time.Hour)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("end before start: %v, want ErrInvalid", err)
	}
}

func TestSinceAcrossForget(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{Rotation: envelope.RotationPolicy{MaxUses: 4}}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	e.unlock(alice)
	base := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	ids := history(t, e, alice, base, 10)

	// read collects everything from cursor, max at a time, and the
	// cursor after each message.
	read := func(cursor uint64, max int) ([]uuid.UUID, []uint64) {
		t.Helper()
		var got []uuid.UUID
		var cursors []uint64
		for {
			ch, err := e.svc.Since(ctx, alice.jid, cursor, max)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range ch.Changes {
				if c.Err != nil {
					t.Fatalf("%s: %v", c.ID, c.Err)
				}
				got = append(got, c.ID)
				cursors = append(cursors, c.Next)
			}
			if ch.Next < cursor {
				t.Fatalf("cursor went back from %d to %d", cursor, ch.Next)
			}
			cursor = ch.Next
			if !ch.More {
				return got, cursors
			}
		}
	}
	got, cursors := read(0, 3)
	if !slices.Equal(got, ids) {
		t.Fatalf("before forget: %v, want %v", got, ids)
	}
	if _, err := e.svc.Forget(ctx, alice.jid, ForgetSelection{Start: base.Add(3 * time.Minute), End: base.Add(5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(ids[:3], ids[6:])
	tests := []struct {
		name   string
		cursor uint64
		want   []uuid.UUID
	}{
		{"from the start", 0, want},
		{"from after message 4", cursors[4], ids[6:]},
		{"from after message 1", cursors[1], slices.Concat(ids[2:3], ids[6:])},
		{"from the end", cursors[9], nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := read(tc.cursor, 2)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// A cursor inside the append that sealed records again: each cursor
	// of the stream gives the records after it once.
	head, _, err := e.svc.lastRevision(ctx, domain.ArchiveStream(alice.jid))
	if err != nil {
		t.Fatal(err)
	}
	for c := cursors[9]; c <= head+1; c++ {
		if got, _ := read(c, 5); len(got) != 0 {
			t.Errorf("cursor %d after the last message: got %v", c, got)
		}
	}
	id, err := e.svc.Store(ctx, alice.jid, mustJID(t, "bob@example.org"), stanza("bob@example.org", "alice@example.org", "new"), domain.DirectionIn, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for c := cursors[9]; c <= head+1; c++ {
		if got, _ := read(c, 5); !slices.Equal(got, []uuid.UUID{id}) {
			t.Errorf("cursor %d: got %v, want the new message once", c, got)
		}
	}
}
