/*
 * Cluster mode: etcd holds all the nodes share, under /odrs/:
 *
 *   /odrs/node/NODE  {"score","load","mem","lease"}   under NODE's lease: it lives, this loaded
 *   /odrs/accept     {"node","term","since"}          under the holder's lease: the accept role
 *   /odrs/vm/NAME    {"state","node","ip","mac",...}  the registry, written by the node that
 *                                                     runs, saves or restores NAME, and by the
 *                                                     claim of its wake (a transaction)
 *   /odrs/syn/NAME   {"frames":[base64, ...]}         SYNs the accept node holds for a wake
 *                                                     on another node
 *
 * Every node reads it all at start and then follows one watch, so whatever a
 * node says (a VM went to sleep) reaches the accept node, whoever holds the
 * role at that moment. A node that loses etcd makes no claims and puts no VM
 * to sleep.
 *
 * Fencing: a node's lease, and the accept role under it, may be gone in etcd
 * once lease_ttl has passed since the last renewal etcd acknowledged. By then
 * another node may hold the role, so this node stops acting for the cluster
 * at that deadline, a margin early, measured on its own clock from when that
 * renewal was sent: no ARP/NDP answers, no held SYNs, no retraining. Its own
 * VMs are not touched. A renewal that works again lifts the fence, and the
 * node reads the store afresh before it takes any role.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "etcd.h"
#include "evlog.h"
#include "log.h"
#include "odrsd.h"

#define PFX		"/odrs/"
#define NODE_PFX	PFX "node/"
#define VM_PFX		PFX "vm/"
#define SYN_PFX		PFX "syn/"
#define ACCEPT_KEY	PFX "accept"
#define ETCD_TIMEOUT_MS 2000
#define ELECTION_STEP	0.3 /* seconds between the ranks that try for a free role */
#define RESYNC_DELAY	1.0
#define FENCE_MARGIN	0.5 /* seconds before lease_ttl runs out; at most a tenth of it */
/* A VM's change republishes the node's score this much later: one sum over all VMs per burst. */
#define RESCORE_DELAY 0.1
/*
 * Registry keys go out this many VMs to a transaction (two operations each at
 * most, within etcd's default --max-txn-ops of 128), one transaction at a
 * time: start-up's 100,000 VMs are not 100,000 requests at once, which left
 * the lease's keepalive waiting behind them until the node was fenced. One at
 * a time also keeps a VM's writes in order.
 */
#define REG_BATCH 64
/*
 * The store is read this many keys to a request, every page at the first
 * one's revision: the whole registry in one answer (25 MB for 100,000 VMs)
 * took 1.4 s of the 2 s timeout on a loaded machine.
 */
#define SYNC_PAGE 10000

struct peer {
	char node[64];
	double score;
	int64_t lease;
};

struct cluster {
	struct odrsd *d;
	struct etcd *etcd;
	bool ok;	/* the last request to etcd worked */
	bool watching;	/* our view follows the store */
	bool read_once; /* the store was read since start: the registry's word is known */
	bool syncing, granting;
	bool fenced;	   /* our lease may have run out: acting for nobody but ourselves */
	int64_t lease;	   /* ours; 0 while none */
	ev_tstamp renewed; /* when the last renewal etcd acknowledged was sent */
	ev_timer fence;	   /* renewed + lease_ttl - margin */
	ev_timer beat;	   /* a third of lease_ttl: keep the lease, publish the score */
	ev_timer resync;   /* after a failure: read it all again, watch again */
	ev_timer election; /* the role is free: try after our rank's delay */
	ev_timer term;	   /* we hold the role: hand it on after accept_term */
	ev_timer rescore;  /* a VM changed how loaded we are: publish the score (RESCORE_DELAY) */
	struct peer *peers;
	size_t npeers;
	char holder[64]; /* of the accept role; "" none */
	int64_t holder_rev, term_no, last_term;
	ev_tstamp since; /* the holder's term began (wall clock) */
	double score, load, mem;
	size_t reg_pending; /* VMs with reg_pending set; at most: a VM freed with it set is still counted */
	size_t reg_next;    /* in d->vms: where the next batch's search starts */
	bool reg_writing;   /* a batch is on its way */
	/* The read under way: the pages so far, copied, and their revision. */
	struct etcd_kv *sync_kvs;
	size_t sync_n, sync_cap;
	int64_t sync_rev;
};

/* A request that needs a VM when it completes names it: the VM may be gone by then. */
struct vm_req {
	struct cluster *c;
	char vm[128];
	char target[64];
};

bool cluster_on(const struct odrsd *d)
{
	return d->cluster != NULL;
}

bool cluster_store_ok(const struct odrsd *d)
{
	return !d->cluster || (d->cluster->ok && d->cluster->watching && !d->cluster->fenced);
}

bool cluster_registry_read(const struct odrsd *d)
{
	return !d->cluster || d->cluster->read_once;
}

bool cluster_fenced(const struct odrsd *d)
{
	return d->cluster && d->cluster->fenced;
}

/* Fenced, this node cannot know who holds the role now. */
const char *cluster_accept_holder(const struct odrsd *d, int64_t *term)
{
	*term = d->cluster && !d->cluster->fenced ? d->cluster->term_no : 0;
	return !d->cluster ? d->cfg->node : d->cluster->fenced ? "" : d->cluster->holder;
}

static int64_t now_ms(void)
{
	return (int64_t)(ev_time() * 1000);
}

