// Command tcplens-bench measures what tcplens costs the traced workload.
//
// Per tracer mode it alternates baseline rounds (no tracer) and traced
// rounds (tcplens running) of cmd/churn — ABAB..., each round in a fresh
// network namespace — and reports the median connections per second of
// each, the overhead, the kernel's own run-time statistics per BPF program
// invocation, tcplens's CPU time per 100k connections, its peak RSS, and
// the events it emitted against the events the churn must have caused.
//
// Every number is from one run on one machine; compare ratios within a
// run, not absolute numbers across machines. See README.md, "Benchmark".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
)

// mode is one way of running tcplens: a name and its extra arguments.
// A mode whose tcplens does not start (an unknown flag, say) is skipped
// with the reason.
type mode struct {
	Name  string
	Args  []string
	Lines bool // writes one line per transition: compare lines with the expected count
	// Floor: the tracer is not tcplens but the floor (floorTracerArg):
	// what hooking tcplens's tracepoints costs with no work behind them.
	Floor bool
}

// modes is the table of known tracer modes.
var modes = []mode{
	{Name: "floor", Floor: true},
	{Name: "json-file", Lines: true},
	// Waking the reader for every record (the pre-batching behaviour), for comparison.
	{Name: "json-per-record", Args: []string{"--wakeup-bytes", "0"}, Lines: true},
	{Name: "no-events", Args: []string{"--no-events"}},
}

// transitionsPerConn: 5 TCP state transitions on each side of a
// connection, whoever closes first (README: the JSON line).
const transitionsPerConn = 10

// listenerLines: the churn server's listener goes CLOSE->LISTEN->CLOSE.
const listenerLines = 2

type config struct {
	tcplens, churn string
	self           string // this binary: the floor mode's tracer
	rounds         int
	round          time.Duration
	family         int
	closer         string
	workers        int
	modes          []mode
	netns          bool
	bpfStats       bool
	outDir         string
	keepOutput     bool
	jsonPath       string
	settle         time.Duration
	startTimeout   time.Duration
	stopTimeout    time.Duration
	soak           time.Duration
	soakEvery      time.Duration
}

type modeList []string

