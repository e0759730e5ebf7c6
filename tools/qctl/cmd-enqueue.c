/*
 * cmd-enqueue.c - "qctl enqueue": rows of a file or stdin (CSV or NDJSON)
 * into the store, through the same library path as the directory watcher
 * and the HTTP push (ingest.h): same mapping, keys, checks and errors.
 *
 * A FILE is fingerprinted first (SHA-256 of its content): stock and price
 * rows are keyed by fingerprint + line, so enqueueing the same file again
 * adds nothing. stdin has no fingerprint.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "m2worker/ingest.h"
#include "m2worker/jobs.h"
#include "m2worker/parse.h"
#include "qctl.h"

#define LIST_MAX 1000  /* errors and ids kept for --json */

struct out {
	const char *label;     /* FILE or "stdin" */
	json_object *errors;   /* --json */
	json_object *ids;
	size_t nerrors, nids;
};

static void on_error(void *arg, uint64_t line, const char *column,
		     const char *reason, const char *row)
{
	struct out *o = arg;

	(void)row;
	fprintf(stderr, "%s:%llu: %s%s%s\n", o->label,
		(unsigned long long)line, column ? column : "",
		column ? ": " : "", reason);
	if (o->errors && o->nerrors++ < LIST_MAX) {
		json_object *e = json_object_new_object();

		json_object_object_add(e, "line",
				       json_object_new_int64((int64_t)line));
		json_object_object_add(e, "column", column
				       ? json_object_new_string(column) : NULL);
		json_object_object_add(e, "reason",
				       json_object_new_string(reason));
		json_object_array_add(o->errors, e);
	}
}

static void on_task(void *arg, uint64_t line, uint64_t id, int duplicate)
{
	struct out *o = arg;

	(void)line;
	if (o->ids && !duplicate && o->nids++ < LIST_MAX)
		json_object_array_add(o->ids, json_object_new_int64((int64_t)id));
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int enqueue_exec(struct qctl *c, const struct qctl_args *a)
{
	const char *delim = qctl_args_get(a, "delimiter");
	const char *batch = qctl_args_get(a, "batch");
	const char *format = qctl_args_get(a, "format");
	const char *file = NULL;
	struct m2w_ingest_opts io;
	struct m2w_ingest_result res;
	struct out o;
	char errbuf[M2W_ERRBUF_SIZE] = "", fp[M2W_FINGERPRINT_HEX + 1];
	FILE *in = stdin;
	char *end;
	int rc;

	m2w_ingest_opts_init(&io, qctl_args_get(a, "type"));
	io.key_field = qctl_args_get(a, "key-field");
	if (delim && m2w_parse_delimiter(delim, &io.delimiter)) {
		qctl_error("--delimiter must be ',', ';' or tab");
		return qctl_usage(&cmd_enqueue);
	}
	if (batch) {
		errno = 0;
		io.batch = (size_t)strtoul(batch, &end, 10);
		if (errno || *end || !io.batch || batch[0] == '-') {
			qctl_error("bad --batch \"%s\"", batch);
			return qctl_usage(&cmd_enqueue);
		}
	}
	if (!m2w_job_find(io.type)) {
		char names[128];

		qctl_error("unknown type \"%s\": %s", io.type,
			   m2w_job_names(0, names, sizeof(names)));
		return qctl_usage(&cmd_enqueue);
	}
	if (a->argc > 0 && strcmp(a->argv[0], "-") != 0)
		file = a->argv[0];
	if (!format)
		io.format = file && (ends_with(file, ".ndjson") ||
				     ends_with(file, ".jsonl"))
				    ? M2W_INGEST_NDJSON : M2W_INGEST_CSV;
	else if (strcmp(format, "csv") == 0)
		io.format = M2W_INGEST_CSV;
	else if (strcmp(format, "ndjson") == 0 || strcmp(format, "jsonl") == 0)
		io.format = M2W_INGEST_NDJSON;
	else {
		qctl_error("--format must be csv or ndjson");
		return qctl_usage(&cmd_enqueue);
	}
	memset(&o, 0, sizeof(o));
	o.label = file ? file : "stdin";
	io.source = o.label;
	if (file) {
		if (!(in = fopen(file, "rb"))) {
			qctl_error("%s: %s", file, strerror(errno));
			return EXIT_PROBLEM;
		}
		if (m2w_ingest_fingerprint(in, fp, errbuf) != M2W_OK) {
			qctl_error("%s: %s", file, errbuf);
			fclose(in);
			return EXIT_PROBLEM;
		}
		io.fingerprint = fp;
	}
	if (c->json) {
		o.errors = json_object_new_array();
		o.ids = json_object_new_array();
	}
	io.on_task = on_task;
	rc = m2w_ingest_stream(c->q, in, &io, &res, on_error, &o, errbuf);
	if (file)
		fclose(in);
	if (rc)
		qctl_error("%s", errbuf[0] ? errbuf : m2w_strerror(rc));
	if (c->json) {
		json_object *j = json_object_new_object();

		const struct {
			const char *name;
			uint64_t n;
		} counts[] = {
			{ "accepted", res.accepted },
			{ "duplicates", res.duplicates },
			{ "rejected", res.rejected },
			{ "rows", res.rows },
			{ "tasks", res.tasks },
			{ "committed_rows", res.committed_rows },
		};
		size_t i;

		for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
			json_object_object_add(j, counts[i].name,
				json_object_new_int64((int64_t)counts[i].n));
		json_object_object_add(j, "errors", o.errors);
		json_object_object_add(j, "ids", o.ids);
		json_object_object_add(j, "fingerprint", file
				       ? json_object_new_string(fp) : NULL);
		json_object_object_add(j, "error", rc
				       ? json_object_new_string(errbuf[0] ? errbuf
								: m2w_strerror(rc))
				       : NULL);
		qctl_print_json(j);
	} else {
		printf("accepted %llu, duplicates %llu, rejected %llu\n",
		       (unsigned long long)res.accepted,
		       (unsigned long long)res.duplicates,
		       (unsigned long long)res.rejected);
	}
	return rc || res.rejected ? EXIT_PROBLEM : EXIT_OK;
}

const struct qctl_cmd cmd_enqueue = {
	.name = "enqueue",
	.flags = {
		{ "type", 't', "T", 1 },
		{ "format", 'f', "csv|ndjson", 0 },
		{ "key-field", 'k', "F", 0 },
		{ "delimiter", 'D', ",|;|tab", 0 },
		{ "batch", 'b', "N", 0 },
	},
	.args = "[FILE|-]",
	.max_args = 1,
	.help =
	"Enqueues the rows of FILE (or stdin: - or nothing) as tasks of type T.\n"
	"CSV maps columns by the header's names (order_number, tracking_number,\n"
	"sku, qty ...: qctl types lists the types and their names); the\n"
	"delimiter (, ; tab) is detected unless given. NDJSON (default for\n"
	"*.ndjson, *.jsonl) has one payload object per line. The same\n"
	"tracking number of an order is one task however often it is sent; a\n"
	"FILE's stock and price rows are keyed by its content and line, so the\n"
	"same file twice adds nothing. --key-field F takes the idempotency key\n"
	"from column or key F. Rows are committed N at a time (default 1000).\n"
	"Prints accepted, duplicate and rejected counts, and FILE:LINE: column:\n"
	"reason for each rejected row on stderr. Exit 1 when a row was rejected\n"
	"or the store refused. Creates the store when there is none yet (a\n"
	"producer may run before the daemon).",
	.needs_store = 2,
	.exec = enqueue_exec,
};
