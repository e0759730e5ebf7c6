/*
 * check_jobs.c - the job types (jobs.h): payload checks and keys (pure),
 * then tracking, stock, price and rest run against
 * tools/fake-magento/fake-magento.
 *
 * Tasks are built by hand (struct m2w_task with a payload); no store is
 * involved: what a run did is read back from the fake's state. The config
 * is built by hand too (struct m2w_config with notify, carriers ...).
 *
 * Every test runs in its own forked process (CK_FORK) and the Magento
 * cases start their own fake (fakeutil.h) on a free port of 127.0.0.1.
 * Run one case with CK_RUN_CASE=tracking, one test with CK_RUN_CASE=
 * tracking CK_RUN_TEST=test_tracking_replay. The fake binary:
 * $FAKE_MAGENTO, else $top_builddir/tools/fake-magento/, else
 * ./tools/fake-magento/ (run from the build directory).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <json-c/json.h>

#include "m2worker/config.h"
#include "m2worker/error.h"
#include "m2worker/jobs.h"
#include "m2worker/magento.h"
#include "testutil.h"
#include "fakeutil.h"

/* 5 orders, 3 products (order k: increment id 100000000k, items 2k-1
 * SKU-<((k-1)%3)+1> qty 2 and 2k SKU-<(k%3)+1> qty 1); no auth. */
#define FAKE_ARGS "--orders", "5", "--products", "3", "--seed", "1"

static struct fake F;
static struct m2_client *C;
static struct m2_conn *K;
static struct m2w_config CFG;
static struct m2w_job_env ENV;
static uint64_t next_task_id;

/* ------------------------------------------------------------ helpers */

#define ck_outcome(o, want_err, want_cls)                                  \
	ck_assert_msg((o).err == (int)(want_err) &&                        \
			      (o).cls == (int)(want_cls),                  \
		      "outcome err %d (%s) cls %d, expected err %d (%s) cls " \
		      "%d; http %d retry_after %" PRId64 " calls %d "      \
		      "message \"%s\"",                                    \
		      (o).err, m2w_strerror((o).err), (o).cls,             \
		      (int)(want_err), m2w_strerror(want_err),             \
		      (int)(want_cls), (o).http_status, (o).retry_after_ms, \
		      (o).calls, (o).message)

#define ck_done(o) ck_outcome(o, M2W_OK, M2W_CLASS_OK)

#define ck_message_has(o, s)                                             \
	ck_assert_msg(strstr((o).message, (s)) != NULL,                  \
		      "message \"%s\" lacks \"%s\"", (o).message, (s))

/* Runs tasks of `payloads` (n of them) in one run() call. */
static void run_n(const char *type, const char *const *payloads,
		  size_t n, struct m2w_outcome *out)
{
	const struct m2w_job *job = m2w_job_find(type);
	struct m2w_task tasks[8], *tp[8];
	size_t i;

	ck_assert(job && n <= 8);
	for (i = 0; i < n; i++) {
		memset(&tasks[i], 0, sizeof(tasks[i]));
		tasks[i].id = ++next_task_id;
		snprintf(tasks[i].type, sizeof(tasks[i].type), "%s",
			 job->name);
		tasks[i].payload = payloads[i];
		tasks[i].payload_len = strlen(payloads[i]);
		tp[i] = &tasks[i];
	}
	memset(out, 0x5a, n * sizeof(*out)); /* run() must fill them */
	ENV.settings = m2w_config_type(&CFG, job->name)->settings;
	ck_assert_int_eq(m2w_job_run(job, &ENV, tp, n, out), M2W_OK);
}

static struct m2w_outcome run1(const char *job, const char *payload)
{
	struct m2w_outcome o;

	run_n(job, &payload, 1, &o);
	return o;
}

/* The config of the jobs: [magento] and [carriers], then `extra`, read
 * through the config parser as the daemon reads it. */
static void cfg_use(const char *extra)
{
	char path[] = "/tmp/check_jobs.XXXXXX", rep[1024];
	FILE *f;
	int fd;

	m2w_config_release(&CFG);
	m2w_config_defaults(&CFG);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[magento]\nbase_url = http://127.0.0.1:1\n"
		"[carriers]\nUPS Ground = ups\nDeutsche Post DHL = dhl\n%s",
		extra ? extra : "");
	fclose(f);
	ck_assert_msg(m2w_config_load(path, &CFG, rep, sizeof(rep)) == 0, "%s",
		      rep);
	unlink(path);
}

static void cfg_init(void)
{
	memset(&CFG, 0, sizeof(CFG));
	cfg_use("[tracking]\nnotify = no\n");
}

static void setup_pure(void)
{
	cfg_init();
}

static void setup(void)
{
	struct m2_client_opts o;
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc;

	cfg_init();
	C = NULL;
	K = NULL;
	fake_start(&F, FAKE_ARGS);
	memset(&o, 0, sizeof(o));
	o.base_url = F.url;
	o.auth = M2_AUTH_NONE;
	o.connect_timeout_ms = 3000;
	o.timeout_ms = 10000;
	rc = m2_client_new(&o, &C, eb);
	ck_assert_msg(rc == M2W_OK, "m2_client_new: %s", eb);
	rc = m2_conn_new(C, &K, eb);
	ck_assert_msg(rc == M2W_OK, "m2_conn_new: %s", eb);
	ENV.conn = K;
}

static void teardown(void)
{
	if (K)
		m2_conn_free(K);
	K = NULL;
	if (C)
		m2_client_free(C);
	C = NULL;
	fake_stop_all();
}

/* orders[inc].shipments of the fake's state (borrowed from s). */
static json_object *shipments_of(json_object *s, const char *inc)
{
	json_object *a = fake_jget(s, "orders", inc, "shipments", NULL);

	ck_assert_msg(a && json_object_is_type(a, json_type_array),
		      "order %s has no shipments in the fake's state", inc);
	return a;
}

