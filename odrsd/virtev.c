/*
 * libvirt's domain lifecycle events: what happens to a domain outside odrsd
 * (virsh destroy, a crash, a restore by hand). One thread with its own
 * connection runs libvirt's default event loop; each lifecycle event is
 * queued and handed to the loop through an ev_async, as virt.c hands over
 * finished jobs. On the loop, a managed domain that changed while no job of
 * ours runs on it, into a state other than the one odrsd believes, is
 * inspected again (vm_inspect). The thread reconnects when libvirtd goes
 * away; once back, the VMs running here are inspected, for what was missed.
 *
 * With discover = libvirt the thread also reads domains' odrs metadata
 * (discover.h), outside libvirt's callbacks: every persistent domain's at
 * each connection (a listing, so the loop drops the domains gone meanwhile),
 * and one domain's after it is defined, undefined or its metadata changes.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "discover.h"
#include "evlog.h"
#include "log.h"
#include "metadata.h"
#include "odrsd.h"

#define TICK_MS	       500  /* the thread looks at its stop flag this often */
#define RECONNECT_MS   1000 /* between attempts to reach libvirtd */
#define KEEPALIVE_S    2    /* libvirtd unanswered for 2 s x 3: the connection is gone */
#define KEEPALIVE_MISS 3

/*
 * What the thread saw: a domain's event, or the connection lost or back
 * (domain ""), or a domain's metadata read (xml, NULL for none), or a
 * listing of them beginning (detail 0) or complete (1).
 */
enum { LINK_LOST = -1, LINK_BACK = -2, METADATA = -3, LISTING = -4 };
struct domain_event {
	struct domain_event *next;
	char domain[128];
	int type, detail;
	char *xml;
};

/* A domain whose metadata the thread reads once libvirt's callbacks are done. */
struct to_read {
	struct to_read *next;
	char domain[128];
};

struct virtev {
	struct odrsd *d;
	char *uri;
	pthread_t thread;
	ev_async async;
	pthread_mutex_t lock; /* events, stop */
	struct domain_event *events, **tail;
	bool stop;
	bool discover, relist; /* set by the loop (atomics): read metadata; list again */
	/* The thread's own. */
	virConnectPtr conn;
	int callback, metadata_callback;
	bool closed; /* libvirt closed conn */
	struct to_read *reads, **reads_tail;
};

static struct domain_event *event_new(const char *domain, int type, int detail, char *xml)
{
	struct domain_event *ev = calloc(1, sizeof(*ev));

	if (!ev) {
		free(xml);
		return NULL;
	}
	snprintf(ev->domain, sizeof(ev->domain), "%s", domain);
	ev->type = type;
	ev->detail = detail;
	ev->xml = xml;
	return ev;
}

static void event_free(struct domain_event *ev)
{
	free(ev->xml);
	free(ev);
}

/* Hand the events first..*last (linked) to the loop, at once. */
static void push_all(struct virtev *e, struct domain_event *first, struct domain_event **last)
{
	if (!first)
		return;
	pthread_mutex_lock(&e->lock);
	*e->tail = first;
	e->tail = last;
	pthread_mutex_unlock(&e->lock);
	ev_async_send(e->d->loop, &e->async);
}

static void push(struct virtev *e, const char *domain, int type, int detail)
{
	struct domain_event *ev = event_new(domain, type, detail, NULL);

	if (ev)
		push_all(e, ev, &ev->next);
}

static bool discovering(struct virtev *e)
{
	return __atomic_load_n(&e->discover, __ATOMIC_RELAXED);
}

static void read_later(struct virtev *e, virDomainPtr dom)
{
	const char *name = virDomainGetName(dom);
	struct to_read *r;

	if (!name || !discovering(e) || !(r = calloc(1, sizeof(*r))))
		return;
	snprintf(r->domain, sizeof(r->domain), "%s", name);
	*e->reads_tail = r;
	e->reads_tail = &r->next;
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	const char *name = virDomainGetName(dom);

	if (name)
		push(opaque, name, event, detail);
	if (event == VIR_DOMAIN_EVENT_DEFINED || event == VIR_DOMAIN_EVENT_UNDEFINED)
		read_later(opaque, dom);
	return 0;
}

static void on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque)
{
	if (type == VIR_DOMAIN_METADATA_ELEMENT && nsuri && !strcmp(nsuri, METADATA_NS))
		read_later(opaque, dom);
}

