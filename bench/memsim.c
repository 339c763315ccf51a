/*
 * memsim: how much guest memory automatic hibernation saves, simulated, for
 * bench/memsaved.sh (the paper's Fig. 4: memory saved against the mean
 * interval between accesses).
 *
 *   memsim -c CONFIG -I "I1 I2 ..." [-d DURATION_S=1800] [-w WARMUP_S=0]
 *          [-n RUNS=200] [-r SEED=1] [-S SAVE_S=1] [-R RESTORE_S=1]
 *          [-P PROBE_S=0.2] [-A LATE_S=0.5] [-X] [-j JITTER=0] [-L LOAD=0.00]
 *          [-D DOZE_S=1.5] [-U RESUME_S=0.05] [-F DOZE_FREED=0.72]
 *          [-p "PROCESSES"] [-t TRACE] [-l LABEL]
 *
 * The node is the one CONFIG describes, read with libwake's wk_config_load:
 * its [vm] sections are the VMs, each with its own policy (idle_timeout,
 * probe, load_threshold, protect), and [odrsd]'s check_interval,
 * wake_concurrency, hibernate_concurrency and wake_spacing. Each run
 * simulates that node for DURATION_S seconds, events in time order, doing
 * what odrsd/idle.c and odrsd/wake.c do:
 *
 *   - one idle timer for all VMs, every check_interval (its phase random per
 *     run); a running VM with no job or probe whose last TCP activity is at
 *     least its idle_timeout old is pending, and is acted on
 *     ACTIVITY_DELAY_MS + 50 ms later (odrsd/odrsd.h) if it still is;
 *   - acting: probe = none hibernates at once; otherwise a probe (one worker,
 *     PROBE_S) whose output, a synthetic guest's "cat /proc/loadavg
 *     /proc/[0-9]*\/comm" (load LOAD, processes PROCESSES), is judged by
 *     libwake's wk_idle_judge after the VM is checked to be still idle;
 *   - a save (hibernate_concurrency workers, SAVE_S); an access while it
 *     runs wakes the VM as soon as it is done (wake_wanted);
 *   - an access to a hibernated VM starts a restore (wake_concurrency
 *     workers, wake_spacing between starts, RESTORE_S); the VM runs when it
 *     is done, with its activity clock reset then (vm_runs_here) and again
 *     by the access's own exchange, which follows at once;
 *   - an access to a running VM resets its activity clock;
 *   - a VM whose sleep (its policy) is doze or doze_then_hibernate dozes
 *     instead of the save: a doze job on the save workers (DOZE_S), then
 *     it is dozing; an access starts a resume on the wake workers
 *     (RESUME_S); with doze_then_hibernate, the idle timer hibernates a VM
 *     dozing for hibernate_after (a save, SAVE_S), as idle.c does.
 *
 * The activity clock is set when the activity capture hands the frame over:
 * up to ACTIVITY_DELAY_MS late (LATE_S, uniform; -A 0 for at once). A check
 * or confirmation before that does not know of the frame. -X: a frame is
 * lost when the activity capture is swapped (capture.c's capture_swap, on
 * every change of the set of running VMs: a hibernate_start, a wake's end)
 * between its arrival and its hand-over, as a frame still in the old
 * handle's unfinished block is.
 *
 * Accesses to each VM are a Poisson process with mean interval I, or, with
 * -t, the ones TRACE lists, one "VM SECONDS" a line (a lab's accesses,
 * replayed in every run; I then only names the row). All VMs start running,
 * just accessed, at time 0. Memory counts as saved while a
 * VM is hibernated: from the end of its save (hibernate_done) to the access
 * that wakes it (wake_start); while it dozes, DOZE_FREED of it (the share
 * of guest RAM out of RAM, net of what a zram device keeps compressed: a
 * lab's measure), from doze_done to the access or the hibernate_done of
 * doze_then_hibernate. The VMs' memory sizes are not in the
 * configuration: every VM weighs the same.
 * SAVE_S and RESTORE_S may be lists ("2.1,2.5,4.0", the durations a lab
 * measured): each save or restore then takes one of them, drawn at random.
 * JITTER spreads the durations uniformly by +-JITTER of themselves. Only
 * [WARMUP_S, DURATION_S] is counted.
 *
 * Prints CSV, one line per I (seconds):
 *   label,T_s,I_s,T_over_I,check_s,save_s,restore_s,runs,vms,duration_s,warmup_s,
 *   saved_pct,stderr_pct,ideal_pct,approx_pct,hib_per_vm_h,woke_pct,lost_pct,early_pct,wait_ms
 * with T the mean idle_timeout of the VMs (each VM's own is used); save_s and
 * restore_s the means of their lists; stderr the standard error of the mean
 * over runs; ideal = e^(-T/I), the long-run fraction of time asleep when
 * sleep starts exactly T after the last access and saves and restores take
 * no time (each gap between accesses, mean I, sleeps I e^(-T/I) on average);
 * approx = the same renewal argument with the overheads: a cycle is the wait
 * for a gap of tau without access ((e^(tau/I) - 1) I on average), the save S,
 * asleep until the next access (I, unless one came during the save:
 * probability 1 - e^(-S/I)), the wake R; so
 * approx = e^(-S/I) / (e^(tau/I) - 1 + (S+R)/I + e^(-S/I)) with
 * tau = T + LATE_S/2 + check/2 + confirm (+ probe), for VMs that hibernate
 * (empty when any VM dozes); hib_per_vm_h = idle sleeps (hibernations or
 * dozes) per VM and hour; woke_pct = the accesses that found their VM
 * not running;
 * lost_pct = the accesses to a running VM whose activity was lost (-X);
 * early_pct = the hibernations that started sooner than idle_timeout plus
 * the confirmation after the VM's last access (odrsd had not seen it);
 * wait_ms = the mean time from an access that found its VM asleep to the VM
 * running (the later accesses of the same wake wait less: not counted).
 * Exit: 0, 1 a bad configuration, 2 usage.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wake/config.h>
#include <wake/policy.h>

#include "odrsd.h" /* enum vm_state, ACTIVITY_DELAY_MS: the daemon's own */

