/* Control-protocol requests: what odrsd acts on, and what it refuses and why. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <wake/ctl.h>

static int parse(const char *line, struct wk_ctl_request *req, char *err)
{
	return wk_ctl_parse(line, strlen(line), req, err, 256);
}

static void test_requests(void **state)
{
	struct wk_ctl_request req;
	char err[256];

	assert_int_equal(parse("{\"cmd\":\"status\"}", &req, err), 0);
	assert_int_equal(req.cmd, WK_CTL_STATUS);
	assert_int_equal(
		parse("{\"cmd\":\"wake\",\"vm\":\"web1\",\"progress\":true,\"future\":1}", &req, err), 0);
	assert_int_equal(req.cmd, WK_CTL_WAKE);
	assert_string_equal(req.vm, "web1");
	assert_true(req.progress);
	assert_int_equal(parse("{\"cmd\":\"hibernate\",\"vm\":\"web1\"}", &req, err), 0);
	assert_false(req.progress);
	assert_int_equal(parse("{\"cmd\":\"accept\"}", &req, err), 0);
	assert_string_equal(req.move, "");
	assert_int_equal(parse("{\"cmd\":\"accept\",\"move\":\"n2\"}", &req, err), 0);
	assert_int_equal(req.cmd, WK_CTL_ACCEPT);
	assert_string_equal(req.move, "n2");
	assert_string_equal(wk_ctl_cmd_name(WK_CTL_UNPIN), "unpin");
}

static void test_refusals(void **state)
{
	static const struct {
		const char *line, *why;
	} bad[] = {
		{ "", "bad request: " },
		{ "{\"cmd\":\"wake\"", "bad request: " },
		{ "[\"status\"]", "bad request: expected a JSON object" },
		{ "{\"vm\":\"web1\"}", "bad request: no \"cmd\"" },
		{ "{\"cmd\":7}", "bad request: no \"cmd\"" },
		{ "{\"cmd\":\"reboot\"}", "unknown command: reboot" },
		{ "{\"cmd\":\"wake\"}", "wake: expected \"vm\": a VM's name" },
		{ "{\"cmd\":\"wake\",\"vm\":\"\"}", "wake: expected \"vm\"" },
		{ "{\"cmd\":\"pin\",\"vm\":\"../etc\"}", "pin: expected \"vm\"" },
		{ "{\"cmd\":\"pin\",\"vm\":\"a b\"}", "pin: expected \"vm\"" },
		{ "{\"cmd\":\"wake\",\"vm\":\"web1\",\"progress\":1}",
		  "wake: \"progress\" must be true or false" },
		{ "{\"cmd\":\"accept\",\"move\":5}", "accept: \"move\" must name a node" },
		{ "{\"cmd\":\"status\",\"cmd\":\"wake\"}", "bad request: duplicate object key" },
		{ "{\"cmd\":\"wake\",\"vm\":\"a\\u0000b\"}", "bad request: " },
	};
	struct wk_ctl_request req;
	char err[256], longname[300];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(parse(bad[i].line, &req, err), -EINVAL);
		if (strncmp(err, bad[i].why, strlen(bad[i].why)) != 0)
			fail_msg("%s: got \"%s\", want \"%s...\"", bad[i].line, err, bad[i].why);
	}
	snprintf(longname, sizeof(longname), "{\"cmd\":\"wake\",\"vm\":\"%0200d\"}", 0);
	assert_int_equal(parse(longname, &req, err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
