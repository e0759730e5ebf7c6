/*
 * magento_error.c - Magento's error bodies made into one readable line.
 *
 * An error body is {"message", "parameters", "errors"?, "trace"?}; the
 * message carries placeholders that Magento's own renderer fills with
 * PHP's strtr(): %1, %2... from an array (1-based), %name from an object,
 * and at each position the LONGEST placeholder that matches wins, so %SKU
 * never eats the start of %SKUx and %1 never eats %10 when there are ten
 * parameters. We do the same. "Validation Failed" style bodies list their
 * details in errors[] (each {message, parameters}): they are appended,
 * "Validation Failed: <e1>; <e2>". A body that is not such JSON (a proxy's
 * HTML page) becomes "HTTP <status>: <first 200 bytes, printable ASCII>".
 *
 * Also here: Retry-After (delta seconds or an HTTP date, via
 * curl_getdate). Pure functions; thread-safe.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "magento_internal.h"

#define SNIPPET_MAX 200
#define RETRY_AFTER_MAX_S (7 * 24 * 3600)

struct holder {
	char key[128];               /* "%name" */
	size_t keylen;
	const char *value;
};

/* ------------------------------------------------------------ helpers */

/* Appends s[0..n) to out at *o, leaving room for the NUL. */
static void put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
	if (*o + 1 >= outlen)
		return;
	if (n > outlen - 1 - *o)
		n = outlen - 1 - *o;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
}

void m2i_sanitize(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;

	if (!outlen)
		return;
	for (i = 0; i < n && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[o++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
	}
	out[o] = '\0';
}

/* A parameter as text, as PHP's strtr would print it. */
static const char *param_text(struct json_object *v)
{
	if (!v)
		return "";
	switch (json_object_get_type(v)) {
	case json_type_string:
		return json_object_get_string(v);
	case json_type_boolean:
		return json_object_get_boolean(v) ? "1" : "";
	case json_type_null:
		return "";
	default:
		return json_object_to_json_string_ext(v,
						      JSON_C_TO_STRING_PLAIN);
	}
}

/* The placeholders params defines: array -> %1.., object -> %name. */
static struct holder *holders(struct json_object *params, size_t *n)
{
	struct holder *h = NULL;
	size_t i = 0, len;

	*n = 0;
	if (json_object_is_type(params, json_type_array)) {
		len = json_object_array_length(params);
		h = calloc(len ? len : 1, sizeof(*h));
		for (i = 0; h && i < len; i++) {
			h[i].keylen = (size_t)snprintf(h[i].key,
						       sizeof(h[i].key),
						       "%%%zu", i + 1);
			h[i].value = param_text(
				json_object_array_get_idx(params, i));
		}
	} else if (json_object_is_type(params, json_type_object)) {
		len = (size_t)json_object_object_length(params);
		h = calloc(len ? len : 1, sizeof(*h));
		if (h) {
			json_object_object_foreach(params, key, val) {
				if (i >= len || strlen(key) + 2 > sizeof(h[i].key))
					continue;
				h[i].keylen = (size_t)snprintf(h[i].key,
							       sizeof(h[i].key),
							       "%%%s", key);
				h[i].value = param_text(val);
				i++;
			}
		}
	}
	*n = h ? i : 0;
	return h;
}

/* The longest placeholder matching at s, or NULL. */
static const struct holder *match(const struct holder *h, size_t n,
				  const char *s)
{
	const struct holder *best = NULL;
	size_t i;

	for (i = 0; i < n; i++)
		if (h[i].keylen > 1 && strncmp(s, h[i].key, h[i].keylen) == 0 &&
		    (!best || h[i].keylen > best->keylen))
			best = &h[i];
	return best;
}

/* ------------------------------------------------------------- filling */

void m2i_message_fill_obj(const char *message, struct json_object *params,
			  char *out, size_t outlen)
{
	const struct holder *m;
	struct holder *h;
	size_t n, o = 0;
	const char *s;

	if (!outlen)
		return;
	out[0] = '\0';
	if (!message)
		return;
	h = holders(params, &n);
	for (s = message; *s && o + 1 < outlen;) {
		m = *s == '%' ? match(h, n, s) : NULL;
		if (m) {
			put(out, outlen, &o, m->value, strlen(m->value));
			s += m->keylen;
		} else {
			put(out, outlen, &o, s, 1);
			s++;
		}
	}
	free(h);
}

void m2_message_fill(const char *message, const char *params_json, char *out,
		     size_t outlen)
{
	struct json_object *params = NULL;

	if (params_json)
		params = m2i_json_parse(params_json, strlen(params_json));
	m2i_message_fill_obj(message, params, out, outlen);
	json_object_put(params);
}

/* Appends ": e1; e2" from errors[] (each {message, parameters}). */
static void append_errors(struct json_object *errors, char *out,
			  size_t outlen)
{
	char one[M2_MESSAGE_MAX + 1];
	struct json_object *e;
	size_t i, n, o = strlen(out);
	int first = 1;

	n = json_object_is_type(errors, json_type_array) ?
		    json_object_array_length(errors) : 0;
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(errors, i);
		if (!json_object_is_type(m2i_get(e, "message"),
					 json_type_string))
			continue;
		m2i_message_fill_obj(json_object_get_string(m2i_get(e,
								    "message")),
				     m2i_get(e, "parameters"), one,
				     sizeof(one));
		put(out, outlen, &o, first ? ": " : "; ", 2);
		put(out, outlen, &o, one, strlen(one));
		first = 0;
	}
}

void m2i_error_message(int status, const char *body, size_t len, char *out,
		       size_t outlen)
{
	struct json_object *o = body ? m2i_json_parse(body, len) : NULL;
	struct json_object *msg = m2i_get(o, "message");
	char snip[SNIPPET_MAX + 1];

	if (json_object_is_type(msg, json_type_string)) {
		m2i_message_fill_obj(json_object_get_string(msg),
				     m2i_get(o, "parameters"), out, outlen);
		append_errors(m2i_get(o, "errors"), out, outlen);
		if (!*out)   /* {"message": ""}: still say what came back */
			snprintf(out, outlen, "HTTP %d with an empty message",
				 status);
	} else {
		m2i_sanitize(body ? body : "", len > SNIPPET_MAX ? SNIPPET_MAX :
			     len, snip, sizeof(snip));
		snprintf(out, outlen, "HTTP %d%s%s", status, *snip ? ": " : "",
			 snip);
	}
	json_object_put(o);
}

/* --------------------------------------------------------- Retry-After */

int64_t m2_retry_after_ms(const char *value, int64_t now_s)
{
	const char *s = value, *e;
	long long secs = 0;
	time_t t;

	if (!s)
		return 0;
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
			 e[-1] == '\n'))
		e--;
	if (e == s)
		return 0;
	if (strspn(s, "0123456789") >= (size_t)(e - s)) {
		for (; s < e && secs <= RETRY_AFTER_MAX_S; s++)
			secs = secs * 10 + (*s - '0');
	} else {
		char date[64];

		if ((size_t)(e - s) >= sizeof(date))
			return 0;
		memcpy(date, s, (size_t)(e - s));
		date[e - s] = '\0';
		t = curl_getdate(date, NULL);
		if (t == (time_t)-1 || (int64_t)t <= now_s)
			return 0;
		secs = (long long)((int64_t)t - now_s);
	}
	if (secs > RETRY_AFTER_MAX_S)
		secs = RETRY_AFTER_MAX_S;
	return (int64_t)secs * 1000;
}
