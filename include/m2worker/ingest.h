/*
 * ingest.h - rows in (CSV, NDJSON, JSON), validated tasks out: one pipeline
 * of sources, one mapper and validator, two sinks.
 *
 * Sources: a file or stdin (`qctl enqueue`, the CSV directory watcher), an
 * HTTP request body (m2w_ingest_parse_body), and a broker message the same
 * way as a body. Every source produces rows; every row goes through the
 * same CSV map or JSON reader and the job's own load and keys, so the same
 * input maps to the same payloads, the same keys and the same errors
 * whatever its way in. Sinks: the store, in committed batches with the
 * file's progress record (m2w_ingest_stream), or a collector that keeps
 * every task for the caller's one all-or-none commit (a body: HTTP, a
 * broker message). One options struct (struct m2w_ingest_opts) serves
 * both.
 *
 * CSV (RFC 4180; libcsv, streamed in 64 KiB chunks, so a file larger than
 * memory works). A UTF-8 byte-order mark is stripped. The delimiter is `,`
 * `;` or tab: given, or detected as the most frequent of the three outside
 * quotes in the header line (a tie or none: `,`). Quoted fields may hold
 * delimiters, quotes ("") and line breaks; lines end in LF, CRLF or CR; the
 * last line needs no line end. The first non-empty record is the header:
 * its names are trimmed, lowercased, and spaces and '-' become '_'
 * ("Tracking Number" = tracking_number). Columns map by name (any order;
 * unknown columns are ignored) onto the fields of the job's table
 * (jobs.h; `qctl types` lists them): each field names its header names,
 * whether it is required, and whether it is a number. The map knows no
 * type. What the table says today:
 *
 *   tracking  order, track and carrier (or title: a title alone is used as
 *             the carrier too, the job maps free-text names) required;
 *             items[].sku + items[].qty (both columns, or neither) ship
 *             only those items. Adjacent rows that agree on everything but
 *             their item are one task with all their items (a 3PL writes
 *             one line per item of a parcel). A row with an item whose
 *             identity (the fields of the idempotency key: order and
 *             track, or the key column) opened a parcel earlier in the
 *             same input, with other rows between, is rejected ("the rows
 *             of one parcel must be next to each other"): as a task of its
 *             own it would be a duplicate and its items lost.
 *   stock     sku, qty required; source, status optional.
 *   price     sku, price required; store_id optional.
 *   rest      NDJSON and JSON only (its table names no CSV input).
 *
 * A required column missing from the header, or named twice, is one error
 * for the whole input (M2W_EINVAL, "header has no order column: expected
 * one of order_number, order_id, increment_id, order"), and nothing is
 * enqueued. Values are trimmed before they are checked and before they are
 * sent; numbers are decimal with a dot ("12,50" is refused, not guessed);
 * text must be UTF-8. A record whose fields are all empty is skipped like
 * an empty line and is no row. A row with fewer fields than the header, or
 * more that are not empty, is rejected. Quoting is strict (a bare quote
 * inside an unquoted field is an error, like Go's encoding/csv): the bad
 * row is rejected and parsing goes on at the next line. A record longer
 * than M2W_INGEST_RECORD_MAX (a quote never closed) is rejected the same way.
 *
 * NDJSON: one JSON object per non-empty line, in the job's payload shape
 * (jobs.h); string values are trimmed (inside items too for a type with
 * items; for others, such as `rest`, only the top level).
 *
 * Every row is then loaded by the job (m2w_job_load: its field table and
 * check; the reason is the row's) and keyed (m2w_job_keys), parsed once.
 * A type's `inputs` say which formats may carry it. Keys:
 *   - key_field F given: idempotency key "<type>:<value of F>" (a column,
 *     or a JSON key that is dropped from the payload when the job does not
 *     know it).
 *   - else the job's idempotency template when it has one (tracking:
 *     "tracking:{order}:{track}", so the same parcel in two files is one
 *     task).
 *   - else (stock, price, rest) "<type>:<fingerprint>:<line>" when the
 *     input's fingerprint is known (a file re-read is all duplicates),
 *     else none: their values are no identity. Ordering keys
 *     (stock:SKU:SOURCE, price:SKU:STORE, superseding) come from the job,
 *     so the newest level of a SKU wins.
 * Each task's source is "<source>:<line>", the line where its row starts.
 *
 * Batches: good rows are enqueued with m2w_queue_enqueue (with
 * opts.progress: m2w_queue_enqueue_file and the file's record), `batch` tasks per
 * committed (fsync'd) transaction, in input order. A batch is all or none;
 * rows were checked first, so a batch fails only when the store does (full
 * store or disk): the stream then stops with that error, and
 * result.committed_rows says how many rows are settled - resume with
 * skip_rows = committed_rows. Nothing is ever skipped silently: a row is
 * accepted, a duplicate, rejected (with a reason, to on_error), or not yet
 * committed when the store failed.
 *
 * Threads: a stream is one call on one thread; several streams may run at
 * once on one queue (the store merges their commits). m2w_ingest_map_*,
 * m2w_ingest_*_row and m2w_ingest_fingerprint are pure and thread-safe.
 *
 * Memory: strings in the options are borrowed for the call (a map copies
 * what it keeps); a row's payload is malloc'd, freed by
 * m2w_ingest_row_release. Errors: enum m2w_err, errbuf NULL or
 * M2W_ERRBUF_SIZE bytes.
 */
