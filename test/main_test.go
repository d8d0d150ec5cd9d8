// Package integration holds the tests that load tcplens into the running
// kernel and drive real TCP connections between separate processes. They
// need root; set TCPLENS_REQUIRE_ROOT=1 (CI does) to fail instead of skip
// when run without it.
package integration

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/tracer"
)

func TestMain(m *testing.M) {
	runPeerIfAsked()
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("TCPLENS_REQUIRE_ROOT") != "" {
		t.Fatal("this test needs root (TCPLENS_REQUIRE_ROOT is set)")
	}
	t.Skip("needs root to load BPF programs")
}

// collector runs a tracer in this process and keeps every record.
type collector struct {
	mu   sync.Mutex
	recs []event.Record
	tr   *tracer.Tracer
	done chan error
	stop context.CancelFunc
}

func startCollector(t *testing.T, cfg probe.Config) *collector {
	t.Helper()
	requireRoot(t)
	tr, err := tracer.Open(cfg)
	if err != nil {
		t.Fatalf("open tracer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{tr: tr, done: make(chan error, 1), stop: cancel}
	go func() {
		c.done <- tr.Run(ctx, tracer.Handlers{Record: func(r *event.Record) error {
			c.mu.Lock()
			c.recs = append(c.recs, *r)
			c.mu.Unlock()
			return nil
		}})
	}()
	t.Cleanup(func() { c.close(t) })
	return c
}

func (c *collector) close(t *testing.T) {
	if c.stop == nil {
		return
	}
	c.stop()
	c.stop = nil
	if err := <-c.done; err != nil {
		t.Errorf("tracer run: %v", err)
	}
	c.tr.Close()
}

// waitFor polls until match returns true for the records so far.
func (c *collector) waitFor(t *testing.T, what string, timeout time.Duration, match func([]event.Record) bool) []event.Record {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		recs := append([]event.Record(nil), c.recs...)
		c.mu.Unlock()
		if match(recs) {
			return recs
		}
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s; have:\n%s", timeout, what, dump(recs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dump(recs []event.Record) string {
	var b strings.Builder
	for _, r := range recs {
		if r.Kind != event.KindState {
			continue
		}
		b.WriteString(strings.Join([]string{
			r.Kind.String(), itoa(r.Cookie), "pid=" + itoa(uint64(r.Owner)), "cur=" + itoa(uint64(r.Current)), r.Comm,
			netip.AddrPortFrom(r.SAddr, r.SPort).String(), netip.AddrPortFrom(r.DAddr, r.DPort).String(),
			r.Old.String() + "->" + r.New.String(),
		}, " "))
		b.WriteByte('\n')
	}
	return b.String()
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// netns creates a network namespace with loopback up, removed at cleanup.
func netns(t *testing.T, name string) string {
	t.Helper()
	exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
