/*
 * What odrsd does for each VM: answer ARP while it sleeps, hold its SYNs,
 * restore it, replay the SYNs into its tap, and hibernate it on request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evlog.h"
#include "log.h"
#include "odrsd.h"

#define REPLAY_CHECK 0.15 /* seconds between a replay and the SYN-ACK check */
#define REPLAY_TRIES 4

const char *vm_state_name(enum vm_state s)
{
	static const char *const name[] = {
		[VM_UNKNOWN] = "unknown",	[VM_RUNNING] = "running", [VM_HIBERNATING] = "hibernating",
		[VM_HIBERNATED] = "hibernated", [VM_WAKING] = "waking",	  [VM_ERROR] = "error",
	};
	return name[s];
}

bool vm_is_asleep(const struct vm *vm)
{
	return vm->state == VM_HIBERNATING || vm->state == VM_HIBERNATED || vm->state == VM_WAKING;
}

static const char *ip_str(uint32_t ip, char *buf)
{
	return inet_ntop(AF_INET, &ip, buf, INET_ADDRSTRLEN);
}

/* Forget vm's held SYNs, or only those already replayed (their wake is over). */
static void held_drop(struct odrsd *d, struct vm *vm, bool replayed_only)
{
	struct held_syn **link = &vm->held, *h;

	while ((h = *link)) {
		if (replayed_only && !h->tries) {
			link = &h->next;
			continue;
		}
		*link = h->next;
		free(h);
		vm->nheld--;
		d->nheld_total--;
	}
	ev_timer_stop(d->loop, &vm->replay_timer);
}

static void held_release(struct odrsd *d, struct vm *vm)
{
	held_drop(d, vm, false);
}

void wake_release_syns(struct odrsd *d, struct vm *vm)
{
	if (!vm->held)
		return;
	held_release(d, vm);
	capture_filter_changed(d);
}

void vm_announce(struct odrsd *d, const struct vm *vm)
{
	uint8_t frame[WK_FRAME_MAX];
	int len;

	if (!vm->has_mac)
		return;
	len = wk_garp_build(vm->mac, vm->ip, NULL, frame, sizeof(frame));
	if (len < 0 || inject_frame(d, d->ifindex, frame, (size_t)len) < 0)
		log_warn("%s: announcing its MAC failed", vm->name);
}

void wake_on_arp_request(struct odrsd *d, struct vm *vm, const struct wk_pkt *p)
{
	uint8_t frame[WK_FRAME_MAX];
	char who[INET_ADDRSTRLEN], ip[INET_ADDRSTRLEN];
	int len, r;

	/* Running VMs answer for themselves; announcements are not questions. */
	if (!d->accept || !vm_is_asleep(vm) || !vm->has_mac || p->arp.spa == p->arp.tpa ||
	    !memcmp(p->arp.sha, vm->mac, WK_ETH_ALEN))
		return;
	len = wk_arp_reply_build(&p->eth, &p->arp, vm->mac, frame, sizeof(frame));
	if (len < 0 || (r = inject_frame(d, d->ifindex, frame, (size_t)len)) < 0) {
		log_warn("%s: ARP reply not sent", vm->name);
		return;
	}
	d->n.arp_replies++;
	ip_str(p->arp.spa, who);
	evlog_emit("arp_reply", vm->name,
		   json_pack("{s:s, s:s}", "ip", ip_str(vm->ip, ip), "requester", who));
	/* An address probe (sender 0.0.0.0) asks whether the IP is taken: yes, but wake nobody. */
	if (p->arp.spa && wk_policy_may_wake(&vm->conf->policy, WK_TRIGGER_ARP, p->arp.spa, 0))
		wake_start(d, vm, WK_TRIGGER_ARP, who, NULL, 0);
}

