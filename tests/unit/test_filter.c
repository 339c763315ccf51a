/*
 * The capture filters (odrsd/filter.c) for 1, 64, 1,000 and 100,000
 * dual-stack VMs: each compiles to at most the kernel's 4,096 instructions,
 * names its hosts while they are few and the networks that cover them past
 * that, so frames for addresses far from every VM still stop in the kernel
 * (user space decides the rest), and, as root, the kernel runs each of them
 * on a real socket, while a program it refuses is told apart.
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

/* An untagged IPv6 TCP frame to dst with these flags. */
static size_t tcp6_frame(uint8_t *b, const uint8_t dst[16], uint8_t flags)
{
	memset(b, 0, 74);
	memset(b, 0x02, 12);
	b[12] = 0x86, b[13] = 0xdd;
	b[14] = 0x60;
	b[19] = 20, b[20] = 6, b[21] = 64; /* payload length, TCP, hop limit */
	b[22] = 0x20, b[23] = 0x01, b[37] = 0x99;
	memcpy(b + 38, dst, 16);
	b[54] = 0xc3, b[55] = 0x50, b[57] = 80; /* ports 50000 -> 80 */
	b[66] = 0x50;
	b[67] = flags;
	return 74;
}

/* An untagged IPv4 TCP frame to dst with these flags. */
static size_t tcp_frame(uint8_t *b, uint32_t dst, uint8_t flags)
{
	static const uint32_t client = 0xc0000201u; /* 192.0.2.1, far from every VM */
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

/*
 * A SYN to the last VM passes, over IPv4 and IPv6; one to an address no VM
 * has only when the filter names networks or any host: next to the VMs
 * when it names networks, far from them (another /8) only for any host.
 */
static void check_fit(pcap_t *p, struct filter *f, size_t n, enum filter_fit *fit)
{
	struct bpf_program prog;
	uint8_t frame[80], ip6[16];
	char *text;
	size_t len;

	assert_int_equal(filter_compile(p, f, &prog, &text), 0);
	assert_true(prog.bf_len <= FILTER_MAXINSNS);
	*fit = filter_fit(f);
	len = tcp_frame(frame, vm_ip(n - 1), 0x02);
	assert_true(passes(&prog, frame, len));
	vm_ip6(n - 1, ip6);
	len = tcp6_frame(frame, ip6, 0x02);
	assert_true(passes(&prog, frame, len));
	len = tcp_frame(frame, htonl(0xc6120000u), 0x02); /* 198.18.0.0, below the first VM */
	assert_int_equal(passes(&prog, frame, len), *fit != FILTER_HOSTS);
	len = tcp_frame(frame, htonl(0x0a000001u), 0x02); /* 10.0.0.1 */
	assert_int_equal(passes(&prog, frame, len), *fit == FILTER_ANY);
	ip6[12] = 0xc6, ip6[13] = 0x12, ip6[14] = 0, ip6[15] = 0; /* ::198.18.0.0 */
	len = tcp6_frame(frame, ip6, 0x02);
	assert_int_equal(passes(&prog, frame, len), *fit != FILTER_HOSTS);
	pcap_freecode(&prog);
	free(text);
}

static void test_fit_sizes(void **state)
{
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 2048);
	struct filter f;
	enum filter_fit fit;

	assert_non_null(p);
	for (size_t s = 0; s < sizeof(SIZES) / sizeof(SIZES[0]); s++) {
		size_t n = SIZES[s];
		wake_filter(&f, n);
		check_fit(p, &f, n, &fit);
		/* Few VMs are named; many mean the SYN clauses name networks, the 4 awaiting a SYN-ACK still named. */
		assert_int_equal(fit, 2 * n + 8 > FILTER_LIST_MAX ? FILTER_NETS : FILTER_HOSTS);
		assert_int_equal(f.clause[2].fit, FILTER_HOSTS);
		assert_int_equal(f.clause[3].fit, FILTER_HOSTS);
		activity_filter(&f, n);
		check_fit(p, &f, n, &fit);
		assert_int_equal(fit, 2 * n > FILTER_LIST_MAX ? FILTER_NETS : FILTER_HOSTS);
	}
	pcap_close(p);
}

