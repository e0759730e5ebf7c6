/*
 * http.c - the daemon's HTTP endpoint (see http.h): libmicrohttpd with a
 * thread per connection.
 *
 * A request: the first call of the access handler sees only the headers.
 * Routing, the token, the content type, draining and Content-Length are
 * decided there, so a refused push is answered before any of its body is
 * read. The body is then gathered (never past body_max) and the last call
 * hands it to m2w_ingest_parse_body (ingest.h: JSON items, NDJSON and CSV
 * read, mapped, merged and checked by the same code as files), which gives
 * back every task or the rejected rows, and only then enqueues the tasks
 * in one m2w_queue_enqueue: one fsync'd, all-or-none commit, after which
 * 202 goes out. Nothing here parses a body.
 *
 * Slow clients: MHD's connection timeout closes idle connections, but a
 * client that trickles a byte now and then is never idle. So every
 * connection carries a deadline (socket context, from the connection
 * notification): the request must arrive whole within [http] timeout of
 * the connection opening, or of the previous response. A sweeper thread
 * shuts down the socket of a connection past its deadline; MHD then sees
 * the end of the stream and closes it. The deadline is cleared while a
 * request is being answered. The list is under `mu`; MHD reports a
 * connection closed before it closes its socket, so a shut down socket is
 * always still ours.
 *
 * Tokens are hashed (SHA-256) at start; a presented token is hashed and
 * compared with every digest by CRYPTO_memcmp, all of them each time.
 *
 * State: everything lives in struct m2w_http; counters are bumped with
 * atomic adds from the connection threads.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "amqp.h"
#include "events.h"
#include "http.h"
#include "http_internal.h"
#include "console.h"
#include "m2worker/admin.h"
#include "m2worker/buf.h"
#include "m2worker/clock.h"
#include "m2worker/report.h"
#include "m2worker/ingest.h"
#include "m2worker/jobs.h"
#include "m2worker/log.h"
#include "m2worker/parse.h"

#if MHD_VERSION >= 0x00095400
#define HTTP_MHD_INTERNAL MHD_USE_INTERNAL_POLLING_THREAD
#else
#define HTTP_MHD_INTERNAL MHD_USE_SELECT_INTERNALLY
#endif

#define DIGEST 32            /* SHA-256 */
#define SWEEP_MS 200

/* Status codes counted for /metrics. */
static const int codes[] = { 200, 202, 303, 400, 401, 403, 404, 405, 409,
			     413, 415, 500, 503, 507 };
#define NCODES (sizeof(codes) / sizeof(codes[0]))

/* One TCP connection (MHD's socket context). */
struct conn {
	struct conn *prev, *next;
	int fd;
	int64_t deadline;        /* monotonic ms; 0 = none (answering) */
};

/* One request (MHD's con_cls). */
struct req {
	int64_t t0;              /* monotonic ms */
	char method[8];
	char path[128];
	int push;                /* POST /v1/tasks, accepted so far */
	int ui;                  /* a POST to the console, its body wanted */
	int kind;                /* body format, enum m2w_ingest_format */
	struct m2w_buf body;     /* capped at [http] body_max */
	int too_big;
	int answered;            /* a response is queued */
};

struct m2w_http {
	struct MHD_Daemon *d;
	struct m2w_queue *q;
	const struct m2w_config *cfg;
	struct m2w_pool *pool;
	struct m2w_amqp *amqp;   /* its state in /healthz and /metrics */
	struct m2w_events *events; /* likewise */
	struct m2w_console *console;   /* /ui/, NULL when off */
	struct m2w_metrics nometrics;  /* when there is no pool */
	unsigned char (*tok)[DIGEST];
	size_t ntok;
	int draining;                  /* atomic */
	int64_t timeout_ms;
	/* the sweeper */
	pthread_t sweeper;
	int sweeper_ok;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	struct conn *conns;
	/* counters */
	uint64_t responses[NCODES];
	uint64_t pushed, duplicates;
};

/* ------------------------------------------------------------- helpers */

static void sha256(const void *s, size_t n, unsigned char *md)
{
	unsigned int len = 0;

	if (!EVP_Digest(s, n, md, &len, EVP_sha256(), NULL))
		memset(md, 0, DIGEST);
}

char *m2w_json_text(json_object *o)
{
	int flags = JSON_C_TO_STRING_PLAIN;
	const char *s;

#ifdef JSON_C_TO_STRING_NOSLASHESCAPE
	flags |= JSON_C_TO_STRING_NOSLASHESCAPE;
#endif
	s = json_object_to_json_string_ext(o, flags);
	return s ? strdup(s) : NULL;
}

void m2w_reply_error(struct m2w_reply *r, int status, const char *fmt, ...)
{
	char msg[M2W_ERRBUF_SIZE * 2];
	json_object *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(msg));
	m2w_reply_json(r, status, o);
}

