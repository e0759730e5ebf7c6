/*
 * console.c - the web console's server side (console.h): users, sessions,
 * the pages and the JSON API under /ui/.
 *
 * Users are parsed once at start from [http] console_users; a password is
 * checked with crypt(3) against the stored hash and the two compared in
 * constant time. An unknown user costs a crypt of the same kind, so the
 * answer time does not say which names exist; every refusal also waits a
 * second in its own connection thread (each connection has one) to slow
 * guessing.
 *
 * Sessions live in a fixed table under a mutex: the SHA-256 of the cookie
 * value (never the value itself), the user, the CSRF token, the login time
 * and the last use. A full table drops the least recently used session.
 *
 * Requests: m2w_console_route sees the method and path. Pages and assets
 * come from m2w_assets (generated from src/console/); a page without a
 * valid session is a 303 to the login page, an API call a 401 (the page's
 * script then goes to the login). A POST needs a session (but the login),
 * a JSON body, the CSRF token, and for anything but logout the operator
 * role; m2w_console_post answers it. Each action is one library call per
 * task, or one selection call, exactly as qctl makes it: requeue
 * (m2w_queue_requeue), delete (m2w_queue_delete per id, or
 * m2w_queue_delete_dead for a group), retry-now (m2w_queue_retry_now),
 * pause (m2w_queue_pause); each is logged as "console.action" with the user.
 *
 * The overview puts together the store's counts (m2w_queue_stats, shaped
 * by m2w_stats_json as `qctl stats --json`), the breaker, the disk's free
 * space, the AMQP links' health lines, the watched directories' last
 * files (watch.h) and when the history (series.h, owned here) began.
 */
#include "config.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "amqp.h"
#include "console.h"
#include "events.h"
#include "http_internal.h"
#include "m2worker/admin.h"
#include "m2worker/buf.h"
#include "m2worker/clock.h"
#include "m2worker/log.h"
#include "m2worker/report.h"
#include "series.h"
#include "watch.h"
#include "worker.h"

#define SESSIONS_MAX 256
#define SESSION_LIFE_MS (12 * 3600 * 1000LL)
#define TOKEN_BYTES 32
#define HEX (2 * TOKEN_BYTES + 1)
#define IDS_MAX 10000          /* task ids in one POST */
#define LIST_MAX 500           /* tasks in one page */
#define NAME_MAX_LEN 64
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" \
	"0123456789._@-"

enum role { VIEWER, OPERATOR };

struct user {
	char name[NAME_MAX_LEN];
	int role;
	char *hash;
};

struct session {
	unsigned char id[32];    /* SHA-256 of the cookie's value; 0 = free */
	int user;
	char csrf[HEX];
	int64_t created, used;   /* ms */
};

struct m2w_console {
	struct m2w_queue *q;
	const struct m2w_config *cfg;
	struct m2w_pool *pool;
	struct m2w_watcher *watcher;
	struct m2w_amqp *amqp;
	struct m2w_events *events;
	struct m2w_series *series;
	struct user *users;
	size_t nusers;
	char dummy_hash[128];    /* checked for unknown users */
	pthread_mutex_t mu;
	struct session s[SESSIONS_MAX];
};

/* What a request carries, once looked up. */
struct who {
	struct session s;        /* a copy; s.user < 0: no session */
	const struct user *u;
	char peer[64];
};

/* -------------------------------------------------------------- helpers */

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int random_hex(char *out)
{
	unsigned char b[TOKEN_BYTES];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	hex(b, sizeof(b), out);
	OPENSSL_cleanse(b, sizeof(b));
	return 0;
}

static void sha256(const char *s, unsigned char *md)
{
	unsigned int len = 0;

	if (!EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL))
		memset(md, 0xff, 32);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static const char *arg(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						    name);

	return v && *v ? v : NULL;
}

static int64_t arg_ms(struct MHD_Connection *c, const char *name)
{
	const char *v = arg(c, name);

	return v ? strtoll(v, NULL, 10) : 0;
}

static void ui_error(struct m2w_reply *r, int status, const char *msg)
{
	m2w_reply_error(r, status, "%s", msg);
	r->ui = 1;
}

static void ui_json(struct m2w_reply *r, json_object *o)
{
	if (!o) {
		ui_error(r, 500, "out of memory");
		return;
	}
	m2w_reply_json(r, 200, o);
	r->ui = 1;
}

static void store_error(struct m2w_reply *r, int rc, const char *eb)
{
	int status = rc == M2W_ENOTFOUND ? 404 : rc == M2W_ESTATE ? 409
		     : rc == M2W_EINVAL ? 400 : 500;

	m2w_reply_error(r, status, "%s", eb && *eb ? eb : m2w_strerror(rc));
	r->ui = 1;
}

/* ----------------------------------------------------------------- users */

/* crypt_r, or libxcrypt's crypt_rn where there is one: it says failure
 * with NULL rather than a "*" string, and no sanitizer intercepts it
 * (ThreadSanitizer's crypt_r interceptor jumps to NULL with libxcrypt). */
static const char *crypt_with(const char *phrase, const char *setting,
			      struct crypt_data *cd)
{
#ifdef XCRYPT_VERSION_NUM
	return crypt_rn(phrase, setting, cd, (int)sizeof(*cd));
#else
	return crypt_r(phrase, setting, cd);
#endif
}

