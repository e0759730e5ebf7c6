/*
 * magento_oauth.c - OAuth 1.0a request signing (RFC 5849), HMAC-SHA256.
 *
 * Magento's integrations sign every request with the consumer and access
 * token secrets; HMAC-SHA1 is refused. For each request:
 *   params   = the query parameters of the URL (decoded, then encoded per
 *              RFC 3986) + the oauth_* protocol parameters; never the JSON
 *              body (only form bodies are signed, and we send none)
 *   sorted   by encoded name, then encoded value (byte order)
 *   base     = METHOD & enc(scheme://host[:port]/path) & enc(n=v&n=v...)
 *              (scheme and host lowercased, default port dropped, no query)
 *   key      = enc(consumer_secret) & enc(token_secret)
 *   signature= base64(HMAC-SHA256(key, base))
 * A nonce Magento has seen is refused (401), so every request, retries and
 * renewals included, gets a fresh 128-bit nonce and the current time.
 *
 * HMAC: EVP_Q_mac on OpenSSL 3 (HMAC() is deprecated there), HMAC() on
 * older hosts. Pure functions; thread-safe.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/rand.h>
#if OPENSSL_VERSION_NUMBER < 0x30000000L
#include <openssl/hmac.h>
#endif

#include "magento_internal.h"

#define SHA256_LEN 32

struct param {
	char *name;                  /* encoded */
	char *value;                 /* encoded */
};

/* ------------------------------------------------------------- helpers */

static int tolower_ascii(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Form-decodes s[0..n) ('+' is a space) into a malloc'd string. */
static char *form_decode(const char *s, size_t n, size_t *outlen)
{
	char *out = malloc(n + 1);
	size_t i, o = 0;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < n &&
			   hexval((unsigned char)s[i + 1]) >= 0 &&
			   hexval((unsigned char)s[i + 2]) >= 0) {
			out[o++] = (char)(hexval((unsigned char)s[i + 1]) * 16 +
					  hexval((unsigned char)s[i + 2]));
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* Percent-encodes s[0..n) into a malloc'd string. */
static char *enc_dup(const char *s, size_t n)
{
	struct m2w_buf b;

	m2w_buf_init(&b, 0);
	m2i_buf_add_enc(&b, s, n);
	if (b.failed) {
		m2w_buf_release(&b);
		return NULL;
	}
	return m2w_buf_detach(&b);
}

/* Decodes then re-encodes one piece of a query string. */
static char *reencode(const char *s, size_t n)
{
	size_t dlen;
	char *dec = form_decode(s, n, &dlen);
	char *enc;

	if (!dec)
		return NULL;
	enc = enc_dup(dec, dlen);
	free(dec);
	return enc;
}

static int param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	return r ? r : strcmp(x->value, y->value);
}

static void params_free(struct param *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

static int param_add(struct param *p, size_t *n, const char *name,
		     size_t nlen, const char *value, size_t vlen, int decode)
{
	p[*n].name = decode ? reencode(name, nlen) : enc_dup(name, nlen);
	p[*n].value = decode ? reencode(value, vlen) : enc_dup(value, vlen);
	(*n)++;
	return p[*n - 1].name && p[*n - 1].value ? 0 : -1;
}

/* Adds each name=value of query (may be NULL) to p. */
static int params_from_query(struct param *p, size_t *n, const char *query)
{
	const char *s = query, *end, *eq;

	while (s && *s) {
		end = strchr(s, '&');
		if (!end)
			end = s + strlen(s);
		if (end > s) {
			eq = memchr(s, '=', (size_t)(end - s));
			if (param_add(p, n, s, (size_t)((eq ? eq : end) - s),
				      eq ? eq + 1 : end,
				      eq ? (size_t)(end - eq - 1) : 0, 1) < 0)
				return -1;
		}
		s = *end ? end + 1 : end;
	}
	return 0;
}

static size_t count_pairs(const char *query)
{
	size_t n = 1;

	for (; query && *query; query++)
		n += *query == '&';
	return n;
}

/* scheme://host[:port]/path: lowercase scheme and host, no default port,
 * no query or fragment. */
static int base_uri(const char *url, struct m2w_buf *b)
{
	const char *p = strstr(url, "://"), *host, *path, *colon;
	size_t i, hostlen, pathlen;
	int https;

	if (!p)
		return -1;
	for (i = 0; url + i < p; i++)
		m2w_buf_addc(b, (char)tolower_ascii(url[i]));
	https = (size_t)(p - url) == 5 && strncasecmp(url, "https", 5) == 0;
	host = p + 3;
	path = host + strcspn(host, "/?#");
	hostlen = (size_t)(path - host);
	colon = memchr(host, ':', hostlen);
	if (colon && ((https && path - colon == 4 && !strncmp(colon, ":443", 4)) ||
		      (!https && path - colon == 3 && !strncmp(colon, ":80", 3))))
		hostlen = (size_t)(colon - host);
	m2w_buf_adds(b, "://");
	for (i = 0; i < hostlen; i++)
		m2w_buf_addc(b, (char)tolower_ascii(host[i]));
	pathlen = strcspn(path, "?#");
	if (pathlen == 0)
		m2w_buf_adds(b, "/");
	else
		m2w_buf_add(b, path, pathlen);
	return b->failed ? -1 : 0;
}

/* --------------------------------------------------------------- HMAC */

static int hmac_sha256(const char *key, size_t keylen, const char *data,
		       size_t datalen, unsigned char *out)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	size_t outlen = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
		       (const unsigned char *)data, datalen, out, SHA256_LEN,
		       &outlen) || outlen != SHA256_LEN)
		return -1;
	return 0;
