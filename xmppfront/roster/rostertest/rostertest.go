// Package rostertest runs the roster and presence features on a real
// embedded event store, a real projection runner and a real router, with
// in-memory sessions that record what the server would write to each
// client. Tests of roster, presence and the features built on them use it
// to play whole flows between local users without sockets.
package rostertest

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/projections"
	"verlauf.im/verlauf/xmppfront/presence"
	"verlauf.im/verlauf/xmppfront/roster"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Domain is the local domain of every Env.
const Domain = "example.org"

// Env is a running roster and presence stack.
type Env struct {
	Store    *embedded.Store
	DB       *projections.DB
	Proj     *projections.Roster
	Runner   *projections.Runner
	Router   *router.Router
	Mux      *router.Mux
	Roster   *roster.Service
	Presence *presence.Handler

	t        testing.TB
	bus      *bus.Bus
	cancel   context.CancelFunc
	done     chan error
	closed   bool
	mu       sync.Mutex
	accounts map[string]bool
	remote   []*stream.Element
}

// Start opens (or reopens) the stack with its data in dir; accounts are
// the bare JIDs that exist. The Env closes at the end of the test unless
// closed before.
func Start(t testing.TB, dir string, opts roster.Options, accounts ...string) *Env {
	t.Helper()
	ctx := context.Background()
	l := logrus.New()
	l.SetOutput(discard{})
	log := logrus.NewEntry(l)

	store, err := embedded.Open(ctx, filepath.Join(dir, "store"), embedded.Options{CacheSize: 4 << 20, MemTableSize: 2 << 20})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	db, err := projections.OpenDB(filepath.Join(dir, "projections"))
	if err != nil {
		store.Close()
		t.Fatalf("open projections: %v", err)
	}
	e := &Env{
		Store:    store,
		DB:       db,
		Proj:     projections.NewRoster(db),
		t:        t,
		bus:      bus.InProcess(log),
		done:     make(chan error, 1),
		accounts: make(map[string]bool),
	}
	for _, a := range accounts {
		e.accounts[a] = true
	}
	e.Runner = projections.NewRunner(store, e.bus, log, e.Proj)
	runCtx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	ready := make(chan struct{})
	go func() { e.done <- e.Runner.Run(runCtx, ready) }()
	select {
	case <-ready:
	case err := <-e.done:
		t.Fatalf("projection runner: %v", err)
	}

	e.Mux = router.NewMux()
	e.Router = router.New(router.Config{
		Domain: Domain,
		Mux:    e.Mux,
		UserExists: func(_ context.Context, bare jid.JID) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.accounts[bare.String()]
		},
		S2S: remoteFunc(func(st *stream.Element) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.remote = append(e.remote, st.Clone())
		}),
		Log: log,
	})
	if opts.Log == nil {
		opts.Log = log
	}
	e.Roster = roster.New(store, e.Proj, e.Runner, e.Router, opts)
	e.Roster.Register(e.Mux)
	e.Presence = presence.New(e.Roster, e.Router, presence.Options{Log: log})
	e.Router.UsePresence(e.Presence)
	t.Cleanup(e.Close)
	return e
}

type discard struct{}

// remoteFunc records what would go to other domains.
type remoteFunc func(st *stream.Element)

func (f remoteFunc) SendRemote(_ context.Context, st *stream.Element) error {
	f(st)
	return nil
}

// TakeRemote returns the stanzas routed to other domains since the last
// call.
func (e *Env) TakeRemote() []*stream.Element {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.remote
	e.remote = nil
	return out
}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Close stops the runner and closes the stores, as a shutdown does.
func (e *Env) Close() {
	if e.closed {
		return
	}
	e.closed = true
	e.cancel()
	if err := <-e.done; err != nil && !errors.Is(err, context.Canceled) {
		e.t.Errorf("projection runner: %v", err)
	}
	if err := e.bus.Close(); err != nil {
		e.t.Errorf("close bus: %v", err)
	}
	if err := e.DB.Close(); err != nil {
		e.t.Errorf("close projections: %v", err)
	}
	if err := e.Store.Close(); err != nil {
		e.t.Errorf("close store: %v", err)
	}
}

