/*
 * The configuration loader: every key good and bad, defaults, per-VM
 * overrides, duplicates, whole-config checks, and every problem reported
 * with the right line. Run from the project root (tests/run-unit.sh does).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <wake/config.h>

#define MAX_DIAGS 64

struct diags {
	unsigned n;
	struct {
		char file[256];
		unsigned line;
		char msg[512];
	} d[MAX_DIAGS];
};

static void collect(void *ctx, const char *file, unsigned line, const char *msg)
{
	struct diags *ds = ctx;

	assert_non_null(file);
	assert_non_null(msg);
	assert_true(msg[0] != '\0');
	if (ds->n < MAX_DIAGS) {
		snprintf(ds->d[ds->n].file, sizeof(ds->d[0].file), "%s", file);
		ds->d[ds->n].line = line;
		snprintf(ds->d[ds->n].msg, sizeof(ds->d[0].msg), "%s", msg);
	}
	ds->n++;
}

static void print_diags(const struct diags *ds)
{
	unsigned i;

	for (i = 0; i < ds->n && i < MAX_DIAGS; i++)
		print_message("  %s:%u: %s\n", ds->d[i].file, ds->d[i].line, ds->d[i].msg);
}

/* Is there a diagnostic at line whose message contains text? */
static bool has_diag(const struct diags *ds, unsigned line, const char *text)
{
	unsigned i;

	for (i = 0; i < ds->n && i < MAX_DIAGS; i++)
		if (ds->d[i].line == line && strstr(ds->d[i].msg, text) != NULL)
			return true;
	print_message("no diagnostic at line %u containing \"%s\"; got:\n", line, text);
	print_diags(ds);
	return false;
}

static int load_file(const char *path, struct wk_config **cfg, struct diags *ds)
{
	memset(ds, 0, sizeof(*ds));
	return wk_config_load(path, collect, ds, cfg);
}

/* Load text as a configuration file; the caller frees *cfg. */
static int load_text(const char *text, struct wk_config **cfg, struct diags *ds)
{
	char path[] = "/tmp/odrs-test-config.XXXXXX";
	int fd = mkstemp(path), rc;
	size_t len = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	rc = load_file(path, cfg, ds);
	unlink(path);
	return rc;
}

