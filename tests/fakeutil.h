/*
 * fakeutil.h - run tools/fake-magento/fake-magento from a Check test and
 * talk to its control API.
 *
 * fake_start() forks and execs the fake with --port 0 --port-file in a
 * fresh temporary directory and waits (up to 5 s) for the port file. The
 * child asks the kernel for SIGTERM when its parent dies
 * (PR_SET_PDEATHSIG), so a test process that fails an assertion (under
 * CK_FORK it exits without its teardown) or is killed on timeout takes its
 * fakes with it. fake_stop() sends SIGTERM, waits, and falls back to
 * SIGKILL; fake_stop_all() stops every fake this process started (use it in
 * a checked teardown).
 *
 * The binary: $FAKE_MAGENTO if set, else
 * $top_builddir/tools/fake-magento/fake-magento, else
 * ./tools/fake-magento/fake-magento (make check runs in the build directory
 * with top_builddir exported).
 *
 * Control API (no auth, no faults): fake_http() for any call, fake_state()
 * for GET /_fake/state as json-c, and small getters over it. Everything
 * that knows the state's JSON layout is in the "state layout" section so it
 * is easy to adjust to the real fake.
 *
 * Also: fake_free_port() (a closed port on 127.0.0.1, for "connection
 * refused") and a canned-response HTTP responder thread (struct
 * fake_canned) for answers the fake cannot give (HTML, 502 from a proxy).
 *
 * Everything stays on 127.0.0.1.
 */
#ifndef M2W_FAKEUTIL_H
#define M2W_FAKEUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "testutil.h"

#define FAKE_START_TIMEOUT_MS 5000
#define FAKE_STOP_TIMEOUT_MS 3000
#define FAKE_MAX 8

struct fake {
	pid_t pid;               /* 0 when not running */
	int port;
	char dir[PATH_MAX];      /* temp dir: port file and fake.log */
	char url[64];            /* "http://127.0.0.1:PORT" */
	char bin[PATH_MAX];
};

static struct fake *fake_running[FAKE_MAX];

static inline void fake_sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static inline int64_t fake_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads up to size-1 bytes of `path` into buf (NUL-terminated); "" if
 * unreadable. */
static inline void fake_read_file(const char *path, char *buf, size_t size)
{
	FILE *fp = fopen(path, "r");
	size_t n = 0;

	if (fp) {
		n = fread(buf, 1, size - 1, fp);
		fclose(fp);
	}
	buf[n] = '\0';
}

