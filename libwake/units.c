/*
 * Typed configuration values: durations, sizes, IPv4 and MAC addresses,
 * listening addresses.
 * Strict on purpose: a value either means exactly one thing or is refused,
 * so a typo never turns into a surprising setting.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <wake/config.h>

/* Leading decimal digits of *s into *v; -EINVAL on none or on overflow. */
static int parse_digits(const char **s, uint64_t *v)
{
	const char *p = *s;
	uint64_t n = 0;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (UINT64_MAX - d) / 10)
			return -EINVAL;
		n = n * 10 + d;
	}
	*s = p;
	*v = n;
	return 0;
}

static int scale(uint64_t n, uint64_t mult, uint64_t *out)
{
	if (n > UINT64_MAX / mult)
		return -EINVAL;
	*out = n * mult;
	return 0;
}

int wk_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{ "ms", 1 },
		{ "s", 1000 },
		{ "m", 60 * 1000 },
		{ "h", 3600 * 1000 },
	};
	uint64_t n;
	size_t i;

	if (s == NULL || parse_digits(&s, &n) < 0)
		return -EINVAL;
	/* A bare number has no obvious unit, except zero, which needs none. */
	if (*s == '\0') {
		if (n != 0)
			return -EINVAL;
		*ms = 0;
		return 0;
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(s, units[i].unit) == 0)
			return scale(n, units[i].ms, ms);
	return -EINVAL;
}

int wk_parse_size(const char *s, uint64_t *bytes)
{
	uint64_t n, mult;

	if (s == NULL || parse_digits(&s, &n) < 0)
		return -EINVAL;
	switch (*s) {
	case '\0':
		mult = 1;
		break;
	case 'K':
	case 'k':
		mult = 1ULL << 10;
		break;
	case 'M':
	case 'm':
		mult = 1ULL << 20;
		break;
	case 'G':
	case 'g':
		mult = 1ULL << 30;
		break;
	default:
		return -EINVAL;
	}
	if (*s != '\0' && s[1] != '\0')
		return -EINVAL;
	return scale(n, mult, bytes);
}

int wk_parse_ipv4(const char *s, uint32_t *ip)
{
	struct in_addr a;

	/* inet_pton takes exactly four decimal parts, no leading zeros. */
	if (s == NULL || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*ip = a.s_addr;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int wk_parse_mac(const char *s, uint8_t mac[6])
{
	uint8_t m[6];
	int i;

	if (s == NULL)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);

		if (lo < 0)
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (*s != (i < 5 ? ':' : '\0'))
			return -EINVAL;
		s++;
	}
	memcpy(mac, m, sizeof(m));
	return 0;
}

int wk_parse_hostport(const char *s, struct wk_hostport *hp)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon, *p;
	struct wk_hostport out = { 0 };
	uint64_t port;
	size_t n;

	if (s == NULL)
		return -EINVAL;
	if (s[0] == '[') {
		if (!(p = strchr(s, ']')) || p[1] != ':')
			return -EINVAL;
		n = (size_t)(p - s - 1);
		s++;
		colon = p + 1;
		out.v6 = true;
	} else {
		if (!(colon = strrchr(s, ':')))
			return -EINVAL;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(out.v6 ? AF_INET6 : AF_INET, host, out.addr) != 1)
		return -EINVAL;
	p = colon + 1;
	if (parse_digits(&p, &port) < 0 || *p != '\0' || port == 0 || port > 65535 || colon[1] == '0')
		return -EINVAL;
	out.port = (uint16_t)port;
	*hp = out;
	return 0;
}
