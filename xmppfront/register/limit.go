package register

import (
	"net/netip"
	"sync"
	"time"
)

// limiter counts registrations per client network in fixed windows. An
// IPv6 client is counted by its /64, which is what one subscriber usually
// gets: counting single addresses would let anyone with a /64 register
// without limit.
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[netip.Prefix]*window
}

type window struct {
	start time.Time
	n     int
}

// sweepAt is the table size at which expired windows are dropped, which
// bounds the memory a stream of distinct addresses can take.
const sweepAt = 4096

func newLimiter(max int, w time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: w, now: now, seen: make(map[netip.Prefix]*window)}
}

func limitKey(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap()
	if !a.IsValid() {
		return netip.Prefix{}, false
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// allow reports whether the network of a may register now. An invalid
// address (the caller did not know it) is not limited.
func (l *limiter) allow(a netip.Addr) bool {
	k, ok := limitKey(a)
	if !ok || l.max <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.seen[k]
	return w == nil || l.now().Sub(w.start) >= l.window || w.n < l.max
}

// record counts a registration from a.
func (l *limiter) record(a netip.Addr) {
	k, ok := limitKey(a)
	if !ok || l.max <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.seen) >= sweepAt {
		for key, w := range l.seen {
			if now.Sub(w.start) >= l.window {
				delete(l.seen, key)
			}
		}
	}
	w := l.seen[k]
	if w == nil || now.Sub(w.start) >= l.window {
		l.seen[k] = &window{start: now, n: 1}
		return
	}
	w.n++
}
