/*
 * fuzz_magento.c - libFuzzer target: what the Magento client does with
 * the responses it gets (src/magento*.c): status classification, error
 * messages with %1 / %name placeholders filled, Retry-After, the admin
 * token answer (JWT exp claim), and the typed parsing of orders,
 * shipments, search pages, created ids and base-price failures.
 *
 * The client is the library's own code end to end; only the network is
 * replaced. This file includes src/magento.c with two libcurl calls
 * renamed by macro: curl_easy_perform (called once, in perform()) becomes
 * fuzz_perform(), which plays the next scripted response into the same
 * header and body callbacks libcurl would call (on_header, on_body), and
 * curl_easy_getinfo answers the scripted status and redirect target.
 * Everything else (the request built, auth headers, m2i_call's admin
 * 401 renewal, classify(), give_body()) runs unchanged. Because this
 * object defines every external symbol of magento.c, the linker never
 * pulls magento.o out of libm2worker.a; magento_calls.o and
 * magento_query.o come from the library as they are and call the
 * m2i_call defined here.
 *
 * Input: byte 0 picks the operation, byte 1 the auth mode (none, bearer
 * token, admin password login, OAuth 1.0a); the rest is a script of
 * responses separated by "\n%%\n". A response is
 *     STATUS            e.g. 200 (or "E7": libcurl error 7, no answer)
 *     Header: value     any number of header lines (Retry-After,
 *                       Location for a 3xx)
 *                       an empty line
 *     BODY              the rest
 * A request after the script has run out fails like a refused
 * connection. Operations 11-14 take the script's bytes directly:
 * m2_message_fill (message, "\n%%\n", parameters JSON),
 * m2_retry_after_ms, m2i_error_message and jwt_exp.
 *
 * Checks, beyond the sanitizers: every result message is NUL-terminated
 * within M2_MESSAGE_MAX; a failed call says why (non-empty message) and
 * has an error class; a call that got a response reports its status;
 * typed results are freed with their own free functions (LeakSanitizer).
 */
#include "config.h"

#include <curl/curl.h>

struct m2_conn;
struct exchange;
static CURLcode fuzz_perform(struct m2_conn *k, struct exchange *x);
static CURLcode fuzz_getinfo(CURL *h, CURLINFO info, void *p);

#undef curl_easy_perform
#define curl_easy_perform(h) fuzz_perform(k, x)
#undef curl_easy_getinfo
#define curl_easy_getinfo(h, info, p) fuzz_getinfo(h, info, p)

#include "magento/magento.c"

#undef curl_easy_perform
#undef curl_easy_getinfo

#include <stdint.h>

#define CHECK(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "fuzz_magento: %s:%d: %s\n", \
				__FILE__, __LINE__, #c); \
			abort(); \
		} \
	} while (0)

#define SEP "\n%%\n"
#define SEP_LEN 4
#define NOW_S 1700000000
#define WALK_STOP_RC 99  /* each_item's "stop", returned by the walk */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the script being played */
static const char *sp;
static size_t sn;
/* the response being played */
static long cur_status;
static char cur_location[256];
static int have_location;
static unsigned requests;

/* The next response of the script: [*r, *r + *rn), or 0 when none. */
static int next_response(const char **r, size_t *rn)
{
	const char *e;

	if (!sp)
		return 0;
	*r = sp;
	e = memmem(sp, sn, SEP, SEP_LEN);
	if (e) {
		*rn = (size_t)(e - sp);
		sn -= *rn + SEP_LEN;
		sp = e + SEP_LEN;
	} else {
		*rn = sn;
		sp = NULL;
		sn = 0;
	}
	return 1;
}

static size_t line_len(const char *p, size_t n, size_t *skip)
{
	const char *e = memchr(p, '\n', n);
	size_t l = e ? (size_t)(e - p) : n;

	*skip = e ? l + 1 : l;
	if (l > 0 && p[l - 1] == '\r')
		l--;
	return l;
}

