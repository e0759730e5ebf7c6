/*
 * worker.h - the worker pool, its circuit breaker, and its metrics.
 *
 * The daemon's layer (src/daemon/: this, config, http, watch, notify,
 * main) is the top one: it may include every public header, and its own
 * headers are private to it (qctl and the tools never see a pool).
 *
 * A pool of threads, each with its own Magento connection, leases tasks
 * from the store, runs them through their job type (jobs.h) and settles
 * them: ack, fail (backoff or dead letters), snooze or release. One more
 * thread, the keeper, reaps expired leases (a crashed process's tasks come
 * back) and extends the leases of tasks whose calls are still running.
 *
 * Circuit breaker: after `failures` consecutive transient failures (or
 * auth failures) the breaker opens: no thread calls Magento for
 * `cooldown`, tasks leased meanwhile are snoozed (no attempt burnt), and
 * then ONE task probes. Its success closes the breaker; its failure opens
 * it again (the probe is snoozed too), so an outage of any length
 * dead-letters nothing.
 *
 * Threads: m2w_pool_start/stop/free from one thread (main); the metrics
 * are read from any thread.
 */
#ifndef M2WORKER_WORKER_H
#define M2WORKER_WORKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "m2worker/buf.h"
#include "m2worker/config.h"
#include "m2worker/magento.h"
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ breaker */

enum m2w_breaker_state {
	M2W_BREAKER_CLOSED = 0,
	M2W_BREAKER_OPEN = 1,
	M2W_BREAKER_HALF_OPEN = 2  /* cool-down over, one probe out */
};

struct m2w_breaker {
	pthread_mutex_t mu;
	int state;
	unsigned failures;         /* consecutive, while closed */
	unsigned threshold;
	int64_t cooldown_ms;
	int64_t open_until;        /* ms */
	int64_t opened_at;         /* ms, when it last opened from closed */
};

/* What a change of state was, for its log line. */
struct m2w_breaker_change {
	int state;                 /* the new state */
	int probe;                 /* 1 a probe's result made it */
	unsigned failures;         /* opened from closed: the failures in a
				    * row that opened it; else 0 */
	int64_t open_ms;           /* probe: how long it had been open since
				    * it opened from closed */
	int64_t cooldown_ms;       /* opened: until the next probe */
};

void m2w_breaker_init(struct m2w_breaker *b, unsigned threshold,
		      int64_t cooldown_ms);
void m2w_breaker_destroy(struct m2w_breaker *b);
/*
 * May a worker call Magento at `now`? 1 yes (*probe = 1 when it is the
 * one probe of a half-open breaker: lease one task); 0 no, and *wait_ms
 * says how long until it may ask again.
 */
int m2w_breaker_allow(struct m2w_breaker *b, int64_t now, int *probe,
		      int64_t *wait_ms);
/* The result of a call (or a batch): `failed` = transient/auth failure.
 * Returns the new state when it changed, and fills *ch (may be NULL),
 * else -1. */
int m2w_breaker_result(struct m2w_breaker *b, int64_t now, int probe,
		       int failed, struct m2w_breaker_change *ch);
/* The change as the key=value fields of its log line, each true of that
 * moment: "state=open failures_in_a_row=5 cooldown_ms=30000",
 * "state=open probe=failed open_ms=30012 cooldown_ms=30000",
 * "state=closed probe=ok open_ms=60030". Returns out. */
char *m2w_breaker_describe(const struct m2w_breaker_change *ch, char *out,
			   size_t len);
/* The probe found nothing to do: the next caller probes instead. */
void m2w_breaker_unprobe(struct m2w_breaker *b);
int m2w_breaker_state(struct m2w_breaker *b);
const char *m2w_breaker_name(int state);

/* ------------------------------------------------------------ metrics */

#define M2W_LAT_BUCKETS 12  /* 5,10,25,50,100,250,500,1000,2500,5000,10000 ms,+Inf */
/* The buckets' upper bounds in ms (the last bucket has none: +Inf). */
extern const int64_t m2w_lat_bounds[M2W_LAT_BUCKETS - 1];

/* Counters, bumped with atomic adds from every worker thread. */
struct m2w_metrics {
	uint64_t done[M2W_MAX_TYPES];      /* per cfg->types index */
	uint64_t failed[M2W_MAX_TYPES];    /* attempts that failed (retry) */
	uint64_t dead[M2W_MAX_TYPES];
	uint64_t snoozed[M2W_MAX_TYPES];
	uint64_t calls[M2W_LAT_BUCKETS];   /* Magento call latency */
	uint64_t calls_count;
	uint64_t calls_ms_sum;
	uint64_t calls_by_class[4];        /* enum m2w_class */
};

/* One Magento call (the client's observer). */
void m2w_metrics_call(struct m2w_metrics *m, int status, int64_t ms);

struct m2w_stats; /* admin.h */

/*
 * Appends to `out` the Prometheus text exposition of the metrics, the
 * store's depth by state and type (st, may be NULL), and the breaker
 * state. M2W_OK, or M2W_ENOMEM when out->failed (buf.h).
 */
int m2w_metrics_render(const struct m2w_metrics *m,
		       const struct m2w_config *cfg,
		       const struct m2w_stats *st, int breaker_state,
		       struct m2w_buf *out);

/* --------------------------------------------------------------- pool */

struct m2w_pool;

struct m2w_pool_opts {
	struct m2w_queue *q;
	struct m2_client *client;
	const struct m2w_config *cfg;
	int64_t idle_poll_ms;      /* 0: 100 ms between leases when idle */
};

/* Gives the store each configured type's retry policy (max_attempts,
 * backoff), which every reap, release and failure of this process uses:
 * before anything settles a task (main.c: before the leases of a crashed
 * daemon go back), and again by m2w_pool_start. */
int m2w_pool_set_policies(struct m2w_queue *q, const struct m2w_config *cfg,
			  char *errbuf);
int m2w_pool_start(const struct m2w_pool_opts *o, struct m2w_pool **out,
		   char *errbuf);
/*
 * Stops leasing; waits up to grace_ms for the calls in flight; then aborts
 * the rest and releases their tasks without counting the attempt; joins
 * every thread. Returns how many tasks were released.
 */
size_t m2w_pool_stop(struct m2w_pool *p, int64_t grace_ms);
void m2w_pool_free(struct m2w_pool *p);

struct m2w_metrics *m2w_pool_metrics(struct m2w_pool *p);
int m2w_pool_breaker_state(struct m2w_pool *p);

/*
 * Calls in flight ([magento] concurrency): none set, one per thread as
 * always; a number, at most that many; auto, a limit between
 * concurrency_min and concurrency_max (default threads) that follows
 * Magento's latency and overload answers (limiter.h). The limiter's
 * config into *out (may be NULL: a check); out->fixed 0 and not adaptive
 * means no limiter. M2W_OK, or M2W_EINVAL with errbuf (the config's own
 * check calls it, so --check-config and a start agree).
 */
struct m2w_limiter_cfg;
int m2w_pool_limit_cfg(const struct m2w_config *cfg,
		       struct m2w_limiter_cfg *out, char *errbuf);
/* The Magento client's own counters for /metrics (admin token renewals
 * by reason; nothing without a pool). */
void m2w_pool_client_metrics(struct m2w_pool *p, struct m2w_buf *out);
/* The limit's lines for /metrics (nothing without a limiter), and its
 * state as JSON for the console (NULL without one). */
void m2w_pool_limit_metrics(struct m2w_pool *p, struct m2w_buf *out);
struct json_object *m2w_pool_limit_json(struct m2w_pool *p);

#ifdef __cplusplus
}
#endif
#endif