bool wake_hold_syn(struct odrsd *d, struct vm *vm, const uint8_t *frame, size_t len)
{
	struct held_syn *h, **tail;
	struct wk_flow flow;
	struct wk_pkt p;

	if (wk_pkt_parse(frame, len, &p) < 0 || !wk_pkt_is_syn(&p))
		return false;
	/* A SYN for a sleeping VM is for its next wake: the last wake's replays were its guest's. */
	if (vm_is_asleep(vm))
		held_drop(d, vm, true);
	wk_flow_from_syn(&p, &flow);
	for (tail = &vm->held; *tail; tail = &(*tail)->next)
		if (wk_flow_eq(&(*tail)->flow, &flow))
			return false; /* a retransmission of a SYN we hold */
	if (vm->nheld >= d->cfg->syn_hold_per_vm || d->nheld_total >= d->cfg->syn_hold_total ||
	    len > sizeof(h->frame) || !(h = calloc(1, sizeof(*h)))) {
		d->n.syns_dropped++;
		return false;
	}
	h->flow = flow;
	h->len = (uint16_t)len;
	memcpy(h->frame, frame, len);
	*tail = h;
	vm->nheld++;
	d->nheld_total++;
	d->n.syns_held++;
	/* The capture takes the VM's SYN-ACKs from now on, well before the replay. */
	if (vm->nheld == 1)
		capture_filter_changed(d);
	return true;
}

/* The neighbour side of IPv6: a Neighbor Solicitation is answered as an ARP request is. */
void wake_on_ns(struct odrsd *d, struct vm *vm, const struct wk_pkt *p)
{
	uint8_t frame[WK_FRAME_MAX];
	char who[INET6_ADDRSTRLEN], ip[INET6_ADDRSTRLEN];
	int len;

	if (!d->accept || !vm_is_asleep(vm) || !vm->has_mac || !memcmp(p->eth.src, vm->mac, WK_ETH_ALEN))
		return;
	/* -EINVAL: duplicate address detection (from ::), which only the owner answers. */
	if ((len = wk_na_build(&p->eth, &p->ip6, &p->ns, vm->mac, frame, sizeof(frame))) < 0)
		return;
	if (inject_frame(d, d->ifindex, frame, (size_t)len) < 0) {
		log_warn("%s: neighbor advertisement not sent", vm->name);
		return;
	}
	d->n.arp_replies++;
	inet_ntop(AF_INET6, p->ip6.src, who, sizeof(who));
	evlog_emit("ndp_reply", vm->name,
		   json_pack("{s:s, s:s}", "ip", inet_ntop(AF_INET6, vm->ip6, ip, sizeof(ip)), "requester",
			     who));
	/* IPv6 sources are never in ignore_sources (IPv4 only): 0 stands for "not listed". */
	if (wk_policy_may_wake(&vm->conf->policy, WK_TRIGGER_ARP, 0, 0))
		wake_start(d, vm, WK_TRIGGER_ARP, who, NULL, 0);
}

void wake_on_syn(struct odrsd *d, struct vm *vm, const struct wk_pkt *p, const uint8_t *frame, size_t len)
{
	const struct wk_policy *pol = &vm->conf->policy;
	char client[64], ip[INET6_ADDRSTRLEN];

	vm->last_activity = ev_now(d->loop);
	if (!d->accept || !vm_is_asleep(vm) ||
	    !wk_policy_may_wake(pol, WK_TRIGGER_SYN, p->v6 ? 0 : p->ip.src, p->tcp.dport))
		return;
	if (p->v6)
		snprintf(client, sizeof(client), "[%s]:%u", inet_ntop(AF_INET6, p->ip6.src, ip, sizeof(ip)),
			 p->tcp.sport);
	else
		snprintf(client, sizeof(client), "%s:%u", ip_str(p->ip.src, ip), p->tcp.sport);
	wake_start(d, vm, WK_TRIGGER_SYN, client, NULL, 0);
	/* Held only for a wake on its way: a refused one (a rate limit) keeps nothing. */
	if (!pol->replay_syn || !(vm->state == VM_WAKING || vm->state == VM_HIBERNATING || vm->claiming) ||
	    !wake_hold_syn(d, vm, frame, len))
		return;
	evlog_emit("syn_held", vm->name, json_pack("{s:s, s:i}", "client", client, "port", p->tcp.dport));
	/* Claimed for another node already: it needs this one too. */
	if (vm->state == VM_WAKING && !vm_is_local(d, vm))
		cluster_pass_syns(d, vm);
}

