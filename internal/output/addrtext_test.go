package output

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// Cached text must be exactly netip's, whatever the order of addresses,
// including addresses that share a slot.
func TestAddrTextMatchesNetip(t *testing.T) {
	addrs := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"),
		netip.MustParseAddr("::ffff:127.0.0.1"), netip.MustParseAddr("10.1.2.3"),
		netip.MustParseAddr("fd00:1:2:3:4:5:6:7"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
		netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::"),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for len(addrs) < 2000 { // 2000 addresses in 256 slots: many collisions
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		a := netip.AddrFrom16(b)
		if rng.IntN(2) == 0 {
			a = netip.AddrFrom4([4]byte(b[:4]))
		}
		addrs = append(addrs, a)
	}
	slotOf := map[uint8]netip.Addr{}
	collided := false
	for _, a := range addrs {
		if a.Is4() {
			continue // formatted directly
		}
		if o, ok := slotOf[addrSlotOf(a)]; ok && o != a {
			collided = true
		}
		slotOf[addrSlotOf(a)] = a
	}
	if !collided {
		t.Fatal("no two addresses share a slot: the test does not cover collisions")
	}
	var c addrText
	for i := 0; i < 20000; i++ {
		a := addrs[rng.IntN(len(addrs))]
		if i%3 == 0 {
			a = addrs[i%8] // and a few hot ones, as on a real host
		}
		got := string(c.append([]byte("x"), a))
		if want := "x" + a.String(); got != want {
			t.Fatalf("append(%v) = %q, want %q", a, got, want)
		}
	}
	if got := c.append(nil, netip.Addr{}); len(got) != 0 {
		t.Errorf("zero Addr: %q, want nothing", got)
	}
}
