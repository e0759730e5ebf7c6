/*
 * cmd-errors.c - "qctl errors": the dead letters grouped by type and
 * exact last error, the largest group first. The store groups them
 * (m2w_queue_dead_groups, the call the console's dead-letter table makes)
 * and report.c gives the JSON both print; a group's type and error go
 * back to requeue --dead or delete --dead as --type and --error.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "qctl.h"

static void print_table(struct qctl *c, const struct m2w_dead_group *g,
			size_t n, uint64_t scanned)
{
	char ago[32], status[16], err[80];
	uint64_t shown = 0;
	size_t i;

	if (!n) {
		printf("no dead tasks\n");
		return;
	}
	printf("%9s  %-12s %-10s %-6s %s\n", "COUNT", "TYPE", "LAST SEEN",
	       "STATUS", "ERROR");
	for (i = 0; i < n; i++) {
		qctl_ago(ago, sizeof(ago), g[i].last_ms, c->now);
		if (g[i].last_status)
			snprintf(status, sizeof(status), "%d", g[i].last_status);
		else
			snprintf(status, sizeof(status), "-");
		qctl_cut(err, sizeof(err), g[i].error, 76);
		printf("%9llu  %-12s %-10s %-6s %s\n",
		       (unsigned long long)g[i].count, g[i].type, ago, status,
		       *err ? err : "-");
		shown += g[i].count;
	}
	if (shown < scanned)
		printf("\n%llu dead tasks; the %zu largest groups shown hold "
		       "%llu (more with --limit)\n", (unsigned long long)scanned,
		       n, (unsigned long long)shown);
	else
		printf("\n%llu dead task%s in %zu group%s\n",
		       (unsigned long long)scanned, scanned == 1 ? "" : "s", n,
		       n == 1 ? "" : "s");
}

static int errors_exec(struct qctl *c, const struct qctl_args *a)
{
	const char *since = qctl_args_get(a, "since");
	const char *limit = qctl_args_get(a, "limit");
	char errbuf[M2W_ERRBUF_SIZE] = "";
	struct m2w_group_opts o;
	struct m2w_dead_group *g = NULL;
	uint64_t scanned = 0;
	size_t n = 0;
	long v;
	int rc;

	memset(&o, 0, sizeof(o));
	o.type = qctl_args_get(a, "type");
	if (since && (o.since_ms = qctl_parse_when(since, c->now)) < 0) {
		qctl_error("bad time \"%s\" (an age: 90s, 15m, 2h, 7d; today, "
			   "yesterday; or a date: 2026-11-24, 2026-11-24 "
			   "13:00)", since);
		return EXIT_USAGE;
	}
	if (limit) {
		v = strtol(limit, NULL, 10);
		if (v < 1 || v > 100000) {
			qctl_error("--limit takes 1 to 100000");
			return EXIT_USAGE;
		}
		o.limit = (size_t)v;
	}
	if ((rc = m2w_queue_dead_groups(c->q, &o, &g, &n, &scanned, errbuf)))
		return qctl_fail(rc, errbuf);
	if (c->json)
		qctl_print_json(m2w_dead_groups_json(g, n, scanned));
	else
		print_table(c, g, n, scanned);
	m2w_dead_groups_free(g, n);
	return EXIT_OK;
}

const struct qctl_cmd cmd_errors = {
	.name = "errors",
	.flags = {
		{ "type", 't', "T", 0 },
		{ "since", 'S', "WHEN", 0 },
		{ "limit", 'n', "N", 0 },
	},
	.help =
	"The dead tasks grouped by type and exact last error, the largest\n"
	"group first: how many, when the newest died, its HTTP status, the\n"
	"error (cut to one line; --json has it whole). Of type T, died since\n"
	"WHEN (as list takes it: 24h, today, 2026-11-24), the N largest\n"
	"groups (default 100). A group's type and error go back to requeue\n"
	"--dead or delete --dead as --type T --error TEXT.",
	.needs_store = 1,
	.exec = errors_exec,
};
