/*
 * odrsctl report (tools/odrsctl/report.c) on a fixture event log with two
 * rotations (one gzip'd, one plain, as logrotate's delaycompress leaves
 * them): sleeps clipped to the window, a sleep ended by a wake_done without
 * wake_start, a doze's bytes_out, events after the window ignored, a VM
 * with no sleep, a line that is not JSON; golden text and JSON.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "odrsctl.h"

/* What report.c's cmd_report needs of odrsctl's main.c, unused here. */
const char *ctl_event_log_path(struct ctl *c)
{
	return NULL;
}
void usage_error(const char *fmt, ...)
{
}

static char dir[] = "/tmp/odrs-test-report-XXXXXX";
static char log_path[256];

static const char rotated2[] = /* events.jsonl.2.gz */
	"{\"ts\":\"2026-11-22T23:00:00.000Z\",\"event\":\"hibernate_done\",\"node\":\"n1\",\"vm\":\"a\","
	"\"bytes\":1073741824,\"ms\":2000}\n"
	"{\"ts\":\"2026-11-23T01:00:00.000Z\",\"event\":\"wake_start\",\"node\":\"n1\",\"vm\":\"a\","
	"\"trigger\":\"syn\",\"target_node\":\"n1\"}\n"
	"{\"ts\":\"2026-11-23T01:00:01.500Z\",\"event\":\"wake_done\",\"node\":\"n1\",\"vm\":\"a\",\"ms\":"
	"1500}\n";
static const char rotated1[] = /* events.jsonl.1 */
	"{\"ts\":\"2026-11-23T02:00:00.000Z\",\"event\":\"doze_done\",\"node\":\"n1\",\"vm\":\"b\","
	"\"bytes_out\":536870912,\"resident_bytes\":1,\"ms\":40}\n"
	"{\"ts\":\"2026-11-23T03:00:00.000Z\",\"event\":\"wake_start\",\"node\":\"n1\",\"vm\":\"b\"}\n"
	"{\"ts\":\"2026-11-23T03:00:00.020Z\",\"event\":\"wake_done\",\"node\":\"n1\",\"vm\":\"b\",\"ms\":20}"
	"\n"
	"not json\n"
	"{\"ts\":\"2026-11-23T04:00:00.000Z\",\"event\":\"hibernate_done\",\"node\":\"n1\",\"vm\":\"a\","
	"\"bytes\":2147483648}\n";
static const char current[] = /* events.jsonl: the last line unterminated, as a writer leaves it */
	"{\"ts\":\"2026-11-23T05:00:00.000Z\",\"event\":\"wake_done\",\"node\":\"n1\",\"vm\":\"a\",\"ms\":"
	"3000}\n"
	"{\"ts\":\"2026-11-23T06:00:00.000Z\",\"event\":\"hibernate_done\",\"node\":\"n1\",\"vm\":\"b\","
	"\"bytes\":1073741824}\n"
	"{\"ts\":\"2026-11-23T07:00:00.000Z\",\"event\":\"arp_reply\",\"node\":\"n1\",\"vm\":\"c\"}\n"
	"{\"ts\":\"2026-11-23T13:00:00.000Z\",\"event\":\"wake_done\",\"node\":\"n1\",\"vm\":\"b\",\"ms\":"
	"100}";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	char path[300];
	gzFile gz;

	if (!mkdtemp(dir))
		return -1;
	snprintf(log_path, sizeof(log_path), "%s/events.jsonl", dir);
	snprintf(path, sizeof(path), "%s.2.gz", log_path);
	if (!(gz = gzopen(path, "wb")) || gzputs(gz, rotated2) < 0 || gzclose(gz) != Z_OK)
		return -1;
	snprintf(path, sizeof(path), "%s.1", log_path);
	write_file(path, rotated1);
	write_file(log_path, current);
	return 0;
}

static int teardown(void **state)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* The report of o as text (freed by the caller), with its exit code checked. */
static char *run(struct report_opts *o, int want_rc)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	o->log = log_path;
	assert_int_equal(report_write(o, f), want_rc);
	assert_int_equal(fclose(f), 0);
	return text;
}

static int64_t at(const char *ts)
{
	int64_t ms;

	assert_int_equal(report_parse_time(ts, &ms), 0);
	return ms;
}