static void expect_clean(const char *text)
{
	struct wk_config *cfg;
	struct diags ds;
	int rc = load_text(text, &cfg, &ds);

	if (rc != 0 || ds.n != 0) {
		print_message("expected a clean load of:\n%s\ngot rc %d and:\n", text, rc);
		print_diags(&ds);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(ds.n, 0);
	assert_non_null(cfg);
	wk_config_free(cfg);
}

static uint32_t ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void test_defaults(void **state)
{
	struct wk_config *cfg;
	struct diags ds;
	char host[HOST_NAME_MAX + 1] = "";
	const struct wk_vmconf *vm;

	assert_int_equal(load_file("tests/config/good-minimal.conf", &cfg, &ds), 0);
	assert_int_equal(ds.n, 0);
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	assert_string_equal(cfg->path, "tests/config/good-minimal.conf");
	assert_string_equal(cfg->node, host);
	assert_string_equal(cfg->interface, "br0");
	assert_string_equal(cfg->snapshot_dir, "/srv/odrs/snap");
	assert_string_equal(cfg->libvirt_uri, "qemu:///system");
	assert_string_equal(cfg->control_socket, "/run/odrs/odrsd.sock");
	assert_string_equal(cfg->event_log, "/var/log/odrs/events.jsonl");
	assert_string_equal(cfg->state_dir, "/var/lib/odrs");
	assert_null(cfg->metrics_listen); /* off */
	assert_int_equal(cfg->wake_concurrency, 4);
	assert_int_equal(cfg->hibernate_concurrency, 2);
	assert_int_equal(cfg->syn_hold_per_vm, 8);
	assert_int_equal(cfg->syn_hold_total, 4096);
	assert_int_equal(cfg->wake_timeout_ms, 60000);
	assert_int_equal(cfg->policy.idle_timeout_ms, 120000);
	assert_true(cfg->policy.load_threshold == 0.5);
	assert_int_equal(cfg->policy.nprotect, 0);
	assert_int_equal(cfg->policy.probe, WK_PROBE_AGENT);
	assert_int_equal(cfg->policy.wake_on, WK_WAKE_ARP | WK_WAKE_SYN | WK_WAKE_ESTABLISHED);
	assert_int_equal(cfg->policy.idle_connections, WK_IDLE_CONNECTIONS_IGNORE);
	assert_int_equal(cfg->policy.nwake_udp_ports, 0);
	assert_false(cfg->policy.activity_udp);
	assert_int_equal(cfg->policy.nwake_ports, 0);
	assert_int_equal(cfg->policy.nignore_sources, 0);
	assert_true(cfg->policy.replay_syn);
	assert_false(cfg->policy.dry_run);
	assert_int_equal(cfg->policy.shrink, WK_SHRINK_NONE);
	assert_int_equal(cfg->backend, WK_BACKEND_NONE);
	assert_null(cfg->etcd);
	assert_int_equal(cfg->accept_term_ms, 60000);
	assert_int_equal(cfg->lease_ttl_ms, 5000);
	assert_int_equal(cfg->wake_spacing_ms, 0);
	assert_int_equal(cfg->wakes_per_minute, 60);
	assert_int_equal(cfg->policy.wakes_per_hour, 0);
	assert_int_equal(cfg->memory_bytes, 0);
	assert_int_equal(cfg->cpus, 0);
	assert_int_equal(cfg->retrain_rate, 1000);
	assert_int_equal(cfg->retrain_delay_ms, 5000);
	assert_int_equal(cfg->retrain_refresh_ms, 60000);
	assert_int_equal(cfg->nvms, 1);
	vm = wk_config_vm(cfg, "web1");
	assert_ptr_equal(vm, &cfg->vms[0]);
	assert_null(wk_config_vm(cfg, "web2"));
	assert_int_equal(vm->ip, ip("198.18.0.10"));
	assert_false(vm->has_mac);
	assert_int_equal(vm->line, 2);
	/* The VM's policy is [policy]'s, defaults included. */
	assert_int_equal(vm->policy.idle_timeout_ms, 120000);
	assert_int_equal(vm->policy.wake_on, WK_WAKE_ARP | WK_WAKE_SYN | WK_WAKE_ESTABLISHED);
	assert_true(vm->policy.replay_syn);
	wk_config_free(cfg);
}

/* Open connections and UDP: the keys, a [vm] override, and their wrong values. */
static void test_flow_keys(void **state)
{
	static const char text[] = "[policy]\n"
				   "wake_on = established syn\n"
				   "idle_connections = keep\n"
				   "wake_udp_ports = 53 51820\n"
				   "activity_udp = yes\n"
				   "[vm a]\n"
				   "ip = 198.18.0.10\n"
				   "wake_udp_ports = none\n"
				   "idle_connections = ignore\n";
	struct wk_config *cfg;
	struct diags ds;

	assert_int_equal(load_text(text, &cfg, &ds), 0);
	assert_int_equal(cfg->policy.wake_on, WK_WAKE_SYN | WK_WAKE_ESTABLISHED);
	assert_int_equal(cfg->policy.idle_connections, WK_IDLE_CONNECTIONS_KEEP);
	assert_int_equal(cfg->policy.nwake_udp_ports, 2);
	assert_int_equal(cfg->policy.wake_udp_ports[1], 51820);
	assert_true(cfg->policy.activity_udp);
	assert_int_equal(cfg->vms[0].policy.nwake_udp_ports, 0);
	assert_int_equal(cfg->vms[0].policy.idle_connections, WK_IDLE_CONNECTIONS_IGNORE);
	assert_true(cfg->vms[0].policy.activity_udp);
	wk_config_free(cfg);

	assert_int_equal(load_text("[policy]\nidle_connections = always\nwake_udp_ports = any\n", &cfg, &ds),
			 -EINVAL);
	assert_int_equal(ds.n, 2);
	assert_true(has_diag(&ds, 2, "idle_connections: \"always\": expected ignore or keep"));
	assert_true(has_diag(&ds, 3,
			     "wake_udp_ports: \"any\": expected \"none\" or port numbers from 1 to 65535, "
			     "separated by spaces"));
}

static void test_every_key_set(void **state)
{
	static const char text[] = "[odrsd]\n"
				   "node = node-2.lab\n"
				   "interface = odrsbr0\n"
				   "snapshot_dir = /mnt/nfs/snap\n"
				   "libvirt_uri = qemu+ssh://root@198.18.2.1/system\n"
				   "control_socket = /tmp/odrsd.sock\n"
				   "event_log = /tmp/events.jsonl\n"
				   "state_dir = /tmp/state\n"
				   "wake_concurrency = 256\n"
				   "hibernate_concurrency = 64\n"
				   "syn_hold_per_vm = 1024\n"
				   "syn_hold_total = 1000000\n"
				   "wake_timeout = 1h\n"
				   "[policy]\n"
				   "idle_timeout = 720h\n"
				   "load_threshold = 1000\n"
				   "protect = cron rsync sshd\n"
				   "probe = ssh\n"
				   "wake_on = syn\n"
				   "wake_ports = 1 80 65535\n"
				   "ignore_sources = 198.18.0.1 198.18.0.2 fd00::53\n"
				   "replay_syn = no\n"
				   "dry_run = yes\n"
				   "shrink = caches\n"
				   "[cluster]\n"
				   "backend = etcd\n"
				   "etcd = http://198.18.2.1:2379,https://198.18.2.2:2379\n"
				   "accept_term = 24h\n"
				   "lease_ttl = 500ms\n" /* below 1s: must be refused, checked below */
				   "memory = 2G\n"
				   "cpus = 1000\n"
				   "retrain_rate = 50\n"
				   "retrain_delay = 0\n"
				   "retrain_refresh = 2m\n"
				   "[vm a]\n"
				   "ip = 198.18.0.10\n"
				   "mac = 52:54:00:AB:cd:10\n";
	struct wk_config *cfg;
	struct diags ds;
	char *fixed;

	/* lease_ttl is the only bad line: fix it and everything must hold. */
	assert_int_equal(load_text(text, &cfg, &ds), -EINVAL);
	assert_null(cfg);
	assert_int_equal(ds.n, 1);
	assert_true(has_diag(&ds, 29, "lease_ttl: \"500ms\": expected a duration from 1s to 1h"));

	fixed = strdup(text);
	assert_non_null(fixed);
	memcpy(strstr(fixed, "500ms"), "1s   ", 5);
	assert_int_equal(load_text(fixed, &cfg, &ds), 0);
	free(fixed);
	assert_int_equal(ds.n, 0);
	assert_string_equal(cfg->node, "node-2.lab");
	assert_string_equal(cfg->interface, "odrsbr0");
	assert_string_equal(cfg->snapshot_dir, "/mnt/nfs/snap");
	assert_string_equal(cfg->libvirt_uri, "qemu+ssh://root@198.18.2.1/system");
	assert_string_equal(cfg->control_socket, "/tmp/odrsd.sock");
	assert_string_equal(cfg->event_log, "/tmp/events.jsonl");
	assert_string_equal(cfg->state_dir, "/tmp/state");
	assert_int_equal(cfg->wake_concurrency, 256);
	assert_int_equal(cfg->hibernate_concurrency, 64);
	assert_int_equal(cfg->syn_hold_per_vm, 1024);
	assert_int_equal(cfg->syn_hold_total, 1000000);
	assert_int_equal(cfg->wake_timeout_ms, 3600000);
	assert_int_equal(cfg->policy.idle_timeout_ms, 720ULL * 3600000);
	assert_true(cfg->policy.load_threshold == 1000);
	assert_int_equal(cfg->policy.nprotect, 3);
	assert_string_equal(cfg->policy.protect[0], "cron");
	assert_string_equal(cfg->policy.protect[2], "sshd");
	assert_int_equal(cfg->policy.probe, WK_PROBE_SSH);
	assert_int_equal(cfg->policy.wake_on, WK_WAKE_SYN);
	assert_int_equal(cfg->policy.nwake_ports, 3);
	assert_int_equal(cfg->policy.wake_ports[0], 1);
	assert_int_equal(cfg->policy.wake_ports[1], 80);
	assert_int_equal(cfg->policy.wake_ports[2], 65535);
	assert_int_equal(cfg->policy.nignore_sources, 3);
	{
		struct wk_addr want4 = wk_addr_v4(ip("198.18.0.2")), want6;

		assert_int_equal(inet_pton(AF_INET6, "fd00::53", want6.b), 1);
		assert_memory_equal(&cfg->policy.ignore_sources[1], &want4, sizeof(want4));
		assert_memory_equal(&cfg->policy.ignore_sources[2], &want6, sizeof(want6));
	}
	assert_false(cfg->policy.replay_syn);
	assert_true(cfg->policy.dry_run);
	assert_int_equal(cfg->policy.shrink, WK_SHRINK_CACHES);
	assert_int_equal(cfg->backend, WK_BACKEND_ETCD);
	assert_string_equal(cfg->etcd, "http://198.18.2.1:2379,https://198.18.2.2:2379");
	assert_int_equal(cfg->accept_term_ms, 24 * 3600000);
	assert_int_equal(cfg->lease_ttl_ms, 1000);
	assert_int_equal(cfg->memory_bytes, 2ULL << 30);
	assert_int_equal(cfg->cpus, 1000);
	assert_int_equal(cfg->retrain_rate, 50);
	assert_int_equal(cfg->retrain_delay_ms, 0);
	assert_int_equal(cfg->retrain_refresh_ms, 120000);
	assert_int_equal(cfg->nvms, 1);
	assert_true(cfg->vms[0].has_mac);
	assert_memory_equal(cfg->vms[0].mac, "\x52\x54\x00\xab\xcd\x10", 6);
	assert_int_equal(cfg->vms[0].policy.probe, WK_PROBE_SSH);
	assert_int_equal(cfg->vms[0].policy.nwake_ports, 3);
	wk_config_free(cfg);
}

/* Values at the edges of what each key accepts. */
static void test_good_values(void **state)
{
	static const char *const cases[] = {
		"[odrsd]\nwake_concurrency = 1\n",
		"[odrsd]\nhibernate_concurrency = 1\n",
		"[odrsd]\nsyn_hold_per_vm = 1\nsyn_hold_total = 1\n",
		"[odrsd]\nwake_timeout = 1000ms\n",
		"[odrsd]\nnode = a\n",
		"[odrsd]\ninterface = enp0s31f6.100\n",
		"[odrsd]\nsnapshot_dir = /srv/odrs/snap dir with spaces\n",
		"[odrsd]\nlibvirt_uri = test:///default\n",
		"[odrsd]\ndiscover = libvirt\n",
		"[odrsd]\ndiscover = none\n",
		"[policy]\nidle_timeout = 0\n",
		"[policy]\nidle_timeout = 0s\n",
		"[policy]\nidle_timeout = 1s\n",
		"[policy]\nload_threshold = 0\n",
		"[policy]\nload_threshold = .25\n",
		"[policy]\nload_threshold = 999.999\n",
		"[policy]\nprotect =\n",
		"[policy]\nprobe = agent\n",
		"[policy]\nprobe = none\n",
		"[policy]\nwake_on = arp\n",
		"[policy]\nwake_on = syn arp\n",
		"[policy]\nwake_on = none\n",
		"[policy]\nwake_on =\n",
		"[policy]\nwake_ports = any\n",
		"[policy]\nwake_ports = 22\t80   443\n",
		"[policy]\nignore_sources =\n",
		"[policy]\nshrink = balloon\n",
		"[policy]\nreplay_syn = yes\n",
		"[cluster]\nbackend = none\n",
		"[cluster]\netcd = http://e1:2379\n",
		"[cluster]\naccept_term = 2s\nlease_ttl = 1s\n",
		"[vm x]\nip = 198.18.0.1\nmac = 02:00:00:00:00:01\n",
		"[vm web-1.example_com]\nip = 10.0.0.1\n",
		"[odrsd]\ncheck_interval = 1s\nprobe_timeout = 1s\n",
		"[odrsd]\ncheck_interval = 1h\nprobe_timeout = 5m\n",
		"",
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_clean(cases[i]);
}

/*
 * One bad value per case, always on line 2 (the [vm] cases put the key
 * before ip): exactly one diagnostic, naming the key and the value.
 */
static void test_bad_values(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{ "[odrsd]\nnode =\n", "node: \"\": expected a value" },
		{ "[odrsd]\nnode = my node\n", "node: \"my node\": expected a node name" },
		{ "[odrsd]\nstate_dir = /var/\x01lib\n", "state_dir: \"/var/?lib\": expected printable" },
		{ "[odrsd]\ninterface = a-very-long-interface0\n", "expected a network interface name" },
		{ "[odrsd]\ninterface = br/0\n", "expected a network interface name" },
		{ "[odrsd]\nsnapshot_dir = srv/snap\n",
		  "snapshot_dir: \"srv/snap\": expected an absolute path" },
		{ "[odrsd]\nlibvirt_uri = qemu\n", "expected a libvirt URI" },
		{ "[odrsd]\ndiscover = yes\n", "discover: \"yes\": expected none or libvirt" },
		{ "[odrsd]\ncontrol_socket = run/odrsd.sock\n", "expected an absolute path of at most 107" },
		{ "[odrsd]\ncontrol_socket = "
		  "/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
		  "at most 107 characters" },
		{ "[odrsd]\nevent_log = events.jsonl\n",
		  "event_log: \"events.jsonl\": expected an absolute path" },
		{ "[odrsd]\nstate_dir = ~/odrs\n", "state_dir: \"~/odrs\": expected an absolute path" },
		{ "[odrsd]\nwake_concurrency = 0\n",
		  "wake_concurrency: \"0\": expected a whole number from 1 to 256" },
		{ "[odrsd]\nwake_concurrency = 257\n", "expected a whole number from 1 to 256" },
		{ "[odrsd]\nwake_concurrency = -1\n", "expected a whole number from 1 to 256" },
		{ "[odrsd]\nwake_concurrency = 4k\n", "expected a whole number from 1 to 256" },
		{ "[odrsd]\nwake_concurrency = 99999999999999999999999\n", "from 1 to 256" },
		{ "[odrsd]\nhibernate_concurrency = 65\n", "expected a whole number from 1 to 64" },
		{ "[odrsd]\nsyn_hold_per_vm = 1025\n", "expected a whole number from 1 to 1024" },
		{ "[odrsd]\nsyn_hold_total = 1000001\n", "expected a whole number from 1 to 1000000" },
		{ "[odrsd]\nwake_timeout = 0\n", "wake_timeout: \"0\": expected a duration from 1s to 1h" },
		{ "[odrsd]\nwake_timeout = 61m\n", "expected a duration from 1s to 1h" },
		{ "[odrsd]\nwake_timeout = 60\n", "expected a duration like 500ms, 30s, 2m, 1h" },
		/* The bounds odrs.conf(5) gives. */
		{ "[odrsd]\ncheck_interval = 999ms\n",
		  "check_interval: \"999ms\": expected a duration from 1s to 1h" },
		{ "[odrsd]\ncheck_interval = 61m\n", "expected a duration from 1s to 1h" },
		{ "[odrsd]\nprobe_timeout = 500ms\n",
		  "probe_timeout: \"500ms\": expected a duration from 1s to 5m" },
		{ "[odrsd]\nprobe_timeout = 301s\n", "expected a duration from 1s to 5m" },
		{ "[odrsd]\nmetrics_listen = 9464\n",
		  "metrics_listen: \"9464\": expected ADDR:PORT like 198.18.1.1:9464 or [fd00::1]:9464" },
		{ "[odrsd]\nmetrics_listen = fd00::1:9464\n", "expected ADDR:PORT" },
		{ "[policy]\nidle_timeout = 5x\n",
		  "idle_timeout: \"5x\": expected a duration like 500ms, 30s, 2m, 1h" },
		{ "[policy]\nidle_timeout = 999ms\n", "expected 0 (never) or a duration from 1s to 720h" },
		{ "[policy]\nidle_timeout = 721h\n", "expected 0 (never) or a duration from 1s to 720h" },
		{ "[policy]\nload_threshold = 1000.5\n",
		  "load_threshold: \"1000.5\": expected a number from 0 to 1000" },
		{ "[policy]\nload_threshold = -0.5\n", "expected a number from 0 to 1000" },
		{ "[policy]\nload_threshold = nan\n", "expected a number from 0 to 1000" },
		{ "[policy]\nload_threshold = 1e2\n", "expected a number from 0 to 1000" },
		{ "[policy]\nload_threshold = .\n", "expected a number from 0 to 1000" },
		{ "[policy]\nprobe = icmp\n", "probe: \"icmp\": expected agent, ssh or none" },
		/* "both" is no value: the message lists what may be written. */
		{ "[policy]\nwake_on = arp icmp\n",
		  "wake_on: \"icmp\": expected \"arp syn established\", arp, syn, established or none" },
		{ "[policy]\nwake_on = both\n",
		  "wake_on: \"both\": expected \"arp syn established\", arp, syn, established or none" },
		{ "[policy]\nwake_on = arp none\n",
		  "wake_on: \"none\": expected \"arp syn established\", arp, syn, established or none" },
		{ "[policy]\nwake_ports =\n", "wake_ports: \"\": expected \"any\" or port numbers" },
		{ "[policy]\nwake_ports = 22 0\n",
		  "wake_ports: \"0\": expected \"any\" or port numbers from 1 to 65535" },
		{ "[policy]\nwake_ports = 65536\n", "wake_ports: \"65536\"" },
		{ "[policy]\nwake_ports = 22,80\n", "wake_ports: \"22,80\"" },
		{ "[policy]\nwake_ports = any 22\n", "wake_ports: \"any\"" },
		{ "[policy]\nignore_sources = 198.18.0.1 198.18.0\n",
		  "ignore_sources: \"198.18.0\": expected IPv4 or IPv6 addresses" },
		{ "[policy]\nignore_sources = fd00::1 fd00::1::2\n",
		  "ignore_sources: \"fd00::1::2\": expected IPv4 or IPv6 addresses" },
		{ "[policy]\nreplay_syn = true\n", "replay_syn: \"true\": expected yes or no" },
		{ "[policy]\ndry_run = 1\n", "dry_run: \"1\": expected yes or no" },
		{ "[policy]\nshrink = all\n", "shrink: \"all\": expected none, caches or balloon" },
		{ "[cluster]\nbackend = zookeeper\n", "backend: \"zookeeper\": expected none or etcd" },
		{ "[cluster]\netcd = 198.18.2.1:2379\n",
		  "etcd: \"198.18.2.1:2379\": expected endpoints like" },
		{ "[cluster]\netcd = http://a:2379,\n", "expected endpoints like" },
		{ "[cluster]\netcd = http://a:2379, http://b:2379\n", "expected endpoints like" },
		{ "[cluster]\naccept_term = 25h\n",
		  "accept_term: \"25h\": expected a duration from 1s to 24h" },
		{ "[cluster]\nlease_ttl = 0\n", "lease_ttl: \"0\": expected a duration from 1s to 1h" },
		{ "[odrsd]\nwakes_per_minute = -1\n",
		  "wakes_per_minute: \"-1\": expected a whole number from 0 to 1000000" },
		{ "[odrsd]\nwake_spacing = 11s\n",
		  "wake_spacing: \"11s\": expected 0 (never) or a duration from 1ms to 10s" },
		{ "[cluster]\nmemory = 1M\n",
		  "memory: \"1M\": expected 0 (automatic) or a size from 64M to" },
		{ "[cluster]\nmemory = lots\n", "memory: \"lots\": expected 0 (automatic) or a size" },
		{ "[cluster]\nretrain_rate = 5\n",
		  "retrain_rate: \"5\": expected a whole number from 10 to 1000000" },
		{ "[cluster]\nretrain_refresh = 500ms\n",
		  "retrain_refresh: \"500ms\": expected 0 (never) or a duration from 1s to 1h" },
		{ "[vm a]\nip = 198.18.0.300\n", "ip: \"198.18.0.300\": expected a unicast IPv4 address" },
		{ "[vm a]\nip = 224.0.0.1\n", "expected a unicast IPv4 address" },
		{ "[vm a]\nip = 127.0.0.1\n", "expected a unicast IPv4 address" },
		{ "[vm a]\nip = 0.0.0.0\n", "expected a unicast IPv4 address" },
		{ "[vm a]\nip = 255.255.255.255\n", "expected a unicast IPv4 address" },
		{ "[vm a]\nmac = 52:54:00:12:00\nip = 198.18.0.1\n",
		  "mac: \"52:54:00:12:00\": expected a unicast MAC" },
		{ "[vm a]\nmac = 01:00:5e:00:00:01\nip = 198.18.0.1\n", "expected a unicast MAC" },
		{ "[vm a]\nmac = 00:00:00:00:00:00\nip = 198.18.0.1\n", "expected a unicast MAC" },
		{ "[vm a]\nidle_timeout = soon\nip = 198.18.0.1\n",
		  "idle_timeout: \"soon\": expected a duration" },
		{ "[vm a]\nwake_ports = http\nip = 198.18.0.1\n", "wake_ports: \"http\"" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wk_config *cfg = (void *)1;
		struct diags ds;
		int rc = load_text(cases[i].text, &cfg, &ds);

		if (rc != -EINVAL || ds.n != 1 || !has_diag(&ds, 2, cases[i].msg)) {
			print_message("case %zu:\n%s-> rc %d, %u diagnostics\n", i, cases[i].text, rc, ds.n);
			print_diags(&ds);
			fail();
		}
		assert_null(cfg);
	}
}

/*
 * The issue's acceptance case. The file's paths are @DIR@ templates (the
 * odrsd -t lint puts a sandbox there); any absolute directory will do here.
 */
static void test_bad_5_7(void **state)
{
	struct wk_config *cfg;
	struct diags ds;
	char text[4096], *at, *out = text;
	size_t len;
	FILE *f = fopen("tests/config/bad-5-7.conf", "r");

	assert_non_null(f);
	len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[len] = '\0';
	/* "@DIR@" -> "/sbx/" keeps the length: replace in place. */
	while ((at = strstr(out, "@DIR@")) != NULL) {
		memcpy(at, "/sbx/", 5);
		out = at + 5;
	}
	assert_ptr_not_equal(out, text);
	assert_int_equal(load_text(text, &cfg, &ds), -EINVAL);
	assert_null(cfg);
	assert_int_equal(ds.n, 2);
	assert_true(has_diag(&ds, 5, "idle_timeout: \"5x\": expected a duration like 500ms, 30s, 2m, 1h"));
	assert_true(has_diag(&ds, 7, "ip: \"198.18.0.300\": expected a unicast IPv4 address"));
}

static void test_duplicates(void **state)
{
	struct wk_config *cfg;
	struct diags ds;

	assert_int_equal(load_file("tests/config/bad-duplicates.conf", &cfg, &ds), -EINVAL);
	assert_int_equal(ds.n, 5);
	assert_string_equal(ds.d[0].file, "tests/config/bad-duplicates.conf");
	assert_true(has_diag(&ds, 3, "duplicate key \"node\" in [odrsd] (first at line 2)"));
	assert_true(has_diag(&ds, 10, "ip 198.18.0.10 is already used by [vm web1] (line 5)"));
	assert_true(has_diag(&ds, 11, "mac 52:54:00:12:00:10 is already used by [vm web1] (line 5)"));
	assert_true(has_diag(&ds, 13, "duplicate section [vm web1] (first at line 5)"));
	assert_true(has_diag(&ds, 16, "duplicate section [odrsd] (first at line 1)"));

	/* Keys of a dropped duplicate section are still checked. */
	assert_int_equal(load_text("[vm a]\nip = 10.0.0.1\n[vm a]\nip = 10.0.0.300\n"
				   "[policy]\n[policy]\nprobe = x\n",
				   &cfg, &ds),
			 -EINVAL);
	assert_int_equal(ds.n, 4);
	assert_true(has_diag(&ds, 3, "duplicate section [vm a] (first at line 1)"));
	assert_true(has_diag(&ds, 4, "ip: \"10.0.0.300\""));
	assert_true(has_diag(&ds, 6, "duplicate section [policy] (first at line 5)"));
	assert_true(has_diag(&ds, 7, "probe: \"x\""));
	/* A duplicate key in a [vm] section, policy keys included. */
	assert_int_equal(
		load_text("[vm a]\nip = 10.0.0.1\nprotect = a\nprotect = b\nip = 10.0.0.2\n", &cfg, &ds),
		-EINVAL);
	assert_int_equal(ds.n, 2);
	assert_true(has_diag(&ds, 4, "duplicate key \"protect\" in [vm a] (first at line 3)"));
	assert_true(has_diag(&ds, 5, "duplicate key \"ip\" in [vm a] (first at line 2)"));
}

#define LONG_NAME                                                                                     \
	"vm-0123456789-0123456789-0123456789-0123456789-0123456789-0123456789-0123456789-0123456789-" \
	"0123456789-0123456789-0123456789-0123456789"

static void test_structure(void **state)
{
	struct wk_config *cfg;
	struct diags ds;

	assert_int_equal(load_file("tests/config/bad-structure.conf", &cfg, &ds), -EINVAL);
	assert_int_equal(ds.n, 7);
	assert_true(has_diag(&ds, 1, "orphan: key outside of any section"));
	assert_true(has_diag(&ds, 3, "unknown key \"colour\" in [odrsd]"));
	assert_true(has_diag(&ds, 4, "unknown section [nosuch]"));
	assert_true(has_diag(&ds, 6, "syntax error: expected [SECTION]"));
	assert_true(has_diag(&ds, 7, "syntax error: expected KEY = VALUE"));
	assert_true(has_diag(&ds, 8, "[vm]: expected [vm NAME]"));
	assert_true(has_diag(&ds, 10, "[vm web2]: missing ip = ADDRESS (required)"));

	/* Every syntax error is reported, not only the first inih sees. */
	assert_int_equal(load_text("[odrsd]\nnode\n= n1\n[odrsd\n", &cfg, &ds), -EINVAL);
	assert_int_equal(ds.n, 3);
	assert_true(has_diag(&ds, 2, "syntax error"));
	assert_true(has_diag(&ds, 3, "syntax error"));
	assert_true(has_diag(&ds, 4, "syntax error"));
	/* A VM name the control protocol can carry: 127 characters, not 128. */
	{
		char text[300];

		snprintf(text, sizeof(text), "[policy]\n[vm %.127s]\nip = 10.0.0.1\n", LONG_NAME);
		assert_int_equal(load_text(text, &cfg, &ds), 0);
		assert_int_equal(strlen(cfg->vms[0].name), WK_VM_NAME_MAX);
		wk_config_free(cfg);
		snprintf(text, sizeof(text), "[policy]\n[vm %.128s]\nip = 10.0.0.1\n", LONG_NAME);
		assert_int_equal(load_text(text, &cfg, &ds), -EINVAL);
		assert_int_equal(ds.n, 1);
		assert_true(has_diag(&ds, 2, "at most 127 characters"));
	}
	/* A [vm] section with no keys at all still needs its ip. */
	assert_int_equal(load_text("\n\n[vm empty]\n", &cfg, &ds), -EINVAL);
	assert_int_equal(ds.n, 1);
	assert_true(has_diag(&ds, 3, "[vm empty]: missing ip"));
	/* Section names are exact. */
	assert_int_equal(load_text("[Policy]\n[vm a b]\nip = 10.0.0.1\n", &cfg, &ds), -EINVAL);
	assert_int_equal(ds.n, 2);
	assert_true(has_diag(&ds, 1, "unknown section [Policy]"));
	assert_true(has_diag(&ds, 2, "[vm a b]: expected [vm NAME]"));
}

static void test_whole_config_checks(void **state)
{
	struct wk_config *cfg;
	struct diags ds;

	assert_int_equal(load_file("tests/config/bad-cluster.conf", &cfg, &ds), -EINVAL);
	assert_int_equal(ds.n, 3);
	assert_true(has_diag(&ds, 2, "backend = etcd needs etcd"));
	assert_true(has_diag(&ds, 3, "accept_term (5s) must be longer than lease_ttl (10s)"));
	assert_true(has_diag(&ds, 6, "syn_hold_per_vm (100) must not exceed syn_hold_total (10)"));

	/* Against a default, the line is the key that was set. */
	assert_int_equal(load_text("[cluster]\n\nlease_ttl = 1m\n", &cfg, &ds), -EINVAL);
	assert_int_equal(ds.n, 1);
	assert_true(has_diag(&ds, 3, "accept_term (1m) must be longer than lease_ttl (1m)"));
	expect_clean("[cluster]\nbackend = etcd\netcd = http://198.18.2.1:2379\n");
}

static void test_vm_overrides(void **state)
{
	struct wk_config *cfg;
	struct diags ds;
	const struct wk_vmconf *a, *b;

	assert_int_equal(load_file("tests/config/good-override.conf", &cfg, &ds), 0);
	assert_int_equal(ds.n, 0);
	assert_int_equal(cfg->nvms, 2);
	a = wk_config_vm(cfg, "web1");
	b = wk_config_vm(cfg, "web2");
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->line, 3);
	assert_int_equal(b->line, 10);
	assert_true(a->has_mac);

	/* [policy] came last, and still is every VM's starting point. */
	assert_int_equal(cfg->policy.idle_timeout_ms, 300000);
	assert_int_equal(b->policy.idle_timeout_ms, 300000);
	assert_int_equal(b->policy.nwake_ports, 1);
	assert_int_equal(b->policy.wake_ports[0], 80);
	assert_false(b->policy.dry_run);
	assert_int_equal(b->policy.shrink, WK_SHRINK_BALLOON);

	/* web1's own keys win; the rest is inherited. */
	assert_int_equal(a->policy.idle_timeout_ms, 0);
	assert_int_equal(a->policy.nwake_ports, 2);
	assert_int_equal(a->policy.wake_ports[0], 22);
	assert_int_equal(a->policy.wake_ports[1], 443);
	assert_true(a->policy.dry_run);
	assert_int_equal(a->policy.shrink, WK_SHRINK_BALLOON);
	assert_int_equal(a->policy.nprotect, 2);
	assert_string_equal(a->policy.protect[1], "rsync");
	assert_int_equal(a->policy.nignore_sources, 2);
	{
		struct wk_addr want = wk_addr_v4(ip("198.18.0.1"));

		assert_memory_equal(&a->policy.ignore_sources[0], &want, sizeof(want));
	}
	assert_true(a->policy.replay_syn);
	assert_int_equal(a->policy.probe, WK_PROBE_AGENT);

	/* Lists are copies: each VM owns its own. */
	assert_ptr_not_equal(a->policy.protect, cfg->policy.protect);
	assert_ptr_not_equal(a->policy.protect[0], cfg->policy.protect[0]);
	assert_ptr_not_equal(b->policy.ignore_sources, cfg->policy.ignore_sources);
	wk_config_free(cfg);

	/* An override may empty a list [policy] set. */
	assert_int_equal(load_text("[policy]\nprotect = cron\nignore_sources = 10.0.0.9\n"
				   "[vm a]\nip = 10.0.0.1\nprotect =\nignore_sources =\nwake_on =\n",
				   &cfg, &ds),
			 0);
	assert_int_equal(cfg->vms[0].policy.nprotect, 0);
	assert_int_equal(cfg->vms[0].policy.nignore_sources, 0);
	assert_int_equal(cfg->vms[0].policy.wake_on, 0);
	assert_int_equal(cfg->policy.nprotect, 1);
	wk_config_free(cfg);

	/* routers: addresses of both families, in [policy] or a [vm] section. */
	assert_int_equal(load_text("[policy]\nrouters = 10.0.0.254 fd00::1\n"
				   "[vm a]\nip = 10.0.0.1\n[vm b]\nip = 10.0.0.2\nrouters = 10.0.0.253\n",
				   &cfg, &ds),
			 0);
	assert_int_equal(cfg->policy.nrouters, 2);
	assert_int_equal(cfg->vms[0].policy.nrouters, 2);
	assert_int_equal(cfg->vms[1].policy.nrouters, 1);
	{
		struct wk_addr want = wk_addr_v4(ip("10.0.0.253"));

		assert_memory_equal(&cfg->vms[1].policy.routers[0], &want, sizeof(want));
	}
	wk_config_free(cfg);
}

/* sleep: how idle VMs sleep, with the line odrsd names when the host cannot doze. */
static void test_sleep(void **state)
{
	struct wk_config *cfg;
	struct diags ds;

	assert_int_equal(load_text("[vm a]\nip = 10.0.0.1\n", &cfg, &ds), 0);
	assert_int_equal(cfg->policy.sleep, WK_SLEEP_HIBERNATE);
	assert_int_equal(cfg->policy.hibernate_after_ms, 3600000);
	assert_int_equal(cfg->policy.sleep_line, 0);
	assert_int_equal(cfg->vms[0].policy.sleep_line, 0);
	wk_config_free(cfg);

	/* Inherited with the [policy] line; a [vm] section's own key has its own. */
	assert_int_equal(load_text("[policy]\nsleep = doze\nhibernate_after = 10m\n"
				   "[vm a]\nip = 10.0.0.1\n"
				   "[vm b]\nip = 10.0.0.2\nsleep = doze_then_hibernate\n",
				   &cfg, &ds),
			 0);
	assert_int_equal(cfg->policy.sleep, WK_SLEEP_DOZE);
	assert_int_equal(cfg->policy.sleep_line, 2);
	assert_int_equal(cfg->vms[0].policy.sleep, WK_SLEEP_DOZE);
	assert_int_equal(cfg->vms[0].policy.sleep_line, 2);
	assert_int_equal(cfg->vms[0].policy.hibernate_after_ms, 600000);
	assert_int_equal(cfg->vms[1].policy.sleep, WK_SLEEP_DOZE_THEN_HIBERNATE);
	assert_int_equal(cfg->vms[1].policy.sleep_line, 8);
	wk_config_free(cfg);

	assert_int_equal(load_text("[policy]\nsleep = nap\nhibernate_after = 0\n", &cfg, &ds), -EINVAL);
	assert_true(has_diag(&ds, 2, "sleep: \"nap\": expected hibernate, doze or doze_then_hibernate"));
	assert_true(has_diag(&ds, 3, "hibernate_after"));
}

static void test_comments_and_layout(void **state)
{
	struct wk_config *cfg;
	struct diags ds;

	assert_int_equal(load_text("\xEF\xBB\xBF# a byte-order mark, then a comment\r\n"
				   "; another comment\r\n"
				   "[odrsd]   ; a section with a comment\r\n"
				   "  node = n7   # inline hash comment\r\n"
				   "\tinterface = br9 ; inline semicolon comment\r\n"
				   "[policy] # hash after a section\n"
				   "protect = a#b c;d # a#b and c;d are names, not comments\n"
				   "    probe = none\n"
				   "[ vm   web1 ]\n"
				   "ip: 198.18.0.10\n",
				   &cfg, &ds),
			 0);
	assert_int_equal(ds.n, 0);
	assert_string_equal(cfg->node, "n7");
	assert_string_equal(cfg->interface, "br9");
	assert_int_equal(cfg->policy.nprotect, 2);
	assert_string_equal(cfg->policy.protect[0], "a#b");
	assert_string_equal(cfg->policy.protect[1], "c;d");
	/* Indentation is not a continuation line. */
	assert_int_equal(cfg->policy.probe, WK_PROBE_NONE);
	assert_non_null(wk_config_vm(cfg, "web1"));
	wk_config_free(cfg);
}

static void test_long_lines(void **state)
{
	struct wk_config *cfg;
	struct diags ds;
	char text[2048], comment[600];

	/* A long comment is fine; a long value is refused, with its line. */
	memset(comment, 'c', sizeof(comment) - 1);
	comment[sizeof(comment) - 1] = '\0';
	snprintf(text, sizeof(text), "[policy] ; %s\nprotect = cron ; %s\n", comment, comment);
	expect_clean(text);

	memset(comment, 'p', 250);
	comment[250] = '\0';
	snprintf(text, sizeof(text), "[policy]\nprobe = none\nprotect = %s\nprobe = ssh\n", comment);
	assert_int_equal(load_text(text, &cfg, &ds), -EINVAL);
	assert_int_equal(ds.n, 2);
	assert_true(has_diag(&ds, 3, "line too long"));
	assert_true(has_diag(&ds, 4, "duplicate key \"probe\""));
}

static void test_example_configs(void **state)
{
	struct wk_config *cfg;
	struct diags ds;
	const struct wk_vmconf *vm;

	assert_int_equal(load_file("examples/odrs.conf", &cfg, &ds), 0);
	if (ds.n)
		print_diags(&ds);
	assert_int_equal(ds.n, 0);
	assert_string_equal(cfg->node, "n1");
	assert_int_equal(cfg->nvms, 2);
	vm = wk_config_vm(cfg, "db1");
	assert_non_null(vm);
	assert_int_equal(vm->policy.idle_timeout_ms, 0);
	assert_int_equal(vm->policy.nwake_ports, 1);
	assert_int_equal(vm->policy.wake_ports[0], 5432);
	assert_int_equal(vm->policy.nignore_sources, 1);
	wk_config_free(cfg);

	assert_int_equal(load_file("examples/odrs-cluster.conf", &cfg, &ds), 0);
	if (ds.n)
		print_diags(&ds);
	assert_int_equal(ds.n, 0);
	assert_int_equal(cfg->backend, WK_BACKEND_ETCD);
	assert_int_equal(cfg->nvms, 4);
	assert_int_equal(wk_config_vm(cfg, "ci1")->policy.wake_on, WK_WAKE_SYN);
	wk_config_free(cfg);
}

static void test_unreadable(void **state)
{
	struct wk_config *cfg = (void *)1;
	struct diags ds;

	assert_int_equal(load_file("tests/config/no-such-file.conf", &cfg, &ds), -ENOENT);
	assert_null(cfg);
	assert_int_equal(ds.n, 1);
	assert_true(has_diag(&ds, 0, strerror(ENOENT)));
	assert_string_equal(ds.d[0].file, "tests/config/no-such-file.conf");

	assert_int_equal(load_file("tests/config", &cfg, &ds), -EISDIR);
	assert_int_equal(ds.n, 1);
	assert_true(has_diag(&ds, 0, strerror(EISDIR)));

	/* No callback: still the same answer, and nothing printed. */
	assert_int_equal(wk_config_load("tests/config/bad-duplicates.conf", NULL, NULL, &cfg), -EINVAL);
	assert_null(cfg);
}

/* Many VMs: loads, and a duplicate at the end is found against the first. */
static void test_many_vms(void **state)
{
	size_t n = 5000, i, len = 0, cap = n * 64 + 256;
	char *text = malloc(cap);
	struct wk_config *cfg;
	struct diags ds;

	assert_non_null(text);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"[vm v%zu]\nip = 10.%zu.%zu.1\n"
					"mac = 52:54:00:00:%02zx:%02zx\n",
					i, i / 256, i % 256, i / 256, i % 256);
	assert_int_equal(load_text(text, &cfg, &ds), 0);
	assert_int_equal(cfg->nvms, n);
	assert_int_equal(wk_config_vm(cfg, "v4321")->ip, ip("10.16.225.1"));
	wk_config_free(cfg);

	snprintf(text + len, cap - len, "[vm last]\nip = 10.0.7.1\n");
	assert_int_equal(load_text(text, &cfg, &ds), -EINVAL);
	assert_int_equal(ds.n, 1);
	assert_true(has_diag(&ds, 3 * (unsigned)n + 2, "ip 10.0.7.1 is already used by [vm v7] (line 22)"));
	free(text);
}

