// Package storetest is the contract every eventstore.Store adapter must
// pass unchanged. An adapter's own test calls Run with a function that opens
// a store:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) eventstore.Store {
//			s, err := embedded.Open(t.Context(), t.TempDir(), embedded.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite works against a store shared with other tests, as a real
// EventStoreDB or PostgreSQL server would be: every test writes to streams
// of its own (a random prefix), reads the global log from the Head it found
// on arrival, and ignores events of streams it does not own. It relies on
// the order of positions, never on their values.
//
// Open must return a store that the test may Close (only the close test
// does; Close must be safe to call again from the adapter's cleanup).
// Adapters must keep event times to the nanosecond: an engine with coarser
// timestamps must carry the event's own time in its metadata.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// Run runs the contract suite against the stores that open returns; each
// test opens its own.
func Run(t *testing.T, open func(t *testing.T) eventstore.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"ExpectedRevision", testExpectedRevision},
		{"AtomicBatch", testAtomicBatch},
		{"AppendMulti", testAppendMulti},
		{"ReadStream", testReadStream},
		{"ReadAll", testReadAll},
		{"ConcurrentSameStream", testConcurrentSameStream},
		{"ConcurrentStreams", testConcurrentStreams},
		{"SubscribeCatchUpThenLive", testSubscribeCatchUpThenLive},
		{"SubscribeFromMiddle", testSubscribeFromMiddle},
		{"SubscribeHandlerError", testSubscribeHandlerError},
		{"SubscribeCancel", testSubscribeCancel},
		{"SubscribeClose", testSubscribeClose},
		{"RoundTrip", testRoundTrip},
		{"InvalidStream", testInvalidStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newFixture(t, open(t)))
		})
	}
}

// timeout bounds every test so that a hung subscription fails the test
// instead of the whole run; it is no performance assertion.
const timeout = time.Minute

type fixture struct {
	t      *testing.T
	s      eventstore.Store
	ctx    context.Context
	prefix string
	start  eventstore.Position
	n      int // events made so far, to make their contents distinct
}

func newFixture(t *testing.T, s eventstore.Store) *fixture {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	start, err := s.Head(ctx)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return &fixture{t: t, s: s, ctx: ctx, prefix: "storetest-" + uuid.NewString() + "-", start: start}
}

func (f *fixture) stream(name string) string { return f.prefix + name }

func (f *fixture) mine(ev eventstore.RecordedEvent) bool {
	return strings.HasPrefix(ev.Stream, f.prefix)
}

// events makes n distinct events with nanosecond times and JSON bodies.
func (f *fixture) events(n int) []domain.Event {
	f.t.Helper()
	evs := make([]domain.Event, n)
	for i := range evs {
		id, err := uuid.NewV7()
		if err != nil {
			f.t.Fatal(err)
		}
		f.n++
		evs[i] = domain.Event{
			ID:            id,
			Type:          "storetest.happened",
			SchemaVersion: 1 + f.n%3,
			Time:          time.Date(2026, 1, 2, 3, 4, 5, 100_000_007*(f.n%9)+f.n, time.UTC),
			Body:          fmt.Appendf(nil, `{"n":%d,"text":"ünïcødé ✓"}`, f.n),
		}
	}
	return evs
}

func (f *fixture) append(stream string, exp eventstore.ExpectedRevision, evs ...domain.Event) eventstore.AppendResult {
	f.t.Helper()
	res, err := f.s.Append(f.ctx, stream, exp, evs...)
	if err != nil {
		f.t.Fatalf("Append(%q, %s, %d events): %v", stream, exp, len(evs), err)
	}
	return res
}

// readStream reads the whole stream forwards.
func (f *fixture) readStream(stream string) []eventstore.RecordedEvent {
	f.t.Helper()
	evs, err := f.s.ReadStream(f.ctx, stream, 0, eventstore.Forwards, math.MaxInt32)
	if err != nil {
		f.t.Fatalf("ReadStream(%q): %v", stream, err)
	}
	return evs
}

