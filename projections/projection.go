// Package projections holds verlauf's read models: state derived from the
// durable log that the front ends query (rosters, the archive index, the
// offline queue). Every projection
//
//   - consumes the log in order, as delivered on the bus's log topic,
//   - stores the position of the last event it applied together with the
//     state that event produced, so it resumes exactly there after a restart,
//   - and can be dropped and rebuilt from the start of the log.
//
// The Runner drives a set of projections; the DB is the small local
// key-value store the built-in projections keep their state in.
package projections

import (
	"context"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// Projection is a checkpointed consumer of the log.
type Projection interface {
	// Name identifies the projection in checkpoints, logs and metrics.
	Name() string
	// Checkpoint is the position of the last event applied (Start if none).
	Checkpoint(ctx context.Context) (eventstore.Position, error)
	// Apply folds evs, in log order, into the read model and records the
	// last one's position as the checkpoint, atomically: after a crash
	// either all of it is there or none. Events the projection does not
	// care about still move the checkpoint (cheaply: it may keep it in
	// memory for a while).
	Apply(ctx context.Context, evs []eventstore.RecordedEvent) error
	// Reset drops the read model and the checkpoint, so that the next run
	// rebuilds from the start of the log.
	Reset(ctx context.Context) error
}

// userEvent reads the user a per-user stream belongs to and decodes the
// event. ok is false for a stream whose name holds no JID (streams of
// other concerns may have names SplitStream does not accept): such an
// event only moves the checkpoint.
func userEvent(ev eventstore.RecordedEvent) (user string, p domain.Payload, ok bool, err error) {
	_, u, err := domain.SplitStream(ev.Stream)
	if err != nil {
		return "", nil, false, nil
	}
	p, err = domain.Decode(ev.Event)
	if err != nil {
		return "", nil, false, err
	}
	return u.String(), p, true, nil
}
