package socktable

import (
	"net/netip"
	"testing"

	"github.com/tcplens/tcplens/internal/event"
)

func TestReconcileCloseWait(t *testing.T) {
	addr := netip.MustParseAddr("127.0.0.1")
	seed := func(cookie uint64, st event.State) event.Seed {
		return event.Seed{Cookie: cookie, Tgid: 7, Comm: "srv", State: st, Family: event.AFInet, SAddr: addr, DAddr: addr, SPort: 80, DPort: 4000, Netns: 9}
	}
	tb := New()
	est := func(cookie, ts uint64) {
		tb.Apply(&event.Record{Kind: event.KindState, Cookie: cookie, Owner: 7, Comm: "srv", Old: event.SynRecv, New: event.Established, TS: ts})
	}
	est(1, 100) // its ->CLOSE_WAIT will be missed
	est(2, 100) // its ->CLOSE_WAIT record is only late
	est(3, 100) // the kernel shows it ESTABLISHED: nothing missed
	est(4, 250) // a record after the scan began: the scan may predate it

	scan1 := []event.Seed{seed(1, event.CloseWait), seed(1, event.CloseWait), seed(2, event.CloseWait),
		seed(3, event.Established), seed(4, event.CloseWait), seed(5, event.CloseWait)}
	if got := tb.ReconcileCloseWait(scan1, 200); len(got) != 0 {
		t.Fatalf("one scan is not enough: %+v", got)
	}
	// The late record arrives between the scans.
	tb.Apply(&event.Record{Kind: event.KindState, Cookie: 2, Owner: 7, Old: event.Established, New: event.CloseWait, TS: 150})
	got := tb.ReconcileCloseWait(scan1, 300)
	if len(got) != 1 {
		t.Fatalf("want one inferred record (socket 1), got %+v", got)
	}
	r := got[0]
	if r.Cookie != 1 || r.Old != event.Established || r.New != event.CloseWait || r.TS != 200 || r.SockFlags != event.FlagInferred ||
		r.Owner != 7 || r.Comm != "srv" || r.SPort != 80 || r.DPort != 4000 || r.SAddr != addr || r.Netns != 9 || r.StateSince != 0 || r.FD != -1 {
		t.Errorf("inferred record: %+v", r)
	}
	tb.Apply(&r)
	if e, _ := tb.Get(1); e.State != event.CloseWait || e.Since != 200 {
		t.Errorf("after applying: %+v", e)
	}
	// Socket 4 was suspected at 300 (its record predates that scan); a
	// record about it in between clears the suspicion.
	tb.Apply(&event.Record{Kind: event.KindState, Cookie: 4, Owner: 7, Old: event.Established, New: event.FinWait1, TS: 350})
	if got := tb.ReconcileCloseWait([]event.Seed{seed(1, event.CloseWait), seed(4, event.CloseWait)}, 400); len(got) != 0 {
		t.Errorf("already reconciled or changed since: %+v", got)
	}
	// A suspicion not confirmed by the next scan is forgotten.
	est(6, 500)
	tb.ReconcileCloseWait([]event.Seed{seed(6, event.CloseWait)}, 600)
	tb.ReconcileCloseWait(nil, 700)
	if got := tb.ReconcileCloseWait([]event.Seed{seed(6, event.CloseWait)}, 800); len(got) != 0 {
		t.Errorf("suspicion survived a scan without it: %+v", got)
	}
	if got := tb.ReconcileCloseWait([]event.Seed{seed(6, event.CloseWait)}, 900); len(got) != 1 || got[0].TS != 800 {
		t.Errorf("two scans in a row again: %+v", got)
	}
}