static void note(struct cluster *c, int err, const char *what)
{
	if (err && c->ok)
		log_warn("etcd: %s: %s; no wake claims until it answers", what, strerror(-err));
	else if (!err && !c->ok)
		log_info("etcd: answering again");
	c->ok = err == 0;
}

static char *dump(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	return s;
}

static void put(struct cluster *c, const char *key, const char *value, int64_t lease, const char *del_key,
		etcd_txn_fn cb, void *ctx);

static void put_done(void *ctx, int err, bool succeeded, int64_t rev)
{
	note(ctx, err, "write");
}

/* Put key (and delete del_key) in one transaction; value NULL: out of memory, nothing sent. */
static void put(struct cluster *c, const char *key, const char *value, int64_t lease, const char *del_key,
		etcd_txn_fn cb, void *ctx)
{
	struct etcd_op ops[2] = {
		{ .key = key, .value = value, .lease = lease },
		{ .del = true, .key = del_key },
	};

	if (!value || etcd_txn(c->etcd, NULL, ops, del_key ? 2 : 1, cb ? cb : put_done, cb ? ctx : c) < 0)
		log_err("etcd: %s not written", key);
}

/* ---- load ---------------------------------------------------------------------- */

/*
 * The paper's rule: the higher of the load score (load average per CPU) and
 * the memory score (what this node's guests hold, over what it offers them).
 */
static void score_update(struct cluster *c)
{
	const struct wk_config *cfg = c->d->cfg;
	double la = 0, capacity = (double)cfg->memory_bytes, used = 0;
	long cpus = cfg->cpus ? (long)cfg->cpus : sysconf(_SC_NPROCESSORS_ONLN);
	struct sysinfo si;

	if (getloadavg(&la, 1) < 1)
		la = 0;
	if (!capacity && sysinfo(&si) == 0)
		capacity = (double)si.totalram * si.mem_unit;
	for (size_t i = 0; i < c->d->nvms; i++) {
		const struct vm *vm = c->d->vms[i];
		if (vm_is_local(c->d, vm) && vm->state != VM_HIBERNATED)
			used += (double)vm->mem_bytes;
	}
	c->load = la / (cpus > 0 ? (double)cpus : 1.);
	c->mem = capacity > 0 ? used / capacity : 0;
	c->score = fmax(c->load, c->mem);
}

static void node_publish(struct cluster *c)
{
	char key[128];

	if (!c->lease)
		return;
	score_update(c);
	snprintf(key, sizeof(key), NODE_PFX "%s", c->d->cfg->node);
	put(c, key,
	    dump(json_pack("{s:s, s:f, s:f, s:f, s:I}", "node", c->d->cfg->node, "score", c->score, "load",
			   c->load, "mem", c->mem, "lease", (json_int_t)c->lease)),
	    c->lease, NULL, NULL, NULL);
}

static struct peer *peer_find(const struct cluster *c, const char *node)
{
	for (size_t i = 0; i < c->npeers; i++)
		if (!strcmp(c->peers[i].node, node))
			return &c->peers[i];
	return NULL;
}

/* Lowest score, then name: every node ranks the same way. */
static bool peer_before(const struct peer *a, const struct peer *b)
{
	return a->score < b->score || (a->score == b->score && strcmp(a->node, b->node) < 0);
}

static const struct peer *least_loaded(struct cluster *c)
{
	const struct peer *best = NULL;

	for (size_t i = 0; i < c->npeers; i++)
		if (!best || peer_before(&c->peers[i], best))
			best = &c->peers[i];
	return best;
}

static void election_schedule(struct cluster *c);

bool cluster_node_lost(const struct odrsd *d, const char *node)
{
	const struct cluster *c = d->cluster;

	return c && c->watching && !c->fenced && node[0] && strcmp(node, d->cfg->node) && !peer_find(c, node);
}

/* Where the registry says: its QEMU (a dozing one's memory too) is on that node alone. */
static bool held_by_its_node(const struct vm *vm)
{
	return vm->state == VM_WAKING || vm->state == VM_RUNNING || vm->state == VM_DOZING;
}

bool vm_node_lost(const struct odrsd *d, const struct vm *vm)
{
	return held_by_its_node(vm) && cluster_node_lost(d, vm_text(vm->node));
}

/*
 * Its lease ran out (or it left). What the registry still has running,
 * being restored or dozing there stays so: only that node knows whether its
 * QEMU still runs, and a dozing VM's memory is in that QEMU (an older image
 * in snapshot_dir would lose what it did since), so nothing is taken over;
 * the operator is told.
 */
static void node_gone(struct cluster *c, const char *node)
{
	struct odrsd *d = c->d;
	json_t *vms = json_array();
	char names[512] = "";
	size_t used = 0;

	for (size_t i = 0; i < d->nvms; i++) {
		const struct vm *vm = d->vms[i];
		if (strcmp(vm_text(vm->node), node) || !held_by_its_node(vm))
			continue;
		json_array_append_new(vms, json_string(vm->name));
		if (used < sizeof(names))
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s (%s)",
						 used ? ", " : "", vm->name, vm_state_name(vm->state));
	}
	/* Our own key goes with our lease: we know what runs here. */
	if (!json_array_size(vms) || !strcmp(node, d->cfg->node)) {
		log_info("cluster: node %s left", node);
		json_decref(vms);
		return;
	}
	log_warn("cluster: node %s lost with VMs on it: %s; they stay as the registry says until %s returns",
		 node, names, node);
	evlog_emit("node_lost", NULL, json_pack("{s:s, s:o}", "lost_node", node, "vms", vms));
}

