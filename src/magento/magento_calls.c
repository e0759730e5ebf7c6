/*
 * magento_calls.c - the typed calls the worker makes: orders, shipments,
 * tracks, stock, prices.
 *
 * Each call builds its body with json-c (only documented keys: an unknown
 * key is a 400, or a 500 when nested), runs it through m2i_call and reads
 * the answer into the caller's structs. An answer of the wrong shape is
 * M2W_EPROTO (counted transient: a proxy page, a half-upgraded store).
 *
 * Orders are looked up by increment id with `fields` trimming the answer
 * (much faster on real stores). Increment ids are unique per store only:
 * more than one match is reported, never guessed.
 *
 * Base prices answer 200 even when rows fail (the valid rows are saved);
 * each failure is mapped back to its row by its SKU and store id
 * parameters. A failure that names no row makes the whole call M2W_EPROTO:
 * we could not tell which rows were saved.
 *
 * Doubles go out as "%.15g" text (json_object_new_double_s) so that 19.99
 * is sent as 19.99, not 19.989999999999998.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "magento_internal.h"

#define ORDER_FIELDS "items[entity_id,increment_id,state,status," \
	"items[item_id,sku,qty_ordered,qty_shipped,qty_canceled]],total_count"
#define SHIPMENT_FIELDS "items[entity_id,order_id,tracks[track_number," \
	"carrier_code,title]],total_count"
#define ORDERS_PAGE 100
#define WALK_STOP (-1)               /* a walk callback's "stop" */
#define SHIPMENTS_PAGE 100

/* ------------------------------------------------------------ helpers */

static struct json_object *jnum(double d)
{
	char s[40];

	snprintf(s, sizeof(s), "%.15g", d);
#if defined(JSON_C_VERSION_NUM) && JSON_C_VERSION_NUM >= 0x000c00
	return json_object_new_double_s(d, s);
#else
	return json_object_new_double(d);
#endif
}

static void jadd(struct json_object *o, const char *key,
		 struct json_object *v)
{
	json_object_object_add(o, key, v);
}

static double jdouble(struct json_object *o, const char *key)
{
	struct json_object *v = m2i_get(o, key);

	if (json_object_is_type(v, json_type_double) ||
	    json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_string))
		return json_object_get_double(v);
	return 0;
}

/* Copies the string member key into out (truncating); "" when absent. */
static void jstr(struct json_object *o, const char *key, char *out,
		 size_t outlen)
{
	struct json_object *v = m2i_get(o, key);

	snprintf(out, outlen, "%s",
		 json_object_is_type(v, json_type_string) ||
				 json_object_is_type(v, json_type_int) ?
			 json_object_get_string(v) : "");
}

static int oom(struct m2_result *res)
{
	return m2i_result_set(res, M2W_ENOMEM, M2W_CLASS_TRANSIENT,
			      "out of memory");
}

static int bad_arg(struct m2_result *res, const char *what)
{
	m2i_result_clear(res);
	return m2i_result_set(res, M2W_EINVAL, M2W_CLASS_PERMANENT, "%s",
			      what);
}

static int bad_shape(struct m2_result *res, const char *what)
{
	return m2i_result_set(res, M2W_EPROTO, M2W_CLASS_TRANSIENT,
			      "HTTP %d: %s", res->http_status, what);
}

/* path?query as one malloc'd string; NULL when out of memory. */
static char *with_query(const char *path, const struct m2_query *q)
{
	const char *qs = m2_query_str(q);
	char *s;

	if (!qs || asprintf(&s, "%s?%s", path, qs) < 0)
		return NULL;
	return s;
}

/* ------------------------------------------------------------- orders */

void m2_order_free(struct m2_order *o)
{
	if (!o)
		return;
	free(o->items);
	free(o);
}

