package accounts

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	th := NewThrottle(3, time.Minute, func() time.Time { return now })
	steps := []struct {
		advance time.Duration
		op      string // fail, succeed or check
		key     string
		blocked bool // expected blocked(key) after op
	}{
		{0, "fail", "a", false},
		{0, "fail", "a", false},
		{0, "check", "b", false},
		{0, "fail", "a", true}, // third failure blocks
		{30 * time.Second, "succeed", "a", true},
		{31 * time.Second, "check", "a", false}, // penalty over
		{0, "fail", "a", false},                 // counting starts afresh
		{2 * time.Minute, "fail", "a", false},   // old failures forgiven
		{0, "fail", "a", false},
		{0, "succeed", "a", false},
		{0, "fail", "a", false},
		{0, "fail", "a", false}, // success reset the count
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		switch s.op {
		case "fail":
			th.Fail(s.key)
		case "succeed":
			th.Succeed(s.key)
		}
		if got := th.Blocked(s.key); got != s.blocked {
			t.Fatalf("step %d (%s %s): blocked=%v, want %v", i, s.op, s.key, got, s.blocked)
		}
	}
}