void m2w_reply_text(struct m2w_reply *r, int status, const char *ctype,
		    const char *text)
{
	free(r->body);
	r->status = status;
	r->ctype = ctype;
	r->body = strdup(text);
}

void m2w_reply_json(struct m2w_reply *r, int status, json_object *o)
{
	free(r->body);
	r->status = status;
	r->ctype = NULL;
	r->body = o ? m2w_json_text(o) : NULL;
	json_object_put(o);
}

void m2w_reply_header(struct m2w_reply *r, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (r->nhdr >= M2W_REPLY_HEADERS)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if ((r->hdr[r->nhdr] = strdup(line)))
		r->nhdr++;
}

static void reply_release(struct m2w_reply *r)
{
	size_t i;

	free(r->body);
	r->body = NULL;
	for (i = 0; i < r->nhdr; i++)
		free(r->hdr[i]);
	r->nhdr = 0;
}

void m2w_http_peer(struct MHD_Connection *c, char *peer, size_t size)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	snprintf(peer, size, "-");
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)
				     (const void *)ci->client_addr)->sin_addr,
			  peer, (socklen_t)size);
	else if (ci && ci->client_addr &&
		 ci->client_addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
				      (const void *)ci->client_addr)->sin6_addr,
			  peer, (socklen_t)size);
}

/* --------------------------------------------------------- connections */

static void conn_deadline(struct m2w_http *h, struct MHD_Connection *c,
			  int64_t deadline)
{
	const union MHD_ConnectionInfo *ci;
	struct conn *k;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (!ci || !(k = ci->socket_context))
		return;
	pthread_mutex_lock(&h->mu);
	k->deadline = deadline;
	pthread_mutex_unlock(&h->mu);
}

static void on_connection(void *cls, struct MHD_Connection *c,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct m2w_http *h = cls;
	const union MHD_ConnectionInfo *ci;
	struct conn *k;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!ci || !(k = calloc(1, sizeof(*k))))
			return;
		k->fd = ci->connect_fd;
		k->deadline = m2w_clock_mono_ms() + h->timeout_ms;
		pthread_mutex_lock(&h->mu);
		k->next = h->conns;
		if (h->conns)
			h->conns->prev = k;
		h->conns = k;
		pthread_mutex_unlock(&h->mu);
		*socket_context = k;
		return;
	}
	if (!(k = *socket_context))
		return;
	pthread_mutex_lock(&h->mu);
	if (k->prev)
		k->prev->next = k->next;
	else
		h->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&h->mu);
	free(k);
	*socket_context = NULL;
}

static void *sweep(void *arg)
{
	struct m2w_http *h = arg;
	struct timespec ts;
	struct conn *k;
	int64_t now;

	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		now = m2w_clock_mono_ms();
		for (k = h->conns; k; k = k->next) {
			if (!k->deadline || now < k->deadline)
				continue;
			k->deadline = 0;
			shutdown(k->fd, SHUT_RDWR);
			m2w_log(M2W_LOG_DEBUG, "http.timeout", "fd=%d "
				"timeout_ms=%lld", k->fd,
				(long long)h->timeout_ms);
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += SWEEP_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* ---------------------------------------------------------------- auth */

/* Does the Authorization header carry one of the tokens? Every digest is
 * compared, whatever the outcome. */
static int authorized(const struct m2w_http *h, struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION);
	unsigned char md[DIGEST];
	size_t i, n;
	int ok = 0;

	if (!a)
		return 0;
	while (*a == ' ' || *a == '\t')
		a++;
	if (strncasecmp(a, "Bearer", 6) != 0 || (a[6] != ' ' && a[6] != '\t'))
		return 0;
	a += 6;
	while (*a == ' ' || *a == '\t')
		a++;
	n = strlen(a);
	while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
		n--;
	if (!n)
		return 0;
	sha256(a, n, md);
	for (i = 0; i < h->ntok; i++)
		ok |= CRYPTO_memcmp(md, h->tok[i], DIGEST) == 0;
	OPENSSL_cleanse(md, sizeof(md));
	return ok;
}

/* ---------------------------------------------------------------- push */

/* Is `type` paused (or everything)? */
static int paused(const struct m2w_stats *st, const char *type)
{
	size_t i;

	if (st->paused_all)
		return 1;
	for (i = 0; i < st->ntypes; i++)
		if (strcmp(st->types[i].type, type) == 0)
			return st->types[i].paused;
	return 0;
}

/* {"row":N,"line":L|null,"field":F|null,"reason":R} */
static json_object *row_error(uint64_t row, uint64_t line, const char *field,
			      const char *reason)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "row", json_object_new_int64((int64_t)row));
	json_object_object_add(e, "line", line
			       ? json_object_new_int64((int64_t)line) : NULL);
	json_object_object_add(e, "field", field && *field
			       ? json_object_new_string(field) : NULL);
	json_object_object_add(e, "reason", json_object_new_string(reason));
	return e;
}

