#include "config.h"
/*
 * routes.c - the Magento REST endpoints the fake serves, under
 * /rest/V1/... and /rest/<store_code>/V1/...
 *
 * One request goes: route match (unknown route -> 404 "Request does not
 * match any route.", before auth, as in Magento) -> injected faults
 * (latency, outage, rate limit, drop, fail; decided under the lock with
 * the seeded PRNG, the sleep outside it) -> auth -> body checks
 * (Content-Type, JSON, unknown top-level keys) -> the endpoint, which
 * validates everything before it changes anything -> `fields` trimming of
 * GET answers -> the request counter.
 *
 * Endpoint handlers run with srv->mu held. With --php-workers the whole of
 * fk_api_handle runs holding one PHP worker (php.c), the latency sleep
 * included.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fake.h"

enum route_id {
	R_NONE = 0,
	R_ORDERS,
	R_ORDER,
	R_SHIP,
	R_TRACK,
	R_SHIPMENTS,
	R_SHIPMENT,
	R_SOURCE_ITEMS,
	R_STOCK_ITEM,
	R_BASE_PRICES,
	R_BASE_PRICES_INFO,
	R_ADMIN_TOKEN
};

struct route {
	enum route_id id;
	const char *pattern;        /* "/V1/order/{id}/ship" */
	const char *resource;       /* ACL resource for the 401 message */
	char arg1[512];             /* {id} or {sku} */
	char arg2[64];              /* {itemId} */
};

/* Splits the path after ".../V1" into at most 6 segments. */
static int split(const char *p, char seg[][512], int max)
{
	int n = 0;

	while (*p == '/') {
		const char *s = ++p;
		size_t len;

		while (*p && *p != '/')
			p++;
		len = (size_t)(p - s);
		if (n == max || len >= 512)
			return -1;
		memcpy(seg[n], s, len);
		seg[n][len] = '\0';
		n++;
	}
	return *p ? -1 : n;
}

static void route_match(const struct fk_req *rq, struct route *r)
{
	const char *p = rq->url, *m = rq->method;
	char seg[6][512];
	int n;

	memset(r, 0, sizeof *r);
	r->pattern = "(no route)";
	if (strncmp(p, "/rest/", 6) != 0)
		return;
	p += 5;
	if (strncmp(p, "/V1/", 4) != 0) {
		/* /<store_code>/V1/ */
		const char *s = p + 1;

		if (!*s || !(islower((unsigned char)*s) ||
			     isdigit((unsigned char)*s) || *s == '_'))
			return;
		while (islower((unsigned char)*s) || isdigit((unsigned char)*s) ||
		       *s == '_')
			s++;
		if (strncmp(s, "/V1/", 4) != 0)
			return;
		p = s;
	}
	p += 3;
	n = split(p, seg, 6);
	if (n <= 0)
		return;
#define SEG(i, s) (n > (i) && strcmp(seg[i], (s)) == 0)
	if (strcmp(m, "GET") == 0) {
		if (n == 1 && SEG(0, "orders")) {
			r->id = R_ORDERS;
			r->pattern = "/V1/orders";
		} else if (n == 2 && SEG(0, "orders")) {
			r->id = R_ORDER;
			r->pattern = "/V1/orders/{id}";
		} else if (n == 1 && SEG(0, "shipments")) {
			r->id = R_SHIPMENTS;
			r->pattern = "/V1/shipments";
		} else if (n == 2 && SEG(0, "shipment")) {
			r->id = R_SHIPMENT;
			r->pattern = "/V1/shipment/{id}";
		}
		r->resource = r->id == R_SHIPMENTS || r->id == R_SHIPMENT ?
			"Magento_Sales::shipment" : "Magento_Sales::actions_view";
	} else if (strcmp(m, "POST") == 0) {
		if (n == 3 && SEG(0, "order") && SEG(2, "ship")) {
			r->id = R_SHIP;
			r->pattern = "/V1/order/{id}/ship";
			r->resource = "Magento_Sales::ship";
		} else if (n == 2 && SEG(0, "shipment") && SEG(1, "track")) {
			r->id = R_TRACK;
			r->pattern = "/V1/shipment/track";
			r->resource = "Magento_Sales::ship";
		} else if (n == 2 && SEG(0, "inventory") &&
			   SEG(1, "source-items")) {
			r->id = R_SOURCE_ITEMS;
			r->pattern = "/V1/inventory/source-items";
			r->resource = "Magento_InventoryApi::source_item";
		} else if (n == 2 && SEG(0, "products") &&
			   SEG(1, "base-prices")) {
			r->id = R_BASE_PRICES;
			r->pattern = "/V1/products/base-prices";
			r->resource = "Magento_Catalog::products";
		} else if (n == 2 && SEG(0, "products") &&
			   SEG(1, "base-prices-information")) {
			r->id = R_BASE_PRICES_INFO;
			r->pattern = "/V1/products/base-prices-information";
			r->resource = "Magento_Catalog::products";
		} else if (n == 3 && SEG(0, "integration") && SEG(1, "admin") &&
			   SEG(2, "token")) {
			r->id = R_ADMIN_TOKEN;
			r->pattern = "/V1/integration/admin/token";
			r->resource = "anonymous";
		}
	} else if (strcmp(m, "PUT") == 0) {
		if (n == 4 && SEG(0, "products") && SEG(2, "stockItems")) {
			r->id = R_STOCK_ITEM;
			r->pattern = "/V1/products/{sku}/stockItems/{itemId}";
			r->resource = "Magento_CatalogInventory::cataloginventory";
			snprintf(r->arg2, sizeof r->arg2, "%.63s", seg[3]);
		}
	}
#undef SEG
	if (r->id != R_NONE && n >= 2)
		memcpy(r->arg1, seg[1], sizeof r->arg1);
}

/* ---- errors */

static const char *const ship_refused =
	"Shipment Document Validation Error(s):\n"
	"The order does not allow a shipment to be created.";

static void resp_entity_404(struct fk_resp *resp)
{
	fk_resp_error(resp, 404,
		"The entity that was requested doesn't exist. Verify the entity and try again.",
		NULL);
}

