/*
 * The name index: open addressing with linear probing over (hash, name,
 * object) slots, doubled at a load of one half. A name's hash is kept in
 * its slot, so a probe compares strings only when the hashes match.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wake/vmtable.h>

struct name_slot {
	const char *name; /* NULL: empty slot */
	uint64_t hash;
	void *obj;
};

struct wk_names {
	struct name_slot *slots;
	size_t cap; /* a power of two */
	size_t n;
};

#define MIN_CAP 16

/* FNV-1a, then splitmix64's finalizer so the low bits (the slot) depend on every byte. */
static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ h >> 31;
}

static struct name_slot *probe(struct name_slot *slots, size_t cap, const char *name, uint64_t h)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!slots[i].name || (slots[i].hash == h && strcmp(slots[i].name, name) == 0))
			return &slots[i];
}

static int grow(struct wk_names *n, size_t cap)
{
	struct name_slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < n->cap; i++)
		if (n->slots[i].name)
			*probe(slots, cap, n->slots[i].name, n->slots[i].hash) = n->slots[i];
	free(n->slots);
	n->slots = slots;
	n->cap = cap;
	return 0;
}

struct wk_names *wk_names_new(size_t hint)
{
	struct wk_names *n = calloc(1, sizeof(*n));
	size_t cap = MIN_CAP;

	while (cap < hint * 2 && cap < SIZE_MAX / 4)
		cap *= 2;
	if (n && grow(n, cap) < 0) {
		free(n);
		return NULL;
	}
	return n;
}

void wk_names_free(struct wk_names *n)
{
	if (n)
		free(n->slots);
	free(n);
}

int wk_names_add(struct wk_names *n, const char *name, void *obj)
{
	uint64_t h = name_hash(name);
	struct name_slot *s;
	int r;

	if (probe(n->slots, n->cap, name, h)->name)
		return -EEXIST;
	if ((n->n + 1) * 2 > n->cap && (r = grow(n, n->cap * 2)) < 0)
		return r;
	s = probe(n->slots, n->cap, name, h);
	*s = (struct name_slot){ name, h, obj };
	n->n++;
	return 0;
}

void *wk_names_find(const struct wk_names *n, const char *name)
{
	return n ? probe(n->slots, n->cap, name, name_hash(name))->obj : NULL;
}
