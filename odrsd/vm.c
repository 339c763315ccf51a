/*
 * A VM's lifecycle (contract in vm.h): the transition table, the one
 * function that applies it, and the inputs that turn what happened into an
 * event. No libev, no libvirt, no logging: the daemon's effects and
 * observers are in wake.c, a test's in tests/unit/test_vm.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

/* One line each: clang-format would spread every initializer over four. */
/* clang-format off */
#define MOVE(state, fx)                { .verdict = VM_MOVE, .to = state, .effects = fx }
#define MOVE_WHY(state, fx, e, reason) { .verdict = VM_MOVE, .to = state, .effects = fx, .err = e, .why = reason }
#define REFUSE(e, reason)              { .verdict = VM_REFUSE, .err = e, .why = reason }
/* clang-format on */

/* Inspected here: a job result or the registry decides what it is. */
#define INSPECT MOVE(VM_UNKNOWN, VM_FX_INSPECT)
/*
 * What an inspect finds, from unknown or (a recheck's) from error. Found in
 * error, it is inspected again later (vm_recheck_delay): an image put back,
 * a failure of libvirt that passes, a domain defined meanwhile.
 */
#define ERROR_AGAIN(reason) MOVE_WHY(VM_ERROR, VM_FX_RECHECK, 0, reason)
#define INSPECT_RESULTS                                                                                           \
	[VM_EV_FOUND_RUNNING] = MOVE(VM_RUNNING, VM_FX_RUNS_HERE | VM_FX_PUBLISH),                                \
	[VM_EV_FOUND_HIBERNATED] = MOVE(                                                                          \
		VM_HIBERNATED,                                                                                    \
		VM_FX_NOWHERE |                                                                                   \
			VM_FX_PUBLISH), /* Paused here by a doze before a restart: still asleep, on this node. */ \
		[VM_EV_FOUND_DOZING] = MOVE(VM_DOZING, VM_FX_RUNS_HERE | VM_FX_PUBLISH),                          \
	[VM_EV_FOUND_STOPPED] = ERROR_AGAIN("domain is shut off and has no snapshot"),                            \
	[VM_EV_FOUND_MISSING] = ERROR_AGAIN("no such domain and no snapshot"),                                    \
	[VM_EV_INSPECT_FAILED] = ERROR_AGAIN(NULL), [VM_EV_LIBVIRT_GONE] = ERROR_AGAIN(NULL)
/* Dropped from the configuration: its waiters are told, then it is freed. */
#define REMOVED(state)                                                                       \
	MOVE_WHY(state, VM_FX_RELEASE | VM_FX_STOP_TIMER | VM_FX_FAIL | VM_FX_FREE, -ENOENT, \
		 "VM removed from the configuration")
/* The end of a restore, in time or after wake_timeout (the waiters were told then). */
#define RESTORED \
	MOVE(VM_RUNNING, VM_FX_STOP_TIMER | VM_FX_RUNS_HERE | VM_FX_REPLAY | VM_FX_PUBLISH | VM_FX_DONE)
#define RESTORE_FAIL (VM_FX_STOP_TIMER | VM_FX_NOWHERE | VM_FX_RELEASE | VM_FX_PUBLISH | VM_FX_FAIL)
/* Neither running nor restorable: inspected again later, as any VM in error. */
#define RESTORE_BROKEN MOVE(VM_ERROR, RESTORE_FAIL | VM_FX_RECHECK)
#define RESTORE_GONE                                        \
	MOVE_WHY(VM_ERROR, RESTORE_FAIL | VM_FX_RECHECK, 0, \
		 "libvirtd went away during the restore; checking again")
/* What another node says it did; this node follows. */
#define FOLLOW(state, fx) MOVE(state, VM_FX_FOLLOW | (fx))
#define REG_FOLLOWS(from_running, from_hibernated)                       \
	[VM_EV_REG_RUNNING] = FOLLOW(VM_RUNNING, from_running),          \
	[VM_EV_REG_HIBERNATING] = FOLLOW(VM_HIBERNATING, 0),             \
	[VM_EV_REG_HIBERNATED] = FOLLOW(VM_HIBERNATED, from_hibernated), \
	[VM_EV_REG_WAKING] = FOLLOW(VM_WAKING, 0), [VM_EV_REG_DOZING] = FOLLOW(VM_DOZING, 0)
/* It runs there now: the copies of its SYNs held here were replayed there, or are too late. */
#define UP_THERE       (VM_FX_RELEASE | VM_FX_DONE)
#define REG_ERROR_FAIL FOLLOW(VM_ERROR, VM_FX_FAIL)
#define REG_WAKE_HERE  MOVE(VM_WAKING, VM_FX_RESTORE)
/* The end of a resume: as a restore's, but it never left this node. */
#define RESUME_ENDS                                                                             \
	[VM_EV_RESUME_OK] = RESTORED,                                                           \
	[VM_EV_RESUME_PAUSED] =                                                                 \
		MOVE(VM_DOZING, VM_FX_STOP_TIMER | VM_FX_RELEASE | VM_FX_PUBLISH | VM_FX_FAIL), \
	[VM_EV_RESUME_FAILED] = RESTORE_BROKEN

