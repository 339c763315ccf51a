/*
 * Frame codecs on hand-made frames: every header field, the malformed cases
 * each parser must refuse, truncation at every length (ASan catches any
 * read past the exact-size copies), and the builders parsed back.
 * Real captured frames are in test_pcap_fixtures.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wake/frame.h"

static const uint8_t MAC_A[6] = { 0x02, 0x00, 0x00, 0x0a, 0x00, 0x01 };
static const uint8_t MAC_B[6] = { 0x02, 0x00, 0x00, 0x0b, 0x00, 0x02 };
static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
#define IP_A "198.18.5.1"
#define IP_B "198.18.5.2"

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

/* ---- a tiny frame writer, independent of libwake's ---- */

struct w {
	uint8_t b[WK_FRAME_MAX + 64];
	size_t n;
};

static void w8(struct w *w, unsigned v)
{
	w->b[w->n++] = (uint8_t)v;
}
static void w16(struct w *w, unsigned v)
{
	w8(w, v >> 8);
	w8(w, v);
}
static void w32(struct w *w, uint32_t v)
{
	w16(w, v >> 16);
	w16(w, v & 0xffff);
}
static void wmem(struct w *w, const void *p, size_t n)
{
	memcpy(w->b + w->n, p, n);
	w->n += n;
}
static void wpoke16(struct w *w, size_t off, unsigned v)
{
	w->b[off] = (uint8_t)(v >> 8);
	w->b[off + 1] = (uint8_t)v;
}

static void eth_hdr(struct w *w, const uint8_t *dst, const uint8_t *src, unsigned ntags, const uint16_t *tpid,
		    const uint16_t *tci, unsigned type)
{
	unsigned i;

	wmem(w, dst, 6);
	wmem(w, src, 6);
	for (i = 0; i < ntags; i++) {
		w16(w, tpid[i]);
		w16(w, tci[i]);
	}
	w16(w, type);
}

