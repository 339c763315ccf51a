/*
 * The control protocol's requests (odrsd's control socket, odrsctl): one
 * JSON object per line. Parsing is pure and bounded, so odrsd acts only on
 * requests that are whole and well formed, and the fuzzer can reach it.
 */
#ifndef WAKE_CTL_H
#define WAKE_CTL_H

#include <stdbool.h>
#include <stddef.h>

enum wk_ctl_cmd {
	WK_CTL_STATUS,
	WK_CTL_LIST,
	WK_CTL_HIBERNATE,
	WK_CTL_WAKE,
	WK_CTL_PIN,
	WK_CTL_UNPIN,
	WK_CTL_RELOAD,
	WK_CTL_ACCEPT,
	WK_CTL_DOZE,
};

#define WK_CTL_LINE_MAX 4096 /* a longer request is refused */

struct wk_ctl_request {
	enum wk_ctl_cmd cmd;
	char vm[128];  /* hibernate, doze, wake, pin, unpin: the VM */
	char move[65]; /* accept: the node to hand the role to; "" to show */
	bool progress; /* hibernate, doze, wake: report progress while waiting */
};

/*
 * Parse one request (len bytes, no newline). 0, or -EINVAL with the reason,
 * one line of text, in err. Unknown members are ignored, so newer clients
 * keep working with older daemons.
 */
int wk_ctl_parse(const char *line, size_t len, struct wk_ctl_request *out, char *err, size_t errlen);
const char *wk_ctl_cmd_name(enum wk_ctl_cmd cmd);

#endif
