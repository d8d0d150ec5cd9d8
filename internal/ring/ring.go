// Package ring reads a BPF ring buffer map from user space, built for one
// busy consumer:
//
//   - records are handed out in place, in batches, with no lock or copy per
//     record, and the consumer position is published once per batch (each
//     publication is a cache line the producing CPUs must fetch again);
//   - waiting parks the goroutine in Go's network poller (the map's
//     descriptor is registered there) instead of blocking a thread in
//     epoll_wait: a thread blocked in a system call makes the Go runtime's
//     monitor wake every 20 µs to hand its P to another thread, which on a
//     virtual machine costs more CPU than reading the records.
//
// The layout is the kernel's (kernel/bpf/ringbuf.c): a consumer page
// (writable), a producer page, then the data pages mapped twice in a row so
// a record that wraps around the end is still contiguous.
package ring

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

const (
	hdrSize    = 8       // struct bpf_ringbuf_hdr: u32 len, u32 pg_off
	busyBit    = 1 << 31 // BPF_RINGBUF_BUSY_BIT: reserved, not yet submitted
	discardBit = 1 << 30 // BPF_RINGBUF_DISCARD_BIT: submitted empty
	lenMask    = discardBit - 1
)

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("ring buffer reader closed")

// Reader reads one BPF_MAP_TYPE_RINGBUF map. Read is for one goroutine;
// SetDeadline and Close may be called from any.
type Reader struct {
	mu      sync.Mutex // held while records are read, and by Close
	closed  atomic.Bool
	file    *os.File // a duplicate of the map's descriptor, in the netpoller
	raw     syscall.RawConn
	consMap []byte
	prodMap []byte
	consPos *uint64 // written by us
	prodPos *uint64 // written by the kernel
	data    []byte  // 2 × size
	mask    uint64
	publish uint64 // publish the consumer position after this many bytes within a batch
}

// Open maps m (a ring buffer map) for reading.
func Open(m *ebpf.Map) (r *Reader, err error) {
	if m.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("map %v is not a ring buffer", m)
	}
	size := int(m.MaxEntries())
	page := os.Getpagesize()
	fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate ring buffer descriptor: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ring buffer descriptor: %w", err)
	}
	r = &Reader{file: os.NewFile(uintptr(fd), "bpf-ringbuf"), mask: uint64(size - 1), publish: uint64(size / 8)}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	// A non-blocking descriptor that epoll accepts becomes pollable: only
	// then do deadlines work.
	if err := r.file.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("ring buffer descriptor cannot be polled: %w", err)
	}
	if r.raw, err = r.file.SyscallConn(); err != nil {
		return nil, err
	}
	if r.consMap, err = unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("mmap ring buffer consumer page: %w", err)
	}
	if r.prodMap, err = unix.Mmap(fd, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("mmap ring buffer data: %w", err)
	}
	r.consPos = (*uint64)(unsafe.Pointer(&r.consMap[0]))
	r.prodPos = (*uint64)(unsafe.Pointer(&r.prodMap[0]))
	r.data = r.prodMap[page:]
	return r, nil
}

// SetDeadline bounds how long Read waits for records; a time in the past
// makes Read return what is queued without waiting.
func (r *Reader) SetDeadline(t time.Time) { r.file.SetReadDeadline(t) }

// Read hands every record queued now to fn, in order; the slice is valid
// only during the call. When nothing is queued it waits for records or the
// deadline (os.ErrDeadlineExceeded). It returns the number of records, and
// stops early, with fn's error, if fn fails.
func (r *Reader) Read(fn func(sample []byte) error) (int, error) {
	n, err := r.drain(fn)
	if n > 0 || err != nil {
		return n, err
	}
	werr := r.raw.Read(func(uintptr) bool {
		n, err = r.drain(fn)
		return n > 0 || err != nil // false: wait for the kernel's wake-up
	})
	if err != nil {
		return n, err
	}
	if werr != nil {
		if r.closed.Load() {
			return n, ErrClosed
		}
		return n, werr
	}
	return n, nil
}

// drain reads the records queued when it starts, no more: under sustained
// load the caller still gets control back (housekeeping, cancellation).
func (r *Reader) drain(fn func([]byte) error) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.consPos == nil {
		return 0, ErrClosed
	}
	cons := atomic.LoadUint64(r.consPos)
	published := cons
	prod := atomic.LoadUint64(r.prodPos)
	n := 0
	var err error
	for cons < prod {
		// Load the length atomically: it is the kernel's commit flag.
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[cons&r.mask])))
		if hdr&busyBit != 0 {
			break // reserved, not yet submitted: later records wait for it
		}
		length := uint64(hdr & lenMask)
		start := (cons + hdrSize) & r.mask
		next := cons + hdrSize + (length+7)&^7
		if hdr&discardBit == 0 {
			n++
			if err = fn(r.data[start : start+length]); err != nil {
				cons = next
				break
			}
		}
		cons = next
		if cons-published >= r.publish {
			atomic.StoreUint64(r.consPos, cons)
			published = cons
		}
	}
	if cons != published {
		atomic.StoreUint64(r.consPos, cons)
	}
	return n, err
}

// Available is how many bytes are queued.
func (r *Reader) Available() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.consPos == nil {
		return 0
	}
	return atomic.LoadUint64(r.prodPos) - atomic.LoadUint64(r.consPos)
}

// Close unmaps the ring and wakes a waiting Read (which returns ErrClosed).
func (r *Reader) Close() error {
	r.closed.Store(true)
	err := r.file.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prodMap != nil {
		unix.Munmap(r.prodMap)
	}
	if r.consMap != nil {
		unix.Munmap(r.consMap)
	}
	r.prodMap, r.consMap, r.data, r.consPos, r.prodPos = nil, nil, nil, nil, nil
	return err
}