void wake_on_synack(struct odrsd *d, struct vm *vm, const struct wk_pkt *p)
{
	bool all = true;

	for (struct held_syn *h = vm->held; h; h = h->next) {
		if (!h->answered && wk_flow_answered_by(&h->flow, p))
			h->answered = true;
		all = all && h->answered;
	}
	if (vm->held && all) {
		log_info("%s: replayed SYNs answered after %u tries", vm->name, vm->replay_tries);
		held_release(d, vm);
		capture_filter_changed(d);
	}
}

/*
 * Inject the unanswered held SYNs into the VM's own tap, never the uplink.
 * The capture waits for their SYN-ACKs since the first was held.
 */
static unsigned replay_held(struct odrsd *d, struct vm *vm)
{
	unsigned ifindex = if_nametoindex(vm->tap), sent = 0;
	uint16_t untagged[TAP_VLANS_MAX];
	int nuntagged = -1, len;

	if (!ifindex) {
		log_err("%s: tap %s not found; held SYNs dropped", vm->name, vm->tap);
		return 0;
	}
	vm->replay_tries = 0;
	for (struct held_syn *h = vm->held; h; h = h->next) {
		if (h->answered)
			continue;
		/*
		 * Captured on the bridge, the frame has the uplink's VLAN tag and, from a
		 * virtual NIC, an unfinished TCP checksum: as it is, the guest would drop it.
		 */
		if (!h->tries) {
			if (nuntagged < 0 &&
			    (nuntagged = inject_tap_untagged(ifindex, untagged, TAP_VLANS_MAX)) < 0) {
				log_warn("%s: VLANs of tap %s unknown (%s); tags kept", vm->name, vm->tap,
					 strerror(-nuntagged));
				nuntagged = 0;
			}
			if ((len = wk_frame_for_tap(h->frame, h->len, untagged, (size_t)nuntagged)) > 0)
				h->len = (uint16_t)len;
		}
		if (inject_frame(d, ifindex, h->frame, h->len) == 0)
			sent++;
		if (++h->tries > vm->replay_tries)
			vm->replay_tries = h->tries;
	}
	return sent;
}

static void on_replay_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vm *vm = w->data;
	struct odrsd *d = ev_userdata(loop);
	unsigned unanswered = 0;

	/* Asleep again (or failed) before it answered: the guest they were for is gone. */
	if (vm->state != VM_RUNNING) {
		held_drop(d, vm, true);
		capture_filter_changed(d);
		return;
	}
	for (struct held_syn *h = vm->held; h; h = h->next)
		unanswered += !h->answered;
	if (vm->replay_tries >= REPLAY_TRIES) {
		log_warn("%s: %u replayed SYNs not answered after %u tries", vm->name, unanswered,
			 vm->replay_tries);
		held_release(d, vm);
		capture_filter_changed(d);
		return;
	}
	log_info("%s: re-injecting %u unanswered SYNs (try %u)", vm->name, unanswered, vm->replay_tries + 1);
	replay_held(d, vm);
	ev_timer_set(w, REPLAY_CHECK * vm->replay_tries, 0.);
	ev_timer_start(loop, w);
}

static void on_wake_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vm *vm = w->data;
	struct odrsd *d = ev_userdata(loop);
	char msg[128];

	snprintf(msg, sizeof(msg), "restore still running after %.0f s", d->cfg->wake_timeout_ms / 1000.);
	log_err("%s: %s", vm->name, msg);
	evlog_emit("wake_failed", vm->name, json_pack("{s:s}", "error", msg));
	held_release(d, vm);
	control_vm_done(d, vm, -ETIMEDOUT, msg);
}

