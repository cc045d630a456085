// Package ping answers XEP-0199 pings addressed to the server (or, on a
// user's behalf, to a bare JID): an empty IQ result says the server and
// the route to it are alive.
package ping

import (
	"context"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stream"
)

// NS is the XEP-0199 namespace, also its disco#info feature.
const NS = "urn:xmpp:ping"

// Register installs the ping handler and its disco feature on m.
func Register(m *router.Mux) {
	m.Handle(NS, "ping", router.IQHandlerFunc(handle))
	m.Feature(NS)
}

func handle(_ context.Context, _ router.IQ) (*stream.Element, error) {
	return nil, nil
}
