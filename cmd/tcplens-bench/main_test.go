package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseCounters(t *testing.T) {
	stderr := "tcplens: tracing TCP state transitions (3 existing sockets found); Ctrl-C to stop\n" +
		"tcplens: events seen 58, emitted 14, lost 2 (ring buffer full), decode errors 1, sockets untracked (map full) 3\n"
	c, ok := parseCounters(stderr)
	if !ok {
		t.Fatal("counters line not found")
	}
	want := counters{Seen: 58, Emitted: 14, Lost: 2, DecodeErrors: 1, Untracked: 3}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if _, ok := parseCounters("tcplens: events emitted 4; kernel counters unavailable: x\n"); ok {
		t.Fatal("parsed a line without counters")
	}
}

func TestMedianSpread(t *testing.T) {
	for _, c := range []struct {
		v         []float64
		med, sprd float64
	}{
		{nil, 0, 0},
		{[]float64{5}, 5, 0},
		{[]float64{3, 1, 2}, 2, 100},
		{[]float64{4, 1, 3, 2}, 2.5, 120},
	} {
		if got := median(c.v); got != c.med {
			t.Errorf("median(%v) = %v, want %v", c.v, got, c.med)
		}
		if got := spread(c.v); got != c.sprd {
			t.Errorf("spread(%v) = %v, want %v", c.v, got, c.sprd)
		}
	}
}

func TestCountLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out")
	data := `{"type":"state","sport":8080,"dport":0,"old":"CLOSE","new":"LISTEN"}
{"type":"state","sport":41000,"dport":8080,"old":"CLOSE","new":"SYN_SENT"}
{"type":"state","sport":80800,"dport":22,"old":"CLOSE","new":"SYN_SENT"}
{"type":"state","sport":22,"dport":18080,"old":"CLOSE","new":"SYN_SENT"}
`
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	all, ours, size, err := countLines(p, 8080)
	if err != nil {
		t.Fatal(err)
	}
	if all != 4 || ours != 2 || size != int64(len(data)) {
		t.Fatalf("got all %d ours %d size %d, want 4 2 %d", all, ours, size, len(data))
	}
}

func TestParseFdinfo(t *testing.T) {
	m := parseFdinfo([]byte("pos:\t0\nflags:\t02000002\nprog_type:\t26\nprog_id:\t123\nrun_cnt:\t7\n"))
	if m["prog_id"] != "123" || m["run_cnt"] != "7" {
		t.Fatalf("got %v", m)
	}
}

func TestProcSelf(t *testing.T) {
	pid := os.Getpid()
	if _, _, err := procCPU(pid); err != nil {
		t.Fatal(err)
	}
	rss, hwm, err := procMem(pid)
	if err != nil || rss == 0 || hwm < rss {
		t.Fatalf("rss %d hwm %d err %v", rss, hwm, err)
	}
}

func TestModesTable(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range modes {
		if m.Name == "" || seen[m.Name] {
			t.Fatalf("mode names must be unique and non-empty: %q", m.Name)
		}
		seen[m.Name] = true
	}
	for _, name := range []string{"floor", "json-file", "no-events"} {
		if !seen[name] {
			t.Errorf("mode %s missing", name)
		}
	}
}

func TestPaired(t *testing.T) {
	// Drift: both rounds of each pair move together; every pair says 10 %.
	med, rng := paired([]float64{100, 200, 300}, []float64{90, 180, 270})
	if med != 10 || rng != [2]float64{10, 10} {
		t.Errorf("drifting pairs: %v %v, want 10 [10 10]", med, rng)
	}
	// A missing traced round (a failed round) pairs only what ran.
	med, rng = paired([]float64{100, 100, 100}, []float64{80, 95})
	if med != 12.5 || rng != [2]float64{5, 20} {
		t.Errorf("uneven: %v %v, want 12.5 [5 20]", med, rng)
	}
	if med, _ := paired(nil, nil); med != 0 {
		t.Errorf("no rounds: %v", med)
	}
}