#ifndef M2WORKER_INGEST_H
#define M2WORKER_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "m2worker/error.h"
#include "m2worker/jobs.h"
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M2W_INGEST_BATCH 1000            /* default rows per commit */
#define M2W_INGEST_CHUNK (64 * 1024)     /* bytes read at a time */
#define M2W_INGEST_RECORD_MAX (1u << 20) /* bytes of one CSV record or line */
#define M2W_INGEST_COLUMN_MAX 63         /* bytes of a column name kept */
#define M2W_INGEST_REASON_MAX 256        /* bytes of a reason, with NUL */
#define M2W_FINGERPRINT_HEX 64           /* SHA-256 in hex, without NUL */

/* What an input is written in: files and stdin are CSV or NDJSON, an
 * HTTP body any of the three (m2w_ingest_parse_body). */
enum m2w_ingest_format {
	M2W_INGEST_CSV = 0,
	M2W_INGEST_NDJSON = 1,
	M2W_INGEST_JSON = 2       /* one item or an array: bodies only */
};

/*
 * The options of every input: a stream into the store (m2w_ingest_stream)
 * reads all but rows_max; a body (m2w_ingest_parse_body) reads format,
 * type, key_field, delimiter, columns, source and rows_max, and refuses
 * the store-side ones (fingerprint, skip_rows, progress, on_task).
 */
struct m2w_ingest_opts {
	const char *type;         /* job type (m2w_job_find); required for a
				   * stream and for CSV; a body without one
				   * holds envelopes that name their type */
	int format;               /* enum m2w_ingest_format */
	char delimiter;           /* CSV: ',' ';' '\t', or 0 = detect */
	const char *source;       /* label: file name, "stdin", "http"; NULL =
				   * "stdin" (a body: "http") */
	uint64_t rows_max;        /* a body: more rows are refused; 0 = none */
	const char *fingerprint;  /* hex content hash of the input, or NULL */
	const char *key_field;    /* column / JSON key holding the idempotency
				   * key, or NULL */
	size_t batch;             /* tasks per committed batch; 0 = 1000 */
	uint64_t skip_rows;       /* rows already settled (resume) */
	/* Optional: called after each commit for each task of it, in input
	 * order, with the stream's `arg`. A duplicate gets the existing id. */
	void (*on_task)(void *arg, uint64_t line, uint64_t id, int duplicate);
	/* CSV: extra header aliases, "FIELD=Header Name, FIELD=Other", FIELD
	 * one of the fields or aliases of the table above (order, track,
	 * carrier, title, sku, qty, source, status, price, store_id). Names
	 * are normalised like the header's. NULL = the table only. */
	const char *columns;
	/* Optional: the input's progress record (m2w_queue_file_get, or a new
	 * one with fingerprint, name and first_ms set). Each batch is then
	 * committed with m2w_queue_enqueue_file together with the record:
	 * rows = the rows settled by that commit, counters = what the record
	 * held at the start plus this stream's. Which rows of a batch are
	 * duplicates is known only after its commit, so the stored record
	 * counts them as accepted until the next commit corrects it; *progress
	 * itself is exact after every commit. finished_ms is left alone (the
	 * caller writes the last record). Borrowed; updated in place. */
	struct m2w_file_info *progress;
};

/* Sets the defaults: CSV, detect the delimiter, batch 1000, rest 0. */
void m2w_ingest_opts_init(struct m2w_ingest_opts *o, const char *type);

struct m2w_ingest_result {
	uint64_t rows;            /* data rows read, skip_rows included (the
				   * header and empty lines are no rows) */
	uint64_t skipped;         /* of them, passed over by skip_rows */
	uint64_t accepted;        /* rows now in a new task */
	uint64_t duplicates;      /* rows whose task was already there */
	uint64_t rejected;        /* rows refused (each went to on_error) */
	uint64_t tasks;           /* new tasks (merged tracking rows make one) */
	uint64_t committed_rows;  /* rows settled by the last commit: resume
				   * point for skip_rows */
	uint64_t committed_line;  /* input line of the last of them, 0 if none */
	char delimiter;           /* the CSV delimiter used */
};

