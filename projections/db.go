package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

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
	// counts caches counters (Txn.Add) as last committed, by full key:
	// adding to one is then a blind write. A counter written as merge
	// operands instead read back the sum of every operand not yet
	// compacted (100 000 of them made a MAM page 60 times slower), and a
	// counter read from Pebble for every add cost a lookup per message.
	counts map[string]int64
}

// maxCachedCounts bounds the counter cache; past it the cache starts over.
const maxCachedCounts = 1 << 16

// skipped is a checkpoint not yet written.
type skipped struct {
	pos eventstore.Position
	n   int
}

// checkpointEvery bounds how many events a projection's stored checkpoint
// may lag behind for events that changed nothing.
const checkpointEvery = 256

// OpenDB opens (creating if needed) the projection store in dir. A store
// written with options this version cannot open (an older counter format)
// is emptied: projections are derived data, and the Runner rebuilds them
// from the log.
func OpenDB(dir string) (*DB, error) {
	// Projections do a point lookup or two per event (does this id exist):
	// bloom filters answer "absent" without reading a block, and a block
	// cache larger than Pebble's 8 MiB keeps the present ones in memory.
	// Without both, the archive index spent a third of the server's CPU in
	// pread under load.
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	opts := &pebble.Options{Logger: quietLogger{}, Cache: cache, MemTableSize: 32 << 20, Merger: counterMerger()}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if err := dropIncompatible(dir, opts); err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", dir, err)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", dir, err)
	}
	return &DB{db: db, skipped: map[string]skipped{}, counts: map[string]int64{}}, nil
}

