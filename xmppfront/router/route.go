package router

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Route delivers a stanza the server emits on someone's behalf (a roster
// push, a presence broadcast, an IQ result, a bounce): 'to' and 'from' set.
// It applies the delivery rules of RFC 6121 §8 for local addressees and
// hands remote ones to S2S. Presence is delivered as is: the presence
// handler, which calls Route, has already applied subscriptions.
func (r *Router) Route(ctx context.Context, st *stream.Element) {
	to, err := jid.Parse(st.Attr("to"))
	if err != nil || st.Attr("to") == "" {
		r.log.WithField("stanza", st.Name.Local).Debug("router: dropping stanza without a valid 'to'")
		return
	}
	r.deliver(ctx, st, to, nil)
}

// deliver is the routing shared by Route and stanzas from sessions, for
// everything but what the server answers itself. m is set for a message
// between users, which the message hooks see; nil for anything else.
func (r *Router) deliver(ctx context.Context, st *stream.Element, to jid.JID, m *Message) {
	if !r.IsLocal(to.Domainpart()) {
		if r.beforeDelivery(ctx, m) {
			r.remote(ctx, st)
		}
		return
	}
	if to.Localpart() == "" {
		// The server itself. IQs are answered by the caller before
		// they get here; messages and presence to the server have no
		// handler yet.
		if st.Name.Local == "message" {
			r.bounce(ctx, st, stanza.ServiceUnavailable)
		}
		return
	}
	if r.blockedBy(ctx, st, to) {
		return
	}
	switch st.Name.Local {
	case "message":
		r.message(ctx, st, to, m)
	case "presence":
		r.presence(st, to)
	case "iq":
		r.iqToUser(ctx, st, to)
	}
}

// blockedBy applies XEP-0191 §3.5 for a stanza to the local user to: if
// to blocks the sender, nothing is delivered; messages and IQ requests are
// answered service-unavailable as if the user did not exist, presence and
// everything else vanish.
func (r *Router) blockedBy(ctx context.Context, st *stream.Element, to jid.JID) bool {
	if r.cfg.Blocker == nil {
		return false
	}
	from, err := jid.Parse(st.Attr("from"))
	if err != nil {
		return false
	}
	if st.Name.Local == "presence" && st.Attr("type") != "unavailable" &&
		r.IsLocal(from.Domainpart()) && from.Localpart() != "" &&
		r.cfg.Blocker.Blocks(ctx, from.Bare(), to) {
		// A broadcast from a user to a contact they block (§3.3). The
		// unavailable presence sent when the block starts must pass.
		return true
	}
	if !r.cfg.Blocker.Blocks(ctx, to.Bare(), from) {
		return false
	}
	switch st.Name.Local {
	case "message":
		if st.Attr("type") != "error" {
			r.bounce(ctx, st, stanza.ServiceUnavailable)
		}
	case "iq":
		if t := st.Attr("type"); t == "get" || t == "set" {
			r.bounce(ctx, st, stanza.ServiceUnavailable)
		}
	}
	return true
}

// blocking reports whether the local sender blocks the addressee, in which
// case XEP-0191 §3.6 says the stanza is not routed and the sender learns
// why with not-acceptable and <blocked/>.
func (r *Router) blocking(ctx context.Context, st *stream.Element, from, to jid.JID) bool {
	if r.cfg.Blocker == nil || to.Domainpart() == "" || !r.cfg.Blocker.Blocks(ctx, from.Bare(), to) {
		return false
	}
	if st.Attr("type") != "error" && st.Name.Local != "presence" {
		r.bounceWith(ctx, st, &stanza.Error{
			Type: stanza.Cancel, Condition: stanza.NotAcceptable,
			App: stream.NewElement(NSBlockingErrors, "blocked"),
		})
	}
	return true
}

// NSBlockingErrors is XEP-0191's application error namespace.
const NSBlockingErrors = "urn:xmpp:blocking:errors"

func (r *Router) remote(ctx context.Context, st *stream.Element) {
	if r.cfg.S2S == nil {
		r.bounce(ctx, st, stanza.RemoteServerNotFound)
		return
	}
	if err := r.cfg.S2S.SendRemote(ctx, st); err != nil {
		var se *stanza.Error
		if errors.As(err, &se) {
			r.bounceWith(ctx, st, se)
			return
		}
		r.log.WithError(err).Warn("router: s2s")
		r.bounce(ctx, st, stanza.RemoteServerTimeout)
	}
}

// message applies RFC 6121 §8.5.2 (bare JID) and §8.5.3 (full JID). A
// message between users (m set) is archived and carbon-copied on the way
// (beforeDelivery, sendMessage, offline).
func (r *Router) message(ctx context.Context, st *stream.Element, to jid.JID, m *Message) {
	typ := st.Attr("type")
	if typ == "" {
		typ = "normal"
	}
	if !r.UserExists(ctx, to) {
		r.bounce(ctx, st, stanza.ServiceUnavailable)
		return
	}
	if !r.beforeDelivery(ctx, m) {
		return
	}
	if to.Resourcepart() != "" {
		if s := r.session(to); s != nil {
			r.sendMessage(ctx, st, m, to, s)
			return
		}
		// §8.5.3.2.1: the resource is gone.
		switch typ {
		case "groupchat":
			r.bounce(ctx, st, stanza.ServiceUnavailable)
			return
		case "headline", "error":
			return
		}
		// chat and normal fall back to the bare JID rules.
	}
	switch typ {
	case "error":
		return
	case "groupchat":
		r.bounce(ctx, st, stanza.ServiceUnavailable)
		return
	case "headline":
		for _, s := range r.targets(to, false) {
			s.Send(st)
		}
		return
	}
	// chat and normal: every available resource sharing the highest
	// non-negative priority. §8.5.2.1.1 allows "one or more" of the
	// most available; all of them is what users of several devices
	// expect.
	targets := r.targets(to, true)
	if len(targets) == 0 {
		r.offline(ctx, st, m, to)
		return
	}
	r.sendMessage(ctx, st, m, to, targets...)
}

