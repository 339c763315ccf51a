/*
 * TCP header (RFC 9293) and the Internet checksum (RFC 1071).
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "wake/frame.h"

#define IPPROTO_TCP_NUM 6
#define IP_CSUM_OFF	10
#define TCP_CSUM_OFF	16
#define UDP_CSUM_OFF	6

int wk_tcp_parse(const uint8_t *buf, size_t len, struct wk_tcp *out)
{
	struct wk_cursor c = wk_cursor(buf, len);
	struct wk_tcp t;
	uint8_t doff;
	int rc;

	if ((rc = wk_get_be16(&c, &t.sport)) < 0 || (rc = wk_get_be16(&c, &t.dport)) < 0 ||
	    (rc = wk_get_be32(&c, &t.seq)) < 0 || (rc = wk_get_be32(&c, &t.ack)) < 0 ||
	    (rc = wk_get_u8(&c, &doff)) < 0 || (rc = wk_get_u8(&c, &t.flags)) < 0 ||
	    (rc = wk_get_be16(&c, &t.window)) < 0)
		return rc;
	t.hdr_len = (uint8_t)((doff >> 4) * 4);
	if (t.hdr_len < 20 || t.hdr_len > len)
		return -EBADMSG;
	*out = t;
	return 0;
}

/*
 * The one's complement of the one's complement sum of buf taken as
 * big-endian 16-bit words (an odd last byte padded with zero), returned in
 * host order: store it big-endian. seed is a partial sum in the same
 * representation, such as a pseudo header's; data that already holds its
 * correct checksum sums to 0.
 */
uint16_t wk_inet_csum(const void *buf, size_t len, uint32_t seed)
{
	struct wk_cursor c = wk_cursor(buf, len);
	uint64_t sum = seed;
	uint16_t word;
	uint8_t last;

	while (wk_get_be16(&c, &word) == 0)
		sum += word;
	if (wk_get_u8(&c, &last) == 0)
		sum += (uint32_t)last << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t addr_sum(uint32_t addr_be)
{
	uint8_t b[4];

	memcpy(b, &addr_be, sizeof(b));
	return (uint32_t)(b[0] << 8 | b[1]) + (uint32_t)(b[2] << 8 | b[3]);
}

int wk_tcp_fix_checksums(uint8_t *frame, size_t len)
{
	struct wk_wcursor w = wk_wcursor(frame, len);
	struct wk_pkt p;
	size_t seg_len, csum_off;
	uint32_t pseudo;
	uint8_t proto;
	uint16_t sum;
	int rc;

	if ((rc = wk_pkt_parse(frame, len, &p)) < 0)
		return rc;
	if ((p.kind != WK_PKT_TCP && p.kind != WK_PKT_UDP) || (!p.v6 && p.ip.is_fragment))
		return -EBADMSG;
	proto = p.kind == WK_PKT_UDP ? WK_IPPROTO_UDP : IPPROTO_TCP_NUM;
	csum_off = p.l4_off + (p.kind == WK_PKT_UDP ? UDP_CSUM_OFF : TCP_CSUM_OFF);
	/* A datagram is as long as its header says (wk_pkt_parse proved it fits). */
	if (p.v6) {
		seg_len = p.kind == WK_PKT_UDP ? p.udp.len : p.ip6.payload_len;
		pseudo = wk_ipv6_pseudo_sum(&p.ip6, (uint32_t)seg_len, proto);
		goto l4;
	}
	/* wk_pkt_parse proved both headers and the segment lie inside frame. */
	seg_len = p.kind == WK_PKT_UDP ? p.udp.len : (size_t)(p.ip.total_len - p.ip.hdr_len);
	if ((rc = wk_poke_be16(&w, p.l3_off + IP_CSUM_OFF, 0)) < 0 ||
	    (rc = wk_poke_be16(&w, p.l3_off + IP_CSUM_OFF, wk_inet_csum(frame + p.l3_off, p.ip.hdr_len, 0))) <
		    0)
		return -EBADMSG;
	pseudo = addr_sum(p.ip.src) + addr_sum(p.ip.dst) + proto + (uint32_t)seg_len;
l4:
	if (wk_poke_be16(&w, csum_off, 0) < 0)
		return -EBADMSG;
	sum = wk_inet_csum(frame + p.l4_off, seg_len, pseudo);
	/* A UDP checksum of 0 means none: all ones is the same sum (RFC 768). */
	if (sum == 0 && p.kind == WK_PKT_UDP)
		sum = 0xffff;
	if (wk_poke_be16(&w, csum_off, sum) < 0)
		return -EBADMSG;
	return 0;
}

#define WK_VID_MASK 0x0fff

static bool vid_in(uint16_t vid, const uint16_t *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == vid)
			return true;
	return false;
}

int wk_frame_for_tap(uint8_t *frame, size_t len, const uint16_t *untagged, size_t nuntagged)
{
	struct wk_pkt p;
	int rc;

	if ((rc = wk_pkt_parse(frame, len, &p)) < 0)
		return rc;
	if ((p.kind != WK_PKT_TCP && p.kind != WK_PKT_UDP) || (!p.v6 && p.ip.is_fragment))
		return -EBADMSG;
	if (p.eth.ntags && vid_in(p.eth.tag_tci[0] & WK_VID_MASK, untagged, nuntagged)) {
		/* The tag is bytes 12..15: what follows moves up over it. */
		memmove(frame + 2 * WK_ETH_ALEN, frame + 2 * WK_ETH_ALEN + 4, len - 2 * WK_ETH_ALEN - 4);
		len -= 4;
	}
	/* Parsed above, the frame (untagged or not) is a whole segment: this cannot fail. */
	wk_tcp_fix_checksums(frame, len);
	return (int)len;
}
