/*
 * admin.c - what operators do to the store: get, history, list, stats,
 * requeue, retry-now, delete, purge, pause.
 *
 * Reads run in a short read transaction of their own (never held across
 * anything slow). Writes go through group commit like the hot path, so a
 * qctl in another process and the daemon's workers serialise on LMDB's
 * writer lock and never see half a change. Bulk writes (requeue, purge)
 * move at most CHUNK tasks per transaction, so a large repair never holds
 * the writer lock for long while the daemon runs.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define CHUNK 1000
#define LIST_DEFAULT 100

/* --------------------------------------------------------------- reads */

static int read_rec(struct m2w_queue *q, MDB_txn *txn, uint64_t id,
		    struct rec *r, char *errbuf)
{
	unsigned char k[8];
	MDB_val key = { 8, k }, v;
	int rc;

	put_be64(k, id);
	rc = mdb_get(txn, q->db[DB_TASKS], &key, &v);
	if (rc == MDB_NOTFOUND)
		return m2w_fail(errbuf, M2W_ENOTFOUND, "task %llu not found",
				(unsigned long long)id);
	if (rc)
		return m2s_mdb_err(errbuf, rc, "tasks");
	return m2s_rec_decode(id, v.mv_data, v.mv_size, r, errbuf);
}

static struct m2w_task *read_task(struct m2w_queue *q, MDB_txn *txn,
				  const struct rec *r, int64_t now)
{
	char name[M2W_TYPE_MAX + 1];

	m2s_read_type_name(q, txn, r->type_id, name);
	return m2s_rec_to_task(r, name, now);
}

int m2w_queue_get(struct m2w_queue *q, uint64_t id, struct m2w_task **out,
		  char *errbuf)
{
	MDB_txn *txn;
	struct rec r;
	int rc;

	*out = NULL;
	if ((rc = m2s_read_begin(q, &txn, errbuf)))
		return rc;
	rc = read_rec(q, txn, id, &r, errbuf);
	if (!rc && !(*out = read_task(q, txn, &r, m2w_queue_now(q))))
		rc = m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	m2s_read_end(q, txn);
	return rc;
}

int m2w_queue_history(struct m2w_queue *q, uint64_t id,
		      struct m2w_attempt **out, size_t *n, char *errbuf)
{
	unsigned char k[12];
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val key = { 12, k }, v;
	struct m2w_attempt *a;
	int rc;

