/*
 * metrics.c - counters the workers bump, and their Prometheus text form.
 *
 * Counters are plain uint64_t bumped with __sync_fetch_and_add (gcc 4.1+,
 * so legacy hosts too); a scrape reads them without a lock but with atomic
 * loads (ld(): no data race with the bumps), which at worst sees one
 * counter a bump behind another. Queue depth comes from the
 * store's own per-type counters (m2w_queue_stats) at scrape time.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "m2worker/admin.h"
#include "m2worker/clock.h"
#include "worker.h"

const int64_t m2w_lat_bounds[M2W_LAT_BUCKETS - 1] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
};

void m2w_metrics_call(struct m2w_metrics *m, int status, int64_t ms)
{
	int b = 0, cls;

	while (b < M2W_LAT_BUCKETS - 1 && ms > m2w_lat_bounds[b])
		b++;
	__sync_fetch_and_add(&m->calls[b], 1);
	__sync_fetch_and_add(&m->calls_count, 1);
	__sync_fetch_and_add(&m->calls_ms_sum, (uint64_t)(ms > 0 ? ms : 0));
	cls = status >= 200 && status < 300 ? M2W_CLASS_OK
	      : status == 401 ? M2W_CLASS_AUTH
	      : status >= 400 && status < 500 && status != 429
		      ? M2W_CLASS_PERMANENT : M2W_CLASS_TRANSIENT;
	__sync_fetch_and_add(&m->calls_by_class[cls], 1);
}

static unsigned long long ld(const uint64_t *v)
{
	return (unsigned long long)__atomic_load_n(v, __ATOMIC_RELAXED);
}

static void counter(struct m2w_buf *o, const char *name, const char *help,
		    const uint64_t *v, const struct m2w_config *cfg)
{
	size_t i;

	m2w_buf_addf(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (i = 0; i < cfg->ntypes; i++)
		m2w_buf_addf(o, "%s{type=\"%s\"} %llu\n", name,
			     cfg->types[i].name, ld(&v[i]));
}

int m2w_metrics_render(const struct m2w_metrics *m,
		       const struct m2w_config *cfg,
		       const struct m2w_stats *st, int breaker_state,
		       struct m2w_buf *o)
{
	static const char *const cls[] = { "ok", "transient", "permanent",
					   "auth" };
	uint64_t cum = 0;
	int64_t now = m2w_clock_ms();
	size_t i;
	int s;

	m2w_buf_adds(o, "# HELP m2worker_tasks Tasks in the store by type "
		     "and state.\n# TYPE m2worker_tasks gauge\n");
	for (i = 0; st && i < st->ntypes; i++)
		for (s = 0; s < M2W_NSTATES; s++)
			m2w_buf_addf(o, "m2worker_tasks{type=\"%s\","
				     "state=\"%s\"} %llu\n", st->types[i].type,
				     m2w_state_name(s), (unsigned long long)
				     st->types[i].count[s]);
	if (st) {
		m2w_buf_adds(o, "# HELP m2worker_oldest_ready_age_seconds "
			     "Age of the oldest ready task.\n# TYPE "
			     "m2worker_oldest_ready_age_seconds gauge\n");
		for (i = 0; i < st->ntypes; i++)
			m2w_buf_addf(o, "m2worker_oldest_ready_age_seconds"
				     "{type=\"%s\"} %.3f\n", st->types[i].type,
				     st->types[i].oldest_ready_ms
					     ? (double)(now - st->types[i]
							.oldest_ready_ms) / 1000
					     : 0.0);
		m2w_buf_addf(o, "# HELP m2worker_store_bytes Store map use.\n"
			     "# TYPE m2worker_store_bytes gauge\n"
			     "m2worker_store_bytes{kind=\"used\"} %llu\n"
			     "m2worker_store_bytes{kind=\"max\"} %llu\n"
			     "m2worker_store_bytes{kind=\"free\"} %llu\n",
			     (unsigned long long)st->map_used,
			     (unsigned long long)st->map_max,
			     (unsigned long long)st->map_free);
		m2w_buf_adds(o, "# HELP m2worker_purged_total Tasks purged "
			     "(retention, qctl purge) by the state they had.\n"
			     "# TYPE m2worker_purged_total counter\n");
		for (s = M2W_DONE; s < M2W_NSTATES; s++) /* the ended ones */
			m2w_buf_addf(o, "m2worker_purged_total{state=\"%s\"} "
				     "%llu\n", m2w_state_name(s),
				     (unsigned long long)st->purged[s]);
		m2w_buf_addf(o, "# HELP m2worker_events_waiting Result events "
			     "in the outbox, not yet confirmed by the broker.\n"
			     "# TYPE m2worker_events_waiting gauge\n"
			     "m2worker_events_waiting %llu\n",
			     (unsigned long long)st->events_waiting);
	}
	counter(o, "m2worker_tasks_done_total", "Tasks done.", m->done, cfg);
	counter(o, "m2worker_tasks_failed_total",
		"Attempts that failed and were rescheduled.", m->failed, cfg);
	counter(o, "m2worker_tasks_dead_total", "Tasks dead-lettered.",
		m->dead, cfg);
	counter(o, "m2worker_tasks_snoozed_total",
		"Tasks put off without counting an attempt.", m->snoozed, cfg);
	m2w_buf_adds(o, "# HELP m2worker_magento_call_seconds Magento call "
		     "latency.\n# TYPE m2worker_magento_call_seconds "
		     "histogram\n");
	for (i = 0; i < M2W_LAT_BUCKETS; i++) {
		cum += ld(&m->calls[i]);
		if (i < M2W_LAT_BUCKETS - 1)
			m2w_buf_addf(o, "m2worker_magento_call_seconds_bucket"
				     "{le=\"%g\"} %llu\n", m2w_lat_bounds[i] / 1000.0,
				     (unsigned long long)cum);
		else
			m2w_buf_addf(o, "m2worker_magento_call_seconds_bucket"
				     "{le=\"+Inf\"} %llu\n",
				     (unsigned long long)cum);
	}
	m2w_buf_addf(o, "m2worker_magento_call_seconds_sum %.3f\n"
		     "m2worker_magento_call_seconds_count %llu\n",
		     ld(&m->calls_ms_sum) / 1000.0, ld(&m->calls_count));
	m2w_buf_adds(o, "# HELP m2worker_magento_calls_total Magento calls by "
		     "result.\n# TYPE m2worker_magento_calls_total counter\n");
	for (i = 0; i < 4; i++)
		m2w_buf_addf(o, "m2worker_magento_calls_total{class=\"%s\"} "
			     "%llu\n", cls[i], ld(&m->calls_by_class[i]));
	m2w_buf_addf(o, "# HELP m2worker_breaker_state Circuit breaker: 0 "
		     "closed, 1 open, 2 half-open.\n# TYPE "
		     "m2worker_breaker_state gauge\nm2worker_breaker_state "
		     "%d\n", breaker_state);
	return o->failed ? M2W_ENOMEM : M2W_OK;
}
