/*
 * cmd-pause.c - "qctl pause [TYPE]" and "qctl resume [TYPE]". Persisted in
 * the store: the daemon sees it at its next lease (within a second), and it
 * survives restarts.
 */
#include "config.h"

#include "qctl.h"

/* Both commands: which one ran says pause or resume. */
static int pause_exec(struct qctl *c, const struct qctl_args *a)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	const char *type = a->argc > 0 ? a->argv[0] : NULL;
	int rc, paused = a->cmd == &cmd_pause;

	if ((rc = m2w_queue_pause(c->q, type, paused, errbuf)))
		return qctl_fail(rc, errbuf);
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "paused", json_object_new_boolean(paused));
		json_object_object_add(o, "type", type ? json_object_new_string(type)
						       : NULL);
		qctl_print_json(o);
	} else {
		printf("%s %s\n", paused ? "paused" : "resumed",
		       type ? type : "every type");
	}
	return EXIT_OK;
}

const struct qctl_cmd cmd_pause = {
	.name = "pause",
	.args = "[TYPE]",
	.max_args = 1,
	.help =
	"Stops leasing tasks of TYPE (without TYPE: of every type, also types\n"
	"seen later). Tasks still arrive and wait; calls in flight finish.",
	.needs_store = 1,
	.exec = pause_exec,
};

const struct qctl_cmd cmd_resume = {
	.name = "resume",
	.args = "[TYPE]",
	.max_args = 1,
	.help =
	"Resumes TYPE (without TYPE: everything, including types paused one\n"
	"by one).",
	.needs_store = 1,
	.exec = pause_exec,
};
