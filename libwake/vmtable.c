/*
 * The VM table: three indexes (IPv4 address, MAC, IPv6 address) that are one
 * generic open-addressing hash with linear probing, used three times.
 * Deletion shifts later entries of the probe run back (no tombstones), so
 * lookups stay short after any number of adds and deletes. Each IPv4 entry
 * remembers its VM's MAC, so deleting or re-addressing a VM never leaves a
 * stale MAC behind, and no operation removes an entry another VM owns.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <wake/vmtable.h>

#define KEY_MAX 16 /* an IPv6 address, the longest key */

struct slot {
	void *vm; /* NULL: empty slot */
	uint8_t key[KEY_MAX];
	bool has_mac; /* the IPv4 index: the MAC this VM is indexed under */
	uint8_t mac[6];
};

struct index {
	struct slot *slots; /* NULL until the first add */
	size_t cap;	    /* a power of two, or 0 */
	size_t n;
	size_t keylen;
};

struct wk_vmtable {
	struct index ip, mac, ip6;
	size_t hint; /* the first allocation's size */
};

#define MIN_CAP 16

/* splitmix64's finalizer: every key bit moves every hash bit. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t key_hash(const uint8_t *key, size_t len)
{
	uint64_t h = 0;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = 0;

		for (size_t j = i; j < i + 8 && j < len; j++)
			w = w << 8 | key[j];
		h = mix(h ^ w);
	}
	return h;
}

static size_t idx_home(const struct index *x, const uint8_t *key)
{
	return key_hash(key, x->keylen) & (x->cap - 1);
}

/* The slot holding key, or the empty slot where it would go; cap must not be 0. */
static size_t idx_find(const struct index *x, const uint8_t *key)
{
	size_t mask = x->cap - 1, i = idx_home(x, key);

	while (x->slots[i].vm != NULL && memcmp(x->slots[i].key, key, x->keylen) != 0)
		i = (i + 1) & mask;
	return i;
}

static struct slot *idx_get(const struct index *x, const uint8_t *key)
{
	struct slot *s;

	if (x->cap == 0)
		return NULL;
	s = &x->slots[idx_find(x, key)];
	return s->vm ? s : NULL;
}

/* Is slot j's home h outside the cyclic range (i, j]? Then it may move to i. */
static bool may_move(size_t i, size_t j, size_t h)
{
	return i <= j ? (h <= i || h > j) : (h <= i && h > j);
}

static void idx_remove(struct index *x, struct slot *s)
{
	size_t mask = x->cap - 1, i = (size_t)(s - x->slots), j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (x->slots[j].vm == NULL)
			break;
		if (may_move(i, j, idx_home(x, x->slots[j].key))) {
			x->slots[i] = x->slots[j];
			i = j;
		}
	}
	memset(&x->slots[i], 0, sizeof(x->slots[i]));
	x->n--;
}

/* Room for one more entry at a load factor of at most 1/2, so probe runs stay short. */
static int idx_reserve(struct index *x, size_t hint)
{
	struct index old = *x;
	size_t cap = x->cap ? x->cap * 2 : MIN_CAP;

	if ((x->n + 1) * 2 <= x->cap)
		return 0;
	while (cap / 2 < hint && cap < SIZE_MAX / 4 / sizeof(struct slot))
		cap *= 2;
	if (cap > SIZE_MAX / 4 / sizeof(struct slot) || !(x->slots = calloc(cap, sizeof(struct slot)))) {
		*x = old;
		return -ENOMEM;
	}
	x->cap = cap;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].vm != NULL)
			x->slots[idx_find(x, old.slots[i].key)] = old.slots[i];
	free(old.slots);
	return 0;
}

/* Index key for vm; the caller has checked key is free and reserved room. */
static struct slot *idx_put(struct index *x, const uint8_t *key, void *vm)
{
	struct slot *s = &x->slots[idx_find(x, key)];

	memset(s, 0, sizeof(*s));
	s->vm = vm;
	memcpy(s->key, key, x->keylen);
	x->n++;
	return s;
}

struct wk_vmtable *wk_vmtable_new(size_t hint)
{
	struct wk_vmtable *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->ip.keylen = 4;
	t->mac.keylen = 6;
	t->ip6.keylen = 16;
	t->hint = hint;
	/* The IPv4 and MAC indexes at their full size now: start-up then allocates once. */
	if (idx_reserve(&t->ip, hint) < 0 || idx_reserve(&t->mac, hint) < 0) {
		wk_vmtable_free(t);
		return NULL;
	}
	return t;
}

