/*
 * The data path: capture, classify, act. Everything odrsd does on the wire
 * starts in on_frame(); the kernel filter below passes only what it needs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "odrsd.h"

#define SNAPLEN        2048
#define FILTER_HOSTS   200   /* past this many addresses, filter on flags alone */

static void on_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *frame)
{
	struct odrsd *d = (struct odrsd *)user;
	struct wk_pkt p;
	struct vm *vm;

	d->n.frames++;
	if (h->caplen < h->len || wk_pkt_parse(frame, h->caplen, &p) < 0) {
		d->n.malformed++;
		return;
	}
	switch (p.kind) {
	case WK_PKT_ARP:
		if (p.arp.op == WK_ARP_REQUEST && (vm = wk_vmtable_by_ip(d->table, p.arp.tpa)))
			wake_on_arp_request(d, vm, &p);
		break;
	case WK_PKT_TCP:
		idle_note_tcp(d, p.ip.src);
		idle_note_tcp(d, p.ip.dst);
		if (wk_pkt_is_syn(&p) && (vm = wk_vmtable_by_ip(d->table, p.ip.dst)))
			wake_on_syn(d, vm, &p, frame, h->caplen);
		else if (wk_pkt_is_synack(&p) && (vm = wk_vmtable_by_ip(d->table, p.ip.src)))
			wake_on_synack(d, vm, &p);
		break;
	default:
		break;
	}
}

static void capture_drain(struct odrsd *d, pcap_t *pcap)
{
	/* Bounded, so a flood cannot starve the rest of the loop. */
	for (int i = 0; i < 64; i++)
		if (pcap_dispatch(pcap, -1, on_frame, (u_char *)d) <= 0)
			break;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct odrsd *d = w->data;

	capture_drain(d, d->cap.pcap);
}

static bool vm_awaits_synack(const struct vm *vm)
{
	return vm->state == VM_RUNNING && vm->held;
}

/*
 * " or (WHAT and (DIRhost A or DIRhost B ...))" for the VMs that match, or
 * " or (WHAT)" alone when they are too many to list.
 */
static void filter_clause(FILE *f, struct odrsd *d, const char *what, const char *dir,
			  bool (*match)(const struct vm *))
{
	char ip[INET_ADDRSTRLEN];
	size_t n = 0;

	for (size_t i = 0; i < d->nvms; i++)
		n += match(d->vms[i]);
	if (n == 0)
		return;
	fprintf(f, " or (%s", what);
	if (n <= FILTER_HOSTS) {
		n = 0;
		fputs(" and (", f);
		for (size_t i = 0; i < d->nvms; i++)
			if (match(d->vms[i]))
				fprintf(f, "%s%shost %s", n++ ? " or " : "", dir,
					inet_ntop(AF_INET, &d->vms[i]->ip, ip, sizeof(ip)));
		fputc(')', f);
	}
	fputc(')', f);
}

/*
 * ARP requests always (the table decides); SYNs without ACK to sleeping VMs;
 * SYN-ACKs from VMs whose replayed SYNs are not answered yet; any TCP of VMs
 * whose activity this check interval has not seen yet (idle.c). Frames with
 * one or two VLAN tags are matched the same way.
 */
static char *filter_build(struct odrsd *d)
{
	char *l3 = NULL, *all = NULL;
	size_t len;
	FILE *f = open_memstream(&l3, &len);

	if (!f)
		return NULL;
	fputs("(arp and arp[6:2] = 1)", f);
	filter_clause(f, d, "tcp and tcp[13] & 0x12 = 0x02", "dst ", vm_is_asleep);
	filter_clause(f, d, "tcp and tcp[13] & 0x12 = 0x12", "src ", vm_awaits_synack);
	filter_clause(f, d, "tcp", "", vm_watch_activity);
	if (fclose(f) != 0 || !l3)
		return NULL;
	if (asprintf(&all, "(%s) or (vlan and ((%s) or (vlan and (%s))))", l3, l3, l3) < 0)
		all = NULL;
	free(l3);
	return all;
}

static pcap_t *capture_open(struct odrsd *d, const char *filter)
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
	pcap_set_immediate_mode(p, 1);
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
 */
static int capture_swap(struct odrsd *d)
{
	char *filter = filter_build(d);
	pcap_t *next, *old = d->cap.pcap;

	if (!filter)
		return -ENOMEM;
	log_debug("capture filter: %s", filter);
	next = capture_open(d, filter);
	free(filter);
	if (!next)
		return -EINVAL;
	ev_io_stop(d->loop, &d->cap.io);
	d->cap.pcap = next;
	ev_io_set(&d->cap.io, pcap_get_selectable_fd(next), EV_READ);
	ev_io_start(d->loop, &d->cap.io);
	if (old) {
		capture_drain(d, old);
		pcap_close(old);
	}
	d->n.filter_updates++;
	return 0;
}

static void on_filter_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct odrsd *d = w->data;

	if (capture_swap(d) < 0)
		log_err("capture filter not updated; keeping the previous one");
}

void capture_filter_changed(struct odrsd *d)
{
	if (!ev_is_active(&d->filter_timer))
		ev_timer_start(d->loop, &d->filter_timer);
}

int capture_start(struct odrsd *d)
{
	ev_timer_init(&d->filter_timer, on_filter_timer, 0., 0.);
	d->filter_timer.data = d;
	ev_init(&d->cap.io, on_readable);
	d->cap.io.data = d;
	return capture_swap(d);
}

void capture_stop(struct odrsd *d)
{
	ev_timer_stop(d->loop, &d->filter_timer);
	if (d->cap.pcap) {
		ev_io_stop(d->loop, &d->cap.io);
		pcap_close(d->cap.pcap);
		d->cap.pcap = NULL;
	}
}
