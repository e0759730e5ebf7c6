/*
 * retention.h - the daemon's background purge of ended tasks ([store]
 * keep_done, keep_superseded, keep_dead).
 *
 * A thread wakes every purge_interval and, for each state with a keep
 * time, purges the tasks that ended longer ago than that, in steps of at
 * most RETENTION_STEP tasks a write transaction (m2w_queue_purge_step), so
 * the writer lock is never held long and the workers' settles, merged by
 * group commit, are not held up behind it. Their idempotency keys go with
 * them: the same key may be enqueued again afterwards. LMDB puts the freed
 * pages on its free list and reuses them before the file grows.
 *
 * Threads: start and stop from one thread (main). The store must outlive
 * the retention.
 */
#ifndef M2WORKER_RETENTION_H
#define M2WORKER_RETENTION_H

#include "m2worker/config.h"
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RETENTION_STEP 256

struct m2w_retention;

/* Starts purging per cfg's keep times. *out is NULL (and M2W_OK) when
 * every keep time is 0 (keep forever). M2W_ENOMEM / M2W_EIO (no thread). */
int m2w_retention_start(struct m2w_queue *q, const struct m2w_config *cfg,
			struct m2w_retention **out, char *errbuf);
/* Stops it, waiting for the step under way (one short transaction). NULL
 * is fine. */
void m2w_retention_stop(struct m2w_retention *r);

#ifdef __cplusplus
}
#endif

#endif
