// Package e2e drives the real verlauf binary with real clients nobody on
// this project wrote: mellium.im/xmpp from Go and python3-slixmpp from a
// Python script, plus raw bytes for the bad-input cases.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
)

const password = "correct horse battery staple"

// addUser creates an account through the running server's admin socket,
// as an operator would.
func addUser(t *testing.T, s *testserver.Server, name string) string {
	t.Helper()
	out, err := s.Verlauf(password+"\n", "user", "add", name)
	if err != nil {
		t.Fatalf("verlauf user add %s: %v\n%s", name, err, out)
	}
	return name + "@" + s.Domain
}

func login(t *testing.T, s *testserver.Server, user, resource string, mech sasl.Mechanism) *xmppclient.Client {
	t.Helper()
	return xmppclient.MustDial(t, xmppclient.Options{
		Addr: s.C2S, User: user, Password: password, Resource: resource, Mech: mech, TLS: s.TLSConfig(),
	})
}

// slix runs the slixmpp client script and returns the JSON events it
// printed; onEvent, if set, sees each event as it is printed.
func slix(t *testing.T, ctx context.Context, s *testserver.Server, onEvent func(map[string]any), args ...string) ([]map[string]any, error) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "clients", "slix.py")
	host, port, _ := strings.Cut(s.C2S, ":")
	base := []string{script, "--host", host, "--port", port, "--ca", s.CertFile(), "--password", password}
	// Debian's slixmpp is visible only to the system interpreter.
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var events []map[string]any
	var raw strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		raw.Write(sc.Bytes())
		raw.WriteByte('\n')
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			events = append(events, ev)
			if onEvent != nil {
				onEvent(ev)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return events, fmt.Errorf("slixmpp %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, raw.String(), stderr.String())
	}
	return events, nil
}

func find(events []map[string]any, name string) map[string]any {
	for _, e := range events {
		if e["event"] == name {
			return e
		}
	}
	return nil
}

func TestMain(m *testing.M) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: /usr/bin/python3 is missing; run scripts/deps.sh")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
