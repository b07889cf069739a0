// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * weir's XDP program: the front door of every port.
 *
 * For each received frame, in this order:
 *   1. If it is IPv4/IPv6 (under up to two VLAN tags) and its destination is
 *      in one of the pass-prefix tries (the box's own management address,
 *      say), hand it to the kernel: XDP_PASS, counted as passed_by_rule.
 *   2. Otherwise redirect it to the AF_XDP socket registered for the queue it
 *      arrived on (xsks[rx_queue_index]): counted as redirected.
 *   3. If no socket is registered there (weir is not running, or not on this
 *      queue), XDP_PASS: counted as passed_no_socket. With the two ports in a
 *      kernel bridge this is fail-open: traffic flows, unshaped.
 *
 * Everything that is not a matching IP packet (ARP, ND, LLDP, other
 * ethertypes, truncated or odd frames) takes step 2: weir is a transparent
 * bump in the wire and forwards what it does not understand.
 *
 * The program drops nothing itself. `dropped` counts a redirect that returned
 * neither XDP_REDIRECT nor the XDP_PASS fallback, which the kernel's
 * bpf_redirect_map contract does not produce today; such a frame is passed,
 * not dropped, and the counter exists so a change in that contract is seen.
 * Drops after a successful redirect (socket rx ring full, fill ring empty)
 * happen in the kernel after this program returns and are counted on the
 * socket (getsockopt XDP_STATISTICS), not here.
 *
 * Maps are per instance: weir loads one copy of this object per interface.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Must match XSKMAP_ENTRIES in prog.rs. More than any NIC weir targets has rx
 * queues; an empty slot costs 4 bytes. */
#define XSKMAP_ENTRIES 256
/* Must match PASS_PREFIX_MAX in prog.rs: pass prefixes per address family. */
#define PASS_PREFIX_MAX 256

/* Not in every distribution's UAPI headers (802.1ad and the pre-standard
 * Q-in-Q tag). */
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
#define ETH_P_QINQ1 0x9100

/* Must match the Rust mirror `Counters` in prog.rs field for field. */
struct weir_counters {
	__u64 redirected;
	__u64 passed_no_socket;
	__u64 passed_by_rule;
	__u64 dropped;
};

/* LPM trie keys: prefix length in bits, then the address in network order. */
struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct vlan_tag {
	__be16 tci;
	__be16 encap_proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XSKMAP_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_counters);
} counters SEC(".maps");

/* The kernel requires BPF_F_NO_PREALLOC for LPM tries. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PASS_PREFIX_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u8);
} pass_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PASS_PREFIX_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, __u8);
} pass_v6 SEC(".maps");

/*
 * True when the frame is IPv4/IPv6 to a pass prefix. Every read is bounds
 * checked against data_end right before it, in the form the verifier
 * tracks (pointer + constant size <= data_end).
 */
static __always_inline int dst_is_passed(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	void *cur;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = eth->h_proto;
	cur = eth + 1;

	/* Up to two tags: 802.1ad/Q-in-Q outer, 802.1Q inner. Unrolled, so
	 * the verifier sees straight-line code. */
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_tag *tag = cur;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD) &&
		    proto != bpf_htons(ETH_P_QINQ1))
			break;
		if ((void *)(tag + 1) > data_end)
			return 0;
		proto = tag->encap_proto;
		cur = tag + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;
		struct lpm_v4_key key = { .prefixlen = 32 };

		if ((void *)(ip + 1) > data_end)
			return 0;
		__builtin_memcpy(key.addr, &ip->daddr, sizeof(key.addr));
		return bpf_map_lookup_elem(&pass_v4, &key) != NULL;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;
		struct lpm_v6_key key = { .prefixlen = 128 };

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(key.addr, &ip6->daddr, sizeof(key.addr));
		return bpf_map_lookup_elem(&pass_v6, &key) != NULL;
	}
	return 0;
}

SEC("xdp")
int weir_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct weir_counters *c;
	long action;

	/* Cannot fail for index 0 of a one-entry array; checked for the
	 * verifier. */
	c = bpf_map_lookup_elem(&counters, &zero);

	if (dst_is_passed(data, data_end)) {
		if (c)
			c->passed_by_rule++;
		return XDP_PASS;
	}

	/* One helper call does lookup and redirect: with XDP_PASS in the low
	 * flag bits the helper returns XDP_PASS when xsks has no socket at this
	 * queue (or the index is beyond the map). Per-CPU counters need no
	 * atomics: XDP runs in softirq, never re-entered on one CPU. */
	action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (action == XDP_REDIRECT) {
		if (c)
			c->redirected++;
		return XDP_REDIRECT;
	}
	if (action == XDP_PASS) {
		if (c)
			c->passed_no_socket++;
		return XDP_PASS;
	}
	/* Not produced by today's kernels (see the top comment): count it and
	 * still fail open. */
	if (c)
		c->dropped++;
	return XDP_PASS;
}

/* The kernel refuses GPL-only helpers to programs without a GPL-compatible
 * license string here. The file is dual-licensed (see SPDX line): loaded into
 * the kernel it is GPL; the Rust code around it is the project's Apache-2.0. */
char LICENSE[] SEC("license") = "GPL";
