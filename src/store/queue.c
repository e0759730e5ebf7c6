/*
 * queue.c - the hot path: enqueue, lease, settle, reap.
 *
 * Each public call validates its input in the caller's thread (JSON parsing
 * and the like run in parallel), then hands one op to group commit
 * (commit.c) and returns once that op's transaction is durable.
 *
 * Leasing is a cursor seek per type on the `ready` index
 * (be16 type | be64 next_run | be64 id): whatever the depth, the next task
 * of a type is the first key of its range, so paused types cost nothing and
 * no lease walks past blocked tasks (only the head of an ordering group is
 * ever in `ready`). The types are visited round-robin, each with a fair
 * share of the requested count.
 *
 * Every state change moves the task between indexes in the same
 * transaction as its record, and bumps the per-type counters, so indexes
 * and counters never disagree (check.c verifies it).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "internal.h"

#define SOURCE_MAX REC_SOURCE_MAX
#define REAP_PER_LEASE 64

/* A history entry for task r (its attempt counter as now). */
static int ctx_history(struct wctx *c, const struct rec *r, int outcome,
		       int status, int64_t duration, const char *msg);

static size_t cut_len(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	return n > max ? max : n;
}

/* -------------------------------------------------------------- enqueue */

static int valid_json(const char *s, size_t len, char *why, size_t whylen)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error err;
	size_t end;
	int ok = 0;

	tok = json_tokener_new();
	if (!tok) {
		snprintf(why, whylen, "out of memory");
		return 0;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, s, (int)len);
	err = json_tokener_get_error(tok);
	end = (size_t)tok->char_offset;
	if (!obj && err == json_tokener_continue)
		snprintf(why, whylen, "payload is not valid JSON: ends early");
	else if (!obj)
		snprintf(why, whylen, "payload is not valid JSON: %s at byte %zu",
			 json_tokener_error_desc(err), end);
	else if (!json_object_is_type(obj, json_type_object) &&
		 !json_object_is_type(obj, json_type_array))
		snprintf(why, whylen, "payload must be a JSON object or array");
	else {
		while (end < len && (s[end] == ' ' || s[end] == '\t' ||
				     s[end] == '\n' || s[end] == '\r'))
			end++;
		if (end < len)
			snprintf(why, whylen, "payload is not valid JSON: "
				 "extra data at byte %zu", end);
		else
			ok = 1;
	}
	json_object_put(obj);
	json_tokener_free(tok);
	return ok;
}

static int check_new(struct m2w_new_task *t, char *why, size_t whylen)
{
	if (!m2s_valid_type_name(t->type)) {
		snprintf(why, whylen, "bad type name \"%.40s\": use 1-%d of "
			 "a-z 0-9 _ . -", t->type ? t->type : "", M2W_TYPE_MAX);
		return 0;
	}
	if (!t->payload) {
		snprintf(why, whylen, "no payload");
		return 0;
	}
	if (!t->payload_len)
		t->payload_len = strlen(t->payload);
	if (t->payload_len > M2W_PAYLOAD_MAX) {
		snprintf(why, whylen, "payload of %zu bytes is over the %u limit",
			 t->payload_len, M2W_PAYLOAD_MAX);
		return 0;
	}
	if (t->idem_key && strlen(t->idem_key) > M2W_KEY_MAX) {
		snprintf(why, whylen, "idempotency key longer than %d bytes",
			 M2W_KEY_MAX);
		return 0;
	}
	if (t->group_key && strlen(t->group_key) > M2W_KEY_MAX) {
		snprintf(why, whylen, "ordering key longer than %d bytes",
			 M2W_KEY_MAX);
		return 0;
	}
	if (t->source && strlen(t->source) > SOURCE_MAX) {
		snprintf(why, whylen, "source longer than %d bytes", SOURCE_MAX);
		return 0;
	}
	if (t->max_attempts > 0xffff) {
		snprintf(why, whylen, "max_attempts above 65535");
		return 0;
	}
	return t->loaded || valid_json(t->payload, t->payload_len, why, whylen);
}

struct enq_arg {
	struct m2w_new_task *t;
	size_t n;
	const struct m2w_file_info *file;
};

#define FILE_REC_FIXED 48

static int put_file(struct wctx *c, const struct m2w_file_info *f)
{
	unsigned char v[FILE_REC_FIXED + sizeof(f->name)];
	size_t klen = strnlen(f->fingerprint, sizeof(f->fingerprint));
	size_t nlen = strnlen(f->name, sizeof(f->name) - 1);

	put_be64(v, f->rows);
	put_be64(v + 8, f->accepted);
	put_be64(v + 16, f->duplicates);
	put_be64(v + 24, f->rejected);
	put_be64(v + 32, (uint64_t)f->first_ms);
	put_be64(v + 40, (uint64_t)f->finished_ms);
	memcpy(v + FILE_REC_FIXED, f->name, nlen);
	return m2s_ctx_put(c, DB_FILES, f->fingerprint, klen, v,
			   FILE_REC_FIXED + nlen, 0);
}

