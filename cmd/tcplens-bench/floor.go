package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tcplens/tcplens/internal/probe"
)

// floorTracerArg makes tcplens-bench the tracer of the "floor" mode: it
// attaches the floor programs (probe.OpenFloor: the same hooks as tcplens,
// doing almost nothing) and holds them until SIGINT or SIGTERM. The runner
// starts it like tcplens, so the floor's rounds are measured the same way.
const floorTracerArg = "floor-tracer"

// runFloorTracer is the floor mode's tracer process; it returns the exit code.
func runFloorTracer() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := probe.OpenFloor()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tcplens-bench floor: %v\n", err)
		return 1
	}
	defer f.Close()
	// The line the runner waits for, as from tcplens.
	fmt.Fprintln(os.Stderr, "tcplens: tracing (floor: no-op programs on tcplens's hooks)")
	<-ctx.Done()
	return 0
}
