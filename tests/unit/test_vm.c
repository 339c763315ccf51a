/*
 * The VM lifecycle (odrsd/vm.c) alone: every allowed, refused and ignored
 * transition of its table, and the races between libvirt, etcd and the
 * wire, with the loop's effects and the observers faked. Without libev or
 * libvirt: this file and vm.o are the whole program.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vm.h"

#define MAX_CHANGES 16

/* What the fakes saw. */
static struct {
	unsigned submits[VIRT_RESUME + 1], claims, adopts, timer_on, timer_off, rechecks, replays, releases,
		passes, destroys, refused_wakes;
	int claim_result; /* what the fake claim returns */
	bool store_ok, may_wake, registry_read;
	struct vm_proposal adopt_with; /* what the fake registry proposes on adopt (state 0: nothing) */
	double now;
	struct vm_change changes[MAX_CHANGES];
	struct vm_input inputs[MAX_CHANGES];
	unsigned nchanges;
} fake;

static void fake_submit(struct odrsd *d, struct vm *vm, enum virt_op op)
{
	fake.submits[op]++;
}
static int fake_claim(struct odrsd *d, struct vm *vm, char *err, size_t errlen)
{
	fake.claims++;
	if (fake.claim_result && err)
		snprintf(err, errlen, "fake claim refused");
	return fake.claim_result;
}
static bool fake_adopt(struct odrsd *d, struct vm *vm)
{
	fake.adopts++;
	return fake.adopt_with.state != VM_UNKNOWN && vm_on_registry(d, vm, &fake.adopt_with);
}
static bool fake_registry_read(const struct odrsd *d)
{
	return fake.registry_read;
}
static bool fake_store_ok(const struct odrsd *d)
{
	return fake.store_ok;
}
static bool fake_may_wake(struct odrsd *d, struct vm *vm, enum wk_trigger t)
{
	fake.refused_wakes += !fake.may_wake;
	return fake.may_wake;
}
static double fake_now(const struct odrsd *d)
{
	return fake.now;
}
static void fake_wake_timer(struct odrsd *d, struct vm *vm, bool on)
{
	if (on)
		fake.timer_on++;
	else
		fake.timer_off++;
}
static void fake_recheck(struct odrsd *d, struct vm *vm)
{
	fake.rechecks++;
}
static void fake_replay(struct odrsd *d, struct vm *vm)
{
	fake.replays++;
}
static void fake_release(struct odrsd *d, struct vm *vm)
{
	fake.releases++;
	vm->held = NULL;
}
static void fake_pass(struct odrsd *d, struct vm *vm)
{
	fake.passes++;
}
static void fake_destroy(struct odrsd *d, struct vm *vm)
{
	fake.destroys++;
}

static const struct vm_ops fake_ops = {
	.submit = fake_submit,
	.claim = fake_claim,
	.adopt = fake_adopt,
	.registry_read = fake_registry_read,
	.store_ok = fake_store_ok,
	.may_wake = fake_may_wake,
	.now = fake_now,
	.wake_timer = fake_wake_timer,
	.recheck = fake_recheck,
	.replay = fake_replay,
	.release = fake_release,
	.pass_syns = fake_pass,
	.destroy = fake_destroy,
};

/* Records each change as it is told: what an observer sees of vm then. */
static void record(struct odrsd *d, struct vm *vm, const struct vm_change *c)
{
	assert_true(fake.nchanges < MAX_CHANGES);
	assert_int_equal(vm->state, c->to);
	fake.inputs[fake.nchanges] = *c->in;
	fake.changes[fake.nchanges] = *c;
	fake.changes[fake.nchanges].in = &fake.inputs[fake.nchanges];
	fake.nchanges++;
}

static struct wk_config cfg = { .node = "n1", .wake_timeout_ms = 30000 };
static struct odrsd d;
static struct vm_life life;
static struct vm vm;
static struct held_syn a_syn;
static int cluster_marker; /* d.cluster only has to be non-NULL: vm.c never looks inside */

static char web1_name[] = "web1";

static void reset(bool cluster, enum vm_state s)
{
	memset(&fake, 0, sizeof(fake));
	fake.store_ok = fake.may_wake = fake.registry_read = true;
	fake.now = 100.;
	memset(&d, 0, sizeof(d));
	d.cfg = &cfg;
	d.cluster = cluster ? (struct cluster *)&cluster_marker : NULL;
	vm_life_init(&d, &life, &fake_ops);
	assert_int_equal(vm_observe(&d, record), 0);
	free(vm.error);
	free(vm.client);
	free(vm.node);
	memset(&vm, 0, sizeof(vm));
	vm.name = web1_name;
	vm.state = s;
	vm.last_wake_ms = -1;
	vm.rev = 7;
}

static struct virt_job job_of(enum virt_op op, int err, enum virt_state st)
{
	struct virt_job j = {
		.op = op, .err = err, .state = st, .bytes = 4096, .ms = 20, .mem_bytes = 1 << 20
	};

	snprintf(j.tap, sizeof(j.tap), "vnet7");
	if (err)
		snprintf(j.error, sizeof(j.error), "libvirt says no");
	return j;
}

static unsigned submitted(void)
{
	return fake.submits[VIRT_INSPECT] + fake.submits[VIRT_SAVE] + fake.submits[VIRT_RESTORE] +
	       fake.submits[VIRT_DOZE] + fake.submits[VIRT_RESUME];
}

static unsigned ops_called(void)
{
	return submitted() + fake.claims + fake.timer_on + fake.timer_off + fake.rechecks + fake.replays +
	       fake.releases + fake.passes + fake.destroys;
}

/* ---- the table --------------------------------------------------------------------- */

static void test_names(void **state)
{
	for (enum vm_state s = 0; s < VM_STATE_COUNT; s++)
		assert_non_null(vm_state_name(s));
	for (enum vm_event e = 0; e < VM_EV_COUNT; e++)
		assert_non_null(vm_event_name(e));
	/* User-visible in odrsctl list, status and the etcd registry. */
	assert_string_equal(vm_state_name(VM_HIBERNATED), "hibernated");
	assert_string_equal(vm_state_name(VM_WAKING), "waking");
	assert_string_equal(vm_state_name(VM_DOZING), "dozing");
}

