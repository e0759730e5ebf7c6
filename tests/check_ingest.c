/*
 * check_ingest.c - CSV and NDJSON rows into the store (ingest.h): the
 * predecessors' files as they are, header mapping, delimiters, quoting,
 * line numbers, rejected rows, keys (idempotency and ordering), batches,
 * resume, a store that fills up, and a large streamed file; whole bodies
 * (m2w_ingest_parse_body, the HTTP push): JSON items, NDJSON, CSV, each
 * kind of bad input, all or none, the same tasks as a stream, threads.
 *
 * Fixtures are in $top_srcdir/tests/data; every test has its own store.
 */
#define _GNU_SOURCE

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "m2worker/ingest.h"
#include "testutil.h"

#define MAXE 64
#define MAXT 256

/* What a stream reported. */
struct seen {
	size_t nerr;
	uint64_t eline[MAXE];
	char ecol[MAXE][64];
	char ereason[MAXE][256];
	char erow[MAXE][256];
	size_t ntask;
	uint64_t tline[MAXT], tid[MAXT];
	int tdup[MAXT];
	struct m2w_queue *q;
	uint64_t total_at_task[MAXT]; /* store total when on_task ran */
};

static void on_err(void *arg, uint64_t line, const char *col,
		   const char *reason, const char *row)
{
	struct seen *s = arg;

	if (s->nerr >= MAXE)
		return;
	s->eline[s->nerr] = line;
	snprintf(s->ecol[s->nerr], 64, "%s", col ? col : "");
	snprintf(s->ereason[s->nerr], 256, "%s", reason);
	snprintf(s->erow[s->nerr], 256, "%s", row);
	s->nerr++;
}

static void on_task(void *arg, uint64_t line, uint64_t id, int dup)
{
	struct seen *s = arg;

	if (s->ntask >= MAXT)
		return;
	s->tline[s->ntask] = line;
	s->tid[s->ntask] = id;
	s->tdup[s->ntask] = dup;
	if (s->q)
		s->total_at_task[s->ntask] = tu_total(s->q);
	s->ntask++;
}

static const char *data(const char *name)
{
	static char path[PATH_MAX];
	const char *top = getenv("top_srcdir");

	snprintf(path, sizeof(path), "%s/tests/data/%s", top && *top ? top : ".",
		 name);
	return path;
}

/* Streams `f` into q; returns the stream's code. */
static int run_file(struct m2w_queue *q, FILE *f, struct m2w_ingest_opts *o,
		    struct m2w_ingest_result *res, struct seen *s)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc;

	memset(s, 0, sizeof(*s));
	o->on_task = on_task;
	rc = m2w_ingest_stream(q, f, o, res, on_err, s, eb);
	if (rc)
		fprintf(stderr, "stream: %s\n", eb);
	return rc;
}

/* A fixture file, fingerprinted like qctl does. */
static int run_data(struct m2w_queue *q, const char *name, const char *type,
		    struct m2w_ingest_result *res, struct seen *s,
		    struct m2w_ingest_opts *oo)
{
	struct m2w_ingest_opts o;
	char fp[M2W_FINGERPRINT_HEX + 1];
	FILE *f = fopen(data(name), "rb");
	int rc;

	ck_assert_msg(f != NULL, "open %s", data(name));
	if (oo)
		o = *oo;
	else
		m2w_ingest_opts_init(&o, type);
	o.type = type;
	o.source = name;
	CK_OK(m2w_ingest_fingerprint(f, fp, EB));
	o.fingerprint = fp;
	rc = run_file(q, f, &o, res, s);
	fclose(f);
	return rc;
}

/* Streams a string. */
static int run_str(struct m2w_queue *q, const char *text, const char *type,
		   struct m2w_ingest_opts *oo, struct m2w_ingest_result *res,
		   struct seen *s)
{
	struct m2w_ingest_opts o;
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int rc;

	ck_assert(f != NULL);
	if (oo)
		o = *oo;
	else
		m2w_ingest_opts_init(&o, type);
	o.type = type;
	if (!o.source)
		o.source = "mem";
	rc = run_file(q, f, &o, res, s);
	fclose(f);
	return rc;
}

static void ck_payload(struct m2w_queue *q, uint64_t id, const char *want)
{
	struct m2w_task *t = tu_get(q, id);

	ck_assert_msg(strcmp(t->payload, want) == 0, "task %llu payload %s, "
		      "wanted %s", (unsigned long long)id, t->payload, want);
	m2w_task_free(t);
}

static void ck_task(struct m2w_queue *q, uint64_t id, const char *source,
		    const char *idem, const char *group, int supersede)
{
	struct m2w_task *t = tu_get(q, id);

	ck_assert_str_eq(t->source, source);
	if (idem)
		ck_assert_str_eq(t->idem_key ? t->idem_key : "(none)", idem);
	if (group)
		ck_assert_str_eq(t->group_key ? t->group_key : "(none)", group);
	ck_assert_int_eq(t->supersede, supersede);
	m2w_task_free(t);
}

/* ----------------------------------------------------------- samples */

START_TEST(test_tracking_sample)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_data(e.q, "20250326_120000.csv", "tracking", &r,
				  &s, NULL), M2W_OK);
	ck_assert_int_eq(r.rows, 1);
	ck_assert_int_eq(r.accepted, 1);
	ck_assert_int_eq(r.rejected, 0);
	ck_assert_int_eq(r.committed_rows, 1);
	ck_assert_int_eq(r.committed_line, 2);
	ck_assert_int_eq(r.delimiter, ',');
	ck_assert_int_eq(s.ntask, 1);
	ck_payload(e.q, s.tid[0], "{\"order\":\"1000000001\",\"track\":"
		   "\"1ZX23456789\",\"carrier\":\"ups\",\"title\":\"UPS\"}");
	ck_task(e.q, s.tid[0], "20250326_120000.csv:2",
		"tracking:1000000001:1ZX23456789", "order:1000000001", M2W_GROUP_EXCLUSIVE);
	ck_assert_store_ok(e.q);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_stock_sample)
{
	static const char *const want[] = {
		"{\"sku\":\"bulk-product-1748595659-1\",\"qty\":50}",
		"{\"sku\":\"bulk-product-1748595659-2\",\"qty\":75}",
		"{\"sku\":\"bulk-product-1748595659-3\",\"qty\":100}",
		"{\"sku\":\"bulk-product-1748595659-4\",\"qty\":25}",
		"{\"sku\":\"bulk-product-1748595659-5\",\"qty\":150}",
	};
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;
	size_t i;

	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_data(e.q, "stock_updates_example.csv", "stock", &r,
				  &s, NULL), M2W_OK);
	ck_assert_int_eq(r.accepted, 5);
	ck_assert_int_eq(s.ntask, 5);
	for (i = 0; i < 5; i++) {
		char src[64], group[64];

		ck_payload(e.q, s.tid[i], want[i]);
		snprintf(src, sizeof(src), "stock_updates_example.csv:%zu", i + 2);
		snprintf(group, sizeof(group), "stock:bulk-product-1748595659-%zu:"
			 "default", i + 1);
		ck_task(e.q, s.tid[i], src, NULL, group, 1);
	}
	tu_env_done(&e);
}
END_TEST

/* --------------------------------------------------------- the format */

