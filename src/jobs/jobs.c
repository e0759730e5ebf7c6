/*
 * jobs.c - the job type table, and what every type shares: loading a
 * payload against its field table, keys from templates, outcomes, and the
 * getters of jobs_internal.h.
 *
 * The table (`all` below) is the one place that lists the types; the
 * config sections, the CSV map, the inputs a type accepts and the worker's
 * batches all come from the entries. A payload is checked on its way in
 * (so a bad row is refused with a reason naming the field before it is
 * ever stored) and again when it runs (a store may hold payloads written
 * by an older version): both go through m2w_job_load, so the two can
 * never disagree, and each parses the text once. Strings are trimmed
 * before they are measured or used, so " 1000000001 " and "1000000001"
 * are the same order (and the same idempotency key).
 *
 * Everything here is pure: no globals, thread-safe.
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "jobs_internal.h"

/* ------------------------------------------------------------- table */

/* Every job type. A new type: its file (job_NAME.c), and its name here,
 * twice. */
extern const struct m2w_job m2w_job_tracking, m2w_job_stock, m2w_job_price,
	m2w_job_rest;

static const struct m2w_job *const all[] = {
	&m2w_job_tracking,
	&m2w_job_stock,
	&m2w_job_price,
	&m2w_job_rest,
};

const struct m2w_job *m2w_job_at(size_t i)
{
	return i < sizeof(all) / sizeof(all[0]) ? all[i] : NULL;
}

const struct m2w_job *m2w_job_find(const char *type)
{
	size_t i;

	for (i = 0; type && i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i]->name, type) == 0)
			return all[i];
	return NULL;
}

const char *m2w_job_names(unsigned inputs, char *buf, size_t size)
{
	size_t i, k = 0, n = 0, o = 0;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		n += (all[i]->inputs & inputs) == inputs;
	buf[0] = '\0';
	for (i = 0; i < sizeof(all) / sizeof(all[0]) && o < size; i++) {
		if ((all[i]->inputs & inputs) != inputs)
			continue;
		o += (size_t)snprintf(buf + o, size - o, "%s%s",
				      k == 0 ? "" : k + 1 == n ? " or " : ", ",
				      all[i]->name);
		k++;
	}
	return buf;
}