/*
 * A rejected row: `line` (1-based, where the row starts), `column` (the
 * header's name or the JSON key; NULL when the row as a whole is bad),
 * `reason` ("qty \"abc\" is not a number"), `row` (the row as text, for a
 * report). All borrowed for the call.
 */
typedef void (*m2w_ingest_error_fn)(void *arg, uint64_t line,
				    const char *column, const char *reason,
				    const char *row);

/*
 * Reads `in` to its end in opts->format and enqueues its rows into `q`.
 * `result` (required) is filled as it goes; `on_error` (may be NULL) gets
 * each rejected row. Returns
 *   M2W_OK       the input was read to its end; rows may have been
 *                rejected (result->rejected).
 *   M2W_EINVAL   bad options, unknown type, or a header that will not do
 *                ("FILE:1: header has no ..."): nothing enqueued.
 *   M2W_EIO      reading failed (committed_rows says what is in).
 *   M2W_ENOMEM
 *   any error of m2w_queue_enqueue (M2W_EFULL, M2W_ENOSPC ...): the stream
 *                stopped there; rows up to result->committed_rows are in.
 */
int m2w_ingest_stream(struct m2w_queue *q, FILE *in,
		      const struct m2w_ingest_opts *opts,
		      struct m2w_ingest_result *result,
		      m2w_ingest_error_fn on_error, void *arg, char *errbuf);

/* ------------------------------------------------------- one row at a time */

/* One row made into a task (or why not). */
struct m2w_ingest_row {
	char *payload;                    /* malloc'd JSON, NULL if none */
	size_t payload_len;
	char idem[M2W_KEY_MAX + 1];       /* idempotency key, "" = none */
	char group[M2W_KEY_MAX + 1];      /* ordering key, "" = none */
	int supersede;
	/* when rejected */
	char column[M2W_INGEST_COLUMN_MAX + 1]; /* "" = the row as a whole */
	char reason[M2W_INGEST_REASON_MAX];
};

/* Frees r->payload; r may be reused. */
void m2w_ingest_row_release(struct m2w_ingest_row *r);

/*
 * A JSON object (NDJSON line, HTTP body element) into a task: trimmed,
 * key_field applied, check()ed, keyed. `line` numbers the fingerprint
 * key of stock/price. Returns M2W_OK (r->payload set; an empty or
 * all-blank text gives M2W_OK with r->payload NULL: skip it), M2W_EINVAL
 * (rejected: r->column, r->reason) or M2W_ENOMEM. Release r either way.
 */
int m2w_ingest_json_row(const struct m2w_ingest_opts *opts, const char *json,
			size_t len, uint64_t line, struct m2w_ingest_row *r);

/* A CSV header, mapped to a job type's payload. */
struct m2w_ingest_map;

/*
 * Maps header `names[0..n)` for opts->type (and opts->key_field,
 * opts->fingerprint, which are copied). M2W_EINVAL with errbuf naming the
 * missing or doubled column; M2W_ENOMEM.
 */
int m2w_ingest_map_new(const struct m2w_ingest_opts *opts,
		       const char *const *names, size_t n,
		       struct m2w_ingest_map **out, char *errbuf);
void m2w_ingest_map_free(struct m2w_ingest_map *m);

/* Checks an opts.columns text for a type: M2W_OK, or M2W_EINVAL naming
 * the entry. */
int m2w_ingest_columns_check(const char *type, const char *columns,
			     char *errbuf);

/*
 * A CSV record (`fields[i]` of `lens[i]` bytes, not NUL-terminated) into a
 * task, as m2w_ingest_json_row. A record whose fields are all empty gives
 * M2W_OK with r->payload NULL (skip it).
 */
int m2w_ingest_csv_row(const struct m2w_ingest_map *m,
		       const char *const *fields, const size_t *lens, size_t n,
		       uint64_t line, struct m2w_ingest_row *r);

/*
 * SHA-256 of what is left of `f` (read to its end), as lowercase hex into
 * hex[M2W_FINGERPRINT_HEX + 1]; then `f` is put back where it was (so it
 * must be seekable: M2W_EINVAL otherwise). M2W_EIO on a read error.
 */
int m2w_ingest_fingerprint(FILE *f, char *hex, char *errbuf);

/* The delimiter of a CSV text from its first line: the most frequent of
 * , ; tab outside quotes; ',' on a tie or when there is none. Pure. */
char m2w_ingest_detect_delimiter(const char *p, size_t n);

/* --------------------------------------------------- a whole body (HTTP) */

