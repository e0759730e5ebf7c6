/*
 * admin.h - the task store for operators: inspection and repair.
 *
 * Who calls it: operators through qctl (tools/qctl: stats, list, show,
 * errors, requeue, retry-now, delete, purge, pause, resume, check,
 * backup), and the daemon's HTTP API for what it shows of the store
 * (/v1/stats, /v1/tasks/{id}, the depth in /metrics, whether a pushed type
 * is paused) and its console, whose every action calls the same function
 * qctl calls for it; report.h turns tasks, stats and dead-letter groups
 * into the JSON they print. Producers and workers need only queue.h,
 * which this header includes.
 *
 * Safe from another process while the daemon runs: qctl opens the live
 * store (several processes may open one store at once). Reads (get,
 * history, list, stats, dead groups, check) each run in one LMDB read
 * transaction: a consistent snapshot that never blocks the daemon's
 * writers. Changes (requeue, retry-now, delete, delete dead, purge, pause)
 * are write transactions like the workers' own, serialised by LMDB's
 * writer lock, so no process ever sees half a change; bulk repairs commit
 * in chunks so they never hold that lock for long. A leased task is never
 * requeued, and is deleted only with `force`. Backup copies the store
 * while writers go on.
 *
 * The conventions of queue.h hold here too: thread-safe calls, results
 * allocated by the library and freed with the matching *_free, times in
 * ms since the Unix epoch, errors as enum m2w_err with an optional errbuf.
 */
#ifndef M2WORKER_ADMIN_H
#define M2WORKER_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "m2worker/error.h"
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M2W_HISTORY_MAX 16   /* attempts kept in a task's history */
#define M2W_CURSOR_MAX 64    /* bytes of a list cursor, with its NUL */

/* ------------------------------------------------------------ inspection */

/* One task by id, with its current state (SCHEDULED derived). */
int m2w_queue_get(struct m2w_queue *q, uint64_t id, struct m2w_task **out,
		  char *errbuf);

/* One past attempt of a task. */
struct m2w_attempt {
	unsigned attempt;
	int64_t at_ms;           /* when it ended */
	int64_t duration_ms;
	int http_status;
	int outcome;             /* enum m2w_class, or M2W_OUTCOME_* below */
	char message[M2W_MESSAGE_MAX + 1];
};
#define M2W_OUTCOME_EXPIRED 10  /* the lease ran out (worker crashed?) */
#define M2W_OUTCOME_RELEASED 11 /* handed back at shutdown, not counted */
#define M2W_OUTCOME_SNOOZED 12  /* put off, not counted */

/* The last M2W_HISTORY_MAX attempts, oldest first; free(*out). */
int m2w_queue_history(struct m2w_queue *q, uint64_t id,
		      struct m2w_attempt **out, size_t *n, char *errbuf);

struct m2w_list_opts {
	int state;               /* enum m2w_state */
	const char *type;        /* NULL = any */
	const char *grep;        /* substring of the last error, the payload,
				  * the idempotency key, the ordering key or
				  * the source (case matters); NULL = any */
	int64_t since_ms;        /* last changed (updated_ms) >= this; 0 = any */
	int64_t until_ms;        /* ... and < this; 0 = any */
	size_t limit;            /* 0 = 100 */
	const char *after;       /* cursor from a previous page, or NULL */
};

/*
 * Lists tasks of one state in index order (ready/scheduled by type then
 * next run, leased by expiry, done/dead/superseded by the time they ended,
 * waiting by group). `next` (M2W_CURSOR_MAX bytes) receives the cursor of
 * the next page, "" when this page was the last. Paging is stable: tasks
 * that move meanwhile are neither repeated nor skipped within their index;
 * the filters (type, grep, since, until) are applied before a page is cut,
 * so every page but the last holds `limit` tasks. Pass the same filters
 * with each cursor.
 *
 * Cost: done, dead and superseded tasks are indexed by the time they
 * ended, which is their updated_ms: since and until bound the walk there
 * (a time range over a million finished tasks reads only that range).
 * Other states, and grep, are filtered task by task: a filter that matches
 * nothing reads every task of the state before the last page comes back.
 */
int m2w_queue_list(struct m2w_queue *q, const struct m2w_list_opts *opts,
		   struct m2w_task ***out, size_t *n, char *next, char *errbuf);

