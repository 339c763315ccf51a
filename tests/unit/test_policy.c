/* Wake policies: which trigger, from whom, to which port, may wake a VM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <wake/policy.h>

/* A sender of either family, as odrsd's wake.c passes it. */
static struct wk_addr addr(const char *s)
{
	struct in_addr a;
	uint8_t a6[16];

	if (inet_pton(AF_INET, s, &a) == 1)
		return wk_addr_v4(a.s_addr);
	assert_int_equal(inet_pton(AF_INET6, s, a6), 1);
	return wk_addr_v6(a6);
}

static void test_trigger_names(void **state)
{
	assert_string_equal(wk_trigger_name(WK_TRIGGER_ARP), "arp");
	assert_string_equal(wk_trigger_name(WK_TRIGGER_SYN), "syn");
	assert_string_equal(wk_trigger_name(WK_TRIGGER_MANUAL), "manual");
	assert_string_equal(wk_trigger_name(WK_TRIGGER_ESTABLISHED), "established");
	assert_string_equal(wk_trigger_name(WK_TRIGGER_UDP), "udp");
	assert_int_equal(wk_trigger_from_name("established"), WK_TRIGGER_ESTABLISHED);
	assert_int_equal(wk_trigger_from_name("udp"), WK_TRIGGER_UDP);
}

/* An established flow's segment: wake_on established, any port, ignore_sources still apply; UDP: listed ports only. */
static void test_established_and_udp(void **state)
{
	uint16_t ports[] = { 22 }, udp[] = { 53 };
	struct wk_addr ignored = addr("198.18.0.1"), ignore[] = { addr("198.18.0.1") };
	struct wk_policy p = { .wake_on = WK_WAKE_SYN | WK_WAKE_ESTABLISHED,
			       .wake_ports = ports,
			       .nwake_ports = 1,
			       .ignore_sources = ignore,
			       .nignore_sources = 1 };
	struct wk_addr client = addr("198.18.0.50");

	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_ESTABLISHED, &client, 7));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ESTABLISHED, &ignored, 7));
	p.wake_on = WK_WAKE_SYN;
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ESTABLISHED, &client, 7));
	/* No wake_udp_ports: no datagram wakes. */
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_UDP, &client, 53));
	p.wake_udp_ports = udp;
	p.nwake_udp_ports = 1;
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_UDP, &client, 53));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_UDP, &client, 54));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_UDP, &ignored, 53));
}

static void test_wake_on(void **state)
{
	struct wk_policy p = { .wake_on = WK_WAKE_ARP | WK_WAKE_SYN };
	struct wk_addr client = addr("198.18.0.50");

	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_ARP, &client, 0));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 22));
	p.wake_on = WK_WAKE_ARP;
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_ARP, &client, 0));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 22));
	p.wake_on = WK_WAKE_SYN;
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ARP, &client, 0));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 22));
	/* wake_on = none: packets never wake, an operator still can. */
	p.wake_on = 0;
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ARP, &client, 0));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 22));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_MANUAL, NULL, 0));
}

/* The reason names the key that refuses: wake_on before wake_ports before ignore_sources. */
static void test_refusal_reason(void **state)
{
	uint16_t ports[] = { 22 };
	struct wk_addr client = addr("198.18.0.50");
	struct wk_policy p = {
		.wake_on = WK_WAKE_ARP | WK_WAKE_SYN,
		.wake_ports = ports,
		.nwake_ports = 1,
		.ignore_sources = &client,
		.nignore_sources = 1,
	};
	struct wk_addr other = addr("198.18.0.51");

	assert_null(wk_policy_refusal(&p, WK_TRIGGER_SYN, &other, 22));
	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_SYN, &client, 22), "ignore_sources");
	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_SYN, &client, 80), "wake_ports");
	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_ARP, &client, 0), "ignore_sources");
	p.wake_on = WK_WAKE_SYN;
	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_ARP, &other, 0), "wake_on");
	assert_null(wk_policy_refusal(&p, WK_TRIGGER_MANUAL, &client, 0));
}

static void test_wake_ports(void **state)
{
	uint16_t ports[] = { 22, 443 };
	struct wk_policy p = { .wake_on = WK_WAKE_ARP | WK_WAKE_SYN, .wake_ports = ports, .nwake_ports = 2 };
	struct wk_addr client = addr("198.18.0.50");

	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 22));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 443));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 80));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 0));
	/* Ports say nothing about ARP, which carries none. */
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_ARP, &client, 80));
	/* No list: any port. */
	p.nwake_ports = 0;
	p.wake_ports = NULL;
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 80));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &client, 65535));
}

