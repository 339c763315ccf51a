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
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "odrsd.h"

#define SNAPLEN 2048
/*
 * Past this many addresses in a clause, filter on flags alone. 200 IPv4 and
 * 200 IPv6 addresses in the activity filter, under up to two VLAN tags,
 * compile to about 3,000 instructions: within the kernel's BPF_MAXINSNS
 * (4096), past which libpcap would filter every frame in user space.
 */
#define FILTER_HOSTS 200

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

static void on_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *frame)
{
	struct odrsd *d = (struct odrsd *)user;
	struct wk_pkt p;
	struct vm *vm;

	if (!frame_decode(d, h, frame, &p))
		return;
	switch (p.kind) {
	case WK_PKT_ARP:
		vm = p.arp.op == WK_ARP_REQUEST ? wk_vmtable_by_ip(d->table, p.arp.tpa) : NULL;
		break;
	case WK_PKT_NS:
		vm = wk_vmtable_by_ip6(d->table, p.ns.target);
		break;
	case WK_PKT_TCP:
		/* A SYN-ACK is from its source; a SYN, or a segment of a flow, for its destination. */
		if (wk_pkt_is_synack(&p))
			vm = p.v6 ? wk_vmtable_by_ip6(d->table, p.ip6.src)
				  : wk_vmtable_by_ip(d->table, p.ip.src);
		else
			vm = p.v6 ? wk_vmtable_by_ip6(d->table, p.ip6.dst)
				  : wk_vmtable_by_ip(d->table, p.ip.dst);
		break;
	case WK_PKT_UDP:
		vm = p.v6 ? wk_vmtable_by_ip6(d->table, p.ip6.dst) : wk_vmtable_by_ip(d->table, p.ip.dst);
		break;
	default:
		vm = NULL;
		break;
	}
	if (vm)
		vm_on_frame(d, vm, &p, frame, h->caplen);
}

/*
 * Any TCP of a VM, either way, is activity (a half-open connection too), and
 * its flow is noted (flows.c); UDP is for VMs with activity_udp. The kernel
 * filter is coarser than the VM table (IPv6 by its last 32 bits), the
 * lookups decide.
 */
static void on_activity_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *frame)
{
	struct odrsd *d = (struct odrsd *)user;
	struct wk_pkt p;

	if (!frame_decode(d, h, frame, &p))
		return;
	if (p.kind == WK_PKT_UDP)
		idle_note_udp(d, &p);
	if (p.kind != WK_PKT_TCP)
		return;
	flows_note(d, &p);
	if (p.v6) {
		idle_note_tcp6(d, p.ip6.src);
		idle_note_tcp6(d, p.ip6.dst);
	} else {
		idle_note_tcp(d, p.ip.src);
		idle_note_tcp(d, p.ip.dst);
	}
}

static void capture_drain(struct odrsd *d, struct capture *c, pcap_t *pcap)
{
	/* Bounded, so a flood cannot starve the rest of the loop. */
	for (int i = 0; i < 64; i++)
		if (pcap_dispatch(pcap, -1, c->on_frame, (u_char *)d) <= 0)
			break;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct capture *c = w->data;

	capture_drain(c->d, c, c->pcap);
}

static void on_retiring_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct capture *c = w->data;

	capture_drain(c->d, c, c->retiring);
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

/* How a clause names a VM's address. */
enum filter_addr {
	FILTER_IP,	/* "DIRhost A" */
	FILTER_IP6,	/* "DIRhost A6" */
	FILTER_IP6_LOW, /* its last 32 bits, src or dst: an eighth of the instructions */
};

static void filter_host(FILE *f, const char *dir, const struct vm *vm, enum filter_addr addr)
{
	char ip[INET6_ADDRSTRLEN];
	uint32_t low;

	switch (addr) {
	case FILTER_IP:
		fprintf(f, "%shost %s", dir, inet_ntop(AF_INET, &vm->ip, ip, sizeof(ip)));
		break;
	case FILTER_IP6:
		fprintf(f, "%shost %s", dir, inet_ntop(AF_INET6, vm->ip6, ip, sizeof(ip)));
		break;
	case FILTER_IP6_LOW:
		low = (uint32_t)vm->ip6[12] << 24 | (uint32_t)vm->ip6[13] << 16 | (uint32_t)vm->ip6[14] << 8 |
		      vm->ip6[15];
		fprintf(f, "ip6[20:4] = 0x%08x or ip6[36:4] = 0x%08x", low, low);
		break;
	}
}