static void peer_apply(struct cluster *c, const char *node, bool deleted, const struct etcd_kv *kv)
{
	struct peer *p = peer_find(c, node), *grown;
	json_t *o;

	if (deleted) {
		if (p) {
			*p = c->peers[--c->npeers];
			node_gone(c, node);
		}
		return;
	}
	if (!p) {
		if (!(grown = realloc(c->peers, (c->npeers + 1) * sizeof(*grown))))
			return;
		c->peers = grown;
		p = memset(&c->peers[c->npeers++], 0, sizeof(*p));
		snprintf(p->node, sizeof(p->node), "%s", node);
		log_info("cluster: node %s joined", node);
	}
	p->lease = kv->lease;
	if ((o = json_loads(kv->value, 0, NULL)))
		p->score = json_number_value(json_object_get(o, "score"));
	json_decref(o);
	election_schedule(c);
}

/* ---- the accept role ------------------------------------------------------------- */

static void role_txn_done(void *ctx, int err, bool succeeded, int64_t rev)
{
	struct cluster *c = ctx;

	note(c, err, "accept role");
}

/* Put the role on node (under its lease), if the role is still as we saw it. */
static int role_give(struct cluster *c, const struct peer *to, int64_t term, etcd_txn_fn cb, void *ctx)
{
	struct etcd_cmp cmp = { .key = ACCEPT_KEY,
				.target = c->holder_rev ? ETCD_CMP_MOD : ETCD_CMP_CREATE,
				.revision = c->holder_rev };
	char *value = dump(json_pack("{s:s, s:I, s:I}", "node", to->node, "term", (json_int_t)term, "since",
				     (json_int_t)now_ms()));
	struct etcd_op op = { .key = ACCEPT_KEY, .value = value, .lease = to->lease };
	int r = value ? etcd_txn(c->etcd, &cmp, &op, 1, cb, ctx) : -ENOMEM;

	free(value);
	return r;
}

static void on_election(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster *c = w->data;
	struct peer *me = peer_find(c, c->d->cfg->node);

	if (c->holder[0] || !c->lease || !me || !c->watching || c->fenced)
		return;
	log_info("cluster: the accept role is free; taking it");
	if (role_give(c, me, c->last_term + 1, role_txn_done, c) < 0)
		log_err("etcd: cannot ask for the accept role");
}

/*
 * Everyone tries for a free role, the least loaded first, and tries again
 * every lease_ttl while it stays free (a failed request, a winner that died).
 */
static void election_schedule(struct cluster *c)
{
	struct peer *me = peer_find(c, c->d->cfg->node);
	size_t rank = 0;

	if (c->holder[0] || !me) {
		ev_timer_stop(c->d->loop, &c->election);
		return;
	}
	if (ev_is_active(&c->election))
		return;
	for (size_t i = 0; i < c->npeers; i++)
		rank += peer_before(&c->peers[i], me);
	ev_timer_set(&c->election, ELECTION_STEP * (double)rank, (double)c->d->cfg->lease_ttl_ms / 1000.);
	ev_timer_start(c->d->loop, &c->election);
}

/* The term is over: the least-loaded node takes the role (we keep it when that is us). */
static void on_term(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster *c = w->data;
	const struct peer *to = least_loaded(c);

	if (!to || strcmp(c->holder, c->d->cfg->node))
		return;
	if (strcmp(to->node, c->d->cfg->node))
		log_info("cluster: term %lld over; handing the accept role to %s (score %.3f, ours %.3f)",
			 (long long)c->term_no, to->node, to->score, c->score);
	if (role_give(c, to, strcmp(to->node, c->d->cfg->node) ? c->term_no + 1 : c->term_no, role_txn_done,
		      c) < 0)
		log_err("etcd: cannot hand the accept role on");
}

static void role_won(struct cluster *c)
{
	struct odrsd *d = c->d;

	d->accept = true;
	log_info("cluster: this node holds the accept role (term %lld)", (long long)c->term_no);
	evlog_emit("accept_acquired", NULL, json_pack("{s:I}", "term", (json_int_t)c->term_no));
	retrain_all(d);
	capture_filter_changed(d);
}

static void role_lost(struct cluster *c, int64_t term)
{
	struct odrsd *d = c->d;

	d->accept = false;
	log_info("cluster: this node no longer holds the accept role (term %lld)", (long long)term);
	evlog_emit("accept_released", NULL, json_pack("{s:I}", "term", (json_int_t)term));
	retrain_stop(d);
	ev_timer_stop(d->loop, &c->term);
	capture_filter_changed(d);
}

static void accept_apply(struct cluster *c, bool deleted, const struct etcd_kv *kv)
{
	struct odrsd *d = c->d;
	int64_t old_term = c->term_no;
	json_t *o = deleted ? NULL : json_loads(kv->value, 0, NULL);
	const char *node = json_string_value(json_object_get(o, "node"));
	bool mine;
	double left;

	snprintf(c->holder, sizeof(c->holder), "%s", node ? node : "");
	c->holder_rev = deleted ? 0 : kv->mod_revision;
	c->term_no = json_integer_value(json_object_get(o, "term"));
	c->since = (double)json_integer_value(json_object_get(o, "since")) / 1000.;
	if (c->term_no > c->last_term)
		c->last_term = c->term_no;
	json_decref(o);
	mine = !c->fenced && !strcmp(c->holder, d->cfg->node);
	if (mine && !d->accept)
		role_won(c);
	else if (!mine && d->accept)
		role_lost(c, old_term);
	if (mine) {
		left = (double)d->cfg->accept_term_ms / 1000. - (ev_time() - c->since);
		ev_timer_stop(d->loop, &c->term);
		ev_timer_set(&c->term, left > 0.1 ? left : 0.1, 0.);
		ev_timer_start(d->loop, &c->term);
	}
	election_schedule(c);
}

