/*
 * ingest_map.c - a CSV header mapped onto a job type's payload, and one
 * record at a time made into payload text (see ingest.h for the rules).
 *
 * The map knows no type: the job's field table (jobs.h) says which payload
 * keys come from CSV, under which header names, whether they are required,
 * numbers or text, which of them are items (one item per row; adjacent
 * rows of one parcel are merged by the stream, ingest_csv.c), which field
 * stands in for an empty one (`fallback`), and the idempotency template
 * names the fields that are the parcel's identity. A new type with CSV
 * columns needs nothing here.
 *
 * A row becomes its payload as JSON text built here (not through json-c):
 * numbers go out as written when they are JSON numbers already ("9.99"
 * stays 9.99, never 9.9900000000000002), strings are escaped, and what is
 * sent is exactly what was checked. Every payload then goes through the
 * job's own load and keys (ig_finish), so no row reaches the store that
 * the worker would refuse.
 *
 * Pure: the map is read-only once made; thread-safe.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"

/* ------------------------------------------------------------- names */

/* A header name: BOM and white space stripped, lowercase, runs of space,
 * tab and '-' as one '_'. */
static void name_norm(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;

	while (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		n -= 3;
	}
	ig_trim(&s, &n);
	for (; n && o + 1 < size; s++, n--) {
		char c = (char)tolower((unsigned char)*s);

		if (c == ' ' || c == '-' || c == '\t')
			c = '_';
		if (c == '_' && o && out[o - 1] == '_')
			continue;
		out[o++] = c;
	}
	out[o] = '\0';
}

/* The CSV fields of a job: its fields with header names, then its item
 * fields with header names, into f[]/item[]; their count. */
static size_t csv_fields(const struct m2w_job *job,
			 const struct m2w_field **f, int *item)
{
	const struct m2w_field *x;
	size_t n = 0;

	for (x = job->fields; x->name && n < IG_FMAX; x++)
		if (x->csv[0]) {
			item[n] = 0;
			f[n++] = x;
		}
	for (x = job->item_fields; x && x->name && n < IG_FMAX; x++)
		if (x->csv[0]) {
			item[n] = 1;
			f[n++] = x;
		}
	return n;
}

static const char *what(const struct m2w_field *f)
{
	return f->what ? f->what : f->name;
}

/* Is `name` the payload key or a header name of f? */
static int names(const struct m2w_field *f, const char *name)
{
	size_t a;

	if (strcmp(name, f->name) == 0)
		return 1;
	for (a = 0; a < M2W_JOB_CSV_NAMES && f->csv[a]; a++)
		if (strcmp(name, f->csv[a]) == 0)
			return 1;
	return 0;
}

/* The CSV field of any type that `name` (normalised) names, or NULL;
 * the one of `job` first. */
static const struct m2w_field *any_field(const struct m2w_job *job,
					 const char *name)
{
	const struct m2w_field *f[IG_FMAX];
	const struct m2w_job *j;
	int item[IG_FMAX];
	size_t i, k, nf;

	for (k = 0, j = job; j; j = m2w_job_at(k++)) {
		nf = csv_fields(j, f, item);
		for (i = 0; i < nf; i++)
			if (names(f[i], name))
				return f[i];
	}
	return NULL;
}

/* Is `name` an entry of the list "a, b, c"? */
static int listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p;

	for (p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ',' || !p[n]))
			return 1;
	return 0;
}

/* "order, track, ...": every CSV field of every type, once. */
static void field_list(char *out, size_t size)
{
	const struct m2w_field *f[IG_FMAX];
	const struct m2w_job *j;
	int item[IG_FMAX];
	size_t i, k, nf, o = 0;

	out[0] = '\0';
	for (k = 0; (j = m2w_job_at(k)) && o < size; k++) {
		nf = csv_fields(j, f, item);
		for (i = 0; i < nf && o < size; i++)
			if (!listed(out, f[i]->name))
				o += (size_t)snprintf(out + o, size - o,
						      "%s%s", o ? ", " : "",
						      f[i]->name);
	}
}

/*
 * Whether the normalised header `name` is an alias of field `want` in
 * `columns` ("FIELD=Header, ..."). FIELD is any type's CSV field (a
 * [watch] may list aliases for others); one that no type has: -1 with
 * errbuf set.
 */
