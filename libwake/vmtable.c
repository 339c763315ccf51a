/*
 * The VM table: two open-addressing hash tables with linear probing, one
 * keyed by IPv4 address and one by MAC. Deletion shifts later entries of the
 * probe run back (no tombstones), so lookups stay short after any number of
 * adds and deletes. Each IP entry remembers its MAC, so deleting or
 * re-addressing a VM never leaves a stale MAC behind.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <wake/vmtable.h>

struct ip_slot {
	void *vm; /* NULL: empty slot */
	uint32_t ip;
	bool has_mac;
	uint64_t mac;
};

struct mac_slot {
	void *vm; /* NULL: empty slot */
	uint64_t mac;
};

struct ip6_slot {
	void *vm; /* NULL: empty slot */
	uint8_t ip6[16];
};

struct wk_vmtable {
	struct ip_slot *ips;
	struct mac_slot *macs;
	size_t cap; /* of both arrays: a power of two */
	size_t nips;
	size_t nmacs;
	struct ip6_slot *ip6s; /* NULL until the first IPv6 address */
	size_t cap6, nip6s;
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

static uint64_t mac_key(const uint8_t *mac)
{
	uint64_t k = 0;
	int i;

	for (i = 0; i < 6; i++)
		k = k << 8 | mac[i];
	return k;
}

static size_t ip_find(const struct wk_vmtable *t, uint32_t ip)
{
	size_t mask = t->cap - 1, i = mix(ip) & mask;

	while (t->ips[i].vm != NULL && t->ips[i].ip != ip)
		i = (i + 1) & mask;
	return i;
}

static size_t mac_find(const struct wk_vmtable *t, uint64_t mac)
{
	size_t mask = t->cap - 1, i = mix(mac) & mask;

	while (t->macs[i].vm != NULL && t->macs[i].mac != mac)
		i = (i + 1) & mask;
	return i;
}

/* Is slot j's home h outside the cyclic range (i, j]? Then it may move to i. */
static bool may_move(size_t i, size_t j, size_t h)
{
	return i <= j ? (h <= i || h > j) : (h <= i && h > j);
}

static void ip_remove_at(struct wk_vmtable *t, size_t i)
{
	size_t mask = t->cap - 1, j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (t->ips[j].vm == NULL)
			break;
		if (may_move(i, j, mix(t->ips[j].ip) & mask)) {
			t->ips[i] = t->ips[j];
			i = j;
		}
	}
	memset(&t->ips[i], 0, sizeof(t->ips[i]));
	t->nips--;
}

static void mac_remove_at(struct wk_vmtable *t, size_t i)
{
	size_t mask = t->cap - 1, j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (t->macs[j].vm == NULL)
			break;
		if (may_move(i, j, mix(t->macs[j].mac) & mask)) {
			t->macs[i] = t->macs[j];
			i = j;
		}
	}
	memset(&t->macs[i], 0, sizeof(t->macs[i]));
	t->nmacs--;
}

static int alloc_slots(struct wk_vmtable *t, size_t cap)
{
	t->ips = calloc(cap, sizeof(*t->ips));
	t->macs = calloc(cap, sizeof(*t->macs));
	if (t->ips == NULL || t->macs == NULL) {
		free(t->ips);
		free(t->macs);
		return -ENOMEM;
	}
	t->cap = cap;
	return 0;
}

/* Keep the load factor at or under 1/2 so probe runs stay short. */
static int grow(struct wk_vmtable *t)
{
	struct wk_vmtable old = *t;
	size_t i;

	if (t->cap > SIZE_MAX / 4 / sizeof(struct ip_slot))
		return -ENOMEM;
	if (alloc_slots(t, old.cap * 2) < 0) {
		*t = old;
		return -ENOMEM;
	}
	for (i = 0; i < old.cap; i++) {
		if (old.ips[i].vm != NULL)
			t->ips[ip_find(t, old.ips[i].ip)] = old.ips[i];
		if (old.macs[i].vm != NULL)
			t->macs[mac_find(t, old.macs[i].mac)] = old.macs[i];
	}
	free(old.ips);
	free(old.macs);
	return 0;
}

struct wk_vmtable *wk_vmtable_new(size_t hint)
{
	struct wk_vmtable *t = calloc(1, sizeof(*t));
	size_t cap = MIN_CAP;

	if (t == NULL)
		return NULL;
	while (cap / 2 < hint && cap < SIZE_MAX / 4 / sizeof(struct ip_slot))
		cap *= 2;
	if (alloc_slots(t, cap) < 0) {
		free(t);
		return NULL;
	}
	return t;
}

void wk_vmtable_free(struct wk_vmtable *t)
{
	if (t == NULL)
		return;
	free(t->ips);
	free(t->macs);
	free(t->ip6s);
	free(t);
}

int wk_vmtable_add(struct wk_vmtable *t, uint32_t ip, const uint8_t *mac, void *vm)
{
	size_t i;

	if (vm == NULL)
		return -EINVAL;
	if ((t->nips + 1) * 2 > t->cap && grow(t) < 0)
		return -ENOMEM;
	i = ip_find(t, ip);
	if (t->ips[i].vm != NULL)
		return -EEXIST;
	if (mac != NULL) {
		uint64_t k = mac_key(mac);
		size_t m = mac_find(t, k);

		if (t->macs[m].vm != NULL)
			return -EEXIST;
		t->macs[m] = (struct mac_slot){ .vm = vm, .mac = k };
		t->nmacs++;
		t->ips[i] = (struct ip_slot){ .vm = vm, .ip = ip, .has_mac = true, .mac = k };
	} else {
		t->ips[i] = (struct ip_slot){ .vm = vm, .ip = ip };
	}
	t->nips++;
	return 0;
}

