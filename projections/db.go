package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"verlauf.im/verlauf/eventstore"
)

// DB is the local key-value store that the built-in projections keep their
// read models in. Each projection owns the keys under its own name, and its
// checkpoint lives beside them, so one batch records a state change and the
// position that caused it together.
//
// Writes are not synced: a projection is rebuildable, and whatever a crash
// loses, it loses state and checkpoint together, so the projection resumes
// from the older checkpoint and applies the lost events again.
//
// An event that changes nothing in a projection (most events, for most
// projections) moves its checkpoint in memory only; the checkpoint is
// written with the projection's next change, after checkpointEvery such
// events, or at Close. A crash then replays at most that many events that
// changed nothing, which changes nothing. Writing each of them cost every
// projection a Pebble commit per event in the log.
type DB struct {
	db *pebble.DB

	mu      sync.Mutex
	skipped map[string]skipped // by projection
}

// skipped is a checkpoint not yet written.
type skipped struct {
	pos eventstore.Position
	n   int
}

// checkpointEvery bounds how many events a projection's stored checkpoint
// may lag behind for events that changed nothing.
const checkpointEvery = 256

// OpenDB opens (creating if needed) the projection store in dir.
func OpenDB(dir string) (*DB, error) {
	// Projections do a point lookup or two per event (does this id exist,
	// what is this user's count): bloom filters answer "absent" without
	// reading a block, and a block cache larger than Pebble's 8 MiB keeps
	// the present ones in memory. Without both, the archive index spent a
	// third of the server's CPU in pread under load.
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	opts := &pebble.Options{Logger: quietLogger{}, Cache: cache, MemTableSize: 32 << 20}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", dir, err)
	}
	return &DB{db: db, skipped: map[string]skipped{}}, nil
}

// Close writes the checkpoints held in memory and closes the store.
func (d *DB) Close() error {
	d.mu.Lock()
	b := d.db.NewBatch()
	for proj, sk := range d.skipped {
		_ = b.Set(checkpointKey(proj), encodeCheckpoint(sk.pos), nil)
	}
	clear(d.skipped)
	d.mu.Unlock()
	err := b.Commit(pebble.Sync)
	b.Close()
	if cerr := d.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Key layout: "d/<projection>\x00<key>" for data, "c/<projection>" for the
// checkpoint.
func dataKey(proj string, key []byte) []byte {
	k := make([]byte, 0, 3+len(proj)+len(key))
	k = append(k, 'd', '/')
	k = append(k, proj...)
	k = append(k, 0)
	return append(k, key...)
}

func checkpointKey(proj string) []byte { return append([]byte("c/"), proj...) }

func encodeCheckpoint(pos eventstore.Position) []byte {
	var cp [16]byte
	binary.BigEndian.PutUint64(cp[:8], pos.Commit)
	binary.BigEndian.PutUint64(cp[8:], pos.Prepare)
	return cp[:]
}

// Checkpoint reads the position of proj.
func (d *DB) Checkpoint(proj string) (eventstore.Position, error) {
	d.mu.Lock()
	sk, ok := d.skipped[proj]
	d.mu.Unlock()
	if ok {
		return sk.pos, nil
	}
	v, closer, err := d.db.Get(checkpointKey(proj))
	if errors.Is(err, pebble.ErrNotFound) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Start, fmt.Errorf("projections: checkpoint %s: %w", proj, err)
	}
	defer closer.Close()
	if len(v) != 16 {
		return eventstore.Start, fmt.Errorf("projections: checkpoint %s: corrupt (%d bytes)", proj, len(v))
	}
	return eventstore.Position{
		Commit:  binary.BigEndian.Uint64(v[:8]),
		Prepare: binary.BigEndian.Uint64(v[8:]),
	}, nil
}

// Get reads one key of proj.
func (d *DB) Get(proj string, key []byte) ([]byte, bool, error) {
	v, closer, err := d.db.Get(dataKey(proj, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("projections: get %s: %w", proj, err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

// Scan calls fn for every key of proj that starts with prefix, in key order,
// until fn returns false. The slices are only valid during the call.
func (d *DB) Scan(proj string, prefix []byte, fn func(key, value []byte) bool) error {
	lower := dataKey(proj, prefix)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return fmt.Errorf("projections: scan %s: %w", proj, err)
	}
	skip := len(dataKey(proj, nil))
	for ok := it.First(); ok; ok = it.Next() {
		if !fn(it.Key()[skip:], it.Value()) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("projections: scan %s: %w", proj, err)
	}
	return nil
}

// Txn collects the writes of one Apply.
type Txn struct {
	proj string
	b    *pebble.Batch
}

// Set writes key=value in the projection's key space.
func (t *Txn) Set(key, value []byte) error { return t.b.Set(dataKey(t.proj, key), value, nil) }

// Delete removes key.
func (t *Txn) Delete(key []byte) error { return t.b.Delete(dataKey(t.proj, key), nil) }

// DeletePrefix removes every key that starts with prefix.
func (t *Txn) DeletePrefix(prefix []byte) error {
	k := dataKey(t.proj, prefix)
	return t.b.DeleteRange(k, prefixEnd(k), nil)
}

// Update runs fn and commits its writes together with pos as proj's new
// checkpoint. A nil fn says the event changed nothing in proj: the
// checkpoint may then stay in memory for a while (see DB).
func (d *DB) Update(proj string, pos eventstore.Position, fn func(*Txn) error) error {
	if fn == nil {
		d.mu.Lock()
		sk := d.skipped[proj]
		sk.pos, sk.n = pos, sk.n+1
		if sk.n < checkpointEvery {
			d.skipped[proj] = sk
			d.mu.Unlock()
			return nil
		}
		delete(d.skipped, proj)
		d.mu.Unlock()
	}
	b := d.db.NewBatch()
	defer b.Close()
	if fn != nil {
		if err := fn(&Txn{proj: proj, b: b}); err != nil {
			return err
		}
	}
	if err := b.Set(checkpointKey(proj), encodeCheckpoint(pos), nil); err != nil {
		return fmt.Errorf("projections: update %s: %w", proj, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("projections: update %s: %w", proj, err)
	}
	if fn != nil {
		// Runner applies one event at a time per projection, so no
		// later skipped position can be lost here.
		d.mu.Lock()
		delete(d.skipped, proj)
		d.mu.Unlock()
	}
	return nil
}

// Reset drops every key and the checkpoint of proj.
func (d *DB) Reset(proj string) error {
	d.mu.Lock()
	delete(d.skipped, proj)
	d.mu.Unlock()
	b := d.db.NewBatch()
	defer b.Close()
	k := dataKey(proj, nil)
	if err := b.DeleteRange(k, prefixEnd(k), nil); err != nil {
		return fmt.Errorf("projections: reset %s: %w", proj, err)
	}
	if err := b.Delete(checkpointKey(proj), nil); err != nil {
		return fmt.Errorf("projections: reset %s: %w", proj, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("projections: reset %s: %w", proj, err)
	}
	return nil
}

// prefixEnd is the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// quietLogger keeps Pebble's informational chatter out of the server log;
// errors still surface through the returned errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
