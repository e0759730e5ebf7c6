/*
 * ingest_internal.h - what the ingest pipeline's modules share.
 *
 * Module map:
 *   ingest.c       rows into tasks (ig_finish: the job's load and keys),
 *                  the stream state and its two sinks, NDJSON, the
 *                  fingerprint
 *   ingest_map.c   a CSV header onto a job's field table, a record into
 *                  payload text (the map knows no type)
 *   ingest_csv.c   the CSV reader (libcsv), parcels merged
 *   ingest_body.c  a whole request body, all or none (the collector)
 *
 * A stream has one of two sinks (struct ig_sink): the store
 * (m2w_ingest_stream: tasks are batched and committed, rejected rows go to
 * on_error) or the collector (m2w_ingest_parse_body: every task is kept,
 * nothing is committed, rejected rows are listed in the struct m2w_body).
 * The CSV and NDJSON readers and the parcel merging are the same for both.
 * Not installed; not thread-shared (one stream, one thread).
 *
 * The layer: src/ingest/ sits on util, store and jobs (and libcsv,
 * json-c, OpenSSL for the fingerprint); it never names a job type, and
 * knows nothing of the daemon that calls it.
 */
#ifndef M2W_INGEST_INTERNAL_H
#define M2W_INGEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "m2worker/buf.h"
#include "m2worker/ingest.h"
#include "m2worker/jobs.h"

struct json_object;


/* [*s, *s + *n) without surrounding white space. */
void ig_trim(const char **s, size_t *n);

/* s[0..n) as a JSON string (quoted, escaped). */
void ig_json_str(struct m2w_buf *b, const char *s, size_t n);
/* Well-formed UTF-8 (no overlongs, no surrogates)? */
int ig_utf8_ok(const unsigned char *s, size_t n);
/* A decimal number of column `col` ([+-] digits [. digits] [e[+-]digits],
 * a dot for decimals) into b as JSON. 0, or -1 with why. */
int ig_add_number(struct m2w_buf *b, const char *col, const char *s, size_t n,
		  int integer, char *why, size_t len);
