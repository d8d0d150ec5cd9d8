// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcplens kernel side: every TCP state transition, attributed to the process
 * that owns the socket, through one ring buffer.
 *
 * Hooks (all tracepoints but one optional fexit; no kprobes needed):
 *   tp_btf/inet_sock_set_state   every transition of a full TCP socket
 *   tp_btf/timer_start           three kernel timers, told apart by function:
 *                                - tcp_write_timer: releases the held-back
 *                                  CLOSE->SYN_SENT once the source port is
 *                                  chosen (tcp_connect arms it after the SYN)
 *                                - reqsk_timer_handler: a SYN arrived at a
 *                                  listener (passive handshake start, owner)
 *                                - tw_timer_handler: a timewait socket began
 *   tp_btf/timer_cancel, tp_btf/timer_expire_entry
 *                                how each TIME_WAIT ends
 *   tp_btf/tcp_receive_reset, tp_btf/tcp_send_reset   resets per socket
 *   tp_btf/tcp_destroy_sock      a socket whose ->CLOSE the kernel skipped
 *                                (recursion) still ends, and its entry goes
 *   fexit/inet_accept            ownership of accepted sockets, where the
 *                                kernel allows fexit; else, when asked,
 *   tracepoint/syscalls/sys_exit_accept{,4}
 *   tp_btf/sched_process_exit    tells user space an owner is gone
 *   iter/task_file               start-up scan: which process holds which socket
 *   syscall sweep_socks          run by the loader: entries of sockets gone unseen
 */
#include "../vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "tcplens.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keep the contract's enums and structs in BTF so bpf2go generates them. */
const enum record_kind *unused_record_kind __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));
const enum sock_flag *unused_sock_flag __attribute__((unused));
const struct seed *unused_seed __attribute__((unused));
const struct record *unused_record __attribute__((unused));

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define E2BIG 7

/* Kernel TCP states (include/net/tcp_states.h). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_TIME_WAIT 6
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_CLOSE 7
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12

/* Configuration, set by the loader through spec.Variables before load. */
const volatile __u32 filter_tgid = 0;   /* 0: any owner */
const volatile __u16 filter_port = 0;   /* 0: any; else local or remote port */
const volatile __u16 filter_family = 0; /* 0: any; AF_INET or AF_INET6 */
/* Wake the reader only when this many bytes are waiting (0: every record). */
const volatile __u32 wakeup_bytes = 0;
/* Timer functions (from /proc/kallsyms); 0 disables what depends on one. */
const volatile __u64 tcp_write_timer_addr = 0;
const volatile __u64 reqsk_timer_addr = 0;
const volatile __u64 tw_timer_addr = 0;

/*
 * events: every record for user space.
 * Written by all programs (emit()); read by the Go loader.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* resized by the loader */
} events SEC(".maps");

/*
 * counters: per-CPU counters indexed by enum counter.
 * Incremented here; summed and reported by the loader.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * socks: socket cookie -> owner, state and addresses.
 * Inserted at a socket's first transition (or by the loader's start-up scan),
 * updated at every transition and on accept(), deleted when the socket reaches
 * CLOSE. A full map is counted (COUNTER_SOCKS_FULL); such sockets are still
 * reported, with the owner unknown.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144); /* resized by the loader */
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

/*
 * listeners: (netns, port) -> owner of the listening socket, so a child
 * socket created in softirq context inherits the listener's owner until
 * accept() names the real one. Inserted at ->LISTEN (or by the start-up
 * scan), read at LISTEN->SYN_RECV, deleted at LISTEN->CLOSE.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, struct listener_owner);
} listeners SEC(".maps");

/*
 * reqs: connection requests (SYN received, not yet a full socket) by
 * 4-tuple -> when the SYN arrived and who owns the listener that took it.
 * Inserted when the request socket's timer is first armed, read and deleted
 * when the child socket appears (LISTEN->SYN_RECV). Requests that never
 * complete (SYN floods, lost ACKs) age out: LRU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct req_key);
	__type(value, struct req_info);
} reqs SEC(".maps");

/*
 * tws: live timewait sockets, by cookie -> when TIME_WAIT began and the
 * owner of the full socket it replaced. Inserted when the timewait timer is
 * first armed, deleted when it expires or is cancelled (a cancel that is
 * immediately followed by a re-arm restores it from tw_cancelled). LRU so a
 * lost end cannot leak. Only used in summary-only mode or with --pid
 * (tws_kept()).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144); /* resized by the loader */
	__type(key, __u64);
	__type(value, struct tw_info);
} tws SEC(".maps");

/* The last timewait entry cancelled on this CPU, to tell a re-arm from an end. */
struct tw_cancelled {
	__u64 cookie;
	struct tw_info info;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tw_cancelled);
} tw_last_cancel SEC(".maps");

/*
 * children: a child socket's LISTEN->SYN_RECV, held by socket pointer until
 * its next transition. Older kernels (6.1) fire it inside
 * inet_csk_clone_lock() before the child has its own cookie and addresses
 * (it still carries the listener's); by SYN_RECV->ESTABLISHED (or ->CLOSE),
 * microseconds later, both are right. Inserted at LISTEN->SYN_RECV, read and
 * deleted at the child's next transition; LRU bounds what a skipped
 * transition could leave behind.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* struct sock pointer */
	__type(value, __u64); /* time of LISTEN->SYN_RECV */
} children SEC(".maps");

/* Scratch space for building a sock_info without using the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sock_info);
} scratch SEC(".maps");

/*
 * Per-CPU values still need atomic adds: programs nest on one CPU (a timer
 * or a transition in a softirq that interrupts another program), and a
 * plain `*v += 1` interrupted between its load and its store loses the
 * nested increment. Seen: 2 of 4 million records "read" but never
 * "produced". A locked add on a CPU-local line costs a few ns.
 */