// readAllMine returns the fixture's own events of the log.
func (f *fixture) readAllMine() []eventstore.RecordedEvent {
	f.t.Helper()
	var mine []eventstore.RecordedEvent
	for _, ev := range f.readAll() {
		if f.mine(ev) {
			mine = append(mine, ev)
		}
	}
	return mine
}

// readAll pages through the log from the fixture's start in small pages and
// checks that positions strictly increase.
func (f *fixture) readAll() []eventstore.RecordedEvent {
	f.t.Helper()
	var all []eventstore.RecordedEvent
	after := f.start
	for {
		page, err := f.s.ReadAll(f.ctx, after, 7)
		if err != nil {
			f.t.Fatalf("ReadAll(%s): %v", after, err)
		}
		if len(page) > 7 {
			f.t.Fatalf("ReadAll(max 7) returned %d events", len(page))
		}
		if len(page) == 0 {
			return all
		}
		for _, ev := range page {
			if !after.Less(ev.Position) {
				f.t.Fatalf("ReadAll: position %s after %s", ev.Position, after)
			}
			after = ev.Position
			all = append(all, ev)
		}
	}
}

func ids(evs []eventstore.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func eventIDs(evs []domain.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func sameIDs(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkEvent fails unless got is want as recorded at stream and revision.
func checkEvent(t *testing.T, got eventstore.RecordedEvent, stream string, rev uint64, want domain.Event) {
	t.Helper()
	if got.Stream != stream || got.Revision != rev {
		t.Errorf("event %s at %q@%d, want %q@%d", got.ID, got.Stream, got.Revision, stream, rev)
	}
	if got.ID != want.ID || got.Type != want.Type || got.SchemaVersion != want.SchemaVersion {
		t.Errorf("event %q@%d = {%s %q v%d}, want {%s %q v%d}", stream, rev,
			got.ID, got.Type, got.SchemaVersion, want.ID, want.Type, want.SchemaVersion)
	}
	if !got.Time.Equal(want.Time) {
		t.Errorf("event %q@%d time = %s, want %s", stream, rev,
			got.Time.Format(time.RFC3339Nano), want.Time.Format(time.RFC3339Nano))
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("event %q@%d body = %q, want %q", stream, rev, got.Body, want.Body)
	}
}

// checkStream fails unless stream holds exactly want, at revisions 0…n-1.
func (f *fixture) checkStream(stream string, want []domain.Event) {
	f.t.Helper()
	got := f.readStream(stream)
	if len(got) != len(want) {
		f.t.Fatalf("stream %q has %d events, want %d", stream, len(got), len(want))
	}
	for i := range got {
		checkEvent(f.t, got[i], stream, uint64(i), want[i])
	}
}

func testExpectedRevision(t *testing.T, f *fixture) {
	tests := []struct {
		name     string
		existing int // events in the stream before the append
		expected eventstore.ExpectedRevision
		ok       bool
	}{
		{"any on empty", 0, eventstore.Any(), true},
		{"any on existing", 2, eventstore.Any(), true},
		{"no-stream on empty", 0, eventstore.NoStream(), true},
		{"no-stream on existing", 2, eventstore.NoStream(), false},
		{"stream-exists on empty", 0, eventstore.StreamExists(), false},
		{"stream-exists on existing", 2, eventstore.StreamExists(), true},
		{"exact last", 2, eventstore.Exact(1), true},
		{"exact older", 2, eventstore.Exact(0), false},
		{"exact future", 2, eventstore.Exact(2), false},
		{"exact on empty", 0, eventstore.Exact(0), false},
	}
	for i, tt := range tests {
		for _, batch := range []int{2, 0} {
			name := fmt.Sprintf("%s/%d events", tt.name, batch)
			t.Run(name, func(t *testing.T) {
				stream := f.stream(fmt.Sprintf("exp-%d-%d", i, batch))
				before := f.events(tt.existing)
				if tt.existing > 0 {
					f.append(stream, eventstore.NoStream(), before...)
				}
				evs := f.events(batch)
				res, err := f.s.Append(f.ctx, stream, tt.expected, evs...)
				if !tt.ok {
					checkConflict(t, err, stream, tt.existing)
					f.checkStream(stream, before)
					return
				}
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				all := append(before, evs...)
				f.checkStream(stream, all)
				if batch == 0 {
					if tt.existing > 0 && res.NextRevision != uint64(tt.existing-1) {
						t.Errorf("NextRevision = %d, want %d", res.NextRevision, tt.existing-1)
					}
					return
				}
				if res.NextRevision != uint64(len(all)-1) {
					t.Errorf("NextRevision = %d, want %d", res.NextRevision, len(all)-1)
				}
				last := f.readStream(stream)[len(all)-1]
				if res.Position != last.Position {
					t.Errorf("Position = %s, want the last event's %s", res.Position, last.Position)
				}
			})
		}
	}
}

func checkConflict(t *testing.T, err error, stream string, existing int) {
	t.Helper()
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("Append: err = %v, want ErrConflict", err)
	}
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Append: err = %v (%T), want a *ConflictError", err, err)
	}
	if ce.Stream != stream || ce.Exists != (existing > 0) {
		t.Errorf("ConflictError = %+v, want stream %q exists %v", ce, stream, existing > 0)
	}
	if existing > 0 && ce.Actual != uint64(existing-1) {
		t.Errorf("ConflictError.Actual = %d, want %d", ce.Actual, existing-1)
	}
}

func testAtomicBatch(t *testing.T, f *fixture) {
	stream := f.stream("batch")
	first := f.events(3)
	res := f.append(stream, eventstore.NoStream(), first...)
	if res.NextRevision != 2 {
		t.Errorf("NextRevision = %d, want 2", res.NextRevision)
	}
	rejected := f.events(3)
	_, err := f.s.Append(f.ctx, stream, eventstore.NoStream(), rejected...)
	checkConflict(t, err, stream, 3)
	f.checkStream(stream, first)
	if got := ids(f.readAllMine()); !sameIDs(got, eventIDs(first)) {
		t.Errorf("ReadAll holds %v, want only the first batch %v", got, eventIDs(first))
	}
}

// testAppendMulti: the parts land together, one after the other in the
// log, each at its own stream's revisions; one part's conflict or a
// stream named twice writes nothing at all; a part without events only
// checks.
func testAppendMulti(t *testing.T, f *fixture) {
	a, b, c := f.stream("multi-a"), f.stream("multi-b"), f.stream("multi-c")
	a0 := f.events(2)
	f.append(a, eventstore.NoStream(), a0...)
	a1, b1 := f.events(1), f.events(3)
	res, err := f.s.AppendMulti(f.ctx,
		eventstore.StreamAppend{Stream: a, Expected: eventstore.Exact(1), Events: a1},
		eventstore.StreamAppend{Stream: b, Expected: eventstore.NoStream(), Events: b1},
		eventstore.StreamAppend{Stream: c, Expected: eventstore.NoStream()},
	)
	if err != nil {
		t.Fatalf("AppendMulti: %v", err)
	}
	if len(res) != 3 || res[0].NextRevision != 2 || res[1].NextRevision != 2 {
		t.Fatalf("AppendMulti results %+v, want next revisions 2 and 2", res)
	}
	f.checkStream(a, append(append([]domain.Event{}, a0...), a1...))
	f.checkStream(b, b1)
	f.checkStream(c, nil)
	mine := f.readAllMine()
	if got, want := ids(mine), eventIDs(append(append(append([]domain.Event{}, a0...), a1...), b1...)); !sameIDs(got, want) {
		t.Fatalf("ReadAll holds %v, want %v", got, want)
	}
	if res[0].Position != mine[2].Position || res[1].Position != mine[5].Position {
		t.Errorf("positions %v and %v, want those of each part's last event, %v and %v", res[0].Position, res[1].Position, mine[2].Position, mine[5].Position)
	}

	cases := []struct {
		name  string
		parts []eventstore.StreamAppend
		check func(error)
	}{
		{"one part conflicts", []eventstore.StreamAppend{
			{Stream: c, Expected: eventstore.Any(), Events: f.events(1)},
			{Stream: a, Expected: eventstore.NoStream(), Events: f.events(1)},
		}, func(err error) { checkConflict(t, err, a, 3) }},
		{"a stream twice", []eventstore.StreamAppend{
			{Stream: c, Expected: eventstore.Any(), Events: f.events(1)},
			{Stream: c, Expected: eventstore.Any(), Events: f.events(1)},
		}, func(err error) {
			if err == nil {
				t.Error("AppendMulti took one stream twice")
			}
		}},
	}
	for _, tc := range cases {
		_, err := f.s.AppendMulti(f.ctx, tc.parts...)
		tc.check(err)
		f.checkStream(c, nil)
		if got := f.readAllMine(); len(got) != len(mine) {
			t.Fatalf("%s: the log holds %d of our events, want %d: nothing of a refused AppendMulti", tc.name, len(got), len(mine))
		}
	}
}

func testReadStream(t *testing.T, f *fixture) {
	stream, neighbour := f.stream("r"), f.stream("r-neighbour")
	evs := f.events(10)
	// Interleave a stream whose name extends this one's, to catch index
	// scans that run past the stream's end.
	for _, ev := range evs {
		f.append(stream, eventstore.Any(), ev)
		f.append(neighbour, eventstore.Any(), f.events(1)...)
	}
	revs := func(from, to int) []uint64 { // inclusive, either direction
		var out []uint64
		for r := from; ; {
			out = append(out, uint64(r))
			if r == to {
				return out
			}
			if from < to {
				r++
			} else {
				r--
			}
		}
	}
	tests := []struct {
		name   string
		stream string
		from   uint64
		dir    eventstore.Direction
		max    int
		want   []uint64
	}{
		{"forwards all", stream, 0, eventstore.Forwards, 100, revs(0, 9)},
		{"forwards max", stream, 0, eventstore.Forwards, 3, revs(0, 2)},
		{"forwards from middle", stream, 4, eventstore.Forwards, 3, revs(4, 6)},
		{"forwards to end", stream, 7, eventstore.Forwards, 100, revs(7, 9)},
		{"forwards past end", stream, 10, eventstore.Forwards, 5, nil},
		{"backwards from end", stream, math.MaxUint64, eventstore.Backwards, 100, revs(9, 0)},
		{"backwards from end max", stream, math.MaxUint64, eventstore.Backwards, 3, revs(9, 7)},
		{"backwards from middle", stream, 5, eventstore.Backwards, 3, revs(5, 3)},
		{"backwards from first", stream, 0, eventstore.Backwards, 5, revs(0, 0)},
		{"empty forwards", f.stream("never"), 0, eventstore.Forwards, 10, nil},
		{"empty backwards", f.stream("never"), math.MaxUint64, eventstore.Backwards, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.s.ReadStream(f.ctx, tt.stream, tt.from, tt.dir, tt.max)
			if err != nil {
				t.Fatalf("ReadStream: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ReadStream returned %d events, want revisions %v", len(got), tt.want)
			}
			for i, rev := range tt.want {
				checkEvent(t, got[i], stream, rev, evs[rev])
			}
		})
	}
}

