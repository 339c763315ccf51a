/*
 * Automatic hibernation (the paper's section 2.3). A VM is idle when no TCP
 * frame to or from it was seen for idle_timeout, its guest's load is at most
 * load_threshold and it runs no protected process. Missing information
 * (a probe that fails) never counts as idle.
 *
 * Activity costs little: the capture filter passes a VM's TCP only until
 * the first frame of each check interval; that frame marks it seen and the
 * next filter leaves it out until the interval ends. One timer for all VMs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evlog.h"
#include "log.h"
#include "odrsd.h"

bool vm_watch_activity(const struct vm *vm)
{
	return vm->state == VM_RUNNING && vm->conf && vm->conf->policy.idle_timeout_ms && !vm->seen;
}

void idle_note_tcp(struct odrsd *d, uint32_t ip)
{
	struct vm *vm = wk_vmtable_by_ip(d->table, ip);

	if (!vm)
		return;
	vm->last_activity = ev_now(d->loop);
	if (!vm->seen && vm->state == VM_RUNNING) {
		vm->seen = true;
		vm->idle_skip = NULL;
		capture_filter_changed(d);
	}
}

/* Say why an idle VM stays up, once per reason until it is busy again. */
static void idle_skip(struct vm *vm, const char *reason, json_t *fields)
{
	if (vm->idle_skip && !strcmp(vm->idle_skip, reason)) {
		json_decref(fields);
		return;
	}
	vm->idle_skip = reason;
	if (!fields)
		fields = json_object();
	json_object_set_new(fields, "reason", json_string(reason));
	evlog_emit("idle_skip", vm->name, fields);
	log_info("%s: idle, but stays up: %s", vm->name, reason);
}

static void idle_hibernate(struct odrsd *d, struct vm *vm)
{
	char err[256];

	if (vm->conf->policy.dry_run) {
		idle_skip(vm, "dry_run", NULL);
		return;
	}
	if (hibernate_start(d, vm, "idle", err, sizeof(err)) < 0)
		log_warn("%s: idle, but %s", vm->name, err);
}

void idle_probe_done(struct odrsd *d, struct vm *vm)
{
	struct virt_job *job = &vm->probe;
	enum wk_idle_verdict v;
	const char *process;
	double load;

	vm->probing = false;
	if (vm->removed || !vm->conf || vm->state != VM_RUNNING || vm->seen) {
		/* It was busy, or changed, while the guest answered. */
	} else if (job->err) {
		idle_skip(vm, "probe_failed", json_pack("{s:s}", "error", job->error));
	} else {
		v = wk_idle_judge(&vm->conf->policy, job->output, job->output_len, &load, &process);
		if (v == WK_IDLE)
			idle_hibernate(d, vm);
		else if (v == WK_BUSY_LOAD)
			idle_skip(vm, "load", json_pack("{s:f}", "load", load));
		else if (v == WK_BUSY_PROCESS)
			idle_skip(vm, "process", json_pack("{s:s}", "process", process));
		else
			idle_skip(vm, "probe_failed", json_pack("{s:s}", "error", "unreadable probe output"));
	}
	free(job->output);
	job->output = NULL;
}

static void idle_check(struct odrsd *d, struct vm *vm, ev_tstamp now)
{
	const struct wk_policy *pol;

	if (vm->seen) {
		/* Busy during the interval: it counts as busy until its end. */
		vm->last_activity = now;
		vm->seen = false;
		capture_filter_changed(d);
		return;
	}
	if (vm->state != VM_RUNNING || !vm->conf || vm->job_busy || vm->probing || vm->held)
		return;
	pol = &vm->conf->policy;
	if (!pol->idle_timeout_ms || now - vm->last_activity < pol->idle_timeout_ms / 1000.)
		return;
	if (vm->pinned) {
		idle_skip(vm, "pinned", NULL);
		return;
	}
	if (pol->probe == WK_PROBE_NONE) {
		idle_hibernate(d, vm);
		return;
	}
	memset(&vm->probe, 0, sizeof(vm->probe));
	vm->probe.op = VIRT_PROBE;
	vm->probe.owner = vm;
	vm->probe.probe = pol->probe;
	vm->probe.ip = vm->ip;
	vm->probe.timeout_ms = (unsigned)d->cfg->probe_timeout_ms;
	snprintf(vm->probe.name, sizeof(vm->probe.name), "%s", vm->name);
	vm->probing = true;
	virt_submit(d->virt, &vm->probe);
}

static void on_idle_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;
	ev_tstamp now = ev_now(loop);

	for (size_t i = 0; i < d->nvms; i++)
		idle_check(d, d->vms[i], now);
}

void idle_start(struct odrsd *d)
{
	ev_tstamp every = d->cfg->check_interval_ms / 1000.;

	ev_timer_init(&d->idle_timer, on_idle_timer, every, every);
	d->idle_timer.data = d;
	ev_timer_start(d->loop, &d->idle_timer);
}

void idle_interval_changed(struct odrsd *d)
{
	d->idle_timer.repeat = d->cfg->check_interval_ms / 1000.;
	ev_timer_again(d->loop, &d->idle_timer);
}