/* The straightforward RFC 1071 sum, to check libwake's against. */
static uint16_t ref_csum(const uint8_t *p, size_t n, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

struct tcp_spec {
	unsigned ntags;
	uint16_t tpid[3], tci[3];
	unsigned ip_version; /* 0: 4 */
	unsigned ihl;	     /* 0: 5 + opt_words */
	unsigned opt_words;  /* IPv4 option words (NOPs, then EOL) */
	unsigned frag;	     /* flags and offset */
	int total_len_delta; /* added to the true total length */
	unsigned proto;	     /* 0: TCP */
	unsigned doff;	     /* 0: 5 + tcp_opt_words */
	unsigned tcp_opt_words;
	uint8_t flags;
	uint32_t seq, ack;
	size_t payload;
	size_t pad; /* Ethernet padding after the datagram */
};

/* An Ethernet/IPv4/TCP frame with correct checksums. Returns l3 offset. */
static size_t tcp_frame(struct w *w, const struct tcp_spec *s)
{
	size_t l3, l4, i, seg;
	unsigned opt_bytes = s->opt_words * 4, tcp_opt = s->tcp_opt_words * 4;
	unsigned total = 20 + opt_bytes + 20 + tcp_opt + (unsigned)s->payload;
	uint32_t pseudo;

	memset(w, 0, sizeof(*w));
	eth_hdr(w, MAC_B, MAC_A, s->ntags, s->tpid, s->tci, WK_ETHERTYPE_IPV4);
	l3 = w->n;
	w8(w, (s->ip_version ? s->ip_version : 4) << 4 | (s->ihl ? s->ihl : 5 + s->opt_words));
	w8(w, 0);
	w16(w, (unsigned)((int)total + s->total_len_delta));
	w16(w, 0x1234);
	w16(w, s->frag);
	w8(w, 64);
	w8(w, s->proto ? s->proto : 6);
	w16(w, 0);
	w32(w, ntohl(ip4(IP_A)));
	w32(w, ntohl(ip4(IP_B)));
	for (i = 0; i + 1 < opt_bytes; i++)
		w8(w, 1); /* NOP */
	if (opt_bytes)
		w8(w, 0); /* EOL */
	wpoke16(w, l3 + 10, ref_csum(w->b + l3, 20 + opt_bytes, 0));
	l4 = w->n;
	w16(w, 40000);
	w16(w, 80);
	w32(w, s->seq);
	w32(w, s->ack);
	w8(w, (s->doff ? s->doff : 5 + s->tcp_opt_words) << 4);
	w8(w, s->flags);
	w16(w, 29200);
	w16(w, 0);
	w16(w, 0);
	for (i = 0; i < tcp_opt; i++)
		w8(w, 1);
	for (i = 0; i < s->payload; i++)
		w8(w, 'a' + i % 26);
	seg = w->n - l4;
	pseudo = (ntohl(ip4(IP_A)) >> 16) + (ntohl(ip4(IP_A)) & 0xffff) + (ntohl(ip4(IP_B)) >> 16) +
		 (ntohl(ip4(IP_B)) & 0xffff) + 6 + (uint32_t)seg;
	wpoke16(w, l4 + 16, ref_csum(w->b + l4, seg, pseudo));
	w->n += s->pad; /* zeroes */
	return l3;
}

static void arp_frame(struct w *w, unsigned ntags, const uint16_t *tpid, const uint16_t *tci, unsigned htype,
		      unsigned ptype, unsigned hlen, unsigned plen, unsigned op)
{
	memset(w, 0, sizeof(*w));
	eth_hdr(w, BCAST, MAC_A, ntags, tpid, tci, WK_ETHERTYPE_ARP);
	w16(w, htype);
	w16(w, ptype);
	w8(w, hlen);
	w8(w, plen);
	w16(w, op);
	wmem(w, MAC_A, 6);
	w32(w, ntohl(ip4(IP_A)));
	memset(w->b + w->n, 0, 6);
	w->n += 6;
	w32(w, ntohl(ip4(IP_B)));
}

/* wk_pkt_parse on an exact-size heap copy, so ASan sees any overread. */
static int parse_exact(const uint8_t *b, size_t n, struct wk_pkt *p)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, b, n);
	rc = wk_pkt_parse(n ? copy : NULL, n, p);
	free(copy);
	return rc;
}

/* ---- Ethernet ---- */

static void test_eth_untagged(void **state)
{
	struct w w;
	struct wk_eth e;

	memset(&w, 0, sizeof(w));
	eth_hdr(&w, BCAST, MAC_A, 0, NULL, NULL, 0x86dd);
	assert_int_equal(wk_eth_parse(w.b, w.n, &e), 0);
	assert_memory_equal(e.dst, BCAST, 6);
	assert_memory_equal(e.src, MAC_A, 6);
	assert_int_equal(e.ntags, 0);
	assert_int_equal(e.type, 0x86dd);
	assert_int_equal(e.hdr_len, 14);
	assert_int_equal(wk_eth_parse(w.b, 13, &e), -EBADMSG);
	assert_int_equal(wk_eth_parse(NULL, 0, &e), -EBADMSG);
}