/* Each allowed transition moves the state, tells every observer once, and runs its effects. */
static void test_every_allowed_transition(void **state)
{
	static const struct vm_proposal reg = { .state = VM_RUNNING, .node = "n2", .bytes = 99 };
	unsigned n = 0;

	for (enum vm_state s = 0; s < VM_STATE_COUNT; s++)
		for (enum vm_event e = 0; e < VM_EV_COUNT; e++) {
			const struct vm_rule *r = &vm_rules[s][e];
			struct virt_job job =
				job_of(VIRT_RESTORE, e == VM_EV_SAVE_OK ? 0 : -EIO, VIRT_RUNNING);
			struct vm_input in = {
				.ev = e, .job = &job, .reg = &reg, .node = "n2", .error = "why"
			};
			unsigned fx = r->effects;

			if (r->verdict != VM_MOVE)
				continue;
			n++;
			reset(true, s);
			vm.held = &a_syn;
			assert_int_equal(vm_fire(&d, &vm, &in, NULL, 0), 0);
			assert_int_equal(vm.state, r->to);
			assert_int_equal(fake.nchanges, 1);
			assert_int_equal(fake.changes[0].from, s);
			assert_int_equal(fake.changes[0].to, r->to);
			assert_int_equal(fake.changes[0].effects, fx);
			assert_int_equal(fake.submits[VIRT_INSPECT], !!(fx & VM_FX_INSPECT));
			assert_int_equal(fake.submits[VIRT_SAVE], !!(fx & VM_FX_SAVE));
			assert_int_equal(fake.submits[VIRT_RESTORE], !!(fx & VM_FX_RESTORE));
			assert_int_equal(fake.submits[VIRT_DOZE], !!(fx & VM_FX_DOZE));
			assert_int_equal(fake.submits[VIRT_RESUME], !!(fx & VM_FX_RESUME));
			assert_int_equal(fake.timer_on, !!(fx & (VM_FX_RESTORE | VM_FX_RESUME)));
			assert_int_equal(fake.timer_off, !!(fx & VM_FX_STOP_TIMER));
			assert_int_equal(fake.claims, !!(fx & VM_FX_CLAIM));
			assert_int_equal(fake.rechecks, !!(fx & VM_FX_RECHECK));
			assert_int_equal(fake.releases, !!(fx & VM_FX_RELEASE));
			assert_int_equal(fake.replays, !!(fx & VM_FX_REPLAY));
			assert_int_equal(fake.passes, !!(fx & VM_FX_PASS_SYNS));
			assert_int_equal(fake.destroys, !!(fx & VM_FX_FREE));
			assert_int_equal(vm.job_busy, !!(fx & (VM_FX_INSPECT | VM_FX_SAVE | VM_FX_RESTORE |
							       VM_FX_DOZE | VM_FX_RESUME)));
			assert_int_equal(vm.wake_wanted, !!(fx & VM_FX_WANT));
			if (fx & VM_FX_FAIL) {
				assert_true(fake.changes[0].err < 0);
				assert_non_null(fake.changes[0].why);
			}
			if (fx & (VM_FX_RESTORE | VM_FX_RESUME | VM_FX_RUNS_HERE))
				assert_string_equal(vm.node, "n1");
			if (fx & (VM_FX_FOLLOW | VM_FX_TARGET))
				assert_string_equal(vm.node, "n2");
			if (fx & VM_FX_NOWHERE)
				assert_null(vm.node);
			if (r->to == VM_ERROR && s != VM_ERROR)
				assert_non_null(vm.error);
		}
	assert_true(n > 40);
}

/* A refused event returns its errno and says why; nothing changes, nobody is told. */
static void test_every_refused_transition(void **state)
{
	unsigned n = 0;

	for (enum vm_state s = 0; s < VM_STATE_COUNT; s++)
		for (enum vm_event e = 0; e < VM_EV_COUNT; e++) {
			const struct vm_rule *r = &vm_rules[s][e];
			struct vm_input in = { .ev = e };
			char err[256] = "", want[300];

			if (r->verdict != VM_REFUSE)
				continue;
			n++;
			reset(false, s);
			vm_text_set(&vm.error, "domain is shut off and has no snapshot");
			assert_true(r->err < 0);
			assert_int_equal(vm_fire(&d, &vm, &in, err, sizeof(err)), r->err);
			snprintf(want, sizeof(want), "web1 is %s", r->why ? r->why : vm_text(vm.error));
			assert_string_equal(err, want);
			assert_int_equal(vm.state, s);
			assert_int_equal(fake.nchanges, 0);
			assert_int_equal(ops_called(), 0);
		}
	/*
	 * Hibernate while waking, dozing off, being inspected or failed; doze while being
	 * inspected or failed; wake while being inspected or failed.
	 */
	assert_int_equal(n, 8);
	assert_int_equal(vm_rules[VM_WAKING][VM_EV_HIBERNATE].err, -EBUSY);
}

/* Every other pair means nothing in that state: 0, no change, nobody told. */
static void test_every_ignored_event(void **state)
{
	unsigned n = 0;

	for (enum vm_state s = 0; s < VM_STATE_COUNT; s++)
		for (enum vm_event e = 0; e < VM_EV_COUNT; e++) {
			struct vm_input in = { .ev = e };

			if (vm_rules[s][e].verdict != VM_IGNORE)
				continue;
			n++;
			reset(false, s);
			assert_int_equal(vm_fire(&d, &vm, &in, NULL, 0), 0);
			assert_int_equal(vm.state, s);
			assert_int_equal(fake.nchanges, 0);
			assert_int_equal(ops_called(), 0);
		}
	assert_true(n > 0);
	/* A lost claim: the watch says who won. */
	for (enum vm_state s = 0; s < VM_STATE_COUNT; s++)
		assert_int_equal(vm_rules[s][VM_EV_CLAIM_LOST].verdict, VM_IGNORE);
}

/*
 * No state but unknown and error (a recheck's) runs an inspect's result, and
 * both alike; removal keeps the state it finds; only error is rechecked.
 */
