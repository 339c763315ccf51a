/*
 * The snapshot-file protocol (odrsd/snapfile.c) played by two and three
 * nodes in a temporary directory. Each node runs a script of steps (a save,
 * a restore, a failed restore, a restart); libvirt's part of a step is
 * played by writing or reading save images. Every interleaving of the
 * scripts runs, once as it is and once for each node crashing after each of
 * its steps (then its libvirt job ends and the node recovers). After every
 * step: at most one restorable image, none while the VM runs, the VM runs on
 * at most one node, no node renamed or removed another's file, and a raw
 * disk named NAME.img is untouched. At the end the VM runs on exactly one
 * node or sleeps in exactly one image, and no part or claim file is left.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../odrsd/snapfile.h"

#define VM	  "web1"
#define NODES	  3
#define MAX_STEPS 4
#define MAX_FILES 16

enum script { SAVE, RESTORE, RESTORE_FAILS, RESTART };

/* The steps of each script: odrsd's calls, and libvirt's work (LV_*). */
enum step { BEGIN, LV_WRITE, LV_SAVED, COMMIT, CLAIM, LV_RUN, FINISH, LV_FAIL, RELEASE, RECOVER };

static const enum step scripts[][MAX_STEPS + 1] = {
	[SAVE] = { BEGIN, LV_WRITE, LV_SAVED, COMMIT, -1 },
	[RESTORE] = { CLAIM, LV_RUN, FINISH, -1 },
	[RESTORE_FAILS] = { CLAIM, LV_FAIL, RELEASE, -1 },
	[RESTART] = { RECOVER, -1 },
};

static int script_len(enum script s)
{
	int n = 0;

	while (n < MAX_STEPS && (int)scripts[s][n] != -1)
		n++;
	return n;
}

struct node {
	struct snapfile sf;
	enum script script;
	int pc;	      /* next step */
	bool gave_up; /* a claim found no image: the script ends */
	bool crashed; /* odrsd died after its step crash_after */
	int crash_after;
};

struct world {
	char dir[128];
	struct node n[NODES];
	int nnodes;
	int running_on; /* the node whose domain runs, or -1 */
	ino_t disk_ino;
};

static char tmp_root[64];
static unsigned runs;

static void path_in(const struct world *w, const char *f, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", w->dir, f);
}

/* A libvirt QEMU save image of domain name, finished or not. */
static void write_image(const char *path, const char *name, bool complete)
{
	char xml[256];
	unsigned char h[92] = { 0 };
	uint32_t version = 2, len;
	int fd;

	len = (uint32_t)snprintf(xml, sizeof(xml), "<domain type='qemu'>\n  <name>%s</name>\n</domain>\n",
				 name) +
	      1;
	memcpy(h, complete ? "LibvirtQemudSave" : "LibvirtQemudPart", 16);
	memcpy(h + 16, &version, 4);
	memcpy(h + 20, &len, 4);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, h, sizeof(h)), sizeof(h));
	assert_int_equal(write(fd, xml, len), len);
	assert_int_equal(write(fd, "QEVM-memory", 11), 11);
	close(fd);
}

static void rewrite_magic(const char *path)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "LibvirtQemudSave", 16, 0), 16);
	close(fd);
}

static void write_raw(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void world_init(struct world *w, const enum script *s, int nnodes, int running_on)
{
	static const char *names[NODES] = { "n1", "n2", "n3" };
	char disk[PATH_MAX];
	struct stat st;
	int i;

	memset(w, 0, sizeof(*w));
	snprintf(w->dir, sizeof(w->dir), "%s/r%u", tmp_root, runs++);
	assert_int_equal(mkdir(w->dir, 0700), 0);
	w->nnodes = nnodes;
	w->running_on = running_on;
	for (i = 0; i < nnodes; i++) {
		assert_int_equal(snapfile_init(&w->n[i].sf, w->dir, VM, names[i]), 0);
		w->n[i].script = s[i];
		w->n[i].crash_after = -1;
	}
	/* An old virt-install disk of the same name: never odrs's to touch. */
	path_in(w, VM ".img", disk, sizeof(disk));
	write_raw(disk, "raw disk sectors of web1\n");
	assert_int_equal(stat(disk, &st), 0);
	w->disk_ino = st.st_ino;
	if (running_on < 0)
		write_image(w->n[0].sf.image, VM, true);
}

static void world_free(struct world *w)
{
	struct dirent *d;
	char path[PATH_MAX];
	DIR *dir = opendir(w->dir);

	assert_non_null(dir);
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.') {
			path_in(w, d->d_name, path, sizeof(path));
			unlink(path);
		}
	closedir(dir);
	rmdir(w->dir);
}