static void resp_product_404(struct fk_resp *resp)
{
	fk_resp_error(resp, 404,
		"The product that was requested doesn't exist. Verify the product and try again.",
		NULL);
}

static void resp_required(struct fk_resp *resp, const char *field)
{
	fk_resp_error(resp, 400, "\"%fieldName\" is required. Enter and try again.",
		      fk_params1("fieldName", field));
}

static json_object *arr_str(const char *v)
{
	json_object *a = json_object_new_array();

	json_object_array_add(a, json_object_new_string(v));
	return a;
}

/* An entity id from the path: Magento casts to int; junk finds nothing. */
static int64_t path_id(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < 1)
		return 0;
	return (int64_t)v;
}

/* ---- searchCriteria */

struct filter {
	int g, f;
	char *field, *value, *cond;
};

struct search {
	struct filter *flt;
	size_t n;
	long page_size, cur_page;
	int has_ps, has_cp, any;
};

static struct filter *filter_slot(struct search *s, int g, int f)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->flt[i].g == g && s->flt[i].f == f)
			return &s->flt[i];
	s->flt = fk_xrealloc(s->flt, (s->n + 1) * sizeof *s->flt);
	memset(&s->flt[s->n], 0, sizeof *s->flt);
	s->flt[s->n].g = g;
	s->flt[s->n].f = f;
	return &s->flt[s->n++];
}

static int filter_cmp(const void *a, const void *b)
{
	const struct filter *x = a, *y = b;

	if (x->g != y->g)
		return x->g < y->g ? -1 : 1;
	return x->f < y->f ? -1 : x->f > y->f;
}

static void search_parse(const struct fk_req *rq, struct search *s)
{
	size_t i;

	memset(s, 0, sizeof *s);
	for (i = 0; i < rq->nquery; i++) {
		const char *k = rq->query[i].k, *v = rq->query[i].v;
		char attr[32];
		int g, f, used = -1;

		if (strncmp(k, "searchCriteria", 14) != 0)
			continue;
		s->any = 1;
		if (sscanf(k, "searchCriteria[filter_groups][%d][filters][%d][%31[a-z_]]%n",
			   &g, &f, attr, &used) == 3 && used > 0 && !k[used]) {
			struct filter *fl = filter_slot(s, g, f);
			char **dst = strcmp(attr, "field") == 0 ? &fl->field :
				strcmp(attr, "value") == 0 ? &fl->value :
				strcmp(attr, "condition_type") == 0 ? &fl->cond : NULL;

			if (dst) {
				free(*dst);
				*dst = fk_xstrdup(v);
			}
		} else if (strcmp(k, "searchCriteria[pageSize]") == 0) {
			s->page_size = atol(v);
			s->has_ps = 1;
		} else if (strcmp(k, "searchCriteria[currentPage]") == 0) {
			s->cur_page = atol(v);
			s->has_cp = 1;
		}
	}
	if (s->n)
		qsort(s->flt, s->n, sizeof *s->flt, filter_cmp);
}

static void search_free(struct search *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		free(s->flt[i].field);
		free(s->flt[i].value);
		free(s->flt[i].cond);
	}
	free(s->flt);
}

static json_object *search_echo(const struct search *s)
{
	json_object *sc = json_object_new_object(), *groups, *grp = NULL, *fl;
	size_t i;
	int lastg = -1;

	groups = json_object_new_array();
	for (i = 0; i < s->n; i++) {
		json_object *f = json_object_new_object();

		if (!grp || s->flt[i].g != lastg) {
			grp = json_object_new_object();
			json_object_object_add(grp, "filters",
					       json_object_new_array());
			json_object_array_add(groups, grp);
			lastg = s->flt[i].g;
		}
		json_object_object_get_ex(grp, "filters", &fl);
		json_object_object_add(f, "field", json_object_new_string(
			s->flt[i].field ? s->flt[i].field : ""));
		json_object_object_add(f, "value", json_object_new_string(
			s->flt[i].value ? s->flt[i].value : ""));
		json_object_object_add(f, "condition_type", json_object_new_string(
			s->flt[i].cond ? s->flt[i].cond : "eq"));
		json_object_array_add(fl, f);
	}
	json_object_object_add(sc, "filter_groups", groups);
	if (s->has_ps)
		json_object_object_add(sc, "page_size",
				       json_object_new_int64(s->page_size));
	if (s->has_cp)
		json_object_object_add(sc, "current_page",
				       json_object_new_int64(s->cur_page));
	return sc;
}

/* A field's value of one entity: *num set for numeric columns; 0 when the
 * entity has no such field. */
typedef int (*field_get)(const void *ent, const char *field, char *buf,
			 size_t len, int *num);

static int order_field(const void *ent, const char *field, char *buf,
		       size_t len, int *num)
{
	const struct fk_order *o = ent;

	*num = 0;
	if (strcmp(field, "entity_id") == 0) {
		*num = 1;
		snprintf(buf, len, "%" PRId64, o->entity_id);
	} else if (strcmp(field, "increment_id") == 0) {
		snprintf(buf, len, "%s", o->increment_id);
	} else if (strcmp(field, "status") == 0) {
		snprintf(buf, len, "%s", o->status);
	} else if (strcmp(field, "state") == 0) {
		snprintf(buf, len, "%s", o->state);
	} else if (strcmp(field, "store_id") == 0) {
		*num = 1;
		snprintf(buf, len, "1");
	} else {
		return 0;
	}
	return 1;
}

static int ship_field(const void *ent, const char *field, char *buf,
		      size_t len, int *num)
{
	const struct fk_shipment *s = ent;

	*num = 1;
	if (strcmp(field, "entity_id") == 0) {
		snprintf(buf, len, "%" PRId64, s->id);
	} else if (strcmp(field, "order_id") == 0) {
		snprintf(buf, len, "%" PRId64, s->order_id);
	} else if (strcmp(field, "increment_id") == 0) {
		*num = 0;
		snprintf(buf, len, "%09" PRId64, s->id);
	} else if (strcmp(field, "store_id") == 0) {
		snprintf(buf, len, "1");
	} else {
		return 0;
	}
	return 1;
}

