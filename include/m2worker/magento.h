/*
 * magento.h - the library's one boundary to Magento 2's REST API.
 *
 * Two objects:
 *   struct m2_client  configuration plus what all threads share: the admin
 *                     token cache (one login for every thread, renewed
 *                     before it expires and once on a 401; both counted
 *                     and logged). Thread-safe.
 *   struct m2_conn    one libcurl easy handle with keep-alive, owned by ONE
 *                     worker thread (not thread-safe; one per thread).
 * Call curl_global_init() once before threads start (m2_global_init does).
 *
 * Every call fills a struct m2_result and returns an enum m2w_err:
 *   M2W_OK          2xx (for base prices: see m2_base_prices_save)
 *   M2W_ETRANSIENT  connect error, timeout, 5xx, 429 (retry_after_ms set
 *                   from Retry-After, seconds or HTTP date)
 *   M2W_EPERMANENT  400, 404 and other 4xx: Magento's message, with its
 *                   %1 / %name placeholders filled, is in result.message
 *   M2W_EAUTH       credentials refused (after one renewal); a rejected
 *                   admin password is remembered and never retried (Magento
 *                   locks the admin after six) until m2_client_reset_auth
 *   M2W_EPROTO      a 2xx whose body is not the JSON we expect
 *   M2W_ENOTFOUND   a lookup found nothing (order by increment id)
 *   M2W_EINVAL      bad arguments (nothing was sent)
 * result.cls says how the store should count it (enum m2w_class).
 *
 * Secrets (password, tokens, OAuth secrets) are copied into the client and
 * never logged or put in a result message.
 *
 * Memory: results the library returns (orders, shipments, bodies) are
 * allocated by it and freed with the matching *_free; inputs are copied or
 * only read during the call.
 */
#ifndef M2WORKER_MAGENTO_H
#define M2WORKER_MAGENTO_H

#include <stddef.h>
#include <stdint.h>

#include "m2worker/buf.h"
#include "m2worker/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M2_MESSAGE_MAX 1024

struct m2_client;
struct m2_conn;

enum m2_auth {
	M2_AUTH_NONE = 0,
	M2_AUTH_TOKEN = 1,  /* integration access token as Bearer */
	M2_AUTH_ADMIN = 2,  /* admin username/password -> token */
	M2_AUTH_OAUTH = 3   /* OAuth 1.0a, HMAC-SHA256 */
};

struct m2_client_opts {
	/* "https://shop", or the predecessors' "https://shop/rest/V1", or
	 * "https://shop/rest/<store>/V1". */
	const char *base_url;
	const char *store_code;      /* NULL: "default" (ignored when base_url
				      * already names /rest/.../V1) */
	int auth;                    /* enum m2_auth */
	const char *token;           /* M2_AUTH_TOKEN */
	const char *username;        /* M2_AUTH_ADMIN */
	const char *password;
	long admin_token_ttl_s;      /* 0: 3600 (Magento's default); a JWT's
				      * own exp claim wins */
	const char *consumer_key;    /* M2_AUTH_OAUTH */
	const char *consumer_secret;
	const char *access_token;
	const char *access_token_secret;
	long connect_timeout_ms;     /* 0: 5000 */
	long timeout_ms;             /* 0: 30000, the whole request */
	const char *ca_file;         /* NULL: the system's CAs */
	const char *proxy;           /* NULL: none (curl's env vars ignored) */
	int insecure;                /* skip TLS verification (staging only) */
	const char *user_agent;      /* NULL: "m2worker/VERSION" */
	double rate_limit;           /* requests per second over all conns of
				      * this client (requests wait for their
				      * slot); 0: no limit */
};

/* What one call ended with. */
struct m2_result {
	int http_status;             /* 0 when no response arrived */
	int cls;                     /* enum m2w_class */
	int64_t retry_after_ms;      /* from Retry-After; 0 if none */
	int64_t duration_ms;         /* wall time of the call, retries included */
	char message[M2_MESSAGE_MAX + 1]; /* "" on success */
};

/* curl_global_init; call once in main() before any thread starts. */
int m2_global_init(char *errbuf);
void m2_global_cleanup(void);

/* What m2_client_new refuses in o (base URL, store code, the auth mode's
 * credentials), without making a client: the config's check calls it so
 * that --check-config and a start agree. M2W_OK or M2W_EINVAL. */
int m2_client_check(const struct m2_client_opts *o, char *errbuf);

int m2_client_new(const struct m2_client_opts *o, struct m2_client **out,
		  char *errbuf);
void m2_client_free(struct m2_client *c);
/* Forget a rejected admin password and the cached token, so that the next
 * call logs in again with the same password (the daemon's SIGHUP, after
 * the operator unlocked the admin or set its password back in Magento). */
