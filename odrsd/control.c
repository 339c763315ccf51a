/* The control socket (protocol in control.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "evlog.h"
#include "log.h"
#include "odrsd.h"

#define CONN_BUF 4096
/* Unsent answers a connection may hold: a list of 100,000 VMs is about 20 MB. */
#define OUT_MAX (64u << 20)
/* Above this much unsent, the next request waits (a client that pipelines but never reads). */
#define OUT_PAUSE (1u << 20)
/* A list answer is made as it drains: this much unsent at most, so a loop turn stays short. */
#define LIST_CHUNK (64u << 10)

struct conn;

/* The request a connection waits on; linked into vm->waiters, d->accept_waiters or d->state_waiters. */
struct waiter {
	struct conn *c;
	struct vm *vm; /* waited for, or NULL (an accept-role move, a state write) */
	struct waiter **list;
	char state_of[128]; /* a state write: of this VM, */
	int64_t ticket;	    /* up to this ticket of state_save() */
	bool waiting;
	const char *verb;
	ev_timer progress; /* reports libvirt's progress while waiting */
	struct waiter *next;
};

/*
 * A client connection. Requests are served in order, one at a time; the
 * answers queue in out and are written as the socket drains (EV_WRITE), so an
 * answer of any size arrives whole and the loop never blocks on a client.
 */
struct conn {
	struct odrsd *d;
	int fd;
	ev_io rio, wio;
	char buf[CONN_BUF]; /* requests received, not yet served */
	size_t used;
	char *out; /* out[off..len) is unsent */
	size_t off, len, cap;
	bool eof;	   /* the client sent all it will */
	bool refusing;	   /* a line too long: its answer goes out, nothing more is read */
	bool dead;	   /* hung up or dropped: closed at the next event */
	struct ucred peer; /* who connected: the events of what it asks name it */
	bool listing;	   /* a list answer is being made: d->vms[list_next] is its next row */
	size_t list_next;
	struct waiter w;
};

static void conn_close(struct conn *c);
static void control_vm_done_one(struct conn *c, struct vm *vm, int err, const char *error);

/* Something for the connection's read handler to do at the next loop turn. */
static void conn_kick(struct conn *c)
{
	ev_feed_event(c->d->loop, &c->rio, EV_CUSTOM);
}

static void conn_flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->out + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			log_debug("control: client gone before reading its answer");
			c->dead = true;
			conn_kick(c);
			return;
		}
		c->off += (size_t)n;
	}
	if (c->off < c->len) {
		ev_io_start(c->d->loop, &c->wio);
		return;
	}
	ev_io_stop(c->d->loop, &c->wio);
	c->off = c->len = 0;
	/* A request held back while answers piled up may go now. */
	conn_kick(c);
}

/* Queue n bytes of s, then end the line if eol; false when the client is (now) dropped. */
static bool out_append(struct conn *c, const char *s, size_t n, bool eol)
{
	size_t need = n + eol;

	if (c->dead)
		return false;
	if (c->len - c->off + need > OUT_MAX) {
		log_warn("control: dropping a client that does not read its answers (%zu bytes unsent)",
			 c->len - c->off);
		c->dead = true;
		conn_kick(c);
		return false;
	}
	if (c->len + need > c->cap && c->off) {
		memmove(c->out, c->out + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len + need > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		char *out;

		while (cap < c->len + need)
			cap *= 2;
		if (!(out = realloc(c->out, cap))) {
			log_warn("control: out of memory for an answer; client dropped");
			c->dead = true;
			conn_kick(c);
			return false;
		}
		c->out = out;
		c->cap = cap;
	}
	memcpy(c->out + c->len, s, n);
	if (eol)
		c->out[c->len + n] = '\n';
	c->len += need;
	return true;
}

static void reply(struct conn *c, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	if (s && out_append(c, s, strlen(s), true))
		conn_flush(c);
	free(s);
}

static void reply_error(struct conn *c, const char *fmt, const char *arg)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, arg);
	reply(c, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
}

/*
 * Why the VM is as it is (odrsctl show): since when, its error, the last
 * reason it stayed up, the last trigger refused, how it sleeps.
 */