static void test_eth_tags(void **state)
{
	static const uint16_t tpid[3] = { 0x88a8, 0x8100, 0x8100 };
	static const uint16_t tci[3] = { 0xe0c8, 0x112c, 0x0005 };
	struct w w;
	struct wk_eth e;

	memset(&w, 0, sizeof(w));
	eth_hdr(&w, BCAST, MAC_A, 1, tpid + 1, tci + 1, WK_ETHERTYPE_ARP);
	assert_int_equal(wk_eth_parse(w.b, w.n, &e), 0);
	assert_int_equal(e.ntags, 1);
	assert_int_equal(e.tag_tpid[0], 0x8100);
	assert_int_equal(e.tag_tci[0], 0x112c);
	assert_int_equal(e.type, WK_ETHERTYPE_ARP);
	assert_int_equal(e.hdr_len, 18);

	memset(&w, 0, sizeof(w));
	eth_hdr(&w, BCAST, MAC_A, 2, tpid, tci, WK_ETHERTYPE_IPV4);
	assert_int_equal(wk_eth_parse(w.b, w.n, &e), 0);
	assert_int_equal(e.ntags, 2);
	assert_int_equal(e.tag_tpid[0], 0x88a8);
	assert_int_equal(e.tag_tci[0], 0xe0c8);
	assert_int_equal(e.tag_tpid[1], 0x8100);
	assert_int_equal(e.tag_tci[1], 0x112c);
	assert_int_equal(e.type, WK_ETHERTYPE_IPV4);
	assert_int_equal(e.hdr_len, 22);
	/* A tag cut short, in its TCI or in the type after it. */
	assert_int_equal(wk_eth_parse(w.b, 15, &e), -EBADMSG);
	assert_int_equal(wk_eth_parse(w.b, 21, &e), -EBADMSG);

	/* Three tags: well-formed, but unsupported. */
	memset(&w, 0, sizeof(w));
	eth_hdr(&w, BCAST, MAC_A, 3, tpid, tci, WK_ETHERTYPE_IPV4);
	assert_int_equal(wk_eth_parse(w.b, w.n, &e), -EPROTONOSUPPORT);
}

static void test_eth_build(void **state)
{
	struct wk_eth in = {
		.ntags = 2, .tag_tpid = { 0x88a8, 0x8100 },
		.tag_tci = { 200, 0x6000 | 300 }, .type = WK_ETHERTYPE_ARP,
	}, out;
	uint8_t buf[22];

	memcpy(in.dst, MAC_B, 6);
	memcpy(in.src, MAC_A, 6);
	assert_int_equal(wk_eth_build(&in, buf, sizeof(buf)), 22);
	assert_int_equal(wk_eth_parse(buf, sizeof(buf), &out), 0);
	assert_memory_equal(out.dst, MAC_B, 6);
	assert_memory_equal(out.src, MAC_A, 6);
	assert_int_equal(out.ntags, 2);
	assert_int_equal(out.tag_tpid[0], 0x88a8);
	assert_int_equal(out.tag_tci[0], 200);
	assert_int_equal(out.tag_tpid[1], 0x8100);
	assert_int_equal(out.tag_tci[1], 0x6000 | 300);
	assert_int_equal(out.type, WK_ETHERTYPE_ARP);
	assert_int_equal(wk_eth_build(&in, buf, 21), -ENOSPC);
	in.ntags = 3;
	assert_int_equal(wk_eth_build(&in, buf, sizeof(buf)), -EINVAL);
	in.ntags = 1;
	in.tag_tpid[0] = 0x0800;
	assert_int_equal(wk_eth_build(&in, buf, sizeof(buf)), -EINVAL);
}

/* ---- ARP ---- */

static void test_arp_parse(void **state)
{
	struct w w;
	struct wk_pkt p;
	struct wk_arp a;

	arp_frame(&w, 0, NULL, NULL, 1, 0x0800, 6, 4, WK_ARP_REQUEST);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.kind, WK_PKT_ARP);
	assert_int_equal(p.l3_off, 14);
	assert_int_equal(p.arp.op, WK_ARP_REQUEST);
	assert_memory_equal(p.arp.sha, MAC_A, 6);
	assert_int_equal(p.arp.spa, ip4(IP_A));
	assert_int_equal(p.arp.tpa, ip4(IP_B));
	assert_memory_equal(p.arp.tha, "\0\0\0\0\0\0", 6);
	assert_int_equal(wk_arp_parse(w.b + 14, 27, &a), -EBADMSG);

	arp_frame(&w, 0, NULL, NULL, 6, 0x0800, 6, 4, 1);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EPROTONOSUPPORT);
	arp_frame(&w, 0, NULL, NULL, 1, 0x86dd, 6, 4, 1);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EPROTONOSUPPORT);
	arp_frame(&w, 0, NULL, NULL, 1, 0x0800, 8, 4, 1);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EPROTONOSUPPORT);
	arp_frame(&w, 0, NULL, NULL, 1, 0x0800, 6, 16, 1);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EPROTONOSUPPORT);
}

/* ---- IPv4 and TCP ---- */

