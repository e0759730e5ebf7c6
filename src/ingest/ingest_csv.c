/*
 * ingest_csv.c - the CSV stream: libcsv fed in 64 KiB chunks, one record
 * at a time to the mapper (ingest.c), so memory stays bounded by the
 * longest record (M2W_INGEST_RECORD_MAX) and the batch, never by the file.
 * The same reader takes a body from memory (ig_csv_mem, for
 * m2w_ingest_parse_body): files, stdin and HTTP read, map and merge CSV
 * with this one code.
 *
 * Line numbers: libcsv reports none, so the input is cut into physical
 * lines (ending at LF, CRLF or a lone CR) and fed to csv_parse one line
 * (or one chunk of a line) at a time. A record starts on the first line
 * with content after the previous record ended; libcsv skips blank and
 * space-only lines the same way, so the two never disagree. A record
 * spanning lines (quoted line breaks) keeps the line it started on.
 *
 * Errors: libcsv runs in strict mode (RFC 4180 quoting). On a parse error
 * the record is rejected with its line, the parser is started afresh and
 * reading goes on at the next line, so one bad row costs only itself.
 * Old libcsv: only csv_init/parse/fini/free/set_delim are used;
 * CSV_STRICT_FINI (an unclosed quote at the end) when the header has it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csv.h>

#include "ingest_internal.h"


struct cst {
	struct ig *g;
	struct csv_parser p;
	int p_ok;
	int popts;
	unsigned char delim;
	uint64_t line;          /* physical line being fed, 1-based */
	int after_cr;           /* the last chunk ended in CR */
	int rec_open;           /* a record has begun and not ended */
	uint64_t rec_start;     /* its first line */
	size_t rec_bytes;       /* bytes fed since it began */
	int discard;            /* skip to the end of the line (after an error) */
	/* fields of the record: NUL-separated in buf */
	struct m2w_buf buf;
	size_t *off, *len;
	const char **ptr;
	size_t nf, fcap;
	int oom;
	struct m2w_ingest_map *map;
	uint64_t last_line;     /* line of the last row handled */
};

/* -------------------------------------------------------------- fields */

static void fields_clear(struct cst *s)
{
	s->nf = 0;
	m2w_buf_reset(&s->buf);
}

static void cb_field(void *data, size_t n, void *arg)
{
	struct cst *s = arg;

	if (s->nf == s->fcap) {
		size_t cap = s->fcap ? 2 * s->fcap : 32;
		size_t *off = realloc(s->off, cap * sizeof(*off));
		size_t *len = off ? realloc(s->len, cap * sizeof(*len)) : NULL;
		const char **ptr = len ? realloc(s->ptr, cap * sizeof(*ptr)) : NULL;

		if (off)
			s->off = off;
		if (len)
			s->len = len;
		if (ptr)
			s->ptr = (const char **)ptr;
		if (!ptr) {
			s->oom = 1;
			return;
		}
		s->fcap = cap;
	}
	s->off[s->nf] = s->buf.len;
	s->len[s->nf] = data ? n : 0;
	if (data && n)
		m2w_buf_add(&s->buf, data, n);
	m2w_buf_add(&s->buf, "", 1); /* NUL after each field */
	if (s->buf.failed)
		s->oom = 1;
	s->nf++;
}

/* The record as CSV text again, for error reports. */
static void row_text(const struct cst *s, struct m2w_buf *out)
{
	size_t i, k;

	for (i = 0; i < s->nf; i++) {
		const char *f = s->ptr[i];
		size_t n = s->len[i];
		int q = n && (f[0] == ' ' || f[n - 1] == ' ');

		for (k = 0; k < n && !q; k++)
			q = f[k] == (char)s->delim || f[k] == '"' ||
			    f[k] == '\n' || f[k] == '\r';
		if (i)
			m2w_buf_addc(out, (char)s->delim);
		if (!q) {
			m2w_buf_add(out, f, n);
			continue;
		}
		m2w_buf_addc(out, '"');
		for (k = 0; k < n; k++) {
			if (f[k] == '"')
				m2w_buf_addc(out, '"');
			m2w_buf_addc(out, f[k]);
		}
		m2w_buf_addc(out, '"');
	}
}

static void reject_row(struct cst *s, uint64_t line, const char *column,
		       const char *reason)
{
	struct m2w_buf t;

	memset(&t, 0, sizeof(t));
	row_text(s, &t);
	ig_reject(s->g, line, column, reason, t.buf ? t.buf : "");
	m2w_buf_release(&t);
}

/* ------------------------------------------------------------- records */

