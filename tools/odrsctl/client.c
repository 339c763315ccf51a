/*
 * The control socket, client side (the protocol is described in
 * odrsd/control.h): one JSON request line out, JSON answer lines back, the
 * last of which has "ok".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "odrsctl.h"

/* A request sent, its answer still to read. */
struct ctl_pending {
	const char *path;
	FILE *in;
	int fd;
	char *line;
	size_t cap;
};

/* The whole of buf, or -1 with errno; MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE. */
static int send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Connect and send req. NULL after reporting why, with *rc the exit code. */
static struct ctl_pending *conn_request(const char *path, json_t *req, int *rc)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ctl_pending *c;
	char *text;
	int err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "odrsctl: %s: socket path too long\n", path);
		*rc = EXIT_USAGE;
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (!(c = calloc(1, sizeof(*c))) || !(text = json_dumps(req, JSON_COMPACT))) {
		free(c);
		fprintf(stderr, "odrsctl: %s\n", strerror(ENOMEM));
		*rc = EXIT_FAILED;
		return NULL;
	}
	c->path = path;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = errno;
		fprintf(stderr, "odrsctl: cannot connect to %s: %s\n", path, strerror(err));
		*rc = c->fd < 0 ? EXIT_FAILED : EXIT_UNREACHABLE;
		goto fail;
	}
	if (send_all(c->fd, text, strlen(text)) < 0 || send_all(c->fd, "\n", 1) < 0) {
		fprintf(stderr, "odrsctl: %s: %s\n", path, strerror(errno));
		*rc = EXIT_UNREACHABLE;
		goto fail;
	}
	if (!(c->in = fdopen(c->fd, "r"))) {
		fprintf(stderr, "odrsctl: %s\n", strerror(errno));
		*rc = EXIT_FAILED;
		goto fail;
	}
	free(text);
	return c;
fail:
	if (c->fd >= 0)
		close(c->fd);
	free(text);
	free(c);
	return NULL;
}

/*
 * The next answer line as a JSON object, or NULL after reporting why: the
 * connection dropped (*rc = EXIT_UNREACHABLE) or the line is not a JSON
 * object (*rc = EXIT_FAILED).
 */
static json_t *conn_next(struct ctl_pending *c, int *rc)
{
	json_error_t jerr;
	ssize_t n;
	json_t *ans;

	errno = 0;
	n = getline(&c->line, &c->cap, c->in);
	/* A last line without its newline is a connection cut mid-answer. */
	if (n <= 0 || c->line[n - 1] != '\n') {
		if (n < 0 && errno)
			fprintf(stderr, "odrsctl: %s: %s\n", c->path, strerror(errno));
		else
			fprintf(stderr, "odrsctl: %s: connection closed before the answer\n", c->path);
		*rc = EXIT_UNREACHABLE;
		return NULL;
	}
	ans = json_loadb(c->line, (size_t)n, 0, &jerr);
	if (!ans || !json_is_object(ans)) {
		fprintf(stderr, "odrsctl: %s: bad answer from the daemon: %s\n", c->path,
			ans ? "not an object" : jerr.text);
		json_decref(ans);
		*rc = EXIT_FAILED;
		return NULL;
	}
	return ans;
}

static void conn_close(struct ctl_pending *c)
{
	if (!c)
		return;
	fclose(c->in);
	free(c->line);
	free(c);
}

struct ctl_pending *ctl_send(struct ctl *ctl, json_t *req, int *rc)
{
	const char *path = ctl_socket_path(ctl);
	struct ctl_pending *c;

	if (!req) {
		fprintf(stderr, "odrsctl: %s\n", strerror(ENOMEM));
		*rc = EXIT_FAILED;
		return NULL;
	}
	if (!path) {
		json_decref(req);
		*rc = EXIT_USAGE;
		return NULL;
	}
	c = conn_request(path, req, rc);
	json_decref(req);
	return c;
}

json_t *ctl_answer(struct ctl_pending *c, const char *label, progress_fn progress, void *arg, int *rc)
{
	json_t *ans, *err;

	while ((ans = conn_next(c, rc)) && !json_object_get(ans, "ok")) {
		/* Lines without "ok" are progress reports (or extensions we skip). */
		if (progress && json_is_object(json_object_get(ans, "progress")))
			progress(json_object_get(ans, "progress"), arg);
		json_decref(ans);
	}
	conn_close(c);
	if (ans && !json_is_true(json_object_get(ans, "ok"))) {
		err = json_object_get(ans, "error");
		fprintf(stderr, "odrsctl: %s%s%s\n", label ? label : "", label ? ": " : "",
			json_is_string(err) ? json_string_value(err)
					    : "the daemon refused, giving no reason");
		json_decref(ans);
		ans = NULL;
		*rc = EXIT_FAILED;
	}
	return ans;
}

json_t *ctl_call(struct ctl *ctl, json_t *req, progress_fn progress, void *arg, int *rc)
{
	struct ctl_pending *p = ctl_send(ctl, req, rc);

	return p ? ctl_answer(p, NULL, progress, arg, rc) : NULL;
}
