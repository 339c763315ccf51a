/* The capture filters' text and its fit to the kernel: see filter.h. */
#include <arpa/inet.h>
#include <errno.h>
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
	c->coarse = false;
	return c;
}

void filter_add(struct filter_clause *c, uint32_t ip, const uint8_t *ip6)
{
	if (c->n < FILTER_LIST_MAX) {
		if (c->addr == FILTER_IP)
			memcpy(c->host[c->n], &ip, 4);
		else
			memcpy(c->host[c->n], ip6, 16);
	}
	c->n++;
}

/* The addresses the clauses that are not coarse list. */
static size_t listed(const struct filter *f)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nclauses; i++)
		n += f->clause[i].coarse ? 0 : f->clause[i].n;
	return n;
}

bool filter_coarsen(struct filter *f)
{
	struct filter_clause *most = NULL;

	for (size_t i = 0; i < f->nclauses; i++) {
		struct filter_clause *c = &f->clause[i];
		if (!c->coarse && c->n && (!most || c->n > most->n))
			most = c;
	}
	if (most)
		most->coarse = true;
	return most != NULL;
}

bool filter_is_coarse(const struct filter *f)
{
	for (size_t i = 0; i < f->nclauses; i++)
		if (f->clause[i].coarse && f->clause[i].n)
			return true;
	return false;
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
		if (!c->coarse) {
			fputs(" and (", out);
			for (size_t h = 0; h < c->n; h++) {
				fputs(h ? " or " : "", out);
				host_text(out, c, c->host[h]);
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
