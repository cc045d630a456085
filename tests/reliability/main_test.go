// Package reliability drives the real verlauf binary through faults (a
// crash under load, a full disk, a client that stops reading) and hostile
// input (connection floods, slowloris, entity tricks, deep nesting, huge
// stanzas and rosters, password guessing), and checks that the server
// stays up, its memory stays bounded and the documented limits hold.
//
// `make test` runs every test at a small size. With SOAK set (by
// scripts/soak.sh, `make soak DURATION=10m`, to the soak's duration) the
// same tests run at larger sizes, and the script repeats them until the
// duration is over.
package reliability

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
	"verlauf.im/verlauf/xmppfront/stream"
)

const password = "correct horse battery staple"

// header opens a client stream to localhost.
const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"

// soak is the duration of the soak run this test is part of, 0 in `make
// test`.
func soak(t testing.TB) time.Duration {
	t.Helper()
	v := os.Getenv("SOAK")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("SOAK=%q: %v", v, err)
	}
	return d
}

// size picks the small size for `make test` and the large one for a soak.
func size(t testing.TB, small, large int) int {
	if soak(t) > 0 {
		return large
	}
	return small
}

// summary logs a line that scripts/soak.sh collects into its summary.
func summary(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Logf("SUMMARY %s: %s", t.Name(), fmt.Sprintf(format, args...))
}

func addUser(t testing.TB, s *testserver.Server, name string) string {
	t.Helper()
	out, err := s.Verlauf(password+"\n", "user", "add", name)
	if err != nil {
		t.Fatalf("verlauf user add %s: %v\n%s", name, err, out)
	}
	return name + "@" + s.Domain
}

func login(t testing.TB, s *testserver.Server, user string) *xmppclient.Client {
	t.Helper()
	return xmppclient.MustDial(t, xmppclient.Options{
		Addr: s.C2S, User: user, Password: password, Mech: sasl.ScramSha256, TLS: s.TLSConfig(),
	})
}

func pingServer(t testing.TB, c *xmppclient.Client, id string) {
	t.Helper()
	c.Send(t, "<iq type='get' id='"+id+"' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.ExpectID(t, id); r.Attr("type") != "result" {
		t.Fatalf("ping %s: %s", id, r)
	}
}

func isMessage(id string) func(*stream.Element) bool {
	return func(e *stream.Element) bool { return e.Name.Local == "message" && e.Attr("id") == id }
}

// stanzaID is the XEP-0359 id that by's archive gave a delivered message.
func stanzaID(m *stream.Element, by string) string {
	for c := range m.Children() {
		if c.Name == (stream.Name{Space: "urn:xmpp:sid:0", Local: "stanza-id"}) && c.Attr("by") == by {
			return c.Attr("id")
		}
	}
	return ""
}

// archived is one message read back from an archive with MAM.
type archived struct{ id, body string }

// mamAll pages through c's whole archive and returns it in order.
func mamAll(t testing.TB, c *xmppclient.Client) []archived {
	t.Helper()
	var all []archived
	after := ""
	for page := 0; ; page++ {
		qid := fmt.Sprintf("all%d", page)
		rsm := "<set xmlns='http://jabber.org/protocol/rsm'><max>100</max>"
		if after != "" {
			rsm += "<after>" + after + "</after>"
		}
		rsm += "</set>"
		c.Send(t, "<iq type='set' id='"+qid+"'><query xmlns='urn:xmpp:mam:2' queryid='"+qid+"'>"+rsm+"</query></iq>")
		for {
			el := c.Expect(t, "MAM result or fin", func(e *stream.Element) bool {
				if e.Attr("id") == qid && e.Name.Local == "iq" {
					return true
				}
				r := e.Child("result", "urn:xmpp:mam:2")
				return e.Name.Local == "message" && r != nil && r.Attr("queryid") == qid
			})
			if el.Name.Local == "iq" {
				if el.Attr("type") != "result" {
					t.Fatalf("MAM query %s: %s", qid, el)
				}
				fin := el.Child("fin", "urn:xmpp:mam:2")
				if fin.Attr("complete") == "true" {
					return all
				}
				set := fin.Child("set", "http://jabber.org/protocol/rsm")
				last := set.Child("last", "http://jabber.org/protocol/rsm")
				if last == nil {
					return all
				}
				after = last.Text()
				break
			}
			r := el.Child("result", "urn:xmpp:mam:2")
			m := r.Child("forwarded", "urn:xmpp:forward:0").Child("message", "jabber:client")
			body := ""
			if b := m.Child("body", "jabber:client"); b != nil {
				body = b.Text()
			}
			all = append(all, archived{id: r.Attr("id"), body: body})
		}
	}
}