/* The first track numbered tn of order inc, as "carrier_code|title". */
static void track_of(const char *inc, const char *tn, char *out, size_t size)
{
	json_object *s = fake_state(&F), *a = shipments_of(s, inc);
	size_t i, j;

	out[0] = '\0';
	for (i = 0; i < json_object_array_length(a); i++) {
		json_object *tr = fake_jget(json_object_array_get_idx(a, i),
					    "tracks", NULL);

		for (j = 0; tr && j < json_object_array_length(tr); j++) {
			json_object *t = json_object_array_get_idx(tr, j);
			json_object *n = fake_jget(t, "track_number", NULL);
			json_object *c = fake_jget(t, "carrier_code", NULL);
			json_object *ti = fake_jget(t, "title", NULL);

			if (n && strcmp(json_object_get_string(n), tn) == 0 &&
			    !out[0])
				snprintf(out, size, "%s|%s",
					 c ? json_object_get_string(c) : "",
					 ti ? json_object_get_string(ti) : "");
		}
	}
	json_object_put(s);
}

/* Quantity of order item `item` in shipment number `idx` of order inc
 * (0 when absent). */
static double shipped_in(const char *inc, size_t idx, int64_t item)
{
	json_object *s = fake_state(&F), *a = shipments_of(s, inc), *items;
	double q = 0;
	size_t i;

	ck_assert_msg(idx < json_object_array_length(a), "no shipment %zu",
		      idx);
	items = fake_jget(json_object_array_get_idx(a, idx), "items", NULL);
	for (i = 0; items && i < json_object_array_length(items); i++) {
		json_object *it = json_object_array_get_idx(items, i);

		if (fake_jint(fake_jget(it, "order_item_id", NULL)) == item)
			q += json_object_get_double(fake_jget(it, "qty", NULL));
	}
	json_object_put(s);
	return q;
}

/* ------------------------------------------------------- pure: table */

START_TEST(test_find)
{
	char names[128];

	ck_assert_ptr_eq(m2w_job_find("tracking"), m2w_job_at(0));
	ck_assert_ptr_eq(m2w_job_find("stock"), m2w_job_at(1));
	ck_assert_ptr_eq(m2w_job_find("price"), m2w_job_at(2));
	ck_assert_ptr_eq(m2w_job_find("rest"), m2w_job_at(3));
	ck_assert_ptr_null(m2w_job_at(4));
	ck_assert_ptr_null(m2w_job_find("nope"));
	ck_assert_ptr_null(m2w_job_find(NULL));
	ck_assert_int_eq(m2w_job_find("tracking")->batch, 50);
	ck_assert_int_eq(m2w_job_find("stock")->batch, 50);
	ck_assert_int_eq(m2w_job_find("price")->batch, 50);
	ck_assert_int_eq(m2w_job_find("rest")->batch, 0);
	ck_assert_str_eq(m2w_job_find("stock")->name, "stock");
	ck_assert_str_eq(m2w_job_names(0, names, sizeof(names)),
			 "tracking, stock, price or rest");
	ck_assert_str_eq(m2w_job_names(M2W_IN_CSV, names, sizeof(names)),
			 "tracking, stock or price");
}
END_TEST

START_TEST(test_outcome_set)
{
	struct m2_result r;
	struct m2w_outcome o;

	memset(&r, 0, sizeof(r));
	memset(&o, 0, sizeof(o));
	o.calls = 3;
	r.http_status = 503;
	r.cls = M2W_CLASS_TRANSIENT;
	r.retry_after_ms = 2000;
	snprintf(r.message, sizeof(r.message), "Service Unavailable");
	m2w_outcome_set(&o, M2W_ETRANSIENT, &r);
	ck_outcome(o, M2W_ETRANSIENT, M2W_CLASS_TRANSIENT);
	ck_assert_int_eq(o.http_status, 503);
	ck_assert_int_eq(o.retry_after_ms, 2000);
	ck_assert_int_eq(o.calls, 3);
	ck_assert_str_eq(o.message, "Service Unavailable");

	memset(&r, 0, sizeof(r));
	r.http_status = 200;
	r.cls = M2W_CLASS_PERMANENT; /* whatever it says: OK is OK */
	m2w_outcome_set(&o, M2W_OK, &r);
	ck_done(o);
	ck_assert_str_eq(o.message, "");

	memset(&r, 0, sizeof(r));
	r.http_status = 200;
	r.cls = M2W_CLASS_OK;
	snprintf(r.message, sizeof(r.message), "no order with increment id 7");
	m2w_outcome_set(&o, M2W_ENOTFOUND, &r);
	ck_outcome(o, M2W_ENOTFOUND, M2W_CLASS_PERMANENT);
	ck_assert_str_eq(o.message, "no order with increment id 7");

	memset(&r, 0, sizeof(r));
	r.http_status = 401;
	r.cls = M2W_CLASS_AUTH;
	m2w_outcome_set(&o, M2W_EAUTH, &r);
	ck_outcome(o, M2W_EAUTH, M2W_CLASS_AUTH);
	ck_assert_msg(o.message[0], "an error without a message gets one");
}
END_TEST

/* ------------------------------------------------------- pure: check */

struct check_case {
	const char *job;
	const char *payload;
	const char *why;         /* NULL: accepted; else a part of why */
};

#define T "tracking"
#define S "stock"
#define P "price"
#define R "rest"

/* A payload text through the job's load: 0, or -1 with why. */
static int check_text(const char *type, const char *payload, char *why,
		      size_t len)
{
	json_object *o;

	if (m2w_job_load(m2w_job_find(type), payload, &o, why, len))
		return -1;
	json_object_put(o);
	return 0;
}

/* A payload text's keys: 0, or -1 when it does not load. */
static int keys_text(const char *type, const char *payload, char *idem,
		     char *group, int *sup)
{
	const struct m2w_job *job = m2w_job_find(type);
	json_object *o;
	int rc;

	if (m2w_job_load(job, payload, &o, NULL, 0))
		return -1;
	rc = m2w_job_keys(job, o, idem, group, sup);
	json_object_put(o);
	return rc;
}

