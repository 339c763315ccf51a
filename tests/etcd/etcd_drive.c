/*
 * Drives odrsd/etcd.c against a real etcd, one scenario per run, the way
 * odrsd uses it: everything on one ev loop. Each check prints "ok: ..." or
 * "FAIL: ...": the test driver of tests/lab/test_etcd.sh.
 *
 *   etcd_drive ENDPOINTS putget|race|lease|watch|reentry|failover|unreachable|compacted|gateway|pages
 *   etcd_drive ENDPOINTS stall ETCD_PID
 *   etcd_drive ENDPOINTS outage
 *
 * Scenarios work under their own prefix and expect an empty store there.
 * stall stops etcd (SIGSTOP) for a while. outage prints "watching" once its
 * watch runs and waits for etcd to be killed, prints "down" once a request
 * failed, then waits for etcd to come back.
 *
 * Exit: 0 every check held, 1 one did not, 2 usage or setup error.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "etcd.h"

#define TIMEOUT_MS 1000
#define MAX_KVS	   16
#define MAX_EVENTS 64

struct kv_copy {
	char *key, *value;
	size_t value_len;
	int64_t create_revision, mod_revision, lease;
	bool deleted; /* watch events */
};

/* What one request answered. */
struct answer {
	bool done;
	int err;
	int64_t rev, id, ttl;
	bool succeeded;
	size_t n;
	struct kv_copy kvs[MAX_KVS];
	double ms; /* from the request to its answer */
	double started;
};

/* What the watch saw. */
struct recorder {
	size_t n;
	struct kv_copy events[MAX_EVENTS];
	bool ended;
	int end_err;
	double ended_at;
};

static struct ev_loop *loop;
static struct etcd *etcd;
static int fails;

__attribute__((format(printf, 2, 3))) static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s: ", ok ? "ok" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	fails += !ok;
}

static const char *errname(int err)
{
	return err ? strerrorname_np(-err) : "0";
}

static void kv_copy(struct kv_copy *c, const struct etcd_kv *kv, bool deleted)
{
	c->key = strdup(kv->key);
	c->value = malloc(kv->value_len + 1);
	memcpy(c->value, kv->value, kv->value_len + 1);
	c->value_len = kv->value_len;
	c->create_revision = kv->create_revision;
	c->mod_revision = kv->mod_revision;
	c->lease = kv->lease;
	c->deleted = deleted;
}

static void kv_copy_free(struct kv_copy *c)
{
	free(c->key);
	free(c->value);
}

static void answer_reset(struct answer *a)
{
	for (size_t i = 0; i < a->n; i++)
		kv_copy_free(&a->kvs[i]);
	memset(a, 0, sizeof(*a));
	a->started = ev_time();
}

static void recorder_reset(struct recorder *r)
{
	for (size_t i = 0; i < r->n; i++)
		kv_copy_free(&r->events[i]);
	memset(r, 0, sizeof(*r));
}

static void answered(struct answer *a, int err)
{
	a->done = true;
	a->err = err;
	a->ms = (ev_time() - a->started) * 1000;
}

static void on_lease(void *ctx, int err, int64_t id, int64_t ttl)
{
	struct answer *a = ctx;

	a->id = id;
	a->ttl = ttl;
	answered(a, err);
}

static void on_range(void *ctx, int err, int64_t rev, const struct etcd_kv *kvs, size_t n)
{
	struct answer *a = ctx;

	a->rev = rev;
	for (size_t i = 0; i < n && i < MAX_KVS; i++)
		kv_copy(&a->kvs[a->n++], &kvs[i], false);
	answered(a, err);
}

static void on_txn(void *ctx, int err, bool succeeded, int64_t rev)
{
	struct answer *a = ctx;

	a->succeeded = succeeded;
	a->rev = rev;
	answered(a, err);
}

static void on_event(void *ctx, bool deleted, const struct etcd_kv *kv)
{
	struct recorder *r = ctx;

	if (r->n < MAX_EVENTS)
		kv_copy(&r->events[r->n++], kv, deleted);
}

static void on_end(void *ctx, int err)
{
	struct recorder *r = ctx;

	r->ended = true;
	r->end_err = err;
	r->ended_at = ev_time();
}

static void on_deadline(struct ev_loop *l, ev_timer *t, int revents)
{
}

/* Run the loop until *flag, or for seconds at most: whether it came. */
static bool run_until(const bool *flag, double seconds)
{
	ev_timer deadline;

	ev_timer_init(&deadline, on_deadline, seconds, 0.);
	ev_timer_start(loop, &deadline);
	while (!*flag && ev_is_active(&deadline))
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &deadline);
	return *flag;
}

static void sleep_loop(double seconds)
{
	bool never = false;

	run_until(&never, seconds);
}

/* A request's answer, which must come within the client's timeout (and a margin). */
static void wait_answer(struct answer *a, const char *what)
{
	if (!run_until(&a->done, 2.0 * TIMEOUT_MS / 1000 + 1)) {
		check(false, "%s: no answer", what);
		exit(1);
	}
}

static void must_start(int r, const char *what)
{
	if (r < 0) {
		check(false, "%s: %s", what, strerror(-r));
		exit(1);
	}
}

static void get(struct answer *a, const char *key, bool prefix)
{
	answer_reset(a);
	must_start(etcd_get(etcd, key, prefix, on_range, a), "etcd_get");
	wait_answer(a, key);
}

static void txn(struct answer *a, const struct etcd_cmp *cmp, const struct etcd_op *ops, size_t nops)
{
	answer_reset(a);
	must_start(etcd_txn(etcd, cmp, ops, nops, on_txn, a), "etcd_txn");
	wait_answer(a, "txn");
}

static void put(struct answer *a, const char *key, const char *value, int64_t lease)
{
	struct etcd_op op = { .key = key, .value = value, .lease = lease };

	txn(a, NULL, &op, 1);
}