int m2w_queue_file_get(struct m2w_queue *q, const char *fingerprint,
		       struct m2w_file_info *out, char *errbuf)
{
	MDB_txn *txn;
	MDB_val k, v;
	const unsigned char *p;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!fingerprint || !*fingerprint ||
	    strlen(fingerprint) >= sizeof(out->fingerprint))
		return m2w_fail(errbuf, M2W_EINVAL, "bad file fingerprint");
	if ((rc = m2s_read_begin(q, &txn, errbuf)))
		return rc;
	k.mv_size = strlen(fingerprint);
	k.mv_data = (void *)fingerprint;
	rc = mdb_get(txn, q->db[DB_FILES], &k, &v);
	if (rc == 0 && (v.mv_size < FILE_REC_FIXED ||
			v.mv_size >= FILE_REC_FIXED + sizeof(out->name)))
		rc = m2w_fail(errbuf, M2W_ECORRUPT, "file %s: bad record",
			      fingerprint);
	else if (rc == MDB_NOTFOUND)
		rc = m2w_fail(errbuf, M2W_ENOTFOUND, "file %s never seen",
			      fingerprint);
	else if (rc)
		rc = m2s_mdb_err(errbuf, rc, "files");
	else {
		p = v.mv_data;
		snprintf(out->fingerprint, sizeof(out->fingerprint), "%s",
			 fingerprint);
		out->rows = get_be64(p);
		out->accepted = get_be64(p + 8);
		out->duplicates = get_be64(p + 16);
		out->rejected = get_be64(p + 24);
		out->first_ms = (int64_t)get_be64(p + 32);
		out->finished_ms = (int64_t)get_be64(p + 40);
		memcpy(out->name, p + FILE_REC_FIXED, v.mv_size - FILE_REC_FIXED);
	}
	m2s_read_end(q, txn);
	return rc;
}

static int load_next_id(struct wctx *c)
{
	MDB_val v;
	int rc;

	if (c->next_id)
		return M2W_OK;
	rc = m2s_ctx_get(c, DB_META, "next_id", 7, &v);
	if (rc == M2W_ENOTFOUND) {
		c->next_id = 1;
		return M2W_OK;
	}
	if (rc == M2W_OK && v.mv_size != 8)
		return m2w_fail(c->errbuf, M2W_ECORRUPT, "meta: bad next_id");
	if (rc == M2W_OK)
		c->next_id = get_be64(v.mv_data);
	return rc;
}

static int enq_one(struct wctx *c, struct m2w_new_task *t)
{
	struct rec r;
	unsigned char idk[8];
	MDB_val v;
	int rc;

	if (t->idem_key && *t->idem_key) {
		rc = m2s_ctx_get(c, DB_KEYS, t->idem_key, strlen(t->idem_key),
				 &v);
		if (rc == M2W_OK && v.mv_size == 8) {
			t->id = get_be64(v.mv_data);
			t->duplicate = 1;
			return M2W_OK;
		}
		if (rc != M2W_ENOTFOUND)
			return rc ? rc : m2w_fail(c->errbuf, M2W_ECORRUPT,
						  "keys: bad entry");
	}
	memset(&r, 0, sizeof(r));
	if ((rc = m2s_ctx_type_id(c, t->type, 1, &r.type_id)) ||
	    (rc = load_next_id(c)))
		return rc;
	r.id = c->next_id++;
	c->next_id_dirty = 1;
	r.state = M2W_READY;
	r.flags = t->supersede == M2W_GROUP_NEWEST ? REC_SUPERSEDE
		  : t->supersede == M2W_GROUP_EXCLUSIVE ? REC_EXCLUSIVE : 0;
	r.max_attempts = t->max_attempts;
	r.created = r.updated = c->now;
	r.next_run = t->not_before_ms > c->now ? t->not_before_ms : c->now;
	r.idem = t->idem_key;
	r.idem_len = cut_len(t->idem_key, M2W_KEY_MAX);
	r.group = t->group_key;
	r.group_len = cut_len(t->group_key, M2W_KEY_MAX);
	r.source = t->source;
	r.source_len = cut_len(t->source, SOURCE_MAX);
	r.payload = t->payload;
	r.payload_len = t->payload_len;
	if (r.group_len && (rc = m2s_group_join(c, &r, 0)))
		return rc;
	if ((rc = m2s_ctx_rec_put(c, &r)) || (rc = m2s_ctx_index(c, &r)) ||
	    (rc = m2s_ctx_count(c, r.type_id, -1, r.state)))
		return rc;
	if (r.idem_len) {
		put_be64(idk, r.id);
		if ((rc = m2s_ctx_put(c, DB_KEYS, r.idem, r.idem_len, idk, 8,
				      0)))
			return rc;
	}
	t->id = r.id;
	return M2W_OK;
}

