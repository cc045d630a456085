package interop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"verlauf.im/verlauf/userdata"
)

const ejabberdHost = "ejabberd.test"

// startEjabberd runs a throwaway ejabberd for ejabberd.test on ip:5222
// with its own configuration, spool and Erlang node, storing passwords as
// SCRAM verifiers, and returns a function that runs ejabberdctl against
// it.
func startEjabberd(t *testing.T, dir, ip string) func(args ...string) string {
	t.Helper()
	need(t, "ejabberdctl")
	for _, d := range []string{"db", "logs", "home", "export"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "ejabberd.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `# Throwaway ejabberd for verlauf's interop tests.
hosts:
  - %[1]s
loglevel: info
listen:
  -
    port: 5222
    ip: %[2]q
    module: ejabberd_c2s
auth_method: internal
auth_password_format: scram
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
modules:
  mod_roster: {}
  mod_vcard: {}
  mod_admin_extra: {}
`, ejabberdHost, ip), 0o644); err != nil {
		t.Fatal(err)
	}
	ctl := filepath.Join(dir, "ejabberdctl.cfg")
	if err := os.WriteFile(ctl, []byte("ERLANG_NODE=verlaufinterop@localhost\nERL_DIST_PORT=25398\nINET_DIST_INTERFACE=127.0.0.1\nEJABBERD_BYPASS_WARNINGS=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chown(t, dir, "ejabberd")
	args := []string{"--config", cfg, "--ctl-config", ctl, "--spool", filepath.Join(dir, "db"), "--logs", filepath.Join(dir, "logs")}
	ctlCmd := func(extra ...string) *exec.Cmd {
		c := exec.Command("ejabberdctl", append(append([]string{}, args...), extra...)...)
		c.Env = append(os.Environ(), "HOME="+filepath.Join(dir, "home"))
		return c
	}
	p := startProc(t, "ejabberd", filepath.Join(dir, "logs", "ejabberd.log"), ctlCmd("foreground"))
	// The Erlang VM runs under su, outside the process group that the
	// generic cleanup signals: stop it the way its tools do. Registered
	// after startProc, so it runs first.
	t.Cleanup(func() {
		if out, err := ctlCmd("stop").CombinedOutput(); err != nil {
			t.Logf("ejabberdctl stop: %v: %s", err, out)
		}
		if out, err := ctlCmd("stopped").CombinedOutput(); err != nil {
			t.Logf("ejabberdctl stopped: %v: %s", err, out)
		}
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Error("ejabberd still running 30s after stop")
		}
	})
	waitListening(t, p, net.JoinHostPort(ip, "5222"), 60*time.Second)
	return func(extra ...string) string {
		t.Helper()
		return run(t, ctlCmd(extra...))
	}
}

// A user made on a real ejabberd with its own commands (register,
// add_rosteritem, set_vcard) and exported with ejabberdctl
// export_piefxis imports into verlauf: roster and vCard arrive, the
// SCRAM verifier from the file accepts the same password, and the first
// login reseals the identity so that no interim key is left.
func TestEjabberdExportImports(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const pw = "alice's ejabberd password"
	ctl := startEjabberd(t, dir, "127.0.0.23")
	ctl("register", "alice", ejabberdHost, pw)
	ctl("add_rosteritem", "alice", ejabberdHost, "romeo", "montague.example", "Romeo", "Friends", "both")
	ctl("add_rosteritem", "alice", ejabberdHost, "tybalt", "capulet.example", "Tybalt", "Enemies", "to")
	ctl("set_vcard", "alice", ejabberdHost, "FN", "Alice Ejabberd")
	ctl("set_vcard", "alice", ejabberdHost, "NICKNAME", "alice")
	out := filepath.Join(dir, "export")
	ctl("export_piefxis", out)

	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// The main file is <server-data>; it names the per-host files with
	// xi:include.
	var main []byte
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(out, n))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("<server-data")) {
			main = b
		}
	}
	if main == nil {
		t.Fatalf("no main file among ejabberd's export %v", names)
	}
	open := func(href string) (userdata.ReadCloser, error) {
		if filepath.Base(href) != href {
			return nil, errors.New("only files beside the main file")
		}
		return os.Open(filepath.Join(out, href))
	}
	showExport := func() {
		for _, n := range names {
			b, _ := os.ReadFile(filepath.Join(out, n))
			t.Logf("ejabberd's %s:\n%s", n, b)
		}
	}

	v := newVerlauf(t, ejabberdHost)
	ctx := context.Background()
	alice := mustJID(t, "alice@"+ejabberdHost)
	rep, err := userdata.Import(ctx, bytes.NewReader(main), v.deps, userdata.ImportOptions{Include: open})
	if err != nil {
		showExport()
		t.Fatalf("import of ejabberd's export: %v", err)
	}
	if len(rep.Users) != 1 || !rep.Users[0].Created || !rep.Users[0].Interim {
		showExport()
		t.Fatalf("report %+v", rep.Users)
	}
	if err := v.accounts.VerifyPassword(ctx, alice, pw); err != nil {
		showExport()
		t.Fatalf("ejabberd's verifier does not accept the password in verlauf: %v", err)
	}
	if err := v.accounts.VerifyPassword(ctx, alice, "another password"); err == nil {
		t.Fatal("ejabberd's verifier accepts any password")
	}
	v.login(alice, pw)
	if _, ok, err := v.ks.Interim(ctx, alice.String()); err != nil || ok {
		t.Fatalf("interim key after the first login: %v %v", ok, err)
	}
	e := v.export(alice)
	romeo, tybalt := e.roster["romeo@montague.example"], e.roster["tybalt@capulet.example"]
	if len(e.roster) != 2 || romeo.Name != "Romeo" || romeo.Subscription != "both" || strings.Join(romeo.Groups, ",") != "Friends" ||
		tybalt.Name != "Tybalt" || tybalt.Subscription != "to" || strings.Join(tybalt.Groups, ",") != "Enemies" {
		showExport()
		t.Errorf("roster in verlauf: %+v", e.roster)
	}
	if !strings.Contains(e.vcard, "<FN>Alice Ejabberd</FN>") || !strings.Contains(e.vcard, "<NICKNAME>alice</NICKNAME>") {
		showExport()
		t.Errorf("vCard in verlauf: %s", e.vcard)
	}
}
