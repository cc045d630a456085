// Package presence implements presence (RFC 6121 §3–4) as the router's
// PresenceHandler: the subscription handshake, initial presence and
// probes, broadcast to subscribers, unavailable presence on disconnect, and
// directed presence.
//
// Subscription stanzas change rosters, so they go through the roster
// feature's command path (roster.Service.Execute: domain rules, the event
// store, the projection, roster pushes); what to forward, answer or send
// follows from the domain's RosterOutcome. Who receives a broadcast and who
// is probed comes from the roster projection.
//
// Presence for a local user is processed here as inbound presence
// (Inbound) before anything is delivered, because the router delivers
// presence as is; everything for other domains goes to the router's Route.
package presence

import (
	"context"
	"errors"
	"sync"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront/roster"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Router is what presence needs from the session registry (*router.Router).
type Router interface {
	roster.Router
	SetPresence(full jid.JID, p *stream.Element)
	IsLocal(domain string) bool
	UserExists(ctx context.Context, bare jid.JID) bool
}

// Options tunes the Handler.
type Options struct {
	Log *logrus.Entry
}

// Handler is the presence feature.
type Handler struct {
	rs  *roster.Service
	r   Router
	log *logrus.Entry

	// mu guards the maps below; it is a leaf lock, never held while
	// sending.
	mu sync.Mutex
	// directed holds, per sending full JID, the addresses that got
	// directed available presence from it (RFC 6121 §4.6), so that its
	// unavailable presence reaches them too.
	directed map[string]map[string]bool
	// lastOff is each user's last unavailable presence, kept while the
	// user has no available resource, to answer probes (§4.3.2).
	lastOff map[string]*stream.Element
}

var _ router.PresenceHandler = (*Handler)(nil)

// New returns the presence handler and makes it carry out the presence
// side of roster removes (rs.UseSubscriptions).
func New(rs *roster.Service, r Router, opts Options) *Handler {
	if opts.Log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		opts.Log = logrus.NewEntry(l)
	}
	h := &Handler{
		rs:       rs,
		r:        r,
		log:      opts.Log,
		directed: make(map[string]map[string]bool),
		lastOff:  make(map[string]*stream.Element),
	}
	rs.UseSubscriptions(h)
	return h
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func newPresence(attrs ...string) *stream.Element {
	return stream.NewElement(stanza.NSClient, "presence", attrs...)
}

// isSubscription reports whether t is one of the four subscription types.
func isSubscription(t string) bool {
	switch domain.SubscriptionStanza(t) {
	case domain.StanzaSubscribe, domain.StanzaSubscribed, domain.StanzaUnsubscribe, domain.StanzaUnsubscribed:
		return true
	}
	return false
}

// Outbound handles presence sent by a local user's session.
func (h *Handler) Outbound(ctx context.Context, from jid.JID, st *stream.Element) {
	typ := st.Attr("type")
	if st.Attr("to") == "" {
		switch typ {
		case "":
			h.available(ctx, from, st)
		case "unavailable":
			h.unavailable(ctx, from, st)
		default:
			// Subscriptions, probes and errors need an addressee.
			h.bounce(ctx, from, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "presence of type " + typ + " needs a 'to'"})
		}
		return
	}
	to, err := domain.ParseJID(st.Attr("to"))
	if err != nil {
		h.bounce(ctx, from, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
		return
	}
	switch {
	case isSubscription(typ):
		h.outboundSubscription(ctx, from, to, st, domain.SubscriptionStanza(typ))
	case typ == "" || typ == "unavailable" || typ == "error":
		h.directedPresence(ctx, from, to, st)
	case typ == "probe":
		// Clients should leave probes to the server (§4.3); one that
		// sends one gets the server's answer, sent from the bare JID
		// as the server's own probes are.
		h.send(ctx, newPresence("type", "probe", "from", from.Bare().String(), "to", to.Bare().String()))
	default:
		h.bounce(ctx, from, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "unknown presence type"})
	}
}

// bounce returns a presence error to the sending session.
func (h *Handler) bounce(ctx context.Context, from jid.JID, st *stream.Element, e *stanza.Error) {
	if st.Attr("type") == "error" {
		return
	}
	orig := st.Clone()
	orig.SetAttr("from", from.String())
	h.r.SendToResource(ctx, from, stanza.ErrorReply(orig, e))
}

