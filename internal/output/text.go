package output

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/ktime"
	"github.com/tcplens/tcplens/internal/lifecycle"
)

var (
	_ Writer = (*Text)(nil)
	_ Writer = (*JSON)(nil)
)

// Text writes aligned columns for people.
type Text struct {
	w          *bufio.Writer
	clock      ktime.Clock
	wroteTitle bool
}

// NewText returns a column writer over w.
func NewText(w io.Writer, clock ktime.Clock) *Text {
	return &Text{w: bufio.NewWriterSize(w, 64<<10), clock: clock}
}

const textRow = "%-15s %-7s %-15s %-39s %-39s %-11s %-11s %s\n"

// State writes one transition row.
func (t *Text) State(r *event.Record) error {
	if !t.wroteTitle {
		t.wroteTitle = true
		fmt.Fprintf(t.w, textRow, "TIME", "PID", "COMM", "LOCAL", "REMOTE", "OLD", "NEW", "DWELL")
	}
	dwell := "-"
	if d, ok := r.Dwell(); ok {
		dwell = FormatDuration(time.Duration(d))
	}
	pid := "?"
	if r.Owner != 0 {
		pid = strconv.FormatUint(uint64(r.Owner), 10)
	}
	_, err := fmt.Fprintf(t.w, textRow, t.clock.Wall(r.TS).Local().Format("15:04:05.000000"), pid,
		printable(r.Comm), HostPort(r.SAddr, r.SPort), HostPort(r.DAddr, r.DPort), r.Old, r.New, dwell)
	return err
}

// Flush writes buffered rows through.
func (t *Text) Flush() error { return t.w.Flush() }

// HostPort formats an endpoint as addr:port ([addr]:port for IPv6).
func HostPort(a netip.Addr, port uint16) string {
	if !a.IsValid() {
		return "-:" + strconv.Itoa(int(port))
	}
	return netip.AddrPortFrom(a, port).String()
}

// FormatDuration prints a duration with three significant digits.
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) + "us"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
	}
}

// printable keeps a process name on one terminal line.
func printable(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s && s != "" {
		return s
	}
	if s == "" {
		return "?"
	}
	return q
}

// event writes one row for a derived event: the common columns, then what.
func (t *Text) event(r *event.Record, what string) error {
	if !t.wroteTitle {
		t.wroteTitle = true
		fmt.Fprintf(t.w, textRow, "TIME", "PID", "COMM", "LOCAL", "REMOTE", "OLD", "NEW", "DWELL")
	}
	pid := "?"
	if r.Owner != 0 {
		pid = strconv.FormatUint(uint64(r.Owner), 10)
	}
	_, err := fmt.Fprintf(t.w, "%-15s %-7s %-15s %-39s %-39s %s\n", t.clock.Wall(r.TS).Local().Format("15:04:05.000000"),
		pid, printable(r.Comm), HostPort(r.SAddr, r.SPort), HostPort(r.DAddr, r.DPort), what)
	return err
}

func durOrUnknown(ns uint64, known bool) string {
	if !known {
		return "?"
	}
	return FormatDuration(time.Duration(ns))
}

// Handshake writes a handshake row.
func (t *Text) Handshake(h *lifecycle.Handshake) error {
	return t.event(&h.Conn, fmt.Sprintf("handshake %s %s in %s", h.Role, h.Result, durOrUnknown(h.LatencyNs, h.LatencyKnown)))
}

// Accept writes an accept row.
func (t *Text) Accept(a *lifecycle.Accept) error {
	return t.event(&a.Conn, fmt.Sprintf("accepted as fd %d after %s in the accept queue", a.Conn.FD, FormatDuration(time.Duration(a.WaitNs))))
}

// TimeWait writes a TIME_WAIT-ended row.
func (t *Text) TimeWait(w *lifecycle.TimeWait) error {
	return t.event(&w.Conn, fmt.Sprintf("TIME_WAIT %s after %s", w.End, durOrUnknown(w.DwellNs, w.DwellKnown)))
}

// CloseWait writes a CLOSE_WAIT row.
func (t *Text) CloseWait(c *lifecycle.CloseWait) error {
	age := FormatDuration(time.Duration(c.AgeNs))
	if c.AtLeast {
		age = ">=" + age
	}
	fd := ""
	if c.FD >= 0 {
		fd = fmt.Sprintf(" (fd %d)", c.FD)
	}
	return t.event(&c.Conn, fmt.Sprintf("CLOSE_WAIT %s, age %s%s", c.Status, age, fd))
}

