/*
 * check_magento.c - the Magento REST client (magento.h) against
 * tools/fake-magento/fake-magento: URL and message helpers, orders,
 * shipments and tracks, stock, prices, the raw call, the three auth modes,
 * error classes (5xx, 429, outage, timeout, refused, not JSON, dropped) and
 * paging.
 *
 * Every test runs in its own forked process (CK_FORK) and starts its own
 * fake (fakeutil.h) on a free port of 127.0.0.1; the fake dies with the
 * test process. Run one case with CK_RUN_CASE=auth, one test with
 * CK_RUN_CASE=auth CK_RUN_TEST=test_auth_admin_shared (libcheck >= 0.13).
 * The fake binary: $FAKE_MAGENTO, else $top_builddir/tools/fake-magento/,
 * else ./tools/fake-magento/ (run from the build directory).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>

#include "m2worker/error.h"
#include "m2worker/magento.h"
#include "testutil.h"
#include "fakeutil.h"

/* Credentials every fake is started with (all modes at once). */
#define TOKEN "tok-integration-123"
#define ADMIN_USER "admin"
#define ADMIN_PASS "s3cret-pass"
#define OA_CK "ck-consumer"
#define OA_CS "cs-consumer-secret"
#define OA_AT "at-access-token"
#define OA_AS "as-access-secret"

#define FAKE_AUTH_ARGS                                                 \
	"--token", TOKEN, "--admin", ADMIN_USER ":" ADMIN_PASS, "--oauth", \
		OA_CK ":" OA_CS ":" OA_AT ":" OA_AS, "--seed", "1"
/* 5 orders, 3 products (order k: items 2k-1 SKU-<((k-1)%3)+1> qty 2 and
 * 2k SKU-<(k%3)+1> qty 1). */
#define FAKE_ARGS "--orders", "5", "--products", "3", FAKE_AUTH_ARGS

/* Route keys of the fake's request counters (GET /_fake/state). */
#define ROUTE_ADMIN_TOKEN "POST /V1/integration/admin/token"
#define ROUTE_ORDERS "GET /V1/orders"

static struct fake F;
static struct m2_client *C;
static struct m2_conn *K;
static struct m2_result R;

/* ------------------------------------------------------------ helpers */

/* rc of a Magento call, with the result in R printed on mismatch. */
#define CK_M2(want, call)                                                   \
	do {                                                                \
		int m2rc_;                                                  \
		memset(&R, 0, sizeof(R));                                   \
		m2rc_ = (call);                                             \
		ck_assert_msg(m2rc_ == (want),                              \
			      "%s\n  returned %d (%s), expected %d (%s); "  \
			      "http %d cls %d retry_after_ms %" PRId64      \
			      " duration_ms %" PRId64 " message \"%s\"",    \
			      #call, m2rc_, m2w_strerror(m2rc_), (int)(want), \
			      m2w_strerror(want), R.http_status, R.cls,     \
			      R.retry_after_ms, R.duration_ms, R.message);  \
	} while (0)

#define CK_M2OK(call) CK_M2(M2W_OK, call)

#define ck_assert_cls(want)                                                \
	ck_assert_msg(R.cls == (want), "cls %d, expected %d (http %d, \"%s\")", \
		      R.cls, (int)(want), R.http_status, R.message)

#define ck_assert_http(want)                                              \
	ck_assert_msg(R.http_status == (want),                            \
		      "http_status %d, expected %d (cls %d, \"%s\")",     \
		      R.http_status, (int)(want), R.cls, R.message)

static void opts_init(struct m2_client_opts *o, const char *url, int auth)
{
	memset(o, 0, sizeof(*o));
	o->base_url = url;
	o->auth = auth;
	switch (auth) {
	case M2_AUTH_TOKEN:
		o->token = TOKEN;
		break;
	case M2_AUTH_ADMIN:
		o->username = ADMIN_USER;
		o->password = ADMIN_PASS;
		break;
	case M2_AUTH_OAUTH:
		o->consumer_key = OA_CK;
		o->consumer_secret = OA_CS;
		o->access_token = OA_AT;
		o->access_token_secret = OA_AS;
		break;
	default:
		break;
	}
	o->connect_timeout_ms = 3000;
	o->timeout_ms = 10000;
}

static struct m2_client *client_new(const struct m2_client_opts *o)
{
	struct m2_client *c = NULL;
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc = m2_client_new(o, &c, eb);

	ck_assert_msg(rc == M2W_OK && c != NULL,
		      "m2_client_new(%s): %d (%s): %s", o->base_url, rc,
		      m2w_strerror(rc), eb);
	return c;
}

static struct m2_conn *conn_new(struct m2_client *c)
{
	struct m2_conn *k = NULL;
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc = m2_conn_new(c, &k, eb);

	ck_assert_msg(rc == M2W_OK && k != NULL, "m2_conn_new: %d (%s): %s",
		      rc, m2w_strerror(rc), eb);
	return k;
}

/* C and K for these options (freed by the teardown). */
static void use_client(const struct m2_client_opts *o)
{
	C = client_new(o);
	K = conn_new(C);
}

/* C and K for the fake F in `auth` mode. */
static void use_fake(int auth)
{
	struct m2_client_opts o;

	opts_init(&o, F.url, auth);
	use_client(&o);
}

