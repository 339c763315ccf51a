/* The verbs that ask the daemon: status, list, show, hibernate, doze, wake, pin, unpin, accept, reload. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "odrsctl.h"

/*
 * Parse a verb's arguments: --json when json is not NULL, then between
 * min and max operands. Returns the index of the first operand, or -1
 * after a usage error.
 */
static int parse_args(int argc, char **argv, bool *json, int min, int max)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, n;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+", json ? longopts : longopts + 1, NULL)) != -1) {
		if (opt != 'j') {
			usage_error("%s: unknown option '%s'", argv[0], argv[optind - 1]);
			return -1;
		}
		*json = true;
	}
	n = argc - optind;
	if (n < min || n > max) {
		usage_error("%s: %s", argv[0], n < min ? "missing operand" : "too many operands");
		return -1;
	}
	return optind;
}

static void print_json(const json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	putchar('\n');
}

static int bad_answer(json_t *ans, const char *what)
{
	fprintf(stderr, "odrsctl: bad answer from the daemon: no %s\n", what);
	json_decref(ans);
	return EXIT_FAILED;
}

int cmd_status(struct ctl *c, int argc, char **argv)
{
	static const char *const first[] = { "node", "accept", "vms", "sleeping", "uptime", "version" };
	bool json = false;
	json_t *ans, *st, *v;
	const char *key;
	size_t i;
	int rc = EXIT_DONE;

	if (parse_args(argc, argv, &json, 0, 0) < 0)
		return EXIT_USAGE;
	if (!(ans = ctl_call(c, json_pack("{s:s}", "cmd", "status"), NULL, NULL, &rc)))
		return rc;
	if (!json_is_object(st = json_object_get(ans, "status")))
		return bad_answer(ans, "status");
	if (json) {
		print_json(st);
		json_decref(ans);
		return EXIT_DONE;
	}
	for (i = 0; i < sizeof(first) / sizeof(first[0]); i++) {
		printf("%s: ", first[i]);
		print_scalar(stdout, json_object_get(st, first[i]));
		putchar('\n');
	}
	/* Keys a newer daemon adds, in its order; then the counters. */
	json_object_foreach(st, key, v)
	{
		for (i = 0; i < sizeof(first) / sizeof(first[0]); i++)
			if (strcmp(key, first[i]) == 0)
				break;
		if (i < sizeof(first) / sizeof(first[0]) || strcmp(key, "counters") == 0)
			continue;
		printf("%s: ", key);
		print_scalar(stdout, v);
		putchar('\n');
	}
	json_object_foreach(json_object_get(st, "counters"), key, v)
	{
		printf("%s: ", key);
		print_scalar(stdout, v);
		putchar('\n');
	}
	json_decref(ans);
	return EXIT_DONE;
}

#define LIST_COLS 8
#define NODE_COL  4
static const char *const list_cols[LIST_COLS] = {
	"name", "ip", "mac", "state", "node", "idle_s", "snapshot_bytes", "last_wake_ms",
};

