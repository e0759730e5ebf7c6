/*
 * check_util.c - the util layer's small pieces: the growable buffer
 * (buf.h), the value forms (parse.h) and the clocks (clock.h).
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m2worker/buf.h"
#include "m2worker/clock.h"
#include "m2worker/parse.h"
#include "testutil.h"

/* ------------------------------------------------------------- buffer */

START_TEST(buf_empty)
{
	struct m2w_buf b = M2W_BUF_INIT, z;
	char *s;

	ck_assert_ptr_null(b.buf);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(m2w_buf_str(&b), "");
	/* all zero is an empty buffer too (calloc'd structs) */
	memset(&z, 0, sizeof(z));
	ck_assert_int_eq(m2w_buf_adds(&z, "x"), 0);
	ck_assert_str_eq(z.buf, "x");
	m2w_buf_release(&z);
	ck_assert_ptr_null(z.buf);
	/* detach of an empty buffer: "", not NULL */
	s = m2w_buf_detach(&b);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "");
	free(s);
	m2w_buf_release(&b);
}
END_TEST

START_TEST(buf_growth)
{
	struct m2w_buf b;
	size_t i;

	m2w_buf_init(&b, 0);
	for (i = 0; i < 10000; i++)
		ck_assert_int_eq(m2w_buf_addc(&b, 'a' + (int)(i % 26)), 0);
	ck_assert_uint_eq(b.len, 10000);
	ck_assert_uint_eq(strlen(b.buf), 10000);
	for (i = 0; i < 10000; i++)
		ck_assert_int_eq(b.buf[i], 'a' + (int)(i % 26));
	ck_assert_int_eq(m2w_buf_add(&b, "xyz\0tail", 8), 0);
	ck_assert_uint_eq(b.len, 10008);
	ck_assert_int_eq(memcmp(b.buf + 10000, "xyz\0tail", 8), 0);
	ck_assert_int_eq(b.buf[b.len], '\0');
	ck_assert_int_eq(b.failed, 0);
	/* reset keeps the memory, empties the text */
	m2w_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_ptr_nonnull(b.buf);
	ck_assert_str_eq(b.buf, "");
	ck_assert_uint_ge(b.alloc, 10009);
	m2w_buf_adds(&b, "again");
	ck_assert_str_eq(b.buf, "again");
	m2w_buf_release(&b);
	ck_assert_ptr_null(b.buf);
	ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(buf_addf)
{
	struct m2w_buf b = M2W_BUF_INIT;
	char *s, want[2100];

	ck_assert_int_eq(m2w_buf_addf(&b, "%s=%d", "n", 42), 0);
	ck_assert_str_eq(b.buf, "n=42");
	ck_assert_int_eq(m2w_buf_addf(&b, "%s", ""), 0);
	ck_assert_str_eq(b.buf, "n=42");
	/* longer than the room there is: formatted again after growing */
	ck_assert_int_eq(m2w_buf_addf(&b, ",%0*d", 2000, 7), 0);
	ck_assert_uint_eq(b.len, 4 + 1 + 2000);
	memset(want, '0', sizeof(want));
	memcpy(want, "n=42,", 5);
	want[2004] = '7';
	want[2005] = '\0';
	ck_assert_str_eq(b.buf, want);
	/* detach: the caller's string, the buffer empty */
	s = m2w_buf_detach(&b);
	ck_assert_str_eq(s, want);
	ck_assert_ptr_null(b.buf);
	ck_assert_uint_eq(b.len, 0);
	free(s);
}
END_TEST

START_TEST(buf_grow_direct)
{
	struct m2w_buf b = M2W_BUF_INIT;

	m2w_buf_adds(&b, "ab");
	ck_assert_int_eq(m2w_buf_grow(&b, 3), 0);
	ck_assert_uint_ge(b.alloc, b.len + 3 + 1);
	memcpy(b.buf + b.len, "cde", 3);
	b.len += 3;
	b.buf[b.len] = '\0';
	ck_assert_str_eq(b.buf, "abcde");
	/* size_t overflow is a failure, never a wrap */
	ck_assert_int_eq(m2w_buf_grow(&b, SIZE_MAX), -1);
	ck_assert_int_eq(b.failed, 1);
	ck_assert_str_eq(b.buf, "abcde");
	m2w_buf_release(&b);
	ck_assert_int_eq(b.failed, 0);
}
END_TEST

START_TEST(buf_cap_sticky)
{
	struct m2w_buf b;

	m2w_buf_init(&b, 10);
	ck_assert_int_eq(m2w_buf_adds(&b, "12345"), 0);
	ck_assert_int_eq(m2w_buf_adds(&b, "67890"), 0);   /* exactly max */
	ck_assert_uint_eq(b.len, 10);
	ck_assert_int_eq(b.failed, 0);
	ck_assert_uint_le(b.alloc, 11);                    /* never past */
	ck_assert_int_eq(m2w_buf_addc(&b, 'x'), -1);
	ck_assert_int_eq(b.failed, 1);
	/* nothing of the failed append; still NUL-terminated */
	ck_assert_uint_eq(b.len, 10);
	ck_assert_str_eq(b.buf, "1234567890");
	/* sticky: later appends that would fit do nothing */
	m2w_buf_reset(&b);
	ck_assert_int_eq(b.failed, 1);
	ck_assert_int_eq(m2w_buf_adds(&b, "a"), -1);
	ck_assert_int_eq(m2w_buf_addf(&b, "%d", 1), -1);
	ck_assert_uint_eq(b.len, 0);
	/* release clears it and keeps the cap */
	m2w_buf_release(&b);
	ck_assert_int_eq(b.failed, 0);
	ck_assert_uint_eq(b.max, 10);
	/* addf past the cap while the text would fit the memory */
	ck_assert_int_eq(m2w_buf_adds(&b, "12345"), 0);
	ck_assert_int_eq(m2w_buf_addf(&b, "%s", "abcdef"), -1);
	ck_assert_int_eq(b.failed, 1);
	ck_assert_str_eq(b.buf, "12345");
	ck_assert_uint_eq(b.len, 5);
	m2w_buf_release(&b);
	/* one append larger than the cap at once */
	m2w_buf_init(&b, 4);
	ck_assert_int_eq(m2w_buf_add(&b, "123456", 6), -1);
	ck_assert_int_eq(b.failed, 1);
	ck_assert_str_eq(m2w_buf_str(&b), "");
	m2w_buf_release(&b);
}
END_TEST

/* ---------------------------------------------------------- durations */

START_TEST(parse_duration)
{
	ck_assert_int_eq(m2w_parse_duration_ms("500ms"), 500);
	ck_assert_int_eq(m2w_parse_duration_ms("30s"), 30000);
	ck_assert_int_eq(m2w_parse_duration_ms("5m"), 300000);
	ck_assert_int_eq(m2w_parse_duration_ms("2h"), 7200000);
	ck_assert_int_eq(m2w_parse_duration_ms("1d"), 86400000);
	ck_assert_int_eq(m2w_parse_duration_ms("45"), 45000);
	ck_assert_int_eq(m2w_parse_duration_ms("0"), 0);
	ck_assert_int_eq(m2w_parse_duration_ms("0ms"), 0);
	ck_assert_int_eq(m2w_parse_duration_ms("1m30s"), 90000);
	ck_assert_int_eq(m2w_parse_duration_ms("1d2h3m4s5ms"),
			 86400000 + 7200000 + 180000 + 4000 + 5);
	ck_assert_int_eq(m2w_parse_duration_ms(" \t10s \n"), 10000);
	ck_assert_int_eq(m2w_parse_duration_ms("9223372036854775807ms"),
			 INT64_MAX);
	/* mistakes */
	ck_assert_int_eq(m2w_parse_duration_ms(NULL), -1);
	ck_assert_int_eq(m2w_parse_duration_ms(""), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("  "), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("5x"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("5S"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("5sec"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("5 s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("-5s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("+5s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("1.5s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("1m30"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("1w"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("2025-03-26"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("9223372036854775807s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("99999999999999999999"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("9223372036854775807ms1ms"),
			 -1);
}
END_TEST

/* -------------------------------------------------------------- sizes */

START_TEST(parse_size)
{
	ck_assert_uint_eq(m2w_parse_size("100"), 100);
	ck_assert_uint_eq(m2w_parse_size("100B"), 100);
	ck_assert_uint_eq(m2w_parse_size("100b"), 100);
	ck_assert_uint_eq(m2w_parse_size("512KiB"), 512 * 1024);
	ck_assert_uint_eq(m2w_parse_size("1k"), 1024);
	ck_assert_uint_eq(m2w_parse_size("1KB"), 1024);
	ck_assert_uint_eq(m2w_parse_size("1kib"), 1024);
	ck_assert_uint_eq(m2w_parse_size("64MiB"), 64u * 1024 * 1024);
	ck_assert_uint_eq(m2w_parse_size("16M"), 16u * 1024 * 1024);
	ck_assert_uint_eq(m2w_parse_size(" 2 MiB "), 2u * 1024 * 1024);
	if (sizeof(size_t) >= 8) {
		ck_assert_uint_eq(m2w_parse_size("4GiB"),
				  (uint64_t)4 << 30);
		ck_assert_uint_eq(m2w_parse_size("1TiB"),
				  (uint64_t)1 << 40);
	}
	/* mistakes: 0 */
	ck_assert_uint_eq(m2w_parse_size(NULL), 0);
	ck_assert_uint_eq(m2w_parse_size(""), 0);
	ck_assert_uint_eq(m2w_parse_size("0"), 0);
	ck_assert_uint_eq(m2w_parse_size("MiB"), 0);
	ck_assert_uint_eq(m2w_parse_size("-1"), 0);
	ck_assert_uint_eq(m2w_parse_size("1.5MiB"), 0);
	ck_assert_uint_eq(m2w_parse_size("1PiB"), 0);
	ck_assert_uint_eq(m2w_parse_size("1MiBs"), 0);
	ck_assert_uint_eq(m2w_parse_size("1Mi"), 0);
	ck_assert_uint_eq(m2w_parse_size("1 MiB x"), 0);
	ck_assert_uint_eq(m2w_parse_size("99999999999999999999"), 0);
	ck_assert_uint_eq(m2w_parse_size("18014398509481984TiB"), 0);
}
END_TEST

/* ----------------------------------------------------------- booleans */

START_TEST(parse_bool)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES",
					   "True", "oN" };
	static const char *const no[] = { "no", "false", "off", "0", "NO",
					  "False", "OFF" };
	static const char *const bad[] = { "", "y", "n", "2", "yes ",
					   " no", "enabled" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(m2w_parse_bool(yes[i]) == 1, "%s", yes[i]);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(m2w_parse_bool(no[i]) == 0, "%s", no[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(m2w_parse_bool(bad[i]) == -1, "\"%s\"", bad[i]);
	ck_assert_int_eq(m2w_parse_bool(NULL), -1);
}
END_TEST

/* --------------------------------------------------------- delimiters */

START_TEST(parse_delimiter)
{
	static const char *const bad[] = { "", "|", "TAB", "Tab", "auto ",
					   ",,", "\\n", " ", "AUTO" };
	char d = 'x';
	size_t i;

	ck_assert_int_eq(m2w_parse_delimiter("auto", &d), 0);
	ck_assert_int_eq(d, 0);
	ck_assert_int_eq(m2w_parse_delimiter(",", &d), 0);
	ck_assert_int_eq(d, ',');
	ck_assert_int_eq(m2w_parse_delimiter(";", &d), 0);
	ck_assert_int_eq(d, ';');
	ck_assert_int_eq(m2w_parse_delimiter("tab", &d), 0);
	ck_assert_int_eq(d, '\t');
	d = 'x';
	ck_assert_int_eq(m2w_parse_delimiter("\t", &d), 0);
	ck_assert_int_eq(d, '\t');
	d = 'x';
	ck_assert_int_eq(m2w_parse_delimiter("\\t", &d), 0); /* as typed */
	ck_assert_int_eq(d, '\t');
	/* the config file's long names */
	ck_assert_int_eq(m2w_parse_delimiter("comma", &d), 0);
	ck_assert_int_eq(d, ',');
	ck_assert_int_eq(m2w_parse_delimiter("semicolon", &d), 0);
	ck_assert_int_eq(d, ';');
	/* mistakes leave *out alone */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = 'x';
		ck_assert_msg(m2w_parse_delimiter(bad[i], &d) == -1, "\"%s\"",
			      bad[i]);
		ck_assert_int_eq(d, 'x');
	}
	ck_assert_int_eq(m2w_parse_delimiter(NULL, &d), -1);
	ck_assert_int_eq(d, 'x');
}
END_TEST

/* ------------------------------------------------------------- clocks */

START_TEST(clocks_move_forward)
{
	struct timespec nap = { 0, 20 * 1000000L };
	int64_t m0, m1, u0, u1, w0, w1, i;
	time_t t;

	/* wall clock: ms since the epoch, the same second as time() */
	t = time(NULL);
	w0 = m2w_clock_ms();
	ck_assert_int_ge(w0, (int64_t)t * 1000 - 1000);
	ck_assert_int_le(w0, (int64_t)t * 1000 + 2000);
	/* monotonic: never back, and a 20 ms sleep shows */
	m0 = m2w_clock_mono_ms();
	u0 = m2w_clock_mono_us();
	ck_assert_int_ge(u0 / 1000, m0);
	ck_assert_int_le(u0 / 1000 - m0, 5);
	for (i = 0, m1 = m0; i < 1000; i++) {
		int64_t m = m2w_clock_mono_ms();

		ck_assert_int_ge(m, m1);
		m1 = m;
	}
	while (nanosleep(&nap, &nap) != 0)
		;
	m1 = m2w_clock_mono_ms();
	u1 = m2w_clock_mono_us();
	w1 = m2w_clock_ms();
	ck_assert_int_ge(m1 - m0, 19);
	ck_assert_int_ge(u1 - u0, 19000);
	ck_assert_int_ge(w1, w0);
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc;

	tc = tcase_create("buf");
	tcase_add_test(tc, buf_empty);
	tcase_add_test(tc, buf_growth);
	tcase_add_test(tc, buf_addf);
	tcase_add_test(tc, buf_grow_direct);
	tcase_add_test(tc, buf_cap_sticky);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, parse_duration);
	tcase_add_test(tc, parse_size);
	tcase_add_test(tc, parse_bool);
	tcase_add_test(tc, parse_delimiter);
	suite_add_tcase(s, tc);

	tc = tcase_create("clock");
	tcase_add_test(tc, clocks_move_forward);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run("check_util", util_suite());
}