const struct vm_rule vm_rules[VM_STATE_COUNT][VM_EV_COUNT] = {
	[VM_UNKNOWN] = {
		INSPECT_RESULTS,
		[VM_EV_INSPECT] = INSPECT,
		[VM_EV_HIBERNATE] = REFUSE(-EBUSY, "still being inspected"),
		[VM_EV_DOZE] = REFUSE(-EBUSY, "still being inspected"),
		[VM_EV_WAKE] = REFUSE(-EAGAIN, "still being inspected"),
		[VM_EV_REG_WAKE_HERE] = REG_WAKE_HERE,
		REG_FOLLOWS(UP_THERE, 0),
		[VM_EV_REG_ERROR] = FOLLOW(VM_ERROR, 0),
		[VM_EV_REMOVED] = REMOVED(VM_UNKNOWN),
	},
	[VM_RUNNING] = {
		[VM_EV_INSPECT] = INSPECT,
		[VM_EV_HIBERNATE] = MOVE(VM_HIBERNATING, VM_FX_SAVE | VM_FX_PUBLISH),
		[VM_EV_DOZE] = MOVE(VM_DOZING_OFF, VM_FX_DOZE | VM_FX_PUBLISH),
		/* Running here, the registry says elsewhere: this node knows, it says so again. */
		[VM_EV_REG_CONFLICT] = MOVE(VM_RUNNING, VM_FX_PUBLISH),
		/* Running elsewhere (a VM running here is a conflict, above). */
		REG_FOLLOWS(0, 0),
		[VM_EV_REG_ERROR] = REG_ERROR_FAIL,
		[VM_EV_REMOVED] = REMOVED(VM_RUNNING),
	},
	[VM_HIBERNATING] = {
		[VM_EV_INSPECT] = INSPECT,
		[VM_EV_SAVE_OK] = MOVE(VM_HIBERNATED, VM_FX_NOWHERE | VM_FX_PUBLISH | VM_FX_DONE | VM_FX_WAKE_AFTER),
		/* It never stopped: it gets what arrived meanwhile. */
		[VM_EV_SAVE_FAILED_UP] = MOVE(VM_RUNNING, VM_FX_REPLAY | VM_FX_PUBLISH | VM_FX_FAIL),
		[VM_EV_SAVE_FAILED] = MOVE(VM_ERROR, VM_FX_RELEASE | VM_FX_PUBLISH | VM_FX_FAIL | VM_FX_RECHECK),
		/* Saved from a doze: still paused, it dozes on; a wake kept meanwhile resumes it. */
		[VM_EV_SAVE_FAILED_DOZING] = MOVE(VM_DOZING, VM_FX_PUBLISH | VM_FX_FAIL | VM_FX_WAKE_AFTER),
		/* The save finishes first; its end starts the wake. */
		[VM_EV_WAKE] = MOVE(VM_HIBERNATING, VM_FX_WANT),
		[VM_EV_REG_WAKE_HERE] = REG_WAKE_HERE,
		REG_FOLLOWS(UP_THERE, VM_FX_WAKE_AFTER),
		[VM_EV_REG_ERROR] = REG_ERROR_FAIL,
		[VM_EV_REMOVED] = REMOVED(VM_HIBERNATING),
	},
	[VM_HIBERNATED] = {
		[VM_EV_INSPECT] = INSPECT,
		[VM_EV_WAKE] = MOVE(VM_HIBERNATED, VM_FX_CLAIM),
		[VM_EV_CLAIM_HERE] = MOVE(VM_WAKING, VM_FX_RESTORE),
		/* SYNs held while the claim was on its way went without it. */
		[VM_EV_CLAIM_THERE] = MOVE(VM_WAKING, VM_FX_TARGET | VM_FX_PASS_SYNS),
		/* Nobody will replay them: the client retries. */
		[VM_EV_CLAIM_REFUSED] = MOVE_WHY(VM_HIBERNATED, VM_FX_RELEASE | VM_FX_FAIL, 0,
						 "wake not claimed: the cluster store did not answer"),
		[VM_EV_REG_WAKE_HERE] = REG_WAKE_HERE,
		REG_FOLLOWS(UP_THERE, 0),
		[VM_EV_REG_ERROR] = REG_ERROR_FAIL,
		[VM_EV_REMOVED] = REMOVED(VM_HIBERNATED),
	},
	[VM_WAKING] = {
		[VM_EV_INSPECT] = INSPECT,
		[VM_EV_HIBERNATE] = REFUSE(-EBUSY, "waking"),
		/* The watch showed the claim first: the restore runs already, or another node's. */
		[VM_EV_CLAIM_HERE] = MOVE(VM_WAKING, 0),
		[VM_EV_CLAIM_THERE] = MOVE(VM_WAKING, VM_FX_PASS_SYNS),
		[VM_EV_RESTORE_OK] = RESTORED,
		[VM_EV_RESTORE_ASLEEP] = MOVE(VM_HIBERNATED, RESTORE_FAIL),
		[VM_EV_RESTORE_FAILED] = RESTORE_BROKEN,
		[VM_EV_RESTORE_GONE] = RESTORE_GONE,
		RESUME_ENDS,
		/* An end, never waking forever: the restore's late result still moves it. */
		[VM_EV_WAKE_TIMEOUT] = MOVE_WHY(VM_ERROR, VM_FX_RELEASE | VM_FX_PUBLISH | VM_FX_FAIL, -ETIMEDOUT,
						NULL),
		/* Restored by another node (restoring here, its job's end decides). */
		[VM_EV_REG_RUNNING] = FOLLOW(VM_RUNNING, UP_THERE),
		[VM_EV_REG_HIBERNATING] = FOLLOW(VM_HIBERNATING, 0),
		[VM_EV_REG_HIBERNATED] = MOVE_WHY(VM_HIBERNATED, VM_FX_FOLLOW | VM_FX_RELEASE | VM_FX_FAIL, 0,
						  "the wake failed on the node that took it"),
		[VM_EV_REG_WAKING] = FOLLOW(VM_WAKING, 0),
		/* Woken there, and dozing again already. */
		[VM_EV_REG_DOZING] = FOLLOW(VM_DOZING, UP_THERE),
		[VM_EV_REG_ERROR] = REG_ERROR_FAIL,
		[VM_EV_REMOVED] = REMOVED(VM_WAKING),
	},
	[VM_DOZING_OFF] = {
		[VM_EV_INSPECT] = INSPECT,
		[VM_EV_HIBERNATE] = REFUSE(-EBUSY, "dozing off"),
		[VM_EV_DOZE_OK] = MOVE(VM_DOZING, VM_FX_PUBLISH | VM_FX_DONE | VM_FX_WAKE_AFTER),
		/* It never stopped: it gets what arrived meanwhile. */
		[VM_EV_DOZE_FAILED_UP] = MOVE(VM_RUNNING, VM_FX_REPLAY | VM_FX_PUBLISH | VM_FX_FAIL),
		[VM_EV_DOZE_FAILED] = MOVE(VM_ERROR, VM_FX_RELEASE | VM_FX_PUBLISH | VM_FX_FAIL | VM_FX_RECHECK),
		/* The doze finishes first; its end starts the wake. */
		[VM_EV_WAKE] = MOVE(VM_DOZING_OFF, VM_FX_WANT),
		[VM_EV_REG_CONFLICT] = MOVE(VM_DOZING_OFF, VM_FX_PUBLISH),
		[VM_EV_REMOVED] = REMOVED(VM_DOZING_OFF),
	},
	[VM_DOZING] = {
		[VM_EV_INSPECT] = INSPECT,
		/* A dozing VM is saved as it is, paused: hibernated, its node's memory is free. */
		[VM_EV_HIBERNATE] = MOVE(VM_HIBERNATING, VM_FX_SAVE | VM_FX_PUBLISH),
		/* Its node wakes it, without a claim: nothing else can. */
		[VM_EV_WAKE] = MOVE(VM_WAKING, VM_FX_RESUME),
		/*
		 * Dozing on another node: a claim for that node (cluster_claim names
		 * it), whose watch resumes it as REG_WAKE_HERE below.
		 */
		[VM_EV_WAKE_THERE] = MOVE(VM_DOZING, VM_FX_CLAIM),
		[VM_EV_CLAIM_THERE] = MOVE(VM_WAKING, VM_FX_TARGET | VM_FX_PASS_SYNS),
		[VM_EV_CLAIM_REFUSED] = MOVE_WHY(VM_DOZING, VM_FX_RELEASE | VM_FX_FAIL, 0,
						 "wake not claimed: the cluster store did not answer"),
		[VM_EV_REG_WAKE_HERE] = MOVE(VM_WAKING, VM_FX_RESUME),
		[VM_EV_REG_CONFLICT] = MOVE(VM_DOZING, VM_FX_PUBLISH),
		REG_FOLLOWS(UP_THERE, 0),
		[VM_EV_REG_ERROR] = REG_ERROR_FAIL,
		[VM_EV_REMOVED] = REMOVED(VM_DOZING),
	},
	[VM_ERROR] = {
		[VM_EV_INSPECT] = INSPECT,
		/* It stays in error, its reason shown, until the inspect says otherwise. */
		[VM_EV_RECHECK] = MOVE(VM_ERROR, VM_FX_INSPECT),
		INSPECT_RESULTS,
		[VM_EV_HIBERNATE] = REFUSE(-EBUSY, NULL),
		[VM_EV_DOZE] = REFUSE(-EBUSY, NULL),
		[VM_EV_WAKE] = REFUSE(-EIO, NULL),
		/* After wake_timeout: the restore ends after all. */
		[VM_EV_RESTORE_OK] = RESTORED,
		[VM_EV_RESTORE_ASLEEP] = MOVE(VM_HIBERNATED, RESTORE_FAIL),
		[VM_EV_RESTORE_FAILED] = RESTORE_BROKEN,
		[VM_EV_RESTORE_GONE] = RESTORE_GONE,
		RESUME_ENDS,
		[VM_EV_REG_WAKE_HERE] = REG_WAKE_HERE,
		REG_FOLLOWS(UP_THERE, 0),
		[VM_EV_REG_ERROR] = FOLLOW(VM_ERROR, 0),
		[VM_EV_REMOVED] = REMOVED(VM_ERROR),
	},
};