int wk_vmtable_del(struct wk_vmtable *t, uint32_t ip, const uint8_t *mac)
{
	size_t i = ip_find(t, ip), m;
	void *vm = t->ips[i].vm;

	if (vm == NULL)
		return -ENOENT;
	if (t->ips[i].has_mac) {
		m = mac_find(t, t->ips[i].mac);
		if (t->macs[m].vm == vm)
			mac_remove_at(t, m);
	}
	ip_remove_at(t, i);
	/* A MAC the caller names is removed too, but only if it was this VM's. */
	if (mac != NULL) {
		m = mac_find(t, mac_key(mac));
		if (t->macs[m].vm == vm)
			mac_remove_at(t, m);
	}
	return 0;
}

int wk_vmtable_set_mac(struct wk_vmtable *t, uint32_t ip, const uint8_t *mac)
{
	size_t i = ip_find(t, ip), m;
	uint64_t k = mac_key(mac);
	void *vm = t->ips[i].vm;

	if (vm == NULL)
		return -ENOENT;
	m = mac_find(t, k);
	if (t->macs[m].vm == vm)
		return 0;
	if (t->macs[m].vm != NULL)
		return -EEXIST;
	if (t->ips[i].has_mac) {
		size_t old = mac_find(t, t->ips[i].mac);

		if (t->macs[old].vm == vm)
			mac_remove_at(t, old);
		m = mac_find(t, k); /* the removal may have shifted the run */
	}
	t->macs[m] = (struct mac_slot){ .vm = vm, .mac = k };
	t->nmacs++;
	t->ips[i].has_mac = true;
	t->ips[i].mac = k;
	return 0;
}

void *wk_vmtable_by_ip(const struct wk_vmtable *t, uint32_t ip)
{
	return t->ips[ip_find(t, ip)].vm;
}

void *wk_vmtable_by_mac(const struct wk_vmtable *t, const uint8_t *mac)
{
	return t->macs[mac_find(t, mac_key(mac))].vm;
}

size_t wk_vmtable_count(const struct wk_vmtable *t)
{
	return t->nips;
}

static uint64_t ip6_hash(const uint8_t *ip6)
{
	uint64_t hi = 0, lo = 0;

	for (int i = 0; i < 8; i++) {
		hi = hi << 8 | ip6[i];
		lo = lo << 8 | ip6[8 + i];
	}
	return mix(hi ^ mix(lo));
}

static size_t ip6_find(const struct ip6_slot *slots, size_t cap, const uint8_t *ip6)
{
	size_t mask = cap - 1, i = ip6_hash(ip6) & mask;

	while (slots[i].vm != NULL && memcmp(slots[i].ip6, ip6, 16) != 0)
		i = (i + 1) & mask;
	return i;
}

static int ip6_grow(struct wk_vmtable *t)
{
	size_t cap = t->cap6 ? t->cap6 * 2 : MIN_CAP, i;
	struct ip6_slot *slots;

	if (cap > SIZE_MAX / 2 / sizeof(*slots) || (slots = calloc(cap, sizeof(*slots))) == NULL)
		return -ENOMEM;
	for (i = 0; i < t->cap6; i++)
		if (t->ip6s[i].vm != NULL)
			slots[ip6_find(slots, cap, t->ip6s[i].ip6)] = t->ip6s[i];
	free(t->ip6s);
	t->ip6s = slots;
	t->cap6 = cap;
	return 0;
}

int wk_vmtable_add_ip6(struct wk_vmtable *t, const uint8_t ip6[16], void *vm)
{
	size_t i;

	if (vm == NULL)
		return -EINVAL;
	if ((t->nip6s + 1) * 2 > t->cap6 && ip6_grow(t) < 0)
		return -ENOMEM;
	i = ip6_find(t->ip6s, t->cap6, ip6);
	if (t->ip6s[i].vm != NULL)
		return t->ip6s[i].vm == vm ? 0 : -EEXIST;
	t->ip6s[i].vm = vm;
	memcpy(t->ip6s[i].ip6, ip6, 16);
	t->nip6s++;
	return 0;
}

int wk_vmtable_del_ip6(struct wk_vmtable *t, const uint8_t ip6[16])
{
	size_t mask, i, j;

	if (t->cap6 == 0 || t->ip6s[i = ip6_find(t->ip6s, t->cap6, ip6)].vm == NULL)
		return -ENOENT;
	mask = t->cap6 - 1;
	for (j = i;;) {
		j = (j + 1) & mask;
		if (t->ip6s[j].vm == NULL)
			break;
		if (may_move(i, j, ip6_hash(t->ip6s[j].ip6) & mask)) {
			t->ip6s[i] = t->ip6s[j];
			i = j;
		}
	}
	memset(&t->ip6s[i], 0, sizeof(t->ip6s[i]));
	t->nip6s--;
	return 0;
}

void *wk_vmtable_by_ip6(const struct wk_vmtable *t, const uint8_t ip6[16])
{
	return t->cap6 ? t->ip6s[ip6_find(t->ip6s, t->cap6, ip6)].vm : NULL;
}
