package main

import (
	"os"
	"runtime"
)

// maxProcs is how many CPUs tcplens's Go code may use at once: one, unless
// GOMAXPROCS in the environment says otherwise. The data path is a single
// goroutine (ring buffer, decode, analyses, output), so a second P only
// adds scheduler traffic on the host tcplens watches: idle Ps woken by
// cross-CPU interrupts, threads spinning for work. Measured on a 2-CPU
// guest under loopback churn, 18 interleaved pairs of 8 s runs: one P
// used less CPU per connection in 13, as much in 2, more in 3; median
// 0.065 CPU-s per 100k connections less (~8 %), more on a busier host.
func maxProcs(getenv func(string) string) int {
	if getenv("GOMAXPROCS") != "" {
		return 0 // the runtime already applied it; leave it
	}
	return 1
}

func limitProcs() {
	if n := maxProcs(os.Getenv); n > 0 {
		runtime.GOMAXPROCS(n)
	}
}
