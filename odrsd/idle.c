/*
 * Automatic hibernation (the paper's section 2.3). A VM is idle when no TCP
 * frame to or from it (nor UDP, with activity_udp) was seen for idle_timeout,
 * it has no open TCP connection (with idle_connections = keep), its guest's load is at most
 * load_threshold and it runs no protected process. Missing information
 * (a probe that fails) never counts as idle.
 *
 * Activity comes from the activity capture (capture.c): the TCP of every
 * managed VM, handed over in blocks, at most ACTIVITY_DELAY_MS late. A VM
 * that looks idle at a check is confirmed: from the check on, the confirm
 * capture hands its TCP over at once, and ACTIVITY_DELAY_MS later the blocks
 * have brought everything before; only then, and again after the probe, is
 * it judged on all activity up to that moment. One timer for all VMs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evlog.h"
#include "log.h"
#include "odrsd.h"

bool vm_watch_activity(const struct odrsd *d, const struct vm *vm)
{
	return vm->state == VM_RUNNING && vm_is_local(d, vm) && vm->conf && vm->conf->policy.idle_timeout_ms;
}

bool vm_idle_confirming(const struct odrsd *d, const struct vm *vm)
{
	return vm->idle_pending || vm->probing;
}

static bool idle_confirming_any(const struct odrsd *d)
{
	for (size_t i = 0; i < d->nvms; i++)
		if (vm_idle_confirming(d, d->vms[i]))
			return true;
	return false;
}

/* The last VM decided: the confirm capture closes. */
static void idle_confirm_done(struct odrsd *d)
{
	if (!idle_confirming_any(d))
		capture_confirm_update(d);
}

bool idle_note_tcp(struct odrsd *d, uint32_t ip)
{
	struct vm *vm = wk_vmtable_by_ip(d->table, ip);

	if (!vm)
		return false;
	vm->last_activity = ev_now(d->loop);
	vm->idle_skip = NULL;
	return true;
}

bool idle_note_tcp6(struct odrsd *d, const uint8_t ip6[16])
{
	struct vm *vm = wk_vmtable_by_ip6(d->table, ip6);

	if (!vm)
		return false;
	vm->last_activity = ev_now(d->loop);
	vm->idle_skip = NULL;
	return true;
}

void idle_note_udp(struct odrsd *d, const struct wk_pkt *p)
{
	struct vm *ends[2] = {
		p->v6 ? wk_vmtable_by_ip6(d->table, p->ip6.src) : wk_vmtable_by_ip(d->table, p->ip.src),
		p->v6 ? wk_vmtable_by_ip6(d->table, p->ip6.dst) : wk_vmtable_by_ip(d->table, p->ip.dst),
	};

	for (size_t i = 0; i < 2; i++)
		if (ends[i] && ends[i]->conf && ends[i]->conf->policy.activity_udp) {
			ends[i]->last_activity = ev_now(d->loop);
			ends[i]->idle_skip = NULL;
		}
}

/* No TCP (or UDP, with activity_udp) seen for the VM's idle_timeout. */
static bool idle_for(struct odrsd *d, const struct vm *vm)
{
	return ev_now(d->loop) - vm->last_activity >= vm->conf->policy.idle_timeout_ms / 1000.;
}

/* Why the last check kept vm up, for odrsctl show: reason a literal, detail its value. */
static void stayed_up(struct odrsd *d, struct vm *vm, const char *reason, const char *detail)
{
	vm->stayed_up = reason;
	vm_text_set(&vm->stayed_up_detail, detail);
	vm->stayed_up_at = ev_now(d->loop);
}

/* Say why an idle VM stays up: shown always, logged once per reason until it is busy again. */
static void idle_skip(struct odrsd *d, struct vm *vm, const char *reason, json_t *fields)
{
	/* Its one detail (the load, the process, the error), as text. */
	json_t *v = json_object_iter_value(json_object_iter(fields));
	char *number = v && !json_is_string(v) ? json_dumps(v, JSON_ENCODE_ANY) : NULL;

	stayed_up(d, vm, reason, json_is_string(v) ? json_string_value(v) : number);
	free(number);
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
		idle_skip(d, vm, "dry_run", NULL);
		return;
	}
	if ((vm->conf->policy.sleep == WK_SLEEP_HIBERNATE ? vm_request_hibernate : vm_request_doze)(
		    d, vm, "idle", err, sizeof(err)) < 0) {
		log_warn("%s: idle, but %s", vm->name, err);
		stayed_up(d, vm, "refused", err);
	}
}

