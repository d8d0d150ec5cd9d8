package probe

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// Floor is the benchmark's stand-in for tcplens's kernel side
// (bpf/floor.bpf.c): one program on each tracepoint tcplens attaches to by
// default, each doing only what any tracer of timestamped per-socket
// transitions must, and nothing sent to user space. Its overhead is what
// hooking those tracepoints costs on a host.
type Floor struct {
	coll  *ebpf.Collection
	links []link.Link
}

// OpenFloor loads and attaches the floor programs, configured like
// tcplens's (the same timer functions, from /proc/kallsyms). Every hook
// must attach: a floor missing one would understate the cost. Which hooks
// those are is the floor object's business (TestFloorMatchesHooks keeps
// them equal to tcplens's tp_btf programs).
func OpenFloor() (f *Floor, err error) {
	_ = rlimit.RemoveMemlock() // as in Open: memcg accounting makes it unneeded
	spec, err := bpfobj.LoadFloor()
	if err != nil {
		return nil, fmt.Errorf("read embedded floor object: %w", err)
	}
	timers := timerAddrs()
	for fn, name := range timerVars {
		if err := spec.Variables[name].Set(timers[fn]); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	f = &Floor{}
	if f.coll, err = ebpf.NewCollection(spec); err != nil {
		return nil, explainLoadError(err, false)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	for name, prog := range f.coll.Programs {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			return nil, fmt.Errorf("attach floor program %s (%s): %w", name, spec.Programs[name].SectionName, err)
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

// Close detaches and unloads the floor programs.
func (f *Floor) Close() error {
	for _, l := range f.links {
		l.Close()
	}
	f.links = nil
	if f.coll != nil {
		f.coll.Close()
		f.coll = nil
	}
	return nil
}
