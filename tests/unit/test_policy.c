/* Wake policies: which trigger, from whom, to which port, may wake a VM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <wake/policy.h>

static uint32_t
ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void
test_trigger_names(void **state)
{
	assert_string_equal(wk_trigger_name(WK_TRIGGER_ARP), "arp");
	assert_string_equal(wk_trigger_name(WK_TRIGGER_SYN), "syn");
	assert_string_equal(wk_trigger_name(WK_TRIGGER_MANUAL), "manual");
}

static void
test_wake_on(void **state)
{
	struct wk_policy p = { .wake_on = WK_WAKE_ARP | WK_WAKE_SYN };
	uint32_t client = ip("198.18.0.50");

	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_ARP, client, 0));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 22));
	p.wake_on = WK_WAKE_ARP;
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_ARP, client, 0));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 22));
	p.wake_on = WK_WAKE_SYN;
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ARP, client, 0));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 22));
	/* wake_on = none: packets never wake, an operator still can. */
	p.wake_on = 0;
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ARP, client, 0));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 22));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_MANUAL, 0, 0));
}

static void
test_wake_ports(void **state)
{
	uint16_t ports[] = { 22, 443 };
	struct wk_policy p = { .wake_on = WK_WAKE_ARP | WK_WAKE_SYN,
	    .wake_ports = ports, .nwake_ports = 2 };
	uint32_t client = ip("198.18.0.50");

	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 22));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 443));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 80));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 0));
	/* Ports say nothing about ARP, which carries none. */
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_ARP, client, 80));
	/* No list: any port. */
	p.nwake_ports = 0;
	p.wake_ports = NULL;
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 80));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, client, 65535));
}

static void
test_ignore_sources(void **state)
{
	uint32_t ignored[] = { ip("198.18.0.1"), ip("198.18.0.2") };
	struct wk_policy p = { .wake_on = WK_WAKE_ARP | WK_WAKE_SYN,
	    .ignore_sources = ignored, .nignore_sources = 2 };

	assert_true(wk_policy_ignores(&p, ip("198.18.0.1")));
	assert_true(wk_policy_ignores(&p, ip("198.18.0.2")));
	assert_false(wk_policy_ignores(&p, ip("198.18.0.3")));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_ARP, ip("198.18.0.2"), 0));
	assert_false(wk_policy_may_wake(&p, WK_TRIGGER_SYN, ip("198.18.0.1"), 22));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_ARP, ip("198.18.0.3"), 0));
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_SYN, ip("198.18.0.3"), 22));
	/* An operator's wake is never filtered by source. */
	assert_true(wk_policy_may_wake(&p, WK_TRIGGER_MANUAL, ip("198.18.0.1"), 0));

	p.nignore_sources = 0;
	assert_false(wk_policy_ignores(&p, ip("198.18.0.1")));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trigger_names),
		cmocka_unit_test(test_wake_on),
		cmocka_unit_test(test_wake_ports),
		cmocka_unit_test(test_ignore_sources),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