static void del(struct answer *a, const char *key)
{
	struct etcd_op op = { .del = true, .key = key };

	txn(a, NULL, &op, 1);
}

static void lease(struct answer *a, int (*fn)(struct etcd *, int64_t, etcd_lease_fn, void *), int64_t arg)
{
	answer_reset(a);
	must_start(fn(etcd, arg, on_lease, a), "lease request");
	wait_answer(a, "lease request");
}

static void open_client(const char *endpoints)
{
	int r = etcd_open(&etcd, loop, endpoints, TIMEOUT_MS);

	if (r < 0) {
		fprintf(stderr, "etcd_drive: etcd_open %s: %s\n", endpoints, strerror(-r));
		exit(2);
	}
}

/* Wait until the recorder holds n events, or the watch ended. */
static bool wait_events(struct recorder *rec, size_t n)
{
	double until = ev_time() + 5;

	while (rec->n < n && !rec->ended && ev_time() < until)
		sleep_loop(0.05);
	return rec->n >= n;
}

static bool same_value(const struct kv_copy *kv, const char *value)
{
	return kv->value_len == strlen(value) && memcmp(kv->value, value, kv->value_len) == 0 &&
	       kv->value[kv->value_len] == 0;
}

static bool is_event(const struct recorder *rec, size_t i, bool deleted, const char *key, const char *value,
		     int64_t mod)
{
	const struct kv_copy *ev = &rec->events[i];
	bool ok = i < rec->n && ev->deleted == deleted && !strcmp(ev->key, key) && same_value(ev, value) &&
		  (!mod || ev->mod_revision == mod);

	if (!ok && i < rec->n)
		printf("    event %zu: %s %s=%.40s mod %lld\n", i, ev->deleted ? "DELETE" : "PUT", ev->key,
		       ev->value, (long long)ev->mod_revision);
	return ok;
}

/* ---- a canned gateway ------------------------------------------------------------ */

/*
 * Answers that etcd gives only under load or trouble, or not in pieces
 * this small: one connection each, served by a thread with blocking I/O.
 * A stream's pieces go out as HTTP chunks, a pause between them, so the
 * client reads them one at a time.
 */
#define FAKE_MAX   4
#define PIECES_MAX 512

struct fake_answer {
	const char *status;		/* "200 OK" */
	bool stream;			/* chunked, piece by piece; else one body */
	const char *pieces[PIECES_MAX]; /* NULL-terminated */
};

struct fake {
	int fd;
	const struct fake_answer *answers[FAKE_MAX];
	size_t nanswers, served;
	char requests[FAKE_MAX][4096];
	pthread_t thread;
};

/* The request: headers, then Content-Length bytes of body. */
static void fake_read(int fd, char *buf, size_t size)
{
	size_t len = 0, want = SIZE_MAX;
	const char *end, *cl;
	ssize_t n;

	while (len < want && len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0) {
		len += (size_t)n;
		buf[len] = 0;
		if (want == SIZE_MAX && (end = strstr(buf, "\r\n\r\n")))
			want = (size_t)(end + 4 - buf) +
			       ((cl = strcasestr(buf, "Content-Length:")) ? strtoul(cl + 15, NULL, 10) : 0);
	}
}

static void fake_write(int fd, const char *data, size_t len)
{
	ssize_t n;

	for (; len > 0; data += n, len -= (size_t)n)
		if ((n = write(fd, data, len)) <= 0)
			return;
}

static void *fake_serve(void *arg)
{
	struct fake *f = arg;
	char line[256];
	int c, one = 1;

	for (; f->served < f->nanswers && (c = accept(f->fd, NULL, NULL)) >= 0; f->served++) {
		const struct fake_answer *a = f->answers[f->served];

		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		fake_read(c, f->requests[f->served], sizeof(f->requests[0]));
		if (a->stream)
			snprintf(line, sizeof(line),
				 "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n",
				 a->status);
		else
			snprintf(line, sizeof(line),
				 "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
				 "Connection: close\r\nContent-Length: %zu\r\n\r\n",
				 a->status, strlen(a->pieces[0]));
		fake_write(c, line, strlen(line));
		for (size_t i = 0; a->pieces[i]; i++) {
			if (a->stream) {
				snprintf(line, sizeof(line), "%zx\r\n", strlen(a->pieces[i]));
				fake_write(c, line, strlen(line));
			}
			fake_write(c, a->pieces[i], strlen(a->pieces[i]));
			if (a->stream) {
				fake_write(c, "\r\n", 2);
				usleep(3000);
			}
		}
		if (a->stream)
			fake_write(c, "0\r\n\r\n", 5);
		close(c);
	}
	return NULL;
}

/* A listening socket on 127.0.0.1 and its URL; the thread answers the connections in turn. */
static void fake_start(struct fake *f, char *url, size_t size)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);

	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(f->fd, 16) < 0 ||
	    getsockname(f->fd, (struct sockaddr *)&sin, &len) < 0 ||
	    pthread_create(&f->thread, NULL, fake_serve, f) != 0) {
		perror("etcd_drive: fake gateway");
		exit(2);
	}
	snprintf(url, size, "http://127.0.0.1:%u", ntohs(sin.sin_port));
}

static size_t fake_stop(struct fake *f)
{
	/* Wakes an accept() still waiting for a connection that did not come. */
	shutdown(f->fd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->fd);
	return f->served;
}

/* ---- scenarios ------------------------------------------------------------------- */

/* Bytes JSON and etcd's gateway could mangle: quotes, backslashes, newlines, UTF-8, control bytes. */
static const char tricky[] = "q\"uote\\ \n new line\t é ü ✓ \x01\x7f end";

