package archive

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/eventstore/keystore"
	"verlauf.im/verlauf/projections"
)

// testClock is a clock the test moves.
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

// env is a whole archive on disk: the embedded event store, the
// projection DB with the real runner, the key store and the service.
type env struct {
	t      testing.TB
	dir    string
	store  *embedded.Store
	db     *projections.DB
	index  *projections.Archive
	ks     *keystore.Store
	keys   *Keys
	svc    *Service
	runner *projections.Runner
	clock  *testClock
	stop   func() error
	closed bool
}

func (e *env) dataDirs() []string {
	return []string{filepath.Join(e.dir, "events"), filepath.Join(e.dir, "projections"), filepath.Join(e.dir, "keys")}
}

// newEnv opens (or reopens) the archive in dir. cfg's Store, KeyStore,
// Index and Waiter are filled in; wrap, if set, decorates the store the
// service reads (the runner reads the real one).
func newEnv(t testing.TB, dir string, cfg Config, wrap func(eventstore.Store) eventstore.Store) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, dir: dir, clock: &testClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}}
	var err error
	if e.store, err = embedded.Open(ctx, filepath.Join(dir, "events"), embedded.Options{CacheSize: 16 << 20, MemTableSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	if e.db, err = projections.OpenDB(filepath.Join(dir, "projections")); err != nil {
		t.Fatal(err)
	}
	if e.ks, err = keystore.Open(filepath.Join(dir, "keys")); err != nil {
		t.Fatal(err)
	}
	e.index = projections.NewArchive(e.db)
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetLevel(logrus.WarnLevel)
	b := bus.InProcess(log)
	e.runner = projections.NewRunner(e.store, b, log, e.index)
	rctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- e.runner.Run(rctx, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("runner ended before ready: %v", err)
	}
	e.stop = func() error {
		cancel()
		err := <-errc
		b.Close()
		return err
	}
	var svcStore eventstore.Store = e.store
	if wrap != nil {
		svcStore = wrap(e.store)
	}
	cfg.Store, cfg.KeyStore, cfg.Index, cfg.Waiter = svcStore, e.ks, e.index, e.runner
	if cfg.Clock == nil {
		cfg.Clock = e.clock
	}
	e.keys = NewKeys(e.ks, nil)
	if e.svc, err = New(cfg, e.keys); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.closed {
		return
	}
	e.closed = true
	if err := e.svc.Close(context.Background()); err != nil {
		e.t.Errorf("close service: %v", err)
	}
	if err := e.stop(); err != nil {
		e.t.Errorf("runner: %v", err)
	}
	e.db.Close()
	e.store.Close()
	e.ks.Close()
}

// waitIndexed waits until the index has applied everything in the log.
func (e *env) waitIndexed() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	head, err := e.store.Head(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.runner.WaitFor(ctx, projections.ArchiveName, head); err != nil {
		e.t.Fatal(err)
	}
}

func mustJID(t testing.TB, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// account is a user with a password and the ClientKeys SCRAM would
// recover at login.
type account struct {
	jid        jid.JID
	clientKeys map[string][]byte
}

func newAccount(t testing.TB, s, password string) account {
	t.Helper()
	vs, err := domain.NewSCRAMVerifiers(rand.Reader, password, domain.MinSCRAMIterations)
	if err != nil {
		t.Fatal(err)
	}
	a := account{jid: mustJID(t, s), clientKeys: map[string][]byte{}}
	for _, v := range vs {
		ck, err := ClientKeyFromPassword(v, password)
		if err != nil {
			t.Fatal(err)
		}
		a.clientKeys[v.Hash] = ck
	}
	return a
}

func (e *env) provision(a account) {
	e.t.Helper()
	if err := e.keys.Provision(context.Background(), a.jid, a.clientKeys); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) unlock(a account) {
	e.t.Helper()
	if err := e.keys.Unlock(context.Background(), a.jid, domain.HashSHA256, a.clientKeys[domain.HashSHA256]); err != nil {
		e.t.Fatal(err)
	}
}

// idAt makes a UUIDv7 archive id of time at, distinct for each n.
func idAt(at time.Time, n uint64) uuid.UUID {
	id := domain.ArchiveIDBound(at, false)
	binary.BigEndian.PutUint64(id[8:], n)
	id[6] = 0x70
	id[8] = 0x80 | id[8]&0x3f
	return id
}

func stanza(from, to, body string) []byte {
	return []byte("<message from='" + from + "' to='" + to + "' type='chat'><body>" + body + "</body></message>")
}
