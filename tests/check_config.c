/* check_config.c - skeleton, being written. */
#include <stdlib.h>

#include <check.h>

#include "m2worker/config.h"

START_TEST(test_skeleton)
{
	ck_assert_int_eq(m2w_parse_bool("x"), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_skeleton);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
