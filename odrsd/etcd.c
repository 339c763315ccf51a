/*
 * The etcd v3 client of etcd.h: JSON over HTTP to etcd's gateway, through
 * libcurl's multi interface on the libev loop. curl tells us which sockets
 * to watch (on_curl_socket) and when to call it back (on_curl_timer); every
 * ev_io and the ev_timer hand control back to curl_multi_socket_action().
 *
 * Callbacks never run inside curl: the write callback only stores what
 * arrived, and process() then hands out watch events and finished requests.
 * While it does, frees that a callback asks for (etcd_close,
 * etcd_watch_cancel) wait until it is done. Nothing here logs.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <jansson.h>

#include "etcd.h"

/*
 * A watch is silent while nothing changes: TCP keepalive is what notices a
 * peer that went away without closing (2 s idle, then 3 probes 1 s apart).
 */
#define WATCH_KEEPIDLE_S  2
#define WATCH_KEEPINTVL_S 1
#define WATCH_KEEPCNT	  3

enum req_kind { REQ_GRANT, REQ_KEEPALIVE, REQ_REVOKE, REQ_RANGE, REQ_TXN, REQ_WATCH };

static const char *const req_paths[] = {
	[REQ_GRANT] = "/v3/lease/grant",   [REQ_KEEPALIVE] = "/v3/lease/keepalive",
	[REQ_REVOKE] = "/v3/lease/revoke", [REQ_RANGE] = "/v3/kv/range",
	[REQ_TXN] = "/v3/kv/txn",	   [REQ_WATCH] = "/v3/watch",
};

/* Where the search for the end of the first JSON object in a stream stands. */
struct json_scan {
	size_t pos;
	unsigned depth;
	bool in_string, escaped;
};

struct req {
	struct etcd *e;
	struct req *next; /* in e->reqs, or in e->dead once released */
	enum req_kind kind;
	CURL *easy;
	char *body;
	char *buf; /* the answer as it arrives */
	size_t len, cap;
	size_t endpoint; /* the endpoint of this attempt */
	bool retried;
	int64_t lease; /* keepalive, revoke: the lease asked about */
	bool paged;    /* a range: cb.page, not cb.range */
	union {
		etcd_lease_fn lease;
		etcd_range_fn range;
		etcd_page_fn page; /* a range with a limit */
		etcd_txn_fn txn;
		etcd_event_fn event;
	} cb;
	etcd_end_fn end_cb;
	void *ctx;
	/* The watch only. */
	struct json_scan scan;
	bool created; /* etcd confirmed it: failures are no longer retried */
};

struct etcd {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer; /* curl's one timeout */
	struct curl_slist *headers;
	char *spec; /* the endpoints, split in place */
	char **urls;
	size_t nurls, current;
	unsigned timeout_ms;
	struct req *reqs; /* in curl's hands, the watch too */
	struct req *watch;
	struct req *dead; /* released while process() ran: freed at its end */
	bool dispatching, closing;
};

/* ---- encoding -------------------------------------------------------------------- */

/* Bytes as the gateway wants them: a base64 JSON string. */
static json_t *b64_json(const void *data, size_t len)
{
	size_t size = (len + 2) / 3 * 4 + 1;
	char *s = malloc(size);
	json_t *j = NULL;

	if (s && b64_ntop(data, len, s, size) >= 0)
		j = json_string(s);
	free(s);
	return j;
}

static json_t *str_json(const char *s)
{
	return b64_json(s, strlen(s));
}

/* int64 fields are JSON strings in protobuf's JSON mapping: a number loses bits above 2^53. */
static json_t *int64_json(int64_t v)
{
	return json_sprintf("%" PRId64, v);
}

/* Member name of o, base64: decoded into a fresh NUL-terminated buffer; absent is empty. */
static int b64_member(json_t *o, const char *name, char **out, size_t *len)
{
	json_t *v = json_object_get(o, name);
	const char *s = v ? json_string_value(v) : "";
	size_t size;
	int n;

	if (!s)
		return -EPROTO;
	size = strlen(s) / 4 * 3 + 3;
	if (!(*out = malloc(size + 1)))
		return -ENOMEM;
	if ((n = b64_pton(s, (unsigned char *)*out, size)) < 0) {
		free(*out);
		*out = NULL;
		return -EPROTO;
	}
	(*out)[n] = 0;
	if (len)
		*len = (size_t)n;
	return 0;
}

