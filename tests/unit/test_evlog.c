/*
 * The event log's aggregation of per-frame events (odrsd/evlog.c) on a real
 * loop: a flood for one VM is two lines whose counts sum to the flood; many
 * VMs at once stay within the line budget and lose no count; a VM quiet for
 * an interval is logged at once again. The log is stubbed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "evlog.h"
#include "log.h"

void log_msg(int prio, const char *fmt, ...)
{
}

static char path[] = "/tmp/test_evlog.XXXXXX";

struct tally {
	unsigned lines;	     /* of the event */
	unsigned long count; /* their counts summed */
	unsigned folded;     /* lines without a vm */
};

static struct tally tally(const char *event)
{
	struct tally t = { 0 };
	char line[1024];
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		if (!strcmp(json_string_value(json_object_get(o, "event")), event)) {
			t.lines++;
			t.count += (unsigned long)json_integer_value(json_object_get(o, "count"));
			t.folded += !json_object_get(o, "vm");
		}
		json_decref(o);
	}
	fclose(f);
	return t;
}

static void on_stop(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

/* Run the loop for s seconds: the aggregation's timer fires meanwhile. */
static void run_for(struct ev_loop *loop, double s)
{
	ev_timer stop;

	ev_timer_init(&stop, on_stop, s, 0.);
	ev_timer_start(loop, &stop);
	ev_run(loop, 0);
}

static int setup(void **state)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(evlog_open(path, "n1"), 0);
	evlog_aggregate_start(EV_DEFAULT);
	return 0;
}

static int teardown(void **state)
{
	evlog_aggregate_stop();
	evlog_close();
	unlink(path);
	strcpy(path, "/tmp/test_evlog.XXXXXX");
	return 0;
}

static void test_flood_one_vm(void **state)
{
	struct tally t;

	for (int i = 0; i < 10000; i++)
		evlog_frame("arp_reply", "web1", NULL, json_pack("{s:s}", "requester", "198.18.0.1"));
	/* The first at once. */
	t = tally("arp_reply");
	assert_int_equal(t.lines, 1);
	assert_int_equal(t.count, 1);
	run_for(EV_DEFAULT, EVLOG_INTERVAL_MS / 1000. + 0.2);
	t = tally("arp_reply");
	assert_int_equal(t.lines, 2);
	assert_int_equal(t.count, 10000);
	/* Quiet for an interval: forgotten; the next one is written at once. */
	run_for(EV_DEFAULT, 2 * EVLOG_INTERVAL_MS / 1000. + 0.2);
	evlog_frame("arp_reply", "web1", NULL, NULL);
	t = tally("arp_reply");
	assert_int_equal(t.lines, 3);
	assert_int_equal(t.count, 10001);
}

static void test_many_vms_bounded(void **state)
{
	char vm[32];
	struct tally t;

	/* A scanner: 5,000 VMs, 3 frames each; and a refusal counted apart by its key. */
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 5000; i++) {
			snprintf(vm, sizeof(vm), "s%d", i);
			evlog_frame("arp_reply", vm, NULL, NULL);
		}
	evlog_frame("trigger_refused", "s1", "syn/wake_ports", NULL);
	evlog_frame("trigger_refused", "s1", "arp/wake_on", NULL);
	t = tally("arp_reply");
	assert_true(t.lines <= 100);
	run_for(EV_DEFAULT, EVLOG_INTERVAL_MS / 1000. + 0.2);
	t = tally("arp_reply");
	assert_true(t.lines <= 100 + 100 + 1);
	assert_true(t.folded >= 1);
	assert_int_equal(t.count, 15000);
	/* Past the budget, in a line of their own or folded: still counted. */
	t = tally("trigger_refused");
	assert_int_equal(t.count, 2);
}

/* Keys are counted apart: two reasons for one VM, two first lines. */
static void test_keys_apart(void **state)
{
	struct tally t;

	for (int i = 0; i < 3; i++) {
		evlog_frame("trigger_refused", "s1", "syn/wake_ports", NULL);
		evlog_frame("trigger_refused", "s1", "arp/wake_on", NULL);
	}
	t = tally("trigger_refused");
	assert_int_equal(t.lines, 2);
	assert_int_equal(t.count, 2);
	run_for(EV_DEFAULT, EVLOG_INTERVAL_MS / 1000. + 0.2);
	t = tally("trigger_refused");
	assert_int_equal(t.lines, 4);
	assert_int_equal(t.count, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flood_one_vm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_vms_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_apart, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
