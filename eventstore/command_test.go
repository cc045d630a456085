package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/embedded"
)

// A counter aggregate: "add" events carry an amount; the rule refuses to go
// above a limit. Small, but it has the shape of every real aggregate.
type added struct{ N int }

func (added) EventType() string       { return "test.added" }
func (added) EventSchemaVersion() int { return 1 }

var counter = eventstore.Aggregate[int]{
	Init: 0,
	Fold: func(s int, ev domain.Event) (int, error) {
		var a added
		if err := json.Unmarshal(ev.Body, &a); err != nil {
			return s, err
		}
		return s + a.N, nil
	},
}

var errOverLimit = errors.New("over the limit")

func add(n, limit int) eventstore.Decision[int] {
	return func(s int) ([]domain.Event, error) {
		if s+n > limit {
			return nil, errOverLimit
		}
		ev, err := domain.NewEvent(domain.SystemClock{}, added{n})
		return []domain.Event{ev}, err
	}
}

func openStore(t *testing.T) eventstore.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestExecuteFoldsDecidesAndAppends(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l, _, err := eventstore.Execute(ctx, s, "c", counter, add(3, 10))
	if err != nil || l.State != 3 || l.Revision != 0 || !l.Exists {
		t.Fatalf("first = %+v, %v", l, err)
	}
	l, _, err = eventstore.Execute(ctx, s, "c", counter, add(4, 10))
	if err != nil || l.State != 7 || l.Revision != 1 {
		t.Fatalf("second = %+v, %v", l, err)
	}
	// The rule refuses, and nothing is written.
	if _, _, err := eventstore.Execute(ctx, s, "c", counter, add(4, 10)); !errors.Is(err, errOverLimit) {
		t.Fatalf("over limit: %v", err)
	}
	loaded, err := eventstore.Load(ctx, s, "c", counter)
	if err != nil || loaded.State != 7 || loaded.Revision != 1 {
		t.Fatalf("load = %+v, %v", loaded, err)
	}
	// A decision with no events writes nothing and is no error.
	l, _, err = eventstore.Execute(ctx, s, "c", counter, func(int) ([]domain.Event, error) { return nil, nil })
	if err != nil || l.Revision != 1 {
		t.Fatalf("no-op = %+v, %v", l, err)
	}
}

// Concurrent commands on one stream: every one is decided on the state that
// actually precedes it, so the limit holds exactly even under races.
func TestExecuteRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	const workers, limit = 8, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				_, _, err := eventstore.Execute(ctx, s, "c", counter, add(1, limit))
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, errOverLimit):
					refused++
				case errors.Is(err, eventstore.ErrConflict):
					// gave up after MaxAttempts: allowed, but count it as neither
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	l, err := eventstore.Load(ctx, s, "c", counter)
	if err != nil {
		t.Fatal(err)
	}
	if l.State != ok {
		t.Fatalf("state %d but %d commands succeeded", l.State, ok)
	}
	if l.State > limit {
		t.Fatalf("state %d went over the limit %d", l.State, limit)
	}
	if refused == 0 {
		t.Fatalf("40 increments against a limit of 20 were never refused (ok %d)", ok)
	}
}

// Load pages through long streams.
func TestLoadLongStream(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	var evs []domain.Event
	for range 1300 {
		ev, _ := domain.NewEvent(domain.SystemClock{}, added{1})
		evs = append(evs, ev)
	}
	if _, err := s.Append(ctx, "long", eventstore.NoStream(), evs...); err != nil {
		t.Fatal(err)
	}
	l, err := eventstore.Load(ctx, s, "long", counter)
	if err != nil || l.State != 1300 || l.Revision != 1299 {
		t.Fatalf("load = %+v, %v", l, err)
	}
}

type failingUpcaster struct{}

func (failingUpcaster) Upcast(ev domain.Event) (domain.Event, error) {
	if ev.SchemaVersion > 1 {
		return ev, errors.New("too new")
	}
	ev.Body = []byte(`{"N":100}`)
	return ev, nil
}

func TestUpcastingAppliesOnEveryRead(t *testing.T) {
	ctx := context.Background()
	raw := openStore(t)
	s := eventstore.Upcasting(raw, failingUpcaster{})
	ev, _ := domain.NewEvent(domain.SystemClock{}, added{1})
	if _, err := s.Append(ctx, "u", eventstore.NoStream(), ev); err != nil {
		t.Fatal(err)
	}
	l, err := eventstore.Load(ctx, s, "u", counter)
	if err != nil || l.State != 100 {
		t.Fatalf("stream read not upcast: %+v, %v", l, err)
	}
	all, err := s.ReadAll(ctx, eventstore.Start, 10)
	if err != nil || string(all[0].Body) != `{"N":100}` {
		t.Fatalf("read-all not upcast: %v %v", all, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	var got string
	s.SubscribeAll(sctx, eventstore.Start, func(_ context.Context, ev eventstore.RecordedEvent) error {
		got = string(ev.Body)
		cancel()
		return nil
	})
	if got != `{"N":100}` {
		t.Fatalf("subscription not upcast: %q", got)
	}
	// The raw store still holds what was written.
	rawAll, _ := raw.ReadAll(ctx, eventstore.Start, 10)
	if string(rawAll[0].Body) != `{"N":1}` {
		t.Fatalf("the log was rewritten: %s", rawAll[0].Body)
	}
	// An upcast failure surfaces as an error, not as a silently skipped event.
	ev2 := ev
	ev2.SchemaVersion = 2
	ev2.ID[15]++
	s.Append(ctx, "u", eventstore.Any(), ev2)
	if _, err := eventstore.Load(ctx, s, "u", counter); err == nil {
		t.Fatal("an event the upcaster refuses loaded without error")
	}
}
