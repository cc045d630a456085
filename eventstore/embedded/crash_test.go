package embedded

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// crashDirEnv, when set, turns TestCrash into the child process that
// appends to the store in that directory until it is killed.
const crashDirEnv = "VERLAUF_EMBEDDED_CRASH_CHILD_DIR"

const crashWriters = 4

// TestCrash kills a process that appends to the store with SIGKILL, several
// times on the same directory, and checks after each kill that the store
// opens, holds every append the child had acknowledged (printed) before it
// died, has no hole in any stream or in the log, and takes new appends.
func TestCrash(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	acked := map[string]map[uint64]uuid.UUID{} // stream → revision → event
	for round := range 3 {
		n := crashRound(t, dir, 300+100*round, acked)
		t.Logf("round %d: child acknowledged %d events before SIGKILL", round, n)
		verifyAfterCrash(t, dir, acked)
	}
}

// crashRound runs the child until it has acknowledged at least killAfter
// events, kills it, and records every acknowledgement it printed.
func crashRound(t *testing.T, dir string, killAfter int, acked map[string]map[uint64]uuid.UUID) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	n := 0
	lines := bufio.NewScanner(out)
	// Lines the child wrote before it died are still in the pipe; they
	// were acknowledged, so they are read and checked too.
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) != 3 {
			continue // the testing framework's own output
		}
		rev, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("child printed %q: %v", lines.Text(), err)
		}
		id, err := uuid.Parse(f[2])
		if err != nil {
			t.Fatalf("child printed %q: %v", lines.Text(), err)
		}
		if acked[f[0]] == nil {
			acked[f[0]] = map[uint64]uuid.UUID{}
		}
		acked[f[0]][rev] = id
		n++
		if n >= killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill: %v", err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended on its own after %d acks (%v); stderr:\n%s", n, err, stderr.String())
	}
	return n
}

func verifyAfterCrash(t *testing.T, dir string, acked map[string]map[uint64]uuid.UUID) {
	t.Helper()
	ctx := t.Context()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("Open after SIGKILL: %v", err)
	}
	defer s.Close()
	total := 0
	for stream, revs := range acked {
		evs, err := s.ReadStream(ctx, stream, 0, eventstore.Forwards, math.MaxInt32)
		if err != nil {
			t.Fatalf("ReadStream(%q): %v", stream, err)
		}
		total += len(evs)
		for i, ev := range evs {
			if ev.Revision != uint64(i) || ev.Stream != stream {
				t.Fatalf("%q: event %d is %q@%d", stream, i, ev.Stream, ev.Revision)
			}
		}
		for rev, id := range revs {
			if rev >= uint64(len(evs)) {
				t.Fatalf("%q: acknowledged revision %d lost (stream has %d events)", stream, rev, len(evs))
			}
			if evs[rev].ID != id {
				t.Fatalf("%q@%d holds %s, acknowledged %s", stream, rev, evs[rev].ID, id)
			}
		}
	}
	all, err := s.ReadAll(ctx, eventstore.Start, math.MaxInt32)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	for i, ev := range all {
		if ev.Position.Commit != uint64(i+1) {
			t.Fatalf("log position %d holds %s (a hole before it)", i+1, ev.Position)
		}
	}
	if len(all) != total {
		t.Fatalf("log has %d events, streams %d", len(all), total)
	}
	// New appends go on from the recovered heads.
	for stream := range acked {
		last, err := s.ReadStream(ctx, stream, math.MaxUint64, eventstore.Backwards, 1)
		if err != nil || len(last) != 1 {
			t.Fatalf("ReadStream(%q) backwards: %d events, %v", stream, len(last), err)
		}
		if _, err := s.Append(ctx, stream, eventstore.Exact(last[0].Revision), event(`{"after":"crash"}`)); err != nil {
			t.Fatalf("Append after crash: %v", err)
		}
	}
}

// crashChild appends to crashWriters streams from as many goroutines, in
// batches of one to three events, and prints "stream revision id" for every
// event of every append that returned. It never stops by itself before the
// safety timeout: the parent kills it.
func crashChild(dir string) {
	time.AfterFunc(2*time.Minute, func() { os.Exit(3) })
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var out sync.Mutex // one write per line, never interleaved
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			stream := fmt.Sprintf("crash-%d", w)
			exp := eventstore.NoStream()
			if last, err := s.ReadStream(ctx, stream, math.MaxUint64, eventstore.Backwards, 1); err == nil && len(last) == 1 {
				exp = eventstore.Exact(last[0].Revision)
			}
			for i := 0; ; i++ {
				batch := make([]domain.Event, 1+i%3)
				for j := range batch {
					batch[j] = event(fmt.Sprintf(`{"w":%d,"i":%d,"j":%d}`, w, i, j))
				}
				res, err := s.Append(ctx, stream, exp, batch...)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				var b strings.Builder
				first := res.NextRevision + 1 - uint64(len(batch))
				for j, ev := range batch {
					fmt.Fprintf(&b, "%s %d %s\n", stream, first+uint64(j), ev.ID)
				}
				out.Lock()
				_, err = os.Stdout.WriteString(b.String())
				out.Unlock()
				if err != nil {
					os.Exit(2)
				}
				exp = eventstore.Exact(res.NextRevision)
			}
		})
	}
	wg.Wait()
}
