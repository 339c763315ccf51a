/*
 * A domain's odrs metadata read as a VM's configuration (odrsd/metadata.c
 * over libwake's [vm] key table): golden elements as virDomainGetMetadata
 * returns them, with the keys and the [policy] defaults they give; and
 * malformed ones, each refused with the message a [vm] section would get,
 * reported under the domain's name, leaving nothing allocated.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <wake/config.h>

#include "../../odrsd/metadata.h"

struct diags {
	unsigned n;
	char file[128];
	unsigned line;
	char msg[4][512];
};

static void collect(void *ctx, const char *file, unsigned line, const char *msg)
{
	struct diags *ds = ctx;

	snprintf(ds->file, sizeof(ds->file), "%s", file);
	ds->line = line;
	if (ds->n < 4)
		snprintf(ds->msg[ds->n], sizeof(ds->msg[0]), "%s", msg);
	ds->n++;
}

/* The configuration the domains are discovered under: its [policy] gives the defaults. */
static struct wk_config *load_config(void)
{
	static const char text[] = "[odrsd]\ndiscover = libvirt\n"
				   "[policy]\nidle_timeout = 5m\nprotect = sshd cron\nwake_on = arp\n";
	char path[] = "/tmp/odrs-test-metadata.XXXXXX";
	struct wk_config *cfg = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	assert_int_equal(wk_config_load(path, NULL, NULL, &cfg), 0);
	unlink(path);
	assert_int_equal(cfg->discover, WK_DISCOVER_LIBVIRT);
	return cfg;
}

static uint32_t ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void test_golden(void **state)
{
	struct wk_config *cfg = load_config();
	struct wk_vmconf c;
	struct diags ds = { 0 };
	uint8_t ip6[16];

	/* What `virsh metadata web1 urn:odrs:1 --key odrs --set '<vm ip="198.18.0.12"/>'` stores. */
	assert_int_equal(metadata_parse(cfg, "web1", "<vm ip=\"198.18.0.12\"/>\n", collect, &ds, &c), 0);
	assert_int_equal(ds.n, 0);
	assert_string_equal(c.name, "web1");
	assert_int_equal(c.ip, ip("198.18.0.12"));
	assert_false(c.has_mac); /* read from the domain */
	assert_false(c.has_ip6);
	/* Every policy key from [policy]. */
	assert_int_equal(c.policy.idle_timeout_ms, 5 * 60 * 1000);
	assert_int_equal(c.policy.nprotect, 2);
	assert_string_equal(c.policy.protect[1], "cron");
	assert_int_equal(c.policy.wake_on, WK_WAKE_ARP);
	assert_true(c.policy.replay_syn);
	wk_vmconf_clear(&c);

	/* Both families, policy keys overridden, an entity, a namespace libvirt might keep. */
	assert_int_equal(metadata_parse(cfg, "db-2",
					"<vm xmlns=\"urn:odrs:1\" ip=\"198.18.0.13\" ip6=\"fd00::13\" "
					"idle_timeout=\"0\" wake_on=\"arp syn\" protect=\"postgres\" "
					"wake_ports=\"5432 22\" dry_run=\"yes\" sleep=\"doze\"></vm>",
					collect, &ds, &c),
			 0);
	assert_int_equal(ds.n, 0);
	assert_int_equal(c.ip, ip("198.18.0.13"));
	assert_true(c.has_ip6);
	assert_int_equal(inet_pton(AF_INET6, "fd00::13", ip6), 1);
	assert_memory_equal(c.ip6, ip6, 16);
	assert_int_equal(c.policy.idle_timeout_ms, 0);
	assert_int_equal(c.policy.wake_on, WK_WAKE_ARP | WK_WAKE_SYN);
	assert_int_equal(c.policy.nprotect, 1);
	assert_string_equal(c.policy.protect[0], "postgres");
	assert_int_equal(c.policy.nwake_ports, 2);
	assert_int_equal(c.policy.wake_ports[0], 5432);
	assert_true(c.policy.dry_run);
	assert_int_equal(c.policy.sleep, WK_SLEEP_DOZE);
	wk_vmconf_clear(&c);

	assert_int_equal(
		metadata_parse(cfg, "web3", "<vm ip=\"198.18.0.14\" protect=\"a&amp;b\"/>", collect, &ds, &c),
		0);
	assert_string_equal(c.policy.protect[0], "a&b");
	wk_vmconf_clear(&c);
	wk_config_free(cfg);
}