static void setup(void)
{
	memset(&F, 0, sizeof(F));
	memset(&R, 0, sizeof(R));
	C = NULL;
	K = NULL;
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

static struct m2_track track(const char *number, const char *carrier,
			     const char *title)
{
	struct m2_track t;

	memset(&t, 0, sizeof(t));
	snprintf(t.track_number, sizeof(t.track_number), "%s", number);
	snprintf(t.carrier_code, sizeof(t.carrier_code), "%s", carrier);
	snprintf(t.title, sizeof(t.title), "%s", title);
	return t;
}

static const struct m2_order_item *order_item(const struct m2_order *o,
					      int64_t item_id)
{
	size_t i;

	for (i = 0; i < o->nitems; i++)
		if (o->items[i].item_id == item_id)
			return &o->items[i];
	ck_abort_msg("order %s has no item %" PRId64, o->increment_id,
		     item_id);
	return NULL;
}

/* ------------------------------------------------- pure: base URL */

static void ck_base(const char *url, const char *store, const char *want)
{
	struct m2_client_opts o;
	struct m2_client *c;

	opts_init(&o, url, M2_AUTH_NONE);
	o.store_code = store;
	c = client_new(&o);
	ck_assert_msg(m2_client_base(c) != NULL, "m2_client_base NULL");
	ck_assert_msg(strcmp(m2_client_base(c), want) == 0,
		      "base_url \"%s\" store %s: base \"%s\", expected \"%s\"",
		      url, store ? store : "NULL", m2_client_base(c), want);
	m2_client_free(c);
}

START_TEST(test_base_url)
{
	ck_base("http://h", NULL, "http://h/rest/default/V1");
	ck_base("http://h/", NULL, "http://h/rest/default/V1");
	ck_base("http://h/rest/V1", NULL, "http://h/rest/V1");
	ck_base("http://h/rest/all/V1/", NULL, "http://h/rest/all/V1");
	ck_base("http://h", "fr", "http://h/rest/fr/V1");
	/* a base that already names /rest/<store>/V1 wins over store_code */
	ck_base("http://h/rest/all/V1", "fr", "http://h/rest/all/V1");
}
END_TEST

/* ------------------------------------------- pure: message filling */

static void ck_fill(const char *msg, const char *params, const char *want)
{
	char out[M2_MESSAGE_MAX + 1];

	memset(out, 'x', sizeof(out));
	m2_message_fill(msg, params, out, sizeof(out));
	ck_assert_msg(strcmp(out, want) == 0,
		      "fill(\"%s\", %s) = \"%s\", expected \"%s\"", msg,
		      params ? params : "NULL", out, want);
}

START_TEST(test_message_fill)
{
	char small[8];

	ck_fill("Order %1 has %2 items.", "[\"42\",\"3\"]",
		"Order 42 has 3 items.");
	ck_fill("\"%fieldName\" is not supported. Correct the field name and "
		"try again.",
		"{\"fieldName\":\"bogus\"}",
		"\"bogus\" is not supported. Correct the field name and try "
		"again.");
	/* the longer name wins: %SKUx is not %SKU followed by "x" */
	ck_fill("%SKU vs %SKUx", "{\"SKU\":\"A\",\"SKUx\":\"B\"}", "A vs B");
	ck_fill("%SKUx vs %SKU", "{\"SKU\":\"A\",\"SKUx\":\"B\"}", "B vs A");
	/* %10 is the tenth, not %1 followed by "0" */
	ck_fill("%10|%1|%11",
		"[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\","
		"\"k\"]",
		"j|a|k");
	/* missing parameters leave the text alone */
	ck_fill("%1 and %2", "[\"a\"]", "a and %2");
	ck_fill("The SKU \"%SKU\" is gone", "{\"other\":\"x\"}",
		"The SKU \"%SKU\" is gone");
	ck_fill("a %1 b %name", "{}", "a %1 b %name");
	ck_fill("a %1 b %name", "[]", "a %1 b %name");
	ck_fill("a %1 b %name", NULL, "a %1 b %name");
	ck_fill("no placeholders", "[\"a\"]", "no placeholders");
	ck_fill("", NULL, "");
	/* numbers as parameters */
	ck_fill("qty %qty", "{\"qty\":3}", "qty 3");
	/* truncated to outlen, always terminated */
	memset(small, 'x', sizeof(small));
	m2_message_fill("abcdefghij", NULL, small, sizeof(small));
	ck_assert_msg(small[sizeof(small) - 1] == '\0' &&
			      strcmp(small, "abcdefg") == 0,
		      "truncation: \"%.8s\"", small);
}
END_TEST

/* ------------------------------------------------ pure: Retry-After */

START_TEST(test_retry_after)
{
	const int64_t now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
	int64_t v;

	v = m2_retry_after_ms("120", now);
	ck_assert_msg(v == 120000, "\"120\": %" PRId64, v);
	v = m2_retry_after_ms("0", now);
	ck_assert_msg(v == 0, "\"0\": %" PRId64, v);
	v = m2_retry_after_ms("Tue, 14 Nov 2023 22:13:50 GMT", now);
	ck_assert_msg(v == 30000, "date +30 s: %" PRId64, v);
	v = m2_retry_after_ms("Tue, 14 Nov 2023 23:13:20 GMT", now);
	ck_assert_msg(v == 3600000, "date +1 h: %" PRId64, v);
	/* a date in the past: nothing to wait for */
	v = m2_retry_after_ms("Tue, 14 Nov 2023 22:00:00 GMT", now);
	ck_assert_msg(v <= 0, "date in the past: %" PRId64, v);
	v = m2_retry_after_ms("soon", now);
	ck_assert_msg(v == 0, "garbage: %" PRId64, v);
	v = m2_retry_after_ms("", now);
	ck_assert_msg(v == 0, "empty: %" PRId64, v);
	v = m2_retry_after_ms(NULL, now);
	ck_assert_msg(v == 0, "NULL: %" PRId64, v);
}
END_TEST

/* ---------------------------------------------------- pure: queries */

START_TEST(test_query)
{
	struct m2_query q;
	const char *s;

	m2_query_init(&q);
	s = m2_query_str(&q);
	ck_assert_msg(s != NULL && strcmp(s, "") == 0, "empty query: \"%s\"",
		      s ? s : "(NULL)");

	m2_query_filter(&q, 0, 0, "increment_id", "a b&c=d", NULL);
	m2_query_filter(&q, 1, 0, "state", "processing,complete", "in");
	m2_query_page(&q, 7, 2);
	m2_query_sort(&q, "created_at", 1);
	m2_query_fields(&q, "items[entity_id,increment_id]");
	ck_assert_int_eq(q.b.failed, 0);
	s = m2_query_str(&q);
	ck_assert_msg(s != NULL, "m2_query_str NULL");
	ck_assert_msg(s[0] != '?', "query starts with '?': %s", s);
	ck_assert_msg(!strchr(s, ' ') && !strchr(s, '[') && !strchr(s, ']'),
		      "raw space or bracket in %s", s);
	ck_assert_msg(strcasestr(s, "searchCriteria%5Bfilter_groups%5D%5B0%5D"
				    "%5Bfilters%5D%5B0%5D%5Bfield%5D="
				    "increment_id"),
		      "field of group 0: %s", s);
	ck_assert_msg(strcasestr(s, "%5Bfilters%5D%5B0%5D%5Bvalue%5D="
				    "a%20b%26c%3Dd") ||
			      strcasestr(s, "%5Bfilters%5D%5B0%5D%5Bvalue%5D="
					    "a+b%26c%3Dd"),
		      "value with space & = not encoded: %s", s);
	ck_assert_msg(strcasestr(s, "searchCriteria%5Bfilter_groups%5D%5B0%5D"
				    "%5Bfilters%5D%5B0%5D%5Bcondition_type%5D"
				    "=eq"),
		      "default condition eq: %s", s);
	ck_assert_msg(strcasestr(s, "searchCriteria%5Bfilter_groups%5D%5B1%5D"
				    "%5Bfilters%5D%5B0%5D%5Bvalue%5D="
				    "processing%2Ccomplete") ||
			      strcasestr(s, "searchCriteria%5Bfilter_groups%5D"
					    "%5B1%5D%5Bfilters%5D%5B0%5D"
					    "%5Bvalue%5D=processing,complete"),
		      "group 1 value: %s", s);
	ck_assert_msg(strcasestr(s, "searchCriteria%5Bfilter_groups%5D%5B1%5D"
				    "%5Bfilters%5D%5B0%5D%5Bcondition_type%5D"
				    "=in"),
		      "condition in: %s", s);
	ck_assert_msg(strcasestr(s, "searchCriteria%5BpageSize%5D=7"),
		      "pageSize: %s", s);
	ck_assert_msg(strcasestr(s, "searchCriteria%5BcurrentPage%5D=2"),
		      "currentPage: %s", s);
	ck_assert_msg(strcasestr(s, "sortOrders") &&
			      strcasestr(s, "created_at") &&
			      strcasestr(s, "=ASC"),
		      "sort: %s", s);
	ck_assert_msg(strcasestr(s, "fields=items%5Bentity_id%2Cincrement_id"
				    "%5D") ||
			      strcasestr(s, "fields=items%5Bentity_id,"
					    "increment_id%5D"),
		      "fields: %s", s);
	ck_assert_msg(strlen(s) == q.b.len || q.b.len == 0,
		      "len %zu vs strlen %zu", q.b.len, strlen(s));
	m2_query_release(&q);
}
END_TEST

/* ---------------------------------------------------- pure: secrets */

START_TEST(test_secret_resolve)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], spec[PATH_MAX + 32];
	char eb[M2W_ERRBUF_SIZE];
	char *out = NULL;
	FILE *fp;
	int rc;

	CK_OK(m2_secret_resolve("plain-value", &out, EB));
	ck_assert_str_eq(out, "plain-value");
	free(out);
	out = NULL;

	setenv("M2W_TEST_SECRET_ENV", "from-env", 1);
	CK_OK(m2_secret_resolve("env:M2W_TEST_SECRET_ENV", &out, EB));
	ck_assert_str_eq(out, "from-env");
	free(out);
	out = NULL;

	tu_mkdtemp(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	fp = fopen(path, "w");
	ck_assert_msg(fp != NULL, "fopen %s", path);
	fputs("from-file\nsecond line\n", fp);
	fclose(fp);
	snprintf(spec, sizeof(spec), "file:%s", path);
	CK_OK(m2_secret_resolve(spec, &out, EB));
	ck_assert_str_eq(out, "from-file");
	free(out);
	out = NULL;

	unsetenv("M2W_TEST_NO_SUCH_VAR");
	eb[0] = '\0';
	rc = m2_secret_resolve("env:M2W_TEST_NO_SUCH_VAR", &out, eb);
	ck_assert_msg(rc == M2W_EINVAL, "missing env: %d (%s)", rc,
		      m2w_strerror(rc));
	ck_assert_msg(strstr(eb, "M2W_TEST_NO_SUCH_VAR") != NULL,
		      "errbuf does not name the variable: \"%s\"", eb);

	snprintf(spec, sizeof(spec), "file:%s/missing", dir);
	eb[0] = '\0';
	out = NULL;
	rc = m2_secret_resolve(spec, &out, eb);
	ck_assert_msg(rc != M2W_OK, "missing file accepted: \"%s\"",
		      out ? out : "");
	ck_assert_msg(eb[0] != '\0', "missing file: empty errbuf");

	/* a first line without end (file:/dev/zero) is an error, bounded */
	eb[0] = '\0';
	out = NULL;
	rc = m2_secret_resolve("file:/dev/zero", &out, eb);
	ck_assert_msg(rc == M2W_EINVAL, "/dev/zero: %d (%s)", rc, eb);
	ck_assert_ptr_nonnull(strstr(eb, "NUL byte"));
	ck_assert_ptr_null(out);

	/* a first line past 8 KiB is an error too */
	fp = fopen(path, "w");
	for (rc = 0; rc < 9000; rc++)
		fputc('s', fp);
	fclose(fp);
	snprintf(spec, sizeof(spec), "file:%s", path);
	eb[0] = '\0';
	rc = m2_secret_resolve(spec, &out, eb);
	ck_assert_msg(rc == M2W_EINVAL, "9000 bytes: %d (%s)", rc, eb);
	ck_assert_ptr_nonnull(strstr(eb, "longer than"));

	/* an empty file is an empty secret (config check refuses it) */
	fp = fopen(path, "w");
	fclose(fp);
	snprintf(spec, sizeof(spec), "file:%s", path);
	CK_OK(m2_secret_resolve(spec, &out, EB));
	ck_assert_str_eq(out, "");
	free(out);
	tu_rmrf(dir);
}
END_TEST

