/*
 * Retraining the switches: frames with a sleeping VM's MAC as source (a
 * gratuitous ARP for its address) make every switch send that MAC to the
 * accept node. All of them leave through here, paced at retrain_rate, so a
 * thousand sleeping VMs do not flood a switch (keepalived queues its
 * gratuitous ARPs the same way): a burst when the role is won or a VM goes
 * to sleep, a second one retrain_delay later, and every sleeping MAC again
 * each retrain_refresh, well inside the switches' ageing time.
 *
 * Bounded: every sleeping MAC at once (a role move, a refresh) is a sweep, a
 * cursor over the VMs that sends as the rate allows and queues nothing; a
 * sweep asked for while one runs restarts nothing (a refresh faster than the
 * rate can cover is a sweep that never pauses, not a queue that grows). The
 * queues hold single VMs that went to sleep, each MAC at most once.
 */
#include <stdlib.h>
#include <string.h>

#include "evlog.h"
#include "log.h"
#include "odrsd.h"

#define TICK 0.01 /* seconds between sends while frames are queued */

/*
 * Queue a VM's MAC unless it is queued there already (vm->retrain_queued has
 * a bit per queue, cleared as it leaves): each MAC once, so a queue never
 * holds more than the VMs. vm is NULL for an entry moving between queues.
 */
static int queue_push(struct announce_queue *q, struct vm *vm, const uint8_t *mac, uint32_t ip, ev_tstamp due)
{
	struct announce *grown;

	if (vm && (vm->retrain_queued & q->bit))
		return 0;
	if (q->head && q->head == q->len)
		q->head = q->len = 0;
	if (q->len == q->cap) {
		if (q->head) {
			memmove(q->a, q->a + q->head, (q->len - q->head) * sizeof(*q->a));
			q->len -= q->head;
			q->head = 0;
		} else {
			size_t cap = q->cap ? q->cap * 2 : 64;
			if (!(grown = realloc(q->a, cap * sizeof(*grown))))
				return -1;
			q->a = grown;
			q->cap = cap;
		}
	}
	memcpy(q->a[q->len].mac, mac, WK_ETH_ALEN);
	q->a[q->len].ip = ip;
	q->a[q->len].due = due;
	q->len++;
	if (vm)
		vm->retrain_queued |= q->bit;
	return 0;
}

/* The oldest entry leaves q; its VM may be queued there again. */
static const struct announce *queue_pop(struct odrsd *d, struct announce_queue *q)
{
	const struct announce *a = &q->a[q->head++];
	struct vm *vm = wk_vmtable_by_mac(d->table, a->mac);

	if (vm)
		vm->retrain_queued &= (uint8_t)~q->bit;
	return a;
}

static bool queue_empty(const struct announce_queue *q)
{
	return q->head == q->len;
}

static void queue_clear(struct odrsd *d, struct announce_queue *q)
{
	while (!queue_empty(q))
		queue_pop(d, q);
	q->head = q->len = 0;
}

static bool retrains(const struct vm *vm)
{
	return vm->has_mac &&
	       (vm->state == VM_HIBERNATED || vm->state == VM_WAKING || vm->state == VM_HIBERNATING);
}

static void send_one(struct odrsd *d, const uint8_t *mac, uint32_t ip)
{
	uint8_t frame[WK_FRAME_MAX];
	int len = wk_garp_build(mac, ip, NULL, frame, sizeof(frame));

	if (len > 0 && inject_frame(d, d->ifindex, frame, (size_t)len) == 0) {
		d->n.retrain_frames++;
		d->retrain.burst_sent++;
	}
}

static void burst_start(struct retrain *r, ev_tstamp now)
{
	r->sending = true;
	r->burst_started = now;
	r->credit = 1;
	r->last_tick = now;
}

/* The next sleeping VM of the sweep, or NULL when it is over. */
static const struct vm *sweep_next(struct odrsd *d, struct retrain *r)
{
	while (r->sweep < d->nvms) {
		const struct vm *vm = d->vms[r->sweep++];
		if (retrains(vm))
			return vm;
	}
	r->sweeping = false;
	return NULL;
}

static bool pending(const struct retrain *r)
{
	return !queue_empty(&r->now) || r->sweeping;
}

