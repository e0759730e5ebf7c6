/*
 * limiter.c - the adaptive concurrency limit in front of Magento (see
 * limiter.h).
 *
 * What it has to find. Magento runs a request on one of C PHP workers,
 * shared with the storefront. While fewer than C requests are in flight a
 * call takes its no-load time S; beyond, requests wait for a worker and a
 * call takes about S * inflight / C. The right limit for background work
 * is what the storefront leaves idle: grow while calls take S, give back
 * when they take longer. That is delay-based congestion control, and the
 * limiter takes its parts from there:
 *
 *   - TCP Vegas (Brakmo and Peterson, SIGCOMM 1994; Linux tcp_vegas.c)
 *     and Netflix's concurrency-limits, which carried it from packets to
 *     requests (VegasLimit, GradientLimit): compare the round trip now
 *     with the no-load round trip; queueing shows as the difference.
 *     "Now" is one number per round (about one RTT, below), the round's
 *     lower quartile RTT; the no-load RTT `base` is the smallest of those.
 *     Linux Vegas takes the round's minimum. A quartile, because with
 *     PHP-FPM's FIFO queue and uneven service times the luckiest call of
 *     a round hardly waits, so the minimum misses the queue (in the test's
 *     FIFO model the limit crept to 23 for 16 workers). Not the median,
 *     because calls cost different amounts (a GET, a batch POST): a
 *     round's median jumps to the dear calls whenever they are half of
 *     it, and the limit fell to min in the test's mixed model. One slow
 *     call moves neither statistic.
 *   - From GradientLimit, the decrease: limit * base/rtt is what would
 *     have run without the queue. The limit moves half way there per
 *     round, base/rtt floored at 0.5, so at most -25% per round.
 *   - From BBR's ProbeRTT (Cardwell et al., ACM Queue 2016; BBRv2 probes
 *     at half the window): a minimum that only falls goes stale, and a
 *     busy Magento never shows its no-load RTT by itself. So after
 *     PROBE_ROUNDS rounds none of which ran at base, the limit is halved
 *     for one round, and that round's RTT BECOMES base, higher or lower.
 *     The baseline follows a Magento that really got slower (a cold
 *     cache, a bigger catalog) without drifting up with our own load.
 *     Netflix's VegasLimit drifts: it takes the current sample as the new
 *     minimum now and then, at full load. So does Gradient2Limit's long
 *     average: it follows a sustained queue, so the limit creeps up
 *     exactly while the storefront is busy. That is why neither is copied
 *     as it is.
 *   - From TCP's loss response (RFC 5681; the factor 0.7 is CUBIC's, RFC
 *     8312): an overload (429, 5xx, timeout) cuts the limit at once, and
 *     once only for the calls that were in flight at the cut. The calls
 *     started before the cut come back failing too, and counting them
 *     again would take one burst down to min. A count replaces TCP's
 *     sequence numbers: the next `inflight` releases are the old calls.
 *
 * Rounds. The limiter reads no clock; its time is the releases. A round
 * ends when max(ROUND_MIN, limit) calls have released M2W_LIMIT_OK since
 * it began; with the limit in use that is one RTT (TCP's window of ACKs).
 * At its end, with r = the round's RTT / base:
 *
 *   r > 1 + TOL_SHRINK   queueing: limit += SMOOTH * (limit * max(1/r,
 *                        GRAD_MIN) - limit)
 *   r <= 1 + TOL_GROW    no queueing and the limit was used (the round's
 *                        peak inflight >= 3/4 of it): limit * 2 in slow
 *                        start, else limit + 1
 *   between              hold (the band keeps it from see-sawing)
 *
 * The rounds around a change. After a decrease, the calls in flight were
 * started with more company than the new limit allows: their RTTs are
 * skipped. After an increase of more than one (a doubling, a probe's
 * end), the calls started at once see the load only ramp up, so the round
 * is too kind: it may shrink the limit but not grow it. (Linux Vegas, for
 * the same reason, doubles only every other round in slow start.)
 *
 * Slow start (from `initial`) doubles until the first sign of queueing
 * or overload, like TCP's: 1 to 16 in about 12 RTTs, with a few rounds of
 * overshoot, up to twice what Magento took (capped by max). Probes also
 * come early in two cases. A limit pinned at min while r stays above the
 * band probes after PROBE_AT_MIN rounds: at min there is nothing of ours
 * left to take away, so what is left is the baseline. A round far below
 * base (Magento got faster) probes at once: at our limit the new RTT may
 * still hide a queue.
 *
 * In the tests' model with 16 workers and 20% jitter, the limit settles
 * at 16-19 on an idle Magento (a call or three waiting there). With the
 * storefront holding 8 workers it settles at 8-11. tests/check_limiter.c
 * prints the trajectories (CK_VERBOSITY=verbose).
 *
 * What it cannot tell apart: a baseline that rose, and a storefront that
 * keeps every worker busy for longer than PROBE_ROUNDS rounds, look the
 * same to a probe. Then the limit settles a few calls above min, and
 * Magento's own 503s and timeouts take it down.
 *
 * Fixed mode: a semaphore of `fixed` slots; releases only free the slot.
 *
 * Threads: everything is under `mu`; `limit` and `inflight` are also
 * written with atomic stores, so m2w_limiter_limit/inflight read them
 * without the lock. Waiters sleep on `cv` (CLOCK_MONOTONIC deadlines).
 * Not FIFO: any waiting worker may take a freed slot.
 * Cost per call: a lock, a store into the round's array; once per round,
 * a selection over it (O(limit)).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "m2worker/clock.h"
#include "limiter.h"

#define ROUND_MIN 4        /* samples per round at the least: at limit 1
			    * a round is 4 calls, not one noisy call */
