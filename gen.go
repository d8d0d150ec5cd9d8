// Package tcplens is an eBPF tracer of TCP connection lifecycles.
//
// This file holds the code-generation step: bpf2go compiles bpf/ and
// writes the Go bindings (types generated from bpf/tcplens.h) into
// internal/bpfobj. The second object, floor, is the benchmark's stand-in
// that only hooks the same tracepoints (bpf/floor.bpf.c). The output is
// committed so `go build` needs no clang; `make check-generate` regenerates
// it with the pinned clang and fails on drift.
package tcplens

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror -D__TARGET_ARCH_x86" -target bpfel -go-package bpfobj -output-dir internal/bpfobj -type record -type seed -type sock_info -type listener_key -type listener_owner -type record_kind -type counter -type sock_flag -type req_key -type req_info -type tw_info -type proc_agg Tcplens bpf/tcplens.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror -D__TARGET_ARCH_x86" -target bpfel -go-package bpfobj -output-dir internal/bpfobj Floor bpf/floor.bpf.c