struct file {
	char name[256];
	ino_t ino;
};

static int list_files(const struct world *w, struct file *f)
{
	struct dirent *d;
	struct stat st;
	char path[PATH_MAX];
	DIR *dir = opendir(w->dir);
	int n = 0;

	assert_non_null(dir);
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.') {
			assert_true(n < MAX_FILES);
			path_in(w, d->d_name, path, sizeof(path));
			assert_int_equal(stat(path, &st), 0);
			snprintf(f[n].name, sizeof(f[n].name), "%s", d->d_name);
			f[n++].ino = st.st_ino;
		}
	closedir(dir);
	return n;
}

/* A part or claim file of node, by its name ("": of any node). */
static bool owned_by(const char *f, const char *node)
{
	const char *dot = strrchr(f, '.');

	return dot && (!*node || strcmp(dot + 1, node) == 0) &&
	       (strstr(f, ".part.") || strstr(f, ".restoring."));
}

static int restorable(const struct world *w)
{
	char legacy[PATH_MAX];
	int n = 0;

	path_in(w, VM ".img", legacy, sizeof(legacy));
	n += snapfile_header_check(w->n[0].sf.image, VM) == 0;
	n += snapfile_header_check(legacy, VM) == 0;
	return n;
}

static void check_invariants(const struct world *w, const char *when)
{
	char disk[PATH_MAX], text[64] = "";
	struct stat st;
	int fd, r;

	r = restorable(w);
	if (r > 1 || (w->running_on >= 0 && r > 0))
		fail_msg("%s: %d restorable images, the VM runs on %d", when, r, w->running_on);
	path_in(w, VM ".img", disk, sizeof(disk));
	if (stat(disk, &st) < 0 || st.st_ino != w->disk_ino)
		fail_msg("%s: the raw disk %s was moved", when, disk);
	fd = open(disk, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, text, sizeof(text) - 1) > 0);
	close(fd);
	if (strcmp(text, "raw disk sectors of web1\n") != 0)
		fail_msg("%s: the raw disk %s was changed", when, disk);
}

/* Node i's files before one of its steps, to see that no other node's changed. */
static void check_peers_kept(const struct world *w, int i, const struct file *before, int nbefore,
			     const char *when)
{
	struct file after[MAX_FILES];
	int nafter = list_files(w, after), a, b;

	for (b = 0; b < nbefore; b++) {
		if (!owned_by(before[b].name, "") || owned_by(before[b].name, w->n[i].sf.node))
			continue;
		for (a = 0; a < nafter; a++)
			if (!strcmp(after[a].name, before[b].name) && after[a].ino == before[b].ino)
				break;
		if (a == nafter)
			fail_msg("%s: %s touched %s", when, w->n[i].sf.node, before[b].name);
	}
}

