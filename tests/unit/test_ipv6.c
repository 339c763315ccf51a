/* IPv6: the fixed header, Neighbor Discovery, TCP over IPv6, the IPv6 index and key. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include <wake/config.h>
#include <wake/frame.h>
#include <wake/vmtable.h>

static const uint8_t vm_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x00, 0x10 };
static const uint8_t cl_mac[6] = { 0x02, 0x00, 0x00, 0x03, 0x00, 0x01 };

static void addr(const char *s, uint8_t *a)
{
	assert_int_equal(inet_pton(AF_INET6, s, a), 1);
}

/* Ethernet + IPv6 header with next, hop limit, payload_len; returns the payload offset. */
static size_t ip6_frame(uint8_t *f, const char *src, const char *dst, uint8_t next, uint8_t hops,
			uint16_t plen)
{
	memset(f, 0, 14 + 40);
	memset(f, 0xff, 6);
	memcpy(f + 6, cl_mac, 6);
	f[12] = 0x86, f[13] = 0xdd;
	f[14] = 0x60;
	f[18] = (uint8_t)(plen >> 8), f[19] = (uint8_t)plen;
	f[20] = next, f[21] = hops;
	addr(src, f + 22);
	addr(dst, f + 38);
	return 54;
}

/* A Neighbor Solicitation for target from src, with a source link-layer option. */
static size_t ns_frame(uint8_t *f, const char *src, const char *target, uint8_t hops, bool sll)
{
	size_t o = ip6_frame(f, src, "ff02::1:ff00:10", WK_IPPROTO_ICMPV6, hops, sll ? 32 : 24);

	memset(f + o, 0, 32);
	f[o] = WK_ICMP6_NS;
	addr(target, f + o + 8);
	if (sll) {
		f[o + 24] = 1, f[o + 25] = 1;
		memcpy(f + o + 26, cl_mac, 6);
	}
	return o + (sll ? 32 : 24);
}

static void test_ns_and_na(void **state)
{
	uint8_t f[128], na[128], target[16];
	struct wk_pkt p, a;
	size_t len = ns_frame(f, "fd00::3:1", "fd00::10", 255, true);
	int n;

	assert_int_equal(wk_pkt_parse(f, len, &p), 0);
	assert_int_equal(p.kind, WK_PKT_NS);
	assert_true(p.v6);
	addr("fd00::10", target);
	assert_memory_equal(p.ns.target, target, 16);
	assert_true(p.ns.has_sll);
	assert_memory_equal(p.ns.sll, cl_mac, 6);

	n = wk_na_build(&p.eth, &p.ip6, &p.ns, vm_mac, na, sizeof(na));
	assert_int_equal(n, 14 + 40 + 32);
	assert_memory_equal(na, cl_mac, 6);	/* to the solicitor */
	assert_memory_equal(na + 6, vm_mac, 6); /* from the VM's MAC */
	assert_int_equal(wk_pkt_parse(na, (size_t)n, &a), 0);
	assert_int_equal(a.kind, WK_PKT_IPV6);
	assert_int_equal(a.ip6.hop_limit, 255);
	assert_memory_equal(a.ip6.src, target, 16);
	assert_memory_equal(a.ip6.dst, p.ip6.src, 16);
	assert_int_equal(na[54], WK_ICMP6_NA);
	assert_int_equal(na[58], 0x60); /* solicited, override, not a router */
	assert_memory_equal(na + 62, target, 16);
	assert_int_equal(na[78], 2); /* target link-layer address option */
	assert_memory_equal(na + 80, vm_mac, 6);
	/* A correct checksum sums to zero with the pseudo header. */
	assert_int_equal(wk_inet_csum(na + 54, 32, wk_ipv6_pseudo_sum(&a.ip6, 32, WK_IPPROTO_ICMPV6)), 0);
	assert_int_equal(wk_na_build(&p.eth, &p.ip6, &p.ns, vm_mac, na, 60), -ENOSPC);
}

static void test_ns_refused(void **state)
{
	uint8_t f[128];
	struct wk_pkt p;
	size_t len;

	/* Routed (hop limit below 255): not a neighbour's question. */
	len = ns_frame(f, "fd00::3:1", "fd00::10", 64, true);
	assert_int_equal(wk_pkt_parse(f, len, &p), -EBADMSG);
	/* A multicast target. */
	len = ns_frame(f, "fd00::3:1", "ff02::1", 255, false);
	assert_int_equal(wk_pkt_parse(f, len, &p), -EBADMSG);
	/* Truncated: payload_len says more than the frame has. */
	len = ns_frame(f, "fd00::3:1", "fd00::10", 255, true);
	assert_int_equal(wk_pkt_parse(f, len - 9, &p), -EBADMSG);
	/* An option of length 0 would loop forever. */
	len = ns_frame(f, "fd00::3:1", "fd00::10", 255, true);
	f[54 + 25] = 0;
	assert_int_equal(wk_pkt_parse(f, len, &p), -EBADMSG);
	/* Duplicate address detection (from ::): parsed, but not answered. */
	len = ns_frame(f, "::", "fd00::10", 255, false);
	assert_int_equal(wk_pkt_parse(f, len, &p), 0);
	assert_int_equal(p.kind, WK_PKT_NS);
	assert_int_equal(wk_na_build(&p.eth, &p.ip6, &p.ns, vm_mac, f, sizeof(f)), -EINVAL);
	/* Version 4 in an IPv6 frame. */
	len = ns_frame(f, "fd00::3:1", "fd00::10", 255, true);
	f[14] = 0x40;
	assert_int_equal(wk_pkt_parse(f, len, &p), -EPROTONOSUPPORT);
}