static const struct check_case check_cases[] = {
	/* tracking */
	{ T, "{\"order\":\"1000000001\",\"track\":\"1Z999\","
	     "\"carrier\":\"ups\"}", NULL },
	{ T, "{\"order\":\" 1000000001 \",\"track\":\"1Z999\","
	     "\"carrier\":\"UPS Ground\",\"title\":\"UPS\","
	     "\"items\":[{\"sku\":\"SKU-1\",\"qty\":1},"
	     "{\"sku\":\"SKU-2\",\"qty\":0.5}],\"notify\":true}", NULL },
	{ T, "{\"order\":\"1\",\"track\":\"2\",\"carrier\":\"x\","
	     "\"title\":null}", NULL },
	{ T, " {\"order\":\"1\",\"track\":\"2\",\"carrier\":\"x\"}\r\n",
	  NULL },
	{ T, "{\"track\":\"1Z\",\"carrier\":\"ups\"}", "missing \"order\"" },
	{ T, "{\"order\":\"1\",\"carrier\":\"ups\"}", "missing \"track\"" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\"}", "missing \"carrier\"" },
	{ T, "{\"order\":1,\"track\":\"1Z\",\"carrier\":\"ups\"}",
	  "\"order\" must be a string" },
	{ T, "{\"order\":\"1\",\"track\":\"   \",\"carrier\":\"ups\"}",
	  "\"track\" must not be empty" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"foo\":1}", "unknown key \"foo\"" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"notify\":\"yes\"}", "\"notify\" must be true or false" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"title\":5}", "\"title\" must be a string" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"items\":{}}", "\"items\" must be an array" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"items\":[]}", "\"items\" must not be empty" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"items\":[5]}", "\"items[0]\" must be an object" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"items\":[{\"sku\":\"A\",\"qty\":1},{\"qty\":1}]}",
	  "missing \"items[1].sku\"" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"items\":[{\"sku\":\"A\",\"qty\":0}]}",
	  "\"items[0].qty\" must be > 0" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"items\":[{\"sku\":\"A\",\"qty\":\"1\"}]}",
	  "\"items[0].qty\" must be a number" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"items\":[{\"sku\":\"A\",\"qty\":1,\"x\":1}]}",
	  "unknown key \"items[0].x\"" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\","
	     "\"items\":[{\"sku\":\"A\",\"qty\":1}]", "not valid JSON" },
	{ T, "[{\"order\":\"1\"}]", "must be a JSON object" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\"} x",
	  "not valid JSON" },
	{ T, "{\"order\":\"1\",\"track\":\"1Z\",\"carrier\":\"ups\"} {}",
	  "not valid JSON" },
	{ T, "", "not valid JSON" },
	{ T, "{\"order\":\"12345678901234567890123456789012345678901234567890"
	     "1234567890123456\",\"track\":\"1Z\",\"carrier\":\"ups\"}",
	  "\"order\" is too long" },
	/* stock */
	{ S, "{\"sku\":\"SKU-1\",\"qty\":5}", NULL },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":0,\"source\":\"warehouse-2\","
	     "\"status\":0,\"item_id\":7}", NULL },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":2.5,\"status\":1}", NULL },
	{ S, "{\"qty\":5}", "missing \"sku\"" },
	{ S, "{\"sku\":\"SKU-1\"}", "missing \"qty\"" },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":\"5\"}", "\"qty\" must be a number" },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":-1}", "\"qty\" must be >= 0" },
	{ S, "{\"sku\":\"\",\"qty\":1}", "\"sku\" must not be empty" },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":1,\"status\":2}",
	  "\"status\" must be 0 or 1" },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":1,\"status\":true}",
	  "\"status\" must be an integer" },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":1,\"item_id\":0}",
	  "\"item_id\" must be > 0" },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":1,\"item_id\":1.5}",
	  "\"item_id\" must be an integer" },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":1,\"source\":7}",
	  "\"source\" must be a string" },
	{ S, "{\"sku\":\"SKU-1\",\"qty\":1,\"foo\":1}", "unknown key \"foo\"" },
	/* price */
	{ P, "{\"sku\":\"SKU-1\",\"price\":9.99}", NULL },
	{ P, "{\"sku\":\"SKU-1\",\"price\":0,\"store_id\":1}", NULL },
	{ P, "{\"price\":1}", "missing \"sku\"" },
	{ P, "{\"sku\":\"SKU-1\"}", "missing \"price\"" },
	{ P, "{\"sku\":\"SKU-1\",\"price\":-0.01}", "\"price\" must be >= 0" },
	{ P, "{\"sku\":\"SKU-1\",\"price\":\"9\"}",
	  "\"price\" must be a number" },
	{ P, "{\"sku\":\"SKU-1\",\"price\":1,\"store_id\":-1}",
	  "\"store_id\" must be >= 0" },
	{ P, "{\"sku\":\"SKU-1\",\"price\":1,\"store_id\":\"0\"}",
	  "\"store_id\" must be an integer" },
	{ P, "{\"sku\":\"SKU-1\",\"price\":1,\"store\":0}",
	  "unknown key \"store\"" },
	/* rest */
	{ R, "{\"method\":\"GET\",\"path\":\"/orders/1\"}", NULL },
	{ R, "{\"method\":\"post\",\"path\":\"/products\","
	     "\"body\":{\"product\":{\"sku\":\"X\"}}}", NULL },
	{ R, "{\"method\":\"PUT\",\"path\":\"/x\",\"body\":[1,2]}", NULL },
	{ R, "{\"method\":\"DELETE\",\"path\":\"/x\",\"body\":null}", NULL },
	{ R, "{\"path\":\"/x\"}", "missing \"method\"" },
	{ R, "{\"method\":\"GET\"}", "missing \"path\"" },
	{ R, "{\"method\":\"PATCH\",\"path\":\"/x\"}", "\"method\" must be" },
	{ R, "{\"method\":\"GET\",\"path\":\"orders\"}",
	  "\"path\" must start with \"/\"" },
	{ R, "{\"method\":\"GET\",\"path\":\"/a b\"}", "\"path\" must not" },
	{ R, "{\"method\":\"GET\",\"path\":5}", "\"path\" must be a string" },
	{ R, "{\"method\":\"GET\",\"path\":\"/x\",\"ordering_key\":\"k\"}",
	  "unknown key \"ordering_key\"" },
};

START_TEST(test_check)
{
	const struct check_case *c = &check_cases[_i];
	char why[256];
	int rc;

	snprintf(why, sizeof(why), "(untouched)");
	rc = check_text(c->job, c->payload, why, sizeof(why));
	if (!c->why) {
		ck_assert_msg(rc == 0, "%s check(%s) refused: %s", c->job,
			      c->payload, why);
		return;
	}
	ck_assert_msg(rc == -1, "%s check(%s) accepted; expected \"%s\"",
		      c->job, c->payload, c->why);
	ck_assert_msg(strstr(why, c->why) != NULL,
		      "%s check(%s): why \"%s\" lacks \"%s\"", c->job,
		      c->payload, why, c->why);
}
END_TEST