static void test_table_shape(void **state)
{
	for (enum vm_state s = 0; s < VM_STATE_COUNT; s++) {
		assert_int_equal(vm_rules[s][VM_EV_INSPECT].verdict, VM_MOVE);
		assert_int_equal(vm_rules[s][VM_EV_REMOVED].verdict, VM_MOVE);
		assert_int_equal(vm_rules[s][VM_EV_REMOVED].to, s);
		assert_int_equal(vm_rules[s][VM_EV_RECHECK].verdict, s == VM_ERROR ? VM_MOVE : VM_IGNORE);
		for (enum vm_event e = VM_EV_FOUND_RUNNING; e <= VM_EV_LIBVIRT_GONE; e++)
			if (s == VM_ERROR)
				assert_memory_equal(&vm_rules[s][e], &vm_rules[VM_UNKNOWN][e],
						    sizeof(struct vm_rule));
			else if (s != VM_UNKNOWN)
				assert_int_equal(vm_rules[s][e].verdict, VM_IGNORE);
	}
	/* Every local way into error is rechecked, but a restore still running (its end decides) and removal. */
	for (enum vm_state s = 0; s < VM_STATE_COUNT; s++)
		for (enum vm_event e = 0; e < VM_EV_COUNT; e++) {
			const struct vm_rule *r = &vm_rules[s][e];

			if (r->verdict != VM_MOVE || r->to != VM_ERROR || (r->effects & VM_FX_FOLLOW) ||
			    e == VM_EV_WAKE_TIMEOUT || e == VM_EV_REMOVED ||
			    (s == VM_ERROR && e == VM_EV_RECHECK))
				continue;
			assert_true(r->effects & VM_FX_RECHECK);
		}
}

/* ---- the inputs, and the races --------------------------------------------------------- */

static void test_standalone_wake_and_hibernate(void **state)
{
	struct virt_job j;

	reset(false, VM_HIBERNATED);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "198.18.0.50:4000", NULL, 0), 0);
	/* Without a cluster the claim is won here at once: one restore, its timer. */
	assert_int_equal(vm.state, VM_WAKING);
	assert_int_equal(fake.claims, 0);
	assert_int_equal(fake.submits[VIRT_RESTORE], 1);
	assert_int_equal(fake.timer_on, 1);
	assert_string_equal(vm.client, "198.18.0.50:4000");
	assert_int_equal(fake.changes[1].in->ev, VM_EV_CLAIM_HERE);
	assert_string_equal(fake.changes[1].in->node, "n1");
	fake.now = 100.5;
	j = job_of(VIRT_RESTORE, 0, VIRT_RUNNING);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(vm.last_wake_ms, 500);
	assert_string_equal(vm.tap, "vnet7");
	assert_false(vm.job_busy);
	assert_int_equal(fake.timer_off, 1);
	/* Rate limits: refused before anything moves. */
	reset(false, VM_HIBERNATED);
	fake.may_wake = false;
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_ARP, NULL, NULL, 0), -EAGAIN);
	assert_int_equal(vm.state, VM_HIBERNATED);
	assert_int_equal(fake.nchanges, 0);
	/* Hibernation: refused without the store, or on another node. */
	reset(true, VM_RUNNING);
	vm_text_set(&vm.node, "n1");
	fake.store_ok = false;
	assert_int_equal(vm_request_hibernate(&d, &vm, "idle", NULL, 0), -EAGAIN);
	vm_text_set(&vm.node, "n2");
	fake.store_ok = true;
	assert_int_equal(vm_request_hibernate(&d, &vm, "idle", NULL, 0), -EREMOTE);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(submitted(), 0);
}

/* A wake wanted during a save: the save finishes, then the wake starts. */
static void test_wake_during_save(void **state)
{
	struct virt_job j = job_of(VIRT_SAVE, 0, VIRT_HIBERNATED);

	reset(false, VM_RUNNING);
	assert_int_equal(vm_request_hibernate(&d, &vm, "idle", NULL, 0), 0);
	assert_int_equal(vm.state, VM_HIBERNATING);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "198.18.0.50:4000", NULL, 0), 0);
	assert_int_equal(vm.state, VM_HIBERNATING);
	assert_true(vm.wake_wanted);
	assert_int_equal(fake.submits[VIRT_RESTORE], 0);
	vm_on_job_done(&d, &vm, &j);
	/* Observers saw it hibernated first (its waiters told so), then the wake. */
	assert_int_equal(fake.changes[2].to, VM_HIBERNATED);
	assert_true(fake.changes[2].effects & VM_FX_DONE);
	assert_int_equal(vm.state, VM_WAKING);
	assert_int_equal(fake.submits[VIRT_RESTORE], 1);
	assert_int_equal(vm.trigger, WK_TRIGGER_SYN);
	assert_string_equal(vm.client, "198.18.0.50:4000");
	assert_false(vm.wake_wanted);
}

/* A save that fails with the VM still running replays what was held meanwhile. */
static void test_save_fails_still_running(void **state)
{
	struct virt_job j = job_of(VIRT_SAVE, -EIO, VIRT_RUNNING);

	reset(false, VM_RUNNING);
	assert_int_equal(vm_request_hibernate(&d, &vm, "manual", NULL, 0), 0);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "198.18.0.50:4000", NULL, 0), 0);
	vm.held = &a_syn;
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(fake.replays, 1);
	assert_int_equal(fake.releases, 0);
	assert_string_equal(vm.tap, "vnet7");
	assert_false(vm.wake_wanted);
	assert_true(fake.changes[fake.nchanges - 1].effects & VM_FX_FAIL);
	assert_int_equal(fake.changes[fake.nchanges - 1].err, -EIO);
	assert_int_equal(fake.submits[VIRT_RESTORE], 0);
}

/*
 * A job that could not start (no memory for its struct virt_job) fails as
 * a job that left the domain as it was: the save's VM still runs, the
 * restore's still sleeps, the inspect's is in error; each caller hears it.
 */
