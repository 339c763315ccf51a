/*
 * The data path: capture, classify, act. Everything odrsd does on the wire
 * starts in on_frame(); the kernel filter below passes only what it needs.
 *
 * Two captures on the interface: the wake capture (ARP requests, SYNs to
 * sleeping VMs, SYN-ACKs of replays) in immediate mode, as every frame there
 * is someone waiting; and the activity capture (TCP of every managed VM) that
 * the kernel hands over in blocks, at most ACTIVITY_DELAY_MS late: a busy VM
 * costs a copy per frame, not a wake-up (bench/activity.sh measures both).
 * Its filter names the managed addresses, not the running VMs, so wakes and
 * hibernations leave it alone; a reload that swaps it keeps the old handle
 * until its last block is handed over. While idle.c confirms that VMs are
 * idle, a third capture, the confirm capture, takes their TCP in immediate
 * mode: the decision sees every frame up to the moment it is made.
 *
 * The filters are built in filter.c: a filter too large for the kernel is
 * made coarser on purpose (filter.h: networks that cover the VMs, then any
 * host), and the VM table then decides here what
 * the kernel let through; each capture counts those frames (filtered_user)
 * and its pcap drops, for odrsctl status.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "log.h"
#include "odrsd.h"

#define SNAPLEN 2048
/*
 * A rebuild waits this many times the last one's cost after it (at most a
 * tenth of the loop), but never longer than FILTER_WAIT_MAX: a VM that went
 * to sleep has its SYNs captured that soon.
 */
#define FILTER_SPACING	10
#define FILTER_WAIT_MAX 0.1

/* Every captured frame is counted; one that does not decode is dropped and counted. */
static bool frame_decode(struct odrsd *d, const struct pcap_pkthdr *h, const u_char *frame, struct wk_pkt *p)
{
	d->n.frames++;
	if (h->caplen < h->len || wk_pkt_parse(frame, h->caplen, p) < 0) {
		d->n.malformed++;
		return false;
	}
	return true;
}

static bool vm_awaits_synack(const struct odrsd *d, const struct vm *vm);
static bool vm_accepts_syn(const struct odrsd *d, const struct vm *vm);
static bool vm_accepts_established(const struct odrsd *d, const struct vm *vm);
static bool vm_accepts_udp(const struct odrsd *d, const struct vm *vm);

/*
 * The VM a wake capture frame is for, when the exact filter would have
 * passed it: a coarse filter passes more, which stops here.
 */
static struct vm *frame_vm(struct odrsd *d, const struct wk_pkt *p)
{
	struct vm *vm;

	switch (p->kind) {
	case WK_PKT_ARP:
		vm = p->arp.op == WK_ARP_REQUEST ? wk_vmtable_by_ip(d->table, p->arp.tpa) : NULL;
		return vm && vm_stood_in_here(d, vm) ? vm : NULL;
	case WK_PKT_NS:
		vm = wk_vmtable_by_ip6(d->table, p->ns.target);
		return vm && vm_stood_in_here(d, vm) ? vm : NULL;
	case WK_PKT_TCP:
		/* A SYN is for its destination, a SYN-ACK from its source. */
		if (wk_pkt_is_syn(p)) {
			vm = p->v6 ? wk_vmtable_by_ip6(d->table, p->ip6.dst)
				   : wk_vmtable_by_ip(d->table, p->ip.dst);
			return vm && vm_accepts_syn(d, vm) ? vm : NULL;
		}
		if (wk_pkt_is_synack(p)) {
			vm = p->v6 ? wk_vmtable_by_ip6(d->table, p->ip6.src)
				   : wk_vmtable_by_ip(d->table, p->ip.src);
			return vm && vm_awaits_synack(d, vm) ? vm : NULL;
		}
		/* Any other segment: of a flow it had open, maybe; wake.c looks the flow up. */
		vm = p->v6 ? wk_vmtable_by_ip6(d->table, p->ip6.dst) : wk_vmtable_by_ip(d->table, p->ip.dst);
		return vm && vm_accepts_established(d, vm) ? vm : NULL;
	case WK_PKT_UDP:
		vm = p->v6 ? wk_vmtable_by_ip6(d->table, p->ip6.dst) : wk_vmtable_by_ip(d->table, p->ip.dst);
		return vm && vm_accepts_udp(d, vm) ? vm : NULL;
	default:
		return NULL;
	}
}

