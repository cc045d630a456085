package archive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/eventstore"
)

// The offline queue is the fold of the user's offline stream: messages
// queued and not yet delivered. The service keeps that fold in memory per
// user with the revision it reached, reads only the events appended since
// on each use, and appends with that revision as the expected one: the
// bound is exact even with several writers, and a long-lived stream is
// read in full once per process, not once per message.

// QueuedMessage is a message waiting for its recipient.
type QueuedMessage struct {
	// ID is the queue id, to pass to Delivered.
	ID uuid.UUID
	// At is when the server queued the message: the XEP-0203 delay stamp.
	At time.Time
	// Stanza is the message as routed, XML.
	Stanza []byte
	// Err is set when the record cannot be read; the message should still
	// be passed to Delivered, or it will stay in the queue for good.
	Err error
}

type offlineState struct {
	mu      sync.Mutex
	rev     uint64
	exists  bool
	pending []pendingMsg // in queue order
}

type pendingMsg struct {
	id, key uuid.UUID
	rev     uint64
}

func (s *Service) offlineOf(u string) *offlineState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.offline[u]
	if st == nil {
		st = &offlineState{}
		s.offline[u] = st
	}
	return st
}

// sync folds the events appended to the stream since st was last read.
// The caller holds st.mu.
func (s *Service) syncOffline(ctx context.Context, stream string, st *offlineState) error {
	from := uint64(0)
	if st.exists {
		from = st.rev + 1
	}
	for {
		evs, err := s.cfg.Store.ReadStream(ctx, stream, from, eventstore.Forwards, 512)
		if err != nil {
			return fmt.Errorf("archive: read %s: %w", stream, err)
		}
		for _, ev := range evs {
			if err := st.apply(ev); err != nil {
				return err
			}
		}
		if len(evs) < 512 {
			return nil
		}
		from = st.rev + 1
	}
}

func (st *offlineState) apply(ev eventstore.RecordedEvent) error {
	st.rev, st.exists = ev.Revision, true
	switch ev.Type {
	case domain.TypeOfflineMessageQueued, domain.TypeOfflineDelivered:
	default:
		return nil
	}
	p, err := domain.Decode(ev.Event)
	if err != nil {
		return fmt.Errorf("archive: offline queue: %w", err)
	}
	switch e := p.(type) {
	case domain.OfflineMessageQueued:
		st.pending = append(st.pending, pendingMsg{id: e.ID, key: e.KeyID, rev: ev.Revision})
	case domain.OfflineDelivered:
		gone := make(map[uuid.UUID]bool, len(e.IDs))
		for _, id := range e.IDs {
			gone[id] = true
		}
		st.pending = slices.DeleteFunc(st.pending, func(m pendingMsg) bool { return gone[m.id] })
	}
	return nil
}

func (st *offlineState) expected() eventstore.ExpectedRevision {
	if !st.exists {
		return eventstore.NoStream()
	}
	return eventstore.Exact(st.rev)
}

// appendOffline appends the event build decides from the fresh state,
// with the revision st has reached, folding what others appended and
// deciding again when it loses a race. The caller holds st.mu.
func (s *Service) appendOffline(ctx context.Context, stream string, st *offlineState, build func() (domain.Event, error)) error {
	for range eventstore.MaxAttempts {
		if err := s.syncOffline(ctx, stream, st); err != nil {
			return err
		}
		ev, err := build()
		if err != nil {
			return err
		}
		res, err := s.cfg.Store.Append(ctx, stream, st.expected(), ev)
		if errors.Is(err, eventstore.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("archive: append to %s: %w", stream, err)
		}
		// Fold our own event; anything before it was folded by sync.
		return st.apply(eventstore.RecordedEvent{Event: ev, Stream: stream, Revision: res.NextRevision, Position: res.Position})
	}
	return fmt.Errorf("archive: append to %s: %w", stream, eventstore.ErrConflict)
}

// Queue seals a message for user, who has no online resource, and appends
// it to the user's offline stream. It needs only the user's public key.
// Past the configured bound it returns ErrQueueFull (the XMPP layer
// answers resource-constraint). The caller has already excluded OTR and
// no-store messages, which are never queued.
func (s *Service) Queue(ctx context.Context, user jid.JID, stanza []byte) (uuid.UUID, error) {
	u, err := bare(user)
	if err != nil {
		return uuid.Nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, fmt.Errorf("archive: new id: %w", err)
	}
	st := s.offlineOf(u)
	st.mu.Lock()
	defer st.mu.Unlock()
	stream := domain.OfflineStream(user)
	if err := s.syncOffline(ctx, stream, st); err != nil {
		return uuid.Nil, err
	}
	full := func() error {
		if len(st.pending) >= s.cfg.OfflineLimit {
			return fmt.Errorf("%w: %s has %d messages waiting", ErrQueueFull, u, len(st.pending))
		}
		return nil
	}
	if err := full(); err != nil {
		return uuid.Nil, err
	}
	plain := domain.SealedMessage{Direction: domain.DirectionIn, At: s.cfg.Clock.Now().UTC(), Stanza: stanza}.Encode()
	sealed, keyID, err := s.seal(ctx, u, envelope.KindOffline, id, plain)
	clear(plain)
	if err != nil {
		return uuid.Nil, err
	}
	ev, err := domain.NewEvent(s.cfg.Clock, domain.OfflineMessageQueued{ID: id, KeyID: keyID, Sealed: sealed})
	if err != nil {
		return uuid.Nil, err
	}
	err = s.appendOffline(ctx, stream, st, func() (domain.Event, error) { return ev, full() })
	if err != nil {
		return uuid.Nil, err
	}
	return id, nil
}