/*
 * "(WHAT and (DIRhost A or DIRhost B ...))" for the VMs that match, or
 * "(WHAT)" alone when they are too many to list, after " or " unless first;
 * nothing when none match. Says whether it wrote. FILTER_IP6_LOW takes no DIR.
 */
static bool filter_clause(FILE *f, struct odrsd *d, const char *what, const char *dir,
			  bool (*match)(const struct odrsd *, const struct vm *), bool first,
			  enum filter_addr addr)
{
	bool v6 = addr != FILTER_IP;
	size_t n = 0;

	for (size_t i = 0; i < d->nvms; i++)
		n += match(d, d->vms[i]) && (!v6 || d->vms[i]->has_ip6);
	if (n == 0)
		return false;
	fprintf(f, "%s(%s", first ? "" : " or ", what);
	if (n <= FILTER_HOSTS) {
		n = 0;
		fputs(" and (", f);
		for (size_t i = 0; i < d->nvms; i++)
			if (match(d, d->vms[i]) && (!v6 || d->vms[i]->has_ip6)) {
				fputs(n++ ? " or " : "", f);
				filter_host(f, dir, d->vms[i], addr);
			}
		fputc(')', f);
	}
	fputc(')', f);
	return true;
}

/* The same, untagged, under one VLAN tag or under two. */
static char *filter_vlans(char *l3)
{
	char *all;

	if (asprintf(&all, "(%s) or (vlan and ((%s) or (vlan and (%s))))", l3, l3, l3) < 0)
		all = NULL;
	free(l3);
	return all;
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

/*
 * The wake capture: ARP requests and Neighbor Solicitations on a node that
 * answers them (the table decides); SYNs without ACK to sleeping VMs, over
 * IPv4 and IPv6; SYN-ACKs from VMs with held SYNs not answered yet. NULL when out of memory; "" for nothing.
 */
static char *wake_filter(struct odrsd *d)
{
	char *l3 = NULL;
	size_t len;
	FILE *f = open_memstream(&l3, &len);
	bool any;

	if (!f)
		return NULL;
	any = answers_neighbours(d);
	if (any)
		fputs("(arp and arp[6:2] = 1) or (icmp6 and ip6[40] = 135)", f);
	/* libpcap cannot index TCP over IPv6: the flags are at 40 + 13 without extension headers. */
	any |= filter_clause(f, d, "tcp and tcp[13] & 0x12 = 0x02", "dst ", vm_accepts_syn, !any, FILTER_IP);
	any |= filter_clause(f, d, "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x02", "dst ", vm_accepts_syn,
			     !any, FILTER_IP6);
	/* Segments of the flows a sleeping VM had open, and datagrams: the table and the port decide. */
	any |= filter_clause(f, d, "tcp and tcp[13] & 0x02 = 0", "dst ", vm_accepts_established, !any,
			     FILTER_IP);
	any |= filter_clause(f, d, "ip6 and ip6[6] = 6 and ip6[53] & 0x02 = 0", "dst ",
			     vm_accepts_established, !any, FILTER_IP6);
	any |= filter_clause(f, d, "udp", "dst ", vm_accepts_udp, !any, FILTER_IP);
	any |= filter_clause(f, d, "ip6 and ip6[6] = 17", "dst ", vm_accepts_udp, !any, FILTER_IP6);
	any |= filter_clause(f, d, "tcp and tcp[13] & 0x12 = 0x12", "src ", vm_awaits_synack, !any,
			     FILTER_IP);
	any |= filter_clause(f, d, "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x12", "src ", vm_awaits_synack,
			     !any, FILTER_IP6);
	if (fclose(f) != 0 || !l3)
		return NULL;
	if (!any) {
		free(l3);
		return strdup("");
	}
	return filter_vlans(l3);
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

/* Any TCP of the VMs that match, and any UDP of those that match_udp; "" when none. */
static char *tcp_filter(struct odrsd *d, bool (*match)(const struct odrsd *, const struct vm *),
			bool (*match_udp)(const struct odrsd *, const struct vm *))
{
	char *l3 = NULL;
	size_t len;
	FILE *f = open_memstream(&l3, &len);
	bool any;

	if (!f)
		return NULL;
	any = filter_clause(f, d, "tcp", "", match, true, FILTER_IP);
	any |= filter_clause(f, d, "ip6 and ip6[6] = 6", "", match, !any, FILTER_IP6_LOW);
	any |= filter_clause(f, d, "udp", "", match_udp, !any, FILTER_IP);
	any |= filter_clause(f, d, "ip6 and ip6[6] = 17", "", match_udp, !any, FILTER_IP6_LOW);
	if (fclose(f) != 0 || !l3)
		return NULL;
	if (!any) {
		free(l3);
		return strdup("");
	}
	return filter_vlans(l3);
}

static pcap_t *capture_open(struct odrsd *d, const char *filter, bool immediate)
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
	if (pcap_setdirection(p, PCAP_D_IN) < 0 || pcap_setnonblock(p, 1, errbuf) < 0 ||
	    pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		log_err("capture on %s: %s", d->cfg->interface, pcap_geterr(p));
		pcap_close(p);
		return NULL;
	}
	r = pcap_setfilter(p, &prog);
	pcap_freecode(&prog);
	if (r < 0) {
		log_err("capture filter on %s: %s", d->cfg->interface, pcap_geterr(p));
		pcap_close(p);
		return NULL;
	}
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
	pcap_close(c->retiring);
	c->retiring = NULL;
	/* A change that came meanwhile waited for this. */
	capture_filter_changed(c->d);
}

/*
 * Make before break: the new handle, with the new filter, captures before
 * the old one is drained and closed (an immediate one) or retired (one in
 * blocks), so no frame falls between them (a frame seen by both is
 * harmless: ARP replies are idempotent, held SYNs deduplicated, activity
 * noted twice). Takes filter; an unchanged one leaves the handle alone, ""
 * closes it; while a handle retires, the swap waits for it. 1 when
 * swapped, 0 when left alone, or -errno.
 */
static int capture_swap(struct odrsd *d, struct capture *c, char *filter)
{
	pcap_t *next = NULL, *old = c->pcap;

	if (!filter)
		return -ENOMEM;
	if ((c->filter && !strcmp(filter, c->filter)) || c->retiring) {
		free(filter);
		return 0;
	}
	log_debug("capture filter (%s): %s", c->name, filter);
	if (*filter && !(next = capture_open(d, filter, c->immediate))) {
		free(filter);
		return -EINVAL;
	}
	free(c->filter);
	c->filter = filter;
	ev_io_stop(d->loop, &c->io);
	c->pcap = next;
	if (next) {
		ev_io_set(&c->io, pcap_get_selectable_fd(next), EV_READ);
		ev_io_start(d->loop, &c->io);
	}
	if (old) {
		capture_drain(d, c, old);
		if (c->immediate)
			pcap_close(old);
		else
			capture_retire(d, c, old);
	}
	return 1;
}

/* The confirm capture: the TCP of the VMs idle.c is making sure of; not a filter update, it comes and goes. */
int capture_confirm_update(struct odrsd *d)
{
	int r = capture_swap(d, &d->confirm, tcp_filter(d, vm_idle_confirming, vm_confirming_udp));

	return r < 0 ? r : 0;
}

static int capture_update(struct odrsd *d)
{
	int wake = capture_swap(d, &d->cap, wake_filter(d)), activity;

	if (wake < 0)
		return wake;
	d->n.filter_updates += (unsigned)wake;
	if ((activity = capture_swap(d, &d->act, tcp_filter(d, vm_managed, vm_managed_udp))) < 0)
		return activity;
	d->n.filter_updates += (unsigned)activity;
	return capture_confirm_update(d);
}

static void on_filter_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;

	if (capture_update(d) < 0)
		log_err("capture filter not updated; keeping the previous one");
}

void capture_interface_changed(struct odrsd *d)
{
	/* Same filters, new interface: the next update reopens the captures. */
	free(d->cap.filter);
	free(d->act.filter);
	free(d->confirm.filter);
	d->cap.filter = d->act.filter = d->confirm.filter = NULL;
	capture_filter_changed(d);
}

void capture_filter_changed(struct odrsd *d)
{
	if (!ev_is_active(&d->filter_timer))
		ev_timer_start(d->loop, &d->filter_timer);
}

static void capture_init(struct odrsd *d, struct capture *c, const char *name, bool immediate,
			 pcap_handler on)
{
	c->d = d;
	c->name = name;
	c->immediate = immediate;
	c->on_frame = on;
	ev_init(&c->io, on_readable);
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
	capture_init(d, &d->cap, "wake", true, on_frame);
	capture_init(d, &d->act, "activity", false, on_activity_frame);
	capture_init(d, &d->confirm, "confirm", true, on_activity_frame);
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
	c->filter = NULL;
}

void capture_stop(struct odrsd *d)
{
	ev_timer_stop(d->loop, &d->filter_timer);
	capture_close(d, &d->cap);
	capture_close(d, &d->act);
	capture_close(d, &d->confirm);
}
