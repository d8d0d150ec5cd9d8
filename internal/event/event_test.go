package event

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

func TestStateNames(t *testing.T) {
	for _, tc := range []struct {
		s    State
		name string
	}{
		{Established, "ESTABLISHED"}, {SynSent, "SYN_SENT"}, {SynRecv, "SYN_RECV"},
		{FinWait1, "FIN_WAIT1"}, {FinWait2, "FIN_WAIT2"}, {TimeWait, "TIME_WAIT"},
		{Close, "CLOSE"}, {CloseWait, "CLOSE_WAIT"}, {LastAck, "LAST_ACK"},
		{Listen, "LISTEN"}, {Closing, "CLOSING"}, {NewSynRecv, "NEW_SYN_RECV"},
		{0, "STATE_0"}, {200, "STATE_200"},
	} {
		if got := tc.s.String(); got != tc.name {
			t.Errorf("State(%d) = %q, want %q", tc.s, got, tc.name)
		}
		if tc.s != 0 && tc.s < 100 {
			if back, ok := ParseState(tc.name); !ok || back != tc.s {
				t.Errorf("ParseState(%q) = %v, %v", tc.name, back, ok)
			}
		}
	}
	if _, ok := ParseState("BOGUS"); ok {
		t.Error("ParseState accepted BOGUS")
	}
}

func TestAddr(t *testing.T) {
	v4 := [16]uint8{127, 0, 0, 1}
	mapped := [16]uint8{10: 0xff, 11: 0xff, 12: 10, 13: 1, 14: 2, 15: 3}
	v6 := [16]uint8{15: 1}
	for _, tc := range []struct {
		f    Family
		b    [16]uint8
		want string
	}{
		{AFInet, v4, "127.0.0.1"},
		{AFInet6, mapped, "10.1.2.3"}, // IPv4-mapped prints as IPv4
		{AFInet6, v6, "::1"},
		{AFInet6, [16]uint8{}, "::"},
		{AFInet, [16]uint8{}, "0.0.0.0"},
	} {
		if got := Addr(tc.f, &tc.b).String(); got != tc.want {
			t.Errorf("Addr(%v, %v) = %s, want %s", tc.f, tc.b, got, tc.want)
		}
	}
}

func TestFamilyAndKindNames(t *testing.T) {
	if Family(AFInet).String() != "ipv4" || Family(AFInet6).String() != "ipv6" || Family(1).String() != "af1" {
		t.Error("family names")
	}
	if KindState.String() != "state" || Kind(99).String() != "kind(99)" {
		t.Error("kind names")
	}
}

func rawRecord(t testing.TB, k bpfobj.TcplensRecord) []byte {
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, &k); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecode(t *testing.T) {
	k := bpfobj.TcplensRecord{
		TsNs: 2000, Cookie: 42, StateSinceNs: 1500, OwnerTgid: 7, CurrentTgid: 9,
		Sport: 5555, Dport: 80, Family: AFInet6, Kind: uint8(KindState),
		OldState: uint8(SynSent), NewState: uint8(Established),
	}
	k.Saddr = netip.MustParseAddr("::1").As16()
	k.Daddr = netip.MustParseAddr("::ffff:192.0.2.1").As16()
	copy((*[16]byte)(unsafe.Pointer(&k.Comm))[:], "curl")
	var r Record
	var cc CommCache
	if err := Decode(rawRecord(t, k), &r, &cc); err != nil {
		t.Fatal(err)
	}
	if r.Cookie != 42 || r.Owner != 7 || r.Current != 9 || r.Comm != "curl" || r.SPort != 5555 || r.DPort != 80 ||
		r.SAddr.String() != "::1" || r.DAddr.String() != "192.0.2.1" || r.Old != SynSent || r.New != Established {
		t.Fatalf("decoded %+v", r)
	}
	if d, ok := r.Dwell(); !ok || d != 500 {
		t.Errorf("dwell = %d, %v", d, ok)
	}
	r.StateSince = 0
	if _, ok := r.Dwell(); ok {
		t.Error("dwell known without a start")
	}
	if err := Decode(make([]byte, RecordSize-1), &r, &cc); !errors.Is(err, ErrShortRecord) {
		t.Errorf("short record: %v", err)
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	k := bpfobj.TcplensRecord{Kind: uint8(KindState), Family: AFInet}
	copy((*[16]byte)(unsafe.Pointer(&k.Comm))[:], "nginx")
	raw := rawRecord(t, k)
	var r Record
	var cc CommCache
	Decode(raw, &r, &cc)
	if n := testing.AllocsPerRun(100, func() { Decode(raw, &r, &cc) }); n != 0 {
		t.Errorf("Decode allocates %v times per record", n)
	}
}

func TestDecodeSeeds(t *testing.T) {
	var buf bytes.Buffer
	for i := 0; i < 3; i++ {
		s := bpfobj.TcplensSeed{Cookie: uint64(i + 1), Tgid: 100, Family: AFInet, Sport: 22, State: uint8(Listen)}
		binary.Write(&buf, binary.NativeEndian, &s)
	}
	seeds, err := DecodeSeeds(buf.Bytes())
	if err != nil || len(seeds) != 3 || seeds[2].Cookie != 3 || seeds[0].State != Listen || seeds[1].SAddr.String() != "0.0.0.0" {
		t.Fatalf("seeds %+v, %v", seeds, err)
	}
	if _, err := DecodeSeeds(buf.Bytes()[:SeedSize+1]); err == nil {
		t.Error("ragged scan output accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(rawRecord(f, bpfobj.TcplensRecord{Kind: 1, Family: AFInet}))
	f.Add(rawRecord(f, bpfobj.TcplensRecord{Kind: 1, Family: AFInet6, OldState: 255}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r Record
		var cc CommCache
		if err := Decode(raw, &r, &cc); err != nil {
			return
		}
		_ = r.Old.String() + r.New.String() + r.Family.String() + r.SAddr.String() + r.DAddr.String() + r.Kind.String()
		r.Dwell()
	})
}
