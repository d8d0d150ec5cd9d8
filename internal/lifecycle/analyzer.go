package lifecycle

import (
	"net/netip"
	"sort"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/socktable"
)

// Config tunes the analyses. Times are kernel monotonic nanoseconds.
type Config struct {
	// CloseWaitAfter: a socket this long in CLOSE_WAIT is stuck.
	CloseWaitAfter uint64
	// CloseWaitRepeat: a stuck socket is reported again this often.
	CloseWaitRepeat uint64
	// ReuseWindow: a TIME_WAIT cancelled early counts as reused when a new
	// connection with its 4-tuple appears within this window, else killed.
	ReuseWindow uint64
	// Start is when tracing began: the lower bound of the age of sockets
	// that were already in CLOSE_WAIT.
	Start uint64
}

// Owners gives the current owner of a live socket.
type Owners interface {
	Get(cookie uint64) (socktable.Entry, bool)
}

type tuple struct {
	netns        uint32
	saddr, daddr netip.Addr
	sport, dport uint16
}

func tupleOf(r *event.Record) tuple {
	return tuple{r.Netns, r.SAddr, r.DAddr, r.SPort, r.DPort}
}

type twEntry struct {
	conn     event.Record
	start    uint64
	known    bool
	cancelAt uint64
}

// liveTW is a live TIME_WAIT as kept: pointer-free (see packedRecord).
type liveTW struct {
	conn  packedRecord
	start uint64
	known bool
}

type cwEntry struct {
	conn       event.Record
	since      uint64
	atLeast    bool
	lastReport uint64
	reported   bool
}

// Analyzer consumes records and emits handshakes, accepts, TIME_WAIT ends
// and CLOSE_WAIT reports to a Sink, keeping per-process statistics.
type Analyzer struct {
	cfg    Config
	sink   Sink
	owners Owners

	established map[uint64]uint64 // accepted-side socket -> ESTABLISHED time, until accept()
	tw          map[uint64]liveTW
	comms       commTable          // command names of the records in tw
	twPending   map[uint64]twEntry // cancelled; killed or reused not yet known
	twByTuple   map[tuple]uint64
	cw          map[uint64]*cwEntry
	procs       map[uint32]*Proc

	// What the sink is handed: reused, so a line costs no allocation.
	// Sink methods must not keep the pointers.
	out struct {
		handshake Handshake
		accept    Accept
		timeWait  TimeWait
		closeWait CloseWait
	}
}

// New returns an analyzer writing to sink.
func New(cfg Config, sink Sink, owners Owners) *Analyzer {
	if cfg.ReuseWindow == 0 {
		cfg.ReuseWindow = 1e9
	}
	if cfg.CloseWaitRepeat == 0 {
		cfg.CloseWaitRepeat = cfg.CloseWaitAfter
	}
	return &Analyzer{
		cfg: cfg, sink: sink, owners: owners,
		established: map[uint64]uint64{},
		tw:          map[uint64]liveTW{},
		twPending:   map[uint64]twEntry{},
		twByTuple:   map[tuple]uint64{},
		cw:          map[uint64]*cwEntry{},
		procs:       map[uint32]*Proc{},
	}
}

// Record consumes one record.
func (a *Analyzer) Record(r *event.Record) error {
	switch r.Kind {
	case event.KindState:
		return a.state(r)
	case event.KindAccept:
		if t, ok := a.established[r.Cookie]; ok {
			delete(a.established, r.Cookie)
			if r.TS >= t {
				a.out.accept = Accept{Conn: *r, WaitNs: r.TS - t}
				return a.sink.Accept(&a.out.accept)
			}
		}
		if e, ok := a.cw[r.Cookie]; ok {
			e.conn.Owner, e.conn.Comm = r.Owner, r.Comm
		}
	case event.KindTWStart:
		a.twLive(r, startOf(r), r.StateSince != 0)
	case event.KindTWRearm:
		if e, ok := a.twPending[r.Cookie]; ok {
			a.unpend(r.Cookie, &e)
			a.twLive(&e.conn, e.start, e.known)
		} else if _, ok := a.tw[r.Cookie]; !ok {
			a.twLive(r, startOf(r), r.StateSince != 0)
		}
	case event.KindTWCancel:
		e := a.twGone(r)
		e.cancelAt = r.TS
		a.twPending[r.Cookie] = e
		a.twByTuple[tupleOf(&e.conn)] = r.Cookie
	case event.KindTWExpire:
		if e, ok := a.twPending[r.Cookie]; ok { // should not happen: expiry wins
			a.unpend(r.Cookie, &e)
		}
		e := a.twGone(r)
		return a.twEnd(&e, EndExpired, r.TS)
	case event.KindResetRx:
		a.proc(r).ResetsRx++
	case event.KindResetTx:
		a.proc(r).ResetsTx++
	case event.KindExit:
		if p, ok := a.procs[r.Owner]; ok {
			p.exited = true
		}
	}
	return nil
}