/*
 * routers: a router's ARP (for whatever is routed to the VM) is refused as
 * a wake, a SYN from behind it wakes even with wake_on = arp; anyone else's
 * ARP still wakes. Each refusal names the key that refuses it.
 */
static void test_routers(void **state)
{
	struct wk_addr routers[] = { addr("198.18.0.1"), addr("fd00::1") };
	struct wk_policy p = { .wake_on = WK_WAKE_ARP, .routers = routers, .nrouters = 2 };
	struct wk_addr gw = addr("198.18.0.1"), gw6 = addr("fd00::1"), host = addr("198.18.0.50"),
		       far = addr("203.0.113.9"), any4 = addr("0.0.0.0");

	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_ARP, &gw, 0), "routers");
	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_ARP, &gw6, 0), "routers");
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ARP, &gw, 0));
	assert_null(wk_policy_refusal(&p, WK_TRIGGER_ARP, &host, 0));
	/* The SYN routed through it carries its client's address, and wakes. */
	assert_null(wk_policy_refusal(&p, WK_TRIGGER_SYN, &far, 22));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &far, 22));
	/* An address probe names no sender: not a router. */
	assert_null(wk_policy_refusal(&p, WK_TRIGGER_ARP, &any4, 0));
	/* Without routers, wake_on = arp refuses every SYN. */
	p.nrouters = 0;
	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_SYN, &far, 22), "wake_on");
	assert_null(wk_policy_refusal(&p, WK_TRIGGER_ARP, &gw, 0));
	/* The other keys, by name; ignore_sources before routers. */
	p.nrouters = 2;
	p.ignore_sources = routers;
	p.nignore_sources = 1;
	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_ARP, &gw, 0), "ignore_sources");
	p.wake_on = WK_WAKE_SYN;
	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_ARP, &host, 0), "wake_on");
	p.wake_ports = (uint16_t[]){ 443 };
	p.nwake_ports = 1;
	assert_string_equal(wk_policy_refusal(&p, WK_TRIGGER_SYN, &far, 22), "wake_ports");
	assert_null(wk_policy_refusal(&p, WK_TRIGGER_MANUAL, &gw, 0));
}

static void test_ignore_sources(void **state)
{
	struct wk_addr ignored[] = { addr("198.18.0.1"), addr("198.18.0.2"), addr("fd00::1") };
	struct wk_policy p = { .wake_on = WK_WAKE_ARP | WK_WAKE_SYN,
			       .ignore_sources = ignored,
			       .nignore_sources = 3 };
	struct wk_addr a1 = addr("198.18.0.1"), a2 = addr("198.18.0.2"), a3 = addr("198.18.0.3");
	struct wk_addr v6 = addr("fd00::1"), v6other = addr("fd00::2"), mapped = addr("::ffff:198.18.0.1");
	struct wk_addr any4 = addr("0.0.0.0"), any6 = addr("::");

	assert_true(wk_policy_ignores(&p, &a1));
	assert_true(wk_policy_ignores(&p, &a2));
	assert_false(wk_policy_ignores(&p, &a3));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ARP, &a2, 0));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &a1, 22));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_ARP, &a3, 0));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &a3, 22));
	/* IPv6 senders: a neighbour solicitation or a SYN from a listed one wakes nothing. */
	assert_true(wk_policy_ignores(&p, &v6));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ARP, &v6, 0));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &v6, 22));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &v6other, 22));
	/* An IPv4-mapped sender is that IPv4 sender. */
	assert_true(wk_policy_ignores(&p, &mapped));
	/* An operator's wake is never filtered by source. */
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_MANUAL, &a1, 0));
	/* No sender (NULL, an ARP probe's 0.0.0.0, ::) matches no entry, not even a listed 0.0.0.0. */
	ignored[1] = any4;
	ignored[2] = any6;
	assert_false(wk_policy_ignores(&p, NULL));
	assert_false(wk_policy_ignores(&p, &any4));
	assert_false(wk_policy_ignores(&p, &any6));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, &any4, 22));

	p.nignore_sources = 0;
	assert_false(wk_policy_ignores(&p, &a1));
}

#define PROBE(s) (s), sizeof(s) - 1

