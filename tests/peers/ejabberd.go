package peers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EjabberdOptions shape a throwaway ejabberd; Peer's Modules are loaded
// besides mod_roster, e.g. "mod_disco", "mod_ping", "mod_vcard",
// "mod_admin_extra", and the Users are registered once it runs.
type EjabberdOptions struct {
	Peer
	// Node is its Erlang node name (before @localhost) and DistPort its
	// Erlang distribution port, both required and distinct for each
	// test binary that may run at the same time as another.
	Node     string
	DistPort int
	// SCRAM stores passwords as SCRAM verifiers.
	SCRAM bool
}

// Ejabberd is a running ejabberd.
type Ejabberd struct {
	EjabberdOptions
	Proc *Proc
	args []string
}

// Ctl runs ejabberdctl against it, failing the test if it fails.
func (e *Ejabberd) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, e.ctl(args...))
}

func (e *Ejabberd) ctl(args ...string) *exec.Cmd {
	c := exec.Command("ejabberdctl", append(append([]string{}, e.args...), args...)...)
	c.Env = append(os.Environ(), "HOME="+filepath.Join(e.Dir, "home"))
	return c
}

// StartEjabberd runs ejabberd with its own configuration, spool and
// Erlang node, waits until it listens and registers o.Users. It is
// stopped when the test ends, with ejabberdctl stop.
func StartEjabberd(t testing.TB, o EjabberdOptions) *Ejabberd {
	t.Helper()
	NeedRoot(t)
	Need(t, "ejabberdctl")
	if o.Node == "" || o.DistPort == 0 {
		t.Fatal("peers: ejabberd needs an Erlang node name and a distribution port")
	}
	o.Peer.defaults(t, "ejabberd")
	e := &Ejabberd{EjabberdOptions: o}
	for _, d := range []string{"db", "logs", "home"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "# Throwaway ejabberd for verlauf's tests (tests/peers).\nhosts:\n  - %s\nloglevel: info\n", o.Domain)
	starttls := ""
	if o.CA != nil {
		cert, key := o.CA.Issue(t, o.Domain, o.Domain)
		certPEM, err := os.ReadFile(cert)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := os.ReadFile(key)
		if err != nil {
			t.Fatal(err)
		}
		pemFile := filepath.Join(o.Dir, o.Domain+".pem")
		if err := os.WriteFile(pemFile, append(certPEM, keyPEM...), 0o640); err != nil {
			t.Fatal(err)
		}
		Traversable(t, filepath.Dir(o.Trust))
		fmt.Fprintf(&cfg, "certfiles:\n  - %q\nca_file: %q\ns2s_use_starttls: required\n", pemFile, o.Trust)
		starttls = "    starttls_required: true\n"
	}
	fmt.Fprintf(&cfg, "listen:\n  -\n    port: %d\n    ip: %q\n    module: ejabberd_c2s\n%s", o.C2SPort, o.IP, starttls)
	if o.Federate {
		fmt.Fprintf(&cfg, "  -\n    port: %d\n    ip: %q\n    module: ejabberd_s2s_in\n", o.S2SPort, o.IP)
	}
	cfg.WriteString("auth_method: internal\n")
	if o.SCRAM {
		cfg.WriteString("auth_password_format: scram\n")
	}
	cfg.WriteString(`acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
s2s_access: s2s
modules:
  mod_roster: {}
`)
	modules := o.Modules
	if o.Dialback {
		modules = append(modules[:len(modules):len(modules)], "mod_s2s_dialback")
	}
	for _, m := range modules {
		fmt.Fprintf(&cfg, "  %s: {}\n", m)
	}
	cfgFile := filepath.Join(o.Dir, "ejabberd.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctlFile := filepath.Join(o.Dir, "ejabberdctl.cfg")
	if err := os.WriteFile(ctlFile, fmt.Appendf(nil, "ERLANG_NODE=%s@localhost\nERL_DIST_PORT=%d\nINET_DIST_INTERFACE=127.0.0.1\nEJABBERD_BYPASS_WARNINGS=true\n",
		o.Node, o.DistPort), 0o644); err != nil {
		t.Fatal(err)
	}
	Chown(t, o.Dir, "ejabberd")
	e.args = []string{"--config", cfgFile, "--ctl-config", ctlFile, "--spool", filepath.Join(o.Dir, "db"), "--logs", filepath.Join(o.Dir, "logs")}
	// ejabberdctl runs the Erlang VM as the ejabberd user itself.
	e.Proc = Start(t, "ejabberd "+o.Domain, filepath.Join(o.Dir, "logs", "ejabberd.log"), e.ctl("foreground"))
	// The Erlang VM runs under su, outside the process group that Start
	// signals: stop it the way its tools do, and wait until it is gone.
	// Registered after Start's cleanup, so it runs first.
	t.Cleanup(func() {
		if out, err := e.ctl("stop").CombinedOutput(); err != nil {
			t.Logf("ejabberdctl stop: %v: %s", err, out)
		}
		if out, err := e.ctl("stopped").CombinedOutput(); err != nil {
			t.Logf("ejabberdctl stopped: %v: %s", err, out)
		}
		select {
		case <-e.Proc.Done():
		case <-time.After(30 * time.Second):
			t.Error("ejabberd still running 30s after stop")
		}
	})
	e.Proc.WaitListening(t, e.C2S(), 60*time.Second)
	if o.Federate {
		e.Proc.WaitListening(t, e.S2S(), 5*time.Second)
	}
	for u, pw := range o.Users {
		e.Ctl(t, "register", u, o.Domain, pw)
	}
	return e
}
