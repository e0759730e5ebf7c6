#include "config.h"
/*
 * state.c - the fake store's data: generated orders and products, the
 * shipments and tracks created through the API, request counters, fault
 * settings and the seeded PRNG that decides injected faults.
 *
 * Generation is deterministic (see README.md): order k has entity_id k,
 * increment_id 1000000000+k and two items; product j is "SKU-j". Lookups
 * by entity id, increment id and SKU are O(1) because the generated keys
 * encode their index. Shipment ids and track ids count up from 1.
 *
 * Every function here expects the caller to hold srv->mu, except
 * fk_state_init / fk_state_free (single-threaded start and end). The PHP
 * pool's part of a reset and of the state (php.c) takes the pool's own
 * lock inside.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "fake.h"

const char *const fk_sources[FK_NSOURCES] = { "default", "warehouse-2" };

static void ships_free(struct fk_server *srv)
{
	size_t i, j;

	for (i = 0; i < srv->nships; i++) {
		struct fk_shipment *s = &srv->ships[i];

		for (j = 0; j < s->ntracks; j++) {
			free(s->tracks[j].track_number);
			free(s->tracks[j].title);
			free(s->tracks[j].carrier_code);
		}
		free(s->tracks);
		free(s->source_code);
	}
	free(srv->ships);
	srv->ships = NULL;
	srv->nships = srv->capships = 0;
}

static void generate(struct fk_server *srv)
{
	size_t k, j, P = srv->nproducts;

	for (k = 1; k <= srv->norders; k++) {
		struct fk_order *o = &srv->orders[k - 1];

		memset(o, 0, sizeof *o);
		o->entity_id = (int64_t)k;
		snprintf(o->increment_id, sizeof o->increment_id, "%" PRId64,
			 (int64_t)1000000000 + (int64_t)k);
		strcpy(o->state, "processing");
		strcpy(o->status, "processing");
		o->nitems = 2;
		o->items[0].item_id = (int64_t)(2 * k - 1);
		snprintf(o->items[0].sku, sizeof o->items[0].sku, "SKU-%zu",
			 (k - 1) % P + 1);
		o->items[0].qty_ordered = 2;
		o->items[1].item_id = (int64_t)(2 * k);
		snprintf(o->items[1].sku, sizeof o->items[1].sku, "SKU-%zu",
			 k % P + 1);
		o->items[1].qty_ordered = 1;
	}
	for (j = 1; j <= P; j++) {
		struct fk_product *p = &srv->products[j - 1];

		memset(p, 0, sizeof *p);
		snprintf(p->sku, sizeof p->sku, "SKU-%zu", j);
		p->src_set[0] = 1;
		p->src_qty[0] = 100;
		p->src_status[0] = 1;
		p->legacy_qty = 100;
		p->legacy_in_stock = 1;
		p->price[0] = 10.00 + (double)j;
		p->price_set[0] = 1;
	}
}

static void counters_reset(struct fk_server *srv)
{
	json_object_put(srv->requests);
	srv->requests = json_object_new_object();
	srv->total_requests = 0;
	srv->window_sec = 0;
	srv->window_count = 0;
	srv->login_ok = srv->login_failed = 0;
	srv->consecutive_failures = 0;
	srv->locked_until = 0;
}

int fk_state_init(struct fk_server *srv, const struct fk_opts *o)
{
	memset(srv, 0, sizeof *srv);
	srv->opts = o;
	pthread_mutex_init(&srv->mu, NULL);
	fk_php_init(&srv->php, o->php_workers);
	srv->norders = (size_t)o->norders;
	srv->nproducts = (size_t)o->nproducts;
	srv->orders = fk_xrealloc(NULL, srv->norders * sizeof *srv->orders);
	srv->products = fk_xrealloc(NULL,
				    srv->nproducts * sizeof *srv->products);
	if (RAND_bytes(srv->jwt_key, sizeof srv->jwt_key) != 1)
		memset(srv->jwt_key, 0x5a, sizeof srv->jwt_key);
	fk_state_reset(srv);
	srv->faults = o->faults;          /* the command line's faults */
	return 0;
}

