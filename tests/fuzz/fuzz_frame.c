/*
 * libFuzzer target for the frame codecs: any bytes through wk_pkt_parse,
 * the checksum repair on an exact-size copy, and the builders fed with what
 * was parsed, whose output must parse back to what went in.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wake/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)              \
	do {                     \
		if (!(cond))     \
			abort(); \
	} while (0)

static void check_layout(const struct wk_pkt *p, size_t size)
{
	CHECK(p->eth.ntags <= WK_ETH_MAX_TAGS);
	CHECK(p->eth.hdr_len == WK_ETH_HLEN + 4 * p->eth.ntags);
	CHECK(p->eth.hdr_len <= size);
	/* A segment's data lies inside the frame, after its header. */
	if (p->kind == WK_PKT_TCP)
		CHECK(p->l4_off + p->tcp.hdr_len + wk_pkt_tcp_payload(p) <= size);
	else
		CHECK(wk_pkt_tcp_payload(p) == 0);
	if (p->kind == WK_PKT_ARP)
		CHECK(p->l3_off + 28 <= size);
	if (p->v6) {
		CHECK(p->kind == WK_PKT_IPV6 || p->kind == WK_PKT_TCP || p->kind == WK_PKT_NS ||
		      p->kind == WK_PKT_UDP);
		CHECK(p->l4_off == p->l3_off + 40 && p->l4_off + p->ip6.payload_len <= size);
		if (p->kind == WK_PKT_TCP)
			CHECK(p->tcp.hdr_len >= 20 && p->tcp.hdr_len <= p->ip6.payload_len);
		if (p->kind == WK_PKT_UDP)
			CHECK(p->udp.len >= 8 && p->udp.len <= p->ip6.payload_len);
		if (p->kind == WK_PKT_NS)
			CHECK(p->ip6.hop_limit == 255 && p->ns.target[0] != 0xff && p->ip6.payload_len >= 24);
		return;
	}
	if (p->kind == WK_PKT_UDP)
		CHECK(!p->ip.is_fragment && p->udp.len >= 8 &&
		      p->l4_off + p->udp.len <= p->l3_off + p->ip.total_len);
	if (p->kind == WK_PKT_IPV4 || p->kind == WK_PKT_TCP || p->kind == WK_PKT_UDP) {
		CHECK(p->ip.hdr_len >= 20 && p->ip.hdr_len <= p->ip.total_len);
		CHECK(p->l3_off + p->ip.total_len <= size);
	}
	if (p->kind == WK_PKT_TCP) {
		CHECK((p->ip.frag & 0x1fff) == 0);
		CHECK(p->tcp.hdr_len >= 20);
		CHECK(p->l4_off + p->tcp.hdr_len <= p->l3_off + p->ip.total_len);
	}
	if (wk_pkt_is_syn(p))
		CHECK(!p->ip.is_fragment);
}

/* The advertisement answers the solicitation, and parses back. */
static void check_na(const struct wk_pkt *req)
{
	static const uint8_t vm_mac[WK_ETH_ALEN] = { 0x52, 0x54, 0, 0x12, 0, 0x10 };
	uint8_t buf[WK_FRAME_MAX];
	struct wk_pkt na;
	int n = wk_na_build(&req->eth, &req->ip6, &req->ns, vm_mac, buf, sizeof(buf));

	if (n == -EINVAL)
		return; /* duplicate address detection: not answered */
	CHECK(n == (int)req->eth.hdr_len + 40 + 32);
	CHECK(wk_pkt_parse(buf, (size_t)n, &na) == 0 && na.kind == WK_PKT_IPV6);
	CHECK(memcmp(na.ip6.src, req->ns.target, 16) == 0 && memcmp(na.ip6.dst, req->ip6.src, 16) == 0);
	CHECK(wk_inet_csum(buf + na.l4_off, 32, wk_ipv6_pseudo_sum(&na.ip6, 32, WK_IPPROTO_ICMPV6)) == 0);
	CHECK(wk_na_build(&req->eth, &req->ip6, &req->ns, vm_mac, buf, (size_t)n - 1) == -ENOSPC);
}

static void check_arp_reply(const struct wk_pkt *req)
{
	static const uint8_t vm_mac[WK_ETH_ALEN] = { 0x52, 0x54, 0, 0x12, 0, 0x10 };
	uint8_t buf[WK_FRAME_MAX];
	struct wk_pkt rep;
	unsigned i;
	int n;

	n = wk_arp_reply_build(&req->eth, &req->arp, vm_mac, buf, sizeof(buf));
	CHECK(n >= 60 && (size_t)n <= sizeof(buf));
	CHECK(wk_pkt_parse(buf, (size_t)n, &rep) == 0);
	CHECK(rep.kind == WK_PKT_ARP && rep.arp.op == WK_ARP_REPLY);
	CHECK(rep.eth.ntags == req->eth.ntags);
	for (i = 0; i < rep.eth.ntags; i++)
		CHECK(rep.eth.tag_tpid[i] == req->eth.tag_tpid[i] &&
		      rep.eth.tag_tci[i] == req->eth.tag_tci[i]);
	CHECK(memcmp(rep.eth.dst, req->arp.sha, WK_ETH_ALEN) == 0);
	CHECK(memcmp(rep.arp.sha, vm_mac, WK_ETH_ALEN) == 0);
	CHECK(rep.arp.spa == req->arp.tpa && rep.arp.tpa == req->arp.spa);
	CHECK(wk_arp_reply_build(&req->eth, &req->arp, vm_mac, buf, 59) == -ENOSPC);

	n = wk_garp_build(req->arp.sha, req->arp.spa, &req->eth, buf, sizeof(buf));
	CHECK(n >= 60);
	CHECK(wk_pkt_parse(buf, (size_t)n, &rep) == 0);
	CHECK(rep.kind == WK_PKT_ARP && rep.arp.spa == req->arp.spa && rep.arp.tpa == req->arp.spa &&
	      rep.eth.ntags == req->eth.ntags);
}

