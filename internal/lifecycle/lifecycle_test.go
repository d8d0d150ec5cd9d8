package lifecycle

import (
	"math"
	"net/netip"
	"testing"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/socktable"
)

type collect struct {
	hs  []Handshake
	acc []Accept
	tw  []TimeWait
	cw  []CloseWait
}

func (c *collect) Handshake(h *Handshake) error { c.hs = append(c.hs, *h); return nil }
func (c *collect) Accept(a *Accept) error       { c.acc = append(c.acc, *a); return nil }
func (c *collect) TimeWait(t *TimeWait) error   { c.tw = append(c.tw, *t); return nil }
func (c *collect) CloseWait(w *CloseWait) error { c.cw = append(c.cw, *w); return nil }

type owners map[uint64]socktable.Entry

func (o owners) Get(c uint64) (socktable.Entry, bool) { e, ok := o[c]; return e, ok }

var (
	lo  = netip.MustParseAddr("127.0.0.1")
	sec = uint64(1e9)
)

func st(cookie uint64, ts uint64, old, new event.State) *event.Record {
	return &event.Record{Kind: event.KindState, Cookie: cookie, TS: ts, Old: old, New: new, Owner: 10, Comm: "app",
		Family: event.AFInet, SAddr: lo, DAddr: lo, SPort: 1000, DPort: 80}
}

func TestHist(t *testing.T) {
	var h Hist
	for v := uint64(1); v <= 1000; v++ {
		h.Add(v * 1000)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		got, want := float64(h.Quantile(q)), q*1e6
		if math.Abs(got-want)/want > 0.07 {
			t.Errorf("q%.2f = %.0f, want %.0f ±7%%", q, got, want)
		}
	}
	if h.Max() != 1e6 || h.Count() != 1000 || h.Quantile(1) > 1e6 {
		t.Errorf("max %d count %d", h.Max(), h.Count())
	}
	var empty Hist
	if empty.Quantile(0.5) != 0 {
		t.Error("empty quantile")
	}
	h.Add(1 << 60) // beyond the range: clamped, max exact
	if h.Max() != 1<<60 {
		t.Error("max lost")
	}
	l2 := h.Log2(1000)
	var sum uint64
	for _, c := range l2 {
		sum += c
	}
	if sum != h.Count() {
		t.Errorf("log2 buckets hold %d of %d", sum, h.Count())
	}
}

func TestHandshakes(t *testing.T) {
	c := &collect{}
	a := New(Config{}, c, owners{})
	r := st(1, 5*sec, event.SynSent, event.Established)
	r.OpenNS = 4 * sec
	a.Record(r)
	r = st(2, 3*sec, event.SynSent, event.Close)
	r.OpenNS, r.SkErr = 3*sec-1000, 111
	a.Record(r)
	r = st(3, 9*sec, event.SynSent, event.Close)
	r.OpenNS, r.SkErr = 8*sec, 0 // the application gave up
	a.Record(r)
	r = st(4, 2*sec, event.SynRecv, event.Established)
	r.OpenNS = 2*sec - 50000
	a.Record(r)
	a.Record(&event.Record{Kind: event.KindAccept, Cookie: 4, TS: 2*sec + 7000, Owner: 11, FD: 5})
	r = st(5, 2*sec, event.SynRecv, event.Close)
	r.SkErr = 104
	a.Record(r)

	want := []struct {
		role, result string
		lat          uint64
		known        bool
	}{{"active", "ok", sec, true}, {"active", "refused", 1000, true}, {"active", "timeout", sec, true},
		{"passive", "ok", 50000, true}, {"passive", "reset", 0, false}}
	if len(c.hs) != len(want) {
		t.Fatalf("%d handshakes", len(c.hs))
	}
	for i, w := range want {
		h := c.hs[i]
		if h.Role != w.role || h.Result != w.result || h.LatencyNs != w.lat || h.LatencyKnown != w.known {
			t.Errorf("handshake %d: %+v, want %+v", i, h, w)
		}
	}
	if len(c.acc) != 1 || c.acc[0].WaitNs != 7000 || c.acc[0].Conn.Owner != 11 {
		t.Errorf("accepts %+v", c.acc)
	}
	p := a.Summaries(10 * sec)[0]
	if p.Active != 3 || p.Passive != 2 || p.Refused != 1 || p.Timeout != 1 || p.Reset != 1 || p.Handshake.Count() != 2 {
		t.Errorf("summary %+v", p.Proc)
	}
}

func tw(kind event.Kind, cookie, ts, start uint64, sport uint16) *event.Record {
	return &event.Record{Kind: kind, Cookie: cookie, TS: ts, StateSince: start, Owner: 10, Comm: "app",
		Family: event.AFInet, SAddr: lo, DAddr: lo, SPort: sport, DPort: 80, New: event.TimeWait}
}