/* Member name of o, an int64 sent as a string; absent is 0 (protobuf leaves out zeros). */
static int int64_member(json_t *o, const char *name, int64_t *out)
{
	json_t *v = json_object_get(o, name);
	const char *s = json_string_value(v);
	char *end;

	*out = 0;
	if (!v)
		return 0;
	if (!s || !*s)
		return -EPROTO;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return *end || errno ? -EPROTO : 0;
}

static int header_revision(json_t *answer, int64_t *rev)
{
	return int64_member(json_object_get(answer, "header"), "revision", rev);
}

static void kv_clear(struct etcd_kv *kv)
{
	free((char *)kv->key);
	free((char *)kv->value);
}

static int kv_decode(json_t *o, struct etcd_kv *kv)
{
	int r;

	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(o) || !json_object_get(o, "key"))
		return -EPROTO;
	if ((r = b64_member(o, "key", (char **)&kv->key, NULL)) < 0 ||
	    (r = b64_member(o, "value", (char **)&kv->value, &kv->value_len)) < 0 ||
	    (r = int64_member(o, "create_revision", &kv->create_revision)) < 0 ||
	    (r = int64_member(o, "mod_revision", &kv->mod_revision)) < 0 ||
	    (r = int64_member(o, "lease", &kv->lease)) < 0)
		kv_clear(kv);
	return r;
}

/*
 * key (and range_end for a prefix) of a range or watch. etcd's prefix end:
 * the prefix with its last byte below 0xff incremented and the rest dropped;
 * "\0" (no end) when there is no such byte. An empty prefix is every key,
 * which etcd spells key "\0", since a key cannot be empty.
 */
static json_t *range_json(const char *key, bool prefix)
{
	size_t n = strlen(key);
	char *end;
	json_t *o;

	if (!prefix)
		return json_pack("{s:o}", "key", str_json(key));
	if (!(end = malloc(n + 1)))
		return NULL;
	memcpy(end, key, n + 1);
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n > 0)
		end[n - 1]++;
	o = json_pack("{s:o, s:o}", "key", *key ? str_json(key) : b64_json("", 1), "range_end",
		      b64_json(end, n ? n : 1));
	free(end);
	return o;
}

/* ---- errors ---------------------------------------------------------------------- */

/* gRPC status codes as etcd uses them. */
static int grpc_errno(json_int_t code)
{
	switch (code) {
	case 1:
		return -ECANCELED; /* CANCELLED */
	case 3:
		return -EINVAL; /* INVALID_ARGUMENT: a malformed request */
	case 4:
		return -ETIMEDOUT; /* DEADLINE_EXCEEDED */
	case 5:
		return -ENOENT; /* NOT_FOUND: "requested lease not found" */
	case 7:			/* PERMISSION_DENIED */
	case 16:
		return -EACCES; /* UNAUTHENTICATED */
	case 8:
		return -ENOSPC; /* RESOURCE_EXHAUSTED: "database space exceeded" */
	case 11:
		return -ERANGE; /* OUT_OF_RANGE: the revision is compacted */
	case 14:
		return -EAGAIN; /* UNAVAILABLE: no leader, timed out inside etcd */
	default:
		return -EIO;
	}
}

/* An error answer: {"error":"...","code":N}, or in a stream {"error":{"grpc_code":N,...}}. */
static int answer_errno(json_t *answer)
{
	json_t *error = json_object_get(answer, "error");
	json_t *code =
		json_is_object(error) ? json_object_get(error, "grpc_code") : json_object_get(answer, "code");

	return json_is_integer(code) ? grpc_errno(json_integer_value(code)) : -EPROTO;
}

static int curl_errno(CURL *easy, CURLcode res)
{
	long os = 0;

	switch (res) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os);
		return os > 0 ? -(int)os : -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
	case CURLE_WRITE_ERROR:		/* on_data could not grow its buffer */
	case CURLE_ABORTED_BY_CALLBACK: /* on_curl_socket had no memory for an ev_io */
		return -ENOMEM;
	case CURLE_WEIRD_SERVER_REPLY:
		return -EPROTO;
	default: /* the connection broke (reset, closed early, TLS) */
		return -ECONNRESET;
	}
}

