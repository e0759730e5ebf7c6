/*
 * queue.h - the durable task store (LMDB): producers and workers.
 *
 * A store is one LMDB environment (a directory). Producers (the CSV
 * watcher, the HTTP push, qctl enqueue) enqueue tasks, workers lease them,
 * call Magento, then settle them (ack, fail, snooze, extend, release).
 * What operators do to the same store (inspect, requeue, delete, purge,
 * pause, check, back up) is in admin.h. Task life:
 *
 *   enqueue -> ready --lease--> leased --ack--> done
 *                ^                 |--fail (transient)--> ready, later
 *                |                 |--fail (permanent, or attempts used)--> dead
 *                +--- reap (lease expired) / snooze / release
 *   dead --requeue (admin.h)--> ready
 *
 * A task with an ordering key ("stock:SKU-1") joins a group: at most one task
 * of a group is leased at a time, the others wait (state WAITING) and are
 * promoted when the head ends. The group's rule (m2w_new_task.supersede)
 * says which: FIFO promotes in id order, and a head waiting for its retry
 * holds the group; NEWEST is FIFO where a new task replaces every older
 * task of its group that has not started (they end as SUPERSEDED): the
 * newest value wins; EXCLUSIVE only keeps two tasks of a group from
 * running at once: a head that fails and waits for its retry steps aside
 * for a waiter that can run sooner, and the waiter due first is promoted.
 *
 * Durability: every call that changes the store returns only after the LMDB
 * transaction holding the change is committed with fsync (unless the store
 * was opened with `nosync`, which the caller must log loudly). Changes from
 * many threads are merged into one transaction (group commit), so throughput
 * does not cost durability.
 *
 * Threads: a struct m2w_queue is shared by all threads of a process; every
 * function here is thread-safe unless said otherwise. Never open the same
 * store twice in one process, and never use a handle across fork(). Several
 * processes may open the same store at once.
 *
 * Memory: the library allocates what it returns (tasks, arrays) and the
 * caller frees it with the matching *_free function. Strings passed in are
 * copied; the caller keeps ownership of them.
 *
 * Time: all times are milliseconds since the Unix epoch (int64_t). Errors:
 * enum m2w_err (error.h); `errbuf` is NULL or M2W_ERRBUF_SIZE bytes.
 */
#ifndef M2WORKER_QUEUE_H
#define M2WORKER_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "m2worker/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M2W_SCHEMA_VERSION 1
#define M2W_TYPE_MAX 32      /* bytes in a type name: [a-z0-9_.-]+ */
#define M2W_KEY_MAX 400      /* bytes in an idempotency or ordering key */
#define M2W_PAYLOAD_MAX (1u << 20) /* bytes of JSON payload */
#define M2W_MESSAGE_MAX 1024 /* stored error text is cut to this */

struct m2w_queue;

/* Task states. SCHEDULED is never stored: it is READY with next_run > now. */
enum m2w_state {
	M2W_READY = 0,
	M2W_SCHEDULED = 1,
	M2W_LEASED = 2,
	M2W_WAITING = 3,   /* behind the leased head of its ordering group */
	M2W_DONE = 4,
	M2W_DEAD = 5,
	M2W_SUPERSEDED = 6,
	M2W_NSTATES
};

/* "ready", "scheduled", ...; NULL for an unknown state. */
const char *m2w_state_name(int state);
/* The state named `name`, or -1. */
int m2w_state_parse(const char *name);

/* ------------------------------------------------------------------ open */

struct m2w_queue_opts {
	const char *path;      /* directory of the store (created when `create`) */
	size_t map_initial;    /* bytes; 0 = 64 MiB */
	size_t map_max;        /* bytes; 0 = 4 GiB. Beyond it: M2W_EFULL */
	int create;            /* create the directory and store if absent */
	int nosync;            /* MDB_NOSYNC: loses the last commits on power loss */
	int outbox;            /* result events (enum m2w_outbox_mode) */
	int exclusive;         /* the daemon's: lock the store (see below) */
};

/* Whether tasks that end write a result event (stored in the store, so
 * every process that ends a task does the same). */
