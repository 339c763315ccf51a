/*
 * What odrsd does for each VM: answer ARP and NDP while it sleeps, hold its
 * SYNs, restore it, replay the SYNs into its tap, and hibernate it on
 * request. What the VM is, and when it changes, vm.c decides: here are its
 * inputs from the wake capture, the effects it asks of the loop (struct
 * vm_ops) and the observers it tells of every transition.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evlog.h"
#include "log.h"
#include "metrics.h"
#include "odrsd.h"

#define REPLAY_CHECK 0.15 /* seconds between a replay and the SYN-ACK check */
#define REPLAY_TRIES 4

/* An IPv4 or IPv6 address, as text; buf holds INET6_ADDRSTRLEN. */
static const char *addr_str(bool v6, const void *addr, char *buf)
{
	return inet_ntop(v6 ? AF_INET6 : AF_INET, addr, buf, INET6_ADDRSTRLEN);
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
	vm_timer_stop(d, vm, VM_TIMER_REPLAY);
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

/* The last trigger refused for vm and why (why: a literal), for odrsctl show. */
static void note_refused(struct odrsd *d, struct vm *vm, enum wk_trigger t, const char *why, const char *from)
{
	vm->refused_why = why;
	vm->refused_trigger = t;
	vm_text_set(&vm->refused_from, from);
	vm->refused_at = ev_now(d->loop);
}

/*
 * The one place a frame's sender meets the VM's wake policy, whatever its
 * family. A refusal is noted with from (the sender, as the events name it)
 * for odrsctl show, counted by its reason and logged aggregated
 * (trigger_refused, a line per VM, trigger and reason per interval).
 */
static bool policy_may_wake(struct odrsd *d, struct vm *vm, enum wk_trigger t, const struct wk_pkt *p,
			    uint16_t port, const char *from)
{
	struct wk_addr src = p->kind == WK_PKT_ARP ? wk_addr_v4(p->arp.spa)
			     : p->v6		   ? wk_addr_v6(p->ip6.src)
						   : wk_addr_v4(p->ip.src);
	const char *why = wk_policy_refusal(&vm->conf->policy, t, &src, port);
	char key[64];

	if (!why)
		return true;
	note_refused(d, vm, t, why, from);
	if (!strcmp(why, "wake_on"))
		d->n.refused_wake_on++;
	else if (!strcmp(why, "wake_ports"))
		d->n.refused_wake_ports++;
	else if (!strcmp(why, "wake_udp_ports"))
		d->n.refused_wake_udp_ports++;
	else if (!strcmp(why, "routers"))
		d->n.refused_routers++;
	else
		d->n.refused_ignore_sources++;
	snprintf(key, sizeof(key), "%s/%s", wk_trigger_name(t), why);
	evlog_frame("trigger_refused", vm->name, key,
		    json_pack("{s:s, s:s}", "trigger", wk_trigger_name(t), "reason", why));
	return false;
}

/* Who asks for a sleeping VM's address, ARP or IPv6 Neighbor Solicitation alike. */
struct neighbour_request {
	bool v6;
	const void *requester; /* its address, 4 or 16 bytes */
	const void *target;    /* the VM's address */
	bool announcement;     /* not a question: gratuitous, or the VM's own */
	bool probe;	       /* an IPv4 address probe (sender 0.0.0.0): answered, wakes nobody */
};

static struct neighbour_request neighbour_request(const struct vm *vm, const struct wk_pkt *p)
{
	if (p->kind == WK_PKT_NS)
		return (struct neighbour_request){
			.v6 = true,
			.requester = p->ip6.src,
			.target = vm->ip6,
			.announcement = !memcmp(p->eth.src, vm->mac, WK_ETH_ALEN),
		};
	return (struct neighbour_request){
		.requester = &p->arp.spa,
		.target = &vm->ip,
		.announcement = p->arp.spa == p->arp.tpa || !memcmp(p->arp.sha, vm->mac, WK_ETH_ALEN),
		.probe = !p->arp.spa,
	};
}

/* Answer for a sleeping VM with its MAC, and wake it. Running VMs answer for themselves. */
static void wake_on_neighbour(struct odrsd *d, struct vm *vm, const struct wk_pkt *p)
{
	struct neighbour_request q = neighbour_request(vm, p);
	uint8_t frame[WK_FRAME_MAX];
	char who[INET6_ADDRSTRLEN], ip[INET6_ADDRSTRLEN];
	int len;

	if (!vm_stood_in_here(d, vm) || !vm->has_mac || q.announcement)
		return;
	/* An NA's -EINVAL: duplicate address detection (from ::), which only the owner answers. */
	len = q.v6 ? wk_na_build(&p->eth, &p->ip6, &p->ns, vm->mac, frame, sizeof(frame))
		   : wk_arp_reply_build(&p->eth, &p->arp, vm->mac, frame, sizeof(frame));
	if (len < 0 && q.v6)
		return;
	if (len < 0 || inject_frame(d, d->ifindex, frame, (size_t)len) < 0) {
		log_warn("%s: %s not sent", vm->name, q.v6 ? "neighbor advertisement" : "ARP reply");
		return;
	}
	delay_observe(&d->reply_delay, delay_since_us(&d->frame_captured));
	delay_observe(&d->reply_turn, delay_since_mono_us(&d->turn_began));
	d->n.arp_replies++;
	addr_str(q.v6, q.requester, who);
	evlog_frame(q.v6 ? "ndp_reply" : "arp_reply", vm->name, NULL,
		    json_pack("{s:s, s:s}", "ip", addr_str(q.v6, q.target, ip), "requester", who));
	if (!q.probe && policy_may_wake(d, vm, WK_TRIGGER_ARP, p, 0, who))
		vm_request_wake(d, vm, WK_TRIGGER_ARP, who, NULL, 0);
}

/* What may be held: a SYN, a whole TCP segment without SYN, a UDP datagram. */
static bool holdable(const struct wk_pkt *p)
{
	if (p->kind == WK_PKT_UDP)
		return true;
	return wk_pkt_is_syn(p) ||
	       (p->kind == WK_PKT_TCP && (p->v6 || !p->ip.is_fragment) && !(p->tcp.flags & WK_TCP_SYN));
}

/* A retransmission of a frame held: the same flow, and for a datagram the same payload too. */
static bool held_again(const struct held_syn *h, const struct wk_flow *flow, const struct wk_pkt *p,
		       const uint8_t *frame, size_t len)
{
	if (!wk_flow_eq(&h->flow, flow))
		return false;
	return p->kind != WK_PKT_UDP ||
	       (h->len == len && !memcmp(h->frame + p->l4_off, frame + p->l4_off, len - p->l4_off));
}

bool wake_hold_syn(struct odrsd *d, struct vm *vm, const uint8_t *frame, size_t len)
{
	struct held_syn *h, **tail;
	struct wk_flow flow;
	struct wk_pkt p;

	if (wk_pkt_parse(frame, len, &p) < 0 || !holdable(&p))
		return false;
	/* A SYN for a sleeping VM is for its next wake: the last wake's replays were its guest's. */
	if (vm_is_asleep(vm))
		held_drop(d, vm, true);
	wk_flow_from_syn(&p, &flow);
	for (tail = &vm->held; *tail; tail = &(*tail)->next)
		if (held_again(*tail, &flow, &p, frame, len))
			return false;
	if (vm->nheld >= d->cfg->syn_hold_per_vm || d->nheld_total >= d->cfg->syn_hold_total ||
	    len > sizeof(h->frame) || !(h = calloc(1, sizeof(*h)))) {
		d->n.syns_dropped++;
		return false;
	}
	h->flow = flow;
	h->syn = wk_pkt_is_syn(&p);
	h->len = (uint16_t)len;
	memcpy(h->frame, frame, len);
	*tail = h;
	vm->nheld++;
	d->nheld_total++;
	if (h->syn)
		d->n.syns_held++;
	else if (p.kind == WK_PKT_UDP)
		d->n.udp_held++;
	else
		d->n.flows_held++;
	/* The capture takes the VM's SYN-ACKs from now on, well before the replay. */
	if (vm->nheld == 1)
		capture_filter_changed(d);
	return true;
}

/*
 * A frame that wakes a sleeping VM and is held for it, to be replayed into
 * its tap: a SYN (trigger syn), a segment of a flow it had open
 * (established), a datagram to one of its wake_udp_ports (udp). One path.
 */
static void wake_on_held(struct odrsd *d, struct vm *vm, const struct wk_pkt *p, const uint8_t *frame,
			 size_t len, enum wk_trigger t)
{
	static const char *const held_event[] = {
		[WK_TRIGGER_SYN] = "syn_held",
		[WK_TRIGGER_ESTABLISHED] = "flow_held",
		[WK_TRIGGER_UDP] = "udp_held",
	};
	uint16_t sport = p->kind == WK_PKT_UDP ? p->udp.sport : p->tcp.sport,
		 dport = p->kind == WK_PKT_UDP ? p->udp.dport : p->tcp.dport;
	char client[64], ip[INET6_ADDRSTRLEN];

	vm->last_activity = ev_now(d->loop);
	if (!vm_stood_in_here(d, vm))
		return;
	addr_str(p->v6, p->v6 ? (const void *)p->ip6.src : &p->ip.src, ip);
	snprintf(client, sizeof(client), p->v6 ? "[%s]:%u" : "%s:%u", ip, sport);
	if (!policy_may_wake(d, vm, t, p, dport, client))
		return;
	vm_request_wake(d, vm, t, client, NULL, 0);
	/* Held only for a wake on its way: a refused one (a rate limit) keeps nothing. */
	if (!vm->conf->policy.replay_syn ||
	    !(vm->state == VM_WAKING || vm->state == VM_HIBERNATING || vm->state == VM_DOZING_OFF ||
	      vm->claiming) ||
	    !wake_hold_syn(d, vm, frame, len))
		return;
	evlog_frame(held_event[t], vm->name, NULL, json_pack("{s:s, s:i}", "client", client, "port", dport));
	/* Claimed for another node already: it needs this one too. */
	if (vm->state == VM_WAKING && !vm_is_local(d, vm))
		cluster_pass_syns(d, vm);
}

static void wake_on_synack(struct odrsd *d, struct vm *vm, const struct wk_pkt *p)
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
 * A segment without SYN to a sleeping VM: of a flow it had open, it wakes the
 * VM like a SYN; of any other (a stranger's ACK), it is counted and dropped,
 * without a log line: a flood of them costs a lookup each.
 */
static void wake_on_segment(struct odrsd *d, struct vm *vm, const struct wk_pkt *p, const uint8_t *frame,
			    size_t len)
{
	if (!vm_stood_in_here(d, vm))
		return;
	if (!flows_known(vm, p)) {
		d->n.flows_unknown++;
		return;
	}
	wake_on_held(d, vm, p, frame, len, WK_TRIGGER_ESTABLISHED);
}

void vm_on_frame(struct odrsd *d, struct vm *vm, const struct wk_pkt *p, const uint8_t *frame, size_t len)
{
	if (p->kind == WK_PKT_ARP || p->kind == WK_PKT_NS)
		wake_on_neighbour(d, vm, p);
	else if (p->kind == WK_PKT_TCP && wk_pkt_is_syn(p))
		wake_on_held(d, vm, p, frame, len, WK_TRIGGER_SYN);
	else if (p->kind == WK_PKT_TCP && wk_pkt_is_synack(p))
		wake_on_synack(d, vm, p);
	else if (p->kind == WK_PKT_TCP && !(p->tcp.flags & WK_TCP_SYN))
		wake_on_segment(d, vm, p, frame, len);
	else if (p->kind == WK_PKT_UDP)
		wake_on_held(d, vm, p, frame, len, WK_TRIGGER_UDP);
}

/*
 * Inject the unanswered held SYNs into the VM's own tap, never the uplink.
 * The capture waits for their SYN-ACKs since the first was held: a rebuild
 * still spaced out (capture.c) is run first, or a resume that takes less
 * than the spacing would have its SYN-ACKs go by uncaptured.
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
	capture_filter_flush(d);
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
		if (inject_frame(d, ifindex, h->frame, h->len) == 0) {
			sent++;
			/* Nothing answers a segment or a datagram as a SYN-ACK does: the client's own retries cover a loss. */
			h->answered = !h->syn;
		}
		if (++h->tries > vm->replay_tries)
			vm->replay_tries = h->tries;
	}
	return sent;
}

