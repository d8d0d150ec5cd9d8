// Package probe is the only code that touches the kernel's BPF interfaces:
// it checks the kernel, configures and loads the programs, attaches them,
// reads the ring buffer, runs the start-up scan and detaches.
package probe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/ring"
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
	// Aggregate: summary-only mode. The kernel keeps per-process
	// aggregates and sends only process exits and the transitions of
	// watched (stuck CLOSE_WAIT) sockets.
	Aggregate bool
	// AcceptHook: how accept() is observed (zero value: AcceptAuto).
	AcceptHook AcceptHook
}

// AcceptHook says how the kernel side learns which process accept()ed a
// socket (and when, for accept lines).
type AcceptHook string

const (
	// AcceptAuto uses fexit on inet_accept where the kernel allows it and
	// otherwise no accept hook: accepted sockets keep their listener's
	// owner until they are closed or an owner re-scan finds their holder.
	AcceptAuto AcceptHook = "auto"
	// AcceptFexit requires the fexit hook (no descriptor numbers).
	AcceptFexit AcceptHook = "fexit"
	// AcceptSyscalls uses the accept()/accept4() exit tracepoints: works on
	// tracepoints alone and names the descriptor, but attaching any
	// syscall tracepoint slows every system call on the host.
	AcceptSyscalls AcceptHook = "syscalls"
	// AcceptOff hooks nothing.
	AcceptOff AcceptHook = "off"
)

// AcceptHooks lists the valid AcceptHook values.
var AcceptHooks = []AcceptHook{AcceptAuto, AcceptFexit, AcceptSyscalls, AcceptOff}

// Programs some kernels may refuse to load (fexit; the sweep):
// each is loaded on its own, so that nothing else depends on it.
const (
	fexitAcceptProg = "on_inet_accept"
	sweepProg       = "sweep_socks"
)

// DefaultRingBytes holds ~30k records: seconds of the busiest churn.
const DefaultRingBytes = 4 << 20

// DefaultWakeupBytes is how much queued data wakes the reader by default:
// a quarter of the ring. Waking the reader for every record costs the
// kernel microseconds per transition on virtual machines, and every
// wake-up costs tcplens two context switches: 1 MiB instead of 64 KiB (the
// 4 MiB default ring) took tcplens's CPU per 100k connections from 1.27 to
// 0.95 s in one benchmark run. The other three quarters are the headroom
// while the reader gets to run; the reader also polls every 100 ms, which
// bounds how long a record waits.
func DefaultWakeupBytes(ringBytes uint32) uint32 { return ringBytes / 4 }

