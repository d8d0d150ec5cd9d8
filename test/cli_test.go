package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildTool builds cmd/tcplens once per test binary run.
func buildTool(t *testing.T) string {
	t.Helper()
	if toolPath != "" {
		return toolPath
	}
	if p := os.Getenv("TCPLENS_BIN"); p != "" { // prebuilt (the qemu stage)
		toolPath = p
		return p
	}
	dir, err := os.MkdirTemp("", "tcplens-bin")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // the privilege tests run it as nobody
	out := filepath.Join(dir, "tcplens")
	build := exec.Command("go", "build", "-o", out, "../cmd/tcplens")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as the Makefile builds it (see README)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	toolPath = out
	return out
}

var toolPath string

// runningTool is tcplens started as a separate process.
type runningTool struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr *bufio.Reader
	errAll strings.Builder
	parsed []map[string]any // lines parsed so far
	upTo   int              // bytes of stdout they came from
}

// startTool starts tcplens and waits for its "tcplens: tracing" line.
func startTool(t *testing.T, args ...string) *runningTool {
	t.Helper()
	requireRoot(t)
	rt := &runningTool{cmd: exec.Command(buildTool(t), args...)}
	rt.cmd.Stdout = &rt.stdout
	pipe, err := rt.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	rt.stderr = bufio.NewReader(pipe)
	if err := rt.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if rt.cmd.ProcessState == nil {
			rt.cmd.Process.Kill()
			rt.cmd.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		for {
			line, err := rt.stderr.ReadString('\n')
			rt.errAll.WriteString(line)
			if strings.HasPrefix(line, "tcplens: tracing") {
				ready <- nil
				break
			}
			if err != nil {
				ready <- errors.New("tcplens exited before tracing: " + rt.errAll.String())
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tcplens did not start tracing in 30s")
	}
	return rt
}

// syncBuffer is a bytes.Buffer safe to read while the process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Read(p)
}

// String returns everything written so far (without consuming it).
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines parses every complete JSON line written so far.
// Only the bytes written since the last call are parsed: a busy host's
// output must not make each poll slower than the last.
func (rt *runningTool) lines(t *testing.T) []map[string]any {
	t.Helper()
	text := rt.stdout.String()[rt.upTo:]
	text = text[:strings.LastIndexByte(text, '\n')+1] // complete lines only
	rt.upTo += len(text)
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("invalid JSON line %q: %v", l, err)
		}
		rt.parsed = append(rt.parsed, m)
	}
	return rt.parsed
}

