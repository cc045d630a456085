// Package migrations upgrades old events to the shapes the current code
// reads, and (later) migrates the schemas of external stores.
//
// The log is immutable: an event recorded with an old schema version stays
// as it was written. Instead of rewriting it, the read path passes every
// event through an Upcaster, which applies one step per version until the
// event reaches domain.CurrentSchemaVersion. Aggregates and projections
// therefore know only current shapes, and old Go types need not be kept.
//
// Steps work on the JSON body, not on Go structs, for the same reason: a
// step from v1 to v2 must not depend on a struct that a later change turns
// into v3.
package migrations

import (
	"errors"
	"fmt"

	"verlauf.im/verlauf/domain"
)

// Errors of upcasting, matched with errors.Is.
var (
	// ErrFutureVersion: the event was written by a newer verlauf than
	// this one; reading it with older rules could misinterpret it.
	ErrFutureVersion = errors.New("migrations: event schema version newer than this code")
	// ErrMissingStep: no step leads from the event's version towards the
	// current one.
	ErrMissingStep = errors.New("migrations: no upcast step")
	// ErrInvalidChain: the steps given to NewChain are inconsistent.
	ErrInvalidChain = errors.New("migrations: invalid upcast chain")
)

// Step upgrades the body of one event type from version From to From+1.
type Step struct {
	Type string
	From int
	Up   func(body []byte) ([]byte, error)
}

type stepKey struct {
	typ  string
	from int
}

// Chain is a domain.Upcaster made of steps keyed by (type, from version).
// It is immutable once built and safe for concurrent use.
type Chain struct {
	current func(eventType string) (int, bool)
	steps   map[stepKey]func([]byte) ([]byte, error)
}

var _ domain.Upcaster = (*Chain)(nil)

// NewChain builds a chain. current reports the version the code reads for each
// type (domain.CurrentSchemaVersion in production; tests pass their own).
// Every step must be for a type current knows, start at version 1 or
// later and below the current version, and be the only step for its
// (type, from); otherwise NewChain fails with ErrInvalidChain. Gaps are found
// only when an event needs the missing step (ErrMissingStep), because a
// version may have been introduced without ever being written.
func NewChain(current func(eventType string) (int, bool), steps ...Step) (*Chain, error) {
	if current == nil {
		return nil, fmt.Errorf("%w: no current-version function", ErrInvalidChain)
	}
	c := &Chain{current: current, steps: make(map[stepKey]func([]byte) ([]byte, error), len(steps))}
	for _, s := range steps {
		cur, ok := current(s.Type)
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: step for unknown type %q", ErrInvalidChain, s.Type)
		case s.Up == nil:
			return nil, fmt.Errorf("%w: %s v%d: nil step", ErrInvalidChain, s.Type, s.From)
		case s.From < 1 || s.From >= cur:
			return nil, fmt.Errorf("%w: %s v%d: current version is %d", ErrInvalidChain, s.Type, s.From, cur)
		}
		k := stepKey{s.Type, s.From}
		if _, dup := c.steps[k]; dup {
			return nil, fmt.Errorf("%w: two steps for %s v%d", ErrInvalidChain, s.Type, s.From)
		}
		c.steps[k] = s.Up
	}
	return c, nil
}

// New returns the chain of every step verlauf has ever needed (Steps), for
// domain.CurrentSchemaVersion: the Upcaster the read path uses. It builds a
// fresh chain on each call; call it once at start-up.
func New() *Chain {
	c, err := NewChain(domain.CurrentSchemaVersion, Steps()...)
	if err != nil {
		// The steps are fixed at compile time; a failure is a programming
		// error that every test run would catch.
		panic(err)
	}
	return c
}

// Steps lists verlauf's real upcast steps. Add a step here whenever an
// event's EventSchemaVersion is raised.
func Steps() []Step {
	return []Step{
		{Type: domain.TypeRosterItemSet, From: 1, Up: rosterItemSetV1toV2},
	}
}

// Upcast returns ev at its type's current schema version. Events already
// current pass unchanged, as do types outside the catalogue (domain.Decode
// reports those with domain.ErrUnknownEvent, where the reader can decide
// to skip them). A version above the current one is ErrFutureVersion.
func (c *Chain) Upcast(ev domain.Event) (domain.Event, error) {
	cur, known := c.current(ev.Type)
	if !known || ev.SchemaVersion == cur {
		return ev, nil
	}
	if ev.SchemaVersion > cur {
		return domain.Event{}, fmt.Errorf("%w: %s v%d, this code reads v%d (event %s)", ErrFutureVersion, ev.Type, ev.SchemaVersion, cur, ev.ID)
	}
	body := ev.Body
	for v := ev.SchemaVersion; v < cur; v++ {
		up, ok := c.steps[stepKey{ev.Type, v}]
		if !ok {
			return domain.Event{}, fmt.Errorf("%w: %s v%d (event %s)", ErrMissingStep, ev.Type, v, ev.ID)
		}
		next, err := up(body)
		if err != nil {
			return domain.Event{}, fmt.Errorf("migrations: upcast %s v%d to v%d (event %s): %w", ev.Type, v, v+1, ev.ID, err)
		}
		body = next
	}
	ev.Body = body
	ev.SchemaVersion = cur
	return ev, nil
}
