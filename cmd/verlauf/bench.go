package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"verlauf.im/verlauf/tests/load"
)

// cmdBench runs the load tool against any XMPP server.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg load.Config
	var caFile string
	var insecure bool
	var mam load.MAMConfig
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:5222", "STARTTLS c2s address of the server")
	fs.StringVar(&cfg.Domain, "domain", "localhost", "XMPP domain")
	fs.IntVar(&cfg.Users, "users", 100, "number of users")
	fs.StringVar(&cfg.Prefix, "prefix", "load", "username prefix (users are PREFIX0, PREFIX1, …)")
	fs.StringVar(&cfg.Password, "password", "load-password", "password of every load user")
	fs.StringVar(&cfg.Mech, "mech", "SCRAM-SHA-256", "SASL mechanism")
	fs.BoolVar(&cfg.Register, "register", false, "create the users with in-band registration first")
	fs.IntVar(&cfg.LoginConcurrency, "login-concurrency", 50, "logins in flight at once")
	fs.DurationVar(&cfg.Duration, "duration", 0, "length of the chat phase (default 10s)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "offered messages/s in total; 0 = saturate")
	fs.IntVar(&cfg.Window, "window", 4, "unanswered messages per user in saturation mode")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "pid of the server, to sample its RSS and CPU time")
	fs.StringVar(&caFile, "ca", "", "PEM file of the CA (or self-signed certificate) to trust")
	fs.BoolVar(&insecure, "insecure", false, "do not verify the server certificate")
	fs.IntVar(&mam.Fill, "mam-fill", 0, "MAM run instead of the chat load: PREFIX0 exchanges this many messages with its partners, then the archive size is checked")
	fs.IntVar(&mam.Queries, "mam-queries", 0, "MAM run: time this many newest, middle and with queries (pages of 50) on PREFIX0's archive")
	fs.IntVar(&mam.Partners, "mam-partners", 4, "MAM run: partners PREFIX1..PREFIXn that PREFIX0 chats with")
	fs.DurationVar(&mam.FillTimeout, "mam-fill-timeout", 0, "MAM run: stop filling after this long and report what was archived (0 = no limit)")
	fs.DurationVar(&mam.QueryTime, "mam-query-time", 5*time.Minute, "MAM run: stop querying after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10e9
	}
	cfg.TLS = &tls.Config{ServerName: cfg.Domain, MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // opt-in for self-signed test servers
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("bench: %s holds no PEM certificate", caFile)
		}
		cfg.TLS.RootCAs = pool
	}
	cfg.Log = stderr
	if mam.Fill > 0 || mam.Queries > 0 {
		rep, err := load.RunMAM(ctx, cfg, mam)
		fmt.Fprint(stdout, rep.String())
		return err
	}
	rep, err := load.Run(ctx, cfg)
	fmt.Fprint(stdout, rep.String())
	return err
}
