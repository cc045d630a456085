package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront"
	"verlauf.im/verlauf/xmppfront/adhoc"
	"verlauf.im/verlauf/xmppfront/archiving"
	"verlauf.im/verlauf/xmppfront/blocking"
	"verlauf.im/verlauf/xmppfront/carbons"
	"verlauf.im/verlauf/xmppfront/disco"
	"verlauf.im/verlauf/xmppfront/mam"
	"verlauf.im/verlauf/xmppfront/offline"
	"verlauf.im/verlauf/xmppfront/presence"
	"verlauf.im/verlauf/xmppfront/private"
	"verlauf.im/verlauf/xmppfront/register"
	"verlauf.im/verlauf/xmppfront/roster"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/s2s"
	"verlauf.im/verlauf/xmppfront/sasl"
	"verlauf.im/verlauf/xmppfront/stream"
	"verlauf.im/verlauf/xmppfront/vcard"
	xversion "verlauf.im/verlauf/xmppfront/version"
)

// buildFront wires the XMPP front end: accounts behind SASL and in-band
// registration, and every feature package on the router's mux. It is the
// one place that knows which features the server offers.
func (n *node) buildFront(cert tls.Certificate) (*xmppfront.Front, error) {
	cfg := n.cfg
	secret, err := loadSecret(filepath.Join(cfg.Server.DataDir, "sasl.secret"))
	if err != nil {
		return nil, err
	}
	// The router exists only once xmppfront.New has run; the account
	// hooks need it to end the sessions of a deleted account.
	var rt *router.Router
	n.accounts, err = accounts.New(accounts.Config{
		Store:      n.store,
		Directory:  n.accountsProj,
		Domain:     cfg.Server.Domain,
		Iterations: cfg.Accounts.SCRAMIterations,
		Hooks: accounts.Hooks{
			// A new account gets its archive identity wrapped under the
			// ClientKey of each SCRAM hash.
			OnRegistered: func(ctx context.Context, km accounts.KeyMaterial) error {
				return n.archive.Keys().Provision(ctx, km.User, km.ClientKeys)
			},
			// A logged-in user's identity is re-wrapped; an operator's
			// reset (no session) starts a new identity and old history
			// is lost, as the docs say.
			OnPasswordChanged: func(ctx context.Context, km accounts.KeyMaterial) error {
				_, err := n.archive.Keys().Rewrap(ctx, km.User, nil, km.ClientKeys)
				return err
			},
			OnDeleted: func(ctx context.Context, user jid.JID) error {
				if rt != nil {
					rt.KickUser(user, stream.NotAuthorized, "account deleted")
				}
				return n.archive.Keys().Shred(ctx, user)
			},
		},
	})
	if err != nil {
		return nil, err
	}
	reg := register.New(register.Config{
		Domain:   cfg.Server.Domain,
		Accounts: n.accounts,
		Open:     cfg.Accounts.Registration,
		// register counts a negative limit as none.
		MaxPerAddress: cmp.Or(cfg.Accounts.RegistrationLimit, -1),
		Window:        cfg.Accounts.RegistrationWindow.Duration,
	})
	var preAuth func(netip.Addr) router.IQHandler
	if cfg.Accounts.Registration {
		preAuth = reg.PreAuth
	}
	s2sCfg, err := n.s2sConfig(cert)
	if err != nil {
		return nil, err
	}
	var dis *disco.Service
	var rs *roster.Service
	front, err := xmppfront.New(xmppfront.Config{
		Domain:         cfg.Server.Domain,
		TLS:            serverTLS(cert, "xmpp-client"),
		Listen:         cfg.C2S.Listen,
		ListenTLS:      cfg.C2S.ListenTLS,
		MaxStanzaSize:  cfg.C2S.MaxStanzaSize,
		IdleTimeout:    cfg.C2S.IdleTimeout.Duration,
		MaxConnections: cfg.C2S.MaxConnections,
		MaxPerAddress:  cfg.C2S.MaxPerAddress,
		AuthFailures:   cfg.C2S.AuthFailures,
		AuthPenalty:    cfg.C2S.AuthPenalty.Duration,
		SASLSecret:     secret,
		S2S:            s2sCfg,
	}, xmppfront.Deps{
		Store:       n.store,
		Publisher:   n.bus,
		Subscriber:  n.bus,
		Log:         n.log.WithField("component", "xmpp"),
		Credentials: credentials{n.accounts},
		UserExists: func(ctx context.Context, bare jid.JID) bool {
			ok, err := n.accounts.Exists(ctx, bare)
			return err == nil && ok
		},
		Register:        preAuth,
		OnAuthenticated: n.unlockArchive,
		OnSessionEnd: func(_ context.Context, user jid.JID) {
			n.archive.Keys().Release(user)
		},
		Features: func(m *router.Mux, r *router.Router) error {
			rt = r
			log := n.log.WithField("component", "xmpp")
			rs = roster.New(n.store, n.rosterProj, n.runner, r, roster.Options{MaxItems: cfg.C2S.MaxRosterItems, Log: log})
			rs.Register(m)
			ph := presence.New(rs, r, presence.Options{Log: log})
			blk := blocking.New(blocking.Config{
				Store:  n.store,
				Router: r,
				Log:    log,
				OnChange: func(ctx context.Context, user jid.JID, ch domain.BlocklistChanged) {
					ph.BlocklistChanged(ctx, user, ch.Blocked, ch.Unblocked)
				},
			})
			blk.Register(m)
			r.UseBlocker(blk)
			r.UsePresence(sessionEnd{PresenceHandler: ph, ended: blk.Ended})
			reg.Register(m)
			xversion.New(xversion.Config{Version: version}).Register(m)
			private.New(private.Config{Store: n.store}).Register(m)
			vcard.New(vcard.Config{Store: n.store}).Register(m)
			arch := archiving.New(archiving.Config{Archive: n.archive, Roster: n.rosterProj, Domain: cfg.Server.Domain, Log: log})
			arch.Register(m)
			r.UseArchiver(arch)
			cc := carbons.New(r)
			cc.Register(m)
			r.UseCarbons(cc)
			off := offline.New(offline.Config{Queue: n.archive, Router: r, Domain: cfg.Server.Domain, MaxStanzaSize: cfg.C2S.MaxStanzaSize, Log: log})
			off.Register(m)
			r.UseOffline(off)
			r.UseAvailable(off)
			history, err := mam.New(mam.Config{Archive: n.archive, Router: r, Log: log})
			if err != nil {
				return err
			}
			history.Register(m)
			commands, err := adhoc.New(adhoc.Config{Domain: cfg.Server.Domain, Prefs: n.archive})
			if err != nil {
				return err
			}
			commands.Register(m)
			dis = disco.New(disco.Config{
				Domain:          cfg.Server.Domain,
				Subscribers:     n.rosterProj,
				AccountFeatures: mam.AccountFeatures(),
				Nodes:           []disco.NodeProvider{commands},
			})
			dis.Register(m)
			return nil
		},
		StreamFeatures: func() []*stream.Element {
			return append(roster.StreamFeatures(), dis.Caps())
		},
	})
	if err != nil {
		return nil, err
	}
	return front, nil
}

