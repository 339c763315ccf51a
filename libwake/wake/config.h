/*
 * The configuration file (INI, see odrs.conf(5)): parsed with inih, every
 * value typed and bounded by a keyword table, every problem reported as
 * FILE:LINE through a callback, then whole-config checks.
 */
#ifndef WAKE_CONFIG_H
#define WAKE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WK_WAKE_ARP	    0x1
#define WK_WAKE_SYN	    0x2
#define WK_WAKE_ESTABLISHED 0x4 /* a segment of a flow the VM had open (wake/flows.h) */

enum wk_probe { WK_PROBE_AGENT = 0, WK_PROBE_SSH, WK_PROBE_NONE };
enum wk_backend { WK_BACKEND_NONE = 0, WK_BACKEND_ETCD };
enum wk_shrink { WK_SHRINK_NONE = 0, WK_SHRINK_CACHES, WK_SHRINK_BALLOON };
/* How an idle VM sleeps: saved to snapshot_dir, or paused with its memory in swap. */
enum wk_sleep { WK_SLEEP_HIBERNATE = 0, WK_SLEEP_DOZE, WK_SLEEP_DOZE_THEN_HIBERNATE };
/* Where VMs come from besides [vm] sections: libvirt domains carrying odrs metadata. */
enum wk_discover { WK_DISCOVER_NONE = 0, WK_DISCOVER_LIBVIRT };
/* Whether an open TCP connection keeps a VM awake. */
enum wk_idle_connections { WK_IDLE_CONNECTIONS_IGNORE = 0, WK_IDLE_CONNECTIONS_KEEP };

/* An address of either family: IPv6, with IPv4 as IPv4-mapped (::ffff:a.b.c.d). */
struct wk_addr {
	uint8_t b[16];
};

static inline struct wk_addr wk_addr_v4(uint32_t ip) /* ip in network order */
{
	struct wk_addr a = { .b = { [10] = 0xff, [11] = 0xff } };

	__builtin_memcpy(a.b + 12, &ip, 4);
	return a;
}

static inline struct wk_addr wk_addr_v6(const uint8_t ip6[16])
{
	struct wk_addr a;

	__builtin_memcpy(a.b, ip6, 16);
	return a;
}

struct wk_policy {
	uint64_t idle_timeout_ms; /* 0: never hibernate automatically */
	double load_threshold;
	char **protect; /* guest process names */
	size_t nprotect;
	enum wk_probe probe;
	unsigned wake_on;     /* WK_WAKE_ARP | WK_WAKE_SYN | WK_WAKE_ESTABLISHED */
	uint16_t *wake_ports; /* nwake_ports == 0: any port */
	size_t nwake_ports;
	struct wk_addr *ignore_sources; /* IPv4 and IPv6 senders */
	size_t nignore_sources;
	struct wk_addr *routers; /* their ARP is answered, a SYN wakes (routed traffic) */
	size_t nrouters;
	bool replay_syn; /* replay held SYNs (no: let the client retransmit) */
	bool dry_run;	 /* log what would be hibernated, do nothing */
	enum wk_shrink shrink;
	unsigned wakes_per_hour; /* automatic wakes of one VM; 0: no limit */
	enum wk_sleep sleep;
	uint64_t hibernate_after_ms; /* doze_then_hibernate: a dozing VM is hibernated after this */
	unsigned sleep_line;	     /* of the sleep key that applies; 0: the default */
	enum wk_idle_connections idle_connections;
	uint16_t *wake_udp_ports; /* a datagram to one of them wakes the VM; none by default */
	size_t nwake_udp_ports;
	bool activity_udp; /* UDP to or from the VM counts as activity, like TCP */
};

struct wk_vmconf {
	char *name;  /* the libvirt domain */
	uint32_t ip; /* network byte order */
	uint8_t mac[6];
	bool has_mac;	 /* else read from the domain */
	uint8_t ip6[16]; /* its IPv6 address, when has_ip6 */
	bool has_ip6;
	unsigned line;		 /* of the [vm NAME] section */
	struct wk_policy policy; /* [policy] with this section's overrides */
};

