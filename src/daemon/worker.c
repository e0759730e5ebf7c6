/*
 * worker.c - the worker pool (see worker.h).
 *
 * Each worker thread loops: ask the breaker, pick a job type that is under
 * its concurrency limit (round-robin from where this thread left off),
 * lease up to that type's batch of tasks, run them through the job with
 * the thread's own Magento connection, then settle the whole batch in one
 * store call (merged with the other threads' by group commit) and log one
 * line per task. No store transaction is ever open across a Magento call.
 *
 * How an outcome is settled:
 *   done                          -> ack
 *   grace period over (aborting)  -> release (attempt not counted)
 *   429 from Magento              -> snooze for Retry-After (not counted)
 *   auth refused                  -> snooze, and a breaker failure
 *   transient (5xx, timeout ...)  -> fail: backoff, or dead when attempts
 *                                    are used up; a breaker failure. The
 *                                    breaker's probe is snoozed instead.
 *   permanent (400, 404 ...)      -> fail permanent: dead at once, with
 *                                    Magento's message on the task
 *
 * Calls in flight ([magento] concurrency): without it one per thread;
 * with it every request of every connection passes a gate (m2_conn_set_
 * gate) that takes a slot of the pool's limiter (limiter.h) and gives it
 * back with the call's round trip and how it went: 2xx a sample, 429, 502,
 * 503, 504 and timeouts overload (the limit is cut), anything else says
 * nothing of Magento's load (a 500 is usually one payload's fault, and a
 * bad payload retried must not throttle everything). With `auto` the
 * threads wait at the gate while the limit is below their number. The
 * limiter is woken only when the grace period is over (aborting), so a
 * thread waiting at the gate then gives its tasks back uncounted.
 *
 * The keeper thread reaps expired leases every reap_interval (a stuck
 * worker's; a crashed daemon's tasks came back at start, main.c) and
 * extends leases of tasks still in flight once half their lease is gone,
 * so a slow Magento never lets a task be leased twice at once.
 *
 * Shutdown: `stopping` ends leasing; workers finish their batch. After the
 * grace period `aborting` makes every connection abort its transfer
 * (m2_conn_set_abort) and the unfinished tasks are released.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "m2worker/admin.h"
#include "m2worker/clock.h"
#include "m2worker/jobs.h"
#include "m2worker/log.h"
#include "limiter.h"
#include "worker.h"

struct m2w_pool;

struct slot {
	struct m2w_pool *p;
	pthread_t th;
	int started;
	struct m2_conn *conn;
	unsigned rr;
	/* in flight: under p->mu */
	struct m2w_task **tasks;
	size_t n;
	int64_t lease_ms;
};

struct m2w_pool {
	struct m2w_queue *q;
	struct m2_client *client;
	const struct m2w_config *cfg;
	const struct m2w_job *jobs[M2W_MAX_TYPES];
	struct m2w_breaker breaker;
	struct m2w_metrics metrics;
	int64_t idle_ms;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned inflight[M2W_MAX_TYPES];
	/* set under mu, read anywhere: through flag() / set_flag() */
	volatile int stopping;
	volatile int aborting;
	int keeper_stop;
	unsigned running;
	size_t released;

	struct slot *slots;
	unsigned nslots;
	pthread_t keeper;
	int keeper_started;

	struct m2w_limiter *lim;       /* NULL: one call per thread */
	unsigned lim_logged;           /* the limit last logged (keeper) */
	uint64_t lim_drops;
	int64_t lim_log_at;
	unsigned lim_noted;            /* ... and last noted in the store */
	int64_t lim_note_at;
};

/* ------------------------------------------------------------- flags */

/* stopping and aborting are read by the workers (and by their connections'
 * progress callbacks) without p->mu: atomic loads and stores, so these
 * reads are no data race (ThreadSanitizer, .ci/tsan). */
static int flag(const volatile int *f)
{
	return __atomic_load_n(f, __ATOMIC_ACQUIRE);
}

