package tracer

import (
	"context"
	"fmt"
	"time"

	"github.com/tcplens/tcplens/internal/ktime"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/socktable"
)

// OpenContext is Open that gives up, leaving nothing loaded, when ctx is
// done between start-up steps (a signal during start-up). The steps
// themselves (load, attach, scan) are short system calls and run to the end.
func OpenContext(ctx context.Context, cfg probe.Config) (*Tracer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := probe.Open(cfg)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		p.Close()
		return nil, err
	}
	t := &Tracer{probe: p, table: socktable.New(), exited: make(map[uint32]bool), start: ktime.Now(), agg: cfg.Aggregate,
		filter: filter{pid: cfg.PID, port: cfg.Port, family: cfg.Family}}
	// The hooks are attached before the scan, so a socket cannot change
	// hands unseen between the two.
	if err := t.adoptScan(); err != nil {
		p.Close()
		return nil, fmt.Errorf("start-up scan of existing sockets: %w", err)
	}
	if err := ctx.Err(); err != nil {
		p.Close()
		return nil, err
	}
	t.stats.Seeded = t.table.Len()
	return t, nil
}

// LostHandler is told how many records the kernel dropped (ring buffer
// full) since the previous call.
type LostHandler func(n uint64) error

// reliability is the tracer's loss accounting.
type reliability struct {
	onLost   LostHandler
	reported uint64    // ring-full count already handed to onLost
	n        uint32    // records since the last clock check
	last     time.Time // last housekeeping under load
}

// OnLost sets the handler for ring-buffer losses. The kernel's counter is
// checked at every housekeeping (each PollInterval, also under load) and
// once more after the final drain, so the reported counts add up to the
// kernel's total.
func (t *Tracer) OnLost(h LostHandler) { t.rel.onLost = h }

// Reported is the total of the losses handed to the LostHandler.
func (t *Tracer) Reported() uint64 { return t.rel.reported }

// reportLost runs at every poll: it reads the one counter it needs, not
// every counter and every program's statistics.
func (t *Tracer) reportLost() error {
	full, err := t.probe.RingFull()
	if err != nil {
		return fmt.Errorf("read kernel counters: %w", err)
	}
	if full <= t.rel.reported {
		return nil
	}
	n := full - t.rel.reported
	t.rel.reported = full
	if t.rel.onLost == nil {
		return nil
	}
	return t.rel.onLost(n)
}

// due says whether housekeeping is due while records arrive back to back
// (the reader then never hits its idle deadline).
func (r *reliability) due() bool {
	r.n++
	if r.n%64 != 0 {
		return false
	}
	now := time.Now()
	if now.Sub(r.last) < PollInterval {
		return false
	}
	r.last = now
	return true
}

// Hooks reports which hooks are attached on this kernel (for --check).
func (t *Tracer) Hooks() []probe.Hook { return t.probe.Hooks() }