/* REPLAY_CHECK after a replay: again if unanswered, up to REPLAY_TRIES; the SYNs forgotten once over. */
static void replay_check(struct odrsd *d, struct vm *vm)
{
	unsigned unanswered = 0;

	/* Asleep again (or failed) before it answered: the guest they were for is gone. */
	if (vm->state != VM_RUNNING) {
		held_drop(d, vm, true);
		capture_filter_changed(d);
		return;
	}
	for (struct held_syn *h = vm->held; h; h = h->next)
		unanswered += !h->answered;
	if (!unanswered) {
		held_release(d, vm);
		capture_filter_changed(d);
		return;
	}
	if (vm->replay_tries >= REPLAY_TRIES) {
		log_warn("%s: %u replayed SYNs not answered after %u tries", vm->name, unanswered,
			 vm->replay_tries);
		held_release(d, vm);
		capture_filter_changed(d);
		return;
	}
	log_info("%s: re-injecting %u unanswered SYNs (try %u)", vm->name, unanswered, vm->replay_tries + 1);
	replay_held(d, vm);
	if (!vm_timer_start(d, vm, VM_TIMER_REPLAY, REPLAY_CHECK * vm->replay_tries))
		log_err("%s: no memory for the replay timer: checked again within a second", vm->name);
}

