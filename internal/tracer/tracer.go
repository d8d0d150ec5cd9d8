// Package tracer runs the data path: kernel records in, decoded and
// owner-resolved events out. It wires probe, event and socktable together;
// what to do with each event is the caller's.
package tracer

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/ktime"
	"github.com/tcplens/tcplens/internal/lifecycle"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/socktable"
)

// PollInterval bounds how long a record can wait in the ring buffer when
// wake-ups are batched, and how often housekeeping runs.
const PollInterval = 100 * time.Millisecond

// rescanDelay lets a burst of process exits share one ownership re-scan.
const rescanDelay = 50 * time.Millisecond

// Handlers receive what the data path produces.
type Handlers struct {
	// Record receives each decoded record; it is reused after return.
	Record func(r *event.Record) error
	// Tick runs between reads, at least every PollInterval, with the
	// kernel's monotonic time.
	Tick func(now uint64) error
}

// Stats are user space's own counts.
type Stats struct {
	Records      uint64 // records read from the ring buffer
	DecodeErrors uint64 // records that could not be decoded
	Rescans      uint64 // ownership re-scans after owners exited
	Swept        uint64 // kernel entries of sockets that were gone (see probe.Sweep)
	Inferred     uint64 // transitions never delivered, inferred from re-scans (socktable.ReconcileCloseWait)
	Seeded       int    // sockets found by the start-up scan
}

// Tracer is a running tcplens data path.
type Tracer struct {
	probe    *probe.Probe
	table    *socktable.Table
	comms    event.CommCache
	stats    Stats
	exited   map[uint32]bool // owners gone since the last re-scan
	rescanAt time.Time
	seeds    []event.Seed  // what the start-up scan found
	start    uint64        // monotonic ns when tracing began
	rel      reliability   // loss reporting, periodic housekeeping (reliability.go)
	agg      bool          // summary-only mode: the table holds only watched CLOSE_WAIT sockets
	scanned  bool          // the start-up scan is done
	every    time.Duration // periodic ownership re-scan (0: only after exits)
	nextScan time.Time
	inferred []event.Record // transitions re-scans showed were missed, to dispatch
	filter   filter         // the kernel's record filters, for scanned sockets
}

// filter is what the kernel filters records by (--pid, --port, --family),
// applied to sockets found by scans: the table must not hold, report or
// reconcile a socket whose records the kernel drops.
type filter struct {
	pid    uint32
	port   uint16
	family uint16
}

func (f filter) wanted(s *event.Seed) bool {
	return (f.pid == 0 || s.Tgid == f.pid) && (f.port == 0 || s.SPort == f.port || s.DPort == f.port) &&
		(f.family == 0 || uint16(s.Family) == f.family)
}

// SetRescanInterval makes the tracer re-scan every process's descriptors
// this often (0: only after an owner exits). A socket's recorded owner can
// close its copy and live on (the socket passed over a UNIX socket, or
// left to a forked child), or exec another program: nothing the kernel
// side sees. The periodic re-scan bounds how long such an owner, or its
// old command name, stays on the socket's events.
func (t *Tracer) SetRescanInterval(d time.Duration) {
	t.every = d
	t.nextScan = time.Now().Add(d)
}

// Open loads and attaches the kernel side and takes stock of the sockets
// that already exist.
func Open(cfg probe.Config) (*Tracer, error) { return OpenContext(context.Background(), cfg) }

// Warnings lists degraded optional features.
func (t *Tracer) Warnings() []string { return t.probe.Warnings() }

// Notes lists choices made for this kernel (see probe.Probe.Notes).
func (t *Tracer) Notes() []string { return t.probe.Notes() }

// Table is the live socket table (read it only from the Run goroutine).
func (t *Tracer) Table() *socktable.Table { return t.table }

// adoptScan scans every process's descriptors and makes each socket's
// owner one of its current holders: the recorded owner if it still holds
// it, else the first holder (lowest pid: usually the creator, not a forked
// child). Processes known to have exited are not holders.
func (t *Tracer) adoptScan() error {
	scanAt := ktime.Now()
	seeds, err := t.probe.Scan()
	if err != nil {
		return err
	}
	if t.seeds == nil {
		t.seeds = []event.Seed{}
		for _, s := range seeds {
			if t.filter.wanted(&s) {
				t.seeds = append(t.seeds, s)
			}
		}
	}
	holders := make(map[uint64][]event.Seed, len(seeds))
	var order []uint64
	for _, s := range seeds {
		if t.exited[s.Tgid] {
			continue
		}
		if _, ok := holders[s.Cookie]; !ok {
			order = append(order, s.Cookie)
		}
		holders[s.Cookie] = append(holders[s.Cookie], s)
	}
	first := !t.scanned
	t.scanned = true
	for _, cookie := range order {
		owner, tracked, err := t.probe.Adopt(holders[cookie], first)
		if err != nil {
			return err
		}
		if !tracked {
			continue
		}
		wanted := t.filter.wanted(&owner)
		if t.agg {
			// Only watched CLOSE_WAIT sockets: nothing else would ever
			// tell the table that a socket is gone.
			if _, ok := t.table.Get(cookie); !ok {
				if !first || !wanted || owner.State != event.CloseWait {
					continue
				}
				if ok, err := t.probe.Watch(cookie); err != nil {
					return err
				} else if !ok {
					continue
				}
			}
		}
		if first && wanted {
			t.table.Seed(owner)
		}
		t.table.SetOwner(cookie, owner.Tgid, owner.Comm, int32(owner.FD))
	}
	if !first && !t.agg {
		// Summary-only mode keeps no record-driven states to correct: its
		// CLOSE_WAITs come from the kernel's socket map.
		t.inferred = append(t.inferred, t.table.ReconcileCloseWait(seeds, scanAt)...)
	}
	return nil
}

