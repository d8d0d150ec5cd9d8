package output

import (
	"time"

	"github.com/tcplens/tcplens/internal/ktime"
)

// tsFormatter writes kernel timestamps as RFC 3339 UTC with nanoseconds,
// byte for byte what time.RFC3339Nano gives, but formats the date and
// time only once per second: on the hot path lines share their second.
type tsFormatter struct {
	clock  ktime.Clock
	sec    int64  // Unix second of prefix
	prefix []byte // "2006-01-02T15:04:05"
}

func (f *tsFormatter) append(b []byte, ts uint64) []byte {
	w := f.clock.Wall(ts)
	if s := w.Unix(); s != f.sec || f.prefix == nil {
		f.sec = s
		f.prefix = w.Truncate(time.Second).AppendFormat(f.prefix[:0], "2006-01-02T15:04:05")
	}
	b = append(b, f.prefix...)
	if ns := w.Nanosecond(); ns != 0 {
		// ".123456789" without trailing zeros, as RFC3339Nano does.
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z')
}
