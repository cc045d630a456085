package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/sirupsen/logrus"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// Options tunes the store. The zero value is a sensible default.
type Options struct {
	// CacheSize is the size in bytes of Pebble's block cache (default 64 MiB).
	CacheSize int64
	// MemTableSize is the size in bytes of one Pebble memtable (default 64 MiB).
	MemTableSize uint64
	// ReserveBytes is the free disk space below which appends are refused
	// with ErrDiskFull (default twice MemTableSize: room for a memtable
	// flush and the MANIFEST update after it); negative disables the
	// check. See the space type for why Pebble needs it.
	ReserveBytes int64
	// Log receives Pebble's own messages: background errors at error
	// level, routine events (flushes, compactions) at debug level. Nil
	// sends errors to the standard logger and drops the rest.
	Log *logrus.Entry
}

const (
	defaultCacheSize    = 64 << 20
	defaultMemTableSize = 64 << 20
	// readChunk bounds how many events one read step of a subscription
	// loads, so that a subscriber far behind does not hold a huge slice.
	readChunk = 1024
	// maxCachedHeads bounds the stream-head cache: about 100 bytes per
	// entry plus the name.
	maxCachedHeads = 1 << 16
	// tailSize is how many of the latest records the store keeps in
	// memory for subscribers (see tail): a live subscriber is a few
	// events behind, and a record is a few hundred bytes to a few KiB.
	tailSize = 1024
)

// Store is the embedded event store. It is safe for concurrent use.
type Store struct {
	db *pebble.DB

	// life is held shared by every operation that touches db and
	// exclusively by Close, so the database is never used after it closes.
	life   sync.RWMutex
	closed atomic.Bool
	done   chan struct{} // closed by Close; wakes subscriptions

	// mu serialises the revision check and sequence assignment of appends
	// and their hand-off to Pebble's commit pipeline, so that the order of
	// sequence numbers is the order of the WAL. It is not held during fsync.
	mu      sync.Mutex
	nextSeq uint64 // sequence number of the next event appended
	// heads caches the last revision of recently appended streams, so
	// that the revision check does not seek the index on every append.
	// It is only a cache (the index is the truth) and is dropped whole
	// when it outgrows maxCachedHeads.
	heads map[string]uint64
	space space
	tail  tail

	// pub guards the durability watermark and the queue of appends waiting
	// for their fsync. Lock order: mu, then pub.
	pub struct {
		sync.Mutex
		queue   []*inflight   // appends handed to Pebble, in sequence order
		notify  chan struct{} // closed and replaced whenever durable advances
		failure error         // sticky: a failed WAL write or sync
		failed  chan struct{} // closed when failure is set
	}
	// durable is the last sequence number known to be on disk: readers never
	// look past it, so no reader ever sees an event a crash could take back.
	durable atomic.Uint64
}

// inflight is one append between its hand-off to Pebble and the moment it
// becomes visible to readers.
type inflight struct {
	last    uint64
	synced  bool          // guarded by Store.pub
	visible chan struct{} // closed once the watermark covers last
}

// Open opens (creating if needed) the store in directory dir.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = defaultCacheSize
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = defaultMemTableSize
	}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		Cache:              cache,
		MemTableSize:       opts.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{log: opts.Log},
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	s := &Store{db: db, done: make(chan struct{}), heads: map[string]uint64{}}
	s.space = space{reserve: opts.ReserveBytes, free: statfsFree(dir)}
	if s.space.reserve == 0 {
		s.space.reserve = 2 * int64(opts.MemTableSize)
	}
	s.pub.notify = make(chan struct{})
	s.pub.failed = make(chan struct{})
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	return s, nil
}

// load checks the format marker and finds the last sequence number.
func (s *Store) load() error {
	v, closer, err := s.db.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := s.db.Set(formatKey, []byte(formatVersion), pebble.Sync); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		got := string(v)
		_ = closer.Close()
		if got != formatVersion {
			return fmt.Errorf("unsupported store format %q (want %q)", got, formatVersion)
		}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(0), UpperBound: logKey(math.MaxUint64)})
	if err != nil {
		return err
	}
	defer it.Close()
	var last uint64
	if it.Last() {
		if last, err = seqFromLogKey(it.Key()); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	s.nextSeq = last + 1
	s.durable.Store(last)
	return nil
}

