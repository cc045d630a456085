package envelope

import "time"

// RotationPolicy says when a data key should be replaced by a fresh one.
// Rotation is not needed for the cipher's sake (XChaCha20's random nonces
// allow far more records than any user writes); it sets the granularity of
// crypto-shredding (deleting one key forgets one key's worth of records,
// e.g. a day of history) and bounds how much one data key exposes if it
// leaks from memory.
type RotationPolicy struct {
	// MaxAge is how long a key may seal new records; 0 means no limit.
	MaxAge time.Duration
	// MaxUses is how many records a key may seal; 0 means no limit.
	MaxUses int
}

// DefaultRotation is one key per day or per 10 000 records, whichever
// comes first.
func DefaultRotation() RotationPolicy {
	return RotationPolicy{MaxAge: 24 * time.Hour, MaxUses: 10_000}
}

// NeedsRotation reports whether a key created at created that has sealed
// uses records must be replaced before sealing another one at now. A key
// that seems to come from the future (the clock went back) is rotated too:
// its age cannot be trusted.
func (p RotationPolicy) NeedsRotation(created time.Time, uses int, now time.Time) bool {
	if p.MaxUses > 0 && uses >= p.MaxUses {
		return true
	}
	if now.Before(created) {
		return true
	}
	return p.MaxAge > 0 && now.Sub(created) >= p.MaxAge
}
