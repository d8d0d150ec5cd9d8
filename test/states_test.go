package integration

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/tracer"
)

// clientClosesFirst ends the last connection of cli and srv the usual way:
// the client closes, the server reads to EOF and closes its end.
func clientClosesFirst(cli, srv *peer) {
	cli.do("close")
	srv.do("readeof")
	srv.do("close")
}

// endpoints parses a peer's "local remote" reply.
func endpoints(t *testing.T, reply string) (local, remote netip.AddrPort) {
	t.Helper()
	f := strings.Fields(reply)
	if len(f) != 2 {
		t.Fatalf("want two addresses, got %q", reply)
	}
	return netip.MustParseAddrPort(f[0]), netip.MustParseAddrPort(f[1])
}

// socketOf returns the cookie of the socket whose records show local->remote.
func socketOf(recs []event.Record, local, remote netip.AddrPort) (uint64, bool) {
	for _, r := range recs {
		if r.Kind == event.KindState && netip.AddrPortFrom(r.SAddr, r.SPort) == local &&
			netip.AddrPortFrom(r.DAddr, r.DPort) == remote {
			return r.Cookie, true
		}
	}
	return 0, false
}

func ofSocket(recs []event.Record, cookie uint64) []event.Record {
	var out []event.Record
	for _, r := range recs {
		if r.Kind == event.KindState && r.Cookie == cookie {
			out = append(out, r)
		}
	}
	return out
}

func sequence(recs []event.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Old.String()+"->"+r.New.String())
	}
	return strings.Join(s, " ")
}

// closedSocket is true once the socket local->remote has reached CLOSE.
func closedSocket(local, remote netip.AddrPort) func([]event.Record) bool {
	return func(recs []event.Record) bool {
		c, ok := socketOf(recs, local, remote)
		if !ok {
			return false
		}
		rs := ofSocket(recs, c)
		return rs[len(rs)-1].New == event.Close
	}
}

// want describes what every record of one socket must show.
type want struct {
	seq           string
	local, remote netip.AddrPort
	pid           int
	// pidAfter, when set, is the owner from the transition at index
	// pidFrom on (accept by another process).
	pidAfter, pidFrom int
	// firstDwellKnown says whether the first transition has a dwell time.
	firstDwellKnown bool
}

func checkSocket(t *testing.T, name string, recs []event.Record, w want) {
	t.Helper()
	cookie, ok := socketOf(recs, w.local, w.remote)
	if !ok {
		t.Fatalf("%s: no record for %v->%v; have:\n%s", name, w.local, w.remote, dump(recs))
	}
	rs := ofSocket(recs, cookie)
	if got := sequence(rs); got != w.seq {
		t.Errorf("%s: state sequence\n got %s\nwant %s", name, got, w.seq)
	}
	for i, r := range rs {
		at := name + " " + r.Old.String() + "->" + r.New.String()
		if l := netip.AddrPortFrom(r.SAddr, r.SPort); l != w.local {
			t.Errorf("%s: local %v, want %v", at, l, w.local)
		}
		if rm := netip.AddrPortFrom(r.DAddr, r.DPort); rm != w.remote {
			t.Errorf("%s: remote %v, want %v", at, rm, w.remote)
		}
		pid := w.pid
		if w.pidAfter != 0 && i >= w.pidFrom {
			pid = w.pidAfter
		}
		if int(r.Owner) != pid {
			t.Errorf("%s: owner pid %d (comm %q, current %d), want %d", at, r.Owner, r.Comm, r.Current, pid)
		}
		if want := procComm(pid); want != "" && r.Comm != want {
			t.Errorf("%s: comm %q, want %q", at, r.Comm, want)
		}
		wantFamily := event.Family(event.AFInet6)
		if w.local.Addr().Is4() {
			wantFamily = event.AFInet
		}
		if r.Family != wantFamily {
			t.Errorf("%s: family %v, want %v", at, r.Family, wantFamily)
		}
		_, known := r.Dwell()
		if wantKnown := i > 0 || w.firstDwellKnown; known != wantKnown {
			t.Errorf("%s: dwell known=%v, want %v", at, known, wantKnown)
		}
	}
}

var commCache = map[int]string{}

// procComm reads a live process's name (cached: the process may be gone
// by the time a later record is checked).
func procComm(pid int) string {
	if c, ok := commCache[pid]; ok {
		return c
	}
	b, err := os.ReadFile("/proc/" + itoa(uint64(pid)) + "/comm")
	if err != nil {
		return ""
	}
	commCache[pid] = strings.TrimSpace(string(b))
	return commCache[pid]
}

const (
	clientSeq   = "CLOSE->SYN_SENT SYN_SENT->ESTABLISHED ESTABLISHED->FIN_WAIT1 FIN_WAIT1->FIN_WAIT2 FIN_WAIT2->CLOSE"
	serverSeq   = "LISTEN->SYN_RECV SYN_RECV->ESTABLISHED ESTABLISHED->CLOSE_WAIT CLOSE_WAIT->LAST_ACK LAST_ACK->CLOSE"
	listenerSeq = "CLOSE->LISTEN LISTEN->CLOSE"
)