/* Every sleeping MAC, from the first VM on; one running already goes on. */
static void sweep_start(struct retrain *r)
{
	if (r->sweeping)
		return;
	r->sweeping = true;
	r->sweep = 0;
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;
	struct retrain *r = &d->retrain;
	ev_tstamp now = ev_time();
	double rate = d->cfg->retrain_rate;
	ev_tstamp next;

	while (!queue_empty(&r->later) && r->later.a[r->later.head].due <= now) {
		const struct announce *a = queue_pop(d, &r->later);
		struct vm *vm = wk_vmtable_by_mac(d->table, a->mac);
		if (queue_push(&r->now, vm, a->mac, a->ip, now) < 0)
			break;
	}
	if (r->sweep_due && r->sweep_due <= now) {
		r->sweep_due = 0;
		sweep_start(r);
	}
	if (!r->sending && pending(r))
		burst_start(r, now);
	/* The rate allows this many frames since the last tick, never a backlog of more than one tick. */
	r->credit += (now - r->last_tick) * rate;
	if (r->credit > rate * TICK + 1)
		r->credit = rate * TICK + 1;
	r->last_tick = now;
	while (r->credit >= 1 && pending(r)) {
		const struct vm *vm;
		if (!queue_empty(&r->now)) {
			const struct announce *a = queue_pop(d, &r->now);
			send_one(d, a->mac, a->ip);
		} else if ((vm = sweep_next(d, r))) {
			send_one(d, vm->mac, vm->ip);
		} else {
			break;
		}
		r->credit--;
	}
	if (pending(r)) {
		ev_timer_set(w, TICK, 0.);
		ev_timer_start(loop, w);
		return;
	}
	r->sending = false;
	if (r->burst_sent) {
		evlog_emit("retrain", NULL,
			   json_pack("{s:i, s:I}", "count", r->burst_sent, "ms",
				     (json_int_t)((now - r->burst_started) * 1000)));
		log_debug("retrain: %u frames in %.0f ms", r->burst_sent, (now - r->burst_started) * 1000);
		r->burst_sent = 0;
	}
	next = queue_empty(&r->later) ? 0 : r->later.a[r->later.head].due;
	if (r->sweep_due && (!next || r->sweep_due < next))
		next = r->sweep_due;
	if (next) {
		ev_timer_set(w, next > now ? next - now : 0., 0.);
		ev_timer_start(loop, w);
	}
}

static void kick(struct odrsd *d)
{
	struct retrain *r = &d->retrain;

	if (!pending(r) || r->sending)
		return;
	burst_start(r, ev_time());
	ev_timer_stop(d->loop, &r->tick);
	ev_timer_set(&r->tick, 0., 0.);
	ev_timer_start(d->loop, &r->tick);
}

static void enqueue(struct odrsd *d, struct vm *vm)
{
	struct retrain *r = &d->retrain;
	ev_tstamp now = ev_time();

	if (queue_push(&r->now, vm, vm->mac, vm->ip, now) < 0 ||
	    (d->cfg->retrain_delay_ms &&
	     queue_push(&r->later, vm, vm->mac, vm->ip, now + (double)d->cfg->retrain_delay_ms / 1000.) < 0))
		log_err("retrain: out of memory; %s not announced", vm->name);
}

static void on_refresh(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;

	sweep_start(&d->retrain);
	kick(d);
}

void retrain_init(struct odrsd *d)
{
	ev_init(&d->retrain.tick, on_tick);
	ev_init(&d->retrain.refresh, on_refresh);
	d->retrain.tick.data = d->retrain.refresh.data = d;
	d->retrain.now.bit = 1;
	d->retrain.later.bit = 2;
}

/* The role is won: a sweep now, another one retrain_delay later, then one each retrain_refresh. */
void retrain_all(struct odrsd *d)
{
	struct retrain *r = &d->retrain;
	double every = (double)d->cfg->retrain_refresh_ms / 1000.;

	sweep_start(r);
	r->sweep_due = d->cfg->retrain_delay_ms ? ev_time() + (double)d->cfg->retrain_delay_ms / 1000. : 0;
	kick(d);
	ev_timer_stop(d->loop, &r->refresh);
	if (every > 0) {
		ev_timer_set(&r->refresh, every, every);
		ev_timer_start(d->loop, &r->refresh);
	}
}

void retrain_vm(struct odrsd *d, struct vm *vm)
{
	if (!vm->has_mac)
		return;
	enqueue(d, vm);
	kick(d);
}

void retrain_stop(struct odrsd *d)
{
	ev_timer_stop(d->loop, &d->retrain.tick);
	ev_timer_stop(d->loop, &d->retrain.refresh);
	queue_clear(d, &d->retrain.now);
	queue_clear(d, &d->retrain.later);
	d->retrain.burst_sent = 0;
	d->retrain.sending = d->retrain.sweeping = false;
	d->retrain.sweep_due = 0;
}
