#include <errno.h>
#include <fcntl.h>
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
