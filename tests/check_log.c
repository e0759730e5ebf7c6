/*
 * check_log.c - the logger's field quoting (m2w_log_quote), which every
 * error text, file name and Magento message goes through.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "m2worker/log.h"
#include "testutil.h"

START_TEST(quote_plain_and_special)
{
	char out[64];

	ck_assert_str_eq(m2w_log_quote(out, sizeof(out), "abc"), "abc");
	ck_assert_str_eq(m2w_log_quote(out, sizeof(out), ""), "\"\"");
	ck_assert_str_eq(m2w_log_quote(out, sizeof(out), "a b"), "\"a b\"");
	ck_assert_str_eq(m2w_log_quote(out, sizeof(out), "x=\"1\"\\\n"),
			 "\"x=\\\"1\\\"\\\\\\n\"");
}
END_TEST

/* Quoting a buffer into itself (callers log an error text in place):
 * the same result as from a copy, never a run of backslashes. */
START_TEST(quote_in_place)
{
	char buf[64] = "commit: disk \"full\"";
	char want[64];

	m2w_log_quote(want, sizeof(want), "commit: disk \"full\"");
	ck_assert_str_eq(m2w_log_quote(buf, sizeof(buf), buf), want);
}
END_TEST

START_TEST(quote_cut_to_len)
{
	char out[8];

	m2w_log_quote(out, sizeof(out), "a long message with spaces");
	ck_assert_uint_lt(strlen(out), sizeof(out));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("quote");

	tcase_add_test(tc, quote_plain_and_special);
	tcase_add_test(tc, quote_in_place);
	tcase_add_test(tc, quote_cut_to_len);
	suite_add_tcase(s, tc);
	return tu_run("m2w-check-log", s);
}
