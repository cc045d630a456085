package projections

import (
	"testing"

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
		if err := db.Update("p", pos(i), nil); err != nil {
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
	if err := db.Update("p", pos(11), func(tx *Txn) error { return tx.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if stored, err := storedCheckpoint(db, "p"); err != nil || stored != pos(11) {
		t.Fatalf("stored checkpoint after a change = %v, %v; want %v", stored, err, pos(11))
	}
	// A long run of unchanged events is written every checkpointEvery.
	last := uint64(11)
	for range checkpointEvery {
		last++
		if err := db.Update("p", pos(last), nil); err != nil {
			t.Fatal(err)
		}
	}
	if stored, err := storedCheckpoint(db, "p"); err != nil || stored != pos(last) {
		t.Fatalf("stored checkpoint after %d unchanged events = %v, %v; want %v", checkpointEvery, stored, err, pos(last))
	}
	last++
	if err := db.Update("p", pos(last), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
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
