/*
 * The /metrics text (odrsd/metrics_text.c) against golden text: every
 * family with its HELP and TYPE, every label value from the start, the
 * histograms cumulative with exact sums in seconds (to the µs for the data
 * path's delays). The lab test
 * (tests/lab/test_wake.sh) runs promtool on a live scrape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

static const char golden[] =
	"# HELP odrs_wakes_total Wakes completed on this node (restored or resumed), by trigger and by "
	"the sleep they ended.\n"
	"# TYPE odrs_wakes_total counter\n"
	"odrs_wakes_total{trigger=\"arp\",from=\"hibernate\"} 3\n"
	"odrs_wakes_total{trigger=\"arp\",from=\"doze\"} 0\n"
	"odrs_wakes_total{trigger=\"syn\",from=\"hibernate\"} 1\n"
	"odrs_wakes_total{trigger=\"syn\",from=\"doze\"} 2\n"
	"odrs_wakes_total{trigger=\"manual\",from=\"hibernate\"} 0\n"
	"odrs_wakes_total{trigger=\"manual\",from=\"doze\"} 1\n"
	"# HELP odrs_arp_replies_total ARP replies and IPv6 neighbor advertisements sent for sleeping VMs.\n"
	"# TYPE odrs_arp_replies_total counter\n"
	"odrs_arp_replies_total 12\n"
	"# HELP odrs_syns_held_total Client SYNs held for a VM being woken.\n"
	"# TYPE odrs_syns_held_total counter\n"
	"odrs_syns_held_total 5\n"
	"# HELP odrs_frames_malformed_total Captured frames that did not parse.\n"
	"# TYPE odrs_frames_malformed_total counter\n"
	"odrs_frames_malformed_total 2\n"
	"# HELP odrs_pcap_drops_total Frames the kernel or libpcap dropped before odrsd read them.\n"
	"# TYPE odrs_pcap_drops_total counter\n"
	"odrs_pcap_drops_total 18446744073709551615\n"
	"# HELP odrs_vms Managed VMs, by state.\n"
	"# TYPE odrs_vms gauge\n"
	"odrs_vms{state=\"unknown\"} 0\n"
	"odrs_vms{state=\"running\"} 4\n"
	"odrs_vms{state=\"hibernating\"} 0\n"
	"odrs_vms{state=\"hibernated\"} 2\n"
	"odrs_vms{state=\"waking\"} 1\n"
	"odrs_vms{state=\"dozing_off\"} 0\n"
	"odrs_vms{state=\"dozing\"} 1\n"
	"odrs_vms{state=\"error\"} 1\n"
	"# HELP odrs_memory_freed_bytes Memory the sleeping VMs do not hold: the images of the "
	"hibernated ones, what the dozing ones on this node paged out.\n"
	"# TYPE odrs_memory_freed_bytes gauge\n"
	"odrs_memory_freed_bytes 402653184\n"
	"# HELP odrs_accept_holder 1 when this node answers for the sleeping VMs (the accept role), else 0.\n"
	"# TYPE odrs_accept_holder gauge\n"
	"odrs_accept_holder 1\n"
	"# HELP odrs_wake_duration_seconds Time from a wake's trigger to its VM running.\n"
	"# TYPE odrs_wake_duration_seconds histogram\n"
	"odrs_wake_duration_seconds_bucket{le=\"0.01\"} 1\n"
	"odrs_wake_duration_seconds_bucket{le=\"0.025\"} 2\n"
	"odrs_wake_duration_seconds_bucket{le=\"0.05\"} 2\n"
	"odrs_wake_duration_seconds_bucket{le=\"0.1\"} 2\n"
	"odrs_wake_duration_seconds_bucket{le=\"0.25\"} 2\n"
	"odrs_wake_duration_seconds_bucket{le=\"0.5\"} 2\n"
	"odrs_wake_duration_seconds_bucket{le=\"1\"} 3\n"
	"odrs_wake_duration_seconds_bucket{le=\"2.5\"} 4\n"
	"odrs_wake_duration_seconds_bucket{le=\"5\"} 4\n"
	"odrs_wake_duration_seconds_bucket{le=\"10\"} 4\n"
	"odrs_wake_duration_seconds_bucket{le=\"30\"} 4\n"
	"odrs_wake_duration_seconds_bucket{le=\"60\"} 5\n"
	"odrs_wake_duration_seconds_bucket{le=\"+Inf\"} 7\n"
	"odrs_wake_duration_seconds_sum 242.032\n"
	"odrs_wake_duration_seconds_count 7\n"
	"# HELP odrs_hibernate_duration_seconds Time a hibernation took to save its VM.\n"
	"# TYPE odrs_hibernate_duration_seconds histogram\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"0.01\"} 0\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"0.025\"} 0\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"0.05\"} 0\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"0.1\"} 0\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"0.25\"} 0\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"0.5\"} 0\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"1\"} 0\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"2.5\"} 1\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"5\"} 1\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"10\"} 1\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"30\"} 1\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"60\"} 1\n"
	"odrs_hibernate_duration_seconds_bucket{le=\"+Inf\"} 1\n"
	"odrs_hibernate_duration_seconds_sum 2.1\n"
	"odrs_hibernate_duration_seconds_count 1\n"
	"# HELP odrs_reply_delay_seconds Time from an ARP request's or neighbor solicitation's capture (the "
	"kernel's "
	"receive time) to its reply's send.\n"
	"# TYPE odrs_reply_delay_seconds histogram\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.000025\"} 1\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.00005\"} 1\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.0001\"} 1\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.00025\"} 1\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.0005\"} 1\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.001\"} 2\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.0025\"} 3\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.005\"} 3\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.01\"} 3\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.025\"} 3\n"
	"odrs_reply_delay_seconds_bucket{le=\"0.1\"} 3\n"
	"odrs_reply_delay_seconds_bucket{le=\"+Inf\"} 4\n"
	"odrs_reply_delay_seconds_sum 0.152021\n"
	"odrs_reply_delay_seconds_count 4\n"
	"# HELP odrs_reply_turn_seconds Of odrs_reply_delay_seconds, the part after the event loop's "
	"wake-up: from "
	"the start of the loop turn that sent the reply to its send.\n"
	"# TYPE odrs_reply_turn_seconds histogram\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.000025\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.00005\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.0001\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.00025\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.0005\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.001\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.0025\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.005\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.01\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.025\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"0.1\"} 1\n"
	"odrs_reply_turn_seconds_bucket{le=\"+Inf\"} 1\n"
	"odrs_reply_turn_seconds_sum 0.00001\n"
	"odrs_reply_turn_seconds_count 1\n"
	"# HELP odrs_loop_turn_seconds Time each turn of odrsd's event loop spent in callbacks, from its "
	"wake-up to "
	"its next wait.\n"
	"# TYPE odrs_loop_turn_seconds histogram\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.000025\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.00005\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.0001\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.00025\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.0005\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.001\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.0025\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.005\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.01\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.025\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"0.1\"} 0\n"
	"odrs_loop_turn_seconds_bucket{le=\"+Inf\"} 0\n"
	"odrs_loop_turn_seconds_sum 0\n"
	"odrs_loop_turn_seconds_count 0\n";

/* A bucket holds what is <= its bound: 10 ms is in le="0.01", 11 ms is not. */
static void test_buckets(void **state)
{
	struct metrics_histogram h = { 0 };

	metrics_histogram_observe(&h, 10);
	metrics_histogram_observe(&h, 11);
	metrics_histogram_observe(&h, 60000);
	metrics_histogram_observe(&h, 60001);
	assert_int_equal(h.bucket[0], 1);
	assert_int_equal(h.bucket[1], 1);
	assert_int_equal(h.bucket[METRICS_BUCKETS - 1], 1);
	assert_int_equal(h.count, 4);
	assert_int_equal(h.sum_ms, 120022);
	for (size_t i = 1; i < METRICS_BUCKETS; i++)
		assert_true(metrics_bucket_ms[i] > metrics_bucket_ms[i - 1]);
	assert_int_equal(metrics_bucket_ms[0], 10);
	assert_int_equal(metrics_bucket_ms[METRICS_BUCKETS - 1], 60000);
}

