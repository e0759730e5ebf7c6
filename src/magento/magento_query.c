/*
 * magento_query.c - searchCriteria query strings and paging; the RFC 3986
 * percent-encoder the other modules build on (appending to a struct
 * m2w_buf, buf.h).
 *
 * Every name and value is percent-encoded (unreserved characters kept), so
 * `searchCriteria[filter_groups][0][filters][0][field]` goes out as
 * `searchCriteria%5Bfilter_groups%5D%5B0%5D...` and a value holding '&',
 * '=', '#' or '+' cannot change the query's meaning. The same encoder
 * serves OAuth, so what we send is exactly what we sign.
 *
 * Paging: Magento answers a page past the end with the last page again,
 * so a walk stops on total_count (or an empty or short page), never on
 * "no more items" alone.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "magento_internal.h"

/* ------------------------------------------------------------ encoding */

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

int m2i_buf_add_enc(struct m2w_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;

	if (n > SIZE_MAX / 3 || m2w_buf_grow(b, 3 * n) < 0) {
		b->failed = 1;
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unreserved(c)) {
			b->buf[b->len + o++] = (char)c;
		} else {
			b->buf[b->len + o++] = '%';
			b->buf[b->len + o++] = hex[c >> 4];
			b->buf[b->len + o++] = hex[c & 15];
		}
	}
	b->len += o;
	b->buf[b->len] = '\0';
	return 0;
}

/* -------------------------------------------------------------- query */

void m2_query_init(struct m2_query *q)
{
	m2w_buf_init(&q->b, 0);
}

void m2_query_release(struct m2_query *q)
{
	m2w_buf_release(&q->b);
}

