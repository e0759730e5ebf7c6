/*
 * probe.c - what a shopper feels: GET /storefront at a fixed rate, with the
 * latency counted from when each request was due.
 *
 *   probe -p PORT [-H ADDR] [-u PATH] [-r RATE] [-d SECONDS] [-c CONNS]
 *         [-t TIMEOUT_MS] [-s]
 *
 * Open loop: request i (0 .. RATE x SECONDS - 1) is due at t0 + i / RATE,
 * whether or not the earlier ones were answered. CONNS threads (default
 * 16), one keep-alive HTTP/1.1 connection each, take the next request
 * number in turn, sleep until it is due and send it; its latency runs from
 * the due time to the end of the answer. So a request that had to wait
 * for a free connection (every one of them stuck behind a slow server)
 * counts that wait too: no coordinated omission. Only when the server is
 * slower than CONNS / RATE seconds does the probe send late, and then
 * `rate` (below) drops under RATE.
 *
 * An answer other than 200, a closed connection, a connect failure or no
 * answer within TIMEOUT_MS (default 10000) of a read is an error; the
 * connection is then closed and opened again for the next request. The
 * percentiles are over the 200 answers only.
 *
 * SIGTERM or SIGINT stops the run early: no new request is sent, the ones
 * under way finish, and the line below is printed for what was sent (a
 * bench starts the probe with a long -d and stops it when its
 * measurement ends).
 *
 * Output, one line on stdout at the end:
 *   probe requests=N ok=N errors=N rate=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..
 * requests: sent; rate: requests sent per second between the first send
 * and the last (RATE unless the probe fell behind). With -s, before it,
 * a line per second of the schedule, printed as soon as that second's
 * requests are all answered:
 *   second=S requests=N errors=N p50_ms=.. p99_ms=..
 *
 * Exit status 0 when at least one request was answered 200, 1 when none
 * was, 2 for a usage error. Percentiles are nearest-rank.
 */
#define _GNU_SOURCE 1 /* memmem, strcasestr */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

#define PROBE_MAX_REQUESTS 50000000L

static struct in_addr g_addr;
static const char *g_host = "127.0.0.1";
static int g_port;
static const char *g_path = "/storefront";
static long g_rate = 50, g_secs = 10, g_conns = 16, g_timeout_ms = 10000;
static int g_per_second;

static long g_n;                /* requests scheduled: rate x seconds */
static double g_t0;             /* when request 0 is due */
static long g_next;             /* the next request number (atomic) */
static double *g_lat;           /* ms from due to answered, per request */
static unsigned char *g_st;     /* 0 not sent, 1 ok, 2 error */
static long *g_finished;        /* per second of the schedule (atomic) */
static int g_stop;                  /* atomic: set by the signal handler */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static double g_first_send = -1, g_last_send = -1;   /* under g_mu */

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "probe: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	__atomic_store_n(&g_stop, 1, __ATOMIC_SEQ_CST);
}

static int stopped(void)
{
	return __atomic_load_n(&g_stop, __ATOMIC_SEQ_CST);
}

/* Sleeps until `t` (CLOCK_MONOTONIC seconds) in slices of at most 100 ms;
 * 0 when it is time, -1 when the run was stopped meanwhile. */
static int sleep_until(double t)
{
	for (;;) {
		double left;
		struct timespec ts;

		if (stopped())
			return -1;
		left = t - now_s();
		if (left <= 0)
			return 0;
		if (left > 0.1)
			left = 0.1;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		nanosleep(&ts, NULL);       /* EINTR: look at g_stop again */
	}
}