void m2_client_reset_auth(struct m2_client *c);
/* What the client did on its own (auth admin): logins that replaced a
 * token, each also logged as magento.token.renewed (a first login, or one
 * after m2_client_reset_auth, is not a renewal). */
struct m2_client_stats {
	uint64_t token_renewals_expiry;  /* due: 60 s before it expires */
	uint64_t token_renewals_401;     /* Magento refused the token */
};
/* A consistent copy of the counters. Thread-safe. */
void m2_client_get_stats(struct m2_client *c, struct m2_client_stats *out);
/* The V1 prefix every path is appended to ("https://shop/rest/default/V1"). */
const char *m2_client_base(const struct m2_client *c);

int m2_conn_new(struct m2_client *c, struct m2_conn **out, char *errbuf);
void m2_conn_free(struct m2_conn *k);

/*
 * While *flag is non-zero, requests on this conn are not started and a
 * transfer in progress is aborted within about a second: the call returns
 * M2W_ETRANSIENT with "aborted". For shutdown after the grace period. The
 * flag is owned by the caller and must outlive the conn.
 */
void m2_conn_set_abort(struct m2_conn *k, const volatile int *flag);

/* Calls fn(arg, http_status, ms) after every request made on this conn
 * (status 0 when no response came): metrics. */
void m2_conn_set_observer(struct m2_conn *k,
			  void (*fn)(void *arg, int status, int64_t ms),
			  void *arg);

/*
 * A gate around every request made on this conn (an adaptive limit of
 * calls in flight: src/daemon/limiter.h): enter(arg) before the request
 * is sent, after any rate-limit wait; non-zero and the request is not made
 * (the call returns M2W_ETRANSIENT "aborted"). Then exactly one
 * leave(arg, http_status, xfer, us): status 0 when no answer came, xfer
 * how the transfer ended (enum m2_xfer), us its round trip.
 */
enum m2_xfer {
	M2_XFER_OK = 0,          /* an answer came (any status) */
	M2_XFER_OVERLOAD,        /* timeout, refused, reset, nothing came */
	M2_XFER_OTHER            /* aborted, DNS, TLS, too large, ... */
};
void m2_conn_set_gate(struct m2_conn *k, int (*enter)(void *arg),
		      void (*leave)(void *arg, int status, int xfer,
				    int64_t us),
		      void *arg);

/*
 * A secret given as "env:NAME" (the environment), "file:/path" (first line
 * of a file), or anything else (the value itself). *out is malloc'd.
 */
int m2_secret_resolve(const char *spec, char **out, char *errbuf);

/* --------------------------------------------------------------- raw */

/* A response body as received: malloc'd, NUL-terminated. */
struct m2_response {
	int status;
	char *body;
	size_t len;
};
void m2_response_free(struct m2_response *r);

/*
 * Any call: method "GET" "POST" "PUT" "DELETE", path relative to the V1
 * prefix ("/orders/5", may carry a query), body JSON or NULL. Error bodies
 * are classified as above; resp (may be NULL) gets status and body either
 * way.
 */
int m2_request(struct m2_conn *k, const char *method, const char *path,
	       const char *body, struct m2_response *resp,
	       struct m2_result *res);

/* ------------------------------------------------------ search criteria */

/* Builds searchCriteria query strings, URL-encoding every value; the
 * text is b.buf (buf.h), b.failed once out of memory or given a NULL. */
struct m2_query {
	struct m2w_buf b;
};
void m2_query_init(struct m2_query *q);
void m2_query_release(struct m2_query *q);
/* filter_groups[group][filters][index]: field, value, condition_type
 * (NULL: "eq"). Filters in one group are OR-ed, groups AND-ed. */
void m2_query_filter(struct m2_query *q, int group, int index,
		     const char *field, const char *value, const char *cond);
void m2_query_page(struct m2_query *q, int page_size, int current_page);
void m2_query_sort(struct m2_query *q, const char *field, int ascending);
/* fields=... (Magento trims the response to these) */
void m2_query_fields(struct m2_query *q, const char *fields);
/* The query string without '?'; "" when empty; NULL when `failed`. */
const char *m2_query_str(const struct m2_query *q);

/*
 * Pages through GET path?query with page_size, calling each(item_json,
 * arg) for every entry of "items" (item_json: the item as a JSON text,
 * valid during the call). A non-zero return from each stops the walk and
 * is returned. Stops when total_count is reached.
 */
int m2_search_each(struct m2_conn *k, const char *path,
		   const struct m2_query *q, int page_size,
		   int (*each)(const char *item_json, void *arg), void *arg,
		   struct m2_result *res);

/* ------------------------------------------------------------- orders */

