/*
 * cmd-requeue.c - "qctl requeue" (dead tasks back to ready) and
 * "qctl retry-now" (a scheduled task runs now).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "qctl.h"

/* The arguments as task ids (at least one); NULL at a bad one (said
 * so), or out of memory. */
static uint64_t *parse_ids(const struct qctl_args *a)
{
	uint64_t *ids = calloc((size_t)a->argc, sizeof(*ids));
	int i;

	for (i = 0; ids && i < a->argc; i++)
		if (!qctl_arg_id(a, i, &ids[i])) {
			free(ids);
			return NULL;
		}
	return ids;
}

static int requeue_exec(struct qctl *c, const struct qctl_args *a)
{
	struct m2w_requeue_opts o;
	char errbuf[M2W_ERRBUF_SIZE] = "";
	uint64_t *ids = NULL, *moved = NULL;
	size_t n = 0, count = 0, i;
	int rc, dead = qctl_args_has(a, "dead") != 0;

	memset(&o, 0, sizeof(o));
	o.type = qctl_args_get(a, "type");
	o.grep = qctl_args_get(a, "grep");
	o.error = qctl_args_get(a, "error");
	o.keep_attempts = qctl_args_has(a, "keep-attempts") != 0;
	o.dry_run = qctl_args_has(a, "dry-run") != 0;
	o.force = qctl_args_has(a, "force") != 0;
	/* either ids, or --dead with filters: never both, never neither */
	if (dead == (a->argc > 0) || (!dead && (o.type || o.grep || o.error)))
		return qctl_usage(&cmd_requeue);
	if (!dead) {
		if (!(ids = parse_ids(a)))
			return EXIT_USAGE;
		n = (size_t)a->argc;
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
	.name = "requeue",
	.flags = {
		{ "dead", 'D', NULL, 0 },
		{ "type", 't', "T", 0 },
		{ "grep", 'g', "TEXT", 0 },
		{ "error", 'e', "TEXT", 0 },
		{ "keep-attempts", 'k', NULL, 0 },
		{ "dry-run", 'n', NULL, 0 },
		{ "force", 'f', NULL, 0 },
	},
	.usage = "ID... [--force] | --dead [--type T] [--grep TEXT] "
		 "[--error TEXT] [--keep-attempts] [--dry-run]",
	.max_args = QCTL_MANY,
	.help =
	"Moves dead tasks back to ready: the tasks named, or with --dead every\n"
	"dead task, of type T, whose last error contains TEXT (--grep) or is\n"
	"exactly TEXT (--error: a group of qctl errors, whose --json has the\n"
	"whole text; '' for none). Their attempts start again from 0 unless\n"
	"--keep-attempts. --dry-run lists what would move. With --force,\n"
	"named tasks that are done, superseded or scheduled run again too; a\n"
	"leased or waiting task never moves.\n"
	"A superseding task (stock, price) whose group has a newer task ends\n"
	"superseded instead: an old level never overwrites a newer one.",
	.needs_store = 1,
	.exec = requeue_exec,
};

static int retry_now_one(struct qctl *c, const struct qctl_args *a,
			 uint64_t id, char *errbuf)
{
	int rc = m2w_queue_retry_now(c->q, id, errbuf);

	(void)a;
	if (!rc && !c->json)
		printf("task %llu runs now\n", (unsigned long long)id);
	return rc;
}

static int retry_now_exec(struct qctl *c, const struct qctl_args *a)
{
	return qctl_foreach_id(c, a, retry_now_one, "ready_now");
}

const struct qctl_cmd cmd_retry_now = {
	.name = "retry-now",
	.args = "ID...",
	.min_args = 1,
	.max_args = QCTL_MANY,
	.help = "A scheduled task (waiting for its backoff) becomes ready now.",
	.needs_store = 1,
	.exec = retry_now_exec,
};
