/*
 * The flow table: the rules of wk_flows_note() case by case, the key taken
 * from both ends of a real frame, the cap with its least-recent eviction, and
 * a long random run checked against a plain array kept in recency order
 * (few peers, so keys collide in buckets and are forgotten mid-chain).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <wake/flows.h>

#define DATA WK_TCP_ACK
#define PSH  (WK_TCP_ACK | WK_TCP_PSH)

static struct wk_flowkey key(unsigned peer, uint16_t vm_port, uint16_t peer_port)
{
	struct wk_flowkey k;

	memset(&k, 0, sizeof(k));
	k.peer = wk_addr_v4(htonl(0xc6120000u + peer));
	k.vm_port = vm_port;
	k.peer_port = peer_port;
	return k;
}

static void test_rules(void **state)
{
	struct wk_flows *t = wk_flows_new(8, 1);
	struct wk_flowkey a = key(1, 7, 40000), b = key(2, 7, 40000);

	assert_non_null(t);
	assert_null(wk_flows_new(0, 1));
	assert_null(wk_flows_new(WK_FLOWS_MAX + 1, 1));
	/* A peer's segment records nothing: a stranger's ACKs cannot enter. */
	wk_flows_note(t, &a, PSH, 10, false);
	assert_false(wk_flows_has(t, &a));
	/* The VM's SYN-ACK records nothing either (a SYN flood's answers). */
	wk_flows_note(t, &a, WK_TCP_SYN | WK_TCP_ACK, 0, true);
	assert_false(wk_flows_has(t, &a));
	/*
	 * Nor its pure ACK: the last ACK of a connection closed by both FINs
	 * (the guest's, after the client's) must not bring it back.
	 */
	wk_flows_note(t, &a, DATA, 0, true);
	assert_false(wk_flows_has(t, &a));
	/* The VM's data does, once; its ACKs and the peer's data keep it. */
	wk_flows_note(t, &a, PSH, 5, true);
	wk_flows_note(t, &a, DATA, 0, true);
	wk_flows_note(t, &a, PSH, 5, false);
	assert_true(wk_flows_has(t, &a));
	assert_false(wk_flows_has(t, &b));
	assert_int_equal(wk_flows_count(t), 1);
	/* A RST either way forgets it, and a FIN. */
	wk_flows_note(t, &a, WK_TCP_RST, 0, false);
	assert_false(wk_flows_has(t, &a));
	wk_flows_note(t, &a, PSH, 1, true);
	wk_flows_note(t, &a, WK_TCP_FIN | WK_TCP_ACK, 0, true);
	assert_int_equal(wk_flows_count(t), 0);
	/* The closing handshake's last ACK, from the VM: the flow stays forgotten. */
	wk_flows_note(t, &a, DATA, 0, true);
	assert_int_equal(wk_flows_count(t), 0);
	wk_flows_note(t, &b, PSH, 1, true);
	wk_flows_clear(t);
	assert_false(wk_flows_has(t, &b));
	assert_int_equal(wk_flows_count(t), 0);
	assert_int_equal(wk_flows_count(NULL), 0);
	wk_flows_free(t);
	wk_flows_free(NULL);
}

/* An IPv4 TCP segment 198.18.0.1:40000 -> 198.18.0.10:7 with flags. */
static size_t segment(uint8_t *f, uint8_t flags)
{
	static const uint8_t hdr[] = {
		0x52, 0x54, 0x00, 0x12, 0x00, 0x10, 0x52, 0x54, 0x00, 0x12, 0x00, 0x01, 0x08, 0x00,
		0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 198,  18,
		0,    1,    198,  18,	0,    10,   0x9c, 0x40, 0x00, 0x07, 0,	  0,	0,    1,
		0,    0,    0,	  1,	0x50, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	};

	memcpy(f, hdr, sizeof(hdr));
	f[14 + 20 + 13] = flags;
	return sizeof(hdr);
}

static void test_key_of_frame(void **state)
{
	uint8_t f[64] = { 0 };
	struct wk_pkt p;
	struct wk_flowkey to_vm, from_vm, want = key(1, 7, 40000);
	struct wk_addr vm = wk_addr_v4(htonl(0xc612000au));

	assert_int_equal(wk_pkt_parse(f, segment(f, DATA), &p), 0);
	assert_int_equal(wk_flowkey_of(&p, false, &to_vm), 0);
	assert_memory_equal(&to_vm, &want, sizeof(want));
	/* The same frame read from its source's side names the other end. */
	assert_int_equal(wk_flowkey_of(&p, true, &from_vm), 0);
	assert_int_equal(from_vm.vm_port, 40000);
	assert_int_equal(from_vm.peer_port, 7);
	assert_memory_equal(&from_vm.peer, &vm, sizeof(vm));
	assert_int_equal(wk_pkt_tcp_payload(&p), 0);
	/* Two bytes of data after the header: the IP total length says so, not the padding. */
	f[17] = 0x2a;
	f[54] = 'h', f[55] = 'i';
	assert_int_equal(wk_pkt_parse(f, 60, &p), 0);
	assert_int_equal(wk_pkt_tcp_payload(&p), 2);
	p.kind = WK_PKT_IPV4;
	assert_int_equal(wk_pkt_tcp_payload(&p), 0);
	assert_int_equal(wk_flowkey_of(&p, false, &to_vm), -EPROTONOSUPPORT);
}

