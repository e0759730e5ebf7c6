/*
 * report.h - the JSON shapes operators see: `qctl --json` and the HTTP
 * API (/v1/stats, /v1/tasks/{id}, the console's dead letters) print the
 * same objects, documented in qctl(8). The caller owns the returned json-c
 * object (json_object_put).
 */
#ifndef M2WORKER_REPORT_H
#define M2WORKER_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "m2worker/admin.h"
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A task; with its payload (parsed JSON) when `payload`. */
json_object *m2w_task_json(const struct m2w_task *t, int payload);

/* A task's attempts (m2w_queue_history) as an array of {"attempt",
 * "at_ms", "duration_ms", "http_status", "outcome", "message"}. */
json_object *m2w_attempts_json(const struct m2w_attempt *h, size_t n);
/* An attempt's outcome as a word: ok, transient, permanent, auth,
 * expired, released, snoozed. */
const char *m2w_outcome_name(int outcome);

/* Counts per type and state, ages relative to `now` (ms), map use. */
json_object *m2w_stats_json(const struct m2w_stats *st, int64_t now);

/* Dead letters grouped (m2w_queue_dead_groups): {"groups": [{"type",
 * "error" (the exact text, "" when none), "count", "first_ms", "last_ms",
 * "example_id", "last_status" (null when none)}], "scanned": n}. The
 * error is raw text: a page that shows it escapes it. */
json_object *m2w_dead_groups_json(const struct m2w_dead_group *g, size_t n,
				  uint64_t scanned);

#ifdef __cplusplus
}
#endif
#endif