// dropIncompatible empties dir if it holds a store that opts cannot open.
func dropIncompatible(dir string, opts *pebble.Options) error {
	desc, err := pebble.Peek(dir, vfs.Default)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !desc.Exists || desc.OptionsFilename == "" {
		return nil
	}
	prev, err := os.ReadFile(desc.OptionsFilename)
	if err != nil {
		return err
	}
	check := opts.Clone()
	check.EnsureDefaults()
	if check.CheckCompatibility(dir, string(prev)) == nil {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// counterMerger adds up counters: 8-byte big-endian two's-complement
// values. Counters are written whole now (see DB.counts); the merger stays
// so that a store holding operands from an earlier version still reads.
func counterMerger() *pebble.Merger {
	return &pebble.Merger{
		Name: "verlauf.counter.v1",
		Merge: func(_, value []byte) (pebble.ValueMerger, error) {
			n, err := decodeCounter(value)
			return &counterSum{n: n}, err
		},
	}
}

type counterSum struct{ n int64 }

func (c *counterSum) MergeNewer(value []byte) error {
	n, err := decodeCounter(value)
	c.n += n
	return err
}

func (c *counterSum) MergeOlder(value []byte) error { return c.MergeNewer(value) }

func (c *counterSum) Finish(bool) ([]byte, io.Closer, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(c.n)), nil, nil
}

// ErrCorruptCounter is returned for a counter that is not 8 bytes.
var ErrCorruptCounter = errors.New("projections: corrupt counter")

func decodeCounter(v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w (%d bytes)", ErrCorruptCounter, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
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
	return get(d.db, proj, key)
}

func get(r pebble.Reader, proj string, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(dataKey(proj, key))
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

// Counter reads a counter of proj written with Txn.Add (0 if absent).
func (d *DB) Counter(proj string, key []byte) (int64, error) {
	v, ok, err := d.Get(proj, key)
	if err != nil || !ok {
		return 0, err
	}
	return decodeCounter(v)
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

// Txn collects the writes of one Apply. Its reads see its own writes.
type Txn struct {
	proj string
	d    *DB
	b    *pebble.Batch // made at the first read or write
	// counts are the counters this batch wrote, by full key, and dropped
	// the keys it deleted; stale is set by DeletePrefix, after which the
	// DB's cache is not consulted, and is dropped whole at commit.
	counts  map[string]int64
	dropped map[string]bool
	stale   bool
}

func (t *Txn) batch() *pebble.Batch {
	if t.b == nil {
		t.b = t.d.db.NewIndexedBatch()
	}
	return t.b
}

// reader is what reads in t go to: the batch over the store.
func (t *Txn) reader() pebble.Reader { return t.batch() }

// Set writes key=value in the projection's key space.
func (t *Txn) Set(key, value []byte) error { return t.batch().Set(dataKey(t.proj, key), value, nil) }

// Delete removes key.
func (t *Txn) Delete(key []byte) error {
	k := dataKey(t.proj, key)
	delete(t.counts, string(k))
	if t.dropped == nil {
		t.dropped = map[string]bool{}
	}
	t.dropped[string(k)] = true // it may be a cached counter
	return t.batch().Delete(k, nil)
}

// DeletePrefix removes every key that starts with prefix.
func (t *Txn) DeletePrefix(prefix []byte) error {
	k := dataKey(t.proj, prefix)
	clear(t.counts)
	t.stale = true
	return t.batch().DeleteRange(k, prefixEnd(k), nil)
}

// Get reads key, as this transaction has left it.
func (t *Txn) Get(key []byte) ([]byte, bool, error) { return get(t.reader(), t.proj, key) }

// Add adds delta to the counter at key (see DB.Counter). The value comes
// from this batch, the DB's cache of committed counters, or (the first
// time) the store. A counter is written only with Add, and removed with
// Delete or DeletePrefix.
func (t *Txn) Add(key []byte, delta int64) error {
	k := dataKey(t.proj, key)
	n, ok := t.counts[string(k)]
	if !ok && !t.stale && !t.dropped[string(k)] {
		t.d.mu.Lock()
		n, ok = t.d.counts[string(k)]
		t.d.mu.Unlock()
	}
	if !ok {
		v, closer, err := t.batch().Get(k)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return fmt.Errorf("projections: counter: %w", err)
		default:
			n, err = decodeCounter(v)
			closer.Close()
			if err != nil {
				return err
			}
		}
	}
	n += delta
	if t.counts == nil {
		t.counts = map[string]int64{}
	}
	t.counts[string(k)] = n
	return t.batch().Set(k, binary.BigEndian.AppendUint64(nil, uint64(n)), nil)
}

// Apply folds evs, in order, into proj with fn, and commits what they
// wrote together with the last event's position as proj's checkpoint: all
// of it or, on an error, none of it. Events for which fn neither reads nor
// writes move the checkpoint in memory only (see DB).
func (d *DB) Apply(proj string, evs []eventstore.RecordedEvent, fn func(*Txn, eventstore.RecordedEvent) error) error {
	if len(evs) == 0 {
		return nil
	}
	tx := &Txn{proj: proj, d: d}
	for _, ev := range evs {
		if err := fn(tx, ev); err != nil {
			tx.close()
			return fmt.Errorf("%s (%s@%d): %w", ev.Position, ev.Stream, ev.Revision, err)
		}
	}
	return d.commit(tx, evs[len(evs)-1].Position, len(evs))
}

func (t *Txn) close() {
	if t.b != nil {
		t.b.Close()
	}
}

// commit writes tx and pos as proj's checkpoint; n is the number of events
// tx stands for. A tx without a batch changed nothing.
func (d *DB) commit(tx *Txn, pos eventstore.Position, n int) error {
	if tx.b == nil {
		d.mu.Lock()
		sk := d.skipped[tx.proj]
		sk.pos, sk.n = pos, sk.n+n
		if sk.n < checkpointEvery {
			d.skipped[tx.proj] = sk
			d.mu.Unlock()
			return nil
		}
		delete(d.skipped, tx.proj)
		d.mu.Unlock()
	}
	b := tx.batch()
	defer b.Close()
	if err := b.Set(checkpointKey(tx.proj), encodeCheckpoint(pos), nil); err != nil {
		return fmt.Errorf("projections: update %s: %w", tx.proj, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("projections: update %s: %w", tx.proj, err)
	}
	// The Runner applies one batch at a time per projection, so no later
	// skipped position can be lost here.
	d.mu.Lock()
	delete(d.skipped, tx.proj)
	if tx.stale || len(d.counts)+len(tx.counts) > maxCachedCounts {
		clear(d.counts)
	}
	for k := range tx.dropped {
		delete(d.counts, k)
	}
	for k, n := range tx.counts {
		d.counts[k] = n
	}
	d.mu.Unlock()
	return nil
}

// Reset drops every key and the checkpoint of proj.
func (d *DB) Reset(proj string) error {
	d.mu.Lock()
	delete(d.skipped, proj)
	clear(d.counts)
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