/* Does libcrypt take `hash` (a "$id$salt$..." it knows)? */
static int hash_ok(struct crypt_data *cd, const char *hash)
{
	const char *r;

	if (hash[0] != '$')
		return 0;
	memset(cd, 0, sizeof(*cd));
	r = crypt_with("probe", hash, cd);
	return r && r[0] != '*' && strncmp(r, hash, 3) == 0;
}

/* "NAME:ROLE:HASH, ..." into users. */
static int parse_users(const char *list, struct user **out, size_t *n,
		       char *errbuf)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	char *copy = strdup(list ? list : ""), *save = NULL, *item;
	struct user *u = NULL, *g;
	int rc = M2W_OK;

	*out = NULL;
	*n = 0;
	if (!cd || !copy) {
		rc = m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
		goto out;
	}
	for (item = strtok_r(copy, ",", &save); item && rc == M2W_OK;
	     item = strtok_r(NULL, ",", &save)) {
		char *name, *role, *hash, *c1, *c2;
		size_t len;

		while (isspace((unsigned char)*item))
			item++;
		len = strlen(item);
		while (len && isspace((unsigned char)item[len - 1]))
			item[--len] = '\0';
		if (!len)
			continue;
		c1 = strchr(item, ':');
		c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2) {
			rc = m2w_fail(errbuf, M2W_EINVAL, "[http] console_users: "
				      "\"%.40s...\" is not NAME:ROLE:HASH", item);
			break;
		}
		*c1 = *c2 = '\0';
		name = item;
		role = c1 + 1;
		hash = c2 + 1;
		/* names go into log lines as they are: no spaces, quotes */
		if (!*name || strlen(name) >= NAME_MAX_LEN ||
		    strspn(name, NAME_CHARS) != strlen(name)) {
			rc = m2w_fail(errbuf, M2W_EINVAL, "[http] console_users: "
				      "a user name is 1 to %d of A-Z a-z 0-9 . _ "
				      "@ -", NAME_MAX_LEN - 1);
			break;
		}
		if (strcmp(role, "viewer") != 0 && strcmp(role, "operator") != 0) {
			rc = m2w_fail(errbuf, M2W_EINVAL, "[http] console_users: "
				      "%s: role \"%.20s\" is not viewer or "
				      "operator", name, role);
			break;
		}
		if (!hash_ok(cd, hash)) {
			rc = m2w_fail(errbuf, M2W_EINVAL, "[http] console_users: "
				      "%s: not a crypt(3) hash this system "
				      "knows (make one with `m2worker "
				      "--hash-password`; never a password)",
				      name);
			break;
		}
		if (!(g = realloc(u, (*n + 1) * sizeof(*u)))) {
			rc = m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
			break;
		}
		u = g;
		memset(&u[*n], 0, sizeof(*u));
		snprintf(u[*n].name, sizeof(u[*n].name), "%s", name);
		u[*n].role = strcmp(role, "operator") == 0 ? OPERATOR : VIEWER;
		if (!(u[*n].hash = strdup(hash))) {
			rc = m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
			break;
		}
		(*n)++;
	}
	if (rc == M2W_OK && !*n)
		rc = m2w_fail(errbuf, M2W_EINVAL, "[http] console_users: no "
			      "user (the console needs at least one)");
out:
	if (rc != M2W_OK) {
		while (u && *n)
			free(u[--*n].hash);
		free(u);
		u = NULL;
	}
	*out = u;
	if (copy) {
		OPENSSL_cleanse(copy, strlen(copy));
		free(copy);
	}
	free(cd);
	return rc;
}

static void users_free(struct user *u, size_t n)
{
	while (u && n)
		free(u[--n].hash);
	free(u);
}

int m2w_console_cfg_check(const struct m2w_config *cfg, char *errbuf)
{
	struct user *u;
	size_t n;
	int rc = parse_users(cfg->http_console_users, &u, &n, errbuf);

	users_free(u, n);
	return rc;
}

int m2w_console_hash(const char *password, char *out, size_t size)
{
	static const char b64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz";
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	unsigned char r[16];
	char salt[32];
	const char *h;
	size_t i;
	int rc = M2W_EIO;

	if (!cd || RAND_bytes(r, sizeof(r)) != 1)
		goto out;
	memcpy(salt, "$6$", 3);
	for (i = 0; i < 16; i++)
		salt[3 + i] = b64[r[i] & 63];
	salt[19] = '$';
	salt[20] = '\0';
	h = crypt_with(password, salt, cd);
	if (h && h[0] == '$' && strlen(h) < size) {
		snprintf(out, size, "%s", h);
		rc = M2W_OK;
	}
out:
	if (cd) {
		OPENSSL_cleanse(cd, sizeof(*cd));
		free(cd);
	}
	return rc;
}

/* Is `password` the user's? Runs a crypt for unknown users too. */
static int password_ok(struct m2w_console *k, const struct user *u,
		       const char *password)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *hash = u ? u->hash : k->dummy_hash, *r;
	int ok = 0;

	if (!cd)
		return 0;
	r = crypt_with(password, hash, cd);
	if (r && r[0] != '*' && strlen(r) == strlen(hash))
		ok = CRYPTO_memcmp(r, hash, strlen(hash)) == 0;
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return ok && u;
}

