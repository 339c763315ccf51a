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
#include "log.h"
#include "odrsd.h"

#define CONN_BUF 4096

/* A client connection; while it waits for a VM it is linked into vm->waiters. */
struct waiter {
	struct odrsd *d;
	int fd;
	ev_io io;
	ev_timer progress; /* reports libvirt's progress while waiting */
	char buf[CONN_BUF];
	size_t used;
	struct vm *vm; /* waited for, or NULL */
	bool waiting;  /* for vm, or for an accept-role move */
	const char *verb;
	struct waiter *next;
};

static void conn_close(struct waiter *c);
static void control_vm_done_one(struct waiter *c, struct vm *vm, int err, const char *error);

static void reply(struct waiter *c, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	size_t n;

	json_decref(o);
	if (!s)
		return;
	n = strlen(s);
	s[n] = '\n';
	/* Answers are small; a client that does not read them loses its connection. */
	if (write(c->fd, s, n + 1) != (ssize_t)(n + 1))
		log_debug("control: client gone before reading its answer");
	free(s);
}

static void reply_error(struct waiter *c, const char *fmt, const char *arg)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, arg);
	reply(c, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
}

/* What is not known (a MAC not yet read, a VM never woken) is null: odrsctl shows "-". */
static json_t *vm_json(struct odrsd *d, const struct vm *vm)
{
	char ip[INET_ADDRSTRLEN], mac[18];
	double idle = vm->state == VM_RUNNING ? ev_now(d->loop) - vm->last_activity : 0;

	inet_ntop(AF_INET, &vm->ip, ip, sizeof(ip));
	if (vm->has_mac)
		wk_mac_str(vm->mac, mac);
	/* In a cluster, where the registry says it is; nowhere while it sleeps. */
	const char *node = !cluster_on(d) ? d->cfg->node : vm->node[0] ? vm->node : NULL;

	return json_pack("{s:s, s:s, s:o, s:s, s:o, s:I, s:I, s:o, s:b}", "name", vm->name, "ip", ip, "mac",
			 vm->has_mac ? json_string(mac) : json_null(), "state", vm_state_name(vm->state),
			 "node", node ? json_string(node) : json_null(), "idle_s", (json_int_t)idle,
			 "snapshot_bytes", (json_int_t)vm->snapshot_bytes, "last_wake_ms",
			 vm->last_wake_ms < 0 ? json_null() : json_integer(vm->last_wake_ms), "pinned",
			 vm->pinned);
}

static void cmd_status(struct waiter *c, const struct wk_ctl_request *req)
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
	if (cluster_on(d)) {
		json_t *st = json_object_get(o, "status"), *n = json_object_get(st, "counters");
		json_object_set_new(st, "cluster_store",
				    json_string(cluster_store_ok(d) ? "ok" : "unreachable"));
		json_object_set_new(st, "term", json_integer(term));
		json_object_set_new(n, "claims", json_integer((json_int_t)d->n.claims));
		json_object_set_new(n, "claims_lost", json_integer((json_int_t)d->n.claims_lost));
		json_object_set_new(n, "claims_refused", json_integer((json_int_t)d->n.claims_refused));
		json_object_set_new(n, "retrain_frames", json_integer((json_int_t)d->n.retrain_frames));
	}
	reply(c, o);
}

static void cmd_list(struct waiter *c, const struct wk_ctl_request *req)
{
	json_t *a = json_array();

	for (size_t i = 0; i < c->d->nvms; i++)
		json_array_append_new(a, vm_json(c->d, c->d->vms[i]));
	reply(c, json_pack("{s:b, s:o}", "ok", 1, "vms", a));
}

static struct vm *req_vm(struct waiter *c, const struct wk_ctl_request *req)
{
	struct vm *vm = vm_by_name(c->d, req->vm);

	if (!vm)
		reply_error(c, "unknown VM: %s", req->vm);
	return vm;
}

static void on_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct waiter *c = w->data;
	const struct virt_job *job = &c->vm->job;
	uint64_t done = __atomic_load_n(&job->progress_done, __ATOMIC_RELAXED);
	uint64_t total = __atomic_load_n(&job->progress_total, __ATOMIC_RELAXED);

	if (c->vm->job_busy && total)
		reply(c, json_pack("{s:{s:I, s:I}}", "progress", "done", (json_int_t)done, "total",
				   (json_int_t)total));
}

static void wait_for(struct waiter *c, struct vm *vm, const char *verb, const struct wk_ctl_request *req)
{
	c->vm = vm;
	c->waiting = true;
	c->verb = verb;
	c->next = vm->waiters;
	vm->waiters = c;
	ev_io_stop(c->d->loop, &c->io); /* one request at a time */
	if (req->progress)
		ev_timer_start(c->d->loop, &c->progress);
}

static void cmd_vm_op(struct waiter *c, const struct wk_ctl_request *req, bool wake)
{
	struct vm *vm = req_vm(c, req);
	char err[512] = "";
	int r;

	if (!vm)
		return;
	r = wake ? wake_start(c->d, vm, WK_TRIGGER_MANUAL, NULL, err, sizeof(err))
		 : hibernate_start(c->d, vm, "manual", err, sizeof(err));
	if (r < 0)
		reply_error(c, "%s", err);
	else if (vm->state == (wake ? VM_RUNNING : VM_HIBERNATED))
		control_vm_done_one(c, vm, 0, NULL);
	else
		wait_for(c, vm, wake ? "wake" : "hibernate", req);
}

static void cmd_wake(struct waiter *c, const struct wk_ctl_request *req)
{
	cmd_vm_op(c, req, true);
}
static void cmd_hibernate(struct waiter *c, const struct wk_ctl_request *req)
{
	cmd_vm_op(c, req, false);
}

