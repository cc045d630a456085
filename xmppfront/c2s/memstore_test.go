package c2s_test

import (
	"context"
	"errors"
	"sync"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// memStore is a test fake of the eventstore.Store port: just enough of it
// (append and stream reads) for account lookups, in memory.
type memStore struct {
	mu      sync.Mutex
	streams map[string][]eventstore.RecordedEvent
	pos     uint64
}

func newMemStore() *memStore { return &memStore{streams: map[string][]eventstore.RecordedEvent{}} }

func (s *memStore) Append(_ context.Context, stream string, expected eventstore.ExpectedRevision, events ...domain.Event) (eventstore.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.streams[stream]
	cur := uint64(len(evs)) - 1
	if !expected.Check(cur, len(evs) > 0) {
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: stream, Expected: expected, Actual: cur, Exists: len(evs) > 0}
	}
	var res eventstore.AppendResult
	for _, ev := range events {
		s.pos++
		rec := eventstore.RecordedEvent{Event: ev, Stream: stream, Revision: uint64(len(evs)), Position: eventstore.Position{Commit: s.pos, Prepare: s.pos}}
		evs = append(evs, rec)
		res = eventstore.AppendResult{NextRevision: rec.Revision, Position: rec.Position}
	}
	s.streams[stream] = evs
	return res, nil
}

func (s *memStore) AppendMulti(context.Context, ...eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	return nil, errors.New("memStore: AppendMulti not needed by these tests")
}

func (s *memStore) ReadStream(_ context.Context, stream string, from uint64, dir eventstore.Direction, max int) ([]eventstore.RecordedEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.streams[stream]
	var out []eventstore.RecordedEvent
	if dir == eventstore.Forwards {
		for i := from; i < uint64(len(evs)) && len(out) < max; i++ {
			out = append(out, evs[i])
		}
		return out, nil
	}
	for i := int64(min(from, uint64(len(evs))-1)); i >= 0 && len(out) < max && len(evs) > 0; i-- {
		out = append(out, evs[i])
	}
	return out, nil
}

func (s *memStore) ReadAll(context.Context, eventstore.Position, int) ([]eventstore.RecordedEvent, error) {
	return nil, errors.New("memStore: ReadAll not needed by these tests")
}

func (s *memStore) SubscribeAll(ctx context.Context, _ eventstore.Position, _ eventstore.Handler) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *memStore) Head(context.Context) (eventstore.Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return eventstore.Position{Commit: s.pos, Prepare: s.pos}, nil
}

func (s *memStore) Close() error { return nil }