static int parse_item(struct json_object *j, struct m2_order_item *it)
{
	if (!json_object_is_type(j, json_type_object) ||
	    !m2i_json_int64(m2i_get(j, "item_id"), &it->item_id))
		return -1;
	jstr(j, "sku", it->sku, sizeof(it->sku));
	it->qty_ordered = jdouble(j, "qty_ordered");
	it->qty_shipped = jdouble(j, "qty_shipped");
	it->qty_canceled = jdouble(j, "qty_canceled");
	return 0;
}

/* An order object -> *out; -1 on a bad shape, -2 out of memory. */
static int parse_order(struct json_object *j, struct m2_order **out)
{
	struct json_object *items = m2i_get(j, "items");
	struct m2_order *o;
	size_t i, n;

	*out = NULL;
	if (!json_object_is_type(j, json_type_object) ||
	    (items && !json_object_is_type(items, json_type_array)))
		return -1;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -2;
	n = items ? json_object_array_length(items) : 0;
	o->items = calloc(n ? n : 1, sizeof(*o->items));
	if (!o->items) {
		free(o);
		return -2;
	}
	o->nitems = n;
	for (i = 0; i < n; i++)
		if (parse_item(json_object_array_get_idx(items, i),
			       &o->items[i]) < 0)
			break;
	if (i < n || !m2i_json_int64(m2i_get(j, "entity_id"),
				     &o->entity_id)) {
		m2_order_free(o);
		return -1;
	}
	jstr(j, "increment_id", o->increment_id, sizeof(o->increment_id));
	jstr(j, "state", o->state, sizeof(o->state));
	jstr(j, "status", o->status, sizeof(o->status));
	*out = o;
	return 0;
}

static int parse_order_rc(int r, struct m2_result *res)
{
	return r == -2 ? oom(res) : bad_shape(res, "an order without "
					      "entity_id or item_id");
}

int m2_order_find(struct m2_conn *k, const char *increment_id,
		  struct m2_order **out, struct m2_result *res)
{
	struct json_object *body = NULL, *items;
	struct m2_query q;
	int64_t total = -1;
	size_t n = 0;
	char *path;
	int rc, r;

	*out = NULL;
	if (!increment_id || !*increment_id)
		return bad_arg(res, "order increment id is empty");
	m2_query_init(&q);
	m2_query_filter(&q, 0, 0, "increment_id", increment_id, "eq");
	m2_query_fields(&q, ORDER_FIELDS);
	path = with_query("/orders", &q);
	m2_query_release(&q);
	if (!path) {
		m2i_result_clear(res);
		return oom(res);
	}
	rc = m2i_call(k, "GET", path, NULL, NULL, &body, res);
	free(path);
	if (rc)
		return rc;
	items = m2i_get(body, "items");
	if ((items && !json_object_is_type(items, json_type_array)) ||
	    !json_object_is_type(body, json_type_object)) {
		rc = bad_shape(res, "orders answer has no items[]");
		goto out;
	}
	n = items ? json_object_array_length(items) : 0;
	if (!m2i_json_int64(m2i_get(body, "total_count"), &total))
		total = (int64_t)n;
	if (n == 0 || total == 0)
		rc = m2i_result_set(res, M2W_ENOTFOUND, M2W_CLASS_PERMANENT,
				    "no order with increment id %.100s",
				    increment_id);
	else if (total > 1 || n > 1)
		rc = m2i_result_set(res, M2W_EPERMANENT, M2W_CLASS_PERMANENT,
				    "increment id %.100s matches %lld orders "
				    "(unique per store only): set store_code",
				    increment_id,
				    (long long)(total > (int64_t)n ? total :
							 (int64_t)n));
	else if ((r = parse_order(json_object_array_get_idx(items, 0), out)))
		rc = parse_order_rc(r, res);
out:
	json_object_put(body);
	return rc;
}

struct orders_walk {
	const char *const *ids;
	size_t n;
	struct m2_order **found;
	unsigned char *count;        /* matches per id, saturating at 2 */
	int err;                     /* parse_order's code */
};

