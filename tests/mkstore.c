/*
 * mkstore.c - fills a store with one task in (nearly) every state, through
 * the library, for the shell tests of qctl. Not a test itself.
 *
 *   mkstore DIR
 *
 * Task ids are deterministic:
 *   1 tracking done          2 tracking dead (400, validation error)
 *   3 tracking scheduled     4 tracking leased (1 h lease)
 *   5 tracking ready         6 stock superseded by 7
 *   7 stock ready (stock:SKU-1, supersede)
 *   8 price dead (unknown SKU)
 *   9 rest ready, head of group erp:42   10 rest waiting behind 9
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
	struct m2w_queue_opts o;
	struct m2w_queue *q;
	struct m2w_task *t;
	int i;

	if (argc != 2) {
		fprintf(stderr, "usage: mkstore DIR\n");
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
