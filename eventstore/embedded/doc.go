// Package embedded is the default eventstore.Store: an event log in a local
// directory, on Pebble (github.com/cockroachdb/pebble/v2), an LSM key-value
// store with a write-ahead log. Pebble was chosen over bbolt by measurement
// (BenchmarkEngine: ~300-byte events, fsync on, 2-core machine): with 1, 8
// and 64 concurrent writers Pebble took about 600, 2,400 and 16,000 synced
// events/s where bbolt took 160, 250 and 300 with one transaction per event,
// or 70, 510 and 3,000 with its Batch group commit. Pebble's WAL groups
// concurrent synced commits into one fsync; bbolt syncs its data pages and
// then its meta page for every transaction.
//
// # Key layout
//
// One Pebble keyspace holds three kinds of keys:
//
//	l/<seq: 8 bytes big-endian>              → record    the global log
//	s/<stream>\x00<rev: 8 bytes big-endian>  → seq       the stream index
//	m/format                                 → "1"       store metadata
//
// Sequence numbers start at 1 and have no holes; an event's Position is
// {Commit: seq, Prepare: seq}. Revisions are 0-based per stream. Big-endian
// numbers make Pebble's byte order the numeric order, so reading the log or
// a stream forwards or backwards is one iterator scan. Stream names are
// non-empty UTF-8 without NUL, which makes s/<stream>\x00 a prefix that no
// other stream's keys share. A stream's head is its last index key.
//
// # Record encoding
//
// A record is a version byte (1), then the revision (8 bytes big-endian,
// fixed so that Append can encode records before it takes its lock and
// patch the revision in), the stream name (uvarint length and bytes), the
// 16-byte event ID, the type (length and
// bytes), the schema version (varint), the time as Unix seconds (varint) and
// nanoseconds (uvarint), and the body (length and bytes). Times come back in
// UTC with their nanoseconds; the original location is not kept. Carrying
// the stream and revision in the record lets ReadAll and subscriptions
// return complete events from one scan of the log, without the index.
//
// # Appends and group commit
//
// An append takes the store's mutex, checks the expected revision against
// the stream's head, numbers the events, and hands one Pebble batch holding
// the log and index entries to Pebble's commit pipeline with
// ApplyNoSyncWait, which writes it to the WAL in sequence order; then it
// releases the mutex and waits for the WAL fsync without it. Appends that
// arrive during an fsync queue their batches behind it, and Pebble's WAL
// writer syncs all of them with the next fsync: that is the group commit,
// Pebble's own, so a burst of appends costs a few fsyncs, not one each.
// Holding the mutex over check, numbering and hand-off makes concurrent
// appends to one stream conflict correctly and keeps the WAL in sequence
// order; not holding it over the fsync is what lets appends share one.
// (A single committer goroutine gathering appends into one batch is the
// other classic design; Pebble's pipeline already does the gathering, and
// BenchmarkAppend against BenchmarkEngine shows what the store adds to it.)
// AppendMulti is the same path with several streams in one batch: the
// archive keeps both parties' copies of a message with one append.
//
// Pebble makes a batch visible to its readers before the fsync finishes.
// The store therefore keeps its own durability watermark: the highest
// sequence number whose append, and every one before it, has been synced.
// Readers (ReadStream, ReadAll, SubscribeAll, Head) never look past it, so
// no one ever sees an event that a crash could take back, and a projection
// never checkpoints a position that might later hold a different event.
// Append returns once the watermark covers its own events, so a caller
// always reads its own writes.
//
// # Subscriptions
//
// A subscription reads the log after its position in chunks, up to the
// watermark, and hands each event to the handler; when a read comes back
// short it waits for the watermark to move and reads again. Catching up and
// following live are the same loop over the same data, so there is no
// switch-over at which an event could be skipped or delivered twice. The
// wake-up channel is taken before each read, so an append published
// between the read and the wait still wakes the subscriber. Appends never
// wait for subscribers: a slow one just reads further behind. The latest
// records (tailSize) are also kept in memory by sequence number, so a
// subscriber that keeps up reads them from there; one that lags reads
// Pebble (memtable, block cache, disk). A Pebble iterator per wake-up,
// over every memtable and level, cost the pump more than the events it
// read.
//
// # Crash safety
//
// Pebble replays its WAL on open; an append acknowledged to a caller has
// been synced, so it is there after a crash. Batches are atomic in the WAL,
// so an append interrupted by a crash is either whole or absent. A failed
// WAL write or sync makes the store refuse further appends until it is
// reopened, because it can no longer tell what reached the disk.
package embedded
