/*
 * push.c - load generator for tools/bench/ingest.sh: C threads, one
 * keep-alive TCP connection each, on 127.0.0.1.
 *
 *   push http [-r|-k] -p PORT -t TOKEN -c CLIENTS -n TASKS -b BATCH
 *        [-o ORDERS] [-s N]
 *        POST /v1/tasks with a JSON array of BATCH tracking items
 *        ({"type":"tracking","payload":{"order":..,"track":"PUSH<k>",
 *        "carrier":"ups"}}, k = 1..TASKS (plus N), order k mod ORDERS), or
 *        with -r of ~200-byte rest items (a PUT of /V1/bench/<k>: no
 *        idempotency key, no ordering group), or with -k of stock items
 *        ({"sku":"SKU-<1 + k mod ORDERS>","qty":<k mod 1000>}: the fake's
 *        products; newest wins per SKU), each client
 *        sending its share of the requests one after another, waiting for
 *        each answer (HTTP/1.1 keep-alive). Every answer must be 202 with
 *        as many accepted ids as items sent (no duplicates).
 *   push beanstalkd -p PORT -c CLIENTS -n JOBS [-z SIZE]
 *        `put 0 0 60 SIZE` one at a time per client, waiting for INSERTED.
 *   push freeport
 *        prints a port that was free a moment ago.
 *
 * The clock starts when every client is connected and stops when the last
 * one is done. One line goes to stdout:
 *   tasks=N requests=R seconds=S rate=TASKS/S p50_ms=.. p99_ms=.. cpu_s=..
 * (cpu_s: this process's user + system CPU seconds over the whole run, so
 * the caller can tell whether the load generator was the limit). Any error
 * (connect, an unexpected answer, a closed connection) ends the program
 * with status 1 and a message on stderr.
 */
#define _GNU_SOURCE 1 /* memmem, strcasestr */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

enum mode { M_HTTP, M_BEANSTALKD };

static enum mode g_mode;
static int g_port;
static const char *g_token = "";
static int g_plain;             /* -r: rest tasks, no key, no group */
static int g_stock;             /* -k: stock tasks, -o SKUs */
static char g_pad[121];         /* -r: the padding of a rest item */
static long g_clients = 1, g_total, g_batch = 1, g_orders, g_size = 200;
static long g_first;                 /* -s: added to every track number */
static long g_requests;              /* total requests (batches or puts) */
static pthread_barrier_t g_start;
static double *g_lat;                /* per request, ms; indexed by request */

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "push: ");
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

static int tcp_connect(int port)
{
	int fd = bench_connect(port);

	if (fd < 0)
		die("connect 127.0.0.1:%d: %s", port, strerror(errno));
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("send: %s", w < 0 ? strerror(errno) : "closed");
		p += w;
		n -= (size_t)w;
	}
}

/* A connection with a receive buffer. */
struct conn {
	int fd;
	char buf[65536];
	size_t len;
};

