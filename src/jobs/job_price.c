/*
 * job_price.c - base prices, batched.
 *
 * Every task of the batch is one row of one POST /products/base-prices.
 * Magento answers 200 even when some rows fail and saves the valid ones;
 * the client maps each failure back to its row (m2_base_prices_save), so
 * a row with an error dies with Magento's message for it (M2W_EPERMANENT)
 * and the others are done. When the call itself fails (transient, auth,
 * a 4xx for the whole request, a reply we cannot read) that is every
 * task's outcome.
 *
 * Safe to repeat: a price is a value, so saving it again after a crash
 * changes nothing. The ordering key "price:<sku>:<store_id>" keeps one
 * task of a price leased at a time and lets a newer price supersede a
 * waiting older one.
 *
 * Threads: run() uses only the caller's connection; no state is kept.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_internal.h"

static const struct m2w_field fields[] = {
	{ "sku", M2W_FIELD_STRING, 1, 0, JF_TEXT_MAX, NULL, { "sku" }, NULL },
	{ "price", M2W_FIELD_NUMBER, 1, M2W_RANGE_GE0, 0, NULL, { "price" },
	  NULL },
	/* struct m2_price holds an int */
	{ "store_id", M2W_FIELD_INT, 0, M2W_RANGE_INT32, 0, "store",
	  { "store_id" }, NULL },
	{ NULL, 0, 0, 0, 0, NULL, { NULL }, NULL }
};

/* A payload, read. */
struct row {
	int ok;                  /* loaded */
	char sku[JF_TEXT_MAX + 1];
	double price;
	int64_t store_id;
};

/* The loaded payload into r. */
static void row_read(struct json_object *o, struct row *r)
{
	memset(r, 0, sizeof(*r));
	jf_str(o, "sku", r->sku, sizeof(r->sku));
	r->price = jf_num(o, "price", 0);
	r->store_id = jf_int(o, "store_id", 0);
	r->ok = 1;
}

/* ---------------------------------------------------------------- run */

/* The outcome of row r in a call that went through. */
static void row_outcome(struct m2w_outcome *o, const struct m2_result *res,
			const struct row *r, const char *err)
{
	if (err) {
		jf_outcome(o, M2W_EPERMANENT, M2W_CLASS_PERMANENT, "%s", err);
	} else {
		jf_done(o, "price of %s in store %" PRId64 " set to %g", r->sku,
			r->store_id, r->price);
	}
	o->http_status = res->http_status;
}

static void save(const struct m2w_job_env *env, const struct row *rows,
		 size_t n, struct m2w_outcome *out, struct m2_price *p)
{
	struct m2_result res;
	char **errs = NULL;
	size_t i, m = 0;
	int rc;

	for (i = 0; i < n; i++)
		if (rows[i].ok) {
			p[m].sku = rows[i].sku;
			p[m].store_id = (int)rows[i].store_id;
			p[m].price = rows[i].price;
			m++;
		}
	if (!m)
		return;
	memset(&res, 0, sizeof(res));
	rc = m2_base_prices_save(env->conn, p, m, &errs, &res);
	for (i = 0, m = 0; i < n; i++) {
		if (!rows[i].ok)
			continue;
		out[i].calls++;
		if (rc != M2W_OK)
			m2w_outcome_set(&out[i], rc, &res);
		else
			row_outcome(&out[i], &res, &rows[i],
				    errs ? errs[m] : NULL);
		m++;
	}
	m2_row_errors_free(errs, m);
}

static void run(const struct m2w_job_env *env, struct m2w_task *const *tasks,
		struct json_object *const *obj, size_t n,
		struct m2w_outcome *out)
{
	struct row *rows;
	struct m2_price *p;
	size_t i;

	(void)tasks;
	rows = calloc(n ? n : 1, sizeof(*rows));
	p = calloc(n ? n : 1, sizeof(*p));
	if (!rows || !p) {
		for (i = 0; i < n; i++)
			if (obj[i])
				jf_outcome(&out[i], M2W_ENOMEM,
					   M2W_CLASS_TRANSIENT,
					   "out of memory");
	} else {
		for (i = 0; i < n; i++)
			if (obj[i])
				row_read(obj[i], &rows[i]);
		save(env, rows, n, out, p);
	}
	free(p);
	free(rows);
}

const struct m2w_job m2w_job_price = {
	.name = "price",
	.summary = "a product's base price in a store",
	.fields = fields,
	.group_key = "price:{sku}:{store_id=0}",
	.supersede = M2W_GROUP_NEWEST,
	.inputs = M2W_IN_CSV | M2W_IN_NDJSON | M2W_IN_JSON,
	.batch = 50,
	.batch_max = 500,
	.run = run,
};