/* ---- requests -------------------------------------------------------------------- */

static size_t on_data(char *data, size_t size, size_t n, void *userp)
{
	struct req *r = userp;
	size_t len = size * n, cap = r->cap ? r->cap : 4096;
	char *buf;

	while (cap < r->len + len)
		cap *= 2;
	if (cap != r->cap) {
		if (!(buf = realloc(r->buf, cap)))
			return 0;
		r->buf = buf;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	return len;
}

/* curl 7.88 sets keepalive's idle time and interval, not its probe count. */
static int on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
	int cnt = WATCH_KEEPCNT;

	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	return CURL_SOCKOPT_OK;
}

static void req_free(struct req *r)
{
	curl_easy_cleanup(r->easy);
	free(r->body);
	free(r->buf);
	free(r);
}

/* Out of curl and off the list; freed now, or once process() is done with it. */
static void req_release(struct req *r)
{
	struct etcd *e = r->e;
	struct req **p;

	curl_multi_remove_handle(e->multi, r->easy);
	for (p = &e->reqs; *p && *p != r; p = &(*p)->next)
		;
	if (*p)
		*p = r->next;
	if (e->watch == r)
		e->watch = NULL;
	if (e->dispatching) {
		r->next = e->dead;
		e->dead = r;
	} else {
		req_free(r);
	}
}

/* One attempt, on the endpoint the client is on now. */
static int req_send(struct req *r)
{
	struct etcd *e = r->e;
	char *url;
	int ok;

	r->endpoint = e->current;
	r->len = 0;
	r->scan = (struct json_scan){ 0 };
	if (asprintf(&url, "%s%s", e->urls[r->endpoint], req_paths[r->kind]) < 0)
		return -ENOMEM;
	ok = curl_easy_setopt(r->easy, CURLOPT_URL, url) == CURLE_OK &&
	     curl_multi_add_handle(e->multi, r->easy) == CURLM_OK;
	free(url);
	return ok ? 0 : -ENOMEM;
}

static int req_setup(struct req *r)
{
	struct etcd *e = r->e;
	CURL *c = r->easy;
	bool ok, watch = r->kind == REQ_WATCH;

	ok = curl_easy_setopt(c, CURLOPT_PRIVATE, r) == CURLE_OK &&
	     curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body) == CURLE_OK &&
	     curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->headers) == CURLE_OK &&
	     curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK &&
	     curl_easy_setopt(c, CURLOPT_WRITEDATA, r) == CURLE_OK &&
	     curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	     /* etcd is on the cluster's network: an http_proxy in our environment is not for it. */
	     curl_easy_setopt(c, CURLOPT_PROXY, "") == CURLE_OK &&
	     curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms) == CURLE_OK &&
	     /* A watch lasts as long as it is wanted. */
	     curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, watch ? 0L : (long)e->timeout_ms) == CURLE_OK;
	if (ok && watch)
		ok = curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
		     curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, (long)WATCH_KEEPIDLE_S) == CURLE_OK &&
		     curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, (long)WATCH_KEEPINTVL_S) == CURLE_OK &&
		     curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, on_sockopt) == CURLE_OK;
	return ok ? 0 : -ENOMEM;
}

/*
 * Send body (a reference taken; NULL: it could not be built) as a request
 * like tmpl (kind, callbacks, ctx).
 */
static int req_start(struct etcd *e, const struct req *tmpl, json_t *body, struct req **out)
{
	struct req *r = calloc(1, sizeof(*r));
	int err = -ENOMEM;

	if (r) {
		*r = *tmpl;
		r->e = e;
		r->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
		r->easy = r->body ? curl_easy_init() : NULL;
		if (r->easy && (err = req_setup(r)) == 0)
			err = req_send(r);
	}
	json_decref(body);
	if (err) {
		if (r)
			req_free(r);
		return err;
	}
	r->next = e->reqs;
	e->reqs = r;
	if (out)
		*out = r;
	return 0;
}

/* The next endpoint, for the requests that come after one that failed on this one. */
static void endpoint_failed(struct etcd *e, size_t endpoint)
{
	if (e->current == endpoint)
		e->current = (endpoint + 1) % e->nurls;
}