static int extra_alias(const struct m2w_job *job, const char *columns,
		       const struct m2w_field *want, const char *name,
		       char *errbuf)
{
	char lhs[M2W_INGEST_COLUMN_MAX + 1], rhs[M2W_INGEST_COLUMN_MAX + 1];
	const struct m2w_field *g;
	const char *p = columns, *e, *eq;
	int hit = 0;

	while (p && *p) {
		e = strchr(p, ',');
		if (!e)
			e = p + strlen(p);
		eq = memchr(p, '=', (size_t)(e - p));
		if (!eq) {
			name_norm(p, (size_t)(e - p), lhs, sizeof(lhs));
			if (lhs[0]) {
				m2w_fail(errbuf, M2W_EINVAL, "columns: \"%s\" "
					 "is not FIELD=Header Name", lhs);
				return -1;
			}
		} else {
			name_norm(p, (size_t)(eq - p), lhs, sizeof(lhs));
			name_norm(eq + 1, (size_t)(e - eq - 1), rhs,
				     sizeof(rhs));
			if (!(g = any_field(job, lhs))) {
				char list[200];

				field_list(list, sizeof(list));
				m2w_fail(errbuf, M2W_EINVAL, "columns: unknown "
					 "field %s (%s)", lhs[0] ? lhs : "?",
					 list);
				return -1;
			}
			if (!rhs[0]) {
				m2w_fail(errbuf, M2W_EINVAL, "columns: no header "
					 "name for %s", lhs);
				return -1;
			}
			if (g == want && strcmp(rhs, name) == 0)
				hit = 1;
		}
		p = *e ? e + 1 : e;
	}
	return hit;
}

int m2w_ingest_columns_check(const char *type, const char *columns,
			     char *errbuf)
{
	const struct m2w_job *job = m2w_job_find(type);

	if (!job)
		return m2w_fail(errbuf, M2W_EINVAL, "unknown job type \"%s\"",
				type ? type : "(none)");
	return extra_alias(job, columns, NULL, "", errbuf) < 0 ? M2W_EINVAL
								: M2W_OK;
}

/* ---------------------------------------------------------------- map */

/* The map index of the field named name, or -1. */
static int index_of(const struct m2w_ingest_map *m, const char *name)
{
	size_t i;

	for (i = 0; name && i < m->nf; i++)
		if (strcmp(m->f[i]->name, name) == 0)
			return (int)i;
	return -1;
}

/* Appends ", name" for each header name of f to out (of size, at o). */
static size_t add_aliases(const struct m2w_field *f, char *out, size_t size,
			  size_t o)
{
	size_t a;

	for (a = 0; a < M2W_JOB_CSV_NAMES && f->csv[a] && o < size; a++)
		o += (size_t)snprintf(out + o, size - o, "%s%s", o ? ", " : "",
				      f->csv[a]);
	return o;
}

/* "a, b, c" of f's header names, then of its fallback's. */
static void alias_list(const struct m2w_ingest_map *m, size_t i, char *out,
		       size_t size)
{
	int fb = index_of(m, m->f[i]->fallback);
	size_t o = add_aliases(m->f[i], out, size, 0);

	if (fb >= 0)
		add_aliases(m->f[fb], out, size, o);
}

/* The header's columns onto the fields; 0, or M2W_EINVAL with errbuf. */
static int map_header(struct m2w_ingest_map *m, const struct m2w_ingest_opts *o,
		      const char *const *names_, size_t n, const char *key,
		      char *errbuf)
{
	char name[M2W_INGEST_COLUMN_MAX + 1];
	size_t i, f;
	int x;

	for (i = 0; i < n; i++) {
		name_norm(names_[i], strlen(names_[i]), name, sizeof(name));
		if (key[0] && strcmp(name, key) == 0 && m->key_col < 0) {
			m->key_col = (int)i;
			snprintf(m->key_name, sizeof(m->key_name), "%s", name);
		}
		for (f = 0; f < m->nf; f++) {
			size_t a;

			for (a = 0; a < M2W_JOB_CSV_NAMES && m->f[f]->csv[a];
			     a++)
				if (strcmp(name, m->f[f]->csv[a]) == 0)
					break;
			if (a == M2W_JOB_CSV_NAMES || !m->f[f]->csv[a]) {
				x = extra_alias(m->job, o->columns, m->f[f],
						name, errbuf);
				if (x < 0)
					return M2W_EINVAL;
				if (!x)
					continue;
			}
			if (m->col[f] >= 0)
				return m2w_fail(errbuf, M2W_EINVAL, "header has "
					"two %s columns: %s (column %d) and %s "
					"(column %zu)", what(m->f[f]),
					m->name[f], m->col[f] + 1, name, i + 1);
			m->col[f] = (int)i;
			snprintf(m->name[f], sizeof(m->name[f]), "%s", name);
		}
	}
	return 0;
}

