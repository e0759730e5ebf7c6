/*
 * check_limiter.c - the concurrency limiter (src/daemon/limiter.c).
 *
 * Fixed mode with real threads: N slots, the next caller waits, a timeout,
 * a release hands the slot on, a wake stops every waiter. Eight threads
 * on an adaptive limiter whose limit moves under them.
 *
 * Adaptive mode against a model of Magento, in virtual time (no sleeping):
 * C PHP workers, a no-load service time S, the storefront holding B of
 * the workers, every service time times 1 + jitter * U[0,1) (seeded).
 * Two models of a call's RTT:
 *   SHARE  fixed when it starts: S * max(1, (ours in flight + B) / C)
 *   FIFO   PHP-FPM: the call waits for the first of the C - B workers
 *          to be free, in order of arrival, then takes S
 * Our side is `callers` worker threads that start a call whenever the
 * limiter lets them (an endless backlog). The runs are deterministic, so
 * a phase that begins at one moment could begin, every time, just as a
 * probe does: phases are tried at several offsets.
 * The phases: an idle Magento, the storefront taking half the workers,
 * overload bursts, one slow outlier, threads that do not use the limit,
 * a Magento that gets three times slower. Every event checks that the
 * limit stays within [min, max] and that no call started past it.
 *
 * CK_VERBOSITY=verbose prints the limit after every S of each phase.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/limiter.h"
#include "m2worker/clock.h"
#include "testutil.h"

static int verbose(void)
{
	const char *v = getenv("CK_VERBOSITY");

	return v && strcmp(v, "verbose") == 0;
}

static struct m2w_limiter *fixed(unsigned n)
{
	struct m2w_limiter_cfg c = { 0, n, 0, 0, 0 };
	struct m2w_limiter *l;
	char err[M2W_ERRBUF_SIZE] = "";

	ck_assert_int_eq(m2w_limiter_new(&c, &l, err), M2W_OK);
	return l;
}

static unsigned waiting(struct m2w_limiter *l)
{
	struct m2w_limiter_stats st;

	m2w_limiter_stats(l, &st);
	return st.waiting;
}

/* Until exactly `n` threads wait in acquire (at most a second). */
static void wait_for_waiters(struct m2w_limiter *l, unsigned n)
{
	int64_t until = m2w_clock_mono_ms() + 1000;
	struct timespec ms = { 0, 1000000 };

	while (waiting(l) != n && m2w_clock_mono_ms() < until)
		nanosleep(&ms, NULL);
	ck_assert_uint_eq(waiting(l), n);
}

/* ------------------------------------------------------------ fixed */

