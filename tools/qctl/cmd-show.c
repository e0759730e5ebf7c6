/*
 * cmd-show.c - "qctl show ID": one task's record, its payload pretty
 * printed, and the history of its attempts.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "qctl.h"

/* Prints v; its later lines indented by `indent` spaces. */
static void indented(const char *v, int indent)
{
	for (; *v; v++) {
		putchar(*v);
		if (*v == '\n')
			printf("%*s", indent, "");
	}
	putchar('\n');
}

static void line(const char *k, const char *v)
{
	printf("%-16s ", k);
	indented(v && *v ? v : "-", 17);
}

static void print_time(struct qctl *c, const char *k, int64_t ms)
{
	char when[32], ago[32], both[80];

	qctl_time(when, sizeof(when), ms);
	qctl_ago(ago, sizeof(ago), ms, c->now);
	snprintf(both, sizeof(both), "%s (%s)", when, ago);
	line(k, ms > 0 ? both : "-");
}

static void print_task(struct qctl *c, const struct m2w_task *t,
		       const struct m2w_attempt *h, size_t nh)
{
	json_object *p = json_tokener_parse(t->payload);
	char buf[64];
	size_t i;

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)t->id);
	line("id", buf);
	line("type", t->type);
	line("state", m2w_state_name(t->state));
	if (t->max_attempts)
		snprintf(buf, sizeof(buf), "%u of %u", t->attempts,
			 t->max_attempts);
	else
		snprintf(buf, sizeof(buf), "%u (of the type's maximum)",
			 t->attempts);
	line("attempts", buf);
	print_time(c, "created", t->created_ms);
	print_time(c, "updated", t->updated_ms);
	if (t->state == M2W_READY || t->state == M2W_SCHEDULED)
		print_time(c, "next run", t->next_run_ms);
	if (t->state == M2W_LEASED)
		print_time(c, "lease expires", t->lease_expiry_ms);
	line("source", t->source);
	line("idempotency key", t->idem_key);
	line("ordering key", t->group_key);
	if (t->group_key)
		line("group rule", t->supersede == M2W_GROUP_NEWEST
		     ? "the newest supersedes older waiting tasks"
		     : t->supersede == M2W_GROUP_EXCLUSIVE
		     ? "one at a time, any order" : "one at a time, in order");
	snprintf(buf, sizeof(buf), "%d", t->last_status);
	line("last status", t->last_status ? buf : NULL);
	line("last error", t->last_error);
	printf("\npayload:\n%s\n", p ? json_object_to_json_string_ext(
					       p, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_SPACED)
				     : t->payload);
	json_object_put(p);
	printf("\nhistory (last %d attempts):\n", M2W_HISTORY_MAX);
	if (!nh)
		printf("  none\n");
	for (i = 0; i < nh; i++) {
		char when[32];

		qctl_time(when, sizeof(when), h[i].at_ms);
		snprintf(buf, sizeof(buf), "%d", h[i].http_status);
		printf("  #%-3u %s  %-9s %4s  %6lldms  ", h[i].attempt, when,
		       m2w_outcome_name(h[i].outcome),
		       h[i].http_status ? buf : "-",
		       (long long)h[i].duration_ms);
		indented(h[i].message, 56);
	}
}

static json_object *task_json(const struct m2w_task *t,
			      const struct m2w_attempt *h, size_t nh)
{
	json_object *o = m2w_task_json(t, 1);

	json_object_object_add(o, "history", m2w_attempts_json(h, nh));
	return o;
}

static int show_exec(struct qctl *c, const struct qctl_args *a)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	struct m2w_attempt *h = NULL;
	struct m2w_task *t;
	size_t nh = 0;
	uint64_t id;
	int rc;

	if (!qctl_parse_id(a->argv[0], &id))
		return qctl_usage(&cmd_show);
	if ((rc = m2w_queue_get(c->q, id, &t, errbuf)))
		return qctl_fail(rc, errbuf);
	if ((rc = m2w_queue_history(c->q, id, &h, &nh, errbuf))) {
		m2w_task_free(t);
		return qctl_fail(rc, errbuf);
	}
	if (c->json)
		qctl_print_json(task_json(t, h, nh));
	else
		print_task(c, t, h, nh);
	free(h);
	m2w_task_free(t);
	return EXIT_OK;
}

const struct qctl_cmd cmd_show = {
	.name = "show",
	.args = "ID",
	.min_args = 1,
	.max_args = 1,
	.help =
	"Shows one task: its record, the payload pretty-printed, the last\n"
	"error, and the history of its last attempts (when, outcome, HTTP\n"
	"status, duration, Magento's message).",
	.needs_store = 1,
	.exec = show_exec,
};