/* The columns the job needs; 0, or M2W_EINVAL with errbuf. */
static int map_needs(struct m2w_ingest_map *m, const char *key, char *errbuf)
{
	char list[160];
	size_t f, have = 0, items = 0;
	int fb, got = -1, miss = -1;

	for (f = 0; f < m->nf; f++) {
		if (m->item[f]) {
			items++;
			if (m->col[f] >= 0) {
				have++;
				got = (int)f;
			} else {
				miss = (int)f;
			}
			continue;
		}
		fb = index_of(m, m->f[f]->fallback);
		if (!m->f[f]->required || m->col[f] >= 0 ||
		    (fb >= 0 && m->col[fb] >= 0))
			continue;
		alias_list(m, f, list, sizeof(list));
		return m2w_fail(errbuf, M2W_EINVAL, "header has no %s column: "
				"expected one of %s", what(m->f[f]), list);
	}
	if (have && have < items)
		return m2w_fail(errbuf, M2W_EINVAL, "header has %s but no %s "
				"column: items need %s", what(m->f[got]),
				what(m->f[miss]), items == 2 ? "both" :
				"all of them");
	if (key[0] && m->key_col < 0)
		return m2w_fail(errbuf, M2W_EINVAL, "header has no %s column "
				"(the key field)", key);
	return 0;
}

/* The fields of the idempotency template: a parcel's identity. */
static void map_identity(struct m2w_ingest_map *m)
{
	const char *t = m->job->idem_key, *e;
	char name[64];
	int i;

	for (; t && (t = strchr(t, '{')) && (e = strchr(t, '}')); t = e) {
		snprintf(name, sizeof(name), "%.*s", (int)(e - t - 1), t + 1);
		if (strchr(name, '='))
			*strchr(name, '=') = '\0';
		i = index_of(m, name);
		if (i >= 0 && m->nident < IG_FMAX)
			m->ident[m->nident++] = i;
	}
}

int m2w_ingest_map_new(const struct m2w_ingest_opts *o,
		       const char *const *names_, size_t n,
		       struct m2w_ingest_map **out, char *errbuf)
{
	struct m2w_ingest_map *m;
	const struct m2w_job *job;
	char key[M2W_INGEST_COLUMN_MAX + 1] = "";
	size_t f;

	*out = NULL;
	if (!o || !(job = m2w_job_find(o->type)))
		return m2w_fail(errbuf, M2W_EINVAL, "unknown job type \"%s\"",
				o && o->type ? o->type : "(none)");
	if (!(job->inputs & M2W_IN_CSV))
		return m2w_fail(errbuf, M2W_EINVAL, "type %s takes NDJSON, "
				"not CSV", o->type);
	if (m2w_ingest_columns_check(o->type, o->columns, errbuf) != M2W_OK)
		return M2W_EINVAL;
	if (!(m = calloc(1, sizeof(*m))))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	m->job = job;
	m->ncols = n;
	m->nf = csv_fields(job, m->f, m->item);
	m->key_col = -1;
	for (f = 0; f < IG_FMAX; f++)
		m->col[f] = -1;
	if (o->key_field && *o->key_field)
		name_norm(o->key_field, strlen(o->key_field), key,
			     sizeof(key));
	if (map_header(m, o, names_, n, key, errbuf) ||
	    map_needs(m, key, errbuf)) {
		free(m);
		return M2W_EINVAL;
	}
	map_identity(m);
	if ((o->fingerprint && !(m->fingerprint = strdup(o->fingerprint))) ||
	    (key[0] && !(m->key_field = strdup(key)))) {
		m2w_ingest_map_free(m);
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	}
	*out = m;
	return M2W_OK;
}

void m2w_ingest_map_free(struct m2w_ingest_map *m)
{
	if (!m)
		return;
	free(m->fingerprint);
	free(m->key_field);
	free(m);
}

/* --------------------------------------------------------------- rows */

/* FNV-1a, 64 bits */
#define FNV_BASIS 14695981039346656037ULL
static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
	while (n--) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

void ig_mrow_release(struct ig_mrow *w)
{
	m2w_buf_release(&w->head);
	m2w_buf_release(&w->items);
	memset(w, 0, sizeof(*w));
}

/* The trimmed value of column c in the record: 1, or 0 (empty or no
 * column). */
static int val(int c, const char *const *fields, const size_t *lens,
	       const char **s, size_t *n)
{
	*s = "";
	*n = 0;
	if (c < 0)
		return 0;
	*s = fields[c] ? fields[c] : "";
	*n = fields[c] ? lens[c] : 0;
	ig_trim(s, n);
	return *n > 0;
}

