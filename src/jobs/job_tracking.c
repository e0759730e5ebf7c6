/*
 * job_tracking.c - 3PL tracking numbers onto Magento orders, a batch of
 * tasks (one per order) at a time.
 *
 *   one orders search (increment_id in ...) and one shipments search
 *   (order_id in ...) for the whole batch, then for each task:
 *     track number already on a shipment       -> done, nothing written
 *     order canceled, closed or on hold        -> dead, nothing written
 *                                                 (Magento would refuse)
 *     else, with `items`: the requested skus still unshipped
 *                                              -> POST /order/{id}/ship
 *                                                 (those items + track)
 *           nothing left of them, shipments    -> POST /shipment/track
 *                                                 onto the last shipment
 *     else, without `items`: shipments exist   -> POST /shipment/track
 *                                                 onto the last shipment
 *           no shipment yet                    -> POST /order/{id}/ship
 *                                                 (everything left + track)
 *
 * A batch of 50 costs 2 reads and at most 50 writes: about 1.04 calls a
 * task instead of 3. An order the search does not find is looked up alone
 * (dead "no order with increment id ..." with status 404, or "matches N
 * orders" when the id is not unique across stores).
 *
 * Crash safety. Neither /ship nor /shipment/track is idempotent: posting
 * twice makes two shipments or two identical tracks the customer sees. So
 * every run reads before it writes, and writes exactly once, as its last
 * step: the one POST carries the track (a shipment is created together
 * with its track, never bare). Whatever happens to a run - the worker
 * crashes before, during or after the POST, the POST times out after
 * Magento committed it, the answer is lost, the lease expires - the task
 * runs again from the top, re-reads the shipments, finds the track number
 * if the POST reached Magento, and stops with "already". A track that
 * reached Magento is therefore never posted twice, and one that did not is
 * posted by the retry. Batching keeps this true task by task: the two
 * searches are made in the same run() as the writes, after the lease, and
 * nothing read is kept from one run to the next (no cache), so every write
 * follows a read of its order's shipments made after its task was leased;
 * a task of the batch that failed and comes back is read again with its
 * next batch. check_jobs test_tracking_fresh_read fails if a write goes
 * out on a read older than its run. Two tasks of one order never interleave their
 * read and write: the ordering key "order:<increment id>" lets the store
 * lease one task of an order at a time (else two tracks of an unshipped
 * order could each create a shipment). The same track twice is one task
 * (idempotency key "tracking:<order>:<track>").
 *
 * The track matches by track number, exactly, after trimming: the carrier
 * does not matter (a track is a track number to the customer).
 *
 * `items` maps each sku to the first order item of that sku with quantity
 * left (qty_ordered - qty_shipped - qty_canceled), never spreading one
 * request over several items: a configurable product's parent and child
 * carry the same sku, and only the parent may be shipped. The shipments
 * list does not say which items a shipment holds, so "the last shipment"
 * is the one with the highest id.
 *
 * Threads: run() uses only the caller's connection; no state is kept.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobs_internal.h"

#define ITEMS_MAX 1000
#define QTY_EPS 1e-9

static const struct m2w_field fields[] = {
	{ "order", M2W_FIELD_STRING, 1, 0, JF_ORDER_MAX, NULL,
	  { "order_number", "order_id", "increment_id", "order" }, NULL },
	{ "track", M2W_FIELD_STRING, 1, 0, JF_TEXT_MAX, "tracking number",
	  { "tracking_number", "tracking", "awb", "track" }, NULL },
	{ "carrier", M2W_FIELD_STRING, 1, 0, JF_TEXT_MAX, NULL,
	  { "carrier_code", "carrier" }, "title" },
	{ "title", M2W_FIELD_STRING, 0, 0, JF_TEXT_MAX, NULL,
	  { "title", "carrier_title" }, NULL },
	{ "items", M2W_FIELD_ITEMS, 0, 0, 0, NULL, { NULL }, NULL },
	{ "notify", M2W_FIELD_BOOL, 0, 0, 0, NULL, { NULL }, NULL },
	{ NULL, 0, 0, 0, 0, NULL, { NULL }, NULL }
};

static const struct m2w_field item_fields[] = {
	{ "sku", M2W_FIELD_STRING, 1, 0, JF_TEXT_MAX, NULL, { "sku" }, NULL },
	{ "qty", M2W_FIELD_NUMBER, 1, M2W_RANGE_GT0, 0, NULL,
	  { "qty", "quantity" }, NULL },
	{ NULL, 0, 0, 0, 0, NULL, { NULL }, NULL }
};

/* [tracking] and [carriers]. */
struct settings {
	int notify;              /* notify = yes: Magento emails the customer */
	char *comment;           /* comment = (none) */
	char *source_code;       /* source_code = (none): MSI source shipped
				  * from */
	struct m2w_map carriers; /* [carriers] free-text name = carrier code */
};