/* The body's options from the query; 0, or -1 with `out` set (400). */
static int push_opts(struct MHD_Connection *c, struct req *rq,
		     struct m2w_ingest_opts *bo, struct m2w_reply *out)
{
	const struct m2w_job *job = NULL;
	const char *type, *kf, *delim;
	char names[128];

	type = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type");
	kf = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key_field");
	delim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
					    "delimiter");
	if (type && !*type)
		type = NULL;
	if (type && !(job = m2w_job_find(type))) {
		m2w_reply_error(out, 400, "unknown type \"%.40s\": %s", type,
			  m2w_job_names(0, names, sizeof(names)));
		return -1;
	}
	if (rq->kind == M2W_INGEST_CSV && !type) {
		m2w_reply_error(out, 400, "text/csv needs ?type= (%s)",
			  m2w_job_names(M2W_IN_CSV, names, sizeof(names)));
		return -1;
	}
	if (rq->kind == M2W_INGEST_CSV && !(job->inputs & M2W_IN_CSV)) {
		m2w_reply_error(out, 400, "type %s takes JSON, not CSV", type);
		return -1;
	}
	if (kf && !type) {
		m2w_reply_error(out, 400, "?key_field needs ?type (with items, use "
			  "their \"key\")");
		return -1;
	}
	memset(bo, 0, sizeof(*bo));
	bo->format = rq->kind;
	bo->type = type;
	bo->key_field = kf && *kf ? kf : NULL;
	bo->source = "http";
	bo->rows_max = M2W_HTTP_ROWS_MAX;
	if (delim && *delim && m2w_parse_delimiter(delim, &bo->delimiter) < 0) {
		m2w_reply_error(out, 400, "?delimiter must be , ; or tab");
		return -1;
	}
	if (!rq->body.len) {
		m2w_reply_error(out, 400, "empty body");
		return -1;
	}
	return 0;
}

static void push(struct m2w_http *h, struct MHD_Connection *c,
		 struct req *rq, struct m2w_reply *out)
{
	struct m2w_ingest_opts bo;
	struct m2w_body b;
	struct m2w_stats st;
	const char *mixed = NULL;
	char eb[M2W_ERRBUF_SIZE] = "", q1[M2W_ERRBUF_SIZE * 2];
	json_object *acc, *dup, *res, *errs;
	size_t i, ndup = 0;
	int rc, all;

