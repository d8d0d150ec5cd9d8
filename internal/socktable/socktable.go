// Package socktable is user space's view of live sockets: who owns each one
// and which state it is in since when. It is fed by decoded records and the
// start-up scan, and never reads /proc or the kernel itself.
package socktable

import "github.com/tcplens/tcplens/internal/event"

// Entry is what is known about one live socket.
type Entry struct {
	Owner uint32
	Comm  string
	State event.State
	Since uint64 // monotonic ns when State began; 0 = before tracing
	FD    int32  // the owner's descriptor for it; -1 = unknown
}

// Table maps socket cookies to entries. Entries are removed when their
// socket reaches CLOSE, so its size follows the number of live sockets.
type Table struct {
	socks      map[uint64]Entry
	byOwner    map[uint32]int       // live sockets per owner
	cwSuspects map[uint64]cwSuspect // see ReconcileCloseWait
}

// New returns an empty table.
func New() *Table {
	return &Table{socks: make(map[uint64]Entry), byOwner: make(map[uint32]int)}
}

// Apply updates the table from one record.
func (t *Table) Apply(r *event.Record) {
	switch r.Kind {
	case event.KindState:
		if r.New == event.Close {
			t.remove(r.Cookie)
			return
		}
		old, had := t.socks[r.Cookie]
		fd := int32(-1)
		if had && old.Owner == r.Owner {
			fd = old.FD
		}
		t.put(r.Cookie, Entry{Owner: r.Owner, Comm: r.Comm, State: r.New, Since: r.TS, FD: fd}, old, had)
	case event.KindAccept:
		if e, ok := t.socks[r.Cookie]; ok {
			e.Owner, e.Comm, e.FD = r.Owner, r.Comm, r.FD
			t.set(r.Cookie, e)
		}
	}
}

// Seed adds a socket found by a scan of the kernel's tables, unless a
// record has already told more about it.
func (t *Table) Seed(s event.Seed) {
	if _, ok := t.socks[s.Cookie]; ok {
		return
	}
	t.set(s.Cookie, Entry{Owner: s.Tgid, Comm: s.Comm, State: s.State, FD: int32(s.FD)})
}

// SetOwner names the owner of a live socket and its descriptor there.
func (t *Table) SetOwner(cookie uint64, owner uint32, comm string, fd int32) {
	if e, ok := t.socks[cookie]; ok {
		e.Owner, e.Comm, e.FD = owner, comm, fd
		t.set(cookie, e)
	}
}

// Get returns the entry of a live socket.
func (t *Table) Get(cookie uint64) (Entry, bool) {
	e, ok := t.socks[cookie]
	return e, ok
}

// Owns reports whether the process owns any live socket.
func (t *Table) Owns(tgid uint32) bool { return t.byOwner[tgid] > 0 }

// Len is the number of live sockets.
func (t *Table) Len() int { return len(t.socks) }

func (t *Table) set(cookie uint64, e Entry) {
	old, had := t.socks[cookie]
	t.put(cookie, e, old, had)
}

// put stores e over old (had: there was one). The per-owner count changes
// only with the owner: most records are a state change of the same owner.
func (t *Table) put(cookie uint64, e, old Entry, had bool) {
	t.socks[cookie] = e
	if had && old.Owner == e.Owner {
		return
	}
	if had {
		t.unown(old.Owner)
	}
	if e.Owner != 0 {
		t.byOwner[e.Owner]++
	}
}

func (t *Table) remove(cookie uint64) {
	if old, ok := t.socks[cookie]; ok {
		t.unown(old.Owner)
		delete(t.socks, cookie)
	}
}

func (t *Table) unown(owner uint32) {
	if owner == 0 {
		return
	}
	if t.byOwner[owner]--; t.byOwner[owner] <= 0 {
		delete(t.byOwner, owner)
	}
}