/* ------------------------------------------------------------ orders */

START_TEST(test_order_find)
{
	struct m2_order *o = NULL;
	const struct m2_order_item *it;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	CK_M2OK(m2_order_find(K, "1000000003", &o, &R));
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(o->entity_id, 3);
	ck_assert_str_eq(o->increment_id, "1000000003");
	ck_assert_str_eq(o->state, "processing");
	ck_assert_uint_eq(o->nitems, 2);
	it = order_item(o, 5);
	ck_assert_str_eq(it->sku, "SKU-3");
	ck_assert_double_eq(it->qty_ordered, 2);
	ck_assert_double_eq(it->qty_shipped, 0);
	it = order_item(o, 6);
	ck_assert_str_eq(it->sku, "SKU-1");
	ck_assert_double_eq(it->qty_ordered, 1);
	m2_order_free(o);
	o = NULL;
	ck_assert_int_eq(R.cls, M2W_CLASS_OK);
	ck_assert_str_eq(R.message, "");

	CK_M2(M2W_ENOTFOUND, m2_order_find(K, "999999999", &o, &R));
	ck_assert_cls(M2W_CLASS_PERMANENT);
	ck_assert_ptr_null(o);
}
END_TEST

START_TEST(test_orders_find_many)
{
	const char *const ids[] = { "1000000002", "1000000099", "1000000004" };
	struct m2_order **os = NULL;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	CK_M2OK(m2_orders_find(K, ids, 3, &os, &R));
	ck_assert_ptr_nonnull(os);
	ck_assert_ptr_nonnull(os[0]);
	ck_assert_int_eq(os[0]->entity_id, 2);
	ck_assert_str_eq(os[0]->increment_id, "1000000002");
	ck_assert_uint_eq(os[0]->nitems, 2);
	ck_assert_ptr_null(os[1]);
	ck_assert_ptr_nonnull(os[2]);
	ck_assert_int_eq(os[2]->entity_id, 4);
	ck_assert_str_eq(os[2]->increment_id, "1000000004");
	m2_orders_free(os, 3);
}
END_TEST

/* --------------------------------------------------------- shipments */