/* One step of node i: odrsd's call, or what libvirt does meanwhile. */
static void do_step(struct world *w, int i, enum step s)
{
	struct node *n = &w->n[i];
	struct snapfile_state st;
	uint64_t bytes;
	int r;

	switch (s) {
	case BEGIN:
		assert_int_equal(snapfile_save_begin(&n->sf), 0);
		break;
	case LV_WRITE:
		write_image(n->sf.part, VM, false);
		break;
	case LV_SAVED:
		/* libvirt finished the file it has open, wherever its name went. */
		if (access(n->sf.part, F_OK) == 0)
			rewrite_magic(n->sf.part);
		w->running_on = -1;
		break;
	case COMMIT:
		/* A peer that removed the part file fails this: the lab's "writing web1.img". */
		assert_int_equal(snapfile_save_commit(&n->sf, &bytes), 0);
		assert_true(bytes > 92);
		break;
	case CLAIM:
		r = snapfile_claim(&n->sf, &bytes);
		if (r == -ENOENT) {
			n->gave_up = true;
			break;
		}
		assert_int_equal(r, 0);
		break;
	case LV_RUN:
		/* libvirt restores only a complete image of the domain. */
		assert_int_equal(snapfile_header_check(n->sf.claim, VM), 0);
		assert_int_equal(w->running_on, -1);
		w->running_on = i;
		break;
	case FINISH:
		assert_int_equal(snapfile_finish(&n->sf), 0);
		break;
	case LV_FAIL:
		break;
	case RELEASE:
		assert_int_equal(snapfile_release(&n->sf), 0);
		break;
	case RECOVER:
		assert_int_equal(snapfile_recover(&n->sf, w->running_on == i, &st), 0);
		assert_int_equal(st.image, access(n->sf.image, F_OK) == 0);
		/* The raw disk is named, never adopted. */
		assert_string_not_equal(st.left, "");
		break;
	}
}

static void run_step(struct world *w, int i)
{
	struct file before[MAX_FILES];
	int nbefore = list_files(w, before);
	char when[64];
	enum step s = scripts[w->n[i].script][w->n[i].pc];

	snprintf(when, sizeof(when), "%s step %d of script %d", w->n[i].sf.node, w->n[i].pc, w->n[i].script);
	do_step(w, i, s);
	w->n[i].pc++;
	if (w->n[i].pc == w->n[i].crash_after + 1)
		w->n[i].crashed = true;
	check_peers_kept(w, i, before, nbefore, when);
	check_invariants(w, when);
}

static bool done(const struct node *n)
{
	return n->gave_up || n->crashed || n->pc >= script_len(n->script);
}

/* The crashed node's libvirt job runs to its end, then odrsd starts again. */
static void recover_crashed(struct world *w, int i)
{
	struct node *n = &w->n[i];
	struct file before[MAX_FILES];
	int nbefore;

	if (n->script == SAVE && n->pc >= 2 && n->pc < 3)
		do_step(w, i, LV_SAVED);
	if (n->script == RESTORE_FAILS && n->pc == 1)
		do_step(w, i, LV_FAIL);
	nbefore = list_files(w, before);
	do_step(w, i, RECOVER);
	check_peers_kept(w, i, before, nbefore, "recovery");
	check_invariants(w, "recovery");
}

static void check_end(const struct world *w)
{
	struct file f[MAX_FILES];
	int n = list_files(w, f), i, r = restorable(w);

	if (!((w->running_on >= 0 && r == 0) || (w->running_on < 0 && r == 1)))
		fail_msg("end: the VM runs on %d with %d restorable images", w->running_on, r);
	for (i = 0; i < n; i++)
		if (strstr(f[i].name, ".part.") || strstr(f[i].name, ".restoring."))
			fail_msg("end: %s left", f[i].name);
}

/* Every schedule of the nodes' steps: order[k] is the node of step k. */
static void play(const enum script *s, int nnodes, int running_on, const int *order, int len, int crash_node,
		 int crash_after)
{
	struct world w;
	int k, i;

	world_init(&w, s, nnodes, running_on);
	if (crash_node >= 0)
		w.n[crash_node].crash_after = crash_after;
	for (k = 0; k < len; k++)
		if (!done(&w.n[order[k]]))
			run_step(&w, order[k]);
	for (i = 0; i < nnodes; i++)
		if (w.n[i].crashed)
			recover_crashed(&w, i);
	check_end(&w);
	world_free(&w);
}

static unsigned schedules;

static void enumerate(const enum script *s, int nnodes, int running_on, int *left, int *order, int at,
		      int len)
{
	int i, c, steps;

	if (at == len) {
		schedules++;
		play(s, nnodes, running_on, order, len, -1, -1);
		for (c = 0; c < nnodes; c++)
			for (steps = script_len(s[c]), i = 0; i < steps; i++)
				play(s, nnodes, running_on, order, len, c, i);
		return;
	}
	for (i = 0; i < nnodes; i++) {
		if (!left[i])
			continue;
		left[i]--;
		order[at] = i;
		enumerate(s, nnodes, running_on, left, order, at + 1, len);
		left[i]++;
	}
}

