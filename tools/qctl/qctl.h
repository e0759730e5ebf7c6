/*
 * qctl.h - what qctl's command files share.
 *
 * qctl is thin: each command is one file (cmd-*.c) with a const table entry
 * (name, usage, help, exec), in the manner of tmux's cmd-*.c; every
 * behaviour lives in libm2worker, the commands only parse arguments and
 * print. Output is an aligned table for people, or JSON with --json (the
 * schema is in qctl(8)). Exit codes: 0 ok, 1 not found or a problem,
 * 2 usage.
 */
#ifndef QCTL_H
#define QCTL_H

#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "m2worker/admin.h"
#include "m2worker/queue.h"
#include "m2worker/report.h"

#define EXIT_OK 0
#define EXIT_PROBLEM 1
#define EXIT_USAGE 2

struct qctl {
	const char *dir;        /* the store */
	int json;               /* --json */
	struct m2w_queue *q;    /* opened before exec when the command needs it */
	int64_t now;
};

struct qctl_cmd {
	const char *name;
	const char *usage;      /* after the name */
	const char *help;       /* one paragraph */
	int needs_store;        /* 1: open it; 2: create it when absent */
	int (*exec)(struct qctl *c, int argc, char **argv);
};

extern const struct qctl_cmd cmd_stats, cmd_list, cmd_show, cmd_requeue,
	cmd_retry_now, cmd_delete, cmd_purge, cmd_pause, cmd_resume,
	cmd_check, cmd_backup;
extern const struct qctl_cmd cmd_enqueue;

/* Errors: "qctl: <msg>" on stderr. */
void qctl_error(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2)))
#endif
	;
/* Prints a library error and returns the exit code it maps to. */
int qctl_fail(int rc, const char *errbuf);
/* Usage line of `cmd` on stderr; returns EXIT_USAGE. */
int qctl_usage(const struct qctl_cmd *cmd);

/* Parses the common per-command options (--json, -h) out of argv;
 * getopt_long over `longopts` + those; see cmd files. */
int qctl_parse_id(const char *s, uint64_t *id);
/* "90s" "15m" "2h" "7d" "1w" or plain seconds -> ms; -1 if bad. */
int64_t qctl_parse_age(const char *s);
/* A moment: an age back from now_ms ("2h"), "today" or "yesterday" (local
 * midnight), or a local date "2026-11-24[ 13:00[:00]]" (or with T) -> unix
 * ms; -1 if bad. */
int64_t qctl_parse_when(const char *s, int64_t now_ms);

/* Local time "2026-11-25 14:03:05" ("-" for 0). */
void qctl_time(char *out, size_t len, int64_t ms);
/* "3m ago", "in 5s", "-" for 0. */
void qctl_ago(char *out, size_t len, int64_t ms, int64_t now);
/* Copies s into out, cut to `width` display bytes with "..", one line. */
void qctl_cut(char *out, size_t len, const char *s, size_t width);

/* Prints a JSON value to stdout, pretty, with a newline; drops it. */
void qctl_print_json(json_object *o);
/* The time a listing shows for a task: next run, expiry, or end. */
int64_t qctl_task_when(const struct m2w_task *t);

#endif
