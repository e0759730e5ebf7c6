/*
 * check.c - does every index agree with the tasks table?
 *
 * One read transaction (a consistent snapshot, safe beside a running
 * daemon) and three passes: (1) every record decodes, has a known type and
 * an id below next_id, and sits in exactly the index its state names, under
 * the key its fields give (and its idempotency key and group entries point
 * back at it); (2) every index has exactly as many entries as pass 1 found
 * tasks for it, so there is nothing stray; (3) the per-type counters equal
 * what was counted, and every history entry belongs to a task. The first
 * disagreement is reported; the store is never modified.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

struct tally {
	uint16_t type;
	uint64_t n[M2W_NSTATES];
};

struct check {
	struct m2w_queue *q;
	MDB_txn *txn;
	char *errbuf;
	struct tally *t;
	size_t nt;
	uint64_t in_db[DB_COUNT]; /* entries expected per index */
};

static int has(struct check *ck, int db, const void *k, size_t klen,
	       uint64_t id)
{
	MDB_val key = { klen, (void *)k }, v;

	if (mdb_get(ck->txn, ck->q->db[db], &key, &v) != 0)
		return 0;
	if ((db == DB_KEYS || db == DB_GROUPS) && id)
		return v.mv_size == 8 && get_be64(v.mv_data) == id;
	return 1;
}

static int tally(struct check *ck, const struct rec *r)
{
	struct tally *t;
	size_t i;

	for (i = 0; i < ck->nt; i++)
		if (ck->t[i].type == r->type_id) {
			ck->t[i].n[r->state]++;
			return M2W_OK;
		}
	t = realloc(ck->t, (ck->nt + 1) * sizeof(*t));
	if (!t)
		return m2w_fail(ck->errbuf, M2W_ENOMEM, "out of memory");
	ck->t = t;
	t += ck->nt++;
	memset(t, 0, sizeof(*t));
	t->type = r->type_id;
	t->n[r->state]++;
	return M2W_OK;
}

static int bad(struct check *ck, const struct rec *r, const char *what)
{
	return m2w_fail(ck->errbuf, M2W_ECORRUPT, "task %llu (%s): %s",
			(unsigned long long)r->id, m2w_state_name(r->state),
			what);
}

static int check_task(struct check *ck, const struct rec *r, uint64_t next_id)
{
	unsigned char k[M2W_KEY_MAX + 10];
	char name[M2W_TYPE_MAX + 1];

	if (r->id == 0 || r->id >= next_id)
		return bad(ck, r, "id not below the store's next id");
	if (m2s_read_type_name(ck->q, ck->txn, r->type_id, name) != M2W_OK)
		return bad(ck, r, "unknown type");
	switch (r->state) {
	case M2W_READY:
		m2s_ready_key(k, r->type_id, r->next_run, r->id);
		if (!has(ck, DB_READY, k, READY_KEY_LEN, r->id))
			return bad(ck, r, "missing from the ready index");
		ck->in_db[DB_READY]++;
		break;
	case M2W_LEASED:
		m2s_time_key(k, r->lease_expiry, r->id);
		if (!has(ck, DB_LEASES, k, TIME_KEY_LEN, r->id))
			return bad(ck, r, "missing from the leases index");
		ck->in_db[DB_LEASES]++;
		break;
	case M2W_DONE:
	case M2W_SUPERSEDED:
	case M2W_DEAD:
		m2s_time_key(k, r->updated, r->id);
		if (!has(ck, r->state == M2W_DEAD ? DB_DEAD : DB_DONE, k,
			 TIME_KEY_LEN, r->id))
			return bad(ck, r, "missing from its index of ended tasks");
		ck->in_db[r->state == M2W_DEAD ? DB_DEAD : DB_DONE]++;
		break;
	case M2W_WAITING:
		if (!r->group_len)
			return bad(ck, r, "waiting without an ordering key");
		if (!has(ck, DB_GROUPS, k,
			 m2s_group_wait_key(k, r->group, r->group_len,
					    r->id), 0))
			return bad(ck, r, "missing from its group's waiters");
		ck->in_db[DB_GROUPS]++;
		break;
	}
	if (r->group_len && (r->state == M2W_READY || r->state == M2W_LEASED)) {
		if (!has(ck, DB_GROUPS, k,
			 m2s_group_head_key(k, r->group, r->group_len), r->id))
			return bad(ck, r, "not the head of its ordering group");
		ck->in_db[DB_GROUPS]++;
	}
	if (r->idem_len) {
		if (!has(ck, DB_KEYS, r->idem, r->idem_len, r->id))
			return bad(ck, r, "its idempotency key points elsewhere");
		ck->in_db[DB_KEYS]++;
	}
	return tally(ck, r);
}

