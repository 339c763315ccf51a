#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "evlog.h"
#include "log.h"

static struct {
	char *path;
	char *node;
	int fd;
	dev_t dev;
	ino_t ino;
} ev = { .fd = -1 };

static int evlog_reopen(void)
{
	struct stat st;
	int fd = open(ev.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (ev.fd >= 0)
		close(ev.fd);
	ev.fd = fd;
	ev.dev = st.st_dev;
	ev.ino = st.st_ino;
	return 0;
}

int evlog_open(const char *path, const char *node)
{
	free(ev.path);
	free(ev.node);
	ev.path = strdup(path);
	ev.node = strdup(node);
	if (!ev.path || !ev.node)
		return -ENOMEM;
	return evlog_reopen();
}

void evlog_close(void)
{
	if (ev.fd >= 0)
		close(ev.fd);
	ev.fd = -1;
	free(ev.path);
	free(ev.node);
	ev.path = ev.node = NULL;
}

/* A rotation by rename leaves us writing to the old inode: follow the path. */
static void evlog_follow_rotation(void)
{
	struct stat st;

	if (stat(ev.path, &st) < 0 || st.st_dev != ev.dev || st.st_ino != ev.ino) {
		int r = evlog_reopen();
		if (r < 0)
			log_err("event log %s: %s", ev.path, strerror(-r));
	}
}

json_t *evlog_time(double t)
{
	time_t sec = (time_t)t;
	struct tm tm;
	char ts[40], date[24];

	gmtime_r(&sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts, sizeof(ts), "%s.%03dZ", date, (int)((t - (double)sec) * 1000));
	return json_string(ts);
}

void evlog_emit(const char *event, const char *vm, json_t *fields)
{
	struct timespec now;
	json_t *o = json_object();
	char *line;

	clock_gettime(CLOCK_REALTIME, &now);
	json_object_set_new(o, "ts", evlog_time((double)now.tv_sec + now.tv_nsec / 1e9));
	json_object_set_new(o, "event", json_string(event));
	json_object_set_new(o, "node", json_string(ev.node ? ev.node : ""));
	if (vm)
		json_object_set_new(o, "vm", json_string(vm));
	if (fields)
		json_object_update(o, fields);
	json_decref(fields);
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!line)
		return;
	log_debug("event %s", line);
	if (ev.path) {
		evlog_follow_rotation();
		if (ev.fd >= 0) {
			size_t n = strlen(line);
			line[n] = '\n';
			/* One write(2) with O_APPEND: a line is never interleaved or split. */
			if (write(ev.fd, line, n + 1) != (ssize_t)(n + 1))
				log_err("event log %s: %s", ev.path, strerror(errno));
		}
	}
	free(line);
}

/*
 * Per-frame events, aggregated. One entry per (event, vm, key) seen lately;
 * the first occurrence is written at once with "count": 1, the next ones of
 * the interval are counted, and at its end one line with the last one's
 * fields and "count": how many it stands for. An entry quiet for a whole
 * interval is forgotten: its next occurrence is a first again. Bounded
 * whatever the flood: at most EVLOG_FIRSTS first lines an interval (past
 * them a first is counted like the rest), and at most EVLOG_FIRSTS closing
 * lines, the others folded into one line per event, with "vms".
 */
#define EVLOG_BUCKETS 4096
#define EVLOG_FIRSTS  100

struct agg {
	struct agg *next;
	char event[32], vm[128], key[64];
	uint64_t count; /* occurrences not written yet */
	bool active;	/* seen in this interval */
	json_t *last;	/* fields of the last one not written */
};

static struct {
	struct ev_loop *loop;
	ev_timer tick;
	struct agg *bucket[EVLOG_BUCKETS];
	size_t n;
	unsigned firsts; /* first lines written this interval */
} agg;

