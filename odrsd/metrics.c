/* /metrics over HTTP (libmicrohttpd), rendered on the loop on request: see metrics.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

#define METRICS_PATH	  "/metrics"
#define METRICS_CONN_MAX  16 /* scrapers at once; more are refused by MHD */
#define METRICS_CONN_IDLE 10 /* seconds a connection may stay idle */
#define METRICS_CONTENT	  "text/plain; version=0.0.4; charset=utf-8"

static struct {
	struct odrsd *d;
	int fd; /* bound and listening, until MHD owns it */
	struct MHD_Daemon *mhd;
	ev_async render; /* a scrape asks the loop for a rendering */
	/* What the loop counts between scrapes (loop only). */
	struct metrics_snapshot live;
	/* The handoff, under mu: the loop answers the asked-th request with text. */
	pthread_mutex_t mu;
	pthread_cond_t done;
	uint64_t asked, rendered;
	char *text;
	size_t len;
	bool stopping;
} m = { .fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER };

void metrics_observe_change(struct odrsd *d, struct vm *vm, const struct vm_change *c)
{
	const struct virt_job *job = c->in->job;

	switch (c->in->ev) {
	case VM_EV_RESTORE_OK:
	case VM_EV_RESUME_OK:
		if ((unsigned)vm->trigger < METRICS_TRIGGERS)
			m.live.wakes[vm->trigger][c->in->ev == VM_EV_RESUME_OK ? METRICS_FROM_DOZE
									       : METRICS_FROM_HIBERNATE]++;
		metrics_histogram_observe(&m.live.wake,
					  vm->last_wake_ms > 0 ? (uint64_t)vm->last_wake_ms : 0);
		break;
	case VM_EV_SAVE_OK:
		metrics_histogram_observe(&m.live.hibernate, job->ms);
		break;
	case VM_EV_DOZE_OK:
		vm->paged_out_bytes = job->paged_out_bytes;
		break;
	default:
		break;
	}
}

/* The counters as `odrsctl status` reads them, and the VM table. */
static void snapshot_fill(struct odrsd *d, struct metrics_snapshot *s)
{
	int64_t term;

	*s = m.live;
	s->arp_replies = d->n.arp_replies;
	s->syns_held = d->n.syns_held;
	s->frames_malformed = d->n.malformed;
	s->pcap_drops = capture_pcap_drops(d);
	s->reply_delay = d->reply_delay;
	s->reply_turn = d->reply_turn;
	s->loop_turn = d->loop_turn;
	s->accept_holder = !strcmp(cluster_accept_holder(d, &term), d->cfg->node);
	for (size_t i = 0; i < d->nvms; i++) {
		const struct vm *vm = d->vms[i];

		s->vms[vm->state]++;
		if (vm->state == VM_HIBERNATED)
			s->memory_freed_bytes += vm->snapshot_bytes;
		else if (vm->state == VM_DOZING && vm_is_local(d, vm))
			s->memory_freed_bytes += vm->paged_out_bytes;
	}
}

/* On the loop: render, hand over, wake the scrapes that asked. */
static void on_render(struct ev_loop *loop, ev_async *w, int revents)
{
	struct metrics_snapshot s;
	char *text = NULL;
	ssize_t len;
	uint64_t asked;

	pthread_mutex_lock(&m.mu);
	asked = m.asked;
	pthread_mutex_unlock(&m.mu);
	snapshot_fill(m.d, &s);
	if ((len = metrics_render(&s, &text)) < 0)
		log_warn("metrics: out of memory rendering a scrape");
	pthread_mutex_lock(&m.mu);
	if (len >= 0) {
		free(m.text);
		m.text = text;
		m.len = (size_t)len;
	}
	m.rendered = asked;
	pthread_cond_broadcast(&m.done);
	pthread_mutex_unlock(&m.mu);
}