static unsigned play_all(const enum script *s, int nnodes, int running_on)
{
	int left[NODES], order[NODES * MAX_STEPS], len = 0, i;

	schedules = 0;
	for (i = 0; i < nnodes; i++)
		len += left[i] = script_len(s[i]);
	enumerate(s, nnodes, running_on, left, order, 0, len);
	return schedules;
}

static void test_save_peer_restarts(void **state)
{
	const enum script s[] = { SAVE, RESTART };

	assert_int_equal(play_all(s, 2, 0), 5); /* 5!/(4!1!) */
}

static void test_restore_peer_restarts(void **state)
{
	const enum script s[] = { RESTORE, RESTART };

	assert_int_equal(play_all(s, 2, -1), 4);
}

static void test_failed_restore_peer_restarts(void **state)
{
	const enum script s[] = { RESTORE_FAILS, RESTART };

	assert_int_equal(play_all(s, 2, -1), 4);
}

static void test_two_restores_one_wins(void **state)
{
	const enum script s[] = { RESTORE, RESTORE };

	assert_int_equal(play_all(s, 2, -1), 20);
}

static void test_three_nodes(void **state)
{
	const enum script race[] = { RESTORE, RESTORE_FAILS, RESTART };
	const enum script save[] = { SAVE, RESTART, RESTART };

	assert_int_equal(play_all(race, 3, -1), 140); /* 7!/(3!3!1!) */
	assert_int_equal(play_all(save, 3, 0), 30);   /* 6!/(4!1!1!) */
}

/* Defect 2: a restore that finds the domain already running removes the stale image. */
static void test_claim_of_running_vm(void **state)
{
	const enum script s[] = { RESTART };
	struct world w;
	uint64_t bytes;

	world_init(&w, s, 1, -1);
	w.running_on = 0; /* came up some other way: the image is stale */
	assert_int_equal(snapfile_claim(&w.n[0].sf, &bytes), 0);
	assert_int_equal(snapfile_finish(&w.n[0].sf), 0);
	check_invariants(&w, "claim of a running VM");
	world_free(&w);
}

static void test_header_check(void **state)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/h", tmp_root);
	write_image(path, VM, true);
	assert_int_equal(snapfile_header_check(path, VM), 0);
	assert_int_equal(snapfile_header_check(path, "web"), -EBADMSG);
	assert_int_equal(snapfile_header_check(path, "web11"), -EBADMSG);
	write_image(path, VM, false);
	assert_int_equal(snapfile_header_check(path, VM), -EINPROGRESS);
	write_image(path, "a&b", true);
	assert_int_equal(snapfile_header_check(path, "a&b"), -EBADMSG); /* unescaped: not libvirt's */
	write_raw(path, "");
	assert_int_equal(snapfile_header_check(path, VM), -EINPROGRESS);
	write_raw(path, "\xeb\x63\x90 a boot sector, then a file system");
	assert_int_equal(snapfile_header_check(path, VM), -EBADMSG);
	unlink(path);
	assert_int_equal(snapfile_header_check(path, VM), -ENOENT);
}

/* An image of an older odrs (NAME.img with a save header) is adopted; a raw disk is not. */
static void test_legacy_image(void **state)
{
	const enum script s[] = { RESTART };
	struct snapfile_state st;
	struct world w;
	char legacy[PATH_MAX];

	world_init(&w, s, 1, 0);
	path_in(&w, VM ".img", legacy, sizeof(legacy));
	unlink(legacy);
	write_image(legacy, VM, true);
	w.running_on = -1;
	assert_int_equal(snapfile_recover(&w.n[0].sf, false, &st), 0);
	assert_true(st.image);
	assert_int_equal(access(legacy, F_OK), -1);
	assert_int_equal(snapfile_header_check(w.n[0].sf.image, VM), 0);

	/* Running: a legacy image of it is stale and goes; another domain's stays. */
	write_image(legacy, VM, true);
	assert_int_equal(snapfile_recover(&w.n[0].sf, true, &st), 0);
	assert_false(st.image);
	assert_int_equal(access(legacy, F_OK), -1);
	write_image(legacy, "web2", true);
	assert_int_equal(snapfile_recover(&w.n[0].sf, true, &st), 0);
	assert_string_equal(st.left, legacy);
	assert_int_equal(access(legacy, F_OK), 0);
	world_free(&w);
}

