/*
 * What odrsd knows about a VM that neither libvirt nor snapshot_dir says:
 * whether it is pinned and how long its last wake took. One JSON file per
 * VM in state_dir, replaced atomically.
 */
#include <errno.h>
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
	json_decref(o);
}

int state_save(struct odrsd *d, const struct vm *vm)
{
	char path[4096], tmp[4096];
	json_t *o =
		json_pack("{s:b, s:I}", "pinned", vm->pinned, "last_wake_ms", (json_int_t)vm->last_wake_ms);
	int r = 0;

	state_path(d, vm, path, sizeof(path), "");
	state_path(d, vm, tmp, sizeof(tmp), ".tmp");
	if (!o || json_dump_file(o, tmp, JSON_COMPACT) < 0 || rename(tmp, path) < 0) {
		r = -EIO;
		unlink(tmp);
		log_err("%s: cannot write %s", vm->name, path);
	}
	json_decref(o);
	return r;
}
