/*
 * IPv6 fixed header (RFC 8200). Extension headers are not walked: a packet
 * whose next header is not TCP or ICMPv6 is simply not for odrs, and a SYN
 * or a Neighbor Solicitation behind extension headers is left alone.
 */
#include <errno.h>

#include "bytes.h"
#include "wake/frame.h"

int wk_ipv6_parse(const uint8_t *buf, size_t len, struct wk_ipv6 *out)
{
	struct wk_cursor c = wk_cursor(buf, len);
	struct wk_ipv6 ip;
	uint32_t vtcfl;
	int rc;

	if ((rc = wk_get_be32(&c, &vtcfl)) < 0)
		return rc;
	if (vtcfl >> 28 != 6)
		return -EPROTONOSUPPORT;
	if ((rc = wk_get_be16(&c, &ip.payload_len)) < 0 || (rc = wk_get_u8(&c, &ip.next)) < 0 ||
	    (rc = wk_get_u8(&c, &ip.hop_limit)) < 0 || (rc = wk_get_bytes(&c, ip.src, 16)) < 0 ||
	    (rc = wk_get_bytes(&c, ip.dst, 16)) < 0)
		return rc;
	/* Bytes past the payload are Ethernet padding; missing ones are not. */
	if (ip.payload_len > wk_remaining(&c))
		return -EBADMSG;
	*out = ip;
	return 0;
}

/* The upper-layer checksum's pseudo header (RFC 8200, 8.1) as a partial sum. */
uint32_t wk_ipv6_pseudo_sum(const struct wk_ipv6 *ip, uint32_t upper_len, uint8_t next)
{
	uint32_t sum = (upper_len >> 16) + (upper_len & 0xffff) + next;

	for (int i = 0; i < 16; i += 2)
		sum += (uint32_t)(ip->src[i] << 8 | ip->src[i + 1]) +
		       (uint32_t)(ip->dst[i] << 8 | ip->dst[i + 1]);
	return sum;
}
