package main

import (
	"time"

	"github.com/tcplens/tcplens/internal/lifecycle"
)

// Summary-only mode (--no-events): the kernel keeps the per-process
// counts and histograms; the ring buffer carries only process exits and
// the transitions of CLOSE_WAIT sockets user space found stuck.

// forgetAfter: an exited process's aggregate is kept this long at most
// while it still has live TIME_WAIT sockets (they end within 60 s).
const forgetAfter = uint64(3 * time.Minute)

type aggState struct {
	scanEvery uint64            // how often socks is searched for CLOSE_WAIT
	nextScan  uint64            // monotonic ns
	gone      map[uint32]uint64 // exited processes -> when
	last      []lifecycle.Agg   // the aggregates read last
}

func newAggState(opts options, start uint64) *aggState {
	// Stuck reports come at most a quarter of the threshold late.
	every := min(max(opts.closeWaitAfter/4, 100*time.Millisecond), 5*time.Second)
	return &aggState{scanEvery: uint64(every), nextScan: start, gone: map[uint32]uint64{}}
}

func (a *aggState) exited(pid uint32, ts uint64) { a.gone[pid] = ts }

// watchCloseWait finds sockets in CLOSE_WAIT longer than the threshold,
// which the kernel did not send, and hands them to the analyzer.
func (s *session) watchCloseWait(now uint64) error {
	if s.agg == nil || now < s.agg.nextScan {
		return nil
	}
	s.agg.nextScan = now + s.agg.scanEvery
	after := uint64(s.opts.closeWaitAfter)
	if now < after {
		return nil
	}
	recs, err := s.t.WatchCloseWait(now - after)
	if err != nil {
		return err
	}
	for i := range recs {
		if err := s.an.Record(&recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// rawSummaries is one summary per process: from the analyzer, or in
// summary-only mode from the kernel's aggregates merged with the
// analyzer's CLOSE_WAIT gauges. Exited processes with nothing live are
// then forgotten in the kernel too (this was their last summary).
func (s *session) rawSummaries(now uint64) ([]lifecycle.Summary, error) {
	cw := s.an.Summaries(now)
	if s.agg == nil {
		return cw, nil
	}
	aggs, err := s.t.Aggregates()
	if err != nil {
		return nil, err
	}
	s.agg.last = aggs
	sums := lifecycle.MergeAggs(aggs, cw, now)
	for _, sum := range sums {
		at, gone := s.agg.gone[sum.Pid]
		if !gone || sum.Pid == 0 || sum.CloseWaitStuck > 0 {
			continue
		}
		if sum.TimeWaitNow == 0 || now-at > forgetAfter {
			if err := s.t.ForgetAggregate(sum.Pid); err != nil {
				return nil, err
			}
		}
	}
	// Kept a while: a TIME_WAIT can still begin after its owner exited.
	for pid, at := range s.agg.gone {
		if now-at > forgetAfter {
			delete(s.agg.gone, pid)
		}
	}
	return sums, nil
}
