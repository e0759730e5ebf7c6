/*
 * job_tracking.c - a 3PL tracking number onto a Magento order.
 *
 *   order_find(increment id) -> shipments_list(entity id)
 *     track number already on a shipment       -> done, nothing written
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
 * posted by the retry. Two tasks of one order never interleave their
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

/* Order and shipments into c; 0, or -1 with the outcome set. */
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
		c->o->http_status = res.http_status;
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

static void track_one(const struct m2w_job_env *env, struct json_object *p,
		      struct m2w_outcome *o)
{
	struct ctx c;
	int64_t sid;

	memset(&c, 0, sizeof(c));
	c.env = env;
	c.set = env->settings ? env->settings : &defaults;
	c.o = o;
	if (req_read(p, &c.r)) {
		jf_outcome(o, M2W_ENOMEM, M2W_CLASS_TRANSIENT, "out of memory");
		req_release(&c.r);
		return;
	}
	if (read_order(&c) == 0) {
		sid = track_on(c.ships, c.nships, c.r.track);
		make_track(c.set, &c.r, &c.track);
		if (sid) {
			jf_done(o, "track %s already on shipment %" PRId64,
				c.r.track, sid);
			ids(&c, sid);
		}
		else if (c.r.nitems)
			ship_items(&c);
		else if (c.nships)
			add_track(&c, last_shipment(c.ships, c.nships));
		else
			ship(&c, NULL, 0);
	}
	m2_shipments_free(c.ships, c.nships);
	m2_order_free(c.order);
	req_release(&c.r);
}

const struct m2w_job m2w_job_tracking = {
	.name = "tracking",
	.summary = "a 3PL tracking number onto an order (its shipment)",
	.fields = fields,
	.item_fields = item_fields,
	.items_max = ITEMS_MAX,
	.idem_key = "tracking:{order}:{track}",
	.group_key = "order:{order}",
	.supersede = 0,
	.inputs = M2W_IN_CSV | M2W_IN_NDJSON | M2W_IN_JSON,
	.batch = 0,
	.batch_note = "a shipment is created and tracked one order per call",
	.settings = settings,
	.settings_size = sizeof(struct settings),
	.defaults = &defaults,
	.run_one = track_one,
};