// send emits presence the server has decided: for a local user it is
// inbound presence, processed here; anything else is routed out.
func (h *Handler) send(ctx context.Context, st *stream.Element) {
	to, err := jid.Parse(st.Attr("to"))
	if err == nil && to.Localpart() != "" && h.r.IsLocal(to.Domainpart()) {
		h.Inbound(ctx, st)
		return
	}
	h.r.Route(ctx, st)
}

// sendTo sends a copy of p from 'from' to 'to'.
func (h *Handler) sendTo(ctx context.Context, p *stream.Element, from, to string) {
	c := p.Clone()
	c.SetAttr("from", from)
	c.SetAttr("to", to)
	h.send(ctx, c)
}

// ownResource finds a bound resource of the user.
func ownResource(rs []router.Resource, full jid.JID) (router.Resource, bool) {
	for _, r := range rs {
		if r.JID.Equal(full) {
			return r, true
		}
	}
	return router.Resource{}, false
}

// available handles broadcast available presence: initial presence
// (§4.2) or an update (§4.4).
func (h *Handler) available(ctx context.Context, from jid.JID, st *stream.Element) {
	user := from.Bare()
	before, _ := ownResource(h.r.Resources(user), from)
	initial := !before.Available

	p := st.Clone()
	p.SetAttr("from", from.String())
	p.SetAttr("to", "")
	h.r.SetPresence(from, p)
	h.mu.Lock()
	delete(h.lastOff, user.String())
	h.mu.Unlock()

	proj := h.rs.Projection()
	subs, err := proj.Subscribers(ctx, user)
	if err != nil {
		h.log.WithError(err).WithField("user", user.String()).Error("presence: subscribers")
	}
	for _, c := range subs {
		h.sendTo(ctx, p, from.String(), c)
	}
	// Every available resource of the user sees the new presence, the
	// sender included (§4.2.2, §4.4.2); a new resource also learns the
	// presence of the others.
	for _, res := range h.r.Resources(user) {
		if !res.Available {
			continue
		}
		c := p.Clone()
		c.SetAttr("to", res.JID.String())
		h.r.SendToResource(ctx, res.JID, c)
		if initial && !res.JID.Equal(from) && res.Presence != nil {
			o := res.Presence.Clone()
			o.SetAttr("from", res.JID.String())
			o.SetAttr("to", from.String())
			h.r.SendToResource(ctx, from, o)
		}
	}
	if !initial {
		return
	}
	// §4.2.2: probe the contacts whose presence the user sees, from the
	// bare JID so that the answers reach every resource.
	to, err := proj.Subscriptions(ctx, user)
	if err != nil {
		h.log.WithError(err).WithField("user", user.String()).Error("presence: subscriptions")
	}
	for _, c := range to {
		h.send(ctx, newPresence("type", "probe", "from", user.String(), "to", c))
	}
	// §3.1.3: subscription requests that arrived while the user was away
	// wait for an available resource.
	pending, err := proj.PendingRequests(ctx, user)
	if err != nil {
		h.log.WithError(err).WithField("user", user.String()).Error("presence: pending requests")
	}
	for _, c := range pending {
		h.r.SendToResource(ctx, from, newPresence("type", "subscribe", "from", c, "to", user.String()))
	}
}

// unavailable handles broadcast unavailable presence (§4.5).
func (h *Handler) unavailable(ctx context.Context, from jid.JID, st *stream.Element) {
	before, _ := ownResource(h.r.Resources(from.Bare()), from)
	h.r.SetPresence(from, nil)
	p := st.Clone()
	p.SetAttr("from", from.String())
	p.SetAttr("to", "")
	h.goneUnavailable(ctx, from, p, before.Available)
}

// Ended sends unavailable presence for a session that is gone without
// saying so (§4.5.2 of RFC 6121, last paragraph).
func (h *Handler) Ended(ctx context.Context, full jid.JID, last *stream.Element) {
	p := newPresence("type", "unavailable", "from", full.String())
	h.goneUnavailable(ctx, full, p, last != nil && last.Attr("type") == "")
}