void vm_timer_fired(struct odrsd *d, struct vm *vm, enum vm_timer k)
{
	switch (k) {
	case VM_TIMER_REPLAY:
		replay_check(d, vm);
		break;
	case VM_TIMER_WAKE:
		vm_on_wake_timeout(d, vm);
		break;
	default:
		vm_recheck(d, vm);
		break;
	}
}

double vm_timer_due_in(const struct odrsd *d, const struct vm *vm, enum vm_timer k)
{
	switch (k) {
	case VM_TIMER_REPLAY:
		return 0; /* late already: check now */
	case VM_TIMER_WAKE:
		/* Its timer starts as it begins waking: every restore and resume moves it there. */
		return vm->state_since + d->cfg->wake_timeout_ms / 1000. - ev_time();
	default:
		return vm_recheck_delay(vm);
	}
}

/* ---- the lifecycle's effects (struct vm_ops) ------------------------------------ */

/*
 * At start-up and on a reload every VM is inspected: a job each queued at
 * once would hold a struct virt_job per VM, and the heap would keep that
 * peak. Beyond this many queued, an inspect waits in d->jobs_waiting; the
 * workers run far fewer at a time.
 */
#define JOBS_INSPECTS_MAX 256

static bool job_start(struct odrsd *d, struct vm *vm, enum virt_op op)
{
	struct virt_job *job = calloc(1, sizeof(*job));

	if (!job)
		return false;
	job->op = op;
	job->owner = vm;
	if (vm->conf)
		job->shrink = vm->conf->policy.shrink;
	job->dozed = vm->dozed;
	job->timeout_ms = (unsigned)d->cfg->probe_timeout_ms;
	job->name = vm->name;
	vm->job = job;
	vm->job_started = ev_time();
	if (op == VIRT_INSPECT)
		d->inspects_queued++;
	virt_submit(d->virt, job);
	return true;
}

