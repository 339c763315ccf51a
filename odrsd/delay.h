/*
 * Short delays on the data path, in microseconds, as a fixed-bucket
 * histogram with its exact maximum: what odrsd takes from a frame's capture
 * to its ARP reply's send (reply_delay), and how long each turn of the loop
 * spends in callbacks (loop_turn). Observing is a few comparisons and
 * additions: no allocation, no system call, nothing logged, so it can run
 * for every frame and every turn. Pure: tests/unit/test_delay.c.
 *
 * A frame's capture time is the pcap header's timestamp, which the kernel
 * takes from the realtime clock (CLOCK_REALTIME) when the frame reaches the
 * capture socket; delay_since_us() compares it with the same clock. A step
 * of that clock (settimeofday, not an NTP slew) between the two reads may
 * make one delay wrong; one that comes out negative counts as 0.
 */
#ifndef ODRSD_DELAY_H
#define ODRSD_DELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* The buckets' upper bounds, in µs: 25 µs .. 100 ms, and one bucket beyond. */
#define DELAY_BUCKETS 11
extern const uint64_t delay_bucket_us[DELAY_BUCKETS];

struct delay_histogram {
	/* [i]: <= delay_bucket_us[i] and > the one before; the last: beyond. */
	uint64_t bucket[DELAY_BUCKETS + 1];
	uint64_t count, sum_us, max_us;
};

void delay_observe(struct delay_histogram *h, uint64_t us);
/*
 * The q-quantile (0 < q <= 1) as the upper bound of the bucket that holds
 * it, never above the maximum; the maximum for the bucket beyond; 0 when
 * nothing was observed.
 */
uint64_t delay_quantile_us(const struct delay_histogram *h, double q);
/* Observations over us, which must be one of delay_bucket_us (else 0). */
uint64_t delay_over_us(const struct delay_histogram *h, uint64_t us);

/* From from to to, in µs; 0 when to is earlier. */
uint64_t delay_us(const struct timespec *from, const struct timespec *to);
/* From a capture timestamp (realtime) to now on the same clock. */
uint64_t delay_since_us(const struct timeval *captured);
/* From a CLOCK_MONOTONIC time to now. */
uint64_t delay_since_mono_us(const struct timespec *from);

#endif