static void test_job_unstarted(void **state)
{
	reset(false, VM_RUNNING);
	assert_int_equal(vm_request_hibernate(&d, &vm, "manual", NULL, 0), 0);
	vm_on_job_unstarted(&d, &vm, VIRT_SAVE, -ENOMEM, "out of memory");
	assert_int_equal(vm.state, VM_RUNNING);
	assert_false(vm.job_busy);
	assert_true(fake.changes[fake.nchanges - 1].effects & VM_FX_FAIL);
	assert_int_equal(fake.changes[fake.nchanges - 1].err, -ENOMEM);

	reset(false, VM_HIBERNATED);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_MANUAL, NULL, NULL, 0), 0);
	vm_on_job_unstarted(&d, &vm, VIRT_RESTORE, -ENOMEM, "out of memory");
	assert_int_equal(vm.state, VM_HIBERNATED);
	assert_false(vm.job_busy);
	assert_true(fake.changes[fake.nchanges - 1].effects & VM_FX_FAIL);

	reset(false, VM_UNKNOWN);
	vm_inspect(&d, &vm);
	vm_on_job_unstarted(&d, &vm, VIRT_INSPECT, -ENOMEM, "out of memory");
	assert_int_equal(vm.state, VM_ERROR);
	assert_string_equal(vm.error, "out of memory");
}

/* A wake that passes wake_timeout ends in a state; the late restore result still counts. */
static void test_wake_timeout(void **state)
{
	struct virt_job j = job_of(VIRT_RESTORE, 0, VIRT_RUNNING);
	char err[256];

	reset(false, VM_HIBERNATED);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_MANUAL, NULL, NULL, 0), 0);
	vm.held = &a_syn;
	vm_on_wake_timeout(&d, &vm);
	assert_int_equal(vm.state, VM_ERROR);
	assert_string_equal(vm.error, "restore still running after 30 s");
	assert_int_equal(fake.changes[fake.nchanges - 1].err, -ETIMEDOUT);
	assert_true(fake.changes[fake.nchanges - 1].effects & VM_FX_PUBLISH);
	assert_int_equal(fake.releases, 1);
	/* Still restoring: no second wake, and no inspect over the running job. */
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_MANUAL, NULL, err, sizeof(err)), -EIO);
	assert_string_equal(err, "web1 is restore still running after 30 s");
	vm_inspect(&d, &vm);
	assert_int_equal(fake.submits[VIRT_INSPECT], 0);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_string_equal(vm.node, "n1");
	/* Or it ends asleep after all. */
	reset(false, VM_HIBERNATED);
	vm_request_wake(&d, &vm, WK_TRIGGER_MANUAL, NULL, NULL, 0);
	vm_on_wake_timeout(&d, &vm);
	j = job_of(VIRT_RESTORE, -EIO, VIRT_HIBERNATED);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_HIBERNATED);
	/* A timeout after the restore ended means nothing. */
	vm_on_wake_timeout(&d, &vm);
	assert_int_equal(vm.state, VM_HIBERNATED);
}

/* The registry says "running on n2" while this node restores: the restore decides; then n1 says so. */
static void test_registry_elsewhere_while_restoring(void **state)
{
	static const struct vm_proposal there = { .state = VM_RUNNING, .node = "n2" };
	struct virt_job j = job_of(VIRT_RESTORE, 0, VIRT_RUNNING);

	reset(true, VM_HIBERNATED);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "c", NULL, 0), 0);
	assert_int_equal(fake.claims, 1);
	assert_true(vm.claiming);
	vm_on_claim(&d, &vm, VM_CLAIM_WON, "n1", 0);
	assert_false(vm.claiming);
	assert_int_equal(vm.state, VM_WAKING);
	assert_false(vm_on_registry(&d, &vm, &there));
	assert_int_equal(vm.state, VM_WAKING);
	assert_string_equal(vm.node, "n1");
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_RUNNING);
	fake.nchanges = 0;
	/* Runs here, the registry says elsewhere: keep it, say so again. */
	assert_true(vm_on_registry(&d, &vm, &there));
	assert_int_equal(vm.state, VM_RUNNING);
	assert_string_equal(vm.node, "n1");
	assert_int_equal(fake.changes[0].in->ev, VM_EV_REG_CONFLICT);
	assert_true(fake.changes[0].effects & VM_FX_PUBLISH);
}

/* The watch shows this node's claim before the claim's answer: one restore only. */
static void test_claim_answer_after_watch(void **state)
{
	static const struct vm_proposal claimed = {
		.state = VM_WAKING, .node = "n1", .trigger = WK_TRIGGER_SYN, .client = "c:1", .at = 99.
	};

	reset(true, VM_HIBERNATED);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "c:1", NULL, 0), 0);
	assert_true(vm_on_registry(&d, &vm, &claimed));
	assert_int_equal(vm.state, VM_WAKING);
	assert_int_equal(fake.submits[VIRT_RESTORE], 1);
	vm_on_claim(&d, &vm, VM_CLAIM_WON, "n1", 0);
	assert_int_equal(vm.state, VM_WAKING);
	assert_int_equal(fake.submits[VIRT_RESTORE], 1);
	assert_int_equal(fake.timer_on, 1);
	assert_false(vm.claiming);
	/* The claim's answer still says the wake started (the event log's wake_start). */
	assert_int_equal(fake.changes[fake.nchanges - 1].in->ev, VM_EV_CLAIM_HERE);
}

/* Claimed for n2: the held SYNs go there; n2's "running" releases the copies here. */
static void test_claim_for_another_node(void **state)
{
	static const struct vm_proposal up = { .state = VM_RUNNING, .node = "n2", .last_wake_ms = 321 };

	reset(true, VM_HIBERNATED);
	vm.held = &a_syn;
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "c:1", NULL, 0), 0);
	vm_on_claim(&d, &vm, VM_CLAIM_WON, "n2", 0);
	assert_int_equal(vm.state, VM_WAKING);
	assert_string_equal(vm.node, "n2");
	assert_false(vm_is_local(&d, &vm));
	assert_int_equal(fake.passes, 1);
	assert_int_equal(submitted(), 0);
	assert_true(vm_on_registry(&d, &vm, &up));
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(vm.last_wake_ms, 321);
	assert_int_equal(fake.releases, 1);
	assert_true(fake.changes[fake.nchanges - 1].effects & VM_FX_DONE);
	/* And hibernating it is for n2. */
	assert_int_equal(vm_request_hibernate(&d, &vm, "manual", NULL, 0), -EREMOTE);
}

