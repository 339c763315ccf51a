/*
 * The VM table: an index from IPv4 address, from MAC and from IPv6 address
 * to the caller's VM object, all O(1) (open addressing), sized for 100,000
 * VMs and more.
 * The table owns no VM; it stores the pointer it was given.
 */
#ifndef WAKE_VMTABLE_H
#define WAKE_VMTABLE_H

#include <stddef.h>
#include <stdint.h>

struct wk_vmtable;

struct wk_vmtable *wk_vmtable_new(size_t hint);
void wk_vmtable_free(struct wk_vmtable *t);
/* -EEXIST when ip (or mac, if not NULL) is already indexed; nothing changes then. */
int wk_vmtable_add(struct wk_vmtable *t, uint32_t ip, const uint8_t *mac, void *vm);
/* Remove the entries for ip and mac (mac may be NULL); -ENOENT if ip is unknown. */
int wk_vmtable_del(struct wk_vmtable *t, uint32_t ip, const uint8_t *mac);
/* Index a MAC learned later (from the domain XML); -EEXIST if taken. */
int wk_vmtable_set_mac(struct wk_vmtable *t, uint32_t ip, const uint8_t *mac);
void *wk_vmtable_by_ip(const struct wk_vmtable *t, uint32_t ip);
void *wk_vmtable_by_mac(const struct wk_vmtable *t, const uint8_t *mac);
size_t wk_vmtable_count(const struct wk_vmtable *t);
/* The IPv6 index, separate: a VM may have no IPv6 address. -EEXIST if another VM has ip6. */
int wk_vmtable_add_ip6(struct wk_vmtable *t, const uint8_t ip6[16], void *vm);
int wk_vmtable_del_ip6(struct wk_vmtable *t, const uint8_t ip6[16]);
void *wk_vmtable_by_ip6(const struct wk_vmtable *t, const uint8_t ip6[16]);

/*
 * A name index: from a string (a VM's name, an etcd key) to the caller's
 * object, O(1), for any number of names. It keeps the name pointers it is
 * given (each must outlive the index) and owns none of them. Names are only
 * added: a changed set of names is a new index.
 */
struct wk_names;

struct wk_names *wk_names_new(size_t hint);
void wk_names_free(struct wk_names *n);
/* -EEXIST when name is indexed already (nothing changes), -ENOMEM. */
int wk_names_add(struct wk_names *n, const char *name, void *obj);
/* The object indexed under name, or NULL (also for a NULL index). */
void *wk_names_find(const struct wk_names *n, const char *name);

#endif
