// Package xmppfront assembles the XMPP front end: the router, the c2s
// listeners and the feature handlers.
//
// A feature plugs in through Deps.Features, which is called once with the
// IQ mux and the router before anything is served:
//
//	Features: func(m *router.Mux, r *router.Router) error {
//		ping.Register(m)                       // IQ handler + disco feature
//		p := presence.New(r, store)            // needs the router
//		r.UsePresence(p)
//		roster.Register(m, r, store)
//		return nil
//	}
//
// IQ handlers run on the sending session's worker and may block on the
// store; they answer with router.Route or by returning a payload.
package xmppfront

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/xmppfront/c2s"
	"verlauf.im/verlauf/xmppfront/ping"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/s2s"
	"verlauf.im/verlauf/xmppfront/sasl"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Config is the front end's configuration, taken from verlauf.toml by cmd.
// Zero fields take the defaults of c2s.Config.
type Config struct {
	Domain    string
	TLS       *tls.Config
	Listen    string // STARTTLS, e.g. ":5222"; "" for none
	ListenTLS string // direct TLS, e.g. ":5223"; "" for none

	MaxStanzaSize  int
	IdleTimeout    time.Duration
	MaxConnections int
	MaxPerAddress  int
	AuthFailures   int
	AuthPenalty    time.Duration
	// Partitions is the number of router partitions; default
	// 2×GOMAXPROCS.
	Partitions int
	// SASLSecret keys the fake SCRAM salts shown for unknown users. It
	// should be stable across restarts (cmd keeps one under the data
	// directory); if empty a random one is drawn, which lets a patient
	// observer tell unknown users from real ones across restarts.
	SASLSecret []byte
	// S2S, if set, turns federation on (package s2s). Its Domain, Router
	// and Log are filled in; a nil TLS takes the c2s certificate, zero
	// Limits the stanza size above.
	S2S *s2s.Config
}

// Deps are the services the front end uses.
type Deps struct {
	Store eventstore.Store
	// Publisher and Subscriber are the bus (bus.InProcess's Bus is both).
	Publisher  message.Publisher
	Subscriber message.Subscriber
	Log        *logrus.Entry

	// Credentials defaults to c2s.StoreCredentials on Store.
	Credentials c2s.CredentialStore
	// UserExists defaults to c2s.StoreCredentials.Exists on Store.
	UserExists func(ctx context.Context, bare jid.JID) bool
	// Register answers in-band registration before authentication, per
	// client address; nil turns it off.
	Register func(remote netip.Addr) router.IQHandler
	// OnAuthenticated receives the SASL result of each login.
	OnAuthenticated func(ctx context.Context, user jid.JID, res sasl.Result)
	// OnSessionEnd is called when an authenticated stream ends.
	OnSessionEnd func(ctx context.Context, user jid.JID)
	// Features plugs in feature packages (see the package comment).
	Features func(m *router.Mux, r *router.Router) error
	// StreamFeatures returns the stream features those packages announce
	// after authentication.
	StreamFeatures func() []*stream.Element
}

// Front is the assembled front end.
type Front struct {
	Router *router.Router
	Mux    *router.Mux
	C2S    *c2s.Server
	// S2S is nil when federation is off.
	S2S *s2s.Server
}

// New builds the front end; nothing listens until Listen or Serve.
func New(cfg Config, deps Deps) (*Front, error) {
	if deps.Publisher == nil || deps.Subscriber == nil {
		return nil, errors.New("xmppfront: no bus")
	}
	if deps.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		deps.Log = logrus.NewEntry(l)
	}
	if deps.Credentials == nil || deps.UserExists == nil {
		if deps.Store == nil {
			return nil, errors.New("xmppfront: no store and no credentials")
		}
		sc := c2s.StoreCredentials{Store: deps.Store}
		if deps.Credentials == nil {
			deps.Credentials = sc
		}
		if deps.UserExists == nil {
			deps.UserExists = sc.Exists
		}
	}
	if len(cfg.SASLSecret) == 0 {
		cfg.SASLSecret = make([]byte, 32)
		if _, err := rand.Read(cfg.SASLSecret); err != nil {
			return nil, fmt.Errorf("xmppfront: sasl secret: %w", err)
		}
		deps.Log.Warn("xmppfront: no SASL secret configured; unknown users get different fake salts after a restart")
	}
	mux := router.NewMux()
	r := router.New(router.Config{
		Domain:        cfg.Domain,
		Publisher:     deps.Publisher,
		Subscriber:    deps.Subscriber,
		Partitions:    cfg.Partitions,
		Mux:           mux,
		UserExists:    deps.UserExists,
		MaxStanzaSize: cfg.MaxStanzaSize,
		Log:           deps.Log.WithField("component", "router"),
	})
	ping.Register(mux)
	mux.Handle(c2s.NSSession, "session", c2s.LegacySession)
	if deps.Features != nil {
		if err := deps.Features(mux, r); err != nil {
			return nil, fmt.Errorf("xmppfront: features: %w", err)
		}
	}
	srv, err := c2s.New(c2s.Config{
		Domain:          cfg.Domain,
		TLS:             cfg.TLS,
		Listen:          cfg.Listen,
		ListenTLS:       cfg.ListenTLS,
		Limits:          stream.Limits{MaxStanzaSize: cfg.MaxStanzaSize},
		IdleTimeout:     cfg.IdleTimeout,
		MaxConnections:  cfg.MaxConnections,
		MaxPerAddress:   cfg.MaxPerAddress,
		AuthFailures:    cfg.AuthFailures,
		AuthPenalty:     cfg.AuthPenalty,
		Credentials:     deps.Credentials,
		SASLSecret:      cfg.SASLSecret,
		OnAuthenticated: deps.OnAuthenticated,
		Register:        deps.Register,
		Features:        deps.StreamFeatures,
		OnSessionEnd:    deps.OnSessionEnd,
		Router:          r,
		Log:             deps.Log.WithField("component", "c2s"),
	})
	if err != nil {
		return nil, err
	}
	f := &Front{Router: r, Mux: mux, C2S: srv}
	if cfg.S2S != nil {
		sc := *cfg.S2S
		sc.Domain, sc.Router = cfg.Domain, r
		sc.Log = deps.Log.WithField("component", "s2s")
		if sc.TLS == nil {
			sc.TLS = cfg.TLS
		}
		if sc.Limits == (stream.Limits{}) {
			sc.Limits = stream.Limits{MaxStanzaSize: cfg.MaxStanzaSize}
		}
		if f.S2S, err = s2s.New(sc); err != nil {
			return nil, err
		}
		r.UseS2S(f.S2S)
	}
	return f, nil
}

// Listen opens the listeners, so that cmd can report a busy port before
// it starts serving.
func (f *Front) Listen() error {
	if err := f.C2S.Listen(); err != nil {
		return err
	}
	if f.S2S != nil {
		return f.S2S.Listen()
	}
	return nil
}

// Serve routes and serves clients until ctx ends, then closes every
// stream gracefully (system-shutdown) and returns.
func (f *Front) Serve(ctx context.Context) error {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		cancel()
		f.Router.Wait()
	}()
	if err := f.Router.Start(rctx); err != nil {
		return err
	}
	// The router outlives the listeners so the last stanzas of closing
	// sessions are still routed.
	if f.S2S == nil {
		return f.C2S.Serve(ctx)
	}
	s2sDone := make(chan error, 1)
	go func() { s2sDone <- f.S2S.Serve(ctx) }()
	err := f.C2S.Serve(ctx)
	if serr := <-s2sDone; err == nil {
		err = serr
	}
	return err
}
