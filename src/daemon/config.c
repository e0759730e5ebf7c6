/*
 * config.c - the INI configuration file, parsed into struct m2w_config.
 *
 * One pass over the lines. Each line is blank, a comment (`#` or `;` as the
 * first non-blank character: an inline `#` belongs to the value, because
 * URLs and tokens contain it), a section header `[name]` or `[name "sub"]`,
 * or `key = value`. Sections are looked up in one const table (`sections`):
 * each entry names its keys (a table of key_def: kind, where the value goes,
 * its range) or a callback for free-form keys ([carriers]). Adding a section
 * is one table entry; named sections (`[watch "3pl"]`, for the ingest) get
 * their name through the entry's `begin` callback.
 *
 * Mistakes never stop the pass: each one is appended to the report as
 * "FILE:LINE: what" and counted, and the value that did not parse is left
 * at its default, so `--check-config` lists everything at once. After the
 * pass come the checks that need several keys (credentials for the auth
 * mode, backoff_cap >= backoff_base, map_initial <= map_max); they report
 * the line of the key concerned, or "FILE: ..." when it is missing.
 *
 * Secrets (token, password, OAuth keys) are resolved while parsing with
 * m2_secret_resolve; no message ever contains a secret's value (nor any
 * line that did not parse: it could be a pasted secret).
 *
 * m2w_config_load reads over what the struct already holds: the caller
 * runs m2w_config_defaults first (and may load a second file over the
 * first; duplicates are only looked for within one file).
 *
 * Ownership: every string of the struct is malloc'd, including the ones
 * struct m2_client_opts holds as `const char *` (all but user_agent, which
 * the config never sets); m2w_config_release frees them.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "m2worker/config.h"
#include "m2worker/error.h"
#include "amqp.h"
#include "events.h"
#include "watch.h"
#ifdef HAVE_MHD
#include "http.h"
#endif

#define LINE_MAX_BYTES 4096
#define MAP_VALUE_MAX 63      /* a map value (struct m2_track's carrier_code[64]) */

#define MS_S INT64_C(1000)
#define MS_D (86400 * MS_S)

/* ---------------------------------------------------------------- defaults */

static void settings_release(const struct m2w_job *job, void *set);

/* A job's settings: a copy of its defaults, strings duplicated. NULL out
 * of memory (or a job without settings). */
static void *settings_new(const struct m2w_job *job)
{
	const struct m2w_setting *k;
	char *set;

	if (!job->settings_size)
		return NULL;
	if (!(set = calloc(1, job->settings_size)))
		return NULL;
	if (job->defaults)
		memcpy(set, job->defaults, job->settings_size);
	for (k = job->settings; k && k->name; k++) {
		char **sp = (char **)(set + k->off);

		if (k->kind == M2W_SET_MAP)
			memset(set + k->off, 0, sizeof(struct m2w_map));
		else if (k->kind == M2W_SET_STR && *sp && !(*sp = strdup(*sp))) {
			settings_release(job, set);
			return NULL;
		}
	}
	return set;
}

static void settings_release(const struct m2w_job *job, void *p)
{
	const struct m2w_setting *k;
	char *set = p;
	size_t i;

	for (k = job->settings; set && k && k->name; k++) {
		if (k->kind == M2W_SET_STR) {
			free(*(char **)(set + k->off));
		} else if (k->kind == M2W_SET_MAP) {
			struct m2w_map *m = (struct m2w_map *)(set + k->off);

			for (i = 0; i < m->n; i++) {
				free(m->v[i].name);
				free(m->v[i].value);
			}
			free(m->v);
		}
	}
	free(set);
}

void m2w_config_defaults(struct m2w_config *cfg)
{
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	cfg->store_path = strdup("/var/lib/m2worker");
	cfg->map_initial = (size_t)64 << 20;
	cfg->map_max = (size_t)4 << 30;
	cfg->nosync = 0;
	cfg->keep_done_ms = 7 * MS_D;
	cfg->keep_superseded_ms = 1 * MS_D;
	cfg->keep_dead_ms = 30 * MS_D;
	cfg->purge_interval_ms = 60 * MS_S;

	cfg->magento.base_url = NULL;
	cfg->magento.store_code = strdup("default");
	cfg->magento.auth = M2_AUTH_NONE;
	cfg->magento.admin_token_ttl_s = 3600;
	cfg->magento.connect_timeout_ms = 5000;
	cfg->magento.timeout_ms = 30000;
	cfg->magento.insecure = 0;
	cfg->rate_limit = 0;

	cfg->events.declare = 1;
	cfg->events.broker.verify = 1;

	cfg->threads = 8;
	cfg->concurrency_min = 2;
	cfg->grace_ms = 20 * MS_S;
	cfg->reap_interval_ms = 1 * MS_S;

	cfg->breaker_failures = 5;
	cfg->breaker_cooldown_ms = 30 * MS_S;

	cfg->log_level = M2W_LOG_INFO;
	cfg->log_file = NULL;

	for (i = 0; i < M2W_MAX_TYPES && m2w_job_at(i); i++) {
		struct m2w_type_cfg *t = &cfg->types[i];

		t->job = m2w_job_at(i);
		snprintf(t->name, sizeof(t->name), "%s", t->job->name);
		m2w_policy_default(&t->policy);
		t->concurrency = 0;
		t->batch = t->job->batch ? t->job->batch : 1;
		t->lease_ms = 60 * MS_S;
		t->settings = settings_new(t->job);
	}
	cfg->ntypes = i;

	cfg->http = 0;
	cfg->http_listen = strdup("127.0.0.1");
	cfg->http_port = 8480;
	cfg->http_body_max = (size_t)16 << 20;
	cfg->http_connections = 64;
	cfg->http_timeout_ms = 10 * MS_S;
	cfg->http_console_idle_ms = 30 * 60 * MS_S;
}

static void broker_free(struct m2w_broker *b)
{
	free(b->url);
	free(b->user);
	free(b->password);
	free(b->vhost);
	free(b->ca_file);
}

void m2w_config_release(struct m2w_config *cfg)
{
	struct m2_client_opts *m = &cfg->magento;
	size_t i;

	free(cfg->path);
	free(cfg->store_path);
	free(cfg->log_file);
	/* the const char * of m2_client_opts are ours (not user_agent) */
	free((void *)m->base_url);
	free((void *)m->store_code);
	free((void *)m->token);
	free((void *)m->username);
	free((void *)m->password);
	free((void *)m->consumer_key);
	free((void *)m->consumer_secret);
	free((void *)m->access_token);
	free((void *)m->access_token_secret);
	free((void *)m->ca_file);
	free((void *)m->proxy);
	for (i = 0; i < cfg->ntypes; i++)
		settings_release(cfg->types[i].job, cfg->types[i].settings);
	free(cfg->http_listen);
	free(cfg->http_tokens);
	free(cfg->http_console_users);
	free(cfg->concurrency);
	for (i = 0; i < cfg->nwatches; i++) {
		struct m2w_watch_cfg *w = &cfg->watches[i];

		free(w->name);
		free(w->path);
		free(w->processed);
		free(w->failed);
		free(w->pattern);
		free(w->columns);
		free(w->key_field);
	}
	free(cfg->watches);
	for (i = 0; i < cfg->namqps; i++) {
		struct m2w_amqp_cfg *a = &cfg->amqps[i];

		free(a->name);
		broker_free(&a->broker);
		free(a->queue);
		free(a->arguments);
		free(a->exchange);
		free(a->routing_keys);
		free(a->key_field);
	}
	free(cfg->amqps);
	broker_free(&cfg->events.broker);
	free(cfg->events.exchange);
	free(cfg->events.routing_key);
	memset(cfg, 0, sizeof(*cfg));
}

