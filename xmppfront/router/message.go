package router

import (
	"context"
	"slices"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces the router touches in the copies of a message it delivers.
const (
	// NSStanzaID is XEP-0359's: <stanza-id by=… id=…/>.
	NSStanzaID = "urn:xmpp:sid:0"
	// NSCarbons is XEP-0280 v2's, of <private/> among others.
	NSCarbons = "urn:xmpp:carbons:2"
)

// Message is a message between users on its way through the router, as the
// message hooks (Archiver, Carbons) see it.
//
// A Message is handled by one goroutine at a time; hooks must not keep it
// after they return.
type Message struct {
	// Stanza is the message as its sender wrote it, 'from' stamped. It is
	// shared: hooks never modify it, For makes the copies.
	Stanza *stream.Element
	// From is the sender's full JID; To the addressee as written.
	From, To jid.JID

	// archive is set when the message is routed on the sender's worker,
	// where the Archiver may block.
	archive bool
	ids     map[string]string
	copies  map[string]*stream.Element
}

// Type is the message type, "normal" when the attribute is absent.
func (m *Message) Type() string {
	if t := m.Stanza.Attr("type"); t != "" {
		return t
	}
	return "normal"
}

// SetID records the archive id that user's archive gave the message: the
// copies For returns for user carry it as <stanza-id by=user/>. An empty
// id takes it back (the append failed).
func (m *Message) SetID(user jid.JID, id string) {
	u := user.Bare().String()
	if m.ids == nil {
		m.ids = make(map[string]string, 2)
	}
	if id == "" {
		delete(m.ids, u)
	} else {
		m.ids[u] = id
	}
	delete(m.copies, u)
}

// ID returns the archive id SetID recorded for user, "" if none.
func (m *Message) ID(user jid.JID) string { return m.ids[user.Bare().String()] }

// For returns the message as user's resources get it (delivered, carbon
// copied, queued offline, archived): without a <stanza-id by=user> the
// client put there itself (XEP-0359 §4: only the user's own server may
// vouch for one, or a sender could make its message look archived or
// collide with an archived one), with the archive id SetID recorded, and
// without carbons' <private/> (XEP-0280 §7). It is m.Stanza itself when
// none of that changes anything. The copy is shared: do not modify it.
func (m *Message) For(user jid.JID) *stream.Element {
	u := user.Bare().String()
	if c, ok := m.copies[u]; ok {
		return c
	}
	id := m.ids[u]
	c := m.Stanza
	if id != "" || needsStrip(c, u) {
		c = stream.NewElement(c.Name.Space, c.Name.Local)
		c.Attrs = slices.Clone(m.Stanza.Attrs)
		for n := range m.Stanza.Nodes {
			node := m.Stanza.Nodes[n]
			if node.Elem != nil && strip(node.Elem, u) {
				continue
			}
			c.Nodes = append(c.Nodes, node)
		}
		if id != "" {
			c.AddChild(stream.NewElement(NSStanzaID, "stanza-id", "by", u, "id", id))
		}
	}
	if m.copies == nil {
		m.copies = make(map[string]*stream.Element, 2)
	}
	m.copies[u] = c
	return c
}

func needsStrip(st *stream.Element, user string) bool {
	for c := range st.Children() {
		if strip(c, user) {
			return true
		}
	}
	return false
}

// strip reports whether the child c of a message goes from user's copy.
func strip(c *stream.Element, user string) bool {
	switch c.Name {
	case stream.Name{Space: NSStanzaID, Local: "stanza-id"}:
		b, err := jid.Parse(c.Attr("by"))
		return err != nil || b.String() == user
	case stream.Name{Space: NSCarbons, Local: "private"}:
		return true
	}
	return false
}

// beforeDelivery runs the hooks that come before a message between users
// is delivered: the archive (only on the sender's worker, where it may
// block on the disk) and the sent carbons of a local sender.
//
// It reports false when the message must not be delivered: the sender's
// own copy could not be archived, and the sender has been told.
func (r *Router) beforeDelivery(ctx context.Context, m *Message) bool {
	if m == nil {
		return true
	}
	if m.archive && r.cfg.Archiver != nil {
		if err := r.cfg.Archiver.Archive(ctx, m); err != nil {
			r.bounceErr(ctx, m.Stanza, err)
			return false
		}
	}
	if r.cfg.Carbons != nil && r.IsLocal(m.From.Domainpart()) {
		r.cfg.Carbons.Sent(ctx, m)
	}
	return true
}

// sendMessage delivers the user's copy of m to sessions, then has the
// user's other resources get received carbons. m is nil for messages the
// server emits, which are delivered as they are.
func (r *Router) sendMessage(ctx context.Context, st *stream.Element, m *Message, to jid.JID, sessions ...Session) {
	if m == nil {
		for _, s := range sessions {
			s.Send(st)
		}
		return
	}
	c := m.For(to)
	direct := make([]jid.JID, 0, len(sessions))
	for _, s := range sessions {
		s.Send(c)
		direct = append(direct, s.JID())
	}
	if r.cfg.Carbons != nil {
		r.cfg.Carbons.Received(ctx, m, direct)
	}
}

// offline hands a chat or normal message for a user with no available
// resource to the offline handler, and bounces it if the handler refuses.
func (r *Router) offline(ctx context.Context, st *stream.Element, m *Message, to jid.JID) {
	c := st
	if m != nil {
		c = m.For(to)
	}
	var err error
	switch h := r.cfg.Offline.(type) {
	case nil:
		err = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	case OfflineErrorer:
		err = h.OfflineErr(ctx, to.Bare(), c)
	default:
		if !h.Offline(ctx, to.Bare(), c) {
			err = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		}
	}
	if err != nil {
		r.bounceErr(ctx, st, err)
		return
	}
	if m != nil && r.cfg.Carbons != nil {
		r.cfg.Carbons.Received(ctx, m, nil)
	}
}