static int value_cmp(const char *a, const char *b, int num)
{
	if (num) {
		char *ea, *eb;
		double x = strtod(a, &ea), y = strtod(b, &eb);

		if (*a && *b && !*ea && !*eb)
			return x < y ? -1 : x > y;
		/* MySQL casts junk to 0 */
		if (!*b || *eb)
			y = 0;
		return x < y ? -1 : x > y;
	}
	return strcasecmp(a, b);
}

static int in_list(const char *actual, const char *list, int num)
{
	char *copy = fk_xstrdup(list), *save = NULL, *tok;
	int hit = 0;

	for (tok = strtok_r(copy, ",", &save); tok && !hit;
	     tok = strtok_r(NULL, ",", &save)) {
		size_t l;

		while (*tok == ' ')
			tok++;
		l = strlen(tok);
		while (l > 0 && tok[l - 1] == ' ')
			tok[--l] = '\0';
		hit = value_cmp(actual, tok, num) == 0;
	}
	free(copy);
	return hit;
}

static int filter_match(const char *actual, int num, const struct filter *f)
{
	const char *c = f->cond && *f->cond ? f->cond : "eq";
	const char *v = f->value ? f->value : "";

	if (strcmp(c, "neq") == 0)
		return value_cmp(actual, v, num) != 0;
	if (strcmp(c, "like") == 0)
		return fk_like(actual, v);
	if (strcmp(c, "nlike") == 0)
		return !fk_like(actual, v);
	if (strcmp(c, "in") == 0)
		return in_list(actual, v, num);
	if (strcmp(c, "nin") == 0)
		return !in_list(actual, v, num);
	if (strcmp(c, "gt") == 0 || strcmp(c, "from") == 0 ||
	    strcmp(c, "moreq") == 0 || strcmp(c, "gteq") == 0) {
		int r = value_cmp(actual, v, num);

		return strcmp(c, "gt") == 0 ? r > 0 : r >= 0;
	}
	if (strcmp(c, "lt") == 0 || strcmp(c, "lteq") == 0 ||
	    strcmp(c, "to") == 0) {
		int r = value_cmp(actual, v, num);

		return strcmp(c, "lt") == 0 ? r < 0 : r <= 0;
	}
	if (strcmp(c, "notnull") == 0)
		return 1;
	if (strcmp(c, "null") == 0)
		return 0;
	return value_cmp(actual, v, num) == 0;  /* eq and the unknown */
}

/* -1: a filter names an unknown field (*bad set). */
static int entity_match(const void *ent, field_get get,
			const struct search *s, const char **bad)
{
	size_t i = 0;

	while (i < s->n) {
		int g = s->flt[i].g, any = 0;

		for (; i < s->n && s->flt[i].g == g; i++) {
			char buf[128];
			int num;

			if (!s->flt[i].field) {
				*bad = "";
				return -1;
			}
			if (!get(ent, s->flt[i].field, buf, sizeof buf, &num)) {
				*bad = s->flt[i].field;
				return -1;
			}
			if (!any && filter_match(buf, num, &s->flt[i]))
				any = 1;
		}
		if (!any)
			return 0;
	}
	return 1;
}

/* The one filter of a search, when it is `field` = value (eq); else NULL. */
static const char *only_eq(const struct search *s, const char *field)
{
	if (s->n != 1 || !s->flt[0].field || !s->flt[0].value ||
	    strcmp(s->flt[0].field, field) != 0 ||
	    (s->flt[0].cond && strcmp(s->flt[0].cond, "eq") != 0))
		return NULL;
	return s->flt[0].value;
}

/* The one filter of a search, when it is `field` in (a,b,...); else NULL. */
static const char *only_in(const struct search *s, const char *field)
{
	if (s->n != 1 || !s->flt[0].field || !s->flt[0].value ||
	    strcmp(s->flt[0].field, field) != 0 || !s->flt[0].cond ||
	    strcmp(s->flt[0].cond, "in") != 0)
		return NULL;
	return s->flt[0].value;
}

static int idx_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* idx[0..*n) sorted, without repeats: the order a scan would give. */
static void idx_settle(size_t *idx, size_t *n)
{
	size_t i, k = 0;

	qsort(idx, *n, sizeof(*idx), idx_cmp);
	for (i = 0; i < *n; i++)
		if (!k || idx[k - 1] != idx[i])
			idx[k++] = idx[i];
	*n = k;
}

/* The candidates of `field` in (list): orders by increment id, or the
 * shipments of orders by entity id. */
static void narrow_in(struct fk_server *srv, int ships, const char *list,
		      size_t *idx, size_t *n, size_t max)
{
	char *copy = fk_xrealloc(NULL, strlen(list) + 1), *save = NULL, *t;
	const struct fk_order *o;
	int64_t id;

	strcpy(copy, list);
	for (t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		o = ships ? fk_order_by_entity(srv, atoll(t))
			  : fk_order_by_increment(srv, t);
		if (!o)
			continue;
		if (!ships) {
			if (*n < max)
				idx[(*n)++] = (size_t)(o - srv->orders);
			continue;
		}
		for (id = o->last_ship; id && *n < max;
		     id = srv->ships[id - 1].prev_of_order)
			idx[(*n)++] = (size_t)(id - 1);
	}
	free(copy);
	idx_settle(idx, n);
}

/*
 * Candidate indexes for the lookups a worker makes (an order by increment
 * id, an order's shipments, and the same for many orders at once with
 * `in`), so that they are not scans of every entity: the fake must not be
 * the bottleneck of a benchmark. *n gets the count; 0 when the search is
 * not one of those (scan). `max`: room in idx.
 */
