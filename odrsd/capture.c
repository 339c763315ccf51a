/*
 * The data path: capture, classify, act. Everything odrsd does on the wire
 * starts in on_frame(); the kernel filter below passes only what it needs.
 *
 * Two captures on the interface: the wake capture (ARP requests, SYNs to
 * sleeping VMs, SYN-ACKs of replays) in immediate mode, as every frame there
 * is someone waiting; and the activity capture (TCP of running VMs) that the
 * kernel hands over in blocks, at most ACTIVITY_DELAY_MS late: a busy VM
 * costs a copy per frame, not a wake-up (bench/activity.sh measures both).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "odrsd.h"

#define SNAPLEN	     2048
#define FILTER_HOSTS 200 /* past this many addresses, filter on flags alone */

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
		if (p.arp.op == WK_ARP_REQUEST && (vm = wk_vmtable_by_ip(d->table, p.arp.tpa)))
			wake_on_arp_request(d, vm, &p);
		break;
	case WK_PKT_NS:
		if ((vm = wk_vmtable_by_ip6(d->table, p.ns.target)))
			wake_on_ns(d, vm, &p);
		break;
	case WK_PKT_TCP:
		if (wk_pkt_is_syn(&p) && (vm = p.v6 ? wk_vmtable_by_ip6(d->table, p.ip6.dst)
						    : wk_vmtable_by_ip(d->table, p.ip.dst)))
			wake_on_syn(d, vm, &p, frame, h->caplen);
		else if (wk_pkt_is_synack(&p) && (vm = p.v6 ? wk_vmtable_by_ip6(d->table, p.ip6.src)
							    : wk_vmtable_by_ip(d->table, p.ip.src)))
			wake_on_synack(d, vm, &p);
		break;
	default:
		break;
	}
}

/* Any TCP of a running VM, either way, is activity (a half-open connection too). */
static void on_activity_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *frame)
{
	struct odrsd *d = (struct odrsd *)user;
	struct wk_pkt p;

	if (!frame_decode(d, h, frame, &p) || p.kind != WK_PKT_TCP)
		return;
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

void capture_activity_flush(struct odrsd *d)
{
	if (d->act.pcap)
		capture_drain(d, &d->act, d->act.pcap);
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

/* Only the accept node takes SYNs for sleeping VMs: the switches send them there. */
static bool vm_accepts_syn(const struct odrsd *d, const struct vm *vm)
{
	return d->accept && vm_is_asleep(vm);
}

/*
 * "(WHAT and (DIRhost A or DIRhost B ...))" for the VMs that match, or
 * "(WHAT)" alone when they are too many to list, after " or " unless first;
 * nothing when none match. Says whether it wrote.
 */
static bool filter_clause(FILE *f, struct odrsd *d, const char *what, const char *dir,
			  bool (*match)(const struct odrsd *, const struct vm *), bool first, bool v6)
{
	char ip[INET6_ADDRSTRLEN];
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
			if (match(d, d->vms[i]) && (!v6 || d->vms[i]->has_ip6))
				fprintf(f, "%s%shost %s", n++ ? " or " : "", dir,
					v6 ? inet_ntop(AF_INET6, d->vms[i]->ip6, ip, sizeof(ip))
					   : inet_ntop(AF_INET, &d->vms[i]->ip, ip, sizeof(ip)));
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

/*
 * The wake capture: ARP requests and Neighbor Solicitations on the accept
 * node (the table decides); there, SYNs without ACK to sleeping VMs, over
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
	any = d->accept;
	if (any)
		fputs("(arp and arp[6:2] = 1) or (icmp6 and ip6[40] = 135)", f);
	/* libpcap cannot index TCP over IPv6: the flags are at 40 + 13 without extension headers. */
	any |= filter_clause(f, d, "tcp and tcp[13] & 0x12 = 0x02", "dst ", vm_accepts_syn, !any, false);
	any |= filter_clause(f, d, "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x02", "dst ", vm_accepts_syn,
			     !any, true);
	any |= filter_clause(f, d, "tcp and tcp[13] & 0x12 = 0x12", "src ", vm_awaits_synack, !any, false);
	any |= filter_clause(f, d, "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x12", "src ", vm_awaits_synack,
			     !any, true);
	if (fclose(f) != 0 || !l3)
		return NULL;
	if (!any) {
		free(l3);
		return strdup("");
	}
	return filter_vlans(l3);
}

/* The activity capture: any TCP of the VMs idle.c watches; "" when none. */
static char *activity_filter(struct odrsd *d)
{
	char *l3 = NULL;
	size_t len;
	FILE *f = open_memstream(&l3, &len);
	bool any;

	if (!f)
		return NULL;
	any = filter_clause(f, d, "tcp", "", vm_watch_activity, true, false);
	any |= filter_clause(f, d, "ip6 and ip6[6] = 6", "", vm_watch_activity, !any, true);
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
 * Make before break: the new handle, with the new filter, captures before
 * the old one is drained and closed, so no frame falls between them (a frame
 * seen by both is harmless: ARP replies are idempotent, held SYNs deduplicated).
 * Takes filter; an unchanged one leaves the handle alone, "" closes it.
 */
static int capture_swap(struct odrsd *d, struct capture *c, char *filter)
{
	pcap_t *next = NULL, *old = c->pcap;

	if (!filter)
		return -ENOMEM;
	if (c->filter && !strcmp(filter, c->filter)) {
		free(filter);
		return 0;
	}
	log_debug("capture filter (%s): %s", c->immediate ? "wake" : "activity", filter);
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
		pcap_close(old);
	}
	d->n.filter_updates++;
	return 0;
}

static int capture_update(struct odrsd *d)
{
	int r = capture_swap(d, &d->cap, wake_filter(d));

	if (r == 0)
		r = capture_swap(d, &d->act, activity_filter(d));
	return r;
}

static void on_filter_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;

	if (capture_update(d) < 0)
		log_err("capture filter not updated; keeping the previous one");
}

void capture_interface_changed(struct odrsd *d)
{
	/* Same filters, new interface: the next update reopens both captures. */
	free(d->cap.filter);
	free(d->act.filter);
	d->cap.filter = d->act.filter = NULL;
	capture_filter_changed(d);
}

void capture_filter_changed(struct odrsd *d)
{
	if (!ev_is_active(&d->filter_timer))
		ev_timer_start(d->loop, &d->filter_timer);
}

static void capture_init(struct odrsd *d, struct capture *c, bool immediate, pcap_handler on)
{
	c->d = d;
	c->immediate = immediate;
	c->on_frame = on;
	ev_init(&c->io, on_readable);
	c->io.data = c;
}

int capture_start(struct odrsd *d)
{
	ev_timer_init(&d->filter_timer, on_filter_timer, 0., 0.);
	d->filter_timer.data = d;
	capture_init(d, &d->cap, true, on_frame);
	capture_init(d, &d->act, false, on_activity_frame);
	return capture_update(d);
}

static void capture_close(struct odrsd *d, struct capture *c)
{
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
}