struct move_req {
	struct cluster *c;
	char node[64];
};

static void move_done(void *ctx, int err, bool succeeded, int64_t rev)
{
	struct move_req *m = ctx;
	char msg[160];

	note(m->c, err, "accept role");
	if (err)
		snprintf(msg, sizeof(msg), "etcd: %s", strerror(-err));
	else if (!succeeded)
		snprintf(msg, sizeof(msg), "the accept role moved meanwhile; try again");
	control_accept_done(m->c->d, err ? err : succeeded ? 0 : -EAGAIN, msg);
	free(m);
}

int cluster_accept_move(struct odrsd *d, const char *node, char *err, size_t errlen)
{
	struct cluster *c = d->cluster;
	const struct peer *to;
	struct move_req *m;

	if (!c) {
		snprintf(err, errlen, "no cluster backend: this node always holds the accept role");
		return -ENOTSUP;
	}
	if (!(to = peer_find(c, node))) {
		snprintf(err, errlen, "%s is not a live node of the cluster", node);
		return -ENOENT;
	}
	if (!cluster_store_ok(d)) {
		snprintf(err, errlen, "the cluster store is unreachable");
		return -EAGAIN;
	}
	if (!(m = calloc(1, sizeof(*m))))
		return -ENOMEM;
	m->c = c;
	snprintf(m->node, sizeof(m->node), "%s", node);
	log_info("cluster: moving the accept role to %s, as asked", node);
	if (role_give(c, to, c->last_term + 1, move_done, m) < 0) {
		free(m);
		snprintf(err, errlen, "etcd: request not sent");
		return -EIO;
	}
	return 0;
}

/* ---- the registry ---------------------------------------------------------------- */

static enum vm_state state_from_name(const char *s)
{
	for (enum vm_state i = VM_RUNNING; i <= VM_ERROR; i++)
		if (s && !strcmp(s, vm_state_name(i)))
			return i;
	return VM_UNKNOWN;
}

static json_t *vm_value(const struct odrsd *d, const struct vm *vm, const char *state, const char *node)
{
	char ip[INET_ADDRSTRLEN], mac[18];
	json_t *o;

	inet_ntop(AF_INET, &vm->ip, ip, sizeof(ip));
	if (vm->has_mac)
		wk_mac_str(vm->mac, mac);
	o = json_pack("{s:s, s:s, s:s, s:o, s:I, s:o}", "state", state, "node", node, "ip", ip, "mac",
		      vm->has_mac ? json_string(mac) : json_null(), "bytes", (json_int_t)vm->snapshot_bytes,
		      "last_wake_ms", vm->last_wake_ms < 0 ? json_null() : json_integer(vm->last_wake_ms));
	if (o && vm->state == VM_ERROR)
		json_object_set_new(o, "error", json_string(vm_text(vm->error)));
	return o;
}

static void reg_flush(struct cluster *c);

static void reg_done(void *ctx, int err, bool succeeded, int64_t rev)
{
	struct cluster *c = ctx;

	c->reg_writing = false;
	note(c, err, "write");
	reg_flush(c);
}

/*
 * The next batch of registry keys, each as its VM is now: the VMs marked
 * since the last batch, each once however often it changed meanwhile.
 */
static void reg_flush(struct cluster *c)
{
	struct odrsd *d = c->d;
	struct etcd_op ops[2 * REG_BATCH];
	size_t nops = 0, nvms = 0, scanned;
	bool built = true;

	if (c->reg_writing || !c->reg_pending)
		return;
	/* Until the marked are found: one VM's change does not walk 100,000. */
	for (scanned = 0; scanned < d->nvms && nvms < REG_BATCH && c->reg_pending; scanned++) {
		struct vm *vm;
		char *key, *value, *syn = NULL;

		if (c->reg_next >= d->nvms)
			c->reg_next = 0;
		vm = d->vms[c->reg_next++];
		if (!vm->reg_pending)
			continue;
		vm->reg_pending = false;
		c->reg_pending--;
		if (vm->state == VM_UNKNOWN)
			continue;
		value = dump(vm_value(d, vm, vm_state_name(vm->state), vm_text(vm->node)));
		if (asprintf(&key, VM_PFX "%s", vm->name) < 0)
			key = NULL;
		/* Running: the SYNs passed for its wake are replayed, or too late. */
		if (vm->state == VM_RUNNING && asprintf(&syn, SYN_PFX "%s", vm->name) < 0)
			syn = NULL;
		ops[nops++] = (struct etcd_op){ .key = key, .value = value };
		if (syn)
			ops[nops++] = (struct etcd_op){ .del = true, .key = syn };
		built &= key && value && (vm->state != VM_RUNNING || syn);
		nvms++;
	}
	/* Around all of them: none is left marked, whatever the count said. */
	if (scanned == d->nvms)
		c->reg_pending = 0;
	if (nops && (!built || etcd_txn(c->etcd, NULL, ops, nops, reg_done, c) < 0))
		log_err("etcd: %zu registry keys not written", nvms);
	else if (nops)
		c->reg_writing = true;
	for (size_t i = 0; i < nops; i++) {
		free((char *)ops[i].key);
		free((char *)ops[i].value);
	}
}