static void fill(struct conn *c)
{
	ssize_t r;

	if (c->len == sizeof c->buf)
		die("answer too long");
	do
		r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("recv: %s", strerror(errno));
	if (r == 0)
		die("connection closed by the server");
	c->len += (size_t)r;
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* One HTTP answer: checks 202 and `want` accepted ids; returns 1 when the
 * server will close the connection. */
static int http_answer(struct conn *c, long want)
{
	char *end, *h, *p, body[65536];
	size_t hlen;
	long clen = -1, ids = 0;
	int code, close_it = 0;

	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		fill(c);
	hlen = (size_t)(end - c->buf) + 4;
	*end = '\0';
	if (sscanf(c->buf, "HTTP/1.%*d %d", &code) != 1)
		die("not an HTTP answer: %.80s", c->buf);
	for (h = strstr(c->buf, "\r\n"); h; h = strstr(h, "\r\n")) {
		h += 2;
		if (!strncasecmp(h, "Content-Length:", 15))
			clen = strtol(h + 15, NULL, 10);
		else if (!strncasecmp(h, "Connection:", 11)) {
			char *eol = strstr(h, "\r\n"), *cl = strcasestr(h, "close");

			if (cl && (!eol || cl < eol))
				close_it = 1;
		}
	}
	if (clen < 0 || clen >= (long)sizeof body)
		die("answer %d without a usable Content-Length", code);
	while (c->len < hlen + (size_t)clen)
		fill(c);
	memcpy(body, c->buf + hlen, (size_t)clen);
	body[clen] = '\0';
	consume(c, hlen + (size_t)clen);
	if (code != 202)
		die("answer %d: %s", code, body);
	if (!(p = strstr(body, "\"accepted\":[")))
		die("202 without accepted: %s", body);
	for (p += 12; *p && *p != ']'; p++)
		if (*p >= '0' && *p <= '9' && (p[1] < '0' || p[1] > '9'))
			ids++;
	if (ids != want)
		die("%ld of %ld items accepted: %.200s", ids, want, body);
	return close_it;
}

static void http_client(long t)
{
	struct conn *c = calloc(1, sizeof *c);
	size_t cap = 256 + (size_t)g_batch * 256, n;
	char *req = malloc(cap), *body = malloc(cap), *p;
	long r, k, first, last;

	if (!c || !req || !body)
		die("out of memory");
	c->fd = tcp_connect(g_port);
	pthread_barrier_wait(&g_start);
	for (r = t; r < g_requests; r += g_clients) {
		double t0;

		first = r * g_batch + 1;
		last = first + g_batch - 1;
		if (last > g_total)
			last = g_total;
		p = body;
		*p++ = '[';
		for (k = first; k <= last; k++)
			if (g_plain)
				p += sprintf(p, "%s{\"type\":\"rest\",\"payload\":"
					     "{\"method\":\"PUT\",\"path\":"
					     "\"/V1/bench/%ld\",\"body\":{\"pad\":"
					     "\"%.*s\"}}}", k > first ? "," : "",
					     g_first + k, (int)sizeof g_pad - 1, g_pad);
			else if (g_stock)
				p += sprintf(p, "%s{\"type\":\"stock\",\"payload\":"
					     "{\"sku\":\"SKU-%ld\",\"qty\":%ld}}",
					     k > first ? "," : "",
					     (g_first + k) % g_orders + 1,
					     (g_first + k) % 1000);
			else
				p += sprintf(p, "%s{\"type\":\"tracking\",\"payload\":"
				     "{\"order\":\"%ld\",\"track\":\"PUSH%ld\","
				     "\"carrier\":\"ups\"}}", k > first ? "," : "",
				     1000000000L + (k - 1) % g_orders + 1,
				     g_first + k);
		*p++ = ']';
		n = (size_t)(p - body);
		n = (size_t)snprintf(req, cap, "POST /v1/tasks HTTP/1.1\r\n"
				     "Host: 127.0.0.1:%d\r\n"
				     "Authorization: Bearer %s\r\n"
				     "Content-Type: application/json\r\n"
				     "Content-Length: %zu\r\n\r\n%.*s",
				     g_port, g_token, n, (int)n, body);
		if (n >= cap)
			die("request too long");
		t0 = now_s();
		send_all(c->fd, req, n);
		if (http_answer(c, last - first + 1)) {
			close(c->fd);
			c->fd = tcp_connect(g_port);
			c->len = 0;
		}
		g_lat[r] = (now_s() - t0) * 1000;
	}
	close(c->fd);
	free(c);
	free(req);
	free(body);
}

static void bs_client(long t)
{
	struct conn *c = calloc(1, sizeof *c);
	size_t n, cap = (size_t)g_size + 64;
	char *req = malloc(cap), *eol;
	long r;

	if (!c || !req)
		die("out of memory");
	n = (size_t)sprintf(req, "put 0 0 60 %ld\r\n", g_size);
	memset(req + n, 'j', (size_t)g_size);
	n += (size_t)g_size;
	memcpy(req + n, "\r\n", 2);
	n += 2;
	c->fd = tcp_connect(g_port);
	pthread_barrier_wait(&g_start);
	for (r = t; r < g_requests; r += g_clients) {
		double t0 = now_s();

		send_all(c->fd, req, n);
		while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
			fill(c);
		if (strncmp(c->buf, "INSERTED ", 9) != 0)
			die("beanstalkd: put: %.*s", (int)(eol - c->buf), c->buf);
		consume(c, (size_t)(eol - c->buf) + 2);
		g_lat[r] = (now_s() - t0) * 1000;
	}
	close(c->fd);
	free(c);
	free(req);
}

static void *client(void *arg)
{
	long t = (long)arg;

	if (g_mode == M_HTTP)
		http_client(t);
	else
		bs_client(t);
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

static void freeport(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		die("no free port: %s", strerror(errno));
	printf("%d\n", ntohs(a.sin_port));
	close(fd);
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
		"usage: push http [-r|-k] -p PORT -t TOKEN -c CLIENTS -n TASKS -b BATCH [-o ORDERS] [-s FIRST]\n"
		"       push beanstalkd -p PORT -c CLIENTS -n JOBS [-z SIZE]\n"
		"       push freeport\n");
	exit(2);
}

int main(int argc, char **argv)
{
	pthread_t *th;
	struct rusage ru;
	double t0, t1, secs, cpu;
	long i;
	int opt;

	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "freeport")) {
		freeport();
		return 0;
	}
	if (!strcmp(argv[1], "http"))
		g_mode = M_HTTP;
	else if (!strcmp(argv[1], "beanstalkd"))
		g_mode = M_BEANSTALKD;
	else
		usage();
	optind = 2;
	while ((opt = getopt(argc, argv, "p:t:c:n:b:o:s:z:rk")) != -1) {
		switch (opt) {
		case 'p': g_port = (int)num("-p", optarg); break;
		case 't': g_token = optarg; break;
		case 'c': g_clients = num("-c", optarg); break;
		case 'n': g_total = num("-n", optarg); break;
		case 'b': g_batch = num("-b", optarg); break;
		case 'o': g_orders = num("-o", optarg); break;
		case 's': g_first = num("-s", optarg); break;
		case 'z': g_size = num("-z", optarg); break;
		case 'r': g_plain = 1; break;
		case 'k': g_stock = 1; break;
		default: usage();
		}
	}
	if (optind != argc || !g_port || !g_total)
		usage();
	if (g_mode == M_BEANSTALKD)
		g_batch = 1;
	memset(g_pad, 'x', sizeof g_pad - 1);
	if (!g_orders)
		g_orders = g_total;
	if (g_batch > 10000 || g_clients > 1000)
		die("-b at most 10000, -c at most 1000");
	g_requests = (g_total + g_batch - 1) / g_batch;
	if (!(g_lat = calloc((size_t)g_requests, sizeof *g_lat)) ||
	    !(th = calloc((size_t)g_clients, sizeof *th)))
		die("out of memory");
	pthread_barrier_init(&g_start, NULL, (unsigned)g_clients + 1);
	for (i = 0; i < g_clients; i++)
		if (pthread_create(&th[i], NULL, client, (void *)i) != 0)
			die("pthread_create failed");
	pthread_barrier_wait(&g_start);
	t0 = now_s();
	for (i = 0; i < g_clients; i++)
		pthread_join(th[i], NULL);
	t1 = now_s();
	secs = t1 - t0;
	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	qsort(g_lat, (size_t)g_requests, sizeof *g_lat, cmp_double);
	printf("tasks=%ld requests=%ld seconds=%.3f rate=%.0f p50_ms=%.2f "
	       "p99_ms=%.2f cpu_s=%.2f\n", g_total, g_requests, secs,
	       (double)g_total / (secs > 0 ? secs : 1e-9),
	       pct(g_lat, g_requests, 0.50), pct(g_lat, g_requests, 0.99), cpu);
	free(th);
	free(g_lat);
	return 0;
}
