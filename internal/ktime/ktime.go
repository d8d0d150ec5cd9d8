// Package ktime converts the kernel's CLOCK_MONOTONIC timestamps (what
// bpf_ktime_get_ns returns) to wall-clock time, in one place.
package ktime

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock maps monotonic nanoseconds to wall time. The offset is measured
// once; the wall clock stepping later does not reorder events.
type Clock struct {
	bootWallNs int64 // wall time (Unix ns) at monotonic zero
}

// NewClock measures the offset between the wall and monotonic clocks.
func NewClock() Clock {
	var best Clock
	bestGap := int64(1 << 62)
	// Take the tightest of a few samples to bound the error by the gap.
	for i := 0; i < 5; i++ {
		w1 := time.Now().UnixNano()
		m := Now()
		w2 := time.Now().UnixNano()
		if gap := w2 - w1; gap < bestGap {
			bestGap = gap
			best.bootWallNs = (w1+w2)/2 - int64(m)
		}
	}
	return best
}

// FixedClock returns a clock with a given offset (for tests).
func FixedClock(bootWall time.Time) Clock { return Clock{bootWallNs: bootWall.UnixNano()} }

// Wall converts kernel monotonic ns to wall time in UTC.
func (c Clock) Wall(ns uint64) time.Time {
	return time.Unix(0, c.bootWallNs+int64(ns)).UTC()
}

// Now returns the current CLOCK_MONOTONIC time in ns, the kernel's clock.
func Now() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