static void job_submit(struct odrsd *d, struct vm *vm, enum virt_op op)
{
	memset(&vm->job, 0, sizeof(vm->job));
	vm->job.op = op;
	vm->job.owner = vm;
	if (vm->conf)
		vm->job.shrink = vm->conf->policy.shrink;
	vm->job.timeout_ms = (unsigned)d->cfg->probe_timeout_ms;
	snprintf(vm->job.name, sizeof(vm->job.name), "%s", vm->name);
	vm->job_busy = true;
	vm->job_started = ev_time();
	virt_submit(d->virt, &vm->job);
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err)
		snprintf(err, errlen, fmt, a, b);
}

/*
 * A flood of triggers (spoofed SYNs to every sleeping VM) must not restore
 * them all at once: automatic wakes are limited per VM and per node. Both
 * buckets are charged only when both allow it.
 */
static bool wake_allowed(struct odrsd *d, struct vm *vm, enum wk_trigger t)
{
	unsigned per_hour = vm->conf ? vm->conf->policy.wakes_per_hour : 0,
		 per_min = d->cfg->wakes_per_minute;
	struct wk_rate mine = vm->wake_rate, node = d->wake_rate;
	ev_tstamp now = ev_now(d->loop);
	const char *limit;
	json_t *f;

	if (t == WK_TRIGGER_MANUAL)
		return true;
	if (wk_rate_take(&mine, per_hour / 3600., per_hour, now) &&
	    wk_rate_take(&node, per_min / 60., per_min, now)) {
		vm->wake_rate = mine;
		d->wake_rate = node;
		return true;
	}
	mine = vm->wake_rate;
	limit = wk_rate_take(&mine, per_hour / 3600., per_hour, now) ? "node" : "vm";
	d->n.wakes_limited++;
	/* Nobody will replay them: the client retries once the limit allows. */
	wake_release_syns(d, vm);
	if (!vm->wake_limited) {
		vm->wake_limited = true;
		log_warn("%s: wake refused: %s", vm->name,
			 !strcmp(limit, "vm") ? "wakes_per_hour reached"
					      : "this node's wakes_per_minute reached");
		f = json_pack("{s:s, s:s}", "trigger", wk_trigger_name(t), "limit", limit);
		if (vm->client[0])
			json_object_set_new(f, "client", json_string(vm->client));
		evlog_emit("wake_limited", vm->name, f);
	}
	return false;
}

int wake_start(struct odrsd *d, struct vm *vm, enum wk_trigger t, const char *client, char *err,
	       size_t errlen)
{
	if (vm->state == VM_RUNNING || vm->state == VM_WAKING)
		return 0;
	if (vm->state == VM_UNKNOWN || vm->state == VM_ERROR) {
		set_err(err, errlen, "%s is %s", vm->name,
			vm->state == VM_ERROR ? vm->error : "still being inspected");
		return vm->state == VM_ERROR ? -EIO : -EAGAIN;
	}
	if (!vm->wake_wanted) {
		vm->trigger = t;
		vm->trigger_at = ev_time();
		snprintf(vm->client, sizeof(vm->client), "%s", client ? client : "");
	}
	if (vm->state == VM_HIBERNATING) {
		/* The save finishes first; its completion starts this wake. */
		vm->wake_wanted = true;
		return 0;
	}
	if (vm->claiming)
		return 0;
	if (!wake_allowed(d, vm, t)) {
		set_err(err, errlen, "%s: %s", vm->name, "wake refused by a rate limit");
		return -EAGAIN;
	}
	vm->wake_limited = false;
	vm->wake_wanted = false;
	if (cluster_on(d))
		return cluster_claim(d, vm, err, errlen);
	wake_restore(d, vm);
	return 0;
}

void wake_restore(struct odrsd *d, struct vm *vm)
{
	json_t *f;

	vm->state = VM_WAKING;
	snprintf(vm->node, sizeof(vm->node), "%s", d->cfg->node);
	vm->replay_tries = 0;
	/* In a cluster the claim said it, on the node that saw the trigger. */
	if (!cluster_on(d)) {
		f = json_pack("{s:s}", "trigger", wk_trigger_name(vm->trigger));
		if (vm->client[0])
			json_object_set_new(f, "client", json_string(vm->client));
		json_object_set_new(f, "target_node", json_string(d->cfg->node));
		evlog_emit("wake_start", vm->name, f);
	}
	job_submit(d, vm, VIRT_RESTORE);
	ev_timer_set(&vm->wake_timer, d->cfg->wake_timeout_ms / 1000., 0.);
	ev_timer_start(d->loop, &vm->wake_timer);
}