/* Free pages of the environment: the sum of the freelist's page lists, as
 * of the last commit. LMDB opens no cursor on the freelist in a write
 * transaction (EINVAL), so a read transaction of its own reads it (the
 * environment is MDB_NOTLS: a thread may hold both). */
static size_t free_pages(struct wctx *c)
{
	MDB_cursor *cur;
	MDB_txn *rt;
	MDB_val k, v;
	size_t n = 0;
	int rc;

	if (mdb_txn_begin(c->q->env, NULL, MDB_RDONLY, &rt))
		return 0;
	if (mdb_cursor_open(rt, 0 /* FREE_DBI */, &cur)) {
		mdb_txn_abort(rt);
		return 0;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (v.mv_size >= sizeof(size_t))
			n += *(const size_t *)v.mv_data; /* an IDL: count first */
	mdb_cursor_close(cur);
	mdb_txn_abort(rt);
	return n;
}

/* What finishing one stored task may still write: its history entry, its
 * done or dead index entry, its result event, the pages copied around
 * them. */
#define FINISH_COST 1024

/* Tasks not finished (ready, leased, waiting), from the type counters. */
static uint64_t unfinished(struct wctx *c)
{
	unsigned char k[3] = { 'i', 0, 0 };
	MDB_cursor *cur;
	MDB_val key = { 3, k }, v;
	int64_t n = 0;
	size_t i;
	int rc;

	if (mdb_cursor_open(c->txn, c->q->db[DB_TYPES], &cur))
		return 0;
	for (rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
	     rc == 0 && key.mv_size == 3 && *(char *)key.mv_data == 'i';
	     rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT))
		n += (int64_t)type_rec_unfinished(&v);
	mdb_cursor_close(cur);
	for (i = 0; i < c->ndelta; i++) /* this round's, not yet stored */
		n += c->delta[i].d[M2W_READY] + c->delta[i].d[M2W_LEASED] +
		     c->delta[i].d[M2W_WAITING];
	return n > 0 ? (uint64_t)n : 0;
}

/*
 * New work may fill the store to map_soft only, and less when the tasks
 * already stored need more than the rest to finish (FINISH_COST each): a
 * full store always has room to drain, and then for a purge. Below the
 * limit, MAP_FULL tells (commit.c grows the map no further for enqueues).
 * Once draining grew the map past it, count what is in use: high-water
 * mark less free pages.
 */
static int room_for_new_work(struct wctx *c)
{
	MDB_envinfo info;
	MDB_stat st;
	size_t used, limit = c->q->map_soft, disk = m2s_disk_free(c->q);
	uint64_t pending = unfinished(c);

	if (disk < STORE_DISK_RESERVE)
		return m2w_fail(c->errbuf, M2W_ENOSPC, "disk full: %zu KiB "
				"free; new tasks wait for %zu KiB (the rest is "
				"kept for finishing the tasks already stored)",
				disk >> 10, STORE_DISK_RESERVE >> 10);
	if (pending * FINISH_COST > c->q->map_max - c->q->map_soft)
		limit = pending * FINISH_COST < c->q->map_max
				? c->q->map_max - pending * FINISH_COST : 0;
	mdb_env_info(c->q->env, &info);
	if (info.me_mapsize <= limit)
		return M2W_OK;
	mdb_env_stat(c->q->env, &st);
	used = (info.me_last_pgno + 1 - free_pages(c)) * st.ms_psize;
	if (used < limit)
		return M2W_OK;
	return m2w_fail(c->errbuf, M2W_EFULL, "store full: %zu KiB in use; "
			"new tasks may use %zu KiB (the rest is kept for "
			"finishing the %" PRIu64 " tasks already stored)",
			used >> 10, limit >> 10, pending);
}

static int enq_apply(struct wctx *c, void *arg)
{
	struct enq_arg *a = arg;
	size_t i;
	int rc;

	if ((rc = room_for_new_work(c)))
		return rc;

	for (i = 0; i < a->n; i++) {
		a->t[i].id = 0;
		a->t[i].duplicate = 0;
	}
	for (i = 0; i < a->n; i++)
		if ((rc = enq_one(c, &a->t[i])) != M2W_OK)
			return rc;
	return a->file ? put_file(c, a->file) : M2W_OK;
}