/* A connection with a receive buffer. */
struct conn {
	int fd;
	char buf[65536];
	size_t len;
};

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static int conn_open(struct conn *c)
{
	struct timeval tv;

	c->len = 0;
	c->fd = bench_connect_addr(g_addr, g_port);
	if (c->fd < 0)
		return -1;
	tv.tv_sec = g_timeout_ms / 1000;
	tv.tv_usec = (g_timeout_ms % 1000) * 1000;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* More bytes into c->buf; -1 on timeout, error or close. */
static int fill(struct conn *c)
{
	ssize_t r;

	if (c->len == sizeof c->buf)
		return -1;
	do
		r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	c->len += (size_t)r;
	return 0;
}

/* One answer read whole: its status, or -1 (connection unusable).
 * *close_it: the server said Connection: close. */
static int read_answer(struct conn *c, int *close_it)
{
	char *end, *h;
	size_t hlen;
	long clen = -1;
	int code;

	*close_it = 0;
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (fill(c) < 0)
			return -1;
	hlen = (size_t)(end - c->buf) + 4;
	*end = '\0';
	if (sscanf(c->buf, "HTTP/1.%*d %d", &code) != 1)
		return -1;
	for (h = strstr(c->buf, "\r\n"); h; h = strstr(h, "\r\n")) {
		h += 2;
		if (!strncasecmp(h, "Content-Length:", 15)) {
			clen = strtol(h + 15, NULL, 10);
		} else if (!strncasecmp(h, "Connection:", 11)) {
			char *eol = strstr(h, "\r\n"), *cl = strcasestr(h, "close");

			if (cl && (!eol || cl < eol))
				*close_it = 1;
		}
	}
	if (clen < 0 || hlen + (size_t)clen > sizeof c->buf)
		return -1;              /* no length (or chunked): not ours */
	while (c->len < hlen + (size_t)clen)
		if (fill(c) < 0)
			return -1;
	memmove(c->buf, c->buf + hlen + clen, c->len - hlen - (size_t)clen);
	c->len -= hlen + (size_t)clen;
	return code;
}

/* One request on c: 1 when answered 200. */
static int request(struct conn *c, const char *req, size_t n)
{
	int code, close_it;

	if (c->fd < 0 && conn_open(c) < 0)
		return 0;
	if (send_all(c->fd, req, n) < 0) {
		conn_close(c);
		return 0;
	}
	code = read_answer(c, &close_it);
	if (code < 0 || close_it)
		conn_close(c);
	return code == 200;
}

static void *client(void *arg)
{
	struct conn *c = calloc(1, sizeof *c);
	char req[1024];
	size_t n;
	long i;

	(void)arg;
	if (!c)
		die("out of memory");
	n = (size_t)snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n"
			     "Host: %s:%d\r\nUser-Agent: m2worker-probe\r\n\r\n",
			     g_path, g_host, g_port);
	if (n >= sizeof req)
		die("-u: path too long");
	c->fd = -1;
	conn_open(c);               /* before the first one is due; retried */
	while (!stopped()) {
		double due, sent;
		int ok;

		i = __atomic_fetch_add(&g_next, 1, __ATOMIC_SEQ_CST);
		if (i >= g_n)
			break;
		due = g_t0 + (double)i / (double)g_rate;
		if (sleep_until(due) < 0)
			break;
		sent = now_s();
		ok = request(c, req, n);
		g_lat[i] = (now_s() - due) * 1000;
		g_st[i] = ok ? 1 : 2;
		__atomic_fetch_add(&g_finished[i / g_rate], 1, __ATOMIC_RELEASE);
		pthread_mutex_lock(&g_mu);
		if (g_first_send < 0 || sent < g_first_send)
			g_first_send = sent;
		if (sent > g_last_send)
			g_last_send = sent;
		pthread_mutex_unlock(&g_mu);
	}
	conn_close(c);
	free(c);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double p)
{
	long i = (long)(p * (double)n + 0.999999);

	if (i < 1)
		i = 1;
	return n ? v[i - 1] : 0;
}

/* The ok latencies of requests [from, to) into v (sorted); their count.
 * *sent and *errors: how many were sent, how many failed. */
static long collect(long from, long to, double *v, long *sent, long *errors)
{
	long i, k = 0;

	*sent = *errors = 0;
	for (i = from; i < to; i++) {
		if (g_st[i] == 0)
			continue;
		(*sent)++;
		if (g_st[i] == 1)
			v[k++] = g_lat[i];
		else
			(*errors)++;
	}
	qsort(v, (size_t)k, sizeof *v, cmp_double);
	return k;
}