/* vm's registry key, in the next batch; true when the node's score may have changed with it. */
static bool vm_publish(struct cluster *c, struct vm *vm)
{
	if (!vm->reg_pending) {
		vm->reg_pending = true;
		c->reg_pending++;
	}
	reg_flush(c);
	return vm->state == VM_RUNNING || vm->state == VM_HIBERNATED;
}

/* The score soon, once for every VM that changes meanwhile (start-up's inspects: 100,000). */
static void rescore_soon(struct cluster *c)
{
	timer_once(c->d->loop, &c->rescore, RESCORE_DELAY);
}

static void on_rescore(struct ev_loop *loop, ev_timer *w, int revents)
{
	node_publish(w->data);
}

void cluster_publish(struct odrsd *d, struct vm *vm)
{
	if (d->cluster && vm->state != VM_UNKNOWN && vm_publish(d->cluster, vm))
		rescore_soon(d->cluster);
}

static json_t *syns_value(const struct vm *vm)
{
	json_t *a = json_array();
	char b64[WK_FRAME_MAX * 4 / 3 + 8];

	for (const struct held_syn *h = vm->held; h; h = h->next)
		if (b64_ntop(h->frame, h->len, b64, sizeof(b64)) > 0)
			json_array_append_new(a, json_string(b64));
	return json_pack("{s:o}", "frames", a);
}

void cluster_pass_syns(struct odrsd *d, struct vm *vm)
{
	char key[192];

	if (!d->cluster)
		return;
	snprintf(key, sizeof(key), SYN_PFX "%s", vm->name);
	put(d->cluster, key, dump(syns_value(vm)), 0, NULL, NULL, NULL);
}

static void claim_done(void *ctx, int err, bool succeeded, int64_t rev)
{
	struct vm_req *q = ctx;
	struct odrsd *d = q->c->d;
	struct vm *vm = vm_by_name(d, q->vm);

	note(q->c, err, "wake claim");
	if (!vm)
		goto out;
	if (err) {
		d->n.claims_refused++;
		vm_on_claim(d, vm, VM_CLAIM_REFUSED, NULL, err);
	} else if (!succeeded) {
		/* Someone else saw it too; the watch tells who won. */
		d->n.claims_lost++;
		log_info("%s: another node claimed the wake first", vm->name);
		vm_on_claim(d, vm, VM_CLAIM_LOST, NULL, 0);
	} else {
		d->n.claims++;
		vm_on_claim(d, vm, VM_CLAIM_WON, q->target, 0);
	}
out:
	free(q);
}

/*
 * A dozing VM's memory is on its node: only that node can wake it, and
 * only once its doze is done (before, its node would not see the claim).
 * 0 with the node in *to, or -errno with the reason in err.
 */
static int dozing_owner(struct cluster *c, const struct vm *vm, const struct peer **to, char *err,
			size_t errlen)
{
	const char *state = json_string_value(json_object_get(vm->reg, "state"));

	if (!(*to = peer_find(c, vm_text(vm->node)))) {
		if (err)
			snprintf(err, errlen,
				 "%s dozes on %s, which is lost: its memory is there, so it wakes only when "
				 "%s "
				 "is back",
				 vm->name, vm_text(vm->node), vm_text(vm->node));
		return -EHOSTDOWN;
	}
	if (!state || strcmp(state, vm_state_name(VM_DOZING))) {
		if (err)
			snprintf(err, errlen, "%s is dozing off on %s: wake it once it dozes", vm->name,
				 vm_text(vm->node));
		return -EAGAIN;
	}
	return 0;
}

/*
 * Exactly one node wins a VM's wake: the transaction holds only if the
 * registry key is still as this node last saw it, hibernated (or dozing on
 * the node the claim names).
 */
int cluster_claim(struct odrsd *d, struct vm *vm, char *err, size_t errlen)
{
	struct cluster *c = d->cluster;
	const struct peer *to = least_loaded(c);
	struct etcd_cmp cmp = { .target = ETCD_CMP_MOD, .revision = vm->rev };
	struct etcd_op ops[2];
	char key[192], syn[192], *value, *frames = NULL;
	struct vm_req *q;
	json_t *o;
	int r;

	if (!cluster_store_ok(d) || !to) {
		d->n.claims_refused++;
		if (err)
			snprintf(err, errlen, "%s stays asleep: the cluster store is unreachable", vm->name);
		log_warn("%s: wake wanted, but no claim without etcd", vm->name);
		return -EAGAIN;
	}
	if (vm->state == VM_DOZING && (r = dozing_owner(c, vm, &to, err, errlen)) < 0) {
		d->n.claims_refused++;
		return r;
	}
	if (!(q = calloc(1, sizeof(*q))))
		return -ENOMEM;
	q->c = c;
	snprintf(q->vm, sizeof(q->vm), "%s", vm->name);
	snprintf(q->target, sizeof(q->target), "%s", to->node);
	snprintf(key, sizeof(key), VM_PFX "%s", vm->name);
	snprintf(syn, sizeof(syn), SYN_PFX "%s", vm->name);
	o = vm_value(d, vm, "waking", to->node);
	json_object_set_new(o, "trigger", json_string(wk_trigger_name(vm->trigger)));
	json_object_set_new(o, "client", json_string(vm_text(vm->client)));
	json_object_set_new(o, "at", json_integer((json_int_t)(vm->trigger_at * 1000)));
	json_object_set_new(o, "by", json_string(d->cfg->node));
	value = dump(o);
	if (vm->held)
		frames = dump(syns_value(vm));
	cmp.key = key;
	ops[0] = (struct etcd_op){ .key = key, .value = value };
	ops[1] = (struct etcd_op){ .key = syn, .value = frames };
	r = value ? etcd_txn(c->etcd, &cmp, ops, frames ? 2 : 1, claim_done, q) : -ENOMEM;
	free(value);
	free(frames);
	if (r < 0) {
		free(q);
		if (err)
			snprintf(err, errlen, "%s: wake claim not sent", vm->name);
		return r;
	}
	return 0;
}