/* sleep = doze_then_hibernate: dozing for hibernate_after, its node's memory is freed. */
static void hibernate_dozing(struct odrsd *d, struct vm *vm)
{
	const struct wk_policy *pol = vm->conf ? &vm->conf->policy : NULL;
	char err[256];

	if (vm->state != VM_DOZING || !pol || pol->sleep != WK_SLEEP_DOZE_THEN_HIBERNATE || vm->pinned ||
	    pol->dry_run || vm->job_busy || !vm_is_local(d, vm) ||
	    ev_now(d->loop) - vm->dozed_at < pol->hibernate_after_ms / 1000.)
		return;
	if (vm_request_hibernate(d, vm, "idle", err, sizeof(err)) < 0)
		log_warn("%s: dozing for hibernate_after, but %s", vm->name, err);
}

void idle_probe_done(struct odrsd *d, struct vm *vm)
{
	struct virt_job *job = vm->probe;
	enum wk_idle_verdict v;
	const char *process;
	double load;

	vm->probing = false;
	capture_activity_flush(d);
	if (vm->removed || !vm->conf || vm->state != VM_RUNNING || !idle_for(d, vm)) {
		/* It was busy, or changed, while the guest answered. */
	} else if (job->err) {
		idle_skip(d, vm, "probe_failed", json_pack("{s:s}", "error", job->error));
	} else {
		v = wk_idle_judge(&vm->conf->policy, job->output, job->output_len, &load, &process);
		if (v == WK_IDLE)
			idle_hibernate(d, vm);
		else if (v == WK_BUSY_LOAD)
			idle_skip(d, vm, "load", json_pack("{s:f}", "load", load));
		else if (v == WK_BUSY_PROCESS)
			idle_skip(d, vm, "process", json_pack("{s:s}", "process", process));
		else
			idle_skip(d, vm, "probe_failed",
				  json_pack("{s:s}", "error", "unreadable probe output"));
	}
	free(job->output);
	free(job);
	vm->probe = NULL;
	idle_confirm_done(d);
}

/* Its TCP within idle_timeout: up for that, since how long. */
static void traffic_seen(struct odrsd *d, struct vm *vm)
{
	char detail[64];

	snprintf(detail, sizeof(detail), "last TCP %.0f s ago", ev_now(d->loop) - vm->last_activity);
	stayed_up(d, vm, "traffic", detail);
}

static bool idle_candidate(struct odrsd *d, const struct vm *vm)
{
	return vm_watch_activity(d, vm) && !vm->job_busy && !vm->probing && !vm->held && idle_for(d, vm);
}

/* Idle on the wire, for sure: probe the guest, or hibernate it. */
static void idle_act(struct odrsd *d, struct vm *vm)
{
	const struct wk_policy *pol = &vm->conf->policy;

	if (vm->pinned) {
		idle_skip(d, vm, "pinned", NULL);
		return;
	}
	/* However quiet, a connection the wire saw open keeps it up. */
	if (pol->idle_connections == WK_IDLE_CONNECTIONS_KEEP && flows_open(vm)) {
		idle_skip(d, vm, "connections",
			  json_pack("{s:I}", "connections", (json_int_t)flows_open(vm)));
		return;
	}
	if (pol->probe == WK_PROBE_NONE) {
		idle_hibernate(d, vm);
		return;
	}
	/* Made for each probe: a sleeping VM (most of them) carries none. */
	if (!(vm->probe = calloc(1, sizeof(*vm->probe)))) {
		idle_skip(d, vm, "probe_failed", json_pack("{s:s}", "error", strerror(ENOMEM)));
		return;
	}
	vm->probe->op = VIRT_PROBE;
	vm->probe->owner = vm;
	vm->probe->probe = pol->probe;
	vm->probe->ip = vm->ip;
	vm->probe->timeout_ms = (unsigned)d->cfg->probe_timeout_ms;
	vm->probe->name = vm->name;
	vm->probing = true;
	virt_submit(d->virt, vm->probe);
}

