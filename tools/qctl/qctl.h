/*
 * qctl.h - what qctl's command files share.
 *
 * qctl is thin: each command is one file (cmd-*.c) with a const table entry
 * (name, flags, arguments, help, exec), in the manner of tmux's cmd-*.c;
 * every behaviour lives in libm2worker, the commands only read their
 * arguments and print. Output is an aligned table for people, or JSON with
 * --json (the schema is in qctl(8)). Exit codes: 0 ok, 1 not found or a
 * problem, 2 usage.
 *
 * A command declares its flags as data in its entry; qctl.c parses them,
 * once for every command, with getopt_long (a flag may come after the
 * arguments, a long name may be cut short while it stays unique), refuses
 * an unknown flag, a flag without its value, a required flag missing and
 * a wrong number of arguments with the usage (exit 2), and hands exec a
 * struct qctl_args. The usage line is made from the same table. What a
 * value means (a state, an age, a number) exec checks: it knows its words.
 * A command without flags gets its arguments as they are, "-x" and "--"
 * included.
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

struct qctl_args;

struct qctl {
	const char *dir;        /* the store */
	int json;               /* --json */
	struct m2w_queue *q;    /* opened before exec when the command needs it */
	int64_t now;
};

#define QCTL_FLAGS_MAX 8   /* flags of one command */
#define QCTL_MANY (-1)     /* max_args: no limit */

/* One flag: --name, or --name VALUE when it has an arg_name. */
struct qctl_flag {
	const char *name;       /* the long name, without "--" */
	int short_name;         /* the letter getopt also takes, or 0; not in
				 * the usage (scripts may use it) */
	const char *arg_name;   /* the value in the usage ("AGE"), or NULL:
				 * the flag takes no value */
	int required;           /* the command is refused without it */
};

struct qctl_cmd {
	const char *name;
	/* The usage after the name: the flags, then args ("ID", "[FILE|-]").
	 * A command whose forms the flags cannot say ("ID... | --dead ...")
	 * writes its whole usage instead. */
	struct qctl_flag flags[QCTL_FLAGS_MAX]; /* up to the first unnamed */
	const char *args;
	const char *usage;      /* NULL: made from flags and args */
	int min_args;           /* the arguments that are no flags */
	int max_args;           /* or QCTL_MANY */
	const char *help;       /* one paragraph */
	int needs_store;        /* 1: open it; 2: create it when absent */
	int (*exec)(struct qctl *c, const struct qctl_args *a);
};

/* A command line as its flags parsed it. */
struct qctl_args {
	const struct qctl_cmd *cmd;
	const char *value[QCTL_FLAGS_MAX]; /* by flag: its last value ("" for
					    * one without), NULL when absent */
	int seen[QCTL_FLAGS_MAX];    /* where it was last given: 1 for the
				      * first flag of the line, 0 absent */
	int argc;                    /* the other arguments, in order */
	char **argv;
};

/* The value of flag `name` of the command (the last one given), or NULL
 * when it was not given. A name the command has not declared is a bug:
 * it aborts. */
const char *qctl_args_get(const struct qctl_args *a, const char *name);
/* 0 when flag `name` was not given; else where it was last given (1 for
 * the first flag on the line), so of two flags the later one is larger. */
int qctl_args_has(const struct qctl_args *a, const char *name);
/* Argument i as a task id; "bad task id" and 0 when it is none. */
int qctl_arg_id(const struct qctl_args *a, int i, uint64_t *id);

/* Runs fn on each id argument in turn. A failing fn is reported
 * (qctl_fail) and the rest go on; a bad id stops there (EXIT_USAGE, and
 * no JSON: what was done stays done). fn prints its own line for people;
 * with --json the ids it did go out as {"<key>": [ids]}. Returns EXIT_OK
 * or the code of the last failure. */
int qctl_foreach_id(struct qctl *c, const struct qctl_args *a,
		    int (*fn)(struct qctl *c, const struct qctl_args *a,
			      uint64_t id, char *errbuf),
		    const char *key);

extern const struct qctl_cmd cmd_stats, cmd_list, cmd_show, cmd_errors,
	cmd_requeue, cmd_retry_now, cmd_delete, cmd_purge, cmd_pause,
	cmd_resume, cmd_check, cmd_backup;
extern const struct qctl_cmd cmd_enqueue, cmd_types;

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

/* A task id: digits, not 0. */
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
