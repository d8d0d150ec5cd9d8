package socktable

import (
	"testing"

	"github.com/tcplens/tcplens/internal/event"
)

func TestTable(t *testing.T) {
	tb := New()
	tb.Apply(&event.Record{Kind: event.KindState, Cookie: 1, Owner: 10, Comm: "srv", Old: event.Listen, New: event.SynRecv, TS: 5})
	tb.Apply(&event.Record{Kind: event.KindAccept, Cookie: 1, Owner: 11, Comm: "worker"})
	if e, ok := tb.Get(1); !ok || e.Owner != 11 || e.Comm != "worker" || e.State != event.SynRecv || e.Since != 5 {
		t.Fatalf("after accept: %+v %v", e, ok)
	}
	if tb.Owns(10) || !tb.Owns(11) {
		t.Error("ownership counts did not follow accept")
	}
	tb.Seed(event.Seed{Cookie: 1, Tgid: 99})
	if e, _ := tb.Get(1); e.Owner != 11 {
		t.Error("seed overrode a known socket")
	}
	tb.Seed(event.Seed{Cookie: 2, Tgid: 12, State: event.CloseWait})
	if e, ok := tb.Get(2); !ok || e.Owner != 12 || !tb.Owns(12) {
		t.Errorf("seeded socket: %+v %v", e, ok)
	}
	tb.SetOwner(2, 13, "child", 5)
	if tb.Owns(12) || !tb.Owns(13) {
		t.Error("SetOwner did not move ownership")
	}
	tb.Apply(&event.Record{Kind: event.KindState, Cookie: 1, Owner: 11, Old: event.LastAck, New: event.Close})
	if _, ok := tb.Get(1); ok || tb.Owns(11) || tb.Len() != 1 {
		t.Error("CLOSE did not remove the socket")
	}
}

// Ownership counts survive many transitions of the same owner's sockets,
// an owner change mid-life, and drop to nothing when the last one closes.
func TestOwnerCounts(t *testing.T) {
	tb := New()
	st := func(cookie uint64, owner uint32, old, new event.State) {
		tb.Apply(&event.Record{Kind: event.KindState, Cookie: cookie, Owner: owner, Old: old, New: new})
	}
	for c := uint64(1); c <= 2; c++ {
		st(c, 20, event.Close, event.SynSent)
		st(c, 20, event.SynSent, event.Established)
	}
	st(2, 21, event.Established, event.FinWait1) // learnt at close(): another holder
	st(1, 20, event.Established, event.FinWait1)
	st(1, 20, event.FinWait1, event.FinWait2)
	if !tb.Owns(20) || !tb.Owns(21) {
		t.Fatal("live sockets' owners not counted")
	}
	st(1, 20, event.FinWait2, event.Close)
	if tb.Owns(20) || !tb.Owns(21) {
		t.Error("owner 20 closed its only socket and still counts")
	}
	st(2, 21, event.FinWait1, event.Close)
	if tb.Owns(21) || tb.Len() != 0 {
		t.Error("table not empty after every socket closed")
	}
}
