/*
 * jobs_internal.h - what the job types (job_*.c) share: trimmed getters
 * over a loaded payload, and outcome setters. Defined in jobs.c. The jobs
 * layer (src/jobs/) sits on util, store and magento: it may include
 * "m2worker/{error,log,queue,magento,jobs}.h" and json-c, nothing of
 * src/ingest or src/daemon. Everything here is pure and thread-safe.
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
#define JF_TEXT_MAX M2W_JOB_TEXT_MAX /* track, carrier, title, sku, source */
#define JF_PATH_MAX 2048  /* rest path */

/* Offset of a member of a job's settings struct (struct m2w_setting.off). */
#define JF_SET(type, member) offsetof(type, member)

/* The trimmed string at key into out (cut to size); 1 when present, 0
 * (out = "") when absent or null. */
int jf_str(struct json_object *o, const char *key, char *out, size_t size);
/* Number / integer / bool at key, or dflt when absent or null. */
double jf_num(struct json_object *o, const char *key, double dflt);
int64_t jf_int(struct json_object *o, const char *key, int64_t dflt);
int jf_bool(struct json_object *o, const char *key, int dflt);
/* The value at key (borrowed), NULL when absent or null. */
struct json_object *jf_get(struct json_object *o, const char *key);

/* Sets o to err / cls with a printf message (calls is kept). */
void jf_outcome(struct m2w_outcome *o, int err, int cls, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;

/* Done, with what was done. */
#define jf_done(o, ...) jf_outcome((o), M2W_OK, M2W_CLASS_OK, __VA_ARGS__)


#endif
