/*
 * ingest.c - rows to tasks: the header map, one row at a time, batches,
 * NDJSON streams and the fingerprint (see ingest.h). The CSV stream (libcsv)
 * is in ingest_csv.c, whole bodies (m2w_ingest_parse_body) in
 * ingest_body.c; all share ingest_internal.h.
 *
 * A stream (struct ig) either commits its tasks to a queue in batches, or
 * collects them for a body (ig_init_collect: kept until the end, rejected
 * rows listed, a row limit); the readers (NDJSON here, CSV in ingest_csv.c,
 * each from a FILE or from memory) do not know which.
 *
 * A CSV row becomes its payload as JSON text built here (not through
 * json-c): numbers go out as written when they are JSON numbers already
 * ("9.99" stays 9.99, never 9.9900000000000002), strings are escaped, and
 * what is sent is exactly what was checked. Every payload then passes the
 * job's own check() and keys(), so no row reaches the store that the
 * worker would refuse, and the keys are the job's.
 *
 * Tracking rows that carry an sku are one item of a parcel: adjacent rows
 * of the same order, track, carrier and title are merged into one task
 * (the stream holds the open parcel as `pend`). Without that, the second
 * item would be a duplicate of the first (same idempotency key) and the
 * job would stop at "track already on a shipment": an item lost.
 *
 * Batches commit only between rows that are not merged, so the count of
 * rows settled by a commit (committed_rows) is a clean resume point.
 *
 * Everything here works on the caller's structs: no globals, thread-safe.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "ingest_internal.h"

#define SOURCE_LABEL_MAX 1000

/* ------------------------------------------------------------- JSON text */

/* s[0..n) as a JSON string. */
void ig_json_str(struct m2w_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	m2w_buf_addc(b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		m2w_buf_add(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': m2w_buf_adds(b, "\\\""); break;
		case '\\': m2w_buf_adds(b, "\\\\"); break;
		case '\n': m2w_buf_adds(b, "\\n"); break;
		case '\r': m2w_buf_adds(b, "\\r"); break;
		case '\t': m2w_buf_adds(b, "\\t"); break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			m2w_buf_add(b, esc, 6);
		}
	}
	m2w_buf_add(b, s + run, n - run);
	m2w_buf_addc(b, '"');
}

/* ------------------------------------------------------------- values */

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
	       c == '\f';
}

void ig_trim(const char **s, size_t *n)
{
	const char *p = *s;
	size_t len = *n;

	while (len && is_ws(*p)) {
		p++;
		len--;
	}
	while (len && is_ws(p[len - 1]))
		len--;
	*s = p;
	*n = len;
}

/* Well-formed UTF-8 (no overlongs, no surrogates). */
int ig_utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0, k, need;
	unsigned long cp;

	while (i < n) {
		unsigned char c = s[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + need >= n)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* Is s[0..n) a JSON number as written? */
static int json_number_form(const char *s, size_t n)
{
	size_t i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i >= n || !isdigit((unsigned char)s[i]))
		return 0;
	if (s[i] == '0' && i + 1 < n && isdigit((unsigned char)s[i + 1]))
		return 0;
	while (i < n && isdigit((unsigned char)s[i]))
		i++;
	if (i < n && s[i] == '.') {
		if (++i >= n || !isdigit((unsigned char)s[i]))
			return 0;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !isdigit((unsigned char)s[i]))
			return 0;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	return i == n;
}

/*
 * A decimal number ([+-] digits [. digits] [e[+-]digits], a dot for
 * decimals) into b as JSON. 0, or -1 with why.
 */
int ig_add_number(struct m2w_buf *b, const char *col, const char *s,
		  size_t n, int integer, char *why, size_t len)
{
	char tmp[64], *end;
	size_t i = 0, digits = 0;
	int ok = n > 0 && n < sizeof(tmp);

	if (ok && (s[0] == '+' || s[0] == '-'))
		i++;
	for (; ok && i < n && isdigit((unsigned char)s[i]); i++)
		digits++;
	if (ok && !integer && i < n && s[i] == '.')
		for (i++; i < n && isdigit((unsigned char)s[i]); i++)
			digits++;
	if (ok && !integer && digits && i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (; i < n && isdigit((unsigned char)s[i]); i++)
			e++;
		ok = e > 0;
	}
	if (!ok || !digits || i != n) {
		snprintf(why, len, "%s \"%.*s\" is not %s%s", col,
			 (int)(n > 40 ? 40 : n), s,
			 integer ? "an integer" : "a number",
			 !integer && memchr(s, ',', n) ? " (use a dot for decimals)"
						       : "");
		return -1;
	}
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	if (integer) {
		long long v = strtoll(tmp, &end, 10);

		if (errno || *end) {
			snprintf(why, len, "%s \"%s\" is out of range", col, tmp);
			return -1;
		}
		snprintf(tmp, sizeof(tmp), "%lld", v);
		m2w_buf_adds(b, tmp);
		return 0;
	}
	{
		double d = strtod(tmp, &end);

		if (*end || !isfinite(d) || errno == ERANGE) {
			snprintf(why, len, "%s \"%s\" is out of range", col, tmp);
			return -1;
		}
		if (json_number_form(tmp, n)) {
			m2w_buf_add(b, tmp, n);
		} else {
			snprintf(tmp, sizeof(tmp), "%.17g", d);
			m2w_buf_adds(b, tmp);
		}
	}
	return 0;
}

