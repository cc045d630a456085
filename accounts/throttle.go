package accounts

import (
	"sync"
	"time"
)

// Throttle counts failed logins per key (an account or an address). After
// max failures within a penalty period the key is blocked for penalty;
// blocked attempts are refused without looking at the password, which caps
// online guessing at max per penalty period and costs the server nothing
// while blocked. Every front end that checks passwords (SASL, the HTTPS
// API) uses it, so the rules are the same wherever a user logs in.
type Throttle struct {
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

// NewThrottle returns a throttle that blocks a key for penalty after max
// failures; now is the clock (time.Now if nil).
func NewThrottle(max int, penalty time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{max: max, penalty: penalty, now: now, m: make(map[string]*failures)}
}

// Blocked reports whether key is in its penalty period.
func (t *Throttle) Blocked(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[key]
	return f != nil && t.now().Before(f.until)
}

// Fail records a failure; it reports whether key is now blocked.
func (t *Throttle) Fail(key string) bool {
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

// Succeed forgets key's failures.
func (t *Throttle) Succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[key]; f != nil && !t.now().Before(f.until) {
		delete(t.m, key)
	}
}

func (t *Throttle) sweep(now time.Time) {
	for k, f := range t.m {
		if now.Sub(f.last) > t.penalty && !now.Before(f.until) {
			delete(t.m, k)
		}
	}
}