/* ------------------------------------------------------------- sessions */

/* The session of the request's cookie, copied into w->s (w->s.user -1:
 * none or expired); its last use becomes now. */
static void session_find(struct m2w_console *k, struct MHD_Connection *c,
			 struct who *w)
{
	const char *v = MHD_lookup_connection_value(c, MHD_COOKIE_KIND,
						    "m2w_session");
	int64_t now = m2w_clock_ms();
	unsigned char md[32];
	size_t i, hit = SESSIONS_MAX;

	memset(&w->s, 0, sizeof(w->s));
	w->s.user = -1;
	w->u = NULL;
	m2w_http_peer(c, w->peer, sizeof(w->peer));
	if (!v || strlen(v) != HEX - 1)
		return;
	sha256(v, md);
	pthread_mutex_lock(&k->mu);
	for (i = 0; i < SESSIONS_MAX; i++)
		if (k->s[i].used && CRYPTO_memcmp(k->s[i].id, md, 32) == 0)
			hit = i;
	if (hit < SESSIONS_MAX) {
		struct session *s = &k->s[hit];

		if (now - s->used > k->cfg->http_console_idle_ms ||
		    now - s->created > SESSION_LIFE_MS) {
			memset(s, 0, sizeof(*s));
		} else {
			s->used = now;
			w->s = *s;
			w->u = &k->users[s->user];
		}
	}
	pthread_mutex_unlock(&k->mu);
}

/* A new session for user `ui`: its cookie value into cookie (HEX). */
static int session_new(struct m2w_console *k, int ui, char *cookie,
		       struct session *out)
{
	int64_t now = m2w_clock_ms();
	size_t i, pick = 0;
	struct session s;

	memset(&s, 0, sizeof(s));
	if (random_hex(cookie) || random_hex(s.csrf))
		return -1;
	sha256(cookie, s.id);
	s.user = ui;
	s.created = s.used = now;
	pthread_mutex_lock(&k->mu);
	for (i = 0; i < SESSIONS_MAX; i++) {
		if (!k->s[i].used) {
			pick = i;
			break;
		}
		if (k->s[i].used < k->s[pick].used)
			pick = i;   /* full: the least recently used goes */
	}
	k->s[pick] = s;
	pthread_mutex_unlock(&k->mu);
	*out = s;
	return 0;
}

static void session_drop(struct m2w_console *k, const struct session *s)
{
	size_t i;

	pthread_mutex_lock(&k->mu);
	for (i = 0; i < SESSIONS_MAX; i++)
		if (k->s[i].used && memcmp(k->s[i].id, s->id, 32) == 0)
			memset(&k->s[i], 0, sizeof(k->s[i]));
	pthread_mutex_unlock(&k->mu);
}

/* "; Secure" behind a TLS proxy. */
static const char *secure(struct MHD_Connection *c)
{
	const char *p = header(c, "X-Forwarded-Proto");

	return p && strcasecmp(p, "https") == 0 ? "; Secure" : "";
}

/* ---------------------------------------------------------------- pages */

static const struct m2w_asset *asset(const char *name)
{
	const struct m2w_asset *a;

	for (a = m2w_assets; a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static void serve(struct m2w_reply *r, const struct m2w_asset *a,
		  const char *cache)
{
	free(r->body);
	r->body = NULL;
	r->status = 200;
	r->fixed = a->data;
	r->fixed_len = a->len;
	r->ctype = a->ctype;
	r->cache = cache;
	r->ui = 1;
}

/* Appends one query argument, URL-encoded, to the redirect's `next`. */
struct next_buf {
	char s[512];
	size_t n;
	int first;
};

static void enc(struct next_buf *b, const char *v)
{
	static const char d[] = "0123456789ABCDEF";

	for (; *v && b->n + 4 < sizeof(b->s); v++) {
		unsigned char ch = (unsigned char)*v;

		if (isalnum(ch) || strchr("-._~/", ch)) {
			b->s[b->n++] = (char)ch;
		} else {
			b->s[b->n++] = '%';
			b->s[b->n++] = d[ch >> 4];
			b->s[b->n++] = d[ch & 15];
		}
	}
	b->s[b->n] = '\0';
}

static mhd_ret add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
			  const char *value)
{
	struct next_buf *b = cls;

	(void)kind;
	enc(b, b->first ? "?" : "&");
	b->first = 0;
	enc(b, key);
	if (value) {
		enc(b, "=");
		enc(b, value);
	}
	return MHD_YES;
}

static void to_login(struct MHD_Connection *c, const char *path,
		     struct m2w_reply *r)
{
	struct next_buf b;

	memset(&b, 0, sizeof(b));
	b.first = 1;
	enc(&b, path);
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, &b);
	m2w_reply_text(r, 303, "text/plain; charset=utf-8",
		       "the console needs a login: /ui/login\n");
	m2w_reply_header(r, "Location: /ui/login?next=%s", b.s);
	r->ui = 1;
}

