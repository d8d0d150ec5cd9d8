// Package event decodes the kernel's ring-buffer records into Go values and
// names their parts (TCP states, address families). It is pure: no kernel
// access, so everything here is tested without root.
package event

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// Kind says what a record describes (bpf/tcplens.h enum record_kind).
type Kind uint8

const (
	KindState  = Kind(bpfobj.TcplensRecordKindRECORD_STATE)
	KindAccept = Kind(bpfobj.TcplensRecordKindRECORD_ACCEPT)
	KindExit   = Kind(bpfobj.TcplensRecordKindRECORD_EXIT)
	// TIME_WAIT, seen through the timewait socket's timer.
	KindTWStart  = Kind(bpfobj.TcplensRecordKindRECORD_TW_START)
	KindTWCancel = Kind(bpfobj.TcplensRecordKindRECORD_TW_CANCEL)
	KindTWRearm  = Kind(bpfobj.TcplensRecordKindRECORD_TW_REARM)
	KindTWExpire = Kind(bpfobj.TcplensRecordKindRECORD_TW_EXPIRE)
	KindResetRx  = Kind(bpfobj.TcplensRecordKindRECORD_RESET_RX)
	KindResetTx  = Kind(bpfobj.TcplensRecordKindRECORD_RESET_TX)
)

func (k Kind) String() string {
	switch k {
	case KindState:
		return "state"
	case KindAccept:
		return "accept"
	case KindExit:
		return "exit"
	case KindTWStart:
		return "tw_start"
	case KindTWCancel:
		return "tw_cancel"
	case KindTWRearm:
		return "tw_rearm"
	case KindTWExpire:
		return "tw_expire"
	case KindResetRx:
		return "reset_rx"
	case KindResetTx:
		return "reset_tx"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// FlagInferred marks a ->CLOSE record inferred from the socket's
// destruction because the kernel skipped the real transition.
const FlagInferred = uint8(bpfobj.TcplensSockFlagSOCK_F_INFERRED)

// Address families as the kernel numbers them.
const (
	AFInet  = 2
	AFInet6 = 10
)

// Family is a socket's address family.
type Family uint16

func (f Family) String() string {
	switch f {
	case AFInet:
		return "ipv4"
	case AFInet6:
		return "ipv6"
	}
	return fmt.Sprintf("af%d", uint16(f))
}

// Record is one decoded ring-buffer record.
type Record struct {
	Kind       Kind
	TS         uint64 // CLOCK_MONOTONIC ns of the kernel event
	Cookie     uint64 // socket identity for its whole life
	StateSince uint64 // when the socket entered Old; 0 = unknown
	OpenNS     uint64 // handshake start (SYN sent or received); 0 = unknown
	FD         int32  // KindAccept: the accepted descriptor; else -1
	Netns      uint32 // network namespace inode
	SkErr      uint8  // the socket\'s pending error number
	CgroupID   uint64
	Owner      uint32 // owning process (tgid); 0 = unknown
	Current    uint32 // task running at the event (diagnostic only)
	Comm       string // owner's command (or the exiting process's)
	Family     Family
	SAddr      netip.Addr
	DAddr      netip.Addr
	SPort      uint16
	DPort      uint16
	Old, New   State
	SockFlags  uint8
}

// Dwell is the time spent in the old state, when known.
func (r *Record) Dwell() (uint64, bool) {
	if r.StateSince == 0 || r.StateSince > r.TS {
		return 0, false
	}
	return r.TS - r.StateSince, true
}

// RecordSize is the exact size of a kernel record.
const RecordSize = int(unsafe.Sizeof(bpfobj.TcplensRecord{}))

// ErrShortRecord reports a ring-buffer sample of the wrong size.
var ErrShortRecord = errors.New("record has the wrong size")

// Decode fills out from one raw ring-buffer sample. It does not allocate
// unless the command name changed (see CommCache).
func Decode(raw []byte, out *Record, comms *CommCache) error {
	if len(raw) < RecordSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrShortRecord, len(raw), RecordSize)
	}
	k := (*bpfobj.TcplensRecord)(unsafe.Pointer(&raw[0]))
	out.Kind = Kind(k.Kind)
	out.TS = k.TsNs
	out.Cookie = k.Cookie
	out.StateSince = k.StateSinceNs
	out.OpenNS = k.OpenNs
	out.FD = k.Fd
	out.Netns = k.Netns
	out.SkErr = k.SkErr
	out.CgroupID = k.CgroupId
	out.Owner = k.OwnerTgid
	out.Current = k.CurrentTgid
	out.Comm = comms.String(&k.Comm)
	out.Family = Family(k.Family)
	out.SAddr = Addr(out.Family, &k.Saddr)
	out.DAddr = Addr(out.Family, &k.Daddr)
	out.SPort = k.Sport
	out.DPort = k.Dport
	out.Old = State(k.OldState)
	out.New = State(k.NewState)
	out.SockFlags = k.Flags
	return nil
}