	*out = NULL;
	*n = 0;
	a = calloc(M2W_HISTORY_MAX, sizeof(*a));
	if (!a)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	if ((rc = m2s_read_begin(q, &txn, errbuf))) {
		free(a);
		return rc;
	}
	put_be64(k, id);
	put_be32(k + 8, 0);
	if ((rc = mdb_cursor_open(txn, q->db[DB_HISTORY], &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
		     rc == 0 && key.mv_size == 12 &&
		     get_be64(key.mv_data) == id && *n < M2W_HISTORY_MAX;
		     rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
			const unsigned char *p = v.mv_data;
			struct m2w_attempt *e = &a[*n];
			size_t mlen;

			if (v.mv_size < 20 || v.mv_size > 20 + M2W_MESSAGE_MAX)
				continue;
			e->at_ms = (int64_t)get_be64(p);
			e->duration_ms = (int64_t)get_be64(p + 8);
			e->http_status = get_be16(p + 16);
			e->outcome = p[18];
			e->attempt = p[19];
			mlen = v.mv_size - 20;
			memcpy(e->message, p + 20, mlen);
			e->message[mlen] = '\0';
			(*n)++;
		}
		mdb_cursor_close(cur);
	}
	m2s_read_end(q, txn);
	if (rc && rc != MDB_NOTFOUND) {
		free(a);
		*n = 0;
		return m2s_mdb_err(errbuf, rc, "history");
	}
	*out = a;
	return M2W_OK;
}

/* ---------------------------------------------------------------- list */

static void hex_encode(char *out, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_decode(const char *s, unsigned char *out, size_t max,
		      size_t *n)
{
	size_t len = strlen(s), i;

	if (len % 2 || len / 2 > max)
		return 0;
	for (i = 0; i < len; i++) {
		int c = s[i], d = c >= '0' && c <= '9' ? c - '0'
				: c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (d < 0)
			return 0;
		if (i % 2)
			out[i / 2] |= (unsigned char)d;
		else
			out[i / 2] = (unsigned char)(d << 4);
	}
	*n = len / 2;
	return 1;
}

static int lookup_type(struct m2w_queue *q, MDB_txn *txn, const char *name,
		       int *id)
{
	unsigned char k[1 + M2W_TYPE_MAX];
	MDB_val key = { 0, k }, v;
	size_t len = strlen(name);
	int rc;

	*id = -1;
	if (len > M2W_TYPE_MAX)
		return M2W_OK;
	k[0] = 'n';
	memcpy(k + 1, name, len);
	key.mv_size = len + 1;
	rc = mdb_get(txn, q->db[DB_TYPES], &key, &v);
	if (rc == 0 && v.mv_size == 2)
		*id = get_be16(v.mv_data);
	return rc && rc != MDB_NOTFOUND ? m2s_mdb_err(NULL, rc, "types")
					: M2W_OK;
}

static int mem_has(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle), i;

	for (i = 0; m <= n && i <= n - m; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return 1;
	return 0;
}

/* Does the task under index key k match the listing? */
static int list_match(struct m2w_queue *q, MDB_txn *txn,
		      const struct m2w_list_opts *o, int tid, int64_t now,
		      const MDB_val *k, struct rec *r, char *errbuf)
{
	uint64_t id = get_be64((unsigned char *)k->mv_data + k->mv_size - 8);
	int rc, state;

	if ((rc = read_rec(q, txn, id, r, errbuf)))
		return rc;
	state = r->state == M2W_READY && r->next_run > now ? M2W_SCHEDULED
							   : r->state;
	if (state != o->state || (tid >= 0 && r->type_id != tid))
		return M2W_ENOTFOUND;
	if (o->grep && *o->grep && !mem_has(r->error, r->error_len, o->grep) &&
	    !mem_has(r->payload, r->payload_len, o->grep))
		return M2W_ENOTFOUND;
	return M2W_OK;
}

int m2w_queue_list(struct m2w_queue *q, const struct m2w_list_opts *o,
		   struct m2w_task ***out, size_t *n, char *next, char *errbuf)
{
	static const int index_of[M2W_NSTATES] = {
		DB_READY, DB_READY, DB_LEASES, DB_TASKS, DB_DONE, DB_DEAD,
		DB_DONE,
	};
	unsigned char start[M2W_CURSOR_MAX / 2], last[M2W_CURSOR_MAX / 2];
	size_t limit = o->limit ? o->limit : LIST_DEFAULT, slen = 0, llen = 0;
	int64_t now = m2w_queue_now(q);
	struct m2w_task **ts;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct rec r;
	int tid = -1, rc, mrc;

	*out = NULL;
	*n = 0;
	next[0] = '\0';
	if (o->state < 0 || o->state >= M2W_NSTATES)
		return m2w_fail(errbuf, M2W_EINVAL, "bad state %d", o->state);
	if (o->after && *o->after &&
	    !hex_decode(o->after, start, sizeof(start), &slen))
		return m2w_fail(errbuf, M2W_EINVAL, "bad cursor \"%.64s\"",
				o->after);
	ts = calloc(limit, sizeof(*ts));
	if (!ts)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	if ((rc = m2s_read_begin(q, &txn, errbuf))) {
		free(ts);
		return rc;
	}
	if (o->type && (rc = lookup_type(q, txn, o->type, &tid)) == M2W_OK &&
	    tid < 0)
		goto done; /* no such type: nothing to list */
	if (rc)
		goto fail;
	if ((mrc = mdb_cursor_open(txn, q->db[index_of[o->state]], &cur))) {
		rc = m2s_mdb_err(errbuf, mrc, "list");
		goto fail;
	}
	k.mv_data = start;
	k.mv_size = slen;
	if (!slen && index_of[o->state] == DB_READY && tid >= 0) {
		m2s_ready_key(start, (uint16_t)tid, 0, 0);
		k.mv_size = READY_KEY_LEN;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, k.mv_size ? MDB_SET_RANGE
								  : MDB_FIRST);
	     mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 8 || k.mv_size > sizeof(last))
			continue;
		if (slen && k.mv_size == slen &&
		    memcmp(k.mv_data, start, slen) == 0)
			continue; /* the previous page's last */
		if (index_of[o->state] == DB_READY && tid >= 0 &&
		    get_be16(k.mv_data) != tid)
			break;
		/* not matching, or unreadable (check() reports those) */
		if (list_match(q, txn, o, tid, now, &k, &r, NULL) != M2W_OK)
			continue;
		if (*n == limit) { /* one more exists: hand out a cursor */
			hex_encode(next, last, llen);
			break;
		}
		if (!(ts[*n] = read_task(q, txn, &r, now))) {
			rc = m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
			break;
		}
		(*n)++;
		memcpy(last, k.mv_data, k.mv_size);
		llen = k.mv_size;
	}
	mdb_cursor_close(cur);
	if (!rc && mrc && mrc != MDB_NOTFOUND)
		rc = m2s_mdb_err(errbuf, mrc, "list");
	if (rc)
		goto fail;
done:
	m2s_read_end(q, txn);
	*out = ts;
	return M2W_OK;
fail:
	m2s_read_end(q, txn);
	m2w_task_list_free(ts, *n);
	*n = 0;
	return rc;
}

