package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// launched is tcplens started without waiting for it to be ready.
type launched struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr strings.Builder
	ready  chan struct{} // closed at "tcplens: tracing"
	exited chan struct{} // closed when stderr hits EOF and the process is reaped
	err    error         // of Wait
	ids    bpfIDs        // BPF objects seen held by the process while it ran
	idsMu  sync.Mutex
}

// launch starts tcplens with stdout going to out and watches it: stderr is
// collected, and the BPF objects it holds are sampled until it exits.
func launch(t *testing.T, out io.Writer, args ...string) *launched {
	t.Helper()
	requireRoot(t)
	l := &launched{cmd: exec.Command(buildTool(t), args...), ready: make(chan struct{}), exited: make(chan struct{}), ids: newBPFIDs()}
	l.cmd.Stdout = out
	pipe, err := l.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-l.exited:
		default:
			l.cmd.Process.Kill()
			<-l.exited
		}
	})
	stop := make(chan struct{})
	go func() { // sample the BPF objects the process holds
		for {
			select {
			case <-stop:
				return
			default:
			}
			l.idsMu.Lock()
			l.ids.addHeldBy(l.cmd.Process.Pid)
			l.idsMu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		sc := bufio.NewReader(pipe)
		for {
			line, err := sc.ReadString('\n')
			l.mu.Lock()
			l.stderr.WriteString(line)
			l.mu.Unlock()
			if strings.HasPrefix(line, "tcplens: tracing") {
				l.idsMu.Lock()
				l.ids.addHeldBy(l.cmd.Process.Pid)
				l.idsMu.Unlock()
				close(l.ready)
			}
			if err != nil {
				break
			}
		}
		close(stop)
		l.err = l.cmd.Wait()
		close(l.exited)
	}()
	return l
}

func (l *launched) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-l.ready:
	case <-l.exited:
		t.Fatalf("tcplens exited before tracing: %s", l.errText())
	case <-time.After(30 * time.Second):
		t.Fatal("tcplens did not start tracing in 30s")
	}
}

// wait returns the exit code (-1 with the signal when killed by one).
func (l *launched) wait(t *testing.T, timeout time.Duration) (int, syscall.Signal) {
	t.Helper()
	select {
	case <-l.exited:
	case <-time.After(timeout):
		t.Fatalf("tcplens did not exit in %v; stderr:\n%s", timeout, l.errText())
	}
	var ee *exec.ExitError
	if errors.As(l.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, ws.Signal()
		}
		return ee.ExitCode(), 0
	}
	if l.err != nil {
		t.Fatal(l.err)
	}
	return 0, 0
}

func (l *launched) errText() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stderr.String()
}

func (l *launched) held() bpfIDs {
	l.idsMu.Lock()
	defer l.idsMu.Unlock()
	return l.ids
}

// loadPeers starts a server peer accepting and closing connections, and a
// client peer; it returns the client and the server's address.
func loadPeers(t *testing.T) (*peer, string) {
	srv, cli := startPeer(t, ""), startPeer(t, "")
	addr := srv.do("listen 127.0.0.1:0")
	srv.do("serve")
	return cli, addr
}

// TestStdoutClosed: tcplens | head -1. When the reader of stdout goes
// away, tcplens stops like on SIGTERM: exit 0, no error, nothing left.
func TestStdoutClosed(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	l := launch(t, w)
	w.Close()
	l.waitReady(t)
	first := make(chan string, 1)
	go func() { // head -1
		line, _ := bufio.NewReader(r).ReadString('\n')
		r.Close()
		first <- line
	}()
	cli, addr := loadPeers(t)
	for i := 0; ; i++ { // until tcplens writes after the reader is gone
		select {
		case <-l.exited:
		default:
			if i > 400 {
				t.Fatalf("tcplens still running after %d connections; stderr:\n%s", i*20, l.errText())
			}
			cli.do("churn %s 20", addr)
			continue
		}
		break
	}
	code, sig := l.wait(t, 20*time.Second)
	stderr := l.errText()
	if line := <-first; !strings.HasPrefix(line, `{"ts":`) {
		t.Errorf("first line %q", line)
	}
	if code != 0 || sig != 0 {
		t.Errorf("exit code %d signal %v, want 0; stderr:\n%s", code, sig, stderr)
	}
	for _, bad := range []string{"broken pipe", "goroutine", "panic", "tcplens: write"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr mentions %q:\n%s", bad, stderr)
		}
	}
	if !strings.Contains(stderr, "records produced") {
		t.Errorf("no counters on stderr:\n%s", stderr)
	}
	if len(l.held().progs) == 0 || len(l.held().links) == 0 {
		t.Errorf("saw no BPF objects held by tcplens while it ran: %+v", l.held())
	}
	assertNothingLeft(t, l.held())
}

