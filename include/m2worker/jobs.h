/*
 * jobs.h - the job types: what a leased task means in Magento calls.
 *
 * A job type checks payloads before they are enqueued, names the keys a
 * task gets (idempotency, ordering), and runs leased tasks through one
 * worker's Magento connection. It never touches the store: the worker
 * (worker.c) turns each outcome into an ack, a fail or a snooze, so every
 * job is safe to run again after a crash at any step (read before write).
 *
 * Payloads (JSON objects; unknown keys are refused by check):
 *   tracking {"order":"1000000001", "track":"1Z999", "carrier":"ups",
 *             "title":"UPS"?, "items":[{"sku":"SKU-1","qty":1}]?,
 *             "notify":true?}
 *       carrier is a Magento code or a free-text name ([carriers] maps
 *       it; unknown -> "custom" with the name as title). Resolves the
 *       order by increment id, reads its shipments, and stops if the track
 *       number is already on one; else adds the track to the last
 *       shipment, or creates a shipment with the track (only `items` when
 *       given and still unshipped; everything left otherwise).
 *   stock    {"sku":"SKU-1", "qty":5, "source":"default"?, "status":1?,
 *             "item_id":1?}   MSI source items, batched; legacy stock item
 *       when [stock] mode = legacy. A batch Magento refuses as a whole is
 *       split, so only the bad rows die.
 *   price    {"sku":"SKU-1", "price":9.99, "store_id":0?}   base prices,
 *       batched; Magento's per-row failures go to their rows.
 *   rest     {"method":"POST", "path":"/products", "body":{...}?}
 *       any call, path relative to /rest/<store>/V1.
 *
 * Threads: run() is called by one worker thread with that thread's
 * connection; check() and keys() are pure and thread-safe.
 */
#ifndef M2WORKER_JOBS_H
#define M2WORKER_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "m2worker/config.h"
#include "m2worker/magento.h"
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a worker thread lends a job. */
struct m2w_job_env {
	struct m2_conn *conn;
	const struct m2w_config *cfg;
};

/* What became of one task. */
struct m2w_outcome {
	int err;                 /* M2W_OK: done. Else the m2w_err that decided:
				  * M2W_ETRANSIENT, M2W_EPERMANENT, M2W_EAUTH,
				  * M2W_EPROTO, M2W_ENOTFOUND ... */
	int cls;                 /* enum m2w_class of err */
	int http_status;
	int64_t retry_after_ms;
	int calls;               /* Magento calls made for this task */
	char message[M2_MESSAGE_MAX + 1]; /* why (Magento's words), or what
					   * was done ("track already on
					   * shipment 12") */
};

struct m2w_job {
	const char *name;        /* the task type */
	int batches;             /* run() takes several tasks per call */
	/* 0 when the payload will do, else -1 and why ("missing \"track\""). */
	int (*check)(const char *payload, char *why, size_t len);
	/*
	 * The keys of a task with this payload: idem (idempotency, "" when
	 * the payload is no identity: stock and price levels), group
	 * (ordering, "" for none) and whether it supersedes older tasks of
	 * its group. Buffers of M2W_KEY_MAX + 1 bytes. 0, or -1 when the
	 * payload does not check.
	 */
	int (*keys)(const char *payload, char *idem, char *group,
		    int *supersede);
	/* Runs tasks[0..n) (n == 1 unless batches); fills out[i]. */
	void (*run)(const struct m2w_job_env *env,
		    struct m2w_task *const *tasks, size_t n,
		    struct m2w_outcome *out);
};

extern const struct m2w_job m2w_job_tracking, m2w_job_stock, m2w_job_price,
	m2w_job_rest;

/* The job of a type name, or NULL. */
const struct m2w_job *m2w_job_find(const char *type);

/* Fills o from a client call's return code and result. */
void m2w_outcome_set(struct m2w_outcome *o, int rc,
		     const struct m2_result *res);

#ifdef __cplusplus
}
#endif
#endif
