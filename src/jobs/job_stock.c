/*
 * job_stock.c - stock levels, batched.
 *
 * MSI (the default): every task of the batch is one source item row of
 * one POST /inventory/source-items. Magento validates the whole request
 * and saves nothing when one row is bad (400 "Validation Failed"), so a
 * batch refused as permanent is split: each row is sent alone, and only
 * the bad rows die, with Magento's message for them; the good ones are
 * saved. Any other failure of the batch call (transient, auth, a reply we
 * cannot read) is every task's outcome: the worker retries them all.
 *
 * Legacy ([stock] mode = legacy, single-source stores): one PUT
 * /products/{sku}/stockItems/{item_id} per task, in batch order.
 *
 * When a row sent alone fails transiently (or on auth) the rows after it
 * are not sent: Magento is unwell, and a batch of timeouts would hold the
 * worker for minutes. They get the same outcome, message "not sent
 * after: ..." (calls counts only the calls they were in), and are retried
 * like the failed one.
 *
 * Safe to repeat: a stock level is a value, not a delta, so saving it
 * again after a crash changes nothing. Ordering is the store's job: the
 * ordering key "stock:<sku>:<source>" keeps one task of a source item
 * leased at a time and lets a newer level supersede a waiting older one,
 * so a batch never holds two rows of one source item. A payload without
 * "source" is keyed as source "default" (keys() does not see the
 * config); it is saved to [stock] source_code.
 *
 * Threads: run() uses only the caller's connection; no state is kept.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_internal.h"

#define DEFAULT_SOURCE "default"
#define LEGACY_ITEM_ID 1

static const struct m2w_field fields[] = {
	{ "sku", M2W_FIELD_STRING, 1, 0, JF_TEXT_MAX, NULL, { "sku" }, NULL },
	{ "qty", M2W_FIELD_NUMBER, 1, M2W_RANGE_GE0, 0, NULL,
	  { "qty", "quantity" }, NULL },
	{ "source", M2W_FIELD_STRING, 0, 0, JF_TEXT_MAX, NULL,
	  { "source_code", "source" }, NULL },
	{ "status", M2W_FIELD_INT, 0, M2W_RANGE_BIT, 0, NULL, { "status" },
	  NULL },
	{ "item_id", M2W_FIELD_INT, 0, M2W_RANGE_GT0, 0, NULL, { NULL }, NULL },
	{ NULL, 0, 0, 0, 0, NULL, { NULL }, NULL }
};

/* [stock] */
struct settings {
	int legacy;              /* mode = msi|legacy */
	char *source_code;       /* source_code = default */
};

static const struct settings defaults = { 0, DEFAULT_SOURCE };

static const char *const modes[] = { "msi", "legacy", NULL };

static const struct m2w_setting settings[] = {
	{ "mode", M2W_SET_ENUM, JF_SET(struct settings, legacy), 0, modes,
	  NULL, NULL },
	{ "source_code", M2W_SET_STR, JF_SET(struct settings, source_code), 1,
	  NULL, NULL, NULL },
	{ NULL, 0, 0, 0, NULL, NULL, NULL }
};

/* A payload, read. */
struct row {
	int ok;                  /* loaded */
	char sku[JF_TEXT_MAX + 1];
	char source[JF_TEXT_MAX + 1]; /* "" when not given */
	double qty;
	int status;              /* -1 when not given */
	int64_t item_id;         /* 0 when not given */
};

/* The loaded payload into r. */
static void row_read(struct json_object *o, struct row *r)
{
	memset(r, 0, sizeof(*r));
	jf_str(o, "sku", r->sku, sizeof(r->sku));
	jf_str(o, "source", r->source, sizeof(r->source));
	r->qty = jf_num(o, "qty", 0);
	r->status = (int)jf_int(o, "status", -1);
	r->item_id = jf_int(o, "item_id", 0);
	r->ok = 1;
}

/* ---------------------------------------------------------------- run */

static const struct settings *settings_of(const struct m2w_job_env *env)
{
	return env->settings ? env->settings : &defaults;
}

static int in_stock(const struct row *r)
{
	return r->status >= 0 ? r->status : r->qty > 0;
}

static const char *source_of(const struct settings *set,
			     const struct row *r)
{
	if (r->source[0])
		return r->source;
	if (set->source_code && *set->source_code)
		return set->source_code;
	return DEFAULT_SOURCE;
}

/* A failure that says Magento is unwell rather than this row bad. */
static int stops(int rc, const struct m2_result *res)
{
	return rc != M2W_OK && rc != M2W_EPERMANENT &&
	       res->cls != M2W_CLASS_PERMANENT;
}