func testReadAll(t *testing.T, f *fixture) {
	names := []string{f.stream("a"), f.stream("b"), f.stream("c")}
	type rec struct {
		stream string
		rev    uint64
		ev     domain.Event
	}
	var want []rec
	revs := map[string]uint64{}
	for i := range 20 {
		stream := names[i*7%len(names)]
		n := 1 + i%3
		evs := f.events(n)
		f.append(stream, eventstore.Any(), evs...)
		for _, ev := range evs {
			want = append(want, rec{stream, revs[stream], ev})
			revs[stream]++
		}
	}
	got := f.readAllMine() // also checks positions strictly increase
	if len(got) != len(want) {
		t.Fatalf("ReadAll returned %d of our events, want %d", len(got), len(want))
	}
	for i, w := range want {
		checkEvent(t, got[i], w.stream, w.rev, w.ev)
	}
	rest, err := f.s.ReadAll(f.ctx, got[len(got)-1].Position, 100)
	if err != nil {
		t.Fatalf("ReadAll after the last event: %v", err)
	}
	for _, ev := range rest {
		if f.mine(ev) {
			t.Errorf("ReadAll after the last event returned %s again", ev.ID)
		}
	}
}

func testConcurrentSameStream(t *testing.T, f *fixture) {
	const writers, each = 8, 10
	stream := f.stream("contended")
	mine := make([][]domain.Event, writers)
	for w := range mine {
		mine[w] = f.events(each)
	}
	type win struct {
		rev uint64
		id  uuid.UUID
	}
	wins := make(chan win, writers*each)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			exp := eventstore.NoStream()
			for _, ev := range mine[w] {
				for {
					res, err := f.s.Append(f.ctx, stream, exp, ev)
					var ce *eventstore.ConflictError
					if errors.As(err, &ce) {
						exp = eventstore.Exact(ce.Actual)
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					wins <- win{res.NextRevision, ev.ID}
					exp = eventstore.Exact(res.NextRevision)
					break
				}
			}
		})
	}
	wg.Wait()
	close(wins)
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	got := f.readStream(stream)
	if len(got) != writers*each {
		t.Fatalf("stream has %d events, want %d", len(got), writers*each)
	}
	byRev := map[uint64]uuid.UUID{}
	for w := range wins {
		if prev, dup := byRev[w.rev]; dup {
			t.Fatalf("revision %d won by both %s and %s", w.rev, prev, w.id)
		}
		byRev[w.rev] = w.id
	}
	seen := map[uuid.UUID]bool{}
	for i, ev := range got {
		if ev.Revision != uint64(i) {
			t.Fatalf("event %d has revision %d", i, ev.Revision)
		}
		if seen[ev.ID] {
			t.Fatalf("event %s stored twice", ev.ID)
		}
		seen[ev.ID] = true
		if byRev[ev.Revision] != ev.ID {
			t.Errorf("revision %d holds %s, but Append reported %s there", ev.Revision, ev.ID, byRev[ev.Revision])
		}
	}
	for w := range mine {
		for _, ev := range mine[w] {
			if !seen[ev.ID] {
				t.Errorf("event %s of writer %d lost", ev.ID, w)
			}
		}
	}
}

