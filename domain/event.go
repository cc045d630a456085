package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Clock is the only way the domain learns the time. Production passes
// SystemClock; tests pass a fixed clock so that events are reproducible.
type Clock interface {
	Now() time.Time
}

// SystemClock reads the wall clock.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// ClockFunc adapts a function to a Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// Event is the immutable envelope of everything verlauf records. The body is
// JSON so that events stay readable by any tool that can read the log, and so
// that old schema versions can be upcast (see package migrations) without
// keeping old Go types around.
type Event struct {
	// ID is a UUIDv7: unique and ordered by creation time.
	ID uuid.UUID
	// Type names the event in the catalogue, e.g. "account.registered".
	Type string
	// SchemaVersion is the version of Body's shape for this Type.
	SchemaVersion int
	// Time is when the event was decided, from the command's Clock.
	Time time.Time
	// Body is the JSON encoding of the event's payload.
	Body []byte
}

// ErrUnknownEvent is returned when a body is decoded for a type that is not
// in the catalogue.
var ErrUnknownEvent = errors.New("domain: unknown event type")

// Payload is implemented by every event body of the catalogue.
type Payload interface {
	// EventType is the catalogue name of the event.
	EventType() string
	// EventSchemaVersion is the current version of the body's shape.
	EventSchemaVersion() int
}

// NewEvent wraps p in an envelope with a fresh UUIDv7 and the clock's time.
func NewEvent(clock Clock, p Payload) (Event, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("domain: new event id: %w", err)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return Event{}, fmt.Errorf("domain: encode %s: %w", p.EventType(), err)
	}
	return Event{
		ID:            id,
		Type:          p.EventType(),
		SchemaVersion: p.EventSchemaVersion(),
		Time:          clock.Now().UTC(),
		Body:          body,
	}, nil
}

// Upcaster upgrades an event recorded with an older schema version to the
// current one. Implementations live in package migrations; the read path
// applies them so that aggregates and projections only ever see current
// shapes.
type Upcaster interface {
	Upcast(Event) (Event, error)
}