struct m2w_type_stats {
	char type[M2W_TYPE_MAX + 1];
	int paused;
	uint64_t count[M2W_NSTATES];
	int64_t oldest_ready_ms;   /* next_run of the oldest ready task, 0 if none */
};

struct m2w_stats {
	struct m2w_type_stats *types;
	size_t ntypes;
	uint64_t count[M2W_NSTATES]; /* sums over types */
	int paused_all;
	int64_t oldest_ready_ms;     /* over all types, 0 if none */
	uint64_t map_size;           /* current map size, bytes */
	uint64_t map_used;           /* bytes of the file in use (high-water) */
	uint64_t map_max;
	uint64_t map_free;           /* bytes of map_used on LMDB's free list,
				      * to be reused before the file grows */
	uint64_t next_id;
	int events_on;               /* the outbox writes result events */
	uint64_t events_waiting;     /* events not yet published */
	uint64_t purged[M2W_NSTATES];/* tasks purged so far, by the state they
				      * were purged from (done, superseded,
				      * dead): qctl purge and retention */
	char *daemon;                /* the daemon's last status note (JSON,
				      * m2w_queue_set_status), or NULL */
};

int m2w_queue_stats(struct m2w_queue *q, struct m2w_stats *out, char *errbuf);
void m2w_stats_free(struct m2w_stats *st);

/*
 * The daemon leaves a short note of its own state in the store (a JSON
 * object: its calls-in-flight limit, its breaker, when), so that qctl,
 * which reads only the store, can show it (m2w_stats.daemon). One small
 * write transaction; the daemon writes it when the state changes, and at
 * most every few seconds.
 */
int m2w_queue_set_status(struct m2w_queue *q, const char *json,
			 char *errbuf);

/* ---------------------------------------------------------------- repair */

/*
 * Which dead tasks a requeue (or m2w_queue_delete_dead) takes: the tasks
 * named by `ids`, or, without ids, every dead task that passes all of the
 * filters given (none given: every dead task). The filters apply only
 * without ids.
 */
struct m2w_requeue_opts {
	const uint64_t *ids;     /* these tasks (must be dead) ... */
	size_t nids;
	const char *type;        /* ... or every dead task of this type */
	const char *grep;        /* ... and/or whose last error contains this */
	const char *error;       /* ... and/or whose whole last error is this,
				  * byte for byte ("": tasks without one); a
				  * group of m2w_queue_dead_groups */
	int64_t before_ms;       /* ... and/or that died before this; 0 = any */
	int keep_attempts;       /* else attempts start again from 0 */
	int dry_run;             /* count and list, change nothing */
	int force;               /* with ids: also tasks that are not dead (not leased) */
};

/*
 * Moves dead tasks back to ready. *count gets how many moved (or would);
 * `ids_out` (may be NULL) receives a malloc'd array of their ids.
 * With ids, a task that is not dead is M2W_ESTATE unless `force` (a leased
 * task is never requeued), and nothing moves. Without ids, the dead tasks
 * are taken CHUNK (1,000) a transaction, oldest death first.
 */
int m2w_queue_requeue(struct m2w_queue *q, const struct m2w_requeue_opts *o,
		      size_t *count, uint64_t **ids_out, char *errbuf);

/*
 * Deletes, with their idempotency keys, history and index entries, exactly
 * the dead tasks m2w_queue_requeue would take with the same selection
 * (ids, type, grep, error, before_ms; `keep_attempts` and `force` mean
 * nothing here). With ids, every one must be dead, else M2W_ESTATE (or
 * M2W_ENOTFOUND) and nothing is deleted; they go in one transaction.
 * Without ids, a thousand a transaction, so the writer lock is never held
 * long; a failure leaves the chunks before it deleted, and *count says
 * how many. With `dry_run` only *count is set.
 */
int m2w_queue_delete_dead(struct m2w_queue *q,
			  const struct m2w_requeue_opts *sel, size_t *count,
			  char *errbuf);

/* ---------------------------------------------------------- dead letters */

/* Dead tasks that died of the same thing: one type, one exact last error. */
struct m2w_dead_group {
	char type[M2W_TYPE_MAX + 1];
	char *error;             /* the exact last error ("" when none), owned
				  * by the array */
	uint64_t count;
	int64_t first_ms, last_ms; /* oldest and newest death in the group */
	uint64_t example_id;     /* the newest task of the group */
	int last_status;         /* that task's last HTTP status, 0 none */
};

