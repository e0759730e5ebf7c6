/*
 * qctl.c - the operator's tool: entry point, command table, store lookup,
 * the one parser of every command's flags (from its table entry) and the
 * usage made from them, and the small helpers the commands share.
 *
 * qctl [-d DIR | -c CONFIG] [--json] COMMAND [ARGS]
 *
 * The store is found by -d, then $M2WORKER_STORE, then the `path` key of the
 * [store] section of the daemon's config (-c, else
 * /etc/m2worker/m2worker.conf when it exists), then /var/lib/m2worker.
 * qctl opens the store like any other process: safe beside a running
 * daemon (LMDB serialises writers; readers see one consistent snapshot).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "m2worker/parse.h"
#include "qctl.h"

#define DEFAULT_CONFIG "/etc/m2worker/m2worker.conf"
#define DEFAULT_STORE "/var/lib/m2worker"

static const struct qctl_cmd cmd_help, cmd_version;

static const struct qctl_cmd *const commands[] = {
	&cmd_stats, &cmd_list, &cmd_show, &cmd_errors, &cmd_requeue,
	&cmd_retry_now, &cmd_delete, &cmd_purge, &cmd_pause, &cmd_resume,
	&cmd_check, &cmd_backup, &cmd_enqueue, &cmd_types, &cmd_version,
	&cmd_help, NULL,
};

void qctl_error(const char *fmt, ...)
{
	va_list ap;

	fputs("qctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int qctl_fail(int rc, const char *errbuf)
{
	qctl_error("%s", errbuf && *errbuf ? errbuf : m2w_strerror(rc));
	return rc == M2W_EINVAL ? EXIT_USAGE : EXIT_PROBLEM;
}

/* ---------------------------------------------------------------- usage */

#define USAGE_WIDTH 80

/* The usage after the name: cmd->usage, or "[--name VALUE]" for each flag
 * (no brackets when required) and then cmd->args. */
static const char *usage_text(const struct qctl_cmd *cmd, char *buf,
			      size_t len)
{
	const struct qctl_flag *f;
	size_t n = 0;
	int i, req;

	if (cmd->usage)
		return cmd->usage;
	buf[0] = '\0';
	for (i = 0; i < QCTL_FLAGS_MAX && cmd->flags[i].name; i++) {
		f = &cmd->flags[i];
		req = f->required;
		n += (size_t)snprintf(buf + n, len - n, "%s%s--%s%s%s%s",
				      n ? " " : "", req ? "" : "[", f->name,
				      f->arg_name ? " " : "",
				      f->arg_name ? f->arg_name : "",
				      req ? "" : "]");
		if (n >= len)
			return buf; /* cut: the table outgrew buf */
	}
	if (cmd->args && *cmd->args)
		snprintf(buf + n, len - n, "%s%s", n ? " " : "", cmd->args);
	return buf;
}

/* Prints `lead` and the usage of cmd after it, wrapped at USAGE_WIDTH
 * under its first word; never inside brackets ("[--type T]"). */
