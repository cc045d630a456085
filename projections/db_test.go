package projections

import (
	"errors"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"verlauf.im/verlauf/eventstore"
)

func pos(n uint64) eventstore.Position { return eventstore.Position{Commit: n, Prepare: n} }

// TestCheckpointOfUnchangedEvents checks that events that change nothing
// move the checkpoint without a write each, that Close writes it, and that
// a change writes it at once.
func TestCheckpointOfUnchangedEvents(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 10; i++ {
		if err := update(db, "p", pos(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if cp, err := db.Checkpoint("p"); err != nil || cp != pos(10) {
		t.Fatalf("checkpoint in memory = %v, %v; want %v", cp, err, pos(10))
	}
	// Stored: nothing yet, since fewer than checkpointEvery events passed.
	if stored, err := storedCheckpoint(db, "p"); err != nil || stored != eventstore.Start {
		t.Fatalf("stored checkpoint = %v, %v; want none yet", stored, err)
	}
	// A change writes state and checkpoint together.
	if err := update(db, "p", pos(11), func(tx *Txn) error { return tx.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if stored, err := storedCheckpoint(db, "p"); err != nil || stored != pos(11) {
		t.Fatalf("stored checkpoint after a change = %v, %v; want %v", stored, err, pos(11))
	}
	// A long run of unchanged events is written every checkpointEvery.
	last := uint64(11)
	for range checkpointEvery {
		last++
		if err := update(db, "p", pos(last), nil); err != nil {
			t.Fatal(err)
		}
	}
	if stored, err := storedCheckpoint(db, "p"); err != nil || stored != pos(last) {
		t.Fatalf("stored checkpoint after %d unchanged events = %v, %v; want %v", checkpointEvery, stored, err, pos(last))
	}
	last++
	if err := update(db, "p", pos(last), nil); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, dir)
	defer db.Close()
	if cp, err := db.Checkpoint("p"); err != nil || cp != pos(last) {
		t.Fatalf("checkpoint after Close and reopen = %v, %v; want %v", cp, err, pos(last))
	}
	if v, ok, err := db.Get("p", []byte("k")); err != nil || !ok || string(v) != "v" {
		t.Fatalf("state after reopen = %q, %v, %v", v, ok, err)
	}
}

// storedCheckpoint reads the checkpoint as written, bypassing memory.
func storedCheckpoint(db *DB, proj string) (eventstore.Position, error) {
	db.mu.Lock()
	sk, ok := db.skipped[proj]
	delete(db.skipped, proj)
	db.mu.Unlock()
	defer func() {
		if ok {
			db.mu.Lock()
			db.skipped[proj] = sk
			db.mu.Unlock()
		}
	}()
	return db.Checkpoint(proj)
}

// TestCounters checks that Add adds without a read, on top of a Set base
// and across batches, and that a failed Apply leaves nothing behind.
func TestCounters(t *testing.T) {
	db, err := OpenDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k := []byte("n")
	counter := func() int64 {
		t.Helper()
		n, err := db.Counter("p", k)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := counter(); n != 0 {
		t.Fatalf("absent counter = %d", n)
	}
	steps := []struct {
		name string
		fn   func(tx *Txn) error
		want int64
	}{
		{"add", func(tx *Txn) error { return tx.Add(k, 3) }, 3},
		{"add twice in one batch", func(tx *Txn) error {
			if err := tx.Add(k, 2); err != nil {
				return err
			}
			return tx.Add(k, -1)
		}, 4},
		{"below zero", func(tx *Txn) error { return tx.Add(k, -6) }, -2},
		{"delete", func(tx *Txn) error { return tx.Delete(k) }, 0},
		{"add after delete", func(tx *Txn) error { return tx.Add(k, 3) }, 3},
		{"add, delete and add in one batch", func(tx *Txn) error {
			if err := tx.Add(k, 2); err != nil {
				return err
			}
			if err := tx.Delete(k); err != nil {
				return err
			}
			return tx.Add(k, 5)
		}, 5},
		{"delete a range and add in one batch", func(tx *Txn) error {
			if err := tx.Add(k, 4); err != nil {
				return err
			}
			if err := tx.DeletePrefix(nil); err != nil {
				return err
			}
			return tx.Add(k, 1)
		}, 1},
	}
	for i, st := range steps {
		if err := update(db, "p", pos(uint64(i+1)), st.fn); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if n := counter(); n != st.want {
			t.Fatalf("%s: counter = %d, want %d", st.name, n, st.want)
		}
	}
	// A read inside the batch sees the batch's own additions.
	evs := []eventstore.RecordedEvent{{Position: pos(20)}, {Position: pos(21)}, {Position: pos(22)}}
	seen := []int64{}
	boom := errors.New("boom")
	err = db.Apply("p", evs, func(tx *Txn, ev eventstore.RecordedEvent) error {
		if err := tx.Add(k, 5); err != nil {
			return err
		}
		v, _, err := tx.Get(k)
		if err != nil {
			return err
		}
		n, _ := decodeCounter(v)
		seen = append(seen, n)
		if ev.Position == pos(22) {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || !reflect.DeepEqual(seen, []int64{6, 11, 16}) {
		t.Fatalf("Apply = %v, seen %v; want boom after 6, 11, 16", err, seen)
	}
	if n := counter(); n != 1 {
		t.Fatalf("counter after a failed batch = %d, want 1 (unchanged)", n)
	}
	if cp, _ := db.Checkpoint("p"); cp != pos(uint64(len(steps))) {
		t.Fatalf("checkpoint after a failed batch = %v, want %v", cp, pos(uint64(len(steps))))
	}
	// The failed batch left the cache alone too.
	if err := update(db, "p", pos(30), func(tx *Txn) error { return tx.Add(k, 1) }); err != nil {
		t.Fatal(err)
	}
	if n := counter(); n != 2 {
		t.Fatalf("counter after a failed batch and an add = %d, want 2", n)
	}
}

// A projection store written with options this version cannot open (the
// default merger, before counters were merged) is emptied and rebuilt,
// not refused.
func TestOpenDropsIncompatibleStore(t *testing.T) {
	dir := t.TempDir()
	old, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Set(checkpointKey("p"), encodeCheckpoint(pos(7)), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	// Pebble itself refuses it.
	if db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}, Merger: counterMerger()}); err == nil {
		db.Close()
		t.Fatal("pebble opened a store of another merger; the test no longer tests anything")
	}
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := db.Checkpoint("p"); err != nil || cp != eventstore.Start {
		t.Fatalf("checkpoint = %v, %v; want the start (rebuild)", cp, err)
	}
	if err := update(db, "p", pos(1), func(tx *Txn) error { return tx.Add([]byte("n"), 1) }); err != nil {
		t.Fatal(err)
	}
	// The rebuilt store is kept on the next open.
	db = reopen(t, db, dir)
	defer db.Close()
	if n, err := db.Counter("p", []byte("n")); err != nil || n != 1 {
		t.Fatalf("counter after reopen = %d, %v; want 1", n, err)
	}
}

// reopen closes db and opens its directory again.
func reopen(t *testing.T, db *DB, dir string) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// update applies one event at p to proj with fn (nil: an event that
// changes nothing in proj).
func update(db *DB, proj string, p eventstore.Position, fn func(*Txn) error) error {
	return db.Apply(proj, []eventstore.RecordedEvent{{Position: p}}, func(tx *Txn, _ eventstore.RecordedEvent) error {
		if fn == nil {
			return nil
		}
		return fn(tx)
	})
}
