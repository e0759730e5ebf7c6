/*
 * fuzz_push.c - libFuzzer target for m2w_ingest_parse_body (ingest.h), the
 * parser of HTTP push bodies.
 *
 * Input: the first byte picks the options, the rest is the body.
 *   bits 0-1  format: 0 JSON, 1 NDJSON, 2 CSV, 3 JSON
 *   bits 2-4  type: 0 none (envelopes), 1 tracking, 2 stock, 3 price,
 *             4 rest, 5 none, 6-7 tracking
 *   bit  5    key_field "ref" (with a type)
 *   bits 6-7  CSV delimiter: detect , ; tab
 * rows_max is 64, so the row limit is reached too.
 *
 * After each call everything is freed (m2w_body_free; LeakSanitizer
 * catches what is not), and the result must keep the contract of ingest.h,
 * else abort():
 *   M2W_OK      no error text, no row errors; every task has a known type
 *               (the given one when given), a payload of payload_len bytes
 *               that is a strict JSON object the job's check() accepts, a
 *               source "http:N", keys within M2W_KEY_MAX, not_before >= 0,
 *               and comes from rows in body order within out->rows (each
 *               at least one row, lines for NDJSON and CSV, none for JSON).
 *   M2W_EINVAL  no task; an error text; either rejected rows (the first
 *               M2W_BODY_ERRORS_MAX listed, each with a row within
 *               out->rows and a reason) or none listed (too_many only
 *               then, past rows_max).
 *   M2W_ENOMEM  no task.
 *   anything else is a bug.
 *
 * Built by tests/fuzz/build.sh with clang -fsanitize=fuzzer,address,
 * undefined against the library; seeds in tests/fuzz/corpus/fuzz_push/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "m2worker/ingest.h"
#include "m2worker/jobs.h"

#define ROWS_MAX 64

static void bad(const char *what, const struct m2w_body *b, size_t i)
{
	fprintf(stderr, "fuzz_push: broken invariant: %s (task/error %zu; "
		"tasks %zu, rows %llu, rejected %llu, error \"%s\")\n", what, i,
		b->ntasks, (unsigned long long)b->rows,
		(unsigned long long)b->rejected, b->error);
	abort();
}

static int json_object_text(const char *s, size_t n)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o;
	int ok;

	if (!tok)
		return 1; /* out of memory: nothing to say */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)n);
	ok = o && json_object_is_type(o, json_type_object) &&
	     (size_t)tok->char_offset == n;
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

static void check_ok(const struct m2w_body *b, const struct m2w_ingest_opts *o)
{
	char why[256];
	uint64_t last = 0;
	size_t i;

	if (b->error[0] || b->nerrors || b->rejected || b->errors ||
	    b->too_many)
		bad("M2W_OK with an error", b, 0);
	if ((b->ntasks == 0) != (b->tasks == NULL) ||
	    (b->ntasks == 0) != (b->at == NULL))
		bad("task arrays and count disagree", b, 0);
	if (b->ntasks > b->rows)
		bad("more tasks than rows", b, 0);
	for (i = 0; i < b->ntasks; i++) {
		const struct m2w_new_task *t = &b->tasks[i];
		const struct m2w_body_at *at = &b->at[i];
		const struct m2w_job *job = t->type ? m2w_job_find(t->type)
						    : NULL;
		json_object *obj = NULL;

		if (!job)
			bad("a task of no known type", b, i);
		if (o->type && strcmp(o->type, t->type) != 0)
			bad("a task of another type than asked", b, i);
		if (!t->payload || !t->payload_len ||
		    strlen(t->payload) != t->payload_len ||
		    t->payload_len > M2W_PAYLOAD_MAX)
			bad("payload length", b, i);
		if (!json_object_text(t->payload, t->payload_len))
			bad("payload is not one strict JSON object", b, i);
		if (m2w_job_load(job, t->payload, &obj, why, sizeof(why)) != 0)
			bad("payload the job refuses", b, i);
		json_object_put(obj);
		if (!t->source || strncmp(t->source, "http:", 5) != 0)
			bad("source", b, i);
		if ((t->idem_key && (!*t->idem_key ||
				     strlen(t->idem_key) > M2W_KEY_MAX)) ||
		    (t->group_key && (!*t->group_key ||
				      strlen(t->group_key) > M2W_KEY_MAX)))
			bad("key length", b, i);
		if (t->not_before_ms < 0 || t->id || t->duplicate || t->err)
			bad("not_before or out fields", b, i);
		if (!at->row || at->row <= last || !at->nrows ||
		    at->row + at->nrows - 1 > b->rows)
			bad("rows of a task", b, i);
		if ((o->format == M2W_INGEST_JSON) != (at->line == 0))
			bad("line of a task", b, i);
		if (at->nrows > 1 && (o->format != M2W_INGEST_CSV ||
				      strcmp(t->type, "tracking") != 0))
			bad("merged rows outside tracking CSV", b, i);
		last = at->row;
	}
}

static void check_fail(const struct m2w_body *b)
{
	size_t i;

	if (b->tasks || b->at || b->ntasks)
		bad("tasks returned with an error", b, 0);
	if (!b->error[0])
		bad("no error text", b, 0);
	if (b->nerrors > M2W_BODY_ERRORS_MAX || b->nerrors > b->rejected ||
	    (b->rejected <= M2W_BODY_ERRORS_MAX && b->nerrors != b->rejected) ||
	    (b->nerrors == 0) != (b->errors == NULL))
		bad("error count", b, 0);
	if (b->too_many && (b->rejected || b->rows <= ROWS_MAX))
		bad("too_many", b, 0);
	for (i = 0; i < b->nerrors; i++) {
		const struct m2w_body_error *e = &b->errors[i];

		if (!e->row || e->row > b->rows || !e->reason[0] ||
		    (i && e->row < b->errors[i - 1].row))
			bad("a row error", b, i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int formats[4] = { M2W_INGEST_JSON, M2W_INGEST_NDJSON,
					M2W_INGEST_CSV, M2W_INGEST_JSON };
	static const char *const types[8] = { NULL, "tracking", "stock",
		"price", "rest", NULL, "tracking", "tracking" };
	static const char delims[4] = { 0, ',', ';', '\t' };
	struct m2w_ingest_opts o;
	struct m2w_body b;
	int rc;

	if (size < 1)
		return 0;
	memset(&o, 0, sizeof(o));
	o.format = formats[data[0] & 3];
	o.type = types[(data[0] >> 2) & 7];
	o.key_field = o.type && (data[0] & 32) ? "ref" : NULL;
	o.delimiter = delims[data[0] >> 6];
	o.rows_max = ROWS_MAX;
	rc = m2w_ingest_parse_body((const char *)data + 1, size - 1, &o, &b);
	if (rc == M2W_OK)
		check_ok(&b, &o);
	else if (rc == M2W_EINVAL)
		check_fail(&b);
	else if (rc == M2W_ENOMEM) {
		if (b.tasks || b.ntasks)
			bad("tasks with M2W_ENOMEM", &b, 0);
	} else {
		bad("unexpected return code", &b, (size_t)rc);
	}
	m2w_body_free(&b);
	return 0;
}
