package probe

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// TestFloorMatchesHooks: the benchmark's floor stands in for tcplens only
// if it hooks exactly the tracepoints tcplens attaches by default (its
// tp_btf programs; fexit, syscall tracepoints, iterators and the sweep are
// optional or run on demand), under the same program names.
func TestFloorMatchesHooks(t *testing.T) {
	tcplens, err := bpfobj.LoadTcplens()
	if err != nil {
		t.Fatal(err)
	}
	floor, err := bpfobj.LoadFloor()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for name, ps := range tcplens.Programs {
		if strings.HasPrefix(ps.SectionName, "tp_btf/") {
			want[name] = ps.SectionName
		}
	}
	got := map[string]string{}
	for name, ps := range floor.Programs {
		got[name] = ps.SectionName
	}
	if !maps.Equal(got, want) {
		t.Errorf("floor programs %v\nwant (tcplens's tp_btf programs) %v", got, want)
	}
	if len(want) < 8 || !slices.Contains(slices.Collect(maps.Keys(want)), "on_set_state") {
		t.Errorf("tcplens's tp_btf programs: %v", want)
	}
}
