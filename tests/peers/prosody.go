package peers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ProsodyOptions shape a throwaway Prosody; Peer's Modules are enabled
// besides the basic ones (roster, saslauth, disco, ping, posix, presence,
// message, iq, and tls and dialback with CA and Federate), e.g. "vcard".
type ProsodyOptions struct {
	Peer
	// Storage is its storage module: "internal" when "", or "xep0227".
	Storage string
	// Authentication is its auth provider: "internal_plain" when "",
	// or "internal_hashed" to keep SCRAM verifiers.
	Authentication string
	// LogLevel is "info" when "".
	LogLevel string
}

// Prosody is a running Prosody.
type Prosody struct {
	ProsodyOptions
	Config string // its configuration file
	Proc   *Proc
}

// DataDir is where it keeps its data.
func (p *Prosody) DataDir() string { return filepath.Join(p.Dir, "data") }

// Ctl runs prosodyctl with its configuration, failing the test if it
// fails.
func (p *Prosody) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, exec.Command("prosodyctl", append([]string{"--config", p.Config}, args...)...))
}

// StartProsody runs Prosody, as its own system user, with its own
// configuration and data directory, registers o.Users, and waits until
// it listens. It is stopped when the test ends.
func StartProsody(t testing.TB, o ProsodyOptions) *Prosody {
	t.Helper()
	NeedRoot(t)
	Need(t, "prosody", "prosodyctl")
	o.Peer.defaults(t, "Prosody")
	if o.Storage == "" {
		o.Storage = "internal"
	}
	if o.Authentication == "" {
		o.Authentication = "internal_plain"
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	p := &Prosody{ProsodyOptions: o, Config: filepath.Join(o.Dir, "prosody.cfg.lua")}
	for _, d := range []string{p.DataDir(), filepath.Join(o.Dir, "certs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	modules := []string{"roster", "saslauth", "disco", "ping", "posix", "presence", "message", "iq"}
	var s2sPorts, tls string
	if o.Federate {
		modules = append(modules, "dialback")
		s2sPorts = strconv.Itoa(o.S2SPort)
	}
	if o.CA != nil {
		modules = append(modules, "tls")
		cert, key := o.CA.Issue(t, o.Domain, o.Domain)
		Traversable(t, o.CA.Dir)
		Traversable(t, filepath.Dir(o.Trust))
		tls = fmt.Sprintf("c2s_require_encryption = true\ns2s_require_encryption = true\nssl = { certificate = %q; key = %q; cafile = %q }\n", cert, key, o.Trust)
	} else {
		tls = "c2s_require_encryption = false\n"
	}
	modules = append(modules, o.Modules...)
	if err := os.WriteFile(p.Config, fmt.Appendf(nil, `-- Throwaway Prosody for verlauf's tests (tests/peers).
daemonize = false
pidfile = %q
data_path = %q
log = { %s = %q }
modules_enabled = { %s }
interfaces = { %q }
c2s_ports = { %d }
s2s_ports = { %s }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
s2s_secure_auth = %t
authentication = %q
storage = %q
-- Prosody's resolver (libunbound) reads /etc/hosts only when told to:
-- that is where the tests put their domains.
unbound = { hoststxt = "/etc/hosts" }
certificates = %q
%sVirtualHost %q
`, filepath.Join(o.Dir, "prosody.pid"), p.DataDir(), o.LogLevel, filepath.Join(o.Dir, "prosody.log"),
		luaList(modules), o.IP, o.C2SPort, s2sPorts, !o.Dialback, o.Authentication, o.Storage,
		filepath.Join(o.Dir, "certs"), tls, o.Domain), 0o644); err != nil {
		t.Fatal(err)
	}
	// Prosody drops root for its own user, which must read and write
	// all of it.
	Chown(t, o.Dir, "prosody")
	for u, pw := range o.Users {
		p.Ctl(t, "register", u, o.Domain, pw)
	}
	cmd := exec.Command("prosody", "--config", p.Config)
	AsUser(t, cmd, "prosody") // it refuses to run as root
	p.Proc = Start(t, "prosody "+o.Domain, filepath.Join(o.Dir, "prosody.log"), cmd)
	p.Proc.WaitListening(t, p.C2S(), 20*time.Second)
	if o.Federate {
		p.Proc.WaitListening(t, p.S2S(), 5*time.Second)
	}
	return p
}

func luaList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, "; ")
}