static const char *page_of(const char *path)
{
	if (strcmp(path, "/ui/") == 0)
		return "index.html";
	if (strcmp(path, "/ui/tasks") == 0)
		return "tasks.html";
	if (strcmp(path, "/ui/task") == 0)
		return "task.html";
	if (strcmp(path, "/ui/dead") == 0)
		return "dead.html";
	return NULL;
}

/* ------------------------------------------------------------ the GETs */

static void api_me(struct m2w_console *k, const struct who *w,
		   struct m2w_reply *out)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "user", json_object_new_string(w->u->name));
	json_object_object_add(o, "role", json_object_new_string(
				       w->u->role == OPERATOR ? "operator"
							      : "viewer"));
	json_object_object_add(o, "csrf", json_object_new_string(w->s.csrf));
	json_object_object_add(o, "history_since", json_object_new_int64(
				       m2w_series_since(k->series)));
	json_object_object_add(o, "version",
			       json_object_new_string(PACKAGE_VERSION));
	ui_json(out, o);
}

/* The health lines of the AMQP consumers and the publisher ("amqp NAME:
 * up (detail)" / "events: down: why") as [{"name","state","detail"}]. */
static json_object *links_json(struct m2w_console *k)
{
	struct m2w_buf t = M2W_BUF_INIT;
	json_object *arr = json_object_new_array();
	const char *p, *e;

	m2w_amqp_health(k->amqp, &t);
	m2w_events_health(k->events, &t);
	for (p = m2w_buf_str(&t); p && *p; p = *e ? e + 1 : e) {
		char line[512], *colon, *state, *detail;
		json_object *l;

		e = strchr(p, '\n');
		if (!e)
			e = p + strlen(p);
		snprintf(line, sizeof(line), "%.*s", (int)(e - p), p);
		if (!(colon = strstr(line, ": ")))
			continue;
		*colon = '\0';
		state = colon + 2;
		detail = state + strcspn(state, " :");
		if (*detail)
			*detail++ = '\0';
		detail += strspn(detail, " :(");
		if (*detail && detail[strlen(detail) - 1] == ')')
			detail[strlen(detail) - 1] = '\0';
		l = json_object_new_object();
		json_object_object_add(l, "name", json_object_new_string(line));
		json_object_object_add(l, "state", json_object_new_string(state));
		json_object_object_add(l, "detail",
				       json_object_new_string(detail));
		json_object_array_add(arr, l);
	}
	m2w_buf_release(&t);
	return arr;
}

static json_object *watch_json(struct m2w_console *k)
{
	static const char *const outcome[] = { "done", "seen_before",
					       "failed" };
	struct m2w_watch_file *f = calloc(M2W_WATCH_RECENT, sizeof(*f));
	json_object *arr = json_object_new_array();
	size_t i, j, n;

	for (i = 0; f && i < m2w_watch_dirs(k->watcher); i++) {
		const char *name = "", *path = "";
		json_object *d = json_object_new_object(),
			    *files = json_object_new_array();

		n = m2w_watch_recent(k->watcher, i, f, &name, &path);
		for (j = 0; j < n; j++) {
			json_object *e = json_object_new_object();

			json_object_object_add(e, "name",
					       json_object_new_string(f[j].name));
			json_object_object_add(e, "at_ms",
					       json_object_new_int64(f[j].at_ms));
			json_object_object_add(e, "outcome",
					       json_object_new_string(
						       outcome[f[j].outcome]));
			json_object_object_add(e, "rows", json_object_new_int64(
						       (int64_t)f[j].rows));
			json_object_object_add(e, "accepted",
					       json_object_new_int64(
						       (int64_t)f[j].accepted));
			json_object_object_add(e, "duplicates",
					       json_object_new_int64(
						       (int64_t)f[j].duplicates));
			json_object_object_add(e, "rejected",
					       json_object_new_int64(
						       (int64_t)f[j].rejected));
			json_object_object_add(e, "moved_to", *f[j].moved_to
					       ? json_object_new_string(
						       f[j].moved_to) : NULL);
			json_object_object_add(e, "errors_file", *f[j].errors
					       ? json_object_new_string(
						       f[j].errors) : NULL);
			json_object_object_add(e, "reason", *f[j].reason
					       ? json_object_new_string(
						       f[j].reason) : NULL);
			json_object_array_add(files, e);
		}
		json_object_object_add(d, "name", json_object_new_string(name));
		json_object_object_add(d, "path", json_object_new_string(path));
		json_object_object_add(d, "files", files);
		json_object_array_add(arr, d);
	}
	free(f);
	return arr;
}

