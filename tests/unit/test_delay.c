/*
 * The data path's delay histograms (odrsd/delay.c): a bucket holds what is
 * up to its bound, the last one what is past every bound; the maximum is
 * exact; the p99 is the bound of the bucket that holds it, never above the
 * maximum; a delay backwards in time is 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../odrsd/delay.h"

static void test_buckets(void **state)
{
	struct delay_histogram h = { 0 };

	delay_observe(&h, 0);
	delay_observe(&h, 25);
	delay_observe(&h, 26);
	delay_observe(&h, 1000);
	delay_observe(&h, 1001);
	delay_observe(&h, 100000);
	delay_observe(&h, 100001);
	assert_int_equal(h.bucket[0], 2); /* 0 and 25 */
	assert_int_equal(h.bucket[1], 1); /* 26: up to 50 */
	assert_int_equal(h.bucket[5], 1); /* 1000: up to 1 ms */
	assert_int_equal(h.bucket[6], 1); /* 1001: up to 2.5 ms */
	assert_int_equal(h.bucket[DELAY_BUCKETS - 1], 1);
	assert_int_equal(h.bucket[DELAY_BUCKETS], 1); /* past 100 ms */
	assert_int_equal(h.count, 7);
	assert_int_equal(h.sum_us, 0 + 25 + 26 + 1000 + 1001 + 100000 + 100001);
	assert_int_equal(h.max_us, 100001);
	for (size_t i = 1; i < DELAY_BUCKETS; i++)
		assert_true(delay_bucket_us[i] > delay_bucket_us[i - 1]);
	assert_int_equal(delay_bucket_us[5], 1000);
}

/* Over 1 ms: what a bench counts, 1000 µs itself excluded; a bound that is no bucket's counts nothing. */
static void test_over(void **state)
{
	struct delay_histogram h = { 0 };

	delay_observe(&h, 999);
	delay_observe(&h, 1000);
	delay_observe(&h, 1001);
	delay_observe(&h, 30000);
	delay_observe(&h, 500000);
	assert_int_equal(delay_over_us(&h, 1000), 3);
	assert_int_equal(delay_over_us(&h, 100000), 1);
	assert_int_equal(delay_over_us(&h, 25), 5);
	assert_int_equal(delay_over_us(&h, 1234), 0);
}

static void test_quantile(void **state)
{
	struct delay_histogram h = { 0 };

	assert_int_equal(delay_quantile_us(&h, 0.99), 0);
	/* 99 fast replies and one slow: the p99 is the fast bucket's bound, the p100 the maximum. */
	for (int i = 0; i < 99; i++)
		delay_observe(&h, 40);
	delay_observe(&h, 3000);
	assert_int_equal(delay_quantile_us(&h, 0.99), 50);
	assert_int_equal(delay_quantile_us(&h, 1), 3000);
	/* A second slow one moves the p99 into its bucket, capped at the maximum (3000 < 5000). */
	delay_observe(&h, 2900);
	assert_int_equal(delay_quantile_us(&h, 0.99), 3000);
	/* Past the last bound: the maximum. */
	for (int i = 0; i < 10; i++)
		delay_observe(&h, 250000);
	assert_int_equal(delay_quantile_us(&h, 0.99), 250000);
	/* A single small one: its bucket's bound capped at the maximum. */
	struct delay_histogram one = { 0 };
	delay_observe(&one, 7);
	assert_int_equal(delay_quantile_us(&one, 0.99), 7);
}

static void test_delay_us(void **state)
{
	struct timespec a = { .tv_sec = 10, .tv_nsec = 999999000 }, b = { .tv_sec = 11, .tv_nsec = 1000 };
	struct timeval captured;
	struct timespec now;

	assert_int_equal(delay_us(&a, &b), 2);
	assert_int_equal(delay_us(&b, &a), 0);
	assert_int_equal(delay_us(&a, &a), 0);
	/* A capture timestamp is realtime: one taken now is a few µs old, not an epoch away. */
	clock_gettime(CLOCK_REALTIME, &now);
	captured.tv_sec = now.tv_sec;
	captured.tv_usec = now.tv_nsec / 1000;
	assert_true(delay_since_us(&captured) < 1000000);
	captured.tv_sec += 5; /* the clock stepped back since the capture */
	assert_int_equal(delay_since_us(&captured), 0);
	clock_gettime(CLOCK_MONOTONIC, &now);
	assert_true(delay_since_mono_us(&now) < 1000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_over),
		cmocka_unit_test(test_quantile),
		cmocka_unit_test(test_delay_us),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
