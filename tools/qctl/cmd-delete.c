/*
 * cmd-delete.c - "qctl delete" (tasks by id, or dead ones by age) and
 * "qctl purge" (finished tasks by age; their idempotency keys go too).
 */
#include "config.h"

#include <getopt.h>
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

static int64_t age_arg(const char *s)
{
	int64_t age = qctl_parse_age(s);

	if (age < 0)
		qctl_error("bad age \"%s\" (e.g. 90s, 15m, 2h, 7d)", s);
	return age;
}

static int delete_exec(struct qctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "dead", no_argument, NULL, 'D' },
		{ "older-than", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	char errbuf[M2W_ERRBUF_SIZE];
	json_object *gone;
	int64_t age = -1;
	int ch, i, rc, force = 0, dead = 0, status = EXIT_OK;
	uint64_t id;

	while ((ch = getopt_long(argc, argv, "fDo:", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': force = 1; break;
		case 'D': dead = 1; break;
		case 'o':
			if ((age = age_arg(optarg)) < 0)
				return EXIT_USAGE;
			break;
		default: return qctl_usage(&cmd_delete);
		}
	}
	if (dead) {
		if (age < 0 || optind != argc)
			return qctl_usage(&cmd_delete);
		return purge(c, M2W_DEAD, age);
	}
	if (age >= 0 || optind == argc)
		return qctl_usage(&cmd_delete);
	gone = json_object_new_array();
	for (i = optind; i < argc; i++) {
		if (!qctl_parse_id(argv[i], &id)) {
			qctl_error("bad task id \"%s\"", argv[i]);
			json_object_put(gone);
			return EXIT_USAGE;
		}
		errbuf[0] = '\0';
		if ((rc = m2w_queue_delete(c->q, id, force, errbuf))) {
			status = qctl_fail(rc, errbuf);
			continue;
		}
		json_object_array_add(gone, json_object_new_int64((int64_t)id));
		if (!c->json)
			printf("deleted task %llu\n", (unsigned long long)id);
	}
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "deleted_ids", gone);
		qctl_print_json(o);
	} else {
		json_object_put(gone);
	}
	return status;
}

const struct qctl_cmd cmd_delete = {
	"delete", "ID... [--force] | --dead --older-than AGE",
	"Deletes tasks with their history and idempotency keys. A leased task\n"
	"(a worker is on it) is kept unless --force. With --dead, deletes the\n"
	"dead tasks that died more than AGE ago (90s, 15m, 2h, 7d).",
	1, delete_exec,
};

static int purge_exec(struct qctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "done", no_argument, NULL, 'd' },
		{ "superseded", no_argument, NULL, 's' },
		{ "older-than", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t age = -1;
	int ch, state = -1;

	while ((ch = getopt_long(argc, argv, "dso:", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': state = M2W_DONE; break;
		case 's': state = M2W_SUPERSEDED; break;
		case 'o':
			if ((age = age_arg(optarg)) < 0)
				return EXIT_USAGE;
			break;
		default: return qctl_usage(&cmd_purge);
		}
	}
	if (state < 0 || age < 0 || optind != argc)
		return qctl_usage(&cmd_purge);
	return purge(c, state, age);
}

const struct qctl_cmd cmd_purge = {
	"purge", "--done|--superseded --older-than AGE",
	"Deletes done (or superseded) tasks that ended more than AGE ago, with\n"
	"their history. Their idempotency keys expire with them: the same key\n"
	"enqueued again is new work.",
	1, purge_exec,
};