	memset(&b, 0, sizeof(b));
	if (push_opts(c, rq, &bo, out))
		return;
	rc = m2w_ingest_parse_body(rq->body.buf, rq->body.len, &bo, &b);
	if (rc == M2W_ENOMEM) {
		m2w_reply_error(out, 500, "out of memory");
		goto out;
	}
	if (rc != M2W_OK && !b.rejected) {
		/* the body as a whole */
		if (b.too_many) {
			m2w_reply_error(out, 413, "%s", b.error);
		} else {
			res = json_object_new_object();
			json_object_object_add(res, "error",
					       json_object_new_string(b.error));
			json_object_object_add(res, "errors",
					       json_object_new_array());
			m2w_reply_json(out, 400, res);
		}
		m2w_log(M2W_LOG_DEBUG, "push.rejected", "status=%d error=%s",
			out->status, m2w_log_quote(q1, sizeof(q1), b.error));
		goto out;
	}
	if (rc != M2W_OK) {
		char msg[M2W_ERRBUF_SIZE + 32];

		snprintf(msg, sizeof(msg), "%s: nothing enqueued", b.error);
		res = json_object_new_object();
		errs = json_object_new_array();
		for (i = 0; i < b.nerrors; i++)
			json_object_array_add(errs, row_error(b.errors[i].row,
				b.errors[i].line, b.errors[i].field,
				b.errors[i].reason));
		json_object_object_add(res, "error", json_object_new_string(msg));
		json_object_object_add(res, "rejected",
				       json_object_new_int64((int64_t)b.rejected));
		json_object_object_add(res, "errors", errs);
		m2w_reply_json(out, 400, res);
		m2w_log(M2W_LOG_INFO, "push.rejected", "rows=%llu rejected=%llu",
			(unsigned long long)b.rows,
			(unsigned long long)b.rejected);
		goto out;
	}
	if (__atomic_load_n(&h->draining, __ATOMIC_SEQ_CST)) {
		m2w_reply_error(out, 503, "shutting down: push again later");
		out->retry_after = 5;
		out->close = 1;
		goto out;
	}
	if (b.ntasks) {
		if ((rc = m2w_queue_stats(h->q, &st, eb))) {
			m2w_reply_error(out, 500, "%s", eb[0] ? eb : m2w_strerror(rc));
			goto out;
		}
		for (i = 0; i < b.ntasks; i++)
			if (paused(&st, b.tasks[i].type))
				break;
		all = st.paused_all;
		m2w_stats_free(&st);
		if (i < b.ntasks) {
			m2w_reply_error(out, 503, "%s paused: push again after "
				  "`qctl resume`", all ? "everything is" :
				  b.tasks[i].type);
			out->retry_after = 30;
			goto out;
		}
	}
	for (i = 1; i < b.ntasks; i++)
		if (strcmp(b.tasks[i].type, b.tasks[0].type) != 0)
			mixed = "mixed";
	rc = b.ntasks ? m2w_queue_enqueue(h->q, b.tasks, b.ntasks, eb) : M2W_OK;
	if (rc == M2W_EFULL || rc == M2W_ENOSPC) {
		m2w_reply_error(out, 507, "%s: nothing enqueued (%s)",
			  rc == M2W_EFULL ? "the store is full" : "the disk is full",
			  eb[0] ? eb : m2w_strerror(rc));
		m2w_log(M2W_LOG_ERROR, "push.refused", "status=507 tasks=%zu "
			"error=%s", b.ntasks, m2w_log_quote(q1, sizeof(q1),
						       eb[0] ? eb : m2w_strerror(rc)));
		goto out;
	}
	if (rc == M2W_EINVAL) {
		char reason[M2W_BODY_REASON_MAX];

		res = json_object_new_object();
		errs = json_object_new_array();
		for (i = 0; i < b.ntasks; i++) {
			if (!b.tasks[i].err)
				continue;
			snprintf(reason, sizeof(reason), "refused by the store: "
				 "%s", m2w_strerror(b.tasks[i].err));
			json_object_array_add(errs, row_error(b.at[i].row,
				b.at[i].line, NULL, reason));
		}
		json_object_object_add(res, "error", json_object_new_string(
					       eb[0] ? eb : "refused by the store"));
		json_object_object_add(res, "errors", errs);
		m2w_reply_json(out, 400, res);
		goto out;
	}
	if (rc != M2W_OK) {
		m2w_reply_error(out, 500, "%s", eb[0] ? eb : m2w_strerror(rc));
		m2w_log(M2W_LOG_ERROR, "push.refused", "status=500 tasks=%zu "
			"error=%s", b.ntasks, m2w_log_quote(q1, sizeof(q1),
						       eb[0] ? eb : m2w_strerror(rc)));
		goto out;
	}
	res = json_object_new_object();
	acc = json_object_new_array();
	dup = json_object_new_array();
	for (i = 0; i < b.ntasks; i++) {
		json_object_array_add(b.tasks[i].duplicate ? dup : acc,
				      json_object_new_int64((int64_t)b.tasks[i].id));
		ndup += b.tasks[i].duplicate != 0;
	}
	json_object_object_add(res, "accepted", acc);
	json_object_object_add(res, "duplicates", dup);
	m2w_reply_json(out, 202, res);
	__sync_fetch_and_add(&h->pushed, (uint64_t)(b.ntasks - ndup));
	__sync_fetch_and_add(&h->duplicates, (uint64_t)ndup);
	m2w_log(M2W_LOG_INFO, "push.accepted", "tasks=%zu duplicates=%zu "
		"type=%s rows=%llu ms=%lld", b.ntasks - ndup, ndup,
		mixed ? mixed : b.ntasks ? b.tasks[0].type
					 : bo.type ? bo.type : "-",
		(unsigned long long)b.rows,
		(long long)(m2w_clock_mono_ms() - rq->t0));
out:
	m2w_body_free(&b);
}

/* ------------------------------------------------------------- the GETs */

/* The shape of `qctl stats --json`. */
static void get_stats(struct m2w_http *h, struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	int64_t now = m2w_queue_now(h->q);
	json_object *o;
	struct m2w_stats st;
	int rc;

	if ((rc = m2w_queue_stats(h->q, &st, eb))) {
		m2w_reply_error(out, 500, "%s", eb[0] ? eb : m2w_strerror(rc));
		return;
	}
	o = m2w_stats_json(&st, now);
	m2w_stats_free(&st);
	m2w_reply_json(out, 200, o);
}

/* As `qctl show --json`, without the history. */
static void get_task(struct m2w_http *h, const char *id, struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "", *end;
	struct m2w_task *t;
	unsigned long long v;
	json_object *o;
	int rc;

	errno = 0;
	v = strtoull(id, &end, 10);
	if (!isdigit((unsigned char)id[0]) || *end || errno || !v) {
		m2w_reply_error(out, 404, "no task %.40s", id);
		return;
	}
	rc = m2w_queue_get(h->q, (uint64_t)v, &t, eb);
	if (rc == M2W_ENOTFOUND) {
		m2w_reply_error(out, 404, "no task %llu", v);
		return;
	}
	if (rc) {
		m2w_reply_error(out, 500, "%s", eb[0] ? eb : m2w_strerror(rc));
		return;
	}
	o = m2w_task_json(t, 1);
	m2w_task_free(t);
	m2w_reply_json(out, 200, o);
}

