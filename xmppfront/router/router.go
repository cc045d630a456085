// Package router delivers stanzas between local sessions and hands the ones
// the server answers itself to feature handlers (RFC 6121 §8).
//
// Sessions publish every stanza they read on the bus (see Submit); the
// router consumes the bus in partitions keyed by the sender's bare JID, so
// one user's stanzas are routed in the order they were sent while
// different users are routed in parallel. Delivery never blocks a
// partition: a stanza for a client goes into that session's bounded send
// queue, and work that may block (IQ handlers, presence) runs on the
// sending session's own worker.
//
// Lock order: Router.mu is a leaf lock; no callback into a Session or a
// handler is made while it is held.
package router

import (
	"context"
	"hash/fnv"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stream"
)

// Session is a bound client session as the router sees it. Package c2s
// implements it.
type Session interface {
	// ID is unique among the sessions of this process.
	ID() string
	// JID is the session's full JID.
	JID() jid.JID
	// Send queues st for the client without blocking. It reports false
	// when the session is gone or its queue is full (the session is then
	// being closed as too slow).
	Send(st *stream.Element) bool
	// Do queues f on the session's worker, which runs tasks one at a time
	// in order with a context that ends with the session. It reports false
	// when the queue is full or the session is closing.
	Do(f func(ctx context.Context)) bool
	// Replace ends the session because another one bound the same full
	// JID (a conflict stream error, RFC 6120 §7.7.2.2).
	Replace()
	// Kick ends the session with the given stream error, for example
	// not-authorized once its account is deleted.
	Kick(cond stream.Condition, text string)
}

// Resource is one bound session of a user, as feature handlers see it.
type Resource struct {
	JID jid.JID
	// Priority is the priority of the last available presence, 0 before.
	Priority int
	// Available is true once the session has sent available presence
	// (RFC 6121 §4.2) and until it sends unavailable presence.
	Available bool
	// Interested is true once the session has requested the roster
	// (RFC 6121 §2.1.6): it gets roster pushes.
	Interested bool
	// Presence is the last presence the session broadcast, nil if none.
	// It is shared: do not modify it.
	Presence *stream.Element
	// Carbons is true while the session has XEP-0280 carbons enabled.
	Carbons bool
}

// OfflineHandler takes a message for a local user who has no resource to
// deliver it to (RFC 6121 §8.5.2.1.1). It reports whether it took the
// message; if not, the sender gets service-unavailable.
type OfflineHandler interface {
	Offline(ctx context.Context, to jid.JID, st *stream.Element) (handled bool)
}

// S2S sends a stanza to a remote domain. It returns an error wrapping a
// *stanza.Error to bounce the stanza with that condition.
type S2S interface {
	SendRemote(ctx context.Context, st *stream.Element) error
}

// Config is what a Router needs.
type Config struct {
	// Domain is the local domain served.
	Domain string
	// Publisher and Subscriber are the bus (bus.InProcess by default).
	Publisher  message.Publisher
	Subscriber message.Subscriber
	// Partitions is the number of bus partitions and router workers.
	// Default 2×GOMAXPROCS.
	Partitions int
	// Mux answers server-handled IQs. Required.
	Mux *Mux
	// Presence handles presence from sessions. If nil, the router keeps
	// availability itself (no subscriptions): broadcast presence only sets
	// the resource's availability and directed presence is delivered.
	Presence PresenceHandler
	// Offline takes messages for users with no available resource; nil
	// answers service-unavailable.
	Offline OfflineHandler
	// Available is told when a resource becomes a target of messages to
	// its bare JID (offline delivery); nil tells no one.
	Available AvailableHandler
	// Archiver archives messages between users; nil archives nothing.
	Archiver Archiver
	// Carbons sends carbon copies; nil sends none.
	Carbons Carbons
	// S2S sends to remote domains; nil answers remote-server-not-found.
	S2S S2S
	// Blocker applies XEP-0191 blocking; nil blocks nothing.
	Blocker Blocker
	// UserExists reports whether a local account exists. It is consulted
	// only for users with no bound session. Nil means every user exists.
	UserExists func(ctx context.Context, bare jid.JID) bool
	// MaxStanzaSize bounds what is decoded from the bus; default
	// stream.DefaultMaxStanzaSize.
	MaxStanzaSize int
	Log           *logrus.Entry
}

// Router is the session registry and the routing rules.
type Router struct {
	cfg    Config
	domain string
	log    *logrus.Entry

	mu    sync.RWMutex
	users map[string]map[string]*entry // bare → resourcepart → entry
	byID  map[string]*entry

	seq atomic.Uint64
	wg  sync.WaitGroup
}