/*
 * m2w_ingest_parse_body: a request body in memory into tasks, all or none,
 * without enqueuing anything (the caller enqueues out->tasks in one
 * m2w_queue_enqueue, so a push is one all-or-none commit).
 *
 *   M2W_INGEST_JSON    one item or an array of items (strict JSON, a UTF-8
 *                    byte-order mark skipped). Rows are the items, counted
 *                    from 1; they have no line (0).
 *   M2W_INGEST_NDJSON  one item per line (LF; CR and white space around it
 *                    trimmed); empty lines are no rows. The NDJSON reader
 *                    of m2w_ingest_stream: a line longer than
 *                    M2W_INGEST_RECORD_MAX is a rejected row.
 *   M2W_INGEST_CSV     opts->type required; read, mapped and merged (parcels)
 *                    exactly as a CSV file (see above); rows are the data
 *                    rows, lines the body's lines.
 *
 * An item is, with opts->type NULL, an envelope {"type": T, "payload":
 * {...}, "key": K, "not_before": MS} (type, payload required; any other
 * key is an error of its own; key, a non-empty string or an integer, makes
 * the idempotency key "T:K"; not_before >= 0, unix ms); with opts->type,
 * a bare payload object of that type (opts->key_field as in a stream).
 * Every payload then goes through m2w_ingest_json_row: the job's check()
 * and keys(), as files.
 *
 * Tasks: type (a static job name), payload, source "<opts->source>:<line>"
 * ("http:12"; the row where there are no lines), idem_key, group_key and
 * supersede from the job or the key, not_before_ms; the other fields 0.
 * at[i] says where tasks[i] came from.
 *
 * Returns
 *   M2W_OK      every row is good: out->tasks[0..ntasks) (possibly none:
 *               "[]", a CSV header alone), out->rows rows.
 *   M2W_EINVAL  nothing to enqueue (ntasks 0), and out->error (never
 *               empty) says why. Either rows were rejected: out->rejected
 *               errors in all (an envelope may have several, one per
 *               unknown key), the first M2W_BODY_ERRORS_MAX of them in
 *               out->errors, in body order; out->error "2 of 5 rows
 *               rejected". Or the body as a whole is refused (not JSON, a
 *               CSV header that will not do, no header, bad options, more
 *               than opts->rows_max rows: out->too_many): out->rejected 0
 *               and no errors listed.
 *   M2W_ENOMEM  out->error "out of memory"; nothing returned.
 *
 * Memory: `body` and everything in `opts` are borrowed for the call. What
 * is returned in *out (tasks with their payload, source and key strings,
 * at, errors) belongs to *out and is freed by m2w_body_free, whatever the
 * return code; *out may then be reused. Do not free single parts.
 *
 * Threads: no globals and no shared state; any number of calls may run at
 * once on different threads (the HTTP server calls it from every
 * connection's thread), each with its own *out.
 */
#define M2W_BODY_ERRORS_MAX 1000   /* row errors listed at most */
#define M2W_BODY_REASON_MAX (M2W_INGEST_REASON_MAX + 64)

/* A rejected row. */
struct m2w_body_error {
	uint64_t row;             /* 1-based row (item, NDJSON line with
				   * content, CSV data row) */
	uint64_t line;            /* its first line; 0 = none (JSON) */
	char field[M2W_INGEST_COLUMN_MAX + 1]; /* column or key; "" = the
				   * row as a whole */
	char reason[M2W_BODY_REASON_MAX];
};

/* Where a task came from. */
struct m2w_body_at {
	uint64_t row, line;       /* as in struct m2w_body_error */
	uint64_t nrows;           /* rows merged into it (CSV parcels) */
};

struct m2w_body {
	struct m2w_new_task *tasks;   /* [ntasks], body order */
	struct m2w_body_at *at;       /* [ntasks] */
	size_t ntasks;
	uint64_t rows;                /* rows read */
	struct m2w_body_error *errors; /* [nerrors] */
	size_t nerrors;               /* listed, <= M2W_BODY_ERRORS_MAX */
	uint64_t rejected;            /* errors in all, >= nerrors */
	int too_many;                 /* refused: more than rows_max rows */
	char delimiter;               /* CSV: the delimiter used */
	char error[M2W_ERRBUF_SIZE];  /* why, when not M2W_OK */
};

int m2w_ingest_parse_body(const char *body, size_t len,
			  const struct m2w_ingest_opts *opts,
			  struct m2w_body *out);

/* Frees everything m2w_ingest_parse_body returned in b and zeroes it. NULL
 * or a zeroed struct: nothing. */
void m2w_body_free(struct m2w_body *b);

#ifdef __cplusplus
}
#endif
#endif
