/* Policies: which packets may wake a VM. Pure functions over struct wk_policy. */
#ifndef WAKE_POLICY_H
#define WAKE_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <wake/config.h>

enum wk_trigger { WK_TRIGGER_ARP = 0, WK_TRIGGER_SYN, WK_TRIGGER_MANUAL };
const char *wk_trigger_name(enum wk_trigger t);

/* May a packet from src (network order) to port (SYN only) wake this VM? */
bool wk_policy_may_wake(const struct wk_policy *p, enum wk_trigger t, uint32_t src, uint16_t port);
/* Is src listed in ignore_sources (its ARP is neither answered as a wake nor counted)? */
bool wk_policy_ignores(const struct wk_policy *p, uint32_t src);

#endif
