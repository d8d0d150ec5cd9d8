// Command churn is a loopback TCP connection-churn generator: it opens and
// closes short connections as fast as it can and reports connections per
// second. It is the load behind `make bench` (cmd/tcplens-bench).
//
// The server and the client run in separate processes: churn re-executes
// itself with --role server, waits for the listener's address, runs the
// client workers itself, then stops the server and reports both sides'
// counts. Every connection is one request-sized exchange:
//
//	client: connect, read 1 byte, [closer=client: close] [closer=server: read EOF, close]
//	server: accept, write 1 byte, [closer=client: read EOF, close] [closer=server: close]
//
// so each side's socket goes through exactly 5 TCP state transitions, and
// client and server stay in lock step (no accept-queue overflow). With
// client-closes-first, TIME_WAIT lands on the client's ephemeral ports: run
// churn in a fresh network namespace with a wide ip_local_port_range (the
// benchmark runner does) for long runs.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is churn's report (--json prints it as one line).
type Result struct {
	Family      int     `json:"family"`
	Closer      string  `json:"closer"`
	Workers     int     `json:"workers"`
	Addr        string  `json:"addr"` // the server's listening address
	Port        int     `json:"port"`
	Conns       uint64  `json:"conns"`         // connections completed by the client
	Accepted    uint64  `json:"accepted"`      // connections completed by the server
	Errors      uint64  `json:"errors"`        // client-side failures (dial, read, close)
	ServerErrs  uint64  `json:"server_errors"` // server-side failures
	Seconds     float64 `json:"seconds"`
	ConnsPerSec float64 `json:"conns_per_sec"`
	FirstError  string  `json:"first_error,omitempty"`
}

type options struct {
	role     string
	family   int
	closer   string
	workers  int
	duration time.Duration
	conns    uint64
	addr     string
	port     int
	json     bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("churn", flag.ExitOnError)
	fs.StringVar(&o.role, "role", "", "internal: run as the server process")
	fs.IntVar(&o.family, "family", 4, "address family: 4 (127.0.0.1) or 6 (::1)")
	fs.StringVar(&o.closer, "closer", "client", "who closes first: client or server")
	fs.IntVar(&o.workers, "workers", 4, "client workers (and as many server workers)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to churn (ignored with --conns)")
	fs.Uint64Var(&o.conns, "conns", 0, "stop after this many connections instead of after --duration")
	fs.IntVar(&o.port, "port", 0, "server port (0: any free port)")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: churn [flags]\n\nLoopback TCP connection churn; prints connections per second.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fail(2, "unexpected argument %q", fs.Arg(0))
	}
	if o.family != 4 && o.family != 6 {
		fail(2, "invalid --family %d: want 4 or 6", o.family)
	}
	if o.closer != "client" && o.closer != "server" {
		fail(2, "invalid --closer %q: want client or server", o.closer)
	}
	if o.workers < 1 {
		fail(2, "invalid --workers %d: want at least 1", o.workers)
	}
	if o.role == "server" {
		if err := serve(o); err != nil {
			fail(1, "server: %v", err)
		}
		return
	}
	if o.role != "" {
		fail(2, "invalid --role %q", o.role)
	}
	res, err := run(o)
	if err != nil {
		fail(1, "%v", err)
	}
	if o.json {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	} else {
		fmt.Printf("churn: %d connections in %.2fs: %.0f conn/s (ipv%d, %s closes first, %d workers; %d errors)\n",
			res.Conns, res.Seconds, res.ConnsPerSec, res.Family, res.Closer, res.Workers, res.Errors+res.ServerErrs)
	}
	if res.Conns == 0 {
		fail(1, "no connection completed (first error: %s)", res.FirstError)
	}
}

func fail(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "churn: "+format+"\n", a...)
	os.Exit(code)
}

func host(family int) string {
	if family == 6 {
		return "::1"
	}
	return "127.0.0.1"
}

func network(family int) string {
	if family == 6 {
		return "tcp6"
	}
	return "tcp4"
}