/* Appends `"key":value` for field f, read from column `col`. */
static int add_field(struct m2w_buf *b, const struct m2w_field *f,
		     const char *col, const char *s, size_t n, int *first,
		     struct m2w_ingest_row *r)
{
	char why[M2W_INGEST_REASON_MAX];

	if (!*first)
		m2w_buf_addc(b, ',');
	*first = 0;
	m2w_buf_addc(b, '"');
	m2w_buf_adds(b, f->name);
	m2w_buf_adds(b, "\":");
	if (f->type == M2W_FIELD_NUMBER || f->type == M2W_FIELD_INT) {
		if (ig_add_number(b, col, s, n, f->type == M2W_FIELD_INT, why,
				  sizeof(why)))
			return ig_row_reject(r, col, "%s", why);
		return 0;
	}
	if (!ig_utf8_ok((const unsigned char *)s, n))
		return ig_row_reject(r, col, "%s is not valid UTF-8 (save the "
				     "file as UTF-8)", col);
	ig_json_str(b, s, n);
	return 0;
}

/* The head fields (not items) of a record into w->head. */
static int map_head(const struct m2w_ingest_map *m, const char *const *fields,
		    const size_t *lens, struct ig_mrow *w,
		    struct m2w_ingest_row *r)
{
	const char *s;
	size_t sn, f, k;
	int first = 1, fb, c;

	m2w_buf_addc(&w->head, '{');
	for (f = 0; f < m->nf; f++) {
		if (m->item[f])
			continue;
		c = m->col[f];
		fb = index_of(m, m->f[f]->fallback);
		if (!val(c, fields, lens, &s, &sn) && fb >= 0 &&
		    val(m->col[fb], fields, lens, &s, &sn))
			c = m->col[fb];   /* the fallback stands in */
		if (!sn) {
			if (!m->f[f]->required)
				continue;
			c = m->col[f] >= 0 || fb < 0 ? (int)f : fb;
			return ig_row_reject(r, m->name[c], "%s is empty",
					     m->name[c]);
		}
		if (add_field(&w->head, m->f[f], c == m->col[f] ? m->name[f] :
			      m->name[fb], s, sn, &first, r))
			return M2W_EINVAL;
		for (k = 0; k < m->nident; k++)
			if (m->ident[k] == (int)f)
				w->parcel = k == 0 ? fnv(FNV_BASIS, s, sn) :
					    fnv(fnv(w->parcel, "", 1), s, sn);
	}
	return M2W_OK;
}

/* The item fields of a record into w->items: all given, or none. */
static int map_item(const struct m2w_ingest_map *m, const char *const *fields,
		    const size_t *lens, struct ig_mrow *w,
		    struct m2w_ingest_row *r)
{
	const char *s;
	size_t sn, f;
	int first = 1, got = -1, miss = -1;

	for (f = 0; f < m->nf; f++) {
		if (!m->item[f])
			continue;
		if (val(m->col[f], fields, lens, &s, &sn))
			got = (int)f;
		else
			miss = (int)f;
	}
	if (got < 0)
		return M2W_OK;
	if (miss >= 0)
		return ig_row_reject(r, m->name[miss], "%s is empty but %s is "
				     "given", m->name[miss], m->name[got]);
	m2w_buf_addc(&w->items, '{');
	for (f = 0; f < m->nf; f++) {
		if (!m->item[f])
			continue;
		val(m->col[f], fields, lens, &s, &sn);
		if (add_field(&w->items, m->f[f], m->name[f], s, sn, &first, r))
			return M2W_EINVAL;
	}
	m2w_buf_addc(&w->items, '}');
	w->nitems = 1;
	return M2W_OK;
}

int ig_map_record(const struct m2w_ingest_map *m, const char *const *fields,
		  const size_t *lens, size_t n, struct ig_mrow *w,
		  struct m2w_ingest_row *r)
{
	const char *s;
	size_t sn, i;