START_TEST(fixed_slots)
{
	struct m2w_limiter *l = fixed(3);
	int64_t t0;
	int i;

	for (i = 0; i < 3; i++)
		ck_assert_int_eq(m2w_limiter_acquire(l, 0), 0);
	ck_assert_uint_eq(m2w_limiter_inflight(l), 3);
	/* the fourth does not get in: at once, and after a timeout */
	ck_assert_int_eq(m2w_limiter_acquire(l, 0), -1);
	t0 = m2w_clock_mono_ms();
	ck_assert_int_eq(m2w_limiter_acquire(l, 30), -1);
	ck_assert_int_ge(m2w_clock_mono_ms() - t0, 29);
	ck_assert_uint_eq(m2w_limiter_inflight(l), 3);
	/* outcomes and RTTs do not move a fixed limit */
	m2w_limiter_release(l, 5000000, M2W_LIMIT_OVERLOAD);
	m2w_limiter_release(l, 1, M2W_LIMIT_OK);
	ck_assert_uint_eq(m2w_limiter_limit(l), 3);
	ck_assert_uint_eq(m2w_limiter_inflight(l), 1);
	ck_assert_int_eq(m2w_limiter_acquire(l, 0), 0);
	ck_assert_int_eq(m2w_limiter_acquire(l, 0), 0);
	ck_assert_int_eq(m2w_limiter_acquire(l, 0), -1);
	/* a release without an acquire does not make a slot */
	for (i = 0; i < 4; i++)
		m2w_limiter_release(l, 1, M2W_LIMIT_IGNORE);
	ck_assert_uint_eq(m2w_limiter_inflight(l), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(m2w_limiter_acquire(l, 0), 0);
	ck_assert_int_eq(m2w_limiter_acquire(l, 0), -1);
	m2w_limiter_free(l);
}
END_TEST

struct waiter {
	struct m2w_limiter *l;
	int64_t timeout_ms;
	int rc;
};

static void *waiter_run(void *arg)
{
	struct waiter *w = arg;

	w->rc = m2w_limiter_acquire(w->l, w->timeout_ms);
	return NULL;
}

START_TEST(fixed_release_hands_on)
{
	struct m2w_limiter *l = fixed(1);
	struct waiter w[3];
	pthread_t th[3];
	int i, got = 0;

	ck_assert_int_eq(m2w_limiter_acquire(l, 0), 0);
	for (i = 0; i < 3; i++) {
		w[i].l = l;
		w[i].timeout_ms = i == 2 ? 5000 : -1;
		w[i].rc = 99;
		ck_assert_int_eq(pthread_create(&th[i], NULL, waiter_run,
						&w[i]), 0);
	}
	wait_for_waiters(l, 3);
	/* one release: exactly one waiter gets the slot */
	m2w_limiter_release(l, 1000, M2W_LIMIT_OK);
	wait_for_waiters(l, 2);
	ck_assert_uint_eq(m2w_limiter_inflight(l), 1);
	/* the stop: the two left return -1, and so does any later caller */
	m2w_limiter_wake(l);
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		ck_assert(w[i].rc == 0 || w[i].rc == -1);
		got += w[i].rc == 0;
	}
	ck_assert_int_eq(got, 1);
	ck_assert_uint_eq(waiting(l), 0);
	m2w_limiter_release(l, 1000, M2W_LIMIT_OK);
	ck_assert_int_eq(m2w_limiter_acquire(l, -1), -1);
	ck_assert_int_eq(m2w_limiter_acquire(l, 0), -1);
	m2w_limiter_free(l);
}
END_TEST

/* Eight threads on an adaptive limiter, its limit moving under them
 * (RTTs that grow with inflight, an overload now and then): nothing is
 * lost, nothing hangs, the counts add up. (Under .ci/tsan: no race.) */
struct hammer {
	struct m2w_limiter *l;
	unsigned peak_over;   /* grants seen past max */
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	unsigned i, n;

	for (i = 0; i < 3000; i++) {
		ck_assert_int_eq(m2w_limiter_acquire(h->l, -1), 0);
		n = m2w_limiter_inflight(h->l);
		if (n > 6)
			h->peak_over++;
		m2w_limiter_release(h->l, 1000 * (n > 3 ? n - 2 : 1),
				    i % 97 == 0 ? M2W_LIMIT_OVERLOAD
				    : i % 31 == 0 ? M2W_LIMIT_IGNORE
				    : M2W_LIMIT_OK);
	}
	return NULL;
}

