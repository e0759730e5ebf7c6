/*
 * ingest_body.c - a whole body in memory into tasks, all or none, nothing
 * enqueued (m2w_ingest_parse_body, see ingest.h): what the HTTP push needs.
 *
 * The body runs through a collecting stream (struct ig with `collect`,
 * ingest_internal.h): CSV through the CSV reader of files (ingest_csv.c:
 * the same records, header map and parcel merging), NDJSON through the
 * NDJSON reader of files (ingest.c), a JSON object or array here. Every
 * task is kept in the stream instead of being committed, every rejected
 * row is listed in the struct m2w_body; at the end the tasks are handed
 * over as struct m2w_new_task when no row was rejected, or freed.
 *
 * A body that is one JSON string is read as the JSON text it holds (once):
 * Magento's message queue framework sends a topic of type string so.
 *
 * Items: with a type, a bare payload object; without, an envelope
 * {"type","payload","key","not_before"} (parsed here, for JSON and NDJSON
 * bodies alike). Each payload goes through m2w_ingest_json_row, so the
 * job's check() and keys() decide, as for files.
 *
 * Thread-safe: all state is the call's own (json-c objects, the libcsv
 * parser, the stream).
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ingest_internal.h"

void ig_body_error(struct ig *g, uint64_t row, uint64_t line,
		   const char *column, const char *fmt, ...)
{
	struct m2w_body *b = g->body;
	struct m2w_body_error *e;
	va_list ap;

	g->res->rejected++;
	if (b->nerrors >= M2W_BODY_ERRORS_MAX)
		return;
	if (!b->errors &&
	    !(b->errors = calloc(M2W_BODY_ERRORS_MAX, sizeof(*b->errors)))) {
		g->rc = m2w_fail(g->errbuf, M2W_ENOMEM, "out of memory");
		return;
	}
	e = &b->errors[b->nerrors++];
	e->row = row;
	e->line = line;
	snprintf(e->field, sizeof(e->field), "%s", column ? column : "");
	va_start(ap, fmt);
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
	va_end(ap);
}

/* A payload object through the job's check and keys (opts: its type and
 * key_field); `key` replaces the idempotency key by "type:key". */
static void payload(struct ig *g, const struct m2w_ingest_opts *o,
		    json_object *p, int64_t not_before, const char *key,
		    uint64_t row, uint64_t line)
{
	struct m2w_ingest_row r;
	char *text;
	size_t len;
	int rc, n;

	if (!(text = ig_json_text(p, &len))) {
		g->rc = m2w_fail(g->errbuf, M2W_ENOMEM, "out of memory");
		return;
	}
	rc = m2w_ingest_json_row(o, text, len, row, &r);
	free(text);
	if (rc == M2W_EINVAL) {
		ig_body_error(g, row, line, r.column, "%s", r.reason);
	} else if (rc != M2W_OK) {
		g->rc = m2w_fail(g->errbuf, rc, "out of memory");
	} else if (!r.payload) {
		ig_body_error(g, row, line, NULL, "empty payload");
	} else if (key) {
		n = snprintf(r.idem, sizeof(r.idem), "%s:%s", o->type, key);
		if (n < 0 || n > M2W_KEY_MAX)
			ig_body_error(g, row, line, "key", "key is longer than "
				      "%d bytes with its type", M2W_KEY_MAX);
		else
			ig_add(g, o->type, &r, row, line, 1, not_before);
	} else {
		ig_add(g, o->type, &r, row, line, 1, not_before);
	}
	m2w_ingest_row_release(&r);
}

