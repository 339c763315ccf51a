/*
 * wk_frame_for_tap: a held SYN made into what the VM's tap carries, checked
 * against golden frames (checksums computed independently, by hand-made
 * Python): the outer tag goes only for a VLAN the tap's port sends
 * untagged, the priority bits do not hide the VID, the inner tag of a
 * double-tagged frame stays, and a broken checksum is repaired every time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "wake/frame.h"

/* 198.18.3.1:40000 -> 198.18.0.10:80, SYN, seq 0x01020304, window 64240, DF. */
static const uint8_t SYN_UNTAGGED[54] = {
	0x52, 0x54, 0x00, 0x12, 0x00, 0x10, 0x02, 0x00, 0x00, 0x03, 0x00, 0x01, 0x08, 0x00,
	0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x99, 0x6c, 0xc6, 0x12,
	0x03, 0x01, 0xc6, 0x12, 0x00, 0x0a, 0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04,
	0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0, 0x85, 0x2b, 0x00, 0x00,
};
/* The same under an 802.1Q tag, VID 10. */
static const uint8_t SYN_VLAN10[58] = {
	0x52, 0x54, 0x00, 0x12, 0x00, 0x10, 0x02, 0x00, 0x00, 0x03, 0x00, 0x01, 0x81, 0x00, 0x00,
	0x0a, 0x08, 0x00, 0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x99, 0x6c,
	0xc6, 0x12, 0x03, 0x01, 0xc6, 0x12, 0x00, 0x0a, 0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03,
	0x04, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0, 0x85, 0x2b, 0x00, 0x00,
};
/* 198.18.3.1:40000 -> 198.18.0.10:7, UDP "ping\n" (a wake_udp_ports datagram), DF. */
static const uint8_t UDP_UNTAGGED[47] = {
	0x52, 0x54, 0x00, 0x12, 0x00, 0x10, 0x02, 0x00, 0x00, 0x03, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00,
	0x00, 0x21, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x99, 0x68, 0xc6, 0x12, 0x03, 0x01, 0xc6, 0x12,
	0x00, 0x0a, 0x9c, 0x40, 0x00, 0x07, 0x00, 0x0d, 0xeb, 0x8b, 0x70, 0x69, 0x6e, 0x67, 0x0a,
};
#define UDP_CSUM_UNTAGGED 40
#define TCP_CSUM_UNTAGGED 50 /* offset of the TCP checksum in SYN_UNTAGGED */
#define IP_CSUM_UNTAGGED  24

static const uint16_t VLAN10[] = { 10 }, VLAN20_30[] = { 20, 30 };

/* frame (len bytes) with the checksums of a virtual NIC's transmit offload: unfinished. */
static size_t offloaded(uint8_t *buf, const uint8_t *frame, size_t len)
{
	memcpy(buf, frame, len);
	buf[len - 4] ^= 0x5a;	/* TCP checksum (no options, no payload: 4 bytes before the end) */
	buf[len - 40 + 10] = 0; /* IPv4 header checksum */
	return len;
}

static void test_untags_the_ports_vlan(void **state)
{
	uint8_t f[WK_FRAME_MAX];
	size_t n = offloaded(f, SYN_VLAN10, sizeof(SYN_VLAN10));

	assert_int_equal(wk_frame_for_tap(f, n, VLAN10, 1), sizeof(SYN_UNTAGGED));
	assert_memory_equal(f, SYN_UNTAGGED, sizeof(SYN_UNTAGGED));
}

static void test_priority_bits_are_not_the_vid(void **state)
{
	uint8_t f[WK_FRAME_MAX];
	size_t n = offloaded(f, SYN_VLAN10, sizeof(SYN_VLAN10));

	f[14] = 0xa0; /* PCP 5, VID still 10 */
	assert_int_equal(wk_frame_for_tap(f, n, VLAN10, 1), sizeof(SYN_UNTAGGED));
	assert_memory_equal(f, SYN_UNTAGGED, sizeof(SYN_UNTAGGED));
}

static void test_keeps_a_tag_the_port_sends_tagged(void **state)
{
	uint8_t f[WK_FRAME_MAX];
	size_t n = offloaded(f, SYN_VLAN10, sizeof(SYN_VLAN10));

	assert_int_equal(wk_frame_for_tap(f, n, VLAN20_30, 2), sizeof(SYN_VLAN10));
	assert_memory_equal(f, SYN_VLAN10, sizeof(SYN_VLAN10));
	/* A bridge that does not filter VLANs: no untagged set, the tag stays. */
	n = offloaded(f, SYN_VLAN10, sizeof(SYN_VLAN10));
	assert_int_equal(wk_frame_for_tap(f, n, NULL, 0), sizeof(SYN_VLAN10));
	assert_memory_equal(f, SYN_VLAN10, sizeof(SYN_VLAN10));
}

