/*
 * series.h - per-minute history of the workers' counters, for the web
 * console's charts: tasks done, dead and retried, Magento calls and their
 * latency (p50, p99) per minute over the last 24 hours.
 *
 * Kept in memory, not in the store: it is derived from the workers'
 * counters (worker.h, struct m2w_metrics), which start at zero with the
 * process, and writing it to the store would add a write transaction a
 * minute to every store for a chart. So it begins when the daemon starts
 * (m2w_series_since) and a restart begins it again; the console says so.
 *
 * A thread samples the cumulative counters at every minute boundary of
 * the wall clock and keeps the difference from the previous sample in a
 * ring of M2W_SERIES_MINUTES slots (24 h, about 150 KiB). The current
 * minute is computed at each read from the last sample. Percentiles are
 * estimated from the latency histogram's buckets (5 ms ... 10 s) by linear
 * interpolation inside the bucket, as Prometheus' histogram_quantile does:
 * good to the bucket, not to the millisecond.
 *
 * Threads: start and stop from one thread (main); m2w_series_json from any
 * thread (a mutex guards the ring). `m` must outlive the series.
 */
#ifndef M2WORKER_SERIES_H
#define M2WORKER_SERIES_H

#include <stdint.h>

#include <json-c/json.h>

#include "worker.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M2W_SERIES_MINUTES 1440

struct m2w_series;

/* Starts sampling `m`. M2W_OK, or M2W_ENOMEM / M2W_EIO (no thread). */
int m2w_series_start(const struct m2w_metrics *m, struct m2w_series **out,
		     char *errbuf);
void m2w_series_stop(struct m2w_series *s);   /* NULL is fine */

/* When sampling began (unix ms). */
int64_t m2w_series_since(const struct m2w_series *s);

/*
 * The last `minutes` minutes (1 .. M2W_SERIES_MINUTES), oldest first, the
 * current partial minute last: {"since", "step_ms", "start", "done",
 * "dead", "failed", "calls", "p50_ms", "p99_ms"}, arrays of `minutes`
 * numbers; null where there is no sample (before `since`) and, for the
 * percentiles, in minutes without calls. NULL when out of memory.
 */
json_object *m2w_series_json(struct m2w_series *s, int minutes);

/* The p-quantile (0..1) in ms of a latency histogram (bucket counts as in
 * struct m2w_metrics); -1 when it is empty. */
double m2w_series_quantile(const uint64_t *buckets, double p);

#ifdef __cplusplus
}
#endif
#endif
