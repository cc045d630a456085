// Package federation drives verlauf against real peer servers, Prosody and
// ejabberd from Debian, on loopback: each server has its own 127.0.0.x
// address and the test's own CA; the peers find verlauf.test through
// /etc/hosts entries the test adds and removes, and verlauf finds them
// through static routes, as a private deployment would.
//
// TestProsody and TestEjabberd federate with SASL EXTERNAL both ways;
// TestDialback* give the peer a certificate from a CA verlauf does not
// trust, so that dialback carries both directions, or, with verified
// certificates required, the peer is refused; TestHostilePeers plays
// attackers in raw XML; TestRemoteArchive covers history, OTR and carbons
// with a remote partner; BenchmarkFederation compares verlauf↔Prosody with
// Prosody↔Prosody.
package federation

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The loopback address of each server.
const (
	verlaufIP  = "127.0.0.4"
	prosodyIP  = "127.0.0.2"
	ejabberdIP = "127.0.0.3"
	plainIP    = "127.0.0.6" // a scripted peer without TLS
)

// pki is a CA made for one test, and the certificates it issued.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
}

func newPKI(t testing.TB, dir string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "verlauf federation test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{dir: dir, caCert: cert, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(cert)
	writePEM(t, p.caFile(), "CERTIFICATE", der)
	return p
}

func (p *pki) caFile() string { return filepath.Join(p.dir, "ca.crt") }

// issue writes <name>.crt and <name>.key for a server certificate (also
// a client certificate, for SASL EXTERNAL) naming dnsNames.
func (p *pki) issue(t testing.TB, name string, dnsNames ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: dnsNames[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hostsMu serialises edits of /etc/hosts within this test binary.
var hostsMu sync.Mutex

// addHosts adds name → loopback address lines to /etc/hosts, marked so
// that they, and only they, are removed when the test ends.
func addHosts(t testing.TB, entries map[string]string) {
	t.Helper()
	hostsMu.Lock()
	defer hostsMu.Unlock()
	mark := "# verlauf-federation-test " + t.Name()
	f, err := os.OpenFile("/etc/hosts", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("cannot edit /etc/hosts (the federation tests run as root): %v", err)
	}
	for name, ip := range entries {
		if !strings.HasPrefix(ip, "127.") {
			t.Fatalf("%s: only loopback addresses", ip)
		}
		fmt.Fprintf(f, "%s %s %s\n", ip, name, mark)
	}
	f.Close()
	t.Cleanup(func() {
		hostsMu.Lock()
		defer hostsMu.Unlock()
		b, err := os.ReadFile("/etc/hosts")
		if err != nil {
			t.Error(err)
			return
		}
		var keep []string
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if !strings.Contains(l, mark) {
				keep = append(keep, l)
			}
		}
		// Rewritten in place: /etc/hosts may be a bind mount that a
		// rename would not replace.
		if err := os.WriteFile("/etc/hosts", []byte(strings.Join(keep, "")), 0o644); err != nil {
			t.Error(err)
		}
	})
}

// proc is a peer server process, stopped by its PID when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// asUser makes cmd run as the system user name (the Debian packages'
// own users), when the test runs as root.
func asUser(t testing.TB, cmd *exec.Cmd, name string) {
	t.Helper()
	if os.Getuid() != 0 {
		return
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Env = append(os.Environ(), "HOME="+u.HomeDir)
}

func startProc(t testing.TB, name, logFile string, cmd *exec.Cmd) *proc {
	t.Helper()
	out, err := os.Create(logFile + ".stdout")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true // a session of its own: su (in ejabberdctl) refuses a foreign process group
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logFile}
	go func() {
		if err := cmd.Wait(); err != nil {
			fmt.Fprintf(out, "%s: %v\n", name, err)
		}
		out.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		// The process group: ejabberd's shell script starts the Erlang
		// VM and its helpers as children.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			for _, f := range []string{logFile, logFile + ".stdout"} {
				if b, err := os.ReadFile(f); err == nil {
					t.Logf("%s %s:\n%s", name, filepath.Base(f), tail(string(b), 80))
				}
			}
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitListening waits until addr accepts TCP connections.
func waitListening(t testing.TB, p *proc, addr string, total time.Duration) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %s", p.name, addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %v", p.name, addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// need skips nothing: a missing peer server fails the test with what to
// install, since CI installs them.
func need(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s is missing: apt-get install -y prosody ejabberd (scripts/deps.sh)", b)
		}
	}
}

// peerUser is a slixmpp client logged into a peer server (peer.py).
type peerUser struct {
	t      *testing.T
	jid    string
	stdin  io.WriteCloser
	events chan map[string]any
	cmd    *exec.Cmd
}

func startPeerUser(t *testing.T, jid, password, host string, port int, ca string) *peerUser {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("/usr/bin/python3", filepath.Join(filepath.Dir(file), "peer.py"),
		"--jid", jid, "--password", password, "--host", host, "--port", fmt.Sprint(port), "--ca", ca)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &peerUser{t: t, jid: jid, stdin: in, events: make(chan map[string]any, 256), cmd: cmd}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				u.events <- ev
			}
		}
		close(u.events)
	}()
	t.Cleanup(func() {
		_ = u.send(map[string]any{"cmd": "quit"})
		in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("peer.py %s stderr:\n%s", jid, tail(stderr.String(), 30))
		}
	})
	u.expect("session", func(map[string]any) bool { return true })
	return u
}

// in returns u for use in the (sub)test t, so that its failures end t.
func (u *peerUser) in(t *testing.T) *peerUser {
	c := *u
	c.t = t
	return &c
}

func (u *peerUser) send(cmd map[string]any) error {
	b, _ := json.Marshal(cmd)
	_, err := u.stdin.Write(append(b, '\n'))
	return err
}

func (u *peerUser) do(cmd map[string]any) {
	u.t.Helper()
	if err := u.send(cmd); err != nil {
		u.t.Fatalf("%s: %v", u.jid, err)
	}
}

// expect waits for the next event of kind that matches; earlier ones are
// skipped.
func (u *peerUser) expect(kind string, match func(map[string]any) bool) map[string]any {
	u.t.Helper()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-u.events:
			if !ok {
				u.t.Fatalf("%s: client ended waiting for %s", u.jid, kind)
			}
			if ev["event"] == "error" {
				u.t.Fatalf("%s: %v", u.jid, ev["error"])
			}
			if ev["event"] == kind && match(ev) {
				return ev
			}
		case <-timer.C:
			u.t.Fatalf("%s: no %s event within 30s", u.jid, kind)
		}
	}
}
