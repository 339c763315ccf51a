/*
 * Frame codecs on real traffic: the pcaps tools/mkfixtures.sh captured
 * between two network namespaces (client 198.18.0.1 02:00:00:0f:00:01,
 * server 198.18.0.2 02:00:00:0f:00:02). Each frame is read with libpcap
 * into an exact-size heap buffer, so ASan catches any read past its end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "wake/frame.h"

#define FIXTURES   "tests/fixtures/"
#define MAX_FRAMES 64

static const uint8_t MAC_C[6] = { 0x02, 0x00, 0x00, 0x0f, 0x00, 0x01 };
static const uint8_t MAC_S[6] = { 0x02, 0x00, 0x00, 0x0f, 0x00, 0x02 };
static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

struct capture {
	size_t n;
	uint8_t *frame[MAX_FRAMES];
	size_t len[MAX_FRAMES];
	struct wk_pkt pkt[MAX_FRAMES];
};

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

/* Load a fixture; every frame in it must parse. */
static struct capture *load(const char *name)
{
	char errbuf[PCAP_ERRBUF_SIZE], path[256];
	struct capture *c = calloc(1, sizeof(*c));
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_t *pc;
	int rc;

	assert_non_null(c);
	snprintf(path, sizeof(path), FIXTURES "%s", name);
	pc = pcap_open_offline(path, errbuf);
	if (!pc)
		fail_msg("%s: %s (run from the project root)", path, errbuf);
	assert_int_equal(pcap_datalink(pc), DLT_EN10MB);
	while ((rc = pcap_next_ex(pc, &h, &data)) == 1) {
		assert_true(c->n < MAX_FRAMES);
		assert_int_equal(h->caplen, h->len);
		c->frame[c->n] = malloc(h->caplen);
		assert_non_null(c->frame[c->n]);
		memcpy(c->frame[c->n], data, h->caplen);
		c->len[c->n] = h->caplen;
		rc = wk_pkt_parse(c->frame[c->n], c->len[c->n], &c->pkt[c->n]);
		if (rc < 0)
			fail_msg("%s frame %zu: %s", name, c->n + 1, strerror(-rc));
		c->n++;
	}
	assert_int_equal(rc, PCAP_ERROR_BREAK);
	pcap_close(pc);
	assert_true(c->n > 0);
	return c;
}

static void unload(struct capture *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		free(c->frame[i]);
	free(c);
}

