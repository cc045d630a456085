package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// ArchiveName is the name of the MAM index projection in checkpoints and
// in Runner.WaitFor.
const ArchiveName = "archive"

// Archive is the MAM index: for every user, the archived messages in
// archive-id order (UUIDv7, hence time order), each with the revision of
// its archive.message_stored event in the user's archive stream and a copy
// of its sealed record, and a secondary index by blind index term, so that
// a `with` query reads only that partner's entries.
//
// It holds nothing in clear but what the log itself shows in clear: ids
// (with their times), stream revisions, data key ids, blind index terms
// and counts; the records are as sealed as in the log. Keeping the sealed
// copy here doubles the archive on disk, and pays for it: reading each
// record back from the log by revision (an index seek, a log read and a
// JSON decode of the event) cost about 35 µs a message, five times the
// decryption, and made a page of 50 take over a millisecond
// (BenchmarkQuery in package archive).
//
// Key layout inside the projection's key space, user being the canonical
// bare JID (which never contains NUL):
//
//	m <user> 0 <id>          revision (8) ‖ key id (16) ‖ term length (1) ‖ term ‖ sealed record
//	w <user> 0 <term> <id>   (no value) entry of the blind index
//	x <user> 0 <id>          revision: written while the user was offline, not yet indexed
//	n <user>                 number of messages (counter, see DB.Counter)
//	c <user> 0 <term>        number of messages with that partner (counter)
//	q <user>                 changes to the user's index (counter)
//
// The counters are kept with Txn.Add from a cache of their committed
// values, so archiving a message usually reads nothing but whether its id
// is there already.
//
// A range bounded by ids (a MAM query with start or end) is counted by
// walking its keys, which costs as much as the range holds. A client
// catching up pages through one such range with RSM, and each page asks
// for the same count again: a catch-up of k messages would walk k keys k/50
// times. So range counts are kept in memory, each with the value of the
// user's change counter it was taken at, and used while that is unchanged.
type Archive struct {
	db *DB

	mu     sync.Mutex
	ranges map[string]rangeCount // user, term, from, to → count
	walks  atomic.Int64          // range counts that walked keys (tests)
}

type rangeCount struct {
	seq int64
	n   int
}

// maxRangeCounts bounds the range counts kept: when full, all are
// dropped (a count is a cache entry, the next query walks again).
const maxRangeCounts = 4096

// NewArchive returns the MAM index kept in db.
func NewArchive(db *DB) *Archive { return &Archive{db: db, ranges: map[string]rangeCount{}} }

// Name implements Projection.
func (a *Archive) Name() string { return ArchiveName }

// Checkpoint implements Projection.
func (a *Archive) Checkpoint(context.Context) (eventstore.Position, error) {
	return a.db.Checkpoint(ArchiveName)
}

// Reset implements Projection.
func (a *Archive) Reset(context.Context) error {
	a.mu.Lock()
	clear(a.ranges)
	a.mu.Unlock()
	return a.db.Reset(ArchiveName)
}

const (
	archiveKindMsg     = 'm'
	archiveKindWith    = 'w'
	archiveKindPending = 'x'
	archiveKindCount   = 'n'
	archiveKindTerm    = 'c'
	archiveKindSeq     = 'q'

	// TermSize is the size of a blind index term.
	TermSize = 32
)

func archivePrefix(kind byte, user string) []byte {
	k := make([]byte, 0, 2+len(user)+TermSize+16)
	k = append(k, kind)
	k = append(k, user...)
	return append(k, 0)
}

func archiveMsgKey(user string, id uuid.UUID) []byte {
	return append(archivePrefix(archiveKindMsg, user), id[:]...)
}

func archiveWithKey(user string, term []byte, id uuid.UUID) []byte {
	return append(append(archivePrefix(archiveKindWith, user), term...), id[:]...)
}

func archivePendingKey(user string, id uuid.UUID) []byte {
	return append(archivePrefix(archiveKindPending, user), id[:]...)
}

func archiveCountKey(user string) []byte { return append([]byte{archiveKindCount}, user...) }

func archiveSeqKey(user string) []byte { return append([]byte{archiveKindSeq}, user...) }

func archiveTermKey(user string, term []byte) []byte {
	return append(archivePrefix(archiveKindTerm, user), term...)
}

// ArchiveEntry is one message of the index.
type ArchiveEntry struct {
	ID uuid.UUID
	// Revision is the revision of the message's archive.message_stored
	// event in domain.ArchiveStream(user).
	Revision uint64
	// KeyID is the data key the event names for the record.
	KeyID uuid.UUID
	// Term is the partner's blind index term, nil if not indexed yet.
	Term []byte
	// Sealed is the sealed record, as in the event.
	Sealed []byte
}