/* --------------------------------------------------------------- rows */

int ig_row_reject(struct m2w_ingest_row *r, const char *column,
		  const char *fmt, ...)
{
	va_list ap;

	free(r->payload);
	r->payload = NULL;
	r->payload_len = 0;
	snprintf(r->column, sizeof(r->column), "%s", column ? column : "");
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return M2W_EINVAL;
}

void m2w_ingest_row_release(struct m2w_ingest_row *r)
{
	if (!r)
		return;
	free(r->payload);
	r->payload = NULL;
	r->payload_len = 0;
}

/* The first "quoted" name in a check() reason, without an "items[i]."
 * prefix: the payload key the reason is about, or "". */
static void reason_key(const char *why, char *key, size_t size)
{
	const char *a = strchr(why, '"'), *b, *dot;
	size_t n;

	key[0] = '\0';
	if (!a || !(b = strchr(a + 1, '"')))
		return;
	a++;
	dot = memchr(a, '.', (size_t)(b - a));
	if (dot && strncmp(a, "items[", 6) == 0)
		a = dot + 1;
	n = (size_t)(b - a);
	if (n >= size)
		n = size - 1;
	memcpy(key, a, n);
	key[n] = '\0';
}

int ig_finish(const struct m2w_job *job, const char *fp, const char *keyval,
	      uint64_t line, char *payload, size_t len, struct json_object *o,
	      struct m2w_ingest_row *r)
{
	char why[M2W_INGEST_REASON_MAX], key[M2W_INGEST_COLUMN_MAX + 1];
	struct json_object *own = NULL;
	int n, rc = M2W_OK;

	r->payload = payload;
	r->payload_len = len;
	r->idem[0] = r->group[0] = '\0';
	r->supersede = 0;
	if (len > M2W_PAYLOAD_MAX)
		return ig_row_reject(r, NULL, "payload is larger than %u bytes",
				     (unsigned)M2W_PAYLOAD_MAX);
	why[0] = '\0';
	if (o ? m2w_job_check_object(job, o, why, sizeof(why))
	      : m2w_job_load(job, payload, &own, why, sizeof(why))) {
		reason_key(why, key, sizeof(key));
		return ig_row_reject(r, key, "%s",
				     why[0] ? why : "refused by the job");
	}
	if (m2w_job_keys(job, o ? o : own, r->idem, r->group, &r->supersede))
		rc = ig_row_reject(r, NULL, "its keys are longer than %d bytes",
				   M2W_KEY_MAX);
	json_object_put(own);
	if (rc != M2W_OK)
		return rc;
	if (keyval) {
		n = snprintf(r->idem, sizeof(r->idem), "%s:%s", job->name,
			     keyval);
		if (n < 0 || n > M2W_KEY_MAX)
			return ig_row_reject(r, NULL, "idempotency key is longer "
					     "than %d bytes", M2W_KEY_MAX);
	} else if (!r->idem[0] && fp && *fp) {
		n = snprintf(r->idem, sizeof(r->idem), "%s:%s:%llu", job->name,
			     fp, (unsigned long long)line);
		if (n < 0 || n > M2W_KEY_MAX)
			return ig_row_reject(r, NULL, "fingerprint key is longer "
					     "than %d bytes", M2W_KEY_MAX);
	}
	return M2W_OK;
}

/* --------------------------------------------------------------- JSON */