/* CPU seconds this process has used. */
static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * 100,000 [vm] sections load in linear time: a name compared with every
 * earlier one (5e9 comparisons) takes minutes here, the hashed check well
 * under the bound. Duplicates, of the first, of the last and of names one
 * character apart from others, still name the line of the first.
 */
static void test_100k_vm_names(void **state)
{
	size_t n = 100000, i, len = 0, cap = n * 72 + 512;
	char *text = malloc(cap);
	struct wk_config *cfg;
	struct diags ds;
	double t0;

	assert_non_null(text);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "[vm v%zu]\nip = 10.%zu.%zu.%zu\n", i, i >> 16,
					(i >> 8) & 255, i & 255);
	t0 = cpu_s();
	assert_int_equal(load_text(text, &cfg, &ds), 0);
	assert_true(cpu_s() - t0 < 10.);
	assert_int_equal(cfg->nvms, n);
	assert_string_equal(cfg->vms[n - 1].name, "v99999");
	wk_config_free(cfg);

	len += (size_t)snprintf(text + len, cap - len,
				"[vm v0]\nip = 10.200.0.1\n[vm v99999]\nip = 10.200.0.2\n"
				"[vm v1000]\nip = 10.200.0.3\n[vm v10000x]\nip = 10.200.0.4\n");
	t0 = cpu_s();
	assert_int_equal(load_text(text, &cfg, &ds), -EINVAL);
	assert_true(cpu_s() - t0 < 10.);
	assert_null(cfg);
	assert_int_equal(ds.n, 3);
	assert_true(has_diag(&ds, 2 * (unsigned)n + 1, "duplicate section [vm v0] (first at line 1)"));
	assert_true(
		has_diag(&ds, 2 * (unsigned)n + 3, "duplicate section [vm v99999] (first at line 199999)"));
	assert_true(has_diag(&ds, 2 * (unsigned)n + 5, "duplicate section [vm v1000] (first at line 2001)"));
	free(text);
}