static int orders_each(struct json_object *item, void *arg)
{
	struct orders_walk *w = arg;
	char incr[64];
	size_t i;
	int r;

	jstr(item, "increment_id", incr, sizeof(incr));
	for (i = 0; i < w->n; i++) {
		if (strcmp(w->ids[i], incr) != 0)
			continue;
		if (w->count[i] < 2)
			w->count[i]++;
		if (w->count[i] > 1)
			continue;
		r = parse_order(item, &w->found[i]);
		if (r) {
			w->err = r;
			return WALK_STOP;
		}
	}
	return 0;
}

static int check_ids(const char *const *ids, size_t n, struct m2_query *q)
{
	struct m2w_buf b;
	size_t i, j;

	m2w_buf_init(&b, 0);
	for (i = 0; i < n; i++) {
		if (!ids[i] || !*ids[i] || strchr(ids[i], ',')) {
			m2w_buf_release(&b);
			return M2W_EINVAL;
		}
		for (j = 0; j < i && strcmp(ids[j], ids[i]) != 0; j++)
			;
		if (j == i)
			m2w_buf_addf(&b, "%s%s", i ? "," : "", ids[i]);
	}
	m2_query_filter(q, 0, 0, "increment_id", m2w_buf_str(&b), "in");
	m2_query_fields(q, ORDER_FIELDS);
	if (b.failed)
		q->b.failed = 1;
	m2w_buf_release(&b);
	return q->b.failed ? M2W_ENOMEM : M2W_OK;
}

void m2_orders_free(struct m2_order **o, size_t n)
{
	size_t i;

	if (!o)
		return;
	for (i = 0; i < n; i++)
		m2_order_free(o[i]);
	free(o);
}

int m2_orders_find(struct m2_conn *k, const char *const *ids, size_t n,
		   struct m2_order ***out, struct m2_result *res)
{
	struct orders_walk w = { ids, n, NULL, NULL, 0 };
	struct m2_query q;
	size_t i;
	int rc;

	*out = NULL;
	m2i_result_clear(res);
	if (n == 0)
		return M2W_OK;
	m2_query_init(&q);
	rc = check_ids(ids, n, &q);
	w.found = calloc(n, sizeof(*w.found));
	w.count = calloc(n, 1);
	if (rc == M2W_EINVAL)
		rc = m2i_result_set(res, rc, M2W_CLASS_PERMANENT, "an order "
				    "increment id is empty or holds a comma");
	else if (rc || !w.found || !w.count)
		rc = oom(res);
	else
		rc = m2i_search_walk(k, "/orders", m2_query_str(&q),
				     ORDERS_PAGE, orders_each, &w, res);
	m2_query_release(&q);
	if (rc == WALK_STOP)
		rc = w.err == -2 ? oom(res) : parse_order_rc(w.err, res);
	for (i = 0; w.found && w.count && i < n; i++)
		if (rc || w.count[i] > 1) {
			m2_order_free(w.found[i]);
			w.found[i] = NULL;
		}
	free(w.count);
	if (rc) {
		free(w.found);
		return rc;
	}
	*out = w.found;
	return M2W_OK;
}

/* ---------------------------------------------------------- shipments */

void m2_shipments_free(struct m2_shipment *s, size_t n)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < n; i++)
		free(s[i].tracks);
	free(s);
}

struct ship_walk {
	struct m2_shipment *s;
	size_t n, cap;
	int err;                     /* -1 bad shape, -2 out of memory */
};

