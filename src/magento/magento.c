/*
 * magento.c - the client and its connections: libcurl, auth, and turning
 * every response into an m2_result.
 *
 * A struct m2_conn is one CURL easy handle owned by one worker thread.
 * Before each request the handle is curl_easy_reset() and every option is
 * applied again, so nothing of the previous request (method, body,
 * headers) leaks into the next; the reset keeps the handle's connection
 * cache, so keep-alive connections are reused. NOSIGNAL, connect and total
 * timeouts, http/https only, no redirects followed, proxy only when
 * configured ("" otherwise, which also ignores curl's *_proxy variables).
 *
 * Auth, per request:
 *   TOKEN  Authorization: Bearer <token>
 *   OAUTH  Authorization: OAuth ... signed with a fresh nonce (oauth.c)
 *   ADMIN  a token from POST /integration/admin/token, cached in the
 *          client and shared by all threads. One login at a time: the
 *          others wait on `cond` and take its result (a failed login is not
 *          repeated by every waiter). Expiry: the JWT's exp claim when
 *          present, else now + admin_token_ttl_s; renewed 60 s before. On
 *          a 401 the token is dropped only if it is still the one the call
 *          used (`admin_gen`), then one login and one retry; a second 401
 *          is M2W_EAUTH. A 401 from the token endpoint means the password
 *          is wrong: remembered, and every call fails at once until
 *          m2_client_reset_auth, because six failures lock the admin.
 *          A login that replaces a token (expiring, or dropped on a 401)
 *          is a renewal: counted in `stats` and logged by the thread that
 *          made it (magento.token.renewed: info after a 401, debug when
 *          routine).
 *
 * Classification: curl failure -> ETRANSIENT; 2xx with a JSON body -> OK
 * (anything else -> EPROTO, counted transient); 401 -> EAUTH; 429 and 5xx
 * -> ETRANSIENT with Retry-After; 3xx -> EPROTO (we never follow: a base
 * URL that redirects is a configuration error, counted transient); other
 * 4xx -> EPERMANENT. Secrets never reach a message or a log.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "m2worker/log.h"

#include "magento_internal.h"

#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_ADMIN_TTL_S 3600

/* ------------------------------------------------------------ results */

void m2i_result_clear(struct m2_result *res)
{
	res->http_status = 0;
	res->cls = M2W_CLASS_OK;
	res->retry_after_ms = 0;
	res->duration_ms = 0;
	res->message[0] = '\0';
}

int m2i_result_set(struct m2_result *res, int err, int cls,
		   const char *fmt, ...)
{
	va_list ap;

	res->cls = cls;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
	return err;
}

int m2i_class_of(int err)
{
	switch (err) {
	case M2W_OK:
		return M2W_CLASS_OK;
	case M2W_EAUTH:
		return M2W_CLASS_AUTH;
	case M2W_ETRANSIENT:
	case M2W_EPROTO:
	case M2W_ENOMEM:
		return M2W_CLASS_TRANSIENT;
	default:
		return M2W_CLASS_PERMANENT;
	}
}

/* ------------------------------------------------------------- json */

struct json_object *m2i_json_parse(const char *s, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;
	size_t end;

	if (!s || !len || len > (size_t)INT32_MAX)
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, s, (int)len);
	end = o ? (size_t)tok->char_offset : 0;
	if (!o && json_tokener_get_error(tok) == json_tokener_continue) {
		/* a bare number may go on: tell the tokener the text ended */
		o = json_tokener_parse_ex(tok, "", 1);
		end = len;
	}
	json_tokener_free(tok);
	if (!o)
		return NULL;
	while (end < len && (s[end] == ' ' || s[end] == '\n' ||
			     s[end] == '\r' || s[end] == '\t'))
		end++;
	if (end != len) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *m2i_get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

int m2i_json_int64(struct json_object *o, int64_t *out)
{
	const char *s;
	char *end;
	long long v;

	if (json_object_is_type(o, json_type_int)) {
		*out = json_object_get_int64(o);
		return 1;
	}
	if (!json_object_is_type(o, json_type_string))
		return 0;
	s = json_object_get_string(o);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno)
		return 0;
	*out = v;
	return 1;
}

/* -------------------------------------------------------------- setup */

int m2_global_init(char *errbuf)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc != CURLE_OK)
		return m2w_fail(errbuf, M2W_EIO, "curl_global_init: %s",
				curl_easy_strerror(rc));
	return M2W_OK;
}

void m2_global_cleanup(void)
{
	curl_global_cleanup();
}

static void wipe_free(char *s)
{
	volatile char *p = s;

	if (!s)
		return;
	while (*p)
		*p++ = '\0';
	free(s);
}