/* A refused claim fails the waiters and keeps nothing held; a lost one waits for the watch. */
static void test_claim_refused_and_lost(void **state)
{
	reset(true, VM_HIBERNATED);
	vm.held = &a_syn;
	vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "c:1", NULL, 0);
	vm_on_claim(&d, &vm, VM_CLAIM_REFUSED, NULL, -ETIMEDOUT);
	assert_int_equal(vm.state, VM_HIBERNATED);
	assert_int_equal(fake.releases, 1);
	assert_int_equal(fake.changes[fake.nchanges - 1].err, -ETIMEDOUT);
	reset(true, VM_HIBERNATED);
	vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "c:1", NULL, 0);
	fake.nchanges = 0;
	vm_on_claim(&d, &vm, VM_CLAIM_LOST, NULL, 0);
	assert_false(vm.claiming);
	assert_int_equal(fake.nchanges, 0);
	/* A claim that cannot be sent is the request's error. */
	reset(true, VM_HIBERNATED);
	fake.claim_result = -EAGAIN;
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_MANUAL, NULL, NULL, 0), -EAGAIN);
	assert_false(vm.claiming);
}

/* Removed from the configuration during a job: freed once the job ends, after its result. */
static void test_removed_during_job(void **state)
{
	struct virt_job j = job_of(VIRT_SAVE, 0, VIRT_HIBERNATED);

	reset(false, VM_RUNNING);
	vm_request_hibernate(&d, &vm, "manual", NULL, 0);
	vm_free(&d, &vm);
	assert_true(vm.removed);
	assert_int_equal(fake.destroys, 0);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(fake.destroys, 1);
	assert_int_equal(fake.changes[fake.nchanges - 2].in->ev, VM_EV_SAVE_OK);
	assert_int_equal(fake.changes[fake.nchanges - 1].in->ev, VM_EV_REMOVED);
	assert_int_equal(fake.changes[fake.nchanges - 1].err, -ENOENT);
	/* Idle: at once. */
	reset(false, VM_HIBERNATED);
	vm_free(&d, &vm);
	assert_int_equal(fake.destroys, 1);
}

/* Inspects: results, libvirtd away, and the registry's word in a cluster. */
/* ---- doze ------------------------------------------------------------------------------- */

static struct virt_job doze_job(int err, bool paused)
{
	struct virt_job j = job_of(VIRT_DOZE, err, VIRT_RUNNING);

	j.paused = paused;
	j.paged_out_bytes = 200 << 20;
	j.resident_bytes = 30 << 20;
	return j;
}

/* Dozed, a SYN resumes it here (no claim, even in a cluster), and the held SYN is replayed. */
static void test_doze_syn_resume(void **state)
{
	struct virt_job j = doze_job(0, true);

	reset(true, VM_RUNNING);
	vm_text_set(&vm.node, "n1");
	assert_int_equal(vm_request_doze(&d, &vm, "idle", NULL, 0), 0);
	assert_int_equal(vm.state, VM_DOZING_OFF);
	assert_int_equal(fake.submits[VIRT_DOZE], 1);
	assert_true(vm_is_asleep(&vm));
	assert_true(fake.changes[0].effects & VM_FX_PUBLISH);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_DOZING);
	assert_true(vm.dozed);
	assert_true(vm_is_asleep(&vm));
	assert_string_equal(vm.node, "n1"); /* it stays on its node */
	assert_true(fake.changes[1].effects & VM_FX_DONE);
	assert_true(fake.changes[1].effects & VM_FX_PUBLISH);

	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "198.18.0.50:4000", NULL, 0), 0);
	assert_int_equal(vm.state, VM_WAKING);
	assert_int_equal(fake.claims, 0);
	assert_int_equal(fake.submits[VIRT_RESUME], 1);
	assert_int_equal(fake.submits[VIRT_RESTORE], 0);
	assert_int_equal(fake.timer_on, 1);
	/* Paused here until the resume ends: its node still takes its SYNs (not the accept node). */
	assert_true(vm.dozed);
	assert_true(vm_stood_in_here(&d, &vm));
	d.accept = true;
	vm.dozed = false;
	vm_text_set(&vm.node, "n2");
	assert_true(vm_stood_in_here(&d, &vm)); /* a restore on n2: the accept node holds its SYNs */
	vm.dozed = true;
	assert_false(vm_stood_in_here(&d, &vm));
	d.accept = false;
	vm_text_set(&vm.node, "n1");
	vm.held = &a_syn;
	fake.now = 100.25;
	j = job_of(VIRT_RESUME, 0, VIRT_RUNNING);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(fake.changes[fake.nchanges - 1].in->ev, VM_EV_RESUME_OK);
	assert_int_equal(fake.replays, 1);
	assert_int_equal(fake.timer_off, 1);
	assert_int_equal(vm.last_wake_ms, 250);
	assert_string_equal(vm.tap, "vnet7");
	assert_false(vm.dozed);
	/* A wake is rate limited as a restore is. */
	reset(false, VM_DOZING);
	fake.may_wake = false;
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, NULL, NULL, 0), -EAGAIN);
	assert_int_equal(vm.state, VM_DOZING);
	/* Dozing on another node: only that node stands in for it, and can resume it. */
	reset(true, VM_DOZING);
	vm_text_set(&vm.node, "n1");
	assert_true(vm_stood_in_here(&d, &vm));
	d.accept = true;
	vm_text_set(&vm.node, "n2");
	assert_false(vm_stood_in_here(&d, &vm));
	vm.state = VM_HIBERNATED;
	assert_true(vm_stood_in_here(&d, &vm));
	d.accept = false;
	assert_false(vm_stood_in_here(&d, &vm));
	vm.state = VM_DOZING;
	vm_request_wake(&d, &vm, WK_TRIGGER_SYN, NULL, NULL, 0);
	assert_int_equal(fake.submits[VIRT_RESUME], 0);
}

