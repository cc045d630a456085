package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/projections"
	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
	"verlauf.im/verlauf/userdata"
	"verlauf.im/verlauf/xmppfront/stream"
)

// testNode is a whole verlauf server running in this process, on a
// temporary data directory, with its admin socket: the commands under
// test reach it exactly as they reach a server started by `verlauf serve`.
type testNode struct {
	t      testing.TB
	n      *node
	config string // the config file, for --config
	c2s    string
	domain string
}

func startNode(t testing.TB, domainName string) *testNode {
	t.Helper()
	dir := t.TempDir()
	tn := &testNode{t: t, config: filepath.Join(dir, "verlauf.toml"), c2s: testserver.FreeAddr(t), domain: domainName}
	body := fmt.Sprintf(`[server]
domain = %q
data_dir = %q

[log]
level = "error"

[c2s]
listen = %q
listen_tls = ""

[s2s]
listen = ""

[syncapi]
listen = ""
`, domainName, filepath.Join(dir, "data"), tn.c2s)
	if err := os.WriteFile(tn.config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(tn.config)
	if err != nil {
		t.Fatal(err)
	}
	logger, err := newLogger(cfg.Log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.n, err = openNode(ctx, cfg, logrus.NewEntry(logger))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tn.n.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
		tn.n.close()
	})
	sock := adminSocketPath(cfg)
	testserver.WaitFor(t, 20*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("server ended: %v", err)
		default:
		}
		_, err := adminCall(ctx, sock, adminRequest{Op: "user.list"})
		return err
	})
	return tn
}

// verlauf runs a command of the command line against the node, with
// stdin, and returns its output.
func (tn *testNode) verlauf(stdin string, args ...string) (string, error) {
	var out bytes.Buffer
	args = append(args[1:], "--config", tn.config)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in := strings.NewReader(stdin)
	var err error
	switch cmd := args[0]; cmd {
	case "user":
		err = cmdUser(ctx, args[1:], in, &out, &out)
	case "export":
		err = cmdExport(ctx, args[1:], in, &out, &out)
	case "import":
		err = cmdImport(ctx, args[1:], in, &out, &out)
	default:
		tn.t.Fatalf("no command %s", cmd)
	}
	return out.String(), err
}

func (tn *testNode) users() []string {
	tn.t.Helper()
	out, err := tn.verlauf("", "verlauf", "user", "list")
	if err != nil {
		tn.t.Fatalf("user list: %v", err)
	}
	return strings.Fields(out)
}