// TestLifecycle drives a full client-closes-first connection between two
// processes and checks every transition of all three sockets.
func TestLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name, listen string
		inNetns      bool
	}{
		{"ipv4-loopback", "127.0.0.1:0", false},
		{"ipv6-loopback", "[::1]:0", false},
		{"ipv4-in-netns", "127.0.0.1:0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCollector(t, probe.Config{})
			ns := ""
			if tc.inNetns {
				ns = netns(t, "tcplens-lc")
			}
			srv, cli := startPeer(t, ns), startPeer(t, ns)
			lnAddr := netip.MustParseAddrPort(srv.do("listen %s", tc.listen))
			cliLocal, _ := endpoints(t, cli.do("connect %s", lnAddr))
			srvLocal, srvRemote := endpoints(t, srv.do("accept"))
			if srvRemote != cliLocal {
				t.Fatalf("server sees %v, client is %v", srvRemote, cliLocal)
			}
			clientClosesFirst(cli, srv)
			srv.do("closelistener")

			unspec := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
			if lnAddr.Addr().Is6() {
				unspec = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
			}
			recs := c.waitFor(t, "all three sockets closed", 10*time.Second, func(rs []event.Record) bool {
				return closedSocket(cliLocal, srvLocal)(rs) && closedSocket(srvLocal, cliLocal)(rs) &&
					closedSocket(lnAddr, unspec)(rs)
			})
			checkSocket(t, "client", recs, want{seq: clientSeq, local: cliLocal, remote: srvLocal, pid: cli.Pid})
			checkSocket(t, "server", recs, want{seq: serverSeq, local: srvLocal, remote: cliLocal, pid: srv.Pid})
			checkSocket(t, "listener", recs, want{seq: listenerSeq, local: lnAddr, remote: unspec, pid: srv.Pid})
			assertSoftirqSeen(t, recs, cli.Pid, srv.Pid)
		})
	}
}

// assertSoftirqSeen guards the test itself: if no record of the server's
// sockets ran on another task's stack, ownership was never really tested.
func assertSoftirqSeen(t *testing.T, recs []event.Record, cliPid, srvPid int) {
	t.Helper()
	for _, r := range recs {
		if r.Kind == event.KindState && int(r.Owner) == srvPid && int(r.Current) != srvPid {
			return
		}
	}
	t.Errorf("no server-side transition ran outside the server process: the test did not exercise ownership")
}

// TestAcrossNamespaces runs server and client in two network namespaces
// joined by a veth pair, so packets cross a real device, not loopback.
func TestAcrossNamespaces(t *testing.T) {
	c := startCollector(t, probe.Config{})
	a, b := netns(t, "tcplens-a"), netns(t, "tcplens-b")
	run(t, "ip", "link", "add", "tlv-a", "netns", a, "type", "veth", "peer", "name", "tlv-b", "netns", b)
	run(t, "ip", "-n", a, "addr", "add", "10.231.0.1/24", "dev", "tlv-a")
	run(t, "ip", "-n", b, "addr", "add", "10.231.0.2/24", "dev", "tlv-b")
	run(t, "ip", "-n", a, "link", "set", "tlv-a", "up")
	run(t, "ip", "-n", b, "link", "set", "tlv-b", "up")

	srv, cli := startPeer(t, a), startPeer(t, b)
	lnAddr := netip.MustParseAddrPort(srv.do("listen 10.231.0.1:0"))
	cliLocal, _ := endpoints(t, cli.do("connect %s", lnAddr))
	srvLocal, _ := endpoints(t, srv.do("accept"))
	clientClosesFirst(cli, srv)
	srv.do("closelistener")
	recs := c.waitFor(t, "both sockets closed", 10*time.Second, func(rs []event.Record) bool {
		return closedSocket(cliLocal, srvLocal)(rs) && closedSocket(srvLocal, cliLocal)(rs)
	})
	checkSocket(t, "client", recs, want{seq: clientSeq, local: cliLocal, remote: srvLocal, pid: cli.Pid})
	checkSocket(t, "server", recs, want{seq: serverSeq, local: srvLocal, remote: cliLocal, pid: srv.Pid})
}