static void api_overview(struct m2w_console *k, struct m2w_reply *out)
{
	static const char *const breaker[] = { "closed", "open", "half-open" };
	char eb[M2W_ERRBUF_SIZE] = "";
	struct m2w_stats st;
	struct statvfs vfs;
	json_object *o, *b;
	int rc, bs;

	if ((rc = m2w_queue_stats(k->q, &st, eb))) {
		store_error(out, rc, eb);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "now", json_object_new_int64(m2w_clock_ms()));
	json_object_object_add(o, "stats", m2w_stats_json(&st,
							  m2w_queue_now(k->q)));
	m2w_stats_free(&st);
	bs = k->pool ? m2w_pool_breaker_state(k->pool) : M2W_BREAKER_CLOSED;
	b = json_object_new_object();
	json_object_object_add(b, "state", json_object_new_string(
				       breaker[bs >= 0 && bs <= 2 ? bs : 0]));
	json_object_object_add(o, "breaker", b);
	json_object_object_add(o, "disk_free",
			       statvfs(k->cfg->store_path, &vfs) == 0
			       ? json_object_new_int64((int64_t)vfs.f_bavail *
						       (int64_t)vfs.f_frsize)
			       : NULL);
	json_object_object_add(o, "workers", json_object_new_int(
				       (int)k->cfg->threads));
	json_object_object_add(o, "limiter", m2w_pool_limit_json(k->pool));
	json_object_object_add(o, "links", links_json(k));
	json_object_object_add(o, "watch", watch_json(k));
	json_object_object_add(o, "history_since", json_object_new_int64(
				       m2w_series_since(k->series)));
	ui_json(out, o);
}

static void api_history(struct m2w_console *k, struct MHD_Connection *c,
			struct m2w_reply *out)
{
	const char *r = arg(c, "range");

	ui_json(out, m2w_series_json(k->series, r && strcmp(r, "day") == 0
				     ? M2W_SERIES_MINUTES : 60));
}

static void api_tasks(struct m2w_console *k, struct MHD_Connection *c,
		      struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "", next[M2W_CURSOR_MAX];
	struct m2w_list_opts lo;
	struct m2w_task **ts;
	const char *state = arg(c, "state"), *lim = arg(c, "limit");
	json_object *o, *arr;
	size_t n, i;
	int rc;

	memset(&lo, 0, sizeof(lo));
	lo.state = m2w_state_parse(state ? state : "dead");
	if (lo.state < 0) {
		ui_error(out, 400, "state must be ready, scheduled, leased, "
			 "waiting, done, dead or superseded");
		return;
	}
	lo.type = arg(c, "type");
	lo.grep = arg(c, "q");
	lo.after = arg(c, "after");
	lo.since_ms = arg_ms(c, "since");
	lo.until_ms = arg_ms(c, "until");
	lo.limit = lim ? (size_t)strtoul(lim, NULL, 10) : 50;
	if (!lo.limit || lo.limit > LIST_MAX)
		lo.limit = 50;
	if ((rc = m2w_queue_list(k->q, &lo, &ts, &n, next, eb))) {
		store_error(out, rc, eb);
		return;
	}
	o = json_object_new_object();
	arr = json_object_new_array();
	for (i = 0; i < n; i++)
		json_object_array_add(arr, m2w_task_json(ts[i], 0));
	m2w_task_list_free(ts, n);
	json_object_object_add(o, "tasks", arr);
	json_object_object_add(o, "next", *next ? json_object_new_string(next)
						: NULL);
	ui_json(out, o);
}

static void api_task(struct m2w_console *k, const char *id,
		     struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "", *end;
	struct m2w_attempt *h = NULL;
	struct m2w_task *t;
	unsigned long long v;
	json_object *o;
	size_t nh = 0;
	int rc;

	errno = 0;
	v = strtoull(id, &end, 10);
	if (!isdigit((unsigned char)id[0]) || *end || errno || !v) {
		m2w_reply_error(out, 404, "no task %.40s", id);
		out->ui = 1;
		return;
	}
	if ((rc = m2w_queue_get(k->q, (uint64_t)v, &t, eb))) {
		store_error(out, rc, eb);
		return;
	}
	if ((rc = m2w_queue_history(k->q, (uint64_t)v, &h, &nh, eb))) {
		m2w_task_free(t);
		store_error(out, rc, eb);
		return;
	}
	o = m2w_task_json(t, 1);
	json_object_object_add(o, "history", m2w_attempts_json(h, nh));
	m2w_task_free(t);
	free(h);
	ui_json(out, o);
}

static void api_dead_groups(struct m2w_console *k, struct MHD_Connection *c,
			    struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	struct m2w_group_opts go;
	struct m2w_dead_group *g;
	uint64_t scanned = 0;
	size_t n;
	int rc;

	memset(&go, 0, sizeof(go));
	go.type = arg(c, "type");
	go.since_ms = arg_ms(c, "since");
	go.limit = 200;
	if ((rc = m2w_queue_dead_groups(k->q, &go, &g, &n, &scanned, eb))) {
		store_error(out, rc, eb);
		return;
	}
	ui_json(out, m2w_dead_groups_json(g, n, scanned));
	m2w_dead_groups_free(g, n);
}

/* -------------------------------------------------------------- routing */

static int is_get(const char *m)
{
	return strcmp(m, MHD_HTTP_METHOD_GET) == 0 ||
	       strcmp(m, MHD_HTTP_METHOD_HEAD) == 0;
}

static void use(struct m2w_reply *r, const char *allow)
{
	m2w_reply_error(r, 405, "use %s", allow);
	r->allow = allow;
	r->ui = 1;
}

int m2w_console_route(struct m2w_console *k, struct MHD_Connection *c,
		      const char *method, const char *path,
		      struct m2w_reply *out)
{
	const struct m2w_asset *a;
	const char *page;
	struct who w;

