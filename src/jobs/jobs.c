/*
 * jobs.c - the job type table, outcomes, and the payload checker the job
 * types share (jobs_internal.h).
 *
 * Payloads are checked twice: at enqueue (check(), so a bad row is refused
 * with a reason naming the field before it is ever stored) and again at
 * run time (a store may hold payloads written by an older version). Both
 * go through one table-driven checker, so the two can never disagree: a
 * job's table of struct jf_field says which keys exist, which are
 * required, their JSON types and ranges, and how long strings may be.
 * Strings are trimmed before they are measured or used, so " 1000000001 "
 * and "1000000001" are the same order (and the same idempotency key).
 *
 * Everything here is pure: no globals, thread-safe.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jobs_internal.h"

/* ------------------------------------------------------------- table */

const struct m2w_job *m2w_job_find(const char *type)
{
	static const struct m2w_job *const all[] = {
		&m2w_job_tracking, &m2w_job_stock, &m2w_job_price,
		&m2w_job_rest
	};
	size_t i;

	for (i = 0; type && i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i]->name, type) == 0)
			return all[i];
	return NULL;
}

/* ----------------------------------------------------------- outcomes */

/* The class of an error when the result does not say one. */
static int class_of(int err)
{
	switch (err) {
	case M2W_OK:
		return M2W_CLASS_OK;
	case M2W_EAUTH:
		return M2W_CLASS_AUTH;
	case M2W_EPERMANENT:
	case M2W_ENOTFOUND:
	case M2W_EINVAL:
		return M2W_CLASS_PERMANENT;
	default:
		return M2W_CLASS_TRANSIENT;
	}
}

void m2w_outcome_set(struct m2w_outcome *o, int rc,
		     const struct m2_result *res)
{
	o->err = rc;
	o->cls = res->cls;
	if (rc == M2W_OK)
		o->cls = M2W_CLASS_OK;
	else if (rc == M2W_ENOTFOUND || o->cls == M2W_CLASS_OK)
		o->cls = class_of(rc);
	o->http_status = res->http_status;
	o->retry_after_ms = res->retry_after_ms;
	snprintf(o->message, sizeof(o->message), "%s", res->message);
	if (rc != M2W_OK && !o->message[0])
		snprintf(o->message, sizeof(o->message), "%s",
			 m2w_strerror(rc));
}

void jf_outcome(struct m2w_outcome *o, int err, int cls, const char *fmt, ...)
{
	va_list ap;

	o->err = err;
	o->cls = cls;
	o->http_status = 0;
	o->retry_after_ms = 0;
	va_start(ap, fmt);
	vsnprintf(o->message, sizeof(o->message), fmt, ap);
	va_end(ap);
}

void jf_bad_payload(struct m2w_outcome *o, const char *why)
{
	jf_outcome(o, M2W_EINVAL, M2W_CLASS_PERMANENT, "bad payload: %s", why);
}

void jf_outcomes_clear(struct m2w_outcome *out, size_t n)
{
	memset(out, 0, n * sizeof(*out));
}

