package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/lifecycle"
	"github.com/tcplens/tcplens/internal/tracer"
)

// parseMetricsAddr validates --metrics-addr. Without a host (":9464") the
// endpoint is on 127.0.0.1: loopback unless the operator names another
// address. The host must be an IP literal or "localhost" (no name lookups
// at start-up, no surprise interfaces); port 0 picks a free port, printed
// at start-up.
func parseMetricsAddr(s string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("invalid --metrics-addr %q: %s", s, why)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", bad("want [HOST]:PORT, e.g. :9464 or 127.0.0.1:9464")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || port == "" || (len(port) > 1 && port[0] == '0') {
		return "", bad("want a port number 0-65535")
	}
	switch host {
	case "", "localhost":
		host = "127.0.0.1"
	default:
		a, err := netip.ParseAddr(host)
		if err != nil {
			return "", bad("host must be an IP address or localhost")
		}
		host = a.String()
	}
	return net.JoinHostPort(host, strconv.FormatUint(n, 10)), nil
}

// Handshake roles and results, and TIME_WAIT ends, as array indices: the
// session counts them with plain increments.
var (
	hsRoles   = [...]string{"active", "passive"}
	hsResults = [...]string{lifecycle.ResultOK, lifecycle.ResultRefused, lifecycle.ResultTimeout, lifecycle.ResultReset}
	twEnds    = [...]string{lifecycle.EndExpired, lifecycle.EndKilled, lifecycle.EndReused}
)

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// counts is what the session goroutine counts itself.
type counts struct {
	states     [16]uint64 // transitions by new state
	handshakes [len(hsRoles)][len(hsResults)]uint64
	twEnds     [len(twEnds)]uint64
	emitted    uint64
	// gauges and tracer stats, set at each publish
	stats          tracer.Stats
	timeWait       int
	closeWaitStuck int
}

// metrics is the --metrics-addr endpoint's state. The session goroutine
// increments cur without locking and copies it to snap at every tick
// (at least every tracer.PollInterval); the HTTP handler reads snap under
// mu and asks the kernel for its counters and map sizes itself.
type metrics struct {
	cur  counts
	mu   sync.Mutex
	snap counts
	t    *tracer.Tracer
}

func (m *metrics) state(r *event.Record) {
	if int(r.New) < len(m.cur.states) {
		m.cur.states[r.New]++
	}
}

func (m *metrics) publish(an *lifecycle.Analyzer, st tracer.Stats, emitted uint64) {
	m.cur.stats, m.cur.emitted = st, emitted
	m.cur.timeWait, m.cur.closeWaitStuck = an.TimeWaitNow(), an.CloseWaitStuck()
	m.mu.Lock()
	m.snap = m.cur
	m.mu.Unlock()
}

// countingSink counts the analyses' events on their way to the output.
type countingSink struct {
	lifecycle.Sink
	m *metrics
}

func (c countingSink) Handshake(h *lifecycle.Handshake) error {
	if i, j := indexOf(hsRoles[:], h.Role), indexOf(hsResults[:], h.Result); i >= 0 && j >= 0 {
		c.m.cur.handshakes[i][j]++
	}
	return c.Sink.Handshake(h)
}

func (c countingSink) TimeWait(tw *lifecycle.TimeWait) error {
	if i := indexOf(twEnds[:], tw.End); i >= 0 {
		c.m.cur.twEnds[i]++
	}
	return c.Sink.TimeWait(tw)
}

// ServeHTTP writes the Prometheus text exposition format (version 0.0.4).
func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.write(w, &s)
}

