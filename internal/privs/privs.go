// Package privs gives up the capabilities tcplens no longer needs once its
// programs are loaded and attached and the start-up scan is done.
//
// Capabilities are per thread in Linux, and the Go runtime runs many
// threads; every change here goes through syscall.AllThreadsSyscall, which
// makes the same system call on every thread of the process.
package privs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capability numbers (linux/capability.h).
const (
	CapSetPCap  = 8
	CapSysAdmin = 21
	CapPerfmon  = 38
	CapBPF      = 39
)

// Needed is what tcplens keeps after start-up on this kernel, and why.
//
// After start-up tcplens still makes bpf() calls: the ownership re-scan
// after an owner exits creates a link for the already-loaded iterator
// program (BPF_LINK_CREATE), reads it (BPF_ITER_CREATE), and looks up and
// updates map entries; the ring buffer and the counters are read too. All
// of these work through descriptors tcplens already holds, and from Linux
// 6.5 on the kernel asks for no capability for them. Older kernels refuse
// every bpf() command to a process without CAP_BPF while
// kernel.unprivileged_bpf_disabled is set (the default on most
// distributions); there CAP_BPF is kept. CAP_PERFMON, CAP_SYS_ADMIN and
// every other capability go in all cases.
func Needed() []uint {
	if kernelAtLeast(6, 5) {
		return nil
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return nil
	}
	return []uint{CapBPF}
}

func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Restrict leaves every thread of this process with only the capabilities
// in keep (effective and permitted), none inheritable or ambient, an empty
// bounding set, and no_new_privs set, so nothing can be regained, not even
// by executing another program.
func Restrict(keep []uint) error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	var mask uint64
	for _, c := range keep {
		mask |= 1 << c
	}
	// The bounding set first: dropping from it needs CAP_SETPCAP, which the
	// capset below removes. Without CAP_SETPCAP (started with a reduced
	// set) the bounding set stays; no_new_privs still blocks any gain.
	if effective()&(1<<CapSetPCap) != 0 {
		for c := uintptr(0); c <= uintptr(last); c++ {
			if err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); err != nil {
				return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
			}
		}
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil &&
		!errors.Is(err, syscall.EINVAL) { // EINVAL: kernel without ambient capabilities
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	// Heap memory does not move: safe to pass as uintptr.
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := new([2]unix.CapUserData)
	cur := effective() // keep only what we have: capset refuses to add
	mask &= cur
	data[0].Effective, data[0].Permitted = uint32(mask), uint32(mask)
	data[1].Effective, data[1].Permitted = uint32(mask>>32), uint32(mask>>32)
	err = allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(data)), 0)
	runtime.KeepAlive(hdr)
	runtime.KeepAlive(data)
	if err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// ErrCgo: the Go runtime cannot make a system call on every thread of a
// program linked with cgo.
var ErrCgo = errors.New("this binary uses cgo, so capabilities cannot be changed on every thread: build it with CGO_ENABLED=0")

func allThreads(trap, a1, a2, a3 uintptr) error {
	_, _, errno := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	if errno == syscall.ENOTSUP {
		return ErrCgo
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// lastCap is the highest capability number the kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// effective is this thread's effective capability set.
func effective() uint64 {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32
}