/* --------------------------------------------------------------- stats */

/* Ready tasks of `type` with next_run > now, and the first ready time. */
static int split_ready(struct m2w_queue *q, MDB_txn *txn, uint16_t type,
		       int64_t now, uint64_t *scheduled, int64_t *oldest)
{
	unsigned char key[READY_KEY_LEN];
	MDB_cursor *cur;
	MDB_val k = { READY_KEY_LEN, key }, v;
	int rc;

	*scheduled = 0;
	*oldest = 0;
	if ((rc = mdb_cursor_open(txn, q->db[DB_READY], &cur)))
		return m2s_mdb_err(NULL, rc, "ready");
	m2s_ready_key(key, type, 0, 0);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && get_be16(k.mv_data) == type &&
	    (int64_t)get_be64((unsigned char *)k.mv_data + 2) <= now)
		*oldest = (int64_t)get_be64((unsigned char *)k.mv_data + 2);
	m2s_ready_key(key, type, now + 1, 0);
	k.mv_data = key;
	k.mv_size = READY_KEY_LEN;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && get_be16(k.mv_data) == type;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		(*scheduled)++;
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? m2s_mdb_err(NULL, rc, "ready")
					: M2W_OK;
}

int m2w_queue_stats(struct m2w_queue *q, struct m2w_stats *st, char *errbuf)
{
	int64_t now = m2w_queue_now(q);
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { 1, "i" }, v;
	MDB_envinfo info;
	MDB_stat es;
	int rc = M2W_OK, mrc, s;

	memset(st, 0, sizeof(*st));
	if ((rc = m2s_read_begin(q, &txn, errbuf)))
		return rc;
	if ((mrc = mdb_cursor_open(txn, q->db[DB_TYPES], &cur))) {
		rc = m2s_mdb_err(errbuf, mrc, "types");
		goto out;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     mrc == 0 && k.mv_size == 3 && *(char *)k.mv_data == 'i';
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct m2w_type_stats *t, *grown;
		uint16_t id = get_be16((unsigned char *)k.mv_data + 1);
		uint64_t sched;

		grown = realloc(st->types, (st->ntypes + 1) * sizeof(*t));
		if (!grown) {
			rc = m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
			break;
		}
		st->types = grown;
		t = &st->types[st->ntypes++];
		memset(t, 0, sizeof(*t));
		m2s_read_type_name(q, txn, id, t->type);
		if (v.mv_size >= 2 + 8 * M2W_NSTATES) {
			t->paused = *(unsigned char *)v.mv_data;
			for (s = 0; s < M2W_NSTATES; s++)
				t->count[s] = get_be64((unsigned char *)
						       v.mv_data + 2 + 8 * s);
		}
		if ((rc = split_ready(q, txn, id, now, &sched,
				      &t->oldest_ready_ms)))
			break;
		t->count[M2W_SCHEDULED] = sched;
		t->count[M2W_READY] -= sched < t->count[M2W_READY]
					       ? sched : t->count[M2W_READY];
		for (s = 0; s < M2W_NSTATES; s++)
			st->count[s] += t->count[s];
		if (t->oldest_ready_ms && (!st->oldest_ready_ms ||
					   t->oldest_ready_ms < st->oldest_ready_ms))
			st->oldest_ready_ms = t->oldest_ready_ms;
	}
	mdb_cursor_close(cur);
	if (!rc && mrc && mrc != MDB_NOTFOUND)
		rc = m2s_mdb_err(errbuf, mrc, "types");
	if (rc)
		goto out;
	k.mv_size = 10;
	k.mv_data = "paused_all";
	if (mdb_get(txn, q->db[DB_META], &k, &v) == 0 && v.mv_size == 1)
		st->paused_all = *(char *)v.mv_data == 1;
	k.mv_size = 7;
	k.mv_data = "next_id";
	st->next_id = 1;
	if (mdb_get(txn, q->db[DB_META], &k, &v) == 0 && v.mv_size == 8)
		st->next_id = get_be64(v.mv_data);
	k.mv_size = 6;
	k.mv_data = "outbox";
	if (mdb_get(txn, q->db[DB_META], &k, &v) == 0 && v.mv_size == 1)
		st->events_on = *(char *)v.mv_data == 1;
	if (mdb_stat(txn, q->db[DB_OUTBOX], &es) == 0)
		st->events_waiting = es.ms_entries;
	mdb_env_info(q->env, &info);
	mdb_env_stat(q->env, &es);
	st->map_size = info.me_mapsize;
	st->map_used = (uint64_t)(info.me_last_pgno + 1) * es.ms_psize;
	st->map_max = q->map_max;
out:
	m2s_read_end(q, txn);
	if (rc)
		m2w_stats_free(st);
	return rc;
}

