package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestStdoutWriterRegularFileOnly(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := stdoutWriter(f).(fileWriter); !ok {
		t.Error("a regular file did not get the raw writer")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if got, ok := stdoutWriter(w).(*os.File); !ok || got != w {
		t.Errorf("a pipe got %T, want the *os.File itself", stdoutWriter(w))
	}
}

func TestFileWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := stdoutWriter(f)
	want := bytes.Repeat([]byte(`{"type":"state"}`+"\n"), 200_000) // 3.4 MB: more than one write(2) may take
	for _, chunk := range [][]byte{want[:1], want[1 : 1<<20], want[1<<20:]} {
		if n, err := w.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write: %d of %d, %v", n, len(chunk), err)
		}
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes (%v), want the %d written", len(got), err, len(want))
	}

	ro, err := os.Open(path) // read-only: write(2) fails with EBADF
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = stdoutWriter(ro).Write([]byte("x"))
	var pe *os.PathError
	if !errors.As(err, &pe) || !errors.Is(err, syscall.EBADF) || pe.Path != path {
		t.Errorf("write to a read-only file: %v, want a PathError for %s with EBADF", err, path)
	}
}
