/*
 * group.c - ordering groups ("stock:SKU-1"): one task of a group at a time,
 * and the newest wins.
 *
 * In DB_GROUPS a group is a head entry, 'g' key -> be64 id of its head (the
 * one task of the group that is READY, scheduled, or LEASED), and one entry
 * per task waiting behind it, 'w' key NUL be64 id -> "" (state WAITING, in
 * id order, never in `ready`). Only heads are in `ready`, so leasing never
 * walks past blocked tasks. When the head ends, the first waiting task is
 * promoted; a group with neither head nor waiters has no entry.
 *
 * Exclusive groups (REC_EXCLUSIVE: tracking's orders) keep the one-at-a-
 * time rule but not the order: the waiter due first (lowest next_run) is
 * promoted, and a head that failed and waits for its backoff steps aside
 * when a waiter is due sooner (m2s_group_step_aside): it joins the waiters
 * with its next_run, so one task in backoff never holds back the others of
 * its order.
 *
 * Supersede: a task enqueued with the supersede flag ends every older task
 * of its group that has not started (waiters, and a head that is not
 * leased) as SUPERSEDED. When the head is leased it cannot be recalled; the
 * new task waits, and should the head fail and come back for a retry, the
 * newer task replaces it then. A dead superseding task that is requeued
 * after a newer task of its group was enqueued is superseded at once, so an
 * old stock level never overwrites a newer one. (What the group does not
 * remember: a newer task that already finished and was purged.)
 */
#include "config.h"

#include "internal.h"

size_t m2s_group_head_key(unsigned char *buf, const char *g, size_t glen)
{
	buf[0] = 'g';
	memcpy(buf + 1, g, glen);
	return glen + 1;
}

size_t m2s_group_wait_key(unsigned char *buf, const char *g, size_t glen,
			  uint64_t id)
{
	buf[0] = 'w';
	memcpy(buf + 1, g, glen);
	buf[glen + 1] = '\0';
	put_be64(buf + glen + 2, id);
	return glen + 10;
}

static int get_head(struct wctx *c, const struct rec *r, uint64_t *head)
{
	unsigned char k[M2W_KEY_MAX + 10];
	MDB_val v;
	int rc;

	rc = m2s_ctx_get(c, DB_GROUPS, k,
			 m2s_group_head_key(k, r->group, r->group_len), &v);
	if (rc == M2W_OK && v.mv_size != 8)
		return m2w_fail(c->errbuf, M2W_ECORRUPT, "group %.*s: bad head",
				(int)r->group_len, r->group);
	*head = rc == M2W_OK ? get_be64(v.mv_data) : 0;
	return rc == M2W_ENOTFOUND ? M2W_OK : rc;
}

static int set_head(struct wctx *c, const struct rec *r, uint64_t id)
{
	unsigned char k[M2W_KEY_MAX + 10], v[8];
	size_t klen = m2s_group_head_key(k, r->group, r->group_len);

	if (!id)
		return m2s_ctx_del(c, DB_GROUPS, k, klen);
	put_be64(v, id);
	return m2s_ctx_put(c, DB_GROUPS, k, klen, v, 8, 0);
}

/* The waiting ids of r's group, oldest first: the first (or last) only. */
static int waiter(struct wctx *c, const struct rec *r, int last, uint64_t *id)
{
	unsigned char k[M2W_KEY_MAX + 10];
	size_t plen = m2s_group_wait_key(k, r->group, r->group_len, 0) - 8;
	MDB_cursor *cur;
	MDB_val key = { plen, k }, v;
	int rc;

	*id = 0;
	if (last)
		put_be64(k + plen, UINT64_MAX);
	key.mv_size = last ? plen + 8 : plen;
	if ((rc = mdb_cursor_open(c->txn, c->q->db[DB_GROUPS], &cur)))
		return m2s_ctx_mdb(c, rc, "groups");
	rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
	if (last)
		rc = rc == MDB_NOTFOUND ? mdb_cursor_get(cur, &key, &v, MDB_LAST)
					: mdb_cursor_get(cur, &key, &v, MDB_PREV);
	if (rc == 0 && key.mv_size == plen + 8 &&
	    memcmp(key.mv_data, k, plen) == 0)
		*id = get_be64((unsigned char *)key.mv_data + plen);
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? m2s_ctx_mdb(c, rc, "groups") : M2W_OK;
}

/* Task `id` (WAITING or the unleased head) ends as SUPERSEDED. */
static int supersede(struct wctx *c, uint64_t id)
{
	unsigned char k[M2W_KEY_MAX + 10];
	struct rec o;
	int from, rc;

	if ((rc = m2s_ctx_rec(c, id, &o)))
		return rc == M2W_ENOTFOUND ? M2W_ECORRUPT : rc;
	from = o.state;
	if (from == M2W_WAITING)
		rc = m2s_ctx_del(c, DB_GROUPS, k,
				 m2s_group_wait_key(k, o.group, o.group_len,
						    id));
	else
		rc = m2s_ctx_unindex(c, &o);
	if (rc)
		return rc;
	o.state = M2W_SUPERSEDED;
	o.updated = c->now;
	if ((rc = m2s_ctx_index(c, &o)) || (rc = m2s_ctx_rec_put(c, &o)))
		return rc;
	return m2s_ctx_moved(c, &o, from);
}

static int wait_behind(struct wctx *c, struct rec *r)
{
	unsigned char k[M2W_KEY_MAX + 10];

	r->state = M2W_WAITING;
	return m2s_ctx_put(c, DB_GROUPS, k,
			   m2s_group_wait_key(k, r->group, r->group_len,
					      r->id), "", 0, 0);
}