enum m2w_outbox_mode {
	M2W_OUTBOX_KEEP = 0,   /* as the store says (off in a new store) */
	M2W_OUTBOX_ON = 1,     /* the daemon with [events] */
	M2W_OUTBOX_OFF = 2     /* the daemon without */
};

/*
 * Opens (or creates) the store. Clears reader slots left by dead processes,
 * checks the schema version (M2W_ESCHEMA on a mismatch), opens every index.
 * M2W_ENOTFOUND when the store is absent and !create.
 *
 * `exclusive` takes an flock(2) on PATH/daemon.lock (holding the pid) for
 * as long as the store is open: a second exclusive open, while the first
 * process lives, is M2W_EBUSY naming that pid. Only the process that leases
 * opens exclusive (the daemon); qctl and other readers and writers do not,
 * and are not held up by it. The kernel drops the lock when the process
 * dies, however it dies.
 */
int m2w_queue_open(const struct m2w_queue_opts *opts, struct m2w_queue **out,
		   char *errbuf);
/* Closes the store. No other call may be running or follow. NULL is ok. */
void m2w_queue_close(struct m2w_queue *q);

/* The clock seam for tests: `now(arg)` replaces the wall clock. */
void m2w_queue_set_clock(struct m2w_queue *q, int64_t (*now)(void *arg),
			 void *arg);
/* The wall clock (or the seam), in ms. */
int64_t m2w_queue_now(struct m2w_queue *q);

/* ---------------------------------------------------------------- policy */

/* Retry policy of a job type; held by the process that calls fail/reap. */
struct m2w_policy {
	unsigned max_attempts;  /* default 10 */
	int64_t backoff_base_ms;/* first retry delay; default 10 s */
	int64_t backoff_cap_ms; /* longest retry delay; default 1 h */
	unsigned jitter_pct;    /* delay is drawn from [d*(100-j)/100, d]; default 20 */
};

/* The defaults above. */
void m2w_policy_default(struct m2w_policy *p);

/*
 * Sets the policy of `type` for this handle (at start, before workers run:
 * not thread-safe against other calls). Types without one use the defaults.
 */
int m2w_queue_set_policy(struct m2w_queue *q, const char *type,
			 const struct m2w_policy *p, char *errbuf);

/*
 * The delay before retry `attempt` (1 = after the first failure): exponential
 * from base, capped, minus up to jitter_pct percent drawn from `rnd`
 * (uniform in [0, 2^32)). Pure; exposed for tests.
 */
int64_t m2w_backoff_delay(const struct m2w_policy *p, unsigned attempt,
			  uint32_t rnd);

/* --------------------------------------------------------------- enqueue */

/* The rule of an ordering group (see the top): a task's `supersede`. */
#define M2W_GROUP_FIFO 0       /* in id order; a retry holds the group */
#define M2W_GROUP_NEWEST 1     /* FIFO, and the newest supersedes */
#define M2W_GROUP_EXCLUSIVE 2  /* one at a time, in any order */

/* One task to enqueue. Inputs are copied; outputs are filled on return. */
struct m2w_new_task {
	const char *type;        /* required, [a-z0-9_.-]{1,32} */
	const char *payload;     /* required, valid JSON (an object or array) */
	size_t payload_len;      /* 0: strlen(payload) */
	const char *source;      /* "file.csv:12", "http", "stdin"; may be NULL */
	const char *idem_key;    /* may be NULL: same key = same task */
	const char *group_key;   /* ordering key, may be NULL */
	int supersede;           /* the group's rule: M2W_GROUP_* */
	int64_t not_before_ms;   /* 0 = now */
	unsigned max_attempts;   /* 0 = the type's policy */
	int loaded;              /* the producer parsed and checked the
				  * payload already (the ingest pipeline,
				  * m2w_job_load): the store does not parse
				  * it again */
	/* out */
	uint64_t id;             /* the new task, or the existing one when duplicate */
	int duplicate;           /* the idempotency key was seen before */
	int err;                 /* M2W_OK, or why this entry was refused */
};

/*
 * Enqueues `n` tasks in one transaction: all or none. When any entry is
 * invalid, nothing is written, each bad entry's `err` is set, errbuf names
 * the first ("task 3: payload is not valid JSON: ...") and M2W_EINVAL is
 * returned. Returns after the fsync'd commit. M2W_EFULL when the store is
 * full, M2W_ENOSPC when the disk is.
 */