/*
 * dom's metadata event: its element, or none (not defined, no metadata).
 * NULL when libvirt could not say (the listing after a reconnection will).
 */
static struct domain_event *read_metadata(virDomainPtr dom)
{
	const char *name = virDomainGetName(dom);
	virErrorPtr err;
	char *xml;
	int persistent;

	if (!name)
		return NULL;
	/* Undefined but still running (transient): no longer discovered. */
	if ((persistent = virDomainIsPersistent(dom)) < 0)
		return NULL;
	if (!persistent)
		return event_new(name, METADATA, 0, NULL);
	if (!(xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS,
					 VIR_DOMAIN_AFFECT_CURRENT)) &&
	    (!(err = virGetLastError()) || err->code != VIR_ERR_NO_DOMAIN_METADATA))
		return NULL;
	return event_new(name, METADATA, 0, xml);
}

/* The domains queued by callbacks: each one's metadata, or none once it is undefined. */
static void read_queued(struct virtev *e)
{
	struct to_read *r;

	while ((r = e->reads)) {
		virDomainPtr dom = e->conn ? virDomainLookupByName(e->conn, r->domain) : NULL;
		struct domain_event *ev = NULL;
		virErrorPtr err;

		/* Without a connection nothing is known: the listing after the next one says. */
		if (dom)
			ev = read_metadata(dom);
		else if (e->conn && (err = virGetLastError()) && err->code == VIR_ERR_NO_DOMAIN)
			ev = event_new(r->domain, METADATA, 0, NULL);
		if (dom)
			virDomainFree(dom);
		if (ev)
			push_all(e, ev, &ev->next);
		e->reads = r->next;
		free(r);
	}
	e->reads_tail = &e->reads;
}

/* Every persistent domain's metadata, handed over as one listing, or nothing if libvirt failed. */
static void read_all(struct virtev *e)
{
	struct domain_event *first = NULL, **last = &first, *ev;
	virDomainPtr *doms = NULL;
	int n, i;

	if ((n = virConnectListAllDomains(e->conn, &doms, VIR_CONNECT_LIST_DOMAINS_PERSISTENT)) < 0)
		return;
	if (!(ev = event_new("", LISTING, 0, NULL)))
		goto out;
	*last = ev;
	last = &ev->next;
	for (i = 0; i < n; i++) {
		virErrorPtr err;

		/* Undefined since it was listed: its event follows. */
		if (!(ev = read_metadata(doms[i])) && (err = virGetLastError()) &&
		    err->code == VIR_ERR_NO_DOMAIN)
			continue;
		if (!ev)
			goto out;
		*last = ev;
		last = &ev->next;
	}
	if (!(ev = event_new("", LISTING, 1, NULL)))
		goto out;
	*last = ev;
	push_all(e, first, &ev->next);
	first = NULL;
out:
	while ((ev = first)) {
		first = ev->next;
		event_free(ev);
	}
	for (i = 0; i < n; i++)
		virDomainFree(doms[i]);
	free(doms);
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	((struct virtev *)opaque)->closed = true;
}

static void on_tick(int timer, void *opaque)
{
}

static bool stopping(struct virtev *e)
{
	bool stop;

	pthread_mutex_lock(&e->lock);
	stop = e->stop;
	pthread_mutex_unlock(&e->lock);
	return stop;
}

static void disconnect(struct virtev *e)
{
	if (e->callback >= 0)
		virConnectDomainEventDeregisterAny(e->conn, e->callback);
	if (e->metadata_callback >= 0)
		virConnectDomainEventDeregisterAny(e->conn, e->metadata_callback);
	virConnectUnregisterCloseCallback(e->conn, on_close);
	virConnectClose(e->conn);
	e->conn = NULL;
	e->callback = e->metadata_callback = -1;
	e->closed = false;
}

static bool connect_events(struct virtev *e)
{
	if (!(e->conn = virConnectOpen(e->uri)))
		return false;
	virConnectRegisterCloseCallback(e->conn, on_close, e, NULL);
	virConnectSetKeepAlive(e->conn, KEEPALIVE_S, KEEPALIVE_MISS);
	e->callback = virConnectDomainEventRegisterAny(e->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
						       VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), e, NULL);
	e->metadata_callback =
		virConnectDomainEventRegisterAny(e->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
						 VIR_DOMAIN_EVENT_CALLBACK(on_metadata), e, NULL);
	if (e->callback < 0 || e->metadata_callback < 0) {
		disconnect(e);
		return false;
	}
	return true;
}

