/*
 * A VM's lifecycle: the only code that writes vm->state.
 *
 * Inputs call down: the capture and control ask for a wake or a hibernation
 * (vm_request_*), the libvirt worker reports a job (vm_on_job_done), the
 * cluster reports a claim (vm_on_claim) and proposes what the registry says
 * (vm_on_registry: it proposes, the table decides), the daemon reports a
 * wake timeout and a VM dropped from the configuration (vm_free). Each input
 * becomes one event; the const table vm_rules[state][event] says whether it
 * is ignored, refused (an errno and a reason) or moves the VM to a state with
 * effects. vm_fire() applies a rule in one order: the state and the VM's
 * fields, then every observer (capture filter, registry, control waiters,
 * event log) with a struct vm_change, then the effects that need the loop
 * (jobs, timers, claims, held SYNs) through struct vm_ops. An effect may
 * fire another event (a claim won at once): observers see each change in
 * the order it happened.
 *
 * vm.c calls neither libev nor libvirt: the daemon fills in struct vm_ops and
 * registers its observers at start (wake.c); tests/unit/test_vm.c drives it
 * with fakes. A new state or trigger is a row of the table.
 */
#ifndef ODRSD_VM_H
#define ODRSD_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odrsd.h"

enum vm_event {
	VM_EV_INSPECT,		  /* inspect again now (start-up, reload, libvirt event) */
	VM_EV_RECHECK,		  /* in error: inspect again, staying in error until the result */
	VM_EV_FOUND_RUNNING,	  /* inspect result: the domain runs here */
	VM_EV_FOUND_HIBERNATED,	  /* inspect result: its image is in snapshot_dir */
	VM_EV_FOUND_DOZING,	  /* inspect result: paused here, and it was dozed */
	VM_EV_FOUND_STOPPED,	  /* inspect result: shut off, no image */
	VM_EV_FOUND_MISSING,	  /* inspect result: no domain, no image */
	VM_EV_INSPECT_FAILED,	  /* inspect result: libvirt said no */
	VM_EV_LIBVIRT_GONE,	  /* inspect result: libvirtd unreachable */
	VM_EV_HIBERNATE,	  /* hibernate requested (idle or manual) */
	VM_EV_SAVE_OK,		  /* the save wrote its image */
	VM_EV_SAVE_FAILED_UP,	  /* the save failed, the domain still runs */
	VM_EV_SAVE_FAILED,	  /* the save failed, the domain's state is unknown */
	VM_EV_DOZE,		  /* doze requested (idle or manual) */
	VM_EV_DOZE_OK,		  /* the doze paused it and paged its memory out */
	VM_EV_DOZE_FAILED_UP,	  /* the doze failed, the domain still runs */
	VM_EV_DOZE_FAILED,	  /* the doze failed, the domain is neither running nor dozed */
	VM_EV_SAVE_FAILED_DOZING, /* the save of a dozing VM failed, the domain is still paused */
	VM_EV_WAKE,		  /* wake requested (a trigger) */
	VM_EV_WAKE_THERE,	  /* wake requested here for a VM dozing on another node */
	VM_EV_CLAIM_HERE,	  /* the wake claim won, for this node (always so without a cluster) */
	VM_EV_CLAIM_THERE,	  /* the wake claim won, for another node */
	VM_EV_CLAIM_LOST,	  /* another node claimed it first */
	VM_EV_CLAIM_REFUSED,	  /* etcd did not answer the claim */
	VM_EV_RESTORE_OK,	  /* the restore runs the domain here */
	VM_EV_RESTORE_ASLEEP,	  /* the restore failed, its image is back */
	VM_EV_RESTORE_FAILED,	  /* the restore failed, neither running nor restorable */
	VM_EV_RESTORE_GONE,	  /* libvirtd went away during the restore (or the resume) */
	VM_EV_RESUME_OK,	  /* the resume runs the dozing domain again */
	VM_EV_RESUME_PAUSED,	  /* the resume failed, the domain is still paused */
	VM_EV_RESUME_FAILED,	  /* the resume failed, the domain is not there */
	VM_EV_WAKE_TIMEOUT,	  /* wake_timeout passed, the restore still runs */
	VM_EV_REG_WAKE_HERE,	  /* registry: claimed for this node (by another node) */
	VM_EV_REG_CONFLICT,	  /* registry: elsewhere, but it runs here */
	VM_EV_REG_RUNNING,	  /* registry: running on another node */
	VM_EV_REG_HIBERNATING,	  /* registry: being saved by another node */
	VM_EV_REG_HIBERNATED,	  /* registry: asleep */
	VM_EV_REG_WAKING,	  /* registry: being restored by another node */
	VM_EV_REG_DOZING,	  /* registry: dozing (or dozing off) on another node */
	VM_EV_REG_ERROR,	  /* registry: failed on another node */
	VM_EV_REMOVED,		  /* dropped from the configuration, and no job runs */
	VM_EV_COUNT,
};
const char *vm_event_name(enum vm_event e);

