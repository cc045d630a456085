package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
)

func TestRecordedRoundTrip(t *testing.T) {
	in := eventstore.RecordedEvent{
		Event: domain.Event{
			ID:            uuid.Must(uuid.NewV7()),
			Type:          "roster.item_set",
			SchemaVersion: 2,
			Time:          time.Date(2026, 11, 29, 1, 2, 3, 456789012, time.UTC),
			Body:          []byte(`{"jid":"juliet@example.com"}`),
		},
		Stream:   "roster-romeo@example.net",
		Revision: 41,
		Position: eventstore.Position{Commit: 1 << 40, Prepare: 1<<40 + 7},
	}
	out, err := bus.DecodeRecorded(bus.EncodeRecorded(in))
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Type != in.Type || out.SchemaVersion != in.SchemaVersion ||
		!out.Time.Equal(in.Time) || string(out.Body) != string(in.Body) ||
		out.Stream != in.Stream || out.Revision != in.Revision || out.Position != in.Position {
		t.Fatalf("round trip changed the event:\n in  %+v\n out %+v", in, out)
	}
}

func TestDecodeRejectsDamagedMetadata(t *testing.T) {
	for _, key := range []string{"id", "schema", "time", "rev", "commit", "prepare"} {
		m := bus.EncodeRecorded(eventstore.RecordedEvent{Event: domain.Event{ID: uuid.New(), Time: time.Now()}})
		m.Metadata[key] = "garbage"
		if _, err := bus.DecodeRecorded(m); err == nil {
			t.Errorf("metadata %s=garbage decoded without error", key)
		}
	}
}

// The in-process bus delivers in publish order to each subscriber: the
// projections rely on it.
func TestInProcessIsOrdered(t *testing.T) {
	b := bus.InProcess(logrus.NewEntry(logrus.New()))
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 2000
	ch1, err := b.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := b.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range n {
			ev := eventstore.RecordedEvent{Event: domain.Event{ID: uuid.New(), Time: time.Now()}, Revision: uint64(i)}
			if err := b.Publish("t", bus.EncodeRecorded(ev)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	got1, got2 := 0, 0
	for got1 < n || got2 < n {
		select {
		case m := <-ch1:
			ev, _ := bus.DecodeRecorded(m)
			if ev.Revision != uint64(got1) {
				t.Fatalf("subscriber 1: got %d, want %d", ev.Revision, got1)
			}
			got1++
			m.Ack()
		case m := <-ch2:
			ev, _ := bus.DecodeRecorded(m)
			if ev.Revision != uint64(got2) {
				t.Fatalf("subscriber 2: got %d, want %d", ev.Revision, got2)
			}
			got2++
			m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("stalled at %d/%d", got1, got2)
		}
	}
}
