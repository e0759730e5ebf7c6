/*
 * store.c - the LMDB environment under the queue.
 *
 * Opens the environment with MDB_NOTLS (read txns are not tied to threads)
 * and never MDB_WRITEMAP (a full disk must be an error, not SIGBUS), opens
 * every named database once at start, clears stale reader slots and checks
 * the schema version kept in meta.
 *
 * Map growth: mdb_env_set_mapsize may only run while no transaction of this
 * process is active. Every transaction therefore holds `resize` shared and
 * the grower takes it exclusive (writer-preferring, so it is not starved).
 * When another process grew the map, txn_begin says MDB_MAP_RESIZED and we
 * adopt the new size the same way. New work may use the map up to
 * map_soft (15/16 of the maximum); the last sixteenth (at least 256 KiB,
 * at most half) is kept so that acks and failures of tasks already stored,
 * their result events, and a purge keep working when the store is full.
 *
 * Also here: the write context helpers every module uses (get/put/del that
 * translate errors, record read/write, per-type counters, type names).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "m2worker/clock.h"

static const char *const db_names[DB_COUNT] = {
	"tasks", "ready", "leases", "done", "dead", "keys",
	"groups", "history", "files", "meta", "types", "outbox",
};

static const char *const state_names[M2W_NSTATES] = {
	"ready", "scheduled", "leased", "waiting", "done", "dead", "superseded",
};

const char *m2w_state_name(int state)
{
	return state >= 0 && state < M2W_NSTATES ? state_names[state] : NULL;
}

int m2w_state_parse(const char *name)
{
	int i;

	for (i = 0; name && i < M2W_NSTATES; i++)
		if (strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

int64_t m2w_queue_now(struct m2w_queue *q)
{
	return q->now ? q->now(q->now_arg) : m2w_clock_ms();
}

void m2w_queue_set_clock(struct m2w_queue *q, int64_t (*now)(void *),
			 void *arg)
{
	q->now = now;
	q->now_arg = arg;
}

int m2s_valid_type_name(const char *s)
{
	size_t n;

	if (!s || !*s)
		return 0;
	for (n = 0; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
		      s[n] == '.' || s[n] == '-') || n >= M2W_TYPE_MAX)
			return 0;
	return 1;
}

/* ---------------------------------------------------------------- errors */

/* LMDB's (and the system's) error codes in ours; the rest are M2W_EIO
 * (a system errno) or M2W_ESTORE. */
static const struct {
	int mdb, err;
	const char *prefix;
} mdb_errs[] = {
	{ MDB_MAP_FULL, M2W_EFULL, "store full: " },
	{ ENOSPC, M2W_ENOSPC, "disk full: " },
	{ ENOMEM, M2W_ENOMEM, "" },
	{ MDB_CORRUPTED, M2W_ECORRUPT, "" },
	{ MDB_PAGE_NOTFOUND, M2W_ECORRUPT, "" },
	{ MDB_INVALID, M2W_ECORRUPT, "" },
	{ MDB_VERSION_MISMATCH, M2W_ECORRUPT, "" },
	{ MDB_NOTFOUND, M2W_ENOTFOUND, "" },
};

int m2s_mdb_err(char *errbuf, int rc, const char *what)
{
	size_t i;

	for (i = 0; i < sizeof(mdb_errs) / sizeof(mdb_errs[0]); i++)
		if (mdb_errs[i].mdb == rc)
			return m2w_fail(errbuf, mdb_errs[i].err, "%s%s: %s",
					mdb_errs[i].prefix, what,
					mdb_strerror(rc));
	return m2w_fail(errbuf, rc > 0 && rc < MDB_KEYEXIST ? M2W_EIO
							    : M2W_ESTORE,
			"%s: %s (%d)", what, mdb_strerror(rc), rc);
}

int m2s_ctx_mdb(struct wctx *c, int rc, const char *what)
{
	if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL)
		c->mapfull = 1;
	return m2s_mdb_err(c->errbuf, rc == MDB_TXN_FULL ? MDB_MAP_FULL : rc,
			   what);
}

/* ------------------------------------------------------- write context */