static void scenario_putget(void)
{
	struct etcd_op ops[] = {
		{ .key = "/t/a", .value = "plain" },
		{ .key = "/t/b", .value = tricky },
	};
	struct answer a = { 0 }, w = { 0 };
	char *big = malloc(300001);
	int64_t rev;

	txn(&w, NULL, ops, 2);
	check(w.err == 0 && w.succeeded && w.rev > 0,
	      "txn without a comparison puts two keys: err %s succeeded %d rev %lld", errname(w.err),
	      w.succeeded, (long long)w.rev);
	rev = w.rev;
	/* Neighbours of the prefix: "/t0" is where "/t/"'s range ends. */
	put(&w, "/t0", "outside", 0);
	put(&w, "/s", "outside", 0);

	get(&a, "/t/", true);
	check(a.err == 0 && a.n == 2, "prefix /t/ has 2 keys: err %s n %zu", errname(a.err), a.n);
	if (a.n == 2) {
		check(!strcmp(a.kvs[0].key, "/t/a") && same_value(&a.kvs[0], "plain"), "/t/a = plain");
		check(!strcmp(a.kvs[1].key, "/t/b") && same_value(&a.kvs[1], tricky),
		      "/t/b holds quotes, newlines, UTF-8 and control bytes intact (%zu bytes)",
		      a.kvs[1].value_len);
		check(a.kvs[0].mod_revision == rev && a.kvs[0].create_revision == rev && a.kvs[0].lease == 0,
		      "revisions of the txn's keys: create %lld mod %lld, want %lld",
		      (long long)a.kvs[0].create_revision, (long long)a.kvs[0].mod_revision, (long long)rev);
	}
	check(a.rev == w.rev, "range reports the store's revision %lld (last write %lld)", (long long)a.rev,
	      (long long)w.rev);

	get(&a, "/t/b", false);
	check(a.err == 0 && a.n == 1 && same_value(&a.kvs[0], tricky), "single key /t/b: n %zu", a.n);
	get(&a, "/t/missing", false);
	check(a.err == 0 && a.n == 0 && a.rev == w.rev, "missing key: err %s n %zu rev %lld", errname(a.err),
	      a.n, (long long)a.rev);
	get(&a, "/t", false);
	check(a.err == 0 && a.n == 0, "the prefix itself is no key: n %zu", a.n);

	/* Larger than a curl buffer and than curl's Expect: 100-continue threshold. */
	for (size_t i = 0; i < 300000; i++)
		big[i] = (char)('a' + i % 26);
	big[300000] = 0;
	put(&w, "/t/big", big, 0);
	check(w.err == 0, "300 kB value put: err %s", errname(w.err));
	get(&a, "/t/big", false);
	check(a.err == 0 && a.n == 1 && same_value(&a.kvs[0], big), "300 kB value read back intact");
	free(big);

	put(&w, "/t/empty", "", 0);
	get(&a, "/t/empty", false);
	check(a.err == 0 && a.n == 1 && a.kvs[0].value_len == 0 && a.kvs[0].value[0] == 0,
	      "empty value: n %zu", a.n);

	del(&w, "/t/a");
	check(w.err == 0 && w.succeeded, "delete in a txn: err %s", errname(w.err));
	get(&a, "/t/", true);
	check(a.n == 3 && !strcmp(a.kvs[0].key, "/t/b"), "/t/a gone: %zu keys left", a.n);
	answer_reset(&a);
}

/* Two claims, issued back to back, on the same view of the key: exactly one wins. */
static void race(const struct etcd_cmp *cmp, const char *what)
{
	struct etcd_op op1 = { .key = "/t/claim", .value = "one" },
		       op2 = { .key = "/t/claim", .value = "two" };
	struct answer a1 = { 0 }, a2 = { 0 }, a = { 0 };

	answer_reset(&a1);
	answer_reset(&a2);
	must_start(etcd_txn(etcd, cmp, &op1, 1, on_txn, &a1), "etcd_txn");
	must_start(etcd_txn(etcd, cmp, &op2, 1, on_txn, &a2), "etcd_txn");
	wait_answer(&a1, "claim 1");
	wait_answer(&a2, "claim 2");
	check(a1.err == 0 && a2.err == 0 && a1.succeeded + a2.succeeded == 1,
	      "%s: exactly one of two claims holds (%d, %d)", what, a1.succeeded, a2.succeeded);
	get(&a, "/t/claim", false);
	check(a.n == 1 && same_value(&a.kvs[0], a1.succeeded ? "one" : "two"),
	      "%s: the winner's value is stored", what);
	answer_reset(&a);
}

static void scenario_race(void)
{
	struct etcd_cmp cmp = { .key = "/t/claim", .target = ETCD_CMP_CREATE, .revision = 0 };
	struct etcd_op op = { .key = "/t/claim", .value = "three" };
	struct answer a = { 0 }, w = { 0 };

	race(&cmp, "create_revision == 0");
	get(&a, "/t/claim", false);
	cmp = (struct etcd_cmp){ .key = "/t/claim",
				 .target = ETCD_CMP_MOD,
				 .revision = a.kvs[0].mod_revision };
	race(&cmp, "mod_revision == seen");

	/* A stale view loses, and its operations do not run. */
	txn(&w, &cmp, &op, 1);
	check(w.err == 0 && !w.succeeded && w.rev > 0, "stale mod_revision: not succeeded, rev %lld",
	      (long long)w.rev);
	get(&a, "/t/claim", false);
	cmp = (struct etcd_cmp){ .key = "/t/claim", .target = ETCD_CMP_VALUE, .value = "wrong" };
	txn(&w, &cmp, &op, 1);
	check(w.err == 0 && !w.succeeded, "value comparison that does not hold");
	cmp.value = a.kvs[0].value;
	txn(&w, &cmp, &op, 1);
	check(w.err == 0 && w.succeeded, "value comparison that holds");
	get(&a, "/t/claim", false);
	check(a.n == 1 && same_value(&a.kvs[0], "three"), "only the holding txn wrote");
	answer_reset(&a);
}