#define ROUND_Q_NUM 1      /* a round's RTT: its lower quartile */
#define ROUND_Q_DEN 4
#define TOL_GROW 0.10      /* grow while the round's RTT <= base * 1.10 */
#define TOL_SHRINK 0.20    /* shrink once it is > base * 1.20 */
#define GRAD_MIN 0.5       /* base/rtt floored: one round's target is at
			    * least half the limit (GradientLimit's 0.5) */
#define SMOOTH 0.5         /* move half way to the target per round */
#define USED_NUM 3         /* the limit counts as used when the round's */
#define USED_DEN 4         /*   peak inflight >= 3/4 of it */
#define CUT 0.7            /* overload: limit * 0.7 (CUBIC's beta) */
#define PROBE_ROUNDS 32    /* rounds without one at base: probe */
#define PROBE_AT_MIN 8     /* the same while the limit sits at min */
#define PROBE_DIV 2        /* the limit while probing: limit / 2 */

struct m2w_limiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int adaptive;
	unsigned min, max;
	unsigned limit;       /* what acquire lets in; atomic stores */
	unsigned inflight;    /* atomic stores */
	unsigned waiting;
	int stopped;

	/* adaptive */
	double est;           /* the limit, unrounded, in [min, max] */
	unsigned target;      /* (unsigned)est */
	int slow_start;
	int probing;
	int64_t base_us;      /* no-load RTT; 0 = none yet */
	unsigned base_age;    /* rounds since one ran at base */
	unsigned recover;     /* releases of calls from before the last cut */
	unsigned skip;        /* releases whose RTT is not sampled */
	int settle;           /* this round may not grow the limit */
	/* the current round */
	unsigned r_need, r_n, r_peak;
	int64_t *r_rtt;       /* its RTTs: r_n of max(ROUND_MIN, max) room */
	int64_t last_us;      /* the last round's RTT (its quartile) */

	uint64_t rounds, changes, drops, overloads, probes;
};

/* ------------------------------------------------------------ helpers */

