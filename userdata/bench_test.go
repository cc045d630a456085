package userdata

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/projections"
)

// benchMessages is the history length of the benchmarks:
// VERLAUF_BENCH_MESSAGES=1000000 for the figure.
func benchMessages(b *testing.B) int {
	if s := os.Getenv("VERLAUF_BENCH_MESSAGES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 100_000
}

// peakHeap samples HeapInuse until stopped and returns the largest.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func benchSource(b *testing.B, n int) (*env, jid.JID) {
	e := newEnv(b)
	alice := mustJID(b, "alice@example.org")
	if err := e.accounts.Register(context.Background(), alice, alicePW); err != nil {
		b.Fatal(err)
	}
	e.unlock(alice, alicePW)
	e.fill(alice, n, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	// Let the MAM index catch up first, or the first export pays for it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := e.runner.WaitFor(ctx, projections.ArchiveName, e.head()); err != nil {
		b.Fatal(err)
	}
	return e, alice
}

func BenchmarkExport(b *testing.B) {
	n := benchMessages(b)
	e, alice := benchSource(b, n)
	for _, f := range []Format{XEP0227, JSONLines} {
		b.Run(string(f), func(b *testing.B) {
			runtime.GC()
			stop := peakHeap()
			start := time.Now()
			var bytes int64
			for b.Loop() {
				cw := &countWriter{w: io.Discard}
				if _, err := Export(context.Background(), cw, e.deps(), alice, f, ExportOptions{}); err != nil {
					b.Fatal(err)
				}
				bytes = cw.n
			}
			el := time.Since(start).Seconds() / float64(b.N)
			b.ReportMetric(float64(n)/el, "msgs/s")
			b.ReportMetric(float64(bytes)/el/1e6, "MB/s")
			b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(bytes)/(1<<20), "file-MiB")
		})
	}
}

func BenchmarkImport(b *testing.B) {
	n := benchMessages(b)
	src, alice := benchSource(b, n)
	path := filepath.Join(b.TempDir(), "export.xml")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Export(context.Background(), f, src.deps(), alice, XEP0227, ExportOptions{}); err != nil {
		b.Fatal(err)
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	f.Close()
	var total time.Duration
	var peak uint64
	for b.Loop() {
		b.StopTimer()
		dst := newEnv(b)
		in, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		stop := peakHeap()
		b.StartTimer()
		start := time.Now()
		if _, err := Import(context.Background(), in, dst.deps(), ImportOptions{Password: alicePW}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		peak = max(peak, stop())
		in.Close()
		b.StartTimer()
	}
	el := total.Seconds() / float64(b.N)
	b.ReportMetric(float64(n)/el, "msgs/s")
	b.ReportMetric(float64(size)/el/1e6, "MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
