// Command tcplens traces TCP connection lifecycles with eBPF and streams
// every state transition, attributed to the process owning the socket,
// with handshake, TIME_WAIT and CLOSE_WAIT analyses on top.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tcplens/tcplens/internal/cgroups"
	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/ktime"
	"github.com/tcplens/tcplens/internal/lifecycle"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/tracer"
)

func main() {
	limitProcs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], stdoutWriter(os.Stdout), os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError marks bad command-line input (exit status 2).
type usageError struct{ error }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tcplens: %v (see tcplens -h)\n", ue.error)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "tcplens: %v\n", err)
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if opts.check {
		return runCheck(ctx, opts, stdout, stderr)
	}
	// The metrics endpoint binds first: a taken port fails before anything
	// is loaded, and a privileged port works before capabilities go.
	var ms *metricsServer
	if opts.metricsAddr != "" {
		if ms, err = listenMetrics(opts.metricsAddr); err != nil {
			return err
		}
	}
	t, err := tracer.OpenContext(ctx, opts.probe)
	if err != nil {
		if ms != nil {
			ms.close()
		}
		return startError(ctx, err, stderr)
	}
	defer t.Close()
	if ms != nil {
		defer ms.close() // before t.Close: scrapes read the kernel's maps
	}
	for _, w := range t.Warnings() {
		fmt.Fprintf(stderr, "tcplens: warning: %s\n", w)
	}
	for _, n := range t.Notes() {
		fmt.Fprintf(stderr, "tcplens: note: %s\n", n)
	}
	restrictPrivileges(stderr)
	t.SetRescanInterval(opts.ownerRescan)

	clock := tracer.Clock()
	var out output.Writer
	switch opts.format {
	case "text":
		out = output.NewText(stdout, clock)
	default:
		out = output.NewJSON(stdout, clock)
	}
	reportLosses(t, out)
	s := newSession(opts, t, out)
	if ms != nil {
		ms.serve(s.metrics)
		fmt.Fprintf(stderr, "tcplens: metrics at http://%s/metrics\n", ms.ln.Addr())
	}
	fmt.Fprintf(stderr, "tcplens: tracing TCP state transitions (%d existing socket descriptors found); Ctrl-C to stop\n", len(t.StartupSockets()))

	runErr := t.Run(ctx, tracer.Handlers{Record: s.record, Tick: s.tick})
	reportErr := s.report(ktime.Now())
	flushErr := out.Flush()
	printCounters(stderr, t, s.emitted)
	printRecords(stderr, t)
	return quietStop(errors.Join(runErr, reportErr, flushErr))
}

// session connects the tracer's records to the analyses and the output.
type session struct {
	opts        options
	t           *tracer.Tracer
	out         output.Writer
	an          *lifecycle.Analyzer
	emitted     uint64 // state lines written
	nextSummary uint64
	overflow0   uint64 // TCPTimeWaitOverflow when tracing began
	cgroups     *cgroups.Resolver
	agg         *aggState // summary-only mode (--no-events): see agg.go
	metrics     *metrics  // nil without --metrics-addr
}

// quietSink drops per-event lines (--no-events) but keeps CLOSE_WAIT alerts.
type quietSink struct{ output.Writer }

func (quietSink) Handshake(*lifecycle.Handshake) error { return nil }
func (quietSink) Accept(*lifecycle.Accept) error       { return nil }
func (quietSink) TimeWait(*lifecycle.TimeWait) error   { return nil }

