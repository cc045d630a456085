package archiving_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stream"
)

// workerSession runs its tasks on its own goroutine, as a c2s session's
// worker does, so that an append waits there and not in a partition.
type workerSession struct {
	id   string
	jid  jid.JID
	work chan func(context.Context)
	got  chan struct{}
	n    atomic.Int64
}

func newWorkerSession(b *testing.B, addr string) *workerSession {
	s := &workerSession{id: addr, jid: jid.MustParse(addr), work: make(chan func(context.Context), 1024), got: make(chan struct{}, 1<<20)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case f := <-s.work:
				f(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
	b.Cleanup(func() { cancel(); <-done })
	return s
}

func (s *workerSession) ID() string   { return s.id }
func (s *workerSession) JID() jid.JID { return s.jid }
func (s *workerSession) Send(*stream.Element) bool {
	s.n.Add(1)
	s.got <- struct{}{}
	return true
}
func (s *workerSession) Do(f func(context.Context)) bool {
	select {
	case s.work <- f:
		return true
	default:
		return false
	}
}
func (s *workerSession) Replace()                      {}
func (s *workerSession) Kick(stream.Condition, string) {}

// BenchmarkRouteArchiving routes a chat message from alice to bob, both
// online: with no archiver installed (delivered in the partition), with
// the archiver and history off (the hop to the sender's worker and the
// prefs lookup), on for the sender, and on for both sides (two appends,
// each fsynced, run concurrently). "latency" sends one message at a time and
// waits for its delivery (ns/op is the sender-to-recipient latency);
// "parallel" has 32 senders at once, so appends share fsyncs.
func BenchmarkRouteArchiving(b *testing.B) {
	const msg = "<message to='bob@example.test/r' type='chat' id='x'><body>hello, how are you doing today?</body></message>"
	for _, c := range []struct {
		name       string
		alice, bob domain.ArchiveMode
		noArchiver bool
	}{
		{"archiver=none", domain.ArchiveNever, domain.ArchiveNever, true},
		{"history=off", domain.ArchiveNever, domain.ArchiveNever, false},
		{"history=sender", domain.ArchiveAlways, domain.ArchiveNever, false},
		{"history=both", domain.ArchiveAlways, domain.ArchiveAlways, false},
	} {
		for _, parallel := range []bool{false, true} {
			mode := "latency"
			if parallel {
				mode = "parallel"
			}
			b.Run(c.name+"/"+mode, func(b *testing.B) {
				w := newWorld(b, worldOptions{noArchiver: c.noArchiver})
				w.setPrefs("alice", c.alice)
				w.setPrefs("bob", c.bob)
				for _, u := range []string{"alice", "bob"} {
					if err := w.svc.Keys().Unlock(w.ctx, w.user(u), domain.HashSHA256, w.keys[u]); err != nil {
						b.Fatal(err)
					}
				}
				bob := newWorkerSession(b, "bob@example.test/r")
				w.r.Bind(bob)
				w.r.SetPresence(bob.jid, stream.NewElement(stream.NSClient, "presence"))
				senders := make([]*workerSession, 32)
				for i := range senders {
					senders[i] = newWorkerSession(b, fmt.Sprintf("alice@example.test/%d", i))
					w.r.Bind(senders[i])
				}
				submit := func(s *workerSession) {
					st, err := router.DecodeStanza([]byte(msg), stream.DefaultMaxStanzaSize)
					if err != nil {
						b.Fatal(err)
					}
					st.SetAttr("from", s.jid.String())
					if err := w.r.Submit(w.ctx, s, st); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				if parallel {
					var next atomic.Int64
					b.SetParallelism(16) // 32 goroutines on 2 cores
					b.RunParallel(func(pb *testing.PB) {
						s := senders[int(next.Add(1)-1)%len(senders)]
						for pb.Next() {
							submit(s)
						}
					})
					deadline := time.After(time.Minute)
					for range b.N {
						select {
						case <-bob.got:
						case <-deadline:
							b.Fatalf("delivered %d of %d", bob.n.Load(), b.N)
						}
					}
				} else {
					for range b.N {
						submit(senders[0])
						<-bob.got
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