struct m2w_group_opts {
	const char *type;        /* NULL = any */
	int64_t since_ms;        /* died at or after this; 0 = any */
	size_t limit;            /* groups returned at most; 0 = 100 */
};

/*
 * Groups the dead tasks (of `type`, died since `since_ms`; `o` NULL:
 * all of them, 100 groups) by type and exact last error, in one read
 * transaction over the index of dead tasks by time of death (from
 * since_ms on): the dead-letter table of qctl errors and the console,
 * which pass a group's type and error back as m2w_requeue_opts.type and
 * .error to requeue or delete it. *out (free with m2w_dead_groups_free;
 * NULL when *n is 0) holds the groups by count, largest first, then by
 * last_ms, newest first; at most `limit` of them. *scanned (may be NULL)
 * gets how many dead tasks matched the selection (of the type, since),
 * every one counted into some group: the counts of the groups returned
 * add up to less than *scanned only when `limit` cut groups off. Costs
 * one read of each dead task since since_ms, of every type (its header
 * and error, not its payload), and memory for the distinct errors.
 */
int m2w_queue_dead_groups(struct m2w_queue *q, const struct m2w_group_opts *o,
			  struct m2w_dead_group **out, size_t *n,
			  uint64_t *scanned, char *errbuf);
/* Frees the groups and their errors; NULL is fine. */
void m2w_dead_groups_free(struct m2w_dead_group *g, size_t n);

/* A scheduled (or waiting-for-backoff) task runs now. */
int m2w_queue_retry_now(struct m2w_queue *q, uint64_t id, char *errbuf);

/* Deletes one task with its key, history and index entries. A leased task
 * gives M2W_ESTATE unless `force`. */
int m2w_queue_delete(struct m2w_queue *q, uint64_t id, int force,
		     char *errbuf);
/* Deletes tasks ids[0..n) in one transaction, leased or not (ids no longer
 * there are skipped): the AMQP hand-back's. */
int m2w_queue_delete_many(struct m2w_queue *q, const uint64_t *ids, size_t n,
			  char *errbuf);

/*
 * Deletes tasks in `state` (DONE, SUPERSEDED or DEAD) that ended before
 * `before_ms`, with their idempotency keys: the same key may then be
 * enqueued again. *count gets how many. DEAD is m2w_queue_delete_dead
 * with before_ms alone.
 */
int m2w_queue_purge(struct m2w_queue *q, int state, int64_t before_ms,
		    size_t *count, char *errbuf);

/*
 * A purge in steps, for the daemon's retention ([store] keep_*): where
 * the walk stopped is kept here between calls, so each round goes on from
 * there (zeroed with `state` set: from the oldest). Owned by the caller.
 */
struct m2w_purge_walk {
	int state;                 /* M2W_DONE, M2W_SUPERSEDED or M2W_DEAD */
	unsigned char at[16];      /* the last index key looked at */
	int started;               /* `at` is set */
};

/*
 * One write transaction: deletes up to `max` tasks (0: 1,000) of
 * w->state that ended before `before_ms`, as m2w_queue_purge does, from
 * where `w` stopped. *count gets how many; *more is 1 when the step
 * stopped early (call again), 0 when the walk met before_ms or the end.
 * Every purge is counted in the store (m2w_stats.purged).
 */
int m2w_queue_purge_step(struct m2w_queue *q, struct m2w_purge_walk *w,
			 int64_t before_ms, size_t max, size_t *count,
			 int *more, char *errbuf);

/* Pauses or resumes a type (NULL: every type, present and future).
 * Persisted; seen by every process at its next lease. */
int m2w_queue_pause(struct m2w_queue *q, const char *type, int paused,
		    char *errbuf);

/*
 * A hot, compacted copy of the store into directory `dir` (created; it must
 * not exist yet), consistent as of one moment, while writers go on. The copy
 * is written under a temporary name, synced, then renamed, so `dir` is
 * either absent or a complete store that m2w_queue_open opens.
 */
int m2w_queue_backup(struct m2w_queue *q, const char *dir, char *errbuf);

/*
 * Verifies that every index agrees with the tasks table and every record
 * decodes. M2W_OK, or M2W_ECORRUPT with the first disagreement in errbuf.
 */
int m2w_queue_check(struct m2w_queue *q, char *errbuf);

#ifdef __cplusplus
}
#endif
#endif
