package integration

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCheck runs tcplens --check: a report of every hook, exit 0, and
// nothing left loaded; with an unusable kernel BTF it fails with exit 1.
func TestCheck(t *testing.T) {
	var out bytes.Buffer
	l := launch(t, &out, "--check")
	code, sig := l.wait(t, 60*time.Second)
	report := out.String()
	if code != 0 || sig != 0 {
		t.Fatalf("exit %d signal %v; stdout:\n%s\nstderr:\n%s", code, sig, report, l.errText())
	}
	t.Logf("report:\n%s", report)
	for _, re := range []string{
		`(?m)^tcplens --check on Linux \S+`,
		`(?m)^  ok +tp_btf/inet_sock_set_state +on_set_state \(required\)$`,
		`(?m)^  (ok|degraded) +tp_btf/sched_process_exit +on_process_exit`,
		`(?m)^  off +tracepoint/syscalls/sys_exit_accept4 +on_accept4_exit: not requested \(--accept-hook auto\)$`,
		`(?m)^  (ok|off) +fexit/inet_accept +on_inet_accept`,
		`(?m)^  ok +syscall +sweep_socks`,
		`(?m)^  ok +iter/task_file +start-up scan found \d+ existing sockets$`,
		`(?m)^result: ok`,
	} {
		if !regexp.MustCompile(re).MatchString(report) {
			t.Errorf("report does not match %s", re)
		}
	}
	if l.errText() != "" {
		t.Errorf("stderr: %q", l.errText())
	}
	if len(l.held().progs) == 0 {
		t.Errorf("saw no program loaded during the check")
	}
	assertNothingLeft(t, l.held())

	out.Reset()
	bad := launch(t, &out, "--check", "--btf", "/nonexistent/vmlinux")
	code, _ = bad.wait(t, 20*time.Second)
	if code != 1 || !strings.Contains(out.String(), "result: FAILED") || strings.Count(bad.errText(), "\n") != 1 {
		t.Errorf("unusable BTF: exit %d, stdout %q, stderr %q", code, out.String(), bad.errText())
	}
}
