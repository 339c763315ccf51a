/*
 * odrsctl events: print the wake-event log (JSON Lines, see odrsd(8)),
 * filtered, as readable lines or as they are; -f follows it like tail -F.
 * Works on the file alone: no daemon needed.
 *
 * Following across rotation, without losing or repeating a line:
 *  - copytruncate: the file was truncated and what follows starts at 0.
 *    Its size alone does not tell: the writer may have written as much
 *    again by the time we look. So the bytes we last read just before our
 *    offset, and the file's first bytes, must still be there; otherwise
 *    (or when the file is shorter than our offset) it was truncated. Only a
 *    rewrite identical in both places goes unnoticed, and event lines carry
 *    a timestamp;
 *  - rename (logrotate's create, or odrsd making a new file): the path
 *    names another inode. odrsd keeps appending to the old file until it
 *    notices, so the old file is read until the new one has data (one
 *    writer: once it writes the new file it is done with the old), then
 *    read to its end, then the new one is read from its start.
 * Only complete lines are printed; the partial line at the end of a file
 * is kept until its newline arrives.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "odrsctl.h"

#define FOLLOW_POLL_NS	 (200 * 1000 * 1000)
#define FOLLOW_DEFAULT_N 10
/* The bytes kept from a file's start and from just before the offset, to tell a truncation. */
#define MARK_BYTES 64

struct events {
	const char *vm;	   /* --vm: only events with this vm */
	const char *event; /* --event: only this event */
	bool json;	   /* print lines as they are */
	bool warn;	   /* report lines that are not JSON */
	/* The last matching lines, while reading the backlog with -n N. */
	char **ring;
	size_t nring, ring_next, ring_count;
	bool backlog;
};

struct reader {
	const char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	off_t off; /* bytes read from fd */
	char *buf; /* bytes read but not yet a complete line */
	size_t len, cap;
	unsigned long lineno;  /* of the last complete line */
	char head[MARK_BYTES]; /* the file's first head_len bytes */
	size_t head_len;
	char tail[MARK_BYTES]; /* the tail_len bytes before off */
	size_t tail_len;
};

/* Fields of the events INTERFACE.md lists, in its order; the rest follow in the line's order. */
static const struct {
	const char *event;
	const char *fields[4];
} event_fields[] = {
	{ "arp_reply", { "ip", "requester" } },
	{ "ndp_reply", { "ip", "requester" } },
	{ "syn_held", { "client", "port" } },
	{ "flow_held", { "client", "port" } },
	{ "udp_held", { "client", "port" } },
	{ "wake_start", { "trigger", "client", "target_node" } },
	{ "wake_done", { "ms", "restore_ms", "trigger", "target_node" } },
	{ "syn_replayed", { "count", "ms" } },
	{ "wake_failed", { "error" } },
	{ "wake_limited", { "trigger", "limit", "client" } },
	{ "hibernate_start", { "reason" } },
	{ "hibernate_done", { "bytes", "ms" } },
	{ "hibernate_failed", { "error" } },
	{ "doze_start", { "reason" } },
	{ "doze_done", { "bytes_out", "resident_bytes", "ms" } },
	{ "doze_failed", { "error" } },
	{ "idle_skip", { "reason" } },
	{ "accept_acquired", { "term" } },
	{ "accept_released", { "term" } },
	{ "retrain", { "count", "ms" } },
	{ "fenced", { "reason", "accept" } },
	{ "node_lost", { "lost_node", "vms" } },
	{ "domain_event", { "libvirt", "was" } },
	{ "trigger_refused", { "trigger", "reason", "count" } },
};

/* A value after `key=`: plain words as they are, anything else as JSON, so a line splits on spaces. */
static void print_value(FILE *f, const json_t *v)
{
	const char *s;
	char *dump;

	if (json_is_string(v)) {
		s = json_string_value(v);
		if (*s && !s[strcspn(s, " \t\r\n\"=\\")]) {
			fputs(s, f);
			return;
		}
	}
	dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	fputs(dump ? dump : "?", f);
	free(dump);
}

