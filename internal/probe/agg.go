package probe

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/lifecycle"
)

// Summary-only mode (Config.Aggregate): the kernel folds transitions,
// TIME_WAIT ends and resets into per-process aggregates; these read them.

// Aggregates reads every process's aggregate, summed over CPUs.
func (p *Probe) Aggregates() ([]lifecycle.Agg, error) {
	var (
		pid    uint32
		perCPU []bpfobj.TcplensProcAgg
		out    []lifecycle.Agg
	)
	it := p.objs.Aggs.Iterate()
	for it.Next(&pid, &perCPU) {
		out = append(out, sumAgg(pid, perCPU))
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("read per-process aggregates: %w", err)
	}
	return out, nil
}

// sumAgg adds up one process's per-CPU values. Counts wrap around: a
// decrement on one CPU cancels an increment on another.
func sumAgg(pid uint32, perCPU []bpfobj.TcplensProcAgg) lifecycle.Agg {
	a := lifecycle.Agg{Pid: pid, HandshakeHist: make([]uint64, lifecycle.AggBuckets), DwellHist: make([]uint64, lifecycle.AggBuckets)}
	var live uint64
	hs := make([]uint32, lifecycle.AggBuckets)
	tw := make([]uint32, lifecycle.AggBuckets)
	for i := range perCPU {
		v := &perCPU[i]
		a.Active += v.Active
		a.Passive += v.Passive
		a.Refused += v.Refused
		a.Timeout += v.Timeout
		a.Reset += v.Reset
		a.ResetsTx += v.ResetsTx
		a.ResetsRx += v.ResetsRx
		a.TimeWaitEnded += v.TwEnded
		a.TimeWaitExpired += v.TwExpired
		a.TimeWaitCancelled += v.TwCancelled
		live += v.TwLive
		a.HandshakeMax = max(a.HandshakeMax, v.HsMaxNs)
		a.DwellMax = max(a.DwellMax, v.TwMaxNs)
		if a.Comm == "" && v.Comm[0] != 0 {
			a.Comm = cString(v.Comm[:])
		}
		for b := range hs {
			hs[b] += v.HsHist[b]
			tw[b] += v.TwHist[b]
		}
	}
	a.TimeWaitLive = int64(live)
	for b := range hs {
		a.HandshakeHist[b], a.DwellHist[b] = uint64(hs[b]), uint64(tw[b])
	}
	return a
}

func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// HasAggregate reports whether the kernel holds an aggregate for pid (it
// did TCP while traced).
func (p *Probe) HasAggregate(pid uint32) bool {
	var perCPU []bpfobj.TcplensProcAgg
	return p.objs.Aggs.Lookup(pid, &perCPU) == nil
}

// DeleteAggregate forgets an exited process's aggregate.
func (p *Probe) DeleteAggregate(pid uint32) error {
	err := p.objs.Aggs.Delete(pid)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// CloseWaitSince lists the tracked sockets that entered CLOSE_WAIT at or
// before the monotonic time before (sockets seeded by the start-up scan,
// whose entry time is unknown, excluded), passing the configured filters.
func (p *Probe) CloseWaitSince(before uint64) ([]event.Record, error) {
	var (
		cookie uint64
		si     bpfobj.TcplensSockInfo
		out    []event.Record
	)
	it := p.objs.Socks.Iterate()
	for it.Next(&cookie, &si) {
		if event.State(si.State) != event.CloseWait || si.StateSinceNs == 0 || si.StateSinceNs > before {
			continue
		}
		if !p.passes(&si) {
			continue
		}
		out = append(out, recordOf(cookie, &si))
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("list CLOSE_WAIT sockets: %w", err)
	}
	return out, nil
}

func (p *Probe) passes(si *bpfobj.TcplensSockInfo) bool {
	c := p.cfg
	return (c.PID == 0 || si.OwnerTgid == c.PID) &&
		(c.Port == 0 || si.Sport == c.Port || si.Dport == c.Port) &&
		(c.Family == 0 || si.Family == c.Family)
}

func recordOf(cookie uint64, si *bpfobj.TcplensSockInfo) event.Record {
	fam := event.Family(si.Family)
	return event.Record{
		Kind: event.KindState, TS: si.StateSinceNs, StateSince: 0, Cookie: cookie, OpenNS: si.OpenNs, CgroupID: si.CgroupId,
		Owner: si.OwnerTgid, Comm: cString(si.Comm[:]), FD: -1, Family: fam,
		SAddr: event.Addr(fam, &si.Saddr), DAddr: event.Addr(fam, &si.Daddr), SPort: si.Sport, DPort: si.Dport,
		Old: event.Established, New: event.CloseWait, SockFlags: si.Flags,
	}
}

// Watch asks the kernel to send every further transition of a socket in
// CLOSE_WAIT (summary-only mode). It reports false, and unwatches, when
// the socket has meanwhile left CLOSE_WAIT: then no transition is missed
// either way.
func (p *Probe) Watch(cookie uint64) (bool, error) {
	one := uint8(1)
	if err := p.objs.CwWatch.Update(cookie, one, ebpf.UpdateAny); err != nil {
		return false, fmt.Errorf("watch socket %d: %w", cookie, err)
	}
	var si bpfobj.TcplensSockInfo
	if err := p.objs.Socks.Lookup(cookie, &si); err == nil && event.State(si.State) == event.CloseWait {
		return true, nil
	}
	_ = p.objs.CwWatch.Delete(cookie)
	return false, nil
}
