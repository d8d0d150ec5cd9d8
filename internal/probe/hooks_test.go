package probe

import "testing"

func TestReasonFor(t *testing.T) {
	warnings := []string{
		"cannot attach syscalls:sys_exit_accept4: EPERM: accepted sockets ...",
		"cannot attach syscalls:sys_exit_accept: ENOENT: accepted sockets ...",
		"cannot attach timer:timer_start (CLOSE->SYN_SENT lines wait): EINVAL",
	}
	for section, want := range map[string]string{
		"tracepoint/syscalls/sys_exit_accept4": warnings[0],
		"tracepoint/syscalls/sys_exit_accept":  warnings[1],
		"tp_btf/timer_start":                   warnings[2],
		"tp_btf/sched_process_exit":            "not attached",
	} {
		if got := reasonFor(section, warnings); got != want {
			t.Errorf("%s: %q, want %q", section, got, want)
		}
	}
	tracefs := []string{"mount tracefs on /sys/kernel/tracing: EPERM: accepted sockets stay attributed"}
	if got := reasonFor("tracepoint/syscalls/sys_exit_accept", tracefs); got != tracefs[0] {
		t.Errorf("tracefs: %q", got)
	}
}