json_object *ig_parse_json(const char *s, size_t n, int at_byte, char *why,
			   size_t len)
{
	struct json_tokener *tok;
	enum json_tokener_error err;
	json_object *o;
	size_t end;
	char at[32] = "";

	if (n > (size_t)INT32_MAX) {
		snprintf(why, len, "not valid JSON: too long");
		return NULL;
	}
	if (!(tok = json_tokener_new())) {
		snprintf(why, len, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)n);
	err = json_tokener_get_error(tok);
	end = (size_t)tok->char_offset;
	json_tokener_free(tok);
	if (at_byte)
		snprintf(at, sizeof(at), " at byte %zu", end + 1);
	if (!o) {
		snprintf(why, len, "not valid JSON%s: %s", at,
			 err == json_tokener_continue ||
					 err == json_tokener_success
				 ? "it ends early"
				 : json_tokener_error_desc(err));
		return NULL;
	}
	while (end < n && is_ws(s[end]))
		end++;
	if (end < n) {
		json_object_put(o);
		snprintf(why, len, "not valid JSON: extra data at byte %zu",
			 end + 1);
		return NULL;
	}
	return o;
}

/* Strict JSON text into an object, or NULL with why. */
static json_object *parse_object(const char *s, size_t n, char *why,
				 size_t len)
{
	json_object *o = ig_parse_json(s, n, 0, why, len);

	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		snprintf(why, len, "a row must be a JSON object");
		return NULL;
	}
	return o;
}

