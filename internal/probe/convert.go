package probe

import (
	"net/netip"

	"github.com/tcplens/tcplens/internal/event"
)

func addrBytes(a netip.Addr, f event.Family) [16]uint8 {
	var out [16]uint8
	if !a.IsValid() {
		return out
	}
	if f == event.AFInet {
		b := a.As4()
		copy(out[:], b[:])
		return out
	}
	return a.As16()
}

func commBytes(s string) [16]int8 {
	var out [16]int8
	for i := 0; i < len(s) && i < len(out)-1; i++ {
		out[i] = int8(s[i])
	}
	return out
}
