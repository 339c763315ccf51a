/*
 * The flow table (wake/flows.h): entries in one array, chained from a
 * power-of-two bucket array by index, and kept on a doubly linked list in
 * the order they were last noted, so that the eviction of the least recent
 * and every update are O(1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <wake/flows.h>

#define NIL 0xffffu

struct flow_entry {
	struct wk_flowkey key;
	uint16_t chain;	       /* the next entry in its bucket */
	uint16_t newer, older; /* the recency list */
};

struct wk_flows {
	uint32_t seed;
	unsigned cap, n, nbuckets;
	uint16_t newest, oldest, free; /* free: chained through .chain */
	uint16_t *bucket;
	struct flow_entry e[];
};

int wk_flowkey_of(const struct wk_pkt *p, bool vm_is_src, struct wk_flowkey *out)
{
	struct wk_flowkey k;

	if (p->kind != WK_PKT_TCP)
		return -EPROTONOSUPPORT;
	memset(&k, 0, sizeof(k));
	if (p->v6)
		k.peer = wk_addr_v6(vm_is_src ? p->ip6.dst : p->ip6.src);
	else
		k.peer = wk_addr_v4(vm_is_src ? p->ip.dst : p->ip.src);
	k.vm_port = vm_is_src ? p->tcp.sport : p->tcp.dport;
	k.peer_port = vm_is_src ? p->tcp.dport : p->tcp.sport;
	*out = k;
	return 0;
}

/* FNV-1a over the key's bytes, from the seed. */
static unsigned bucket_of(const struct wk_flows *t, const struct wk_flowkey *k)
{
	uint32_t h = 2166136261u ^ t->seed;
	uint8_t b[sizeof(k->peer.b) + 4];

	memcpy(b, k->peer.b, sizeof(k->peer.b));
	b[16] = (uint8_t)(k->vm_port >> 8);
	b[17] = (uint8_t)k->vm_port;
	b[18] = (uint8_t)(k->peer_port >> 8);
	b[19] = (uint8_t)k->peer_port;
	for (size_t i = 0; i < sizeof(b); i++)
		h = (h ^ b[i]) * 16777619u;
	return (h ^ h >> 16) & (t->nbuckets - 1);
}

static bool key_eq(const struct wk_flowkey *a, const struct wk_flowkey *b)
{
	return a->vm_port == b->vm_port && a->peer_port == b->peer_port &&
	       !memcmp(a->peer.b, b->peer.b, sizeof(a->peer.b));
}

struct wk_flows *wk_flows_new(unsigned cap, uint32_t seed)
{
	struct wk_flows *t;
	unsigned nb = 1;

	if (cap == 0 || cap > WK_FLOWS_MAX)
		return NULL;
	while (nb < 2 * cap)
		nb <<= 1;
	if (!(t = calloc(1, sizeof(*t) + cap * sizeof(t->e[0]))))
		return NULL;
	if (!(t->bucket = malloc(nb * sizeof(t->bucket[0])))) {
		free(t);
		return NULL;
	}
	t->seed = seed;
	t->cap = cap;
	t->nbuckets = nb;
	wk_flows_clear(t);
	return t;
}

void wk_flows_free(struct wk_flows *t)
{
	if (!t)
		return;
	free(t->bucket);
	free(t);
}

void wk_flows_clear(struct wk_flows *t)
{
	memset(t->bucket, 0xff, t->nbuckets * sizeof(t->bucket[0]));
	for (unsigned i = 0; i < t->cap; i++)
		t->e[i].chain = i + 1 < t->cap ? (uint16_t)(i + 1) : NIL;
	t->free = 0;
	t->newest = t->oldest = NIL;
	t->n = 0;
}

/* The entry's index, and the link that points at it. */
static unsigned find(const struct wk_flows *t, const struct wk_flowkey *k, uint16_t **link)
{
	uint16_t *l = &t->bucket[bucket_of(t, k)];

	while (*l != NIL && !key_eq(&t->e[*l].key, k))
		l = (uint16_t *)&t->e[*l].chain;
	if (link)
		*link = l;
	return *l;
}

static void list_unlink(struct wk_flows *t, unsigned i)
{
	struct flow_entry *e = &t->e[i];

	if (e->newer != NIL)
		t->e[e->newer].older = e->older;
	else
		t->newest = e->older;
	if (e->older != NIL)
		t->e[e->older].newer = e->newer;
	else
		t->oldest = e->newer;
}

static void list_push_newest(struct wk_flows *t, unsigned i)
{
	struct flow_entry *e = &t->e[i];

	e->newer = NIL;
	e->older = t->newest;
	if (t->newest != NIL)
		t->e[t->newest].newer = (uint16_t)i;
	else
		t->oldest = (uint16_t)i;
	t->newest = (uint16_t)i;
}

static void forget(struct wk_flows *t, const struct wk_flowkey *k)
{
	uint16_t *link;
	unsigned i = find(t, k, &link);

	if (i == NIL)
		return;
	*link = t->e[i].chain;
	list_unlink(t, i);
	t->e[i].chain = t->free;
	t->free = (uint16_t)i;
	t->n--;
}

void wk_flows_note(struct wk_flows *t, const struct wk_flowkey *k, uint8_t flags, size_t payload,
		   bool from_vm)
{
	unsigned i;
	uint16_t *link;

	if (flags & (WK_TCP_RST | WK_TCP_FIN)) {
		forget(t, k);
		return;
	}
	if ((i = find(t, k, &link)) != NIL) {
		list_unlink(t, i);
		list_push_newest(t, i);
		return;
	}
	if (!from_vm || !payload || (flags & WK_TCP_SYN))
		return;
	if (t->free == NIL) {
		struct wk_flowkey oldest = t->e[t->oldest].key;

		forget(t, &oldest);
		find(t, k, &link); /* the chain may have changed */
	}
	i = t->free;
	t->free = t->e[i].chain;
	t->e[i].key = *k;
	t->e[i].chain = NIL;
	*link = (uint16_t)i;
	list_push_newest(t, i);
	t->n++;
}

bool wk_flows_has(const struct wk_flows *t, const struct wk_flowkey *k)
{
	return find(t, k, NULL) != NIL;
}

size_t wk_flows_count(const struct wk_flows *t)
{
	return t ? t->n : 0;
}
