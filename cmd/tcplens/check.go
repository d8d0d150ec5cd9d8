package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/tracer"
)

// runCheck is --check: load and attach everything, run the start-up scan,
// report what works on this kernel, detach and exit (0 unless a required
// hook fails).
func runCheck(ctx context.Context, opts options, stdout, stderr io.Writer) error {
	t, err := tracer.OpenContext(ctx, opts.probe)
	rep := checkReport{Kernel: kernelRelease()}
	if err != nil {
		if ctx.Err() != nil {
			return startError(ctx, err, stderr)
		}
		rep.Failure = err.Error()
		writeCheck(stdout, rep)
		return fmt.Errorf("check failed: %w", err)
	}
	defer t.Close()
	rep.Hooks = t.Hooks()
	rep.Warnings = t.Warnings()
	rep.Seeded = t.Stats().Seeded
	rep.ScanOK = true
	writeCheck(stdout, rep)
	return nil
}

type checkReport struct {
	Kernel   string
	Hooks    []probe.Hook
	Warnings []string
	Seeded   int
	ScanOK   bool
	Failure  string // start-up failed: a required part does not work
}

// writeCheck prints the report: one line per hook, then the verdict.
func writeCheck(w io.Writer, r checkReport) {
	fmt.Fprintf(w, "tcplens --check on Linux %s\n", r.Kernel)
	if r.Failure != "" {
		fmt.Fprintf(w, "  %-9s %s\nresult: FAILED: tcplens cannot run on this kernel\n", "FAILED", r.Failure)
		return
	}
	degraded := 0
	used := map[string]bool{}
	for _, h := range r.Hooks {
		state, note := "ok", ""
		if h.Required {
			note = " (required)"
		}
		if h.Off {
			state, note = "off", note+": "+h.Reason
		} else if !h.Attached {
			state, note = "degraded", note+": "+h.Reason
			degraded++
			used[h.Reason] = true
		}
		fmt.Fprintf(w, "  %-9s %-40s %s%s\n", state, h.Section, h.Program, note)
	}
	if r.ScanOK {
		fmt.Fprintf(w, "  %-9s %-40s start-up scan found %d existing sockets\n", "ok", "iter/task_file", r.Seeded)
	}
	for _, warn := range r.Warnings {
		if !used[warn] {
			fmt.Fprintf(w, "  %-9s %s\n", "degraded", warn)
			degraded++
		}
	}
	if degraded == 0 {
		fmt.Fprintf(w, "result: ok: everything works on this kernel\n")
		return
	}
	fmt.Fprintf(w, "result: ok, %d degraded: tcplens runs; the degraded parts are listed above\n", degraded)
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown)"
	}
	return strings.TrimSpace(unix.ByteSliceToString(u.Release[:])) + " " + unix.ByteSliceToString(u.Machine[:])
}