// Session is a bound client session that records what it is sent.
type Session struct {
	id  string
	jid jid.JID

	mu  sync.Mutex
	got []*stream.Element
}

// ID implements router.Session.
func (s *Session) ID() string { return s.id }

// JID implements router.Session.
func (s *Session) JID() jid.JID { return s.jid }

// Send implements router.Session; it records st.
func (s *Session) Send(st *stream.Element) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st.Clone())
	return true
}

// Do implements router.Session; it runs f at once.
func (s *Session) Do(f func(ctx context.Context)) bool {
	f(context.Background())
	return true
}

// Replace implements router.Session.
func (s *Session) Replace() {}

// Kick does nothing: the recorded session has no stream to end.
func (s *Session) Kick(stream.Condition, string) {}

// Client is a logged-in resource of a local user.
type Client struct {
	JID  jid.JID
	Sess *Session
	env  *Env
}

// Login binds a session for the full JID full.
func (e *Env) Login(full string) *Client {
	e.t.Helper()
	j, err := jid.Parse(full)
	if err != nil || j.Resourcepart() == "" {
		e.t.Fatalf("Login(%q): need a full JID (%v)", full, err)
	}
	s := &Session{id: full, jid: j}
	e.Router.Bind(s)
	return &Client{JID: j, Sess: s, env: e}
}

// Take returns what the session was sent since the last Take.
func (c *Client) Take() []*stream.Element {
	c.Sess.mu.Lock()
	defer c.Sess.mu.Unlock()
	out := c.Sess.got
	c.Sess.got = nil
	return out
}

// IQ sends an IQ get or set with payload to the server as the router would
// hand it to the handler, and returns the handler's answer. to "" is the
// user's own account.
func (c *Client) IQ(typ, to string, payload *stream.Element) (*stream.Element, error) {
	c.env.t.Helper()
	iq := stream.NewElement(stanza.NSClient, "iq", "type", typ, "id", "c1", "from", c.JID.String())
	target := c.JID.Bare()
	if to != "" {
		iq.SetAttr("to", to)
		var err error
		if target, err = jid.Parse(to); err != nil {
			c.env.t.Fatalf("IQ to %q: %v", to, err)
		}
	}
	iq.AddChild(payload)
	h := c.env.Mux.Lookup(payload.Name)
	if h == nil {
		c.env.t.Fatalf("no handler for %v", payload.Name)
	}
	return h.HandleIQ(context.Background(), router.IQ{Stanza: iq, From: c.JID, To: target, Type: typ, Payload: payload})
}

// RosterGet sends a roster get with the cached version ver ("" for none).
func (c *Client) RosterGet(ver string) (*stream.Element, error) {
	q := stream.NewElement(roster.NS, "query")
	if ver != "" {
		q.SetAttr("ver", ver)
	}
	return c.IQ("get", "", q)
}

// RosterSet sends a roster set of one item.
func (c *Client) RosterSet(item *stream.Element) error {
	_, err := c.IQ("set", "", stream.NewElement(roster.NS, "query").AddChild(item))
	return err
}

// Presence sends a presence stanza (attrs as name, value pairs) through
// the presence handler, its 'from' stamped as a session would.
func (c *Client) Presence(attrs ...string) {
	c.Send(stream.NewElement(stanza.NSClient, "presence", attrs...))
}

// Send hands a presence stanza to the presence handler as the router does.
func (c *Client) Send(st *stream.Element) {
	st.SetAttr("from", c.JID.String())
	c.env.Presence.Outbound(context.Background(), c.JID, st)
}

// End ends the session as c2s does when a connection closes.
func (c *Client) End() {
	c.env.Router.Ended(context.Background(), c.Sess)
}