func (tn *testNode) tlsConfig() *tls.Config {
	pem, err := os.ReadFile(filepath.Join(tn.n.cfg.Server.DataDir, "tls", tn.domain+".crt"))
	if err != nil {
		tn.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{ServerName: tn.domain, RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// login logs user in over XMPP with SCRAM-SHA-256.
func (tn *testNode) login(user, password string) (*xmppclient.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := xmppclient.Dial(ctx, xmppclient.Options{Addr: tn.c2s, User: user, Password: password, TLS: tn.tlsConfig()})
	if err == nil {
		tn.t.Cleanup(func() { c.S.Close() })
	}
	return c, err
}

// seed gives user a roster and a vCard over XMPP, and n archived
// messages through the archive service, as the router stores them.
func (tn *testNode) seed(user jid.JID, password string, n int) {
	t := tn.t
	t.Helper()
	c, err := tn.login(user.String(), password)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	c.Send(t, `<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@example.net' name='Bob'><group>Friends</group></item></query></iq>`)
	c.ExpectID(t, "r1")
	c.Send(t, `<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='carol@example.com' name='Carol &amp; co'/></query></iq>`)
	c.ExpectID(t, "r2")
	c.Send(t, `<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard></iq>`)
	c.ExpectID(t, "v1")

	partners := []jid.JID{jid.MustParse("bob@example.net"), jid.MustParse("carol@example.com")}
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ctx := context.Background()
	const batch = 1000
	for i := 0; i < n; i += batch {
		var entries []archive.Entry
		for k := i; k < min(n, i+batch); k++ {
			p := partners[k%len(partners)]
			id, err := uuid.NewV7()
			if err != nil {
				t.Fatal(err)
			}
			e := archive.Entry{ID: id, Partner: p, At: start.Add(time.Duration(k) * time.Second)}
			from, to := p, user
			e.Direction = domain.DirectionIn
			if k%2 == 1 {
				from, to = user, p
				e.Direction = domain.DirectionOut
			}
			m := stream.NewElement(stream.NSClient, "message", "from", from.String(), "to", to.String(), "type", "chat", "id", fmt.Sprint("m", k))
			m.AddChild(stream.NewElement(stream.NSClient, "body").AddText(fmt.Sprintf("message %d <&> ü", k)))
			e.Stanza = m.AppendStanza(nil, stream.NSClient)
			entries = append(entries, e)
		}
		if _, err := tn.n.archive.StoreMany(ctx, user, entries...); err != nil {
			t.Fatal(err)
		}
	}
}

// checkExport checks an exported file against its manifest file and the
// counts expected.
func checkExport(t *testing.T, path string, want map[string]int) userdata.Manifest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := userdata.Verify(f)
	if err != nil {
		t.Fatalf("verify %s: %v", path, err)
	}
	b, err := os.ReadFile(manifestPath(path))
	if err != nil {
		t.Fatal(err)
	}
	var beside userdata.Manifest
	if err := json.Unmarshal(b, &beside); err != nil {
		t.Fatal(err)
	}
	if beside.SHA256 != m.SHA256 || beside.Bytes != m.Bytes {
		t.Errorf("manifest file %+v, in the export %+v", beside, m)
	}
	for k, n := range want {
		if m.Counts[k] != n {
			t.Errorf("%s: %d %s, want %d (counts %v)", path, m.Counts[k], k, n, m.Counts)
		}
	}
	return m
}

// noPartials fails if a directory holds anything but the names given.
func noStrayFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
}

const (
	alicePassword = "correct horse battery"
	messages      = 300
)

// A user's data leaves one server with `verlauf export` and enters a
// fresh one with `verlauf import --password-prompt`; there the user logs
// in with the same password, and the second export is the first, byte for
// byte.
func TestExportImportRoundTrip(t *testing.T) {
	a := startNode(t, "localhost")
	alice := jid.MustParse("alice@localhost")
	if out, err := a.verlauf(alicePassword+"\n", "verlauf", "user", "add", "alice"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	a.seed(alice, alicePassword, messages)

	dir := t.TempDir()
	want := map[string]int{userdata.KindAccount: 1, userdata.KindRoster: 2, userdata.KindVCard: 1, userdata.KindMessage: messages}
	files := map[userdata.Format]string{}
	for _, format := range []userdata.Format{userdata.XEP0227, userdata.JSONLines} {
		out := filepath.Join(dir, "alice."+string(format))
		stdout, err := a.verlauf(alicePassword+"\n", "verlauf", "export", "--user", "alice@localhost", "--format", string(format), "--out", out)
		if err != nil {
			t.Fatalf("export %s: %v\n%s", format, err, stdout)
		}
		m := checkExport(t, out, want)
		if m.Format != format || m.User != "alice@localhost" {
			t.Errorf("manifest %+v", m)
		}
		for _, s := range []string{"exported alice@localhost", fmt.Sprintf("message %d", messages), m.SHA256} {
			if !strings.Contains(stdout, s) {
				t.Errorf("export output lacks %q:\n%s", s, stdout)
			}
		}
		files[format] = out
	}
	noStrayFiles(t, dir, "alice.xep0227", "alice.xep0227.manifest.json", "alice.jsonl", "alice.jsonl.manifest.json")

	b := startNode(t, "localhost")
	out, err := b.verlauf(alicePassword+"\n", "verlauf", "import", "--password-prompt", files[userdata.XEP0227])
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "imported alice@localhost") || !strings.Contains(out, "as a new account") || strings.Contains(out, "interim") {
		t.Errorf("import output:\n%s", out)
	}
	if _, err := b.login("alice@localhost", alicePassword); err != nil {
		t.Fatalf("alice cannot log in on the second server: %v", err)
	}
	again := filepath.Join(dir, "again.xml")
	if out, err := b.verlauf(alicePassword+"\n", "verlauf", "export", "--user", "alice", "--out", again); err != nil {
		t.Fatalf("second export: %v\n%s", err, out)
	}
	checkExport(t, again, want)
	first, _ := os.ReadFile(files[userdata.XEP0227])
	second, _ := os.ReadFile(again)
	if !bytes.Equal(first, second) {
		t.Errorf("the second export differs from the first (%d and %d bytes)", len(first), len(second))
	}
	// Importing the same file again is refused: the account exists.
	out, err = b.verlauf(alicePassword+"\n", "verlauf", "import", "--password-prompt", files[userdata.XEP0227])
	if err == nil || !strings.Contains(err.Error(), "--merge") {
		t.Errorf("second import: %v\n%s", err, out)
	}
}

// A wrong password exports nothing and leaves no file behind; repeated
// failures are throttled like failed logins, so that even the right
// password is refused for a while.
func TestExportRefused(t *testing.T) {
	a := startNode(t, "localhost")
	if out, err := a.verlauf(alicePassword+"\n", "verlauf", "user", "add", "alice"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "alice.xml")
	tests := []struct {
		name, user, password, want string
	}{
		{"wrong password", "alice", "guess", "wrong password for alice@localhost"},
		{"unknown user", "nobody", alicePassword, "wrong password for nobody@localhost, or no such account"},
		{"other domain", "alice@example.org", alicePassword, "not an account of localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, err := a.verlauf(tt.password+"\n", "verlauf", "export", "--user", tt.user, "--out", out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("export: %v, want %q\n%s", err, tt.want, stdout)
			}
			noStrayFiles(t, dir)
		})
	}
	// Five failures in all (config default c2s.auth_failures) block the
	// account.
	for range 4 {
		if _, err := a.verlauf("guess\n", "verlauf", "export", "--user", "alice", "--out", out); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	_, err := a.verlauf(alicePassword+"\n", "verlauf", "export", "--user", "alice", "--out", out)
	if err == nil || !strings.Contains(err.Error(), "too many wrong passwords") {
		t.Errorf("after 5 failures: %v", err)
	}
	noStrayFiles(t, dir)
}