START_TEST(test_ship_and_track)
{
	struct m2_shipment *s = NULL;
	struct m2_track t1 = track("1ZTEST0000000001", "ups", "UPS");
	struct m2_track t2 = track("1ZTEST0000000002", "ups", "UPS");
	struct m2_ship_req req;
	int64_t sid = 0;
	size_t n = 99;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	CK_M2OK(m2_shipments_list(K, 1, &s, &n, &R));
	ck_assert_uint_eq(n, 0);
	m2_shipments_free(s, n);
	s = NULL;

	memset(&req, 0, sizeof(req));
	req.order_id = 1;
	req.notify = 0;
	req.comment = "shipped by m2worker tests";
	req.tracks = &t1;
	req.ntracks = 1;
	req.source_code = "default";
	CK_M2OK(m2_ship_create(K, &req, &sid, &R));
	ck_assert_msg(sid > 0, "shipment id %" PRId64, sid);

	CK_M2OK(m2_shipments_list(K, 1, &s, &n, &R));
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(s[0].id, sid);
	ck_assert_uint_eq(s[0].ntracks, 1);
	ck_assert_str_eq(s[0].tracks[0].track_number, t1.track_number);
	ck_assert_str_eq(s[0].tracks[0].carrier_code, "ups");
	ck_assert_str_eq(s[0].tracks[0].title, "UPS");
	m2_shipments_free(s, n);
	s = NULL;

	CK_M2OK(m2_track_add(K, 1, sid, &t2, &R));
	CK_M2OK(m2_shipments_list(K, 1, &s, &n, &R));
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(s[0].ntracks, 2);
	ck_assert_msg((strcmp(s[0].tracks[0].track_number, t1.track_number) ==
			       0 &&
		       strcmp(s[0].tracks[1].track_number, t2.track_number) ==
			       0) ||
			      (strcmp(s[0].tracks[1].track_number,
				      t1.track_number) == 0 &&
			       strcmp(s[0].tracks[0].track_number,
				      t2.track_number) == 0),
		      "tracks %s, %s", s[0].tracks[0].track_number,
		      s[0].tracks[1].track_number);
	m2_shipments_free(s, n);

	ck_assert_int_eq(fake_track_count(&F, t1.track_number), 1);
	ck_assert_int_eq(fake_track_count(&F, t2.track_number), 1);
	ck_assert_int_eq(fake_shipments(&F, "1000000001"), 1);
	/* the other orders are untouched */
	ck_assert_int_eq(fake_shipments(&F, "1000000002"), 0);
}
END_TEST

START_TEST(test_ship_nothing_left)
{
	struct m2_ship_req req;
	int64_t sid = 0;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	memset(&req, 0, sizeof(req));
	req.order_id = 1;
	CK_M2OK(m2_ship_create(K, &req, &sid, &R));
	ck_assert_msg(sid > 0, "shipment id %" PRId64, sid);

	CK_M2(M2W_EPERMANENT, m2_ship_create(K, &req, &sid, &R));
	ck_assert_http(400);
	ck_assert_cls(M2W_CLASS_PERMANENT);
	ck_assert_msg(strstr(R.message, "does not allow a shipment") != NULL,
		      "message: \"%s\"", R.message);
	ck_assert_int_eq(fake_shipments(&F, "1000000001"), 1);
}
END_TEST

START_TEST(test_ship_canceled)
{
	struct m2_ship_req req;
	int64_t sid = 0;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);
	fake_set_order_state(&F, "1000000002", "canceled");

	memset(&req, 0, sizeof(req));
	req.order_id = 2;
	CK_M2(M2W_EPERMANENT, m2_ship_create(K, &req, &sid, &R));
	ck_assert_http(400);
	ck_assert_cls(M2W_CLASS_PERMANENT);
	ck_assert_msg(strstr(R.message, "does not allow a shipment") != NULL,
		      "message: \"%s\"", R.message);
	ck_assert_int_eq(fake_shipments(&F, "1000000002"), 0);
}
END_TEST

START_TEST(test_ship_unknown_order)
{
	struct m2_ship_req req;
	int64_t sid = 0;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	memset(&req, 0, sizeof(req));
	req.order_id = 9999;
	CK_M2(M2W_EPERMANENT, m2_ship_create(K, &req, &sid, &R));
	ck_assert_http(404);
	ck_assert_cls(M2W_CLASS_PERMANENT);
	ck_assert_msg(strstr(R.message, "doesn't exist") != NULL,
		      "message: \"%s\"", R.message);
}
END_TEST

START_TEST(test_ship_items_subset)
{
	const struct m2_ship_item first[] = { { 5, 2 } };
	struct m2_ship_req req;
	struct m2_order *o = NULL;
	int64_t sid1 = 0, sid2 = 0;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	memset(&req, 0, sizeof(req));
	req.order_id = 3;
	req.items = first;
	req.nitems = 1;
	CK_M2OK(m2_ship_create(K, &req, &sid1, &R));
	ck_assert_msg(sid1 > 0, "shipment id %" PRId64, sid1);

	CK_M2OK(m2_order_find(K, "1000000003", &o, &R));
	ck_assert_double_eq(order_item(o, 5)->qty_shipped, 2);
	ck_assert_double_eq(order_item(o, 6)->qty_shipped, 0);
	m2_order_free(o);
	o = NULL;

	/* what is left (item 6) can still be shipped, once */
	memset(&req, 0, sizeof(req));
	req.order_id = 3;
	CK_M2OK(m2_ship_create(K, &req, &sid2, &R));
	ck_assert_msg(sid2 > 0 && sid2 != sid1, "second shipment id %" PRId64
		      " (first %" PRId64 ")", sid2, sid1);
	CK_M2OK(m2_order_find(K, "1000000003", &o, &R));
	ck_assert_double_eq(order_item(o, 5)->qty_shipped, 2);
	ck_assert_double_eq(order_item(o, 6)->qty_shipped, 1);
	m2_order_free(o);
	CK_M2(M2W_EPERMANENT, m2_ship_create(K, &req, &sid2, &R));
	ck_assert_http(400);
	ck_assert_int_eq(fake_shipments(&F, "1000000003"), 2);
}
END_TEST

/* Posting the same track twice makes two tracks: why the worker reads the
 * shipment's tracks before it adds one. */
START_TEST(test_track_not_idempotent)
{
	struct m2_track t = track("TRK-DUP-1", "custom", "Local courier");
	struct m2_shipment *s = NULL;
	struct m2_ship_req req;
	int64_t sid = 0;
	size_t n = 0;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	memset(&req, 0, sizeof(req));
	req.order_id = 4;
	CK_M2OK(m2_ship_create(K, &req, &sid, &R));
	CK_M2OK(m2_track_add(K, 4, sid, &t, &R));
	CK_M2OK(m2_track_add(K, 4, sid, &t, &R));
	ck_assert_int_eq(fake_track_count(&F, "TRK-DUP-1"), 2);

	CK_M2OK(m2_shipments_list(K, 4, &s, &n, &R));
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(s[0].ntracks, 2);
	ck_assert_str_eq(s[0].tracks[0].track_number, "TRK-DUP-1");
	ck_assert_str_eq(s[0].tracks[1].track_number, "TRK-DUP-1");
	ck_assert_str_eq(s[0].tracks[0].carrier_code, "custom");
	ck_assert_str_eq(s[0].tracks[0].title, "Local courier");
	m2_shipments_free(s, n);
}
END_TEST

/* ------------------------------------------------------------- stock */

START_TEST(test_source_items)
{
	const struct m2_source_item rows[] = {
		{ "SKU-1", "default", 17, 1 },
		{ "SKU-2", "warehouse-2", 0, 0 },
	};
	const struct m2_source_item bad[] = {
		{ "SKU-3", NULL, 4, 1 },
		{ "NOPE", NULL, 1, 1 },
	};
	double q = -1;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	CK_M2OK(m2_source_items_save(K, rows, 2, &R));
	ck_assert_msg(fake_stock_qty(&F, "SKU-1", "default", &q),
		      "no stock SKU-1/default in the fake's state");
	ck_assert_double_eq(q, 17);
	ck_assert_msg(fake_stock_qty(&F, "SKU-2", "warehouse-2", &q),
		      "no stock SKU-2/warehouse-2 in the fake's state");
	ck_assert_double_eq(q, 0);
	ck_assert_int_eq(fake_stock_status(&F, "SKU-1", "default"), 1);
	ck_assert_int_eq(fake_stock_status(&F, "SKU-2", "warehouse-2"), 0);

	CK_M2(M2W_EPERMANENT, m2_source_items_save(K, bad, 2, &R));
	ck_assert_http(400);
	ck_assert_cls(M2W_CLASS_PERMANENT);
	ck_assert_msg(strstr(R.message, "Validation Failed") != NULL,
		      "message: \"%s\"", R.message);
	ck_assert_msg(strstr(R.message, "NOPE") != NULL,
		      "errors[] not filled in: \"%s\"", R.message);
	ck_assert_msg(strcasestr(R.message, "%sku") == NULL &&
			      strstr(R.message, "%1") == NULL,
		      "placeholder left: \"%s\"", R.message);
}
END_TEST