/* Start the waiting jobs that may start: those that failed first, then inspects while there is room. */
static void jobs_run(struct odrsd *d)
{
	struct vm *vm;

	while ((vm = d->jobs_waiting) &&
	       (vm->job_op != VIRT_INSPECT || d->inspects_queued < JOBS_INSPECTS_MAX)) {
		if (!(d->jobs_waiting = vm->job_next))
			d->jobs_waiting_tail = NULL;
		vm->job_next = NULL;
		if (!job_start(d, vm, vm->job_op))
			vm_on_job_unstarted(d, vm, vm->job_op, -ENOMEM, "out of memory for its libvirt job");
	}
}

static void on_jobs_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	jobs_run(ev_userdata(loop));
}

static void job_submit(struct odrsd *d, struct vm *vm, enum virt_op op)
{
	vm->job_op = op;
	vm->job_next = NULL;
	if (op == VIRT_INSPECT && (d->jobs_waiting || d->inspects_queued >= JOBS_INSPECTS_MAX)) {
		if (d->jobs_waiting_tail)
			d->jobs_waiting_tail->job_next = vm;
		else
			d->jobs_waiting = vm;
		d->jobs_waiting_tail = vm;
		return;
	}
	if (job_start(d, vm, op))
		return;
	/* Its failure is reported from the loop: vm.c is in the middle of the transition that asked. */
	if (!(vm->job_next = d->jobs_waiting))
		d->jobs_waiting_tail = vm;
	d->jobs_waiting = vm;
	ev_timer_set(&d->jobs_timer, 0., 0.);
	ev_timer_start(d->loop, &d->jobs_timer);
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
	note_refused(d, vm, t, !strcmp(limit, "vm") ? "wakes_per_hour" : "wakes_per_minute", vm->client);
	/* Nobody will replay them: the client retries once the limit allows. */
	wake_release_syns(d, vm);
	if (!vm->wake_limited) {
		vm->wake_limited = true;
		log_warn("%s: wake refused: %s", vm->name,
			 !strcmp(limit, "vm") ? "wakes_per_hour reached"
					      : "this node's wakes_per_minute reached");
		f = json_pack("{s:s, s:s}", "trigger", wk_trigger_name(t), "limit", limit);
		if (vm->client)
			json_object_set_new(f, "client", json_string(vm->client));
		evlog_emit("wake_limited", vm->name, f);
	}
	return false;
}

