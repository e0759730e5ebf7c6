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

static json_object *counts_json(const uint64_t *count)
{
	json_object *o = json_object_new_object();
	size_t i;

	for (i = 0; i < NCOLS; i++)
		json_object_object_add(o, m2w_state_name(cols[i]),
				       json_object_new_int64((int64_t)count[cols[i]]));
	return o;
}

static void print_json(struct qctl *c, const struct m2w_stats *st)
{
	json_object *o = json_object_new_object(), *types = json_object_new_array();
	size_t i;

	for (i = 0; i < st->ntypes; i++) {
		json_object *t = json_object_new_object();
		const struct m2w_type_stats *ts = &st->types[i];

		json_object_object_add(t, "type", json_object_new_string(ts->type));
		json_object_object_add(t, "paused", json_object_new_boolean(ts->paused));
		json_object_object_add(t, "counts", counts_json(ts->count));
		json_object_object_add(t, "oldest_ready_age_ms",
				       ts->oldest_ready_ms
					       ? json_object_new_int64(c->now - ts->oldest_ready_ms)
					       : NULL);
		json_object_array_add(types, t);
	}
	json_object_object_add(o, "types", types);
	json_object_object_add(o, "totals", counts_json(st->count));
	json_object_object_add(o, "paused_all", json_object_new_boolean(st->paused_all));
	json_object_object_add(o, "oldest_ready_age_ms",
			       st->oldest_ready_ms
				       ? json_object_new_int64(c->now - st->oldest_ready_ms)
				       : NULL);
	json_object_object_add(o, "map_size", json_object_new_int64((int64_t)st->map_size));
	json_object_object_add(o, "map_used", json_object_new_int64((int64_t)st->map_used));
	json_object_object_add(o, "map_max", json_object_new_int64((int64_t)st->map_max));
	qctl_print_json(o);
}

static void print_row(const char *name, const uint64_t *count,
		      const char *oldest, const char *paused)
{
	size_t i;

	printf("%-16s", name);
	for (i = 0; i < NCOLS; i++)
		printf(" %10llu", (unsigned long long)count[cols[i]]);
	printf("  %-10s %s\n", oldest, paused);
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
	printf("\nstore %s: %.1f MiB used of a %.1f MiB map (max %.1f MiB)\n",
	       c->dir, st->map_used / 1048576.0, st->map_size / 1048576.0,
	       st->map_max / 1048576.0);
}

static int stats_exec(struct qctl *c, int argc, char **argv)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	struct m2w_stats st;
	int rc;

	(void)argv;
	if (argc != 1)
		return qctl_usage(&cmd_stats);
	if ((rc = m2w_queue_stats(c->q, &st, errbuf)))
		return qctl_fail(rc, errbuf);
	if (c->json)
		print_json(c, &st);
	else
		print_table(c, &st);
	m2w_stats_free(&st);
	return EXIT_OK;
}

const struct qctl_cmd cmd_stats = {
	"stats", "",
	"Counts tasks per type and state (ready, scheduled, leased, waiting,\n"
	"done, dead, superseded), the age of the oldest ready task, paused\n"
	"types, and how much of the store's map is used.",
	1, stats_exec,
};