int m2s_group_join(struct wctx *c, struct rec *r, int requeue)
{
	uint64_t head, w;
	struct rec h;
	int rc;

	if ((rc = get_head(c, r, &head)))
		return rc;
	if (!head) {
		r->state = M2W_READY;
		return set_head(c, r, r->id);
	}
	if (!(r->flags & REC_SUPERSEDE))
		return wait_behind(c, r);
	if (requeue) {
		if ((rc = waiter(c, r, 1, &w)))
			return rc;
		if (head > r->id || w > r->id) {
			r->state = M2W_SUPERSEDED;
			return M2W_OK;
		}
	}
	while (!(rc = waiter(c, r, 0, &w)) && w)
		if ((rc = supersede(c, w)))
			return rc;
	if (rc || (rc = m2s_ctx_rec(c, head, &h)))
		return rc == M2W_ENOTFOUND ? M2W_ECORRUPT : rc;
	if (h.state == M2W_LEASED)
		return wait_behind(c, r);
	if ((rc = supersede(c, head)))
		return rc;
	r->state = M2W_READY;
	return set_head(c, r, r->id);
}

/* The waiter of r's group due first (lowest next_run, then lowest id),
 * read into *n; *id 0 when none waits. Exclusive groups promote it. */
static int waiter_due(struct wctx *c, const struct rec *r, uint64_t *id,
		      struct rec *n)
{
	unsigned char k[M2W_KEY_MAX + 10];
	size_t plen = m2s_group_wait_key(k, r->group, r->group_len, 0) - 8;
	MDB_cursor *cur;
	MDB_val key = { plen, k }, v;
	int64_t due = 0;
	int rc = M2W_OK, mrc;

	*id = 0;
	if ((mrc = mdb_cursor_open(c->txn, c->q->db[DB_GROUPS], &cur)))
		return m2s_ctx_mdb(c, mrc, "groups");
	for (mrc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
	     mrc == 0 && key.mv_size == plen + 8 &&
	     memcmp(key.mv_data, k, plen) == 0;
	     mrc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
		uint64_t w = get_be64((unsigned char *)key.mv_data + plen);

		if ((rc = m2s_ctx_rec(c, w, n)))
			break;
		if (!*id || n->next_run < due) {
			*id = w;
			due = n->next_run;
		}
	}
	mdb_cursor_close(cur);
	if (!rc && mrc && mrc != MDB_NOTFOUND)
		return m2s_ctx_mdb(c, mrc, "groups");
	/* the record read last is not always the one chosen: read it again
	 * (a struct rec points into itself, it cannot be copied) */
	if (!rc && *id)
		rc = m2s_ctx_rec(c, *id, n);
	return rc == M2W_ENOTFOUND ? M2W_ECORRUPT : rc;
}

/* Waiter n (id w) of a group becomes its ready head. */
static int promote(struct wctx *c, uint64_t w, struct rec *n)
{
	unsigned char k[M2W_KEY_MAX + 10];
	int rc;

	if ((rc = m2s_ctx_del(c, DB_GROUPS, k,
			      m2s_group_wait_key(k, n->group, n->group_len, w))))
		return rc;
	n->state = M2W_READY;
	if (n->next_run < c->now)
		n->next_run = c->now;
	n->updated = c->now;
	if ((rc = m2s_ctx_index(c, n)) || (rc = m2s_ctx_rec_put(c, n)) ||
	    (rc = m2s_ctx_count(c, n->type_id, M2W_WAITING, M2W_READY)))
		return rc;
	return set_head(c, n, w);
}

int m2s_group_step_aside(struct wctx *c, struct rec *r, int *aside)
{
	uint64_t w;
	struct rec n;
	int rc;

	*aside = 0;
	if ((rc = waiter_due(c, r, &w, &n)) || !w ||
	    n.next_run >= r->next_run)
		return rc;
	if ((rc = wait_behind(c, r)))
		return rc;
	*aside = 1;
	return promote(c, w, &n);
}

int m2s_group_advance(struct wctx *c, const struct rec *r)
{
	uint64_t head, w;
	struct rec n;
	int rc;

	if ((rc = get_head(c, r, &head)))
		return rc;
	if (head != r->id)
		return m2w_fail(c->errbuf, M2W_ECORRUPT,
				"group %.*s: head is %llu, not task %llu",
				(int)r->group_len, r->group,
				(unsigned long long)head,
				(unsigned long long)r->id);
	if (r->flags & REC_EXCLUSIVE)
		rc = waiter_due(c, r, &w, &n);
	else if (!(rc = waiter(c, r, 0, &w)) && w &&
		 (rc = m2s_ctx_rec(c, w, &n)) == M2W_ENOTFOUND)
		rc = M2W_ECORRUPT;
	if (rc)
		return rc;
	return w ? promote(c, w, &n) : set_head(c, r, 0);
}

int m2s_group_newer_waits(struct wctx *c, const struct rec *r, int *yes)
{
	struct rec n;
	uint64_t w;
	int rc;

	*yes = 0;
	if ((rc = waiter(c, r, 0, &w)) || !w)
		return rc;
	if ((rc = m2s_ctx_rec(c, w, &n)))
		return rc == M2W_ENOTFOUND ? M2W_ECORRUPT : rc;
	*yes = !!(n.flags & REC_SUPERSEDE);
	return M2W_OK;
}

int m2s_group_leave(struct wctx *c, const struct rec *r)
{
	unsigned char k[M2W_KEY_MAX + 10];

	return m2s_ctx_del(c, DB_GROUPS, k,
			   m2s_group_wait_key(k, r->group, r->group_len,
					      r->id));
}
