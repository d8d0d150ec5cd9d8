package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

// clkTck is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on every
// Linux architecture Go supports).
const clkTck = 100

// procCPU returns a process's user and system CPU time so far (all threads).
func procCPU(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// comm may contain spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	tick := time.Second / clkTck
	return time.Duration(ut) * tick, time.Duration(st) * tick, nil
}

// procMem returns VmRSS and VmHWM (peak RSS) in bytes.
func procMem(pid int) (rss, hwm uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch k {
		case "VmRSS":
			dst = &rss
		case "VmHWM":
			dst = &hwm
		default:
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err == nil {
			*dst = n << 10
		}
	}
	return rss, hwm, sc.Err()
}

// bpfObjects lists the BPF programs and maps a process holds descriptors
// to, by ID, from /proc/PID/fdinfo. This finds exactly the tcplens under
// test even when other tcplens instances (or other BPF users) run.
func bpfObjects(pid int) (progs, maps []uint32, mapMemlock uint64, err error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, 0, err
	}
	seenP, seenM := map[uint32]bool{}, map[uint32]bool{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var key string
		switch target {
		case "anon_inode:bpf-prog":
			key = "prog_id"
		case "anon_inode:bpf-map":
			key = "map_id"
		default:
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		fields := parseFdinfo(info)
		id, err := strconv.ParseUint(fields[key], 10, 32)
		if err != nil {
			continue
		}
		if key == "prog_id" && !seenP[uint32(id)] {
			seenP[uint32(id)] = true
			progs = append(progs, uint32(id))
		}
		if key == "map_id" && !seenM[uint32(id)] {
			seenM[uint32(id)] = true
			maps = append(maps, uint32(id))
			if n, err := strconv.ParseUint(fields["memlock"], 10, 64); err == nil {
				mapMemlock += n
			}
		}
	}
	return progs, maps, mapMemlock, nil
}

func parseFdinfo(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// progStat is one program's kernel run-time statistics at one moment.
type progStat struct {
	Name    string
	Runtime time.Duration
	Runs    uint64
	Misses  uint64 // recursion misses: runs the kernel skipped
}

// progStats reads the kernel's statistics of the given programs, by name.
// Runtime is only counted while kernel.bpf_stats_enabled (or a
// BPF_ENABLE_STATS descriptor) is on.
func progStats(ids []uint32) (map[string]progStat, error) {
	out := map[string]progStat{}
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			return nil, fmt.Errorf("program %d: %w", id, err)
		}
		info, err := p.Info()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("program %d info: %w", id, err)
		}
		st, err := p.Stats()
		p.Close()
		if err != nil {
			return nil, fmt.Errorf("program %d stats: %w", id, err)
		}
		name := info.Name
		if name == "" {
			name = fmt.Sprintf("prog-%d", id)
		}
		s := out[name]
		s.Name = name
		s.Runtime += st.Runtime
		s.Runs += st.RunCount
		s.Misses += st.RecursionMisses
		out[name] = s
	}
	return out, nil
}

// mapEntries counts the entries of each map (by name) the IDs refer to.
// Ring buffers and arrays are skipped: their size never changes.
func mapEntries(ids []uint32) map[string]int {
	out := map[string]int{}
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			continue
		}
		info, err := m.Info()
		if err != nil || !countable(info.Type) {
			m.Close()
			continue
		}
		out[info.Name] += countKeys(m, info.KeySize)
		m.Close()
	}
	return out
}

// countKeys walks the keys only: an iterator would need per-CPU maps'
// values in their own shape (and aggs is per-CPU).
func countKeys(m *ebpf.Map, keySize uint32) int {
	n := 0
	key := make([]byte, keySize)
	next := make([]byte, keySize)
	var prev any // nil: the first key
	for n < 1<<24 && m.NextKey(prev, next) == nil {
		n++
		copy(key, next)
		prev = key
	}
	return n
}

func countable(t ebpf.MapType) bool {
	switch t {
	case ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUHash, ebpf.LRUCPUHash:
		return true
	}
	return false
}
