#include "config.h"
/*
 * auth.c - the three ways Magento lets an integration in, as the fake
 * checks them:
 *
 *   Bearer   the --token value, or an admin token this process issued and
 *            that has not expired (POST /_fake/expire-tokens expires all).
 *   admin    POST /V1/integration/admin/token {"username","password"}
 *            answers a JWT-shaped string: header {"kid":"1","alg":"HS256"},
 *            payload {"uid":1,"utypid":2,"iat":..,"exp":..,"jti":..}, signed
 *            with a per-process random key. Six wrong passwords in a row
 *            lock the admin for 30 minutes (every login refused meanwhile).
 *   OAuth    1.0a with HMAC-SHA256 (RFC 5849): consumer key and token
 *            must match --oauth, timestamp within 600 s, nonce never seen
 *            (the nonce is remembered before the signature is checked, as
 *            Magento does), signature over METHOD & base URI & the sorted,
 *            re-encoded query + oauth_* parameters.
 *
 * All functions run with srv->mu held by the caller.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fake.h"

static void resp_unauthorized(struct fk_resp *resp, const char *resource)
{
	fk_resp_error(resp, 401,
		      "The consumer isn't authorized to access %resources.",
		      fk_params1("resources", resource));
}

static json_object *params_arr1(json_object *v)
{
	json_object *a = json_object_new_array();

	json_object_array_add(a, v);
	return a;
}

/* ---- base64 */

