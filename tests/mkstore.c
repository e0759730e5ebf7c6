/*
 * mkstore.c - fills a store through the library. Not a test itself.
 *
 *   mkstore DIR
 *
 * One task in (nearly) every state, for the shell tests of qctl. Task ids
 * are deterministic (the tests name them):
 *   1 tracking done          2 tracking dead (400, validation error)
 *   3 tracking scheduled     4 tracking leased (1 h lease)
 *   5 tracking ready         6 stock superseded by 7
 *   7 stock ready (stock:SKU-1, supersede)
 *   8 price dead (unknown SKU)
 *   9 rest ready, head of group erp:42   10 rest waiting behind 9
 *
 *   mkstore DIR --many N
 *
 * N tasks in a new store, fast, for benches (qctl errors, list, stats over
 * a million tasks): about 70% done, 20% dead over 25 error texts (Magento's
 * messages with their placeholders filled, a 503, an HTML tag: some of
 * every type, some of one), 5% scheduled (a 503 or 504, retried within
 * the next hours), 5% ready; of types tracking (half), stock and price,
 * each with its own idempotency and ordering key and a source
 * "/var/3pl/incoming/YYYYMMDD_HHMMSS.csv:LINE". Every task goes the way
 * the daemon's would (enqueue, lease, settle), a few thousand a
 * transaction, the store opened nosync. Times: the library's clock seam
 * (m2w_queue_set_clock) walks over the last 48 hours, so tasks were
 * created, ended and scheduled then; the ready tasks are enqueued last
 * (else the next lease would take them) with the clock set back over the
 * same 48 hours, so their ids are the highest. The mix is drawn from a
 * fixed seed: the same N gives the same store. Prints the counts and how
 * long it took.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m2worker/admin.h"
#include "m2worker/queue.h"

static char eb[M2W_ERRBUF_SIZE];

static void ok(int rc, const char *what)
{
	if (rc != M2W_OK) {
		fprintf(stderr, "mkstore: %s: %s: %s\n", what, m2w_strerror(rc),
			eb);
		exit(1);
	}
}

static void add(struct m2w_queue *q, const char *type, const char *payload,
		const char *group, int supersede)
{
	struct m2w_new_task t;

	memset(&t, 0, sizeof(t));
	t.type = type;
	t.payload = payload;
	t.source = "20250326_120000.csv:2";
	t.group_key = group;
	t.supersede = supersede;
	ok(m2w_queue_enqueue(q, &t, 1, eb), "enqueue");
}

static struct m2w_task *lease1(struct m2w_queue *q, const char *type,
			       int64_t ms)
{
	struct m2w_lease_opts lo;
	struct m2w_task **ts;
	struct m2w_task *t;
	size_t n;

	memset(&lo, 0, sizeof(lo));
	lo.max = 1;
	lo.lease_ms = ms;
	lo.types = &type;
	lo.ntypes = 1;
	ok(m2w_queue_lease(q, &lo, &ts, &n, eb), "lease");
	if (n != 1) {
		fprintf(stderr, "mkstore: nothing to lease of %s\n", type);
		exit(1);
	}
	t = ts[0];
	free(ts);
	return t;
}

/* ------------------------------------------------------------ --many */

#define MANY_BATCH 5000          /* tasks a batch: one file, one enqueue */
#define MANY_SETTLE 250          /* settlements a transaction */
#define MANY_SPAN (48 * 3600 * INT64_C(1000))
#define T_TRACKING 1
#define T_STOCK 2
#define T_PRICE 4
#define T_ANY 7

static const char *const many_types[] = { "tracking", "stock", "price" };