static void header(struct cst *s)
{
	struct ig *g = s->g;
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc;

	rc = m2w_ingest_map_new(g->o, s->ptr, s->nf, &s->map, eb);
	if (rc == M2W_ENOMEM)
		g->rc = m2w_fail(g->errbuf, rc, "out of memory");
	else if (rc != M2W_OK)
		ig_fail_at(g, rc, s->rec_start, "%s", eb);
	else
		g->csv_header = 1;
}

static int same_parcel(const struct ig_mrow *a, const struct ig_mrow *b)
{
	return a->head.len == b->head.len &&
	       memcmp(a->head.buf, b->head.buf, a->head.len) == 0 &&
	       a->has_key == b->has_key &&
	       (!a->has_key || strcmp(a->key, b->key) == 0);
}

static void data_row(struct cst *s)
{
	struct ig *g = s->g;
	struct m2w_ingest_row r;
	struct ig_mrow w;
	char why[M2W_INGEST_REASON_MAX];
	uint64_t first;
	int seen;
	uint64_t line = s->rec_start, row;
	int rc;

	if ((rc = ig_next_row(g)) < 0)
		return;
	row = g->res->rows;
	if (rc > 0) {
		s->last_line = line;
		return;
	}
	memset(&w, 0, sizeof(w));
	rc = ig_map_record(s->map, s->ptr, s->len, s->nf, &w, &r);
	if (rc == M2W_OK)
		rc = ig_mrow_finish(s->map, &w, line, &r);
	if (rc == M2W_EINVAL) {
		reject_row(s, line, r.column, r.reason);
	} else if (rc != M2W_OK) {
		g->rc = m2w_fail(g->errbuf, rc, "out of memory");
	} else if (w.nitems) {
		/* one item of a parcel: merge with the open one, or open it */
		if (g->has_pend && same_parcel(&g->pend, &w)) {
			if (g->pend.nitems >= g->job->items_max) {
				snprintf(why, sizeof(why), "more than %u items "
					 "in one parcel", g->job->items_max);
				reject_row(s, line, ig_map_column(s->map, 0),
					   why);
			} else {
				m2w_buf_addc(&g->pend.items, ',');
				m2w_buf_add(&g->pend.items, w.items.buf, w.items.len);
				g->pend.nitems++;
				g->pend_rows++;
				if (g->pend.items.failed)
					g->rc = m2w_fail(g->errbuf, M2W_ENOMEM,
							 "out of memory");
			}
		} else if ((seen = ig_parcel_seen(g, &w, line, &first)) < 0) {
			g->rc = m2w_fail(g->errbuf, M2W_ENOMEM, "out of memory");
		} else if (seen) {
			/* merged with the one at `first` it would have been;
			 * as a task of its own it would be its duplicate */
			char ident[96];

			snprintf(why, sizeof(why), "this parcel (the same "
				 "%s) began at line %" PRIu64 " and other rows "
				 "came between: the rows of one parcel must be "
				 "next to each other",
				 ig_map_ident(s->map, ident, sizeof(ident)),
				 first);
			reject_row(s, line, ig_map_column(s->map, 1), why);
		} else if (ig_flush_pend(g, s->map, row - 1, s->last_line) ==
			   M2W_OK) {
			g->pend = w;
			memset(&w, 0, sizeof(w));
			g->has_pend = 1;
			g->pend_row = row;
			g->pend_line = line;
			g->pend_rows = 1;
		}
	} else if (ig_flush_pend(g, s->map, row - 1, s->last_line) == M2W_OK) {
		ig_push(g, &r, row, line, 1, row, line);
	}
	m2w_ingest_row_release(&r);
	ig_mrow_release(&w);
	s->last_line = line;
}

static void cb_record(int c, void *arg)
{
	struct cst *s = arg;
	size_t i;

	(void)c;
	s->rec_open = 0;
	if (s->g->rc)
		return;
	if (s->oom) {
		s->g->rc = m2w_fail(s->g->errbuf, M2W_ENOMEM, "out of memory");
		return;
	}
	for (i = 0; i < s->nf; i++)
		s->ptr[i] = s->buf.buf + s->off[i];
	for (i = 0; i < s->nf; i++) {
		const char *f = s->ptr[i];
		size_t n = s->len[i];

		ig_trim(&f, &n);
		if (n)
			break;
	}
	if (i < s->nf) { /* else every field is empty: like an empty line */
		if (!s->map)
			header(s);
		else
			data_row(s);
	}
	fields_clear(s);
}