func testConcurrentStreams(t *testing.T, f *fixture) {
	const writers, batches = 8, 10
	evs := make([][]domain.Event, writers)
	for w := range evs {
		evs[w] = f.events(batches * 2)
	}
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			exp := eventstore.NoStream()
			for b := range batches {
				res, err := f.s.Append(f.ctx, f.stream(fmt.Sprint("par-", w)), exp, evs[w][2*b:2*b+2]...)
				if err != nil {
					errs <- err
					return
				}
				exp = eventstore.Exact(res.NextRevision)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	for w := range writers {
		f.checkStream(f.stream(fmt.Sprint("par-", w)), evs[w])
	}
	next := map[string]uint64{}
	all := f.readAllMine()
	if len(all) != writers*batches*2 {
		t.Fatalf("ReadAll returned %d of our events, want %d", len(all), writers*batches*2)
	}
	for _, ev := range all {
		if ev.Revision != next[ev.Stream] {
			t.Fatalf("ReadAll: %q@%d comes where revision %d was due", ev.Stream, ev.Revision, next[ev.Stream])
		}
		next[ev.Stream]++
	}
}

// subscribe runs SubscribeAll in the background; the returned channel
// yields its result.
func (f *fixture) subscribe(ctx context.Context, after eventstore.Position, h eventstore.Handler) <-chan error {
	done := make(chan error, 1)
	go func() { done <- f.s.SubscribeAll(ctx, after, h) }()
	return done
}

func (f *fixture) wait(what string, ch <-chan error) error {
	f.t.Helper()
	select {
	case err := <-ch:
		return err
	case <-f.ctx.Done():
		f.t.Fatalf("%s: %v", what, f.ctx.Err())
		return nil
	}
}

// collector gathers a subscription's events of the fixture and cancels
// the subscription once it has want of them.
type collector struct {
	f      *fixture
	want   int
	cancel context.CancelFunc
	mu     sync.Mutex
	got    []eventstore.RecordedEvent
	last   eventstore.Position
	bad    error
}

func (c *collector) handle(_ context.Context, ev eventstore.RecordedEvent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.last.Less(ev.Position) && c.bad == nil {
		c.bad = fmt.Errorf("position %s delivered after %s", ev.Position, c.last)
	}
	c.last = ev.Position
	if c.f.mine(ev) {
		c.got = append(c.got, ev)
		if len(c.got) == c.want {
			c.cancel()
		}
	}
	return nil
}

func testSubscribeCatchUpThenLive(t *testing.T, f *fixture) {
	// A few rounds, each with appends racing the subscription's switch from
	// catching up to live; the interleaving differs from round to round.
	for round := range 5 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			f := newFixture(t, f.s)
			const before, writers, live = 30, 4, 25
			for i := range before {
				f.append(f.stream(fmt.Sprint("pre-", i%3)), eventstore.Any(), f.events(1)...)
			}
			batches := make([][]domain.Event, writers)
			for w := range batches {
				batches[w] = f.events(live)
			}
			ctx, cancel := context.WithCancel(f.ctx)
			defer cancel()
			c := &collector{f: f, want: before + writers*live, cancel: cancel, last: f.start}
			done := f.subscribe(ctx, f.start, c.handle)
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					for _, ev := range batches[w] {
						if _, err := f.s.Append(f.ctx, f.stream(fmt.Sprint("live-", w)), eventstore.Any(), ev); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("Append: %v", err)
			}
			if err := f.wait("subscription", done); !errors.Is(err, context.Canceled) {
				t.Fatalf("SubscribeAll = %v, want context.Canceled", err)
			}
			if c.bad != nil {
				t.Fatal(c.bad)
			}
			want := f.readAllMine()
			if !sameIDs(ids(c.got), ids(want)) {
				t.Fatalf("subscription delivered %d events, ReadAll has %d; order or content differs", len(c.got), len(want))
			}
		})
	}
}