static void vm_explain(struct odrsd *d, const struct vm *vm, json_t *o)
{
	const struct wk_policy *pol = vm->conf ? &vm->conf->policy : NULL;
	static const char *const sleep_name[] = {
		[WK_SLEEP_HIBERNATE] = "hibernate",
		[WK_SLEEP_DOZE] = "doze",
		[WK_SLEEP_DOZE_THEN_HIBERNATE] = "doze_then_hibernate",
	};
	json_t *up = json_null(), *refused = json_null();

	json_object_set_new(o, "since", evlog_time(vm->state_since));
	json_object_set_new(o, "error",
			    vm->state == VM_ERROR ? json_string(vm_text(vm->error)) : json_null());
	json_object_set_new(
		o, "recheck_in_s",
		vm->state == VM_ERROR && vm->recheck && ev_is_active(vm->recheck)
			? json_integer((json_int_t)(ev_timer_remaining(d->loop, vm->recheck) + 0.5))
			: json_null());
	if (vm->stayed_up)
		up = json_pack("{s:s, s:s, s:o}", "reason", vm->stayed_up, "detail",
			       vm_text(vm->stayed_up_detail), "at", evlog_time(vm->stayed_up_at));
	json_object_set_new(o, "stayed_up", up);
	if (vm->refused_why)
		refused = json_pack("{s:s, s:s, s:s, s:o}", "trigger", wk_trigger_name(vm->refused_trigger),
				    "why", vm->refused_why, "from", vm_text(vm->refused_from), "at",
				    evlog_time(vm->refused_at));
	json_object_set_new(o, "refused", refused);
	json_object_set_new(o, "sleep", pol ? json_string(sleep_name[pol->sleep]) : json_null());
	json_object_set_new(o, "hibernate_reason",
			    vm_is_asleep(vm) && vm->hibernate_reason ? json_string(vm->hibernate_reason)
								     : json_null());
	json_object_set_new(o, "dozing_since",
			    vm->state == VM_DOZING ? evlog_time(vm->dozed_at) : json_null());
}

/*
 * What is not known or does not apply (a MAC not yet read, idleness of a
 * VM not running, the snapshot of a VM that has none, the last wake of a
 * VM never woken) is null: odrsctl shows "-".
 */
static json_t *vm_json(struct odrsd *d, const struct vm *vm)
{
	char ip[INET_ADDRSTRLEN], mac[18];
	json_t *idle = vm->state == VM_RUNNING
			       ? json_integer((json_int_t)(ev_now(d->loop) - vm->last_activity))
			       : json_null();

	inet_ntop(AF_INET, &vm->ip, ip, sizeof(ip));
	if (vm->has_mac)
		wk_mac_str(vm->mac, mac);
	/* In a cluster, where the registry says it is; nowhere while it sleeps. */
	const char *node = !cluster_on(d) ? d->cfg->node : vm->node;

	json_t *o = json_pack(
		"{s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:b, s:b}", "name", vm->name, "ip", ip, "mac",
		vm->has_mac ? json_string(mac) : json_null(), "state", vm_state_name(vm->state), "node",
		node ? json_string(node) : json_null(), "idle_s", idle, "snapshot_bytes",
		vm->snapshot_bytes ? json_integer((json_int_t)vm->snapshot_bytes) : json_null(),
		"last_wake_ms", vm->last_wake_ms < 0 ? json_null() : json_integer(vm->last_wake_ms), "pinned",
		vm->pinned, "node_lost", vm_node_lost(d, vm));

	vm_explain(d, vm, o);
	return o;
}

/* The nodes gone from etcd that the registry still has VMs running or waking on. */
static json_t *lost_nodes(struct odrsd *d)
{
	json_t *a = json_array(), *n;
	size_t i;

	for (size_t k = 0; k < d->nvms; k++) {
		if (!vm_node_lost(d, d->vms[k]))
			continue;
		json_array_foreach(a, i, n) if (!strcmp(json_string_value(n), d->vms[k]->node)) break;
		if (i == json_array_size(a))
			json_array_append_new(a, json_string(d->vms[k]->node));
	}
	return a;
}