// WatchCloseWait (summary-only mode) finds the sockets that entered
// CLOSE_WAIT at or before the monotonic time before and are not watched
// yet, has the kernel send their further transitions, adds them to the
// table and returns them as ->CLOSE_WAIT records (TS: when they entered).
func (t *Tracer) WatchCloseWait(before uint64) ([]event.Record, error) {
	cands, err := t.probe.CloseWaitSince(before)
	if err != nil {
		return nil, err
	}
	var out []event.Record
	for i := range cands {
		r := &cands[i]
		if _, ok := t.table.Get(r.Cookie); ok {
			continue
		}
		ok, err := t.probe.Watch(r.Cookie)
		if err != nil {
			return out, err
		}
		if ok {
			t.table.Apply(r)
			out = append(out, *r)
		}
	}
	return out, nil
}

// Aggregates (summary-only mode) reads the kernel's per-process aggregates.
func (t *Tracer) Aggregates() ([]lifecycle.Agg, error) { return t.probe.Aggregates() }

// ForgetAggregate drops an exited process's aggregate from the kernel.
func (t *Tracer) ForgetAggregate(pid uint32) error { return t.probe.DeleteAggregate(pid) }

// Start is the kernel monotonic time when tracing began.
func (t *Tracer) Start() uint64 { return t.start }

// StartupSockets lists the socket descriptors found when tracing began.
func (t *Tracer) StartupSockets() []event.Seed { return t.seeds }

// RefreshOwners re-scans the kernel's file tables now, so every live
// socket's owner is a process that holds it.
func (t *Tracer) RefreshOwners() error {
	t.stats.Rescans++
	return t.adoptScan()
}

// Run reads records until ctx is done, then detaches, drains what the
// kernel had already queued and returns.
func (t *Tracer) Run(ctx context.Context, h Handlers) error {
	var rec event.Record
	draining := false
	// The deadline is renewed only after it passed: while records keep
	// coming, reads take no clock per batch, and a passed deadline still
	// ends the wait as soon as the ring is empty.
	t.probe.SetDeadline(time.Now().Add(PollInterval))
	stop := func() {
		t.probe.Detach()
		draining = true
		t.probe.SetDeadline(time.Now()) // read what is queued, do not wait
	}
	handle := func(sample []byte) error {
		t.stats.Records++
		if err := event.Decode(sample, &rec, &t.comms); err != nil {
			t.stats.DecodeErrors++
			return nil
		}
		return t.dispatch(&rec, h.Record)
	}
	for {
		_, err := t.probe.Read(handle)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if draining {
				return t.reportLost() // the counters are final: hooks are detached
			}
			if ctx.Err() != nil {
				stop()
				continue
			}
			if err := t.housekeeping(h); err != nil {
				return err
			}
			t.probe.SetDeadline(time.Now().Add(PollInterval))
			continue
		case err != nil:
			return err
		}
		if !draining && t.rel.due() { // records keep coming: no idle deadline
			if err := t.housekeeping(h); err != nil {
				return err
			}
		}
		if !draining && ctx.Err() != nil {
			stop()
		}
	}
}

func (t *Tracer) dispatch(rec *event.Record, handle func(*event.Record) error) error {
	switch rec.Kind {
	case event.KindExit:
		// In summary-only mode the table holds only the watched CLOSE_WAIT
		// sockets: only their owners' exits cost a re-scan (see README).
		if t.table.Owns(rec.Owner) {
			t.exited[rec.Owner] = true
			if t.rescanAt.IsZero() {
				t.rescanAt = time.Now().Add(rescanDelay)
			}
		}
	case event.KindState, event.KindAccept:
		t.table.Apply(rec)
	}
	return handle(rec)
}

// housekeeping runs between reads: loss reports, ownership re-scans after
// owners exit, then the caller's tick.
func (t *Tracer) housekeeping(h Handlers) error {
	if err := t.reportLost(); err != nil {
		return err
	}
	now := time.Now()
	periodic := t.every > 0 && !now.Before(t.nextScan)
	if periodic || !t.rescanAt.IsZero() && !now.Before(t.rescanAt) {
		if t.every > 0 {
			t.nextScan = now.Add(t.every)
		}
		err := t.RefreshOwners()
		t.exited = make(map[uint32]bool)
		t.rescanAt = time.Time{}
		if err != nil {
			return err
		}
		for i := range t.inferred {
			t.stats.Inferred++
			if err := t.dispatch(&t.inferred[i], h.Record); err != nil {
				return err
			}
		}
		t.inferred = t.inferred[:0]
		if periodic {
			n, err := t.probe.Sweep()
			t.stats.Swept += uint64(n)
			if err != nil {
				return err
			}
		}
	}
	if h.Tick != nil {
		return h.Tick(ktime.Now())
	}
	return nil
}

// Stats returns user space's counters.
func (t *Tracer) Stats() Stats { return t.stats }

// Counters returns the kernel's counters.
func (t *Tracer) Counters() (probe.Counters, error) { return t.probe.Counters() }

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.probe.Close() }

// Clock returns a converter for the records' timestamps.
func Clock() ktime.Clock { return ktime.NewClock() }

// MapEntries counts the entries of the kernel's per-socket maps. It only
// makes bpf() calls on maps tcplens holds, so any goroutine may call it
// while Run runs (not after Close).
func (t *Tracer) MapEntries() map[string]int { return t.probe.MapEntries() }