static void get_metrics(struct m2w_http *h, struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	struct m2w_buf text = M2W_BUF_INIT;
	struct m2w_stats st;
	const struct m2w_metrics *m = h->pool ? m2w_pool_metrics(h->pool)
					      : &h->nometrics;
	int have = m2w_queue_stats(h->q, &st, eb) == M2W_OK;
	size_t i;
	int rc;

	rc = m2w_metrics_render(m, h->cfg, have ? &st : NULL,
				h->pool ? m2w_pool_breaker_state(h->pool)
					: M2W_BREAKER_CLOSED, &text);
	if (have)
		m2w_stats_free(&st);
	if (rc) {
		m2w_buf_release(&text);
		m2w_reply_error(out, 500, "%s", m2w_strerror(rc));
		return;
	}
	m2w_pool_client_metrics(h->pool, &text);
	m2w_pool_limit_metrics(h->pool, &text);
	m2w_amqp_metrics(h->amqp, &text);
	m2w_events_metrics(h->events, &text);
	m2w_buf_adds(&text, "# HELP m2worker_http_requests_total HTTP "
		     "requests by status.\n# TYPE "
		     "m2worker_http_requests_total counter\n");
	for (i = 0; i < NCODES; i++)
		m2w_buf_addf(&text, "m2worker_http_requests_total{code=\"%d\"} "
			     "%llu\n", codes[i], (unsigned long long)
			     __atomic_load_n(&h->responses[i],
					     __ATOMIC_RELAXED));
	m2w_buf_addf(&text, "# HELP m2worker_http_pushed_tasks_total "
		     "Tasks pushed over HTTP (new, or duplicates of known "
		     "ones).\n# TYPE m2worker_http_pushed_tasks_total counter\n"
		     "m2worker_http_pushed_tasks_total{result=\"accepted\"} "
		     "%llu\n"
		     "m2worker_http_pushed_tasks_total{result=\"duplicate\"} "
		     "%llu\n",
		     (unsigned long long)__atomic_load_n(&h->pushed,
							 __ATOMIC_RELAXED),
		     (unsigned long long)__atomic_load_n(&h->duplicates,
							 __ATOMIC_RELAXED));
	if (text.failed) {
		m2w_buf_release(&text);
		m2w_reply_error(out, 500, "out of memory");
		return;
	}
	free(out->body);
	out->status = 200;
	out->ctype = "text/plain; version=0.0.4; charset=utf-8";
	out->body = m2w_buf_detach(&text);
}

/* ------------------------------------------------------------- requests */

/* The console's pages and API: no inline script, no framing, no sniffing,
 * no referrer beyond the origin. */
#define UI_CSP "default-src 'self'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; " \
	"base-uri 'none'; form-action 'self'"

static void add_header_line(struct MHD_Response *resp, char *line)
{
	char *v = strchr(line, ':');

	if (!v)
		return;
	*v++ = '\0';
	while (*v == ' ')
		v++;
	MHD_add_response_header(resp, line, v);
}

static mhd_ret send_reply(struct m2w_http *h, struct MHD_Connection *c,
			  struct req *rq, struct m2w_reply *r)
{
	struct MHD_Response *resp;
	const char *body = r->body ? r->body : "";
	size_t len, i;
	char q1[200], ra[16];
	mhd_ret ret;

