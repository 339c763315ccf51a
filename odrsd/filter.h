/*
 * The capture filters' text, and its fit to the kernel. No loop, no
 * logging: 0 or a negative errno.
 *
 * A filter is a head that names no host (ARP requests, say) or nothing, and
 * clauses: "(WHAT and (DIRhost A or DIRhost B ...))" for the addresses added
 * to it; the whole repeated untagged, under one VLAN tag and under two. A
 * new kind of frame to capture is one more clause.
 *
 * A clause that cannot name its hosts names networks that cover them:
 * "(WHAT and (DIRnet N/LEN or ...))", at most FILTER_NETS_MAX, kept as the
 * addresses are added (the two closest merged when one more is needed), so
 * frames for addresses far from every VM (a storage server, another
 * segment) still stop in the kernel; past that, "(WHAT)" alone. A clause
 * that names networks or nothing is coarse: it passes frames of hosts it
 * does not name, and the caller matches them in user space (the VM table)
 * and counts what it drops.
 *
 * Why clauses turn coarser, checked in this order:
 * - more than FILTER_LIST_MAX hosts or networks in all: pcap_compile's time
 *   grows faster than the square of the list (dst host lists on the lab
 *   machine: 64 addresses 7 ms, 200 0.6 s) and it runs on the loop;
 * - the program compiles to more than FILTER_MAXINSNS instructions;
 * - the kernel refuses it (its length, or net.core.optmem_max): libpcap then
 *   filters in user space without a word (filter_in_kernel() tells).
 * Each step makes the clause with the most terms one step coarser (hosts to
 * networks, networks to any host), until none is left.
 */
#ifndef ODRSD_FILTER_H
#define ODRSD_FILTER_H

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FILTER_LIST_MAX 64
#define FILTER_MAXINSNS 4096 /* the kernel's BPF_MAXINSNS (linux/bpf_common.h) */
#define FILTER_CLAUSES	12   /* the wake filter has 8 */
#define FILTER_NETS_MAX 8

/* How a clause names an address. */
enum filter_addr {
	FILTER_IP,	/* "DIRhost A" */
	FILTER_IP6,	/* "DIRhost A6" */
	FILTER_IP6_LOW, /* its last 32 bits, src or dst (no DIR): an eighth of the instructions */
};

/* How a clause names its addresses, from the exact to the coarsest. */
enum filter_fit {
	FILTER_HOSTS, /* each one */
	FILTER_NETS,  /* networks covering them */
	FILTER_ANY,   /* WHAT alone */
};

/* A network: its first len bits; IPv4 and FILTER_IP6_LOW's 32 bits in the first 4 bytes. */
struct filter_net {
	uint8_t addr[16];
	unsigned len;
};

struct filter_clause {
	const char *what; /* the frames it passes, of any host */
	const char *dir;  /* "src ", "dst " or "" */
	enum filter_addr addr;
	size_t n; /* addresses added */
	enum filter_fit fit;
	size_t nnets;				    /* networks covering every address added */
	struct filter_net net[FILTER_NETS_MAX + 1]; /* one over while two are merged */
	size_t last_net;			    /* the one that took the last address */
	uint8_t host[FILTER_LIST_MAX][16];	    /* the first ones: IPv4 in its first 4 bytes */
};

struct filter {
	const char *head; /* NULL for none */
	struct filter_clause clause[FILTER_CLAUSES];
	size_t nclauses;
};

void filter_init(struct filter *f, const char *head);
/* A new clause, or NULL past FILTER_CLAUSES (a programming error). */
struct filter_clause *filter_clause(struct filter *f, const char *what, const char *dir,
				    enum filter_addr addr);
/* ip in network order; ip6 for FILTER_IP6 and FILTER_IP6_LOW. */
void filter_add(struct filter_clause *c, uint32_t ip, const uint8_t *ip6);
/*
 * The text, its clauses first made coarse to list at most FILTER_LIST_MAX
 * addresses; "" when it passes nothing; NULL when out of memory. Two
 * filters with the same text at this step fit the same way: a key.
 */
char *filter_text(struct filter *f);
/* Make the clause with the most terms one step coarser; false when none is left. */
bool filter_coarsen(struct filter *f);
/* The coarsest fit of a clause with addresses: FILTER_NETS or FILTER_ANY pass frames of hosts it does not name. */
enum filter_fit filter_fit(const struct filter *f);
bool filter_is_coarse(const struct filter *f);
/*
 * Compile f for p, coarsening it until the program has at most
 * FILTER_MAXINSNS instructions; *text is what was compiled (the caller
 * frees it and prog). -EINVAL with pcap_geterr(p) when even the coarsest
 * does not compile or fit, -ENOMEM.
 */
int filter_compile(pcap_t *p, struct filter *f, struct bpf_program *prog, char **text);
/* 1: the kernel runs p's filter; 0: libpcap does, in user space; -errno. */
int filter_in_kernel(pcap_t *p);

#endif