static void test_malformed(void **state)
{
	static const struct {
		const char *xml, *msg;
	} cases[] = {
		/* XML, and the element. */
		{ "", "its odrs metadata is not well-formed XML" },
		{ "<vm ip=\"198.18.0.12\">", "its odrs metadata is not well-formed XML" },
		{ "<vm ip=198.18.0.12/>", "its odrs metadata is not well-formed XML" },
		{ "<host ip=\"198.18.0.12\"/>",
		  "its odrs metadata is <host>: expected <vm ip=\"ADDRESS\" .../>" },
		{ "<vm><ip>198.18.0.12</ip></vm>", "has <ip> inside <vm>: keys are attributes of <vm/>" },
		/* The [vm] key table's own messages. */
		{ "<vm/>", "missing ip=\"ADDRESS\" (required)" },
		{ "<vm idle_timeout=\"5m\"/>", "missing ip=\"ADDRESS\" (required)" },
		{ "<vm ip=\"198.18.0.300\"/>", "ip: \"198.18.0.300\": expected a unicast IPv4 address" },
		{ "<vm ip=\"224.0.0.1\"/>", "ip: \"224.0.0.1\": expected a unicast IPv4 address" },
		{ "<vm ip=\"\"/>", "ip: \"\": expected a unicast IPv4 address" },
		{ "<vm ip=\"198.18.0.12\" ip6=\"ff02::1\"/>",
		  "ip6: \"ff02::1\": expected a unicast IPv6 address" },
		{ "<vm ip=\"198.18.0.12\" idle_timeout=\"5x\"/>",
		  "idle_timeout: \"5x\": expected a duration like 500ms, 30s, 2m, 1h" },
		{ "<vm ip=\"198.18.0.12\" wake_on=\"both\"/>", "wake_on: \"both\": expected" },
		{ "<vm ip=\"198.18.0.12\" node=\"n1\"/>", "unknown key \"node\" in its odrs metadata" },
		{ "<vm ip=\"198.18.0.12\" mac=\"01:00:5e:00:00:01\"/>",
		  "mac: \"01:00:5e:00:00:01\": expected a unicast MAC" },
	};
	struct wk_config *cfg = load_config();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wk_vmconf c;
		struct diags ds = { 0 };

		assert_int_equal(metadata_parse(cfg, "web1", cases[i].xml, collect, &ds, &c), -EINVAL);
		if (ds.n != 1 || !strstr(ds.msg[0], cases[i].msg))
			print_message("%s: got %u: %s\n", cases[i].xml, ds.n, ds.msg[0]);
		assert_int_equal(ds.n, 1);
		assert_non_null(strstr(ds.msg[0], cases[i].msg));
		/* Under the domain's name, as the file's name heads a file's problems; no line. */
		assert_string_equal(ds.file, "web1");
		assert_int_equal(ds.line, 0);
		assert_null(c.name);
	}
	wk_config_free(cfg);
}

/* Every problem of one element at once, as a file's are. */
static void test_every_problem(void **state)
{
	struct wk_config *cfg = load_config();
	struct wk_vmconf c;
	struct diags ds = { 0 };

	assert_int_equal(metadata_parse(cfg, "web1", "<vm ip=\"x\" idle_timeout=\"y\" colour=\"red\"/>",
					collect, &ds, &c),
			 -EINVAL);
	assert_int_equal(ds.n, 3);
	assert_non_null(strstr(ds.msg[0], "ip: \"x\""));
	assert_non_null(strstr(ds.msg[1], "idle_timeout: \"y\""));
	assert_non_null(strstr(ds.msg[2], "unknown key \"colour\""));
	/* A name the control protocol cannot carry is refused as a [vm NAME] is. */
	memset(&ds, 0, sizeof(ds));
	assert_int_equal(metadata_parse(cfg, "web 1", "<vm ip=\"198.18.0.12\"/>", collect, &ds, &c), -EINVAL);
	assert_int_equal(ds.n, 1);
	assert_non_null(strstr(ds.msg[0], "expected a domain name without spaces or '/'"));
	wk_config_free(cfg);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_every_problem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