void m2w_stats_free(struct m2w_stats *st)
{
	free(st->types);
	st->types = NULL;
	st->ntypes = 0;
}

/* ----------------------------------------------------- task removal */

static int drop_history(struct wctx *c, uint64_t id)
{
	unsigned char k[12];
	MDB_cursor *cur;
	MDB_val key = { 12, k }, v;
	int rc;

	put_be64(k, id);
	put_be32(k + 8, 0);
	if ((rc = mdb_cursor_open(c->txn, c->q->db[DB_HISTORY], &cur)))
		return m2s_ctx_mdb(c, rc, "history");
	for (;;) {
		key.mv_size = 12;
		key.mv_data = k;
		rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
		if (rc || key.mv_size != 12 || get_be64(key.mv_data) != id)
			break;
		c->writes++;
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? m2s_ctx_mdb(c, rc, "history")
					 : M2W_OK;
}

/* Removes task r from every index, its key, history and record. */
static int remove_task(struct wctx *c, struct rec *r)
{
	unsigned char k[8];
	MDB_val v;
	int was_head = r->group_len &&
		       (r->state == M2W_READY || r->state == M2W_LEASED);
	int rc;

	rc = r->state == M2W_WAITING ? m2s_group_leave(c, r)
				      : m2s_ctx_unindex(c, r);
	if (rc || (rc = m2s_ctx_count(c, r->type_id, r->state, -1)))
		return rc;
	if (r->idem_len) {
		rc = m2s_ctx_get(c, DB_KEYS, r->idem, r->idem_len, &v);
		if (rc == M2W_OK && v.mv_size == 8 &&
		    get_be64(v.mv_data) == r->id)
			rc = m2s_ctx_del(c, DB_KEYS, r->idem, r->idem_len);
		else if (rc == M2W_ENOTFOUND)
			rc = M2W_OK;
		if (rc)
			return rc;
	}
	if ((rc = drop_history(c, r->id)))
		return rc;
	put_be64(k, r->id);
	if ((rc = m2s_ctx_del(c, DB_TASKS, k, 8)))
		return rc;
	return was_head ? m2s_group_advance(c, r) : M2W_OK;
}

struct one_arg {
	uint64_t id;
	int force;
};

static int delete_apply(struct wctx *c, void *arg)
{
	struct one_arg *a = arg;
	struct rec r;
	int rc;

	if ((rc = m2s_ctx_rec(c, a->id, &r)))
		return rc;
	if (r.state == M2W_LEASED && !a->force)
		return m2w_fail(c->errbuf, M2W_ESTATE,
				"task %llu is leased by a worker: use force",
				(unsigned long long)a->id);
	return remove_task(c, &r);
}

int m2w_queue_delete(struct m2w_queue *q, uint64_t id, int force,
		     char *errbuf)
{
	struct one_arg a = { id, force };
	struct op op = { .apply = delete_apply, .arg = &a, .errbuf = errbuf };

	return m2s_commit_run(q, &op);
}

struct many_arg {
	const uint64_t *ids;
	size_t n;
};

static int delete_many_apply(struct wctx *c, void *arg)
{
	struct many_arg *a = arg;
	struct rec r;
	size_t i;
	int rc;

	for (i = 0; i < a->n; i++) {
		rc = m2s_ctx_rec(c, a->ids[i], &r);
		if (rc == M2W_ENOTFOUND)
			continue;
		if (rc || (rc = remove_task(c, &r)))
			return rc;
	}
	return M2W_OK;
}

int m2w_queue_delete_many(struct m2w_queue *q, const uint64_t *ids, size_t n,
			  char *errbuf)
{
	struct many_arg a = { ids, n };
	struct op op = { .apply = delete_many_apply, .arg = &a,
			 .errbuf = errbuf };

	return n ? m2s_commit_run(q, &op) : M2W_OK;
}

static int retry_now_apply(struct wctx *c, void *arg)
{
	struct one_arg *a = arg;
	struct rec r;
	int rc;

	if ((rc = m2s_ctx_rec(c, a->id, &r)))
		return rc;
	if (r.state != M2W_READY)
		return m2w_fail(c->errbuf, M2W_ESTATE,
				"task %llu is %s, not scheduled",
				(unsigned long long)a->id,
				m2w_state_name(r.state));
	if (r.next_run <= c->now)
		return M2W_OK;
	if ((rc = m2s_ctx_unindex(c, &r)))
		return rc;
	r.next_run = c->now;
	r.updated = c->now;
	if ((rc = m2s_ctx_index(c, &r)))
		return rc;
	return m2s_ctx_rec_put(c, &r);
}

int m2w_queue_retry_now(struct m2w_queue *q, uint64_t id, char *errbuf)
{
	struct one_arg a = { id, 0 };
	struct op op = { .apply = retry_now_apply, .arg = &a, .errbuf = errbuf };

	return m2s_commit_run(q, &op);
}

/* ------------------------------------------------------ bulk: scanning */

/* Walks a time index from a resume point, collecting up to CHUNK ids that
 * `match` accepts (1) or skips (0); -1 stops the walk, -(SCAN_ERR + err)
 * stops it with an error. */
#define SCAN_ERR 100
struct scan {
	int db;
	unsigned char resume[TIME_KEY_LEN];
	int resumed;
	int finished;
	uint64_t ids[CHUNK];
	size_t n;
};

static int scan_chunk(struct wctx *c, struct scan *s,
		      int (*match)(struct wctx *, const MDB_val *, void *),
		      void *arg)
{
	MDB_cursor *cur;
	MDB_val k = { TIME_KEY_LEN, s->resume }, v;
	int rc, m = 0;

	s->n = 0;
	if ((rc = mdb_cursor_open(c->txn, c->q->db[s->db], &cur)))
		return m2s_ctx_mdb(c, rc, "scan");
	rc = mdb_cursor_get(cur, &k, &v, s->resumed ? MDB_SET_RANGE : MDB_FIRST);
	if (rc == 0 && s->resumed && memcmp(k.mv_data, s->resume,
					    TIME_KEY_LEN) == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; rc == 0 && s->n < CHUNK;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != TIME_KEY_LEN)
			continue;
		m = match(c, &k, arg);
		if (m < 0)
			break;
		memcpy(s->resume, k.mv_data, TIME_KEY_LEN);
		s->resumed = 1;
		if (m)
			s->ids[s->n++] = get_be64((unsigned char *)k.mv_data + 8);
	}
	mdb_cursor_close(cur);
	s->finished = rc == MDB_NOTFOUND || m < 0;
	if (m < -1)
		return -m - SCAN_ERR;
	return rc && rc != MDB_NOTFOUND ? m2s_ctx_mdb(c, rc, "scan") : M2W_OK;
}