bool cluster_adopt(struct odrsd *d, struct vm *vm)
{
	json_t *o = vm->reg, *v;
	struct vm_proposal p = {
		.state = state_from_name(json_string_value(json_object_get(o, "state"))),
		.node = json_string_value(json_object_get(o, "node")),
		.bytes = (uint64_t)json_integer_value(json_object_get(o, "bytes")),
		.last_wake_ms = (v = json_object_get(o, "last_wake_ms")) && json_is_integer(v)
					? json_integer_value(v)
					: -1,
		.error = json_string_value(json_object_get(o, "error")),
		.trigger = wk_trigger_from_name(json_string_value(json_object_get(o, "trigger"))),
		.client = json_string_value(json_object_get(o, "client")),
		.at = (double)json_integer_value(json_object_get(o, "at")) / 1000.,
	};
	const char *mac;

	if (!o)
		return false;
	/* The node that ran it read its MAC from the domain; this one may never have seen it. */
	if (!vm->has_mac && (mac = json_string_value(json_object_get(o, "mac"))) &&
	    wk_parse_mac(mac, vm->mac) == 0 && wk_vmtable_set_mac(d->table, vm->ip, vm->mac) == 0)
		vm->has_mac = true;
	return vm_on_registry(d, vm, &p);
}

static void vm_apply(struct cluster *c, const char *name, bool deleted, const struct etcd_kv *kv)
{
	struct vm *vm = vm_by_name(c->d, name);

	if (!vm)
		return;
	json_decref(vm->reg);
	vm->reg = deleted ? NULL : json_loads(kv->value, 0, NULL);
	vm->rev = deleted ? 0 : kv->mod_revision;
	cluster_adopt(c->d, vm);
}

/* SYNs held by the accept node for a wake on this node: keep them for the replay. */
static void syn_apply(struct cluster *c, const char *name, bool deleted, const struct etcd_kv *kv)
{
	struct vm *vm = vm_by_name(c->d, name);
	uint8_t frame[WK_FRAME_MAX];
	json_t *o, *s;
	size_t i;
	int n;

	if (!vm || deleted || vm->state != VM_WAKING || !vm_is_local(c->d, vm) ||
	    !(o = json_loads(kv->value, 0, NULL)))
		return;
	json_array_foreach(json_object_get(o, "frames"), i,
			   s) if (json_is_string(s) &&
				  (n = b64_pton(json_string_value(s), frame, sizeof(frame))) > 0)
		wake_hold_syn(c->d, vm, frame, (size_t)n);
	json_decref(o);
}

static void apply(struct cluster *c, bool deleted, const struct etcd_kv *kv)
{
	const char *k = kv->key;

	if (!strncmp(k, NODE_PFX, strlen(NODE_PFX)))
		peer_apply(c, k + strlen(NODE_PFX), deleted, kv);
	else if (!strcmp(k, ACCEPT_KEY))
		accept_apply(c, deleted, kv);
	else if (!strncmp(k, VM_PFX, strlen(VM_PFX)))
		vm_apply(c, k + strlen(VM_PFX), deleted, kv);
	else if (!strncmp(k, SYN_PFX, strlen(SYN_PFX)))
		syn_apply(c, k + strlen(SYN_PFX), deleted, kv);
}

/* ---- following the store ----------------------------------------------------------- */

static void on_watch_event(void *ctx, bool deleted, const struct etcd_kv *kv)
{
	apply(ctx, deleted, kv);
}

static void on_watch_end(void *ctx, int err)
{
	struct cluster *c = ctx;

	c->watching = false;
	note(c, err ? err : -EPIPE, "watch");
	timer_once(c->d->loop, &c->resync, RESYNC_DELAY);
}

