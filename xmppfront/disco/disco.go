// Package disco answers service discovery (XEP-0030) for the server and, on
// their behalf, for local accounts, and computes the server's entity
// capabilities (XEP-0115) from what it answers, so that the two never
// disagree.
//
// The server's features are the ones feature packages registered on the
// router.Mux (Mux.Feature): disco lists exactly what is installed.
package disco

import (
	"cmp"
	"context"
	"crypto/sha1" // XEP-0115: sha-1 is the hash every client verifies.
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
	NSCaps  = "http://jabber.org/protocol/caps"
)

// DefaultNode is the XEP-0115 node that names the software.
const DefaultNode = "https://verlauf.im"

// Identity is a disco#info identity (XEP-0030).
type Identity struct {
	Category, Type, Lang, Name string
}

func (id Identity) element() *stream.Element {
	el := stream.NewElement(NSInfo, "identity", "category", id.Category, "type", id.Type)
	if id.Name != "" {
		el.SetAttr("name", id.Name)
	}
	if id.Lang != "" {
		el.Attrs = append(el.Attrs, stream.Attr{Name: stream.Name{Space: stream.NSXML, Local: "lang"}, Value: id.Lang})
	}
	return el
}

// Ver computes the XEP-0115 §5.1 verification string of an entity with
// these identities and features and no extended information (XEP-0128):
// identities sorted by category, type and xml:lang, each as
// category/type/lang/name<, then the features sorted, each as feature<,
// hashed with SHA-1 and encoded in base64. Sorting is by octets, as the
// XEP's i;octet collation requires. Duplicate features are kept out, as
// the XEP makes them invalid.
func Ver(identities []Identity, features []string) string {
	ids := slices.Clone(identities)
	slices.SortFunc(ids, func(a, b Identity) int {
		return cmp.Or(strings.Compare(a.Category, b.Category), strings.Compare(a.Type, b.Type), strings.Compare(a.Lang, b.Lang))
	})
	fs := slices.Clone(features)
	slices.Sort(fs)
	fs = slices.Compact(fs)
	var s strings.Builder
	for _, id := range ids {
		s.WriteString(id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name + "<")
	}
	for _, f := range fs {
		s.WriteString(f + "<")
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Subscribers tells whether a contact may see a user's account
// (*projections.Roster).
type Subscribers interface {
	// IsSubscriber reports whether contact has a presence subscription to
	// user (subscription from or both).
	IsSubscriber(ctx context.Context, user, contact jid.JID) (bool, error)
}

// Config configures a Service.
type Config struct {
	// Domain is the server's domain. Required.
	Domain string
	// Name is the server identity's name (default "verlauf").
	Name string
	// Node is the XEP-0115 node (DefaultNode).
	Node string
	// Subscribers decides who besides the user may discover a local
	// account: entities subscribed to the user's presence, which may see
	// that the account is online anyway. Nil shows it to the user alone.
	Subscribers Subscribers
	// AccountFeatures are listed in disco#info on a user's bare JID, for
	// features the server offers per account (XEP-0313 MAM is looked
	// for there).
	AccountFeatures []string
	// Nodes answer disco#info and disco#items on server nodes other than
	// the caps node, such as the ad-hoc commands list.
	Nodes []NodeProvider
}

// NodeProvider answers service discovery on a node of the server. ok is
// false for a node it does not own.
type NodeProvider interface {
	DiscoNode(ctx context.Context, iq router.IQ, node string) (q *stream.Element, ok bool, err error)
}

// Service answers disco#info and disco#items. Register it on the mux that
// the other features register on.
type Service struct {
	cfg Config
	mux *router.Mux
}

// New returns a disco service.
func New(cfg Config) *Service {
	if cfg.Name == "" {
		cfg.Name = "verlauf"
	}
	if cfg.Node == "" {
		cfg.Node = DefaultNode
	}
	return &Service{cfg: cfg, mux: router.NewMux()}
}

// Register installs the disco#info and disco#items handlers and features
// on m, whose features the server then lists.
func (s *Service) Register(m *router.Mux) {
	s.mux = m
	m.Handle(NSInfo, "query", router.IQHandlerFunc(s.info))
	m.Handle(NSItems, "query", router.IQHandlerFunc(s.items))
	m.Feature(NSInfo, NSItems)
}

// ServerIdentities are the identities of the server itself.
func (s *Service) ServerIdentities() []Identity {
	return []Identity{{Category: "server", Type: "im", Name: s.cfg.Name}}
}

// Ver is the server's current XEP-0115 verification string.
func (s *Service) Ver() string { return Ver(s.ServerIdentities(), s.mux.Features()) }

// Caps returns the XEP-0115 <c/> element for the server's stream features
// (XEP-0115), computed from the features registered at the time of
// the call, so call it for each stream rather than once at start-up.
func (s *Service) Caps() *stream.Element {
	return stream.NewElement(NSCaps, "c", "hash", "sha-1", "node", s.cfg.Node, "ver", s.Ver())
}

func (s *Service) info(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	if err := checkGet(iq); err != nil {
		return nil, err
	}
	node := iq.Payload.Attr("node")
	q := stream.NewElement(NSInfo, "query")
	if node != "" {
		q.SetAttr("node", node)
	}
	if iq.To.Localpart() == "" {
		// The server. The only node it knows is its caps node, which
		// clients query to verify (or learn) the hash.
		if node != "" && node != s.cfg.Node+"#"+s.Ver() {
			return s.node(ctx, iq, node)
		}
		for _, id := range s.ServerIdentities() {
			q.AddChild(id.element())
		}
		for _, f := range s.mux.Features() {
			q.AddChild(stream.NewElement(NSInfo, "feature", "var", f))
		}
		return q, nil
	}
	if err := s.authorize(ctx, iq); err != nil {
		return nil, err
	}
	if node != "" {
		return nil, itemNotFound(node)
	}
	q.AddChild(Identity{Category: "account", Type: "registered"}.element())
	q.AddChild(stream.NewElement(NSInfo, "feature", "var", NSInfo))
	q.AddChild(stream.NewElement(NSInfo, "feature", "var", NSItems))
	for _, f := range s.cfg.AccountFeatures {
		q.AddChild(stream.NewElement(NSInfo, "feature", "var", f))
	}
	return q, nil
}

func (s *Service) items(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	if err := checkGet(iq); err != nil {
		return nil, err
	}
	if iq.To.Localpart() != "" {
		if err := s.authorize(ctx, iq); err != nil {
			return nil, err
		}
	}
	if node := iq.Payload.Attr("node"); node != "" {
		if iq.To.Localpart() != "" {
			return nil, itemNotFound(node)
		}
		return s.node(ctx, iq, node)
	}
	return stream.NewElement(NSItems, "query"), nil
}

// authorize decides who may discover a local account through its bare
// JID, which the server answers on the account's behalf: the user and, if a Subscribers is configured, entities subscribed
// to the user's presence get an answer; everyone else the same
// service-unavailable as for an account that does not exist, so that the
// account's existence is not disclosed.
func (s *Service) authorize(ctx context.Context, iq router.IQ) error {
	user := iq.To.Bare()
	if iq.From.Bare().Equal(user) {
		return nil
	}
	if s.cfg.Subscribers != nil {
		ok, err := s.cfg.Subscribers.IsSubscriber(ctx, user, iq.From.Bare())
		if err != nil {
			return fmt.Errorf("disco: subscription of %s to %s: %w", iq.From.Bare(), user, err)
		}
		if ok {
			return nil
		}
	}
	return &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
}

// node asks the node providers about a server node.
func (s *Service) node(ctx context.Context, iq router.IQ, node string) (*stream.Element, error) {
	for _, p := range s.cfg.Nodes {
		q, ok, err := p.DiscoNode(ctx, iq, node)
		if err != nil || ok {
			return q, err
		}
	}
	return nil, itemNotFound(node)
}

func checkGet(iq router.IQ) error {
	if iq.Type != "get" {
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "service discovery is queried with get"}
	}
	return nil
}

func itemNotFound(node string) error {
	return stanza.Errorf(stanza.Cancel, stanza.ItemNotFound, "no node %q", node)
}