/*
 * odrsd's share of the data path, since start: the reply delay's p99 and
 * maximum, the replies over 1 ms, the longest in-loop part of a reply; the
 * longest loop turn, the turns and those over 1 ms (odrsd(8), Metrics: the histograms whole).
 */
static void delay_status(const struct odrsd *d, json_t *status, json_t *counters)
{
	json_object_set_new(status, "reply_delay_p99_us",
			    json_integer((json_int_t)delay_quantile_us(&d->reply_delay, 0.99)));
	json_object_set_new(status, "reply_delay_max_us", json_integer((json_int_t)d->reply_delay.max_us));
	json_object_set_new(status, "reply_turn_max_us", json_integer((json_int_t)d->reply_turn.max_us));
	json_object_set_new(status, "loop_turn_max_us", json_integer((json_int_t)d->loop_turn.max_us));
	json_object_set_new(counters, "reply_delays_over_1ms",
			    json_integer((json_int_t)delay_over_us(&d->reply_delay, 1000)));
	json_object_set_new(counters, "loop_turns", json_integer((json_int_t)d->loop_turn.count));
	json_object_set_new(counters, "loop_turns_over_1ms",
			    json_integer((json_int_t)delay_over_us(&d->loop_turn, 1000)));
}

static void cmd_status(struct conn *c, const struct wk_ctl_request *req)
{
	struct odrsd *d = c->d;
	size_t sleeping = 0;
	int64_t term;
	const char *holder = cluster_accept_holder(d, &term);
	json_t *o;

	for (size_t i = 0; i < d->nvms; i++)
		sleeping += vm_is_asleep(d->vms[i]);
	o = json_pack("{s:b, s:{s:s, s:o, s:I, s:I, s:I, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
		      "s:I, s:I, s:I}}}",
		      "ok", 1, "status", "node", d->cfg->node, "accept",
		      holder[0] ? json_string(holder) : json_null(), "vms", (json_int_t)d->nvms, "sleeping",
		      (json_int_t)sleeping, "uptime", (json_int_t)(ev_now(d->loop) - d->started), "version",
		      ODRS_VERSION, "counters", "frames", (json_int_t)d->n.frames, "malformed",
		      (json_int_t)d->n.malformed, "arp_replies", (json_int_t)d->n.arp_replies, "syns_held",
		      (json_int_t)d->n.syns_held, "syns_dropped", (json_int_t)d->n.syns_dropped,
		      "syns_replayed", (json_int_t)d->n.syns_replayed, "restores", (json_int_t)d->n.restores,
		      "restore_failures", (json_int_t)d->n.restore_failures, "saves", (json_int_t)d->n.saves,
		      "save_failures", (json_int_t)d->n.save_failures, "filter_updates",
		      (json_int_t)d->n.filter_updates);
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"), "wakes_limited",
			    json_integer((json_int_t)d->n.wakes_limited));
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"), "reloads",
			    json_integer((json_int_t)d->n.reloads));
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"), "flows_held",
			    json_integer((json_int_t)d->n.flows_held));
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"), "flows_unknown",
			    json_integer((json_int_t)d->n.flows_unknown));
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"), "udp_held",
			    json_integer((json_int_t)d->n.udp_held));
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"),
			    "triggers_refused_wake_on", json_integer((json_int_t)d->n.refused_wake_on));
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"),
			    "triggers_refused_wake_ports", json_integer((json_int_t)d->n.refused_wake_ports));
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"),
			    "triggers_refused_wake_udp_ports",
			    json_integer((json_int_t)d->n.refused_wake_udp_ports));
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"),
			    "triggers_refused_routers", json_integer((json_int_t)d->n.refused_routers));
	json_object_set_new(json_object_get(json_object_get(o, "status"), "counters"),
			    "triggers_refused_ignore_sources",
			    json_integer((json_int_t)d->n.refused_ignore_sources));
	capture_status(d, json_object_get(o, "status"),
		       json_object_get(json_object_get(o, "status"), "counters"));
	delay_status(d, json_object_get(o, "status"),
		     json_object_get(json_object_get(o, "status"), "counters"));
	if (cluster_on(d)) {
		json_t *st = json_object_get(o, "status"), *n = json_object_get(st, "counters");
		json_object_set_new(st, "cluster_store",
				    json_string(cluster_store_ok(d) ? "ok" : "unreachable"));
		json_object_set_new(st, "term", json_integer(term));
		json_object_set_new(st, "fenced", json_boolean(cluster_fenced(d)));
		json_object_set_new(st, "lost_nodes", lost_nodes(d));
		json_object_set_new(n, "claims", json_integer((json_int_t)d->n.claims));
		json_object_set_new(n, "claims_lost", json_integer((json_int_t)d->n.claims_lost));
		json_object_set_new(n, "claims_refused", json_integer((json_int_t)d->n.claims_refused));
		json_object_set_new(n, "retrain_frames", json_integer((json_int_t)d->n.retrain_frames));
	}
	reply(c, o);
}

