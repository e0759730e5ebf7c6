/*
 * fake.h - shared types of fake-magento, a test/demo server that imitates
 * the part of Magento 2's REST API that m2worker uses.
 *
 * Modules:
 *   main.c     command line, libmicrohttpd setup, per-request buffering,
 *              fault injection, dispatch, signal handling
 *   state.c    the generated store (orders, products, shipments), reset,
 *              request counters, PRNG, fault settings
 *   routes.c   the /rest/.../V1 endpoints
 *   auth.c     Bearer tokens, admin login (JWT-shaped tokens, lockout),
 *              OAuth 1.0a HMAC-SHA256
 *   control.c  the /_fake/ control endpoints (state, faults, reset ...)
 *   php.c      the PHP worker pool (--php-workers: a FIFO counting
 *              semaphore every /rest request and page view holds), the
 *              service-time sleep, GET /storefront
 *   util.c     JSON responses, percent-coding, searchCriteria and `fields`
 *
 * Threading: libmicrohttpd runs one thread per connection. Everything in
 * struct fk_server below the mutex is guarded by that one mutex; handlers
 * take it for the whole of their work on the state (they never block on I/O
 * while holding it). The PHP worker pool (struct fk_php) has its own
 * mutex, taken after srv->mu when both are held, never before: a request
 * waits for a PHP worker holding no lock. The options are read-only after
 * start.
 *
 * Memory: a struct fk_resp owns its body (malloc'd); the request context
 * (struct fk_req) is owned by main.c and freed when MHD completes the
 * request.
 */
#ifndef FAKE_MAGENTO_FAKE_H
#define FAKE_MAGENTO_FAKE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#define FK_NSOURCES 2
#define FK_NSTORES 2            /* store ids 0 (admin/global) and 1 */
#define FK_LOCK_AFTER 6         /* wrong admin passwords in a row */
#define FK_LOCK_SECONDS 1800
#define FK_OAUTH_SKEW 600       /* seconds a timestamp may be off */
#define FK_PHP_MAX 100000       /* --php-workers at most */

extern const char *const fk_sources[FK_NSOURCES];

struct fk_faults {
	double fail_rate;
	int fail_status;            /* 500 or 503 */
	int latency_ms;
	double drop_rate;
	int rate_limit;             /* requests per second; 0: none */
	int retry_after;            /* seconds; 0: no Retry-After header */
	int outage;
};

struct fk_opts {
	int port;
	const char *port_file;
	long norders;
	long nproducts;
	const char *token;
	char *admin_user;           /* malloc'd (split of USER:PASS) */
	char *admin_pass;
	long admin_ttl;
	char *oauth[4];             /* ck, cs, at, as (malloc'd) */
	int no_auth;                /* effective: accept everything */
	struct fk_faults faults;    /* as given on the command line */
	long php_workers;           /* 0: unlimited */
	int storefront_ms;          /* service time of GET /storefront */
	uint64_t seed;
	int verbose;
};

struct fk_item {
	int64_t item_id;
	char sku[64];
	double qty_ordered;
	double qty_shipped;
	double qty_canceled;
};

struct fk_order {
	int64_t entity_id;
	char increment_id[24];
	char state[24];
	char status[24];
	struct fk_item items[2];
	size_t nitems;
	int64_t last_ship;          /* its newest shipment's id, 0: none */
};

struct fk_track {
	int64_t id;
	char *track_number;
	char *title;
	char *carrier_code;
	int64_t order_id;
};

struct fk_ship_item {
	int64_t order_item_id;
	double qty;
	char sku[64];
};

struct fk_shipment {
	int64_t id;
	int64_t order_id;
	struct fk_ship_item items[2];
	size_t nitems;
	struct fk_track *tracks;
	size_t ntracks, captracks;
	char *source_code;          /* from arguments.extension_attributes */
	time_t created;
	int64_t prev_of_order;      /* the order's shipment before this one */
};

