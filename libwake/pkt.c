/*
 * Frame classification for odrsd's sniffer, and the SYN bookkeeping built on
 * it. Only the first fragment of a datagram carries a TCP header, so later
 * fragments stay WK_PKT_IPV4; a first fragment is parsed as TCP but is
 * never taken for a SYN (its segment is incomplete and cannot be replayed).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "wake/frame.h"

#define IPPROTO_TCP_NUM 6
#define UDP_HLEN	8
#define IP_OFFMASK	0x1fff

int wk_udp_parse(const uint8_t *buf, size_t len, struct wk_udp *out)
{
	struct wk_cursor c = wk_cursor(buf, len);
	struct wk_udp u;
	int rc;

	if ((rc = wk_get_be16(&c, &u.sport)) < 0 || (rc = wk_get_be16(&c, &u.dport)) < 0 ||
	    (rc = wk_get_be16(&c, &u.len)) < 0)
		return rc;
	if (u.len < UDP_HLEN || u.len > len)
		return -EBADMSG;
	*out = u;
	return 0;
}

int wk_pkt_parse(const uint8_t *buf, size_t len, struct wk_pkt *out)
{
	struct wk_pkt p = { .kind = WK_PKT_OTHER };
	int rc;

	if ((rc = wk_eth_parse(buf, len, &p.eth)) < 0)
		return rc;
	p.l3_off = p.eth.hdr_len;
	switch (p.eth.type) {
	case WK_ETHERTYPE_ARP:
		if ((rc = wk_arp_parse(buf + p.l3_off, len - p.l3_off, &p.arp)) < 0)
			return rc;
		p.kind = WK_PKT_ARP;
		break;
	case WK_ETHERTYPE_IPV6:
		if ((rc = wk_ipv6_parse(buf + p.l3_off, len - p.l3_off, &p.ip6)) < 0)
			return rc;
		p.kind = WK_PKT_IPV6;
		p.v6 = true;
		p.l4_off = p.l3_off + 40;
		if (p.ip6.next == WK_IPPROTO_TCP) {
			if ((rc = wk_tcp_parse(buf + p.l4_off, p.ip6.payload_len, &p.tcp)) < 0)
				return rc;
			p.kind = WK_PKT_TCP;
		} else if (p.ip6.next == WK_IPPROTO_UDP) {
			if (wk_udp_parse(buf + p.l4_off, p.ip6.payload_len, &p.udp) == 0)
				p.kind = WK_PKT_UDP;
		} else if (p.ip6.next == WK_IPPROTO_ICMPV6 && p.ip6.payload_len > 0 &&
			   buf[p.l4_off] == WK_ICMP6_NS) {
			if ((rc = wk_ns_parse(&p.ip6, buf + p.l4_off, p.ip6.payload_len, &p.ns)) < 0)
				return rc;
			p.kind = WK_PKT_NS;
		}
		break;
	case WK_ETHERTYPE_IPV4:
		if ((rc = wk_ipv4_parse(buf + p.l3_off, len - p.l3_off, &p.ip)) < 0)
			return rc;
		p.kind = WK_PKT_IPV4;
		p.l4_off = p.l3_off + p.ip.hdr_len;
		if (p.ip.proto == WK_IPPROTO_UDP && !p.ip.is_fragment) {
			if (wk_udp_parse(buf + p.l4_off, (size_t)p.ip.total_len - p.ip.hdr_len, &p.udp) == 0)
				p.kind = WK_PKT_UDP;
			break;
		}
		if (p.ip.proto != IPPROTO_TCP_NUM || (p.ip.frag & IP_OFFMASK))
			break;
		/* The segment ends at total_len, not at the Ethernet padding. */
		if ((rc = wk_tcp_parse(buf + p.l4_off, (size_t)p.ip.total_len - p.ip.hdr_len, &p.tcp)) < 0)
			return rc;
		p.kind = WK_PKT_TCP;
		break;
	default:
		break;
	}
	*out = p;
	return 0;
}

bool wk_pkt_is_syn(const struct wk_pkt *p)
{
	return p->kind == WK_PKT_TCP && (p->v6 || !p->ip.is_fragment) &&
	       (p->tcp.flags & (WK_TCP_SYN | WK_TCP_ACK)) == WK_TCP_SYN;
}

bool wk_pkt_is_synack(const struct wk_pkt *p)
{
	return p->kind == WK_PKT_TCP &&
	       (p->tcp.flags & (WK_TCP_SYN | WK_TCP_ACK)) == (WK_TCP_SYN | WK_TCP_ACK);
}

size_t wk_pkt_tcp_payload(const struct wk_pkt *p)
{
	size_t l4_len;

	if (p->kind != WK_PKT_TCP)
		return 0;
	/* wk_pkt_parse proved the header lies inside the IP payload. */
	l4_len = p->v6 ? p->ip6.payload_len : (size_t)(p->ip.total_len - p->ip.hdr_len);
	return l4_len - p->tcp.hdr_len;
}

void wk_flow_from_syn(const struct wk_pkt *syn, struct wk_flow *out)
{
	memset(out, 0, sizeof(*out));
	out->v6 = syn->v6;
	out->proto = syn->kind == WK_PKT_UDP ? WK_IPPROTO_UDP : WK_IPPROTO_TCP;
	if (syn->v6) {
		memcpy(out->saddr6, syn->ip6.src, 16);
		memcpy(out->daddr6, syn->ip6.dst, 16);
	} else {
		out->saddr = syn->ip.src;
		out->daddr = syn->ip.dst;
	}
	if (syn->kind == WK_PKT_UDP) {
		out->sport = syn->udp.sport;
		out->dport = syn->udp.dport;
		return;
	}
	out->sport = syn->tcp.sport;
	out->dport = syn->tcp.dport;
	out->isn = syn->tcp.seq;
}

bool wk_flow_eq(const struct wk_flow *a, const struct wk_flow *b)
{
	return a->v6 == b->v6 && a->proto == b->proto && a->saddr == b->saddr && a->daddr == b->daddr &&
	       !memcmp(a->saddr6, b->saddr6, 16) && !memcmp(a->daddr6, b->daddr6, 16) &&
	       a->sport == b->sport && a->dport == b->dport && a->isn == b->isn;
}

bool wk_flow_answered_by(const struct wk_flow *flow, const struct wk_pkt *synack)
{
	bool addrs = synack->v6 ? flow->v6 && !memcmp(synack->ip6.src, flow->daddr6, 16) &&
					  !memcmp(synack->ip6.dst, flow->saddr6, 16)
				: !flow->v6 && synack->ip.src == flow->daddr && synack->ip.dst == flow->saddr;

	return wk_pkt_is_synack(synack) && addrs && synack->tcp.sport == flow->dport &&
	       synack->tcp.dport == flow->sport && synack->tcp.ack == flow->isn + 1;
}

char *wk_mac_str(const uint8_t mac[WK_ETH_ALEN], char *buf)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	return buf;
}
