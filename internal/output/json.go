// Package output formats tcplens events for people and programs. Writers
// sit on an io.Writer and never touch the kernel.
package output

import (
	"bufio"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/ktime"
	"github.com/tcplens/tcplens/internal/lifecycle"
)

// Writer renders events. Implementations buffer; Flush writes through.
type Writer interface {
	State(r *event.Record) error
	lifecycle.Sink
	Summary(s *lifecycle.Summary) error
	Host(h *Host) error
	// Report is the exit report (text: a table with histograms).
	Report(sums []lifecycle.Summary, h *Host) error
	Flush() error
}

// Host is the host-wide view: TIME_WAIT pile-ups by remote endpoint.
type Host struct {
	TS                uint64
	TimeWait          int
	TimeWaitOverflows uint64 // TcpExt TCPTimeWaitOverflow since tcplens started
	TopRemotes        []lifecycle.Remote
	Lost              uint64 // records lost, ring buffer full (since start)
	Skipped           uint64 // program runs the kernel skipped (recursion)
	Untracked         uint64 // sockets/SYNs/timewaits not tracked: maps full
}

// JSON writes one JSON object per line (the schema is in README.md).
type JSON struct {
	w     *bufio.Writer
	clock ktime.Clock
	ts    tsFormatter
	addrs addrText
	buf   []byte
}

// NewJSON returns a JSON-lines writer over w.
func NewJSON(w io.Writer, clock ktime.Clock) *JSON {
	return &JSON{w: bufio.NewWriterSize(w, 256<<10), clock: clock, ts: tsFormatter{clock: clock}, buf: make([]byte, 0, 512)}
}

// State writes one "type":"state" line.
func (j *JSON) State(r *event.Record) error {
	b := j.buf[:0]
	b = j.appendCommon(b, r.TS, "state", r)
	b = append(b, `,"old":"`...)
	b = append(b, r.Old.String()...)
	b = append(b, `","new":"`...)
	b = append(b, r.New.String()...)
	b = append(b, '"')
	if d, ok := r.Dwell(); ok {
		b = append(b, `,"dwell_ns":`...)
		b = strconv.AppendUint(b, d, 10)
	}
	if r.SockFlags&event.FlagInferred != 0 {
		b = append(b, `,"inferred":true`...)
	}
	b = append(b, "}\n"...)
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

func (j *JSON) line(b []byte) error {
	b = append(b, "}\n"...)
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

// Handshake writes one "type":"handshake" line.
func (j *JSON) Handshake(h *lifecycle.Handshake) error {
	b := j.appendCommon(j.buf[:0], h.Conn.TS, "handshake", &h.Conn)
	b = append(b, `,"role":"`...)
	b = append(b, h.Role...)
	b = append(b, `","result":"`...)
	b = append(b, h.Result...)
	b = append(b, '"')
	if h.LatencyKnown {
		b = append(b, `,"latency_ns":`...)
		b = strconv.AppendUint(b, h.LatencyNs, 10)
	}
	return j.line(b)
}

// Accept writes one "type":"accept" line.
func (j *JSON) Accept(a *lifecycle.Accept) error {
	b := j.appendCommon(j.buf[:0], a.Conn.TS, "accept", &a.Conn)
	b = append(b, `,"fd":`...)
	b = strconv.AppendInt(b, int64(a.Conn.FD), 10)
	b = append(b, `,"accept_wait_ns":`...)
	b = strconv.AppendUint(b, a.WaitNs, 10)
	return j.line(b)
}

// TimeWait writes one "type":"time_wait" line.
func (j *JSON) TimeWait(t *lifecycle.TimeWait) error {
	b := j.appendCommon(j.buf[:0], t.Conn.TS, "time_wait", &t.Conn)
	b = append(b, `,"end":"`...)
	b = append(b, t.End...)
	b = append(b, '"')
	if t.DwellKnown {
		b = append(b, `,"dwell_ns":`...)
		b = strconv.AppendUint(b, t.DwellNs, 10)
	}
	return j.line(b)
}

// CloseWait writes one "type":"close_wait" line.
func (j *JSON) CloseWait(c *lifecycle.CloseWait) error {
	b := j.appendCommon(j.buf[:0], c.Conn.TS, "close_wait", &c.Conn)
	b = append(b, `,"status":"`...)
	b = append(b, c.Status...)
	b = append(b, `","age_ns":`...)
	b = strconv.AppendUint(b, c.AgeNs, 10)
	if c.AtLeast {
		b = append(b, `,"age_at_least":true`...)
	}
	if c.FD >= 0 {
		b = append(b, `,"fd":`...)
		b = strconv.AppendInt(b, int64(c.FD), 10)
	}
	return j.line(b)
}

// Summary writes one "type":"summary" line for one process.
func (j *JSON) Summary(s *lifecycle.Summary) error {
	b := append(j.buf[:0], `{"ts":"`...)
	b = j.ts.append(b, s.TS)
	b = append(b, `","type":"summary","pid":`...)
	b = strconv.AppendUint(b, uint64(s.Pid), 10)
	b = append(b, `,"comm":`...)
	b = AppendJSONString(b, s.Comm)
	if s.Cgroup != "" {
		b = append(b, `,"cgroup":`...)
		b = AppendJSONString(b, s.Cgroup)
	}
	b = appendField(b, "active", s.Active)
	b = appendField(b, "passive", s.Passive)
	b = append(b, `,"failures":{"refused":`...)
	b = strconv.AppendUint(b, s.Refused, 10)
	b = appendField(b, "timeout", s.Timeout)
	b = appendField(b, "reset", s.Reset)
	b = append(b, `},"handshake_ns":{"count":`...)
	b = strconv.AppendUint(b, s.Handshake.Count(), 10)
	b = appendField(b, "p50", s.Handshake.Quantile(0.50))
	b = appendField(b, "p90", s.Handshake.Quantile(0.90))
	b = appendField(b, "p99", s.Handshake.Quantile(0.99))
	b = appendField(b, "max", s.Handshake.Max())
	b = append(b, `},"time_wait":{"now":`...)
	b = strconv.AppendInt(b, int64(s.TimeWaitNow), 10)
	b = appendField(b, "ended", s.TimeWaitEnded)
	b = appendField(b, "dwell_p50_ns", s.TimeWaitDwell.Quantile(0.50))
	b = appendField(b, "dwell_p99_ns", s.TimeWaitDwell.Quantile(0.99))
	b = append(b, `},"close_wait":{"stuck":`...)
	b = strconv.AppendInt(b, int64(s.CloseWaitStuck), 10)
	b = appendField(b, "oldest_age_ns", s.CloseWaitOldestNs)
	b = append(b, `},"resets":{"sent":`...)
	b = strconv.AppendUint(b, s.ResetsTx, 10)
	b = appendField(b, "received", s.ResetsRx)
	b = append(b, '}')
	return j.line(b)
}

// Host writes one "type":"host" line.
func (j *JSON) Host(h *Host) error {
	b := append(j.buf[:0], `{"ts":"`...)
	b = j.ts.append(b, h.TS)
	b = append(b, `","type":"host","time_wait":`...)
	b = strconv.AppendInt(b, int64(h.TimeWait), 10)
	b = appendField(b, "time_wait_overflows", h.TimeWaitOverflows)
	b = append(b, `,"time_wait_by_remote":[`...)
	for i, r := range h.TopRemotes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"daddr":"`...)
		b = j.addrs.append(b, r.Addr.Addr())
		b = append(b, `","dport":`...)
		b = strconv.AppendUint(b, uint64(r.Addr.Port()), 10)
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(r.Count), 10)
		b = append(b, '}')
	}
	b = append(b, ']')
	b = appendField(b, "lost", h.Lost)
	b = appendField(b, "skipped_by_kernel", h.Skipped)
	b = appendField(b, "untracked", h.Untracked)
	return j.line(b)
}