func testSubscribeFromMiddle(t *testing.T, f *fixture) {
	stream := f.stream("mid")
	evs := f.events(11)
	for _, ev := range evs[:10] {
		f.append(stream, eventstore.Any(), ev)
	}
	recorded := f.readStream(stream)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	c := &collector{f: f, want: 6, cancel: cancel, last: recorded[4].Position}
	seen := make(chan struct{})
	var once sync.Once
	done := f.subscribe(ctx, recorded[4].Position, func(ctx context.Context, ev eventstore.RecordedEvent) error {
		if ev.ID == evs[9].ID {
			once.Do(func() { close(seen) })
		}
		return c.handle(ctx, ev)
	})
	select {
	case <-seen: // caught up; the next append arrives live
	case <-f.ctx.Done():
		t.Fatal("subscription never delivered the last stored event")
	}
	f.append(stream, eventstore.Exact(9), evs[10])
	if err := f.wait("subscription", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("SubscribeAll = %v, want context.Canceled", err)
	}
	if c.bad != nil {
		t.Fatal(c.bad)
	}
	if !sameIDs(ids(c.got), eventIDs(evs[5:])) {
		t.Fatalf("subscription after revision 4 delivered %v, want %v", ids(c.got), eventIDs(evs[5:]))
	}
}

