// Package blocking implements the blocking command (XEP-0191): a user keeps
// a list of JIDs they want no stanzas from, changes it with block and
// unblock commands recorded as blocklist.changed events, and every
// resource that asked for the list hears of each change.
//
// Blocks is the hot path: the router asks it for every stanza that
// reaches a local user, so it answers from memory. The lists are loaded
// lazily from the store and replaced by the state each command produces;
// since every change goes through this package, the cache stays exact in
// a single process. Several front nodes sharing one store would need the
// cache fed from the log instead.
package blocking

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces.
const (
	// NS is the XEP-0191 namespace, also its disco#info feature.
	NS = "urn:xmpp:blocking"
	// NSErrors qualifies the application error a blocked entity's
	// stanzas bounce with (XEP-0191).
	NSErrors = "urn:xmpp:blocking:errors"
)

// Defaults of Config.
const (
	// DefaultMaxItems bounds a blocklist.
	DefaultMaxItems = 1000
	// DefaultMaxCached bounds how many users' lists are kept in memory.
	DefaultMaxCached = 100_000
)

// Router is what the service needs from the session registry
// (*router.Router).
type Router interface {
	Resources(bare jid.JID) []router.Resource
	SendToResource(ctx context.Context, full jid.JID, st *stream.Element) bool
}

// Config configures a Service.
type Config struct {
	// Store is the event store. Required.
	Store eventstore.Store
	// Router delivers pushes. Nil sends none.
	Router Router
	// Clock stamps events (domain.SystemClock).
	Clock domain.Clock
	// MaxItems bounds one user's list (DefaultMaxItems).
	MaxItems int
	// MaxCached bounds the in-memory cache (DefaultMaxCached).
	MaxCached int
	// OnChange, if set, is called after a change has been recorded and
	// pushed. XEP-0191 wants the user's presence withdrawn from
	// newly blocked contacts and sent again to unblocked ones; that is
	// the presence handler's business, and this is its hook.
	OnChange func(ctx context.Context, user jid.JID, change domain.BlocklistChanged)
	Log      *logrus.Entry
}

// Service answers the blocking command and tells the router whom a user
// blocks. It is safe for concurrent use.
type Service struct {
	cfg Config
	agg eventstore.Aggregate[domain.Blocklist]

	mu sync.RWMutex
	// lists caches users' blocklists by bare JID.
	lists map[string]cached
	// requested holds, per bare JID, the full JIDs that retrieved the
	// blocklist and so get pushes (XEP-0191). Sessions that ended
	// are pruned whenever the user's resources are looked up.
	requested map[string]map[string]bool
}

type cached struct {
	list domain.Blocklist
	// version is the stream revision + 1, 0 for an empty stream: a load
	// that raced with a command must not replace a newer state.
	version uint64
}