static const struct settings defaults = { 1, NULL, NULL, { NULL, 0 } };

static const struct m2w_setting settings[] = {
	{ "notify", M2W_SET_BOOL, JF_SET(struct settings, notify), 0, NULL,
	  NULL, NULL },
	{ "comment", M2W_SET_STR, JF_SET(struct settings, comment), 0, NULL,
	  NULL, NULL },
	{ "source_code", M2W_SET_STR, JF_SET(struct settings, source_code), 0,
	  NULL, NULL, NULL },
	{ "carriers", M2W_SET_MAP, JF_SET(struct settings, carriers), 0, NULL,
	  "carrier", "abcdefghijklmnopqrstuvwxyz0123456789_" },
	{ NULL, 0, 0, 0, NULL, NULL, NULL }
};

/* One requested item. */
struct want {
	char sku[JF_TEXT_MAX + 1];
	double qty;
};

/* A payload, read. */
struct req {
	char order[JF_ORDER_MAX + 1];
	char track[JF_TEXT_MAX + 1];
	char carrier[JF_TEXT_MAX + 1];
	char title[JF_TEXT_MAX + 1];
	struct want *items;
	size_t nitems;
	int notify;              /* -1: the config's */
};

/* What one run has in hand. */
struct ctx {
	const struct m2w_job_env *env;
	const struct settings *set;
	struct m2w_outcome *o;
	struct req r;
	struct m2_order *order;
	struct m2_shipment *ships;
	size_t nships;
	struct m2_track track;
	int batched;             /* its order came from the batched search */
	int failed;              /* its outcome is set: nothing to decide */
};

/* ------------------------------------------------------------- payload */

static void req_release(struct req *r)
{
	free(r->items);
	r->items = NULL;
	r->nitems = 0;
}

static int req_items(struct json_object *a, struct req *r)
{
	size_t i, n = json_object_array_length(a);

	r->items = calloc(n, sizeof(*r->items));
	if (!r->items)
		return -1;
	for (i = 0; i < n; i++) {
		struct json_object *it = json_object_array_get_idx(a, i);

		jf_str(it, "sku", r->items[i].sku, sizeof(r->items[i].sku));
		r->items[i].qty = jf_num(it, "qty", 0);
	}
	r->nitems = n;
	return 0;
}

/* The loaded payload into r; 0, or -1 out of memory. */
static int req_read(struct json_object *o, struct req *r)
{
	struct json_object *items;

	memset(r, 0, sizeof(*r));
	jf_str(o, "order", r->order, sizeof(r->order));
	jf_str(o, "track", r->track, sizeof(r->track));
	jf_str(o, "carrier", r->carrier, sizeof(r->carrier));
	jf_str(o, "title", r->title, sizeof(r->title));
	r->notify = jf_get(o, "notify") ? jf_bool(o, "notify", 0) : -1;
	items = jf_get(o, "items");
	return items ? req_items(items, r) : 0;
}

/* ------------------------------------------------------------ helpers */

/* The id of the shipment holding track number tn, or 0. */
static int64_t track_on(const struct m2_shipment *s, size_t n, const char *tn)
{
	size_t i, j;
	const char *t;
	size_t len, want = strlen(tn);

	for (i = 0; i < n; i++)
		for (j = 0; j < s[i].ntracks; j++) {
			t = s[i].tracks[j].track_number;
			while (*t == ' ' || *t == '\t')
				t++;
			len = strlen(t);
			while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
				len--;
			if (len == want && memcmp(t, tn, len) == 0)
				return s[i].id;
		}
	return 0;
}

static int64_t last_shipment(const struct m2_shipment *s, size_t n)
{
	int64_t id = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i].id > id)
			id = s[i].id;
	return id;
}

/* The Magento carrier code of a free-text name: [carriers], else the
 * name itself when it is a code Magento knows (any case), else "custom". */
static const char *carrier_code(const struct settings *set, const char *name)
{
	static const char *const known[] = {
		"ups", "usps", "fedex", "dhl", "custom",
	};
	const char *code = m2w_map_get(&set->carriers, name);
	size_t i;

	for (i = 0; !code && i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(known[i], name) == 0)
			code = known[i];
	return code ? code : "custom";
}

/* Carrier code from [carriers]; title: the payload's, else the carrier as
 * the 3PL wrote it. */