START_TEST(test_check_small_why)
{
	char why[8];

	/* a short buffer is cut, never overrun; NULL is allowed */
	ck_assert_int_eq(check_text(S, "{}", why, sizeof(why)), -1);
	ck_assert_uint_lt(strlen(why), sizeof(why));
	ck_assert_int_eq(check_text(S, "{}", NULL, 0), -1);
	ck_assert_int_eq(check_text(T, NULL, why, sizeof(why)), -1);
}
END_TEST

/* -------------------------------------------------------- pure: keys */

static void ck_keys(const char *job, const char *payload,
		    const char *idem, const char *group, int supersede)
{
	char ik[M2W_KEY_MAX + 1], gk[M2W_KEY_MAX + 1];
	int sup = -1;

	memset(ik, 'x', sizeof(ik));
	memset(gk, 'x', sizeof(gk));
	ck_assert_msg(keys_text(job, payload, ik, gk, &sup) == 0, "%s keys(%s)",
		      job, payload);
	ck_assert_str_eq(ik, idem);
	ck_assert_str_eq(gk, group);
	ck_assert_int_eq(sup, supersede);
}

START_TEST(test_keys)
{
	char ik[M2W_KEY_MAX + 1], gk[M2W_KEY_MAX + 1];
	int sup;

	ck_keys(T, "{\"order\":\" 1000000001\",\"track\":\"1Z999 \","
		   "\"carrier\":\"ups\"}",
		"tracking:1000000001:1Z999", "order:1000000001", M2W_GROUP_EXCLUSIVE);
	ck_keys(T, "{\"order\":\"1000000001\",\"track\":\"1Z998\","
		   "\"carrier\":\"fedex\",\"items\":[{\"sku\":\"A\","
		   "\"qty\":1}]}",
		"tracking:1000000001:1Z998", "order:1000000001", M2W_GROUP_EXCLUSIVE);
	ck_keys(S, "{\"sku\":\"SKU-1\",\"qty\":5}", "", "stock:SKU-1:default",
		1);
	ck_keys(S, "{\"sku\":\" SKU-1\",\"qty\":5,\"source\":\"warehouse-2\"}",
		"", "stock:SKU-1:warehouse-2", 1);
	ck_keys(P, "{\"sku\":\"SKU-1\",\"price\":5}", "", "price:SKU-1:0", 1);
	ck_keys(P, "{\"sku\":\"SKU-1\",\"price\":5,\"store_id\":3}", "",
		"price:SKU-1:3", 1);
	ck_keys(R, "{\"method\":\"GET\",\"path\":\"/orders/1\"}", "", "", 0);

	/* a payload that does not check has no keys */
	ck_assert_int_eq(keys_text(T, "{\"order\":\"1\"}", ik, gk, &sup), -1);
	ck_assert_int_eq(keys_text(S, "{\"sku\":\"A\",\"qty\":-1}", ik, gk, &sup),
			 -1);
	ck_assert_int_eq(keys_text(P, "nope", ik, gk, &sup), -1);
	ck_assert_int_eq(keys_text(R, "{\"method\":\"GET\"}", ik, gk, &sup), -1);
}
END_TEST

/* ------------------------------------------------------------ tracking */

#define O1 "1000000001"
#define O2 "1000000002"
#define O3 "1000000003"

static char payload_buf[4][512];

/* A tracking payload; `extra` ("" or ",\"items\":[...]") goes inside. */
static const char *trk(int slot, const char *order, const char *track,
		       const char *carrier, const char *extra)
{
	snprintf(payload_buf[slot], sizeof(payload_buf[slot]),
		 "{\"order\":\"%s\",\"track\":\"%s\",\"carrier\":\"%s\"%s}",
		 order, track, carrier, extra);
	return payload_buf[slot];
}

START_TEST(test_tracking_create)
{
	struct m2w_outcome o;
	char t[256];

	o = run1(T, trk(0, O1, "1Z001", "ups", ""));
	ck_done(o);
	ck_message_has(o, "created");
	ck_assert_int_eq(o.calls, 3);
	ck_assert_int_eq(fake_shipments(&F, O1), 1);
	ck_assert_int_eq(fake_track_count(&F, "1Z001"), 1);
	track_of(O1, "1Z001", t, sizeof(t));
	ck_assert_str_eq(t, "ups|ups");
	/* everything was shipped: both items, all of their quantity */
	ck_assert(shipped_in(O1, 0, 1) == 2);
	ck_assert(shipped_in(O1, 0, 2) == 1);

	/* the same task again (a crash after the POST): nothing written */
	o = run1(T, trk(0, O1, " 1Z001 ", "ups", ""));
	ck_done(o);
	ck_message_has(o, "already on shipment");
	ck_assert_int_eq(o.calls, 2);
	ck_assert_int_eq(fake_shipments(&F, O1), 1);
	ck_assert_int_eq(fake_track_count(&F, "1Z001"), 1);
}
END_TEST

START_TEST(test_tracking_second_track)
{
	struct m2w_outcome o;

	o = run1(T, trk(0, O2, "1Z201", "ups", ""));
	ck_done(o);
	o = run1(T, trk(0, O2, "1Z202", "fedex", ",\"title\":\"FedEx\""));
	ck_done(o);
	ck_message_has(o, "added to shipment");
	ck_assert_int_eq(o.calls, 3);
	ck_assert_int_eq(fake_shipments(&F, O2), 1);
	ck_assert_int_eq(fake_track_count(&F, "1Z201"), 1);
	ck_assert_int_eq(fake_track_count(&F, "1Z202"), 1);
	ck_assert_int_eq(fake_requests(&F, "POST /V1/order/{id}/ship", NULL),
			 1);
	ck_assert_int_eq(fake_requests(&F, "POST /V1/shipment/track", NULL),
			 1);
}
END_TEST

