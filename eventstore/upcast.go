package eventstore

import (
	"context"
	"fmt"

	"verlauf.im/verlauf/domain"
)

// Upcasting wraps s so that every event read from it (streams, the whole
// log, subscriptions) has been upgraded to its current schema version by u.
// Old events stay in the log as they were written; only readers see the new
// shape. This keeps aggregates and projections free of version switches.
func Upcasting(s Store, u domain.Upcaster) Store {
	return &upcastingStore{Store: s, up: u}
}

type upcastingStore struct {
	Store
	up domain.Upcaster
}

func (s *upcastingStore) upcast(evs []RecordedEvent) ([]RecordedEvent, error) {
	for i := range evs {
		ev, err := s.up.Upcast(evs[i].Event)
		if err != nil {
			return nil, fmt.Errorf("upcast %s@%d: %w", evs[i].Stream, evs[i].Revision, err)
		}
		evs[i].Event = ev
	}
	return evs, nil
}

func (s *upcastingStore) ReadStream(ctx context.Context, stream string, from uint64, dir Direction, max int) ([]RecordedEvent, error) {
	evs, err := s.Store.ReadStream(ctx, stream, from, dir, max)
	if err != nil {
		return nil, err
	}
	return s.upcast(evs)
}

func (s *upcastingStore) ReadAll(ctx context.Context, after Position, max int) ([]RecordedEvent, error) {
	evs, err := s.Store.ReadAll(ctx, after, max)
	if err != nil {
		return nil, err
	}
	return s.upcast(evs)
}

func (s *upcastingStore) SubscribeAll(ctx context.Context, after Position, h Handler) error {
	return s.Store.SubscribeAll(ctx, after, func(ctx context.Context, ev RecordedEvent) error {
		up, err := s.up.Upcast(ev.Event)
		if err != nil {
			return fmt.Errorf("upcast %s@%d: %w", ev.Stream, ev.Revision, err)
		}
		ev.Event = up
		return h(ctx, ev)
	})
}
