package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"verlauf.im/verlauf/domain"
)

// Aggregate says how to rebuild a state S from the events of its stream.
// Fold must be pure: the same events always give the same state.
type Aggregate[S any] struct {
	// Init is the state of an empty stream.
	Init S
	// Fold applies one recorded event to the state.
	Fold func(S, domain.Event) (S, error)
}

// Decision is what a command decides from the current state: the events to
// append, nil for none. It must be pure, because it runs again from a fresh
// state when a concurrent writer got there first.
type Decision[S any] func(S) ([]domain.Event, error)

// Loaded is an aggregate's state and the revision it was read at.
type Loaded[S any] struct {
	State S
	// Revision is the last revision folded; Exists is false for an empty stream.
	Revision uint64
	Exists   bool
}

// Expected is the expectation under which events decided from l may be
// appended: nothing has been written since l was read.
func (l Loaded[S]) Expected() ExpectedRevision {
	if !l.Exists {
		return NoStream()
	}
	return Exact(l.Revision)
}

// readPage bounds the memory of loading a long stream.
const readPage = 512

// Load folds every event of stream into agg's state.
func Load[S any](ctx context.Context, store Store, stream string, agg Aggregate[S]) (Loaded[S], error) {
	l := Loaded[S]{State: agg.Init}
	var from uint64
	for {
		evs, err := store.ReadStream(ctx, stream, from, Forwards, readPage)
		if err != nil {
			return l, fmt.Errorf("load %s: %w", stream, err)
		}
		for _, ev := range evs {
			if l.State, err = agg.Fold(l.State, ev.Event); err != nil {
				return l, fmt.Errorf("load %s: fold revision %d (%s): %w", stream, ev.Revision, ev.Type, err)
			}
			l.Revision, l.Exists = ev.Revision, true
		}
		if len(evs) < readPage {
			return l, nil
		}
		from = l.Revision + 1
	}
}

// MaxAttempts is how often Execute tries a command whose append keeps
// losing races before giving up with the conflict.
const MaxAttempts = 16

// Execute is the one path by which a command changes an aggregate: load the
// stream, let decide pick the events from the state, append them with the
// revision that was read, and start over if another writer appended in
// between. It returns the state after the new events are folded in.
//
// Every front end (c2s, admin socket, syncapi) goes through here so that no
// one writes events its own way.
func Execute[S any](ctx context.Context, store Store, stream string, agg Aggregate[S], decide Decision[S]) (Loaded[S], AppendResult, error) {
	var lastErr error
	for attempt := range MaxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return Loaded[S]{}, AppendResult{}, fmt.Errorf("execute on %s: %w", stream, err)
			}
		}
		l, err := Load(ctx, store, stream, agg)
		if err != nil {
			return l, AppendResult{}, err
		}
		evs, err := decide(l.State)
		if err != nil {
			return l, AppendResult{}, err
		}
		if len(evs) == 0 {
			return l, AppendResult{NextRevision: l.Revision}, nil
		}
		res, err := store.Append(ctx, stream, l.Expected(), evs...)
		if errors.Is(err, ErrConflict) {
			lastErr = err
			continue
		}
		if err != nil {
			return l, res, fmt.Errorf("execute on %s: %w", stream, err)
		}
		for _, ev := range evs {
			if l.State, err = agg.Fold(l.State, ev); err != nil {
				return l, res, fmt.Errorf("execute on %s: fold new %s: %w", stream, ev.Type, err)
			}
		}
		l.Revision, l.Exists = res.NextRevision, true
		return l, res, nil
	}
	return Loaded[S]{}, AppendResult{}, fmt.Errorf("execute on %s: gave up after %d attempts: %w", stream, MaxAttempts, lastErr)
}

// LastEvent reads the newest event of stream, if any.
func LastEvent(ctx context.Context, store Store, stream string) (RecordedEvent, bool, error) {
	evs, err := store.ReadStream(ctx, stream, math.MaxUint64, Backwards, 1)
	if err != nil || len(evs) == 0 {
		return RecordedEvent{}, false, err
	}
	return evs[0], true, nil
}

// backoff waits a random time that grows with the attempt, so writers that
// collided on one stream spread out instead of colliding again in step.
func backoff(ctx context.Context, attempt int) error {
	max := time.Duration(50<<min(attempt, 8)) * time.Microsecond
	t := time.NewTimer(rand.N(max))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