void ig_body_item(struct ig *g, json_object *v, uint64_t row, uint64_t line)
{
	struct m2w_ingest_opts o;
	json_object *t = NULL, *p = NULL, *k = NULL, *nb = NULL;
	char key[M2W_KEY_MAX + 1];
	int64_t not_before = 0;
	int bad = 0;

	if (!json_object_is_type(v, json_type_object)) {
		ig_body_error(g, row, line, NULL, "an item must be a JSON "
			      "object {\"type\":..,\"payload\":{..}} (or send "
			      "bare payloads with ?type=T)");
		return;
	}
	json_object_object_foreach(v, name, val) {
		if (strcmp(name, "type") == 0)
			t = val;
		else if (strcmp(name, "payload") == 0)
			p = val;
		else if (strcmp(name, "key") == 0)
			k = val;
		else if (strcmp(name, "not_before") == 0)
			nb = val;
		else {
			ig_body_error(g, row, line, name, "unknown key \"%s\": "
				      "an item has type, payload, key, "
				      "not_before (payload fields go in "
				      "\"payload\", or send bare payloads with "
				      "?type=T)", name);
			bad = 1;
		}
	}
	if (bad)
		return;
	if (!t || !json_object_is_type(t, json_type_string) ||
	    !m2w_job_find(json_object_get_string(t))) {
		char names[128];

		ig_body_error(g, row, line, "type", t ? "unknown type: %s" :
			      "missing \"type\"",
			      m2w_job_names(0, names, sizeof(names)));
		return;
	}
	if (!p || !json_object_is_type(p, json_type_object)) {
		ig_body_error(g, row, line, "payload", p ? "payload must be a "
			      "JSON object" : "missing \"payload\"");
		return;
	}
	if (k) {
		if (json_object_is_type(k, json_type_int))
			snprintf(key, sizeof(key), "%" PRId64,
				 json_object_get_int64(k));
		else if (json_object_is_type(k, json_type_string) &&
			 json_object_get_string_len(k) > 0 &&
			 (size_t)json_object_get_string_len(k) < sizeof(key) &&
			 !memchr(json_object_get_string(k), '\0',
				 (size_t)json_object_get_string_len(k)))
			snprintf(key, sizeof(key), "%s",
				 json_object_get_string(k));
		else {
			ig_body_error(g, row, line, "key", "key must be a "
				      "non-empty string (at most %d bytes) or "
				      "an integer", M2W_KEY_MAX);
			return;
		}
	}
	if (nb && (!json_object_is_type(nb, json_type_int) ||
		   (not_before = json_object_get_int64(nb)) < 0)) {
		ig_body_error(g, row, line, "not_before", "not_before must be "
			      "unix time in milliseconds");
		return;
	}
	m2w_ingest_opts_init(&o, json_object_get_string(t));
	payload(g, &o, p, not_before, k ? key : NULL, row, line);
}

/* One item of a JSON body: an envelope, or (with a type) a bare payload. */
static void json_item(struct ig *g, json_object *v, uint64_t row)
{
	if (ig_next_row(g))
		return;
	if (!g->job)
		ig_body_item(g, v, row, 0);
	else if (!json_object_is_type(v, json_type_object))
		ig_body_error(g, row, 0, NULL, "a payload must be a JSON "
			      "object");
	else
		payload(g, g->o, v, 0, NULL, row, 0);
}

static int json_body(struct ig *g, const char *s, size_t n)
{
	char why[M2W_ERRBUF_SIZE - 16];
	json_object *v;
	size_t i, k;

	if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		n -= 3;
	}
	if (memchr(s, '\0', n))
		return g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "body is not "
					"valid JSON: a NUL byte");
	if (!(v = ig_parse_json(s, n, 1, why, sizeof(why))))
		return g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "body is %s",
					why);
	if (json_object_is_type(v, json_type_string)) {
		/* JSON text in a JSON string: how Magento's message queue
		 * framework sends a topic of type string. Read once. */
		json_object *in = ig_parse_json(json_object_get_string(v),
						(size_t)json_object_get_string_len(v),
						1, why, sizeof(why));

		json_object_put(v);
		if (!in)
			return g->rc = m2w_fail(g->errbuf, M2W_EINVAL,
						"body is a JSON string, and "
						"what it holds is %s", why);
		v = in;
	}
	if (json_object_is_type(v, json_type_array)) {
		k = json_object_array_length(v);
		for (i = 0; i < k && !g->rc; i++)
			json_item(g, json_object_array_get_idx(v, i), i + 1);
	} else if (json_object_is_type(v, json_type_object)) {
		json_item(g, v, 1);
	} else {
		g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "body must be a JSON "
				 "object or an array of them");
	}
	json_object_put(v);
	return g->rc;
}

static void errors_clear(struct m2w_body *b)
{
	free(b->errors);
	b->errors = NULL;
	b->nerrors = 0;
	b->rejected = 0;
}

