/*
 * Connections that outlive a VM's sleep, and UDP services (odrsd(8),
 * "OPEN CONNECTIONS AND UDP").
 *
 * The source of a VM's flows is the activity capture: it already sees every
 * TCP segment of a managed VM, at no cost beyond a hash lookup per segment.
 * The guest agent could list the guest's sockets, but it is not installed in
 * every guest, and what wakes a VM must not take the guest's word for it.
 * The table is kept while the VM runs on this node: from the moment it goes
 * to sleep, it is the record of the flows it had open, and once it runs
 * again it goes on from there (the guest kept those connections in its
 * image or its memory). Its own segments count until the guest stops, as
 * the activity capture hands them over up to ACTIVITY_DELAY_MS late: an
 * answer sent just before `odrsctl hibernate` comes in while it hibernates.
 * A peer's segments to it count only while it runs: a stranger's ACK to a
 * sleeping VM neither adds nor refreshes nor, as a RST, forgets anything.
 */
#include <sys/random.h>
#include <time.h>

#include "odrsd.h"

/* The flows kept per VM (odrsd(8)): past it, the least recently seen makes room. */
#define FLOWS_PER_VM 256

static uint32_t flow_seed(void)
{
	static uint32_t seed;
	static bool set;

	if (!set && getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint32_t)time(NULL);
	set = true;
	return seed;
}

/* Whether vm's guest may still send: it runs, or is being saved or dozed off. */
static bool guest_sends(const struct vm *vm)
{
	return vm->state == VM_RUNNING || vm->state == VM_HIBERNATING || vm->state == VM_DOZING_OFF;
}

static void note_end(struct odrsd *d, struct vm *vm, const struct wk_pkt *p, bool vm_is_src)
{
	size_t had, payload = wk_pkt_tcp_payload(p);
	struct wk_flowkey k;

	if (!vm || !vm_is_local(d, vm) || !(vm_is_src ? guest_sends(vm) : vm->state == VM_RUNNING) ||
	    wk_flowkey_of(p, vm_is_src, &k) < 0)
		return;
	/* Only data the VM sent can record a flow: no table before some. */
	if (!vm->flows &&
	    (!vm_is_src || !payload || (p->tcp.flags & (WK_TCP_SYN | WK_TCP_RST | WK_TCP_FIN)) ||
	     !(vm->flows = wk_flows_new(FLOWS_PER_VM, flow_seed()))))
		return;
	had = wk_flows_count(vm->flows);
	wk_flows_note(vm->flows, &k, p->tcp.flags, payload, vm_is_src);
	/* Its first flow recorded after it began to sleep: the wake filter must take its segments now. */
	if (!had && vm->state != VM_RUNNING && wk_flows_count(vm->flows))
		capture_filter_changed(d);
}

void flows_note(struct odrsd *d, const struct wk_pkt *p)
{
	if (p->v6) {
		note_end(d, wk_vmtable_by_ip6(d->table, p->ip6.src), p, true);
		note_end(d, wk_vmtable_by_ip6(d->table, p->ip6.dst), p, false);
	} else {
		note_end(d, wk_vmtable_by_ip(d->table, p->ip.src), p, true);
		note_end(d, wk_vmtable_by_ip(d->table, p->ip.dst), p, false);
	}
}

bool flows_known(const struct vm *vm, const struct wk_pkt *p)
{
	struct wk_flowkey k;

	return vm->flows && wk_flowkey_of(p, false, &k) == 0 && wk_flows_has(vm->flows, &k);
}

size_t flows_open(const struct vm *vm)
{
	return wk_flows_count(vm->flows);
}

void flows_free(struct vm *vm)
{
	wk_flows_free(vm->flows);
	vm->flows = NULL;
}
