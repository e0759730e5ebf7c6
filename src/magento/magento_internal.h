/*
 * magento_internal.h - what the Magento client's modules share; not
 * installed, not public.
 *
 * Module map:
 *   magento.c        client and conn objects, base URL, request execution
 *                    with libcurl, response classification, auth (bearer,
 *                    admin token cache, OAuth header), secrets, global init
 *   magento_oauth.c  OAuth 1.0a HMAC-SHA256 signatures (RFC 5849)
 *   magento_error.c  error bodies -> messages, %1 / %name filling,
 *                    Retry-After
 *   magento_query.c  searchCriteria query strings, paging (search walk);
 *                    the RFC 3986 percent-encoder every module uses (into
 *                    a struct m2w_buf, buf.h)
 *   magento_calls.c  typed calls: orders, shipments, tracks, stock, prices
 *
 * Locking: only struct m2_client's admin-token fields are shared between
 * threads (under `lock`); a struct m2_conn belongs to one thread.
 *
 * The layer: src/magento/ sits on util only (error, log, buf, clock), with
 * libcurl, json-c and OpenSSL; it knows nothing of the store, the jobs or
 * the daemon (magento.h speaks in orders, shipments, items and prices).
 */
#ifndef M2W_MAGENTO_INTERNAL_H
#define M2W_MAGENTO_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "m2worker/buf.h"
#include "m2worker/clock.h"
#include "m2worker/magento.h"

#define M2_BODY_MAX (64u * 1024 * 1024)  /* response cap */
#define M2_ADMIN_RENEW_S 60              /* renew this long before expiry */
#define M2_PAGE_MAX 300                  /* Magento's input limit */

/* ------------------------------------------------------------ objects */

struct m2_client {
	char *prefix;                /* ".../rest/<store>/V1", no trailing / */
	int auth;                    /* enum m2_auth */
	char *token;
	char *username, *password;
	long admin_ttl_s;
	char *consumer_key, *consumer_secret;
	char *access_token, *access_token_secret;
	long connect_timeout_ms, timeout_ms;
	char *ca_file, *proxy;
	int insecure;
	char *user_agent;

	/* admin token cache: under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;         /* signalled when a login ends */
	int logging_in;              /* one thread is logging in */
	uint64_t login_seq;          /* logins finished so far */
	int login_rc;                /* how the last one ended */
	char login_msg[M2_MESSAGE_MAX + 1];
	char *admin_token;           /* NULL: none cached */
	int64_t admin_exp_s;         /* wall-clock expiry */
	uint64_t admin_gen;          /* bumped for every new token */
	int password_rejected;       /* 401 from the token endpoint */
	char rejected_msg[M2_MESSAGE_MAX + 1];
	int dropped_401;             /* the token went on a 401: the next
				      * login renews it */
	char dropped_why[128];       /* "401 on GET /orders/5" */
	struct m2_client_stats stats;

	/* rate limit: the next free request slot, under lock */
	double rate_limit;
	int64_t next_slot_us;
};

struct m2_conn {
	struct m2_client *c;
	CURL *h;
	char curl_err[CURL_ERROR_SIZE];
	char retry_after[64];        /* last response's Retry-After value */
	const volatile int *abort;   /* m2_conn_set_abort */
	void (*observe)(void *, int, int64_t);
	void *observe_arg;
	int (*enter)(void *);                       /* the gate */
	void (*leave)(void *, int, int, int64_t);
	void *gate_arg;
};

/* ------------------------------------------------------------ buffers */

/* Appends s[0..n) to b percent-encoded per RFC 3986 (unreserved kept);
 * 0, or -1 with b->failed set (buf.h). */
int m2i_buf_add_enc(struct m2w_buf *b, const char *s, size_t n);

/* ------------------------------------------------------------ results */

void m2i_result_clear(struct m2_result *res);
/* Fills cls and message (printf) and returns err. */
int m2i_result_set(struct m2_result *res, int err, int cls,
		   const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;
/* The class an error code counts as (EINVAL -> PERMANENT, etc.). */
int m2i_class_of(int err);

/* ------------------------------------------------------ request core */

/*
 * Runs one call (auth, the admin 401 renewal) and classifies it. A 2xx
 * body is parsed; *json (may be NULL) gets it, the caller puts it. resp
 * (may be NULL) gets status and body whenever a response arrived.
 * `body` may be NULL. Sets res->duration_ms.
 */
int m2i_call(struct m2_conn *k, const char *method, const char *path,
	     const char *body, struct m2_response *resp,
	     struct json_object **json, struct m2_result *res);
/* Same, with a json-c body serialised plainly (NULL: none). */
int m2i_call_json(struct m2_conn *k, const char *method, const char *path,
		  struct json_object *body, struct json_object **json,
		  struct m2_result *res);

/* Parses a complete JSON text (strict about trailing garbage); NULL if it
 * is not one. */
struct json_object *m2i_json_parse(const char *s, size_t len);

/* ------------------------------------------------------------- oauth */

/* The signature (base64) of one request; nonce and timestamp given. */
int m2i_oauth_signature(const char *method, const char *url,
			const char *consumer_key, const char *consumer_secret,
			const char *token, const char *token_secret,
			const char *nonce, const char *timestamp,
			char *sig, size_t siglen);
/* "Authorization: OAuth ..." with a fresh nonce and timestamp; malloc'd,
 * NULL when out of memory or without randomness. */
char *m2i_oauth_header(const struct m2_client *c, const char *method,
		       const char *url);

/* -------------------------------------------------------------- errors */

/* The message of an error response (Magento's, filled; or "HTTP n ..."). */
void m2i_error_message(int status, const char *body, size_t len, char *out,
		       size_t outlen);
/* Fills a message from a parsed parameters value (array/object/NULL). */
void m2i_message_fill_obj(const char *message, struct json_object *params,
			  char *out, size_t outlen);
/* Copies s into out (outlen > 0) as printable ASCII, at most max bytes. */
void m2i_sanitize(const char *s, size_t n, char *out, size_t outlen);

/* -------------------------------------------------------------- search */

/* Like m2_search_each with the item as a json-c object (borrowed). */
int m2i_search_walk(struct m2_conn *k, const char *path, const char *query,
		    int page_size,
		    int (*each)(struct json_object *item, void *arg),
		    void *arg, struct m2_result *res);

/* ------------------------------------------------------------- helpers */

/* Object member or NULL. */
struct json_object *m2i_get(struct json_object *o, const char *key);
/* Reads an integer from a number or a numeric string; 0 if it is not. */
int m2i_json_int64(struct json_object *o, int64_t *out);

#endif
