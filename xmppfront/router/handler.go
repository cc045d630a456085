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

// Archiver keeps messages in their parties' archives (XEP-0313, with the
// ids of XEP-0359).
type Archiver interface {
	// Keeps reports, from the stanza alone and without blocking, whether
	// the message may be archived. Only those messages take the hop to
	// the sender's worker, where Archive may wait for the disk.
	Keeps(st *stream.Element) bool
	// Archive runs on the sender's worker once the router knows the
	// message will be routed (the addressee exists and does not block
	// the sender) and before it is delivered. It archives the message for
	// each local party whose preferences say so and records the archive
	// ids with m.SetID, so that the delivered copies carry them. It
	// returns once the appends are durable. A recipient whose copy could
	// not be archived gets no id and the message all the same; when the
	// sender's own copy cannot be archived it returns an error (a
	// *stanza.Error, resource-constraint for a full disk), the router
	// bounces the message to the sender and delivers nothing, so that a
	// user with history on never has a conversation that is half kept.
	Archive(ctx context.Context, m *Message) error
}

// Carbons copies messages between users to their other resources
// (XEP-0280). Both calls run where the message is routed and must not
// block: they only queue copies to sessions.
type Carbons interface {
	// Sent runs before a message a local user sent is delivered, after
	// it was archived: the copies to the sender's other resources carry
	// the sender's archive id.
	Sent(ctx context.Context, m *Message)
	// Received runs after a message was delivered to the local user
	// m.To's resources direct (none when it went to the offline queue).
	Received(ctx context.Context, m *Message, direct []jid.JID)
}

// OfflineErrorer is an OfflineHandler that says why it refused a message:
// the router bounces the message with the error it returns (a
// *stanza.Error, such as resource-constraint for a full queue) and does
// not call Offline. A nil error means the handler took the message.
type OfflineErrorer interface {
	OfflineErr(ctx context.Context, to jid.JID, st *stream.Element) error
}

// AvailableHandler is told when a bound resource starts to receive the
// messages sent to its bare JID: available presence with a non-negative
// priority (RFC 6121 §8.5.2.1.1), the moment XEP-0160 delivers offline
// messages. It runs on that session's worker, after the presence handler
// has handled the presence that made it available.
type AvailableHandler interface {
	Available(ctx context.Context, full jid.JID)
}

// QueueWaiter is a Session that can wait for room in its send queue
// instead of being cut off when it is full. Bulk senders (offline
// delivery) use it through SendToResourceWait.
type QueueWaiter interface {
	// SendWait queues st, waiting for room until ctx ends; false if the
	// session is gone or ctx ended.
	SendWait(ctx context.Context, st *stream.Element) bool
}