// TestSignalAnyMoment sends SIGTERM (and SIGINT) at several moments of
// start-up and after it. Whatever the moment, tcplens exits cleanly:
//   - before it installs its handler (the first milliseconds of the Go
//     runtime, nothing loaded yet): killed by the signal, no output;
//   - during start-up (load, attach, scan): exit 0 and the one line
//     "stopped during start-up; nothing left loaded";
//   - once tracing: exit 0 with the counters.
//
// and no program or link stays behind. Start-up time varies a lot on a busy
// host, so besides fixed delays the test aims at phases it can see: the
// first BPF program loaded, and the first link attached.
func TestSignalAnyMoment(t *testing.T) {
	const (
		firstProg = -1
		firstLink = -2
		ready     = -3
	)
	type moment struct {
		sig   syscall.Signal
		delay time.Duration
	}
	var moments []moment
	for _, d := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, firstProg, firstLink, ready} {
		moments = append(moments, moment{syscall.SIGTERM, d})
	}
	for _, d := range []time.Duration{0, firstProg, ready} {
		moments = append(moments, moment{syscall.SIGINT, d})
	}
	outcomes := map[string]int{}
	for _, m := range moments {
		name := map[time.Duration]string{firstProg: "at-first-program", firstLink: "at-first-link", ready: "after-ready"}[m.delay]
		if name == "" {
			name = "after-" + m.delay.String()
		}
		t.Run(m.sig.String()+"-"+name, func(t *testing.T) {
			var out bytes.Buffer
			l := launch(t, &out)
			switch m.delay {
			case ready:
				l.waitReady(t)
			case firstProg, firstLink:
				l.waitHolding(t, m.delay == firstLink)
			default:
				time.Sleep(m.delay)
			}
			l.cmd.Process.Signal(m.sig)
			code, killed := l.wait(t, 30*time.Second)
			stderr := l.errText()
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Fatalf("stack on stderr:\n%s", stderr)
			}
			outcome := ""
			switch {
			case killed != 0:
				if killed != m.sig || stderr != "" {
					t.Errorf("killed by %v with stderr %q", killed, stderr)
				}
				outcome = "killed before handler"
			case code != 0:
				t.Errorf("exit code %d; stderr:\n%s", code, stderr)
			case strings.HasPrefix(dropNotes(stderr), "tcplens: tracing"):
				if !strings.Contains(stderr, "events seen") || !strings.Contains(stderr, "records produced") {
					t.Errorf("no counters:\n%s", stderr)
				}
				outcome = "traced, counters"
			default:
				if stderr != "tcplens: stopped during start-up; nothing left loaded\n" {
					t.Errorf("stderr %q", stderr)
				}
				outcome = "stopped during start-up"
			}
			outcomes[outcome]++
			// Attaching and scanning can finish in the microseconds a signal
			// takes to reach the context: at the first link, both outcomes
			// are right; at the first program, most of start-up is ahead.
			if m.delay == firstProg && outcome != "stopped during start-up" ||
				m.delay == firstLink && outcome != "stopped during start-up" && outcome != "traced, counters" {
				t.Errorf("signal during start-up: outcome %q, want a stop during start-up", outcome)
			}
			if m.delay == ready && outcome != "traced, counters" {
				t.Errorf("signal after ready: outcome %q", outcome)
			}
			assertNothingLeft(t, l.held())
		})
	}
	t.Logf("outcomes: %v", outcomes)
}

