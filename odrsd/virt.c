/*
 * libvirt on worker threads. The snapshot files are snapfile.c's: this file
 * calls its steps around libvirt's save and restore, as virt.h describes.
 *
 * Every worker owns one libvirt connection and serves one queue. A finished
 * job goes onto the finished list and the loop is woken through an ev_async;
 * done() runs on the loop thread only. Nothing here logs: each failure is
 * described once, in job->error, and the caller logs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_bridge.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <wake/policy.h>

#include "guest.h"
#include "snapfile.h"
#include "virt.h"

/* How often a running save or restore is asked for its progress. */
#define PROGRESS_INTERVAL_MS 200
/* How often INSPECT looks whether the domain's libvirt job has ended. */
#define JOB_POLL_MS 100
/* Where libvirtd's QEMU driver writes each running domain's QEMU pid. */
#define QEMU_PID_DIR "/run/libvirt/qemu"
/* QEMU's anonymous mappings this large hold guest RAM; the smaller ones are QEMU's own. */
#define GUEST_RAM_MAPPING_MIN (16ull << 20)

struct virt_queue {
	struct virt_job *head, *tail;
	pthread_cond_t nonempty;
};

struct worker {
	struct virt *v;
	struct virt_queue *queue;
	virConnectPtr conn;
	pthread_t thread;
	virDomainPtr deflate; /* restored from a balloon: memory back once the wake is done */
};

struct virt {
	struct ev_loop *loop;
	ev_async finished_async;
	char *uri, *dir, *node;
	virt_done_fn done;
	void *ctx;
	pthread_mutex_t lock; /* the queues, finished, stopping */
	struct virt_queue restores, saves, probes;
	struct virt_job *finished, *finished_tail;
	bool stopping;
	unsigned restores_pending;   /* __atomic: read without the lock */
	uint64_t restore_spacing_ms; /* between two restore starts; under lock */
	uint64_t next_restore_at;    /* now_ms() at which the next may start */
	struct worker *workers;
	unsigned nworkers;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool is_stopping(struct virt *v)
{
	bool stopping;

	pthread_mutex_lock(&v->lock);
	stopping = v->stopping;
	pthread_mutex_unlock(&v->lock);
	return stopping;
}

/* libvirt's default handler prints every error to stderr; ours are in job->error. */
static void ignore_virt_error(void *ctx, virErrorPtr err)
{
}

__attribute__((format(printf, 3, 4))) static void job_fail(struct virt_job *job, int err, const char *fmt,
							   ...)
{
	va_list ap;

	job->err = err;
	va_start(ap, fmt);
	vsnprintf(job->error, sizeof(job->error), fmt, ap);
	va_end(ap);
}

/* The negative errno closest to libvirt's last error on this thread. */
static int virt_errno(void)
{
	static const int storage_errors[] = { ENOSPC, EDQUOT, EROFS, EACCES, ESTALE };
	virErrorPtr e = virGetLastError();
	size_t i;

	if (!e)
		return -EIO;
	switch (e->code) {
	case VIR_ERR_NO_DOMAIN:
		return -ENOENT;
	case VIR_ERR_OPERATION_INVALID:
		return -EINVAL;
	case VIR_ERR_OPERATION_TIMEOUT:
		return -ETIMEDOUT;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_RPC:
		return -ENOTCONN;
	case VIR_ERR_NO_MEMORY:
		return -ENOMEM;
	case VIR_ERR_SYSTEM_ERROR:
		/* int1 carries the errno of system errors, also across RPC. */
		if (e->int1 > 0)
			return -e->int1;
		break;
	default:
		break;
	}
	/*
	 * A save or restore that fails in libvirt's I/O helper reports only
	 * "operation failed: ...: <strerror>"; the storage errors a caller
	 * acts on are recognised by that text.
	 */
	for (i = 0; e->message && i < sizeof(storage_errors) / sizeof(storage_errors[0]); i++)
		if (strstr(e->message, strerror(storage_errors[i])))
			return -storage_errors[i];
	return -EIO;
}

/* Fail with libvirt's last error: call right after the failing libvirt call. */
__attribute__((format(printf, 2, 3))) static void job_fail_virt(struct virt_job *job, const char *fmt, ...)
{
	char what[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	job->err = virt_errno();
	snprintf(job->error, sizeof(job->error), "%s: %s", what, virGetLastErrorMessage());
}

static bool file_size(const char *path, uint64_t *size)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return false;
	*size = (uint64_t)st.st_size;
	return true;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	int end = 0;

	if (sscanf(s, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%n", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4],
		   &mac[5], &end) != 6 ||
	    s[end])
		return -EINVAL;
	return 0;
}

static xmlNodePtr child_element(xmlNodePtr parent, const char *name)
{
	xmlNodePtr n;

	for (n = parent ? parent->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, (const xmlChar *)name) == 0)
			return n;
	return NULL;
}

/*
 * The MAC and tap of the domain's first <interface>, from its XML. The tap
 * (<target dev=>) is only in the live XML of a running domain.
 */
