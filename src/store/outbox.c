/*
 * outbox.c - result events: one JSON event per task that ends, written in
 * the transaction that ends it (the daemon's [events] publishes them).
 *
 * When the store's outbox is on (meta "outbox", set by the daemon at open:
 * m2w_queue_opts.outbox), every move of a task into done, dead or
 * superseded (m2s_ctx_moved) puts an event into DB_OUTBOX under the next
 * sequence number, in the same transaction: the event exists exactly when
 * the end does, whoever ended the task (a worker, the reaper, a newer task,
 * a qctl requeue). A publisher reads the oldest events (m2w_outbox_read),
 * publishes them, and deletes them only after the broker confirmed them
 * (m2w_outbox_delete up to a sequence number). A crash anywhere in between
 * publishes an event again, never loses one; its "event_id" (the store's
 * random id and the sequence number) lets a consumer drop the repeat.
 *
 * With the outbox off nothing is written; events already waiting stay
 * until a publisher takes them, and the stats count them either way.
 *
 * DB_OUTBOX: be64 seq -> the event's JSON text. meta "next_event" (be64)
 * numbers them (never reused, also after the outbox emptied), meta
 * "store_id" (16 hex digits) names the store in event ids.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"

#define EVENT_READ_MAX 10000

/* A string member from a record's (not NUL-terminated) field. */
static void add_str(struct json_object *o, const char *name, const char *s,
		    size_t len)
{
	if (s && len)
		json_object_object_add(o, name,
				       json_object_new_string_len(s, (int)len));
}

/* The event of record r (its new state stored) as JSON text: malloc'd, or
 * NULL out of memory. */
static char *event_json(struct wctx *c, const struct rec *r, uint64_t seq)
{
	struct json_object *o = json_object_new_object(), *res;
	char type[M2W_TYPE_MAX + 1], id[64];
	const char *text;
	char *out = NULL;

	if (!o)
		return NULL;
	if (m2s_ctx_type_name(c, r->type_id, type) != M2W_OK)
		strcpy(type, "?");
	snprintf(id, sizeof(id), "%s:%" PRIu64, c->q->store_id, seq);
	json_object_object_add(o, "event_id", json_object_new_string(id));
	json_object_object_add(o, "task", json_object_new_int64(
					      (int64_t)r->id));
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "state", json_object_new_string(
					       m2w_state_name(r->state)));
	add_str(o, "key", r->idem, r->idem_len);
	add_str(o, "group", r->group, r->group_len);
	json_object_object_add(o, "attempts", json_object_new_int(
					      (int)r->attempts));
	if (r->last_status)
		json_object_object_add(o, "status", json_object_new_int(
						    r->last_status));
	if (r->state == M2W_DEAD)
		add_str(o, "error", r->error, r->error_len);
	if (r->state == M2W_DONE && c->note && *c->note)
		json_object_object_add(o, "note",
				       json_object_new_string(c->note));
	if (r->state == M2W_DONE && c->result && *c->result &&
	    (res = json_tokener_parse(c->result)) != NULL)
		json_object_object_add(o, "result", res);
	add_str(o, "source", r->source, r->source_len);
	json_object_object_add(o, "created_ms", json_object_new_int64(
						r->created));
	json_object_object_add(o, "ended_ms", json_object_new_int64(c->now));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (text)
		out = strdup(text);
	json_object_put(o);
	return out;
}

static int is_end(int state)
{
	return state == M2W_DONE || state == M2W_DEAD ||
	       state == M2W_SUPERSEDED;
}

int m2s_ctx_moved(struct wctx *c, const struct rec *r, int from)
{
	unsigned char k[8];
	uint64_t seq = 1;
	MDB_val v;
	char *ev;
	int rc;

	if ((rc = m2s_ctx_count(c, r->type_id, from, r->state)))
		return rc;
	if (!c->q->outbox || !is_end(r->state) || (from >= 0 && is_end(from)))
		return M2W_OK;
	rc = m2s_ctx_get(c, DB_META, "next_event", 10, &v);
	if (rc == M2W_OK && v.mv_size == 8)
		seq = get_be64(v.mv_data);
	else if (rc != M2W_ENOTFOUND && rc != M2W_OK)
		return rc;
	if (!(ev = event_json(c, r, seq)))
		return m2w_fail(c->errbuf, M2W_ENOMEM, "out of memory");
	put_be64(k, seq);
	rc = m2s_ctx_put(c, DB_OUTBOX, k, 8, ev, strlen(ev), MDB_APPEND);
	free(ev);
	if (rc)
		return rc;
	put_be64(k, seq + 1);
	return m2s_ctx_put(c, DB_META, "next_event", 10, k, 8, 0);
}