static int narrow(struct fk_server *srv, const void *base,
		  const struct search *s, size_t *idx, size_t *n, size_t max)
{
	const struct fk_order *o;
	const char *v;
	int64_t id;

	*n = 0;
	if (base == (const void *)srv->orders &&
	    (v = only_in(s, "increment_id"))) {
		narrow_in(srv, 0, v, idx, n, max);
		return 1;
	}
	if (base == (const void *)srv->ships && (v = only_in(s, "order_id"))) {
		narrow_in(srv, 1, v, idx, n, max);
		return 1;
	}
	if (base == (const void *)srv->orders) {
		if ((v = only_eq(s, "increment_id")))
			o = fk_order_by_increment(srv, v);
		else if ((v = only_eq(s, "entity_id")))
			o = fk_order_by_entity(srv, atoll(v));
		else
			return 0;
		if (o)
			idx[(*n)++] = (size_t)(o - srv->orders);
		return 1;
	}
	if (base == (const void *)srv->ships && (v = only_eq(s, "order_id"))) {
		o = fk_order_by_entity(srv, atoll(v));
		for (id = o ? o->last_ship : 0; id; id = srv->ships[id - 1].prev_of_order)
			idx[(*n)++] = (size_t)(id - 1);
		/* oldest first, as a scan would give */
		for (id = 0; (size_t)id < *n / 2; id++) {
			size_t t = idx[id];

			idx[id] = idx[*n - 1 - (size_t)id];
			idx[*n - 1 - (size_t)id] = t;
		}
		return 1;
	}
	return 0;
}

/* Runs a search over n entities of size `size`; answers the response. */
static void search_run(struct fk_server *srv, const struct fk_req *rq,
		       const void *base, size_t n, size_t size, field_get get,
		       json_object *(*to_json)(const void *),
		       struct fk_resp *resp)
{
	struct search s;
	size_t i, *hits = NULL, *cand, ncand, nhits = 0, from = 0, to;
	const char *bad = NULL;
	json_object *out, *items;

	search_parse(rq, &s);
	if (!s.any) {
		search_free(&s);
		resp_required(resp, "searchCriteria");
		return;
	}
	hits = fk_xrealloc(NULL, (n + 1) * sizeof *hits);
	cand = fk_xrealloc(NULL, (n + 1) * sizeof *cand);
	if (!narrow(srv, base, &s, cand, &ncand, n + 1))
		for (ncand = 0; ncand < n; ncand++)
			cand[ncand] = ncand;
	for (i = 0; i < ncand; i++) {
		int m = entity_match((const char *)base + cand[i] * size, get,
				     &s, &bad);

		if (m < 0)
			break;
		if (m)
			hits[nhits++] = cand[i];
	}
	free(cand);
	if (bad) {
		fk_resp_error(resp, 400, "Invalid attribute name: %1",
			      arr_str(bad));
		free(hits);
		search_free(&s);
		return;
	}
	to = nhits;
	if (s.has_ps && s.page_size > 0) {
		size_t ps = (size_t)s.page_size;
		size_t last = nhits ? (nhits + ps - 1) / ps : 1;
		size_t cp = s.has_cp && s.cur_page > 0 ? (size_t)s.cur_page : 1;

		/* Magento clamps a page past the end to the last page */
		if (cp > last)
			cp = last;
		from = (cp - 1) * ps;
		to = from + ps < nhits ? from + ps : nhits;
	}
	out = json_object_new_object();
	items = json_object_new_array();
	for (i = from; i < to; i++)
		json_object_array_add(items,
			to_json((const char *)base + hits[i] * size));
	json_object_object_add(out, "items", items);
	json_object_object_add(out, "search_criteria", search_echo(&s));
	json_object_object_add(out, "total_count",
			       json_object_new_int64((int64_t)nhits));
	fk_resp_json(resp, 200, out);
	free(hits);
	search_free(&s);
}

static json_object *order_to_json(const void *o)
{
	return fk_order_json(o);
}

static json_object *ship_to_json(const void *s)
{
	return fk_ship_json(s);
}

/* ---- endpoints */

static void h_order(struct fk_server *srv, const struct route *r,
		    struct fk_resp *resp)
{
	struct fk_order *o = fk_order_by_entity(srv, path_id(r->arg1));

	if (!o) {
		resp_entity_404(resp);
		return;
	}
	fk_resp_json(resp, 200, fk_order_json(o));
}

static void h_shipment(struct fk_server *srv, const struct route *r,
		       struct fk_resp *resp)
{
	struct fk_shipment *s = fk_ship_by_id(srv, path_id(r->arg1));

	if (!s) {
		resp_entity_404(resp);
		return;
	}
	fk_resp_json(resp, 200, fk_ship_json(s));
}

static const char *opt_string(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return NULL;
	return json_object_get_string(v);
}

