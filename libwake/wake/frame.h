/*
 * Frame codecs: Ethernet (with up to two 802.1Q/802.1ad tags), ARP, IPv4,
 * IPv6 (fixed header), Neighbor Discovery, TCP, UDP.
 *
 * Every parser is pure: parse(buf, len, &out) reads only inside [buf, buf+len)
 * and returns 0 or a negative errno:
 *   -EBADMSG          truncated or inconsistent input
 *   -EPROTONOSUPPORT  well-formed but not something odrs handles
 *                     (ARP for non-Ethernet/IPv4, IP version != 4, ...)
 * Every builder writes a whole frame into buf and returns its length, or
 * -ENOSPC when len is too small, or -EINVAL for bad arguments.
 *
 * IPv4 addresses are uint32_t in network byte order (as in struct in_addr),
 * IPv6 addresses 16 bytes in network order;
 * ports, sequence numbers and ethertypes are in host byte order.
 */
#ifndef WAKE_FRAME_H
#define WAKE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WK_ETH_ALEN	  6
#define WK_ETH_HLEN	  14
#define WK_ETH_MAX_TAGS	  2
#define WK_ETHERTYPE_IPV4 0x0800
#define WK_ETHERTYPE_ARP  0x0806
#define WK_ETHERTYPE_IPV6 0x86dd
#define WK_IPPROTO_TCP	  6
#define WK_IPPROTO_UDP	  17
#define WK_IPPROTO_ICMPV6 58
#define WK_ETHERTYPE_VLAN 0x8100
#define WK_ETHERTYPE_QINQ 0x88a8
#define WK_FRAME_MAX	  (1518 + 8)

/* ---- Ethernet: libwake/eth.c ---- */
struct wk_eth {
	uint8_t dst[WK_ETH_ALEN];
	uint8_t src[WK_ETH_ALEN];
	unsigned ntags;			    /* 0..WK_ETH_MAX_TAGS; a third tag is -EPROTONOSUPPORT */
	uint16_t tag_tpid[WK_ETH_MAX_TAGS]; /* outermost first */
	uint16_t tag_tci[WK_ETH_MAX_TAGS];
	uint16_t type;	/* ethertype after the tags */
	size_t hdr_len; /* 14 + 4 * ntags */
};
int wk_eth_parse(const uint8_t *buf, size_t len, struct wk_eth *out);
int wk_eth_build(const struct wk_eth *in, uint8_t *buf, size_t len);

/* ---- ARP (Ethernet/IPv4 only): libwake/arp.c ---- */
#define WK_ARP_REQUEST 1
#define WK_ARP_REPLY   2
struct wk_arp {
	uint16_t op;
	uint8_t sha[WK_ETH_ALEN];
	uint32_t spa;
	uint8_t tha[WK_ETH_ALEN];
	uint32_t tpa;
};
/* buf points at the ARP header (after Ethernet and tags). */
int wk_arp_parse(const uint8_t *buf, size_t len, struct wk_arp *out);
/*
 * The reply odrsd sends on a sleeping VM's behalf: Ethernet source and ARP
 * sender hardware address are vm_mac, sender protocol address is the
 * requested IP, target is the requester, and the request's VLAN tags are kept.
 */
int wk_arp_reply_build(const struct wk_eth *req_eth, const struct wk_arp *req,
		       const uint8_t vm_mac[WK_ETH_ALEN], uint8_t *buf, size_t len);
/*
 * A gratuitous ARP request (sender = target = ip, broadcast) with mac as the
 * Ethernet source: the frame that makes switches learn mac on our port.
 * tags may be NULL (untagged) or an Ethernet header whose tags are copied.
 */
int wk_garp_build(const uint8_t mac[WK_ETH_ALEN], uint32_t ip, const struct wk_eth *tags, uint8_t *buf,
		  size_t len);

/* ---- IPv4: libwake/ipv4.c ---- */
struct wk_ipv4 {
	uint8_t hdr_len; /* bytes, options included */
	uint8_t proto;
	uint8_t ttl;
	uint16_t total_len;
	uint16_t id;
	uint16_t frag;	  /* flags and offset, host order */
	bool is_fragment; /* MF set or offset != 0 */
	uint32_t src, dst;
};
/* buf points at the IPv4 header; len may include trailing Ethernet padding. */
int wk_ipv4_parse(const uint8_t *buf, size_t len, struct wk_ipv4 *out);

/* ---- IPv6: libwake/ipv6.c ---- */
struct wk_ipv6 {
	uint16_t payload_len;
	uint8_t next; /* the next header: odrs reads TCP and ICMPv6 only */
	uint8_t hop_limit;
	uint8_t src[16], dst[16];
};
/* buf points at the IPv6 header; len may include trailing Ethernet padding. */
int wk_ipv6_parse(const uint8_t *buf, size_t len, struct wk_ipv6 *out);
/* The pseudo header of an upper-layer checksum, as a seed for wk_inet_csum. */
uint32_t wk_ipv6_pseudo_sum(const struct wk_ipv6 *ip, uint32_t upper_len, uint8_t next);

