/*
 * check_backoff.c - retry policy defaults and m2w_backoff_delay.
 *
 * The contract (queue.h): the delay before retry `attempt` is
 * d = min(cap, base * 2^(attempt-1)), minus up to jitter_pct percent drawn
 * from `rnd`, i.e. a value in [d*(100-j)/100, d]. Only that range is
 * asserted for a given rnd, not which end of it rnd 0 maps to.
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "m2worker/queue.h"
#include "testutil.h"

/* A small deterministic PRNG (xorshift32) for rnd values. */
static uint32_t xs_state;

static uint32_t xs_next(void)
{
	uint32_t x = xs_state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return xs_state = x;
}

static const uint32_t fixed_rnd[] = {
	0u, 1u, 2u, 1000u, 0x7fffffffu, 0x80000000u, 0x80000001u,
	0xfffffffeu, UINT32_MAX,
};
#define NFIXED (sizeof(fixed_rnd) / sizeof(fixed_rnd[0]))

static struct m2w_policy policy(int64_t base, int64_t cap, unsigned jitter)
{
	struct m2w_policy p;

	m2w_policy_default(&p);
	p.backoff_base_ms = base;
	p.backoff_cap_ms = cap;
	p.jitter_pct = jitter;
	return p;
}

/* The undrawn delay d of the contract, computed without overflow. */
static int64_t expect_d(const struct m2w_policy *p, unsigned attempt)
{
	int64_t d = p->backoff_base_ms;
	unsigned i;

	for (i = 1; i < attempt && d < p->backoff_cap_ms; i++)
		d *= 2;
	return d < p->backoff_cap_ms ? d : p->backoff_cap_ms;
}

/* Asserts the delay for (attempt, rnd) lies in [d*(100-j)/100, d]. */
static int64_t check_range(const struct m2w_policy *p, unsigned attempt,
			   uint32_t rnd)
{
	int64_t d = expect_d(p, attempt);
	int64_t lo = d * (int64_t)(100 - p->jitter_pct) / 100;
	int64_t got = m2w_backoff_delay(p, attempt, rnd);

	ck_assert_msg(got >= lo && got <= d,
		      "base %lld cap %lld jitter %u attempt %u rnd %lu: "
		      "delay %lld not in [%lld, %lld]",
		      (long long)p->backoff_base_ms,
		      (long long)p->backoff_cap_ms, p->jitter_pct, attempt,
		      (unsigned long)rnd, (long long)got, (long long)lo,
		      (long long)d);
	return got;
}

START_TEST(test_policy_default)
{
	struct m2w_policy p;

	memset(&p, 0xa5, sizeof(p));
	m2w_policy_default(&p);
	ck_assert_uint_eq(p.max_attempts, 10);
	ck_assert_int_eq(p.backoff_base_ms, 10000);
	ck_assert_int_eq(p.backoff_cap_ms, 3600000);
	ck_assert_uint_eq(p.jitter_pct, 20);
}
END_TEST

START_TEST(test_first_attempt_range)
{
	struct m2w_policy p;
	size_t i;

	m2w_policy_default(&p);
	for (i = 0; i < NFIXED; i++) {
		int64_t got = check_range(&p, 1, fixed_rnd[i]);

		ck_assert_int_ge(got, 8000);
		ck_assert_int_le(got, 10000);
	}
	xs_state = 12345;
	for (i = 0; i < 1000; i++)
		check_range(&p, 1, xs_next());
}
END_TEST

START_TEST(test_growth_exponential)
{
	struct m2w_policy p;
	unsigned n;
	size_t i;

	m2w_policy_default(&p);
	/* 10 s << 8 = 2560 s is still below the 3600 s cap */
	for (n = 1; n <= 9; n++) {
		int64_t d = (int64_t)10000 << (n - 1);

		ck_assert_int_eq(expect_d(&p, n), d);
		for (i = 0; i < NFIXED; i++)
			check_range(&p, n, fixed_rnd[i]);
		xs_state = 777 + n;
		for (i = 0; i < 500; i++)
			check_range(&p, n, xs_next());
	}
}
END_TEST

START_TEST(test_growth_monotonic_same_rnd)
{
	/* for a fixed rnd, the delay never shrinks as attempts go up */
	struct m2w_policy p = policy(1000, 64000, 20);
	size_t i;
	unsigned n;

	for (i = 0; i < NFIXED; i++) {
		int64_t prev = 0;

		for (n = 1; n <= 12; n++) {
			int64_t d = check_range(&p, n, fixed_rnd[i]);

			ck_assert_msg(d >= prev,
				      "rnd %lu: attempt %u delay %lld < "
				      "attempt %u delay %lld",
				      (unsigned long)fixed_rnd[i], n,
				      (long long)d, n - 1, (long long)prev);
			prev = d;
		}
	}
}
END_TEST

