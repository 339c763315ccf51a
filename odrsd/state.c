/*
 * What odrsd knows about a VM that neither libvirt nor snapshot_dir says:
 * whether it is pinned, how long its last wake took, and whether a doze
 * paused it (a paused domain is dozing only then). One JSON file per
 * VM in state_dir, replaced atomically.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "evlog.h"
#include "log.h"
#include "odrsd.h"

static void state_path(const struct odrsd *d, const struct vm *vm, char *buf, size_t len, const char *suffix)
{
	snprintf(buf, len, "%s/%s.json%s", d->cfg->state_dir, vm->name, suffix);
}

void state_load(struct odrsd *d, struct vm *vm)
{
	char path[4096];
	json_t *o, *v;

	state_path(d, vm, path, sizeof(path), "");
	if (!(o = json_load_file(path, 0, NULL)))
		return;
	if ((v = json_object_get(o, "pinned")))
		vm->pinned = json_is_true(v);
	if ((v = json_object_get(o, "last_wake_ms")) && json_is_integer(v))
		vm->last_wake_ms = json_integer_value(v);
	if ((v = json_object_get(o, "dozed")))
		vm->dozed = json_is_true(v);
	json_decref(o);
}

/* path replaced by len bytes of data, durably: temp file, fsync, rename, fsync of the directory. */
static int replace_file(const char *dir, const char *path, const char *tmp, const char *data, size_t len)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), r = 0;
	size_t done = 0;

	if (fd < 0)
		return -errno;
	while (done < len && r == 0) {
		ssize_t n = write(fd, data + done, len - done);

		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n > 0)
			done += (size_t)n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	/* The rename itself is durable only once the directory is. */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int state_save(struct odrsd *d, const struct vm *vm)
{
	char path[4096], tmp[4096];
	json_t *o = json_pack("{s:b, s:I, s:b}", "pinned", vm->pinned, "last_wake_ms",
			      (json_int_t)vm->last_wake_ms, "dozed", vm->dozed);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	int r = text ? 0 : -ENOMEM;

	state_path(d, vm, path, sizeof(path), "");
	state_path(d, vm, tmp, sizeof(tmp), ".tmp");
	if (r == 0)
		r = replace_file(d->cfg->state_dir, path, tmp, text, strlen(text));
	if (r < 0)
		log_err("%s: cannot write %s: %s", vm->name, path, strerror(-r));
	free(text);
	json_decref(o);
	return r;
}
