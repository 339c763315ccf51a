/*
 * The configuration loader. inih splits the file into sections and
 * KEY = VALUE pairs; a keyword table per section gives every key its type,
 * bounds and field. Every problem is reported as FILE:LINE through the
 * caller's callback and loading goes on, so one run lists them all.
 *
 * Debian's inih is built without INI_HANDLER_LINENO, so the line reader
 * below counts lines itself: inih calls the handler for a line right after
 * the reader returned it. The reader also tracks sections (inih does not
 * report empty ones, and truncates names at 50 characters), strips `#` and
 * `;` comments and indentation (so there are no continuation lines), and
 * reports every malformed line, where inih would report only the first.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <ini.h>

#include <wake/config.h>
#include <wake/vmtable.h>

#define SEC  1000ULL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)

enum kind {
	K_STR,	   /* char *, checked by key->check */
	K_UINT,	   /* unsigned, min..max */
	K_DUR,	   /* uint64_t ms, min..max, or 0 when zero_ok */
	K_SIZE,	   /* uint64_t bytes, min..max, or 0 when zero_ok */
	K_DOUBLE,  /* double, min..max */
	K_BOOL,	   /* yes | no */
	K_ENUM,	   /* an enum, key->words in value order */
	K_WORDS,   /* char **, count at off_n */
	K_WAKE_ON, /* unsigned WK_WAKE_* flags */
	K_PORTS,   /* uint16_t *, count at off_n; key->words[0] (default "any"): no list */
	K_IPS,	   /* struct wk_addr *, IPv4 or IPv6, count at off_n */
	K_IP,	   /* uint32_t, unicast */
	K_MAC,	   /* uint8_t[6], unicast; bool at off_n */
	K_IP6,	   /* uint8_t[16], unicast; bool at off_n */
};

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	size_t off_n;
	uint64_t min, max;
	bool zero_ok;
	const char *const *words;
	const char *(*check)(const char *value); /* NULL or what was expected */
	size_t off_line;			 /* where the line that set it goes; 0: nowhere */
};

_Static_assert(sizeof(enum wk_probe) == sizeof(int) && sizeof(enum wk_backend) == sizeof(int) &&
		       sizeof(enum wk_shrink) == sizeof(int) && sizeof(enum wk_sleep) == sizeof(int) &&
		       sizeof(enum wk_discover) == sizeof(int),
	       "K_ENUM stores an int");

static const char *check_node(const char *v)
{
	size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");

	return n == 0 || v[n] != '\0' || n > 64
		       ? "expected a node name: 1 to 64 letters, digits, '.', '-' or '_'"
		       : NULL;
}

static const char *check_ifname(const char *v)
{
	size_t n = strlen(v);

	return n == 0 || n > 15 || strpbrk(v, "/: \t") != NULL || strcmp(v, ".") == 0 || strcmp(v, "..") == 0
		       ? "expected a network interface name like br0"
		       : NULL;
}

static const char *check_path(const char *v)
{
	return v[0] != '/' ? "expected an absolute path" : NULL;
}

static const char *check_socket(const char *v)
{
	return v[0] != '/' || strlen(v) >= sizeof(((struct sockaddr_un *)0)->sun_path)
		       ? "expected an absolute path of at most 107 characters"
		       : NULL;
}

static const char *check_uri(const char *v)
{
	return strchr(v, ':') == NULL || strpbrk(v, " \t") != NULL
		       ? "expected a libvirt URI like qemu:///system"
		       : NULL;
}

static const char *check_listen(const char *v)
{
	struct wk_hostport hp;

	return wk_parse_hostport(v, &hp) < 0 ? "expected ADDR:PORT like 198.18.1.1:9464 or [fd00::1]:9464"
					     : NULL;
}

/* Comma-separated http:// or https:// endpoints, as etcd clients take them. */
static const char *check_endpoints(const char *v)
{
	const char *p = v;

	if (strpbrk(v, " \t") != NULL)
		goto bad;
	for (;;) {
		size_t n = strcspn(p, ","), scheme;

		if (strncmp(p, "http://", 7) == 0)
			scheme = 7;
		else if (strncmp(p, "https://", 8) == 0)
			scheme = 8;
		else
			goto bad;
		if (n <= scheme)
			goto bad;
		if (p[n] == '\0')
			return NULL;
		p += n + 1;
	}
bad:
	return "expected endpoints like http://198.18.2.1:2379, separated by commas";
}

static const char *const probe_words[] = { "agent", "ssh", "none", NULL };
static const char *const backend_words[] = { "none", "etcd", NULL };
static const char *const shrink_words[] = { "none", "caches", "balloon", NULL };
static const char *const sleep_words[] = { "hibernate", "doze", "doze_then_hibernate", NULL };
static const char *const discover_words[] = { "none", "libvirt", NULL };
static const char *const idle_connections_words[] = { "ignore", "keep", NULL };
static const char *const no_ports_words[] = { "none", NULL };

#define CFG(f)	     offsetof(struct wk_config, f)
#define POL(f)	     offsetof(struct wk_policy, f)
#define VMC(f)	     offsetof(struct wk_vmconf, f)
#define KEY(n, k, o) .name = (n), .kind = (k), .off = (o)