// New returns a blocking service.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultMaxItems
	}
	if cfg.MaxCached <= 0 {
		cfg.MaxCached = DefaultMaxCached
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.Out = discard{}
		cfg.Log = logrus.NewEntry(l)
	}
	return &Service{
		cfg: cfg,
		agg: eventstore.Aggregate[domain.Blocklist]{
			Init: domain.NewBlocklist(cfg.MaxItems),
			Fold: func(b domain.Blocklist, ev domain.Event) (domain.Blocklist, error) {
				return domain.Fold(b, domain.Blocklist.Apply, ev)
			},
		},
		lists:     make(map[string]cached),
		requested: make(map[string]map[string]bool),
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Register installs the handlers and the disco feature on m.
func (s *Service) Register(m *router.Mux) {
	for _, local := range []string{"blocklist", "block", "unblock"} {
		m.Handle(NS, local, s)
	}
	m.Feature(NS)
}

// Blocks reports whether user blocks peer: the router drops stanzas from
// peer to user (and bounces the user's own stanzas to peer) when it does.
// A list that cannot be loaded counts as empty, logged, and is tried
// again on the next stanza.
func (s *Service) Blocks(ctx context.Context, user, peer jid.JID) bool {
	key := user.Bare().String()
	s.mu.RLock()
	c, ok := s.lists[key]
	s.mu.RUnlock()
	if !ok {
		l, err := eventstore.Load(ctx, s.cfg.Store, domain.BlocklistStream(user), s.agg)
		if err != nil {
			s.cfg.Log.WithError(err).WithField("user", key).Warn("blocking: load blocklist")
			return false
		}
		c = s.remember(key, l)
	}
	return c.list.Blocks(peer)
}

// remember caches the state l if it is newer than what is cached, and
// returns what is cached afterwards.
func (s *Service) remember(key string, l eventstore.Loaded[domain.Blocklist]) cached {
	c := cached{list: l.State}
	if l.Exists {
		c.version = l.Revision + 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.lists[key]; ok && old.version >= c.version {
		return old
	}
	if len(s.lists) >= s.cfg.MaxCached {
		// Any victim will do: it is reloaded on its next stanza.
		for k := range s.lists {
			delete(s.lists, k)
			break
		}
	}
	s.lists[key] = c
	return c
}

// Forget drops a user's list and push registrations, e.g. after the
// account was deleted.
func (s *Service) Forget(user jid.JID) {
	key := user.Bare().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.lists, key)
	delete(s.requested, key)
}

// Ended forgets that the session full retrieved the blocklist; the c2s
// layer calls it when a session ends, so that a later session with the same
// full JID gets no pushes until it asks for the list itself.
func (s *Service) Ended(full jid.JID) {
	key := full.Bare().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if req := s.requested[key]; req != nil {
		delete(req, full.String())
		if len(req) == 0 {
			delete(s.requested, key)
		}
	}
}

// BlockedError is the error a user's stanza to a JID they block bounces
// with (XEP-0191): not-acceptable with the blocking application
// condition, so the client can tell the user why.
func BlockedError() *stanza.Error {
	return &stanza.Error{
		Type: stanza.Cancel, Condition: stanza.NotAcceptable,
		App: stream.NewElement(NSErrors, "blocked"),
	}
}

// HandleIQ implements router.IQHandler.
func (s *Service) HandleIQ(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	if !iq.To.Equal(iq.From.Bare()) {
		return nil, stanza.Errorf(stanza.Cancel, stanza.Forbidden, "a blocklist belongs to its owner only")
	}
	user := iq.From.Bare()
	switch local := iq.Payload.Name.Local; {
	case local == "blocklist" && iq.Type == "get":
		return s.get(ctx, user, iq.From)
	case local == "block" && iq.Type == "set":
		jids, err := items(iq.Payload)
		if err != nil {
			return nil, err
		}
		if len(jids) == 0 {
			return nil, stanza.Errorf(stanza.Modify, stanza.BadRequest, "block needs at least one item")
		}
		return nil, s.change(ctx, user, func(b domain.Blocklist) ([]domain.Payload, error) { return b.Block(jids...) })
	case local == "unblock" && iq.Type == "set":
		jids, err := items(iq.Payload)
		if err != nil {
			return nil, err
		}
		if len(jids) == 0 {
			return nil, s.change(ctx, user, domain.Blocklist.UnblockAll)
		}
		return nil, s.change(ctx, user, func(b domain.Blocklist) ([]domain.Payload, error) { return b.Unblock(jids...) })
	default:
		return nil, stanza.Errorf(stanza.Modify, stanza.BadRequest, "%s is not a blocking command of type %s", local, iq.Type)
	}
}

// items parses the <item jid="…"/> children of a block or unblock.
func items(cmd *stream.Element) ([]jid.JID, error) {
	var out []jid.JID
	for c := range cmd.Children() {
		if c.Name.Space != NS || c.Name.Local != "item" {
			continue
		}
		j, err := domain.ParseJID(c.Attr("jid"))
		if err != nil || c.Attr("jid") == "" {
			return nil, stanza.Errorf(stanza.Modify, stanza.JIDMalformed, "item jid %q is not a JID", c.Attr("jid"))
		}
		out = append(out, j)
	}
	return out, nil
}

func (s *Service) get(ctx context.Context, user, full jid.JID) (*stream.Element, error) {
	l, err := eventstore.Load(ctx, s.cfg.Store, domain.BlocklistStream(user), s.agg)
	if err != nil {
		return nil, fmt.Errorf("blocking: get %s: %w", user, err)
	}
	c := s.remember(user.String(), l)
	s.mu.Lock()
	if s.requested[user.String()] == nil {
		s.requested[user.String()] = make(map[string]bool)
	}
	s.requested[user.String()][full.String()] = true
	s.mu.Unlock()
	if s.cfg.Router != nil {
		s.interested(user) // prunes sessions that are gone
	}
	out := stream.NewElement(NS, "blocklist")
	for _, j := range c.list.JIDs() {
		out.AddChild(stream.NewElement(NS, "item", "jid", j))
	}
	return out, nil
}

func (s *Service) change(ctx context.Context, user jid.JID, decide func(domain.Blocklist) ([]domain.Payload, error)) error {
	var change domain.BlocklistChanged
	l, _, err := eventstore.Execute(ctx, s.cfg.Store, domain.BlocklistStream(user), s.agg,
		func(b domain.Blocklist) ([]domain.Event, error) {
			ps, err := decide(b)
			if err != nil {
				return nil, err
			}
			change = domain.BlocklistChanged{}
			for _, p := range ps {
				if c, ok := p.(domain.BlocklistChanged); ok {
					change = c
				}
			}
			return domain.NewEvents(s.cfg.Clock, ps...)
		})
	switch {
	case errors.Is(err, domain.ErrBlocklistFull):
		return stanza.Errorf(stanza.Cancel, stanza.ResourceConstraint, "at most %d JIDs can be blocked", s.cfg.MaxItems)
	case errors.Is(err, domain.ErrEmptyBlockRequest):
		return stanza.Errorf(stanza.Modify, stanza.BadRequest, "no JIDs given")
	case err != nil:
		return fmt.Errorf("blocking: %s: %w", user, err)
	}
	s.remember(user.String(), l)
	if len(change.Blocked) == 0 && len(change.Unblocked) == 0 && !change.UnblockAll {
		return nil // nothing changed, nothing to tell
	}
	s.push(ctx, user, change)
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(ctx, user, change)
	}
	return nil
}