// Addr turns the kernel's 16 address bytes into an address. IPv4-mapped
// IPv6 addresses (dual-stack sockets talking IPv4) become plain IPv4.
func Addr(f Family, b *[16]uint8) netip.Addr {
	if f == AFInet {
		return netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
	}
	return netip.AddrFrom16(*b).Unmap()
}

// CommString converts a NUL-padded kernel command name.
func CommString(c *[16]int8) string {
	b := (*[16]byte)(unsafe.Pointer(c))
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return string(b[:n])
}

// CommCache turns kernel command names into strings without allocating for
// names it has seen recently (the hot path sees the same few names).
type CommCache struct {
	slots [256]struct {
		raw [16]int8
		s   string
	}
}

// String returns the string for c, allocating only on a cache miss.
// A nil cache always allocates.
func (cc *CommCache) String(c *[16]int8) string {
	if cc == nil {
		return CommString(c)
	}
	var h uint32 = 2166136261
	for _, v := range c {
		if v == 0 {
			break
		}
		h = (h ^ uint32(uint8(v))) * 16777619
	}
	slot := &cc.slots[h%uint32(len(cc.slots))]
	if slot.raw == *c && (slot.s != "" || c[0] == 0) {
		return slot.s
	}
	slot.raw = *c
	slot.s = CommString(c)
	return slot.s
}

// Seed is one socket descriptor found by the start-up scan of the kernel's
// file tables: which process holds which TCP socket, in which state.
type Seed struct {
	Cookie uint64
	Cgroup uint64
	Netns  uint32
	Tgid   uint32
	FD     uint32
	Comm   string
	Family Family
	SAddr  netip.Addr
	DAddr  netip.Addr
	SPort  uint16
	DPort  uint16
	State  State
}

// Record describes the socket as the scan found it: a state record whose
// old and new states are both its state, owned by the holder.
func (s *Seed) Record() Record {
	return Record{Kind: KindState, Cookie: s.Cookie, Owner: s.Tgid, Comm: s.Comm, Family: s.Family,
		SAddr: s.SAddr, DAddr: s.DAddr, SPort: s.SPort, DPort: s.DPort, Old: s.State, New: s.State, FD: int32(s.FD), Netns: s.Netns}
}

// SeedSize is the exact size of one scan record.
const SeedSize = int(unsafe.Sizeof(bpfobj.TcplensSeed{}))

// DecodeSeeds splits the iterator's output into seeds.
func DecodeSeeds(raw []byte) ([]Seed, error) {
	if len(raw)%SeedSize != 0 {
		return nil, fmt.Errorf("%w: scan output of %d bytes is not a multiple of %d", ErrShortRecord, len(raw), SeedSize)
	}
	out := make([]Seed, 0, len(raw)/SeedSize)
	for off := 0; off < len(raw); off += SeedSize {
		k := (*bpfobj.TcplensSeed)(unsafe.Pointer(&raw[off]))
		f := Family(k.Family)
		out = append(out, Seed{
			Cookie: k.Cookie, Cgroup: k.CgroupId, Netns: k.Netns, Tgid: k.Tgid, FD: k.Fd, Comm: CommString(&k.Comm),
			Family: f, SAddr: Addr(f, &k.Saddr), DAddr: Addr(f, &k.Daddr),
			SPort: k.Sport, DPort: k.Dport, State: State(k.State),
		})
	}
	return out, nil
}
