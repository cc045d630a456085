// Package private implements private XML storage (XEP-0049): a user stores
// arbitrary XML under the qualified name of its root element and reads it
// back later from any device; nobody else can read it. Every set is a
// private.set event on the user's private stream.
package private

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// NS is the XEP-0049 namespace, also its disco#info feature.
const NS = "jabber:iq:private"

// Defaults of Config.
const (
	// DefaultMaxItemBytes bounds one stored item. Bookmarks (XEP-0048)
	// are the largest common use and stay far below it.
	DefaultMaxItemBytes = 64 << 10
	// DefaultMaxItems bounds how many distinct items a user keeps.
	DefaultMaxItems = 64
)

// Config configures a Service.
type Config struct {
	// Store is the event store. Required.
	Store eventstore.Store
	// Clock stamps events (domain.SystemClock).
	Clock domain.Clock
	// MaxItemBytes bounds one serialized item (DefaultMaxItemBytes).
	MaxItemBytes int
	// MaxItems bounds the number of items per user (DefaultMaxItems).
	MaxItems int
}

// Service answers jabber:iq:private gets and sets.
type Service struct {
	cfg Config
	lim domain.PrivateLimits
}

// New returns a private storage service.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if cfg.MaxItemBytes <= 0 {
		cfg.MaxItemBytes = DefaultMaxItemBytes
	}
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultMaxItems
	}
	return &Service{cfg: cfg, lim: domain.PrivateLimits{MaxItemBytes: cfg.MaxItemBytes, MaxItems: cfg.MaxItems}}
}

// Register installs the handler and its disco feature on m.
func (s *Service) Register(m *router.Mux) {
	m.Handle(NS, "query", s)
	m.Feature(NS)
}

var agg = eventstore.Aggregate[domain.PrivateStorage]{
	Fold: func(p domain.PrivateStorage, ev domain.Event) (domain.PrivateStorage, error) {
		return domain.Fold(p, domain.PrivateStorage.Apply, ev)
	},
}

func notAcceptable(format string, args ...any) error {
	return stanza.Errorf(stanza.Modify, stanza.NotAcceptable, format, args...)
}

// HandleIQ implements router.IQHandler.
func (s *Service) HandleIQ(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	// The storage is the user's alone: an IQ without 'to' reaches here
	// addressed to the sender's bare JID; any other address is someone
	// else's storage (or the server's, which has none).
	if !iq.To.Equal(iq.From.Bare()) {
		return nil, stanza.Errorf(stanza.Cancel, stanza.Forbidden, "private storage belongs to its owner only")
	}
	var items []*stream.Element
	for c := range iq.Payload.Children() {
		if c.Name.Space == "" || domain.ReservedPrivateNamespace(c.Name.Space) {
			return nil, notAcceptable("namespace %q cannot be used for private storage", c.Name.Space)
		}
		items = append(items, c)
	}
	if len(items) == 0 {
		return nil, notAcceptable("the query needs one child element to store or retrieve")
	}
	if iq.Type == "get" {
		// XEP-0049: a get asks for one namespace at a time.
		if len(items) > 1 {
			return nil, notAcceptable("retrieve one element per request")
		}
		return s.get(ctx, iq, items[0])
	}
	return nil, s.set(ctx, iq, items)
}

func key(el *stream.Element) domain.PrivateKey {
	return domain.PrivateKey{Name: el.Name.Local, Namespace: el.Name.Space}
}

func (s *Service) get(ctx context.Context, iq router.IQ, want *stream.Element) (*stream.Element, error) {
	user := iq.To.Bare()
	l, err := eventstore.Load(ctx, s.cfg.Store, domain.PrivateStream(user), agg)
	if err != nil {
		return nil, fmt.Errorf("private: get %s: %w", user, err)
	}
	q := stream.NewElement(NS, "query")
	x, ok := l.State.Get(key(want))
	if !ok {
		// Nothing stored: the element comes back as it was asked for.
		return q.AddChild(want.Clone()), nil
	}
	el, err := parse(x)
	if err != nil {
		return nil, fmt.Errorf("private: stored item of %s: %w", user, err)
	}
	return q.AddChild(el), nil
}

// set stores every child in one append, so that a set either takes effect
// as a whole or not at all.
func (s *Service) set(ctx context.Context, iq router.IQ, items []*stream.Element) error {
	user := iq.To.Bare()
	want := make([]domain.PrivateItem, len(items))
	for i, el := range items {
		want[i] = domain.PrivateItem{Key: key(el), XML: el.String()}
	}
	_, _, err := eventstore.Execute(ctx, s.cfg.Store, domain.PrivateStream(user), agg,
		func(p domain.PrivateStorage) ([]domain.Event, error) {
			ps, err := p.Set(s.lim, want...)
			if err != nil {
				return nil, err
			}
			return domain.NewEvents(s.cfg.Clock, ps...)
		})
	switch {
	case errors.Is(err, domain.ErrItemTooLarge):
		return notAcceptable("an item is larger than %d bytes", s.cfg.MaxItemBytes)
	case errors.Is(err, domain.ErrPrivateFull):
		return stanza.Errorf(stanza.Cancel, stanza.ResourceConstraint, "at most %d items can be stored", s.cfg.MaxItems)
	case errors.Is(err, domain.ErrReservedNamespace):
		return notAcceptable("reserved namespace")
	case err != nil:
		return fmt.Errorf("private: set %s: %w", user, err)
	}
	return nil
}

// streamHeader lets the stream reader parse a stored element: it only
// parses inside a stream. The stored XML declares its own namespace.
const streamHeader = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`

func parse(x string) (*stream.Element, error) {
	r := stream.NewReader(strings.NewReader(streamHeader+x), stream.Limits{MaxStanzaSize: len(x) + 1})
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	return r.Next()
}
