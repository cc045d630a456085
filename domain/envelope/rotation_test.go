package envelope_test

import (
	"testing"
	"time"

	"verlauf.im/verlauf/domain/envelope"
)

func TestNeedsRotation(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	both := envelope.RotationPolicy{MaxAge: time.Hour, MaxUses: 100}
	tests := []struct {
		name   string
		policy envelope.RotationPolicy
		uses   int
		now    time.Time
		want   bool
	}{
		{"fresh", both, 0, created, false},
		{"young and lightly used", both, 99, created.Add(59 * time.Minute), false},
		{"use limit reached", both, 100, created.Add(time.Minute), true},
		{"age limit reached", both, 1, created.Add(time.Hour), true},
		{"clock went back", both, 1, created.Add(-time.Second), true},
		{"no age limit", envelope.RotationPolicy{MaxUses: 100}, 99, created.Add(1000 * time.Hour), false},
		{"no use limit", envelope.RotationPolicy{MaxAge: time.Hour}, 1 << 30, created.Add(time.Minute), false},
		{"default: a day", envelope.DefaultRotation(), 1, created.Add(24 * time.Hour), true},
		{"default: 10 000 uses", envelope.DefaultRotation(), 10_000, created.Add(time.Minute), true},
		{"default: within both", envelope.DefaultRotation(), 9_999, created.Add(23 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.NeedsRotation(created, tt.uses, tt.now); got != tt.want {
				t.Fatalf("NeedsRotation = %v, want %v", got, tt.want)
			}
		})
	}
}