func startOf(r *event.Record) uint64 {
	if r.StateSince != 0 {
		return r.StateSince
	}
	return r.TS
}

func (a *Analyzer) state(r *event.Record) error {
	switch {
	case r.Old == event.SynSent && (r.New == event.Established || r.New == event.Close):
		if err := a.handshake(r, "active"); err != nil {
			return err
		}
	case r.Old == event.SynRecv && (r.New == event.Established || r.New == event.Close):
		if r.New == event.Established {
			a.established[r.Cookie] = r.TS
		}
		if err := a.handshake(r, "passive"); err != nil {
			return err
		}
	case r.Old == event.Close && r.New == event.SynSent, r.Old == event.Listen && r.New == event.SynRecv:
		// A new connection on the 4-tuple of a TIME_WAIT just cancelled.
		if cookie, ok := a.twByTuple[tupleOf(r)]; ok {
			e := a.twPending[cookie]
			a.unpend(cookie, &e)
			if err := a.twEnd(&e, EndReused, e.cancelAt); err != nil {
				return err
			}
		}
	}
	if r.New == event.CloseWait {
		// An inferred ->CLOSE_WAIT is timed when it was first seen: a lower bound.
		a.cw[r.Cookie] = &cwEntry{conn: *r, since: r.TS, atLeast: r.SockFlags&event.FlagInferred != 0}
		a.proc(r)
	}
	if r.Old == event.CloseWait {
		if e, ok := a.cw[r.Cookie]; ok {
			delete(a.cw, r.Cookie)
			if e.reported {
				conn := *r
				a.out.closeWait = CloseWait{Conn: conn, Status: "closed", AgeNs: r.TS - e.since, AtLeast: e.atLeast, FD: -1}
				return a.sink.CloseWait(&a.out.closeWait)
			}
		}
	}
	if r.New == event.Close {
		delete(a.established, r.Cookie)
		delete(a.cw, r.Cookie)
	}
	return nil
}

func (a *Analyzer) handshake(r *event.Record, role string) error {
	a.out.handshake = Handshake{Conn: *r, Role: role, Result: ResultOK}
	h := &a.out.handshake
	if r.New == event.Close {
		h.Result = resultOf(r.SkErr)
	}
	if r.OpenNS != 0 && r.OpenNS <= r.TS {
		h.LatencyNs, h.LatencyKnown = r.TS-r.OpenNS, true
	}
	p := a.proc(r)
	if role == "active" {
		p.Active++
	} else {
		p.Passive++
	}
	switch h.Result {
	case ResultOK:
		if h.LatencyKnown {
			p.Handshake.Add(h.LatencyNs)
		}
	case ResultRefused:
		p.Refused++
	case ResultTimeout:
		p.Timeout++
	case ResultReset:
		p.Reset++
	}
	return a.sink.Handshake(h)
}

func (a *Analyzer) twLive(conn *event.Record, start uint64, known bool) {
	a.tw[conn.Cookie] = liveTW{conn: a.comms.pack(conn), start: start, known: known}
	a.procOf(conn.Owner, conn.Comm)
}

// twGone removes a live TIME_WAIT (or describes one that began before
// tracing) and returns it.
func (a *Analyzer) twGone(r *event.Record) twEntry {
	lt, ok := a.tw[r.Cookie]
	if !ok {
		return twEntry{conn: *r, start: startOf(r), known: r.StateSince != 0}
	}
	e := twEntry{conn: a.comms.unpack(&lt.conn), start: lt.start, known: lt.known}
	delete(a.tw, r.Cookie)
	return e
}

func (a *Analyzer) unpend(cookie uint64, e *twEntry) {
	delete(a.twPending, cookie)
	if a.twByTuple[tupleOf(&e.conn)] == cookie {
		delete(a.twByTuple, tupleOf(&e.conn))
	}
}