static char *b64(const unsigned char *in, size_t n, int url)
{
	char *out = fk_xrealloc(NULL, 4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

	if (url) {
		int i;

		while (len > 0 && out[len - 1] == '=')
			len--;
		out[len] = '\0';
		for (i = 0; i < len; i++) {
			if (out[i] == '+')
				out[i] = '-';
			else if (out[i] == '/')
				out[i] = '_';
		}
	}
	return out;
}

/* ---- admin tokens */

static char *jwt_make(struct fk_server *srv, time_t iat, time_t exp)
{
	char payload[256], *h, *p, *s, *signing, *tok;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	static const char header[] = "{\"kid\":\"1\",\"alg\":\"HS256\"}";
	size_t n;

	snprintf(payload, sizeof payload,
		 "{\"uid\":1,\"utypid\":2,\"iat\":%" PRId64 ",\"exp\":%" PRId64
		 ",\"jti\":\"%016" PRIx64 "\"}",
		 (int64_t)iat, (int64_t)exp, fk_rand64(srv));
	h = b64((const unsigned char *)header, strlen(header), 1);
	p = b64((const unsigned char *)payload, strlen(payload), 1);
	n = strlen(h) + strlen(p) + 2;
	signing = fk_xrealloc(NULL, n);
	snprintf(signing, n, "%s.%s", h, p);
	HMAC(EVP_sha256(), srv->jwt_key, (int)sizeof srv->jwt_key,
	     (const unsigned char *)signing, strlen(signing), mac, &maclen);
	s = b64(mac, maclen, 1);
	n = strlen(signing) + strlen(s) + 2;
	tok = fk_xrealloc(NULL, n);
	snprintf(tok, n, "%s.%s", signing, s);
	free(h);
	free(p);
	free(s);
	free(signing);
	return tok;
}

static int admin_token_live(struct fk_server *srv, const char *tok)
{
	time_t now = time(NULL);
	size_t i;

	for (i = srv->ntokens; i-- > 0;)
		if (strcmp(srv->tokens[i].token, tok) == 0)
			return srv->tokens[i].exp > now;
	return 0;
}

size_t fk_expire_tokens(struct fk_server *srv)
{
	time_t now = time(NULL);
	size_t i, n = 0;

	for (i = 0; i < srv->ntokens; i++) {
		if (srv->tokens[i].exp > now - 1)
			n++;
		srv->tokens[i].exp = now - 1;
	}
	return n;
}

static const char *str_field(json_object *body, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(body, key, &v) || !v)
		return NULL;
	if (!json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

void fk_admin_login(struct fk_server *srv, json_object *body,
		    struct fk_resp *resp)
{
	static const char *const allowed[] = { "username", "password", NULL };
	static const char *const refused =
		"The account sign-in was incorrect or your account is disabled "
		"temporarily. Please wait and try again later.";
	const struct fk_opts *o = srv->opts;
	const char *bad, *user, *pass, *missing[2];
	int nmissing = 0;
	time_t now = time(NULL);
	struct fk_admin_token *t;

	bad = fk_unknown_key(body, allowed);
	if (bad) {
		fk_resp_unknown_field(resp, bad);
		return;
	}
	user = str_field(body, "username");
	pass = str_field(body, "password");
	if (!user || !*user)
		missing[nmissing++] = "username";
	if (!pass || !*pass)
		missing[nmissing++] = "password";
	if (nmissing == 1) {
		fk_resp_error(resp, 400,
			      "\"%fieldName\" is required. Enter and try again.",
			      fk_params1("fieldName", missing[0]));
		return;
	}
	if (nmissing == 2) {
		json_object *e = json_object_new_object(), *errs;
		int i;

		json_object_object_add(e, "message", json_object_new_string(
			"One or more input exceptions have occurred."));
		errs = json_object_new_array();
		for (i = 0; i < 2; i++) {
			json_object *x = json_object_new_object();

			json_object_object_add(x, "message", json_object_new_string(
				"\"%fieldName\" is required. Enter and try again."));
			json_object_object_add(x, "parameters",
					       fk_params1("fieldName", missing[i]));
			json_object_array_add(errs, x);
		}
		json_object_object_add(e, "errors", errs);
		fk_resp_json(resp, 400, e);
		return;
	}
	if (srv->locked_until > now) {
		srv->login_failed++;
		fk_resp_error(resp, 401, refused, NULL);
		return;
	}
	if (!o->admin_user || strcmp(user, o->admin_user) != 0 ||
	    strcmp(pass, o->admin_pass) != 0) {
		srv->login_failed++;
		if (++srv->consecutive_failures >= FK_LOCK_AFTER) {
			srv->locked_until = now + FK_LOCK_SECONDS;
			srv->consecutive_failures = 0;
		}
		fk_resp_error(resp, 401, refused, NULL);
		return;
	}
	srv->login_ok++;
	srv->consecutive_failures = 0;
	if (srv->ntokens == srv->captokens) {
		srv->captokens = srv->captokens ? 2 * srv->captokens : 16;
		srv->tokens = fk_xrealloc(srv->tokens,
					  srv->captokens * sizeof *srv->tokens);
	}
	t = &srv->tokens[srv->ntokens++];
	t->exp = now + o->admin_ttl;
	t->token = jwt_make(srv, now, t->exp);
	fk_resp_json(resp, 200, json_object_new_string(t->token));
}

/* ---- nonces: open-addressing set of strings */

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void nonce_insert_raw(char **slots, size_t cap, char *s)
{
	size_t i = (size_t)(fnv(s) & (cap - 1));

	while (slots[i])
		i = (i + 1) & (cap - 1);
	slots[i] = s;
}

/* 1 when the nonce was new (and is now remembered), 0 when seen before. */
static int nonce_add(struct fk_server *srv, const char *nonce)
{
	size_t i;

	if (srv->nonce_cap) {
		i = (size_t)(fnv(nonce) & (srv->nonce_cap - 1));
		for (; srv->nonces[i]; i = (i + 1) & (srv->nonce_cap - 1))
			if (strcmp(srv->nonces[i], nonce) == 0)
				return 0;
	}
	if (2 * (srv->nonce_n + 1) > srv->nonce_cap) {
		size_t ncap = srv->nonce_cap ? 2 * srv->nonce_cap : 256;
		char **ns = calloc(ncap, sizeof *ns);

		if (!ns)
			abort();
		for (i = 0; i < srv->nonce_cap; i++)
			if (srv->nonces[i])
				nonce_insert_raw(ns, ncap, srv->nonces[i]);
		free(srv->nonces);
		srv->nonces = ns;
		srv->nonce_cap = ncap;
	}
	nonce_insert_raw(srv->nonces, srv->nonce_cap, fk_xstrdup(nonce));
	srv->nonce_n++;
	return 1;
}

void fk_auth_free(struct fk_server *srv)
{
	size_t i;

	for (i = 0; i < srv->ntokens; i++)
		free(srv->tokens[i].token);
	free(srv->tokens);
	srv->tokens = NULL;
	srv->ntokens = srv->captokens = 0;
	for (i = 0; i < srv->nonce_cap; i++)
		free(srv->nonces[i]);
	free(srv->nonces);
	srv->nonces = NULL;
	srv->nonce_cap = srv->nonce_n = 0;
}

/* ---- OAuth 1.0a */

/* Parses the parameters after "OAuth ": name="value", ... (both
 * percent-decoded). realm is dropped. -1 on syntax error. */
static int oauth_header_parse(const char *p, struct fk_kv **out, size_t *n)
{
	struct fk_kv *kv = NULL;
	size_t cnt = 0;

	for (;;) {
		const char *ns, *ne, *vs;
		char *name;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		ns = p;
		while (*p && *p != '=' && *p != ' ' && *p != ',')
			p++;
		ne = p;
		while (*p == ' ')
			p++;
		if (*p != '=' || ne == ns)
			goto fail;
		p++;
		while (*p == ' ')
			p++;
		if (*p == '"') {
			vs = ++p;
			while (*p && *p != '"')
				p++;
			if (*p != '"')
				goto fail;
		} else {
			vs = p;
			while (*p && *p != ',' && *p != ' ')
				p++;
		}
		name = fk_pct_decode(ns, (size_t)(ne - ns), 0);
		if (strcmp(name, "realm") == 0) {
			free(name);
		} else {
			kv = fk_xrealloc(kv, (cnt + 1) * sizeof *kv);
			kv[cnt].k = name;
			kv[cnt].v = fk_pct_decode(vs, (size_t)(p - vs), 0);
			cnt++;
		}
		if (*p == '"')
			p++;
	}
	*out = kv;
	*n = cnt;
	return 0;
fail:
	fk_query_free(kv, cnt);
	return -1;
}

static const char *kv_get(const struct fk_kv *kv, size_t n, const char *k)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(kv[i].k, k) == 0)
			return kv[i].v;
	return NULL;
}