/* A cell's text, as print_scalar writes it; a node gone from the cluster is marked "(lost)". */
static char *cell_text(const json_t *vm, size_t col)
{
	char *s = NULL;
	size_t len;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		return NULL;
	print_scalar(f, json_object_get(vm, list_cols[col]));
	if (col == NODE_COL && json_is_true(json_object_get(vm, "node_lost")))
		fputs("(lost)", f);
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

int cmd_list(struct ctl *c, int argc, char **argv)
{
	bool json = false, header = isatty(STDOUT_FILENO);
	size_t width[LIST_COLS], nrows, r, k;
	json_t *ans, *vms;
	char **cells;
	int rc = EXIT_DONE;

	if (parse_args(argc, argv, &json, 0, 0) < 0)
		return EXIT_USAGE;
	if (!(ans = ctl_call(c, json_pack("{s:s}", "cmd", "list"), NULL, NULL, &rc)))
		return rc;
	if (!json_is_array(vms = json_object_get(ans, "vms")))
		return bad_answer(ans, "vms");
	if (json) {
		print_json(vms);
		json_decref(ans);
		return EXIT_DONE;
	}
	nrows = json_array_size(vms);
	if (!(cells = calloc(nrows * LIST_COLS + 1, sizeof(*cells)))) {
		fprintf(stderr, "odrsctl: %s\n", strerror(ENOMEM));
		json_decref(ans);
		return EXIT_FAILED;
	}
	for (k = 0; k < LIST_COLS; k++)
		width[k] = header ? strlen(list_cols[k]) : 0;
	for (r = 0; r < nrows; r++) {
		for (k = 0; k < LIST_COLS; k++) {
			char **cell = &cells[r * LIST_COLS + k];

			if (!(*cell = cell_text(json_array_get(vms, r), k))) {
				fprintf(stderr, "odrsctl: %s\n", strerror(ENOMEM));
				rc = EXIT_FAILED;
				goto out;
			}
			if (strlen(*cell) > width[k])
				width[k] = strlen(*cell);
		}
	}
	if (header) {
		for (k = 0; k < LIST_COLS; k++) {
			const char *s;

			for (s = list_cols[k]; *s; s++)
				putchar(toupper((unsigned char)*s));
			printf("%*s", k + 1 < LIST_COLS ? (int)(width[k] - strlen(list_cols[k]) + 1) : 0,
			       k + 1 < LIST_COLS ? "" : "\n");
		}
	}
	for (r = 0; r < nrows; r++)
		for (k = 0; k < LIST_COLS; k++)
			printf("%-*s%s", k + 1 < LIST_COLS ? (int)width[k] + 1 : 0, cells[r * LIST_COLS + k],
			       k + 1 < LIST_COLS ? "" : "\n");
out:
	for (r = 0; r < nrows * LIST_COLS; r++)
		free(cells[r]);
	free(cells);
	json_decref(ans);
	return rc;
}

/* A progress line on the terminal, overwritten in place by the next one. */
struct progress_line {
	const char *doing;
	const char *vm;
	int len; /* of the line on screen; 0: none */
};

static void show_progress(const json_t *p, void *arg)
{
	struct progress_line *pl = arg;
	json_t *done = json_object_get(p, "done"), *total = json_object_get(p, "total");
	int n;

	if (!json_is_number(done))
		return;
	if (json_is_number(total) && json_number_value(total) > 0)
		n = printf("\r%s %s: %.1f/%.1f MB", pl->doing, pl->vm, json_number_value(done) / 1e6,
			   json_number_value(total) / 1e6);
	else
		n = printf("\r%s %s: %.1f MB", pl->doing, pl->vm, json_number_value(done) / 1e6);
	n--; /* the \r takes no room */
	if (n < pl->len)
		printf("%*s", pl->len - n, "");
	if (n > pl->len)
		pl->len = n;
	fflush(stdout);
}

static void clear_progress(struct progress_line *pl)
{
	if (pl->len > 0)
		printf("\r%*s\r", pl->len, "");
	pl->len = 0;
}

/* `web1: running (312 ms)`: a hibernate's, doze's or wake's final answer, which it frees. */
static void print_outcome(json_t *ans, const char *name)
{
	json_t *v = json_object_get(ans, "vm");
	bool paren = false;

	printf("%s: ", json_is_string(v) ? json_string_value(v) : name);
	print_scalar(stdout, json_object_get(ans, "state"));
	if (json_is_integer(v = json_object_get(ans, "bytes"))) {
		printf(" (%" JSON_INTEGER_FORMAT " bytes", json_integer_value(v));
		paren = true;
	}
	if (json_is_integer(v = json_object_get(ans, "ms"))) {
		printf("%s%" JSON_INTEGER_FORMAT " ms", paren ? ", " : " (", json_integer_value(v));
		paren = true;
	}
	puts(paren ? ")" : "");
	json_decref(ans);
}

/* A nested object of show: "reason (detail), at TIME", or "-". */
static void print_why(const json_t *o, const char *what, const char *detail, const char *sep)
{
	const json_t *d = json_object_get(o, detail);

	if (!json_is_object(o)) {
		putchar('-');
		return;
	}
	print_scalar(stdout, json_object_get(o, what));
	if (json_is_string(d) && json_string_length(d)) {
		fputs(sep, stdout);
		print_scalar(stdout, d);
	}
	fputs(", at ", stdout);
	print_scalar(stdout, json_object_get(o, "at"));
}

/* show VM: one VM's row of list, with why it is as it is; keys a newer daemon adds follow. */
int cmd_show(struct ctl *c, int argc, char **argv)
{
	static const char *const first[] = {
		"name",		"state",
		"since",	"error",
		"recheck_in_s", "node",
		"ip",		"mac",
		"pinned",	"idle_s",
		"stayed_up",	"refused",
		"sleep",	"hibernate_reason",
		"dozing_since", "snapshot_bytes",
		"last_wake_ms",
	};
	bool json = false;
	json_t *ans, *vms, *vm = NULL, *v, *r;
	const char *key;
	size_t i, k;
	int at, rc = EXIT_DONE;

	if ((at = parse_args(argc, argv, &json, 1, 1)) < 0)
		return EXIT_USAGE;
	if (!(ans = ctl_call(c, json_pack("{s:s}", "cmd", "list"), NULL, NULL, &rc)))
		return rc;
	if (!json_is_array(vms = json_object_get(ans, "vms")))
		return bad_answer(ans, "vms");
	json_array_foreach(vms, i, v) if (json_is_string(json_object_get(v, "name")) &&
					  !strcmp(json_string_value(json_object_get(v, "name")), argv[at]))
		vm = v;
	if (!vm) {
		fprintf(stderr, "odrsctl: unknown VM: %s\n", argv[at]);
		json_decref(ans);
		return EXIT_FAILED;
	}
	if (json) {
		print_json(vm);
		json_decref(ans);
		return EXIT_DONE;
	}
	for (k = 0; k < sizeof(first) / sizeof(first[0]); k++) {
		v = json_object_get(vm, first[k]);
		/* What does not apply to its state is left out; the rest is "-" when unknown. */
		if (json_is_null(v) &&
		    (!strcmp(first[k], "error") || !strcmp(first[k], "recheck_in_s") ||
		     !strcmp(first[k], "hibernate_reason") || !strcmp(first[k], "dozing_since")))
			continue;
		printf("%s: ", first[k]);
		if (!strcmp(first[k], "stayed_up")) {
			print_why(v, "reason", "detail", ": ");
		} else if (!strcmp(first[k], "refused")) {
			if (json_is_object(v)) {
				print_scalar(stdout, json_object_get(v, "trigger"));
				if (json_string_length(r = json_object_get(v, "from"))) {
					fputs(" from ", stdout);
					print_scalar(stdout, r);
				}
				fputs(" by ", stdout);
			}
			print_why(v, "why", "", "");
		} else {
			print_scalar(stdout, v);
		}
		putchar('\n');
	}
	json_object_foreach(vm, key, v)
	{
		for (k = 0; k < sizeof(first) / sizeof(first[0]); k++)
			if (!strcmp(key, first[k]))
				break;
		if (k < sizeof(first) / sizeof(first[0]))
			continue;
		printf("%s: ", key);
		print_scalar(stdout, v);
		putchar('\n');
	}
	json_decref(ans);
	return EXIT_DONE;
}

/* hibernate VM, doze VM, wake VM: the request, progress on a terminal, the outcome. */
static int vm_job(struct ctl *c, const char *verb, const char *vm, const char *doing)
{
	bool tty = isatty(STDOUT_FILENO);
	struct progress_line pl = { .doing = doing, .vm = vm };
	json_t *ans;
	int rc = EXIT_DONE;

	ans = ctl_call(c, json_pack("{s:s, s:s, s:b}", "cmd", verb, "vm", vm, "progress", tty),
		       tty ? show_progress : NULL, &pl, &rc);
	clear_progress(&pl);
	if (!ans)
		return rc;
	print_outcome(ans, vm);
	return EXIT_DONE;
}

int cmd_hibernate(struct ctl *c, int argc, char **argv)
{
	int i = parse_args(argc, argv, NULL, 1, 1);

	return i < 0 ? EXIT_USAGE : vm_job(c, argv[0], argv[i], "saving");
}

/*
 * Wake several VMs at once: every request is sent before any answer is
 * read, so the daemon restores them side by side (as wake_concurrency
 * allows); each outcome or failure is printed, in the order given. The
 * exit code is the worst one.
 */
static int wake_many(struct ctl *c, const char *const *vms, size_t n)
{
	struct ctl_pending **pending = calloc(n ? n : 1, sizeof(*pending));
	int *rcs = calloc(n ? n : 1, sizeof(*rcs));
	int rc = EXIT_DONE;
	size_t i;
	json_t *ans;

	if (!pending || !rcs) {
		fprintf(stderr, "odrsctl: %s\n", strerror(ENOMEM));
		free(pending);
		free(rcs);
		return EXIT_FAILED;
	}
	for (i = 0; i < n; i++)
		pending[i] = ctl_send(
			c, json_pack("{s:s, s:s, s:b}", "cmd", "wake", "vm", vms[i], "progress", 0), &rcs[i]);
	for (i = 0; i < n; i++) {
		if (pending[i] && (ans = ctl_answer(pending[i], vms[i], NULL, NULL, &rcs[i])))
			print_outcome(ans, vms[i]);
		if (rcs[i] > rc)
			rc = rcs[i];
	}
	free(pending);
	free(rcs);
	return rc;
}

/* The VMs of `list` not running: what wake --all wakes. NULL after reporting why. */
static json_t *vms_not_running(struct ctl *c, int *rc)
{
	json_t *ans = ctl_call(c, json_pack("{s:s}", "cmd", "list"), NULL, NULL, rc), *vms, *vm, *names;
	size_t i;

	if (!ans)
		return NULL;
	if (!json_is_array(vms = json_object_get(ans, "vms"))) {
		*rc = bad_answer(ans, "vms");
		return NULL;
	}
	names = json_array();
	json_array_foreach(vms, i, vm)
	{
		json_t *name = json_object_get(vm, "name"), *state = json_object_get(vm, "state");

		if (json_is_string(name) &&
		    !(json_is_string(state) && !strcmp(json_string_value(state), "running")))
			json_array_append(names, name);
	}
	json_decref(ans);
	return names;
}

int cmd_doze(struct ctl *c, int argc, char **argv)
{
	int i = parse_args(argc, argv, NULL, 1, 1);

	return i < 0 ? EXIT_USAGE : vm_job(c, argv[0], argv[i], "dozing");
}

int cmd_wake(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char **vms;
	json_t *names = NULL;
	bool all = false;
	size_t n, i;
	int opt, rc = EXIT_DONE;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (opt != 'a') {
			usage_error("wake: unknown option '%s'", argv[optind - 1]);
			return EXIT_USAGE;
		}
		all = true;
	}
	if (all == (optind < argc)) {
		usage_error("wake: %s", all ? "--all or VMs, not both" : "missing operand");
		return EXIT_USAGE;
	}
	if (!all && argc - optind == 1)
		return vm_job(c, "wake", argv[optind], "restoring");
	/* The configuration's problems once, not once per VM. */
	if (!ctl_socket_path(c))
		return EXIT_USAGE;
	if (all) {
		if (!(names = vms_not_running(c, &rc)))
			return rc;
		n = json_array_size(names);
	} else {
		n = (size_t)(argc - optind);
	}
	if (!(vms = calloc(n ? n : 1, sizeof(*vms)))) {
		fprintf(stderr, "odrsctl: %s\n", strerror(ENOMEM));
		json_decref(names);
		return EXIT_FAILED;
	}
	for (i = 0; i < n; i++)
		vms[i] = all ? json_string_value(json_array_get(names, i)) : argv[optind + (int)i];
	rc = wake_many(c, vms, n);
	free(vms);
	json_decref(names);
	return rc;
}