// waitLines polls the tool's output until match finds what it needs.
func (rt *runningTool) waitLines(t *testing.T, what string, timeout time.Duration, match func([]map[string]any) bool) []map[string]any {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		ls := rt.lines(t)
		if match(ls) {
			return ls
		}
		if time.Now().After(end) {
			out := rt.stdout.String()
			if len(out) > 16<<10 {
				out = "...\n" + out[len(out)-16<<10:]
			}
			t.Fatalf("timed out after %v waiting for %s; output:\n%s", timeout, what, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends sig and returns the exit code and the rest of stderr.
func (rt *runningTool) stop(t *testing.T, sig syscall.Signal) (int, string) {
	t.Helper()
	rt.cmd.Process.Signal(sig)
	rest, _ := readAllTimeout(rt.stderr, 20*time.Second)
	rt.errAll.WriteString(rest)
	err := rt.cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	return code, rt.errAll.String()
}

func readAllTimeout(r *bufio.Reader, d time.Duration) (string, error) {
	ch := make(chan string, 1)
	go func() {
		var b strings.Builder
		for {
			s, err := r.ReadString('\n')
			b.WriteString(s)
			if err != nil {
				ch <- b.String()
				return
			}
		}
	}()
	select {
	case s := <-ch:
		return s, nil
	case <-time.After(d):
		return "", errors.New("timeout")
	}
}

type jsonLine struct {
	TS      string `json:"ts"`
	Type    string `json:"type"`
	Sock    uint64 `json:"sock"`
	Pid     int    `json:"pid"`
	Comm    string `json:"comm"`
	Family  string `json:"family"`
	SAddr   string `json:"saddr"`
	SPort   uint16 `json:"sport"`
	DAddr   string `json:"daddr"`
	DPort   uint16 `json:"dport"`
	Old     string `json:"old"`
	New     string `json:"new"`
	DwellNs *int64 `json:"dwell_ns"`
}

// TestToolStreamsJSON runs the real binary with no arguments, drives one
// connection, stops it with SIGINT and checks the stream, the counters and
// that nothing stays loaded.
func TestToolStreamsJSON(t *testing.T) {
	rt := startTool(t)
	srv, cli := startPeer(t, ""), startPeer(t, "")
	lnAddr := netip.MustParseAddrPort(srv.do("listen [::1]:0"))
	cliLocal, _ := endpoints(t, cli.do("connect %s", lnAddr))
	srv.do("accept")
	cli.do("close")
	srv.do("readeof")
	srv.do("close")
	srv.do("closelistener")
	time.Sleep(300 * time.Millisecond) // > the reader's poll interval
	code, stderr := rt.stop(t, syscall.SIGINT)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "events seen") || !strings.Contains(stderr, "lost 0") {
		t.Errorf("no counters on exit:\n%s", stderr)
	}
	var client []string
	sc := bufio.NewScanner(&rt.stdout)
	begin := time.Now().Add(-time.Minute)
	for sc.Scan() {
		var l jsonLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("invalid JSON line %q: %v", sc.Text(), err)
		}
		ts, err := time.Parse(time.RFC3339Nano, l.TS)
		if err != nil || ts.Before(begin) || ts.After(time.Now()) || !strings.HasSuffix(l.TS, "Z") {
			t.Errorf("bad ts %q: %v", l.TS, err)
		}
		switch l.Type {
		case "state":
		case "handshake", "accept", "time_wait", "close_wait", "summary", "host", "lost":
			continue
		default:
			t.Errorf("type %q", l.Type)
		}
		if l.SAddr == "::1" && l.SPort == cliLocal.Port() {
			client = append(client, l.Old+"->"+l.New)
			if l.Pid != cli.Pid || l.Family != "ipv6" || l.DPort != lnAddr.Port() || l.DAddr != "::1" {
				t.Errorf("client line %s", sc.Text())
			}
		}
	}
	if got := strings.Join(client, " "); got != clientSeq {
		t.Errorf("client transitions %q, want %q", got, clientSeq)
	}
	// Retries: the kernel frees closed programs asynchronously, and other
	// test binaries (go test runs packages in parallel) load and close theirs.
	assertNothingLeft(t, newBPFIDs())
}

// TestToolFilters checks the in-kernel --port filter end to end.
func TestToolFilters(t *testing.T) {
	srv, cli := startPeer(t, ""), startPeer(t, "")
	a := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	b := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0")) // replaces the peer's listener handle
	rt := startTool(t, "--port", itoa(uint64(b.Port())), "--ipv4")
	cli.do("connect %s", a)
	cli.do("close")
	cli.do("connect %s", b)
	cli.do("close")
	time.Sleep(300 * time.Millisecond)
	if code, stderr := rt.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	n := 0
	sc := bufio.NewScanner(&rt.stdout)
	for sc.Scan() {
		var l jsonLine
		json.Unmarshal(sc.Bytes(), &l)
		if l.Type == "summary" || l.Type == "host" {
			continue // per process / host-wide, not per socket
		}
		if l.SPort != b.Port() && l.DPort != b.Port() {
			t.Errorf("line for another port passed the filter: %s", sc.Text())
		}
		n++
	}
	if n == 0 {
		t.Error("filter passed nothing")
	}
}

// TestToolErrors: bad input and missing privileges fail with one line.
func TestToolErrors(t *testing.T) {
	bin := buildTool(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
		uid  bool
	}{
		{[]string{"--port", "0"}, 2, "invalid --port", false},
		{[]string{"--format", "yaml"}, 2, "invalid --format", false},
		{[]string{"--bogus"}, 2, "not defined", false},
		{[]string{"--metrics-addr", "9464"}, 2, "invalid --metrics-addr", false},
		{[]string{"--metrics-addr", "metrics.example:9464"}, 2, "invalid --metrics-addr", false},
		{[]string{"--metrics-addr", ":70000"}, 2, "invalid --metrics-addr", false},
		{[]string{"--btf", "/nonexistent/vmlinux"}, 1, "kernel BTF is not readable", false},
		{nil, 1, "missing capabilities CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN", true},
	} {
		if tc.uid {
			requireRoot(t) // dropping to nobody needs root
		}
		cmd := exec.Command(bin, tc.args...)
		if tc.uid {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		msg := stderr.String()
		if code != tc.code || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 || strings.Contains(msg, "goroutine") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line containing %q", tc.args, code, msg, tc.code, tc.want)
		}
	}
}
