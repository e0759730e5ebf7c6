/*
 * ingest_internal.h - what ingest.c and ingest_csv.c share: a string
 * buffer, the header map, a mapped CSV row (payload without its closing
 * brace, items apart so that rows can merge), and the stream state that
 * batches tasks. Not installed; not thread-shared (one stream, one thread).
 */
#ifndef M2W_INGEST_INTERNAL_H
#define M2W_INGEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "m2worker/ingest.h"
#include "m2worker/jobs.h"

/* A growing string; `oom` sticks after a failed allocation. */
struct ig_sb {
	char *s;
	size_t n, cap;
	int oom;
};

int ig_sb_grow(struct ig_sb *b, size_t more);
void ig_sb_add(struct ig_sb *b, const char *s, size_t n);
void ig_sb_adds(struct ig_sb *b, const char *s);
void ig_sb_addc(struct ig_sb *b, char c);
void ig_sb_clear(struct ig_sb *b);
void ig_sb_release(struct ig_sb *b);
void ig_sb_insert_brace(struct ig_sb *b);

/* [*s, *s + *n) without surrounding white space. */
void ig_trim(const char **s, size_t *n);
/* A header name: BOM and white space stripped, lowercase, runs of space,
 * tab and '-' as one '_'. */
void ig_name_norm(const char *s, size_t n, char *out, size_t size);

enum ig_kind { IK_TRACKING = 0, IK_STOCK, IK_PRICE, IK_REST };
/* enum ig_kind of a type name, or -1. */
int ig_kind(const char *type);

/* The fields a CSV column may map to. */
enum ig_field {
	IG_ORDER = 0, IG_TRACK, IG_CARRIER, IG_TITLE, IG_SKU, IG_QTY,
	IG_SOURCE, IG_STATUS, IG_PRICE, IG_STORE,
	IG_KEY,          /* the key_field column */
	IG_NFLD
};

struct m2w_ingest_map {
	const struct m2w_job *job;
	int kind;
	char type[M2W_TYPE_MAX + 1];
	char *fingerprint;       /* or NULL */
	char *key_field;         /* normalised, or NULL */
	size_t ncols;            /* fields in the header */
	int col[IG_NFLD];        /* header index of each field, -1 = none */
	char name[IG_NFLD][M2W_INGEST_COLUMN_MAX + 1]; /* its header name */
};

/* A CSV row, mapped. */
struct ig_mrow {
	struct ig_sb head;       /* `{"order":..,"track":..` (no items, no '}') */
	struct ig_sb items;      /* `{"sku":..,"qty":..},{...}` */
	size_t nitems;
	char key[M2W_KEY_MAX + 1]; /* key_field value */
	int has_key;
};

void ig_mrow_release(struct ig_mrow *w);
/* Maps a non-empty record into w: M2W_OK, M2W_EINVAL (r: why), ENOMEM. */
int ig_map_record(const struct m2w_ingest_map *m, const char *const *fields,
		  const size_t *lens, size_t n, struct ig_mrow *w,
		  struct m2w_ingest_row *r);
/* w's payload, checked and keyed, into r (as m2w_ingest_csv_row). */
int ig_mrow_finish(const struct m2w_ingest_map *m, const struct ig_mrow *w,
		   uint64_t line, struct m2w_ingest_row *r);
/* payload (malloc'd, now r's) through check() and keys(); idempotency key
 * from keyval, else the job's, else type:fp:line. */
int ig_finish(const struct m2w_job *job, const char *type, const char *fp,
	      const char *keyval, uint64_t line, char *payload, size_t len,
	      struct m2w_ingest_row *r);

/* A task waiting for its batch's commit. */
struct ig_task {
	char *payload;
	size_t len;
	char *idem, *group, *source;
	int supersede;
	uint64_t line;           /* where its (first) row starts */
	uint64_t nrows;          /* rows in it (merged tracking rows) */
};

/* One stream. */
struct ig {
	struct m2w_queue *q;
	const struct m2w_ingest_opts *o;
	struct m2w_ingest_result *res;
	m2w_ingest_error_fn on_error;
	void *arg;
	char *errbuf;
	const struct m2w_job *job;
	int kind;
	const char *source;
	size_t batch;
	struct ig_task *t;       /* batch: t[0..n) */
	size_t n;
	struct m2w_new_task *nt;
	int rc;                  /* set: the stream stops with it */
	uint64_t last_line;      /* NDJSON: line of the last row */
	/* the open parcel: adjacent tracking rows with items, merged */
	struct ig_mrow pend;
	int has_pend;
	uint64_t pend_line, pend_rows;
	struct m2w_file_info base; /* o->progress as it was at the start */
};

int ig_init(struct ig *g, struct m2w_queue *q, const struct m2w_ingest_opts *o,
	    struct m2w_ingest_result *res, m2w_ingest_error_fn on_error,
	    void *arg, char *errbuf);
void ig_release(struct ig *g);
void ig_reject(struct ig *g, uint64_t line, const char *column,
	       const char *reason, const char *row);
int ig_commit(struct ig *g, uint64_t settled, uint64_t line);
/* Takes r's payload as a task of `nrows` rows from `line`; a full batch
 * is committed, after which `settled` rows (ending at settled_line) are
 * in. */
int ig_push(struct ig *g, struct m2w_ingest_row *r, uint64_t line,
	    uint64_t nrows, uint64_t settled, uint64_t settled_line);
/* The open parcel into the batch; `settled` rows end at `line`. */
int ig_flush_pend(struct ig *g, const struct m2w_ingest_map *m,
		  uint64_t settled, uint64_t line);

/* The CSV stream (ingest_csv.c). */
int ig_csv_run(struct ig *g, FILE *in);

#endif
