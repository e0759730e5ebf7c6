/*
 * cmd-pause.c - "qctl pause [TYPE]" and "qctl resume [TYPE]". Persisted in
 * the store: the daemon sees it at its next lease (within a second), and it
 * survives restarts.
 */
#include "config.h"

#include "qctl.h"

static int set(struct qctl *c, int argc, char **argv, int paused,
	       const struct qctl_cmd *self)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	const char *type = argc > 1 ? argv[1] : NULL;
	int rc;

	if (argc > 2)
		return qctl_usage(self);
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

static int pause_exec(struct qctl *c, int argc, char **argv)
{
	return set(c, argc, argv, 1, &cmd_pause);
}

static int resume_exec(struct qctl *c, int argc, char **argv)
{
	return set(c, argc, argv, 0, &cmd_resume);
}

const struct qctl_cmd cmd_pause = {
	"pause", "[TYPE]",
	"Stops leasing tasks of TYPE (without TYPE: of every type, also types\n"
	"seen later). Tasks still arrive and wait; calls in flight finish.",
	1, pause_exec,
};

const struct qctl_cmd cmd_resume = {
	"resume", "[TYPE]",
	"Resumes TYPE (without TYPE: everything, including types paused one\n"
	"by one).",
	1, resume_exec,
};
