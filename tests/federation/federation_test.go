package federation

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
	"verlauf.im/verlauf/xmppfront/stream"
)

// verlaufOptions shape a verlauf node for verlauf.test on verlaufIP:5269.
type verlaufOptions struct {
	// routes map peer domains to host:port.
	routes map[string]string
	// requireVerified turns dialback off: only peers whose certificate
	// verifies for their domain are accepted.
	requireVerified bool
	// extra is appended to the config.
	extra string
	// users are the local parts of its users, whose password is
	// <user>-password; alice and carol when nil.
	users []string
}

// verlaufNode starts verlauf as verlauf.test on verlaufIP:5269 with a
// certificate from the test CA, routes to the given peers, and alice.
func verlaufNode(t *testing.T, p *pki, routes map[string]string) (*testserver.Server, *xmppclient.Client) {
	t.Helper()
	s := startVerlauf(t, p, verlaufOptions{routes: routes})
	return s, login(t, s, p, "alice")
}

// startVerlauf starts verlauf.test with a certificate from p, whose CA is
// also the one it trusts for peers, and its users.
func startVerlauf(t testing.TB, p *pki, o verlaufOptions) *testserver.Server {
	t.Helper()
	cert, key := p.issue(t, "verlauf.test", "verlauf.test")
	var rs strings.Builder
	for d, a := range o.routes {
		fmt.Fprintf(&rs, "%q = %q\n", d, a)
	}
	s := testserver.Start(t, testserver.Options{Domain: "verlauf.test", Extra: fmt.Sprintf(`
[tls]
cert_file = %q
key_file = %q

[s2s]
listen = %q
ca_file = %q
require_verified_certificates = %t

[s2s.routes]
%s
%s
`, cert, key, net.JoinHostPort(verlaufIP, "5269"), p.caFile(), o.requireVerified, rs.String(), o.extra)})
	if o.users == nil {
		o.users = []string{"alice", "carol"}
	}
	for _, u := range o.users {
		if out, err := s.Verlauf(u+"-password\n", "user", "add", u); err != nil {
			t.Fatalf("user add %s: %v: %s", u, err, out)
		}
	}
	return s
}