static void usage_print(FILE *f, const char *lead, const struct qctl_cmd *cmd)
{
	char buf[512];
	const char *s, *e;
	size_t col, indent = strlen(lead);
	int depth;

	fputs(lead, f);
	col = indent;
	for (s = usage_text(cmd, buf, sizeof(buf)); *s; s = e) {
		while (*s == ' ')
			s++;
		for (e = s, depth = 0; *e && (*e != ' ' || depth > 0); e++)
			depth += (*e == '[') - (*e == ']');
		if (e == s)
			break;
		if (col > indent && col + 1 + (size_t)(e - s) > USAGE_WIDTH) {
			fprintf(f, "\n%*s", (int)indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		fwrite(s, 1, (size_t)(e - s), f);
		col += (size_t)(e - s);
	}
	fputc('\n', f);
}

/* "usage: qctl NAME " */
static void usage_lead(char *out, size_t len, const struct qctl_cmd *cmd)
{
	snprintf(out, len, "usage: qctl %s ", cmd->name);
}

int qctl_usage(const struct qctl_cmd *cmd)
{
	char lead[64];

	usage_lead(lead, sizeof(lead), cmd);
	usage_print(stderr, lead, cmd);
	return EXIT_USAGE;
}

/* ---------------------------------------------------------------- flags */

/* Index of flag `name` in a's command; a name it lacks is a bug. */
static int flag_index(const struct qctl_args *a, const char *name)
{
	int i;

	for (i = 0; i < QCTL_FLAGS_MAX && a->cmd->flags[i].name; i++)
		if (strcmp(a->cmd->flags[i].name, name) == 0)
			return i;
	fprintf(stderr, "qctl %s: no flag --%s (a bug)\n", a->cmd->name, name);
	abort();
}

const char *qctl_args_get(const struct qctl_args *a, const char *name)
{
	return a->value[flag_index(a, name)];
}

int qctl_args_has(const struct qctl_args *a, const char *name)
{
	return a->seen[flag_index(a, name)];
}

/* Parses argv (argv[0] the command's name) by the flags of cmd into a:
 * getopt_long over a struct option made from the table, its messages and
 * all. EXIT_OK, or EXIT_USAGE with the usage printed. */
static int args_parse(const struct qctl_cmd *cmd, int argc, char **argv,
		      struct qctl_args *a)
{
	struct option lo[QCTL_FLAGS_MAX + 1];
	char shorts[2 * QCTL_FLAGS_MAX + 1], *p = shorts;
	const struct qctl_flag *f;
	int i, n, ch, seen = 0;

	memset(a, 0, sizeof(*a));
	memset(lo, 0, sizeof(lo));
	a->cmd = cmd;
	for (n = 0; n < QCTL_FLAGS_MAX && cmd->flags[n].name; n++) {
		f = &cmd->flags[n];
		lo[n].name = f->name;
		lo[n].has_arg = f->arg_name ? required_argument : no_argument;
		lo[n].val = f->short_name ? f->short_name : 256 + n;
		if (f->short_name) {
			*p++ = (char)f->short_name;
			if (f->arg_name)
				*p++ = ':';
		}
	}
	*p = '\0';
	if (n == 0) {
		a->argc = argc - 1;
		a->argv = argv + 1;
	} else {
		optind = 0; /* afresh, permutation state included (glibc) */
		while ((ch = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
			for (i = 0; i < n && lo[i].val != ch; i++)
				;
			if (i == n) /* '?': getopt said what */
				return qctl_usage(cmd);
			a->value[i] = lo[i].has_arg ? optarg : "";
			a->seen[i] = ++seen;
		}
		a->argc = argc - optind;
		a->argv = argv + optind;
	}
	for (i = 0; i < n; i++)
		if (cmd->flags[i].required && !a->seen[i])
			return qctl_usage(cmd);
	if (a->argc < cmd->min_args ||
	    (cmd->max_args != QCTL_MANY && a->argc > cmd->max_args))
		return qctl_usage(cmd);
	return EXIT_OK;
}

/* ------------------------------------------------------------- task ids */

int qctl_parse_id(const char *s, uint64_t *id)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!isdigit((unsigned char)*s) || *end || errno || v == 0)
		return 0;
	*id = v;
	return 1;
}

int qctl_arg_id(const struct qctl_args *a, int i, uint64_t *id)
{
	if (qctl_parse_id(a->argv[i], id))
		return 1;
	qctl_error("bad task id \"%s\"", a->argv[i]);
	return 0;
}

int qctl_foreach_id(struct qctl *c, const struct qctl_args *a,
		    int (*fn)(struct qctl *c, const struct qctl_args *a,
			      uint64_t id, char *errbuf),
		    const char *key)
{
	char errbuf[M2W_ERRBUF_SIZE];
	json_object *done = json_object_new_array(), *o;
	uint64_t id;
	int i, rc, status = EXIT_OK;

	for (i = 0; i < a->argc; i++) {
		if (!qctl_arg_id(a, i, &id)) {
			json_object_put(done);
			return EXIT_USAGE;
		}
		errbuf[0] = '\0';
		if ((rc = fn(c, a, id, errbuf))) {
			status = qctl_fail(rc, errbuf);
			continue;
		}
		json_object_array_add(done, json_object_new_int64((int64_t)id));
	}
	if (c->json) {
		o = json_object_new_object();
		json_object_object_add(o, key, done);
		qctl_print_json(o);
	} else {
		json_object_put(done);
	}
	return status;
}

/* ---------------------------------------------------------- times, text */

int64_t qctl_parse_age(const char *s)
{
	int64_t ms = m2w_parse_duration_ms(s);
	char *end;
	double v;

	/* the config file's durations (parse.h: "90s" "15m" "2h" "7d",
	 * "1m30s", "500ms", bare seconds); then the forms qctl has always
	 * taken besides: weeks ("1w") and fractions ("1.5h"), one unit */
	if (ms >= 0)
		return ms;
	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || !(v >= 0))
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		v *= 60;
		break;
	case 'h':
		v *= 3600;
		break;
	case 'd':
		v *= 86400;
		break;
	case 'w':
		v *= 7 * 86400;
		break;
	default:
		return -1;
	}
	if ((*end && end[1]) || !(v * 1000 < (double)INT64_MAX))
		return -1;              /* trailing bytes, or past int64 */
	return (int64_t)(v * 1000);
}

