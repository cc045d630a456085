package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
)

// Runner feeds projections from the log. Each projection gets its own
// subscription to the bus's log topic, so a slow one does not hold the
// others back more than the bus's ordering requires, and each skips the
// events at or before its own checkpoint. The pump starts from the oldest
// checkpoint, so a freshly reset projection rebuilds while the others catch
// up from where they were.
type Runner struct {
	store eventstore.Store
	bus   *bus.Bus
	log   *logrus.Entry
	projs []Projection

	mu      sync.Mutex
	applied map[string]eventstore.Position
	changed chan struct{} // closed and replaced whenever applied moves
	stopped chan struct{} // closed when Run returns
}

// ErrStopped is returned by WaitFor once the runner has stopped: the
// position waited for may never be applied.
var ErrStopped = errors.New("projections: runner stopped")

// NewRunner returns a runner for projs.
func NewRunner(store eventstore.Store, b *bus.Bus, log *logrus.Entry, projs ...Projection) *Runner {
	return &Runner{
		store:   store,
		bus:     b,
		log:     log,
		projs:   projs,
		applied: make(map[string]eventstore.Position),
		changed: make(chan struct{}),
		stopped: make(chan struct{}),
	}
}

// Run subscribes every projection, starts the pump from the oldest
// checkpoint and blocks until ctx is done or a projection fails. ready, if
// not nil, is closed once every projection has caught up with the head of
// the log as it was when Run started.
//
// Run may be called once.
func (r *Runner) Run(ctx context.Context, ready chan<- struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer close(r.stopped)

	oldest := eventstore.Position{}
	for i, p := range r.projs {
		cp, err := p.Checkpoint(ctx)
		if err != nil {
			return fmt.Errorf("projection %s: checkpoint: %w", p.Name(), err)
		}
		r.setApplied(p.Name(), cp)
		if i == 0 || cp.Less(oldest) {
			oldest = cp
		}
	}
	head, err := r.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("projections: head: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, p := range r.projs {
		msgs, err := r.bus.Subscribe(gctx, bus.TopicLog)
		if err != nil {
			return fmt.Errorf("projection %s: subscribe: %w", p.Name(), err)
		}
		g.Go(func() error { return r.consume(gctx, p, msgs) })
	}
	g.Go(func() error {
		err := bus.Pump(gctx, r.store, r.bus.Publisher, oldest)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	})
	if ready != nil {
		g.Go(func() error {
			if err := r.WaitAll(gctx, head); err != nil {
				return nil // shutting down before ready
			}
			close(ready)
			return nil
		})
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (r *Runner) consume(ctx context.Context, p Projection, msgs <-chan *message.Message) error {
	name := p.Name()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			ev, err := bus.DecodeRecorded(m)
			if err != nil {
				m.Ack() // a message we cannot read must not stall the bus
				return fmt.Errorf("projection %s: %w", name, err)
			}
			if cp := r.Applied(name); !cp.Less(ev.Position) {
				m.Ack()
				continue
			}
			if err := p.Apply(ctx, ev); err != nil {
				m.Ack()
				return fmt.Errorf("projection %s: apply %s (%s@%d): %w", name, ev.Position, ev.Stream, ev.Revision, err)
			}
			r.setApplied(name, ev.Position)
			m.Ack()
		}
	}
}

func (r *Runner) setApplied(name string, pos eventstore.Position) {
	r.mu.Lock()
	r.applied[name] = pos
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Applied is the position the named projection has applied up to.
func (r *Runner) Applied(name string) eventstore.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied[name]
}

// WaitFor blocks until the named projection has applied pos. Front ends
// call it after an append so that a read that follows sees its own write.
func (r *Runner) WaitFor(ctx context.Context, name string, pos eventstore.Position) error {
	for {
		r.mu.Lock()
		cur, ok := r.applied[name]
		ch := r.changed
		r.mu.Unlock()
		if !ok {
			return fmt.Errorf("projections: no projection %q", name)
		}
		if !cur.Less(pos) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stopped:
			return ErrStopped
		case <-ch:
		}
	}
}

// WaitAll blocks until every projection has applied pos.
func (r *Runner) WaitAll(ctx context.Context, pos eventstore.Position) error {
	for _, p := range r.projs {
		if err := r.WaitFor(ctx, p.Name(), pos); err != nil {
			return err
		}
	}
	return nil
}