static void make_track(const struct settings *set, const struct req *r,
		       struct m2_track *t)
{
	const char *code = carrier_code(set, r->carrier);

	memset(t, 0, sizeof(*t));
	snprintf(t->track_number, sizeof(t->track_number), "%s", r->track);
	snprintf(t->carrier_code, sizeof(t->carrier_code), "%s",
		 code && *code ? code : "custom");
	snprintf(t->title, sizeof(t->title), "%s",
		 r->title[0] ? r->title : r->carrier);
}

static double remaining(const struct m2_order_item *it)
{
	return it->qty_ordered - it->qty_shipped - it->qty_canceled;
}

/* Quantity of order item id already in ship[0..n). */
static double taken(const struct m2_ship_item *ship, size_t n, int64_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ship[i].order_item_id == id)
			return ship[i].qty;
	return 0;
}

static void take(struct m2_ship_item *ship, size_t *n, int64_t id, double q)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (ship[i].order_item_id == id) {
			ship[i].qty += q;
			return;
		}
	ship[*n].order_item_id = id;
	ship[*n].qty = q;
	(*n)++;
}

/*
 * Maps one wanted item onto the order: adds what is left of the first
 * item of that sku with quantity left. -1 when the order has no item of
 * the sku.
 */
static int map_want(const struct m2_order *ord, const struct want *w,
		    struct m2_ship_item *ship, size_t *n)
{
	size_t i;
	int found = 0;
	double left;

	for (i = 0; i < ord->nitems; i++) {
		const struct m2_order_item *it = &ord->items[i];

		if (strcmp(it->sku, w->sku) != 0)
			continue;
		found = 1;
		left = remaining(it) - taken(ship, *n, it->item_id);
		if (left > QTY_EPS) {
			take(ship, n, it->item_id, w->qty < left ? w->qty : left);
			break;
		}
	}
	return found ? 0 : -1;
}

/* ------------------------------------------------------------- writes */

/* The ids of a done task, for its result event. */
static void ids(struct ctx *c, int64_t sid)
{
	snprintf(c->o->result, sizeof(c->o->result), "{\"order_id\":%" PRId64
		 ",\"shipment_id\":%" PRId64 "}", c->order->entity_id, sid);
}

static void ship(struct ctx *c, const struct m2_ship_item *items, size_t n)
{
	const struct settings *set = c->set;
	struct m2_ship_req q;
	struct m2_result res;
	int64_t sid = 0;
	int rc;

	memset(&q, 0, sizeof(q));
	memset(&res, 0, sizeof(res));
	q.order_id = c->order->entity_id;
	q.items = n ? items : NULL;
	q.nitems = n;
	q.notify = c->r.notify >= 0 ? c->r.notify : set->notify;
	q.comment = set->comment && *set->comment ? set->comment : NULL;
	q.source_code = set->source_code && *set->source_code ?
				set->source_code : NULL;
	q.tracks = &c->track;
	q.ntracks = 1;
	rc = m2_ship_create(c->env->conn, &q, &sid, &res);
	c->o->calls++;
	if (rc != M2W_OK) {
		m2w_outcome_set(c->o, rc, &res);
		return;
	}
	jf_done(c->o, "shipment %" PRId64 " created with track %s", sid,
		c->r.track);
	ids(c, sid);
	c->o->http_status = res.http_status;
}

static void add_track(struct ctx *c, int64_t sid)
{
	struct m2_result res;
	int rc;

	memset(&res, 0, sizeof(res));
	rc = m2_track_add(c->env->conn, c->order->entity_id, sid, &c->track,
			  &res);
	c->o->calls++;
	if (rc != M2W_OK) {
		m2w_outcome_set(c->o, rc, &res);
		return;
	}
	jf_done(c->o, "track %s added to shipment %" PRId64, c->r.track, sid);
	ids(c, sid);
	c->o->http_status = res.http_status;
}

/* With `items`: ship those still unshipped, else track the last
 * shipment. */
static void ship_items(struct ctx *c)
{
	struct m2_ship_item *items;
	size_t i, n = 0;

	items = calloc(c->r.nitems, sizeof(*items));
	if (!items) {
		jf_outcome(c->o, M2W_ENOMEM, M2W_CLASS_TRANSIENT,
			   "out of memory");
		return;
	}
	for (i = 0; i < c->r.nitems; i++)
		if (map_want(c->order, &c->r.items[i], items, &n)) {
			jf_outcome(c->o, M2W_EPERMANENT, M2W_CLASS_PERMANENT,
				   "order %s has no item with sku %s",
				   c->r.order, c->r.items[i].sku);
			free(items);
			return;
		}
	if (n)
		ship(c, items, n);
	else if (c->nships)
		add_track(c, last_shipment(c->ships, c->nships));
	else
		jf_outcome(c->o, M2W_EPERMANENT, M2W_CLASS_PERMANENT,
			   "order %s has nothing left to ship of the given "
			   "items", c->r.order);
	free(items);
}

