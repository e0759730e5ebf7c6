/*
 * cmd-delete.c - "qctl delete" (tasks by id, or dead ones by a selection:
 * m2w_queue_delete_dead, the same call and the same selection as requeue
 * --dead) and "qctl purge" (finished tasks by age; their idempotency keys
 * go too).
 */
#include "config.h"

#include <string.h>

#include "qctl.h"

static int purge(struct qctl *c, int state, int64_t age)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	size_t count;
	int rc;

	if ((rc = m2w_queue_purge(c->q, state, c->now - age, &count, errbuf)))
		return qctl_fail(rc, errbuf);
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "deleted", json_object_new_int64((int64_t)count));
		json_object_object_add(o, "state",
				       json_object_new_string(m2w_state_name(state)));
		qctl_print_json(o);
	} else {
		printf("deleted %zu %s task%s\n", count, m2w_state_name(state),
		       count == 1 ? "" : "s");
	}
	return EXIT_OK;
}

/* --older-than as ms into *age; 0 when missing or bad (said so). */
static int age_arg(const struct qctl_args *a, int64_t *age)
{
	const char *s = qctl_args_get(a, "older-than");

	if (!s)
		return 0;
	if ((*age = qctl_parse_age(s)) < 0) {
		qctl_error("bad age \"%s\" (e.g. 90s, 15m, 2h, 7d)", s);
		return 0;
	}
	return 1;
}

static int delete_one(struct qctl *c, const struct qctl_args *a,
		      uint64_t id, char *errbuf)
{
	int rc = m2w_queue_delete(c->q, id, qctl_args_has(a, "force") != 0,
				  errbuf);

	if (!rc && !c->json)
		printf("deleted task %llu\n", (unsigned long long)id);
	return rc;
}

/* delete --dead: the dead tasks of the selection, or how many with
 * --dry-run. Every dead task only with --all: a slip of the keyboard
 * should not empty the dead letters. */
static int delete_dead(struct qctl *c, const struct qctl_args *a)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	struct m2w_requeue_opts sel;
	size_t count = 0;
	int64_t age;
	int rc;

	memset(&sel, 0, sizeof(sel));
	sel.type = qctl_args_get(a, "type");
	sel.grep = qctl_args_get(a, "grep");
	sel.error = qctl_args_get(a, "error");
	sel.dry_run = qctl_args_has(a, "dry-run") != 0;
	if (qctl_args_get(a, "older-than")) {
		if (!age_arg(a, &age))
			return EXIT_USAGE;
		/* 0 would be "any": an age past the epoch keeps all */
		sel.before_ms = c->now - age > 0 ? c->now - age : 1;
	}
	if (!sel.before_ms && !sel.type && !sel.grep && !sel.error &&
	    !qctl_args_has(a, "all")) {
		qctl_error("delete --dead takes --older-than, --type, --grep or "
			   "--error; --all deletes every dead task");
		return EXIT_USAGE;
	}
	if ((rc = m2w_queue_delete_dead(c->q, &sel, &count, errbuf)))
		return qctl_fail(rc, errbuf);
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, sel.dry_run ? "would_delete" : "deleted",
				       json_object_new_int64((int64_t)count));
		json_object_object_add(o, "state", json_object_new_string("dead"));
		json_object_object_add(o, "dry_run",
				       json_object_new_boolean(sel.dry_run));
		qctl_print_json(o);
	} else {
		printf("%s %zu dead task%s\n",
		       sel.dry_run ? "would delete" : "deleted", count,
		       count == 1 ? "" : "s");
	}
	return EXIT_OK;
}

static int delete_exec(struct qctl *c, const struct qctl_args *a)
{
	int sel = qctl_args_get(a, "older-than") || qctl_args_get(a, "type") ||
		  qctl_args_get(a, "grep") || qctl_args_get(a, "error") ||
		  qctl_args_has(a, "dry-run") || qctl_args_has(a, "all");

	/* either ids, or --dead with its selection: never both, never
	 * neither */
	if (qctl_args_has(a, "dead")) {
		if (a->argc > 0 || qctl_args_has(a, "force"))
			return qctl_usage(&cmd_delete);
		return delete_dead(c, a);
	}
	if (sel || a->argc == 0)
		return qctl_usage(&cmd_delete);
	return qctl_foreach_id(c, a, delete_one, "deleted_ids");
}

const struct qctl_cmd cmd_delete = {
	.name = "delete",
	.flags = {
		{ "force", 'f', NULL, 0 },
		{ "dead", 'D', NULL, 0 },
		{ "older-than", 'o', "AGE", 0 },
		{ "type", 't', "T", 0 },
		{ "grep", 'g', "TEXT", 0 },
		{ "error", 'e', "TEXT", 0 },
		{ "dry-run", 'n', NULL, 0 },
		{ "all", 'A', NULL, 0 },
	},
	.usage = "ID... [--force] | --dead [--older-than AGE] [--type T] "
		 "[--grep TEXT] [--error TEXT] [--all] [--dry-run]",
	.max_args = QCTL_MANY,
	.help =
	"Deletes tasks with their history and idempotency keys. A leased task\n"
	"(a worker is on it) is kept unless --force. With --dead, deletes the\n"
	"dead tasks requeue --dead would take with the same flags: that died\n"
	"more than AGE ago (90s, 15m, 2h, 7d), of type T, whose last error\n"
	"contains TEXT (--grep) or is exactly TEXT (--error, a group of qctl\n"
	"errors). At least one of these, or --all for every dead task.\n"
	"--dry-run counts what would go.",
	.needs_store = 1,
	.exec = delete_exec,
};

static int purge_exec(struct qctl *c, const struct qctl_args *a)
{
	int64_t age;
	int done = qctl_args_has(a, "done");
	int superseded = qctl_args_has(a, "superseded");

	if (!done && !superseded)
		return qctl_usage(&cmd_purge);
	if (!age_arg(a, &age))
		return EXIT_USAGE;
	/* both: the later one, as ever */
	return purge(c, done > superseded ? M2W_DONE : M2W_SUPERSEDED, age);
}

const struct qctl_cmd cmd_purge = {
	.name = "purge",
	.flags = {
		{ "done", 'd', NULL, 0 },
		{ "superseded", 's', NULL, 0 },
		{ "older-than", 'o', "AGE", 1 },
	},
	.usage = "--done|--superseded --older-than AGE",
	.help =
	"Deletes done (or superseded) tasks that ended more than AGE ago, with\n"
	"their history. Their idempotency keys expire with them: the same key\n"
	"enqueued again is new work.",
	.needs_store = 1,
	.exec = purge_exec,
};