static void on_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *frame)
{
	struct capture *c = (struct capture *)user;
	struct wk_pkt p;
	struct vm *vm;

	if (!frame_decode(c->d, h, frame, &p))
		return;
	if ((vm = frame_vm(c->d, &p))) {
		c->d->frame_captured = h->ts;
		vm_on_frame(c->d, vm, &p, frame, h->caplen);
	} else
		c->filtered_user++;
}

/*
 * Any TCP of a VM, either way, is activity (a half-open connection too), and
 * its flow is noted (flows.c); UDP is for VMs with activity_udp. The kernel
 * filter is coarser than the VM table (IPv6 by its last 32 bits), the
 * lookups decide.
 */
static void on_activity_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *frame)
{
	struct capture *c = (struct capture *)user;
	struct odrsd *d = c->d;
	struct wk_pkt p;
	bool from, to;

	if (!frame_decode(d, h, frame, &p))
		return;
	if (p.kind == WK_PKT_UDP) {
		idle_note_udp(d, &p);
		return;
	}
	if (p.kind != WK_PKT_TCP) {
		c->filtered_user++;
		return;
	}
	flows_note(d, &p);
	/* Both ends are noted, either may be a VM. */
	if (p.v6) {
		from = idle_note_tcp6(d, p.ip6.src);
		to = idle_note_tcp6(d, p.ip6.dst);
	} else {
		from = idle_note_tcp(d, p.ip.src);
		to = idle_note_tcp(d, p.ip.dst);
	}
	c->filtered_user += !from && !to;
}

static void capture_drain(struct odrsd *d, struct capture *c, pcap_t *pcap)
{
	/* Bounded, so a flood cannot starve the rest of the loop. */
	for (int i = 0; i < 64; i++)
		if (pcap_dispatch(pcap, -1, c->on_frame, (u_char *)c) <= 0)
			break;
}

/*
 * Frames as they come: an immediate handle's all, a block-mode handle's
 * BLOCK_CHUNK at a time, so a block of 100,000 frames of a coarse activity
 * filter does not hold an ARP reply up for tens of milliseconds: the loop
 * comes back while the fd stays readable, and the wake capture goes first
 * (its watcher has the higher priority). capture_activity_flush() takes
 * everything when idle.c must see it all.
 */
#define BLOCK_CHUNK 256

static void capture_take(struct capture *c, pcap_t *pcap)
{
	if (c->immediate)
		capture_drain(c->d, c, pcap);
	else
		pcap_dispatch(pcap, BLOCK_CHUNK, c->on_frame, (u_char *)c);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct capture *c = w->data;

	capture_take(c, c->pcap);
}

static void on_retiring_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct capture *c = w->data;

	capture_take(c, c->retiring);
}

void capture_activity_flush(struct odrsd *d)
{
	if (d->act.retiring)
		capture_drain(d, &d->act, d->act.retiring);
	if (d->act.pcap)
		capture_drain(d, &d->act, d->act.pcap);
	if (d->confirm.pcap)
		capture_drain(d, &d->confirm, d->confirm.pcap);
}

/*
 * From the first held SYN on, not only once the VM runs: the filter is in
 * place before the replay, whose SYN-ACK a guest sends within a millisecond;
 * opening a capture then would delay the replay (tens of ms) or miss it.
 */
static bool vm_awaits_synack(const struct odrsd *d, const struct vm *vm)
{
	return vm->held != NULL;
}

/* The switches send a sleeping VM's SYNs to the accept node, a dozing VM's to its own. */
static bool vm_accepts_syn(const struct odrsd *d, const struct vm *vm)
{
	return vm_stood_in_here(d, vm);
}

