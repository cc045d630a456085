package reliability

import (
	"context"
	"encoding/xml"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
)

// ack is a message whose delivered copy carried the recipient's
// stanza-id: the server had archived it, durably, before delivering it.
type ack struct {
	from, to string // bare JIDs
	sid      string // the recipient's archive id
	body     string
}

// chatter keeps users sending each other messages and records every
// delivery that came with an archive id.
type chatter struct {
	mu    sync.Mutex
	acks  []ack
	sent  int
	moved chan struct{} // signalled on every ack
	tag   string        // makes bodies unique across rounds
}

func (ch *chatter) acked() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.acks)
}

// collect reads what c receives until its stream ends.
func (ch *chatter) collect(c *xmppclient.Client, done <-chan struct{}) {
	me := c.JID.Bare().String()
	for {
		select {
		case <-done:
			return
		case el := <-c.In:
			if el.Name.Local != "message" || el.Attr("type") != "chat" {
				continue
			}
			sid := stanzaID(el, me)
			b := el.Child("body", "jabber:client")
			if sid == "" || b == nil || !strings.HasPrefix(b.Text(), "crash ") {
				continue
			}
			from, _, _ := strings.Cut(el.Attr("from"), "/")
			ch.mu.Lock()
			ch.acks = append(ch.acks, ack{from: from, to: me, sid: sid, body: b.Text()})
			ch.mu.Unlock()
			select {
			case ch.moved <- struct{}{}:
			default:
			}
		}
	}
}

// send writes messages from c to random peers every interval until ctx
// ends or the stream breaks.
func (ch *chatter) send(ctx context.Context, c *xmppclient.Client, peers []string, every time.Duration) {
	me := c.JID.Bare().String()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		to := peers[rand.IntN(len(peers))]
		for to == me {
			to = peers[rand.IntN(len(peers))]
		}
		raw := fmt.Sprintf("<message to='%s' type='chat' id='c%d'><body>crash %s %s %d</body></message>", to, i, ch.tag, me, i)
		if err := c.S.Send(ctx, xml.NewDecoder(strings.NewReader(raw))); err != nil {
			return
		}
		ch.mu.Lock()
		ch.sent++
		ch.mu.Unlock()
	}
}

// TestKillDuringLoad kills the server with SIGKILL while users chat with
// history on. After a restart the store opens as it is (Pebble replays its
// log; there is no repair step), every message whose delivery carried a
// stanza-id is in the recipient's and the sender's archive, and every user
// logs in again.
func TestKillDuringLoad(t *testing.T) {
	s := testserver.Start(t, testserver.Options{Extra: "[archive]\ndefault = \"always\"\n"})
	users := make([]string, size(t, 4, 16))
	for i := range users {
		users[i] = addUser(t, s, fmt.Sprintf("u%d", i))
	}
	rounds := size(t, 1, 5)
	var acks []ack
	for round := range rounds {
		acks = append(acks, chatAndKill(t, s, users, size(t, 150, 3000))...)
		t.Logf("round %d: %d messages acknowledged so far", round+1, len(acks))
		logBefore := len(s.Log())
		s.Restart() // Stop is a no-op after Kill; this starts it again
		if after := s.Log()[logBefore:]; strings.Contains(after, `"level":"error"`) || strings.Contains(after, "panic") {
			t.Fatalf("the restart after kill -9 logged errors:\n%s", tail(after, 4000))
		}
	}

	// Every user logs in again and finds what was acknowledged.
	byID := map[string]map[string]bool{}   // user → archive ids
	byBody := map[string]map[string]bool{} // user → bodies
	for _, u := range users {
		c := login(t, s, u)
		byID[u], byBody[u] = map[string]bool{}, map[string]bool{}
		for _, m := range mamAll(t, c) {
			byID[u][m.id] = true
			byBody[u][m.body] = true
		}
		c.S.Close()
	}
	for _, a := range acks {
		if !byID[a.to][a.sid] {
			t.Fatalf("%q was delivered to %s as archived (%s) but is not in the archive after kill -9", a.body, a.to, a.sid)
		}
		// The sender's copy was appended alongside, before delivery.
		if !byBody[a.from][a.body] {
			t.Fatalf("%q was delivered as archived but is not in the sender %s's archive after kill -9", a.body, a.from)
		}
	}
	s.Stop()
	n := readWholeStore(t, filepath.Join(s.Dir, "data", "events"))
	summary(t, "%d kill -9 rounds, %d acknowledged messages all in both archives, %d events read back", rounds, len(acks), n)
}

// chatAndKill lets users chat until want messages have been acknowledged,
// kills the server mid-load and returns what was acknowledged.
func chatAndKill(t *testing.T, s *testserver.Server, users []string, want int) []ack {
	t.Helper()
	ch := &chatter{moved: make(chan struct{}, 1), tag: fmt.Sprintf("%x", rand.Uint64())}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, u := range users {
		c := login(t, s, u)
		c.Send(t, "<presence/>")
		wg.Go(func() { ch.collect(c, done) })
		wg.Go(func() { ch.send(ctx, c, users, 10*time.Millisecond) })
	}
	deadline := time.After(60 * time.Second)
	for ch.acked() < want {
		select {
		case <-ch.moved:
		case <-deadline:
			t.Fatalf("only %d of %d messages acknowledged in a minute", ch.acked(), want)
		}
	}
	s.Kill() // mid-load: the senders are still sending
	cancel()
	close(done)
	wg.Wait()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	t.Logf("killed after %d messages sent, %d acknowledged", ch.sent, len(ch.acks))
	return ch.acks
}
