package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/projections"
)

// counter is a small projection for testing the runner: it counts events
// per stream in the projections DB.
type counter struct {
	name string
	db   *projections.DB
	// failAt makes Apply fail at this many applied events (0: never).
	failAt  int
	mu      sync.Mutex
	calls   int // events seen by Apply
	batches int // calls of Apply
}

func (c *counter) Name() string { return c.name }
func (c *counter) Checkpoint(context.Context) (eventstore.Position, error) {
	return c.db.Checkpoint(c.name)
}
func (c *counter) Reset(context.Context) error { return c.db.Reset(c.name) }
func (c *counter) Apply(_ context.Context, evs []eventstore.RecordedEvent) error {
	c.mu.Lock()
	c.batches++
	c.mu.Unlock()
	return c.db.Apply(c.name, evs, func(t *projections.Txn, ev eventstore.RecordedEvent) error {
		c.mu.Lock()
		c.calls++
		n := c.calls
		c.mu.Unlock()
		if c.failAt > 0 && n == c.failAt {
			return fmt.Errorf("injected failure at %d", n)
		}
		// Read through the transaction: an earlier event of the same
		// batch has written this key without committing it yet.
		v, _, err := t.Get([]byte(ev.Stream))
		if err != nil {
			return err
		}
		var count int
		if v != nil {
			json.Unmarshal(v, &count)
		}
		b, _ := json.Marshal(count + 1)
		return t.Set([]byte(ev.Stream), b)
	})
}

func (c *counter) count(t *testing.T, stream string) int {
	t.Helper()
	v, ok, err := c.db.Get(c.name, []byte(stream))
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return 0
	}
	var n int
	json.Unmarshal(v, &n)
	return n
}

type payload struct{ N int }

func (payload) EventType() string       { return "test.event" }
func (payload) EventSchemaVersion() int { return 1 }

func appendN(t *testing.T, s eventstore.Store, stream string, n int) eventstore.Position {
	t.Helper()
	var last eventstore.Position
	for i := range n {
		ev, err := domain.NewEvent(domain.SystemClock{}, payload{i})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Append(context.Background(), stream, eventstore.Any(), ev)
		if err != nil {
			t.Fatal(err)
		}
		last = res.Position
	}
	return last
}

type env struct {
	dir   string
	store *embedded.Store
	db    *projections.DB
}

func open(t *testing.T, dir string) *env {
	t.Helper()
	s, err := embedded.Open(context.Background(), dir+"/events", embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenDB(dir + "/proj")
	if err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, store: s, db: db}
}

func (e *env) close() {
	e.db.Close()
	e.store.Close()
}

// run starts a runner and returns once every projection caught up with
// the head; stop ends it and returns Run's error.
func run(t *testing.T, e *env, projs ...projections.Projection) (r *projections.Runner, stop func() error) {
	t.Helper()
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetLevel(logrus.WarnLevel)
	b := bus.InProcess(log)
	r = projections.NewRunner(e.store, b, log, projs...)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("runner ended before ready: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("runner not ready after 20s")
	}
	return r, func() error {
		cancel()
		err := <-errc
		b.Close()
		return err
	}
}