/* Faults off: only the status and Retry-After choices survive. The PHP
 * pool gets the command line's size back and its counters restart. */
void fk_state_reset(struct fk_server *srv)
{
	ships_free(srv);
	generate(srv);
	srv->next_track_id = 1;
	counters_reset(srv);
	memset(&srv->faults, 0, sizeof srv->faults);
	srv->faults.fail_status = srv->opts->faults.fail_status;
	srv->faults.retry_after = srv->opts->faults.retry_after;
	srv->rng = srv->opts->seed;
	fk_php_reset(srv);
}

void fk_state_free(struct fk_server *srv)
{
	ships_free(srv);
	free(srv->orders);
	free(srv->products);
	json_object_put(srv->requests);
	fk_auth_free(srv);
	fk_php_destroy(&srv->php);
	pthread_mutex_destroy(&srv->mu);
}

/* "<prefix><n>" with n in 1..max, no sign, no leading zero; else 0. */
static size_t parse_index(const char *s, const char *prefix, size_t max)
{
	size_t n = 0, pl = strlen(prefix);

	if (strncmp(s, prefix, pl) != 0)
		return 0;
	s += pl;
	if (*s < '1' || *s > '9')
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > max)
			return 0;
		n = n * 10 + (size_t)(*s - '0');
	}
	return n <= max ? n : 0;
}

struct fk_order *fk_order_by_entity(struct fk_server *srv, int64_t id)
{
	if (id < 1 || (uint64_t)id > srv->norders)
		return NULL;
	return &srv->orders[id - 1];
}

struct fk_order *fk_order_by_increment(struct fk_server *srv, const char *inc)
{
	int64_t v = 0;
	const char *p;

	if (strlen(inc) != 10)
		return NULL;
	for (p = inc; *p; p++) {
		if (*p < '0' || *p > '9')
			return NULL;
		v = v * 10 + (*p - '0');
	}
	return fk_order_by_entity(srv, v - 1000000000);
}

struct fk_product *fk_product_by_sku(struct fk_server *srv, const char *sku)
{
	size_t j = parse_index(sku, "SKU-", srv->nproducts);

	return j ? &srv->products[j - 1] : NULL;
}

struct fk_shipment *fk_ship_by_id(struct fk_server *srv, int64_t id)
{
	if (id < 1 || (uint64_t)id > srv->nships)
		return NULL;
	return &srv->ships[id - 1];
}

struct fk_shipment *fk_ship_new(struct fk_server *srv, int64_t order_id)
{
	struct fk_shipment *s;
	struct fk_order *o;

	if (srv->nships == srv->capships) {
		srv->capships = srv->capships ? 2 * srv->capships : 64;
		srv->ships = fk_xrealloc(srv->ships,
					 srv->capships * sizeof *srv->ships);
	}
	s = &srv->ships[srv->nships++];
	memset(s, 0, sizeof *s);
	s->id = (int64_t)srv->nships;
	s->order_id = order_id;
	o = fk_order_by_entity(srv, order_id);
	if (o) { /* a per-order chain, so searches by order are not scans */
		s->prev_of_order = o->last_ship;
		o->last_ship = s->id;
	}
	s->created = time(NULL);
	return s;
}

int fk_ship_add_track(struct fk_shipment *s, int64_t id, const char *number,
		      const char *title, const char *carrier)
{
	struct fk_track *t;

	if (s->ntracks == s->captracks) {
		s->captracks = s->captracks ? 2 * s->captracks : 2;
		s->tracks = fk_xrealloc(s->tracks,
					s->captracks * sizeof *s->tracks);
	}
	t = &s->tracks[s->ntracks++];
	t->id = id;
	t->track_number = fk_xstrdup(number);
	t->title = fk_xstrdup(title ? title : "");
	t->carrier_code = fk_xstrdup(carrier);
	t->order_id = s->order_id;
	return 0;
}

