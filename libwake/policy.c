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
	}
	return "unknown";
}

enum wk_trigger wk_trigger_from_name(const char *name)
{
	if (name != NULL && strcmp(name, "arp") == 0)
		return WK_TRIGGER_ARP;
	if (name != NULL && strcmp(name, "syn") == 0)
		return WK_TRIGGER_SYN;
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

bool wk_policy_ignores(const struct wk_policy *p, const struct wk_addr *src)
{
	size_t i;

	if (src == NULL || unspecified(src))
		return false;
	for (i = 0; i < p->nignore_sources; i++)
		if (!memcmp(&p->ignore_sources[i], src, sizeof(*src)))
			return true;
	return false;
}

static bool port_allowed(const struct wk_policy *p, uint16_t port)
{
	size_t i;

	if (p->nwake_ports == 0)
		return true;
	for (i = 0; i < p->nwake_ports; i++)
		if (p->wake_ports[i] == port)
			return true;
	return false;
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
		break;
	case WK_TRIGGER_SYN:
		if (!(p->wake_on & WK_WAKE_SYN))
			return "wake_on";
		if (!port_allowed(p, port))
			return "wake_ports";
		break;
	default:
		return "wake_on";
	}
	return wk_policy_ignores(p, src) ? "ignore_sources" : NULL;
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