int m2s_ctx_get(struct wctx *c, int db, const void *k, size_t klen, MDB_val *v)
{
	MDB_val key = { klen, (void *)k };
	int rc = mdb_get(c->txn, c->q->db[db], &key, v);

	if (rc == MDB_NOTFOUND)
		return M2W_ENOTFOUND;
	return rc ? m2s_ctx_mdb(c, rc, db_names[db]) : M2W_OK;
}

int m2s_ctx_put(struct wctx *c, int db, const void *k, size_t klen,
		const void *v, size_t vlen, unsigned flags)
{
	MDB_val key = { klen, (void *)k }, val = { vlen, (void *)v };
	int rc = mdb_put(c->txn, c->q->db[db], &key, &val, flags);

	c->writes++;
	return rc ? m2s_ctx_mdb(c, rc, db_names[db]) : M2W_OK;
}

int m2s_ctx_del(struct wctx *c, int db, const void *k, size_t klen)
{
	MDB_val key = { klen, (void *)k };
	int rc = mdb_del(c->txn, c->q->db[db], &key, NULL);

	c->writes++;
	if (rc == MDB_NOTFOUND) /* an index that disagrees: check() says so */
		return m2w_fail(c->errbuf, M2W_ECORRUPT,
				"%s: entry to remove is missing", db_names[db]);
	return rc ? m2s_ctx_mdb(c, rc, db_names[db]) : M2W_OK;
}

int m2s_ctx_rec(struct wctx *c, uint64_t id, struct rec *r)
{
	unsigned char k[8];
	MDB_val v;
	int rc;

	put_be64(k, id);
	rc = m2s_ctx_get(c, DB_TASKS, k, 8, &v);
	if (rc == M2W_ENOTFOUND)
		return m2w_fail(c->errbuf, rc, "task %llu not found",
				(unsigned long long)id);
	return rc ? rc : m2s_rec_decode(id, v.mv_data, v.mv_size, r, c->errbuf);
}

int m2s_ctx_rec_put(struct wctx *c, const struct rec *r)
{
	size_t n = m2s_rec_size(r);
	unsigned char k[8];

	if (n > c->bufcap) {
		unsigned char *b = realloc(c->buf, n);

		if (!b)
			return m2w_fail(c->errbuf, M2W_ENOMEM, "out of memory");
		c->buf = b;
		c->bufcap = n;
	}
	m2s_rec_encode(r, c->buf);
	put_be64(k, r->id);
	return m2s_ctx_put(c, DB_TASKS, k, 8, c->buf, n, 0);
}