START_TEST(test_legacy_stock)
{
	double q = -1;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	CK_M2OK(m2_stock_item_update(K, "SKU-2", 1, 7, 1, &R));
	ck_assert_msg(fake_legacy_qty(&F, "SKU-2", &q),
		      "no legacy stock SKU-2 in the fake's state");
	ck_assert_double_eq(q, 7);

	CK_M2(M2W_EPERMANENT, m2_stock_item_update(K, "NOPE", 1, 7, 1, &R));
	ck_assert_http(404);
	ck_assert_cls(M2W_CLASS_PERMANENT);
}
END_TEST

/* ------------------------------------------------------------ prices */

START_TEST(test_base_prices)
{
	const struct m2_price p[] = {
		{ "SKU-1", 0, 19.5 },
		{ "NOPE", 0, 5 },
		{ "SKU-2", 0, 21.25 },
	};
	char **errs = NULL;
	double v = -1;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	CK_M2OK(m2_base_prices_save(K, p, 3, &errs, &R));
	ck_assert_http(200);
	ck_assert_ptr_nonnull(errs);
	ck_assert_msg(errs[0] == NULL, "row 0: \"%s\"", errs[0]);
	ck_assert_msg(errs[2] == NULL, "row 2: \"%s\"", errs[2]);
	ck_assert_msg(errs[1] != NULL, "row 1 (NOPE) has no error");
	ck_assert_msg(strstr(errs[1], "\"NOPE\"") != NULL &&
			      strstr(errs[1], "%SKU") == NULL,
		      "row 1: \"%s\"", errs[1]);
	m2_row_errors_free(errs, 3);

	ck_assert_msg(fake_price(&F, "SKU-1", 0, &v), "no price SKU-1/0");
	ck_assert_double_eq_tol(v, 19.5, 1e-9);
	ck_assert_msg(fake_price(&F, "SKU-2", 0, &v), "no price SKU-2/0");
	ck_assert_double_eq_tol(v, 21.25, 1e-9);
	ck_assert_msg(!fake_price(&F, "NOPE", 0, &v), "NOPE got a price");

	/* all rows fine: row_errors all NULL; row_errors may be NULL */
	CK_M2OK(m2_base_prices_save(K, p, 1, &errs, &R));
	ck_assert_msg(errs == NULL || errs[0] == NULL, "row 0: \"%s\"",
		      errs ? errs[0] : "");
	if (errs)
		m2_row_errors_free(errs, 1);
	CK_M2OK(m2_base_prices_save(K, p + 2, 1, NULL, &R));
}
END_TEST

/* --------------------------------------------------------------- raw */

START_TEST(test_raw_request)
{
	struct m2_response resp;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	memset(&resp, 0, sizeof(resp));
	CK_M2OK(m2_request(K, "GET", "/orders/1", NULL, &resp, &R));
	ck_assert_int_eq(resp.status, 200);
	ck_assert_http(200);
	ck_assert_ptr_nonnull(resp.body);
	ck_assert_uint_eq(strlen(resp.body), resp.len);
	ck_assert_msg(strstr(resp.body, "increment_id") &&
			      strstr(resp.body, "1000000001"),
		      "body: %.300s", resp.body);
	m2_response_free(&resp);

	CK_M2OK(m2_request(K, "GET", "/orders/2", NULL, NULL, &R));

	memset(&resp, 0, sizeof(resp));
	CK_M2(M2W_EPERMANENT,
	      m2_request(K, "POST", "/order/1/ship", "{\"bogus\":true}", &resp,
			 &R));
	ck_assert_http(400);
	ck_assert_cls(M2W_CLASS_PERMANENT);
	ck_assert_str_eq(R.message, "\"bogus\" is not supported. Correct the "
				    "field name and try again.");
	ck_assert_int_eq(resp.status, 400);
	ck_assert_msg(resp.body && strstr(resp.body, "%fieldName"),
		      "raw body should be Magento's: %s",
		      resp.body ? resp.body : "(NULL)");
	m2_response_free(&resp);
	ck_assert_int_eq(fake_shipments(&F, "1000000001"), 0);

	memset(&resp, 0, sizeof(resp));
	CK_M2(M2W_EPERMANENT,
	      m2_request(K, "GET", "/orders/9999", NULL, &resp, &R));
	ck_assert_http(404);
	ck_assert_int_eq(resp.status, 404);
	ck_assert_msg(strstr(R.message, "The entity that was requested "
					"doesn't exist") != NULL,
		      "message: \"%s\"", R.message);
	m2_response_free(&resp);
}
END_TEST

/* -------------------------------------------------------------- auth */

START_TEST(test_auth_bearer)
{
	struct m2_client_opts o;
	struct m2_order *ord = NULL;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);
	CK_M2OK(m2_order_find(K, "1000000001", &ord, &R));
	m2_order_free(ord);
	ord = NULL;
	m2_conn_free(K);
	m2_client_free(C);
	K = NULL;
	C = NULL;

	opts_init(&o, F.url, M2_AUTH_TOKEN);
	o.token = "wrong-token-xyz";
	use_client(&o);
	CK_M2(M2W_EAUTH, m2_order_find(K, "1000000001", &ord, &R));
	ck_assert_cls(M2W_CLASS_AUTH);
	ck_assert_http(401);
	ck_assert_ptr_null(ord);
	ck_assert_msg(strstr(R.message, "wrong-token-xyz") == NULL,
		      "token in the message: \"%s\"", R.message);
}
END_TEST

#define ADMIN_THREADS 4
#define ADMIN_CALLS 5

struct admin_worker {
	struct m2_client *c;
	pthread_barrier_t *bar;
	int ok;
	int first_bad_rc;
	struct m2_result bad;
};

static void *admin_worker_main(void *arg)
{
	struct admin_worker *w = (struct admin_worker *)arg;
	struct m2_conn *k = NULL;
	char eb[M2W_ERRBUF_SIZE] = "";
	int i, rc;

	rc = m2_conn_new(w->c, &k, eb);
	pthread_barrier_wait(w->bar);
	if (rc != M2W_OK) {
		w->first_bad_rc = rc;
		snprintf(w->bad.message, sizeof(w->bad.message),
			 "m2_conn_new: %s", eb);
		return NULL;
	}
	for (i = 0; i < ADMIN_CALLS; i++) {
		struct m2_result res;
		char path[32];

		memset(&res, 0, sizeof(res));
		snprintf(path, sizeof(path), "/orders/%d", i + 1);
		rc = m2_request(k, "GET", path, NULL, NULL, &res);
		if (rc == M2W_OK) {
			w->ok++;
		} else if (!w->first_bad_rc) {
			w->first_bad_rc = rc;
			w->bad = res;
		}
	}
	m2_conn_free(k);
	return NULL;
}