START_TEST(test_tracking_items)
{
	struct m2w_outcome o;

	/* order 1: item 1 SKU-1 qty 2, item 2 SKU-2 qty 1 */
	o = run1(T, trk(0, O1, "1ZA", "ups",
			",\"items\":[{\"sku\":\"SKU-2\",\"qty\":1}]"));
	ck_done(o);
	ck_assert_int_eq(fake_shipments(&F, O1), 1);
	ck_assert(shipped_in(O1, 0, 2) == 1);
	ck_assert(shipped_in(O1, 0, 1) == 0);

	/* nothing left of SKU-2: the track goes onto the last shipment */
	o = run1(T, trk(0, O1, "1ZB", "ups",
			",\"items\":[{\"sku\":\"SKU-2\",\"qty\":1}]"));
	ck_done(o);
	ck_message_has(o, "added to shipment");
	ck_assert_int_eq(fake_shipments(&F, O1), 1);
	ck_assert_int_eq(fake_track_count(&F, "1ZB"), 1);

	/* SKU-1: more than ordered is capped at what is left */
	o = run1(T, trk(0, O1, "1ZC", "ups",
			",\"items\":[{\"sku\":\"SKU-1\",\"qty\":1},"
			"{\"sku\":\"SKU-1\",\"qty\":5}]"));
	ck_done(o);
	ck_message_has(o, "created");
	ck_assert_int_eq(fake_shipments(&F, O1), 2);
	ck_assert(shipped_in(O1, 1, 1) == 2);
	ck_assert(shipped_in(O1, 1, 2) == 0);

	/* a sku the order does not have */
	o = run1(T, trk(0, O1, "1ZD", "ups",
			",\"items\":[{\"sku\":\"SKU-3\",\"qty\":1}]"));
	ck_outcome(o, M2W_EPERMANENT, M2W_CLASS_PERMANENT);
	ck_assert_str_eq(o.message, "order " O1 " has no item with sku SKU-3");
	ck_assert_int_eq(fake_track_count(&F, "1ZD"), 0);
}
END_TEST

START_TEST(test_tracking_unknown_order)
{
	struct m2w_outcome o;

	o = run1(T, trk(0, "1000000999", "1Z9", "ups", ""));
	ck_outcome(o, M2W_ENOTFOUND, M2W_CLASS_PERMANENT);
	ck_assert_str_eq(o.message, "no order with increment id 1000000999");
	ck_assert_int_eq(o.http_status, 404);
	/* the batched search, then the order alone (none, or several?) */
	ck_assert_int_eq(o.calls, 2);
	ck_assert_int_eq(fake_total_requests(&F), 2);
}
END_TEST

START_TEST(test_tracking_canceled)
{
	struct m2w_outcome o;

	/* dead from the read: no POST that Magento would refuse */
	fake_set_order_state(&F, O2, "canceled");
	o = run1(T, trk(0, O2, "1Z9", "ups", ""));
	ck_outcome(o, M2W_EPERMANENT, M2W_CLASS_PERMANENT);
	ck_assert_str_eq(o.message, "order " O2 " is canceled: Magento takes "
			 "no shipment or track for it");
	ck_assert_int_eq(o.calls, 2);
	ck_assert_int_eq(fake_shipments(&F, O2), 0);
	ck_assert_int_eq(fake_requests(&F, "POST /V1/order/{id}/ship", NULL),
			 0);
	fake_set_order_state(&F, O3, "holded");
	o = run1(T, trk(0, O3, "1Z9", "ups", ""));
	ck_outcome(o, M2W_EPERMANENT, M2W_CLASS_PERMANENT);
	ck_message_has(o, "is on hold");
	ck_assert_int_eq(fake_requests(&F, "POST /V1/order/{id}/ship", NULL),
			 0);
}
END_TEST

START_TEST(test_tracking_carriers)
{
	struct m2w_outcome o;
	char t[256];

	o = run1(T, trk(0, O1, "1ZUPS", "UPS Ground", ""));
	ck_done(o);
	track_of(O1, "1ZUPS", t, sizeof(t));
	ck_assert_str_eq(t, "ups|UPS Ground");

	o = run1(T, trk(0, O2, "BOB1", "Bob's Courier", ""));
	ck_done(o);
	track_of(O2, "BOB1", t, sizeof(t));
	ck_assert_str_eq(t, "custom|Bob's Courier");

	/* the payload's title wins */
	o = run1(T, trk(0, O3, "DHL1", "deutsche post dhl",
			",\"title\":\"DHL Paket\""));
	ck_done(o);
	track_of(O3, "DHL1", t, sizeof(t));
	ck_assert_str_eq(t, "dhl|DHL Paket");
}
END_TEST

/* [tracking] comment, source_code and notify reach Magento without a
 * refusal (unknown keys would be a 400). */
START_TEST(test_tracking_config_extras)
{
	struct m2w_outcome o;

	cfg_use("[tracking]\nnotify = yes\ncomment = Shipped by the 3PL\n"
		"source_code = warehouse-2\n");
	o = run1(T, trk(0, O1, "1ZX1", "ups", ",\"notify\":false"));
	ck_done(o);
	o = run1(T, trk(0, O2, "1ZX2", "ups", ""));
	ck_done(o);
	ck_assert_int_eq(fake_shipments(&F, O1), 1);
	ck_assert_int_eq(fake_shipments(&F, O2), 1);
}
END_TEST

START_TEST(test_tracking_transient)
{
	struct m2w_outcome o;

	fake_set_faults(&F, "{\"fail_rate\":1,\"fail_status\":503,"
			    "\"retry_after\":2}");
	o = run1(T, trk(0, O1, "1ZT", "ups", ""));
	ck_outcome(o, M2W_ETRANSIENT, M2W_CLASS_TRANSIENT);
	ck_assert_int_eq(o.http_status, 503);
	ck_assert_int_eq(o.retry_after_ms, 2000);
	ck_assert_int_eq(o.calls, 1);

	fake_set_faults(&F, "{\"fail_rate\":0}");
	o = run1(T, trk(0, O1, "1ZT", "ups", ""));
	ck_done(o);
	ck_assert_int_eq(fake_track_count(&F, "1ZT"), 1);
}
END_TEST