	if (!r->body && !r->fixed && r->status != 200)
		body = "{\"error\":\"out of memory\"}";
	len = r->fixed ? r->fixed_len : strlen(body);
	if (r->fixed)
		body = r->fixed;
#if MHD_VERSION >= 0x00097701
	resp = MHD_create_response_from_buffer_copy(len, body);
#else
	resp = MHD_create_response_from_buffer(len, (void *)body,
					       MHD_RESPMEM_MUST_COPY);
#endif
	if (!resp) {
		reply_release(r);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				r->ctype ? r->ctype : "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				r->cache ? r->cache : "no-store");
	if (r->ui) {
		MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP);
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
		MHD_add_response_header(resp, "X-Content-Type-Options",
					"nosniff");
		MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
	}
	for (i = 0; i < r->nhdr; i++)
		add_header_line(resp, r->hdr[i]);
	reply_release(r);
	if (r->status == 401 && !r->ui)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"m2worker\"");
	if (r->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->retry_after) {
		snprintf(ra, sizeof(ra), "%d", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (r->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					"close");
	ret = MHD_queue_response(c, (unsigned int)r->status, resp);
	MHD_destroy_response(resp);
	if (ret != MHD_YES)
		return ret;
	rq->answered = 1;
	conn_deadline(h, c, 0);
	for (i = 0; i < NCODES; i++)
		if (codes[i] == r->status)
			__sync_fetch_and_add(&h->responses[i], 1);
	if (m2w_log_enabled(M2W_LOG_DEBUG)) {
		char peer[INET6_ADDRSTRLEN];

		m2w_http_peer(c, peer, sizeof(peer));
		m2w_log(M2W_LOG_DEBUG, "http.request", "method=%s path=%s "
			"status=%d bytes=%zu ms=%lld peer=%s", rq->method,
			m2w_log_quote(q1, sizeof(q1), rq->path), r->status,
			rq->body.len, (long long)(m2w_clock_mono_ms() - rq->t0),
			peer);
	}
	return ret;
}

/* The body format of a Content-Type (enum m2w_ingest_format), -1 for none
 * we take. */
static int body_kind(const char *ct)
{
	char mt[64];
	size_t n = 0;

	if (!ct)
		return -1;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	while (ct[n] && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t' &&
	       n + 1 < sizeof(mt)) {
		mt[n] = (char)tolower((unsigned char)ct[n]);
		n++;
	}
	mt[n] = '\0';
	if (strcmp(mt, "application/json") == 0)
		return M2W_INGEST_JSON;
	if (strcmp(mt, "application/x-ndjson") == 0 ||
	    strcmp(mt, "application/ndjson") == 0 ||
	    strcmp(mt, "application/jsonl") == 0 ||
	    strcmp(mt, "application/x-jsonlines") == 0)
		return M2W_INGEST_NDJSON;
	if (strcmp(mt, "text/csv") == 0)
		return M2W_INGEST_CSV;
	return -1;
}

static int is_get(const char *m)
{
	return strcmp(m, MHD_HTTP_METHOD_GET) == 0 ||
	       strcmp(m, MHD_HTTP_METHOD_HEAD) == 0;
}

/* The first call of a request (headers only): everything that needs no
 * body. Returns 1 with `out` set when the request is answered now. */
static int route(struct m2w_http *h, struct MHD_Connection *c,
		 struct req *rq, struct m2w_reply *out)
{
	const char *p = rq->path, *m = rq->method, *cl;
	int draining = __atomic_load_n(&h->draining, __ATOMIC_SEQ_CST);

	if (strcmp(p, "/healthz") == 0) {
		if (!is_get(m)) {
			m2w_reply_error(out, 405, "use GET");
			out->allow = "GET, HEAD";
		} else if (draining) {
			m2w_reply_text(out, 503, "text/plain", "draining\n");
		} else {
			/* the AMQP consumers as detail: a broker outage is
			 * no reason to restart a daemon that works on */
			struct m2w_buf t = M2W_BUF_INIT;

			m2w_buf_adds(&t, "ok\n");
			m2w_amqp_health(h->amqp, &t);
			m2w_events_health(h->events, &t);
			m2w_reply_text(out, 200, "text/plain", m2w_buf_str(&t));
			m2w_buf_release(&t);
		}
		return 1;
	}
	if (strcmp(p, "/metrics") == 0) {
		if (!is_get(m)) {
			m2w_reply_error(out, 405, "use GET");
			out->allow = "GET, HEAD";
		} else {
			get_metrics(h, out);
		}
		return 1;
	}
	if (strcmp(p, "/ui") == 0 || strncmp(p, "/ui/", 4) == 0) {
		if (!h->console) {
			m2w_reply_error(out, 404, "the console is off "
					"([http] console = yes)");
			return 1;
		}
		if (m2w_console_route(h->console, c, m, p, out))
			return 1;
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > M2W_CONSOLE_BODY_MAX) {
			m2w_reply_error(out, 413, "body is larger than %d bytes",
					M2W_CONSOLE_BODY_MAX);
			out->ui = out->close = 1;
			return 1;
		}
		rq->ui = 1;
		return 0;
	}
	if (strcmp(p, "/v1/tasks") != 0 && strcmp(p, "/v1/stats") != 0 &&
	    strncmp(p, "/v1/tasks/", 10) != 0) {
		m2w_reply_error(out, 404, "no such endpoint: POST /v1/tasks, GET "
			  "/v1/tasks/{id}, /v1/stats, /metrics, /healthz%s",
			  h->console ? ", /ui/" : "");
		return 1;
	}
	if (strcmp(p, "/v1/tasks") == 0 ? strcmp(m, MHD_HTTP_METHOD_POST) != 0
					: !is_get(m)) {
		m2w_reply_error(out, 405, "use %s", strcmp(p, "/v1/tasks") == 0
			  ? "POST" : "GET");
		out->allow = strcmp(p, "/v1/tasks") == 0 ? "POST" : "GET, HEAD";
		return 1;
	}
	if (!authorized(h, c)) {
		m2w_reply_error(out, 401, "a valid \"Authorization: Bearer TOKEN\" "
			  "header is required");
		return 1;
	}
	if (strcmp(p, "/v1/stats") == 0) {
		get_stats(h, out);
		return 1;
	}
	if (strncmp(p, "/v1/tasks/", 10) == 0) {
		get_task(h, p + 10, out);
		return 1;
	}
	/* POST /v1/tasks */
	if (draining) {
		m2w_reply_error(out, 503, "shutting down: push again later");
		out->retry_after = 5;
		out->close = 1;
		return 1;
	}
	rq->kind = body_kind(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_CONTENT_TYPE));
	if (rq->kind < 0) {
		m2w_reply_error(out, 415, "Content-Type must be application/json, "
			  "application/x-ndjson or text/csv");
		return 1;
	}
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > h->cfg->http_body_max) {
		m2w_reply_error(out, 413, "body is larger than %zu bytes",
			  h->cfg->http_body_max);
		out->close = 1;
		return 1;
	}
	rq->push = 1;
	return 0;
}

