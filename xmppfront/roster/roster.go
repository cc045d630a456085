// Package roster serves the roster (RFC 6121 §2) with roster versioning
// (XEP-0237): roster gets answered from the roster projection, roster sets
// and removes decided by the domain's Roster aggregate and recorded through
// eventstore.Execute, and roster pushes to every interested resource.
//
// The Service is also the one command path for every other roster change:
// package presence runs the subscription handshake through Execute, so
// that each change is recorded, waited for in the projection and pushed in
// exactly one way.
package roster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/projections"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces of the roster and of the stream features it depends on.
const (
	NS = "jabber:iq:roster"
	// NSVersioning is the stream feature of XEP-0237 roster versioning.
	NSVersioning = "urn:xmpp:features:rosterver"
	// NSPreApproval is the stream feature of subscription pre-approval
	// (RFC 6121 §3.4); without it clients must not expect 'approved'.
	NSPreApproval = "urn:xmpp:features:pre-approval"
)

// DefaultMaxItems bounds a roster when Options.MaxItems is 0.
const DefaultMaxItems = 1000

// Router is what the roster needs from the session registry
// (*router.Router).
type Router interface {
	Resources(bare jid.JID) []router.Resource
	SendToResource(ctx context.Context, full jid.JID, st *stream.Element) bool
	SetInterested(full jid.JID)
	Route(ctx context.Context, st *stream.Element)
}

// Waiter waits until a projection has applied a log position
// (*projections.Runner).
type Waiter interface {
	WaitFor(ctx context.Context, name string, pos eventstore.Position) error
}

// Subscriptions carries out, towards the contact, the presence side of a
// roster change that the user did not make with a presence stanza: the
// unsubscribe/unsubscribed and unavailable presence of a roster remove
// (RFC 6121 §2.5.2). Package presence implements it, because a local
// contact's own roster must process those stanzas as inbound subscription
// stanzas.
type Subscriptions interface {
	Settle(ctx context.Context, user, contact jid.JID, out domain.RosterOutcome)
}

// Options tunes the Service. The zero value is a sensible default.
type Options struct {
	// MaxItems bounds each roster (items plus pending requests from
	// strangers); 0 means DefaultMaxItems, negative means no limit.
	MaxItems int
	// Clock stamps events; nil means domain.SystemClock.
	Clock domain.Clock
	// WaitTimeout bounds how long a command waits for the projection to
	// show its events before it pushes and answers anyway; default 5s.
	WaitTimeout time.Duration
	Log         *logrus.Entry
}

// Service is the roster feature.
type Service struct {
	store  eventstore.Store
	proj   *projections.Roster
	waiter Waiter
	r      Router
	agg    eventstore.Aggregate[domain.Roster]
	clock  domain.Clock
	wait   time.Duration
	log    *logrus.Entry
	subs   Subscriptions
}