int jf_key(char *key, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(key, M2W_KEY_MAX + 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > M2W_KEY_MAX) {
		key[0] = '\0';
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ parsing */

static int fail(char *why, size_t len, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

static int fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

int jf_parse(const char *payload, struct json_object **out, char *why,
	     size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error err;
	size_t n, end;

	*out = NULL;
	if (!payload)
		return fail(why, len, "payload is missing");
	n = strlen(payload);
	tok = json_tokener_new();
	if (!tok)
		return fail(why, len, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, payload, (int)n);
	err = json_tokener_get_error(tok);
	end = (size_t)tok->char_offset; /* json-c < 0.15 has no getter */
	json_tokener_free(tok);
	if (!o) {
		if (err == json_tokener_continue || err == json_tokener_success)
			return fail(why, len, "payload is not valid JSON: "
				    "ends early");
		return fail(why, len, "payload is not valid JSON: %s",
			    json_tokener_error_desc(err));
	}
	while (end < n && is_space(payload[end]))
		end++;
	if (end < n) {
		json_object_put(o);
		return fail(why, len, "payload is not valid JSON: extra data "
			    "at byte %zu", end);
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return fail(why, len, "payload must be a JSON object");
	}
	*out = o;
	return 0;
}

/* [*start, *start + *n) is s without surrounding white space. */
static void trim(const char *s, size_t len, const char **start, size_t *n)
{
	while (len && is_space(*s)) {
		s++;
		len--;
	}
	while (len && is_space(s[len - 1]))
		len--;
	*start = s;
	*n = len;
}

static int check_string(struct json_object *v, const struct jf_field *f,
			const char *pre, char *why, size_t len)
{
	const char *s, *t;
	size_t n, tn;

	if (!json_object_is_type(v, json_type_string))
		return fail(why, len, "\"%s%s\" must be a string", pre,
			    f->name);
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (strlen(s) != n)
		return fail(why, len, "\"%s%s\" must not contain NUL", pre,
			    f->name);
	trim(s, n, &t, &tn);
	if (!tn)
		return fail(why, len, "\"%s%s\" must not be empty", pre,
			    f->name);
	if (f->max && tn > f->max)
		return fail(why, len, "\"%s%s\" is too long (at most %zu "
			    "bytes)", pre, f->name, f->max);
	return 0;
}

static int check_range(double d, const struct jf_field *f, const char *pre,
		       char *why, size_t len)
{
	switch (f->range) {
	case JF_GE0:
		if (d < 0)
			return fail(why, len, "\"%s%s\" must be >= 0", pre,
				    f->name);
		break;
	case JF_GT0:
		if (d <= 0)
			return fail(why, len, "\"%s%s\" must be > 0", pre,
				    f->name);
		break;
	case JF_BIT:
		if (d != 0 && d != 1)
			return fail(why, len, "\"%s%s\" must be 0 or 1", pre,
				    f->name);
		break;
	default:
		break;
	}
	return 0;
}

static int check_number(struct json_object *v, const struct jf_field *f,
			const char *pre, char *why, size_t len)
{
	double d;

	if (!json_object_is_type(v, json_type_int) &&
	    !json_object_is_type(v, json_type_double))
		return fail(why, len, "\"%s%s\" must be a number", pre,
			    f->name);
	d = json_object_get_double(v);
	if (!isfinite(d))
		return fail(why, len, "\"%s%s\" must be a finite number", pre,
			    f->name);
	return check_range(d, f, pre, why, len);
}

static int check_int(struct json_object *v, const struct jf_field *f,
		     const char *pre, char *why, size_t len)
{
	if (!json_object_is_type(v, json_type_int))
		return fail(why, len, "\"%s%s\" must be an integer", pre,
			    f->name);
	return check_range((double)json_object_get_int64(v), f, pre, why,
			   len);
}

static int check_value(struct json_object *v, const struct jf_field *f,
		       const char *pre, char *why, size_t len)
{
	switch (f->type) {
	case JF_STRING:
		return check_string(v, f, pre, why, len);
	case JF_NUMBER:
		return check_number(v, f, pre, why, len);
	case JF_INT:
		return check_int(v, f, pre, why, len);
	case JF_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return fail(why, len, "\"%s%s\" must be true or false",
				    pre, f->name);
		return 0;
	case JF_ARRAY:
		if (!json_object_is_type(v, json_type_array))
			return fail(why, len, "\"%s%s\" must be an array", pre,
				    f->name);
		return 0;
	default:
		return 0;
	}
}

static const struct jf_field *field_of(const struct jf_field *fields,
				       const char *key)
{
	for (; fields->name; fields++)
		if (strcmp(fields->name, key) == 0)
			return fields;
	return NULL;
}

int jf_check(struct json_object *o, const struct jf_field *fields,
	     const char *prefix, char *why, size_t len)
{
	const struct jf_field *f;
	struct json_object *v;

	json_object_object_foreach(o, key, val) {
		(void)val;
		if (!field_of(fields, key))
			return fail(why, len, "unknown key \"%s%s\"", prefix,
				    key);
	}
	for (f = fields; f->name; f++) {
		if (!json_object_object_get_ex(o, f->name, &v) ||
		    (v == NULL && f->type != JF_ANY)) {
			/* absent, or null (the same as absent) */
			if (f->required)
				return fail(why, len, "missing \"%s%s\"",
					    prefix, f->name);
			continue;
		}
		if (check_value(v, f, prefix, why, len))
			return -1;
	}
	return 0;
}

int jf_load(const char *payload, const struct jf_field *fields,
	    struct json_object **out, char *why, size_t len)
{
	struct json_object *o;

	*out = NULL;
	if (jf_parse(payload, &o, why, len))
		return -1;
	if (jf_check(o, fields, "", why, len)) {
		json_object_put(o);
		return -1;
	}
	*out = o;
	return 0;
}

/* ------------------------------------------------------------ getters */

struct json_object *jf_get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

int jf_str(struct json_object *o, const char *key, char *out, size_t size)
{
	struct json_object *v = jf_get(o, key);
	const char *t;
	size_t n;

	out[0] = '\0';
	if (!v || !json_object_is_type(v, json_type_string))
		return 0;
	trim(json_object_get_string(v), (size_t)json_object_get_string_len(v),
	     &t, &n);
	if (n >= size)
		n = size - 1;
	memcpy(out, t, n);
	out[n] = '\0';
	return 1;
}

double jf_num(struct json_object *o, const char *key, double dflt)
{
	struct json_object *v = jf_get(o, key);

	return v ? json_object_get_double(v) : dflt;
}

int64_t jf_int(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object *v = jf_get(o, key);

	return v ? json_object_get_int64(v) : dflt;
}

int jf_bool(struct json_object *o, const char *key, int dflt)
{
	struct json_object *v = jf_get(o, key);

	return v ? json_object_get_boolean(v) != 0 : dflt;
}