START_TEST(test_tracking_outage_replay)
{
	struct m2w_outcome o;
	int i;

	fake_set_faults(&F, "{\"outage\":true}");
	for (i = 0; i < 2; i++) {
		o = run1(T, trk(0, O3, "1ZOUT", "usps", ""));
		ck_outcome(o, M2W_ETRANSIENT, M2W_CLASS_TRANSIENT);
		ck_assert_int_eq(o.http_status, 503);
	}
	fake_set_faults(&F, "{\"outage\":false}");
	for (i = 0; i < 3; i++) {
		o = run1(T, trk(0, O3, "1ZOUT", "usps", ""));
		ck_done(o);
		if (i > 0)
			ck_message_has(o, "already");
	}
	ck_assert_int_eq(fake_track_count(&F, "1ZOUT"), 1);
	ck_assert_int_eq(fake_shipments(&F, O3), 1);
}
END_TEST

/*
 * The crash the design is about: the POST reached Magento (made here with
 * the client directly), the worker died before it could ack. The task runs
 * again and must not post the track a second time.
 */
START_TEST(test_tracking_replay)
{
	struct m2_ship_req q;
	struct m2_track t;
	struct m2_result res;
	struct m2w_outcome o;
	int64_t sid = 0;

	memset(&t, 0, sizeof(t));
	snprintf(t.track_number, sizeof(t.track_number), "1ZCRASH");
	snprintf(t.carrier_code, sizeof(t.carrier_code), "ups");
	snprintf(t.title, sizeof(t.title), "UPS");
	memset(&q, 0, sizeof(q));
	q.order_id = 3;
	q.tracks = &t;
	q.ntracks = 1;
	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(m2_ship_create(K, &q, &sid, &res), M2W_OK);
	ck_assert_int_gt(sid, 0);

	o = run1(T, trk(0, O3, "1ZCRASH", "ups", ""));
	ck_done(o);
	ck_message_has(o, "already on shipment");
	ck_assert_int_eq(fake_track_count(&F, "1ZCRASH"), 1);
	ck_assert_int_eq(fake_shipments(&F, O3), 1);

	/* and a crash between ship and track of a second track: the track
	 * was added to the shipment; the replay finds it too */
	memset(&res, 0, sizeof(res));
	snprintf(t.track_number, sizeof(t.track_number), "1ZCRASH2");
	ck_assert_int_eq(m2_track_add(K, 3, sid, &t, &res), M2W_OK);
	o = run1(T, trk(0, O3, "1ZCRASH2", "ups", ""));
	ck_done(o);
	ck_message_has(o, "already on shipment");
	ck_assert_int_eq(fake_track_count(&F, "1ZCRASH2"), 1);
}
END_TEST

/* A batch: five orders in two searches and one write each where one is
 * needed; an unknown order and a closed one in the same batch. */
START_TEST(test_tracking_batch)
{
	const char *p[6];
	struct m2w_outcome o[6];
	int i, calls = 0;

	o[0] = run1(T, trk(0, "1000000004", "1ZB4A", "ups", ""));
	ck_done(o[0]);
	fake_set_order_state(&F, "1000000005", "closed");
	p[0] = trk(0, O1, "1ZB1", "ups", "");
	p[1] = trk(1, O2, "1ZB2", "dhl", "");
	p[2] = trk(2, "1000000999", "1ZB9", "ups", "");
	p[3] = trk(3, "1000000004", "1ZB4B", "ups", "");
	run_n(T, p, 4, o);
	ck_done(o[0]);
	ck_done(o[1]);
	ck_outcome(o[2], M2W_ENOTFOUND, M2W_CLASS_PERMANENT);
	ck_assert_int_eq(o[2].http_status, 404);
	ck_done(o[3]);
	ck_message_has(o[3], "added to shipment");
	for (i = 0; i < 4; i++)
		calls += o[i].calls;
	/* 3 for the first run; then 2 searches, the unknown order alone,
	 * and 3 writes */
	ck_assert_int_eq(fake_total_requests(&F), 3 + 6);
	ck_assert_int_eq(calls, 6);
	ck_assert_int_eq(fake_requests(&F, "GET /V1/shipments", NULL), 1 + 1);
	p[0] = trk(0, "1000000005", "1ZB5", "ups", "");
	p[1] = trk(1, "1000000004", "1ZB4B", "ups", "");
	run_n(T, p, 2, o);
	ck_outcome(o[0], M2W_EPERMANENT, M2W_CLASS_PERMANENT);
	ck_message_has(o[0], "is closed");
	ck_done(o[1]);
	ck_message_has(o[1], "already on shipment");
	ck_assert_int_eq(fake_track_count(&F, "1ZB4B"), 1);
	ck_assert_int_eq(fake_shipments(&F, "1000000005"), 0);
}
END_TEST

/*
 * Every write follows a read made in its own run: a track that reached
 * Magento after the last run (a crash after the POST) is found, never
 * posted again. Fails if shipments are kept from one run to the next.
 */
START_TEST(test_tracking_fresh_read)
{
	const char *p[2];
	struct m2w_outcome o[2];
	struct m2_track t;
	struct m2_result res;
	struct m2_shipment *s = NULL;
	size_t ns = 0;

	p[0] = trk(0, O1, "1ZF1", "ups", "");
	p[1] = trk(1, O2, "1ZF2", "ups", "");
	run_n(T, p, 2, o);
	ck_done(o[0]);
	ck_done(o[1]);
	/* between the runs, 1ZF4 reaches order 2's shipment */
	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(m2_shipments_list(K, 2, &s, &ns, &res), M2W_OK);
	ck_assert_uint_eq(ns, 1);
	memset(&t, 0, sizeof(t));
	snprintf(t.track_number, sizeof(t.track_number), "1ZF4");
	snprintf(t.carrier_code, sizeof(t.carrier_code), "ups");
	snprintf(t.title, sizeof(t.title), "UPS");
	ck_assert_int_eq(m2_track_add(K, 2, s[0].id, &t, &res), M2W_OK);
	m2_shipments_free(s, ns);
	p[0] = trk(0, O1, "1ZF3", "ups", "");
	p[1] = trk(1, O2, "1ZF4", "ups", "");
	run_n(T, p, 2, o);
	ck_done(o[0]);
	ck_message_has(o[0], "added to shipment");
	ck_done(o[1]);
	ck_message_has(o[1], "already on shipment");
	ck_assert_int_eq(fake_track_count(&F, "1ZF4"), 1);
	ck_assert_int_eq(fake_track_count(&F, "1ZF3"), 1);
}
END_TEST