func (m *modeList) String() string     { return strings.Join(*m, ",") }
func (m *modeList) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	if len(os.Args) == 2 && os.Args[1] == floorTracerArg {
		os.Exit(runFloorTracer())
	}
	cfg := &config{}
	var modeNames string
	var custom modeList
	fs := flag.NewFlagSet("tcplens-bench", flag.ExitOnError)
	fs.StringVar(&cfg.tcplens, "tcplens", "bin/tcplens", "tcplens binary")
	fs.StringVar(&cfg.churn, "churn", "bin/churn", "churn binary (cmd/churn)")
	fs.IntVar(&cfg.rounds, "rounds", 5, "baseline and traced rounds per mode (each)")
	fs.DurationVar(&cfg.round, "round", 10*time.Second, "duration of one round")
	fs.IntVar(&cfg.family, "family", 4, "churn address family: 4 or 6")
	fs.StringVar(&cfg.closer, "closer", "client", "who closes first: client or server")
	fs.IntVar(&cfg.workers, "workers", 4, "churn client workers (and as many server workers)")
	fs.StringVar(&modeNames, "modes", "floor,json-file,no-events", "tracer modes to run, from: "+knownModes())
	fs.Var(&custom, "mode", "extra tracer mode NAME=ARGS (ARGS split on spaces; repeatable), e.g. 'text=--format text'")
	fs.BoolVar(&cfg.netns, "netns", true, "run each churn round in a fresh network namespace")
	fs.BoolVar(&cfg.bpfStats, "bpf-stats", true, "turn on the kernel's BPF run-time statistics while running")
	fs.StringVar(&cfg.outDir, "out-dir", "", "directory for tcplens's output files (default: a temporary one)")
	fs.BoolVar(&cfg.keepOutput, "keep-output", false, "keep tcplens's output files")
	fs.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file ('-': stdout, instead of the table)")
	fs.DurationVar(&cfg.settle, "settle", 300*time.Millisecond, "wait after churn before stopping tcplens")
	fs.DurationVar(&cfg.startTimeout, "start-timeout", time.Minute, "how long tcplens may take to start tracing")
	fs.DurationVar(&cfg.stopTimeout, "stop-timeout", time.Minute, "how long tcplens may take to exit after SIGINT")
	fs.DurationVar(&cfg.soak, "soak", 0, "instead of ABAB rounds: one traced churn this long per mode, sampling tcplens's memory")
	fs.DurationVar(&cfg.soakEvery, "soak-every", 30*time.Second, "sampling interval of --soak")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fatal(2, "unexpected argument %q", fs.Arg(0))
	}
	if cfg.rounds < 1 || cfg.round <= 0 || cfg.workers < 1 {
		fatal(2, "--rounds, --round and --workers must be positive")
	}
	if cfg.family != 4 && cfg.family != 6 {
		fatal(2, "invalid --family %d", cfg.family)
	}
	if cfg.closer != "client" && cfg.closer != "server" {
		fatal(2, "invalid --closer %q", cfg.closer)
	}
	for _, name := range strings.Split(modeNames, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		m, ok := findMode(name)
		if !ok {
			fatal(2, "unknown mode %q (known: %s; or use --mode NAME=ARGS)", name, knownModes())
		}
		cfg.modes = append(cfg.modes, m)
	}
	for _, c := range custom {
		name, args, ok := strings.Cut(c, "=")
		if !ok || name == "" {
			fatal(2, "invalid --mode %q: want NAME=ARGS", c)
		}
		cfg.modes = append(cfg.modes, mode{Name: name, Args: strings.Fields(args), Lines: true})
	}
	if len(cfg.modes) == 0 {
		fatal(2, "no modes to run")
	}
	if os.Geteuid() != 0 {
		fatal(1, "needs root (loads tcplens, creates network namespaces)")
	}
	for _, p := range []string{cfg.tcplens, cfg.churn} {
		if _, err := os.Stat(p); err != nil {
			fatal(1, "%v (make build bin/churn, or see --tcplens/--churn)", err)
		}
	}
	var err error
	if cfg.tcplens, err = filepath.Abs(cfg.tcplens); err != nil {
		fatal(1, "%v", err)
	}
	if cfg.churn, err = filepath.Abs(cfg.churn); err != nil {
		fatal(1, "%v", err)
	}
	if cfg.self, err = os.Executable(); err != nil {
		fatal(1, "%v", err)
	}
	if cfg.outDir == "" {
		dir, err := os.MkdirTemp("", "tcplens-bench-")
		if err != nil {
			fatal(1, "%v", err)
		}
		cfg.outDir = dir
		if !cfg.keepOutput {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		fatal(1, "%v", err)
	}
	if cfg.bpfStats {
		// Fail early, not after the first mode's rounds.
		stats, err := enableStats()
		if err != nil {
			fatal(1, "%v", err)
		}
		stats.Close()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := &report{
		Config: reportConfig{SoakSeconds: cfg.soak.Seconds(), Rounds: cfg.rounds, RoundSeconds: cfg.round.Seconds(), Family: cfg.family,
			Closer: cfg.closer, Workers: cfg.workers, Netns: cfg.netns, BPFStats: cfg.bpfStats},
		Host: hostInfo(),
	}
	for _, m := range cfg.modes {
		if ctx.Err() != nil {
			break
		}
		var mr *modeResult
		if cfg.soak > 0 {
			mr = runSoak(ctx, cfg, m)
		} else {
			mr = runMode(ctx, cfg, m)
		}
		rep.Modes = append(rep.Modes, mr)
	}
	compareToFloor(rep.Modes)
	if cfg.jsonPath != "-" {
		printTable(os.Stdout, rep)
	}
	if cfg.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		b = append(b, '\n')
		if cfg.jsonPath == "-" {
			os.Stdout.Write(b)
		} else if err := os.WriteFile(cfg.jsonPath, b, 0o644); err != nil {
			fatal(1, "%v", err)
		}
	}
	// The runner itself works if at least one mode produced a measurement.
	for _, m := range rep.Modes {
		if m.Status == "ok" {
			return
		}
	}
	fatal(1, "no mode produced a measurement")
}

