// Package bus is the one place where verlauf's in-process event bus is
// wired. Events reach handlers and projections through watermill's
// Publisher/Subscriber ports; the default is the in-process GoChannel
// pub/sub, and a networked watermill pub/sub can replace it here without any
// handler noticing.
//
// Two kinds of traffic use it:
//
//   - TopicLog carries every event committed to the durable log, in log
//     order, published by Pump from a catch-up subscription of the store.
//     Projections consume it.
//   - Other topics (TopicStanza, …) carry transient events that are never
//     written to disk, such as stanzas on their way to the router.
//
// Delivery is ordered per topic: the GoChannel is configured to block each
// publish until every subscriber has acknowledged the message. That is what
// lets a projection trust that it sees the log without gaps or reordering,
// and it is also the back-pressure that keeps a slow consumer from growing
// memory without bound.
package bus

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"verlauf.im/verlauf/eventstore"
)

// Topics of the bus.
const (
	// TopicLog carries committed log events in log order.
	TopicLog = "log"
	// TopicStanza carries stanzas read from sessions, before routing.
	TopicStanza = "stanza"
)

// Bus is a publisher and a subscriber that share one transport.
type Bus struct {
	message.Publisher
	message.Subscriber
}

// InProcess returns the default bus: watermill's GoChannel, ordered and
// acknowledged per subscriber.
func InProcess(log *logrus.Entry) *Bus {
	gc := gochannel.NewGoChannel(gochannel.Config{
		OutputChannelBuffer:            0,
		BlockPublishUntilSubscriberAck: true,
	}, watermillLogger{log})
	return &Bus{Publisher: gc, Subscriber: gc}
}

// Close closes the transport.
func (b *Bus) Close() error {
	if err := b.Publisher.Close(); err != nil {
		return err
	}
	// GoChannel is both; closing it twice is harmless but networked
	// transports have separate halves.
	return b.Subscriber.Close()
}

// Metadata keys of a log event on the bus.
const (
	mdID       = "id"
	mdType     = "type"
	mdSchema   = "schema"
	mdTime     = "time"
	mdStream   = "stream"
	mdRevision = "rev"
	mdCommit   = "commit"
	mdPrepare  = "prepare"
)

// EncodeRecorded turns a log event into a bus message.
func EncodeRecorded(ev eventstore.RecordedEvent) *message.Message {
	m := message.NewMessage(ev.ID.String(), ev.Body)
	m.Metadata = message.Metadata{
		mdID:       ev.ID.String(),
		mdType:     ev.Type,
		mdSchema:   strconv.Itoa(ev.SchemaVersion),
		mdTime:     ev.Time.Format(time.RFC3339Nano),
		mdStream:   ev.Stream,
		mdRevision: strconv.FormatUint(ev.Revision, 10),
		mdCommit:   strconv.FormatUint(ev.Position.Commit, 10),
		mdPrepare:  strconv.FormatUint(ev.Position.Prepare, 10),
	}
	return m
}

// DecodeRecorded is the inverse of EncodeRecorded.
func DecodeRecorded(m *message.Message) (eventstore.RecordedEvent, error) {
	var (
		ev  eventstore.RecordedEvent
		err error
	)
	md := m.Metadata
	if ev.ID, err = uuid.Parse(md[mdID]); err != nil {
		return ev, fmt.Errorf("bus: log message id: %w", err)
	}
	ev.Type = md[mdType]
	if ev.SchemaVersion, err = strconv.Atoi(md[mdSchema]); err != nil {
		return ev, fmt.Errorf("bus: log message schema: %w", err)
	}
	if ev.Time, err = time.Parse(time.RFC3339Nano, md[mdTime]); err != nil {
		return ev, fmt.Errorf("bus: log message time: %w", err)
	}
	ev.Stream = md[mdStream]
	if ev.Revision, err = strconv.ParseUint(md[mdRevision], 10, 64); err != nil {
		return ev, fmt.Errorf("bus: log message revision: %w", err)
	}
	if ev.Position.Commit, err = strconv.ParseUint(md[mdCommit], 10, 64); err != nil {
		return ev, fmt.Errorf("bus: log message position: %w", err)
	}
	if ev.Position.Prepare, err = strconv.ParseUint(md[mdPrepare], 10, 64); err != nil {
		return ev, fmt.Errorf("bus: log message position: %w", err)
	}
	ev.Body = m.Payload
	return ev, nil
}

// Pump follows the store from position after and publishes every event on
// TopicLog, in order. It blocks until ctx is done or the store or the bus
// fails. Subscribers must be subscribed before Pump starts, or they miss the
// events published before they joined.
func Pump(ctx context.Context, store eventstore.Store, pub message.Publisher, after eventstore.Position) error {
	return store.SubscribeAll(ctx, after, func(_ context.Context, ev eventstore.RecordedEvent) error {
		if err := pub.Publish(TopicLog, EncodeRecorded(ev)); err != nil {
			return fmt.Errorf("bus: publish %s: %w", ev.Position, err)
		}
		return nil
	})
}

// watermillLogger adapts logrus to watermill's logger so that bus messages
// land in the same structured log as everything else.
type watermillLogger struct{ e *logrus.Entry }

func (l watermillLogger) fields(f watermill.LogFields) *logrus.Entry {
	return l.e.WithFields(logrus.Fields(f))
}

// Watermill logs every message it moves at Trace level; building the
// logrus fields for it cost a tenth of the server's CPU under load, so
// each method asks the level first.
func (l watermillLogger) enabled(level logrus.Level) bool { return l.e.Logger.IsLevelEnabled(level) }

func (l watermillLogger) Error(msg string, err error, f watermill.LogFields) {
	if l.enabled(logrus.ErrorLevel) {
		l.fields(f).WithError(err).Error(msg)
	}
}
func (l watermillLogger) Info(msg string, f watermill.LogFields) {
	if l.enabled(logrus.DebugLevel) {
		l.fields(f).Debug(msg)
	}
}
func (l watermillLogger) Debug(msg string, f watermill.LogFields) {
	if l.enabled(logrus.TraceLevel) {
		l.fields(f).Trace(msg)
	}
}
func (l watermillLogger) Trace(msg string, f watermill.LogFields) {
	if l.enabled(logrus.TraceLevel) {
		l.fields(f).Trace(msg)
	}
}
func (l watermillLogger) With(f watermill.LogFields) watermill.LoggerAdapter {
	return watermillLogger{l.fields(f)}
}
