// Package testserver starts the real verlauf binary for end-to-end tests,
// NATS-style: each test gets its own server with a temporary data directory
// and free loopback ports, and helpers to stop, kill and restart it.
//
// The binary is $VERLAUF_BIN (set by `make test`), or built once per test
// binary from ./cmd/verlauf.
package testserver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options adjust a test server. Zero values mean the server's defaults.
type Options struct {
	Domain string
	// Extra is appended to the generated TOML config, for sections the
	// test wants to change ([accounts], [c2s] limits, …). Keys that the
	// generated config already sets must not be repeated.
	Extra string
	// C2SExtra is added inside the [c2s] section.
	C2SExtra string
}

// Server is a running verlauf process.
type Server struct {
	t       testing.TB
	Bin     string
	Dir     string // data directory
	Config  string // config file path
	Domain  string
	C2S     string // host:port of the STARTTLS listener
	C2STLS  string // host:port of the direct-TLS listener
	API     string // host:port of the HTTPS sync API
	LogPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start writes a config and starts verlauf, waiting until it logs that it is
// ready. The server is stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	s := &Server{t: t, Bin: Binary(t), Dir: t.TempDir(), Domain: opts.Domain}
	s.C2S, s.C2STLS, s.API = FreeAddr(t), FreeAddr(t), FreeAddr(t)
	s.Config = filepath.Join(s.Dir, "verlauf.toml")
	s.LogPath = filepath.Join(s.Dir, "verlauf.log")
	cfg := fmt.Sprintf(`[server]
domain = %q
data_dir = %q

[log]
level = "debug"
format = "json"

[c2s]
listen = %q
listen_tls = %q
%s

%s
`, opts.Domain, filepath.Join(s.Dir, "data"), s.C2S, s.C2STLS, opts.C2SExtra, opts.Extra)
	if !strings.Contains(opts.Extra, "[syncapi]") {
		cfg += fmt.Sprintf("\n[syncapi]\nlisten = %q\n", s.API)
	}
	if !strings.Contains(opts.Extra, "[s2s]") {
		// Test servers run side by side and must not all claim 5269.
		cfg += "\n[s2s]\nlisten = \"\"\n"
	}
	if err := os.WriteFile(s.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.Bin, "serve", "--config", s.Config)
	pr, pw, err := os.Pipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = pw
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start verlauf: %v", err)
	}
	pw.Close()
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		// Copy the log to the file and watch for the ready line.
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Bytes()
			logf.Write(append(line, '\n'))
			var rec struct{ Msg string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "verlauf ready" {
				once.Do(func() { close(ready) })
			}
		}
		logf.Close()
	}()
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
	case <-done:
		s.t.Fatalf("verlauf exited before it was ready; log:\n%s", s.Log())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		s.t.Fatalf("verlauf not ready after 30s; log:\n%s", s.Log())
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
}

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// Stop sends SIGTERM and waits for a clean exit.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			s.t.Errorf("verlauf exited with %d on SIGTERM; log:\n%s", code, tail(s.Log(), 4000))
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		s.t.Errorf("verlauf did not stop within 20s of SIGTERM")
	}
}

// Kill sends SIGKILL, as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart stops the server (gracefully) and starts it again on the same
// data directory and ports.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Running reports whether the process is still alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// PID is the server's process id.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Verlauf runs a verlauf command-line subcommand against this server's
// config, with stdin, and returns its combined output.
func (s *Server) Verlauf(stdin string, args ...string) (string, error) {
	args = append(append([]string{}, args...), "--config", s.Config)
	cmd := exec.Command(s.Bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// CertPool trusts the server's self-signed certificate.
func (s *Server) CertPool() *x509.CertPool {
	pem, err := os.ReadFile(filepath.Join(s.Dir, "data", "tls", s.Domain+".crt"))
	if err != nil {
		s.t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		s.t.Fatal("server certificate is not PEM")
	}
	return p
}

// TLSConfig is what a client needs to verify the server.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{ServerName: s.Domain, RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12}
}

// CertFile is the path of the server's self-signed certificate.
func (s *Server) CertFile() string {
	return filepath.Join(s.Dir, "data", "tls", s.Domain+".crt")
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Binary returns the verlauf binary to test.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("VERLAUF_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "verlauf-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "verlauf")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/verlauf")
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// WaitFor polls fn every 20ms until it returns nil or total has passed.
func WaitFor(t testing.TB, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v: %v", total, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
