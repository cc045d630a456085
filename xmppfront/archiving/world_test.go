package archiving_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/eventstore/keystore"
	"verlauf.im/verlauf/projections"
	"verlauf.im/verlauf/xmppfront/archiving"
	"verlauf.im/verlauf/xmppfront/carbons"
	"verlauf.im/verlauf/xmppfront/offline"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

const domainName = "example.test"

// session is a bound client as the router sees it: it records what it is
// sent and runs worker tasks inline, so a Submit returns with the stanza
// fully routed (the in-process bus waits for the consumer's ack).
type session struct {
	id  string
	jid jid.JID
	mu  sync.Mutex
	got []*stream.Element
}

func (s *session) ID() string   { return s.id }
func (s *session) JID() jid.JID { return s.jid }
func (s *session) Send(st *stream.Element) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st)
	return true
}
func (s *session) Do(f func(context.Context)) bool { f(context.Background()); return true }
func (s *session) Replace()                        {}
func (s *session) Kick(stream.Condition, string)   {}

func (s *session) take() []*stream.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.got
	s.got = nil
	return g
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// rosterSet is a roster projection: "user contact" pairs.
type rosterSet map[string]bool

func (r rosterSet) Item(_ context.Context, user, contact jid.JID) (domain.RosterItem, bool, error) {
	return domain.RosterItem{}, r[user.Bare().String()+" "+contact.Bare().String()], nil
}

// world is the message path of a server: a real archive on an embedded
// store, the router on the in-process bus, and the archiver, carbons and
// offline features wired as cmd wires them. Users alice, bob and carol
// exist and have keys.
type world struct {
	disk     fullDisk // with worldOptions.failAppends
	t        testing.TB
	ctx      context.Context
	svc      *archive.Service
	r        *router.Router
	roster   rosterSet
	clock    *testClock
	sessions map[string]*session
	keys     map[string][]byte
}

type worldOptions struct {
	offlineLimit int
	// noArchiver leaves the router without an archiver (benchmarks).
	noArchiver bool
	// failAppends names streams whose appends fail as on a full disk.
	failAppends map[string]bool
}

// fullDisk fails appends to some streams the way the embedded store does
// when the disk is full.
type fullDisk struct {
	eventstore.Store
	streams map[string]bool
	// appends counts the appends to archive streams: "single" and
	// "together" (one AppendMulti for several streams).
	appends map[string]int
}

func (f fullDisk) count(kind string, streams ...string) {
	for _, s := range streams {
		if strings.HasPrefix(s, "archive-") {
			f.appends[kind]++
			return
		}
	}
}

func (f fullDisk) Append(ctx context.Context, stream string, exp eventstore.ExpectedRevision, evs ...domain.Event) (eventstore.AppendResult, error) {
	f.count("single", stream)
	if f.streams[stream] {
		return eventstore.AppendResult{}, fmt.Errorf("test: append to %s: %w", stream, syscall.ENOSPC)
	}
	return f.Store.Append(ctx, stream, exp, evs...)
}

// AppendMulti fails as a whole if any stream's append would.
func (f fullDisk) AppendMulti(ctx context.Context, parts ...eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	var streams []string
	for _, p := range parts {
		streams = append(streams, p.Stream)
	}
	f.count("together", streams...)
	for _, p := range parts {
		if f.streams[p.Stream] {
			return nil, fmt.Errorf("test: append to %s: %w", p.Stream, syscall.ENOSPC)
		}
	}
	return f.Store.AppendMulti(ctx, parts...)
}

func newWorld(t testing.TB, opts worldOptions) *world {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	log := logrus.NewEntry(quiet)

	store, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenDB(filepath.Join(dir, "projections"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	index := projections.NewArchive(db)
	logBus := bus.InProcess(log)
	runner := projections.NewRunner(store, logBus, log, index)
	rctx, stopRunner := context.WithCancel(ctx)
	ready, runErr := make(chan struct{}), make(chan error, 1)
	go func() { runErr <- runner.Run(rctx, ready) }()
	select {
	case <-ready:
	case err := <-runErr:
		t.Fatalf("runner: %v", err)
	}

	w := &world{
		t: t, ctx: ctx, roster: rosterSet{}, sessions: map[string]*session{}, keys: map[string][]byte{},
		clock: &testClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)},
	}
	keys := archive.NewKeys(ks, nil)
	var archStore eventstore.Store = store
	if opts.failAppends != nil {
		w.disk = fullDisk{Store: store, streams: opts.failAppends, appends: map[string]int{}}
		archStore = w.disk
	}
	w.svc, err = archive.New(archive.Config{
		Store: archStore, KeyStore: ks, Index: index, Waiter: runner,
		Clock: w.clock, OfflineLimit: opts.offlineLimit,
	}, keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		ck := make([]byte, 32)
		if _, err := rand.Read(ck); err != nil {
			t.Fatal(err)
		}
		w.keys[u] = ck
		if err := keys.Provision(ctx, w.user(u), map[string][]byte{domain.HashSHA256: ck}); err != nil {
			t.Fatal(err)
		}
	}

	rbus := bus.InProcess(log)
	mux := router.NewMux()
	w.r = router.New(router.Config{
		Domain: domainName, Publisher: rbus, Subscriber: rbus, Partitions: 2, Mux: mux, Log: log,
		UserExists: func(_ context.Context, bare jid.JID) bool {
			switch bare.Localpart() {
			case "alice", "bob", "carol":
				return true
			}
			return false
		},
	})
	arch := archiving.New(archiving.Config{Archive: w.svc, Roster: w.roster, Domain: domainName, Clock: w.clock, Log: log})
	arch.Register(mux)
	if !opts.noArchiver {
		w.r.UseArchiver(arch)
	}
	cc := carbons.New(w.r)
	cc.Register(mux)
	w.r.UseCarbons(cc)
	off := offline.New(offline.Config{Queue: w.svc, Router: w.r, Domain: domainName, Log: log})
	off.Register(mux)
	w.r.UseOffline(off)
	w.r.UseAvailable(off)

	routerCtx, stopRouter := context.WithCancel(ctx)
	if err := w.r.Start(routerCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopRouter()
		w.r.Wait()
		_ = rbus.Close()
		if err := w.svc.Close(ctx); err != nil {
			t.Errorf("close archive: %v", err)
		}
		stopRunner()
		if err := <-runErr; err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "context canceled") {
			t.Errorf("runner: %v", err)
		}
		_ = logBus.Close()
		db.Close()
		store.Close()
		ks.Close()
	})
	return w
}

