/*
 * cmd-list.c - "qctl list": tasks of one state, a page at a time, in the
 * store's index order, with a cursor for the next page (stable: tasks that
 * move meanwhile are neither repeated nor skipped). Every filter is the
 * store's (m2w_list_opts), so pages come out full. The JSON carries each
 * task's payload as `show` prints it, so scripts need not parse the keys.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "qctl.h"

static void print_table(struct qctl *c, struct m2w_task **ts, size_t n)
{
	char when[32], ago[32], src[40], err[60];
	size_t i;

	printf("%-10s %-12s %-10s %-7s %-19s %-9s %-30s %s\n", "ID", "TYPE",
	       "STATE", "TRIES", "WHEN", "", "SOURCE", "LAST ERROR");
	for (i = 0; i < n; i++) {
		const struct m2w_task *t = ts[i];
		char tries[16];

		qctl_time(when, sizeof(when), qctl_task_when(t));
		qctl_ago(ago, sizeof(ago), qctl_task_when(t), c->now);
		qctl_cut(src, sizeof(src), t->source, 30);
		qctl_cut(err, sizeof(err), t->last_error, 58);
		if (t->max_attempts)
			snprintf(tries, sizeof(tries), "%u/%u", t->attempts,
				 t->max_attempts);
		else
			snprintf(tries, sizeof(tries), "%u", t->attempts);
		printf("%-10llu %-12s %-10s %-7s %-19s %-9s %-30s %s\n",
		       (unsigned long long)t->id, t->type,
		       m2w_state_name(t->state), tries, when, ago,
		       *src ? src : "-", err);
	}
}

/* --since or --until as unix ms into *ms (-1 when not given); 0 when
 * bad, said so. */
static int when_arg(struct qctl *c, const struct qctl_args *a,
		    const char *name, int64_t *ms)
{
	const char *v = qctl_args_get(a, name);

	*ms = -1;
	if (v && (*ms = qctl_parse_when(v, c->now)) < 0) {
		qctl_error("bad time \"%s\" (an age: 90s, 15m, 2h, 7d; today, "
			   "yesterday; or a date: 2026-11-24, 2026-11-24 "
			   "13:00)", v);
		return 0;
	}
	return 1;
}

/* " --NAME VALUE" of a flag given, quoted for a shell when it must be. */
static void print_flag(const struct qctl_args *a, const char *name)
{
	const char *v = qctl_args_get(a, name), *p;

	if (!v)
		return;
	printf(" --%s ", name);
	if (*v && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789_-.:/@%+,=") == strlen(v)) {
		fputs(v, stdout);
		return;
	}
	putchar('\'');
	for (p = v; *p; p++)
		if (*p == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*p);
	putchar('\'');
}

static int list_exec(struct qctl *c, const struct qctl_args *a)
{
	const char *state = qctl_args_get(a, "state");
	const char *limit = qctl_args_get(a, "limit");
	struct m2w_list_opts lo;
	struct m2w_task **ts = NULL;
	char errbuf[M2W_ERRBUF_SIZE] = "", next[M2W_CURSOR_MAX];
	int64_t since, until;
	size_t n = 0, i;
	long v;
	int rc;

	memset(&lo, 0, sizeof(lo));
	lo.state = M2W_READY;
	lo.limit = 50;
	if (state && (lo.state = m2w_state_parse(state)) < 0) {
		qctl_error("no state \"%s\": ready, scheduled, leased, "
			   "waiting, done, dead or superseded", state);
		return EXIT_USAGE;
	}
	lo.type = qctl_args_get(a, "type");
	lo.grep = qctl_args_get(a, "grep");
	if (!when_arg(c, a, "since", &since) ||
	    !when_arg(c, a, "until", &until))
		return EXIT_USAGE;
	if (limit) {
		v = strtol(limit, NULL, 10);
		if (v < 1 || v > 100000) {
			qctl_error("--limit takes 1 to 100000");
			return EXIT_USAGE;
		}
		lo.limit = (size_t)v;
	}
	/* the store filters (0 is "any": an --until of the epoch itself
	 * keeps nothing, as 1 ms does) */
	lo.since_ms = since > 0 ? since : 0;
	lo.until_ms = until < 0 ? 0 : until > 0 ? until : 1;
	lo.after = qctl_args_get(a, "after");
	if ((rc = m2w_queue_list(c->q, &lo, &ts, &n, next, errbuf)))
		return qctl_fail(rc, errbuf);
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object *arr = json_object_new_array();

		for (i = 0; i < n; i++)
			json_object_array_add(arr, m2w_task_json(ts[i], 1));
		json_object_object_add(o, "tasks", arr);
		json_object_object_add(o, "next", *next ? json_object_new_string(next)
							: NULL);
		qctl_print_json(o);
	} else {
		print_table(c, ts, n);
		if (*next) {
			printf("\nmore: qctl list --state %s",
			       m2w_state_name(lo.state));
			print_flag(a, "type");
			print_flag(a, "grep");
			print_flag(a, "since");
			print_flag(a, "until");
			printf(" --limit %zu --after %s\n", lo.limit, next);
		}
	}
	m2w_task_list_free(ts, n);
	return EXIT_OK;
}

const struct qctl_cmd cmd_list = {
	.name = "list",
	.flags = {
		{ "state", 's', "S", 0 },
		{ "type", 't', "T", 0 },
		{ "grep", 'g', "TEXT", 0 },
		{ "since", 'S', "WHEN", 0 },
		{ "until", 'U', "WHEN", 0 },
		{ "limit", 'n', "N", 0 },
		{ "after", 'a', "CURSOR", 0 },
	},
	.help =
	"Lists tasks in one state (default ready; also scheduled, leased,\n"
	"waiting, done, dead, superseded), optionally of one type, whose last\n"
	"error, payload, idempotency key, ordering key or source contains\n"
	"TEXT, last changed from --since up to --until. WHEN is an age back\n"
	"from now (90s, 15m, 2h, 7d), today or yesterday (local midnight), or\n"
	"a local date (2026-11-24, 2026-11-24 13:00): --since yesterday\n"
	"--until today is yesterday. The store filters before it cuts a page:\n"
	"at most N (default 50) a page, and only the last one shorter; the\n"
	"cursor printed at the end (or \"next\" in JSON) gives the next page\n"
	"with --after (and the same filters). With --json each task carries\n"
	"its payload (as show prints it).",
	.needs_store = 1,
	.exec = list_exec,
};
