/*
 * http.h - the daemon's HTTP endpoint (libmicrohttpd): push tasks, health,
 * metrics, stats, one task.
 *
 *   POST /v1/tasks          push tasks (token)                   202 400 401
 *                                                     413 415 503 507
 *   GET  /v1/tasks/{id}     one task as JSON, with payload (token)   200 404
 *   GET  /v1/stats          the store's counts, as `qctl stats --json` (token)
 *   GET  /metrics           Prometheus text (open, for scrapers)
 *   GET  /healthz           "ok" (open); 503 "draining" while stopping
 *   /ui/...                 the web console ([http] console = yes; its own
 *                           login, console.h); 404 when off
 *
 * Body of a push (Content-Type decides; one request is ONE all-or-none
 * commit, answered only after it is fsync'd):
 *
 *   application/json        one item, or an array of items
 *   application/x-ndjson    one item per line (also application/ndjson,
 *                           application/jsonl); empty lines are skipped
 *   text/csv                rows of ONE type (?type= required), the header
 *                           first, columns mapped exactly as for files
 *                           (ingest.h); ?delimiter=,|;|tab (else detected)
 *
 *   An item is {"type": T, "payload": {...}, "key": K, "not_before": MS}:
 *   type and payload required; key (string or integer) is the idempotency
 *   key, stored as "T:K" (as a file's key_field); without it the job's own
 *   key applies (tracking: order + track). not_before: unix ms.
 *   With ?type=T in the URL each item is a bare payload object instead,
 *   and ?key_field=F names the payload key holding the idempotency key.
 *
 * Every row is checked first (the job's check(), the same code as files
 * and stdin: ingest.h); any bad row gives 400 {"error":..,"errors":[{"row":
 * N,"line":L,"field":F,"reason":R}]} and nothing of the request is stored.
 * `row` counts items (array element, NDJSON item, CSV data row) from 1;
 * `line` is the body's line (NDJSON, CSV; null for JSON). At most
 * M2W_HTTP_ROWS_MAX rows per request (413 beyond). Otherwise 202
 * {"accepted":[ids],"duplicates":[ids]}, ids in request order (CSV rows
 * that are items of one parcel make one task, as in files).
 * 503 while a pushed type (or everything) is paused or the daemon stops;
 * 507 when the store (map_max) or the disk is full.
 *
 * Auth: "Authorization: Bearer TOKEN", one of [http] tokens (comma-
 * separated; with none, which only a console-only setup may have, every
 * push is 401). Tokens are kept as SHA-256 digests and every one is compared
 * in constant time, without an early exit. 401 with WWW-Authenticate.
 *
 * Limits: a body over [http] body_max is refused with 413 as soon as its
 * Content-Length (or, chunked, the bytes received) says so, never
 * buffered past the limit; at most [http] connections at once; a request
 * must arrive whole (headers and body) within [http] timeout, and an idle
 * connection is closed after it. Each connection has its own thread
 * (so [http] connections also bounds the threads): a push blocks only its
 * own thread while its commit becomes durable, and the pushes of all
 * connections share group commits. A slow client holds its thread until
 * the timeout cuts it.
 *
 * Threads: start, draining and stop from one thread (main); requests are
 * served on the server's own threads. The queue and pool must outlive the
 * server: call m2w_http_stop before closing them.
 */
#ifndef M2WORKER_HTTP_H
#define M2WORKER_HTTP_H

#include "m2worker/config.h"
#include "m2worker/error.h"
#include "m2worker/queue.h"
#include "worker.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M2W_HTTP_ROWS_MAX 100000  /* rows (items) in one push at most */

struct m2w_http;

struct m2w_http_opts {
	struct m2w_queue *q;            /* required */
	const struct m2w_config *cfg;   /* required; borrowed until stop */
	struct m2w_pool *pool;          /* metrics and breaker; may be NULL */
	struct m2w_amqp *amqp;          /* its consumers' state; may be NULL */
	struct m2w_events *events;      /* the publisher's state; may be NULL */
	struct m2w_watcher *watcher;    /* the console's last files; may be NULL */
};

/*
 * Binds cfg->http_listen:http_port and starts serving. M2W_EINVAL (no
 * token, bad listen address) or M2W_EIO (cannot listen: errbuf says why).
 */
/* What m2w_http_start refuses in the config ([http] tokens with no token,
 * a listen address that does not resolve), without starting: the
 * config's check calls it. M2W_OK or M2W_EINVAL. */
int m2w_http_cfg_check(const struct m2w_config *cfg, char *errbuf);

int m2w_http_start(const struct m2w_http_opts *o, struct m2w_http **out,
		   char *errbuf);

/* Shutdown begins: pushes get 503, /healthz 503 "draining". */
void m2w_http_draining(struct m2w_http *h);

/* Stops serving (requests in progress finish), frees. NULL is fine. */
void m2w_http_stop(struct m2w_http *h);

#ifdef __cplusplus
}
#endif
#endif