/* A segment of one of its recorded flows wakes it: the filter takes its TCP without SYN. */
static bool vm_accepts_established(const struct odrsd *d, const struct vm *vm)
{
	return vm_stood_in_here(d, vm) && vm->conf && (vm->conf->policy.wake_on & WK_WAKE_ESTABLISHED) &&
	       flows_open(vm);
}

/* A datagram to one of its wake_udp_ports wakes it: the filter takes its UDP, the port is checked after. */
static bool vm_accepts_udp(const struct odrsd *d, const struct vm *vm)
{
	return vm_stood_in_here(d, vm) && vm->conf && vm->conf->policy.nwake_udp_ports;
}

/* The accept node answers for every sleeping VM, any node for the VMs dozing on it. */
static bool answers_neighbours(const struct odrsd *d)
{
	if (d->accept)
		return true;
	for (size_t i = 0; i < d->nvms; i++)
		if (vm_stood_in_here(d, d->vms[i]))
			return true;
	return false;
}

/* One clause of f: the addresses of the VMs that match. */
static void filter_vms(struct filter *f, struct odrsd *d, const char *what, const char *dir,
		       bool (*match)(const struct odrsd *, const struct vm *), enum filter_addr addr)
{
	struct filter_clause *c = filter_clause(f, what, dir, addr);

	if (!c) {
		log_err("capture filter: more than %d kinds of frame; %s left out", FILTER_CLAUSES, what);
		return;
	}
	for (size_t i = 0; i < d->nvms; i++) {
		const struct vm *vm = d->vms[i];
		if (match(d, vm) && (addr == FILTER_IP || vm->has_ip6))
			filter_add(c, vm->ip, vm->ip6);
	}
}

/*
 * The wake capture: ARP requests and Neighbor Solicitations on a node that
 * answers them (the table decides); SYNs without ACK to sleeping VMs, over
 * IPv4 and IPv6; segments and datagrams that may wake them; SYN-ACKs from
 * VMs with held SYNs not answered yet.
 */
static void wake_filter(struct odrsd *d, struct filter *f)
{
	filter_init(f, answers_neighbours(d) ? "(arp and arp[6:2] = 1) or (icmp6 and ip6[40] = 135)" : NULL);
	/* libpcap cannot index TCP over IPv6: the flags are at 40 + 13 without extension headers. */
	filter_vms(f, d, "tcp and tcp[13] & 0x12 = 0x02", "dst ", vm_accepts_syn, FILTER_IP);
	filter_vms(f, d, "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x02", "dst ", vm_accepts_syn, FILTER_IP6);
	/* Segments of the flows a sleeping VM had open, and datagrams: the table and the port decide. */
	filter_vms(f, d, "tcp and tcp[13] & 0x02 = 0", "dst ", vm_accepts_established, FILTER_IP);
	filter_vms(f, d, "ip6 and ip6[6] = 6 and ip6[53] & 0x02 = 0", "dst ", vm_accepts_established,
		   FILTER_IP6);
	filter_vms(f, d, "udp", "dst ", vm_accepts_udp, FILTER_IP);
	filter_vms(f, d, "ip6 and ip6[6] = 17", "dst ", vm_accepts_udp, FILTER_IP6);
	filter_vms(f, d, "tcp and tcp[13] & 0x12 = 0x12", "src ", vm_awaits_synack, FILTER_IP);
	filter_vms(f, d, "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x12", "src ", vm_awaits_synack,
		   FILTER_IP6);
}

/*
 * The activity filter names every managed VM, whatever its state or node, so
 * that it changes with the configuration only: each swap of a block-mode
 * handle costs the frames of its unfinished block unless it is retired.
 */
static bool vm_managed(const struct odrsd *d, const struct vm *vm)
{
	return !vm->removed;
}

/* The VMs whose UDP is activity too (activity_udp), among the managed ones and among those confirmed idle. */
static bool vm_managed_udp(const struct odrsd *d, const struct vm *vm)
{
	return vm_managed(d, vm) && vm->conf && vm->conf->policy.activity_udp;
}

static bool vm_confirming_udp(const struct odrsd *d, const struct vm *vm)
{
	return vm_idle_confirming(d, vm) && vm->conf && vm->conf->policy.activity_udp;
}