static void set_flag(volatile int *f)
{
	__atomic_store_n(f, 1, __ATOMIC_RELEASE);
}

/* --------------------------------------------------------------- time */

/* Sleeps up to ms, or until the pool is stopped. Under p->mu. */
static void nap_locked(struct m2w_pool *p, int64_t ms)
{
	struct timespec ts;
	int64_t until = m2w_clock_ms() + (ms > 0 ? ms : 1);

	ts.tv_sec = (time_t)(until / 1000);
	ts.tv_nsec = (long)(until % 1000) * 1000000;
	pthread_cond_timedwait(&p->cv, &p->mu, &ts);
}

static void nap(struct m2w_pool *p, int64_t ms)
{
	pthread_mutex_lock(&p->mu);
	if (!p->stopping)
		nap_locked(p, ms);
	pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------ logging */

static void log_outcome(const struct m2w_task *t, const struct m2w_settle *s,
			const struct m2w_outcome *o)
{
	char msg[M2_MESSAGE_MAX + 8];
	int level = M2W_LOG_INFO;
	const char *ev;

	if (s->err != M2W_OK) {
		m2w_log(M2W_LOG_WARN, "task.settle_refused",
			"task=%llu type=%s error=%s",
			(unsigned long long)t->id, t->type,
			m2w_log_quote(msg, sizeof(msg), m2w_strerror(s->err)));
		return;
	}
	switch (s->kind) {
	case M2W_ACK:
		ev = "task.done";
		break;
	case M2W_RELEASE:
		ev = "task.released";
		break;
	case M2W_SNOOZE:
		ev = "task.snoozed";
		break;
	default:
		ev = s->state == M2W_DEAD ? "task.dead" : "task.retry";
		level = s->state == M2W_DEAD ? M2W_LOG_WARN : M2W_LOG_INFO;
	}
	if (!m2w_log_enabled(level))
		return;
	m2w_log_quote(msg, sizeof(msg), o->message);
	if (s->kind == M2W_FAIL && s->state != M2W_DEAD)
		m2w_log(level, ev, "task=%llu type=%s attempt=%u status=%d "
			"retry_in_ms=%lld error=%s", (unsigned long long)t->id,
			t->type, t->attempts, o->http_status,
			(long long)(s->next_run_ms - m2w_clock_ms()), msg);
	else if (s->kind == M2W_FAIL || s->kind == M2W_SNOOZE)
		m2w_log(level, ev, "task=%llu type=%s attempt=%u status=%d "
			"%s=%s", (unsigned long long)t->id, t->type,
			t->attempts, o->http_status,
			s->kind == M2W_SNOOZE ? "reason" : "error", msg);
	else
		m2w_log(level, ev, "task=%llu type=%s attempt=%u ms=%lld "
			"calls=%d note=%s", (unsigned long long)t->id, t->type,
			t->attempts, (long long)s->duration_ms, o->calls, msg);
}

static void log_breaker(const struct m2w_breaker_change *ch)
{
	char text[160];

	m2w_log(ch->state == M2W_BREAKER_CLOSED ? M2W_LOG_INFO : M2W_LOG_WARN,
		"breaker", "%s", m2w_breaker_describe(ch, text, sizeof(text)));
}

/* --------------------------------------------------------- settling */

/* Turns outcome o of task t into settlement s (see the table above). */
static void decide(struct m2w_pool *p, const struct m2w_task *t,
		   const struct m2w_outcome *o, int probe, int64_t ms,
		   struct m2w_settle *s)
{
	memset(s, 0, sizeof(*s));
	s->id = t->id;
	s->token = t->lease_token;
	s->duration_ms = ms;
	s->http_status = o->http_status;
	s->message = o->message;
	s->result = o->result[0] ? o->result : NULL;
	if (o->err == M2W_OK) {
		s->kind = M2W_ACK;
	} else if (flag(&p->aborting)) {
		s->kind = M2W_RELEASE;
	} else if (o->http_status == 429) {
		s->kind = M2W_SNOOZE;
		s->delay_ms = o->retry_after_ms > 0 ? o->retry_after_ms : 5000;
	} else if (o->err == M2W_EAUTH || (probe && o->cls != M2W_CLASS_PERMANENT)) {
		s->kind = M2W_SNOOZE;
		s->delay_ms = p->cfg->breaker_cooldown_ms;
	} else {
		s->kind = M2W_FAIL;
		s->cls = o->cls == M2W_CLASS_PERMANENT ? M2W_CLASS_PERMANENT
						       : M2W_CLASS_TRANSIENT;
		s->retry_after_ms = o->retry_after_ms;
	}
}

static void count(struct m2w_pool *p, size_t ti, const struct m2w_settle *s)
{
	uint64_t *c;

	if (s->err != M2W_OK)
		return;
	switch (s->kind) {
	case M2W_ACK:
		c = &p->metrics.done[ti];
		break;
	case M2W_SNOOZE:
	case M2W_RELEASE:
		c = &p->metrics.snoozed[ti];
		break;
	default:
		c = s->state == M2W_DEAD ? &p->metrics.dead[ti]
					 : &p->metrics.failed[ti];
	}
	__sync_fetch_and_add(c, 1);
}

/* A failure that says Magento is unwell (for the breaker). */
static int unwell(const struct m2w_outcome *o)
{
	return o->err != M2W_OK && o->http_status != 429 &&
	       (o->cls == M2W_CLASS_TRANSIENT || o->cls == M2W_CLASS_AUTH);
}

static void settle(struct m2w_pool *p, size_t ti, struct m2w_task **ts,
		   size_t n, const struct m2w_outcome *out, int probe,
		   int64_t ms)
{
	struct m2w_settle *s = calloc(n, sizeof(*s));
	struct m2w_breaker_change change;
	char errbuf[M2W_ERRBUF_SIZE] = "";
	size_t i, ok = 0, bad = 0, dead = 0;
	int rc;

	if (!s) {
		m2w_log(M2W_LOG_ERROR, "settle", "error=\"out of memory\" "
			"tasks=%zu (their leases will expire)", n);
		return;
	}
	for (i = 0; i < n; i++) {
		decide(p, ts[i], &out[i], probe, ms, &s[i]);
		if (unwell(&out[i]))
			bad++;
		else if (out[i].err == M2W_OK || out[i].cls == M2W_CLASS_PERMANENT)
			ok++;
	}
	if ((ok || bad) &&
	    m2w_breaker_result(&p->breaker, m2w_clock_ms(), probe, !ok && bad,
			       &change) >= 0)
		log_breaker(&change);
	rc = m2w_queue_settle(p->q, s, n, errbuf);
	if (rc != M2W_OK) {
		m2w_log(M2W_LOG_ERROR, "settle", "tasks=%zu error=%s "
			"(their leases will expire and they run again)", n,
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		free(s);
		return;
	}
	for (i = 0; i < n; i++) {
		log_outcome(ts[i], &s[i], &out[i]);
		count(p, ti, &s[i]);
		if (s[i].kind == M2W_RELEASE && s[i].err == M2W_OK)
			__sync_fetch_and_add(&p->released, 1);
		dead += s[i].err == M2W_OK && s[i].state == M2W_DEAD;
	}
	if (n > 1)
		m2w_log(M2W_LOG_INFO, "batch.done", "type=%s tasks=%zu ok=%zu "
			"dead=%zu ms=%lld", ts[0]->type, n, ok, dead,
			(long long)ms);
	free(s);
}

/* ------------------------------------------------------------ working */

/* Reserves a worker place on type ti (inflight++): 0 when it is at its
 * concurrency limit or has no job. */
static int reserve(struct m2w_pool *p, size_t ti)
{
	const struct m2w_type_cfg *tc = &p->cfg->types[ti];
	int ok;

	pthread_mutex_lock(&p->mu);
	ok = p->jobs[ti] && (!tc->concurrency ||
			     p->inflight[ti] < tc->concurrency);
	if (ok)
		p->inflight[ti]++;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

static void unreserve(struct m2w_pool *p, size_t ti)
{
	pthread_mutex_lock(&p->mu);
	p->inflight[ti]--;
	pthread_mutex_unlock(&p->mu);
}

static void track(struct m2w_pool *p, struct slot *sl, struct m2w_task **ts,
		  size_t n, int64_t lease_ms)
{
	pthread_mutex_lock(&p->mu);
	sl->tasks = ts;
	sl->n = n;
	sl->lease_ms = lease_ms;
	pthread_mutex_unlock(&p->mu);
}

/* Leases and runs one batch of type ti; 0 when there was nothing. */
static int run_batch(struct m2w_pool *p, struct slot *sl, size_t ti,
		     int probe)
{
	const struct m2w_type_cfg *tc = &p->cfg->types[ti];
	const char *type = tc->name;
	struct m2w_lease_opts lo;
	struct m2w_job_env env = { sl->conn, tc->settings };
	struct m2w_outcome *out;
	struct m2w_task **ts = NULL;
	char errbuf[M2W_ERRBUF_SIZE] = "";
	size_t n = 0;
	int64_t t0;
	int rc;

	memset(&lo, 0, sizeof(lo));
	lo.max = probe || !p->jobs[ti]->batch ? 1 : (tc->batch ? tc->batch : 1);
	lo.lease_ms = tc->lease_ms;
	lo.types = &type;
	lo.ntypes = 1;
	rc = m2w_queue_lease(p->q, &lo, &ts, &n, errbuf);
	if (rc != M2W_OK) {
		m2w_log(M2W_LOG_ERROR, "lease", "type=%s error=%s", type,
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		nap(p, 1000);
		return 0;
	}
	if (!n)
		return 0;
	out = calloc(n, sizeof(*out));
	if (!out) {
		m2w_log(M2W_LOG_ERROR, "lease", "error=\"out of memory\"");
		m2w_task_list_free(ts, n);
		return 0;
	}
	track(p, sl, ts, n, tc->lease_ms);
	t0 = m2w_clock_ms();
	m2w_job_run(p->jobs[ti], &env, ts, n, out);
	settle(p, ti, ts, n, out, probe, m2w_clock_ms() - t0);
	track(p, sl, NULL, 0, 0);
	free(out);
	m2w_task_list_free(ts, n);
	return 1;
}

static void *work(void *arg)
{
	struct slot *sl = arg;
	struct m2w_pool *p = sl->p;
	size_t k, ti, ntypes = p->cfg->ntypes;
	int64_t wait;
	int probe, did;

	while (!flag(&p->stopping)) {
		if (!m2w_breaker_allow(&p->breaker, m2w_clock_ms(), &probe,
				       &wait)) {
			nap(p, wait < 1000 ? wait : 1000);
			continue;
		}
		/* round the types from where this thread left off */
		did = 0;
		for (k = 0; !did && !flag(&p->stopping) && k < ntypes; k++) {
			ti = (sl->rr + k) % ntypes;
			if (!reserve(p, ti))
				continue;
			did = run_batch(p, sl, ti, probe);
			unreserve(p, ti);
		}
		sl->rr++;
		if (probe && !did)
			m2w_breaker_unprobe(&p->breaker);
		if (!did)
			nap(p, p->idle_ms);
	}
	pthread_mutex_lock(&p->mu);
	p->running--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ------------------------------------------------------------- keeper */

/* Extends the leases of in-flight tasks past half their lease. */
static void extend_leases(struct m2w_pool *p)
{
	struct m2w_settle *s = NULL;
	char errbuf[M2W_ERRBUF_SIZE] = "";
	int64_t now = m2w_clock_ms();
	size_t n = 0, cap = 0, i, j;
	unsigned k;

	pthread_mutex_lock(&p->mu);
	for (k = 0; k < p->nslots; k++)
		cap += p->slots[k].n;
	if (cap)
		s = calloc(cap, sizeof(*s));
	for (k = 0; s && k < p->nslots; k++) {
		struct slot *sl = &p->slots[k];

		for (j = 0; j < sl->n; j++) {
			const struct m2w_task *t = sl->tasks[j];

			if (t->lease_expiry_ms - now > sl->lease_ms / 2)
				continue;
			s[n].id = t->id;
			s[n].token = t->lease_token;
			s[n].kind = M2W_EXTEND;
			s[n].delay_ms = sl->lease_ms;
			n++;
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (n && m2w_queue_settle(p->q, s, n, errbuf) != M2W_OK)
		m2w_log(M2W_LOG_ERROR, "lease.extend", "tasks=%zu error=%s", n,
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
	else if (n) {
		/* the new expiry, so the next round does not extend again */
		pthread_mutex_lock(&p->mu);
		for (k = 0; k < p->nslots; k++)
			for (j = 0; j < p->slots[k].n; j++)
				for (i = 0; i < n; i++)
					if (p->slots[k].tasks[j]->id == s[i].id &&
					    s[i].err == M2W_OK)
						p->slots[k].tasks[j]->lease_expiry_ms =
							now + s[i].delay_ms;
		pthread_mutex_unlock(&p->mu);
		m2w_log(M2W_LOG_DEBUG, "lease.extend", "tasks=%zu", n);
	}
	free(s);
}

/* The limit for qctl: a status note in the store (m2w_queue_set_status)
 * when it changed, and at least every STATUS_MS. */
#define STATUS_MS 30000
static void note_limit(struct m2w_pool *p, const struct m2w_limiter_stats *st,
		       int changed)
{
	char json[256], eb[M2W_ERRBUF_SIZE] = "";
	int64_t now = m2w_clock_mono_ms();

	if (!changed && now - p->lim_note_at < STATUS_MS)
		return;
	snprintf(json, sizeof(json), "{\"at_ms\":%lld,\"concurrency\":"
		 "{\"mode\":\"%s\",\"limit\":%u,\"inflight\":%u,"
		 "\"cuts\":%llu}}", (long long)m2w_clock_ms(),
		 st->adaptive ? "auto" : "fixed", st->limit, st->inflight,
		 (unsigned long long)st->drops);
	if (m2w_queue_set_status(p->q, json, eb) == M2W_OK)
		p->lim_note_at = now;
}

/* The limit's changes in the log: at most one line every 10 s. */
#define LIMIT_LOG_MS 10000
static void log_limit(struct m2w_pool *p)
{
	struct m2w_limiter_stats st;
	int64_t now = m2w_clock_mono_ms();

	if (!p->lim)
		return;
	m2w_limiter_stats(p->lim, &st);
	note_limit(p, &st, st.limit != p->lim_noted);
	p->lim_noted = st.limit;
	if (now - p->lim_log_at < LIMIT_LOG_MS)
		return;
	if (st.limit == p->lim_logged && st.drops == p->lim_drops)
		return;
	m2w_log(st.drops != p->lim_drops ? M2W_LOG_WARN : M2W_LOG_INFO,
		"pool.limit", "limit=%u was=%u phase=%s inflight=%u waiting=%u "
		"rtt_ms=%.1f base_ms=%.1f cuts=%llu overloads=%llu", st.limit,
		p->lim_logged, st.phase, st.inflight, st.waiting,
		st.rtt_us / 1000.0, st.rtt_base_us / 1000.0,
		(unsigned long long)st.drops,
		(unsigned long long)st.overloads);
	p->lim_logged = st.limit;
	p->lim_drops = st.drops;
	p->lim_log_at = now;
}

static void *keep(void *arg)
{
	struct m2w_pool *p = arg;
	char errbuf[M2W_ERRBUF_SIZE];
	size_t reaped;

	pthread_mutex_lock(&p->mu);
	while (!p->keeper_stop) {
		pthread_mutex_unlock(&p->mu);
		errbuf[0] = '\0';
		if (m2w_queue_reap(p->q, &reaped, errbuf) != M2W_OK)
			m2w_log(M2W_LOG_ERROR, "lease.reap", "error=%s",
				m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		else if (reaped)
			m2w_log(M2W_LOG_WARN, "lease.reaped", "tasks=%zu "
				"(their worker died or hung; they run again)",
				reaped);
		extend_leases(p);
		log_limit(p);
		pthread_mutex_lock(&p->mu);
		if (!p->keeper_stop)
			nap_locked(p, p->cfg->reap_interval_ms);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* --------------------------------------------------------- lifecycle */

static void observe(void *arg, int status, int64_t ms)
{
	m2w_metrics_call(arg, status, ms);
}

static int gate_enter(void *arg)
{
	struct m2w_pool *p = arg;

	return m2w_limiter_acquire(p->lim, -1);
}

static void gate_leave(void *arg, int status, int xfer, int64_t us)
{
	struct m2w_pool *p = arg;
	int outcome = M2W_LIMIT_IGNORE;

	if (xfer == M2_XFER_OVERLOAD || status == 429 || status == 502 ||
	    status == 503 || status == 504)
		outcome = M2W_LIMIT_OVERLOAD;
	else if (xfer == M2_XFER_OK && status >= 200 && status < 300)
		outcome = M2W_LIMIT_OK;
	m2w_limiter_release(p->lim, us, outcome);
}

int m2w_pool_limit_cfg(const struct m2w_config *cfg,
		       struct m2w_limiter_cfg *out, char *errbuf)
{
	struct m2w_limiter_cfg c;
	unsigned threads = cfg->threads ? cfg->threads : 1;
	const char *v = cfg->concurrency;
	char *end;
	unsigned long n;

	memset(&c, 0, sizeof(c));
	if (v && strcmp(v, "auto") == 0) {
		c.adaptive = 1;
		c.min = cfg->concurrency_min ? cfg->concurrency_min : 1;
		c.max = cfg->concurrency_max ? cfg->concurrency_max : threads;
		if (c.max > threads)
			return m2w_fail(errbuf, M2W_EINVAL, "concurrency_max "
					"(%u) is above [workers] threads (%u): "
					"each thread makes one call at a time",
					c.max, threads);
		if (c.min > c.max)
			return m2w_fail(errbuf, M2W_EINVAL, "concurrency_min "
					"(%u) is above concurrency_max (%u)",
					c.min, c.max);
	} else if (v) {
		errno = 0;
		n = strtoul(v, &end, 10);
		if (!isdigit((unsigned char)*v) || *end || errno || !n ||
		    n > threads)
			return m2w_fail(errbuf, M2W_EINVAL, "concurrency = %.20s: "
					"auto, or a number of calls from 1 to "
					"[workers] threads (%u)", v, threads);
		c.fixed = (unsigned)n;
	}
	if (out)
		*out = c;
	return M2W_OK;
}

void m2w_pool_client_metrics(struct m2w_pool *p, struct m2w_buf *o)
{
	struct m2_client_stats cs;

	if (!p)
		return;
	m2_client_get_stats(p->client, &cs);
	m2w_buf_addf(o, "# HELP m2worker_magento_token_renewals_total Admin "
		     "tokens renewed (auth = admin): due to expire, or "
		     "refused by Magento (401).\n# TYPE "
		     "m2worker_magento_token_renewals_total counter\n"
		     "m2worker_magento_token_renewals_total{reason=\"expiry\"} "
		     "%llu\nm2worker_magento_token_renewals_total"
		     "{reason=\"401\"} %llu\n",
		     (unsigned long long)cs.token_renewals_expiry,
		     (unsigned long long)cs.token_renewals_401);
}

void m2w_pool_limit_metrics(struct m2w_pool *p, struct m2w_buf *o)
{
	struct m2w_limiter_stats st;

	if (!p || !p->lim)
		return;
	m2w_limiter_stats(p->lim, &st);
	m2w_buf_addf(o, "# HELP m2worker_magento_concurrency_limit Magento "
		     "calls allowed in flight now ([magento] concurrency).\n"
		     "# TYPE m2worker_magento_concurrency_limit gauge\n"
		     "m2worker_magento_concurrency_limit{mode=\"%s\"} %u\n"
		     "# HELP m2worker_magento_inflight Magento calls in "
		     "flight.\n# TYPE m2worker_magento_inflight gauge\n"
		     "m2worker_magento_inflight %u\n"
		     "# HELP m2worker_magento_waiting Calls waiting for a "
		     "slot.\n# TYPE m2worker_magento_waiting gauge\n"
		     "m2worker_magento_waiting %u\n"
		     "# HELP m2worker_magento_rtt_base_seconds The no-load "
		     "round trip the limit compares with.\n# TYPE "
		     "m2worker_magento_rtt_base_seconds gauge\n"
		     "m2worker_magento_rtt_base_seconds %.6f\n"
		     "# HELP m2worker_magento_concurrency_cuts_total Limit cuts "
		     "for overload answers.\n# TYPE "
		     "m2worker_magento_concurrency_cuts_total counter\n"
		     "m2worker_magento_concurrency_cuts_total %llu\n",
		     st.adaptive ? "auto" : "fixed", st.limit, st.inflight,
		     st.waiting, st.rtt_base_us / 1e6,
		     (unsigned long long)st.drops);
}

struct json_object *m2w_pool_limit_json(struct m2w_pool *p)
{
	struct m2w_limiter_stats st;
	json_object *o;

	if (!p || !p->lim)
		return NULL;
	m2w_limiter_stats(p->lim, &st);
	o = json_object_new_object();
	json_object_object_add(o, "mode", json_object_new_string(
				       st.adaptive ? "auto" : "fixed"));
	json_object_object_add(o, "limit", json_object_new_int((int)st.limit));
	json_object_object_add(o, "inflight",
			       json_object_new_int((int)st.inflight));
	json_object_object_add(o, "phase", json_object_new_string(st.phase));
	json_object_object_add(o, "rtt_ms", json_object_new_double(
				       st.rtt_us / 1000.0));
	json_object_object_add(o, "rtt_base_ms", json_object_new_double(
				       st.rtt_base_us / 1000.0));
	json_object_object_add(o, "cuts", json_object_new_int64(
				       (int64_t)st.drops));
	return o;
}

int m2w_pool_set_policies(struct m2w_queue *q, const struct m2w_config *cfg,
			  char *errbuf)
{
	size_t i;
	int rc;

	for (i = 0; i < cfg->ntypes; i++)
		if ((rc = m2w_queue_set_policy(q, cfg->types[i].name,
					       &cfg->types[i].policy, errbuf)))
			return rc;
	return M2W_OK;
}

int m2w_pool_start(const struct m2w_pool_opts *o, struct m2w_pool **out,
		   char *errbuf)
{
	struct m2w_pool *p;
	size_t i;
	int rc;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	p->q = o->q;
	p->client = o->client;
	p->cfg = o->cfg;
	p->idle_ms = o->idle_poll_ms > 0 ? o->idle_poll_ms : 100;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	m2w_breaker_init(&p->breaker, o->cfg->breaker_failures,
			 o->cfg->breaker_cooldown_ms);
	for (i = 0; i < o->cfg->ntypes; i++)
		p->jobs[i] = o->cfg->types[i].job;
	if ((rc = m2w_pool_set_policies(o->q, o->cfg, errbuf)))
		goto fail;
	{
		struct m2w_limiter_cfg lc;

		memset(&lc, 0, sizeof(lc)); /* scan-build: see tests/analysis.md */
		if ((rc = m2w_pool_limit_cfg(o->cfg, &lc, errbuf)))
			goto fail;
		if ((lc.adaptive || lc.fixed) &&
		    (rc = m2w_limiter_new(&lc, &p->lim, errbuf)))
			goto fail;
	}
	p->nslots = o->cfg->threads ? o->cfg->threads : 1;
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	if (!p->slots) {
		rc = m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < p->nslots; i++) {
		p->slots[i].p = p;
		p->slots[i].rr = (unsigned)i;
		if ((rc = m2_conn_new(o->client, &p->slots[i].conn, errbuf)))
			goto fail;
		m2_conn_set_abort(p->slots[i].conn, &p->aborting);
		m2_conn_set_observer(p->slots[i].conn, observe, &p->metrics);
		if (p->lim)
			m2_conn_set_gate(p->slots[i].conn, gate_enter,
					 gate_leave, p);
	}
	if (pthread_create(&p->keeper, NULL, keep, p) != 0) {
		rc = m2w_fail(errbuf, M2W_EIO, "cannot start the keeper thread");
		goto fail;
	}
	p->keeper_started = 1;
	for (i = 0; i < p->nslots; i++) {
		pthread_mutex_lock(&p->mu);
		p->running++;
		pthread_mutex_unlock(&p->mu);
		if (pthread_create(&p->slots[i].th, NULL, work,
				   &p->slots[i]) != 0) {
			pthread_mutex_lock(&p->mu);
			p->running--;
			pthread_mutex_unlock(&p->mu);
			rc = m2w_fail(errbuf, M2W_EIO,
				      "cannot start worker thread %zu", i);
			goto fail;
		}
		p->slots[i].started = 1;
	}
	m2w_log(M2W_LOG_INFO, "pool.start", "threads=%u types=%zu "
		"concurrency=%s", p->nslots, o->cfg->ntypes,
		o->cfg->concurrency ? o->cfg->concurrency : "threads");
	if (p->lim)
		p->lim_logged = m2w_limiter_limit(p->lim);
	*out = p;
	return M2W_OK;
fail:
	m2w_pool_stop(p, 0);
	m2w_pool_free(p);
	return rc;
}

size_t m2w_pool_stop(struct m2w_pool *p, int64_t grace_ms)
{
	int64_t deadline = m2w_clock_ms() + grace_ms;
	unsigned i;

	pthread_mutex_lock(&p->mu);
	set_flag(&p->stopping);
	pthread_cond_broadcast(&p->cv);
	while (p->running > 0 && m2w_clock_ms() < deadline)
		nap_locked(p, deadline - m2w_clock_ms());
	if (p->running > 0) {
		m2w_log(M2W_LOG_WARN, "pool.abort", "busy=%u "
			"(grace over: calls aborted, tasks released)",
			p->running);
		set_flag(&p->aborting);
		if (p->lim)  /* threads at the gate give their tasks back */
			m2w_limiter_wake(p->lim);
	}
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nslots; i++)
		if (p->slots[i].started) {
			pthread_join(p->slots[i].th, NULL);
			p->slots[i].started = 0;
		}
	pthread_mutex_lock(&p->mu);
	p->keeper_stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->keeper_started) {
		pthread_join(p->keeper, NULL);
		p->keeper_started = 0;
	}
	m2w_log(M2W_LOG_INFO, "pool.stop", "released=%zu", p->released);
	return p->released;
}

void m2w_pool_free(struct m2w_pool *p)
{
	unsigned i;

	if (!p)
		return;
	for (i = 0; p->slots && i < p->nslots; i++)
		m2_conn_free(p->slots[i].conn);
	free(p->slots);
	m2w_limiter_free(p->lim);
	m2w_breaker_destroy(&p->breaker);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

struct m2w_metrics *m2w_pool_metrics(struct m2w_pool *p)
{
	return &p->metrics;
}

int m2w_pool_breaker_state(struct m2w_pool *p)
{
	return m2w_breaker_state(&p->breaker);
}
