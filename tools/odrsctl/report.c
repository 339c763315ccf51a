/*
 * odrsctl report: what sleeping saved, per VM, from the wake-event log
 * alone (no daemon): the share of the window each VM slept, its wakes with
 * their median and 90th percentile, and the memory-hours freed.
 *
 * A VM sleeps from its hibernate_done or doze_done to its next wake_start
 * (or wake_done, when the log has no wake_start for it). While it sleeps it
 * frees what that event says: a hibernation the bytes of its image, a doze
 * the bytes it paged out. Memory-hours are those bytes times the time slept
 * inside the window. Wakes are the wake_done events in the window; the
 * percentiles are nearest-rank (the median of 4 is the 2nd).
 *
 * The log and its rotations are read oldest first: FILE.N ... FILE.1, then
 * FILE, each also as FILE.N.gz (logrotate's compress), through zlib, which
 * reads plain files as they are.
 */
#include <errno.h>
#include <getopt.h>
#include <search.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <wake/config.h>

#include "odrsctl.h"

#define ROTATIONS_MAX 1000 /* FILE.1 .. FILE.1000 are looked for */

struct vm_report {
	char *name;
	int64_t asleep_since; /* ms; -1: awake */
	uint64_t asleep_bytes;
	int64_t asleep_ms; /* inside the window */
	double byte_ms;	   /* bytes freed times ms, inside the window */
	int64_t *wake_ms;
	size_t nwakes, cap;
};

struct report {
	const struct report_opts *o;
	int64_t since, until; /* the window, ms since the epoch */
	int64_t first;	      /* the first event's time; -1: none yet */
	void *root;	      /* struct vm_report by name (tsearch) */
	struct vm_report **vms;
	size_t nvms, cap;
	bool oom;
};

int report_parse_time(const char *s, int64_t *ms)
{
	struct tm tm = { 0 };
	int n = 0, frac = 0, digits = 0;
	time_t t;

	if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
		return -EINVAL;
	s += n;
	if (*s == 'T') {
		if (sscanf(s, "T%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 3 || n != 9)
			return -EINVAL;
		s += n;
		if (*s == '.')
			for (s++; *s >= '0' && *s <= '9'; s++, digits++)
				if (digits < 3)
					frac = frac * 10 + (*s - '0');
		if (s[-1] == '.')
			return -EINVAL;
		for (; digits < 3; digits++)
			frac *= 10;
		if (*s == 'Z')
			s++;
	}
	if (*s || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -EINVAL;
	*ms = (int64_t)t * 1000 + frac;
	return 0;
}

static void format_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char date[24];

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", date, (int)(ms % 1000));
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct vm_report *)a)->name, ((const struct vm_report *)b)->name);
}

static struct vm_report *vm_get(struct report *r, const char *name)
{
	struct vm_report key = { .name = (char *)name }, *v, **found;

	if ((found = tfind(&key, &r->root, by_name)))
		return *found;
	if (r->nvms == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct vm_report **vms = realloc(r->vms, cap * sizeof(*vms));

		if (!vms)
			goto oom;
		r->vms = vms;
		r->cap = cap;
	}
	if (!(v = calloc(1, sizeof(*v))) || !(v->name = strdup(name))) {
		free(v);
		goto oom;
	}
	v->asleep_since = -1;
	if (!tsearch(v, &r->root, by_name)) {
		free(v->name);
		free(v);
		goto oom;
	}
	r->vms[r->nvms++] = v;
	return v;
oom:
	r->oom = true;
	return NULL;
}

/* It wakes (or the window ends) at t: what it slept inside the window counts. */
static void sleep_end(struct report *r, struct vm_report *v, int64_t t)
{
	int64_t from = v->asleep_since > r->since ? v->asleep_since : r->since,
		to = t < r->until ? t : r->until;

	if (v->asleep_since < 0)
		return;
	if (to > from) {
		v->asleep_ms += to - from;
		v->byte_ms += (double)v->asleep_bytes * (double)(to - from);
	}
	v->asleep_since = -1;
}

static void sleep_start(struct report *r, struct vm_report *v, int64_t t, const json_t *bytes)
{
	sleep_end(r, v, t);
	v->asleep_since = t;
	v->asleep_bytes = json_is_integer(bytes) && json_integer_value(bytes) > 0
				  ? (uint64_t)json_integer_value(bytes)
				  : 0;
}

static void wake_note(struct report *r, struct vm_report *v, int64_t t, const json_t *ms)
{
	sleep_end(r, v, t);
	if (t < r->since || !json_is_integer(ms))
		return;
	if (v->nwakes == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		int64_t *w = realloc(v->wake_ms, cap * sizeof(*w));

		if (!w) {
			r->oom = true;
			return;
		}
		v->wake_ms = w;
		v->cap = cap;
	}
	v->wake_ms[v->nwakes++] = json_integer_value(ms);
}

