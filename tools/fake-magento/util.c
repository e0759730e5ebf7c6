#include "config.h"
/*
 * util.c - small helpers shared by the fake's modules: JSON responses in
 * Magento's error shape, percent-coding (RFC 3986), query-string parsing,
 * Magento's `fields` response filter and SQL LIKE matching. No state.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"

void *fk_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "fake-magento: out of memory\n");
		abort();
	}
	return q;
}

char *fk_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = fk_xrealloc(NULL, n);

	memcpy(d, s, n);
	return d;
}

char *fk_json_text(json_object *o)
{
	int flags = JSON_C_TO_STRING_PLAIN;

#ifdef JSON_C_TO_STRING_NOSLASHESCAPE
	flags |= JSON_C_TO_STRING_NOSLASHESCAPE;
#endif
	return fk_xstrdup(json_object_to_json_string_ext(o, flags));
}

void fk_resp_json(struct fk_resp *resp, int status, json_object *o)
{
	free(resp->body);
	resp->status = status;
	resp->body = fk_json_text(o);
	json_object_put(o);
}

void fk_resp_error(struct fk_resp *resp, int status, const char *msg,
		   json_object *params)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "message", json_object_new_string(msg));
	if (params)
		json_object_object_add(o, "parameters", params);
	fk_resp_json(resp, status, o);
}

void fk_resp_route_404(struct fk_resp *resp)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "message",
		json_object_new_string("Request does not match any route."));
	json_object_object_add(o, "trace", NULL);
	fk_resp_json(resp, 404, o);
}

void fk_resp_unknown_field(struct fk_resp *resp, const char *key)
{
	fk_resp_error(resp, 400,
		"\"%fieldName\" is not supported. Correct the field name and try again.",
		fk_params1("fieldName", key));
}

/* Numbers print as Magento's PHP does for these values: 2, 10.5, 11. */
json_object *fk_jdouble(double d)
{
	char buf[64];

	snprintf(buf, sizeof buf, "%.15g", d);
#if defined(JSON_C_VERSION_NUM) && JSON_C_VERSION_NUM >= 0x000c00
	return json_object_new_double_s(d, buf);
#else
	return json_object_new_double(d); /* json-c < 0.12 */
#endif
}

json_object *fk_params1(const char *k1, const char *v1)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, k1, json_object_new_string(v1));
	return o;
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

char *fk_pct_decode(const char *s, size_t n, int plus_is_space)
{
	char *d = fk_xrealloc(NULL, n + 1);
	size_t i, j = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n &&
		    hexval((unsigned char)s[i + 1]) >= 0 &&
		    hexval((unsigned char)s[i + 2]) >= 0) {
			d[j++] = (char)(hexval((unsigned char)s[i + 1]) * 16 +
					hexval((unsigned char)s[i + 2]));
			i += 2;
		} else if (s[i] == '+' && plus_is_space) {
			d[j++] = ' ';
		} else {
			d[j++] = s[i];
		}
	}
	d[j] = '\0';
	return d;
}

char *fk_pct_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), j = 0;
	char *d = fk_xrealloc(NULL, 3 * n + 1);
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' ||
		    *p == '~') {
			d[j++] = (char)*p;
		} else {
			d[j++] = '%';
			d[j++] = hex[*p >> 4];
			d[j++] = hex[*p & 15];
		}
	}
	d[j] = '\0';
	return d;
}

int fk_query_parse(const char *query, struct fk_kv **out, size_t *n)
{
	struct fk_kv *kv = NULL;
	size_t cnt = 0;
	const char *p = query;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);

		if (len > 0) {
			kv = fk_xrealloc(kv, (cnt + 1) * sizeof *kv);
			if (eq) {
				kv[cnt].k = fk_pct_decode(p, (size_t)(eq - p), 1);
				kv[cnt].v = fk_pct_decode(eq + 1,
					len - (size_t)(eq - p) - 1, 1);
			} else {
				kv[cnt].k = fk_pct_decode(p, len, 1);
				kv[cnt].v = fk_xstrdup("");
			}
			cnt++;
		}
		p = amp ? amp + 1 : NULL;
	}
	*out = kv;
	*n = cnt;
	return 0;
}

