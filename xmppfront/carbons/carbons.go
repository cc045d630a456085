// Package carbons implements XEP-0280 Message Carbons (v2,
// urn:xmpp:carbons:2): a resource that enables carbons gets a copy of
// the chat messages its user sends from other resources (<sent/>) and of
// those the user receives on other resources (<received/>), so that a
// conversation reads the same on every device.
//
// The router's registry keeps the per-resource switch (Router.SetCarbons);
// the router calls Sent before it delivers a message a local user sent
// and Received after it delivered one to a local user. The copies carry
// the same <stanza-id/> as the archived message (the router adds it in
// Message.For), so a client can match a carbon with its MAM entry.
package carbons

import (
	"context"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/archiving"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces.
const (
	NS        = router.NSCarbons
	NSForward = "urn:xmpp:forward:0" // XEP-0297
	NSReceipt = "urn:xmpp:receipts"  // XEP-0184
	NSMarkers = "urn:xmpp:chat-markers:0"
	NSMUCUser = "http://jabber.org/protocol/muc#user"
)

// Router is what carbons needs of the session registry (*router.Router).
type Router interface {
	Resources(bare jid.JID) []router.Resource
	SendToResource(ctx context.Context, full jid.JID, st *stream.Element) bool
	SetCarbons(full jid.JID, on bool) bool
}

// Service is the carbons feature and the router's Carbons hook.
type Service struct {
	r Router
}

var _ router.Carbons = (*Service)(nil)

// New returns the feature; register it on the mux and install it with
// Router.UseCarbons.
func New(r Router) *Service { return &Service{r: r} }

// Register handles <enable/> and <disable/> and announces the feature.
func (s *Service) Register(mux *router.Mux) {
	mux.Handle(NS, "enable", router.IQHandlerFunc(func(ctx context.Context, iq router.IQ) (*stream.Element, error) {
		return s.toggle(iq, true)
	}))
	mux.Handle(NS, "disable", router.IQHandlerFunc(func(ctx context.Context, iq router.IQ) (*stream.Element, error) {
		return s.toggle(iq, false)
	}))
	mux.Feature(NS)
}

// toggle switches carbons for the sending resource (XEP-0280 §4).
func (s *Service) toggle(iq router.IQ, on bool) (*stream.Element, error) {
	if iq.Type != "set" {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if iq.To.Localpart() != "" && !iq.To.Bare().Equal(iq.From.Bare()) {
		// Only the user's own session may switch its carbons.
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.Forbidden}
	}
	if !s.r.SetCarbons(iq.From, on) {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	return nil, nil
}

// Sent implements router.Carbons: a <sent/> copy to each of the sender's
// other resources with carbons on. The sending resource never gets one.
func (s *Service) Sent(ctx context.Context, m *router.Message) {
	if !eligible(m) {
		return
	}
	user := m.From.Bare()
	s.copyTo(ctx, user, "sent", m, func(r router.Resource) bool { return !r.JID.Equal(m.From) })
}

// Received implements router.Carbons: a <received/> copy to each of the
// recipient's resources with carbons on that did not get the message
// itself.
func (s *Service) Received(ctx context.Context, m *router.Message, direct []jid.JID) {
	if !eligible(m) {
		return
	}
	s.copyTo(ctx, m.To.Bare(), "received", m, func(r router.Resource) bool {
		for _, d := range direct {
			if d.Equal(r.JID) {
				return false
			}
		}
		return true
	})
}

func (s *Service) copyTo(ctx context.Context, user jid.JID, kind string, m *router.Message, want func(router.Resource) bool) {
	var inner *stream.Element
	for _, r := range s.r.Resources(user) {
		if !r.Carbons || !want(r) {
			continue
		}
		if inner == nil {
			inner = m.For(user)
		}
		s.r.SendToResource(ctx, r.JID, wrap(inner, kind, user, r.JID, m.Type()))
	}
}

// wrap builds the carbon copy of st for the resource to (XEP-0280 §6):
// from the user's bare JID, the message forwarded (XEP-0297) inside
// <sent/> or <received/>.
func wrap(st *stream.Element, kind string, user, to jid.JID, typ string) *stream.Element {
	fwd := stream.NewElement(NSForward, "forwarded").AddChild(st)
	return stream.NewElement(stanza.NSClient, "message", "from", user.String(), "to", to.String(), "type", typ).
		AddChild(stream.NewElement(NS, kind).AddChild(fwd))
}

// eligible applies XEP-0280 §6.1 to a message between users: a chat
// message, or a normal one with a body or the payloads of a conversation
// (receipts, markers, chat states); not one marked <private/> or
// <no-copy/>; not a private message through a MUC room; not a message to
// oneself, which every resource of the user sees anyway; and not a
// carbon, which a client may not forge.
func eligible(m *router.Message) bool {
	if m.From.Bare().Equal(m.To.Bare()) {
		return false
	}
	st := m.Stanza
	c := archiving.Classify(st)
	if c.NoCopy {
		return false
	}
	for ch := range st.Children() {
		switch ch.Name.Space {
		case NS:
			if ch.Name.Local == "sent" || ch.Name.Local == "received" {
				return false
			}
		case NSMUCUser:
			return false
		}
	}
	switch m.Type() {
	case "chat":
		return true
	case "normal":
		return c.Content() || c.ChatState || st.Child("request", NSReceipt) != nil ||
			st.Child("received", NSReceipt) != nil || hasMarker(st)
	}
	return false
}

func hasMarker(st *stream.Element) bool {
	for ch := range st.Children() {
		if ch.Name.Space == NSMarkers {
			return true
		}
	}
	return false
}