int m2w_queue_enqueue(struct m2w_queue *q, struct m2w_new_task *tasks,
		      size_t n, char *errbuf);

/*
 * Tasks of `type` (NULL: of every type) not ended yet: ready, scheduled,
 * leased and waiting, from the per-type counters in one read transaction
 * (cheap enough to ask before each batch a source takes; the AMQP source's
 * intake window).
 */
int m2w_queue_backlog(struct m2w_queue *q, const char *type, uint64_t *n,
		      char *errbuf);

/*
 * Ingested files (the CSV directory watcher): what the store knows of a
 * file, by the fingerprint of its content. Written in the same transaction
 * as the batch of tasks it accounts for, so after a crash `rows` says
 * exactly where to resume, and a file dropped again is recognised.
 */
struct m2w_file_info {
	char fingerprint[65];     /* hex SHA-256 of the content */
	char name[256];           /* the file name when first seen */
	uint64_t rows;            /* data rows consumed, committed */
	uint64_t accepted, duplicates, rejected;
	int64_t first_ms;         /* when first seen */
	int64_t finished_ms;      /* 0 while in progress */
};

/* The record of a fingerprint; M2W_ENOTFOUND for a file never seen. */
int m2w_queue_file_get(struct m2w_queue *q, const char *fingerprint,
		       struct m2w_file_info *out, char *errbuf);

/*
 * m2w_queue_enqueue, and `file` (may be NULL) stored under its fingerprint
 * in the same transaction. n may be 0 (a file that ends, or has only
 * rejected rows).
 */
int m2w_queue_enqueue_file(struct m2w_queue *q, struct m2w_new_task *tasks,
			   size_t n, const struct m2w_file_info *file,
			   char *errbuf);

/* ----------------------------------------------------------------- tasks */

/* A task as read from the store: one allocation, free with m2w_task_free. */
struct m2w_task {
	uint64_t id;
	char type[M2W_TYPE_MAX + 1];
	int state;                 /* enum m2w_state */
	unsigned attempts;         /* leases so far */
	unsigned max_attempts;     /* 0 = the type's policy */
	int supersede;             /* its group's rule, M2W_GROUP_* */
	int64_t created_ms, updated_ms, next_run_ms, lease_expiry_ms;
	uint64_t lease_token;      /* valid while LEASED */
	int last_status;           /* HTTP status of the last failure, 0 if none */
	const char *idem_key;      /* NULL when none; all strings live inside */
	const char *group_key;     /* the task's allocation */
	const char *source;
	const char *last_error;
	const char *payload;       /* NUL-terminated JSON */
	size_t payload_len;
};

/* Frees one task; NULL is fine. */
void m2w_task_free(struct m2w_task *t);
/* Frees `n` tasks and the array; NULL is fine. */
void m2w_task_list_free(struct m2w_task **ts, size_t n);

/* ----------------------------------------------------------------- lease */

struct m2w_lease_opts {
	size_t max;                /* tasks to lease at most (>= 1) */
	int64_t lease_ms;          /* lease duration; 0 = 60 s */
	const char *const *types;  /* lease only these types; NULL = any */
	size_t ntypes;
};

/*
 * Leases up to opts->max ready tasks with next_run <= now, never of a paused
 * type, at most one per ordering group, going round the types for fairness.
 * Each gets a fresh token and an expiry; its attempt counter goes up. Expired
 * leases found on the way are reaped first. *out receives an array of *n
 * tasks (possibly 0, then *out is NULL); free with m2w_task_list_free.
 */
int m2w_queue_lease(struct m2w_queue *q, const struct m2w_lease_opts *opts,
		    struct m2w_task ***out, size_t *n, char *errbuf);

/* ---------------------------------------------------------------- settle */

/* Error classes of a failed attempt: enum m2w_class, error.h. */

enum m2w_settle_kind {
	M2W_ACK = 0,      /* done */
	M2W_FAIL = 1,     /* class decides: rescheduled or dead */
	M2W_SNOOZE = 2,   /* back to ready after delay_ms; the attempt is not counted */
	M2W_EXTEND = 3,   /* lease expiry = now + delay_ms (0 = 60 s) */
	M2W_RELEASE = 4   /* back to ready now; the attempt is not counted */
};