/* A trimmed copy of string value v, or NULL when it needs no trim. */
static json_object *trimmed(json_object *v)
{
	const char *s, *t;
	size_t n, tn;

	if (!json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	t = s;
	tn = n;
	ig_trim(&t, &tn);
	if (tn == n)
		return NULL;
	return json_object_new_string_len(t, (int)tn);
}

static void trim_array(json_object *a, int deep);

/* Trims the string values of object o (and, when deep, of the objects
 * and strings in its arrays, one level). */
static void trim_object(json_object *o, int deep)
{
	struct json_object_iterator it = json_object_iter_begin(o),
				    end = json_object_iter_end(o);
	char *keys[64];
	json_object *vals[64];
	size_t n = 0, i;

	for (; !json_object_iter_equal(&it, &end) && n < 64;
	     json_object_iter_next(&it)) {
		json_object *v = json_object_iter_peek_value(&it), *t;

		if (deep && json_object_is_type(v, json_type_array)) {
			trim_array(v, 0);
			continue;
		}
		if (!(t = trimmed(v)))
			continue;
		keys[n] = strdup(json_object_iter_peek_name(&it));
		if (!keys[n]) {
			json_object_put(t);
			break;
		}
		vals[n++] = t;
	}
	for (i = 0; i < n; i++) {
		json_object_object_add(o, keys[i], vals[i]);
		free(keys[i]);
	}
}

static void trim_array(json_object *a, int deep)
{
	size_t i, n = json_object_array_length(a);

	for (i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(a, i), *t;

		if (json_object_is_type(v, json_type_object))
			trim_object(v, deep);
		else if ((t = trimmed(v)))
			json_object_array_put_idx(a, i, t);
	}
}

char *ig_json_text(json_object *o, size_t *len)
{
	int flags = JSON_C_TO_STRING_PLAIN;
	const char *s;
	char *d;

#ifdef JSON_C_TO_STRING_NOSLASHESCAPE
	flags |= JSON_C_TO_STRING_NOSLASHESCAPE;
#endif
	s = json_object_to_json_string_ext(o, flags);
	if (!s || !(d = strdup(s)))
		return NULL;
	*len = strlen(d);
	return d;
}

int m2w_ingest_json_row(const struct m2w_ingest_opts *opts, const char *json,
			size_t len, uint64_t line, struct m2w_ingest_row *r)
{
	const struct m2w_job *job;
	const char *kf, *t = json;
	char why[M2W_INGEST_REASON_MAX], keyval[M2W_KEY_MAX + 1];
	char why1[M2W_INGEST_REASON_MAX], col1[M2W_INGEST_COLUMN_MAX + 1];
	json_object *o, *kv = NULL;
	size_t n = len, plen;
	char *payload;
	int rc;

	memset(r, 0, sizeof(*r));
	if (!opts || !(job = m2w_job_find(opts->type)))
		return ig_row_reject(r, NULL, "unknown job type \"%s\"",
			      opts && opts->type ? opts->type : "(none)");
	ig_trim(&t, &n);
	if (!n)
		return M2W_OK;
	if (memchr(t, '\0', n))
		return ig_row_reject(r, NULL, "not valid JSON: a NUL byte");
	if (!(o = parse_object(t, n, why, sizeof(why))))
		return ig_row_reject(r, NULL, "%s", why);
	trim_object(o, job->item_fields != NULL);
	kf = opts->key_field && *opts->key_field ? opts->key_field : NULL;
	if (kf) {
		if (!json_object_object_get_ex(o, kf, &kv) || !kv) {
			json_object_put(o);
			return ig_row_reject(r, kf, "missing \"%s\" (the idempotency "
				      "key)", kf);
		}
		if (json_object_is_type(kv, json_type_int)) {
			snprintf(keyval, sizeof(keyval), "%lld",
				 (long long)json_object_get_int64(kv));
		} else if (json_object_is_type(kv, json_type_string) &&
			   json_object_get_string_len(kv) > 0) {
			snprintf(keyval, sizeof(keyval), "%s",
				 json_object_get_string(kv));
			if (strlen(keyval) + strlen(opts->type) + 1 >
			    M2W_KEY_MAX) {
				json_object_put(o);
				return ig_row_reject(r, kf, "\"%s\" is too long for a "
					      "key", kf);
			}
		} else {
			json_object_put(o);
			return ig_row_reject(r, kf, "\"%s\" must be a string or an "
				      "integer (the idempotency key)", kf);
		}
	}
	if (!(payload = ig_json_text(o, &plen))) {
		json_object_put(o);
		return M2W_ENOMEM;
	}
	rc = ig_finish(job, opts->fingerprint, kf ? keyval : NULL, line,
		       payload, plen, o, r);
	if (rc == M2W_EINVAL && kf) {
		/* the key field may be no payload key: try without it */
		snprintf(why1, sizeof(why1), "%s", r->reason);
		snprintf(col1, sizeof(col1), "%s", r->column);
		json_object_object_del(o, kf);
		if (!(payload = ig_json_text(o, &plen))) {
			json_object_put(o);
			return M2W_ENOMEM;
		}
		rc = ig_finish(job, opts->fingerprint, keyval, line, payload,
			       plen, o, r);
		snprintf(why, sizeof(why), "missing \"%s\"", kf);
		if (rc == M2W_EINVAL && strcmp(r->reason, why) == 0) {
			snprintf(r->reason, sizeof(r->reason), "%s", why1);
			snprintf(r->column, sizeof(r->column), "%s", col1);
		}
	}
	json_object_put(o);
	return rc;
}

/* ------------------------------------------------------------ batches */

void m2w_ingest_opts_init(struct m2w_ingest_opts *o, const char *type)
{
	memset(o, 0, sizeof(*o));
	o->type = type;
	o->format = M2W_INGEST_CSV;
	o->batch = M2W_INGEST_BATCH;
}

static int store_commit(struct ig *g, uint64_t settled, uint64_t line);

/* The store sink's rejected row: counted, to the caller's on_error. */
static void store_reject(struct ig *g, uint64_t line, const char *column,
			 const char *reason, const char *row)
{
	g->res->rejected++;
	if (g->on_error)
		g->on_error(g->arg, line, column && *column ? column : NULL,
			    reason, row ? row : "");
}

/* The collector's rejected row: listed in the body. */
static void collect_reject(struct ig *g, uint64_t line, const char *column,
			   const char *reason, const char *row)
{
	(void)row;
	ig_body_error(g, g->res->rows, line, column, "%s", reason);
}

static const struct ig_sink store_sink = { store_commit, store_reject };
static const struct ig_sink collect_sink = { NULL, collect_reject };

/* Whether a stream of `format` may carry job's tasks; else g->rc. */
static int takes(struct ig *g, const struct m2w_job *job, int format)
{
	static const unsigned bit[] = { M2W_IN_CSV, M2W_IN_NDJSON,
					M2W_IN_JSON };
	static const char *const name[] = { "CSV", "NDJSON", "JSON" };

	if (format < 0 || format > M2W_INGEST_JSON)
		return g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "unknown %s"
					"format %d", g->body ? "body " : "",
					format);
	if (format != M2W_INGEST_CSV && !(job->inputs & bit[format]))
		return g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "type %s cannot "
					"come as %s", job->name, name[format]);
	return M2W_OK;
}

static void ig_setup(struct ig *g, const struct ig_sink *sink,
		     const struct m2w_ingest_opts *o,
		     struct m2w_ingest_result *res, char *errbuf)
{
	memset(g, 0, sizeof(*g));
	g->sink = sink;
	memset(res, 0, sizeof(*res));
	g->o = o;
	g->res = res;
	g->errbuf = errbuf;
	g->source = o->source && *o->source ? o->source : "stdin";
}