static const struct key odrsd_keys[] = {
	{ KEY("node", K_STR, CFG(node)), .check = check_node },
	{ KEY("interface", K_STR, CFG(interface)), .check = check_ifname },
	{ KEY("snapshot_dir", K_STR, CFG(snapshot_dir)), .check = check_path },
	{ KEY("libvirt_uri", K_STR, CFG(libvirt_uri)), .check = check_uri },
	{ KEY("control_socket", K_STR, CFG(control_socket)), .check = check_socket },
	{ KEY("event_log", K_STR, CFG(event_log)), .check = check_path },
	{ KEY("state_dir", K_STR, CFG(state_dir)), .check = check_path },
	{ KEY("wake_concurrency", K_UINT, CFG(wake_concurrency)), .min = 1, .max = 256 },
	{ KEY("hibernate_concurrency", K_UINT, CFG(hibernate_concurrency)), .min = 1, .max = 64 },
	{ KEY("syn_hold_per_vm", K_UINT, CFG(syn_hold_per_vm)), .min = 1, .max = 1024 },
	{ KEY("syn_hold_total", K_UINT, CFG(syn_hold_total)), .min = 1, .max = 1000000 },
	{ KEY("wake_timeout", K_DUR, CFG(wake_timeout_ms)), .min = SEC, .max = HOUR },
	{ KEY("wake_spacing", K_DUR, CFG(wake_spacing_ms)), .min = 1, .max = 10 * SEC, .zero_ok = true },
	{ KEY("wakes_per_minute", K_UINT, CFG(wakes_per_minute)), .min = 0, .max = 1000000 },
	{ KEY("check_interval", K_DUR, CFG(check_interval_ms)), .min = SEC, .max = HOUR },
	{ KEY("probe_timeout", K_DUR, CFG(probe_timeout_ms)), .min = SEC, .max = 5 * MIN },
	{ KEY("metrics_listen", K_STR, CFG(metrics_listen)), .check = check_listen },
	{ KEY("discover", K_ENUM, CFG(discover)), .words = discover_words },
	{ KEY("wake_on_stop", K_BOOL, CFG(wake_on_stop)) },
};

/* Also the keys a [vm NAME] section may override: offsets into struct wk_policy. */
static const struct key policy_keys[] = {
	{ KEY("idle_timeout", K_DUR, POL(idle_timeout_ms)), .min = SEC, .max = 720 * HOUR, .zero_ok = true },
	{ KEY("load_threshold", K_DOUBLE, POL(load_threshold)), .min = 0, .max = 1000 },
	{ KEY("protect", K_WORDS, POL(protect)), .off_n = POL(nprotect) },
	{ KEY("probe", K_ENUM, POL(probe)), .words = probe_words },
	{ KEY("wake_on", K_WAKE_ON, POL(wake_on)) },
	{ KEY("wake_ports", K_PORTS, POL(wake_ports)), .off_n = POL(nwake_ports) },
	{ KEY("ignore_sources", K_IPS, POL(ignore_sources)), .off_n = POL(nignore_sources) },
	{ KEY("routers", K_IPS, POL(routers)), .off_n = POL(nrouters) },
	{ KEY("replay_syn", K_BOOL, POL(replay_syn)) },
	{ KEY("dry_run", K_BOOL, POL(dry_run)) },
	{ KEY("shrink", K_ENUM, POL(shrink)), .words = shrink_words },
	{ KEY("wakes_per_hour", K_UINT, POL(wakes_per_hour)), .min = 0, .max = 1000000 },
	/* Its line: whether the host can doze is odrsd's to check (wk_config_sleep_line). */
	{ KEY("sleep", K_ENUM, POL(sleep)), .words = sleep_words, .off_line = POL(sleep_line) },
	{ KEY("hibernate_after", K_DUR, POL(hibernate_after_ms)), .min = SEC, .max = 720 * HOUR },
	{ KEY("idle_connections", K_ENUM, POL(idle_connections)), .words = idle_connections_words },
	{ KEY("wake_udp_ports", K_PORTS, POL(wake_udp_ports)), .off_n = POL(nwake_udp_ports),
	  .words = no_ports_words },
	{ KEY("activity_udp", K_BOOL, POL(activity_udp)) },
};

static const struct key cluster_keys[] = {
	{ KEY("backend", K_ENUM, CFG(backend)), .words = backend_words },
	{ KEY("etcd", K_STR, CFG(etcd)), .check = check_endpoints },
	{ KEY("accept_term", K_DUR, CFG(accept_term_ms)), .min = SEC, .max = 24 * HOUR },
	{ KEY("lease_ttl", K_DUR, CFG(lease_ttl_ms)), .min = SEC, .max = HOUR },
	{ KEY("memory", K_SIZE, CFG(memory_bytes)), .min = 64ULL << 20, .max = 1ULL << 50, .zero_ok = true },
	{ KEY("cpus", K_UINT, CFG(cpus)), .min = 0, .max = 65536 },
	{ KEY("retrain_rate", K_UINT, CFG(retrain_rate)), .min = 10, .max = 1000000 },
	{ KEY("retrain_delay", K_DUR, CFG(retrain_delay_ms)), .min = 100, .max = HOUR, .zero_ok = true },
	{ KEY("retrain_refresh", K_DUR, CFG(retrain_refresh_ms)), .min = SEC, .max = HOUR, .zero_ok = true },
};

static const struct key vm_keys[] = {
	{ KEY("ip", K_IP, VMC(ip)) },
	{ KEY("mac", K_MAC, VMC(mac)), .off_n = VMC(has_mac) },
	{ KEY("ip6", K_IP6, VMC(ip6)), .off_n = VMC(has_ip6) },
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))
/* In a [vm] section, policy keys are numbered after the VM's own. */
#define VM_POLICY_BIT 16
enum { ODRSD = 0, POLICY, CLUSTER, NGLOBAL };
enum { VM_IP = 0, VM_MAC, VM_IP6 };

_Static_assert(NKEYS(odrsd_keys) <= 64 && NKEYS(cluster_keys) <= 64 && NKEYS(vm_keys) <= VM_POLICY_BIT &&
		       VM_POLICY_BIT + NKEYS(policy_keys) <= 64,
	       "a section's keys fit the 64-bit seen mask");

static const char *const global_names[NGLOBAL] = { "odrsd", "policy", "cluster" };
static const struct key *const global_keys[NGLOBAL] = { odrsd_keys, policy_keys, cluster_keys };
static const size_t global_nkeys[NGLOBAL] = {
	NKEYS(odrsd_keys),
	NKEYS(policy_keys),
	NKEYS(cluster_keys),
};

enum sect { S_NONE, S_GLOBAL, S_VM, S_UNKNOWN };

struct vm_extra {
	uint64_t seen; /* keys this section set, by bit */
	unsigned keyline[VM_IP6 + 1];
};

