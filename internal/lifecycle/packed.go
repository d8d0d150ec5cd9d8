package lifecycle

import (
	"net/netip"

	"github.com/tcplens/tcplens/internal/event"
)

// packedRecord is an event.Record without pointers (the command is an
// index into a commTable, addresses are bytes), for the records the
// analyzer keeps by the hundred thousand: every live TIME_WAIT. A map of
// pointer-free values is never scanned by the garbage collector, which
// otherwise walks every one of them at each cycle of a busy host.
type packedRecord struct {
	ts, cookie, stateSince, openNS, cgroupID uint64
	fd                                       int32
	netns, owner, current, comm              uint32
	family                                   event.Family
	sport, dport                             uint16
	saddr, daddr                             [16]byte
	kind                                     event.Kind
	skErr, sockFlags                         uint8
	old, new                                 event.State
	addrs                                    uint8 // addrBits of saddr, and of daddr shifted by 2
}

const (
	addrValid = 1 << iota
	addrIs4
)

func addrBits(a netip.Addr) uint8 {
	switch {
	case !a.IsValid():
		return 0
	case a.Is4():
		return addrValid | addrIs4
	}
	return addrValid
}

func addrFrom(b [16]byte, bits uint8) netip.Addr {
	switch {
	case bits&addrValid == 0:
		return netip.Addr{}
	case bits&addrIs4 != 0:
		return netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrFrom16(b)
}

// commTable interns command names: a packedRecord holds an index.
type commTable struct {
	names []string
	index map[string]uint32
}

func (t *commTable) id(name string) uint32 {
	if i, ok := t.index[name]; ok {
		return i
	}
	if t.index == nil {
		t.index = map[string]uint32{}
	}
	t.names = append(t.names, name)
	t.index[name] = uint32(len(t.names) - 1)
	return uint32(len(t.names) - 1)
}

func (t *commTable) pack(r *event.Record) packedRecord {
	// Zones do not occur in kernel addresses: As16 loses nothing else.
	return packedRecord{
		ts: r.TS, cookie: r.Cookie, stateSince: r.StateSince, openNS: r.OpenNS, cgroupID: r.CgroupID,
		fd: r.FD, netns: r.Netns, owner: r.Owner, current: r.Current, comm: t.id(r.Comm),
		family: r.Family, sport: r.SPort, dport: r.DPort, saddr: r.SAddr.As16(), daddr: r.DAddr.As16(),
		kind: r.Kind, skErr: r.SkErr, sockFlags: r.SockFlags, old: r.Old, new: r.New,
		addrs: addrBits(r.SAddr) | addrBits(r.DAddr)<<2,
	}
}

func (t *commTable) unpack(p *packedRecord) event.Record {
	return event.Record{
		Kind: p.kind, TS: p.ts, Cookie: p.cookie, StateSince: p.stateSince, OpenNS: p.openNS,
		FD: p.fd, Netns: p.netns, SkErr: p.skErr, CgroupID: p.cgroupID, Owner: p.owner, Current: p.current,
		Comm: t.names[p.comm], Family: p.family, SAddr: addrFrom(p.saddr, p.addrs), DAddr: addrFrom(p.daddr, p.addrs>>2),
		SPort: p.sport, DPort: p.dport, Old: p.old, New: p.new, SockFlags: p.sockFlags,
	}
}
