package main

import (
	"fmt"
	"io"

	"github.com/sirupsen/logrus"
)

// newLogger builds the structured logger from config. Messages carry their
// data as fields, never formatted into the text, so that logs can be
// filtered and so that no stanza content slips in by accident.
func newLogger(cfg LogConfig, out io.Writer) (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("config: log.level: %w", err)
	}
	l := logrus.New()
	l.SetOutput(out)
	l.SetLevel(lvl)
	switch cfg.Format {
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	case "text", "":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	default:
		return nil, fmt.Errorf("config: log.format %q is not text or json", cfg.Format)
	}
	return l, nil
}