static void sync_done(void *ctx, int err, int64_t rev, const struct etcd_kv *kvs, size_t n)
{
	struct cluster *c = ctx;
	struct odrsd *d = c->d;
	struct peer *gone;
	struct wk_names *keys;
	size_t ngone;
	char key[192];
	bool rescore = false; /* a VM published moves the score */

	c->syncing = false;
	note(c, err, "read");
	if (!err && !(keys = wk_names_new(n)))
		err = -ENOMEM;
	for (size_t i = 0; !err && i < n; i++)
		if (wk_names_add(keys, kvs[i].key, (void *)&kvs[i]) == -ENOMEM) {
			wk_names_free(keys);
			err = -ENOMEM;
		}
	if (err) {
		timer_once(d->loop, &c->resync, RESYNC_DELAY);
		return;
	}
	/* What is not there any more was deleted while we were not looking. */
	gone = c->peers;
	ngone = c->npeers;
	c->peers = NULL;
	c->npeers = 0;
	for (size_t i = 0; i < d->nvms; i++) {
		snprintf(key, sizeof(key), VM_PFX "%s", d->vms[i]->name);
		if (!wk_names_find(keys, key) && d->vms[i]->reg) {
			json_decref(d->vms[i]->reg);
			d->vms[i]->reg = NULL;
			d->vms[i]->rev = 0;
		}
	}
	for (size_t i = 0; i < n; i++)
		apply(c, false, &kvs[i]);
	c->read_once = true;
	/* Waiting for this read (not defined here), and the registry did not place it: libvirt's word. */
	for (size_t i = 0; i < d->nvms; i++)
		if (d->vms[i]->state == VM_UNKNOWN && !d->vms[i]->job_busy)
			vm_inspect(d, d->vms[i]);
	if (!wk_names_find(keys, ACCEPT_KEY))
		accept_apply(c, true, NULL);
	wk_names_free(keys);
	for (size_t i = 0; i < ngone; i++)
		if (!peer_find(c, gone[i].node))
			node_gone(c, gone[i].node);
	free(gone);
	if (etcd_watch(c->etcd, PFX, rev + 1, on_watch_event, on_watch_end, c) < 0) {
		timer_once(d->loop, &c->resync, RESYNC_DELAY);
		return;
	}
	c->watching = true;
	log_info("cluster: following etcd from revision %lld; %zu nodes, accept role: %s", (long long)rev,
		 c->npeers, c->holder[0] ? c->holder : "free");
	/* Our own VMs, as inspected, for whoever missed them; the score once for all. */
	for (size_t i = 0; i < d->nvms; i++)
		if (vm_is_local(d, d->vms[i]) && !d->vms[i]->job_busy && d->vms[i]->state != VM_ERROR &&
		    d->vms[i]->state != VM_UNKNOWN)
			rescore |= vm_publish(c, d->vms[i]);
	if (rescore)
		rescore_soon(c);
}

static void sync_free(struct cluster *c)
{
	while (c->sync_n > 0) {
		free((char *)c->sync_kvs[--c->sync_n].key);
		free((char *)c->sync_kvs[c->sync_n].value);
	}
	free(c->sync_kvs);
	c->sync_kvs = NULL;
	c->sync_cap = 0;
	c->sync_rev = 0;
}

static int sync_keep(struct cluster *c, const struct etcd_kv *kvs, size_t n)
{
	struct etcd_kv *grown, *kv;

	if (c->sync_n + n > c->sync_cap) {
		size_t cap = c->sync_n + n > 2 * c->sync_cap ? c->sync_n + n : 2 * c->sync_cap;
		if (!(grown = realloc(c->sync_kvs, cap * sizeof(*grown))))
			return -ENOMEM;
		c->sync_kvs = grown;
		c->sync_cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		kv = &c->sync_kvs[c->sync_n];
		*kv = kvs[i];
		kv->key = strdup(kvs[i].key);
		kv->value = malloc(kvs[i].value_len + 1);
		if (!kv->key || !kv->value) {
			free((char *)kv->key);
			free((char *)kv->value);
			return -ENOMEM;
		}
		memcpy((char *)kv->value, kvs[i].value, kvs[i].value_len + 1);
		c->sync_n++;
	}
	return 0;
}

static void sync_page(void *ctx, int err, int64_t rev, const struct etcd_kv *kvs, size_t n, bool more)
{
	struct cluster *c = ctx;

	if (!err && !c->sync_rev)
		c->sync_rev = rev;
	if (!err)
		err = sync_keep(c, kvs, n);
	if (!err && more && n)
		err = etcd_get_page(c->etcd, PFX, kvs[n - 1].key, c->sync_rev, SYNC_PAGE, sync_page, c);
	if (err || !more || !n) {
		sync_done(c, err, c->sync_rev, c->sync_kvs, c->sync_n);
		sync_free(c);
	}
}

static void sync_start(struct cluster *c)
{
	if (c->syncing || c->watching)
		return;
	c->syncing = true;
	if (etcd_get_page(c->etcd, PFX, NULL, 0, SYNC_PAGE, sync_page, c) < 0) {
		c->syncing = false;
		timer_once(c->d->loop, &c->resync, RESYNC_DELAY);
	}
}

static void on_resync(struct ev_loop *loop, ev_timer *w, int revents)
{
	sync_start(w->data);
}

/* ---- our lease ---------------------------------------------------------------------- */

/* A grant or keepalive on its way: the deadline counts from when it left. */
struct renew_req {
	struct cluster *c;
	ev_tstamp sent;
};

static struct renew_req *renew_req(struct cluster *c)
{
	struct renew_req *q = malloc(sizeof(*q));

	if (q) {
		q->c = c;
		q->sent = ev_time();
	}
	return q;
}

static double fence_margin(const struct cluster *c)
{
	return fmin(FENCE_MARGIN, (double)c->d->cfg->lease_ttl_ms / 10000.);
}

/* From now on this node acts for itself only; its own VMs go on as they are. */
static void fence(struct cluster *c, const char *reason)
{
	struct odrsd *d = c->d;
	bool held = d->accept;

	ev_timer_stop(d->loop, &c->fence);
	if (c->fenced)
		return;
	c->fenced = true;
	log_warn("cluster: fenced (%s, last renewal of our lease %.1f s ago): no ARP answers, held SYNs or "
		 "retraining for the cluster until etcd renews it",
		 reason, ev_time() - c->renewed);
	if (held)
		role_lost(c, c->term_no);
	/* Held for wakes no node will claim from here: nobody would replay them. */
	for (size_t i = 0; i < d->nvms; i++) {
		struct vm *vm = d->vms[i];
		if (!vm_is_local(d, vm) || (vm->state != VM_WAKING && vm->state != VM_RUNNING))
			wake_release_syns(d, vm);
	}
	evlog_emit("fenced", NULL, json_pack("{s:s, s:b}", "reason", reason, "accept", held));
	capture_filter_changed(d);
}

