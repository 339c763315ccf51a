/* Commands inside a guest (guest.c); called from virt worker threads only. */
#ifndef ODRSD_GUEST_H
#define ODRSD_GUEST_H
#include <stddef.h>
#include <stdint.h>
#include <libvirt/libvirt.h>
/* Run `/bin/sh -c cmd`; *out (malloc'd, not NUL-terminated) gets what it printed. 0 or -errno and err. */
int guest_agent_exec(virDomainPtr dom, const char *cmd, unsigned timeout_ms, char **out, size_t *outlen,
		     char *err, size_t errlen);
int guest_ssh_exec(uint32_t ip, const char *cmd, unsigned timeout_ms, char **out, size_t *outlen, char *err,
		   size_t errlen);
#endif