/* Copies s (NULL stays NULL); sets *oom on failure. */
static char *dup_opt(const char *s, int *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = 1;
	return d;
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* s[0..n) ends with "/rest/<code>/V1" (code: letters, digits, _). */
static int ends_with_rest_code(const char *s, size_t n)
{
	size_t i;

	if (!ends_with(s, n, "/V1"))
		return 0;
	n -= 3;
	i = n;
	while (i > 0 && s[i - 1] != '/')
		i--;
	return i < n && strspn(s + i, "abcdefghijklmnopqrstuvwxyz"
			       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") >=
				n - i &&
	       ends_with(s, i, "/rest/");
}

static int valid_store_code(const char *s)
{
	return *s && strspn(s, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
			     strlen(s);
}

/* "https://shop" + store -> "https://shop/rest/<store>/V1"; a base that
 * already names /rest/V1 or /rest/<code>/V1 is kept. */
static int normalise_base(const char *base, const char *store, char **out,
			  char *errbuf)
{
	size_t n = strlen(base);
	struct m2w_buf b;

	if (strncasecmp(base, "http://", 7) && strncasecmp(base, "https://", 8))
		return m2w_fail(errbuf, M2W_EINVAL, "base_url \"%.100s\" is "
				"not an http:// or https:// URL", base);
	if (strpbrk(base, "?# \t\r\n"))
		return m2w_fail(errbuf, M2W_EINVAL, "base_url \"%.100s\" must "
				"not hold a query, a fragment or spaces", base);
	if (!valid_store_code(store))
		return m2w_fail(errbuf, M2W_EINVAL, "store_code \"%.64s\" is "
				"not a store code (letters, digits, _)", store);
	while (n > 0 && base[n - 1] == '/')
		n--;
	m2w_buf_init(&b, 0);
	m2w_buf_add(&b, base, n);
	if (!ends_with(base, n, "/rest/V1") && !ends_with_rest_code(base, n))
		m2w_buf_addf(&b, "%s/%s/V1", ends_with(base, n, "/rest") ? "" :
			     "/rest", store);
	if (b.failed) {
		m2w_buf_release(&b);
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	}
	*out = m2w_buf_detach(&b);
	return M2W_OK;
}

static int check_auth_opts(const struct m2_client_opts *o, char *errbuf)
{
	switch (o->auth) {
	case M2_AUTH_NONE:
		return M2W_OK;
	case M2_AUTH_TOKEN:
		if (!o->token || !*o->token)
			return m2w_fail(errbuf, M2W_EINVAL,
					"auth token: the token is empty");
		return M2W_OK;
	case M2_AUTH_ADMIN:
		if (!o->username || !*o->username || !o->password ||
		    !*o->password)
			return m2w_fail(errbuf, M2W_EINVAL, "auth admin: "
					"username and password are required");
		return M2W_OK;
	case M2_AUTH_OAUTH:
		if (!o->consumer_key || !*o->consumer_key ||
		    !o->consumer_secret || !o->access_token ||
		    !*o->access_token || !o->access_token_secret)
			return m2w_fail(errbuf, M2W_EINVAL, "auth oauth: "
					"consumer key and secret, access token "
					"and secret are required");
		return M2W_OK;
	default:
		return m2w_fail(errbuf, M2W_EINVAL, "unknown auth mode %d",
				o->auth);
	}
}

static void copy_opts(struct m2_client *c, const struct m2_client_opts *o,
		      int *oom)
{
	c->auth = o->auth;
	c->token = dup_opt(o->auth == M2_AUTH_TOKEN ? o->token : NULL, oom);
	c->username = dup_opt(o->auth == M2_AUTH_ADMIN ? o->username : NULL,
			      oom);
	c->password = dup_opt(o->auth == M2_AUTH_ADMIN ? o->password : NULL,
			      oom);
	if (o->auth == M2_AUTH_OAUTH) {
		c->consumer_key = dup_opt(o->consumer_key, oom);
		c->consumer_secret = dup_opt(o->consumer_secret, oom);
		c->access_token = dup_opt(o->access_token, oom);
		c->access_token_secret = dup_opt(o->access_token_secret, oom);
	}
	c->admin_ttl_s = o->admin_token_ttl_s > 0 ? o->admin_token_ttl_s :
						    DEFAULT_ADMIN_TTL_S;
	c->connect_timeout_ms = o->connect_timeout_ms > 0 ?
					o->connect_timeout_ms :
					DEFAULT_CONNECT_MS;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms :
					    DEFAULT_TIMEOUT_MS;
	c->ca_file = dup_opt(o->ca_file, oom);
	c->proxy = dup_opt(o->proxy, oom);
	c->insecure = o->insecure != 0;
	c->rate_limit = o->rate_limit > 0 ? o->rate_limit : 0;
	c->user_agent = dup_opt(o->user_agent ? o->user_agent :
						"m2worker/" PACKAGE_VERSION,
				oom);
}

int m2_client_check(const struct m2_client_opts *o, char *errbuf)
{
	char *url = NULL;
	int rc;

	if (!o || !o->base_url)
		return m2w_fail(errbuf, M2W_EINVAL, "base_url is required");
	if ((rc = check_auth_opts(o, errbuf)) ||
	    (rc = normalise_base(o->base_url, o->store_code ? o->store_code :
				 "default", &url, errbuf)))
		return rc;
	free(url);
	return M2W_OK;
}

int m2_client_new(const struct m2_client_opts *o, struct m2_client **out,
		  char *errbuf)
{
	struct m2_client *c;
	int rc, oom = 0;

	*out = NULL;
	if (!o || !o->base_url)
		return m2w_fail(errbuf, M2W_EINVAL, "base_url is required");
	rc = check_auth_opts(o, errbuf);
	if (rc)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	if (pthread_mutex_init(&c->lock, NULL) ||
	    pthread_cond_init(&c->cond, NULL)) {
		free(c);
		return m2w_fail(errbuf, M2W_ENOMEM, "mutex init failed");
	}
	rc = normalise_base(o->base_url, o->store_code ? o->store_code :
			    "default", &c->prefix, errbuf);
	if (rc) {
		m2_client_free(c);
		return rc;
	}
	copy_opts(c, o, &oom);
	if (oom) {
		m2_client_free(c);
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	}
	*out = c;
	return M2W_OK;
}

void m2_client_free(struct m2_client *c)
{
	if (!c)
		return;
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->prefix);
	wipe_free(c->token);
	free(c->username);
	wipe_free(c->password);
	free(c->consumer_key);
	wipe_free(c->consumer_secret);
	wipe_free(c->access_token);
	wipe_free(c->access_token_secret);
	free(c->ca_file);
	free(c->proxy);
	free(c->user_agent);
	wipe_free(c->admin_token);
	free(c);
}

void m2_client_reset_auth(struct m2_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->password_rejected = 0;
	c->rejected_msg[0] = '\0';
	wipe_free(c->admin_token);
	c->admin_token = NULL;
	c->admin_gen++;
	c->dropped_401 = 0;
	pthread_mutex_unlock(&c->lock);
}

void m2_client_get_stats(struct m2_client *c, struct m2_client_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
}

const char *m2_client_base(const struct m2_client *c)
{
	return c->prefix;
}

int m2_conn_new(struct m2_client *c, struct m2_conn **out, char *errbuf)
{
	struct m2_conn *k;

	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	k->c = c;
	k->h = curl_easy_init();
	if (!k->h) {
		free(k);
		return m2w_fail(errbuf, M2W_ENOMEM, "curl_easy_init failed");
	}
	*out = k;
	return M2W_OK;
}

void m2_conn_set_abort(struct m2_conn *k, const volatile int *flag)
{
	k->abort = flag;
}

void m2_conn_set_gate(struct m2_conn *k, int (*enter)(void *arg),
		      void (*leave)(void *arg, int status, int xfer,
				    int64_t us),
		      void *arg)
{
	k->enter = enter;
	k->leave = leave;
	k->gate_arg = arg;
}

void m2_conn_set_observer(struct m2_conn *k,
			  void (*fn)(void *arg, int status, int64_t ms),
			  void *arg)
{
	k->observe = fn;
	k->observe_arg = arg;
}

void m2_conn_free(struct m2_conn *k)
{
	if (!k)
		return;
	curl_easy_cleanup(k->h);
	free(k);
}

void m2_response_free(struct m2_response *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* ------------------------------------------------------------ secrets */

#define SECRET_MAX 8192         /* bytes of a secret file's first line */

static int read_first_line(const char *path, char **out, char *errbuf)
{
	FILE *f = fopen(path, "r");
	const char *why = NULL;
	char *line;
	size_t n = 0;
	int ch;

	if (!f)
		return m2w_fail(errbuf, M2W_EINVAL, "secret file %s: %s", path,
				strerror(errno));
	if (!(line = malloc(SECRET_MAX + 1))) {
		fclose(f);
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	}
	/* bounded: "file:/dev/zero" must end in an error, not eat memory */
	while ((ch = getc(f)) != EOF && ch != '\n') {
		if (ch == '\0')
			why = "holds a NUL byte";
		else if (n == SECRET_MAX)
			why = "first line longer than 8192 bytes";
		else
			line[n++] = (char)ch;
		if (why)
			break;
	}
	if (!why && ferror(f))
		why = strerror(errno);
	fclose(f);
	line[n] = '\0';
	while (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	if (why) {
		OPENSSL_cleanse(line, SECRET_MAX + 1);
		free(line);
		return m2w_fail(errbuf, M2W_EINVAL, "secret file %s: %s", path,
				why);
	}
	*out = line;
	return M2W_OK;
}

int m2_secret_resolve(const char *spec, char **out, char *errbuf)
{
	const char *v;

	*out = NULL;
	if (!spec)
		return m2w_fail(errbuf, M2W_EINVAL, "secret is missing");
	if (strncmp(spec, "env:", 4) == 0) {
		v = getenv(spec + 4);
		if (!v)
			return m2w_fail(errbuf, M2W_EINVAL, "secret: environment "
					"variable %.100s is not set", spec + 4);
	} else if (strncmp(spec, "file:", 5) == 0) {
		return read_first_line(spec + 5, out, errbuf);
	} else {
		v = spec;
	}
	*out = strdup(v);
	if (!*out)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	return M2W_OK;
}

/* ------------------------------------------------------------ exchange */

/* One HTTP exchange: what came back. */
struct exchange {
	struct m2w_buf body;
	long status;
	int too_large;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct exchange *x = arg;

	if (m2w_buf_add(&x->body, p, size * n) < 0) {
		x->too_large = x->body.len + size * n > x->body.max;
		return 0;
	}
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct m2_conn *k = arg;
	size_t len = size * n, v;

	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		v = len - 12 < sizeof(k->retry_after) - 1 ?
			    len - 12 : sizeof(k->retry_after) - 1;
		memcpy(k->retry_after, p + 12, v);
		k->retry_after[v] = '\0';
	}
	return len;
}

#define SET(opt, val) \
	do { \
		if (cc == CURLE_OK) \
			cc = curl_easy_setopt(h, opt, val); \
	} while (0)

/* Every option the handle needs, after a reset. */
static CURLcode apply_options(struct m2_conn *k, struct exchange *x)
{
	const struct m2_client *c = k->c;
	CURLcode cc = CURLE_OK;
	CURL *h = k->h;

	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_ERRORBUFFER, k->curl_err);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, k);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SET(CURLOPT_PROXY, c->proxy ? c->proxy : "");
	SET(CURLOPT_ACCEPT_ENCODING, "");
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	if (c->ca_file)
		SET(CURLOPT_CAINFO, c->ca_file);
	if (c->insecure) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return cc;
}

static CURLcode apply_method(CURL *h, const char *method, const char *body)
{
	CURLcode cc = CURLE_OK;

	if (strcmp(method, "GET") == 0 && !body) {
		SET(CURLOPT_HTTPGET, 1L);
		return cc;
	}
	if (strcmp(method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
		return cc;
	}
	if (strcmp(method, "POST") != 0)
		SET(CURLOPT_CUSTOMREQUEST, method);
	if (body || strcmp(method, "DELETE") != 0) {
		SET(CURLOPT_POSTFIELDS, body ? body : "");
		SET(CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
	}
	return cc;
}

/* Content-Type: application/json goes with every body, and with POST and
 * PUT even when empty (curl would otherwise say form-urlencoded, which
 * Magento refuses). */
static int json_content(const char *method, const char *body)
{
	return body || strcmp(method, "POST") == 0 ||
	       strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
}

static struct curl_slist *make_headers(int json, const char *auth)
{
	struct curl_slist *l = NULL, *t;
	const char *hs[4];
	size_t i, n = 0;

	hs[n++] = "Accept: application/json";
	hs[n++] = "Expect:";
	if (json)
		hs[n++] = "Content-Type: application/json";
	if (auth)
		hs[n++] = auth;
	for (i = 0; i < n; i++) {
		t = curl_slist_append(l, hs[i]);
		if (!t) {
			curl_slist_free_all(l);
			return NULL;
		}
		l = t;
	}
	return l;
}

/* The flag is set by another thread (the pool's m2w_pool_stop) while this
 * one is in a transfer: an atomic load, not a plain (racy) read. */
static int aborted(const struct m2_conn *k)
{
	return k->abort && __atomic_load_n(k->abort, __ATOMIC_ACQUIRE);
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return aborted(arg);
}

#if LIBCURL_VERSION_NUM < 0x072000
static int on_progress_old(void *arg, double a, double b, double c, double d)
{
	(void)a;
	(void)b;
	(void)c;
	(void)d;
	return aborted(arg);
}
#endif

/* Waits for this request's slot under the client's rate limit: slots are
 * handed out 1/rate apart, to whichever thread asks next. */
static void throttle(struct m2_client *c)
{
	struct timespec ts;
	int64_t now, at, wait;

	if (c->rate_limit <= 0)
		return;
	now = m2w_clock_mono_us();
	pthread_mutex_lock(&c->lock);
	at = c->next_slot_us > now ? c->next_slot_us : now;
	c->next_slot_us = at + (int64_t)(1e6 / c->rate_limit);
	pthread_mutex_unlock(&c->lock);
	wait = at - now;
	if (wait > 0) {
		ts.tv_sec = (time_t)(wait / 1000000);
		ts.tv_nsec = (long)(wait % 1000000) * 1000;
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

/* Sends one request; the exchange gets status and body. */
/* How a transfer ended, for the gate (enum m2_xfer). */
static int xfer_of(CURLcode cc)
{
	switch (cc) {
	case CURLE_OK:
		return M2_XFER_OK;
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		return M2_XFER_OVERLOAD;
	default:
		return M2_XFER_OTHER;
	}
}

static CURLcode perform(struct m2_conn *k, const char *method,
			const char *url, const char *body, const char *auth,
			struct exchange *x)
{
	struct curl_slist *hdrs;
	CURLcode cc;
	CURL *h = k->h;
	int64_t t0 = 0;
	int gated = 0;

	m2w_buf_init(&x->body, M2_BODY_MAX);
	x->status = 0;
	x->too_large = 0;
	k->curl_err[0] = '\0';
	k->retry_after[0] = '\0';
	curl_easy_reset(h);
	hdrs = make_headers(json_content(method, body), auth);
	if (!hdrs)
		return CURLE_OUT_OF_MEMORY;
	cc = apply_options(k, x);
	SET(CURLOPT_URL, url);
	SET(CURLOPT_HTTPHEADER, hdrs);
	if (cc == CURLE_OK)
		cc = apply_method(h, method, body);
	if (cc == CURLE_OK && k->abort) {
		SET(CURLOPT_NOPROGRESS, 0L);
#if LIBCURL_VERSION_NUM >= 0x072000
		SET(CURLOPT_XFERINFOFUNCTION, on_progress);
		SET(CURLOPT_XFERINFODATA, k);
#else
		SET(CURLOPT_PROGRESSFUNCTION, on_progress_old);
		SET(CURLOPT_PROGRESSDATA, k);
#endif
	}
	if (cc == CURLE_OK) {
		throttle(k->c);
		if (aborted(k) || (k->enter && k->enter(k->gate_arg))) {
			cc = CURLE_ABORTED_BY_CALLBACK;
		} else {
			t0 = m2w_clock_mono_us();
			cc = curl_easy_perform(h);
			gated = k->leave != NULL;
		}
	}
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
	if (gated)
		k->leave(k->gate_arg, (int)x->status, xfer_of(cc),
			 m2w_clock_mono_us() - t0);
	/* the list holds the Authorization header: drop it from the handle
	 * before freeing it */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	curl_slist_free_all(hdrs);
	return cc;
}

#undef SET

static int transport_error(struct m2_conn *k, CURLcode cc,
			   const struct exchange *x, const char *what,
			   struct m2_result *res)
{
	if (cc == CURLE_WRITE_ERROR && x->too_large)
		return m2i_result_set(res, M2W_EPROTO, M2W_CLASS_TRANSIENT,
				      "%sresponse too large (over %u MiB)",
				      what, M2_BODY_MAX >> 20);
	if (cc == CURLE_WRITE_ERROR || cc == CURLE_OUT_OF_MEMORY)
		return m2i_result_set(res, M2W_ENOMEM, M2W_CLASS_TRANSIENT,
				      "%sout of memory", what);
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return m2i_result_set(res, M2W_ETRANSIENT, M2W_CLASS_TRANSIENT,
				      "%saborted: shutting down", what);
	return m2i_result_set(res, M2W_ETRANSIENT, M2W_CLASS_TRANSIENT,
			      "%s%s", what, k->curl_err[0] ? k->curl_err :
			      curl_easy_strerror(cc));
}

/* -------------------------------------------------------- admin token */

static int b64url_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

/* The exp claim of a JWT (header.payload.signature), or 0. */
static int64_t jwt_exp(const char *tok)
{
	const char *p = strchr(tok, '.'), *e;
	struct json_object *o;
	unsigned acc = 0;
	int64_t exp = 0;
	int bits = 0, v;
	char *dec;
	size_t n = 0;

	if (!p || !(e = strchr(p + 1, '.')))
		return 0;
	dec = malloc((size_t)(e - p));
	if (!dec)
		return 0;
	for (p++; p < e && (v = b64url_val((unsigned char)*p)) >= 0; p++) {
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dec[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	o = m2i_json_parse(dec, n);
	if (!m2i_json_int64(m2i_get(o, "exp"), &exp) || exp < 0)
		exp = 0;
	json_object_put(o);
	free(dec);
	return exp;
}

/* The status of a token-endpoint answer -> the call's result. */
static int login_failed(struct m2_conn *k, const struct exchange *x,
			struct m2_result *res)
{
	const struct m2_client *c = k->c;
	char msg[M2_MESSAGE_MAX + 1];

	m2i_error_message((int)x->status, x->body.buf, x->body.len, msg,
			  sizeof(msg));
	if (x->status == 401)
		return m2i_result_set(res, M2W_EAUTH, M2W_CLASS_AUTH,
				      "admin password for \"%.64s\" was "
				      "rejected (HTTP 401: %.300s); not retried "
				      "because Magento locks the admin after 6 "
				      "failures: fix the admin in Magento, then "
				      "reload (SIGHUP), or the password in the "
				      "configuration, then restart",
				      c->username, msg);
	if (x->status == 429 || x->status >= 500) {
		res->retry_after_ms = m2_retry_after_ms(k->retry_after,
							(int64_t)time(NULL));
		return m2i_result_set(res, M2W_ETRANSIENT, M2W_CLASS_TRANSIENT,
				      "admin login: %s", msg);
	}
	return m2i_result_set(res, M2W_EAUTH, M2W_CLASS_AUTH,
			      "admin login refused (HTTP %ld): %s", x->status,
			      msg);
}

static char *login_body(const struct m2_client *c)
{
	struct json_object *o = json_object_new_object();
	const char *s;
	char *out = NULL;

	if (!o)
		return NULL;
	json_object_object_add(o, "username",
			       json_object_new_string(c->username));
	json_object_object_add(o, "password",
			       json_object_new_string(c->password));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (s) {
		out = strdup(s);
		memset((char *)s, 0, strlen(s));
	}
	json_object_put(o);
	return out;
}

/* POST /integration/admin/token: *token (malloc'd) and *exp_s. */
static int admin_login(struct m2_conn *k, char **token, int64_t *exp_s,
		       struct m2_result *res)
{
	struct json_object *o = NULL;
	struct exchange x;
	char *url = NULL, *body;
	CURLcode cc;
	int rc;

	body = login_body(k->c);
	if (!body || asprintf(&url, "%s/integration/admin/token",
			      k->c->prefix) < 0) {
		wipe_free(body);
		return m2i_result_set(res, M2W_ENOMEM, M2W_CLASS_TRANSIENT,
				      "admin login: out of memory");
	}
	cc = perform(k, "POST", url, body, NULL, &x);
	wipe_free(body);
	free(url);
	res->http_status = (int)x.status;
	if (cc != CURLE_OK)
		rc = transport_error(k, cc, &x, "admin login: ", res);
	else if (x.status < 200 || x.status > 299)
		rc = login_failed(k, &x, res);
	else if (!(o = m2i_json_parse(x.body.buf, x.body.len)) ||
		 !json_object_is_type(o, json_type_string) ||
		 !*json_object_get_string(o))
		rc = m2i_result_set(res, M2W_EPROTO, M2W_CLASS_TRANSIENT,
				    "admin login: HTTP %ld answer is not a "
				    "token string", x.status);
	else if (!(*token = strdup(json_object_get_string(o))))
		rc = m2i_result_set(res, M2W_ENOMEM, M2W_CLASS_TRANSIENT,
				    "admin login: out of memory");
	else
		rc = M2W_OK;
	if (rc == M2W_OK) {
		*exp_s = jwt_exp(*token);
		if (!*exp_s)
			*exp_s = (int64_t)time(NULL) + k->c->admin_ttl_s;
	}
	json_object_put(o);
	if (x.body.buf)
		memset(x.body.buf, 0, x.body.len);
	m2w_buf_release(&x.body);
	return rc;
}

/* Under lock: a copy of the cached token if it is still fresh. */
static int cached_token(struct m2_client *c, char **tok, uint64_t *gen)
{
	if (!c->admin_token ||
	    (int64_t)time(NULL) >= c->admin_exp_s - M2_ADMIN_RENEW_S)
		return 0;
	*tok = strdup(c->admin_token);
	*gen = c->admin_gen;
	return 1;
}

enum renewal { RENEW_NONE, RENEW_EXPIRY, RENEW_401 };

/* Why a login about to start renews a token: not at all (the first, or
 * one after m2_client_reset_auth), it expires, or it was dropped on a 401
 * (the call in *why). Under lock. */
static int renewal_reason(const struct m2_client *c, char *why, size_t len)
{
	if (c->admin_token)
		return RENEW_EXPIRY;
	if (!c->dropped_401)
		return RENEW_NONE;
	snprintf(why, len, "%s", c->dropped_why);
	return RENEW_401;
}

/* Under lock, after our login: publish its outcome; count a renewal. */
static void login_done(struct m2_client *c, int rc, char *newtok,
		       int64_t exp, int renewal, const struct m2_result *res)
{
	c->logging_in = 0;
	c->login_seq++;
	c->login_rc = rc;
	snprintf(c->login_msg, sizeof(c->login_msg), "%s", res->message);
	if (rc == M2W_OK) {
		wipe_free(c->admin_token);
		c->admin_token = newtok;
		c->admin_exp_s = exp;
		c->admin_gen++;
		c->dropped_401 = 0;
		if (renewal == RENEW_EXPIRY)
			c->stats.token_renewals_expiry++;
		else if (renewal == RENEW_401)
			c->stats.token_renewals_401++;
	} else if (rc == M2W_EAUTH && res->http_status == 401) {
		c->password_rejected = 1;
		snprintf(c->rejected_msg, sizeof(c->rejected_msg), "%s",
			 res->message);
	}
	pthread_cond_broadcast(&c->cond);
}

/* Waits for another thread's login; returns its error, or OK to look at
 * the cache again. Under lock. */
static int wait_login(struct m2_client *c, struct m2_result *res)
{
	uint64_t seq = c->login_seq;

	while (c->logging_in && c->login_seq == seq)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->login_seq != seq && c->login_rc != M2W_OK &&
	    !c->password_rejected)
		return m2i_result_set(res, c->login_rc,
				      m2i_class_of(c->login_rc), "%s",
				      c->login_msg);
	return M2W_OK;
}

/* A valid admin token (malloc'd copy) and its generation. */
static int admin_token(struct m2_conn *k, char **tok, uint64_t *gen,
		       struct m2_result *res)
{
	struct m2_client *c = k->c;
	char *newtok = NULL, why[sizeof(c->dropped_why)], q[sizeof(why) + 8];
	int64_t exp = 0;
	int rc = M2W_OK, renewal;

	*tok = NULL;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		if (c->password_rejected) {
			rc = m2i_result_set(res, M2W_EAUTH, M2W_CLASS_AUTH,
					    "%s", c->rejected_msg);
			goto out;
		}
		if (cached_token(c, tok, gen)) {
			if (!*tok)
				rc = m2i_result_set(res, M2W_ENOMEM,
						    M2W_CLASS_TRANSIENT,
						    "out of memory");
			goto out;
		}
		if (!c->logging_in)
			break;
		rc = wait_login(c, res);
		if (rc != M2W_OK)
			goto out;
	}
	c->logging_in = 1;
	renewal = renewal_reason(c, why, sizeof(why));
	pthread_mutex_unlock(&c->lock);

	rc = admin_login(k, &newtok, &exp, res);

	pthread_mutex_lock(&c->lock);
	if (rc == M2W_OK && !(*tok = strdup(newtok)))
		rc = m2i_result_set(res, M2W_ENOMEM, M2W_CLASS_TRANSIENT,
				    "out of memory");
	login_done(c, rc, rc == M2W_OK ? newtok : NULL, exp, renewal, res);
	*gen = c->admin_gen;
	pthread_mutex_unlock(&c->lock);
	if (rc != M2W_OK)
		wipe_free(newtok);
	else if (renewal == RENEW_401)
		m2w_log(M2W_LOG_INFO, "magento.token.renewed",
			"why=%s", m2w_log_quote(q, sizeof(q), why));
	else if (renewal == RENEW_EXPIRY)
		m2w_log(M2W_LOG_DEBUG, "magento.token.renewed",
			"why=expiry");
	return rc;
out:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Drops the cached token if it is still the one of generation gen,
 * which Magento refused (401) on method path (its query left out). */
static void admin_invalidate(struct m2_client *c, uint64_t gen,
			     const char *method, const char *path)
{
	pthread_mutex_lock(&c->lock);
	if (c->admin_token && c->admin_gen == gen) {
		wipe_free(c->admin_token);
		c->admin_token = NULL;
		c->dropped_401 = 1;
		snprintf(c->dropped_why, sizeof(c->dropped_why),
			 "401 on %s %.*s", method, (int)strcspn(path, "?"),
			 path);
	}
	pthread_mutex_unlock(&c->lock);
}

/* "Authorization: ..." for this request (malloc'd) or NULL for none. */
static int auth_header(struct m2_conn *k, const char *method,
		       const char *url, char **hdr, uint64_t *gen,
		       struct m2_result *res)
{
	const struct m2_client *c = k->c;
	char *tok = NULL;
	int rc;

	*hdr = NULL;
	switch (c->auth) {
	case M2_AUTH_TOKEN:
		if (asprintf(hdr, "Authorization: Bearer %s", c->token) < 0)
			*hdr = NULL;
		break;
	case M2_AUTH_ADMIN:
		rc = admin_token(k, &tok, gen, res);
		if (rc)
			return rc;
		if (!tok)
			break;
		if (asprintf(hdr, "Authorization: Bearer %s", tok) < 0)
			*hdr = NULL;
		wipe_free(tok);
		break;
	case M2_AUTH_OAUTH:
		*hdr = m2i_oauth_header(c, method, url);
		break;
	default:
		return M2W_OK;
	}
	if (!*hdr)
		return m2i_result_set(res, M2W_ENOMEM, M2W_CLASS_TRANSIENT,
				      "cannot build the Authorization header");
	return M2W_OK;
}

/* ------------------------------------------------------ classification */

static int classify_2xx(const struct exchange *x, struct json_object **json,
			struct m2_result *res)
{
	struct json_object *o;
	char snip[81];

	if (x->body.len == 0 && x->status == 204)
		return M2W_OK;
	o = m2i_json_parse(x->body.buf, x->body.len);
	if (!o) {
		m2i_sanitize(m2w_buf_str(&x->body),
			     x->body.len < 80 ? x->body.len : 80, snip,
			     sizeof(snip));
		return m2i_result_set(res, M2W_EPROTO, M2W_CLASS_TRANSIENT,
				      "HTTP %ld with a body that is not JSON: "
				      "\"%s\"", x->status, snip);
	}
	if (json)
		*json = o;
	else
		json_object_put(o);
	return M2W_OK;
}

static int classify(struct m2_conn *k, const struct exchange *x,
		    struct json_object **json, struct m2_result *res)
{
	char *loc = NULL;
	int st = (int)x->status;

	res->http_status = st;
	if (st >= 200 && st <= 299)
		return classify_2xx(x, json, res);
	if (st >= 300 && st <= 399) {
		curl_easy_getinfo(k->h, CURLINFO_REDIRECT_URL, &loc);
		return m2i_result_set(res, M2W_EPROTO, M2W_CLASS_TRANSIENT,
				      "HTTP %d redirect to %.300s: check "
				      "base_url", st, loc ? loc : "?");
	}
	m2i_error_message(st, x->body.buf, x->body.len, res->message,
			  sizeof(res->message));
	if (st == 401) {
		res->cls = M2W_CLASS_AUTH;
		return M2W_EAUTH;
	}
	if (st == 429 || st >= 500) {
		res->retry_after_ms = m2_retry_after_ms(k->retry_after,
							(int64_t)time(NULL));
		res->cls = M2W_CLASS_TRANSIENT;
		return M2W_ETRANSIENT;
	}
	res->cls = M2W_CLASS_PERMANENT;
	return M2W_EPERMANENT;
}

/* Hands the exchange's body to resp (always NUL-terminated). */
static void give_body(struct exchange *x, struct m2_response *resp)
{
	if (!resp)
		return;
	resp->status = (int)x->status;
	resp->len = x->body.len;
	resp->body = m2w_buf_detach(&x->body);
}

/* ------------------------------------------------------------ calling */

static int valid_request(const char *method, const char *path)
{
	const char *p;

	if (!method || !*method || !path)
		return 0;
	for (p = method; *p; p++)
		if (*p < 'A' || *p > 'Z')
			return 0;
	for (p = path; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return 0;
	return 1;
}

static int call_once(struct m2_conn *k, const char *method, const char *url,
		     const char *body, struct exchange *x, uint64_t *gen,
		     struct m2_result *res)
{
	char *hdr = NULL;
	CURLcode cc;
	int rc;

	int64_t t0;

	rc = auth_header(k, method, url, &hdr, gen, res);
	if (rc)
		return rc;
	t0 = m2w_clock_mono_ms();
	cc = perform(k, method, url, body, hdr, x);
	wipe_free(hdr);
	if (k->observe && cc != CURLE_ABORTED_BY_CALLBACK)
		k->observe(k->observe_arg, (int)x->status,
			   m2w_clock_mono_ms() - t0);
	if (cc != CURLE_OK)
		return transport_error(k, cc, x, "", res);
	return M2W_OK;
}

int m2i_call(struct m2_conn *k, const char *method, const char *path,
	     const char *body, struct m2_response *resp,
	     struct json_object **json, struct m2_result *res)
{
	int64_t start = m2w_clock_mono_ms();
	struct exchange x;
	uint64_t gen = 0;
	char *url = NULL;
	int rc, attempt;

	m2i_result_clear(res);
	if (resp)
		memset(resp, 0, sizeof(*resp));
	if (json)
		*json = NULL;
	if (!valid_request(method, path))
		return m2i_result_set(res, M2W_EINVAL, M2W_CLASS_PERMANENT,
				      "bad method or path (spaces or control "
				      "characters)");
	if (asprintf(&url, "%s%s%s", k->c->prefix, *path == '/' ? "" : "/",
		     path) < 0)
		return m2i_result_set(res, M2W_ENOMEM, M2W_CLASS_TRANSIENT,
				      "out of memory");
	m2w_buf_init(&x.body, M2_BODY_MAX);
	x.status = 0;
	for (attempt = 0;; attempt++) {
		rc = call_once(k, method, url, body, &x, &gen, res);
		if (rc == M2W_OK && x.status == 401 &&
		    k->c->auth == M2_AUTH_ADMIN && attempt == 0) {
			admin_invalidate(k->c, gen, method, path);
			m2w_buf_release(&x.body);
			x.status = 0;   /* a failed login must not leave the 401 */
			continue;
		}
		break;
	}
	if (rc == M2W_OK)
		rc = classify(k, &x, json, res);
	if (x.status)
		give_body(&x, resp);
	m2w_buf_release(&x.body);
	free(url);
	res->duration_ms = m2w_clock_mono_ms() - start;
	return rc;
}

int m2i_call_json(struct m2_conn *k, const char *method, const char *path,
		  struct json_object *body, struct json_object **json,
		  struct m2_result *res)
{
	const char *s = NULL;

	if (body) {
		s = json_object_to_json_string_ext(body,
						   JSON_C_TO_STRING_PLAIN);
		if (!s) {
			m2i_result_clear(res);
			return m2i_result_set(res, M2W_ENOMEM,
					      M2W_CLASS_TRANSIENT,
					      "out of memory");
		}
	}
	return m2i_call(k, method, path, s, NULL, json, res);
}

int m2_request(struct m2_conn *k, const char *method, const char *path,
	       const char *body, struct m2_response *resp,
	       struct m2_result *res)
{
	return m2i_call(k, method, path, body, resp, NULL, res);
}