static void take_event(struct report *r, const char *line, size_t len)
{
	json_t *o = json_loadb(line, len, 0, NULL);
	const char *ev, *vm;
	struct vm_report *v;
	int64_t t;

	if (!json_is_object(o) || !json_is_string(json_object_get(o, "ts")) ||
	    report_parse_time(json_string_value(json_object_get(o, "ts")), &t) < 0 || t > r->until)
		goto done;
	if (r->first < 0)
		r->first = t;
	ev = json_string_value(json_object_get(o, "event"));
	vm = json_string_value(json_object_get(o, "vm"));
	if (!ev || !vm || (r->o->vm && strcmp(vm, r->o->vm)) || !(v = vm_get(r, vm)))
		goto done;
	if (!strcmp(ev, "hibernate_done"))
		sleep_start(r, v, t, json_object_get(o, "bytes"));
	else if (!strcmp(ev, "doze_done"))
		sleep_start(r, v, t, json_object_get(o, "bytes_out"));
	else if (!strcmp(ev, "wake_start"))
		sleep_end(r, v, t);
	else if (!strcmp(ev, "wake_done"))
		wake_note(r, v, t, json_object_get(o, "ms"));
done:
	json_decref(o);
}

/* Every line of one file (plain or gzip). 0, or -errno. */
static int read_file(struct report *r, const char *path)
{
	gzFile f = gzopen(path, "rb");
	char *line = NULL;
	size_t len = 0, cap = 0;
	int c, err = 0;

	if (!f)
		return errno ? -errno : -ENOMEM;
	while ((c = gzgetc(f)) != -1) {
		if (len + 1 >= cap) {
			char *grown = realloc(line, cap ? cap * 2 : 4096);

			if (!grown) {
				err = -ENOMEM;
				break;
			}
			line = grown;
			cap = cap ? cap * 2 : 4096;
		}
		if (c != '\n') {
			line[len++] = (char)c;
			continue;
		}
		take_event(r, line, len);
		len = 0;
	}
	if (!err && len)
		take_event(r, line, len); /* the last line, if the writer finished it */
	if (!err && !gzeof(f))
		err = -EIO;
	free(line);
	gzclose(f);
	return err;
}

/* FILE.n or FILE.n.gz, whichever exists, into path; false when neither does. */
static bool rotation(const char *log, unsigned n, char *path, size_t len)
{
	snprintf(path, len, "%s.%u", log, n);
	if (access(path, F_OK) == 0)
		return true;
	snprintf(path, len, "%s.%u.gz", log, n);
	return access(path, F_OK) == 0;
}