int m2w_queue_enqueue(struct m2w_queue *q, struct m2w_new_task *tasks,
		      size_t n, char *errbuf)
{
	return m2w_queue_enqueue_file(q, tasks, n, NULL, errbuf);
}

int m2w_queue_enqueue_file(struct m2w_queue *q, struct m2w_new_task *tasks,
			   size_t n, const struct m2w_file_info *file,
			   char *errbuf)
{
	struct enq_arg a = { tasks, n, file };
	struct op op = { .apply = enq_apply, .arg = &a, .new_work = 1,
			  .errbuf = errbuf };
	char why[M2W_ERRBUF_SIZE - 32];
	size_t i, bad = 0;

	for (i = 0; i < n; i++) {
		tasks[i].err = M2W_OK;
		if (!check_new(&tasks[i], why, sizeof(why))) {
			tasks[i].err = M2W_EINVAL;
			if (!bad++)
				m2w_fail(errbuf, M2W_EINVAL, "task %zu: %s",
					 i + 1, why);
		}
	}
	if (file && (!file->fingerprint[0] ||
		     strnlen(file->fingerprint, sizeof(file->fingerprint)) ==
			     sizeof(file->fingerprint)))
		return m2w_fail(errbuf, M2W_EINVAL, "bad file fingerprint");
	if (bad)
		return M2W_EINVAL;
	if (!n && !file)
		return M2W_OK;
	return m2s_commit_run(q, &op);
}

/* ----------------------------------------------------------- to ready */

/*
 * Leased task r goes back to ready at r->next_run (already set), unless a
 * newer task of its group supersedes it. r is stored. The caller has
 * adjusted attempts and history.
 */
static int back_to_ready(struct wctx *c, struct rec *r)
{
	int newer = 0, aside = 0, rc;
	int from = r->state;

	if ((rc = m2s_ctx_unindex(c, r)))
		return rc;
	/* an exclusive group goes on without it while it waits */
	if ((r->flags & REC_EXCLUSIVE) && r->group_len &&
	    r->next_run > c->now) {
		r->updated = c->now;
		if ((rc = m2s_group_step_aside(c, r, &aside)))
			return rc;
		if (aside)
			return (rc = m2s_ctx_rec_put(c, r)) ? rc
			       : m2s_ctx_moved(c, r, from);
	}
	if (r->group_len && (rc = m2s_group_newer_waits(c, r, &newer)))
		return rc;
	r->state = newer ? M2W_SUPERSEDED : M2W_READY;
	r->updated = c->now;
	if ((rc = m2s_ctx_index(c, r)) || (rc = m2s_ctx_rec_put(c, r)) ||
	    (rc = m2s_ctx_moved(c, r, from)))
		return rc;
	return newer ? m2s_group_advance(c, r) : M2W_OK;
}

/* Leased (or ready) task r ends in `state` (DONE or DEAD). */
static int finish(struct wctx *c, struct rec *r, int state)
{
	int from = r->state, rc;

	if ((rc = m2s_ctx_unindex(c, r)))
		return rc;
	r->state = state;
	r->updated = c->now;
	if ((rc = m2s_ctx_index(c, r)) || (rc = m2s_ctx_rec_put(c, r)) ||
	    (rc = m2s_ctx_moved(c, r, from)))
		return rc;
	return r->group_len ? m2s_group_advance(c, r) : M2W_OK;
}

/* ------------------------------------------------------------------ reap */

/*
 * Leases that expire at or before `until` go back to ready, or to dead
 * when their attempts are used up: the attempt they were leased for stays
 * counted. `why` goes into the history (and the error of a task that dies).
 */
