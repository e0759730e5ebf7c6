/*
 * console.h - the operator's web console, served by the HTTP server under
 * /ui/ when [http] console = yes.
 *
 *   GET  /ui/ /ui/tasks /ui/task?id=N /ui/dead   pages (a session, else 303
 *                                                 to /ui/login?next=...)
 *   GET  /ui/login, /ui/static/app.js|app.css      open
 *   GET  /ui/api/me|overview|history|tasks|tasks/N|dead-groups   JSON
 *   POST /ui/api/login|logout|requeue|delete|retry-now|pause     JSON
 *
 * The pages are static files built into the binary (src/console/, turned
 * into struct m2w_asset by embed.sh); they fetch the JSON API and render
 * it with textContent only. What the API shows and does is what qctl shows
 * and does, through the same library calls (admin.h, report.h).
 *
 * Access: [http] console_users lists NAME:ROLE:HASH, ROLE viewer (reads
 * only) or operator (also acts), HASH a crypt(3) hash ("$6$..." SHA-512,
 * "$y$..." yescrypt; `m2worker --hash-password` makes one), never a
 * password. A login gives a random session id in an HttpOnly,
 * SameSite=Strict cookie (Secure behind a proxy that sends
 * X-Forwarded-Proto: https), kept in memory as its SHA-256: a restart logs
 * everyone out. A session ends after [http] console_idle unused, or 12 h
 * after the login. Every POST carries the session's CSRF token in
 * X-CSRF-Token (the login's: the m2w_login cookie's value, set with the
 * login page). Every response carries a Content-Security-Policy without
 * inline script, frame-ancestors 'none' and no-store (assets: no-cache).
 * Logins, refusals and every action are logged with the user and address.
 *
 * Threads: new and free from one thread (the HTTP server's start and
 * stop); route and post from the server's connection threads, at once.
 */
#ifndef M2WORKER_CONSOLE_H
#define M2WORKER_CONSOLE_H

#include <stddef.h>

#include "m2worker/config.h"
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M2W_CONSOLE_BODY_MAX 65536   /* bytes of a POST to /ui/api/ */

/* A file built into the binary (generated: console_assets.c). */
struct m2w_asset {
	const char *name;        /* "app.js" */
	const char *ctype;
	const unsigned char *data;
	size_t len;
};
extern const struct m2w_asset m2w_assets[];   /* ends with name NULL */

struct m2w_console;
struct m2w_pool;
struct m2w_watcher;
struct m2w_amqp;
struct m2w_events;
struct m2w_reply;
struct MHD_Connection;

struct m2w_console_opts {
	struct m2w_queue *q;            /* required */
	const struct m2w_config *cfg;   /* required; borrowed */
	struct m2w_pool *pool;          /* metrics, breaker; may be NULL */
	struct m2w_watcher *watcher;    /* may be NULL */
	struct m2w_amqp *amqp;          /* may be NULL */
	struct m2w_events *events;      /* may be NULL */
};

/* Reads the users and starts the charts' history (series.h). */
int m2w_console_new(const struct m2w_console_opts *o,
		    struct m2w_console **out, char *errbuf);
void m2w_console_free(struct m2w_console *k);        /* NULL is fine */

/* What m2w_console_new refuses in [http] console_users. M2W_OK or
 * M2W_EINVAL with errbuf "[http] console_users: ...". */
int m2w_console_cfg_check(const struct m2w_config *cfg, char *errbuf);

/*
 * A request under /ui, headers only: 1 with `out` set when it is answered
 * now, 0 when it is a POST whose body (at most M2W_CONSOLE_BODY_MAX bytes)
 * goes to m2w_console_post.
 */
int m2w_console_route(struct m2w_console *k, struct MHD_Connection *c,
		      const char *method, const char *path,
		      struct m2w_reply *out);
void m2w_console_post(struct m2w_console *k, struct MHD_Connection *c,
		      const char *path, const char *body, size_t len,
		      struct m2w_reply *out);

/* A crypt(3) SHA-512 hash of `password` with a random salt, into out
 * (at least 128 bytes). M2W_OK, or M2W_EIO. */
int m2w_console_hash(const char *password, char *out, size_t size);

#ifdef __cplusplus
}
#endif
#endif
