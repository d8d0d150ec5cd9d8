package probe

import (
	"reflect"
	"sort"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// requiredPrograms are the hooks without which tcplens refuses to run
// (attach fails Open); every other hook is optional and only degrades.
var requiredPrograms = map[string]bool{"on_set_state": true}

// Hook is the state of one attachable program on this kernel.
type Hook struct {
	Program  string // the BPF program's name
	Section  string // what it attaches to, e.g. tp_btf/inet_sock_set_state
	Required bool
	Attached bool
	Off      bool   // not attached because the configuration did not ask for it
	Reason   string // why it is not attached (from the warnings)
}

// Hooks reports every hook of the BPF object (iterators excluded: they are
// attached on demand by Scan) and whether it is attached now.
func (p *Probe) Hooks() []Hook {
	spec, err := bpfobj.LoadTcplens()
	if err != nil {
		return nil
	}
	attached := map[ebpf.ProgramID]bool{}
	for _, l := range p.links {
		if info, err := l.Info(); err == nil {
			attached[info.Program] = true
		}
	}
	progs := programsByName(&p.objs.TcplensPrograms)
	var hooks []Hook
	for name, ps := range spec.Programs {
		if strings.HasPrefix(ps.SectionName, "iter/") {
			continue // the start-up scan: reported on its own
		}
		h := Hook{Program: name, Section: ps.SectionName, Required: requiredPrograms[name]}
		if name == sweepProg { // run (not attached) at each re-scan: loaded and run once is what counts
			h.Attached, h.Reason = p.objs.SweepSocks != nil, p.sweepNote
			hooks = append(hooks, h)
			continue
		}
		if prog := progs[name]; prog != nil {
			if info, err := prog.Info(); err == nil {
				if id, ok := info.ID(); ok {
					h.Attached = attached[id]
				}
			}
		}
		if !h.Attached {
			h.Reason = p.skipped[name]
			h.Off = h.Reason != ""
			if !h.Off {
				h.Reason = reasonFor(ps.SectionName, p.warnings)
			}
		}
		hooks = append(hooks, h)
	}
	sort.Slice(hooks, func(i, j int) bool { return hooks[i].Section < hooks[j].Section })
	return hooks
}

// programsByName maps the bpf2go struct's `ebpf:"name"` tags to programs.
func programsByName(progs *bpfobj.TcplensPrograms) map[string]*ebpf.Program {
	out := map[string]*ebpf.Program{}
	v := reflect.ValueOf(progs).Elem()
	for i := 0; i < v.NumField(); i++ {
		if p, ok := v.Field(i).Interface().(*ebpf.Program); ok && p != nil {
			out[v.Type().Field(i).Tag.Get("ebpf")] = p
		}
	}
	return out
}

// reasonFor finds the warning about the hook in section.
func reasonFor(section string, warnings []string) string {
	event := section[strings.LastIndex(section, "/")+1:]
	for _, w := range warnings {
		if strings.Contains(w, ":"+event+":") || strings.Contains(w, ":"+event+" ") {
			return w
		}
	}
	if strings.HasPrefix(section, "tracepoint/") {
		for _, w := range warnings {
			if strings.Contains(w, "tracefs") {
				return w
			}
		}
	}
	return "not attached"
}