static int parse_tracks(struct json_object *tr, struct m2_shipment *s)
{
	struct json_object *t;
	size_t i, n;

	if (!tr)
		return 0;
	if (!json_object_is_type(tr, json_type_array))
		return -1;
	n = json_object_array_length(tr);
	s->tracks = calloc(n ? n : 1, sizeof(*s->tracks));
	if (!s->tracks)
		return -2;
	for (i = 0; i < n; i++) {
		t = json_object_array_get_idx(tr, i);
		if (!json_object_is_type(t, json_type_object))
			return -1;
		jstr(t, "track_number", s->tracks[i].track_number,
		     sizeof(s->tracks[i].track_number));
		jstr(t, "carrier_code", s->tracks[i].carrier_code,
		     sizeof(s->tracks[i].carrier_code));
		jstr(t, "title", s->tracks[i].title,
		     sizeof(s->tracks[i].title));
		s->ntracks++;
	}
	return 0;
}

static int shipments_each(struct json_object *item, void *arg)
{
	struct ship_walk *w = arg;
	struct m2_shipment *p;
	size_t cap;

	if (w->n == w->cap) {
		cap = w->cap ? 2 * w->cap : 4;
		p = realloc(w->s, cap * sizeof(*p));
		if (!p) {
			w->err = -2;
			return WALK_STOP;
		}
		w->s = p;
		w->cap = cap;
	}
	p = &w->s[w->n++];
	memset(p, 0, sizeof(*p));
	m2i_json_int64(m2i_get(item, "order_id"), &p->order_id);
	if (!m2i_json_int64(m2i_get(item, "entity_id"), &p->id))
		w->err = -1;
	else
		w->err = parse_tracks(m2i_get(item, "tracks"), p);
	return w->err ? WALK_STOP : 0;
}

int m2_shipments_list(struct m2_conn *k, int64_t order_id,
		      struct m2_shipment **out, size_t *n,
		      struct m2_result *res)
{
	return m2_shipments_of(k, &order_id, 1, out, n, res);
}

int m2_shipments_of(struct m2_conn *k, const int64_t *order_ids, size_t nids,
		    struct m2_shipment **out, size_t *n, struct m2_result *res)
{
	struct ship_walk w = { NULL, 0, 0, 0 };
	struct m2w_buf ids;
	struct m2_query q;
	size_t i;
	int rc;

	*out = NULL;
	*n = 0;
	m2i_result_clear(res);
	if (!nids)
		return M2W_OK;
	m2w_buf_init(&ids, 0);
	for (i = 0; i < nids; i++) {
		if (order_ids[i] <= 0) {
			m2w_buf_release(&ids);
			return bad_arg(res, "order id must be positive");
		}
		m2w_buf_addf(&ids, "%s%lld", i ? "," : "",
			     (long long)order_ids[i]);
	}
	m2_query_init(&q);
	m2_query_filter(&q, 0, 0, "order_id", m2w_buf_str(&ids),
			nids > 1 ? "in" : "eq");
	m2_query_fields(&q, SHIPMENT_FIELDS);
	if (ids.failed)
		q.b.failed = 1;
	m2w_buf_release(&ids);
	rc = m2i_search_walk(k, "/shipments", m2_query_str(&q),
			     SHIPMENTS_PAGE, shipments_each, &w, res);
	m2_query_release(&q);
	if (rc == WALK_STOP)
		rc = w.err == -2 ? oom(res) :
				   bad_shape(res, "a shipment without "
					     "entity_id or with bad tracks");
	if (rc) {
		m2_shipments_free(w.s, w.n);
		return rc;
	}
	*out = w.s;
	*n = w.n;
	return M2W_OK;
}

/* ------------------------------------------------------- ship, track */

static struct json_object *track_json(const struct m2_track *t)
{
	struct json_object *o = json_object_new_object();

	jadd(o, "track_number", json_object_new_string(t->track_number));
	jadd(o, "title", json_object_new_string(t->title));
	jadd(o, "carrier_code", json_object_new_string(t->carrier_code));
	return o;
}

static struct json_object *ship_body(const struct m2_ship_req *r)
{
	struct json_object *o = json_object_new_object(), *a, *it, *x;
	size_t i;