/* A stream into the store (the store sink). */
static int stream_init(struct ig *g, struct m2w_queue *q,
		       const struct m2w_ingest_opts *o,
		       struct m2w_ingest_result *res,
		       m2w_ingest_error_fn on_error, void *arg, char *errbuf)
{
	ig_setup(g, &store_sink, o, res, errbuf);
	g->q = q;
	g->on_error = on_error;
	g->arg = arg;
	g->batch = o->batch ? o->batch : M2W_INGEST_BATCH;
	if (g->batch > 100000)
		g->batch = 100000;
	if (!q)
		return m2w_fail(errbuf, M2W_EINVAL, "no store");
	if (!o->type || !(g->job = m2w_job_find(o->type)))
		return m2w_fail(errbuf, M2W_EINVAL, "unknown job type \"%s\"",
				o->type ? o->type : "(none)");
	if (o->format == M2W_INGEST_JSON)
		return m2w_fail(errbuf, M2W_EINVAL, "JSON (not NDJSON) is read "
				"from request bodies only");
	if (takes(g, g->job, o->format))
		return g->rc;
	if (o->progress)
		g->base = *o->progress;
	g->t = calloc(g->batch, sizeof(*g->t));
	g->nt = calloc(g->batch, sizeof(*g->nt));
	if (!g->t || !g->nt)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	g->cap = g->batch;
	return M2W_OK;
}

int ig_init_collect(struct ig *g, const struct m2w_ingest_opts *o,
		    struct m2w_ingest_result *res, struct m2w_body *body,
		    uint64_t rows_max, char *errbuf)
{
	ig_setup(g, &collect_sink, o, res, errbuf);
	g->body = body;
	g->rows_max = rows_max;
	if (o->type && !(g->job = m2w_job_find(o->type)))
		return m2w_fail(errbuf, M2W_EINVAL, "unknown job type \"%s\"",
				o->type);
	if (g->job && takes(g, g->job, o->format))
		return g->rc;
	return M2W_OK;
}

static void task_free(struct ig_task *t)
{
	free(t->payload);
	free(t->idem);
	free(t->group);
	free(t->source);
	memset(t, 0, sizeof(*t));
}

void ig_release(struct ig *g)
{
	size_t i;

	for (i = 0; g->t && i < g->n; i++)
		task_free(&g->t[i]);
	free(g->t);
	free(g->nt);
	free(g->seen);
	ig_mrow_release(&g->pend);
	g->t = NULL;
	g->nt = NULL;
	g->seen = NULL;
	g->n = g->nseen = g->capseen = 0;
}

int ig_parcel_seen(struct ig *g, const struct ig_mrow *w, uint64_t line,
		   uint64_t *first)
{
	uint64_t h = w->parcel | 1;   /* 0 marks an empty slot */
	size_t i, mask;

	if (2 * (g->nseen + 1) > g->capseen) {   /* grow: half full at most */
		size_t cap = g->capseen ? 2 * g->capseen : 1024, j;
		struct ig_seen *t = calloc(cap, sizeof(*t));

		if (!t)
			return -1;
		for (j = 0; j < g->capseen; j++) {
			if (!g->seen[j].h)
				continue;
			for (i = g->seen[j].h & (cap - 1); t[i].h;
			     i = (i + 1) & (cap - 1))
				;
			t[i] = g->seen[j];
		}
		free(g->seen);
		g->seen = t;
		g->capseen = cap;
	}
	mask = g->capseen - 1;
	for (i = h & mask; g->seen[i].h; i = (i + 1) & mask)
		if (g->seen[i].h == h) {
			*first = g->seen[i].line;
			return 1;
		}
	g->seen[i].h = h;
	g->seen[i].line = line;
	g->nseen++;
	return 0;
}

int ig_next_row(struct ig *g)
{
	g->res->rows++;
	if (g->rows_max && g->res->rows > g->rows_max) {
		if (g->body)
			g->body->too_many = 1;
		g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "more than %llu rows "
				 "in one request: split it",
				 (unsigned long long)g->rows_max);
		return -1;
	}
	if (g->res->rows <= g->o->skip_rows) {
		g->res->skipped++;
		return 1;
	}
	return 0;
}

void ig_reject(struct ig *g, uint64_t line, const char *column,
	       const char *reason, const char *row)
{
	g->sink->reject(g, line, column, reason, row);
}