type entry struct {
	sess       Session
	jid        jid.JID
	priority   int
	available  bool
	interested bool
	carbons    bool
	presence   *stream.Element
	// onWorker counts the session's stanzas being routed on its worker:
	// while there are any, the next ones queue behind them, so that a
	// message that waits for the archive is not overtaken by the
	// session's next stanza (RFC 6120 §10.1, in-order processing).
	onWorker atomic.Int32
}

// New returns a router; call Start before any session submits.
func New(cfg Config) *Router {
	if cfg.Partitions <= 0 {
		cfg.Partitions = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.MaxStanzaSize <= 0 {
		cfg.MaxStanzaSize = stream.DefaultMaxStanzaSize
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		cfg.Log = logrus.NewEntry(l)
	}
	d, err := jid.Parse(cfg.Domain)
	domain := cfg.Domain
	if err == nil {
		domain = d.Domainpart()
	}
	return &Router{
		cfg:    cfg,
		domain: domain,
		log:    cfg.Log,
		users:  make(map[string]map[string]*entry),
		byID:   make(map[string]*entry),
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Domain returns the local domain.
func (r *Router) Domain() string { return r.domain }

// Mux returns the IQ mux.
func (r *Router) Mux() *Mux { return r.cfg.Mux }

// IsLocal reports whether domain is served here.
func (r *Router) IsLocal(domain string) bool { return strings.EqualFold(domain, r.domain) }

// UserExists reports whether bare is a local account: true at once if it
// has a bound session, else asks the Config hook.
func (r *Router) UserExists(ctx context.Context, bare jid.JID) bool {
	if !r.IsLocal(bare.Domainpart()) || bare.Localpart() == "" {
		return false
	}
	r.mu.RLock()
	n := len(r.users[bare.Bare().String()])
	r.mu.RUnlock()
	if n > 0 || r.cfg.UserExists == nil {
		return true
	}
	return r.cfg.UserExists(ctx, bare.Bare())
}

// Bind registers a bound session. A session already bound to the same full
// JID is replaced: it is removed and told so (RFC 6120 §7.7.2.2, the
// "override" policy, so a client that lost its connection gets back in at
// once).
func (r *Router) Bind(s Session) {
	full := s.JID()
	bare, res := full.Bare().String(), full.Resourcepart()
	e := &entry{sess: s, jid: full}
	r.mu.Lock()
	rs := r.users[bare]
	if rs == nil {
		rs = make(map[string]*entry)
		r.users[bare] = rs
	}
	old := rs[res]
	rs[res] = e
	r.byID[s.ID()] = e
	if old != nil {
		delete(r.byID, old.sess.ID())
	}
	r.mu.Unlock()
	if old != nil {
		old.sess.Replace()
	}
}

// Unbind removes s if it is still registered and reports the presence it
// last broadcast (nil if none), so the caller can have unavailable presence
// sent on its behalf with Ended.
func (r *Router) Unbind(s Session) (last *stream.Element, was bool) {
	full := s.JID()
	bare, res := full.Bare().String(), full.Resourcepart()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byID[s.ID()]
	if e == nil {
		return nil, false
	}
	delete(r.byID, s.ID())
	if rs := r.users[bare]; rs != nil && rs[res] == e {
		delete(rs, res)
		if len(rs) == 0 {
			delete(r.users, bare)
		}
	}
	if e.available {
		return e.presence, true
	}
	return nil, true
}

// Ended unbinds s and tells the presence handler, so that unavailable
// presence goes out on its behalf. The session calls it once its worker
// has finished, so the handler sees it after every presence the session
// sent.
func (r *Router) Ended(ctx context.Context, s Session) {
	last, was := r.Unbind(s)
	if !was {
		// Replaced: the new session owns the full JID and its presence.
		return
	}
	if r.cfg.Presence != nil {
		r.cfg.Presence.Ended(ctx, s.JID(), last)
	}
}

// Resources lists the bound sessions of a local user.
func (r *Router) Resources(bare jid.JID) []Resource {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rs := r.users[bare.Bare().String()]
	out := make([]Resource, 0, len(rs))
	for _, e := range rs {
		out = append(out, Resource{
			JID: e.jid, Priority: e.priority, Available: e.available,
			Interested: e.interested, Presence: e.presence, Carbons: e.carbons,
		})
	}
	return out
}

// SetPresence records the availability and priority of a bound session
// from the presence it broadcast; nil or type='unavailable' makes it
// unavailable. The presence handler calls it. When the session becomes a
// target of messages to its bare JID, the AvailableHandler is queued on
// its worker.
func (r *Router) SetPresence(full jid.JID, p *stream.Element) {
	avail := p != nil && p.Attr("type") == ""
	prio := 0
	if avail {
		if c := p.Child("priority", ""); c != nil {
			if v, err := strconv.Atoi(strings.TrimSpace(c.Text())); err == nil && v >= -128 && v <= 127 {
				prio = v
			}
		}
	}
	r.mu.Lock()
	e := r.lookupLocked(full)
	if e == nil {
		r.mu.Unlock()
		return
	}
	wasTarget := e.available && e.priority >= 0
	e.available, e.priority = avail, prio
	if avail {
		e.presence = p
	} else {
		e.presence = nil
	}
	sess := e.sess
	r.mu.Unlock()
	if h := r.cfg.Available; h != nil && !wasTarget && avail && prio >= 0 {
		if !sess.Do(func(ctx context.Context) { h.Available(ctx, full) }) {
			r.log.WithField("jid", full.String()).Warn("router: session worker full, offline delivery postponed to the next presence")
		}
	}
}

// SetCarbons turns XEP-0280 carbons on or off for the session bound to
// full; false if there is none.
func (r *Router) SetCarbons(full jid.JID, on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lookupLocked(full)
	if e == nil {
		return false
	}
	e.carbons = on
	return true
}

// SetInterested marks a session as having requested the roster.
func (r *Router) SetInterested(full jid.JID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.lookupLocked(full); e != nil {
		e.interested = true
	}
}

// SendToResource queues st for the session bound to full; false if there
// is none or it cannot take it.
func (r *Router) SendToResource(_ context.Context, full jid.JID, st *stream.Element) bool {
	s := r.session(full)
	return s != nil && s.Send(st)
}

// SendToResourceWait is SendToResource for bulk senders: a session that
// is a QueueWaiter is waited for (until ctx ends) instead of being cut off
// for a full queue.
func (r *Router) SendToResourceWait(ctx context.Context, full jid.JID, st *stream.Element) bool {
	s := r.session(full)
	if s == nil {
		return false
	}
	if w, ok := s.(QueueWaiter); ok {
		return w.SendWait(ctx, st)
	}
	return s.Send(st)
}

func (r *Router) session(full jid.JID) Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.lookupLocked(full); e != nil {
		return e.sess
	}
	return nil
}

func (r *Router) entryByID(id string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

func (r *Router) lookupLocked(full jid.JID) *entry {
	if full.Resourcepart() == "" {
		return nil
	}
	return r.users[full.Bare().String()][full.Resourcepart()]
}

// partition picks the bus partition of a sender: all of one user's
// stanzas go through one partition, in order.
func (r *Router) partition(bare string) int {
	h := fnv.New32a()
	h.Write([]byte(bare))
	return int(h.Sum32() % uint32(r.cfg.Partitions))
}

// KickUser ends every session of the bare JID user with the stream error
// cond, for example when the account is deleted.
func (r *Router) KickUser(user jid.JID, cond stream.Condition, text string) {
	r.mu.RLock()
	var victims []Session
	for _, e := range r.users[user.Bare().String()] {
		victims = append(victims, e.sess)
	}
	r.mu.RUnlock()
	for _, s := range victims {
		s.Kick(cond, text)
	}
}

// Blocker says whether user blocks peer (XEP-0191). It is asked for every
// stanza to or from a local user, so it must answer from memory.
type Blocker interface {
	Blocks(ctx context.Context, user, peer jid.JID) bool
}

// UseBlocker installs the blocking check; call before Start.
func (r *Router) UseBlocker(b Blocker) { r.cfg.Blocker = b }

// UsePresence sets the presence handler. Like the other Use methods it is
// for wiring, before Start: feature packages that need the Router to build
// their handler plug in this way.
func (r *Router) UsePresence(h PresenceHandler) { r.cfg.Presence = h }

// UseOffline sets the offline handler (see Config.Offline); before Start.
func (r *Router) UseOffline(h OfflineHandler) { r.cfg.Offline = h }

// UseAvailable sets the handler told of newly available resources (see
// Config.Available); before Start.
func (r *Router) UseAvailable(h AvailableHandler) { r.cfg.Available = h }

// UseArchiver sets the archiver (see Config.Archiver); before Start.
func (r *Router) UseArchiver(a Archiver) { r.cfg.Archiver = a }

// UseCarbons sets the carbons hook (see Config.Carbons); before Start.
func (r *Router) UseCarbons(c Carbons) { r.cfg.Carbons = c }

// UseS2S sets the remote domain handler (see Config.S2S); before Start.
func (r *Router) UseS2S(h S2S) { r.cfg.S2S = h }