static void test_cap_evicts_least_recent(void **state)
{
	struct wk_flows *t = wk_flows_new(4, 7);
	struct wk_flowkey k[5];

	for (unsigned i = 0; i < 5; i++)
		k[i] = key(i, 22, (uint16_t)(1000 + i));
	for (unsigned i = 0; i < 4; i++)
		wk_flows_note(t, &k[i], PSH, 1, true);
	/* The peer's segment on k[0] makes it recent: k[1] is the oldest now. */
	wk_flows_note(t, &k[0], DATA, 0, false);
	wk_flows_note(t, &k[4], PSH, 1, true);
	assert_int_equal(wk_flows_count(t), 4);
	assert_true(wk_flows_has(t, &k[0]));
	assert_false(wk_flows_has(t, &k[1]));
	for (unsigned i = 2; i < 5; i++)
		assert_true(wk_flows_has(t, &k[i]));
	wk_flows_free(t);
}

/* The model: keys newest first. */
struct model {
	struct wk_flowkey k[64];
	unsigned n;
};

static int model_find(const struct model *m, const struct wk_flowkey *k)
{
	for (unsigned i = 0; i < m->n; i++)
		if (!memcmp(&m->k[i], k, sizeof(*k)))
			return (int)i;
	return -1;
}

static void model_remove(struct model *m, int i)
{
	memmove(&m->k[i], &m->k[i + 1], (m->n - (unsigned)i - 1) * sizeof(m->k[0]));
	m->n--;
}

static void model_push(struct model *m, const struct wk_flowkey *k)
{
	memmove(&m->k[1], &m->k[0], m->n * sizeof(m->k[0]));
	m->k[0] = *k;
	m->n++;
}

static void model_note(struct model *m, unsigned cap, const struct wk_flowkey *k, uint8_t flags,
		       size_t payload, bool from_vm)
{
	int i = model_find(m, k);

	if (flags & (WK_TCP_RST | WK_TCP_FIN)) {
		if (i >= 0)
			model_remove(m, i);
		return;
	}
	if (i >= 0) {
		model_remove(m, i);
		model_push(m, k);
		return;
	}
	if (!from_vm || !payload || (flags & WK_TCP_SYN))
		return;
	if (m->n == cap)
		m->n--;
	model_push(m, k);
}

static void test_random_against_model(void **state)
{
	static const uint8_t flags[] = { DATA,	     PSH,
					 WK_TCP_SYN, WK_TCP_SYN | WK_TCP_ACK,
					 WK_TCP_RST, WK_TCP_FIN | WK_TCP_ACK };
	const unsigned cap = 37;
	struct wk_flows *t = wk_flows_new(cap, 12345);
	struct model m = { .n = 0 };

	srand(16);
	for (unsigned step = 0; step < 200000; step++) {
		struct wk_flowkey k =
			key((unsigned)rand() % 9, (uint16_t)(rand() % 3), (uint16_t)(rand() % 4));
		uint8_t f = flags[(unsigned)rand() % (rand() % 4 ? 2 : sizeof(flags))];
		bool from_vm = rand() % 2;

		if (step % 50000 == 49999) {
			wk_flows_clear(t);
			m.n = 0;
		}
		size_t payload = (size_t)(rand() % 3);

		wk_flows_note(t, &k, f, payload, from_vm);
		model_note(&m, cap, &k, f, payload, from_vm);
		assert_int_equal(wk_flows_count(t), m.n);
		if (step % 97 == 0)
			for (unsigned p = 0; p < 9; p++)
				for (uint16_t vp = 0; vp < 3; vp++)
					for (uint16_t pp = 0; pp < 4; pp++) {
						struct wk_flowkey q = key(p, vp, pp);

						assert_int_equal(wk_flows_has(t, &q),
								 model_find(&m, &q) >= 0);
					}
	}
	wk_flows_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_key_of_frame),
		cmocka_unit_test(test_cap_evicts_least_recent),
		cmocka_unit_test(test_random_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
