package socktable

import "github.com/tcplens/tcplens/internal/event"

// cwSuspect is a socket an owner re-scan showed in CLOSE_WAIT while its
// records still put it in another state.
type cwSuspect struct {
	state  event.State // what the records said
	since  uint64      // and since when
	seenAt uint64      // the scan that first showed CLOSE_WAIT
}

// ReconcileCloseWait compares an owner re-scan of the kernel's file tables
// with the table. scanAt is the kernel's monotonic time just before the
// scan began.
//
// A socket the kernel shows in CLOSE_WAIT while its records put it in
// another state has missed its ->CLOSE_WAIT record: the ring buffer was
// full (counted as lost), or the kernel skipped the program (counted as
// missed). Of all missed transitions this one matters: a socket stuck in
// CLOSE_WAIT sends no further record, so tcplens would never report it.
// A single scan can also catch a transition whose record is still queued,
// so a socket is reconciled only when two consecutive scans show it and no
// record about it came in between. The returned records are
// ->CLOSE_WAIT transitions marked inferred, timed at the first scan that
// showed CLOSE_WAIT (the socket was in it at least since then); the
// caller applies them like records from the kernel.
func (t *Table) ReconcileCloseWait(seeds []event.Seed, scanAt uint64) []event.Record {
	prev := t.cwSuspects
	t.cwSuspects = nil
	var out []event.Record
	var seen map[uint64]bool // a socket has one seed per holder
	for i := range seeds {
		s := &seeds[i]
		if s.State != event.CloseWait || seen[s.Cookie] {
			continue
		}
		e, ok := t.socks[s.Cookie]
		if !ok || e.State == event.CloseWait || e.Since >= scanAt {
			continue
		}
		if seen == nil {
			seen = make(map[uint64]bool)
		}
		seen[s.Cookie] = true
		p, was := prev[s.Cookie]
		if !was || p.state != e.State || p.since != e.Since {
			if t.cwSuspects == nil {
				t.cwSuspects = make(map[uint64]cwSuspect)
			}
			t.cwSuspects[s.Cookie] = cwSuspect{state: e.State, since: e.Since, seenAt: scanAt}
			continue
		}
		r := s.Record()
		r.TS, r.FD, r.Owner, r.Comm = p.seenAt, -1, e.Owner, e.Comm
		r.Old, r.SockFlags = e.State, event.FlagInferred
		out = append(out, r)
	}
	return out
}
