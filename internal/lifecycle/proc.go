package lifecycle

import (
	"sort"

	"github.com/tcplens/tcplens/internal/event"
)

// Proc is the running tally of one owning process (pid 0: owner unknown).
type Proc struct {
	Pid             uint32
	Comm            string
	CgroupID        uint64 // the owner's cgroup (v2 id) when it took its sockets
	Active, Passive uint64 // connection attempts by role
	Refused         uint64 // failed handshakes by result
	Timeout         uint64
	Reset           uint64
	Handshake       Hist // latency of successful handshakes
	TimeWaitEnded   uint64
	TimeWaitDwell   Hist
	ResetsTx        uint64
	ResetsRx        uint64
	exited          bool
}

// Summary is a Proc's state at one moment, with its live gauges.
type Summary struct {
	*Proc
	TS                uint64
	TimeWaitNow       int
	CloseWaitStuck    int
	CloseWaitOldestNs uint64
	Cgroup            string // CgroupID's path, filled by the caller when known
}

func (a *Analyzer) proc(r *event.Record) *Proc {
	p := a.procOf(r.Owner, r.Comm)
	if r.CgroupID != 0 && r.Owner != 0 {
		p.CgroupID = r.CgroupID
	}
	return p
}

func (a *Analyzer) procOf(pid uint32, comm string) *Proc {
	p, ok := a.procs[pid]
	if !ok {
		p = &Proc{Pid: pid}
		a.procs[pid] = p
	}
	if comm != "" && pid != 0 {
		p.Comm = comm
	}
	return p
}

// Summaries returns one summary per process, by pid, and forgets processes
// that have exited and hold no live TIME_WAIT or CLOSE_WAIT socket (their
// last summary is in this result), so memory follows live processes.
func (a *Analyzer) Summaries(now uint64) []Summary {
	stuck := map[uint32]int{}
	oldest := map[uint32]uint64{}
	for _, e := range a.cw {
		if now < e.since || now-e.since < a.cfg.CloseWaitAfter || a.cfg.CloseWaitAfter == 0 {
			continue
		}
		stuck[e.conn.Owner]++
		if age := now - e.since; age > oldest[e.conn.Owner] {
			oldest[e.conn.Owner] = age
		}
	}
	twByOwner := map[uint32]int{} // see TopRemotes
	for _, lt := range a.tw {
		twByOwner[lt.conn.owner]++
	}
	out := make([]Summary, 0, len(a.procs))
	for pid, p := range a.procs {
		s := Summary{Proc: p, TS: now, TimeWaitNow: twByOwner[pid],
			CloseWaitStuck: stuck[pid], CloseWaitOldestNs: oldest[pid]}
		if !s.empty() {
			out = append(out, s)
		}
		if p.exited && twByOwner[pid] == 0 && stuck[pid] == 0 && !a.ownsCloseWait(pid) {
			delete(a.procs, pid)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	return out
}

// empty: nothing to say about this process (yet).
func (s *Summary) empty() bool {
	p := s.Proc
	return p.Active == 0 && p.Passive == 0 && p.TimeWaitEnded == 0 && p.ResetsTx == 0 && p.ResetsRx == 0 &&
		s.TimeWaitNow == 0 && s.CloseWaitStuck == 0
}

func (a *Analyzer) ownsCloseWait(pid uint32) bool {
	for _, e := range a.cw {
		if e.conn.Owner == pid {
			return true
		}
	}
	return false
}
