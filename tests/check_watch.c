/*
 * check_watch.c - the CSV directory watcher, one synchronous pass at a time
 * (m2w_watch_run_once): resume from a progress record with the errors file
 * continued (no line twice), the tracking-updater regex pattern and the
 * ignored names, extra column aliases, a name clash and the same content
 * twice. The daemon's thread, inotify, settle and SIGKILL are in watch.sh.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>

#include "m2worker/ingest.h"
#include "m2worker/log.h"
#include "daemon/watch.h"
#include "testutil.h"

struct wenv {
	struct tu_env e;
	char in[PATH_MAX], done[PATH_MAX], bad[PATH_MAX];
	struct m2w_watch_cfg wc;
};

static void wenv_init(struct wenv *w, const char *type, const char *pattern)
{
	tu_env_init(&w->e);
	tu_open(&w->e);
	snprintf(w->in, sizeof(w->in), "%s/incoming", w->e.dir);
	snprintf(w->done, sizeof(w->done), "%s/processed", w->e.dir);
	snprintf(w->bad, sizeof(w->bad), "%s/failed", w->e.dir);
	ck_assert_int_eq(mkdir(w->in, 0755), 0);
	memset(&w->wc, 0, sizeof(w->wc));
	w->wc.name = (char *)"t";
	w->wc.path = w->in;
	snprintf(w->wc.type, sizeof(w->wc.type), "%s", type);
	w->wc.pattern = (char *)pattern;
	w->wc.poll_interval_ms = 1000;
	w->wc.settle_ms = 1000;
}

static void put(const char *dir, const char *name, const char *text)
{
	char p[PATH_MAX * 2];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	ck_assert_msg((f = fopen(p, "w")) != NULL, "%s", p);
	fputs(text, f);
	fclose(f);
}

static int exists(const char *dir, const char *name)
{
	char p[PATH_MAX * 2];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0;
}

static char *slurp(const char *dir, const char *name)
{
	char p[PATH_MAX * 2], *s;
	FILE *f;
	long n;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	ck_assert_msg((f = fopen(p, "r")) != NULL, "%s", p);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	s = calloc(1, (size_t)n + 1);
	ck_assert(fread(s, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	return s;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay++;
	}
	return n;
}

START_TEST(test_resume)
{
	struct wenv w;
	struct m2w_file_info info;
	struct m2w_ingest_opts o;
	struct m2w_ingest_result r;
	char text[4096], fp[M2W_FINGERPRINT_HEX + 1], part[256], *errs;
	size_t n = 0, cut = 0;
	int line;
	FILE *f;

	wenv_init(&w, "stock", NULL);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "sku,qty\n");
	for (line = 2; line <= 51; line++) {
		if (line == 5 || line == 27 || line == 40)
			n += (size_t)snprintf(text + n, sizeof(text) - n,
					      "BAD-%d,x\n", line);
		else
			n += (size_t)snprintf(text + n, sizeof(text) - n,
					      "S-%d,%d\n", line, line);
		if (line == 25)
			cut = n;
	}
	put(w.in, "x.csv", text);

	/* the run that crashed: lines up to 25 committed with the record */
	f = fmemopen(text, n, "r");
	CK_OK(m2w_ingest_fingerprint(f, fp, EB));
	fclose(f);
	memset(&info, 0, sizeof(info));
	snprintf(info.fingerprint, sizeof(info.fingerprint), "%s", fp);
	snprintf(info.name, sizeof(info.name), "x.csv");
	info.first_ms = 1;
	m2w_ingest_opts_init(&o, "stock");
	o.source = "x.csv";
	o.fingerprint = fp;
	o.batch = 10;
	o.progress = &info;
	f = fmemopen(text, cut, "r");
	CK_OK(m2w_ingest_stream(w.e.q, f, &o, &r, NULL, NULL, EB));
	fclose(f);
	ck_assert_int_eq(info.rows, 24);
	ck_assert_int_eq(info.rejected, 1);
	ck_assert_int_eq(tu_total(w.e.q), 23);
	CK_OK(m2w_queue_file_get(w.e.q, fp, &info, EB));
	ck_assert_int_eq(info.rows, 24);
	ck_assert_int_eq(info.finished_ms, 0);
	/* ... and had written lines 5 and 27 (past the commit) already */
	ck_assert_int_eq(mkdir(w.bad, 0755), 0);
	snprintf(part, sizeof(part), ".%s.errors.part", fp);
	put(w.bad, part, "line,column,reason,row\n"
			 "5,qty,\"qty \"\"x\"\" is not a number\",\"BAD-5,x\"\n"
			 "27,qty,\"qty \"\"x\"\" is not a number\",\"BAD-27,x\"\n");

	CK_OK(m2w_watch_run_once(w.e.q, NULL, &w.wc, EB));
	ck_assert(exists(w.done, "x.csv"));
	ck_assert(!exists(w.in, "x.csv"));
	ck_assert(!exists(w.bad, part));
	ck_assert_int_eq(tu_total(w.e.q), 47);
	CK_OK(m2w_queue_file_get(w.e.q, fp, &info, EB));
	ck_assert_int_eq(info.rows, 50);
	ck_assert_int_eq(info.accepted, 47);
	ck_assert_int_eq(info.rejected, 3);
	ck_assert(info.finished_ms > 0);
	errs = slurp(w.bad, "x.csv.errors.csv");
	ck_assert_int_eq(count(errs, "\n5,"), 1);
	ck_assert_int_eq(count(errs, "\n27,"), 1);
	ck_assert_int_eq(count(errs, "\n40,qty,"), 1);
	ck_assert_int_eq(count(errs, "\n"), 4);
	free(errs);
	ck_assert_store_ok(w.e.q);
	tu_env_done(&w.e);
}
END_TEST

