/*
 * series.c - the per-minute ring behind the console's charts (series.h).
 *
 * A sample is the sum of the cumulative counters at one moment; a slot is
 * the difference of two samples a minute apart, stamped with its minute
 * (unix ms / 60000). A slot whose stamp is not the minute asked for is a
 * gap (the daemon was not running then, or the clock jumped) and reads as
 * null. The sampler sleeps on a condition variable until the next minute
 * boundary, so stop wakes it at once.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m2worker/clock.h"
#include "series.h"

#define MINUTE_MS 60000

struct sample {
	uint64_t done, dead, failed, calls;
	uint64_t lat[M2W_LAT_BUCKETS];
};

struct slot {
	int64_t minute;          /* 0 = empty */
	struct sample d;         /* that minute's counts */
};

struct m2w_series {
	const struct m2w_metrics *m;
	int64_t since;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	struct sample last;      /* the counters at the last boundary */
	int64_t last_minute;     /* the minute that boundary began */
	struct slot ring[M2W_SERIES_MINUTES];
};

static uint64_t ld(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void take(const struct m2w_metrics *m, struct sample *s)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < M2W_MAX_TYPES; i++) {
		s->done += ld(&m->done[i]);
		s->dead += ld(&m->dead[i]);
		s->failed += ld(&m->failed[i]);
	}
	s->calls = ld(&m->calls_count);
	for (i = 0; i < M2W_LAT_BUCKETS; i++)
		s->lat[i] = ld(&m->calls[i]);
}

static void diff(const struct sample *a, const struct sample *b,
		 struct sample *out)
{
	size_t i;

	out->done = b->done - a->done;
	out->dead = b->dead - a->dead;
	out->failed = b->failed - a->failed;
	out->calls = b->calls - a->calls;
	for (i = 0; i < M2W_LAT_BUCKETS; i++)
		out->lat[i] = b->lat[i] - a->lat[i];
}

/* Closes the minute that began at s->last_minute; under mu. */
static void roll(struct m2w_series *s, int64_t minute)
{
	struct sample now;
	struct slot *sl;

	take(s->m, &now);
	sl = &s->ring[s->last_minute % M2W_SERIES_MINUTES];
	sl->minute = s->last_minute;
	diff(&s->last, &now, &sl->d);
	s->last = now;
	s->last_minute = minute;
}

static void *run(void *arg)
{
	struct m2w_series *s = arg;
	struct timespec ts;
	int64_t next;

	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		int64_t minute = m2w_clock_ms() / MINUTE_MS;

		if (minute != s->last_minute)
			roll(s, minute);
		next = (minute + 1) * MINUTE_MS;
		ts.tv_sec = (time_t)(next / 1000);
		ts.tv_nsec = (long)(next % 1000) * 1000000L;
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int m2w_series_start(const struct m2w_metrics *m, struct m2w_series **out,
		     char *errbuf)
{
	struct m2w_series *s;

	*out = NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	s->m = m;
	s->since = m2w_clock_ms();
	s->last_minute = s->since / MINUTE_MS;
	take(m, &s->last);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);   /* CLOCK_REALTIME: minute marks */
	if (pthread_create(&s->th, NULL, run, s) != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return m2w_fail(errbuf, M2W_EIO, "series: cannot start a "
				"thread");
	}
	*out = s;
	return M2W_OK;
}

void m2w_series_stop(struct m2w_series *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int64_t m2w_series_since(const struct m2w_series *s)
{
	return s ? s->since : 0;
}

double m2w_series_quantile(const uint64_t *b, double p)
{
	uint64_t total = 0, cum = 0;
	double rank, lo, hi;
	size_t i;

	for (i = 0; i < M2W_LAT_BUCKETS; i++)
		total += b[i];
	if (!total)
		return -1;
	rank = p * (double)total;
	for (i = 0; i < M2W_LAT_BUCKETS; i++) {
		if (b[i] && (double)(cum + b[i]) >= rank)
			break;
		cum += b[i];
	}
	if (i >= M2W_LAT_BUCKETS - 1) /* +Inf: the last bound is all we know */
		return (double)m2w_lat_bounds[M2W_LAT_BUCKETS - 2];
	lo = i ? (double)m2w_lat_bounds[i - 1] : 0;
	hi = (double)m2w_lat_bounds[i];
	return lo + (hi - lo) * (rank - (double)cum) / (double)b[i];
}

static json_object *num_or_null(double v, int have)
{
	return have ? json_object_new_double((double)(int64_t)(v * 10 + 0.5)
					     / 10)
		    : NULL;
}

json_object *m2w_series_json(struct m2w_series *s, int minutes)
{
	static const char *const names[6] = { "done", "dead", "failed",
					      "calls", "p50_ms", "p99_ms" };
	json_object *o, *a[6];
	struct sample cur, now;
	int64_t m0, m, since_min;
	int i, k;

	if (minutes < 1)
		minutes = 1;
	if (minutes > M2W_SERIES_MINUTES)
		minutes = M2W_SERIES_MINUTES;
	if (!(o = json_object_new_object()))
		return NULL;
	for (k = 0; k < 6; k++)
		a[k] = json_object_new_array();
	pthread_mutex_lock(&s->mu);
	take(s->m, &now);
	diff(&s->last, &now, &cur);
	m = s->last_minute;                 /* the current, partial minute */
	m0 = m - minutes + 1;
	since_min = s->since / MINUTE_MS;
	for (i = 0; i < minutes; i++) {
		const struct sample *d = NULL;
		const struct slot *sl;
		int64_t mi = m0 + i;
		double q50, q99;

		if (mi == m) {
			d = &cur;
		} else if (mi >= since_min) {
			sl = &s->ring[mi % M2W_SERIES_MINUTES];
			if (sl->minute == mi)
				d = &sl->d;
		}
		json_object_array_add(a[0], d ? json_object_new_int64(
					      (int64_t)d->done) : NULL);
		json_object_array_add(a[1], d ? json_object_new_int64(
					      (int64_t)d->dead) : NULL);
		json_object_array_add(a[2], d ? json_object_new_int64(
					      (int64_t)d->failed) : NULL);
		json_object_array_add(a[3], d ? json_object_new_int64(
					      (int64_t)d->calls) : NULL);
		q50 = d ? m2w_series_quantile(d->lat, 0.50) : -1;
		q99 = d ? m2w_series_quantile(d->lat, 0.99) : -1;
		json_object_array_add(a[4], num_or_null(q50, q50 >= 0));
		json_object_array_add(a[5], num_or_null(q99, q99 >= 0));
	}
	pthread_mutex_unlock(&s->mu);
	json_object_object_add(o, "since", json_object_new_int64(s->since));
	json_object_object_add(o, "step_ms", json_object_new_int(MINUTE_MS));
	json_object_object_add(o, "start", json_object_new_int64(m0 *
								 MINUTE_MS));
	for (k = 0; k < 6; k++)
		json_object_object_add(o, names[k], a[k]);
	return o;
}