static void test_tcp_syn(void **state)
{
	struct tcp_spec s = { .flags = WK_TCP_SYN, .seq = 0xdeadbeef, .tcp_opt_words = 5 };
	struct w w;
	struct wk_pkt p;
	size_t l3 = tcp_frame(&w, &s);

	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.kind, WK_PKT_TCP);
	assert_int_equal(p.l3_off, l3);
	assert_int_equal(p.l4_off, l3 + 20);
	assert_int_equal(p.ip.hdr_len, 20);
	assert_int_equal(p.ip.proto, 6);
	assert_int_equal(p.ip.ttl, 64);
	assert_int_equal(p.ip.id, 0x1234);
	assert_int_equal(p.ip.total_len, 60);
	assert_false(p.ip.is_fragment);
	assert_int_equal(p.ip.src, ip4(IP_A));
	assert_int_equal(p.ip.dst, ip4(IP_B));
	assert_int_equal(p.tcp.sport, 40000);
	assert_int_equal(p.tcp.dport, 80);
	assert_int_equal(p.tcp.seq, 0xdeadbeef);
	assert_int_equal(p.tcp.ack, 0);
	assert_int_equal(p.tcp.flags, WK_TCP_SYN);
	assert_int_equal(p.tcp.hdr_len, 40);
	assert_int_equal(p.tcp.window, 29200);
	assert_true(wk_pkt_is_syn(&p));
	assert_false(wk_pkt_is_synack(&p));

	s.flags = WK_TCP_SYN | WK_TCP_ACK;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_false(wk_pkt_is_syn(&p));
	assert_true(wk_pkt_is_synack(&p));

	s.flags = WK_TCP_ACK | WK_TCP_PSH;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_false(wk_pkt_is_syn(&p));
	assert_false(wk_pkt_is_synack(&p));
}

static void test_ip_options(void **state)
{
	struct tcp_spec s = { .flags = WK_TCP_SYN, .opt_words = 3 };
	struct w w;
	struct wk_pkt p;
	size_t l3 = tcp_frame(&w, &s);

	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.ip.hdr_len, 32);
	assert_int_equal(p.l4_off, l3 + 32);
	assert_int_equal(p.kind, WK_PKT_TCP);
	assert_int_equal(p.tcp.dport, 80);
	assert_true(wk_pkt_is_syn(&p));

	s.opt_words = 10; /* IHL 15, the largest */
	l3 = tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.ip.hdr_len, 60);
	assert_int_equal(p.tcp.sport, 40000);
	/* Options cut short by the buffer. */
	assert_int_equal(parse_exact(w.b, l3 + 59, &p), -EBADMSG);
}

static void test_ip_malformed(void **state)
{
	struct tcp_spec s = { .flags = WK_TCP_SYN };
	struct w w;
	struct wk_pkt p;

	s.ihl = 4;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EBADMSG);
	s.ihl = 0;

	s.ip_version = 6;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EPROTONOSUPPORT);
	s.ip_version = 0;

	s.total_len_delta = 1; /* claims a byte the frame lacks */
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EBADMSG);
	s.total_len_delta = -1; /* cuts the TCP header short */
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EBADMSG);
	s.total_len_delta = -21; /* shorter than its own header */
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EBADMSG);
}

static void test_ip_padding(void **state)
{
	/* A bare SYN is 54 bytes: Ethernet pads it to 60. */
	struct tcp_spec s = { .flags = WK_TCP_SYN, .pad = 6 };
	struct w w;
	struct wk_pkt p;
	uint8_t orig[60];

	tcp_frame(&w, &s);
	assert_int_equal(w.n, 60);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.kind, WK_PKT_TCP);
	assert_int_equal(p.ip.total_len, 40);
	assert_true(wk_pkt_is_syn(&p));
	/* The checksum covers total_len, not the padding. */
	memcpy(orig, w.b, 60);
	w.b[p.l4_off + 16] ^= 0xff;
	w.b[w.n - 1] = 0x5a;
	assert_int_equal(wk_tcp_fix_checksums(w.b, w.n), 0);
	assert_memory_equal(w.b, orig, 59);
}

