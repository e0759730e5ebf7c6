/* check_jobs.c - skeleton (being written). */
#include <check.h>
#include <stdlib.h>
#include "m2worker/jobs.h"

START_TEST(test_find)
{
	ck_assert_ptr_nonnull(m2w_job_find("tracking"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jobs");
	TCase *tc = tcase_create("jobs");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_find);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
