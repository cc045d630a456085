package c2s

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLane pushes from many goroutines at once and checks that every item
// runs exactly once, one at a time, in each pusher's order, and that no
// goroutine is left once the queue is empty.
func TestLane(t *testing.T) {
	const pushers, each = 8, 2000
	var (
		active, maxActive atomic.Int32
		mu                sync.Mutex
		last              = map[int]int{}
		ran               int
		outOfOrder        int
	)
	l := newLane(16, func(v [2]int, _ bool) {
		if n := active.Add(1); n > maxActive.Load() {
			maxActive.Store(n)
		}
		mu.Lock()
		if prev, ok := last[v[0]]; ok && v[1] != prev+1 {
			outOfOrder++
		}
		last[v[0]] = v[1]
		ran++
		mu.Unlock()
		active.Add(-1)
	})
	l.release()
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range each {
				for !l.push([2]int{p, i}) {
					// Full: a goroutine is draining it; try again.
				}
			}
		})
	}
	wg.Wait()
	l.wait()
	if ran != pushers*each {
		t.Fatalf("ran %d items, want %d", ran, pushers*each)
	}
	if outOfOrder != 0 {
		t.Errorf("%d items ran out of their pusher's order", outOfOrder)
	}
	if maxActive.Load() != 1 {
		t.Errorf("%d goroutines ran the lane at once, want 1", maxActive.Load())
	}
	if !l.idle() {
		t.Error("a goroutine still holds the lane, or items are left")
	}
	if l.q != nil {
		t.Errorf("an empty lane keeps a buffer of %d items", cap(l.q))
	}
}

// TestLaneHeld checks that a held lane runs nothing until release, and
// that each item hears whether more were queued behind it.
func TestLaneHeld(t *testing.T) {
	var ran atomic.Int32
	var more []bool
	l := newLane(4, func(_ int, m bool) {
		ran.Add(1)
		more = append(more, m)
	})
	for i := range 3 {
		if !l.push(i) {
			t.Fatal("push to a held lane with room failed")
		}
	}
	if ran.Load() != 0 {
		t.Fatalf("a held lane ran %d items", ran.Load())
	}
	l.release()
	l.wait()
	if ran.Load() != 3 {
		t.Fatalf("after release: ran %d, want 3", ran.Load())
	}
	if want := []bool{true, true, false}; !slices.Equal(more, want) {
		t.Errorf("more = %v, want %v", more, want)
	}
}

// TestLaneFull checks the bound: a held lane takes max items, refuses the
// next, and tells a waiter when running it makes room.
func TestLaneFull(t *testing.T) {
	gate := make(chan struct{})
	l := newLane(3, func(int, bool) { <-gate })
	for i := range 3 {
		if !l.push(i) {
			t.Fatalf("push %d of 3 failed", i)
		}
	}
	if l.push(3) {
		t.Fatal("a full lane took a fourth item")
	}
	room := l.full()
	if room == nil {
		t.Fatal("full() = nil on a full lane")
	}
	l.release() // the goroutine takes item 0 and blocks in fn
	<-room
	if !l.push(3) {
		t.Fatal("no room after an item left")
	}
	close(gate)
	l.wait()
	if !l.idle() || l.q != nil {
		t.Fatal("lane not idle and empty after its items ran")
	}
}
