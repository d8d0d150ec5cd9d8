// Package tracer runs the data path: kernel records in, decoded and
// owner-resolved events out. It wires probe, event and socktable together;
// what to do with each event is the caller's.
package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/ktime"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/socktable"
)

// PollInterval bounds how long a record can wait in the ring buffer when
// wake-ups are batched, and how often housekeeping runs.
const PollInterval = 100 * time.Millisecond

// rescanDelay lets a burst of process exits share one ownership re-scan.
const rescanDelay = 50 * time.Millisecond

// Handler receives each decoded event. The record is reused after return.
type Handler func(r *event.Record) error

// Stats are user space's own counts.
type Stats struct {
	Records      uint64 // records read from the ring buffer
	DecodeErrors uint64 // records that could not be decoded
	Rescans      uint64 // ownership re-scans after owners exited
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
	rel      reliability // loss reporting, periodic housekeeping (reliability.go)
}

// Open loads and attaches the kernel side and takes stock of the sockets
// that already exist.
func Open(cfg probe.Config) (*Tracer, error) { return OpenContext(context.Background(), cfg) }

// Warnings lists degraded optional features.
func (t *Tracer) Warnings() []string { return t.probe.Warnings() }

// Table is the live socket table (read it only from the Run goroutine).
func (t *Tracer) Table() *socktable.Table { return t.table }

// adoptScan records the holder of every TCP socket descriptor. The first
// holder in the scan (lowest pid: usually the creator, not a forked child)
// becomes the owner, replacing a recorded owner only where replace says so.
func (t *Tracer) adoptScan(replace func(old uint32) bool) error {
	seeds, err := t.probe.Scan()
	if err != nil {
		return err
	}
	seen := make(map[uint64]bool, len(seeds))
	for _, s := range seeds {
		if seen[s.Cookie] || t.exited[s.Tgid] {
			continue
		}
		seen[s.Cookie] = true
		owned, err := t.probe.Adopt(s, s.Cgroup, replace)
		if err != nil {
			return err
		}
		t.table.Seed(s)
		if owned {
			t.table.SetOwner(s.Cookie, s.Tgid, s.Comm)
		}
	}
	return nil
}

// Run reads records until ctx is done, then detaches, drains what the
// kernel had already queued and returns.
func (t *Tracer) Run(ctx context.Context, handle Handler) error {
	var raw ringbuf.Record
	var rec event.Record
	draining := false
	for {
		deadline := time.Now().Add(PollInterval)
		if draining {
			deadline = time.Now() // read what is queued, do not wait
		}
		err := t.probe.ReadRaw(&raw, deadline)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if draining {
				return t.reportLost() // the counters are final: hooks are detached
			}
			if ctx.Err() != nil {
				t.probe.Detach()
				draining = true
				continue
			}
			if err := t.housekeeping(); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("read ring buffer: %w", err)
		}
		t.stats.Records++
		if err := event.Decode(raw.RawSample, &rec, &t.comms); err != nil {
			t.stats.DecodeErrors++
			continue
		}
		if err := t.dispatch(&rec, handle); err != nil {
			return err
		}
		if !draining && t.rel.due() { // records keep coming: no idle deadline
			if err := t.housekeeping(); err != nil {
				return err
			}
		}
		if !draining && ctx.Err() != nil {
			t.probe.Detach()
			draining = true
		}
	}
}

func (t *Tracer) dispatch(rec *event.Record, handle Handler) error {
	switch rec.Kind {
	case event.KindExit:
		if t.table.Owns(rec.Owner) {
			t.exited[rec.Owner] = true
			if t.rescanAt.IsZero() {
				t.rescanAt = time.Now().Add(rescanDelay)
			}
		}
		return nil
	case event.KindState, event.KindAccept:
		t.table.Apply(rec)
	}
	return handle(rec)
}

// housekeeping runs between reads: loss reports, ownership re-scans after
// owners exit.
func (t *Tracer) housekeeping() error {
	if err := t.reportLost(); err != nil {
		return err
	}
	if t.rescanAt.IsZero() || time.Now().Before(t.rescanAt) {
		return nil
	}
	exited := t.exited
	t.stats.Rescans++
	err := t.adoptScan(func(old uint32) bool { return exited[old] })
	t.exited = make(map[uint32]bool)
	t.rescanAt = time.Time{}
	return err
}

// Stats returns user space's counters.
func (t *Tracer) Stats() Stats { return t.stats }

// Counters returns the kernel's counters.
func (t *Tracer) Counters() (probe.Counters, error) { return t.probe.Counters() }

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.probe.Close() }

// Clock returns a converter for the records' timestamps.
func Clock() ktime.Clock { return ktime.NewClock() }