/* One admin login serves every thread; a 401 renews it once. */
START_TEST(test_auth_admin_shared)
{
	struct admin_worker w[ADMIN_THREADS];
	struct m2_client_stats cs;
	pthread_t th[ADMIN_THREADS];
	pthread_barrier_t bar;
	int i;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_ADMIN);

	pthread_barrier_init(&bar, NULL, ADMIN_THREADS);
	for (i = 0; i < ADMIN_THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].c = C;
		w[i].bar = &bar;
		ck_assert_int_eq(pthread_create(&th[i], NULL,
						admin_worker_main, &w[i]), 0);
	}
	for (i = 0; i < ADMIN_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	for (i = 0; i < ADMIN_THREADS; i++)
		ck_assert_msg(w[i].ok == ADMIN_CALLS,
			      "thread %d: %d of %d calls OK; first failure %d "
			      "(%s) http %d: \"%s\"",
			      i, w[i].ok, ADMIN_CALLS, w[i].first_bad_rc,
			      m2w_strerror(w[i].first_bad_rc),
			      w[i].bad.http_status, w[i].bad.message);
	ck_assert_int_eq(fake_requests(&F, ROUTE_ADMIN_TOKEN, NULL), 1);
	ck_assert_int_eq(fake_requests(&F, ROUTE_ADMIN_TOKEN, "200"), 1);
	ck_assert_int_eq(fake_admin_logins(&F, "ok"), 1);
	ck_assert_int_eq(fake_admin_logins(&F, "failed"), 0);
	m2_client_get_stats(C, &cs);   /* the first login renews nothing */
	ck_assert_uint_eq(cs.token_renewals_401, 0);
	ck_assert_uint_eq(cs.token_renewals_expiry, 0);

	/* the fake forgets the token: the next call gets a 401, logs in
	 * once more and succeeds; that renewal is counted */
	fake_expire_tokens(&F);
	CK_M2OK(m2_request(K, "GET", "/orders/1", NULL, NULL, &R));
	ck_assert_int_eq(fake_requests(&F, ROUTE_ADMIN_TOKEN, NULL), 2);
	ck_assert_int_eq(fake_admin_logins(&F, "ok"), 2);
	m2_client_get_stats(C, &cs);
	ck_assert_uint_eq(cs.token_renewals_401, 1);
	ck_assert_uint_eq(cs.token_renewals_expiry, 0);
	CK_M2OK(m2_request(K, "GET", "/orders/2", NULL, NULL, &R));
	ck_assert_int_eq(fake_requests(&F, ROUTE_ADMIN_TOKEN, NULL), 2);
	m2_client_get_stats(C, &cs);
	ck_assert_uint_eq(cs.token_renewals_401, 1);
}
END_TEST

/* A rejected password is never sent again until m2_client_reset_auth. */
START_TEST(test_auth_admin_wrong_password)
{
	struct m2_client_stats cs;
	struct m2_client_opts o;
	int i;

	fake_start(&F, FAKE_ARGS);
	opts_init(&o, F.url, M2_AUTH_ADMIN);
	o.password = "wrong-pass-987";
	use_client(&o);

	CK_M2(M2W_EAUTH, m2_request(K, "GET", "/orders/1", NULL, NULL, &R));
	ck_assert_cls(M2W_CLASS_AUTH);
	ck_assert_http(401);
	ck_assert_msg(strstr(R.message, "wrong-pass-987") == NULL,
		      "password in the message: \"%s\"", R.message);
	ck_assert_int_eq(fake_admin_logins(&F, "failed"), 1);

	for (i = 0; i < 10; i++) {
		CK_M2(M2W_EAUTH,
		      m2_request(K, "GET", "/orders/1", NULL, NULL, &R));
		ck_assert_cls(M2W_CLASS_AUTH);
		ck_assert_msg(strstr(R.message, "wrong-pass-987") == NULL,
			      "password in the message: \"%s\"", R.message);
	}
	ck_assert_int_eq(fake_admin_logins(&F, "failed"), 1);
	ck_assert_int_eq(fake_admin_logins(&F, "ok"), 0);
	ck_assert_int_eq(fake_admin_logins(&F, "locked"), 0);
	ck_assert_int_eq(fake_requests(&F, ROUTE_ADMIN_TOKEN, NULL), 1);

	m2_client_reset_auth(C);
	CK_M2(M2W_EAUTH, m2_request(K, "GET", "/orders/1", NULL, NULL, &R));
	ck_assert_cls(M2W_CLASS_AUTH);
	ck_assert_int_eq(fake_admin_logins(&F, "failed"), 2);
	CK_M2(M2W_EAUTH, m2_request(K, "GET", "/orders/1", NULL, NULL, &R));
	ck_assert_int_eq(fake_admin_logins(&F, "failed"), 2);
	m2_client_get_stats(C, &cs);   /* refused logins renew nothing */
	ck_assert_uint_eq(cs.token_renewals_401 + cs.token_renewals_expiry, 0);
}
END_TEST

/* Tokens that expire: calls keep working (renewed before expiry or on
 * the 401), each renewal counted by its reason. */
START_TEST(test_auth_admin_token_ttl)
{
	struct m2_client_stats cs;
	struct m2_client_opts o;

	fake_start(&F, FAKE_ARGS, "--admin-token-ttl", "2");
	opts_init(&o, F.url, M2_AUTH_ADMIN);
	o.admin_token_ttl_s = 2;
	use_client(&o);

	CK_M2OK(m2_request(K, "GET", "/orders/1", NULL, NULL, &R));
	CK_M2OK(m2_request(K, "GET", "/orders/2", NULL, NULL, &R));
	sleep(3);
	CK_M2OK(m2_request(K, "GET", "/orders/3", NULL, NULL, &R));
	CK_M2OK(m2_request(K, "GET", "/orders/4", NULL, NULL, &R));
	ck_assert_int_ge(fake_admin_logins(&F, "ok"), 2);
	ck_assert_int_eq(fake_admin_logins(&F, "failed"), 0);
	/* a 2 s token is always within the 60 s before its expiry: every
	 * login after the first renews it, none after a 401 */
	m2_client_get_stats(C, &cs);
	ck_assert_uint_eq(cs.token_renewals_expiry,
			  (unsigned)fake_admin_logins(&F, "ok") - 1);
	ck_assert_uint_eq(cs.token_renewals_401, 0);
}
END_TEST