static void learn_mac(struct odrsd *d, struct vm *vm, const struct virt_job *job)
{
	/* A VM dropped by a reload is in no table: its IP may be another VM's now. */
	if (vm->removed || vm->has_mac || !job->has_mac)
		return;
	if (wk_vmtable_set_mac(d->table, vm->ip, job->mac) < 0) {
		log_err("%s: its MAC is already another VM's", vm->name);
		return;
	}
	memcpy(vm->mac, job->mac, WK_ETH_ALEN);
	vm->has_mac = true;
}

static double clock_now(const struct odrsd *d)
{
	return ev_time();
}

static void wake_timer(struct odrsd *d, struct vm *vm, bool on)
{
	vm_timer_stop(d, vm, VM_TIMER_WAKE);
	if (on && !vm_timer_start(d, vm, VM_TIMER_WAKE, d->cfg->wake_timeout_ms / 1000.))
		log_err("%s: no memory for the wake_timeout timer: retried every second", vm->name);
}

static void recheck_later(struct odrsd *d, struct vm *vm)
{
	double delay = vm_recheck_delay(vm);

	log_info("%s: in error (%s); checking again in %.0f s", vm->name, vm_text(vm->error), delay);
	if (!vm_timer_start(d, vm, VM_TIMER_RECHECK, delay))
		log_err("%s: no memory for the recheck timer: retried every second", vm->name);
}

/* It runs again (restored, or its save failed): the held SYNs into its tap until answered. */
static void replay_syns(struct odrsd *d, struct vm *vm)
{
	unsigned sent = replay_held(d, vm);

	d->n.syns_replayed += sent;
	evlog_emit("syn_replayed", vm->name,
		   json_pack("{s:i, s:I}", "count", sent, "ms",
			     (json_int_t)((ev_time() - vm->trigger_at) * 1000)));
	if (!vm_timer_start(d, vm, VM_TIMER_REPLAY, REPLAY_CHECK))
		log_err("%s: no memory for the replay timer: checked within a second", vm->name);
}