static void store_u(unsigned *p, unsigned v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static unsigned load_u(const unsigned *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static double clamp(const struct m2w_limiter *l, double v)
{
	if (v < l->min)
		return l->min;
	if (v > l->max)
		return l->max;
	return v;
}

/* Makes `limit` what est and probing say; wakes waiters when it rose. */
static void publish(struct m2w_limiter *l)
{
	unsigned t = (unsigned)l->est, eff = t;

	if (t != l->target) {
		l->target = t;
		l->changes++;
	}
	if (l->probing) {
		eff = t / PROBE_DIV;
		if (eff < l->min)
			eff = l->min;
	}
	if (eff > l->limit && l->waiting)
		pthread_cond_broadcast(&l->cv);
	store_u(&l->limit, eff);
}

/* A new round after the limit went from `old` to l->limit: after a
 * decrease the RTTs of the calls in flight are skipped, after an increase
 * of more than one the round may not grow the limit (top comment). */
static void new_round(struct m2w_limiter *l, unsigned old)
{
	if (l->limit < old)
		l->skip = l->inflight;
	l->settle = l->limit > old + 1;
	l->r_need = l->limit > ROUND_MIN ? l->limit : ROUND_MIN;
	l->r_n = 0;
	l->r_peak = 0;
}

/* ----------------------------------------------------------- adaptive */

/* The k-th smallest of v[0..n-1], 0-based (Wirth's selection; it
 * reorders v). */
static int64_t kth(int64_t *v, int n, int k)
{
	int lo = 0, hi = n - 1, i, j;
	int64_t x, t;

	while (lo < hi) {
		x = v[k];
		i = lo;
		j = hi;
		do {
			while (v[i] < x)
				i++;
			while (x < v[j])
				j--;
			if (i <= j) {
				t = v[i];
				v[i] = v[j];
				v[j] = t;
				i++;
				j--;
			}
		} while (i <= j);
		if (j < k)
			lo = i;
		if (k < i)
			hi = j;
	}
	return v[k];
}

/* A round ended (r_n >= r_need): the update of the top comment. */
static void end_round(struct m2w_limiter *l)
{
	unsigned old = l->limit;
	int64_t rtt = kth(l->r_rtt, (int)l->r_n,
			  (int)((l->r_n - 1) * ROUND_Q_NUM / ROUND_Q_DEN));
	double r, g, est = l->est;
	int used, probe;

	l->rounds++;
	l->last_us = rtt;
	if (l->probing) {
		/* the limit was halved for this round: what no load costs */
		l->probing = 0;
		l->base_us = rtt;
		l->base_age = 0;
		l->probes++;
		publish(l);
		new_round(l, old);
		return;
	}
	/* fell well below the baseline: Magento got faster, and what we
	 * see at our limit may still hide some queueing: probe now */
	probe = l->base_us && rtt * (1 + TOL_SHRINK) < l->base_us;
	if (!l->base_us || rtt < l->base_us)
		l->base_us = rtt;
	r = (double)rtt / (double)l->base_us;
	used = (uint64_t)l->r_peak * USED_DEN >= (uint64_t)l->target * USED_NUM;
	if (r <= 1 + TOL_GROW) {
		l->base_age = 0;
		if (used && !l->settle)
			est = l->slow_start ? est * 2 : est + 1;
	} else {
		l->base_age++;
		l->slow_start = 0;
		if (r > 1 + TOL_SHRINK) {
			g = 1 / r;
			if (g < GRAD_MIN)
				g = GRAD_MIN;
			est += SMOOTH * (est * g - est);
		}
	}
	l->est = clamp(l, est);
	if (l->est >= l->max)
		l->slow_start = 0;
	/* a stale baseline: measure it at half the limit for one round */
	if (probe || l->base_age >= PROBE_ROUNDS ||
	    (l->base_age >= PROBE_AT_MIN && (unsigned)l->est <= l->min))
		l->probing = 1;
	publish(l);
	new_round(l, old);
}

static void cut(struct m2w_limiter *l)
{
	unsigned old = l->limit;

	l->probing = 0;       /* a probe in progress is abandoned */
	l->slow_start = 0;
	l->est = clamp(l, l->est * CUT);
	l->drops++;
	/* the calls still in flight were started before the cut: their
	 * overloads are this one's */
	l->recover = l->inflight;
	publish(l);
	new_round(l, old);
}

static void sample(struct m2w_limiter *l, int64_t rtt_us, int outcome,
		   unsigned peak)
{
	int old = 0, skipped = 0;

	if (l->recover) {
		l->recover--;
		old = 1;
	}
	if (l->skip) {
		l->skip--;
		skipped = 1;
	}
	if (outcome == M2W_LIMIT_OVERLOAD) {
		l->overloads++;
		if (!old)
			cut(l);
		return;
	}
	if (outcome != M2W_LIMIT_OK || skipped || rtt_us <= 0)
		return;
	l->r_rtt[l->r_n] = rtt_us;
	if (peak > l->r_peak)
		l->r_peak = peak;
	if (++l->r_n >= l->r_need)
		end_round(l);
}

/* -------------------------------------------------------------- calls */

int m2w_limiter_new(const struct m2w_limiter_cfg *c, struct m2w_limiter **out,
		    char *errbuf)
{
	struct m2w_limiter *l;
	pthread_condattr_t ca;
	unsigned initial = c->initial ? c->initial : c->min;

	*out = NULL;
	if (!c->adaptive && c->fixed < 1)
		return m2w_fail(errbuf, M2W_EINVAL, "concurrency must be at "
				"least 1");
	if (c->adaptive && c->min < 1)
		return m2w_fail(errbuf, M2W_EINVAL, "concurrency_min must be "
				"at least 1");
	if (c->adaptive && c->max < c->min)
		return m2w_fail(errbuf, M2W_EINVAL, "concurrency_max (%u) is "
				"below concurrency_min (%u)", c->max, c->min);
	if (c->adaptive && (initial < c->min || initial > c->max))
		return m2w_fail(errbuf, M2W_EINVAL, "initial concurrency %u "
				"is outside [%u, %u]", initial, c->min, c->max);
	l = calloc(1, sizeof(*l));
	if (l && c->adaptive)
		l->r_rtt = calloc(c->max > ROUND_MIN ? c->max : ROUND_MIN,
				  sizeof(*l->r_rtt));
	if (!l || (c->adaptive && !l->r_rtt)) {
		free(l);
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	l->adaptive = c->adaptive;
	if (c->adaptive) {
		l->min = c->min;
		l->max = c->max;
		l->est = initial;
		l->target = initial;
		l->slow_start = 1;
	} else {
		l->min = l->max = c->fixed;
		l->est = c->fixed;
		l->target = c->fixed;
	}
	l->limit = l->target;
	new_round(l, l->limit);
	*out = l;
	return M2W_OK;
}

void m2w_limiter_free(struct m2w_limiter *l)
{
	if (!l)
		return;
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l->r_rtt);
	free(l);
}

int m2w_limiter_acquire(struct m2w_limiter *l, int64_t timeout_ms)
{
	struct timespec ts;
	int64_t until;
	int rc = -1;

	pthread_mutex_lock(&l->mu);
	if (!l->stopped && l->inflight >= l->limit && timeout_ms != 0) {
		until = m2w_clock_mono_ms() + timeout_ms;
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000;
		l->waiting++;
		while (!l->stopped && l->inflight >= l->limit) {
			if (timeout_ms < 0)
				pthread_cond_wait(&l->cv, &l->mu);
			else if (pthread_cond_timedwait(&l->cv, &l->mu,
							&ts) == ETIMEDOUT)
				break;
		}
		l->waiting--;
	}
	/* a slot freed just as the wait timed out is still taken */
	if (!l->stopped && l->inflight < l->limit) {
		store_u(&l->inflight, l->inflight + 1);
		rc = 0;
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void m2w_limiter_release(struct m2w_limiter *l, int64_t rtt_us, int outcome)
{
	unsigned peak;

	pthread_mutex_lock(&l->mu);
	if (!l->inflight) {   /* a release without an acquire: ignored */
		pthread_mutex_unlock(&l->mu);
		return;
	}
	peak = l->inflight;
	store_u(&l->inflight, l->inflight - 1);
	if (l->adaptive)
		sample(l, rtt_us, outcome, peak);
	if (l->waiting && l->inflight < l->limit) {
		if (l->limit - l->inflight > 1)
			pthread_cond_broadcast(&l->cv);
		else
			pthread_cond_signal(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
}

unsigned m2w_limiter_limit(const struct m2w_limiter *l)
{
	return load_u(&l->limit);
}

unsigned m2w_limiter_inflight(const struct m2w_limiter *l)
{
	return load_u(&l->inflight);
}

void m2w_limiter_wake(struct m2w_limiter *l)
{
	pthread_mutex_lock(&l->mu);
	l->stopped = 1;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void m2w_limiter_stats(struct m2w_limiter *l, struct m2w_limiter_stats *st)
{
	pthread_mutex_lock(&l->mu);
	st->adaptive = l->adaptive;
	st->limit = l->limit;
	st->target = l->target;
	st->inflight = l->inflight;
	st->waiting = l->waiting;
	st->phase = !l->adaptive ? "fixed" : l->probing ? "probe"
		    : l->recover ? "recover" : l->slow_start ? "start"
		    : "steady";
	st->rtt_base_us = l->base_us;
	st->rtt_us = l->last_us;
	st->rounds = l->rounds;
	st->changes = l->changes;
	st->drops = l->drops;
	st->overloads = l->overloads;
	st->probes = l->probes;
	pthread_mutex_unlock(&l->mu);
}
