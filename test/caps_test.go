package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/privs"
)

// TestCapabilitiesDropped: once tracing, every thread of tcplens has only
// what privs.Needed says (nothing on Linux 6.5+; CAP_BPF on older kernels
// that restrict bpf()), nothing inheritable, ambient or in the bounding
// set, and no_new_privs. The ownership re-scan after an
// owner exits, which needs the BPF iterator, still works without the rest.
func TestCapabilitiesDropped(t *testing.T) {
	var out bytes.Buffer
	l := launch(t, &out)
	l.waitReady(t)
	pid := l.cmd.Process.Pid
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/status")
	if len(tasks) < 2 {
		t.Fatalf("tcplens has %d threads; the test wants several", len(tasks))
	}
	var kept uint64
	for _, c := range privs.Needed() {
		kept |= 1 << c
	}
	t.Logf("capabilities kept on this kernel: %#x", kept)
	want := map[string]uint64{"CapEff": kept, "CapPrm": kept, "CapInh": 0, "CapBnd": 0, "CapAmb": 0, "NoNewPrivs": 1}
	for _, status := range tasks {
		b, err := os.ReadFile(status)
		if err != nil {
			continue // thread gone
		}
		for field, w := range want {
			m := regexp.MustCompile(`(?m)^` + field + `:\s*([0-9a-f]+)$`).FindSubmatch(b)
			if m == nil {
				t.Errorf("%s: no %s", status, field)
				continue
			}
			if got, _ := strconv.ParseUint(string(m[1]), 16, 64); got != w {
				t.Errorf("%s: %s %#x, want %#x", status, field, got, w)
			}
		}
	}

	// An owner exits while another process still holds its listener: the
	// tracer re-scans socket owners with the iterator.
	owner := startPeer(t, "")
	owner.do("listen 127.0.0.1:0")
	held := grabSocket(t, owner.Pid)
	defer held.Close()
	owner.exit()
	time.Sleep(500 * time.Millisecond) // the re-scan waits 50 ms, then runs at a poll
	l.cmd.Process.Signal(syscall.SIGTERM)
	code, sig := l.wait(t, 20*time.Second)
	stderr := l.errText()
	if code != 0 || sig != 0 || strings.Contains(stderr, "warning") {
		t.Fatalf("exit %d signal %v; stderr:\n%s", code, sig, stderr)
	}
	if m := regexp.MustCompile(`ownership re-scans (\d+)`).FindStringSubmatch(stderr); m == nil || m[1] == "0" {
		t.Errorf("no ownership re-scan ran after the owner exited:\n%s", stderr)
	}
}

// grabSocket duplicates into this process the (only) socket descriptor of
// process pid (pidfd_getfd), so the socket outlives that process.
func grabSocket(t *testing.T, pid int) *os.File {
	t.Helper()
	fds, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/fd/*")
	for _, fd := range fds {
		if target, _ := os.Readlink(fd); !strings.HasPrefix(target, "socket:") {
			continue
		}
		n, _ := strconv.Atoi(filepath.Base(fd))
		pfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(pfd)
		dup, err := unix.PidfdGetfd(pfd, n, 0)
		if err != nil {
			t.Fatalf("pidfd_getfd: %v", err)
		}
		return os.NewFile(uintptr(dup), "socket")
	}
	t.Fatalf("process %d has no socket", pid)
	return nil
}

// TestMissingCapabilities: root without CAP_BPF and CAP_PERFMON (dropped
// from the bounding set by capsh) gets one line naming exactly those.
func TestMissingCapabilities(t *testing.T) {
	requireRoot(t)
	capsh, err := exec.LookPath("capsh")
	if err != nil {
		t.Fatal("capsh not found (package libcap2-bin)")
	}
	cmd := exec.Command(capsh, "--drop=cap_bpf,cap_perfmon", "--", "-c", `exec "$0" "$@"`, buildTool(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1; stderr %q", err, stderr.String())
	}
	msg := stderr.String()
	if !strings.Contains(msg, "missing capabilities CAP_BPF, CAP_PERFMON:") || strings.Count(msg, "\n") != 1 {
		t.Errorf("stderr %q: want one line naming CAP_BPF and CAP_PERFMON (only)", msg)
	}
}
