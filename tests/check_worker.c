/*
 * check_worker.c - the circuit breaker's state machine and the metrics'
 * Prometheus text. (The pool itself is tested end to end by
 * tests/daemon.sh against the fake Magento.)
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/worker.h"
#include "m2worker/admin.h"
#include "testutil.h"

START_TEST(breaker_opens_after_threshold)
{
	struct m2w_breaker_change ch;
	struct m2w_breaker b;
	char text[160];
	int64_t wait;
	int probe, i;

	m2w_breaker_init(&b, 3, 1000);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(m2w_breaker_allow(&b, 0, &probe, &wait), 1);
		ck_assert_int_eq(probe, 0);
		ck_assert_int_eq(m2w_breaker_result(&b, 0, 0, 1, NULL), -1);
	}
	/* a success in between starts the count again */
	ck_assert_int_eq(m2w_breaker_result(&b, 0, 0, 0, NULL), -1);
	ck_assert_int_eq(m2w_breaker_result(&b, 0, 0, 1, NULL), -1);
	ck_assert_int_eq(m2w_breaker_result(&b, 0, 0, 1, NULL), -1);
	ck_assert_int_eq(m2w_breaker_result(&b, 10, 0, 1, &ch),
			 M2W_BREAKER_OPEN);
	ck_assert_str_eq(m2w_breaker_describe(&ch, text, sizeof(text)),
			 "state=open failures_in_a_row=3 cooldown_ms=1000");
	ck_assert_int_eq(m2w_breaker_allow(&b, 500, &probe, &wait), 0);
	ck_assert_int_eq(wait, 510);
	m2w_breaker_destroy(&b);
}
END_TEST

/* What each change reports is true of that moment: the failures that
 * opened it, then only the probe and how long it was open, never the old
 * count as if it were current. */
START_TEST(breaker_change_report)
{
	struct m2w_breaker_change ch;
	struct m2w_breaker b;
	char text[160];
	int64_t wait;
	int probe, i;

	m2w_breaker_init(&b, 5, 1000);
	ck_assert_int_eq(m2w_breaker_result(&b, 0, 0, 1, NULL), -1);
	ck_assert_int_eq(m2w_breaker_result(&b, 0, 0, 0, NULL), -1);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(m2w_breaker_result(&b, 100, 0, 1, &ch), -1);
	memset(&ch, 0x55, sizeof(ch));
	ck_assert_int_eq(m2w_breaker_result(&b, 500, 0, 1, &ch),
			 M2W_BREAKER_OPEN);
	ck_assert_int_eq(ch.probe, 0);
	ck_assert_uint_eq(ch.failures, 5);
	ck_assert_str_eq(m2w_breaker_describe(&ch, text, sizeof(text)),
			 "state=open failures_in_a_row=5 cooldown_ms=1000");
	/* a failed probe reopens it: no failure count, open 1 s so far */
	ck_assert_int_eq(m2w_breaker_allow(&b, 1500, &probe, &wait), 1);
	ck_assert_int_eq(m2w_breaker_result(&b, 1500, 1, 1, &ch),
			 M2W_BREAKER_OPEN);
	ck_assert_uint_eq(ch.failures, 0);
	ck_assert_str_eq(m2w_breaker_describe(&ch, text, sizeof(text)),
			 "state=open probe=failed open_ms=1000 "
			 "cooldown_ms=1000");
	/* the next probe closes it: how long it was open in all */
	ck_assert_int_eq(m2w_breaker_allow(&b, 2600, &probe, &wait), 1);
	ck_assert_int_eq(probe, 1);
	ck_assert_int_eq(m2w_breaker_result(&b, 2750, 1, 0, &ch),
			 M2W_BREAKER_CLOSED);
	ck_assert_str_eq(m2w_breaker_describe(&ch, text, sizeof(text)),
			 "state=closed probe=ok open_ms=2250");
	ck_assert_ptr_null(strstr(text, "failures"));
	/* a second outage counts its own failures and its own time */
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(m2w_breaker_result(&b, 3000, 0, 1, &ch), -1);
	ck_assert_int_eq(m2w_breaker_result(&b, 3000, 0, 1, &ch),
			 M2W_BREAKER_OPEN);
	ck_assert_uint_eq(ch.failures, 5);
	ck_assert_int_eq(m2w_breaker_allow(&b, 4000, &probe, &wait), 1);
	ck_assert_int_eq(m2w_breaker_result(&b, 4010, 1, 0, &ch),
			 M2W_BREAKER_CLOSED);
	ck_assert_str_eq(m2w_breaker_describe(&ch, text, sizeof(text)),
			 "state=closed probe=ok open_ms=1010");
	m2w_breaker_destroy(&b);
}
END_TEST

