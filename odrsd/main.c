/* odrsd: start-up, privileges, signals, reload. */
#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include "evlog.h"
#include "log.h"
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
	return 0;
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

/*
 * The table the new configuration describes: the kept VMs (cur[i] for
 * next->vms[i], NULL for a new one) under their new addresses, and the new
 * VMs made into it (added[i]). Nothing running changes; on failure all is
 * undone.
 */
static struct wk_vmtable *table_build(struct odrsd *d, const struct wk_config *next, struct vm **cur,
				      bool *added, char *err, size_t errlen)
{
	struct wk_vmtable *t = wk_vmtable_new(next->nvms), *running = d->table;
	size_t made = 0;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < next->nvms; i++) {
		const struct wk_vmconf *c = &next->vms[i];
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
	for (; made < next->nvms; made++) {
		if (cur[made])
			continue;
		if (!(cur[made] = vm_new(d, &next->vms[made]))) {
			snprintf(err, errlen,
				 "%s: cannot add (out of memory, or its MAC is another VM's); "
				 "the running configuration is kept",
				 next->vms[made].name);
			goto undo;
		}
		added[made] = true;
	}
	d->table = running;
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

/* Parse, validate, swap. VMs keep their state, held SYNs and running jobs. */
int odrsd_reload(struct odrsd *d, char *err, size_t errlen)
{
	struct wk_config *next;
	struct wk_vmtable *table;
	struct hsearch_data byname;
	struct vm **vms;
	bool *added;
	struct reload_diag rd = { err, errlen, 0 };
	int r;

	rd.used = (size_t)snprintf(err, errlen,
				   "%s is invalid; the running configuration is kept:", d->config_path);
	if (rd.used >= errlen)
		rd.used = errlen - 1;
	r = wk_config_load(d->config_path, diag_reload, &rd, &next);
	if (r < 0)
		return r;
	check_doze_swap(next, diag_warn, NULL);
	if (strcmp(next->control_socket, d->cfg->control_socket) ||
	    next->wake_concurrency != d->cfg->wake_concurrency ||
	    next->hibernate_concurrency != d->cfg->hibernate_concurrency ||
	    strcmp(next->libvirt_uri, d->cfg->libvirt_uri) || next->backend != d->cfg->backend ||
	    strcmp(next->node, d->cfg->node) ||
	    (next->etcd && d->cfg->etcd && strcmp(next->etcd, d->cfg->etcd)))
		log_warn("reload: node, control_socket, libvirt_uri, the concurrency limits and the "
			 "cluster backend and endpoints apply after a restart");
	vms = calloc(next->nvms ? next->nvms : 1, sizeof(*vms));
	added = calloc(next->nvms ? next->nvms : 1, sizeof(*added));
	if (!vms || !added || vms_by_name(d, &byname) < 0) {
		free(vms);
		free(added);
		wk_config_free(next);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < next->nvms; i++)
		vms[i] = vm_take(&byname, next->vms[i].name);
	if (!(table = table_build(d, next, vms, added, err, errlen))) {
		log_err("reload refused: %s", err);
		hdestroy_r(&byname);
		free(vms);
		free(added);
		wk_config_free(next);
		return -EEXIST;
	}
	/* Committed: from here on nothing fails. */
	for (size_t i = 0; i < d->nvms; i++) {
		struct vm *vm = vm_take(&byname, d->vms[i]->name);

		if (!vm)
			continue;
		log_info("reload: %s no longer managed", vm->name);
		vm->conf = NULL;
		vm_free(d, vm);
	}
	hdestroy_r(&byname);
	wk_vmtable_free(d->table);
	d->table = table;
	for (size_t i = 0; i < next->nvms; i++) {
		const struct wk_vmconf *c = &next->vms[i];
		struct vm *vm = vms[i];

		vm->conf = c;
		if (added[i]) {
			log_info("reload: %s now managed", vm->name);
			vm_inspect(d, vm);
			continue;
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
	d->nvms = next->nvms;
	if (strcmp(next->interface, d->cfg->interface))
		capture_interface_changed(d);
	wk_config_free(d->cfg);
	d->cfg = next;
	d->ifindex = if_nametoindex(d->cfg->interface);
	if ((r = evlog_open(d->cfg->event_log, d->cfg->node)) < 0)
		log_err("event log %s: %s", d->cfg->event_log, strerror(-r));
	capture_filter_changed(d);
	idle_interval_changed(d);
	virt_set_restore_spacing(d->virt, d->cfg->wake_spacing_ms);
	d->n.reloads++;
	log_info("reload: %s applied, %zu VMs", d->config_path, d->nvms);
	return 0;
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	char err[4096];

	odrsd_reload(w->data, err, sizeof(err));
}

static void on_sigterm(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("signal %d: stopping; no VM changes state", w->signum);
	ev_break(loop, EVBREAK_ALL);
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
	ev_signal_start(d->loop, &d->sighup);
	ev_signal_start(d->loop, &d->sigterm);
	ev_signal_start(d->loop, &d->sigint);
	log_info("serving %zu VMs on %s as node %s", d->nvms, d->cfg->interface, d->cfg->node);
	if (report >= 0)
		detach_end(report, d);
	sd_notify(0, "READY=1");
	ev_run(d->loop, 0);
	sd_notify(0, "STOPPING=1");
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