#define ADD(p, d) __sync_fetch_and_add((p), (d))

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		ADD(v, 1);
}

/*
 * Wake the reader once per wakeup_bytes of backlog: only the record whose
 * submission crosses a multiple of it. Waking on every record past the
 * threshold until the reader gets to run raised an interrupt per record
 * (~450 ns per transition on a busy VM); with this, a missed crossing (two
 * CPUs racing across one) waits for the next multiple or the reader's
 * 100 ms poll.
 */
#define RECORD_SPACE ((sizeof(struct record) + 8 + 7) & ~7ULL) /* with its ring header */

static __always_inline __u64 wakeup_flags(void)
{
	if (!wakeup_bytes)
		return 0;
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (avail >= RECORD_SPACE && avail / wakeup_bytes != (avail - RECORD_SPACE) / wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline struct record *reserve(void)
{
	count(COUNTER_PRODUCED);
	struct record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		count(COUNTER_RINGBUF_FULL);
	return r;
}

static __always_inline void fill_from_info(struct record *r, const struct sock_info *si)
{
	r->state_since_ns = si->state_since_ns;
	r->open_ns = si->open_ns;
	r->fd = -1;
	r->netns = 0;
	r->sk_err = 0;
	r->cgroup_id = si->cgroup_id;
	r->owner_tgid = si->owner_tgid;
	r->family = si->family;
	r->sport = si->sport;
	r->dport = si->dport;
	r->flags = si->flags;
	__builtin_memcpy(r->saddr, si->saddr, sizeof(r->saddr));
	__builtin_memcpy(r->daddr, si->daddr, sizeof(r->daddr));
	__builtin_memcpy(r->comm, si->comm, sizeof(r->comm));
}

static __always_inline __u32 netns_of(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline bool passes_filters(const struct sock_info *si)
{
	if (filter_tgid && si->owner_tgid != filter_tgid)
		return false;
	if (filter_port && si->sport != filter_port && si->dport != filter_port)
		return false;
	if (filter_family && si->family != filter_family)
		return false;
	return true;
}

/*
 * What the programs read from a full socket, once per run: ports in host
 * order, addresses in network order, the pending error and the netns.
 */
struct sk_view {
	__u32 s[4];
	__u32 d[4];
	__u32 netns;
	__u16 sport;
	__u16 dport;
	__u8 err;
};

/*
 * Fill v from a tracepoint's socket argument: a BTF pointer, so plain loads
 * (the verifier makes them fault-safe) instead of bpf_probe_read calls.
 */
static __always_inline void view_btf(struct sk_view *v, const struct sock *sk, __u16 family)
{
	const struct sock_common *skc = &sk->__sk_common;
	/*
	 * skc_num is inet_sport in host order, and a plain load (inet_sport
	 * lies beyond struct sock, where only a helper call may read). It is
	 * cleared when the port is released, after ->CLOSE is traced;
	 * capture_addrs keeps the remembered port then.
	 */
	v->sport = skc->skc_num;
	v->dport = bpf_ntohs(skc->skc_dport);
	if (family == AF_INET) {
		v->s[0] = skc->skc_rcv_saddr;
		v->d[0] = skc->skc_daddr;
		v->s[1] = v->s[2] = v->s[3] = v->d[1] = v->d[2] = v->d[3] = 0;
	} else {
		for (int i = 0; i < 4; i++) {
			v->s[i] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			v->d[i] = skc->skc_v6_daddr.in6_u.u6_addr32[i];
		}
	}
	v->err = sk->sk_err;
	v->netns = skc->skc_net.net->ns.inum;
}

/* Fill v from a socket pointer computed by hand (container_of): probe reads. */
static __always_inline void view_probe(struct sk_view *v, const struct sock *sk, __u16 family)
{
	v->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	v->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	__builtin_memset(v->s, 0, sizeof(v->s));
	__builtin_memset(v->d, 0, sizeof(v->d));
	if (family == AF_INET) {
		v->s[0] = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		v->d[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	} else {
		bpf_core_read(v->s, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(v->d, 16, &sk->__sk_common.skc_v6_daddr);
	}
	v->err = BPF_CORE_READ(sk, sk_err);
	v->netns = netns_of(sk);
}

/*
 * Summary-only mode (--no-events). With stream_transitions off, ordinary
 * transitions, TIME_WAIT and reset records are not sent: they are folded
 * into the owner's entry in "aggs". What is still sent: process exits, and
 * every transition of a socket user space watches (cw_watch: a CLOSE_WAIT
 * it found stuck by reading "socks"), so stuck reports and their end work
 * as before. Ownership bookkeeping in socks/listeners/reqs/tws is unchanged.
 */
const volatile __u8 stream_transitions = 1;

/*
 * aggs: owner tgid -> per-CPU aggregate. Created at a process's first
 * counted event, deleted by user space after the process exited and holds
 * no live TIME_WAIT. A full map is counted (COUNTER_AGGS_FULL).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct proc_agg);
} aggs SEC(".maps");

/* A zeroed proc_agg to create entries from (never written). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct proc_agg);
} agg_zero SEC(".maps");

/*
 * cw_watch: sockets user space found stuck in CLOSE_WAIT (inserted by user
 * space); their transitions are sent. Deleted here at ->CLOSE; LRU bounds
 * what a missed ->CLOSE could leave.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} cw_watch SEC(".maps");

/* What the last TIME_WAIT cancel on this CPU counted, undone by a re-arm. */
struct tw_undo {
	__u64 cookie;
	__u64 prev_max;
	__u32 owner;
	__u32 bucket; /* AGG_BUCKETS: no dwell was counted */
	__u8 was_live;
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tw_undo);
} agg_tw_undo SEC(".maps");

static __always_inline struct proc_agg *agg_of(__u32 tgid, const char *comm)
{
	struct proc_agg *a = bpf_map_lookup_elem(&aggs, &tgid);
	if (!a) {
		__u32 zero = 0;
		struct proc_agg *z = bpf_map_lookup_elem(&agg_zero, &zero);
		if (!z)
			return NULL;
		if (bpf_map_update_elem(&aggs, &tgid, z, BPF_NOEXIST) == -E2BIG) {
			count(COUNTER_AGGS_FULL);
			return NULL;
		}
		a = bpf_map_lookup_elem(&aggs, &tgid);
		if (!a)
			return NULL;
	}
	if (!a->comm[0] && comm)
		__builtin_memcpy(a->comm, comm, sizeof(a->comm));
	return a;
}

static __always_inline __u32 agg_bucket(__u64 v)
{
	if (v < (1ULL << AGG_MIN_SHIFT))
		return 0;
	if (v >= (1ULL << AGG_MAX_SHIFT))
		v = (1ULL << AGG_MAX_SHIFT) - 1;
	__u32 e = 63 - __builtin_clzll(v);
	__u32 mant = (v >> (e - AGG_SUB_BITS)) & ((1 << AGG_SUB_BITS) - 1);
	return ((e - AGG_MIN_SHIFT) << AGG_SUB_BITS) | mant;
}

/* h[b] += d, with a bounds check clang cannot drop (the verifier needs it). */
static __always_inline void hist_add(__u32 *h, __u32 b, __u32 d)
{
	asm volatile("" : "+r"(b));
	if (b < AGG_BUCKETS)
		ADD(&h[b], d);
}

/* Fold a transition into its owner's aggregate. Returns false when it must still be sent. */
static __always_inline bool fold_state(const struct sock_info *si, const struct sk_view *v, __u64 cookie,
				       __u64 ts, __u8 old_state, __u8 new_state)
{
	if ((old_state == TCP_CLOSE_WAIT || old_state == TCP_LAST_ACK) &&
	    bpf_map_lookup_elem(&cw_watch, &cookie)) {
		if (new_state == TCP_CLOSE)
			bpf_map_delete_elem(&cw_watch, &cookie);
		return false;
	}
	bool active = old_state == TCP_SYN_SENT;
	if ((!active && old_state != TCP_SYN_RECV) || (new_state != TCP_ESTABLISHED && new_state != TCP_CLOSE))
		return true;
	if (!passes_filters(si)) {
		count(COUNTER_FILTERED);
		return true;
	}
	struct proc_agg *a = agg_of(si->owner_tgid, si->comm);
	if (!a)
		return true;
	if (active)
		ADD(&a->active, 1);
	else
		ADD(&a->passive, 1);
	if (new_state == TCP_CLOSE) {
		__u8 err = v->err;
		if (err == 111)
			ADD(&a->refused, 1);
		else if (err == 104)
			ADD(&a->reset, 1);
		else
			ADD(&a->timeout, 1);
		return true;
	}
	if (!si->open_ns || si->open_ns > ts)
		return true;
	__u64 lat = ts - si->open_ns;
	hist_add(a->hs_hist, agg_bucket(lat), 1);
	if (lat > a->hs_max_ns)
		a->hs_max_ns = lat;
	return true;
}

/* Fold a TIME_WAIT record (start, cancel, re-arm, expiry) into its owner's aggregate. */
static __always_inline void fold_tw(const struct inet_timewait_sock *tw, __u64 cookie,
				    const struct tw_info *info, __u8 kind)
{
	__u32 owner = info ? info->owner_tgid : 0;
	if (filter_tgid && owner != filter_tgid)
		return;
	if (filter_family && BPF_CORE_READ(tw, __tw_common.skc_family) != filter_family)
		return;
	if (filter_port) {
		__u16 sport = BPF_CORE_READ(tw, __tw_common.skc_num);
		__u16 dport = bpf_ntohs(BPF_CORE_READ(tw, __tw_common.skc_dport));
		if (sport != filter_port && dport != filter_port)
			return;
	}
	__u32 zero = 0;
	struct tw_undo *u = bpf_map_lookup_elem(&agg_tw_undo, &zero);
	if (!u)
		return;
	struct proc_agg *a;
	if (kind == RECORD_TW_START || kind == RECORD_TW_REARM) {
		if (u->cookie == cookie) {
			/* cancel + start: it lives on; the cancel was no end. */
			u->cookie = 0;
			a = agg_of(u->owner, NULL);
			if (!a)
				return;
			ADD(&a->tw_ended, -1);
			ADD(&a->tw_cancelled, -1);
			hist_add(a->tw_hist, u->bucket, (__u32)-1);
			a->tw_max_ns = u->prev_max;
			if (u->was_live) {
				ADD(&a->tw_live, 1);
				return;
			}
		}
		a = agg_of(owner, info ? info->comm : NULL);
		if (a)
			ADD(&a->tw_live, 1);
		return;
	}
	a = agg_of(owner, info ? info->comm : NULL);
	if (!a)
		return;
	ADD(&a->tw_ended, 1);
	if (kind == RECORD_TW_EXPIRE)
		ADD(&a->tw_expired, 1);
	else
		ADD(&a->tw_cancelled, 1);
	if (info)
		ADD(&a->tw_live, -1);
	__u32 b = AGG_BUCKETS;
	__u64 prev_max = a->tw_max_ns;
	__u64 now = bpf_ktime_get_ns();
	if (info && info->start_ns && info->start_ns <= now) {
		__u64 dwell = now - info->start_ns;
		b = agg_bucket(dwell);
		hist_add(a->tw_hist, b, 1);
		if (dwell > a->tw_max_ns)
			a->tw_max_ns = dwell;
	}
	if (kind == RECORD_TW_CANCEL) {
		u->cookie = cookie;
		u->owner = owner;
		u->bucket = b;
		u->prev_max = prev_max;
		u->was_live = info != NULL;
	}
}

/* Fold a reset into its owner's aggregate (si already passed the filters). */
static __always_inline void fold_reset(const struct sock_info *si, __u8 kind)
{
	struct proc_agg *a = agg_of(si->owner_tgid, si->owner_tgid ? si->comm : NULL);
	if (!a)
		return;
	if (kind == RECORD_RESET_TX)
		ADD(&a->resets_tx, 1);
	else
		ADD(&a->resets_rx, 1);
}

/* Send one state record built from si, with old -> new at ts. */
static __always_inline void emit_state(const struct sock_info *si, const struct sk_view *v, __u64 cookie,
				       __u64 ts, __u8 old_state, __u8 new_state)
{
	if (!stream_transitions && fold_state(si, v, cookie, ts, old_state, new_state))
		return;
	if (!passes_filters(si)) {
		count(COUNTER_FILTERED);
		return;
	}
	struct record *r = reserve();
	if (!r)
		return;
	fill_from_info(r, si);
	r->kind = RECORD_STATE;
	r->ts_ns = ts;
	r->cookie = cookie;
	r->current_tgid = bpf_get_current_pid_tgid() >> 32;
	r->old_state = old_state;
	r->new_state = new_state;
	r->sk_err = v->err;
	r->netns = v->netns;
	if (old_state == TCP_CLOSE)
		r->state_since_ns = 0; /* a new socket: no time in CLOSE to report */
	__builtin_memset(r->pad, 0, sizeof(r->pad));
	bpf_ringbuf_submit(r, wakeup_flags());
}

/*
 * Read the 4-tuple of any socket kind (full, request, timewait) from its
 * sock_common. sport is taken from skc_num (host order), which full
 * sockets clear at CLOSE; callers with full sockets use capture_addrs.
 */
static __always_inline void common_tuple(const struct sock_common *skc, __u16 family, __u16 *sport,
					 __u16 *dport, __u8 *saddr, __u8 *daddr)
{
	*sport = BPF_CORE_READ(skc, skc_num);
	*dport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	if (family == AF_INET) {
		__u32 s4 = BPF_CORE_READ(skc, skc_rcv_saddr), d4 = BPF_CORE_READ(skc, skc_daddr);
		__builtin_memcpy(saddr, &s4, 4);
		__builtin_memcpy(daddr, &d4, 4);
	} else {
		bpf_core_read(saddr, 16, &skc->skc_v6_rcv_saddr);
		bpf_core_read(daddr, 16, &skc->skc_v6_daddr);
	}
}

/*
 * Copy addresses and ports into si, keeping the remembered value for any
 * field the kernel has already cleared (ports are 0 at ->CLOSE after
 * tcp_disconnect, the peer address is zeroed, etc.).
 */
static __always_inline void capture_addrs(struct sock_info *si, const struct sk_view *v)
{
	bool have = si->flags & SOCK_F_HAVE_ADDRS;
	if (v->sport || !have)
		si->sport = v->sport;
	if (v->dport || !have)
		si->dport = v->dport;
	if ((v->s[0] | v->s[1] | v->s[2] | v->s[3]) || !have)
		__builtin_memcpy(si->saddr, v->s, sizeof(v->s));
	if ((v->d[0] | v->d[1] | v->d[2] | v->d[3]) || !have)
		__builtin_memcpy(si->daddr, v->d, sizeof(v->d));
	si->flags |= SOCK_F_HAVE_ADDRS;
}

static __always_inline void own_by_current(struct sock_info *si)
{
	si->owner_tgid = bpf_get_current_pid_tgid() >> 32;
	si->cgroup_id = bpf_get_current_cgroup_id();
	/* The process's name, not the calling thread's (threads rename themselves). */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	BPF_CORE_READ_STR_INTO(&si->comm, task, group_leader, comm);
	si->flags &= ~SOCK_F_INHERITED;
}

/*
 * A child socket appears at LISTEN->SYN_RECV, in softirq context. Its owner
 * (until accept) and its handshake start come from the request that the
 * SYN created, found by 4-tuple; without one (syncookies, or the SYN came
 * before tracing) the owner comes from the listening port.
 */
static __always_inline void inherit_from_listener(struct sock_info *si, __u32 netns)
{
	struct req_key rk = {
		.netns = netns,
		.sport = si->sport,
		.dport = si->dport,
	};
	__builtin_memcpy(rk.saddr, si->saddr, sizeof(rk.saddr));
	__builtin_memcpy(rk.daddr, si->daddr, sizeof(rk.daddr));
	struct req_info *ri = bpf_map_lookup_elem(&reqs, &rk);
	if (ri) {
		si->open_ns = ri->syn_ns;
		__u32 owner = ri->owner_tgid;
		if (owner) {
			si->owner_tgid = owner;
			si->cgroup_id = ri->cgroup_id;
			__builtin_memcpy(si->comm, ri->comm, sizeof(si->comm));
			si->flags |= SOCK_F_INHERITED;
		}
		bpf_map_delete_elem(&reqs, &rk);
		if (owner)
			return;
	}
	struct listener_key lk = {
		.netns = netns,
		.port = si->sport,
	};
	struct listener_owner *l = bpf_map_lookup_elem(&listeners, &lk);
	if (!l || !l->owner_tgid)
		return; /* unknown or ambiguous: say so, never guess */
	si->owner_tgid = l->owner_tgid;
	si->cgroup_id = l->cgroup_id;
	__builtin_memcpy(si->comm, l->comm, sizeof(si->comm));
	si->flags |= SOCK_F_INHERITED;
}

static __always_inline void remember_listener(const struct sock_info *si, __u32 netns, __u64 cookie)
{
	struct listener_key lk = {
		.netns = netns,
		.port = si->sport,
	};
	struct listener_owner *l = bpf_map_lookup_elem(&listeners, &lk);
	if (l) {
		/* SO_REUSEPORT: a second listener on the same port. */
		if (l->owner_tgid != si->owner_tgid)
			l->owner_tgid = 0;
		return;
	}
	struct listener_owner nl = {
		.cookie = cookie,
		.cgroup_id = si->cgroup_id,
		.owner_tgid = si->owner_tgid,
	};
	__builtin_memcpy(nl.comm, si->comm, sizeof(nl.comm));
	if (bpf_map_update_elem(&listeners, &lk, &nl, BPF_NOEXIST) == -E2BIG)
		count(COUNTER_LISTENERS_FULL);
}

static __always_inline void forget_listener(const struct sock_info *si, __u32 netns, __u64 cookie)
{
	struct listener_key lk = {
		.netns = netns,
		.port = si->sport,
	};
	struct listener_owner *l = bpf_map_lookup_elem(&listeners, &lk);
	if (l && l->cookie == cookie)
		bpf_map_delete_elem(&listeners, &lk);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0; /* MPTCP-level sockets: their TCP subflows are reported */
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;

	__u64 ts = bpf_ktime_get_ns();
	__u64 skp = (__u64)sk;
	if (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV && !sk->__sk_common.skc_dport) {
		/*
		 * A new child that still carries its listener's identity (no
		 * peer port yet): kernels before 6.10 trace it inside
		 * inet_csk_clone_lock() before setting it. Hold it.
		 */
		bpf_map_update_elem(&children, &skp, &ts, BPF_ANY);
		return 0;
	}
	__u64 cookie = bpf_get_socket_cookie((void *)sk);
	struct sock_info *si = bpf_map_lookup_elem(&socks, &cookie);
	bool tracked = si != NULL;
	struct sk_view v;
	view_btf(&v, sk, family);

	if (!si) {
		__u32 zero = 0;
		si = bpf_map_lookup_elem(&scratch, &zero);
		if (!si)
			return 0;
		__builtin_memset(si, 0, sizeof(*si));
		si->family = family;
		__u64 *born = oldstate == TCP_SYN_RECV ? bpf_map_lookup_elem(&children, &skp) : NULL;
		if (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV) {
			/* A new child with its own identity: owner from its request. */
			capture_addrs(si, &v);
			inherit_from_listener(si, v.netns);
		} else if (born) {
			/* Release the held LISTEN->SYN_RECV, now with the child's identity. */
			__u64 born_ts = *born;
			bpf_map_delete_elem(&children, &skp);
			capture_addrs(si, &v);
			inherit_from_listener(si, v.netns);
			emit_state(si, &v, cookie, born_ts, TCP_LISTEN, TCP_SYN_RECV);
			si->state_since_ns = born_ts;
		}
	}
	/*
	 * CLOSE->SYN_SENT (connect) and CLOSE->LISTEN (listen) always run in the
	 * owning process's own system call: current is the owner.
	 */
	if (oldstate == TCP_CLOSE && (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN))
		own_by_current(si);
	/*
	 * ESTABLISHED->FIN_WAIT1 and CLOSE_WAIT->LAST_ACK happen only in
	 * close() or shutdown(), in the process holding the descriptor: a
	 * socket still attributed to its listener's owner (accept() not
	 * hooked, or handed to another process) gets its real owner here.
	 */
	else if ((si->flags & SOCK_F_INHERITED) &&
		 ((oldstate == TCP_ESTABLISHED && newstate == TCP_FIN_WAIT1) ||
		  (oldstate == TCP_CLOSE_WAIT && newstate == TCP_LAST_ACK)))
		own_by_current(si);
	capture_addrs(si, &v);

	if (si->flags & SOCK_F_PENDING_SYN_SENT) {
		/* The SYN never armed the timer (connect failed early): release now. */
		si->flags &= ~SOCK_F_PENDING_SYN_SENT;
		emit_state(si, &v, cookie, si->open_ns, TCP_CLOSE, TCP_SYN_SENT);
		si->state_since_ns = si->open_ns;
	}

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		si->open_ns = ts;
		/* The source port is chosen after this tracepoint: hold the record. */
		if (si->sport == 0)
			si->flags |= SOCK_F_PENDING_SYN_SENT;
		else
			emit_state(si, &v, cookie, ts, oldstate, newstate);
	} else {
		emit_state(si, &v, cookie, ts, oldstate, newstate);
	}
	si->state = newstate;
	si->state_since_ns = ts;
	si->sk = skp;

	if (newstate == TCP_LISTEN)
		remember_listener(si, v.netns, cookie);
	else if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE)
		forget_listener(si, v.netns, cookie);

	if (newstate == TCP_CLOSE) {
		if (tracked)
			bpf_map_delete_elem(&socks, &cookie);
		return 0;
	}
	if (!tracked && bpf_map_update_elem(&socks, &cookie, si, BPF_NOEXIST) == -E2BIG)
		count(COUNTER_SOCKS_FULL);
	return 0;
}

/* tcp_connect() armed the retransmit timer after the SYN: the port is known. */
static __always_inline void release_syn_sent(struct timer_list *timer)
{
	struct sock *sk = (struct sock *)((void *)timer -
		bpf_core_field_offset(struct inet_connection_sock, icsk_retransmit_timer));
	if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return;
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return;
	struct sock_info *si = bpf_map_lookup_elem(&socks, &cookie);
	if (!si || !(si->flags & SOCK_F_PENDING_SYN_SENT))
		return;
	si->flags &= ~SOCK_F_PENDING_SYN_SENT;
	struct sk_view v;
	view_probe(&v, sk, si->family);
	capture_addrs(si, &v);
	emit_state(si, &v, cookie, si->open_ns, TCP_CLOSE, TCP_SYN_SENT);
}

/* A SYN created a request socket: remember when, and whose listener took it. */
static __always_inline void note_request(struct timer_list *timer)
{
	struct request_sock *req = (struct request_sock *)((void *)timer -
		bpf_core_field_offset(struct request_sock, rsk_timer));
	const struct sock_common *skc = &req->__req_common;
	__u16 family = BPF_CORE_READ(skc, skc_family);
	if (family != AF_INET && family != AF_INET6)
		return;
	struct req_key rk = {.netns = BPF_CORE_READ(skc, skc_net.net, ns.inum)};
	common_tuple(skc, family, &rk.sport, &rk.dport, rk.saddr, rk.daddr);
	struct req_info ri = {.syn_ns = bpf_ktime_get_ns()};
	struct sock *listener = BPF_CORE_READ(skc, skc_listener);
	__u64 lcookie = BPF_CORE_READ(listener, __sk_common.skc_cookie.counter);
	struct sock_info *li = lcookie ? bpf_map_lookup_elem(&socks, &lcookie) : NULL;
	if (li) {
		ri.owner_tgid = li->owner_tgid;
		ri.cgroup_id = li->cgroup_id;
		__builtin_memcpy(ri.comm, li->comm, sizeof(ri.comm));
	}
	/*
	 * The timer is re-armed for SYN-ACK retransmissions and repeated SYNs:
	 * NOEXIST keeps the first SYN's time, without a lookup per connection
	 * to find out first.
	 */
	bpf_map_update_elem(&reqs, &rk, &ri, BPF_NOEXIST);
}

static __always_inline struct inet_timewait_sock *tw_of(struct timer_list *timer)
{
	return (struct inet_timewait_sock *)((void *)timer -
		bpf_core_field_offset(struct inet_timewait_sock, tw_timer));
}

/*
 * Send a TIME_WAIT record for tw; info may be NULL (began before tracing).
 * ts: the record's time when the caller has just read the clock, else 0
 * (a clock read costs ~90 ns on a paravirtualised guest).
 */
static __always_inline void emit_tw(struct inet_timewait_sock *tw, __u64 cookie, const struct tw_info *info,
				    __u8 kind, __u64 ts)
{
	if (!stream_transitions) {
		fold_tw(tw, cookie, info, kind);
		return;
	}
	const struct sock_common *skc = &tw->__tw_common;
	__u16 family = BPF_CORE_READ(skc, skc_family);
	__u32 owner = info ? info->owner_tgid : 0;
	if (filter_tgid && owner != filter_tgid)
		return;
	if (filter_family && family != filter_family)
		return;
	__u16 sport, dport;
	__u8 saddr[16] = {}, daddr[16] = {};
	common_tuple(skc, family, &sport, &dport, saddr, daddr);
	if (filter_port && sport != filter_port && dport != filter_port)
		return;
	struct record *r = reserve();
	if (!r)
		return;
	__builtin_memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->ts_ns = ts ? ts : bpf_ktime_get_ns();
	r->cookie = cookie;
	r->current_tgid = bpf_get_current_pid_tgid() >> 32;
	r->fd = -1;
	r->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	r->family = family;
	r->sport = sport;
	r->dport = dport;
	__builtin_memcpy(r->saddr, saddr, sizeof(saddr));
	__builtin_memcpy(r->daddr, daddr, sizeof(daddr));
	r->old_state = BPF_CORE_READ(tw, tw_substate);
	r->new_state = TCP_TIME_WAIT;
	if (info) {
		r->state_since_ns = info->start_ns;
		r->owner_tgid = owner;
		r->cgroup_id = info->cgroup_id;
		__builtin_memcpy(r->comm, info->comm, sizeof(r->comm));
	}
	bpf_ringbuf_submit(r, wakeup_flags());
}

/* A timewait socket's timer was armed: TIME_WAIT began, or goes on. */
/*
 * tws is needed only where the kernel itself must know a TIME_WAIT's start
 * and owner at its end: summary-only mode (it computes the dwell) and the
 * --pid filter (it filters ends by owner). When streaming, user space has
 * every start record and keeps the live TIME_WAITs; inserting and deleting
 * here (each update locks a bucket with interrupts off) cost about 1 us per
 * connection on a VM for nothing.
 */
static __always_inline bool tws_kept(void)
{
	return !stream_transitions || filter_tgid;
}

static __always_inline void tw_armed(struct timer_list *timer)
{
	struct inet_timewait_sock *tw = tw_of(timer);
	__u64 cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	if (!cookie || (tws_kept() && bpf_map_lookup_elem(&tws, &cookie)))
		return;
	__u32 zero = 0;
	struct tw_cancelled *last = bpf_map_lookup_elem(&tw_last_cancel, &zero);
	if (last && last->cookie == cookie) {
		/* cancel + start: rescheduled (FIN_WAIT2 substate -> TIME_WAIT). */
		last->cookie = 0;
		if (!tws_kept()) {
			emit_tw(tw, cookie, NULL, RECORD_TW_REARM, 0);
			return;
		}
		bpf_map_update_elem(&tws, &cookie, &last->info, BPF_ANY);
		emit_tw(tw, cookie, &last->info, RECORD_TW_REARM, 0);
		return;
	}
	struct tw_info ti = {.start_ns = bpf_ktime_get_ns()};
	/* The full socket still exists: it goes to CLOSE microseconds later. */
	struct sock_info *si = bpf_map_lookup_elem(&socks, &cookie);
	if (si) {
		ti.owner_tgid = si->owner_tgid;
		ti.cgroup_id = si->cgroup_id;
		__builtin_memcpy(ti.comm, si->comm, sizeof(ti.comm));
	}
	if (tws_kept() && bpf_map_update_elem(&tws, &cookie, &ti, BPF_NOEXIST) == -E2BIG)
		count(COUNTER_TWS_FULL);
	emit_tw(tw, cookie, &ti, RECORD_TW_START, ti.start_ns);
}

/*
 * Timer starts fire for every kernel timer on the host (~12 per TCP
 * connection): compare the function first and leave.
 */
SEC("tp_btf/timer_start")
int BPF_PROG(on_timer_start, struct timer_list *timer)
{
	__u64 fn = (__u64)timer->function;
	if (fn == tcp_write_timer_addr && fn)
		release_syn_sent(timer);
	else if (fn == tw_timer_addr && fn)
		tw_armed(timer);
	else if (fn == reqsk_timer_addr && fn)
		note_request(timer);
	return 0;
}

/*
 * A timer stopped before it ran. For a timewait socket this is an early end
 * (ss -K, the 4-tuple reused by a new connection or SYN) unless the timer
 * is re-armed at once; the natural end also passes here just before
 * timer_expire_entry, recognisable by the expiry time having come.
 */
SEC("tp_btf/timer_cancel")
int BPF_PROG(on_timer_cancel, struct timer_list *timer)
{
	if (!tw_timer_addr || (__u64)timer->function != tw_timer_addr)
		return 0;
	if ((long)(bpf_jiffies64() - timer->expires) >= 0)
		return 0; /* expiring now: timer_expire_entry reports it */
	struct inet_timewait_sock *tw = tw_of(timer);
	__u64 cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	struct tw_info *ti = tws_kept() ? bpf_map_lookup_elem(&tws, &cookie) : NULL;
	__u32 zero = 0;
	struct tw_cancelled *last = bpf_map_lookup_elem(&tw_last_cancel, &zero);
	if (last && (ti || !tws_kept())) {
		last->cookie = cookie;
		if (ti)
			last->info = *ti;
	}
	emit_tw(tw, cookie, ti, RECORD_TW_CANCEL, 0);
	if (ti)
		bpf_map_delete_elem(&tws, &cookie);
	return 0;
}

/* A timewait socket's timer ran: TIME_WAIT ended naturally. */
SEC("tp_btf/timer_expire_entry")
int BPF_PROG(on_timer_expire, struct timer_list *timer)
{
	if (!tw_timer_addr || (__u64)timer->function != tw_timer_addr)
		return 0;
	struct inet_timewait_sock *tw = tw_of(timer);
	__u64 cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	struct tw_info *ti = tws_kept() ? bpf_map_lookup_elem(&tws, &cookie) : NULL;
	emit_tw(tw, cookie, ti, RECORD_TW_EXPIRE, 0);
	if (ti)
		bpf_map_delete_elem(&tws, &cookie);
	return 0;
}

/* Resets: counted per owning process in user space. */
static __always_inline void emit_reset(const struct sock *sk, __u8 kind)
{
	if (!sk)
		return;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return;
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	struct sock_info *si = cookie ? bpf_map_lookup_elem(&socks, &cookie) : NULL;
	__u32 zero = 0;
	struct sock_info *tmp = bpf_map_lookup_elem(&scratch, &zero);
	if (!tmp)
		return;
	if (si) {
		*tmp = *si;
	} else {
		__builtin_memset(tmp, 0, sizeof(*tmp));
		tmp->family = family;
		common_tuple(&sk->__sk_common, family, &tmp->sport, &tmp->dport, tmp->saddr, tmp->daddr);
	}
	if (!passes_filters(tmp))
		return;
	if (!stream_transitions) {
		fold_reset(tmp, kind);
		return;
	}
	struct record *r = reserve();
	if (!r)
		return;
	fill_from_info(r, tmp);
	r->kind = kind;
	r->ts_ns = bpf_ktime_get_ns();
	r->cookie = cookie;
	r->current_tgid = bpf_get_current_pid_tgid() >> 32;
	r->old_state = state;
	r->new_state = state;
	__builtin_memset(r->pad, 0, sizeof(r->pad));
	bpf_ringbuf_submit(r, wakeup_flags());
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, struct sock *sk)
{
	emit_reset(sk, RECORD_RESET_RX);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_send_reset, const struct sock *sk)
{
	emit_reset(sk, RECORD_RESET_TX);
	return 0;
}

/*
 * Every full socket is destroyed after its ->CLOSE. If its entry is still
 * here, the kernel skipped on_set_state for that transition (a softirq
 * nested on the same CPU runs into BPF's recursion protection): report the
 * certain ->CLOSE, marked inferred, and free the entry.
 */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(on_destroy_sock, struct sock *sk)
{
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	struct sock_info *si = bpf_map_lookup_elem(&socks, &cookie);
	if (!si)
		return 0;
	si->flags |= SOCK_F_INFERRED;
	struct sk_view v;
	view_btf(&v, sk, si->family);
	emit_state(si, &v, cookie, bpf_ktime_get_ns(), si->state, TCP_CLOSE);
	bpf_map_delete_elem(&socks, &cookie);
	return 0;
}

/*
 * The accepting process now owns sk (fd: its new descriptor, or -1 where
 * not known yet). The socket was created in softirq context, so only here
 * do we learn who really holds it (prefork servers, handed-off listeners).
 */
static __always_inline void note_accept(const struct sock *sk, long fd)
{
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return;
	struct sock_info *si = bpf_map_lookup_elem(&socks, &cookie);
	if (!si)
		return;
	own_by_current(si);
	if (!passes_filters(si))
		return;
	if (!stream_transitions && !bpf_map_lookup_elem(&cw_watch, &cookie))
		return; /* summary-only: owners are in socks; only watched sockets stream */
	struct record *r = reserve();
	if (!r)
		return;
	fill_from_info(r, si);
	r->kind = RECORD_ACCEPT;
	r->ts_ns = bpf_ktime_get_ns();
	r->cookie = cookie;
	r->fd = fd;
	r->current_tgid = si->owner_tgid;
	r->old_state = si->state;
	r->new_state = si->state;
	__builtin_memset(r->pad, 0, sizeof(r->pad));
	bpf_ringbuf_submit(r, wakeup_flags());
}

/*
 * accept() as seen from inside the kernel: inet_accept() returned 0 with
 * the new socket grafted onto newsock. Costs nothing outside accept(),
 * unlike the syscall tracepoints below, but needs fexit (production
 * kernels; refused on some) and the descriptor is installed only later.
 * inet_accept's other parameters changed across kernels: only the first
 * two are named, the return value comes from bpf_get_func_ret.
 */
SEC("fexit/inet_accept")
int BPF_PROG(on_inet_accept, struct socket *sock, struct socket *newsock)
{
	__u64 ret = 1;
	if (bpf_get_func_ret(ctx, &ret) || (int)ret != 0)
		return 0;
	note_accept(BPF_CORE_READ(newsock, sk), -1);
	return 0;
}

/* Layout of syscalls/sys_exit_* tracepoint records. */
struct sys_exit_args {
	__u64 common;
	int nr;
	long ret;
};

/*
 * accept() returned fd, seen at the system call's exit. Attaching any
 * syscall tracepoint sends every system call on the host through the
 * tracing slow path, so the loader uses these only when asked to.
 */
static __always_inline int on_accept_exit(struct sys_exit_args *ctx)
{
	long fd = ctx->ret;
	if (fd < 0)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max_fds = BPF_CORE_READ(task, files, fdt, max_fds);
	if (!fds || fd >= max_fds)
		return 0;
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	note_accept(BPF_CORE_READ(sock, sk), fd);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int on_accept4_exit(struct sys_exit_args *ctx)
{
	return on_accept_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int on_accept_exit_plain(struct sys_exit_args *ctx)
{
	return on_accept_exit(ctx);
}

/* A whole process ended: sockets it owned may now be held only by others. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_process_exit, struct task_struct *task)
{
	if (task->pid != task->tgid)
		return 0; /* only the thread-group leader's exit matters */
	struct record *r = reserve();
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->kind = RECORD_EXIT;
	r->fd = -1;
	r->ts_ns = bpf_ktime_get_ns();
	r->owner_tgid = task->tgid;
	r->current_tgid = task->tgid;
	bpf_probe_read_kernel_str(r->comm, sizeof(r->comm), task->comm);
	bpf_ringbuf_submit(r, wakeup_flags());
	return 0;
}

/*
 * Start-up (and re-)scan: one struct seed per TCP socket descriptor of every
 * process, written to the iterator's seq_file for the loader.
 */
SEC("iter/task_file")
int scan_task_files(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	if (!task || !file)
		return 0;
	struct socket *sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	struct sock *sk = sock->sk;
	if (!sk)
		return 0;
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;

	struct seed s = {};
	s.cookie = bpf_get_socket_cookie(sk);
	s.tgid = task->tgid;
	s.fd = ctx->fd;
	s.family = family;
	s.state = sk->__sk_common.skc_state;
	s.cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	struct sk_view v;
	view_btf(&v, sk, family);
	s.netns = v.netns;
	s.sport = v.sport;
	s.dport = v.dport;
	__builtin_memcpy(s.saddr, v.s, sizeof(s.saddr));
	__builtin_memcpy(s.daddr, v.d, sizeof(s.daddr));
	bpf_probe_read_kernel_str(s.comm, sizeof(s.comm), task->comm);
	bpf_seq_write(seq, &s, sizeof(s));
	return 0;
}

/*
 * Sweep of "socks": an entry whose socket is gone (its ->CLOSE and its
 * destruction were both missed: the kernel skips programs that would nest
 * on a CPU, ~20 entries per million connections under churn) would stay
 * until the map is full. An entry is deleted when the memory its socket
 * pointer names no longer holds that socket alive: another cookie (reused),
 * no references (freed: TCP socket memory stays socket memory,
 * SLAB_TYPESAFE_BY_RCU) or CLOSE. Entries without a pointer stay.
 *
 * A syscall program the loader runs (BPF_PROG_RUN) at each owner re-scan,
 * walking the map with bpf_for_each_map_elem: unlike a map element
 * iterator (refused with EPERM on some kernels, the 6.18 development VM
 * among them) it needs no attachment. Returns how many entries it deleted.
 */
static long sweep_one(struct bpf_map *map, __u64 *key, struct sock_info *si, __u32 *deleted)
{
	if (!si->sk)
		return 0;
	const struct sock *sk = (const struct sock *)si->sk;
	__u64 cookie = 0;
	int refs = 0;
	__u8 state = 0;
	if (bpf_core_read(&cookie, sizeof(cookie), &sk->__sk_common.skc_cookie.counter) ||
	    bpf_core_read(&refs, sizeof(refs), &sk->__sk_common.skc_refcnt.refs.counter) ||
	    bpf_core_read(&state, sizeof(state), &sk->__sk_common.skc_state))
		return 0; /* unreadable: keep it, decide next time */
	if (cookie == *key && refs > 0) {
		/*
		 * Alive. CLOSE too means gone (->CLOSE deletes the entry) unless
		 * the entry is a moment old: CLOSE->SYN_SENT inserts it before the
		 * kernel stores the new state.
		 */
		if (state != TCP_CLOSE || bpf_ktime_get_ns() - si->state_since_ns < 1000000000ULL)
			return 0;
	}
	if (bpf_map_delete_elem(map, key) == 0)
		(*deleted)++;
	return 0;
}

SEC("syscall")
int sweep_socks(void *ctx)
{
	__u32 deleted = 0;
	bpf_for_each_map_elem(&socks, sweep_one, &deleted, 0);
	return deleted;
}