struct wk_config {
	char *path;
	/* [odrsd] */
	char *node;
	char *interface;
	char *snapshot_dir;
	char *libvirt_uri;
	char *control_socket;
	char *event_log;
	char *state_dir;
	unsigned wake_concurrency;
	unsigned hibernate_concurrency;
	unsigned syn_hold_per_vm;   /* held SYNs kept per sleeping VM */
	unsigned syn_hold_total;    /* and over all VMs */
	uint64_t wake_timeout_ms;   /* a restore taking longer has failed */
	uint64_t wake_spacing_ms;   /* between two restore starts on this node */
	unsigned wakes_per_minute;  /* automatic wakes this node starts; 0: no limit */
	uint64_t check_interval_ms; /* how often idleness is judged */
	uint64_t probe_timeout_ms;  /* a guest probe taking longer has failed */
	char *metrics_listen;	    /* ADDR:PORT of /metrics; NULL: off */
	enum wk_discover discover;
	bool wake_on_stop; /* stopping, wake the VMs only this node would wake */
	/* [policy] */
	struct wk_policy policy;
	/* [cluster] */
	enum wk_backend backend;
	char *etcd;
	uint64_t accept_term_ms;
	uint64_t lease_ttl_ms;
	uint64_t memory_bytes;	     /* guest memory this node offers; 0: the host's */
	unsigned cpus;		     /* for the load score; 0: the host's */
	unsigned retrain_rate;	     /* frames per second announcing sleeping MACs */
	uint64_t retrain_delay_ms;   /* the second burst after the first; 0: none */
	uint64_t retrain_refresh_ms; /* then again every this often; 0: never */
	/* [vm NAME] */
	struct wk_vmconf *vms;
	size_t nvms;
};

/* Called once per problem; file and line say where (line 0: the file as a whole, shown without a line). */
typedef void (*wk_diag_fn)(void *ctx, const char *file, unsigned line, const char *msg);

/*
 * A problem as it is shown: "FILE:LINE: msg", or "FILE: msg" for the file
 * as a whole (line 0). snprintf's contract: the length it needed.
 */
int wk_diag_format(char *buf, size_t len, const char *file, unsigned line, const char *msg);

/* The longest [vm NAME] the control protocol carries (struct wk_ctl_request). */
#define WK_VM_NAME_MAX 127

/*
 * Parse and check path. Returns 0 and *out, or -EINVAL after reporting every
 * problem found through diag, or another negative errno when the file cannot
 * be read (also reported through diag, with line 0).
 */
int wk_config_load(const char *path, wk_diag_fn diag, void *ctx, struct wk_config **out);
void wk_config_free(struct wk_config *cfg);
const struct wk_vmconf *wk_config_vm(const struct wk_config *cfg, const char *name);

/*
 * A VM described outside the file (discover = libvirt: a domain's odrs
 * metadata): the n pairs keys[i] = values[i] are the keys of a [vm NAME]
 * section, checked by the same table; the policy keys not given come from
 * cfg's [policy]. Returns 0 and *out (free it with wk_vmconf_clear), or
 * -EINVAL after reporting every problem through diag as a [vm] section's
 * would read, with file = name and line 0, or -ENOMEM.
 */
int wk_vmconf_parse(const struct wk_config *cfg, const char *name, const char *const *keys,
		    const char *const *values, size_t n, wk_diag_fn diag, void *ctx, struct wk_vmconf *out);
/* Free what a wk_vmconf_parse() result holds, and zero it. */
void wk_vmconf_clear(struct wk_vmconf *vm);

/* Typed values, shared with odrsctl: 0 or -EINVAL. */
int wk_parse_duration(const char *s, uint64_t *ms); /* 500ms 30s 2m 1h; bare 0 */
int wk_parse_size(const char *s, uint64_t *bytes);  /* 512 4K 64M 1G */
int wk_parse_ipv4(const char *s, uint32_t *ip);
int wk_parse_mac(const char *s, uint8_t mac[6]);

/* A listening address: IPv4 (addr[0..3], network order) or IPv6, and a port. */
struct wk_hostport {
	bool v6;
	uint8_t addr[16];
	uint16_t port; /* host order, 1..65535 */
};
/* "198.18.1.1:9464" or "[fd00::1]:9464": 0 or -EINVAL. */
int wk_parse_hostport(const char *s, struct wk_hostport *hp);

#endif
