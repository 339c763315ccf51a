/*
 * The daemon's own messages: syslog, and stderr too in the foreground,
 * unless stderr is the journal (under systemd), which syslog reaches.
 */
#ifndef ODRSD_LOG_H
#define ODRSD_LOG_H
#include <syslog.h>
void log_init(const char *ident, int foreground, int debug);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#endif
