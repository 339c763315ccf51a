/*
 * The configuration loader over arbitrary files: no crash, no leak, no
 * undefined behaviour, and every diagnostic is well formed. The input goes
 * through a memfd so the loader reads it exactly as it reads a real file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <wake/config.h>

struct check {
	const char *path;
	unsigned lines; /* in the input */
	unsigned ndiags;
};

static void on_diag(void *ctx, const char *file, unsigned line, const char *msg)
{
	struct check *c = ctx;

	if (strcmp(file, c->path) != 0 || line > c->lines || msg[0] == '\0')
		abort();
	c->ndiags++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct check c = { .path = path, .lines = 1 };
	struct wk_config *cfg = NULL;
	size_t i;
	int rc;

	if (fd < 0) {
		if ((fd = memfd_create("fuzz_config", 0)) < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	for (i = 0; i < size; i++)
		c.lines += data[i] == '\n';
	rc = wk_config_load(path, on_diag, &c, &cfg);
	/* Success exactly when nothing was reported. */
	if ((rc == 0) != (c.ndiags == 0) || (rc == 0) != (cfg != NULL))
		abort();
	if (cfg != NULL) {
		for (i = 0; i < cfg->nvms; i++)
			if (wk_config_vm(cfg, cfg->vms[i].name) == NULL)
				abort();
		wk_config_free(cfg);
	}
	return 0;
}