static mhd_ret on_request(void *cls, struct MHD_Connection *c,
			  const char *url, const char *method,
			  const char *version, const char *upload_data,
			  size_t *upload_size, void **con_cls)
{
	struct m2w_http *h = cls;
	struct req *rq = *con_cls;
	struct m2w_reply out;

	(void)version;
	memset(&out, 0, sizeof(out));
	if (!rq) {
		if (!(rq = calloc(1, sizeof(*rq))))
			return MHD_NO;
		*con_cls = rq;
		rq->t0 = m2w_clock_mono_ms();
		m2w_buf_init(&rq->body, h->cfg->http_body_max);
		snprintf(rq->method, sizeof(rq->method), "%s", method);
		snprintf(rq->path, sizeof(rq->path), "%s", url);
		if (route(h, c, rq, &out))
			return send_reply(h, c, rq, &out);
		return MHD_YES;
	}
	if (rq->answered) {
		*upload_size = 0; /* a body after an early answer: dropped */
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size, max = rq->ui ? M2W_CONSOLE_BODY_MAX
						      : h->cfg->http_body_max;

		*upload_size = 0;
		if (rq->too_big || rq->body.len + n > max) {
			if (rq->too_big)
				return MHD_YES; /* dropped */
			rq->too_big = 1;
			m2w_buf_release(&rq->body);
			/* answer now where MHD allows it (newer MHD); else
			 * the rest is dropped and 413 goes out at its end */
			m2w_reply_error(&out, 413, "body is larger than %zu bytes",
				  max);
			out.close = 1;
			out.ui = rq->ui;
			send_reply(h, c, rq, &out);
			return MHD_YES;
		}
		if (m2w_buf_add(&rq->body, upload_data, n) < 0)
			return MHD_NO;
		return MHD_YES;
	}
	/* the whole request is in */
	conn_deadline(h, c, 0);
	if (rq->too_big) {
		m2w_reply_error(&out, 413, "body is larger than %zu bytes",
			  rq->ui ? (size_t)M2W_CONSOLE_BODY_MAX
				 : h->cfg->http_body_max);
		out.close = 1;
		out.ui = rq->ui;
	} else if (rq->ui) {
		m2w_console_post(h->console, c, rq->path, m2w_buf_str(&rq->body),
				 rq->body.len, &out);
	} else {
		push(h, c, rq, &out);
	}
	return send_reply(h, c, rq, &out);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct m2w_http *h = cls;
	struct req *rq = *con_cls;

	(void)toe;
	if (rq) {
		m2w_buf_release(&rq->body);
		free(rq);
		*con_cls = NULL;
	}
	/* the next request of a kept-alive connection gets its own time */
	conn_deadline(h, c, m2w_clock_mono_ms() + h->timeout_ms);
}

/* --------------------------------------------------------------- start */

static int tokens(struct m2w_http *h, const char *list, char *errbuf)
{
	const char *p = list, *e;
	size_t n = 1, a, z;

	for (e = list; *e; e++)
		n += *e == ',';
	if (!(h->tok = calloc(n, DIGEST)))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	while (*p) {
		e = strchr(p, ',');
		z = e ? (size_t)(e - p) : strlen(p);
		for (a = 0; a < z && isspace((unsigned char)p[a]); a++)
			;
		while (z > a && isspace((unsigned char)p[z - 1]))
			z--;
		if (z > a)
			sha256(p + a, z - a, h->tok[h->ntok++]);
		if (!e)
			break;
		p = e + 1;
	}
	if (!h->ntok && *list)
		return m2w_fail(errbuf, M2W_EINVAL, "[http] tokens: no token "
				"given (HTTP push needs at least one)");
	return M2W_OK;
}

