/*
 * qctl.c - the operator's tool: entry point, command table, store lookup,
 * and the small output helpers the commands share.
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
	&cmd_stats, &cmd_list, &cmd_show, &cmd_requeue, &cmd_retry_now,
	&cmd_delete, &cmd_purge, &cmd_pause, &cmd_resume, &cmd_check,
	&cmd_backup, &cmd_enqueue, &cmd_version, &cmd_help, NULL,
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

int qctl_usage(const struct qctl_cmd *cmd)
{
	fprintf(stderr, "usage: qctl %s %s\n", cmd->name, cmd->usage);
	return EXIT_USAGE;
}

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

static int help_exec(struct qctl *c, int argc, char **argv)
{
	const struct qctl_cmd *const *cmd;

	(void)c;
	if (argc > 1) {
		for (cmd = commands; *cmd; cmd++)
			if (strcmp((*cmd)->name, argv[1]) == 0) {
				printf("usage: qctl %s %s\n\n%s\n", (*cmd)->name,
				       (*cmd)->usage, (*cmd)->help);
				return EXIT_OK;
			}
		qctl_error("no command \"%s\" (qctl help lists them)", argv[1]);
		return EXIT_USAGE;
	}
	printf("usage: qctl [-d DIR | -c CONFIG] [--json] COMMAND [ARGS]\n\n"
	       "Inspect and repair an m2worker task store, also while the "
	       "daemon runs.\n\ncommands:\n");
	for (cmd = commands; *cmd; cmd++)
		printf("  %-10s %s\n", (*cmd)->name, (*cmd)->usage);
	printf("\nqctl help COMMAND tells more; qctl(8) has it all.\n");
	return EXIT_OK;
}

static const struct qctl_cmd cmd_help = {
	"help", "[COMMAND]", "Lists the commands, or explains one.", 0,
	help_exec,
};

static int version_exec(struct qctl *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
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
	"version", "", "Prints the version and the store schema it reads.", 0,
	version_exec,
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
			return help_exec(&c, 1, argv);
		default:
			fprintf(stderr, "usage: qctl [-d DIR | -c CONFIG] "
				"[--json] COMMAND [ARGS]\n");
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return help_exec(&c, 1, argv), EXIT_USAGE;
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
		if (strcmp(argv[ch], "--help") == 0 || strcmp(argv[ch], "-h") == 0) {
			char *hv[] = { (char *)"help", argv[0], NULL };

			return help_exec(&c, 2, hv);
		}
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
	optind = 0; /* each command runs getopt afresh */
	rc = (*cmd)->exec(&c, argc, argv);
	m2w_queue_close(c.q);
	free(conf_path);
	return rc;
}
