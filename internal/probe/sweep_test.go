package probe

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// TestSweep loads the real programs: a socket's entry whose close was
// "missed" (put back after the kernel deleted it) is swept once the socket
// is gone; the entries of live sockets, and entries without a socket
// pointer, stay.
func TestSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("TCPLENS_REQUIRE_ROOT") != "" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	p, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.objs.SweepSocks == nil {
		t.Fatalf("the sweep did not load: %v", p.Notes())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	cookie := socketCookie(t, client.(*net.TCPConn))
	var live bpfobj.TcplensSockInfo
	if err := p.objs.Socks.Lookup(cookie, &live); err != nil || live.Sk == 0 {
		t.Fatalf("client socket's entry: %+v, %v", live, err)
	}

	// Another cookie pointing at the live socket: that memory is not its socket.
	const wrongCookie, noPointer = 1 << 62, 1<<62 + 1
	put(t, p, wrongCookie, live)
	unknown := live
	unknown.Sk = 0
	put(t, p, noPointer, unknown)
	swept(t, p, 1)
	for cookie, want := range map[uint64]bool{cookie: true, wrongCookie: false, noPointer: true} {
		var si bpfobj.TcplensSockInfo
		if err := p.objs.Socks.Lookup(cookie, &si); (err == nil) != want {
			t.Errorf("entry %d: present %v, want %v", cookie, err == nil, want)
		}
	}

	// The client socket closes and is freed: the kernel deletes its entry;
	// put back, as if ->CLOSE and the destruction had been missed, it is swept.
	client.Close()
	server.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var si bpfobj.TcplensSockInfo
		if err := p.objs.Socks.Lookup(cookie, &si); errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed client's entry was not deleted by the kernel")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the socket is freed after an RCU grace period
	put(t, p, cookie, live)
	swept(t, p, 1)
	p.objs.Socks.Delete(uint64(noPointer))
}

func put(t *testing.T, p *Probe, cookie uint64, si bpfobj.TcplensSockInfo) {
	t.Helper()
	if err := p.objs.Socks.Update(cookie, &si, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
}

func swept(t *testing.T, p *Probe, want int) {
	t.Helper()
	n, err := p.Sweep()
	if err != nil || n != want {
		t.Fatalf("sweep: %d entries deleted, %v; want %d", n, err, want)
	}
}

func socketCookie(t *testing.T, c *net.TCPConn) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cookie uint64
	var gerr error
	rc.Control(func(fd uintptr) {
		cookie, gerr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return cookie
}