START_TEST(test_tracking_bad_payload)
{
	struct m2w_outcome o;

	o = run1(T, "{\"order\":\"1000000001\",\"track\":\"1Z\"}");
	ck_outcome(o, M2W_EINVAL, M2W_CLASS_PERMANENT);
	ck_message_has(o, "missing \"carrier\"");
	ck_assert_int_eq(o.calls, 0);
	ck_assert_int_eq(fake_total_requests(&F), 0);
}
END_TEST

/* ---------------------------------------------------------------- stock */

static double stock_qty(const char *sku, const char *source)
{
	double q = -1;

	ck_assert_msg(fake_stock_qty(&F, sku, source, &q),
		      "no stock of %s at %s in the fake's state", sku, source);
	return q;
}

START_TEST(test_stock_batch)
{
	const char *p[3] = {
		"{\"sku\":\"SKU-1\",\"qty\":5}",
		"{\"sku\":\"SKU-2\",\"qty\":0,\"source\":\"warehouse-2\"}",
		"{\"sku\":\"SKU-3\",\"qty\":7,\"status\":0}",
	};
	struct m2w_outcome o[3];
	int i;

	run_n(S, p, 3, o);
	for (i = 0; i < 3; i++) {
		ck_done(o[i]);
		ck_assert_int_eq(o[i].calls, 1);
	}
	ck_assert(stock_qty("SKU-1", "default") == 5);
	ck_assert_int_eq(fake_stock_status(&F, "SKU-1", "default"), 1);
	ck_assert(stock_qty("SKU-2", "warehouse-2") == 0);
	ck_assert_int_eq(fake_stock_status(&F, "SKU-2", "warehouse-2"), 0);
	ck_assert(stock_qty("SKU-3", "default") == 7);
	ck_assert_int_eq(fake_stock_status(&F, "SKU-3", "default"), 0);
	ck_assert_int_eq(fake_requests(&F, "POST /V1/inventory/source-items",
				       NULL), 1);
}
END_TEST

START_TEST(test_stock_split)
{
	const char *p[4] = {
		"{\"sku\":\"SKU-1\",\"qty\":11}",
		"{\"sku\":\"NOPE\",\"qty\":2}",
		"{\"sku\":\"SKU-2\",\"qty\":12}",
		"{\"sku\":\"SKU-3\",\"qty\":\"x\"}",
	};
	struct m2w_outcome o[4];

	run_n(S, p, 4, o);
	ck_done(o[0]);
	ck_done(o[2]);
	ck_outcome(o[1], M2W_EPERMANENT, M2W_CLASS_PERMANENT);
	ck_assert_int_eq(o[1].http_status, 400);
	ck_message_has(o[1], "Product with SKU \"NOPE\" does not exist");
	ck_outcome(o[3], M2W_EINVAL, M2W_CLASS_PERMANENT);
	ck_message_has(o[3], "\"qty\" must be a number");
	ck_assert_int_eq(o[0].calls, 2);
	ck_assert_int_eq(o[1].calls, 2);
	ck_assert_int_eq(o[3].calls, 0);
	ck_assert(stock_qty("SKU-1", "default") == 11);
	ck_assert(stock_qty("SKU-2", "default") == 12);
	ck_assert_int_eq(fake_requests(&F, "POST /V1/inventory/source-items",
				       NULL), 4);
}
END_TEST

START_TEST(test_stock_source_default)
{
	struct m2w_outcome o;

	cfg_use("[stock]\nsource_code = warehouse-2\n");
	o = run1(S, "{\"sku\":\"SKU-1\",\"qty\":3}");
	ck_done(o);
	ck_assert(stock_qty("SKU-1", "warehouse-2") == 3);
}
END_TEST

START_TEST(test_stock_transient)
{
	const char *p[2] = {
		"{\"sku\":\"SKU-1\",\"qty\":1}",
		"{\"sku\":\"SKU-2\",\"qty\":2}",
	};
	struct m2w_outcome o[2];

	fake_set_faults(&F, "{\"fail_rate\":1,\"fail_status\":500}");
	run_n(S, p, 2, o);
	ck_outcome(o[0], M2W_ETRANSIENT, M2W_CLASS_TRANSIENT);
	ck_outcome(o[1], M2W_ETRANSIENT, M2W_CLASS_TRANSIENT);
	ck_assert_int_eq(o[1].http_status, 500);
	/* not split: one call */
	ck_assert_int_eq(fake_requests(&F, "POST /V1/inventory/source-items",
				       NULL), 1);
}
END_TEST

START_TEST(test_stock_legacy)
{
	const char *p[3] = {
		"{\"sku\":\"SKU-1\",\"qty\":4}",
		"{\"sku\":\"NOPE\",\"qty\":2}",
		"{\"sku\":\"SKU-2\",\"qty\":0,\"item_id\":2}",
	};
	struct m2w_outcome o[3];
	double q = -1;

	cfg_use("[stock]\nmode = legacy\n");
	run_n(S, p, 3, o);
	ck_done(o[0]);
	ck_outcome(o[1], M2W_EPERMANENT, M2W_CLASS_PERMANENT);
	ck_message_has(o[1], "doesn't exist");
	ck_done(o[2]);
	ck_assert(fake_legacy_qty(&F, "SKU-1", &q) && q == 4);
	ck_assert(fake_legacy_qty(&F, "SKU-2", &q) && q == 0);
	ck_assert_int_eq(fake_requests(&F,
				       "PUT /V1/products/{sku}/stockItems/{itemId}",
				       NULL), 3);
}
END_TEST

START_TEST(test_stock_legacy_outage)
{
	const char *p[3] = {
		"{\"sku\":\"SKU-1\",\"qty\":4}",
		"{\"sku\":\"SKU-2\",\"qty\":2}",
		"{\"sku\":\"SKU-3\",\"qty\":2}",
	};
	struct m2w_outcome o[3];
	int i;

	cfg_use("[stock]\nmode = legacy\n");
	fake_set_faults(&F, "{\"outage\":true}");
	run_n(S, p, 3, o);
	for (i = 0; i < 3; i++)
		ck_outcome(o[i], M2W_ETRANSIENT, M2W_CLASS_TRANSIENT);
	ck_assert_int_eq(o[0].calls, 1);
	ck_assert_int_eq(o[1].calls, 0); /* not sent after the first */
	ck_message_has(o[1], "not sent");
	ck_assert_int_eq(fake_total_requests(&F), 1);
}
END_TEST