func decodeArchiveEntry(id uuid.UUID, v []byte) (ArchiveEntry, error) {
	const head = 8 + 16 + 1
	if len(v) < head || (v[head-1] != 0 && v[head-1] != TermSize) || len(v) < head+int(v[head-1]) {
		return ArchiveEntry{}, fmt.Errorf("archive projection: corrupt entry %s (%d bytes)", id, len(v))
	}
	e := ArchiveEntry{ID: id, Revision: binary.BigEndian.Uint64(v[:8]), KeyID: uuid.UUID(v[8:24])}
	n := int(v[head-1])
	if n > 0 {
		e.Term = append([]byte(nil), v[head:head+n]...)
	}
	e.Sealed = append([]byte(nil), v[head+n:]...)
	return e, nil
}

func encodeArchiveEntry(e ArchiveEntry) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+16+1+len(e.Term)+len(e.Sealed)), e.Revision)
	v = append(v, e.KeyID[:]...)
	v = append(v, byte(len(e.Term)))
	v = append(v, e.Term...)
	return append(v, e.Sealed...)
}

// Apply implements Projection.
func (a *Archive) Apply(_ context.Context, evs []eventstore.RecordedEvent) error {
	return a.db.Apply(ArchiveName, evs, a.apply)
}

func (a *Archive) apply(tx *Txn, ev eventstore.RecordedEvent) error {
	if c := domain.StreamConcern(ev.Stream); c != domain.ConcernArchive && c != domain.ConcernAccount {
		return nil
	}
	switch ev.Type {
	case domain.TypeArchiveMessageStored, domain.TypeArchivePartnerIndexed, domain.TypeArchiveForgotten, domain.TypeAccountDeleted:
	default:
		return nil
	}
	u, p, ok, err := userEvent(ev)
	if err != nil {
		return fmt.Errorf("archive projection: %w", err)
	}
	if !ok {
		return nil
	}
	// Every event below may change what a range holds: range counts
	// taken before it no longer hold. Stores that predate the counter
	// start it at the next change, which is all a count needs.
	if err := tx.Add(archiveSeqKey(u), 1); err != nil {
		return err
	}
	switch e := p.(type) {
	case domain.ArchiveMessageStored:
		return a.applyStored(tx, u, ev.Revision, e)
	case domain.ArchivePartnerIndexed:
		return a.applyIndexed(tx, u, e)
	case domain.ArchiveForgotten:
		return a.applyForgotten(tx, u, e)
	case domain.AccountDeleted:
		// Account names are never handed out again, and the keys are
		// shredded: the index of a deleted account only takes room.
		for _, kind := range []byte{archiveKindMsg, archiveKindWith, archiveKindPending, archiveKindTerm} {
			if err := tx.DeletePrefix(archivePrefix(kind, u)); err != nil {
				return err
			}
		}
		return tx.Delete(archiveCountKey(u))
	}
	return nil
}

func (a *Archive) applyStored(tx *Txn, user string, rev uint64, e domain.ArchiveMessageStored) error {
	if _, ok, err := tx.Get(archiveMsgKey(user, e.ArchiveID)); err != nil || ok {
		return err // an id stored twice keeps its first entry
	}
	entry := ArchiveEntry{ID: e.ArchiveID, Revision: rev, KeyID: e.KeyID, Sealed: e.Sealed}
	if len(e.Index) == TermSize {
		entry.Term = e.Index
		if err := tx.Set(archiveWithKey(user, e.Index, e.ArchiveID), nil); err != nil {
			return err
		}
		if err := tx.Add(archiveTermKey(user, e.Index), 1); err != nil {
			return err
		}
	} else if err := tx.Set(archivePendingKey(user, e.ArchiveID), binary.BigEndian.AppendUint64(nil, rev)); err != nil {
		return err
	}
	if err := tx.Add(archiveCountKey(user), 1); err != nil {
		return err
	}
	return tx.Set(archiveMsgKey(user, e.ArchiveID), encodeArchiveEntry(entry))
}

func (a *Archive) applyIndexed(tx *Txn, user string, e domain.ArchivePartnerIndexed) error {
	done := map[uuid.UUID]bool{}
	for _, ie := range e.Entries {
		if len(ie.Index) != TermSize || done[ie.ArchiveID] {
			continue
		}
		entry, ok, err := entryIn(tx.reader(), user, ie.ArchiveID)
		if err != nil {
			return err
		}
		if !ok || entry.Term != nil {
			continue // forgotten meanwhile, or indexed already
		}
		done[ie.ArchiveID] = true
		entry.Term = ie.Index
		if err := tx.Set(archiveMsgKey(user, ie.ArchiveID), encodeArchiveEntry(entry)); err != nil {
			return err
		}
		if err := tx.Set(archiveWithKey(user, ie.Index, ie.ArchiveID), nil); err != nil {
			return err
		}
		if err := tx.Delete(archivePendingKey(user, ie.ArchiveID)); err != nil {
			return err
		}
		if err := tx.Add(archiveTermKey(user, ie.Index), 1); err != nil {
			return err
		}
	}
	return nil
}