static void test_syn6(void **state)
{
	uint8_t f[128];
	struct wk_pkt p, q;
	struct wk_flow a, b;
	size_t o = ip6_frame(f, "fd00::3:1", "fd00::10", WK_IPPROTO_TCP, 64, 20);
	uint32_t isn = 0x01020304;

	memcpy(f, vm_mac, 6);
	memset(f + o, 0, 20);
	f[o] = 0x9c, f[o + 1] = 0x40; /* sport 40000 */
	f[o + 3] = 80;
	memcpy(f + o + 4, (uint8_t[]){ 1, 2, 3, 4 }, 4);
	f[o + 12] = 5 << 4;
	f[o + 13] = WK_TCP_SYN;
	f[o + 16] = 0xde, f[o + 17] = 0xad; /* an unfinished checksum (offload) */
	assert_int_equal(wk_pkt_parse(f, o + 20, &p), 0);
	assert_int_equal(p.kind, WK_PKT_TCP);
	assert_true(p.v6);
	assert_true(wk_pkt_is_syn(&p));
	assert_int_equal(p.tcp.dport, 80);
	assert_int_equal(wk_tcp_fix_checksums(f, o + 20), 0);
	assert_int_equal(wk_inet_csum(f + o, 20, wk_ipv6_pseudo_sum(&p.ip6, 20, WK_IPPROTO_TCP)), 0);

	wk_flow_from_syn(&p, &a);
	wk_flow_from_syn(&p, &b);
	assert_true(a.v6);
	assert_true(wk_flow_eq(&a, &b));
	b.sport++;
	assert_false(wk_flow_eq(&a, &b));
	/* The VM's SYN-ACK: addresses and ports swapped, ack = isn + 1. */
	q = p;
	memcpy(q.ip6.src, p.ip6.dst, 16);
	memcpy(q.ip6.dst, p.ip6.src, 16);
	q.tcp.sport = 80, q.tcp.dport = 40000;
	q.tcp.flags = WK_TCP_SYN | WK_TCP_ACK;
	q.tcp.ack = isn + 1;
	assert_true(wk_flow_answered_by(&a, &q));
	q.ip6.dst[15] ^= 1;
	assert_false(wk_flow_answered_by(&a, &q));
}

static void test_vmtable_ip6(void **state)
{
	struct wk_vmtable *t = wk_vmtable_new(4);
	uint8_t a[16], b[16];
	int x, y, i;

	assert_non_null(t);
	addr("fd00::10", a);
	addr("fd00::11", b);
	assert_null(wk_vmtable_by_ip6(t, a));
	assert_int_equal(wk_vmtable_add_ip6(t, a, &x), 0);
	assert_int_equal(wk_vmtable_add_ip6(t, a, &y), -EEXIST);
	assert_int_equal(wk_vmtable_add_ip6(t, b, &y), 0);
	assert_ptr_equal(wk_vmtable_by_ip6(t, a), &x);
	assert_ptr_equal(wk_vmtable_by_ip6(t, b), &y);
	assert_int_equal(wk_vmtable_del_ip6(t, a), 0);
	assert_null(wk_vmtable_by_ip6(t, a));
	assert_ptr_equal(wk_vmtable_by_ip6(t, b), &y);
	assert_int_equal(wk_vmtable_del_ip6(t, a), -ENOENT);
	/* Many, through growth and deletes. */
	for (i = 0; i < 5000; i++) {
		a[14] = (uint8_t)(i >> 8), a[15] = (uint8_t)i;
		assert_int_equal(wk_vmtable_add_ip6(t, a, &x + 0), i == 0x11 ? -EEXIST : 0);
	}
	for (i = 0; i < 5000; i += 2) {
		a[14] = (uint8_t)(i >> 8), a[15] = (uint8_t)i;
		if (i != 0x10)
			assert_int_equal(wk_vmtable_del_ip6(t, a), 0);
	}
	for (i = 1; i < 5000; i += 2) {
		a[14] = (uint8_t)(i >> 8), a[15] = (uint8_t)i;
		assert_non_null(wk_vmtable_by_ip6(t, a));
	}
	wk_vmtable_free(t);
}

static void test_config_ip6(void **state)
{
	char path[] = "/tmp/test_ipv6_XXXXXX";
	const char *text =
		"[vm a]\nip = 198.18.0.10\nip6 = fd00::10\n[vm b]\nip = 198.18.0.11\nip6 = fd00::10\n"
		"[vm c]\nip = 198.18.0.12\nip6 = ff02::1\n";
	struct wk_config *cfg = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(wk_config_load(path, NULL, NULL, &cfg), -EINVAL);
	assert_null(cfg);
	/* The first VM alone is valid. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, text, 39), 39);
	close(fd);
	assert_int_equal(wk_config_load(path, NULL, NULL, &cfg), 0);
	assert_true(cfg->vms[0].has_ip6);
	assert_int_equal(cfg->vms[0].ip6[0], 0xfd);
	assert_int_equal(cfg->vms[0].ip6[15], 0x10);
	wk_config_free(cfg);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ns_and_na),  cmocka_unit_test(test_ns_refused),
		cmocka_unit_test(test_syn6),	   cmocka_unit_test(test_vmtable_ip6),
		cmocka_unit_test(test_config_ip6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
