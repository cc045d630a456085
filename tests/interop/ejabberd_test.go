package interop_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"verlauf.im/verlauf/tests/peers"
	"verlauf.im/verlauf/userdata"
)

const ejabberdHost = "ejabberd.test"

// startEjabberd runs a throwaway ejabberd for ejabberd.test on ip:5222
// with its configuration, spool and whatever dir holds in dir, its own
// Erlang node, and passwords stored as SCRAM verifiers.
func startEjabberd(t *testing.T, dir, ip string) *peers.Ejabberd {
	t.Helper()
	peers.NeedSlixmpp(t)
	return peers.StartEjabberd(t, peers.EjabberdOptions{
		Peer: peers.Peer{Domain: ejabberdHost, IP: ip, Dir: dir, Modules: []string{"mod_vcard", "mod_admin_extra"}},
		// Its own Erlang node and port: tests/federation may run one too.
		Node: "verlaufinterop", DistPort: 25398,
		SCRAM: true,
	})
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
	out := filepath.Join(dir, "export") // written by ejabberd, which owns dir
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ej := startEjabberd(t, dir, "127.0.0.23")
	ctl := func(args ...string) { ej.Ctl(t, args...) }
	ctl("register", "alice", ejabberdHost, pw)
	ctl("add_rosteritem", "alice", ejabberdHost, "romeo", "montague.example", "Romeo", "Friends", "both")
	ctl("add_rosteritem", "alice", ejabberdHost, "tybalt", "capulet.example", "Tybalt", "Enemies", "to")
	ctl("set_vcard", "alice", ejabberdHost, "FN", "Alice Ejabberd")
	ctl("set_vcard", "alice", ejabberdHost, "NICKNAME", "alice")
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