/* Appends &enc(name)=enc(value); name is printf-formatted. */
static void q_param(struct m2_query *q, const char *value,
		    const char *namefmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

static void q_param(struct m2_query *q, const char *value,
		    const char *namefmt, ...)
{
	char name[256];
	va_list ap;
	int n;

	if (q->b.failed)
		return;
	va_start(ap, namefmt);
	n = vsnprintf(name, sizeof(name), namefmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(name) || !value) {
		q->b.failed = 1;
		return;
	}
	if (q->b.len)
		m2w_buf_addc(&q->b, '&');
	m2i_buf_add_enc(&q->b, name, (size_t)n);
	m2w_buf_addc(&q->b, '=');
	m2i_buf_add_enc(&q->b, value, strlen(value));
}

#define FILTER "searchCriteria[filter_groups][%d][filters][%d]"

void m2_query_filter(struct m2_query *q, int group, int index,
		     const char *field, const char *value, const char *cond)
{
	if (group < 0 || index < 0 || !field || !value) {
		q->b.failed = 1;
		return;
	}
	q_param(q, field, FILTER "[field]", group, index);
	q_param(q, value, FILTER "[value]", group, index);
	q_param(q, cond ? cond : "eq", FILTER "[condition_type]", group,
		index);
}

void m2_query_page(struct m2_query *q, int page_size, int current_page)
{
	char v[24];

	snprintf(v, sizeof(v), "%d", page_size);
	q_param(q, v, "searchCriteria[pageSize]");
	snprintf(v, sizeof(v), "%d", current_page);
	q_param(q, v, "searchCriteria[currentPage]");
}

/* How many sort orders the query has already. */
static int sort_count(const struct m2_query *q)
{
	const char *p = q->b.buf;
	int n = 0;

	while (p && (p = strstr(p, "%5Bdirection%5D=")) != NULL) {
		n++;
		p++;
	}
	return n;
}

void m2_query_sort(struct m2_query *q, const char *field, int ascending)
{
	int i = sort_count(q);

	q_param(q, field, "searchCriteria[sortOrders][%d][field]", i);
	q_param(q, ascending ? "ASC" : "DESC",
		"searchCriteria[sortOrders][%d][direction]", i);
}

void m2_query_fields(struct m2_query *q, const char *fields)
{
	q_param(q, fields, "fields");
}

const char *m2_query_str(const struct m2_query *q)
{
	return q->b.failed ? NULL : m2w_buf_str(&q->b);
}

/* ------------------------------------------------------------- paging */

static int clamp_page(int page_size)
{
	if (page_size <= 0)
		return 100;
	return page_size > M2_PAGE_MAX ? M2_PAGE_MAX : page_size;
}

/* path?query&pageSize&currentPage */
static char *page_path(const char *path, const char *query, int size,
		       int page)
{
	struct m2_query pq;
	struct m2w_buf b = M2W_BUF_INIT;

	m2_query_init(&pq);
	m2_query_page(&pq, size, page);
	m2w_buf_adds(&b, path);
	m2w_buf_addc(&b, strchr(path, '?') ? '&' : '?');
	if (query && *query)
		m2w_buf_addf(&b, "%s&", query);
	if (pq.b.failed)
		b.failed = 1;
	else
		m2w_buf_add(&b, pq.b.buf, pq.b.len);
	m2_query_release(&pq);
	if (b.failed) {
		m2w_buf_release(&b);
		return NULL;
	}
	return m2w_buf_detach(&b);
}

/* One page: items handed to each; *seen and *total updated. Returns the
 * walk's result; *stop set when this was the last page. */
static int walk_page(struct m2_conn *k, const char *url, int size,
		     int (*each)(struct json_object *, void *), void *arg,
		     int64_t *seen, int *stop, struct m2_result *res)
{
	struct json_object *body = NULL, *items, *tc;
	int64_t total = -1;
	size_t i, n;
	int rc;

	rc = m2i_call(k, "GET", url, NULL, NULL, &body, res);
	if (rc != M2W_OK)
		return rc;
	items = m2i_get(body, "items");
	tc = m2i_get(body, "total_count");
	if (!json_object_is_type(body, json_type_object) ||
	    (items && !json_object_is_type(items, json_type_array)) ||
	    (tc && !m2i_json_int64(tc, &total))) {
		json_object_put(body);
		return m2i_result_set(res, M2W_EPROTO, M2W_CLASS_TRANSIENT,
				      "search answer is not {items, "
				      "total_count}");
	}
	n = items ? json_object_array_length(items) : 0;
	for (i = 0; i < n && rc == 0; i++)
		rc = each(json_object_array_get_idx(items, i), arg);
	*seen += (int64_t)n;
	*stop = rc != 0 || n == 0 || (tc && *seen >= total) ||
		(!tc && n < (size_t)size);
	json_object_put(body);
	return rc;
}

int m2i_search_walk(struct m2_conn *k, const char *path, const char *query,
		    int page_size,
		    int (*each)(struct json_object *item, void *arg),
		    void *arg, struct m2_result *res)
{
	int64_t seen = 0, start = m2w_clock_mono_ms();
	int page, rc = M2W_OK, stop = 0, size = clamp_page(page_size);
	char *url;

	m2i_result_clear(res);
	if (!query)
		return m2i_result_set(res, M2W_EINVAL, M2W_CLASS_PERMANENT,
				      "search query could not be built (a NULL "
				      "argument or out of memory)");
	for (page = 1; !stop && rc == M2W_OK; page++) {
		url = page_path(path, query, size, page);
		if (!url) {
			rc = m2i_result_set(res, M2W_ENOMEM,
					    M2W_CLASS_TRANSIENT,
					    "search: out of memory");
			break;
		}
		rc = walk_page(k, url, size, each, arg, &seen, &stop, res);
		free(url);
	}
	res->duration_ms = m2w_clock_mono_ms() - start;
	return rc;
}

struct each_text {
	int (*each)(const char *item_json, void *arg);
	void *arg;
};

static int each_as_text(struct json_object *item, void *arg)
{
	struct each_text *t = arg;

	return t->each(json_object_to_json_string_ext(item,
						      JSON_C_TO_STRING_PLAIN),
		       t->arg);
}

int m2_search_each(struct m2_conn *k, const char *path,
		   const struct m2_query *q, int page_size,
		   int (*each)(const char *item_json, void *arg), void *arg,
		   struct m2_result *res)
{
	struct each_text t = { each, arg };

	return m2i_search_walk(k, path, q ? m2_query_str(q) : "", page_size,
			       each_as_text, &t, res);
}