static void print_word(FILE *f, const json_t *v)
{
	if (v)
		print_value(f, v);
	else
		fputc('-', f);
}

/* `TS VM EVENT key=value ...`: the event's own fields first, then any other in the line's order. */
static void format_event(FILE *f, json_t *o)
{
	const json_t *ev = json_object_get(o, "event");
	const char *const *known = NULL;
	const char *key;
	json_t *v;
	size_t i, k;

	print_word(f, json_object_get(o, "ts"));
	fputc(' ', f);
	print_word(f, json_object_get(o, "vm"));
	fputc(' ', f);
	print_word(f, ev);
	for (i = 0; json_is_string(ev) && i < sizeof(event_fields) / sizeof(event_fields[0]); i++)
		if (strcmp(json_string_value(ev), event_fields[i].event) == 0)
			known = event_fields[i].fields;
	for (k = 0; known && k < 4 && known[k]; k++) {
		if ((v = json_object_get(o, known[k]))) {
			fprintf(f, " %s=", known[k]);
			print_value(f, v);
		}
	}
	json_object_foreach(o, key, v)
	{
		if (!strcmp(key, "ts") || !strcmp(key, "vm") || !strcmp(key, "event"))
			continue;
		for (k = 0; known && k < 4 && known[k]; k++)
			if (strcmp(key, known[k]) == 0)
				break;
		if (known && k < 4 && known[k])
			continue;
		fprintf(f, " %s=", key);
		print_value(f, v);
	}
	fputc('\n', f);
}

static bool matches(const struct events *e, json_t *o)
{
	const json_t *v;

	if (e->vm && (!json_is_string(v = json_object_get(o, "vm")) || strcmp(json_string_value(v), e->vm)))
		return false;
	if (e->event &&
	    (!json_is_string(v = json_object_get(o, "event")) || strcmp(json_string_value(v), e->event)))
		return false;
	return true;
}

/* Print the output line, or keep it among the last N while reading the backlog. */
static int emit(struct events *e, const char *line, size_t len, json_t *o)
{
	char *text = NULL;
	size_t tlen;
	FILE *f;

	if (!e->backlog) {
		if (e->json)
			printf("%.*s\n", (int)len, line);
		else
			format_event(stdout, o);
		return 0;
	}
	if (e->nring == 0)
		return 0;
	if (!(f = open_memstream(&text, &tlen)))
		return -ENOMEM;
	if (e->json)
		fprintf(f, "%.*s\n", (int)len, line);
	else
		format_event(f, o);
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	free(e->ring[e->ring_next]);
	e->ring[e->ring_next] = text;
	e->ring_next = (e->ring_next + 1) % e->nring;
	if (e->ring_count < e->nring)
		e->ring_count++;
	return 0;
}

/* Print what the backlog kept, oldest first; from now on lines print at once. */
static void end_backlog(struct events *e)
{
	size_t i, at;

	for (i = 0; i < e->ring_count; i++) {
		at = (e->ring_next + e->nring - e->ring_count + i) % e->nring;
		fputs(e->ring[at], stdout);
		free(e->ring[at]);
		e->ring[at] = NULL;
	}
	e->ring_count = 0;
	e->backlog = false;
}

/*
 * One line, without its newline. complete: it ended with a newline; a
 * file's unterminated tail is taken only when it parses (a writer may be
 * halfway through it) and never reported.
 */