/* pin VM, unpin VM */
static int vm_flag(struct ctl *c, int argc, char **argv, const char *done)
{
	json_t *ans;
	int i, rc = EXIT_DONE;

	if ((i = parse_args(argc, argv, NULL, 1, 1)) < 0)
		return EXIT_USAGE;
	if (!(ans = ctl_call(c, json_pack("{s:s, s:s}", "cmd", argv[0], "vm", argv[i]), NULL, NULL, &rc)))
		return rc;
	printf("%s: %s\n", argv[i], done);
	json_decref(ans);
	return EXIT_DONE;
}

int cmd_pin(struct ctl *c, int argc, char **argv)
{
	return vm_flag(c, argc, argv, "pinned");
}

int cmd_unpin(struct ctl *c, int argc, char **argv)
{
	return vm_flag(c, argc, argv, "unpinned");
}

int cmd_accept(struct ctl *c, int argc, char **argv)
{
	json_t *ans, *req;
	int i, rc = EXIT_DONE;

	if ((i = parse_args(argc, argv, NULL, 0, 2)) < 0)
		return EXIT_USAGE;
	if (i == argc) {
		req = json_pack("{s:s}", "cmd", "accept");
	} else if (argc - i == 2 && strcmp(argv[i], "move") == 0) {
		req = json_pack("{s:s, s:s}", "cmd", "accept", "move", argv[i + 1]);
	} else {
		usage_error("accept: expected 'accept' or 'accept move NODE'");
		return EXIT_USAGE;
	}
	if (!(ans = ctl_call(c, req, NULL, NULL, &rc)))
		return rc;
	if (i == argc) {
		printf("accept: ");
		print_scalar(stdout, json_object_get(ans, "accept"));
		printf("\nterm: ");
		print_scalar(stdout, json_object_get(ans, "term"));
		putchar('\n');
	} else {
		printf("accept: handed to %s\n", argv[i + 1]);
	}
	json_decref(ans);
	return EXIT_DONE;
}

