package embedded

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// The write benchmarks append one ~300-byte event per operation, fsync on,
// from 1, 8 and 64 goroutines, and report events/s. The raw engine
// benchmarks write the same keys and record bytes per event (a log entry
// and a stream index entry in one synced batch or transaction) without the
// store around them, so that Append's overhead is the ratio of the two.
//
//	go test -run XXX -bench 'Append|Engine' -benchtime 2s -count 3 ./eventstore/embedded/
//	go test -run XXX -bench ReadAll -benchtime 3x -count 3 ./eventstore/embedded/

var benchWriters = []int{1, 8, 64, 1024}

func benchEvent(i int) domain.Event {
	ev := event(fmt.Sprintf(`{"to":"bob@example.org","from":"alice@example.org/phone","i":%d,"body":"`, i))
	for len(ev.Body) < 298 {
		ev.Body = append(ev.Body, 'x')
	}
	ev.Body = append(ev.Body, `"}`...)
	return ev
}

// runWriters runs op b.N times spread over writers goroutines and reports
// events per second.
func runWriters(b *testing.B, writers int, op func(w, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				if err := op(w, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

func BenchmarkAppend(b *testing.B) {
	for _, writers := range benchWriters {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			exp := make([]eventstore.ExpectedRevision, writers)
			for w := range exp {
				exp[w] = eventstore.NoStream()
			}
			evs := make([]domain.Event, b.N+1)
			for i := range evs {
				evs[i] = benchEvent(i)
			}
			runWriters(b, writers, func(w, i int) error {
				res, err := s.Append(context.Background(), fmt.Sprint("bench-", w), exp[w], evs[i])
				exp[w] = eventstore.Exact(res.NextRevision)
				return err
			})
		})
	}
}

// BenchmarkEngine writes through the engines directly, for the choice of
// engine and as the baseline of BenchmarkAppend.
func BenchmarkEngine(b *testing.B) {
	for _, writers := range benchWriters {
		b.Run(fmt.Sprintf("pebble/writers=%d", writers), func(b *testing.B) { benchPebble(b, writers) })
	}
	for _, writers := range benchWriters {
		// One read-write transaction per event, each waiting its turn.
		b.Run(fmt.Sprintf("bbolt-update/writers=%d", writers), func(b *testing.B) {
			benchBolt(b, writers, (*bolt.DB).Update)
		})
	}
	for _, writers := range benchWriters {
		// bbolt's own group commit: concurrent calls share a transaction.
		b.Run(fmt.Sprintf("bbolt-batch/writers=%d", writers), func(b *testing.B) {
			benchBolt(b, writers, (*bolt.DB).Batch)
		})
	}
}

type benchRecord struct {
	logKey, indexKey, value, seq []byte
}

// records precomputes what each event writes, as the store would lay it out.
func records(n, writers int) []benchRecord {
	recs := make([]benchRecord, n+1)
	for i := range recs {
		stream := fmt.Sprint("bench-", i%writers)
		rev := uint64(i / writers)
		recs[i] = benchRecord{
			logKey:   logKey(uint64(i)),
			indexKey: streamKey(stream, rev),
			value:    appendRecord(nil, stream, rev, benchEvent(i)),
			seq:      seqValue(uint64(i)),
		}
	}
	return recs
}

func benchPebble(b *testing.B, writers int) {
	cache := pebble.NewCache(defaultCacheSize)
	defer cache.Unref()
	db, err := pebble.Open(b.TempDir(), &pebble.Options{
		Cache:              cache,
		MemTableSize:       defaultMemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	recs := records(b.N, writers)
	runWriters(b, writers, func(_, i int) error {
		batch := db.NewBatch()
		defer batch.Close()
		if err := batch.Set(recs[i].logKey, recs[i].value, nil); err != nil {
			return err
		}
		if err := batch.Set(recs[i].indexKey, recs[i].seq, nil); err != nil {
			return err
		}
		return batch.Commit(pebble.Sync)
	})
}

func benchBolt(b *testing.B, writers int, commit func(*bolt.DB, func(*bolt.Tx) error) error) {
	db, err := bolt.Open(b.TempDir()+"/bolt.db", 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	log, index := []byte("l"), []byte("s")
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket(log); err != nil {
			return err
		}
		_, err := tx.CreateBucket(index)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	recs := records(b.N, writers)
	runWriters(b, writers, func(_, i int) error {
		return commit(db, func(tx *bolt.Tx) error {
			if err := tx.Bucket(log).Put(recs[i].logKey, recs[i].value); err != nil {
				return err
			}
			return tx.Bucket(index).Put(recs[i].indexKey, recs[i].seq)
		})
	})
}

// BenchmarkReadAll reads a log of a million events from the start, in the
// pages a subscription catching up uses. The log is built once, before the
// timed loop, with large synced batches.
func BenchmarkReadAll(b *testing.B) {
	const total, batch, streams = 1_000_000, 1000, 1000
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	built := time.Now()
	evs := make([]domain.Event, batch)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	for n := 0; n < total; n += batch {
		stream := fmt.Sprint("bench-", n/batch%streams)
		if _, err := s.Append(ctx, stream, eventstore.Any(), evs...); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("built %d events in %s", total, time.Since(built).Round(time.Millisecond))
	for b.Loop() {
		after, n := eventstore.Start, 0
		for {
			page, err := s.ReadAll(ctx, after, readChunk)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			n += len(page)
			after = page[len(page)-1].Position
		}
		if n != total {
			b.Fatalf("read %d events, want %d", n, total)
		}
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
