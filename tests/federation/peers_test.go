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
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"verlauf.im/verlauf/tests/peers"
)

// The loopback address of each server.
const (
	verlaufIP  = "127.0.0.4"
	prosodyIP  = "127.0.0.2"
	ejabberdIP = "127.0.0.3"
	plainIP    = "127.0.0.6" // a scripted peer without TLS
)

// setUp makes the test's CA and names verlauf.test and the peer server
// in /etc/hosts; in -short mode it skips the test, which starts real
// servers.
func setUp(t *testing.T, peerDomain, peerIP string) *peers.CA {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the server of " + peerDomain)
	}
	peers.AddHosts(t, map[string]string{"verlauf.test": verlaufIP, peerDomain: peerIP})
	return peers.NewCA(t, t.TempDir())
}

// untrustedCA is a second CA that verlauf does not trust: a peer with a
// certificate from it can only be authenticated by dialback.
func untrustedCA(t testing.TB, p *peers.CA) *peers.CA {
	t.Helper()
	return p.Another(t, "other-ca")
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
			t.Logf("peer.py %s stderr:\n%s", jid, peers.Tail(stderr.String(), 30))
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
