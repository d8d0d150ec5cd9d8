package integration

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/cgroups"
)

// Tests of the lifecycle analyses, end to end through the real binary:
// handshake latency and failures, TIME_WAIT ends, stuck CLOSE_WAIT.

func num(m map[string]any, k string) float64 {
	v, _ := m[k].(float64)
	return v
}

func str(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

// pick returns the lines of one type whose local endpoint is local (any
// remote when remote is invalid).
func pick(ls []map[string]any, typ string, local, remote netip.AddrPort) []map[string]any {
	var out []map[string]any
	for _, m := range ls {
		if str(m, "type") != typ || str(m, "saddr") != local.Addr().String() || uint16(num(m, "sport")) != local.Port() {
			continue
		}
		if remote.IsValid() && (str(m, "daddr") != remote.Addr().String() || uint16(num(m, "dport")) != remote.Port()) {
			continue
		}
		out = append(out, m)
	}
	return out
}

func has(typ string, local, remote netip.AddrPort) func([]map[string]any) bool {
	return func(ls []map[string]any) bool { return len(pick(ls, typ, local, remote)) > 0 }
}

// nft runs an nft command inside a network namespace.
func nft(t *testing.T, ns string, args ...string) {
	t.Helper()
	run(t, "ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
}

func requireNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft not installed (apt-get install nftables): .ci/run installs it")
	}
}

// TestHandshakeLatency drops the first SYN, then the first SYN-ACK, of one
// connection each (nftables in a private namespace) and checks the
// handshake lines: about one second on the side that waited for the
// retransmission, microseconds where nothing was lost.
func TestHandshakeLatency(t *testing.T) {
	requireNft(t)
	rt := startTool(t, "--accept-hook", "syscalls") // accept lines with descriptors
	ns := netns(t, "tcplens-hs")
	nft(t, ns, "add", "table", "inet", "tl")
	nft(t, ns, "add", "chain", "inet", "tl", "out", "{ type filter hook output priority 0; }")
	srv, cli := startPeer(t, ns), startPeer(t, ns)
	ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))

	type outcome struct{ active, passive float64 }
	connect := func(rule string) (cliLocal, srvLocal netip.AddrPort, o outcome) {
		t.Helper()
		if rule != "" {
			nft(t, ns, "add", "rule", "inet", "tl", "out", rule)
			// The retransmission (after ~1 s) must get through.
			time.AfterFunc(300*time.Millisecond, func() { exec.Command("ip", "netns", "exec", ns, "nft", "flush", "chain", "inet", "tl", "out").Run() })
		}
		cliLocal, _ = endpoints(t, cli.do("connect %s", ln))
		srvLocal, _ = endpoints(t, srv.do("accept"))
		ls := rt.waitLines(t, "both handshake lines", 30*time.Second, func(ls []map[string]any) bool {
			return has("handshake", cliLocal, srvLocal)(ls) && has("handshake", srvLocal, cliLocal)(ls) && has("accept", srvLocal, cliLocal)(ls)
		})
		a, p := pick(ls, "handshake", cliLocal, srvLocal)[0], pick(ls, "handshake", srvLocal, cliLocal)[0]
		for _, h := range []map[string]any{a, p} {
			if str(h, "result") != "ok" {
				t.Errorf("handshake result %v", h)
			}
		}
		if str(a, "role") != "active" || int(num(a, "pid")) != cli.Pid || str(p, "role") != "passive" || int(num(p, "pid")) != srv.Pid {
			t.Errorf("roles/owners: active %v passive %v (client %d server %d)", a, p, cli.Pid, srv.Pid)
		}
		if _, ok := p["latency_ns"]; !ok {
			t.Errorf("passive handshake without latency: %v", p)
		}
		acc := pick(ls, "accept", srvLocal, cliLocal)[0]
		if int(num(acc, "pid")) != srv.Pid || num(acc, "accept_wait_ns") <= 0 || num(acc, "fd") < 3 {
			t.Errorf("accept line %v", acc)
		}
		return cliLocal, srvLocal, outcome{num(a, "latency_ns") / 1e9, num(p, "latency_ns") / 1e9}
	}
	fast := func(s float64) bool { return s > 0 && s < 0.05 }
	slow := func(s float64) bool { return s > 0.9 && s < 3.5 }

	_, _, o := connect("")
	if !fast(o.active) || !fast(o.passive) {
		t.Errorf("undisturbed handshake: active %.6fs passive %.6fs, want both < 50ms", o.active, o.passive)
	}
	_, _, o = connect(fmt.Sprintf("tcp dport %d tcp flags & (syn|ack) == syn drop", ln.Port()))
	if !slow(o.active) || !fast(o.passive) {
		t.Errorf("first SYN dropped: active %.6fs passive %.6fs, want active ~1s and passive < 50ms", o.active, o.passive)
	}
	_, _, o = connect(fmt.Sprintf("tcp sport %d tcp flags & (syn|ack) == syn|ack drop", ln.Port()))
	if !slow(o.active) || !slow(o.passive) {
		t.Errorf("first SYN-ACK dropped: active %.6fs passive %.6fs, want both ~1s", o.active, o.passive)
	}
}

