package archive

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/projections"
)

// Forgetting (DESIGN.md: "forgetting on an immutable log is done by
// crypto-shredding") works on data keys, and a data key seals a day's or
// 10 000 records' worth of a user's history with every partner. To forget
// a part of it:
//
//  1. The current archive data key is retired, so that nothing new is
//     sealed under a key that may be deleted.
//  2. The index is scanned for the selected records; their data keys are
//     the keys to delete.
//  3. Every record that is not selected but shares one of those keys is
//     opened and sealed again under a fresh key, with the same archive id;
//     it is appended as archive.forgotten of the old copy followed by
//     archive.message_stored of the new one, in one atomic append, so the
//     index never lacks it and a sync cursor (an archive id) stays valid.
//  4. archive.forgotten of the selected records takes them out of the
//     index (MAM, the sync API, exports).
//  5. Records appended since the scan under a retired key (a message
//     sealed just before step 1) are handled like the others.
//  6. The keys are deleted from the key store and compacted out of its
//     files: the old sealed bytes in the log, the index copies and every
//     backup can no longer be opened.
//
// A failure before step 6 loses nothing (no key is gone yet) and a retry
// starts over from the index. Forgetting everything deletes every archive
// data key that existed when it started, even those no indexed record
// names any more. The cost is one re-sealed event per kept record that
// shared a key with a forgotten one, so forgetting one partner may re-seal
// most of a user's history; the log grows by that much.
//
// The one window left: a message sealed under the current key before step
// 1 whose append lands after the check of step 5 would name a deleted key.
// Sealing and appending are not under one lock in StoreMany; closing the
// window needs a per-user lock there, held across seal and append and
// taken exclusively here.

// ForgetSelection says which records of a user's history to forget. All
// selects everything; otherwise Start, End and With narrow the selection
// together (at least one must be set).
type ForgetSelection struct {
	All bool
	// Start and End bound the messages' time, inclusive, to the
	// millisecond of the archive id, as in Query.
	Start, End time.Time
	// With selects the conversation with one bare JID.
	With jid.JID
}

// Forgotten says what Forget did.
type Forgotten struct {
	// Count is the number of records forgotten.
	Count int
	// First and Last are the earliest and latest forgotten archive ids
	// (uuid.Nil when Count is 0).
	First, Last uuid.UUID
	// Resealed is the number of kept records sealed again under a new key
	// because they shared a key with a forgotten one.
	Resealed int
	// KeysDeleted is the number of data keys deleted.
	KeysDeleted int
}

// forgetBatch bounds the records of one append.
const forgetBatch = 256

