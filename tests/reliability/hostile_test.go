package reliability

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/xmppfront/stream"
)

// dialFrom connects to addr from the loopback address local (Linux
// answers on all of 127/8), so that one test can be several clients.
func dialFrom(t testing.TB, local, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// plainAttempt opens a direct TLS stream from local and tries one PLAIN
// login; it returns the server's answer to <auth/>.
func plainAttempt(t testing.TB, s *testserver.Server, local, user, pass string) string {
	t.Helper()
	raw := dialFrom(t, local, s.C2STLS)
	tc := tls.Client(raw.Conn, &tls.Config{ServerName: s.Domain, RootCAs: s.CertPool(), NextProtos: []string{"xmpp-client"}})
	c := &rawConn{Conn: tc, r: bufio.NewReader(tc)}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, header); err != nil {
		return "write: " + err.Error()
	}
	if out, ok := c.readUntil("</stream:features>", 30*time.Second); !ok {
		return "features: " + out
	}
	name, _, _ := strings.Cut(user, "@")
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + name + "\x00" + pass))
	io.WriteString(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+cred+"</auth>")
	out, _ := c.readUntil("/>", 30*time.Second)
	return out
}

// TestConnectionFlood: one address opens connections up to its limit and
// beyond; the ones beyond are refused with policy-violation while clients
// from other addresses are still served.
func TestConnectionFlood(t *testing.T) {
	limit := size(t, 50, 1000)
	s := testserver.Start(t, testserver.Options{C2SExtra: fmt.Sprintf("max_per_address = %d", limit)})
	bob := addUser(t, s, "bob")
	for i := range limit {
		c := dialFrom(t, "127.0.0.1", s.C2S)
		io.WriteString(c, header)
		if out, ok := c.readUntil("</stream:features>", 10*time.Second); !ok {
			t.Fatalf("connection %d within the limit was not served: %q", i, out)
		}
	}
	refused := 0
	for range size(t, 20, 1000) {
		c := dialFrom(t, "127.0.0.1", s.C2S)
		io.WriteString(c, header)
		if out := c.untilClosed(t, 10*time.Second); strings.Contains(out, "<policy-violation") {
			refused++
		} else {
			t.Fatalf("a connection over the per-address limit got %q", out)
		}
	}
	// Another address is served, to the end of a login.
	if out := plainAttempt(t, s, "127.0.0.2", bob, password); !strings.Contains(out, "<success") {
		t.Fatalf("a client from another address was not served: %q", out)
	}
	summary(t, "%d connections from one address held, %d more refused with policy-violation, another address served", limit, refused)
}

// TestSlowloris: a client that trickles a stanza one byte at a time never
// completes it; the read deadline, which bytes inside an element do not
// push back, closes the stream with connection-timeout. Before and after
// authentication.
func TestSlowloris(t *testing.T) {
	s := testserver.Start(t, testserver.Options{C2SExtra: "idle_timeout = '2s'"})
	bob := addUser(t, s, "bob")
	trickle := func(t *testing.T, c net.Conn, r *rawConn) {
		stanza := "<message to='" + bob + "' type='chat'><body>" + strings.Repeat("z", 10000)
		closed := make(chan string, 1)
		go func() { closed <- r.untilClosed(t, time.Minute) }()
		for i := 0; i < len(stanza); i++ {
			select {
			case out := <-closed:
				if !strings.Contains(out, "connection-timeout") {
					t.Fatalf("the server closed a slowloris stream with %q, want connection-timeout", tail(out, 300))
				}
				summary(t, "closed after %d bytes trickled", i)
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte{stanza[i]}); err != nil {
				// Closed while we wrote; the reader tells how.
				continue
			}
		}
		t.Fatalf("%d bytes trickled and the stream is still open", len(stanza))
	}
	t.Run("before login", func(t *testing.T) {
		c := rawDial(t, s.C2S)
		io.WriteString(c, header)
		if out, ok := c.readUntil("</stream:features>", 10*time.Second); !ok {
			t.Fatal(out)
		}
		trickle(t, c.Conn, c)
	})
	t.Run("after login", func(t *testing.T) {
		c := tlsLogin(t, s, bob, "loris")
		trickle(t, c.Conn, c)
	})
	pingServer(t, login(t, s, bob), "alive")
}

