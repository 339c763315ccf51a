/*
 * Neighbor Discovery (RFC 4861): the Neighbor Solicitation odrsd answers for
 * a sleeping VM, and the Neighbor Advertisement it answers with, the IPv6
 * counterpart of the ARP reply.
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "wake/frame.h"

#define ICMP6_HLEN	 4
#define ND_OPT_SOURCE_LL 1
#define ND_OPT_TARGET_LL 2
#define NA_ROUTER	 0x80000000u
#define NA_SOLICITED	 0x40000000u
#define NA_OVERRIDE	 0x20000000u

int wk_ns_parse(const struct wk_ipv6 *ip, const uint8_t *buf, size_t len, struct wk_ns *out)
{
	struct wk_cursor c = wk_cursor(buf, len);
	struct wk_ns ns = { 0 };
	uint8_t type, code, opt_type, opt_len;
	uint16_t csum;
	uint32_t reserved;
	int rc;

	if ((rc = wk_get_u8(&c, &type)) < 0 || (rc = wk_get_u8(&c, &code)) < 0 ||
	    (rc = wk_get_be16(&c, &csum)) < 0)
		return rc;
	if (type != WK_ICMP6_NS)
		return -EPROTONOSUPPORT;
	/* RFC 4861 7.1.1: hop limit 255 (never routed), code 0, 24 bytes at least. */
	if (code != 0 || ip->hop_limit != 255)
		return -EBADMSG;
	if ((rc = wk_get_be32(&c, &reserved)) < 0 || (rc = wk_get_bytes(&c, ns.target, 16)) < 0)
		return rc;
	if (ns.target[0] == 0xff)
		return -EBADMSG; /* a multicast target */
	while (wk_remaining(&c) > 0) {
		if ((rc = wk_get_u8(&c, &opt_type)) < 0 || (rc = wk_get_u8(&c, &opt_len)) < 0)
			return rc;
		if (opt_len == 0 || (size_t)opt_len * 8 - 2 > wk_remaining(&c))
			return -EBADMSG;
		if (opt_type == ND_OPT_SOURCE_LL && opt_len == 1) {
			if ((rc = wk_get_bytes(&c, ns.sll, WK_ETH_ALEN)) < 0)
				return rc;
			ns.has_sll = true;
		} else if ((rc = wk_skip(&c, (size_t)opt_len * 8 - 2)) < 0) {
			return rc;
		}
	}
	/* From the unspecified address (duplicate address detection) no source link-layer option. */
	if (ns.has_sll && !memcmp(ip->src, (uint8_t[16]){ 0 }, 16))
		return -EBADMSG;
	*out = ns;
	return 0;
}

int wk_na_build(const struct wk_eth *req_eth, const struct wk_ipv6 *req_ip, const struct wk_ns *ns,
		const uint8_t vm_mac[WK_ETH_ALEN], uint8_t *buf, size_t len)
{
	struct wk_eth eth;
	struct wk_ipv6 ip = { .payload_len = 32, .next = WK_IPPROTO_ICMPV6, .hop_limit = 255 };
	struct wk_wcursor w;
	size_t l3, l4;
	int rc;

	if (!req_eth || !req_ip || !ns || !vm_mac || !buf)
		return -EINVAL;
	/* Duplicate address detection is answered by the address's owner when it runs. */
	if (!memcmp(req_ip->src, (uint8_t[16]){ 0 }, 16))
		return -EINVAL;
	eth = *req_eth;
	memcpy(eth.dst, ns->has_sll ? ns->sll : req_eth->src, WK_ETH_ALEN);
	memcpy(eth.src, vm_mac, WK_ETH_ALEN);
	eth.type = WK_ETHERTYPE_IPV6;
	if ((rc = wk_eth_build(&eth, buf, len)) < 0)
		return rc;
	l3 = (size_t)rc;
	memcpy(ip.src, ns->target, 16);
	memcpy(ip.dst, req_ip->src, 16);
	w = wk_wcursor(buf, len);
	w.off = l3;
	l4 = l3 + 40;
	if ((rc = wk_put_be32(&w, 6u << 28)) < 0 || (rc = wk_put_be16(&w, ip.payload_len)) < 0 ||
	    (rc = wk_put_u8(&w, ip.next)) < 0 || (rc = wk_put_u8(&w, ip.hop_limit)) < 0 ||
	    (rc = wk_put_bytes(&w, ip.src, 16)) < 0 || (rc = wk_put_bytes(&w, ip.dst, 16)) < 0 ||
	    (rc = wk_put_u8(&w, WK_ICMP6_NA)) < 0 || (rc = wk_put_u8(&w, 0)) < 0 ||
	    (rc = wk_put_be16(&w, 0)) < 0 || (rc = wk_put_be32(&w, NA_SOLICITED | NA_OVERRIDE)) < 0 ||
	    (rc = wk_put_bytes(&w, ns->target, 16)) < 0 || (rc = wk_put_u8(&w, ND_OPT_TARGET_LL)) < 0 ||
	    (rc = wk_put_u8(&w, 1)) < 0 || (rc = wk_put_bytes(&w, vm_mac, WK_ETH_ALEN)) < 0)
		return rc;
	if ((rc = wk_poke_be16(&w, l4 + 2,
			       wk_inet_csum(buf + l4, ip.payload_len,
					    wk_ipv6_pseudo_sum(&ip, ip.payload_len, ip.next)))) < 0)
		return rc;
	return (int)w.off;
}
