// Package lifecycle turns the stream of socket records into what operators
// act on: handshake latency and failures, TIME_WAIT dwell and pile-ups,
// stuck CLOSE_WAIT sockets, and per-process summaries. It is pure: driven
// by records and a clock, so every analysis is tested without root.
package lifecycle

import "github.com/tcplens/tcplens/internal/event"

// Handshake is one connection attempt's outcome.
type Handshake struct {
	Conn         event.Record // the socket's common fields at the outcome
	Role         string       // "active" (connect) or "passive" (accepted)
	LatencyNs    uint64
	LatencyKnown bool   // false when the SYN's arrival was not seen
	Result       string // ok, refused, timeout, reset
}

// Accept is an accepted connection and how long it waited to be accepted.
type Accept struct {
	Conn   event.Record
	WaitNs uint64 // from ESTABLISHED to accept() returning
}

// TimeWait is the end of one TIME_WAIT.
type TimeWait struct {
	Conn       event.Record // owner as it was when the connection closed
	DwellNs    uint64
	DwellKnown bool   // false for a TIME_WAIT that began before tracing
	End        string // expired, killed, reused
}

// CloseWait reports a socket stuck in CLOSE_WAIT, or its end.
type CloseWait struct {
	Conn    event.Record
	Status  string // stuck, closed
	AgeNs   uint64
	AtLeast bool  // the socket was already in CLOSE_WAIT when tracing began
	FD      int32 // the owner's descriptor, -1 when unknown
}

// Sink receives the analyses' events. The pointers are valid only during
// the call: the analyzer reuses what they point to.
type Sink interface {
	Handshake(*Handshake) error
	Accept(*Accept) error
	TimeWait(*TimeWait) error
	CloseWait(*CloseWait) error
}

// Handshake results.
const (
	ResultOK      = "ok"
	ResultRefused = "refused"
	ResultTimeout = "timeout"
	ResultReset   = "reset"
)

// TIME_WAIT ends.
const (
	EndExpired = "expired"
	EndKilled  = "killed"
	EndReused  = "reused"
)

// errno values the kernel leaves in sk_err.
const (
	errConnReset   = 104
	errTimedOut    = 110
	errConnRefused = 111
)

// resultOf classifies a handshake that ended in CLOSE by the socket error.
// No error means the application closed the socket before the handshake
// completed: its own connect timeout.
func resultOf(skErr uint8) string {
	switch skErr {
	case errConnRefused:
		return ResultRefused
	case errConnReset:
		return ResultReset
	default:
		return ResultTimeout
	}
}