static void h_ship(struct fk_server *srv, const struct route *r,
		   json_object *body, struct fk_resp *resp)
{
	static const char *const allowed[] = { "items", "notify",
		"appendComment", "comment", "tracks", "packages", "arguments",
		NULL };
	static const char *const item_keys[] = { "order_item_id", "qty",
		"extension_attributes", NULL };
	static const char *const track_keys[] = { "track_number", "title",
		"carrier_code", "extension_attributes", NULL };
	struct fk_order *o;
	json_object *items = NULL, *tracks = NULL, *args, *ext;
	double want[2] = { 0, 0 }, total = 0;
	const char *bad, *source = NULL;
	struct fk_shipment *s;
	size_t i, n, t;

	bad = fk_unknown_key(body, allowed);
	if (bad) {
		fk_resp_unknown_field(resp, bad);
		return;
	}
	json_object_object_get_ex(body, "items", &items);
	json_object_object_get_ex(body, "tracks", &tracks);
	if ((items && !json_object_is_type(items, json_type_array)) ||
	    (tracks && !json_object_is_type(tracks, json_type_array))) {
		fk_resp_error(resp, 400, "Decoding error: \nSyntax error", NULL);
		return;
	}
	n = items ? json_object_array_length(items) : 0;
	for (i = 0; i < n; i++) {
		json_object *it = json_object_array_get_idx(items, i);

		if (!json_object_is_type(it, json_type_object)) {
			fk_resp_error(resp, 400, "Decoding error: \nSyntax error",
				      NULL);
			return;
		}
		bad = fk_unknown_key(it, item_keys);
		if (bad) {
			fk_resp_unknown_field(resp, bad);
			return;
		}
	}
	for (t = 0; tracks && t < json_object_array_length(tracks); t++) {
		json_object *tr = json_object_array_get_idx(tracks, t);

		if (!json_object_is_type(tr, json_type_object)) {
			fk_resp_error(resp, 400, "Decoding error: \nSyntax error",
				      NULL);
			return;
		}
		bad = fk_unknown_key(tr, track_keys);
		if (bad) {
			fk_resp_unknown_field(resp, bad);
			return;
		}
	}
	if (json_object_object_get_ex(body, "arguments", &args) && args &&
	    json_object_object_get_ex(args, "extension_attributes", &ext) && ext)
		source = opt_string(ext, "source_code");

	o = fk_order_by_entity(srv, path_id(r->arg1));
	if (!o) {
		resp_entity_404(resp);
		return;
	}
	if (strcmp(o->state, "canceled") == 0 || strcmp(o->state, "closed") == 0 ||
	    strcmp(o->state, "holded") == 0) {
		fk_resp_error(resp, 400, ship_refused, NULL);
		return;
	}
	/* want[] has a place per item of an order (fk_order.items) */
	if (o->nitems > sizeof(want) / sizeof(want[0])) {
		fk_resp_error(resp, 500, "fake: order with too many items", NULL);
		return;
	}
	if (n == 0) {
		for (i = 0; i < o->nitems; i++)
			want[i] = o->items[i].qty_ordered -
				  o->items[i].qty_shipped -
				  o->items[i].qty_canceled;
	} else {
		for (i = 0; i < n; i++) {
			json_object *it = json_object_array_get_idx(items, i), *v;
			int64_t oid = 0;
			double q = 0;
			size_t k;

			if (!json_object_object_get_ex(it, "order_item_id", &v) ||
			    !fk_json_int64(v, &oid)) {
				fk_resp_error(resp, 400, ship_refused, NULL);
				return;
			}
			if (json_object_object_get_ex(it, "qty", &v) &&
			    !fk_json_number(v, &q)) {
				fk_resp_error(resp, 400, ship_refused, NULL);
				return;
			}
			for (k = 0; k < o->nitems; k++)
				if (o->items[k].item_id == oid)
					break;
			if (k == o->nitems) {
				fk_resp_error(resp, 400, ship_refused, NULL);
				return;
			}
			if (q > 0)
				want[k] += q;
		}
	}
	for (i = 0; i < o->nitems; i++) {
		double left = o->items[i].qty_ordered - o->items[i].qty_shipped -
			      o->items[i].qty_canceled;

		if (want[i] > left)
			want[i] = left;   /* capped silently */
		if (want[i] < 0)
			want[i] = 0;
		total += want[i];
	}
	if (total <= 0) {
		fk_resp_error(resp, 400, ship_refused, NULL);
		return;
	}
	for (t = 0; tracks && t < json_object_array_length(tracks); t++) {
		json_object *tr = json_object_array_get_idx(tracks, t);
		const char *num = opt_string(tr, "track_number");
		const char *car = opt_string(tr, "carrier_code");

		if (!num || !*num) {
			fk_resp_error(resp, 400,
				"Shipment Document Validation Error(s):\n"
				"Please enter a tracking number.", NULL);
			return;
		}
		if (!car || !*car) {
			fk_resp_error(resp, 400,
				"Could not save a shipment, see error log for details",
				NULL);
			return;
		}
	}

	/* everything checked: create */
	s = fk_ship_new(srv, o->entity_id);
	if (source)
		s->source_code = fk_xstrdup(source);
	for (i = 0; i < o->nitems; i++) {
		if (want[i] <= 0)
			continue;
		s->items[s->nitems].order_item_id = o->items[i].item_id;
		s->items[s->nitems].qty = want[i];
		memcpy(s->items[s->nitems].sku, o->items[i].sku,
		       sizeof s->items[0].sku);
		s->nitems++;
		o->items[i].qty_shipped += want[i];
	}
	for (t = 0; tracks && t < json_object_array_length(tracks); t++) {
		json_object *tr = json_object_array_get_idx(tracks, t);

		fk_ship_add_track(s, srv->next_track_id++,
				  opt_string(tr, "track_number"),
				  opt_string(tr, "title"),
				  opt_string(tr, "carrier_code"));
	}
	for (i = 0; i < o->nitems; i++)
		if (o->items[i].qty_shipped + o->items[i].qty_canceled <
		    o->items[i].qty_ordered)
			break;
	if (i == o->nitems) {
		strcpy(o->state, "complete");
		strcpy(o->status, "complete");
	}
	fk_resp_json(resp, 200, json_object_new_int64(s->id));
}

static void h_track(struct fk_server *srv, json_object *body,
		    struct fk_resp *resp)
{
	static const char *const allowed[] = { "entity", NULL };
	static const char *const entity_keys[] = { "order_id", "parent_id",
		"track_number", "title", "carrier_code", "description", "qty",
		"weight", "entity_id", "created_at", "updated_at",
		"extension_attributes", NULL };
	static const char *const cannot = "Could not save the shipment tracking.";
	json_object *e, *v;
	const char *bad, *num, *car;
	int64_t parent = 0, order = 0;
	struct fk_shipment *s;
	struct fk_track *t;

	bad = fk_unknown_key(body, allowed);
	if (bad) {
		fk_resp_unknown_field(resp, bad);
		return;
	}
	if (!json_object_object_get_ex(body, "entity", &e) || !e) {
		resp_required(resp, "entity");
		return;
	}
	if (!json_object_is_type(e, json_type_object)) {
		fk_resp_error(resp, 400, "Decoding error: \nSyntax error", NULL);
		return;
	}
	bad = fk_unknown_key(e, entity_keys);
	if (bad) {
		fk_resp_unknown_field(resp, bad);
		return;
	}
	num = opt_string(e, "track_number");
	car = opt_string(e, "carrier_code");
	if (!num || !*num || !car || !*car) {
		fk_resp_error(resp, 400, cannot, NULL);
		return;
	}
	if (!json_object_object_get_ex(e, "parent_id", &v) ||
	    !fk_json_int64(v, &parent) || !(s = fk_ship_by_id(srv, parent))) {
		resp_entity_404(resp);
		return;
	}
	if (!json_object_object_get_ex(e, "order_id", &v) ||
	    !fk_json_int64(v, &order) || order != s->order_id) {
		/* Magento refuses a track whose order is not the shipment's */
		fk_resp_error(resp, 400, cannot, NULL);
		return;
	}
	fk_ship_add_track(s, srv->next_track_id++, num, opt_string(e, "title"),
			  car);
	t = &s->tracks[s->ntracks - 1];
	fk_resp_json(resp, 200, fk_track_json(t, s->id));
}

