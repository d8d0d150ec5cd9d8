package probe

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// KernelBTF is where the running kernel exposes its type information.
const KernelBTF = "/sys/kernel/btf/vmlinux"

// Capability numbers (linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// ErrPreflight marks problems of the environment, not of tcplens.
var ErrPreflight = errors.New("preflight")

// Preflight checks, before anything is loaded, that this process and kernel
// can run tcplens, and says what to do when they cannot. btfPath names the
// kernel's BTF when it is not the running kernel's own.
func Preflight(btfPath string) error {
	if missing := missingCaps(); len(missing) > 0 {
		return fmt.Errorf("%w: missing capabilities %s: run tcplens as root (or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)",
			ErrPreflight, strings.Join(missing, ", "))
	}
	if btfPath == "" {
		btfPath = KernelBTF
	}
	f, err := os.Open(btfPath)
	if err != nil {
		return fmt.Errorf("%w: kernel BTF is not readable at %s (%v): tcplens needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux 5.12 or newer), or --btf FILE",
			ErrPreflight, btfPath, errors.Unwrap(err))
	}
	f.Close()
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		return fmt.Errorf("%w: this kernel has no BPF ring buffer (%v): tcplens needs Linux 5.12 or newer", ErrPreflight, err)
	}
	return nil
}

// missingCaps names the effective capabilities tcplens needs but lacks.
func missingCaps() []string {
	eff, ok := effectiveCaps()
	if !ok {
		if os.Geteuid() != 0 {
			return []string{"(not root)"}
		}
		return nil
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capBPF, "CAP_BPF"}, {capPerfmon, "CAP_PERFMON"}, {capSysAdmin, "CAP_SYS_ADMIN"}} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	return missing
}

func effectiveCaps() (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// ensureTracefs mounts tracefs when the classic tracepoints are not visible.
func ensureTracefs() error {
	const dir = "/sys/kernel/tracing"
	if _, err := os.Stat(dir + "/events"); err == nil {
		return nil
	}
	if err := unix.Mount("nodev", dir, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs on %s: %w", dir, err)
	}
	return nil
}

// timerVars maps each kernel timer function the programs tell apart (in
// tcplens's object and in the benchmark's floor) to the BPF variable that
// holds its address.
var timerVars = map[string]string{
	"tcp_write_timer":     "tcp_write_timer_addr",
	"reqsk_timer_handler": "reqsk_timer_addr",
	"tw_timer_handler":    "tw_timer_addr",
}

// timerAddrs looks up the timer functions of timerVars (absent: not found).
func timerAddrs() map[string]uint64 {
	names := make([]string, 0, len(timerVars))
	for fn := range timerVars {
		names = append(names, fn)
	}
	return kallsymsAddrs(names...)
}

// kallsymsAddrs returns the addresses of the named kernel functions; names
// not found (or hidden by kptr_restrict) are absent from the result.
func kallsymsAddrs(names ...string) map[string]uint64 {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]uint64, len(names))
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < len(want) {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 3 || !want[fields[2]] {
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err == nil && addr != 0 {
			out[fields[2]] = addr
		}
	}
	return out
}

// TimeWaitOverflows reads the kernel's count of connections that could not
// enter TIME_WAIT because the timewait table was full (TcpExt
// TCPTimeWaitOverflow, this network namespace).
func TimeWaitOverflows() (uint64, error) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, err
	}
	return parseNetstat(string(b), "TcpExt:", "TCPTimeWaitOverflow")
}

// parseNetstat finds one counter in /proc/net/netstat's header/value pairs.
func parseNetstat(text, prefix, name string) (uint64, error) {
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], prefix) || !strings.HasPrefix(lines[i+1], prefix) {
			continue
		}
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, n := range names {
			if n == name && j < len(values) {
				return strconv.ParseUint(values[j], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s %s not found in /proc/net/netstat", prefix, name)
}