/* A record the parser gave up on: a row, rejected. */
static void bad_record(struct cst *s, const char *fmt, uint64_t arg)
{
	struct ig *g = s->g;
	char why[M2W_INGEST_REASON_MAX];
	size_t i;
	int rc;

	s->rec_open = 0;
	snprintf(why, sizeof(why), fmt, (unsigned long long)arg);
	if (!s->map) {
		ig_fail_at(g, M2W_EINVAL, s->rec_start, "header: %s", why);
		return;
	}
	if ((rc = ig_next_row(g)) < 0)
		return;
	if (rc == 0) {
		for (i = 0; i < s->nf; i++)
			s->ptr[i] = s->buf.buf + s->off[i];
		reject_row(s, s->rec_start, NULL, why);
	}
	s->last_line = s->rec_start;
	fields_clear(s);
}

/* ------------------------------------------------------------- parsing */

static int parser_start(struct cst *s)
{
	if (s->p_ok)
		csv_free(&s->p);
	s->p_ok = 0;
	if (csv_init(&s->p, (unsigned char)s->popts) != 0)
		return -1;
	csv_set_delim(&s->p, s->delim);
	s->p_ok = 1;
	return 0;
}

static int has_content(const char *p, size_t n, unsigned char delim)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == ' ' || c == '\r' || c == '\n' ||
		    (c == '\t' && delim != '\t'))
			continue;
		return 1;
	}
	return 0;
}

/* One physical line, or a piece of one (ends_line: its line ends here). */
static void seg(struct cst *s, const char *p, size_t n, int ends_line)
{
	size_t got;

	if (s->discard) {
		if (ends_line) {
			s->discard = 0;
			s->line++;
		}
		return;
	}
	if (!s->rec_open && has_content(p, n, s->delim)) {
		s->rec_open = 1;
		s->rec_start = s->line;
		s->rec_bytes = 0;
	}
	if (s->rec_open)
		s->rec_bytes += n;
	got = csv_parse(&s->p, p, n, cb_field, cb_record, s);
	if (s->g->rc)
		return;
	if (got != n || (s->rec_open && s->rec_bytes > M2W_INGEST_RECORD_MAX)) {
		if (got != n)
			bad_record(s, "bad quoting on line %llu: a quote inside "
				   "an unquoted field, or text after a closing "
				   "quote (quote the field, double its quotes)",
				   s->line);
		else
			bad_record(s, "row is longer than %llu bytes (a quote "
				   "not closed?)", M2W_INGEST_RECORD_MAX);
		if (parser_start(s)) {
			s->g->rc = m2w_fail(s->g->errbuf, M2W_ENOMEM,
					    "out of memory");
			return;
		}
		if (!ends_line)
			s->discard = 1;
	}
	if (ends_line)
		s->line++;
}

/* Cuts a chunk into lines for seg(). */
static void feed(struct cst *s, const char *buf, size_t n)
{
	size_t i = 0, start;

	while (i < n && !s->g->rc) {
		if (s->after_cr) {
			s->after_cr = 0;
			if (buf[i] == '\n') { /* the LF of a CRLF cut by the chunk */
				seg(s, buf + i, 1, 0);
				i++;
				continue;
			}
		}
		start = i;
		while (i < n && buf[i] != '\n' &&
		       !(buf[i] == '\r' && (i + 1 >= n || buf[i + 1] != '\n')))
			i++;
		if (i < n) {
			if (buf[i] == '\r')
				s->after_cr = i + 1 >= n;
			i++;
			seg(s, buf + start, i - start, 1);
		} else {
			seg(s, buf + start, i - start, 0);
		}
	}
}

/* Is the header line (up to a line end outside quotes) all in s[0..n)? */
static int header_complete(const char *p, size_t n)
{
	size_t i;
	int q = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == '"')
			q = !q;
		else if (!q && (p[i] == '\n' || p[i] == '\r'))
			return 1;
	}
	return 0;
}

/* The most frequent of , ; tab outside quotes in the first line: ',' on
 * a tie or when there is none. */
char m2w_ingest_detect_delimiter(const char *p, size_t n)
{
	size_t i, comma = 0, semi = 0, tab = 0;
	int q = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == '"')
			q = !q;
		else if (!q && (p[i] == '\n' || p[i] == '\r'))
			break;
		else if (!q && p[i] == ',')
			comma++;
		else if (!q && p[i] == ';')
			semi++;
		else if (!q && p[i] == '\t')
			tab++;
	}
	if (semi > comma && semi >= tab)
		return ';';
	if (tab > comma && tab > semi)
		return '\t';
	return ',';
}

