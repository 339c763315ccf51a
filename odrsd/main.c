/* odrsd: start-up, privileges, signals, reload. */
#include <arpa/inet.h>
#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "control.h"
#include "discover.h"
#include "evlog.h"
#include "log.h"
#include "metrics.h"
#include "odrsd.h"
#include "snapfile.h"

#define DEFAULT_CONFIG "/etc/odrs/odrs.conf"

static const char usage_text[] = "usage: odrsd [-c FILE] [-f] [-t] [-d] [-V] [-h]\n"
				 "  -c FILE     configuration (default " DEFAULT_CONFIG ")\n"
				 "  -f          stay in the foreground, log to stderr as well\n"
				 "  -t          check the configuration and exit: 0 valid, 2 invalid\n"
				 "  -d          debug logging\n"
				 "  -V          print the version and exit\n"
				 "  -h, --help  print this and exit\n";

/* Asked for (-h, --help): on stdout, exit 0; after a usage error: on stderr, exit 2. */
static __attribute__((noreturn)) void usage(bool asked)
{
	fputs(usage_text, asked ? stdout : stderr);
	exit(asked ? 0 : 2);
}

static void diag_stderr(void *ctx, const char *file, unsigned line, const char *msg)
{
	char text[1024];

	wk_diag_format(text, sizeof(text), file, line, msg);
	fprintf(stderr, "%s\n", text);
}

static void diag_log(void *ctx, const char *file, unsigned line, const char *msg)
{
	char text[1024];

	wk_diag_format(text, sizeof(text), file, line, msg);
	log_err("%s", text);
}

static void diag_warn(void *ctx, const char *file, unsigned line, const char *msg)
{
	log_warn("%s:%u: %s", file, line, msg);
}

/*
 * A doze pages out to swap: each sleep key that asks for one on a host
 * without swap is reported, once per line. Returns how many.
 */
static unsigned check_doze_swap(const struct wk_config *cfg, wk_diag_fn diag, void *ctx)
{
	static const char *const sleep_name[] = {
		[WK_SLEEP_DOZE] = "doze", [WK_SLEEP_DOZE_THEN_HIBERNATE] = "doze_then_hibernate"
	};
	unsigned n = 0;
	char msg[128];

	if (virt_swap_check() == 0)
		return 0;
	for (size_t i = 0; i <= cfg->nvms; i++) {
		const struct wk_policy *p = i < cfg->nvms ? &cfg->vms[i].policy : &cfg->policy;

		/* A [vm] section without its own sleep key repeats the [policy] line. */
		if (p->sleep == WK_SLEEP_HIBERNATE ||
		    (i < cfg->nvms && p->sleep_line == cfg->policy.sleep_line))
			continue;
		snprintf(msg, sizeof(msg), "sleep = %s needs swap, and the host has none (/proc/swaps)",
			 sleep_name[p->sleep]);
		diag(ctx, cfg->path, p->sleep_line, msg);
		n++;
	}
	return n;
}

