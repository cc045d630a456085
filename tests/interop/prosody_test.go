package interop_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/tests/peers"
	"verlauf.im/verlauf/userdata"
)

const prosodyHost = "prosody.test"

// startProsody runs a throwaway Prosody for prosody.test on ip:5222, with
// its configuration and data (dir/data, which the test may fill first)
// in dir, without TLS (the client connects over loopback), keeping
// passwords as SCRAM verifiers. storage is "internal" or "xep0227".
func startProsody(t *testing.T, dir, ip, storage string, users map[string]string) *peers.Prosody {
	t.Helper()
	peers.NeedSlixmpp(t)
	return peers.StartProsody(t, peers.ProsodyOptions{
		Peer:    peers.Peer{Domain: prosodyHost, IP: ip, Dir: dir, Users: users, Modules: []string{"vcard"}},
		Storage: storage, Authentication: "internal_hashed",
	})
}

// prosodyExport exports the accounts, rosters and vCards of prosody.test
// from Prosody's internal storage in dir/data with Prosody's own
// migrator into mod_storage_xep0227 files, and returns the directory
// holding them.
//
// Prosody 0.12's mod_storage_xep0227 writes into Prosody's data path,
// which prosody-migrator takes from the constant CFG_DATADIR
// (/var/lib/prosody) and not from the output store's path option. So the
// migrator runs in a mount namespace of its own where the test's output
// directory is bind-mounted over /var/lib/prosody: the real tool,
// unchanged, and the system's Prosody data untouched.
func prosodyExport(t *testing.T, dir string) string {
	t.Helper()
	peers.NeedRoot(t)
	peers.Need(t, "prosody-migrator", "unshare", "mount")
	out := filepath.Join(dir, "export")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	peers.Chown(t, out, "prosody")
	cfg := filepath.Join(dir, "migrator.cfg.lua")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `input {
	type = "internal";
	path = %[1]q;
	hosts = { [%[2]q] = { "accounts"; "roster"; "vcard" } };
}
output {
	type = "xep0227";
	path = %[3]q;
}
`, filepath.Join(dir, "data"), prosodyHost, out), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Run(t, exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /var/lib/prosody && exec prosody-migrator --config="$2" input output`, "sh", out, cfg))
	return out
}

// A user made on a real Prosody (prosodyctl register, then roster and
// vCard set by a real client) and exported by Prosody's own migrator
// imports into verlauf: roster and vCard arrive, the SCRAM-SHA-1 verifier
// from the file accepts the same password, and the first login reseals
// the identity so that no interim key is left.
func TestProsodyExportImports(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const ip, pw = "127.0.0.21", "alice's prosody password"
	startProsody(t, dir, ip, "internal", map[string]string{"alice": pw})
	got := client(t, "alice@"+prosodyHost, pw, ip,
		"--item", "romeo@montague.example|Romeo|Friends,Lovers",
		"--item", "tybalt@capulet.example||",
		"--fn", "Alice Liddell", "--nick", "alice")
	if len(got.Roster) != 2 || got.VCard["FN"] != "Alice Liddell" {
		t.Fatalf("Prosody holds %+v", got)
	}

	out := prosodyExport(t, dir)
	file, err := os.ReadFile(filepath.Join(out, "alice@"+prosodyHost+".xml"))
	if err != nil {
		t.Fatalf("Prosody's export: %v", err)
	}
	for _, want := range []string{"scram-credentials", "jabber:iq:roster", "vcard-temp", "Alice Liddell"} {
		if !bytes.Contains(file, []byte(want)) {
			t.Fatalf("Prosody's export lacks %s:\n%s", want, file)
		}
	}

	v := newVerlauf(t, prosodyHost)
	alice := mustJID(t, "alice@"+prosodyHost)
	ctx := context.Background()
	rep, err := userdata.Import(ctx, bytes.NewReader(file), v.deps, userdata.ImportOptions{})
	if err != nil {
		t.Fatalf("import of Prosody's export: %v\n%s", err, file)
	}
	if len(rep.Users) != 1 || !rep.Users[0].Created || !rep.Users[0].Interim {
		t.Fatalf("report %+v", rep.Users)
	}
	if err := v.accounts.VerifyPassword(ctx, alice, pw); err != nil {
		t.Fatalf("Prosody's verifier does not accept the password in verlauf: %v", err)
	}
	if err := v.accounts.VerifyPassword(ctx, alice, "another password"); err == nil {
		t.Fatal("Prosody's verifier accepts any password")
	}
	if _, err := v.accounts.Credentials(ctx, alice, domain.HashSHA1); err != nil {
		t.Fatalf("no SCRAM-SHA-1 verifier from Prosody's file: %v", err)
	}
	v.login(alice, pw)
	if _, ok, err := v.ks.Interim(ctx, alice.String()); err != nil || ok {
		t.Fatalf("interim key after the first login: %v %v", ok, err)
	}
	e := v.export(alice)
	romeo, ok := e.roster["romeo@montague.example"]
	if !ok || romeo.Name != "Romeo" || !slices.Equal(sorted(romeo.Groups), []string{"Friends", "Lovers"}) || romeo.Subscription != "none" {
		t.Errorf("romeo in verlauf: %+v (all: %+v)", romeo, e.roster)
	}
	if _, ok := e.roster["tybalt@capulet.example"]; !ok || len(e.roster) != 2 {
		t.Errorf("roster in verlauf: %+v", e.roster)
	}
	if !strings.Contains(e.vcard, "<FN>Alice Liddell</FN>") || !strings.Contains(e.vcard, "<NICKNAME>alice</NICKNAME>") {
		t.Errorf("vCard in verlauf: %s", e.vcard)
	}
}

// A verlauf export (with credentials, as an operator's migration writes
// it) is served by Prosody's XEP-0227 storage: a real client logs in to
// Prosody with the verlauf password and sees the roster and the vCard.
// The manifest is detached: Prosody's parser refuses the XML comment
// that carries it otherwise, and loads nothing of that user (checked
// too, so that the need for the option stays known).
func TestVerlaufExportLoadsIntoProsody(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const pw = "carol's verlauf password"
	v := newVerlauf(t, prosodyHost)
	carol := mustJID(t, "carol@"+prosodyHost)
	if err := v.accounts.Register(ctx, carol, pw); err != nil {
		t.Fatal(err)
	}
	// Roster and vCard through verlauf's own import (merged into the
	// registered account), and one archived message, which Prosody's
	// archive element must tolerate.
	const data = `<server-data xmlns='urn:xmpp:pie:0'><host jid='prosody.test'><user name='carol'>
<query xmlns='jabber:iq:roster'>
<item jid='dave@example.net' name='Dave' subscription='both'><group>Work</group></item>
<item jid='erin@example.com' subscription='none' ask='subscribe'/>
</query>
<vCard xmlns='vcard-temp'><FN>Carol Verlauf</FN><NICKNAME>carol</NICKNAME></vCard>
</user></host></server-data>`
	if _, err := userdata.Import(ctx, strings.NewReader(data), v.deps, userdata.ImportOptions{MergeExisting: true}); err != nil {
		t.Fatal(err)
	}
	v.login(carol, pw)
	dave := mustJID(t, "dave@example.net")
	msg := []byte(`<message xmlns='jabber:client' from='dave@example.net/x' to='carol@prosody.test' type='chat' id='m1'><body>hello carol</body></message>`)
	if _, err := v.archive.Store(ctx, carol, dave, msg, domain.DirectionIn, time.Now()); err != nil {
		t.Fatal(err)
	}
	var buf, attached bytes.Buffer
	if _, err := userdata.Export(ctx, &buf, v.deps, carol, userdata.XEP0227, userdata.ExportOptions{IncludeCredentials: true, DetachedManifest: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := userdata.Export(ctx, &attached, v.deps, carol, userdata.XEP0227, userdata.ExportOptions{IncludeCredentials: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SCRAM-SHA-1", "hello carol", "Carol Verlauf"} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Fatalf("verlauf's export lacks %s:\n%s", want, buf.Bytes())
		}
	}

	dir := t.TempDir()
	const ip = "127.0.0.22"
	// mod_storage_xep0227 keeps one file per user, <jid>.xml, in the
	// data path.
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, carol.String()+".xml"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The same export with the manifest trailer in the file, as a second
	// user (the verifier does not depend on the name).
	f2 := filepath.Join(dataDir, "carol2@"+prosodyHost+".xml")
	if err := os.WriteFile(f2, bytes.Replace(attached.Bytes(), []byte("name='carol'"), []byte("name='carol2'"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	startProsody(t, dir, ip, "xep0227", nil)
	if _, err := tryClient("carol2@"+prosodyHost, pw, ip); err == nil {
		t.Error("Prosody loaded an export with the manifest comment: DetachedManifest may no longer be needed for Prosody")
	}
	got := client(t, carol.String(), pw, ip)
	if got.VCard["NICKNAME"] != "carol" {
		t.Errorf("vCard nickname on Prosody: %+v", got.VCard)
	}
	want := []rosterItem{
		{JID: "dave@example.net", Name: "Dave", Subscription: "both", Groups: []string{"Work"}},
		{JID: "erin@example.com", Subscription: "none", Groups: []string{}},
	}
	if len(got.Roster) != len(want) {
		t.Fatalf("roster on Prosody: %+v, want %+v", got.Roster, want)
	}
	for i, w := range want {
		g := got.Roster[i]
		if g.JID != w.JID || g.Name != w.Name || g.Subscription != w.Subscription || !slices.Equal(g.Groups, w.Groups) {
			t.Errorf("roster item %d on Prosody: %+v, want %+v", i, g, w)
		}
	}
	if got.VCard["FN"] != "Carol Verlauf" {
		t.Errorf("vCard on Prosody: %+v", got.VCard)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
