// Package output formats tcplens events for people and programs. Writers
// sit on an io.Writer and never touch the kernel.
package output

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/ktime"
)

// Writer renders events. Implementations buffer; Flush writes through.
type Writer interface {
	State(r *event.Record) error
	Flush() error
}

// JSON writes one JSON object per line (the schema is in README.md).
type JSON struct {
	w     *bufio.Writer
	clock ktime.Clock
	buf   []byte
}

// NewJSON returns a JSON-lines writer over w.
func NewJSON(w io.Writer, clock ktime.Clock) *JSON {
	return &JSON{w: bufio.NewWriterSize(w, 64<<10), clock: clock, buf: make([]byte, 0, 512)}
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
	b = append(b, "}\n"...)
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

// appendCommon writes the fields every line about a socket carries, leaving
// the object open for the line's own fields.
func (j *JSON) appendCommon(b []byte, ts uint64, typ string, r *event.Record) []byte {
	b = append(b, `{"ts":"`...)
	b = j.clock.Wall(ts).AppendFormat(b, time.RFC3339Nano)
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
	b = appendAddr(b, r.SAddr)
	b = append(b, `","sport":`...)
	b = strconv.AppendUint(b, uint64(r.SPort), 10)
	b = append(b, `,"daddr":"`...)
	b = appendAddr(b, r.DAddr)
	b = append(b, `","dport":`...)
	b = strconv.AppendUint(b, uint64(r.DPort), 10)
	return b
}

// Flush writes buffered lines through.
func (j *JSON) Flush() error { return j.w.Flush() }

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return b
	}
	return a.AppendTo(b)
}

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