START_TEST(test_jitter_zero_exact)
{
	struct m2w_policy p = policy(10000, 3600000, 0);
	unsigned n;
	size_t i;

	for (n = 1; n <= 9; n++)
		for (i = 0; i < NFIXED; i++)
			ck_assert_int_eq(m2w_backoff_delay(&p, n, fixed_rnd[i]),
					 (int64_t)10000 << (n - 1));
	for (i = 0; i < NFIXED; i++) {
		ck_assert_int_eq(m2w_backoff_delay(&p, 10, fixed_rnd[i]),
				 3600000);
		ck_assert_int_eq(m2w_backoff_delay(&p, 1000, fixed_rnd[i]),
				 3600000);
	}
}
END_TEST

START_TEST(test_cap_large_attempts)
{
	static const unsigned attempts[] = {
		10, 11, 12, 20, 31, 32, 33, 40, 63, 64, 65, 100, 1000,
		100000, UINT_MAX,
	};
	struct m2w_policy p;
	size_t a, i;

	m2w_policy_default(&p);
	for (a = 0; a < sizeof(attempts) / sizeof(attempts[0]); a++) {
		for (i = 0; i < NFIXED; i++) {
			int64_t got = m2w_backoff_delay(&p, attempts[a],
							fixed_rnd[i]);

			ck_assert_msg(got <= 3600000 && got >= 2880000,
				      "attempt %u rnd %lu: delay %lld not in "
				      "[2880000, 3600000]",
				      attempts[a], (unsigned long)fixed_rnd[i],
				      (long long)got);
		}
	}
}
END_TEST

START_TEST(test_cap_below_base_growth)
{
	/* cap not a power-of-two multiple of base: attempt 4 (8000) > 5000 */
	struct m2w_policy p = policy(1000, 5000, 20);
	size_t i;
	unsigned n;

	for (n = 1; n <= 50; n++)
		for (i = 0; i < NFIXED; i++)
			check_range(&p, n, fixed_rnd[i]);
	ck_assert_int_eq(expect_d(&p, 3), 4000);
	ck_assert_int_eq(expect_d(&p, 4), 5000);
}
END_TEST

START_TEST(test_long_cap_no_overflow)
{
	/* a cap of a year: spans beyond 2^32 ms must not wrap */
	const int64_t year = INT64_C(365) * 24 * 3600 * 1000;
	struct m2w_policy p = policy(1000, year, 20);
	size_t i;
	unsigned n;

	for (n = 1; n <= 200; n++)
		for (i = 0; i < NFIXED; i++)
			check_range(&p, n, fixed_rnd[i]);
	xs_state = 4242;
	for (i = 0; i < 1000; i++)
		check_range(&p, 1000, xs_next());
}
END_TEST

START_TEST(test_jitter_full)
{
	struct m2w_policy p = policy(2000, 60000, 100);
	size_t i;

	for (i = 0; i < NFIXED; i++) {
		check_range(&p, 1, fixed_rnd[i]);
		check_range(&p, 3, fixed_rnd[i]);
		check_range(&p, 99, fixed_rnd[i]);
	}
}
END_TEST

/* 10,000 draws cover most of [0.8 d, d], and average near its middle. */
static void check_distribution(const struct m2w_policy *p, unsigned attempt)
{
	int64_t d = expect_d(p, attempt);
	int64_t min = INT64_MAX, max = INT64_MIN;
	double sum = 0, mean;
	int i;

	xs_state = 2463534242u + attempt;
	for (i = 0; i < 10000; i++) {
		int64_t got = check_range(p, attempt, xs_next());

		if (got < min)
			min = got;
		if (got > max)
			max = got;
		sum += (double)got;
	}
	mean = sum / 10000.0;
	ck_assert_msg((double)min < (double)d * 0.85,
		      "attempt %u: min delay %lld, expected < %.0f", attempt,
		      (long long)min, (double)d * 0.85);
	ck_assert_msg((double)max > (double)d * 0.95,
		      "attempt %u: max delay %lld, expected > %.0f", attempt,
		      (long long)max, (double)d * 0.95);
	ck_assert_msg(mean > (double)d * 0.87 && mean < (double)d * 0.93,
		      "attempt %u: mean delay %.1f, expected about %.1f",
		      attempt, mean, (double)d * 0.9);
}

START_TEST(test_distribution)
{
	struct m2w_policy p;

	m2w_policy_default(&p);
	check_distribution(&p, 1);
	check_distribution(&p, 4);
	check_distribution(&p, 50);
}
END_TEST

static Suite *backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc;

	tc = tcase_create("policy");
	tcase_add_test(tc, test_policy_default);
	suite_add_tcase(s, tc);

	tc = tcase_create("delay");
	tcase_add_test(tc, test_first_attempt_range);
	tcase_add_test(tc, test_growth_exponential);
	tcase_add_test(tc, test_growth_monotonic_same_rnd);
	tcase_add_test(tc, test_jitter_zero_exact);
	tcase_add_test(tc, test_cap_large_attempts);
	tcase_add_test(tc, test_cap_below_base_growth);
	tcase_add_test(tc, test_long_cap_no_overflow);
	tcase_add_test(tc, test_jitter_full);
	tcase_add_test(tc, test_distribution);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run("m2w-check-backoff", backoff_suite());
}
