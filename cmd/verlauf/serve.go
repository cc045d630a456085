package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

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
	n.runner = projections.NewRunner(n.store, n.bus, log.WithField("component", "projections"))
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
	_ = cert

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	ready := make(chan struct{})
	g.Go(func() error { return n.runner.Run(gctx, ready) })
	g.Go(func() error {
		select {
		case <-ready:
			n.log.WithFields(logrus.Fields{"domain": n.cfg.Server.Domain, "data_dir": n.cfg.Server.DataDir}).Info("verlauf ready")
		case <-gctx.Done():
		}
		return nil
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

// shutdownGrace bounds how long a graceful stop waits for streams to close.
const shutdownGrace = 10 * time.Second