/* mkdir -p for the directory part of path (dir_only: path is itself the directory). */
static int make_dirs(const char *path, bool dir_only)
{
	char buf[4096], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	if (!dir_only && (p = strrchr(buf, '/')))
		*p = 0;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* vms by name, for vm_by_name; NULL when out of memory. */
static struct wk_names *names_build(struct vm **vms, size_t n)
{
	struct wk_names *byname = wk_names_new(n);

	for (size_t i = 0; byname && i < n; i++)
		if (wk_names_add(byname, vms[i]->name, vms[i]) < 0) {
			wk_names_free(byname);
			byname = NULL;
		}
	return byname;
}

static int vms_build(struct odrsd *d)
{
	d->vms = calloc(d->cfg->nvms ? d->cfg->nvms : 1, sizeof(*d->vms));
	if (!d->vms)
		return -ENOMEM;
	for (size_t i = 0; i < d->cfg->nvms; i++) {
		if (!(d->vms[i] = vm_new(d, &d->cfg->vms[i])))
			return -ENOMEM;
		d->nvms++;
	}
	return (d->byname = names_build(d->vms, d->nvms)) ? 0 : -ENOMEM;
}

/* A refused reload tells its caller why: the problems, one a line, as far as they fit. */
struct reload_diag {
	char *buf;
	size_t len, used;
};

static void diag_reload(void *ctx, const char *file, unsigned line, const char *msg)
{
	struct reload_diag *rd = ctx;
	int w;

	diag_log(NULL, file, line, msg);
	if (rd->used + 1 >= rd->len)
		return;
	rd->buf[rd->used++] = '\n';
	w = wk_diag_format(rd->buf + rd->used, rd->len - rd->used, file, line, msg);
	if (w > 0)
		rd->used += (size_t)w < rd->len - rd->used ? (size_t)w : rd->len - rd->used - 1;
}

/* The running VMs by name, for a reload to match the new file's sections to. */
static int vms_by_name(struct odrsd *d, struct hsearch_data *h)
{
	ENTRY e, *found;

	memset(h, 0, sizeof(*h));
	if (!hcreate_r(d->nvms * 2 + 1, h))
		return -ENOMEM;
	for (size_t i = 0; i < d->nvms; i++) {
		e.key = d->vms[i]->name;
		e.data = d->vms[i];
		if (!hsearch_r(e, ENTER, &found, h)) {
			hdestroy_r(h);
			return -ENOMEM;
		}
	}
	return 0;
}

/* The running VM called name, taken out of h (its entry's data cleared), or NULL. */
static struct vm *vm_take(struct hsearch_data *h, const char *name)
{
	ENTRY e = { .key = (char *)name }, *found;
	struct vm *vm;

	if (!hsearch_r(e, FIND, &found, h) || !found->data)
		return NULL;
	vm = found->data;
	found->data = NULL;
	return vm;
}

/* What a reload or a discovery applies: cfg's [vm] sections, then the discovered domains. */
struct vm_set {
	const struct wk_config *cfg;
	const struct wk_vmconf *found;
	size_t nfound;
};

static size_t set_size(const struct vm_set *s)
{
	return s->cfg->nvms + s->nfound;
}

static const struct wk_vmconf *set_conf(const struct vm_set *s, size_t i)
{
	return i < s->cfg->nvms ? &s->cfg->vms[i] : &s->found[i - s->cfg->nvms];
}

/*
 * The table the set describes: the kept VMs (cur[i] for set_conf(i), NULL
 * for a new one) under their new addresses, and the new VMs made into it
 * (added[i]); their name index in *byname. Nothing running changes; on
 * failure all is undone.
 */
static struct wk_vmtable *table_build(struct odrsd *d, const struct vm_set *set, struct vm **cur, bool *added,
				      struct wk_names **byname, char *err, size_t errlen)
{
	size_t n = set_size(set), made = 0;
	struct wk_vmtable *t = wk_vmtable_new(n), *running = d->table;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const struct wk_vmconf *c = set_conf(set, i);
		struct vm *vm = cur[i];
		/* A MAC the file no longer names stays: it was read from the domain. */
		const uint8_t *mac = c->has_mac ? c->mac : vm && vm->has_mac ? vm->mac : NULL;

		if (vm && (wk_vmtable_add(t, c->ip, mac, vm) < 0 ||
			   (c->has_ip6 && wk_vmtable_add_ip6(t, c->ip6, vm) < 0))) {
			snprintf(err, errlen,
				 "%s: its addresses are another VM's (a MAC read from its domain?); "
				 "the running configuration is kept",
				 c->name);
			goto undo;
		}
	}
	/* vm_new indexes a new VM in d->table: the new table for now. */
	d->table = t;
	for (; made < n; made++) {
		if (cur[made])
			continue;
		if (!(cur[made] = vm_new(d, set_conf(set, made)))) {
			snprintf(err, errlen,
				 "%s: cannot add (out of memory, or its MAC is another VM's); "
				 "the running configuration is kept",
				 set_conf(set, made)->name);
			goto undo;
		}
		added[made] = true;
	}
	d->table = running;
	if (!(*byname = names_build(cur, n))) {
		snprintf(err, errlen, "out of memory; the running configuration is kept");
		goto undo;
	}
	return t;
undo:
	d->table = running;
	for (size_t i = 0; i < made; i++)
		if (added[i]) {
			vm_free(d, cur[i]);
			cur[i] = NULL;
			added[i] = false;
		}
	wk_vmtable_free(t);
	return NULL;
}