	if (r->nitems) {
		a = json_object_new_array();
		for (i = 0; i < r->nitems; i++) {
			it = json_object_new_object();
			jadd(it, "order_item_id",
			     json_object_new_int64(r->items[i].order_item_id));
			jadd(it, "qty", jnum(r->items[i].qty));
			json_object_array_add(a, it);
		}
		jadd(o, "items", a);
	}
	jadd(o, "notify", json_object_new_boolean(r->notify != 0));
	jadd(o, "appendComment", json_object_new_boolean(r->comment != NULL));
	if (r->comment) {
		x = json_object_new_object();
		jadd(x, "comment", json_object_new_string(r->comment));
		jadd(x, "is_visible_on_front", json_object_new_int(0));
		jadd(o, "comment", x);
	}
	if (r->ntracks) {
		a = json_object_new_array();
		for (i = 0; i < r->ntracks; i++)
			json_object_array_add(a, track_json(&r->tracks[i]));
		jadd(o, "tracks", a);
	}
	if (r->source_code) {
		x = json_object_new_object();
		jadd(x, "source_code", json_object_new_string(r->source_code));
		it = json_object_new_object();
		jadd(it, "extension_attributes", x);
		jadd(o, "arguments", it);
	}
	return o;
}

static int check_ship_req(const struct m2_ship_req *r, struct m2_result *res)
{
	size_t i;

	if (!r || r->order_id <= 0)
		return bad_arg(res, "ship: order id must be positive");
	if ((r->nitems && !r->items) || (r->ntracks && !r->tracks))
		return bad_arg(res, "ship: items or tracks missing");
	for (i = 0; i < r->nitems; i++)
		if (r->items[i].order_item_id <= 0 ||
		    !isfinite(r->items[i].qty) || r->items[i].qty <= 0)
			return bad_arg(res, "ship: an item has a bad id or "
				       "quantity");
	return M2W_OK;
}

int m2_ship_create(struct m2_conn *k, const struct m2_ship_req *r,
		   int64_t *shipment_id, struct m2_result *res)
{
	struct json_object *body, *ans = NULL;
	char path[64];
	int rc;

	*shipment_id = 0;
	rc = check_ship_req(r, res);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "/order/%lld/ship",
		 (long long)r->order_id);
	body = ship_body(r);
	rc = m2i_call_json(k, "POST", path, body, &ans, res);
	json_object_put(body);
	if (rc == M2W_OK && (!m2i_json_int64(ans, shipment_id) ||
			     *shipment_id <= 0))
		rc = bad_shape(res, "ship answer is not a shipment id");
	json_object_put(ans);
	return rc;
}

int m2_track_add(struct m2_conn *k, int64_t order_id, int64_t shipment_id,
		 const struct m2_track *t, struct m2_result *res)
{
	struct json_object *body, *e, *ans = NULL;
	int rc;

	if (order_id <= 0 || shipment_id <= 0 || !t || !*t->track_number)
		return bad_arg(res, "track: order id, shipment id and track "
			       "number are required");
	e = json_object_new_object();
	jadd(e, "order_id", json_object_new_int64(order_id));
	jadd(e, "parent_id", json_object_new_int64(shipment_id));
	jadd(e, "track_number", json_object_new_string(t->track_number));
	jadd(e, "title", json_object_new_string(t->title));
	jadd(e, "carrier_code", json_object_new_string(t->carrier_code));
	body = json_object_new_object();
	jadd(body, "entity", e);
	rc = m2i_call_json(k, "POST", "/shipment/track", body, &ans, res);
	json_object_put(body);
	if (rc == M2W_OK && !json_object_is_type(ans, json_type_object))
		rc = bad_shape(res, "track answer is not a track object");
	json_object_put(ans);
	return rc;
}

/* -------------------------------------------------------------- stock */

