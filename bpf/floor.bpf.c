// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The floor: a stand-in for tcplens's kernel side that attaches one program
 * to each hook tcplens uses and does only what no tracer of timestamped,
 * per-socket transitions can skip. The benchmark runs it as a tracer mode
 * of its own ("floor"), so every run shows, next to tcplens's overhead,
 * what merely hooking these tracepoints costs on that host: the part of
 * the overhead no change to tcplens can remove.
 *
 * Each program has the name of the tcplens program it stands in for, so
 * the per-program cost tables line up. Nothing reaches user space.
 */
#include "../vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define IPPROTO_TCP 6

/* The timer functions tcplens tells apart (from /proc/kallsyms), set before load. */
const volatile __u64 tcp_write_timer_addr = 0;
const volatile __u64 reqsk_timer_addr = 0;
const volatile __u64 tw_timer_addr = 0;

/*
 * sink: where each program leaves its result, so the compiler keeps the
 * work. Written by every program, read by nobody.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sink SEC(".maps");

static __always_inline void keep(__u64 v)
{
	__u32 zero = 0;
	__u64 *p = bpf_map_lookup_elem(&sink, &zero);
	if (p)
		*p = v;
}

/* A transition: which socket, and when. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	keep(bpf_ktime_get_ns() ^ bpf_get_socket_cookie((void *)sk));
	return 0;
}

/* Timers: tell tcplens's three functions from every other timer on the host. */
SEC("tp_btf/timer_start")
int BPF_PROG(on_timer_start, struct timer_list *timer)
{
	__u64 fn = (__u64)timer->function;
	if ((fn == tcp_write_timer_addr || fn == reqsk_timer_addr || fn == tw_timer_addr) && fn)
		keep(fn);
	return 0;
}

SEC("tp_btf/timer_cancel")
int BPF_PROG(on_timer_cancel, struct timer_list *timer)
{
	if (tw_timer_addr && (__u64)timer->function == tw_timer_addr)
		keep(tw_timer_addr);
	return 0;
}

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(on_timer_expire, struct timer_list *timer)
{
	if (tw_timer_addr && (__u64)timer->function == tw_timer_addr)
		keep(tw_timer_addr);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, struct sock *sk)
{
	keep((__u64)sk);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_send_reset, const struct sock *sk)
{
	keep((__u64)sk);
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(on_destroy_sock, struct sock *sk)
{
	keep(bpf_get_socket_cookie((void *)sk));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_process_exit, struct task_struct *task)
{
	if (task->pid == task->tgid)
		keep(task->tgid);
	return 0;
}