START_TEST(test_pattern)
{
	static const char csv[] = "order_number,tracking_number,carrier_code\n"
				  "1000000001,1ZA,ups\n";
	struct wenv w;

	wenv_init(&w, "tracking", "^\\d{8}_\\d{6}\\.csv$");
	put(w.in, "20250326_120000.csv", csv);
	put(w.in, "notes.csv", csv);
	put(w.in, "2025_1.csv", csv);
	put(w.in, "20250326_120000.csv.tmp", csv);
	put(w.in, ".20250326_120001.csv", csv);
	CK_OK(m2w_watch_run_once(w.e.q, NULL, &w.wc, EB));
	ck_assert(exists(w.done, "20250326_120000.csv"));
	ck_assert(exists(w.in, "notes.csv"));
	ck_assert(exists(w.in, "2025_1.csv"));
	ck_assert(exists(w.in, "20250326_120000.csv.tmp"));
	ck_assert(exists(w.in, ".20250326_120001.csv"));
	ck_assert_int_eq(tu_total(w.e.q), 1);

	/* a glob; dot files, .tmp, .part, .swp and ~ still ignored with "*" */
	w.wc.pattern = (char *)"*";
	put(w.in, "x.tmp", "order_number,tracking_number,carrier_code\n");
	put(w.in, "x.csv.part", csv);   /* downloads, editors' files */
	put(w.in, "x.csv.swp", csv);
	put(w.in, "x.csv~", csv);
	CK_OK(m2w_watch_run_once(w.e.q, NULL, &w.wc, EB));
	ck_assert(exists(w.in, "x.tmp"));
	ck_assert(exists(w.in, "x.csv.part"));
	ck_assert(exists(w.in, "x.csv.swp"));
	ck_assert(exists(w.in, "x.csv~"));
	ck_assert(exists(w.in, ".20250326_120001.csv"));
	ck_assert(exists(w.done, "notes.csv"));   /* same content: seen */
	ck_assert_int_eq(tu_total(w.e.q), 1);
	tu_env_done(&w.e);
}
END_TEST

START_TEST(test_columns)
{
	struct wenv w;
	char eb[M2W_ERRBUF_SIZE];

	wenv_init(&w, "tracking", NULL);
	w.wc.columns = (char *)"order = Order No, track=AWB Number";
	put(w.in, "a.csv", "Order No;AWB Number;Carrier\n"
			   "1000000001;AWB1;ups\n");
	CK_OK(m2w_watch_run_once(w.e.q, NULL, &w.wc, EB));
	ck_assert(exists(w.done, "a.csv"));
	ck_assert_int_eq(tu_total(w.e.q), 1);

	/* a header the aliases do not cover: failed/ with the reason */
	put(w.in, "b.csv", "Order Ref;AWB;Carrier\n1000000002;AWB2;ups\n");
	w.wc.columns = (char *)"order=Order No";
	CK_OK(m2w_watch_run_once(w.e.q, NULL, &w.wc, EB));
	ck_assert(exists(w.bad, "b.csv"));
	ck_assert(exists(w.bad, "b.csv.reason.txt"));

	/* a columns text that will not do */
	w.wc.columns = (char *)"colour=Farbe";
	ck_assert_int_eq(m2w_watch_run_once(w.e.q, NULL, &w.wc, eb),
			 M2W_EINVAL);
	ck_assert_msg(strstr(eb, "unknown field colour") != NULL, "%s", eb);
	tu_env_done(&w.e);
}
END_TEST

START_TEST(test_clash_and_seen)
{
	struct wenv w;
	char *s;

	wenv_init(&w, "stock", NULL);
	put(w.in, "a.csv", "sku,qty\nA,1\n");
	CK_OK(m2w_watch_run_once(w.e.q, NULL, &w.wc, EB));
	put(w.in, "a.csv", "sku,qty\nA,2\n");
	CK_OK(m2w_watch_run_once(w.e.q, NULL, &w.wc, EB));
	put(w.in, "a.csv", "sku,qty\nA,1\n");          /* seen before */
	CK_OK(m2w_watch_run_once(w.e.q, NULL, &w.wc, EB));
	ck_assert_int_eq(tu_total(w.e.q), 2);
	s = slurp(w.done, "a.csv");
	ck_assert_str_eq(s, "sku,qty\nA,1\n");
	free(s);
	s = slurp(w.done, "a.1.csv");
	ck_assert_str_eq(s, "sku,qty\nA,2\n");
	free(s);
	ck_assert(exists(w.done, "a.2.csv"));
	ck_assert(!exists(w.in, "a.csv"));

	/* an empty file: failed/ with a reason */
	put(w.in, "e.csv", "");
	CK_OK(m2w_watch_run_once(w.e.q, NULL, &w.wc, EB));
	ck_assert(exists(w.bad, "e.csv"));
	ck_assert(exists(w.bad, "e.csv.reason.txt"));
	tu_env_done(&w.e);
}
END_TEST

static Suite *watch_suite(void)
{
	Suite *s = suite_create("watch");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_resume);
	tcase_add_test(tc, test_pattern);
	tcase_add_test(tc, test_columns);
	tcase_add_test(tc, test_clash_and_seen);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int rc;

	m2w_log_open(NULL, M2W_LOG_ERROR);
	rc = tu_run("m2w-check-watch", watch_suite());
	m2w_log_close();
	return rc;
}