/* Any TCP of the VMs that match, and any UDP of those that match_udp. */
static void tcp_filter(struct odrsd *d, struct filter *f,
		       bool (*match)(const struct odrsd *, const struct vm *),
		       bool (*match_udp)(const struct odrsd *, const struct vm *))
{
	filter_init(f, NULL);
	filter_vms(f, d, "tcp", "", match, FILTER_IP);
	filter_vms(f, d, "ip6 and ip6[6] = 6", "", match, FILTER_IP6_LOW);
	filter_vms(f, d, "udp", "", match_udp, FILTER_IP);
	filter_vms(f, d, "ip6 and ip6[6] = 17", "", match_udp, FILTER_IP6_LOW);
}

/* The handle's drops since it opened: its buffer was full, or the interface's. */
static uint64_t capture_drops(pcap_t *p)
{
	struct pcap_stat st;

	return p && pcap_stats(p, &st) == 0 ? (uint64_t)st.ps_drop + st.ps_ifdrop : 0;
}

/* Before a handle closes: its drops stay counted. */
static void capture_closing(struct capture *c, pcap_t *p)
{
	c->drops_closed += capture_drops(p);
	pcap_close(p);
}

/*
 * A handle with f's filter, made coarser until the kernel runs it (filter.h);
 * *text is the filter in force. NULL when it cannot open (logged).
 */
static pcap_t *capture_open(struct odrsd *d, struct filter *f, bool immediate, char **text)
{
	char errbuf[PCAP_ERRBUF_SIZE] = "";
	struct bpf_program prog;
	pcap_t *p = pcap_create(d->cfg->interface, errbuf);
	int r;

	if (!p) {
		log_err("capture on %s: %s", d->cfg->interface, errbuf);
		return NULL;
	}
	pcap_set_snaplen(p, SNAPLEN);
	pcap_set_promisc(p, 1);
	pcap_set_immediate_mode(p, immediate);
	if (!immediate)
		pcap_set_timeout(p, ACTIVITY_DELAY_MS);
	pcap_set_buffer_size(p, 4 << 20);
	if ((r = pcap_activate(p)) < 0) {
		log_err("capture on %s: %s", d->cfg->interface, pcap_geterr(p));
		pcap_close(p);
		return NULL;
	}
	/* Our own replies and announcements leave through this interface: not input. */
	if (pcap_setdirection(p, PCAP_D_IN) < 0 || pcap_setnonblock(p, 1, errbuf) < 0) {
		log_err("capture on %s: %s", d->cfg->interface, pcap_geterr(p));
		pcap_close(p);
		return NULL;
	}
	for (;;) {
		if ((r = filter_compile(p, f, &prog, text)) < 0) {
			log_err("capture filter on %s: %s", d->cfg->interface,
				r == -EINVAL ? pcap_geterr(p) : strerror(-r));
			pcap_close(p);
			return NULL;
		}
		r = pcap_setfilter(p, &prog);
		pcap_freecode(&prog);
		if (r < 0) {
			log_err("capture filter on %s: %s", d->cfg->interface, pcap_geterr(p));
			free(*text);
			pcap_close(p);
			return NULL;
		}
		if ((r = filter_in_kernel(p)) != 0 || !filter_coarsen(f))
			break;
		log_info("capture filter on %s: the kernel refused %s; coarser", d->cfg->interface, *text);
		free(*text);
	}
	if (r <= 0)
		log_warn("capture filter on %s: filtered in user space (%s)", d->cfg->interface,
			 r < 0 ? strerror(-r) : "the kernel refused it");
	return p;
}

/*
 * A block-mode handle swapped out keeps capturing until its unfinished
 * block, frames the new handle never saw, has been handed over.
 */
static void capture_retire(struct odrsd *d, struct capture *c, pcap_t *old)
{
	c->retiring = old;
	ev_io_set(&c->retiring_io, pcap_get_selectable_fd(old), EV_READ);
	ev_io_start(d->loop, &c->retiring_io);
	ev_timer_set(&c->retire_timer, (ACTIVITY_DELAY_MS + 50) / 1000., 0.);
	ev_timer_start(d->loop, &c->retire_timer);
}