/* idle.c's idle_confirm timer: this long after a check that found VMs idle. */
#define CONFIRM_S ((ACTIVITY_DELAY_MS + 50) / 1000.)

enum ev_type { EV_ACCESS, EV_TICK, EV_CONFIRM, EV_JOB_DONE, EV_SEEN };
/* The first NQUEUES are also virt.c's worker queues: a resume waits with restores, a doze with saves. */
enum job_op { JOB_RESTORE = 0, JOB_SAVE, JOB_PROBE, JOB_DOZE, JOB_RESUME };
#define NQUEUES 3

struct event {
	double t;
	uint64_t seq; /* ties in time: in the order they were scheduled */
	enum ev_type type;
	int vm;
	enum job_op op;
	double at; /* EV_SEEN: when the frame was on the wire */
};

struct heap {
	struct event *e;
	size_t n, cap;
	uint64_t seq;
};

struct simvm {
	const struct wk_vmconf *c;
	enum vm_state state;
	double last; /* last TCP activity, as odrsd knows it */
	double wire; /* last TCP frame on the wire */
	bool job_busy, probing, pending, wake_wanted;
	bool asleep;	 /* its memory is freed (freed of it) since slept_at */
	double slept_at; /* hibernate_done or doze_done */
	double freed;	 /* 1 hibernated, doze_freed dozing */
	double dozed_at; /* doze_done, while VM_DOZING (and saved from it) */
	double saved;	 /* seconds hibernated inside the window (a doze's weighted) */
	unsigned long hibernations, accesses, woke, seen, lost, early;
	double waiting_since; /* the first access that found it asleep; -1: none waits */
	double waited;	      /* seconds from such accesses to running, inside the window */
	unsigned long waits;  /* how many */
};

struct queued_job {
	int vm;
	enum job_op op;
};

struct queue {
	struct queued_job *job; /* FIFO */
	size_t head, n, cap;
	unsigned free; /* idle workers */
};

struct sim {
	const struct wk_config *cfg;
	struct simvm *vm;
	size_t nvm;
	struct heap h;
	struct queue q[NQUEUES];
	double next_restore_at;
	double now, end, warmup, interval;
	double last_swap; /* the activity capture's last swap */
	uint64_t rng;
	bool confirm_active;
};

/* A duration: one value, or a list of them to draw from. */
struct dur {
	double *v;
	size_t n;
	double mean;
};

static struct dur save_d = { NULL, 0, 1 }, restore_d = { NULL, 0, 1 }, doze_d = { NULL, 0, 1.5 },
		  resume_d = { NULL, 0, 0.05 };