static void read_nic(virDomainPtr dom, unsigned xml_flags, struct virt_job *job)
{
	xmlNodePtr nic, el;
	xmlChar *attr;
	xmlDocPtr doc;
	char *xml;

	job->mem_bytes = (uint64_t)virDomainGetMaxMemory(dom) * 1024;
	xml = virDomainGetXMLDesc(dom, xml_flags);
	if (!xml)
		return;
	doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	free(xml);
	if (!doc)
		return;
	nic = child_element(child_element(xmlDocGetRootElement(doc), "devices"), "interface");
	if ((el = child_element(nic, "mac")) && (attr = xmlGetProp(el, (const xmlChar *)"address"))) {
		job->has_mac = parse_mac((const char *)attr, job->mac) == 0;
		xmlFree(attr);
	}
	if ((el = child_element(nic, "target")) && (attr = xmlGetProp(el, (const xmlChar *)"dev"))) {
		if (strlen((const char *)attr) < sizeof(job->tap))
			strcpy(job->tap, (const char *)attr);
		xmlFree(attr);
	}
	xmlFreeDoc(doc);
}

/* NULL when there is no such domain, or with *failed and job->err on any other failure. */
static virDomainPtr lookup(struct worker *w, struct virt_job *job, bool *failed)
{
	virDomainPtr dom = virDomainLookupByName(w->conn, job->name);
	virErrorPtr e;

	*failed = false;
	if (!dom && (!(e = virGetLastError()) || e->code != VIR_ERR_NO_DOMAIN)) {
		job_fail_virt(job, "look up domain %s", job->name);
		*failed = true;
	}
	return dom;
}

/*
 * Hold the frames the bridge would send out of port tap (disabled: neither
 * forwarded to it nor learned from it; the bridge device's promiscuous
 * capture still sees them; a blocking port is made forwarding again at once
 * by a bridge without STP), or forward them again. For a Linux bridge
 * without STP, whose port states nobody else sets (the kernel refuses with
 * its own STP: -EBUSY); -EOPNOTSUPP when tap is no Linux bridge port.
 * Through netlink, not sysfs: /sys may show another network namespace.
 */
static int port_hold(const char *tap, bool hold)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
		struct rtattr protinfo;
		struct rtattr state;
		uint8_t value;
		uint8_t pad[3];
	} req = {
		.nh = { .nlmsg_len = sizeof(req),
			.nlmsg_type = RTM_SETLINK,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK },
		.ifi = { .ifi_family = AF_BRIDGE },
		.protinfo = { .rta_len = RTA_LENGTH(RTA_LENGTH(sizeof(uint8_t))),
			      .rta_type = IFLA_PROTINFO | NLA_F_NESTED },
		.state = { .rta_len = RTA_LENGTH(sizeof(uint8_t)), .rta_type = IFLA_BRPORT_STATE },
		.value = hold ? BR_STATE_DISABLED : BR_STATE_FORWARDING,
	};
	char buf[1024] __attribute__((aligned(NLMSG_ALIGNTO)));
	const struct nlmsghdr *nh = (const void *)buf;
	ssize_t got;
	int fd, r = 0;

	if (!tap[0] || !(req.ifi.ifi_index = (int)if_nametoindex(tap)))
		return -ENODEV;
	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) < 0)
		return -errno;
	if (send(fd, &req, sizeof(req), 0) < 0)
		r = -errno;
	else if ((got = recv(fd, buf, sizeof(buf), 0)) < 0)
		r = -errno;
	else if (NLMSG_OK(nh, (unsigned)got) && nh->nlmsg_type == NLMSG_ERROR)
		r = ((const struct nlmsgerr *)NLMSG_DATA(nh))->error;
	close(fd);
	return r;
}