static int check_counts(struct check *ck)
{
	static const int dbs[] = { DB_READY, DB_LEASES, DB_DONE, DB_DEAD,
				   DB_KEYS, DB_GROUPS };
	static const char *const names[] = { "ready", "leases", "done", "dead",
					     "keys", "groups" };
	MDB_stat st;
	size_t i;

	for (i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		mdb_stat(ck->txn, ck->q->db[dbs[i]], &st);
		if (st.ms_entries != ck->in_db[dbs[i]])
			return m2w_fail(ck->errbuf, M2W_ECORRUPT,
					"index %s has %zu entries, the tasks "
					"table accounts for %llu", names[i],
					st.ms_entries,
					(unsigned long long)ck->in_db[dbs[i]]);
	}
	return M2W_OK;
}

static int check_types(struct check *ck)
{
	MDB_cursor *cur;
	MDB_val k = { 1, "i" }, v;
	size_t i, seen = 0;
	int rc, s;

	if ((rc = mdb_cursor_open(ck->txn, ck->q->db[DB_TYPES], &cur)))
		return m2s_mdb_err(ck->errbuf, rc, "types");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size == 3 && *(char *)k.mv_data == 'i';
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint16_t id = get_be16((unsigned char *)k.mv_data + 1);
		const struct tally *t = NULL;

		for (i = 0; i < ck->nt; i++)
			if (ck->t[i].type == id)
				t = &ck->t[i];
		if (t)
			seen++;
		for (s = 0; s < M2W_NSTATES; s++) {
			uint64_t want = t ? t->n[s] : 0;
			uint64_t got = v.mv_size >= 2 + 8 * M2W_NSTATES
					       ? get_be64((unsigned char *)
							  v.mv_data + 2 + 8 * s)
					       : UINT64_MAX;

			if (got != want) {
				mdb_cursor_close(cur);
				return m2w_fail(ck->errbuf, M2W_ECORRUPT,
						"type %u: counter of %s is %llu, "
						"%llu tasks found", id,
						m2w_state_name(s),
						(unsigned long long)got,
						(unsigned long long)want);
			}
		}
	}
	mdb_cursor_close(cur);
	if (seen != ck->nt)
		return m2w_fail(ck->errbuf, M2W_ECORRUPT,
				"tasks of a type without a type record");
	return M2W_OK;
}

static int check_history(struct check *ck)
{
	MDB_cursor *cur;
	MDB_val k, v, tk, tv;
	int rc;

	if ((rc = mdb_cursor_open(ck->txn, ck->q->db[DB_HISTORY], &cur)))
		return m2s_mdb_err(ck->errbuf, rc, "history");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		tk.mv_size = 8;
		tk.mv_data = k.mv_data;
		if (k.mv_size != 12 ||
		    mdb_get(ck->txn, ck->q->db[DB_TASKS], &tk, &tv) != 0) {
			mdb_cursor_close(cur);
			return m2w_fail(ck->errbuf, M2W_ECORRUPT,
					"history entry of task %llu, "
					"which does not exist",
					(unsigned long long)(k.mv_size >= 8
						? get_be64(k.mv_data) : 0));
		}
	}
	mdb_cursor_close(cur);
	return M2W_OK;
}

int m2w_queue_check(struct m2w_queue *q, char *errbuf)
{
	struct check ck;
	MDB_cursor *cur;
	MDB_val k = { 7, "next_id" }, v;
	uint64_t next_id = 1;
	struct rec r;
	int rc, mrc;

	memset(&ck, 0, sizeof(ck));
	ck.q = q;
	ck.errbuf = errbuf;
	if ((rc = m2s_read_begin(q, &ck.txn, errbuf)))
		return rc;
	if (mdb_get(ck.txn, q->db[DB_META], &k, &v) == 0 && v.mv_size == 8)
		next_id = get_be64(v.mv_data);
	if ((mrc = mdb_cursor_open(ck.txn, q->db[DB_TASKS], &cur))) {
		rc = m2s_mdb_err(errbuf, mrc, "tasks");
		goto out;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8) {
			rc = m2w_fail(errbuf, M2W_ECORRUPT,
				      "tasks: key of %zu bytes", k.mv_size);
			break;
		}
		if ((rc = m2s_rec_decode(get_be64(k.mv_data), v.mv_data,
					 v.mv_size, &r, errbuf)) ||
		    (rc = check_task(&ck, &r, next_id)))
			break;
	}
	mdb_cursor_close(cur);
	if (!rc && mrc != MDB_NOTFOUND)
		rc = m2s_mdb_err(errbuf, mrc, "tasks");
	if (!rc)
		rc = check_counts(&ck);
	if (!rc)
		rc = check_types(&ck);
	if (!rc)
		rc = check_history(&ck);
out:
	m2s_read_end(q, ck.txn);
	free(ck.t);
	return rc;
}