static int reap_apply_n(struct wctx *c, size_t max, int64_t until,
			const char *why, size_t *count)
{
	unsigned char keys[REAP_PER_LEASE][TIME_KEY_LEN], after[TIME_KEY_LEN];
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n = 0, i, seen = 0;
	char msg[128];
	struct rec r;
	int rc, resume = 0;

	*count = 0;
	for (;;) {
		if ((rc = mdb_cursor_open(c->txn, c->q->db[DB_LEASES], &cur)))
			return m2s_ctx_mdb(c, rc, "leases");
		n = 0;
		k.mv_size = TIME_KEY_LEN;
		k.mv_data = after;
		rc = mdb_cursor_get(cur, &k, &v, resume ? MDB_SET_RANGE
							: MDB_FIRST);
		if (rc == 0 && resume && memcmp(k.mv_data, after,
						TIME_KEY_LEN) == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		while (rc == 0 && n < REAP_PER_LEASE && seen + n < max &&
		       k.mv_size == TIME_KEY_LEN &&
		       (int64_t)get_be64(k.mv_data) <= until) {
			memcpy(keys[n++], k.mv_data, TIME_KEY_LEN);
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(cur);
		if (rc && rc != MDB_NOTFOUND)
			return m2s_ctx_mdb(c, rc, "leases");
		if (n) {
			memcpy(after, keys[n - 1], TIME_KEY_LEN);
			resume = 1;
		}
		for (i = 0; i < n; i++) {
			/* unreadable: left for check() (see lease_one) */
			rc = m2s_ctx_rec(c, get_be64(keys[i] + 8), &r);
			if (rc == M2W_ECORRUPT || rc == M2W_ENOTFOUND ||
			    (!rc && r.state != M2W_LEASED))
				continue;
			if (rc)
				return rc;
			if (r.attempts >= m2s_ctx_max_attempts(c, &r)) {
				snprintf(msg, sizeof(msg),
					 "%s on attempt %u of %u", why,
					 r.attempts,
					 m2s_ctx_max_attempts(c, &r));
				if ((rc = ctx_history(c, &r, M2W_OUTCOME_EXPIRED,
						      0, 0, msg)))
					return rc;
				r.error = msg;
				r.error_len = strlen(msg);
				r.last_status = 0;
				rc = finish(c, &r, M2W_DEAD);
			} else {
				if ((rc = ctx_history(c, &r, M2W_OUTCOME_EXPIRED,
						      0, 0, why)))
					return rc;
				r.next_run = c->now;
				rc = back_to_ready(c, &r);
			}
			if (rc)
				return rc;
			(*count)++;
		}
		seen += n;
		if (n < REAP_PER_LEASE || seen >= max)
			return M2W_OK;
	}
}

#define EXPIRED_WHY "lease expired (worker crashed or hung?)"

struct reap_arg {
	int all;                 /* every lease, not only the expired ones */
	size_t count;
};

static int reap_apply(struct wctx *c, void *arg)
{
	struct reap_arg *a = arg;

	return a->all ? reap_apply_n(c, (size_t)-1, INT64_MAX, "released at "
				     "start: the process that leased it is "
				     "gone", &a->count)
		      : reap_apply_n(c, (size_t)-1, c->now, EXPIRED_WHY,
				     &a->count);
}

static int reap_run(struct m2w_queue *q, int all, size_t *reaped,
		    char *errbuf)
{
	struct reap_arg a = { all, 0 };
	struct op op = { .apply = reap_apply, .arg = &a, .errbuf = errbuf };
	int rc = m2s_commit_run(q, &op);

	if (reaped)
		*reaped = rc ? 0 : a.count;
	return rc;
}

int m2w_queue_reap(struct m2w_queue *q, size_t *reaped, char *errbuf)
{
	return reap_run(q, 0, reaped, errbuf);
}

int m2w_queue_release_stale(struct m2w_queue *q, size_t *released,
			    char *errbuf)
{
	if (released)
		*released = 0;
	if (q->lock_fd < 0)
		return m2w_fail(errbuf, M2W_ESTATE, "releasing every lease "
				"needs the store opened exclusive");
	return reap_run(q, 1, released, errbuf);
}

/* ----------------------------------------------------------------- lease */

struct lease_arg {
	const struct m2w_lease_opts *o;
	struct m2w_task **out;
	size_t n;
};

static int paused_all(struct wctx *c, int *yes)
{
	MDB_val v;
	int rc = m2s_ctx_get(c, DB_META, "paused_all", 10, &v);

	*yes = rc == M2W_OK && v.mv_size == 1 && *(char *)v.mv_data == 1;
	return rc == M2W_ENOTFOUND ? M2W_OK : rc;
}

static int wanted(const struct m2w_lease_opts *o, const char *name)
{
	size_t i;

	if (!o->types)
		return 1;
	for (i = 0; i < o->ntypes; i++)
		if (strcmp(o->types[i], name) == 0)
			return 1;
	return 0;
}

/* The ids of types that may be leased now: not paused, wanted. */
static int lease_types(struct wctx *c, const struct m2w_lease_opts *o,
		       uint16_t **ids, size_t *n)
{
	MDB_cursor *cur;
	MDB_val k = { 1, "i" }, v;
	char name[M2W_TYPE_MAX + 1];
	uint16_t *out = NULL, *grown;
	size_t cap = 0;
	int rc;

	*n = 0;
	if ((rc = mdb_cursor_open(c->txn, c->q->db[DB_TYPES], &cur)))
		return m2s_ctx_mdb(c, rc, "types");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size == 3 && *(char *)k.mv_data == 'i';
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t len = v.mv_size - (2 + 8 * M2W_NSTATES);

		if (v.mv_size < 2 + 8 * M2W_NSTATES || len > M2W_TYPE_MAX ||
		    *(unsigned char *)v.mv_data)
			continue; /* paused (or damaged: check() reports it) */
		memcpy(name, (char *)v.mv_data + 2 + 8 * M2W_NSTATES, len);
		name[len] = '\0';
		if (!wanted(o, name))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			grown = realloc(out, cap * sizeof(*out));
			if (!grown) {
				mdb_cursor_close(cur);
				free(out);
				return m2w_fail(c->errbuf, M2W_ENOMEM,
						"out of memory");
			}
			out = grown;
		}
		out[(*n)++] = get_be16((unsigned char *)k.mv_data + 1);
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND) {
		free(out);
		return m2s_ctx_mdb(c, rc, "types");
	}
	*ids = out;
	return M2W_OK;
}