void wk_vmtable_free(struct wk_vmtable *t)
{
	if (t == NULL)
		return;
	free(t->ip.slots);
	free(t->mac.slots);
	free(t->ip6.slots);
	free(t);
}

int wk_vmtable_add(struct wk_vmtable *t, uint32_t ip, const uint8_t *mac, void *vm)
{
	struct slot *s;

	if (vm == NULL)
		return -EINVAL;
	if (idx_get(&t->ip, (uint8_t *)&ip) || (mac && idx_get(&t->mac, mac)))
		return -EEXIST;
	/* Both reserved before either is filled: a failure leaves nothing half-added. */
	if (idx_reserve(&t->ip, t->hint) < 0 || (mac && idx_reserve(&t->mac, t->hint) < 0))
		return -ENOMEM;
	s = idx_put(&t->ip, (uint8_t *)&ip, vm);
	if (mac) {
		idx_put(&t->mac, mac, vm);
		s->has_mac = true;
		memcpy(s->mac, mac, 6);
	}
	return 0;
}

/* Drop the MAC entry an IPv4 entry names, if it is still that VM's. */
static void drop_mac_of(struct wk_vmtable *t, struct slot *s)
{
	struct slot *m = s->has_mac ? idx_get(&t->mac, s->mac) : NULL;

	if (m && m->vm == s->vm)
		idx_remove(&t->mac, m);
	s->has_mac = false;
}

int wk_vmtable_del(struct wk_vmtable *t, uint32_t ip, const uint8_t *mac)
{
	struct slot *s = idx_get(&t->ip, (uint8_t *)&ip), *m;
	void *vm;

	if (s == NULL)
		return -ENOENT;
	vm = s->vm;
	drop_mac_of(t, s);
	idx_remove(&t->ip, s);
	/* A MAC the caller names is removed too, but only if it was this VM's. */
	if (mac != NULL && (m = idx_get(&t->mac, mac)) && m->vm == vm)
		idx_remove(&t->mac, m);
	return 0;
}

int wk_vmtable_set_mac(struct wk_vmtable *t, uint32_t ip, const uint8_t *mac)
{
	struct slot *s = idx_get(&t->ip, (uint8_t *)&ip), *m;

	if (s == NULL)
		return -ENOENT;
	if ((m = idx_get(&t->mac, mac)))
		return m->vm == s->vm ? 0 : -EEXIST;
	if (idx_reserve(&t->mac, t->hint) < 0)
		return -ENOMEM;
	drop_mac_of(t, s);
	idx_put(&t->mac, mac, s->vm);
	s->has_mac = true;
	memcpy(s->mac, mac, 6);
	return 0;
}

void *wk_vmtable_by_ip(const struct wk_vmtable *t, uint32_t ip)
{
	struct slot *s = idx_get(&t->ip, (const uint8_t *)&ip);

	return s ? s->vm : NULL;
}

void *wk_vmtable_by_mac(const struct wk_vmtable *t, const uint8_t *mac)
{
	struct slot *s = idx_get(&t->mac, mac);

	return s ? s->vm : NULL;
}

size_t wk_vmtable_count(const struct wk_vmtable *t)
{
	return t->ip.n;
}

int wk_vmtable_add_ip6(struct wk_vmtable *t, const uint8_t ip6[16], void *vm)
{
	struct slot *s;

	if (vm == NULL)
		return -EINVAL;
	if ((s = idx_get(&t->ip6, ip6)))
		return s->vm == vm ? 0 : -EEXIST;
	if (idx_reserve(&t->ip6, 0) < 0)
		return -ENOMEM;
	idx_put(&t->ip6, ip6, vm);
	return 0;
}

int wk_vmtable_del_ip6(struct wk_vmtable *t, const uint8_t ip6[16])
{
	struct slot *s = idx_get(&t->ip6, ip6);

	if (s == NULL)
		return -ENOENT;
	idx_remove(&t->ip6, s);
	return 0;
}

void *wk_vmtable_by_ip6(const struct wk_vmtable *t, const uint8_t ip6[16])
{
	struct slot *s = idx_get(&t->ip6, ip6);

	return s ? s->vm : NULL;
}