// login logs user (alice or carol) in to verlauf.test with a resource
// the server picks, fetches the roster and sends presence.
func login(t testing.TB, s *testserver.Server, p *pki, user string) *xmppclient.Client {
	t.Helper()
	c := xmppclient.MustDial(t, xmppclient.Options{
		Addr: s.C2S, User: user + "@verlauf.test", Password: user + "-password",
		TLS: &tls.Config{ServerName: "verlauf.test", RootCAs: p.pool, MinVersion: tls.VersionTLS12},
	})
	c.Send(t, `<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	c.ExpectID(t, "r1")
	c.Send(t, `<presence/>`)
	return c
}

// prosodyOptions shape a Prosody instance.
type prosodyOptions struct {
	domain, ip string
	// cert issues its certificate; the test CA when nil.
	cert *pki
	// trust is the CA file it verifies peers with; the test CA's when "".
	trust string
	// insecure lets it fall back to dialback with peers whose
	// certificate it cannot verify (s2s_secure_auth = false).
	insecure bool
	// users maps local parts to passwords; bob when nil.
	users map[string]string
	// logLevel is "debug" when "".
	logLevel string
}

// prosodyNode is a running Prosody.
type prosodyNode struct {
	prosodyOptions
	dir    string
	caFile string // the CA of its certificate, for its clients
}

// startProsody runs Prosody for prosody.test on prosodyIP with its own
// config, data directory and certificates; bob is its user.
func startProsody(t testing.TB, p *pki) *prosodyNode {
	t.Helper()
	return runProsody(t, p, prosodyOptions{domain: "prosody.test", ip: prosodyIP})
}

// runProsody runs a Prosody with its own config, data directory and
// certificate under p's directory.
func runProsody(t testing.TB, p *pki, o prosodyOptions) *prosodyNode {
	t.Helper()
	need(t, "prosody", "prosodyctl")
	if o.cert == nil {
		o.cert = p
	}
	if o.trust == "" {
		o.trust = p.caFile()
	}
	if o.users == nil {
		o.users = map[string]string{"bob": "bob-password"}
	}
	if o.logLevel == "" {
		o.logLevel = "debug"
	}
	n := &prosodyNode{prosodyOptions: o, dir: filepath.Join(p.dir, o.domain), caFile: o.cert.caFile()}
	if err := os.MkdirAll(filepath.Join(n.dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	cert, key := o.cert.issue(t, o.domain, o.domain)
	cfg := filepath.Join(n.dir, "prosody.cfg.lua")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `-- Throwaway Prosody for verlauf's federation tests.
daemonize = false
pidfile = %[1]q
data_path = %[2]q
log = { %[10]s = %[3]q }
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix"; "presence"; "message"; "iq" }
interfaces = { %[4]q }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = %[11]t
authentication = "internal_plain"
-- Prosody's resolver (libunbound) reads /etc/hosts only when told to:
-- that is where the test puts verlauf.test.
unbound = { hoststxt = "/etc/hosts" }
certificates = %[5]q
ssl = { certificate = %[6]q; key = %[7]q; cafile = %[8]q }
VirtualHost %[9]q
`, filepath.Join(n.dir, "prosody.pid"), filepath.Join(n.dir, "data"), filepath.Join(n.dir, "prosody.log"),
		o.ip, n.dir, cert, key, o.trust, o.domain, o.logLevel, !o.insecure), 0o644); err != nil {
		t.Fatal(err)
	}
	// Prosody drops root for its own user, which must read all of it.
	for _, d := range []string{filepath.Dir(p.dir), p.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "prosody:prosody", p.dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	for u, pw := range o.users {
		if out, err := exec.Command("prosodyctl", "--config", cfg, "register", u, o.domain, pw).CombinedOutput(); err != nil {
			t.Fatalf("prosodyctl register: %v: %s", err, out)
		}
	}
	cmd := exec.Command("prosody", "--config", cfg)
	asUser(t, cmd, "prosody") // it refuses to run as root
	pr := startProc(t, "prosody "+o.domain, filepath.Join(n.dir, "prosody.log"), cmd)
	waitListening(t, pr, net.JoinHostPort(o.ip, "5222"), 20*time.Second)
	waitListening(t, pr, net.JoinHostPort(o.ip, "5269"), 5*time.Second)
	return n
}

// user starts peer.py as one of the node's users.
func (n *prosodyNode) user(t *testing.T, name string) *peerUser {
	t.Helper()
	return startPeerUser(t, name+"@"+n.domain, n.users[name], n.ip, 5222, n.caFile)
}

// exchange proves a verlauf user and a peer user can be contacts: the
// subscription handshake, presence both ways, messages both ways, IQ
// pings to the servers and to a full JID across.
func exchange(t *testing.T, alice *xmppclient.Client, bob *peerUser, peerDomain string) {
	bobJID := bob.jid
	aliceFull := alice.JID.String()
	isFrom := func(bare string) func(*stream.Element) bool {
		return func(e *stream.Element) bool { return strings.HasPrefix(e.Attr("from"), bare) }
	}
	t.Run("subscription and presence", func(t *testing.T) {
		bob := bob.in(t)
		alice.Send(t, fmt.Sprintf(`<presence to='%s' type='subscribe'/>`, bobJID))
		bob.expect("presence", func(ev map[string]any) bool { return ev["type"] == "subscribe" })
		// bob approves and asks back, and his presence follows his
		// approval; the peer may send these in any order.
		expectAll(t, alice, map[string]func(*stream.Element) bool{
			"subscribed from bob": func(e *stream.Element) bool {
				return e.Name.Local == "presence" && e.Attr("type") == "subscribed" && isFrom(bobJID)(e)
			},
			"bob's subscription request": func(e *stream.Element) bool {
				return e.Name.Local == "presence" && e.Attr("type") == "subscribe" && isFrom(bobJID)(e)
			},
			"bob's presence": func(e *stream.Element) bool {
				return e.Name.Local == "presence" && e.Attr("type") == "" && isFrom(bobJID+"/")(e)
			},
		})
		alice.Send(t, fmt.Sprintf(`<presence to='%s' type='subscribed'/>`, bobJID))
		bob.expect("presence", func(ev map[string]any) bool { return ev["type"] == "subscribed" })
		// Now that bob is a subscriber, he sees alice come and go.
		alice.Send(t, `<presence><status>here</status></presence>`)
		bob.expect("presence", func(ev map[string]any) bool {
			return ev["type"] == "available" && ev["frm"] == aliceFull
		})
	})
	t.Run("messages", func(t *testing.T) {
		bob := bob.in(t)
		alice.Send(t, fmt.Sprintf(`<message to='%s' type='chat' id='m1'><body>hello from verlauf</body></message>`, bobJID))
		bob.expect("message", func(ev map[string]any) bool {
			return ev["body"] == "hello from verlauf" && ev["frm"] == aliceFull
		})
		bob.do(map[string]any{"cmd": "message", "to": "alice@verlauf.test", "body": "hello from " + peerDomain})
		alice.Expect(t, "bob's message", func(e *stream.Element) bool {
			b := e.Child("body", "")
			return e.Name.Local == "message" && b != nil && b.Text() == "hello from "+peerDomain && isFrom(bobJID)(e)
		})
	})
	t.Run("ping", func(t *testing.T) {
		bob := bob.in(t)
		alice.Send(t, fmt.Sprintf(`<iq type='get' id='ping1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, peerDomain))
		if r := alice.ExpectID(t, "ping1"); r.Attr("type") != "result" {
			t.Fatalf("ping of %s: %s", peerDomain, r)
		}
		bob.do(map[string]any{"cmd": "ping", "to": "verlauf.test", "id": "server"})
		if ev := bob.expect("pong", func(ev map[string]any) bool { return ev["id"] == "server" }); ev["ok"] != true {
			t.Fatalf("%s pinging verlauf.test: %v", bobJID, ev)
		}
		// To alice's full JID: her client answers.
		bob.do(map[string]any{"cmd": "ping", "to": aliceFull, "id": "alice"})
		iq := alice.Expect(t, "bob's ping", func(e *stream.Element) bool {
			return e.Name.Local == "iq" && e.Attr("type") == "get" && isFrom(bobJID)(e)
		})
		alice.Send(t, fmt.Sprintf(`<iq type='result' id='%s' to='%s'/>`, iq.Attr("id"), iq.Attr("from")))
		if ev := bob.expect("pong", func(ev map[string]any) bool { return ev["id"] == "alice" }); ev["ok"] != true {
			t.Fatalf("%s pinging alice: %v", bobJID, ev)
		}
	})
}

