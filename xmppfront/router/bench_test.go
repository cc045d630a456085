package router

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/xmppfront/stream"
)

// countingSession only counts deliveries.
type countingSession struct {
	fakeSession
	n atomic.Int64
}

func (s *countingSession) Send(*stream.Element) bool { s.n.Add(1); return true }

// benchRouter binds 64 senders and one recipient.
func benchRouter(b *testing.B, withBus bool, partitions int) (*Router, []*countingSession, *countingSession, func()) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := Config{Domain: domain, Mux: NewMux(), Partitions: partitions}
	ctx, cancel := context.WithCancel(context.Background())
	var bb *bus.Bus
	if withBus {
		bb = bus.InProcess(logrus.NewEntry(log))
		cfg.Publisher, cfg.Subscriber = bb, bb
	}
	r := New(cfg)
	if withBus {
		if err := r.Start(ctx); err != nil {
			b.Fatal(err)
		}
	}
	to := &countingSession{fakeSession: fakeSession{id: "bob", jid: jid.MustParse("bob@example.test/r")}}
	r.Bind(to)
	var senders []*countingSession
	for i := range 64 {
		s := &countingSession{fakeSession: fakeSession{id: fmt.Sprint("u", i), jid: jid.MustParse(fmt.Sprintf("u%d@example.test/r", i))}}
		r.Bind(s)
		senders = append(senders, s)
	}
	return r, senders, to, func() {
		cancel()
		r.Wait()
		if bb != nil {
			_ = bb.Close()
		}
	}
}

// BenchmarkRoute compares routing a chat message from session to session
// with and without the bus hop (encode, publish, partition consumer,
// decode, ack), from 64 senders in parallel.
func BenchmarkRoute(b *testing.B) {
	msg := "<message to='bob@example.test/r' type='chat' id='x'><body>hello, how are you doing today?</body></message>"
	for _, c := range []struct {
		bus        bool
		partitions int
	}{{false, 0}, {true, 4}, {true, 16}, {true, 64}} {
		withBus := c.bus
		b.Run(fmt.Sprintf("bus=%v/partitions=%d", c.bus, c.partitions), func(b *testing.B) {
			r, senders, to, stop := benchRouter(b, withBus, c.partitions)
			defer stop()
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				s := senders[int(next.Add(1)-1)%len(senders)]
				for pb.Next() {
					// A session parses each stanza it reads; do the same
					// on both paths.
					el := parse(b, msg)
					el.SetAttr("from", s.jid.String())
					if withBus {
						if err := r.Submit(context.Background(), s, el); err != nil {
							b.Fatal(err)
						}
					} else {
						r.fromSession(context.Background(), s.id, el)
					}
				}
			})
			b.StopTimer()
			if got := to.n.Load(); got != int64(b.N) {
				b.Fatalf("delivered %d of %d", got, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