int hibernate_start(struct odrsd *d, struct vm *vm, const char *reason, char *err, size_t errlen)
{
	if (vm->state == VM_HIBERNATED || vm->state == VM_HIBERNATING)
		return 0;
	if (vm->state != VM_RUNNING || vm->job_busy) {
		set_err(err, errlen, "%s is %s", vm->name,
			vm->state == VM_ERROR ? vm->error : vm_state_name(vm->state));
		return -EBUSY;
	}
	if (!vm_is_local(d, vm)) {
		set_err(err, errlen, "%s runs on %s: hibernate it there", vm->name, vm->node);
		return -EREMOTE;
	}
	/* Asleep with nobody told, it would never wake. */
	if (!cluster_store_ok(d)) {
		set_err(err, errlen, "%s stays up: %s", vm->name, "the cluster store is unreachable");
		return -EAGAIN;
	}
	vm->state = VM_HIBERNATING;
	vm->wake_wanted = false;
	vm->hibernate_reason = reason;
	evlog_emit("hibernate_start", vm->name, json_pack("{s:s}", "reason", reason));
	cluster_publish(d, vm);
	job_submit(d, vm, VIRT_SAVE);
	/* From now on the VM cannot answer: ARP is ours and SYNs are held. */
	capture_filter_changed(d);
	return 0;
}

void vm_inspect(struct odrsd *d, struct vm *vm)
{
	vm->state = VM_UNKNOWN;
	job_submit(d, vm, VIRT_INSPECT);
}

static void learn_mac(struct odrsd *d, struct vm *vm, const struct virt_job *job)
{
	if (vm->has_mac || !job->has_mac)
		return;
	if (wk_vmtable_set_mac(d->table, vm->ip, job->mac) < 0) {
		log_err("%s: its MAC is already another VM's", vm->name);
		return;
	}
	memcpy(vm->mac, job->mac, WK_ETH_ALEN);
	vm->has_mac = true;
}

/* It sleeps now: the switches must send its frames to the accept node. */
static void vm_slept(struct odrsd *d, struct vm *vm)
{
	vm->node[0] = 0;
	vm->mem_bytes = 0;
	if (!cluster_on(d))
		vm_announce(d, vm);
	else if (d->accept)
		retrain_vm(d, vm);
}

static void vm_runs_here(struct odrsd *d, struct vm *vm, const struct virt_job *job)
{
	vm->state = VM_RUNNING;
	snprintf(vm->node, sizeof(vm->node), "%s", d->cfg->node);
	snprintf(vm->tap, sizeof(vm->tap), "%s", job->tap);
	vm->mem_bytes = job->mem_bytes;
	vm->last_activity = ev_now(d->loop);
}

#define RECHECK_DELAY 2.0 /* seconds between inspects while libvirtd is unreachable */

static void on_recheck(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vm *vm = w->data;

	if (!vm->job_busy)
		vm_inspect(ev_userdata(loop), vm);
}

static void recheck_later(struct odrsd *d, struct vm *vm)
{
	ev_timer_stop(d->loop, &vm->recheck);
	ev_timer_set(&vm->recheck, RECHECK_DELAY, 0.);
	ev_timer_start(d->loop, &vm->recheck);
}

