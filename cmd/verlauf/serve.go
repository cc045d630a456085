package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/migrations"
	"verlauf.im/verlauf/projections"
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
	accounts     *accounts.Service
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
	n.runner = projections.NewRunner(n.store, n.bus, log.WithField("component", "projections"),
		n.accountsProj, n.rosterProj)
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
	ready := make(chan struct{})
	g.Go(func() error { return n.runner.Run(gctx, ready) })
	g.Go(func() error {
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
		return serveAdmin(gctx, adminSocketPath(n.cfg), n.cfg.Server.Domain, n.accounts, n.log.WithField("component", "admin"))
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	n.log.Info("verlauf stopped")
	return err
}

func (n *node) close() {
	if n.bus != nil {
		_ = n.bus.Close()
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