// TestExistingSockets starts tracing after the connection is established:
// the start-up scan must attribute later transitions to the right owners,
// and the listener found by the scan must hand its owner to new children.
func TestExistingSockets(t *testing.T) {
	requireRoot(t)
	srv, cli := startPeer(t, ""), startPeer(t, "")
	lnAddr := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	cliLocal, _ := endpoints(t, cli.do("connect %s", lnAddr))
	srvLocal, _ := endpoints(t, srv.do("accept"))

	c := startCollector(t, probe.Config{})
	clientClosesFirst(cli, srv)

	// A new connection to the listener that existed before tracing.
	cli2 := startPeer(t, "")
	cli2Local, _ := endpoints(t, cli2.do("connect %s", lnAddr))
	srv2Local, _ := endpoints(t, srv.do("accept"))
	cli2.do("close")
	srv.do("readeof")
	srv.do("close")
	srv.do("closelistener")

	unspec := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	recs := c.waitFor(t, "sockets closed", 10*time.Second, func(rs []event.Record) bool {
		return closedSocket(cliLocal, srvLocal)(rs) && closedSocket(srvLocal, cliLocal)(rs) &&
			closedSocket(srv2Local, cli2Local)(rs) && closedSocket(lnAddr, unspec)(rs)
	})
	checkSocket(t, "old client", recs, want{seq: "ESTABLISHED->FIN_WAIT1 FIN_WAIT1->FIN_WAIT2 FIN_WAIT2->CLOSE",
		local: cliLocal, remote: srvLocal, pid: cli.Pid})
	checkSocket(t, "old server", recs, want{seq: "ESTABLISHED->CLOSE_WAIT CLOSE_WAIT->LAST_ACK LAST_ACK->CLOSE",
		local: srvLocal, remote: cliLocal, pid: srv.Pid})
	checkSocket(t, "old listener", recs, want{seq: "LISTEN->CLOSE", local: lnAddr, remote: unspec, pid: srv.Pid})
	checkSocket(t, "new server", recs, want{seq: serverSeq, local: srv2Local, remote: cli2Local, pid: srv.Pid})
	checkSocket(t, "new client", recs, want{seq: clientSeq, local: cli2Local, remote: srv2Local, pid: cli2.Pid})
}

// TestAcceptedByAnotherProcess: the listener is created by one process and
// shared (prefork style); the process that accepts owns the connection from
// accept() on, while the handshake belongs to the listener's owner. Without
// an accept hook the holder is learnt when it closes the socket.
func TestAcceptedByAnotherProcess(t *testing.T) {
	for _, tc := range []struct {
		hook    probe.AcceptHook
		pidFrom int // first transition attributed to the accepting worker
	}{
		{probe.AcceptSyscalls, 2}, // ESTABLISHED->CLOSE_WAIT
		{probe.AcceptFexit, 2},
		{probe.AcceptOff, 3}, // CLOSE_WAIT->LAST_ACK: the worker's close()
	} {
		t.Run(string(tc.hook), func(t *testing.T) {
			if tc.hook == probe.AcceptFexit {
				requireFexit(t)
			}
			acceptedByAnotherProcess(t, tc.hook, tc.pidFrom)
		})
	}
}

// requireFexit skips where the kernel refuses fexit programs (this
// project's development VMs); the VM stage's 6.1 kernel allows them.
func requireFexit(t *testing.T) {
	requireRoot(t)
	tr, err := tracer.Open(probe.Config{AcceptHook: probe.AcceptFexit})
	if err != nil {
		t.Skipf("no fexit here: %v", err)
	}
	tr.Close()
}

func acceptedByAnotherProcess(t *testing.T, hook probe.AcceptHook, pidFrom int) {
	c := startCollector(t, probe.Config{AcceptHook: hook})
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // the dup in f keeps the socket listening
	worker := startPeer(t, "", f)
	f.Close()
	lnAddr := netip.MustParseAddrPort(worker.do("listenfd"))
	cli := startPeer(t, "")
	cliLocal, _ := endpoints(t, cli.do("connect %s", lnAddr))
	time.Sleep(50 * time.Millisecond) // handshake done before accept
	srvLocal, _ := endpoints(t, worker.do("accept"))
	clientClosesFirst(cli, worker)
	recs := c.waitFor(t, "sockets closed", 10*time.Second, func(rs []event.Record) bool {
		return closedSocket(cliLocal, srvLocal)(rs) && closedSocket(srvLocal, cliLocal)(rs)
	})
	checkSocket(t, "server", recs, want{seq: serverSeq, local: srvLocal, remote: cliLocal,
		pid: os.Getpid(), pidAfter: worker.Pid, pidFrom: pidFrom})
	srvSock, _ := socketOf(recs, srvLocal, cliLocal)
	var accepts []event.Record
	for _, r := range recs {
		if r.Kind == event.KindAccept && r.Cookie == srvSock {
			accepts = append(accepts, r)
		}
	}
	switch {
	case hook == probe.AcceptOff && len(accepts) != 0:
		t.Errorf("accept records without an accept hook: %+v", accepts)
	case hook != probe.AcceptOff && (len(accepts) != 1 || int(accepts[0].Owner) != worker.Pid):
		t.Errorf("accept records %+v, want one by the worker %d", accepts, worker.Pid)
	case hook == probe.AcceptSyscalls && accepts[0].FD < 3, hook == probe.AcceptFexit && accepts[0].FD != -1:
		t.Errorf("accept record fd %d with the %s hook", accepts[0].FD, hook)
	}
	checkSocket(t, "client", recs, want{seq: clientSeq, local: cliLocal, remote: srvLocal, pid: cli.Pid})
}