// waitHolding waits until tcplens holds a BPF program (or a link) open:
// it is in the middle of its start-up.
func (l *launched) waitHolding(t *testing.T, link bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		ids := newBPFIDs()
		ids.addHeldBy(l.cmd.Process.Pid)
		if (!link && len(ids.progs) > 0) || (link && len(ids.links) > 0) {
			return
		}
		select {
		case <-l.ready:
			t.Fatal("tcplens was ready before the wanted start-up phase was seen")
		case <-l.exited:
			t.Fatalf("tcplens exited: %s", l.errText())
		default:
		}
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatal("start-up phase not seen in 30s")
}

var (
	recordsLine = regexp.MustCompile(`records produced (\d+), read (\d+), lost (\d+), reported lost (\d+)`)
	emittedLine = regexp.MustCompile(`events seen \d+, emitted (\d+), lost (\d+)`)
)

// TestLossIsCounted: the smallest ring buffer and a stopped reader. The
// kernel never waits for tcplens: records it cannot queue are counted, and
// tcplens reports them as "lost" lines that add up to the exit counters;
// produced = read + lost exactly, and every state record read is a line.
func TestLossIsCounted(t *testing.T) {
	cli, addr := loadPeers(t)
	port := netip.MustParseAddrPort(addr).Port()
	var out bytes.Buffer
	l := launch(t, &out, "--ring-buffer-size", strconv.Itoa(os.Getpagesize()), "--port", itoa(uint64(port)))
	l.waitReady(t)
	cli.do("churn %s 20", addr)
	time.Sleep(200 * time.Millisecond)
	l.cmd.Process.Signal(syscall.SIGSTOP) // a stalled reader (or a blocked stdout)
	start := time.Now()
	cli.do("churn %s 2000", addr)
	stalled := time.Since(start)
	l.cmd.Process.Signal(syscall.SIGCONT)
	cli.do("churn %s 50", addr)
	time.Sleep(300 * time.Millisecond)
	l.cmd.Process.Signal(syscall.SIGTERM)
	code, sig := l.wait(t, 20*time.Second)
	stderr := l.errText()
	if code != 0 || sig != 0 {
		t.Fatalf("exit %d signal %v; stderr:\n%s", code, sig, stderr)
	}
	m, e := recordsLine.FindStringSubmatch(stderr), emittedLine.FindStringSubmatch(stderr)
	if m == nil || e == nil {
		t.Fatalf("no counters:\n%s", stderr)
	}
	num := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	produced, read, lost, reported := num(m[1]), num(m[2]), num(m[3]), num(m[4])
	emitted, lostOld := num(e[1]), num(e[2])

	var states, lostLines, lostSum uint64
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var v struct {
			Type string `json:"type"`
			Lost uint64 `json:"lost"`
			TS   string `json:"ts"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("invalid JSON line %q: %v", sc.Text(), err)
		}
		switch v.Type {
		case "state":
			states++
		case "lost":
			if v.Lost == 0 || v.TS == "" {
				t.Errorf("bad lost line %s", sc.Text())
			}
			lostLines++
			lostSum += v.Lost
		case "handshake", "accept", "time_wait", "close_wait", "summary", "host":
		default:
			t.Errorf("unexpected line %s", sc.Text())
		}
	}
	t.Logf("stalled %v for 2000 connections; produced %d, read %d, lost %d in %d lost lines (sum %d); state lines %d",
		stalled.Round(time.Millisecond), produced, read, lost, lostLines, lostSum, states)
	if lost == 0 {
		t.Fatalf("nothing was lost: the test did not fill the ring buffer\n%s", stderr)
	}
	if lostSum != lost || reported != lost || lostOld != lost {
		t.Errorf("lost lines sum to %d, reported %d, exit counters say %d and %d", lostSum, reported, lost, lostOld)
	}
	if produced != read+lost {
		t.Errorf("produced %d != read %d + lost %d", produced, read, lost)
	}
	if states != emitted || emitted > read {
		t.Errorf("state lines %d, emitted %d, read %d", states, emitted, read)
	}
	if states < 50 {
		t.Errorf("only %d state lines: the reader did not resume after the stall", states)
	}
	assertNothingLeft(t, l.held())
}

// dropNotes removes tcplens's "note:" lines (choices made for this kernel).
func dropNotes(stderr string) string {
	var keep []string
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if !strings.HasPrefix(l, "tcplens: note: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// TestMissedCloseWaitInferred: a ->CLOSE_WAIT whose record never arrives
// (here: the ring buffer was full while tcplens was stopped) would leave a
// stuck socket unreported for good, since it sends no further record. Two
// owner re-scans that show it in CLOSE_WAIT while its records say
// ESTABLISHED restore it: an inferred transition, then the stuck report
// with its age as a lower bound.
func TestMissedCloseWaitInferred(t *testing.T) {
	requireRoot(t)
	srv, cli, churner := startPeer(t, ""), startPeer(t, ""), startPeer(t, "")
	ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	// Already stuck in CLOSE_WAIT, but on a port --port leaves out: the
	// start-up scan finds it, and it must stay out of every line.
	otherSrv, otherCli := startPeer(t, ""), startPeer(t, "")
	otherLn := netip.MustParseAddrPort(otherSrv.do("listen 127.0.0.1:0"))
	otherCliLocal, _ := endpoints(t, otherCli.do("connect %s", otherLn))
	otherSrvLocal, _ := endpoints(t, otherSrv.do("accept"))
	otherCli.do("close")
	rt := startTool(t, "--ring-buffer-size", strconv.Itoa(os.Getpagesize()), "--port", itoa(uint64(ln.Port())),
		"--close-wait-after", "1s", "--owner-rescan", "300ms")
	cliLocal, _ := endpoints(t, cli.do("connect %s", ln))
	srvLocal, _ := endpoints(t, srv.do("accept"))
	stateLines := func(ls []map[string]any, old, new string) (delivered, inferred int) {
		for _, m := range pick(ls, "state", srvLocal, cliLocal) {
			if str(m, "old") == old && str(m, "new") == new {
				if m["inferred"] == true {
					inferred++
				} else {
					delivered++
				}
			}
		}
		return
	}
	rt.waitLines(t, "the server socket established", 10*time.Second, func(ls []map[string]any) bool {
		n, _ := stateLines(ls, "SYN_RECV", "ESTABLISHED")
		return n == 1
	})
	srv.do("serve")

	rt.cmd.Process.Signal(syscall.SIGSTOP)
	churner.do("churn %s 200", ln) // ~2000 records for a ring of ~20
	cli.do("close")                // the server socket goes to CLOSE_WAIT: no room for its record
	time.Sleep(200 * time.Millisecond)
	rt.cmd.Process.Signal(syscall.SIGCONT)

	ls := rt.waitLines(t, "a stuck report", 30*time.Second, func(ls []map[string]any) bool {
		for _, m := range pick(ls, "close_wait", srvLocal, cliLocal) {
			if str(m, "status") == "stuck" {
				return true
			}
		}
		return false
	})
	delivered, inferred := stateLines(ls, "ESTABLISHED", "CLOSE_WAIT")
	if delivered != 0 {
		t.Fatalf("the ->CLOSE_WAIT record was delivered: the ring did not overflow, nothing to infer")
	}
	if inferred != 1 {
		t.Errorf("%d inferred ESTABLISHED->CLOSE_WAIT lines, want 1", inferred)
	}
	for _, typ := range []string{"state", "close_wait"} {
		if other := pick(ls, typ, otherSrvLocal, otherCliLocal); len(other) > 0 {
			t.Errorf("a socket outside --port reported: %v", other)
		}
	}
	stuck := pick(ls, "close_wait", srvLocal, cliLocal)[0]
	if stuck["age_at_least"] != true || int(num(stuck, "pid")) != srv.Pid || num(stuck, "age_ns") < 1e9 {
		t.Errorf("stuck report: %v (server pid %d)", stuck, srv.Pid)
	}
	code, stderr := rt.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, "missed ->CLOSE_WAIT inferred 1\n") {
		t.Errorf("exit %d; stderr:\n%s", code, stderr)
	}
	if m := recordsLine.FindStringSubmatch(stderr); m == nil || m[3] == "0" {
		t.Errorf("no loss counted:\n%s", stderr)
	}
}