/*
 * A check walks every VM, IDLE_SLICE of them per loop turn: at 100,000
 * VMs, most of them asleep, the whole walk takes about 2 ms (a cache miss
 * per VM), which a frame arriving meanwhile would wait for
 * (odrs_loop_turn_seconds; bench/README.md, issue 17's spikes). Between
 * slices the loop polls, and the wake capture goes first; a timer, not an
 * ev_idle, so that a flood that keeps a capture readable cannot starve it.
 */
#define IDLE_SLICE 4096

/* From the confirm capture's start to the judgement: every frame from before has come in blocks. */
#define IDLE_CONFIRM_S ((ACTIVITY_DELAY_MS + 50) / 1000.)

/*
 * A VM that looks idle is acted on ACTIVITY_DELAY_MS (and a margin) after the
 * confirm capture began to take its TCP: by then the activity capture has
 * handed over every frame from before, the confirm capture every frame since.
 * Without the confirm capture, it is not judged at all.
 */
static void on_idle_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;

	capture_activity_flush(d);
	d->idle_walked = 0;
	d->idle_any = false;
	ev_timer_start(loop, &d->idle_walk);
}

static void on_idle_walk(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;
	size_t end = d->idle_walked + IDLE_SLICE;

	/* A reload meanwhile may have rebuilt d->vms: a VM checked twice or not at all this once is harmless. */
	for (; d->idle_walked < d->nvms && d->idle_walked < end; d->idle_walked++) {
		struct vm *vm = d->vms[d->idle_walked];
		hibernate_dozing(d, vm);
		vm->idle_pending = idle_candidate(d, vm);
		d->idle_any = d->idle_any || vm->idle_pending;
		if (vm_watch_activity(d, vm) && !idle_for(d, vm))
			traffic_seen(d, vm);
	}
	if (d->idle_walked < d->nvms) {
		ev_timer_start(loop, w);
		return;
	}
	if (!d->idle_any)
		return;
	if (capture_confirm_update(d) < 0) {
		for (size_t i = 0; i < d->nvms; i++)
			d->vms[i]->idle_pending = false;
		idle_confirm_done(d);
		return;
	}
	ev_now_update(loop);
	timer_once(loop, &d->idle_confirm, IDLE_CONFIRM_S);
}

static void on_idle_confirm(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;

	capture_activity_flush(d);
	for (size_t i = 0; i < d->nvms; i++) {
		struct vm *vm = d->vms[i];
		if (vm->idle_pending && idle_candidate(d, vm))
			idle_act(d, vm);
		else if (vm->idle_pending && vm_watch_activity(d, vm) && !idle_for(d, vm))
			traffic_seen(d, vm); /* while it was confirmed */
		vm->idle_pending = false;
	}
	idle_confirm_done(d);
}

void idle_start(struct odrsd *d)
{
	ev_tstamp every = d->cfg->check_interval_ms / 1000.;

	ev_timer_init(&d->idle_timer, on_idle_timer, every, every);
	d->idle_timer.data = d;
	ev_timer_start(d->loop, &d->idle_timer);
	ev_timer_init(&d->idle_confirm, on_idle_confirm, IDLE_CONFIRM_S, 0.);
	d->idle_confirm.data = d;
	/* Due at once, one-shot: each slice starts it for the next turn. */
	ev_timer_init(&d->idle_walk, on_idle_walk, 0., 0.);
	d->idle_walk.data = d;
}

void idle_stop(struct odrsd *d)
{
	ev_timer_stop(d->loop, &d->idle_timer);
	ev_timer_stop(d->loop, &d->idle_walk);
}

void idle_interval_changed(struct odrsd *d)
{
	d->idle_timer.repeat = d->cfg->check_interval_ms / 1000.;
	ev_timer_again(d->loop, &d->idle_timer);
}