const char *vm_state_name(enum vm_state s)
{
	static const char *const name[] = {
		[VM_UNKNOWN] = "unknown",	[VM_RUNNING] = "running", [VM_HIBERNATING] = "hibernating",
		[VM_HIBERNATED] = "hibernated", [VM_WAKING] = "waking",	  [VM_DOZING_OFF] = "dozing_off",
		[VM_DOZING] = "dozing",		[VM_ERROR] = "error",
	};
	return name[s];
}

const char *vm_event_name(enum vm_event e)
{
	static const char *const name[] = {
		[VM_EV_INSPECT] = "inspect",
		[VM_EV_RECHECK] = "recheck",
		[VM_EV_FOUND_RUNNING] = "found_running",
		[VM_EV_FOUND_HIBERNATED] = "found_hibernated",
		[VM_EV_FOUND_DOZING] = "found_dozing",
		[VM_EV_FOUND_STOPPED] = "found_stopped",
		[VM_EV_FOUND_MISSING] = "found_missing",
		[VM_EV_INSPECT_FAILED] = "inspect_failed",
		[VM_EV_LIBVIRT_GONE] = "libvirt_gone",
		[VM_EV_HIBERNATE] = "hibernate",
		[VM_EV_SAVE_OK] = "save_ok",
		[VM_EV_SAVE_FAILED_UP] = "save_failed_up",
		[VM_EV_SAVE_FAILED] = "save_failed",
		[VM_EV_DOZE] = "doze",
		[VM_EV_DOZE_OK] = "doze_ok",
		[VM_EV_DOZE_FAILED_UP] = "doze_failed_up",
		[VM_EV_DOZE_FAILED] = "doze_failed",
		[VM_EV_SAVE_FAILED_DOZING] = "save_failed_dozing",
		[VM_EV_WAKE] = "wake",
		[VM_EV_WAKE_THERE] = "wake_there",
		[VM_EV_CLAIM_HERE] = "claim_here",
		[VM_EV_CLAIM_THERE] = "claim_there",
		[VM_EV_CLAIM_LOST] = "claim_lost",
		[VM_EV_CLAIM_REFUSED] = "claim_refused",
		[VM_EV_RESTORE_OK] = "restore_ok",
		[VM_EV_RESTORE_ASLEEP] = "restore_asleep",
		[VM_EV_RESTORE_FAILED] = "restore_failed",
		[VM_EV_RESTORE_GONE] = "restore_gone",
		[VM_EV_RESUME_OK] = "resume_ok",
		[VM_EV_RESUME_PAUSED] = "resume_paused",
		[VM_EV_RESUME_FAILED] = "resume_failed",
		[VM_EV_WAKE_TIMEOUT] = "wake_timeout",
		[VM_EV_REG_WAKE_HERE] = "reg_wake_here",
		[VM_EV_REG_CONFLICT] = "reg_conflict",
		[VM_EV_REG_RUNNING] = "reg_running",
		[VM_EV_REG_HIBERNATING] = "reg_hibernating",
		[VM_EV_REG_HIBERNATED] = "reg_hibernated",
		[VM_EV_REG_WAKING] = "reg_waking",
		[VM_EV_REG_DOZING] = "reg_dozing",
		[VM_EV_REG_ERROR] = "reg_error",
		[VM_EV_REMOVED] = "removed",
	};
	return name[e];
}