uint64_t m2s_ctx_random(struct wctx *c)
{
	/* xorshift64*, seeded at open; only the commit leader runs it */
	uint64_t x = c->q->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	c->q->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Writes the counter deltas and next id (before commit, or when full). */
static int ctx_flush(struct wctx *c);

int m2s_ctx_count(struct wctx *c, uint16_t type, int from, int to)
{
	struct type_delta *d = NULL;
	size_t i;
	int rc;

	for (i = 0; i < c->ndelta; i++)
		if (c->delta[i].id == type)
			d = &c->delta[i];
	if (!d) {
		if (c->ndelta == CTX_TYPES && (rc = ctx_flush(c)) != M2W_OK)
			return rc;
		d = &c->delta[c->ndelta++];
		memset(d, 0, sizeof(*d));
		d->id = type;
	}
	if (from >= 0)
		d->d[from]--;
	if (to >= 0)
		d->d[to]++;
	return M2W_OK;
}

static void type_rec_key(unsigned char k[3], uint16_t id)
{
	k[0] = 'i';
	put_be16(k + 1, id);
}

static int ctx_flush(struct wctx *c)
{
	unsigned char k[3], v[TYPE_REC_FIXED + M2W_TYPE_MAX];
	MDB_val cur;
	size_t i;
	int s, rc;

	for (i = 0; i < c->ndelta; i++) {
		type_rec_key(k, c->delta[i].id);
		rc = m2s_ctx_get(c, DB_TYPES, k, 3, &cur);
		if (rc == M2W_ENOTFOUND || (!rc && (cur.mv_size < TYPE_REC_FIXED ||
						     cur.mv_size > sizeof(v))))
			return m2w_fail(c->errbuf, M2W_ECORRUPT,
					"type %u: record missing or damaged",
					c->delta[i].id);
		if (rc)
			return rc;
		memcpy(v, cur.mv_data, cur.mv_size);
		for (s = 0; s < M2W_NSTATES; s++) {
			unsigned char *p = v + 2 + 8 * s;

			put_be64(p, get_be64(p) + (uint64_t)c->delta[i].d[s]);
		}
		rc = m2s_ctx_put(c, DB_TYPES, k, 3, v, cur.mv_size, 0);
		if (rc)
			return rc;
	}
	c->ndelta = 0;
	if (c->next_id_dirty) {
		unsigned char n[8];

		put_be64(n, c->next_id);
		rc = m2s_ctx_put(c, DB_META, "next_id", 7, n, 8, 0);
		if (rc)
			return rc;
		c->next_id_dirty = 0;
	}
	return M2W_OK;
}

int m2s_ctx_type_id(struct wctx *c, const char *name, int create, uint16_t *id)
{
	unsigned char k[1 + M2W_TYPE_MAX], v[TYPE_REC_FIXED + M2W_TYPE_MAX];
	size_t len = strlen(name), i;
	MDB_val cur;
	uint16_t next = 1;
	int rc;

	for (i = 0; i < c->ntcache; i++)
		if (strcmp(c->tcache[i].name, name) == 0) {
			*id = c->tcache[i].id;
			return M2W_OK;
		}
	k[0] = 'n';
	memcpy(k + 1, name, len);
	rc = m2s_ctx_get(c, DB_TYPES, k, len + 1, &cur);
	if (rc == M2W_OK) {
		if (cur.mv_size != 2)
			return m2w_fail(c->errbuf, M2W_ECORRUPT,
					"type %s: bad id record", name);
		*id = get_be16(cur.mv_data);
	} else if (rc == M2W_ENOTFOUND && create) {
		rc = m2s_ctx_get(c, DB_META, "next_type", 9, &cur);
		if (rc == M2W_OK && cur.mv_size == 2)
			next = get_be16(cur.mv_data);
		else if (rc != M2W_ENOTFOUND && rc != M2W_OK)
			return rc;
		if (next == 0xffff)
			return m2w_fail(c->errbuf, M2W_EINVAL,
					"too many job types");
		*id = next;
		put_be16(v, (uint16_t)(next + 1));
		if ((rc = m2s_ctx_put(c, DB_META, "next_type", 9, v, 2, 0)))
			return rc;
		put_be16(v, next);
		if ((rc = m2s_ctx_put(c, DB_TYPES, k, len + 1, v, 2, 0)))
			return rc;
		memset(v, 0, TYPE_REC_FIXED);
		memcpy(v + TYPE_REC_FIXED, name, len);
		type_rec_key(k, next);
		if ((rc = m2s_ctx_put(c, DB_TYPES, k, 3, v,
				      TYPE_REC_FIXED + len, 0)))
			return rc;
	} else {
		return rc == M2W_ENOTFOUND
			       ? m2w_fail(c->errbuf, rc, "no type %s", name)
			       : rc;
	}
	if (c->ntcache < CTX_TYPES) {
		strcpy(c->tcache[c->ntcache].name, name);
		c->tcache[c->ntcache++].id = *id;
	}
	return M2W_OK;
}

static int type_name_of(const MDB_val *v, uint16_t id, char *out,
			char *errbuf)
{
	size_t n;

	if (v->mv_size < TYPE_REC_FIXED ||
	    v->mv_size > TYPE_REC_FIXED + M2W_TYPE_MAX)
		return m2w_fail(errbuf, M2W_ECORRUPT, "type %u: bad record",
				id);
	n = v->mv_size - TYPE_REC_FIXED;
	memcpy(out, (const char *)v->mv_data + TYPE_REC_FIXED, n);
	out[n] = '\0';
	return M2W_OK;
}

int m2s_ctx_type_name(struct wctx *c, uint16_t id, char *out)
{
	unsigned char k[3];
	MDB_val v;
	size_t i;
	int rc;

	for (i = 0; i < c->ntcache; i++)
		if (c->tcache[i].id == id) {
			strcpy(out, c->tcache[i].name);
			return M2W_OK;
		}
	type_rec_key(k, id);
	rc = m2s_ctx_get(c, DB_TYPES, k, 3, &v);
	if (rc == M2W_ENOTFOUND)
		return m2w_fail(c->errbuf, M2W_ECORRUPT, "type %u unknown", id);
	if (rc || (rc = type_name_of(&v, id, out, c->errbuf)))
		return rc;
	if (c->ntcache < CTX_TYPES) {
		strcpy(c->tcache[c->ntcache].name, out);
		c->tcache[c->ntcache++].id = id;
	}
	return M2W_OK;
}

int m2s_read_type_name(struct m2w_queue *q, MDB_txn *txn, uint16_t id,
		       char *out)
{
	unsigned char k[3];
	MDB_val key = { 3, k }, v;
	int rc;

	type_rec_key(k, id);
	rc = mdb_get(txn, q->db[DB_TYPES], &key, &v);
	if (rc) {
		strcpy(out, "?");
		return rc == MDB_NOTFOUND ? M2W_ECORRUPT
					  : m2s_mdb_err(NULL, rc, "types");
	}
	return type_name_of(&v, id, out, NULL);
}

int m2w_queue_backlog(struct m2w_queue *q, const char *type, uint64_t *n,
		      char *errbuf)
{
	unsigned char k[3];
	MDB_val key = { 3, k }, v;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, mrc;

	*n = 0;
	if ((rc = m2s_read_begin(q, &txn, errbuf)))
		return rc;
	if ((mrc = mdb_cursor_open(txn, q->db[DB_TYPES], &cur))) {
		m2s_read_end(q, txn);
		return m2s_mdb_err(errbuf, mrc, "types");
	}
	k[0] = 'i';
	k[1] = k[2] = 0;
	for (mrc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
	     mrc == 0 && key.mv_size == 3 && *(char *)key.mv_data == 'i';
	     mrc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
		char name[M2W_TYPE_MAX + 1];

		if (type && (type_name_of(&v, 0, name, NULL) != M2W_OK ||
			     strcmp(name, type) != 0))
			continue;
		*n += type_rec_unfinished(&v);
	}
	if (mrc && mrc != MDB_NOTFOUND)
		rc = m2s_mdb_err(errbuf, mrc, "types");
	mdb_cursor_close(cur);
	m2s_read_end(q, txn);
	return rc;
}

unsigned m2s_ctx_max_attempts(struct wctx *c, const struct rec *r)
{
	char name[M2W_TYPE_MAX + 1];

	if (r->max_attempts)
		return r->max_attempts;
	if (m2s_ctx_type_name(c, r->type_id, name) != M2W_OK)
		return 10;
	return m2s_policy(c->q, name)->max_attempts;
}

/* ------------------------------------------------------------ indexes */

int m2s_ctx_unindex(struct wctx *c, const struct rec *r)
{
	unsigned char k[READY_KEY_LEN];

	switch (r->state) {
	case M2W_READY:
		m2s_ready_key(k, r->type_id, r->next_run, r->id);
		return m2s_ctx_del(c, DB_READY, k, READY_KEY_LEN);
	case M2W_LEASED:
		m2s_time_key(k, r->lease_expiry, r->id);
		return m2s_ctx_del(c, DB_LEASES, k, TIME_KEY_LEN);
	case M2W_DONE:
	case M2W_SUPERSEDED:
		m2s_time_key(k, r->updated, r->id);
		return m2s_ctx_del(c, DB_DONE, k, TIME_KEY_LEN);
	case M2W_DEAD:
		m2s_time_key(k, r->updated, r->id);
		return m2s_ctx_del(c, DB_DEAD, k, TIME_KEY_LEN);
	default: /* WAITING: group.c */
		return M2W_OK;
	}
}

int m2s_ctx_index(struct wctx *c, const struct rec *r)
{
	unsigned char k[READY_KEY_LEN];

	switch (r->state) {
	case M2W_READY:
		m2s_ready_key(k, r->type_id, r->next_run, r->id);
		return m2s_ctx_put(c, DB_READY, k, READY_KEY_LEN, "", 0, 0);
	case M2W_LEASED:
		m2s_time_key(k, r->lease_expiry, r->id);
		return m2s_ctx_put(c, DB_LEASES, k, TIME_KEY_LEN, "", 0, 0);
	case M2W_DONE:
	case M2W_SUPERSEDED:
		m2s_time_key(k, r->updated, r->id);
		return m2s_ctx_put(c, DB_DONE, k, TIME_KEY_LEN, "", 0, 0);
	case M2W_DEAD:
		m2s_time_key(k, r->updated, r->id);
		return m2s_ctx_put(c, DB_DEAD, k, TIME_KEY_LEN, "", 0, 0);
	default:
		return M2W_OK;
	}
}

/* ------------------------------------------------------- transactions */

static int adopt_resize(struct m2w_queue *q)
{
	int rc;

	pthread_rwlock_wrlock(&q->resize);
	rc = mdb_env_set_mapsize(q->env, 0);
	pthread_rwlock_unlock(&q->resize);
	return rc;
}

static int txn_begin(struct m2w_queue *q, unsigned flags, MDB_txn **txn,
		     char *errbuf)
{
	int rc;

	for (;;) {
		pthread_rwlock_rdlock(&q->resize);
		rc = mdb_txn_begin(q->env, NULL, flags, txn);
		if (rc != MDB_MAP_RESIZED)
			break;
		pthread_rwlock_unlock(&q->resize);
		if ((rc = adopt_resize(q)) != 0)
			return m2s_mdb_err(errbuf, rc, "adopting map size");
	}
	if (rc) {
		pthread_rwlock_unlock(&q->resize);
		return m2s_mdb_err(errbuf, rc, "begin transaction");
	}
	return M2W_OK;
}

int m2s_read_begin(struct m2w_queue *q, MDB_txn **txn, char *errbuf)
{
	return txn_begin(q, MDB_RDONLY, txn, errbuf);
}

void m2s_read_end(struct m2w_queue *q, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&q->resize);
}

