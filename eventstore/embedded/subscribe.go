package embedded

import (
	"context"

	"verlauf.im/verlauf/eventstore"
)

// SubscribeAll implements eventstore.Store.
//
// The subscription has a single path: it always reads the log (readAll),
// in chunks, up to the durability watermark, and when it has caught up it
// sleeps until the watermark moves. There is no separate live feed to
// switch to, so nothing can fall between catch-up and live, nothing is
// delivered twice, and a slow handler holds up nobody but itself: appends
// never wait for subscribers. Recent events come from the store's tail in
// memory, older ones from Pebble.
func (s *Store) SubscribeAll(ctx context.Context, after eventstore.Position, h eventstore.Handler) error {
	next := after.Commit
	buf := make([]eventstore.RecordedEvent, 0, readChunk)
	for {
		// Take the wake-up channel before reading, so that an append
		// published between the read and the wait still wakes us.
		wake := s.waitChan()
		if err := s.enter(); err != nil {
			return err
		}
		evs, err := s.readAll(ctx, next, readChunk, buf[:0])
		s.life.RUnlock()
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := s.interrupted(ctx); err != nil {
				return err
			}
			if err := h(ctx, ev); err != nil {
				return err
			}
			next = ev.Position.Commit
		}
		if len(evs) == readChunk {
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return eventstore.ErrClosed
		}
	}
}

// interrupted reports why a subscription must stop between two events.
func (s *Store) interrupted(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return eventstore.ErrClosed
	default:
		return nil
	}
}
