/*
 * report.c - the JSON of a task, of the store's stats and of the dead
 * letters grouped, built in one place so that qctl and the HTTP API
 * cannot drift apart (report.h).
 */
#include "config.h"

#include "m2worker/report.h"

static const int state_cols[] = { M2W_READY, M2W_SCHEDULED, M2W_LEASED,
				  M2W_WAITING, M2W_DONE, M2W_DEAD,
				  M2W_SUPERSEDED };

static void put_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static void put_i64(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

json_object *m2w_task_json(const struct m2w_task *t, int payload)
{
	json_object *o = json_object_new_object();

	put_i64(o, "id", (int64_t)t->id);
	put_str(o, "type", t->type);
	put_str(o, "state", m2w_state_name(t->state));
	json_object_object_add(o, "attempts", json_object_new_int((int)t->attempts));
	json_object_object_add(o, "max_attempts",
			       json_object_new_int((int)t->max_attempts));
	put_i64(o, "created_ms", t->created_ms);
	put_i64(o, "updated_ms", t->updated_ms);
	put_i64(o, "next_run_ms", t->next_run_ms);
	json_object_object_add(o, "lease_expiry_ms",
			       t->state == M2W_LEASED
				       ? json_object_new_int64(t->lease_expiry_ms)
				       : NULL);
	put_str(o, "source", t->source);
	put_str(o, "idempotency_key", t->idem_key);
	put_str(o, "ordering_key", t->group_key);
	json_object_object_add(o, "supersede", json_object_new_boolean(
				       t->supersede == M2W_GROUP_NEWEST));
	json_object_object_add(o, "last_status",
			       t->last_status ? json_object_new_int(t->last_status)
					      : NULL);
	put_str(o, "last_error", t->last_error);
	if (payload) {
		json_object *p = json_tokener_parse(t->payload);

		json_object_object_add(o, "payload",
				       p ? p : json_object_new_string(t->payload));
	}
	return o;
}

static json_object *counts_json(const uint64_t *count)
{
	json_object *o = json_object_new_object();
	size_t i;

	for (i = 0; i < sizeof(state_cols) / sizeof(state_cols[0]); i++)
		put_i64(o, m2w_state_name(state_cols[i]),
			(int64_t)count[state_cols[i]]);
	return o;
}

static json_object *age(int64_t since, int64_t now)
{
	return since ? json_object_new_int64(now - since) : NULL;
}

json_object *m2w_stats_json(const struct m2w_stats *st, int64_t now)
{
	json_object *o = json_object_new_object(), *types = json_object_new_array();
	json_object *purged;
	size_t i;

	for (i = 0; i < st->ntypes; i++) {
		const struct m2w_type_stats *ts = &st->types[i];
		json_object *t = json_object_new_object();

		put_str(t, "type", ts->type);
		json_object_object_add(t, "paused", json_object_new_boolean(ts->paused));
		json_object_object_add(t, "counts", counts_json(ts->count));
		json_object_object_add(t, "oldest_ready_age_ms",
				       age(ts->oldest_ready_ms, now));
		json_object_array_add(types, t);
	}
	json_object_object_add(o, "types", types);
	json_object_object_add(o, "totals", counts_json(st->count));
	json_object_object_add(o, "paused_all", json_object_new_boolean(st->paused_all));
	json_object_object_add(o, "oldest_ready_age_ms", age(st->oldest_ready_ms, now));
	put_i64(o, "map_size", (int64_t)st->map_size);
	put_i64(o, "map_used", (int64_t)st->map_used);
	put_i64(o, "map_max", (int64_t)st->map_max);
	put_i64(o, "map_free", (int64_t)st->map_free);
	purged = json_object_new_object();
	put_i64(purged, "done", (int64_t)st->purged[M2W_DONE]);
	put_i64(purged, "superseded", (int64_t)st->purged[M2W_SUPERSEDED]);
	put_i64(purged, "dead", (int64_t)st->purged[M2W_DEAD]);
	json_object_object_add(o, "purged", purged);
	json_object_object_add(o, "events", json_object_new_boolean(
						    st->events_on));
	put_i64(o, "events_waiting", (int64_t)st->events_waiting);
	json_object_object_add(o, "daemon", st->daemon
			       ? json_tokener_parse(st->daemon) : NULL);
	return o;
}

json_object *m2w_dead_groups_json(const struct m2w_dead_group *g, size_t n,
				  uint64_t scanned)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	size_t i;

	for (i = 0; i < n; i++) {
		json_object *e = json_object_new_object();

		put_str(e, "type", g[i].type);
		put_str(e, "error", g[i].error ? g[i].error : "");
		put_i64(e, "count", (int64_t)g[i].count);
		put_i64(e, "first_ms", g[i].first_ms);
		put_i64(e, "last_ms", g[i].last_ms);
		put_i64(e, "example_id", (int64_t)g[i].example_id);
		json_object_object_add(e, "last_status", g[i].last_status
				       ? json_object_new_int(g[i].last_status)
				       : NULL);
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "groups", arr);
	put_i64(o, "scanned", (int64_t)scanned);
	return o;
}

const char *m2w_outcome_name(int o)
{
	switch (o) {
	case M2W_CLASS_OK:
		return "ok";
	case M2W_CLASS_TRANSIENT:
		return "transient";
	case M2W_CLASS_PERMANENT:
		return "permanent";
	case M2W_CLASS_AUTH:
		return "auth";
	case M2W_OUTCOME_EXPIRED:
		return "expired";
	case M2W_OUTCOME_RELEASED:
		return "released";
	case M2W_OUTCOME_SNOOZED:
		return "snoozed";
	default:
		return "?";
	}
}

json_object *m2w_attempts_json(const struct m2w_attempt *h, size_t n)
{
	json_object *arr = json_object_new_array();
	size_t i;

	for (i = 0; i < n; i++) {
		json_object *e = json_object_new_object();

		json_object_object_add(e, "attempt",
				       json_object_new_int((int)h[i].attempt));
		json_object_object_add(e, "at_ms",
				       json_object_new_int64(h[i].at_ms));
		json_object_object_add(e, "duration_ms",
				       json_object_new_int64(h[i].duration_ms));
		json_object_object_add(e, "http_status", h[i].http_status
				       ? json_object_new_int(h[i].http_status)
				       : NULL);
		json_object_object_add(e, "outcome", json_object_new_string(
					       m2w_outcome_name(h[i].outcome)));
		json_object_object_add(e, "message", *h[i].message
				       ? json_object_new_string(h[i].message)
				       : NULL);
		json_object_array_add(arr, e);
	}
	return arr;
}