static int take_line(struct events *e, const struct reader *r, const char *line, size_t len, bool complete)
{
	json_t *o;
	int err = 0;

	if (len && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 0;
	o = json_loadb(line, len, 0, NULL);
	if (!json_is_object(o)) {
		if (e->warn && complete)
			fprintf(stderr, "odrsctl: %s:%lu: not JSON\n", r->path, r->lineno);
	} else if (matches(e, o)) {
		err = emit(e, line, len, o);
	}
	json_decref(o);
	return err;
}

/* Keep the file's first bytes and the last ones read from chunk, read at offset at. */
static void reader_mark(struct reader *r, const char *chunk, size_t n, off_t at)
{
	size_t keep;

	if (at < MARK_BYTES) {
		keep = n < MARK_BYTES - (size_t)at ? n : MARK_BYTES - (size_t)at;
		memcpy(r->head + at, chunk, keep);
		r->head_len = (size_t)at + keep;
	}
	if (n >= MARK_BYTES) {
		memcpy(r->tail, chunk + n - MARK_BYTES, MARK_BYTES);
		r->tail_len = MARK_BYTES;
		return;
	}
	keep = r->tail_len + n > MARK_BYTES ? MARK_BYTES - n : r->tail_len;
	memmove(r->tail, r->tail + r->tail_len - keep, keep);
	memcpy(r->tail + keep, chunk, n);
	r->tail_len = keep + n;
}

/* Read fd to its current end, taking every complete line. 0 or -errno. */
static int reader_drain(struct reader *r, struct events *e)
{
	char chunk[65536], *nl, *start;
	ssize_t n;
	size_t need;
	int err;

	for (;;) {
		n = read(r->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		reader_mark(r, chunk, (size_t)n, r->off);
		r->off += n;
		need = r->len + (size_t)n;
		if (need > r->cap) {
			char *grown = realloc(r->buf, need * 2);

			if (!grown)
				return -ENOMEM;
			r->buf = grown;
			r->cap = need * 2;
		}
		memcpy(r->buf + r->len, chunk, (size_t)n);
		r->len = need;
		start = r->buf;
		while ((nl = memchr(start, '\n', r->len - (size_t)(start - r->buf)))) {
			r->lineno++;
			if ((err = take_line(e, r, start, (size_t)(nl - start), true)) < 0)
				return err;
			start = nl + 1;
		}
		r->len -= (size_t)(start - r->buf);
		memmove(r->buf, start, r->len);
	}
}

/* The unterminated tail of a file we are done with. */
static int reader_finish(struct reader *r, struct events *e)
{
	int err = take_line(e, r, r->buf, r->len, false);

	r->len = 0;
	return err;
}

/* Open path into r (its buffer kept). 0 or -errno. */
static int reader_open(struct reader *r, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	r->path = path;
	r->fd = fd;
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	r->off = 0;
	r->len = 0;
	r->lineno = 0;
	r->head_len = 0;
	r->tail_len = 0;
	return 0;
}

static int fail(const char *path, int err)
{
	fprintf(stderr, "odrsctl: %s: %s\n", path, strerror(-err));
	return EXIT_FAILED;
}

/* Whether fd still holds the len bytes of want at offset at. 1, 0 or -errno. */
static int still_there(int fd, const char *want, size_t len, off_t at)
{
	char got[MARK_BYTES];
	ssize_t n;

	do
		n = pread(fd, got, len, at);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len && memcmp(got, want, len) == 0;
}

/*
 * The log was truncated under us (copytruncate), perhaps written again
 * past our offset since: what follows starts at 0. Checked before reading
 * on, so nothing after the old offset is taken for the old file's rest.
 */
static int check_truncated(struct reader *r)
{
	struct stat st;
	int same = 1;

	if (fstat(r->fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	if (st.st_size >= r->off &&
	    ((same = still_there(r->fd, r->tail, r->tail_len, r->off - (off_t)r->tail_len)) == 1) &&
	    (same = still_there(r->fd, r->head, r->head_len, 0)) == 1)
		return 0;
	if (same < 0)
		return same;
	/* The partial line's rest went into the copy: it cannot be completed. */
	r->len = 0;
	r->lineno = 0;
	r->off = 0;
	r->head_len = 0;
	r->tail_len = 0;
	if (lseek(r->fd, 0, SEEK_SET) < 0)
		return -errno;
	return 0;
}

/*
 * The path names a new file (rename rotation): once that file has data,
 * finish the old one and continue with the new. 0 or -errno.
 */
static int check_renamed(struct reader *r, struct events *e, const char *path)
{
	struct reader next = { 0 };
	struct stat st;
	int err;

	if (stat(path, &st) < 0 || (st.st_dev == r->dev && st.st_ino == r->ino) || st.st_size == 0)
		return 0;
	if ((err = reader_open(&next, path)) < 0)
		return err == -ENOENT ? 0 : err;
	if ((err = reader_drain(r, e)) < 0 || (err = reader_finish(r, e)) < 0) {
		close(next.fd);
		return err;
	}
	close(r->fd);
	next.buf = r->buf;
	next.cap = r->cap;
	*r = next;
	return reader_drain(r, e);
}

static void pause_poll(void)
{
	struct timespec ts = { 0, FOLLOW_POLL_NS };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int follow(struct reader *r, struct events *e, const char *path)
{
	bool told = false;
	int err;

	while ((err = reader_open(r, path)) == -ENOENT) {
		if (!told)
			fprintf(stderr, "odrsctl: %s: %s; waiting for it\n", path, strerror(ENOENT));
		told = true;
		pause_poll();
	}
	if (err < 0 || (err = reader_drain(r, e)) < 0)
		return fail(path, err);
	end_backlog(e);
	for (;;) {
		if (fflush(stdout) == EOF)
			return fail("stdout", -errno);
		pause_poll();
		if ((err = check_truncated(r)) < 0 || (err = reader_drain(r, e)) < 0 ||
		    (err = check_renamed(r, e, path)) < 0)
			return fail(r->path, err);
	}
}

int cmd_events(struct ctl *c, int argc, char **argv)
{
	enum { OPT_VM = 256, OPT_EVENT, OPT_JSON };
	static const struct option longopts[] = {
		{ "vm", required_argument, NULL, OPT_VM },
		{ "event", required_argument, NULL, OPT_EVENT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct events e = { 0 };
	struct reader r = { .fd = -1 };
	const char *path = NULL;
	bool follow_opt = false;
	long n = -1;
	char *end;
	int opt, err, rc = EXIT_DONE;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:fn:l:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			follow_opt = true;
			break;
		case 'n':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 0 ||
			    (unsigned long)n > SIZE_MAX / sizeof(char *)) {
				usage_error("events: -n wants a number of lines, not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'l':
			path = optarg;
			break;
		case OPT_VM:
			e.vm = optarg;
			break;
		case OPT_EVENT:
			e.event = optarg;
			break;
		case OPT_JSON:
			e.json = true;
			break;
		case ':':
			usage_error("events: '%s' wants an argument", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			usage_error("events: unknown option '%s'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		usage_error("events: unexpected '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (!path && !(path = ctl_event_log_path(c)))
		return EXIT_USAGE;
	/* Like tail: all lines, or the last 10 before following. */
	if (n < 0 && follow_opt)
		n = FOLLOW_DEFAULT_N;
	if (n >= 0) {
		e.backlog = true;
		e.nring = (size_t)n;
		if (n > 0 && !(e.ring = calloc(e.nring, sizeof(*e.ring))))
			return fail(path, -ENOMEM);
	}
	if (follow_opt) {
		/* Lines appear as they come, also through a pipe. */
		setvbuf(stdout, NULL, _IOLBF, 0);
		rc = follow(&r, &e, path);
	} else {
		e.warn = true;
		if ((err = reader_open(&r, path)) < 0 || (err = reader_drain(&r, &e)) < 0 ||
		    (err = reader_finish(&r, &e)) < 0)
			rc = fail(path, err);
		else
			end_backlog(&e);
	}
	if (r.fd >= 0)
		close(r.fd);
	free(r.buf);
	for (size_t i = 0; i < e.nring && e.ring; i++)
		free(e.ring[i]);
	free(e.ring);
	return rc;
}