// A malformed file is refused with its line and element, and nothing of
// it is written: no account appears.
func TestImportMalformed(t *testing.T) {
	b := startNode(t, "localhost")
	if out, err := b.verlauf("carols password\n", "verlauf", "user", "add", "carol"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	head := "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='localhost'>\n<user name='mallory' password='secret password'>\n"
	roster := "<query xmlns='jabber:iq:roster'><item jid='bob@example.net' subscription='both'/></query>\n"
	tail := "</user>\n</host>\n</server-data>\n"
	tests := []struct {
		name, body string
		want       []string
	}{
		{"truncated", head + roster, []string{"malformed file", ":6:", "unexpected EOF"}},
		{"bad roster item", head + roster + "<query xmlns='jabber:iq:roster'>\n<item jid='@@' subscription='both'/></query>\n" + tail, []string{"malformed file", ":7:", "item"}},
		{"doctype", "<?xml version='1.0'?>\n<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]>\n<server-data xmlns='urn:xmpp:pie:0'>&lol2;</server-data>\n", []string{"malformed file", ":2:"}},
		{"other domain", strings.Replace(head, "jid='localhost'", "jid='example.org'", 1) + tail, []string{"malformed file", ":3:", "host"}},
		{"missing include", "<?xml version='1.0'?>\n<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\n<xi:include href='hosts/localhost.xml'/></server-data>\n", []string{"malformed file", ":3:", "localhost.xml was not given"}},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".xml")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := b.verlauf("", "verlauf", "import", path)
			if err == nil {
				t.Fatalf("import accepted:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if got := b.users(); !slices.Equal(got, []string{"carol@localhost"}) {
				t.Errorf("users after a refused import: %v", got)
			}
			if ok, err := b.n.accounts.Exists(context.Background(), jid.MustParse("mallory@localhost")); ok || err != nil {
				t.Errorf("mallory exists: %v %v", ok, err)
			}
		})
	}
}