int m2_source_items_save(struct m2_conn *k, const struct m2_source_item *it,
			 size_t n, struct m2_result *res)
{
	struct json_object *body, *a, *o, *ans = NULL;
	size_t i;
	int rc;

	if (!n || !it)
		return bad_arg(res, "source items: nothing to save");
	for (i = 0; i < n; i++)
		if (!it[i].sku || !*it[i].sku || !isfinite(it[i].quantity))
			return bad_arg(res, "source items: a row has no sku "
				       "or a bad quantity");
	a = json_object_new_array();
	for (i = 0; i < n; i++) {
		o = json_object_new_object();
		jadd(o, "sku", json_object_new_string(it[i].sku));
		jadd(o, "source_code", json_object_new_string(
					       it[i].source_code ?
						       it[i].source_code :
						       "default"));
		jadd(o, "quantity", jnum(it[i].quantity));
		jadd(o, "status", json_object_new_int(it[i].status ? 1 : 0));
		json_object_array_add(a, o);
	}
	body = json_object_new_object();
	jadd(body, "sourceItems", a);
	rc = m2i_call_json(k, "POST", "/inventory/source-items", body, &ans,
			   res);
	json_object_put(body);
	json_object_put(ans);
	return rc;
}

int m2_stock_item_update(struct m2_conn *k, const char *sku, int64_t item_id,
			 double qty, int in_stock, struct m2_result *res)
{
	struct json_object *body, *si, *ans = NULL;
	struct m2w_buf path;
	int rc;

	if (!sku || !*sku || item_id <= 0 || !isfinite(qty))
		return bad_arg(res, "stock item: sku, item id and quantity "
			       "are required");
	m2w_buf_init(&path, 0);
	m2w_buf_adds(&path, "/products/");
	m2i_buf_add_enc(&path, sku, strlen(sku));
	m2w_buf_addf(&path, "/stockItems/%lld", (long long)item_id);
	if (path.failed) {
		m2w_buf_release(&path);
		m2i_result_clear(res);
		return oom(res);
	}
	si = json_object_new_object();
	jadd(si, "qty", jnum(qty));
	jadd(si, "is_in_stock", json_object_new_boolean(in_stock != 0));
	body = json_object_new_object();
	jadd(body, "stockItem", si);
	rc = m2i_call_json(k, "PUT", path.buf, body, &ans, res);
	json_object_put(body);
	json_object_put(ans);
	m2w_buf_release(&path);
	return rc;
}

/* ------------------------------------------------------------- prices */

void m2_row_errors_free(char **errs, size_t n)
{
	size_t i;

	if (!errs)
		return;
	for (i = 0; i < n; i++)
		free(errs[i]);
	free(errs);
}

static struct json_object *price_body(const struct m2_price *p, size_t n)
{
	struct json_object *body, *a, *o;
	size_t i;

	a = json_object_new_array();
	for (i = 0; i < n; i++) {
		o = json_object_new_object();
		jadd(o, "price", jnum(p[i].price));
		jadd(o, "store_id", json_object_new_int(p[i].store_id));
		jadd(o, "sku", json_object_new_string(p[i].sku));
		json_object_array_add(a, o);
	}
	body = json_object_new_object();
	jadd(body, "prices", a);
	return body;
}

/* A failure's row: the first row not failed yet with its sku (and store
 * id, when given); else the last such row; -1 when none. */
static long find_row(const struct m2_price *p, size_t n, char **errs,
		     const char *sku, int has_store, int64_t store)
{
	long last = -1;
	size_t i;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n; i++) {
			if ((pass ? strcasecmp(p[i].sku, sku) :
				    strcmp(p[i].sku, sku)) != 0 ||
			    (has_store && p[i].store_id != store))
				continue;
			if (!errs[i])
				return (long)i;
			last = (long)i;
		}
		if (last >= 0)
			return last;
	}
	return -1;
}

/* Records msg for row i (appended when the row failed already). */
static int row_error(char **errs, long i, const char *msg)
{
	char *s;

	if (!errs[i])
		s = strdup(msg);
	else if (asprintf(&s, "%s; %s", errs[i], msg) < 0)
		s = NULL;
	if (!s)
		return -1;
	free(errs[i]);
	errs[i] = s;
	return 0;
}