/* The dead letters: text, HTTP status, the types it strikes, its weight. */
static const struct many_error {
	const char *text;
	int status;
	int types;
	unsigned weight;
} many_errors[] = {
	{ "The order \"000004711\" does not allow a shipment.", 400,
	  T_TRACKING, 120 },
	{ "The order \"000004712\" does not allow a shipment.", 400,
	  T_TRACKING, 40 },
	{ "The order \"000009001\" does not allow a shipment.", 400,
	  T_TRACKING, 15 },
	{ "Shipment Document Validation Error(s):\nThe order does not allow "
	  "a shipment to be created.", 400, T_TRACKING, 90 },
	{ "No such entity with orderId = 000005150", 404, T_TRACKING, 25 },
	{ "The \"dhlx\" carrier code isn't valid. Verify the carrier code "
	  "and try again.", 400, T_TRACKING, 30 },
	{ "Tracking number \"1ZTRACK0042\" is already used by shipment "
	  "\"000002233\".", 400, T_TRACKING, 8 },
	{ "Could not save the shipment tracking: The shipment \"000000777\" "
	  "does not exist.", 404, T_TRACKING, 5 },
	{ "The SKU \"24-MB01\" of the product that was requested doesn't "
	  "exist. Verify the product and try again.", 404,
	  T_STOCK | T_PRICE, 60 },
	{ "The SKU \"WS12-M-Orange\" of the product that was requested "
	  "doesn't exist. Verify the product and try again.", 404,
	  T_STOCK | T_PRICE, 20 },
	{ "Invalid value of \"-5\" provided for the quantity field.", 400,
	  T_STOCK, 35 },
	{ "Source item with source code \"warehouse-2\" and SKU \"24-WB04\" "
	  "does not exist.", 404, T_STOCK, 12 },
	{ "Could not save Source Item Configuration", 400, T_STOCK, 6 },
	{ "Invalid attribute price: The value of price must be a positive "
	  "number.", 400, T_PRICE, 30 },
	{ "Requested store is not found", 404, T_PRICE, 10 },
	{ "Error occurred during \"price\" processing. Invalid type for "
	  "value: \"9,95\". Expected Type: \"float\".", 400, T_PRICE, 14 },
	{ "Service Unavailable", 503, T_ANY, 70 },
	{ "Gateway Timeout", 504, T_ANY, 18 },
	{ "Too Many Requests", 429, T_ANY, 9 },
	{ "The consumer isn't authorized to access Magento_Sales::ship.",
	  401, T_TRACKING, 11 },
	{ "The consumer isn't authorized to access "
	  "Magento_InventoryApi::source_item.", 401, T_STOCK, 4 },
	{ "Internal Error. Details are available in Magento log file. Report "
	  "ID: webapi-6612a3c1b2e4f", 500, T_ANY, 16 },
	{ "Specified request cannot be processed.", 400, T_ANY, 7 },
	{ "<img src=x onerror=alert(1)>", 400, T_ANY, 3 },
	{ "", 0, T_ANY, 2 }, /* died without a message (a reaped lease) */
};
#define NERRORS (sizeof(many_errors) / sizeof(many_errors[0]))

static int64_t many_clock;

static int64_t many_now(void *arg)
{
	(void)arg;
	return many_clock;
}