static CURLcode fuzz_perform(struct m2_conn *k, struct exchange *x)
{
	const char *r;
	size_t rn, l, skip, half;
	char hl[512];
	long st = 0;
	int digits = 0;

	cur_status = 0;
	have_location = 0;
	requests++;
	if (requests > 64 || !next_response(&r, &rn)) {
		snprintf(k->curl_err, sizeof(k->curl_err),
			 "Failed to connect to 127.0.0.1 port 1: Connection "
			 "refused");
		return CURLE_COULDNT_CONNECT;
	}
	/* status line */
	l = line_len(r, rn, &skip);
	if (l > 0 && r[0] == 'E') {
		long e = 0;
		size_t i;

		for (i = 1; i < l && i < 4 && r[i] >= '0' && r[i] <= '9'; i++)
			e = e * 10 + (r[i] - '0');
		if (e == 0 || e >= CURL_LAST)
			e = CURLE_COULDNT_CONNECT;
		return (CURLcode)e;
	}
	while ((size_t)digits < l && digits < 3 && r[digits] >= '0' &&
	       r[digits] <= '9')
		st = st * 10 + (r[digits++] - '0');
	if (!digits)
		st = 200;
	snprintf(hl, sizeof(hl), "HTTP/1.1 %ld X\r\n", st);
	on_header(hl, 1, strlen(hl), k);
	r += skip;
	rn -= skip;
	/* headers, up to an empty line */
	while (rn > 0) {
		l = line_len(r, rn, &skip);
		if (l == 0) {
			r += skip;
			rn -= skip;
			break;
		}
		if (l > sizeof(hl) - 3)
			l = sizeof(hl) - 3;
		memcpy(hl, r, l);
		memcpy(hl + l, "\r\n", 3);
		if (on_header(hl, 1, l + 2, k) != l + 2)
			return CURLE_WRITE_ERROR;
		if (l > 9 && strncasecmp(hl, "Location:", 9) == 0) {
			snprintf(cur_location, sizeof(cur_location), "%.*s",
				 (int)(l - 9), hl + 9);
			have_location = 1;
		}
		r += skip;
		rn -= skip;
	}
	/* the body, in two writes as libcurl may */
	half = rn / 2;
	if (half && on_body((char *)r, 1, half, x) != half)
		return CURLE_WRITE_ERROR;
	if (rn - half &&
	    on_body((char *)r + half, 1, rn - half, x) != rn - half)
		return CURLE_WRITE_ERROR;
	cur_status = st;
	return CURLE_OK;
}