// run starts the server process, churns, stops the server and reports.
func run(o options) (*Result, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	srv := exec.Command(self, "--role", "server", "--family", fmt.Sprint(o.family),
		"--closer", o.closer, "--workers", fmt.Sprint(o.workers), "--port", fmt.Sprint(o.port))
	srv.Stderr = os.Stderr
	stdin, err := srv.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := srv.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	defer srv.Process.Kill()
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("server did not report its address: %w", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	ap, err := netAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("server said %q: %w", line, err)
	}

	res := &Result{Family: o.family, Closer: o.closer, Workers: o.workers, Addr: addr, Port: ap}
	var (
		conns, errs atomic.Uint64
		firstErr    atomic.Value
		stop        atomic.Bool
		wg          sync.WaitGroup
	)
	noteErr := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	start := time.Now()
	for i := 0; i < o.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 5 * time.Second}
			d.SetMultipathTCP(false)
			var b [1]byte
			for !stop.Load() {
				c, err := d.Dial(network(o.family), addr)
				if err != nil {
					noteErr(err)
					if errs.Load() > 1000 && conns.Load() == 0 {
						stop.Store(true)
					}
					time.Sleep(time.Millisecond)
					continue
				}
				if _, err := io.ReadFull(c, b[:]); err != nil {
					noteErr(err)
					c.Close()
					continue
				}
				if o.closer == "server" {
					if _, err := c.Read(b[:]); err != io.EOF {
						noteErr(fmt.Errorf("want EOF from server, got %v", err))
					}
				}
				if err := c.Close(); err != nil {
					noteErr(err)
					continue
				}
				if n := conns.Add(1); o.conns > 0 && n >= o.conns {
					stop.Store(true)
				}
			}
		}()
	}
	if o.conns == 0 {
		select {
		case <-time.After(o.duration):
		case <-ctx.Done():
		}
		stop.Store(true)
	} else {
		go func() { <-ctx.Done(); stop.Store(true) }()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Conns = conns.Load()
	res.Errors = errs.Load()
	if v := firstErr.Load(); v != nil {
		res.FirstError = v.(string)
	}
	res.ConnsPerSec = float64(res.Conns) / res.Seconds

	// Stop the server: it finishes its open connections and reports.
	stdin.Close()
	line, err = out.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("server did not report: %w", err)
	}
	var sr struct{ Accepted, Errors uint64 }
	if _, err := fmt.Sscanf(line, "accepted %d errors %d", &sr.Accepted, &sr.Errors); err != nil {
		return nil, fmt.Errorf("server said %q: %w", line, err)
	}
	res.Accepted, res.ServerErrs = sr.Accepted, sr.Errors
	if err := srv.Wait(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return res, nil
}

func netAddrPort(s string) (int, error) {
	_, p, err := net.SplitHostPort(s)
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscanf(p, "%d", &n)
	return n, err
}

// serve is the server process: it prints "listening ADDR", serves until
// stdin closes, then prints "accepted N errors M" and exits.
func serve(o options) error {
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), network(o.family), net.JoinHostPort(host(o.family), fmt.Sprint(o.port)))
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	var accepted, errs atomic.Uint64
	var wg sync.WaitGroup
	var closing atomic.Bool
	for i := 0; i < o.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []byte{'x'}
			for {
				c, err := ln.Accept()
				if err != nil {
					if closing.Load() || errors.Is(err, net.ErrClosed) {
						return
					}
					errs.Add(1)
					continue
				}
				if _, err := c.Write(b); err != nil {
					errs.Add(1)
					c.Close()
					continue
				}
				if o.closer == "client" {
					var rb [1]byte
					if _, err := c.Read(rb[:]); err != io.EOF {
						errs.Add(1)
					}
				}
				if err := c.Close(); err != nil {
					errs.Add(1)
					continue
				}
				accepted.Add(1)
			}
		}()
	}
	io.Copy(io.Discard, os.Stdin) // the client closes stdin when done
	closing.Store(true)
	ln.Close()
	wg.Wait()
	fmt.Printf("accepted %d errors %d\n", accepted.Load(), errs.Load())
	return nil
}
