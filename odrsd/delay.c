/* Short delays as a fixed-bucket histogram (delay.h). */
#include "delay.h"

const uint64_t delay_bucket_us[DELAY_BUCKETS] = { 25,	50,   100,   250,   500,   1000,
						  2500, 5000, 10000, 25000, 100000 };

void delay_observe(struct delay_histogram *h, uint64_t us)
{
	size_t i = 0;

	while (i < DELAY_BUCKETS && us > delay_bucket_us[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum_us += us;
	if (us > h->max_us)
		h->max_us = us;
}

uint64_t delay_quantile_us(const struct delay_histogram *h, double q)
{
	/* The rank of the quantile, nearest rank: the smallest k with k >= q * count. */
	uint64_t rank = (uint64_t)(q * (double)h->count), seen = 0;

	if (!h->count)
		return 0;
	if ((double)rank < q * (double)h->count)
		rank++;
	if (rank < 1)
		rank = 1;
	for (size_t i = 0; i < DELAY_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank)
			return delay_bucket_us[i] < h->max_us ? delay_bucket_us[i] : h->max_us;
	}
	return h->max_us;
}

uint64_t delay_over_us(const struct delay_histogram *h, uint64_t us)
{
	uint64_t over = h->bucket[DELAY_BUCKETS];

	for (size_t i = DELAY_BUCKETS; i-- > 0 && delay_bucket_us[i] > us;)
		over += h->bucket[i];
	for (size_t i = 0; i < DELAY_BUCKETS; i++)
		if (delay_bucket_us[i] == us)
			return over;
	return 0;
}

uint64_t delay_us(const struct timespec *from, const struct timespec *to)
{
	int64_t ns = ((int64_t)to->tv_sec - from->tv_sec) * 1000000000 + (to->tv_nsec - from->tv_nsec);

	return ns > 0 ? (uint64_t)ns / 1000 : 0;
}

uint64_t delay_since_us(const struct timeval *captured)
{
	struct timespec from = { .tv_sec = captured->tv_sec, .tv_nsec = (long)captured->tv_usec * 1000 }, now;

	clock_gettime(CLOCK_REALTIME, &now);
	return delay_us(&from, &now);
}

uint64_t delay_since_mono_us(const struct timespec *from)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return delay_us(from, &now);
}
