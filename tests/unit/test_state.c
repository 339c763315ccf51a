/*
 * odrsd/state.c's writer thread: each VM's state in state_dir in the order
 * asked for, every ticket answered (the pin's reply waits for it) once its
 * write or a later one for that VM is durable, a failure reported, and what
 * is queued at the stop written first. With a real libev loop and thread.
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "odrsd.h"

#define MAX_ENDS 64

static struct {
	char vm[MAX_ENDS][128];
	int64_t ticket[MAX_ENDS];
	int err[MAX_ENDS];
	unsigned n;
} ends;

void log_msg(int prio, const char *fmt, ...)
{
}

void control_state_saved(struct odrsd *d, const char *vm, int64_t ticket, int err)
{
	assert_true(ends.n < MAX_ENDS);
	snprintf(ends.vm[ends.n], sizeof(ends.vm[0]), "%s", vm);
	ends.ticket[ends.n] = ticket;
	ends.err[ends.n] = err;
	ends.n++;
}

static struct wk_config cfg;
static struct odrsd d;
static struct vm web1, web2;
static char web1_name[] = "web1", web2_name[] = "web2";
static char dir[64];

static int setup(void **state)
{
	memset(&ends, 0, sizeof(ends));
	memset(&d, 0, sizeof(d));
	snprintf(dir, sizeof(dir), "/tmp/odrs-test-state.XXXXXX");
	assert_non_null(mkdtemp(dir));
	cfg.state_dir = dir;
	d.cfg = &cfg;
	d.loop = ev_loop_new(EVFLAG_AUTO);
	memset(&web1, 0, sizeof(web1));
	memset(&web2, 0, sizeof(web2));
	web1.name = web1_name;
	web2.name = web2_name;
	web1.last_wake_ms = web2.last_wake_ms = -1;
	assert_int_equal(state_start(&d), 0);
	return 0;
}

static int teardown(void **state)
{
	char path[128];

	state_stop(&d);
	ev_loop_destroy(d.loop);
	snprintf(path, sizeof(path), "%s/web1.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/web2.json", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

/* The loop turns until the ticket of vm is answered. */
static void run_until(const char *vm, int64_t ticket)
{
	for (int i = 0; i < 5000; i++) {
		for (unsigned k = 0; k < ends.n; k++)
			if (!strcmp(ends.vm[k], vm) && ends.ticket[k] >= ticket)
				return;
		ev_run(d.loop, EVRUN_ONCE | EVRUN_NOWAIT);
		usleep(1000);
	}
	fail_msg("ticket %lld of %s never answered", (long long)ticket, vm);
}

static bool pinned_on_disk(const struct vm *vm)
{
	struct vm loaded = *vm;

	loaded.pinned = !vm->pinned;
	state_load(&d, &loaded);
	return loaded.pinned;
}

/* Many saves of two VMs: the last of each is on disk, tickets grow, each VM's ends in order. */
static void test_order_and_supersede(void **state)
{
	int64_t t, last1 = 0, last2 = 0, prev1 = 0, prev2 = 0;

	(void)state;
	for (int i = 0; i < 20; i++) {
		web1.pinned = i % 2;
		assert_true((t = state_save(&d, &web1)) > last1 && t > last2);
		last1 = t;
		web2.pinned = !(i % 2);
		web2.last_wake_ms = i;
		assert_true((last2 = state_save(&d, &web2)) > last1);
	}
	run_until("web1", last1);
	run_until("web2", last2);
	for (unsigned k = 0; k < ends.n; k++) {
		int64_t *prev = !strcmp(ends.vm[k], "web1") ? &prev1 : &prev2;

		assert_int_equal(ends.err[k], 0);
		assert_true(ends.ticket[k] > *prev);
		*prev = ends.ticket[k];
	}
	assert_int_equal(prev1, last1);
	assert_int_equal(prev2, last2);
	assert_true(pinned_on_disk(&web1));
	assert_false(pinned_on_disk(&web2));
	web2.last_wake_ms = -1;
	state_load(&d, &web2);
	assert_int_equal(web2.last_wake_ms, 19);
}

/* A write that cannot happen answers its ticket with the errno. */
static void test_failure_answered(void **state)
{
	int64_t t;

	(void)state;
	cfg.state_dir = "/nonexistent/odrs-state";
	t = state_save(&d, &web1);
	cfg.state_dir = dir;
	run_until("web1", t);
	assert_int_equal(ends.ticket[0], t);
	assert_int_equal(ends.err[0], -ENOENT);
}

/* Stopping writes what is queued: a pin answered or not survives the exit. */
static void test_stop_writes_queue(void **state)
{
	(void)state;
	web1.pinned = true;
	assert_true(state_save(&d, &web1) > 0);
	state_stop(&d);
	assert_null(d.state_writer);
	assert_true(pinned_on_disk(&web1));
	assert_int_equal(state_start(&d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_and_supersede, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_writes_queue, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