/*
 * The next rows of a list answer, up to LIST_CHUNK unsent; the rest once
 * that has drained (conn_flush kicks conn_process). The answer is still one
 * line, {"ok":true,"vms":[..]}, but 100,000 rows are never all in memory and
 * no loop turn makes more than a chunk. Rows are taken by position in
 * d->vms: across a reload in the middle a VM may be missed or come twice.
 */
static void list_fill(struct conn *c)
{
	struct odrsd *d = c->d;

	while (c->listing && c->len - c->off < LIST_CHUNK) {
		json_t *o;
		char *row;
		bool ok;

		if (c->list_next >= d->nvms) {
			c->listing = false;
			if (!out_append(c, "]}", 2, true))
				return;
			break;
		}
		o = vm_json(d, d->vms[c->list_next]);
		row = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (!row) {
			log_warn("control: out of memory for a list answer; client dropped");
			c->dead = true;
			conn_kick(c);
			return;
		}
		ok = (c->list_next == 0 || out_append(c, ",", 1, false)) &&
		     out_append(c, row, strlen(row), false);
		free(row);
		if (!ok)
			return;
		c->list_next++;
	}
	conn_flush(c);
}

static void cmd_list(struct conn *c, const struct wk_ctl_request *req)
{
	static const char head[] = "{\"ok\":true,\"vms\":[";

	if (!out_append(c, head, sizeof(head) - 1, false))
		return;
	c->listing = true;
	c->list_next = 0;
	list_fill(c);
}

/* Who asked, as the events name a control client: {"by":"control","uid","pid"}. */
static json_t *asked_by(const struct conn *c)
{
	return json_pack("{s:s, s:i, s:i}", "by", "control", "uid", (int)c->peer.uid, "pid",
			 (int)c->peer.pid);
}

static struct vm *req_vm(struct conn *c, const struct wk_ctl_request *req)
{
	struct vm *vm = vm_by_name(c->d, req->vm);

	if (!vm)
		reply_error(c, "unknown VM: %s", req->vm);
	return vm;
}

static void on_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;
	const struct virt_job *job = c->w.vm->job; /* NULL while its job waits to start */
	uint64_t done = job ? __atomic_load_n(&job->progress_done, __ATOMIC_RELAXED) : 0;
	uint64_t total = job ? __atomic_load_n(&job->progress_total, __ATOMIC_RELAXED) : 0;

	/* A client behind on its answers misses progress lines, never an answer. */
	if (c->w.vm->job_busy && total && c->off == c->len)
		reply(c, json_pack("{s:{s:I, s:I}}", "progress", "done", (json_int_t)done, "total",
				   (json_int_t)total));
}

/* The next request waits until this one is answered: answers come in order. */
static void wait_for(struct conn *c, struct waiter **list, struct vm *vm, const char *verb, bool progress)
{
	c->w.vm = vm;
	c->w.list = list;
	c->w.waiting = true;
	c->w.verb = verb;
	c->w.next = *list;
	*list = &c->w;
	if (progress)
		ev_timer_start(c->d->loop, &c->w.progress);
}