static void pass_syns(struct odrsd *d, struct vm *vm)
{
	cluster_pass_syns(d, vm);
}

static bool store_ok(const struct odrsd *d)
{
	return cluster_store_ok(d);
}

static bool adopt(struct odrsd *d, struct vm *vm)
{
	return cluster_adopt(d, vm);
}

static void vm_destroy(struct odrsd *d, struct vm *vm)
{
	held_release(d, vm);
	flows_free(vm);
	vm_timer_stop(d, vm, VM_TIMER_WAKE);
	vm_timer_stop(d, vm, VM_TIMER_RECHECK);
	free(vm->error);
	free(vm->client);
	free(vm->refused_from);
	free(vm->stayed_up_detail);
	free(vm->node);
	free(vm->name);
	free(vm);
}

static const struct vm_ops daemon_ops = {
	.submit = job_submit,
	.claim = cluster_claim,
	.adopt = adopt,
	.registry_read = cluster_registry_read,
	.store_ok = store_ok,
	.may_wake = wake_allowed,
	.now = clock_now,
	.wake_timer = wake_timer,
	.recheck = recheck_later,
	.replay = replay_syns,
	.release = held_release,
	.pass_syns = pass_syns,
	.destroy = vm_destroy,
};

/* ---- the observers of every transition ------------------------------------------- */

/* From HIBERNATING on, the VM cannot answer: ARP is ours and SYNs are held; and back. */
static void observe_capture(struct odrsd *d, struct vm *vm, const struct vm_change *c)
{
	capture_filter_changed(d);
}

static void observe_registry(struct odrsd *d, struct vm *vm, const struct vm_change *c)
{
	if (c->effects & VM_FX_PUBLISH)
		cluster_publish(d, vm);
}

static void observe_waiters(struct odrsd *d, struct vm *vm, const struct vm_change *c)
{
	if (c->effects & VM_FX_DONE)
		control_vm_done(d, vm, 0, NULL);
	else if (c->effects & VM_FX_FAIL)
		control_vm_done(d, vm, c->err, c->why);
}

/* It sleeps now: the switches must send its frames to the accept node (a dozing one's to its node). */
static void observe_neighbours(struct odrsd *d, struct vm *vm, const struct vm_change *c)
{
	if ((c->to != VM_HIBERNATED && c->to != VM_DOZING) || c->from == c->to)
		return;
	/* A dozing VM stays on its node: only the bridge here must send its frames to odrsd. */
	if (c->to == VM_DOZING) {
		if (vm_is_local(d, vm))
			vm_announce(d, vm);
	} else if (!cluster_on(d))
		vm_announce(d, vm);
	else if (d->accept)
		retrain_vm(d, vm);
}

/* What survives a restart: its last wake time, and whether a doze paused it. */
static void observe_persist(struct odrsd *d, struct vm *vm, const struct vm_change *c)
{
	if (c->in->ev == VM_EV_RESTORE_OK || c->in->ev == VM_EV_RESUME_OK ||
	    ((c->from == VM_DOZING) != (c->to == VM_DOZING) && vm_is_local(d, vm)))
		state_save(d, vm);
}

static void emit_wake_start(struct odrsd *d, struct vm *vm, const char *target)
{
	json_t *f = json_pack("{s:s, s:s}", "trigger", wk_trigger_name(vm->trigger), "target_node", target);

	if (vm->client)
		json_object_set_new(f, "client", json_string(vm->client));
	evlog_emit("wake_start", vm->name, f);
	if (cluster_on(d))
		log_info("%s: wake claimed for %s", vm->name, target);
}

