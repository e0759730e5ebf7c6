/*
 * retention.c - the background purge (retention.h).
 *
 * Each state keeps its walk (struct m2w_purge_walk) between rounds: a
 * round goes on where the last one stopped, so it looks only at tasks
 * that ended since, not again at the done tasks it keeps while purging
 * the superseded ones in the same index. A task whose end time lies
 * behind a walk's position (the wall clock went back) is left until the
 * next restart walks from the oldest again.
 *
 * A round runs the three walks step by step, round-robin, so a backlog of
 * one state (a million done tasks when retention is first turned on) does
 * not put off the others; it ends when every walk met its boundary, or
 * when stop is asked (checked between steps). One log line per round that
 * purged something; errors are logged and the round ends (the next one
 * tries again).
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m2worker/admin.h"
#include "m2worker/clock.h"
#include "m2worker/log.h"
#include "retention.h"

#define NWALKS 3

struct m2w_retention {
	struct m2w_queue *q;
	int64_t interval_ms;
	int64_t keep_ms[NWALKS];
	struct m2w_purge_walk walk[NWALKS];
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
};

static int stopping(struct m2w_retention *r)
{
	int s;

	pthread_mutex_lock(&r->mu);
	s = r->stop;
	pthread_mutex_unlock(&r->mu);
	return s;
}

static void round_once(struct m2w_retention *r)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	size_t purged[NWALKS] = { 0 }, n;
	int more[NWALKS], any = 1, i, rc = M2W_OK;
	int64_t now = m2w_queue_now(r->q), t0 = m2w_clock_mono_ms();

	for (i = 0; i < NWALKS; i++)
		more[i] = r->keep_ms[i] > 0;
	while (any && !rc && !stopping(r)) {
		any = 0;
		for (i = 0; i < NWALKS && !rc; i++) {
			if (!more[i])
				continue;
			rc = m2w_queue_purge_step(r->q, &r->walk[i],
						  now - r->keep_ms[i],
						  RETENTION_STEP, &n, &more[i],
						  errbuf);
			purged[i] += n;
			any |= more[i];
		}
	}
	if (rc)
		m2w_log(M2W_LOG_ERROR, "retention", "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
	if (purged[0] || purged[1] || purged[2])
		m2w_log(M2W_LOG_INFO, "retention.purged", "done=%zu "
			"superseded=%zu dead=%zu ms=%lld", purged[0],
			purged[1], purged[2],
			(long long)(m2w_clock_mono_ms() - t0));
}

static void *run(void *arg)
{
	struct m2w_retention *r = arg;
	struct timespec ts;
	int64_t next;

	for (;;) {
		round_once(r);
		next = m2w_clock_ms() + r->interval_ms;
		ts.tv_sec = (time_t)(next / 1000);
		ts.tv_nsec = (long)(next % 1000) * 1000000L;
		pthread_mutex_lock(&r->mu);
		while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu,
							   &ts) == 0)
			;
		if (r->stop) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		pthread_mutex_unlock(&r->mu);
	}
}

int m2w_retention_start(struct m2w_queue *q, const struct m2w_config *cfg,
			struct m2w_retention **out, char *errbuf)
{
	static const int states[NWALKS] = { M2W_DONE, M2W_SUPERSEDED,
					    M2W_DEAD };
	struct m2w_retention *r;
	int i;

	*out = NULL;
	if (!cfg->keep_done_ms && !cfg->keep_superseded_ms &&
	    !cfg->keep_dead_ms)
		return M2W_OK;
	if (!(r = calloc(1, sizeof(*r))))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	r->q = q;
	r->interval_ms = cfg->purge_interval_ms;
	r->keep_ms[0] = cfg->keep_done_ms;
	r->keep_ms[1] = cfg->keep_superseded_ms;
	r->keep_ms[2] = cfg->keep_dead_ms;
	for (i = 0; i < NWALKS; i++)
		r->walk[i].state = states[i];
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);   /* CLOCK_REALTIME, as `next` */
	if (pthread_create(&r->th, NULL, run, r) != 0) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return m2w_fail(errbuf, M2W_EIO, "retention: cannot start a "
				"thread");
	}
	*out = r;
	return M2W_OK;
}

void m2w_retention_stop(struct m2w_retention *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->th, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
