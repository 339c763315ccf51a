/* Policies: which packets may wake a VM. Pure functions over struct wk_policy. */
#ifndef WAKE_POLICY_H
#define WAKE_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <wake/config.h>

/* established: a segment of a flow the VM had open; udp: a datagram to one of wake_udp_ports. */
enum wk_trigger {
	WK_TRIGGER_ARP = 0,
	WK_TRIGGER_SYN,
	WK_TRIGGER_MANUAL,
	WK_TRIGGER_ESTABLISHED,
	WK_TRIGGER_UDP
};
const char *wk_trigger_name(enum wk_trigger t);
/* The inverse of wk_trigger_name; anything else is WK_TRIGGER_MANUAL. */
enum wk_trigger wk_trigger_from_name(const char *name);

/*
 * May a packet from src to port (SYN: wake_ports; UDP: wake_udp_ports; an
 * established flow's segment is for a port the VM had open) wake this VM? src is either
 * family (wk_addr_v4, wk_addr_v6); NULL or an unspecified address (an ARP
 * probe's 0.0.0.0, ::) is no sender and matches no ignore_sources entry.
 */
bool wk_policy_may_wake(const struct wk_policy *p, enum wk_trigger t, const struct wk_addr *src,
			uint16_t port);
/*
 * Why such a packet may not wake the VM: NULL when it may, else the key that
 * refuses it: "wake_on" (its kind is not in wake_on), "wake_ports" (a SYN to
 * another port), "wake_udp_ports" (a datagram to another port), "ignore_sources", or "routers" (an ARP from a router: answered,
 * but only a SYN from behind it wakes, even when wake_on lacks syn).
 */
const char *wk_policy_refusal(const struct wk_policy *p, enum wk_trigger t, const struct wk_addr *src,
			      uint16_t port);
/* Is src listed in ignore_sources (its ARP is neither answered as a wake nor counted)? */
bool wk_policy_ignores(const struct wk_policy *p, const struct wk_addr *src);

/*
 * A token bucket: up to `burst` events at once, refilled at `per_s` a second.
 * Zero-initialise; the first take starts it full. take says whether one more
 * event is allowed now (time in seconds, any monotonic origin); per_s == 0
 * means no limit.
 */
struct wk_rate {
	double tokens, last;
	bool started;
};
bool wk_rate_take(struct wk_rate *r, double per_s, double burst, double now);

/*
 * Idleness, as the paper judges it: a guest whose load average is above
 * load_threshold, or that runs a process named in protect, is busy. The
 * probe's output is what `cat /proc/loadavg /proc/[0-9]*\/comm` prints in the
 * guest: the load average line, then one process name per line.
 */
enum wk_idle_verdict { WK_IDLE = 0, WK_BUSY_LOAD, WK_BUSY_PROCESS, WK_PROBE_BAD };
#define WK_PROBE_COMMAND "cat /proc/loadavg /proc/[0-9]*/comm 2>/dev/null"
/* *load gets the 1-minute load; *process (may be NULL) the protected name found. */
enum wk_idle_verdict wk_idle_judge(const struct wk_policy *p, const char *out, size_t len, double *load,
				   const char **process);
/* "idle", "load", "process", "probe_failed": the idle_skip reasons. */
const char *wk_idle_verdict_name(enum wk_idle_verdict v);

#endif