int ig_fail_at(struct ig *g, int rc, uint64_t line, const char *fmt, ...)
{
	char msg[M2W_ERRBUF_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (g->body)
		return g->rc = m2w_fail(g->errbuf, rc, "line %llu: %s",
					(unsigned long long)line, msg);
	return g->rc = m2w_fail(g->errbuf, rc, "%s:%llu: %s", g->source,
				(unsigned long long)line, msg);
}

/* The progress record after `settled` rows: the start's counters plus
 * this stream's. */
static void progress_set(const struct ig *g, struct m2w_file_info *f,
			 uint64_t settled)
{
	f->rows = settled > g->base.rows ? settled : g->base.rows;
	f->accepted = g->base.accepted + g->res->accepted;
	f->duplicates = g->base.duplicates + g->res->duplicates;
	f->rejected = g->base.rejected + g->res->rejected;
}

int ig_commit(struct ig *g, uint64_t settled, uint64_t line)
{
	if (g->rc || !g->sink->commit) /* collecting: the tasks stay in g->t */
		return g->rc;
	return g->sink->commit(g, settled, line);
}

/*
 * The store sink: commits the tasks held, then records that `settled`
 * rows (ending at `line`) are settled. A store error stops the stream
 * (g->rc).
 */
static int store_commit(struct ig *g, uint64_t settled, uint64_t line)
{
	size_t i;
	int rc;

	for (i = 0; i < g->n; i++) {
		struct m2w_new_task *nt = &g->nt[i];

		memset(nt, 0, sizeof(*nt));
		nt->type = g->t[i].type;
		nt->payload = g->t[i].payload;
		nt->payload_len = g->t[i].len;
		nt->source = g->t[i].source;
		nt->idem_key = g->t[i].idem;
		nt->group_key = g->t[i].group;
		nt->loaded = 1; /* ig_finish loaded it */
		nt->supersede = g->t[i].supersede;
	}
	if (g->n) {
		char eb[M2W_ERRBUF_SIZE] = "";

		if (g->o->progress) {
			struct m2w_file_info f = *g->o->progress;
			uint64_t rows = 0;

			for (i = 0; i < g->n; i++)
				rows += g->t[i].nrows;
			progress_set(g, &f, settled);
			f.accepted += rows; /* until the commit tells */
			rc = m2w_queue_enqueue_file(g->q, g->nt, g->n, &f, eb);
		} else {
			rc = m2w_queue_enqueue(g->q, g->nt, g->n, eb);
		}
		if (rc != M2W_OK) {
			m2w_fail(g->errbuf, rc, "%s: lines %llu-%llu not "
				 "enqueued: %s", g->source,
				 (unsigned long long)g->t[0].line,
				 (unsigned long long)g->t[g->n - 1].line,
				 eb[0] ? eb : m2w_strerror(rc));
			for (i = 0; i < g->n; i++)
				task_free(&g->t[i]);
			g->n = 0;
			return g->rc = rc;
		}
	}
	for (i = 0; i < g->n; i++) {
		if (g->nt[i].duplicate) {
			g->res->duplicates += g->t[i].nrows;
		} else {
			g->res->accepted += g->t[i].nrows;
			g->res->tasks++;
		}
		if (g->o->on_task)
			g->o->on_task(g->arg, g->t[i].line, g->nt[i].id,
				      g->nt[i].duplicate);
		task_free(&g->t[i]);
	}
	g->n = 0;
	if (settled > g->res->committed_rows) {
		g->res->committed_rows = settled;
		g->res->committed_line = line;
	}
	if (g->o->progress)
		progress_set(g, g->o->progress, g->res->committed_rows);
	return M2W_OK;
}

int ig_add(struct ig *g, const char *type, struct m2w_ingest_row *r,
	   uint64_t row, uint64_t line, uint64_t nrows, int64_t not_before)
{
	const struct m2w_job *job = type ? m2w_job_find(type) : g->job;
	struct ig_task *t;
	char label[SOURCE_LABEL_MAX + 32];

	if (!job)
		return g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "unknown job "
					"type \"%s\"", type ? type : "(none)");
	if (g->n == g->cap) { /* collecting: the list grows */
		size_t cap = g->cap ? 2 * g->cap : 16;
		struct ig_task *nt = realloc(g->t, cap * sizeof(*nt));

		if (!nt)
			return g->rc = m2w_fail(g->errbuf, M2W_ENOMEM,
						"out of memory");
		g->t = nt;
		g->cap = cap;
	}
	t = &g->t[g->n];
	snprintf(label, sizeof(label), "%.*s:%llu", SOURCE_LABEL_MAX,
		 g->source, (unsigned long long)(line ? line : row));
	memset(t, 0, sizeof(*t));
	t->type = job->name;
	t->not_before = not_before;
	t->row = row;
	t->payload = r->payload;
	t->len = r->payload_len;
	r->payload = NULL;
	t->idem = r->idem[0] ? strdup(r->idem) : NULL;
	t->group = r->group[0] ? strdup(r->group) : NULL;
	t->supersede = r->supersede;
	t->source = strdup(label);
	t->line = line;
	t->nrows = nrows;
	if ((r->idem[0] && !t->idem) || (r->group[0] && !t->group) ||
	    !t->source) {
		task_free(t);
		return g->rc = m2w_fail(g->errbuf, M2W_ENOMEM, "out of memory");
	}
	g->n++;
	return M2W_OK;
}