// Forget forgets part or all of user's history by crypto-shredding (see
// the comment above). It needs the user's identity (ErrLocked
// otherwise): kept records that share a key with forgotten ones must be
// opened to be sealed again.
func (s *Service) Forget(ctx context.Context, user jid.JID, sel ForgetSelection) (Forgotten, error) {
	u, err := bare(user)
	if err != nil {
		return Forgotten{}, err
	}
	if !sel.All && sel.Start.IsZero() && sel.End.IsZero() && sel.With.Domainpart() == "" {
		return Forgotten{}, fmt.Errorf("%w: empty selection", ErrInvalid)
	}
	if !sel.Start.IsZero() && !sel.End.IsZero() && sel.End.Before(sel.Start) {
		return Forgotten{}, fmt.Errorf("%w: end before start", ErrInvalid)
	}
	if !s.keys.Unlocked(user) {
		return Forgotten{}, fmt.Errorf("%w: %s", ErrLocked, u)
	}
	// No archive write of this user runs while Forget chooses and deletes
	// keys (see Service.gates).
	g := s.gate(u)
	g.Lock()
	defer g.Unlock()
	if sel.With.Domainpart() != "" {
		// Records archived while the user was away have no term yet.
		if _, err := s.IndexPending(ctx, user); err != nil {
			return Forgotten{}, err
		}
	}
	// Listed before the writer is retired, so that forgetting everything
	// does not delete a key started by a message that arrives meanwhile.
	var allKeys []uuid.UUID
	if sel.All {
		dks, err := s.cfg.KeyStore.DataKeys(ctx, u)
		if err != nil {
			return Forgotten{}, err
		}
		for _, dk := range dks {
			if dk.Kind == envelope.KindArchive {
				allKeys = append(allKeys, dk.Sealed.ID)
			}
		}
	}
	s.retire(ctx, u, envelope.KindArchive)
	if err := s.waitIndex(ctx, u); err != nil {
		return Forgotten{}, err
	}
	stream := domain.ArchiveStream(user)
	lastRev, hasRev, err := s.lastRevision(ctx, stream)
	if err != nil {
		return Forgotten{}, err
	}

	f := &forgetRun{s: s, ctx: ctx, user: user, u: u, stream: stream, sel: sel, keys: map[uuid.UUID]bool{}, lastRev: lastRev, hasRev: hasRev}
	for _, id := range allKeys {
		f.keys[id] = true
	}
	if err := f.run(); err != nil {
		return Forgotten{}, err
	}
	del := make([]uuid.UUID, 0, len(f.keys))
	for id := range f.keys {
		del = append(del, id)
	}
	if err := s.cfg.KeyStore.DeleteDataKeys(ctx, u, del...); err != nil {
		return Forgotten{}, err
	}
	s.keys.dropDataKeys(u, del)
	f.res.KeysDeleted = len(del)
	if err := s.waitIndex(ctx, u); err != nil {
		return Forgotten{}, err
	}
	return f.res, nil
}

// forgetRun is the state of one Forget while the user's session is held.
type forgetRun struct {
	s      *Service
	ctx    context.Context
	user   jid.JID
	u      string
	stream string
	sel    ForgetSelection
	term   []byte
	lo, hi uuid.UUID // id bounds of Start and End (uuid.Nil: open)
	// lastRev is the stream's last revision when the scan began; later
	// records are left to stragglers, so none is counted twice.
	lastRev uint64
	hasRev  bool

	cur  *unlocked
	keys map[uuid.UUID]bool // data keys to delete
	res  Forgotten
}