/* The log, the event log and the counters. */
static void observe_events(struct odrsd *d, struct vm *vm, const struct vm_change *c)
{
	const struct virt_job *job = c->in->job;
	const struct vm_proposal *p = c->in->reg;

	switch (c->in->ev) {
	case VM_EV_FOUND_RUNNING:
	case VM_EV_FOUND_HIBERNATED:
	case VM_EV_FOUND_DOZING:
	case VM_EV_FOUND_STOPPED:
	case VM_EV_FOUND_MISSING:
	case VM_EV_INSPECT_FAILED:
	case VM_EV_LIBVIRT_GONE:
		/* Found in error again by a recheck: recheck_later says so. */
		if (c->to == VM_ERROR && c->from != VM_ERROR)
			log_err("%s: %s", vm->name, vm_text(vm->error));
		else if (c->to != VM_ERROR)
			log_info("%s: %s", vm->name, vm_state_name(c->to));
		break;
	case VM_EV_HIBERNATE:
		evlog_emit("hibernate_start", vm->name, json_pack("{s:s}", "reason", vm->hibernate_reason));
		break;
	case VM_EV_SAVE_OK:
		d->n.saves++;
		log_info("%s: hibernated, %llu bytes in %llu ms", vm->name, (unsigned long long)job->bytes,
			 (unsigned long long)job->ms);
		evlog_emit("hibernate_done", vm->name,
			   json_pack("{s:I, s:I, s:s, s:I, s:I}", "bytes", (json_int_t)job->bytes, "ms",
				     (json_int_t)job->ms, "reason", vm->hibernate_reason, "shrunk_bytes",
				     (json_int_t)job->shrunk_bytes, "shrink_ms", (json_int_t)job->shrink_ms));
		break;
	case VM_EV_DOZE:
		evlog_emit("doze_start", vm->name, json_pack("{s:s}", "reason", vm->hibernate_reason));
		break;
	case VM_EV_DOZE_OK:
		log_info("%s: dozing, %llu bytes paged out, %llu resident, in %llu ms", vm->name,
			 (unsigned long long)job->paged_out_bytes, (unsigned long long)job->resident_bytes,
			 (unsigned long long)job->ms);
		evlog_emit("doze_done", vm->name,
			   json_pack("{s:I, s:I, s:I, s:s}", "bytes_out", (json_int_t)job->paged_out_bytes,
				     "resident_bytes", (json_int_t)job->resident_bytes, "ms",
				     (json_int_t)job->ms, "reason", vm->hibernate_reason));
		break;
	case VM_EV_DOZE_FAILED_UP:
	case VM_EV_DOZE_FAILED:
		log_err("%s: doze failed, %s: %s", vm->name,
			c->to == VM_RUNNING ? "still running" : "state unknown", job->error);
		evlog_emit("doze_failed", vm->name, json_pack("{s:s}", "error", job->error));
		break;
	case VM_EV_WAKE:
		/* A dozing VM's wake needs no claim: it starts here and now. */
		if (c->effects & VM_FX_RESUME)
			emit_wake_start(d, vm, d->cfg->node);
		break;
	case VM_EV_SAVE_FAILED_UP:
	case VM_EV_SAVE_FAILED:
	case VM_EV_SAVE_FAILED_DOZING:
		d->n.save_failures++;
		log_err("%s: hibernation failed, %s: %s", vm->name,
			c->to == VM_RUNNING  ? "still running"
			: c->to == VM_DOZING ? "still dozing"
					     : "state unknown",
			job->error);
		evlog_emit("hibernate_failed", vm->name, json_pack("{s:s}", "error", job->error));
		break;
	case VM_EV_CLAIM_HERE:
	case VM_EV_CLAIM_THERE:
		emit_wake_start(d, vm, c->in->node);
		break;
	case VM_EV_CLAIM_REFUSED:
		log_err("%s: wake not claimed: etcd: %s", vm->name, strerror(-c->in->err));
		break;
	case VM_EV_RESTORE_OK:
	case VM_EV_RESUME_OK:
		d->n.restores++;
		evlog_emit("wake_done", vm->name,
			   json_pack("{s:I, s:I, s:s, s:s, s:s}", "ms", (json_int_t)vm->last_wake_ms,
				     "restore_ms", (json_int_t)job->ms, "trigger",
				     wk_trigger_name(vm->trigger), "target_node", d->cfg->node, "from",
				     c->in->ev == VM_EV_RESUME_OK ? "doze" : "hibernate"));
		log_info("%s: running on %s after %lld ms (%s, from %s)", vm->name, vm->tap,
			 (long long)vm->last_wake_ms, wk_trigger_name(vm->trigger),
			 c->in->ev == VM_EV_RESUME_OK ? "a doze" : "hibernation");
		break;
	case VM_EV_RESTORE_ASLEEP:
	case VM_EV_RESTORE_FAILED:
	case VM_EV_RESTORE_GONE:
	case VM_EV_RESUME_PAUSED:
	case VM_EV_RESUME_FAILED:
		d->n.restore_failures++;
		log_err("%s: wake failed: %s", vm->name, job->error);
		evlog_emit("wake_failed", vm->name, json_pack("{s:s}", "error", job->error));
		break;
	case VM_EV_WAKE_TIMEOUT:
		log_err("%s: %s", vm->name, vm_text(vm->error));
		evlog_emit("wake_failed", vm->name, json_pack("{s:s}", "error", vm_text(vm->error)));
		break;
	case VM_EV_REG_CONFLICT:
		log_err("%s: runs here, but the registry says %s on %s; keeping it here", vm->name,
			vm_state_name(p->state), p->node[0] ? p->node : "no node");
		break;
	default:
		break;
	}
}

