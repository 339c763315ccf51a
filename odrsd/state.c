/*
 * What odrsd knows about a VM that neither libvirt nor snapshot_dir says:
 * whether it is pinned, how long its last wake took, and whether a doze
 * paused it (a paused domain is dozing only then). One JSON file per
 * VM in state_dir, replaced atomically and durably by a thread of its own:
 * the fsyncs never block the loop. Writes run in the order they were asked
 * for; one still queued for a VM is replaced by a later one for that VM
 * (its content is older). The loop learns of each end through an ev_async
 * and tells control.c, which answers the requests that waited for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

/* One file to write, then (on the done list) its result. */
struct state_write {
	char vm[128];
	char path[4096], tmp[4096], dir[4096];
	char *text;
	int64_t ticket;
	int err;
	struct state_write *next;
};

struct state_writer {
	struct odrsd *d;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t queued;
	struct state_write *queue, *done; /* FIFO; LIFO of ends (each VM's come in order) */
	bool stopping;
	int64_t last_ticket;
	ev_async finished;
};

static void *writer_run(void *arg)
{
	struct state_writer *w = arg;
	struct state_write *s;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->queue && !w->stopping)
			pthread_cond_wait(&w->queued, &w->lock);
		/* Stopping, what is queued is still written: a pin asked for survives the exit. */
		if (!(s = w->queue))
			break;
		w->queue = s->next;
		pthread_mutex_unlock(&w->lock);
		s->err = replace_file(s->dir, s->path, s->tmp, s->text, strlen(s->text));
		pthread_mutex_lock(&w->lock);
		s->next = w->done;
		w->done = s;
		ev_async_send(w->d->loop, &w->finished);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void write_free(struct state_write *s)
{
	free(s->text);
	free(s);
}

static void on_written(struct ev_loop *loop, ev_async *watcher, int revents)
{
	struct state_writer *w = watcher->data;
	struct state_write *s, *next, *ends = NULL;

	pthread_mutex_lock(&w->lock);
	s = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->lock);
	/* Oldest first. */
	for (; s; s = next) {
		next = s->next;
		s->next = ends;
		ends = s;
	}
	for (s = ends; s; s = next) {
		next = s->next;
		if (s->err < 0)
			log_err("%s: cannot write %s: %s", s->vm, s->path, strerror(-s->err));
		control_state_saved(w->d, s->vm, s->ticket, s->err);
		write_free(s);
	}
}

int state_start(struct odrsd *d)
{
	struct state_writer *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->d = d;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->queued, NULL);
	ev_async_init(&w->finished, on_written);
	w->finished.data = w;
	if ((r = -pthread_create(&w->thread, NULL, writer_run, w)) < 0) {
		pthread_cond_destroy(&w->queued);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return r;
	}
	ev_async_start(d->loop, &w->finished);
	d->state_writer = w;
	return 0;
}

void state_stop(struct odrsd *d)
{
	struct state_writer *w = d->state_writer;
	struct state_write *s, *next;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->queued);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	ev_async_stop(d->loop, &w->finished);
	/* Written; nobody waits any more. */
	for (s = w->done; s; s = next) {
		next = s->next;
		if (s->err < 0)
			log_err("%s: cannot write %s: %s", s->vm, s->path, strerror(-s->err));
		write_free(s);
	}
	pthread_cond_destroy(&w->queued);
	pthread_mutex_destroy(&w->lock);
	free(w);
	d->state_writer = NULL;
}

int64_t state_save(struct odrsd *d, const struct vm *vm)
{
	struct state_writer *w = d->state_writer;
	json_t *o = json_pack("{s:b, s:I, s:b}", "pinned", vm->pinned, "last_wake_ms",
			      (json_int_t)vm->last_wake_ms, "dozed", vm->dozed);
	struct state_write *s = calloc(1, sizeof(*s)), **p;
	int64_t ticket;

	if (!s || !o || !(s->text = json_dumps(o, JSON_COMPACT))) {
		log_err("%s: out of memory for its state", vm->name);
		json_decref(o);
		free(s);
		return -ENOMEM;
	}
	json_decref(o);
	snprintf(s->vm, sizeof(s->vm), "%s", vm->name);
	snprintf(s->dir, sizeof(s->dir), "%s", d->cfg->state_dir);
	state_path(d, vm, s->path, sizeof(s->path), "");
	state_path(d, vm, s->tmp, sizeof(s->tmp), ".tmp");
	pthread_mutex_lock(&w->lock);
	s->ticket = ticket = ++w->last_ticket;
	for (p = &w->queue; *p && strcmp((*p)->vm, s->vm); p = &(*p)->next)
		;
	if (*p) {
		/* Not started yet: this one, newer, takes its place; its end answers both. */
		s->next = (*p)->next;
		write_free(*p);
	}
	*p = s;
	pthread_cond_signal(&w->queued);
	pthread_mutex_unlock(&w->lock);
	return ticket;
}