/* In MHD's thread: a copy of a rendering made after the request came, or NULL. */
static char *await_rendering(size_t *len)
{
	struct timespec until;
	uint64_t mine;
	char *copy = NULL;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += METRICS_WAIT_S;
	pthread_mutex_lock(&m.mu);
	mine = ++m.asked;
	ev_async_send(m.d->loop, &m.render);
	while (!m.stopping && m.rendered < mine && r == 0)
		r = pthread_cond_timedwait(&m.done, &m.mu, &until);
	if (!m.stopping && m.rendered >= mine && m.text && (copy = malloc(m.len ? m.len : 1))) {
		memcpy(copy, m.text, m.len);
		*len = m.len;
	}
	pthread_mutex_unlock(&m.mu);
	return copy;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
			      enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result r;

	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				status == MHD_HTTP_OK ? METRICS_CONTENT : "text/plain; charset=utf-8");
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_len, void **state)
{
	static char not_found[] = "only " METRICS_PATH " is here\n", no_method[] = "GET or HEAD only\n",
		    busy[] = "odrsd did not render the metrics in time\n";
	char *text;
	size_t len = 0;

	if (strcmp(url, METRICS_PATH))
		return answer(conn, MHD_HTTP_NOT_FOUND, not_found, sizeof(not_found) - 1,
			      MHD_RESPMEM_PERSISTENT);
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, no_method, sizeof(no_method) - 1,
			      MHD_RESPMEM_PERSISTENT);
	if (!(text = await_rendering(&len)))
		return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, busy, sizeof(busy) - 1,
			      MHD_RESPMEM_PERSISTENT);
	return answer(conn, MHD_HTTP_OK, text, len, MHD_RESPMEM_MUST_FREE);
}

int metrics_open(struct odrsd *d)
{
	const char *listen_on = d->cfg->metrics_listen;
	struct wk_hostport hp;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	const int on = 1;
	int fd, err;

	m.d = d;
	if (!listen_on)
		return 0;
	if (wk_parse_hostport(listen_on, &hp) < 0) /* the loader checked it */
		return -EINVAL;
	if ((fd = socket(hp.v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (hp.v6) {
		/* [::]:PORT is IPv6 only: IPv4 scrapers name an IPv4 address. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
		memcpy(&sin6.sin6_addr, hp.addr, 16);
		sin6.sin6_port = htons(hp.port);
	} else {
		memcpy(&sin.sin_addr, hp.addr, 4);
		sin.sin_port = htons(hp.port);
	}
	if ((hp.v6 ? bind(fd, (struct sockaddr *)&sin6, sizeof(sin6))
		   : bind(fd, (struct sockaddr *)&sin, sizeof(sin))) < 0 ||
	    listen(fd, METRICS_CONN_MAX) < 0) {
		err = errno;
		close(fd);
		errno = err;
		goto fail;
	}
	m.fd = fd;
	return 0;
fail:
	err = errno;
	log_err("metrics_listen %s: %s", listen_on, strerror(err));
	return -err;
}

int metrics_start(struct odrsd *d)
{
	pthread_condattr_t ca;

	if (m.fd < 0)
		return 0;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m.done, &ca);
	pthread_condattr_destroy(&ca);
	ev_async_init(&m.render, on_render);
	ev_async_start(d->loop, &m.render);
	m.mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, on_request,
				 NULL, MHD_OPTION_LISTEN_SOCKET, m.fd, MHD_OPTION_CONNECTION_LIMIT,
				 (unsigned)METRICS_CONN_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
				 (unsigned)METRICS_CONN_IDLE, MHD_OPTION_END);
	if (!m.mhd) {
		log_err("metrics_listen %s: libmicrohttpd did not start", d->cfg->metrics_listen);
		ev_async_stop(d->loop, &m.render);
		return -EIO;
	}
	log_info("metrics on http://%s" METRICS_PATH, d->cfg->metrics_listen);
	return 0;
}

void metrics_stop(struct odrsd *d)
{
	if (!m.mhd)
		return;
	/* A scrape waiting for the loop, which runs no more, is answered 503 at once. */
	pthread_mutex_lock(&m.mu);
	m.stopping = true;
	pthread_cond_broadcast(&m.done);
	pthread_mutex_unlock(&m.mu);
	MHD_stop_daemon(m.mhd); /* closes the listening socket too */
	m.mhd = NULL;
	m.fd = -1;
	ev_async_stop(d->loop, &m.render);
	free(m.text);
	m.text = NULL;
}