int64_t qctl_parse_when(const char *s, int64_t now_ms)
{
	static const char *const forms[] = { "%Y-%m-%d %H:%M:%S",
		"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M",
		"%Y-%m-%d", NULL };
	time_t t = (time_t)(now_ms / 1000);
	int64_t age = qctl_parse_age(s);
	const char *const *f;
	struct tm tm;
	char *end;

	if (age >= 0)
		return now_ms - age;
	memset(&tm, 0, sizeof(tm));
	if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0) {
		localtime_r(&t, &tm);
		tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		if (*s == 'y')
			tm.tm_mday--;       /* mktime normalises, DST included */
	} else {
		for (f = forms; *f; f++) {
			memset(&tm, 0, sizeof(tm));
			end = strptime(s, *f, &tm);
			if (end && !*end)
				break;
		}
		if (!*f)
			return -1;
	}
	tm.tm_isdst = -1;
	if ((t = mktime(&tm)) == (time_t)-1)
		return -1;
	return (int64_t)t * 1000;
}

void qctl_time(char *out, size_t len, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0) {
		snprintf(out, len, "-");
		return;
	}
	localtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
}

void qctl_ago(char *out, size_t len, int64_t ms, int64_t now)
{
	int64_t d = now - ms, a;
	const char *unit = "s";

	if (ms <= 0) {
		snprintf(out, len, "-");
		return;
	}
	a = (d < 0 ? -d : d) / 1000;
	if (a >= 2 * 86400) {
		a /= 86400;
		unit = "d";
	} else if (a >= 2 * 3600) {
		a /= 3600;
		unit = "h";
	} else if (a >= 120) {
		a /= 60;
		unit = "m";
	}
	if (d < 0)
		snprintf(out, len, "in %lld%s", (long long)a, unit);
	else
		snprintf(out, len, "%lld%s ago", (long long)a, unit);
}

void qctl_cut(char *out, size_t len, const char *s, size_t width)
{
	size_t i, n = 0;

	if (!s)
		s = "";
	for (i = 0; s[i] && n + 1 < len && n < width; i++)
		out[n++] = s[i] == '\n' || s[i] == '\t' || s[i] == '\r' ? ' '
									  : s[i];
	if (s[i] && width >= 2 && n >= 2) {
		out[n - 2] = '.';
		out[n - 1] = '.';
	}
	out[n] = '\0';
}

int64_t qctl_task_when(const struct m2w_task *t)
{
	switch (t->state) {
	case M2W_LEASED:
		return t->lease_expiry_ms;
	case M2W_READY:
	case M2W_SCHEDULED:
		return t->next_run_ms;
	default:
		return t->updated_ms;
	}
}

void qctl_print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_SPACED));
	json_object_put(o);
}

/* ---------------------------------------------------------- help, version */

/* Lists the commands (name NULL), or explains one. */
static int help(const char *name)
{
	const struct qctl_cmd *const *cmd;
	char lead[64];

	if (name) {
		for (cmd = commands; *cmd; cmd++)
			if (strcmp((*cmd)->name, name) == 0) {
				usage_lead(lead, sizeof(lead), *cmd);
				usage_print(stdout, lead, *cmd);
				printf("\n%s\n", (*cmd)->help);
				return EXIT_OK;
			}
		qctl_error("no command \"%s\" (qctl help lists them)", name);
		return EXIT_USAGE;
	}
	printf("usage: qctl [-d DIR | -c CONFIG] [--json] COMMAND [ARGS]\n\n"
	       "Inspect and repair an m2worker task store, also while the "
	       "daemon runs.\n\ncommands:\n");
	for (cmd = commands; *cmd; cmd++) {
		snprintf(lead, sizeof(lead), "  %-10s ", (*cmd)->name);
		usage_print(stdout, lead, *cmd);
	}
	printf("\nqctl help COMMAND tells more; qctl(8) has it all.\n");
	return EXIT_OK;
}

static int help_exec(struct qctl *c, const struct qctl_args *a)
{
	(void)c;
	return help(a->argc > 0 ? a->argv[0] : NULL);
}

static const struct qctl_cmd cmd_help = {
	.name = "help",
	.args = "[COMMAND]",
	.max_args = QCTL_MANY,
	.help = "Lists the commands, or explains one.",
	.exec = help_exec,
};