static void *run(void *arg)
{
	struct virtev *e = arg;
	int tick = virEventAddTimeout(TICK_MS, on_tick, NULL, NULL);
	bool was_up = false;
	unsigned waited = RECONNECT_MS;

	while (!stopping(e)) {
		if (!e->conn && waited >= RECONNECT_MS) {
			waited = 0;
			if (connect_events(e)) {
				if (was_up)
					push(e, "", LINK_BACK, 0);
				was_up = true;
				/* After registering: a change from now on is an event too. */
				__atomic_store_n(&e->relist, discovering(e), __ATOMIC_RELAXED);
			}
		}
		if (e->conn && __atomic_exchange_n(&e->relist, false, __ATOMIC_RELAXED) && discovering(e))
			read_all(e);
		if (virEventRunDefaultImpl() < 0 || !e->conn)
			waited += TICK_MS;
		read_queued(e);
		if (e->conn && (e->closed || virConnectIsAlive(e->conn) != 1)) {
			disconnect(e);
			push(e, "", LINK_LOST, 0);
		}
	}
	if (e->conn)
		disconnect(e);
	if (tick >= 0)
		virEventRemoveTimeout(tick);
	return NULL;
}

static const char *event_name(int type, int detail)
{
	static const char *const types[] = {
		[VIR_DOMAIN_EVENT_DEFINED] = "defined",	  [VIR_DOMAIN_EVENT_UNDEFINED] = "undefined",
		[VIR_DOMAIN_EVENT_STARTED] = "started",	  [VIR_DOMAIN_EVENT_SUSPENDED] = "suspended",
		[VIR_DOMAIN_EVENT_RESUMED] = "resumed",	  [VIR_DOMAIN_EVENT_STOPPED] = "stopped",
		[VIR_DOMAIN_EVENT_SHUTDOWN] = "shutdown", [VIR_DOMAIN_EVENT_PMSUSPENDED] = "pmsuspended",
		[VIR_DOMAIN_EVENT_CRASHED] = "crashed",
	};
	static const char *const stopped[] = {
		[VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN] = "stopped/shutdown",
		[VIR_DOMAIN_EVENT_STOPPED_DESTROYED] = "stopped/destroyed",
		[VIR_DOMAIN_EVENT_STOPPED_CRASHED] = "stopped/crashed",
		[VIR_DOMAIN_EVENT_STOPPED_MIGRATED] = "stopped/migrated",
		[VIR_DOMAIN_EVENT_STOPPED_SAVED] = "stopped/saved",
		[VIR_DOMAIN_EVENT_STOPPED_FAILED] = "stopped/failed",
	};
	static const char *const started[] = {
		[VIR_DOMAIN_EVENT_STARTED_BOOTED] = "started/booted",
		[VIR_DOMAIN_EVENT_STARTED_MIGRATED] = "started/migrated",
		[VIR_DOMAIN_EVENT_STARTED_RESTORED] = "started/restored",
	};

	if (type == VIR_DOMAIN_EVENT_STOPPED && detail >= 0 &&
	    (size_t)detail < sizeof(stopped) / sizeof(*stopped) && stopped[detail])
		return stopped[detail];
	if (type == VIR_DOMAIN_EVENT_STARTED && detail >= 0 &&
	    (size_t)detail < sizeof(started) / sizeof(*started) && started[detail])
		return started[detail];
	if (type >= 0 && (size_t)type < sizeof(types) / sizeof(*types) && types[type])
		return types[type];
	return "other";
}

/* Whether the event says what odrsd already believes of vm (a late echo of our own job, say). */
static bool as_believed(const struct odrsd *d, const struct vm *vm, int type)
{
	bool runs_here = vm_is_local(d, vm) && vm->state == VM_RUNNING;
	/* Paused by our doze: the suspend's event may come after the doze's end. */
	bool dozes_here = vm_is_local(d, vm) && (vm->state == VM_DOZING_OFF || vm->state == VM_DOZING);

	switch (type) {
	case VIR_DOMAIN_EVENT_SUSPENDED:
		return runs_here || dozes_here;
	case VIR_DOMAIN_EVENT_STARTED:
	case VIR_DOMAIN_EVENT_RESUMED:
	case VIR_DOMAIN_EVENT_PMSUSPENDED:
		return runs_here;
	case VIR_DOMAIN_EVENT_STOPPED:
	case VIR_DOMAIN_EVENT_CRASHED:
		return !runs_here && !dozes_here;
	case VIR_DOMAIN_EVENT_SHUTDOWN:
		return true; /* the guest is shutting down: stopped follows */
	default:
		return false;
	}
}