// New returns the roster feature. proj must be fed by the Runner passed as
// waiter, so that a read that follows a change sees it.
func New(store eventstore.Store, proj *projections.Roster, waiter Waiter, r Router, opts Options) *Service {
	limit := opts.MaxItems
	switch {
	case limit == 0:
		limit = DefaultMaxItems
	case limit < 0:
		limit = 0
	}
	if opts.Clock == nil {
		opts.Clock = domain.SystemClock{}
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 5 * time.Second
	}
	if opts.Log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		opts.Log = logrus.NewEntry(l)
	}
	return &Service{
		store:  store,
		proj:   proj,
		waiter: waiter,
		r:      r,
		agg: eventstore.Aggregate[domain.Roster]{
			Init: domain.NewRoster(limit),
			Fold: func(ro domain.Roster, ev domain.Event) (domain.Roster, error) {
				p, err := domain.Decode(ev)
				if err != nil {
					return ro, err
				}
				return ro.Apply(p), nil
			},
		},
		clock: opts.Clock,
		wait:  opts.WaitTimeout,
		log:   opts.Log,
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Projection is the roster read model the service answers from.
func (s *Service) Projection() *projections.Roster { return s.proj }

// UseSubscriptions sets who carries out the presence side of roster
// removes. presence.New calls it; until then the stanzas are only routed,
// which is right for remote contacts alone.
func (s *Service) UseSubscriptions(subs Subscriptions) { s.subs = subs }

// Register plugs the roster into the IQ mux and disco.
func (s *Service) Register(mux *router.Mux) {
	mux.Handle(NS, "query", s)
	mux.Feature(NS)
}

// StreamFeatures are the elements the c2s stream advertises in its
// features after resource binding: roster versioning and pre-approval.
func StreamFeatures() []*stream.Element {
	return []*stream.Element{
		stream.NewElement(NSVersioning, "ver"),
		stream.NewElement(NSPreApproval, "sub"),
	}
}

// Decide is a roster command: a rule of domain.Roster applied to the
// current state.
type Decide func(domain.Roster) (domain.RosterOutcome, error)

// Execute records what decide decides on the user's roster through the one
// command path, waits until the projection shows it, and pushes the roster
// change to the user's interested resources. It returns the outcome, whose
// other effects (forwarding, replies, presence) are the caller's.
func (s *Service) Execute(ctx context.Context, user jid.JID, decide Decide) (domain.RosterOutcome, error) {
	user = user.Bare()
	var out domain.RosterOutcome
	_, res, err := eventstore.Execute(ctx, s.store, domain.RosterStream(user), s.agg,
		func(ro domain.Roster) ([]domain.Event, error) {
			o, err := decide(ro)
			if err != nil {
				return nil, err
			}
			out = o // the last attempt's decision is the one recorded
			return domain.NewEvents(s.clock, o.Events...)
		})
	if err != nil {
		return domain.RosterOutcome{}, err
	}
	if len(out.Events) > 0 {
		wctx, cancel := context.WithTimeout(ctx, s.wait)
		err := s.waiter.WaitFor(wctx, projections.RosterName, res.Position)
		cancel()
		if err != nil {
			// The change is durable; only a read right after it may
			// miss it. Pushes below still carry it.
			s.log.WithError(err).WithField("user", user.String()).Warn("roster: projection did not catch up")
		}
	}
	if out.Push != nil {
		s.Push(ctx, user, *out.Push)
	}
	return out, nil
}

// Push sends a roster push (RFC 6121 §2.1.6) to every interested resource
// of the user.
func (s *Service) Push(ctx context.Context, user jid.JID, p domain.RosterPush) {
	for _, res := range s.r.Resources(user) {
		if !res.Interested {
			continue
		}
		q := stream.NewElement(NS, "query", "ver", strconv.FormatUint(p.Ver, 10))
		if p.Removed {
			q.AddChild(stream.NewElement(NS, "item", "jid", p.Item.JID, "subscription", "remove"))
		} else {
			q.AddChild(ItemElement(p.Item))
		}
		// No 'from': a push comes from the user's own account, which
		// clients accept as no 'from' or the bare JID (§2.1.6).
		iq := stream.NewElement(stanza.NSClient, "iq", "type", "set", "id", "push-"+uuid.NewString(), "to", res.JID.String())
		iq.AddChild(q)
		s.r.SendToResource(ctx, res.JID, iq)
	}
}

// ItemElement renders a roster item as an <item/> of jabber:iq:roster.
func ItemElement(it domain.RosterItem) *stream.Element {
	el := stream.NewElement(NS, "item", "jid", it.JID)
	if it.Name != "" {
		el.SetAttr("name", it.Name)
	}
	sub := it.Subscription
	if sub == "" {
		sub = domain.SubscriptionNone
	}
	el.SetAttr("subscription", string(sub))
	if it.Ask {
		el.SetAttr("ask", "subscribe")
	}
	if it.Approved {
		el.SetAttr("approved", "true")
	}
	for _, g := range it.Groups {
		el.AddChild(stream.NewElement(NS, "group").AddText(g))
	}
	return el
}

// HandleIQ answers roster gets and sets (router.IQHandler).
func (s *Service) HandleIQ(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	user := iq.From.Bare()
	// §2.1.5 and §2.3.3: only the account itself reads or changes its
	// roster; an IQ with no 'to' reaches here addressed to the sender's
	// bare JID.
	if !iq.To.Equal(user) {
		return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "a roster belongs to its own account"}
	}
	switch iq.Type {
	case "get":
		return s.get(ctx, iq)
	case "set":
		return nil, s.set(ctx, user, iq.Payload)
	default:
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
}

func (s *Service) get(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	s.r.SetInterested(iq.From)
	items, ver, err := s.proj.Items(ctx, iq.From.Bare())
	if err != nil {
		return nil, fmt.Errorf("roster get: %w", err)
	}
	v := strconv.FormatUint(ver, 10)
	// XEP-0237 §2.4: a client that has this version cached gets an empty
	// result; any other version (or none) gets the whole roster, which
	// is always correct and keeps no removal history.
	if cached := iq.Payload.Attr("ver"); cached != "" && cached == v {
		return nil, nil
	}
	q := stream.NewElement(NS, "query", "ver", v)
	for _, it := range items {
		q.AddChild(ItemElement(it))
	}
	return q, nil
}

// setRequest is a parsed and validated roster set.
type setRequest struct {
	contact jid.JID
	remove  bool
	name    string
	groups  []string
}

// parseSet applies the syntax rules of RFC 6121 §2.3.3 and §2.5 to the
// <query/> of a roster set. 'ask', 'approved' and any 'subscription' but
// "remove" are ignored, as §2.1.2 requires of the server.
func parseSet(q *stream.Element) (setRequest, error) {
	var item *stream.Element
	n := 0
	for c := range q.Children() {
		if c.Name.Space == NS && c.Name.Local == "item" {
			item = c
			n++
		}
	}
	if n != 1 {
		return setRequest{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "a roster set carries exactly one item"}
	}
	raw := item.Attr("jid")
	if raw == "" {
		return setRequest{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "the item has no jid"}
	}
	contact, err := domain.ParseJID(raw)
	if err != nil {
		return setRequest{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed, Text: "the item's jid is not a valid JID"}
	}
	if contact.Resourcepart() != "" {
		return setRequest{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "roster items are bare JIDs"}
	}
	req := setRequest{contact: contact, remove: item.Attr("subscription") == "remove"}
	if req.remove {
		return req, nil
	}
	req.name = item.Attr("name")
	if len(req.name) > domain.MaxRosterTextLen {
		return setRequest{}, stanza.Errorf(stanza.Modify, stanza.NotAcceptable, "the name is longer than %d bytes", domain.MaxRosterTextLen)
	}
	seen := make(map[string]bool)
	for g := range item.Children() {
		if g.Name.Space != NS || g.Name.Local != "group" {
			continue
		}
		name := g.Text()
		switch {
		case name == "":
			return setRequest{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "a group name is empty"}
		case len(name) > domain.MaxRosterTextLen:
			return setRequest{}, stanza.Errorf(stanza.Modify, stanza.NotAcceptable, "a group name is longer than %d bytes", domain.MaxRosterTextLen)
		case seen[name]:
			return setRequest{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "duplicate group " + name}
		}
		seen[name] = true
		req.groups = append(req.groups, name)
	}
	return req, nil
}

func (s *Service) set(ctx context.Context, user jid.JID, q *stream.Element) error {
	req, err := parseSet(q)
	if err != nil {
		return err
	}
	if req.remove {
		out, err := s.Execute(ctx, user, func(ro domain.Roster) (domain.RosterOutcome, error) {
			return ro.RemoveItem(req.contact)
		})
		if err != nil {
			return commandError(err)
		}
		s.settle(ctx, user, req.contact.Bare(), out)
		return nil
	}
	_, err = s.Execute(ctx, user, func(ro domain.Roster) (domain.RosterOutcome, error) {
		return ro.SetItem(req.contact, req.name, req.groups)
	})
	return commandError(err)
}

// settle hands the presence side of a remove to the presence feature.
func (s *Service) settle(ctx context.Context, user, contact jid.JID, out domain.RosterOutcome) {
	if s.subs != nil {
		s.subs.Settle(ctx, user, contact, out)
		return
	}
	for _, t := range out.Replies {
		s.r.Route(ctx, stream.NewElement(stanza.NSClient, "presence", "type", string(t), "from", user.String(), "to", contact.String()))
	}
}

// commandError maps the domain's refusals to stanza errors; anything else
// is the server's fault and becomes internal-server-error at the router.
func commandError(err error) error {
	var full *domain.RosterFullError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &full):
		return stanza.Errorf(stanza.Cancel, stanza.NotAllowed, "the roster is full (%d entries)", full.Max)
	case errors.Is(err, domain.ErrRosterItemNotFound):
		return &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "no such roster item"}
	case errors.Is(err, domain.ErrInvalidJID):
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
	case errors.Is(err, domain.ErrInvalidRosterItem):
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: err.Error()}
	default:
		return err
	}
}