static void test_fragments(void **state)
{
	struct tcp_spec s = { .flags = WK_TCP_SYN };
	struct w w;
	struct wk_pkt p;

	/* First fragment, MF set: parsed as TCP but never a SYN. */
	s.frag = 0x2000;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_true(p.ip.is_fragment);
	assert_int_equal(p.ip.frag, 0x2000);
	assert_int_equal(p.kind, WK_PKT_TCP);
	assert_false(wk_pkt_is_syn(&p));
	assert_int_equal(wk_tcp_fix_checksums(w.b, w.n), -EBADMSG);

	/* A later fragment: its bytes are not a TCP header, whatever they say. */
	s.frag = 0x2000 | 185;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_true(p.ip.is_fragment);
	assert_int_equal(p.kind, WK_PKT_IPV4);
	assert_false(wk_pkt_is_syn(&p));
	/* ... even the last one (MF clear), and even with a bad data offset. */
	s.frag = 185;
	s.doff = 2;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_true(p.ip.is_fragment);
	assert_int_equal(p.kind, WK_PKT_IPV4);
	assert_int_equal(wk_tcp_fix_checksums(w.b, w.n), -EBADMSG);

	/* DF alone is not fragmentation. */
	s.frag = 0x4000;
	s.doff = 0;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_false(p.ip.is_fragment);
	assert_true(wk_pkt_is_syn(&p));
}

static void test_tcp_data_offset(void **state)
{
	struct tcp_spec s = { .flags = WK_TCP_SYN };
	struct w w;
	struct wk_pkt p;
	struct wk_tcp t;
	size_t l3;

	s.doff = 4;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EBADMSG);
	/* 15 words = 60 bytes, but the segment has 20 (plus 30 of payload). */
	s.doff = 15;
	s.payload = 30;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EBADMSG);
	s.payload = 40; /* now it fits exactly */
	l3 = tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.tcp.hdr_len, 60);
	/* A header that runs into Ethernet padding is still cut at total_len. */
	s.payload = 30;
	s.pad = 40;
	tcp_frame(&w, &s);
	assert_int_equal(parse_exact(w.b, w.n, &p), -EBADMSG);
	assert_int_equal(wk_tcp_parse(w.b + l3 + 20, 19, &t), -EBADMSG);
}

static void test_pkt_kinds(void **state)
{
	struct tcp_spec s = { .proto = 17 };
	struct w w;
	struct wk_pkt p;

	memset(&w, 0, sizeof(w));
	eth_hdr(&w, BCAST, MAC_A, 0, NULL, NULL, 0x0806 + 1); /* an ethertype odrs ignores */
	w.n += 40;
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.kind, WK_PKT_OTHER);
	assert_false(wk_pkt_is_syn(&p));

	memset(&w, 0, sizeof(w));
	eth_hdr(&w, BCAST, MAC_A, 0, NULL, NULL, 0x86dd);
	w.b[w.n] = 0x60; /* IPv6 carrying UDP: classified, not TCP */
	w.b[w.n + 6] = 17;
	w.n += 40;
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.kind, WK_PKT_IPV6);
	assert_true(p.v6);
	assert_int_equal(p.eth.type, 0x86dd);
	assert_false(wk_pkt_is_syn(&p));
	w.b[w.n - 40] = 0; /* version 0 */
	assert_int_equal(parse_exact(w.b, w.n, &p), -EPROTONOSUPPORT);

	tcp_frame(&w, &s); /* UDP: IPv4, no TCP; its "length" (the TCP bytes 4-5) past the datagram */
	w.b[w.n - 20 + 4] = 0xff;
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.kind, WK_PKT_IPV4);
	assert_int_equal(p.ip.proto, 17);
	assert_false(wk_pkt_is_syn(&p));
	assert_int_equal(wk_tcp_fix_checksums(w.b, w.n), -EBADMSG);
	w.b[w.n - 20 + 4] = 0, w.b[w.n - 20 + 5] = 20; /* a whole datagram: UDP, whose checksum is fixed */
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	assert_int_equal(p.kind, WK_PKT_UDP);
	assert_int_equal(p.udp.len, 20);
	assert_false(wk_pkt_is_syn(&p));
	assert_int_equal(wk_tcp_fix_checksums(w.b, w.n), 0);

	arp_frame(&w, 0, NULL, NULL, 1, 0x0800, 6, 4, 1);
	assert_int_equal(wk_tcp_fix_checksums(w.b, w.n), -EBADMSG);
}