bool vm_is_asleep(const struct vm *vm)
{
	return vm->state == VM_HIBERNATING || vm->state == VM_HIBERNATED || vm->state == VM_WAKING ||
	       vm->state == VM_DOZING_OFF || vm->state == VM_DOZING;
}

bool vm_stood_in_here(const struct odrsd *d, const struct vm *vm)
{
	if (vm->state == VM_DOZING_OFF || vm->state == VM_DOZING || (vm->state == VM_WAKING && vm->dozed))
		return vm_is_local(d, vm);
	return d->accept && vm_is_asleep(vm);
}

bool vm_is_local(const struct odrsd *d, const struct vm *vm)
{
	return !d->cluster || !strcmp(vm_text(vm->node), d->cfg->node);
}

void vm_life_init(struct odrsd *d, struct vm_life *life, const struct vm_ops *ops)
{
	memset(life, 0, sizeof(*life));
	life->ops = ops;
	d->life = life;
}

int vm_observe(struct odrsd *d, vm_observer_fn fn)
{
	if (d->life->nobservers == VM_OBSERVERS_MAX)
		return -ENOSPC;
	d->life->observers[d->life->nobservers++] = fn;
	return 0;
}

void vm_text_set(char **text, const char *s)
{
	if (*text && s && !strcmp(*text, s))
		return;
	free(*text);
	*text = s && *s ? strdup(s) : NULL;
}