/* ---------------------------------------------------------------- price */

START_TEST(test_price_batch)
{
	const char *p[3] = {
		"{\"sku\":\"SKU-1\",\"price\":12.5}",
		"{\"sku\":\"NOPE\",\"price\":3}",
		"{\"sku\":\"SKU-2\",\"price\":7,\"store_id\":1}",
	};
	struct m2w_outcome o[3];
	double v = -1;

	run_n(P, p, 3, o);
	ck_done(o[0]);
	ck_done(o[2]);
	ck_outcome(o[1], M2W_EPERMANENT, M2W_CLASS_PERMANENT);
	ck_message_has(o[1], "NOPE");
	ck_assert_msg(strchr(o[1].message, '%') == NULL,
		      "placeholders left in \"%s\"", o[1].message);
	ck_assert_int_eq(o[1].calls, 1);
	ck_assert(fake_price(&F, "SKU-1", 0, &v) && v == 12.5);
	ck_assert(fake_price(&F, "SKU-2", 1, &v) && v == 7);
	ck_assert_int_eq(fake_requests(&F, "POST /V1/products/base-prices",
				       NULL), 1);
}
END_TEST

START_TEST(test_price_transient)
{
	const char *p[2] = {
		"{\"sku\":\"SKU-1\",\"price\":1}",
		"{\"sku\":\"SKU-2\",\"price\":2}",
	};
	struct m2w_outcome o[2];

	fake_set_faults(&F, "{\"outage\":true}");
	run_n(P, p, 2, o);
	ck_outcome(o[0], M2W_ETRANSIENT, M2W_CLASS_TRANSIENT);
	ck_outcome(o[1], M2W_ETRANSIENT, M2W_CLASS_TRANSIENT);
	ck_assert_int_eq(o[1].http_status, 503);
	ck_assert_int_gt(o[1].retry_after_ms, 0);
}
END_TEST

/* ----------------------------------------------------------------- rest */

START_TEST(test_rest)
{
	struct m2w_outcome o;

	o = run1(R, "{\"method\":\"GET\",\"path\":\"/orders/1\"}");
	ck_done(o);
	ck_assert_str_eq(o.message, "HTTP 200");
	ck_assert_int_eq(o.http_status, 200);
	ck_assert_int_eq(o.calls, 1);

	o = run1(R, "{\"method\":\"get\",\"path\":\"/orders/999\"}");
	ck_outcome(o, M2W_EPERMANENT, M2W_CLASS_PERMANENT);
	ck_assert_int_eq(o.http_status, 404);

	o = run1(R, "{\"method\":\"POST\",\"path\":\"/shipment/track\","
		    "\"body\":{\"foo\":1}}");
	ck_outcome(o, M2W_EPERMANENT, M2W_CLASS_PERMANENT);
	ck_assert_int_eq(o.http_status, 400);
	ck_message_has(o, "\"foo\" is not supported");

	/* a body that reaches Magento as sent */
	o = run1(R, "{\"method\":\"PUT\",\"path\":\"/products/SKU-2/"
		    "stockItems/2\",\"body\":{\"stockItem\":{\"qty\":9,"
		    "\"is_in_stock\":true}}}");
	ck_done(o);
	{
		double q = -1;

		ck_assert(fake_legacy_qty(&F, "SKU-2", &q) && q == 9);
	}

	o = run1(R, "{\"method\":\"PATCH\",\"path\":\"/orders/1\"}");
	ck_outcome(o, M2W_EINVAL, M2W_CLASS_PERMANENT);
	ck_assert_int_eq(o.calls, 0);
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *jobs_suite(void)
{
	Suite *s = suite_create("jobs");
	TCase *tc;

	tc = tcase_create("pure");
	tcase_add_checked_fixture(tc, setup_pure, NULL);
	tcase_add_test(tc, test_find);
	tcase_add_test(tc, test_outcome_set);
	tcase_add_loop_test(tc, test_check, 0,
			    (int)(sizeof(check_cases) / sizeof(check_cases[0])));
	tcase_add_test(tc, test_check_small_why);
	tcase_add_test(tc, test_keys);
	suite_add_tcase(s, tc);

	tc = tcase_create("tracking");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tracking_create);
	tcase_add_test(tc, test_tracking_second_track);
	tcase_add_test(tc, test_tracking_items);
	tcase_add_test(tc, test_tracking_unknown_order);
	tcase_add_test(tc, test_tracking_canceled);
	tcase_add_test(tc, test_tracking_carriers);
	tcase_add_test(tc, test_tracking_config_extras);
	tcase_add_test(tc, test_tracking_transient);
	tcase_add_test(tc, test_tracking_outage_replay);
	tcase_add_test(tc, test_tracking_replay);
	tcase_add_test(tc, test_tracking_batch);
	tcase_add_test(tc, test_tracking_fresh_read);
	tcase_add_test(tc, test_tracking_bad_payload);
	suite_add_tcase(s, tc);

	tc = tcase_create("stock");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stock_batch);
	tcase_add_test(tc, test_stock_split);
	tcase_add_test(tc, test_stock_source_default);
	tcase_add_test(tc, test_stock_transient);
	tcase_add_test(tc, test_stock_legacy);
	tcase_add_test(tc, test_stock_legacy_outage);
	suite_add_tcase(s, tc);

	tc = tcase_create("price");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_price_batch);
	tcase_add_test(tc, test_price_transient);
	suite_add_tcase(s, tc);

	tc = tcase_create("rest");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rest);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc;

	rc = m2_global_init(eb);
	if (rc != M2W_OK) {
		fprintf(stderr, "m2_global_init: %d (%s): %s\n", rc,
			m2w_strerror(rc), eb);
		return EXIT_FAILURE;
	}
	rc = tu_run("check_jobs", jobs_suite());
	m2_global_cleanup();
	return rc;
}