func (w *world) user(name string) jid.JID { return jid.MustParse(name + "@" + domainName) }

// bind logs "user/resource" in (keys unlocked, as the c2s login does) and,
// unless prio is "-", sends initial presence with that priority.
func (w *world) bind(addr, prio string) *session {
	w.t.Helper()
	name, _, _ := strings.Cut(addr, "/")
	s := &session{id: addr, jid: jid.MustParse(strings.Replace(addr, "/", "@"+domainName+"/", 1))}
	if err := w.svc.Keys().Unlock(w.ctx, w.user(name), domain.HashSHA256, w.keys[name]); err != nil {
		w.t.Fatal(err)
	}
	w.sessions[addr] = s
	w.r.Bind(s)
	if prio != "-" {
		w.send(addr, "<presence><priority>"+prio+"</priority></presence>")
	}
	return s
}

// send submits raw XML as the session addr read it.
func (w *world) send(addr, raw string) {
	w.t.Helper()
	s := w.sessions[addr]
	st, err := router.DecodeStanza([]byte(raw), stream.DefaultMaxStanzaSize)
	if err != nil {
		w.t.Fatalf("parse %s: %v", raw, err)
	}
	st.SetAttr("from", s.jid.String())
	if err := w.r.Submit(w.ctx, s, st); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) setPrefs(name string, mode domain.ArchiveMode) {
	w.t.Helper()
	if _, err := w.svc.SetPrefs(w.ctx, w.user(name), mode, nil, nil); err != nil {
		w.t.Fatal(err)
	}
}

// archived returns user's archive (the user must be unlocked).
func (w *world) archived(name string) []archive.Message {
	w.t.Helper()
	if !w.svc.Keys().Unlocked(w.user(name)) {
		if err := w.svc.Keys().Unlock(w.ctx, w.user(name), domain.HashSHA256, w.keys[name]); err != nil {
			w.t.Fatal(err)
		}
	}
	p, err := w.svc.Query(w.ctx, w.user(name), archive.Query{Max: 100})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, m := range p.Messages {
		if m.Err != nil {
			w.t.Fatalf("archive of %s: %v", name, m.Err)
		}
	}
	return p.Messages
}

func (w *world) pending(name string) int {
	w.t.Helper()
	n, err := w.svc.Pending(w.ctx, w.user(name))
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

// stanzaID returns the id of st's <stanza-id by=by/>, "" if none; it fails
// the test if there are several.
func stanzaID(t testing.TB, st *stream.Element, by string) string {
	t.Helper()
	id := ""
	for c := range st.Children() {
		if c.Name == (stream.Name{Space: router.NSStanzaID, Local: "stanza-id"}) && c.Attr("by") == by {
			if id != "" {
				t.Fatalf("two stanza-ids by %s in %s", by, st.Name.Local)
			}
			id = c.Attr("id")
		}
	}
	return id
}

// carbon returns the kind (sent, received) and the forwarded message of a
// carbon copy, or "" and nil.
func carbon(st *stream.Element) (string, *stream.Element) {
	for c := range st.Children() {
		if c.Name.Space == carbons.NS && (c.Name.Local == "sent" || c.Name.Local == "received") {
			if f := c.Child("forwarded", carbons.NSForward); f != nil {
				for m := range f.Children() {
					return c.Name.Local, m
				}
			}
		}
	}
	return "", nil
}

// describe names what a session got: "msg <id>", "sent <id>",
// "received <id>", "error <id> <condition>/<type>", "iq <type> <id>".
func describe(st *stream.Element) string {
	switch {
	case st.Name.Local == "iq":
		return "iq " + st.Attr("type") + " " + st.Attr("id")
	case st.Attr("type") == "error":
		e := st.Child("error", "")
		for c := range e.Children() {
			if c.Name.Space == stanza.NSStanzas {
				return "error " + st.Attr("id") + " " + c.Name.Local + "/" + e.Attr("type")
			}
		}
		return "error " + st.Attr("id")
	}
	if kind, inner := carbon(st); inner != nil {
		return kind + " " + inner.Attr("id")
	}
	return "msg " + st.Attr("id")
}

func (w *world) deliveries() map[string][]string {
	out := map[string][]string{}
	for addr, s := range w.sessions {
		for _, st := range s.take() {
			if st.Name.Local == "presence" {
				continue
			}
			out[addr] = append(out[addr], describe(st))
		}
	}
	return out
}

func mustUUID(t testing.TB, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatalf("stanza-id %q: %v", s, err)
	}
	return id
}
