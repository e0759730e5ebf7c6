/*
 * internal.h - the store layer (src/store): what its modules share. Not
 * installed, not public; read this comment as the layer's README.
 *
 * What lives here: the durable task store, one LMDB environment (a
 * directory) with group commit, behind three public headers:
 * include/m2worker/queue.h (producers and workers), admin.h (operators:
 * qctl and the HTTP stats) and report.h (the JSON of tasks and stats).
 *
 * Module map:
 *   store.c   environment, named databases, the resize lock, read txns,
 *             map growth, meta (schema, ids), types and their counters,
 *             state names, the clock; the write context helpers
 *             (m2s_ctx_*: get/put/del, records, counters, indexes)
 *   commit.c  group commit: write ops from all threads, one txn per round
 *   record.c  the versioned binary task record and the index keys
 *   queue.c   enqueue (and ingested files), lease, settle, reap, history
 *             entries (the hot path)
 *   group.c   ordering groups: head, waiting successors, supersede
 *   admin.c   get, history, list, stats, requeue, retry-now, delete,
 *             delete dead (one selection with requeue), purge, pause,
 *             backup, dead groups
 *   outbox.c  result events written with the end of a task, read and
 *             deleted by the daemon's publisher
 *   check.c   index consistency check
 *   backoff.c retry policies and backoff delays
 *   report.c  the JSON of report.h, from the public headers alone (it does
 *             not include this one)
 *
 * What the layer may include: of the other layers only util
 * ("m2worker/error.h"; "m2worker/log.h" too should a module log, none does
 * yet), never magento, jobs, ingest or daemon; besides that its own public
 * headers, LMDB, json-c (payload validation in queue.c, report.c),
 * pthreads and libc.
 *
 * Who includes this header: the store's modules, and outside src/store
 * only the record unit test (tests/check_record.c) and the record fuzz
 * target (tests/fuzz/fuzz_record.c), which drive record.c directly.
 * Everything else goes through the public headers.
 *
 * Names: the public API is m2w_*; what the modules share through this
 * header is m2s_*; what one module uses alone is static. Types, macros and
 * the static inline helpers here need no prefix: they never reach the
 * library's symbol table.
 *
 * Write ops (commit.c): an op that fails with a "semantic" error (EINVAL,
 * ENOTFOUND, ESTALE, ESTATE) before its first write leaves the round's
 * transaction usable. Any other error, or any error after the op wrote
 * (wctx.writes counts puts and dels), poisons the transaction: commit.c
 * aborts it and replays each op of the round alone, so one bad op never
 * takes others down with it.
 */
#ifndef M2W_INTERNAL_H
#define M2W_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <lmdb.h>

#include "m2worker/admin.h"
#include "m2worker/error.h"
#include "m2worker/queue.h"

/* ------------------------------------------------------------ encodings */