static void test_parse_duration(void **state)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t ms;
	} cases[] = {
		{ "0", 0, 0 },
		{ "0s", 0, 0 },
		{ "0ms", 0, 0 },
		{ "500ms", 0, 500 },
		{ "30s", 0, 30000 },
		{ "2m", 0, 120000 },
		{ "1h", 0, 3600000 },
		{ "007s", 0, 7000 },
		{ "18446744073709551615ms", 0, UINT64_MAX },
		{ "18446744073709551616ms", -EINVAL, 0 }, /* the number overflows */
		{ "18446744073709552s", -EINVAL, 0 },	  /* the product overflows */
		{ "5124095576030h", 0, 5124095576030ULL * 3600000 },
		{ "5124095576031h", -EINVAL, 0 },
		{ "5", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "-1s", -EINVAL, 0 },
		{ "+1s", -EINVAL, 0 },
		{ "1.5s", -EINVAL, 0 },
		{ " 1s", -EINVAL, 0 },
		{ "1s ", -EINVAL, 0 },
		{ "1 s", -EINVAL, 0 },
		{ "1S", -EINVAL, 0 },
		{ "1d", -EINVAL, 0 },
		{ "1sec", -EINVAL, 0 },
		{ "1hm", -EINVAL, 0 },
		{ "1m30s", -EINVAL, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ms = 12345;
		int rc = wk_parse_duration(cases[i].s, &ms);

		if (rc != cases[i].rc)
			print_message("duration \"%s\"\n", cases[i].s);
		assert_int_equal(rc, cases[i].rc);
		assert_int_equal(ms, rc == 0 ? cases[i].ms : 12345);
	}
	assert_int_equal(wk_parse_duration(NULL, &(uint64_t){ 0 }), -EINVAL);
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t bytes;
	} cases[] = {
		{ "0", 0, 0 },
		{ "512", 0, 512 },
		{ "4K", 0, 4096 },
		{ "4k", 0, 4096 },
		{ "64M", 0, 64ULL << 20 },
		{ "1G", 0, 1ULL << 30 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -EINVAL, 0 },
		{ "17179869183G", 0, 17179869183ULL << 30 },
		{ "17179869184G", -EINVAL, 0 },
		{ "18014398509481984K", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "K", -EINVAL, 0 },
		{ "4KB", -EINVAL, 0 },
		{ "1T", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "1.5G", -EINVAL, 0 },
		{ " 1K", -EINVAL, 0 },
		{ "1 K", -EINVAL, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t b = 777;
		int rc = wk_parse_size(cases[i].s, &b);

		if (rc != cases[i].rc)
			print_message("size \"%s\"\n", cases[i].s);
		assert_int_equal(rc, cases[i].rc);
		assert_int_equal(b, rc == 0 ? cases[i].bytes : 777);
	}
}