// expectAll waits until each named match has been seen, in any order.
func expectAll(t *testing.T, c *xmppclient.Client, want map[string]func(*stream.Element) bool) {
	t.Helper()
	for len(want) > 0 {
		var names []string
		for n := range want {
			names = append(names, n)
		}
		el := c.Expect(t, strings.Join(names, ", "), func(e *stream.Element) bool {
			for _, m := range want {
				if m(e) {
					return true
				}
			}
			return false
		})
		for n, m := range want {
			if m(el) {
				delete(want, n)
			}
		}
	}
}

func TestProsody(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody")
	}
	p := newPKI(t, t.TempDir())
	addHosts(t, map[string]string{"verlauf.test": verlaufIP, "prosody.test": prosodyIP})
	startProsody(t, p)
	s, alice := verlaufNode(t, p, map[string]string{"prosody.test": net.JoinHostPort(prosodyIP, "5269")})
	bob := startPeerUser(t, "bob@prosody.test", "bob-password", prosodyIP, 5222, p.caFile())
	exchange(t, alice, bob, "prosody.test")
	expectMethod(t, s, "prosody.test", "EXTERNAL")
}

// ejabberdOptions shape the ejabberd instance for ejabberd.test.
type ejabberdOptions struct {
	// cert issues its certificate; the test CA when nil.
	cert *pki
	// trust is the CA file it verifies peers with; the test CA's when "".
	trust string
	// dialback loads mod_s2s_dialback, for peers whose certificate it
	// cannot verify.
	dialback bool
}

// ejabberdNode is a running ejabberd.
type ejabberdNode struct {
	caFile string // the CA of its certificate, for its clients
}

// startEjabberd runs ejabberd for ejabberd.test on ejabberdIP with its own
// config, spool, Erlang node name and certificates; bob is its user.
func startEjabberd(t *testing.T, p *pki) {
	t.Helper()
	runEjabberd(t, p, ejabberdOptions{})
}