/* What a rule does besides moving the state. */
enum vm_effect {
	VM_FX_INSPECT = 1u << 0,     /* submit an inspect */
	VM_FX_SAVE = 1u << 1,	     /* submit a save */
	VM_FX_RESTORE = 1u << 2,     /* this node restores it: submit, start the wake timer */
	VM_FX_CLAIM = 1u << 3,	     /* claim the wake (without a cluster: won here at once) */
	VM_FX_WANT = 1u << 4,	     /* keep the wake for when the save ends */
	VM_FX_WAKE_AFTER = 1u << 5,  /* a wake kept meanwhile starts now */
	VM_FX_RECHECK = 1u << 6,     /* libvirtd unreachable: inspect again later */
	VM_FX_REPLAY = 1u << 7,	     /* the held SYNs into its tap */
	VM_FX_RELEASE = 1u << 8,     /* forget the held SYNs (nobody will replay them) */
	VM_FX_PASS_SYNS = 1u << 9,   /* the held SYNs to the node that restores it */
	VM_FX_STOP_TIMER = 1u << 10, /* the wake timer */
	VM_FX_RUNS_HERE = 1u << 11,  /* node, tap and memory from the job */
	VM_FX_FOLLOW = 1u << 12,     /* node, sizes and error from the registry's proposal */
	VM_FX_PUBLISH = 1u << 13,    /* observers: tell the registry */
	VM_FX_DONE = 1u << 14,	     /* observers: the waiters' operation succeeded */
	VM_FX_FAIL = 1u << 15,	     /* observers: it failed (change.err, change.why) */
	VM_FX_NOWHERE = 1u << 16,    /* it runs on no node, with no memory */
	VM_FX_TARGET = 1u << 17,     /* the claim's target node restores it */
	VM_FX_FREE = 1u << 18,	     /* free it (after the observers) */
	VM_FX_DOZE = 1u << 19,	     /* submit a doze */
	VM_FX_RESUME = 1u << 20,     /* this node resumes it: submit, start the wake timer */
};

enum vm_verdict {
	VM_IGNORE = 0, /* the event means nothing in this state: 0, no change */
	VM_MOVE,       /* to `to` with `effects` */
	VM_REFUSE,     /* -err, why (NULL: the VM's error) */
};

struct vm_rule {
	enum vm_verdict verdict;
	enum vm_state to;
	unsigned effects;
	int err;	 /* VM_REFUSE: returned; VM_FX_FAIL: the waiters' errno unless the input says */
	const char *why; /* the reason of a refusal, of a failure, or the error of an ERROR state */
};
extern const struct vm_rule vm_rules[VM_STATE_COUNT][VM_EV_COUNT];

/* One input, as vm_fire() takes it; only what the event needs is set. */
struct vm_input {
	enum vm_event ev;
	const struct virt_job *job;    /* job results */
	const struct vm_proposal *reg; /* registry events */
	const char *node;	       /* claims: the target node */
	int err;		       /* a failure's errno */
	const char *error;	       /* a failure's reason */
};

/* A transition as the observers see it; vm->state == to already. */
struct vm_change {
	const struct vm_input *in;
	enum vm_state from, to;
	unsigned effects;
	int err;	 /* VM_FX_FAIL */
	const char *why; /* VM_FX_FAIL: the reason */
};

/* The registry's word on a VM (cluster.c reads it from etcd). */
struct vm_proposal {
	enum vm_state state; /* VM_UNKNOWN: no usable word */
	const char *node;    /* "" none */
	uint64_t bytes;
	int64_t last_wake_ms; /* -1: not said */
	const char *error;    /* with VM_ERROR, or NULL */
	/* A claim's trigger, for the node it names. */
	enum wk_trigger trigger;
	const char *client;
	double at;
};