// The operator's bulk import of an ejabberd export (a main file and a
// per-host file it includes, given in any order): accounts come with
// their SCRAM verifiers, their history waits under interim keys that the
// command does not print, and the user's own password opens it.
func TestImportBulkEjabberd(t *testing.T) {
	b := startNode(t, "example.org")
	dir := t.TempDir()
	for _, name := range []string{"ejabberd.xml", "ejabberd_example_org.xml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "userdata", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := b.verlauf("", "verlauf", "import", filepath.Join(dir, "ejabberd_example_org.xml"), filepath.Join(dir, "ejabberd.xml"))
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, want := range []string{
		"imported romeo@example.org from " + filepath.Join(dir, "ejabberd.xml") + " as a new account",
		"offline 1",
		"history sealed under interim keys held by the server until romeo@example.org logs in",
		"imported mercutio@example.org",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := b.users(); !slices.Equal(got, []string{"mercutio@example.org", "romeo@example.org"}) {
		t.Errorf("users: %v", got)
	}
	// Romeo's own password reseals and opens his data.
	exp := filepath.Join(dir, "romeo.xml")
	if out, err := b.verlauf("pencil\n", "verlauf", "export", "--user", "romeo", "--out", exp); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	checkExport(t, exp, map[string]int{userdata.KindOffline: 1, userdata.KindBlocklist: 1})
	data, _ := os.ReadFile(exp)
	if !bytes.Contains(data, []byte("A plague o' both your houses!")) {
		t.Error("romeo's offline message is not in his export")
	}

	// A per-host file alone has nothing to include it.
	_, err = b.verlauf("", "verlauf", "import", filepath.Join(dir, "ejabberd_example_org.xml"))
	if err == nil || !strings.Contains(err.Error(), "no main file") {
		t.Errorf("include alone: %v", err)
	}
}

func TestImportUsage(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.xml"), filepath.Join(dir, "b.xml")
	for _, p := range []string{a, b} {
		os.WriteFile(p, []byte("<server-data xmlns='urn:xmpp:pie:0'/>"), 0o600)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no file", nil, "no file given"},
		{"missing file", []string{filepath.Join(dir, "none.xml")}, "no such file"},
		{"password for two files", []string{"--password-prompt", a, b}, "one user's file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cmdImport(context.Background(), tt.args, strings.NewReader("pw\n"), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v, want %q", err, tt.want)
			}
		})
	}
}

// Mistakes on the command line are said before the password is asked
// and before the server is asked for anything.
func TestExportUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no user", []string{"--out", filepath.Join(dir, "a.xml")}, "--user is required"},
		{"no out", []string{"--user", "alice"}, "--out is required"},
		{"bad format", []string{"--user", "alice", "--out", filepath.Join(dir, "a.xml"), "--format", "csv"}, "not xep0227 or jsonl"},
		{"no such directory", []string{"--user", "alice", "--out", filepath.Join(dir, "none", "a.xml")}, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No password on stdin: asking for it would fail differently.
			err := cmdExport(context.Background(), tt.args, strings.NewReader(""), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v, want %q", err, tt.want)
			}
		})
	}
}

// The server must notice a broken frame rather than allocate what it
// claims.
func TestReadFrameBounds(t *testing.T) {
	var b bytes.Buffer
	writeFrame(&b, frameData, []byte("hello"))
	b.Write([]byte{frameData, 0xff, 0xff, 0xff, 0xff})
	r := bufio.NewReader(&b)
	var buf []byte
	if k, p, err := readFrame(r, &buf); err != nil || k != frameData || string(p) != "hello" {
		t.Fatalf("%c %q %v", k, p, err)
	}
	if _, _, err := readFrame(r, &buf); !errors.Is(err, errFrame) {
		t.Fatalf("oversized frame: %v", err)
	}
}

