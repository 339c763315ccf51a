/* Wake policies: pure decisions over a VM's struct wk_policy. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <wake/policy.h>

const char *wk_trigger_name(enum wk_trigger t)
{
	switch (t) {
	case WK_TRIGGER_ARP:
		return "arp";
	case WK_TRIGGER_SYN:
		return "syn";
	case WK_TRIGGER_MANUAL:
		return "manual";
	case WK_TRIGGER_ESTABLISHED:
		return "established";
	case WK_TRIGGER_UDP:
		return "udp";
	}
	return "unknown";
}

enum wk_trigger wk_trigger_from_name(const char *name)
{
	if (name != NULL && strcmp(name, "arp") == 0)
		return WK_TRIGGER_ARP;
	if (name != NULL && strcmp(name, "syn") == 0)
		return WK_TRIGGER_SYN;
	if (name != NULL && strcmp(name, "established") == 0)
		return WK_TRIGGER_ESTABLISHED;
	if (name != NULL && strcmp(name, "udp") == 0)
		return WK_TRIGGER_UDP;
	return WK_TRIGGER_MANUAL;
}

bool wk_rate_take(struct wk_rate *r, double per_s, double burst, double now)
{
	if (per_s <= 0)
		return true;
	if (!r->started) {
		r->started = true;
		r->tokens = burst;
	} else if (now > r->last) {
		r->tokens += (now - r->last) * per_s;
	}
	if (r->tokens > burst)
		r->tokens = burst;
	r->last = now;
	if (r->tokens < 1)
		return false;
	r->tokens -= 1;
	return true;
}

/* ::, or 0.0.0.0 mapped: no sender at all. */
static bool unspecified(const struct wk_addr *a)
{
	static const struct wk_addr any, any4 = { .b = { [10] = 0xff, [11] = 0xff } };

	return !memcmp(a, &any, sizeof(*a)) || !memcmp(a, &any4, sizeof(*a));
}

/* Whether a, a sender (NULL or unspecified: none), is among list[0..n). */
static bool listed(const struct wk_addr *list, size_t n, const struct wk_addr *a)
{
	if (a == NULL || unspecified(a))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!memcmp(&list[i], a, sizeof(*a)))
			return true;
	return false;
}

bool wk_policy_ignores(const struct wk_policy *p, const struct wk_addr *src)
{
	return listed(p->ignore_sources, p->nignore_sources, src);
}

static bool port_listed(const uint16_t *ports, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (ports[i] == port)
			return true;
	return false;
}

static bool port_allowed(const struct wk_policy *p, uint16_t port)
{
	return p->nwake_ports == 0 || port_listed(p->wake_ports, p->nwake_ports, port);
}

const char *wk_policy_refusal(const struct wk_policy *p, enum wk_trigger t, const struct wk_addr *src,
			      uint16_t port)
{
	switch (t) {
	case WK_TRIGGER_MANUAL:
		/* An operator's odrsctl wake is never filtered. */
		return NULL;
	case WK_TRIGGER_ARP:
		if (!(p->wake_on & WK_WAKE_ARP))
			return "wake_on";
		if (wk_policy_ignores(p, src))
			return "ignore_sources";
		/* A router ARPs for whatever is routed to the VM, scans too: its SYN says more. */
		if (listed(p->routers, p->nrouters, src))
			return "routers";
		return NULL;
	case WK_TRIGGER_SYN:
		/* With routers named, a SYN is what wakes for them, whatever wake_on says. */
		if (!(p->wake_on & WK_WAKE_SYN) && !p->nrouters)
			return "wake_on";
		if (!port_allowed(p, port))
			return "wake_ports";
		if (wk_policy_ignores(p, src))
			return "ignore_sources";
		return NULL;
	case WK_TRIGGER_ESTABLISHED:
		if (!(p->wake_on & WK_WAKE_ESTABLISHED))
			return "wake_on";
		if (wk_policy_ignores(p, src))
			return "ignore_sources";
		return NULL;
	case WK_TRIGGER_UDP:
		if (!port_listed(p->wake_udp_ports, p->nwake_udp_ports, port))
			return "wake_udp_ports";
		if (wk_policy_ignores(p, src))
			return "ignore_sources";
		return NULL;
	}
	return "wake_on";
}

bool wk_policy_may_wake(const struct wk_policy *p, enum wk_trigger t, const struct wk_addr *src,
			uint16_t port)
{
	return wk_policy_refusal(p, t, src, port) == NULL;
}

const char *wk_idle_verdict_name(enum wk_idle_verdict v)
{
	switch (v) {
	case WK_IDLE:
		return "idle";
	case WK_BUSY_LOAD:
		return "load";
	case WK_BUSY_PROCESS:
		return "process";
	case WK_PROBE_BAD:
		return "probe_failed";
	}
	return "unknown";
}

static const char *protected_name(const struct wk_policy *p, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < p->nprotect; i++)
		if (strlen(p->protect[i]) == len && memcmp(p->protect[i], name, len) == 0)
			return p->protect[i];
	return NULL;
}

enum wk_idle_verdict wk_idle_judge(const struct wk_policy *p, const char *out, size_t len, double *load,
				   const char **process)
{
	char first[64], *end;
	const char *line, *nl, *stop = out + len, *hit;
	size_t n;

	*load = 0;
	if (process)
		*process = NULL;
	nl = memchr(out, '\n', len);
	n = nl ? (size_t)(nl - out) : len;
	if (n == 0 || n >= sizeof(first))
		return WK_PROBE_BAD;
	memcpy(first, out, n);
	first[n] = '\0';
	*load = strtod(first, &end);
	if (end == first || (*end != ' ' && *end != '\0') || *load < 0)
		return WK_PROBE_BAD;
	for (line = nl ? nl + 1 : stop; line < stop; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(stop - line));
		if (!nl)
			nl = stop;
		if ((hit = protected_name(p, line, (size_t)(nl - line)))) {
			if (process)
				*process = hit;
			return WK_BUSY_PROCESS;
		}
	}
	return *load > p->load_threshold ? WK_BUSY_LOAD : WK_IDLE;
}