func findMode(name string) (mode, bool) {
	for _, m := range modes {
		if m.Name == name {
			return m, true
		}
	}
	return mode{}, false
}

func knownModes() string {
	var n []string
	for _, m := range modes {
		n = append(n, m.Name)
	}
	return strings.Join(n, ",")
}

func fatal(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "tcplens-bench: "+format+"\n", a...)
	os.Exit(code)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "tcplens-bench: "+format+"\n", a...)
}

func hostInfo() map[string]any {
	var u syscall.Utsname
	syscall.Uname(&u)
	rel := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	return map[string]any{"kernel": string(rel), "cpus": runtime.NumCPU(), "time": time.Now().UTC().Format(time.RFC3339)}
}

// runMode runs the ABAB rounds of one mode.
func runMode(ctx context.Context, cfg *config, m mode) *modeResult {
	mr := &modeResult{Name: m.Name, Args: m.Args, Status: "ok", programs: map[string]progStat{}}
	logf("mode %s (tcplens %s): %d baseline and %d traced rounds of %v", m.Name, strings.Join(m.Args, " "), cfg.rounds, cfg.rounds, cfg.round)
	for i := 0; i < cfg.rounds && ctx.Err() == nil; i++ {
		// A: baseline.
		base, err := runChurn(cfg, cfg.round)
		if err != nil {
			mr.fail("baseline round %d: %v", i+1, err)
			return mr
		}
		mr.Baseline = append(mr.Baseline, base.ConnsPerSec)
		// B: traced.
		traced, tr, err := runTraced(cfg, m, fmt.Sprint(i+1))
		var start startError
		if errors.As(err, &start) {
			mr.Status = "skipped"
			mr.Reason = err.Error()
			logf("mode %s skipped: %v", m.Name, err)
			return mr
		} else if err != nil {
			mr.fail("traced round %d: %v", i+1, err)
			return mr
		}
		mr.addTraced(m, traced, tr)
		last := mr.Rounds[len(mr.Rounds)-1]
		logf("  round %d: baseline %.0f conn/s, traced %.0f conn/s, tcplens cpu %.2fs, events %d/%d expected, lost %d, missed %d",
			i+1, base.ConnsPerSec, traced.ConnsPerSec, last.CPUSeconds, last.EventsOurs, last.EventsExpected, last.Lost, last.Missed)
	}
	if cfg.bpfStats && ctx.Err() == nil {
		if err := runCostRound(cfg, m, mr); err != nil {
			mr.fail("cost round: %v", err)
			return mr
		}
	}
	mr.finish()
	return mr
}

// runCostRound runs one more traced round with the kernel's BPF run-time
// statistics on, for the per-program cost table. It is kept out of the
// overhead figures: the statistics themselves cost two clock reads per
// program run, which the tracer does not pay in production.
func runCostRound(cfg *config, m mode, mr *modeResult) error {
	stats, err := enableStats()
	if err != nil {
		return err
	}
	defer stats.Close()
	traced, tr, err := runTraced(cfg, m, "cost")
	if err != nil {
		return err
	}
	mr.addCost(traced, tr)
	logf("  cost round (bpf_stats on): traced %.0f conn/s", traced.ConnsPerSec)
	return nil
}

// startError: tcplens did not start (a mode this build lacks: skipped).
type startError struct{ error }

func (e startError) Unwrap() error { return e.error }