int m2s_write_begin(struct m2w_queue *q, struct wctx *c)
{
	unsigned char *buf = c->buf;
	size_t cap = c->bufcap;

	memset(c, 0, sizeof(*c));
	c->q = q;
	c->buf = buf;
	c->bufcap = cap;
	c->now = m2w_queue_now(q);
	return txn_begin(q, 0, &c->txn, NULL);
}

/* Bytes free for us on the store's filesystem; SIZE_MAX when unknown. */
size_t m2s_disk_free(struct m2w_queue *q)
{
	struct statvfs sv;
	int fd;

	if (mdb_env_get_fd(q->env, &fd) != 0 || fstatvfs(fd, &sv) != 0)
		return (size_t)-1;
	return (size_t)sv.f_bavail * sv.f_frsize;
}

int m2s_write_commit(struct wctx *c)
{
	int rc = ctx_flush(c);

	if (rc) {
		m2s_write_abort(c);
		return rc;
	}
	rc = mdb_txn_commit(c->txn);
	c->txn = NULL;
	pthread_rwlock_unlock(&c->q->resize);
	/* LMDB reports a short write ("filesystem full?") as EIO */
	if (rc == EIO && m2s_disk_free(c->q) < STORE_DISK_LOW)
		rc = ENOSPC;
	return rc ? m2s_ctx_mdb(c, rc, "commit") : M2W_OK;
}