/* Checks the options, then starts the parser on the first bytes of the
 * input (at least up to the end of the header line, or all of it): a
 * byte-order mark is stripped, the delimiter detected. */
static int csv_begin(struct cst *s, struct ig *g, const char *pre, size_t n)
{
	size_t off = 0;
	char d = g->o->delimiter;

	memset(s, 0, sizeof(*s));
	s->g = g;
	s->line = 1;
	if (d && d != ',' && d != ';' && d != '\t')
		return g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "delimiter "
					"must be ',', ';' or tab");
	if (!g->job)
		return g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "CSV needs a "
					"job type");
	if (!(g->job->inputs & M2W_IN_CSV))
		return g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "type %s takes "
					"NDJSON, not CSV", g->o->type);
	s->popts = CSV_STRICT;
#ifdef CSV_STRICT_FINI
	s->popts |= CSV_STRICT_FINI;
#endif
	if (!pre)                /* an empty input */
		pre = "", n = 0;
	if (n >= 3 && memcmp(pre, "\xef\xbb\xbf", 3) == 0)
		off = 3;
	s->delim = (unsigned char)(d ? d : m2w_ingest_detect_delimiter(
						   pre + off, n - off));
	g->res->delimiter = (char)s->delim;
	if (parser_start(s))
		return g->rc = m2w_fail(g->errbuf, M2W_ENOMEM, "out of memory");
	if (n > off)
		feed(s, pre + off, n - off);
	return g->rc;
}

/* The end of the input: the last record, the open parcel, the commit. */
static void csv_end(struct cst *s)
{
	struct ig *g = s->g;

	if (!g->rc && csv_fini(&s->p, cb_field, cb_record, s) != 0 &&
	    !g->rc && s->rec_open)
		bad_record(s, g->body
			   ? "a quoted field opened on line %llu is not "
			     "closed at the end of the body"
			   : "a quoted field opened on line %llu is not "
			     "closed at the end of the input", s->rec_start);
	if (!g->rc && s->map &&
	    ig_flush_pend(g, s->map, g->res->rows, s->last_line) == M2W_OK)
		ig_commit(g, g->res->rows, s->last_line);
	else if (!g->rc && !s->map && g->body)
		g->rc = m2w_fail(g->errbuf, M2W_EINVAL, "the CSV body has no "
				 "header");
	else if (!g->rc && !s->map)
		g->res->committed_rows = g->res->rows;
}

static void csv_done(struct cst *s)
{
	if (s->p_ok)
		csv_free(&s->p);
	m2w_buf_release(&s->buf);
	free(s->off);
	free(s->len);
	free(s->ptr);
	m2w_ingest_map_free(s->map);
}

int ig_csv_run(struct ig *g, FILE *in)
{
	struct cst s;
	struct m2w_buf pre;
	char *buf;
	size_t n;

	memset(&s, 0, sizeof(s));
	memset(&pre, 0, sizeof(pre));
	if (!(buf = malloc(M2W_INGEST_CHUNK)))
		return g->rc = m2w_fail(g->errbuf, M2W_ENOMEM, "out of memory");
	/* the start: up to the end of the header line, to detect the
	 * delimiter and strip a byte-order mark */
	while ((n = fread(buf, 1, M2W_INGEST_CHUNK, in)) > 0) {
		m2w_buf_add(&pre, buf, n);
		if (g->o->delimiter || pre.failed ||
		    header_complete(pre.buf, pre.len) ||
		    pre.len > M2W_INGEST_RECORD_MAX)
			break;
	}
	if (pre.failed) {
		g->rc = m2w_fail(g->errbuf, M2W_ENOMEM, "out of memory");
		goto out;
	}
	if (csv_begin(&s, g, pre.buf ? pre.buf : "", pre.len))
		goto out;
	m2w_buf_release(&pre);
	while (!g->rc && !feof(in) && !ferror(in) &&
	       (n = fread(buf, 1, M2W_INGEST_CHUNK, in)) > 0)
		feed(&s, buf, n);
	if (!g->rc && ferror(in)) {
		g->rc = m2w_fail(g->errbuf, M2W_EIO, "%s: read error at line "
				 "%llu: %s", g->source,
				 (unsigned long long)s.line, strerror(errno));
		goto out;
	}
	csv_end(&s);
out:
	m2w_buf_release(&pre);
	csv_done(&s);
	free(buf);
	return g->rc;
}

int ig_csv_mem(struct ig *g, const char *p, size_t n)
{
	struct cst s;

	if (csv_begin(&s, g, p, n) == M2W_OK)
		csv_end(&s);
	csv_done(&s);
	return g->rc;
}
