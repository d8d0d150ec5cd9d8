package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// bpfIDs are the kernel's ids of BPF programs and links.
type bpfIDs struct{ progs, links map[uint32]bool }

func newBPFIDs() bpfIDs { return bpfIDs{map[uint32]bool{}, map[uint32]bool{}} }

// addHeldBy adds the programs and links the process pid holds descriptors
// of (a link's program counts as held). pid 0 means every process.
func (ids bpfIDs) addHeldBy(pid int) {
	pattern := "/proc/[0-9]*/fd/*"
	if pid != 0 {
		pattern = "/proc/" + strconv.Itoa(pid) + "/fd/*"
	}
	fds, _ := filepath.Glob(pattern)
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(target, "anon_inode:bpf") {
			continue
		}
		info := strings.Replace(fd, "/fd/", "/fdinfo/", 1)
		f, err := os.Open(info)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				continue
			}
			switch k {
			case "prog_id":
				ids.progs[uint32(n)] = true
			case "link_id":
				ids.links[uint32(n)] = true
			}
		}
		f.Close()
	}
}

// isTcplensProgram: tcplens's program names start with on_ or scan_task.
func isTcplensProgram(name string) bool {
	return strings.HasPrefix(name, "on_") || strings.HasPrefix(name, "scan_task")
}

// tcplensObjects lists every loaded tcplens program and every link of one,
// from the kernel's own id listings.
func tcplensObjects(t *testing.T) bpfIDs {
	t.Helper()
	ids := newBPFIDs()
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		if p, err := ebpf.NewProgramFromID(id); err == nil {
			if info, err := p.Info(); err == nil && isTcplensProgram(info.Name) {
				ids.progs[uint32(id)] = true
			}
			p.Close()
		}
	}
	for id := uint32(0); ; {
		next, ok := linkGetNextID(id)
		if !ok {
			break
		}
		id = next
		l, err := link.NewFromID(link.ID(id))
		if err != nil {
			continue
		}
		if info, err := l.Info(); err == nil {
			if p, err := ebpf.NewProgramFromID(info.Program); err == nil {
				if pi, err := p.Info(); err == nil && isTcplensProgram(pi.Name) {
					ids.links[id] = true
				}
				p.Close()
			}
		}
		l.Close()
	}
	return ids
}

// linkGetNextID is BPF_LINK_GET_NEXT_ID (cilium/ebpf has no public one).
func linkGetNextID(start uint32) (uint32, bool) {
	attr := struct{ start, next, flags uint32 }{start: start}
	const bpfLinkGetNextID = 31
	_, _, errno := unix.Syscall(unix.SYS_BPF, bpfLinkGetNextID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	return attr.next, errno == 0
}

// assertNothingLeft checks, in the kernel's own listings, that none of the
// programs and links in ours still exists, and that no tcplens program or
// link is orphaned (held by no process: something left behind). Other
// engineers' tcplens instances may run at the same time; they hold theirs.
// The kernel frees objects of an exited process shortly after, so it polls.
func assertNothingLeft(t *testing.T, ours bpfIDs) {
	t.Helper()
	var leftOurs, orphans []string
	for end := time.Now().Add(5 * time.Second); ; {
		leftOurs, orphans = nil, nil
		all := tcplensObjects(t)
		held := newBPFIDs()
		held.addHeldBy(0)
		for id := range all.progs {
			if ours.progs[id] {
				leftOurs = append(leftOurs, "prog "+itoa(uint64(id)))
			} else if !held.progs[id] {
				orphans = append(orphans, "prog "+itoa(uint64(id)))
			}
		}
		for id := range all.links {
			if ours.links[id] {
				leftOurs = append(leftOurs, "link "+itoa(uint64(id)))
			} else if !held.links[id] {
				orphans = append(orphans, "link "+itoa(uint64(id)))
			}
		}
		if len(leftOurs)+len(orphans) == 0 || time.Now().After(end) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(leftOurs) > 0 {
		t.Errorf("still loaded after tcplens exited: %v", leftOurs)
	}
	if len(orphans) > 0 {
		t.Errorf("tcplens programs or links held by no process: %v", orphans)
	}
}