// TestHandshakeFailures: a refused connect and one the application gives up
// on are reported as such, attributed to the client.
func TestHandshakeFailures(t *testing.T) {
	requireNft(t)
	rt := startTool(t)
	ns := netns(t, "tcplens-hf")
	cli := startPeer(t, ns)
	// Refused: nothing listens on port 9 in a fresh namespace.
	if r := cli.do("tryconnect 127.0.0.1:9 5s"); !strings.Contains(r, "refused") {
		t.Fatalf("connect to a closed port: %s", r)
	}
	// Timeout: every SYN to port 10 is dropped; the client gives up after 1.5 s.
	nft(t, ns, "add", "table", "inet", "tl")
	nft(t, ns, "add", "chain", "inet", "tl", "out", "{ type filter hook output priority 0; }")
	nft(t, ns, "add", "rule", "inet", "tl", "out", "tcp dport 10 drop")
	if r := cli.do("tryconnect 127.0.0.1:10 1500ms"); !strings.Contains(r, "timeout") {
		t.Fatalf("connect with dropped SYNs: %s", r)
	}
	ls := rt.waitLines(t, "two failed handshakes", 30*time.Second, func(ls []map[string]any) bool {
		n := 0
		for _, m := range ls {
			if str(m, "type") == "handshake" && int(num(m, "pid")) == cli.Pid {
				n++
			}
		}
		return n == 2
	})
	got := map[float64]map[string]any{}
	for _, m := range ls {
		if str(m, "type") == "handshake" && int(num(m, "pid")) == cli.Pid {
			got[num(m, "dport")] = m
		}
	}
	if r := got[9]; str(r, "result") != "refused" || num(r, "latency_ns") > 50e6 {
		t.Errorf("refused connect: %v", r)
	}
	if r := got[10]; str(r, "result") != "timeout" || num(r, "latency_ns") < 1.4e9 || num(r, "latency_ns") > 3e9 {
		t.Errorf("timed-out connect: %v", r)
	}
}