/* Collects up to `quota` ready ids of type `type` into ids[*n...]. */
static int ready_of_type(struct wctx *c, uint16_t type, size_t quota,
			 uint64_t *ids, size_t *n)
{
	unsigned char key[READY_KEY_LEN];
	MDB_cursor *cur;
	MDB_val k = { READY_KEY_LEN, key }, v;
	int rc;

	m2s_ready_key(key, type, 0, 0);
	if ((rc = mdb_cursor_open(c->txn, c->q->db[DB_READY], &cur)))
		return m2s_ctx_mdb(c, rc, "ready");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && quota > 0 && k.mv_size == READY_KEY_LEN &&
	     get_be16(k.mv_data) == type &&
	     (int64_t)get_be64((unsigned char *)k.mv_data + 2) <= c->now;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ids[(*n)++] = get_be64((unsigned char *)k.mv_data + 10);
		quota--;
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? m2s_ctx_mdb(c, rc, "ready") : M2W_OK;
}

static int lease_one(struct wctx *c, struct lease_arg *a, uint64_t id)
{
	char name[M2W_TYPE_MAX + 1];
	struct rec r;
	int64_t ms = a->o->lease_ms > 0 ? a->o->lease_ms : 60000;
	int rc;

	/* A record that cannot be read, or disagrees with the index, is left
	 * alone for check() to report: it must not stop the whole queue. */
	if ((rc = m2s_ctx_rec(c, id, &r)) == M2W_ECORRUPT ||
	    rc == M2W_ENOTFOUND || (!rc && r.state != M2W_READY))
		return M2W_OK;
	if (rc)
		return rc;
	if ((rc = m2s_ctx_type_name(c, r.type_id, name)) ||
	    (rc = m2s_ctx_unindex(c, &r)))
		return rc;
	r.state = M2W_LEASED;
	r.attempts++;
	do
		r.token = m2s_ctx_random(c);
	while (!r.token);
	r.lease_expiry = c->now + ms;
	r.updated = c->now;
	/* copy out before the put: r's strings point into the old value */
	a->out[a->n] = m2s_rec_to_task(&r, name, c->now);
	if (!a->out[a->n])
		return m2w_fail(c->errbuf, M2W_ENOMEM, "out of memory");
	a->n++;
	if ((rc = m2s_ctx_rec_put(c, &r)) || (rc = m2s_ctx_index(c, &r)))
		return rc;
	return m2s_ctx_count(c, r.type_id, M2W_READY, M2W_LEASED);
}

static int lease_apply(struct wctx *c, void *arg)
{
	struct lease_arg *a = arg;
	uint16_t *types = NULL;
	uint64_t *ids = NULL;
	size_t ntypes, nids = 0, reaped, i, k, start;
	int paused, rc;

	m2w_task_list_free(a->out, a->n); /* a replayed round */
	a->out = NULL;
	a->n = 0;
	if ((rc = reap_apply_n(c, REAP_PER_LEASE, c->now, EXPIRED_WHY,
			       &reaped)) ||
	    (rc = paused_all(c, &paused)))
		return rc;
	if (paused)
		return M2W_OK;
	if ((rc = lease_types(c, a->o, &types, &ntypes)) || !ntypes)
		return rc;
	ids = malloc(a->o->max * sizeof(*ids));
	a->out = calloc(a->o->max, sizeof(*a->out));
	if (!ids || !a->out) {
		rc = m2w_fail(c->errbuf, M2W_ENOMEM, "out of memory");
		goto out;
	}
	start = c->q->rr++;
	for (k = 0; k < ntypes && nids < a->o->max; k++) {
		size_t left = ntypes - k;
		size_t quota = (a->o->max - nids + left - 1) / left;

		rc = ready_of_type(c, types[(start + k) % ntypes], quota, ids,
				   &nids);
		if (rc)
			goto out;
	}
	for (i = 0; i < nids; i++)
		if ((rc = lease_one(c, a, ids[i])))
			break;
out:
	free(types);
	free(ids);
	if (!a->n) {
		free(a->out);
		a->out = NULL;
	}
	return rc;
}

