package main

import (
	"os"
	"runtime"
)

// minProcs is the fewest Ps (GOMAXPROCS) the server runs with, whatever
// the number of cores.
//
// The embedded store makes every archived message durable with an fsync of
// Pebble's write-ahead log, and Pebble's background work writes files too:
// blocking system calls. Go hands a P held by a thread blocked in a system
// call to another thread only when sysmon notices, after 20 µs to 10 ms,
// and the WAL's flusher waits in the same run queue as thousands of session
// goroutines. With one P (a one-core machine, or a server pinned with
// taskset) the sessions stall during every fsync and the flusher starves
// between them, so group commit collapses to a few events per fsync:
// measured with `GOMAXPROCS=1 taskset -c 0` and 1 000 load users, 250
// delivered messages/s against 1 050–1 400 with 2–8 Ps on the same core
// (ARCHITECTURE.md, Measurements). Extra Ps on one core cost a few
// context switches; they let the kernel run a session while a thread
// waits on the disk.
const minProcs = 4

// procsFloor returns the GOMAXPROCS to set, or 0 to leave the runtime's
// choice: an operator's explicit GOMAXPROCS is always kept.
func procsFloor(current int, explicit bool) int {
	if explicit || current >= minProcs {
		return 0
	}
	return minProcs
}

// raiseProcs applies procsFloor to this process and returns the new value
// (0: unchanged).
func raiseProcs() int {
	_, explicit := os.LookupEnv("GOMAXPROCS")
	n := procsFloor(runtime.GOMAXPROCS(0), explicit)
	if n > 0 {
		runtime.GOMAXPROCS(n)
	}
	return n
}