static void cmd_pin(struct waiter *c, const struct wk_ctl_request *req, bool pin)
{
	struct vm *vm = req_vm(c, req);

	if (!vm)
		return;
	vm->pinned = pin;
	if (state_save(c->d, vm) < 0)
		reply_error(c, "cannot record the pin of %s in state_dir", vm->name);
	else
		reply(c, json_pack("{s:b}", "ok", 1));
}

static void cmd_pin_on(struct waiter *c, const struct wk_ctl_request *req)
{
	cmd_pin(c, req, true);
}
static void cmd_pin_off(struct waiter *c, const struct wk_ctl_request *req)
{
	cmd_pin(c, req, false);
}

static void cmd_reload(struct waiter *c, const struct wk_ctl_request *req)
{
	char err[4096] = "";

	if (odrsd_reload(c->d, err, sizeof(err)) < 0)
		reply_error(c, "%s", err);
	else
		reply(c, json_pack("{s:b}", "ok", 1));
}

static void cmd_accept(struct waiter *c, const struct wk_ctl_request *req)
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
	c->waiting = true;
	c->verb = "accept";
	c->next = c->d->accept_waiters;
	c->d->accept_waiters = c;
	ev_io_stop(c->d->loop, &c->io);
}

static void (*const commands[])(struct waiter *c, const struct wk_ctl_request *req) = {
	[WK_CTL_STATUS] = cmd_status, [WK_CTL_LIST] = cmd_list,	    [WK_CTL_HIBERNATE] = cmd_hibernate,
	[WK_CTL_WAKE] = cmd_wake,     [WK_CTL_PIN] = cmd_pin_on,    [WK_CTL_UNPIN] = cmd_pin_off,
	[WK_CTL_RELOAD] = cmd_reload, [WK_CTL_ACCEPT] = cmd_accept,
};

static void handle_line(struct waiter *c, const char *line)
{
	struct wk_ctl_request req;
	char err[256];

	if (wk_ctl_parse(line, strlen(line), &req, err, sizeof(err)) < 0)
		reply_error(c, "%s", err);
	else
		commands[req.cmd](c, &req);
}

/* Serve the complete lines received, one at a time: a waiting request holds the rest. */
static void conn_process(struct waiter *c)
{
	char *nl;

	while (!c->waiting && (nl = strchr(c->buf, '\n'))) {
		*nl = 0;
		handle_line(c, c->buf);
		c->used -= (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->used + 1);
	}
}

static void on_conn_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct waiter *c = w->data;
	ssize_t n = read(c->fd, c->buf + c->used, sizeof(c->buf) - 1 - c->used);

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->used += (size_t)n;
	c->buf[c->used] = 0;
	conn_process(c);
	if (c->used == sizeof(c->buf) - 1) {
		reply_error(c, "%s", "request too long");
		conn_close(c);
	}
}

static void unwait(struct waiter *c)
{
	struct waiter **p;

	if (!c->waiting)
		return;
	for (p = c->vm ? &c->vm->waiters : &c->d->accept_waiters; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	c->vm = NULL;
	c->waiting = false;
	ev_timer_stop(c->d->loop, &c->progress);
}

static void conn_close(struct waiter *c)
{
	unwait(c);
	ev_io_stop(c->d->loop, &c->io);
	close(c->fd);
	free(c);
}

static void control_vm_done_one(struct waiter *c, struct vm *vm, int err, const char *error)
{
	if (err)
		reply_error(c, "%s", error);
	else if (vm->state == VM_HIBERNATED)
		reply(c,
		      json_pack("{s:b, s:s, s:s, s:I, s:I}", "ok", 1, "vm", vm->name, "state", "hibernated",
				"bytes", (json_int_t)vm->snapshot_bytes, "ms", (json_int_t)vm->job.ms));
	else
		reply(c, json_pack("{s:b, s:s, s:s, s:I}", "ok", 1, "vm", vm->name, "state",
				   vm_state_name(vm->state), "ms",
				   (json_int_t)(vm->last_wake_ms < 0 ? 0 : vm->last_wake_ms)));
}

void control_vm_done(struct odrsd *d, struct vm *vm, int err, const char *error)
{
	struct waiter *c;

	while ((c = vm->waiters)) {
		unwait(c);
		control_vm_done_one(c, vm, err, error);
		ev_io_start(d->loop, &c->io);
		conn_process(c);
	}
}

void control_accept_done(struct odrsd *d, int err, const char *error)
{
	struct waiter *c;

	while ((c = d->accept_waiters)) {
		unwait(c);
		if (err)
			reply_error(c, "%s", error);
		else
			reply(c, json_pack("{s:b}", "ok", 1));
		ev_io_start(d->loop, &c->io);
		conn_process(c);
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

/* Root, our own user, or a member of group odrs (the socket's mode says the same). */
static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct group *g;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	if (cred.uid == 0 || cred.uid == geteuid())
		return true;
	g = getgrnam("odrs");
	return g && (cred.gid == g->gr_gid || peer_in_group(fd, g->gr_gid));
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct odrsd *d = w->data;
	struct waiter *c;
	int fd = accept4(d->control_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (!peer_allowed(fd) || !(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return;
	}
	c->d = d;
	c->fd = fd;
	ev_io_init(&c->io, on_conn_readable, fd, EV_READ);
	c->io.data = c;
	ev_timer_init(&c->progress, on_progress, 0.25, 0.25);
	c->progress.data = c;
	ev_io_start(loop, &c->io);
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
