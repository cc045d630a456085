package archive

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// benchStanza is a typical chat message of about 300 bytes.
var benchStanza = []byte(`<message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat' id='5f1c3a9e-7d2b-4b8e-9a41-3c6d2e0f8b17'><body>Wherefore art thou, Romeo? Deny thy father and refuse thy name.</body><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='5f1c3a9e'/></message>`)

// BenchmarkAppend compares archiving a message (seal + blind index + a
// synced append) with a plain synced append of an event of the same size:
// the difference is what the crypto costs.
//
//	go test -run '^$' -bench Append ./archive/
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b, b.TempDir(), Config{}, nil)
	alice := newAccount(b, "alice@example.org", "correct horse")
	e.provision(alice)
	e.unlock(alice)
	partner := mustJID(b, "juliet@capulet.example")

	// The size of an archived message's event, for the plain append.
	if _, err := e.svc.Store(ctx, alice.jid, partner, benchStanza, domain.DirectionIn, time.Now()); err != nil {
		b.Fatal(err)
	}
	last, _, err := eventstore.LastEvent(ctx, e.store, domain.ArchiveStream(alice.jid))
	if err != nil {
		b.Fatal(err)
	}
	size := len(last.Body)

	b.Run("sealed", func(b *testing.B) {
		b.SetBytes(int64(len(benchStanza)))
		for b.Loop() {
			if _, err := e.svc.Store(ctx, alice.jid, partner, benchStanza, domain.DirectionIn, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain", func(b *testing.B) {
		b.SetBytes(int64(len(benchStanza)))
		body := []byte(`{"x":"` + strings.Repeat("a", size-8) + `"}`)
		for b.Loop() {
			id, err := uuid.NewV7()
			if err != nil {
				b.Fatal(err)
			}
			ev := domain.Event{ID: id, Type: "bench.plain", SchemaVersion: 1, Time: time.Now(), Body: body}
			if _, err := e.store.Append(ctx, "plain-alice@example.org", eventstore.Any(), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The crypto alone, without the disk: what the ratio above hides
	// behind the fsync.
	b.Run("seal-only", func(b *testing.B) {
		u := "alice@example.org"
		for b.Loop() {
			id, _ := uuid.NewV7()
			plain := domain.SealedMessage{Partner: "juliet@capulet.example", Direction: domain.DirectionIn, At: time.Now(), Stanza: benchStanza}.Encode()
			if _, _, err := e.svc.seal(ctx, u, "archive", id, plain); err != nil {
				b.Fatal(err)
			}
			if _, err := e.keys.blindIndex(u, "juliet@capulet.example"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchArchiveSize is the size of the archive of BenchmarkQuery:
// VERLAUF_BENCH_ARCHIVE_N (default 100 000; the figure is 1 000 000).
func benchArchiveSize(b *testing.B) int {
	if s := os.Getenv("VERLAUF_BENCH_ARCHIVE_N"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			b.Fatalf("VERLAUF_BENCH_ARCHIVE_N=%q: want a number ≥ 1000", s)
		}
		return n
	}
	return 100_000
}

const benchPartners = 50

// BenchmarkQuery builds one user's archive of N messages (50 partners,
// indexed), then measures MAM pages of 50: the newest, one in the middle,
// and a `with` query; and decrypting the whole history in pages of 250.
// Latencies are reported as median and p99 over the iterations.
//
//	go test -run '^$' -bench Query -benchtime 200x ./archive/
//	VERLAUF_BENCH_ARCHIVE_N=1000000 go test -run '^$' -bench Query -benchtime 200x -timeout 60m ./archive/
func BenchmarkQuery(b *testing.B) {
	ctx := context.Background()
	n := benchArchiveSize(b)
	e := newEnv(b, b.TempDir(), Config{}, nil)
	alice := newAccount(b, "alice@example.org", "correct horse")
	e.provision(alice)
	e.unlock(alice)

	start := time.Now()
	var ids []uuid.UUID
	const batch = 1000
	for i := 0; i < n; i += batch {
		entries := make([]Entry, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			entries = append(entries, Entry{
				Partner:   mustJID(b, fmt.Sprintf("partner%d@example.net", j%benchPartners)),
				Direction: domain.DirectionIn, At: time.Now(), Stanza: benchStanza,
			})
		}
		got, err := e.svc.StoreMany(ctx, alice.jid, entries...)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, got...)
	}
	e.waitIndexed()
	b.Logf("built an archive of %d messages in %v", n, time.Since(start).Round(time.Millisecond))

	page := func(name string, q Query) {
		b.Run(name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				p, err := e.svc.Query(ctx, alice.jid, q)
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Messages) != 50 {
					b.Fatalf("%d messages", len(p.Messages))
				}
				for _, m := range p.Messages {
					if m.Err != nil {
						b.Fatal(m.Err)
					}
				}
			}
			reportLatency(b, lat)
		})
	}
	page("newest-50", Query{Last: true, Max: 50})
	page("middle-50", Query{AfterID: ids[n/2], Max: 50})
	page("with-newest-50", Query{With: mustJID(b, "partner7@example.net"), Last: true, Max: 50})
	page("with-middle-50", Query{With: mustJID(b, "partner7@example.net"), AfterID: ids[n/2], Max: 50})
	// A client catching up from a time pages through the same start-bounded
	// range: each page's RSM count covers half the archive.
	sec, nsec := ids[n/2].Time().UnixTime()
	page("start-middle-50", Query{Start: time.Unix(sec, nsec), AfterID: ids[n/2+100], Max: 50})

	b.Run("history", func(b *testing.B) {
		total := 0
		for b.Loop() {
			q := Query{Max: DefaultMaxPageSize}
			for {
				p, err := e.svc.Query(ctx, alice.jid, q)
				if err != nil {
					b.Fatal(err)
				}
				total += len(p.Messages)
				if p.Complete {
					break
				}
				q.AfterID = p.Last
			}
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
	})
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "ms-median")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "ms-p99")
}