/* ------------------------------------------------------------- requeue */

struct requeue_arg {
	const struct m2w_requeue_opts *o;
	int tid;
	struct scan s;
	size_t count;
	uint64_t *ids;
	size_t nids, cap;
};

static int requeue_task(struct wctx *c, struct rec *r, int keep)
{
	int from = r->state, rc;

	if ((rc = m2s_ctx_unindex(c, r)))
		return rc;
	if (!keep)
		r->attempts = 0;
	r->next_run = c->now;
	r->updated = c->now;
	r->state = M2W_READY;
	if (from == M2W_READY) /* a scheduled task: just run it now */
		return (rc = m2s_ctx_index(c, r)) ? rc : m2s_ctx_rec_put(c, r);
	if (r->group_len && (rc = m2s_group_join(c, r, 1)))
		return rc;
	if ((rc = m2s_ctx_index(c, r)) || (rc = m2s_ctx_rec_put(c, r)))
		return rc;
	return m2s_ctx_moved(c, r, from);
}

static int dead_match(struct wctx *c, const MDB_val *k, void *arg)
{
	struct requeue_arg *a = arg;
	struct rec r;
	int rc;

	rc = m2s_ctx_rec(c, get_be64((unsigned char *)k->mv_data + 8), &r);
	if (rc)
		return -(SCAN_ERR + (rc == M2W_ENOTFOUND ? M2W_ECORRUPT : rc));
	if (a->tid >= 0 && r.type_id != a->tid)
		return 0;
	if (a->o->grep && *a->o->grep && !mem_has(r.error, r.error_len,
						  a->o->grep))
		return 0;
	return 1;
}