void wake_init(struct odrsd *d)
{
	static struct vm_life life;
	/* The waiters last: a waiter's answer may serve its client's next request. */
	static const vm_observer_fn observers[] = {
		observe_events,	 observe_neighbours,	 observe_persist, observe_registry,
		observe_capture, metrics_observe_change, observe_waiters,
	};

	vm_life_init(d, &life, &daemon_ops);
	ev_init(&d->jobs_timer, on_jobs_timer);
	for (size_t i = 0; i < sizeof(observers) / sizeof(observers[0]); i++)
		vm_observe(d, observers[i]);
}

void wake_job_done(struct virt_job *job, void *ctx)
{
	struct odrsd *d = ctx;
	struct vm *vm = job->owner;

	if (job->op != VIRT_PROBE) {
		bool removed = vm->removed; /* then vm_on_job_done frees it */

		if (job->op == VIRT_INSPECT)
			d->inspects_queued--;
		vm->job_ms = job->ms;
		vm->job_paged_out_bytes = job->paged_out_bytes;
		vm->job_resident_bytes = job->resident_bytes;
		learn_mac(d, vm, job);
		vm_on_job_done(d, vm, job);
		if (!removed && job->op == VIRT_INSPECT && vm->state == VM_UNKNOWN && !vm->job_busy)
			log_info("%s: not defined on this node; the registry's first read says where it is",
				 vm->name);
		if (!removed && vm->job == job)
			vm->job = NULL; /* not when vm_on_job_done started the next */
		free(job);
		jobs_run(d);
		return;
	}
	idle_probe_done(d, vm);
	if (vm->removed)
		vm_free(d, vm);
}

struct vm *vm_new(struct odrsd *d, const struct wk_vmconf *c)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->conf = c;
	if (!(vm->name = strdup(c->name))) {
		free(vm);
		return NULL;
	}
	vm->ip = c->ip;
	vm->has_mac = c->has_mac;
	memcpy(vm->mac, c->mac, WK_ETH_ALEN);
	vm->has_ip6 = c->has_ip6;
	memcpy(vm->ip6, c->ip6, 16);
	vm->last_wake_ms = -1;
	vm->state_since = ev_time();
	if (wk_vmtable_add(d->table, vm->ip, vm->has_mac ? vm->mac : NULL, vm) < 0)
		goto fail;
	if (vm->has_ip6 && wk_vmtable_add_ip6(d->table, vm->ip6, vm) < 0) {
		wk_vmtable_del(d->table, vm->ip, vm->has_mac ? vm->mac : NULL);
		goto fail;
	}
	state_load(d, vm);
	return vm;
fail:
	free(vm->name);
	free(vm);
	return NULL;
}

struct vm *vm_by_name(struct odrsd *d, const char *name)
{
	return wk_names_find(d->byname, name);
}
