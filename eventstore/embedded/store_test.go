package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/storetest"
)

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventstore.Store { return openTest(t, t.TempDir()) })
}

// event makes an event with a fresh UUIDv7 and the given JSON body.
func event(body string) domain.Event {
	return domain.Event{ID: uuid.Must(uuid.NewV7()), Type: "test.event", SchemaVersion: 1, Time: time.Now().UTC(), Body: []byte(body)}
}

func TestInvalidStreamNames(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := t.Context()
	for _, name := range []string{"", "a\x00b", "\x00", "bad\xffutf8"} {
		if _, err := s.Append(ctx, name, eventstore.Any(), event("{}")); !errors.Is(err, ErrInvalidStream) {
			t.Errorf("Append(%q) = %v, want ErrInvalidStream", name, err)
		}
		if _, err := s.ReadStream(ctx, name, 0, eventstore.Forwards, 1); !errors.Is(err, ErrInvalidStream) {
			t.Errorf("ReadStream(%q) = %v, want ErrInvalidStream", name, err)
		}
	}
	if h, _ := s.Head(ctx); h != eventstore.Start {
		t.Errorf("rejected appends moved the head to %s", h)
	}
	for _, name := range []string{"a", "ünïcødé ✓", "roster-alice@example.org/phone", "\x01"} {
		if _, err := s.Append(ctx, name, eventstore.NoStream(), event("{}")); err != nil {
			t.Errorf("Append(%q) = %v", name, err)
		}
	}
}

func TestBadMax(t *testing.T) {
	s := openTest(t, t.TempDir())
	if _, err := s.ReadStream(t.Context(), "a", 0, eventstore.Forwards, 0); err == nil {
		t.Error("ReadStream with max 0 succeeded")
	}
	if _, err := s.ReadAll(t.Context(), eventstore.Start, -1); err == nil {
		t.Error("ReadAll with max -1 succeeded")
	}
}

// TestReopen checks that the log, the stream index and the sequence
// continue where they were after a clean close.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := []domain.Event{event(`{"n":1}`), event(`{"n":2}`)}
	if _, err := s.Append(ctx, "s", eventstore.NoStream(), first...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = openTest(t, dir)
	if h, _ := s.Head(ctx); h != (eventstore.Position{Commit: 2, Prepare: 2}) {
		t.Fatalf("Head after reopen = %s, want 2/2", h)
	}
	if _, err := s.Append(ctx, "s", eventstore.NoStream(), event("{}")); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("NoStream on a reopened stream = %v, want a conflict", err)
	}
	res, err := s.Append(ctx, "s", eventstore.Exact(1), event(`{"n":3}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.NextRevision != 2 || res.Position.Commit != 3 {
		t.Errorf("append after reopen = %+v, want revision 2 at 3", res)
	}
	evs, err := s.ReadStream(ctx, "s", math.MaxUint64, eventstore.Backwards, 10)
	if err != nil || len(evs) != 3 || evs[2].ID != first[0].ID {
		t.Fatalf("ReadStream after reopen = %d events, %v", len(evs), err)
	}
}

func TestRecordEncoding(t *testing.T) {
	ev := domain.Event{
		ID:            uuid.New(),
		Type:          "t",
		SchemaVersion: -3,
		Time:          time.Date(1600, 1, 1, 0, 0, 0, 1, time.UTC), // outside UnixNano's range
		Body:          []byte(`{"x":1}`),
	}
	rec := appendRecord(nil, "stream", 42, ev)
	got, err := decodeRecord(9, rec)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stream != "stream" || got.Revision != 42 || got.Position.Commit != 9 || got.ID != ev.ID ||
		got.Type != ev.Type || got.SchemaVersion != ev.SchemaVersion || !got.Time.Equal(ev.Time) || string(got.Body) != string(ev.Body) {
		t.Fatalf("decoded %+v, want %+v", got, ev)
	}
	for n := range len(rec) {
		if _, err := decodeRecord(9, rec[:n]); !errors.Is(err, errCorrupt) {
			t.Fatalf("decoding %d of %d bytes = %v, want errCorrupt", n, len(rec), err)
		}
	}
	bad := append([]byte{}, rec...)
	bad[0] = 2
	if _, err := decodeRecord(9, bad); !errors.Is(err, errCorrupt) {
		t.Fatalf("unknown version decoded: %v", err)
	}
}

// FuzzDecodeRecord checks that no stored bytes make the decoder panic, and
// that whatever decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, "s", 1, domain.Event{Type: "t", Time: time.Unix(1, 2), Body: []byte("{}")}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		re, err := decodeRecord(1, b)
		if err != nil {
			return
		}
		again := appendRecord(nil, re.Stream, re.Revision, re.Event)
		if _, err := decodeRecord(1, again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}

// Reads of the log go to the in-memory tail for recent records and to
// Pebble for older ones; wherever a read starts and however the appends
// were grouped, it returns every record once, in order. A reopened store
// has an empty tail and reads everything from Pebble.
func TestReadAllAcrossTheTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const n = tailSize*2 + tailSize/2
	var bodies []string
	for len(bodies) < n {
		// Groups of 1 to 7 events, to streams of three kinds.
		k := len(bodies)%7 + 1
		var evs []domain.Event
		for i := 0; i < k && len(bodies) < n; i++ {
			b := fmt.Sprintf(`{"n":%d}`, len(bodies))
			bodies = append(bodies, b)
			evs = append(evs, event(b))
		}
		if _, err := s.Append(ctx, fmt.Sprintf("s-%d", len(bodies)%3), eventstore.Any(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store, name string) {
		t.Helper()
		for _, start := range []uint64{0, 1, tailSize, n - tailSize - 1, n - tailSize, n - tailSize + 1, n - 5, n - 1, n} {
			var got []string
			after := eventstore.Position{Commit: start, Prepare: start}
			for {
				evs, err := s.ReadAll(ctx, after, 100)
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) == 0 {
					break
				}
				for i, ev := range evs {
					if want := after.Commit + uint64(i) + 1; ev.Position.Commit != want {
						t.Fatalf("%s, from %d: position %d, want %d", name, start, ev.Position.Commit, want)
					}
					got = append(got, string(ev.Body))
				}
				after = evs[len(evs)-1].Position
			}
			if want := bodies[start:]; !slices.Equal(got, want) {
				t.Fatalf("%s, from %d: %d records, want %d (first %q)", name, start, len(got), len(want), got[:min(1, len(got))])
			}
		}
	}
	check(s, "live")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openTest(t, dir), "reopened")
}