/* A peer's leftover claim and part are reported with their node and left. */
static void test_peer_leftovers_reported(void **state)
{
	const enum script s[] = { RESTART, RESTART };
	struct snapfile_state st;
	struct world w;

	world_init(&w, s, 2, -1);
	assert_int_equal(rename(w.n[0].sf.image, w.n[1].sf.claim), 0);
	write_image(w.n[1].sf.part, VM, false);
	assert_int_equal(snapfile_recover(&w.n[0].sf, false, &st), 0);
	assert_false(st.image);
	assert_string_equal(st.claimed_by, "n2");
	assert_string_equal(st.saving_on, "n2");
	assert_int_equal(access(w.n[1].sf.claim, F_OK), 0);
	assert_int_equal(access(w.n[1].sf.part, F_OK), 0);
	assert_int_equal(snapfile_recover(&w.n[0].sf, true, &st), 0);
	assert_int_equal(access(w.n[1].sf.claim, F_OK), 0);
	world_free(&w);
}

static void test_dir_check(void **state)
{
	char dir[128], path[PATH_MAX], foreign[64] = "";

	snprintf(dir, sizeof(dir), "%s/check", tmp_root);
	assert_int_equal(snapfile_dir_check(dir, foreign, sizeof(foreign)), 0); /* missing */
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(snapfile_dir_check(dir, foreign, sizeof(foreign)), 0);
	snprintf(path, sizeof(path), "%s/web1.odrs-save.part.n1", dir);
	write_raw(path, "");
	snprintf(path, sizeof(path), "%s/web2.odrs-save", dir);
	write_raw(path, "x");
	snprintf(path, sizeof(path), "%s/web3.img", dir);
	write_image(path, "web3", true);
	snprintf(path, sizeof(path), "%s/lost+found", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(snapfile_dir_check(dir, foreign, sizeof(foreign)), 0);
	snprintf(path, sizeof(path), "%s/web4.img", dir);
	write_raw(path, "raw disk");
	assert_int_equal(snapfile_dir_check(dir, foreign, sizeof(foreign)), -ENOTEMPTY);
	assert_string_equal(foreign, "web4.img");
	unlink(path);
	snprintf(path, sizeof(path), "%s/web5.odrs-save.bak", dir);
	write_raw(path, "x");
	assert_int_equal(snapfile_dir_check(dir, foreign, sizeof(foreign)), -ENOTEMPTY);
	assert_string_equal(foreign, "web5.odrs-save.bak");
}

static void test_init(void **state)
{
	struct snapfile sf;

	assert_int_equal(snapfile_init(&sf, "/d", "web1", "n1"), 0);
	assert_string_equal(sf.image, "/d/web1.odrs-save");
	assert_string_equal(sf.part, "/d/web1.odrs-save.part.n1");
	assert_string_equal(sf.claim, "/d/web1.odrs-save.restoring.n1");
	assert_int_equal(snapfile_init(&sf, "/d", "../x", "n1"), -EINVAL);
	assert_int_equal(snapfile_init(&sf, "/d", ".x", "n1"), -EINVAL);
	assert_int_equal(snapfile_init(&sf, "/d", "x", "a/b"), -EINVAL);
	assert_int_equal(snapfile_init(&sf, "/d", "", "n1"), -EINVAL);
}

static int setup(void **state)
{
	snprintf(tmp_root, sizeof(tmp_root), "/tmp/test_snapfile.XXXXXX");
	return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_header_check),
		cmocka_unit_test(test_save_peer_restarts),
		cmocka_unit_test(test_restore_peer_restarts),
		cmocka_unit_test(test_failed_restore_peer_restarts),
		cmocka_unit_test(test_two_restores_one_wins),
		cmocka_unit_test(test_three_nodes),
		cmocka_unit_test(test_claim_of_running_vm),
		cmocka_unit_test(test_legacy_image),
		cmocka_unit_test(test_peer_leftovers_reported),
		cmocka_unit_test(test_dir_check),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
