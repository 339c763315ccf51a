/*
 * Retraining the switches (odrsd/retrain.c) on a real loop, issue 17: a role
 * move is one sweep over the sleeping VMs at retrain_rate, each MAC once; a
 * refresh asked for while it runs restarts nothing and queues nothing; the
 * node that loses the role stops at once, and winning it back is one whole
 * sweep again, from the first VM; a VM going to sleep twice is queued once.
 * The injection, the event log and the log are stubbed: a frame "sent" is
 * counted by its source MAC.
 */
#include <setjmp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "evlog.h"
#include "log.h"
#include "odrsd.h"

#define NVMS	 300
#define NRUNNING 50 /* the first ones: not announced */
#define NASLEEP	 (NVMS - NRUNNING)
#define RATE	 1000

static struct odrsd d;
static struct wk_config cfg;
static struct vm vms[NVMS], *vmp[NVMS];
static unsigned sent[NVMS], sent_total;
static unsigned events, last_count; /* retrain events; the last one's count */

void log_msg(int prio, const char *fmt, ...)
{
}

void evlog_emit(const char *event, const char *vm, json_t *fields)
{
	if (!strcmp(event, "retrain")) {
		events++;
		last_count = (unsigned)json_integer_value(json_object_get(fields, "count"));
	}
	json_decref(fields);
}

/* The VM is the source MAC's last two bytes. */
int inject_frame(struct odrsd *od, unsigned ifindex, const uint8_t *frame, size_t len)
{
	unsigned i = (unsigned)frame[10] << 8 | frame[11];

	assert_true(len >= 14 && i < NVMS);
	sent[i]++;
	sent_total++;
	return 0;
}

static void on_stop(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void run_for(double s)
{
	ev_timer stop;

	ev_timer_init(&stop, on_stop, s, 0.);
	ev_timer_start(d.loop, &stop);
	ev_run(d.loop, 0);
	ev_timer_stop(d.loop, &stop);
}

/* Until a retrain event more than seen so far, at most max_s. */
static void run_until_event(double max_s)
{
	unsigned before = events;
	ev_tstamp end = ev_time() + max_s;

	while (events == before && ev_time() < end)
		run_for(0.01);
	assert_int_equal(events, before + 1);
}

static void counts_clear(void)
{
	memset(sent, 0, sizeof(sent));
	sent_total = 0;
}

/* Every sleeping VM sent exactly once since counts_clear(), no running one. */
static void each_asleep_once(void)
{
	for (unsigned i = 0; i < NVMS; i++)
		assert_int_equal(sent[i], i < NRUNNING ? 0 : 1);
}

static int setup(void **state)
{
	memset(&d, 0, sizeof(d));
	memset(&cfg, 0, sizeof(cfg));
	memset(vms, 0, sizeof(vms));
	counts_clear();
	events = last_count = 0;
	cfg.retrain_rate = RATE;
	d.cfg = &cfg;
	d.loop = ev_loop_new(0);
	d.table = wk_vmtable_new(NVMS);
	assert_non_null(d.loop);
	assert_non_null(d.table);
	for (unsigned i = 0; i < NVMS; i++) {
		struct vm *vm = &vms[i];
		const uint8_t mac[WK_ETH_ALEN] = { 0x52, 0x54, 0x01, 0, (uint8_t)(i >> 8), (uint8_t)i };
		memcpy(vm->mac, mac, sizeof(mac));
		vm->has_mac = true;
		vm->ip = htonl(0xc6120100 + i);
		vm->state = i < NRUNNING ? VM_RUNNING : VM_HIBERNATED;
		vm->name = "s";
		assert_int_equal(wk_vmtable_add(d.table, vm->ip, vm->mac, vm), 0);
		vmp[i] = vm;
	}
	d.vms = vmp;
	d.nvms = NVMS;
	retrain_init(&d);
	return 0;
}

static int teardown(void **state)
{
	retrain_stop(&d);
	free(d.retrain.now.a);
	free(d.retrain.later.a);
	wk_vmtable_free(d.table);
	ev_loop_destroy(d.loop);
	return 0;
}

/* A role move: every sleeping MAC once, no faster than the rate. */
static void test_sweep_at_rate(void **state)
{
	ev_tstamp t0 = ev_time();

	retrain_all(&d);
	run_until_event(5);
	assert_int_equal(last_count, NASLEEP);
	each_asleep_once();
	/* 250 frames at 1,000/s: 0.25 s, less the one tick of credit it starts with. */
	assert_true(ev_time() - t0 >= (NASLEEP - RATE / 100 - 1) / (double)RATE);
	assert_int_equal(d.retrain.now.cap, 0);
}

/* The role lost in the middle of a sweep: nothing more goes out, nothing is left running. */
static void test_role_lost_stops_sweep(void **state)
{
	unsigned before;

	retrain_all(&d);
	run_for(0.1);
	before = sent_total;
	assert_true(before > 0 && before < NASLEEP);
	retrain_stop(&d);
	run_for(0.3);
	assert_int_equal(sent_total, before);
	assert_int_equal(events, 0);
	assert_false(ev_is_active(&d.retrain.tick));
	assert_false(ev_is_active(&d.retrain.refresh));
}

/* The role back in the middle: one whole sweep from the first VM, not the rest of the old one, not two. */
static void test_role_back_sweeps_once(void **state)
{
	retrain_all(&d);
	run_for(0.1);
	assert_true(sent_total > 0 && sent_total < NASLEEP);
	retrain_stop(&d);
	counts_clear();
	retrain_all(&d);
	run_until_event(5);
	assert_int_equal(last_count, NASLEEP);
	each_asleep_once();
	run_for(0.1);
	assert_int_equal(sent_total, NASLEEP);
}

/*
 * A refresh every 50 ms, faster than the 250 ms sweep can cover: the sweep
 * is not restarted (each MAC once in the first burst), and no queue grows; it
 * goes on sweeping at the rate.
 */
static void test_refresh_restarts_nothing(void **state)
{
	ev_tstamp t0;

	cfg.retrain_refresh_ms = 50;
	retrain_all(&d);
	run_until_event(5);
	assert_int_equal(last_count, NASLEEP);
	each_asleep_once();
	counts_clear();
	t0 = ev_time();
	run_for(0.5);
	assert_true(sent_total <= (ev_time() - t0) * RATE + RATE / 100 + 1);
	assert_true(sent_total > 0);
	assert_int_equal(d.retrain.now.cap, 0);
	assert_int_equal(d.retrain.later.cap, 0);
}

/* A VM that goes to sleep again before its frame left: queued once, sent once, and once more retrain_delay later. */
static void test_vm_queued_once(void **state)
{
	struct vm *vm = &vms[NVMS - 1];

	cfg.retrain_delay_ms = 100;
	for (int i = 0; i < 3; i++)
		retrain_vm(&d, vm);
	assert_int_equal(d.retrain.now.len - d.retrain.now.head, 1);
	assert_int_equal(d.retrain.later.len - d.retrain.later.head, 1);
	run_for(0.4);
	assert_int_equal(sent[NVMS - 1], 2);
	assert_int_equal(sent_total, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sweep_at_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_role_lost_stops_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_role_back_sweeps_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_restarts_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_queued_once, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
