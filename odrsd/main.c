/* odrsd: start-up, privileges, signals, reload. */
#include <cap-ng.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "control.h"
#include "evlog.h"
#include "log.h"
#include "odrsd.h"
#include "snapfile.h"

#define DEFAULT_CONFIG "/etc/odrs/odrs.conf"

static void usage(void)
{
	fprintf(stderr, "usage: odrsd [-c FILE] [-f] [-t] [-d] [-V]\n");
	exit(2);
}

static void diag_stderr(void *ctx, const char *file, unsigned line, const char *msg)
{
	if (line)
		fprintf(stderr, "%s:%u: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

static void diag_log(void *ctx, const char *file, unsigned line, const char *msg)
{
	log_err("%s:%u: %s", file, line, msg);
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
	w = line ? snprintf(rd->buf + rd->used, rd->len - rd->used, "\n%s:%u: %s", file, line, msg)
		 : snprintf(rd->buf + rd->used, rd->len - rd->used, "\n%s: %s", file, msg);
	if (w > 0)
		rd->used += (size_t)w < rd->len - rd->used ? (size_t)w : rd->len - rd->used - 1;
}

/* Parse, validate, swap. VMs keep their state, held SYNs and running jobs. */
int odrsd_reload(struct odrsd *d, char *err, size_t errlen)
{
	struct wk_config *next;
	struct vm **vms;
	struct reload_diag rd = { err, errlen, 0 };
	size_t n = 0;
	int r;

	rd.used = (size_t)snprintf(err, errlen,
				   "%s is invalid; the running configuration is kept:", d->config_path);
	if (rd.used >= errlen)
		rd.used = errlen - 1;
	r = wk_config_load(d->config_path, diag_reload, &rd, &next);
	if (r < 0)
		return r;
	if (strcmp(next->control_socket, d->cfg->control_socket) ||
	    next->wake_concurrency != d->cfg->wake_concurrency ||
	    next->hibernate_concurrency != d->cfg->hibernate_concurrency ||
	    strcmp(next->libvirt_uri, d->cfg->libvirt_uri) || next->backend != d->cfg->backend ||
	    strcmp(next->node, d->cfg->node) ||
	    (next->etcd && d->cfg->etcd && strcmp(next->etcd, d->cfg->etcd)))
		log_warn("reload: node, control_socket, libvirt_uri, the concurrency limits and the "
			 "cluster backend and endpoints apply after a restart");
	if (!(vms = calloc(next->nvms ? next->nvms : 1, sizeof(*vms)))) {
		wk_config_free(next);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* VMs gone from the file leave the table first, so their addresses can be reused. */
	for (size_t i = 0; i < d->nvms; i++) {
		struct vm *vm = d->vms[i];
		if (wk_config_vm(next, vm->name))
			continue;
		log_info("reload: %s no longer managed", vm->name);
		wk_vmtable_del(d->table, vm->ip, vm->has_mac ? vm->mac : NULL);
		if (vm->has_ip6)
			wk_vmtable_del_ip6(d->table, vm->ip6);
		vm->conf = NULL;
		vm_free(d, vm);
		d->vms[i] = NULL;
	}
	for (size_t i = 0; i < next->nvms; i++) {
		const struct wk_vmconf *c = &next->vms[i];
		struct vm *vm = NULL;
		for (size_t j = 0; j < d->nvms && !vm; j++)
			if (d->vms[j] && !strcmp(d->vms[j]->name, c->name))
				vm = d->vms[j];
		if (vm && (vm->ip != c->ip || (c->has_mac && memcmp(vm->mac, c->mac, WK_ETH_ALEN)))) {
			wk_vmtable_del(d->table, vm->ip, vm->has_mac ? vm->mac : NULL);
			vm->ip = c->ip;
			if (c->has_mac)
				memcpy(vm->mac, c->mac, WK_ETH_ALEN);
			if (wk_vmtable_add(d->table, vm->ip, vm->has_mac ? vm->mac : NULL, vm) < 0)
				log_err("reload: %s: address already indexed", vm->name);
		}
		if (vm && (vm->has_ip6 != c->has_ip6 || memcmp(vm->ip6, c->ip6, 16))) {
			if (vm->has_ip6)
				wk_vmtable_del_ip6(d->table, vm->ip6);
			vm->has_ip6 = c->has_ip6;
			memcpy(vm->ip6, c->ip6, 16);
			if (vm->has_ip6 && wk_vmtable_add_ip6(d->table, vm->ip6, vm) < 0)
				log_err("reload: %s: IPv6 address already indexed", vm->name);
		}
		if (vm) {
			vm->conf = c;
		} else if ((vm = vm_new(d, c))) {
			log_info("reload: %s now managed", vm->name);
			vm_inspect(d, vm);
		} else {
			log_err("reload: %s: cannot add", c->name);
			continue;
		}
		vms[n++] = vm;
	}
	free(d->vms);
	d->vms = vms;
	d->nvms = n;
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

/* After the capture, injection and control handles are open, keep only what re-filtering needs. */
static int drop_privileges(void)
{
	capng_clear(CAPNG_SELECT_BOTH);
	capng_updatev(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED, CAP_NET_RAW, CAP_NET_ADMIN, -1);
	return capng_apply(CAPNG_SELECT_BOTH) < 0 ? -EPERM : 0;
}

static int start(struct odrsd *d)
{
	char foreign[256];
	int r;

	if ((r = make_dirs(d->cfg->state_dir, true)) < 0 ||
	    (r = make_dirs(d->cfg->control_socket, false)) < 0 ||
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
	r = virt_open(&d->virt, d->loop, d->cfg->libvirt_uri, d->cfg->snapshot_dir, d->cfg->node,
		      d->cfg->wake_concurrency, d->cfg->hibernate_concurrency, wake_job_done, d);
	if (r < 0) {
		log_err("libvirt %s: %s", d->cfg->libvirt_uri, strerror(-r));
		return r;
	}
	virt_set_restore_spacing(d->virt, d->cfg->wake_spacing_ms);
	if ((r = cluster_start(d)) < 0) {
		log_err("cluster store %s: %s", d->cfg->etcd, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < d->nvms; i++)
		vm_inspect(d, d->vms[i]);
	idle_start(d);
	return 0;
}

int main(int argc, char **argv)
{
	static struct odrsd od = { .control_fd = -1, .inject_fd = -1 };
	struct odrsd *d = &od;
	bool check_only = false;
	int c;

	d->config_path = DEFAULT_CONFIG;
	while ((c = getopt(argc, argv, "c:ftdV")) != -1) {
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
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (wk_config_load(d->config_path, diag_stderr, NULL, &d->cfg) < 0)
		return 2;
	if (check_only) {
		printf("%s: configuration valid, %zu VMs\n", d->config_path, d->cfg->nvms);
		return 0;
	}
	if (!d->foreground && daemon(0, 0) < 0) {
		perror("odrsd: daemon");
		return 1;
	}
	log_init("odrsd", d->foreground, d->debug);
	d->loop = ev_default_loop(EVFLAG_AUTO);
	ev_set_userdata(d->loop, d);
	d->started = ev_time();
	if (start(d) < 0)
		return 1;
	ev_signal_init(&d->sighup, on_sighup, SIGHUP);
	ev_signal_init(&d->sigterm, on_sigterm, SIGTERM);
	ev_signal_init(&d->sigint, on_sigterm, SIGINT);
	d->sighup.data = d;
	ev_signal_start(d->loop, &d->sighup);
	ev_signal_start(d->loop, &d->sigterm);
	ev_signal_start(d->loop, &d->sigint);
	log_info("serving %zu VMs on %s as node %s", d->nvms, d->cfg->interface, d->cfg->node);
	sd_notify(0, "READY=1");
	ev_run(d->loop, 0);
	sd_notify(0, "STOPPING=1");
	cluster_stop(d);
	control_close(d);
	virt_close(d->virt);
	capture_stop(d);
	evlog_close();
	return 0;
}
