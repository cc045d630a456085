package c2s

import (
	"sync"
	"sync/atomic"
)

// lane runs fn on each item of a bounded queue, in order, on a goroutine
// that exists only while the queue holds items. A bound session has two
// (its send queue and its work queue); most sessions are idle most of the
// time, and an idle session then holds no goroutine but its reader, and
// no stack but the reader's.
//
// At most one goroutine runs a lane at a time: running is set by whoever
// starts one and cleared by that goroutine only once it has seen the queue
// empty, after which it looks once more, so an item pushed in between is
// never left without a goroutine.
type lane[T any] struct {
	q       chan T
	fn      func(T)
	running atomic.Bool
	wg      sync.WaitGroup
}

// newLane returns a lane that is held: items wait until release.
func newLane[T any](size int, fn func(T)) *lane[T] {
	l := &lane[T]{q: make(chan T, size), fn: fn}
	l.running.Store(true)
	return l
}

// release starts running a held lane.
func (l *lane[T]) release() {
	l.wg.Add(1)
	go l.run()
}

// push queues v without waiting; false if the queue is full.
func (l *lane[T]) push(v T) bool {
	select {
	case l.q <- v:
	default:
		return false
	}
	l.kick()
	return true
}

// kick starts a goroutine for items just queued, unless one runs.
func (l *lane[T]) kick() {
	if l.running.CompareAndSwap(false, true) {
		l.wg.Add(1)
		go l.run()
	}
}

func (l *lane[T]) run() {
	defer l.wg.Done()
	for {
		select {
		case v := <-l.q:
			l.fn(v)
			continue
		default:
		}
		l.running.Store(false)
		if len(l.q) == 0 || !l.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// wait returns once the queue is empty and no goroutine runs. The caller
// must first stop every push (the session's qclosed) and have released
// the lane.
func (l *lane[T]) wait() { l.wg.Wait() }
