/*
 * jobs_internal.h - what the job types (job_*.c) share: a table-driven
 * payload checker over json-c, trimmed getters, and outcome setters.
 * Defined in jobs.c. Everything here is pure and thread-safe.
 */
#ifndef M2W_JOBS_INTERNAL_H
#define M2W_JOBS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "m2worker/jobs.h"

/* Longest strings the payloads may carry (they end up in fixed buffers of
 * magento.h and in keys of M2W_KEY_MAX bytes). */
#define JF_ORDER_MAX 63   /* struct m2_order.increment_id */
#define JF_TEXT_MAX 127   /* track number, carrier, title, sku, source */
#define JF_PATH_MAX 2048  /* rest path */

enum jf_type {
	JF_STRING = 0,  /* trimmed, non-empty, at most `max` bytes */
	JF_NUMBER,      /* int or double, finite */
	JF_INT,         /* an integer */
	JF_BOOL,
	JF_ARRAY,       /* checked by the job itself */
	JF_ANY          /* any JSON value, null too */
};

enum jf_range {
	JF_ANY_VALUE = 0,
	JF_GE0,         /* >= 0 */
	JF_GT0,         /* > 0 */
	JF_BIT          /* 0 or 1 */
};

/* One key of a payload object; tables end with a NULL name. */
struct jf_field {
	const char *name;
	int type;       /* enum jf_type */
	int required;
	int range;      /* enum jf_range, numbers */
	size_t max;     /* strings: longest trimmed length */
};

/*
 * Parses `payload` (strict JSON, nothing after it) into an object.
 * 0 and *out (json_object_put it), or -1 with why ("payload is not valid
 * JSON: ...", "payload must be a JSON object").
 */
int jf_parse(const char *payload, struct json_object **out, char *why,
	     size_t len);

/*
 * Checks object `o` against `fields`: required keys present, types and
 * ranges right, no other keys. `prefix` ("items[2].", or "") goes before
 * the key name in why: `missing "items[2].sku"`. 0 or -1.
 */
int jf_check(struct json_object *o, const struct jf_field *fields,
	     const char *prefix, char *why, size_t len);

/* jf_parse + jf_check; 0 and *out, or -1 (nothing to free). */
int jf_load(const char *payload, const struct jf_field *fields,
	    struct json_object **out, char *why, size_t len);

/* The trimmed string at key into out (cut to size); 1 when present, 0
 * (out = "") when absent or null. */
int jf_str(struct json_object *o, const char *key, char *out, size_t size);
/* Number / integer / bool at key, or dflt when absent or null. */
double jf_num(struct json_object *o, const char *key, double dflt);
int64_t jf_int(struct json_object *o, const char *key, int64_t dflt);
int jf_bool(struct json_object *o, const char *key, int dflt);
/* The value at key (borrowed), NULL when absent or null. */
struct json_object *jf_get(struct json_object *o, const char *key);

/* snprintf into a key buffer of M2W_KEY_MAX + 1 bytes: 0, or -1 (key
 * emptied) when it does not fit. */
int jf_key(char *key, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* Sets o to err / cls with a printf message (calls is kept). */
void jf_outcome(struct m2w_outcome *o, int err, int cls, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;

/* Done, with what was done. */
#define jf_done(o, ...) jf_outcome((o), M2W_OK, M2W_CLASS_OK, __VA_ARGS__)

/* A payload that does not check at run time: M2W_EINVAL, permanent. */
void jf_bad_payload(struct m2w_outcome *o, const char *why);

/* Clears out[0..n). */
void jf_outcomes_clear(struct m2w_outcome *out, size_t n);

#endif
