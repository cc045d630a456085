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

// Runner feeds projections from the log. It takes the bus's log topic
// once and hands each event to every projection's queue; each projection
// applies what has queued up since its last turn as one batch (one Pebble
// commit), so under load the cost of a commit is shared by many events,
// and a slow projection holds the others back only by the queue's length.
// Each projection skips the events at or before its own checkpoint: the
// pump starts from the oldest checkpoint, so a freshly reset projection
// rebuilds while the others catch up from where they were.
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

// maxQueued bounds each projection's queue: the events taken from the bus
// and not yet applied. A full queue holds the bus, and so the pump.
const maxQueued = 1024

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

// Run subscribes to the log topic, starts the pump from the oldest
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
	msgs, err := r.bus.Subscribe(gctx, bus.TopicLog)
	if err != nil {
		return fmt.Errorf("projections: subscribe: %w", err)
	}
	queues := make([]*queue, len(r.projs))
	for i, p := range r.projs {
		q := newQueue()
		queues[i] = q
		g.Go(func() error { return r.consume(gctx, p, q) })
	}
	g.Go(func() error { return dispatch(gctx, msgs, queues) })
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

// dispatch hands every log event from the bus to every queue, in order.
func dispatch(ctx context.Context, msgs <-chan *message.Message, queues []*queue) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			ev, err := bus.DecodeRecorded(m)
			m.Ack() // a message we cannot read must not stall the bus either
			if err != nil {
				return fmt.Errorf("projections: %w", err)
			}
			for _, q := range queues {
				if !q.push(ctx, ev) {
					return nil
				}
			}
		}
	}
}

// consume applies what q holds, a batch at a time, until ctx is done.
func (r *Runner) consume(ctx context.Context, p Projection, q *queue) error {
	name := p.Name()
	var evs []eventstore.RecordedEvent
	for {
		evs = q.take(ctx, evs[:0])
		if evs == nil {
			return nil
		}
		cp := r.Applied(name)
		i := 0
		for i < len(evs) && !cp.Less(evs[i].Position) {
			i++
		}
		todo := evs[i:]
		if len(todo) == 0 {
			continue
		}
		if err := p.Apply(ctx, todo); err != nil {
			return fmt.Errorf("projection %s: apply: %w", name, err)
		}
		r.setApplied(name, todo[len(todo)-1].Position)
	}
}

// queue is one projection's backlog of events.
type queue struct {
	mu   sync.Mutex
	evs  []eventstore.RecordedEvent
	more chan struct{} // holds a token while evs may be non-empty
	room chan struct{} // holds a token after take made room
}

func newQueue() *queue {
	return &queue{more: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push appends ev, waiting while the queue is full; false if ctx ended
// first.
func (q *queue) push(ctx context.Context, ev eventstore.RecordedEvent) bool {
	for {
		q.mu.Lock()
		if len(q.evs) < maxQueued {
			q.evs = append(q.evs, ev)
			q.mu.Unlock()
			signal(q.more)
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-ctx.Done():
			return false
		}
	}
}

// take moves everything queued into buf, waiting while there is nothing;
// nil once ctx has ended.
func (q *queue) take(ctx context.Context, buf []eventstore.RecordedEvent) []eventstore.RecordedEvent {
	for {
		q.mu.Lock()
		if len(q.evs) > 0 {
			buf = append(buf, q.evs...)
			clear(q.evs) // drop the bodies for the GC
			q.evs = q.evs[:0]
			q.mu.Unlock()
			signal(q.room)
			return buf
		}
		q.mu.Unlock()
		select {
		case <-q.more:
		case <-ctx.Done():
			return nil
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
