package peers

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Need fails the test, never skips it, when a tool is missing: CI
// installs them with scripts/deps.sh.
func Need(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s is missing: run scripts/deps.sh (apt-get install -y prosody ejabberd python3-slixmpp)", b)
		}
	}
}

// NeedRoot fails the test unless it runs as root: the peer servers run
// as their own system users, and /etc/hosts is edited.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("this test runs peer servers as their own users and must run as root")
	}
}

// NeedSlixmpp fails the test when the system Python lacks slixmpp, which
// the test's scripted clients use.
func NeedSlixmpp(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("/usr/bin/python3", "-c", "import slixmpp").CombinedOutput(); err != nil {
		t.Fatalf("python3-slixmpp is missing: run scripts/deps.sh: %v: %s", err, out)
	}
}

// Run runs cmd and fails the test with its output if it fails.
func Run(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// AsUser makes cmd run as the system user name (the Debian packages' own
// users, which the servers insist on).
func AsUser(t testing.TB, cmd *exec.Cmd, name string) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	cmd.Env = append(os.Environ(), "HOME="+u.HomeDir)
}

// Chown gives path (recursively) to the system user owner, and makes the
// directories above it, up to the system's temporary directory,
// traversable, since t.TempDir makes them private.
func Chown(t testing.TB, path, owner string) {
	t.Helper()
	Traversable(t, filepath.Dir(path))
	Run(t, exec.Command("chown", "-R", owner+":"+owner, path))
}

// Traversable makes dir and its parents below the system's temporary
// directory searchable by all.
func Traversable(t testing.TB, dir string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o555); err != nil {
			t.Fatal(err)
		}
	}
}

// Proc is a server process of one test, stopped with its process group
// when the test ends.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd in a session of its own, with its output in
// logFile.stdout, and registers its stop: SIGTERM to its process group,
// SIGKILL after 15s. When the test failed, the tails of logFile (the
// server's own log) and logFile.stdout are logged.
func Start(t testing.TB, name, logFile string, cmd *exec.Cmd) *Proc {
	t.Helper()
	out, err := os.Create(logFile + ".stdout")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true // su (in ejabberdctl) refuses a foreign process group
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
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
					t.Logf("%s %s:\n%s", name, filepath.Base(f), Tail(string(b), 80))
				}
			}
		}
	})
	return p
}

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// WaitListening waits until addr accepts TCP connections, and fails the
// test if the process exits first or total passes.
func (p *Proc) WaitListening(t testing.TB, addr string, total time.Duration) {
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
			t.Fatalf("%s exited before listening on %s", p.Name, addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %v", p.Name, addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