#else
	unsigned int outlen = 0;

	if (!HMAC(EVP_sha256(), key, (int)keylen,
		  (const unsigned char *)data, datalen, out, &outlen) ||
	    outlen != SHA256_LEN)
		return -1;
	return 0;
#endif
}

/* ---------------------------------------------------------- signature */

/* The signature base string of RFC 5849 3.4.1 into b. */
static int base_string(const char *method, const char *url,
		       const char *const oauth[][2], size_t noauth,
		       struct m2w_buf *b)
{
	const char *q = strchr(url, '?');
	struct m2w_buf uri, norm;
	struct param *p;
	size_t n = 0, i;
	int rc = -1;

	p = calloc(count_pairs(q) + noauth, sizeof(*p));
	if (!p)
		return -1;
	if (params_from_query(p, &n, q ? q + 1 : NULL) < 0)
		goto out;
	for (i = 0; i < noauth; i++)
		if (param_add(p, &n, oauth[i][0], strlen(oauth[i][0]),
			      oauth[i][1], strlen(oauth[i][1]), 0) < 0)
			goto out;
	qsort(p, n, sizeof(*p), param_cmp);

	m2w_buf_init(&norm, 0);
	for (i = 0; i < n; i++)
		m2w_buf_addf(&norm, "%s%s=%s", i ? "&" : "", p[i].name,
			     p[i].value);
	m2w_buf_init(&uri, 0);
	if (base_uri(url, &uri) == 0 && !norm.failed) {
		for (i = 0; method[i]; i++)
			m2w_buf_addc(b, method[i] >= 'a' && method[i] <= 'z'
					 ? method[i] - 32 : method[i]);
		m2w_buf_adds(b, "&");
		m2i_buf_add_enc(b, uri.buf, uri.len);
		m2w_buf_adds(b, "&");
		m2i_buf_add_enc(b, m2w_buf_str(&norm), norm.len);
		rc = b->failed ? -1 : 0;
	}
	m2w_buf_release(&uri);
	m2w_buf_release(&norm);
out:
	params_free(p, n);
	return rc;
}

int m2i_oauth_signature(const char *method, const char *url,
			const char *consumer_key, const char *consumer_secret,
			const char *token, const char *token_secret,
			const char *nonce, const char *timestamp,
			char *sig, size_t siglen)
{
	const char *const oauth[][2] = {
		{ "oauth_consumer_key", consumer_key },
		{ "oauth_nonce", nonce },
		{ "oauth_signature_method", "HMAC-SHA256" },
		{ "oauth_timestamp", timestamp },
		{ "oauth_token", token },
		{ "oauth_version", "1.0" },
	};
	unsigned char mac[SHA256_LEN];
	struct m2w_buf base, key;
	int rc = -1;

	if (siglen < 4 * ((SHA256_LEN + 2) / 3) + 1)
		return -1;
	m2w_buf_init(&base, 0);
	m2w_buf_init(&key, 0);
	m2i_buf_add_enc(&key, consumer_secret, strlen(consumer_secret));
	m2w_buf_adds(&key, "&");
	m2i_buf_add_enc(&key, token_secret, strlen(token_secret));
	if (!key.failed &&
	    base_string(method, url, oauth, sizeof(oauth) / sizeof(oauth[0]),
			&base) == 0 &&
	    hmac_sha256(key.buf, key.len, base.buf, base.len, mac) == 0) {
		EVP_EncodeBlock((unsigned char *)sig, mac, SHA256_LEN);
		rc = 0;
	}
	if (key.buf)
		memset(key.buf, 0, key.len);
	m2w_buf_release(&key);
	m2w_buf_release(&base);
	return rc;
}

/* ------------------------------------------------------------- header */

static int random_bytes(unsigned char *p, size_t n)
{
	ssize_t r;
	int fd;

	if (RAND_bytes(p, (int)n) == 1)
		return 0;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = read(fd, p, n);
	close(fd);
	return r == (ssize_t)n ? 0 : -1;
}

static int make_nonce(char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[16];
	size_t i;

	if (outlen < 2 * sizeof(raw) + 1 || random_bytes(raw, sizeof(raw)) < 0)
		return -1;
	for (i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * sizeof(raw)] = '\0';
	return 0;
}

/* , name="enc(value)" */
static void header_param(struct m2w_buf *b, const char *name,
			 const char *value, int first)
{
	m2w_buf_addf(b, "%s%s=\"", first ? "" : ",", name);
	m2i_buf_add_enc(b, value, strlen(value));
	m2w_buf_adds(b, "\"");
}

char *m2i_oauth_header(const struct m2_client *c, const char *method,
		       const char *url)
{
	char nonce[40], ts[24], sig[64];
	struct m2w_buf b;

	if (make_nonce(nonce, sizeof(nonce)) < 0)
		return NULL;
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	if (m2i_oauth_signature(method, url, c->consumer_key,
				c->consumer_secret, c->access_token,
				c->access_token_secret, nonce, ts, sig,
				sizeof(sig)) < 0)
		return NULL;
	m2w_buf_init(&b, 0);
	m2w_buf_adds(&b, "Authorization: OAuth ");
	header_param(&b, "oauth_consumer_key", c->consumer_key, 1);
	header_param(&b, "oauth_token", c->access_token, 0);
	header_param(&b, "oauth_signature_method", "HMAC-SHA256", 0);
	header_param(&b, "oauth_timestamp", ts, 0);
	header_param(&b, "oauth_nonce", nonce, 0);
	header_param(&b, "oauth_version", "1.0", 0);
	header_param(&b, "oauth_signature", sig, 0);
	if (b.failed) {
		m2w_buf_release(&b);
		return NULL;
	}
	return m2w_buf_detach(&b);
}