	memset(r, 0, sizeof(*r));
	ig_mrow_release(w);
	if (n < m->ncols)
		return ig_row_reject(r, NULL, "row has %zu field%s, the header "
				     "%zu", n, n == 1 ? "" : "s", m->ncols);
	for (i = m->ncols; i < n; i++) {
		s = fields[i] ? fields[i] : "";
		sn = fields[i] ? lens[i] : 0;
		ig_trim(&s, &sn);
		if (sn)
			return ig_row_reject(r, NULL, "row has %zu fields, the "
					     "header %zu", n, m->ncols);
	}
	if (map_head(m, fields, lens, w, r) || map_item(m, fields, lens, w, r))
		return M2W_EINVAL;
	if (m->key_col >= 0) {
		if (!val(m->key_col, fields, lens, &s, &sn))
			return ig_row_reject(r, m->key_name, "%s is empty",
					     m->key_name);
		if (!ig_utf8_ok((const unsigned char *)s, sn))
			return ig_row_reject(r, m->key_name, "%s is not valid "
					     "UTF-8", m->key_name);
		if (sn + strlen(m->job->name) + 1 > M2W_KEY_MAX)
			return ig_row_reject(r, m->key_name, "%s is longer than "
					     "%zu bytes", m->key_name,
					     M2W_KEY_MAX -
						     strlen(m->job->name) - 1);
		memcpy(w->key, s, sn);
		w->key[sn] = '\0';
		w->has_key = 1;
		w->parcel = fnv(FNV_BASIS, s, sn);  /* the key is the identity */
	}
	if (w->head.failed || w->items.failed)
		return M2W_ENOMEM;
	return M2W_OK;
}

int ig_mrow_finish(const struct m2w_ingest_map *m, const struct ig_mrow *w,
		   uint64_t line, struct m2w_ingest_row *r)
{
	struct m2w_buf p;
	int rc, f, fb;
	size_t i;

	memset(&p, 0, sizeof(p));
	m2w_buf_add(&p, w->head.buf, w->head.len);
	if (w->nitems) {
		m2w_buf_adds(&p, ",\"items\":[");
		m2w_buf_add(&p, w->items.buf, w->items.len);
		m2w_buf_addc(&p, ']');
	}
	m2w_buf_addc(&p, '}');
	if (p.failed) {
		m2w_buf_release(&p);
		return M2W_ENOMEM;
	}
	rc = ig_finish(m->job, m->fingerprint, w->has_key ? w->key : NULL,
		       line, p.buf, p.len, NULL, r);
	if (rc == M2W_EINVAL && r->column[0]) {
		/* the payload key named by the check -> the header's column */
		f = index_of(m, r->column);
		if (f < 0 && m2w_job_field(m->job, r->column, NULL) &&
		    m2w_job_field(m->job, r->column, NULL)->type ==
			    M2W_FIELD_ITEMS)
			for (i = 0; i < m->nf && f < 0; i++)
				if (m->item[i])
					f = (int)i;
		if (f >= 0 && m->col[f] < 0 &&
		    (fb = index_of(m, m->f[f]->fallback)) >= 0)
			f = fb;
		if (f >= 0 && m->col[f] >= 0)
			snprintf(r->column, sizeof(r->column), "%s", m->name[f]);
	}
	return rc;
}

int m2w_ingest_csv_row(const struct m2w_ingest_map *m,
		       const char *const *fields, const size_t *lens, size_t n,
		       uint64_t line, struct m2w_ingest_row *r)
{
	struct ig_mrow w;
	size_t i;
	int rc;

	memset(&w, 0, sizeof(w));
	memset(r, 0, sizeof(*r));
	for (i = 0; i < n; i++) {
		const char *s = fields[i] ? fields[i] : "";
		size_t sn = fields[i] ? lens[i] : 0;

		ig_trim(&s, &sn);
		if (sn)
			break;
	}
	if (i == n)
		return M2W_OK;
	rc = ig_map_record(m, fields, lens, n, &w, r);
	if (rc == M2W_OK)
		rc = ig_mrow_finish(m, &w, line, r);
	ig_mrow_release(&w);
	return rc;
}

/* The name of the header column of the first item field (merging errors),
 * or of the parcel's last identity field. */
const char *ig_map_column(const struct m2w_ingest_map *m, int ident)
{
	size_t i;

	if (ident)
		return m->nident ? m->name[m->ident[m->nident - 1]] : "";
	for (i = 0; i < m->nf; i++)
		if (m->item[i])
			return m->name[i];
	return "";
}

/* "order and tracking number": the whats of the parcel's identity. */
const char *ig_map_ident(const struct m2w_ingest_map *m, char *buf,
			 size_t size)
{
	size_t k, o = 0;

	buf[0] = '\0';
	for (k = 0; k < m->nident && o < size; k++)
		o += (size_t)snprintf(buf + o, size - o, "%s%s",
				      k == 0 ? "" : k + 1 == m->nident ?
				      " and " : ", ", what(m->f[m->ident[k]]));
	return buf;
}