/* The keys a running odrsd took at start: a reload that changes them is applied without them. */
static const struct {
	const char *key;
	size_t off;
	bool text; /* a char *, else an unsigned (or an enum) */
} restart_keys[] = {
	{ "node", offsetof(struct wk_config, node), true },
	{ "snapshot_dir", offsetof(struct wk_config, snapshot_dir), true },
	{ "libvirt_uri", offsetof(struct wk_config, libvirt_uri), true },
	{ "control_socket", offsetof(struct wk_config, control_socket), true },
	{ "state_dir", offsetof(struct wk_config, state_dir), true },
	{ "wake_concurrency", offsetof(struct wk_config, wake_concurrency), false },
	{ "hibernate_concurrency", offsetof(struct wk_config, hibernate_concurrency), false },
	{ "backend", offsetof(struct wk_config, backend), false },
	{ "etcd", offsetof(struct wk_config, etcd), true },
	{ "metrics_listen", offsetof(struct wk_config, metrics_listen), true },
};

/* The restart_keys that next changes, as a JSON array, each logged. */
static json_t *restart_needed(const struct wk_config *cur, const struct wk_config *next)
{
	json_t *keys = json_array();

	for (size_t i = 0; i < sizeof(restart_keys) / sizeof(restart_keys[0]); i++) {
		const char *a = (const char *)cur + restart_keys[i].off,
			   *b = (const char *)next + restart_keys[i].off;
		bool changed;

		if (restart_keys[i].text) {
			const char *x = *(char *const *)a, *y = *(char *const *)b;
			changed = (x == NULL) != (y == NULL) || (x && strcmp(x, y));
		} else {
			changed = *(const unsigned *)a != *(const unsigned *)b;
		}
		if (!changed)
			continue;
		json_array_append_new(keys, json_string(restart_keys[i].key));
		log_warn("reload: %s changed; it applies after a restart", restart_keys[i].key);
	}
	return keys;
}

/* The reload event: ok, who asked (by's members, its reference taken), then fields (taken too). */
static void reload_event(bool ok, json_t *by, json_t *fields)
{
	json_t *ev = json_pack("{s:b}", "ok", ok);

	json_object_update(ev, by);
	json_object_update(ev, fields);
	json_decref(by);
	json_decref(fields);
	evlog_emit("reload", NULL, ev);
}

/* A reload refused: the event says why, and who asked. */
static int reload_refused(json_t *by, const char *err, int r)
{
	reload_event(false, by, json_pack("{s:s}", "error", err));
	return r;
}

