/*
 * cmd-requeue.c - "qctl requeue" (dead tasks back to ready) and
 * "qctl retry-now" (a scheduled task runs now).
 */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "qctl.h"

/* Collects argv[optind..] as ids; 0 on a bad one. */
static int parse_ids(int argc, char **argv, uint64_t **ids, size_t *n)
{
	int i;

	*n = 0;
	*ids = calloc((size_t)(argc > optind ? argc - optind : 1), sizeof(**ids));
	if (!*ids)
		return 0;
	for (i = optind; i < argc; i++)
		if (!qctl_parse_id(argv[i], &(*ids)[(*n)++])) {
			qctl_error("bad task id \"%s\"", argv[i]);
			return 0;
		}
	return 1;
}

static int requeue_exec(struct qctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dead", no_argument, NULL, 'D' },
		{ "type", required_argument, NULL, 't' },
		{ "grep", required_argument, NULL, 'g' },
		{ "keep-attempts", no_argument, NULL, 'k' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct m2w_requeue_opts o;
	char errbuf[M2W_ERRBUF_SIZE] = "";
	uint64_t *ids = NULL, *moved = NULL;
	size_t n = 0, count = 0, i;
	int ch, rc, dead = 0;

	memset(&o, 0, sizeof(o));
	while ((ch = getopt_long(argc, argv, "Dt:g:knf", opts, NULL)) != -1) {
		switch (ch) {
		case 'D': dead = 1; break;
		case 't': o.type = optarg; break;
		case 'g': o.grep = optarg; break;
		case 'k': o.keep_attempts = 1; break;
		case 'n': o.dry_run = 1; break;
		case 'f': o.force = 1; break;
		default: return qctl_usage(&cmd_requeue);
		}
	}
	/* either ids, or --dead with filters: never both, never neither */
	if (dead == (optind < argc) || (!dead && (o.type || o.grep)))
		return qctl_usage(&cmd_requeue);
	if (!dead && !parse_ids(argc, argv, &ids, &n)) {
		free(ids);
		return EXIT_USAGE;
	}
	o.ids = ids;
	o.nids = n;
	rc = m2w_queue_requeue(c->q, &o, &count, &moved, errbuf);
	free(ids);
	if (rc)
		return qctl_fail(rc, errbuf);
	if (c->json) {
		json_object *obj = json_object_new_object();
		json_object *arr = json_object_new_array();

		for (i = 0; i < count; i++)
			json_object_array_add(arr, json_object_new_int64((int64_t)moved[i]));
		json_object_object_add(obj, o.dry_run ? "would_requeue" : "requeued", arr);
		json_object_object_add(obj, "count", json_object_new_int64((int64_t)count));
		json_object_object_add(obj, "dry_run", json_object_new_boolean(o.dry_run));
		qctl_print_json(obj);
	} else {
		printf("%s %zu task%s", o.dry_run ? "would requeue" : "requeued",
		       count, count == 1 ? "" : "s");
		for (i = 0; i < count && i < 50; i++)
			printf("%s%llu", i ? " " : ": ", (unsigned long long)moved[i]);
		printf("%s\n", count > 50 ? " ..." : "");
	}
	free(moved);
	return EXIT_OK;
}

const struct qctl_cmd cmd_requeue = {
	"requeue",
	"ID... [--force] | --dead [--type T] [--grep TEXT]  "
	"[--keep-attempts] [--dry-run]",
	"Moves dead tasks back to ready: the tasks named, or with --dead every\n"
	"dead task, of type T, whose last error contains TEXT. Their attempts\n"
	"start again from 0 unless --keep-attempts. --dry-run lists what would\n"
	"move. With --force, named tasks that are done, superseded or\n"
	"scheduled run again too; a leased or waiting task never moves.\n"
	"A superseding task (stock, price) whose group has a newer task ends\n"
	"superseded instead: an old level never overwrites a newer one.",
	1, requeue_exec,
};

static int retry_now_exec(struct qctl *c, int argc, char **argv)
{
	char errbuf[M2W_ERRBUF_SIZE];
	json_object *done = json_object_new_array();
	uint64_t id;
	int i, rc, status = EXIT_OK;

	if (argc < 2) {
		json_object_put(done);
		return qctl_usage(&cmd_retry_now);
	}
	for (i = 1; i < argc; i++) {
		if (!qctl_parse_id(argv[i], &id)) {
			qctl_error("bad task id \"%s\"", argv[i]);
			json_object_put(done);
			return EXIT_USAGE;
		}
		errbuf[0] = '\0';
		if ((rc = m2w_queue_retry_now(c->q, id, errbuf))) {
			status = qctl_fail(rc, errbuf);
			continue;
		}
		json_object_array_add(done, json_object_new_int64((int64_t)id));
		if (!c->json)
			printf("task %llu runs now\n", (unsigned long long)id);
	}
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "ready_now", done);
		qctl_print_json(o);
	} else {
		json_object_put(done);
	}
	return status;
}

const struct qctl_cmd cmd_retry_now = {
	"retry-now", "ID...",
	"A scheduled task (waiting for its backoff) becomes ready now.",
	1, retry_now_exec,
};