static void test_parse_time(void **state)
{
	static const char *const bad[] = { "",
					   "2026-11-23T",
					   "2026-11-23 09:00:00",
					   "2026-13-01",
					   "2026-11-23T24:00:00Z",
					   "2026-11-23T09:00:00.Z",
					   "2026-11-23T09:00:00Zx",
					   "26-11-23",
					   "24h" };
	int64_t ms;

	assert_int_equal(at("1970-01-01"), 0);
	assert_int_equal(at("1970-01-01T00:00:01.5Z"), 1500);
	assert_int_equal(at("1970-01-02T00:00:00.001Z"), 86400001);
	assert_int_equal(at("1970-01-01T00:00:00.1239Z"), 123); /* beyond ms: cut */
	assert_int_equal(at("2026-11-23T09:00:00"), at("2026-11-23T09:00:00.000Z"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (report_parse_time(bad[i], &ms) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
}

static void test_window(void **state)
{
	struct report_opts o = {
		.has_since = true,
		.since_ms = at("2026-11-23T00:00:00Z"),
		.until_ms = at("2026-11-23T12:00:00Z"),
	};
	char *text = run(&o, EXIT_DONE);

	assert_string_equal(text, "from 2026-11-23T00:00:00.000Z to 2026-11-23T12:00:00.000Z (12.0 h)\n"
				  "VM  ASLEEP  WAKES  MEDIAN_MS     P90_MS  GIB_HOURS\n"
				  "a    16.7%      2       1500       3000      3.000\n"
				  "b    58.3%      1         20         20      6.500\n"
				  "c     0.0%      0          -          -      0.000\n");
	free(text);
}

/* Without --since the window starts at the first event: a's first sleep counts whole. */
static void test_from_first_event(void **state)
{
	struct report_opts o = { .until_ms = at("2026-11-23T12:00:00Z"), .vm = "a" };
	char *text = run(&o, EXIT_DONE);

	assert_string_equal(text, "from 2026-11-22T23:00:00.000Z to 2026-11-23T12:00:00.000Z (13.0 h)\n"
				  "VM  ASLEEP  WAKES  MEDIAN_MS     P90_MS  GIB_HOURS\n"
				  "a    23.1%      2       1500       3000      4.000\n");
	free(text);
}

static void test_json(void **state)
{
	struct report_opts o = {
		.has_since = true,
		.since_ms = at("2026-11-23T00:00:00Z"),
		.until_ms = at("2026-11-23T12:00:00Z"),
		.json = true,
	};
	char *text = run(&o, EXIT_DONE);

	assert_string_equal(
		text,
		"{\"since\":\"2026-11-23T00:00:00.000Z\",\"until\":\"2026-11-23T12:00:00.000Z\",\"vms\":["
		"{\"vm\":\"a\",\"asleep_share\":0.166667,\"asleep_s\":7200,\"wakes\":2,\"wake_ms_median\":"
		"1500,"
		"\"wake_ms_p90\":3000,\"memory_gib_hours\":3.0},"
		"{\"vm\":\"b\",\"asleep_share\":0.583333,\"asleep_s\":25200,\"wakes\":1,\"wake_ms_median\":"
		"20,"
		"\"wake_ms_p90\":20,\"memory_gib_hours\":6.5},"
		"{\"vm\":\"c\",\"asleep_share\":0.0,\"asleep_s\":0,\"wakes\":0,\"wake_ms_median\":null,"
		"\"wake_ms_p90\":null,\"memory_gib_hours\":0.0}]}\n");
	free(text);
}

/* A VM the log never names is still reported, with nothing; a missing log fails. */
static void test_unknown_vm_and_missing_log(void **state)
{
	struct report_opts o = { .has_since = true, .since_ms = 0, .until_ms = 3600000, .vm = "zz" };
	char *text = run(&o, EXIT_DONE), path[sizeof(log_path)];

	assert_non_null(strstr(text, "\nzz    0.0%      0          -          -      0.000\n"));
	free(text);
	snprintf(path, sizeof(path), "%s", log_path);
	snprintf(log_path, sizeof(log_path), "%s/none.jsonl", dir);
	text = run(&o, EXIT_FAILED);
	assert_string_equal(text, "");
	free(text);
	snprintf(log_path, sizeof(log_path), "%s", path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_from_first_event),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_unknown_vm_and_missing_log),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