func (m *metrics) write(w io.Writer, s *counts) {
	metric := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	value := func(name, labels string, v any) {
		if labels != "" {
			labels = "{" + labels + "}"
		}
		fmt.Fprintf(w, "%s%s %v\n", name, labels, v)
	}
	c, cerr := m.t.Counters()
	if cerr == nil {
		metric("tcplens_records_produced_total", "counter", "Records the kernel side tried to send.")
		value("tcplens_records_produced_total", "", c.Produced)
		metric("tcplens_records_lost_total", "counter", "Records lost because the ring buffer was full.")
		value("tcplens_records_lost_total", "", c.RingFull)
		metric("tcplens_kernel_skipped_total", "counter", "Program runs the kernel skipped (recursion): events never produced.")
		value("tcplens_kernel_skipped_total", "", c.Skipped)
		metric("tcplens_untracked_total", "counter", "Sockets or requests not tracked because a kernel map was full.")
		value("tcplens_untracked_total", `map="socks"`, c.SocksFull)
		value("tcplens_untracked_total", `map="listeners"`, c.ListenersFull)
		value("tcplens_untracked_total", `map="tws"`, c.TWsFull)
		value("tcplens_untracked_total", `map="reqs"`, c.ReqsFull)
		metric("tcplens_filtered_total", "counter", "Transitions dropped by the in-kernel filters.")
		value("tcplens_filtered_total", "", c.Filtered)
	}
	metric("tcplens_records_read_total", "counter", "Records read from the ring buffer.")
	value("tcplens_records_read_total", "", s.stats.Records)
	metric("tcplens_decode_errors_total", "counter", "Records that could not be decoded.")
	value("tcplens_decode_errors_total", "", s.stats.DecodeErrors)
	metric("tcplens_ownership_rescans_total", "counter", "Re-scans of every process's descriptors to name socket owners.")
	value("tcplens_ownership_rescans_total", "", s.stats.Rescans)
	metric("tcplens_stale_entries_swept_total", "counter", "Kernel per-socket entries deleted because their socket was gone (its close was never seen).")
	value("tcplens_stale_entries_swept_total", "", s.stats.Swept)
	metric("tcplens_inferred_transitions_total", "counter", "->CLOSE_WAIT transitions never delivered (lost or missed) that two owner re-scans showed.")
	value("tcplens_inferred_transitions_total", "", s.stats.Inferred)
	metric("tcplens_events_emitted_total", "counter", "State lines written to the output.")
	value("tcplens_events_emitted_total", "", s.emitted)
	metric("tcplens_state_transitions_total", "counter", "TCP state transitions by new state.")
	for st, v := range s.states {
		if name := event.State(st).String(); st != 0 && (v != 0 || knownState(event.State(st))) {
			value("tcplens_state_transitions_total", `state="`+name+`"`, v)
		}
	}
	metric("tcplens_handshakes_total", "counter", "Connection attempts by role and outcome.")
	for i, role := range hsRoles {
		for j, res := range hsResults {
			value("tcplens_handshakes_total", `role="`+role+`",result="`+res+`"`, s.handshakes[i][j])
		}
	}
	metric("tcplens_time_wait_ends_total", "counter", "Ends of TIME_WAIT by kind.")
	for i, end := range twEnds {
		value("tcplens_time_wait_ends_total", `end="`+end+`"`, s.twEnds[i])
	}
	metric("tcplens_time_wait_sockets", "gauge", "Live TIME_WAIT sockets.")
	value("tcplens_time_wait_sockets", "", s.timeWait)
	metric("tcplens_close_wait_stuck_sockets", "gauge", "Live sockets reported stuck in CLOSE_WAIT.")
	value("tcplens_close_wait_stuck_sockets", "", s.closeWaitStuck)
	entries := m.t.MapEntries()
	names := make([]string, 0, len(entries))
	for k := range entries {
		names = append(names, k)
	}
	sort.Strings(names)
	metric("tcplens_map_entries", "gauge", "Entries in each of the kernel's per-socket maps.")
	for _, k := range names {
		value("tcplens_map_entries", `map="`+k+`"`, entries[k])
	}
	if cerr != nil {
		fmt.Fprintf(w, "# kernel counters unavailable: %v\n", oneLine(cerr))
	}
}

func knownState(s event.State) bool { return s >= event.Established && s <= event.NewSynRecv }

// metricsServer serves /metrics on a listener bound before tracing starts.
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
}

func listenMetrics(addr string) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	return &metricsServer{ln: ln}, nil
}

func (ms *metricsServer) serve(m *metrics) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m)
	ms.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	go ms.srv.Serve(ms.ln)
}

// close stops the endpoint and waits (briefly) for scrapes in progress:
// they read the kernel maps, which must still be there.
func (ms *metricsServer) close() {
	if ms.srv == nil {
		ms.ln.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := ms.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		ms.srv.Close()
	}
}