static json_object *errors_entry(const char *msg, json_object *params)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_object_add(e, "parameters", params);
	return e;
}

/* The array under `key` of a body whose only key is `key` (source items,
 * prices); NULL after answering Magento's 400 for anything else. */
static json_object *body_rows(json_object *body, const char *key,
			      struct fk_resp *resp)
{
	const char *const allowed[] = { key, NULL };
	const char *bad = fk_unknown_key(body, allowed);
	json_object *rows;

	if (bad) {
		fk_resp_unknown_field(resp, bad);
		return NULL;
	}
	if (!json_object_object_get_ex(body, key, &rows) || !rows) {
		resp_required(resp, key);
		return NULL;
	}
	if (!json_object_is_type(rows, json_type_array)) {
		fk_resp_error(resp, 400, "Decoding error: \nSyntax error", NULL);
		return NULL;
	}
	return rows;
}

static void h_source_items(struct fk_server *srv, json_object *body,
			   struct fk_resp *resp)
{
	static const char *const row_keys[] = { "sku", "source_code",
		"quantity", "status", "extension_attributes", NULL };
	json_object *rows, *errs;
	const char *bad;
	size_t i, n;

	if (!(rows = body_rows(body, "sourceItems", resp)))
		return;
	n = json_object_array_length(rows);
	if (n == 0) {
		fk_resp_error(resp, 400, "Input data is empty", NULL);
		return;
	}
	errs = json_object_new_array();
	for (i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(rows, i), *v;
		const char *sku, *src;
		double q, st;

		if (!json_object_is_type(row, json_type_object)) {
			json_object_put(errs);
			fk_resp_error(resp, 400, "Decoding error: \nSyntax error",
				      NULL);
			return;
		}
		bad = fk_unknown_key(row, row_keys);
		if (bad) {
			json_object_put(errs);
			fk_resp_unknown_field(resp, bad);
			return;
		}
		sku = opt_string(row, "sku");
		src = opt_string(row, "source_code");
		if (!sku || !*sku) {
			json_object_array_add(errs, errors_entry(
				"\"%field\" can not be empty.",
				fk_params1("field", "sku")));
			continue;
		}
		if (!fk_product_by_sku(srv, sku)) {
			json_object_array_add(errs, errors_entry(
				"Product with SKU \"%sku\" does not exist.",
				fk_params1("sku", sku)));
			continue;
		}
		if (!src || !*src) {
			json_object *p = fk_params1("field", "source_code");

			json_object_object_add(p, "sku", json_object_new_string(sku));
			json_object_array_add(errs, errors_entry(
				"\"%field\" can not be empty.", p));
			continue;
		}
		if (fk_source_index(src) < 0) {
			json_object *p = fk_params1("source_code", src);

			json_object_object_add(p, "sku", json_object_new_string(sku));
			json_object_array_add(errs, errors_entry(
				"Source with code \"%source_code\" does not exist (SKU \"%sku\").",
				p));
			continue;
		}
		if (!json_object_object_get_ex(row, "quantity", &v) ||
		    !fk_json_number(v, &q)) {
			json_object *p = fk_params1("field", "quantity");

			json_object_object_add(p, "sku", json_object_new_string(sku));
			json_object_array_add(errs, errors_entry(
				"\"%field\" should be numeric.", p));
			continue;
		}
		if (!json_object_object_get_ex(row, "status", &v) ||
		    !fk_json_number(v, &st) || (st != 0 && st != 1)) {
			json_object *p = fk_params1("field", "status");

			json_object_object_add(p, "sku", json_object_new_string(sku));
			json_object_array_add(errs, errors_entry(
				"\"%field\" should be 0 or 1.", p));
			continue;
		}
	}
	if (json_object_array_length(errs) > 0) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "message",
				       json_object_new_string("Validation Failed"));
		json_object_object_add(o, "errors", errs);
		fk_resp_json(resp, 400, o);
		return;
	}
	json_object_put(errs);
	for (i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(rows, i), *v;
		struct fk_product *p = fk_product_by_sku(srv,
						opt_string(row, "sku"));
		int s = fk_source_index(opt_string(row, "source_code"));
		double d;

		json_object_object_get_ex(row, "quantity", &v);
		fk_json_number(v, &d);
		p->src_qty[s] = d;
		json_object_object_get_ex(row, "status", &v);
		fk_json_number(v, &d);
		p->src_status[s] = (int)d;
		p->src_set[s] = 1;
		p->src_changed[s] = 1;
	}
	fk_resp_json(resp, 200, json_object_new_array());
}

static void h_stock_item(struct fk_server *srv, const struct route *r,
			 json_object *body, struct fk_resp *resp)
{
	static const char *const allowed[] = { "stockItem", NULL };
	json_object *si, *v;
	struct fk_product *p;
	double q = 0, st = 0;
	int has_q, has_st;

	(void)r->arg2;
	{
		const char *bad = fk_unknown_key(body, allowed);

		if (bad) {
			fk_resp_unknown_field(resp, bad);
			return;
		}
	}
	if (!json_object_object_get_ex(body, "stockItem", &si) || !si) {
		resp_required(resp, "stockItem");
		return;
	}
	if (!json_object_is_type(si, json_type_object)) {
		fk_resp_error(resp, 400, "Decoding error: \nSyntax error", NULL);
		return;
	}
	p = fk_product_by_sku(srv, r->arg1);
	if (!p) {
		resp_product_404(resp);
		return;
	}
	has_q = json_object_object_get_ex(si, "qty", &v) && fk_json_number(v, &q);
	has_st = json_object_object_get_ex(si, "is_in_stock", &v) &&
		 fk_json_number(v, &st);
	if (has_q)
		p->legacy_qty = q;
	if (has_st)
		p->legacy_in_stock = st != 0;
	if (has_q || has_st)
		p->legacy_changed = 1;
	fk_resp_json(resp, 200, json_object_new_int64(
		(int64_t)(p - srv->products) + 1));
}

