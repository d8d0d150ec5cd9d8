package output

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/ktime"
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