START_TEST(test_auth_oauth)
{
	struct m2_client_opts o;
	struct m2_order *ord = NULL;
	const struct m2_source_item row = { "SKU-3", "default", 9, 1 };
	int i;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_OAUTH);

	CK_M2OK(m2_request(K, "GET", "/orders/1", NULL, NULL, &R));
	/* a GET with a query: the query parameters are signed too */
	CK_M2OK(m2_order_find(K, "1000000002", &ord, &R));
	ck_assert_int_eq(ord->entity_id, 2);
	m2_order_free(ord);
	ord = NULL;
	/* a POST (the JSON body is not signed) */
	CK_M2OK(m2_source_items_save(K, &row, 1, &R));
	/* every request a fresh nonce: the fake refuses a reused one */
	for (i = 0; i < 5; i++)
		CK_M2OK(m2_request(K, "GET", "/orders/1", NULL, NULL, &R));
	ck_assert_int_eq(fake_requests_with_status(&F, "401"), 0);
	ck_assert_int_eq(fake_requests_with_status(&F, "400"), 0);
	m2_conn_free(K);
	m2_client_free(C);
	K = NULL;
	C = NULL;

	opts_init(&o, F.url, M2_AUTH_OAUTH);
	o.consumer_secret = "not-the-secret";
	use_client(&o);
	CK_M2(M2W_EAUTH, m2_order_find(K, "1000000001", &ord, &R));
	ck_assert_cls(M2W_CLASS_AUTH);
	ck_assert_http(401);
	ck_assert_msg(strstr(R.message, "not-the-secret") == NULL,
		      "secret in the message: \"%s\"", R.message);
}
END_TEST

/* ------------------------------------------------------ error classes */

START_TEST(test_err_503_retry_after)
{
	struct m2_order *o = NULL;

	fake_start(&F, FAKE_ARGS, "--fail-rate", "1", "--fail-status", "503",
		   "--retry-after", "7");
	use_fake(M2_AUTH_TOKEN);

	CK_M2(M2W_ETRANSIENT, m2_order_find(K, "1000000001", &o, &R));
	ck_assert_cls(M2W_CLASS_TRANSIENT);
	ck_assert_http(503);
	ck_assert_int_eq(R.retry_after_ms, 7000);
	ck_assert_msg(R.message[0] != '\0', "empty message");
	ck_assert_ptr_null(o);

	/* the same through the raw call */
	CK_M2(M2W_ETRANSIENT, m2_request(K, "GET", "/orders/1", NULL, NULL,
					 &R));
	ck_assert_http(503);
	ck_assert_int_eq(R.retry_after_ms, 7000);
}
END_TEST

START_TEST(test_err_500)
{
	struct m2_order *o = NULL;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);
	fake_set_faults(&F, "{\"fail_rate\":1,\"fail_status\":500}");

	CK_M2(M2W_ETRANSIENT, m2_order_find(K, "1000000001", &o, &R));
	ck_assert_cls(M2W_CLASS_TRANSIENT);
	ck_assert_http(500);
	ck_assert_msg(R.message[0] != '\0', "empty message");

	fake_set_faults(&F, "{\"fail_rate\":0}");
	CK_M2OK(m2_order_find(K, "1000000001", &o, &R));
	m2_order_free(o);
}
END_TEST

START_TEST(test_err_rate_limit)
{
	int i, n429 = 0, nok = 0;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);
	fake_set_faults(&F, "{\"rate_limit\":1,\"retry_after\":2}");

	for (i = 0; i < 5; i++) {
		struct m2_result res;
		int rc;

		memset(&res, 0, sizeof(res));
		rc = m2_request(K, "GET", "/orders/1", NULL, NULL, &res);
		if (rc == M2W_OK) {
			nok++;
			continue;
		}
		ck_assert_msg(rc == M2W_ETRANSIENT && res.http_status == 429,
			      "call %d: %d (%s) http %d: \"%s\"", i, rc,
			      m2w_strerror(rc), res.http_status, res.message);
		ck_assert_int_eq(res.cls, M2W_CLASS_TRANSIENT);
		ck_assert_msg(res.retry_after_ms > 0,
			      "429 without retry_after_ms");
		n429++;
	}
	ck_assert_msg(n429 >= 1, "no 429 in 5 quick calls (%d OK)", nok);
}
END_TEST

START_TEST(test_err_outage)
{
	struct m2_order *o = NULL;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);

	fake_set_faults(&F, "{\"outage\":true}");
	CK_M2(M2W_ETRANSIENT, m2_order_find(K, "1000000001", &o, &R));
	ck_assert_cls(M2W_CLASS_TRANSIENT);
	CK_M2(M2W_ETRANSIENT,
	      m2_request(K, "GET", "/orders/1", NULL, NULL, &R));

	fake_set_faults(&F, "{\"outage\":false}");
	CK_M2OK(m2_order_find(K, "1000000001", &o, &R));
	ck_assert_int_eq(o->entity_id, 1);
	m2_order_free(o);
}
END_TEST

START_TEST(test_err_timeout)
{
	struct m2_client_opts o;
	int64_t t0, took;

	fake_start(&F, FAKE_ARGS);
	opts_init(&o, F.url, M2_AUTH_TOKEN);
	o.timeout_ms = 300;
	use_client(&o);
	fake_set_faults(&F, "{\"latency_ms\":1500}");

	t0 = fake_mono_ms();
	CK_M2(M2W_ETRANSIENT,
	      m2_request(K, "GET", "/orders/1", NULL, NULL, &R));
	took = fake_mono_ms() - t0;
	ck_assert_cls(M2W_CLASS_TRANSIENT);
	ck_assert_http(0);
	ck_assert_msg(strcasestr(R.message, "timeout") ||
			      strcasestr(R.message, "timed out"),
		      "message does not say timeout: \"%s\"", R.message);
	ck_assert_msg(R.duration_ms > 0 && R.duration_ms < 1400,
		      "duration_ms %" PRId64, R.duration_ms);
	ck_assert_msg(took < 1400, "the call took %" PRId64 " ms", took);
}
END_TEST

START_TEST(test_err_refused)
{
	struct m2_client_opts o;
	struct m2_order *ord = NULL;
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", fake_free_port());
	opts_init(&o, url, M2_AUTH_TOKEN);
	use_client(&o);
	CK_M2(M2W_ETRANSIENT, m2_order_find(K, "1000000001", &ord, &R));
	ck_assert_cls(M2W_CLASS_TRANSIENT);
	ck_assert_http(0);
	ck_assert_msg(R.message[0] != '\0', "empty message");
	ck_assert_ptr_null(ord);
}
END_TEST

static char *canned_response(int status, const char *reason,
			     const char *ctype, const char *body)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
		 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu"
		 "\r\nConnection: close\r\n\r\n%s",
		 status, reason, ctype, strlen(body), body);
	return buf;
}

START_TEST(test_err_not_json)
{
	struct fake_canned srv;
	struct m2_client_opts o;
	struct m2_order *ord = NULL;

	fake_canned_start(&srv, canned_response(200, "OK", "text/html",
						"<html>maintenance</html>"));
	opts_init(&o, srv.url, M2_AUTH_TOKEN);
	use_client(&o);
	CK_M2(M2W_EPROTO, m2_order_find(K, "1000000001", &ord, &R));
	ck_assert_http(200);
	ck_assert_ptr_null(ord);
	ck_assert_msg(R.message[0] != '\0', "empty message");
	fake_canned_stop(&srv);
}
END_TEST