START_TEST(test_bom)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_ingest_opts o;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_data(e.q, "bom.csv", "tracking", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.accepted, 2);
	ck_assert_int_eq(r.rejected, 0);
	ck_payload(e.q, s.tid[0], "{\"order\":\"1000000010\",\"track\":"
		   "\"1ZBOM0001\",\"carrier\":\"ups\",\"title\":\"UPS\"}");
	/* and a BOM in NDJSON */
	m2w_ingest_opts_init(&o, "stock");
	o.format = M2W_INGEST_NDJSON;
	ck_assert_int_eq(run_str(e.q, "\xef\xbb\xbf{\"sku\":\"B\",\"qty\":1}\n",
				 "stock", &o, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 1);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_delimiters)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_ingest_opts o;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_data(e.q, "semicolon.csv", "stock", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.delimiter, ';');
	ck_assert_int_eq(r.accepted, 3);
	ck_payload(e.q, s.tid[1], "{\"sku\":\"SEMI-2\",\"qty\":7,\"source\":"
		   "\"warehouse_b\"}");
	ck_task(e.q, s.tid[1], "semicolon.csv:3", NULL,
		"stock:SEMI-2:warehouse_b", 1);

	ck_assert_int_eq(run_data(e.q, "tab.tsv", "price", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.delimiter, '\t');
	ck_assert_int_eq(r.accepted, 2);
	ck_payload(e.q, s.tid[0], "{\"sku\":\"TAB-1\",\"price\":9.99,"
		   "\"store_id\":0}");
	ck_payload(e.q, s.tid[1], "{\"sku\":\"TAB-2\",\"price\":19.50,"
		   "\"store_id\":1}");
	ck_task(e.q, s.tid[1], "tab.tsv:3", NULL, "price:TAB-2:1", 1);

	/* a quoted delimiter in the header does not count */
	ck_assert_int_eq(run_str(e.q, "\"a;b;c\",sku,qty\nx,S1,1\n", "stock",
				 NULL, &r, &s), M2W_OK);
	ck_assert_int_eq(r.delimiter, ',');
	ck_assert_int_eq(r.accepted, 1);

	/* given, not detected */
	m2w_ingest_opts_init(&o, "stock");
	o.delimiter = ';';
	ck_assert_int_eq(run_str(e.q, "sku;qty;note\nS2;3;a,b,c,d\n", "stock",
				 &o, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 1);
	/* a delimiter that is no such thing */
	o.delimiter = '|';
	ck_assert_int_eq(run_str(e.q, "sku|qty\n", "stock", &o, &r, &s),
			 M2W_EINVAL);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_quoted)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_data(e.q, "quoted.csv", "tracking", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.rejected, 0);
	ck_assert_int_eq(r.accepted, 4);
	ck_payload(e.q, s.tid[0], "{\"order\":\"1000000030\",\"track\":"
		   "\"1Z QUOTED, WITH COMMA\",\"carrier\":\"ups\",\"title\":"
		   "\"UPS\"}");
	ck_payload(e.q, s.tid[1], "{\"order\":\"1000000031\",\"track\":"
		   "\"1ZNL5\",\"carrier\":\"ups\",\"title\":\"Two\\nLines\"}");
	/* after a record over two lines, the line numbers stay right */
	ck_task(e.q, s.tid[2], "quoted.csv:5", "tracking:1000000032:1Z\"Q\"3",
		NULL, M2W_GROUP_EXCLUSIVE);
	ck_payload(e.q, s.tid[2], "{\"order\":\"1000000032\",\"track\":"
		   "\"1Z\\\"Q\\\"3\",\"carrier\":\"ups\"}");
	/* trimmed: checked and sent without the spaces */
	ck_payload(e.q, s.tid[3], "{\"order\":\"1000000033\",\"track\":"
		   "\"1ZTRIM4\",\"carrier\":\"ups\"}");
	ck_task(e.q, s.tid[3], "quoted.csv:6", "tracking:1000000033:1ZTRIM4",
		"order:1000000033", M2W_GROUP_EXCLUSIVE);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_crlf)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_data(e.q, "crlf.csv", "tracking", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.accepted, 2);
	ck_payload(e.q, s.tid[1], "{\"order\":\"1000000021\",\"track\":"
		   "\"AWB0002\",\"carrier\":\"usps\",\"title\":\"USPS\"}");
	ck_task(e.q, s.tid[1], "crlf.csv:3", NULL, NULL, M2W_GROUP_EXCLUSIVE);
	/* a lone CR ends a line too; blank lines are no rows */
	ck_assert_int_eq(run_str(e.q, "sku,qty\rA,1\r\r\nB,2\n\n   \nC,3",
				 "stock", NULL, &r, &s), M2W_OK);
	ck_assert_int_eq(r.rows, 3);
	ck_assert_int_eq(r.accepted, 3);
	ck_task(e.q, s.tid[0], "mem:2", NULL, NULL, 1);
	ck_task(e.q, s.tid[1], "mem:4", NULL, NULL, 1);
	ck_task(e.q, s.tid[2], "mem:7", NULL, NULL, 1);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_header_aliases)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	/* names in any case, with spaces; extra columns ignored; title alone
	 * names the carrier */
	ck_assert_int_eq(run_str(e.q, " Note ,AWB,Increment ID,Carrier Title\n"
				 "x, 1ZA ,100,DHL Express\n", "tracking", NULL,
				 &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 1);
	ck_payload(e.q, s.tid[0], "{\"order\":\"100\",\"track\":\"1ZA\","
		   "\"carrier\":\"DHL Express\",\"title\":\"DHL Express\"}");
	ck_assert_int_eq(run_str(e.q, "sku,quantity,status\nQ1,2.5,0\n", "stock",
				 NULL, &r, &s), M2W_OK);
	ck_payload(e.q, s.tid[0], "{\"sku\":\"Q1\",\"qty\":2.5,\"status\":0}");
	tu_env_done(&e);
}
END_TEST

START_TEST(test_header_errors)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_ingest_opts o;
	struct seen s;
	char eb[M2W_ERRBUF_SIZE] = "";
	FILE *f;

	tu_env_init(&e);
	tu_open(&e);
	memset(&s, 0, sizeof(s));
	m2w_ingest_opts_init(&o, "tracking");
	o.source = "x.csv";
	f = fmemopen((void *)"tracking_number,carrier\n1Z1,ups\n1Z2,ups\n", 40,
		     "r");
	ck_assert_int_eq(m2w_ingest_stream(e.q, f, &o, &r, on_err, &s, eb),
			 M2W_EINVAL);
	fclose(f);
	ck_assert_str_eq(eb, "x.csv:1: header has no order column: expected "
			 "one of order_number, order_id, increment_id, order");
	ck_assert_int_eq(tu_total(e.q), 0);
	ck_assert_int_eq(r.accepted, 0);

	ck_assert_int_eq(run_str(e.q, "sku,price\nA,1\n", "stock", NULL, &r, &s),
			 M2W_EINVAL);
	ck_assert_int_eq(run_str(e.q, "order_id,order_number,awb,carrier\n",
				 "tracking", NULL, &r, &s), M2W_EINVAL);
	ck_assert_int_eq(run_str(e.q, "order_id,awb\n1,2\n", "tracking", NULL,
				 &r, &s), M2W_EINVAL);
	ck_assert_int_eq(run_str(e.q, "order_id,awb,carrier,sku\n1,2,ups,A\n",
				 "tracking", NULL, &r, &s), M2W_EINVAL);
	ck_assert_int_eq(run_str(e.q, "{\"method\":\"GET\"}\n", "rest", NULL, &r,
				 &s), M2W_EINVAL);
	ck_assert_int_eq(run_str(e.q, "a\n", "nosuch", NULL, &r, &s),
			 M2W_EINVAL);
	ck_assert_int_eq(tu_total(e.q), 0);
	/* an empty input is no error */
	ck_assert_int_eq(run_str(e.q, "", "stock", NULL, &r, &s), M2W_OK);
	ck_assert_int_eq(r.rows, 0);
	tu_env_done(&e);
}
END_TEST

/* ---------------------------------------------------------- bad rows */

START_TEST(test_bad_rows)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_data(e.q, "bad_rows.csv", "stock", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.rows, 9);
	ck_assert_int_eq(r.accepted, 3);
	ck_assert_int_eq(r.rejected, 6);
	ck_assert_int_eq(r.committed_rows, 9);
	ck_assert_int_eq(s.nerr, 6);
	ck_assert_int_eq(s.eline[0], 3);
	ck_assert_str_eq(s.ecol[0], "qty");
	ck_assert_str_eq(s.ereason[0], "qty \"abc\" is not a number");
	ck_assert_str_eq(s.erow[0], "BAD-QTY,abc");
	ck_assert_int_eq(s.eline[1], 4);
	ck_assert_str_eq(s.ecol[1], "sku");
	ck_assert_str_eq(s.ereason[1], "sku is empty");
	ck_assert_int_eq(s.eline[2], 6);
	ck_assert_str_eq(s.ecol[2], "");
	ck_assert_str_eq(s.ereason[2], "row has 3 fields, the header 2");
	ck_assert_int_eq(s.eline[3], 7);
	ck_assert_str_eq(s.ecol[3], "qty");  /* the job's check: qty >= 0 */
	ck_assert_ptr_nonnull(strstr(s.ereason[3], ">= 0"));
	ck_assert_int_eq(s.eline[4], 8);
	ck_assert_ptr_nonnull(strstr(s.ereason[4], "use a dot"));
	ck_assert_int_eq(s.eline[5], 9);
	ck_assert_ptr_nonnull(strstr(s.ereason[5], "bad quoting"));
	/* the good ones, around the bad */
	ck_task(e.q, s.tid[0], "bad_rows.csv:2", NULL, "stock:GOOD-1:default", 1);
	ck_task(e.q, s.tid[1], "bad_rows.csv:5", NULL, "stock:GOOD-2:default", 1);
	ck_task(e.q, s.tid[2], "bad_rows.csv:11", NULL, "stock:GOOD-3:default", 1);
	ck_assert_store_ok(e.q);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_bad_quoting_recovers)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	/* text after a closing quote: that row only */
	ck_assert_int_eq(run_str(e.q, "sku,qty\n\"A\"x,1\nB,2\n", "stock",
				 NULL, &r, &s), M2W_OK);
	ck_assert_int_eq(r.rejected, 1);
	ck_assert_int_eq(r.accepted, 1);
	ck_assert_int_eq(s.eline[0], 2);
	ck_task(e.q, s.tid[0], "mem:3", NULL, "stock:B:default", 1);
	/* a quote never closed, at the end */
	ck_assert_int_eq(run_str(e.q, "sku,qty\nC,1\n\"D,2\nE,3\n", "stock",
				 NULL, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 1);
	ck_assert_int_eq(r.rejected, 1);
	ck_assert_int_eq(s.eline[0], 3);
	ck_assert_ptr_nonnull(strstr(s.ereason[0], "not closed"));
	/* not UTF-8 */
	ck_assert_int_eq(run_str(e.q, "sku,qty\nM\xfcller,1\n", "stock", NULL,
				 &r, &s), M2W_OK);
	ck_assert_int_eq(r.rejected, 1);
	ck_assert_ptr_nonnull(strstr(s.ereason[0], "UTF-8"));
	tu_env_done(&e);
}
END_TEST

