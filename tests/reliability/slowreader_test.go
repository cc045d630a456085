package reliability

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"verlauf.im/verlauf/tests/testserver"
)

func openFDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestSlowReader: a client that stops reading its socket while others send
// it large messages cannot make the server buffer them: the server's
// memory stays bounded (its send queue holds 256 stanzas), the client is
// disconnected, and the senders carry on.
func TestSlowReader(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	alice, bob, carol := addUser(t, s, "alice"), addUser(t, s, "bob"), addUser(t, s, "carol")
	// The senders write raw bytes, as fast as the server reads them.
	senders := []*rawConn{tlsLogin(t, s, alice, "s"), tlsLogin(t, s, carol, "s")}
	victim := tlsLogin(t, s, bob, "sleepy") // never reads again
	const bodySize = 16 << 10
	body := strings.Repeat("x", bodySize)
	ping := func(c *rawConn, id string) {
		t.Helper()
		if _, err := io.WriteString(c, "<iq type='get' id='"+id+"' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
			t.Fatal(err)
		}
		if out, ok := c.readUntil(id, 30*time.Second); !ok {
			t.Fatalf("no answer to ping %s: %q", id, out)
		}
	}
	ping(senders[0], "warm")
	fds := openFDs(t, s.PID())
	base := rssKiB(t, s.PID())
	rss := sampleRSS(s.PID())

	// Up to 128 MiB for bob; an unbounded queue would hold most of it.
	const batch = 64
	limit := size(t, 128, 512) << 20 / bodySize
	sent, gone := 0, false
	for sent < limit && !gone {
		for i := range batch {
			msg := fmt.Sprintf("<message to='%s/sleepy' type='chat' id='s%d'><body>%s</body></message>", bob, sent, body)
			if _, err := io.WriteString(senders[i%len(senders)], msg); err != nil {
				t.Fatalf("sender %d: %v", i%len(senders), err)
			}
			sent++
		}
		for i, c := range senders {
			ping(c, fmt.Sprintf("ping-%d-%d", i, sent))
		}
		gone = openFDs(t, s.PID()) < fds
	}
	if !gone {
		// The server may still be writing its stream error to a client
		// that does not read: give the write timeout its time.
		testserver.WaitFor(t, 45*time.Second, func() error {
			if openFDs(t, s.PID()) >= fds {
				return fmt.Errorf("bob's connection is still open after %d MiB sent to him", sent*bodySize>>20)
			}
			return nil
		})
	}
	peak := rss.Peak()
	// The connection is really closed: reading what is left ends.
	victim.untilClosed(t, 10*time.Second)

	growth := peak - base
	summary(t, "bob cut off after %d messages (%d MiB) sent to him; server RSS %d MiB before, peak %d MiB (+%d MiB)",
		sent, sent*bodySize>>20, base>>10, peak>>10, growth>>10)
	// The queue holds 256 × 16 KiB = 4 MiB; allow for the garbage
	// collector's slack and the socket buffers, far below what was sent.
	if bound := 48 << 10; growth > bound {
		t.Fatalf("server RSS grew by %d MiB while a client did not read (bound %d MiB)", growth>>10, bound>>10)
	}
	// The senders were never affected.
	io.WriteString(senders[0], "<message to='"+carol+"/s' type='chat' id='after'><body>still here</body></message>")
	if out, ok := senders[1].readUntil("still here", 10*time.Second); !ok {
		t.Fatalf("a message after the slow reader did not arrive: %q", tail(out, 500))
	}
}