/* A doze that fails with the VM running (no swap) replays what arrived meanwhile. */
static void test_doze_fails_running(void **state)
{
	struct virt_job j = doze_job(-ENOSPC, false);

	reset(false, VM_RUNNING);
	assert_int_equal(vm_request_doze(&d, &vm, "manual", NULL, 0), 0);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "198.18.0.50:4000", NULL, 0), 0);
	assert_int_equal(vm.state, VM_DOZING_OFF);
	assert_true(vm.wake_wanted);
	vm.held = &a_syn;
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_false(vm.dozed);
	assert_false(vm.wake_wanted);
	assert_int_equal(fake.replays, 1);
	assert_true(fake.changes[fake.nchanges - 1].effects & VM_FX_FAIL);
	assert_int_equal(fake.changes[fake.nchanges - 1].err, -ENOSPC);
	assert_int_equal(fake.submits[VIRT_RESUME], 0);
	/* Paused and not paged out, or gone: nothing odrsd can say it is. */
	reset(false, VM_RUNNING);
	vm_request_doze(&d, &vm, "manual", NULL, 0);
	j = doze_job(-EIO, true);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_ERROR);
}

/* A wake during the doze: the doze finishes (its waiters told), then the resume starts. */
static void test_wake_while_dozing_off(void **state)
{
	struct virt_job j = doze_job(0, true);

	reset(false, VM_RUNNING);
	assert_int_equal(vm_request_doze(&d, &vm, "idle", NULL, 0), 0);
	assert_int_equal(vm_request_hibernate(&d, &vm, "manual", NULL, 0), -EBUSY);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_ARP, "198.18.0.50", NULL, 0), 0);
	assert_int_equal(fake.submits[VIRT_RESUME], 0);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(fake.changes[2].to, VM_DOZING);
	assert_true(fake.changes[2].effects & VM_FX_DONE);
	assert_int_equal(vm.state, VM_WAKING);
	assert_int_equal(fake.submits[VIRT_RESUME], 1);
	assert_int_equal(vm.trigger, WK_TRIGGER_ARP);
	assert_false(vm.wake_wanted);
}

/*
 * A SYN while the pause and page-out run: held, never replayed into the paused
 * guest (not when the doze ends, not when it fails paused), replayed once after
 * the resume. The same for a SYN while a dozing VM's save runs and fails: the
 * old table dropped that wake and its SYN (the client waited for its retry).
 */
static void test_syn_while_dozing_off(void **state)
{
	struct virt_job j = doze_job(0, true);

	reset(false, VM_RUNNING);
	assert_int_equal(vm_request_doze(&d, &vm, "idle", NULL, 0), 0);
	assert_true(vm_stood_in_here(&d, &vm));
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, "198.18.0.50:4000", NULL, 0), 0);
	vm.held = &a_syn;
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_WAKING);
	assert_int_equal(fake.submits[VIRT_RESUME], 1);
	assert_int_equal(fake.replays, 0);
	assert_int_equal(fake.releases, 0);
	j = job_of(VIRT_RESUME, 0, VIRT_RUNNING);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(fake.replays, 1);
	assert_string_equal(vm.client, "198.18.0.50:4000");
	/* Paused, not paged out: nobody resumes it, so nothing is replayed into it. */
	reset(false, VM_RUNNING);
	vm_request_doze(&d, &vm, "idle", NULL, 0);
	vm_request_wake(&d, &vm, WK_TRIGGER_SYN, NULL, NULL, 0);
	vm.held = &a_syn;
	j = doze_job(-EIO, true);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_ERROR);
	assert_int_equal(fake.replays, 0);
	assert_int_equal(fake.releases, 1);
	/* A dozing VM's save fails, still paused: the SYN that came meanwhile resumes it. */
	reset(false, VM_DOZING);
	vm.dozed = true;
	assert_int_equal(vm_request_hibernate(&d, &vm, "idle", NULL, 0), 0);
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_SYN, NULL, NULL, 0), 0);
	vm.held = &a_syn;
	j = job_of(VIRT_SAVE, -ENOSPC, VIRT_RUNNING);
	j.paused = true;
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(fake.changes[fake.nchanges - 2].to, VM_DOZING);
	assert_true(fake.changes[fake.nchanges - 2].effects & VM_FX_FAIL);
	assert_int_equal(vm.state, VM_WAKING);
	assert_int_equal(fake.submits[VIRT_RESUME], 1);
	assert_int_equal(fake.replays + fake.releases, 0);
	j = job_of(VIRT_RESUME, 0, VIRT_RUNNING);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(fake.replays, 1);
}

/*
 * A wake asked of a node where the VM dozes on another: a claim for that node
 * (whose watch resumes it), not a refusal; the owner resumes it on the claim.
 */
static void test_wake_dozing_elsewhere(void **state)
{
	struct vm_proposal up = { .state = VM_RUNNING, .node = "n2" };
	struct vm_proposal claimed = { .state = VM_WAKING, .node = "n1", .trigger = WK_TRIGGER_MANUAL };
	char err[128] = "";

	reset(true, VM_DOZING);
	d.accept = true;
	vm_text_set(&vm.node, "n2");
	assert_false(vm_stood_in_here(&d, &vm)); /* its frames go to n2: no SYN is held here */
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_MANUAL, NULL, err, sizeof(err)), 0);
	assert_int_equal(fake.claims, 1);
	assert_int_equal(submitted(), 0);
	assert_int_equal(vm.state, VM_DOZING);
	assert_false(vm.dozed);
	assert_true(vm.claiming);
	vm_on_claim(&d, &vm, VM_CLAIM_WON, "n2", 0);
	assert_int_equal(vm.state, VM_WAKING);
	assert_string_equal(vm.node, "n2");
	assert_int_equal(submitted(), 0);
	assert_true(vm_on_registry(&d, &vm, &up));
	assert_int_equal(vm.state, VM_RUNNING);
	assert_true(fake.changes[fake.nchanges - 1].effects & VM_FX_DONE);
	/* Refused (its node lost, the store away): the waiters are told why. */
	reset(true, VM_DOZING);
	vm_text_set(&vm.node, "n2");
	fake.claim_result = -EHOSTDOWN;
	assert_int_equal(vm_request_wake(&d, &vm, WK_TRIGGER_MANUAL, NULL, err, sizeof(err)), -EHOSTDOWN);
	assert_string_equal(err, "fake claim refused");
	assert_int_equal(vm.state, VM_DOZING);
	reset(true, VM_DOZING);
	vm_text_set(&vm.node, "n2");
	vm_request_wake(&d, &vm, WK_TRIGGER_MANUAL, NULL, NULL, 0);
	vm_on_claim(&d, &vm, VM_CLAIM_REFUSED, NULL, -ETIMEDOUT);
	assert_int_equal(vm.state, VM_DOZING);
	assert_true(fake.changes[fake.nchanges - 1].effects & VM_FX_FAIL);
	/* Its own node, told by the claim: resumed there, no restore. */
	reset(true, VM_DOZING);
	vm.dozed = true;
	vm_text_set(&vm.node, "n1");
	assert_true(vm_on_registry(&d, &vm, &claimed));
	assert_int_equal(vm.state, VM_WAKING);
	assert_int_equal(fake.submits[VIRT_RESUME], 1);
	assert_int_equal(fake.submits[VIRT_RESTORE], 0);
	assert_int_equal(vm.trigger, WK_TRIGGER_MANUAL);
}

