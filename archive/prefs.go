package archive

import (
	"context"
	"sync"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// prefsCache holds the archive preferences of users asked about recently.
// The router asks for both sides of every message, so reading the prefs
// stream each time would double the reads of the message path.
type prefsCache struct {
	mu sync.Mutex
	m  map[string]domain.ArchivePrefs
	// gen moves on every invalidation, so that a load that raced with a
	// change does not put the old state back.
	gen uint64
}

// maxCachedPrefs bounds the cache; past it the cache starts over.
const maxCachedPrefs = 1 << 16

func (c *prefsCache) get(u string) (domain.ArchivePrefs, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[u]
	return p, c.gen, ok
}

func (c *prefsCache) put(u string, p domain.ArchivePrefs, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= maxCachedPrefs {
		clear(c.m)
	}
	c.m[u] = p
}

func (c *prefsCache) invalidate(u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, u)
	c.gen++
}

func (s *Service) prefsAgg() eventstore.Aggregate[domain.ArchivePrefs] {
	return eventstore.Aggregate[domain.ArchivePrefs]{
		Init: domain.NewArchivePrefs(s.cfg.DefaultMode),
		Fold: func(p domain.ArchivePrefs, ev domain.Event) (domain.ArchivePrefs, error) {
			return domain.Fold(p, domain.ArchivePrefs.Apply, ev)
		},
	}
}

// Prefs returns the user's archive preferences (the server's default mode
// for a user who never chose).
func (s *Service) Prefs(ctx context.Context, user jid.JID) (domain.ArchivePrefs, error) {
	u, err := bare(user)
	if err != nil {
		return domain.ArchivePrefs{}, err
	}
	p, gen, ok := s.prefs.get(u)
	if ok {
		return p, nil
	}
	l, err := eventstore.Load(ctx, s.cfg.Store, domain.PrefsStream(user), s.prefsAgg())
	if err != nil {
		return domain.ArchivePrefs{}, err
	}
	s.prefs.put(u, l.State, gen)
	return l.State, nil
}

// Archives reports whether user's conversation with partner is archived
// under the user's preferences; inRoster says whether partner is in the
// user's roster (for the "roster" mode).
func (s *Service) Archives(ctx context.Context, user, partner jid.JID, inRoster bool) (bool, error) {
	p, err := s.Prefs(ctx, user)
	if err != nil {
		return false, err
	}
	return p.Archives(partner, inRoster), nil
}

// SetPrefs replaces the user's archive preferences (XEP-0313 prefs, or
// the "Message history: on/off" ad-hoc command) through the command path.
func (s *Service) SetPrefs(ctx context.Context, user jid.JID, def domain.ArchiveMode, always, never []jid.JID) (domain.ArchivePrefs, error) {
	u, err := bare(user)
	if err != nil {
		return domain.ArchivePrefs{}, err
	}
	s.prefs.invalidate(u)
	l, _, err := eventstore.Execute(ctx, s.cfg.Store, domain.PrefsStream(user), s.prefsAgg(),
		func(p domain.ArchivePrefs) ([]domain.Event, error) {
			out, err := p.Set(def, always, never)
			if err != nil {
				return nil, err
			}
			return domain.NewEvents(s.cfg.Clock, out...)
		})
	s.prefs.invalidate(u)
	if err != nil {
		return domain.ArchivePrefs{}, err
	}
	return l.State, nil
}

// HandleEvent invalidates cached preferences when a prefs event passes; it
// has the shape of eventstore.Handler, for a subscription to the log (or
// the bus's log topic), so that a change made through another node or
// front end is seen at once.
func (s *Service) HandleEvent(_ context.Context, ev eventstore.RecordedEvent) error {
	if domain.StreamConcern(ev.Stream) != domain.ConcernPrefs {
		return nil
	}
	_, user, err := domain.SplitStream(ev.Stream)
	if err != nil {
		return nil
	}
	s.prefs.invalidate(user.String())
	return nil
}
