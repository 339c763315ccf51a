/*
 * The VM table: the API's contract case by case, 100,000 VMs, and a long
 * random run checked against a plain array (colliding keys, deletes that
 * shift probe runs, growth).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <wake/vmtable.h>

static void mac_of(unsigned i, uint8_t mac[6])
{
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(i >> 16);
	mac[4] = (uint8_t)(i >> 8);
	mac[5] = (uint8_t)i;
}

static uint32_t ip_of(unsigned i)
{
	return htonl(0xc6120000u + i); /* 198.18.0.0/15 */
}

static void test_contract(void **state)
{
	struct wk_vmtable *t = wk_vmtable_new(0);
	int a, b, c;
	uint8_t ma[6], mb[6], mc[6];

	assert_non_null(t);
	mac_of(1, ma);
	mac_of(2, mb);
	mac_of(3, mc);
	assert_int_equal(wk_vmtable_count(t), 0);
	assert_null(wk_vmtable_by_ip(t, ip_of(1)));
	assert_null(wk_vmtable_by_mac(t, ma));

	assert_int_equal(wk_vmtable_add(t, ip_of(1), ma, &a), 0);
	assert_int_equal(wk_vmtable_add(t, ip_of(2), NULL, &b), 0);
	assert_int_equal(wk_vmtable_add(t, ip_of(3), NULL, NULL), -EINVAL);
	assert_int_equal(wk_vmtable_count(t), 2);
	assert_ptr_equal(wk_vmtable_by_ip(t, ip_of(1)), &a);
	assert_ptr_equal(wk_vmtable_by_mac(t, ma), &a);
	assert_ptr_equal(wk_vmtable_by_ip(t, ip_of(2)), &b);
	assert_null(wk_vmtable_by_mac(t, mb));

	/* A taken IP or MAC: -EEXIST, and nothing half-added. */
	assert_int_equal(wk_vmtable_add(t, ip_of(1), mc, &c), -EEXIST);
	assert_null(wk_vmtable_by_mac(t, mc));
	assert_int_equal(wk_vmtable_add(t, ip_of(3), ma, &c), -EEXIST);
	assert_null(wk_vmtable_by_ip(t, ip_of(3)));
	assert_ptr_equal(wk_vmtable_by_mac(t, ma), &a);
	assert_int_equal(wk_vmtable_count(t), 2);

	/* A MAC learned later; the same again is fine, another VM's is not. */
	assert_int_equal(wk_vmtable_set_mac(t, ip_of(2), mb), 0);
	assert_ptr_equal(wk_vmtable_by_mac(t, mb), &b);
	assert_int_equal(wk_vmtable_set_mac(t, ip_of(2), mb), 0);
	assert_int_equal(wk_vmtable_set_mac(t, ip_of(2), ma), -EEXIST);
	assert_ptr_equal(wk_vmtable_by_mac(t, ma), &a);
	assert_int_equal(wk_vmtable_set_mac(t, ip_of(9), mc), -ENOENT);
	assert_null(wk_vmtable_by_mac(t, mc));
	/* A new MAC replaces the old one. */
	assert_int_equal(wk_vmtable_set_mac(t, ip_of(2), mc), 0);
	assert_ptr_equal(wk_vmtable_by_mac(t, mc), &b);
	assert_null(wk_vmtable_by_mac(t, mb));

	/* Deleting removes the VM's MAC too, even when the caller does not name it. */
	assert_int_equal(wk_vmtable_del(t, ip_of(9), NULL), -ENOENT);
	assert_int_equal(wk_vmtable_del(t, ip_of(2), NULL), 0);
	assert_null(wk_vmtable_by_ip(t, ip_of(2)));
	assert_null(wk_vmtable_by_mac(t, mc));
	assert_int_equal(wk_vmtable_count(t), 1);
	assert_int_equal(wk_vmtable_del(t, ip_of(2), NULL), -ENOENT);
	/* Another VM's MAC named by mistake stays. */
	assert_int_equal(wk_vmtable_add(t, ip_of(2), mb, &b), 0);
	assert_int_equal(wk_vmtable_del(t, ip_of(2), ma), 0);
	assert_ptr_equal(wk_vmtable_by_mac(t, ma), &a);
	assert_null(wk_vmtable_by_mac(t, mb));
	assert_int_equal(wk_vmtable_del(t, ip_of(1), ma), 0);
	assert_int_equal(wk_vmtable_count(t), 0);
	assert_null(wk_vmtable_by_mac(t, ma));
	wk_vmtable_free(t);
	wk_vmtable_free(NULL);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_100k(void **state)
{
	enum { N = 100000 };
	struct wk_vmtable *t = wk_vmtable_new(16); /* small hint: must grow */
	char *vms = malloc(N);
	double start = now();
	uint8_t mac[6];
	unsigned i;

	assert_non_null(t);
	assert_non_null(vms);
	for (i = 0; i < N; i++) {
		mac_of(i, mac);
		assert_int_equal(wk_vmtable_add(t, ip_of(i), mac, &vms[i]), 0);
	}
	assert_int_equal(wk_vmtable_count(t), N);
	for (i = 0; i < N; i++) {
		mac_of(i, mac);
		assert_ptr_equal(wk_vmtable_by_ip(t, ip_of(i)), &vms[i]);
		assert_ptr_equal(wk_vmtable_by_mac(t, mac), &vms[i]);
	}
	for (i = 0; i < N; i += 2) {
		mac_of(i, mac);
		assert_int_equal(wk_vmtable_del(t, ip_of(i), mac), 0);
	}
	assert_int_equal(wk_vmtable_count(t), N / 2);
	for (i = 0; i < N; i++) {
		mac_of(i, mac);
		if (i % 2 == 0) {
			assert_null(wk_vmtable_by_ip(t, ip_of(i)));
			assert_null(wk_vmtable_by_mac(t, mac));
		} else {
			assert_ptr_equal(wk_vmtable_by_ip(t, ip_of(i)), &vms[i]);
			assert_ptr_equal(wk_vmtable_by_mac(t, mac), &vms[i]);
		}
	}
	/* Addresses not in the table at all. */
	for (i = N; i < N + 1000; i++) {
		mac_of(i, mac);
		assert_null(wk_vmtable_by_ip(t, ip_of(i)));
		assert_null(wk_vmtable_by_mac(t, mac));
	}
	/* O(1): generous even for ASan on a slow machine; a linear scan takes minutes. */
	assert_true(now() - start < 5.0);
	wk_vmtable_free(t);
	free(vms);
}

/* Random adds, deletes and MAC changes over a small key space, against an array. */
static void test_random_against_model(void **state)
{
	enum { KEYS = 300, MACS = 400, OPS = 200000 };
	struct {
		void *vm;
		int mac;
	} model[KEYS]; /* mac -1: none */
	void *mac_owner[MACS];
	char vms[KEYS];
	struct wk_vmtable *t = wk_vmtable_new(0);
	unsigned seed = 12345, op;
	uint8_t mac[6];
	int k, m;

	memset(model, 0, sizeof(model));
	memset(mac_owner, 0, sizeof(mac_owner));
	for (op = 0; op < OPS; op++) {
		seed = seed * 1103515245u + 12345u;
		k = (int)(seed >> 8) % KEYS;
		m = (int)(seed >> 20) % MACS;
		mac_of((unsigned)m, mac);
		switch ((seed >> 4) % 4) {
		case 0:
		case 1: {
			bool with_mac = (seed >> 3) & 1;
			int rc = wk_vmtable_add(t, ip_of((unsigned)k), with_mac ? mac : NULL, &vms[k]);

			if (model[k].vm != NULL || (with_mac && mac_owner[m] != NULL)) {
				assert_int_equal(rc, -EEXIST);
			} else {
				assert_int_equal(rc, 0);
				model[k].vm = &vms[k];
				model[k].mac = with_mac ? m : -1;
				if (with_mac)
					mac_owner[m] = &vms[k];
			}
			break;
		}
		case 2: {
			int rc = wk_vmtable_del(t, ip_of((unsigned)k), NULL);

			assert_int_equal(rc, model[k].vm ? 0 : -ENOENT);
			if (model[k].vm && model[k].mac >= 0)
				mac_owner[model[k].mac] = NULL;
			model[k].vm = NULL;
			break;
		}
		case 3: {
			int rc = wk_vmtable_set_mac(t, ip_of((unsigned)k), mac);

			if (model[k].vm == NULL) {
				assert_int_equal(rc, -ENOENT);
			} else if (mac_owner[m] != NULL && mac_owner[m] != model[k].vm) {
				assert_int_equal(rc, -EEXIST);
			} else {
				assert_int_equal(rc, 0);
				if (model[k].mac >= 0)
					mac_owner[model[k].mac] = NULL;
				model[k].mac = m;
				mac_owner[m] = model[k].vm;
			}
			break;
		}
		}
		if (op % 1000 == 0 || op == OPS - 1) {
			size_t count = 0;

			for (k = 0; k < KEYS; k++) {
				assert_ptr_equal(wk_vmtable_by_ip(t, ip_of((unsigned)k)), model[k].vm);
				count += model[k].vm != NULL;
			}
			for (m = 0; m < MACS; m++) {
				mac_of((unsigned)m, mac);
				assert_ptr_equal(wk_vmtable_by_mac(t, mac), mac_owner[m]);
			}
			assert_int_equal(wk_vmtable_count(t), count);
		}
	}
	wk_vmtable_free(t);
}

/*
 * What a reload does (odrsd_reload): the new configuration's table built
 * fresh beside the running one. a and b swap IPs, b gains a MAC, c goes: each
 * IP and MAC names the right VM, c's addresses name nobody, and the running
 * table answers as before until it is swapped out.
 */
static void test_reload_rebuild(void **state)
{
	struct wk_vmtable *running = wk_vmtable_new(3), *next = wk_vmtable_new(2);
	uint8_t ma[6], mb[6], mc[6], a6[16] = { 0xfd, [15] = 1 }, b6[16] = { 0xfd, [15] = 2 };
	int a, b, c;

	mac_of(1, ma);
	mac_of(2, mb);
	mac_of(3, mc);
	assert_int_equal(wk_vmtable_add(running, ip_of(1), ma, &a), 0);
	assert_int_equal(wk_vmtable_add(running, ip_of(2), NULL, &b), 0);
	assert_int_equal(wk_vmtable_add(running, ip_of(3), mc, &c), 0);
	assert_int_equal(wk_vmtable_add_ip6(running, a6, &a), 0);
	assert_int_equal(wk_vmtable_add_ip6(running, b6, &b), 0);

	assert_int_equal(wk_vmtable_add(next, ip_of(2), ma, &a), 0);
	assert_int_equal(wk_vmtable_add(next, ip_of(1), mb, &b), 0);
	assert_int_equal(wk_vmtable_add_ip6(next, b6, &a), 0);
	assert_int_equal(wk_vmtable_add_ip6(next, a6, &b), 0);
	assert_int_equal(wk_vmtable_count(next), 2);
	assert_ptr_equal(wk_vmtable_by_ip(next, ip_of(2)), &a);
	assert_ptr_equal(wk_vmtable_by_ip(next, ip_of(1)), &b);
	assert_ptr_equal(wk_vmtable_by_mac(next, ma), &a);
	assert_ptr_equal(wk_vmtable_by_mac(next, mb), &b);
	assert_ptr_equal(wk_vmtable_by_ip6(next, b6), &a);
	assert_ptr_equal(wk_vmtable_by_ip6(next, a6), &b);
	assert_null(wk_vmtable_by_ip(next, ip_of(3)));
	assert_null(wk_vmtable_by_mac(next, mc));

	assert_ptr_equal(wk_vmtable_by_ip(running, ip_of(1)), &a);
	assert_ptr_equal(wk_vmtable_by_ip(running, ip_of(2)), &b);
	assert_null(wk_vmtable_by_mac(running, mb));
	assert_ptr_equal(wk_vmtable_by_mac(running, mc), &c);
	wk_vmtable_free(running);
	wk_vmtable_free(next);
}

/* No operation removes or overwrites an entry another VM owns. */
static void test_other_vms_entries_stay(void **state)
{
	struct wk_vmtable *t = wk_vmtable_new(0);
	uint8_t ma[6], mb[6], a6[16] = { 0xfd, [15] = 1 };
	int a, b;

	mac_of(1, ma);
	mac_of(2, mb);
	assert_int_equal(wk_vmtable_add(t, ip_of(1), ma, &a), 0);
	assert_int_equal(wk_vmtable_add(t, ip_of(2), mb, &b), 0);
	assert_int_equal(wk_vmtable_add_ip6(t, a6, &a), 0);
	/* b deleted naming a's MAC: a keeps it. */
	assert_int_equal(wk_vmtable_del(t, ip_of(2), ma), 0);
	assert_ptr_equal(wk_vmtable_by_mac(t, ma), &a);
	assert_null(wk_vmtable_by_mac(t, mb));
	/* b back without a MAC, then learning a's: refused, a's stays. */
	assert_int_equal(wk_vmtable_add(t, ip_of(2), NULL, &b), 0);
	assert_int_equal(wk_vmtable_set_mac(t, ip_of(2), ma), -EEXIST);
	assert_ptr_equal(wk_vmtable_by_mac(t, ma), &a);
	/* b taking a's IPv6 address: refused; a's again is fine. */
	assert_int_equal(wk_vmtable_add_ip6(t, a6, &b), -EEXIST);
	assert_int_equal(wk_vmtable_add_ip6(t, a6, &a), 0);
	assert_ptr_equal(wk_vmtable_by_ip6(t, a6), &a);
	assert_int_equal(wk_vmtable_del_ip6(t, a6), 0);
	assert_int_equal(wk_vmtable_del_ip6(t, a6), -ENOENT);
	assert_null(wk_vmtable_by_ip6(t, a6));
	wk_vmtable_free(t);
}

/* The name index: add, find, refuse a name twice, 100,000 names through growth. */
static void test_names(void **state)
{
	static char names[100000][12];
	struct wk_names *n = wk_names_new(0);
	int objs[3];

	assert_non_null(n);
	assert_null(wk_names_find(n, "web1"));
	assert_null(wk_names_find(NULL, "web1"));
	assert_int_equal(wk_names_add(n, "web1", &objs[0]), 0);
	assert_int_equal(wk_names_add(n, "web10", &objs[1]), 0);
	assert_int_equal(wk_names_add(n, "web1", &objs[2]), -EEXIST);
	assert_ptr_equal(wk_names_find(n, "web1"), &objs[0]);
	assert_ptr_equal(wk_names_find(n, "web10"), &objs[1]);
	assert_null(wk_names_find(n, "web"));
	assert_null(wk_names_find(n, ""));
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(names[i], sizeof(names[i]), "s%u", i);
		assert_int_equal(wk_names_add(n, names[i], names[i]), 0);
	}
	for (unsigned i = 0; i < 100000; i++) {
		char key[12];

		snprintf(key, sizeof(key), "s%u", i);
		assert_ptr_equal(wk_names_find(n, key), names[i]);
	}
	assert_null(wk_names_find(n, "s100000"));
	assert_ptr_equal(wk_names_find(n, "web1"), &objs[0]);
	wk_names_free(n);
	wk_names_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_contract),
		cmocka_unit_test(test_100k),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_reload_rebuild),
		cmocka_unit_test(test_other_vms_entries_stay),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
