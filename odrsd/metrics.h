/*
 * /metrics: odrsd's counters in the Prometheus text exposition format
 * (metrics_listen, odrsd(8)).
 *
 * Concurrency: libmicrohttpd serves HTTP in its own thread and never reads
 * the daemon's state. A scrape asks the loop for a rendering (ev_async) and
 * waits for it: the loop fills a struct metrics_snapshot from what it owns,
 * renders it into a fresh buffer and hands that over under a mutex. So a
 * scrape sees the state of the moment it came (a wake finished before the
 * scrape is in it), the loop does O(VMs) work only when someone scrapes, and
 * no lock is ever taken on the data path. A loop that does not answer within
 * METRICS_WAIT_S makes the scrape fail with 503 rather than wait forever.
 *
 * The listening socket is opened before capabilities are dropped (a port
 * below 1024 needs CAP_NET_BIND_SERVICE), the thread started after (threads
 * keep the capabilities they were created with). metrics_listen needs a
 * restart: the socket cannot be bound again once the capabilities are gone.
 */
#ifndef ODRSD_METRICS_H
#define ODRSD_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <wake.h>

#include "odrsd.h"

#define METRICS_WAIT_S 5

/* Buckets of the duration histograms, in ms: 10 ms .. 60 s. */
#define METRICS_BUCKETS 12
extern const uint64_t metrics_bucket_ms[METRICS_BUCKETS];

struct metrics_histogram {
	uint64_t bucket[METRICS_BUCKETS]; /* observations <= metrics_bucket_ms[i] and > the one before */
	uint64_t count;
	uint64_t sum_ms;
};
void metrics_histogram_observe(struct metrics_histogram *h, uint64_t ms);

enum metrics_from { METRICS_FROM_HIBERNATE = 0, METRICS_FROM_DOZE, METRICS_FROM_COUNT };
#define METRICS_TRIGGERS (WK_TRIGGER_MANUAL + 1)

/* Everything one scrape shows. */
struct metrics_snapshot {
	uint64_t wakes[METRICS_TRIGGERS][METRICS_FROM_COUNT];
	uint64_t arp_replies, syns_held, frames_malformed, pcap_drops;
	uint64_t vms[VM_STATE_COUNT];
	uint64_t memory_freed_bytes;
	bool accept_holder;
	struct metrics_histogram wake, hibernate;
	struct delay_histogram reply_delay, reply_turn, loop_turn; /* odrsd's share of the data path */
};

/* The text of s, malloc'd, in *text; its length, or -ENOMEM. */
ssize_t metrics_render(const struct metrics_snapshot *s, char **text);

/* Bind metrics_listen, if set (before the capabilities are dropped): 0 or -errno, logged. */
int metrics_open(struct odrsd *d);
/* Serve on the socket metrics_open bound: 0 or -errno, logged. */
int metrics_start(struct odrsd *d);
void metrics_stop(struct odrsd *d);
/* The lifecycle observer (wake.c registers it): wakes and hibernations into the histograms. */
void metrics_observe_change(struct odrsd *d, struct vm *vm, const struct vm_change *c);

#endif