void m2s_write_abort(struct wctx *c)
{
	if (c->txn) {
		mdb_txn_abort(c->txn);
		c->txn = NULL;
		pthread_rwlock_unlock(&c->q->resize);
	}
}

int m2s_map_grow(struct m2w_queue *q, size_t limit, char *errbuf)
{
	MDB_envinfo info;
	size_t next;
	int rc = 0;

	pthread_rwlock_wrlock(&q->resize);
	mdb_env_info(q->env, &info);
	next = info.me_mapsize * 2;
	if (next > limit)
		next = limit;
	if (next > info.me_mapsize)
		rc = mdb_env_set_mapsize(q->env, next);
	pthread_rwlock_unlock(&q->resize);
	if (rc)
		return m2s_mdb_err(errbuf, rc, "growing the map");
	if (next <= info.me_mapsize)
		return m2w_fail(errbuf, M2W_EFULL,
				"store full: map is %zu KiB of at most %zu KiB",
				info.me_mapsize >> 10, limit >> 10);
	return M2W_OK;
}

/* --------------------------------------------------------------- open */

static int open_dbs(struct m2w_queue *q, int outbox, char *errbuf)
{
	MDB_txn *txn;
	MDB_val k = { 6, "schema" }, v;
	MDB_stat st;
	unsigned char ver[4];
	int i, rc;

	rc = mdb_txn_begin(q->env, NULL, 0, &txn);
	if (rc)
		return m2s_mdb_err(errbuf, rc, "opening the store");
	for (i = 0; i < DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &q->db[i]);
		if (rc) {
			mdb_txn_abort(txn);
			return m2s_mdb_err(errbuf, rc, db_names[i]);
		}
	}
	rc = mdb_get(txn, q->db[DB_META], &k, &v);
	if (rc == MDB_NOTFOUND) {
		mdb_stat(txn, q->db[DB_TASKS], &st);
		if (st.ms_entries) {
			mdb_txn_abort(txn);
			return m2w_fail(errbuf, M2W_ESCHEMA,
					"store has tasks but no schema version");
		}
		put_be32(ver, M2W_SCHEMA_VERSION);
		v.mv_size = 4;
		v.mv_data = ver;
		rc = mdb_put(txn, q->db[DB_META], &k, &v, 0);
	} else if (rc == 0 && (v.mv_size != 4 ||
			       get_be32(v.mv_data) != M2W_SCHEMA_VERSION)) {
		unsigned long found = v.mv_size == 4 ? get_be32(v.mv_data) : 0;

		mdb_txn_abort(txn);
		return m2w_fail(errbuf, M2W_ESCHEMA,
				"store schema version %lu, this build reads "
				"version %d: use the matching m2worker or "
				"migrate the store", found, M2W_SCHEMA_VERSION);
	}
	if (rc) {
		mdb_txn_abort(txn);
		return m2s_mdb_err(errbuf, rc, "schema version");
	}
	if ((rc = m2s_outbox_open(q, txn, outbox, errbuf)) != M2W_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	return rc ? m2s_mdb_err(errbuf, rc, "opening the store") : M2W_OK;
}