/* ---------------------------------------------------------------- run */

/* Order and shipments of one task alone (an increment id the batched
 * search cannot carry, or one it did not find); 0, or -1 with the
 * outcome set. */
static int read_order(struct ctx *c)
{
	struct m2_result res;
	int rc;

	memset(&res, 0, sizeof(res));
	rc = m2_order_find(c->env->conn, c->r.order, &c->order, &res);
	c->o->calls++;
	if (rc == M2W_ENOTFOUND) {
		jf_outcome(c->o, M2W_ENOTFOUND, M2W_CLASS_PERMANENT,
			   "no order with increment id %s", c->r.order);
		c->o->http_status = 404;  /* not the search's 200 */
		return -1;
	}
	if (rc != M2W_OK) {
		m2w_outcome_set(c->o, rc, &res);
		return -1;
	}
	rc = m2_shipments_list(c->env->conn, c->order->entity_id, &c->ships,
			       &c->nships, &res);
	c->o->calls++;
	if (rc != M2W_OK) {
		m2w_outcome_set(c->o, rc, &res);
		return -1;
	}
	return 0;
}

/* Shipments ships[0..n) (from one search) handed to the batched tasks of
 * their orders, tracks and all; ships itself is freed. -1 out of memory. */
static int deal_shipments(struct ctx **cs, size_t k, struct m2_shipment *ships,
			  size_t n)
{
	size_t i, j, m;
	int rc = 0;

	for (i = 0; i < k && !rc; i++) {
		if (!cs[i]->batched)
			continue;
		for (j = m = 0; j < n; j++)
			m += ships[j].order_id == cs[i]->order->entity_id;
		if (!m)
			continue;
		if (!(cs[i]->ships = calloc(m, sizeof(*cs[i]->ships)))) {
			rc = -1;
			break;
		}
		for (j = 0; j < n; j++)
			if (ships[j].order_id == cs[i]->order->entity_id) {
				cs[i]->ships[cs[i]->nships++] = ships[j];
				ships[j].tracks = NULL;   /* moved */
			}
	}
	m2_shipments_free(ships, n);     /* what no task took */
	return rc;
}

/*
 * Reads the orders of cs[0..k) in one search and the shipments of those
 * found in one more; an order the search did not find is looked up alone
 * (read_order), so that "no such order" and "more than one" keep their
 * own answers. Afterwards a task has its order and shipments, or `failed`
 * with its outcome set. The two searches count on the first task.
 */
static void read_orders(struct ctx **cs, size_t k)
{
	const char **ids = calloc(k, sizeof(*ids));
	int64_t *eids = calloc(k, sizeof(*eids));
	struct m2_order **found = NULL;
	struct m2_shipment *ships = NULL;
	struct m2_result res;
	size_t i, ne = 0, nships = 0;
	int rc = M2W_ENOMEM;

	memset(&res, 0, sizeof(res));
	if (ids && eids) {
		for (i = 0; i < k; i++)
			ids[i] = cs[i]->r.order;
		rc = m2_orders_find(cs[0]->env->conn, ids, k, &found, &res);
		cs[0]->o->calls++;
	}
	for (i = 0; i < k; i++) {
		if (rc != M2W_OK) {
			if (rc == M2W_ENOMEM)
				jf_outcome(cs[i]->o, rc, M2W_CLASS_TRANSIENT,
					   "out of memory");
			else
				m2w_outcome_set(cs[i]->o, rc, &res);
			cs[i]->failed = 1;
		} else if (found && found[i]) {
			cs[i]->order = found[i];
			found[i] = NULL;
			cs[i]->batched = 1;
			eids[ne++] = cs[i]->order->entity_id;
		} else {
			cs[i]->failed = read_order(cs[i]) != 0;
		}
	}
	if (rc != M2W_OK || !ne)
		goto out;
	memset(&res, 0, sizeof(res));
	rc = m2_shipments_of(cs[0]->env->conn, eids, ne, &ships, &nships,
			     &res);
	cs[0]->o->calls++;
	if (rc == M2W_OK && deal_shipments(cs, k, ships, nships))
		rc = M2W_ENOMEM;
	for (i = 0; rc != M2W_OK && i < k; i++) {
		if (!cs[i]->batched)
			continue;
		if (rc == M2W_ENOMEM)
			jf_outcome(cs[i]->o, rc, M2W_CLASS_TRANSIENT,
				   "out of memory");
		else
			m2w_outcome_set(cs[i]->o, rc, &res);
		cs[i]->failed = 1;
	}
out:
	m2_orders_free(found, k);
	free(ids);
	free(eids);
}