// TestEntityTricks: DTDs, entity declarations (billion laughs, external
// entities) and undefined entities are refused before anything is
// expanded or fetched, before and after authentication.
func TestEntityTricks(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	bob := addUser(t, s, "bob")
	laughs := "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
	for i := 1; i <= 9; i++ {
		laughs += fmt.Sprintf("<!ENTITY lol%d '%s'>", i, strings.Repeat(fmt.Sprintf("&lol%d;", i-1), 10))
	}
	laughs = strings.Replace(laughs, "&lol0;", "&lol;", -1) + "]>"
	xxe := "<!DOCTYPE x [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
	base := rssKiB(t, s.PID())
	for _, tt := range []struct{ name, input, want string }{
		{"billion laughs in the prolog", "<?xml version='1.0'?>" + laughs + header[len("<?xml version='1.0'?>"):] + "<message><body>&lol9;</body></message>", "restricted-xml"},
		{"external entity in the prolog", "<?xml version='1.0'?>" + xxe + header[len("<?xml version='1.0'?>"):] + "<message><body>&xxe;</body></message>", "restricted-xml"},
		{"DTD inside the stream", header + laughs, "restricted-xml"},
		{"undefined entity", header + "<message><body>&xxe;</body></message>", "not-well-formed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := rawDial(t, s.C2S)
			io.WriteString(c, tt.input)
			if out := c.untilClosed(t, 10*time.Second); !strings.Contains(out, "<"+tt.want) {
				t.Fatalf("server said %q, want %s", out, tt.want)
			}
		})
	}
	t.Run("after login", func(t *testing.T) {
		c := tlsLogin(t, s, bob, "ent")
		io.WriteString(c, "<message to='"+bob+"'><body>&xxe;&lol9;</body></message>")
		if out := c.untilClosed(t, 10*time.Second); !strings.Contains(out, "<not-well-formed") || strings.Contains(out, "root:") {
			t.Fatalf("server said %q, want not-well-formed and nothing of /etc/passwd", out)
		}
	})
	if grown := rssKiB(t, s.PID()) - base; grown > 32<<10 {
		t.Fatalf("server RSS grew by %d MiB", grown>>10)
	}
	pingServer(t, login(t, s, bob), "alive")
}

// TestDeepNesting: elements nested far beyond the depth limit end the
// stream with policy-violation at the limit, without memory to show for
// the rest.
func TestDeepNesting(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	bob := addUser(t, s, "bob")
	c := tlsLogin(t, s, bob, "deep")
	base := rssKiB(t, s.PID())
	rss := sampleRSS(s.PID())
	go func() {
		io.WriteString(c, "<message to='"+bob+"'>"+strings.Repeat("<a>", size(t, 100000, 10000000)))
	}()
	out := c.untilClosed(t, 30*time.Second)
	peak := rss.Peak()
	if !strings.Contains(out, "<policy-violation") {
		t.Fatalf("server said %q, want policy-violation", tail(out, 300))
	}
	summary(t, "policy-violation; server RSS %d MiB before, peak %d MiB", base>>10, peak>>10)
	if peak-base > 32<<10 {
		t.Fatalf("server RSS grew by %d MiB", (peak-base)>>10)
	}
	pingServer(t, login(t, s, bob), "alive")
}

