/*
 * IPv4 header (RFC 791). Options are skipped, not interpreted. The header
 * checksum is not verified: odrs only forwards what it parses to the guest,
 * whose own stack judges it, and wk_tcp_fix_checksums() rewrites it anyway.
 */
#include <errno.h>

#include "bytes.h"
#include "wake/frame.h"

#define IP_MF	   0x2000
#define IP_OFFMASK 0x1fff

int wk_ipv4_parse(const uint8_t *buf, size_t len, struct wk_ipv4 *out)
{
	struct wk_cursor c = wk_cursor(buf, len);
	struct wk_ipv4 ip;
	uint8_t vihl, tos;
	uint16_t csum;
	int rc;

	if ((rc = wk_get_u8(&c, &vihl)) < 0)
		return rc;
	if (vihl >> 4 != 4)
		return -EPROTONOSUPPORT;
	ip.hdr_len = (uint8_t)((vihl & 0x0f) * 4);
	if (ip.hdr_len < 20)
		return -EBADMSG;
	if ((rc = wk_get_u8(&c, &tos)) < 0 || (rc = wk_get_be16(&c, &ip.total_len)) < 0 ||
	    (rc = wk_get_be16(&c, &ip.id)) < 0 || (rc = wk_get_be16(&c, &ip.frag)) < 0 ||
	    (rc = wk_get_u8(&c, &ip.ttl)) < 0 || (rc = wk_get_u8(&c, &ip.proto)) < 0 ||
	    (rc = wk_get_be16(&c, &csum)) < 0 || (rc = wk_get_bytes(&c, &ip.src, 4)) < 0 ||
	    (rc = wk_get_bytes(&c, &ip.dst, 4)) < 0 || (rc = wk_skip(&c, ip.hdr_len - 20u)) < 0)
		return rc;
	/* Bytes past total_len are Ethernet padding; missing ones are not. */
	if (ip.total_len < ip.hdr_len || ip.total_len > len)
		return -EBADMSG;
	ip.is_fragment = (ip.frag & IP_MF) || (ip.frag & IP_OFFMASK);
	*out = ip;
	return 0;
}