static unsigned agg_hash(const char *event, const char *vm, const char *key)
{
	uint32_t h = 2166136261u;

	for (const char *s = event; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	for (const char *s = vm; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	h = (h ^ '/') * 16777619u;
	for (const char *s = key; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % EVLOG_BUCKETS;
}

static void agg_write(const char *event, const char *vm, json_t *fields, uint64_t count)
{
	if (!fields)
		fields = json_object();
	json_object_set_new(fields, "count", json_integer((json_int_t)count));
	evlog_emit(event, vm[0] ? vm : NULL, fields);
}

/* Events past the closing lines' budget: one line per event name, in order of appearance. */
struct fold {
	const char *event;
	uint64_t count, vms;
};

static void fold_add(struct fold *folds, size_t *nfolds, const struct agg *a)
{
	size_t i;

	for (i = 0; i < *nfolds && strcmp(folds[i].event, a->event); i++)
		;
	if (i == *nfolds) {
		if (*nfolds == EVLOG_FIRSTS)
			i--; /* as many event names as that: the last line takes the rest */
		else
			folds[(*nfolds)++] = (struct fold){ .event = a->event };
	}
	folds[i].count += a->count;
	folds[i].vms++;
}

static void on_agg_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fold folds[EVLOG_FIRSTS];
	size_t nfolds = 0;
	unsigned lines = 0;

	for (size_t b = 0; b < EVLOG_BUCKETS; b++) {
		struct agg **link = &agg.bucket[b], *a;
		while ((a = *link)) {
			if (a->count && lines < EVLOG_FIRSTS) {
				agg_write(a->event, a->vm, a->last, a->count);
				a->last = NULL;
				lines++;
			} else if (a->count) {
				fold_add(folds, &nfolds, a);
			}
			json_decref(a->last);
			a->last = NULL;
			a->count = 0;
			if (a->active) {
				a->active = false;
				link = &a->next;
				continue;
			}
			*link = a->next;
			free(a);
			agg.n--;
		}
	}
	/* Folded lines count too ("count" the frames, "vms" the entries): their names outlive nothing. */
	for (size_t i = 0; i < nfolds; i++)
		evlog_emit(folds[i].event, NULL,
			   json_pack("{s:I, s:I}", "count", (json_int_t)folds[i].count, "vms",
				     (json_int_t)folds[i].vms));
	agg.firsts = 0;
	if (!agg.n)
		ev_timer_stop(loop, w);
}

void evlog_aggregate_start(struct ev_loop *loop)
{
	agg.loop = loop;
	ev_timer_init(&agg.tick, on_agg_tick, EVLOG_INTERVAL_MS / 1000., EVLOG_INTERVAL_MS / 1000.);
}

void evlog_aggregate_stop(void)
{
	if (agg.loop) {
		/* What was counted is written before the log closes. */
		for (size_t b = 0; b < EVLOG_BUCKETS; b++)
			for (struct agg *a = agg.bucket[b]; a; a = a->next)
				a->active = false;
		on_agg_tick(agg.loop, &agg.tick, 0);
		ev_timer_stop(agg.loop, &agg.tick);
	}
	agg.loop = NULL;
}

void evlog_frame(const char *event, const char *vm, const char *key, json_t *fields)
{
	unsigned h;
	struct agg *a;

	if (!agg.loop) {
		evlog_emit(event, vm, fields);
		return;
	}
	vm = vm ? vm : "";
	key = key ? key : "";
	h = agg_hash(event, vm, key);
	for (a = agg.bucket[h]; a; a = a->next)
		if (!strcmp(a->event, event) && !strcmp(a->vm, vm) && !strcmp(a->key, key))
			break;
	if (!a) {
		if (!(a = calloc(1, sizeof(*a)))) {
			json_decref(fields);
			return;
		}
		snprintf(a->event, sizeof(a->event), "%s", event);
		snprintf(a->vm, sizeof(a->vm), "%s", vm);
		snprintf(a->key, sizeof(a->key), "%s", key);
		a->next = agg.bucket[h];
		agg.bucket[h] = a;
		if (!agg.n++)
			ev_timer_again(agg.loop, &agg.tick);
		a->active = true;
		if (agg.firsts < EVLOG_FIRSTS) {
			agg.firsts++;
			agg_write(event, vm, fields, 1);
			return;
		}
	}
	a->active = true;
	a->count++;
	json_decref(a->last);
	a->last = fields;
}
