package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// churnResult is cmd/churn's --json line.
type churnResult struct {
	Family      int     `json:"family"`
	Closer      string  `json:"closer"`
	Workers     int     `json:"workers"`
	Port        int     `json:"port"`
	Conns       uint64  `json:"conns"`
	Accepted    uint64  `json:"accepted"`
	Errors      uint64  `json:"errors"`
	ServerErrs  uint64  `json:"server_errors"`
	Seconds     float64 `json:"seconds"`
	ConnsPerSec float64 `json:"conns_per_sec"`
	FirstError  string  `json:"first_error"`
}

// netnsSeq names the per-round network namespaces.
var netnsSeq int

// runChurn runs one churn round, inside a fresh network namespace unless
// disabled, so TIME_WAIT sockets of one round never slow the next.
func runChurn(cfg *config, d time.Duration) (*churnResult, error) {
	args := []string{"--json", "--family", strconv.Itoa(cfg.family), "--closer", cfg.closer,
		"--workers", strconv.Itoa(cfg.workers), "--duration", d.String()}
	var cmd *exec.Cmd
	if cfg.netns {
		netnsSeq++
		ns := fmt.Sprintf("tcplens-bench-%d-%d", os.Getpid(), netnsSeq)
		if err := makeNetns(ns); err != nil {
			return nil, err
		}
		defer exec.Command("ip", "netns", "del", ns).Run()
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, cfg.churn}, args...)...)
	} else {
		cmd = exec.Command(cfg.churn, args...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("churn: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var r churnResult
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return nil, fmt.Errorf("churn output %q: %v", stdout.String(), err)
	}
	if r.Conns == 0 {
		return nil, fmt.Errorf("churn completed no connection: %s", r.FirstError)
	}
	return &r, nil
}

// makeNetns creates a namespace with loopback up, every ephemeral port
// available and TIME_WAIT reuse on (these sysctls are per namespace).
func makeNetns(ns string) error {
	exec.Command("ip", "netns", "del", ns).Run()
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"},
		{"ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			exec.Command("ip", "netns", "del", ns).Run()
			return fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// tracerRun is one running tcplens.
type tracerRun struct {
	cmd     *exec.Cmd
	outPath string
	stderr  *lockedBuffer
	exited  chan struct{}
	waitErr error

	progs      []uint32
	maps       []uint32
	mapMemlock uint64
	cpuUser0   time.Duration
	cpuSys0    time.Duration
	stats0     map[string]progStat
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startTracer starts tcplens with the mode's arguments, stdout to a file,
// and waits until it says it is tracing. An error means the mode cannot
// run (for example a flag this tcplens does not have).
func startTracer(cfg *config, m mode, outPath string) (*tracerRun, error) {
	out, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	t := &tracerRun{outPath: outPath, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	t.cmd = exec.Command(cfg.tcplens, m.Args...)
	if m.Floor {
		t.cmd = exec.Command(cfg.self, floorTracerArg)
	}
	t.cmd.Stdout = out
	pr, pw := io.Pipe()
	t.cmd.Stderr = io.MultiWriter(t.stderr, pw)
	if err := t.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		t.waitErr = t.cmd.Wait()
		pw.Close()
		close(t.exited)
	}()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if !sent && strings.HasPrefix(sc.Text(), "tcplens: tracing") {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-t.exited
			return nil, fmt.Errorf("tcplens %s exited before tracing (%v): %s",
				strings.Join(m.Args, " "), t.waitErr, strings.TrimSpace(t.stderr.String()))
		}
	case <-time.After(cfg.startTimeout):
		t.cmd.Process.Kill()
		<-t.exited
		return nil, fmt.Errorf("tcplens did not start tracing within %v: %s", cfg.startTimeout, strings.TrimSpace(t.stderr.String()))
	}
	pid := t.cmd.Process.Pid
	if t.progs, t.maps, t.mapMemlock, err = bpfObjects(pid); err != nil {
		t.kill()
		return nil, fmt.Errorf("list tcplens's BPF objects: %w", err)
	}
	if len(t.progs) == 0 {
		t.kill()
		return nil, errors.New("tcplens holds no BPF program descriptors")
	}
	if t.cpuUser0, t.cpuSys0, err = procCPU(pid); err != nil {
		t.kill()
		return nil, err
	}
	if t.stats0, err = progStats(t.progs); err != nil {
		t.kill()
		return nil, err
	}
	return t, nil
}

func (t *tracerRun) kill() {
	t.cmd.Process.Kill()
	<-t.exited
}

// tracedRound is what one traced round measured about tcplens.
type tracedRound struct {
	CPUUser     time.Duration
	CPUSys      time.Duration
	PeakRSS     uint64
	RSSEnd      uint64
	MapMemlock  uint64
	Programs    map[string]progStat // deltas over the round
	Counters    counters
	CountersOK  bool
	Lines       uint64 // lines in the output file
	OurLines    uint64 // lines about the churn's server port
	OutputBytes int64
}

// stop snapshots the kernel statistics, stops tcplens with SIGINT and
// collects its CPU time, peak RSS, counters line and output.
func (t *tracerRun) stop(cfg *config, port int) (*tracedRound, error) {
	pid := t.cmd.Process.Pid
	stats1, err := progStats(t.progs)
	if err != nil {
		t.kill()
		return nil, err
	}
	r := &tracedRound{Programs: map[string]progStat{}, MapMemlock: t.mapMemlock}
	for name, s1 := range stats1 {
		s0 := t.stats0[name]
		r.Programs[name] = progStat{Name: name, Runtime: s1.Runtime - s0.Runtime, Runs: s1.Runs - s0.Runs, Misses: s1.Misses - s0.Misses}
	}
	r.RSSEnd, _, _ = procMem(pid)
	t.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-t.exited:
	case <-time.After(cfg.stopTimeout):
		t.cmd.Process.Kill()
		<-t.exited
		return nil, fmt.Errorf("tcplens did not exit within %v of SIGINT", cfg.stopTimeout)
	}
	if t.waitErr != nil {
		return nil, fmt.Errorf("tcplens: %v: %s", t.waitErr, strings.TrimSpace(t.stderr.String()))
	}
	ru, ok := t.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return nil, errors.New("no rusage for tcplens")
	}
	r.CPUUser = time.Duration(ru.Utime.Nano()) - t.cpuUser0
	r.CPUSys = time.Duration(ru.Stime.Nano()) - t.cpuSys0
	r.PeakRSS = uint64(ru.Maxrss) << 10
	r.Counters, r.CountersOK = parseCounters(t.stderr.String())
	r.Lines, r.OurLines, r.OutputBytes, err = countLines(t.outPath, port)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// counters are the numbers of tcplens's exit line.
type counters struct {
	Seen, Emitted, Lost, DecodeErrors, Untracked uint64
}

var countersRE = regexp.MustCompile(`events seen (\d+), emitted (\d+), lost (\d+) \(ring buffer full\), decode errors (\d+), sockets untracked \(map full\) (\d+)`)

// parseCounters finds tcplens's counters line in its stderr.
func parseCounters(stderr string) (counters, bool) {
	m := countersRE.FindStringSubmatch(stderr)
	if m == nil {
		return counters{}, false
	}
	var n [5]uint64
	for i := range n {
		n[i], _ = strconv.ParseUint(m[i+1], 10, 64)
	}
	return counters{Seen: n[0], Emitted: n[1], Lost: n[2], DecodeErrors: n[3], Untracked: n[4]}, true
}

// countLines counts the output's lines, and those about sockets on the
// churn server's port (the listener, and both ends of every connection).
// Other TCP traffic on the host is traced too; this tells them apart.
func countLines(path string, port int) (all, ours uint64, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	state := []byte(`"type":"state"`) // handshake, time_wait... lines are not transitions
	sp := []byte(fmt.Sprintf(`"sport":%d,`, port))
	dp := []byte(fmt.Sprintf(`"dport":%d,`, port))
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		all++
		if l := sc.Bytes(); bytes.Contains(l, state) && (bytes.Contains(l, sp) || bytes.Contains(l, dp)) {
			ours++
		}
	}
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	return all, ours, size, sc.Err()
}

// soakSample is one sample of a long traced run.
type soakSample struct {
	Elapsed    float64        `json:"elapsed_s"`
	RSS        uint64         `json:"rss_bytes"`
	HWM        uint64         `json:"peak_rss_bytes"`
	MapMemlock uint64         `json:"bpf_map_bytes"`
	MapEntries map[string]int `json:"bpf_map_entries"`
	CPU        float64        `json:"cpu_s"`
}

// soak runs one traced churn of cfg.soak and samples tcplens's memory.
func soak(ctx context.Context, cfg *config, m mode) ([]soakSample, *churnResult, *tracedRound, error) {
	outPath := filepath.Join(cfg.outDir, "soak-"+m.Name+".out")
	if m.Lines {
		outPath = "/dev/null" // a 10-minute stream is tens of GB
	}
	t, err := startTracer(cfg, m, outPath)
	if err != nil {
		return nil, nil, nil, err
	}
	pid := t.cmd.Process.Pid
	var samples []soakSample
	sample := func(start time.Time) {
		rss, hwm, _ := procMem(pid)
		_, _, ml, _ := bpfObjects(pid)
		u, s, _ := procCPU(pid)
		samples = append(samples, soakSample{Elapsed: time.Since(start).Seconds(), RSS: rss, HWM: hwm,
			MapMemlock: ml, MapEntries: mapEntries(t.maps), CPU: (u + s - t.cpuUser0 - t.cpuSys0).Seconds()})
		fmt.Fprintf(os.Stderr, "soak %6.0fs: rss %s, peak %s, bpf maps %s, entries %v\n",
			samples[len(samples)-1].Elapsed, mib(rss), mib(hwm), mib(ml), samples[len(samples)-1].MapEntries)
	}
	start := time.Now()
	done := make(chan struct{})
	var res *churnResult
	var churnErr error
	go func() {
		res, churnErr = runChurn(cfg, cfg.soak)
		close(done)
	}()
	sample(start)
	tick := time.NewTicker(cfg.soakEvery)
	defer tick.Stop()
loop:
	for {
		select {
		case <-tick.C:
			sample(start)
		case <-done:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	<-done
	sample(start)
	port := 0
	if res != nil {
		port = res.Port
	}
	tr, err := t.stop(cfg, port)
	if err != nil {
		return samples, res, nil, err
	}
	return samples, res, tr, churnErr
}