static void test_double_tag_loses_the_outer_only(void **state)
{
	static const uint8_t outer[4] = { 0x88, 0xa8, 0x00, 0x64 }; /* 802.1ad, VID 100 */
	const uint16_t vlan100[] = { 100, 10 };
	uint8_t f[WK_FRAME_MAX];
	size_t n = sizeof(SYN_VLAN10) + 4;

	memcpy(f, SYN_VLAN10, 12);
	memcpy(f + 12, outer, 4);
	memcpy(f + 16, SYN_VLAN10 + 12, sizeof(SYN_VLAN10) - 12);
	f[n - 4] ^= 0xff;
	/* VID 10 is untagged on the port too, but the bridge pops one tag. */
	assert_int_equal(wk_frame_for_tap(f, n, vlan100, 2), sizeof(SYN_VLAN10));
	assert_memory_equal(f, SYN_VLAN10, sizeof(SYN_VLAN10));
}

static void test_untagged_frame_gets_checksums(void **state)
{
	uint8_t f[WK_FRAME_MAX];
	size_t n = offloaded(f, SYN_UNTAGGED, sizeof(SYN_UNTAGGED));

	assert_int_not_equal(f[TCP_CSUM_UNTAGGED], SYN_UNTAGGED[TCP_CSUM_UNTAGGED]);
	assert_int_equal(f[IP_CSUM_UNTAGGED], 0);
	assert_int_equal(wk_frame_for_tap(f, n, VLAN10, 1), sizeof(SYN_UNTAGGED));
	assert_memory_equal(f, SYN_UNTAGGED, sizeof(SYN_UNTAGGED));
	/* Again, as a second replay path would: the same frame. */
	assert_int_equal(wk_frame_for_tap(f, n, VLAN10, 1), sizeof(SYN_UNTAGGED));
	assert_memory_equal(f, SYN_UNTAGGED, sizeof(SYN_UNTAGGED));
}

/* A held datagram: its UDP checksum repaired, the Ethernet padding left alone, as for a SYN. */
static void test_udp_datagram_gets_checksums(void **state)
{
	uint8_t f[WK_FRAME_MAX] = { 0 };
	struct wk_pkt p;

	memcpy(f, UDP_UNTAGGED, sizeof(UDP_UNTAGGED));
	f[UDP_CSUM_UNTAGGED] ^= 0x5a;
	f[IP_CSUM_UNTAGGED] = 0;
	assert_int_equal(wk_pkt_parse(f, 60, &p), 0);
	assert_int_equal(p.kind, WK_PKT_UDP);
	assert_int_equal(p.udp.sport, 40000);
	assert_int_equal(p.udp.dport, 7);
	assert_int_equal(p.udp.len, 13);
	assert_int_equal(wk_frame_for_tap(f, 60, NULL, 0), 60);
	assert_memory_equal(f, UDP_UNTAGGED, sizeof(UDP_UNTAGGED));
	/* A length past the IP payload: no datagram odrs would hold, nor replay. */
	f[39] = 14;
	assert_int_equal(wk_pkt_parse(f, 60, &p), 0);
	assert_int_equal(p.kind, WK_PKT_IPV4);
	assert_int_equal(wk_frame_for_tap(f, 60, NULL, 0), -EBADMSG);
}

static void test_refuses_what_is_no_tcp(void **state)
{
	uint8_t f[WK_FRAME_MAX];

	memcpy(f, SYN_VLAN10, sizeof(SYN_VLAN10));
	f[16] = 0x08, f[17] = 0x06; /* ARP, whose fields make no sense: -EPROTONOSUPPORT */
	assert_int_equal(wk_frame_for_tap(f, sizeof(SYN_VLAN10), NULL, 0), -EPROTONOSUPPORT);
	for (size_t n = 0; n < sizeof(SYN_UNTAGGED); n++) {
		memcpy(f, SYN_UNTAGGED, n);
		assert_int_equal(wk_frame_for_tap(f, n, NULL, 0), -EBADMSG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_untags_the_ports_vlan),
		cmocka_unit_test(test_priority_bits_are_not_the_vid),
		cmocka_unit_test(test_keeps_a_tag_the_port_sends_tagged),
		cmocka_unit_test(test_double_tag_loses_the_outer_only),
		cmocka_unit_test(test_untagged_frame_gets_checksums),
		cmocka_unit_test(test_refuses_what_is_no_tcp),
		cmocka_unit_test(test_udp_datagram_gets_checksums),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
