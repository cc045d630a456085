package archive

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/projections"
)

// Query is a MAM query (XEP-0313) with result set management (XEP-0059)
// over one user's archive.
//
// Mapping from the protocol: the form's start/end/with fill Start, End and
// With; the form's after-id/before-id and RSM <after>/<before>X</before>
// are exclusive bounds and fill AfterID and BeforeID (when both a form
// field and an RSM element bound the same side, pass the tighter one);
// RSM <before> (empty or not) also sets Last, which pages backwards from
// the end of the range; ids fills IDs; flip-page sets FlipPage.
type Query struct {
	// Start and End bound the messages' time, inclusive, to the
	// millisecond of the archive id; zero leaves that side open.
	Start, End time.Time
	// With selects the conversation with one bare JID (a resource is
	// ignored), through the blind index.
	With jid.JID
	// AfterID and BeforeID are exclusive bounds; uuid.Nil leaves that
	// side open. An id not in the archive gives ErrItemNotFound.
	AfterID, BeforeID uuid.UUID
	// IDs, if set, selects these messages (other filters still apply).
	// An id not in the archive gives ErrItemNotFound.
	IDs []uuid.UUID
	// Max is the page size; 0 means the configured default, and a value
	// above the configured cap is capped (Page.Capped says so).
	Max int
	// Last pages backwards: the page holds the last Max messages of the
	// range (RSM <before>).
	Last bool
	// FlipPage reverses the order of the page's messages (XEP-0313
	// flip-page). First, Last and Complete are not affected.
	FlipPage bool
}

// Message is one archived message as a query returns it.
type Message struct {
	// ID is the archive id (<stanza-id>, MAM result id).
	ID uuid.UUID
	// Partner is the canonical bare JID of the other side.
	Partner   string
	Direction domain.Direction
	// At is when the server handled the message (for <delay>).
	At time.Time
	// Stanza is the message as archived, XML.
	Stanza []byte
	// Err is set when this record cannot be read (modified or corrupt
	// bytes: envelope.ErrAuth or envelope.ErrCorrupt; a deleted key:
	// ErrKeyGone). The other fields but ID are then empty; the other
	// records of the page are unaffected.
	Err error
}

// Page is the answer to a Query.
type Page struct {
	// Messages in archive (time) order, or reversed with FlipPage.
	Messages []Message
	// First and Last are the earliest and latest archive ids of the page
	// (uuid.Nil for an empty page), for RSM <first>/<last>.
	First, Last uuid.UUID
	// Complete is true when no further message of the range lies beyond
	// the page in the direction of paging (MAM <fin complete='true'>).
	Complete bool
	// Count is the number of messages matching Start, End and With
	// (RSM <count>), ignoring the paging bounds.
	Count int
	// Max is the page size applied; Capped says the request asked more.
	Max    int
	Capped bool
}

// Query runs q over user's archive. It needs the user's identity
// (ErrLocked otherwise): the records are decrypted, and With is looked up
// by the partner's blind index term.
func (s *Service) Query(ctx context.Context, user jid.JID, q Query) (Page, error) {
	u, err := bare(user)
	if err != nil {
		return Page{}, err
	}
	cur, done, err := s.keys.session(u)
	if err != nil {
		return Page{}, err
	}
	defer done()
	if err := s.waitIndex(ctx, u); err != nil {
		return Page{}, err
	}

	page := Page{Max: q.Max}
	switch {
	case q.Max < 0:
		return Page{}, fmt.Errorf("%w: max %d", ErrInvalid, q.Max)
	case q.Max == 0:
		page.Max = s.cfg.PageSize
	case q.Max > s.cfg.MaxPageSize:
		page.Max, page.Capped = s.cfg.MaxPageSize, true
	}
	if !q.Start.IsZero() && !q.End.IsZero() && q.End.Before(q.Start) {
		return Page{}, fmt.Errorf("%w: end before start", ErrInvalid)
	}

	var base projections.ArchiveRange
	if q.With.Domainpart() != "" {
		t, err := cur.id.BlindIndex(q.With.Bare().String())
		if err != nil {
			return Page{}, fmt.Errorf("%w: with: %w", ErrInvalid, err)
		}
		base.Term = t[:]
	}
	if !q.Start.IsZero() {
		base.From = domain.ArchiveIDBound(q.Start, false)
	}
	if !q.End.IsZero() {
		base.To = domain.ArchiveIDBound(q.End, true)
	}
	for _, id := range []uuid.UUID{q.AfterID, q.BeforeID} {
		if id == uuid.Nil {
			continue
		}
		if _, ok, err := s.cfg.Index.Entry(ctx, user, id); err != nil {
			return Page{}, err
		} else if !ok {
			return Page{}, fmt.Errorf("%w: %s", ErrItemNotFound, id)
		}
	}

	var entries []projections.ArchiveEntry
	if len(q.IDs) > 0 {
		entries, page.Count, page.Complete, err = s.byIDs(ctx, user, q, base, page.Max)
	} else {
		entries, page.Count, page.Complete, err = s.byRange(ctx, user, q, base, page.Max)
	}
	if err != nil {
		return Page{}, err
	}
	if len(entries) > 0 {
		page.First, page.Last = entries[0].ID, entries[len(entries)-1].ID
	}
	page.Messages = s.openEntries(ctx, cur, u, entries)
	if q.FlipPage {
		slices.Reverse(page.Messages)
	}
	return page, nil
}