/* One settlement of a leased task. */
struct m2w_settle {
	uint64_t id;
	uint64_t token;
	int kind;                 /* enum m2w_settle_kind */
	int cls;                  /* enum m2w_class, for FAIL */
	int http_status;          /* for history and last_status; 0 if none */
	const char *message;      /* error text (Magento's, placeholders filled),
				   * or for ACK what was done */
	const char *result;       /* ACK: JSON object of what Magento made
				   * ({"shipment_id":..}), or NULL; events */
	int64_t retry_after_ms;   /* FAIL: > 0 overrides backoff (Retry-After) */
	int64_t delay_ms;         /* SNOOZE and EXTEND */
	int64_t duration_ms;      /* how long the attempt took, for history */
	/* out */
	int err;                  /* M2W_OK, M2W_ESTALE, M2W_ENOTFOUND ... */
	int state;                /* the task's new state */
	int64_t next_run_ms;      /* when rescheduled */
};

/*
 * Applies `n` settlements; each succeeds or fails on its own (its `err`).
 * A token that is not the task's current lease gets M2W_ESTALE, an unknown
 * id M2W_ENOTFOUND. Returns M2W_OK when the call itself worked (check each
 * entry), or a store error (M2W_ENOSPC, M2W_ESTORE ...) when nothing was
 * applied. Returns after the fsync'd commit, merged with other threads'.
 */
int m2w_queue_settle(struct m2w_queue *q, struct m2w_settle *s, size_t n,
		     char *errbuf);

/* One-task conveniences over m2w_queue_settle; return the entry's error. */
int m2w_task_ack(struct m2w_queue *q, uint64_t id, uint64_t token,
		 int64_t duration_ms, char *errbuf);
int m2w_task_fail(struct m2w_queue *q, uint64_t id, uint64_t token, int cls,
		  const char *message, int http_status, int64_t retry_after_ms,
		  char *errbuf);
int m2w_task_snooze(struct m2w_queue *q, uint64_t id, uint64_t token,
		    int64_t delay_ms, char *errbuf);
int m2w_task_extend(struct m2w_queue *q, uint64_t id, uint64_t token,
		    int64_t lease_ms, char *errbuf);
int m2w_task_release(struct m2w_queue *q, uint64_t id, uint64_t token,
		     char *errbuf);

/*
 * Returns leases that expired before now to ready (or to dead when their
 * attempts are used up). *reaped (may be NULL) gets the count.
 */
int m2w_queue_reap(struct m2w_queue *q, size_t *reaped, char *errbuf);

/*
 * Returns every lease in the store, expired or not, as the reap does (the
 * attempt stays counted; dead when attempts are used up), for a daemon
 * that just opened the store exclusive: as the one process that leases,
 * every lease it finds was taken by a process that is gone, so its tasks
 * need not wait out the lease. M2W_ESTATE unless the store was opened
 * exclusive.
 */
int m2w_queue_release_stale(struct m2w_queue *q, size_t *released,
			    char *errbuf);

/* ---------------------------------------------------------------- events */

/*
 * Result events (with the outbox on): one JSON object per task that ended
 * (done, dead, superseded), written in the transaction that ended it:
 * {"event_id":"<store id>:<seq>","task":..,"type":..,"state":..,"key":..,
 * "group":..,"attempts":..,"status":..,"error":..,"note":..,"result":{..},
 * "source":..,"created_ms":..,"ended_ms":..} (absent members: none).
 */
struct m2w_event {
	uint64_t seq;             /* increasing, never reused */
	char *json;               /* NUL-terminated; owned by the array */
	size_t len;
};

/* The oldest `max` events waiting (at most 10,000): *out (free with
 * m2w_outbox_free) and *n, 0 when none. */
int m2w_outbox_read(struct m2w_queue *q, size_t max, struct m2w_event **out,
		    size_t *n, char *errbuf);
void m2w_outbox_free(struct m2w_event *e, size_t n);
/* Deletes every event up to seq `upto` (published and confirmed). */
int m2w_outbox_delete(struct m2w_queue *q, uint64_t upto, char *errbuf);

#ifdef __cplusplus
}
#endif
#endif
