package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/probe"
)

type options struct {
	format          string
	probe           probe.Config
	noEvents        bool
	summaryInterval time.Duration
	closeWaitAfter  time.Duration
	closeWaitRepeat time.Duration
	ownerRescan     time.Duration
	check           bool   // --check: report what works on this kernel, then exit
	metricsAddr     string // --metrics-addr, validated host:port ("": no endpoint)
}

// parseFlags validates every flag; errors are usageError (exit status 2).
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("tcplens", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.format, "format", "json", "output format: json (one object per line) or text (columns)")
	pid := fs.String("pid", "", "only sockets owned by this process id")
	port := fs.String("port", "", "only sockets with this local or remote port (1-65535)")
	v4 := fs.Bool("ipv4", false, "only IPv4 sockets")
	v6 := fs.Bool("ipv6", false, "only IPv6 sockets")
	debug := fs.Bool("debug", false, "print the full verifier log if a program is rejected")
	fs.BoolVar(&o.noEvents, "no-events", false, "no per-event lines: only summaries and CLOSE_WAIT alerts, aggregated in the kernel")
	fs.DurationVar(&o.summaryInterval, "summary-interval", 0, "emit per-process summaries this often (0: only at exit)")
	fs.DurationVar(&o.closeWaitAfter, "close-wait-after", 30*time.Second, "report sockets in CLOSE_WAIT longer than this as stuck")
	fs.DurationVar(&o.closeWaitRepeat, "close-wait-repeat", 5*time.Minute, "report a still-stuck CLOSE_WAIT socket again this often")
	fs.DurationVar(&o.ownerRescan, "owner-rescan", 10*time.Second, "re-check every socket's owner against every process's descriptors this often (0: only when an owner exits)")
	fs.StringVar(&o.probe.BTFPath, "btf", "", "kernel BTF file for kernels without /sys/kernel/btf/vmlinux")
	wakeup := fs.String("wakeup-bytes", "", "wake the reader when this much data is queued (0: on every record; default: a quarter of the ring buffer); records never wait longer than 100ms")
	ring := fs.String("ring-buffer-size", "", "kernel ring buffer size in bytes: a power of two, at least the page size (default 4194304)")
	fs.BoolVar(&o.check, "check", false, "load and attach everything, report what works on this kernel, detach and exit")
	acceptHook := fs.String("accept-hook", string(probe.AcceptAuto), "how accept() is seen: auto (fexit where the kernel allows it, else none), fexit, syscalls (syscall tracepoints: every system call on the host gets slower) or off")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics; without a host (:9464) on 127.0.0.1 (default: no endpoint)")
	fs.Usage = func() {} // errors are one line; the full usage is only for -h
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: tcplens [flags]\n\nStreams every TCP state transition on this host, one JSON object per line.\n\nFlags:\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return o, err
		}
		return o, usageError{oneLine(err)}
	}
	if err := rejectEmpty(fs); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	o.probe.AcceptHook = probe.AcceptHook(*acceptHook)
	if !slices.Contains(probe.AcceptHooks, o.probe.AcceptHook) {
		return o, usageError{fmt.Errorf("invalid --accept-hook %q: want auto, fexit, syscalls or off", *acceptHook)}
	}
	if o.format != "json" && o.format != "text" {
		return o, usageError{fmt.Errorf("invalid --format %q: want json or text", o.format)}
	}
	if *pid != "" {
		n, err := strconv.ParseUint(*pid, 10, 32)
		if err != nil || n == 0 || n > 1<<22 {
			return o, usageError{fmt.Errorf("invalid --pid %q: want a process id (1-4194304)", *pid)}
		}
		o.probe.PID = uint32(n)
	}
	if *port != "" {
		n, err := strconv.ParseUint(*port, 10, 16)
		if err != nil || n == 0 {
			return o, usageError{fmt.Errorf("invalid --port %q: want 1-65535", *port)}
		}
		o.probe.Port = uint16(n)
	}
	switch {
	case *v4 && *v6:
		return o, usageError{errors.New("--ipv4 and --ipv6 exclude each other")}
	case *v4:
		o.probe.Family = event.AFInet
	case *v6:
		o.probe.Family = event.AFInet6
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		zero bool // 0 allowed
	}{{"summary-interval", o.summaryInterval, true}, {"close-wait-after", o.closeWaitAfter, false}, {"close-wait-repeat", o.closeWaitRepeat, false}, {"owner-rescan", o.ownerRescan, true}} {
		if d.v < 0 || (d.v == 0 && !d.zero) || (d.v > 0 && d.v < 100*time.Millisecond) || d.v > 7*24*time.Hour {
			return o, usageError{fmt.Errorf("invalid --%s %v: want a duration between 100ms and 168h", d.name, d.v)}
		}
	}
	if *ring != "" {
		n, err := parseRingSize(*ring)
		if err != nil {
			return o, usageError{err}
		}
		o.probe.RingBytes = n
	}
	ringBytes := o.probe.RingBytes
	if ringBytes == 0 {
		ringBytes = probe.DefaultRingBytes
	}
	o.probe.WakeupBytes = probe.DefaultWakeupBytes(ringBytes)
	if *wakeup != "" {
		n, err := strconv.ParseUint(*wakeup, 10, 32)
		if err != nil || n > uint64(ringBytes/2) {
			return o, usageError{fmt.Errorf("invalid --wakeup-bytes %q: want 0 to %d (half the ring buffer)", *wakeup, ringBytes/2)}
		}
		o.probe.WakeupBytes = uint32(n)
	}
	if *metricsAddr != "" {
		a, err := parseMetricsAddr(*metricsAddr)
		if err != nil {
			return o, usageError{err}
		}
		o.metricsAddr = a
	}
	o.probe.VerifierLogs = *debug
	// --no-events: the kernel aggregates; only what must stream is sent.
	o.probe.Aggregate = o.noEvents
	return o, nil
}