struct loader {
	struct wk_config *cfg;
	const char *file;
	wk_diag_fn diag;
	void *ctx;
	unsigned nproblems;
	bool oom;
	/* the line reader */
	FILE *fp;
	char *buf;
	size_t bufsz;
	unsigned lineno;
	int read_errno;
	unsigned last_syntax_error;
	/* the current section */
	enum sect sect;
	int global;	 /* ODRSD, POLICY or CLUSTER when S_GLOBAL */
	size_t vm;	 /* index in cfg->vms when S_VM and not scratch */
	bool scratch;	 /* a duplicate or misnamed section: checked, dropped */
	char label[256]; /* "[vm web1]", for messages */
	uint64_t seen;
	unsigned keyline[64];
	/* what the whole-config checks need */
	unsigned global_line[NGLOBAL];
	unsigned global_keyline[NGLOBAL][64];
	struct vm_extra *vmx; /* parallel to cfg->vms */
	size_t vmcap;
	struct wk_names *vm_names; /* [vm] names -> their index in cfg->vms, plus 1 */
	struct wk_config scratch_cfg;
	struct wk_vmconf scratch_vm;
};

static void __attribute__((format(printf, 3, 4)))
report(struct loader *l, unsigned line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->nproblems++;
	if (l->diag != NULL)
		l->diag(l->ctx, l->file, line, msg);
}

/* A value as it can be shown inside quotes: control bytes become '?'. */
static void quote(char *out, size_t outsz, const char *v, size_t n)
{
	size_t i;

	if (n > outsz - 1)
		n = outsz - 1;
	for (i = 0; i < n; i++)
		out[i] = isprint((unsigned char)v[i]) ? v[i] : '?';
	out[n] = '\0';
}

static void explain(char *why, size_t whysz, const char *v, size_t n, const char *expected)
{
	char q[256];

	quote(q, sizeof(q), v, n);
	snprintf(why, whysz, "\"%s\": %s", q, expected);
}

static char *dup_str(struct loader *l, const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		l->oom = true;
	return d;
}

/* The next space-separated word of *p: its start, its length in *n. */
static const char *next_word(const char **p, size_t *n)
{
	const char *w = *p + strspn(*p, " \t");

	*n = strcspn(w, " \t");
	*p = w + *n;
	return *n ? w : NULL;
}

static size_t count_words(const char *v)
{
	size_t n, count = 0;

	while (next_word(&v, &n) != NULL)
		count++;
	return count;
}

static int parse_uint(const char *v, uint64_t *out)
{
	uint64_t n = 0;

	if (*v == '\0')
		return -EINVAL;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	*out = n;
	return 0;
}

/* The shortest exact spelling of a duration, for messages. */
static void fmt_duration(char *out, size_t outsz, uint64_t ms)
{
	if (ms != 0 && ms % HOUR == 0)
		snprintf(out, outsz, "%lluh", (unsigned long long)(ms / HOUR));
	else if (ms != 0 && ms % MIN == 0)
		snprintf(out, outsz, "%llum", (unsigned long long)(ms / MIN));
	else if (ms != 0 && ms % SEC == 0)
		snprintf(out, outsz, "%llus", (unsigned long long)(ms / SEC));
	else
		snprintf(out, outsz, "%llums", (unsigned long long)ms);
}

static bool unicast_ip(uint32_t ip)
{
	uint8_t first = (uint8_t)(ntohl(ip) >> 24);

	/* Not "this network" (0/8), loopback (127/8), multicast or reserved (224/3). */
	return first != 0 && first != 127 && first < 224;
}

static int set_words(struct loader *l, const char *v, char ***out, size_t *nout)
{
	size_t n, i = 0, count = count_words(v);
	const char *w;
	char **words = NULL;

	if (count > 0 && (words = calloc(count, sizeof(*words))) == NULL)
		goto oom;
	while ((w = next_word(&v, &n)) != NULL)
		if ((words[i++] = strndup(w, n)) == NULL)
			goto oom;
	*out = words;
	*nout = count;
	return 0;
oom:
	while (i > 0)
		free(words[--i]);
	free(words);
	l->oom = true;
	return -ENOMEM;
}

/* empty: the word for no list ("any" for wake_ports, "none" for wake_udp_ports). */
static int set_ports(struct loader *l, const char *v, const char *empty, uint16_t **out, size_t *nout,
		     char *why, size_t whysz)
{
	char expected[96];
	size_t n, i = 0, count = count_words(v);
	const char *w, *p = v;
	uint16_t *ports;

	snprintf(expected, sizeof(expected),
		 "expected \"%s\" or port numbers from 1 to 65535, separated by spaces", empty);
	if (count == 0) {
		explain(why, whysz, v, strlen(v), expected);
		return -EINVAL;
	}
	if (strcmp(v, empty) == 0) {
		*out = NULL;
		*nout = 0;
		return 0;
	}
	if ((ports = calloc(count, sizeof(*ports))) == NULL) {
		l->oom = true;
		return -ENOMEM;
	}
	while ((w = next_word(&p, &n)) != NULL) {
		char word[8];
		uint64_t port;

		if (n >= sizeof(word))
			goto bad;
		memcpy(word, w, n);
		word[n] = '\0';
		if (parse_uint(word, &port) < 0 || port < 1 || port > 65535)
			goto bad;
		ports[i++] = (uint16_t)port;
		continue;
	bad:
		explain(why, whysz, w, n, expected);
		free(ports);
		return -EINVAL;
	}
	*out = ports;
	*nout = count;
	return 0;
}

static int set_ips(struct loader *l, const char *v, struct wk_addr **out, size_t *nout, char *why,
		   size_t whysz)
{
	size_t n, i = 0, count = count_words(v);
	const char *w;
	struct wk_addr *ips = NULL;
	uint32_t ip4;

	if (count > 0 && (ips = calloc(count, sizeof(*ips))) == NULL) {
		l->oom = true;
		return -ENOMEM;
	}
	while ((w = next_word(&v, &n)) != NULL) {
		char word[INET6_ADDRSTRLEN];

		if (n < sizeof(word)) {
			memcpy(word, w, n);
			word[n] = '\0';
		}
		if (n < sizeof(word) && wk_parse_ipv4(word, &ip4) == 0)
			ips[i++] = wk_addr_v4(ip4);
		else if (n >= sizeof(word) || inet_pton(AF_INET6, word, ips[i++].b) != 1) {
			explain(why, whysz, w, n,
				"expected IPv4 or IPv6 addresses like 198.18.0.1 or fd00::1, "
				"separated by spaces");
			free(ips);
			return -EINVAL;
		}
	}
	*out = ips;
	*nout = count;
	return 0;
}