/*
 * The daemon's lock: an flock on PATH/daemon.lock (not on LMDB's own
 * lock.mdb, whose fcntl locks LMDB manages), the holder's pid written in
 * it for the message a second daemon gets. Closed on exec, so a child
 * (curl never forks, but a hook might) does not keep it.
 */
static int lock_store(struct m2w_queue *q, const char *dir, char *errbuf)
{
	char path[4096], pid[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/daemon.lock", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0)
		return m2w_fail(errbuf, M2W_EIO, "%s: %s", path,
				strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int busy = errno == EWOULDBLOCK;

		if (busy && pread(fd, pid, sizeof(pid) - 1, 0) > 0)
			pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		if (!busy)
			return m2w_fail(errbuf, M2W_EIO, "%s: %s", path,
					strerror(errno));
		return m2w_fail(errbuf, M2W_EBUSY, "store %s is in use by "
				"another m2worker (pid %s): one daemon a "
				"store; stop that one, or give this one its "
				"own [store] path", dir, *pid ? pid : "?");
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		close(fd);
		return m2w_fail(errbuf, M2W_EIO, "%s: %s", path,
				strerror(errno));
	}
	q->lock_fd = fd;
	return M2W_OK;
}

static uint64_t seed(void)
{
	uint64_t s = 0;
	FILE *f = fopen("/dev/urandom", "rb");

	if (f) {
		if (fread(&s, sizeof(s), 1, f) != 1)
			s = 0;
		fclose(f);
	}
	s ^= (uint64_t)m2w_clock_ms() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
	return s ? s : 0x1234567;
}

int m2s_sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc, e;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* A new store's names: data.mdb in its directory, and the directory in
 * its parent when we made it. LMDB fsyncs the file, never a directory:
 * without this a power cut could take the whole new store, with every
 * task acknowledged into it (tests/powerloss.sh). */
static int sync_new_store(const char *path, int made_dir)
{
	char parent[4096], *slash;

	if (m2s_sync_path(path) != 0)
		return -1;
	if (!made_dir)
		return 0;
	snprintf(parent, sizeof(parent), "%s", path);
	while ((slash = strrchr(parent, '/')) && slash[1] == '\0' &&
	       slash != parent)
		*slash = '\0';
	if (!(slash = strrchr(parent, '/')))
		return m2s_sync_path(".");
	slash[slash == parent] = '\0';
	return m2s_sync_path(parent);
}

int m2w_queue_open(const struct m2w_queue_opts *opts, struct m2w_queue **out,
		   char *errbuf)
{
	struct m2w_queue *q;
	pthread_rwlockattr_t ra;
	char file[4096];
	size_t init, max, reserve;
	int rc, dead, made_dir = 0, new_file;

	*out = NULL;
	if (!opts || !opts->path || !*opts->path)
		return m2w_fail(errbuf, M2W_EINVAL, "no store path given");
	snprintf(file, sizeof(file), "%s/data.mdb", opts->path);
	if (opts->create && mkdir(opts->path, 0750) == 0)
		made_dir = 1;
	else if (opts->create && errno != EEXIST)
		return m2w_fail(errbuf, M2W_EIO, "%s: %s", opts->path,
				strerror(errno));
	new_file = access(file, F_OK) != 0;
	if (!opts->create && new_file)
		return m2w_fail(errbuf, M2W_ENOTFOUND, "no store at %s",
				opts->path);
	max = opts->map_max ? opts->map_max : (size_t)4 << 30;
	init = opts->map_initial ? opts->map_initial : (size_t)64 << 20;
	if (init > max)
		init = max;

	q = calloc(1, sizeof(*q));
	if (!q)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	q->lock_fd = -1;
	q->map_max = max;
	/* the reserve for draining: a sixteenth, at least 256 KiB (a small
	 * store's acks, history, result events and a purge need room too) */
	reserve = max / 16 > ((size_t)256 << 10) ? max / 16
						  : (size_t)256 << 10;
	q->map_soft = max > 2 * reserve ? max - reserve : max / 2;
	q->pending_tail = &q->pending;
	q->rng = seed();
	pthread_rwlockattr_init(&ra);
#ifdef PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP
	pthread_rwlockattr_setkind_np(&ra,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	pthread_rwlock_init(&q->resize, &ra);
	pthread_rwlockattr_destroy(&ra);
	if ((rc = m2s_commit_init(q)) != M2W_OK) {
		pthread_rwlock_destroy(&q->resize);
		free(q);
		return m2w_fail(errbuf, rc, "cannot start group commit");
	}

	if (opts->exclusive && (rc = lock_store(q, opts->path, errbuf)))
		goto fail;
	if ((rc = mdb_env_create(&q->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(q->env, 16)) != 0 ||
	    (rc = mdb_env_set_mapsize(q->env, init)) != 0 ||
	    (rc = mdb_env_open(q->env, opts->path,
			       MDB_NOTLS | (opts->nosync ? MDB_NOSYNC : 0),
			       0640)) != 0) {
		rc = m2s_mdb_err(errbuf, rc, opts->path);
		goto fail;
	}
	if (new_file && !opts->nosync &&
	    sync_new_store(opts->path, made_dir) != 0) {
		rc = m2w_fail(errbuf, M2W_EIO, "%s: cannot sync the new "
			      "store's directory: %s", opts->path,
			      strerror(errno));
		goto fail;
	}
	mdb_reader_check(q->env, &dead);
	if ((rc = open_dbs(q, opts->outbox, errbuf)) != M2W_OK)
		goto fail;
	*out = q;
	return M2W_OK;
fail:
	m2w_queue_close(q);
	return rc;
}

void m2w_queue_close(struct m2w_queue *q)
{
	if (!q)
		return;
	if (q->env)
		mdb_env_close(q->env);
	m2s_commit_destroy(q);
	pthread_rwlock_destroy(&q->resize);
	free(q->policies);
	if (q->lock_fd >= 0)
		close(q->lock_fd);
	free(q);
}