static void h_base_prices(struct fk_server *srv, json_object *body,
			  struct fk_resp *resp)
{
	static const char *const row_keys[] = { "price", "store_id", "sku",
		"extension_attributes", NULL };
	json_object *rows, *out;
	const char *bad;
	size_t i, n;

	if (!(rows = body_rows(body, "prices", resp)))
		return;
	n = json_object_array_length(rows);
	for (i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(rows, i);

		if (!json_object_is_type(row, json_type_object)) {
			fk_resp_error(resp, 400, "Decoding error: \nSyntax error",
				      NULL);
			return;
		}
		bad = fk_unknown_key(row, row_keys);
		if (bad) {
			fk_resp_unknown_field(resp, bad);
			return;
		}
	}
	out = json_object_new_array();
	for (i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(rows, i), *v, *par;
		const char *sku = opt_string(row, "sku");
		struct fk_product *p = sku ? fk_product_by_sku(srv, sku) : NULL;
		double price = 0;
		int64_t store = 0;
		int has_price, has_store;
		char sid[32];

		has_price = json_object_object_get_ex(row, "price", &v) &&
			    fk_json_number(v, &price);
		has_store = json_object_object_get_ex(row, "store_id", &v) &&
			    fk_json_int64(v, &store);
		snprintf(sid, sizeof sid, "%" PRId64, store);
		if (!p) {
			json_object_array_add(out, errors_entry(
				"The SKU \"%SKU\" of the product that was requested doesn't exist. Verify the product and try again.",
				fk_params1("SKU", sku ? sku : "")));
			continue;
		}
		if (!has_price || price < 0) {
			json_object_object_get_ex(row, "price", &v);
			par = fk_params1("fieldName", "Price");
			json_object_object_add(par, "fieldValue",
				json_object_new_string(v ? json_object_get_string(v) : ""));
			json_object_object_add(par, "SKU", json_object_new_string(sku));
			json_object_object_add(par, "storeId",
					       json_object_new_string(sid));
			json_object_array_add(out, errors_entry(
				"Invalid attribute %fieldName = %fieldValue. Row ID: SKU = %SKU, Store ID: %storeId.",
				par));
			continue;
		}
		if (!has_store || store < 0 || store >= FK_NSTORES) {
			par = fk_params1("SKU", sku);
			json_object_object_add(par, "storeId",
					       json_object_new_string(sid));
			json_object_array_add(out, errors_entry(
				"Requested store is not found. Row ID: SKU = %SKU, Store ID: %storeId.",
				par));
			continue;
		}
		p->price[store] = price;
		p->price_set[store] = 1;
		p->price_changed[store] = 1;
	}
	fk_resp_json(resp, 200, out);
}

static void h_base_prices_info(struct fk_server *srv, json_object *body,
			       struct fk_resp *resp)
{
	static const char *const allowed[] = { "skus", NULL };
	json_object *skus, *out;
	const char *bad;
	char missing[2048] = "";
	size_t i, n;

	bad = fk_unknown_key(body, allowed);
	if (bad) {
		fk_resp_unknown_field(resp, bad);
		return;
	}
	if (!json_object_object_get_ex(body, "skus", &skus) || !skus) {
		resp_required(resp, "skus");
		return;
	}
	if (!json_object_is_type(skus, json_type_array)) {
		fk_resp_error(resp, 400, "Decoding error: \nSyntax error", NULL);
		return;
	}
	n = json_object_array_length(skus);
	for (i = 0; i < n; i++) {
		const char *sku = json_object_get_string(
			json_object_array_get_idx(skus, i));

		if (!sku || !fk_product_by_sku(srv, sku)) {
			size_t l = strlen(missing);

			snprintf(missing + l, sizeof missing - l, "%s%s",
				 l ? ", " : "", sku ? sku : "");
		}
	}
	if (missing[0]) {
		fk_resp_error(resp, 404, "Requested products don't exist: %sku",
			      fk_params1("sku", missing));
		return;
	}
	out = json_object_new_array();
	for (i = 0; i < n; i++) {
		struct fk_product *p = fk_product_by_sku(srv,
			json_object_get_string(json_object_array_get_idx(skus, i)));
		int s;

		for (s = 0; s < FK_NSTORES; s++) {
			json_object *e;

			if (!p->price_set[s])
				continue;
			e = json_object_new_object();
			json_object_object_add(e, "price", fk_jdouble(p->price[s]));
			json_object_object_add(e, "store_id", json_object_new_int(s));
			json_object_object_add(e, "sku", json_object_new_string(p->sku));
			json_object_array_add(out, e);
		}
	}
	fk_resp_json(resp, 200, out);
}

/* ---- faults */

static int64_t mono_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* Decides this request's fault under the lock; sleeps outside it. 1 when
 * *resp is the (fault) answer. */
static int faults_apply(struct fk_server *srv, struct fk_resp *resp)
{
	struct fk_faults f;
	int kind = 0;            /* 1 outage, 2 rate, 3 drop, 4 fail */
	uint64_t report = 0;
	int64_t sec = mono_sec();

	pthread_mutex_lock(&srv->mu);
	f = srv->faults;
	srv->total_requests++;
	if (sec != srv->window_sec) {
		srv->window_sec = sec;
		srv->window_count = 0;
	}
	srv->window_count++;
	if (f.outage)
		kind = 1;
	else if (f.rate_limit > 0 && srv->window_count > f.rate_limit)
		kind = 2;
	else if (f.drop_rate > 0 && fk_rand01(srv) < f.drop_rate)
		kind = 3;
	else if (f.fail_rate > 0 && fk_rand01(srv) < f.fail_rate)
		kind = 4;
	if (kind == 4 && f.fail_status == 500)
		report = fk_rand64(srv);
	pthread_mutex_unlock(&srv->mu);

	fk_service_sleep(srv, f.latency_ms);
	switch (kind) {
	case 1:
		fk_resp_error(resp, 503, "Service Temporarily Unavailable", NULL);
		resp->retry_after = f.retry_after;
		return 1;
	case 2:
		fk_resp_error(resp, 429, "Too Many Requests", NULL);
		resp->retry_after = f.retry_after;
		return 1;
	case 3:
		resp->drop = 1;
		return 1;
	case 4:
		if (f.fail_status == 500) {
			char msg[160];

			snprintf(msg, sizeof msg,
				 "Internal Error. Details are available in Magento "
				 "log file. Report ID: webapi-%013" PRIx64,
				 (uint64_t)(report & 0xFFFFFFFFFFFFFULL));
			fk_resp_error(resp, 500, msg, NULL);
		} else {
			fk_resp_error(resp, f.fail_status,
				      "Service Temporarily Unavailable", NULL);
			resp->retry_after = f.retry_after;
		}
		return 1;
	default:
		return 0;
	}
}