static int note_id(struct requeue_arg *a, uint64_t id)
{
	if (a->nids == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		uint64_t *g = realloc(a->ids, cap * sizeof(*g));

		if (!g)
			return M2W_ENOMEM;
		a->ids = g;
		a->cap = cap;
	}
	a->ids[a->nids++] = id;
	return M2W_OK;
}

static int requeue_apply(struct wctx *c, void *arg)
{
	struct requeue_arg *a = arg;
	const struct m2w_requeue_opts *o = a->o;
	struct rec r;
	size_t i;
	int rc;

	if (o->nids) { /* by id: all checked first, then all moved */
		a->nids = a->count = 0;
		for (i = 0; i < o->nids; i++) {
			if ((rc = m2s_ctx_rec(c, o->ids[i], &r)))
				return rc;
			if (r.state == M2W_LEASED || r.state == M2W_WAITING ||
			    (r.state != M2W_DEAD && !o->force))
				return m2w_fail(c->errbuf, M2W_ESTATE,
						"task %llu is %s, not dead%s",
						(unsigned long long)r.id,
						m2w_state_name(r.state),
						r.state == M2W_LEASED ||
						r.state == M2W_WAITING
							? "" : ": use force");
		}
		for (i = 0; i < o->nids; i++) {
			if ((rc = note_id(a, o->ids[i])))
				return m2w_fail(c->errbuf, rc, "out of memory");
			if (o->dry_run)
				continue;
			if ((rc = m2s_ctx_rec(c, o->ids[i], &r)) ||
			    (rc = requeue_task(c, &r, o->keep_attempts)))
				return rc;
		}
		a->count = a->nids;
		a->s.finished = 1;
		return M2W_OK;
	}
	if ((rc = scan_chunk(c, &a->s, dead_match, a)))
		return rc;
	for (i = 0; i < a->s.n; i++) {
		if ((rc = note_id(a, a->s.ids[i])))
			return m2w_fail(c->errbuf, rc, "out of memory");
		if (o->dry_run)
			continue;
		if ((rc = m2s_ctx_rec(c, a->s.ids[i], &r)) ||
		    (rc = requeue_task(c, &r, o->keep_attempts)))
			return rc;
	}
	return M2W_OK;
}