func testSubscribeHandlerError(t *testing.T, f *fixture) {
	f.append(f.stream("fail"), eventstore.NoStream(), f.events(3)...)
	boom := errors.New("handler failed")
	calls := 0
	done := f.subscribe(f.ctx, f.start, func(_ context.Context, ev eventstore.RecordedEvent) error {
		if !f.mine(ev) {
			return nil
		}
		calls++
		if calls == 2 {
			return boom
		}
		return nil
	})
	if err := f.wait("subscription", done); !errors.Is(err, boom) {
		t.Fatalf("SubscribeAll = %v, want the handler's error", err)
	}
	if calls != 2 {
		t.Errorf("handler called %d times, want 2 (none after it failed)", calls)
	}
}

// live starts a subscription from the fixture's start and returns once it
// has delivered one of the fixture's events, so it is caught up and waiting.
func (f *fixture) live(ctx context.Context) <-chan error {
	f.t.Helper()
	f.append(f.stream("live"), eventstore.Any(), f.events(1)...)
	delivered := make(chan struct{})
	var once sync.Once
	done := f.subscribe(ctx, f.start, func(_ context.Context, ev eventstore.RecordedEvent) error {
		if f.mine(ev) {
			once.Do(func() { close(delivered) })
		}
		return nil
	})
	select {
	case <-delivered:
	case err := <-done:
		f.t.Fatalf("SubscribeAll ended early: %v", err)
	case <-f.ctx.Done():
		f.t.Fatal("subscription delivered nothing")
	}
	return done
}

