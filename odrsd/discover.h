/*
 * discover = libvirt: the domains defined on this node whose XML carries
 * odrs metadata (metadata.h) are managed without a [vm] section; a [vm]
 * section of the same name wins. virtev.c's thread reads each domain's
 * metadata off the loop (all of them at each connection to libvirtd, and
 * one on each define, undefine and metadata change) and hands it to
 * discover_domain() on the loop; the VM set then changes through
 * odrsd_vms_apply(), the path of a reload.
 */
#ifndef ODRSD_DISCOVER_H
#define ODRSD_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <wake/config.h>

struct odrsd;
struct vm;

/* The discovered VMs as one configuration has them: those no [vm] section names. */
struct discovered {
	struct wk_vmconf *vms;
	size_t n;
};

/*
 * What libvirt says of domain: its metadata element xml, or NULL when it has
 * none or is no longer defined. The VM set follows.
 */
void discover_domain(struct odrsd *d, const char *domain, const char *xml);
/* Whether vm is managed for its metadata (no [vm] section names it). */
bool discover_owns(const struct odrsd *d, const struct vm *vm);
/* A listing of every domain starts (done false) or ended: the domains it did not name are gone. */
void discover_listing(struct odrsd *d, bool done);

/*
 * The discovered VMs as cfg would have them (its [policy], its [vm]
 * sections winning). Once odrsd_vms_apply() took them, discover_commit():
 * the VMs' confs point there now; else discover_abandon(). 0 or -ENOMEM.
 */
int discover_build(struct odrsd *d, const struct wk_config *cfg, struct discovered *out);
void discover_commit(struct odrsd *d, struct discovered *set);
void discover_abandon(struct discovered *set);

#endif