func runEjabberd(t *testing.T, p *pki, o ejabberdOptions) *ejabberdNode {
	t.Helper()
	need(t, "ejabberdctl")
	if o.cert == nil {
		o.cert = p
	}
	if o.trust == "" {
		o.trust = p.caFile()
	}
	dir := filepath.Join(p.dir, "ejabberd")
	for _, d := range []string{"db", "logs", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := o.cert.issue(t, "ejabberd.test", "ejabberd.test")
	certPEM, _ := os.ReadFile(cert)
	keyPEM, _ := os.ReadFile(key)
	pemFile := filepath.Join(dir, "ejabberd.test.pem")
	if err := os.WriteFile(pemFile, append(certPEM, keyPEM...), 0o640); err != nil {
		t.Fatal(err)
	}
	dialback := ""
	if o.dialback {
		dialback = "  mod_s2s_dialback: {}\n"
	}
	cfg := filepath.Join(dir, "ejabberd.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `# Throwaway ejabberd for verlauf's federation tests.
hosts:
  - ejabberd.test
loglevel: info
certfiles:
  - %[1]q
ca_file: %[2]q
s2s_use_starttls: required
listen:
  -
    port: 5222
    ip: %[3]q
    module: ejabberd_c2s
    starttls_required: true
  -
    port: 5269
    ip: %[3]q
    module: ejabberd_s2s_in
auth_method: internal
acl:
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
  mod_disco: {}
  mod_ping: {}
%[4]s`, pemFile, o.trust, ejabberdIP, dialback), 0o644); err != nil {
		t.Fatal(err)
	}
	ctl := filepath.Join(dir, "ejabberdctl.cfg")
	if err := os.WriteFile(ctl, []byte("ERLANG_NODE=verlauffed@localhost\nERL_DIST_PORT=25399\nINET_DIST_INTERFACE=127.0.0.1\nEJABBERD_BYPASS_WARNINGS=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(p.dir), p.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "ejabberd:ejabberd", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	args := []string{"--config", cfg, "--ctl-config", ctl, "--spool", filepath.Join(dir, "db"), "--logs", filepath.Join(dir, "logs")}
	ctlCmd := func(extra ...string) *exec.Cmd {
		c := exec.Command("ejabberdctl", append(append([]string{}, args...), extra...)...)
		c.Env = append(os.Environ(), "HOME="+filepath.Join(dir, "home"))
		return c
	}
	cmd := ctlCmd("foreground")
	pr := startProc(t, "ejabberd", filepath.Join(dir, "logs", "ejabberd.log"), cmd)
	// The Erlang VM runs under su, outside the process group that the
	// generic cleanup signals: stop it the way its tools do, and wait
	// until it is gone. Registered after startProc, so it runs first.
	t.Cleanup(func() {
		if out, err := ctlCmd("stop").CombinedOutput(); err != nil {
			t.Logf("ejabberdctl stop: %v: %s", err, out)
		}
		if out, err := ctlCmd("stopped").CombinedOutput(); err != nil {
			t.Logf("ejabberdctl stopped: %v: %s", err, out)
		}
		select {
		case <-pr.done:
		case <-time.After(30 * time.Second):
			t.Error("ejabberd still running 30s after stop")
		}
	})
	waitListening(t, pr, net.JoinHostPort(ejabberdIP, "5222"), 60*time.Second)
	if out, err := ctlCmd("register", "bob", "ejabberd.test", "bob-password").CombinedOutput(); err != nil {
		t.Fatalf("ejabberdctl register: %v: %s", err, out)
	}
	return &ejabberdNode{caFile: o.cert.caFile()}
}

func TestEjabberd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ejabberd")
	}
	p := newPKI(t, t.TempDir())
	addHosts(t, map[string]string{"verlauf.test": verlaufIP, "ejabberd.test": ejabberdIP})
	startEjabberd(t, p)
	s, alice := verlaufNode(t, p, map[string]string{"ejabberd.test": net.JoinHostPort(ejabberdIP, "5269")})
	bob := startPeerUser(t, "bob@ejabberd.test", "bob-password", ejabberdIP, 5222, p.caFile())
	exchange(t, alice, bob, "ejabberd.test")
	expectMethod(t, s, "ejabberd.test", "EXTERNAL")
}
