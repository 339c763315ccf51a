/*
 * A domain's odrs metadata (discover = libvirt): the element libvirt keeps
 * for the namespace METADATA_NS, as virDomainGetMetadata returns it,
 *     <vm ip="198.18.0.12" ip6="fd00::12" idle_timeout="10m"/>
 * its attributes the keys of a [vm NAME] section. Pure: no libvirt, no log.
 */
#ifndef ODRSD_METADATA_H
#define ODRSD_METADATA_H

#include <wake/config.h>

#define METADATA_NS  "urn:odrs:1"
#define METADATA_KEY "odrs" /* the prefix libvirt writes it under, for virsh metadata --key */

/*
 * The VM that domain's metadata xml describes, its policy keys defaulting
 * to cfg's [policy]: 0 and *out (wk_vmconf_clear frees it), or -EINVAL
 * after reporting every problem through diag (file = domain, line 0), or
 * -ENOMEM.
 */
int metadata_parse(const struct wk_config *cfg, const char *domain, const char *xml, wk_diag_fn diag,
		   void *ctx, struct wk_vmconf *out);

#endif