int m2w_queue_lease(struct m2w_queue *q, const struct m2w_lease_opts *opts,
		    struct m2w_task ***out, size_t *n, char *errbuf)
{
	struct lease_arg a = { opts, NULL, 0 };
	struct op op = { .apply = lease_apply, .arg = &a, .errbuf = errbuf };
	int rc;

	*out = NULL;
	*n = 0;
	if (!opts || opts->max < 1)
		return m2w_fail(errbuf, M2W_EINVAL, "lease: max must be >= 1");
	rc = m2s_commit_run(q, &op);
	if (rc) {
		m2w_task_list_free(a.out, a.n);
		return rc;
	}
	*out = a.out;
	*n = a.n;
	return M2W_OK;
}

/* ---------------------------------------------------------------- settle */

struct settle_arg {
	struct m2w_settle *s;
	size_t n;
};

static int settle_one(struct wctx *c, struct m2w_settle *s)
{
	const struct m2w_policy *pol;
	char name[M2W_TYPE_MAX + 1];
	struct rec r;
	int64_t delay;
	int rc;

	if ((rc = m2s_ctx_rec(c, s->id, &r))) {
		s->err = rc;
		return rc == M2W_ENOTFOUND || rc == M2W_ECORRUPT ? M2W_OK : rc;
	}
	if (r.state != M2W_LEASED || r.token != s->token || !s->token) {
		s->err = m2w_fail(c->errbuf, M2W_ESTALE,
				  "task %llu: lease token is stale (task is %s)",
				  (unsigned long long)s->id,
				  m2w_state_name(r.state));
		s->state = r.state;
		return M2W_OK;
	}
	switch (s->kind) {
	case M2W_ACK:
		rc = ctx_history(c, &r, M2W_CLASS_OK, s->http_status,
				 s->duration_ms, NULL);
		c->note = s->message;
		c->result = s->result;
		if (!rc)
			rc = finish(c, &r, M2W_DONE);
		c->note = c->result = NULL;
		break;
	case M2W_FAIL:
		if ((rc = ctx_history(c, &r, s->cls, s->http_status,
				      s->duration_ms, s->message)))
			break;
		r.error = s->message;
		r.error_len = cut_len(s->message, M2W_MESSAGE_MAX);
		r.last_status = s->http_status > 0 && s->http_status < 1000
					? s->http_status : 0;
		if (s->cls == M2W_CLASS_PERMANENT ||
		    r.attempts >= m2s_ctx_max_attempts(c, &r)) {
			rc = finish(c, &r, M2W_DEAD);
			break;
		}
		if ((rc = m2s_ctx_type_name(c, r.type_id, name)))
			break;
		pol = m2s_policy(c->q, name);
		if (s->retry_after_ms > 0)
			delay = s->retry_after_ms;
		else
			delay = m2w_backoff_delay(pol, r.attempts,
						  (uint32_t)m2s_ctx_random(c));
		r.next_run = c->now + delay;
		rc = back_to_ready(c, &r);
		break;
	case M2W_SNOOZE:
	case M2W_RELEASE:
		if ((rc = ctx_history(c, &r, s->kind == M2W_SNOOZE
						     ? M2W_OUTCOME_SNOOZED
						     : M2W_OUTCOME_RELEASED,
				      s->http_status, s->duration_ms,
				      s->message)))
			break;
		if (r.attempts)
			r.attempts--;
		r.next_run = c->now + (s->kind == M2W_SNOOZE && s->delay_ms > 0
					       ? s->delay_ms : 0);
		rc = back_to_ready(c, &r);
		break;
	case M2W_EXTEND:
		if ((rc = m2s_ctx_unindex(c, &r)))
			break;
		r.lease_expiry = c->now + (s->delay_ms > 0 ? s->delay_ms : 60000);
		r.updated = c->now;
		if (!(rc = m2s_ctx_index(c, &r)))
			rc = m2s_ctx_rec_put(c, &r);
		break;
	default:
		s->err = m2w_fail(c->errbuf, M2W_EINVAL, "bad settle kind %d",
				  s->kind);
		return M2W_OK;
	}
	if (rc)
		return rc;
	s->state = r.state == M2W_READY && r.next_run > c->now ? M2W_SCHEDULED
							       : r.state;
	s->next_run_ms = r.next_run;
	return M2W_OK;
}