/* ---------------------------------------------------------------- keys */

START_TEST(test_same_file_twice)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_data(e.q, "quoted.csv", "tracking", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.accepted, 4);
	ck_assert_int_eq(run_data(e.q, "quoted.csv", "tracking", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.accepted, 0);
	ck_assert_int_eq(r.duplicates, 4);
	ck_assert_int_eq(s.tdup[0], 1);

	ck_assert_int_eq(run_data(e.q, "stock_updates_example.csv", "stock",
				  &r, &s, NULL), M2W_OK);
	ck_assert_int_eq(r.accepted, 5);
	ck_task(e.q, s.tid[0], "stock_updates_example.csv:2",
		"stock:4b7ba84cd326b271928e78c95be2048ddbcb05d5d287776b86a5030fb"
		"90b345b:2", NULL, 1);
	ck_assert_int_eq(run_data(e.q, "stock_updates_example.csv", "stock",
				  &r, &s, NULL), M2W_OK);
	ck_assert_int_eq(r.accepted, 0);
	ck_assert_int_eq(r.duplicates, 5);
	ck_assert_int_eq(tu_total(e.q), 9);
	/* stdin (no fingerprint): stock rows are new work every time */
	ck_assert_int_eq(run_str(e.q, "sku,qty\nbulk-product-1748595659-1,50\n",
				 "stock", NULL, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 1);
	ck_task(e.q, s.tid[0], "mem:2", "(none)", NULL, 1);
	ck_assert_store_ok(e.q);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_same_line_two_files)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_ingest_opts o;
	struct seen s;
	uint64_t first;

	tu_env_init(&e);
	tu_open(&e);
	m2w_ingest_opts_init(&o, "tracking");
	o.source = "a.csv";
	o.fingerprint = "aaaa";
	ck_assert_int_eq(run_str(e.q, "order_number,tracking_number,"
				 "carrier_code\n1000000001,1ZX,ups\n", "tracking",
				 &o, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 1);
	first = s.tid[0];
	o.source = "b.csv";
	o.fingerprint = "bbbb";
	ck_assert_int_eq(run_str(e.q, "tracking;order_id;carrier;extra\n"
				 " 1ZX ;1000000001;ups;x\n2ZX;1000000002;dhl;y\n",
				 "tracking", &o, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 1);
	ck_assert_int_eq(r.duplicates, 1);
	ck_assert_int_eq(s.tid[0], first);
	ck_assert_int_eq(s.tdup[0], 1);
	ck_assert_int_eq(tu_total(e.q), 2);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_stock_ordering)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	/* the newest level of a SKU wins: older waiting ones are superseded */
	ck_assert_int_eq(run_str(e.q, "sku,qty\nS-1,5\nS-2,1\nS-1,3\nS-1,7\n",
				 "stock", NULL, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 4);
	ck_task(e.q, s.tid[0], "mem:2", NULL, "stock:S-1:default", 1);
	ck_assert_state(e.q, s.tid[0], M2W_SUPERSEDED);
	ck_assert_state(e.q, s.tid[2], M2W_SUPERSEDED);
	ck_assert_state(e.q, s.tid[3], M2W_READY);
	ck_assert_state(e.q, s.tid[1], M2W_READY);
	ck_payload(e.q, s.tid[3], "{\"sku\":\"S-1\",\"qty\":7}");
	ck_assert_store_ok(e.q);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_key_field)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_ingest_opts o;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	m2w_ingest_opts_init(&o, "stock");
	o.key_field = "Row ID";
	ck_assert_int_eq(run_str(e.q, "row_id,sku,qty\nr1,A,1\nr2,A,2\n,A,3\n",
				 "stock", &o, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 2);
	ck_assert_int_eq(r.rejected, 1);
	ck_assert_str_eq(s.ecol[0], "row_id");
	ck_task(e.q, s.tid[0], "mem:2", "stock:r1", "stock:A:default", 1);
	ck_payload(e.q, s.tid[0], "{\"sku\":\"A\",\"qty\":1}");
	ck_assert_int_eq(run_str(e.q, "row_id,sku,qty\nr1,A,1\n", "stock", &o,
				 &r, &s), M2W_OK);
	ck_assert_int_eq(r.duplicates, 1);
	/* the key column must be there */
	ck_assert_int_eq(run_str(e.q, "sku,qty\nA,1\n", "stock", &o, &r, &s),
			 M2W_EINVAL);

	/* NDJSON: a key the job does not know is dropped from the payload;
	 * one it knows stays */
	m2w_ingest_opts_init(&o, "price");
	o.format = M2W_INGEST_NDJSON;
	o.key_field = "id";
	ck_assert_int_eq(run_str(e.q, "{\"id\":\"p-1\",\"sku\":\"P\",\"price\":1.5}"
				 "\n{\"id\":7,\"sku\":\"P\",\"price\":2}\n"
				 "{\"sku\":\"P\",\"price\":2}\n"
				 "{\"id\":\"p-9\",\"sku\":\"P\",\"price\":-2}\n",
				 "price", &o, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 2);
	ck_assert_int_eq(r.rejected, 2);
	ck_task(e.q, s.tid[0], "mem:1", "price:p-1", "price:P:0", 1);
	ck_payload(e.q, s.tid[0], "{\"sku\":\"P\",\"price\":1.5}");
	ck_task(e.q, s.tid[1], "mem:2", "price:7", NULL, 1);
	ck_assert_int_eq(s.eline[0], 3);
	ck_assert_str_eq(s.ecol[0], "id");
	ck_assert_int_eq(s.eline[1], 4);
	ck_assert_ptr_nonnull(strstr(s.ereason[1], ">= 0"));
	o.type = "tracking";
	o.key_field = "track";
	ck_assert_int_eq(run_str(e.q, "{\"order\":\"9\",\"track\":\"T\","
				 "\"carrier\":\"ups\"}\n", "tracking", &o, &r,
				 &s), M2W_OK);
	ck_task(e.q, s.tid[0], "mem:1", "tracking:T", "order:9", M2W_GROUP_EXCLUSIVE);
	ck_payload(e.q, s.tid[0], "{\"order\":\"9\",\"track\":\"T\","
		   "\"carrier\":\"ups\"}");
	tu_env_done(&e);
}
END_TEST

START_TEST(test_items)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_data(e.q, "items.csv", "tracking", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.rows, 3);
	ck_assert_int_eq(r.accepted, 3);
	ck_assert_int_eq(r.tasks, 2);
	ck_assert_int_eq(r.committed_line, 4);
	ck_assert_int_eq(s.ntask, 2);
	ck_payload(e.q, s.tid[0], "{\"order\":\"1000000040\",\"track\":"
		   "\"1ZITEM1\",\"carrier\":\"ups\",\"title\":\"UPS\",\"items\":"
		   "[{\"sku\":\"SKU-A\",\"qty\":1},{\"sku\":\"SKU-B\",\"qty\":2}]}");
	ck_task(e.q, s.tid[0], "items.csv:2", "tracking:1000000040:1ZITEM1",
		NULL, M2W_GROUP_EXCLUSIVE);
	ck_payload(e.q, s.tid[1], "{\"order\":\"1000000041\",\"track\":"
		   "\"1ZITEM2\",\"carrier\":\"ups\",\"title\":\"UPS\"}");
	/* again: the parcel is one duplicate task of two rows */
	ck_assert_int_eq(run_data(e.q, "items.csv", "tracking", &r, &s, NULL),
			 M2W_OK);
	ck_assert_int_eq(r.duplicates, 3);
	/* qty without sku, sku without qty */
	ck_assert_int_eq(run_str(e.q, "order,track,carrier,sku,qty\n1,T,ups,,2\n"
				 "1,T,ups,A,\n1,T,ups,A,0\n", "tracking", NULL,
				 &r, &s), M2W_OK);
	ck_assert_int_eq(r.rejected, 3);
	ck_assert_str_eq(s.ecol[0], "sku");
	ck_assert_str_eq(s.ecol[1], "qty");
	ck_assert_str_eq(s.ecol[2], "qty");  /* items[0].qty must be > 0 */
	/* a parcel's rows apart: the later ones are refused with the reason
	 * (as a task of their own they would be its duplicate, and their
	 * items never shipped); the same again without items is a duplicate
	 * as before, and another file's parcel is not looked at */
	ck_assert_int_eq(run_str(e.q, "order,track,carrier,sku,qty\n"
				 "204,C5,ups,A,1\n205,C6,ups,A,1\n"
				 "204,C5,ups,D,1\n204,C5,ups,E,2\n", "tracking",
				 NULL, &r, &s), M2W_OK);
	ck_assert_int_eq(r.accepted, 2);
	ck_assert_int_eq(r.rejected, 2);
	ck_assert_int_eq(s.eline[0], 4);
	ck_assert_int_eq(s.eline[1], 5);
	ck_assert_str_eq(s.ecol[0], "track");
	ck_assert_ptr_nonnull(strstr(s.ereason[0], "began at line 2"));
	ck_assert_ptr_nonnull(strstr(s.ereason[0], "next to each other"));
	ck_assert_int_eq(run_str(e.q, "order,track,carrier,sku,qty\n"
				 "204,C5,ups,A,1\n", "tracking", NULL, &r, &s),
			 M2W_OK);
	ck_assert_int_eq(r.duplicates, 1);
	ck_assert_int_eq(r.rejected, 0);
	tu_env_done(&e);
}
END_TEST

/* ------------------------------------------------------------ batches */

START_TEST(test_batches)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_ingest_opts o;
	struct seen s;
	FILE *f;
	const char *text = "sku,qty\nA,1\nB,2\nC,3\nD,4\nE,5\n";

	tu_env_init(&e);
	tu_open(&e);
	m2w_ingest_opts_init(&o, "stock");
	o.batch = 2;
	o.on_task = on_task;
	memset(&s, 0, sizeof(s));
	s.q = e.q;
	f = fmemopen((void *)text, strlen(text), "r");
	CK_OK(m2w_ingest_stream(e.q, f, &o, &r, on_err, &s, EB));
	fclose(f);
	ck_assert_int_eq(r.accepted, 5);
	ck_assert_int_eq(s.ntask, 5);
	/* committed two, two, then one: what the store held at each report */
	ck_assert_int_eq(s.total_at_task[0], 2);
	ck_assert_int_eq(s.total_at_task[1], 2);
	ck_assert_int_eq(s.total_at_task[2], 4);
	ck_assert_int_eq(s.total_at_task[3], 4);
	ck_assert_int_eq(s.total_at_task[4], 5);
	ck_assert_int_eq(r.committed_rows, 5);
	ck_assert_int_eq(r.committed_line, 6);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_skip_rows)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_ingest_opts o;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	m2w_ingest_opts_init(&o, "stock");
	o.skip_rows = 3;
	ck_assert_int_eq(run_data(e.q, "bad_rows.csv", "stock", &r, &s, &o),
			 M2W_OK);
	/* rows 1-3 (lines 2-4) were settled before: not again, errors too */
	ck_assert_int_eq(r.rows, 9);
	ck_assert_int_eq(r.skipped, 3);
	ck_assert_int_eq(r.accepted, 2);
	ck_assert_int_eq(r.rejected, 4);
	ck_assert_int_eq(s.eline[0], 6);
	ck_task(e.q, s.tid[0], "bad_rows.csv:5", NULL, NULL, 1);
	/* NDJSON */
	o.format = M2W_INGEST_NDJSON;
	o.skip_rows = 1;
	ck_assert_int_eq(run_data(e.q, "tracking.ndjson", "tracking", &r, &s,
				  &o), M2W_OK);
	ck_assert_int_eq(r.skipped, 1);
	ck_assert_int_eq(r.accepted, 2);
	ck_task(e.q, s.tid[0], "tracking.ndjson:3", NULL, NULL,
		M2W_GROUP_EXCLUSIVE);
	tu_env_done(&e);
}
END_TEST