// TestHugeStanza: a 100 MB stanza is cut off at the stanza size limit (256
// KiB by default): the server stops reading and its memory does not grow
// by anything like the stanza's size.
func TestHugeStanza(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	bob := addUser(t, s, "bob")
	c := tlsLogin(t, s, bob, "huge")
	base := rssKiB(t, s.PID())
	rss := sampleRSS(s.PID())
	const total = 100 << 20
	var written atomic.Int64
	go func() {
		io.WriteString(c, "<message to='"+bob+"' type='chat'><body>")
		chunk := []byte(strings.Repeat("A", 64<<10))
		for written.Load() < total {
			n, err := c.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	out := c.untilClosed(t, 60*time.Second)
	peak := rss.Peak()
	if !strings.Contains(out, "<policy-violation") {
		t.Fatalf("server said %q, want policy-violation", tail(out, 300))
	}
	summary(t, "policy-violation after %d KiB written by the client; server RSS %d MiB before, peak %d MiB (+%d KiB)",
		written.Load()>>10, base>>10, peak>>10, peak-base)
	if peak-base > 32<<10 {
		t.Fatalf("server RSS grew by %d MiB for a 100 MB stanza", (peak-base)>>10)
	}
	if written.Load() >= total {
		t.Fatal("the server read the whole 100 MB stanza")
	}
	pingServer(t, login(t, s, bob), "alive")
}

// TestHugeRoster: a client adding contacts without end gets exactly the
// roster limit and not-allowed for every item beyond it.
func TestHugeRoster(t *testing.T) {
	limit := size(t, 50, 2000)
	attempts := size(t, 60, 4000)
	s := testserver.Start(t, testserver.Options{C2SExtra: fmt.Sprintf("max_roster_items = %d", limit)})
	bob := addUser(t, s, "bob")
	c := tlsLogin(t, s, bob, "roster")
	// At most window sets in flight: the session's work queue (64) would
	// otherwise answer resource-constraint, a limit of its own.
	const window = 32
	inflight := make(chan struct{}, window)
	start, filled := time.Now(), time.Time{}
	results := map[string]int{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The answers, parsed as the stream they are.
		const hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
		r := stream.NewReader(io.MultiReader(strings.NewReader(hdr), c.r), stream.Limits{})
		if _, err := r.ReadHeader(); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Duration(attempts/10+30) * time.Second))
		for n := 0; n < attempts; {
			el, err := r.Next()
			if err != nil {
				return
			}
			if el.Name.Local != "iq" || !strings.HasPrefix(el.Attr("id"), "r") {
				continue // roster pushes
			}
			n++
			<-inflight
			mu.Lock()
			if n == limit {
				filled = time.Now()
			}
			if el.Attr("type") == "result" {
				results["result"]++
			} else {
				cond := "?"
				if e := el.Child("error", ""); e != nil {
					for c := range e.Children() {
						if c.Name.Local != "text" {
							cond = c.Name.Local
						}
					}
				}
				results[cond]++
			}
			mu.Unlock()
		}
	}()
	for i := range attempts {
		select {
		case inflight <- struct{}{}:
		case <-done:
			t.Fatalf("the stream ended after %d roster sets", i)
		}
		if _, err := fmt.Fprintf(c, "<iq type='set' id='r%d'><query xmlns='jabber:iq:roster'><item jid='contact%d@example.net'/></query></iq>", i, i); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	fill := filled.Sub(start)
	summary(t, "%d roster sets: %v; the first %d took %v (%.0f/s), the refused ones %.0f/s",
		attempts, results, limit, fill.Round(time.Millisecond), float64(limit)/fill.Seconds(),
		float64(attempts-limit)/time.Since(filled).Seconds())
	if results["result"] != limit || results["not-allowed"] != attempts-limit {
		t.Fatalf("answers %v, want %d results and %d not-allowed", results, limit, attempts-limit)
	}
	pingServer(t, login(t, s, bob), "alive")
}

// TestSASLBruteForce: many connections guess one user's password at once.
// The throttle bounds the guesses that are checked, refuses even the right
// password while it lasts, and a legitimate user from another address
// still logs in.
func TestSASLBruteForce(t *testing.T) {
	s := testserver.Start(t, testserver.Options{C2SExtra: "auth_failures = 5\nauth_penalty = '5m'"})
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	const workers = 8
	guesses := size(t, 64, 2000)
	var checked, throttled, other atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < guesses; i += workers {
				out := plainAttempt(t, s, "127.0.0.1", alice, fmt.Sprintf("guess %d", i))
				switch {
				case strings.Contains(out, "temporary-auth-failure"):
					throttled.Add(1)
				case strings.Contains(out, "not-authorized"):
					checked.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	summary(t, "%d guesses: %d checked (not-authorized), %d throttled, %d other", guesses, checked.Load(), throttled.Load(), other.Load())
	if other.Load() != 0 || checked.Load()+throttled.Load() != int64(guesses) {
		t.Fatalf("unexpected answers to guesses: %d other", other.Load())
	}
	// A guess in flight when the throttle trips is still checked: at
	// most one per connection beyond the limit.
	if checked.Load() > 5+workers {
		t.Fatalf("%d guesses were checked; the throttle allows 5", checked.Load())
	}
	if out := plainAttempt(t, s, "127.0.0.1", alice, password); !strings.Contains(out, "temporary-auth-failure") {
		t.Fatalf("the right password while throttled: %q, want temporary-auth-failure", out)
	}
	if out := plainAttempt(t, s, "127.0.0.3", bob, password); !strings.Contains(out, "<success") {
		t.Fatalf("a legitimate user from another address: %q", out)
	}
}