// Probe is the loaded and attached kernel side.
type Probe struct {
	objs      bpfobj.TcplensObjects // filled from coll, and by the programs loaded alone
	coll      *ebpf.Collection
	skipped   map[string]string // program -> why it is not attached, when not a failure
	notes     []string
	sweepNote string // why the sweep is not loaded
	links     []link.Link
	reader    *ring.Reader
	warnings  []string
	cfg       Config
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
	p = &Probe{cfg: cfg}
	loaded := p // p is nil after `return nil, err`
	defer func() {
		if err != nil {
			loaded.Close()
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
	full := spec.Copy()
	delete(spec.Programs, fexitAcceptProg)
	delete(spec.Programs, sweepProg)
	if p.coll, err = ebpf.NewCollectionWithOptions(spec, *opts); err != nil {
		return nil, explainLoadError(err, cfg.VerifierLogs)
	}
	setByTag(&p.objs.TcplensMaps, p.coll.Maps)
	setByTag(&p.objs.TcplensPrograms, p.coll.Programs)
	if err := p.attach(); err != nil {
		return nil, err
	}
	if err := p.attachAccept(full, opts); err != nil {
		return nil, err
	}
	if serr := p.loadSweep(full, opts); serr != nil {
		p.sweepNote = fmt.Sprintf("cannot run the socket entry sweep (a syscall program): %v: entries of sockets whose close was never seen (about 20 per million connections) stay until the map is full", serr)
		p.notes = append(p.notes, p.sweepNote)
	}
	if p.reader, err = ring.Open(p.objs.Events); err != nil {
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
	timers := timerAddrs()
	for fn, loss := range map[string]string{
		"tcp_write_timer":     "CLOSE->SYN_SENT lines are emitted at the connection's next transition",
		"reqsk_timer_handler": "passive handshake latency is not measured and accepted sockets take their owner from the listening port",
		"tw_timer_handler":    "TIME_WAIT is not observed",
	} {
		if timers[fn] == 0 {
			p.warn(fmt.Sprintf("%s not found in /proc/kallsyms: %s", fn, loss))
		}
	}
	vars := map[string]any{
		"filter_tgid":        cfg.PID,
		"filter_port":        cfg.Port,
		"filter_family":      cfg.Family,
		"wakeup_bytes":       cfg.WakeupBytes,
		"stream_transitions": uint8(1),
	}
	for fn, name := range timerVars {
		vars[name] = timers[fn]
	}
	if cfg.Aggregate {
		vars["stream_transitions"] = uint8(0)
		// tcp_write_timer only releases held CLOSE->SYN_SENT records, which
		// summary-only mode does not send; it is re-armed on every send.
		vars["tcp_write_timer_addr"] = uint64(0)
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
		{p.objs.OnTimerStart, "timer:timer_start (CLOSE->SYN_SENT lines wait for the next transition; no TIME_WAIT or passive handshake timing)"},
		{p.objs.OnTimerCancel, "timer:timer_cancel (TIME_WAIT ends before expiry are not seen)"},
		{p.objs.OnTimerExpire, "timer:timer_expire_entry (TIME_WAIT expiry is not seen)"},
		{p.objs.OnProcessExit, "sched:sched_process_exit (sockets of exited processes keep their old owner)"},
		{p.objs.OnReceiveReset, "tcp:tcp_receive_reset (resets received are not counted)"},
		{p.objs.OnSendReset, "tcp:tcp_send_reset (resets sent are not counted)"},
		{p.objs.OnDestroySock, "tcp:tcp_destroy_sock (a ->CLOSE the kernel skipped leaves its socket entry until the map is full)"},
	}
	for _, o := range optional {
		l, err := link.AttachTracing(link.TracingOptions{Program: o.prog})
		if err != nil {
			p.warn(fmt.Sprintf("cannot attach %s: %v", o.what, err))
			continue
		}
		p.links = append(p.links, l)
	}

	return nil
}

// attachAccept attaches the accept() hook cfg.AcceptHook asks for. Only an
// explicitly requested fexit hook that cannot be had is an error.
func (p *Probe) attachAccept(full *ebpf.CollectionSpec, opts *ebpf.CollectionOptions) error {
	p.skipped = map[string]string{}
	mode := p.cfg.AcceptHook
	if mode == "" {
		mode = AcceptAuto
	}
	const withoutAccept = "accepted sockets keep their listener's owner until close() or the next owner re-scan, and no accept lines are written"
	if mode != AcceptSyscalls {
		why := fmt.Sprintf("not requested (--accept-hook %s)", mode)
		p.skipped["on_accept4_exit"], p.skipped["on_accept_exit_plain"] = why, why
	}
	switch mode {
	case AcceptOff:
		p.skipped[fexitAcceptProg] = "not requested (--accept-hook off)"
		return nil
	case AcceptSyscalls:
		p.skipped[fexitAcceptProg] = "not requested (--accept-hook syscalls)"
		p.attachAcceptSyscalls()
		return nil
	}
	err := p.attachAcceptFexit(full, opts)
	switch {
	case err == nil:
		return nil
	case mode == AcceptFexit:
		return fmt.Errorf("--accept-hook fexit: %w", err)
	default:
		// The designed fallback of auto, not a fault: a note, and "off" in --check.
		msg := fmt.Sprintf("%v: %s; --accept-hook syscalls gets them through syscall tracepoints, which slow every system call on the host", err, withoutAccept)
		p.notes = append(p.notes, msg)
		p.skipped[fexitAcceptProg] = msg
		return nil
	}
}

func (p *Probe) attachAcceptFexit(full *ebpf.CollectionSpec, opts *ebpf.CollectionOptions) error {
	prog, err := p.loadAlone(full, opts, fexitAcceptProg)
	if errors.Is(err, os.ErrPermission) {
		return errors.New("cannot load fexit:inet_accept: this kernel refuses fexit programs (EPERM)")
	} else if err != nil {
		return fmt.Errorf("cannot load fexit:inet_accept: %w", err)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		prog.Close()
		return fmt.Errorf("cannot attach fexit:inet_accept: %w", err)
	}
	p.objs.OnInetAccept = prog
	p.links = append(p.links, l)
	return nil
}

// loadAlone loads one program of full that the main collection left out,
// sharing every map with it (.rodata included).
func (p *Probe) loadAlone(full *ebpf.CollectionSpec, opts *ebpf.CollectionOptions, name string) (*ebpf.Program, error) {
	o := *opts
	o.MapReplacements = p.coll.Maps
	one := full.Copy()
	for n := range one.Programs {
		if n != name {
			delete(one.Programs, n)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(one, o)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) && ve.Cause != nil {
			err = ve.Cause
		}
		return nil, err
	}
	prog := coll.DetachProgram(name)
	coll.Close()
	return prog, nil
}

func (p *Probe) attachAcceptSyscalls() {
	if err := ensureTracefs(); err != nil {
		p.warn(fmt.Sprintf("%v: accepted sockets stay attributed to their listener's owner", err))
		return
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
}

// setByTag fills the *T fields of the struct dst points to from objs,
// by their `ebpf:"name"` tags; names objs lacks stay nil.
func setByTag[T any](dst any, objs map[string]*T) {
	v := reflect.ValueOf(dst).Elem()
	for i := 0; i < v.NumField(); i++ {
		if o, ok := objs[v.Type().Field(i).Tag.Get("ebpf")]; ok {
			if f := v.Field(i); f.Type() == reflect.TypeOf(o) {
				f.Set(reflect.ValueOf(o))
			}
		}
	}
}

func (p *Probe) warn(msg string) { p.warnings = append(p.warnings, msg) }

// Notes lists choices made for this kernel that the operator should know.
func (p *Probe) Notes() []string { return p.notes }

// Warnings lists the optional features that are degraded on this kernel.
func (p *Probe) Warnings() []string { return p.warnings }

// SetDeadline bounds how long Read waits once the ring is empty.
func (p *Probe) SetDeadline(t time.Time) { p.reader.SetDeadline(t) }

// Read hands every record queued now to fn (the slice is valid only during
// the call), waiting for records first if there are none. It returns
// os.ErrDeadlineExceeded when the ring is empty and the deadline has
// passed, and ring.ErrClosed after Close.
func (p *Probe) Read(fn func(sample []byte) error) (int, error) {
	return p.reader.Read(fn)
}

// Counters sums the kernel's per-CPU counters.
type Counters struct {
	Produced      uint64 // records the kernel tried to send
	RingFull      uint64 // records lost to a full ring buffer
	SocksFull     uint64 // sockets not tracked: per-socket map full
	ListenersFull uint64 // listeners not tracked: map full
	Filtered      uint64 // transitions dropped by the in-kernel filters
	TWsFull       uint64 // timewait sockets not tracked: map full
	ReqsFull      uint64 // SYNs not tracked: map full
	AggsFull      uint64 // processes not aggregated: map full (summary-only mode)
	Skipped       uint64 // program runs the kernel skipped (recursion)
}

// Untracked sums what the kernel could not track for want of map space.
func (c Counters) Untracked() uint64 {
	return c.SocksFull + c.ListenersFull + c.TWsFull + c.ReqsFull + c.AggsFull
}

// Skipped sums, over all programs, the runs the kernel skipped because a
// BPF program was already running on that CPU (a softirq nested into a
// traced transition): events that were never produced.
func (p *Probe) Skipped() uint64 {
	var n uint64
	for _, prog := range []*ebpf.Program{p.objs.OnSetState, p.objs.OnTimerStart, p.objs.OnTimerCancel,
		p.objs.OnTimerExpire, p.objs.OnAccept4Exit, p.objs.OnAcceptExitPlain, p.objs.OnInetAccept, p.objs.OnProcessExit,
		p.objs.OnReceiveReset, p.objs.OnSendReset, p.objs.OnDestroySock} {
		if prog == nil {
			continue
		}
		if st, err := prog.Stats(); err == nil {
			n += st.RecursionMisses
		}
	}
	return n
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
		bpfobj.TcplensCounterCOUNTER_TWS_FULL:       &c.TWsFull,
		bpfobj.TcplensCounterCOUNTER_REQS_FULL:      &c.ReqsFull,
		bpfobj.TcplensCounterCOUNTER_AGGS_FULL:      &c.AggsFull,
	}
	c.Skipped = p.Skipped()
	for idx, dst := range fields {
		v, err := p.counter(idx)
		if err != nil {
			return c, err
		}
		*dst = v
	}
	return c, nil
}

// RingFull reads only the count of records lost to a full ring buffer:
// the one counter checked at every poll.
func (p *Probe) RingFull() (uint64, error) {
	return p.counter(bpfobj.TcplensCounterCOUNTER_RINGBUF_FULL)
}

// counter sums one per-CPU counter.
func (p *Probe) counter(idx bpfobj.TcplensCounter) (uint64, error) {
	var perCPU []uint64
	if err := p.objs.Counters.Lookup(uint32(idx), &perCPU); err != nil {
		return 0, fmt.Errorf("read counter %d: %w", idx, err)
	}
	var sum uint64
	for _, v := range perCPU {
		sum += v
	}
	return sum, nil
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

// loadSweep loads the sweep and runs it once: the first run also settles
// cilium/ebpf's BPF_PROG_RUN feature probe, which loads a program of its
// own and so must happen before tcplens gives up its capabilities.
func (p *Probe) loadSweep(full *ebpf.CollectionSpec, opts *ebpf.CollectionOptions) error {
	prog, err := p.loadAlone(full, opts, sweepProg)
	if err != nil {
		return err
	}
	p.objs.SweepSocks = prog
	if _, err := p.Sweep(); err != nil {
		prog.Close()
		p.objs.SweepSocks = nil
		return err
	}
	return nil
}

// Sweep deletes the per-socket entries whose socket no longer exists (see
// sweep_socks in bpf/) and returns how many it deleted.
func (p *Probe) Sweep() (int, error) {
	if p.objs.SweepSocks == nil {
		return 0, nil // not loadable here (see Notes)
	}
	deleted, err := p.objs.SweepSocks.Run(&ebpf.RunOptions{})
	if err != nil {
		return 0, fmt.Errorf("run the socket entry sweep: %w", err)
	}
	return int(deleted), nil
}

// Adopt makes sure the kernel names a current holder of the socket as its
// owner: when the recorded owner is not among holders (none recorded yet,
// it exited, or it handed the descriptor on), the first holder becomes the
// owner. holders are the scan's entries for one socket, lowest pid first.
// Only with create does it add an entry the kernel lacks (the start-up
// scan, for sockets that are not in CLOSE): a later scan must not bring
// back the entry of a socket that closed, and was destroyed, since the
// scan saw it. It returns the owner the kernel now records, and whether
// the kernel has an entry for the socket at all.
func (p *Probe) Adopt(holders []event.Seed, create bool) (event.Seed, bool, error) {
	s := holders[0]
	var si bpfobj.TcplensSockInfo
	err := p.objs.Socks.Lookup(s.Cookie, &si)
	flag := ebpf.UpdateExist
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		if !create || s.State == event.Close {
			return s, false, nil
		}
		flag = ebpf.UpdateNoExist
		si = bpfobj.TcplensSockInfo{
			Family: uint16(s.Family), Sport: s.SPort, Dport: s.DPort, State: uint8(s.State),
			Flags: uint8(bpfobj.TcplensSockFlagSOCK_F_SEEDED | bpfobj.TcplensSockFlagSOCK_F_HAVE_ADDRS),
		}
		si.Saddr = addrBytes(s.SAddr, s.Family)
		si.Daddr = addrBytes(s.DAddr, s.Family)
	case err != nil:
		return s, false, fmt.Errorf("look up socket %d: %w", s.Cookie, err)
	default:
		for _, h := range holders {
			if h.Tgid != si.OwnerTgid {
				continue
			}
			// Still the owner; after an exec its command name changed.
			if c := commBytes(h.Comm); c != si.Comm {
				si.Comm = c
				if err := p.objs.Socks.Update(s.Cookie, &si, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
					return h, true, fmt.Errorf("record owner of socket %d: %w", s.Cookie, err)
				}
			}
			return h, true, nil
		}
	}
	si.OwnerTgid = s.Tgid
	si.CgroupId = s.Cgroup
	si.Flags &^= uint8(bpfobj.TcplensSockFlagSOCK_F_INHERITED)
	si.Comm = commBytes(s.Comm)
	if err := p.objs.Socks.Update(s.Cookie, &si, flag); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) || errors.Is(err, ebpf.ErrKeyExist) {
			return s, false, nil // closed, or first seen by the kernel, meanwhile
		}
		return s, false, fmt.Errorf("record owner of socket %d: %w", s.Cookie, err)
	}
	if s.State == event.Listen {
		p.adoptListener(s)
	}
	return s, true, nil
}

func (p *Probe) adoptListener(s event.Seed) {
	key := bpfobj.TcplensListenerKey{Netns: s.Netns, Port: s.SPort}
	var cur bpfobj.TcplensListenerOwner
	if err := p.objs.Listeners.Lookup(&key, &cur); err == nil {
		if cur.OwnerTgid != s.Tgid {
			cur.OwnerTgid = 0 // listeners of several processes: ambiguous
			_ = p.objs.Listeners.Update(&key, &cur, ebpf.UpdateExist)
		}
		return
	}
	l := bpfobj.TcplensListenerOwner{Cookie: s.Cookie, CgroupId: s.Cgroup, OwnerTgid: s.Tgid, Comm: commBytes(s.Comm)}
	_ = p.objs.Listeners.Update(&key, &l, ebpf.UpdateNoExist)
}

// MapEntries counts the entries of the kernel's per-socket maps.
func (p *Probe) MapEntries() map[string]int {
	return map[string]int{
		"socks":     countEntries(p.objs.Socks),
		"listeners": countEntries(p.objs.Listeners),
		"reqs":      countEntries(p.objs.Reqs),
		"tws":       countEntries(p.objs.Tws),
		"children":  countEntries(p.objs.Children),
	}
}

func countEntries(m *ebpf.Map) int {
	n := 0
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
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
	for _, prog := range []**ebpf.Program{&p.objs.OnInetAccept, &p.objs.SweepSocks} {
		if *prog != nil {
			(*prog).Close()
			*prog = nil
		}
	}
	if p.coll != nil {
		p.coll.Close()
		p.coll = nil
	}
	return nil
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