/* A store too small: the stream stops at the batch that does not fit,
 * and says how far it got. */
START_TEST(test_store_full)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_ingest_opts o;
	struct seen s;
	char path[PATH_MAX + 32], eb[M2W_ERRBUF_SIZE] = "";
	FILE *f;
	int i, rc;

	tu_env_init(&e);
	ck_assert_int_eq(tu_open_ex(&e, 256 * 1024, 1024 * 1024, 1, eb), M2W_OK);
	snprintf(path, sizeof(path), "%s/big.csv", e.dir);
	f = fopen(path, "w");
	fputs("sku,qty\n", f);
	for (i = 0; i < 20000; i++)
		fprintf(f, "SKU-%06d-with-a-rather-long-name-to-fill-pages,%d\n",
			i, i % 97);
	fclose(f);
	m2w_ingest_opts_init(&o, "stock");
	o.batch = 500;
	o.source = "big.csv";
	f = fopen(path, "r");
	memset(&s, 0, sizeof(s));
	rc = m2w_ingest_stream(e.q, f, &o, &r, NULL, NULL, eb);
	fclose(f);
	ck_assert_msg(rc == M2W_EFULL || rc == M2W_ENOSPC, "rc %d: %s", rc, eb);
	ck_assert_ptr_nonnull(strstr(eb, "not enqueued"));
	ck_assert_int_gt(r.committed_rows, 0);
	ck_assert_int_lt(r.committed_rows, 20000);
	ck_assert_int_eq(r.committed_rows % 500, 0);
	ck_assert_int_eq(r.accepted, r.committed_rows);
	ck_assert_int_eq(tu_total(e.q), r.committed_rows);
	ck_assert_int_eq(r.committed_line, r.committed_rows + 1);
	ck_assert_store_ok(e.q);
	tu_env_done(&e);
}
END_TEST

/* ------------------------------------------------------------- NDJSON */

START_TEST(test_ndjson)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct seen s;

	tu_env_init(&e);
	tu_open(&e);
	{
		struct m2w_ingest_opts o;

		m2w_ingest_opts_init(&o, "tracking");
		o.format = M2W_INGEST_NDJSON;
		ck_assert_int_eq(run_data(e.q, "tracking.ndjson", "tracking",
					  &r, &s, &o), M2W_OK);
	}
	ck_assert_int_eq(r.rows, 5);
	ck_assert_int_eq(r.accepted, 3);
	ck_assert_int_eq(r.rejected, 2);
	ck_assert_int_eq(r.committed_rows, 5);
	ck_assert_int_eq(r.committed_line, 6);
	ck_assert_int_eq(s.eline[0], 4);
	ck_assert_str_eq(s.ecol[0], "track");
	ck_assert_str_eq(s.ereason[0], "missing \"track\"");
	ck_assert_int_eq(s.eline[1], 5);
	ck_assert_str_eq(s.ecol[1], "");
	ck_assert_ptr_nonnull(strstr(s.ereason[1], "not valid JSON"));
	ck_assert_str_eq(s.erow[1], "not json");
	/* trimmed */
	ck_payload(e.q, s.tid[1], "{\"order\":\"1000000051\",\"track\":"
		   "\"1ZND0002\",\"carrier\":\"dhl\",\"title\":\"DHL\"}");
	ck_task(e.q, s.tid[1], "tracking.ndjson:3",
		"tracking:1000000051:1ZND0002", NULL, M2W_GROUP_EXCLUSIVE);
	/* CRLF, no last newline, arrays and unknown keys refused */
	{
		struct m2w_ingest_opts o;

		m2w_ingest_opts_init(&o, "stock");
		o.format = M2W_INGEST_NDJSON;
		ck_assert_int_eq(run_str(e.q, "{\"sku\":\"N\",\"qty\":1}\r\n"
					 "[1]\r\n{\"sku\":\"N\",\"qty\":1,"
					 "\"x\":1}\r\n{\"sku\":\"M\",\"qty\":2}",
					 "stock", &o, &r, &s), M2W_OK);
		ck_assert_int_eq(r.accepted, 2);
		ck_assert_int_eq(r.rejected, 2);
		ck_assert_str_eq(s.ecol[1], "x");
		ck_task(e.q, s.tid[1], "mem:4", NULL, "stock:M:default", 1);
		/* rest: the body is left as it is */
		o.type = "rest";
		ck_assert_int_eq(run_str(e.q, "{\"method\":\"PUT\",\"path\":"
					 "\"/products/A\",\"body\":{\"a\":\" b \"}}\n",
					 "rest", &o, &r, &s), M2W_OK);
		ck_assert_int_eq(r.accepted, 1);
		ck_payload(e.q, s.tid[0], "{\"method\":\"PUT\",\"path\":"
			   "\"/products/A\",\"body\":{\"a\":\" b \"}}");
	}
	tu_env_done(&e);
}
END_TEST