/* splitmix64: the mix of task i, the same for every run */
static uint64_t mix(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

enum { END_DONE, END_DEAD, END_SCHEDULED, END_READY };

/* What becomes of task i: 14 in 20 done, 4 dead, 1 scheduled, 1 ready. */
static int many_end(uint64_t i)
{
	unsigned r = (unsigned)(mix(i) % 20);

	return r < 14 ? END_DONE : r < 18 ? END_DEAD
				 : r < 19 ? END_SCHEDULED : END_READY;
}

/* Its type (an index of many_types): half tracking, 3 in 10 stock. */
static int many_type(uint64_t i)
{
	unsigned r = (unsigned)((mix(i) >> 20) % 10);

	return r < 5 ? 0 : r < 8 ? 1 : 2;
}

/* The error a dead task i of type t died of, by weight. */
static const struct many_error *many_error(uint64_t i, int t)
{
	unsigned total = 0, r;
	size_t k;

	for (k = 0; k < NERRORS; k++)
		if (many_errors[k].types & (1 << t))
			total += many_errors[k].weight;
	r = (unsigned)((mix(i) >> 32) % total);
	for (k = 0; k < NERRORS; k++) {
		if (!(many_errors[k].types & (1 << t)))
			continue;
		if (r < many_errors[k].weight)
			return &many_errors[k];
		r -= many_errors[k].weight;
	}
	return &many_errors[0];
}

/* One task's strings, kept until its batch is enqueued. */
struct many_task {
	char payload[160], source[80], idem[96], group[64];
};

/* Fills t and its strings for task i, line `line` of the batch's file. */
static void many_fill(struct m2w_new_task *t, struct many_task *s,
		      uint64_t i, const char *file, unsigned line)
{
	unsigned type = (unsigned)many_type(i);
	unsigned long long n = (unsigned long long)i;

	memset(t, 0, sizeof(*t));
	t->type = many_types[type];
	snprintf(s->source, sizeof(s->source),
		 "/var/3pl/incoming/%s.csv:%u", file, line);
	switch (type) {
	case 0:
		snprintf(s->payload, sizeof(s->payload),
			 "{\"order\":\"%09llu\",\"track\":\"1Z%010llX\","
			 "\"carrier\":\"ups\",\"title\":\"UPS\"}", n + 1,
			 (unsigned long long)(mix(i) & 0xffffffffffULL));
		snprintf(s->idem, sizeof(s->idem), "tracking:%09llu:1Z%010llX",
			 n + 1, (unsigned long long)(mix(i) & 0xffffffffffULL));
		snprintf(s->group, sizeof(s->group), "order:%09llu", n + 1);
		break;
	case 1:
		snprintf(s->payload, sizeof(s->payload),
			 "{\"sku\":\"SKU-%07llu\",\"qty\":%u,"
			 "\"source\":\"default\"}", n, (unsigned)(mix(i) % 500));
		snprintf(s->idem, sizeof(s->idem), "stock:%s.csv:%u", file,
			 line);
		snprintf(s->group, sizeof(s->group), "stock:SKU-%07llu:default",
			 n);
		t->supersede = 1;
		break;
	default:
		snprintf(s->payload, sizeof(s->payload),
			 "{\"sku\":\"SKU-%07llu\",\"price\":%u.%02u,"
			 "\"store_id\":0}", n, (unsigned)(mix(i) % 300),
			 (unsigned)(mix(i) >> 8) % 100);
		snprintf(s->idem, sizeof(s->idem), "price:%s.csv:%u", file,
			 line);
		snprintf(s->group, sizeof(s->group), "price:SKU-%07llu:0", n);
		t->supersede = 1;
		break;
	}
	t->payload = s->payload;
	t->source = s->source;
	t->idem_key = s->idem;
	t->group_key = s->group;
	t->loaded = 1; /* written here, valid JSON: not parsed again */
}

/* The file name of a batch that starts at `ms`: its local time. */
static void many_file(char *out, size_t len, int64_t ms)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	localtime_r(&sec, &tm);
	strftime(out, len, "%Y%m%d_%H%M%S", &tm);
}