// BenchmarkExportImport measures the whole path of the command line: an
// export of a user with VERLAUF_BENCH_MESSAGES archived messages (default
// 100 000) through the admin socket to a file, and the import of that
// file into a fresh server with the user's password. It reports
// messages/s and MB/s of each, and the peak RSS of this process (server
// and command line together) during each, from /proc/self/status after a
// reset of the high-water mark. Run it once:
//
//	VERLAUF_BENCH_MESSAGES=1000000 go test -run '^$' -bench ExportImport -benchtime 1x ./cmd/verlauf
func BenchmarkExportImport(b *testing.B) {
	n := 100_000
	if s := os.Getenv("VERLAUF_BENCH_MESSAGES"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil {
			b.Fatal(err)
		}
	}
	a := startNode(b, "localhost")
	if out, err := a.verlauf(alicePassword+"\n", "verlauf", "user", "add", "alice"); err != nil {
		b.Fatalf("user add: %v\n%s", err, out)
	}
	start := time.Now()
	a.seed(jid.MustParse("alice@localhost"), alicePassword, n)
	// Let the MAM index catch up first, or the first export pays for it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	head, err := a.n.store.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.n.runner.WaitFor(ctx, projections.ArchiveName, head); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded and indexed %d messages in %v", n, time.Since(start).Round(time.Millisecond))
	dir := b.TempDir()
	var exportTime, importTime time.Duration
	var size int64
	var exportRSS, importRSS int64
	for i := 0; i < b.N; i++ {
		file := filepath.Join(dir, fmt.Sprintf("alice-%d.xml", i))
		resetPeakRSS(b)
		t0 := time.Now()
		if out, err := a.verlauf(alicePassword+"\n", "verlauf", "export", "--user", "alice", "--out", file); err != nil {
			b.Fatalf("export: %v\n%s", err, out)
		}
		exportTime += time.Since(t0)
		exportRSS = max(exportRSS, peakRSS(b))
		st, err := os.Stat(file)
		if err != nil {
			b.Fatal(err)
		}
		size = st.Size()

		b.StopTimer()
		fresh := startNode(b, "localhost")
		b.StartTimer()
		resetPeakRSS(b)
		t0 = time.Now()
		if out, err := fresh.verlauf(alicePassword+"\n", "verlauf", "import", "--password-prompt", file); err != nil {
			b.Fatalf("import: %v\n%s", err, out)
		}
		importTime += time.Since(t0)
		importRSS = max(importRSS, peakRSS(b))
	}
	msgs := float64(n * b.N)
	mb := float64(size*int64(b.N)) / 1e6
	b.ReportMetric(msgs/exportTime.Seconds(), "export-msgs/s")
	b.ReportMetric(mb/exportTime.Seconds(), "export-MB/s")
	b.ReportMetric(msgs/importTime.Seconds(), "import-msgs/s")
	b.ReportMetric(mb/importTime.Seconds(), "import-MB/s")
	b.ReportMetric(float64(exportRSS)/1e6, "export-peak-RSS-MB")
	b.ReportMetric(float64(importRSS)/1e6, "import-peak-RSS-MB")
	b.Logf("%d messages, file %.1f MB; export %v, import %v", n, float64(size)/1e6, exportTime/time.Duration(b.N), importTime/time.Duration(b.N))
	// VERLAUF_BENCH_OUT keeps the export, to measure the binary with
	// /usr/bin/time -v (README.md).
	if keep := os.Getenv("VERLAUF_BENCH_OUT"); keep != "" {
		if err := os.Rename(filepath.Join(dir, "alice-0.xml"), keep); err != nil {
			b.Fatal(err)
		}
	}
}

// resetPeakRSS resets the process's RSS high-water mark (Linux).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset peak RSS: %v", err)
	}
}

// peakRSS is VmHWM in bytes.
func peakRSS(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}