/* ---------------------------------------------------- pure functions */

START_TEST(test_row_functions)
{
	struct m2w_ingest_opts o;
	struct m2w_ingest_map *m;
	struct m2w_ingest_row r;
	const char *hdr[] = { "SKU", "Price", "store_id" };
	const char *f1[] = { "A", " 1e2 ", "3" };
	const char *f2[] = { "A", "+5", "x" };
	const char *f3[] = { "", " ", "" };
	size_t l1[] = { 1, 5, 1 }, l2[] = { 1, 2, 1 }, l3[] = { 0, 1, 0 };
	char eb[M2W_ERRBUF_SIZE] = "";
	const char *js;

	m2w_ingest_opts_init(&o, "price");
	o.fingerprint = "ff";
	ck_assert_int_eq(m2w_ingest_map_new(&o, hdr, 3, &m, eb), M2W_OK);
	ck_assert_int_eq(m2w_ingest_csv_row(m, f1, l1, 3, 12, &r), M2W_OK);
	ck_assert_str_eq(r.payload, "{\"sku\":\"A\",\"price\":1e2,\"store_id\":3}");
	ck_assert_str_eq(r.idem, "price:ff:12");
	ck_assert_str_eq(r.group, "price:A:3");
	ck_assert_int_eq(r.supersede, 1);
	m2w_ingest_row_release(&r);
	ck_assert_int_eq(m2w_ingest_csv_row(m, f2, l2, 3, 13, &r), M2W_EINVAL);
	ck_assert_str_eq(r.column, "store_id");
	ck_assert_str_eq(r.reason, "store_id \"x\" is not an integer");
	ck_assert_ptr_null(r.payload);
	m2w_ingest_row_release(&r);
	ck_assert_int_eq(m2w_ingest_csv_row(m, f3, l3, 3, 14, &r), M2W_OK);
	ck_assert_ptr_null(r.payload);
	m2w_ingest_map_free(m);

	o.type = "tracking";
	js = " {\"order\":\"1\",\"track\":\" T \",\"carrier\":\"ups\"} ";
	ck_assert_int_eq(m2w_ingest_json_row(&o, js, strlen(js), 1, &r),
			 M2W_OK);
	ck_assert_str_eq(r.payload, "{\"order\":\"1\",\"track\":\"T\","
			 "\"carrier\":\"ups\"}");
	ck_assert_str_eq(r.idem, "tracking:1:T");
	m2w_ingest_row_release(&r);
	ck_assert_int_eq(m2w_ingest_json_row(&o, "{}", 2, 1, &r), M2W_EINVAL);
	ck_assert_str_eq(r.column, "order");
	m2w_ingest_row_release(&r);
	ck_assert_int_eq(m2w_ingest_json_row(&o, "  ", 2, 1, &r), M2W_OK);
	ck_assert_ptr_null(r.payload);
}
END_TEST

START_TEST(test_fingerprint)
{
	char hex[M2W_FINGERPRINT_HEX + 1];
	FILE *f = fopen(data("20250326_120000.csv"), "rb");
	int c;

	ck_assert_ptr_nonnull(f);
	CK_OK(m2w_ingest_fingerprint(f, hex, EB));
	ck_assert_str_eq(hex, "8962e58b5051e0c5f0266d6b741d063ec04c722233de44"
			 "cdd248d5a33118b583");
	c = fgetc(f);  /* put back at the start */
	ck_assert_int_eq(c, 'o');
	fclose(f);
}
END_TEST

/* -------------------------------------------------------------- large */

