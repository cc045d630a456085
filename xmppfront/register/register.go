// Package register implements in-band registration (XEP-0077): creating an
// account before authentication, and changing the password or removing
// the account after it. The account rules themselves are package
// accounts'; this package speaks the protocol.
package register

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces.
const (
	// NS is the XEP-0077 namespace, also its disco#info feature.
	NS = "jabber:iq:register"
	// NSFeature is the stream feature that announces in-band
	// registration to unauthenticated clients (XEP-0077 §8).
	NSFeature = "http://jabber.org/features/iq-register"
)

// Accounts is what registration needs from *accounts.Service.
type Accounts interface {
	Register(ctx context.Context, user jid.JID, password string) error
	ChangePassword(ctx context.Context, user jid.JID, password string) error
	Delete(ctx context.Context, user jid.JID) error
}

// Defaults of Config.
const (
	DefaultMaxPerAddress = 5
	DefaultWindow        = time.Hour
	DefaultInstructions  = "Choose a username and password for use with this service."
)

// Config configures a Service.
type Config struct {
	// Domain is the server's domain; accounts are created in it. Required.
	Domain string
	// Accounts runs the account commands. Required.
	Accounts Accounts
	// Open allows registration before authentication. Password change
	// and removal work either way.
	Open bool
	// Instructions is shown to a registering client
	// (DefaultInstructions).
	Instructions string
	// MaxPerAddress is how many accounts one client network (an IPv4
	// address, an IPv6 /64) may create per Window; negative means no
	// limit (DefaultMaxPerAddress, DefaultWindow).
	MaxPerAddress int
	Window        time.Duration
	// Clock drives the rate limit windows (domain.SystemClock).
	Clock domain.Clock
	// OnRemoved is called after a user removed their own account with
	// <remove/>, with the full JID of the session that asked, before the
	// result is returned. XEP-0077 §3.2 wants that session's stream
	// closed once the result is written: the c2s layer does that, and
	// closes the account's other sessions (the accounts.Hooks.OnDeleted
	// hook serves that for every front end, e.g. `verlauf user delete`).
	OnRemoved func(ctx context.Context, full jid.JID)
}

// Service answers jabber:iq:register.
type Service struct {
	cfg   Config
	limit *limiter
}