START_TEST(test_err_502_html)
{
	struct fake_canned srv;
	struct m2_client_opts o;
	struct m2_order *ord = NULL;

	fake_canned_start(&srv,
			  canned_response(502, "Bad Gateway", "text/html",
					  "<html><body>502 Bad Gateway</body>"
					  "</html>"));
	opts_init(&o, srv.url, M2_AUTH_TOKEN);
	use_client(&o);
	CK_M2(M2W_ETRANSIENT, m2_order_find(K, "1000000001", &ord, &R));
	ck_assert_cls(M2W_CLASS_TRANSIENT);
	ck_assert_http(502);
	ck_assert_msg(strncmp(R.message, "HTTP 502", 8) == 0,
		      "message: \"%s\"", R.message);
	ck_assert_ptr_null(ord);
	fake_canned_stop(&srv);
}
END_TEST

START_TEST(test_err_dropped)
{
	struct m2_order *o = NULL;

	fake_start(&F, FAKE_ARGS);
	use_fake(M2_AUTH_TOKEN);
	fake_set_faults(&F, "{\"drop_rate\":1}");

	CK_M2(M2W_ETRANSIENT, m2_order_find(K, "1000000001", &o, &R));
	ck_assert_cls(M2W_CLASS_TRANSIENT);
	ck_assert_http(0);
	ck_assert_msg(R.message[0] != '\0', "empty message");

	fake_set_faults(&F, "{\"drop_rate\":0}");
	CK_M2OK(m2_order_find(K, "1000000001", &o, &R));
	m2_order_free(o);
}
END_TEST

/* ------------------------------------------------------------ paging */

struct visit {
	int seen[64];
	int count;
	int bad;
	int stop_after;
};

static int visit_order(const char *item_json, void *arg)
{
	struct visit *v = (struct visit *)arg;
	json_object *j = json_tokener_parse(item_json), *id = NULL;
	int64_t eid = -1;

	if (j && json_object_object_get_ex(j, "entity_id", &id))
		eid = json_object_get_int64(id);
	json_object_put(j);
	if (eid >= 0 && eid < 64)
		v->seen[eid]++;
	else
		v->bad++;
	v->count++;
	if (v->stop_after && v->count == v->stop_after)
		return 42;
	return 0;
}

START_TEST(test_search_paging)
{
	struct visit v;
	struct m2_query q;
	int i, rc;

	fake_start(&F, "--orders", "25", "--products", "3", FAKE_AUTH_ARGS);
	use_fake(M2_AUTH_TOKEN);
	m2_query_init(&q);

	memset(&v, 0, sizeof(v));
	CK_M2OK(m2_search_each(K, "/orders", &q, 7, visit_order, &v, &R));
	ck_assert_int_eq(v.bad, 0);
	ck_assert_int_eq(v.count, 25);
	for (i = 1; i <= 25; i++)
		ck_assert_msg(v.seen[i] == 1, "order %d seen %d times", i,
			      v.seen[i]);
	/* 25 / 7: four pages, no fifth past total_count */
	ck_assert_int_eq(fake_requests(&F, ROUTE_ORDERS, "200"), 4);

	/* a non-zero return from the callback stops the walk */
	memset(&v, 0, sizeof(v));
	v.stop_after = 10;
	memset(&R, 0, sizeof(R));
	rc = m2_search_each(K, "/orders", &q, 7, visit_order, &v, &R);
	ck_assert_int_eq(rc, 42);
	ck_assert_int_eq(v.count, 10);

	/* with a filter */
	m2_query_filter(&q, 0, 0, "increment_id", "1000000003,1000000020",
			"in");
	memset(&v, 0, sizeof(v));
	CK_M2OK(m2_search_each(K, "/orders", &q, 7, visit_order, &v, &R));
	ck_assert_int_eq(v.count, 2);
	ck_assert_int_eq(v.seen[3], 1);
	ck_assert_int_eq(v.seen[20], 1);
	m2_query_release(&q);
}
END_TEST

/* -------------------------------------------------------------- suite */

/* The client's rate limit spaces requests 1/rate apart: 11 calls at 20/s
 * take at least 500 ms (a lower bound only: a slow machine is slower). */
START_TEST(test_rate_limit)
{
	struct m2_client_opts o;
	struct m2_order *ord = NULL;
	int64_t t0, ms;
	int i;

	fake_start(&F, "--orders", "3", "--products", "3", FAKE_AUTH_ARGS);
	opts_init(&o, F.url, M2_AUTH_TOKEN);
	o.rate_limit = 20;
	use_client(&o);
	t0 = fake_mono_ms();
	for (i = 0; i < 11; i++) {
		CK_M2OK(m2_order_find(K, "1000000001", &ord, &R));
		m2_order_free(ord);
	}
	ms = fake_mono_ms() - t0;
	ck_assert_msg(ms >= 480, "11 calls at 20/s took %lld ms", (long long)ms);
}
END_TEST

static TCase *tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *magento_suite(void)
{
	Suite *s = suite_create("magento");
	TCase *tc;

	tc = tcase(s, "pure");
	tcase_add_test(tc, test_base_url);
	tcase_add_test(tc, test_message_fill);
	tcase_add_test(tc, test_retry_after);
	tcase_add_test(tc, test_query);
	tcase_add_test(tc, test_secret_resolve);

	tc = tcase(s, "orders");
	tcase_add_test(tc, test_order_find);
	tcase_add_test(tc, test_orders_find_many);

	tc = tcase(s, "shipments");
	tcase_add_test(tc, test_ship_and_track);
	tcase_add_test(tc, test_ship_nothing_left);
	tcase_add_test(tc, test_ship_canceled);
	tcase_add_test(tc, test_ship_unknown_order);
	tcase_add_test(tc, test_ship_items_subset);
	tcase_add_test(tc, test_track_not_idempotent);

	tc = tcase(s, "stock");
	tcase_add_test(tc, test_source_items);
	tcase_add_test(tc, test_legacy_stock);
	tcase_add_test(tc, test_base_prices);

	tc = tcase(s, "raw");
	tcase_add_test(tc, test_raw_request);

	tc = tcase(s, "auth");
	tcase_add_test(tc, test_auth_bearer);
	tcase_add_test(tc, test_auth_admin_shared);
	tcase_add_test(tc, test_auth_admin_wrong_password);
	tcase_add_test(tc, test_auth_admin_token_ttl);
	tcase_add_test(tc, test_auth_oauth);

	tc = tcase(s, "errors");
	tcase_add_test(tc, test_err_503_retry_after);
	tcase_add_test(tc, test_err_500);
	tcase_add_test(tc, test_err_rate_limit);
	tcase_add_test(tc, test_err_outage);
	tcase_add_test(tc, test_err_timeout);
	tcase_add_test(tc, test_err_refused);
	tcase_add_test(tc, test_err_not_json);
	tcase_add_test(tc, test_err_502_html);
	tcase_add_test(tc, test_err_dropped);

	tc = tcase(s, "paging");
	tcase_add_test(tc, test_search_paging);
	tcase_add_test(tc, test_rate_limit);
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
	rc = tu_run("check_magento", magento_suite());
	m2_global_cleanup();
	return rc;
}