const struct m2w_field *m2w_job_field(const struct m2w_job *job,
				      const char *name, int *item)
{
	const struct m2w_field *f;

	if (item)
		*item = 0;
	for (f = job->fields; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	for (f = job->item_fields; f && f->name; f++)
		if (strcmp(f->name, name) == 0) {
			if (item)
				*item = 1;
			return f;
		}
	return NULL;
}

const char *m2w_map_get(const struct m2w_map *m, const char *name)
{
	size_t i, len;

	if (!m || !name)
		return NULL;
	while (*name == ' ' || *name == '\t')
		name++;
	len = strlen(name);
	while (len && (name[len - 1] == ' ' || name[len - 1] == '\t'))
		len--;
	for (i = 0; i < m->n; i++)
		if (strlen(m->v[i].name) == len &&
		    strncasecmp(m->v[i].name, name, len) == 0)
			return m->v[i].value;
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

/* A payload that does not load at run time: M2W_EINVAL, permanent. */
static void bad_payload(struct m2w_outcome *o, const char *why)
{
	jf_outcome(o, M2W_EINVAL, M2W_CLASS_PERMANENT, "bad payload: %s", why);
}

/* Sets out[0..n) alike (out of memory for a whole batch). */
static void outcomes_set(struct m2w_outcome *out, size_t n, int err,
			 int cls, const char *msg)
{
	size_t i;

	for (i = 0; i < n; i++)
		jf_outcome(&out[i], err, cls, "%s", msg);
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

static int parse(const char *payload, struct json_object **out, char *why,
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

static int check_string(struct json_object *v, const struct m2w_field *f,
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

static int check_range(double d, const struct m2w_field *f, const char *pre,
		       char *why, size_t len)
{
	switch (f->range) {
	case M2W_RANGE_GE0:
		if (d < 0)
			return fail(why, len, "\"%s%s\" must be >= 0", pre,
				    f->name);
		break;
	case M2W_RANGE_GT0:
		if (d <= 0)
			return fail(why, len, "\"%s%s\" must be > 0", pre,
				    f->name);
		break;
	case M2W_RANGE_BIT:
		if (d != 0 && d != 1)
			return fail(why, len, "\"%s%s\" must be 0 or 1", pre,
				    f->name);
		break;
	case M2W_RANGE_INT32:
		if (d < 0)
			return fail(why, len, "\"%s%s\" must be >= 0", pre,
				    f->name);
		if (d > INT32_MAX)
			return fail(why, len, "\"%s%s\" is too large", pre,
				    f->name);
		break;
	default:
		break;
	}
	return 0;
}

static int check_number(struct json_object *v, const struct m2w_field *f,
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

static int check_int(struct json_object *v, const struct m2w_field *f,
		     const char *pre, char *why, size_t len)
{
	if (!json_object_is_type(v, json_type_int))
		return fail(why, len, "\"%s%s\" must be an integer", pre,
			    f->name);
	return check_range((double)json_object_get_int64(v), f, pre, why,
			   len);
}

static int check_value(struct json_object *v, const struct m2w_field *f,
		       const char *pre, char *why, size_t len)
{
	switch (f->type) {
	case M2W_FIELD_STRING:
		return check_string(v, f, pre, why, len);
	case M2W_FIELD_NUMBER:
		return check_number(v, f, pre, why, len);
	case M2W_FIELD_INT:
		return check_int(v, f, pre, why, len);
	case M2W_FIELD_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return fail(why, len, "\"%s%s\" must be true or false",
				    pre, f->name);
		return 0;
	case M2W_FIELD_ITEMS:
		if (!json_object_is_type(v, json_type_array))
			return fail(why, len, "\"%s%s\" must be an array", pre,
				    f->name);
		return 0;
	default:
		return 0;
	}
}

static const struct m2w_field *field_of(const struct m2w_field *fields,
				       const char *key)
{
	for (; fields->name; fields++)
		if (strcmp(fields->name, key) == 0)
			return fields;
	return NULL;
}

static int check_fields(struct json_object *o, const struct m2w_job *job,
			const struct m2w_field *fields, const char *prefix,
			char *why, size_t len);

/* "items": 1..items_max objects of the job's item fields. */
static int check_items(struct json_object *a, const struct m2w_job *job,
		       const struct m2w_field *f, char *why, size_t len)
{
	size_t i, n = json_object_array_length(a);
	char pre[48];

	if (n == 0)
		return fail(why, len, "\"%s\" must not be empty", f->name);
	if (job->items_max && n > job->items_max)
		return fail(why, len, "\"%s\" has more than %u entries",
			    f->name, job->items_max);
	for (i = 0; i < n; i++) {
		struct json_object *it = json_object_array_get_idx(a, i);

		snprintf(pre, sizeof(pre), "%s[%zu].", f->name, i);
		if (!json_object_is_type(it, json_type_object))
			return fail(why, len, "\"%s[%zu]\" must be an object",
				    f->name, i);
		if (check_fields(it, job, job->item_fields, pre, why, len))
			return -1;
	}
	return 0;
}

/*
 * Checks object o against `fields`: required keys present, types and
 * ranges right, no other keys. `prefix` ("items[2].", or "") goes before
 * the key name in why: `missing "items[2].sku"`.
 */
static int check_fields(struct json_object *o, const struct m2w_job *job,
			const struct m2w_field *fields, const char *prefix,
			char *why, size_t len)
{
	const struct m2w_field *f;
	struct json_object *v;

	json_object_object_foreach(o, key, val) {
		(void)val;
		if (!field_of(fields, key))
			return fail(why, len, "unknown key \"%s%s\"", prefix,
				    key);
	}
	for (f = fields; f->name; f++) {
		if (!json_object_object_get_ex(o, f->name, &v) ||
		    (v == NULL && f->type != M2W_FIELD_ANY)) {
			/* absent, or null (the same as absent) */
			if (f->required)
				return fail(why, len, "missing \"%s%s\"",
					    prefix, f->name);
			continue;
		}
		if (check_value(v, f, prefix, why, len))
			return -1;
		if (f->type == M2W_FIELD_ITEMS && job->item_fields &&
		    check_items(v, job, f, why, len))
			return -1;
	}
	return 0;
}

int m2w_job_check_object(const struct m2w_job *job, struct json_object *o,
			 char *why, size_t len)
{
	if (!json_object_is_type(o, json_type_object))
		return fail(why, len, "payload must be a JSON object");
	if (check_fields(o, job, job->fields, "", why, len))
		return -1;
	return job->check ? job->check(o, why, len) : 0;
}

int m2w_job_load(const struct m2w_job *job, const char *payload,
		 struct json_object **out, char *why, size_t len)
{
	struct json_object *o;

	*out = NULL;
	if (parse(payload, &o, why, len))
		return -1;
	if (m2w_job_check_object(job, o, why, len)) {
		json_object_put(o);
		return -1;
	}
	*out = o;
	return 0;
}

/* ---------------------------------------------------------------- keys */

/* Appends the value of the field named f[0..n) ("sku", "store_id=0") of
 * o to key at *k; -1 when it does not fit. */
static int key_value(struct json_object *o, const char *f, size_t n,
		     char *key, size_t *k)
{
	char name[64], val[M2W_KEY_MAX + 1];
	const char *eq = memchr(f, '=', n), *dflt = "";
	size_t nn = eq ? (size_t)(eq - f) : n, dn = eq ? n - nn - 1 : 0;
	struct json_object *v;

	if (nn >= sizeof(name))
		return -1;
	memcpy(name, f, nn);
	name[nn] = '\0';
	if (eq)
		dflt = eq + 1;
	v = jf_get(o, name);
	if (v && json_object_is_type(v, json_type_int))
		snprintf(val, sizeof(val), "%" PRId64,
			 (int64_t)json_object_get_int64(v));
	else if (!jf_str(o, name, val, sizeof(val)))
		snprintf(val, sizeof(val), "%.*s", (int)dn, dflt);
	if (*k + strlen(val) > M2W_KEY_MAX)
		return -1;
	memcpy(key + *k, val, strlen(val));
	*k += strlen(val);
	return 0;
}

/* The template t over o into key (M2W_KEY_MAX + 1 bytes); "" for none. */
static int key_of(const char *t, struct json_object *o, char *key)
{
	const char *e;
	size_t k = 0;

	key[0] = '\0';
	for (; t && *t; t++) {
		if (*t == '{' && (e = strchr(t, '}'))) {
			if (key_value(o, t + 1, (size_t)(e - t - 1), key, &k))
				goto long_key;
			t = e;
			continue;
		}
		if (k >= M2W_KEY_MAX)
			goto long_key;
		key[k++] = *t;
	}
	key[k] = '\0';
	return 0;
long_key:
	key[0] = '\0';
	return -1;
}

int m2w_job_keys(const struct m2w_job *job, struct json_object *o,
		 char *idem, char *group, int *supersede)
{
	*supersede = 0;
	if (key_of(job->idem_key, o, idem) || key_of(job->group_key, o, group)) {
		idem[0] = group[0] = '\0';
		return -1;
	}
	*supersede = group[0] ? job->supersede : M2W_GROUP_FIFO;
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

/* ---------------------------------------------------------------- run */

int m2w_job_run(const struct m2w_job *job, const struct m2w_job_env *env,
		struct m2w_task *const *tasks, size_t n,
		struct m2w_outcome *out)
{
	struct json_object *stack[64] = { NULL }, **obj = stack;
	char why[256];
	size_t i;

	memset(out, 0, n * sizeof(*out));
	if (n > sizeof(stack) / sizeof(stack[0]) &&
	    !(obj = calloc(n, sizeof(*obj)))) {
		outcomes_set(out, n, M2W_ENOMEM, M2W_CLASS_TRANSIENT,
				"out of memory");
		return M2W_ENOMEM;
	}
	for (i = 0; i < n; i++)
		if (m2w_job_load(job, tasks[i]->payload, &obj[i], why,
				 sizeof(why)))
			bad_payload(&out[i], why);
	if (job->run)
		job->run(env, tasks, obj, n, out);
	for (i = 0; i < n; i++)
		if (!job->run && obj[i])
			job->run_one(env, obj[i], &out[i]);
	for (i = 0; i < n; i++)
		json_object_put(obj[i]);
	if (obj != stack)
		free(obj);
	return M2W_OK;
}
