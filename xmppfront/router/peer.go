package router

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// ErrBadPeerStanza is wrapped by FromPeer's refusals.
var ErrBadPeerStanza = errors.New("router: stanza from a peer refused")

// FromPeer routes a stanza received from an authenticated peer server, in
// jabber:client form: the s2s stream has checked that its 'from' domain
// was authenticated and that it is addressed to the local domain. It is
// delivered by the rules that apply to a local sender's stanza (blocking,
// archive, carbons, offline storage, the presence handler, server IQs),
// on the caller's goroutine: FromPeer may block on the store, and the
// stream calling it runs one stanza at a time, in order, off the router's
// partitions.
func (r *Router) FromPeer(ctx context.Context, st *stream.Element) error {
	from, err := jid.Parse(st.Attr("from"))
	if err != nil || st.Attr("from") == "" {
		return fmt.Errorf("%w: 'from' %q", ErrBadPeerStanza, st.Attr("from"))
	}
	if r.IsLocal(from.Domainpart()) {
		// Only local sessions speak for local users.
		return fmt.Errorf("%w: 'from' %s is local", ErrBadPeerStanza, from)
	}
	to, err := jid.Parse(st.Attr("to"))
	if err != nil || st.Attr("to") == "" {
		r.bounce(ctx, st, stanza.JIDMalformed)
		return fmt.Errorf("%w: 'to' %q", ErrBadPeerStanza, st.Attr("to"))
	}
	if !r.IsLocal(to.Domainpart()) {
		// No relaying: a peer reaches only our own users.
		r.bounce(ctx, st, stanza.ServiceUnavailable)
		return fmt.Errorf("%w: 'to' %s is not local", ErrBadPeerStanza, to)
	}
	switch st.Name.Local {
	case "presence":
		if r.cfg.Presence != nil {
			if to.Localpart() != "" {
				r.cfg.Presence.Inbound(ctx, st)
			}
			return nil
		}
		r.deliver(ctx, st, to, nil)
	case "iq":
		typ := st.Attr("type")
		if to.Resourcepart() == "" {
			if typ == "get" || typ == "set" {
				r.handleIQ(ctx, st, from, to)
			}
			return nil // results and errors to the server: nothing asked
		}
		r.deliver(ctx, st, to, nil)
	case "message":
		m := &Message{Stanza: st, From: from, To: to}
		m.archive = r.cfg.Archiver != nil && r.cfg.Archiver.Keeps(st)
		r.deliver(ctx, st, to, m)
	default:
		return fmt.Errorf("%w: <%s/>", ErrBadPeerStanza, st.Name.Local)
	}
	return nil
}