// runTraced runs one churn round under tcplens (stdout to a file named
// after the mode and round, removed afterwards unless --keep-output).
func runTraced(cfg *config, m mode, round string) (*churnResult, *tracedRound, error) {
	outPath := filepath.Join(cfg.outDir, m.Name+"-"+round+".out")
	if !cfg.keepOutput {
		defer os.Remove(outPath)
	}
	t, err := startTracer(cfg, m, outPath)
	if err != nil {
		return nil, nil, startError{err}
	}
	traced, err := runChurn(cfg, cfg.round)
	if err != nil {
		t.kill()
		return nil, nil, err
	}
	time.Sleep(cfg.settle)
	tr, err := t.stop(cfg, traced.Port)
	if err != nil {
		return nil, nil, err
	}
	return traced, tr, nil
}

// enableStats turns on the kernel's BPF run-time statistics until the
// returned descriptor is closed (or this process exits).
func enableStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(0 /* BPF_STATS_RUN_TIME */)
	if err != nil {
		return nil, fmt.Errorf("enable BPF run-time statistics: %w", err)
	}
	return c, nil
}

func runSoak(ctx context.Context, cfg *config, m mode) *modeResult {
	mr := &modeResult{Name: m.Name, Args: m.Args, Status: "ok", programs: map[string]progStat{}}
	logf("mode %s: soak of %v", m.Name, cfg.soak)
	if cfg.bpfStats {
		stats, err := enableStats()
		if err != nil {
			mr.fail("%v", err)
			return mr
		}
		defer stats.Close()
	}
	samples, res, tr, err := soak(ctx, cfg, m)
	mr.Soak = samples
	if err != nil {
		mr.fail("soak: %v", err)
		return mr
	}
	mr.addTraced(mode{Name: m.Name, Args: m.Args}, res, tr) // output went to /dev/null: no line counts
	mr.addCost(res, tr)
	mr.finish()
	return mr
}

// report is the JSON output.
type report struct {
	Config reportConfig   `json:"config"`
	Host   map[string]any `json:"host"`
	Modes  []*modeResult  `json:"modes"`
}

type reportConfig struct {
	SoakSeconds  float64 `json:"soak_seconds,omitempty"` // a --soak run: no baseline rounds
	Rounds       int     `json:"rounds"`
	RoundSeconds float64 `json:"round_seconds"`
	Family       int     `json:"family"`
	Closer       string  `json:"closer"`
	Workers      int     `json:"workers"`
	Netns        bool    `json:"netns"`
	BPFStats     bool    `json:"bpf_stats"`
}

type modeResult struct {
	Name   string   `json:"name"`
	Args   []string `json:"args"`
	Status string   `json:"status"` // ok, skipped (tcplens would not start), failed
	Reason string   `json:"reason,omitempty"`

	Baseline       []float64 `json:"baseline_conns_per_sec"`
	Traced         []float64 `json:"traced_conns_per_sec"`
	BaselineMedian float64   `json:"baseline_median"`
	TracedMedian   float64   `json:"traced_median"`
	OverheadPct    float64   `json:"overhead_pct"`
	// Per ABAB pair (a baseline round and the traced round right after it):
	// the median and the range of (baseline-traced)/baseline. Slow drift of
	// the host's load moves both rounds of a pair alike, so the range shows
	// what the run can tell apart.
	PairedOverheadPct float64    `json:"paired_overhead_pct"`
	PairedRangePct    [2]float64 `json:"paired_overhead_range_pct"`
	BaselineSpread    float64    `json:"baseline_spread_pct"` // (max-min)/median of the baseline rounds: the run's noise
	TracedSpread      float64    `json:"traced_spread_pct"`

	Conns          uint64  `json:"traced_conns"`
	CPUUser        float64 `json:"cpu_user_s"`
	CPUSys         float64 `json:"cpu_sys_s"`
	CPUPer100k     float64 `json:"cpu_s_per_100k_conns"` // user+sys
	UserPer100k    float64 `json:"cpu_user_s_per_100k_conns"`
	PeakRSS        uint64  `json:"peak_rss_bytes"`
	BPFMapBytes    uint64  `json:"bpf_map_bytes"`
	EventsExpected uint64  `json:"events_expected"`
	EventsOurs     uint64  `json:"events_ours"`    // output lines about the churn's sockets
	EventsLines    uint64  `json:"events_lines"`   // all output lines (other host traffic included)
	EventsEmitted  uint64  `json:"events_emitted"` // tcplens's own count
	EventsSeen     uint64  `json:"events_seen"`    // records the kernel side produced
	Lost           uint64  `json:"lost"`           // ring buffer full (tcplens's counter)
	Missed         uint64  `json:"missed"`         // runs the kernel skipped (BPF recursion protection): events never seen
	DecodeErrors   uint64  `json:"decode_errors"`
	Untracked      uint64  `json:"sockets_untracked"`
	OutputBytes    int64   `json:"output_bytes"`

	// Kernel time of all the mode's programs per connection (cost round).
	KernelNsPerConn float64 `json:"kernel_ns_per_conn"`
	// Against the floor mode of the same run (absent when it did not run):
	// paired overhead and kernel time above what hooking costs.
	OverFloorPct         *float64 `json:"over_floor_pct,omitempty"`
	KernelOverFloorNsPer *float64 `json:"kernel_over_floor_ns_per_conn,omitempty"`

	Programs  []programResult `json:"programs"`   // from the cost round
	CostConns uint64          `json:"cost_conns"` // connections of the cost round
	Rounds    []roundResult   `json:"rounds"`
	Soak      []soakSample    `json:"soak,omitempty"`

	programs map[string]progStat // from the cost round (bpf_stats on)
}