static void set_str(char *dst, size_t len, const char *s)
{
	snprintf(dst, len, "%s", s ? s : "");
}

/* The VM's fields, as the rule and the input say: before the observers look. */
static void apply_fields(struct odrsd *d, struct vm *vm, const struct vm_rule *r, const struct vm_input *in,
			 enum vm_state from)
{
	const struct virt_job *job = in->job;
	const struct vm_proposal *p = in->reg;

	if (r->to != from)
		vm->state_since = d->life->ops->now(d);
	if (in->ev == VM_EV_RECHECK)
		vm->error_rechecks++;
	else if (r->to != VM_ERROR)
		vm->error_rechecks = 0;
	if (r->to == VM_ERROR && (from != VM_ERROR || job))
		/* The input's own reason first: an inspect may know why (another node's claim). */
		vm_text_set(&vm->error, in->error ? in->error : r->why);
	/* A wake kept for the end of a save or doze is moot once it ends otherwise (asleep on). */
	if ((from == VM_HIBERNATING && r->to != VM_HIBERNATING && r->to != VM_HIBERNATED &&
	     r->to != VM_DOZING) ||
	    (from == VM_DOZING_OFF && r->to != VM_DOZING_OFF && r->to != VM_DOZING))
		vm->wake_wanted = false;
	/*
	 * Paused here by a doze, as a restart must know, until a save or the end
	 * of its resume. Dozing on another node (followed, or claimed from here)
	 * is no doze here.
	 */
	vm->dozed = r->to == VM_DOZING ? !(r->effects & VM_FX_FOLLOW) && (from != VM_DOZING || vm->dozed)
				       : vm->dozed && (r->to == VM_HIBERNATING || r->to == VM_UNKNOWN ||
						       (r->effects & VM_FX_RESUME));
	if (r->to == VM_DOZING && from != VM_DOZING)
		vm->dozed_at = d->life->ops->now(d);
	if (r->effects & VM_FX_WANT)
		vm->wake_wanted = true;
	if (r->effects & VM_FX_RUNS_HERE) {
		vm_text_set(&vm->node, d->cfg->node);
		set_str(vm->tap, sizeof(vm->tap), job->tap);
		vm->mem_bytes = job->mem_bytes;
		vm->last_activity = d->life->ops->now(d);
	}
	if (r->effects & VM_FX_NOWHERE) {
		vm_text_set(&vm->node, NULL);
		vm->mem_bytes = 0;
	}
	if (r->effects & (VM_FX_RESTORE | VM_FX_RESUME)) {
		vm_text_set(&vm->node, d->cfg->node);
		vm->replay_tries = 0;
	}
	if (r->effects & VM_FX_TARGET)
		vm_text_set(&vm->node, in->node);
	if (r->effects & VM_FX_FOLLOW) {
		vm_text_set(&vm->node, p->node);
		vm->mem_bytes = 0;
		vm->snapshot_bytes = p->bytes;
		if (p->last_wake_ms >= 0)
			vm->last_wake_ms = p->last_wake_ms;
		if (r->to == VM_ERROR)
			vm_text_set(&vm->error, p->error ? p->error : "error on another node");
	}
	switch (in->ev) {
	case VM_EV_FOUND_HIBERNATED:
	case VM_EV_SAVE_OK:
		vm->snapshot_bytes = job->bytes;
		break;
	case VM_EV_SAVE_FAILED_UP:
	case VM_EV_DOZE_FAILED_UP:
		set_str(vm->tap, sizeof(vm->tap), job->tap); /* for the replay */
		break;
	case VM_EV_RESTORE_OK:
		vm->snapshot_bytes = 0;
		/* fall through */
	case VM_EV_RESUME_OK:
		vm->last_wake_ms = (int64_t)((d->life->ops->now(d) - vm->trigger_at) * 1000);
		break;
	case VM_EV_REG_WAKE_HERE:
		vm->trigger = p->trigger;
		vm_text_set(&vm->client, p->client);
		vm->trigger_at = p->at;
		break;
	default:
		break;
	}
}

