/*
 * Control-protocol requests over arbitrary bytes: no crash, no leak, no
 * undefined behaviour; a request that parses names a known command, and
 * its strings are bounded, terminated and free of control characters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wake/ctl.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	if (n == max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == '/')
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wk_ctl_request req;
	char err[256];

	if (wk_ctl_parse((const char *)data, size, &req, err, sizeof(err)) < 0) {
		if (err[0] == '\0' || strnlen(err, sizeof(err)) == sizeof(err))
			abort();
		return 0;
	}
	if (strcmp(wk_ctl_cmd_name(req.cmd), "unknown") == 0)
		abort();
	check_name(req.vm, sizeof(req.vm));
	check_name(req.move, sizeof(req.move));
	if ((req.cmd == WK_CTL_WAKE || req.cmd == WK_CTL_HIBERNATE || req.cmd == WK_CTL_PIN ||
	     req.cmd == WK_CTL_UNPIN) &&
	    req.vm[0] == '\0')
		abort();
	return 0;
}