START_TEST(breaker_one_probe)
{
	struct m2w_breaker b;
	int64_t wait;
	int probe;

	m2w_breaker_init(&b, 1, 1000);
	ck_assert_int_eq(m2w_breaker_result(&b, 0, 0, 1, NULL), M2W_BREAKER_OPEN);
	/* cool-down over: exactly one caller probes, the others wait */
	ck_assert_int_eq(m2w_breaker_allow(&b, 1000, &probe, &wait), 1);
	ck_assert_int_eq(probe, 1);
	ck_assert_int_eq(m2w_breaker_state(&b), M2W_BREAKER_HALF_OPEN);
	ck_assert_int_eq(m2w_breaker_allow(&b, 1001, &probe, &wait), 0);
	/* the probe fails: open again for a full cool-down */
	ck_assert_int_eq(m2w_breaker_result(&b, 1100, 1, 1, NULL), M2W_BREAKER_OPEN);
	ck_assert_int_eq(m2w_breaker_allow(&b, 2099, &probe, &wait), 0);
	ck_assert_int_eq(m2w_breaker_allow(&b, 2100, &probe, &wait), 1);
	ck_assert_int_eq(probe, 1);
	/* the probe found nothing to do: the next caller probes */
	m2w_breaker_unprobe(&b);
	ck_assert_int_eq(m2w_breaker_allow(&b, 2101, &probe, &wait), 1);
	ck_assert_int_eq(probe, 1);
	/* the probe succeeds: closed, everyone goes */
	ck_assert_int_eq(m2w_breaker_result(&b, 2200, 1, 0, NULL), M2W_BREAKER_CLOSED);
	ck_assert_int_eq(m2w_breaker_allow(&b, 2201, &probe, &wait), 1);
	ck_assert_int_eq(probe, 0);
	ck_assert_str_eq(m2w_breaker_name(M2W_BREAKER_HALF_OPEN), "half-open");
	m2w_breaker_destroy(&b);
}
END_TEST

START_TEST(metrics_text)
{
	struct m2w_metrics m;
	struct m2w_config cfg;
	struct m2w_stats st;
	struct m2w_type_stats ts;
	struct m2w_buf text = M2W_BUF_INIT;
	const char *out;

	memset(&m, 0, sizeof(m));
	memset(&cfg, 0, sizeof(cfg));
	memset(&st, 0, sizeof(st));
	memset(&ts, 0, sizeof(ts));
	cfg.ntypes = 1;
	strcpy(cfg.types[0].name, "tracking");
	m.done[0] = 7;
	m.dead[0] = 2;
	m2w_metrics_call(&m, 200, 3);     /* <= 5 ms */
	m2w_metrics_call(&m, 503, 40);    /* <= 50 ms */
	m2w_metrics_call(&m, 400, 20000); /* +Inf */
	strcpy(ts.type, "tracking");
	ts.count[M2W_READY] = 5;
	ts.count[M2W_DEAD] = 2;
	st.types = &ts;
	st.ntypes = 1;
	st.map_used = 4096;
	st.map_max = 1 << 30;
	ck_assert_int_eq(m2w_metrics_render(&m, &cfg, &st, M2W_BREAKER_OPEN,
					    &text), M2W_OK);
	out = text.buf;
	ck_assert_ptr_nonnull(strstr(out, "m2worker_tasks{type=\"tracking\","
				     "state=\"ready\"} 5\n"));
	ck_assert_ptr_nonnull(strstr(out, "m2worker_tasks_done_total"
				     "{type=\"tracking\"} 7\n"));
	ck_assert_ptr_nonnull(strstr(out, "m2worker_tasks_dead_total"
				     "{type=\"tracking\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "m2worker_magento_call_seconds_bucket"
				     "{le=\"0.005\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "m2worker_magento_call_seconds_bucket"
				     "{le=\"0.05\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "m2worker_magento_call_seconds_bucket"
				     "{le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(out, "m2worker_magento_call_seconds_count 3\n"));
	ck_assert_ptr_nonnull(strstr(out, "m2worker_magento_calls_total"
				     "{class=\"transient\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "m2worker_magento_calls_total"
				     "{class=\"permanent\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "m2worker_breaker_state 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "# TYPE m2worker_magento_call_seconds "
				     "histogram\n"));
	m2w_buf_release(&text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("units");

	tcase_add_test(tc, breaker_opens_after_threshold);
	tcase_add_test(tc, breaker_one_probe);
	tcase_add_test(tc, breaker_change_report);
	tcase_add_test(tc, metrics_text);
	suite_add_tcase(s, tc);
	return tu_run("m2w-check-worker", s);
}