func newSession(opts options, t *tracer.Tracer, out output.Writer) *session {
	s := &session{opts: opts, t: t, out: out, cgroups: cgroups.NewResolver()}
	var sink lifecycle.Sink = out
	if opts.noEvents {
		sink = quietSink{out}
	}
	if opts.metricsAddr != "" {
		s.metrics = &metrics{t: t}
		sink = countingSink{sink, s.metrics}
	}
	s.an = lifecycle.New(lifecycle.Config{
		CloseWaitAfter:  uint64(opts.closeWaitAfter),
		CloseWaitRepeat: uint64(opts.closeWaitRepeat),
		Start:           t.Start(),
	}, sink, t.Table())
	if opts.probe.Aggregate {
		s.agg = newAggState(opts, t.Start())
	}
	for _, seed := range t.StartupSockets() {
		if seed.State == event.CloseWait {
			if _, watched := t.Table().Get(seed.Cookie); s.agg != nil && !watched {
				continue // left CLOSE_WAIT before it could be watched
			}
			s.an.SeedCloseWait(seed.Record())
		}
	}
	s.overflow0, _ = probe.TimeWaitOverflows()
	if opts.summaryInterval > 0 {
		s.nextSummary = t.Start() + uint64(opts.summaryInterval)
	}
	return s
}

func (s *session) record(r *event.Record) error {
	if s.agg != nil && r.Kind == event.KindExit {
		s.agg.exited(r.Owner, r.TS)
	}
	if r.Kind == event.KindState && s.metrics != nil {
		s.metrics.state(r)
	}
	if r.Kind == event.KindState && !s.opts.noEvents {
		s.emitted++
		if err := s.out.State(r); err != nil {
			return err
		}
	}
	return s.an.Record(r)
}

func (s *session) tick(now uint64) error {
	if err := s.watchCloseWait(now); err != nil {
		return err
	}
	if s.an.CloseWaitDue(now) {
		// Name whoever holds the descriptor now (a forked child, say).
		if err := s.t.RefreshOwners(); err != nil {
			return err
		}
	}
	if err := s.an.Tick(now); err != nil {
		return err
	}
	if s.metrics != nil {
		s.metrics.publish(s.an, s.t.Stats(), s.emitted)
	}
	if s.nextSummary != 0 && now >= s.nextSummary {
		s.nextSummary = now + uint64(s.opts.summaryInterval)
		if err := s.summaries(now); err != nil {
			return err
		}
	}
	return s.out.Flush()
}

func (s *session) host(now uint64) *output.Host {
	h := &output.Host{TS: now, TimeWait: s.an.TimeWaitNow(), TopRemotes: s.an.TopRemotes(10)}
	if s.agg != nil {
		h.TimeWait, h.TopRemotes = lifecycle.TimeWaitLive(s.agg.last), nil
	}
	if c, err := s.t.Counters(); err == nil {
		h.Lost, h.Skipped, h.Untracked = c.RingFull, c.Skipped, c.Untracked()
	}
	if v, err := probe.TimeWaitOverflows(); err == nil && v >= s.overflow0 {
		h.TimeWaitOverflows = v - s.overflow0
	}
	return h
}

// procSummaries are the summaries with cgroup paths.
func (s *session) procSummaries(now uint64) ([]lifecycle.Summary, error) {
	sums, err := s.rawSummaries(now)
	for i := range sums {
		sums[i].Cgroup = s.cgroups.Path(sums[i].CgroupID)
	}
	return sums, err
}

func (s *session) summaries(now uint64) error {
	sums, err := s.procSummaries(now)
	if err != nil {
		return err
	}
	for i := range sums {
		if err := s.out.Summary(&sums[i]); err != nil {
			return err
		}
	}
	return s.out.Host(s.host(now))
}

// report is the exit report: always once, whatever the interval.
func (s *session) report(now uint64) error {
	if err := s.an.Tick(now); err != nil {
		return err
	}
	sums, err := s.procSummaries(now)
	if err != nil {
		return err
	}
	return s.out.Report(sums, s.host(now))
}

func printCounters(w io.Writer, t *tracer.Tracer, emitted uint64) {
	st := t.Stats()
	c, err := t.Counters()
	if err != nil {
		fmt.Fprintf(w, "tcplens: events emitted %d; kernel counters unavailable: %v\n", emitted, err)
		return
	}
	fmt.Fprintf(w, "tcplens: events seen %d, emitted %d, lost %d (ring buffer full), decode errors %d, sockets untracked (map full) %d, skipped by the kernel (recursion) %d\n",
		c.Produced, emitted, c.RingFull, st.DecodeErrors, c.Untracked(), c.Skipped)
}