func testSubscribeCancel(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	done := f.live(ctx)
	cancel()
	if err := f.wait("subscription", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("SubscribeAll after cancel = %v, want context.Canceled", err)
	}
}

func testSubscribeClose(t *testing.T, f *fixture) {
	done := f.live(f.ctx)
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.wait("subscription", done); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("SubscribeAll after Close = %v, want ErrClosed", err)
	}
	if _, err := f.s.Append(f.ctx, f.stream("late"), eventstore.Any(), f.events(1)...); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := f.s.ReadAll(f.ctx, f.start, 10); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("ReadAll after Close = %v, want ErrClosed", err)
	}
	if err := f.s.SubscribeAll(f.ctx, f.start, func(context.Context, eventstore.RecordedEvent) error { return nil }); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("SubscribeAll after Close = %v, want ErrClosed", err)
	}
}

func testRoundTrip(t *testing.T, f *fixture) {
	stream := f.stream("trip ünï/€:#")
	evs := []domain.Event{
		{
			ID:            uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057"),
			Type:          "account.registered",
			SchemaVersion: 7,
			// Not UTC and with every nanosecond digit set: the instant must
			// survive, whatever zone the adapter returns it in.
			Time: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+1", 3600)),
			Body: []byte(`{"jid":"alice@example.org","note":"h\u00e9 ✓ \"q\"","n":[1,2.5,null]}`),
		},
		{
			ID:            uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8058"),
			Type:          "roster.item-set",
			SchemaVersion: 1,
			Time:          time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			Body:          []byte(`{}`),
		},
	}
	f.append(stream, eventstore.NoStream(), evs...)
	f.checkStream(stream, evs)
	back, err := f.s.ReadStream(f.ctx, stream, math.MaxUint64, eventstore.Backwards, 10)
	if err != nil || len(back) != 2 {
		t.Fatalf("ReadStream backwards = %d events, %v", len(back), err)
	}
	checkEvent(t, back[0], stream, 1, evs[1])
	checkEvent(t, back[1], stream, 0, evs[0])
	all := f.readAllMine()
	if len(all) != 2 {
		t.Fatalf("ReadAll returned %d events, want 2", len(all))
	}
	for i := range all {
		checkEvent(t, all[i], stream, uint64(i), evs[i])
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	c := &collector{f: f, want: 2, cancel: cancel, last: f.start}
	if err := f.wait("subscription", f.subscribe(ctx, f.start, c.handle)); !errors.Is(err, context.Canceled) {
		t.Fatalf("SubscribeAll = %v", err)
	}
	for i := range c.got {
		checkEvent(t, c.got[i], stream, uint64(i), evs[i])
	}
}

func testInvalidStream(t *testing.T, f *fixture) {
	ev := f.events(1)[0]
	_, err := f.s.Append(f.ctx, "", eventstore.Any(), ev)
	if err == nil || errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("Append to the empty stream name = %v, want a validation error", err)
	}
	for _, got := range f.readAll() {
		if got.ID == ev.ID {
			t.Errorf("the rejected append wrote %s to %q", ev.ID, got.Stream)
		}
	}
}