	if (strcmp(path, "/ui") == 0) {
		m2w_reply_text(out, 303, "text/plain; charset=utf-8", "/ui/\n");
		m2w_reply_header(out, "Location: /ui/");
		out->ui = 1;
		return 1;
	}
	if (strncmp(path, "/ui/static/", 11) == 0) {
		a = strchr(path + 11, '/') ? NULL : asset(path + 11);
		if (a && !strstr(a->name, ".html") && is_get(method))
			serve(out, a, "no-cache");
		else if (a && !strstr(a->name, ".html"))
			use(out, "GET, HEAD");
		else
			ui_error(out, 404, "no such file");
		return 1;
	}
	if (strcmp(path, "/ui/login") == 0) {
		char tok[HEX];
		const char *have = MHD_lookup_connection_value(
			c, MHD_COOKIE_KIND, "m2w_login");

		if (!is_get(method)) {
			use(out, "GET, HEAD");
			return 1;
		}
		serve(out, asset("login.html"), NULL);
		/* the login's CSRF token (double submit): a page of
		 * another site can neither read nor set it */
		if ((!have || strlen(have) != HEX - 1) && !random_hex(tok))
			m2w_reply_header(out, "Set-Cookie: m2w_login=%s; "
					 "Path=/ui/; SameSite=Strict%s", tok,
					 secure(c));
		return 1;
	}
	if (strcmp(path, "/ui/api/login") == 0) {
		if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
			use(out, "POST");
			return 1;
		}
		return 0;
	}
	session_find(k, c, &w);
	if ((page = page_of(path))) {
		if (!is_get(method))
			use(out, "GET, HEAD");
		else if (!w.u)
			to_login(c, path, out);
		else
			serve(out, asset(page), NULL);
		return 1;
	}
	if (strncmp(path, "/ui/api/", 8) != 0) {
		ui_error(out, 404, "no such page");
		return 1;
	}
	if (!w.u) {
		ui_error(out, 401, "log in first: /ui/login");
		return 1;
	}
	if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
		return 0;
	if (!is_get(method)) {
		use(out, "GET, HEAD, POST");
		return 1;
	}
	path += 8;
	if (strcmp(path, "me") == 0)
		api_me(k, &w, out);
	else if (strcmp(path, "overview") == 0)
		api_overview(k, out);
	else if (strcmp(path, "history") == 0)
		api_history(k, c, out);
	else if (strcmp(path, "tasks") == 0)
		api_tasks(k, c, out);
	else if (strncmp(path, "tasks/", 6) == 0)
		api_task(k, path + 6, out);
	else if (strcmp(path, "dead-groups") == 0)
		api_dead_groups(k, c, out);
	else
		ui_error(out, 404, "no such endpoint");
	return 1;
}

/* ----------------------------------------------------------- the POSTs */

/* The body's "ids" (an array of task ids) into a malloc'd array; 0 with
 * *n = 0 when absent, -1 with `out` set when bad. */
static int body_ids(json_object *b, uint64_t **ids, size_t *n,
		    struct m2w_reply *out)
{
	json_object *a;
	size_t i, len;

	*ids = NULL;
	*n = 0;
	if (!json_object_object_get_ex(b, "ids", &a) || !a)
		return 0;
	if (!json_object_is_type(a, json_type_array) ||
	    !(len = json_object_array_length(a)) || len > IDS_MAX) {
		ui_error(out, 400, "\"ids\" must be an array of 1 to 10000 "
			 "task ids");
		return -1;
	}
	if (!(*ids = calloc(len, sizeof(**ids)))) {
		ui_error(out, 500, "out of memory");
		return -1;
	}
	for (i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		int64_t v = json_object_get_int64(e);

		if (!json_object_is_type(e, json_type_int) || v <= 0) {
			free(*ids);
			*ids = NULL;
			ui_error(out, 400, "\"ids\" must be an array of task "
				 "ids");
			return -1;
		}
		(*ids)[i] = (uint64_t)v;
	}
	*n = len;
	return 0;
}

static const char *body_str(json_object *b, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(b, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int body_bool(json_object *b, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(b, key, &v) &&
	       json_object_get_boolean(v);
}

static void count_reply(struct m2w_reply *out, size_t count)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "count", json_object_new_int64(
				       (int64_t)count));
	ui_json(out, o);
}

static void audit(const struct who *w, const char *action, size_t count,
		  const char *what)
{
	char q[M2W_ERRBUF_SIZE + 64];

	m2w_log(M2W_LOG_INFO, "console.action", "user=%s action=%s count=%zu "
		"what=%s peer=%s", w->u->name, action, count,
		m2w_log_quote(q, sizeof(q), what), w->peer);
}

/* What a selection names, for the log: "ids 1,2,3" or "type=T error=E". */
static void describe(const uint64_t *ids, size_t n, const char *type,
		     const char *error, char *out, size_t size)
{
	size_t i, len;

	if (n) {
		len = (size_t)snprintf(out, size, "ids");
		for (i = 0; i < n && len + 24 < size; i++)
			len += (size_t)snprintf(out + len, size - len, "%c%llu",
						i ? ',' : ' ',
						(unsigned long long)ids[i]);
		if (i < n)
			snprintf(out + len, size - len, ",...");
		return;
	}
	snprintf(out, size, "dead type=%s error=%.200s", type ? type : "*",
		 error ? error : "*");
}