static double doze_freed = 0.72;
static double probe_s = 0.2, late_s = ACTIVITY_DELAY_MS / 1000., jitter = 0, load = 0;
static bool lose_on_swap;
/* -t: the accesses to replay, in the file's order. */
static struct access {
	int vm;
	double t;
} * trace;
static size_t ntrace;
static const char *processes = "init sh httpd qemu-ga";
static char probe_out[4096];
static size_t probe_len;

static void die(const char *msg)
{
	fprintf(stderr, "memsim: %s\n", msg);
	exit(1);
}

/* splitmix64: small, and the same numbers everywhere for the same seed. */
static double uniform(struct sim *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return ((z >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
}

static double expo(struct sim *s, double mean)
{
	return -mean * log(uniform(s));
}

static double service(struct sim *s, double base)
{
	return jitter > 0 ? base * (1 + jitter * (2 * uniform(s) - 1)) : base;
}

/* "2.5" or "2.1,2.5,4.0": 0, or -1 when a value is not a number >= 0. */
static int parse_dur(const char *arg, struct dur *d)
{
	char *list = strdup(arg), *tok, *save_ptr, *end;
	double sum = 0;

	if (!list)
		die("out of memory");
	d->n = 0;
	for (tok = strtok_r(list, ", ", &save_ptr); tok; tok = strtok_r(NULL, ", ", &save_ptr)) {
		if (!(d->v = realloc(d->v, (d->n + 1) * sizeof(*d->v))))
			die("out of memory");
		d->v[d->n] = strtod(tok, &end);
		if (end == tok || *end || d->v[d->n] < 0) {
			free(list);
			return -1;
		}
		sum += d->v[d->n++];
	}
	free(list);
	if (!d->n)
		return -1;
	d->mean = sum / d->n;
	return 0;
}

static void push_at(struct sim *s, double t, enum ev_type type, int vm, enum job_op op, double at)
{
	struct heap *h = &s->h;
	size_t i;

	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 256;
		if (!(h->e = realloc(h->e, h->cap * sizeof(*h->e))))
			die("out of memory");
	}
	i = h->n++;
	h->e[i] = (struct event){ t, h->seq++, type, vm, op, at };
	while (i > 0) {
		size_t p = (i - 1) / 2;
		struct event tmp;
		if (h->e[p].t < h->e[i].t || (h->e[p].t == h->e[i].t && h->e[p].seq < h->e[i].seq))
			break;
		tmp = h->e[p], h->e[p] = h->e[i], h->e[i] = tmp;
		i = p;
	}
}

static void push(struct sim *s, double t, enum ev_type type, int vm, enum job_op op)
{
	push_at(s, t, type, vm, op, 0);
}

static bool before(const struct event *a, const struct event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static struct event pop(struct sim *s)
{
	struct heap *h = &s->h;
	struct event top = h->e[0];
	size_t i = 0;

	h->e[0] = h->e[--h->n];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct event tmp;
		if (l < h->n && before(&h->e[l], &h->e[m]))
			m = l;
		if (r < h->n && before(&h->e[r], &h->e[m]))
			m = r;
		if (m == i)
			break;
		tmp = h->e[m], h->e[m] = h->e[i], h->e[i] = tmp;
		i = m;
	}
	return top;
}

/* A TCP frame of VM i on the wire now: odrsd learns of it when the activity capture hands it over. */
static void frame(struct sim *s, int i)
{
	struct simvm *v = &s->vm[i];

	v->wire = s->now;
	if (late_s > 0)
		push_at(s, s->now + late_s * uniform(s), EV_SEEN, i, 0, s->now);
	else if (s->now > v->last)
		v->last = s->now;
}

/* idle.c's idle_note_tcp, unless the frame went down with a swapped capture. */
static void on_seen(struct sim *s, const struct event *e)
{
	struct simvm *v = &s->vm[e->vm];
	bool counted = e->at >= s->warmup;

	if (lose_on_swap && s->last_swap > e->at) {
		v->lost += counted;
		return;
	}
	v->seen += counted;
	if (s->now > v->last)
		v->last = s->now;
}

static double draw(struct sim *s, const struct dur *d)
{
	size_t i;

	if (d->n < 2)
		return d->mean;
	i = (size_t)(uniform(s) * d->n);
	return d->v[i < d->n ? i : d->n - 1];
}

static enum job_op queue_of(enum job_op op)
{
	return op == JOB_RESUME ? JOB_RESTORE : op == JOB_DOZE ? JOB_SAVE : op;
}

/* A worker takes the job: virt.c's worker_run, restore spacing included. */
static void job_start(struct sim *s, enum job_op op, int vm)
{
	double start = s->now, base = op == JOB_RESTORE	 ? draw(s, &restore_d)
				      : op == JOB_SAVE	 ? draw(s, &save_d)
				      : op == JOB_DOZE	 ? draw(s, &doze_d)
				      : op == JOB_RESUME ? draw(s, &resume_d)
							 : probe_s;
	uint64_t spacing = s->cfg->wake_spacing_ms;

	s->q[queue_of(op)].free--;
	if (op == JOB_RESTORE && spacing) {
		start = s->now > s->next_restore_at ? s->now : s->next_restore_at;
		s->next_restore_at = start + spacing / 1000.;
	}
	push(s, start + service(s, base), EV_JOB_DONE, vm, op);
}

static void job_submit(struct sim *s, enum job_op op, int vm)
{
	struct queue *q = &s->q[queue_of(op)];

	if (q->free) {
		job_start(s, op, vm);
		return;
	}
	if (q->n == q->cap) {
		struct queued_job *nv = malloc((q->cap ? 2 * q->cap : 16) * sizeof(*nv));
		if (!nv)
			die("out of memory");
		for (size_t i = 0; i < q->n; i++)
			nv[i] = q->job[(q->head + i) % (q->cap ? q->cap : 1)];
		free(q->job);
		q->job = nv, q->head = 0, q->cap = q->cap ? 2 * q->cap : 16;
	}
	q->job[(q->head + q->n++) % q->cap] = (struct queued_job){ vm, op };
}

/* Memory saved: the part of [slept_at, now] inside the window, weighted by the share freed. */
static void awake(struct sim *s, struct simvm *v)
{
	double a = v->slept_at > s->warmup ? v->slept_at : s->warmup, b = s->now < s->end ? s->now : s->end;

	if (v->asleep && b > a)
		v->saved += v->freed * (b - a);
	v->asleep = false;
}

/* Its memory is freed from now on, this share of it. */
static void asleep(struct sim *s, struct simvm *v, double freed)
{
	awake(s, v);
	v->asleep = true;
	v->slept_at = s->now;
	v->freed = freed;
}

static void sim_wake_start(struct sim *s, int i)
{
	struct simvm *v = &s->vm[i];

	if (v->state == VM_HIBERNATING || v->state == VM_DOZING_OFF) {
		v->wake_wanted = true;
		return;
	}
	if (v->state != VM_HIBERNATED && v->state != VM_DOZING)
		return;
	awake(s, v);
	v->job_busy = true;
	job_submit(s, v->state == VM_DOZING ? JOB_RESUME : JOB_RESTORE, i);
	v->state = VM_WAKING;
}

static void sim_hibernate_start(struct sim *s, int i)
{
	struct simvm *v = &s->vm[i];

	bool doze = v->c->policy.sleep != WK_SLEEP_HIBERNATE;

	if (v->state != VM_RUNNING || v->job_busy)
		return;
	v->state = doze ? VM_DOZING_OFF : VM_HIBERNATING;
	v->wake_wanted = false;
	v->job_busy = true;
	s->last_swap = s->now;
	if (s->now >= s->warmup) {
		v->hibernations++;
		if (s->now - v->wire < v->c->policy.idle_timeout_ms / 1000. + CONFIRM_S)
			v->early++;
	}
	job_submit(s, doze ? JOB_DOZE : JOB_SAVE, i);
}

/* idle.c's hibernate_dozing: doze_then_hibernate, dozing for hibernate_after. */
static void sim_hibernate_dozing(struct sim *s, int i)
{
	struct simvm *v = &s->vm[i];

	if (v->state != VM_DOZING || v->c->policy.sleep != WK_SLEEP_DOZE_THEN_HIBERNATE || v->job_busy ||
	    s->now - v->dozed_at < v->c->policy.hibernate_after_ms / 1000.)
		return;
	v->state = VM_HIBERNATING; /* its memory stays out meanwhile */
	v->job_busy = true;
	job_submit(s, JOB_SAVE, i);
}

static bool idle_for(const struct sim *s, const struct simvm *v)
{
	return s->now - v->last >= v->c->policy.idle_timeout_ms / 1000.;
}

static bool idle_candidate(const struct sim *s, const struct simvm *v)
{
	return v->state == VM_RUNNING && v->c->policy.idle_timeout_ms && !v->job_busy && !v->probing &&
	       idle_for(s, v);
}

/* The guest probe has answered: idle.c's idle_probe_done, with the same judge. */
static void sim_probe_done(struct sim *s, int i)
{
	struct simvm *v = &s->vm[i];
	const char *process;
	double l;

	v->probing = false;
	if (v->state != VM_RUNNING || !idle_for(s, v))
		return;
	if (wk_idle_judge(&v->c->policy, probe_out, probe_len, &l, &process) == WK_IDLE)
		sim_hibernate_start(s, i);
}

static void sim_job_done(struct sim *s, const struct event *e)
{
	struct simvm *v = &s->vm[e->vm];
	struct queue *q = &s->q[queue_of(e->op)];

	q->free++;
	if (q->n) {
		struct queued_job next = q->job[q->head];
		q->head = (q->head + 1) % q->cap, q->n--;
		job_start(s, next.op, next.vm);
	}
	if (e->op == JOB_PROBE) {
		sim_probe_done(s, e->vm);
		return;
	}
	v->job_busy = false;
	if (e->op == JOB_SAVE || e->op == JOB_DOZE) {
		v->state = e->op == JOB_SAVE ? VM_HIBERNATED : VM_DOZING;
		asleep(s, v, e->op == JOB_SAVE ? 1 : doze_freed);
		if (e->op == JOB_DOZE)
			v->dozed_at = s->now;
		if (v->wake_wanted) {
			v->wake_wanted = false;
			sim_wake_start(s, e->vm);
		}
	} else {
		v->state = VM_RUNNING;
		if (v->waiting_since >= s->warmup)
			v->waited += s->now - v->waiting_since, v->waits++;
		v->waiting_since = -1;
		v->last = s->now; /* vm_runs_here */
		s->last_swap = s->now;
		frame(s, e->vm); /* the replayed SYN's exchange */
	}
}

static void on_access(struct sim *s, int i)
{
	struct simvm *v = &s->vm[i];

	if (s->now >= s->warmup) {
		v->accesses++;
		if (v->state != VM_RUNNING)
			v->woke++;
	}
	if (v->state != VM_RUNNING && v->waiting_since < 0)
		v->waiting_since = s->now;
	/* The activity capture; a sleeping VM's clock is reset on waking. */
	if (v->state == VM_RUNNING)
		frame(s, i);
	else
		sim_wake_start(s, i);
	if (!trace)
		push(s, s->now + expo(s, s->interval), EV_ACCESS, i, 0);
}

static void on_tick(struct sim *s)
{
	bool any = false;

	for (size_t i = 0; i < s->nvm; i++) {
		s->vm[i].pending = idle_candidate(s, &s->vm[i]);
		any = any || s->vm[i].pending;
		sim_hibernate_dozing(s, (int)i);
	}
	if (any && !s->confirm_active) {
		s->confirm_active = true;
		push(s, s->now + CONFIRM_S, EV_CONFIRM, -1, 0);
	}
	push(s, s->now + s->cfg->check_interval_ms / 1000., EV_TICK, -1, 0);
}

static void on_confirm(struct sim *s)
{
	s->confirm_active = false;
	for (size_t i = 0; i < s->nvm; i++) {
		struct simvm *v = &s->vm[i];
		if (v->pending && idle_candidate(s, v)) {
			if (v->c->policy.probe == WK_PROBE_NONE) {
				sim_hibernate_start(s, (int)i);
			} else {
				v->probing = true;
				job_submit(s, JOB_PROBE, (int)i);
			}
		}
		v->pending = false;
	}
}

struct result {
	double saved, hib, accesses, woke, seen, lost, early, waited, waits;
};

static struct result run(const struct wk_config *cfg, double interval, double duration, double warmup,
			 uint64_t seed)
{
	struct sim s = { .cfg = cfg,
			 .nvm = cfg->nvms,
			 .end = duration,
			 .warmup = warmup,
			 .interval = interval,
			 .rng = seed };
	struct result r = { 0 };

	if (!(s.vm = calloc(s.nvm, sizeof(*s.vm))))
		die("out of memory");
	s.q[JOB_RESTORE].free = cfg->wake_concurrency;
	s.q[JOB_SAVE].free = cfg->hibernate_concurrency;
	s.q[JOB_PROBE].free = 1; /* virt.c: one probe worker */
	for (size_t i = 0; i < s.nvm; i++) {
		s.vm[i] = (struct simvm){ .c = &cfg->vms[i], .state = VM_RUNNING, .waiting_since = -1 };
		if (!trace)
			push(&s, expo(&s, interval), EV_ACCESS, (int)i, 0);
	}
	for (size_t k = 0; k < ntrace; k++)
		push(&s, trace[k].t, EV_ACCESS, trace[k].vm, 0);
	push(&s, uniform(&s) * cfg->check_interval_ms / 1000., EV_TICK, -1, 0);
	while (s.h.n) {
		struct event e = pop(&s);
		if (e.t > duration)
			break;
		s.now = e.t;
		switch (e.type) {
		case EV_ACCESS:
			on_access(&s, e.vm);
			break;
		case EV_TICK:
			on_tick(&s);
			break;
		case EV_CONFIRM:
			on_confirm(&s);
			break;
		case EV_JOB_DONE:
			sim_job_done(&s, &e);
			break;
		case EV_SEEN:
			on_seen(&s, &e);
			break;
		}
	}
	s.now = duration;
	for (size_t i = 0; i < s.nvm; i++) {
		struct simvm *v = &s.vm[i];
		awake(&s, v);
		r.saved += v->saved;
		r.hib += v->hibernations;
		r.accesses += v->accesses;
		r.woke += v->woke;
		r.seen += v->seen;
		r.lost += v->lost;
		r.early += v->early;
		r.waited += v->waited;
		r.waits += v->waits;
	}
	r.saved /= s.nvm * (duration - warmup);
	free(s.vm);
	free(s.h.e);
	for (int i = 0; i < NQUEUES; i++)
		free(s.q[i].job);
	return r;
}

static void load_trace(const char *path, const struct wk_config *cfg)
{
	FILE *f = fopen(path, "r");
	char name[128];
	double t;

	if (!f)
		die("cannot open the trace");
	while (fscanf(f, "%127s %lf", name, &t) == 2) {
		size_t i;
		for (i = 0; i < cfg->nvms && strcmp(cfg->vms[i].name, name); i++)
			;
		if (i == cfg->nvms)
			die("the trace names a VM the configuration does not have");
		if (!(trace = realloc(trace, (ntrace + 1) * sizeof(*trace))))
			die("out of memory");
		trace[ntrace++] = (struct access){ (int)i, t };
	}
	fclose(f);
}

static void diag(void *ctx, const char *file, unsigned line, const char *msg)
{
	fprintf(stderr, "%s:%u: %s\n", file, line, msg);
}

static void usage(void)
{
	fprintf(stderr, "usage: memsim -c CONFIG -I \"I1 I2 ...\" [-d DURATION_S] [-w WARMUP_S] [-n RUNS]\n"
			"              [-r SEED] [-S SAVE_S] [-R RESTORE_S] [-P PROBE_S] [-A LATE_S] [-X] "
			"[-j JITTER]\n"
			"              [-L LOAD] [-D DOZE_S] [-U RESUME_S] [-F DOZE_FREED] [-p PROCESSES]\n"
			"              [-t TRACE] [-l LABEL]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *conf = NULL, *intervals = NULL, *label = "sim", *trace_path = NULL;
	double duration = 1800, warmup = 0;
	unsigned long runs = 200;
	uint64_t seed = 1;
	struct wk_config *cfg;
	char *list, *tok, *save;
	int o, n;

	while ((o = getopt(argc, argv, "c:I:d:w:n:r:S:R:P:A:Xj:L:D:U:F:p:t:l:")) != -1) {
		switch (o) {
		case 'c':
			conf = optarg;
			break;
		case 'I':
			intervals = optarg;
			break;
		case 'd':
			duration = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'n':
			runs = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			seed = strtoull(optarg, NULL, 10);
			break;
		case 'S':
			if (parse_dur(optarg, &save_d) < 0)
				usage();
			break;
		case 'R':
			if (parse_dur(optarg, &restore_d) < 0)
				usage();
			break;
		case 'P':
			probe_s = atof(optarg);
			break;
		case 'D':
			if (parse_dur(optarg, &doze_d) < 0)
				usage();
			break;
		case 'U':
			if (parse_dur(optarg, &resume_d) < 0)
				usage();
			break;
		case 'F':
			doze_freed = atof(optarg);
			break;
		case 'A':
			late_s = atof(optarg);
			break;
		case 'X':
			lose_on_swap = true;
			break;
		case 'j':
			jitter = atof(optarg);
			break;
		case 'L':
			load = atof(optarg);
			break;
		case 'p':
			processes = optarg;
			break;
		case 't':
			trace_path = optarg;
			break;
		case 'l':
			label = optarg;
			break;
		default:
			usage();
		}
	}
	if (!conf || !intervals || optind != argc || runs < 1 || duration <= warmup || warmup < 0 ||
	    probe_s < 0 || late_s < 0 || jitter < 0 || jitter >= 1 || doze_freed < 0 || doze_freed > 1)
		usage();
	if (wk_config_load(conf, diag, NULL, &cfg) < 0)
		return 1;
	if (cfg->nvms == 0)
		die("the configuration has no [vm] section");
	if (trace_path)
		load_trace(trace_path, cfg);

	/* The synthetic guest's probe output, as WK_PROBE_COMMAND prints it. */
	n = snprintf(probe_out, sizeof(probe_out), "%.2f %.2f %.2f 1/40 321\n", load, load, load);
	list = strdup(processes);
	for (tok = strtok_r(list, " ", &save); tok && n < (int)sizeof(probe_out) - 64;
	     tok = strtok_r(NULL, " ", &save))
		n += snprintf(probe_out + n, sizeof(probe_out) - (size_t)n, "%s\n", tok);
	free(list);
	probe_len = (size_t)n;

	printf("label,T_s,I_s,T_over_I,check_s,save_s,restore_s,runs,vms,duration_s,warmup_s,"
	       "saved_pct,stderr_pct,ideal_pct,approx_pct,hib_per_vm_h,woke_pct,lost_pct,early_pct,"
	       "wait_ms\n");
	list = strdup(intervals);
	for (tok = strtok_r(list, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
		double I = atof(tok), sum = 0, sum2 = 0, hib = 0, acc = 0, woke = 0, seen = 0, lost = 0,
		       early = 0, waited = 0, waits = 0;
		double T = 0, ideal = 0, approx = 0, check = cfg->check_interval_ms / 1000.;
		char approx_s[32] = "";

		if (I <= 0)
			usage();
		for (unsigned long k = 0; k < runs; k++) {
			struct result r = run(cfg, I, duration, warmup, seed * 1000003ULL + k);
			sum += r.saved, sum2 += r.saved * r.saved;
			hib += r.hib, acc += r.accesses, woke += r.woke, seen += r.seen, lost += r.lost,
				early += r.early, waited += r.waited, waits += r.waits;
		}
		for (size_t i = 0; i < cfg->nvms; i++) {
			const struct wk_policy *p = &cfg->vms[i].policy;
			double t = p->idle_timeout_ms / 1000.;
			double tau = t + late_s / 2 + check / 2 + CONFIRM_S +
				     (p->probe == WK_PROBE_NONE ? 0 : probe_s);
			T += t / cfg->nvms;
			if (p->sleep != WK_SLEEP_HIBERNATE)
				approx = NAN;
			if (!t)
				continue;
			ideal += exp(-t / I) / cfg->nvms;
			approx += exp(-save_d.mean / I) /
				  (exp(tau / I) - 1 + (save_d.mean + restore_d.mean) / I +
				   exp(-save_d.mean / I)) /
				  cfg->nvms;
		}
		{
			double mean = sum / runs;
			double var = runs > 1 ? (sum2 - runs * mean * mean) / (runs - 1) : 0;
			if (!isnan(approx))
				snprintf(approx_s, sizeof(approx_s), "%.2f", 100 * approx);
			printf("%s,%g,%g,%.4f,%g,%g,%g,%lu,%zu,%g,%g,%.2f,%.2f,%.2f,%s,%.2f,%.1f,%.1f,%."
			       "1f,%.0f\n",
			       label, T, I, T / I, check, save_d.mean, restore_d.mean, runs, cfg->nvms,
			       duration, warmup, 100 * mean, 100 * sqrt(var > 0 ? var / runs : 0),
			       100 * ideal, approx_s, hib / (runs * cfg->nvms * (duration - warmup) / 3600),
			       acc ? 100 * woke / acc : 0, seen + lost ? 100 * lost / (seen + lost) : 0,
			       hib ? 100 * early / hib : 0, waits ? 1000 * waited / waits : 0);
		}
	}
	free(list);
	wk_config_free(cfg);
	free(save_d.v);
	free(trace);
	free(restore_d.v);
	return 0;
}
