package syncapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/eventstore/keystore"
	"verlauf.im/verlauf/projections"
)

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

// env is the whole server side on disk: event store, projections with
// the real runner, key store, accounts and archive services, and the API
// behind an httptest TLS server.
type env struct {
	t      *testing.T
	dir    string
	store  *embedded.Store
	db     *projections.DB
	ks     *keystore.Store
	runner *projections.Runner
	acc    *accounts.Service
	arch   *archive.Service
	srv    *Server
	ts     *httptest.Server
	clock  *testClock
	closed bool
	stop   func()
}

// newEnv opens (or reopens) everything under dir.
func newEnv(t *testing.T, dir string, cfg Config) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, dir: dir, clock: &testClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}}
	var err error
	if e.store, err = embedded.Open(ctx, filepath.Join(dir, "events"), embedded.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	if e.db, err = projections.OpenDB(filepath.Join(dir, "projections")); err != nil {
		t.Fatal(err)
	}
	if e.ks, err = keystore.Open(filepath.Join(dir, "keys")); err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	log := logrus.NewEntry(l)
	b := bus.InProcess(log)
	index := projections.NewArchive(e.db)
	accProj := projections.NewAccounts(e.db)
	e.runner = projections.NewRunner(e.store, b, log, index, accProj)
	rctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- e.runner.Run(rctx, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("runner: %v", err)
	}
	e.stop = func() {
		cancel()
		<-errc
		b.Close()
	}
	e.arch, err = archive.New(archive.Config{Store: e.store, KeyStore: e.ks, Index: index, Waiter: e.runner, MaxPageSize: 100}, archive.NewKeys(e.ks, nil))
	if err != nil {
		t.Fatal(err)
	}
	e.acc, err = accounts.New(accounts.Config{
		Store: e.store, Directory: accProj, Domain: "example.org", Iterations: domain.MinSCRAMIterations,
		Hooks: accounts.Hooks{
			OnRegistered: func(ctx context.Context, km accounts.KeyMaterial) error {
				return e.arch.Keys().Provision(ctx, km.User, km.ClientKeys)
			},
			OnDeleted: func(ctx context.Context, user jid.JID) error { return e.arch.Keys().Shred(ctx, user) },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Accounts, cfg.Archive, cfg.Clock = e.acc, e.arch, e.clock
	cfg.UserData.Store = e.store
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if e.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewTLSServer(e.srv.Handler())
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.closed {
		return
	}
	e.closed = true
	e.ts.Close()
	e.srv.Close()
	if err := e.arch.Close(context.Background()); err != nil {
		e.t.Errorf("close archive: %v", err)
	}
	e.stop()
	e.db.Close()
	e.store.Close()
	e.ks.Close()
}

func (e *env) register(user, password string) jid.JID {
	e.t.Helper()
	j := jid.MustParse(user)
	if err := e.acc.Register(context.Background(), j, password); err != nil {
		e.t.Fatal(err)
	}
	return j
}

// store archives a message of user with partner, as the router does.
func (e *env) archiveMsg(user jid.JID, partner string, dir domain.Direction, body string, at time.Time) uuid.UUID {
	e.t.Helper()
	from, to := partner, user.String()
	if dir == domain.DirectionOut {
		from, to = to, from
	}
	st := []byte("<message xmlns='jabber:client' from='" + from + "' to='" + to + "' type='chat'><body>" + body + "</body></message>")
	// The archive id carries the time, as the router's would have.
	id := uuid.Must(uuid.NewV7())
	b := domain.ArchiveIDBound(at, false)
	copy(id[:6], b[:6])
	if err := e.arch.StoreWithID(context.Background(), id, user, jid.MustParse(partner), st, dir, at); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// call makes a request and decodes a JSON answer into out (if not nil).
// It returns the status and the error code of an error answer.
func (e *env) call(method, path, token string, body any, out any) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode >= 400 {
		var ae apiError
		if err := json.Unmarshal(raw, &ae); err != nil || ae.Error.Code == "" || ae.Error.Message == "" {
			e.t.Fatalf("%s %s: %d with a body that is not an API error: %q", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, ae.Error.Code
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v in %q", method, path, err, raw)
		}
	}
	return resp.StatusCode, ""
}

func (e *env) login(user jid.JID, password string) string {
	e.t.Helper()
	var lr loginResponse
	if st, code := e.call("POST", "/api/v1/login", "", loginRequest{JID: user.String(), Password: password}, &lr); st != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", user, st, code)
	}
	return lr.Token
}

func ids(ms []message) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func jsonDecode(resp *http.Response, v any) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitFor polls cond until it holds, failing the test after a generous
// bound (not a timing assertion: only a guard against hanging).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
