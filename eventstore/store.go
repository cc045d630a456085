// Package eventstore defines the Store port, the durable, append-only log
// that is verlauf's source of truth, and the small generic command helper
// that every front end uses to change an aggregate.
//
// The port is shaped after EventStoreDB/KurrentDB (streams with revisions,
// expected revisions on append, a global "$all" order, catch-up
// subscriptions) so that its adapters are thin: embedded (the default, on a
// local disk) and, later, esdb and postgres. Package storetest holds the
// contract suite every adapter must pass unchanged.
package eventstore

import (
	"context"
	"errors"
	"fmt"

	"verlauf.im/verlauf/domain"
)

// Position is a place in the global order of the log. Positions compare
// with Less; the zero Position is before the first event. The two halves
// mirror EventStoreDB's commit/prepare positions; adapters with a single
// sequence number (embedded, postgres) set both to it.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// Start is the position before the first event of the log.
var Start = Position{}

// Less reports whether p comes before q in the log.
func (p Position) Less(q Position) bool {
	if p.Commit != q.Commit {
		return p.Commit < q.Commit
	}
	return p.Prepare < q.Prepare
}

// String formats the position for logs.
func (p Position) String() string { return fmt.Sprintf("%d/%d", p.Commit, p.Prepare) }

// RecordedEvent is an event as the log holds it: the envelope plus where it
// sits in its stream and in the global order.
type RecordedEvent struct {
	domain.Event
	// Stream is the stream the event was appended to, e.g. "roster-alice@example.org".
	Stream string
	// Revision is the 0-based index of the event within its stream.
	Revision uint64
	// Position is the event's place in the global order.
	Position Position
}

// ExpectedRevision is the optimistic-concurrency condition of an append.
type ExpectedRevision struct {
	kind     expectKind
	revision uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectExact
)

// Any appends whatever the stream holds.
func Any() ExpectedRevision { return ExpectedRevision{kind: expectAny} }

// NoStream appends only if the stream has no events yet.
func NoStream() ExpectedRevision { return ExpectedRevision{kind: expectNoStream} }

// StreamExists appends only if the stream has at least one event.
func StreamExists() ExpectedRevision { return ExpectedRevision{kind: expectExists} }

// Exact appends only if the stream's last event has revision r.
func Exact(r uint64) ExpectedRevision { return ExpectedRevision{kind: expectExact, revision: r} }

// Check reports whether a stream whose last revision is current (exists
// false for an empty stream) satisfies the expectation. Adapters that check
// the condition themselves use it so that every adapter agrees on the rules.
func (e ExpectedRevision) Check(current uint64, exists bool) bool {
	switch e.kind {
	case expectNoStream:
		return !exists
	case expectExists:
		return exists
	case expectExact:
		return exists && current == e.revision
	default:
		return true
	}
}

// Revision returns the exact revision expected and whether the expectation
// is exact.
func (e ExpectedRevision) Revision() (uint64, bool) {
	return e.revision, e.kind == expectExact
}

// String formats the expectation for errors and logs.
func (e ExpectedRevision) String() string {
	switch e.kind {
	case expectNoStream:
		return "no-stream"
	case expectExists:
		return "stream-exists"
	case expectExact:
		return fmt.Sprintf("revision %d", e.revision)
	default:
		return "any"
	}
}

// ConflictError reports that an append's expected revision did not hold.
// Callers match it with errors.As, or errors.Is(err, ErrConflict).
type ConflictError struct {
	Stream   string
	Expected ExpectedRevision
	// Actual is the stream's last revision; Exists is false for an empty stream.
	Actual uint64
	Exists bool
}

func (e *ConflictError) Error() string {
	actual := "no stream"
	if e.Exists {
		actual = fmt.Sprintf("revision %d", e.Actual)
	}
	return fmt.Sprintf("eventstore: stream %q: expected %s, found %s", e.Stream, e.Expected, actual)
}

// Is makes errors.Is(err, ErrConflict) true for every ConflictError.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrConflict is matched by every *ConflictError.
var ErrConflict = errors.New("eventstore: wrong expected revision")

// ErrClosed is returned by a Store after Close.
var ErrClosed = errors.New("eventstore: store closed")

// AppendResult says where an append landed.
type AppendResult struct {
	// NextRevision is the revision of the last event appended.
	NextRevision uint64
	// Position is the global position of the last event appended.
	Position Position
}

// StreamAppend is one stream's part of an AppendMulti.
type StreamAppend struct {
	Stream   string
	Expected ExpectedRevision
	Events   []domain.Event
}

// Direction is the order of a stream read.
type Direction uint8

const (
	Forwards Direction = iota
	Backwards
)

// Handler receives the events of a subscription, one at a time and in log
// order. Returning an error ends the subscription with that error.
type Handler func(ctx context.Context, ev RecordedEvent) error

// Store is the durable log.
//
// Appends are atomic: all events of one call land, in order and contiguously
// in their stream, or none do. An append returns only once its events are
// durable (on disk for the embedded adapter).
type Store interface {
	// Append adds events to the end of stream if expected holds. With no
	// events it only checks expected.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...domain.Event) (AppendResult, error)

	// AppendMulti appends to several streams at once: every part's
	// expected revision is checked first, and then all the events are
	// durable together or none is. A stream may appear once. The results
	// are in the order of the parts.
	AppendMulti(ctx context.Context, appends ...StreamAppend) ([]AppendResult, error)

	// ReadStream returns up to max events of stream starting at revision
	// from (inclusive), forwards or backwards. Reading backwards from
	// math.MaxUint64 starts at the last event. A stream with no events
	// reads as empty, not as an error.
	ReadStream(ctx context.Context, stream string, from uint64, dir Direction, max int) ([]RecordedEvent, error)

	// ReadAll returns up to max events of the whole log that come after
	// position after, in global order.
	ReadAll(ctx context.Context, after Position, max int) ([]RecordedEvent, error)

	// SubscribeAll calls h for every event after position after, first the
	// ones already in the log, then each new one as it is appended, with no
	// gap and no duplicate at the switch from catching up to live. It
	// blocks until ctx is done (returning ctx.Err()), h fails, or the store
	// closes (returning ErrClosed).
	SubscribeAll(ctx context.Context, after Position, h Handler) error

	// Head is the position of the last event in the log (Start if empty).
	Head(ctx context.Context) (Position, error)

	// Close releases the store. Subscriptions end with ErrClosed.
	Close() error
}