static void submit(struct odrsd *d, struct vm *vm, enum virt_op op)
{
	vm->job_busy = true;
	d->life->ops->submit(d, vm, op);
}

static int start_claim(struct odrsd *d, struct vm *vm, char *err, size_t errlen)
{
	int r;

	if (!d->cluster) {
		vm_on_claim(d, vm, VM_CLAIM_WON, d->cfg->node, 0);
		return 0;
	}
	if ((r = d->life->ops->claim(d, vm, err, errlen)) == 0)
		vm->claiming = true;
	return r;
}

/* The effects that need the loop; the VM may be freed by the last. */
static int run_effects(struct odrsd *d, struct vm *vm, unsigned fx, char *err, size_t errlen)
{
	const struct vm_ops *ops = d->life->ops;
	int r = 0;

	if (fx & VM_FX_STOP_TIMER)
		ops->wake_timer(d, vm, false);
	if (fx & VM_FX_RELEASE)
		ops->release(d, vm);
	if ((fx & VM_FX_REPLAY) && vm->held)
		ops->replay(d, vm);
	if ((fx & VM_FX_PASS_SYNS) && vm->held)
		ops->pass_syns(d, vm);
	if (fx & VM_FX_RECHECK)
		ops->recheck(d, vm);
	if (fx & VM_FX_INSPECT)
		submit(d, vm, VIRT_INSPECT);
	if (fx & VM_FX_SAVE)
		submit(d, vm, VIRT_SAVE);
	if (fx & VM_FX_DOZE)
		submit(d, vm, VIRT_DOZE);
	if (fx & VM_FX_RESTORE) {
		submit(d, vm, VIRT_RESTORE);
		ops->wake_timer(d, vm, true);
	}
	if (fx & VM_FX_RESUME) {
		submit(d, vm, VIRT_RESUME);
		ops->wake_timer(d, vm, true);
	}
	if (fx & VM_FX_CLAIM)
		r = start_claim(d, vm, err, errlen);
	if ((fx & VM_FX_WAKE_AFTER) && vm->wake_wanted)
		r = vm_request_wake(d, vm, vm->trigger, NULL, err, errlen);
	if (fx & VM_FX_FREE)
		ops->destroy(d, vm);
	return r;
}

static void say(char *err, size_t errlen, const struct vm *vm, const char *what)
{
	if (err)
		snprintf(err, errlen, "%s is %s", vm->name, what);
}

int vm_fire(struct odrsd *d, struct vm *vm, const struct vm_input *in, char *err, size_t errlen)
{
	const struct vm_rule *r = &vm_rules[vm->state][in->ev];
	struct vm_change c = { .in = in, .from = vm->state, .to = r->to, .effects = r->effects };

	if (r->verdict == VM_IGNORE)
		return 0;
	if (r->verdict == VM_REFUSE) {
		say(err, errlen, vm, r->why ? r->why : vm_text(vm->error));
		return r->err;
	}
	vm->state = r->to;
	apply_fields(d, vm, r, in, c.from);
	if (r->effects & VM_FX_FAIL) {
		c.err = in->err ? in->err : r->err ? r->err : -EIO;
		c.why = r->why ? r->why : in->error ? in->error : vm_text(vm->error);
	}
	for (unsigned i = 0; i < d->life->nobservers; i++)
		d->life->observers[i](d, vm, &c);
	return run_effects(d, vm, r->effects, err, errlen);
}

static int fire_event(struct odrsd *d, struct vm *vm, enum vm_event ev)
{
	return vm_fire(d, vm, &(struct vm_input){ .ev = ev }, NULL, 0);
}

/* A libvirt job in flight settles what the VM is when it ends: nothing starts another. */
void vm_inspect(struct odrsd *d, struct vm *vm)
{
	if (!vm->job_busy)
		fire_event(d, vm, VM_EV_INSPECT);
}

void vm_recheck(struct odrsd *d, struct vm *vm)
{
	if (!vm->job_busy)
		fire_event(d, vm, VM_EV_RECHECK);
}

double vm_recheck_delay(const struct vm *vm)
{
	double s = VM_RECHECK_FIRST_S;

	for (unsigned i = 0; i < vm->error_rechecks && s < VM_RECHECK_MAX_S; i++)
		s *= 2;
	return s < VM_RECHECK_MAX_S ? s : VM_RECHECK_MAX_S;
}

int vm_request_wake(struct odrsd *d, struct vm *vm, enum wk_trigger t, const char *client, char *err,
		    size_t errlen)
{
	/* Its memory is on its node: only that node resumes it. */
	enum vm_event ev = vm->state == VM_DOZING && !vm_is_local(d, vm) ? VM_EV_WAKE_THERE : VM_EV_WAKE;
	const struct vm_rule *r = &vm_rules[vm->state][ev];

	if (r->verdict == VM_MOVE && !vm->wake_wanted) {
		vm->trigger = t;
		vm->trigger_at = d->life->ops->now(d);
		vm_text_set(&vm->client, client);
	}
	if (r->effects & (VM_FX_CLAIM | VM_FX_RESUME)) {
		if (vm->claiming)
			return 0;
		if (!d->life->ops->may_wake(d, vm, t)) {
			if (err)
				snprintf(err, errlen, "%s: wake refused by a rate limit", vm->name);
			return -EAGAIN;
		}
		vm->wake_limited = false;
		vm->wake_wanted = false;
	}
	return vm_fire(d, vm, &(struct vm_input){ .ev = ev }, err, errlen);
}