static bool is_paused(virDomainPtr dom)
{
	int state, reason;

	return virDomainGetState(dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED;
}

/*
 * job->state from what libvirt and snapshot_dir say now, changing nothing:
 * the state reported after a failed job.
 */
static void observe(struct worker *w, struct virt_job *job, const struct snapfile *sf)
{
	virDomainPtr dom = virDomainLookupByName(w->conn, job->name);

	if (dom && virDomainIsActive(dom) == 1) {
		job->state = VIRT_RUNNING;
		job->paused = is_paused(dom);
		read_nic(dom, 0, job);
	} else {
		if (file_size(sf->image, &job->bytes))
			job->state = VIRT_HIBERNATED;
		else
			job->state = dom ? VIRT_STOPPED : VIRT_MISSING;
		if (dom)
			read_nic(dom, VIR_DOMAIN_XML_INACTIVE, job);
	}
	if (dom)
		virDomainFree(dom);
}

/* Other threads read progress while the job runs: whole values, never torn. */
static void set_progress(struct virt_job *job, uint64_t done, uint64_t total)
{
	__atomic_store_n(&job->progress_total, total, __ATOMIC_RELAXED);
	__atomic_store_n(&job->progress_done, done, __ATOMIC_RELAXED);
}

/*
 * A thread that samples the libvirt job of a save while the worker is
 * blocked in it. It shares the worker's connection: libvirt
 * connections take concurrent calls, and job queries run beside the save.
 */
struct progress {
	struct worker *w;
	struct virt_job *job;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
};

static void progress_sample(struct progress *pr, virDomainPtr *dom)
{
	virDomainJobInfo info;

	if (!*dom)
		*dom = virDomainLookupByName(pr->w->conn, pr->job->name);
	if (!*dom || virDomainGetJobInfo(*dom, &info) < 0 || info.type == VIR_DOMAIN_JOB_NONE ||
	    info.dataTotal == 0)
		return;
	set_progress(pr->job, info.dataProcessed, info.dataTotal);
}

static void *progress_run(void *arg)
{
	struct progress *pr = arg;
	virDomainPtr dom = NULL;
	struct timespec until;

	pthread_mutex_lock(&pr->lock);
	while (!pr->stop) {
		pthread_mutex_unlock(&pr->lock);
		progress_sample(pr, &dom);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += PROGRESS_INTERVAL_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&pr->lock);
		while (!pr->stop && pthread_cond_timedwait(&pr->wake, &pr->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&pr->lock);
	if (dom)
		virDomainFree(dom);
	return NULL;
}

/* Without a poller a save reports only its total; that is not an error. */
static bool progress_start(struct progress *pr, struct worker *w, struct virt_job *job)
{
	pthread_condattr_t attr;

	pr->w = w;
	pr->job = job;
	pr->stop = false;
	pthread_mutex_init(&pr->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pr->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&pr->thread, NULL, progress_run, pr) == 0)
		return true;
	pthread_cond_destroy(&pr->wake);
	pthread_mutex_destroy(&pr->lock);
	return false;
}

static void progress_stop(struct progress *pr)
{
	pthread_mutex_lock(&pr->lock);
	pr->stop = true;
	pthread_cond_signal(&pr->wake);
	pthread_mutex_unlock(&pr->lock);
	pthread_join(pr->thread, NULL);
	pthread_cond_destroy(&pr->wake);
	pthread_mutex_destroy(&pr->lock);
}

/*
 * The save succeeded but its image could not be made durable: the domain is
 * stopped and .part is its only state. Bring it back from .part so a failed
 * save still leaves the domain running.
 */
static void save_undo(struct worker *w, struct virt_job *job, const struct snapfile *sf)
{
	if (virDomainRestoreFlags(w->conn, sf->part, NULL, VIR_DOMAIN_SAVE_RUNNING) == 0) {
		snapfile_save_abort(sf); /* a leftover part of a running VM is removed at the next start */
		job->state = VIRT_RUNNING;
		return;
	}
	/* The part file stays: INSPECT commits it to an image, which is all it can be. */
	snprintf(job->error + strlen(job->error), sizeof(job->error) - strlen(job->error),
		 "; restoring it again failed: %s", virGetLastErrorMessage());
	job->state = VIRT_STOPPED;
}

/* The guest's /proc/meminfo value for key, in KiB, or 0. */
static uint64_t meminfo_kib(const char *text, size_t len, const char *key)
{
	char buf[4096], *at;
	unsigned long long kib;

	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (!(at = strstr(buf, key)) || sscanf(at + strlen(key), ":%llu", &kib) != 1)
		return 0;
	return kib;
}

/* What a ballooned guest keeps beyond what it could give: it must still fork its servers when it resumes. */
#define BALLOON_HEADROOM_KIB (16 * 1024)

/*
 * Make the image smaller before a save: the guest drops its clean caches,
 * then (balloon) gives back all but what it uses. Best effort: a guest
 * that does not cooperate is saved as it is, and the job says how much
 * memory was released.
 */
static void shrink(virDomainPtr dom, struct virt_job *job)
{
	/* One agent call: meminfo before and after the drop, split by a line "--". */
	static const char drop[] =
		"cat /proc/meminfo; sync; echo 3 > /proc/sys/vm/drop_caches; echo --; cat /proc/meminfo";
	virDomainInfo before, after;
	char *out = NULL, *sep, err[256];
	size_t len = 0, before_len;
	uint64_t free_before, free_after, avail_kib, target_kib;

	if (virDomainGetInfo(dom, &before) < 0 ||
	    guest_agent_exec(dom, drop, job->timeout_ms, &out, &len, err, sizeof(err)) < 0)
		return;
	if (!(sep = memmem(out, len, "\n--\n", 4))) {
		free(out);
		return;
	}
	before_len = (size_t)(sep - out);
	sep += 4;
	len -= before_len + 4;
	free_before = meminfo_kib(out, before_len, "MemFree");
	free_after = meminfo_kib(sep, len, "MemFree");
	if (free_after > free_before)
		job->shrunk_bytes = (free_after - free_before) * 1024;
	avail_kib = meminfo_kib(sep, len, "MemAvailable");
	free(out);
	/*
	 * Take back what the guest could give without swapping, less the
	 * headroom; counted from the balloon's current size, since MemTotal
	 * leaves out what the guest kernel reserved at boot.
	 */
	if (job->shrink != WK_SHRINK_BALLOON || avail_kib <= BALLOON_HEADROOM_KIB ||
	    avail_kib - BALLOON_HEADROOM_KIB >= before.memory)
		return;
	target_kib = before.memory - (avail_kib - BALLOON_HEADROOM_KIB);
	if (virDomainSetMemoryFlags(dom, target_kib, VIR_DOMAIN_AFFECT_LIVE) < 0)
		return;
	/* The balloon driver deflates the guest at its own pace. */
	uint64_t until = now_ms() + job->timeout_ms;
	while (virDomainGetInfo(dom, &after) == 0 && after.memory > target_kib + 1024 && now_ms() < until)
		sleep_ms(50);
	if (virDomainGetInfo(dom, &after) == 0 && after.memory < before.memory)
		job->shrunk_bytes = (uint64_t)(before.memory - after.memory) * 1024;
}

/* A ballooned guest gets its memory back once it runs again. */
static void balloon_restore(virDomainPtr dom)
{
	virDomainInfo info;

	if (virDomainGetInfo(dom, &info) == 0 && info.memory < info.maxMem)
		virDomainSetMemoryFlags(dom, info.maxMem, VIR_DOMAIN_AFFECT_LIVE);
}

static void do_probe(struct worker *w, struct virt_job *job)
{
	virDomainPtr dom;
	bool failed;
	uint64_t t0 = now_ms();

	dom = lookup(w, job, &failed);
	if (!dom) {
		if (!failed)
			job_fail(job, -ENOENT, "no domain %s", job->name);
		return;
	}
	job->state = virDomainIsActive(dom) == 1 ? VIRT_RUNNING : VIRT_STOPPED;
	if (job->state != VIRT_RUNNING)
		job_fail(job, -EINVAL, "domain %s is not running", job->name);
	else if (job->probe == WK_PROBE_SSH)
		job->err = guest_ssh_exec(job->ip, WK_PROBE_COMMAND, job->timeout_ms, &job->output,
					  &job->output_len, job->error, sizeof(job->error));
	else
		job->err = guest_agent_exec(dom, WK_PROBE_COMMAND, job->timeout_ms, &job->output,
					    &job->output_len, job->error, sizeof(job->error));
	job->ms = now_ms() - t0;
	virDomainFree(dom);
}

static void do_save(struct worker *w, struct virt_job *job, const struct snapfile *sf)
{
	int active, state_before = VIR_DOMAIN_NOSTATE, state, reason, r;
	struct progress pr;
	virDomainInfo info;
	virDomainPtr dom;
	bool failed, polling;
	uint64_t t0;

	dom = lookup(w, job, &failed);
	if (!dom) {
		if (!failed)
			job_fail(job, -ENOENT, "no domain %s", job->name);
		observe(w, job, sf);
		return;
	}
	active = virDomainIsActive(dom);
	if (active != 1) {
		if (active < 0)
			job_fail_virt(job, "domain %s", job->name);
		else
			job_fail(job, -EINVAL, "domain %s is not running", job->name);
		observe(w, job, sf);
		goto out;
	}
	read_nic(dom, 0, job);
	t0 = now_ms();
	/* A dozing guest cannot answer its agent: it is saved as it is. */
	if (job->shrink != WK_SHRINK_NONE && !is_paused(dom))
		shrink(dom, job);
	job->shrink_ms = now_ms() - t0;
	virDomainGetState(dom, &state_before, &reason, 0);

	/*
	 * The guest's memory is what a save moves: the total until libvirt's
	 * job reports its own, which it does only while memory is copied.
	 */
	if (virDomainGetInfo(dom, &info) == 0)
		set_progress(job, 0, (uint64_t)info.memory * 1024);
	if ((r = snapfile_save_begin(sf)) < 0) {
		job_fail(job, r, "save %s: removing the leftover %s: %s", job->name, sf->part, strerror(-r));
		observe(w, job, sf);
		goto out;
	}
	polling = progress_start(&pr, w, job);
	r = virDomainSaveFlags(dom, sf->part, NULL, VIR_DOMAIN_SAVE_RUNNING);
	job->ms = now_ms() - t0;
	if (r < 0)
		job_fail_virt(job, "save %s", job->name);
	if (polling)
		progress_stop(&pr);
	if (r < 0) {
		snapfile_save_abort(sf);
		/* libvirt resumes a domain whose save failed; make sure of it. */
		if (virDomainGetState(dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED &&
		    state_before == VIR_DOMAIN_RUNNING)
			virDomainResume(dom);
		observe(w, job, sf);
		goto out;
	}

	if ((r = snapfile_save_commit(sf, &job->bytes)) < 0) {
		job_fail(job, r, "save %s: writing %s: %s", job->name, sf->image, strerror(-r));
		save_undo(w, job, sf);
		goto out;
	}
	set_progress(job, job->progress_total, job->progress_total);
	job->state = VIRT_HIBERNATED;
	job->tap[0] = '\0'; /* gone with the domain */
out:
	virDomainFree(dom);
}

/* A failed restore gives the image back; a failure to is said, and the claim waits for the next start. */
static void restore_give_back(struct virt_job *job, const struct snapfile *sf)
{
	size_t at = strlen(job->error);
	int r;

	if ((r = snapfile_release(sf)) < 0)
		snprintf(job->error + at, sizeof(job->error) - at, "; giving %s back failed: %s", sf->claim,
			 strerror(-r));
}

static void do_restore(struct worker *w, struct virt_job *job, const struct snapfile *sf)
{
	virDomainPtr dom;
	bool failed;
	uint64_t t0;
	int r, active;

	/* The claim: of all nodes and threads, one rename succeeds. */
	if ((r = snapfile_claim(sf, &job->bytes)) < 0) {
		if (r == -ENOENT)
			job_fail(job, r, "no snapshot of %s", job->name);
		else if (r == -EBADMSG)
			job_fail(job, r, "%s is not a libvirt save image of %s", sf->image, job->name);
		else
			job_fail(job, r, "claim %s: %s", sf->image, strerror(-r));
		observe(w, job, sf);
		return;
	}
	dom = lookup(w, job, &failed);
	active = dom ? virDomainIsActive(dom) : 0;
	if (failed || active < 0) {
		if (active < 0)
			job_fail_virt(job, "domain %s", job->name);
		restore_give_back(job, sf);
		observe(w, job, sf);
		goto out;
	}
	if (active == 1) {
		/* Never a second instance, and the running VM's disk has moved on: the image is stale. */
		if ((r = snapfile_finish(sf)) < 0)
			job_fail(job, -EEXIST,
				 "domain %s is already running; removing its stale %s failed: %s", job->name,
				 sf->claim, strerror(-r));
		else
			job_fail(job, -EEXIST, "domain %s is already running; its stale snapshot is removed",
				 job->name);
		observe(w, job, sf);
		goto out;
	}
	/*
	 * libvirt reports no job while it restores (QEMU's incoming migration
	 * has no progress to query): progress is the image, then done.
	 */
	set_progress(job, 0, job->bytes);

	t0 = now_ms();
	r = virDomainRestoreFlags(w->conn, sf->claim, NULL, VIR_DOMAIN_SAVE_RUNNING);
	job->ms = now_ms() - t0;
	if (r < 0)
		job_fail_virt(job, "restore %s", job->name);

	if (dom)
		virDomainFree(dom);
	if (r < 0 && virConnectIsAlive(w->conn) != 1) {
		/*
		 * libvirtd went away in the middle: QEMU may still come up with
		 * the image. The claim stays (nothing restores it twice) until
		 * an inspect, with libvirtd back, sees which it is.
		 */
		job->err = -ENOTCONN;
		job->state = VIRT_MISSING;
		goto out;
	}
	dom = virDomainLookupByName(w->conn, job->name);
	if (r < 0) {
		/*
		 * Still restorable, unless the domain came up some other way
		 * meanwhile: then its disk has moved on and the image is stale.
		 */
		if (dom && virDomainIsActive(dom) == 1) {
			if ((r = snapfile_finish(sf)) < 0)
				snprintf(job->error + strlen(job->error),
					 sizeof(job->error) - strlen(job->error),
					 "; removing the stale %s failed: %s", sf->claim, strerror(-r));
		} else {
			restore_give_back(job, sf);
		}
		observe(w, job, sf);
		goto out;
	}
	/*
	 * The domain runs. A claim that cannot be removed is no restorable
	 * image; the next start of this node removes it (snapfile_recover).
	 */
	snapfile_finish(sf);
	set_progress(job, job->progress_total, job->progress_total);
	job->state = VIRT_RUNNING;
	if (dom) {
		read_nic(dom, 0, job);
		if (job->shrink == WK_SHRINK_BALLOON) {
			w->deflate = dom;
			dom = NULL;
		}
	}
out:
	if (dom)
		virDomainFree(dom);
}

int virt_swap_check(void)
{
	char line[512];
	FILE *f = fopen("/proc/swaps", "re");
	bool any = false;

	if (!f)
		return -errno;
	/* The first line is the header; each further line is an active swap area. */
	if (fgets(line, sizeof(line), f))
		any = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	return any ? 0 : -ENOSPC;
}

/* QEMU's pid for domain name, from libvirtd's pid file; 0 or -errno. */
static int qemu_pid(const char *name, pid_t *pid)
{
	char path[512], buf[32];
	ssize_t n;
	long v;
	int fd;

	snprintf(path, sizeof(path), "%s/%s.pid", QEMU_PID_DIR, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	buf[n] = '\0';
	if ((v = strtol(buf, NULL, 10)) <= 0)
		return -EINVAL;
	*pid = (pid_t)v;
	return 0;
}

/* A process's /proc/PID/status value for key (VmRSS, VmSwap), in bytes, or 0. */
static uint64_t proc_status_bytes(pid_t pid, const char *key)
{
	char path[64], buf[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0 ? meminfo_kib(buf, (size_t)n, key) * 1024 : 0;
}

/*
 * Ask the kernel to page QEMU's guest RAM out (MADV_PAGEOUT over its large
 * anonymous mappings, through a pidfd: CAP_SYS_NICE, and ptrace access to
 * QEMU). 0 or -errno with job->error set.
 */
static int page_out(pid_t pid, struct virt_job *job)
{
	char path[64], line[1024];
	unsigned long long lo, hi;
	int pidfd, r = 0, advised = 0;
	FILE *maps;

	if ((pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) {
		r = -errno;
		job_fail(job, r, "doze %s: pidfd of QEMU (pid %d): %s", job->name, (int)pid, strerror(-r));
		return r;
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if (!(maps = fopen(path, "re"))) {
		r = -errno;
		job_fail(job, r, "doze %s: %s: %s", job->name, path, strerror(-r));
		close(pidfd);
		return r;
	}
	while (r == 0 && fgets(line, sizeof(line), maps)) {
		char perms[8] = "";
		int pathpos = 0;
		struct iovec iov;

		/* start-end perms offset dev inode [path]: guest RAM is anonymous and writable. */
		if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %n", &lo, &hi, perms, &pathpos) < 3 ||
		    perms[1] != 'w' || hi - lo < GUEST_RAM_MAPPING_MIN ||
		    (pathpos && line[pathpos] && line[pathpos] != '\n'))
			continue;
		iov.iov_base = (void *)(uintptr_t)lo;
		iov.iov_len = (size_t)(hi - lo);
		if (syscall(SYS_process_madvise, pidfd, &iov, 1, MADV_PAGEOUT, 0) < 0) {
			r = -errno;
			job_fail(job, r, "doze %s: paging out QEMU's memory (pid %d): %s", job->name,
				 (int)pid, strerror(-r));
		}
		advised++;
	}
	fclose(maps);
	close(pidfd);
	if (r == 0 && !advised) {
		r = -ENOENT;
		job_fail(job, r, "doze %s: QEMU (pid %d) has no guest RAM mapping to page out", job->name,
			 (int)pid);
	}
	return r;
}

/* A doze that could not page out leaves the domain as it found it: running. */
static void doze_undo(virDomainPtr dom, struct virt_job *job)
{
	port_hold(job->tap, false);
	if (virDomainResume(dom) < 0)
		snprintf(job->error + strlen(job->error), sizeof(job->error) - strlen(job->error),
			 "; resuming it again failed: %s", virGetLastErrorMessage());
	job->paused = is_paused(dom);
}

static void do_doze(struct worker *w, struct virt_job *job, const struct snapfile *sf)
{
	uint64_t t0 = now_ms(), rss_before;
	virDomainPtr dom;
	bool failed;
	pid_t pid = 0;
	int r;

	if ((r = virt_swap_check()) < 0) {
		job_fail(job, r, "doze %s: %s", job->name,
			 r == -ENOSPC ? "sleep = doze needs swap, and the host has none (/proc/swaps)"
				      : strerror(-r));
		observe(w, job, sf);
		return;
	}
	if (!(dom = lookup(w, job, &failed))) {
		if (!failed)
			job_fail(job, -ENOENT, "no domain %s", job->name);
		observe(w, job, sf);
		return;
	}
	if (virDomainIsActive(dom) != 1) {
		job_fail(job, -EINVAL, "domain %s is not running", job->name);
		observe(w, job, sf);
		goto out;
	}
	read_nic(dom, 0, job);
	job->state = VIRT_RUNNING;
	if ((r = qemu_pid(job->name, &pid)) < 0) {
		job_fail(job, r, "doze %s: QEMU's pid from %s/%s.pid: %s", job->name, QEMU_PID_DIR, job->name,
			 strerror(-r));
		goto out;
	}
	/*
	 * Its bridge port holds its frames from now on: a SYN the bridge sent to a
	 * paused guest's tap would reach it on the resume, beside odrsd's replay.
	 * Without (a bridge with STP, not a Linux bridge) the doze goes on.
	 */
	port_hold(job->tap, true);
	if (virDomainSuspend(dom) < 0) {
		job_fail_virt(job, "doze %s: pause", job->name);
		job->paused = is_paused(dom);
		if (!job->paused)
			port_hold(job->tap, false);
		goto out;
	}
	job->paused = true;
	rss_before = proc_status_bytes(pid, "VmRSS");
	if (page_out(pid, job) < 0) {
		doze_undo(dom, job);
		goto out;
	}
	job->resident_bytes = proc_status_bytes(pid, "VmRSS");
	job->paged_out_bytes = rss_before > job->resident_bytes ? rss_before - job->resident_bytes : 0;
out:
	job->ms = now_ms() - t0;
	virDomainFree(dom);
}

static void do_resume(struct worker *w, struct virt_job *job, const struct snapfile *sf)
{
	uint64_t t0 = now_ms();
	virDomainPtr dom;
	bool failed;

	if (!(dom = lookup(w, job, &failed))) {
		if (!failed)
			job_fail(job, -ENOENT, "no domain %s", job->name);
		observe(w, job, sf);
		return;
	}
	/* Its port forwards before it runs: what it sends at once goes out. */
	read_nic(dom, 0, job);
	port_hold(job->tap, false);
	if (virDomainResume(dom) < 0)
		job_fail_virt(job, "resume %s", job->name);
	job->ms = now_ms() - t0;
	if (virDomainIsActive(dom) == 1) {
		job->state = VIRT_RUNNING;
		job->paused = is_paused(dom);
	} else {
		observe(w, job, sf);
	}
	virDomainFree(dom);
}

/* Wait until no libvirt job (a save still running from before a crash) holds the domain. */
static int wait_job_end(struct worker *w, virDomainPtr dom)
{
	virDomainJobInfo info;

	while (virDomainGetJobInfo(dom, &info) == 0 && info.type != VIR_DOMAIN_JOB_NONE) {
		if (is_stopping(w->v))
			return -ECANCELED;
		sleep_ms(JOB_POLL_MS);
	}
	return 0;
}

static void do_inspect(struct worker *w, struct virt_job *job, const struct snapfile *sf)
{
	struct snapfile_state st;
	virDomainPtr dom;
	bool failed, running = false;
	int r;

	dom = lookup(w, job, &failed);
	if (failed) {
		observe(w, job, sf);
		return;
	}
	job->defined = dom != NULL;
	if (dom && (r = wait_job_end(w, dom)) < 0) {
		job_fail(job, r, "inspect %s: stopped while waiting for its job", job->name);
		goto out;
	}
	if (dom && (r = virDomainIsActive(dom)) < 0) {
		job_fail_virt(job, "domain %s", job->name);
		goto out;
	}
	running = dom && r == 1;
	/* Only this node's files, and an image of a VM that runs here (stale), are settled. */
	if ((r = snapfile_recover(sf, running, &st)) < 0) {
		job_fail(job, r, "inspect %s: settling its snapshot files in %s: %s", job->name, sf->dir,
			 strerror(-r));
		observe(w, job, sf);
		goto out;
	}
	if (running) {
		job->state = VIRT_RUNNING;
		job->paused = is_paused(dom);
		read_nic(dom, 0, job);
		/* Resumed by hand while it dozed: its port forwards again. */
		if (job->dozed && !job->paused)
			port_hold(job->tap, false);
		goto out;
	}
	if (dom)
		read_nic(dom, VIR_DOMAIN_XML_INACTIVE, job);
	job->bytes = st.bytes;
	job->state = st.image ? VIRT_HIBERNATED : dom ? VIRT_STOPPED : VIRT_MISSING;
	/* Another node's claim is that node's to settle (or an operator's): said, not touched. */
	if (!st.image && st.claimed_by[0])
		snprintf(job->error, sizeof(job->error),
			 "no snapshot: %.120s is claimed by a restore on node %.63s, left for that node",
			 job->name, st.claimed_by);
out:
	if (dom)
		virDomainFree(dom);
}

/*
 * libvirt probes QEMU (seconds) the first time a connection needs its
 * capabilities, and keeps what it learnt; a restore pays it unless the
 * probe ran already. Asking for the domain capabilities of the default
 * emulator makes libvirtd probe it now, on a fresh node or after libvirtd
 * restarted, not in the first wake. The answer itself is not needed.
 */
static void warm(virConnectPtr conn)
{
	free(virConnectGetDomainCapabilities(conn, NULL, NULL, NULL, NULL, 0));
}

/*
 * The worker's connection, opened again if libvirtd went away since the
 * last job (job NULL: at the worker's start, where a failure waits for the
 * first job).
 */
static int worker_connect(struct worker *w, struct virt_job *job)
{
	unsigned long version;

	if (w->conn && virConnectGetLibVersion(w->conn, &version) == 0)
		return 0;
	if (w->conn)
		virConnectClose(w->conn);
	w->conn = virConnectOpen(w->v->uri);
	if (!w->conn) {
		if (job) {
			job_fail_virt(job, "connect to %s", w->v->uri);
			job->err = -ENOTCONN;
		}
		return -ENOTCONN;
	}
	warm(w->conn);
	return 0;
}

static void run_job(struct worker *w, struct virt_job *job)
{
	struct snapfile sf;
	int r;

	if ((r = snapfile_init(&sf, w->v->dir, job->name, w->v->node)) < 0) {
		job_fail(job, r, r == -EINVAL ? "invalid domain name" : "snapshot path of %s too long",
			 job->name);
		job->state = VIRT_MISSING;
		return;
	}
	if (worker_connect(w, job) < 0) {
		/* What the files say is all that is known. */
		job->state = file_size(sf.image, &job->bytes) ? VIRT_HIBERNATED : VIRT_MISSING;
		return;
	}
	switch (job->op) {
	case VIRT_SAVE:
		do_save(w, job, &sf);
		break;
	case VIRT_RESTORE:
		do_restore(w, job, &sf);
		break;
	case VIRT_INSPECT:
		do_inspect(w, job, &sf);
		break;
	case VIRT_PROBE:
		do_probe(w, job);
		break;
	case VIRT_DOZE:
		do_doze(w, job, &sf);
		break;
	case VIRT_RESUME:
		do_resume(w, job, &sf);
		break;
	}
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct virt *v = w->v;
	struct virt_job *job;
	uint64_t start;

	worker_connect(w, NULL);
	for (;;) {
		pthread_mutex_lock(&v->lock);
		while (!v->stopping && !w->queue->head)
			pthread_cond_wait(&w->queue->nonempty, &v->lock);
		if (v->stopping) {
			pthread_mutex_unlock(&v->lock);
			break;
		}
		job = w->queue->head;
		w->queue->head = job->next;
		if (!w->queue->head)
			w->queue->tail = NULL;
		job->next = NULL;
		start = 0;
		if (job->op == VIRT_RESTORE && v->restore_spacing_ms) {
			start = now_ms() > v->next_restore_at ? now_ms() : v->next_restore_at;
			v->next_restore_at = start + v->restore_spacing_ms;
		}
		pthread_mutex_unlock(&v->lock);

		/* Restores that all start at once each take longer: space them out. */
		while (start && now_ms() < start)
			usleep((useconds_t)(start - now_ms()) * 1000);
		run_job(w, job);

		if (job->op == VIRT_RESTORE)
			__atomic_fetch_sub(&v->restores_pending, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&v->lock);
		if (v->finished_tail)
			v->finished_tail->next = job;
		else
			v->finished = job;
		v->finished_tail = job;
		pthread_mutex_unlock(&v->lock);
		ev_async_send(v->loop, &v->finished_async);
		if (w->deflate) {
			balloon_restore(w->deflate);
			virDomainFree(w->deflate);
			w->deflate = NULL;
		}
	}
	if (w->conn)
		virConnectClose(w->conn);
	return NULL;
}

static void on_finished(struct ev_loop *loop, ev_async *watcher, int revents)
{
	struct virt *v = (struct virt *)((char *)watcher - offsetof(struct virt, finished_async));
	virt_done_fn done = v->done;
	void *ctx = v->ctx;
	struct virt_job *job, *next;

	pthread_mutex_lock(&v->lock);
	job = v->finished;
	v->finished = v->finished_tail = NULL;
	pthread_mutex_unlock(&v->lock);
	for (; job; job = next) {
		next = job->next;
		job->next = NULL;
		done(job, ctx);
	}
}

static void stop_workers(struct virt *v, unsigned started)
{
	unsigned i;

	pthread_mutex_lock(&v->lock);
	v->stopping = true;
	pthread_cond_broadcast(&v->restores.nonempty);
	pthread_cond_broadcast(&v->saves.nonempty);
	pthread_cond_broadcast(&v->probes.nonempty);
	pthread_mutex_unlock(&v->lock);
	for (i = 0; i < started; i++)
		pthread_join(v->workers[i].thread, NULL);
}

static void virt_free(struct virt *v)
{
	pthread_cond_destroy(&v->restores.nonempty);
	pthread_cond_destroy(&v->saves.nonempty);
	pthread_cond_destroy(&v->probes.nonempty);
	pthread_mutex_destroy(&v->lock);
	free(v->workers);
	free(v->uri);
	free(v->dir);
	free(v->node);
	free(v);
}

void virt_set_restore_spacing(struct virt *v, uint64_t ms)
{
	pthread_mutex_lock(&v->lock);
	v->restore_spacing_ms = ms;
	pthread_mutex_unlock(&v->lock);
}

int virt_open(struct virt **out, struct ev_loop *loop, const char *uri, const char *snapshot_dir,
	      const char *node, unsigned nrestore, unsigned nsave, virt_done_fn done, void *ctx)
{
	sigset_t all, old;
	struct virt *v;
	unsigned i;
	int r = 0;

	if (!nrestore || !nsave || !done || !snapshot_dir || !node || !*node || strchr(node, '/'))
		return -EINVAL;
	/* Both libraries want this once, before threads use them. */
	if (virInitialize() < 0)
		return -EIO;
	xmlInitParser();
	virSetErrorFunc(NULL, ignore_virt_error);

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->loop = loop;
	v->done = done;
	v->ctx = ctx;
	v->uri = uri ? strdup(uri) : NULL;
	v->dir = strdup(snapshot_dir);
	v->node = strdup(node);
	v->nworkers = nrestore + nsave + 1;
	v->workers = calloc(v->nworkers, sizeof(*v->workers));
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->restores.nonempty, NULL);
	pthread_cond_init(&v->saves.nonempty, NULL);
	pthread_cond_init(&v->probes.nonempty, NULL);
	if ((uri && !v->uri) || !v->dir || !v->node || !v->workers) {
		virt_free(v);
		return -ENOMEM;
	}
	ev_async_init(&v->finished_async, on_finished);
	ev_async_start(loop, &v->finished_async);

	/* Signals are the loop's business: workers (and their pollers) block them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < v->nworkers; i++) {
		v->workers[i].v = v;
		v->workers[i].queue = i < nrestore	     ? &v->restores
				      : i < nrestore + nsave ? &v->saves
							     : &v->probes;
		r = -pthread_create(&v->workers[i].thread, NULL, worker_run, &v->workers[i]);
		if (r < 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		stop_workers(v, i);
		ev_async_stop(loop, &v->finished_async);
		virt_free(v);
		return r;
	}
	*out = v;
	return 0;
}

void virt_submit(struct virt *v, struct virt_job *job)
{
	/* A resume is a wake: it waits behind no save. */
	struct virt_queue *q = job->op == VIRT_RESTORE || job->op == VIRT_RESUME ? &v->restores
			       : job->op == VIRT_PROBE				 ? &v->probes
										 : &v->saves;

	job->err = 0;
	job->error[0] = '\0';
	job->state = VIRT_MISSING;
	job->tap[0] = '\0';
	job->has_mac = job->defined = job->paused = false;
	memset(job->mac, 0, sizeof(job->mac));
	job->bytes = job->ms = job->shrunk_bytes = job->shrink_ms = 0;
	job->paged_out_bytes = job->resident_bytes = 0;
	job->output = NULL;
	job->output_len = 0;
	job->progress_done = job->progress_total = 0;
	job->next = NULL;
	if (job->op == VIRT_RESTORE)
		__atomic_fetch_add(&v->restores_pending, 1, __ATOMIC_RELAXED);

	pthread_mutex_lock(&v->lock);
	if (q->tail)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	pthread_cond_signal(&q->nonempty);
	pthread_mutex_unlock(&v->lock);
}

void virt_close(struct virt *v)
{
	if (!v)
		return;
	stop_workers(v, v->nworkers);
	ev_async_stop(v->loop, &v->finished_async);
	virt_free(v);
}

unsigned virt_restores_pending(const struct virt *v)
{
	return __atomic_load_n(&v->restores_pending, __ATOMIC_RELAXED);
}