/* wake, hibernate, doze: answered at once when the VM is there already, else when its job ends. */
static void cmd_vm_op(struct conn *c, const struct wk_ctl_request *req, enum vm_state done)
{
	struct vm *vm = req_vm(c, req);
	char err[512] = "";
	int r;

	if (!vm)
		return;
	r = done == VM_RUNNING	? vm_request_wake(c->d, vm, WK_TRIGGER_MANUAL, NULL, err, sizeof(err))
	    : done == VM_DOZING ? vm_request_doze(c->d, vm, "manual", err, sizeof(err))
				: vm_request_hibernate(c->d, vm, "manual", err, sizeof(err));
	if (r < 0)
		reply_error(c, "%s", err);
	else if (vm->state == done)
		control_vm_done_one(c, vm, 0, NULL);
	else
		wait_for(c, &vm->waiters, vm, wk_ctl_cmd_name(req->cmd), req->progress);
}

static void cmd_wake(struct conn *c, const struct wk_ctl_request *req)
{
	cmd_vm_op(c, req, VM_RUNNING);
}
static void cmd_hibernate(struct conn *c, const struct wk_ctl_request *req)
{
	cmd_vm_op(c, req, VM_HIBERNATED);
}
static void cmd_doze(struct conn *c, const struct wk_ctl_request *req)
{
	cmd_vm_op(c, req, VM_DOZING);
}

static void cmd_pin(struct conn *c, const struct wk_ctl_request *req, bool pin)
{
	struct vm *vm = req_vm(c, req);
	int64_t ticket;

	if (!vm)
		return;
	vm->pinned = pin;
	evlog_emit(pin ? "pin" : "unpin", vm->name, asked_by(c));
	/* Answered once the pin is durable: it survives a crash right after. */
	if ((ticket = state_save(c->d, vm)) < 0) {
		reply_error(c, "cannot record the pin of %s in state_dir", vm->name);
		return;
	}
	snprintf(c->w.state_of, sizeof(c->w.state_of), "%s", vm->name);
	c->w.ticket = ticket;
	wait_for(c, &c->d->state_waiters, NULL, pin ? "pin" : "unpin", false);
}

static void cmd_pin_on(struct conn *c, const struct wk_ctl_request *req)
{
	cmd_pin(c, req, true);
}
static void cmd_pin_off(struct conn *c, const struct wk_ctl_request *req)
{
	cmd_pin(c, req, false);
}

/* The daemon's verdict: applied, with what changed and what waits for a restart; or why not. */
static void cmd_reload(struct conn *c, const struct wk_ctl_request *req)
{
	char err[4096] = "";
	json_t *verdict = NULL;

	if (odrsd_reload(c->d, asked_by(c), &verdict, err, sizeof(err)) < 0) {
		reply_error(c, "%s", err);
		return;
	}
	json_object_set_new(verdict, "ok", json_true());
	reply(c, verdict);
}

static void cmd_accept(struct conn *c, const struct wk_ctl_request *req)
{
	char err[256] = "";
	int64_t term;
	const char *holder = cluster_accept_holder(c->d, &term);

	if (!req->move[0]) {
		reply(c, json_pack("{s:b, s:o, s:I}", "ok", 1, "accept",
				   holder[0] ? json_string(holder) : json_null(), "term", (json_int_t)term));
		return;
	}
	if (cluster_accept_move(c->d, req->move, err, sizeof(err)) < 0) {
		reply_error(c, "%s", err);
		return;
	}
	/* Answered when etcd has taken the move (control_accept_done). */
	wait_for(c, &c->d->accept_waiters, NULL, "accept", false);
}

static void (*const commands[])(struct conn *c, const struct wk_ctl_request *req) = {
	[WK_CTL_STATUS] = cmd_status, [WK_CTL_LIST] = cmd_list,	    [WK_CTL_HIBERNATE] = cmd_hibernate,
	[WK_CTL_WAKE] = cmd_wake,     [WK_CTL_PIN] = cmd_pin_on,    [WK_CTL_UNPIN] = cmd_pin_off,
	[WK_CTL_RELOAD] = cmd_reload, [WK_CTL_ACCEPT] = cmd_accept, [WK_CTL_DOZE] = cmd_doze,
};