struct fk_product {
	char sku[32];
	double src_qty[FK_NSOURCES];
	int src_status[FK_NSOURCES];
	int src_set[FK_NSOURCES];       /* source item exists */
	int src_changed[FK_NSOURCES];
	double legacy_qty;
	int legacy_in_stock;
	int legacy_changed;
	double price[FK_NSTORES];
	int price_set[FK_NSTORES];
	int price_changed[FK_NSTORES];
};

struct fk_admin_token {
	char *token;
	time_t exp;
};

/* Which requests a PHP worker served (counted when it is given back). */
enum fk_php_kind { FK_PHP_API, FK_PHP_STOREFRONT, FK_PHP_NKINDS };

struct fk_php_waiter;

/* The PHP worker pool (php.c); everything guarded by its own mu. */
struct fk_php {
	pthread_mutex_t mu;
	int stopping;
	long workers;               /* N; 0: unlimited */
	long busy, busy_max;        /* slots held now / the most at once */
	long queued, queued_max;    /* waiters now / the most at once */
	uint64_t wait_us_total;     /* summed over the admitted waiters */
	uint64_t served[FK_PHP_NKINDS];
	struct fk_php_waiter *head, *tail;   /* FIFO of waiters */
};

struct fk_server {
	const struct fk_opts *opts;
	int stopping;               /* set by main() (atomic builtins) */
	struct fk_php php;          /* its own lock: not under mu */

	pthread_mutex_t mu;         /* guards everything below */
	struct fk_order *orders;
	size_t norders;
	struct fk_product *products;
	size_t nproducts;
	struct fk_shipment *ships;  /* ships[i].id == i + 1 */
	size_t nships, capships;
	int64_t next_track_id;

	json_object *requests;      /* "GET /V1/orders" -> {"200": n} */
	uint64_t total_requests;

	struct fk_faults faults;
	uint64_t rng;
	int64_t window_sec;         /* rate limit: current 1 s window */
	long window_count;

	struct fk_admin_token *tokens;
	size_t ntokens, captokens;
	long login_ok, login_failed;
	int consecutive_failures;
	time_t locked_until;

	char **nonces;              /* open-addressing set of seen nonces */
	size_t nonce_cap, nonce_n;

	unsigned char jwt_key[32];
};

/* A decoded query parameter. */
struct fk_kv {
	char *k;
	char *v;
};

/* One HTTP request (owned by main.c). */
struct fk_req {
	char *raw_uri;              /* as received, with query */
	char *body;
	size_t len, cap;
	int too_big;
	int started;
	/* filled before dispatch */
	const char *method;
	const char *url;            /* decoded path from MHD */
	const char *content_type;
	const char *authorization;
	const char *host;
	char *raw_path;             /* raw_uri without query */
	struct fk_kv *query;        /* decoded query parameters */
	size_t nquery;
	struct timespec t0;
};

/* A response a handler produced. */
struct fk_resp {
	int status;
	char *body;                 /* malloc'd JSON text; NULL: "" */
	int retry_after;            /* >0: send Retry-After */
	int drop;                   /* close the connection, no response */
	const char *content_type;   /* static; NULL: application/json */
};

/* ---- state.c (callers hold srv->mu unless noted) */
int fk_state_init(struct fk_server *srv, const struct fk_opts *o);
void fk_state_free(struct fk_server *srv);
void fk_state_reset(struct fk_server *srv);
struct fk_order *fk_order_by_entity(struct fk_server *srv, int64_t id);
struct fk_order *fk_order_by_increment(struct fk_server *srv, const char *inc);
struct fk_product *fk_product_by_sku(struct fk_server *srv, const char *sku);
struct fk_shipment *fk_ship_by_id(struct fk_server *srv, int64_t id);
struct fk_shipment *fk_ship_new(struct fk_server *srv, int64_t order_id);
int fk_ship_add_track(struct fk_shipment *s, int64_t id, const char *number,
		      const char *title, const char *carrier);