/* ---------------------------------------------------------------- read */

int m2w_outbox_read(struct m2w_queue *q, size_t max, struct m2w_event **out,
		    size_t *n, char *errbuf)
{
	struct m2w_event *e = NULL;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	size_t got = 0;
	int rc, mrc;

	*out = NULL;
	*n = 0;
	if (max > EVENT_READ_MAX)
		max = EVENT_READ_MAX;
	if ((rc = m2s_read_begin(q, &txn, errbuf)))
		return rc;
	if ((mrc = mdb_cursor_open(txn, q->db[DB_OUTBOX], &cur))) {
		m2s_read_end(q, txn);
		return m2s_mdb_err(errbuf, mrc, "outbox");
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     mrc == 0 && got < max; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct m2w_event *grown;

		if (k.mv_size != 8)
			continue;
		if (!(got % 64)) {
			grown = realloc(e, (got + 64) * sizeof(*e));
			if (!grown) {
				rc = m2w_fail(errbuf, M2W_ENOMEM,
					      "out of memory");
				break;
			}
			e = grown;
		}
		e[got].seq = get_be64(k.mv_data);
		e[got].len = v.mv_size;
		if (!(e[got].json = malloc(v.mv_size + 1))) {
			rc = m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
			break;
		}
		memcpy(e[got].json, v.mv_data, v.mv_size);
		e[got].json[v.mv_size] = '\0';
		got++;
	}
	if (!rc && mrc && mrc != MDB_NOTFOUND)
		rc = m2s_mdb_err(errbuf, mrc, "outbox");
	mdb_cursor_close(cur);
	m2s_read_end(q, txn);
	if (rc) {
		m2w_outbox_free(e, got);
		return rc;
	}
	*out = e;
	*n = got;
	return M2W_OK;
}

void m2w_outbox_free(struct m2w_event *e, size_t n)
{
	size_t i;

	for (i = 0; e && i < n; i++)
		free(e[i].json);
	free(e);
}

/* --------------------------------------------------------------- delete */

static int delete_apply(struct wctx *c, void *arg)
{
	uint64_t upto = *(const uint64_t *)arg;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(c->txn, c->q->db[DB_OUTBOX], &cur)))
		return m2s_ctx_mdb(c, rc, "outbox");
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 &&
	       k.mv_size == 8 && get_be64(k.mv_data) <= upto) {
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
		c->writes++;
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? m2s_ctx_mdb(c, rc, "outbox")
					: M2W_OK;
}

int m2w_outbox_delete(struct m2w_queue *q, uint64_t upto, char *errbuf)
{
	struct op op = { .apply = delete_apply, .arg = &upto,
			 .errbuf = errbuf };

	return m2s_commit_run(q, &op);
}

/* ----------------------------------------------------------------- open */

int m2s_outbox_open(struct m2w_queue *q, MDB_txn *txn, int mode,
		    char *errbuf)
{
	unsigned char on = mode == M2W_OUTBOX_ON;
	MDB_val k = { 6, "outbox" }, v = { 1, &on };
	MDB_val ik = { 8, "store_id" }, iv;
	int rc;

	if (mode != M2W_OUTBOX_KEEP &&
	    (rc = mdb_put(txn, q->db[DB_META], &k, &v, 0)))
		return m2s_mdb_err(errbuf, rc, "outbox");
	rc = mdb_get(txn, q->db[DB_META], &k, &v);
	q->outbox = rc == 0 && v.mv_size == 1 &&
		    ((const unsigned char *)v.mv_data)[0] != 0;
	rc = mdb_get(txn, q->db[DB_META], &ik, &iv);
	if (rc == 0 && iv.mv_size == 16) {
		memcpy(q->store_id, iv.mv_data, 16);
		q->store_id[16] = '\0';
		return M2W_OK;
	}
	snprintf(q->store_id, sizeof(q->store_id), "%016" PRIx64, q->rng);
	if (!q->outbox)
		return M2W_OK; /* named when first needed */
	iv.mv_size = 16;
	iv.mv_data = q->store_id;
	rc = mdb_put(txn, q->db[DB_META], &ik, &iv, 0);
	return rc ? m2s_mdb_err(errbuf, rc, "store_id") : M2W_OK;
}