static void handle_line(struct conn *c, const char *line)
{
	struct wk_ctl_request req;
	char err[256];

	if (wk_ctl_parse(line, strlen(line), &req, err, sizeof(err)) < 0)
		reply_error(c, "%s", err);
	else
		commands[req.cmd](c, &req);
}

/* Serve the complete lines received, in order, while no request waits and answers drain. */
static void conn_process(struct conn *c)
{
	char *nl;

	if (c->listing && !c->dead)
		list_fill(c);
	while (!c->dead && !c->refusing && !c->listing && !c->w.waiting && c->len - c->off <= OUT_PAUSE &&
	       (nl = memchr(c->buf, '\n', c->used))) {
		*nl = 0;
		handle_line(c, c->buf);
		c->used -= (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->used);
	}
	/* A line must be shorter than the buffer, its newline included (odrsd(8)). */
	if (!c->dead && c->used == sizeof(c->buf) - 1 && !memchr(c->buf, '\n', c->used)) {
		reply_error(c, "%s", "request too long");
		c->used = 0;
		c->refusing = true; /* nothing after it can be parsed */
	}
}

/* Reads while there is room (a full buffer of pipelined requests waits), serves, and closes when done. */
static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;

	if ((revents & EV_READ) && !c->eof && c->used < sizeof(c->buf) - 1) {
		ssize_t n = read(c->fd, c->buf + c->used, sizeof(c->buf) - 1 - c->used);

		if (n < 0 && errno != EAGAIN && errno != EINTR)
			c->dead = true;
		else if (n == 0)
			c->eof = true;
		else if (n > 0)
			c->used = c->refusing ? 0 : c->used + (size_t)n;
	}
	conn_process(c);
	/*
	 * A refused connection is closed once its answer is out and the client
	 * has seen the end: closing with its input unread would reset the
	 * connection and lose that answer.
	 */
	if (c->refusing && c->off == c->len)
		shutdown(c->fd, SHUT_WR);
	if (c->dead || (c->eof && !c->w.waiting && !c->listing && c->off == c->len)) {
		conn_close(c);
		return;
	}
	if (c->eof || c->used == sizeof(c->buf) - 1)
		ev_io_stop(loop, &c->rio);
	else
		ev_io_start(loop, &c->rio);
}

static void on_conn_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	conn_flush(w->data);
}

static void unwait(struct conn *c)
{
	struct waiter **p;

	if (!c->w.waiting)
		return;
	for (p = c->w.list; *p; p = &(*p)->next)
		if (*p == &c->w) {
			*p = c->w.next;
			break;
		}
	c->w.vm = NULL;
	c->w.waiting = false;
	ev_timer_stop(c->d->loop, &c->w.progress);
}

static void conn_close(struct conn *c)
{
	unwait(c);
	ev_io_stop(c->d->loop, &c->rio);
	ev_io_stop(c->d->loop, &c->wio);
	close(c->fd);
	free(c->out);
	free(c);
}

static void control_vm_done_one(struct conn *c, struct vm *vm, int err, const char *error)
{
	if (err)
		reply_error(c, "%s", error);
	else if (vm->state == VM_HIBERNATED)
		reply(c,
		      json_pack("{s:b, s:s, s:s, s:I, s:I}", "ok", 1, "vm", vm->name, "state", "hibernated",
				"bytes", (json_int_t)vm->snapshot_bytes, "ms", (json_int_t)vm->job_ms));
	else if (vm->state == VM_DOZING)
		reply(c,
		      json_pack("{s:b, s:s, s:s, s:I, s:I, s:I}", "ok", 1, "vm", vm->name, "state", "dozing",
				"bytes_out", (json_int_t)vm->job_paged_out_bytes, "resident_bytes",
				(json_int_t)vm->job_resident_bytes, "ms", (json_int_t)vm->job_ms));
	else
		reply(c, json_pack("{s:b, s:s, s:s, s:I}", "ok", 1, "vm", vm->name, "state",
				   vm_state_name(vm->state), "ms",
				   (json_int_t)(vm->last_wake_ms < 0 ? 0 : vm->last_wake_ms)));
}

