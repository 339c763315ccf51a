/*
 * Runs one odrsd/virt.c job through an ev loop, the way odrsd does, and
 * prints its result as one JSON line: the test driver of tests/virt.
 *
 *   virt_drive URI SNAPDIR NODE save|restore|inspect|save-close DOMAIN
 *
 * save-close starts a save and calls virt_close() as soon as libvirt is
 * writing its part file (snapfile.h): virt_close() must wait for the save and
 * not call done(); "done_called" and "closed" tell what happened.
 *
 * Exit: 0 the job succeeded (save-close: close returned), 1 it failed,
 * 2 usage or setup error.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfile.h"
#include "virt.h"

struct drive {
	struct virt *virt;
	struct virt_job job;
	const char *close_when; /* save-close: close once this file exists */
	bool done_called;
	bool on_loop_thread; /* done() ran on the loop's thread */
	bool closed;
	pthread_t loop_thread;
	uint64_t progress_seen; /* largest progress_total read by the loop */
};

static void on_done(struct virt_job *job, void *ctx)
{
	struct drive *d = ctx;

	d->done_called = job == &d->job;
	d->on_loop_thread = pthread_equal(pthread_self(), d->loop_thread);
	ev_break(EV_DEFAULT, EVBREAK_ALL);
}

/* Progress is read on the loop while the job runs, as odrsd's progress stream does. */
static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct drive *d = t->data;
	uint64_t total = __atomic_load_n(&d->job.progress_total, __ATOMIC_RELAXED);

	if (total > d->progress_seen)
		d->progress_seen = total;
	if (d->close_when && access(d->close_when, F_OK) == 0) {
		virt_close(d->virt);
		d->closed = true;
		ev_break(loop, EVBREAK_ALL);
	}
}

static const char *state_name(enum virt_state s)
{
	switch (s) {
	case VIRT_RUNNING:
		return "running";
	case VIRT_HIBERNATED:
		return "hibernated";
	case VIRT_STOPPED:
		return "stopped";
	case VIRT_MISSING:
		return "missing";
	}
	return "?";
}

static int print_result(const struct drive *d, const char *op)
{
	const struct virt_job *job = &d->job;
	char mac[18] = "", *line;
	json_t *out;

	if (job->has_mac)
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", job->mac[0], job->mac[1],
			 job->mac[2], job->mac[3], job->mac[4], job->mac[5]);
	out = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I,"
			" s:I, s:I, s:I, s:b, s:b, s:b}",
			"op", op, "name", job->name, "err", job->err, "errno",
			job->err ? strerrorname_np(-job->err) : "", "error", job->error, "state",
			state_name(job->state), "tap", job->tap, "mac", mac, "bytes", (json_int_t)job->bytes,
			"ms", (json_int_t)job->ms, "progress_done", (json_int_t)job->progress_done,
			"progress_total", (json_int_t)job->progress_total, "progress_seen",
			(json_int_t)d->progress_seen, "done_called", d->done_called, "loop_thread",
			d->on_loop_thread, "closed", d->closed);
	line = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	if (!line) {
		fprintf(stderr, "virt_drive: cannot format the result\n");
		return -1;
	}
	puts(line);
	free(line);
	return 0;
}

int main(int argc, char **argv)
{
	static struct snapfile sf;
	static struct drive d;
	const char *op;
	ev_timer tick;
	int r;

	if (argc != 6) {
		fprintf(stderr, "usage: virt_drive URI SNAPDIR NODE"
				" save|restore|inspect|save-close DOMAIN\n");
		return 2;
	}
	op = argv[4];
	if (strcmp(op, "save") == 0) {
		d.job.op = VIRT_SAVE;
	} else if (strcmp(op, "save-close") == 0) {
		d.job.op = VIRT_SAVE;
		if (snapfile_init(&sf, argv[2], argv[5], argv[3]) < 0) {
			fprintf(stderr, "virt_drive: bad SNAPDIR, NODE or DOMAIN\n");
			return 2;
		}
		d.close_when = sf.part;
	} else if (strcmp(op, "restore") == 0) {
		d.job.op = VIRT_RESTORE;
	} else if (strcmp(op, "inspect") == 0) {
		d.job.op = VIRT_INSPECT;
	} else {
		fprintf(stderr, "virt_drive: unknown operation %s\n", op);
		return 2;
	}
	d.job.name = argv[5];
	d.loop_thread = pthread_self();

	r = virt_open(&d.virt, EV_DEFAULT, argv[1], argv[2], argv[3], 1, 1, on_done, &d);
	if (r < 0) {
		fprintf(stderr, "virt_drive: virt_open: %s\n", strerror(-r));
		return 2;
	}
	ev_timer_init(&tick, on_tick, 0.05, 0.05);
	tick.data = &d;
	ev_timer_start(EV_DEFAULT, &tick);
	virt_submit(d.virt, &d.job);
	ev_run(EV_DEFAULT, 0);
	ev_timer_stop(EV_DEFAULT, &tick);
	if (!d.closed)
		virt_close(d.virt);

	if (print_result(&d, op) < 0)
		return 2;
	if (d.close_when)
		return d.closed && !d.done_called ? 0 : 1;
	return d.done_called && !d.job.err ? 0 : 1;
}