static int set_wake_on(const char *v, unsigned *out, char *why, size_t whysz)
{
	unsigned flags = 0;
	const char *w, *p = v;
	size_t n;

	/* Empty or "none": only odrsctl wake wakes the VM. */
	if (strcmp(v, "none") == 0) {
		*out = 0;
		return 0;
	}
	while ((w = next_word(&p, &n)) != NULL) {
		if (n == 3 && strncmp(w, "arp", 3) == 0) {
			flags |= WK_WAKE_ARP;
		} else if (n == 3 && strncmp(w, "syn", 3) == 0) {
			flags |= WK_WAKE_SYN;
		} else if (n == 11 && strncmp(w, "established", 11) == 0) {
			flags |= WK_WAKE_ESTABLISHED;
		} else {
			explain(why, whysz, w, n,
				"expected \"arp syn established\", arp, syn, established or none");
			return -EINVAL;
		}
	}
	*out = flags;
	return 0;
}

/* Free what a list or string field holds, before it is set again. */
static void clear_field(const struct key *k, char *base)
{
	switch (k->kind) {
	case K_STR: {
		char **s = (char **)(base + k->off);

		free(*s);
		*s = NULL;
		break;
	}
	case K_WORDS: {
		char ***words = (char ***)(base + k->off);
		size_t *n = (size_t *)(base + k->off_n);

		while (*n > 0)
			free((*words)[--*n]);
		free(*words);
		*words = NULL;
		break;
	}
	case K_PORTS:
	case K_IPS: {
		void **arr = (void **)(base + k->off);

		free(*arr);
		*arr = NULL;
		*(size_t *)(base + k->off_n) = 0;
		break;
	}
	default:
		break;
	}
}

/*
 * Parse v into the field k describes inside base. 0, or -EINVAL with why
 * set to `"VALUE": expected ...`, or -ENOMEM (l->oom set).
 */
static int set_value(struct loader *l, const struct key *k, char *base, const char *v, char *why,
		     size_t whysz)
{
	void *field = base + k->off;
	char range[128], lo[32], hi[32];
	uint64_t u;
	size_t i;

	switch (k->kind) {
	case K_STR: {
		const char *expected, *c;
		char *s;

		for (c = v; *c && !iscntrl((unsigned char)*c); c++)
			;
		expected = v[0] == '\0' ? "expected a value"
			   : *c		? "expected printable characters only"
					: k->check(v);

		if (expected != NULL) {
			explain(why, whysz, v, strlen(v), expected);
			return -EINVAL;
		}
		if ((s = dup_str(l, v)) == NULL)
			return -ENOMEM;
		clear_field(k, base);
		*(char **)field = s;
		return 0;
	}
	case K_UINT:
		if (parse_uint(v, &u) < 0 || u < k->min || u > k->max) {
			snprintf(range, sizeof(range), "expected a whole number from %llu to %llu",
				 (unsigned long long)k->min, (unsigned long long)k->max);
			explain(why, whysz, v, strlen(v), range);
			return -EINVAL;
		}
		*(unsigned *)field = (unsigned)u;
		return 0;
	case K_DUR:
		if (wk_parse_duration(v, &u) < 0) {
			explain(why, whysz, v, strlen(v), "expected a duration like 500ms, 30s, 2m, 1h");
			return -EINVAL;
		}
		if ((u < k->min || u > k->max) && !(u == 0 && k->zero_ok)) {
			fmt_duration(lo, sizeof(lo), k->min);
			fmt_duration(hi, sizeof(hi), k->max);
			snprintf(range, sizeof(range), "expected %sa duration from %s to %s",
				 k->zero_ok ? "0 (never) or " : "", lo, hi);
			explain(why, whysz, v, strlen(v), range);
			return -EINVAL;
		}
		*(uint64_t *)field = u;
		return 0;
	case K_SIZE:
		if (wk_parse_size(v, &u) < 0 || ((u < k->min || u > k->max) && !(u == 0 && k->zero_ok))) {
			snprintf(range, sizeof(range), "expected %sa size from %lluM to %lluG",
				 k->zero_ok ? "0 (automatic) or " : "", (unsigned long long)(k->min >> 20),
				 (unsigned long long)(k->max >> 30));
			explain(why, whysz, v, strlen(v), range);
			return -EINVAL;
		}
		*(uint64_t *)field = u;
		return 0;
	case K_DOUBLE: {
		/* Plain decimals only: strtod alone would take "nan", "inf" and hex. */
		size_t digits = strspn(v, "0123456789");
		double d = 0;

		if (v[digits] == '.')
			digits += 1 + strspn(v + digits + 1, "0123456789");
		if (digits == 0 || v[digits] != '\0' || strcmp(v, ".") == 0 ||
		    (d = strtod(v, NULL)) < (double)k->min || d > (double)k->max) {
			snprintf(range, sizeof(range), "expected a number from %llu to %llu",
				 (unsigned long long)k->min, (unsigned long long)k->max);
			explain(why, whysz, v, strlen(v), range);
			return -EINVAL;
		}
		*(double *)field = d;
		return 0;
	}
	case K_BOOL:
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
			explain(why, whysz, v, strlen(v), "expected yes or no");
			return -EINVAL;
		}
		*(bool *)field = strcmp(v, "yes") == 0;
		return 0;
	case K_ENUM: {
		char expected[128] = "expected ";
		int value;

		for (i = 0; k->words[i] != NULL; i++) {
			if (strcmp(v, k->words[i]) == 0) {
				value = (int)i;
				memcpy(field, &value, sizeof(value));
				return 0;
			}
			strcat(expected, i == 0 ? "" : k->words[i + 1] == NULL ? " or " : ", ");
			strcat(expected, k->words[i]);
		}
		explain(why, whysz, v, strlen(v), expected);
		return -EINVAL;
	}
	case K_WORDS: {
		char **words;
		size_t n;

		if (set_words(l, v, &words, &n) < 0)
			return -ENOMEM;
		clear_field(k, base);
		*(char ***)field = words;
		*(size_t *)(base + k->off_n) = n;
		return 0;
	}
	case K_WAKE_ON:
		return set_wake_on(v, (unsigned *)field, why, whysz);
	case K_PORTS: {
		uint16_t *ports;
		size_t n;
		int rc = set_ports(l, v, k->words ? k->words[0] : "any", &ports, &n, why, whysz);

		if (rc < 0)
			return rc;
		clear_field(k, base);
		*(uint16_t **)field = ports;
		*(size_t *)(base + k->off_n) = n;
		return 0;
	}
	case K_IPS: {
		struct wk_addr *ips;
		size_t n;
		int rc = set_ips(l, v, &ips, &n, why, whysz);

		if (rc < 0)
			return rc;
		clear_field(k, base);
		*(struct wk_addr **)field = ips;
		*(size_t *)(base + k->off_n) = n;
		return 0;
	}
	case K_IP: {
		uint32_t ip;

		if (wk_parse_ipv4(v, &ip) < 0 || !unicast_ip(ip)) {
			explain(why, whysz, v, strlen(v), "expected a unicast IPv4 address like 198.18.0.10");
			return -EINVAL;
		}
		*(uint32_t *)field = ip;
		return 0;
	}
	case K_MAC: {
		uint8_t mac[6];

		if (wk_parse_mac(v, mac) < 0 || (mac[0] & 1) ||
		    (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0) {
			explain(why, whysz, v, strlen(v),
				"expected a unicast MAC address like 52:54:00:12:00:10");
			return -EINVAL;
		}
		memcpy(field, mac, sizeof(mac));
		*(bool *)(base + k->off_n) = true;
		return 0;
	}
	case K_IP6: {
		uint8_t a[16];

		/* Unicast: not unspecified (::), not loopback (::1), not multicast (ff00::/8). */
		if (inet_pton(AF_INET6, v, a) != 1 || a[0] == 0xff || !memcmp(a, (uint8_t[16]){ 0 }, 15)) {
			explain(why, whysz, v, strlen(v), "expected a unicast IPv6 address like fd00::10");
			return -EINVAL;
		}
		memcpy(field, a, sizeof(a));
		*(bool *)(base + k->off_n) = true;
		return 0;
	}
	}
	return -EINVAL;
}

