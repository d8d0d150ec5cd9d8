package lifecycle

import (
	"net/netip"
	"testing"

	"github.com/tcplens/tcplens/internal/event"
)

func TestPackedRecordRoundTrip(t *testing.T) {
	var comms commTable
	for _, r := range []event.Record{
		{Kind: event.KindTWStart, TS: 1, Cookie: 2, StateSince: 3, OpenNS: 4, FD: -1, Netns: 5, SkErr: 6, CgroupID: 7,
			Owner: 8, Current: 9, Comm: "nginx", Family: event.AFInet, SAddr: netip.MustParseAddr("127.0.0.1"),
			DAddr: netip.MustParseAddr("10.1.2.3"), SPort: 80, DPort: 5555, Old: event.FinWait2, New: event.TimeWait, SockFlags: 4},
		{Kind: event.KindTWExpire, Comm: "curl", Family: event.AFInet6, SAddr: netip.MustParseAddr("::1"),
			DAddr: netip.MustParseAddr("::ffff:10.0.0.1"), SPort: 1, DPort: 2},
		{Comm: "nginx", FD: 3, DAddr: netip.MustParseAddr("fe80::1")}, // no source address
		{},
	} {
		p := comms.pack(&r)
		if got := comms.unpack(&p); got != r {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
	if len(comms.names) != 3 { // "nginx", "curl", ""
		t.Errorf("interned %q", comms.names)
	}
}