static void inspect_done(struct odrsd *d, struct vm *vm, const struct virt_job *job)
{
	learn_mac(d, vm, job);
	if (job->err == -ENOTCONN)
		recheck_later(d, vm);
	if (job->err) {
		vm->state = VM_ERROR;
		snprintf(vm->error, sizeof(vm->error), "%s", job->error);
		log_err("%s: %s", vm->name, job->error);
		return;
	}
	/* In a cluster, a VM not running here is wherever the registry says. */
	if (cluster_on(d) && job->state != VIRT_RUNNING && vm->rev) {
		cluster_adopt(d, vm);
		return;
	}
	switch (job->state) {
	case VIRT_RUNNING:
		vm_runs_here(d, vm, job);
		break;
	case VIRT_HIBERNATED:
		vm->state = VM_HIBERNATED;
		vm->snapshot_bytes = job->bytes;
		vm_slept(d, vm);
		break;
	case VIRT_STOPPED:
	case VIRT_MISSING:
		vm->state = VM_ERROR;
		snprintf(vm->error, sizeof(vm->error), "%s",
			 job->state == VIRT_STOPPED ? "domain is shut off and has no snapshot"
						    : "no such domain and no snapshot");
		log_err("%s: %s", vm->name, vm->error);
		break;
	}
	log_info("%s: %s", vm->name, vm_state_name(vm->state));
	if (vm->state != VM_ERROR)
		cluster_publish(d, vm);
}

static void save_done(struct odrsd *d, struct vm *vm, const struct virt_job *job)
{
	learn_mac(d, vm, job);
	if (job->err) {
		vm->state = job->state == VIRT_RUNNING ? VM_RUNNING : VM_ERROR;
		snprintf(vm->error, sizeof(vm->error), "%s", job->error);
		d->n.save_failures++;
		log_err("%s: hibernation failed, %s: %s", vm->name,
			vm->state == VM_RUNNING ? "still running" : "state unknown", job->error);
		evlog_emit("hibernate_failed", vm->name, json_pack("{s:s}", "error", job->error));
		control_vm_done(d, vm, job->err, job->error);
		/* It never stopped: let it have what arrived meanwhile. */
		cluster_publish(d, vm);
		if (vm->state == VM_RUNNING && vm->held) {
			snprintf(vm->tap, sizeof(vm->tap), "%s", job->tap);
			replay_held(d, vm);
			ev_timer_set(&vm->replay_timer, REPLAY_CHECK, 0.);
			ev_timer_start(d->loop, &vm->replay_timer);
		}
		vm->wake_wanted = false;
		capture_filter_changed(d);
		return;
	}
	vm->state = VM_HIBERNATED;
	vm->snapshot_bytes = job->bytes;
	d->n.saves++;
	log_info("%s: hibernated, %llu bytes in %llu ms", vm->name, (unsigned long long)job->bytes,
		 (unsigned long long)job->ms);
	evlog_emit("hibernate_done", vm->name,
		   json_pack("{s:I, s:I, s:s, s:I, s:I}", "bytes", (json_int_t)job->bytes, "ms",
			     (json_int_t)job->ms, "reason", vm->hibernate_reason, "shrunk_bytes",
			     (json_int_t)job->shrunk_bytes, "shrink_ms", (json_int_t)job->shrink_ms));
	vm_slept(d, vm);
	cluster_publish(d, vm);
	control_vm_done(d, vm, 0, NULL);
	if (vm->wake_wanted)
		wake_start(d, vm, vm->trigger, vm->client, NULL, 0);
}