/* Every prefix of a good frame: an error, or a result inside the prefix. */
static void check_truncations(const uint8_t *b, size_t n)
{
	struct wk_pkt p;
	size_t len;
	int rc;

	for (len = 0; len < n; len++) {
		rc = parse_exact(b, len, &p);
		if (rc < 0) {
			assert_true(rc == -EBADMSG || rc == -EPROTONOSUPPORT);
			continue;
		}
		assert_true(p.eth.hdr_len <= len);
		if (p.kind == WK_PKT_ARP)
			assert_true(p.l3_off + 28 <= len);
		if (p.kind == WK_PKT_IPV4 || p.kind == WK_PKT_TCP)
			assert_true(p.l3_off + p.ip.total_len <= len);
		if (p.kind == WK_PKT_TCP)
			assert_true(p.l4_off + p.tcp.hdr_len <= len);
	}
}

static void test_truncations(void **state)
{
	static const uint16_t tpid[2] = { 0x88a8, 0x8100 }, tci[2] = { 200, 300 };
	struct tcp_spec s = { .flags = WK_TCP_SYN,
			      .opt_words = 2,
			      .tcp_opt_words = 3,
			      .payload = 7,
			      .ntags = 2,
			      .tpid = { 0x88a8, 0x8100 },
			      .tci = { 200, 300 } };
	struct w w;

	tcp_frame(&w, &s);
	check_truncations(w.b, w.n);
	s.ntags = 0;
	s.pad = 10;
	s.opt_words = 0;
	s.tcp_opt_words = 0;
	s.payload = 0;
	tcp_frame(&w, &s);
	check_truncations(w.b, w.n);
	arp_frame(&w, 2, tpid, tci, 1, 0x0800, 6, 4, 1);
	check_truncations(w.b, w.n);
}

/* ---- checksums ---- */

