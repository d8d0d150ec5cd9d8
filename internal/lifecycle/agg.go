package lifecycle

import "sort"

// Kernel histogram layout (bpf/tcplens.h AGG_*): 2^subBits buckets per
// power of two from 2^AggMinShift ns; the same buckets as Hist above it.
const (
	AggMinShift = 10
	AggMaxShift = 38
	AggBuckets  = (AggMaxShift - AggMinShift) << subBits
)

// Agg is one process's in-kernel aggregate (summary-only mode), already
// summed over CPUs.
type Agg struct {
	Pid                      uint32
	Comm                     string
	Active, Passive          uint64
	Refused, Timeout, Reset  uint64
	ResetsTx, ResetsRx       uint64
	TimeWaitEnded            uint64
	TimeWaitExpired          uint64
	TimeWaitCancelled        uint64 // killed or reused: the kernel cannot tell
	TimeWaitLive             int64
	HandshakeMax, DwellMax   uint64
	HandshakeHist, DwellHist []uint64 // AggBuckets counts each (shorter: zero-padded)
}

// aggBucketMid is a representative value of kernel bucket b: the midpoint
// of the bucket of Hist that holds the same values.
func aggBucketMid(b int) uint64 {
	exp := b>>subBits + AggMinShift
	mant := uint64(b & (1<<subBits - 1))
	lo := (1<<subBits | mant) << (exp - subBits)
	return lo + (uint64(1)<<(exp-subBits))/2
}

// histFrom rebuilds a Hist from kernel bucket counts and the exact maximum.
func histFrom(counts []uint64, max uint64) Hist {
	var h Hist
	for b, c := range counts {
		if c == 0 || b >= AggBuckets {
			continue
		}
		h.counts[bucketOf(aggBucketMid(b))] += c
		h.n += c
	}
	if h.n > 0 {
		h.max = max
	}
	return h
}

// Proc converts the aggregate into the tally the outputs print.
func (a *Agg) Proc() *Proc {
	return &Proc{
		Pid: a.Pid, Comm: a.Comm,
		Active: a.Active, Passive: a.Passive,
		Refused: a.Refused, Timeout: a.Timeout, Reset: a.Reset,
		Handshake:     histFrom(a.HandshakeHist, a.HandshakeMax),
		TimeWaitEnded: a.TimeWaitEnded,
		TimeWaitDwell: histFrom(a.DwellHist, a.DwellMax),
		ResetsTx:      a.ResetsTx, ResetsRx: a.ResetsRx,
	}
}

// MergeAggs builds the summaries of summary-only mode: counts and live
// TIME_WAIT from the kernel's aggregates, CLOSE_WAIT gauges from cw (the
// Analyzer's summaries, fed only the stuck sockets). One summary per pid.
func MergeAggs(aggs []Agg, cw []Summary, now uint64) []Summary {
	byPid := make(map[uint32]int, len(aggs)+len(cw))
	out := make([]Summary, 0, len(aggs)+len(cw))
	for i := range aggs {
		a := &aggs[i]
		live := int(a.TimeWaitLive)
		if live < 0 { // an end seen without its start (began before tracing, evicted)
			live = 0
		}
		byPid[a.Pid] = len(out)
		out = append(out, Summary{Proc: a.Proc(), TS: now, TimeWaitNow: live})
	}
	for _, c := range cw {
		i, ok := byPid[c.Pid]
		if !ok {
			p := &Proc{Pid: c.Pid}
			if c.Proc != nil {
				p.Comm = c.Comm
			}
			byPid[c.Pid] = len(out)
			out = append(out, Summary{Proc: p, TS: now})
			i = len(out) - 1
		}
		out[i].CloseWaitStuck += c.CloseWaitStuck
		if c.CloseWaitOldestNs > out[i].CloseWaitOldestNs {
			out[i].CloseWaitOldestNs = c.CloseWaitOldestNs
		}
		if out[i].Comm == "" && c.Proc != nil {
			out[i].Comm = c.Comm
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	return out
}

// TimeWaitLive sums the live TIME_WAIT sockets of all aggregates.
func TimeWaitLive(aggs []Agg) int {
	n := 0
	for i := range aggs {
		if aggs[i].TimeWaitLive > 0 {
			n += int(aggs[i].TimeWaitLive)
		}
	}
	return n
}
