// Package probe is the only code that touches the kernel's BPF interfaces:
// it checks the kernel, configures and loads the programs, attaches them,
// reads the ring buffer, runs the start-up scan and detaches.
package probe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/event"
)

// Config is what the kernel side is told before load.
type Config struct {
	PID          uint32 // only sockets owned by this process (0: all)
	Port         uint16 // only sockets with this local or remote port (0: all)
	Family       uint16 // only this family, event.AFInet or event.AFInet6 (0: both)
	RingBytes    uint32 // ring buffer size, a power of two >= page size (0: default)
	WakeupBytes  uint32 // wake the reader when this much is queued (0: every record)
	MaxSockets   uint32 // capacity of the per-socket map (0: default)
	VerifierLogs bool   // keep full verifier logs in errors
	BTFPath      string // kernel BTF for CO-RE (empty: the running kernel's)
}

// DefaultRingBytes holds ~40k records: seconds of the busiest churn.
const DefaultRingBytes = 4 << 20

// Probe is the loaded and attached kernel side.
type Probe struct {
	objs     bpfobj.TcplensObjects
	links    []link.Link
	reader   *ringbuf.Reader
	warnings []string
}

// Open loads and attaches everything. On error nothing stays loaded.
func Open(cfg Config) (p *Probe, err error) {
	if err := Preflight(cfg.BTFPath); err != nil {
		return nil, err
	}
	// BPF memory is memcg-accounted on current kernels; where RLIMIT_MEMLOCK
	// still applies and cannot be raised, loading reports it below.
	_ = rlimit.RemoveMemlock()

	spec, err := bpfobj.LoadTcplens()
	if err != nil {
		return nil, fmt.Errorf("read embedded BPF object: %w", err)
	}
	p = &Probe{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if err := p.configure(spec, cfg); err != nil {
		return nil, err
	}
	opts := &ebpf.CollectionOptions{}
	if cfg.BTFPath != "" {
		kt, err := btf.LoadSpec(cfg.BTFPath)
		if err != nil {
			return nil, fmt.Errorf("%w: read kernel BTF from %s: %v", ErrPreflight, cfg.BTFPath, err)
		}
		opts.Programs.KernelTypes = kt
	}
	if cfg.VerifierLogs {
		opts.Programs.LogLevel = ebpf.LogLevelInstruction
	}
	if err := spec.LoadAndAssign(&p.objs, opts); err != nil {
		return nil, explainLoadError(err, cfg.VerifierLogs)
	}
	if err := p.attach(); err != nil {
		return nil, err
	}
	if p.reader, err = ringbuf.NewReader(p.objs.Events); err != nil {
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	return p, nil
}

func (p *Probe) configure(spec *ebpf.CollectionSpec, cfg Config) error {
	ring := cfg.RingBytes
	if ring == 0 {
		ring = DefaultRingBytes
	}
	if ring < uint32(os.Getpagesize()) || ring&(ring-1) != 0 {
		return fmt.Errorf("ring buffer size %d must be a power of two and at least %d", ring, os.Getpagesize())
	}
	spec.Maps["events"].MaxEntries = ring
	if cfg.MaxSockets != 0 {
		spec.Maps["socks"].MaxEntries = cfg.MaxSockets
	}
	timers := kallsymsAddrs("tcp_write_timer")
	if timers["tcp_write_timer"] == 0 {
		p.warn("tcp_write_timer not found in /proc/kallsyms: CLOSE->SYN_SENT lines are emitted at the connection's next transition")
	}
	vars := map[string]any{
		"filter_tgid":          cfg.PID,
		"filter_port":          cfg.Port,
		"filter_family":        cfg.Family,
		"wakeup_bytes":         cfg.WakeupBytes,
		"tcp_write_timer_addr": timers["tcp_write_timer"],
	}
	for name, v := range vars {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF object has no variable %q", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

// attach attaches the required hooks (failure is fatal) and the optional
// ones (failure is a warning saying what is degraded).
func (p *Probe) attach() error {
	l, err := link.AttachTracing(link.TracingOptions{Program: p.objs.OnSetState})
	if err != nil {
		return fmt.Errorf("attach to tracepoint sock:inet_sock_set_state: %w (tcplens needs tp_btf support, Linux 5.12 or newer)", err)
	}
	p.links = append(p.links, l)

	optional := []struct {
		prog *ebpf.Program
		what string
	}{
		{p.objs.OnTimerStart, "timer:timer_start (CLOSE->SYN_SENT lines wait for the next transition)"},
		{p.objs.OnProcessExit, "sched:sched_process_exit (sockets of exited processes keep their old owner)"},
	}
	for _, o := range optional {
		l, err := link.AttachTracing(link.TracingOptions{Program: o.prog})
		if err != nil {
			p.warn(fmt.Sprintf("cannot attach %s: %v", o.what, err))
			continue
		}
		p.links = append(p.links, l)
	}

	if err := ensureTracefs(); err != nil {
		p.warn(fmt.Sprintf("%v: accepted sockets stay attributed to their listener's owner", err))
		return nil
	}
	for _, tp := range []struct {
		name string
		prog *ebpf.Program
	}{{"sys_exit_accept4", p.objs.OnAccept4Exit}, {"sys_exit_accept", p.objs.OnAcceptExitPlain}} {
		l, err := link.Tracepoint("syscalls", tp.name, tp.prog, nil)
		if err != nil {
			p.warn(fmt.Sprintf("cannot attach syscalls:%s: %v: accepted sockets stay attributed to their listener's owner", tp.name, err))
			continue
		}
		p.links = append(p.links, l)
	}
	return nil
}

func (p *Probe) warn(msg string) { p.warnings = append(p.warnings, msg) }

// Warnings lists the optional features that are degraded on this kernel.
func (p *Probe) Warnings() []string { return p.warnings }

// ReadRaw returns the next raw record, waiting at most until deadline.
// It returns os.ErrDeadlineExceeded when nothing arrived in time and
// ringbuf.ErrClosed after Close.
func (p *Probe) ReadRaw(rec *ringbuf.Record, deadline time.Time) error {
	p.reader.SetDeadline(deadline)
	return p.reader.ReadInto(rec)
}

// Counters sums the kernel's per-CPU counters.
type Counters struct {
	Produced      uint64 // records the kernel tried to send
	RingFull      uint64 // records lost to a full ring buffer
	SocksFull     uint64 // sockets not tracked: per-socket map full
	ListenersFull uint64 // listeners not tracked: map full
	Filtered      uint64 // transitions dropped by the in-kernel filters
}

// Counters reads the kernel's counters.
func (p *Probe) Counters() (Counters, error) {
	var c Counters
	fields := map[bpfobj.TcplensCounter]*uint64{
		bpfobj.TcplensCounterCOUNTER_PRODUCED:       &c.Produced,
		bpfobj.TcplensCounterCOUNTER_RINGBUF_FULL:   &c.RingFull,
		bpfobj.TcplensCounterCOUNTER_SOCKS_FULL:     &c.SocksFull,
		bpfobj.TcplensCounterCOUNTER_LISTENERS_FULL: &c.ListenersFull,
		bpfobj.TcplensCounterCOUNTER_FILTERED:       &c.Filtered,
	}
	for idx, dst := range fields {
		var perCPU []uint64
		if err := p.objs.Counters.Lookup(uint32(idx), &perCPU); err != nil {
			return c, fmt.Errorf("read counter %d: %w", idx, err)
		}
		for _, v := range perCPU {
			*dst += v
		}
	}
	return c, nil
}

// Scan lists every TCP socket descriptor of every process (iter/task_file).
func (p *Probe) Scan() ([]event.Seed, error) {
	it, err := link.AttachIter(link.IterOptions{Program: p.objs.ScanTaskFiles})
	if err != nil {
		return nil, fmt.Errorf("attach task_file iterator: %w", err)
	}
	defer it.Close()
	rd, err := it.Open()
	if err != nil {
		return nil, fmt.Errorf("open task_file iterator: %w", err)
	}
	defer rd.Close()
	raw, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read task_file iterator: %w", err)
	}
	return event.DecodeSeeds(raw)
}

// Adopt records the owner of a socket found by a scan in the kernel's
// tables, so its later transitions are attributed. It replaces the owner
// only where the kernel has none or where replace says the recorded
// owner is gone. It reports whether the kernel's entry now names s.Tgid.
func (p *Probe) Adopt(s event.Seed, cgroupID uint64, replace func(old uint32) bool) (bool, error) {
	var si bpfobj.TcplensSockInfo
	err := p.objs.Socks.Lookup(s.Cookie, &si)
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		si = bpfobj.TcplensSockInfo{
			Family: uint16(s.Family), Sport: s.SPort, Dport: s.DPort, State: uint8(s.State),
			Flags: uint8(bpfobj.TcplensSockFlagSOCK_F_SEEDED | bpfobj.TcplensSockFlagSOCK_F_HAVE_ADDRS),
		}
		si.Saddr = addrBytes(s.SAddr, s.Family)
		si.Daddr = addrBytes(s.DAddr, s.Family)
	case err != nil:
		return false, fmt.Errorf("look up socket %d: %w", s.Cookie, err)
	case si.OwnerTgid != 0 && !replace(si.OwnerTgid):
		return si.OwnerTgid == s.Tgid, nil
	}
	si.OwnerTgid = s.Tgid
	si.CgroupId = cgroupID
	si.Flags &^= uint8(bpfobj.TcplensSockFlagSOCK_F_INHERITED)
	si.Comm = commBytes(s.Comm)
	if err := p.objs.Socks.Update(s.Cookie, &si, ebpf.UpdateAny); err != nil {
		return false, fmt.Errorf("record owner of socket %d: %w", s.Cookie, err)
	}
	if s.State == event.Listen {
		p.adoptListener(s, cgroupID)
	}
	return true, nil
}

func (p *Probe) adoptListener(s event.Seed, cgroupID uint64) {
	key := bpfobj.TcplensListenerKey{Netns: s.Netns, Port: s.SPort}
	var cur bpfobj.TcplensListenerOwner
	if err := p.objs.Listeners.Lookup(&key, &cur); err == nil {
		if cur.OwnerTgid != s.Tgid {
			cur.OwnerTgid = 0 // listeners of several processes: ambiguous
			_ = p.objs.Listeners.Update(&key, &cur, ebpf.UpdateExist)
		}
		return
	}
	l := bpfobj.TcplensListenerOwner{Cookie: s.Cookie, CgroupId: cgroupID, OwnerTgid: s.Tgid, Comm: commBytes(s.Comm)}
	_ = p.objs.Listeners.Update(&key, &l, ebpf.UpdateNoExist)
}

// MapEntries counts the entries of the per-socket and listener maps.
func (p *Probe) MapEntries() (socks, listeners int) {
	return countEntries(p.objs.Socks), countEntries(p.objs.Listeners)
}

func countEntries(m *ebpf.Map) int {
	n := 0
	var k []byte
	it := m.Iterate()
	for it.Next(&k, new([]byte)) {
		n++
	}
	return n
}

// Close detaches every program and frees every map. Safe to call twice.
func (p *Probe) Close() error {
	if p.reader != nil {
		p.reader.Close()
		p.reader = nil
	}
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
	return p.objs.Close()
}

// Flush makes a blocked read return what is queued now.
func (p *Probe) Flush() error {
	if p.reader == nil {
		return nil
	}
	return p.reader.Flush()
}

// explainLoadError turns a verifier rejection into one readable line.
func explainLoadError(err error, full bool) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		if full {
			return fmt.Errorf("the kernel's verifier rejected a tcplens program: %+v", ve)
		}
		last := ""
		for i := len(ve.Log) - 1; i >= 0; i-- {
			if s := strings.TrimSpace(ve.Log[i]); s != "" && !strings.HasPrefix(s, "processed ") && !strings.HasPrefix(s, "verification time") && !strings.HasPrefix(s, "stack depth") {
				last = s
				break
			}
		}
		return fmt.Errorf("the kernel's verifier rejected a tcplens program (%v: %s): this kernel is not supported; run with --debug for the full verifier log", ve.Cause, last)
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("load BPF programs: %w: run as root with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN", err)
	}
	return fmt.Errorf("load BPF programs: %w", err)
}

// Detach stops every hook; records already queued can still be read.
func (p *Probe) Detach() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
}
