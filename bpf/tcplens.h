/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The contract between the eBPF programs and the Go loader.
 *
 * bpf2go generates the Go types from these definitions (-type record, -type
 * seed, -type sock_info, -type listener_key, -type listener, -type
 * record_kind, -type counter, -type sock_flag), so the layouts can never
 * drift. Keep every struct free of implicit padding: explicit pad fields
 * make the layout the same for clang and for Go.
 */
#ifndef TCPLENS_H
#define TCPLENS_H

#define TCPLENS_COMM_LEN 16

/* What a ring-buffer record describes. */
enum record_kind {
	/* A TCP state transition of a full socket. */
	RECORD_STATE = 1,
	/* A process took ownership of a socket by accept(); old/new unused. */
	RECORD_ACCEPT = 2,
	/* A thread group ended: owner_tgid exited (user space re-checks ownership). */
	RECORD_EXIT = 3,
	/*
	 * TIME_WAIT, observed through the timewait socket's timer. cookie is
	 * the full socket's (tw_cookie), old_state the tw substate,
	 * state_since_ns when the timewait socket was first armed.
	 */
	RECORD_TW_START = 4,  /* a timewait socket took over */
	RECORD_TW_CANCEL = 5, /* its timer was stopped before expiry (killed, reused, or re-armed) */
	RECORD_TW_REARM = 6,  /* ...and armed again right away: it lives on */
	RECORD_TW_EXPIRE = 7, /* its timer expired: the natural end */
	/* A RST was received / sent on a socket. */
	RECORD_RESET_RX = 8,
	RECORD_RESET_TX = 9,
};

/* Per-CPU counters, index into the "counters" map. */
enum counter {
	/* Records the programs tried to send (sent + lost). */
	COUNTER_PRODUCED = 0,
	/* Records lost because the ring buffer was full. */
	COUNTER_RINGBUF_FULL = 1,
	/* Sockets not tracked because the socks map was full. */
	COUNTER_SOCKS_FULL = 2,
	/* Listeners not tracked because the listeners map was full. */
	COUNTER_LISTENERS_FULL = 3,
	/* Transitions dropped by the in-kernel filters (pid/port/family). */
	COUNTER_FILTERED = 4,
	/* Timewait sockets not tracked because the tws map was full. */
	COUNTER_TWS_FULL = 5,
	/* SYNs not tracked because the reqs map was full (LRU: oldest evicted). */
	COUNTER_REQS_FULL = 6,
	/* Processes not aggregated because the aggs map was full (summary-only mode). */
	COUNTER_AGGS_FULL = 7,
	COUNTER_MAX = 8,
};

/* sock_info.flags */
enum sock_flag {
	/* CLOSE->SYN_SENT seen; held back until the source port is chosen. */
	SOCK_F_PENDING_SYN_SENT = 1,
	/* Entry was created from the start-up scan of the kernel's tables. */
	SOCK_F_SEEDED = 2,
	/* Owner inherited from the listener (not yet accepted). */
	SOCK_F_INHERITED = 4,
	/* Addresses have been captured at least once. */
	SOCK_F_HAVE_ADDRS = 8,
	/*
	 * On a record: the transition was not seen (the kernel skipped the
	 * program, e.g. on recursion) but is certain: this ->CLOSE is inferred
	 * from the socket's destruction.
	 */
	SOCK_F_INFERRED = 16,
};

/*
 * One record in the ring buffer. Times are CLOCK_MONOTONIC nanoseconds
 * (bpf_ktime_get_ns); user space converts them to wall time in one place.
 * Ports are in host byte order; addresses in network byte order (IPv4 in the
 * first four bytes of the 16).
 */
struct record {
	__u64 ts_ns;          /* when the kernel made the change */
	__u64 cookie;         /* socket cookie: stable identity for the socket's life */
	__u64 state_since_ns; /* when the socket entered old_state; 0 = unknown */
	__u64 open_ns;        /* handshake start: SYN sent (active) or received (passive); 0 = unknown */
	__u64 cgroup_id;      /* cgroup of the owner when it took ownership */
	__u32 owner_tgid;     /* process owning the socket; 0 = unknown */
	__u32 current_tgid;   /* task running when the change happened (diagnostic) */
	__s32 fd;             /* RECORD_ACCEPT: the new descriptor; else -1 */
	__u32 netns;          /* network namespace inode number */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;         /* AF_INET or AF_INET6 */
	__u8 kind;            /* enum record_kind */
	__u8 old_state;       /* kernel TCP_* state numbers */
	__u8 new_state;
	__u8 flags;           /* sock_flag bits of the socket at the time */
	__u8 sk_err;          /* the socket's pending error (ECONNREFUSED, ETIMEDOUT...) */
	__u8 pad[5];
	char comm[TCPLENS_COMM_LEN]; /* owner's command */
};