static void scenario_lease(void)
{
	struct recorder rec = { 0 };
	struct answer a = { 0 }, l = { 0 }, w = { 0 };
	double gone_at = 0, last_keepalive;
	int64_t id;

	must_start(etcd_watch(etcd, "/l/", 0, on_event, on_end, &rec), "etcd_watch");
	lease(&l, etcd_lease_grant, 2);
	check(l.err == 0 && l.id != 0 && l.ttl == 2, "grant: err %s id %lld ttl %lld", errname(l.err),
	      (long long)l.id, (long long)l.ttl);
	id = l.id;
	put(&w, "/l/k", "leased", id);
	check(w.err == 0, "put with the lease: err %s", errname(w.err));
	get(&a, "/l/k", false);
	check(a.n == 1 && a.kvs[0].lease == id, "the key carries the lease");

	/* Kept alive past its first TTL. */
	for (int i = 0; i < 3; i++) {
		sleep_loop(1.0);
		lease(&l, etcd_lease_keepalive, id);
		check(l.err == 0 && l.ttl > 0 && l.id == id, "keepalive %d: err %s ttl %lld", i,
		      errname(l.err), (long long)l.ttl);
	}
	last_keepalive = ev_time();
	get(&a, "/l/k", false);
	check(a.n == 1, "the key outlived its first TTL while kept alive");

	while (ev_time() < last_keepalive + 6) {
		get(&a, "/l/k", false);
		if (a.err == 0 && a.n == 0) {
			gone_at = ev_time();
			break;
		}
		sleep_loop(0.25);
	}
	check(gone_at - last_keepalive > 1, "the key went with the lease, %.1f s after the last keepalive",
	      gone_at - last_keepalive);
	wait_events(&rec, 2);
	check(is_event(&rec, 0, false, "/l/k", "leased", 0), "watch saw the put");
	check(is_event(&rec, 1, true, "/l/k", "", 0), "watch saw the expiry as a DELETE");

	lease(&l, etcd_lease_keepalive, id);
	check(l.err == 0 && l.ttl == 0, "keepalive of the expired lease: err %s ttl %lld (want 0, 0)",
	      errname(l.err), (long long)l.ttl);
	put(&w, "/l/late", "x", id);
	check(w.err == -ENOENT, "put with the expired lease: %s (want ENOENT)", errname(w.err));

	lease(&l, etcd_lease_grant, 60);
	id = l.id;
	put(&w, "/l/r", "revoked", id);
	lease(&l, etcd_lease_revoke, id);
	check(l.err == 0 && l.id == id, "revoke: err %s", errname(l.err));
	get(&a, "/l/r", false);
	check(a.err == 0 && a.n == 0, "revoke deleted the key");
	wait_events(&rec, 4);
	check(is_event(&rec, 3, true, "/l/r", "", 0), "watch saw the revoke's DELETE");
	lease(&l, etcd_lease_revoke, id);
	check(l.err == -ENOENT, "revoke of a revoked lease: %s (want ENOENT)", errname(l.err));
	must_start(etcd_lease_revoke(etcd, 12345, NULL, NULL), "revoke without a callback");
	sleep_loop(0.2);
	check(!rec.ended, "watch still open");
	etcd_watch_cancel(etcd);
	recorder_reset(&rec);
	answer_reset(&a);
}

static void scenario_watch(void)
{
	struct etcd_op three[] = {
		{ .key = "/w/m1", .value = "1" },
		{ .key = "/w/m2", .value = "2" },
		{ .key = "/w/m3", .value = "3" },
	};
	struct recorder rec = { 0 }, other = { 0 };
	struct answer w = { 0 };
	int64_t r1, r2, r3, rdel;
	char *big = malloc(1000001);

	put(&w, "/w/a", "1", 0);
	r1 = w.rev;
	must_start(etcd_watch(etcd, "/w/", 0, on_event, on_end, &rec), "etcd_watch");
	check(etcd_watch(etcd, "/x/", 0, on_event, on_end, &other) == -EBUSY, "a second watch is EBUSY");
	sleep_loop(0.3); /* "from now" starts when etcd has created the watch */
	put(&w, "/w/a", "2", 0);
	r2 = w.rev;
	put(&w, "/x/out", "4", 0);
	put(&w, "/w0", "5", 0);
	put(&w, "/w/b", tricky, 0);
	r3 = w.rev;
	del(&w, "/w/a");
	rdel = w.rev;
	put(&w, "/w/z", "sentinel", 0);
	wait_events(&rec, 4);
	check(rec.n >= 4, "watch: 4 events (%zu)", rec.n);
	sleep_loop(0.3);
	check(rec.n == 4, "nothing else: %zu events (keys outside the prefix are not seen)", rec.n);
	check(is_event(&rec, 0, false, "/w/a", "2", r2), "PUT /w/a=2 at its mod_revision");
	check(is_event(&rec, 1, false, "/w/b", tricky, r3), "PUT /w/b, the tricky value intact");
	check(is_event(&rec, 2, true, "/w/a", "", rdel), "DELETE /w/a at its revision");
	check(is_event(&rec, 3, false, "/w/z", "sentinel", 0), "PUT /w/z");

	/* Several events in one message; one message larger than any curl buffer. */
	txn(&w, NULL, three, 3);
	for (size_t i = 0; i < 1000000; i++)
		big[i] = (char)('A' + i % 26);
	big[1000000] = 0;
	put(&w, "/w/big", big, 0);
	wait_events(&rec, 8);
	check(rec.n == 8, "watch: one txn of 3 puts and a 1 MB put arrive (%zu)", rec.n);
	check(is_event(&rec, 4, false, "/w/m1", "1", 0) && is_event(&rec, 5, false, "/w/m2", "2", 0) &&
		      is_event(&rec, 6, false, "/w/m3", "3", 0),
	      "the txn's 3 events, in order");
	check(is_event(&rec, 7, false, "/w/big", big, 0), "the 1 MB value intact");
	check(!rec.ended, "watch still open");

	etcd_watch_cancel(etcd);
	sleep_loop(0.2);
	check(!rec.ended, "cancel does not call end_cb");
	recorder_reset(&rec);
	must_start(etcd_watch(etcd, "/w/", r1, on_event, on_end, &rec), "etcd_watch from a past revision");
	wait_events(&rec, 9);
	check(rec.n == 9, "replay from revision %lld: 9 events (%zu)", (long long)r1, rec.n);
	check(is_event(&rec, 0, false, "/w/a", "1", r1) && is_event(&rec, 1, false, "/w/a", "2", r2) &&
		      is_event(&rec, 2, false, "/w/b", tricky, r3) &&
		      is_event(&rec, 3, true, "/w/a", "", rdel) && is_event(&rec, 8, false, "/w/big", big, 0),
	      "history replayed in order");
	etcd_watch_cancel(etcd);
	recorder_reset(&rec);
	free(big);
}

