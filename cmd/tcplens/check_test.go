package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tcplens/tcplens/internal/probe"
)

func TestWriteCheck(t *testing.T) {
	var buf bytes.Buffer
	writeCheck(&buf, checkReport{
		Kernel: "6.1.0 x86_64",
		Hooks: []probe.Hook{
			{Program: "on_set_state", Section: "tp_btf/inet_sock_set_state", Required: true, Attached: true},
			{Program: "on_timer_start", Section: "tp_btf/timer_start", Reason: "cannot attach timer:timer_start (x): EINVAL"},
		},
		Warnings: []string{"cannot attach timer:timer_start (x): EINVAL", "tcp_write_timer not found in /proc/kallsyms"},
		Seeded:   3, ScanOK: true,
	})
	got := buf.String()
	for _, want := range []string{
		"ok        tp_btf/inet_sock_set_state               on_set_state (required)\n",
		"degraded  tp_btf/timer_start                       on_timer_start: cannot attach timer:timer_start (x): EINVAL\n",
		"ok        iter/task_file                           start-up scan found 3 existing sockets\n",
		"degraded  tcp_write_timer not found in /proc/kallsyms\n",
		"result: ok, 2 degraded",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "timer:timer_start") != 1 {
		t.Errorf("a hook's warning is listed twice:\n%s", got)
	}

	buf.Reset()
	writeCheck(&buf, checkReport{Kernel: "4.19", Failure: "preflight: no BTF"})
	if !strings.Contains(buf.String(), "FAILED    preflight: no BTF\nresult: FAILED") {
		t.Errorf("failure report:\n%s", buf.String())
	}
}