// run does steps 2 to 5 holding the session, which must be let go before
// the deleted keys are dropped from it.
func (f *forgetRun) run() error {
	cur, done, err := f.s.keys.session(f.u)
	if err != nil {
		return err
	}
	defer done()
	f.cur = cur
	if f.sel.With.Domainpart() != "" {
		t, err := cur.id.BlindIndex(f.sel.With.Bare().String())
		if err != nil {
			return fmt.Errorf("%w: with: %w", ErrInvalid, err)
		}
		f.term = t[:]
	}
	if !f.sel.Start.IsZero() {
		f.lo = domain.ArchiveIDBound(f.sel.Start, false)
	}
	if !f.sel.End.IsZero() {
		f.hi = domain.ArchiveIDBound(f.sel.End, true)
	}

	// Pass 1: the selected records and their keys.
	var ids []uuid.UUID
	err = f.scan(func(e projections.ArchiveEntry) error {
		if !f.selected(e.ID, e.Term) {
			return nil
		}
		f.keys[e.KeyID] = true
		f.note(e.ID)
		if f.term != nil {
			ids = append(ids, e.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Pass 2: the kept records under those keys, sealed again.
	var keep []projections.ArchiveEntry
	err = f.scan(func(e projections.ArchiveEntry) error {
		if !f.keys[e.KeyID] || f.selected(e.ID, e.Term) {
			return nil
		}
		keep = append(keep, e)
		if len(keep) == forgetBatch {
			err := f.reseal(keep)
			keep = keep[:0]
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := f.reseal(keep); err != nil {
		return err
	}
	// Step 4. A selection by time alone (or everything) is one id range;
	// a partner's records are listed.
	var evs []domain.ArchiveForgotten
	switch {
	case f.res.Count == 0:
	case f.term == nil:
		evs = append(evs, domain.ArchiveForgotten{Ranges: []domain.ArchiveRange{{From: f.res.First, To: f.res.Last}}})
	default:
		for len(ids) > 0 {
			n := min(len(ids), 4096)
			evs = append(evs, domain.ArchiveForgotten{IDs: ids[:n]})
			ids = ids[n:]
		}
	}
	for _, p := range evs {
		if err := f.append(p); err != nil {
			return err
		}
	}
	return f.stragglers()
}

// selected reports whether the record id, with the partner term (nil if
// not indexed), is in the selection.
func (f *forgetRun) selected(id uuid.UUID, term []byte) bool {
	if f.sel.All {
		return true
	}
	if f.lo != uuid.Nil && bytes.Compare(id[:], f.lo[:]) < 0 {
		return false
	}
	if f.hi != uuid.Nil && bytes.Compare(id[:], f.hi[:]) > 0 {
		return false
	}
	return f.term == nil || bytes.Equal(term, f.term)
}

func (f *forgetRun) note(id uuid.UUID) {
	if f.res.Count == 0 || bytes.Compare(id[:], f.res.First[:]) < 0 {
		f.res.First = id
	}
	if f.res.Count == 0 || bytes.Compare(id[:], f.res.Last[:]) > 0 {
		f.res.Last = id
	}
	f.res.Count++
}

// scan calls fn for every index entry of the user up to lastRev, in id
// order.
func (f *forgetRun) scan(fn func(projections.ArchiveEntry) error) error {
	var r projections.ArchiveRange
	for {
		p, err := f.s.cfg.Index.Page(f.ctx, f.user, r, 1024, false)
		if err != nil {
			return err
		}
		for _, e := range p.Entries {
			if !f.hasRev || e.Revision > f.lastRev {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if !p.More || len(p.Entries) == 0 {
			return nil
		}
		next, ok := idAfter(p.Entries[len(p.Entries)-1].ID)
		if !ok {
			return nil
		}
		r.From = next
	}
}

// reseal seals the records of entries again under the current (new) data
// key, replacing the old copies in one append. A record that cannot be
// opened is left as it is: it is unreadable already.
func (f *forgetRun) reseal(entries []projections.ArchiveEntry) error {
	if len(entries) == 0 {
		return nil
	}
	var gone domain.ArchiveForgotten
	var stored []domain.Payload
	for _, e := range entries {
		sm, err := f.s.openRecord(f.ctx, f.cur, f.u, envelope.KindArchive, e.ID, e.KeyID, e.Sealed)
		if err != nil {
			continue
		}
		p, err := f.sealAgain(e.ID, e.Term, sm)
		if err != nil {
			return err
		}
		gone.IDs = append(gone.IDs, e.ID)
		stored = append(stored, p)
	}
	if len(stored) == 0 {
		return nil
	}
	if err := f.append(append([]domain.Payload{gone}, stored...)...); err != nil {
		return err
	}
	f.res.Resealed += len(stored)
	return nil
}

func (f *forgetRun) sealAgain(id uuid.UUID, term []byte, sm domain.SealedMessage) (domain.Payload, error) {
	plain := sm.Encode()
	sealed, keyID, err := f.s.seal(f.ctx, f.u, envelope.KindArchive, id, plain)
	clear(plain)
	if err != nil {
		return nil, err
	}
	if f.keys[keyID] {
		// Cannot happen: the writer was retired before the keys were
		// chosen. Sealing under a key about to be deleted would lose the
		// record, so refuse loudly.
		return nil, fmt.Errorf("archive: forget %s: re-sealed under a retired key", f.u)
	}
	if term == nil && sm.Partner != "" {
		if t, err := f.cur.id.BlindIndex(sm.Partner); err == nil {
			term = t[:]
		}
	}
	return domain.ArchiveMessageStored{ArchiveID: id, KeyID: keyID, Sealed: sealed, Index: term}, nil
}

func (f *forgetRun) append(ps ...domain.Payload) error {
	evs, err := domain.NewEvents(f.s.cfg.Clock, ps...)
	if err != nil {
		return err
	}
	res, err := f.s.cfg.Store.Append(f.ctx, f.stream, eventstore.Any(), evs...)
	if err != nil {
		return fmt.Errorf("archive: forget for %s: %w", f.u, err)
	}
	f.s.noteWrite(f.u, res.Position)
	return nil
}

// stragglers handles records appended after the scan under a key to be
// deleted (sealed before the writer was retired): selected ones are
// forgotten, the others sealed again. It reads the stream from the
// revision after the scan's until no such record is left.
func (f *forgetRun) stragglers() error {
	from := uint64(0)
	if f.hasRev {
		from = f.lastRev + 1
	}
	for {
		evs, err := f.s.cfg.Store.ReadStream(f.ctx, f.stream, from, eventstore.Forwards, 512)
		if err != nil {
			return fmt.Errorf("archive: read %s: %w", f.stream, err)
		}
		var gone domain.ArchiveForgotten
		var stored []domain.Payload
		for _, ev := range evs {
			from = ev.Revision + 1
			if ev.Type != domain.TypeArchiveMessageStored {
				continue
			}
			p, err := domain.Decode(ev.Event)
			if err != nil {
				return fmt.Errorf("archive: forget: %w", err)
			}
			e, ok := p.(domain.ArchiveMessageStored)
			if !ok || !f.keys[e.KeyID] {
				continue
			}
			sm, err := f.s.openRecord(f.ctx, f.cur, f.u, envelope.KindArchive, e.ArchiveID, e.KeyID, e.Sealed)
			if err != nil {
				continue
			}
			term := e.Index
			if term == nil {
				if t, err := f.cur.id.BlindIndex(sm.Partner); err == nil {
					term = t[:]
				}
			}
			gone.IDs = append(gone.IDs, e.ArchiveID)
			if f.selected(e.ArchiveID, term) {
				f.note(e.ArchiveID)
				continue
			}
			np, err := f.sealAgain(e.ArchiveID, term, sm)
			if err != nil {
				return err
			}
			stored = append(stored, np)
		}
		if len(gone.IDs) > 0 {
			if err := f.append(append([]domain.Payload{gone}, stored...)...); err != nil {
				return err
			}
			f.res.Resealed += len(stored)
		}
		if len(evs) < 512 {
			return nil
		}
	}
}

// lastRevision is the revision of the stream's last event.
func (s *Service) lastRevision(ctx context.Context, stream string) (uint64, bool, error) {
	evs, err := s.cfg.Store.ReadStream(ctx, stream, math.MaxUint64, eventstore.Backwards, 1)
	if err != nil {
		return 0, false, fmt.Errorf("archive: read %s: %w", stream, err)
	}
	if len(evs) == 0 {
		return 0, false, nil
	}
	return evs[0].Revision, true, nil
}

// Change is one message of Since, with the cursor that follows it.
type Change struct {
	Message
	// Next is the cursor to pass to Since to read on after this message.
	Next uint64
}

// Changes is the answer to Since.
type Changes struct {
	// Changes are the messages in the order they were archived.
	Changes []Change
	// Next is the cursor after everything read (also past records that
	// were skipped because they are forgotten).
	Next uint64
	// More is true when the page stopped at max with more to read.
	More bool
}

// Since returns up to max messages of user's history archived at or after
// cursor (0: from the first), in the order they were appended, with the
// cursor to read on from.
//
// The cursor is a revision of the user's archive stream, not an archive
// id: ids are drawn before the append, so two messages archived at once
// may reach the log in the other order, and a reader that remembered the
// larger id would never see the smaller one. Stream revisions are dense
// and final once readable, so a reader that keeps the cursor sees each
// message exactly once, in order, across restarts.
//
// It lives here because it must know what Forget writes: a record sealed
// again under a new key is a second archive.message_stored of the same id,
// right after an archive.forgotten naming it in the same append; it is
// not a new message and is skipped, while the first copy is delivered
// with the content of the live one. Forgotten records are skipped.
func (s *Service) Since(ctx context.Context, user jid.JID, cursor uint64, max int) (Changes, error) {
	u, err := bare(user)
	if err != nil {
		return Changes{}, err
	}
	if max <= 0 || max > s.cfg.MaxPageSize {
		max = s.cfg.MaxPageSize
	}
	cur, done, err := s.keys.session(u)
	if err != nil {
		return Changes{}, err
	}
	defer done()
	stream := domain.ArchiveStream(user)
	out := Changes{Next: cursor}
	resealed, err := s.batchBefore(ctx, stream, cursor)
	if err != nil {
		return Changes{}, err
	}
	for {
		evs, err := s.cfg.Store.ReadStream(ctx, stream, out.Next, eventstore.Forwards, 512)
		if err != nil {
			return Changes{}, fmt.Errorf("archive: read %s: %w", stream, err)
		}
		if len(evs) == 0 {
			return out, nil
		}
		if s.cfg.Waiter != nil {
			// The index says which records are live; it must have seen
			// at least what was read here.
			if err := s.cfg.Waiter.WaitFor(ctx, projections.ArchiveName, evs[len(evs)-1].Position); err != nil {
				return Changes{}, err
			}
		}
		for _, ev := range evs {
			if len(out.Changes) == max {
				out.More = true
				return out, nil
			}
			out.Next = ev.Revision + 1
			switch ev.Type {
			case domain.TypeArchiveForgotten:
				p, err := domain.Decode(ev.Event)
				if err != nil {
					return Changes{}, fmt.Errorf("archive: since: %w", err)
				}
				fe, _ := p.(domain.ArchiveForgotten)
				resealed = map[uuid.UUID]bool{}
				for _, id := range fe.IDs {
					resealed[id] = true
				}
				continue
			case domain.TypeArchiveMessageStored:
			default:
				resealed = nil
				continue
			}
			p, err := domain.Decode(ev.Event)
			if err != nil {
				return Changes{}, fmt.Errorf("archive: since: %w", err)
			}
			ms, ok := p.(domain.ArchiveMessageStored)
			if !ok || resealed[ms.ArchiveID] {
				continue
			}
			entry, live, err := s.cfg.Index.Entry(ctx, user, ms.ArchiveID)
			if err != nil {
				return Changes{}, err
			}
			// A later revision in the index is this record sealed again;
			// an earlier one means this event stored an id twice.
			if !live || entry.Revision < ev.Revision {
				continue
			}
			m := s.openEntries(ctx, cur, u, []projections.ArchiveEntry{entry})[0]
			out.Changes = append(out.Changes, Change{Message: m, Next: out.Next})
		}
		if len(evs) < 512 {
			return out, nil
		}
	}
}

// batchBefore returns the ids re-sealed by an append that cursor falls
// inside of: the run of stored events just before cursor, if an
// archive.forgotten starts it. Forget's appends hold at most 513 events
// (a page of stragglers), so 1024 reaches back far enough.
func (s *Service) batchBefore(ctx context.Context, stream string, cursor uint64) (map[uuid.UUID]bool, error) {
	if cursor == 0 {
		return nil, nil
	}
	evs, err := s.cfg.Store.ReadStream(ctx, stream, cursor-1, eventstore.Backwards, 1024)
	if err != nil {
		return nil, fmt.Errorf("archive: read %s: %w", stream, err)
	}
	for _, ev := range evs {
		if ev.Type == domain.TypeArchiveMessageStored {
			continue
		}
		if ev.Type != domain.TypeArchiveForgotten {
			return nil, nil
		}
		p, err := domain.Decode(ev.Event)
		if err != nil {
			return nil, fmt.Errorf("archive: since: %w", err)
		}
		fe, _ := p.(domain.ArchiveForgotten)
		set := map[uuid.UUID]bool{}
		for _, id := range fe.IDs {
			set[id] = true
		}
		return set, nil
	}
	return nil, nil
}
