/*
 * admin.c - what operators do to the store: get, history, list, stats,
 * requeue, retry-now, delete, delete dead, purge, pause, dead groups.
 *
 * Reads run in a short read transaction of their own (never held across
 * anything slow). Writes go through group commit like the hot path, so a
 * qctl in another process and the daemon's workers serialise on LMDB's
 * writer lock and never see half a change. Bulk writes (requeue, delete
 * dead, purge) move at most CHUNK tasks per transaction, and look at no
 * more than SCAN_LOOK, so a large repair never holds the writer lock for
 * long while the daemon runs. Requeue and delete dead take their tasks
 * through one selection (dead_sel), so the console's "requeue" and
 * "delete" of a group take the same tasks.
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

/*
 * Reads task `id` in a read transaction, its strings left in place
 * (m2s_rec_view: valid until the transaction ends). Through `cur`, a
 * cursor on DB_TASKS, when the caller reads many: LMDB's MDB_SET stays on
 * the cursor's page when the id is there, and a walk of a time index
 * meets ids mostly rising, so most reads skip the descent from the root.
 */
static int read_rec(struct m2w_queue *q, MDB_txn *txn, MDB_cursor *cur,
		    uint64_t id, struct rec *r, char *errbuf)
{
	unsigned char k[8];
	MDB_val key = { 8, k }, v;
	int rc;

	put_be64(k, id);
	rc = cur ? mdb_cursor_get(cur, &key, &v, MDB_SET)
		 : mdb_get(txn, q->db[DB_TASKS], &key, &v);
	if (rc == MDB_NOTFOUND)
		return m2w_fail(errbuf, M2W_ENOTFOUND, "task %llu not found",
				(unsigned long long)id);
	if (rc)
		return m2s_mdb_err(errbuf, rc, "tasks");
	return m2s_rec_view(id, v.mv_data, v.mv_size, r, errbuf);
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
	rc = read_rec(q, txn, NULL, id, &r, errbuf);
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

/* Is needle (not empty) in hay[0..n)? memmem: GNU, BSD, musl; config.h
 * asks for the extensions. */
static int mem_has(const char *hay, size_t n, const char *needle)
{
	return n && memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* Is `s` in the task's last error, payload, keys or source? */
static int rec_grep(const struct rec *r, const char *s)
{
	return mem_has(r->error, r->error_len, s) ||
	       mem_has(r->payload, r->payload_len, s) ||
	       mem_has(r->idem, r->idem_len, s) ||
	       mem_has(r->group, r->group_len, s) ||
	       mem_has(r->source, r->source_len, s);
}

/* Does the task under index key k match the listing? */
static int list_match(struct m2w_queue *q, MDB_txn *txn, MDB_cursor *tasks,
		      const struct m2w_list_opts *o, int tid, int64_t now,
		      const MDB_val *k, struct rec *r, char *errbuf)
{
	uint64_t id = get_be64((unsigned char *)k->mv_data + k->mv_size - 8);
	int rc, state;

	if ((rc = read_rec(q, txn, tasks, id, r, errbuf)))
		return rc;
	state = r->state == M2W_READY && r->next_run > now ? M2W_SCHEDULED
							   : r->state;
	if (state != o->state || (tid >= 0 && r->type_id != tid))
		return M2W_ENOTFOUND;
	if ((o->since_ms && r->updated < o->since_ms) ||
	    (o->until_ms && r->updated >= o->until_ms))
		return M2W_ENOTFOUND;
	if (o->grep && *o->grep && !rec_grep(r, o->grep))
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
	unsigned char from[TIME_KEY_LEN];
	size_t limit = o->limit ? o->limit : LIST_DEFAULT, slen = 0, llen = 0;
	int64_t now = m2w_queue_now(q);
	struct m2w_task **ts;
	MDB_txn *txn;
	MDB_cursor *cur, *tasks;
	MDB_val k, v;
	struct rec r;
	int tid = -1, rc, mrc, timed;

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
	if ((mrc = mdb_cursor_open(txn, q->db[DB_TASKS], &tasks))) {
		rc = m2s_mdb_err(errbuf, mrc, "list");
		goto fail;
	}
	if ((mrc = mdb_cursor_open(txn, q->db[index_of[o->state]], &cur))) {
		mdb_cursor_close(tasks);
		rc = m2s_mdb_err(errbuf, mrc, "list");
		goto fail;
	}
	k.mv_data = start;
	k.mv_size = slen;
	if (!slen && index_of[o->state] == DB_READY && tid >= 0) {
		m2s_ready_key(start, (uint16_t)tid, 0, 0);
		k.mv_size = READY_KEY_LEN;
	}
	/* done, dead, superseded: keyed by the time they ended, which is
	 * their `updated` (m2s_ctx_index; check.c holds them to it), so
	 * since seeks and until ends the walk. A cursor before since is
	 * passed over (no task there is listed); one after it is where the
	 * walk goes on. The cursor handed out is the last key listed, so
	 * pages under these filters are as stable as without them. */
	timed = index_of[o->state] == DB_DONE || index_of[o->state] == DB_DEAD;
	if (timed && o->since_ms) {
		m2s_time_key(from, o->since_ms, 0);
		if (!slen || (slen == TIME_KEY_LEN &&
			      memcmp(start, from, TIME_KEY_LEN) < 0)) {
			k.mv_data = from;
			k.mv_size = TIME_KEY_LEN;
		}
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, k.mv_size ? MDB_SET_RANGE
								  : MDB_FIRST);
	     mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 8 || k.mv_size > sizeof(last))
			continue;
		if (timed && o->until_ms && k.mv_size == TIME_KEY_LEN &&
		    (int64_t)get_be64(k.mv_data) >= o->until_ms)
			break;
		if (slen && k.mv_size == slen &&
		    memcmp(k.mv_data, start, slen) == 0)
			continue; /* the previous page's last */
		if (index_of[o->state] == DB_READY && tid >= 0 &&
		    get_be16(k.mv_data) != tid)
			break;
		/* not matching, or unreadable (check() reports those) */
		if (list_match(q, txn, tasks, o, tid, now, &k, &r, NULL) !=
		    M2W_OK)
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
	mdb_cursor_close(tasks);
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

/* Pages on LMDB's free list (its database 0: each record an array of
 * page numbers, the first element their count). What a purge freed shows
 * here until new writes reuse it. */
static uint64_t free_pages(MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t n = 0;
	size_t c;
	int rc;

	if (mdb_cursor_open(txn, 0, &cur))
		return 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (v.mv_size >= sizeof(c)) {
			memcpy(&c, v.mv_data, sizeof(c));
			n += c;
		}
	mdb_cursor_close(cur);
	return n;
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
	k.mv_size = 6;
	k.mv_data = "purged";
	if (mdb_get(txn, q->db[DB_META], &k, &v) == 0 &&
	    v.mv_size == 8 * M2W_NSTATES)
		for (s = 0; s < M2W_NSTATES; s++)
			st->purged[s] = get_be64((unsigned char *)v.mv_data +
						 8 * s);
	k.mv_size = 13;
	k.mv_data = "daemon_status";
	if (mdb_get(txn, q->db[DB_META], &k, &v) == 0 &&
	    (st->daemon = malloc(v.mv_size + 1))) {
		memcpy(st->daemon, v.mv_data, v.mv_size);
		st->daemon[v.mv_size] = '\0';
	}
	if (mdb_stat(txn, q->db[DB_OUTBOX], &es) == 0)
		st->events_waiting = es.ms_entries;
	mdb_env_info(q->env, &info);
	mdb_env_stat(q->env, &es);
	st->map_size = info.me_mapsize;
	st->map_used = (uint64_t)(info.me_last_pgno + 1) * es.ms_psize;
	st->map_max = q->map_max;
	st->map_free = free_pages(txn) * es.ms_psize;
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
	free(st->daemon);
	st->daemon = NULL;
}

static int status_apply(struct wctx *c, void *arg)
{
	const char *json = arg;

	return m2s_ctx_put(c, DB_META, "daemon_status", 13, json, strlen(json),
			   0);
}

int m2w_queue_set_status(struct m2w_queue *q, const char *json, char *errbuf)
{
	struct op op = { .apply = status_apply, .arg = (void *)json,
			 .errbuf = errbuf };

	if (!json || strlen(json) > 4096)
		return m2w_fail(errbuf, M2W_EINVAL, "a status note of at most "
				"4096 bytes");
	return m2s_commit_run(q, &op);
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

/*
 * A bulk change (requeue, delete dead, purge) walks a time index a chunk
 * a transaction: scan_chunk collects up to CHUNK ids that `match` accepts
 * (1) or skips (0); -1 ends the walk, -(SCAN_ERR + err) ends it with an
 * error. It looks at SCAN_LOOK keys at most, so a filter that skips most
 * tasks still holds the writer lock only briefly: the walk goes on in the
 * next transaction. An apply may run more than once (commit.c replays a
 * round after map growth, or alone after another op poisoned it): each
 * run starts again from `from`, where the last committed chunk ended, and
 * the caller moves `from` on (scan_next) once the chunk is committed.
 */
#define SCAN_ERR 100
#define SCAN_LOOK 16             /* keys looked at per id a chunk may take */
struct scan {
	int db;
	unsigned char from[TIME_KEY_LEN]; /* the last key of the committed walk */
	int started;                      /* from is set */
	unsigned char at[TIME_KEY_LEN];   /* the last key of this chunk's walk */
	int at_set;
	int finished;                     /* this chunk reached the end */
	uint64_t ids[CHUNK];
	size_t n;
	size_t limit;                     /* ids a chunk at most; 0 = CHUNK */
};

static int scan_chunk(struct wctx *c, struct scan *s,
		      int (*match)(struct wctx *, const MDB_val *, void *),
		      void *arg)
{
	MDB_cursor *cur;
	MDB_val k = { TIME_KEY_LEN, s->at }, v;
	size_t looked = 0, limit = s->limit && s->limit < CHUNK ? s->limit
								   : CHUNK;
	int rc, m = 0;

	memcpy(s->at, s->from, TIME_KEY_LEN);
	s->at_set = s->started;
	s->finished = 0;
	s->n = 0;
	if ((rc = mdb_cursor_open(c->txn, c->q->db[s->db], &cur)))
		return m2s_ctx_mdb(c, rc, "scan");
	rc = mdb_cursor_get(cur, &k, &v, s->at_set ? MDB_SET_RANGE : MDB_FIRST);
	if (rc == 0 && s->at_set && memcmp(k.mv_data, s->at,
					   TIME_KEY_LEN) == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; rc == 0 && s->n < limit && looked++ < SCAN_LOOK * limit;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != TIME_KEY_LEN)
			continue;
		m = match(c, &k, arg);
		if (m < 0)
			break;
		memcpy(s->at, k.mv_data, TIME_KEY_LEN);
		s->at_set = 1;
		if (m)
			s->ids[s->n++] = get_be64((unsigned char *)k.mv_data + 8);
	}
	mdb_cursor_close(cur);
	s->finished = rc == MDB_NOTFOUND || m < 0;
	if (m < -1)
		return -m - SCAN_ERR;
	return rc && rc != MDB_NOTFOUND ? m2s_ctx_mdb(c, rc, "scan") : M2W_OK;
}

/* The chunk is committed: the next one starts after it. */
static void scan_next(struct scan *s)
{
	memcpy(s->from, s->at, TIME_KEY_LEN);
	s->started = s->at_set;
}

/* ------------------------------------------------ dead-task selection */

/*
 * What a struct m2w_requeue_opts selects, shared by requeue and delete
 * dead so that both take exactly the same tasks. Without ids: DB_DEAD
 * walked oldest death first, up to before_ms, through type, grep and
 * error. With ids: those tasks, checked all before any is touched.
 */
struct dead_sel {
	const struct m2w_requeue_opts *o;
	int tid;                 /* o->type's id; -1 any */
	size_t error_len;        /* strlen(o->error) */
	struct scan s;
};

static int dead_match(struct wctx *c, const MDB_val *k, void *arg)
{
	struct dead_sel *d = arg;
	const struct m2w_requeue_opts *o = d->o;
	struct rec r;
	int rc;

	if (o->before_ms && (int64_t)get_be64(k->mv_data) >= o->before_ms)
		return -1;
	rc = m2s_ctx_rec(c, get_be64((unsigned char *)k->mv_data + 8), &r);
	if (rc)
		return -(SCAN_ERR + (rc == M2W_ENOTFOUND ? M2W_ECORRUPT : rc));
	if (d->tid >= 0 && r.type_id != d->tid)
		return 0;
	if (o->grep && *o->grep && !mem_has(r.error, r.error_len, o->grep))
		return 0;
	if (o->error && (r.error_len != d->error_len ||
			 memcmp(r.error, o->error, r.error_len) != 0))
		return 0;
	return 1;
}

/* Sets d up for o. A type the store never saw has no dead tasks: the walk
 * is then finished before it starts. */
static int dead_sel_init(struct m2w_queue *q, struct dead_sel *d,
			 const struct m2w_requeue_opts *o, char *errbuf)
{
	MDB_txn *txn;
	int rc;

	memset(d, 0, sizeof(*d));
	d->o = o;
	d->tid = -1;
	d->s.db = DB_DEAD;
	d->error_len = o->error ? strlen(o->error) : 0;
	if (o->nids || !o->type)
		return M2W_OK;
	if ((rc = m2s_read_begin(q, &txn, errbuf)))
		return rc;
	rc = lookup_type(q, txn, o->type, &d->tid);
	m2s_read_end(q, txn);
	if (!rc && d->tid < 0)
		d->s.finished = 1;
	return rc;
}

/* Tasks ids[0..n) may all be taken: dead, or with `force` (requeue's)
 * anything but leased or waiting. Else M2W_ESTATE (or M2W_ENOTFOUND)
 * naming the first that may not. */
static int dead_ids_check(struct wctx *c, const uint64_t *ids, size_t n,
			  int can_force, int force)
{
	struct rec r;
	size_t i;
	int rc, movable;

	for (i = 0; i < n; i++) {
		if ((rc = m2s_ctx_rec(c, ids[i], &r)))
			return rc;
		movable = can_force && r.state != M2W_LEASED &&
			  r.state != M2W_WAITING;
		if (r.state == M2W_DEAD || (movable && force))
			continue;
		return m2w_fail(c->errbuf, M2W_ESTATE,
				"task %llu is %s, not dead%s",
				(unsigned long long)r.id,
				m2w_state_name(r.state),
				movable ? ": use force" : "");
	}
	return M2W_OK;
}

/* ------------------------------------------------------------- requeue */

struct requeue_arg {
	struct dead_sel d;
	uint64_t *ids;           /* taken in committed chunks */
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

static int note_ids(struct requeue_arg *a, const uint64_t *ids, size_t n)
{
	if (a->nids + n > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		uint64_t *g;

		if (cap < a->nids + n)
			cap = a->nids + n;
		if (!(g = realloc(a->ids, cap * sizeof(*g))))
			return M2W_ENOMEM;
		a->ids = g;
		a->cap = cap;
	}
	if (n)
		memcpy(a->ids + a->nids, ids, n * sizeof(*ids));
	a->nids += n;
	return M2W_OK;
}

static int requeue_apply(struct wctx *c, void *arg)
{
	struct requeue_arg *a = arg;
	const struct m2w_requeue_opts *o = a->d.o;
	const uint64_t *ids = o->ids;
	size_t n = o->nids, i;
	struct rec r;
	int rc;

	if (n) { /* by id: all checked first, then all moved */
		if ((rc = dead_ids_check(c, ids, n, 1, o->force)))
			return rc;
	} else {
		if ((rc = scan_chunk(c, &a->d.s, dead_match, &a->d)))
			return rc;
		ids = a->d.s.ids;
		n = a->d.s.n;
	}
	for (i = 0; i < n && !o->dry_run; i++)
		if ((rc = m2s_ctx_rec(c, ids[i], &r)) ||
		    (rc = requeue_task(c, &r, o->keep_attempts)))
			return rc;
	return M2W_OK;
}

int m2w_queue_requeue(struct m2w_queue *q, const struct m2w_requeue_opts *o,
		      size_t *count, uint64_t **ids_out, char *errbuf)
{
	struct requeue_arg a;
	struct op op = { .apply = requeue_apply, .arg = &a, .errbuf = errbuf };
	int rc;

	memset(&a, 0, sizeof(a));
	*count = 0;
	if (ids_out)
		*ids_out = NULL;
	if ((rc = dead_sel_init(q, &a.d, o, errbuf)))
		return rc;
	while (!a.d.s.finished) {
		if ((rc = m2s_commit_run(q, &op)) != M2W_OK)
			break;
		if (o->nids) {
			rc = note_ids(&a, o->ids, o->nids);
			break;
		}
		scan_next(&a.d.s);
		if ((rc = note_ids(&a, a.d.s.ids, a.d.s.n)))
			break;
	}
	if (rc == M2W_ENOMEM)
		m2w_fail(errbuf, rc, "out of memory (%zu tasks moved)",
			 a.nids);
	*count = a.nids;
	if (ids_out && !rc)
		*ids_out = a.ids;
	else
		free(a.ids);
	return rc;
}

/* --------------------------------------------------------- delete dead */

struct delete_dead_arg {
	struct dead_sel d;
	const uint64_t *ids;     /* the selection's ids, sorted, each once */
	size_t nids;
};

static int delete_dead_apply(struct wctx *c, void *arg)
{
	struct delete_dead_arg *a = arg;
	const uint64_t *ids = a->ids;
	size_t n = a->nids, i;
	struct rec r;
	int rc;

	if (n) { /* by id: all checked first, then all deleted */
		if ((rc = dead_ids_check(c, ids, n, 0, 0)))
			return rc;
	} else {
		if ((rc = scan_chunk(c, &a->d.s, dead_match, &a->d)))
			return rc;
		ids = a->d.s.ids;
		n = a->d.s.n;
	}
	for (i = 0; i < n && !a->d.o->dry_run; i++)
		if ((rc = m2s_ctx_rec(c, ids[i], &r)) ||
		    (rc = remove_task(c, &r)))
			return rc;
	return M2W_OK;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int m2w_queue_delete_dead(struct m2w_queue *q,
			  const struct m2w_requeue_opts *sel, size_t *count,
			  char *errbuf)
{
	struct delete_dead_arg a;
	struct op op = { .apply = delete_dead_apply, .arg = &a,
			 .errbuf = errbuf };
	uint64_t *ids = NULL;
	size_t i, n = 0;
	int rc;

	*count = 0;
	memset(&a, 0, sizeof(a));
	if ((rc = dead_sel_init(q, &a.d, sel, errbuf)))
		return rc;
	if (sel->nids) { /* a task named twice is deleted (and counted) once */
		if (!(ids = malloc(sel->nids * sizeof(*ids))))
			return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
		memcpy(ids, sel->ids, sel->nids * sizeof(*ids));
		qsort(ids, sel->nids, sizeof(*ids), u64_cmp);
		for (i = 0; i < sel->nids; i++)
			if (!n || ids[i] != ids[n - 1])
				ids[n++] = ids[i];
		a.ids = ids;
		a.nids = n;
	}
	while (!a.d.s.finished) {
		if ((rc = m2s_commit_run(q, &op)) != M2W_OK)
			break;
		if (n) {
			*count = n;
			break;
		}
		scan_next(&a.d.s);
		*count += a.d.s.n;
	}
	free(ids);
	return rc;
}

/* --------------------------------------------------------------- purge */

/*
 * A purge walks DB_DONE (done and superseded tasks) or DB_DEAD oldest end
 * first and stops at the first task that ended at or after `before`. Its
 * position lives in the caller's struct m2w_purge_walk, so the daemon's
 * retention goes on where its last round stopped instead of walking again
 * past every done task it keeps (superseded tasks are kept for less time
 * than done ones, in the same index). What was purged is counted in meta
 * "purged" (a big-endian u64 per state) in the same transaction.
 */
struct purge_arg {
	struct m2w_purge_walk *w;
	int64_t before;
	struct scan s;
};

static int purge_match(struct wctx *c, const MDB_val *k, void *arg)
{
	struct purge_arg *a = arg;
	struct rec r;
	int rc;

	if ((int64_t)get_be64(k->mv_data) >= a->before)
		return -1;
	rc = m2s_ctx_rec(c, get_be64((unsigned char *)k->mv_data + 8), &r);
	if (rc)
		return -(SCAN_ERR + (rc == M2W_ENOTFOUND ? M2W_ECORRUPT : rc));
	return r.state == a->w->state;
}

static int count_purged(struct wctx *c, int state, size_t n)
{
	unsigned char buf[8 * M2W_NSTATES];
	MDB_val v;
	int rc = m2s_ctx_get(c, DB_META, "purged", 6, &v);

	if (rc && rc != M2W_ENOTFOUND)
		return rc;
	memset(buf, 0, sizeof(buf));
	if (rc == M2W_OK && v.mv_size == sizeof(buf))
		memcpy(buf, v.mv_data, sizeof(buf));
	put_be64(buf + 8 * state, get_be64(buf + 8 * state) + n);
	return m2s_ctx_put(c, DB_META, "purged", 6, buf, sizeof(buf), 0);
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
	return a->s.n ? count_purged(c, a->w->state, a->s.n) : M2W_OK;
}

int m2w_queue_purge_step(struct m2w_queue *q, struct m2w_purge_walk *w,
			 int64_t before_ms, size_t max, size_t *count,
			 int *more, char *errbuf)
{
	struct purge_arg a;
	struct op op = { .apply = purge_apply, .arg = &a, .errbuf = errbuf };
	int rc;

	*count = 0;
	*more = 0;
	if (w->state != M2W_DONE && w->state != M2W_SUPERSEDED &&
	    w->state != M2W_DEAD)
		return m2w_fail(errbuf, M2W_EINVAL,
				"purge takes done, superseded or dead tasks");
	memset(&a, 0, sizeof(a));
	a.w = w;
	a.before = before_ms;
	a.s.db = w->state == M2W_DEAD ? DB_DEAD : DB_DONE;
	a.s.limit = max;
	memcpy(a.s.from, w->at, TIME_KEY_LEN);
	a.s.started = w->started;
	if ((rc = m2s_commit_run(q, &op)) != M2W_OK)
		return rc;
	scan_next(&a.s);
	memcpy(w->at, a.s.from, TIME_KEY_LEN);
	w->started = a.s.started;
	*count = a.s.n;
	*more = !a.s.finished;
	return M2W_OK;
}

int m2w_queue_purge(struct m2w_queue *q, int state, int64_t before_ms,
		    size_t *count, char *errbuf)
{
	struct m2w_purge_walk w;
	size_t n;
	int more = 1, rc = M2W_OK;

	*count = 0;
	memset(&w, 0, sizeof(w));
	w.state = state;
	while (more && !(rc = m2w_queue_purge_step(q, &w, before_ms, 0, &n,
						    &more, errbuf)))
		*count += n;
	return rc;
}

/* --------------------------------------------------------- dead groups */

/*
 * Dead letters grouped by type and exact last error, in one read
 * transaction over DB_DEAD from since_ms on (oldest death first, so the
 * last task a group meets is its newest). The groups live in one array in
 * the order first met, their errors back to back in one arena, and an
 * open-addressing table of indexes into the array finds them again:
 * memory grows with the distinct errors, never with the tasks.
 */
#define GROUPS_DEFAULT 100

struct dgroup {
	uint32_t hash;
	uint16_t type_id;
	int status;
	size_t off, len;         /* the error, in the arena */
	uint64_t count, example;
	int64_t first, last;
};

struct dgroups {
	struct dgroup *g;
	size_t n, cap;
	uint32_t *slot;          /* index into g + 1; 0 is empty */
	size_t nslot;            /* a power of 2, at least twice n */
	char *arena;
	size_t used, size;
};

static uint32_t dg_hash(uint16_t type, const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t i;

	h = (h ^ (type >> 8)) * 16777619u;
	h = (h ^ (type & 0xff)) * 16777619u;
	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static int dg_rehash(struct dgroups *t)
{
	size_t nslot = t->nslot ? t->nslot * 2 : 256, mask = nslot - 1, i, j;
	uint32_t *slot = calloc(nslot, sizeof(*slot));

	if (!slot)
		return M2W_ENOMEM;
	for (i = 0; i < t->n; i++) {
		for (j = t->g[i].hash & mask; slot[j]; j = (j + 1) & mask)
			;
		slot[j] = (uint32_t)(i + 1);
	}
	free(t->slot);
	t->slot = slot;
	t->nslot = nslot;
	return M2W_OK;
}

/* The group of (type, error), made when new; NULL when out of memory. */
static struct dgroup *dg_find(struct dgroups *t, uint16_t type,
			      const char *err, size_t len)
{
	uint32_t h = dg_hash(type, err, len);
	struct dgroup *g;
	size_t mask, j;

	if ((t->n + 1) * 2 > t->nslot && dg_rehash(t))
		return NULL;
	mask = t->nslot - 1;
	for (j = h & mask; t->slot[j]; j = (j + 1) & mask) {
		g = &t->g[t->slot[j] - 1];
		if (g->hash == h && g->type_id == type && g->len == len &&
		    (!len || (t->arena && memcmp(t->arena + g->off, err,
						  len) == 0)))
			return g;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;

		if (!(g = realloc(t->g, cap * sizeof(*g))))
			return NULL;
		t->g = g;
		t->cap = cap;
	}
	if (t->used + len > t->size) {
		size_t size = t->size ? t->size * 2 : 16384;
		char *a;

		while (size < t->used + len)
			size *= 2;
		if (!(a = realloc(t->arena, size)))
			return NULL;
		t->arena = a;
		t->size = size;
	}
	if (len)
		memcpy(t->arena + t->used, err, len);
	g = &t->g[t->n];
	memset(g, 0, sizeof(*g));
	g->hash = h;
	g->type_id = type;
	g->off = t->used;
	g->len = len;
	t->used += len;
	t->slot[j] = (uint32_t)++t->n;
	return g;
}

/* Largest count first, then the newest death, then the newest task. */
static int dg_cmp(const void *a, const void *b)
{
	const struct dgroup *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if (x->last != y->last)
		return x->last > y->last ? -1 : 1;
	return x->example > y->example ? -1 : x->example < y->example;
}

/* The first n groups of t (sorted) as the public array, with their type
 * names read in txn. */
static int dg_out(struct m2w_queue *q, MDB_txn *txn, const struct dgroups *t,
		  size_t n, struct m2w_dead_group **out)
{
	struct m2w_dead_group *o;
	size_t i;

	if (!n)
		return M2W_OK;
	if (!(o = calloc(n, sizeof(*o))))
		return M2W_ENOMEM;
	for (i = 0; i < n; i++) {
		const struct dgroup *g = &t->g[i];

		if (!(o[i].error = malloc(g->len + 1))) {
			m2w_dead_groups_free(o, i);
			return M2W_ENOMEM;
		}
		if (g->len)
			memcpy(o[i].error, t->arena + g->off, g->len);
		o[i].error[g->len] = '\0';
		m2s_read_type_name(q, txn, g->type_id, o[i].type);
		o[i].count = g->count;
		o[i].first_ms = g->first;
		o[i].last_ms = g->last;
		o[i].example_id = g->example;
		o[i].last_status = g->status;
	}
	*out = o;
	return M2W_OK;
}

int m2w_queue_dead_groups(struct m2w_queue *q, const struct m2w_group_opts *o,
			  struct m2w_dead_group **out, size_t *n,
			  uint64_t *scanned, char *errbuf)
{
	static const struct m2w_group_opts none;
	unsigned char from[TIME_KEY_LEN];
	struct dgroups t;
	struct dgroup *g;
	uint64_t seen = 0;
	MDB_txn *txn;
	MDB_cursor *cur, *tasks;
	MDB_val k = { TIME_KEY_LEN, from }, v;
	struct rec r;
	size_t limit;
	int tid = -1, rc, mrc;

	*out = NULL;
	*n = 0;
	if (scanned)
		*scanned = 0;
	if (!o)
		o = &none;
	limit = o->limit ? o->limit : GROUPS_DEFAULT;
	memset(&t, 0, sizeof(t));
	if ((rc = m2s_read_begin(q, &txn, errbuf)))
		return rc;
	if (o->type && (rc = lookup_type(q, txn, o->type, &tid)) == M2W_OK &&
	    tid < 0)
		goto out; /* no such type: nothing dead of it */
	if (rc)
		goto out;
	if ((mrc = mdb_cursor_open(txn, q->db[DB_TASKS], &tasks))) {
		rc = m2s_mdb_err(errbuf, mrc, "tasks");
		goto out;
	}
	if ((mrc = mdb_cursor_open(txn, q->db[DB_DEAD], &cur))) {
		mdb_cursor_close(tasks);
		rc = m2s_mdb_err(errbuf, mrc, "dead");
		goto out;
	}
	m2s_time_key(from, o->since_ms, 0);
	memset(&r, 0, sizeof(r));
	for (mrc = mdb_cursor_get(cur, &k, &v, o->since_ms ? MDB_SET_RANGE
							   : MDB_FIRST);
	     mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t id;

		if (k.mv_size != TIME_KEY_LEN)
			continue;
		id = get_be64((unsigned char *)k.mv_data + 8);
		/* unreadable, or not dead after all: check() reports those */
		if (read_rec(q, txn, tasks, id, &r, NULL) ||
		    r.state != M2W_DEAD ||
		    (tid >= 0 && r.type_id != tid))
			continue;
		if (!(g = dg_find(&t, r.type_id, r.error, r.error_len))) {
			rc = m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
			break;
		}
		if (!g->count++)
			g->first = (int64_t)get_be64(k.mv_data);
		g->last = (int64_t)get_be64(k.mv_data);
		g->example = id;
		g->status = r.last_status;
		seen++;
	}
	mdb_cursor_close(cur);
	mdb_cursor_close(tasks);
	if (!rc && mrc && mrc != MDB_NOTFOUND)
		rc = m2s_mdb_err(errbuf, mrc, "dead");
	if (rc)
		goto out;
	if (t.n)
		qsort(t.g, t.n, sizeof(*t.g), dg_cmp);
	if ((rc = dg_out(q, txn, &t, t.n < limit ? t.n : limit, out)))
		m2w_fail(errbuf, rc, "out of memory");
	else
		*n = t.n < limit ? t.n : limit;
	if (scanned && !rc)
		*scanned = seen;
out:
	m2s_read_end(q, txn);
	free(t.g);
	free(t.slot);
	free(t.arena);
	return rc;
}

void m2w_dead_groups_free(struct m2w_dead_group *g, size_t n)
{
	size_t i;

	if (!g)
		return;
	for (i = 0; i < n; i++)
		free(g[i].error);
	free(g);
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
	if (rc == 0 && m2s_sync_path(file) != 0)
		rc = errno;
	/* data.mdb's name in the copy durable before the copy gets its name:
	 * else a power cut could leave the backup's directory without it */
	if (rc == 0 && m2s_sync_path(tmp) != 0)
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
	m2s_sync_path(slash ? parent : ".");
	return M2W_OK;
}