int ig_push(struct ig *g, struct m2w_ingest_row *r, uint64_t row,
	    uint64_t line, uint64_t nrows, uint64_t settled,
	    uint64_t settled_line)
{
	if (ig_add(g, NULL, r, row, line, nrows, 0) != M2W_OK)
		return g->rc;
	if (g->sink->commit && g->n >= g->batch)
		return ig_commit(g, settled, settled_line);
	return M2W_OK;
}

/* Moves the open parcel (merged tracking rows) into the batch. */
int ig_flush_pend(struct ig *g, const struct m2w_ingest_map *m,
		  uint64_t settled, uint64_t line)
{
	struct m2w_ingest_row r;
	int rc;

	if (!g->has_pend)
		return M2W_OK;
	g->has_pend = 0;
	memset(&r, 0, sizeof(r));   /* out of memory leaves it unset */
	rc = ig_mrow_finish(m, &g->pend, g->pend_line, &r);
	if (rc == M2W_OK)
		rc = ig_push(g, &r, g->pend_row, g->pend_line, g->pend_rows,
			     settled, line);
	else if (rc == M2W_EINVAL) {
		/* cannot be, each row checked alone: but never lose it */
		uint64_t k;

		for (k = 0; k < g->pend_rows; k++)
			ig_reject(g, g->pend_line, r.column, r.reason, "");
		rc = M2W_OK;
	} else {
		g->rc = m2w_fail(g->errbuf, rc, "out of memory");
	}
	m2w_ingest_row_release(&r);
	ig_mrow_release(&g->pend);
	return rc;
}

/* ------------------------------------------------------------- NDJSON */

/* A bare envelope line of a body (collecting without a type). */
static void ndjson_item(struct ig *g, const char *t, size_t tn, uint64_t line)
{
	char why[M2W_ERRBUF_SIZE];
	json_object *v;

	if (memchr(t, '\0', tn)) {
		ig_reject(g, line, NULL, "not valid JSON: a NUL byte", "");
	} else if (!(v = ig_parse_json(t, tn, 1, why, sizeof(why)))) {
		ig_reject(g, line, NULL, why, "");
	} else {
		ig_body_item(g, v, g->res->rows, line);
		json_object_put(v);
	}
}

static void ndjson_line(struct ig *g, const char *s, size_t n, int toolong,
			uint64_t line)
{
	struct m2w_ingest_row r;
	const char *t = s;
	size_t tn = n;
	int rc;

	if (line == 1 && tn >= 3 && memcmp(t, "\xef\xbb\xbf", 3) == 0) {
		t += 3;
		tn -= 3;
	}
	ig_trim(&t, &tn);
	if (!tn && !toolong)
		return;
	rc = ig_next_row(g);
	if (rc < 0)
		return;
	g->last_line = line;
	if (rc > 0)
		return;
	if (toolong) {
		char why[80];

		snprintf(why, sizeof(why), "line is longer than %u bytes",
			 (unsigned)M2W_INGEST_RECORD_MAX);
		ig_reject(g, line, NULL, why, "");
		return;
	}
	if (!g->job) {
		ndjson_item(g, t, tn, line);
		return;
	}
	rc = m2w_ingest_json_row(g->o, t, tn, line, &r);
	if (rc == M2W_OK && r.payload) {
		ig_push(g, &r, g->res->rows, line, 1, g->res->rows, line);
	} else if (rc == M2W_EINVAL) {
		struct m2w_buf row;

		memset(&row, 0, sizeof(row));
		if (!g->body)
			m2w_buf_add(&row, t, tn);
		ig_reject(g, line, r.column, r.reason, row.buf ? row.buf : "");
		m2w_buf_release(&row);
	} else if (rc != M2W_OK) {
		g->rc = m2w_fail(g->errbuf, rc, "out of memory");
	}
	m2w_ingest_row_release(&r);
}

/* NDJSON cut into lines, chunk by chunk. */
struct nds {
	struct m2w_buf line;       /* the line so far */
	uint64_t lineno;
	int toolong;
};