// Report writes the exit summaries as JSON lines.
func (j *JSON) Report(sums []lifecycle.Summary, h *Host) error {
	for i := range sums {
		if err := j.Summary(&sums[i]); err != nil {
			return err
		}
	}
	return j.Host(h)
}

func appendField(b []byte, name string, v uint64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendUint(b, v, 10)
}

// appendCommon writes the fields every line about a socket carries, leaving
// the object open for the line's own fields.
func (j *JSON) appendCommon(b []byte, ts uint64, typ string, r *event.Record) []byte {
	b = append(b, `{"ts":"`...)
	b = j.ts.append(b, ts)
	b = append(b, `","type":"`...)
	b = append(b, typ...)
	b = append(b, `","sock":`...)
	b = strconv.AppendUint(b, r.Cookie, 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendUint(b, uint64(r.Owner), 10)
	b = append(b, `,"comm":`...)
	b = AppendJSONString(b, r.Comm)
	b = append(b, `,"family":"`...)
	b = append(b, r.Family.String()...)
	b = append(b, `","saddr":"`...)
	b = j.addrs.append(b, r.SAddr)
	b = append(b, `","sport":`...)
	b = strconv.AppendUint(b, uint64(r.SPort), 10)
	b = append(b, `,"daddr":"`...)
	b = j.addrs.append(b, r.DAddr)
	b = append(b, `","dport":`...)
	b = strconv.AppendUint(b, uint64(r.DPort), 10)
	return b
}

// Flush writes buffered lines through.
func (j *JSON) Flush() error { return j.w.Flush() }

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. Control characters are
// escaped and invalid UTF-8 becomes U+FFFD, so any process name or cgroup
// path yields valid JSON.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