static void print_second(long s, double *v)
{
	long sent, errors, k;

	k = collect(s * g_rate, (s + 1) * g_rate, v, &sent, &errors);
	if (!sent)
		return;
	printf("second=%ld requests=%ld errors=%ld p50_ms=%.1f p99_ms=%.1f\n",
	       s + 1, sent, errors, pct(v, k, 0.50), pct(v, k, 0.99));
	fflush(stdout);
}

static long num(const char *opt, const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end || v < 1)
		die("%s: a positive number, not \"%s\"", opt, s);
	return v;
}

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fprintf(stderr,
		"usage: probe -p PORT [-H ADDR] [-u PATH] [-r RATE] [-d SECONDS] [-c CONNS]\n"
		"             [-t TIMEOUT_MS] [-s]\n"
		"  GET PATH (default /storefront) on ADDR:PORT (default 127.0.0.1), RATE a\n"
		"  second (50) for SECONDS (10), open loop over CONNS connections (16);\n"
		"  -s: a line per second too. SIGTERM ends the run early.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	pthread_t *th;
	double *v, span, rate;
	long i, k, s, sent, errors, nsec, shown = 0;
	int opt;

	while ((opt = getopt(argc, argv, "p:H:u:r:d:c:t:s")) != -1) {
		switch (opt) {
		case 'p': g_port = (int)num("-p", optarg); break;
		case 'H': g_host = optarg; break;
		case 'u': g_path = optarg; break;
		case 'r': g_rate = num("-r", optarg); break;
		case 'd': g_secs = num("-d", optarg); break;
		case 'c': g_conns = num("-c", optarg); break;
		case 't': g_timeout_ms = num("-t", optarg); break;
		case 's': g_per_second = 1; break;
		default: usage();
		}
	}
	if (optind != argc || !g_port)
		usage();
	if (g_port > 65535 || inet_pton(AF_INET, g_host, &g_addr) != 1)
		die("-p or -H: not a port and an IPv4 address: %s:%d", g_host,
		    g_port);
	if (g_path[0] != '/' || strpbrk(g_path, " \r\n"))
		die("-u: a path starting with /, without spaces");
	if (g_conns > 1000)
		die("-c at most 1000");
	if (g_rate > PROBE_MAX_REQUESTS / g_secs)
		die("-r x -d at most %ld requests", PROBE_MAX_REQUESTS);
	g_n = g_rate * g_secs;
	nsec = g_secs;
	if (!(g_lat = calloc((size_t)g_n, sizeof *g_lat)) ||
	    !(g_st = calloc((size_t)g_n, 1)) ||
	    !(g_finished = calloc((size_t)nsec, sizeof *g_finished)) ||
	    !(v = calloc((size_t)g_n, sizeof *v)) ||
	    !(th = calloc((size_t)g_conns, sizeof *th)))
		die("out of memory");

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;       /* no SA_RESTART: sleeps end early */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	g_t0 = now_s() + 0.05;           /* the threads connect meanwhile */
	for (i = 0; i < g_conns; i++)
		if (pthread_create(&th[i], NULL, client, NULL) != 0)
			die("pthread_create failed");
	if (g_per_second) {
		/* each second as soon as every request of it is answered */
		while (shown < nsec && !stopped()) {
			if (__atomic_load_n(&g_finished[shown], __ATOMIC_ACQUIRE) ==
			    g_rate) {
				print_second(shown++, v);
				continue;
			}
			sleep_until(now_s() + 0.1);
		}
	}
	for (i = 0; i < g_conns; i++)
		pthread_join(th[i], NULL);
	for (s = shown; g_per_second && s < nsec; s++)
		print_second(s, v);

	k = collect(0, g_n, v, &sent, &errors);
	span = g_last_send - g_first_send;
	rate = sent <= 1 ? (double)sent : (double)(sent - 1) / (span > 0 ? span : 1e-9);
	printf("probe requests=%ld ok=%ld errors=%ld rate=%.1f p50_ms=%.1f "
	       "p90_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", sent, k, errors, rate,
	       pct(v, k, 0.50), pct(v, k, 0.90), pct(v, k, 0.99),
	       k ? v[k - 1] : 0.0);
	free(th);
	free(v);
	free(g_finished);
	free(g_st);
	free(g_lat);
	return k > 0 ? 0 : 1;
}
