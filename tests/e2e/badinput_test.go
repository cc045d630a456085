package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/sasl"

	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
)

const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"

// rawUntilClosed writes the input and reads until the server closes the
// connection, returning everything it said.
func rawUntilClosed(t *testing.T, c net.Conn, input string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, input); err != nil {
		t.Fatalf("write: %v", err)
	}
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	return string(b)
}

// tlsLogin opens a raw TLS stream and authenticates with PLAIN, so the
// test can write bytes no client library would.
func tlsLogin(t *testing.T, s *testserver.Server, user string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := tls.Dial("tcp", s.C2STLS, &tls.Config{ServerName: s.Domain, RootCAs: s.CertPool(), NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	readUntil := func(marker string) string {
		var sb strings.Builder
		for !strings.Contains(sb.String(), marker) {
			b, err := r.ReadByte()
			if err != nil {
				t.Fatalf("waiting for %q: %v (got %q)", marker, err, sb.String())
			}
			sb.WriteByte(b)
		}
		return sb.String()
	}
	io.WriteString(conn, header)
	readUntil("</stream:features>")
	name, _, _ := strings.Cut(user, "@")
	cred := []byte("\x00" + name + "\x00" + password)
	fmt.Fprintf(conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64(cred))
	if out := readUntil("/>"); !strings.Contains(out, "success") {
		t.Fatalf("PLAIN: %s", out)
	}
	io.WriteString(conn, header)
	readUntil("</stream:features>")
	io.WriteString(conn, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>")
	readUntil("</iq>")
	return conn, r
}

func b64(b []byte) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var sb strings.Builder
	for i := 0; i < len(b); i += 3 {
		var n uint32
		k := min(3, len(b)-i)
		for j := range 3 {
			n <<= 8
			if j < k {
				n |= uint32(b[i+j])
			}
		}
		for j := range 4 {
			if j <= k {
				sb.WriteByte(enc[(n>>(18-6*j))&63])
			} else {
				sb.WriteByte('=')
			}
		}
	}
	return sb.String()
}

// Each bad input gets the error the RFC prescribes, while a witness
// session on the same server keeps working and nothing is written.
func TestBadInput(t *testing.T) {
	s := testserver.Start(t, testserver.Options{C2SExtra: "max_stanza_size = 20000"})
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	witness := login(t, s, bob, "", sasl.ScramSha256)

	before := []struct{ name, input, want string }{
		{"malformed XML", header + "<message><body>x</message>", "not-well-formed"},
		{"DTD", "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]>" + header, "restricted-xml"},
		{"billion laughs", header + "<message><body>&lol9;</body></message>", "not-well-formed"},
		{"comment", header + "<!-- hi -->", "restricted-xml"},
		{"unknown stream namespace", "<stream:stream xmlns='jabber:client' xmlns:stream='urn:example:nope' to='localhost' version='1.0'>", "invalid-namespace"},
		{"stanza before authentication", header + "<message to='bob@localhost'><body>x</body></message>", "not-authorized"},
		{"wrong host", strings.Replace(header, "to='localhost'", "to='elsewhere.example'", 1), "host-unknown"},
	}
	for _, tt := range before {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.C2S)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			out := rawUntilClosed(t, c, tt.input)
			if !strings.Contains(out, "<"+tt.want) {
				t.Fatalf("server said %q, want a %s stream error", out, tt.want)
			}
			pingServer(t, witness, s.Domain, "w-"+strings.ReplaceAll(tt.name, " ", "-"))
		})
	}

	after := []struct{ name, input, want string }{
		{"oversized stanza", "<message to='bob@localhost'><body>" + strings.Repeat("x", 30000) + "</body></message>", "<policy-violation"},
		{"spoofed from", "<message from='bob@localhost/x' to='bob@localhost'><body>x</body></message>", "<invalid-from"},
		{"two children in a get", "<iq type='get' id='two'><query xmlns='jabber:iq:roster'/><ping xmlns='urn:xmpp:ping'/></iq>", "<bad-request"},
		{"roster set for another user", "<iq type='set' id='other' to='bob@localhost'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>", "<forbidden"},
	}
	for _, tt := range after {
		t.Run(tt.name, func(t *testing.T) {
			conn, r := tlsLogin(t, s, alice)
			io.WriteString(conn, tt.input)
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			var sb strings.Builder
			for !strings.Contains(sb.String(), tt.want) {
				b, err := r.ReadByte()
				if err != nil {
					t.Fatalf("no %s; server said %q (%v)", tt.want, sb.String(), err)
				}
				sb.WriteByte(b)
			}
			pingServer(t, witness, s.Domain, "w-"+strings.ReplaceAll(tt.name, " ", "-"))
		})
	}

	// Nothing of the above reached bob's roster or anyone's data.
	witness.Send(t, "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
	if q := witness.ExpectID(t, "roster").Child("query", "jabber:iq:roster"); q.Child("item", "jabber:iq:roster") != nil {
		t.Fatalf("bob's roster changed: %s", q)
	}
	if !s.Running() {
		t.Fatal("the server died")
	}
}