static void test_inet_csum(void **state)
{
	/* RFC 1071 section 3's example: the sum is 0xddf2. */
	static const uint8_t v[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	static const uint8_t odd[3] = { 0x12, 0x34, 0x56 };

	assert_int_equal(wk_inet_csum(v, sizeof(v), 0), (uint16_t)~0xddf2);
	/* seed is a partial sum: summing in two parts gives the same. */
	assert_int_equal(wk_inet_csum(v + 4, 4, 0x0001 + 0xf203), wk_inet_csum(v, sizeof(v), 0));
	/* An odd last byte is the high half of a zero-padded word. */
	assert_int_equal(wk_inet_csum(odd, 3, 0), (uint16_t) ~(0x1234 + 0x5600));
	assert_int_equal(wk_inet_csum(NULL, 0, 0), 0xffff);
}

static void test_fix_checksums(void **state)
{
	struct tcp_spec s = { .flags = WK_TCP_ACK | WK_TCP_PSH,
			      .opt_words = 1,
			      .payload = 33,
			      .ntags = 1,
			      .tpid = { 0x8100 },
			      .tci = { 7 } };
	struct w w;
	struct wk_pkt p;
	uint8_t orig[sizeof(w.b)];

	tcp_frame(&w, &s);
	memcpy(orig, w.b, w.n);
	assert_int_equal(parse_exact(w.b, w.n, &p), 0);
	w.b[p.l3_off + 10] = 0xab; /* IP checksum */
	w.b[p.l4_off + 16] = 0x8c; /* TCP checksum, as offload leaves it */
	w.b[p.l4_off + 17] = 0x56;
	assert_int_equal(wk_tcp_fix_checksums(w.b, w.n), 0);
	assert_memory_equal(w.b, orig, w.n);
	/* Already right: untouched. */
	assert_int_equal(wk_tcp_fix_checksums(w.b, w.n), 0);
	assert_memory_equal(w.b, orig, w.n);
	/* A frame cut short of its total_len is refused. */
	s.payload = 0;
	s.flags = WK_TCP_SYN;
	tcp_frame(&w, &s);
	assert_int_equal(wk_tcp_fix_checksums(w.b, w.n - 1), -EBADMSG);
}

/* ---- builders ---- */

static void check_reply(const struct wk_eth *req_eth, const struct wk_arp *req)
{
	uint8_t buf[WK_FRAME_MAX];
	struct wk_pkt p;
	unsigned i;
	int n = wk_arp_reply_build(req_eth, req, MAC_B, buf, sizeof(buf));

	assert_int_equal(n, 60);
	assert_int_equal(wk_pkt_parse(buf, (size_t)n, &p), 0);
	assert_int_equal(p.kind, WK_PKT_ARP);
	assert_memory_equal(p.eth.dst, req->sha, 6);
	assert_memory_equal(p.eth.src, MAC_B, 6);
	assert_int_equal(p.eth.ntags, req_eth->ntags);
	for (i = 0; i < req_eth->ntags; i++) {
		assert_int_equal(p.eth.tag_tpid[i], req_eth->tag_tpid[i]);
		assert_int_equal(p.eth.tag_tci[i], req_eth->tag_tci[i]);
	}
	assert_int_equal(p.eth.type, WK_ETHERTYPE_ARP);
	assert_int_equal(p.arp.op, WK_ARP_REPLY);
	assert_memory_equal(p.arp.sha, MAC_B, 6);
	assert_int_equal(p.arp.spa, req->tpa);
	assert_memory_equal(p.arp.tha, req->sha, 6);
	assert_int_equal(p.arp.tpa, req->spa);
	/* Padding is zeroes. */
	for (i = (unsigned)p.l3_off + 28; i < 60; i++)
		assert_int_equal(buf[i], 0);
	/* Too small a buffer: refused, even by a byte. */
	assert_int_equal(wk_arp_reply_build(req_eth, req, MAC_B, buf, 59), -ENOSPC);
}

static void test_arp_reply_build(void **state)
{
	static const uint16_t tpid[2] = { 0x88a8, 0x8100 };
	static const uint16_t tci[2] = { 0x2000 | 200, 0xf000 | 300 };
	struct w w;
	struct wk_pkt req;
	unsigned ntags;

	for (ntags = 0; ntags <= 2; ntags++) {
		arp_frame(&w, ntags, tpid + (ntags == 1), tci + (ntags == 1), 1, 0x0800, 6, 4,
			  WK_ARP_REQUEST);
		assert_int_equal(wk_pkt_parse(w.b, w.n, &req), 0);
		assert_int_equal(req.eth.ntags, ntags);
		check_reply(&req.eth, &req.arp);
	}
	req.eth.ntags = 3;
	assert_int_equal(wk_arp_reply_build(&req.eth, &req.arp, MAC_B, w.b, sizeof(w.b)), -EINVAL);
	assert_int_equal(wk_arp_reply_build(NULL, &req.arp, MAC_B, w.b, sizeof(w.b)), -EINVAL);
}

static void test_garp_build(void **state)
{
	struct wk_eth tags = { .ntags = 1, .tag_tpid = { 0x8100 }, .tag_tci = { 42 } };
	uint8_t buf[64];
	struct wk_pkt p;
	unsigned t;

	for (t = 0; t < 2; t++) {
		int n = wk_garp_build(MAC_B, ip4(IP_B), t ? &tags : NULL, buf, sizeof(buf));

		assert_int_equal(n, 60);
		assert_int_equal(wk_pkt_parse(buf, (size_t)n, &p), 0);
		assert_int_equal(p.kind, WK_PKT_ARP);
		assert_memory_equal(p.eth.dst, BCAST, 6);
		assert_memory_equal(p.eth.src, MAC_B, 6);
		assert_int_equal(p.eth.ntags, t);
		if (t) {
			assert_int_equal(p.eth.tag_tpid[0], 0x8100);
			assert_int_equal(p.eth.tag_tci[0], 42);
		}
		assert_int_equal(p.arp.op, WK_ARP_REQUEST);
		assert_memory_equal(p.arp.sha, MAC_B, 6);
		assert_int_equal(p.arp.spa, ip4(IP_B));
		assert_memory_equal(p.arp.tha, "\0\0\0\0\0\0", 6);
		assert_int_equal(p.arp.tpa, ip4(IP_B));
	}
	assert_int_equal(wk_garp_build(MAC_B, ip4(IP_B), NULL, buf, 10), -ENOSPC);
	tags.tag_tpid[0] = 0x0800;
	assert_int_equal(wk_garp_build(MAC_B, ip4(IP_B), &tags, buf, sizeof(buf)), -EINVAL);
}

/* ---- flows ---- */

static void test_flows(void **state)
{
	struct tcp_spec s = { .flags = WK_TCP_SYN, .seq = 0xffffffff };
	struct w w;
	struct wk_pkt syn, sa;
	struct wk_flow f, g;

	tcp_frame(&w, &s);
	assert_int_equal(wk_pkt_parse(w.b, w.n, &syn), 0);
	wk_flow_from_syn(&syn, &f);
	assert_int_equal(f.saddr, ip4(IP_A));
	assert_int_equal(f.daddr, ip4(IP_B));
	assert_int_equal(f.sport, 40000);
	assert_int_equal(f.dport, 80);
	assert_int_equal(f.isn, 0xffffffff);
	g = f;
	assert_true(wk_flow_eq(&f, &g));
	g.isn++;
	assert_false(wk_flow_eq(&f, &g));
	g = f;
	g.sport++;
	assert_false(wk_flow_eq(&f, &g));

	/* The answer: addresses and ports swapped, ack = isn + 1 (wrapping). */
	sa = syn;
	sa.ip.src = syn.ip.dst;
	sa.ip.dst = syn.ip.src;
	sa.tcp.sport = 80;
	sa.tcp.dport = 40000;
	sa.tcp.ack = 0;
	sa.tcp.flags = WK_TCP_SYN | WK_TCP_ACK;
	assert_true(wk_flow_answered_by(&f, &sa));
	sa.tcp.ack = 1;
	assert_false(wk_flow_answered_by(&f, &sa));
	sa.tcp.ack = 0;
	sa.tcp.flags = WK_TCP_RST | WK_TCP_ACK;
	assert_false(wk_flow_answered_by(&f, &sa));
	sa.tcp.flags = WK_TCP_SYN | WK_TCP_ACK;
	sa.tcp.dport = 40001;
	assert_false(wk_flow_answered_by(&f, &sa));
	sa.tcp.dport = 40000;
	sa.ip.src = ip4("198.18.5.3");
	assert_false(wk_flow_answered_by(&f, &sa));
	/* The SYN itself answers nothing. */
	assert_false(wk_flow_answered_by(&f, &syn));
}

static void test_mac_str(void **state)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0xab, 0x0f };
	char buf[18];

	assert_ptr_equal(wk_mac_str(mac, buf), buf);
	assert_string_equal(buf, "52:54:00:12:ab:0f");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eth_untagged),	cmocka_unit_test(test_eth_tags),
		cmocka_unit_test(test_eth_build),	cmocka_unit_test(test_arp_parse),
		cmocka_unit_test(test_tcp_syn),		cmocka_unit_test(test_ip_options),
		cmocka_unit_test(test_ip_malformed),	cmocka_unit_test(test_ip_padding),
		cmocka_unit_test(test_fragments),	cmocka_unit_test(test_tcp_data_offset),
		cmocka_unit_test(test_pkt_kinds),	cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_inet_csum),	cmocka_unit_test(test_fix_checksums),
		cmocka_unit_test(test_arp_reply_build), cmocka_unit_test(test_garp_build),
		cmocka_unit_test(test_flows),		cmocka_unit_test(test_mac_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