// Summary writes a one-row summary of a process.
func (t *Text) Summary(s *lifecycle.Summary) error {
	_, err := fmt.Fprintf(t.w, "summary pid %d (%s): %d active, %d passive, failed %d refused/%d timeout/%d reset, handshake p50 %s p99 %s, TIME_WAIT %d now/%d ended, CLOSE_WAIT stuck %d, resets %d sent/%d received\n",
		s.Pid, printable(s.Comm), s.Active, s.Passive, s.Refused, s.Timeout, s.Reset,
		FormatDuration(time.Duration(s.Handshake.Quantile(0.5))), FormatDuration(time.Duration(s.Handshake.Quantile(0.99))),
		s.TimeWaitNow, s.TimeWaitEnded, s.CloseWaitStuck, s.ResetsTx, s.ResetsRx)
	return err
}

// Host writes the host-wide TIME_WAIT view.
func (t *Text) Host(h *Host) error {
	fmt.Fprintf(t.w, "lost %d (ring buffer full), skipped by the kernel %d, untracked %d; TIME_WAIT now %d, table overflows %d",
		h.Lost, h.Skipped, h.Untracked, h.TimeWait, h.TimeWaitOverflows)
	for i, r := range h.TopRemotes {
		sep := ", "
		if i == 0 {
			sep = "; busiest remotes: "
		}
		fmt.Fprintf(t.w, "%s%s (%d)", sep, r.Addr, r.Count)
	}
	_, err := fmt.Fprintln(t.w)
	return err
}

// Report writes the exit report: a per-process table, then each process's
// handshake and TIME_WAIT histograms in log2 buckets.
func (t *Text) Report(sums []lifecycle.Summary, h *Host) error {
	w := t.w
	fmt.Fprintf(w, "\n%-7s %-15s %7s %7s %7s %7s %7s %10s %10s %10s %6s %6s %8s %6s %6s\n",
		"PID", "COMM", "ACTIVE", "PASSIVE", "REFUSED", "TIMEOUT", "RESET", "HS_P50", "HS_P99", "HS_MAX", "TW", "TW_END", "TW_P50", "CW", "RST")
	for _, s := range sums {
		fmt.Fprintf(w, "%-7d %-15s %7d %7d %7d %7d %7d %10s %10s %10s %6d %6d %8s %6d %6d\n",
			s.Pid, printable(s.Comm), s.Active, s.Passive, s.Refused, s.Timeout, s.Reset,
			histDur(&s.Handshake, 0.5), histDur(&s.Handshake, 0.99), maxDur(&s.Handshake),
			s.TimeWaitNow, s.TimeWaitEnded, histDur(&s.TimeWaitDwell, 0.5), s.CloseWaitStuck, s.ResetsTx+s.ResetsRx)
	}
	for _, s := range sums {
		if s.Handshake.Count() > 0 {
			fmt.Fprintf(w, "\nhandshake latency, pid %d (%s):\n", s.Pid, printable(s.Comm))
			writeLog2(w, s.Handshake.Log2(1000), "usecs")
		}
		if s.TimeWaitDwell.Count() > 0 {
			fmt.Fprintf(w, "\nTIME_WAIT dwell, pid %d (%s):\n", s.Pid, printable(s.Comm))
			writeLog2(w, s.TimeWaitDwell.Log2(1e6), "msecs")
		}
	}
	fmt.Fprintln(w)
	return t.Host(h)
}

func histDur(h *lifecycle.Hist, q float64) string {
	if h.Count() == 0 {
		return "-"
	}
	return FormatDuration(time.Duration(h.Quantile(q)))
}

func maxDur(h *lifecycle.Hist) string {
	if h.Count() == 0 {
		return "-"
	}
	return FormatDuration(time.Duration(h.Max()))
}

// writeLog2 prints a BCC-style histogram of power-of-two buckets (see
// lifecycle.Hist.Log2): "     lo -> hi   : count |****   |".
func writeLog2(w io.Writer, buckets []uint64, unit string) {
	var most uint64
	for _, c := range buckets {
		most = max(most, c)
	}
	fmt.Fprintf(w, "%20s : %-8s %s\n", unit, "count", "distribution")
	started := false
	for i, c := range buckets {
		if c == 0 && !started {
			continue
		}
		started = true
		lo, hi := uint64(1)<<i, uint64(1)<<(i+1)-1
		if i == 0 {
			lo = 0
		}
		stars := int(c * 40 / most)
		fmt.Fprintf(w, "%9d -> %-9d : %-8d |%-40s|\n", lo, hi, c, strings.Repeat("*", stars))
	}
}