int odrsd_vms_apply(struct odrsd *d, const struct wk_config *cfg, const struct wk_vmconf *found,
		    size_t nfound, const char *why, json_t *added_names, json_t *removed_names, char *err,
		    size_t errlen)
{
	struct vm_set set = { cfg, found, nfound };
	size_t n = set_size(&set);
	struct wk_vmtable *table;
	struct wk_names *byname;
	struct hsearch_data running;
	struct vm **vms;
	bool *added;

	vms = calloc(n ? n : 1, sizeof(*vms));
	added = calloc(n ? n : 1, sizeof(*added));
	if (!vms || !added || vms_by_name(d, &running) < 0) {
		free(vms);
		free(added);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		vms[i] = vm_take(&running, set_conf(&set, i)->name);
	if (!(table = table_build(d, &set, vms, added, &byname, err, errlen))) {
		hdestroy_r(&running);
		free(vms);
		free(added);
		return -EEXIST;
	}
	/* Committed: from here on nothing fails. */
	for (size_t i = 0; i < d->nvms; i++) {
		struct vm *vm = vm_take(&running, d->vms[i]->name);

		if (!vm)
			continue;
		log_info("%s: %s no longer managed", why, vm->name);
		if (removed_names)
			json_array_append_new(removed_names, json_string(vm->name));
		vm->conf = NULL;
		vm_free(d, vm);
	}
	hdestroy_r(&running);
	wk_vmtable_free(d->table);
	d->table = table;
	wk_names_free(d->byname);
	d->byname = byname;
	for (size_t i = 0; i < n; i++) {
		const struct wk_vmconf *c = set_conf(&set, i);
		struct vm *vm = vms[i];

		vm->conf = c;
		if (added[i]) {
			log_info("%s: %s now managed", why, vm->name);
			if (added_names)
				json_array_append_new(added_names, json_string(vm->name));
			vm_inspect(d, vm);
			continue;
		}
		if (vm->ip != c->ip) {
			char ip[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, &c->ip, ip, sizeof(ip));
			log_info("%s: %s now at %s", why, vm->name, ip);
		}
		vm->ip = c->ip;
		if (c->has_mac) {
			memcpy(vm->mac, c->mac, WK_ETH_ALEN);
			vm->has_mac = true;
		}
		vm->has_ip6 = c->has_ip6;
		memcpy(vm->ip6, c->ip6, 16);
	}
	free(added);
	free(d->vms);
	d->vms = vms;
	d->nvms = n;
	capture_filter_changed(d);
	return 0;
}

/* Parse, validate, swap. VMs keep their state, held SYNs and running jobs. */
int odrsd_reload(struct odrsd *d, json_t *by, json_t **verdict, char *err, size_t errlen)
{
	json_t *added_names, *removed_names, *restart, *v;
	struct wk_config *next;
	struct discovered found;
	struct reload_diag rd = { err, errlen, 0 };
	int r;

	rd.used = (size_t)snprintf(err, errlen,
				   "%s is invalid; the running configuration is kept:", d->config_path);
	if (rd.used >= errlen)
		rd.used = errlen - 1;
	r = wk_config_load(d->config_path, diag_reload, &rd, &next);
	if (r < 0)
		return reload_refused(by, err, r);
	check_doze_swap(next, diag_warn, NULL);
	if (discover_build(d, next, &found) < 0) {
		wk_config_free(next);
		snprintf(err, errlen, "out of memory");
		return reload_refused(by, err, -ENOMEM);
	}
	added_names = json_array();
	removed_names = json_array();
	if ((r = odrsd_vms_apply(d, next, found.vms, found.n, "reload", added_names, removed_names, err,
				 errlen)) < 0) {
		log_err("reload refused: %s", err);
		json_decref(added_names);
		json_decref(removed_names);
		discover_abandon(&found);
		wk_config_free(next);
		return reload_refused(by, err, r);
	}
	discover_commit(d, &found);
	restart = restart_needed(d->cfg, next);
	if (strcmp(next->interface, d->cfg->interface))
		capture_interface_changed(d);
	if (next->discover != d->cfg->discover)
		virtev_discover(d, next->discover == WK_DISCOVER_LIBVIRT);
	wk_config_free(d->cfg);
	d->cfg = next;
	d->ifindex = if_nametoindex(d->cfg->interface);
	if ((r = evlog_open(d->cfg->event_log, d->cfg->node)) < 0)
		log_err("event log %s: %s", d->cfg->event_log, strerror(-r));
	idle_interval_changed(d);
	virt_set_restore_spacing(d->virt, d->cfg->wake_spacing_ms);
	d->n.reloads++;
	log_info("reload: %s applied, %zu VMs", d->config_path, d->nvms);
	v = json_pack("{s:I, s:o, s:o, s:o}", "vms", (json_int_t)d->nvms, "added", added_names, "removed",
		      removed_names, "restart_needed", restart);
	reload_event(true, by, json_incref(v));
	if (verdict)
		*verdict = v;
	else
		json_decref(v);
	return 0;
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	char err[4096];

	odrsd_reload(w->data, json_pack("{s:s}", "by", "SIGHUP"), NULL, err, sizeof(err));
}

/* Asleep, and nobody would wake it once this odrsd is gone: no other node stands in for it. */
static bool wakes_only_here(const struct odrsd *d, const struct vm *vm)
{
	return (vm->state == VM_HIBERNATED && !cluster_on(d)) ||
	       (vm->state == VM_DOZING && vm_is_local(d, vm));
}

static void stopped(struct odrsd *d, const char *signal, int asked)
{
	json_t *f = json_pack("{s:s}", "signal", signal);
	size_t asleep = 0;

	if (asked >= 0) {
		for (size_t i = 0; i < d->nvms; i++)
			asleep += vm_is_asleep(d->vms[i]) && (!cluster_on(d) || vm_is_local(d, d->vms[i]));
		json_object_set_new(f, "woken", json_integer(asked));
		json_object_set_new(f, "still_asleep", json_integer((json_int_t)asleep));
		log_info("stopping: %d VMs asked to wake, %zu still asleep", asked, asleep);
	}
	evlog_emit("stop", NULL, f);
	ev_break(d->loop, EVBREAK_ALL);
}

/* wake_on_stop: the wakes asked for at the stop are over (or wake_timeout passed): stop now. */
static void on_stop_wait(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;
	bool waking = false;

	for (size_t i = 0; i < d->nvms && !waking; i++)
		waking = d->vms[i]->state == VM_WAKING && vm_is_local(d, d->vms[i]);
	if (waking && ev_now(loop) < d->stop_deadline)
		return;
	ev_timer_stop(loop, w);
	stopped(d, d->stop_signal, (int)d->stop_woken);
}

static void on_sigterm(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct odrsd *d = w->data;
	char err[256];

	snprintf(d->stop_signal, sizeof(d->stop_signal), "SIG%s", sigabbrev_np(w->signum));
	/* A second signal while the wakes run: stop at once. */
	if (!d->cfg->wake_on_stop || ev_is_active(&d->stop_wait)) {
		log_info("signal %d: stopping; no VM changes state", w->signum);
		stopped(d, d->stop_signal, ev_is_active(&d->stop_wait) ? (int)d->stop_woken : -1);
		return;
	}
	d->stop_woken = 0;
	/* Nothing goes back to sleep while it stops. */
	idle_stop(d);
	for (size_t i = 0; i < d->nvms; i++) {
		if (!wakes_only_here(d, d->vms[i]))
			continue;
		if (vm_request_wake(d, d->vms[i], WK_TRIGGER_MANUAL, NULL, err, sizeof(err)) < 0)
			log_warn("stopping: %s", err);
		else
			d->stop_woken++;
	}
	log_info("signal %d: waking %u VMs before stopping (wake_on_stop), for at most %.0f s", w->signum,
		 d->stop_woken, d->cfg->wake_timeout_ms / 1000.);
	sd_notifyf(0, "STOPPING=1\nSTATUS=waking %u VMs before stopping", d->stop_woken);
	d->stop_deadline = ev_now(loop) + d->cfg->wake_timeout_ms / 1000.;
	ev_timer_init(&d->stop_wait, on_stop_wait, 0., 0.2);
	d->stop_wait.data = d;
	ev_timer_start(loop, &d->stop_wait);
}

/*
 * After the capture, injection and control handles are open, keep only what
 * re-filtering (NET_RAW, NET_ADMIN) and a doze's page-out (SYS_NICE for
 * process_madvise, SYS_PTRACE to read QEMU's memory map and advise it:
 * libvirt's QEMU is not dumpable, even run as root) need.
 */
static int drop_privileges(void)
{
	capng_clear(CAPNG_SELECT_BOTH);
	capng_updatev(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED, CAP_NET_RAW, CAP_NET_ADMIN, CAP_SYS_NICE,
		      CAP_SYS_PTRACE, -1);
	return capng_apply(CAPNG_SELECT_BOTH) < 0 ? -EPERM : 0;
}

/*
 * One odrsd per node: an flock on STATE_DIR/odrsd.lock, held for life (the
 * kernel drops it however we exit), taken before the control socket is
 * touched, so a second instance never removes the first one's socket.
 */
static int take_instance_lock(const char *state_dir)
{
	char path[4096], pid[32] = "";
	int fd, len;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/odrsd.lock", state_dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		int err = errno;

		log_err("%s: %s", path, strerror(err));
		return -err;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		if (err == EWOULDBLOCK) {
			n = pread(fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			pid[strcspn(pid, "\n")] = 0;
			log_err("another odrsd (pid %s) holds %s", pid[0] ? pid : "unknown", path);
		} else {
			log_err("%s: %s", path, strerror(err));
		}
		close(fd);
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
		log_warn("%s: cannot record our pid", path);
	return 0; /* fd stays open: it is the lock */
}

static int start(struct odrsd *d)
{
	char foreign[256];
	int r;

	/* Its VMs still hibernate on request; each doze fails with this reason. */
	check_doze_swap(d->cfg, diag_warn, NULL);
	if ((r = make_dirs(d->cfg->state_dir, true)) < 0) {
		log_err("state_dir %s: %s", d->cfg->state_dir, strerror(-r));
		return r;
	}
	if ((r = take_instance_lock(d->cfg->state_dir)) < 0)
		return r;
	if ((r = make_dirs(d->cfg->control_socket, false)) < 0 ||
	    (r = make_dirs(d->cfg->event_log, false)) < 0) {
		log_err("creating odrsd's directories: %s", strerror(-r));
		return r;
	}
	if (!(d->ifindex = if_nametoindex(d->cfg->interface))) {
		log_err("interface %s: %s", d->cfg->interface, strerror(errno));
		return -ENODEV;
	}
	if ((d->inject_fd = inject_open()) < 0) {
		log_err("packet socket: %s", strerror(-d->inject_fd));
		return d->inject_fd;
	}
	/* Without a cluster this node always accepts; with one, etcd says when. */
	d->accept = d->cfg->backend != WK_BACKEND_ETCD;
	wake_init(d);
	if (!(d->table = wk_vmtable_new(d->cfg->nvms)) || vms_build(d) < 0) {
		log_err("out of memory");
		return -ENOMEM;
	}
	if ((r = capture_start(d)) < 0)
		return r;
	if ((r = evlog_open(d->cfg->event_log, d->cfg->node)) < 0) {
		log_err("event log %s: %s", d->cfg->event_log, strerror(-r));
		return r;
	}
	if ((r = control_open(d, d->cfg->control_socket)) < 0) {
		log_err("control socket %s: %s", d->cfg->control_socket, strerror(-r));
		return r;
	}
	if ((r = metrics_open(d)) < 0)
		return r;
	if ((r = drop_privileges()) < 0) {
		log_err("dropping capabilities failed");
		return r;
	}
	/* odrsd renames and removes files there: a directory shared with disks is refused. */
	if ((r = snapfile_dir_check(d->cfg->snapshot_dir, foreign, sizeof(foreign))) < 0) {
		if (r == -ENOTEMPTY)
			log_err("snapshot_dir %s holds %s, which is neither an odrs snapshot "
				"(NAME" SNAPFILE_SUFFIX "*) nor a libvirt save image: refusing to start; "
				"give odrs a directory of its own",
				d->cfg->snapshot_dir, foreign);
		else
			log_err("snapshot_dir %s: %s", d->cfg->snapshot_dir, strerror(-r));
		return r;
	}
	/* Workers start after the drop: threads inherit the reduced capability set. */
	if ((r = state_start(d)) < 0) {
		log_err("state writer: %s", strerror(-r));
		return r;
	}
	if ((r = metrics_start(d)) < 0)
		return r;
	r = virt_open(&d->virt, d->loop, d->cfg->libvirt_uri, d->cfg->snapshot_dir, d->cfg->node,
		      d->cfg->wake_concurrency, d->cfg->hibernate_concurrency, wake_job_done, d);
	if (r < 0) {
		log_err("libvirt %s: %s", d->cfg->libvirt_uri, strerror(-r));
		return r;
	}
	virt_set_restore_spacing(d->virt, d->cfg->wake_spacing_ms);
	if ((r = virtev_start(d)) < 0) {
		log_err("libvirt domain events: %s", strerror(-r));
		return r;
	}
	if ((r = cluster_start(d)) < 0) {
		log_err("cluster store %s: %s", d->cfg->etcd, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < d->nvms; i++)
		vm_inspect(d, d->vms[i]);
	idle_start(d);
	return 0;
}

/*
 * A loop turn, from its wake-up out of poll to its next poll: what the
 * callbacks took, which is what a frame that came meanwhile waited for. The
 * check watcher runs first in a turn (libev queues checks last at the top
 * priority, and runs the last queued first), the prepare watcher after
 * every callback of the turn.
 */
static void on_turn_begin(struct ev_loop *loop, ev_check *w, int revents)
{
	struct odrsd *d = w->data;

	clock_gettime(CLOCK_MONOTONIC, &d->turn_began);
}

static void on_turn_end(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct odrsd *d = w->data;

	/* Before the first poll no turn has begun. */
	if (d->turn_began.tv_sec || d->turn_began.tv_nsec)
		delay_observe(&d->loop_turn, delay_since_mono_us(&d->turn_began));
}

static void loop_turns_start(struct odrsd *d)
{
	ev_check_init(&d->turn_begin, on_turn_begin);
	ev_set_priority(&d->turn_begin, EV_MAXPRI);
	d->turn_begin.data = d;
	ev_check_start(d->loop, &d->turn_begin);
	ev_prepare_init(&d->turn_end, on_turn_end);
	ev_set_priority(&d->turn_end, EV_MINPRI);
	d->turn_end.data = d;
	ev_prepare_start(d->loop, &d->turn_end);
}

/*
 * Without -f the parent waits until the child has started (interface,
 * libvirt, control socket and the rest) and exits with its result, so a
 * start that fails exits non-zero. The child reports one byte on the pipe:
 * 0 serving, 1 failed; a child that dies says nothing, which counts as failed.
 * Returns the pipe's write end in the child.
 */
static int detach_begin(void)
{
	int report[2];
	char ok = 1;
	pid_t pid;

	if (pipe2(report, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		perror("odrsd: fork");
		exit(1);
	}
	if (pid > 0) {
		close(report[1]);
		while (read(report[0], &ok, 1) < 0 && errno == EINTR)
			;
		_exit(ok == 0 ? 0 : 1);
	}
	close(report[0]);
	if (setsid() < 0 || chdir("/") < 0) {
		perror("odrsd: setsid");
		exit(1);
	}
	return report[1];
}

/* Serving: tell the waiting parent, and leave the terminal. */
static void detach_end(int report, const struct odrsd *d)
{
	char ok = 0;
	int null = open("/dev/null", O_RDWR);

	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	log_init("odrsd", false, d->debug);
	if (write(report, &ok, 1) != 1)
		log_warn("the starting parent is gone");
	close(report);
}

int main(int argc, char **argv)
{
	static struct odrsd od = { .control_fd = -1, .inject_fd = -1 };
	struct odrsd *d = &od;
	bool check_only = false;
	int c, r, report = -1;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	/*
	 * glibc raises its mmap threshold to the size of each large block freed
	 * (up to 32 MiB), and its trim threshold to twice that: once the loader
	 * freed its working tables (8-16 MiB at 100,000 VMs), a reload's per-VM
	 * arrays (the new [vm] sections, the matching hash, the VM table, the
	 * name index) came from the heap and its peak stayed resident, 1,239 B
	 * per VM against 920 after the start. Pinned, every block this large is
	 * mapped apart and given back when freed (bench/README.md, test_scale.sh).
	 */
	mallopt(M_MMAP_THRESHOLD, 128 << 10);
	d->config_path = DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "c:ftdVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d->config_path = optarg;
			break;
		case 'f':
			d->foreground = true;
			break;
		case 't':
			check_only = true;
			break;
		case 'd':
			d->debug = true;
			break;
		case 'V':
			printf("odrsd %s\n", ODRS_VERSION);
			return 0;
		case 'h':
			usage(true);
		default:
			usage(false);
		}
	}
	if (optind != argc)
		usage(false);
	if (wk_config_load(d->config_path, diag_stderr, NULL, &d->cfg) < 0)
		return 2;
	if (check_only) {
		/* Not valid on this host, which cannot doze: the check fails as for a bad key. */
		if (check_doze_swap(d->cfg, diag_stderr, NULL))
			return 2;
		printf("%s: configuration valid, %zu VMs\n", d->config_path, d->cfg->nvms);
		return 0;
	}
	/* A client that hangs up makes send() fail with EPIPE, never kills odrsd. */
	signal(SIGPIPE, SIG_IGN);
	if (!d->foreground)
		report = detach_begin();
	/* Start-up problems go to stderr too, until detached. */
	log_init("odrsd", true, d->debug);
	d->loop = ev_default_loop(EVFLAG_AUTO);
	ev_set_userdata(d->loop, d);
	evlog_aggregate_start(d->loop);
	d->started = ev_time();
	if ((r = start(d)) < 0) {
		sd_notifyf(0, "STATUS=start-up failed: %s\nERRNO=%d", strerror(-r), -r);
		return 1;
	}
	ev_signal_init(&d->sighup, on_sighup, SIGHUP);
	ev_signal_init(&d->sigterm, on_sigterm, SIGTERM);
	ev_signal_init(&d->sigint, on_sigterm, SIGINT);
	d->sighup.data = d;
	d->sigterm.data = d;
	d->sigint.data = d;
	ev_signal_start(d->loop, &d->sighup);
	ev_signal_start(d->loop, &d->sigterm);
	ev_signal_start(d->loop, &d->sigint);
	loop_turns_start(d);
	log_info("serving %zu VMs on %s as node %s", d->nvms, d->cfg->interface, d->cfg->node);
	if (report >= 0)
		detach_end(report, d);
	sd_notify(0, "READY=1");
	evlog_emit("start", NULL,
		   json_pack("{s:s, s:s, s:I, s:i}", "version", ODRS_VERSION, "config", d->config_path, "vms",
			     (json_int_t)d->nvms, "pid", (int)getpid()));
	ev_run(d->loop, 0);
	sd_notify(0, "STOPPING=1");
	metrics_stop(d);
	cluster_stop(d);
	control_close(d);
	virtev_stop(d);
	virt_close(d->virt);
	state_stop(d);
	capture_stop(d);
	evlog_aggregate_stop();
	evlog_close();
	return 0;
}