/* ---- Neighbor Discovery: libwake/ndp.c ---- */
#define WK_ICMP6_NS 135
#define WK_ICMP6_NA 136
struct wk_ns {
	uint8_t target[16];
	uint8_t sll[WK_ETH_ALEN]; /* the source link-layer address option */
	bool has_sll;
};
/* buf points at the ICMPv6 header, len is the IPv6 payload length. */
int wk_ns_parse(const struct wk_ipv6 *ip, const uint8_t *buf, size_t len, struct wk_ns *out);
/*
 * The Neighbor Advertisement odrsd sends on a sleeping VM's behalf: solicited
 * and override, target and target link-layer address the VM's, from the VM's
 * MAC and address to the soliciting node; the request's VLAN tags are kept.
 * -EINVAL for a solicitation from the unspecified address (duplicate address
 * detection, which only the running owner answers).
 */
int wk_na_build(const struct wk_eth *req_eth, const struct wk_ipv6 *req_ip, const struct wk_ns *ns,
		const uint8_t vm_mac[WK_ETH_ALEN], uint8_t *buf, size_t len);

/* ---- TCP: libwake/tcp.c ---- */
#define WK_TCP_FIN 0x01
#define WK_TCP_SYN 0x02
#define WK_TCP_RST 0x04
#define WK_TCP_PSH 0x08
#define WK_TCP_ACK 0x10
struct wk_tcp {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint8_t hdr_len; /* bytes, options included */
	uint16_t window;
};
/* buf points at the TCP header, len is the IP payload length. */
int wk_tcp_parse(const uint8_t *buf, size_t len, struct wk_tcp *out);
/*
 * Rewrite the IPv4 header checksum and the TCP or UDP checksum (over IPv4 or
 * IPv6) of a whole Ethernet frame in place. Frames captured on a virtual NIC
 * carry a partial checksum (transmit offload); a guest drops them unless
 * repaired.
 */
int wk_tcp_fix_checksums(uint8_t *frame, size_t len);
uint16_t wk_inet_csum(const void *buf, size_t len, uint32_t seed);
/*
 * A held SYN (or TCP segment, or UDP datagram) made into the frame a VM's tap would have carried, in place:
 * the bridge sends a VLAN untagged out of a port where that VLAN is untagged
 * (untagged[0..nuntagged), VIDs), so the outer tag goes when its VID is one of
 * them; the inner tag of a double-tagged frame stays. The checksums are then
 * repaired (wk_tcp_fix_checksums). Returns the new length (len, or len - 4),
 * or, leaving the frame as it was, a parser's error (-EBADMSG for a frame that
 * parses but is no whole TCP segment or UDP datagram). Not idempotent on a frame
 * whose inner VID is also untagged: prepare each held frame once.
 */
int wk_frame_for_tap(uint8_t *frame, size_t len, const uint16_t *untagged, size_t nuntagged);

/* ---- UDP: libwake/pkt.c ---- */
struct wk_udp {
	uint16_t sport, dport;
	uint16_t len; /* header and payload, as the header says */
};
/* buf points at the UDP header, len is the IP payload length. */
int wk_udp_parse(const uint8_t *buf, size_t len, struct wk_udp *out);

/* ---- Classification: libwake/pkt.c ---- */
enum wk_pkt_kind {
	WK_PKT_OTHER = 0, /* an ethertype odrs ignores */
	WK_PKT_ARP,	  /* .arp valid */
	WK_PKT_IPV4,	  /* .ip valid, not TCP or a non-first fragment */
	WK_PKT_TCP,	  /* .tcp valid, and .ip, or .ip6 when .v6 */
	WK_PKT_IPV6,	  /* .ip6 valid, neither TCP nor a Neighbor Solicitation */
	WK_PKT_NS,	  /* .ip6 and .ns valid */
	WK_PKT_UDP,	  /* .udp valid, and .ip (a whole datagram, no fragment), or .ip6 when .v6 */
};
struct wk_pkt {
	struct wk_eth eth;
	enum wk_pkt_kind kind;
	struct wk_arp arp;
	struct wk_ipv4 ip;
	struct wk_ipv6 ip6;
	bool v6;
	struct wk_ns ns;
	struct wk_tcp tcp;
	struct wk_udp udp;
	size_t l3_off, l4_off;
};
int wk_pkt_parse(const uint8_t *buf, size_t len, struct wk_pkt *out);
bool wk_pkt_is_syn(const struct wk_pkt *p);    /* SYN, no ACK, not a fragment */
bool wk_pkt_is_synack(const struct wk_pkt *p); /* SYN and ACK */
/* The bytes of data a WK_PKT_TCP segment carries (0 for anything else). */
size_t wk_pkt_tcp_payload(const struct wk_pkt *p);

/*
 * A held frame's identity: a retransmission has the same key. A SYN's isn is
 * its sequence number, a later segment's too; a UDP datagram's is 0 (its
 * payload tells a repeated query from the next).
 */
struct wk_flow {
	bool v6;
	uint8_t proto;			/* WK_IPPROTO_TCP or WK_IPPROTO_UDP */
	uint32_t saddr, daddr;		/* IPv4 */
	uint8_t saddr6[16], daddr6[16]; /* IPv6 */
	uint16_t sport, dport;
	uint32_t isn;
};
/* Of a WK_PKT_TCP or WK_PKT_UDP frame. */
void wk_flow_from_syn(const struct wk_pkt *syn, struct wk_flow *out);
bool wk_flow_eq(const struct wk_flow *a, const struct wk_flow *b);
/* True when synack answers the SYN identified by flow. */
bool wk_flow_answered_by(const struct wk_flow *flow, const struct wk_pkt *synack);

/* "52:54:00:12:00:10" into buf (at least 18 bytes). */
char *wk_mac_str(const uint8_t mac[WK_ETH_ALEN], char *buf);

#endif