// rssKiB is pid's resident set size.
func rssKiB(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.Fields(rest)[0])
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// rssSampler samples a process's RSS until stopped and keeps the peak.
type rssSampler struct {
	stop chan struct{}
	done chan int
}

func sampleRSS(pid int) *rssSampler {
	r := &rssSampler{stop: make(chan struct{}), done: make(chan int, 1)}
	go func() {
		peak := 0
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for line := range strings.SplitSeq(string(b), "\n") {
					if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
						if kb, err := strconv.Atoi(strings.Fields(rest)[0]); err == nil {
							peak = max(peak, kb)
						}
					}
				}
			}
			select {
			case <-r.stop:
				r.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

// Peak stops sampling and returns the highest RSS seen, in KiB.
func (r *rssSampler) Peak() int {
	close(r.stop)
	return <-r.done
}

// rawConn is a connection on which the test writes bytes no client library
// would, and reads what the server answers.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func rawDial(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// readUntil reads until marker appears or the connection ends, and
// returns what was read and whether the marker came.
func (c *rawConn) readUntil(marker string, within time.Duration) (string, bool) {
	_ = c.SetReadDeadline(time.Now().Add(within))
	var sb strings.Builder
	for !strings.Contains(sb.String(), marker) {
		b, err := c.r.ReadByte()
		if err != nil {
			return sb.String(), false
		}
		sb.WriteByte(b)
	}
	return sb.String(), true
}

// untilClosed reads until the server closes the connection and returns
// everything it said; it fails the test if that takes longer than within.
func (c *rawConn) untilClosed(t testing.TB, within time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(c.r)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v; it said %q", within, b)
	}
	return string(b)
}

// tlsLogin opens a direct TLS stream, authenticates with PLAIN and binds,
// so the test can then write raw bytes as an authenticated client.
func tlsLogin(t testing.TB, s *testserver.Server, user, resource string) *rawConn {
	t.Helper()
	conn, err := tls.Dial("tcp", s.C2STLS, &tls.Config{ServerName: s.Domain, RootCAs: s.CertPool(), NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{Conn: conn, r: bufio.NewReader(conn)}
	step := func(send, marker string) string {
		t.Helper()
		if _, err := io.WriteString(conn, send); err != nil {
			t.Fatal(err)
		}
		out, ok := c.readUntil(marker, 10*time.Second)
		if !ok {
			t.Fatalf("waiting for %q after %q: got %q", marker, send, out)
		}
		return out
	}
	step(header, "</stream:features>")
	name, _, _ := strings.Cut(user, "@")
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + name + "\x00" + password))
	if out := step("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+cred+"</auth>", "/>"); !strings.Contains(out, "success") {
		t.Fatalf("PLAIN: %s", out)
	}
	step(header, "</stream:features>")
	step("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>", "</iq>")
	_ = conn.SetDeadline(time.Time{})
	return c
}

// readWholeStore opens the stopped server's event store as the server
// would, without any repair step, and reads every record: a record that
// does not decode, or a hole in the sequence, fails the test. It returns
// how many events there are.
func readWholeStore(t testing.TB, dir string) int {
	t.Helper()
	ctx := context.Background()
	st, err := embedded.Open(ctx, dir, embedded.Options{})
	if err != nil {
		t.Fatalf("the store does not open: %v", err)
	}
	defer st.Close()
	head, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pos, n := eventstore.Start, 0
	for {
		evs, err := st.ReadAll(ctx, pos, 1000)
		if err != nil {
			t.Fatalf("reading the log after %v: %v", pos, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			n++
			if ev.Position.Commit != uint64(n) {
				t.Fatalf("event %d has position %v: the log has a hole", n, ev.Position)
			}
		}
		pos = evs[len(evs)-1].Position
	}
	if uint64(n) != head.Commit {
		t.Fatalf("read %d events, the head is %v", n, head)
	}
	return n
}