// goneUnavailable broadcasts p, the unavailable presence of from, to the
// user's subscribers (if from was available), to whoever got directed
// presence from it, and to the user's other available resources.
func (h *Handler) goneUnavailable(ctx context.Context, from jid.JID, p *stream.Element, wasAvailable bool) {
	user := from.Bare()
	h.mu.Lock()
	directed := h.directed[from.String()]
	delete(h.directed, from.String())
	h.mu.Unlock()
	if !wasAvailable && len(directed) == 0 {
		return
	}

	targets := make(map[string]bool, len(directed))
	for t := range directed {
		targets[t] = true
	}
	if wasAvailable {
		subs, err := h.rs.Projection().Subscribers(ctx, user)
		if err != nil {
			h.log.WithError(err).WithField("user", user.String()).Error("presence: subscribers")
		}
		for _, c := range subs {
			targets[c] = true
		}
	}
	for t := range targets {
		h.sendTo(ctx, p, from.String(), t)
	}

	anyLeft := false
	for _, res := range h.r.Resources(user) {
		if !res.Available || res.JID.Equal(from) {
			continue
		}
		anyLeft = true
		c := p.Clone()
		c.SetAttr("to", res.JID.String())
		h.r.SendToResource(ctx, res.JID, c)
	}
	if !anyLeft && wasAvailable {
		h.mu.Lock()
		h.lastOff[user.String()] = p
		h.mu.Unlock()
	}
}

// directedPresence sends presence to one addressee (§4.6) and remembers it
// so that the resource's unavailable presence follows.
func (h *Handler) directedPresence(ctx context.Context, from, to jid.JID, st *stream.Element) {
	p := st.Clone()
	p.SetAttr("from", from.String())
	typ := st.Attr("type")
	h.mu.Lock()
	switch typ {
	case "":
		m := h.directed[from.String()]
		if m == nil {
			m = make(map[string]bool)
			h.directed[from.String()] = m
		}
		m[to.String()] = true
	case "unavailable":
		delete(h.directed[from.String()], to.String())
	}
	h.mu.Unlock()
	h.send(ctx, p)
}

// outboundSubscription handles subscribe, subscribed, unsubscribe and
// unsubscribed from the user (§3, Appendix A.2).
func (h *Handler) outboundSubscription(ctx context.Context, from, to jid.JID, st *stream.Element, t domain.SubscriptionStanza) {
	user, contact := from.Bare(), to.Bare()
	out, err := h.rs.Execute(ctx, user, func(ro domain.Roster) (domain.RosterOutcome, error) {
		return ro.Outbound(contact, t)
	})
	if err != nil {
		h.commandFailed(ctx, from, st, err)
		return
	}
	if out.Forward {
		// §3.1.2: stamped with the user's bare JID, to the contact's.
		h.sendTo(ctx, st, user.String(), contact.String())
	}
	h.Settle(ctx, user, contact, out)
}

