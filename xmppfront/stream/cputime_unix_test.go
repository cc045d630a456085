//go:build unix

package stream

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time the test process has used. Benchmarks report
// it per operation next to ns/op, which on a shared, busy machine measures
// the queue more than the code.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
