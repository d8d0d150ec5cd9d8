package integration

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tcpDialer dials plain TCP (Go would use MPTCP where the kernel has it):
// ss -t shows what the tests look at.
func tcpDialer(timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	d.SetMultipathTCP(false)
	return d
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func mustDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// A peer is a separate process (this test binary re-executed) that opens,
// accepts and closes TCP connections on command, one line per command on
// stdin, one line of reply on stdout. Running client and server as distinct
// processes is what makes ownership testable: on loopback the kernel runs
// many transitions on the *other* process's stack.

const (
	peerEnv = "TCPLENS_TEST_PEER"
	holdEnv = "TCPLENS_TEST_HOLD"
)

// runPeerIfAsked turns this process into a peer when the environment says so.
func runPeerIfAsked() {
	if os.Getenv(holdEnv) != "" {
		// A process that only holds the descriptors it inherited.
		time.Sleep(2 * time.Minute)
		os.Exit(0)
	}
	if os.Getenv(peerEnv) == "" {
		return
	}
	servePeer(os.Stdin, os.Stdout)
	os.Exit(0)
}

func servePeer(in io.Reader, out io.Writer) {
	var (
		ln     net.Listener
		conns  []net.Conn
		last   net.Conn
		held   heldConns                  // acceptall, hold, holdcw
		passed = make(chan passedConn, 1) // recvlisten, recvfd
	)
	reply := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var err error
		switch f[0] {
		case "listen":
			lc := net.ListenConfig{}
			lc.SetMultipathTCP(false) // plain TCP: ss -t shows what we test
			ln, err = lc.Listen(nil, "tcp", f[1])
			if err == nil {
				reply("ok %s", ln.Addr())
			}
		case "listenfd": // use the listener inherited as fd 3
			var fl net.Listener
			fl, err = net.FileListener(os.NewFile(3, "listener"))
			if err == nil {
				ln = fl
				reply("ok %s", ln.Addr())
			}
		case "accept":
			last, err = ln.Accept()
			if err == nil {
				conns = append(conns, last)
				reply("ok %s %s", last.LocalAddr(), last.RemoteAddr())
			}
		case "connect":
			d := tcpDialer(10 * time.Second)
			last, err = d.Dial("tcp", f[1])
			if err == nil {
				conns = append(conns, last)
				reply("ok %s %s", last.LocalAddr(), last.RemoteAddr())
			}
		case "connectfrom": // connectfrom LOCALPORT ADDR: reuse a local port
			d := tcpDialer(10 * time.Second)
			d.LocalAddr = &net.TCPAddr{Port: atoi(f[1])}
			d.Control = func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
				})
			}
			last, err = d.Dial("tcp", f[2])
			if err == nil {
				conns = append(conns, last)
				reply("ok %s %s", last.LocalAddr(), last.RemoteAddr())
			}
		case "tryconnect": // tryconnect ADDR TIMEOUT: report how a connect ends
			d := tcpDialer(mustDuration(f[2]))
			c, cerr := d.Dial("tcp", f[1])
			if cerr == nil {
				conns = append(conns, c)
				last = c
				reply("ok connected %s", c.LocalAddr())
			} else {
				reply("ok failed %v", cerr)
			}
		case "handoff": // hand the last connection to a new process that just holds it
			var file *os.File
			file, err = last.(*net.TCPConn).File()
			if err != nil {
				break
			}
			self, _ := os.Executable()
			cmd := exec.Command(self, "-test.run=^$")
			cmd.Env = append(os.Environ(), holdEnv+"=1")
			cmd.ExtraFiles = []*os.File{file}
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			err = cmd.Start()
			file.Close()
			if err == nil {
				reply("ok %d", cmd.Process.Pid)
			}
		case "readeof": // wait for the peer's FIN
			_, err = io.Copy(io.Discard, last)
			if err == nil {
				reply("ok")
			}
		case "close":
			err = last.Close()
			if err == nil {
				reply("ok")
			}
		case "closelistener":
			err = ln.Close()
			if err == nil {
				reply("ok")
			}
		case "serve": // accept and close connections in the background
			go acceptAndClose(ln)
			reply("ok")
		case "churn": // churn ADDR N: N connections, each connected and closed
			var n int
			if n, err = strconv.Atoi(f[2]); err == nil {
				err = churn(f[1], n)
			}
			if err == nil {
				reply("ok")
			}
		case "rename": // rename HEX: set the process name (the leader's comm)
			var name []byte
			if name, err = hex.DecodeString(f[1]); err == nil {
				err = os.WriteFile("/proc/self/comm", name, 0)
			}
			if err == nil {
				reply("ok")
			}
		case "acceptall": // accept in the background and keep every connection
			go held.acceptAll(ln)
			reply("ok")
		case "hold", "holdcw": // hold[cw] ADDR N: N idle connections (holdcw: after shutdown(SHUT_WR))
			var n int
			if n, err = strconv.Atoi(f[2]); err == nil {
				err = held.dial(f[1], n, f[0] == "holdcw")
			}
			if err == nil {
				reply("ok")
			}
		case "held":
			reply("ok %d", held.count())
		case "recvlisten": // recvlisten PATH: a UNIX socket to receive a descriptor on
			var ul net.Listener
			if ul, err = net.Listen("unix", f[1]); err == nil {
				go func() { // receive in the background: the sender waits for us
					c, err := recvConn(ul)
					ul.Close()
					passed <- passedConn{c, err}
				}()
				reply("ok")
			}
		case "recvfd": // take a TCP connection's descriptor passed over it (SCM_RIGHTS)
			p := <-passed
			c := p.c
			if err = p.err; err == nil {
				last = c
				conns = append(conns, c)
				reply("ok %s %s", c.LocalAddr(), c.RemoteAddr())
			}
		case "sendfd": // sendfd PATH: pass the last connection on, then close our copy
			if err = sendConn(f[1], last); err == nil {
				reply("ok")
			}
		case "execsleep": // exec /bin/sleep, keeping the last connection open across it
			var file *os.File
			if file, err = last.(*net.TCPConn).File(); err == nil {
				syscall.Syscall(syscall.SYS_FCNTL, file.Fd(), syscall.F_SETFD, 0) // survive exec
				reply("ok %d", file.Fd())
				err = syscall.Exec("/bin/sleep", []string{"sleep", "120"}, os.Environ())
			}
		case "pid":
			reply("ok %d", os.Getpid())
		case "exit":
			reply("ok")
			return
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		if err != nil {
			reply("err %v", err)
		}
	}
}