func (s *Service) byRange(ctx context.Context, user jid.JID, q Query, base projections.ArchiveRange, max int) ([]projections.ArchiveEntry, int, bool, error) {
	r := base
	if q.AfterID != uuid.Nil {
		if next, ok := idAfter(q.AfterID); !ok {
			return nil, 0, true, nil
		} else if r.From == uuid.Nil || bytes.Compare(next[:], r.From[:]) > 0 {
			r.From = next
		}
	}
	if q.BeforeID != uuid.Nil {
		prev, ok := idBefore(q.BeforeID)
		if !ok {
			return nil, 0, true, nil
		}
		if r.To == uuid.Nil || bytes.Compare(prev[:], r.To[:]) < 0 {
			r.To = prev
		}
	}
	if r.From != uuid.Nil && r.To != uuid.Nil && bytes.Compare(r.From[:], r.To[:]) > 0 {
		n, err := s.cfg.Index.Count(ctx, user, base)
		return nil, n, true, err
	}
	p, err := s.cfg.Index.Page(ctx, user, r, max, q.Last)
	if err != nil {
		return nil, 0, false, err
	}
	n, err := s.cfg.Index.Count(ctx, user, base)
	if err != nil {
		return nil, 0, false, err
	}
	return p.Entries, n, !p.More, nil
}

func (s *Service) byIDs(ctx context.Context, user jid.JID, q Query, base projections.ArchiveRange, max int) ([]projections.ArchiveEntry, int, bool, error) {
	in := func(id uuid.UUID, lo, hi uuid.UUID, loExcl, hiExcl bool) bool {
		if lo != uuid.Nil {
			if c := bytes.Compare(id[:], lo[:]); c < 0 || (c == 0 && loExcl) {
				return false
			}
		}
		if hi != uuid.Nil {
			if c := bytes.Compare(id[:], hi[:]); c > 0 || (c == 0 && hiExcl) {
				return false
			}
		}
		return true
	}
	var all []projections.ArchiveEntry
	seen := map[uuid.UUID]bool{}
	for _, id := range q.IDs {
		e, ok, err := s.cfg.Index.Entry(ctx, user, id)
		if err != nil {
			return nil, 0, false, err
		}
		if !ok {
			return nil, 0, false, fmt.Errorf("%w: %s", ErrItemNotFound, id)
		}
		if seen[id] || !in(id, base.From, base.To, false, false) || !in(id, q.AfterID, q.BeforeID, true, true) {
			continue
		}
		if base.Term != nil && !bytes.Equal(e.Term, base.Term) {
			continue
		}
		seen[id] = true
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b projections.ArchiveEntry) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	n := len(all)
	if len(all) <= max {
		return all, n, true, nil
	}
	if q.Last {
		return all[len(all)-max:], n, false, nil
	}
	return all[:max], n, false, nil
}

// idAfter and idBefore turn an exclusive id bound into an inclusive one.
func idAfter(id uuid.UUID) (uuid.UUID, bool) {
	for i := len(id) - 1; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			return id, true
		}
	}
	return id, false
}

func idBefore(id uuid.UUID) (uuid.UUID, bool) {
	for i := len(id) - 1; i >= 0; i-- {
		id[i]--
		if id[i] != 0xff {
			return id, id != uuid.Nil
		}
	}
	return id, false
}

// readRevisions reads the events at revs of stream, reading runs of close
// revisions with one call.
func (s *Service) readRevisions(ctx context.Context, stream string, revs []uint64) (map[uint64]eventstore.RecordedEvent, error) {
	sorted := slices.Clone(revs)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	out := make(map[uint64]eventstore.RecordedEvent, len(sorted))
	const gap = 8 // reading a few unwanted events beats another seek
	for i := 0; i < len(sorted); {
		j := i
		for j+1 < len(sorted) && sorted[j+1]-sorted[j] <= gap {
			j++
		}
		from, to := sorted[i], sorted[j]
		evs, err := s.cfg.Store.ReadStream(ctx, stream, from, eventstore.Forwards, int(to-from+1))
		if err != nil {
			return nil, fmt.Errorf("archive: read %s: %w", stream, err)
		}
		for _, ev := range evs {
			out[ev.Revision] = ev
		}
		i = j + 1
	}
	return out, nil
}