int fk_source_index(const char *code);
double fk_rand01(struct fk_server *srv);
uint64_t fk_rand64(struct fk_server *srv);
void fk_count_request(struct fk_server *srv, const char *key, int status);
json_object *fk_order_json(const struct fk_order *o);
json_object *fk_ship_json(const struct fk_shipment *s);
json_object *fk_track_json(const struct fk_track *t, int64_t parent_id);
json_object *fk_faults_json(const struct fk_faults *f);
json_object *fk_state_json(struct fk_server *srv);

/* ---- auth.c (callers hold srv->mu) */
/* 0: allowed; -1: *resp holds the refusal. `resource` names the ACL
 * resource for the 401 message. */
int fk_auth_check(struct fk_server *srv, const struct fk_req *rq,
		  const char *resource, struct fk_resp *resp);
void fk_admin_login(struct fk_server *srv, json_object *body,
		    struct fk_resp *resp);
size_t fk_expire_tokens(struct fk_server *srv);
void fk_auth_free(struct fk_server *srv);

/* ---- routes.c: an API request (path under /rest), faults included;
 * takes srv->mu itself. */
void fk_api_handle(struct fk_server *srv, struct fk_req *rq,
		   struct fk_resp *resp);

/* ---- control.c: a /_fake/ request; takes srv->mu itself. */
void fk_control_handle(struct fk_server *srv, struct fk_req *rq,
		       struct fk_resp *resp);

/* ---- php.c */
void fk_php_init(struct fk_php *p, long workers);
void fk_php_destroy(struct fk_php *p);
/* Serves rq holding one PHP worker (waiting for it in FIFO order): kind
 * FK_PHP_API is fk_api_handle, FK_PHP_STOREFRONT the storefront page. A
 * request still waiting when the server stops answers 503. Takes no lock
 * across the wait. */
void fk_php_serve(struct fk_server *srv, struct fk_req *rq,
		  struct fk_resp *resp, enum fk_php_kind kind);
void fk_php_set_workers(struct fk_server *srv, long n);
long fk_php_workers(struct fk_server *srv);
void fk_php_stop(struct fk_server *srv);        /* wakes every waiter */
void fk_php_reset(struct fk_server *srv);       /* size from the options */
void fk_php_json(struct fk_server *srv, json_object *st);  /* php_* keys */
/* Sleeps ms in slices; returns early once the server is stopping. */
void fk_service_sleep(struct fk_server *srv, int ms);

/* ---- util.c */
char *fk_json_text(json_object *o);   /* malloc'd compact JSON */
/* Sets *resp to status + the JSON text of o; consumes o. */
void fk_resp_json(struct fk_resp *resp, int status, json_object *o);
/* {"message": msg} plus "parameters" when params != NULL (consumed). */
void fk_resp_error(struct fk_resp *resp, int status, const char *msg,
		   json_object *params);
void fk_resp_route_404(struct fk_resp *resp);
json_object *fk_jdouble(double d);
json_object *fk_params1(const char *k1, const char *v1);
char *fk_pct_decode(const char *s, size_t n, int plus_is_space);
char *fk_pct_encode(const char *s);   /* RFC 3986 unreserved kept */
int fk_query_parse(const char *query, struct fk_kv **out, size_t *n);
void fk_query_free(struct fk_kv *kv, size_t n);
const char *fk_query_get(const struct fk_req *rq, const char *key);
/* `fields` parameter: parse "a,b[c,d]" to a filter tree; NULL on error. */
json_object *fk_fields_parse(const char *spec);
/* Trims `data` (consumed) to the filter; returns the new object. */
json_object *fk_fields_apply(json_object *data, json_object *filter);
int fk_like(const char *s, const char *pattern);
/* 1 when the JSON number or numeric string is read into *out. */
int fk_json_number(json_object *o, double *out);
int fk_json_int64(json_object *o, int64_t *out);
/* The first key of object o not in the NULL-terminated list, or NULL. */
const char *fk_unknown_key(json_object *o, const char *const *allowed);
void fk_resp_unknown_field(struct fk_resp *resp, const char *key);
char *fk_xstrdup(const char *s);
void *fk_xrealloc(void *p, size_t n);

#endif