type programResult struct {
	Name        string  `json:"name"`
	Runs        uint64  `json:"runs"`
	RunsPerConn float64 `json:"runs_per_conn"`
	NsPerRun    float64 `json:"ns_per_run"`
	NsPerConn   float64 `json:"ns_per_conn"`
	Misses      uint64  `json:"recursion_misses"`
}

type roundResult struct {
	Baseline       float64 `json:"baseline_conns_per_sec"`
	Traced         float64 `json:"traced_conns_per_sec"`
	Conns          uint64  `json:"conns"`
	ChurnErrors    uint64  `json:"churn_errors"`
	CPUSeconds     float64 `json:"cpu_s"`
	PeakRSS        uint64  `json:"peak_rss_bytes"`
	RSSEnd         uint64  `json:"rss_end_bytes"`
	EventsExpected uint64  `json:"events_expected"`
	EventsOurs     uint64  `json:"events_ours"`
	EventsEmitted  uint64  `json:"events_emitted"`
	Lost           uint64  `json:"lost"`
	Missed         uint64  `json:"missed"`
}

func (mr *modeResult) fail(format string, a ...any) {
	mr.Status = "failed"
	mr.Reason = fmt.Sprintf(format, a...)
	logf("mode %s failed: %s", mr.Name, mr.Reason)
}

func (mr *modeResult) addTraced(m mode, c *churnResult, t *tracedRound) {
	mr.Traced = append(mr.Traced, c.ConnsPerSec)
	mr.Conns += c.Conns
	mr.CPUUser += t.CPUUser.Seconds()
	mr.CPUSys += t.CPUSys.Seconds()
	mr.PeakRSS = max(mr.PeakRSS, t.PeakRSS)
	mr.BPFMapBytes = max(mr.BPFMapBytes, t.MapMemlock)
	expected := c.Conns*transitionsPerConn + listenerLines
	if m.Lines {
		mr.EventsExpected += expected
	}
	mr.EventsOurs += t.OurLines
	mr.EventsLines += t.Lines
	mr.EventsEmitted += t.Counters.Emitted
	mr.EventsSeen += t.Counters.Seen
	mr.Lost += t.Counters.Lost
	mr.DecodeErrors += t.Counters.DecodeErrors
	mr.Untracked += t.Counters.Untracked
	mr.OutputBytes += t.OutputBytes
	rr := roundResult{Traced: c.ConnsPerSec, Conns: c.Conns, ChurnErrors: c.Errors + c.ServerErrs,
		CPUSeconds: (t.CPUUser + t.CPUSys).Seconds(), PeakRSS: t.PeakRSS, RSSEnd: t.RSSEnd,
		EventsOurs: t.OurLines, EventsEmitted: t.Counters.Emitted, Lost: t.Counters.Lost}
	for _, s := range t.Programs {
		rr.Missed += s.Misses // counted by the kernel with or without statistics
	}
	mr.Missed += rr.Missed
	if m.Lines {
		rr.EventsExpected = expected
	}
	if n := len(mr.Baseline); n > 0 {
		rr.Baseline = mr.Baseline[n-1]
	}
	mr.Rounds = append(mr.Rounds, rr)
}