/* History compacted away (test_etcd.sh compacted it): the watch ends, ERANGE. */
static void scenario_compacted(void)
{
	struct recorder rec = { 0 };

	must_start(etcd_watch(etcd, "/c/", 1, on_event, on_end, &rec), "etcd_watch");
	run_until(&rec.ended, 3);
	check(rec.ended && rec.end_err == -ERANGE, "watch from a compacted revision ends: %s (want ERANGE)",
	      errname(rec.end_err));
	recorder_reset(&rec);
}

/* Callbacks that start requests, cancel and restart the watch, close the client. */
struct reentry {
	struct recorder rec;
	struct answer inner, first, second;
	int rewatched;
	bool close_in_event;
	int events_after_close;
	bool closed;
};

static void on_inner_range(void *ctx, int err, int64_t rev, const struct etcd_kv *kvs, size_t n)
{
	struct reentry *r = ctx;

	on_range(&r->inner, err, rev, kvs, n);
}

static void on_reentry_end(void *ctx, int err)
{
	struct reentry *r = ctx;

	on_end(&r->rec, err);
}

static void on_reentry_event(void *ctx, bool deleted, const struct etcd_kv *kv)
{
	struct reentry *r = ctx;

	if (r->closed) {
		r->events_after_close++;
		return;
	}
	on_event(&r->rec, deleted, kv);
	if (r->close_in_event) {
		etcd_close(etcd);
		r->closed = true;
	} else if (r->rewatched == 0) {
		/* Cancel from inside the watch's own callback, then watch again: the event replays. */
		etcd_watch_cancel(etcd);
		r->rewatched =
			etcd_watch(etcd, "/r/", kv->mod_revision, on_reentry_event, on_reentry_end, r) == 0
				? 1
				: -1;
	} else if (r->rewatched == 1) {
		r->rewatched = 2;
		answer_reset(&r->inner);
		if (etcd_get(etcd, kv->key, false, on_inner_range, r) < 0)
			r->inner.done = true;
	}
}

static void on_closing_range(void *ctx, int err, int64_t rev, const struct etcd_kv *kvs, size_t n)
{
	struct reentry *r = ctx;

	if (!r->first.done) {
		on_range(&r->first, err, rev, kvs, n);
		etcd_close(etcd);
	} else {
		on_range(&r->second, err, rev, kvs, n);
	}
}

static void scenario_reentry(const char *endpoints)
{
	struct etcd_op three[] = {
		{ .key = "/r/1", .value = "1" },
		{ .key = "/r/2", .value = "2" },
		{ .key = "/r/3", .value = "3" },
	};
	struct reentry r = { 0 };
	struct answer w = { 0 }, t = { 0 };
	struct etcd *writer;

	must_start(etcd_watch(etcd, "/r/", 0, on_reentry_event, on_reentry_end, &r), "etcd_watch");
	sleep_loop(0.3);
	put(&w, "/r/a", "x", 0);
	run_until(&r.inner.done, 3);
	check(r.rewatched == 2 && r.rec.n == 2 && !strcmp(r.rec.events[1].key, "/r/a"),
	      "watch cancelled and started again from its own callback: event seen twice (%zu)", r.rec.n);
	check(r.inner.done && r.inner.err == 0 && r.inner.n == 1,
	      "a get started from an event callback answered");

	/* etcd_close from a request's callback: the other request's callback never comes. */
	answer_reset(&r.first);
	answer_reset(&r.second);
	must_start(etcd_get(etcd, "/r/a", false, on_closing_range, &r), "etcd_get");
	must_start(etcd_get(etcd, "/r/a", false, on_closing_range, &r), "etcd_get");
	run_until(&r.first.done, 3);
	sleep_loop(0.5);
	check(r.first.done && !r.second.done,
	      "closed from a callback: the other request is dropped silently");
	check(!r.rec.ended, "closed from a callback: the watch ended silently");

	/*
	 * etcd_close from an event callback, with more events in the same
	 * message; another client writes them, and is not disturbed.
	 */
	open_client(endpoints);
	writer = etcd;
	open_client(endpoints);
	recorder_reset(&r.rec);
	r.closed = false;
	r.close_in_event = true;
	must_start(etcd_watch(etcd, "/r/", 0, on_reentry_event, on_reentry_end, &r), "etcd_watch");
	sleep_loop(0.3);
	answer_reset(&t);
	must_start(etcd_txn(writer, NULL, three, 3, on_txn, &t), "etcd_txn");
	run_until(&r.closed, 3);
	sleep_loop(0.3);
	check(r.closed && r.rec.n == 1 && r.events_after_close == 0,
	      "closed from the first of 3 events in a message: no later event (%zu, %d)", r.rec.n,
	      r.events_after_close);
	check(t.done && t.err == 0 && t.succeeded, "the other client's txn answered");
	etcd_close(writer);

	/* etcd_close outside any callback, with requests and a watch in flight. */
	open_client(endpoints);
	recorder_reset(&r.rec);
	answer_reset(&w);
	must_start(etcd_watch(etcd, "/r/", 0, on_event, on_end, &r.rec), "etcd_watch");
	must_start(etcd_get(etcd, "/r/", true, on_range, &w), "etcd_get");
	etcd_close(etcd);
	etcd = NULL;
	sleep_loop(0.3);
	check(!w.done && !r.rec.ended, "etcd_close with requests in flight calls nothing");
	recorder_reset(&r.rec);
	answer_reset(&r.inner);
	answer_reset(&r.first);
}