// Close waits for in-flight operations and closes the database.
// Subscriptions end with eventstore.ErrClosed. Closing twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	close(s.done)
	s.mu.Unlock()

	s.life.Lock()
	defer s.life.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded: close: %w", err)
	}
	return nil
}

// enter admits an operation that will touch the database; the caller must
// call s.life.RUnlock when done.
func (s *Store) enter() error {
	s.life.RLock()
	if s.closed.Load() {
		s.life.RUnlock()
		return eventstore.ErrClosed
	}
	return nil
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...domain.Event) (eventstore.AppendResult, error) {
	res, err := s.AppendMulti(ctx, eventstore.StreamAppend{Stream: stream, Expected: expected, Events: events})
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return res[0], nil
}

// AppendMulti implements eventstore.Store: one Pebble batch, one place in
// the group commit, one wait for the fsync.
func (s *Store) AppendMulti(ctx context.Context, appends ...eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	for i, a := range appends {
		if err := validateStream(a.Stream); err != nil {
			return nil, err
		}
		for _, b := range appends[:i] {
			if b.Stream == a.Stream {
				return nil, fmt.Errorf("embedded: append: stream %q twice in one append", a.Stream)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.life.RUnlock()

	// Encode everything before taking the lock; under it only the
	// revisions and sequence numbers are patched in.
	type entry struct{ rec, logKey, streamKey, seq []byte }
	parts := make([][]entry, len(appends))
	size, n := 0, 0
	for i, a := range appends {
		parts[i] = make([]entry, len(a.Events))
		for j, ev := range a.Events {
			e := &parts[i][j]
			e.rec = appendRecord(make([]byte, 0, recordSize(a.Stream, ev)), a.Stream, 0, ev)
			e.logKey = logKey(0)
			e.streamKey = streamKey(a.Stream, 0)
			e.seq = seqValue(0)
			size += len(e.rec) + len(e.logKey) + len(e.streamKey) + len(e.seq) + 16
		}
		n += len(a.Events)
	}
	b := s.db.NewBatchWithSize(size)
	defer b.Close()

	s.mu.Lock()
	if err := s.failure(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	res := make([]eventstore.AppendResult, len(appends))
	revs := make([]uint64, len(appends)) // the first new revision of each stream
	for i, a := range appends {
		cur, exists, err := s.streamHead(a.Stream)
		if err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("embedded: append to %q: %w", a.Stream, err)
		}
		if !a.Expected.Check(cur, exists) {
			s.mu.Unlock()
			return nil, &eventstore.ConflictError{Stream: a.Stream, Expected: a.Expected, Actual: cur, Exists: exists}
		}
		// A part without events only checks; the head it checked may still
		// be waiting for its fsync, which is fine: it promises nothing new
		// is durable.
		res[i] = eventstore.AppendResult{NextRevision: cur, Position: position(s.durable.Load())}
		if exists {
			revs[i] = cur + 1
		}
	}
	if n == 0 {
		s.mu.Unlock()
		return res, nil
	}
	if err := s.space.check(int64(size), time.Now()); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("embedded: append to %q: %w", appends[0].Stream, err)
	}
	first := s.nextSeq
	seq := first
	for i, part := range parts {
		rev := revs[i]
		for _, e := range part {
			setRecordRevision(e.rec, rev)
			binary.BigEndian.PutUint64(e.logKey[2:], seq)
			binary.BigEndian.PutUint64(e.streamKey[len(e.streamKey)-8:], rev)
			binary.BigEndian.PutUint64(e.seq, seq)
			if err := b.Set(e.logKey, e.rec, nil); err != nil {
				s.mu.Unlock()
				return nil, err
			}
			if err := b.Set(e.streamKey, e.seq, nil); err != nil {
				s.mu.Unlock()
				return nil, err
			}
			rev++
			seq++
		}
		if len(part) > 0 {
			res[i] = eventstore.AppendResult{NextRevision: rev - 1, Position: position(seq - 1)}
		}
	}
	in := &inflight{last: seq - 1, visible: make(chan struct{})}
	s.pub.Lock()
	s.pub.queue = append(s.pub.queue, in)
	s.pub.Unlock()
	// ApplyNoSyncWait writes the batch to the WAL and makes it visible to
	// Pebble readers before it is synced; we keep our own readers behind
	// s.durable. Concurrent appends that reach this point during an fsync
	// are synced together by Pebble's WAL writer: that is the group commit.
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		s.mu.Unlock()
		return nil, s.fail(err)
	}
	s.nextSeq = seq
	seq = first
	for i, part := range parts {
		for _, e := range part {
			s.tail.put(seq, e.rec)
			seq++
		}
		if len(part) > 0 {
			if len(s.heads) >= maxCachedHeads {
				clear(s.heads)
			}
			s.heads[appends[i].Stream] = res[i].NextRevision
		}
	}
	s.mu.Unlock()

	if err := b.SyncWait(); err != nil {
		return nil, s.fail(err)
	}
	if err := s.publish(in); err != nil {
		return nil, err
	}
	return res, nil
}

// publish marks in as synced, advances the durability watermark over every
// synced append at the head of the queue, and waits until it covers in, so
// that a caller reads its own writes as soon as Append returns. Each append
// waits on its own channel: a broadcast would wake every waiting appender
// on every advance.
func (s *Store) publish(in *inflight) error {
	s.pub.Lock()
	in.synced = true
	advanced := false
	for len(s.pub.queue) > 0 && s.pub.queue[0].synced {
		head := s.pub.queue[0]
		s.durable.Store(head.last)
		close(head.visible)
		s.pub.queue[0] = nil
		s.pub.queue = s.pub.queue[1:]
		advanced = true
	}
	if advanced {
		close(s.pub.notify)
		s.pub.notify = make(chan struct{})
	}
	failed := s.pub.failed
	s.pub.Unlock()
	select {
	case <-in.visible:
		return nil
	case <-failed:
		return s.failure()
	}
}

// fail records a WAL failure. Pebble cannot tell which of the appends in
// flight reached the disk, so the store refuses further appends; reopening
// it recovers whatever the WAL holds.
func (s *Store) fail(err error) error {
	s.pub.Lock()
	defer s.pub.Unlock()
	if s.pub.failure == nil {
		s.pub.failure = fmt.Errorf("embedded: write-ahead log failed, reopen the store: %w", err)
		close(s.pub.failed)
	}
	return s.pub.failure
}

func (s *Store) failure() error {
	s.pub.Lock()
	defer s.pub.Unlock()
	return s.pub.failure
}

// waitChan returns a channel closed when the watermark next advances.
func (s *Store) waitChan() <-chan struct{} {
	s.pub.Lock()
	defer s.pub.Unlock()
	return s.pub.notify
}

// streamHead reads the stream's last revision, including appends still
// waiting for their fsync: s.mu makes those the only writers. Called with
// s.mu held.
func (s *Store) streamHead(stream string) (rev uint64, exists bool, err error) {
	if rev, ok := s.heads[stream]; ok {
		return rev, true, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: streamKeyPrefix(stream), UpperBound: streamKeyEnd(stream)})
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, false, it.Error()
	}
	rev, err = revFromStreamKey(it.Key())
	return rev, err == nil, err
}

