package federation

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"verlauf.im/verlauf/tests/peers"
	"verlauf.im/verlauf/tests/xmppclient"
)

// The second Prosody of the Prosody-to-Prosody baseline.
const prosody2IP = "127.0.0.5"

// benchPairs is how many users each side has; user i on one side talks
// to user i on the other.
const benchPairs = 8

// BenchmarkFederation measures chat between users of two federated
// servers on this machine: a verlauf user and a Prosody user, and as the
// baseline two Prosody users on two Prosody instances. Each iteration is
// one message, alternately from side A to side B and back, over
// benchPairs pairs of users, with at most window messages in flight: with
// window=1 the latencies are those of an idle server, with window=64 the
// rate is what the pair of servers sustains. It reports messages/s and
// the p50/p99 latency of each direction (client send to client receipt,
// one clock).
//
//	VERLAUF_BIN=$PWD/bin/verlauf go test -run '^$' -bench Federation -benchtime 5s -count 3 ./tests/federation/
func BenchmarkFederation(b *testing.B) {
	b.Run("verlauf-prosody", func(b *testing.B) {
		p := peers.NewCA(b, b.TempDir())
		peers.AddHosts(b, map[string]string{"verlauf.test": verlaufIP, "prosody.test": prosodyIP})
		users := map[string]string{}
		var local []string
		for i := range benchPairs {
			users[fmt.Sprintf("b%d", i)] = fmt.Sprintf("b%d-password", i)
			local = append(local, fmt.Sprintf("a%d", i))
		}
		pn := runProsody(b, peers.ProsodyOptions{Peer: peers.Peer{Domain: "prosody.test", IP: prosodyIP, CA: p, Users: users}, LogLevel: "warn"})
		s := startVerlauf(b, p, verlaufOptions{routes: map[string]string{"prosody.test": pn.S2S()}, users: local})
		var as, bs []*xmppclient.Client
		for i := range benchPairs {
			as = append(as, benchLogin(b, s.C2S, fmt.Sprintf("a%d@verlauf.test", i), fmt.Sprintf("a%d-password", i), "verlauf.test", p, sasl.ScramSha256))
			bs = append(bs, benchLogin(b, pn.C2S(), fmt.Sprintf("b%d@prosody.test", i), users[fmt.Sprintf("b%d", i)], "prosody.test", p, sasl.Plain))
		}
		runWindows(b, as, bs)
	})
	b.Run("prosody-prosody", func(b *testing.B) {
		p := peers.NewCA(b, b.TempDir())
		peers.AddHosts(b, map[string]string{"prosody.test": prosodyIP, "prosody2.test": prosody2IP})
		users := map[string]string{}
		for i := range benchPairs {
			users[fmt.Sprintf("u%d", i)] = fmt.Sprintf("u%d-password", i)
		}
		p1 := runProsody(b, peers.ProsodyOptions{Peer: peers.Peer{Domain: "prosody.test", IP: prosodyIP, CA: p, Users: users}, LogLevel: "warn"})
		p2 := runProsody(b, peers.ProsodyOptions{Peer: peers.Peer{Domain: "prosody2.test", IP: prosody2IP, CA: p, Users: users}, LogLevel: "warn"})
		var as, bs []*xmppclient.Client
		for i := range benchPairs {
			u := fmt.Sprintf("u%d", i)
			as = append(as, benchLogin(b, p1.C2S(), u+"@prosody.test", users[u], "prosody.test", p, sasl.Plain))
			bs = append(bs, benchLogin(b, p2.C2S(), u+"@prosody2.test", users[u], "prosody2.test", p, sasl.Plain))
		}
		runWindows(b, as, bs)
	})
}

func benchLogin(b *testing.B, addr, user, password, domain string, p *peers.CA, mech sasl.Mechanism) *xmppclient.Client {
	b.Helper()
	c := xmppclient.MustDial(b, xmppclient.Options{
		Addr: addr, User: user, Password: password, Mech: mech,
		TLS: &tls.Config{ServerName: domain, RootCAs: p.Pool, MinVersion: tls.VersionTLS12},
	})
	c.Send(b, `<presence/>`)
	return c
}

func runWindows(b *testing.B, as, bs []*xmppclient.Client) {
	// Warm up: set up the s2s streams both ways, and prove they carry.
	for i := range as {
		chat(b, as[i], bs[i], "warm-up")
		chat(b, bs[i], as[i], "warm-up")
	}
	for _, w := range []int{1, 64} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) { measure(b, as, bs, w) })
	}
}

// chat sends one message from one client to another and waits for it.
func chat(b *testing.B, from, to *xmppclient.Client, body string) {
	b.Helper()
	from.Send(b, fmt.Sprintf(`<message to='%s' type='chat'><body>%s</body></message>`, to.JID.Bare(), body))
	to.Expect(b, body, isBody(body))
}

// latencies records one direction's delivery times.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func measure(b *testing.B, as, bs []*xmppclient.Client, window int) {
	slots := make(chan struct{}, window)
	var out, back latencies // A→B, B→A
	done := make(chan struct{})
	var readers sync.WaitGroup
	read := func(c *xmppclient.Client, l *latencies) {
		defer readers.Done()
		for {
			select {
			case <-done:
				return
			case el := <-c.In:
				body := el.Child("body", "")
				if el.Name.Local != "message" || body == nil {
					continue
				}
				f := strings.Fields(body.Text())
				if len(f) != 2 || f[0] != "bench" {
					continue
				}
				ns, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					continue
				}
				l.add(time.Since(time.Unix(0, ns)))
				if el.Attr("type") == "error" {
					b.Errorf("bounced: %s", el)
				}
				<-slots
			}
		}
	}
	for _, c := range bs {
		readers.Add(1)
		go read(c, &out)
	}
	for _, c := range as {
		readers.Add(1)
		go read(c, &back)
	}
	sent := 0
	start := time.Now()
	for b.Loop() {
		slots <- struct{}{}
		from, to := as[sent%len(as)], bs[sent%len(bs)]
		if sent%2 == 1 {
			from, to = to, from
		}
		sent++
		from.Send(b, fmt.Sprintf(`<message to='%s' type='chat'><body>bench %d</body></message>`, to.JID.Bare(), time.Now().UnixNano()))
	}
	// Everything sent arrives: fill the window, which empties as the
	// last messages arrive.
	drained := time.After(30 * time.Second)
	for range window {
		select {
		case slots <- struct{}{}:
		case <-drained:
			b.Fatalf("%d messages still in flight 30s after the last was sent", len(slots))
		}
	}
	elapsed := time.Since(start)
	close(done)
	readers.Wait()
	if got := len(out.d) + len(back.d); got != sent {
		b.Fatalf("sent %d, received %d", sent, got)
	}
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "msgs/s")
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(out.percentile(0.50)), "out-p50-ms")
	b.ReportMetric(ms(out.percentile(0.99)), "out-p99-ms")
	b.ReportMetric(ms(back.percentile(0.50)), "back-p50-ms")
	b.ReportMetric(ms(back.percentile(0.99)), "back-p99-ms")
}