struct m2_order_item {
	int64_t item_id;
	char sku[128];
	double qty_ordered;
	double qty_shipped;
	double qty_canceled;
};

struct m2_order {
	int64_t entity_id;
	char increment_id[64];
	char state[32];
	char status[32];
	struct m2_order_item *items;
	size_t nitems;
};

void m2_order_free(struct m2_order *o);

/*
 * The order with this increment id (GET /orders, condition eq, fields
 * trimmed). M2W_ENOTFOUND (class PERMANENT) when there is none;
 * M2W_EPERMANENT when more than one matches (increment ids are unique per
 * store only: reported, never guessed).
 */
int m2_order_find(struct m2_conn *k, const char *increment_id,
		  struct m2_order **out, struct m2_result *res);

/*
 * Many orders in one call (condition_type=in). *out gets an array of n
 * pointers in the order of `ids`, NULL where no order matched (or more than
 * one did). Free with m2_orders_free(out, n).
 */
int m2_orders_find(struct m2_conn *k, const char *const *ids, size_t n,
		   struct m2_order ***out, struct m2_result *res);
void m2_orders_free(struct m2_order **o, size_t n);

/* ------------------------------------------------ shipments and tracks */

struct m2_track {
	char track_number[128];
	char carrier_code[64];
	char title[128];
};

struct m2_shipment {
	int64_t id;
	int64_t order_id;
	struct m2_track *tracks;
	size_t ntracks;
};

/* The order's shipments with their tracks (GET /shipments, order_id eq). */
int m2_shipments_list(struct m2_conn *k, int64_t order_id,
		      struct m2_shipment **out, size_t *n,
		      struct m2_result *res);
/* The shipments of many orders in one search (order_id in ...), paged
 * through; each carries its order_id. nids 0: none, no call. */
int m2_shipments_of(struct m2_conn *k, const int64_t *order_ids, size_t nids,
		    struct m2_shipment **out, size_t *n, struct m2_result *res);
void m2_shipments_free(struct m2_shipment *s, size_t n);

struct m2_ship_item {
	int64_t order_item_id;
	double qty;
};

struct m2_ship_req {
	int64_t order_id;
	const struct m2_ship_item *items; /* none: ship everything left */
	size_t nitems;
	int notify;
	const char *comment;              /* NULL: none */
	const struct m2_track *tracks;
	size_t ntracks;
	const char *source_code;          /* MSI source; NULL: none */
};

/* POST /order/{id}/ship: NOT idempotent. *shipment_id gets the new id. */
int m2_ship_create(struct m2_conn *k, const struct m2_ship_req *r,
		   int64_t *shipment_id, struct m2_result *res);

/* POST /shipment/track: NOT idempotent. */
int m2_track_add(struct m2_conn *k, int64_t order_id, int64_t shipment_id,
		 const struct m2_track *t, struct m2_result *res);

/* --------------------------------------------------------- stock, price */

struct m2_source_item {
	const char *sku;
	const char *source_code;          /* NULL: "default" */
	double quantity;
	int status;                       /* 1 in stock, 0 out */
};

/* POST /inventory/source-items, all rows in one call. */
int m2_source_items_save(struct m2_conn *k, const struct m2_source_item *it,
			 size_t n, struct m2_result *res);

/* PUT /products/{sku}/stockItems/{item_id} (single-source stores). */
int m2_stock_item_update(struct m2_conn *k, const char *sku, int64_t item_id,
			 double qty, int in_stock, struct m2_result *res);

struct m2_price {
	const char *sku;
	int store_id;
	double price;
};

/*
 * POST /products/base-prices. Magento answers 200 and saves the valid rows
 * even when some fail; each failure is mapped back to its row:
 * row_errors (may be NULL) gets a malloc'd array of n strings, NULL for a
 * saved row, else Magento's message for that row (placeholders filled).
 * Returns M2W_OK when the call went through (check row_errors), an error
 * when the whole call failed. Free with m2_row_errors_free(errs, n).
 */
int m2_base_prices_save(struct m2_conn *k, const struct m2_price *p, size_t n,
			char ***row_errors, struct m2_result *res);
void m2_row_errors_free(char **errs, size_t n);

/* --------------------------------------------------------- for tests */

/*
 * Fills Magento's %1 / %name placeholders of `message` from `params_json`
 * (an array for %1.., an object for %name; may be NULL) into out.
 */
void m2_message_fill(const char *message, const char *params_json, char *out,
		     size_t outlen);

/* Retry-After value (delta seconds or HTTP date) -> ms from `now_s`; 0 if
 * absent or unreadable. */
int64_t m2_retry_after_ms(const char *value, int64_t now_s);

#ifdef __cplusplus
}
#endif
#endif