/* The address [http] listen and port name, into *ai (freeaddrinfo it). */
static int listen_addr(const struct m2w_config *cfg, struct addrinfo **ai,
		       char *errbuf)
{
	struct addrinfo hints;
	char port[16];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", cfg->http_port);
	*ai = NULL;
	rc = getaddrinfo(cfg->http_listen && *cfg->http_listen
			 ? cfg->http_listen : "127.0.0.1", port, &hints, ai);
	if (rc != 0 || !*ai) {
		if (*ai)
			freeaddrinfo(*ai);
		*ai = NULL;
		m2w_fail(errbuf, M2W_EINVAL, "[http] listen %s: %s",
			 cfg->http_listen ? cfg->http_listen : "",
			 gai_strerror(rc));
		return M2W_EINVAL; /* (not m2w_fail's: the analyser's sake) */
	}
	return M2W_OK;
}

int m2w_http_cfg_check(const struct m2w_config *cfg, char *errbuf)
{
	struct m2w_http h;
	struct addrinfo *ai = NULL;
	int rc;

	memset(&h, 0, sizeof(h));
	rc = tokens(&h, cfg->http_tokens ? cfg->http_tokens : "", errbuf);
	free(h.tok);
	if (rc == M2W_OK && (rc = listen_addr(cfg, &ai, errbuf)) == M2W_OK)
		freeaddrinfo(ai);
	if (rc == M2W_OK && cfg->http_console)
		rc = m2w_console_cfg_check(cfg, errbuf);
	return rc;
}

int m2w_http_start(const struct m2w_http_opts *o, struct m2w_http **out,
		   char *errbuf)
{
	const struct m2w_config *cfg;
	struct addrinfo *ai = NULL;
	struct m2w_http *h;
	pthread_condattr_t ca;
	unsigned int flags, secs, limit;
	int rc;

	*out = NULL;
	if (!o || !o->q || !o->cfg)
		return m2w_fail(errbuf, M2W_EINVAL, "http: no store or config");
	cfg = o->cfg;
	if (!(h = calloc(1, sizeof(*h))))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	h->q = o->q;
	h->cfg = cfg;
	h->pool = o->pool;
	h->amqp = o->amqp;
	h->events = o->events;
	h->timeout_ms = cfg->http_timeout_ms > 0 ? cfg->http_timeout_ms : 10000;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = tokens(h, cfg->http_tokens ? cfg->http_tokens : "", errbuf)) ||
	    (rc = listen_addr(cfg, &ai, errbuf)))
		goto fail;
	if (cfg->http_console) {
		struct m2w_console_opts co;

		memset(&co, 0, sizeof(co));
		co.q = o->q;
		co.cfg = cfg;
		co.pool = o->pool;
		co.watcher = o->watcher;
		co.amqp = o->amqp;
		co.events = o->events;
		if ((rc = m2w_console_new(&co, &h->console, errbuf)))
			goto fail;
	}
	flags = HTTP_MHD_INTERNAL | MHD_USE_THREAD_PER_CONNECTION;
#if MHD_VERSION >= 0x00095400
	flags |= MHD_USE_AUTO;
#else
	if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
		flags |= MHD_USE_POLL;
#endif
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	secs = (unsigned int)((h->timeout_ms + 999) / 1000);
	limit = cfg->http_connections ? cfg->http_connections : 64;
	if (pthread_create(&h->sweeper, NULL, sweep, h) != 0) {
		rc = m2w_fail(errbuf, M2W_EIO, "http: cannot start a thread");
		goto fail;
	}
	h->sweeper_ok = 1;
	errno = 0;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
				MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				MHD_OPTION_CONNECTION_LIMIT, limit,
				MHD_OPTION_CONNECTION_TIMEOUT, secs,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
				MHD_OPTION_END);
	if (!h->d) {
		rc = m2w_fail(errbuf, M2W_EIO, "http: cannot listen on %s:%u%s%s",
			      cfg->http_listen, cfg->http_port,
			      errno ? ": " : "", errno ? strerror(errno) : "");
		goto fail;
	}
	freeaddrinfo(ai);
	*out = h;
	return M2W_OK;
fail:
	if (ai)
		freeaddrinfo(ai);
	m2w_http_stop(h);
	return rc;
}

void m2w_http_draining(struct m2w_http *h)
{
	if (h)
		__atomic_store_n(&h->draining, 1, __ATOMIC_SEQ_CST);
}

void m2w_http_stop(struct m2w_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	if (h->sweeper_ok) {
		pthread_mutex_lock(&h->mu);
		h->stop = 1;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->sweeper, NULL);
	}
	m2w_console_free(h->console);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	if (h->tok)
		OPENSSL_cleanse(h->tok, h->ntok * DIGEST);
	free(h->tok);
	free(h);
}
