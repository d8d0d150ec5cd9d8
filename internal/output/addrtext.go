package output

import (
	"encoding/binary"
	"net/netip"
)

// addrText remembers the text of recently written IPv6 addresses. Every line
// carries two addresses, a busy host's lines repeat a few local addresses
// and a working set of peers, and formatting an IPv6 address costs more
// than all the rest of a line (12% of tcplens's CPU in an IPv6 churn
// profile; 190 ns a line in BenchmarkJSONStateIPv6 vs 121 with the cache).
// Direct-mapped: a collision simply formats again.
type addrText struct {
	slots [256]addrSlot
}

type addrSlot struct {
	addr netip.Addr
	n    uint8
	text [48]byte // the longest zone-free address, "ffff:…" (39), fits
}

// append appends a's text (as netip.Addr.AppendTo) to b; nothing for the
// zero Addr.
func (c *addrText) append(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return b
	}
	if a.Is4() || a.Zone() != "" {
		// IPv4 formats faster than a slot is found (108 vs 123 ns a line);
		// zones never come from the kernel.
		return a.AppendTo(b)
	}
	s := &c.slots[addrSlotOf(a)]
	if s.addr != a {
		t := a.AppendTo(s.text[:0])
		if len(t) > len(s.text) { // cannot happen (see text); stay correct
			return append(b, t...)
		}
		s.addr, s.n = a, uint8(len(t))
	}
	return append(b, s.text[:s.n]...)
}

func addrSlotOf(a netip.Addr) uint8 {
	b := a.As16()
	h := binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:])
	return uint8((h * 0x9e3779b97f4a7c15) >> 56)
}
