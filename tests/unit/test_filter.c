/*
 * The capture filters (odrsd/filter.c) for 1, 64, 1,000 and 100,000
 * dual-stack VMs: each compiles to at most the kernel's 4,096 instructions,
 * names its hosts while they are few and passes the frames of any host once
 * coarse (user space decides then), and, as root, the kernel runs each of
 * them on a real socket, while a program it refuses is told apart.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../odrsd/filter.h"

/* 150: the old limit of 200 addresses a clause listed it whole, past 6,000 instructions. */
static const size_t SIZES[] = { 1, 64, 150, 1000, 100000 };

/* VM i: 198.18.x.y and 2001:db8::c612:xxyy, as odrsd's tables hold them. */
static uint32_t vm_ip(size_t i)
{
	return htonl(0xc6120000u | (uint32_t)(i + 1));
}

static void vm_ip6(size_t i, uint8_t ip6[16])
{
	uint32_t low = ntohl(vm_ip(i));

	memset(ip6, 0, 16);
	ip6[0] = 0x20, ip6[1] = 0x01, ip6[2] = 0x0d, ip6[3] = 0xb8;
	ip6[12] = (uint8_t)(low >> 24), ip6[13] = (uint8_t)(low >> 16);
	ip6[14] = (uint8_t)(low >> 8), ip6[15] = (uint8_t)low;
}

/* capture.c's wake filter with n sleeping VMs, 4 of them awaiting a SYN-ACK. */
static void wake_filter(struct filter *f, size_t n)
{
	struct filter_clause *syn, *syn6, *ack, *ack6;
	uint8_t ip6[16];

	filter_init(f, "(arp and arp[6:2] = 1) or (icmp6 and ip6[40] = 135)");
	syn = filter_clause(f, "tcp and tcp[13] & 0x12 = 0x02", "dst ", FILTER_IP);
	syn6 = filter_clause(f, "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x02", "dst ", FILTER_IP6);
	ack = filter_clause(f, "tcp and tcp[13] & 0x12 = 0x12", "src ", FILTER_IP);
	ack6 = filter_clause(f, "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x12", "src ", FILTER_IP6);
	for (size_t i = 0; i < n; i++) {
		vm_ip6(i, ip6);
		filter_add(syn, vm_ip(i), NULL);
		filter_add(syn6, 0, ip6);
		if (i < 4) {
			filter_add(ack, vm_ip(i), NULL);
			filter_add(ack6, 0, ip6);
		}
	}
}

/* The activity filter: any TCP of n VMs. */
static void activity_filter(struct filter *f, size_t n)
{
	struct filter_clause *v4, *v6;
	uint8_t ip6[16];

	filter_init(f, NULL);
	v4 = filter_clause(f, "tcp", "", FILTER_IP);
	v6 = filter_clause(f, "ip6 and ip6[6] = 6", "", FILTER_IP6_LOW);
	for (size_t i = 0; i < n; i++) {
		vm_ip6(i, ip6);
		filter_add(v4, vm_ip(i), NULL);
		filter_add(v6, 0, ip6);
	}
}

/* An untagged IPv4 TCP frame to dst with these flags. */
static size_t tcp_frame(uint8_t *b, uint32_t dst, uint8_t flags)
{
	static const uint32_t client = 0xc6130001u; /* 198.19.0.1 */
	uint32_t src = htonl(client);

	memset(b, 0, 54);
	memset(b, 0x02, 12);
	b[12] = 0x08;
	b[14] = 0x45;
	b[16] = 0, b[17] = 40; /* total length */
	b[22] = 64, b[23] = 6; /* TTL, TCP */
	memcpy(b + 26, &src, 4);
	memcpy(b + 30, &dst, 4);
	b[34] = 0xc3, b[35] = 0x50, b[36] = 0, b[37] = 80; /* ports 50000 -> 80 */
	b[46] = 0x50;					   /* data offset 5 */
	b[47] = flags;
	return 54;
}

static bool passes(const struct bpf_program *prog, const uint8_t *frame, size_t len)
{
	struct pcap_pkthdr h = { .caplen = (bpf_u_int32)len, .len = (bpf_u_int32)len };

	return pcap_offline_filter(prog, &h, frame) != 0;
}

