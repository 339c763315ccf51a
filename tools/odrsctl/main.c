/*
 * odrsctl [-s SOCKET] [-c FILE] COMMAND: the global options, the
 * configuration (read only when a path it names is needed), the verbs.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wake/config.h>

#include "odrsctl.h"

static const char usage_text[] =
	"usage: odrsctl [-s SOCKET] [-c FILE] COMMAND\n"
	"       odrsctl -V | -h | --help\n"
	"commands:\n"
	"  status [--json]              the daemon's state and counters\n"
	"  list [--json]                one row per VM\n"
	"  show [--json] VM             one VM: its state, since when, its error, why it\n"
	"                               stayed up, the last wake refused and why\n"
	"  hibernate VM                 save VM now; returns when hibernated\n"
	"  doze VM                      pause VM, its memory to swap; returns when dozing\n"
	"  wake VM... | wake --all      restore now (--all: every VM not running);\n"
	"                               returns when all run, or reports each failure\n"
	"  pin VM | unpin VM            exempt from / return to automatic hibernation\n"
	"  events [-f] [-n N] [-l FILE] [--vm VM] [--event NAME] [--json]\n"
	"                               print the wake-event log (no daemon needed)\n"
	"  report [--since T] [--until T] [--vm VM] [-l FILE] [--json]\n"
	"                               per VM: time asleep, wakes, memory-hours freed\n"
	"  accept [move NODE]           show the accept-role holder, or hand it to NODE\n"
	"  reload                       re-read the daemon's configuration\n"
	"exit: 0 done, 1 failed, 2 usage or configuration error, 3 daemon unreachable\n";

void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("odrsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	fputs("usage: odrsctl [-s SOCKET] [-c FILE] COMMAND; odrsctl -h lists the commands\n", stderr);
}

void print_scalar(FILE *f, const json_t *v)
{
	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_STRING:
		fputs(json_string_value(v), f);
		break;
	case JSON_INTEGER:
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		fprintf(f, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		fputs("true", f);
		break;
	case JSON_FALSE:
		fputs("false", f);
		break;
	case JSON_NULL:
		fputs("-", f);
		break;
	default: {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		fputs(s ? s : "?", f);
		free(s);
	}
	}
}

static void config_diag(void *ctx, const char *file, unsigned line, const char *msg)
{
	char text[1024];

	wk_diag_format(text, sizeof(text), file, line, msg);
	fprintf(stderr, "%s\n", text);
}

/*
 * Read the paths from the configuration. 0, or -1 after reporting an
 * explicit -c FILE that cannot be read. A file that is invalid (or, without
 * -c, unreadable) is reported and passed over for the built-in defaults:
 * odrsctl needs only a path or two, and is what an operator reaches for
 * while the configuration is being fixed. what and fallback name the
 * default the caller will use, for the warning.
 */
static int load_config(struct ctl *c, const char *what, const char *fallback)
{
	const char *path = c->config_opt;
	struct wk_config *cfg;
	int r;

	if (c->config_loaded)
		return 0;
	/* Only an explicit -c must exist: without it the built-in defaults serve. */
	if (!path) {
		if (access(DEFAULT_CONFIG, F_OK) < 0 && errno == ENOENT) {
			c->config_loaded = true;
			return 0;
		}
		path = DEFAULT_CONFIG;
	}
	if ((r = wk_config_load(path, config_diag, NULL, &cfg)) < 0) {
		if (r != -EINVAL && c->config_opt)
			return -1;
		fprintf(stderr, "odrsctl: warning: %s cannot be used; using the default %s %s\n", path, what,
			fallback);
		c->config_loaded = true;
		return 0;
	}
	if (cfg->control_socket && !(c->control_socket = strdup(cfg->control_socket)))
		goto nomem;
	if (cfg->event_log && !(c->event_log = strdup(cfg->event_log)))
		goto nomem;
	wk_config_free(cfg);
	c->config_loaded = true;
	return 0;
nomem:
	wk_config_free(cfg);
	fprintf(stderr, "odrsctl: %s\n", strerror(ENOMEM));
	return -1;
}

const char *ctl_socket_path(struct ctl *c)
{
	if (c->socket_opt)
		return c->socket_opt;
	if (load_config(c, "socket", DEFAULT_SOCKET) < 0)
		return NULL;
	return c->control_socket ? c->control_socket : DEFAULT_SOCKET;
}

const char *ctl_event_log_path(struct ctl *c)
{
	if (load_config(c, "event log", DEFAULT_EVENT_LOG) < 0)
		return NULL;
	return c->event_log ? c->event_log : DEFAULT_EVENT_LOG;
}

static const struct verb {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
} verbs[] = {
	{ "status", cmd_status }, { "list", cmd_list },	    { "hibernate", cmd_hibernate },
	{ "wake", cmd_wake },	  { "pin", cmd_pin },	    { "unpin", cmd_unpin },
	{ "events", cmd_events }, { "accept", cmd_accept }, { "reload", cmd_reload },
	{ "doze", cmd_doze },	  { "report", cmd_report }, { "show", cmd_show },
};

int main(int argc, char **argv)
{
	struct ctl c = { 0 };
	size_t i;
	int opt, rc;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	/* '+': options after COMMAND belong to the verb. */
	while ((opt = getopt_long(argc, argv, "+s:c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c.socket_opt = optarg;
			break;
		case 'c':
			c.config_opt = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_DONE;
		case 'V':
			printf("odrsctl %s\n", ODRS_VERSION);
			return EXIT_DONE;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage_error("no command");
		return EXIT_USAGE;
	}
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(argv[optind], verbs[i].name) != 0)
			continue;
		/* The verb parses argv[optind..] with getopt from the start. */
		argc -= optind;
		argv += optind;
		optind = 0;
		rc = verbs[i].run(&c, argc, argv);
		if (fflush(stdout) == EOF || ferror(stdout)) {
			fprintf(stderr, "odrsctl: stdout: %s\n", strerror(errno));
			if (rc == EXIT_DONE)
				rc = EXIT_FAILED;
		}
		free(c.control_socket);
		free(c.event_log);
		return rc;
	}
	usage_error("unknown command '%s'", argv[optind]);
	return EXIT_USAGE;
}
