// Package c2s serves XMPP client-to-server streams (RFC 6120): the
// STARTTLS and direct TLS (XEP-0368) listeners, stream headers and
// features, SASL, resource binding, and the per-session queues that stand
// between a socket and the router.
//
// A session runs three goroutines once bound: the reader (which also did
// the negotiation), a writer draining a bounded send queue, and a worker
// running the server-side handling of the session's IQs and presence in
// order. Nothing a peer does can make the server buffer more than the
// configured queue lengths per session: a client that does not read is
// disconnected when its send queue overflows (stream error
// policy-violation, because the server cannot keep the stanzas of a client
// that refuses to take them).
package c2s

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/sasl"
	"verlauf.im/verlauf/xmppfront/stream"
)

// CredentialStore gives SASL the stored SCRAM credentials of local
// accounts. StoreCredentials reads them from the event store.
type CredentialStore interface {
	// Credentials returns the credentials of user (a bare JID) for hash,
	// or an error wrapping sasl.ErrUnknownUser if there is no such active
	// account.
	Credentials(ctx context.Context, user jid.JID, hash sasl.Hash) (sasl.Credentials, error)
}

// Config configures a Server. Domain, TLS, Credentials, SASLSecret and
// Router are required; every other zero field takes the default named.
type Config struct {
	// Domain is the XMPP domain served.
	Domain string
	// TLS is the server's TLS configuration (certificates). The server
	// enforces TLS 1.2 or later and sets ALPN on the direct TLS listener.
	TLS *tls.Config
	// Listen is the STARTTLS address (e.g. ":5222"); "" for none.
	Listen string
	// ListenTLS is the direct TLS address (e.g. ":5223"); "" for none.
	ListenTLS string

	// Limits bound what a peer may send; see stream.Limits.
	Limits stream.Limits
	// IdleTimeout closes a stream on which nothing, not even a whitespace
	// keepalive, arrived for this long (connection-timeout). Default 5m.
	IdleTimeout time.Duration
	// LoginTimeout is how long a connection may take to authenticate and
	// bind a resource. Whitespace keepalives do not extend it, so an
	// unauthenticated client cannot hold a connection slot forever.
	// Default 1m.
	LoginTimeout time.Duration
	// WriteTimeout bounds one write to a client. Default 30s.
	WriteTimeout time.Duration
	// ShutdownTimeout is how long Serve waits for streams to close after
	// its context ends. Default 5s.
	ShutdownTimeout time.Duration
	// MaxConnections bounds open client connections. Default 100000.
	MaxConnections int
	// MaxPerAddress bounds open connections per client IP. Default 1000.
	MaxPerAddress int
	// SendQueue is the length of a session's send queue. Default 256.
	SendQueue int
	// WorkQueue is the length of a session's worker queue. Default 64.
	WorkQueue int

	// AuthFailures is how many failed logins an account may see before
	// it is throttled. Default 5.
	AuthFailures int
	// AuthFailuresPerAddress is the same for a client IP. Default
	// 4×AuthFailures: one address may be a NAT with many users.
	AuthFailuresPerAddress int
	// AuthPenalty is how long a throttled account or address gets
	// temporary-auth-failure. Default 1m.
	AuthPenalty time.Duration

	// Credentials looks up SCRAM credentials. Required.
	Credentials CredentialStore
	// SASLSecret keys the made-up credentials shown for unknown users
	// (at least 16 bytes, stable across restarts). Required.
	SASLSecret []byte
	// OnAuthenticated is called after each successful authentication with
	// the user's bare JID and the SASL result (ClientKey or password);
	// the result's secrets are cleared after it returns. Optional.
	OnAuthenticated func(ctx context.Context, user jid.JID, res sasl.Result)
	// Register, if set, returns the handler for jabber:iq:register IQs
	// sent before authentication (XEP-0077) from the given client address
	// (so registrations can be limited per address), with IQ.From empty;
	// the stream features then advertise in-band registration.
	Register func(remote netip.Addr) router.IQHandler
	// OnSessionEnd is called once when a stream that authenticated ends,
	// bound or not, so that what OnAuthenticated set up (the user's
	// unlocked archive keys) can be released. Optional.
	OnSessionEnd func(ctx context.Context, user jid.JID)
	// Features, if set, returns stream features that feature packages
	// announce after authentication (roster versioning, pre-approval,
	// entity capabilities). Called for every stream, so it may change.
	Features func() []*stream.Element

	// Router routes the stanzas of bound sessions. Required.
	Router *router.Router
	Log    *logrus.Entry
	// Now is the clock of the login throttle. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Domain == "":
		return c, errors.New("c2s: Config.Domain is empty")
	case c.TLS == nil:
		return c, errors.New("c2s: Config.TLS is nil")
	case c.Credentials == nil:
		return c, errors.New("c2s: Config.Credentials is nil")
	case len(c.SASLSecret) < 16:
		return c, errors.New("c2s: Config.SASLSecret must be at least 16 bytes")
	case c.Router == nil:
		return c, errors.New("c2s: Config.Router is nil")
	}
	d, err := jid.Parse(c.Domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return c, errors.New("c2s: Config.Domain is not a domain")
	}
	c.Domain = d.Domainpart()
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&c.IdleTimeout, 5*time.Minute)
	defDur(&c.LoginTimeout, time.Minute)
	defDur(&c.WriteTimeout, 30*time.Second)
	defDur(&c.ShutdownTimeout, 5*time.Second)
	defDur(&c.AuthPenalty, time.Minute)
	def(&c.MaxConnections, 100000)
	def(&c.MaxPerAddress, 1000)
	def(&c.SendQueue, 256)
	def(&c.WorkQueue, 64)
	def(&c.AuthFailures, 5)
	def(&c.AuthFailuresPerAddress, 4*c.AuthFailures)
	if c.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		c.Log = logrus.NewEntry(l)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
