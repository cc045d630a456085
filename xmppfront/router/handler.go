package router

import (
	"context"
	"slices"
	"sync"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stream"
)

// IQ is an IQ get or set that the server answers itself: one addressed to
// the server's domain, to no one (which RFC 6120 §10.3.3 treats as the
// sender's own account), or to a local user's bare JID (answered on the
// user's behalf, RFC 6121 §8.5.1).
type IQ struct {
	// Stanza is the <iq/> as received, its 'from' stamped with the sender's
	// full JID by the session.
	Stanza *stream.Element
	// From is the sender's full JID.
	From jid.JID
	// To is the addressee: the server's domain, or a bare JID. An IQ sent
	// with no 'to' has To set to the sender's bare JID.
	To jid.JID
	// Type is "get" or "set".
	Type string
	// Payload is the IQ's single child.
	Payload *stream.Element
}

// IQHandler answers IQs of one payload. It returns the payload of the
// result (nil for an empty result) or an error: a *stanza.Error (found with
// errors.As) goes back to the sender as is, any other error is logged and
// answered with internal-server-error.
//
// Handlers run on the sending session's worker, so one session's IQs are
// handled in the order they arrived, and a handler may block on the store.
type IQHandler interface {
	HandleIQ(ctx context.Context, iq IQ) (*stream.Element, error)
}

// IQHandlerFunc adapts a function to an IQHandler.
type IQHandlerFunc func(ctx context.Context, iq IQ) (*stream.Element, error)

// HandleIQ calls f.
func (f IQHandlerFunc) HandleIQ(ctx context.Context, iq IQ) (*stream.Element, error) {
	return f(ctx, iq)
}

// PresenceHandler owns presence (RFC 6121 §3–4): subscriptions, broadcast,
// probes, directed presence. The router hands it every presence stanza and
// tells it when a session ends.
type PresenceHandler interface {
	// Outbound handles a presence stanza sent by a local user's session,
	// 'from' already stamped with the full JID.
	Outbound(ctx context.Context, from jid.JID, st *stream.Element)
	// Inbound handles a presence stanza addressed to a local user by an
	// entity the server vouches for (a local session or an authenticated
	// peer server).
	Inbound(ctx context.Context, st *stream.Element)
	// Ended is called once a bound session is gone, with the last
	// presence it sent (nil if it never sent any), so that unavailable
	// presence is broadcast on its behalf.
	Ended(ctx context.Context, full jid.JID, last *stream.Element)
}

// Mux routes server-handled IQs to handlers by the payload's qualified
// name, and collects the disco#info features that handlers register.
type Mux struct {
	mu       sync.RWMutex
	handlers map[stream.Name]IQHandler
	features []string
}

// NewMux returns an empty mux.
func NewMux() *Mux { return &Mux{handlers: make(map[stream.Name]IQHandler)} }

// Handle registers h for IQ payloads {space}local, for get and set.
func (m *Mux) Handle(space, local string, h IQHandler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers[stream.Name{Space: space, Local: local}] = h
}

// Feature registers disco#info features (XEP-0030 var values) that the
// server supports.
func (m *Mux) Feature(vars ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range vars {
		if !slices.Contains(m.features, v) {
			m.features = append(m.features, v)
		}
	}
}

// Features lists the registered features, sorted.
func (m *Mux) Features() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := slices.Clone(m.features)
	slices.Sort(out)
	return out
}

// Lookup returns the handler for a payload name, or nil.
func (m *Mux) Lookup(n stream.Name) IQHandler {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.handlers[n]
}