static void restore_done(struct odrsd *d, struct vm *vm, const struct virt_job *job)
{
	ev_tstamp now = ev_time();
	unsigned sent;

	ev_timer_stop(d->loop, &vm->wake_timer);
	learn_mac(d, vm, job);
	if (job->err && job->state != VIRT_RUNNING) {
		vm->state = job->state == VIRT_HIBERNATED ? VM_HIBERNATED : VM_ERROR;
		vm->node[0] = 0;
		snprintf(vm->error, sizeof(vm->error), "%s", job->error);
		d->n.restore_failures++;
		/* libvirtd went away mid-restore: which way it went, only an inspect can tell. */
		if (job->err == -ENOTCONN) {
			snprintf(vm->error, sizeof(vm->error),
				 "libvirtd went away during the restore; checking again");
			recheck_later(d, vm);
		}
		cluster_publish(d, vm);
		log_err("%s: wake failed: %s", vm->name, job->error);
		evlog_emit("wake_failed", vm->name, json_pack("{s:s}", "error", job->error));
		held_release(d, vm);
		control_vm_done(d, vm, job->err, job->error);
		capture_filter_changed(d);
		return;
	}
	vm_runs_here(d, vm, job);
	vm->last_wake_ms = (int64_t)((now - vm->trigger_at) * 1000);
	vm->snapshot_bytes = 0;
	d->n.restores++;
	evlog_emit("wake_done", vm->name,
		   json_pack("{s:I, s:I, s:s, s:s}", "ms", (json_int_t)vm->last_wake_ms, "restore_ms",
			     (json_int_t)job->ms, "trigger", wk_trigger_name(vm->trigger), "target_node",
			     d->cfg->node));
	if (vm->held) {
		sent = replay_held(d, vm);
		d->n.syns_replayed += sent;
		evlog_emit("syn_replayed", vm->name,
			   json_pack("{s:i, s:I}", "count", sent, "ms",
				     (json_int_t)((ev_time() - vm->trigger_at) * 1000)));
		ev_timer_set(&vm->replay_timer, REPLAY_CHECK, 0.);
		ev_timer_start(d->loop, &vm->replay_timer);
	}
	log_info("%s: running on %s after %lld ms (%s)", vm->name, vm->tap, (long long)vm->last_wake_ms,
		 wk_trigger_name(vm->trigger));
	cluster_publish(d, vm);
	state_save(d, vm);
	control_vm_done(d, vm, 0, NULL);
	capture_filter_changed(d);
}

void wake_job_done(struct virt_job *job, void *ctx)
{
	struct odrsd *d = ctx;
	struct vm *vm = job->owner;

	if (job->op == VIRT_PROBE)
		idle_probe_done(d, vm);
	else
		vm->job_busy = false;
	switch (job->op) {
	case VIRT_INSPECT:
		inspect_done(d, vm, job);
		capture_filter_changed(d);
		break;
	case VIRT_SAVE:
		save_done(d, vm, job);
		break;
	case VIRT_RESTORE:
		restore_done(d, vm, job);
		break;
	case VIRT_PROBE:
		break;
	}
	if (vm->removed)
		vm_free(d, vm);
}

struct vm *vm_new(struct odrsd *d, const struct wk_vmconf *c)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->conf = c;
	snprintf(vm->name, sizeof(vm->name), "%s", c->name);
	vm->ip = c->ip;
	vm->has_mac = c->has_mac;
	memcpy(vm->mac, c->mac, WK_ETH_ALEN);
	vm->has_ip6 = c->has_ip6;
	memcpy(vm->ip6, c->ip6, 16);
	vm->last_wake_ms = -1;
	ev_init(&vm->replay_timer, on_replay_timer);
	vm->replay_timer.data = vm;
	ev_init(&vm->wake_timer, on_wake_timeout);
	vm->wake_timer.data = vm;
	ev_init(&vm->recheck, on_recheck);
	vm->recheck.data = vm;
	if (wk_vmtable_add(d->table, vm->ip, vm->has_mac ? vm->mac : NULL, vm) < 0) {
		free(vm);
		return NULL;
	}
	if (vm->has_ip6 && wk_vmtable_add_ip6(d->table, vm->ip6, vm) < 0) {
		wk_vmtable_del(d->table, vm->ip, vm->has_mac ? vm->mac : NULL);
		free(vm);
		return NULL;
	}
	state_load(d, vm);
	return vm;
}

/* Called for a VM dropped from the configuration; a running libvirt job finishes first. */
void vm_free(struct odrsd *d, struct vm *vm)
{
	vm->removed = true;
	if (vm->job_busy || vm->probing)
		return;
	held_release(d, vm);
	ev_timer_stop(d->loop, &vm->wake_timer);
	ev_timer_stop(d->loop, &vm->recheck);
	control_vm_done(d, vm, -ENOENT, "VM removed from the configuration");
	free(vm);
}

struct vm *vm_by_name(struct odrsd *d, const char *name)
{
	for (size_t i = 0; i < d->nvms; i++)
		if (!strcmp(d->vms[i]->name, name))
			return d->vms[i];
	return NULL;
}