int fk_source_index(const char *code)
{
	int i;

	for (i = 0; i < FK_NSOURCES; i++)
		if (strcmp(fk_sources[i], code) == 0)
			return i;
	return -1;
}

/* splitmix64: small, seedable, good enough for fault decisions. */
uint64_t fk_rand64(struct fk_server *srv)
{
	uint64_t z = (srv->rng += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

double fk_rand01(struct fk_server *srv)
{
	return (double)(fk_rand64(srv) >> 11) / 9007199254740992.0;
}

void fk_count_request(struct fk_server *srv, const char *key, int status)
{
	json_object *per, *cnt;
	char st[16];

	if (!json_object_object_get_ex(srv->requests, key, &per)) {
		per = json_object_new_object();
		json_object_object_add(srv->requests, key, per);
	}
	snprintf(st, sizeof st, "%d", status);
	if (json_object_object_get_ex(per, st, &cnt))
		json_object_object_add(per, st, json_object_new_int64(
			json_object_get_int64(cnt) + 1));
	else
		json_object_object_add(per, st, json_object_new_int64(1));
}

/* ---- JSON views */

json_object *fk_order_json(const struct fk_order *o)
{
	json_object *j = json_object_new_object(), *items;
	size_t i;

	json_object_object_add(j, "entity_id", json_object_new_int64(o->entity_id));
	json_object_object_add(j, "increment_id",
			       json_object_new_string(o->increment_id));
	json_object_object_add(j, "state", json_object_new_string(o->state));
	json_object_object_add(j, "status", json_object_new_string(o->status));
	json_object_object_add(j, "store_id", json_object_new_int(1));
	items = json_object_new_array();
	for (i = 0; i < o->nitems; i++) {
		const struct fk_item *it = &o->items[i];
		json_object *ji = json_object_new_object();

		json_object_object_add(ji, "item_id",
				       json_object_new_int64(it->item_id));
		json_object_object_add(ji, "order_id",
				       json_object_new_int64(o->entity_id));
		json_object_object_add(ji, "sku", json_object_new_string(it->sku));
		json_object_object_add(ji, "product_type",
				       json_object_new_string("simple"));
		json_object_object_add(ji, "qty_ordered",
				       fk_jdouble(it->qty_ordered));
		json_object_object_add(ji, "qty_shipped",
				       fk_jdouble(it->qty_shipped));
		json_object_object_add(ji, "qty_canceled",
				       fk_jdouble(it->qty_canceled));
		json_object_array_add(items, ji);
	}
	json_object_object_add(j, "items", items);
	return j;
}

json_object *fk_track_json(const struct fk_track *t, int64_t parent_id)
{
	json_object *j = json_object_new_object();

	json_object_object_add(j, "entity_id", json_object_new_int64(t->id));
	json_object_object_add(j, "order_id", json_object_new_int64(t->order_id));
	json_object_object_add(j, "parent_id", json_object_new_int64(parent_id));
	json_object_object_add(j, "track_number",
			       json_object_new_string(t->track_number));
	json_object_object_add(j, "title", json_object_new_string(t->title));
	json_object_object_add(j, "carrier_code",
			       json_object_new_string(t->carrier_code));
	return j;
}

json_object *fk_ship_json(const struct fk_shipment *s)
{
	json_object *j = json_object_new_object(), *a;
	char inc[32];
	double total = 0;
	size_t i;

	json_object_object_add(j, "entity_id", json_object_new_int64(s->id));
	json_object_object_add(j, "order_id", json_object_new_int64(s->order_id));
	snprintf(inc, sizeof inc, "%09" PRId64, s->id);
	json_object_object_add(j, "increment_id", json_object_new_string(inc));
	json_object_object_add(j, "store_id", json_object_new_int(1));
	a = json_object_new_array();
	for (i = 0; i < s->nitems; i++) {
		json_object *ji = json_object_new_object();

		json_object_object_add(ji, "order_item_id",
			json_object_new_int64(s->items[i].order_item_id));
		json_object_object_add(ji, "parent_id",
				       json_object_new_int64(s->id));
		json_object_object_add(ji, "qty", fk_jdouble(s->items[i].qty));
		json_object_object_add(ji, "sku",
				       json_object_new_string(s->items[i].sku));
		json_object_array_add(a, ji);
		total += s->items[i].qty;
	}
	json_object_object_add(j, "items", a);
	json_object_object_add(j, "total_qty", fk_jdouble(total));
	a = json_object_new_array();
	for (i = 0; i < s->ntracks; i++)
		json_object_array_add(a, fk_track_json(&s->tracks[i], s->id));
	json_object_object_add(j, "tracks", a);
	if (s->source_code) {
		json_object *ext = json_object_new_object();

		json_object_object_add(ext, "source_code",
				       json_object_new_string(s->source_code));
		json_object_object_add(j, "extension_attributes", ext);
	}
	return j;
}

json_object *fk_faults_json(const struct fk_faults *f)
{
	json_object *j = json_object_new_object();

	json_object_object_add(j, "fail_rate", fk_jdouble(f->fail_rate));
	json_object_object_add(j, "fail_status", json_object_new_int(f->fail_status));
	json_object_object_add(j, "latency_ms", json_object_new_int(f->latency_ms));
	json_object_object_add(j, "drop_rate", fk_jdouble(f->drop_rate));
	json_object_object_add(j, "rate_limit", json_object_new_int(f->rate_limit));
	json_object_object_add(j, "retry_after", json_object_new_int(f->retry_after));
	json_object_object_add(j, "outage", json_object_new_boolean(f->outage));
	return j;
}

json_object *fk_state_json(struct fk_server *srv)
{
	json_object *st = json_object_new_object();
	json_object *orders = json_object_new_object();
	json_object *tracks = json_object_new_object();
	json_object *spo = json_object_new_object();
	json_object *stock = json_object_new_object();
	json_object *legacy = json_object_new_object();
	json_object *prices = json_object_new_object();
	json_object *logins = json_object_new_object();
	json_object *reqs = NULL;
	size_t *count, i, k;
	time_t now = time(NULL);

	/* shipments grouped by order: count per order, then walk */
	count = calloc(srv->norders + 1, sizeof *count);
	if (!count)
		abort();
	for (i = 0; i < srv->nships; i++)
		count[srv->ships[i].order_id]++;
	for (k = 0; k < srv->norders; k++) {
		const struct fk_order *o = &srv->orders[k];
		json_object *jo, *sa;

		if (count[k + 1] == 0 && strcmp(o->state, "processing") == 0)
			continue;
		jo = json_object_new_object();
		json_object_object_add(jo, "entity_id",
				       json_object_new_int64(o->entity_id));
		json_object_object_add(jo, "state", json_object_new_string(o->state));
		sa = json_object_new_array();
		json_object_object_add(jo, "shipments", sa);
		json_object_object_add(orders, o->increment_id, jo);
		if (count[k + 1] > 0)
			json_object_object_add(spo, o->increment_id,
				json_object_new_int64((int64_t)count[k + 1]));
	}
	for (i = 0; i < srv->nships; i++) {
		const struct fk_shipment *s = &srv->ships[i];
		const struct fk_order *o = &srv->orders[s->order_id - 1];
		json_object *jo, *sa, *js, *a;
		size_t t;

		json_object_object_get_ex(orders, o->increment_id, &jo);
		json_object_object_get_ex(jo, "shipments", &sa);
		js = json_object_new_object();
		json_object_object_add(js, "id", json_object_new_int64(s->id));
		a = json_object_new_array();
		for (t = 0; t < s->nitems; t++) {
			json_object *ji = json_object_new_object();

			json_object_object_add(ji, "order_item_id",
				json_object_new_int64(s->items[t].order_item_id));
			json_object_object_add(ji, "qty",
					       fk_jdouble(s->items[t].qty));
			json_object_array_add(a, ji);
		}
		json_object_object_add(js, "items", a);
		a = json_object_new_array();
		for (t = 0; t < s->ntracks; t++) {
			const struct fk_track *tr = &s->tracks[t];
			json_object *jt = json_object_new_object(), *c;

			json_object_object_add(jt, "track_number",
				json_object_new_string(tr->track_number));
			json_object_object_add(jt, "carrier_code",
				json_object_new_string(tr->carrier_code));
			json_object_object_add(jt, "title",
				json_object_new_string(tr->title));
			json_object_array_add(a, jt);
			if (json_object_object_get_ex(tracks, tr->track_number, &c))
				json_object_object_add(tracks, tr->track_number,
					json_object_new_int64(
						json_object_get_int64(c) + 1));
			else
				json_object_object_add(tracks, tr->track_number,
						       json_object_new_int64(1));
		}
		json_object_object_add(js, "tracks", a);
		json_object_array_add(sa, js);
	}
	free(count);

	for (k = 0; k < srv->nproducts; k++) {
		const struct fk_product *p = &srv->products[k];
		json_object *js = NULL, *jp = NULL;
		int s;

		for (s = 0; s < FK_NSOURCES; s++) {
			json_object *e;

			if (!p->src_changed[s])
				continue;
			if (!js)
				js = json_object_new_object();
			e = json_object_new_object();
			json_object_object_add(e, "quantity",
					       fk_jdouble(p->src_qty[s]));
			json_object_object_add(e, "status",
					       json_object_new_int(p->src_status[s]));
			json_object_object_add(js, fk_sources[s], e);
		}
		if (js)
			json_object_object_add(stock, p->sku, js);
		if (p->legacy_changed) {
			json_object *e = json_object_new_object();

			json_object_object_add(e, "qty", fk_jdouble(p->legacy_qty));
			json_object_object_add(e, "is_in_stock",
				json_object_new_boolean(p->legacy_in_stock));
			json_object_object_add(legacy, p->sku, e);
		}
		for (s = 0; s < FK_NSTORES; s++) {
			char sid[16];

			if (!p->price_changed[s])
				continue;
			if (!jp)
				jp = json_object_new_object();
			snprintf(sid, sizeof sid, "%d", s);
			json_object_object_add(jp, sid, fk_jdouble(p->price[s]));
		}
		if (jp)
			json_object_object_add(prices, p->sku, jp);
	}

	json_object_object_add(logins, "ok", json_object_new_int64(srv->login_ok));
	json_object_object_add(logins, "failed",
			       json_object_new_int64(srv->login_failed));
	json_object_object_add(logins, "consecutive_failures",
			       json_object_new_int(srv->consecutive_failures));
	json_object_object_add(logins, "locked",
			       json_object_new_boolean(srv->locked_until > now));
	json_object_object_add(logins, "locked_until",
			       json_object_new_int64(srv->locked_until > now ?
						     (int64_t)srv->locked_until : 0));

	/* the counters are copied so the live object stays ours */
	reqs = json_tokener_parse(json_object_to_json_string(srv->requests));

	json_object_object_add(st, "orders", orders);
	json_object_object_add(st, "tracks", tracks);
	json_object_object_add(st, "shipments_per_order", spo);
	json_object_object_add(st, "shipments_total",
			       json_object_new_int64((int64_t)srv->nships));
	json_object_object_add(st, "stock", stock);
	json_object_object_add(st, "legacy_stock", legacy);
	json_object_object_add(st, "prices", prices);
	json_object_object_add(st, "requests", reqs);
	json_object_object_add(st, "total_requests",
			       json_object_new_int64((int64_t)srv->total_requests));
	json_object_object_add(st, "admin_logins", logins);
	json_object_object_add(st, "admin_tokens_issued",
			       json_object_new_int64((int64_t)srv->ntokens));
	json_object_object_add(st, "faults", fk_faults_json(&srv->faults));
	fk_php_json(srv, st);
	return st;
}