static void nd_feed(struct ig *g, struct nds *d, const char *buf, size_t n)
{
	size_t i, start;

	for (start = i = 0; i <= n && !g->rc; i++) {
		if (i < n && buf[i] != '\n')
			continue;
		if (!d->toolong) {
			if (d->line.len + (i - start) > M2W_INGEST_RECORD_MAX) {
				d->toolong = 1;
				m2w_buf_reset(&d->line);
			} else {
				m2w_buf_add(&d->line, buf + start, i - start);
			}
		}
		start = i + 1;
		if (i == n)
			break;
		ndjson_line(g, d->line.buf ? d->line.buf : "", d->line.len,
			    d->toolong, d->lineno++);
		m2w_buf_reset(&d->line);
		d->toolong = 0;
	}
	if (d->line.failed && !g->rc)
		g->rc = m2w_fail(g->errbuf, M2W_ENOMEM, "out of memory");
}

/* The last line (no LF after it), the commit; frees d. */
static int nd_end(struct ig *g, struct nds *d)
{
	if (!g->rc && (d->line.len || d->toolong))
		ndjson_line(g, d->line.buf ? d->line.buf : "", d->line.len,
			    d->toolong, d->lineno);
	m2w_buf_release(&d->line);
	if (!g->rc)
		ig_commit(g, g->res->rows, g->last_line);
	return g->rc;
}

static int ndjson_run(struct ig *g, FILE *in)
{
	char *buf = malloc(M2W_INGEST_CHUNK);
	struct nds d;
	size_t n;

	if (!buf)
		return g->rc = m2w_fail(g->errbuf, M2W_ENOMEM, "out of memory");
	memset(&d, 0, sizeof(d));
	d.lineno = 1;
	while (!g->rc && (n = fread(buf, 1, M2W_INGEST_CHUNK, in)) > 0)
		nd_feed(g, &d, buf, n);
	if (!g->rc && ferror(in))
		g->rc = m2w_fail(g->errbuf, M2W_EIO, "%s: read error at line "
				 "%llu: %s", g->source,
				 (unsigned long long)d.lineno, strerror(errno));
	free(buf);
	return nd_end(g, &d);
}

int ig_ndjson_mem(struct ig *g, const char *p, size_t n)
{
	struct nds d;

	memset(&d, 0, sizeof(d));
	d.lineno = 1;
	nd_feed(g, &d, p, n);
	return nd_end(g, &d);
}

int m2w_ingest_stream(struct m2w_queue *q, FILE *in,
		      const struct m2w_ingest_opts *opts,
		      struct m2w_ingest_result *result,
		      m2w_ingest_error_fn on_error, void *arg, char *errbuf)
{
	struct m2w_ingest_result dummy;
	struct ig g;
	int rc;

	if (!result)
		result = &dummy;
	if (!opts || !in) {
		memset(result, 0, sizeof(*result));
		return m2w_fail(errbuf, M2W_EINVAL, "no input or options");
	}
	rc = stream_init(&g, q, opts, result, on_error, arg, errbuf);
	if (rc == M2W_OK) {
		if (opts->format == M2W_INGEST_NDJSON)
			rc = ndjson_run(&g, in);
		else if (opts->format == M2W_INGEST_CSV)
			rc = ig_csv_run(&g, in);
		else
			rc = m2w_fail(errbuf, M2W_EINVAL, "unknown format %d",
				      opts->format);
	}
	ig_release(&g);
	return rc;
}

/* -------------------------------------------------------- fingerprint */

int m2w_ingest_fingerprint(FILE *f, char *hex, char *errbuf)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx;
	char *buf;
	long pos;
	size_t n;
	int rc = M2W_OK;

	hex[0] = '\0';
	if ((pos = ftell(f)) < 0)
		return m2w_fail(errbuf, M2W_EINVAL, "input is not a file "
				"(cannot seek): %s", strerror(errno));
	if (!(buf = malloc(M2W_INGEST_CHUNK)))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	ctx = EVP_MD_CTX_create();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		rc = m2w_fail(errbuf, M2W_ENOMEM, "cannot start SHA-256");
		goto out;
	}
	while ((n = fread(buf, 1, M2W_INGEST_CHUNK, f)) > 0)
		EVP_DigestUpdate(ctx, buf, n);
	if (ferror(f)) {
		rc = m2w_fail(errbuf, M2W_EIO, "read error: %s",
			      strerror(errno));
		goto out;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (i = 0; i < mdlen && i * 2 < M2W_FINGERPRINT_HEX; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * i] = '\0';
	clearerr(f);
	if (fseek(f, pos, SEEK_SET) != 0)
		rc = m2w_fail(errbuf, M2W_EIO, "cannot seek back: %s",
			      strerror(errno));
out:
	if (ctx)
		EVP_MD_CTX_destroy(ctx);
	free(buf);
	return rc;
}
