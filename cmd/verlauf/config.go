package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"

	"github.com/BurntSushi/toml"
	"verlauf.im/verlauf/domain"
)

// Config is verlauf.toml. Every field has a default (see defaultConfig and
// verlauf.example.toml, which documents each key); a file only needs the keys
// it changes.
type Config struct {
	Server   ServerConfig   `toml:"server"`
	Log      LogConfig      `toml:"log"`
	TLS      TLSConfig      `toml:"tls"`
	C2S      C2SConfig      `toml:"c2s"`
	Accounts AccountsConfig `toml:"accounts"`
	Store    StoreConfig    `toml:"store"`
	Archive  ArchiveConfig  `toml:"archive"`
	S2S      S2SConfig      `toml:"s2s"`
	Debug    DebugConfig    `toml:"debug"`
	SyncAPI  SyncAPIConfig  `toml:"syncapi"`
}

// SyncAPIConfig sets the HTTPS API through which users read their history
// and manage their data.
type SyncAPIConfig struct {
	// Listen is the HTTPS address; empty turns the API off.
	Listen string `toml:"listen"`
	// TokenTTL is how long a login token lives; the user's keys are
	// released when it ends.
	TokenTTL Duration `toml:"token_ttl"`
	// LoginFailures per account (and 4x per address) before logins are
	// refused for LoginPenalty.
	LoginFailures int      `toml:"login_failures"`
	LoginPenalty  Duration `toml:"login_penalty"`
}

// DebugConfig holds what an operator turns on to look inside.
type DebugConfig struct {
	// Pprof, if set, serves Go's profiler (net/http/pprof) on this
	// address. Bind it to loopback: profiles show memory contents.
	Pprof string `toml:"pprof"`
}

// ArchiveConfig sets message history and the offline queue.
type ArchiveConfig struct {
	// Default is the history mode of users who never chose one: "never"
	// (no history unless the user turns it on), "roster" or "always".
	Default string `toml:"default"`
	// OfflineLimit is how many messages may wait for a user who is
	// offline; past it senders get resource-constraint.
	OfflineLimit int `toml:"offline_limit"`
}

// ServerConfig holds what identifies the server and where it keeps data.
type ServerConfig struct {
	Domain  string `toml:"domain"`
	DataDir string `toml:"data_dir"`
	// AdminSocket is the Unix socket the command line uses to reach a
	// running server. Relative paths are inside DataDir.
	AdminSocket string `toml:"admin_socket"`
}

