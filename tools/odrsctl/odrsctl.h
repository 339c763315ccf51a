/* odrsctl: the control and log client of odrsd. */
#ifndef ODRSCTL_H
#define ODRSCTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes, as INTERFACE.md promises them to scripts. */
enum {
	EXIT_DONE = 0,
	EXIT_FAILED = 1,      /* the daemon answered ok:false, or the operation could not be done */
	EXIT_USAGE = 2,	      /* bad command line or configuration */
	EXIT_UNREACHABLE = 3, /* no daemon, or the connection dropped before the final answer */
};

#define DEFAULT_CONFIG	  "/etc/odrs/odrs.conf"
#define DEFAULT_SOCKET	  "/run/odrs/odrsd.sock"
#define DEFAULT_EVENT_LOG "/var/log/odrs/events.jsonl"

/* What the global options and the configuration say; resolved on demand. */
struct ctl {
	const char *socket_opt; /* -s */
	const char *config_opt; /* -c */
	bool config_loaded;
	char *control_socket; /* from the configuration, or NULL */
	char *event_log;      /* from the configuration, or NULL */
};

/*
 * The socket or event log path to use: the option, else the configuration
 * (-c FILE, or DEFAULT_CONFIG when it exists), else the built-in default,
 * also when the configuration is invalid (after a warning). NULL after
 * reporting an explicit -c FILE that cannot be read (exit EXIT_USAGE).
 */
const char *ctl_socket_path(struct ctl *c);
const char *ctl_event_log_path(struct ctl *c);

/* client.c: one request and its answer lines. */
/* Called with the "progress" object of each progress line. */
typedef void (*progress_fn)(const json_t *progress, void *arg);
/*
 * Send req (the call takes its reference; NULL: out of memory) to the
 * daemon and read to the final answer (the line with "ok"), passing
 * progress lines to progress (may be NULL). Returns the final
 * answer when it has "ok":true; otherwise NULL after reporting the error
 * on stderr, with *rc set to the exit code.
 */
json_t *ctl_call(struct ctl *c, json_t *req, progress_fn progress, void *arg, int *rc);
/*
 * The same in two steps, for requests that run at once (wake VM...):
 * ctl_send connects and sends req (taking its reference), NULL after
 * reporting why with *rc set; ctl_answer reads to the final answer and
 * closes, as ctl_call does, its error prefixed with "label: " when label
 * is not NULL.
 */
struct ctl_pending;
struct ctl_pending *ctl_send(struct ctl *c, json_t *req, int *rc);
json_t *ctl_answer(struct ctl_pending *p, const char *label, progress_fn progress, void *arg, int *rc);

/* commands.c: the verbs that talk to the daemon. */
int cmd_status(struct ctl *c, int argc, char **argv);
int cmd_list(struct ctl *c, int argc, char **argv);
int cmd_show(struct ctl *c, int argc, char **argv);
int cmd_hibernate(struct ctl *c, int argc, char **argv);
int cmd_doze(struct ctl *c, int argc, char **argv);
int cmd_wake(struct ctl *c, int argc, char **argv);
int cmd_pin(struct ctl *c, int argc, char **argv);
int cmd_unpin(struct ctl *c, int argc, char **argv);
int cmd_accept(struct ctl *c, int argc, char **argv);
int cmd_reload(struct ctl *c, int argc, char **argv);

/* events.c: the wake-event log, read without the daemon. */
int cmd_events(struct ctl *c, int argc, char **argv);

/* report.c: what sleeping saved, from the wake-event log (no daemon needed). */
struct report_opts {
	const char *log;	    /* the event log; its rotations FILE.N[.gz] are read too */
	const char *vm;		    /* only this VM, or NULL */
	bool has_since;		    /* else the window starts at the first event */
	int64_t since_ms, until_ms; /* the window, ms since the epoch */
	bool json;
};
/* The report of o on out; an exit code (errors reported on stderr). */
int report_write(const struct report_opts *o, FILE *out);
/* 2026-11-23, 2026-11-23T09:00:00Z or 2026-11-23T09:00:00.123Z into ms since the epoch: 0 or -EINVAL. */
int report_parse_time(const char *s, int64_t *ms);
int cmd_report(struct ctl *c, int argc, char **argv);

/* main.c */
void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A JSON scalar as text for `key: value` lines and tables; "-" for null or absent. */
void print_scalar(FILE *f, const json_t *v);

#endif
