package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/eventstore/keystore"
	"verlauf.im/verlauf/migrations"
	"verlauf.im/verlauf/projections"
	"verlauf.im/verlauf/syncapi"
)

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "TOML config file (default: zero-config localhost server)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	log := logrus.NewEntry(logger)
	if procs := raiseProcs(); procs > 0 {
		log.WithField("gomaxprocs", procs).Info("raised GOMAXPROCS so that fsyncs do not stall the sessions")
	}
	n, err := openNode(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer n.close()
	return n.run(ctx)
}

// node is one running verlauf process: the store, the bus, the projections
// and the front ends, wired together. Everything it opens it closes.
type node struct {
	cfg    Config
	log    *logrus.Entry
	store  eventstore.Store
	raw    *embedded.Store
	bus    *bus.Bus
	projDB *projections.DB
	runner *projections.Runner

	accountsProj *projections.Accounts
	rosterProj   *projections.Roster
	archiveProj  *projections.Archive
	accounts     *accounts.Service

	keyStore *keystore.Store
	archive  *archive.Service
}

func openNode(ctx context.Context, cfg Config, log *logrus.Entry) (*node, error) {
	if err := os.MkdirAll(cfg.Server.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	n := &node{cfg: cfg, log: log}
	var err error
	n.raw, err = embedded.Open(ctx, filepath.Join(cfg.Server.DataDir, "events"), embedded.Options{Log: log.WithField("component", "eventstore")})
	if err != nil {
		return nil, err
	}
	n.store = eventstore.Upcasting(n.raw, migrations.New())
	n.projDB, err = projections.OpenDB(filepath.Join(cfg.Server.DataDir, "projections"))
	if err != nil {
		n.close()
		return nil, err
	}
	n.bus = bus.InProcess(log.WithField("component", "bus"))
	n.accountsProj = projections.NewAccounts(n.projDB)
	n.rosterProj = projections.NewRoster(n.projDB)
	n.archiveProj = projections.NewArchive(n.projDB)
	n.runner = projections.NewRunner(n.store, n.bus, log.WithField("component", "projections"),
		n.accountsProj, n.rosterProj, n.archiveProj)
	n.keyStore, err = keystore.Open(filepath.Join(cfg.Server.DataDir, "keys"))
	if err != nil {
		n.close()
		return nil, err
	}
	n.archive, err = archive.New(archive.Config{
		Store:        n.store,
		KeyStore:     n.keyStore,
		Index:        n.archiveProj,
		Waiter:       n.runner,
		Rand:         rand.Reader,
		OfflineLimit: cfg.Archive.OfflineLimit,
		// A page is sent as a burst of messages; keep it well inside a
		// session's send queue (256) so a page never cuts a client off.
		MaxPageSize: 100,
		DefaultMode: domain.ArchiveMode(cfg.Archive.Default),
	}, archive.NewKeys(n.keyStore, rand.Reader))
	if err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

func (n *node) run(ctx context.Context) error {
	cert, generated, err := loadCertificate(n.cfg.TLS, n.cfg.Server.Domain, n.cfg.Server.DataDir)
	if err != nil {
		return err
	}
	if generated {
		n.log.WithField("domain", n.cfg.Server.Domain).Warn("generated a self-signed certificate; clients will ask to trust it")
	}
	front, err := n.buildFront(cert)
	if err != nil {
		return err
	}
	// Bind the ports before anything else, so that a busy port is an
	// error at start and not a surprise later.
	if err := front.Listen(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// The projections and the log's followers outlive the front end: at
	// shutdown, sessions finish the stanzas they have queued, and a MAM
	// query among them waits for the index to hold the user's last
	// message. They stop once the front end has returned.
	back, stopBack := context.WithCancel(context.WithoutCancel(gctx))
	defer stopBack()
	ready := make(chan struct{})
	// The archive caches preferences; every prefs event, from whichever
	// node, invalidates them. Subscribed before the runner starts the pump.
	logEvents, err := n.bus.Subscribe(back, bus.TopicLog)
	if err != nil {
		return err
	}
	g.Go(func() error { return followLog(back, logEvents, n.archive.HandleEvent) })
	if n.cfg.SyncAPI.Listen != "" {
		if err := n.serveSyncAPI(gctx, g, cert, ready); err != nil {
			return err
		}
	}
	// A failed projection still stops the node: the errgroup cancels gctx.
	g.Go(func() error { return n.runner.Run(back, ready) })
	if addr := n.cfg.Debug.Pprof; addr != "" {
		if err := servePprof(gctx, g, addr); err != nil {
			return err
		}
		n.log.WithField("addr", addr).Warn("profiler enabled")
	}
	g.Go(func() error {
		defer stopBack()
		// Clients are served once the projections have caught up, so
		// that nobody sees a roster from before the last restart.
		select {
		case <-ready:
		case <-gctx.Done():
			return nil
		}
		fields := logrus.Fields{"domain": n.cfg.Server.Domain, "data_dir": n.cfg.Server.DataDir, "c2s": n.cfg.C2S.Listen}
		if n.cfg.C2S.ListenTLS != "" {
			fields["c2s_tls"] = n.cfg.C2S.ListenTLS
		}
		n.log.WithFields(fields).Info("verlauf ready")
		return front.Serve(gctx)
	})
	g.Go(func() error {
		return serveAdmin(gctx, adminSocketPath(n.cfg), n.adminServer())
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	n.log.Info("verlauf stopped")
	return err
}

// followLog hands every log event on the bus to h, acknowledging each so
// the in-process bus, which waits for every subscriber, keeps moving.
func followLog(ctx context.Context, msgs <-chan *message.Message, h eventstore.Handler) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			ev, err := bus.DecodeRecorded(m)
			m.Ack()
			if err != nil {
				return err
			}
			if err := h(ctx, ev); err != nil {
				return err
			}
		}
	}
}

func (n *node) close() {
	if n.bus != nil {
		_ = n.bus.Close()
	}
	if n.archive != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.archive.Close(ctx); err != nil {
			n.log.WithError(err).Error("closing archive")
		}
		cancel()
	}
	if n.keyStore != nil {
		if err := n.keyStore.Close(); err != nil {
			n.log.WithError(err).Error("closing key store")
		}
	}
	if n.projDB != nil {
		if err := n.projDB.Close(); err != nil {
			n.log.WithError(err).Error("closing projections")
		}
	}
	if n.raw != nil {
		if err := n.raw.Close(); err != nil {
			n.log.WithError(err).Error("closing event store")
		}
	}
}

// servePprof serves net/http/pprof on addr until ctx ends.
func servePprof(ctx context.Context, g *errgroup.Group, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug.pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		<-ctx.Done()
		return srv.Close()
	})
	g.Go(func() error {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// serveSyncAPI serves the HTTPS API once the projections are ready, and
// shuts it down (ending every token, so keys are released) with ctx.
func (n *node) serveSyncAPI(ctx context.Context, g *errgroup.Group, cert tls.Certificate, ready <-chan struct{}) error {
	cfg := n.cfg.SyncAPI
	api, err := syncapi.New(syncapi.Config{
		Accounts:      n.accounts,
		Archive:       n.archive,
		Log:           n.log.WithField("component", "syncapi"),
		TokenTTL:      cfg.TokenTTL.Duration,
		LoginFailures: cfg.LoginFailures,
		LoginPenalty:  cfg.LoginPenalty.Duration,
		UserData:      n.userData(),
	})
	if err != nil {
		return err
	}
	// Long-polls and event streams wake on new log events.
	events, err := n.bus.Subscribe(ctx, bus.TopicLog)
	if err != nil {
		return err
	}
	g.Go(func() error { return followLog(ctx, events, api.HandleEvent) })
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("syncapi: %w", err)
	}
	srv := &http.Server{
		Handler:   api.Handler(),
		TLSConfig: serverTLS(cert, "h2", "http/1.1"),
		// No WriteTimeout: sync requests wait (long-poll, event streams).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(n.log.WithField("component", "syncapi").WriterLevel(logrus.DebugLevel), "", 0),
	}
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		api.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return srv.Close()
		}
		return err
	})
	g.Go(func() error {
		select {
		case <-ready:
		case <-ctx.Done():
			l.Close()
			return nil
		}
		if err := srv.ServeTLS(l, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("syncapi: %w", err)
		}
		return nil
	})
	return nil
}