static void on_domain_event(struct odrsd *d, const struct domain_event *ev)
{
	struct vm *vm;
	const char *what;

	if (ev->type == LINK_LOST) {
		log_warn("libvirt %s: domain events lost; reconnecting", d->cfg->libvirt_uri);
		return;
	}
	if (ev->type == METADATA) {
		discover_domain(d, ev->domain, ev->xml);
		return;
	}
	if (ev->type == LISTING) {
		discover_listing(d, ev->detail == 1);
		return;
	}
	if (ev->type == LINK_BACK) {
		log_info("libvirt %s: following domain events again", d->cfg->libvirt_uri);
		for (size_t i = 0; i < d->nvms; i++)
			if (vm_is_local(d, d->vms[i]) && d->vms[i]->state == VM_RUNNING &&
			    !d->vms[i]->job_busy)
				vm_inspect(d, d->vms[i]);
		return;
	}
	/* A job of ours on it reports what the domain is when it ends. */
	if (!(vm = vm_by_name(d, ev->domain)) || vm->job_busy || as_believed(d, vm, ev->type))
		return;
	/* Defining runs or stops nothing: for a discovered VM, its metadata is read next. */
	if ((ev->type == VIR_DOMAIN_EVENT_DEFINED || ev->type == VIR_DOMAIN_EVENT_UNDEFINED) &&
	    discover_owns(d, vm))
		return;
	what = event_name(ev->type, ev->detail);
	log_info("%s: libvirt says %s while odrsd has it %s; inspecting it again", vm->name, what,
		 vm_state_name(vm->state));
	evlog_emit("domain_event", vm->name,
		   json_pack("{s:s, s:s}", "libvirt", what, "was", vm_state_name(vm->state)));
	vm_inspect(d, vm);
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
	struct virtev *e = w->data;
	struct domain_event *ev, *next;

	pthread_mutex_lock(&e->lock);
	ev = e->events;
	e->events = NULL;
	e->tail = &e->events;
	pthread_mutex_unlock(&e->lock);
	for (; ev; ev = next) {
		next = ev->next;
		on_domain_event(e->d, ev);
		event_free(ev);
	}
}

int virtev_start(struct odrsd *d)
{
	struct virtev *e;
	sigset_t all, old;
	int r;

	/* Once, before any connection: the workers' connections use it too (keepalive answers). */
	if (virEventRegisterDefaultImpl() < 0)
		return -EIO;
	if (!(e = calloc(1, sizeof(*e))) || !(e->uri = strdup(d->cfg->libvirt_uri))) {
		free(e);
		return -ENOMEM;
	}
	e->d = d;
	e->tail = &e->events;
	e->reads_tail = &e->reads;
	e->callback = e->metadata_callback = -1;
	e->discover = d->cfg->discover == WK_DISCOVER_LIBVIRT;
	pthread_mutex_init(&e->lock, NULL);
	ev_async_init(&e->async, on_async);
	e->async.data = e;
	ev_async_start(d->loop, &e->async);
	/* Signals are the loop's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&e->thread, NULL, run, e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		ev_async_stop(d->loop, &e->async);
		pthread_mutex_destroy(&e->lock);
		free(e->uri);
		free(e);
		return r;
	}
	d->virtev = e;
	return 0;
}

void virtev_stop(struct odrsd *d)
{
	struct virtev *e = d->virtev;
	struct domain_event *ev;

	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stop = true;
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->thread, NULL);
	ev_async_stop(d->loop, &e->async);
	while ((ev = e->events)) {
		e->events = ev->next;
		event_free(ev);
	}
	while (e->reads) {
		struct to_read *r = e->reads;

		e->reads = r->next;
		free(r);
	}
	pthread_mutex_destroy(&e->lock);
	free(e->uri);
	free(e);
	d->virtev = NULL;
}

void virtev_discover(struct odrsd *d, bool on)
{
	struct virtev *e = d->virtev;

	if (!e)
		return;
	__atomic_store_n(&e->discover, on, __ATOMIC_RELAXED);
	__atomic_store_n(&e->relist, on, __ATOMIC_RELAXED);
}