/* ----------------------------------------------------------------- lookups */

const struct m2w_type_cfg *m2w_config_type(const struct m2w_config *cfg,
					   const char *name)
{
	size_t i;

	for (i = 0; name && i < cfg->ntypes; i++)
		if (strcmp(cfg->types[i].name, name) == 0)
			return &cfg->types[i];
	return NULL;
}

/* The setting named key of a type's job, or NULL. */
static const struct m2w_setting *setting_of(const struct m2w_type_cfg *t,
					    const char *key, int kind)
{
	const struct m2w_setting *k;

	for (k = t->job->settings; k && k->name; k++)
		if (strcmp(k->name, key) == 0 && (kind < 0 || k->kind == kind))
			return k;
	return NULL;
}

const char *m2w_config_setting(const struct m2w_config *cfg,
			       const char *type, const char *key)
{
	const struct m2w_type_cfg *t = m2w_config_type(cfg, type);
	const struct m2w_setting *k = t ? setting_of(t, key, -1) : NULL;
	const char *set;

	if (!k || !t->settings || k->kind == M2W_SET_MAP)
		return NULL;
	set = (const char *)t->settings + k->off;
	switch (k->kind) {
	case M2W_SET_STR:
		return *(char *const *)set;
	case M2W_SET_BOOL:
		return *(const int *)set ? "yes" : "no";
	default:
		return k->choices[*(const int *)set];
	}
}

const struct m2w_map *m2w_config_map(const struct m2w_config *cfg,
				     const char *section)
{
	const struct m2w_setting *k;
	size_t i;

	for (i = 0; i < cfg->ntypes; i++)
		if ((k = setting_of(&cfg->types[i], section, M2W_SET_MAP)) &&
		    cfg->types[i].settings)
			return (const struct m2w_map *)
				((const char *)cfg->types[i].settings + k->off);
	return NULL;
}

/* ------------------------------------------------------------------ parser */

/* Where a key's value goes and how it is read. */
enum kind {
	K_STR,      /* char * of the config; "" = unset (NULL) */
	K_CSTR,     /* const char * of cfg->magento; "" = unset */
	K_SECRET,   /* const char * of cfg->magento, via m2_secret_resolve */
	K_URL,      /* magento.base_url: http:// or https:// */
	K_CODE,     /* magento.store_code: [A-Za-z0-9_]+ */
	K_SIZE,     /* size_t */
	K_MS,       /* int64_t milliseconds */
	K_MS_LONG,  /* long milliseconds */
	K_S_LONG,   /* long seconds */
	K_BOOL,     /* int 0/1 */
	K_UINT,     /* unsigned in [min, max] */
	K_RATE,     /* double >= 0 */
	K_LEVEL,    /* log_level */
	K_ENUM,     /* int: index of the value in `choices` */
	K_JOBTYPE,  /* char[M2W_TYPE_MAX + 1]: a job type read from CSV */
	K_DELIM,    /* char: auto , ; tab */
	K_REFUSE    /* a key that is known but not allowed here: `note` says why */
};

#define ON_WATCH 2    /* key_def.on_type: the current [watch] entry */
#define ON_SETTINGS 3 /* key_def.on_type: the section's job settings */
#define ON_AMQP 4     /* key_def.on_type: the current [amqp] entry */

struct key_def {
	const char *name;
	enum kind kind;
	size_t off;          /* into struct m2w_config, or m2w_type_cfg (on_type) */
	int on_type;
	int64_t min, max;    /* K_UINT: range; K_MS*: range in ms (max 0: none) */
	int nonempty;        /* K_STR: "" is a mistake, not "unset" */
	const char *note;    /* K_REFUSE */
	const char *const *choices; /* K_ENUM */
};

struct parser;

struct section_def {
	const char *name;
	int named;                     /* `[name "sub"]` form */
	const struct key_def *keys;    /* NULL: free-form keys (`key` below) */
	int type;                      /* index in cfg->types, or -1 */
	const struct m2w_setting *map; /* a job's M2W_SET_MAP section */
	/* a free-form key; 0, or -1 after reporting */
	int (*key)(struct parser *p, const char *key, const char *value);
	/* at the header (named sections: the name); 0 or -1 after reporting */
	int (*begin)(struct parser *p, const char *name);
};

/* A key set so far: duplicates, and the lines for the later checks. */
struct seen {
	const struct section_def *sec;
	char *name;                    /* the section's name, or NULL */
	const char *key;               /* the key_def's name (static) */
	int line;
	int bad;                       /* its value was a mistake */
};

struct parser {
	const char *file;
	struct m2w_config *cfg;
	char *report;
	size_t len, used;
	int count;
	int line;
	struct section_def secs[32];   /* the fixed ones, then the jobs' */
	size_t nsecs;
	const struct section_def *sec; /* NULL: no section yet, or skipped */
	char *sec_name;                /* the current section's name, or NULL */
	int skip;                      /* in an unknown section: keys ignored */
	struct seen *seen;
	size_t nseen, capseen;
	int oom;
};