struct enc_pair {
	char *k, *v;
};

static int pair_cmp(const void *a, const void *b)
{
	const struct enc_pair *x = a, *y = b;
	int c = strcmp(x->k, y->k);

	return c ? c : strcmp(x->v, y->v);
}

struct sbuf {
	char *s;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->len + n + 1 > b->cap) {
		b->cap = 2 * (b->len + n + 1);
		b->s = fk_xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

static void sb_add_enc(struct sbuf *b, const char *s)
{
	char *e = fk_pct_encode(s);

	sb_add(b, e);
	free(e);
}

/* The RFC 5849 signature base string; malloc'd. */
static char *oauth_base_string(const struct fk_req *rq, const struct fk_kv *op,
			       size_t nop, struct fk_kv *qp, size_t nqp)
{
	struct enc_pair *pairs;
	struct sbuf norm = { 0 }, base = { 0 };
	size_t i, n = 0;
	char *host;

	pairs = fk_xrealloc(NULL, (nop + nqp + 1) * sizeof *pairs);
	for (i = 0; i < nqp; i++) {
		pairs[n].k = fk_pct_encode(qp[i].k);
		pairs[n++].v = fk_pct_encode(qp[i].v);
	}
	for (i = 0; i < nop; i++) {
		if (strcmp(op[i].k, "oauth_signature") == 0)
			continue;
		pairs[n].k = fk_pct_encode(op[i].k);
		pairs[n++].v = fk_pct_encode(op[i].v);
	}
	qsort(pairs, n, sizeof *pairs, pair_cmp);
	sb_add(&norm, "");
	for (i = 0; i < n; i++) {
		if (i)
			sb_add(&norm, "&");
		sb_add(&norm, pairs[i].k);
		sb_add(&norm, "=");
		sb_add(&norm, pairs[i].v);
		free(pairs[i].k);
		free(pairs[i].v);
	}
	free(pairs);

	host = fk_xstrdup(rq->host ? rq->host : "127.0.0.1");
	for (i = 0; host[i]; i++)
		host[i] = (char)tolower((unsigned char)host[i]);
	i = strlen(host);
	if (i > 3 && strcmp(host + i - 3, ":80") == 0)
		host[i - 3] = '\0';

	sb_add(&base, rq->method);
	sb_add(&base, "&");
	{
		struct sbuf uri = { 0 };

		sb_add(&uri, "http://");
		sb_add(&uri, host);
		sb_add(&uri, rq->raw_path);
		sb_add_enc(&base, uri.s);
		free(uri.s);
	}
	sb_add(&base, "&");
	sb_add_enc(&base, norm.s);
	free(norm.s);
	free(host);
	return base.s;
}

static int oauth_check(struct fk_server *srv, const struct fk_req *rq,
		       const char *params, const char *resource,
		       struct fk_resp *resp)
{
	static const char *const required[] = {
		"oauth_consumer_key", "oauth_signature", "oauth_signature_method",
		"oauth_nonce", "oauth_timestamp", "oauth_token", NULL
	};
	const struct fk_opts *o = srv->opts;
	struct fk_kv *op = NULL, *qp = NULL;
	size_t nop = 0, nqp = 0, i;
	const char *v, *q;
	char *base = NULL, *key = NULL, *mine = NULL, *ck, *ts;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	long long tsv;
	char *end;
	int rc = -1;

	if (oauth_header_parse(params, &op, &nop) < 0) {
		resp_unauthorized(resp, resource);
		return -1;
	}
	for (i = 0; required[i]; i++) {
		if (!kv_get(op, nop, required[i])) {
			fk_resp_error(resp, 400,
				"\"%1\" is required. Enter and try again.",
				params_arr1(json_object_new_string(required[i])));
			goto out;
		}
	}
	v = kv_get(op, nop, "oauth_version");
	if (v && strcmp(v, "1.0") != 0) {
		fk_resp_error(resp, 400, "OAuth version %1 is not supported",
			      params_arr1(json_object_new_string(v)));
		goto out;
	}
	v = kv_get(op, nop, "oauth_signature_method");
	if (strcmp(v, "HMAC-SHA256") != 0) {
		fk_resp_error(resp, 400, "Signature method %1 is not supported",
			      params_arr1(json_object_new_string(v)));
		goto out;
	}
	if (strcmp(kv_get(op, nop, "oauth_consumer_key"), o->oauth[0]) != 0) {
		fk_resp_error(resp, 401,
			"A consumer having the specified key does not exist", NULL);
		goto out;
	}
	if (strcmp(kv_get(op, nop, "oauth_token"), o->oauth[2]) != 0) {
		fk_resp_error(resp, 401, "Specified token does not exist", NULL);
		goto out;
	}
	v = kv_get(op, nop, "oauth_timestamp");
	tsv = strtoll(v, &end, 10);
	if (!*v || *end || tsv <= 0 ||
	    llabs(tsv - (long long)time(NULL)) > FK_OAUTH_SKEW) {
		fk_resp_error(resp, 400,
			"Incorrect timestamp value in the oauth_timestamp parameter",
			NULL);
		goto out;
	}
	if (!nonce_add(srv, kv_get(op, nop, "oauth_nonce"))) {
		fk_resp_error(resp, 401,
			"The nonce is already being used by the consumer with ID %1.",
			params_arr1(json_object_new_int(1)));
		goto out;
	}
	q = strchr(rq->raw_uri, '?');
	fk_query_parse(q ? q + 1 : "", &qp, &nqp);
	base = oauth_base_string(rq, op, nop, qp, nqp);
	ck = fk_pct_encode(o->oauth[1]);
	ts = fk_pct_encode(o->oauth[3]);
	key = fk_xrealloc(NULL, strlen(ck) + strlen(ts) + 2);
	sprintf(key, "%s&%s", ck, ts);
	free(ck);
	free(ts);
	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)base,
	     strlen(base), mac, &maclen);
	mine = b64(mac, maclen, 0);
	if (strcmp(mine, kv_get(op, nop, "oauth_signature")) != 0) {
		if (o->verbose)
			fprintf(stderr, "fake-magento: oauth: bad signature; "
				"base string: %s\n", base);
		fk_resp_error(resp, 401,
			"The signature is invalid. Verify and try again.", NULL);
		goto out;
	}
	rc = 0;
out:
	fk_query_free(op, nop);
	fk_query_free(qp, nqp);
	free(base);
	free(key);
	free(mine);
	return rc;
}

int fk_auth_check(struct fk_server *srv, const struct fk_req *rq,
		  const char *resource, struct fk_resp *resp)
{
	const struct fk_opts *o = srv->opts;
	const char *a = rq->authorization;

	if (o->no_auth)
		return 0;
	if (a) {
		while (*a == ' ')
			a++;
		if (strncasecmp(a, "Bearer ", 7) == 0) {
			char tok[4096];
			size_t n;

			a += 7;
			while (*a == ' ')
				a++;
			n = strlen(a);
			while (n > 0 && a[n - 1] == ' ')
				n--;
			if (n < sizeof tok) {
				memcpy(tok, a, n);
				tok[n] = '\0';
				if (o->token && strcmp(tok, o->token) == 0)
					return 0;
				if (o->admin_user && admin_token_live(srv, tok))
					return 0;
			}
		} else if (strncasecmp(a, "OAuth ", 6) == 0 && o->oauth[0]) {
			return oauth_check(srv, rq, a + 6, resource, resp);
		}
	}
	resp_unauthorized(resp, resource);
	return -1;
}