// Pending returns how many messages wait in user's offline queue.
func (s *Service) Pending(ctx context.Context, user jid.JID) (int, error) {
	u, err := bare(user)
	if err != nil {
		return 0, err
	}
	st := s.offlineOf(u)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.syncOffline(ctx, domain.OfflineStream(user), st); err != nil {
		return 0, err
	}
	return len(st.pending), nil
}

// Drain returns the messages waiting for user, in the order they were
// queued, decrypted with the user's identity (ErrLocked without a
// session). Call it at the user's initial presence, deliver the messages
// with a <delay stamp=At>, then call Delivered. The key that sealed them
// stops sealing, so that Delivered can delete it.
func (s *Service) Drain(ctx context.Context, user jid.JID) ([]QueuedMessage, error) {
	u, err := bare(user)
	if err != nil {
		return nil, err
	}
	cur, done, err := s.keys.session(u)
	if err != nil {
		return nil, err
	}
	defer done()
	st := s.offlineOf(u)
	st.mu.Lock()
	defer st.mu.Unlock()
	stream := domain.OfflineStream(user)
	if err := s.syncOffline(ctx, stream, st); err != nil {
		return nil, err
	}
	// From here on, new messages go under a new key: this batch's key can
	// be deleted once the batch is delivered.
	s.retire(ctx, u, envelope.KindOffline)
	if len(st.pending) == 0 {
		return nil, nil
	}
	revs := make([]uint64, len(st.pending))
	for i, m := range st.pending {
		revs[i] = m.rev
	}
	evs, err := s.readRevisions(ctx, stream, revs)
	if err != nil {
		return nil, err
	}
	out := make([]QueuedMessage, len(st.pending))
	for i, m := range st.pending {
		out[i] = QueuedMessage{ID: m.id}
		ev := evs[m.rev]
		p, err := domain.Decode(ev.Event)
		if err != nil {
			out[i].Err = fmt.Errorf("%w: %w", envelope.ErrCorrupt, err)
			continue
		}
		e, ok := p.(domain.OfflineMessageQueued)
		if !ok || e.ID != m.id {
			out[i].Err = fmt.Errorf("%w: queued message %s", envelope.ErrCorrupt, m.id)
			continue
		}
		sm, err := s.openRecord(ctx, cur, u, envelope.KindOffline, m.id, e.KeyID, e.Sealed)
		if err != nil {
			out[i].Err = err
			continue
		}
		out[i].At, out[i].Stanza = sm.At, sm.Stanza
	}
	return out, nil
}

// Delivered records that the messages ids reached the user (ids not
// waiting are ignored) and deletes every offline data key of the user that
// seals no waiting message and no longer seals new ones: the delivered
// messages are then unreadable, in the log and in its backups.
func (s *Service) Delivered(ctx context.Context, user jid.JID, ids []uuid.UUID) error {
	u, err := bare(user)
	if err != nil {
		return err
	}
	gone, err := s.delivered(ctx, user, u, ids)
	// Dropping the opened keys takes the session's lock, which Drain holds
	// while it waits for the queue's: so not under the queue's lock.
	s.keys.dropDataKeys(u, gone)
	return err
}

func (s *Service) delivered(ctx context.Context, user jid.JID, u string, ids []uuid.UUID) ([]uuid.UUID, error) {
	st := s.offlineOf(u)
	st.mu.Lock()
	defer st.mu.Unlock()
	stream := domain.OfflineStream(user)
	if err := s.syncOffline(ctx, stream, st); err != nil {
		return nil, err
	}
	want := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	err := s.appendOffline(ctx, stream, st, func() (domain.Event, error) {
		var d domain.OfflineDelivered
		for _, m := range st.pending {
			if want[m.id] {
				d.IDs = append(d.IDs, m.id)
			}
		}
		if len(d.IDs) == 0 {
			return domain.Event{}, errNothing
		}
		return domain.NewEvent(s.cfg.Clock, d)
	})
	if err != nil && !errors.Is(err, errNothing) {
		return nil, err
	}
	return s.shredDelivered(ctx, u, st)
}

var errNothing = errors.New("nothing to record")

// shredDelivered deletes the user's offline keys that seal nothing still
// waiting, and returns their ids. The caller holds st.mu, so no message is
// queued meanwhile.
func (s *Service) shredDelivered(ctx context.Context, u string, st *offlineState) ([]uuid.UUID, error) {
	keys, err := s.cfg.KeyStore.DataKeys(ctx, u)
	if err != nil {
		return nil, err
	}
	inUse := map[uuid.UUID]bool{s.currentKey(u, envelope.KindOffline): true}
	for _, m := range st.pending {
		inUse[m.key] = true
	}
	var gone []uuid.UUID
	for _, k := range keys {
		if k.Kind == envelope.KindOffline && !inUse[k.Sealed.ID] {
			gone = append(gone, k.Sealed.ID)
		}
	}
	if err := s.cfg.KeyStore.DeleteDataKeys(ctx, u, gone...); err != nil {
		return nil, err
	}
	return gone, nil
}
