// Package version answers XEP-0092 software version queries addressed to
// the server.
package version

import (
	"context"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// NS is the XEP-0092 namespace, also its disco#info feature.
const NS = "jabber:iq:version"

// Config is what the server says about itself.
type Config struct {
	// Name is the software's name (default "verlauf").
	Name string
	// Version is the release, e.g. from the build's module version.
	Version string
	// OS is the operating system to disclose. Empty by default: XEP-0092
	// warns that it helps an attacker choose an exploit, and a server
	// has no need to tell it.
	OS string
}

// Handler answers jabber:iq:version queries.
type Handler struct {
	cfg Config
}

// New returns a handler for cfg.
func New(cfg Config) *Handler {
	if cfg.Name == "" {
		cfg.Name = "verlauf"
	}
	return &Handler{cfg: cfg}
}

// Register installs the handler and its disco feature on m.
func (h *Handler) Register(m *router.Mux) {
	m.Handle(NS, "query", h)
	m.Feature(NS)
}

// HandleIQ implements router.IQHandler. Only the server answers for
// itself: the server answers an IQ to a user's bare JID on the user's
// behalf (RFC 6121 §8.5.2), and it does not know the user's software, so
// such a query gets service-unavailable.
func (h *Handler) HandleIQ(_ context.Context, iq router.IQ) (*stream.Element, error) {
	if iq.To.Localpart() != "" {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	if iq.Type != "get" {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "the software version is queried with get"}
	}
	q := stream.NewElement(NS, "query")
	q.AddChild(stream.NewElement(NS, "name").AddText(h.cfg.Name))
	q.AddChild(stream.NewElement(NS, "version").AddText(h.cfg.Version))
	if h.cfg.OS != "" {
		q.AddChild(stream.NewElement(NS, "os").AddText(h.cfg.OS))
	}
	return q, nil
}