static int req_retry(struct req *r)
{
	curl_multi_remove_handle(r->e->multi, r->easy);
	r->retried = true;
	return req_send(r);
}

/* ---- answers --------------------------------------------------------------------- */

/* A finished request's answer: its JSON object, or why there is none. */
static int answer_parse(struct req *r, long status, json_t **out)
{
	json_t *j = json_loadb(r->buf ? r->buf : "", r->len, 0, NULL);
	int err = 0;

	if (!json_is_object(j))
		err = -EPROTO;
	else if (status != 200 || json_object_get(j, "error"))
		err = answer_errno(j);
	if (err) {
		json_decref(j);
		return err;
	}
	*out = j;
	return 0;
}

static void finish_lease(struct req *r, int err, json_t *answer)
{
	int64_t id = r->lease, ttl = 0;

	/* keepalive is a stream in etcd's API: its one answer comes wrapped in "result". */
	if (!err && r->kind == REQ_KEEPALIVE && !(answer = json_object_get(answer, "result")))
		err = -EPROTO;
	if (!err && r->kind == REQ_GRANT)
		err = int64_member(answer, "ID", &id);
	if (!err && r->kind != REQ_REVOKE)
		err = int64_member(answer, "TTL", &ttl);
	if (r->cb.lease)
		r->cb.lease(r->ctx, err, err ? r->lease : id, err ? 0 : ttl);
}

static void finish_range(struct req *r, int err, json_t *answer)
{
	json_t *a = json_object_get(answer, "kvs");
	size_t n = 0, count = json_array_size(a);
	struct etcd_kv *kvs = NULL;
	int64_t rev = 0;

	if (!err)
		err = header_revision(answer, &rev);
	if (!err && count && !(kvs = calloc(count, sizeof(*kvs))))
		err = -ENOMEM;
	while (!err && n < count && (err = kv_decode(json_array_get(a, n), &kvs[n])) == 0)
		n++;
	if (r->paged)
		r->cb.page(r->ctx, err, err ? 0 : rev, err ? NULL : kvs, err ? 0 : n,
			   !err && json_is_true(json_object_get(answer, "more")));
	else
		r->cb.range(r->ctx, err, err ? 0 : rev, err ? NULL : kvs, err ? 0 : n);
	while (n > 0)
		kv_clear(&kvs[--n]);
	free(kvs);
}

static void finish_txn(struct req *r, int err, json_t *answer)
{
	int64_t rev = 0;

	if (!err)
		err = header_revision(answer, &rev);
	r->cb.txn(r->ctx, err, !err && json_is_true(json_object_get(answer, "succeeded")), rev);
}

static void req_finish(struct req *r, int err, long status)
{
	json_t *answer = NULL;

	req_release(r);
	if (!err)
		err = answer_parse(r, status, &answer);
	switch (r->kind) {
	case REQ_RANGE:
		finish_range(r, err, answer);
		break;
	case REQ_TXN:
		finish_txn(r, err, answer);
		break;
	default:
		finish_lease(r, err, answer);
		break;
	}
	json_decref(answer);
}

/* ---- the watch ------------------------------------------------------------------- */

/* The length of the JSON object buf starts with, once all of it is there; 0 until then. */
static size_t object_length(struct json_scan *s, const char *buf, size_t len)
{
	for (; s->pos < len; s->pos++) {
		char c = buf[s->pos];

		if (s->in_string) {
			if (s->escaped)
				s->escaped = false;
			else if (c == '\\')
				s->escaped = true;
			else if (c == '"')
				s->in_string = false;
		} else if (c == '"') {
			s->in_string = true;
		} else if (c == '{' || c == '[') {
			s->depth++;
		} else if ((c == '}' || c == ']') && --s->depth == 0) {
			return ++s->pos;
		}
	}
	return 0;
}

static int watch_events(struct req *w, json_t *events)
{
	struct etcd *e = w->e;
	struct etcd_kv kv;
	json_t *ev;
	size_t i;
	int err;

	json_array_foreach(events, i, ev)
	{
		if (e->watch != w || e->closing)
			break;
		if ((err = kv_decode(json_object_get(ev, "kv"), &kv)) < 0)
			return err;
		/* A PUT has no "type": it is the zero of the enum. */
		w->cb.event(w->ctx, json_object_get(ev, "type") != NULL, &kv);
		kv_clear(&kv);
	}
	return 0;
}

