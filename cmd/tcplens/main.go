// Command tcplens traces TCP connection lifecycles with eBPF and streams
// every state transition, attributed to the process owning the socket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/tracer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError marks bad command-line input (exit status 2).
type usageError struct{ error }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tcplens: %v (see tcplens -h)\n", ue.error)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "tcplens: %v\n", err)
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if opts.check {
		return runCheck(ctx, opts, stdout, stderr)
	}
	t, err := tracer.OpenContext(ctx, opts.probe)
	if err != nil {
		return startError(ctx, err, stderr)
	}
	defer t.Close()
	for _, w := range t.Warnings() {
		fmt.Fprintf(stderr, "tcplens: warning: %s\n", w)
	}
	restrictPrivileges(stderr)

	clock := tracer.Clock()
	var out output.Writer
	switch opts.format {
	case "text":
		out = output.NewText(stdout, clock)
	default:
		out = output.NewJSON(stdout, clock)
	}
	reportLosses(t, out)
	fmt.Fprintf(stderr, "tcplens: tracing TCP state transitions (%d existing sockets found); Ctrl-C to stop\n", t.Stats().Seeded)

	emitted := uint64(0)
	runErr := t.Run(ctx, func(r *event.Record) error {
		if r.Kind != event.KindState {
			return nil
		}
		emitted++
		return out.State(r)
	})
	flushErr := out.Flush()
	printCounters(stderr, t, emitted)
	printRecords(stderr, t)
	if runErr != nil {
		return quietStop(runErr)
	}
	return quietStop(flushErr)
}

func printCounters(w io.Writer, t *tracer.Tracer, emitted uint64) {
	st := t.Stats()
	c, err := t.Counters()
	if err != nil {
		fmt.Fprintf(w, "tcplens: events emitted %d; kernel counters unavailable: %v\n", emitted, err)
		return
	}
	fmt.Fprintf(w, "tcplens: events seen %d, emitted %d, lost %d (ring buffer full), decode errors %d, sockets untracked (map full) %d\n",
		c.Produced, emitted, c.RingFull, st.DecodeErrors, c.SocksFull+c.ListenersFull)
}