/* Hibernation of a dozing VM saves it paused; a failed save leaves it dozing. */
static void test_hibernate_while_dozing(void **state)
{
	struct virt_job j = job_of(VIRT_SAVE, -ENOSPC, VIRT_RUNNING);

	reset(false, VM_DOZING);
	vm.dozed = true;
	assert_int_equal(vm_request_hibernate(&d, &vm, "idle", NULL, 0), 0);
	assert_int_equal(vm.state, VM_HIBERNATING);
	assert_int_equal(fake.submits[VIRT_SAVE], 1);
	assert_true(vm.dozed);
	j.paused = true;
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_DOZING);
	assert_true(vm.dozed);
	assert_true(fake.changes[1].effects & VM_FX_FAIL);
	assert_int_equal(vm_request_hibernate(&d, &vm, "idle", NULL, 0), 0);
	j = job_of(VIRT_SAVE, 0, VIRT_HIBERNATED);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_HIBERNATED);
	assert_false(vm.dozed);
	/* A resume that fails leaves it dozing, its waiters told. */
	reset(false, VM_DOZING);
	vm_request_wake(&d, &vm, WK_TRIGGER_MANUAL, NULL, NULL, 0);
	j = job_of(VIRT_RESUME, -EIO, VIRT_RUNNING);
	j.paused = true;
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_DOZING);
	assert_true(vm.dozed);
	assert_true(fake.changes[fake.nchanges - 1].effects & VM_FX_FAIL);
}

/* After a restart: a paused domain is dozing only if a doze paused it. */
static void test_inspect_finds_dozing(void **state)
{
	struct virt_job j = job_of(VIRT_INSPECT, 0, VIRT_RUNNING);

	j.paused = true;
	reset(false, VM_UNKNOWN);
	vm.dozed = true;
	vm.job_busy = true;
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_DOZING);
	assert_true(vm.dozed);
	assert_string_equal(vm.node, "n1");
	reset(false, VM_UNKNOWN);
	vm.job_busy = true;
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_RUNNING);
	/* Dozing on another node, as the registry says: not paused here. */
	reset(true, VM_RUNNING);
	assert_true(vm_on_registry(&d, &vm, &(struct vm_proposal){ .state = VM_DOZING, .node = "n2" }));
	assert_int_equal(vm.state, VM_DOZING);
	assert_string_equal(vm.node, "n2");
	assert_false(vm.dozed);
	/* An inspect of a dozing VM keeps what it was for its result. */
	reset(false, VM_DOZING);
	vm.dozed = true;
	vm_inspect(&d, &vm);
	assert_int_equal(vm.state, VM_UNKNOWN);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_DOZING);
}

static void test_inspect(void **state)
{
	struct virt_job j = job_of(VIRT_INSPECT, -ENOTCONN, VIRT_MISSING);

	reset(false, VM_RUNNING);
	vm_inspect(&d, &vm);
	assert_int_equal(vm.state, VM_UNKNOWN);
	vm_inspect(&d, &vm); /* its job runs: nothing more */
	assert_int_equal(fake.submits[VIRT_INSPECT], 1);
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_ERROR);
	assert_int_equal(fake.rechecks, 1);
	vm_inspect(&d, &vm);
	j = job_of(VIRT_INSPECT, 0, VIRT_STOPPED);
	vm_on_job_done(&d, &vm, &j);
	assert_string_equal(vm.error, "domain is shut off and has no snapshot");
	/* In a cluster, not running here: where the registry says, else what libvirt says. */
	reset(true, VM_UNKNOWN);
	fake.adopt_with = (struct vm_proposal){ .state = VM_RUNNING, .node = "n2", .last_wake_ms = -1 };
	j = job_of(VIRT_INSPECT, 0, VIRT_HIBERNATED);
	vm.job_busy = true;
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_string_equal(vm.node, "n2");
	reset(true, VM_UNKNOWN);
	fake.adopt_with = (struct vm_proposal){ .state = VM_RUNNING, .node = "n1", .last_wake_ms = -1 };
	vm_on_job_done(&d, &vm, &j);
	assert_int_equal(fake.adopts, 1);
	assert_int_equal(vm.state, VM_HIBERNATED);
}

/*
 * A VM in error is inspected again, with a backoff, and stays in error (its
 * reason and since when shown) until an inspect finds it otherwise.
 */