/* Hibernate or doze: a VM goes to sleep only from this node, with the registry told. */
static int request_sleep(struct odrsd *d, struct vm *vm, enum vm_event ev, const char *reason, char *err,
			 size_t errlen)
{
	const struct vm_rule *r = &vm_rules[vm->state][ev];
	const char *verb = ev == VM_EV_DOZE ? "doze" : "hibernate";

	if (r->verdict == VM_MOVE) {
		if (vm->job_busy) {
			say(err, errlen, vm, "busy with a libvirt job");
			return -EBUSY;
		}
		if (!vm_is_local(d, vm)) {
			if (err)
				snprintf(err, errlen, "%s runs on %s: %s it there", vm->name,
					 vm_text(vm->node), verb);
			return -EREMOTE;
		}
		/* Asleep with nobody told, it would never wake. */
		if (!d->life->ops->store_ok(d)) {
			if (err)
				snprintf(err, errlen, "%s stays up: the cluster store is unreachable",
					 vm->name);
			return -EAGAIN;
		}
		vm->hibernate_reason = reason;
	}
	return vm_fire(d, vm, &(struct vm_input){ .ev = ev }, err, errlen);
}

int vm_request_hibernate(struct odrsd *d, struct vm *vm, const char *reason, char *err, size_t errlen)
{
	return request_sleep(d, vm, VM_EV_HIBERNATE, reason, err, errlen);
}

int vm_request_doze(struct odrsd *d, struct vm *vm, const char *reason, char *err, size_t errlen)
{
	return request_sleep(d, vm, VM_EV_DOZE, reason, err, errlen);
}

/* VM_EV_COUNT: the registry was followed instead, or will be (its first read). */
static enum vm_event inspect_event(struct odrsd *d, struct vm *vm, const struct virt_job *job)
{
	if (job->err)
		return job->err == -ENOTCONN ? VM_EV_LIBVIRT_GONE : VM_EV_INSPECT_FAILED;
	/* In a cluster, a VM not running here is wherever the registry says. */
	if (d->cluster && job->state != VIRT_RUNNING && vm->rev && d->life->ops->adopt(d, vm))
		return VM_EV_COUNT;
	/*
	 * Not defined here, and the registry not read yet: it runs or sleeps as
	 * another node left it (and only the registry has its MAC). It stays
	 * unknown; the registry's first read decides, or inspects it again.
	 */
	if (d->cluster && !job->defined && !d->life->ops->registry_read(d))
		return VM_EV_COUNT;
	switch (job->state) {
	case VIRT_RUNNING:
		/* Paused otherwise (by an operator, or a libvirt job): it runs, as far as odrsd knows. */
		return job->paused && vm->dozed ? VM_EV_FOUND_DOZING : VM_EV_FOUND_RUNNING;
	case VIRT_HIBERNATED:
		return VM_EV_FOUND_HIBERNATED;
	case VIRT_STOPPED:
		return VM_EV_FOUND_STOPPED;
	case VIRT_MISSING:
		break;
	}
	return VM_EV_FOUND_MISSING;
}

static enum vm_event resume_event(const struct virt_job *job)
{
	if (job->state == VIRT_RUNNING && !job->paused)
		return VM_EV_RESUME_OK;
	if (job->err == -ENOTCONN)
		return VM_EV_RESTORE_GONE;
	return job->state == VIRT_RUNNING ? VM_EV_RESUME_PAUSED : VM_EV_RESUME_FAILED;
}

static enum vm_event restore_event(const struct virt_job *job)
{
	if (!job->err || job->state == VIRT_RUNNING)
		return VM_EV_RESTORE_OK;
	/* libvirtd went away mid-restore: which way it went, only an inspect can tell. */
	if (job->err == -ENOTCONN)
		return VM_EV_RESTORE_GONE;
	return job->state == VIRT_HIBERNATED ? VM_EV_RESTORE_ASLEEP : VM_EV_RESTORE_FAILED;
}