// LogConfig sets the structured log.
type LogConfig struct {
	Level  string `toml:"level"`  // trace, debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// TLSConfig names the certificate. Empty files mean a self-signed
// certificate for the domain, generated on first start under DataDir/tls.
type TLSConfig struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// C2SConfig sets the client listeners and their limits.
type C2SConfig struct {
	Listen         string   `toml:"listen"`           // STARTTLS
	ListenTLS      string   `toml:"listen_tls"`       // direct TLS, XEP-0368
	MaxStanzaSize  int      `toml:"max_stanza_size"`  // bytes
	IdleTimeout    Duration `toml:"idle_timeout"`     // no byte at all for this long closes a stream
	MaxConnections int      `toml:"max_connections"`  // in total
	MaxPerAddress  int      `toml:"max_per_address"`  // open connections per client IP
	AuthFailures   int      `toml:"auth_failures"`    // failed logins per account or address before throttling
	AuthPenalty    Duration `toml:"auth_penalty"`     // how long a throttled account or address waits
	MaxRosterItems int      `toml:"max_roster_items"` // per user
}

// S2SConfig sets federation with other servers. Server-to-server
// traffic is always encrypted: there is no key to turn TLS off.
type S2SConfig struct {
	Listen    string `toml:"listen"`     // STARTTLS; "" turns federation off
	ListenTLS string `toml:"listen_tls"` // direct TLS, XEP-0368; "" for none
	// Routes maps remote domains to "host:port", overriding DNS.
	Routes map[string]string `toml:"routes"`
	// RequireVerifiedCertificates refuses peers whose certificate cannot
	// be verified for their domain, instead of falling back to Server
	// Dialback (XEP-0220) over TLS.
	RequireVerifiedCertificates bool `toml:"require_verified_certificates"`
	// CAFile adds PEM certificates to the system roots for peers.
	CAFile      string   `toml:"ca_file"`
	IdleTimeout Duration `toml:"idle_timeout"`
}

// AccountsConfig sets how accounts come to be.
type AccountsConfig struct {
	// Registration allows in-band registration (XEP-0077).
	Registration bool `toml:"registration"`
	// RegistrationLimit is how many accounts one client network (an IPv4
	// address, an IPv6 /64) may register in-band per RegistrationWindow;
	// 0 means no limit.
	RegistrationLimit  int      `toml:"registration_limit"`
	RegistrationWindow Duration `toml:"registration_window"`
	// SCRAMIterations is the PBKDF2 iteration count for new verifiers.
	SCRAMIterations int `toml:"scram_iterations"`
}

// StoreConfig picks the event store.
type StoreConfig struct {
	Backend string `toml:"backend"` // "embedded"
}

// Duration is a time.Duration written as "30s", "5m" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func defaultConfig() Config {
	return Config{
		Server: ServerConfig{Domain: "localhost", DataDir: "./data", AdminSocket: "admin.sock"},
		Log:    LogConfig{Level: "info", Format: "text"},
		C2S: C2SConfig{
			Listen:         ":5222",
			ListenTLS:      ":5223",
			MaxStanzaSize:  256 << 10,
			IdleTimeout:    Duration{5 * time.Minute},
			MaxConnections: 100000,
			MaxPerAddress:  1000,
			AuthFailures:   5,
			AuthPenalty:    Duration{time.Minute},
			MaxRosterItems: 5000,
		},
		Accounts: AccountsConfig{
			Registration:       true,
			RegistrationLimit:  5,
			RegistrationWindow: Duration{time.Hour},
			SCRAMIterations:    4096,
		},
		Store:   StoreConfig{Backend: "embedded"},
		SyncAPI: SyncAPIConfig{Listen: ":5443", TokenTTL: Duration{15 * time.Minute}, LoginFailures: 5, LoginPenalty: Duration{time.Minute}},
		Archive: ArchiveConfig{Default: "never", OfflineLimit: 1000},
		S2S: S2SConfig{
			Listen:                      ":5269",
			Routes:                      map[string]string{},
			RequireVerifiedCertificates: true,
			IdleTimeout:                 Duration{10 * time.Minute},
		},
	}
}

// loadConfig reads path over the defaults. An empty path means the
// zero-config defaults. Unknown keys are an error, so that a typo does not
// silently leave a default in force.
func loadConfig(path string) (Config, error) {
	cfg := defaultConfig()
	if path == "" {
		return cfg, cfg.validate()
	}
	md, err := toml.DecodeFile(path, &cfg)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return cfg, fmt.Errorf("config %s: unknown key %q", path, un[0].String())
	}
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	switch {
	case c.Server.Domain == "":
		return errors.New("config: server.domain is empty")
	case c.Server.DataDir == "":
		return errors.New("config: server.data_dir is empty")
	case c.C2S.MaxStanzaSize < 10000:
		// RFC 6120 §13.12: servers must accept stanzas of at least 10000 bytes.
		return fmt.Errorf("config: c2s.max_stanza_size %d is below the 10000 bytes RFC 6120 requires", c.C2S.MaxStanzaSize)
	case c.Store.Backend != "embedded":
		return fmt.Errorf("config: store.backend %q is not supported (embedded)", c.Store.Backend)
	case !domain.ArchiveMode(c.Archive.Default).Valid():
		return fmt.Errorf("config: archive.default %q is not never, roster or always", c.Archive.Default)
	case c.Archive.OfflineLimit < 1:
		return fmt.Errorf("config: archive.offline_limit %d must be at least 1", c.Archive.OfflineLimit)
	case c.Accounts.SCRAMIterations < 4096:
		return fmt.Errorf("config: accounts.scram_iterations %d is below 4096 (RFC 7677)", c.Accounts.SCRAMIterations)
	}
	for d, a := range c.S2S.Routes {
		if _, _, err := net.SplitHostPort(a); err != nil || d == "" {
			return fmt.Errorf("config: s2s.routes: %q = %q is not domain = \"host:port\"", d, a)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("config: tls.cert_file and tls.key_file go together")
	}
	if _, err := os.Stat(c.Server.DataDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config: server.data_dir: %w", err)
	}
	return nil
}