// openEntries decrypts the records of entries, in order. A record that
// cannot be read gets its error in Message.Err.
func (s *Service) openEntries(ctx context.Context, cur *unlocked, u string, entries []projections.ArchiveEntry) []Message {
	if len(entries) == 0 {
		return nil
	}
	out := make([]Message, len(entries))
	for i, e := range entries {
		out[i].ID = e.ID
		sm, err := s.openRecord(ctx, cur, u, envelope.KindArchive, e.ID, e.KeyID, e.Sealed)
		if err != nil {
			out[i].Err = err
			continue
		}
		out[i].Partner, out[i].Direction, out[i].At, out[i].Stanza = sm.Partner, sm.Direction, sm.At, sm.Stanza
	}
	return out
}

// openRecord decrypts one sealed record of u. keyID is the key the event
// names; the record's own header must agree.
func (s *Service) openRecord(ctx context.Context, cur *unlocked, u string, kind envelope.Kind, id, keyID uuid.UUID, sealed []byte) (domain.SealedMessage, error) {
	rk, err := envelope.RecordKeyID(sealed)
	if err != nil {
		return domain.SealedMessage{}, fmt.Errorf("archive: record %s: %w", id, err)
	}
	if rk != keyID {
		return domain.SealedMessage{}, fmt.Errorf("archive: record %s: %w: key id %s in the record, %s in the event", id, envelope.ErrCorrupt, rk, keyID)
	}
	dk, err := s.keys.dataKey(ctx, cur, u, keyID)
	if err != nil {
		return domain.SealedMessage{}, fmt.Errorf("archive: record %s: %w", id, err)
	}
	plain, err := envelope.Open(dk, envelope.AAD{User: u, Kind: kind, RecordID: id}, sealed)
	if err != nil {
		return domain.SealedMessage{}, fmt.Errorf("archive: record %s: %w", id, err)
	}
	sm, err := domain.DecodeSealedMessage(plain)
	if err != nil {
		return domain.SealedMessage{}, fmt.Errorf("archive: record %s: %w: %w", id, envelope.ErrCorrupt, err)
	}
	return sm, nil
}

// indexBatch bounds the entries of one archive.partner_indexed event.
const indexBatch = 512

// IndexPending indexes the user's messages that were archived while the
// user was offline (no blind index term yet): each is opened, its
// partner's term computed, and the terms are appended as
// archive.partner_indexed events, so that `with` queries find them. Call
// it at login, after Unlock. It returns how many messages it indexed.
// Records that cannot be opened are left as they are.
func (s *Service) IndexPending(ctx context.Context, user jid.JID) (int, error) {
	u, err := bare(user)
	if err != nil {
		return 0, err
	}
	cur, done, err := s.keys.session(u)
	if err != nil {
		return 0, err
	}
	defer done()
	if err := s.waitIndex(ctx, u); err != nil {
		return 0, err
	}
	stream := domain.ArchiveStream(user)
	total := 0
	after := uuid.Nil
	// The terms added here are not noted as the user's writes (noteWrite):
	// a query is right without them (an entry without its term is only
	// missing from `with` results, as before), and waiting for them held
	// every query of the user behind the whole backlog of a large first
	// indexing: 17 s for a newest page after a 1 M import. Only the
	// caller waits for them, when this returns.
	var last eventstore.Position
	finish := func() (int, error) {
		if total == 0 || s.cfg.Waiter == nil {
			return total, nil
		}
		return total, s.cfg.Waiter.WaitFor(ctx, projections.ArchiveName, last)
	}
	for {
		pending, err := s.cfg.Index.Unindexed(ctx, user, after, indexBatch)
		if err != nil {
			return total, err
		}
		if len(pending) == 0 {
			return finish()
		}
		after = pending[len(pending)-1].ID
		msgs := s.openEntries(ctx, cur, u, pending)
		var ie domain.ArchivePartnerIndexed
		for _, m := range msgs {
			if m.Err != nil || m.Partner == "" {
				continue
			}
			t, err := cur.id.BlindIndex(m.Partner)
			if err != nil {
				continue
			}
			ie.Entries = append(ie.Entries, domain.ArchiveIndexEntry{ArchiveID: m.ID, Index: t[:]})
		}
		if len(ie.Entries) > 0 {
			ev, err := domain.NewEvent(s.cfg.Clock, ie)
			if err != nil {
				return total, err
			}
			res, err := s.cfg.Store.Append(ctx, stream, eventstore.Any(), ev)
			if err != nil {
				return total, fmt.Errorf("archive: index for %s: %w", u, err)
			}
			last = res.Position
			total += len(ie.Entries)
		}
		if len(pending) < indexBatch {
			return finish()
		}
	}
}