func (h *Handler) commandFailed(ctx context.Context, from jid.JID, st *stream.Element, err error) {
	var full *domain.RosterFullError
	switch {
	case errors.As(err, &full):
		h.bounce(ctx, from, st, stanza.Errorf(stanza.Cancel, stanza.NotAllowed, "the roster is full (%d entries)", full.Max))
	case errors.Is(err, domain.ErrInvalidJID):
		h.bounce(ctx, from, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
	default:
		h.log.WithError(err).WithField("from", from.String()).Error("presence: subscription change failed")
		h.bounce(ctx, from, st, &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
	}
}

// Settle sends to the contact what a roster change decided on the user's
// behalf: the server's own subscription stanzas, then the presence the
// contact gains or loses (roster.Subscriptions).
func (h *Handler) Settle(ctx context.Context, user, contact jid.JID, out domain.RosterOutcome) {
	for _, t := range out.Replies {
		h.send(ctx, newPresence("type", string(t), "from", user.String(), "to", contact.String()))
	}
	switch out.Presence {
	case domain.PresenceSendAvailable:
		for _, res := range h.r.Resources(user) {
			if res.Available && res.Presence != nil {
				h.sendTo(ctx, res.Presence, res.JID.String(), contact.String())
			}
		}
	case domain.PresenceSendUnavailable:
		for _, res := range h.r.Resources(user) {
			if res.Available {
				h.send(ctx, newPresence("type", "unavailable", "from", res.JID.String(), "to", contact.String()))
			}
		}
	}
}

// Inbound handles presence addressed to a local user by a local session
// or an authenticated peer server (§3 and §4.3, delivery per §8.5).
func (h *Handler) Inbound(ctx context.Context, st *stream.Element) {
	to, err := jid.Parse(st.Attr("to"))
	if err != nil || to.Localpart() == "" {
		return
	}
	from, err := jid.Parse(st.Attr("from"))
	if err != nil || st.Attr("from") == "" {
		return
	}
	typ := st.Attr("type")
	user := to.Bare()
	if typ == "" || typ == "unavailable" || typ == "error" {
		// To a full JID: that resource; to the bare JID: every
		// available resource. The router applies exactly that to
		// presence, and drops it where no resource matches, which is
		// also what §8.5.1 asks for an account that does not exist.
		h.r.Route(ctx, st)
		return
	}
	if !h.r.UserExists(ctx, user) {
		// §3.1.3, §4.3.2: a request or a probe for an account that does
		// not exist is answered with unsubscribed, which also clears
		// the sender's pending request; anything else is dropped.
		if typ == string(domain.StanzaSubscribe) || typ == "probe" {
			h.send(ctx, newPresence("type", "unsubscribed", "from", user.String(), "to", from.Bare().String()))
		}
		return
	}
	switch {
	case isSubscription(typ):
		h.inboundSubscription(ctx, user, from.Bare(), st, domain.SubscriptionStanza(typ))
	case typ == "probe":
		h.answerProbe(ctx, user, from)
	}
}

// inboundSubscription handles a subscription stanza from contact to the
// local user (Appendix A.3).
func (h *Handler) inboundSubscription(ctx context.Context, user, contact jid.JID, st *stream.Element, t domain.SubscriptionStanza) {
	out, err := h.rs.Execute(ctx, user, func(ro domain.Roster) (domain.RosterOutcome, error) {
		return ro.Inbound(contact, t)
	})
	if err != nil {
		h.log.WithError(err).WithFields(logrus.Fields{"user": user.String(), "contact": contact.String(), "type": string(t)}).
			Warn("presence: inbound subscription not recorded")
		return
	}
	if out.Forward {
		// Delivered to every available resource; a subscribe that finds
		// none is recorded as pending and redelivered at login.
		h.r.Route(ctx, stampedCopy(st, contact.String(), user.String()))
	}
	h.Settle(ctx, user, contact, out)
}

func stampedCopy(st *stream.Element, from, to string) *stream.Element {
	c := st.Clone()
	c.SetAttr("from", from)
	c.SetAttr("to", to)
	return c
}

// answerProbe answers a probe for a local user (§4.3.2): the presence of
// each available resource if the prober is subscribed, else the last
// unavailable presence; a prober that is not subscribed learns nothing but
// that (unsubscribed), which repairs its roster if it thought otherwise.
func (h *Handler) answerProbe(ctx context.Context, user, prober jid.JID) {
	ok, err := h.rs.Projection().IsSubscriber(ctx, user, prober)
	if err != nil {
		h.log.WithError(err).WithField("user", user.String()).Error("presence: probe")
		return
	}
	if !ok {
		h.send(ctx, newPresence("type", "unsubscribed", "from", user.String(), "to", prober.Bare().String()))
		return
	}
	sent := false
	for _, res := range h.r.Resources(user) {
		if res.Available && res.Presence != nil {
			h.sendTo(ctx, res.Presence, res.JID.String(), prober.String())
			sent = true
		}
	}
	if sent {
		return
	}
	h.mu.Lock()
	last := h.lastOff[user.String()]
	h.mu.Unlock()
	if last == nil {
		last = newPresence("type", "unavailable")
		last.SetAttr("from", user.String())
	}
	h.sendTo(ctx, last, last.Attr("from"), prober.String())
}

// BlocklistChanged keeps presence consistent with XEP-0191 (§3.3, §3.4):
// contacts the user just blocked see the user go unavailable, and contacts
// just unblocked who are subscribed get the user's current presence again.
// Unblock-all is handled by the caller passing the JIDs that were blocked.
func (h *Handler) BlocklistChanged(ctx context.Context, user jid.JID, blocked, unblocked []string) {
	resources := h.r.Resources(user.Bare())
	for _, peer := range blocked {
		for _, res := range resources {
			if !res.Available {
				continue
			}
			h.r.Route(ctx, newPresence("type", "unavailable", "from", res.JID.String(), "to", peer))
		}
	}
	for _, peer := range unblocked {
		p, err := jid.Parse(peer)
		if err != nil {
			continue
		}
		if sub, err := h.rs.Projection().IsSubscriber(ctx, user.Bare(), p); err != nil || !sub {
			continue
		}
		for _, res := range resources {
			if res.Available && res.Presence != nil {
				h.sendTo(ctx, res.Presence, res.JID.String(), peer)
			}
		}
	}
}