/* Endpoints that refuse or never answer before the one that works (the last of endpoints). */
static void scenario_failover(const char *endpoints)
{
	const char *good = strrchr(endpoints, ',') ? strrchr(endpoints, ',') + 1 : endpoints;
	struct answer a = { 0 }, w = { 0 };
	struct fake silent = { 0 };
	char url[64], list[512];

	put(&w, "/f/k", "v", 0);
	get(&a, "/f/k", false);
	check(w.err == 0 && a.err == 0 && a.n == 1, "%s: put and get work: %s, %s", endpoints, errname(w.err),
	      errname(a.err));
	etcd_close(etcd);

	/* A gateway with no answers: the kernel accepts the connection, nobody reads it. */
	fake_start(&silent, url, sizeof(url));
	snprintf(list, sizeof(list), "%s/,%s", url, good);
	open_client(list);
	get(&a, "/f/k", false);
	check(a.err == 0 && a.n == 1 && a.ms >= TIMEOUT_MS * 0.9 && a.ms < TIMEOUT_MS * 2,
	      "silent first endpoint: answered by the next after the timeout (%s, %.0f ms)", errname(a.err),
	      a.ms);
	get(&a, "/f/k", false);
	check(a.err == 0 && a.n == 1 && a.ms < TIMEOUT_MS / 2,
	      "the client stays on the endpoint that answered (%.0f ms)", a.ms);
	fake_stop(&silent);
	answer_reset(&a);
}

/* end_cb that watches again, once. */
static int ends;

static void on_end_rewatch(void *ctx, int err)
{
	if (++ends == 1 && etcd_watch(etcd, "/u/", 0, on_event, on_end, ctx) < 0)
		check(false, "etcd_watch from inside end_cb");
}

/* No endpoint answers: errors, fast, for requests and the watch. */
static void scenario_unreachable(void)
{
	struct recorder rec = { 0 };
	struct answer a = { 0 }, w = { 0 };

	get(&a, "/u/k", false);
	check(a.err == -ECONNREFUSED && a.ms < TIMEOUT_MS, "get: %s in %.0f ms", errname(a.err), a.ms);
	put(&w, "/u/k", "v", 0);
	check(w.err == -ECONNREFUSED && !w.succeeded, "txn: %s", errname(w.err));
	lease(&a, etcd_lease_grant, 5);
	check(a.err == -ECONNREFUSED, "grant: %s", errname(a.err));
	must_start(etcd_watch(etcd, "/u/", 0, on_event, on_end_rewatch, &rec), "etcd_watch");
	run_until(&rec.ended, 3);
	check(ends == 1 && rec.ended && rec.end_err == -ECONNREFUSED,
	      "watch ends: %s; the one started from end_cb too", errname(rec.end_err));
	check(etcd_watch(etcd, "/u/", 0, on_event, on_end, &rec) == 0, "a new watch may start after end_cb");
	etcd_watch_cancel(etcd);
	answer_reset(&a);
}

/* What the pages of a read brought, in order. */
struct pages {
	bool done; /* a page came */
	int err;
	int64_t rev;
	bool more;
	char keys[64][16];
	size_t n, got; /* keys kept; in the last page */
};

static void on_page(void *ctx, int err, int64_t rev, const struct etcd_kv *kvs, size_t n, bool more)
{
	struct pages *p = ctx;

	p->done = true;
	p->err = err;
	p->rev = rev;
	p->more = more;
	p->got = n;
	for (size_t i = 0; i < n && p->n < 64; i++)
		snprintf(p->keys[p->n++], sizeof(p->keys[0]), "%s", kvs[i].key);
}

static void page(struct pages *p, const char *after, int64_t rev)
{
	p->done = false;
	must_start(etcd_get_page(etcd, "/p/", after, rev, 10, on_page, p), "etcd_get_page");
	if (!run_until(&p->done, 2.0 * TIMEOUT_MS / 1000 + 1)) {
		check(false, "page after %s: no answer", after ? after : "(none)");
		exit(1);
	}
}

/*
 * A prefix read in pages of 10, the way odrsd reads the store: 25 keys are
 * 10, 10 and 5, in order, each once; a key put after the first page is not
 * in the later ones, asked at the first page's revision.
 */
static void scenario_pages(void)
{
	struct answer a = { 0 };
	struct pages p = { 0 };
	char key[16];
	int64_t rev;
	bool ordered = true;

	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "/p/k%02d", i);
		put(&a, key, "v", 0);
	}
	put(&a, "/q/outside", "v", 0);
	page(&p, NULL, 0);
	check(!p.err && p.got == 10 && p.more, "page 1: %zu keys, more %d (%s)", p.got, p.more,
	      errname(p.err));
	rev = p.rev;
	put(&a, "/p/k99", "later", 0);
	page(&p, p.keys[p.n - 1], rev);
	check(!p.err && p.got == 10 && p.more, "page 2: %zu keys, more %d (%s)", p.got, p.more,
	      errname(p.err));
	page(&p, p.keys[p.n - 1], rev);
	check(!p.err && p.got == 5 && !p.more, "page 3: %zu keys, more %d (%s)", p.got, p.more,
	      errname(p.err));
	for (size_t i = 0; i < p.n; i++) {
		snprintf(key, sizeof(key), "/p/k%02u", (unsigned)i % 100);
		ordered &= !strcmp(p.keys[i], key);
	}
	check(p.n == 25 && ordered, "25 keys in order, each once, none put after the first page");
	page(&p, NULL, 0);
	check(!p.err && p.rev > rev, "a page asked now is at a later revision: %lld > %lld", (long long)p.rev,
	      (long long)rev);
	answer_reset(&a);
}