func position(seq uint64) eventstore.Position {
	return eventstore.Position{Commit: seq, Prepare: seq}
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, dir eventstore.Direction, max int) ([]eventstore.RecordedEvent, error) {
	if err := validateStream(stream); err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, fmt.Errorf("embedded: read %q: max must be positive, got %d", stream, max)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.life.RUnlock()
	durable := s.durable.Load()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: streamKeyPrefix(stream), UpperBound: streamKeyEnd(stream)})
	if err != nil {
		return nil, fmt.Errorf("embedded: read %q: %w", stream, err)
	}
	defer it.Close()

	var ok bool
	next := it.Next
	if dir == eventstore.Backwards {
		next = it.Prev
		if from == math.MaxUint64 {
			ok = it.Last()
		} else {
			ok = it.SeekLT(streamKey(stream, from+1))
		}
	} else {
		ok = it.SeekGE(streamKey(stream, from))
	}
	// Most streams are short (preferences, a block list, a roster) and
	// are read whole with a large max: grow as needed rather than
	// allocate max up front (64 KiB for each of those loads, a third of
	// the server's allocations at startup under load).
	out := make([]eventstore.RecordedEvent, 0, min(max, 8))
	for ; ok && len(out) < max; ok = next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seq, err := seqFromValue(it.Value())
		if err != nil {
			return nil, err
		}
		if seq > durable {
			// Not yet synced: invisible. Going forwards nothing after it
			// is durable either; going backwards older events may be.
			if dir == eventstore.Backwards {
				continue
			}
			break
		}
		re, err := s.get(seq)
		if err != nil {
			return nil, fmt.Errorf("embedded: read %q: %w", stream, err)
		}
		out = append(out, re)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("embedded: read %q: %w", stream, err)
	}
	return out, nil
}

