/* The wake-event log: JSON Lines, appended, safe to rotate (see odrsd(8)). */
#ifndef ODRSD_EVLOG_H
#define ODRSD_EVLOG_H
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
#endif
