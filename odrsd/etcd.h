/*
 * A small etcd v3 client for odrsd: the JSON gateway (/v3/...) over HTTP,
 * through libcurl's multi interface driven by the libev loop. Nothing here
 * blocks; every answer arrives in a callback on the loop thread.
 *
 * Keys and values are plain strings here; the client base64-encodes them on
 * the wire as the gateway wants. Revisions and lease IDs are int64 (the
 * gateway sends them as JSON strings).
 *
 * Endpoints: a comma-separated list (config's etcd =). A request that cannot
 * reach one endpoint (connect error, timeout, broken connection, HTTP 5xx)
 * is retried once on the next (with a single endpoint, not at all); the
 * client then stays on that endpoint. timeout_ms bounds each attempt (and
 * a watch's connect): a request gives up after at most twice that.
 *
 * Errors are negative errno values: -ECONNREFUSED / -ETIMEDOUT / -EHOSTUNREACH
 * / -ECONNRESET when no endpoint answered, -EPROTO for an answer that is not
 * what etcd sends, -ENOENT for a lease etcd does not know (expired), -EAGAIN
 * when etcd cannot serve (no leader), -EINVAL when it refuses the request.
 * A request function returns 0 and its callback is called once, later, on
 * the loop; or it returns -errno and the callback is never called. A
 * callback may free or start requests; etcd_close() from inside a callback
 * is allowed.
 */
#ifndef ODRSD_ETCD_H
#define ODRSD_ETCD_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct etcd;

struct etcd_kv {
	const char *key;
	const char *value; /* NUL-terminated ("" for a delete event) */
	size_t value_len;
	int64_t create_revision, mod_revision, lease;
};

/* Open a client; no I/O until the first request. 0 or -errno. */
int etcd_open(struct etcd **out, struct ev_loop *loop, const char *endpoints, unsigned timeout_ms);
/* Abort every request and watch without calling their callbacks; free. NULL is fine. */
void etcd_close(struct etcd *e);

/*
 * Lease: grant with a TTL in seconds; keepalive answers the TTL left (0: it
 * expired; etcd 3.4 answers a keepalive of an unknown lease so, not with an
 * error). A put with an expired lease, or its revoke, fails with -ENOENT.
 */
typedef void (*etcd_lease_fn)(void *ctx, int err, int64_t id, int64_t ttl);
int etcd_lease_grant(struct etcd *e, int64_t ttl_s, etcd_lease_fn cb, void *ctx);
int etcd_lease_keepalive(struct etcd *e, int64_t id, etcd_lease_fn cb, void *ctx);
/* Revoke: deletes every key attached to the lease. cb may be NULL. */
int etcd_lease_revoke(struct etcd *e, int64_t id, etcd_lease_fn cb, void *ctx);

/* Range: every key with the prefix (or the one key when prefix is false), and the store's revision. */
typedef void (*etcd_range_fn)(void *ctx, int err, int64_t revision, const struct etcd_kv *kvs, size_t n);
int etcd_get(struct etcd *e, const char *key, bool prefix, etcd_range_fn cb, void *ctx);
/*
 * One page of the keys with the prefix: at most limit of them, from the first
 * past after (NULL: from the first key), as the store was at revision (0:
 * now; the answer's revision is the store's now, to ask the next pages at).
 * more: keys are left past the last one given. A whole prefix in one answer
 * can outlast timeout_ms (100,000 registry keys: 25 MB).
 */
typedef void (*etcd_page_fn)(void *ctx, int err, int64_t revision, const struct etcd_kv *kvs, size_t n,
			     bool more);
int etcd_get_page(struct etcd *e, const char *prefix, const char *after, int64_t revision, size_t limit,
		  etcd_page_fn cb, void *ctx);

/*
 * Transaction with at most one comparison, then operations when it holds
 * (none when it does not):  if KEY's TARGET == value  then put/delete ...
 * cmp NULL: the operations always run (a plain put or delete, atomically).
 * cb gets succeeded (the comparison held) and the store's revision after.
 */
enum etcd_target { ETCD_CMP_MOD, ETCD_CMP_CREATE, ETCD_CMP_VALUE };
struct etcd_cmp {
	const char *key;
	enum etcd_target target;
	int64_t revision;  /* for ETCD_CMP_MOD and ETCD_CMP_CREATE (0: the key does not exist) */
	const char *value; /* for ETCD_CMP_VALUE */
};
struct etcd_op {
	bool del; /* delete key, or put key = value */
	const char *key;
	const char *value;
	int64_t lease; /* put only; 0 for none */
};
typedef void (*etcd_txn_fn)(void *ctx, int err, bool succeeded, int64_t revision);
int etcd_txn(struct etcd *e, const struct etcd_cmp *cmp, const struct etcd_op *ops, size_t nops,
	     etcd_txn_fn cb, void *ctx);

/*
 * Watch every key under prefix from start_revision on (0: from now). Each
 * change calls ev_cb (put: value set; delete: value ""). When the stream
 * ends or fails, end_cb is called once with the error and the watch is gone:
 * the caller re-reads (etcd_get) and watches again from revision + 1. The
 * error is -ECONNRESET when the stream just closed, -ERANGE when
 * start_revision is compacted away. One watch at a time per client; returns
 * -EBUSY for a second. etcd_watch_cancel() does not call end_cb; a new watch
 * may start right after it, or from inside end_cb.
 */
typedef void (*etcd_event_fn)(void *ctx, bool deleted, const struct etcd_kv *kv);
typedef void (*etcd_end_fn)(void *ctx, int err);
int etcd_watch(struct etcd *e, const char *prefix, int64_t start_revision, etcd_event_fn ev_cb,
	       etcd_end_fn end_cb, void *ctx);
void etcd_watch_cancel(struct etcd *e);

#endif