/* The straightforward RFC 1071 check, independent of wk_inet_csum. */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static int csum_ok(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

static void assert_checksums_valid(const uint8_t *f, const struct wk_pkt *p)
{
	const uint8_t *ip = f + p->l3_off;
	size_t seg = p->ip.total_len - p->ip.hdr_len;
	uint32_t pseudo = sum16(ip + 12, 8, 0) + 6 + (uint32_t)seg;

	assert_true(csum_ok(sum16(ip, p->ip.hdr_len, 0)));
	assert_true(csum_ok(sum16(f + p->l4_off, seg, pseudo)));
}

static uint16_t tcp_csum_of(const uint8_t *f, const struct wk_pkt *p)
{
	return (uint16_t)(f[p->l4_off + 16] << 8 | f[p->l4_off + 17]);
}

static int from_client(const struct wk_pkt *p)
{
	return memcmp(p->eth.src, MAC_C, 6) == 0;
}

/* Every prefix of every frame: an error, or a result inside the prefix. */
static void check_truncations(const struct capture *c)
{
	struct wk_pkt p;
	size_t i, len;
	int rc;

	for (i = 0; i < c->n; i++) {
		for (len = 0; len < c->len[i]; len++) {
			uint8_t *b = malloc(len ? len : 1);

			assert_non_null(b);
			memcpy(b, c->frame[i], len);
			rc = wk_pkt_parse(b, len, &p);
			if (rc == 0 && (p.kind == WK_PKT_IPV4 || p.kind == WK_PKT_TCP))
				assert_true(p.l3_off + p.ip.total_len <= len);
			if (rc == 0 && p.kind == WK_PKT_TCP)
				assert_true(p.l4_off + p.tcp.hdr_len <= len);
			if (rc == 0 && p.kind == WK_PKT_ARP)
				assert_true(p.l3_off + 28 <= len);
			if (rc < 0)
				assert_true(rc == -EBADMSG || rc == -EPROTONOSUPPORT);
			free(b);
		}
	}
}

/*
 * The ARP exchange of a capture: the request must decode to the client
 * asking for the server, and the reply odrsd would build for the server's
 * MAC must be, byte for byte, the one the server's kernel sent (plus
 * padding to 60 bytes).
 */
static void check_arp_exchange(const struct capture *c, unsigned ntags)
{
	const struct wk_pkt *req = NULL, *rep = NULL;
	const uint8_t *rep_frame = NULL;
	size_t rep_len = 0, i;
	uint8_t built[WK_FRAME_MAX];
	int n;

	for (i = 0; i < c->n; i++) {
		const struct wk_pkt *p = &c->pkt[i];

		if (p->kind != WK_PKT_ARP)
			continue;
		if (p->arp.op == WK_ARP_REQUEST && !req)
			req = p;
		if (p->arp.op == WK_ARP_REPLY && !rep) {
			rep = p;
			rep_frame = c->frame[i];
			rep_len = c->len[i];
		}
	}
	assert_non_null(req);
	assert_non_null(rep);
	assert_int_equal(req->eth.ntags, ntags);
	assert_memory_equal(req->eth.dst, BCAST, 6);
	assert_memory_equal(req->eth.src, MAC_C, 6);
	assert_memory_equal(req->arp.sha, MAC_C, 6);
	assert_int_equal(req->arp.spa, ip4("198.18.0.1"));
	assert_int_equal(req->arp.tpa, ip4("198.18.0.2"));
	assert_memory_equal(rep->arp.sha, MAC_S, 6);
	assert_memory_equal(rep->arp.tha, MAC_C, 6);
	assert_int_equal(rep->arp.spa, ip4("198.18.0.2"));
	assert_int_equal(rep->arp.tpa, ip4("198.18.0.1"));

	n = wk_arp_reply_build(&req->eth, &req->arp, MAC_S, built, sizeof(built));
	assert_int_equal(n, 60);
	assert_true(rep_len >= rep->l3_off + 28);
	assert_memory_equal(built, rep_frame, rep->l3_off + 28);
}

/* The first SYN to port: a SYN whose SYN-ACK is in the capture. */
static void check_handshake(const struct capture *c, uint16_t port)
{
	const struct wk_pkt *syn = NULL;
	struct wk_flow f;
	size_t i, answers = 0;

	for (i = 0; i < c->n && !syn; i++)
		if (wk_pkt_is_syn(&c->pkt[i]) && c->pkt[i].tcp.dport == port)
			syn = &c->pkt[i];
	assert_non_null(syn);
	assert_true(from_client(syn));
	assert_int_equal(syn->ip.src, ip4("198.18.0.1"));
	assert_int_equal(syn->ip.dst, ip4("198.18.0.2"));
	assert_false(syn->ip.is_fragment);
	assert_int_equal(syn->ip.proto, 6);
	assert_int_equal(syn->ip.ttl, 64);
	assert_int_equal(syn->tcp.flags, WK_TCP_SYN);
	assert_int_equal(syn->tcp.ack, 0);
	assert_int_equal(syn->tcp.hdr_len, 40); /* Linux: mss, sack, ts, wscale */
	assert_int_equal(syn->tcp.window, 64240);
	wk_flow_from_syn(syn, &f);
	for (i = 0; i < c->n; i++)
		answers += wk_flow_answered_by(&f, &c->pkt[i]);
	assert_int_equal(answers, 1);
}

static void test_arp(void **state)
{
	struct capture *c = load("arp.pcap");

	assert_int_equal(c->n, 4);
	check_arp_exchange(c, 0);
	check_truncations(c);
	unload(c);
}

static void test_tcp(void **state)
{
	struct capture *c = load("tcp.pcap");
	const struct wk_pkt *rst = NULL;
	struct wk_flow closed;
	size_t i, fixed = 0;

	check_handshake(c, 8080);
	check_handshake(c, 9000);
	/* Port 9 is closed: its SYN is answered with RST, not SYN-ACK. */
	for (i = 0; i < c->n; i++) {
		if (wk_pkt_is_syn(&c->pkt[i]) && c->pkt[i].tcp.dport == 9)
			wk_flow_from_syn(&c->pkt[i], &closed);
		if (c->pkt[i].kind == WK_PKT_TCP && (c->pkt[i].tcp.flags & WK_TCP_RST))
			rst = &c->pkt[i];
	}
	assert_non_null(rst);
	assert_int_equal(rst->tcp.sport, 9);
	assert_int_equal(rst->tcp.ack, closed.isn + 1);
	assert_false(wk_flow_answered_by(&closed, rst));

	for (i = 0; i < c->n; i++) {
		const struct wk_pkt *p = &c->pkt[i];
		uint8_t *f = c->frame[i];
		uint16_t good;

		assert_int_equal(p->kind, WK_PKT_TCP);
		if (!from_client(p)) {
			/* The server transmits with offload: repair, then check. */
			assert_int_equal(wk_tcp_fix_checksums(f, c->len[i]), 0);
			assert_checksums_valid(f, p);
			continue;
		}
		/* The client's checksums are the kernel's: break them, repair. */
		assert_checksums_valid(f, p);
		good = tcp_csum_of(f, p);
		f[p->l4_off + 16] ^= 0x5a;
		f[p->l3_off + 10] ^= 0xa5;
		assert_int_equal(wk_tcp_fix_checksums(f, c->len[i]), 0);
		assert_int_equal(tcp_csum_of(f, p), good);
		assert_checksums_valid(f, p);
		fixed++;
	}
	assert_true(fixed >= 10);
	check_truncations(c);
	unload(c);
}

static void test_tcp_offload(void **state)
{
	struct capture *c = load("tcp-offload.pcap");
	size_t i, partial = 0;

	check_handshake(c, 8080);
	for (i = 0; i < c->n; i++) {
		const struct wk_pkt *p = &c->pkt[i];
		uint8_t *f = c->frame[i];
		uint8_t ip_before[60];

		memcpy(ip_before, f + p->l3_off, p->ip.hdr_len);
		if (tcp_csum_of(f, p) != 0 &&
		    !csum_ok(sum16(f + p->l4_off, p->ip.total_len - p->ip.hdr_len,
				   sum16(f + p->l3_off + 12, 8, 0) + 6 +
					   (uint32_t)(p->ip.total_len - p->ip.hdr_len))))
			partial++;
		assert_int_equal(wk_tcp_fix_checksums(f, c->len[i]), 0);
		assert_checksums_valid(f, p);
		/* The kernel always fills the IP checksum: it stays as it was. */
		assert_memory_equal(f + p->l3_off, ip_before, p->ip.hdr_len);
	}
	assert_int_equal(partial, c->n); /* the capture is what odrs meets */
	unload(c);
}

static void test_fragments(void **state)
{
	struct capture *c = load("frag.pcap");
	size_t i, first = 0;

	assert_int_equal(c->n, 6);
	for (i = 0; i < c->n; i++) {
		const struct wk_pkt *p = &c->pkt[i];

		assert_int_equal(p->kind, WK_PKT_IPV4);
		assert_int_equal(p->ip.proto, 1);
		assert_true(p->ip.is_fragment);
		assert_false(wk_pkt_is_syn(p));
		if ((p->ip.frag & 0x1fff) == 0) {
			assert_true(p->ip.frag & 0x2000);
			first++;
		}
		assert_int_equal(wk_tcp_fix_checksums(c->frame[i], c->len[i]), -EBADMSG);
	}
	assert_int_equal(first, 2); /* echo request and reply */
	check_truncations(c);
	unload(c);
}

static void test_vlan(void **state)
{
	struct capture *c = load("vlan.pcap");
	size_t i;

	for (i = 0; i < c->n; i++) {
		const struct wk_pkt *p = &c->pkt[i];

		assert_int_equal(p->eth.ntags, 1);
		assert_int_equal(p->eth.tag_tpid[0], WK_ETHERTYPE_VLAN);
		assert_int_equal(p->eth.tag_tci[0], 3 << 13 | 100);
		assert_int_equal(p->eth.hdr_len, 18);
		assert_int_equal(p->l3_off, 18);
		if (p->kind == WK_PKT_TCP) {
			assert_int_equal(wk_tcp_fix_checksums(c->frame[i], c->len[i]), 0);
			assert_checksums_valid(c->frame[i], p);
		}
	}
	check_arp_exchange(c, 1);
	check_handshake(c, 8080);
	check_truncations(c);
	unload(c);
}

static void test_qinq(void **state)
{
	struct capture *c = load("qinq.pcap");
	size_t i;

	for (i = 0; i < c->n; i++) {
		const struct wk_pkt *p = &c->pkt[i];

		assert_int_equal(p->eth.ntags, 2);
		assert_int_equal(p->eth.tag_tpid[0], WK_ETHERTYPE_QINQ);
		assert_int_equal(p->eth.tag_tci[0], 200);
		assert_int_equal(p->eth.tag_tpid[1], WK_ETHERTYPE_VLAN);
		assert_int_equal(p->eth.tag_tci[1], 300);
		assert_int_equal(p->l3_off, 22);
		if (p->kind == WK_PKT_TCP) {
			assert_int_equal(wk_tcp_fix_checksums(c->frame[i], c->len[i]), 0);
			assert_checksums_valid(c->frame[i], p);
		}
	}
	check_arp_exchange(c, 2);
	check_handshake(c, 9001);
	check_truncations(c);
	unload(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arp),	    cmocka_unit_test(test_tcp),
		cmocka_unit_test(test_tcp_offload), cmocka_unit_test(test_fragments),
		cmocka_unit_test(test_vlan),	    cmocka_unit_test(test_qinq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