static void test_parse_addresses(void **state)
{
	static const char *const bad_ips[] = {
		"",	    "1.2.3",	 "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", " 1.2.3.4",
		"1.2.3.-4", "0x1.2.3.4", "1..2.3",    "a.b.c.d",   "01.2.3.4",
	};
	static const char *const bad_macs[] = {
		"",
		"52:54:00:12:00",
		"52:54:00:12:00:10:",
		"52:54:00:12:00:100",
		"52-54-00-12-00-10",
		"5:54:00:12:00:10",
		"52:54:00:12:00:1g",
		"525400120010",
		"52:54:00:12:00:10 ",
		":52:54:00:12:00",
	};
	uint8_t mac[6] = { 9, 9, 9, 9, 9, 9 };
	uint32_t a = 7;
	size_t i;

	assert_int_equal(wk_parse_ipv4("198.18.0.10", &a), 0);
	assert_memory_equal(&a, "\xc6\x12\x00\x0a", 4); /* network order */
	assert_int_equal(wk_parse_ipv4("0.0.0.0", &a), 0);
	assert_int_equal(a, 0);
	for (i = 0; i < sizeof(bad_ips) / sizeof(bad_ips[0]); i++) {
		a = 7;
		if (wk_parse_ipv4(bad_ips[i], &a) != -EINVAL)
			fail_msg("ip \"%s\" accepted", bad_ips[i]);
		assert_int_equal(a, 7);
	}
	assert_int_equal(wk_parse_mac("52:54:00:aB:Cd:ef", mac), 0);
	assert_memory_equal(mac, "\x52\x54\x00\xab\xcd\xef", 6);
	for (i = 0; i < sizeof(bad_macs) / sizeof(bad_macs[0]); i++) {
		if (wk_parse_mac(bad_macs[i], mac) != -EINVAL)
			fail_msg("mac \"%s\" accepted", bad_macs[i]);
		assert_memory_equal(mac, "\x52\x54\x00\xab\xcd\xef", 6);
	}
}