static void check_fit(pcap_t *p, struct filter *f, size_t n, bool *coarse)
{
	struct bpf_program prog;
	uint8_t frame[64];
	char *text;
	size_t len;

	assert_int_equal(filter_compile(p, f, &prog, &text), 0);
	assert_true(prog.bf_len <= FILTER_MAXINSNS);
	*coarse = filter_is_coarse(f);
	/* A SYN to the last VM passes; one to an address no VM has only when coarse. */
	len = tcp_frame(frame, vm_ip(n - 1), 0x02);
	assert_true(passes(&prog, frame, len));
	len = tcp_frame(frame, htonl(0xc613ffffu), 0x02);
	assert_int_equal(passes(&prog, frame, len), *coarse);
	pcap_freecode(&prog);
	free(text);
}

static void test_fit_sizes(void **state)
{
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 2048);
	struct filter f;
	bool coarse;

	assert_non_null(p);
	for (size_t s = 0; s < sizeof(SIZES) / sizeof(SIZES[0]); s++) {
		size_t n = SIZES[s];
		wake_filter(&f, n);
		check_fit(p, &f, n, &coarse);
		/* Few VMs are named; many mean the SYN clauses coarse, the 4 awaiting a SYN-ACK still named. */
		assert_int_equal(coarse, 2 * n + 8 > FILTER_LIST_MAX);
		assert_false(f.clause[2].coarse);
		assert_false(f.clause[3].coarse);
		activity_filter(&f, n);
		check_fit(p, &f, n, &coarse);
		assert_int_equal(coarse, 2 * n > FILTER_LIST_MAX);
	}
	pcap_close(p);
}

/* The key of a filter is its text: the same VMs, the same text; one more VM, another. */
static void test_text_is_the_key(void **state)
{
	struct filter f;
	char *a, *b, *c;

	activity_filter(&f, 3);
	a = filter_text(&f);
	activity_filter(&f, 3);
	b = filter_text(&f);
	activity_filter(&f, 4);
	c = filter_text(&f);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_non_null(strstr(a, "host 198.18.0.3"));
	free(a);
	free(b);
	free(c);
	filter_init(&f, NULL);
	filter_clause(&f, "tcp", "", FILTER_IP);
	a = filter_text(&f);
	assert_string_equal(a, "");
	free(a);
}

/* As root: the kernel takes every filter above; a program past its limit is seen as refused. */
static void test_kernel_accepts(void **state)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct bpf_program prog;
	pcap_t *p;
	struct filter f;
	struct filter_clause *any;
	char *text;

	if (geteuid() != 0) {
		skip();
		return;
	}
	p = pcap_create("lo", errbuf);
	assert_non_null(p);
	if (pcap_activate(p) < 0) {
		pcap_close(p);
		skip();
		return;
	}
	for (size_t s = 0; s < sizeof(SIZES) / sizeof(SIZES[0]); s++) {
		for (int which = 0; which < 2; which++) {
			(which ? activity_filter : wake_filter)(&f, SIZES[s]);
			assert_int_equal(filter_compile(p, &f, &prog, &text), 0);
			assert_int_equal(pcap_setfilter(p, &prog), 0);
			assert_int_equal(filter_in_kernel(p), 1);
			pcap_freecode(&prog);
			free(text);
		}
	}
	/* 64 hosts, untagged and under VLAN tags, unoptimized: 5,757 instructions, which libpcap runs itself. */
	filter_init(&f, NULL);
	any = filter_clause(&f, "tcp", "", FILTER_IP);
	for (size_t i = 0; i < FILTER_LIST_MAX; i++)
		filter_add(any, vm_ip(i), NULL);
	assert_non_null(text = filter_text(&f));
	assert_false(filter_is_coarse(&f));
	assert_int_equal(pcap_compile(p, &prog, text, 0, PCAP_NETMASK_UNKNOWN), 0);
	assert_true(prog.bf_len > FILTER_MAXINSNS);
	assert_int_equal(pcap_setfilter(p, &prog), 0);
	assert_int_equal(filter_in_kernel(p), 0);
	pcap_freecode(&prog);
	free(text);
	pcap_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fit_sizes),
		cmocka_unit_test(test_text_is_the_key),
		cmocka_unit_test(test_kernel_accepts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