static void on_fence(struct ev_loop *loop, ev_timer *w, int revents)
{
	fence(w->data, "lease_overdue");
}

/* etcd acknowledged a renewal sent at sent: the lease lives until sent + lease_ttl at least. */
static void lease_renewed(struct cluster *c, ev_tstamp sent)
{
	struct odrsd *d = c->d;
	double left;

	if (sent > c->renewed)
		c->renewed = sent;
	left = c->renewed + (double)d->cfg->lease_ttl_ms / 1000. - fence_margin(c) - ev_time();
	if (left <= 0) {
		fence(c, "lease_overdue");
		return;
	}
	ev_timer_stop(d->loop, &c->fence);
	ev_timer_set(&c->fence, left, 0.);
	ev_timer_start(d->loop, &c->fence);
	if (!c->fenced)
		return;
	c->fenced = false;
	log_info("cluster: our lease is renewed; reading the store again before acting for the cluster");
	evlog_emit("unfenced", NULL, NULL);
	/* What happened meanwhile (who holds the role) comes from a fresh read, not the old view. */
	etcd_watch_cancel(c->etcd);
	c->watching = false;
	sync_start(c);
}

static void grant_done(void *ctx, int err, int64_t id, int64_t ttl)
{
	struct renew_req *q = ctx;
	struct cluster *c = q->c;

	c->granting = false;
	note(c, err, "lease");
	if (!err) {
		c->lease = id;
		node_publish(c);
		lease_renewed(c, q->sent);
		sync_start(c);
	}
	free(q); /* on error, the next beat asks again */
}

static void lease_grant(struct cluster *c)
{
	int64_t ttl = (int64_t)((c->d->cfg->lease_ttl_ms + 999) / 1000);
	struct renew_req *q;

	if (c->granting || !(q = renew_req(c)))
		return;
	c->granting = true;
	if (etcd_lease_grant(c->etcd, ttl, grant_done, q) < 0) {
		c->granting = false;
		free(q);
	}
}

static void keepalive_done(void *ctx, int err, int64_t id, int64_t ttl)
{
	struct renew_req *q = ctx;
	struct cluster *c = q->c;
	ev_tstamp sent = q->sent;

	free(q);
	if (id != c->lease)
		return; /* an answer about a lease we already replaced */
	if (err == -ENOENT || (!err && ttl <= 0)) {
		/* Expired: our node key and any role we held are gone with it. */
		log_warn("cluster: our lease expired; joining again");
		fence(c, "lease_expired");
		c->ok = true;
		c->lease = 0;
		lease_grant(c);
		return;
	}
	note(c, err, "lease keepalive");
	if (err)
		return;
	lease_renewed(c, sent);
	node_publish(c);
}

static void on_beat(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster *c = w->data;
	struct renew_req *q;

	if (!c->lease)
		lease_grant(c);
	else if (!(q = renew_req(c)) || etcd_lease_keepalive(c->etcd, c->lease, keepalive_done, q) < 0) {
		free(q);
		log_err("etcd: lease keepalive not sent");
	}
}

int cluster_start(struct odrsd *d)
{
	struct cluster *c;
	double beat = (double)d->cfg->lease_ttl_ms / 3000.;
	int r;

	retrain_init(d);
	if (d->cfg->backend != WK_BACKEND_ETCD) {
		d->accept = true;
		return 0;
	}
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	c->d = d;
	c->ok = true;
	if ((r = etcd_open(&c->etcd, d->loop, d->cfg->etcd, ETCD_TIMEOUT_MS)) < 0) {
		free(c);
		return r;
	}
	ev_timer_init(&c->beat, on_beat, 0., beat);
	ev_timer_init(&c->resync, on_resync, 0., 0.);
	ev_timer_init(&c->election, on_election, 0., 0.);
	ev_timer_init(&c->term, on_term, 0., 0.);
	ev_timer_init(&c->fence, on_fence, 0., 0.);
	ev_timer_init(&c->rescore, on_rescore, 0., 0.);
	c->beat.data = c->resync.data = c->election.data = c->term.data = c->fence.data = c->rescore.data = c;
	d->cluster = c;
	ev_timer_start(d->loop, &c->beat);
	lease_grant(c);
	return 0;
}

static void revoke_done(void *ctx, int err, int64_t id, int64_t ttl)
{
	*(bool *)ctx = true;
}

/* Leaving: give up the lease, so our node key and any role go now, not after lease_ttl. */
void cluster_stop(struct odrsd *d)
{
	struct cluster *c = d->cluster;
	bool revoked = false;
	ev_tstamp until = ev_time() + ETCD_TIMEOUT_MS / 1000.;

	if (!c)
		return;
	ev_timer_stop(d->loop, &c->beat);
	ev_timer_stop(d->loop, &c->rescore);
	etcd_watch_cancel(c->etcd);
	c->watching = false;
	if (c->lease && etcd_lease_revoke(c->etcd, c->lease, revoke_done, &revoked) == 0)
		while (!revoked && ev_time() < until)
			ev_run(d->loop, EVRUN_ONCE);
	ev_timer_stop(d->loop, &c->resync);
	ev_timer_stop(d->loop, &c->election);
	ev_timer_stop(d->loop, &c->term);
	ev_timer_stop(d->loop, &c->fence);
	etcd_close(c->etcd);
	for (size_t i = 0; i < d->nvms; i++) {
		json_decref(d->vms[i]->reg);
		d->vms[i]->reg = NULL;
	}
	sync_free(c);
	free(c->peers);
	free(c);
	d->cluster = NULL;
}