func (s *Store) get(seq uint64) (eventstore.RecordedEvent, error) {
	v, closer, err := s.db.Get(logKey(seq))
	if err != nil {
		return eventstore.RecordedEvent{}, fmt.Errorf("log entry %d: %w", seq, err)
	}
	defer closer.Close()
	return decodeRecord(seq, v)
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after eventstore.Position, max int) ([]eventstore.RecordedEvent, error) {
	if max <= 0 {
		return nil, fmt.Errorf("embedded: read all: max must be positive, got %d", max)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.life.RUnlock()
	return s.readAll(ctx, after.Commit, max, nil)
}

// readAll appends to out up to max durable events after seq. The caller
// holds s.life.
func (s *Store) readAll(ctx context.Context, after uint64, max int, out []eventstore.RecordedEvent) ([]eventstore.RecordedEvent, error) {
	durable := s.durable.Load()
	if after >= durable {
		return out, nil
	}
	if out == nil {
		out = make([]eventstore.RecordedEvent, 0, min(max, readChunk, int(durable-after)))
	}
	// A subscriber that keeps up reads from the tail in memory: a Pebble
	// iterator per wake-up, over every memtable and level, cost the pump
	// more than the events it read.
	for max > 0 && after < durable {
		rec, ok := s.tail.get(after + 1)
		if !ok {
			break
		}
		re, err := decodeRecord(after+1, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
		after++
		max--
	}
	if max == 0 || after >= durable {
		return out, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(after + 1), UpperBound: logKey(durable + 1)})
	if err != nil {
		return nil, fmt.Errorf("embedded: read all: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok && max > 0; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seq, err := seqFromLogKey(it.Key())
		if err != nil {
			return nil, err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("embedded: read all: %w", err)
		}
		re, err := decodeRecord(seq, v)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
		max--
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("embedded: read all: %w", err)
	}
	return out, nil
}

// Head implements eventstore.Store.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.Start, err
	}
	if s.closed.Load() {
		return eventstore.Start, eventstore.ErrClosed
	}
	return position(s.durable.Load()), nil
}

// pebbleLogger routes Pebble's messages to logrus, keeping its routine
// chatter out of the server's default output.
type pebbleLogger struct{ log *logrus.Entry }

func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log != nil {
		l.log.Debugf("pebble: "+format, args...)
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	if l.log != nil {
		l.log.Errorf("pebble: "+format, args...)
		return
	}
	log.Printf("pebble: "+format, args...)
}

// Fatalf is called by Pebble on invariant violations it cannot survive.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.Errorf(format, args...)
	panic(fmt.Sprintf("pebble: "+format, args...))
}

var _ eventstore.Store = (*Store)(nil)

// tail holds the latest appended records by sequence number, in a ring:
// slot seq%tailSize holds seq until tailSize later appends replace it.
// Records are immutable once appended. Readers still never read past the
// durability watermark; the tail only saves them the trip to Pebble.
type tail struct {
	mu    sync.RWMutex
	slots [tailSize]tailSlot
}

type tailSlot struct {
	seq uint64
	rec []byte
}

func (t *tail) put(seq uint64, rec []byte) {
	t.mu.Lock()
	t.slots[seq%tailSize] = tailSlot{seq: seq, rec: rec}
	t.mu.Unlock()
}

func (t *tail) get(seq uint64) ([]byte, bool) {
	t.mu.RLock()
	sl := t.slots[seq%tailSize]
	t.mu.RUnlock()
	return sl.rec, sl.rec != nil && sl.seq == seq
}
