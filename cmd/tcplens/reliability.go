package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/tcplens/tcplens/internal/ktime"
	"github.com/tcplens/tcplens/internal/privs"
	"github.com/tcplens/tcplens/internal/tracer"
)

// A closed stdout (tcplens | head -1) must be an ordinary stop, not a death
// by SIGPIPE: with SIGPIPE ignored, writes fail with EPIPE, the tracer
// returns, everything is detached and the exit status is 0.
func init() { signal.Ignore(syscall.SIGPIPE) }

// stdoutClosed says whether err means the reader of stdout went away.
func stdoutClosed(err error) bool { return errors.Is(err, syscall.EPIPE) }

// quietStop turns a closed stdout into a normal stop.
func quietStop(err error) error {
	if stdoutClosed(err) {
		return nil
	}
	return err
}

// startError handles a failed start-up: a signal during start-up is a
// normal stop (exit 0, one line, nothing left loaded).
func startError(ctx context.Context, err error, stderr io.Writer) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		fmt.Fprintf(stderr, "tcplens: stopped during start-up; nothing left loaded\n")
		return nil
	}
	return err
}

// lostWriter is implemented by the output writers: a "lost" line.
type lostWriter interface {
	Lost(ts, n uint64) error
}

// reportLosses makes the tracer write a lost line whenever the kernel's
// ring-full counter grows.
func reportLosses(t *tracer.Tracer, out any) {
	lw, ok := out.(lostWriter)
	if !ok {
		return
	}
	t.OnLost(func(n uint64) error { return lw.Lost(ktime.Now(), n) })
}

// printRecords prints the exact record accounting: every record the kernel
// produced was either read or lost (produced = read + lost once drained),
// and the lost lines on stdout add up to "reported".
func printRecords(w io.Writer, t *tracer.Tracer) {
	c, err := t.Counters()
	if err != nil {
		return
	}
	st := t.Stats()
	fmt.Fprintf(w, "tcplens: records produced %d, read %d, lost %d, reported lost %d; ownership re-scans %d, stale socket entries swept %d, missed ->CLOSE_WAIT inferred %d\n",
		c.Produced, st.Records, c.RingFull, t.Reported(), st.Rescans, st.Swept, st.Inferred)
}

// restrictPrivileges gives up, on every thread, the capabilities that
// loading and attaching needed (see privs.Needed for what stays and why).
func restrictPrivileges(stderr io.Writer) {
	if err := privs.Restrict(privs.Needed()); err != nil {
		fmt.Fprintf(stderr, "tcplens: warning: could not drop capabilities: %v\n", err)
	}
}
