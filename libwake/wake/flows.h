/*
 * A VM's open TCP flows, as the wire shows them (the activity capture sees
 * every TCP segment of a managed VM): what lets a segment of a connection
 * that outlived the VM's sleep wake it, while a stranger's ACK wakes nothing.
 *
 * A flow is keyed from the VM's side: the peer's address (IPv4 mapped, see
 * struct wk_addr), the VM's port and the peer's. wk_flows_note() applies one
 * segment: one the VM sent with data and without SYN, RST or FIN records
 * the flow (the guest proved it holds the connection; a SYN flood's
 * SYN-ACKs record nothing, and a spoofed ACK draws the guest's RST, which
 * forgets it); any other segment only refreshes a flow already recorded;
 * a RST or FIN either way forgets it. A pure ACK never records: the last
 * ACK of a closed connection, after both FINs, would bring it back. At most cap flows: the least recently noted one makes room.
 * Lookups are one hash probe chain (seeded by the caller); nothing allocates
 * after wk_flows_new(). No time-out: a quiet connection is the point.
 */
#ifndef WAKE_FLOWS_H
#define WAKE_FLOWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wake/config.h>
#include <wake/frame.h>

#define WK_FLOWS_MAX 4096 /* the largest cap */

struct wk_flowkey {
	struct wk_addr peer;
	uint16_t vm_port, peer_port;
};

/*
 * The key of p's flow seen from the VM at one end: vm_is_src says which.
 * -EPROTONOSUPPORT unless p is a whole TCP segment (not a later fragment).
 */
int wk_flowkey_of(const struct wk_pkt *p, bool vm_is_src, struct wk_flowkey *out);

struct wk_flows;
/* NULL when out of memory or cap is 0 or above WK_FLOWS_MAX. */
struct wk_flows *wk_flows_new(unsigned cap, uint32_t seed);
void wk_flows_free(struct wk_flows *t);
/* Apply one segment of flow k with TCP flags `flags` (WK_TCP_*) and `payload` bytes of data, sent by the VM or to it. */
void wk_flows_note(struct wk_flows *t, const struct wk_flowkey *k, uint8_t flags, size_t payload,
		   bool from_vm);
bool wk_flows_has(const struct wk_flows *t, const struct wk_flowkey *k);
size_t wk_flows_count(const struct wk_flows *t);
void wk_flows_clear(struct wk_flows *t);

#endif
