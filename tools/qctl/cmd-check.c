/*
 * cmd-check.c - "qctl check" (do the indexes agree with the tasks?) and
 * "qctl backup DIR" (a hot, compacted copy that opens as a store).
 */
#include "config.h"

#include "qctl.h"

static int check_exec(struct qctl *c, const struct qctl_args *a)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	int rc;

	(void)a;
	rc = m2w_queue_check(c->q, errbuf);
	if (rc && !*errbuf)
		snprintf(errbuf, sizeof(errbuf), "%s", m2w_strerror(rc));
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "ok", json_object_new_boolean(!rc));
		json_object_object_add(o, "problem", rc ? json_object_new_string(errbuf)
							: NULL);
		qctl_print_json(o);
	} else if (rc) {
		qctl_error("store %s: %s", c->dir, errbuf);
	} else {
		printf("store %s: every index agrees with the tasks\n", c->dir);
	}
	return rc ? EXIT_PROBLEM : EXIT_OK;
}

const struct qctl_cmd cmd_check = {
	.name = "check",
	.help =
	"Verifies that every record decodes and every index, key, group and\n"
	"counter agrees with the tasks table. Exit 1 names the first problem.",
	.needs_store = 1,
	.exec = check_exec,
};

static int backup_exec(struct qctl *c, const struct qctl_args *a)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	const char *dir = a->argv[0];
	int rc;

	if ((rc = m2w_queue_backup(c->q, dir, errbuf))) {
		qctl_fail(rc, errbuf);
		return EXIT_PROBLEM; /* a target that exists is no usage error */
	}
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "backup",
				       json_object_new_string(dir));
		qctl_print_json(o);
	} else {
		printf("backup of %s written to %s\n", c->dir, dir);
	}
	return EXIT_OK;
}

const struct qctl_cmd cmd_backup = {
	.name = "backup",
	.args = "DIR",
	.min_args = 1,
	.max_args = 1,
	.help =
	"Writes a compacted copy of the store, consistent as of one moment,\n"
	"into the new directory DIR while the daemon goes on. Open it with\n"
	"qctl -d DIR, or stop the daemon and put it in place of the store.",
	.needs_store = 1,
	.exec = backup_exec,
};
