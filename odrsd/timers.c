/*
 * A VM's one-shot timers (replay, wake_timeout, recheck) exist only while
 * they run: most VMs sleep, with none. Without memory for one, the timer is
 * owed (vm->timers_owed) instead of lost: a lost wake_timeout left a VM
 * waking forever, a lost recheck left it in error. One sweep for all VMs
 * runs every TIMERS_SWEEP_S while any timer is owed: it fires those due
 * (vm_timer_due_in), which needs no memory, and starts the others again.
 * It walks d->vms: a VM a reload dropped is freed with its job, which ends
 * without the timer.
 */
#include <stdlib.h>

#include "odrsd.h"

#define TIMERS_SWEEP_S 1.0

static ev_timer **timer_slot(struct vm *vm, enum vm_timer k)
{
	switch (k) {
	case VM_TIMER_REPLAY:
		return &vm->replay_timer;
	case VM_TIMER_WAKE:
		return &vm->wake_timer;
	default:
		return &vm->recheck;
	}
}

static void owed_clear(struct odrsd *d, struct vm *vm, enum vm_timer k)
{
	if (!(vm->timers_owed & 1u << k))
		return;
	vm->timers_owed &= ~(1u << k);
	d->timers_owed--;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = ev_userdata(loop);
	struct vm *vm = w->data;
	enum vm_timer k = VM_TIMER_REPLAY;

	while (*timer_slot(vm, k) != w)
		k++;
	vm_timer_stop(d, vm, k);
	vm_timer_fired(d, vm, k);
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = ev_userdata(loop);

	/* A timer fired here may be owed again (its VM's next one); the loop turn after serves it. */
	for (size_t i = 0; i < d->nvms && d->timers_owed; i++) {
		struct vm *vm = d->vms[i];
		uint8_t owed = vm->timers_owed;

		for (enum vm_timer k = VM_TIMER_REPLAY; owed && k < VM_TIMER_COUNT; k++) {
			double after;

			if (!(owed & 1u << k))
				continue;
			if ((after = vm_timer_due_in(d, vm, k)) > 0) {
				vm_timer_start(d, vm, k, after);
				continue;
			}
			owed_clear(d, vm, k);
			vm_timer_fired(d, vm, k);
		}
	}
	if (!d->timers_owed)
		ev_timer_stop(loop, w);
}

bool vm_timer_start(struct odrsd *d, struct vm *vm, enum vm_timer k, double after)
{
	ev_timer **t = timer_slot(vm, k);

	if (*t) {
		ev_timer_stop(d->loop, *t);
	} else if (!(*t = malloc(sizeof(**t)))) {
		if (!(vm->timers_owed & 1u << k)) {
			vm->timers_owed |= 1u << k;
			d->timers_owed++;
		}
		if (!ev_is_active(&d->timers_sweep)) {
			ev_timer_init(&d->timers_sweep, on_sweep, TIMERS_SWEEP_S, TIMERS_SWEEP_S);
			ev_timer_start(d->loop, &d->timers_sweep);
		}
		return false;
	}
	owed_clear(d, vm, k);
	ev_timer_init(*t, on_timer, after, 0.);
	(*t)->data = vm;
	ev_timer_start(d->loop, *t);
	return true;
}

void vm_timer_stop(struct odrsd *d, struct vm *vm, enum vm_timer k)
{
	ev_timer **t = timer_slot(vm, k);

	owed_clear(d, vm, k);
	if (!*t)
		return;
	ev_timer_stop(d->loop, *t);
	free(*t);
	*t = NULL;
}

void timer_once(struct ev_loop *loop, ev_timer *w, double after)
{
	if (ev_is_active(w))
		return;
	ev_timer_set(w, after, 0.);
	ev_timer_start(loop, w);
}