/* Copy one policy key's value from src to an empty dst (lists deeply). */
static void copy_field(struct loader *l, const struct key *k, char *dst, const char *src)
{
	size_t n, i;

	switch (k->kind) {
	case K_WORDS: {
		char **from = *(char ***)(src + k->off), **to;

		n = *(size_t *)(src + k->off_n);
		if (n == 0)
			return;
		if ((to = calloc(n, sizeof(*to))) == NULL) {
			l->oom = true;
			return;
		}
		*(char ***)(dst + k->off) = to;
		for (i = 0; i < n; i++) {
			if ((to[i] = dup_str(l, from[i])) == NULL)
				return;
			*(size_t *)(dst + k->off_n) = i + 1;
		}
		return;
	}
	case K_PORTS:
	case K_IPS: {
		size_t elem = k->kind == K_PORTS ? sizeof(uint16_t) : sizeof(struct wk_addr);
		void *to;

		n = *(size_t *)(src + k->off_n);
		if (n == 0)
			return;
		if ((to = malloc(n * elem)) == NULL) {
			l->oom = true;
			return;
		}
		memcpy(to, *(void *const *)(src + k->off), n * elem);
		*(void **)(dst + k->off) = to;
		*(size_t *)(dst + k->off_n) = n;
		return;
	}
	case K_UINT:
	case K_WAKE_ON:
		n = sizeof(unsigned);
		break;
	case K_DUR:
	case K_SIZE:
		n = sizeof(uint64_t);
		break;
	case K_DOUBLE:
		n = sizeof(double);
		break;
	case K_BOOL:
		n = sizeof(bool);
		break;
	case K_ENUM:
		n = sizeof(int);
		break;
	default:
		return; /* no policy key is a string, an address or a MAC */
	}
	memcpy(dst + k->off, src + k->off, n);
}

static void policy_clear(struct wk_policy *p)
{
	size_t i;

	for (i = 0; i < NKEYS(policy_keys); i++)
		clear_field(&policy_keys[i], (char *)p);
}

void wk_vmconf_clear(struct wk_vmconf *vm)
{
	free(vm->name);
	policy_clear(&vm->policy);
	memset(vm, 0, sizeof(*vm));
}

