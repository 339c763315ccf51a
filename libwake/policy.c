/* Wake policies: pure decisions over a VM's struct wk_policy. */
#include <stddef.h>

#include <wake/policy.h>

const char *
wk_trigger_name(enum wk_trigger t)
{
	switch (t) {
	case WK_TRIGGER_ARP:    return "arp";
	case WK_TRIGGER_SYN:    return "syn";
	case WK_TRIGGER_MANUAL: return "manual";
	}
	return "unknown";
}

bool
wk_policy_ignores(const struct wk_policy *p, uint32_t src)
{
	size_t i;

	for (i = 0; i < p->nignore_sources; i++)
		if (p->ignore_sources[i] == src)
			return true;
	return false;
}

static bool
port_allowed(const struct wk_policy *p, uint16_t port)
{
	size_t i;

	if (p->nwake_ports == 0)
		return true;
	for (i = 0; i < p->nwake_ports; i++)
		if (p->wake_ports[i] == port)
			return true;
	return false;
}

bool
wk_policy_may_wake(const struct wk_policy *p, enum wk_trigger t, uint32_t src, uint16_t port)
{
	switch (t) {
	case WK_TRIGGER_MANUAL:
		/* An operator's odrsctl wake is never filtered. */
		return true;
	case WK_TRIGGER_ARP:
		return (p->wake_on & WK_WAKE_ARP) && !wk_policy_ignores(p, src);
	case WK_TRIGGER_SYN:
		return (p->wake_on & WK_WAKE_SYN) && port_allowed(p, port) &&
		    !wk_policy_ignores(p, src);
	}
	return false;
}