/* Maps one failure to its row; 1 when it names none, -1 out of memory. */
static int map_failure(struct json_object *f, const struct m2_price *p,
		       size_t n, char **errs, char *msg, size_t msglen)
{
	struct json_object *params = m2i_get(f, "parameters"), *sku, *st;
	int64_t store = 0;
	int has_store;
	long row;

	m2i_message_fill_obj(json_object_get_string(m2i_get(f, "message")),
			     params, msg, msglen);
	if (!*msg)
		snprintf(msg, msglen, "%s",
			 json_object_to_json_string_ext(f,
							JSON_C_TO_STRING_PLAIN));
	sku = m2i_get(params, "SKU");
	if (!sku)
		sku = m2i_get(params, "sku");
	st = m2i_get(params, "storeId");
	if (!st)
		st = m2i_get(params, "store_id");
	if (!json_object_is_type(sku, json_type_string))
		return 1;
	has_store = m2i_json_int64(st, &store);
	row = find_row(p, n, errs, json_object_get_string(sku), has_store,
		       store);
	if (row < 0)
		return 1;
	return row_error(errs, row, msg) < 0 ? -1 : 0;
}

/* The failures array -> errs; res set on error. */
static int map_failures(struct json_object *ans, const struct m2_price *p,
			size_t n, char **errs, struct m2_result *res)
{
	char msg[M2_MESSAGE_MAX + 1], first[M2_MESSAGE_MAX + 1] = "";
	char lost_msg[M2_MESSAGE_MAX + 1] = "";
	size_t i, nf, lost = 0;
	int r;

	if (!json_object_is_type(ans, json_type_array))
		return bad_shape(res, "base prices answer is not an array");
	nf = json_object_array_length(ans);
	for (i = 0; i < nf; i++) {
		r = map_failure(json_object_array_get_idx(ans, i), p, n, errs,
				msg, sizeof(msg));
		if (r < 0)
			return oom(res);
		if (i == 0)
			snprintf(first, sizeof(first), "%s", msg);
		if (r > 0 && lost++ == 0)
			snprintf(lost_msg, sizeof(lost_msg), "%s", msg);
	}
	if (lost)
		return m2i_result_set(res, M2W_EPROTO, M2W_CLASS_TRANSIENT,
				      "base prices: %zu of %zu failures name no "
				      "row, so which rows were saved is "
				      "unknown: %s", lost, nf, lost_msg);
	if (nf)
		m2i_result_set(res, M2W_OK, M2W_CLASS_OK, "base prices: %zu "
			       "failure(s) in %zu rows, first: %s", nf, n,
			       first);
	return M2W_OK;
}

int m2_base_prices_save(struct m2_conn *k, const struct m2_price *p, size_t n,
			char ***row_errors, struct m2_result *res)
{
	struct json_object *body, *ans = NULL;
	char **errs;
	size_t i;
	int rc;

	if (row_errors)
		*row_errors = NULL;
	if (!n || !p)
		return bad_arg(res, "base prices: nothing to save");
	for (i = 0; i < n; i++)
		if (!p[i].sku || !*p[i].sku || !isfinite(p[i].price))
			return bad_arg(res, "base prices: a row has no sku "
				       "or a bad price");
	errs = calloc(n, sizeof(*errs));
	if (!errs) {
		m2i_result_clear(res);
		return oom(res);
	}
	body = price_body(p, n);
	rc = m2i_call_json(k, "POST", "/products/base-prices", body, &ans,
			   res);
	json_object_put(body);
	if (rc == M2W_OK)
		rc = map_failures(ans, p, n, errs, res);
	json_object_put(ans);
	if (rc != M2W_OK || !row_errors)
		m2_row_errors_free(errs, n);
	else
		*row_errors = errs;
	return rc;
}