START_TEST(adaptive_threads)
{
	struct m2w_limiter_cfg c = { 1, 0, 1, 6, 0 };
	struct m2w_limiter_stats st;
	struct hammer h[8];
	pthread_t th[8];
	char err[M2W_ERRBUF_SIZE] = "";
	struct m2w_limiter *l;
	int i;

	ck_assert_int_eq(m2w_limiter_new(&c, &l, err), M2W_OK);
	for (i = 0; i < 8; i++) {
		h[i].l = l;
		h[i].peak_over = 0;
		ck_assert_int_eq(pthread_create(&th[i], NULL, hammer_run,
						&h[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ck_assert_uint_eq(h[i].peak_over, 0);
	}
	m2w_limiter_stats(l, &st);
	ck_assert_uint_eq(st.inflight, 0);
	ck_assert_uint_eq(st.waiting, 0);
	ck_assert_uint_ge(st.limit, 1);
	ck_assert_uint_le(st.limit, 6);
	ck_assert_uint_gt(st.rounds, 100);
	ck_assert_uint_gt(st.changes, 2);
	ck_assert_uint_ge(st.drops, 1);
	ck_assert_uint_eq(st.overloads, 8 * 31);
	m2w_limiter_free(l);
}
END_TEST

START_TEST(config_refused)
{
	struct m2w_limiter_cfg c;
	struct m2w_limiter *l = (struct m2w_limiter *)&c;
	char err[M2W_ERRBUF_SIZE] = "";

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(m2w_limiter_new(&c, &l, err), M2W_EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_ptr_nonnull(strstr(err, "at least 1"));
	c.adaptive = 1;
	c.max = 4;
	ck_assert_int_eq(m2w_limiter_new(&c, &l, err), M2W_EINVAL);
	c.min = 5;
	ck_assert_int_eq(m2w_limiter_new(&c, &l, err), M2W_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "below concurrency_min"));
	c.min = 2;
	c.initial = 9;
	ck_assert_int_eq(m2w_limiter_new(&c, &l, err), M2W_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "outside [2, 4]"));
	/* initial 0 is min */
	c.initial = 0;
	ck_assert_int_eq(m2w_limiter_new(&c, &l, err), M2W_OK);
	ck_assert_uint_eq(m2w_limiter_limit(l), 2);
	m2w_limiter_free(l);
	c.initial = 3;
	ck_assert_int_eq(m2w_limiter_new(&c, &l, err), M2W_OK);
	ck_assert_uint_eq(m2w_limiter_limit(l), 3);
	m2w_limiter_free(l);
}
END_TEST

/* ------------------------------------------------- the Magento model */

#define SIM_CALLS 256
#define SIM_TICKS 4096
#define S_US 100000          /* S = 100 ms */

struct call {
	int64_t end, rtt;
};

enum { SHARE, FIFO };
static const char *const model_name[] = { "share", "fifo" };

struct sim {
	struct m2w_limiter *l;
	unsigned min, max;
	int model;           /* SHARE or FIFO */
	unsigned c;          /* Magento's PHP workers */
	int64_t s_us;        /* the no-load service time S */
	unsigned bg;         /* workers the storefront holds */
	unsigned callers;    /* our threads; 0 = as many as max */
	double jitter;
	int overload;        /* calls that end now fail (503) */
	int outlier;         /* the next call to start takes 20 S */
	int mixed;           /* calls of three costs: S (50%), 3 S (35%),
			      * 10 S (15%), as a job mix might be */
	uint64_t rng;
	int64_t now, tick_at;
	struct call calls[SIM_CALLS];
	unsigned n;
	int64_t free_at[SIM_CALLS];  /* FIFO: when each worker is free */
	/* after every S: the limit and the estimate's */
	unsigned lim[SIM_TICKS], tgt[SIM_TICKS];
	unsigned ticks, phase_at;
	unsigned lo, hi;     /* the least and most limit at any event */
	unsigned over;       /* calls started past the limit */
};

static double uniform(struct sim *s)
{
	s->rng ^= s->rng << 13;   /* xorshift64 */
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return (double)(s->rng >> 11) / (double)(1ULL << 53);
}

static void sim_init(struct sim *s, unsigned min, unsigned max,
		     unsigned initial, unsigned c, double jitter)
{
	ck_assert_uint_le(c, SIM_CALLS);
	struct m2w_limiter_cfg cfg = { 1, 0, min, max, initial };
	char err[M2W_ERRBUF_SIZE] = "";

	memset(s, 0, sizeof(*s));
	ck_assert_uint_le(max, SIM_CALLS);
	ck_assert_int_eq(m2w_limiter_new(&cfg, &s->l, err), M2W_OK);
	s->min = min;
	s->max = max;
	s->c = c;
	s->s_us = S_US;
	s->jitter = jitter;
	s->rng = 0x9e3779b97f4a7c15ULL;
	s->lo = s->hi = m2w_limiter_limit(s->l);
}

static unsigned target(struct sim *s)
{
	struct m2w_limiter_stats st;

	m2w_limiter_stats(s->l, &st);
	return st.target;
}

static void observe(struct sim *s)
{
	unsigned lim = m2w_limiter_limit(s->l);

	if (lim < s->lo)
		s->lo = lim;
	if (lim > s->hi)
		s->hi = lim;
}

static void start_call(struct sim *s)
{
	unsigned total = s->n + 1 + s->bg, w, i;
	double f = 1 + s->jitter * uniform(s);
	struct call *k = &s->calls[s->n++];
	int64_t at;

	if (m2w_limiter_inflight(s->l) > m2w_limiter_limit(s->l))
		s->over++;
	if (s->outlier) {
		f *= 20;
		s->outlier = 0;
	}
	if (s->mixed) {
		double u = uniform(s);

		f *= u < 0.5 ? 1 : u < 0.85 ? 3 : 10;
	}
	if (s->model == SHARE) {
		if (total > s->c)
			f *= (double)total / s->c;
		k->rtt = (int64_t)(s->s_us * f);
	} else {
		/* the storefront holds workers C-B .. C-1 */
		for (w = 0, i = 1; i < s->c - s->bg; i++)
			if (s->free_at[i] < s->free_at[w])
				w = i;
		at = s->free_at[w] > s->now ? s->free_at[w] : s->now;
		s->free_at[w] = at + (int64_t)(s->s_us * f);
		k->rtt = s->free_at[w] - s->now;
	}
	k->end = s->now + k->rtt;
}

static void tick_to(struct sim *s, int64_t t)
{
	while (s->tick_at <= t && s->ticks < SIM_TICKS) {
		s->lim[s->ticks] = m2w_limiter_limit(s->l);
		s->tgt[s->ticks] = target(s);
		s->ticks++;
		s->tick_at += s->s_us;
	}
}

/* Runs the model for `us` of virtual time; returns the tick it began at. */
static unsigned sim_for(struct sim *s, int64_t us)
{
	int64_t until = s->now + us;
	unsigned cap = s->callers ? s->callers : s->max;
	unsigned i, first, began = s->ticks;
	struct call k;

	for (;;) {
		while (s->n < cap && m2w_limiter_acquire(s->l, 0) == 0)
			start_call(s);
		observe(s);
		ck_assert_uint_gt(s->n, 0);   /* min >= 1: never idle */
		first = 0;
		for (i = 1; i < s->n; i++)
			if (s->calls[i].end < s->calls[first].end)
				first = i;
		if (s->calls[first].end > until)
			break;
		k = s->calls[first];
		s->calls[first] = s->calls[--s->n];
		tick_to(s, k.end);
		s->now = k.end;
		if (s->overload)
			m2w_limiter_release(s->l, s->s_us / 10,
					    M2W_LIMIT_OVERLOAD);
		else
			m2w_limiter_release(s->l, k.rtt, M2W_LIMIT_OK);
		observe(s);
	}
	tick_to(s, until);
	s->now = until;
	return began;
}

/* The same for `rtts` times S. */
static unsigned sim_run(struct sim *s, unsigned rtts)
{
	return sim_for(s, (int64_t)rtts * s->s_us);
}

/* Prints ticks [from, ticks) under a name (CK_VERBOSITY=verbose). */
static void show(struct sim *s, const char *name, unsigned from)
{
	unsigned i;

	if (!verbose())
		return;
	printf("%s (limit after each S from tick %u; * probing):\n", name,
	       from);
	for (i = from; i < s->ticks; i++)
		printf("%3u%s%s", s->tgt[i], s->lim[i] < s->tgt[i] ? "*" : " ",
		       (i - from) % 20 == 19 || i + 1 == s->ticks ? "\n" : "");
	fflush(stdout);   /* a failing check ends the process */
}

/* The least and most estimate over ticks [from, to). */
static void range(const struct sim *s, unsigned from, unsigned to,
		  unsigned *lo, unsigned *hi)
{
	unsigned i;

	ck_assert_uint_lt(from, to);
	ck_assert_uint_le(to, s->ticks);
	*lo = *hi = s->tgt[from];
	for (i = from; i < to; i++) {
		if (s->tgt[i] < *lo)
			*lo = s->tgt[i];
		if (s->tgt[i] > *hi)
			*hi = s->tgt[i];
	}
}

/* The first tick in [from, ticks) with an estimate >= v; ticks if none. */
static unsigned reaches(const struct sim *s, unsigned from, unsigned v)
{
	while (from < s->ticks && s->tgt[from] < v)
		from++;
	return from;
}

static void sim_done(struct sim *s)
{
	ck_assert_uint_eq(s->over, 0);
	ck_assert_uint_ge(s->lo, s->min);
	ck_assert_uint_le(s->hi, s->max);
	m2w_limiter_free(s->l);
}

/* ---------------------------------------------------------- adaptive */

/* (a) An idle Magento: from min to C in a few RTTs, and it stays there
 * without creeping up. Both models. */
START_TEST(idle_climbs_and_holds)
{
	struct sim s;
	struct m2w_limiter_stats st;
	unsigned lo, hi, at, probing = 0, i;
	char name[64];

	sim_init(&s, 1, 64, 0, 16, 0.2);
	s.model = _i;
	sim_run(&s, 300);
	snprintf(name, sizeof(name), "idle, C=16, %s", model_name[_i]);
	show(&s, name, 0);
	at = reaches(&s, 0, 14);
	if (verbose())
		printf("%s: 14 after %u S\n", name, at);
	ck_assert_uint_le(at, 12);
	/* then C plus the small margin, for 250 RTTs: no creeping */
	range(&s, 50, 300, &lo, &hi);
	ck_assert_uint_ge(lo, 16);
	ck_assert_uint_le(hi, 21);
	/* probes: rare and short */
	for (i = 50; i < 300; i++)
		probing += s.lim[i] < s.tgt[i];
	ck_assert_uint_le(probing, 25);
	m2w_limiter_stats(s.l, &st);
	/* S, times the jitter of a round's lower quartile */
	ck_assert_int_ge(st.rtt_base_us, S_US);
	ck_assert_int_le(st.rtt_base_us, S_US * 110 / 100);
	ck_assert_uint_eq(st.drops, 0);
	sim_done(&s);
}
END_TEST

/* (b) The storefront takes half the PHP workers: the limit gives them
 * back, holds there while the storefront stays, and climbs again after.
 * Both models, the storefront coming at four moments. */
START_TEST(storefront_takes_half)
{
	static const unsigned offsets[] = { 60, 67, 74, 81 };
	struct sim s;
	unsigned lo, hi, t0, t1, at, k;
	char name[96];

	for (k = 0; k < 4; k++) {
		sim_init(&s, 1, 64, 0, 16, 0.2);
		s.model = _i;
		sim_run(&s, offsets[k]);
		s.bg = 8;
		t0 = sim_run(&s, 200);
		snprintf(name, sizeof(name), "%s: the storefront holds 8 of "
			 "16 workers from %u S", model_name[_i], offsets[k]);
		show(&s, name, t0);
		for (at = t0; at < s.ticks && s.tgt[at] > 12; at++)
			;
		if (verbose())
			printf("%s: <= 12 after %u S\n", name, at - t0);
		ck_assert_uint_le(at - t0, 15);
		/* roughly the 8 left, for the whole phase: no creeping */
		range(&s, t0 + 15, t0 + 200, &lo, &hi);
		ck_assert_uint_ge(lo, 6);
		ck_assert_uint_le(hi, 12);
		s.bg = 0;
		t1 = sim_run(&s, 60);
		show(&s, "the storefront gone", t1);
		at = reaches(&s, t1, 16);
		if (verbose())
			printf("the storefront gone: 16 after %u S\n", at - t1);
		ck_assert_uint_le(at - t1, 20);
		sim_done(&s);
	}
}
END_TEST

/* (c) Overload: a burst of 503s cuts once, not once per failed call; a
 * long outage takes it to min; it climbs again after. */
START_TEST(overload_cuts_once_per_rtt)
{
	static const unsigned offsets[] = { 60, 67, 74, 81 };
	struct sim s;
	struct m2w_limiter_stats st;
	unsigned before, after, t1, at, k;
	uint64_t drops;

	for (k = 0; k < 4; k++) {
		sim_init(&s, 1, 64, 0, 16, 0.2);
		sim_run(&s, offsets[k]);
		before = target(&s);
		/* half an RTT of 503s: every call ending then (3 or more) */
		s.overload = 1;
		sim_for(&s, S_US / 2);
		s.overload = 0;
		sim_run(&s, 1);
		m2w_limiter_stats(s.l, &st);
		after = target(&s);
		if (verbose())
			printf("burst at %u S: %u -> %u, %llu overloads, %llu "
			       "cuts\n", offsets[k], before, after,
			       (unsigned long long)st.overloads,
			       (unsigned long long)st.drops);
		ck_assert_uint_ge(st.overloads, 3);
		ck_assert_uint_eq(st.drops, 1);
		ck_assert_uint_le(after, (unsigned)(before * 0.7 + 0.5));
		ck_assert_uint_ge(after, (unsigned)(before * 0.7) - 1);
		/* a 30 RTT outage: down to min, about one cut per RTT */
		drops = st.drops;
		s.overload = 1;
		t1 = sim_run(&s, 30);
		show(&s, "30 S of 503s", t1);
		m2w_limiter_stats(s.l, &st);
		ck_assert_uint_eq(target(&s), 1);
		ck_assert_uint_ge(st.drops - drops, 8);
		ck_assert_uint_le(st.drops - drops, 40);
		s.overload = 0;
		t1 = sim_run(&s, 60);
		show(&s, "after the outage", t1);
		at = reaches(&s, t1, 14);
		if (verbose())
			printf("after the outage: 14 after %u S\n", at - t1);
		ck_assert_uint_le(at - t1, 40);
		sim_done(&s);
	}
}
END_TEST

/* (d) The bounds: an idle Magento far larger than max, then an outage,
 * then a Magento far smaller than min. */
START_TEST(bounds_hold)
{
	struct sim s;

	sim_init(&s, 3, 5, 4, 100, 0.2);
	ck_assert_uint_eq(m2w_limiter_limit(s.l), 4);
	sim_run(&s, 50);
	ck_assert_uint_eq(target(&s), 5);
	ck_assert_uint_eq(s.hi, 5);
	s.overload = 1;
	sim_run(&s, 30);
	ck_assert_uint_eq(target(&s), 3);
	ck_assert_uint_eq(s.lo, 3);
	s.overload = 0;
	s.c = 1;
	sim_run(&s, 100);
	ck_assert_uint_eq(s.lo, 3);
	ck_assert_uint_eq(target(&s), 3);
	sim_done(&s);
}
END_TEST

/* (e) One call 20 times slower than the rest moves nothing: the same
 * run without it (same seed) is the control, since the jitter alone
 * moves the limit by a call or two. */
START_TEST(one_outlier_moves_nothing)
{
	static const unsigned offsets[] = { 60, 67, 74, 81 };
	struct sim s, ctl;
	unsigned before, lo, hi, clo, chi, t0, k;

	for (k = 0; k < 4; k++) {
		sim_init(&ctl, 1, 64, 0, 16, 0.2);
		sim_run(&ctl, offsets[k]);
		t0 = sim_run(&ctl, 30);
		range(&ctl, t0, t0 + 30, &clo, &chi);
		sim_done(&ctl);

		sim_init(&s, 1, 64, 0, 16, 0.2);
		sim_run(&s, offsets[k]);
		before = target(&s);
		s.outlier = 1;
		t0 = sim_run(&s, 30);
		show(&s, "one call 20x slower", t0);
		range(&s, t0, t0 + 30, &lo, &hi);
		if (verbose())
			printf("outlier at %u S: before %u, then %u..%u "
			       "(without it %u..%u)\n", offsets[k], before, lo,
			       hi, clo, chi);
		ck_assert_uint_ge(lo + 1, clo);
		ck_assert_uint_le(hi, chi + 1);
		ck_assert_uint_ge(lo * 4, before * 3);
		sim_done(&s);
	}
}
END_TEST

/* Calls of different costs (a GET, a POST, a batch): the quartile of a
 * round is still a cheap call, and the limit still finds C and C - B. */
START_TEST(mixed_costs)
{
	struct sim s;
	unsigned lo, hi, t0;
	char name[64];

	sim_init(&s, 1, 64, 0, 16, 0.2);
	s.model = _i;
	s.mixed = 1;
	sim_run(&s, 400);
	snprintf(name, sizeof(name), "mixed costs, C=16, %s", model_name[_i]);
	show(&s, name, 0);
	range(&s, 100, 400, &lo, &hi);
	if (verbose())
		printf("%s: %u..%u\n", name, lo, hi);
	ck_assert_uint_ge(lo, 12);
	ck_assert_uint_le(hi, 22);
	s.bg = 8;
	t0 = sim_run(&s, 400);
	show(&s, "mixed costs, the storefront holds 8", t0);
	range(&s, t0 + 50, t0 + 400, &lo, &hi);
	if (verbose())
		printf("mixed costs, the storefront holds 8: %u..%u\n", lo, hi);
	ck_assert_uint_ge(lo, 5);
	ck_assert_uint_le(hi, 13);
	sim_done(&s);
}
END_TEST

/* Four threads on a Magento of 32 workers: a limit they do not use does
 * not grow. */
START_TEST(unused_limit_does_not_grow)
{
	struct sim s;
	unsigned lo, hi;

	sim_init(&s, 1, 64, 0, 32, 0.2);
	s.callers = 4;
	sim_run(&s, 200);
	show(&s, "4 threads, C=32", 0);
	range(&s, 20, 200, &lo, &hi);
	ck_assert_uint_ge(lo, 4);
	ck_assert_uint_le(hi, 8);
	sim_done(&s);
}
END_TEST

/* Magento becomes three times slower for good (same workers): the probes
 * find the new no-load RTT and the limit returns to C; when Magento is
 * fast again the new minimum is taken at once. */
START_TEST(baseline_rises_and_falls)
{
	static const unsigned offsets[] = { 60, 67, 74, 81 };
	struct sim s;
	struct m2w_limiter_stats st;
	unsigned lo, hi, t0, t1, at, k;

	for (k = 0; k < 4; k++) {
		sim_init(&s, 1, 64, 0, 16, 0.2);
		sim_run(&s, offsets[k]);
		s.s_us = 3 * S_US;
		t0 = sim_run(&s, 150);
		show(&s, "Magento 3x slower (ticks of the new S)", t0);
		range(&s, t0, t0 + 150, &lo, &hi);
		ck_assert_uint_le(hi, 21);
		at = reaches(&s, t0 + 15, 14);
		if (verbose())
			printf("3x slower at %u S: down to %u, 14 again after "
			       "%u S\n", offsets[k], lo, at - t0);
		ck_assert_uint_le(at - t0, 100);
		range(&s, t0 + 110, t0 + 150, &lo, &hi);
		ck_assert_uint_ge(lo, 14);
		m2w_limiter_stats(s.l, &st);
		ck_assert_int_ge(st.rtt_base_us, 3 * S_US);
		ck_assert_int_le(st.rtt_base_us, 3 * S_US * 110 / 100);
		s.s_us = S_US;
		t1 = sim_run(&s, 60);
		show(&s, "Magento fast again", t1);
		m2w_limiter_stats(s.l, &st);
		ck_assert_int_le(st.rtt_base_us, S_US * 110 / 100);
		range(&s, t1 + 20, t1 + 60, &lo, &hi);
		ck_assert_uint_ge(lo, 14);
		ck_assert_uint_le(hi, 21);
		sim_done(&s);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("limiter");
	TCase *tc = tcase_create("fixed");
	TCase *ta = tcase_create("adaptive");

	tcase_add_test(tc, fixed_slots);
	tcase_add_test(tc, fixed_release_hands_on);
	tcase_add_test(tc, adaptive_threads);
	tcase_add_test(tc, config_refused);
	suite_add_tcase(s, tc);
	tcase_add_loop_test(ta, idle_climbs_and_holds, SHARE, FIFO + 1);
	tcase_add_loop_test(ta, storefront_takes_half, SHARE, FIFO + 1);
	tcase_add_test(ta, overload_cuts_once_per_rtt);
	tcase_add_test(ta, bounds_hold);
	tcase_add_test(ta, one_outlier_moves_nothing);
	tcase_add_loop_test(ta, mixed_costs, SHARE, FIFO + 1);
	tcase_add_test(ta, unused_limit_does_not_grow);
	tcase_add_test(ta, baseline_rises_and_falls);
	suite_add_tcase(s, ta);
	return tu_run("m2w-check-limiter", s);
}