static void mistake(struct parser *p, int line, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* Appends "FILE:LINE: what\n" (line 0: "FILE: what") to the report. */
static void mistake(struct parser *p, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	p->count++;
	if (!p->report || p->used + 1 >= p->len)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		n = snprintf(p->report + p->used, p->len - p->used,
			     "%s:%d: %s\n", p->file, line, msg);
	else
		n = snprintf(p->report + p->used, p->len - p->used, "%s: %s\n",
			     p->file, msg);
	if (n < 0)
		return;
	p->used += (size_t)n < p->len - p->used ? (size_t)n :
		   p->len - p->used - 1;
}

/* A value as it may be shown: cut, control characters as '?', in quotes. */
static const char *shown(char *out, size_t len, const char *v)
{
	size_t i, j = 0, max = len - 6;

	out[j++] = '"';
	for (i = 0; v[i] && j < max; i++)
		out[j++] = iscntrl((unsigned char)v[i]) ? '?' : v[i];
	if (v[i]) {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j++] = '"';
	out[j] = '\0';
	return out;
}

static char *dup_or_oom(struct parser *p, const char *s)
{
	char *d = strdup(s);

	if (!d && !p->oom) {
		p->oom = 1;
		mistake(p, p->line, "out of memory");
	}
	return d;
}

/* The line of a key set in section `sec` (any instance), or 0. */
static int seen_line(const struct parser *p, const char *sec, const char *key)
{
	size_t i;

	for (i = 0; i < p->nseen; i++)
		if (strcmp(p->seen[i].sec->name, sec) == 0 &&
		    strcmp(p->seen[i].key, key) == 0)
			return p->seen[i].line;
	return 0;
}

/* Whether key `key` of section `sec` was given but did not parse. */
static int seen_bad(const struct parser *p, const char *sec, const char *key)
{
	size_t i;

	for (i = 0; i < p->nseen; i++)
		if (strcmp(p->seen[i].sec->name, sec) == 0 &&
		    strcmp(p->seen[i].key, key) == 0 && p->seen[i].bad)
			return 1;
	return 0;
}

/* Records key `key` of the current section; the earlier line if it was
 * set before, 0 when new, -1 out of memory. */
static int remember(struct parser *p, const char *key)
{
	struct seen *s;
	size_t i;

	for (i = 0; i < p->nseen; i++) {
		s = &p->seen[i];
		if (s->sec == p->sec && strcmp(s->key, key) == 0 &&
		    ((!s->name && !p->sec_name) ||
		     (s->name && p->sec_name &&
		      strcmp(s->name, p->sec_name) == 0)))
			return s->line;
	}
	if (p->nseen == p->capseen) {
		size_t cap = p->capseen ? p->capseen * 2 : 32;

		s = realloc(p->seen, cap * sizeof(*s));
		if (!s)
			return -1;
		p->seen = s;
		p->capseen = cap;
	}
	s = &p->seen[p->nseen];
	s->sec = p->sec;
	s->key = key;
	s->line = p->line;
	s->bad = 0;
	s->name = NULL;
	if (p->sec_name && !(s->name = strdup(p->sec_name)))
		return -1;
	p->nseen++;
	return 0;
}

/* enum m2_auth, in its order */
static const char *const auth_names[] = { "none", "token", "admin", "oauth",
					  NULL };
/* [watch] mode: int poll */
static const char *const watch_modes[] = { "inotify", "poll", NULL };

/* Sets one key from the current section's table; -1 after a mistake. */
/* "a, b or c" of a NULL-terminated list, into buf. */
static const char *choice_list(const char *const *c, char *buf, size_t size)
{
	size_t i, n = 0, o = 0;

	while (c[n])
		n++;
	buf[0] = '\0';
	for (i = 0; i < n && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%s",
				      i == 0 ? "" : i + 1 == n ? " or " : ", ",
				      c[i]);
	return buf;
}

static int bad(struct parser *p, const struct key_def *k, const char *v,
	       const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;

/* "KEY: \"VALUE\" what": a value of key k that does not do; -1. */
static int bad(struct parser *p, const struct key_def *k, const char *v,
	       const char *fmt, ...)
{
	char buf[96], what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	mistake(p, p->line, "%s: %s %s", k->name, shown(buf, sizeof(buf), v),
		what);
	return -1;
}

static int set_key(struct parser *p, const struct key_def *k, const char *v)
{
	char *base, buf[96], eb[M2W_ERRBUF_SIZE], names[128];
	char *s;
	int64_t ms;
	uint64_t n;
	size_t sz;
	double d;
	char *end;
	int b;
	size_t i;

	if (k->on_type == ON_WATCH)
		base = (char *)&p->cfg->watches[p->cfg->nwatches - 1];
	else if (k->on_type == ON_AMQP)
		base = (char *)&p->cfg->amqps[p->cfg->namqps - 1];
	else if (k->on_type == ON_SETTINGS)
		base = p->cfg->types[p->sec->type].settings;
	else if (k->on_type)
		base = (char *)&p->cfg->types[p->sec->type];
	else
		base = (char *)p->cfg;
	switch (k->kind) {
	case K_STR:
		if (!*v && k->nonempty) {
			mistake(p, p->line, "%s: must not be empty", k->name);
			return -1;
		}
		s = NULL;
		if (*v && !(s = dup_or_oom(p, v)))
			return -1;
		free(*(char **)(base + k->off));
		*(char **)(base + k->off) = s;
		return 0;
	case K_URL:
		if (strncasecmp(v, "http://", 7) != 0 &&
		    strncasecmp(v, "https://", 8) != 0)
			return bad(p, k, v, "must start with http:// or "
				"https://");
		/* fall through */
	case K_CSTR:
		s = NULL;
		if (*v && !(s = dup_or_oom(p, v)))
			return -1;
		free((void *)*(const char **)(base + k->off));
		*(const char **)(base + k->off) = s;
		return 0;
	case K_CODE:
		if (!*v || strspn(v, "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
				   strlen(v))
			return bad(p, k, v, "is not a store code "
				"([A-Za-z0-9_]+)");
		if (!(s = dup_or_oom(p, v)))
			return -1;
		free((void *)*(const char **)(base + k->off));
		*(const char **)(base + k->off) = s;
		return 0;
	case K_SECRET:
		s = NULL;
		if (*v && m2_secret_resolve(v, &s, eb) != M2W_OK) {
			/* the reason names the variable or file, never the
			 * value */
			mistake(p, p->line, "%s: %s", k->name, eb);
			return -1;
		}
		free((void *)*(const char **)(base + k->off));
		*(const char **)(base + k->off) = s;
		return 0;
	case K_SIZE:
		sz = m2w_parse_size(v);
		if (!sz) {
			mistake(p, p->line, "%s: bad size %s (use e.g. 512KiB, "
				"64MiB, 4GiB)", k->name,
				shown(buf, sizeof(buf), v));
			return -1;
		}
		*(size_t *)(base + k->off) = sz;
		return 0;
	case K_MS:
	case K_MS_LONG:
	case K_S_LONG:
		ms = m2w_parse_duration_ms(v);
		if (ms < 0) {
			mistake(p, p->line, "%s: bad duration %s (use e.g. "
				"500ms, 30s, 5m, 2h, 1d)", k->name,
				shown(buf, sizeof(buf), v));
			return -1;
		}
		if (ms < k->min || (k->max && ms > k->max) ||
		    (k->kind == K_MS_LONG && ms > LONG_MAX) ||
		    (k->kind == K_S_LONG && ms / 1000 > LONG_MAX)) {
			if (k->max)
				return bad(p, k, v, "is out of range (%" PRId64
					   "ms to %" PRId64 "ms)", k->min,
					   k->max);
			return bad(p, k, v, "is too short (at least %" PRId64
				   "ms)", k->min);
		}
		if (k->kind == K_MS)
			*(int64_t *)(base + k->off) = ms;
		else if (k->kind == K_MS_LONG)
			*(long *)(base + k->off) = (long)ms;
		else
			*(long *)(base + k->off) = (long)(ms / 1000);
		return 0;
	case K_BOOL:
	case K_LEVEL:
		b = k->kind == K_BOOL ? m2w_parse_bool(v) :
					m2w_log_level_parse(v);
		if (b < 0)
			return bad(p, k, v, "is not %s", k->kind == K_BOOL ?
				   "a boolean (yes/no, true/false, on/off, "
				   "1/0)" : "one of error, warn, info, debug");
		*(int *)(base + k->off) = b;
		return 0;
	case K_UINT:
		if (m2w_parse_uint(v, &n) < 0 || n < (uint64_t)k->min ||
		    n > (uint64_t)k->max)
			return bad(p, k, v, "is not a whole number from %" PRId64
				   " to %" PRId64, k->min, k->max);
		*(unsigned *)(base + k->off) = (unsigned)n;
		return 0;
	case K_RATE:
		d = -1;
		if (isdigit((unsigned char)*v) || *v == '.') {
			errno = 0;
			d = strtod(v, &end);
			if (errno || *end || !isfinite(d))
				d = -1;
		}
		if (d < 0)
			return bad(p, k, v, "is not a number >= 0");
		/* base + k->off is a double member (offsetof, see the key
		 * table): the cast is the field's own type, not a reinterpretation */
		/* cppcheck-suppress invalidPointerCast */
		*(double *)(base + k->off) = d;
		return 0;
	case K_ENUM:
		for (i = 0; k->choices[i]; i++)
			if (strcmp(v, k->choices[i]) == 0)
				break;
		if (!k->choices[i])
			return bad(p, k, v, "is not one of %s",
				choice_list(k->choices, names, sizeof(names)));
		*(int *)(base + k->off) = (int)i;
		return 0;
	case K_JOBTYPE: /* min: the inputs (M2W_IN_*) the type must take */
		if (!m2w_config_type(p->cfg, v) ||
		    (m2w_job_find(v)->inputs & (unsigned)k->min) !=
			    (unsigned)k->min)
			return bad(p, k, v, "is not a job type%s (%s)",
				   k->min == M2W_IN_CSV ? " read from CSV" : "",
				   m2w_job_names((unsigned)k->min, names,
						 sizeof(names)));
		snprintf(base + k->off, M2W_TYPE_MAX + 1, "%s", v);
		return 0;
	case K_DELIM:
		if (m2w_parse_delimiter(v, base + k->off) < 0)
			return bad(p, k, v, "is not auto, \",\", \";\" or tab");
		return 0;
	case K_REFUSE:
		mistake(p, p->line, "%s is not allowed in [%s]: %s", k->name,
			p->sec->name, k->note);
		return -1;
	}
	return 0;
}

/* A job's map section ([carriers]): `Free Text Name = value`. */
static int map_key(struct parser *p, const char *key, const char *value)
{
	const struct m2w_setting *k = p->sec->map;
	struct m2w_map *m = (struct m2w_map *)
		((char *)p->cfg->types[p->sec->type].settings + k->off);
	struct m2w_map_entry *e;
	char buf[96], buf2[96];
	size_t n = strlen(value);

	if (n == 0 || n > MAP_VALUE_MAX || strspn(value, k->charset) != n) {
		mistake(p, p->line, "%s %s: %s is not a %s code ([%s]+)",
			k->what, shown(buf, sizeof(buf), key),
			shown(buf2, sizeof(buf2), value), k->what,
			strcmp(k->charset, "abcdefghijklmnopqrstuvwxyz"
			       "0123456789_") == 0 ? "a-z0-9_" : k->charset);
		return -1;
	}
	if (m2w_map_get(m, key)) {
		mistake(p, p->line, "%s %s is already mapped above", k->what,
			shown(buf, sizeof(buf), key));
		return -1;
	}
	e = realloc(m->v, (m->n + 1) * sizeof(*e));
	if (!e) {
		mistake(p, p->line, "out of memory");
		return -1;
	}
	m->v = e;
	e += m->n;
	e->name = strdup(key);
	e->value = strdup(value);
	if (!e->name || !e->value) {
		free(e->name);
		free(e->value);
		mistake(p, p->line, "out of memory");
		return -1;
	}
	m->n++;
	return 0;
}

#define CFG(f) offsetof(struct m2w_config, f)
#define TYP(f) offsetof(struct m2w_type_cfg, f)

static const struct key_def store_keys[] = {
	{ "path", K_STR, CFG(store_path), 0, 0, 0, 1, NULL, NULL },
	{ "map_initial", K_SIZE, CFG(map_initial), 0, 0, 0, 0, NULL, NULL },
	{ "map_max", K_SIZE, CFG(map_max), 0, 0, 0, 0, NULL, NULL },
	{ "nosync", K_BOOL, CFG(nosync), 0, 0, 0, 0, NULL, NULL },
	{ "keep_done", K_MS, CFG(keep_done_ms), 0, 0, 0, 0, NULL, NULL },
	{ "keep_superseded", K_MS, CFG(keep_superseded_ms), 0, 0, 0, 0, NULL,
	  NULL },
	{ "keep_dead", K_MS, CFG(keep_dead_ms), 0, 0, 0, 0, NULL, NULL },
	{ "purge_interval", K_MS, CFG(purge_interval_ms), 0, 100, 0, 0, NULL,
	  NULL },
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

static const struct key_def magento_keys[] = {
	{ "base_url", K_URL, CFG(magento.base_url), 0, 0, 0, 0, NULL, NULL },
	{ "store_code", K_CODE, CFG(magento.store_code), 0, 0, 0, 0, NULL, NULL },
	{ "auth", K_ENUM, CFG(magento.auth), 0, 0, 0, 0, NULL, auth_names },
	{ "token", K_SECRET, CFG(magento.token), 0, 0, 0, 0, NULL, NULL },
	{ "username", K_CSTR, CFG(magento.username), 0, 0, 0, 0, NULL, NULL },
	{ "password", K_SECRET, CFG(magento.password), 0, 0, 0, 0, NULL, NULL },
	{ "admin_token_ttl", K_S_LONG, CFG(magento.admin_token_ttl_s), 0,
	  MS_S, 0, 0, NULL, NULL },
	{ "consumer_key", K_SECRET, CFG(magento.consumer_key), 0, 0, 0, 0,
	  NULL, NULL },
	{ "consumer_secret", K_SECRET, CFG(magento.consumer_secret), 0, 0, 0,
	  0, NULL, NULL },
	{ "access_token", K_SECRET, CFG(magento.access_token), 0, 0, 0, 0,
	  NULL, NULL },
	{ "access_token_secret", K_SECRET, CFG(magento.access_token_secret),
	  0, 0, 0, 0, NULL, NULL },
	{ "timeout", K_MS_LONG, CFG(magento.timeout_ms), 0, 1, 0, 0, NULL, NULL },
	{ "connect_timeout", K_MS_LONG, CFG(magento.connect_timeout_ms), 0, 1,
	  0, 0, NULL, NULL },
	{ "ca_file", K_CSTR, CFG(magento.ca_file), 0, 0, 0, 0, NULL, NULL },
	{ "proxy", K_CSTR, CFG(magento.proxy), 0, 0, 0, 0, NULL, NULL },
	{ "insecure", K_BOOL, CFG(magento.insecure), 0, 0, 0, 0, NULL, NULL },
	{ "rate_limit", K_RATE, CFG(rate_limit), 0, 0, 0, 0, NULL, NULL },
	{ "concurrency", K_STR, CFG(concurrency), 0, 0, 0, 1, NULL, NULL },
	{ "concurrency_min", K_UINT, CFG(concurrency_min), 0, 1, 1024, 0, NULL,
	  NULL },
	{ "concurrency_max", K_UINT, CFG(concurrency_max), 0, 1, 1024, 0, NULL,
	  NULL },
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

static const struct key_def workers_keys[] = {
	{ "threads", K_UINT, CFG(threads), 0, 1, 256, 0, NULL, NULL },
	{ "shutdown_grace", K_MS, CFG(grace_ms), 0, 0, 0, 0, NULL, NULL },
	{ "reap_interval", K_MS, CFG(reap_interval_ms), 0, 1, 0, 0, NULL, NULL },
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

static const struct key_def breaker_keys[] = {
	{ "failures", K_UINT, CFG(breaker_failures), 0, 1, 1000000, 0, NULL, NULL },
	{ "cooldown", K_MS, CFG(breaker_cooldown_ms), 0, 1, 0, 0, NULL, NULL },
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

static const struct key_def log_keys[] = {
	{ "level", K_LEVEL, CFG(log_level), 0, 0, 0, 0, NULL, NULL },
	{ "file", K_STR, CFG(log_file), 0, 0, 0, 0, NULL, NULL },
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

/* Every job type's section has these. */
#define TYPE_KEYS                                                            \
	{ "max_attempts", K_UINT, TYP(policy.max_attempts), 1, 1, 65535, 0,  \
	  NULL, NULL },                                                            \
	{ "backoff_base", K_MS, TYP(policy.backoff_base_ms), 1, 1, 0, 0,     \
	  NULL, NULL },                                                            \
	{ "backoff_cap", K_MS, TYP(policy.backoff_cap_ms), 1, 1, 0, 0,       \
	  NULL, NULL },                                                            \
	{ "jitter_percent", K_UINT, TYP(policy.jitter_pct), 1, 0, 100, 0,    \
	  NULL, NULL },                                                            \
	{ "concurrency", K_UINT, TYP(concurrency), 1, 0, 65535, 0, NULL, NULL },   \
	{ "lease", K_MS, TYP(lease_ms), 1, MS_S, 0, 0, NULL, NULL }

static const struct key_def type_keys[] = {
	TYPE_KEYS,
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

static const struct key_def http_keys[] = {
	{ "enabled", K_BOOL, CFG(http), 0, 0, 0, 0, NULL, NULL },
	{ "listen", K_STR, CFG(http_listen), 0, 0, 0, 1, NULL, NULL },
	{ "port", K_UINT, CFG(http_port), 0, 1, 65535, 0, NULL, NULL },
	{ "tokens", K_SECRET, CFG(http_tokens), 0, 0, 0, 0, NULL, NULL },
	{ "body_max", K_SIZE, CFG(http_body_max), 0, 0, 0, 0, NULL, NULL },
	{ "connections", K_UINT, CFG(http_connections), 0, 1, 1024, 0, NULL, NULL },
	{ "timeout", K_MS, CFG(http_timeout_ms), 0, MS_S, 0, 0, NULL, NULL },
	{ "console", K_BOOL, CFG(http_console), 0, 0, 0, 0, NULL, NULL },
	{ "console_users", K_SECRET, CFG(http_console_users), 0, 0, 0, 0, NULL,
	  NULL },
	{ "console_idle", K_MS, CFG(http_console_idle_ms), 0, MS_S, 0, 0,
	  NULL, NULL },
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

#define WAT(f) offsetof(struct m2w_watch_cfg, f)

static const struct key_def watch_keys[] = {
	{ "path", K_STR, WAT(path), ON_WATCH, 0, 0, 1, NULL, NULL },
	{ "type", K_JOBTYPE, WAT(type), ON_WATCH, M2W_IN_CSV, 0, 0, NULL, NULL },
	{ "processed", K_STR, WAT(processed), ON_WATCH, 0, 0, 1, NULL, NULL },
	{ "failed", K_STR, WAT(failed), ON_WATCH, 0, 0, 1, NULL, NULL },
	{ "pattern", K_STR, WAT(pattern), ON_WATCH, 0, 0, 1, NULL, NULL },
	{ "delimiter", K_DELIM, WAT(delimiter), ON_WATCH, 0, 0, 0, NULL, NULL },
	{ "mode", K_ENUM, WAT(poll), ON_WATCH, 0, 0, 0, NULL, watch_modes },
	{ "poll_interval", K_MS, WAT(poll_interval_ms), ON_WATCH, 10, 0, 0,
	  NULL, NULL },
	{ "settle", K_MS, WAT(settle_ms), ON_WATCH, 0, 0, 0, NULL, NULL },
	{ "columns", K_STR, WAT(columns), ON_WATCH, 0, 0, 0, NULL, NULL },
	{ "key_field", K_STR, WAT(key_field), ON_WATCH, 0, 0, 0, NULL, NULL },
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

/* [watch "NAME"]: a new directory entry with its defaults. */
static int watch_begin(struct parser *p, const char *name)
{
	struct m2w_config *cfg = p->cfg;
	struct m2w_watch_cfg *w;
	size_t i;

	for (i = 0; i < cfg->nwatches; i++)
		if (strcmp(cfg->watches[i].name, name) == 0) {
			mistake(p, p->line, "[watch \"%s\"] is already "
				"defined above", name);
			return -1;
		}
	w = realloc(cfg->watches, (cfg->nwatches + 1) * sizeof(*w));
	if (!w) {
		mistake(p, p->line, "out of memory");
		return -1;
	}
	cfg->watches = w;
	w += cfg->nwatches;
	memset(w, 0, sizeof(*w));
	if (!(w->name = dup_or_oom(p, name)) ||
	    !(w->pattern = dup_or_oom(p, "*.csv"))) {
		free(w->name);
		return -1;
	}
	w->poll_interval_ms = 2 * MS_S;
	w->settle_ms = 2 * MS_S;
	cfg->nwatches++;
	return 0;
}

#define AMQ(f) offsetof(struct m2w_amqp_cfg, f)
#define BRK(f) offsetof(struct m2w_broker, f)
/* The keys of a struct m2w_broker at offset `at` (of a section `on`). */
#define BROKER_KEYS(at, on)                                                  \
	{ "url", K_SECRET, (at) + BRK(url), on, 0, 0, 0, NULL, NULL },       \
	{ "user", K_SECRET, (at) + BRK(user), on, 0, 0, 0, NULL, NULL },     \
	{ "password", K_SECRET, (at) + BRK(password), on, 0, 0, 0, NULL,     \
	  NULL },                                                            \
	{ "vhost", K_STR, (at) + BRK(vhost), on, 0, 0, 1, NULL, NULL },      \
	{ "ca_file", K_STR, (at) + BRK(ca_file), on, 0, 0, 0, NULL, NULL },  \
	{ "verify", K_BOOL, (at) + BRK(verify), on, 0, 0, 0, NULL, NULL }

static const struct key_def amqp_keys[] = {
	BROKER_KEYS(AMQ(broker), ON_AMQP),
	{ "queue", K_STR, AMQ(queue), ON_AMQP, 0, 0, 1, NULL, NULL },
	{ "declare", K_BOOL, AMQ(declare), ON_AMQP, 0, 0, 0, NULL, NULL },
	{ "arguments", K_STR, AMQ(arguments), ON_AMQP, 0, 0, 0, NULL, NULL },
	{ "exchange", K_STR, AMQ(exchange), ON_AMQP, 0, 0, 0, NULL, NULL },
	{ "routing_keys", K_STR, AMQ(routing_keys), ON_AMQP, 0, 0, 0, NULL,
	  NULL },
	{ "prefetch", K_UINT, AMQ(prefetch), ON_AMQP, 1, 65535, 0, NULL, NULL },
	{ "window", K_UINT, AMQ(window), ON_AMQP, 0, 100000000, 0, NULL,
	  NULL },
	{ "type", K_JOBTYPE, AMQ(type), ON_AMQP, M2W_IN_JSON, 0, 0, NULL,
	  NULL },
	{ "key_field", K_STR, AMQ(key_field), ON_AMQP, 0, 0, 0, NULL, NULL },
	{ "handback", K_BOOL, AMQ(handback), ON_AMQP, 0, 0, 0, NULL, NULL },
	{ "standby", K_MS, AMQ(standby_ms), ON_AMQP, 0, 3600000, 0, NULL,
	  NULL },
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

/* [events]: on, with its defaults (strings set at the end when absent). */
static int events_begin(struct parser *p, const char *name)
{
	(void)name;
	p->cfg->events.enabled = 1;
	return 0;
}

#define EVT(f) CFG(events.f)

static const struct key_def events_keys[] = {
	BROKER_KEYS(EVT(broker), 0),
	{ "exchange", K_STR, EVT(exchange), 0, 0, 0, 1, NULL, NULL },
	{ "declare", K_BOOL, EVT(declare), 0, 0, 0, 0, NULL, NULL },
	{ "routing_key", K_STR, EVT(routing_key), 0, 0, 0, 1, NULL, NULL },
	{ NULL, K_STR, 0, 0, 0, 0, 0, NULL, NULL }
};

/* [amqp "NAME"]: a new queue entry with its defaults. */
static int amqp_begin(struct parser *p, const char *name)
{
	struct m2w_config *cfg = p->cfg;
	struct m2w_amqp_cfg *a;
	size_t i;

	for (i = 0; i < cfg->namqps; i++)
		if (strcmp(cfg->amqps[i].name, name) == 0) {
			mistake(p, p->line, "[amqp \"%s\"] is already "
				"defined above", name);
			return -1;
		}
	a = realloc(cfg->amqps, (cfg->namqps + 1) * sizeof(*a));
	if (!a) {
		mistake(p, p->line, "out of memory");
		return -1;
	}
	cfg->amqps = a;
	a += cfg->namqps;
	memset(a, 0, sizeof(*a));
	if (!(a->name = dup_or_oom(p, name)))
		return -1;
	a->declare = 1;
	a->broker.verify = 1;
	a->prefetch = 200;
	a->window = 5000;
	cfg->namqps++;
	return 0;
}

/* The sections. A later one (`[watch "3pl"]` of the ingest) is one entry:
 * named = 1, a `begin` that makes the entry the name refers to, and a
 * `key` callback (or a key table) that fills it. The job types' sections
 * ([tracking] ...) and their map sections ([carriers]) come after these,
 * from the job table (sections_init). */
static const struct section_def sections[] = {
	{ "store", 0, store_keys, -1, NULL, NULL, NULL },
	{ "magento", 0, magento_keys, -1, NULL, NULL, NULL },
	{ "workers", 0, workers_keys, -1, NULL, NULL, NULL },
	{ "breaker", 0, breaker_keys, -1, NULL, NULL, NULL },
	{ "log", 0, log_keys, -1, NULL, NULL, NULL },
	{ "http", 0, http_keys, -1, NULL, NULL, NULL },
	{ "watch", 1, watch_keys, -1, NULL, NULL, watch_begin },
	{ "amqp", 1, amqp_keys, -1, NULL, NULL, amqp_begin },
	{ "events", 0, events_keys, -1, NULL, NULL, events_begin },
};

/* The fixed sections, then [NAME] of each job type and its map
 * sections. */
static void sections_init(struct parser *p)
{
	const struct m2w_setting *k;
	size_t i, max = sizeof(p->secs) / sizeof(p->secs[0]);

	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		p->secs[p->nsecs++] = sections[i];
	for (i = 0; i < p->cfg->ntypes && p->nsecs < max; i++) {
		struct section_def d = { p->cfg->types[i].name, 0, type_keys,
					 (int)i, NULL, NULL, NULL };

		p->secs[p->nsecs++] = d;
		for (k = p->cfg->types[i].job->settings; k && k->name &&
		     p->nsecs < max; k++) {
			if (k->kind != M2W_SET_MAP)
				continue;
			d.name = k->name;
			d.keys = NULL;
			d.map = k;
			d.key = map_key;
			p->secs[p->nsecs++] = d;
		}
	}
}

/*
 * A key of a job type's section beyond the policy keys: `batch` (a range
 * from the job, or refused with its note) or one of the job's settings.
 * Fills *def; 0, or -1 when the job has no such key.
 */
static int job_key(const struct parser *p, const char *key,
		   struct key_def *def)
{
	const struct m2w_job *job = p->cfg->types[p->sec->type].job;
	const struct m2w_setting *k;

	memset(def, 0, sizeof(*def));
	if (strcmp(key, "batch") == 0 && (job->batch || job->batch_note)) {
		def->name = "batch";
		def->kind = job->batch ? K_UINT : K_REFUSE;
		def->off = TYP(batch);
		def->on_type = 1;
		def->min = 1;
		def->max = job->batch_max ? job->batch_max : job->batch;
		def->note = job->batch_note;
		return 0;
	}
	for (k = job->settings; k && k->name; k++) {
		if (strcmp(k->name, key) != 0 || k->kind == M2W_SET_MAP)
			continue;
		def->name = k->name;
		def->kind = k->kind == M2W_SET_STR ? K_STR :
			    k->kind == M2W_SET_BOOL ? K_BOOL : K_ENUM;
		def->off = k->off;
		def->on_type = ON_SETTINGS;
		def->nonempty = k->nonempty;
		def->choices = k->choices;
		return 0;
	}
	return -1;
}

/* --------------------------------------------------------------- the lines */

static char *trim(char *s)
{
	size_t n;

	while (*s && isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Removes surrounding double quotes in place (\" and \\ inside); -1 when
 * the quotes do not close or text follows them. */
static int unquote(char *v)
{
	char *r = v + 1, *w = v;

	if (*v != '"')
		return 0;
	for (; *r && *r != '"'; r++) {
		if (r[0] == '\\' && (r[1] == '"' || r[1] == '\\'))
			r++;
		*w++ = *r;
	}
	if (*r != '"' || r[1])
		return -1;
	*w = '\0';
	return 0;
}

/* `[name]` or `[name "sub"]`. */
static void section_line(struct parser *p, char *s)
{
	char *end = s + strlen(s) - 1, *name, *sub = NULL, buf[96];
	size_t i, n;

	p->sec = NULL;
	free(p->sec_name);
	p->sec_name = NULL;
	p->skip = 1;   /* until the header is known good */
	if (*end != ']') {
		mistake(p, p->line, "bad section header (expected [name] or "
			"[name \"sub\"])");
		return;
	}
	*end = '\0';
	name = trim(s + 1);
	n = strspn(name, "abcdefghijklmnopqrstuvwxyz"
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
	if (name[n]) {
		if (!isspace((unsigned char)name[n])) {
			mistake(p, p->line, "bad section header (expected "
				"[name] or [name \"sub\"])");
			return;
		}
		name[n] = '\0';
		sub = trim(name + n + 1);
		if (*sub != '"' || unquote(sub) < 0) {
			mistake(p, p->line, "bad section header (expected "
				"[name] or [name \"sub\"])");
			return;
		}
	}
	if (n == 0) {
		mistake(p, p->line, "bad section header (expected [name] or "
			"[name \"sub\"])");
		return;
	}
	for (i = 0; i < p->nsecs; i++)
		if (strcmp(p->secs[i].name, name) == 0)
			break;
	if (i == p->nsecs) {
		if (sub)
			mistake(p, p->line, "unknown section [%s %s]", name,
				shown(buf, sizeof(buf), sub));
		else
			mistake(p, p->line, "unknown section [%s]", name);
		return;
	}
	if (p->secs[i].named && (!sub || !*sub)) {
		mistake(p, p->line, "section [%s] needs a name: [%s \"...\"]",
			name, name);
		return;
	}
	if (!p->secs[i].named && sub) {
		mistake(p, p->line, "section [%s] takes no name", name);
		return;
	}
	if (sub && !(p->sec_name = dup_or_oom(p, sub)))
		return;
	p->sec = &p->secs[i];
	if (p->sec->begin && p->sec->begin(p, sub) < 0) {
		p->sec = NULL;
		return;
	}
	p->skip = 0;
}

static void key_line(struct parser *p, char *s, char *eq)
{
	const struct key_def *k;
	struct key_def jk;
	char *key, *value;
	int prev;

	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (!*key) {
		mistake(p, p->line, "expected key = value");
		return;
	}
	if (!p->sec) {
		if (!p->skip)
			mistake(p, p->line, "key \"%.64s\" is outside any "
				"section (put it under [section])", key);
		return;
	}
	if (unquote(value) < 0) {
		mistake(p, p->line, "%.64s: the quoted value does not close "
			"(or text follows the closing quote)", key);
		return;
	}
	if (!p->sec->keys) {
		p->sec->key(p, key, value);
		return;
	}
	for (k = p->sec->keys; k->name; k++)
		if (strcmp(k->name, key) == 0)
			break;
	if (!k->name && p->sec->type >= 0 && job_key(p, key, &jk) == 0)
		k = &jk;
	if (!k->name) {
		mistake(p, p->line, "unknown key \"%.64s\" in [%s]", key,
			p->sec->name);
		return;
	}
	prev = remember(p, k->name);
	if (prev < 0) {
		mistake(p, p->line, "out of memory");
		return;
	}
	if (prev > 0) {
		mistake(p, p->line, "duplicate key %s in [%s] (first at line "
			"%d)", k->name, p->sec->name, prev);
		return;
	}
	if (set_key(p, k, value) < 0)
		p->seen[p->nseen - 1].bad = 1;
}

static void one_line(struct parser *p, char *line)
{
	char *s = trim(line), *eq;

	if (!*s || *s == '#' || *s == ';')
		return;
	if (*s == '[') {
		section_line(p, s);
		return;
	}
	eq = strchr(s, '=');
	if (!eq) {
		/* the line is not shown: it may be a pasted secret */
		mistake(p, p->line, "expected key = value");
		return;
	}
	key_line(p, s, eq);
}

/* ------------------------------------------------------------ cross-checks */

/* A credential the auth mode needs; not again when its line was wrong. */
static void need(struct parser *p, int auth_line, const char *mode,
		 const char *key, const char *value)
{
	if (!value && !seen_bad(p, "magento", key))
		mistake(p, auth_line, "auth = %s needs %s in [magento]", mode,
			key);
}

static void check_all(struct parser *p)
{
	struct m2w_config *cfg = p->cfg;
	const struct m2_client_opts *m = &cfg->magento;
	static const char *const creds[] = {
		"token", "username", "password", "consumer_key",
		"consumer_secret", "access_token", "access_token_secret",
	};
	char eb[M2W_ERRBUF_SIZE];
	const char *mode;
	int line, l;
	size_t i;

	if (!m->base_url && !seen_line(p, "magento", "base_url"))
		mistake(p, 0, "[magento] base_url is required");

	line = seen_line(p, "magento", "auth");
	mode = auth_names[m->auth];
	switch (m->auth) {
	case M2_AUTH_TOKEN:
		need(p, line, mode, "token", m->token);
		break;
	case M2_AUTH_ADMIN:
		need(p, line, mode, "username", m->username);
		need(p, line, mode, "password", m->password);
		break;
	case M2_AUTH_OAUTH:
		need(p, line, mode, "consumer_key", m->consumer_key);
		need(p, line, mode, "consumer_secret", m->consumer_secret);
		need(p, line, mode, "access_token", m->access_token);
		need(p, line, mode, "access_token_secret",
		     m->access_token_secret);
		break;
	default:
		/* credentials without `auth`: would silently send none */
		for (i = 0; !line && i < sizeof(creds) / sizeof(creds[0]); i++)
			if ((l = seen_line(p, "magento", creds[i])) > 0)
				mistake(p, l, "%s is set but auth is not (add "
					"auth = %s to [magento])", creds[i],
					i == 0 ? "token" : i < 3 ? "admin" :
					"oauth");
		break;
	}

	for (i = 0; i < cfg->ntypes; i++) {
		const struct m2w_policy *pol = &cfg->types[i].policy;

		if (pol->backoff_cap_ms >= pol->backoff_base_ms)
			continue;
		l = seen_line(p, cfg->types[i].name, "backoff_cap");
		if (!l)
			l = seen_line(p, cfg->types[i].name, "backoff_base");
		mistake(p, l, "[%s] backoff_cap (%" PRId64 "ms) is below "
			"backoff_base (%" PRId64 "ms)", cfg->types[i].name,
			pol->backoff_cap_ms, pol->backoff_base_ms);
	}

	/* what the worker pool's limiter takes (worker.c pool_limit) */
	if (m2w_pool_limit_cfg(cfg, NULL, eb))
		mistake(p, seen_line(p, "magento", "concurrency") ?
			seen_line(p, "magento", "concurrency") :
			seen_line(p, "magento", "concurrency_max"),
			"[magento] %s", eb);
	if (cfg->http_console && !cfg->http)
		mistake(p, seen_line(p, "http", "console"), "[http] console = "
			"yes needs enabled = yes (the console is served by the "
			"HTTP listener)");
	if (cfg->http && !cfg->http_tokens && !cfg->http_console &&
	    !seen_bad(p, "http", "tokens"))
		mistake(p, seen_line(p, "http", "enabled"), "[http] enabled "
			"needs tokens (clients send them as Bearer tokens)");
	else if (cfg->http && cfg->http_console && !cfg->http_console_users &&
		 !seen_bad(p, "http", "console_users"))
		mistake(p, seen_line(p, "http", "console"), "[http] console "
			"needs console_users (NAME:ROLE:HASH, from `m2worker "
			"--hash-password`)");
#ifdef HAVE_MHD
	/* what the HTTP server itself refuses at start */
	else if (cfg->http && m2w_http_cfg_check(cfg, eb))
		mistake(p, seen_line(p, "http", strstr(eb, "console_users")
				     ? "console_users" : "tokens"), "%s", eb);
#endif
	/* what the Magento client refuses at start: base_url's form (the
	 * credentials of the auth mode are the checks above, said once) */
	if (m->base_url && m2_client_check(m, eb) == M2W_EINVAL &&
	    strncmp(eb, "auth ", 5) != 0)
		mistake(p, seen_line(p, "magento", "base_url"), "[magento] %s",
			eb);
	for (i = 0; i < cfg->nwatches; i++) {
		const struct m2w_watch_cfg *w = &cfg->watches[i];
		size_t j;

		if (!w->path && !seen_bad(p, "watch", "path"))
			mistake(p, 0, "[watch \"%s\"] needs path", w->name);
		if (!w->type[0] && !seen_bad(p, "watch", "type"))
			mistake(p, 0, "[watch \"%s\"] needs type", w->name);
		/* what the watcher itself refuses at start */
		if (w->path && w->type[0] && m2w_watch_cfg_check(w, eb))
			mistake(p, 0, "%s", eb);
		for (j = 0; j < i && w->path; j++)
			if (cfg->watches[j].path &&
			    strcmp(cfg->watches[j].path, w->path) == 0)
				mistake(p, 0, "[watch \"%s\"] and [watch \"%s\"] "
					"watch the same path", cfg->watches[j].name,
					w->name);
	}

	for (i = 0; i < cfg->namqps; i++) {
		const struct m2w_amqp_cfg *a = &cfg->amqps[i];

		if (!a->broker.url && !seen_bad(p, "amqp", "url"))
			mistake(p, 0, "[amqp \"%s\"] needs url", a->name);
		if (!a->queue && !seen_bad(p, "amqp", "queue"))
			mistake(p, 0, "[amqp \"%s\"] needs queue", a->name);
		/* what the AMQP source itself refuses at start */
		if (a->broker.url && a->queue && m2w_amqp_cfg_check(a, eb))
			mistake(p, 0, "%s", eb);
	}
	if (cfg->events.enabled) {
		if (!cfg->events.exchange)
			cfg->events.exchange = dup_or_oom(p, "m2worker.events");
		if (!cfg->events.routing_key)
			cfg->events.routing_key = dup_or_oom(p, "{type}.{state}");
		if (!cfg->events.broker.url && !seen_bad(p, "events", "url"))
			mistake(p, 0, "[events] needs url");
		else if (cfg->events.broker.url &&
			 m2w_events_cfg_check(&cfg->events, eb))
			mistake(p, 0, "%s", eb);
	}

	if (cfg->map_initial > cfg->map_max) {
		l = seen_line(p, "store", "map_initial");
		if (!l)
			l = seen_line(p, "store", "map_max");
		mistake(p, l, "[store] map_initial (%zu bytes) is above map_max "
			"(%zu bytes)", cfg->map_initial, cfg->map_max);
	}
}

/* ------------------------------------------------------------------- load */

static void read_lines(struct parser *p, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, f)) >= 0) {
		char *s = line;

		p->line++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (p->line == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
			s += 3;
			n -= 3;
		}
		if (n > LINE_MAX_BYTES) {
			mistake(p, p->line, "line is longer than %d bytes",
				LINE_MAX_BYTES);
			continue;
		}
		if (strlen(s) != (size_t)n) {
			mistake(p, p->line, "line holds a NUL byte");
			continue;
		}
		one_line(p, s);
	}
	if (ferror(f))
		mistake(p, 0, "read error: %s", strerror(errno));
	free(line);
}

int m2w_config_load(const char *path, struct m2w_config *cfg, char *report,
		    size_t len)
{
	struct parser p;
	FILE *f;
	size_t i;

	memset(&p, 0, sizeof(p));
	p.file = path ? path : "(null)";
	p.cfg = cfg;
	p.report = report;
	p.len = len;
	if (report && len)
		report[0] = '\0';

	/* cfg holds the defaults (or an earlier file: files can be layered);
	 * these three are never NULL unless m2w_config_defaults ran out */
	for (i = 0; i < cfg->ntypes; i++)
		if (cfg->types[i].job->settings_size && !cfg->types[i].settings)
			break;
	if (!cfg->store_path || !cfg->magento.store_code || i < cfg->ntypes) {
		mistake(&p, 0, "out of memory");
		return p.count;
	}
	sections_init(&p);
	if (!path) {
		mistake(&p, 0, "no configuration file given");
		return p.count;
	}
	free(cfg->path);
	cfg->path = strdup(path);
	f = fopen(path, "r");
	if (!f) {
		mistake(&p, 0, "cannot open: %s", strerror(errno));
		return p.count;
	}
	read_lines(&p, f);
	fclose(f);
	check_all(&p);

	for (i = 0; i < p.nseen; i++)
		free(p.seen[i].name);
	free(p.seen);
	free(p.sec_name);
	return p.count;
}