func (a *Archive) applyForgotten(tx *Txn, user string, e domain.ArchiveForgotten) error {
	var entries []ArchiveEntry
	for _, id := range e.IDs {
		entry, ok, err := entryIn(tx.reader(), user, id)
		if err != nil {
			return err
		}
		if ok {
			entries = append(entries, entry)
		}
	}
	for _, r := range e.Ranges {
		err := scanIn(tx.reader(), user, archiveKindMsg, nil, r.From, r.To, false, func(entry ArchiveEntry) (bool, error) {
			entries = append(entries, entry)
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	gone := map[uuid.UUID]bool{}
	for _, entry := range entries {
		if gone[entry.ID] {
			continue
		}
		gone[entry.ID] = true
		if err := tx.Delete(archiveMsgKey(user, entry.ID)); err != nil {
			return err
		}
		if entry.Term != nil {
			if err := tx.Delete(archiveWithKey(user, entry.Term, entry.ID)); err != nil {
				return err
			}
			if err := tx.Add(archiveTermKey(user, entry.Term), -1); err != nil {
				return err
			}
		} else if err := tx.Delete(archivePendingKey(user, entry.ID)); err != nil {
			return err
		}
		if err := tx.Add(archiveCountKey(user), -1); err != nil {
			return err
		}
	}
	return nil
}

// counter reads a counter; one that went below zero (it cannot, unless
// the index is damaged) counts as empty.
func (a *Archive) counter(key []byte) (int64, error) {
	n, err := a.db.Counter(ArchiveName, key)
	if err != nil {
		return 0, fmt.Errorf("archive projection: %w", err)
	}
	return max(n, 0), nil
}

// Entry returns the index entry of one archive id of user.
func (a *Archive) Entry(ctx context.Context, user jid.JID, id uuid.UUID) (ArchiveEntry, bool, error) {
	if err := ctx.Err(); err != nil {
		return ArchiveEntry{}, false, err
	}
	return a.entry(user.Bare().String(), id)
}

func (a *Archive) entry(user string, id uuid.UUID) (ArchiveEntry, bool, error) {
	return entryIn(a.db.db, user, id)
}

func entryIn(r pebble.Reader, user string, id uuid.UUID) (ArchiveEntry, bool, error) {
	v, ok, err := get(r, ArchiveName, archiveMsgKey(user, id))
	if err != nil || !ok {
		return ArchiveEntry{}, false, err
	}
	e, err := decodeArchiveEntry(id, v)
	return e, err == nil, err
}

// ArchiveRange selects entries of one user's index.
type ArchiveRange struct {
	// Term, if set, selects the entries of one partner (its blind index
	// term); nil selects all.
	Term []byte
	// From and To bound the ids, inclusive; uuid.Nil leaves that side
	// open. A time range maps to ids with domain.ArchiveIDBound.
	From, To uuid.UUID
}

// ArchivePage is a page of entries in ascending id order.
type ArchivePage struct {
	Entries []ArchiveEntry
	// More is true when the range holds further entries beyond the page
	// in the direction read (after the last one forwards, before the first
	// one backwards).
	More bool
}

// Page returns up to max entries of the range: the first ones, or the last
// ones if backwards. Either way the entries come in ascending id order.
func (a *Archive) Page(ctx context.Context, user jid.JID, r ArchiveRange, max int, backwards bool) (ArchivePage, error) {
	if err := ctx.Err(); err != nil {
		return ArchivePage{}, err
	}
	if r.Term != nil && len(r.Term) != TermSize {
		return ArchivePage{}, fmt.Errorf("archive projection: term of %d bytes", len(r.Term))
	}
	u := user.Bare().String()
	var page ArchivePage
	kind := byte(archiveKindMsg)
	if r.Term != nil {
		kind = archiveKindWith
	}
	err := a.scan(u, kind, r.Term, r.From, r.To, backwards, func(e ArchiveEntry) (bool, error) {
		if len(page.Entries) == max {
			page.More = true
			return false, nil
		}
		if r.Term != nil {
			// The blind index holds no value: the entry is the source of
			// the revision.
			full, ok, err := a.entry(u, e.ID)
			if err != nil {
				return false, err
			}
			if !ok {
				return true, nil
			}
			e = full
		}
		page.Entries = append(page.Entries, e)
		return true, nil
	})
	if err != nil {
		return ArchivePage{}, err
	}
	if backwards {
		for i, j := 0, len(page.Entries)-1; i < j; i, j = i+1, j-1 {
			page.Entries[i], page.Entries[j] = page.Entries[j], page.Entries[i]
		}
	}
	return page, nil
}

// Count returns how many entries the range holds: from a counter when the
// range is not bounded by ids, by counting keys otherwise (kept until the
// user's index changes).
func (a *Archive) Count(ctx context.Context, user jid.JID, r ArchiveRange) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	u := user.Bare().String()
	if r.From == uuid.Nil && r.To == uuid.Nil {
		key := archiveCountKey(u)
		if r.Term != nil {
			key = archiveTermKey(u, r.Term)
		}
		n, err := a.counter(key)
		return int(n), err
	}
	// The change counter is read before the walk: a change committed in
	// between makes the counter move on, so the count is never kept under
	// a value newer than what it counted.
	seq, err := a.db.Counter(ArchiveName, archiveSeqKey(u))
	if err != nil {
		return 0, fmt.Errorf("archive projection: %w", err)
	}
	key := string(append(append(append(append([]byte(u), 0), r.Term...), r.From[:]...), r.To[:]...))
	a.mu.Lock()
	c, ok := a.ranges[key]
	a.mu.Unlock()
	if ok && c.seq == seq {
		return c.n, nil
	}
	kind := byte(archiveKindMsg)
	if r.Term != nil {
		kind = archiveKindWith
	}
	n := 0
	a.walks.Add(1)
	err = a.scan(u, kind, r.Term, r.From, r.To, false, func(ArchiveEntry) (bool, error) {
		n++
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	a.mu.Lock()
	if len(a.ranges) >= maxRangeCounts {
		clear(a.ranges)
	}
	a.ranges[key] = rangeCount{seq: seq, n: n}
	a.mu.Unlock()
	return n, nil
}

// Unindexed returns up to max entries of user that have no blind index
// term yet (archived while the user was offline), oldest first, starting
// after the id after (uuid.Nil: from the first).
func (a *Archive) Unindexed(ctx context.Context, user jid.JID, after uuid.UUID, max int) ([]ArchiveEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	from := uuid.Nil
	if after != uuid.Nil {
		// The smallest id greater than after.
		from = after
		for i := len(from) - 1; i >= 0; i-- {
			if from[i]++; from[i] != 0 {
				break
			}
		}
		if from == uuid.Nil {
			return nil, nil
		}
	}
	var out []ArchiveEntry
	u := user.Bare().String()
	err := a.scan(u, archiveKindPending, nil, from, uuid.Nil, false, func(e ArchiveEntry) (bool, error) {
		full, ok, err := a.entry(u, e.ID)
		if err != nil {
			return false, err
		}
		if ok {
			out = append(out, full)
		}
		return len(out) < max, nil
	})
	return out, err
}

// scan walks one user's keys of kind (m, w with term, or x) whose id lies
// in [from, to], forwards or backwards. Entries of kind w carry only the
// id; entries of kind x carry the revision but no term.
func (a *Archive) scan(user string, kind byte, term []byte, from, to uuid.UUID, backwards bool, fn func(ArchiveEntry) (bool, error)) error {
	return scanIn(a.db.db, user, kind, term, from, to, backwards, fn)
}

func scanIn(r pebble.Reader, user string, kind byte, term []byte, from, to uuid.UUID, backwards bool, fn func(ArchiveEntry) (bool, error)) error {
	prefix := dataKey(ArchiveName, append(archivePrefix(kind, user), term...))
	lower := prefix
	if from != uuid.Nil {
		lower = append(append([]byte(nil), prefix...), from[:]...)
	}
	upper := prefixEnd(prefix)
	if to != uuid.Nil {
		upper = prefixEnd(append(append([]byte(nil), prefix...), to[:]...))
	}
	if bytes.Compare(lower, upper) >= 0 {
		return nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("archive projection: scan: %w", err)
	}
	first, next := it.First, it.Next
	if backwards {
		first, next = it.Last, it.Prev
	}
	var fnErr error
	for ok := first(); ok; ok = next() {
		k := it.Key()
		if len(k) != len(prefix)+16 {
			fnErr = fmt.Errorf("archive projection: corrupt key of %d bytes", len(k))
			break
		}
		id := uuid.UUID(k[len(prefix):])
		e := ArchiveEntry{ID: id}
		switch kind {
		case archiveKindMsg:
			e, fnErr = decodeArchiveEntry(id, it.Value())
		case archiveKindPending:
			if v := it.Value(); len(v) == 8 {
				e.Revision = binary.BigEndian.Uint64(v)
			}
		}
		if fnErr != nil {
			break
		}
		var more bool
		if more, fnErr = fn(e); fnErr != nil || !more {
			break
		}
	}
	if err := it.Close(); err != nil && fnErr == nil {
		fnErr = fmt.Errorf("archive projection: scan: %w", err)
	}
	return fnErr
}