/* "what: a b c" for a non-empty array of names. */
static void print_names(const char *what, const json_t *names)
{
	const json_t *v;
	size_t i;

	if (!json_array_size(names))
		return;
	printf("%s:", what);
	json_array_foreach(names, i, v)
	{
		putchar(' ');
		print_scalar(stdout, v);
	}
	putchar('\n');
}

int cmd_reload(struct ctl *c, int argc, char **argv)
{
	json_t *ans, *v;
	int rc = EXIT_DONE;

	if (parse_args(argc, argv, NULL, 0, 0) < 0)
		return EXIT_USAGE;
	if (!(ans = ctl_call(c, json_pack("{s:s}", "cmd", "reload"), NULL, NULL, &rc)))
		return rc;
	/* An older daemon says only ok. */
	printf("reloaded");
	if (json_is_integer(v = json_object_get(ans, "vms")))
		printf(": %" JSON_INTEGER_FORMAT " VM%s", json_integer_value(v),
		       json_integer_value(v) == 1 ? "" : "s");
	putchar('\n');
	print_names("added", json_object_get(ans, "added"));
	print_names("removed", json_object_get(ans, "removed"));
	print_names("not applied until a restart", json_object_get(ans, "restart_needed"));
	json_decref(ans);
	return EXIT_DONE;
}