func TestRunnerCatchesUpThenFollowsLive(t *testing.T) {
	e := open(t, t.TempDir())
	defer e.close()
	appendN(t, e.store, "a", 100)
	c := &counter{name: "count", db: e.db}
	r, stop := run(t, e, c)
	if got := c.count(t, "a"); got != 100 {
		t.Fatalf("after catch-up: %d events of a, want 100", got)
	}
	pos := appendN(t, e.store, "b", 50)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, "count", pos); err != nil {
		t.Fatal(err)
	}
	if got := c.count(t, "b"); got != 50 {
		t.Fatalf("live: %d events of b, want 50", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A projection resumes from its checkpoint: after a restart it applies only
// what it has not seen, so nothing is counted twice.
func TestRunnerResumesFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	appendN(t, e.store, "a", 30)
	c := &counter{name: "count", db: e.db}
	_, stop := run(t, e, c)
	stop()
	e.close()

	e = open(t, dir)
	defer e.close()
	appendN(t, e.store, "a", 20)
	c2 := &counter{name: "count", db: e.db}
	_, stop = run(t, e, c2)
	defer stop()
	if got := c2.count(t, "a"); got != 50 {
		t.Fatalf("after restart: %d, want 50 (30 before + 20 after, none twice)", got)
	}
	if c2.calls != 20 {
		t.Fatalf("the restarted projection applied %d events, want only the 20 new ones", c2.calls)
	}
}

// Reset rebuilds from zero while another projection, already current, is
// not fed anything twice.
func TestRunnerRebuildAfterReset(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	defer e.close()
	appendN(t, e.store, "a", 40)
	c1 := &counter{name: "one", db: e.db}
	c2 := &counter{name: "two", db: e.db}
	_, stop := run(t, e, c1, c2)
	stop()

	if err := c1.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c1.count(t, "a"); got != 0 {
		t.Fatalf("after reset: %d, want 0", got)
	}
	c1 = &counter{name: "one", db: e.db}
	c2 = &counter{name: "two", db: e.db}
	_, stop = run(t, e, c1, c2)
	defer stop()
	if got := c1.count(t, "a"); got != 40 {
		t.Fatalf("rebuilt: %d, want 40", got)
	}
	if got := c2.count(t, "a"); got != 40 || c2.calls != 0 {
		t.Fatalf("untouched projection: count %d, %d calls; want 40 and 0", got, c2.calls)
	}
}

// A failing event stops the runner, and its batch is not applied: what is
// stored is a consistent state with the checkpoint of the last batch that
// committed, before the failing event.
func TestRunnerStopsOnApplyError(t *testing.T) {
	e := open(t, t.TempDir())
	defer e.close()
	appendN(t, e.store, "a", 10)
	c := &counter{name: "count", db: e.db, failAt: 5}
	log := logrus.NewEntry(logrus.New())
	b := bus.InProcess(log)
	defer b.Close()
	r := projections.NewRunner(e.store, b, log, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := r.Run(ctx, nil)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "injected failure at 5") {
		t.Fatalf("Run = %v (ctx %v), want the injected failure", err, ctx.Err())
	}
	got := c.count(t, "a")
	if got >= 5 {
		t.Fatalf("applied %d events, want fewer than the failing 5th", got)
	}
	cp, _ := c.Checkpoint(context.Background())
	evs, _ := e.store.ReadAll(context.Background(), eventstore.Start, 10)
	want := eventstore.Start
	if got > 0 {
		want = evs[got-1].Position
	}
	if cp != want {
		t.Fatalf("checkpoint %v with %d events applied, want %v", cp, got, want)
	}
}

// A wait for a position the runner will never apply ends when the runner
// stops: a session finishing at shutdown must not wait forever for an
// index that no longer moves.
func TestRunnerWaitForEndsWhenStopped(t *testing.T) {
	e := open(t, t.TempDir())
	defer e.close()
	c := &counter{name: "count", db: e.db}
	r, stop := run(t, e, c)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pos := appendN(t, e.store, "a", 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.WaitFor(ctx, "count", pos); !errors.Is(err, projections.ErrStopped) {
		t.Fatalf("WaitFor after stop = %v, want ErrStopped", err)
	}
}

// A projection slower than the log takes what piled up in its queue as one
// batch, not one commit per event, and projections that go at different
// speeds both see every event once.
func TestRunnerAppliesBacklogInBatches(t *testing.T) {
	e := open(t, t.TempDir())
	defer e.close()
	const n = 3000
	appendN(t, e.store, "a", n)
	fast := &counter{name: "fast", db: e.db}
	slow := &slowCounter{counter: counter{name: "slow", db: e.db}}
	_, stop := run(t, e, fast, slow)
	defer stop()
	for _, c := range []*counter{fast, &slow.counter} {
		if got := c.count(t, "a"); got != n {
			t.Fatalf("%s: %d events applied, want %d", c.name, got, n)
		}
		c.mu.Lock()
		calls, batches := c.calls, c.batches
		c.mu.Unlock()
		if calls != n {
			t.Fatalf("%s: Apply saw %d events, want %d", c.name, calls, n)
		}
		// The slow one sleeps 2 ms a batch: one event a batch would
		// take 6 s, and the queue holds many more events by then.
		if c == &slow.counter && batches > n/4 {
			t.Fatalf("%s: %d events in %d batches, want at most %d batches", c.name, calls, batches, n/4)
		}
	}
}

// slowCounter takes a while over each batch, so that events pile up in its
// queue while the other projection keeps going.
type slowCounter struct{ counter }

func (c *slowCounter) Apply(ctx context.Context, evs []eventstore.RecordedEvent) error {
	time.Sleep(2 * time.Millisecond)
	return c.counter.Apply(ctx, evs)
}
