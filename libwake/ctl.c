/* Control-protocol requests: see wake/ctl.h. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include <wake/config.h>
#include <wake/ctl.h>

_Static_assert(sizeof(((struct wk_ctl_request *)0)->vm) == WK_VM_NAME_MAX + 1,
	       "a VM name the configuration accepts fits a request");

static const char *const cmd_names[] = {
	[WK_CTL_STATUS] = "status", [WK_CTL_LIST] = "list",	[WK_CTL_HIBERNATE] = "hibernate",
	[WK_CTL_WAKE] = "wake",	    [WK_CTL_PIN] = "pin",	[WK_CTL_UNPIN] = "unpin",
	[WK_CTL_RELOAD] = "reload", [WK_CTL_ACCEPT] = "accept", [WK_CTL_DOZE] = "doze",
};

const char *wk_ctl_cmd_name(enum wk_ctl_cmd cmd)
{
	return (size_t)cmd < sizeof(cmd_names) / sizeof(cmd_names[0]) ? cmd_names[cmd] : "unknown";
}

static bool takes_vm(enum wk_ctl_cmd cmd)
{
	return cmd == WK_CTL_HIBERNATE || cmd == WK_CTL_DOZE || cmd == WK_CTL_WAKE || cmd == WK_CTL_PIN ||
	       cmd == WK_CTL_UNPIN;
}

/* A name odrs could have in its configuration: printable, no '/', no space. */
static bool valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n >= max)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || *s == '/')
			return false;
	return true;
}

static int fail(char *err, size_t errlen, const char *fmt, const char *arg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, fmt, arg);
	return -EINVAL;
}

int wk_ctl_parse(const char *line, size_t len, struct wk_ctl_request *out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *req, *v;
	const char *cmd;
	size_t i;
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (len > WK_CTL_LINE_MAX)
		return fail(err, errlen, "%s", "request too long");
	/* JSON_REJECT_DUPLICATES: a request that says two things is refused, not guessed at. */
	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (req == NULL)
		return fail(err, errlen, "bad request: %s", jerr.text);
	if (!json_is_object(req)) {
		r = fail(err, errlen, "%s", "bad request: expected a JSON object");
		goto out;
	}
	if ((cmd = json_string_value(json_object_get(req, "cmd"))) == NULL) {
		r = fail(err, errlen, "%s", "bad request: no \"cmd\"");
		goto out;
	}
	for (i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (strcmp(cmd, cmd_names[i]) == 0)
			break;
	if (i == sizeof(cmd_names) / sizeof(cmd_names[0])) {
		r = fail(err, errlen, "unknown command: %.64s", cmd);
		goto out;
	}
	out->cmd = (enum wk_ctl_cmd)i;
	if (takes_vm(out->cmd)) {
		v = json_object_get(req, "vm");
		if (!json_is_string(v) || !valid_name(json_string_value(v), sizeof(out->vm))) {
			r = fail(err, errlen, "%s: expected \"vm\": a VM's name", cmd_names[i]);
			goto out;
		}
		strcpy(out->vm, json_string_value(v));
		v = json_object_get(req, "progress");
		if (v != NULL && !json_is_boolean(v)) {
			r = fail(err, errlen, "%s: \"progress\" must be true or false", cmd_names[i]);
			goto out;
		}
		out->progress = json_is_true(v);
	}
	if (out->cmd == WK_CTL_ACCEPT && (v = json_object_get(req, "move")) != NULL) {
		if (!json_is_string(v) || !valid_name(json_string_value(v), sizeof(out->move))) {
			r = fail(err, errlen, "%s", "accept: \"move\" must name a node");
			goto out;
		}
		strcpy(out->move, json_string_value(v));
	}
out:
	json_decref(req);
	return r;
}
