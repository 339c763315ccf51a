/* The capture filters' text and its fit to the kernel: see filter.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "filter.h"

void filter_init(struct filter *f, const char *head)
{
	f->head = head;
	f->nclauses = 0;
}

struct filter_clause *filter_clause(struct filter *f, const char *what, const char *dir,
				    enum filter_addr addr)
{
	struct filter_clause *c;

	if (f->nclauses == FILTER_CLAUSES)
		return NULL;
	c = &f->clause[f->nclauses++];
	c->what = what;
	c->dir = dir;
	c->addr = addr;
	c->n = 0;
	c->fit = FILTER_HOSTS;
	c->nnets = 0;
	c->last_net = 0;
	return c;
}

/* The bits a clause's networks are made of. */
static unsigned addr_bits(const struct filter_clause *c)
{
	return c->addr == FILTER_IP6 ? 128 : 32;
}

/* a's first len bits, the rest zero. */
static void net_set(struct filter_net *net, const uint8_t *a, unsigned len)
{
	memset(net->addr, 0, sizeof(net->addr));
	memcpy(net->addr, a, (len + 7) / 8);
	if (len % 8)
		net->addr[len / 8] &= (uint8_t)(0xff << (8 - len % 8));
	net->len = len;
}

static bool net_has(const struct filter_net *net, const uint8_t *a)
{
	unsigned full = net->len / 8, rest = net->len % 8;

	return !memcmp(net->addr, a, full) &&
	       (!rest || !((net->addr[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest))));
}

/* The bits a and b share from the first, at most max. */
static unsigned common_bits(const uint8_t *a, const uint8_t *b, unsigned max)
{
	unsigned len = 0;

	for (unsigned i = 0; len < max; i++, len += 8)
		if (a[i] != b[i]) {
			len += (unsigned)__builtin_clz((unsigned)(a[i] ^ b[i])) - 24;
			break;
		}
	return len < max ? len : max;
}

/*
 * The share of a net of len bits that a and b fill (a, b inside it, apart):
 * of two merges to the same length, the one that takes in fewer addresses
 * no VM has.
 */
static double filled(unsigned len, const struct filter_net *a, const struct filter_net *b)
{
	return ldexp(1, (int)len - (int)a->len) + ldexp(1, (int)len - (int)b->len);
}

/*
 * Cover a as well: nothing when a network has it already, else a network
 * of its own; one too many, and the two whose union is the narrowest (and
 * then the fullest) merge, the union taking in any other it covers.
 * Greedy, and the same addresses in the same order give the same networks
 * (the text is a key).
 */
static void nets_add(struct filter_clause *c, const uint8_t *a)
{
	unsigned bits = addr_bits(c), best = 0;
	size_t bi = 0, kept = 0;
	double best_filled = 0;
	struct filter_net merged;

	/* VMs come in runs of neighbours: the network that took the last one first. */
	if (c->last_net < c->nnets && net_has(&c->net[c->last_net], a))
		return;
	for (size_t i = 0; i < c->nnets; i++)
		if (net_has(&c->net[i], a)) {
			c->last_net = i;
			return;
		}
	net_set(&c->net[c->nnets++], a, bits);
	if (c->nnets <= FILTER_NETS_MAX)
		return;
	for (size_t i = 0; i < c->nnets; i++)
		for (size_t j = i + 1; j < c->nnets; j++) {
			unsigned len = common_bits(c->net[i].addr, c->net[j].addr, bits);
			len = len < c->net[i].len ? len : c->net[i].len;
			len = len < c->net[j].len ? len : c->net[j].len;
			if ((i == 0 && j == 1) || len > best ||
			    (len == best && filled(len, &c->net[i], &c->net[j]) > best_filled)) {
				best = len, bi = i;
				best_filled = filled(len, &c->net[i], &c->net[j]);
			}
		}
	net_set(&merged, c->net[bi].addr, best);
	for (size_t k = 0; k < c->nnets; k++)
		if (k == bi)
			c->net[kept++] = merged;
		else if (c->net[k].len < merged.len || !net_has(&merged, c->net[k].addr))
			c->net[kept++] = c->net[k];
	c->nnets = kept;
}

void filter_add(struct filter_clause *c, uint32_t ip, const uint8_t *ip6)
{
	const uint8_t *a = c->addr == FILTER_IP ? (const uint8_t *)&ip : ip6;

	if (c->n < FILTER_LIST_MAX)
		memcpy(c->host[c->n], a, c->addr == FILTER_IP ? 4 : 16);
	c->n++;
	nets_add(c, c->addr == FILTER_IP6_LOW ? a + 12 : a);
}

/* What a clause lists at its fit. */
static size_t terms(const struct filter_clause *c)
{
	return c->fit == FILTER_HOSTS ? c->n : c->fit == FILTER_NETS ? c->nnets : 0;
}

static size_t listed(const struct filter *f)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nclauses; i++)
		n += terms(&f->clause[i]);
	return n;
}