static int settle_apply(struct wctx *c, void *arg)
{
	struct settle_arg *a = arg;
	size_t i;
	int rc;

	for (i = 0; i < a->n; i++) {
		a->s[i].err = M2W_OK;
		a->s[i].state = -1;
		a->s[i].next_run_ms = 0;
	}
	for (i = 0; i < a->n; i++)
		if ((rc = settle_one(c, &a->s[i])) != M2W_OK)
			return rc;
	return M2W_OK;
}

int m2w_queue_settle(struct m2w_queue *q, struct m2w_settle *s, size_t n,
		     char *errbuf)
{
	struct settle_arg a = { s, n };
	struct op op = { .apply = settle_apply, .arg = &a, .errbuf = errbuf };

	if (!n)
		return M2W_OK;
	return m2s_commit_run(q, &op);
}

static int settle1(struct m2w_queue *q, struct m2w_settle *s, char *errbuf)
{
	int rc = m2w_queue_settle(q, s, 1, errbuf);

	return rc ? rc : s->err;
}

int m2w_task_ack(struct m2w_queue *q, uint64_t id, uint64_t token,
		 int64_t duration_ms, char *errbuf)
{
	struct m2w_settle s = { .id = id, .token = token, .kind = M2W_ACK,
				.duration_ms = duration_ms };

	return settle1(q, &s, errbuf);
}

int m2w_task_fail(struct m2w_queue *q, uint64_t id, uint64_t token, int cls,
		  const char *message, int http_status, int64_t retry_after_ms,
		  char *errbuf)
{
	struct m2w_settle s = { .id = id, .token = token, .kind = M2W_FAIL,
				.cls = cls, .message = message,
				.http_status = http_status,
				.retry_after_ms = retry_after_ms };

	return settle1(q, &s, errbuf);
}

int m2w_task_snooze(struct m2w_queue *q, uint64_t id, uint64_t token,
		    int64_t delay_ms, char *errbuf)
{
	struct m2w_settle s = { .id = id, .token = token, .kind = M2W_SNOOZE,
				.delay_ms = delay_ms };

	return settle1(q, &s, errbuf);
}

int m2w_task_extend(struct m2w_queue *q, uint64_t id, uint64_t token,
		    int64_t lease_ms, char *errbuf)
{
	struct m2w_settle s = { .id = id, .token = token, .kind = M2W_EXTEND,
				.delay_ms = lease_ms };

	return settle1(q, &s, errbuf);
}

int m2w_task_release(struct m2w_queue *q, uint64_t id, uint64_t token,
		     char *errbuf)
{
	struct m2w_settle s = { .id = id, .token = token,
				.kind = M2W_RELEASE };

	return settle1(q, &s, errbuf);
}

/* -------------------------------------------------------------- history */

static int ctx_history(struct wctx *c, const struct rec *r, int outcome,
		       int status, int64_t duration, const char *msg)
{
	unsigned char k[12], v[20 + M2W_MESSAGE_MAX];
	MDB_cursor *cur;
	MDB_val key = { 12, k }, val;
	uint32_t seq = 1;
	size_t mlen = cut_len(msg, M2W_MESSAGE_MAX);
	int rc;

	put_be64(k, r->id);
	put_be32(k + 4 + 4, 0xffffffffu);
	if ((rc = mdb_cursor_open(c->txn, c->q->db[DB_HISTORY], &cur)))
		return m2s_ctx_mdb(c, rc, "history");
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	rc = rc == MDB_NOTFOUND ? mdb_cursor_get(cur, &key, &val, MDB_LAST)
				: mdb_cursor_get(cur, &key, &val, MDB_PREV);
	if (rc == 0 && key.mv_size == 12 && get_be64(key.mv_data) == r->id)
		seq = get_be32((unsigned char *)key.mv_data + 8) + 1;
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return m2s_ctx_mdb(c, rc, "history");

	put_be64(k, r->id);
	put_be32(k + 8, seq);
	put_be64(v, (uint64_t)c->now);
	put_be64(v + 8, (uint64_t)(duration > 0 ? duration : 0));
	put_be16(v + 16, (uint16_t)(status > 0 && status < 1000 ? status : 0));
	v[18] = (unsigned char)outcome;
	v[19] = (unsigned char)(r->attempts > 255 ? 255 : r->attempts);
	if (mlen)
		memcpy(v + 20, msg, mlen);
	if ((rc = m2s_ctx_put(c, DB_HISTORY, k, 12, v, 20 + mlen, 0)))
		return rc;
	if (seq > M2W_HISTORY_MAX) {
		put_be32(k + 8, seq - M2W_HISTORY_MAX);
		rc = m2s_ctx_del(c, DB_HISTORY, k, 12);
		if (rc == M2W_ECORRUPT) /* already gone: fine */
			rc = M2W_OK;
	}
	return rc;
}