static CURLcode fuzz_getinfo(CURL *h, CURLINFO info, void *p)
{
	if (info == CURLINFO_RESPONSE_CODE) {
		*(long *)p = cur_status;
		return CURLE_OK;
	}
	if (info == CURLINFO_REDIRECT_URL) {
		*(char **)p = have_location ? cur_location : NULL;
		return CURLE_OK;
	}
	return (curl_easy_getinfo)(h, info, p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char eb[M2W_ERRBUF_SIZE];

	(void)argc;
	(void)argv;
	if (m2_global_init(eb) != M2W_OK) {
		fprintf(stderr, "fuzz_magento: %s\n", eb);
		exit(1);
	}
	return 0;
}

static void check_result(int rc, const struct m2_result *res)
{
	CHECK(strnlen(res->message, sizeof(res->message)) <
	      sizeof(res->message));
	if (rc != M2W_OK) {
		CHECK(res->message[0] != '\0');
		CHECK(res->cls == M2W_CLASS_TRANSIENT ||
		      res->cls == M2W_CLASS_PERMANENT ||
		      res->cls == M2W_CLASS_AUTH);
	}
	CHECK(res->retry_after_ms >= 0);
}

static void check_order(const struct m2_order *o)
{
	size_t i;

	CHECK(strnlen(o->increment_id, sizeof(o->increment_id)) <
	      sizeof(o->increment_id));
	CHECK(strnlen(o->state, sizeof(o->state)) < sizeof(o->state));
	CHECK(strnlen(o->status, sizeof(o->status)) < sizeof(o->status));
	for (i = 0; i < o->nitems; i++)
		CHECK(strnlen(o->items[i].sku, sizeof(o->items[i].sku)) <
		      sizeof(o->items[i].sku));
}

static int each_item(const char *json, void *arg)
{
	unsigned *n = arg;

	CHECK(json != NULL);
	(void)strlen(json);
	return ++*n >= 5 ? WALK_STOP_RC : 0; /* stop after five items */
}

static void run_call(struct m2_conn *k, unsigned op)
{
	static const struct m2_track tracks[2] = {
		{ "1Z999AA10123456784", "ups", "UPS" },
		{ "JJD000390007", "dhl", "DHL Express" }
	};
	static const struct m2_ship_item items[2] = { { 11, 1 }, { 12, 2.5 } };
	static const struct m2_source_item src[2] = {
		{ "SKU-1", "default", 5, 1 }, { "SKU-2", "wh-east", 0, 0 }
	};
	static const struct m2_price prices[3] = {
		{ "SKU-1", 0, 19.99 }, { "SKU-2", 1, 5 }, { "SKU-1", 2, 7.5 }
	};
	static const char *const ids[3] = { "000000101", "000000102",
					    "000000103" };
	struct m2_result res;
	struct m2_response resp;
	int rc = M2W_OK;

	memset(&res, 0, sizeof(res));
	switch (op) {
	case 0:
	case 1:
		rc = op == 0 ? m2_request(k, "GET", "store/storeConfigs", NULL,
					  &resp, &res)
			     : m2_request(k, "POST", "/orders/7/comments",
					  "{\"statusHistory\":{}}", &resp,
					  &res);
		if (resp.body) {
			CHECK(resp.body[resp.len] == '\0');
			CHECK(resp.status == res.http_status);
		}
		m2_response_free(&resp);
		break;
	case 2: {
		struct m2_order *o = NULL;

		rc = m2_order_find(k, "000000101", &o, &res);
		if (rc == M2W_OK && o)
			check_order(o);
		m2_order_free(o);
		break;
	}
	case 3: {
		struct m2_order **o = NULL;
		size_t i;

		rc = m2_orders_find(k, ids, 3, &o, &res);
		if (rc == M2W_OK && o)
			for (i = 0; i < 3; i++)
				if (o[i])
					check_order(o[i]);
		if (rc == M2W_OK)
			m2_orders_free(o, 3);
		break;
	}
	case 4: {
		struct m2_shipment *s = NULL;
		size_t n = 0, i, j;

		rc = m2_shipments_list(k, 7, &s, &n, &res);
		for (i = 0; rc == M2W_OK && i < n; i++)
			for (j = 0; j < s[i].ntracks; j++)
				CHECK(strnlen(s[i].tracks[j].title,
					      sizeof(s[i].tracks[j].title)) <
				      sizeof(s[i].tracks[j].title));
		m2_shipments_free(s, n);
		break;
	}
	case 5: {
		struct m2_ship_req r;
		int64_t sid = 0;

		memset(&r, 0, sizeof(r));
		r.order_id = 7;
		r.items = items;
		r.nitems = 2;
		r.notify = 1;
		r.comment = "shipped by m2worker";
		r.tracks = tracks;
		r.ntracks = 2;
		r.source_code = "default";
		rc = m2_ship_create(k, &r, &sid, &res);
		break;
	}
	case 6:
		rc = m2_track_add(k, 7, 3, &tracks[1], &res);
		break;
	case 7:
		rc = m2_source_items_save(k, src, 2, &res);
		break;
	case 8:
		rc = m2_stock_item_update(k, "SKU 1/ä", 9, 3, 1, &res);
		break;
	case 9: {
		char **errs = NULL;
		size_t i;

		rc = m2_base_prices_save(k, prices, 3, &errs, &res);
		if (errs) {
			for (i = 0; i < 3; i++)
				if (errs[i])
					(void)strlen(errs[i]);
			m2_row_errors_free(errs, 3);
		}
		break;
	}
	default: {
		struct m2_query q;
		unsigned n = 0;

		m2_query_init(&q);
		m2_query_filter(&q, 0, 0, "sku", "SKU-%", "like");
		m2_query_fields(&q, "items[sku,id],total_count");
		rc = m2_search_each(k, "products", &q, 2, each_item, &n, &res);
		m2_query_release(&q);
		if (rc == WALK_STOP_RC) {
			/* stopped by the callback: its value, no error */
			CHECK(n == 5);
			rc = M2W_OK;
		}
		break;
	}
	}
	check_result(rc, &res);
}

/* Operations on the script's bytes as one text. */
static void run_text(unsigned op, const char *s, size_t n)
{
	char *t = malloc(n + 1), out[M2_MESSAGE_MAX + 1];
	const char *sep;

	CHECK(t != NULL);
	memcpy(t, s, n);
	t[n] = '\0';
	switch (op) {
	case 11:
		sep = memmem(t, n, SEP, SEP_LEN);
		if (sep)
			t[sep - t] = '\0';
		memset(out, 'x', sizeof(out));
		m2_message_fill(t, sep ? sep + SEP_LEN : NULL, out,
				sizeof(out));
		CHECK(strnlen(out, sizeof(out)) < sizeof(out));
		break;
	case 12:
		CHECK(m2_retry_after_ms(t, NOW_S) >= 0);
		break;
	case 13: {
		int status = n ? 400 + (unsigned char)t[0] % 200 : 500;

		memset(out, 'x', sizeof(out));
		m2i_error_message(status, n ? t + 1 : t, n ? n - 1 : 0, out,
				  sizeof(out));
		CHECK(out[0] != '\0' && strnlen(out, sizeof(out)) <
						 sizeof(out));
		break;
	}
	default:
		CHECK(jwt_exp(t) >= 0);
		break;
	}
	free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct m2_client_opts o;
	struct m2_client *c = NULL;
	struct m2_conn *k = NULL;
	char eb[M2W_ERRBUF_SIZE];
	unsigned op;

	if (size < 2)
		return 0;
	op = data[0] % 15;
	if (op >= 11) {
		run_text(op, (const char *)data + 2, size - 2);
		return 0;
	}
	memset(&o, 0, sizeof(o));
	o.base_url = "http://127.0.0.1:1";
	o.store_code = "default";
	o.auth = data[1] & 3;
	o.token = "tok3n";
	o.username = "admin";
	o.password = "s3cret";
	o.consumer_key = "ck";
	o.consumer_secret = "cs";
	o.access_token = "at";
	o.access_token_secret = "ats";
	CHECK(m2_client_new(&o, &c, eb) == M2W_OK);
	CHECK(m2_conn_new(c, &k, eb) == M2W_OK);

	sp = (const char *)data + 2;
	sn = size - 2;
	requests = 0;
	run_call(k, op);
	/* a second call on the same conn and client (a cached admin
	 * token, a rejected password) with what is left of the script */
	if (sp)
		run_call(k, (op + 1 + (data[1] >> 2)) % 11);
	sp = NULL;
	sn = 0;

	m2_conn_free(k);
	m2_client_free(c);
	return 0;
}