/* One message of the stream: 0 to go on, or the error that ends the watch. */
static int watch_message(struct req *w, json_t *msg)
{
	json_t *res = json_object_get(msg, "result");
	int64_t compacted;

	if (!res)
		return answer_errno(msg);
	if (json_is_true(json_object_get(res, "canceled")))
		/* etcd cancels a watch whose start revision was compacted away. */
		return int64_member(res, "compact_revision", &compacted) == 0 && compacted ? -ERANGE
											   : -ECANCELED;
	if (json_is_true(json_object_get(res, "created")))
		w->created = true;
	return watch_events(w, json_object_get(res, "events"));
}

static bool is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Hand out the complete messages received: 0, or the error that ends the watch. */
static int watch_feed(struct req *w)
{
	struct etcd *e = w->e;
	size_t off = 0, n;
	json_t *msg;
	int err = 0;

	while (!err && e->watch == w && !e->closing) {
		while (w->scan.pos == 0 && off < w->len && is_space(w->buf[off]))
			off++;
		if (off == w->len)
			break;
		if (w->buf[off] != '{')
			err = -EPROTO;
		else if (!(n = object_length(&w->scan, w->buf + off, w->len - off)))
			break;
		else {
			msg = json_loadb(w->buf + off, n, 0, NULL);
			off += n;
			w->scan = (struct json_scan){ 0 };
			err = msg ? watch_message(w, msg) : -EPROTO;
			json_decref(msg);
		}
	}
	if (off) {
		memmove(w->buf, w->buf + off, w->len - off);
		w->len -= off;
	}
	return err;
}

static void watch_end(struct req *w, int err)
{
	req_release(w);
	w->end_cb(w->ctx, err);
}

/* The watch's stream ended: what came before it still counts. */
static void watch_done(struct req *w, int err)
{
	int feed_err = watch_feed(w);

	if (w->e->watch != w || w->e->closing)
		return;
	/* A stream that ends without an error message was closed under us. */
	watch_end(w, feed_err ? feed_err : err ? err : -ECONNRESET);
}

/* ---- the loop -------------------------------------------------------------------- */

static void req_done(struct req *r, CURLcode res)
{
	struct etcd *e = r->e;
	int err = curl_errno(r->easy, res);
	long status = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (err || status >= 500) {
		endpoint_failed(e, r->endpoint);
		if (e->nurls > 1 && !r->retried && !r->created && req_retry(r) == 0)
			return;
	}
	if (r->kind == REQ_WATCH)
		watch_done(r, err);
	else
		req_finish(r, err, status);
}

static void etcd_free(struct etcd *e)
{
	struct req *r;

	while ((r = e->reqs))
		req_release(r);
	while ((r = e->dead)) {
		e->dead = r->next;
		req_free(r);
	}
	curl_multi_cleanup(e->multi);
	ev_timer_stop(e->loop, &e->timer);
	curl_slist_free_all(e->headers);
	free(e->urls);
	free(e->spec);
	free(e);
	curl_global_cleanup();
}