static int cmp_ms(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int cmp_vm(const void *a, const void *b)
{
	return by_name(*(const struct vm_report *const *)a, *(const struct vm_report *const *)b);
}

/* The nearest-rank percentile p (0..100] of the sorted ms[0..n), n > 0. */
static int64_t percentile(const int64_t *ms, size_t n, unsigned p)
{
	size_t rank = (n * p + 99) / 100;

	return ms[rank ? rank - 1 : 0];
}

static double gib_hours(const struct vm_report *v)
{
	return v->byte_ms / (1024.0 * 1024 * 1024) / 3600000.0;
}

static void print_text(const struct report *r, FILE *out)
{
	char since[32], until[32];
	int width = 2;

	format_time(r->since, since, sizeof(since));
	format_time(r->until, until, sizeof(until));
	fprintf(out, "from %s to %s (%.1f h)\n", since, until, (double)(r->until - r->since) / 3600000.0);
	for (size_t i = 0; i < r->nvms; i++)
		if ((int)strlen(r->vms[i]->name) > width)
			width = (int)strlen(r->vms[i]->name);
	fprintf(out, "%-*s %7s %6s %10s %10s %10s\n", width, "VM", "ASLEEP", "WAKES", "MEDIAN_MS", "P90_MS",
		"GIB_HOURS");
	for (size_t i = 0; i < r->nvms; i++) {
		const struct vm_report *v = r->vms[i];
		double share = r->until > r->since
				       ? 100.0 * (double)v->asleep_ms / (double)(r->until - r->since)
				       : 0;
		char median[24] = "-", p90[24] = "-";

		if (v->nwakes) {
			snprintf(median, sizeof(median), "%lld",
				 (long long)percentile(v->wake_ms, v->nwakes, 50));
			snprintf(p90, sizeof(p90), "%lld", (long long)percentile(v->wake_ms, v->nwakes, 90));
		}
		fprintf(out, "%-*s %6.1f%% %6zu %10s %10s %10.3f\n", width, v->name, share, v->nwakes, median,
			p90, gib_hours(v));
	}
}

static int print_json(const struct report *r, FILE *out)
{
	char since[32], until[32], *s;
	json_t *vms = json_array(), *o;

	for (size_t i = 0; vms && i < r->nvms; i++) {
		const struct vm_report *v = r->vms[i];
		double window = (double)(r->until - r->since);

		o = json_pack("{s:s, s:f, s:I, s:I, s:o, s:o, s:f}", "vm", v->name, "asleep_share",
			      window > 0 ? (double)v->asleep_ms / window : 0.0, "asleep_s",
			      (json_int_t)(v->asleep_ms / 1000), "wakes", (json_int_t)v->nwakes,
			      "wake_ms_median",
			      v->nwakes ? json_integer(percentile(v->wake_ms, v->nwakes, 50)) : json_null(),
			      "wake_ms_p90",
			      v->nwakes ? json_integer(percentile(v->wake_ms, v->nwakes, 90)) : json_null(),
			      "memory_gib_hours", gib_hours(v));
		if (!o || json_array_append_new(vms, o) < 0) {
			json_decref(vms);
			return -ENOMEM;
		}
	}
	format_time(r->since, since, sizeof(since));
	format_time(r->until, until, sizeof(until));
	if (!(o = json_pack("{s:s, s:s, s:o}", "since", since, "until", until, "vms", vms)))
		return -ENOMEM;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(o);
	if (!s)
		return -ENOMEM;
	fprintf(out, "%s\n", s);
	free(s);
	return 0;
}

static void report_free(struct report *r)
{
	for (size_t i = 0; i < r->nvms; i++) {
		tdelete(r->vms[i], &r->root, by_name);
		free(r->vms[i]->name);
		free(r->vms[i]->wake_ms);
		free(r->vms[i]);
	}
	free(r->vms);
}

int report_write(const struct report_opts *o, FILE *out)
{
	struct report r = { .o = o, .first = -1 };
	char path[4096];
	unsigned n = 0;
	int err = 0;

	r.until = o->until_ms;
	/* Without --since the window starts at the first event: nothing before it needs clipping. */
	r.since = o->has_since ? o->since_ms : INT64_MIN;
	while (n < ROTATIONS_MAX && rotation(o->log, n + 1, path, sizeof(path)))
		n++;
	for (; n > 0 && !err; n--) {
		rotation(o->log, n, path, sizeof(path));
		if ((err = read_file(&r, path)) < 0)
			fprintf(stderr, "odrsctl: %s: %s\n", path, strerror(-err));
	}
	if (!err && (err = read_file(&r, o->log)) < 0)
		fprintf(stderr, "odrsctl: %s: %s\n", o->log, strerror(-err));
	if (!o->has_since)
		r.since = r.first >= 0 ? r.first : r.until;
	if (!err && o->vm && !vm_get(&r, o->vm))
		err = -ENOMEM;
	for (size_t i = 0; !err && i < r.nvms; i++) {
		sleep_end(&r, r.vms[i], r.until);
		if (r.vms[i]->nwakes)
			qsort(r.vms[i]->wake_ms, r.vms[i]->nwakes, sizeof(int64_t), cmp_ms);
	}
	if (!err && r.oom)
		err = -ENOMEM;
	if (!err) {
		if (r.nvms)
			qsort(r.vms, r.nvms, sizeof(*r.vms), cmp_vm);
		if (o->json)
			err = print_json(&r, out);
		else
			print_text(&r, out);
		if (err)
			fprintf(stderr, "odrsctl: %s\n", strerror(-err));
	} else if (err == -ENOMEM) {
		fprintf(stderr, "odrsctl: %s\n", strerror(ENOMEM));
	}
	report_free(&r);
	return err ? EXIT_FAILED : EXIT_DONE;
}

/* --since/--until: a time (2026-11-23, 2026-11-23T09:00:00Z), or a duration before --until (24h). */
static int parse_when(const char *opt, const char *s, bool ago_ok, int64_t *ms)
{
	uint64_t ago;

	if (report_parse_time(s, ms) == 0)
		return 0;
	if (ago_ok && wk_parse_duration(s, &ago) == 0) {
		*ms -= (int64_t)ago; /* *ms is --until */
		return 0;
	}
	usage_error("report: %s wants a time like 2026-11-23T09:00:00Z%s, not '%s'", opt,
		    ago_ok ? " or a duration like 24h" : "", s);
	return -EINVAL;
}

int cmd_report(struct ctl *c, int argc, char **argv)
{
	enum { OPT_SINCE = 256, OPT_UNTIL, OPT_VM, OPT_JSON };
	static const struct option longopts[] = {
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "vm", required_argument, NULL, OPT_VM },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct report_opts o = { 0 };
	const char *since = NULL, *until = NULL;
	struct timespec now;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:l:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			o.log = optarg;
			break;
		case OPT_SINCE:
			since = optarg;
			break;
		case OPT_UNTIL:
			until = optarg;
			break;
		case OPT_VM:
			o.vm = optarg;
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case ':':
			usage_error("report: '%s' wants an argument", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			usage_error("report: unknown option '%s'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		usage_error("report: unexpected '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	o.until_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	if (until && parse_when("--until", until, false, &o.until_ms) < 0)
		return EXIT_USAGE;
	o.since_ms = o.until_ms; /* a duration counts back from it */
	if (since && parse_when("--since", since, true, &o.since_ms) < 0)
		return EXIT_USAGE;
	o.has_since = since != NULL;
	if (since && o.since_ms > o.until_ms) {
		usage_error("report: --since %s is after --until", since);
		return EXIT_USAGE;
	}
	if (!o.log && !(o.log = ctl_event_log_path(c)))
		return EXIT_USAGE;
	return report_write(&o, stdout);
}
