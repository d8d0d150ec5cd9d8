package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSummaryOnly runs the summary-only mode (--no-events: the kernel
// aggregates) against known connections between separate processes and
// checks every per-process count exactly, and that a stuck CLOSE_WAIT is
// still reported with its owner, also after the owner exits.
func TestSummaryOnly(t *testing.T) {
	rt := startTool(t, "--no-events", "--summary-interval", "500ms", "--close-wait-after", "1s", "--close-wait-repeat", "1s")
	ns := netns(t, "tcplens-agg")
	srv, cli := startPeer(t, ns), startPeer(t, ns)
	ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	srvComm := procComm(srv.Pid) // "test.test" here, "integration.tes" in the VM

	// A: the client closes first; its TIME_WAIT is killed with ss -K.
	cliA, _ := endpoints(t, cli.do("connect %s", ln))
	srv.do("accept")
	cli.do("close")
	srv.do("readeof")
	srv.do("close")
	time.Sleep(300 * time.Millisecond)
	run(t, "ip", "netns", "exec", ns, "ss", "-K", "-t", "state", "time-wait", "src", cliA.String())
	// B: the client closes, the server never does: stuck in CLOSE_WAIT.
	cliB, _ := endpoints(t, cli.do("connect %s", ln))
	srvB, _ := endpoints(t, srv.do("accept"))
	cli.do("close")
	// C: refused (nothing listens on port 9 in the namespace).
	if r := cli.do("tryconnect 127.0.0.1:9 5s"); !strings.Contains(r, "refused") {
		t.Fatalf("connect to a closed port: %s", r)
	}

	summary := func(ls []map[string]any, pid int) map[string]any {
		var last map[string]any
		for _, m := range ls {
			if str(m, "type") == "summary" && int(num(m, "pid")) == pid {
				last = m
			}
		}
		return last
	}
	sub := func(m map[string]any, k string) map[string]any { v, _ := m[k].(map[string]any); return v }
	// Client: 3 attempts (A, B, refused), 2 handshakes timed, 1 refused,
	// 1 TIME_WAIT ended (killed), 1 live (B's orphan in FIN_WAIT2), 1 reset received.
	wantCli := func(m map[string]any) string {
		hs, tw, fail, rst := sub(m, "handshake_ns"), sub(m, "time_wait"), sub(m, "failures"), sub(m, "resets")
		got := fmt.Sprintf("active %v passive %v refused %v timeout %v reset %v hs %v tw_ended %v tw_now %v rst_rx %v rst_tx %v",
			m["active"], m["passive"], fail["refused"], fail["timeout"], fail["reset"], hs["count"], tw["ended"], tw["now"], rst["received"], rst["sent"])
		if got != "active 3 passive 0 refused 1 timeout 0 reset 0 hs 2 tw_ended 1 tw_now 1 rst_rx 1 rst_tx 0" {
			return got
		}
		if num(hs, "max") <= 0 || num(hs, "max") > 500e6 || num(hs, "p50") > num(hs, "max") || num(tw, "dwell_p50_ns") < 0.2e9 || num(tw, "dwell_p50_ns") > 2e9 {
			return fmt.Sprintf("latency/dwell %v %v", hs, tw)
		}
		return ""
	}
	wantSrv := func(m map[string]any, stuck int) string {
		hs, cw := sub(m, "handshake_ns"), sub(m, "close_wait")
		got := fmt.Sprintf("active %v passive %v hs %v stuck %v comm %v", m["active"], m["passive"], hs["count"], cw["stuck"], m["comm"])
		if want := fmt.Sprintf("active 0 passive 2 hs 2 stuck %d comm %s", stuck, srvComm); got != want {
			return got + ", want " + want
		}
		return ""
	}
	ls := rt.waitLines(t, "summaries with every count", 10*time.Second, func(ls []map[string]any) bool {
		c, s := summary(ls, cli.Pid), summary(ls, srv.Pid)
		return c != nil && s != nil && wantCli(c) == "" && wantSrv(s, 1) == ""
	})
	if c := summary(ls, cli.Pid); c == nil || wantCli(c) != "" {
		t.Errorf("client summary: %v: %s", c, wantCli(c))
	}
	if s := summary(ls, srv.Pid); s == nil || wantSrv(s, 1) != "" {
		t.Errorf("server summary: %v: %s", s, wantSrv(s, 1))
	}
	for _, m := range ls {
		if typ := str(m, "type"); typ != "summary" && typ != "host" && typ != "close_wait" {
			t.Fatalf("per-event line in summary-only mode: %v", m)
		}
	}

	stuckBy := func(pid int) func([]map[string]any) bool {
		return func(ls []map[string]any) bool {
			for _, m := range pick(ls, "close_wait", srvB, cliB) {
				if str(m, "status") == "stuck" && int(num(m, "pid")) == pid && num(m, "fd") >= 3 {
					return true
				}
			}
			return false
		}
	}
	rt.waitLines(t, "stuck report naming the server", 10*time.Second, stuckBy(srv.Pid))
	var holder int
	fmt.Sscanf(srv.do("handoff"), "%d", &holder)
	t.Cleanup(func() { syscall.Kill(holder, syscall.SIGKILL) })
	srv.exit()
	rt.waitLines(t, "stuck report naming the new holder", 10*time.Second, stuckBy(holder))
	syscall.Kill(holder, syscall.SIGKILL)
	ls = rt.waitLines(t, "closed report", 10*time.Second, func(ls []map[string]any) bool {
		for _, m := range pick(ls, "close_wait", srvB, cliB) {
			if str(m, "status") == "closed" && num(m, "age_ns") >= 1e9 {
				return true
			}
		}
		return false
	})
	for _, m := range pick(ls, "close_wait", srvB, cliB) {
		if p := int(num(m, "pid")); p != srv.Pid && p != holder {
			t.Errorf("close_wait report names pid %d: %v", p, m)
		}
	}
	// B's client side got the FIN and went on to TIME_WAIT (re-armed): still
	// one live, still one ended.
	time.Sleep(700 * time.Millisecond)
	if code, stderr := rt.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if c := summary(rt.lines(t), cli.Pid); c == nil || wantCli(c) != "" {
		t.Errorf("client exit summary: %v: %s", c, wantCli(c))
	}
}