/* Out gets the outcome of a call that saved row r. */
static void saved(struct m2w_outcome *o, int rc, const struct m2_result *res,
		  const struct row *r, const char *source)
{
	m2w_outcome_set(o, rc, res);
	if (rc == M2W_OK)
		snprintf(o->message, sizeof(o->message),
			 "stock of %s at %s set to %g (%s)", r->sku, source,
			 r->qty, in_stock(r) ? "in stock" : "out of stock");
}

/* A row after a stop: the same outcome, not sent (calls unchanged). */
static void not_sent(struct m2w_outcome *o, const struct m2w_outcome *why)
{
	int calls = o->calls;

	*o = *why;
	o->calls = calls;
	snprintf(o->message, sizeof(o->message), "not sent after: %.1000s",
		 why->message);
}

static void source_item(const struct settings *set, const struct row *r,
			struct m2_source_item *it)
{
	it->sku = r->sku;
	it->source_code = source_of(set, r);
	it->quantity = r->qty;
	it->status = in_stock(r);
}

/* Row r alone: its MSI source item, or (legacy) its stock item. The rc of
 * the call; *where: what was saved, for the message. */
static int save_one(const struct m2w_job_env *env, const struct row *r,
		    int legacy, struct m2_result *res, const char **where)
{
	struct m2_source_item it;

	memset(res, 0, sizeof(*res));
	if (legacy) {
		*where = "the legacy stock";
		return m2_stock_item_update(env->conn, r->sku,
					    r->item_id ? r->item_id :
							 LEGACY_ITEM_ID,
					    r->qty, in_stock(r), res);
	}
	source_item(settings_of(env), r, &it);
	*where = it.source_code;
	return m2_source_items_save(env->conn, &it, 1, res);
}

/* Each good row alone (legacy, or a split MSI batch); after a failure
 * that says Magento is unwell the rest are not sent. */
static void each(const struct m2w_job_env *env, const struct row *rows,
		 size_t n, int legacy, struct m2w_outcome *out)
{
	const struct m2w_outcome *stop = NULL;
	struct m2_result res;
	const char *where;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if (!rows[i].ok)
			continue;
		if (stop) {
			not_sent(&out[i], stop);
			continue;
		}
		rc = save_one(env, &rows[i], legacy, &res, &where);
		out[i].calls++;
		saved(&out[i], rc, &res, &rows[i], where);
		if (stops(rc, &res))
			stop = &out[i];
	}
}

static void msi(const struct m2w_job_env *env, const struct row *rows,
		size_t n, struct m2w_outcome *out)
{
	struct m2_source_item *items;
	struct m2_result res;
	size_t i, m = 0;
	int rc;

	items = calloc(n, sizeof(*items));
	if (!items) {
		for (i = 0; i < n; i++)
			if (rows[i].ok)
				jf_outcome(&out[i], M2W_ENOMEM,
					   M2W_CLASS_TRANSIENT,
					   "out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		if (rows[i].ok)
			source_item(settings_of(env), &rows[i], &items[m++]);
	if (m) {
		memset(&res, 0, sizeof(res));
		rc = m2_source_items_save(env->conn, items, m, &res);
		for (i = 0, m = 0; i < n; i++) {
			if (!rows[i].ok)
				continue;
			out[i].calls++;
			saved(&out[i], rc, &res, &rows[i],
			      items[m++].source_code);
		}
		if (rc == M2W_EPERMANENT && m > 1)
			each(env, rows, n, 0, out);
	}
	free(items);
}

static void run(const struct m2w_job_env *env, struct m2w_task *const *tasks,
		struct json_object *const *obj, size_t n,
		struct m2w_outcome *out)
{
	struct row *rows;
	size_t i;

	(void)tasks;
	rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows) {
		for (i = 0; i < n; i++)
			if (obj[i])
				jf_outcome(&out[i], M2W_ENOMEM,
					   M2W_CLASS_TRANSIENT,
					   "out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		if (obj[i])
			row_read(obj[i], &rows[i]);
	if (settings_of(env)->legacy)
		each(env, rows, n, 1, out);
	else
		msi(env, rows, n, out);
	free(rows);
}

const struct m2w_job m2w_job_stock = {
	.name = "stock",
	.summary = "a source item's quantity (MSI, or legacy stock items)",
	.fields = fields,
	.group_key = "stock:{sku}:{source=" DEFAULT_SOURCE "}",
	.supersede = M2W_GROUP_NEWEST,
	.inputs = M2W_IN_CSV | M2W_IN_NDJSON | M2W_IN_JSON,
	.batch = 50,
	.batch_max = 500,
	.settings = settings,
	.settings_size = sizeof(struct settings),
	.defaults = &defaults,
	.run = run,
};