static void on_retire_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct capture *c = w->data;

	ev_io_stop(loop, &c->retiring_io);
	capture_drain(c->d, c, c->retiring);
	capture_closing(c, c->retiring);
	c->retiring = NULL;
	/* A change that came meanwhile waited for this. */
	capture_filter_changed(c->d);
}

/*
 * Make before break: the new handle, with the new filter, captures before
 * the old one is drained and closed (an immediate one) or retired (one in
 * blocks), so no frame falls between them (a frame seen by both is
 * harmless: ARP replies are idempotent, held SYNs deduplicated, activity
 * noted twice). A filter with the same text as the last one asked for
 * leaves the handle alone (filter_text() is the key: the same text fits the
 * same way), one that passes nothing closes it; while a handle retires, the
 * swap waits for it. 1 when swapped, 0 when left alone, or -errno.
 */
static int capture_swap(struct odrsd *d, struct capture *c, struct filter *f)
{
	pcap_t *next = NULL, *old = c->pcap;
	char *key = filter_text(f), *text = NULL;

	if (!key)
		return -ENOMEM;
	if ((c->key && !strcmp(key, c->key)) || c->retiring) {
		free(key);
		return 0;
	}
	if (*key && !(next = capture_open(d, f, c->immediate, &text))) {
		free(key);
		return -EINVAL;
	}
	log_debug("capture filter (%s%s): %s", c->name, filter_is_coarse(f) ? ", coarse" : "",
		  text ? text : "");
	free(c->key);
	c->key = key;
	free(c->filter);
	c->filter = text;
	c->fit = next ? filter_fit(f) : FILTER_HOSTS;
	c->in_kernel = next && filter_in_kernel(next) > 0;
	ev_io_stop(d->loop, &c->io);
	c->pcap = next;
	if (next) {
		ev_io_set(&c->io, pcap_get_selectable_fd(next), EV_READ);
		ev_io_start(d->loop, &c->io);
	}
	if (old) {
		capture_drain(d, c, old);
		if (c->immediate)
			capture_closing(c, old);
		else
			capture_retire(d, c, old);
	}
	return 1;
}

/* The confirm capture: the TCP of the VMs idle.c is making sure of; not a filter update, it comes and goes. */
int capture_confirm_update(struct odrsd *d)
{
	struct filter f;
	int r;

	tcp_filter(d, &f, vm_idle_confirming, vm_confirming_udp);
	r = capture_swap(d, &d->confirm, &f);
	return r < 0 ? r : 0;
}

static int capture_update(struct odrsd *d)
{
	struct filter f;
	int wake, activity;

	wake_filter(d, &f);
	if ((wake = capture_swap(d, &d->cap, &f)) < 0)
		return wake;
	d->n.filter_updates += (unsigned)wake;
	tcp_filter(d, &f, vm_managed, vm_managed_udp);
	if ((activity = capture_swap(d, &d->act, &f)) < 0)
		return activity;
	d->n.filter_updates += (unsigned)activity;
	return capture_confirm_update(d);
}

/*
 * Every change of a VM asks for a rebuild; one runs per loop turn at most,
 * and FILTER_SPACING times its own cost after the last (FILTER_WAIT_MAX at
 * most): the rebuild walks every VM, so at start, when the inspects of
 * 100,000 VMs finish one or two per turn, rebuilding each turn would be
 * quadratic.
 */
static void on_filter_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;
	ev_tstamp start = ev_time();

	ev_timer_stop(loop, w);

	if (capture_update(d) < 0)
		log_err("capture filter not updated; keeping the previous one");
	d->filter_built = ev_time();
	d->filter_cost = d->filter_built - start;
}

void capture_interface_changed(struct odrsd *d)
{
	/* Same filters, new interface: the next update reopens the captures. */
	free(d->cap.key);
	free(d->act.key);
	free(d->confirm.key);
	d->cap.key = d->act.key = d->confirm.key = NULL;
	capture_filter_changed(d);
}