// TestTimeWaitKilledAndReused: a TIME_WAIT destroyed with ss -K after ~2 s
// reports ~2 s and killed; a server-side TIME_WAIT whose 4-tuple a new
// connection takes over reports reused.
func TestTimeWaitKilledAndReused(t *testing.T) {
	rt := startTool(t)
	// A private namespace: no other process may take the port reused below.
	ns := netns(t, "tcplens-tw")
	srv, cli := startPeer(t, ns), startPeer(t, ns)
	ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))

	// Client closes first: the client's socket goes to TIME_WAIT.
	cliLocal, _ := endpoints(t, cli.do("connect %s", ln))
	srvLocal, _ := endpoints(t, srv.do("accept"))
	clientClosesFirst(cli, srv)
	time.Sleep(2 * time.Second)
	run(t, "ip", "netns", "exec", ns, "ss", "-K", "-t", "state", "time-wait", "src", cliLocal.String())
	ls := rt.waitLines(t, "killed TIME_WAIT", 30*time.Second, has("time_wait", cliLocal, srvLocal))
	tw := pick(ls, "time_wait", cliLocal, srvLocal)[0]
	if str(tw, "end") != "killed" || num(tw, "dwell_ns") < 1.9e9 || num(tw, "dwell_ns") > 3e9 || int(num(tw, "pid")) != cli.Pid {
		t.Errorf("killed TIME_WAIT: %v (client pid %d)", tw, cli.Pid)
	}

	// Server closes first: the server's socket goes to TIME_WAIT; the client
	// reconnects from the same port and its SYN takes the 4-tuple over.
	cliLocal, _ = endpoints(t, cli.do("connect %s", ln))
	srvLocal, _ = endpoints(t, srv.do("accept"))
	srv.do("close")
	cli.do("readeof")
	cli.do("close")
	time.Sleep(200 * time.Millisecond)
	newLocal, _ := endpoints(t, cli.do("connectfrom %d %s", cliLocal.Port(), ln))
	if newLocal != cliLocal {
		t.Fatalf("reconnected from %v, want %v", newLocal, cliLocal)
	}
	ls = rt.waitLines(t, "reused TIME_WAIT", 30*time.Second, has("time_wait", srvLocal, cliLocal))
	tw = pick(ls, "time_wait", srvLocal, cliLocal)[0]
	if str(tw, "end") != "reused" || int(num(tw, "pid")) != srv.Pid || num(tw, "dwell_ns") < 0.15e9 || num(tw, "dwell_ns") > 2e9 {
		t.Errorf("reused TIME_WAIT: %v (server pid %d)", tw, srv.Pid)
	}
	if code, stderr := rt.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The exit summary counts both ended TIME_WAITs.
	for _, m := range rt.lines(t) {
		if str(m, "type") == "summary" && int(num(m, "pid")) == cli.Pid {
			if tw := m["time_wait"].(map[string]any); num(tw, "ended") != 1 {
				t.Errorf("client summary time_wait %v", tw)
			}
		}
	}
}

// TestTimeWaitExpires leaves a TIME_WAIT alone: ~60 s and expired.
func TestTimeWaitExpires(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a minute")
	}
	srv, cli := startPeer(t, ""), startPeer(t, "")
	ln := netip.MustParseAddrPort(srv.do("listen [::1]:0"))
	rt := startTool(t, "--port", itoa(uint64(ln.Port()))) // a minute of a busy host's lines is a lot
	cliLocal, _ := endpoints(t, cli.do("connect %s", ln))
	srvLocal, _ := endpoints(t, srv.do("accept"))
	clientClosesFirst(cli, srv)
	ls := rt.waitLines(t, "expired TIME_WAIT", 75*time.Second, has("time_wait", cliLocal, srvLocal))
	tw := pick(ls, "time_wait", cliLocal, srvLocal)[0]
	if str(tw, "end") != "expired" || num(tw, "dwell_ns") < 59e9 || num(tw, "dwell_ns") > 63e9 || int(num(tw, "pid")) != cli.Pid || str(tw, "family") != "ipv6" {
		t.Errorf("expired TIME_WAIT: %v (client pid %d)", tw, cli.Pid)
	}
}

