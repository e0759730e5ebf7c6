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

static const struct jf_field fields[] = {
	{ "sku", JF_STRING, 1, JF_ANY_VALUE, JF_TEXT_MAX },
	{ "price", JF_NUMBER, 1, JF_GE0, 0 },
	{ "store_id", JF_INT, 0, JF_GE0, 0 },
	{ NULL, 0, 0, 0, 0 }
};

/* A payload, read. */
struct row {
	int ok;                  /* read and checked */
	char sku[JF_TEXT_MAX + 1];
	double price;
	int64_t store_id;
};

/* ------------------------------------------------------------- payload */

static int check(const char *payload, char *why, size_t len)
{
	struct json_object *o;

	if (jf_load(payload, fields, &o, why, len))
		return -1;
	/* struct m2_price holds an int */
	if (jf_int(o, "store_id", 0) > INT32_MAX) {
		if (why && len)
			snprintf(why, len, "\"store_id\" is too large");
		json_object_put(o);
		return -1;
	}
	json_object_put(o);
	return 0;
}

static int keys(const char *payload, char *idem, char *group, int *supersede)
{
	struct json_object *o;
	char sku[JF_TEXT_MAX + 1];
	int64_t store;

	idem[0] = group[0] = '\0';
	*supersede = 0;
	if (check(payload, NULL, 0) ||
	    jf_load(payload, fields, &o, NULL, 0))
		return -1;
	jf_str(o, "sku", sku, sizeof(sku));
	store = jf_int(o, "store_id", 0);
	json_object_put(o);
	if (jf_key(group, "price:%s:%" PRId64, sku, store))
		return -1;
	*supersede = 1;
	return 0;
}

/* The payload into r; 0, or -1 with why. */
static int row_read(const char *payload, struct row *r, char *why,
		    size_t len)
{
	struct json_object *o;

	memset(r, 0, sizeof(*r));
	if (check(payload, why, len) || jf_load(payload, fields, &o, why, len))
		return -1;
	jf_str(o, "sku", r->sku, sizeof(r->sku));
	r->price = jf_num(o, "price", 0);
	r->store_id = jf_int(o, "store_id", 0);
	r->ok = 1;
	json_object_put(o);
	return 0;
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
		size_t n, struct m2w_outcome *out)
{
	struct row *rows;
	struct m2_price *p;
	char why[256];
	size_t i;

	jf_outcomes_clear(out, n);
	rows = calloc(n ? n : 1, sizeof(*rows));
	p = calloc(n ? n : 1, sizeof(*p));
	if (!rows || !p) {
		for (i = 0; i < n; i++)
			jf_outcome(&out[i], M2W_ENOMEM, M2W_CLASS_TRANSIENT,
				   "out of memory");
	} else {
		for (i = 0; i < n; i++)
			if (row_read(tasks[i]->payload, &rows[i], why,
				     sizeof(why)))
				jf_bad_payload(&out[i], why);
		save(env, rows, n, out, p);
	}
	free(p);
	free(rows);
}

const struct m2w_job m2w_job_price = { "price", 1, check, keys, run };
