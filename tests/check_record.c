/*
 * check_record.c - the task record codec: round trip, and damaged bytes
 * that must be refused (M2W_ECORRUPT), never read out of bounds.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "store/internal.h"
#include "testutil.h"

static struct rec sample(void)
{
	struct rec r;

	memset(&r, 0, sizeof(r));
	r.id = 42;
	r.state = M2W_LEASED;
	r.type_id = 7;
	r.flags = REC_SUPERSEDE;
	r.attempts = 3;
	r.max_attempts = 5;
	r.last_status = 503;
	r.created = 1700000000000LL;
	r.updated = 1700000000500LL;
	r.next_run = 1700000001000LL;
	r.lease_expiry = 1700000060000LL;
	r.token = 0xdeadbeefcafef00dULL;
	r.idem = "tracking:100001:1Z999";
	r.idem_len = strlen(r.idem);
	r.group = "stock:SKU-1";
	r.group_len = strlen(r.group);
	r.source = "20250326_120000.csv:2";
	r.source_len = strlen(r.source);
	r.error = "Service Unavailable";
	r.error_len = strlen(r.error);
	r.payload = "{\"order\":\"100001\"}";
	r.payload_len = strlen(r.payload);
	return r;
}

START_TEST(round_trip)
{
	struct rec r = sample(), d;
	size_t n = m2s_rec_size(&r);
	unsigned char *buf = malloc(n);
	char err[M2W_ERRBUF_SIZE];

	m2s_rec_encode(&r, buf);
	ck_assert_int_eq(m2s_rec_decode(42, buf, n, &d, err), M2W_OK);
	ck_assert_int_eq(d.state, M2W_LEASED);
	ck_assert_int_eq(d.type_id, 7);
	ck_assert_uint_eq(d.flags, REC_SUPERSEDE);
	ck_assert_uint_eq(d.attempts, 3);
	ck_assert_uint_eq(d.max_attempts, 5);
	ck_assert_int_eq(d.last_status, 503);
	ck_assert(d.created == r.created && d.updated == r.updated);
	ck_assert(d.next_run == r.next_run && d.lease_expiry == r.lease_expiry);
	ck_assert(d.token == r.token);
	ck_assert(d.idem_len == r.idem_len &&
		  memcmp(d.idem, r.idem, r.idem_len) == 0);
	ck_assert(d.group_len == r.group_len &&
		  memcmp(d.group, r.group, r.group_len) == 0);
	ck_assert(d.source_len == r.source_len &&
		  memcmp(d.source, r.source, r.source_len) == 0);
	ck_assert(d.error_len == r.error_len &&
		  memcmp(d.error, r.error, r.error_len) == 0);
	ck_assert(d.payload_len == r.payload_len &&
		  memcmp(d.payload, r.payload, r.payload_len) == 0);
	free(buf);
}
END_TEST

START_TEST(to_task)
{
	struct rec r = sample();
	struct m2w_task *t;

	r.state = M2W_READY;
	r.group_len = 0;
	t = m2s_rec_to_task(&r, "tracking", r.next_run - 1);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(t->state, M2W_SCHEDULED); /* derived from next_run */
	ck_assert_str_eq(t->type, "tracking");
	ck_assert_str_eq(t->payload, "{\"order\":\"100001\"}");
	ck_assert_ptr_null(t->group_key);
	ck_assert_str_eq(t->last_error, "Service Unavailable");
	ck_assert(t->lease_token == 0); /* only a leased task shows it */
	m2w_task_free(t);
}
END_TEST

START_TEST(damaged)
{
	struct rec r = sample(), d;
	size_t n = m2s_rec_size(&r), cut;
	unsigned char *buf = malloc(n);
	char err[M2W_ERRBUF_SIZE] = "";

	m2s_rec_encode(&r, buf);
	/* every truncation that cuts into header or strings is refused */
	for (cut = 0; cut < REC_HEADER + r.idem_len + r.group_len +
				    r.source_len + r.error_len; cut++)
		ck_assert_int_eq(m2s_rec_decode(42, buf, cut, &d, err),
				 M2W_ECORRUPT);
	ck_assert(strstr(err, "task 42") != NULL);
	buf[0] = 9; /* unknown version */
	ck_assert_int_eq(m2s_rec_decode(42, buf, n, &d, NULL), M2W_ECORRUPT);
	buf[0] = REC_VERSION;
	buf[1] = M2W_SCHEDULED; /* never stored */
	ck_assert_int_eq(m2s_rec_decode(42, buf, n, &d, NULL), M2W_ECORRUPT);
	buf[1] = 200;
	ck_assert_int_eq(m2s_rec_decode(42, buf, n, &d, NULL), M2W_ECORRUPT);
	buf[1] = M2W_READY;
	put_be16(buf + 62, 0xffff); /* error length beyond the value */
	ck_assert_int_eq(m2s_rec_decode(42, buf, n, &d, NULL), M2W_ECORRUPT);
	free(buf);
}
END_TEST

START_TEST(random_bytes)
{
	unsigned char buf[600];
	struct rec d;
	int i, ok = 0;
	size_t j;

	srand(7);
	for (i = 0; i < 20000; i++) {
		size_t n = (size_t)rand() % sizeof(buf);

		for (j = 0; j < n; j++)
			buf[j] = (unsigned char)rand();
		if (n)
			buf[0] = (unsigned char)(rand() % 2);
		if (m2s_rec_decode(1, buf, n, &d, NULL) == M2W_OK) {
			ok++;
			ck_assert(m2s_rec_size(&d) == n);
		}
	}
	(void)ok;
}
END_TEST

int main(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, to_task);
	tcase_add_test(tc, damaged);
	tcase_add_test(tc, random_bytes);
	suite_add_tcase(s, tc);
	return tu_run("m2w-check-record", s);
}