/* The collected tasks, handed over to b (g keeps none). */
static int hand_over(struct ig *g, struct m2w_body *b)
{
	size_t i;

	if (!g->n)
		return M2W_OK;
	b->tasks = calloc(g->n, sizeof(*b->tasks));
	b->at = calloc(g->n, sizeof(*b->at));
	if (!b->tasks || !b->at) {
		free(b->tasks);
		free(b->at);
		b->tasks = NULL;
		b->at = NULL;
		return M2W_ENOMEM;
	}
	for (i = 0; i < g->n; i++) {
		struct ig_task *t = &g->t[i];
		struct m2w_new_task *nt = &b->tasks[i];

		nt->type = t->type;
		nt->payload = t->payload;
		nt->payload_len = t->len;
		nt->source = t->source;
		nt->idem_key = t->idem;
		nt->group_key = t->group;
		nt->loaded = 1; /* ig_finish loaded it */
		nt->supersede = t->supersede;
		nt->not_before_ms = t->not_before;
		b->at[i].row = t->row;
		b->at[i].line = t->line;
		b->at[i].nrows = t->nrows;
		memset(t, 0, sizeof(*t));
	}
	b->ntasks = g->n;
	g->n = 0;
	return M2W_OK;
}

int m2w_ingest_parse_body(const char *body, size_t len,
			  const struct m2w_ingest_opts *bo, struct m2w_body *out)
{
	struct m2w_ingest_opts o;
	struct m2w_ingest_result res;
	struct ig g;
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc;

	if (!out)
		return M2W_EINVAL;
	memset(out, 0, sizeof(*out));
	if (!bo || (!body && len)) {
		snprintf(out->error, sizeof(out->error), "no body or options");
		return M2W_EINVAL;
	}
	if (!body)
		body = "";
	if (bo->fingerprint || bo->skip_rows || bo->progress || bo->on_task) {
		snprintf(out->error, sizeof(out->error), "a body takes no "
			 "fingerprint, skip_rows, progress or on_task");
		return M2W_EINVAL;
	}
	o = *bo;
	o.source = bo->source && *bo->source ? bo->source : "http";
	o.key_field = bo->key_field && *bo->key_field ? bo->key_field : NULL;
	rc = ig_init_collect(&g, &o, &res, out, bo->rows_max, eb);
	if (rc == M2W_OK && o.key_field && !o.type)
		rc = m2w_fail(eb, M2W_EINVAL, "a key field needs a type");
	if (rc == M2W_OK) {
		switch (bo->format) {
		case M2W_INGEST_JSON:
			rc = json_body(&g, body, len);
			break;
		case M2W_INGEST_NDJSON:
			rc = ig_ndjson_mem(&g, body, len);
			break;
		case M2W_INGEST_CSV:
			rc = ig_csv_mem(&g, body, len);
			break;
		default:
			rc = m2w_fail(eb, M2W_EINVAL, "unknown body format %d",
				      bo->format);
		}
	}
	out->rows = res.rows;
	out->rejected = res.rejected;
	out->delimiter = res.delimiter;
	if (rc == M2W_OK && out->rejected) {
		snprintf(out->error, sizeof(out->error), "%llu of %llu row%s "
			 "rejected", (unsigned long long)out->rejected,
			 (unsigned long long)out->rows, out->rows == 1 ? "" : "s");
		rc = M2W_EINVAL;
	} else {
		if (rc == M2W_OK)
			rc = hand_over(&g, out);
		if (rc != M2W_OK) {
			/* the body as a whole: no row errors with it */
			errors_clear(out);
			snprintf(out->error, sizeof(out->error), "%s",
				 rc == M2W_ENOMEM ? "out of memory"
				 : eb[0] ? eb : m2w_strerror(rc));
		}
	}
	ig_release(&g); /* frees the tasks not handed over */
	return rc;
}

void m2w_body_free(struct m2w_body *b)
{
	size_t i;

	if (!b)
		return;
	for (i = 0; b->tasks && i < b->ntasks; i++) {
		free((void *)b->tasks[i].payload);
		free((void *)b->tasks[i].source);
		free((void *)b->tasks[i].idem_key);
		free((void *)b->tasks[i].group_key);
	}
	free(b->tasks);
	free(b->at);
	free(b->errors);
	memset(b, 0, sizeof(*b));
}