/* kill() returns before every thread of the process has stopped. */
static void wait_stopped(pid_t pid)
{
	char path[64], stat[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 100; i++) {
		if ((f = fopen(path, "r"))) {
			stat[fread(stat, 1, sizeof(stat) - 1, f)] = 0;
			fclose(f);
			if (strstr(stat, ") T "))
				return;
		}
		usleep(10000);
	}
}

/* etcd alive but silent (stopped): requests time out within timeout_ms, then work again. */
static void scenario_stall(pid_t pid)
{
	struct answer a = { 0 };

	get(&a, "/s/k", false);
	check(a.err == 0, "before: get works");
	kill(pid, SIGSTOP);
	wait_stopped(pid);
	get(&a, "/s/k", false);
	check(a.err == -ETIMEDOUT && a.ms >= TIMEOUT_MS * 0.9 && a.ms < TIMEOUT_MS * 1.5,
	      "stopped etcd: %s after %.0f ms (timeout %d ms)", errname(a.err), a.ms, TIMEOUT_MS);
	kill(pid, SIGCONT);
	get(&a, "/s/k", false);
	check(a.err == 0, "continued etcd: get works (%s)", errname(a.err));
	answer_reset(&a);
}

/* etcd killed under an open watch, then started again (by test_etcd.sh). */
static void scenario_outage(void)
{
	struct recorder rec = { 0 };
	struct answer a = { 0 }, w = { 0 };
	double killed_by, until;

	put(&w, "/o/k", "before", 0);
	must_start(etcd_watch(etcd, "/o/", 0, on_event, on_end, &rec), "etcd_watch");
	sleep_loop(0.3);
	check(!rec.ended, "watch open");
	printf("watching\n");
	fflush(stdout);
	killed_by = ev_time();
	run_until(&rec.ended, 15);
	check(rec.ended && rec.end_err < 0 && rec.ended_at - killed_by < 5,
	      "end_cb with %s, %.1f s after the watch was up", errname(rec.end_err),
	      rec.ended_at - killed_by);
	get(&a, "/o/k", false);
	check(a.err < 0 && a.ms < TIMEOUT_MS + 200, "get while etcd is down: %s in %.0f ms", errname(a.err),
	      a.ms);
	printf("down\n");
	fflush(stdout);

	until = ev_time() + 30;
	do {
		sleep_loop(0.2);
		get(&a, "/o/k", false);
	} while (a.err && ev_time() < until);
	check(a.err == 0 && a.n == 1 && same_value(&a.kvs[0], "before"), "etcd back: get works (%s)",
	      errname(a.err));
	put(&w, "/o/k", "after", 0);
	check(w.err == 0, "etcd back: put works (%s)", errname(w.err));
	recorder_reset(&rec);
	check(etcd_watch(etcd, "/o/", 0, on_event, on_end, &rec) == 0, "etcd back: watch again");
	sleep_loop(0.3);
	put(&w, "/o/k", "again", 0);
	check(wait_events(&rec, 1) && is_event(&rec, 0, false, "/o/k", "again", w.rev),
	      "etcd back: the new watch sees a put");
	etcd_watch_cancel(etcd);
	recorder_reset(&rec);
	answer_reset(&a);
}