static void check_eth_build(const struct wk_eth *e)
{
	uint8_t buf[WK_ETH_HLEN + 4 * WK_ETH_MAX_TAGS];
	struct wk_eth back;
	int n = wk_eth_build(e, buf, sizeof(buf));

	CHECK(n == (int)e->hdr_len);
	CHECK(wk_eth_parse(buf, (size_t)n, &back) == 0);
	CHECK(back.type == e->type && back.ntags == e->ntags);
	CHECK(memcmp(back.tag_tci, e->tag_tci, sizeof(back.tag_tci[0]) * e->ntags) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wk_pkt p, again;
	uint8_t *copy;
	uint16_t vid;
	int rc;

	rc = wk_pkt_parse(data, size, &p);
	if (rc < 0) {
		CHECK(rc == -EBADMSG || rc == -EPROTONOSUPPORT);
		return 0;
	}
	check_layout(&p, size);
	check_eth_build(&p.eth);
	if (p.kind == WK_PKT_ARP)
		check_arp_reply(&p);
	if (p.kind == WK_PKT_NS)
		check_na(&p);

	/* Repair on an exact-size copy: ASan sees any write past the end. */
	copy = malloc(size ? size : 1);
	CHECK(copy);
	memcpy(copy, data, size);
	rc = wk_tcp_fix_checksums(copy, size);
	if (p.kind == WK_PKT_UDP) {
		/* A held datagram, repaired: it sums to zero over its length and pseudo header. */
		uint32_t pseudo;

		CHECK(rc == 0);
		CHECK(wk_pkt_parse(copy, size, &again) == 0 && again.kind == WK_PKT_UDP);
		pseudo =
			again.v6
				? wk_ipv6_pseudo_sum(&again.ip6, again.udp.len, WK_IPPROTO_UDP)
				: (uint32_t)(copy[again.l3_off + 12] << 8 | copy[again.l3_off + 13]) +
					  (uint32_t)(copy[again.l3_off + 14] << 8 | copy[again.l3_off + 15]) +
					  (uint32_t)(copy[again.l3_off + 16] << 8 | copy[again.l3_off + 17]) +
					  (uint32_t)(copy[again.l3_off + 18] << 8 | copy[again.l3_off + 19]) +
					  WK_IPPROTO_UDP + again.udp.len;
		CHECK(wk_inet_csum(copy + again.l4_off, again.udp.len, pseudo) == 0);
	} else if (p.kind == WK_PKT_TCP && (p.v6 || !p.ip.is_fragment)) {
		CHECK(rc == 0);
		/* Repaired: the header still parses the same, and sums to zero. */
		CHECK(wk_pkt_parse(copy, size, &again) == 0 && again.kind == WK_PKT_TCP);
		if (again.v6)
			CHECK(wk_inet_csum(copy + again.l4_off, again.ip6.payload_len,
					   wk_ipv6_pseudo_sum(&again.ip6, again.ip6.payload_len,
							      WK_IPPROTO_TCP)) == 0);
		else
			CHECK(wk_inet_csum(copy + again.l3_off, again.ip.hdr_len, 0) == 0);
		CHECK(wk_tcp_fix_checksums(copy, size) == 0);
	} else {
		CHECK(rc == -EBADMSG);
	}
	/*
	 * Made for a tap whose port sends the outer VLAN untagged: a TCP segment
	 * loses exactly its outer tag and still parses as the same segment;
	 * anything else is refused and left as it was.
	 */
	memcpy(copy, data, size);
	vid = p.eth.ntags ? p.eth.tag_tci[0] & 0x0fff : 0;
	rc = wk_frame_for_tap(copy, size, &vid, 1);
	if (p.kind == WK_PKT_UDP) {
		CHECK(rc == (int)(p.eth.ntags ? size - 4 : size));
		CHECK(wk_pkt_parse(copy, (size_t)rc, &again) == 0 && again.kind == WK_PKT_UDP &&
		      again.udp.sport == p.udp.sport && again.udp.dport == p.udp.dport);
	} else if (p.kind == WK_PKT_TCP && (p.v6 || !p.ip.is_fragment)) {
		CHECK(wk_pkt_parse(copy, (size_t)rc, &again) == 0 && again.kind == WK_PKT_TCP);
		CHECK(again.eth.ntags + (p.eth.ntags ? 1 : 0) == p.eth.ntags && again.tcp.seq == p.tcp.seq &&
		      again.tcp.sport == p.tcp.sport && again.tcp.dport == p.tcp.dport);
	} else {
		CHECK(rc < 0 && !memcmp(copy, data, size));
	}
	free(copy);
	return 0;
}