// TestCloseWaitStuck: a server that never closes after the client did is
// reported stuck with its pid and fd, and again with the pid of the process
// that holds the descriptor after the original owner exits; and the
// socket's end is reported with its total age.
func TestCloseWaitStuck(t *testing.T) {
	rt := startTool(t, "--close-wait-after", "1s", "--close-wait-repeat", "1s")
	srv, cli := startPeer(t, ""), startPeer(t, "")
	ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	cliLocal, _ := endpoints(t, cli.do("connect %s", ln))
	srvLocal, _ := endpoints(t, srv.do("accept"))
	cli.do("close")

	stuckBy := func(pid int) func([]map[string]any) bool {
		return func(ls []map[string]any) bool {
			for _, m := range pick(ls, "close_wait", srvLocal, cliLocal) {
				if str(m, "status") == "stuck" && int(num(m, "pid")) == pid {
					return true
				}
			}
			return false
		}
	}
	ls := rt.waitLines(t, "stuck report naming the server", 30*time.Second, stuckBy(srv.Pid))
	first := pick(ls, "close_wait", srvLocal, cliLocal)[0]
	if num(first, "age_ns") < 1e9 || num(first, "age_ns") > 3e9 || num(first, "fd") < 3 || first["age_at_least"] != nil {
		t.Errorf("first stuck report: %v", first)
	}

	// The server hands the descriptor to another process and exits.
	var holder int
	fmt.Sscanf(srv.do("handoff"), "%d", &holder)
	t.Cleanup(func() { syscall.Kill(holder, syscall.SIGKILL) })
	srv.exit()
	rt.waitLines(t, "stuck report naming the new holder", 30*time.Second, stuckBy(holder))
	for _, m := range pick(rt.lines(t), "close_wait", srvLocal, cliLocal) {
		if p := int(num(m, "pid")); p != srv.Pid && p != holder {
			t.Errorf("stuck report names pid %d: %v", p, m)
		}
	}
	syscall.Kill(holder, syscall.SIGKILL)
	ls = rt.waitLines(t, "closed report", 30*time.Second, func(ls []map[string]any) bool {
		for _, m := range pick(ls, "close_wait", srvLocal, cliLocal) {
			if str(m, "status") == "closed" {
				return true
			}
		}
		return false
	})
	for _, m := range pick(ls, "close_wait", srvLocal, cliLocal) {
		if str(m, "status") == "closed" && num(m, "age_ns") < 2e9 {
			t.Errorf("closed report age: %v", m)
		}
	}
}

// TestCloseWaitBeforeStart: a socket already in CLOSE_WAIT when tcplens
// starts is found by the start-up scan and reported with a lower bound.
func TestCloseWaitBeforeStart(t *testing.T) {
	requireRoot(t)
	srv, cli := startPeer(t, ""), startPeer(t, "")
	ln := netip.MustParseAddrPort(srv.do("listen [::1]:0"))
	cliLocal, _ := endpoints(t, cli.do("connect %s", ln))
	srvLocal, _ := endpoints(t, srv.do("accept"))
	cli.do("close")
	time.Sleep(100 * time.Millisecond)
	rt := startTool(t, "--close-wait-after", "1s", "--summary-interval", "500ms")
	ls := rt.waitLines(t, "stuck report", 30*time.Second, has("close_wait", srvLocal, cliLocal))
	m := pick(ls, "close_wait", srvLocal, cliLocal)[0]
	if str(m, "status") != "stuck" || m["age_at_least"] != true || int(num(m, "pid")) != srv.Pid || num(m, "fd") < 3 || num(m, "age_ns") < 1e9 {
		t.Errorf("pre-existing CLOSE_WAIT: %v (server pid %d)", m, srv.Pid)
	}
	ls = rt.waitLines(t, "a summary counting it", 30*time.Second, func(ls []map[string]any) bool {
		for _, m := range ls {
			if str(m, "type") == "summary" && int(num(m, "pid")) == srv.Pid && num(m["close_wait"].(map[string]any), "stuck") == 1 {
				return true
			}
		}
		return false
	})
}

// TestSummaryNamesCgroup: a client moved into its own cgroup is summarized
// with that cgroup's path.
func TestSummaryNamesCgroup(t *testing.T) {
	requireRoot(t)
	root := cgroups.Mount()
	if root == "" {
		t.Skip("no cgroup2 file system mounted")
	}
	name := fmt.Sprintf("tcplens-test-%d", os.Getpid())
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	rt := startTool(t)
	srv, cli := startPeer(t, ""), startPeer(t, "")
	t.Cleanup(cli.kill) // before the cgroup is removed
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cli.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	cli.do("connect %s", ln)
	srv.do("accept")
	cli.do("close")
	time.Sleep(200 * time.Millisecond)
	if code, stderr := rt.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := map[int]string{}
	for _, m := range rt.lines(t) {
		if str(m, "type") == "summary" {
			got[int(num(m, "pid"))] = str(m, "cgroup")
		}
	}
	if got[cli.Pid] != "/"+name {
		t.Errorf("client summary cgroup %q, want %q (all: %v)", got[cli.Pid], "/"+name, got)
	}
	if got[srv.Pid] == "/"+name || got[srv.Pid] == "" {
		t.Errorf("server summary cgroup %q", got[srv.Pid])
	}
}