static void config_clear(struct wk_config *cfg)
{
	size_t i;

	for (i = 0; i < NKEYS(odrsd_keys); i++)
		clear_field(&odrsd_keys[i], (char *)cfg);
	for (i = 0; i < NKEYS(cluster_keys); i++)
		clear_field(&cluster_keys[i], (char *)cfg);
	policy_clear(&cfg->policy);
	for (i = 0; i < cfg->nvms; i++)
		wk_vmconf_clear(&cfg->vms[i]);
	free(cfg->vms);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

void wk_config_free(struct wk_config *cfg)
{
	if (cfg == NULL)
		return;
	config_clear(cfg);
	free(cfg);
}

static void set_defaults(struct loader *l, struct wk_config *cfg)
{
	char host[HOST_NAME_MAX + 1] = "";

	if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
		strcpy(host, "localhost");
	cfg->node = dup_str(l, host);
	cfg->interface = dup_str(l, "br0");
	cfg->snapshot_dir = dup_str(l, "/srv/odrs/snap");
	cfg->libvirt_uri = dup_str(l, "qemu:///system");
	cfg->control_socket = dup_str(l, "/run/odrs/odrsd.sock");
	cfg->event_log = dup_str(l, "/var/log/odrs/events.jsonl");
	cfg->state_dir = dup_str(l, "/var/lib/odrs");
	cfg->wake_concurrency = 4;
	cfg->hibernate_concurrency = 2;
	cfg->syn_hold_per_vm = 8;
	cfg->syn_hold_total = 4096;
	cfg->wake_timeout_ms = 60 * SEC;
	cfg->check_interval_ms = 10 * SEC;
	cfg->probe_timeout_ms = 5 * SEC;
	cfg->policy.idle_timeout_ms = 2 * MIN;
	cfg->policy.load_threshold = 0.5;
	cfg->policy.probe = WK_PROBE_AGENT;
	cfg->policy.wake_on = WK_WAKE_ARP | WK_WAKE_SYN | WK_WAKE_ESTABLISHED;
	cfg->policy.replay_syn = true;
	cfg->policy.dry_run = false;
	cfg->policy.shrink = WK_SHRINK_NONE;
	cfg->policy.sleep = WK_SLEEP_HIBERNATE;
	cfg->policy.hibernate_after_ms = HOUR;
	cfg->wakes_per_minute = 60;
	cfg->backend = WK_BACKEND_NONE;
	cfg->accept_term_ms = 60 * SEC;
	cfg->lease_ttl_ms = 5 * SEC;
	cfg->retrain_rate = 1000;
	cfg->retrain_delay_ms = 5 * SEC;
	cfg->retrain_refresh_ms = 60 * SEC;
}

static bool valid_vm_name(const char *name)
{
	const char *p;

	for (p = name; *p; p++)
		if (!isgraph((unsigned char)*p) || *p == '/')
			return false;
	return p != name && p - name <= WK_VM_NAME_MAX;
}

static void add_vm(struct loader *l, const char *name, unsigned line)
{
	struct wk_config *cfg = l->cfg;
	struct wk_vmconf *vm;

	if (cfg->nvms == l->vmcap) {
		size_t cap = l->vmcap ? l->vmcap * 2 : 16;
		struct wk_vmconf *vms = realloc(cfg->vms, cap * sizeof(*vms));
		struct vm_extra *vmx;

		if (vms == NULL) {
			l->oom = true;
			return;
		}
		cfg->vms = vms;
		if ((vmx = realloc(l->vmx, cap * sizeof(*vmx))) == NULL) {
			l->oom = true;
			return;
		}
		l->vmx = vmx;
		l->vmcap = cap;
	}
	vm = &cfg->vms[cfg->nvms];
	memset(vm, 0, sizeof(*vm));
	memset(&l->vmx[cfg->nvms], 0, sizeof(l->vmx[0]));
	if ((vm->name = dup_str(l, name)) == NULL)
		return;
	vm->line = line;
	l->vm = cfg->nvms++;
	l->sect = S_VM;
	l->scratch = false;
}

/* A [vm NAME] section that cannot be kept: its keys are checked, then dropped. */
static void scratch_vm(struct loader *l)
{
	wk_vmconf_clear(&l->scratch_vm);
	l->sect = S_VM;
	l->scratch = true;
}

static void enter_section(struct loader *l, const char *name, unsigned line)
{
	uintptr_t first;
	int g;

	l->seen = 0;
	memset(l->keyline, 0, sizeof(l->keyline));
	quote(l->label + 1, sizeof(l->label) - 2, name, strlen(name));
	l->label[0] = '[';
	strcat(l->label, "]");

	for (g = 0; g < NGLOBAL; g++) {
		if (strcmp(name, global_names[g]) != 0)
			continue;
		l->sect = S_GLOBAL;
		l->global = g;
		l->scratch = l->global_line[g] != 0;
		if (l->scratch)
			report(l, line, "duplicate section %s (first at line %u)", l->label,
			       l->global_line[g]);
		else
			l->global_line[g] = line;
		return;
	}
	if (strncmp(name, "vm", 2) == 0 && (name[2] == '\0' || isspace((unsigned char)name[2]))) {
		const char *vm = name + 2 + strspn(name + 2, " \t");

		if (!valid_vm_name(vm)) {
			report(l, line,
			       "%s: expected [vm NAME], NAME the libvirt domain "
			       "(no spaces or '/', at most %d characters)",
			       l->label, WK_VM_NAME_MAX);
			scratch_vm(l);
			return;
		}
		snprintf(l->label, sizeof(l->label), "[vm %s]", vm);
		if ((first = (uintptr_t)wk_names_find(l->vm_names, vm)) != 0) {
			report(l, line, "duplicate section %s (first at line %u)", l->label,
			       l->cfg->vms[first - 1].line);
			scratch_vm(l);
			return;
		}
		add_vm(l, vm, line);
		if (!l->oom &&
		    wk_names_add(l->vm_names, l->cfg->vms[l->vm].name, (void *)(uintptr_t)(l->vm + 1)) < 0)
			l->oom = true;
		if (l->oom)
			scratch_vm(l);
		return;
	}
	report(l, line, "unknown section %s: expected [odrsd], [policy], [cluster] or [vm NAME]", l->label);
	l->sect = S_UNKNOWN;
}

static void syntax_error(struct loader *l, const char *expected)
{
	l->last_syntax_error = l->lineno;
	report(l, l->lineno, "syntax error: %s", expected);
}

/* inih's line reader: one file line per call, cleaned, counted, checked. */
static char *read_line(char *str, int num, void *stream)
{
	struct loader *l = stream;
	char *s, *p, *end;
	ssize_t got;
	size_t n;

	errno = 0;
	got = getline(&l->buf, &l->bufsz, l->fp);
	if (got < 0) {
		if (ferror(l->fp))
			l->read_errno = errno ? errno : EIO;
		return NULL;
	}
	l->lineno++;
	str[0] = '\0';
	s = l->buf;
	if (memchr(s, '\0', (size_t)got) != NULL) {
		syntax_error(l, "NUL byte in line");
		return str;
	}
	if (l->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	s += strspn(s, " \t");
	/* A comment starts a line or follows a space: "a;b" and "a#b" are values. */
	for (p = s; *p; p++) {
		if ((*p == ';' || *p == '#') && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	for (end = s + strlen(s); end > s && isspace((unsigned char)end[-1]); end--)
		;
	*end = '\0';
	if (*s == '\0')
		return str;
	if (*s == '[') {
		if (end[-1] != ']' || end - s < 2) {
			syntax_error(l, "expected [SECTION]");
			return str;
		}
		end[-1] = '\0';
		s++;
		s += strspn(s, " \t");
		for (end = s + strlen(s); end > s && isspace((unsigned char)end[-1]); end--)
			;
		*end = '\0';
		enter_section(l, s, l->lineno);
		/* Our own section state is used; inih's truncates long names. */
		strcpy(str, "[]");
		return str;
	}
	n = strcspn(s, "=:");
	if (s[n] == '\0' || n == 0) {
		syntax_error(l, "expected KEY = VALUE");
		return str;
	}
	n = strlen(s);
	if (n > (size_t)num - 1) {
		report(l, l->lineno,
		       "line too long: at most %d characters, leaving out "
		       "indentation and comments",
		       num - 1);
		return str;
	}
	memcpy(str, s, n + 1);
	return str;
}

static const struct key *find_key(const struct key *keys, size_t nkeys, const char *name)
{
	size_t i;

	for (i = 0; i < nkeys; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* inih's handler: one KEY = VALUE of the line the reader just returned. */
static int on_pair(void *user, const char *section, const char *name, const char *value)
{
	struct loader *l = user;
	unsigned line = l->lineno;
	struct wk_config *cfg = l->scratch ? &l->scratch_cfg : l->cfg;
	struct wk_vmconf *vm = NULL;
	const struct key *k = NULL;
	char *base = NULL;
	char why[512], q[64];
	unsigned bit = 0;

	quote(q, sizeof(q), name, strlen(name));
	switch (l->sect) {
	case S_NONE:
		report(l, line, "%s: key outside of any section", q);
		return 1;
	case S_UNKNOWN:
		return 1; /* the section was reported */
	case S_GLOBAL:
		k = find_key(global_keys[l->global], global_nkeys[l->global], name);
		base = l->global == POLICY ? (char *)&cfg->policy : (char *)cfg;
		if (k != NULL)
			bit = (unsigned)(k - global_keys[l->global]);
		break;
	case S_VM:
		vm = l->scratch ? &l->scratch_vm : &l->cfg->vms[l->vm];
		if ((k = find_key(vm_keys, NKEYS(vm_keys), name)) != NULL) {
			base = (char *)vm;
			bit = (unsigned)(k - vm_keys);
		} else if ((k = find_key(policy_keys, NKEYS(policy_keys), name)) != NULL) {
			base = (char *)&vm->policy;
			bit = VM_POLICY_BIT + (unsigned)(k - policy_keys);
		}
		break;
	}
	if (k == NULL) {
		report(l, line, "unknown key \"%s\" in %s", q, l->label);
		return 1;
	}
	if (l->seen & 1ULL << bit) {
		report(l, line, "duplicate key \"%s\" in %s (first at line %u)", k->name, l->label,
		       l->keyline[bit]);
		return 1;
	}
	l->seen |= 1ULL << bit;
	l->keyline[bit] = line;
	/* A bad ip is reported as bad, not also as missing: its line is kept. */
	if (l->sect == S_VM && !l->scratch && bit <= VM_IP6)
		l->vmx[l->vm].keyline[bit] = line;
	if (set_value(l, k, base, value, why, sizeof(why)) == -EINVAL) {
		report(l, line, "%s: %s", k->name, why);
		return 1;
	}
	if (k->off_line)
		*(unsigned *)(base + k->off_line) = line;
	if (l->scratch)
		return 1;
	if (l->sect == S_GLOBAL)
		l->global_keyline[l->global][bit] = line;
	else
		l->vmx[l->vm].seen |= 1ULL << bit;
	return 1;
}

/* The line that set a global key, 0 if it kept its default. */
static unsigned keyline(const struct loader *l, int g, const char *name)
{
	const struct key *k = find_key(global_keys[g], global_nkeys[g], name);

	return l->global_keyline[g][k - global_keys[g]];
}

/* Every VM's ip present, and no IP or MAC used twice. */
static void check_vms(struct loader *l)
{
	struct wk_config *cfg = l->cfg;
	struct wk_vmtable *ips = wk_vmtable_new(cfg->nvms), *macs = wk_vmtable_new(cfg->nvms);
	size_t i;

	if (ips == NULL || macs == NULL) {
		l->oom = true;
		goto out;
	}
	for (i = 0; i < cfg->nvms; i++) {
		struct wk_vmconf *vm = &cfg->vms[i], *prev;
		struct vm_extra *x = &l->vmx[i];
		bool has_ip = x->seen & 1ULL << VM_IP; /* else missing or bad */

		if (x->keyline[VM_IP] == 0) {
			report(l, vm->line, "[vm %s]: missing ip = ADDRESS (required)", vm->name);
		} else if (has_ip && (prev = wk_vmtable_by_ip(ips, vm->ip)) != NULL) {
			char ip[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, &vm->ip, ip, sizeof(ip));
			report(l, x->keyline[VM_IP], "ip %s is already used by [vm %s] (line %u)", ip,
			       prev->name, prev->line);
		} else if (has_ip && wk_vmtable_add(ips, vm->ip, NULL, vm) < 0) {
			l->oom = true;
		}
		if (vm->has_ip6 && (prev = wk_vmtable_by_ip6(ips, vm->ip6)) != NULL) {
			char ip6[INET6_ADDRSTRLEN];

			inet_ntop(AF_INET6, vm->ip6, ip6, sizeof(ip6));
			report(l, x->keyline[VM_IP6], "ip6 %s is already used by [vm %s] (line %u)", ip6,
			       prev->name, prev->line);
		} else if (vm->has_ip6 && wk_vmtable_add_ip6(ips, vm->ip6, vm) < 0) {
			l->oom = true;
		}
		if (!vm->has_mac)
			continue;
		/* This table indexes MACs only: the VM's position is a unique stand-in IP. */
		if ((prev = wk_vmtable_by_mac(macs, vm->mac)) != NULL) {
			report(l, x->keyline[VM_MAC],
			       "mac %02x:%02x:%02x:%02x:%02x:%02x is already "
			       "used by [vm %s] (line %u)",
			       vm->mac[0], vm->mac[1], vm->mac[2], vm->mac[3], vm->mac[4], vm->mac[5],
			       prev->name, prev->line);
		} else if (wk_vmtable_add(macs, (uint32_t)i, vm->mac, vm) < 0) {
			l->oom = true;
		}
	}
out:
	wk_vmtable_free(ips);
	wk_vmtable_free(macs);
}

static void check_config(struct loader *l)
{
	struct wk_config *cfg = l->cfg;
	char a[32], b[32];

	check_vms(l);
	if (cfg->backend == WK_BACKEND_ETCD && cfg->etcd == NULL)
		report(l, keyline(l, CLUSTER, "backend"),
		       "backend = etcd needs etcd = ENDPOINTS in [cluster]");
	if (cfg->accept_term_ms <= cfg->lease_ttl_ms) {
		unsigned line = keyline(l, CLUSTER, "accept_term");

		fmt_duration(a, sizeof(a), cfg->accept_term_ms);
		fmt_duration(b, sizeof(b), cfg->lease_ttl_ms);
		report(l, line ? line : keyline(l, CLUSTER, "lease_ttl"),
		       "accept_term (%s) must be longer than lease_ttl (%s)", a, b);
	}
	if (cfg->syn_hold_per_vm > cfg->syn_hold_total) {
		unsigned line = keyline(l, ODRSD, "syn_hold_per_vm");

		report(l, line ? line : keyline(l, ODRSD, "syn_hold_total"),
		       "syn_hold_per_vm (%u) must not exceed syn_hold_total (%u)", cfg->syn_hold_per_vm,
		       cfg->syn_hold_total);
	}
}

/* A [vm] section starts from [policy], wherever [policy] is in the file. */
static void inherit_policy(struct loader *l)
{
	size_t i, k;

	for (i = 0; i < l->cfg->nvms; i++)
		for (k = 0; k < NKEYS(policy_keys); k++)
			if (!(l->vmx[i].seen & 1ULL << (VM_POLICY_BIT + k))) {
				const struct key *key = &policy_keys[k];
				char *dst = (char *)&l->cfg->vms[i].policy;
				const char *src = (const char *)&l->cfg->policy;

				copy_field(l, key, dst, src);
				if (key->off_line)
					*(unsigned *)(dst + key->off_line) =
						*(const unsigned *)(src + key->off_line);
			}
}

int wk_config_load(const char *path, wk_diag_fn diag, void *ctx, struct wk_config **out)
{
	struct loader l = { .file = path, .diag = diag, .ctx = ctx };
	int rc, syntax;

	*out = NULL;
	if ((l.fp = fopen(path, "re")) == NULL) {
		rc = -errno;
		report(&l, 0, "%s", strerror(-rc));
		return rc;
	}
	if ((l.cfg = calloc(1, sizeof(*l.cfg))) == NULL) {
		fclose(l.fp);
		return -ENOMEM;
	}
	l.cfg->path = dup_str(&l, path);
	if (!(l.vm_names = wk_names_new(0)))
		l.oom = true;
	set_defaults(&l, l.cfg);
	syntax = ini_parse_stream(read_line, &l, on_pair, &l);
	if (l.read_errno != 0) {
		rc = -l.read_errno;
		report(&l, 0, "%s", strerror(l.read_errno));
		goto out;
	}
	/* The reader reports malformed lines itself; this is only a safety net. */
	if (syntax > 0 && (unsigned)syntax != l.last_syntax_error)
		report(&l, (unsigned)syntax, "syntax error");
	if (!l.oom) {
		check_config(&l);
		inherit_policy(&l);
	}
	if (l.oom) {
		report(&l, 0, "%s", strerror(ENOMEM));
		rc = -ENOMEM;
	} else {
		rc = l.nproblems > 0 || syntax != 0 ? -EINVAL : 0;
	}
out:
	fclose(l.fp);
	free(l.buf);
	free(l.vmx);
	wk_names_free(l.vm_names);
	config_clear(&l.scratch_cfg);
	wk_vmconf_clear(&l.scratch_vm);
	if (rc < 0) {
		wk_config_free(l.cfg);
		return rc;
	}
	*out = l.cfg;
	return 0;
}

int wk_diag_format(char *buf, size_t len, const char *file, unsigned line, const char *msg)
{
	return line ? snprintf(buf, len, "%s:%u: %s", file, line, msg)
		    : snprintf(buf, len, "%s: %s", file, msg);
}

const struct wk_vmconf *wk_config_vm(const struct wk_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nvms; i++)
		if (strcmp(cfg->vms[i].name, name) == 0)
			return &cfg->vms[i];
	return NULL;
}

int wk_vmconf_parse(const struct wk_config *cfg, const char *name, const char *const *keys,
		    const char *const *values, size_t n, wk_diag_fn diag, void *ctx, struct wk_vmconf *out)
{
	/* A file of one [vm] section, with cfg's [policy]: copied from by inherit_policy, never freed. */
	struct wk_config one = { .policy = cfg->policy, .vms = out, .nvms = 1 };
	struct vm_extra x = { 0 };
	struct loader l = {
		.cfg = &one,
		.file = name,
		.diag = diag,
		.ctx = ctx,
		.sect = S_VM,
		.vmx = &x,
		.vmcap = 1,
	};
	size_t i;

	memset(out, 0, sizeof(*out));
	snprintf(l.label, sizeof(l.label), "its odrs metadata");
	if (!valid_vm_name(name)) {
		report(&l, 0, "expected a domain name without spaces or '/', of at most %d characters",
		       WK_VM_NAME_MAX);
		return -EINVAL;
	}
	if ((out->name = dup_str(&l, name)) == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		on_pair(&l, NULL, keys[i], values[i]);
	/* Seen: a bad ip was reported as bad. */
	if (!(l.seen & 1ULL << VM_IP))
		report(&l, 0, "missing ip=\"ADDRESS\" (required)");
	if (!l.oom && l.nproblems == 0)
		inherit_policy(&l);
	if (l.oom || l.nproblems > 0) {
		wk_vmconf_clear(out);
		return l.oom ? -ENOMEM : -EINVAL;
	}
	return 0;
}