// s2sConfig is federation's configuration, nil when it is off: the
// certificate without ALPN (s2s sets its own), the system roots plus the
// configured CA file, and a dialback secret kept under the data directory
// so that keys issued before a restart still verify after it.
func (n *node) s2sConfig(cert tls.Certificate) (*s2s.Config, error) {
	c := n.cfg.S2S
	if c.Listen == "" && c.ListenTLS == "" {
		return nil, nil
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s2s.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s2s.ca_file %s: no PEM certificate in it", c.CAFile)
		}
	}
	secret, err := loadSecret(filepath.Join(n.cfg.Server.DataDir, "dialback.secret"))
	if err != nil {
		return nil, err
	}
	return &s2s.Config{
		TLS:            serverTLS(cert),
		Listen:         c.Listen,
		ListenTLS:      c.ListenTLS,
		Routes:         c.Routes,
		RootCAs:        roots,
		AllowDialback:  !c.RequireVerifiedCertificates,
		DialbackSecret: secret,
		IdleTimeout:    c.IdleTimeout.Duration,
	}, nil
}

// sessionEnd tells the blocking feature that a session ended, besides the
// presence handler.
type sessionEnd struct {
	router.PresenceHandler
	ended func(full jid.JID)
}

func (s sessionEnd) Ended(ctx context.Context, full jid.JID, last *stream.Element) {
	s.PresenceHandler.Ended(ctx, full, last)
	s.ended(full)
}

// credentials serves SASL from the accounts service.
type credentials struct{ a *accounts.Service }

func (c credentials) Credentials(ctx context.Context, user jid.JID, hash sasl.Hash) (sasl.Credentials, error) {
	v, err := c.a.Credentials(ctx, user, string(hash))
	if errors.Is(err, accounts.ErrNotFound) {
		return sasl.Credentials{}, fmt.Errorf("%w: %w", sasl.ErrUnknownUser, err)
	}
	if err != nil {
		return sasl.Credentials{}, err
	}
	return sasl.Credentials{Salt: v.Salt, Iterations: v.Iterations, StoredKey: v.StoredKey, ServerKey: v.ServerKey}, nil
}

// loadSecret reads a 32-byte secret, creating it on first start. It keys
// the fake SCRAM salts of unknown users, which must stay the same across
// restarts or an observer could tell real accounts from unknown ones.
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("secret %s: %w", path, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("secret %s: %w", path, err)
	}
	return b, nil
}

// unlockArchive opens the user's archive identity with the ClientKey of
// the login (PLAIN: derived from the password), for as long as the user
// has a session, and indexes what arrived while they were away.
func (n *node) unlockArchive(ctx context.Context, user jid.JID, res sasl.Result) {
	log := n.log.WithField("user", user.String())
	hash, clientKey := string(res.Hash), res.ClientKey
	if res.Password != "" {
		v, err := n.accounts.Credentials(ctx, user, hash)
		if err != nil {
			log.WithError(err).Error("archive: no verifier for the login's hash")
			return
		}
		if clientKey, err = archive.ClientKeyFromPassword(v, res.Password); err != nil {
			log.WithError(err).Error("archive: deriving the client key")
			return
		}
		defer clear(clientKey)
	}
	keys := n.archive.Keys()
	err := keys.Unlock(ctx, user, hash, clientKey)
	if errors.Is(err, archive.ErrNoKeys) {
		// An account from before the archive existed, or whose
		// provisioning failed: give it an identity now, under this
		// login's hash; the other hash is wrapped at the next password
		// change.
		log.Info("archive: provisioning keys at login")
		if err = keys.Provision(ctx, user, map[string][]byte{hash: clientKey}); err == nil {
			err = keys.Unlock(ctx, user, hash, clientKey)
		}
	}
	if err != nil {
		log.WithError(err).Error("archive: cannot unlock the user's keys; history stays sealed")
		return
	}
	go func() {
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if k, err := n.archive.IndexPending(ictx, user); err != nil {
			log.WithError(err).Warn("archive: indexing messages that arrived offline")
		} else if k > 0 {
			log.WithField("count", k).Debug("archive: indexed messages that arrived offline")
		}
	}()
}
