package output

import (
	"fmt"
	"strconv"
)

// Lost writes one "type":"lost" line: n records the kernel dropped (ring
// buffer full) since the previous lost line; ts is kernel monotonic ns.
func (j *JSON) Lost(ts, n uint64) error {
	b := j.buf[:0]
	b = append(b, `{"ts":"`...)
	b = j.ts.append(b, ts)
	b = append(b, `","type":"lost","lost":`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, "}\n"...)
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

// Lost writes one row saying how many records the kernel dropped.
func (t *Text) Lost(ts, n uint64) error {
	_, err := fmt.Fprintf(t.w, "%-15s LOST %d records: the ring buffer was full (reader too slow; see --ring-buffer-size)\n",
		t.clock.Wall(ts).Local().Format("15:04:05.000000"), n)
	return err
}
