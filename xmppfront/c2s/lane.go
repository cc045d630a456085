package c2s

import (
	"sync"
)

// lane runs fn on each item of a bounded queue, in order, on a goroutine
// that exists only while the queue holds items. fn also hears whether more
// items were queued behind this one, so that the writer can send a burst
// in one write. A bound session has two
// (its send queue and its work queue); most sessions are idle most of the
// time, and an idle session then holds no goroutine but its reader, no
// stack but the reader's and no queue buffer at all: the buffer is made by
// the first push and dropped when the queue runs empty. (Channels of the
// full length cost every idle session 2.5 KiB.)
//
// At most one goroutine runs a lane at a time: running is set by whoever
// starts one and cleared by that goroutine, under mu, when it finds the
// queue empty, so an item pushed in between is never left without one.
type lane[T any] struct {
	fn  func(v T, more bool)
	max int

	mu      sync.Mutex
	q       []T // the queue is q[head:]
	head    int
	running bool
	room    chan struct{} // made by a waiter on a full queue, closed when an item leaves
	wg      sync.WaitGroup
}

// newLane returns a lane that is held: items wait until release.
func newLane[T any](size int, fn func(v T, more bool)) *lane[T] {
	return &lane[T]{fn: fn, max: size, running: true}
}

// release starts running a held lane.
func (l *lane[T]) release() {
	l.wg.Add(1)
	go l.run()
}

// push queues v without waiting; false if the queue is full.
func (l *lane[T]) push(v T) bool {
	l.mu.Lock()
	if len(l.q)-l.head >= l.max {
		l.mu.Unlock()
		return false
	}
	if l.head > 0 && len(l.q) == cap(l.q) {
		// Reuse the room of the items already run before growing.
		n := copy(l.q, l.q[l.head:])
		clear(l.q[n:])
		l.q, l.head = l.q[:n], 0
	}
	l.q = append(l.q, v)
	start := !l.running
	if start {
		l.running = true
		l.wg.Add(1)
	}
	l.mu.Unlock()
	if start {
		go l.run()
	}
	return true
}

// full returns a channel that is closed once an item leaves the queue, or
// nil if the queue has room now.
func (l *lane[T]) full() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.q)-l.head < l.max {
		return nil
	}
	if l.room == nil {
		l.room = make(chan struct{})
	}
	return l.room
}

func (l *lane[T]) run() {
	defer l.wg.Done()
	var zero T
	for {
		l.mu.Lock()
		if l.head == len(l.q) {
			l.q, l.head, l.running = nil, 0, false
			l.mu.Unlock()
			return
		}
		v := l.q[l.head]
		l.q[l.head] = zero // the item is not kept alive by the buffer
		l.head++
		more := l.head < len(l.q)
		if l.room != nil {
			close(l.room)
			l.room = nil
		}
		l.mu.Unlock()
		l.fn(v, more)
	}
}

// idle reports whether no goroutine runs the lane and nothing is queued.
func (l *lane[T]) idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.running && len(l.q) == l.head
}

// wait returns once the queue is empty and no goroutine runs. The caller
// must first stop every push (the session's qclosed) and have released
// the lane.
func (l *lane[T]) wait() { l.wg.Wait() }