static void scenario_gateway(const char *endpoints)
{
	/* /g/a = "1" at 6, /g/a deleted at 7, then /g/c at 9 and /g/d at 10 in one piece. */
	static const char created[] = "{\"result\":{\"header\":{\"revision\":\"5\"},\"created\":true}}\n";
	static const char put_a[] =
		"{\"result\":{\"header\":{\"revision\":\"6\"},\"note\":\"a closing brace } and a quote \\\" "
		"in a string\","
		"\"events\":[{\"kv\":{\"key\":\"L2cvYQ==\",\"create_revision\":\"6\",\"mod_revision\":\"6\","
		"\"version\":\"1\",\"value\":\"MQ==\"}}]}}\n";
	static const char del_a[] =
		"{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":[{\"type\":\"DELETE\","
		"\"kv\":{\"key\":\"L2cvYQ==\",\"mod_revision\":\"7\"}}]}}";
	static const char two[] = "\n{\"result\":{\"events\":[{\"kv\":{\"key\":\"L2cvYw==\",\"mod_revision\":"
				  "\"9\",\"value\":\"Yw==\"}}]}}"
				  "{\"result\":{\"events\":[{\"kv\":{\"key\":\"L2cvZA==\",\"mod_revision\":"
				  "\"10\",\"value\":\"ZA==\",\"lease\":\"42\"}}]}}\n";
	static char bytes[sizeof(put_a)][2];
	static struct fake_answer stream = { .status = "200 OK", .stream = true };
	static const struct fake_answer unavailable = {
		"503 Service Unavailable",
		false,
		{ "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no "
		  "leader\",\"code\":14}" }
	};
	static const struct fake_answer invalid = {
		"400 Bad Request",
		false,
		{ "{\"error\":\"etcdserver: key is not provided\",\"message\":\"x\",\"code\":3}" }
	};
	static const struct fake_answer garbage = { "200 OK", false, { "<html>a proxy, not etcd</html>" } };
	static const struct fake_answer bad_int = { "200 OK", false, { "{\"header\":{\"revision\":12}}" } };
	const char *good = strrchr(endpoints, ',') ? strrchr(endpoints, ',') + 1 : endpoints;
	struct etcd *real = etcd;
	struct recorder rec = { 0 };
	struct answer a = { 0 };
	struct fake f = { 0 };
	char url[64], list[512];
	size_t n = 0;

	/* Split in every way: an object and the start of the next, then byte by byte, then two in one piece. */
	stream.pieces[n++] = created;
	for (size_t i = 0; i < sizeof(put_a) - 1; i++) {
		bytes[i][0] = put_a[i];
		stream.pieces[n++] = bytes[i];
	}
	stream.pieces[n++] = del_a;
	stream.pieces[n++] = two;
	stream.pieces[n] = NULL;

	f.answers[f.nanswers++] = &stream;
	fake_start(&f, url, sizeof(url));
	open_client(url);
	must_start(etcd_watch(etcd, "/g/", 5, on_event, on_end, &rec), "etcd_watch");
	run_until(&rec.ended, 10);
	check(fake_stop(&f) == 1, "the watch reached the canned gateway");
	check(strstr(f.requests[0], "POST /v3/watch HTTP/1.1\r\n") != NULL, "POST /v3/watch");
	check(strstr(f.requests[0], "\r\n\r\n{\"create_request\":{\"key\":\"L2cv\",\"range_end\":\"L2cw\","
				    "\"start_revision\":\"5\"}}") != NULL,
	      "create_request: key /g/, range_end /g0, start_revision \"5\"");
	check(rec.n == 4, "4 events from a stream cut at every byte (%zu)", rec.n);
	check(is_event(&rec, 0, false, "/g/a", "1", 6) && rec.events[0].create_revision == 6,
	      "PUT /g/a, read byte by byte, past a brace and a quote in a string");
	check(is_event(&rec, 1, true, "/g/a", "", 7), "DELETE /g/a");
	check(is_event(&rec, 2, false, "/g/c", "c", 9) && is_event(&rec, 3, false, "/g/d", "d", 10) &&
		      rec.events[3].lease == 42,
	      "two objects in one piece");
	check(rec.ended && rec.end_err == -ECONNRESET, "a stream that ends cleanly ends the watch: %s",
	      errname(rec.end_err));
	etcd_close(etcd);
	recorder_reset(&rec);

	/* 5xx: once more on the next endpoint. */
	memset(&f, 0, sizeof(f));
	f.answers[f.nanswers++] = &unavailable;
	fake_start(&f, url, sizeof(url));
	snprintf(list, sizeof(list), "%s,%s", url, good);
	open_client(list);
	get(&a, "/t/b", false);
	check(fake_stop(&f) == 1 && a.err == 0 && a.rev > 0,
	      "503 from the first endpoint: answered by the next (%s)", errname(a.err));
	etcd_close(etcd);

	/* Alone, the 503 is the answer, and etcd's own errors are not retried. */
	memset(&f, 0, sizeof(f));
	f.answers[f.nanswers++] = &unavailable;
	f.answers[f.nanswers++] = &invalid;
	f.answers[f.nanswers++] = &garbage;
	f.answers[f.nanswers++] = &bad_int;
	fake_start(&f, url, sizeof(url));
	snprintf(list, sizeof(list), "%s,%s", url, good);
	open_client(url);
	get(&a, "/t/b", false);
	check(a.err == -EAGAIN, "503 no leader, one endpoint: %s (want EAGAIN)", errname(a.err));
	etcd_close(etcd);
	open_client(list);
	get(&a, "/t/b", false);
	check(a.err == -EINVAL, "400 from etcd: %s (want EINVAL), not retried", errname(a.err));
	get(&a, "/t/b", false);
	check(a.err == -EPROTO, "not etcd's JSON: %s (want EPROTO)", errname(a.err));
	get(&a, "/t/b", false);
	check(a.err == -EPROTO, "an int64 that is not a string: %s (want EPROTO)", errname(a.err));
	check(fake_stop(&f) == 4, "every answer came from the canned gateway");
	etcd_close(etcd);
	etcd = real;
	answer_reset(&a);
}

int main(int argc, char **argv)
{
	const char *scenario = argc >= 3 ? argv[2] : "";

	if (argc < 3 || (!strcmp(scenario, "stall") && argc != 4)) {
		fprintf(stderr, "usage: etcd_drive ENDPOINTS "
				"putget|race|lease|watch|reentry|failover|unreachable|compacted|gateway|"
				"pages|outage\n"
				"       etcd_drive ENDPOINTS stall ETCD_PID\n");
		return 2;
	}
	/* A canned gateway writing to a client that gave up must fail a check, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	loop = EV_DEFAULT;
	open_client(argv[1]);
	check(etcd_open(&(struct etcd *){ NULL }, loop, "127.0.0.1:2379", TIMEOUT_MS) == -EINVAL,
	      "an endpoint without http:// is refused");
	if (!strcmp(scenario, "putget"))
		scenario_putget();
	else if (!strcmp(scenario, "race"))
		scenario_race();
	else if (!strcmp(scenario, "lease"))
		scenario_lease();
	else if (!strcmp(scenario, "watch"))
		scenario_watch();
	else if (!strcmp(scenario, "reentry"))
		scenario_reentry(argv[1]);
	else if (!strcmp(scenario, "failover"))
		scenario_failover(argv[1]);
	else if (!strcmp(scenario, "unreachable"))
		scenario_unreachable();
	else if (!strcmp(scenario, "gateway"))
		scenario_gateway(argv[1]);
	else if (!strcmp(scenario, "compacted"))
		scenario_compacted();
	else if (!strcmp(scenario, "pages"))
		scenario_pages();
	else if (!strcmp(scenario, "stall"))
		scenario_stall((pid_t)atoi(argv[3]));
	else if (!strcmp(scenario, "outage"))
		scenario_outage();
	else {
		fprintf(stderr, "etcd_drive: unknown scenario %s\n", scenario);
		return 2;
	}
	etcd_close(etcd);
	printf("%s: %d failed\n", scenario, fails);
	return fails ? 1 : 0;
}