static inline void put_be16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static inline void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static inline void put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t get_be16(const unsigned char *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t get_be32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t get_be64(const unsigned char *p)
{
	return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

/* ------------------------------------------------------------ databases */

enum db {
	DB_TASKS,   /* be64 id -> record */
	DB_READY,   /* be16 type | be64 next_run | be64 id -> "" */
	DB_LEASES,  /* be64 expiry | be64 id -> "" */
	DB_DONE,    /* be64 ended | be64 id -> ""  (done and superseded) */
	DB_DEAD,    /* be64 ended | be64 id -> "" */
	DB_KEYS,    /* idempotency key -> be64 id */
	DB_GROUPS,  /* 'g' key -> be64 head; 'w' key NUL be64 id -> "" */
	DB_HISTORY, /* be64 id | be32 seq -> attempt */
	DB_FILES,   /* ingested file fingerprints (ingest) */
	DB_META,    /* "schema", "next_id", "next_type", "paused_all" */
	DB_TYPES,   /* 'n' name -> be16 id; 'i' be16 id -> type record */
	DB_OUTBOX,  /* be64 seq -> result event JSON (outbox.c) */
	DB_COUNT
};

/* A type record ('i' be16 id in DB_TYPES): be16 flags, then a be64 count
 * per stored state, then the name. */
#define TYPE_REC_FIXED (2 + 8 * M2W_NSTATES)

/* Tasks of a type record not finished: ready (scheduled too), leased,
 * waiting; 0 for a record too short. */
static inline uint64_t type_rec_unfinished(const MDB_val *v)
{
	const unsigned char *c = v->mv_data;

	if (v->mv_size < TYPE_REC_FIXED)
		return 0;
	return get_be64(c + 2 + 8 * M2W_READY) +
	       get_be64(c + 2 + 8 * M2W_LEASED) +
	       get_be64(c + 2 + 8 * M2W_WAITING);
}

#define READY_KEY_LEN 18
#define TIME_KEY_LEN 16

/* ---------------------------------------------------------------- record */

#define REC_VERSION 1
#define REC_HEADER 64
#define REC_SUPERSEDE 0x01
#define REC_EXCLUSIVE 0x02     /* its group runs in any order */

#define REC_SOURCE_MAX 1024

/* A decoded record. Strings are not NUL-terminated. m2s_rec_decode copies the
 * short ones (keys, source, error) into `strs`, so they survive writes; the
 * payload points into the LMDB value: valid until the next write to
 * DB_TASKS (so copy a task out before storing its new record). */
struct rec {
	uint64_t id;
	int state;           /* stored states only: never M2W_SCHEDULED */
	uint16_t type_id;
	unsigned flags;
	unsigned attempts, max_attempts;
	int last_status;
	int64_t created, updated, next_run, lease_expiry;
	uint64_t token;
	const char *idem, *group, *source, *error, *payload;
	size_t idem_len, group_len, source_len, error_len, payload_len;
	char strs[2 * M2W_KEY_MAX + REC_SOURCE_MAX + M2W_MESSAGE_MAX];
};

int m2s_rec_decode(uint64_t id, const void *data, size_t len, struct rec *r,
		   char *errbuf);
/* The same checks and fields, but every string (keys, source and error
 * too) points into the LMDB value and nothing is copied: for readers
 * alone, valid while their read transaction lasts (list, dead groups). */
int m2s_rec_view(uint64_t id, const void *data, size_t len, struct rec *r,
		 char *errbuf);
size_t m2s_rec_size(const struct rec *r);
void m2s_rec_encode(const struct rec *r, unsigned char *buf);
/* A public task (one allocation) from a record; NULL on ENOMEM. */
struct m2w_task *m2s_rec_to_task(const struct rec *r, const char *type_name,
				 int64_t now);

void m2s_ready_key(unsigned char k[READY_KEY_LEN], uint16_t type, int64_t at,
		   uint64_t id);
void m2s_time_key(unsigned char k[TIME_KEY_LEN], int64_t at, uint64_t id);

/* --------------------------------------------------------------- handle */

struct policy_entry {
	char type[M2W_TYPE_MAX + 1];
	struct m2w_policy p;
};

struct op;

struct m2w_queue {
	int lock_fd;         /* daemon.lock held (opened exclusive), or -1 */
	MDB_env *env;
	MDB_dbi db[DB_COUNT];
	/* Transactions hold it shared; map growth holds it exclusive
	 * (mdb_env_set_mapsize needs no txn active in the process). */
	pthread_rwlock_t resize;
	size_t map_soft;     /* new work stops here: the rest drains */
	size_t map_max;
	int64_t (*now)(void *);
	void *now_arg;
	struct policy_entry *policies;
	size_t npolicies;
	int outbox;          /* result events on (meta "outbox") */
	char store_id[17];   /* names the store in event ids */

	/* group commit (commit.c) */
	pthread_mutex_t mu;
	struct op *pending, **pending_tail;
	int leading;

	/* owned by the current commit leader */
	uint64_t rng;
	unsigned rr;         /* round-robin start over types */
};

/* ------------------------------------------------------------ write ctx */

#define CTX_TYPES 16

/* Per-type deltas of the stored-state counters, flushed before commit. */
struct type_delta {
	uint16_t id;
	int64_t d[M2W_NSTATES];
};

struct wctx {
	struct m2w_queue *q;
	MDB_txn *txn;
	int64_t now;
	char *errbuf;        /* the current op's caller buffer, or NULL */
	int mapfull;         /* MDB_MAP_FULL seen: grow and retry */
	unsigned long writes;/* puts and dels so far: an op that failed after
			      * writing poisons the transaction */
	uint64_t next_id;    /* 0 until read from meta */
	int next_id_dirty;
	struct type_delta delta[CTX_TYPES];
	size_t ndelta;
	struct { char name[M2W_TYPE_MAX + 1]; uint16_t id; } tcache[CTX_TYPES];
	size_t ntcache;
	unsigned char *buf;  /* scratch for encoded records */
	size_t bufcap;
	const char *note;    /* settle: the done task's note and result, */
	const char *result;  /* for its event (outbox.c) */
};

/* An MDB error -> ours, with detail; sets ctx->mapfull on MDB_MAP_FULL. */
int m2s_ctx_mdb(struct wctx *c, int rc, const char *what);
int m2s_mdb_err(char *errbuf, int rc, const char *what);
/* fsync of a file or directory by name: 0, or -1 with errno */
int m2s_sync_path(const char *path);

/* Small wrappers that translate errors. Data pointers of get are LMDB's. */
int m2s_ctx_get(struct wctx *c, int db, const void *k, size_t klen, MDB_val *v);
int m2s_ctx_put(struct wctx *c, int db, const void *k, size_t klen,
		const void *v, size_t vlen, unsigned flags);
int m2s_ctx_del(struct wctx *c, int db, const void *k, size_t klen);

/* Reads and decodes task `id`; M2W_ENOTFOUND or M2W_ECORRUPT. */
int m2s_ctx_rec(struct wctx *c, uint64_t id, struct rec *r);
/* Encodes and stores r (r's strings may point into the old value). */
int m2s_ctx_rec_put(struct wctx *c, const struct rec *r);
/* Counter bookkeeping: one task of type moves from state a to b (-1: none). */
int m2s_ctx_count(struct wctx *c, uint16_t type, int from, int to);
uint64_t m2s_ctx_random(struct wctx *c);
/* m2s_ctx_count for r, now in r->state, coming from `from` (-1: new);
 * also the result event when r ended and the outbox is on (outbox.c). */
int m2s_ctx_moved(struct wctx *c, const struct rec *r, int from);

/* The type id of `name`, created when absent and `create`. */
int m2s_ctx_type_id(struct wctx *c, const char *name, int create, uint16_t *id);
/* Name of type id into out (M2W_TYPE_MAX+1 bytes). */
int m2s_ctx_type_name(struct wctx *c, uint16_t id, char *out);
unsigned m2s_ctx_max_attempts(struct wctx *c, const struct rec *r);
const struct m2w_policy *m2s_policy(struct m2w_queue *q, const char *type);

/* Index moves: remove a task from the index of its current state, or add
 * it to the index of r->state (READY, LEASED, DONE, SUPERSEDED, DEAD;
 * WAITING lives in DB_GROUPS and is handled by group.c). */
int m2s_ctx_unindex(struct wctx *c, const struct rec *r);
int m2s_ctx_index(struct wctx *c, const struct rec *r);

/* ---------------------------------------------------------------- group */

/* A new (or requeued) task r with a group key: decides r->state (READY or
 * WAITING, or SUPERSEDED when a newer task of its group exists and it is a
 * requeue), supersedes what r replaces. Does not store r. */
int m2s_group_join(struct wctx *c, struct rec *r, int requeue);
/* Head r of its group ended (done, dead, superseded, deleted): the next
 * waiting task becomes ready. */
int m2s_group_advance(struct wctx *c, const struct rec *r);
/* Head r of an exclusive group, failed and due at r->next_run, steps
 * aside when a waiter is due sooner: r waits (state WAITING), the waiter
 * due first is promoted. *aside 1 when it did (r is then not stored). */
int m2s_group_step_aside(struct wctx *c, struct rec *r, int *aside);
/* Head r is about to go back to ready (retry, snooze, release, reap):
 * *yes = 1 when a newer task that supersedes it waits (r should end). */
int m2s_group_newer_waits(struct wctx *c, const struct rec *r, int *yes);
/* A WAITING task r leaves its group (delete). */
int m2s_group_leave(struct wctx *c, const struct rec *r);
/* Builds a 'w' key; returns its length. buf >= M2W_KEY_MAX + 10. */
size_t m2s_group_wait_key(unsigned char *buf, const char *g, size_t glen,
			  uint64_t id);
size_t m2s_group_head_key(unsigned char *buf, const char *g, size_t glen);

/* ---------------------------------------------------------------- store */

int m2s_read_begin(struct m2w_queue *q, MDB_txn **txn, char *errbuf);
void m2s_read_end(struct m2w_queue *q, MDB_txn *txn);
int m2s_write_begin(struct m2w_queue *q, struct wctx *c);
/* Free bytes on the store's filesystem (SIZE_MAX when unknown); below
 * STORE_DISK_LOW an EIO from a commit is a full disk, below
 * STORE_DISK_RESERVE new work is refused so that draining has room. */
#define STORE_DISK_LOW ((size_t)1 << 20)
#define STORE_DISK_RESERVE ((size_t)4 << 20)
size_t m2s_disk_free(struct m2w_queue *q);
int m2s_write_commit(struct wctx *c);
void m2s_write_abort(struct wctx *c);
/* Doubles the map toward limit; M2W_EFULL when already at it. */
int m2s_map_grow(struct m2w_queue *q, size_t limit, char *errbuf);

/* The outbox mode (M2W_OUTBOX_*) into meta and q->outbox, the store's id
 * into q->store_id; in open's write transaction. */
int m2s_outbox_open(struct m2w_queue *q, MDB_txn *txn, int mode,
		    char *errbuf);

/* --------------------------------------------------------------- commit */

/* One write operation, run by whichever thread leads the commit round. It
 * may run more than once (after map growth, or alone after another op
 * poisoned the round): apply must reset its outputs each time. */
struct op {
	int (*apply)(struct wctx *c, void *arg);
	void *arg;
	int new_work;        /* limited to map_soft: enqueue */
	char *errbuf;
	int rc;
	int done;
	struct op *next;
	pthread_cond_t cv;   /* commit.c: wakes this op's thread alone */
};

int m2s_commit_run(struct m2w_queue *q, struct op *op);
int m2s_commit_init(struct m2w_queue *q);
void m2s_commit_destroy(struct m2w_queue *q);

/* ---------------------------------------------------------------- types */

/* Read-side helpers (admin.c, check.c) over a read txn. */
int m2s_read_type_name(struct m2w_queue *q, MDB_txn *txn, uint16_t id,
		       char *out);
int m2s_valid_type_name(const char *s);

#endif