// Ten wrong passwords in a row throttle that account; the right password
// is refused while throttled, and other users log in meanwhile.
func TestWrongPasswordsAreThrottled(t *testing.T) {
	s := testserver.Start(t, testserver.Options{C2SExtra: "auth_failures = 5\nauth_penalty = '1m'"})
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	for i := range 10 {
		_, err := xmppclient.Dial(ctxT(t, 10*time.Second), xmppclient.Options{
			Addr: s.C2S, User: alice, Password: fmt.Sprintf("guess %d", i), Mech: sasl.ScramSha256, TLS: s.TLSConfig(),
		})
		if err == nil {
			t.Fatalf("guess %d logged in", i)
		}
	}
	_, err := xmppclient.Dial(ctxT(t, 10*time.Second), xmppclient.Options{
		Addr: s.C2S, User: alice, Password: password, Mech: sasl.ScramSha256, TLS: s.TLSConfig(),
	})
	if err == nil || !strings.Contains(err.Error(), "temporary-auth-failure") {
		t.Fatalf("right password while throttled: %v, want temporary-auth-failure", err)
	}
	login(t, s, bob, "", sasl.ScramSha256)
}

// The command line manages accounts of the running server.
func TestUserCommandsWhileRunning(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	alice := addUser(t, s, "alice")
	if out, err := s.Verlauf(password+"\n", "user", "add", "alice"); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("adding alice twice: %v %s", err, out)
	}
	testserver.WaitFor(t, 10*time.Second, func() error {
		out, err := s.Verlauf("", "user", "list")
		if err != nil || !strings.Contains(out, alice) {
			return fmt.Errorf("list: %v %q", err, out)
		}
		return nil
	})
	c := login(t, s, alice, "", sasl.ScramSha256)
	if out, err := s.Verlauf("new password\n", "user", "passwd", "alice"); err != nil {
		t.Fatalf("passwd: %v %s", err, out)
	}
	if _, err := xmppclient.Dial(ctxT(t, 10*time.Second), xmppclient.Options{Addr: s.C2S, User: alice, Password: password, TLS: s.TLSConfig()}); err == nil {
		t.Fatal("the old password still works")
	}
	if _, err := xmppclient.Dial(ctxT(t, 10*time.Second), xmppclient.Options{Addr: s.C2S, User: alice, Password: "new password", TLS: s.TLSConfig()}); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if out, err := s.Verlauf("", "user", "delete", "alice"); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}
	if err := c.Ended(t); err == nil || !strings.Contains(err.Error(), "not-authorized") {
		t.Fatalf("the deleted user's session ended with %v, want not-authorized", err)
	}
	if _, err := xmppclient.Dial(ctxT(t, 10*time.Second), xmppclient.Options{Addr: s.C2S, User: alice, Password: "new password", TLS: s.TLSConfig()}); err == nil {
		t.Fatal("a deleted account logged in")
	}
	if out, err := s.Verlauf("", "user", "add", "x@elsewhere.example"); err == nil {
		t.Fatalf("added a user of another domain: %s", out)
	}
}

// Connections that never send a byte are closed after the idle timeout
// and the server gives their resources back.
func TestIdleConnectionsAreClosed(t *testing.T) {
	const n = 10000
	// Each process holds one end of every connection; the server inherits
	// the limit from this process.
	raiseFileLimit(t, n+2000)
	pprof := testserver.FreeAddr(t)
	s := testserver.Start(t, testserver.Options{
		C2SExtra: fmt.Sprintf("idle_timeout = '3s'\nmax_per_address = %d", 2*n),
		Extra:    fmt.Sprintf("[debug]\npprof = %q", pprof),
	})
	bob := addUser(t, s, "bob")
	fdsBefore := openFDs(t, s.PID())
	heapBefore := heapInuse(t, pprof)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", s.C2S)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	rss := rssKiB(t, s.PID())
	heapDuring := heapInuse(t, pprof)
	t.Logf("%d idle connections: server RSS %d MiB, Go heap in use %d MiB (%d before), %d fds",
		n, rss/1024, heapDuring>>20, heapBefore>>20, openFDs(t, s.PID()))
	// Every one of them is closed by the server after the timeout.
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadAll(c); err == nil {
			closed++
		}
	}
	if closed != n {
		t.Fatalf("%d of %d idle connections closed cleanly by the server", closed, n)
	}
	testserver.WaitFor(t, 10*time.Second, func() error {
		if fds := openFDs(t, s.PID()); fds > fdsBefore+5 {
			return fmt.Errorf("server holds %d fds, %d before", fds, fdsBefore)
		}
		return nil
	})
	// The memory they held returns: the Go heap in use after a GC is back
	// near where it was (the connections' buffers and goroutines are gone).
	testserver.WaitFor(t, 10*time.Second, func() error {
		if h := heapInuse(t, pprof); h > heapBefore+(heapDuring-heapBefore)/4 {
			return fmt.Errorf("heap in use %d MiB after closing, %d before, %d with the connections", h>>20, heapBefore>>20, heapDuring>>20)
		}
		return nil
	})
	// And it still serves.
	pingServer(t, login(t, s, bob, "", sasl.ScramSha256), s.Domain, "after-idle")
}

// heapInuse asks the server's profiler for the Go heap in use after a
// garbage collection.
func heapInuse(t *testing.T, addr string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatal("no HeapInuse in the heap profile")
	return 0
}

func raiseFileLimit(t *testing.T, want uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = want
	if lim.Max < want {
		lim.Max = want // allowed for root, as in CI
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("need %d open files, the hard limit is %d: %v", want, lim.Max, err)
	}
}

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int
			fmt.Sscan(rest, &kb)
			return kb
		}
	}
	return 0
}