static void do_login(struct m2w_console *k, struct MHD_Connection *c,
		     json_object *b, struct m2w_reply *out)
{
	const char *user = body_str(b, "user"), *pass = body_str(b, "password");
	const char *tok = header(c, "X-CSRF-Token");
	const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND,
							 "m2w_login");
	char sid[HEX], peer[64], q[160];
	const struct user *u = NULL;
	struct session s;
	json_object *o;
	size_t i;
	int ui = -1;

	m2w_http_peer(c, peer, sizeof(peer));
	if (!tok || !cookie || strlen(tok) != HEX - 1 ||
	    strlen(cookie) != HEX - 1 ||
	    CRYPTO_memcmp(tok, cookie, HEX - 1) != 0) {
		ui_error(out, 403, "the login form's token is missing: reload "
			 "/ui/login");
		return;
	}
	if (!user || !pass) {
		ui_error(out, 400, "send {\"user\": ..., \"password\": ...}");
		return;
	}
	for (i = 0; i < k->nusers; i++)
		if (strcmp(k->users[i].name, user) == 0) {
			u = &k->users[i];
			ui = (int)i;
		}
	if (!password_ok(k, u, pass)) {
		m2w_log(M2W_LOG_WARN, "console.login", "user=%s result=refused "
			"peer=%s", m2w_log_quote(q, sizeof(q), user), peer);
		sleep(1);
		ui_error(out, 401, "wrong user or password");
		return;
	}
	if (session_new(k, ui, sid, &s)) {
		ui_error(out, 500, "no random bytes for a session");
		return;
	}
	m2w_log(M2W_LOG_INFO, "console.login", "user=%s role=%s result=ok "
		"peer=%s", u->name, u->role == OPERATOR ? "operator" : "viewer",
		peer);
	o = json_object_new_object();
	json_object_object_add(o, "user", json_object_new_string(u->name));
	json_object_object_add(o, "role", json_object_new_string(
				       u->role == OPERATOR ? "operator"
							   : "viewer"));
	json_object_object_add(o, "csrf", json_object_new_string(s.csrf));
	ui_json(out, o);
	m2w_reply_header(out, "Set-Cookie: m2w_session=%s; Path=/ui/; "
			 "HttpOnly; SameSite=Strict%s", sid, secure(c));
	OPENSSL_cleanse(sid, sizeof(sid));
}

static void do_requeue(struct m2w_console *k, const struct who *w,
		       json_object *b, struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "", what[256];
	struct m2w_requeue_opts o;
	uint64_t *ids;
	size_t n, count = 0;
	int rc;

	if (body_ids(b, &ids, &n, out))
		return;
	memset(&o, 0, sizeof(o));
	o.ids = ids;
	o.nids = n;
	o.type = n ? NULL : body_str(b, "type");
	o.error = n ? NULL : body_str(b, "error");
	o.force = n && body_bool(b, "force");
	o.dry_run = body_bool(b, "dry_run");
	if (!n && !o.type && !o.error) {
		ui_error(out, 400, "name the tasks: {\"ids\": [...]} or "
			 "{\"type\": T, \"error\": E}");
		return;
	}
	rc = m2w_queue_requeue(k->q, &o, &count, NULL, eb);
	describe(ids, n, o.type, o.error, what, sizeof(what));
	free(ids);
	if (rc) {
		store_error(out, rc, eb);
		return;
	}
	if (!o.dry_run)
		audit(w, "requeue", count, what);
	count_reply(out, count);
}

static void do_delete(struct m2w_console *k, const struct who *w,
		      json_object *b, struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "", what[256];
	struct m2w_requeue_opts o;
	uint64_t *ids;
	size_t n, i, count = 0;
	int rc = M2W_OK;

	if (body_ids(b, &ids, &n, out))
		return;
	memset(&o, 0, sizeof(o));
	o.type = body_str(b, "type");
	o.error = body_str(b, "error");
	o.dry_run = body_bool(b, "dry_run");
	describe(ids, n, o.type, o.error, what, sizeof(what));
	if (n) {  /* as `qctl delete ID...`: one by one, leased ones kept */
		for (i = 0; i < n && !o.dry_run; i++) {
			if ((rc = m2w_queue_delete(k->q, ids[i], 0, eb)))
				break;
			count++;
		}
		if (o.dry_run)
			count = n;
	} else if (o.type || o.error) {
		rc = m2w_queue_delete_dead(k->q, &o, &count, eb);
	} else {
		ui_error(out, 400, "name the tasks: {\"ids\": [...]} or "
			 "{\"type\": T, \"error\": E}");
		free(ids);
		return;
	}
	free(ids);
	if (count && !o.dry_run)
		audit(w, "delete", count, what);
	if (rc) {
		store_error(out, rc, eb);
		return;
	}
	count_reply(out, count);
}

