/*
 * Retraining the switches: frames with a sleeping VM's MAC as source (a
 * gratuitous ARP for its address) make every switch send that MAC to the
 * accept node. All of them leave through here, paced at retrain_rate, so a
 * thousand sleeping VMs do not flood a switch (keepalived queues its
 * gratuitous ARPs the same way): a burst when the role is won or a VM goes
 * to sleep, a second one retrain_delay later, and every sleeping MAC again
 * each retrain_refresh, well inside the switches' ageing time.
 */
#include <stdlib.h>
#include <string.h>

#include "evlog.h"
#include "log.h"
#include "odrsd.h"

#define TICK 0.01 /* seconds between sends while frames are queued */

static int queue_push(struct announce_queue *q, const uint8_t *mac, uint32_t ip, ev_tstamp due)
{
	struct announce *grown;

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
	return 0;
}

static bool queue_empty(const struct announce_queue *q)
{
	return q->head == q->len;
}

static void queue_clear(struct announce_queue *q)
{
	q->head = q->len = 0;
}

static bool retrains(const struct vm *vm)
{
	return vm->has_mac &&
	       (vm->state == VM_HIBERNATED || vm->state == VM_WAKING || vm->state == VM_HIBERNATING);
}

static void send_one(struct odrsd *d, const struct announce *a)
{
	uint8_t frame[WK_FRAME_MAX];
	int len = wk_garp_build(a->mac, a->ip, NULL, frame, sizeof(frame));

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

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;
	struct retrain *r = &d->retrain;
	ev_tstamp now = ev_time();
	double rate = d->cfg->retrain_rate;

	for (; !queue_empty(&r->later) && r->later.a[r->later.head].due <= now; r->later.head++) {
		const struct announce *a = &r->later.a[r->later.head];
		if (queue_push(&r->now, a->mac, a->ip, now) < 0)
			break;
	}
	if (!r->sending && !queue_empty(&r->now))
		burst_start(r, now);
	/* The rate allows this many frames since the last tick, never a backlog of more than one tick. */
	r->credit += (now - r->last_tick) * rate;
	if (r->credit > rate * TICK + 1)
		r->credit = rate * TICK + 1;
	r->last_tick = now;
	while (r->credit >= 1 && !queue_empty(&r->now)) {
		send_one(d, &r->now.a[r->now.head++]);
		r->credit--;
	}
	if (!queue_empty(&r->now)) {
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
	if (!queue_empty(&r->later)) {
		ev_timer_set(w, r->later.a[r->later.head].due - now, 0.);
		ev_timer_start(loop, w);
	}
}

static void kick(struct odrsd *d)
{
	struct retrain *r = &d->retrain;

	if (queue_empty(&r->now) || r->sending)
		return;
	burst_start(r, ev_time());
	ev_timer_stop(d->loop, &r->tick);
	ev_timer_set(&r->tick, 0., 0.);
	ev_timer_start(d->loop, &r->tick);
}

static void enqueue(struct odrsd *d, const struct vm *vm)
{
	struct retrain *r = &d->retrain;
	ev_tstamp now = ev_time();

	if (queue_push(&r->now, vm->mac, vm->ip, now) < 0 ||
	    (d->cfg->retrain_delay_ms &&
	     queue_push(&r->later, vm->mac, vm->ip, now + (double)d->cfg->retrain_delay_ms / 1000.) < 0))
		log_err("retrain: out of memory; %s not announced", vm->name);
}

static void on_refresh(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;

	for (size_t i = 0; i < d->nvms; i++)
		if (retrains(d->vms[i]) &&
		    queue_push(&d->retrain.now, d->vms[i]->mac, d->vms[i]->ip, ev_time()) < 0)
			break;
	kick(d);
}

void retrain_init(struct odrsd *d)
{
	ev_init(&d->retrain.tick, on_tick);
	ev_init(&d->retrain.refresh, on_refresh);
	d->retrain.tick.data = d->retrain.refresh.data = d;
}

void retrain_all(struct odrsd *d)
{
	double every = (double)d->cfg->retrain_refresh_ms / 1000.;

	for (size_t i = 0; i < d->nvms; i++)
		if (retrains(d->vms[i]))
			enqueue(d, d->vms[i]);
	kick(d);
	ev_timer_stop(d->loop, &d->retrain.refresh);
	if (every > 0) {
		ev_timer_set(&d->retrain.refresh, every, every);
		ev_timer_start(d->loop, &d->retrain.refresh);
	}
}

void retrain_vm(struct odrsd *d, const struct vm *vm)
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
	queue_clear(&d->retrain.now);
	queue_clear(&d->retrain.later);
	d->retrain.burst_sent = 0;
	d->retrain.sending = false;
}