START_TEST(test_large_stream)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_ingest_opts o;
	char path[PATH_MAX + 32], eb[M2W_ERRBUF_SIZE] = "";
	struct timespec t0, t1;
	FILE *f;
	int i;

	tu_env_init(&e);
	tu_open(&e);
	snprintf(path, sizeof(path), "%s/large.csv", e.dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("order_number;tracking_number;carrier_code;title\r\n", f);
	for (i = 0; i < 200000; i++)
		fprintf(f, "%d;\"1Z%08d\";ups;UPS\r\n", 100000000 + i, i);
	fclose(f);
	m2w_ingest_opts_init(&o, "tracking");
	o.source = "large.csv";
	f = fopen(path, "r");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(m2w_ingest_stream(e.q, f, &o, &r, NULL, NULL, eb),
			 M2W_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fclose(f);
	fprintf(stderr, "check_ingest: 200000 rows in %.2f s\n",
		(double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	ck_assert_int_eq(r.rows, 200000);
	ck_assert_int_eq(r.accepted, 200000);
	ck_assert_int_eq(r.rejected, 0);
	ck_assert_int_eq(r.committed_line, 200001);
	ck_assert_int_eq(tu_total(e.q), 200000);
	tu_env_done(&e);
}
END_TEST

/* ------------------------------------------------- a whole body (HTTP) */

/* Parses `text` as a body of `format` (type may be NULL). */
static int body(const char *text, int format, const char *type,
		struct m2w_body *b)
{
	struct m2w_ingest_opts o;

	memset(&o, 0, sizeof(o));
	o.format = format;
	o.type = type;
	return m2w_ingest_parse_body(text, strlen(text), &o, b);
}

/* Parses `text` with `o`, which must succeed. */
static void ck_body_ok(const char *text, const struct m2w_ingest_opts *o,
		       struct m2w_body *b)
{
	int rc = m2w_ingest_parse_body(text, strlen(text), o, b);

	ck_assert_msg(rc == M2W_OK, "\"%s\": %d, %s (%s)", text, rc, b->error,
		      b->nerrors ? b->errors[0].reason : "");
}

static void ck_body_task(const struct m2w_body *b, size_t i, const char *type,
			 const char *payload, const char *source,
			 const char *idem, const char *group, int supersede)
{
	const struct m2w_new_task *t;

	ck_assert_uint_lt(i, b->ntasks);
	t = &b->tasks[i];
	ck_assert_str_eq(t->type, type);
	ck_assert_str_eq(t->payload, payload);
	ck_assert_uint_eq(t->payload_len, strlen(payload));
	ck_assert_str_eq(t->source, source);
	ck_assert_str_eq(t->idem_key ? t->idem_key : "(none)", idem);
	ck_assert_str_eq(t->group_key ? t->group_key : "(none)", group);
	ck_assert_int_eq(t->supersede, supersede);
}

/* The i-th listed error is (row, line, field, reason contains `why`). */
static void ck_body_error(const struct m2w_body *b, size_t i, uint64_t row,
			  uint64_t line, const char *field, const char *why)
{
	ck_assert_uint_lt(i, b->nerrors);
	ck_assert_uint_eq(b->errors[i].row, row);
	ck_assert_uint_eq(b->errors[i].line, line);
	ck_assert_str_eq(b->errors[i].field, field);
	ck_assert_msg(strstr(b->errors[i].reason, why) != NULL,
		      "error %zu: \"%s\" lacks \"%s\"", i, b->errors[i].reason,
		      why);
}

/* The body as a whole is refused: no task, no row error, `why`. */
static void ck_body_refused(const char *text, int format, const char *type,
			    const char *why)
{
	struct m2w_body b;

	ck_assert_int_eq(body(text, format, type, &b), M2W_EINVAL);
	ck_assert_msg(strstr(b.error, why) != NULL, "\"%s\": error \"%s\" "
		      "lacks \"%s\"", text, b.error, why);
	ck_assert_uint_eq(b.ntasks, 0);
	ck_assert_ptr_null(b.tasks);
	ck_assert_uint_eq(b.rejected, 0);
	ck_assert_uint_eq(b.nerrors, 0);
	m2w_body_free(&b);
}

/* One bad row: nothing returned but its error. */
static void ck_body_row(const char *text, int format, const char *type,
			uint64_t row, uint64_t line, const char *field,
			const char *why)
{
	struct m2w_body b;

	ck_assert_int_eq(body(text, format, type, &b), M2W_EINVAL);
	ck_assert_uint_eq(b.ntasks, 0);
	ck_assert_ptr_null(b.tasks);
	ck_assert_uint_eq(b.rejected, 1);
	ck_body_error(&b, 0, row, line, field, why);
	m2w_body_free(&b);
}

#define TRK(o, t) "{\"type\":\"tracking\",\"payload\":{\"order\":\"" o \
	"\",\"track\":\"" t "\",\"carrier\":\"ups\"}}"

START_TEST(test_body_json)
{
	struct m2w_ingest_opts o;
	struct m2w_body b;
	const char *arr = "[" TRK("100", "T1") ",{\"type\":\"price\","
		"\"payload\":{\"sku\":\" P1 \",\"price\":9.5},\"key\":\"p-1\","
		"\"not_before\":1700000000000},{\"type\":\"stock\",\"payload\":"
		"{\"sku\":\"S1\",\"qty\":3},\"key\":42}]";

	/* one object */
	ck_assert_int_eq(body("\xef\xbb\xbf" TRK("100", "T1"), M2W_INGEST_JSON,
			      NULL, &b), M2W_OK);
	ck_assert_uint_eq(b.ntasks, 1);
	ck_assert_uint_eq(b.rows, 1);
	ck_assert_str_eq(b.error, "");
	ck_body_task(&b, 0, "tracking", "{\"order\":\"100\",\"track\":\"T1\","
		     "\"carrier\":\"ups\"}", "http:1", "tracking:100:T1",
		     "order:100", M2W_GROUP_EXCLUSIVE);
	ck_assert_uint_eq(b.at[0].row, 1);
	ck_assert_uint_eq(b.at[0].line, 0);
	m2w_body_free(&b);
	ck_assert_ptr_null(b.tasks);
	m2w_body_free(&b); /* twice: nothing */

	/* an array of envelopes of three types, with key and not_before */
	ck_assert_int_eq(body(arr, M2W_INGEST_JSON, NULL, &b), M2W_OK);
	ck_assert_uint_eq(b.ntasks, 3);
	ck_body_task(&b, 1, "price", "{\"sku\":\"P1\",\"price\":9.5}",
		     "http:2", "price:p-1", "price:P1:0", 1);
	ck_assert_int_eq(b.tasks[1].not_before_ms, INT64_C(1700000000000));
	ck_body_task(&b, 2, "stock", "{\"sku\":\"S1\",\"qty\":3}", "http:3",
		     "stock:42", "stock:S1:default", 1);
	ck_assert_int_eq(b.tasks[2].not_before_ms, 0);
	ck_assert_uint_eq(b.at[2].row, 3);
	m2w_body_free(&b);

	/* bare payloads with a type, and a key field */
	memset(&o, 0, sizeof(o));
	o.format = M2W_INGEST_JSON;
	o.type = "stock";
	o.key_field = "id";
	ck_body_ok("[{\"id\":\"r1\",\"sku\":\"S1\",\"qty\":3},{\"id\":7,"
		   "\"sku\":\"S2\",\"qty\":4,\"source\":\"eu\"}]", &o, &b);
	ck_assert_uint_eq(b.ntasks, 2);
	ck_body_task(&b, 0, "stock", "{\"sku\":\"S1\",\"qty\":3}", "http:1",
		     "stock:r1", "stock:S1:default", 1);
	ck_body_task(&b, 1, "stock", "{\"sku\":\"S2\",\"qty\":4,\"source\":"
		     "\"eu\"}", "http:2", "stock:7", "stock:S2:eu", 1);
	m2w_body_free(&b);

	/* JSON text in a JSON string (Magento's string topics): read once */
	ck_assert_int_eq(body("\"{\\\"type\\\":\\\"stock\\\",\\\"payload\\\":"
			      "{\\\"sku\\\":\\\"S9\\\",\\\"qty\\\":1},"
			      "\\\"key\\\":\\\"k9\\\"}\"", M2W_INGEST_JSON,
			      NULL, &b), M2W_OK);
	ck_assert_uint_eq(b.ntasks, 1);
	ck_body_task(&b, 0, "stock", "{\"sku\":\"S9\",\"qty\":1}", "http:1",
		     "stock:k9", "stock:S9:default", 1);
	m2w_body_free(&b);
	ck_assert_int_eq(body("\"\\\"{}\\\"\"", M2W_INGEST_JSON, NULL, &b),
			 M2W_EINVAL); /* only once */
	ck_assert_ptr_nonnull(strstr(b.error, "body must be a JSON object"));
	m2w_body_free(&b);
	ck_assert_int_eq(body("\"not json\"", M2W_INGEST_JSON, NULL, &b),
			 M2W_EINVAL);
	ck_assert_ptr_nonnull(strstr(b.error, "body is a JSON string, and what "
				     "it holds is"));
	m2w_body_free(&b);

	/* an empty array: nothing, and that is fine */
	ck_assert_int_eq(body(" [ ] ", M2W_INGEST_JSON, NULL, &b), M2W_OK);
	ck_assert_uint_eq(b.ntasks, 0);
	ck_assert_ptr_null(b.tasks);
	m2w_body_free(&b);
}
END_TEST

START_TEST(test_body_ndjson)
{
	struct m2w_body b;

	/* envelopes; empty and blank lines are no rows; CRLF */
	ck_assert_int_eq(body("\xef\xbb\xbf" TRK("101", "T2") "\r\n\n  \n"
			      TRK("102", "T3"), M2W_INGEST_NDJSON, NULL, &b),
			 M2W_OK);
	ck_assert_uint_eq(b.rows, 2);
	ck_assert_uint_eq(b.ntasks, 2);
	ck_body_task(&b, 1, "tracking", "{\"order\":\"102\",\"track\":\"T3\","
		     "\"carrier\":\"ups\"}", "http:4", "tracking:102:T3",
		     "order:102", M2W_GROUP_EXCLUSIVE);
	ck_assert_uint_eq(b.at[1].row, 2);
	ck_assert_uint_eq(b.at[1].line, 4);
	m2w_body_free(&b);

	/* bare payloads of a type, trimmed */
	ck_assert_int_eq(body("{\"order\":\" 103 \",\"track\":\"T4\",\"carrier\":"
			      "\"dhl \"}\n", M2W_INGEST_NDJSON, "tracking", &b),
			 M2W_OK);
	ck_body_task(&b, 0, "tracking", "{\"order\":\"103\",\"track\":\"T4\","
		     "\"carrier\":\"dhl\"}", "http:1", "tracking:103:T4",
		     "order:103", M2W_GROUP_EXCLUSIVE);
	m2w_body_free(&b);

	/* rest: only NDJSON or JSON, the body as it is */
	ck_assert_int_eq(body("{\"method\":\"PUT\",\"path\":\"/V1/x\",\"body\":"
			      "{\"a\":\" b \"}}", M2W_INGEST_NDJSON, "rest", &b),
			 M2W_OK);
	ck_body_task(&b, 0, "rest", "{\"method\":\"PUT\",\"path\":\"/V1/x\","
		     "\"body\":{\"a\":\" b \"}}", "http:1", "(none)", "(none)",
		     0);
	m2w_body_free(&b);
}
END_TEST

START_TEST(test_body_csv)
{
	struct m2w_ingest_opts o;
	struct m2w_body b;
	const char *parcels =
		"Order Number;Tracking Number;Carrier;SKU;Quantity\r\n"
		"200;C1;ups;A;1\r\n"
		"200;C1;ups;B;2\r\n"
		"\r\n"
		"200;C1;ups;C;3\r\n"
		"201;\"C2\";dhl;;\r\n"
		"202;C3;ups;A;1\r\n";

	/* header aliases, semicolons, CRLF, quotes, merged parcels */
	ck_assert_int_eq(body(parcels, M2W_INGEST_CSV, "tracking", &b), M2W_OK);
	ck_assert_int_eq(b.delimiter, ';');
	ck_assert_uint_eq(b.rows, 5);
	ck_assert_uint_eq(b.ntasks, 3);
	ck_body_task(&b, 0, "tracking", "{\"order\":\"200\",\"track\":\"C1\","
		     "\"carrier\":\"ups\",\"items\":[{\"sku\":\"A\",\"qty\":1},"
		     "{\"sku\":\"B\",\"qty\":2},{\"sku\":\"C\",\"qty\":3}]}",
		     "http:2", "tracking:200:C1", "order:200", M2W_GROUP_EXCLUSIVE);
	ck_assert_uint_eq(b.at[0].row, 1);
	ck_assert_uint_eq(b.at[0].line, 2);
	ck_assert_uint_eq(b.at[0].nrows, 3);
	ck_body_task(&b, 1, "tracking", "{\"order\":\"201\",\"track\":\"C2\","
		     "\"carrier\":\"dhl\"}", "http:6", "tracking:201:C2",
		     "order:201", M2W_GROUP_EXCLUSIVE);
	ck_assert_uint_eq(b.at[1].row, 4);
	ck_assert_uint_eq(b.at[1].nrows, 1);
	ck_body_task(&b, 2, "tracking", "{\"order\":\"202\",\"track\":\"C3\","
		     "\"carrier\":\"ups\",\"items\":[{\"sku\":\"A\",\"qty\":1}]}",
		     "http:7", "tracking:202:C3", "order:202", M2W_GROUP_EXCLUSIVE);
	m2w_body_free(&b);

	/* extra aliases, a key column, a given delimiter, a BOM */
	memset(&o, 0, sizeof(o));
	o.format = M2W_INGEST_CSV;
	o.type = "price";
	o.columns = "sku=Artikel, price=Preis";
	o.key_field = "ref";
	o.delimiter = '\t';
	o.source = "push";
	ck_body_ok("\xef\xbb\xbf" "Artikel\tPreis\tStore ID\tref\n"
		   "P1\t9.90\t2\tx1\n", &o, &b);
	ck_assert_uint_eq(b.ntasks, 1);
	ck_body_task(&b, 0, "price", "{\"sku\":\"P1\",\"price\":9.90,"
		     "\"store_id\":2}", "push:2", "price:x1", "price:P1:2", 1);
	m2w_body_free(&b);

	/* a header alone: no rows, no tasks, fine */
	ck_assert_int_eq(body("sku,qty\n", M2W_INGEST_CSV, "stock", &b), M2W_OK);
	ck_assert_uint_eq(b.rows, 0);
	ck_assert_uint_eq(b.ntasks, 0);
	m2w_body_free(&b);
}
END_TEST

/* The same CSV through a stream into a store and through the body parser:
 * the same tasks (one implementation of reading, mapping and merging). */
START_TEST(test_body_same_as_stream)
{
	struct tu_env e;
	struct m2w_ingest_result r;
	struct m2w_body b;
	struct seen s;
	FILE *f = fopen(data("items.csv"), "rb");
	char text[4096];
	size_t n, i;

	ck_assert_ptr_nonnull(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	tu_env_init(&e);
	tu_open(&e);
	ck_assert_int_eq(run_str(e.q, text, "tracking", NULL, &r, &s), M2W_OK);
	ck_assert_int_eq(body(text, M2W_INGEST_CSV, "tracking", &b), M2W_OK);
	ck_assert_uint_eq(b.ntasks, s.ntask);
	ck_assert_uint_eq(b.rows, r.rows);
	for (i = 0; i < b.ntasks; i++) {
		struct m2w_task *t = tu_get(e.q, s.tid[i]);
		char src[32];

		ck_assert_str_eq(t->payload, b.tasks[i].payload);
		ck_assert_str_eq(t->idem_key ? t->idem_key : "",
				 b.tasks[i].idem_key ? b.tasks[i].idem_key : "");
		ck_assert_uint_eq(s.tline[i], b.at[i].line);
		snprintf(src, sizeof(src), "http:%llu",
			 (unsigned long long)s.tline[i]);
		ck_assert_str_eq(b.tasks[i].source, src);
		m2w_task_free(t);
	}
	/* and the body's tasks go into a store as they are */
	CK_OK(m2w_queue_enqueue(e.q, b.tasks, b.ntasks, EB));
	for (i = 0; i < b.ntasks; i++)
		ck_assert_int_eq(b.tasks[i].duplicate, 1);
	m2w_body_free(&b);
	tu_env_done(&e);
}
END_TEST

START_TEST(test_body_errors)
{
	struct m2w_ingest_opts o;
	struct m2w_body b;
	const char *tm;
	char big[512];

	/* the body as a whole */
	ck_body_refused("[" TRK("1", "A") ",{\"type\":", M2W_INGEST_JSON, NULL,
			"body is not valid JSON at byte");
	ck_body_refused(TRK("1", "A") " x", M2W_INGEST_JSON, NULL,
			"body is not valid JSON at byte 73");
	ck_body_refused("\"x\"", M2W_INGEST_JSON, NULL,
			"body is a JSON string, and what it holds is not "
			"valid JSON");
	ck_body_refused("true ", M2W_INGEST_JSON, NULL,
			"body must be a JSON object or an array");
	ck_body_refused("", M2W_INGEST_JSON, NULL, "not valid JSON");
	ck_body_refused("order,track,carrier\n", M2W_INGEST_CSV, NULL,
			"CSV needs a job type");
	ck_body_refused("method,path\n", M2W_INGEST_CSV, "rest",
			"takes NDJSON, not CSV");
	ck_body_refused("sku,qty\nA,1\n", M2W_INGEST_CSV, "tracking",
			"line 1: header has no order column: expected one of "
			"order_number, order_id, increment_id, order");
	ck_body_refused("\n\norder,order_id,track,carrier\n", M2W_INGEST_CSV,
			"tracking", "line 3: header has two order columns");
	ck_body_refused("a\"b,track\n1,2\n", M2W_INGEST_CSV, "tracking",
			"line 1: header: bad quoting");
	ck_body_refused("\n ,, \n", M2W_INGEST_CSV, "stock",
			"the CSV body has no header");
	ck_body_refused("{}", 9, "stock", "unknown body format");
	ck_body_refused("{}", M2W_INGEST_JSON, "nope", "unknown job type");
	{
		static const char nul[] = "{\"type\":\"x\0\"}";

		memset(&o, 0, sizeof(o));
		o.format = M2W_INGEST_JSON;
		ck_assert_int_eq(m2w_ingest_parse_body(nul, sizeof(nul) - 1,
						       &o, &b), M2W_EINVAL);
		ck_assert_str_eq(b.error, "body is not valid JSON: a NUL byte");
		m2w_body_free(&b);
	}
	/* more rows than rows_max: refused as a whole, errors dropped */
	tm = "{}\n{\"sku\":\"A\",\"qty\":1}\n{\"sku\":\"B\",\"qty\":1}\n";
	memset(&o, 0, sizeof(o));
	o.format = M2W_INGEST_NDJSON;
	o.type = "stock";
	o.rows_max = 2;
	ck_assert_int_eq(m2w_ingest_parse_body(tm, strlen(tm), &o, &b),
			 M2W_EINVAL);
	ck_assert_int_eq(b.too_many, 1);
	ck_assert_uint_eq(b.rejected, 0);
	ck_assert_uint_eq(b.nerrors, 0);
	ck_assert_str_eq(b.error, "more than 2 rows in one request: split it");
	m2w_body_free(&b);

	/* envelopes */
	ck_body_row("[5]", M2W_INGEST_JSON, NULL, 1, 0, "",
		    "an item must be a JSON object");
	ck_body_row("{\"type\":\"nope\",\"payload\":{}}", M2W_INGEST_JSON, NULL,
		    1, 0, "type", "unknown type");
	ck_body_row("{\"payload\":{}}", M2W_INGEST_JSON, NULL, 1, 0, "type",
		    "missing \"type\"");
	ck_body_row("{\"type\":\"stock\"}", M2W_INGEST_JSON, NULL, 1, 0,
		    "payload", "missing \"payload\"");
	ck_body_row("{\"type\":\"stock\",\"payload\":[1]}", M2W_INGEST_JSON, NULL,
		    1, 0, "payload", "payload must be a JSON object");
	ck_body_row("{\"type\":\"stock\",\"payload\":{\"sku\":\"A\",\"qty\":1},"
		    "\"key\":\"\"}", M2W_INGEST_JSON, NULL, 1, 0, "key",
		    "key must be a non-empty string");
	ck_body_row("{\"type\":\"stock\",\"payload\":{\"sku\":\"A\",\"qty\":1},"
		    "\"not_before\":-1}", M2W_INGEST_JSON, NULL, 1, 0,
		    "not_before", "not_before must be unix time");
	ck_body_row("{\"type\":\"tracking\",\"payload\":{\"order\":\"1\","
		    "\"carrier\":\"ups\"}}", M2W_INGEST_JSON, NULL, 1, 0, "track",
		    "missing \"track\"");
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	{
		char text[1024];

		snprintf(text, sizeof(text), "{\"type\":\"stock\",\"payload\":"
			 "{\"sku\":\"A\",\"qty\":1},\"key\":\"%.395s\"}", big);
		ck_body_row(text, M2W_INGEST_JSON, NULL, 1, 0, "key",
			    "key is longer than 400 bytes with its type");
	}
	/* an envelope with two unknown keys: two errors of one row */
	ck_assert_int_eq(body("[" TRK("1", "A") ",{\"type\":\"stock\",\"payload"
			      "\":{},\"color\":1,\"size\":2}]", M2W_INGEST_JSON,
			      NULL, &b), M2W_EINVAL);
	ck_assert_uint_eq(b.rejected, 2);
	ck_body_error(&b, 0, 2, 0, "color", "unknown key \"color\"");
	ck_body_error(&b, 1, 2, 0, "size", "unknown key \"size\"");
	ck_assert_str_eq(b.error, "2 of 2 rows rejected");
	m2w_body_free(&b);
	/* bare payloads */
	ck_body_row("[\"x\"]", M2W_INGEST_JSON, "stock", 1, 0, "",
		    "a payload must be a JSON object");
	ck_body_row("{\"sku\":\"A\",\"qty\":\"x\"}", M2W_INGEST_JSON, "stock", 1,
		    0, "qty", "\"qty\" must be a number");
	/* NDJSON */
	ck_body_row("\n\nnot json\n", M2W_INGEST_NDJSON, NULL, 1, 3, "",
		    "not valid JSON at byte 2");
	ck_body_row("\n[1]\n", M2W_INGEST_NDJSON, "stock", 1, 2, "",
		    "a row must be a JSON object");
	/* CSV rows */
	ck_body_row("order,track,carrier\n1,,ups\n", M2W_INGEST_CSV, "tracking",
		    1, 2, "track", "track is empty");
	ck_body_row("order,track,carrier\n1,A\n", M2W_INGEST_CSV, "tracking",
		    1, 2, "", "row has 2 fields, the header 3");
	ck_body_row("order,track,carrier\n1,A\"x,ups\n", M2W_INGEST_CSV,
		    "tracking", 1, 2, "", "bad quoting on line 2");
	ck_body_row("order,track,carrier\n1,\"A,ups\n", M2W_INGEST_CSV,
		    "tracking", 1, 2, "", "a quoted field opened on line 2 is "
		    "not closed at the end of the body");
	ck_body_row("sku,qty\nA,\"12,5\"\n", M2W_INGEST_CSV, "stock", 1, 2, "qty",
		    "(use a dot for decimals)");
	ck_body_row("order,track,carrier\n1,\xff,ups\n", M2W_INGEST_CSV,
		    "tracking", 1, 2, "track", "not valid UTF-8");
	ck_body_row("order,track,carrier,sku,qty\n1,A,ups,B,\n", M2W_INGEST_CSV,
		    "tracking", 1, 2, "qty", "qty is empty but sku is given");
}
END_TEST

/* An error in row 3 of 5: nothing returned but the error. */
START_TEST(test_body_all_or_none)
{
	struct m2w_body b;
	int format;

	for (format = M2W_INGEST_JSON; format <= M2W_INGEST_CSV; format++) {
		const char *text =
			format == M2W_INGEST_CSV
			? "sku,qty\nS1,1\nS2,2\nS3,x\nS4,4\nS5,5\n"
			: format == M2W_INGEST_NDJSON
			? "{\"sku\":\"S1\",\"qty\":1}\n{\"sku\":\"S2\",\"qty\":2}"
			  "\n{\"sku\":\"S3\",\"qty\":\"x\"}\n{\"sku\":\"S4\","
			  "\"qty\":4}\n{\"sku\":\"S5\",\"qty\":5}\n"
			: "[{\"sku\":\"S1\",\"qty\":1},{\"sku\":\"S2\",\"qty\":2},"
			  "{\"sku\":\"S3\",\"qty\":\"x\"},{\"sku\":\"S4\","
			  "\"qty\":4},{\"sku\":\"S5\",\"qty\":5}]";

		ck_assert_int_eq(body(text, format, "stock", &b), M2W_EINVAL);
		ck_assert_uint_eq(b.ntasks, 0);
		ck_assert_ptr_null(b.tasks);
		ck_assert_ptr_null(b.at);
		ck_assert_uint_eq(b.rows, 5);
		ck_assert_uint_eq(b.rejected, 1);
		ck_assert_uint_eq(b.nerrors, 1);
		ck_body_error(&b, 0, 3, format == M2W_INGEST_CSV ? 4
					: format == M2W_INGEST_NDJSON ? 3 : 0,
			      "qty", "number");
		ck_assert_str_eq(b.error, "1 of 5 rows rejected");
		m2w_body_free(&b);
	}
}
END_TEST

/* Many rejected rows: all counted, M2W_BODY_ERRORS_MAX listed. */
START_TEST(test_body_many_errors)
{
	struct m2w_body b;
	size_t n = M2W_BODY_ERRORS_MAX + 5, i;
	char *text = malloc(16 + n * 8), *p = text;

	ck_assert_ptr_nonnull(text);
	p += sprintf(p, "sku,qty\n");
	for (i = 0; i < n; i++)
		p += sprintf(p, "A,x\n");
	ck_assert_int_eq(body(text, M2W_INGEST_CSV, "stock", &b), M2W_EINVAL);
	ck_assert_uint_eq(b.rejected, n);
	ck_assert_uint_eq(b.nerrors, M2W_BODY_ERRORS_MAX);
	ck_body_error(&b, M2W_BODY_ERRORS_MAX - 1, M2W_BODY_ERRORS_MAX,
		      M2W_BODY_ERRORS_MAX + 1, "qty", "not a number");
	m2w_body_free(&b);
	free(text);
}
END_TEST

/* Many threads parse at once (the HTTP server's connection threads). */
struct par {
	pthread_t th;
	int ok;
};

static void *parse_thread(void *arg)
{
	struct par *p = arg;
	struct m2w_body b;
	int k;

	p->ok = 1;
	for (k = 0; k < 200 && p->ok; k++) {
		p->ok = body("order,track,carrier,sku,qty\n1,T,ups,A,1\n"
			     "1,T,ups,B,2\n2,U,dhl,,\n", M2W_INGEST_CSV,
			     "tracking", &b) == M2W_OK && b.ntasks == 2 &&
			strcmp(b.tasks[0].payload, "{\"order\":\"1\",\"track\":"
			       "\"T\",\"carrier\":\"ups\",\"items\":[{\"sku\":"
			       "\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":2}]}") == 0;
		m2w_body_free(&b);
		p->ok = p->ok && body("[" TRK("1", "A") ",{\"type\":\"nope\"}]",
				      M2W_INGEST_JSON, NULL, &b) == M2W_EINVAL &&
			b.rejected == 1 && b.errors[0].row == 2;
		m2w_body_free(&b);
	}
	return NULL;
}

START_TEST(test_body_threads)
{
	struct par p[8];
	int i;

	for (i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&p[i].th, NULL, parse_thread,
						&p[i]), 0);
	for (i = 0; i < 8; i++) {
		pthread_join(p[i].th, NULL);
		ck_assert_msg(p[i].ok, "thread %d parsed wrong", i);
	}
}
END_TEST

static Suite *ingest_suite(void)
{
	Suite *s = suite_create("ingest");
	TCase *tc = tcase_create("core");
	TCase *big = tcase_create("large");

	tcase_add_test(tc, test_tracking_sample);
	tcase_add_test(tc, test_stock_sample);
	tcase_add_test(tc, test_bom);
	tcase_add_test(tc, test_delimiters);
	tcase_add_test(tc, test_quoted);
	tcase_add_test(tc, test_crlf);
	tcase_add_test(tc, test_header_aliases);
	tcase_add_test(tc, test_header_errors);
	tcase_add_test(tc, test_bad_rows);
	tcase_add_test(tc, test_bad_quoting_recovers);
	tcase_add_test(tc, test_same_file_twice);
	tcase_add_test(tc, test_same_line_two_files);
	tcase_add_test(tc, test_stock_ordering);
	tcase_add_test(tc, test_key_field);
	tcase_add_test(tc, test_items);
	tcase_add_test(tc, test_batches);
	tcase_add_test(tc, test_skip_rows);
	tcase_add_test(tc, test_store_full);
	tcase_add_test(tc, test_ndjson);
	tcase_add_test(tc, test_row_functions);
	tcase_add_test(tc, test_fingerprint);
	tcase_add_test(tc, test_body_json);
	tcase_add_test(tc, test_body_ndjson);
	tcase_add_test(tc, test_body_csv);
	tcase_add_test(tc, test_body_same_as_stream);
	tcase_add_test(tc, test_body_errors);
	tcase_add_test(tc, test_body_all_or_none);
	tcase_add_test(tc, test_body_many_errors);
	tcase_add_test(tc, test_body_threads);
	suite_add_tcase(s, tc);
	tcase_add_test(big, test_large_stream);
	tcase_set_timeout(big, 300);
	suite_add_tcase(s, big);
	return s;
}

int main(void)
{
	return tu_run("m2w-check-ingest", ingest_suite());
}
