package c2s

import (
	"sync"
	"time"
)

// throttle counts failed logins per key (an account or an address). After
// max failures within a penalty period the key is blocked for penalty;
// blocked attempts are answered temporary-auth-failure without looking at
// the password, which caps online guessing at max per penalty period and
// costs the server nothing while blocked.
type throttle struct {
	max     int
	penalty time.Duration
	now     func() time.Time

	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	count int
	last  time.Time // last failure
	until time.Time // blocked until
}

// sweepAt is the size at which expired records are dropped, so the map
// stays bounded by the keys that failed within one penalty period.
const sweepAt = 4096

func newThrottle(max int, penalty time.Duration, now func() time.Time) *throttle {
	return &throttle{max: max, penalty: penalty, now: now, m: make(map[string]*failures)}
}

// blocked reports whether key is in its penalty period.
func (t *throttle) blocked(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[key]
	return f != nil && t.now().Before(f.until)
}

// fail records a failure; it reports whether key is now blocked.
func (t *throttle) fail(key string) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[key]
	if f == nil {
		if len(t.m) >= sweepAt {
			t.sweep(now)
		}
		f = &failures{}
		t.m[key] = f
	}
	if now.Sub(f.last) > t.penalty {
		f.count = 0 // old failures are forgiven
	}
	f.count++
	f.last = now
	if f.count >= t.max {
		f.count = 0
		f.until = now.Add(t.penalty)
		return true
	}
	return false
}

// succeed forgets key's failures.
func (t *throttle) succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[key]; f != nil && !t.now().Before(f.until) {
		delete(t.m, key)
	}
}

func (t *throttle) sweep(now time.Time) {
	for k, f := range t.m {
		if now.Sub(f.last) > t.penalty && !now.Before(f.until) {
			delete(t.m, k)
		}
	}
}