/* The last lines of the fake's log, for failure messages. */
static inline const char *fake_log_tail(const struct fake *f)
{
	static char buf[4096];
	char path[PATH_MAX + 16];
	FILE *fp;
	long sz;
	size_t n = 0;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/fake.log", f->dir);
	fp = fopen(path, "r");
	if (!fp)
		return buf;
	if (fseek(fp, 0, SEEK_END) == 0 && (sz = ftell(fp)) > 0) {
		if (sz > (long)sizeof(buf) - 1)
			fseek(fp, sz - (long)sizeof(buf) + 1, SEEK_SET);
		else
			fseek(fp, 0, SEEK_SET);
		n = fread(buf, 1, sizeof(buf) - 1, fp);
	}
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static inline int fake_is_exec(const char *p)
{
	return access(p, X_OK) == 0;
}

static inline void fake_find_bin(struct fake *f)
{
	const char *env = getenv("FAKE_MAGENTO");
	const char *top = getenv("top_builddir");

	if (env && *env) {
		snprintf(f->bin, sizeof(f->bin), "%s", env);
		ck_assert_msg(fake_is_exec(f->bin), "FAKE_MAGENTO=%s: %s",
			      f->bin, strerror(errno));
		return;
	}
	if (top && *top) {
		snprintf(f->bin, sizeof(f->bin),
			 "%s/tools/fake-magento/fake-magento", top);
		if (fake_is_exec(f->bin))
			return;
	}
	snprintf(f->bin, sizeof(f->bin), "./tools/fake-magento/fake-magento");
	ck_assert_msg(fake_is_exec(f->bin),
		      "fake-magento not found: tried $FAKE_MAGENTO, "
		      "$top_builddir (%s)/tools/fake-magento/fake-magento and "
		      "%s (cwd-relative)",
		      top ? top : "unset", f->bin);
}

static inline void fake_register(struct fake *f)
{
	int i;

	for (i = 0; i < FAKE_MAX; i++)
		if (!fake_running[i]) {
			fake_running[i] = f;
			return;
		}
}

static inline void fake_unregister(struct fake *f)
{
	int i;

	for (i = 0; i < FAKE_MAX; i++)
		if (fake_running[i] == f)
			fake_running[i] = NULL;
}

/*
 * Starts the fake with `args` (NULL-terminated extra arguments, may be
 * NULL) after "--port 0 --port-file DIR/port". Asserts it came up.
 */
static inline void fake_startv(struct fake *f, const char *const *args)
{
	const char *argv[64];
	char portfile[PATH_MAX + 16], logfile[PATH_MAX + 16];
	char buf[64];
	pid_t parent = getpid();
	int64_t deadline;
	int argc = 0, i, st;

	memset(f, 0, sizeof(*f));
	fake_find_bin(f);
	tu_mkdtemp(f->dir, sizeof(f->dir));
	snprintf(portfile, sizeof(portfile), "%s/port", f->dir);
	snprintf(logfile, sizeof(logfile), "%s/fake.log", f->dir);

	argv[argc++] = f->bin;
	argv[argc++] = "--port";
	argv[argc++] = "0";
	argv[argc++] = "--port-file";
	argv[argc++] = portfile;
	for (i = 0; args && args[i]; i++) {
		ck_assert_msg(argc < 63, "too many fake arguments");
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;

	fflush(stdout);
	fflush(stderr);
	f->pid = fork();
	ck_assert_msg(f->pid >= 0, "fork: %s", strerror(errno));
	if (f->pid == 0) {
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(126); /* the parent died before prctl */
		fd = open(logfile, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
			  0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0 && fd != 0) {
			dup2(fd, 0);
			close(fd);
		}
		execv(f->bin, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", f->bin, strerror(errno));
		_exit(127);
	}
	fake_register(f);

	deadline = fake_mono_ms() + FAKE_START_TIMEOUT_MS;
	for (;;) {
		pid_t w;

		if (access(portfile, R_OK) == 0) {
			fake_read_file(portfile, buf, sizeof(buf));
			f->port = atoi(buf);
			if (f->port > 0 && strchr(buf, '\n'))
				break;
		}
		w = waitpid(f->pid, &st, WNOHANG);
		if (w == f->pid) {
			f->pid = 0;
			fake_unregister(f);
			ck_abort_msg("fake-magento exited during start-up "
				     "(status 0x%x); log:\n%s", st,
				     fake_log_tail(f));
		}
		if (fake_mono_ms() > deadline) {
			kill(f->pid, SIGKILL);
			waitpid(f->pid, &st, 0);
			f->pid = 0;
			fake_unregister(f);
			ck_abort_msg("fake-magento wrote no port file within "
				     "%d ms; log:\n%s", FAKE_START_TIMEOUT_MS,
				     fake_log_tail(f));
		}
		fake_sleep_ms(10);
	}
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
}

/* fake_start(&f, "--orders", "5", ...) */
#define fake_start(f, ...)                                             \
	do {                                                           \
		const char *const fake_args_[] = { __VA_ARGS__, NULL }; \
		fake_startv((f), fake_args_);                          \
	} while (0)

/* Stops it (SIGTERM, then SIGKILL after 3 s) and removes its directory.
 * Returns the wait status (or -1 when it was not running). */
static inline int fake_stop(struct fake *f)
{
	int st = -1;
	int64_t deadline;

	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		deadline = fake_mono_ms() + FAKE_STOP_TIMEOUT_MS;
		for (;;) {
			pid_t w = waitpid(f->pid, &st, WNOHANG);

			if (w == f->pid || (w < 0 && errno != EINTR))
				break;
			if (fake_mono_ms() > deadline) {
				fprintf(stderr, "fakeutil: fake-magento (pid %d)"
					" ignored SIGTERM for %d ms; killing\n",
					(int)f->pid, FAKE_STOP_TIMEOUT_MS);
				kill(f->pid, SIGKILL);
				waitpid(f->pid, &st, 0);
				break;
			}
			fake_sleep_ms(10);
		}
		f->pid = 0;
	}
	fake_unregister(f);
	if (f->dir[0]) {
		if (tu_keep_dirs())
			fprintf(stderr, "fakeutil: kept %s\n", f->dir);
		else
			tu_rmrf(f->dir);
		f->dir[0] = '\0';
	}
	return st;
}

static inline void fake_stop_all(void)
{
	int i;

	for (i = 0; i < FAKE_MAX; i++)
		if (fake_running[i])
			fake_stop(fake_running[i]);
}

/* ------------------------------------------------------- control API */

struct fake_buf {
	char *p;
	size_t len;
};

static inline size_t fake_buf_write(char *data, size_t size, size_t nmemb,
				    void *arg)
{
	struct fake_buf *b = (struct fake_buf *)arg;
	size_t n = size * nmemb;
	char *p = (char *)realloc(b->p, b->len + n + 1);

	if (!p)
		return 0;
	memcpy(p + b->len, data, n);
	b->len += n;
	p[b->len] = '\0';
	b->p = p;
	return n;
}

/*
 * One plain HTTP call to the fake: `path` is absolute ("/_fake/state"),
 * body JSON or NULL. Returns the malloc'd body (never NULL: asserts the
 * transfer worked); *status gets the HTTP status.
 */
static inline char *fake_http(const struct fake *f, const char *method,
			      const char *path, const char *body,
			      long *status)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hd = NULL;
	struct fake_buf b = { NULL, 0 };
	char url[512], err[CURL_ERROR_SIZE] = "";
	CURLcode rc;

	ck_assert_msg(h != NULL, "curl_easy_init failed");
	snprintf(url, sizeof(url), "%s%s", f->url, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROXY, "");    /* never a proxy */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fake_buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (body) {
		hd = curl_slist_append(hd, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	rc = curl_easy_perform(h);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	ck_assert_msg(rc == CURLE_OK, "control API %s %s: %s (%s)", method,
		      url, curl_easy_strerror(rc), err);
	if (!b.p) {
		b.p = (char *)malloc(1);
		ck_assert_msg(b.p != NULL, "out of memory");
		b.p[0] = '\0';
	}
	return b.p;
}

/* POST to the control API; asserts a 2xx. */
static inline void fake_post(const struct fake *f, const char *path,
			     const char *body)
{
	long st;
	char *r = fake_http(f, "POST", path, body ? body : "{}", &st);

	ck_assert_msg(st >= 200 && st < 300, "POST %s %s: HTTP %ld: %s", path,
		      body ? body : "{}", st, r);
	free(r);
}

/* POST /_fake/faults with any subset of fail_rate, fail_status,
 * latency_ms, drop_rate, rate_limit, retry_after, outage. */
static inline void fake_set_faults(const struct fake *f, const char *json)
{
	fake_post(f, "/_fake/faults", json);
}

/* POST /_fake/orders/<increment_id> {"state":"canceled"} etc. */
static inline void fake_set_order_state(const struct fake *f,
					const char *increment_id,
					const char *state)
{
	char path[256], body[128];

	snprintf(path, sizeof(path), "/_fake/orders/%s", increment_id);
	snprintf(body, sizeof(body), "{\"state\":\"%s\"}", state);
	fake_post(f, path, body);
}

static inline void fake_expire_tokens(const struct fake *f)
{
	fake_post(f, "/_fake/expire-tokens", "{}");
}

static inline void fake_reset(const struct fake *f)
{
	fake_post(f, "/_fake/reset", "{}");
}

/* GET /_fake/state parsed; free with json_object_put. */
static inline json_object *fake_state(const struct fake *f)
{
	long st;
	char *r = fake_http(f, "GET", "/_fake/state", NULL, &st);
	json_object *j;

	ck_assert_msg(st == 200, "GET /_fake/state: HTTP %ld: %.500s", st, r);
	j = json_tokener_parse(r);
	ck_assert_msg(j != NULL, "GET /_fake/state: not JSON: %.500s", r);
	free(r);
	return j;
}

/* j[k1][k2]... (NULL-terminated keys); NULL when any step is missing.
 * Borrowed reference. */
static inline json_object *fake_jget(json_object *j, ...)
{
	va_list ap;
	const char *k;

	va_start(ap, j);
	while (j && (k = va_arg(ap, const char *)) != NULL) {
		json_object *v = NULL;

		if (!json_object_is_type(j, json_type_object) ||
		    !json_object_object_get_ex(j, k, &v))
			v = NULL;
		j = v;
	}
	va_end(ap);
	return j;
}

static inline int64_t fake_jint(json_object *j)
{
	return j ? json_object_get_int64(j) : 0;
}

/* ------------------------------------------------------- state layout */
/* Everything below knows the key names of GET /_fake/state. */

/* How many times the track number was posted (0 when never). */
static inline int64_t fake_track_count(const struct fake *f, const char *tn)
{
	json_object *s = fake_state(f);
	int64_t n = fake_jint(fake_jget(s, "tracks", tn, NULL));

	json_object_put(s);
	return n;
}

/* The number of shipments of the order. */
static inline int64_t fake_shipments(const struct fake *f,
				     const char *increment_id)
{
	json_object *s = fake_state(f);
	int64_t n = fake_jint(fake_jget(s, "shipments_per_order",
					increment_id, NULL));

	json_object_put(s);
	return n;
}

/* The order's state ("processing", "complete", ...) into buf; "" if
 * unknown. */
static inline void fake_order_state(const struct fake *f,
				    const char *increment_id, char *buf,
				    size_t size)
{
	json_object *s = fake_state(f);
	json_object *v = fake_jget(s, "orders", increment_id, "state", NULL);

	snprintf(buf, size, "%s", v ? json_object_get_string(v) : "");
	json_object_put(s);
}

/*
 * Requests the fake answered on `route` ("POST /V1/shipment/track") with
 * `status` ("200"); status NULL: all statuses summed.
 */
static inline int64_t fake_requests(const struct fake *f, const char *route,
				    const char *status)
{
	json_object *s = fake_state(f);
	json_object *r = fake_jget(s, "requests", route, NULL);
	int64_t n = 0;

	if (r && status) {
		n = fake_jint(fake_jget(r, status, NULL));
	} else if (r && json_object_is_type(r, json_type_object)) {
		json_object_object_foreach(r, key, val) {
			(void)key;
			n += json_object_get_int64(val);
		}
	}
	json_object_put(s);
	return n;
}

/* Requests answered with `status` ("401") on any route. */
static inline int64_t fake_requests_with_status(const struct fake *f,
						const char *status)
{
	json_object *s = fake_state(f);
	json_object *r = fake_jget(s, "requests", NULL);
	int64_t n = 0;

	if (r && json_object_is_type(r, json_type_object)) {
		json_object_object_foreach(r, key, val) {
			(void)key;
			n += fake_jint(fake_jget(val, status, NULL));
		}
	}
	json_object_put(s);
	return n;
}

static inline int64_t fake_total_requests(const struct fake *f)
{
	json_object *s = fake_state(f);
	int64_t n = fake_jint(fake_jget(s, "total_requests", NULL));

	json_object_put(s);
	return n;
}

/* admin_logins.<what>: "ok" or "failed"; "locked" as 0/1. */
static inline int64_t fake_admin_logins(const struct fake *f,
					const char *what)
{
	json_object *s = fake_state(f);
	json_object *v = fake_jget(s, "admin_logins", what, NULL);
	int64_t n = 0;

	if (v && json_object_is_type(v, json_type_boolean))
		n = json_object_get_boolean(v) ? 1 : 0;
	else
		n = fake_jint(v);
	json_object_put(s);
	return n;
}

/* A number or an object holding one of `keys`: the number. */
static inline int fake_jnum(json_object *v, double *out,
			    const char *const *keys)
{
	int i;

	if (!v)
		return 0;
	if (json_object_is_type(v, json_type_double) ||
	    json_object_is_type(v, json_type_int)) {
		*out = json_object_get_double(v);
		return 1;
	}
	if (json_object_is_type(v, json_type_object))
		for (i = 0; keys[i]; i++) {
			json_object *x = NULL;

			if (json_object_object_get_ex(v, keys[i], &x) &&
			    (json_object_is_type(x, json_type_double) ||
			     json_object_is_type(x, json_type_int))) {
				*out = json_object_get_double(x);
				return 1;
			}
		}
	return 0;
}

/* MSI quantity of sku at source: 1 and *qty when known, else 0. */
static inline int fake_stock_qty(const struct fake *f, const char *sku,
				 const char *source, double *qty)
{
	static const char *const keys[] = { "quantity", "qty", NULL };
	json_object *s = fake_state(f);
	int ok = fake_jnum(fake_jget(s, "stock", sku, source, NULL), qty, keys);

	json_object_put(s);
	return ok;
}

/* MSI status (1/0) of sku at source, -1 when unknown. */
static inline int fake_stock_status(const struct fake *f, const char *sku,
				    const char *source)
{
	static const char *const keys[] = { "status", NULL };
	json_object *s = fake_state(f);
	double v = -1;
	int ok = fake_jnum(fake_jget(s, "stock", sku, source, NULL), &v, keys);

	json_object_put(s);
	return ok ? (int)v : -1;
}

/* Legacy (single source) stock qty of sku. */
static inline int fake_legacy_qty(const struct fake *f, const char *sku,
				  double *qty)
{
	static const char *const keys[] = { "qty", "quantity", NULL };
	json_object *s = fake_state(f);
	int ok = fake_jnum(fake_jget(s, "legacy_stock", sku, NULL), qty, keys);

	json_object_put(s);
	return ok;
}

/* Base price of sku in store_id. */
static inline int fake_price(const struct fake *f, const char *sku,
			     int store_id, double *price)
{
	static const char *const keys[] = { "price", NULL };
	char store[16];
	json_object *s = fake_state(f);
	int ok;

	snprintf(store, sizeof(store), "%d", store_id);
	ok = fake_jnum(fake_jget(s, "prices", sku, store, NULL), price, keys);
	json_object_put(s);
	return ok;
}

/* ------------------------------------------------------------ sockets */

/* A port on 127.0.0.1 that nothing listens on (bound, read, closed). */
static inline int fake_free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
		      "bind: %s", strerror(errno));
	ck_assert_msg(getsockname(fd, (struct sockaddr *)&a, &len) == 0,
		      "getsockname: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/*
 * A canned HTTP responder: a thread on 127.0.0.1:<port> that answers
 * every connection with `response` (a full HTTP response, headers and
 * body) after reading the request head, then closes the connection.
 */
struct fake_canned {
	int fd;
	int port;
	const char *response;
	volatile int stop;
	int served;
	char url[64];
	pthread_t th;
};

static inline void *fake_canned_main(void *arg)
{
	struct fake_canned *c = (struct fake_canned *)arg;

	while (!c->stop) {
		char req[8192];
		size_t got = 0;
		int cfd = accept(c->fd, NULL, NULL);

		if (cfd < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		/* read the request head (requests here carry small bodies;
		 * whatever is left unread is dropped with the connection) */
		while (got < sizeof(req) - 1) {
			ssize_t r = recv(cfd, req + got, sizeof(req) - 1 - got,
					 0);

			if (r <= 0)
				break;
			got += (size_t)r;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		{
			const char *p = c->response;
			size_t left = strlen(p);

			while (left > 0) {
				ssize_t w = send(cfd, p, left, MSG_NOSIGNAL);

				if (w <= 0)
					break;
				p += w;
				left -= (size_t)w;
			}
		}
		c->served++;
		shutdown(cfd, SHUT_WR);
		close(cfd);
	}
	return NULL;
}

static inline void fake_canned_start(struct fake_canned *c,
				     const char *response)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->response = response;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_msg(c->fd >= 0, "socket: %s", strerror(errno));
	setsockopt(c->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(bind(c->fd, (struct sockaddr *)&a, sizeof(a)) == 0,
		      "bind: %s", strerror(errno));
	ck_assert_msg(listen(c->fd, 16) == 0, "listen: %s", strerror(errno));
	ck_assert_msg(getsockname(c->fd, (struct sockaddr *)&a, &len) == 0,
		      "getsockname: %s", strerror(errno));
	c->port = ntohs(a.sin_port);
	snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d", c->port);
	ck_assert_msg(pthread_create(&c->th, NULL, fake_canned_main, c) == 0,
		      "pthread_create failed");
}

static inline void fake_canned_stop(struct fake_canned *c)
{
	c->stop = 1;
	shutdown(c->fd, SHUT_RDWR); /* wakes accept() */
	pthread_join(c->th, NULL);
	close(c->fd);
	c->fd = -1;
}

#endif