static void do_retry_now(struct m2w_console *k, const struct who *w,
			 json_object *b, struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "", what[256];
	uint64_t *ids;
	size_t n, i, count = 0;
	int rc = M2W_OK;

	if (body_ids(b, &ids, &n, out))
		return;
	if (!n) {
		ui_error(out, 400, "name the tasks: {\"ids\": [...]}");
		return;
	}
	for (i = 0; i < n; i++) {
		if ((rc = m2w_queue_retry_now(k->q, ids[i], eb)))
			break;
		count++;
	}
	describe(ids, n, NULL, NULL, what, sizeof(what));
	free(ids);
	if (count)
		audit(w, "retry-now", count, what);
	if (rc) {
		store_error(out, rc, eb);
		return;
	}
	count_reply(out, count);
}

static void do_pause(struct m2w_console *k, const struct who *w,
		     json_object *b, struct m2w_reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	const char *type = body_str(b, "type");
	json_object *v, *o;
	int paused, rc;

	if (!json_object_object_get_ex(b, "paused", &v) ||
	    !json_object_is_type(v, json_type_boolean)) {
		ui_error(out, 400, "send {\"type\": T or null, \"paused\": "
			 "true|false}");
		return;
	}
	paused = json_object_get_boolean(v);
	if ((rc = m2w_queue_pause(k->q, type, paused, eb))) {
		store_error(out, rc, eb);
		return;
	}
	audit(w, paused ? "pause" : "resume", 1, type ? type : "everything");
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	ui_json(out, o);
}

void m2w_console_post(struct m2w_console *k, struct MHD_Connection *c,
		      const char *path, const char *body, size_t len,
		      struct m2w_reply *out)
{
	const char *tok = header(c, "X-CSRF-Token");
	const char *ct = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
	json_object *b = NULL;
	struct who w;

	if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
		ui_error(out, 415, "Content-Type must be application/json");
		return;
	}
	b = len ? json_tokener_parse(body) : NULL;
	if (!b || !json_object_is_type(b, json_type_object)) {
		ui_error(out, 400, "the body must be a JSON object");
		goto out;
	}
	if (strcmp(path, "/ui/api/login") == 0) {
		do_login(k, c, b, out);
		goto out;
	}
	session_find(k, c, &w);
	if (!w.u) {
		ui_error(out, 401, "log in first: /ui/login");
		goto out;
	}
	if (!tok || strlen(tok) != HEX - 1 ||
	    CRYPTO_memcmp(tok, w.s.csrf, HEX - 1) != 0) {
		m2w_log(M2W_LOG_WARN, "console.refused", "user=%s path=%s "
			"reason=\"no or a wrong CSRF token\" peer=%s",
			w.u->name, path, w.peer);
		ui_error(out, 403, "the CSRF token is missing or wrong: reload "
			 "the page");
		goto out;
	}
	path += strlen("/ui/api/");
	if (strcmp(path, "logout") == 0) {
		session_drop(k, &w.s);
		m2w_log(M2W_LOG_INFO, "console.logout", "user=%s peer=%s",
			w.u->name, w.peer);
		count_reply(out, 1);
		m2w_reply_header(out, "Set-Cookie: m2w_session=; Path=/ui/; "
				 "Max-Age=0; HttpOnly; SameSite=Strict");
		goto out;
	}
	if (w.u->role != OPERATOR) {
		ui_error(out, 403, "read only: your role is viewer");
		goto out;
	}
	if (strcmp(path, "requeue") == 0)
		do_requeue(k, &w, b, out);
	else if (strcmp(path, "delete") == 0)
		do_delete(k, &w, b, out);
	else if (strcmp(path, "retry-now") == 0)
		do_retry_now(k, &w, b, out);
	else if (strcmp(path, "pause") == 0)
		do_pause(k, &w, b, out);
	else
		ui_error(out, 404, "no such action");
out:
	json_object_put(b);
}

/* ------------------------------------------------------------ lifetime */

int m2w_console_new(const struct m2w_console_opts *o,
		    struct m2w_console **out, char *errbuf)
{
	struct m2w_console *k;
	int rc;

	*out = NULL;
	if (!(k = calloc(1, sizeof(*k))))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	k->q = o->q;
	k->cfg = o->cfg;
	k->pool = o->pool;
	k->watcher = o->watcher;
	k->amqp = o->amqp;
	k->events = o->events;
	pthread_mutex_init(&k->mu, NULL);
	if ((rc = parse_users(o->cfg->http_console_users, &k->users,
			      &k->nusers, errbuf)))
		goto fail;
	if (m2w_console_hash("no such user", k->dummy_hash,
			     sizeof(k->dummy_hash))) {
		rc = m2w_fail(errbuf, M2W_EIO, "console: crypt(3) failed");
		goto fail;
	}
	if (o->pool && (rc = m2w_series_start(m2w_pool_metrics(o->pool),
					      &k->series, errbuf)))
		goto fail;
	*out = k;
	return M2W_OK;
fail:
	m2w_console_free(k);
	return rc;
}

void m2w_console_free(struct m2w_console *k)
{
	if (!k)
		return;
	m2w_series_stop(k->series);
	users_free(k->users, k->nusers);
	OPENSSL_cleanse(k->s, sizeof(k->s));
	pthread_mutex_destroy(&k->mu);
	free(k);
}
