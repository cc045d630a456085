package embedded

import (
	"fmt"
	"syscall"
	"time"
)

// ErrDiskFull is returned by Append while the file system under the store
// has less free space than Options.ReserveBytes. Nothing of the append was
// written; appends succeed again once space is freed, without a reopen. It
// matches syscall.ENOSPC with errors.Is, so that callers above the Store
// port can recognise it without importing this package.
var ErrDiskFull = fmt.Errorf("embedded: free disk space below the reserve: %w", syscall.ENOSPC)

// spaceRecheck bounds how long a free-space reading is trusted while the
// disk is far from the reserve; close to it, every append measures again.
const spaceRecheck = 100 * time.Millisecond

// space refuses appends before the disk is full. Pebble cannot survive a
// full disk: a failed WAL write panics inside its commit pipeline, and a
// failed MANIFEST write is fatal. So the store stops taking appends while
// a reserve is still free, which leaves room for what Pebble writes on its
// own (memtable flushes, compactions, the MANIFEST) and for the other
// stores in the data directory to apply what was already appended.
// Guarded by Store.mu.
type space struct {
	reserve int64
	free    func() (int64, error) // bytes available to the server
	// What the last reading said, when, and how much was appended since.
	last    int64
	at      time.Time
	written int64
}

// check reports ErrDiskFull if an append of n bytes would eat into the
// reserve.
func (s *space) check(n int64, now time.Time) error {
	if s.reserve <= 0 {
		return nil
	}
	near := s.last-s.written-n < 2*s.reserve
	if s.at.IsZero() || near || now.Sub(s.at) >= spaceRecheck {
		free, err := s.free()
		if err != nil {
			return fmt.Errorf("embedded: free disk space: %w", err)
		}
		s.last, s.at, s.written = free, now, 0
	}
	if s.last-s.written-n < s.reserve {
		return fmt.Errorf("%w (%d bytes free, %d reserved)", ErrDiskFull, s.last-s.written, s.reserve)
	}
	s.written += n
	return nil
}

// statfsFree measures the space an unprivileged writer may use under dir.
func statfsFree(dir string) func() (int64, error) {
	return func() (int64, error) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return 0, err
		}
		return int64(st.Bavail) * int64(st.Bsize), nil
	}
}