/*
 * Every request waiting now gets this answer; each connection serves its next
 * request at the next loop turn, so a request for the same VM that follows in
 * the pipeline waits for (and is answered by) its own completion.
 */
void control_vm_done(struct odrsd *d, struct vm *vm, int err, const char *error)
{
	struct waiter *w;

	while ((w = vm->waiters)) {
		struct conn *c = w->c;

		unwait(c);
		control_vm_done_one(c, vm, err, error);
		conn_kick(c);
	}
}

void control_accept_done(struct odrsd *d, int err, const char *error)
{
	struct waiter *w;

	while ((w = d->accept_waiters)) {
		struct conn *c = w->c;

		unwait(c);
		if (err)
			reply_error(c, "%s", error);
		else
			reply(c, json_pack("{s:b}", "ok", 1));
		conn_kick(c);
	}
}

void control_state_saved(struct odrsd *d, const char *vm, int64_t ticket, int err)
{
	struct waiter **p = &d->state_waiters;
	char why[256];

	if (err)
		snprintf(why, sizeof(why), "cannot record the pin of %s in state_dir: %s", vm,
			 strerror(-err));
	while (*p) {
		struct conn *c = (*p)->c;

		if (strcmp(c->w.state_of, vm) || c->w.ticket > ticket) {
			p = &(*p)->next;
			continue;
		}
		unwait(c); /* *p is the next one now */
		if (err)
			reply_error(c, "%s", why);
		else
			reply(c, json_pack("{s:b}", "ok", 1));
		conn_kick(c);
	}
}

/* Whether gid is among the peer's supplementary groups (usermod -aG odrs makes a member so). */
static bool peer_in_group(int fd, gid_t gid)
{
	gid_t small[64], *groups = small;
	socklen_t len = sizeof(small);
	bool in = false;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
		/* ERANGE: len now says how much the peer's groups take. */
		if (errno != ERANGE || !(groups = malloc(len)) ||
		    getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
			goto out;
	}
	for (size_t i = 0; i < len / sizeof(gid_t) && !in; i++)
		in = groups[i] == gid;
out:
	if (groups != small)
		free(groups);
	return in;
}

/* Root, our own user, or a member of group odrs (the socket's mode says the same); who, in cred. */
static bool peer_allowed(int fd, struct ucred *cred)
{
	socklen_t len = sizeof(*cred);
	struct group *g;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
		return false;
	if (cred->uid == 0 || cred->uid == geteuid())
		return true;
	g = getgrnam("odrs");
	return g && (cred->gid == g->gr_gid || peer_in_group(fd, g->gr_gid));
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct odrsd *d = w->data;
	struct conn *c;
	struct ucred peer;
	int fd = accept4(d->control_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (!peer_allowed(fd, &peer) || !(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return;
	}
	c->peer = peer;
	c->d = d;
	c->fd = fd;
	c->w.c = c;
	ev_io_init(&c->rio, on_conn_io, fd, EV_READ);
	c->rio.data = c;
	ev_io_init(&c->wio, on_conn_writable, fd, EV_WRITE);
	c->wio.data = c;
	ev_timer_init(&c->w.progress, on_progress, 0.25, 0.25);
	c->w.progress.data = c;
	ev_io_start(loop, &c->rio);
}

int control_open(struct odrsd *d, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct group *g = getgrnam("odrs");
	mode_t old;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	old = umask(0117);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 16) < 0 || (g && chown(path, 0, g->gr_gid) < 0)) {
		r = -errno;
		close(fd);
		return r;
	}
	d->control_fd = fd;
	/* The path in force until a restart, whatever a reload says. */
	snprintf(d->control_path, sizeof(d->control_path), "%s", path);
	ev_io_init(&d->control_io, on_accept, fd, EV_READ);
	d->control_io.data = d;
	ev_io_start(d->loop, &d->control_io);
	return 0;
}

void control_close(struct odrsd *d)
{
	if (d->control_fd < 0)
		return;
	ev_io_stop(d->loop, &d->control_io);
	close(d->control_fd);
	d->control_fd = -1;
	unlink(d->control_path);
}