int m2w_queue_requeue(struct m2w_queue *q, const struct m2w_requeue_opts *o,
		      size_t *count, uint64_t **ids_out, char *errbuf)
{
	struct requeue_arg a;
	struct op op = { .apply = requeue_apply, .arg = &a, .errbuf = errbuf };
	MDB_txn *txn;
	int rc = M2W_OK;

	memset(&a, 0, sizeof(a));
	a.o = o;
	a.tid = -1;
	a.s.db = DB_DEAD;
	*count = 0;
	if (ids_out)
		*ids_out = NULL;
	if (o->type) {
		if ((rc = m2s_read_begin(q, &txn, errbuf)))
			return rc;
		rc = lookup_type(q, txn, o->type, &a.tid);
		m2s_read_end(q, txn);
		if (rc)
			return rc;
		if (a.tid < 0)
			return M2W_OK; /* no such type, nothing dead of it */
	}
	while (!a.s.finished) {
		size_t before = a.nids;

		if ((rc = m2s_commit_run(q, &op)) != M2W_OK) {
			a.nids = before; /* this chunk did not happen */
			break;
		}
	}
	*count = a.nids;
	if (ids_out && !rc)
		*ids_out = a.ids;
	else
		free(a.ids);
	return rc;
}

/* --------------------------------------------------------------- purge */

struct purge_arg {
	int state;
	int64_t before;
	struct scan s;
	size_t count;
};

static int purge_match(struct wctx *c, const MDB_val *k, void *arg)
{
	struct purge_arg *a = arg;
	struct rec r;
	int rc;

	if ((int64_t)get_be64(k->mv_data) >= a->before)
		return -1;
	if (a->state == M2W_DEAD)
		return 1;
	rc = m2s_ctx_rec(c, get_be64((unsigned char *)k->mv_data + 8), &r);
	if (rc)
		return -(SCAN_ERR + (rc == M2W_ENOTFOUND ? M2W_ECORRUPT : rc));
	return r.state == a->state;
}

static int purge_apply(struct wctx *c, void *arg)
{
	struct purge_arg *a = arg;
	struct rec r;
	size_t i;
	int rc;

	if ((rc = scan_chunk(c, &a->s, purge_match, a)))
		return rc;
	for (i = 0; i < a->s.n; i++)
		if ((rc = m2s_ctx_rec(c, a->s.ids[i], &r)) ||
		    (rc = remove_task(c, &r)))
			return rc;
	a->count += a->s.n;
	return M2W_OK;
}

int m2w_queue_purge(struct m2w_queue *q, int state, int64_t before_ms,
		    size_t *count, char *errbuf)
{
	struct purge_arg a;
	struct op op = { .apply = purge_apply, .arg = &a, .errbuf = errbuf };
	int rc = M2W_OK;

	*count = 0;
	if (state != M2W_DONE && state != M2W_SUPERSEDED && state != M2W_DEAD)
		return m2w_fail(errbuf, M2W_EINVAL,
				"purge takes done, superseded or dead tasks");
	memset(&a, 0, sizeof(a));
	a.state = state;
	a.before = before_ms;
	a.s.db = state == M2W_DEAD ? DB_DEAD : DB_DONE;
	while (!a.s.finished) {
		size_t before = a.count;

		if ((rc = m2s_commit_run(q, &op)) != M2W_OK) {
			a.count = before;
			break;
		}
	}
	*count = a.count;
	return rc;
}

/* --------------------------------------------------------------- pause */

struct pause_arg {
	const char *type;
	int paused;
};

static int set_type_paused(struct wctx *c, uint16_t id, int paused)
{
	unsigned char k[3], v[2 + 8 * M2W_NSTATES + M2W_TYPE_MAX];
	MDB_val cur;
	int rc;

	k[0] = 'i';
	put_be16(k + 1, id);
	if ((rc = m2s_ctx_get(c, DB_TYPES, k, 3, &cur)))
		return rc == M2W_ENOTFOUND ? M2W_ECORRUPT : rc;
	if (cur.mv_size > sizeof(v) || cur.mv_size < 1)
		return m2w_fail(c->errbuf, M2W_ECORRUPT, "type %u: bad record",
				id);
	if (*(unsigned char *)cur.mv_data == paused)
		return M2W_OK;
	memcpy(v, cur.mv_data, cur.mv_size);
	v[0] = (unsigned char)paused;
	return m2s_ctx_put(c, DB_TYPES, k, 3, v, cur.mv_size, 0);
}