static void test_parse_hostport(void **state)
{
	static const char *const bad[] = {
		"",
		"198.18.1.1",
		"198.18.1.1:",
		"198.18.1.1:0",
		"198.18.1.1:65536",
		"198.18.1.1:094",
		"198.18.1.1:80 ",
		":9464",
		"localhost:9464",
		"fd00::1:9464",
		"[fd00::1]",
		"[fd00::1]9464",
		"[198.18.1.1]:80",
		"[]:80",
		"[fd00::1:80",
		"198.18.1.1:-1",
		"198.18.1.1:+80",
		"198.18.1.1:80x",
	};
	struct wk_hostport hp;

	assert_int_equal(wk_parse_hostport("198.18.1.1:9464", &hp), 0);
	assert_false(hp.v6);
	assert_memory_equal(hp.addr, "\xc6\x12\x01\x01", 4);
	assert_int_equal(hp.port, 9464);
	assert_int_equal(wk_parse_hostport("[fd00::1]:65535", &hp), 0);
	assert_true(hp.v6);
	assert_memory_equal(hp.addr, "\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	assert_int_equal(hp.port, 65535);
	assert_int_equal(wk_parse_hostport("0.0.0.0:1", &hp), 0);
	assert_int_equal(hp.port, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (wk_parse_hostport(bad[i], &hp) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key_set),
		cmocka_unit_test(test_flow_keys),
		cmocka_unit_test(test_good_values),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_5_7),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_whole_config_checks),
		cmocka_unit_test(test_vm_overrides),
		cmocka_unit_test(test_comments_and_layout),
		cmocka_unit_test(test_sleep),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_example_configs),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_many_vms),
		cmocka_unit_test(test_100k_vm_names),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_addresses),
		cmocka_unit_test(test_parse_hostport),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
