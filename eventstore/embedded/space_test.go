package embedded

import (
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"verlauf.im/verlauf/eventstore"
)

// fakeDisk is a file system whose free space the test sets.
type fakeDisk struct {
	mu   sync.Mutex
	free int64
}

func (d *fakeDisk) set(n int64) {
	d.mu.Lock()
	d.free = n
	d.mu.Unlock()
}

func (d *fakeDisk) read() (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.free, nil
}

// stale makes the store's last free-space reading old, as it is
// spaceRecheck after it was taken.
func stale(s *Store) {
	s.mu.Lock()
	s.space.at = s.space.at.Add(-spaceRecheck)
	s.mu.Unlock()
}

// TestDiskFullRefusesAppendsAndRecovers: below the reserve an append is
// refused before anything is written, the store stays usable, and appends
// succeed again as soon as space is back, without a reopen.
func TestDiskFullRefusesAppendsAndRecovers(t *testing.T) {
	const reserve = 1 << 20
	s := openTest(t, t.TempDir())
	disk := &fakeDisk{free: 100 << 20}
	s.mu.Lock()
	s.space = space{reserve: reserve, free: disk.read}
	s.mu.Unlock()
	ctx := t.Context()

	if _, err := s.Append(ctx, "a", eventstore.NoStream(), event(`{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	disk.set(reserve + 100) // less than an event above the reserve
	stale(s)
	_, err := s.Append(ctx, "a", eventstore.Exact(0), event(`{"n":1}`))
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append with the disk full: %v, want ErrDiskFull matching ENOSPC", err)
	}
	if h, _ := s.Head(ctx); h.Commit != 1 {
		t.Fatalf("a refused append moved the head to %s", h)
	}
	if evs, err := s.ReadStream(ctx, "a", 0, eventstore.Forwards, 10); err != nil || len(evs) != 1 {
		t.Fatalf("reads with the disk full: %d events, %v", len(evs), err)
	}

	disk.set(100 << 20)
	stale(s)
	res, err := s.Append(ctx, "a", eventstore.Exact(0), event(`{"n":1}`))
	if err != nil {
		t.Fatalf("append once space is back: %v", err)
	}
	if res.NextRevision != 1 || res.Position.Commit != 2 {
		t.Fatalf("append after recovery: %+v, want revision 1 at position 2", res)
	}
}

// TestSpaceCheckStopsAtTheReserve: appends that fill the disk are refused
// before they reach the reserve, though a reading far from it is trusted
// for a while instead of measured on every append.
func TestSpaceCheckStopsAtTheReserve(t *testing.T) {
	const reserve, chunk = 1 << 20, 64 << 10
	disk := &fakeDisk{free: 10 << 20}
	reads := 0
	sp := space{reserve: reserve, free: func() (int64, error) { reads++; return disk.read() }}
	now := time.Now() // frozen: only nearness makes the check measure again
	checks := 0
	for ; checks < 1000; checks++ {
		if err := sp.check(chunk, now); err != nil {
			if !errors.Is(err, ErrDiskFull) {
				t.Fatal(err)
			}
			break
		}
		disk.set(disk.free - chunk) // the append lands on the disk
		if disk.free < reserve {
			t.Fatalf("after %d appends the disk has %d bytes free, below the reserve", checks+1, disk.free)
		}
	}
	if checks == 1000 {
		t.Fatal("never refused")
	}
	if reads >= checks {
		t.Fatalf("free space measured %d times for %d appends: nothing was trusted", reads, checks)
	}
}