static int version_exec(struct qctl *c, const struct qctl_args *a)
{
	(void)a;
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "version",
				       json_object_new_string(PACKAGE_VERSION));
		json_object_object_add(o, "schema",
				       json_object_new_int(M2W_SCHEMA_VERSION));
		qctl_print_json(o);
	} else {
		printf("qctl (m2worker) %s, store schema %d\n", PACKAGE_VERSION,
		       M2W_SCHEMA_VERSION);
	}
	return EXIT_OK;
}

static const struct qctl_cmd cmd_version = {
	.name = "version",
	.max_args = QCTL_MANY,
	.help = "Prints the version and the store schema it reads.",
	.exec = version_exec,
};

/* ------------------------------------------------------------ the store */

/* The `path` key of section [store] in an INI file; malloc'd or NULL. */
static char *config_store_path(const char *file, int must_exist)
{
	char line[4096], *p, *e, *val = NULL;
	int in_store = 0;
	FILE *f = fopen(file, "r");

	if (!f) {
		if (must_exist)
			qctl_error("%s: %s", file, strerror(errno));
		return NULL;
	}
	while (!val && fgets(line, sizeof(line), f)) {
		for (p = line; isspace((unsigned char)*p); p++)
			;
		e = p + strlen(p);
		while (e > p && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (*p == '[')
			in_store = strcmp(p, "[store]") == 0;
		else if (in_store && strncmp(p, "path", 4) == 0) {
			for (p += 4; isspace((unsigned char)*p); p++)
				;
			if (*p++ != '=')
				continue;
			while (isspace((unsigned char)*p))
				p++;
			val = strdup(p);
		}
	}
	fclose(f);
	return val;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct qctl_cmd *const *cmd;
	struct qctl_args args;
	struct qctl c;
	struct m2w_queue_opts qo;
	char errbuf[M2W_ERRBUF_SIZE] = "", *conf_path = NULL;
	const char *conf = NULL;
	int ch, rc;

	memset(&c, 0, sizeof(c));
	while ((ch = getopt_long(argc, argv, "+d:c:jh", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			c.dir = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'j':
			c.json = 1;
			break;
		case 'h':
			return help(NULL);
		default:
			fprintf(stderr, "usage: qctl [-d DIR | -c CONFIG] "
				"[--json] COMMAND [ARGS]\n");
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return help(NULL), EXIT_USAGE;
	for (cmd = commands; *cmd; cmd++)
		if (strcmp((*cmd)->name, argv[0]) == 0)
			break;
	if (!*cmd) {
		qctl_error("no command \"%s\" (qctl help lists them)", argv[0]);
		return EXIT_USAGE;
	}
	/* "qctl COMMAND --help" explains COMMAND; it must never reach the
	 * command, which would take "--help" for a type or a path */
	for (ch = 1; ch < argc; ch++)
		if (strcmp(argv[ch], "--help") == 0 ||
		    strcmp(argv[ch], "-h") == 0)
			return help(argv[0]);
	if ((*cmd)->needs_store) {
		if (!c.dir)
			c.dir = getenv("M2WORKER_STORE");
		if (!c.dir && (conf || access(DEFAULT_CONFIG, R_OK) == 0)) {
			conf_path = config_store_path(conf ? conf : DEFAULT_CONFIG,
						      conf != NULL);
			if (!conf_path && conf)
				return EXIT_USAGE;
			c.dir = conf_path;
		}
		if (!c.dir)
			c.dir = DEFAULT_STORE;
		memset(&qo, 0, sizeof(qo));
		qo.path = c.dir;
		qo.create = (*cmd)->needs_store == 2;
		if ((rc = m2w_queue_open(&qo, &c.q, errbuf)) != M2W_OK) {
			free(conf_path);
			return qctl_fail(rc, errbuf) == EXIT_USAGE ? EXIT_USAGE
								   : EXIT_PROBLEM;
		}
		c.now = m2w_queue_now(c.q);
	}
	/* --json may also follow the command: take it out here, once */
	for (ch = 1, rc = 1; ch < argc; ch++) {
		if (strcmp(argv[ch], "--json") == 0)
			c.json = 1;
		else
			argv[rc++] = argv[ch];
	}
	argc = rc;
	argv[argc] = NULL;
	if ((rc = args_parse(*cmd, argc, argv, &args)) == EXIT_OK)
		rc = (*cmd)->exec(&c, &args);
	m2w_queue_close(c.q);
	free(conf_path);
	return rc;
}