/* Whether a clause's networks take in ip (host order). */
static bool covered(const struct filter_clause *c, uint32_t ip)
{
	for (size_t i = 0; i < c->nnets; i++) {
		uint32_t net = (uint32_t)c->net[i].addr[0] << 24 | (uint32_t)c->net[i].addr[1] << 16 |
			       (uint32_t)c->net[i].addr[2] << 8 | c->net[i].addr[3];
		unsigned len = c->net[i].len;
		if (!len || ((ip ^ net) & ~0u << (32 - len)) == 0)
			return true;
	}
	return false;
}

/* The addresses a clause's networks take in, in all. */
static uint64_t covered_size(const struct filter_clause *c)
{
	uint64_t all = 0;

	for (size_t i = 0; i < c->nnets; i++)
		all += (uint64_t)1 << (32 - c->net[i].len);
	return all;
}

/*
 * The networks cover every address added, at most FILTER_NETS_MAX of them,
 * overlapping none; for the lab's layout (odrs_vm_sections: 100,000 VMs
 * from 198.18.16.1 on) they leave out the datapath bench's flood target
 * 198.18.8.1 and take in at most twice the addresses used; addresses
 * scattered over 10/8 get networks too, never "everything".
 */
static void test_nets_cover(void **state)
{
	static const size_t counts[] = { 9, 100, 1000, 100000 };
	struct filter f;
	struct filter_clause *c;
	uint32_t seed = 1;

	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		size_t n = counts[k];
		filter_init(&f, NULL);
		c = filter_clause(&f, "tcp", "dst ", FILTER_IP);
		for (size_t i = 0; i < n; i++)
			filter_add(c, htonl(0xc6121000u + (uint32_t)i + 1), NULL);
		assert_true(c->nnets <= FILTER_NETS_MAX);
		for (size_t i = 0; i < n; i++)
			assert_true(covered(c, 0xc6121000u + (uint32_t)i + 1));
		assert_false(covered(c, 0xc6120801u));
		assert_true(covered_size(c) <= 2 * n);
		for (size_t i = 0; i < c->nnets; i++)
			for (size_t j = 0; j < c->nnets; j++)
				assert_true(i == j || c->net[i].len != c->net[j].len ||
					    memcmp(c->net[i].addr, c->net[j].addr, 4));
	}
	filter_init(&f, NULL);
	c = filter_clause(&f, "tcp", "dst ", FILTER_IP);
	for (size_t i = 0; i < 5000; i++) {
		seed = seed * 1103515245u + 12345u;
		filter_add(c, htonl(0x0a000000u | (seed >> 8)), NULL);
	}
	assert_true(c->nnets >= 1 && c->nnets <= FILTER_NETS_MAX);
	assert_true(c->net[0].len >= 8);
	assert_false(covered(c, 0xc6120801u));
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
	/* Past what a filter lists, networks: 1,000 VMs from 198.18.0.1 fit eight /25s from 198.18.0.0. */
	activity_filter(&f, 1000);
	a = filter_text(&f);
	assert_non_null(strstr(a, "(tcp and (net 198.18.0.0/25 or net 198.18.0.128/25 or "));
	assert_non_null(strstr(a, "net 198.18.3.128/25))"));
	assert_non_null(
		strstr(a, "ip6[20:4] & 0xffffff80 = 0xc6120000 or ip6[36:4] & 0xffffff80 = 0xc6120000"));
	free(a);
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
		cmocka_unit_test(test_nets_cover),
		cmocka_unit_test(test_text_is_the_key),
		cmocka_unit_test(test_kernel_accepts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