/* After curl has run: watch events, then finished requests, each to its callback. */
static void process(struct etcd *e)
{
	struct req *r;
	CURLMsg *msg;
	CURLcode res;
	char *priv;
	int left, err;

	e->dispatching = true;
	if ((r = e->watch) && (err = watch_feed(r)) && e->watch == r && !e->closing)
		watch_end(r, err);
	while (!e->closing && (msg = curl_multi_info_read(e->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg lives only until the handle leaves the multi handle. */
		res = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		req_done((struct req *)priv, res);
	}
	e->dispatching = false;
	if (e->closing) {
		etcd_free(e);
		return;
	}
	while ((r = e->dead)) {
		e->dead = r->next;
		req_free(r);
	}
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct etcd *e = w->data;
	int running;

	curl_multi_socket_action(e->multi, w->fd,
				 (revents & EV_READ ? CURL_CSELECT_IN : 0) |
					 (revents & EV_WRITE ? CURL_CSELECT_OUT : 0),
				 &running);
	process(e);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct etcd *e = w->data;
	int running;

	curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	process(e);
}

/*
 * curl's wishes for one socket; our ev_io for it is curl's socketp. -1
 * (no memory) makes curl fail every transfer in progress.
 */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct etcd *e = userp;
	ev_io *io = socketp;

	if (what == CURL_POLL_REMOVE) {
		if (io) {
			ev_io_stop(e->loop, io);
			free(io);
		}
		return 0;
	}
	if (io) {
		ev_io_stop(e->loop, io);
	} else {
		if (!(io = malloc(sizeof(*io))))
			return -1;
		ev_init(io, on_io);
		io->data = e;
		curl_multi_assign(e->multi, fd, io);
	}
	ev_io_set(io, fd, (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0));
	ev_io_start(e->loop, io);
	return 0;
}

/* curl's next timeout; it may not be acted on from inside this callback, so always through the loop. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct etcd *e = userp;

	ev_timer_stop(e->loop, &e->timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&e->timer, (double)timeout_ms / 1000., 0.);
		ev_timer_start(e->loop, &e->timer);
	}
	return 0;
}

/* ---- the API --------------------------------------------------------------------- */

/* "http://a:2379,https://b:2379/": each http(s), without the trailing slash. */
static int endpoints_parse(struct etcd *e, const char *endpoints)
{
	char *p, *save, *url;
	size_t n = 1, len;

	for (p = strchr(endpoints, ','); p; p = strchr(p + 1, ','))
		n++;
	if (!(e->spec = strdup(endpoints)) || !(e->urls = calloc(n, sizeof(*e->urls))))
		return -ENOMEM;
	for (url = strtok_r(e->spec, ",", &save); url; url = strtok_r(NULL, ",", &save)) {
		len = strlen(url);
		while (len > 0 && url[len - 1] == '/')
			url[--len] = 0;
		if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
			return -EINVAL;
		e->urls[e->nurls++] = url;
	}
	return e->nurls ? 0 : -EINVAL;
}

static int multi_setup(struct etcd *e)
{
	/*
	 * "Expect: 100-continue" on larger bodies would cost a round trip for
	 * nothing. "hasleader" makes a member cut off from the majority end our
	 * watch instead of keeping it open and silent.
	 */
	e->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (e->headers)
		e->headers = curl_slist_append(e->headers, "Expect:");
	if (e->headers)
		e->headers = curl_slist_append(e->headers, "Grpc-Metadata-hasleader: true");
	if (!e->headers || !(e->multi = curl_multi_init()))
		return -ENOMEM;
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
	return 0;
}

int etcd_open(struct etcd **out, struct ev_loop *loop, const char *endpoints, unsigned timeout_ms)
{
	struct etcd *e;
	int r;

	if (!loop || !endpoints || !timeout_ms)
		return -EINVAL;
	/* Reference-counted by curl: etcd_free() gives it back. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	if (!(e = calloc(1, sizeof(*e)))) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	e->loop = loop;
	e->timeout_ms = timeout_ms;
	ev_init(&e->timer, on_timer);
	e->timer.data = e;
	if ((r = multi_setup(e)) < 0 || (r = endpoints_parse(e, endpoints)) < 0) {
		etcd_free(e);
		return r;
	}
	*out = e;
	return 0;
}

void etcd_close(struct etcd *e)
{
	if (!e)
		return;
	if (e->dispatching)
		e->closing = true;
	else
		etcd_free(e);
}

static int lease_request(struct etcd *e, enum req_kind kind, int64_t id, etcd_lease_fn cb, void *ctx)
{
	struct req tmpl = { .kind = kind, .lease = id, .cb.lease = cb, .ctx = ctx };

	return req_start(e, &tmpl, json_pack("{s:o}", "ID", int64_json(id)), NULL);
}

int etcd_lease_grant(struct etcd *e, int64_t ttl_s, etcd_lease_fn cb, void *ctx)
{
	struct req tmpl = { .kind = REQ_GRANT, .cb.lease = cb, .ctx = ctx };

	return req_start(e, &tmpl, json_pack("{s:o}", "TTL", int64_json(ttl_s)), NULL);
}

int etcd_lease_keepalive(struct etcd *e, int64_t id, etcd_lease_fn cb, void *ctx)
{
	return lease_request(e, REQ_KEEPALIVE, id, cb, ctx);
}

int etcd_lease_revoke(struct etcd *e, int64_t id, etcd_lease_fn cb, void *ctx)
{
	return lease_request(e, REQ_REVOKE, id, cb, ctx);
}

int etcd_get(struct etcd *e, const char *key, bool prefix, etcd_range_fn cb, void *ctx)
{
	struct req tmpl = { .kind = REQ_RANGE, .cb.range = cb, .ctx = ctx };

	return req_start(e, &tmpl, range_json(key, prefix), NULL);
}

int etcd_get_page(struct etcd *e, const char *prefix, const char *after, int64_t revision, size_t limit,
		  etcd_page_fn cb, void *ctx)
{
	struct req tmpl = { .kind = REQ_RANGE, .paged = true, .cb.page = cb, .ctx = ctx };
	json_t *o = range_json(prefix, true);
	int bad = !o;

	/* The first key past after: after with a NUL byte appended. */
	if (!bad && after)
		bad = json_object_set_new(o, "key", b64_json(after, strlen(after) + 1));
	if (!bad && revision > 0)
		bad = json_object_set_new(o, "revision", int64_json(revision));
	if (!bad)
		bad = json_object_set_new(o, "limit", int64_json((int64_t)limit));
	if (bad) {
		json_decref(o);
		return -ENOMEM;
	}
	return req_start(e, &tmpl, o, NULL);
}

static json_t *cmp_json(const struct etcd_cmp *c)
{
	static const char *const targets[] = {
		[ETCD_CMP_MOD] = "MOD",
		[ETCD_CMP_CREATE] = "CREATE",
		[ETCD_CMP_VALUE] = "VALUE",
	};
	static const char *const fields[] = {
		[ETCD_CMP_MOD] = "mod_revision",
		[ETCD_CMP_CREATE] = "create_revision",
		[ETCD_CMP_VALUE] = "value",
	};

	/* "result" is left out: EQUAL is its zero. */
	return json_pack("{s:o, s:s, s:o}", "key", str_json(c->key), "target", targets[c->target],
			 fields[c->target],
			 c->target == ETCD_CMP_VALUE ? str_json(c->value) : int64_json(c->revision));
}

static json_t *op_json(const struct etcd_op *op)
{
	if (op->del)
		return json_pack("{s:{s:o}}", "request_delete_range", "key", str_json(op->key));
	return json_pack("{s:{s:o, s:o, s:o}}", "request_put", "key", str_json(op->key), "value",
			 str_json(op->value), "lease", int64_json(op->lease));
}

int etcd_txn(struct etcd *e, const struct etcd_cmp *cmp, const struct etcd_op *ops, size_t nops,
	     etcd_txn_fn cb, void *ctx)
{
	struct req tmpl = { .kind = REQ_TXN, .cb.txn = cb, .ctx = ctx };
	json_t *compare = json_array(), *success = json_array();

	if (cmp && (unsigned)cmp->target > ETCD_CMP_VALUE) {
		json_decref(compare);
		json_decref(success);
		return -EINVAL;
	}
	if (cmp)
		json_array_append_new(compare, cmp_json(cmp));
	for (size_t i = 0; i < nops; i++)
		json_array_append_new(success, op_json(&ops[i]));
	/* A part that could not be built is missing: its array is shorter than asked. */
	if (json_array_size(compare) != (cmp ? 1 : 0) || json_array_size(success) != nops) {
		json_decref(compare);
		json_decref(success);
		return -ENOMEM;
	}
	return req_start(e, &tmpl, json_pack("{s:o, s:o}", "compare", compare, "success", success), NULL);
}

int etcd_watch(struct etcd *e, const char *prefix, int64_t start_revision, etcd_event_fn ev_cb,
	       etcd_end_fn end_cb, void *ctx)
{
	struct req tmpl = { .kind = REQ_WATCH, .cb.event = ev_cb, .end_cb = end_cb, .ctx = ctx };
	json_t *create;

	if (e->watch)
		return -EBUSY;
	create = range_json(prefix, true);
	if (create && start_revision > 0 &&
	    json_object_set_new(create, "start_revision", int64_json(start_revision)) < 0) {
		json_decref(create);
		return -ENOMEM;
	}
	return req_start(e, &tmpl, json_pack("{s:o}", "create_request", create), &e->watch);
}

void etcd_watch_cancel(struct etcd *e)
{
	if (e->watch)
		req_release(e->watch);
}