/* The effects that need the loop, libvirt or etcd; the daemon's (wake.c) or a test's. */
struct vm_ops {
	void (*submit)(struct odrsd *d, struct vm *vm, enum virt_op op);
	/* 0 once the claim is on its way (its answer calls vm_on_claim), or -errno, why in err. */
	int (*claim)(struct odrsd *d, struct vm *vm, char *err, size_t errlen);
	/* Whether the registry has a word on vm; it then calls vm_on_registry. */
	bool (*adopt)(struct odrsd *d, struct vm *vm);
	/* Whether the registry was read once since start: until then it may know what this node does not. */
	bool (*registry_read)(const struct odrsd *d);
	bool (*store_ok)(const struct odrsd *d);
	/* Rate limits of automatic wakes; charges them when it says yes. */
	bool (*may_wake)(struct odrsd *d, struct vm *vm, enum wk_trigger t);
	double (*now)(const struct odrsd *d);
	void (*wake_timer)(struct odrsd *d, struct vm *vm, bool on);
	void (*recheck)(struct odrsd *d, struct vm *vm);
	void (*replay)(struct odrsd *d, struct vm *vm);
	void (*release)(struct odrsd *d, struct vm *vm);
	void (*pass_syns)(struct odrsd *d, struct vm *vm);
	void (*destroy)(struct odrsd *d, struct vm *vm); /* timers stopped, memory freed */
};

typedef void (*vm_observer_fn)(struct odrsd *d, struct vm *vm, const struct vm_change *c);

#define VM_OBSERVERS_MAX 8
struct vm_life {
	const struct vm_ops *ops;
	vm_observer_fn observers[VM_OBSERVERS_MAX];
	unsigned nobservers;
};

/* d's lifecycle uses life (the caller's storage) with ops and no observers yet. */
void vm_life_init(struct odrsd *d, struct vm_life *life, const struct vm_ops *ops);
/* Told of every transition, in registration order. 0 or -ENOSPC. */
int vm_observe(struct odrsd *d, vm_observer_fn fn);

/* Apply the rule for in->ev in vm's state: 0, or -errno with the reason in err (may be NULL). */
int vm_fire(struct odrsd *d, struct vm *vm, const struct vm_input *in, char *err, size_t errlen);

/* Inputs. */
void vm_inspect(struct odrsd *d, struct vm *vm); /* inspect again now (unless a job runs) */
/* Its recheck time came (VM_FX_RECHECK): inspect it again unless a job runs or it left error. */
void vm_recheck(struct odrsd *d, struct vm *vm);
int vm_request_wake(struct odrsd *d, struct vm *vm, enum wk_trigger t, const char *client, char *err,
		    size_t errlen);
int vm_request_hibernate(struct odrsd *d, struct vm *vm, const char *reason, char *err, size_t errlen);
int vm_request_doze(struct odrsd *d, struct vm *vm, const char *reason, char *err, size_t errlen);
/* An inspect, save, restore, doze or resume of vm ended (on the loop). */
void vm_on_job_done(struct odrsd *d, struct vm *vm, const struct virt_job *job);
/*
 * A job of op that could not start (no memory for it: err, why): it ends as
 * a failed job that left the domain as it was (on the loop, never from submit).
 */
void vm_on_job_unstarted(struct odrsd *d, struct vm *vm, enum virt_op op, int err, const char *why);
enum vm_claim { VM_CLAIM_WON, VM_CLAIM_LOST, VM_CLAIM_REFUSED };
/* A claim's answer: won for target, lost, or refused with err. */
void vm_on_claim(struct odrsd *d, struct vm *vm, enum vm_claim result, const char *target, int err);
/* The registry's word on vm; false when the table has nothing to follow (ignored, or a job runs). */
bool vm_on_registry(struct odrsd *d, struct vm *vm, const struct vm_proposal *p);
void vm_on_wake_timeout(struct odrsd *d, struct vm *vm);
/* Dropped from the configuration: freed now, or once its running job ends. */
void vm_free(struct odrsd *d, struct vm *vm);

/* Questions. */
/*
 * A VM in error is inspected again this long after it got there: 2 s, then
 * twice as long after each recheck that finds it in error again, at most
 * 5 minutes (odrsd(8)).
 */
#define VM_RECHECK_FIRST_S 2.0
#define VM_RECHECK_MAX_S   300.0
double vm_recheck_delay(const struct vm *vm);
const char *vm_state_name(enum vm_state s);
bool vm_is_asleep(const struct vm *vm);
/*
 * Whether this node answers ARP and NDP and takes the SYNs for vm: the accept
 * node for a VM asleep anywhere, but only its own node for a dozing one, up to
 * the end of its resume (its frames still reach that node; nothing retrains
 * them).
 */
bool vm_stood_in_here(const struct odrsd *d, const struct vm *vm);
/* Whether this node runs, saves or restores vm (always, without a cluster). */
bool vm_is_local(const struct odrsd *d, const struct vm *vm);

#endif