bool filter_coarsen(struct filter *f)
{
	struct filter_clause *most = NULL;

	for (size_t i = 0; i < f->nclauses; i++) {
		struct filter_clause *c = &f->clause[i];
		if (terms(c) && (!most || terms(c) > terms(most)))
			most = c;
	}
	if (!most)
		return false;
	/* Networks only when fewer than the hosts; one that is everything is no network. */
	if (most->fit == FILTER_HOSTS && most->nnets < most->n && most->net[0].len)
		most->fit = FILTER_NETS;
	else
		most->fit = FILTER_ANY;
	return true;
}

enum filter_fit filter_fit(const struct filter *f)
{
	enum filter_fit fit = FILTER_HOSTS;

	for (size_t i = 0; i < f->nclauses; i++)
		if (f->clause[i].n && f->clause[i].fit > fit)
			fit = f->clause[i].fit;
	return fit;
}

bool filter_is_coarse(const struct filter *f)
{
	return filter_fit(f) != FILTER_HOSTS;
}

static void host_text(FILE *out, const struct filter_clause *c, const uint8_t *host)
{
	char ip[INET6_ADDRSTRLEN];

	switch (c->addr) {
	case FILTER_IP:
		fprintf(out, "%shost %s", c->dir, inet_ntop(AF_INET, host, ip, sizeof(ip)));
		break;
	case FILTER_IP6:
		fprintf(out, "%shost %s", c->dir, inet_ntop(AF_INET6, host, ip, sizeof(ip)));
		break;
	case FILTER_IP6_LOW:
		fprintf(out, "ip6[20:4] = 0x%02x%02x%02x%02x or ip6[36:4] = 0x%02x%02x%02x%02x", host[12],
			host[13], host[14], host[15], host[12], host[13], host[14], host[15]);
		break;
	}
}

static void net_text(FILE *out, const struct filter_clause *c, const struct filter_net *net)
{
	char ip[INET6_ADDRSTRLEN];
	const uint8_t *a = net->addr;
	uint32_t mask;

	switch (c->addr) {
	case FILTER_IP:
		fprintf(out, "%snet %s/%u", c->dir, inet_ntop(AF_INET, a, ip, sizeof(ip)), net->len);
		break;
	case FILTER_IP6:
		fprintf(out, "%snet %s/%u", c->dir, inet_ntop(AF_INET6, a, ip, sizeof(ip)), net->len);
		break;
	case FILTER_IP6_LOW:
		mask = net->len ? ~0u << (32 - net->len) : 0;
		fprintf(out,
			"ip6[20:4] & 0x%08x = 0x%02x%02x%02x%02x or ip6[36:4] & 0x%08x = 0x%02x%02x%02x%02x",
			mask, a[0], a[1], a[2], a[3], mask, a[0], a[1], a[2], a[3]);
		break;
	}
}

/* Untagged, under one VLAN tag or under two; takes l3. */
static char *vlans_text(char *l3)
{
	char *all;

	if (asprintf(&all, "(%s) or (vlan and ((%s) or (vlan and (%s))))", l3, l3, l3) < 0)
		all = NULL;
	free(l3);
	return all;
}

char *filter_text(struct filter *f)
{
	char *l3 = NULL;
	size_t len;
	FILE *out;
	bool any;

	while (listed(f) > FILTER_LIST_MAX)
		filter_coarsen(f);
	if (!(out = open_memstream(&l3, &len)))
		return NULL;
	any = f->head != NULL;
	if (any)
		fputs(f->head, out);
	for (size_t i = 0; i < f->nclauses; i++) {
		const struct filter_clause *c = &f->clause[i];
		if (!c->n)
			continue;
		fprintf(out, "%s(%s", any ? " or " : "", c->what);
		any = true;
		if (c->fit != FILTER_ANY) {
			size_t nterms = terms(c);
			fputs(" and (", out);
			for (size_t t = 0; t < nterms; t++) {
				fputs(t ? " or " : "", out);
				if (c->fit == FILTER_HOSTS)
					host_text(out, c, c->host[t]);
				else
					net_text(out, c, &c->net[t]);
			}
			fputc(')', out);
		}
		fputc(')', out);
	}
	if (fclose(out) != 0 || !l3)
		return NULL;
	if (!any) {
		free(l3);
		return strdup("");
	}
	return vlans_text(l3);
}

int filter_compile(pcap_t *p, struct filter *f, struct bpf_program *prog, char **text)
{
	for (;;) {
		if (!(*text = filter_text(f)))
			return -ENOMEM;
		if (pcap_compile(p, prog, *text, 1, PCAP_NETMASK_UNKNOWN) == 0) {
			if (prog->bf_len <= FILTER_MAXINSNS)
				return 0;
			pcap_freecode(prog);
		}
		free(*text);
		*text = NULL;
		if (!filter_coarsen(f))
			return -EINVAL;
	}
}

int filter_in_kernel(pcap_t *p)
{
	socklen_t insns = 0;

	/* With no room given, SO_GET_FILTER answers the attached program's length: 0 for none. */
	if (getsockopt(pcap_get_selectable_fd(p), SOL_SOCKET, SO_GET_FILTER, NULL, &insns) < 0)
		return -errno;
	return insns > 0;
}