static void test_error_recheck(void **state)
{
	struct virt_job stopped = job_of(VIRT_INSPECT, 0, VIRT_STOPPED),
			image = job_of(VIRT_INSPECT, 0, VIRT_HIBERNATED);
	double delays[12];

	reset(false, VM_UNKNOWN);
	vm.job_busy = true;
	vm_on_job_done(&d, &vm, &stopped);
	assert_int_equal(vm.state, VM_ERROR);
	assert_int_equal(fake.rechecks, 1);
	assert_true(vm.state_since == 100.);
	for (unsigned i = 0; i < 12; i++) {
		fake.nchanges = 0;
		delays[i] = vm_recheck_delay(&vm);
		fake.now += delays[i];
		vm_recheck(&d, &vm);
		assert_int_equal(vm.state, VM_ERROR);
		assert_int_equal(fake.submits[VIRT_INSPECT], i + 1);
		vm_recheck(&d, &vm); /* its inspect runs: nothing more */
		assert_int_equal(fake.submits[VIRT_INSPECT], i + 1);
		vm_on_job_done(&d, &vm, &stopped);
		assert_int_equal(vm.state, VM_ERROR);
		assert_int_equal(fake.rechecks, i + 2);
	}
	assert_true(delays[0] == VM_RECHECK_FIRST_S);
	assert_true(delays[1] == 2 * VM_RECHECK_FIRST_S);
	assert_true(delays[11] == VM_RECHECK_MAX_S);
	/* In error since the first time, not since the last recheck. */
	assert_true(vm.state_since == 100.);
	assert_string_equal(vm.error, "domain is shut off and has no snapshot");
	/* Its image is back: hibernated, and the backoff starts over next time. */
	vm_recheck(&d, &vm);
	vm_on_job_done(&d, &vm, &image);
	assert_int_equal(vm.state, VM_HIBERNATED);
	assert_true(vm.state_since == fake.now);
	assert_true(vm_recheck_delay(&vm) == VM_RECHECK_FIRST_S);
	/* Left error otherwise meanwhile: a late recheck does nothing. */
	vm_recheck(&d, &vm);
	assert_int_equal(vm.state, VM_HIBERNATED);
	assert_int_equal(fake.submits[VIRT_INSPECT], 13);
	/* A restore that fails for good is rechecked too. */
	reset(false, VM_WAKING);
	image = job_of(VIRT_RESTORE, -EIO, VIRT_MISSING);
	vm_on_job_done(&d, &vm, &image);
	assert_int_equal(vm.state, VM_ERROR);
	assert_int_equal(fake.rechecks, 1);
}

/* A cluster node just started: its registry not read yet, the VM not in it yet. */
static void restarted_unread(void)
{
	reset(true, VM_UNKNOWN);
	vm.rev = 0;
	fake.registry_read = false;
}

/*
 * A node restarts while the VM sleeps or runs elsewhere, its domain not
 * defined here: whichever ends first, its inspect or the registry's first
 * read, it ends where the registry says, never "no such domain" nor
 * published as this node's inspect saw it (that would clear the registry's MAC).
 */
static void test_undefined_domain_follows_registry(void **state)
{
	static const struct vm_proposal asleep = {
		.state = VM_HIBERNATED, .node = "", .bytes = 99, .last_wake_ms = -1
	};
	static const struct vm_proposal there = { .state = VM_RUNNING, .node = "n2", .last_wake_ms = -1 };
	struct virt_job image = job_of(VIRT_INSPECT, 0, VIRT_HIBERNATED);
	struct virt_job none = job_of(VIRT_INSPECT, 0, VIRT_MISSING);

	/* The inspect first: nothing decided, nobody told, until the registry's read. */
	restarted_unread();
	vm.job_busy = true;
	vm_on_job_done(&d, &vm, &image);
	assert_int_equal(vm.state, VM_UNKNOWN);
	assert_int_equal(fake.nchanges, 0);
	assert_false(vm.job_busy);
	vm.rev = 3;
	assert_true(vm_on_registry(&d, &vm, &asleep));
	assert_int_equal(vm.state, VM_HIBERNATED);
	assert_int_equal(vm.snapshot_bytes, 99);
	assert_int_equal(fake.nchanges, 1);
	assert_false(fake.changes[0].effects & VM_FX_PUBLISH);
	/* No image here: it runs on another node, not an error. */
	restarted_unread();
	vm_on_job_done(&d, &vm, &none);
	assert_int_equal(vm.state, VM_UNKNOWN);
	assert_true(vm_on_registry(&d, &vm, &there));
	assert_int_equal(vm.state, VM_RUNNING);
	assert_string_equal(vm.node, "n2");
	assert_null(vm.error);
	/* The registry first (its word waits for the inspect's end), then the inspect. */
	reset(true, VM_UNKNOWN);
	fake.registry_read = true;
	vm.job_busy = true;
	assert_false(vm_on_registry(&d, &vm, &there));
	fake.adopt_with = there;
	vm_on_job_done(&d, &vm, &none);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_string_equal(vm.node, "n2");
	/* Read, and the registry has no word on it: what libvirt said. */
	reset(true, VM_UNKNOWN);
	vm.rev = 0;
	vm_on_job_done(&d, &vm, &image);
	assert_int_equal(vm.state, VM_HIBERNATED);
	assert_true(fake.changes[0].effects & VM_FX_PUBLISH);
	/* Defined here: libvirt's word at once, as before the registry's read. */
	restarted_unread();
	image.defined = true;
	vm_on_job_done(&d, &vm, &image);
	assert_int_equal(vm.state, VM_HIBERNATED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_every_allowed_transition),
		cmocka_unit_test(test_every_refused_transition),
		cmocka_unit_test(test_every_ignored_event),
		cmocka_unit_test(test_table_shape),
		cmocka_unit_test(test_standalone_wake_and_hibernate),
		cmocka_unit_test(test_wake_during_save),
		cmocka_unit_test(test_save_fails_still_running),
		cmocka_unit_test(test_wake_timeout),
		cmocka_unit_test(test_registry_elsewhere_while_restoring),
		cmocka_unit_test(test_claim_answer_after_watch),
		cmocka_unit_test(test_claim_for_another_node),
		cmocka_unit_test(test_claim_refused_and_lost),
		cmocka_unit_test(test_removed_during_job),
		cmocka_unit_test(test_inspect),
		cmocka_unit_test(test_error_recheck),
		cmocka_unit_test(test_undefined_domain_follows_registry),
		cmocka_unit_test(test_doze_syn_resume),
		cmocka_unit_test(test_doze_fails_running),
		cmocka_unit_test(test_wake_while_dozing_off),
		cmocka_unit_test(test_syn_while_dozing_off),
		cmocka_unit_test(test_wake_dozing_elsewhere),
		cmocka_unit_test(test_hibernate_while_dozing),
		cmocka_unit_test(test_inspect_finds_dozing),
		cmocka_unit_test(test_job_unstarted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