// push sends the change to every resource of user that retrieved the
// blocklist (XEP-0191), the one that made it included.
func (s *Service) push(ctx context.Context, user jid.JID, change domain.BlocklistChanged) {
	if s.cfg.Router == nil {
		return
	}
	var cmd *stream.Element
	if len(change.Blocked) > 0 {
		cmd = stream.NewElement(NS, "block")
		for _, j := range change.Blocked {
			cmd.AddChild(stream.NewElement(NS, "item", "jid", j))
		}
	} else {
		cmd = stream.NewElement(NS, "unblock")
		for _, j := range change.Unblocked {
			cmd.AddChild(stream.NewElement(NS, "item", "jid", j))
		}
	}
	for _, full := range s.interested(user) {
		iq := stream.NewElement(stanza.NSClient, "iq", "type", "set", "id", "push-"+uuid.NewString(), "to", full.String())
		s.cfg.Router.SendToResource(ctx, full, iq.AddChild(cmd.Clone()))
	}
}

// interested returns the bound resources of user that retrieved the
// blocklist, and forgets the registrations of sessions that are gone.
func (s *Service) interested(user jid.JID) []jid.JID {
	bound := s.cfg.Router.Resources(user)
	key := user.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	req := s.requested[key]
	var out []jid.JID
	live := make(map[string]bool, len(bound))
	for _, r := range bound {
		k := r.JID.String()
		live[k] = true
		if req[k] {
			out = append(out, r.JID)
		}
	}
	for k := range req {
		if !live[k] {
			delete(req, k)
		}
	}
	if len(req) == 0 {
		delete(s.requested, key)
	}
	return out
}