static int pause_apply(struct wctx *c, void *arg)
{
	struct pause_arg *a = arg;
	char flag = (char)a->paused;
	MDB_cursor *cur;
	MDB_val k = { 1, "i" }, v;
	uint16_t ids[64];
	size_t n = 0, i;
	int rc;

	if (a->type) {
		uint16_t id;

		if ((rc = m2s_ctx_type_id(c, a->type, 1, &id)))
			return rc;
		return set_type_paused(c, id, a->paused);
	}
	if ((rc = m2s_ctx_put(c, DB_META, "paused_all", 10, &flag, 1, 0)))
		return rc;
	if (a->paused)
		return M2W_OK;
	/* resume all: clear every type's own flag too */
	do {
		n = 0;
		if ((rc = mdb_cursor_open(c->txn, c->q->db[DB_TYPES], &cur)))
			return m2s_ctx_mdb(c, rc, "types");
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		     rc == 0 && n < 64 && k.mv_size == 3 &&
		     *(char *)k.mv_data == 'i';
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (v.mv_size && *(unsigned char *)v.mv_data)
				ids[n++] = get_be16((unsigned char *)k.mv_data + 1);
		mdb_cursor_close(cur);
		for (i = 0; i < n; i++)
			if ((rc = set_type_paused(c, ids[i], 0)))
				return rc;
		k.mv_size = 1;
		k.mv_data = "i";
	} while (n == 64);
	return M2W_OK;
}

int m2w_queue_pause(struct m2w_queue *q, const char *type, int paused,
		    char *errbuf)
{
	struct pause_arg a = { type, paused ? 1 : 0 };
	struct op op = { .apply = pause_apply, .arg = &a, .errbuf = errbuf };

	if (type && !m2s_valid_type_name(type))
		return m2w_fail(errbuf, M2W_EINVAL, "bad type name \"%.40s\"",
				type);
	return m2s_commit_run(q, &op);
}

/* -------------------------------------------------------------- backup */

static int sync_path(const char *path)
{
	int fd = open(path, O_RDONLY), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int m2w_queue_backup(struct m2w_queue *q, const char *dir, char *errbuf)
{
	char tmp[4096], file[4200], parent[4096], *slash;
	struct stat st;
	int rc;

	if (!dir || !*dir)
		return m2w_fail(errbuf, M2W_EINVAL, "no backup directory given");
	if (stat(dir, &st) == 0)
		return m2w_fail(errbuf, M2W_EINVAL, "%s exists: a backup goes "
				"to a new directory", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", dir, (long)getpid());
	if (mkdir(tmp, 0750) != 0)
		return m2w_fail(errbuf, M2W_EIO, "%s: %s", tmp, strerror(errno));
	/* a read transaction inside LMDB: writers go on meanwhile */
	pthread_rwlock_rdlock(&q->resize);
#ifdef MDB_CP_COMPACT
	rc = mdb_env_copy2(q->env, tmp, MDB_CP_COMPACT);
#else
	rc = mdb_env_copy(q->env, tmp); /* LMDB < 0.9.14: not compacted */
#endif
	pthread_rwlock_unlock(&q->resize);
	snprintf(file, sizeof(file), "%s/data.mdb", tmp);
	/* LMDB creates the copy 0644; it holds what the store holds */
	if (rc == 0 && chmod(file, 0640) != 0)
		rc = errno;
	if (rc == 0 && sync_path(file) != 0)
		rc = errno;
	if (rc == 0 && rename(tmp, dir) != 0)
		rc = errno;
	if (rc) {
		unlink(file);
		snprintf(file, sizeof(file), "%s/lock.mdb", tmp);
		unlink(file);
		rmdir(tmp);
		return m2s_mdb_err(errbuf, rc, "backup");
	}
	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (slash)
		*(slash == parent ? slash + 1 : slash) = '\0';
	sync_path(slash ? parent : ".");
	return M2W_OK;
}