/* Magento refuses shipments and tracks on these (400): dead from the
 * read, without the doomed POST. */
static const char *closed_state(const char *state)
{
	static const char *const no[] = { "canceled", "closed", "holded" };
	static const char *const say[] = { "canceled", "closed", "on hold" };
	size_t i;

	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (strcmp(state, no[i]) == 0)
			return say[i];
	return NULL;
}

/* What one task's read says to do, and doing it: at most one POST. */
static void decide(struct ctx *c)
{
	const char *why;
	int64_t sid;

	sid = track_on(c->ships, c->nships, c->r.track);
	make_track(c->set, &c->r, &c->track);
	if (sid) {
		jf_done(c->o, "track %s already on shipment %" PRId64,
			c->r.track, sid);
		ids(c, sid);
	} else if ((why = closed_state(c->order->state))) {
		jf_outcome(c->o, M2W_EPERMANENT, M2W_CLASS_PERMANENT,
			   "order %s is %s: Magento takes no shipment or "
			   "track for it", c->r.order, why);
	} else if (c->r.nitems) {
		ship_items(c);
	} else if (c->nships) {
		add_track(c, last_shipment(c->ships, c->nships));
	} else {
		ship(c, NULL, 0);
	}
}

/*
 * A batch of tasks, one per order (the ordering key leases one task of an
 * order at a time): their orders in one search, the shipments of those
 * orders in one more, then one write per task that needs one. The reads
 * are made in this run, after the lease, before any write: the crash
 * safety argument at the top holds for every task of the batch. Orders go
 * to the search CHUNK_IDS at a time and at most URL_IDS bytes of ids, so
 * the URL stays short; an increment id holding a comma (the search's
 * separator) is read alone.
 */
#define CHUNK_IDS 100
#define URL_IDS 1500
static void track_batch(const struct m2w_job_env *env,
			struct m2w_task *const *tasks,
			struct json_object *const *obj, size_t n,
			struct m2w_outcome *out)
{
	struct ctx *c = calloc(n ? n : 1, sizeof(*c));
	struct ctx **chunk = calloc(n ? n : 1, sizeof(*chunk));
	size_t i, k = 0, bytes = 0;

	(void)tasks;
	if (!c || !chunk) {
		for (i = 0; i < n; i++)
			if (obj[i])
				jf_outcome(&out[i], M2W_ENOMEM,
					   M2W_CLASS_TRANSIENT,
					   "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		c[i].env = env;
		c[i].set = env->settings ? env->settings : &defaults;
		c[i].o = &out[i];
		if (!obj[i]) {            /* its outcome is set */
			c[i].failed = 1;
			continue;
		}
		if (req_read(obj[i], &c[i].r)) {
			jf_outcome(&out[i], M2W_ENOMEM, M2W_CLASS_TRANSIENT,
				   "out of memory");
			c[i].failed = 1;
			continue;
		}
		if (strchr(c[i].r.order, ',')) {
			c[i].failed = read_order(&c[i]) != 0;
			continue;
		}
		if (k && (k == CHUNK_IDS ||
			  bytes + strlen(c[i].r.order) > URL_IDS)) {
			read_orders(chunk, k);
			k = bytes = 0;
		}
		chunk[k++] = &c[i];
		bytes += strlen(c[i].r.order) + 1;
	}
	if (k)
		read_orders(chunk, k);
	for (i = 0; i < n; i++)
		if (!c[i].failed && c[i].order)
			decide(&c[i]);
out:
	for (i = 0; c && i < n; i++) {
		m2_shipments_free(c[i].ships, c[i].nships);
		m2_order_free(c[i].order);
		req_release(&c[i].r);
	}
	free(chunk);
	free(c);
}

const struct m2w_job m2w_job_tracking = {
	.name = "tracking",
	.summary = "a 3PL tracking number onto an order (its shipment)",
	.fields = fields,
	.item_fields = item_fields,
	.items_max = ITEMS_MAX,
	.idem_key = "tracking:{order}:{track}",
	.group_key = "order:{order}",
	.supersede = M2W_GROUP_EXCLUSIVE,
	.inputs = M2W_IN_CSV | M2W_IN_NDJSON | M2W_IN_JSON,
	.batch = 50,
	.batch_max = 500,
	.settings = settings,
	.settings_size = sizeof(struct settings),
	.defaults = &defaults,
	.run = track_batch,
};
