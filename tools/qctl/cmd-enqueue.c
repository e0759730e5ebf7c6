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
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "m2worker/ingest.h"
#include "m2worker/jobs.h"
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

static int enqueue_exec(struct qctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'f' },
		{ "key-field", required_argument, NULL, 'k' },
		{ "delimiter", required_argument, NULL, 'D' },
		{ "batch", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct m2w_ingest_opts io;
	struct m2w_ingest_result res;
	struct out o;
	char errbuf[M2W_ERRBUF_SIZE] = "", fp[M2W_FINGERPRINT_HEX + 1];
	const char *file = NULL, *format = NULL;
	FILE *in = stdin;
	char *end;
	int ch, rc;

	m2w_ingest_opts_init(&io, NULL);
	while ((ch = getopt_long(argc, argv, "t:f:k:D:b:", opts, NULL)) != -1) {
		switch (ch) {
		case 't': io.type = optarg; break;
		case 'f': format = optarg; break;
		case 'k': io.key_field = optarg; break;
		case 'D':
			if (strcmp(optarg, "tab") == 0 || strcmp(optarg, "\\t") == 0 ||
			    strcmp(optarg, "\t") == 0)
				io.delimiter = '\t';
			else if (strcmp(optarg, ",") == 0 || strcmp(optarg, ";") == 0)
				io.delimiter = optarg[0];
			else {
				qctl_error("--delimiter must be ',', ';' or tab");
				return qctl_usage(&cmd_enqueue);
			}
			break;
		case 'b':
			errno = 0;
			io.batch = (size_t)strtoul(optarg, &end, 10);
			if (errno || *end || !io.batch || optarg[0] == '-') {
				qctl_error("bad --batch \"%s\"", optarg);
				return qctl_usage(&cmd_enqueue);
			}
			break;
		default: return qctl_usage(&cmd_enqueue);
		}
	}
	if (optind + 1 < argc || !io.type)
		return qctl_usage(&cmd_enqueue);
	if (!m2w_job_find(io.type)) {
		char names[128];

		qctl_error("unknown type \"%s\": %s", io.type,
			   m2w_job_names(0, names, sizeof(names)));
		return qctl_usage(&cmd_enqueue);
	}
	if (optind < argc && strcmp(argv[optind], "-") != 0)
		file = argv[optind];
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

		json_object_object_add(j, "accepted",
				       json_object_new_int64((int64_t)res.accepted));
		json_object_object_add(j, "duplicates",
				       json_object_new_int64((int64_t)res.duplicates));
		json_object_object_add(j, "rejected",
				       json_object_new_int64((int64_t)res.rejected));
		json_object_object_add(j, "rows",
				       json_object_new_int64((int64_t)res.rows));
		json_object_object_add(j, "tasks",
				       json_object_new_int64((int64_t)res.tasks));
		json_object_object_add(j, "committed_rows",
				       json_object_new_int64((int64_t)res.committed_rows));
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
	"enqueue",
	"--type T [--format csv|ndjson] [--key-field F] "
	"[--delimiter ,|;|tab] [--batch N] [FILE|-]",
	"Enqueues the rows of FILE (or stdin: - or nothing) as tasks of type T\n"
	"(tracking, stock, price, rest). CSV maps columns by the header's names\n"
	"(order_number/order_id/increment_id, tracking_number/tracking/awb,\n"
	"carrier_code/carrier, title/carrier_title, sku, qty/quantity,\n"
	"source_code, price, store_id); the delimiter (, ; tab) is detected\n"
	"unless given. NDJSON (default for *.ndjson, *.jsonl) has one payload\n"
	"object per line. The same tracking number of an order is one task\n"
	"however often it is sent; a FILE's stock and price rows are keyed by\n"
	"its content and line, so the same file twice adds nothing. --key-field\n"
	"F takes the idempotency key from column or key F. Rows are committed\n"
	"N at a time (default 1000). Prints accepted, duplicate and rejected\n"
	"counts, and FILE:LINE: column: reason for each rejected row on stderr.\n"
	"Exit 1 when a row was rejected or the store refused. Creates the store\n"
	"when there is none yet (a producer may run before the daemon).",
	2, enqueue_exec,
};