// targets returns the available sessions of a user with non-negative
// priority; with highest, only those of the highest priority.
func (r *Router) targets(user jid.JID, highest bool) []Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Session
	best := -1
	for _, e := range r.users[user.Bare().String()] {
		if !e.available || e.priority < 0 {
			continue
		}
		if highest && e.priority > best {
			out, best = out[:0], e.priority
		}
		if !highest || e.priority == best {
			out = append(out, e.sess)
		}
	}
	return out
}

// presence delivers presence already decided by the presence handler:
// to a full JID, to that resource; to a bare JID, to every available
// resource (RFC 6121 §8.5.2.1.1, §8.5.3.1).
func (r *Router) presence(st *stream.Element, to jid.JID) {
	if to.Resourcepart() != "" {
		if s := r.session(to); s != nil {
			s.Send(st)
		}
		return
	}
	r.mu.RLock()
	var out []Session
	for _, e := range r.users[to.Bare().String()] {
		if e.available {
			out = append(out, e.sess)
		}
	}
	r.mu.RUnlock()
	for _, s := range out {
		s.Send(st)
	}
}

// iqToUser delivers an IQ to a full JID (RFC 6121 §8.5.3.1) or bounces it.
// IQs to bare JIDs are the server's to answer (handleIQ); one that reaches
// here from Route is answered inline.
func (r *Router) iqToUser(ctx context.Context, st *stream.Element, to jid.JID) {
	if to.Resourcepart() == "" {
		from, _ := jid.Parse(st.Attr("from"))
		r.handleIQ(ctx, st, from, to)
		return
	}
	if s := r.session(to); s != nil {
		s.Send(st)
		return
	}
	r.bounce(ctx, st, stanza.ServiceUnavailable)
}

// handleIQ answers an IQ addressed to the server or to a local bare JID
// with the Mux. Results and errors addressed there are dropped: the server
// sends no IQ that expects them yet.
func (r *Router) handleIQ(ctx context.Context, st *stream.Element, from, to jid.JID) {
	typ := st.Attr("type")
	switch typ {
	case "result", "error":
		return
	case "get", "set":
	default:
		r.bounce(ctx, st, stanza.BadRequest)
		return
	}
	payload, err := stanza.Payload(st)
	if err != nil {
		r.bounceErr(ctx, st, err)
		return
	}
	if to.Localpart() != "" && !r.UserExists(ctx, to) {
		r.bounce(ctx, st, stanza.ServiceUnavailable)
		return
	}
	h := r.cfg.Mux.Lookup(payload.Name)
	if h == nil {
		r.bounce(ctx, st, stanza.ServiceUnavailable)
		return
	}
	res, err := h.HandleIQ(ctx, IQ{Stanza: st, From: from, To: to, Type: typ, Payload: payload})
	if err != nil {
		r.bounceErr(ctx, st, err)
		return
	}
	r.reply(ctx, stanza.Result(st, res))
}

// reply routes an answer of the server's to the stanza's sender.
func (r *Router) reply(ctx context.Context, st *stream.Element) {
	to, err := jid.Parse(st.Attr("to"))
	if err != nil || st.Attr("to") == "" {
		return
	}
	if to.Resourcepart() != "" && r.IsLocal(to.Domainpart()) {
		if s := r.session(to); s != nil {
			s.Send(st)
		}
		return
	}
	r.deliver(ctx, st, to, nil)
}

// bounceErr answers st with the stanza error err carries, or with
// internal-server-error for any other error.
func (r *Router) bounceErr(ctx context.Context, st *stream.Element, err error) {
	var se *stanza.Error
	if !errors.As(err, &se) {
		r.log.WithError(err).WithField("stanza", st.Name.Local).Warn("router: handler failed")
		se = &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	r.bounceWith(ctx, st, se)
}

// bounce answers st with a condition of its usual type.
func (r *Router) bounce(ctx context.Context, st *stream.Element, c stanza.Condition) {
	t := stanza.Cancel
	switch c {
	case stanza.BadRequest, stanza.JIDMalformed:
		t = stanza.Modify
	case stanza.ResourceConstraint, stanza.RemoteServerTimeout, stanza.InternalServerError:
		t = stanza.Wait
	}
	r.bounceWith(ctx, st, &stanza.Error{Type: t, Condition: c})
}

// bounceWith sends the error reply, except for errors and IQ results,
// which are never answered (RFC 6120 §8.3.1), and stanzas with no sender.
func (r *Router) bounceWith(ctx context.Context, st *stream.Element, e *stanza.Error) {
	switch st.Attr("type") {
	case "error", "result":
		return
	}
	if st.Name.Local == "presence" && st.Attr("type") != "subscribe" {
		// Only a subscription request waits for an answer; bouncing
		// broadcasts would echo every status change.
		return
	}
	if st.Attr("from") == "" {
		return
	}
	r.reply(ctx, stanza.ErrorReply(st, e))
}