// peer is the test's handle on a peer process.
type peer struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	Pid   int
	mu    sync.Mutex
	owned bool
}

// startPeer starts a peer process, inside network namespace netns when
// it is not empty. extra files are passed as fd 3 onwards.
func startPeer(t *testing.T, netns string, extra ...*os.File) *peer {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if netns != "" {
		cmd = exec.Command("ip", "netns", "exec", netns, self, "-test.run=^$")
	} else {
		cmd = exec.Command(self, "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), peerEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = extra
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	t.Cleanup(p.kill)
	// With ip netns exec the peer is a child of ip; ask it for its own pid.
	var pid int
	if _, err := fmt.Sscanf(p.do("pid"), "%d", &pid); err != nil {
		t.Fatalf("peer pid: %v", err)
	}
	p.Pid = pid
	return p
}

// do sends one command and returns the reply's text after "ok ".
func (p *peer) do(format string, a ...any) string {
	p.t.Helper()
	line := fmt.Sprintf(format, a...)
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		p.t.Fatalf("peer %q: %v", line, err)
	}
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := p.out.ReadString('\n')
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			p.t.Fatalf("peer %q: %v", line, r.err)
		}
		s := strings.TrimSpace(r.s)
		if rest, ok := strings.CutPrefix(s, "ok"); ok {
			return strings.TrimSpace(rest)
		}
		p.t.Fatalf("peer %q: %s", line, s)
	case <-time.After(20 * time.Second):
		p.t.Fatalf("peer %q: no reply in 20s", line)
	}
	return ""
}

// exit ends the peer and waits for it.
func (p *peer) exit() {
	p.do("exit")
	p.in.Close()
	p.cmd.Wait()
}

func (p *peer) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// heldConns are connections a peer keeps open without using them.
type heldConns struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (h *heldConns) add(c net.Conn) {
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
}

func (h *heldConns) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *heldConns) acceptAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		h.add(c)
	}
}

func (h *heldConns) dial(addr string, n int, shutWrite bool) error {
	d := tcpDialer(10 * time.Second)
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		if shutWrite {
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				return err
			}
		}
		h.add(c)
	}
	return nil
}

type passedConn struct {
	c   net.Conn
	err error
}

// sendConn passes c's descriptor over the UNIX socket at path, then closes
// this process's copies: the receiver is the only holder afterwards.
func sendConn(path string, c net.Conn) error {
	file, err := c.(*net.TCPConn).File()
	if err != nil {
		return err
	}
	defer file.Close()
	u, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	defer u.Close()
	if _, _, err := u.(*net.UnixConn).WriteMsgUnix([]byte{1}, syscall.UnixRights(int(file.Fd())), nil); err != nil {
		return err
	}
	// Wait for the receiver's byte: it holds the descriptor now.
	if _, err := u.Read(make([]byte, 1)); err != nil {
		return err
	}
	file.Close()
	return c.Close()
}

func recvConn(ul net.Listener) (net.Conn, error) {
	u, err := ul.Accept()
	if err != nil {
		return nil, err
	}
	defer u.Close()
	buf, oob := make([]byte, 1), make([]byte, syscall.CmsgSpace(4))
	_, oobn, _, _, err := u.(*net.UnixConn).ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("no descriptor received: %v", err)
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("no descriptor received: %v", err)
	}
	f := os.NewFile(uintptr(fds[0]), "passed")
	c, err := net.FileConn(f) // dups it
	f.Close()
	if err != nil {
		return nil, err
	}
	_, err = u.Write([]byte{1})
	return c, err
}