func (a *Analyzer) twEnd(e *twEntry, end string, at uint64) error {
	a.out.timeWait = TimeWait{Conn: e.conn, End: end}
	tw := &a.out.timeWait
	tw.Conn.TS = at
	if e.known && at >= e.start {
		tw.DwellNs, tw.DwellKnown = at-e.start, true
	}
	p := a.procOf(e.conn.Owner, e.conn.Comm)
	p.TimeWaitEnded++
	if tw.DwellKnown {
		p.TimeWaitDwell.Add(tw.DwellNs)
	}
	return a.sink.TimeWait(tw)
}

// SeedCloseWait adds a socket found in CLOSE_WAIT when tracing began.
func (a *Analyzer) SeedCloseWait(conn event.Record) {
	if _, ok := a.cw[conn.Cookie]; !ok {
		a.cw[conn.Cookie] = &cwEntry{conn: conn, since: a.cfg.Start, atLeast: true}
		a.procOf(conn.Owner, conn.Comm)
	}
}

// CloseWaitDue reports whether Tick(now) will report a stuck socket, so the
// caller can refresh socket owners from the kernel's file tables first.
func (a *Analyzer) CloseWaitDue(now uint64) bool {
	for _, e := range a.cw {
		if a.dueStuck(e, now) {
			return true
		}
	}
	return false
}

func (a *Analyzer) dueStuck(e *cwEntry, now uint64) bool {
	if a.cfg.CloseWaitAfter == 0 || now < e.since || now-e.since < a.cfg.CloseWaitAfter {
		return false
	}
	return !e.reported || now-e.lastReport >= a.cfg.CloseWaitRepeat
}

// Tick runs the time-driven analyses: TIME_WAITs cancelled early with no
// new connection on their 4-tuple were killed; CLOSE_WAIT sockets past
// the threshold are reported stuck.
func (a *Analyzer) Tick(now uint64) error {
	var killed []twEntry
	for _, e := range a.twPending {
		if now >= e.cancelAt && now-e.cancelAt >= a.cfg.ReuseWindow {
			killed = append(killed, e)
		}
	}
	sort.Slice(killed, func(i, j int) bool { return killed[i].cancelAt < killed[j].cancelAt })
	for i := range killed {
		e := &killed[i]
		a.unpend(e.conn.Cookie, e)
		if err := a.twEnd(e, EndKilled, e.cancelAt); err != nil {
			return err
		}
	}
	for cookie, e := range a.cw {
		if !a.dueStuck(e, now) {
			continue
		}
		e.reported, e.lastReport = true, now
		a.out.closeWait = CloseWait{Conn: e.conn, Status: "stuck", AgeNs: now - e.since, AtLeast: e.atLeast, FD: -1}
		cw := &a.out.closeWait
		cw.Conn.TS = now
		if o, ok := a.owners.Get(cookie); ok {
			cw.Conn.Owner, cw.Conn.Comm, cw.FD = o.Owner, o.Comm, o.FD
			e.conn.Owner, e.conn.Comm = o.Owner, o.Comm
			a.procOf(o.Owner, o.Comm)
		}
		if err := a.sink.CloseWait(cw); err != nil {
			return err
		}
	}
	return nil
}

// Remote is a remote endpoint and how many TIME_WAIT sockets point at it.
type Remote struct {
	Addr  netip.AddrPort
	Count int
}

// TimeWaitNow is the number of live TIME_WAIT sockets.
func (a *Analyzer) TimeWaitNow() int { return len(a.tw) }

// TopRemotes lists the remote endpoints with the most TIME_WAIT sockets.
//
// Counted here, in one pass over the live TIME_WAITs, rather than kept up
// to date per TIME_WAIT: only summaries ask, and two more map updates per
// connection (by remote and by owner) cost more than a pass per summary.
func (a *Analyzer) TopRemotes(n int) []Remote {
	byRemote := map[netip.AddrPort]int{}
	for _, lt := range a.tw {
		byRemote[netip.AddrPortFrom(addrFrom(lt.conn.daddr, lt.conn.addrs>>2), lt.conn.dport)]++
	}
	out := make([]Remote, 0, len(byRemote))
	for ap, c := range byRemote {
		out = append(out, Remote{ap, c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Addr.String() < out[j].Addr.String()
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// CloseWaitStuck is the number of live CLOSE_WAIT sockets reported stuck.
func (a *Analyzer) CloseWaitStuck() int {
	n := 0
	for _, e := range a.cw {
		if e.reported {
			n++
		}
	}
	return n
}
