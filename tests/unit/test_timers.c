/*
 * A VM's one-shot timers (odrsd/timers.c) on a real loop, their allocation
 * failing on demand (the link wraps timers.o's malloc): a timer that found no
 * memory is owed, not lost. The sweep fires a wake_timeout once it is due
 * even with the heap still full (main lost it: the VM stayed waking), starts
 * a recheck again once memory is back, and forgets a timer stopped meanwhile.
 * What a timer does and when it is due (wake.c's) are faked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "odrsd.h"

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

static struct {
	bool no_memory; /* timers.c's malloc fails */
	unsigned fired[VM_TIMER_COUNT];
	double due_in[VM_TIMER_COUNT];
} fake;

void *__wrap_malloc(size_t size)
{
	return fake.no_memory ? NULL : __real_malloc(size);
}

void vm_timer_fired(struct odrsd *d, struct vm *vm, enum vm_timer k)
{
	fake.fired[k]++;
}

double vm_timer_due_in(const struct odrsd *d, const struct vm *vm, enum vm_timer k)
{
	return fake.due_in[k];
}

static struct odrsd d;
static struct vm vm, other;
static struct vm *vms[] = { &other, &vm };

static int setup(void **state)
{
	memset(&fake, 0, sizeof(fake));
	memset(&d, 0, sizeof(d));
	memset(&vm, 0, sizeof(vm));
	memset(&other, 0, sizeof(other));
	d.loop = ev_loop_new(EVFLAG_AUTO);
	ev_set_userdata(d.loop, &d);
	d.vms = vms;
	d.nvms = 2;
	return d.loop ? 0 : -1;
}

static int teardown(void **state)
{
	for (enum vm_timer k = VM_TIMER_REPLAY; k < VM_TIMER_COUNT; k++)
		vm_timer_stop(&d, &vm, k);
	ev_timer_stop(d.loop, &d.timers_sweep);
	ev_loop_destroy(d.loop);
	return 0;
}

/* One sweep, as its timer would run it. */
static void sweep(void)
{
	ev_invoke(d.loop, &d.timers_sweep, EV_TIMER);
}

static void test_fires_once_then_freed(void **state)
{
	assert_true(vm_timer_start(&d, &vm, VM_TIMER_WAKE, 0.001));
	assert_non_null(vm.wake_timer);
	ev_run(d.loop, 0);
	assert_int_equal(fake.fired[VM_TIMER_WAKE], 1);
	assert_null(vm.wake_timer);
	assert_false(ev_is_active(&d.timers_sweep));
}

static void test_wake_timeout_without_memory_fires_when_due(void **state)
{
	fake.no_memory = true;
	assert_false(vm_timer_start(&d, &vm, VM_TIMER_WAKE, 60));
	assert_null(vm.wake_timer);
	assert_int_equal(vm.timers_owed, 1u << VM_TIMER_WAKE);
	assert_int_equal(d.timers_owed, 1);
	assert_true(ev_is_active(&d.timers_sweep));

	/* Not due, still no memory: owed on. */
	fake.due_in[VM_TIMER_WAKE] = 5;
	sweep();
	assert_int_equal(fake.fired[VM_TIMER_WAKE], 0);
	assert_int_equal(vm.timers_owed, 1u << VM_TIMER_WAKE);
	assert_true(ev_is_active(&d.timers_sweep));

	/* Due: fired from the sweep, no memory needed. */
	fake.due_in[VM_TIMER_WAKE] = 0;
	sweep();
	assert_int_equal(fake.fired[VM_TIMER_WAKE], 1);
	assert_int_equal(vm.timers_owed, 0);
	assert_int_equal(d.timers_owed, 0);
	assert_false(ev_is_active(&d.timers_sweep));
	assert_int_equal(fake.fired[VM_TIMER_RECHECK] + fake.fired[VM_TIMER_REPLAY], 0);
}

static void test_recheck_started_once_memory_is_back(void **state)
{
	fake.no_memory = true;
	assert_false(vm_timer_start(&d, &vm, VM_TIMER_RECHECK, 2));
	/* Owed twice (a restart while owed) counts once. */
	assert_false(vm_timer_start(&d, &vm, VM_TIMER_RECHECK, 2));
	assert_int_equal(d.timers_owed, 1);
	fake.no_memory = false;
	fake.due_in[VM_TIMER_RECHECK] = 0.001;
	sweep();
	assert_non_null(vm.recheck);
	assert_int_equal(vm.timers_owed, 0);
	assert_int_equal(d.timers_owed, 0);
	assert_false(ev_is_active(&d.timers_sweep));
	assert_int_equal(fake.fired[VM_TIMER_RECHECK], 0);
	ev_run(d.loop, 0);
	assert_int_equal(fake.fired[VM_TIMER_RECHECK], 1);
	assert_null(vm.recheck);
}

static void test_stopped_while_owed_is_forgotten(void **state)
{
	fake.no_memory = true;
	assert_false(vm_timer_start(&d, &vm, VM_TIMER_REPLAY, 0.15));
	vm_timer_stop(&d, &vm, VM_TIMER_REPLAY);
	assert_int_equal(vm.timers_owed, 0);
	assert_int_equal(d.timers_owed, 0);
	sweep();
	assert_int_equal(fake.fired[VM_TIMER_REPLAY], 0);
	assert_false(ev_is_active(&d.timers_sweep));
}

static unsigned once_fired;

static void on_once(struct ev_loop *loop, ev_timer *w, int revents)
{
	once_fired++;
}

/*
 * timer_once: due after its delay each time, also after it fired (started
 * again as it was, libev's one-shot fires at once: idle.c's confirmation and
 * the cluster's score did), and not pushed back while it runs.
 */
static void test_timer_once_waits_each_time(void **state)
{
	ev_timer w;

	ev_timer_init(&w, on_once, 0., 0.);
	for (int round = 0; round < 2; round++) {
		ev_tstamp t0;
		once_fired = 0;
		ev_now_update(d.loop);
		t0 = ev_now(d.loop);
		timer_once(d.loop, &w, 0.2);
		timer_once(d.loop, &w, 5.); /* running: left alone */
		while (!once_fired)
			ev_run(d.loop, EVRUN_ONCE);
		assert_true(ev_now(d.loop) - t0 >= 0.19);
		assert_true(ev_now(d.loop) - t0 < 2.);
		assert_false(ev_is_active(&w));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fires_once_then_freed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wake_timeout_without_memory_fires_when_due, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_recheck_started_once_memory_is_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stopped_while_owed_is_forgotten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_once_waits_each_time, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
