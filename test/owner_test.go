package integration

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Ownership edge cases: a socket's events name a process that holds it
// (or pid 0), never one that gave it away. See README "Socket ownership".

// portFilter keeps the host's other traffic out of the tool's output.
func portFilter(ln netip.AddrPort) []string {
	return []string{"--port", strconv.Itoa(int(ln.Port()))}
}

// rescans is the tool's count of ownership re-scans so far.
func rescans(t *testing.T, url string) float64 {
	return scrape(t, url)["tcplens_ownership_rescans_total"]
}

// stateLine waits for the client socket's transition to state and returns it.
func stateLine(t *testing.T, rt *runningTool, local, remote netip.AddrPort, state string) map[string]any {
	t.Helper()
	var found map[string]any
	rt.waitLines(t, "transition to "+state, 10*time.Second, func(ls []map[string]any) bool {
		for _, m := range pick(ls, "state", local, remote) {
			if str(m, "new") == state {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// checkOwnedBy checks the socket's transitions to the given states name pid.
func checkOwnedBy(t *testing.T, rt *runningTool, local, remote netip.AddrPort, pid int, comm string, states ...string) {
	t.Helper()
	for _, st := range states {
		m := stateLine(t, rt, local, remote, st)
		if p := int(num(m, "pid")); p != pid && p != 0 {
			t.Errorf("%s: pid %d (%s), want %d", st, p, str(m, "comm"), pid)
		}
		if comm != "" && str(m, "comm") != comm {
			t.Errorf("%s: comm %q, want %q", st, str(m, "comm"), comm)
		}
	}
}

// TestOwnerPassedOverUnixSocket: process A connects and passes the
// descriptor to B over a UNIX socket (SCM_RIGHTS), then closes its copy.
// Whether A exits (the exit triggers a re-scan) or lives on (the periodic
// re-scan notices), the socket's later transitions name B.
func TestOwnerPassedOverUnixSocket(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		aExits bool
		scans  float64 // re-scans to wait for after the hand-over
	}{
		{"sender exits", []string{"--owner-rescan", "0"}, true, 1},
		{"sender lives", []string{"--owner-rescan", "200ms"}, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, a, b := startPeer(t, ""), startPeer(t, ""), startPeer(t, "")
			ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
			rt := startTool(t, append(tc.args, append(portFilter(ln), "--metrics-addr", "127.0.0.1:0")...)...)
			url := metricsURL(t, rt)
			local, remote := endpoints(t, a.do("connect %s", ln))
			srv.do("accept")
			stateLine(t, rt, local, remote, "ESTABLISHED")
			path := filepath.Join(t.TempDir(), "pass.sock")
			b.do("recvlisten %s", path)
			a.do("sendfd %s", path)
			if got, _ := endpoints(t, b.do("recvfd")); got != local {
				t.Fatalf("B received %v, want %v", got, local)
			}
			// Ownership is fixed up by a re-scan after the hand-over: wait for
			// one (the metric counts them), as the README's rule says.
			scans := rescans(t, url)
			if tc.aExits {
				a.exit()
			}
			waitUntil(t, "an ownership re-scan", 10*time.Second, func() bool { return rescans(t, url) >= scans+tc.scans })
			srv.do("close") // the client socket goes to CLOSE_WAIT
			checkOwnedBy(t, rt, local, remote, b.Pid, "", "CLOSE_WAIT")
			b.do("close")
			checkOwnedBy(t, rt, local, remote, b.Pid, "", "LAST_ACK", "CLOSE")
		})
	}
}

// TestOwnerExec: a process execs another program, keeping the descriptor:
// the pid stays, and the periodic re-scan updates the command name.
func TestOwnerExec(t *testing.T) {
	srv, cli := startPeer(t, ""), startPeer(t, "")
	ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	rt := startTool(t, append([]string{"--owner-rescan", "200ms", "--metrics-addr", "127.0.0.1:0"}, portFilter(ln)...)...)
	url := metricsURL(t, rt)
	local, remote := endpoints(t, cli.do("connect %s", ln))
	srv.do("accept")
	if m := stateLine(t, rt, local, remote, "ESTABLISHED"); int(num(m, "pid")) != cli.Pid || str(m, "comm") == "sleep" {
		t.Fatalf("before exec: %v (client pid %d)", m, cli.Pid)
	}
	scans := rescans(t, url)
	cli.do("execsleep")
	time.Sleep(100 * time.Millisecond) // the exec itself
	waitUntil(t, "ownership re-scans", 10*time.Second, func() bool { return rescans(t, url) >= scans+2 })
	srv.do("close")
	checkOwnedBy(t, rt, local, remote, cli.Pid, "sleep", "CLOSE_WAIT")
	syscall.Kill(cli.Pid, syscall.SIGKILL) // sleep exits: its socket closes
	checkOwnedBy(t, rt, local, remote, cli.Pid, "sleep", "LAST_ACK")
}

// TestOwnerForkParentExits: the owner forks a process that inherits the
// descriptor (here: fork and exec of a holder) and exits; the socket's
// later transitions name the child, with no periodic re-scan needed.
func TestOwnerForkParentExits(t *testing.T) {
	srv, cli := startPeer(t, ""), startPeer(t, "")
	ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	rt := startTool(t, append([]string{"--owner-rescan", "0", "--metrics-addr", "127.0.0.1:0"}, portFilter(ln)...)...)
	url := metricsURL(t, rt)
	local, remote := endpoints(t, cli.do("connect %s", ln))
	srv.do("accept")
	stateLine(t, rt, local, remote, "ESTABLISHED")
	var child int
	fmt.Sscanf(cli.do("handoff"), "%d", &child)
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	scans := rescans(t, url)
	cli.exit()
	waitUntil(t, "the re-scan after the exit", 10*time.Second, func() bool { return rescans(t, url) >= scans+1 })
	srv.do("close")
	checkOwnedBy(t, rt, local, remote, child, "", "CLOSE_WAIT")
	syscall.Kill(child, syscall.SIGKILL)
	checkOwnedBy(t, rt, local, remote, child, "", "LAST_ACK")
}