static int settle_cmp(const void *a, const void *b)
{
	const struct m2w_settle *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int many(const char *dir, const char *arg)
{
	struct m2w_queue_opts o;
	struct m2w_queue *q;
	struct m2w_lease_opts lo;
	struct m2w_stats st;
	struct m2w_new_task *nt;
	struct many_task *ms;
	struct m2w_settle *set;
	uint64_t *idx, total, i, b, nbatch, first, count[4] = { 0 };
	int64_t start, step, wall;
	double t0 = mono();
	char *end, file[32];
	size_t n, k, m;
	struct timespec ts;

	total = strtoull(arg, &end, 10);
	if (*end || !total || total > 100000000) {
		fprintf(stderr, "mkstore: --many takes 1 to 100000000 tasks\n");
		return 2;
	}
	nt = calloc(MANY_BATCH, sizeof(*nt));
	ms = calloc(MANY_BATCH, sizeof(*ms));
	set = calloc(MANY_BATCH, sizeof(*set));
	idx = calloc(MANY_BATCH, sizeof(*idx));
	if (!nt || !ms || !set || !idx) {
		fprintf(stderr, "mkstore: out of memory\n");
		return 1;
	}
	memset(&o, 0, sizeof(o));
	o.path = dir;
	o.create = 1;
	o.nosync = 1;
	o.map_initial = (size_t)1 << 30;
	o.map_max = (size_t)32 << 30;
	ok(m2w_queue_open(&o, &q, eb), "open");
	ok(m2w_queue_stats(q, &st, eb), "stats");
	if (st.next_id != 1) {
		fprintf(stderr, "mkstore: %s holds tasks already\n", dir);
		return 1;
	}
	m2w_stats_free(&st);
	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	nbatch = (total + MANY_BATCH - 1) / MANY_BATCH;
	start = wall - MANY_SPAN;
	step = (MANY_SPAN - 60000) / (int64_t)nbatch; /* the last ends 1 min ago */
	m2w_queue_set_clock(q, many_now, NULL);
	memset(&lo, 0, sizeof(lo));
	lo.lease_ms = 600000;

	for (b = 0; b < nbatch; b++) {
		int64_t at = start + (int64_t)b * step;
		uint64_t lo_i = b * MANY_BATCH;
		uint64_t hi_i = lo_i + MANY_BATCH < total ? lo_i + MANY_BATCH
							   : total;
		size_t leased, got, round;

		/* enqueue the batch but its ready tasks (they come last) */
		many_file(file, sizeof(file), at);
		for (n = 0, i = lo_i; i < hi_i; i++) {
			if (many_end(i) == END_READY)
				continue;
			many_fill(&nt[n], &ms[n], i, file, (unsigned)(i - lo_i + 2));
			idx[n++] = i;
		}
		if (!n)
			continue;
		many_clock = at;
		ok(m2w_queue_enqueue(q, nt, n, eb), "enqueue");
		memset(set, 0, n * sizeof(*set));
		first = nt[0].id;
		if (nt[n - 1].id != first + n - 1) {
			fprintf(stderr, "mkstore: ids of a batch not in a row\n");
			return 1;
		}
		/* lease them all (nothing else is ready; a lease shares its
		 * max among the types, so it may take more than one) */
		many_clock = at + 1000;
		for (leased = 0; leased < n; leased += got) {
			struct m2w_task **ts;

			lo.max = n - leased;
			ok(m2w_queue_lease(q, &lo, &ts, &got, eb), "lease");
			if (!got) {
				fprintf(stderr, "mkstore: %zu tasks not leased\n",
					n - leased);
				return 1;
			}
			for (k = 0; k < got; k++) {
				set[leased + k].id = ts[k]->id;
				set[leased + k].token = ts[k]->lease_token;
			}
			m2w_task_list_free(ts, got);
		}
		/* settle them in id order (the lease hands them out type by
		 * type), a few hundred a transaction, the clock going on over
		 * the batch's step */
		qsort(set, n, sizeof(*set), settle_cmp);
		for (k = 0; k < n; k++) {
			uint64_t ti = idx[set[k].id - first];
			struct m2w_settle *s = &set[k];
			const struct many_error *e;

			s->duration_ms = 50 + (int64_t)(mix(ti) % 1950);
			switch (many_end(ti)) {
			case END_DONE:
				s->kind = M2W_ACK;
				break;
			case END_DEAD:
				e = many_error(ti, many_type(ti));
				s->kind = M2W_FAIL;
				s->cls = M2W_CLASS_PERMANENT;
				s->message = e->text;
				s->http_status = e->status;
				break;
			default: /* scheduled: retried within the next hours */
				s->kind = M2W_FAIL;
				s->cls = M2W_CLASS_TRANSIENT;
				s->message = ti % 2 ? "Service Unavailable"
						    : "Gateway Timeout";
				s->http_status = ti % 2 ? 503 : 504;
				s->retry_after_ms = wall - at + 600000 +
					(int64_t)(mix(ti) % (6 * 3600000));
				break;
			}
		}
		for (k = 0, round = 0; k < n; k += m, round++) {
			m = n - k < MANY_SETTLE ? n - k : MANY_SETTLE;
			many_clock = at + 2000 + (int64_t)(round + 1) *
				(step - 3000) / (int64_t)((n + MANY_SETTLE - 1) /
							  MANY_SETTLE);
			ok(m2w_queue_settle(q, set + k, m, eb), "settle");
		}
		for (k = 0; k < n; k++) {
			if (set[k].err != M2W_OK) {
				fprintf(stderr, "mkstore: settle %llu: %s\n",
					(unsigned long long)set[k].id,
					m2w_strerror(set[k].err));
				return 1;
			}
			count[many_end(idx[set[k].id - first])]++;
		}
	}
	/* the ready tasks, last, created over the same 48 hours */
	for (b = 0; b < nbatch; b++) {
		int64_t at = start + (int64_t)b * step;
		uint64_t lo_i = b * MANY_BATCH;
		uint64_t hi_i = lo_i + MANY_BATCH < total ? lo_i + MANY_BATCH
							   : total;

		many_file(file, sizeof(file), at);
		for (n = 0, i = lo_i; i < hi_i; i++) {
			if (many_end(i) != END_READY)
				continue;
			many_fill(&nt[n], &ms[n], i, file,
				  (unsigned)(i - lo_i + 2));
			n++;
		}
		if (!n)
			continue;
		many_clock = at + step / 2;
		ok(m2w_queue_enqueue(q, nt, n, eb), "enqueue");
		count[END_READY] += n;
	}
	m2w_queue_close(q);
	printf("mkstore: %llu tasks (%llu done, %llu dead, %llu scheduled, "
	       "%llu ready) in %.1f s\n", (unsigned long long)total,
	       (unsigned long long)count[END_DONE],
	       (unsigned long long)count[END_DEAD],
	       (unsigned long long)count[END_SCHEDULED],
	       (unsigned long long)count[END_READY], mono() - t0);
	free(nt);
	free(ms);
	free(set);
	free(idx);
	return 0;
}

/* ------------------------------------------------------------- the tests' */

int main(int argc, char **argv)
{
	struct m2w_queue_opts o;
	struct m2w_queue *q;
	struct m2w_task *t;
	int i;

	if (argc == 4 && strcmp(argv[2], "--many") == 0)
		return many(argv[1], argv[3]);
	if (argc != 2) {
		fprintf(stderr, "usage: mkstore DIR [--many N]\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.path = argv[1];
	o.create = 1;
	ok(m2w_queue_open(&o, &q, eb), "open");
	for (i = 1; i <= 5; i++) {
		char p[96];

		snprintf(p, sizeof(p), "{\"order\":\"100000000%d\","
			 "\"track\":\"1ZTRACK%d\",\"carrier\":\"ups\"}", i, i);
		add(q, "tracking", p, NULL, 0);
	}
	add(q, "stock", "{\"sku\":\"SKU-1\",\"qty\":5}", "stock:SKU-1", 1);
	add(q, "stock", "{\"sku\":\"SKU-1\",\"qty\":3}", "stock:SKU-1", 1);
	add(q, "price", "{\"sku\":\"NOPE\",\"price\":9.5}", NULL, 0);
	add(q, "rest", "{\"method\":\"POST\",\"path\":\"/erp/1\"}", "erp:42", 0);
	add(q, "rest", "{\"method\":\"POST\",\"path\":\"/erp/2\"}", "erp:42", 0);

	t = lease1(q, "tracking", 60000);
	ok(m2w_task_ack(q, t->id, t->lease_token, 120, eb), "ack");
	m2w_task_free(t);
	t = lease1(q, "tracking", 60000);
	ok(m2w_task_fail(q, t->id, t->lease_token, M2W_CLASS_PERMANENT,
			 "Shipment Document Validation Error(s):\nThe order "
			 "does not allow a shipment to be created.", 400, 0,
			 eb), "fail");
	m2w_task_free(t);
	t = lease1(q, "tracking", 60000);
	ok(m2w_task_fail(q, t->id, t->lease_token, M2W_CLASS_TRANSIENT,
			 "Service Temporarily Unavailable", 503, 3600000, eb),
	   "fail");
	m2w_task_free(t);
	m2w_task_free(lease1(q, "tracking", 3600000));
	t = lease1(q, "price", 60000);
	ok(m2w_task_fail(q, t->id, t->lease_token, M2W_CLASS_PERMANENT,
			 "The SKU \"NOPE\" of the product that was requested "
			 "doesn't exist. Verify the product and try again.",
			 200, 0, eb), "fail");
	m2w_task_free(t);
	m2w_queue_close(q);
	return 0;
}