/* Rejects r: its payload freed, column and reason set. M2W_EINVAL. */
int ig_row_reject(struct m2w_ingest_row *r, const char *column,
		  const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

#define IG_FMAX 16               /* CSV fields of a type, items included */

/* A CSV header mapped onto a job's fields (ingest_map.c). */
struct m2w_ingest_map {
	const struct m2w_job *job;
	char *fingerprint;       /* or NULL */
	char *key_field;         /* normalised, or NULL */
	size_t ncols;            /* fields in the header */
	size_t nf;               /* the job's CSV fields, then its items' */
	const struct m2w_field *f[IG_FMAX];
	int item[IG_FMAX];       /* f[i] is an item field */
	int col[IG_FMAX];        /* header index of f[i], -1 = none */
	char name[IG_FMAX][M2W_INGEST_COLUMN_MAX + 1]; /* its header name */
	int key_col;             /* the key_field column, -1 = none */
	char key_name[M2W_INGEST_COLUMN_MAX + 1];
	int ident[IG_FMAX];      /* the fields of the idempotency template:
				  * a parcel's identity */
	size_t nident;
};

/* The header name of the first item column (ident 0), or of the parcel's
 * last identity column (ident 1); "" when none. */
const char *ig_map_column(const struct m2w_ingest_map *m, int ident);
/* "order and tracking number": what the parcel's identity is made of. */
const char *ig_map_ident(const struct m2w_ingest_map *m, char *buf,
			 size_t size);

/* A CSV row, mapped. */
struct ig_mrow {
	struct m2w_buf head;       /* `{"order":..,"track":..` (no items, no '}') */
	struct m2w_buf items;      /* `{"sku":..,"qty":..},{...}` */
	size_t nitems;
	char key[M2W_KEY_MAX + 1]; /* key_field value */
	int has_key;
	uint64_t parcel;         /* hash of the key, or of order and track */
};

void ig_mrow_release(struct ig_mrow *w);
/* Maps a non-empty record into w: M2W_OK, M2W_EINVAL (r: why), ENOMEM. */
int ig_map_record(const struct m2w_ingest_map *m, const char *const *fields,
		  const size_t *lens, size_t n, struct ig_mrow *w,
		  struct m2w_ingest_row *r);
/* w's payload, checked and keyed, into r (as m2w_ingest_csv_row). */
int ig_mrow_finish(const struct m2w_ingest_map *m, const struct ig_mrow *w,
		   uint64_t line, struct m2w_ingest_row *r);
/* payload (malloc'd, now r's) through the job's load (or, when `o` is
 * given, the same object parsed already: it is checked, not parsed again)
 * and keys; idempotency key from keyval, else the job's, else
 * type:fp:line. */
int ig_finish(const struct m2w_job *job, const char *fp, const char *keyval,
	      uint64_t line, char *payload, size_t len, struct json_object *o,
	      struct m2w_ingest_row *r);
/* Strict JSON text s[0..n) (any value; white space around it allowed), or
 * NULL with why: "not valid JSON: ..." (at_byte: "not valid JSON at byte
 * N: ..."). */
struct json_object *ig_parse_json(const char *s, size_t n, int at_byte,
				  char *why, size_t len);
/* A JSON value as compact text (no escaped slashes), malloc'd; *len its
 * length. NULL when out of memory. */
char *ig_json_text(struct json_object *o, size_t *len);

/* A task waiting for its batch's commit (or, collecting, for the end). */
struct ig_task {
	const char *type;        /* a job's name (static) */
	char *payload;
	size_t len;
	char *idem, *group, *source;
	int supersede;
	int64_t not_before;
	uint64_t row;            /* its (first) row, 1-based */
	uint64_t line;           /* where that row starts; 0: no lines (JSON) */
	uint64_t nrows;          /* rows in it (merged tracking rows) */
};

struct ig;

/*
 * Where a stream's tasks and rejected rows go: the store (committed every
 * `batch` tasks, with the file's progress record; rows to on_error) or a
 * collector (tasks kept for the caller's one all-or-none commit, rows
 * listed in the struct m2w_body; commit NULL). A broker message takes
 * the collector, like an HTTP body.
 */
struct ig_sink {
	int (*commit)(struct ig *g, uint64_t settled, uint64_t line);
	void (*reject)(struct ig *g, uint64_t line, const char *column,
		       const char *reason, const char *row);
};

/* One stream. */
struct ig {
	const struct ig_sink *sink;
	struct m2w_queue *q;
	const struct m2w_ingest_opts *o;
	struct m2w_ingest_result *res;
	m2w_ingest_error_fn on_error;
	void *arg;
	char *errbuf;
	const struct m2w_job *job; /* NULL: collecting JSON items of any type */
	const char *source;
	size_t batch;
	struct ig_task *t;       /* batch: t[0..n) of cap */
	size_t n, cap;
	struct m2w_new_task *nt;
	int rc;                  /* set: the stream stops with it */
	uint64_t last_line;      /* NDJSON: line of the last row */
	/* the open parcel: adjacent tracking rows with items, merged */
	struct ig_mrow pend;
	int has_pend;
	uint64_t pend_row, pend_line, pend_rows;
	/* every parcel opened in this stream (hash, first line): a row of a
	 * closed one met again further down is refused, not a duplicate */
	struct ig_seen { uint64_t h, line; } *seen;
	size_t nseen, capseen;
	struct m2w_file_info base; /* o->progress as it was at the start */
	/* collecting (m2w_ingest_parse_body) */
	struct m2w_body *body;   /* rejected rows are listed here */
	uint64_t rows_max;       /* 0 = no limit */
	int csv_header;          /* the CSV header was mapped */
};

/* Notes that a parcel (w->parcel: its key, or order and track) opens at
 * `line`: 0 the first time, 1 when it opened before (*first: where), -1
 * out of memory. */
int ig_parcel_seen(struct ig *g, const struct ig_mrow *w, uint64_t line,
		   uint64_t *first);

/* A stream that collects into `body` (o->type may be NULL: JSON items
 * name their own type). */
int ig_init_collect(struct ig *g, const struct m2w_ingest_opts *o,
		    struct m2w_ingest_result *res, struct m2w_body *body,
		    uint64_t rows_max, char *errbuf);
void ig_release(struct ig *g);
/* The next row: 0 to handle it, 1 when skip_rows passes over it, -1 when
 * the stream stops (more than rows_max rows). */
int ig_next_row(struct ig *g);
/* A rejected row (the current one, g->res->rows): to on_error, or listed
 * in the body. */
void ig_reject(struct ig *g, uint64_t line, const char *column,
	       const char *reason, const char *row);
/* Lists a rejected row of a body (collecting). */
void ig_body_error(struct ig *g, uint64_t row, uint64_t line,
		   const char *column, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 5, 6)))
#endif
	;
/* A body-level failure "line N: ..." / "SOURCE:N: ..." into errbuf. */
int ig_fail_at(struct ig *g, int rc, uint64_t line, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;
int ig_commit(struct ig *g, uint64_t settled, uint64_t line);
/* Takes r's payload and keys as a task of `type` (NULL: the stream's) of
 * `nrows` rows from `row` (starting at `line`), without committing. */
int ig_add(struct ig *g, const char *type, struct m2w_ingest_row *r,
	   uint64_t row, uint64_t line, uint64_t nrows, int64_t not_before);
/* ig_add, then a full batch is committed, after which `settled` rows
 * (ending at settled_line) are in. */
int ig_push(struct ig *g, struct m2w_ingest_row *r, uint64_t row,
	    uint64_t line, uint64_t nrows, uint64_t settled,
	    uint64_t settled_line);
/* The open parcel into the batch; `settled` rows end at `line`. */
int ig_flush_pend(struct ig *g, const struct m2w_ingest_map *m,
		  uint64_t settled, uint64_t line);

/* The CSV stream (ingest_csv.c): from a file, or from memory. */
int ig_csv_run(struct ig *g, FILE *in);
int ig_csv_mem(struct ig *g, const char *p, size_t n);
/* The NDJSON stream (ingest.c): from a file, or from memory. */
int ig_ndjson_mem(struct ig *g, const char *p, size_t n);

/* A body's JSON item, an envelope {"type","payload","key","not_before"}
 * (ingest_body.c); line 0 when the body has no lines (JSON). */
void ig_body_item(struct ig *g, struct json_object *v, uint64_t row,
		  uint64_t line);

#endif