func TestTimeWait(t *testing.T) {
	c := &collect{}
	a := New(Config{ReuseWindow: sec}, c, owners{})
	// 1: expires naturally after 60 s.
	a.Record(tw(event.KindTWStart, 1, 10*sec, 10*sec, 1001))
	// 2: cancelled and re-armed at once (substate change): lives on.
	a.Record(tw(event.KindTWStart, 2, 10*sec, 10*sec, 1002))
	a.Record(tw(event.KindTWCancel, 2, 11*sec, 10*sec, 1002))
	a.Record(tw(event.KindTWRearm, 2, 11*sec+100, 10*sec, 1002))
	// 3: cancelled, then its 4-tuple reappears: reused.
	a.Record(tw(event.KindTWStart, 3, 10*sec, 10*sec, 1003))
	a.Record(tw(event.KindTWCancel, 3, 12*sec, 10*sec, 1003))
	n := st(9, 12*sec+500, event.Close, event.SynSent)
	n.SPort = 1003
	a.Record(n)
	// 4: cancelled, nothing follows: killed once the window passes.
	a.Record(tw(event.KindTWStart, 4, 10*sec, 10*sec, 1004))
	a.Record(tw(event.KindTWCancel, 4, 13*sec, 10*sec, 1004))
	if a.TimeWaitNow() != 2 {
		t.Errorf("live TIME_WAIT %d, want 2", a.TimeWaitNow())
	}
	if r := a.TopRemotes(5); len(r) != 1 || r[0].Count != 2 || r[0].Addr != netip.AddrPortFrom(lo, 80) {
		t.Errorf("remotes %+v", r)
	}
	if s := a.Summaries(13 * sec); len(s) != 1 || s[0].Pid != 10 || s[0].TimeWaitNow != 2 {
		t.Errorf("summaries %+v, want pid 10 with 2 live TIME_WAITs", s)
	}
	a.Tick(13*sec + sec/2)
	if len(c.tw) != 1 {
		t.Fatalf("before the window: %+v", c.tw)
	}
	a.Tick(14 * sec)
	a.Record(tw(event.KindTWExpire, 1, 70*sec, 10*sec, 1001))
	want := map[uint64]struct {
		end   string
		dwell uint64
	}{3: {"reused", 2 * sec}, 4: {"killed", 3 * sec}, 1: {"expired", 60 * sec}}
	if len(c.tw) != 3 {
		t.Fatalf("ends %+v", c.tw)
	}
	for _, e := range c.tw {
		w := want[e.Conn.Cookie]
		if e.End != w.end || e.DwellNs != w.dwell || !e.DwellKnown || e.Conn.Owner != 10 {
			t.Errorf("cookie %d: %s after %d, want %s after %d", e.Conn.Cookie, e.End, e.DwellNs, w.end, w.dwell)
		}
	}
	if a.TimeWaitNow() != 1 { // cookie 2
		t.Errorf("live after ends %d", a.TimeWaitNow())
	}
	// A TIME_WAIT that began before tracing: dwell unknown.
	a.Record(tw(event.KindTWExpire, 77, 80*sec, 0, 1077))
	if last := c.tw[len(c.tw)-1]; last.DwellKnown || last.End != "expired" {
		t.Errorf("unknown start: %+v", last)
	}
}

func TestCloseWait(t *testing.T) {
	c := &collect{}
	own := owners{1: {Owner: 20, Comm: "child", FD: 7}}
	a := New(Config{CloseWaitAfter: 30 * sec, CloseWaitRepeat: 60 * sec, Start: 100 * sec}, c, own)
	a.Record(st(1, 100*sec, event.Established, event.CloseWait))
	a.SeedCloseWait(event.Record{Cookie: 2, Owner: 30, Comm: "old", Family: event.AFInet})
	// A ->CLOSE_WAIT whose record was lost, inferred from re-scans and timed
	// at the first scan that showed it: its age is a lower bound too.
	inferred := st(3, 100*sec, event.Established, event.CloseWait)
	inferred.SockFlags, inferred.Owner = event.FlagInferred, 40
	a.Record(inferred)
	if a.CloseWaitDue(129 * sec) {
		t.Error("due before the threshold")
	}
	a.Tick(129 * sec)
	if len(c.cw) != 0 {
		t.Fatal("reported early")
	}
	if !a.CloseWaitDue(130 * sec) {
		t.Error("not due at the threshold")
	}
	a.Tick(130 * sec)
	a.Tick(150 * sec) // within the repeat interval: quiet
	if len(c.cw) != 3 {
		t.Fatalf("reports %+v", c.cw)
	}
	for _, r := range c.cw {
		switch r.Conn.Cookie {
		case 1:
			if r.Conn.Owner != 20 || r.FD != 7 || r.AgeNs != 30*sec || r.AtLeast {
				t.Errorf("stuck report %+v", r)
			}
		case 2:
			if !r.AtLeast || r.AgeNs != 30*sec || r.Conn.Owner != 30 {
				t.Errorf("seeded report %+v", r)
			}
		case 3:
			if !r.AtLeast || r.AgeNs != 30*sec {
				t.Errorf("inferred report %+v", r)
			}
		}
	}
	s := a.Summaries(150 * sec)
	stuck := map[uint32]int{}
	for _, x := range s {
		stuck[x.Pid] = x.CloseWaitStuck
	}
	if stuck[10] != 0 || stuck[20] != 1 || stuck[30] != 1 || stuck[40] != 1 {
		t.Errorf("summaries %+v", s)
	}
	a.Tick(190 * sec)
	if len(c.cw) != 6 {
		t.Errorf("not repeated after the interval: %d reports", len(c.cw))
	}
	a.Record(st(1, 200*sec, event.CloseWait, event.LastAck))
	last := c.cw[len(c.cw)-1]
	if last.Status != "closed" || last.AgeNs != 100*sec {
		t.Errorf("closed report %+v", last)
	}
}

func TestExitedProcessesAreForgotten(t *testing.T) {
	a := New(Config{}, &collect{}, owners{})
	r := st(1, sec, event.SynSent, event.Established)
	a.Record(r)
	a.Record(&event.Record{Kind: event.KindExit, Owner: 10})
	if n := len(a.Summaries(2 * sec)); n != 1 {
		t.Fatalf("%d summaries", n)
	}
	if n := len(a.Summaries(3 * sec)); n != 0 {
		t.Errorf("exited process still summarized: %d", n)
	}
}