void capture_filter_changed(struct odrsd *d)
{
	ev_tstamp wait;

	if (ev_is_active(&d->filter_timer))
		return;
	wait = d->filter_built + FILTER_SPACING * d->filter_cost - ev_time();
	ev_timer_set(&d->filter_timer, wait <= 0 ? 0. : wait < FILTER_WAIT_MAX ? wait : FILTER_WAIT_MAX, 0.);
	ev_timer_start(d->loop, &d->filter_timer);
}

void capture_filter_flush(struct odrsd *d)
{
	if (ev_is_active(&d->filter_timer))
		on_filter_timer(d->loop, &d->filter_timer, 0);
}

/*
 * In force on handle c, for status: "exact", "nets" (networks covering the
 * hosts), "coarse" (any host), "user" (libpcap filters, the kernel refused)
 * or "none".
 */
static const char *capture_mode(const struct capture *c)
{
	static const char *const fits[] = {
		[FILTER_HOSTS] = "exact", [FILTER_NETS] = "nets", [FILTER_ANY] = "coarse"
	};

	return !c->pcap ? "none" : !c->in_kernel ? "user" : fits[c->fit];
}

/* A capture's drops since start, its closed handles' included. */
static uint64_t capture_drops_total(const struct capture *c)
{
	return c->drops_closed + capture_drops(c->pcap) + capture_drops(c->retiring);
}

uint64_t capture_pcap_drops(const struct odrsd *d)
{
	return capture_drops_total(&d->cap) + capture_drops_total(&d->act) + capture_drops_total(&d->confirm);
}

void capture_status(struct odrsd *d, json_t *status, json_t *counters)
{
	const struct capture *all[] = { &d->cap, &d->act, &d->confirm };
	char key[64];

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const struct capture *c = all[i];
		snprintf(key, sizeof(key), "filter_%s", c->name);
		json_object_set_new(status, key, json_string(capture_mode(c)));
		snprintf(key, sizeof(key), "pcap_drops_%s", c->name);
		json_object_set_new(counters, key, json_integer((json_int_t)capture_drops_total(c)));
		snprintf(key, sizeof(key), "filtered_user_%s", c->name);
		json_object_set_new(counters, key, json_integer((json_int_t)c->filtered_user));
	}
}

static void capture_init(struct odrsd *d, struct capture *c, const char *name, bool immediate, int priority,
			 pcap_handler on)
{
	c->d = d;
	c->name = name;
	c->immediate = immediate;
	c->on_frame = on;
	ev_init(&c->io, on_readable);
	ev_set_priority(&c->io, priority);
	c->io.data = c;
	ev_init(&c->retiring_io, on_retiring_readable);
	c->retiring_io.data = c;
	ev_init(&c->retire_timer, on_retire_timer);
	c->retire_timer.data = c;
}

int capture_start(struct odrsd *d)
{
	ev_timer_init(&d->filter_timer, on_filter_timer, 0., 0.);
	d->filter_timer.data = d;
	/* Someone waits for every wake capture frame: first in each loop turn. */
	capture_init(d, &d->cap, "wake", true, EV_MAXPRI, on_frame);
	capture_init(d, &d->act, "activity", false, 0, on_activity_frame);
	capture_init(d, &d->confirm, "confirm", true, 0, on_activity_frame);
	return capture_update(d);
}

static void capture_close(struct odrsd *d, struct capture *c)
{
	if (c->retiring) {
		ev_io_stop(d->loop, &c->retiring_io);
		ev_timer_stop(d->loop, &c->retire_timer);
		pcap_close(c->retiring);
		c->retiring = NULL;
	}
	if (c->pcap) {
		ev_io_stop(d->loop, &c->io);
		pcap_close(c->pcap);
		c->pcap = NULL;
	}
	free(c->filter);
	free(c->key);
	c->filter = c->key = NULL;
}

void capture_stop(struct odrsd *d)
{
	ev_timer_stop(d->loop, &d->filter_timer);
	capture_close(d, &d->cap);
	capture_close(d, &d->act);
	capture_close(d, &d->confirm);
}
