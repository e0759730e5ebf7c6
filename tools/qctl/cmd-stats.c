/*
 * cmd-stats.c - "qctl stats": how many tasks of each type are in each
 * state, the oldest ready task, pauses, and how full the store is.
 */
#include "config.h"

#include <string.h>

#include "qctl.h"

static const int cols[] = { M2W_READY, M2W_SCHEDULED, M2W_LEASED,
			    M2W_WAITING, M2W_DONE, M2W_DEAD, M2W_SUPERSEDED };
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

static void print_row(const char *name, const uint64_t *count,
		      const char *oldest, const char *paused)
{
	size_t i;

	printf("%-16s", name);
	for (i = 0; i < NCOLS; i++)
		printf(" %10llu", (unsigned long long)count[cols[i]]);
	printf("  %-10s %s\n", oldest, paused);
}

/* The daemon's note ([magento] concurrency): "magento calls: limit 12
 * (auto), 8 in flight, 2 cuts; noted 5s ago". */
static void print_daemon(struct qctl *c, const char *note)
{
	json_object *o = note ? json_tokener_parse(note) : NULL, *k, *v;
	char ago[32];
	int64_t at = 0;

	if (o && json_object_object_get_ex(o, "concurrency", &k)) {
		if (json_object_object_get_ex(o, "at_ms", &v))
			at = json_object_get_int64(v);
		qctl_ago(ago, sizeof(ago), at, c->now);
		printf("magento calls: limit %d (%s), %d in flight, %lld cuts; "
		       "noted by the daemon %s ago\n",
		       json_object_object_get_ex(k, "limit", &v)
			       ? json_object_get_int(v) : 0,
		       json_object_object_get_ex(k, "mode", &v)
			       ? json_object_get_string(v) : "?",
		       json_object_object_get_ex(k, "inflight", &v)
			       ? json_object_get_int(v) : 0,
		       json_object_object_get_ex(k, "cuts", &v)
			       ? (long long)json_object_get_int64(v) : 0LL,
		       ago);
	}
	json_object_put(o);
}

static void print_table(struct qctl *c, const struct m2w_stats *st)
{
	char oldest[32];
	size_t i;

	printf("%-16s", "TYPE");
	for (i = 0; i < NCOLS; i++)
		printf(" %10s", m2w_state_name(cols[i]));
	printf("  %-10s %s\n", "OLDEST", "PAUSED");
	for (i = 0; i < st->ntypes; i++) {
		qctl_ago(oldest, sizeof(oldest), st->types[i].oldest_ready_ms,
			 c->now);
		print_row(st->types[i].type, st->types[i].count, oldest,
			  st->types[i].paused ? "paused" : "");
	}
	qctl_ago(oldest, sizeof(oldest), st->oldest_ready_ms, c->now);
	print_row("total", st->count, oldest,
		  st->paused_all ? "ALL PAUSED" : "");
	printf("\nstore %s: %.1f MiB used of a %.1f MiB map (max %.1f MiB), "
	       "%.1f MiB of it free for reuse\n", c->dir,
	       st->map_used / 1048576.0, st->map_size / 1048576.0,
	       st->map_max / 1048576.0, st->map_free / 1048576.0);
	printf("purged so far: %llu done, %llu superseded, %llu dead\n",
	       (unsigned long long)st->purged[M2W_DONE],
	       (unsigned long long)st->purged[M2W_SUPERSEDED],
	       (unsigned long long)st->purged[M2W_DEAD]);
	if (st->events_on || st->events_waiting)
		printf("result events: %llu waiting to be published%s\n",
		       (unsigned long long)st->events_waiting,
		       st->events_on ? "" : " (the outbox is off)");
	print_daemon(c, st->daemon);
}

static int stats_exec(struct qctl *c, const struct qctl_args *a)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	struct m2w_stats st;
	int rc;

	(void)a;
	if ((rc = m2w_queue_stats(c->q, &st, errbuf)))
		return qctl_fail(rc, errbuf);
	if (c->json)
		qctl_print_json(m2w_stats_json(&st, c->now));
	else
		print_table(c, &st);
	m2w_stats_free(&st);
	return EXIT_OK;
}

const struct qctl_cmd cmd_stats = {
	.name = "stats",
	.help =
	"Counts tasks per type and state (ready, scheduled, leased, waiting,\n"
	"done, dead, superseded), the age of the oldest ready task, paused\n"
	"types, how much of the store's map is used (and free for reuse), and\n"
	"how many tasks retention and qctl purge have purged.",
	.needs_store = 1,
	.exec = stats_exec,
};