/*
 * Value of the "socks" map: what the kernel side knows about one socket.
 * Also written by user space (start-up scan, owner re-scan).
 */
struct sock_info {
	__u64 state_since_ns;
	__u64 open_ns;        /* handshake start: CLOSE->SYN_SENT, or the SYN's arrival */
	__u64 cgroup_id;
	__u32 owner_tgid;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 state;
	__u8 flags;
	__u32 pad;
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[TCPLENS_COMM_LEN];
	/*
	 * The struct sock, for the sweep's liveness check only (never
	 * dereferenced but through fault-safe reads); 0 = not known (entries
	 * user space created from a scan).
	 */
	__u64 sk;
};

/* Key of the "listeners" map: a listening port in one network namespace. */
struct listener_key {
	__u32 netns;  /* network namespace inode number */
	__u16 port;   /* host byte order */
	__u16 pad;
};

/* Value of the "listeners" map. */
struct listener_owner {
	__u64 cookie;     /* the listening socket */
	__u64 cgroup_id;
	__u32 owner_tgid; /* 0 when processes disagree (SO_REUSEPORT across processes) */
	__u32 pad;
	char comm[TCPLENS_COMM_LEN];
};

/* Key of the "reqs" map: a connection request (SYN received) by 4-tuple. */
struct req_key {
	__u32 netns;
	__u16 sport; /* local (listening) port, host byte order */
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Value of the "reqs" map. */
struct req_info {
	__u64 syn_ns;     /* when the SYN arrived (request socket first armed) */
	__u64 cgroup_id;  /* listener owner's */
	__u32 owner_tgid; /* owner of the listener that took the SYN; 0 = unknown */
	__u32 pad;
	char comm[TCPLENS_COMM_LEN];
};

/* Value of the "tws" map (key: the cookie shared by full and timewait socket). */
struct tw_info {
	__u64 start_ns;   /* when the timewait socket was first armed */
	__u64 cgroup_id;
	__u32 owner_tgid; /* owner of the full socket it replaced */
	__u32 pad;
	char comm[TCPLENS_COMM_LEN];
};

/* What the start-up iterator (iter/task_file) writes for each TCP socket fd. */
struct seed {
	__u64 cookie;
	__u64 cgroup_id; /* the holding task's cgroup (v2) */
	__u32 tgid;
	__u32 fd;
	__u32 netns;     /* network namespace inode number */
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 state;
	__u8 pad;
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[TCPLENS_COMM_LEN];
	__u8 pad2[4];
};

/*
 * Summary-only mode (stream_transitions == 0): per-process aggregates kept
 * in the kernel ("aggs" map, per-CPU, keyed by owner tgid) instead of one
 * record per transition. Histograms are log-linear: 2^AGG_SUB_BITS buckets
 * per power of two from 2^AGG_MIN_SHIFT ns (values below land in bucket 0)
 * to 2^AGG_MAX_SHIFT ns (values above land in the last bucket). Bucket b
 * holds [lo, lo + 2^(e-AGG_SUB_BITS)) with e = b / 2^AGG_SUB_BITS +
 * AGG_MIN_SHIFT and lo = (2^AGG_SUB_BITS + b % 2^AGG_SUB_BITS) << (e -
 * AGG_SUB_BITS): the same buckets as user space's lifecycle.Hist.
 * Counts are per CPU and may be decremented on another CPU than the one
 * that incremented them: sum them with wrap-around (tw_live as signed).
 */
#define AGG_SUB_BITS 3
#define AGG_MIN_SHIFT 10
#define AGG_MAX_SHIFT 38
#define AGG_BUCKETS ((AGG_MAX_SHIFT - AGG_MIN_SHIFT) << AGG_SUB_BITS)

struct proc_agg {
	__u64 active;       /* handshakes by role (SYN_SENT->, SYN_RECV-> ESTABLISHED or CLOSE) */
	__u64 passive;
	__u64 refused;      /* failed handshakes by sk_err, like lifecycle.resultOf */
	__u64 timeout;
	__u64 reset;
	__u64 resets_tx;
	__u64 resets_rx;
	__u64 tw_ended;     /* TIME_WAIT ends: expired + cancelled (killed or reused) */
	__u64 tw_expired;
	__u64 tw_cancelled;
	__u64 tw_live;      /* started - ended: live TIME_WAIT sockets (signed sum) */
	__u64 hs_max_ns;    /* largest handshake latency seen (max over CPUs) */
	__u64 tw_max_ns;    /* largest TIME_WAIT dwell seen */
	char comm[TCPLENS_COMM_LEN];
	__u32 hs_hist[AGG_BUCKETS]; /* latency of successful handshakes */
	__u32 tw_hist[AGG_BUCKETS]; /* TIME_WAIT dwell (ends with a known start) */
};

#endif /* TCPLENS_H */