/* ---- dispatch */

static int content_type_json(const char *ct)
{
	size_t n;

	while (*ct == ' ')
		ct++;
	n = strcspn(ct, "; ");
	return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* Parses the body for POST/PUT. NULL and *resp set on error. */
static json_object *body_parse(const struct fk_req *rq, struct fk_resp *resp)
{
	json_object *o;
	struct json_tokener *tok;
	size_t i;

	for (i = 0; i < rq->len; i++)
		if (!isspace((unsigned char)rq->body[i]))
			break;
	if (i == rq->len)
		return json_object_new_object();   /* empty body: no params */
	if (!rq->content_type || !*rq->content_type) {
		fk_resp_error(resp, 400, "Content-Type header is empty.", NULL);
		return NULL;
	}
	if (!content_type_json(rq->content_type)) {
		char ct[256];

		snprintf(ct, sizeof ct, "%.*s",
			 (int)strcspn(rq->content_type, ";"), rq->content_type);
		fk_resp_error(resp, 400,
			"Server cannot understand Content-Type HTTP header media type %1",
			arr_str(ct));
		return NULL;
	}
	tok = json_tokener_new();
	o = json_tokener_parse_ex(tok, rq->body, (int)rq->len);
	if (o && tok->char_offset < (int)rq->len) {
		for (i = (size_t)tok->char_offset; i < rq->len; i++)
			if (!isspace((unsigned char)rq->body[i]))
				break;
		if (i < rq->len) {
			json_object_put(o);
			o = NULL;
		}
	}
	if (!o && json_tokener_get_error(tok) == json_tokener_continue)
		o = NULL;
	json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object *e = json_object_new_object();

		json_object_put(o);
		json_object_object_add(e, "message", json_object_new_string(
			"Decoding error: \nSyntax error"));
		json_object_object_add(e, "trace", NULL);
		fk_resp_json(resp, 400, e);
		return NULL;
	}
	return o;
}

static void apply_fields(const struct fk_req *rq, struct fk_resp *resp)
{
	const char *spec = fk_query_get(rq, "fields");
	json_object *filter, *data;

	if (!spec || !*spec || resp->status != 200 || !resp->body)
		return;
	filter = fk_fields_parse(spec);
	if (!filter)
		return;   /* Magento ignores what it cannot parse */
	data = json_tokener_parse(resp->body);
	if (data && (json_object_is_type(data, json_type_object) ||
		     json_object_is_type(data, json_type_array))) {
		data = fk_fields_apply(data, filter);
		fk_resp_json(resp, 200, data);
	} else {
		json_object_put(data);
	}
	json_object_put(filter);
}

void fk_api_handle(struct fk_server *srv, struct fk_req *rq,
		   struct fk_resp *resp)
{
	struct route r;
	char key[128];
	json_object *body = NULL;
	int post = strcmp(rq->method, "POST") == 0 ||
		   strcmp(rq->method, "PUT") == 0;
	struct fk_resp berr = { .status = 0 };

	route_match(rq, &r);
	snprintf(key, sizeof key, "%s %s", rq->method, r.pattern);
	if (faults_apply(srv, resp))
		goto count;
	if (r.id == R_NONE) {
		fk_resp_route_404(resp);
		goto count;
	}
	if (post)
		body = body_parse(rq, &berr);

	pthread_mutex_lock(&srv->mu);
	if (r.id != R_ADMIN_TOKEN &&
	    fk_auth_check(srv, rq, r.resource, resp) < 0)
		goto unlock;
	if (post && !body) {
		*resp = berr;
		berr.body = NULL;
		goto unlock;
	}
	switch (r.id) {
	case R_ORDERS:
		search_run(srv, rq, srv->orders, srv->norders,
			   sizeof *srv->orders,
			   order_field, order_to_json, resp);
		break;
	case R_ORDER:
		h_order(srv, &r, resp);
		break;
	case R_SHIP:
		h_ship(srv, &r, body, resp);
		break;
	case R_TRACK:
		h_track(srv, body, resp);
		break;
	case R_SHIPMENTS:
		search_run(srv, rq, srv->ships, srv->nships,
			   sizeof *srv->ships,
			   ship_field, ship_to_json, resp);
		break;
	case R_SHIPMENT:
		h_shipment(srv, &r, resp);
		break;
	case R_SOURCE_ITEMS:
		h_source_items(srv, body, resp);
		break;
	case R_STOCK_ITEM:
		h_stock_item(srv, &r, body, resp);
		break;
	case R_BASE_PRICES:
		h_base_prices(srv, body, resp);
		break;
	case R_BASE_PRICES_INFO:
		h_base_prices_info(srv, body, resp);
		break;
	case R_ADMIN_TOKEN:
		fk_admin_login(srv, body, resp);
		break;
	default:
		fk_resp_route_404(resp);
		break;
	}
unlock:
	pthread_mutex_unlock(&srv->mu);
	free(berr.body);
	json_object_put(body);
	if (strcmp(rq->method, "GET") == 0)
		apply_fields(rq, resp);
count:
	pthread_mutex_lock(&srv->mu);
	fk_count_request(srv, key, resp->drop ? 0 : resp->status);
	pthread_mutex_unlock(&srv->mu);
}
