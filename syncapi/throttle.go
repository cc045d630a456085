package syncapi

import (
	"sync"
	"time"
)

// throttle counts failed logins per key (an account or an address), with
// the rules of the XMPP front end's SASL throttle: after max failures
// within a penalty period the key is refused for penalty, without the
// password being looked at.
type throttle struct {
	max     int
	penalty time.Duration
	now     func() time.Time

	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	count int
	last  time.Time
	until time.Time
}

// sweepAt bounds the map: past it, records older than a penalty go.
const sweepAt = 4096

func newThrottle(max int, penalty time.Duration, now func() time.Time) *throttle {
	return &throttle{max: max, penalty: penalty, now: now, m: map[string]*failures{}}
}

func (t *throttle) blocked(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[key]
	return f != nil && t.now().Before(f.until)
}

func (t *throttle) fail(key string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[key]
	if f == nil {
		if len(t.m) >= sweepAt {
			for k, g := range t.m {
				if now.Sub(g.last) > t.penalty && !now.Before(g.until) {
					delete(t.m, k)
				}
			}
		}
		f = &failures{}
		t.m[key] = f
	}
	if now.Sub(f.last) > t.penalty {
		f.count = 0
	}
	f.count++
	f.last = now
	if f.count >= t.max {
		f.count = 0
		f.until = now.Add(t.penalty)
	}
}

func (t *throttle) succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[key]; f != nil && !t.now().Before(f.until) {
		delete(t.m, key)
	}
}