static void test_idle_judge(void **state)
{
	char *protect[] = { "cron", "rsync" };
	struct wk_policy p = { .load_threshold = 0.5, .protect = protect, .nprotect = 2 };
	const char *hit;
	double load;

	assert_int_equal(wk_idle_judge(&p, PROBE("0.10 0.05 0.01 1/40 99\ninit\nhttpd\n"), &load, &hit),
			 WK_IDLE);
	assert_true(load > 0.09 && load < 0.11);
	assert_null(hit);
	assert_int_equal(wk_idle_judge(&p, PROBE("0.51 0.05 0.01 1/40 99\ninit\n"), &load, &hit),
			 WK_BUSY_LOAD);
	/* Exactly at the threshold is not above it. */
	assert_int_equal(wk_idle_judge(&p, PROBE("0.50 0.05 0.01 1/40 99\n"), &load, NULL), WK_IDLE);
	assert_int_equal(wk_idle_judge(&p, PROBE("0.00 0.00 0.00 1/40 99\ninit\nrsync\nsh\n"), &load, &hit),
			 WK_BUSY_PROCESS);
	assert_string_equal(hit, "rsync");
	/* Whole names only, and the last line needs no newline. */
	assert_int_equal(wk_idle_judge(&p, PROBE("0.00 0 0 1/1 1\ncrond\nrsyn"), &load, &hit), WK_IDLE);
	assert_int_equal(wk_idle_judge(&p, PROBE("0.00 0 0 1/1 1\ncron"), &load, &hit), WK_BUSY_PROCESS);
	/* A process outranks the load: both keep it awake, the name says more. */
	assert_int_equal(wk_idle_judge(&p, PROBE("9.00 0 0 1/1 1\ncron\n"), &load, &hit), WK_BUSY_PROCESS);
}

static void test_idle_judge_bad_probe(void **state)
{
	struct wk_policy p = { .load_threshold = 0.5 };
	double load;

	assert_int_equal(wk_idle_judge(&p, PROBE(""), &load, NULL), WK_PROBE_BAD);
	assert_int_equal(wk_idle_judge(&p, PROBE("\ninit\n"), &load, NULL), WK_PROBE_BAD);
	assert_int_equal(wk_idle_judge(&p, PROBE("sh: cat: not found\n"), &load, NULL), WK_PROBE_BAD);
	assert_int_equal(wk_idle_judge(&p, PROBE("-1 0 0\n"), &load, NULL), WK_PROBE_BAD);
	assert_int_equal(wk_idle_judge(&p, PROBE("0.5x 0 0\n"), &load, NULL), WK_PROBE_BAD);
	/* Not NUL-terminated: only len bytes are read. */
	assert_int_equal(wk_idle_judge(&p, "0.10 0 0\n", 3, &load, NULL), WK_IDLE);
	assert_string_equal(wk_idle_verdict_name(WK_PROBE_BAD), "probe_failed");
	assert_string_equal(wk_idle_verdict_name(WK_BUSY_LOAD), "load");
	assert_string_equal(wk_idle_verdict_name(WK_BUSY_PROCESS), "process");
}

static void test_rate(void **state)
{
	struct wk_rate r = { 0 };
	int n = 0;

	/* No limit: always. */
	for (int i = 0; i < 1000; i++)
		assert_true(wk_rate_take(&r, 0, 0, 5.0));
	/* 3 at once, then one a second (per_s = 1). */
	memset(&r, 0, sizeof(r));
	while (wk_rate_take(&r, 1, 3, 100.0))
		n++;
	assert_int_equal(n, 3);
	assert_false(wk_rate_take(&r, 1, 3, 100.5));
	assert_true(wk_rate_take(&r, 1, 3, 101.0));
	assert_false(wk_rate_take(&r, 1, 3, 101.0));
	/* A long pause refills to the burst, not beyond. */
	n = 0;
	while (wk_rate_take(&r, 1, 3, 1000.0))
		n++;
	assert_int_equal(n, 3);
	/* Time going backwards adds nothing. */
	assert_false(wk_rate_take(&r, 1, 3, 50.0));
	/* 60 a minute: the 61st at once is refused. */
	memset(&r, 0, sizeof(r));
	for (int i = 0; i < 60; i++)
		assert_true(wk_rate_take(&r, 1, 60, 7.0));
	assert_false(wk_rate_take(&r, 1, 60, 7.0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trigger_names),  cmocka_unit_test(test_established_and_udp),
		cmocka_unit_test(test_wake_on),	       cmocka_unit_test(test_wake_ports),
		cmocka_unit_test(test_ignore_sources), cmocka_unit_test(test_routers),
		cmocka_unit_test(test_idle_judge),     cmocka_unit_test(test_idle_judge_bad_probe),
		cmocka_unit_test(test_rate),	       cmocka_unit_test(test_refusal_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