void fk_query_free(struct fk_kv *kv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(kv[i].k);
		free(kv[i].v);
	}
	free(kv);
}

const char *fk_query_get(const struct fk_req *rq, const char *key)
{
	size_t i;

	for (i = 0; i < rq->nquery; i++)
		if (strcmp(rq->query[i].k, key) == 0)
			return rq->query[i].v;
	return NULL;
}

/* ---- fields filter: "items[entity_id,items[sku]],total_count" */

static json_object *fields_list(const char **pp, int depth)
{
	json_object *tree = json_object_new_object();
	const char *p = *pp;

	for (;;) {
		const char *start;
		char name[256];
		size_t len;
		json_object *sub = NULL;

		while (*p == ' ')
			p++;
		start = p;
		while (*p && *p != ',' && *p != '[' && *p != ']')
			p++;
		len = (size_t)(p - start);
		while (len > 0 && start[len - 1] == ' ')
			len--;
		if (len == 0 || len >= sizeof name)
			goto fail;
		memcpy(name, start, len);
		name[len] = '\0';
		if (*p == '[') {
			p++;
			sub = fields_list(&p, depth + 1);
			if (!sub || *p != ']') {
				json_object_put(sub);
				goto fail;
			}
			p++;
		}
		json_object_object_add(tree, name, sub);
		while (*p == ' ')
			p++;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == ']' && depth > 0)
			break;
		if (*p == '\0' && depth == 0)
			break;
		goto fail;
	}
	*pp = p;
	return tree;
fail:
	json_object_put(tree);
	return NULL;
}

json_object *fk_fields_parse(const char *spec)
{
	const char *p = spec;

	return fields_list(&p, 0);
}

json_object *fk_fields_apply(json_object *data, json_object *filter)
{
	json_object *out;

	if (!filter || !data)
		return data;
	if (json_object_is_type(data, json_type_array)) {
		size_t i, n = json_object_array_length(data);

		out = json_object_new_array();
		for (i = 0; i < n; i++) {
			json_object *el = json_object_array_get_idx(data, i);

			json_object_array_add(out, fk_fields_apply(
				json_object_get(el), filter));
		}
		json_object_put(data);
		return out;
	}
	if (!json_object_is_type(data, json_type_object))
		return data;
	out = json_object_new_object();
	json_object_object_foreach(filter, key, sub) {
		json_object *v;

		if (!json_object_object_get_ex(data, key, &v))
			continue;
		json_object_object_add(out, key,
			fk_fields_apply(json_object_get(v), sub));
	}
	json_object_put(data);
	return out;
}

/* SQL LIKE, case-insensitive: % any run, _ one character. */
int fk_like(const char *s, const char *p)
{
	for (; *p; p++, s++) {
		if (*p == '%') {
			while (p[1] == '%')
				p++;
			if (!p[1])
				return 1;
			for (; *s; s++)
				if (fk_like(s, p + 1))
					return 1;
			return 0;
		}
		if (!*s)
			return 0;
		if (*p != '_' && tolower((unsigned char)*p) !=
				 tolower((unsigned char)*s))
			return 0;
	}
	return *s == '\0';
}

int fk_json_number(json_object *o, double *out)
{
	const char *s;
	char *end;

	if (!o)
		return 0;
	switch (json_object_get_type(o)) {
	case json_type_int:
	case json_type_double:
		*out = json_object_get_double(o);
		return 1;
	case json_type_boolean:
		*out = json_object_get_boolean(o) ? 1 : 0;
		return 1;
	case json_type_string:
		s = json_object_get_string(o);
		errno = 0;
		*out = strtod(s, &end);
		return *s && !*end && errno == 0;
	default:
		return 0;
	}
}

int fk_json_int64(json_object *o, int64_t *out)
{
	double d;

	if (!fk_json_number(o, &d) || d != (double)(int64_t)d)
		return 0;
	*out = (int64_t)d;
	return 1;
}

const char *fk_unknown_key(json_object *o, const char *const *allowed)
{
	json_object_object_foreach(o, key, val) {
		const char *const *a;

		(void)val;
		for (a = allowed; *a; a++)
			if (strcmp(*a, key) == 0)
				break;
		if (!*a)
			return key;
	}
	return NULL;
}
