package lifecycle

import "math/bits"

// 2^subBits buckets per power of two: percentiles are bucket midpoints,
// within 1/16 (~6%) of the true value.
const subBits = 3

// Hist is a log-linear histogram of nanosecond durations: fixed memory,
// no allocation per value, percentiles within ~6%.
type Hist struct {
	counts [48 << subBits]uint64 // up to 2^48 ns (78 hours)
	n      uint64
	max    uint64
}

func bucketOf(v uint64) int {
	if v >= 1<<48 {
		v = 1<<48 - 1
	}
	if v < 1<<subBits {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // >= subBits
	mant := (v >> (exp - subBits)) & (1<<subBits - 1)
	return (exp-subBits+1)<<subBits | int(mant)
}

// bucketMid is a representative value of bucket b (its midpoint).
func bucketMid(b int) uint64 {
	if b < 1<<subBits {
		return uint64(b)
	}
	exp := b>>subBits + subBits - 1
	mant := uint64(b & (1<<subBits - 1))
	lo := (1<<subBits | mant) << (exp - subBits)
	width := uint64(1) << (exp - subBits)
	return lo + width/2
}

// Add records one value.
func (h *Hist) Add(v uint64) {
	h.counts[bucketOf(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

// Count is the number of values.
func (h *Hist) Count() uint64 { return h.n }

// Max is the largest value (exact).
func (h *Hist) Max() uint64 { return h.max }

// Quantile returns the value below which a fraction q of the values lie.
func (h *Hist) Quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			if v := bucketMid(b); v < h.max {
				return v
			}
			return h.max
		}
	}
	return h.max
}

// Log2 returns counts per power-of-two bucket of values divided by unit
// (bucket 0 holds [0, 2), bucket i >= 1 holds [2^i, 2^(i+1))), the way
// BCC prints histograms: Log2(1000) buckets nanoseconds as microseconds.
func (h *Hist) Log2(unit uint64) []uint64 {
	if unit == 0 {
		unit = 1
	}
	out := make([]uint64, 64)
	last := -1
	for b, c := range h.counts {
		if c == 0 {
			continue
		}
		i := 0
		if u := bucketMid(b) / unit; u > 1 {
			i = bits.Len64(u) - 1
		}
		out[i] += c
		if i > last {
			last = i
		}
	}
	return out[:last+1]
}
