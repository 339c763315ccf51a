/*
 * Ethernet II with up to two VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8, in
 * any order). A third tag is reported as -EPROTONOSUPPORT: such a frame is
 * well-formed but nothing odrs serves sits behind three tags.
 */
#include <errno.h>

#include "bytes.h"
#include "wake/frame.h"

static int is_vlan_tpid(uint16_t type)
{
	return type == WK_ETHERTYPE_VLAN || type == WK_ETHERTYPE_QINQ;
}

int wk_eth_parse(const uint8_t *buf, size_t len, struct wk_eth *out)
{
	struct wk_cursor c = wk_cursor(buf, len);
	struct wk_eth e = { .ntags = 0 };
	int rc;

	if ((rc = wk_get_bytes(&c, e.dst, WK_ETH_ALEN)) < 0 ||
	    (rc = wk_get_bytes(&c, e.src, WK_ETH_ALEN)) < 0 || (rc = wk_get_be16(&c, &e.type)) < 0)
		return rc;
	while (is_vlan_tpid(e.type)) {
		if (e.ntags == WK_ETH_MAX_TAGS)
			return -EPROTONOSUPPORT;
		e.tag_tpid[e.ntags] = e.type;
		if ((rc = wk_get_be16(&c, &e.tag_tci[e.ntags])) < 0 || (rc = wk_get_be16(&c, &e.type)) < 0)
			return rc;
		e.ntags++;
	}
	e.hdr_len = c.off;
	*out = e;
	return 0;
}

int wk_eth_build(const struct wk_eth *in, uint8_t *buf, size_t len)
{
	struct wk_wcursor w = wk_wcursor(buf, len);
	unsigned i;
	int rc;

	if (!in || in->ntags > WK_ETH_MAX_TAGS)
		return -EINVAL;
	if ((rc = wk_put_bytes(&w, in->dst, WK_ETH_ALEN)) < 0 ||
	    (rc = wk_put_bytes(&w, in->src, WK_ETH_ALEN)) < 0)
		return rc;
	for (i = 0; i < in->ntags; i++) {
		if (!is_vlan_tpid(in->tag_tpid[i]))
			return -EINVAL;
		if ((rc = wk_put_be16(&w, in->tag_tpid[i])) < 0 || (rc = wk_put_be16(&w, in->tag_tci[i])) < 0)
			return rc;
	}
	if ((rc = wk_put_be16(&w, in->type)) < 0)
		return rc;
	return (int)w.off;
}
