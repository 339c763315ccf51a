/* The wake-event log: JSON Lines, appended, safe to rotate (see odrsd(8)). */
#ifndef ODRSD_EVLOG_H
#define ODRSD_EVLOG_H
#include <ev.h>
#include <jansson.h>
int evlog_open(const char *path, const char *node);
void evlog_close(void);
/*
 * Append {"ts","event","node","vm",...fields} as one line. fields (may be
 * NULL) is a jansson object whose reference is stolen. vm may be NULL.
 */
void evlog_emit(const char *event, const char *vm, json_t *fields);
/* A time (seconds since the epoch, as ev_time()) as the log's "ts" writes it: RFC 3339, UTC, ms. */
json_t *evlog_time(double t);

/*
 * A per-frame event (a reply, a held SYN, a refused trigger), aggregated per
 * (event, vm, key) and EVLOG_INTERVAL_MS as odrsd(8) says: the first at
 * once with "count": 1, the rest in one line with "count" at the interval's
 * end. key (may be NULL) tells apart what is counted apart (a reason).
 * Steals fields. Before evlog_aggregate_start(), written as they come.
 */
#define EVLOG_INTERVAL_MS 1000
void evlog_frame(const char *event, const char *vm, const char *key, json_t *fields);
void evlog_aggregate_start(struct ev_loop *loop);
/* Writes what is counted. */
void evlog_aggregate_stop(void);
#endif