void vm_on_job_done(struct odrsd *d, struct vm *vm, const struct virt_job *job)
{
	/* An inspect that finds no image may still say why (a restore on another node holds it). */
	struct vm_input in = { .job = job, .err = job->err, .error = job->error[0] ? job->error : NULL };

	vm->job_busy = false;
	switch (job->op) {
	case VIRT_INSPECT:
		in.ev = inspect_event(d, vm, job);
		break;
	case VIRT_SAVE:
		in.ev = !job->err		     ? VM_EV_SAVE_OK
			: job->state != VIRT_RUNNING ? VM_EV_SAVE_FAILED
			: job->paused		     ? VM_EV_SAVE_FAILED_DOZING
						     : VM_EV_SAVE_FAILED_UP;
		break;
	case VIRT_RESTORE:
		in.ev = restore_event(job);
		break;
	case VIRT_DOZE:
		in.ev = !job->err				     ? VM_EV_DOZE_OK
			: job->state == VIRT_RUNNING && !job->paused ? VM_EV_DOZE_FAILED_UP
								     : VM_EV_DOZE_FAILED;
		break;
	case VIRT_RESUME:
		in.ev = resume_event(job);
		break;
	case VIRT_PROBE:
		return; /* idle.c's */
	}
	if (in.ev != VM_EV_COUNT)
		vm_fire(d, vm, &in, NULL, 0);
	if (vm->removed)
		vm_free(d, vm);
}

void vm_on_job_unstarted(struct odrsd *d, struct vm *vm, enum virt_op op, int err, const char *why)
{
	/* The domain as the job found it: a save or doze leaves it running, a restore asleep, a resume paused. */
	struct virt_job job = { .op = op, .owner = vm, .name = vm->name, .err = err };

	switch (op) {
	case VIRT_SAVE:
		job.state = VIRT_RUNNING;
		job.paused = vm->dozed;
		break;
	case VIRT_DOZE:
		job.state = VIRT_RUNNING;
		break;
	case VIRT_RESUME:
		job.state = VIRT_RUNNING;
		job.paused = true;
		break;
	case VIRT_RESTORE:
		job.state = VIRT_HIBERNATED;
		break;
	default:
		job.state = VIRT_MISSING;
		break;
	}
	snprintf(job.error, sizeof(job.error), "%s", why);
	vm_on_job_done(d, vm, &job);
}

void vm_on_claim(struct odrsd *d, struct vm *vm, enum vm_claim result, const char *target, int err)
{
	struct vm_input in = { .node = target, .err = err };

	vm->claiming = false;
	if (result == VM_CLAIM_WON)
		in.ev = strcmp(target, d->cfg->node) ? VM_EV_CLAIM_THERE : VM_EV_CLAIM_HERE;
	else
		in.ev = result == VM_CLAIM_LOST ? VM_EV_CLAIM_LOST : VM_EV_CLAIM_REFUSED;
	vm_fire(d, vm, &in, NULL, 0);
}

static enum vm_event registry_event(const struct odrsd *d, const struct vm *vm, const struct vm_proposal *p)
{
	static const enum vm_event elsewhere[VM_STATE_COUNT] = {
		[VM_UNKNOWN] = VM_EV_COUNT,
		[VM_RUNNING] = VM_EV_REG_RUNNING,
		[VM_HIBERNATING] = VM_EV_REG_HIBERNATING,
		[VM_HIBERNATED] = VM_EV_REG_HIBERNATED,
		[VM_WAKING] = VM_EV_REG_WAKING,
		[VM_DOZING_OFF] = VM_EV_REG_DOZING,
		[VM_DOZING] = VM_EV_REG_DOZING,
		[VM_ERROR] = VM_EV_REG_ERROR,
	};

	/* Claimed for this node: restore it here. Anything else here we said ourselves. */
	if (!strcmp(p->node, d->cfg->node))
		return p->state == VM_WAKING ? VM_EV_REG_WAKE_HERE : VM_EV_COUNT;
	if ((vm->state == VM_RUNNING || vm->state == VM_DOZING_OFF || vm->state == VM_DOZING) &&
	    vm_is_local(d, vm))
		return VM_EV_REG_CONFLICT;
	return elsewhere[p->state];
}

bool vm_on_registry(struct odrsd *d, struct vm *vm, const struct vm_proposal *p)
{
	struct vm_input in = { .reg = p };

	/* A job of ours on it (an inspect, save or restore) says what it is when it ends. */
	if (vm->job_busy || p->state == VM_UNKNOWN || !p->node)
		return false;
	in.ev = registry_event(d, vm, p);
	if (in.ev == VM_EV_COUNT || vm_rules[vm->state][in.ev].verdict != VM_MOVE)
		return false;
	vm_fire(d, vm, &in, NULL, 0);
	return true;
}

void vm_on_wake_timeout(struct odrsd *d, struct vm *vm)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "restore still running after %.0f s", d->cfg->wake_timeout_ms / 1000.);
	vm_fire(d, vm, &(struct vm_input){ .ev = VM_EV_WAKE_TIMEOUT, .error = msg }, NULL, 0);
}

void vm_free(struct odrsd *d, struct vm *vm)
{
	vm->removed = true;
	if (!vm->job_busy && !vm->probing)
		fire_event(d, vm, VM_EV_REMOVED);
}
