package lifecycle

import (
	"math/bits"
	"testing"
)

// kernelBucket is bpf/tcplens.bpf.c agg_bucket, transcribed.
func kernelBucket(v uint64) int {
	if v < 1<<AggMinShift {
		return 0
	}
	if v >= 1<<AggMaxShift {
		v = 1<<AggMaxShift - 1
	}
	e := bits.Len64(v) - 1
	mant := (v >> (e - subBits)) & (1<<subBits - 1)
	return (e-AggMinShift)<<subBits | int(mant)
}

// A kernel bucket's midpoint falls into the Hist bucket that holds the
// same values as the kernel bucket: percentiles match event mode's.
func TestAggBucketsMatchHist(t *testing.T) {
	for _, v := range []uint64{1 << 10, 1500, 50_000, 1e6, 999_999_999, 60e9, 1<<38 - 1} {
		kb := kernelBucket(v)
		if kb >= AggBuckets {
			t.Fatalf("%d: kernel bucket %d out of range", v, kb)
		}
		if got, want := bucketOf(aggBucketMid(kb)), bucketOf(v); got != want {
			t.Errorf("%d: kernel bucket %d maps to Hist bucket %d, want %d", v, kb, got, want)
		}
	}
	if kernelBucket(5) != 0 || kernelBucket(1<<50) != AggBuckets-1 {
		t.Error("clamping")
	}
}

func TestAggProc(t *testing.T) {
	var ref Hist
	hs := make([]uint64, AggBuckets)
	for v := uint64(1); v <= 1000; v++ {
		ref.Add(v * 10_000)
		hs[kernelBucket(v*10_000)]++
	}
	a := Agg{Pid: 7, Comm: "app", Active: 3, Passive: 4, Refused: 1, Timeout: 2, Reset: 5, ResetsTx: 6, ResetsRx: 8,
		TimeWaitEnded: 9, HandshakeHist: hs, HandshakeMax: 1e7, DwellHist: make([]uint64, AggBuckets)}
	p := a.Proc()
	if p.Pid != 7 || p.Comm != "app" || p.Active != 3 || p.Passive != 4 || p.Refused != 1 || p.Timeout != 2 ||
		p.Reset != 5 || p.ResetsTx != 6 || p.ResetsRx != 8 || p.TimeWaitEnded != 9 {
		t.Errorf("counts %+v", p)
	}
	if p.Handshake.Count() != 1000 || p.Handshake.Max() != 1e7 {
		t.Errorf("hist count %d max %d", p.Handshake.Count(), p.Handshake.Max())
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 1} {
		if got, want := p.Handshake.Quantile(q), ref.Quantile(q); got != want {
			t.Errorf("q%.2f = %d, event mode says %d", q, got, want)
		}
	}
	if p.TimeWaitDwell.Count() != 0 || p.TimeWaitDwell.Max() != 0 || p.TimeWaitDwell.Quantile(0.5) != 0 {
		t.Error("empty dwell histogram")
	}
}

func TestMergeAggs(t *testing.T) {
	aggs := []Agg{
		{Pid: 20, Comm: "srv", Passive: 2, TimeWaitLive: 3},
		{Pid: 10, Comm: "cli", Active: 5, TimeWaitLive: -1}, // an end without its start
	}
	cw := []Summary{
		{Proc: &Proc{Pid: 20, Comm: "srv"}, CloseWaitStuck: 1, CloseWaitOldestNs: 5e9},
		{Proc: &Proc{Pid: 30, Comm: "child"}, CloseWaitStuck: 2, CloseWaitOldestNs: 7e9},
	}
	got := MergeAggs(aggs, cw, 99)
	if len(got) != 3 || got[0].Pid != 10 || got[1].Pid != 20 || got[2].Pid != 30 {
		t.Fatalf("pids %+v", got)
	}
	if got[0].Active != 5 || got[0].TimeWaitNow != 0 || got[0].TS != 99 {
		t.Errorf("cli %+v", got[0])
	}
	if got[1].Passive != 2 || got[1].TimeWaitNow != 3 || got[1].CloseWaitStuck != 1 || got[1].CloseWaitOldestNs != 5e9 {
		t.Errorf("srv %+v", got[1])
	}
	if got[2].Comm != "child" || got[2].CloseWaitStuck != 2 || got[2].CloseWaitOldestNs != 7e9 || got[2].Active != 0 {
		t.Errorf("child %+v", got[2])
	}
	if n := TimeWaitLive(aggs); n != 3 {
		t.Errorf("live %d", n)
	}
}