// New returns a registration service.
func New(cfg Config) *Service {
	if cfg.Instructions == "" {
		cfg.Instructions = DefaultInstructions
	}
	if cfg.MaxPerAddress == 0 {
		cfg.MaxPerAddress = DefaultMaxPerAddress
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	return &Service{cfg: cfg, limit: newLimiter(cfg.MaxPerAddress, cfg.Window, cfg.Clock.Now)}
}

// Register installs the handler for authenticated users (password change,
// removal) and the disco feature on m.
func (s *Service) Register(m *router.Mux) {
	m.Handle(NS, "query", router.IQHandlerFunc(s.handleAuthenticated))
	m.Feature(NS)
}

// StreamFeature is the element to add to the stream features offered
// before authentication, nil when registration is closed.
func (s *Service) StreamFeature() *stream.Element {
	if !s.cfg.Open {
		return nil
	}
	return stream.NewElement(NSFeature, "register")
}

// PreAuth returns the handler for jabber:iq:register IQs on an
// unauthenticated stream from the client address remote (the zero Addr if
// unknown, which is not rate limited). The c2s layer dispatches IQs with
// that payload to it before SASL, with IQ.From empty and IQ.To the
// server's domain.
func (s *Service) PreAuth(remote netip.Addr) router.IQHandler {
	return router.IQHandlerFunc(func(ctx context.Context, iq router.IQ) (*stream.Element, error) {
		return s.handlePreAuth(ctx, remote, iq)
	})
}

func (s *Service) handlePreAuth(ctx context.Context, remote netip.Addr, iq router.IQ) (*stream.Element, error) {
	if iq.Payload == nil || iq.Payload.Name != (stream.Name{Space: NS, Local: "query"}) {
		return nil, stanza.Errorf(stanza.Cancel, stanza.ServiceUnavailable, "only registration is possible before authentication")
	}
	if iq.Type == "get" {
		if !s.cfg.Open {
			// XEP-0077 §3.1: a host without in-band registration.
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		}
		q := stream.NewElement(NS, "query")
		q.AddChild(stream.NewElement(NS, "instructions").AddText(s.cfg.Instructions))
		q.AddChild(stream.NewElement(NS, "username"))
		q.AddChild(stream.NewElement(NS, "password"))
		return q, nil
	}
	if !s.cfg.Open {
		return nil, stanza.Errorf(stanza.Cancel, stanza.NotAllowed, "registration is closed")
	}
	if iq.Payload.Child("remove", NS) != nil {
		return nil, stanza.Errorf(stanza.Auth, stanza.NotAuthorized, "log in to remove an account")
	}
	username, password, ok := fields(iq.Payload)
	if !ok {
		return nil, stanza.Errorf(stanza.Modify, stanza.NotAcceptable, "a username and a password are required")
	}
	user, err := domain.AccountJID(username, s.cfg.Domain)
	if err != nil {
		return nil, stanza.Errorf(stanza.Modify, stanza.NotAcceptable, "the username is not allowed: use letters, digits and punctuation, no spaces, @, / or quotes")
	}
	if !s.limit.allow(remote) {
		return nil, stanza.Errorf(stanza.Wait, stanza.PolicyViolation, "too many registrations from your address, try again later")
	}
	if err := s.cfg.Accounts.Register(ctx, user, password); err != nil {
		return nil, accountError(err)
	}
	s.limit.record(remote)
	return nil, nil
}

// handleAuthenticated answers a logged-in user: the registration's state
// (get), a password change or the account's removal (set).
func (s *Service) handleAuthenticated(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	user := iq.From.Bare()
	// The request goes to the server (XEP-0077 addresses it to the
	// domain) or, without 'to', reaches here addressed to the user.
	if !iq.To.Equal(user) && !(iq.To.Localpart() == "" && iq.To.Domainpart() == s.cfg.Domain) {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	if iq.Type == "get" {
		q := stream.NewElement(NS, "query")
		q.AddChild(stream.NewElement(NS, "registered"))
		q.AddChild(stream.NewElement(NS, "username").AddText(user.Localpart()))
		q.AddChild(stream.NewElement(NS, "password"))
		return q, nil
	}
	if iq.Payload.Child("remove", NS) != nil {
		if err := s.cfg.Accounts.Delete(ctx, user); err != nil && !errors.Is(err, accounts.ErrHook) {
			return nil, accountError(err)
		}
		if s.cfg.OnRemoved != nil {
			s.cfg.OnRemoved(ctx, iq.From)
		}
		return nil, nil
	}
	username, password, ok := fields(iq.Payload)
	if !ok {
		return nil, stanza.Errorf(stanza.Modify, stanza.BadRequest, "a password change needs the username and the new password")
	}
	if u, err := domain.AccountJID(username, s.cfg.Domain); err != nil || !u.Equal(user) {
		return nil, stanza.Errorf(stanza.Cancel, stanza.NotAllowed, "only your own password can be changed")
	}
	if err := s.cfg.Accounts.ChangePassword(ctx, user, password); err != nil && !errors.Is(err, accounts.ErrHook) {
		return nil, accountError(err)
	}
	return nil, nil
}

// fields returns the non-empty username and password of a query.
func fields(q *stream.Element) (username, password string, ok bool) {
	u, p := q.Child("username", NS), q.Child("password", NS)
	if u == nil || p == nil || u.Text() == "" || p.Text() == "" {
		return "", "", false
	}
	return u.Text(), p.Text(), true
}

// accountError maps an accounts error to the stanza error of XEP-0077 §9.
func accountError(err error) error {
	switch {
	case errors.Is(err, accounts.ErrExists):
		return stanza.Errorf(stanza.Cancel, stanza.Conflict, "the username is taken")
	case errors.Is(err, accounts.ErrInvalidPassword):
		return stanza.Errorf(stanza.Modify, stanza.NotAcceptable, "the password is not allowed: %s", reason(err))
	case errors.Is(err, accounts.ErrInvalidUsername):
		return stanza.Errorf(stanza.Modify, stanza.NotAcceptable, "the username is not allowed")
	case errors.Is(err, accounts.ErrNotFound):
		return stanza.Errorf(stanza.Auth, stanza.RegistrationRequired, "the account does not exist")
	}
	return fmt.Errorf("register: %w", err)
}

// reason picks the user-facing part of a password policy error.
func reason(err error) string {
	switch {
	case errors.Is(err, domain.ErrInvalidCredentials):
		return "it contains characters that cannot be used in passwords"
	default:
		msg := err.Error()
		const prefix = "accounts: invalid password: "
		if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
			return msg[len(prefix):]
		}
		return "it does not meet the password policy"
	}
}
