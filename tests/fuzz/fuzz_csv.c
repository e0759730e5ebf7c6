/*
 * fuzz_csv.c - libFuzzer target: CSV (and NDJSON) parsing and mapping
 * through m2w_ingest_stream, the one entry point of `qctl enqueue` and the
 * directory watcher (include/m2worker/ingest.h, src/ingest*.c).
 *
 * Input: byte 0 picks the options, the rest is the file.
 *   bits 0-1  job type: tracking, stock, price, tracking (NDJSON: rest)
 *   bits 2-3  delimiter: detect, ',', ';', tab
 *   bit 4     extra header aliases (opts.columns)
 *   bit 5     key_field = "ref" (idempotency key from a column)
 *   bit 6     batches of 2 rows, and a fingerprint taken from the input
 *             with m2w_ingest_fingerprint (keys "type:fp:line")
 *   bit 7     NDJSON instead of CSV
 * The stream needs a store: one is made per process on /dev/shm (else
 * TMPDIR) with nosync, so commits cost no fsync, and made anew every few
 * thousand tasks so that it stays small (duplicates across inputs then
 * stay rare; they are counted either way).
 *
 * Checks, beyond the sanitizers: every rejected row comes with a line
 * >= 1 and a NUL-terminated reason shorter than M2W_INGEST_REASON_MAX; a
 * stream that ends M2W_OK settled every row it read (rows = skipped +
 * accepted + duplicates + rejected, committed_rows = rows) and told
 * on_task about every task; M2W_EINVAL (a header that will not do)
 * enqueued nothing; the delimiter used is one of , ; tab.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "m2worker/error.h"
#include "m2worker/ingest.h"
#include "m2worker/queue.h"

#define CHECK(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "fuzz_csv: %s:%d: %s\n", __FILE__, \
				__LINE__, #c); \
			abort(); \
		} \
	} while (0)

#define RENEW_TASKS 20000   /* tasks in the store before it is made anew */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[4096];
static struct m2w_queue *q;
static uint64_t stored;

static void store_drop(void)
{
	char cmd[4200];

	m2w_queue_close(q);
	q = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_csv: cannot remove %s\n", dir);
}

static void store_open(void)
{
	struct m2w_queue_opts o;
	char errbuf[M2W_ERRBUF_SIZE];

	memset(&o, 0, sizeof(o));
	o.path = dir;
	o.create = 1;
	o.nosync = 1;
	o.map_initial = 8u << 20;
	if (m2w_queue_open(&o, &q, errbuf) != M2W_OK) {
		fprintf(stderr, "fuzz_csv: store %s: %s\n", dir, errbuf);
		exit(1);
	}
	stored = 0;
}

static void cleanup(void)
{
	if (dir[0])
		store_drop();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;

	(void)argc;
	(void)argv;
	if (!base)
		base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR")
							    : "/tmp";
	snprintf(dir, sizeof(dir), "%s/fuzz_csv.XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("fuzz_csv: mkdtemp");
		exit(1);
	}
	store_open();
	atexit(cleanup);
	return 0;
}

struct seen {
	uint64_t errors, new_tasks, dup_tasks;
};

static void on_error(void *arg, uint64_t line, const char *column,
		     const char *reason, const char *row)
{
	struct seen *s = arg;

	s->errors++;
	CHECK(line >= 1);
	CHECK(reason != NULL && reason[0] != '\0');
	CHECK(strlen(reason) < M2W_INGEST_REASON_MAX);
	CHECK(row != NULL);
	(void)strlen(row);
	if (column)
		CHECK(column[0] != '\0' &&
		      strlen(column) <= M2W_INGEST_COLUMN_MAX);
}

static void on_task(void *arg, uint64_t line, uint64_t id, int duplicate)
{
	struct seen *s = arg;

	CHECK(line >= 1 && id >= 1);
	if (duplicate)
		s->dup_tasks++;
	else
		s->new_tasks++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const csv_types[] = { "tracking", "stock", "price",
						 "tracking" };
	static const char *const json_types[] = { "tracking", "stock",
						  "price", "rest" };
	static const char delims[] = { 0, ',', ';', '\t' };
	struct m2w_ingest_opts o;
	struct m2w_ingest_result res;
	struct seen s;
	char errbuf[M2W_ERRBUF_SIZE], fp[M2W_FINGERPRINT_HEX + 1];
	unsigned flags;
	char d;
	FILE *in;
	int rc;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;

	d = m2w_ingest_detect_delimiter((const char *)data, size);
	CHECK(d == ',' || d == ';' || d == '\t');

	/* fmemopen of 0 bytes fails on older glibc: give it one byte and
	 * read none of it */
	in = fmemopen((void *)(size ? data : (const uint8_t *)"\n"),
		      size ? size : 1, "r");
	CHECK(in != NULL);
	if (!size)
		(void)fgetc(in);

	m2w_ingest_opts_init(&o, (flags & 0x80 ? json_types
					       : csv_types)[flags & 3]);
	o.format = flags & 0x80 ? M2W_INGEST_NDJSON : M2W_INGEST_CSV;
	o.delimiter = delims[(flags >> 2) & 3];
	o.source = "fuzz.csv";
	if (flags & 0x10) {
		o.columns = "order=Auftrag, track=Sendung Nr, carrier=Versender,"
			    " sku=Artikel, qty=Menge, price=Preis, "
			    "source=Lager, store_id=Shop";
		CHECK(m2w_ingest_columns_check(o.type, o.columns, errbuf) ==
		      M2W_OK);
	}
	if (flags & 0x20)
		o.key_field = "ref";
	if (flags & 0x40) {
		o.batch = 2;
		CHECK(m2w_ingest_fingerprint(in, fp, errbuf) == M2W_OK);
		CHECK(strlen(fp) == M2W_FINGERPRINT_HEX);
		o.fingerprint = fp;
	}
	o.on_task = on_task;

	memset(&s, 0, sizeof(s));
	errbuf[0] = '\0';
	rc = m2w_ingest_stream(q, in, &o, &res, on_error, &s, errbuf);
	fclose(in);

	CHECK(s.errors == res.rejected);
	CHECK(s.new_tasks == res.tasks);
	CHECK(res.skipped == 0);
	if (rc == M2W_OK) {
		CHECK(res.rows == res.accepted + res.duplicates + res.rejected);
		CHECK(res.committed_rows == res.rows);
		CHECK(res.accepted >= res.tasks);
		if (o.format == M2W_INGEST_CSV)
			CHECK(res.delimiter == ',' || res.delimiter == ';' ||
			      res.delimiter == '\t');
	} else {
		/* a header or option problem: nothing enqueued; the store
		 * is in memory and never fails here */
		CHECK(rc == M2W_EINVAL);
		CHECK(errbuf[0] != '\0');
		CHECK(res.tasks == 0 && res.accepted == 0 &&
		      res.duplicates == 0);
	}

	stored += res.tasks;
	if (stored >= RENEW_TASKS) {
		store_drop();
		store_open();
	}
	return 0;
}
