package ring

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The kernel writes the records: a small program calls bpf_ringbuf_output
// and runs through BPF_PROG_TEST_RUN. Needs root (CAP_BPF).
func newRing(t *testing.T, size uint32) *ebpf.Map {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("TCPLENS_REQUIRE_ROOT") != "" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// output makes the kernel queue one record of size bytes, each byte fill.
func output(t *testing.T, m *ebpf.Map, size int, fill byte, wake bool) {
	t.Helper()
	var insns asm.Instructions
	word := int64(fill) * 0x01010101
	for off := -64; off < 0; off += 4 {
		insns = append(insns, asm.StoreImm(asm.R10, int16(off), word, asm.Word))
	}
	flags := int32(1) // BPF_RB_NO_WAKEUP
	if wake {
		flags = 2 // BPF_RB_FORCE_WAKEUP
	}
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -64),
		asm.Mov.Imm(asm.R3, int32(size)),
		asm.Mov.Imm(asm.R4, flags),
		asm.FnRingbufOutput.Call(),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	ret, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)})
	if err != nil || ret != 0 {
		t.Fatalf("bpf_ringbuf_output: %d, %v", int32(ret), err)
	}
}

func readAll(t *testing.T, r *Reader) [][]byte {
	t.Helper()
	var got [][]byte
	r.SetDeadline(time.Now())
	for {
		_, err := r.Read(func(b []byte) error {
			got = append(got, bytes.Clone(b))
			return nil
		})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Records come out whole and in order, across many wrap-arounds of a ring
// that holds only a few of them, with sizes that need padding.
func TestRecordsInOrderAcrossWrapAround(t *testing.T) {
	m := newRing(t, 4096)
	r, err := Open(m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sizes := []int{1, 7, 8, 13, 64, 33}
	fill := byte(0)
	for round := 0; round < 40; round++ {
		var want [][]byte
		for _, n := range sizes {
			fill++
			output(t, m, n, fill, false)
			want = append(want, bytes.Repeat([]byte{fill}, n))
		}
		got := readAll(t, r)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d records, want %d", round, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("round %d record %d: %x, want %x", round, i, got[i], want[i])
			}
		}
	}
	if a := r.Available(); a != 0 {
		t.Errorf("%d bytes still queued after reading everything", a)
	}
}

// An empty ring waits for the deadline; a record with a wake-up ends the
// wait early; Close ends it with ErrClosed.
func TestWaiting(t *testing.T) {
	m := newRing(t, 4096)
	r, err := Open(m)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.SetDeadline(start.Add(200 * time.Millisecond))
	n, err := r.Read(func([]byte) error { return nil })
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != 0 || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("empty ring: %d records, %v after %v; want the deadline after 200ms", n, err, time.Since(start))
	}

	r.SetDeadline(time.Now().Add(10 * time.Second))
	time.AfterFunc(50*time.Millisecond, func() { output(t, m, 16, 0xab, true) })
	start = time.Now()
	n, err = r.Read(func(b []byte) error {
		if len(b) != 16 || b[0] != 0xab {
			t.Errorf("record %x", b)
		}
		return nil
	})
	if err != nil || n != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("woken read: %d records, %v after %v", n, err, time.Since(start))
	}

	done := make(chan error, 1)
	go func() {
		_, err := r.Read(func([]byte) error { return nil })
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("read during Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Read")
	}
}

// A failing callback stops the batch after its record; the rest stays queued.
func TestCallbackError(t *testing.T) {
	m := newRing(t, 4096)
	r, err := Open(m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := byte(1); i <= 3; i++ {
		output(t, m, 8, i, false)
	}
	stop := errors.New("stop")
	n, err := r.Read(func(b []byte) error {
		if b[0] == 2 {
			return stop
		}
		return nil
	})
	if n != 2 || !errors.Is(err, stop) {
		t.Fatalf("read: %d records, %v; want 2 and the callback's error", n, err)
	}
	if got := readAll(t, r); len(got) != 1 || got[0][0] != 3 {
		t.Fatalf("after the error: %x, want the third record", got)
	}
}