static void test_golden(void **state)
{
	static const uint64_t wakes_ms[] = { 7, 12, 800, 2213, 59000, 60000 + 1, 120000 - 1 };
	struct metrics_snapshot s = {
		.wakes = { [WK_TRIGGER_ARP] = { 3, 0 },
			   [WK_TRIGGER_SYN] = { 1, 2 },
			   [WK_TRIGGER_MANUAL] = { 0, 1 } },
		.arp_replies = 12,
		.syns_held = 5,
		.frames_malformed = 2,
		.pcap_drops = UINT64_MAX,
		.vms = { [VM_RUNNING] = 4,
			 [VM_HIBERNATED] = 2,
			 [VM_WAKING] = 1,
			 [VM_DOZING] = 1,
			 [VM_ERROR] = 1 },
		.memory_freed_bytes = 384ULL << 20,
		.accept_holder = true,
	};
	char *text = NULL;
	ssize_t len;

	for (size_t i = 0; i < sizeof(wakes_ms) / sizeof(wakes_ms[0]); i++)
		metrics_histogram_observe(&s.wake, wakes_ms[i]);
	metrics_histogram_observe(&s.hibernate, 2100);
	/* Up to 1 ms is in le="0.001"; past the last bound only in +Inf; the sums exact to the µs. */
	delay_observe(&s.reply_delay, 20);
	delay_observe(&s.reply_delay, 1000);
	delay_observe(&s.reply_delay, 1001);
	delay_observe(&s.reply_delay, 150000);
	delay_observe(&s.reply_turn, 10);
	len = metrics_render(&s, &text);
	assert_non_null(text);
	assert_int_equal(len, (ssize_t)strlen(text));
	assert_string_equal(text, golden);
	free(text);
}

/* Nothing happened yet: every series is there, at 0. */
static void test_empty(void **state)
{
	struct metrics_snapshot s = { 0 };
	char *text = NULL;

	assert_true(metrics_render(&s, &text) > 0);
	assert_non_null(strstr(text, "odrs_wakes_total{trigger=\"manual\",from=\"doze\"} 0\n"));
	assert_non_null(strstr(text, "odrs_vms{state=\"error\"} 0\n"));
	assert_non_null(strstr(text, "odrs_wake_duration_seconds_bucket{le=\"+Inf\"} 0\n"
				     "odrs_wake_duration_seconds_sum 0\n"
				     "odrs_wake_duration_seconds_count 0\n"));
	assert_non_null(strstr(text, "odrs_accept_holder 0\n"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