// addCost adds a round's per-program run-time statistics.
func (mr *modeResult) addCost(c *churnResult, t *tracedRound) {
	mr.CostConns += c.Conns
	for name, s := range t.Programs {
		a := mr.programs[name]
		a.Name, a.Runtime, a.Runs, a.Misses = name, a.Runtime+s.Runtime, a.Runs+s.Runs, a.Misses+s.Misses
		mr.programs[name] = a
	}
}

func (mr *modeResult) finish() {
	mr.BaselineMedian = median(mr.Baseline)
	mr.TracedMedian = median(mr.Traced)
	if mr.BaselineMedian > 0 && len(mr.Traced) > 0 {
		mr.OverheadPct = (mr.BaselineMedian - mr.TracedMedian) / mr.BaselineMedian * 100
	}
	mr.BaselineSpread = spread(mr.Baseline)
	mr.TracedSpread = spread(mr.Traced)
	mr.PairedOverheadPct, mr.PairedRangePct = paired(mr.Baseline, mr.Traced)
	if mr.Conns > 0 {
		mr.CPUPer100k = (mr.CPUUser + mr.CPUSys) / float64(mr.Conns) * 1e5
		mr.UserPer100k = mr.CPUUser / float64(mr.Conns) * 1e5
	}
	for _, s := range mr.programs {
		p := programResult{Name: s.Name, Runs: s.Runs, Misses: s.Misses}
		if s.Runs > 0 {
			p.NsPerRun = float64(s.Runtime.Nanoseconds()) / float64(s.Runs)
		}
		if mr.CostConns > 0 {
			p.RunsPerConn = float64(s.Runs) / float64(mr.CostConns)
			p.NsPerConn = float64(s.Runtime.Nanoseconds()) / float64(mr.CostConns)
		}
		mr.Programs = append(mr.Programs, p)
		mr.KernelNsPerConn += p.NsPerConn
	}
	sort.Slice(mr.Programs, func(i, j int) bool { return mr.Programs[i].Name < mr.Programs[j].Name })
}

// compareToFloor sets each mode's figures above the floor mode's, when the
// floor ran in the same run.
func compareToFloor(modes []*modeResult) {
	var floor *modeResult
	for _, m := range modes {
		if m.Name == "floor" && m.Status == "ok" {
			floor = m
		}
	}
	if floor == nil {
		return
	}
	for _, m := range modes {
		if m == floor || m.Status != "ok" {
			continue
		}
		pct := m.PairedOverheadPct - floor.PairedOverheadPct
		m.OverFloorPct = &pct
		if m.CostConns > 0 && floor.CostConns > 0 {
			ns := m.KernelNsPerConn - floor.KernelNsPerConn
			m.KernelOverFloorNsPer = &ns
		}
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// paired is the median and the range of the per-pair overheads, in
// percent: baseline[i] and traced[i] ran one after the other.
func paired(baseline, traced []float64) (float64, [2]float64) {
	var p []float64
	for i := 0; i < len(baseline) && i < len(traced); i++ {
		if baseline[i] > 0 {
			p = append(p, (baseline[i]-traced[i])/baseline[i]*100)
		}
	}
	if len(p) == 0 {
		return 0, [2]float64{}
	}
	return median(p), [2]float64{slices.Min(p), slices.Max(p)}
}

// spread is (max-min)/median in percent: how noisy a set of rounds was.
func spread(v []float64) float64 {
	m := median(v)
	if m == 0 {
		return 0
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return (hi - lo) / m * 100
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
