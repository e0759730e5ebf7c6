#include "config.h"
/*
 * main.c - fake-magento's command line and HTTP server.
 *
 * libmicrohttpd runs with one thread per connection (plus its internal
 * listening thread), so --latency-ms sleeps only hold up the connection
 * being slowed, and any number of keep-alive clients work at once. The
 * URI log callback keeps the raw request URI (the OAuth base string and
 * query parsing need it undecoded); the body is gathered in a per-request
 * struct fk_req that the completion callback frees. Requests under /rest
 * go to routes.c and GET /storefront to php.c, both through the PHP worker
 * pool (php.c: with --php-workers N at most N at once, the rest waiting in
 * FIFO order); /_fake/ goes to control.c without a worker; everything else
 * is a 404.
 *
 * SIGINT and SIGTERM are blocked in every thread and taken with sigwait()
 * by main(), which then wakes every request waiting for a PHP worker
 * (they answer 503), stops the daemon and frees the state.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "fake.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result fk_mhd_ret;
#else
typedef int fk_mhd_ret;
#endif

#if MHD_VERSION >= 0x00095400
#define FK_MHD_INTERNAL MHD_USE_INTERNAL_POLLING_THREAD
#define FK_MHD_LOG MHD_USE_ERROR_LOG
#else
#define FK_MHD_INTERNAL MHD_USE_SELECT_INTERNALLY
#define FK_MHD_LOG MHD_USE_DEBUG
#endif

#define FK_BODY_MAX (16u << 20)

static void usage(FILE *f)
{
	fputs(
"usage: fake-magento [options]\n"
"  -p, --port N          port on 127.0.0.1; 0 (default) = pick a free one\n"
"  --port-file FILE      write the chosen port there once listening\n"
"  --orders N            generate N orders (default 100)\n"
"  --products N          generate N products (default 100)\n"
"  --token T             accept \"Authorization: Bearer T\"\n"
"  --admin USER:PASS     accept admin login (POST /V1/integration/admin/token)\n"
"  --admin-token-ttl S   lifetime of admin tokens in seconds (default 3600)\n"
"  --oauth CK:CS:AT:AS   accept OAuth 1.0a HMAC-SHA256\n"
"  --no-auth             accept every request (default without the above)\n"
"  --fail-rate F         fraction 0..1 of API requests failed on purpose\n"
"  --fail-status N       500 or 503 (default 503)\n"
"  --latency-ms N        added latency per API request\n"
"  --php-workers N       at most N API/storefront requests at once, the rest\n"
"                        wait in FIFO order (0 = unlimited, the default)\n"
"  --storefront-ms M     service time of GET /storefront (default 30)\n"
"  --drop-rate F         fraction of API requests closed without a response\n"
"  --rate-limit N        above N API requests per second answer 429\n"
"  --retry-after S       Retry-After seconds for 429 and 503 (default 1)\n"
"  --outage              start in full outage (503 maintenance)\n"
"  --seed N              PRNG seed (default 1)\n"
"  -v                    log each request to stderr\n"
"Control API (no auth, no faults): GET /_fake/state, POST /_fake/faults,\n"
"POST /_fake/orders/<increment_id>, POST /_fake/expire-tokens, POST /_fake/reset\n"
"Storefront (no auth, no faults, one PHP worker): GET /storefront\n",
	      f);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_rate(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !(v >= 0 && v <= 1))
		return -1;
	*out = v;
	return 0;
}

static int bad_arg(const char *opt, const char *val)
{
	fprintf(stderr, "fake-magento: bad value for %s: '%s'\n", opt, val);
	return -1;
}

enum {
	O_PORT_FILE = 256, O_ORDERS, O_PRODUCTS, O_TOKEN, O_ADMIN, O_TTL,
	O_OAUTH, O_NO_AUTH, O_FAIL_RATE, O_FAIL_STATUS, O_LATENCY, O_DROP,
	O_RATE_LIMIT, O_RETRY_AFTER, O_OUTAGE, O_SEED, O_PHP_WORKERS,
	O_STOREFRONT_MS
};

static int parse_args(int argc, char **argv, struct fk_opts *o)
{
	static const struct option lopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "port-file", required_argument, NULL, O_PORT_FILE },
		{ "orders", required_argument, NULL, O_ORDERS },
		{ "products", required_argument, NULL, O_PRODUCTS },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "admin", required_argument, NULL, O_ADMIN },
		{ "admin-token-ttl", required_argument, NULL, O_TTL },
		{ "oauth", required_argument, NULL, O_OAUTH },
		{ "no-auth", no_argument, NULL, O_NO_AUTH },
		{ "fail-rate", required_argument, NULL, O_FAIL_RATE },
		{ "fail-status", required_argument, NULL, O_FAIL_STATUS },
		{ "latency-ms", required_argument, NULL, O_LATENCY },
		{ "drop-rate", required_argument, NULL, O_DROP },
		{ "rate-limit", required_argument, NULL, O_RATE_LIMIT },
		{ "retry-after", required_argument, NULL, O_RETRY_AFTER },
		{ "outage", no_argument, NULL, O_OUTAGE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "php-workers", required_argument, NULL, O_PHP_WORKERS },
		{ "storefront-ms", required_argument, NULL, O_STOREFRONT_MS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c, no_auth = 0;
	long v;

	memset(o, 0, sizeof *o);
	o->norders = 100;
	o->nproducts = 100;
	o->admin_ttl = 3600;
	o->faults.fail_status = 503;
	o->faults.retry_after = 1;
	o->storefront_ms = 30;
	o->seed = 1;

	while ((c = getopt_long(argc, argv, "p:vh", lopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_long(optarg, 0, 65535, &v) < 0)
				return bad_arg("--port", optarg);
			o->port = (int)v;
			break;
		case O_PORT_FILE:
			o->port_file = optarg;
			break;
		case O_ORDERS:
			if (parse_long(optarg, 0, 100000000, &o->norders) < 0)
				return bad_arg("--orders", optarg);
			break;
		case O_PRODUCTS:
			if (parse_long(optarg, 1, 100000000, &o->nproducts) < 0)
				return bad_arg("--products", optarg);
			break;
		case O_TOKEN:
			if (!*optarg)
				return bad_arg("--token", optarg);
			o->token = optarg;
			break;
		case O_ADMIN: {
			const char *colon = strchr(optarg, ':');

			if (!colon || colon == optarg || !colon[1])
				return bad_arg("--admin", optarg);
			free(o->admin_user);
			free(o->admin_pass);
			o->admin_user = strndup(optarg, (size_t)(colon - optarg));
			o->admin_pass = strdup(colon + 1);
			break;
		}
		case O_TTL:
			if (parse_long(optarg, 1, LONG_MAX / 2, &o->admin_ttl) < 0)
				return bad_arg("--admin-token-ttl", optarg);
			break;
		case O_OAUTH: {
			const char *p = optarg;
			int i;

			for (i = 0; i < 4; i++) {
				const char *e = i < 3 ? strchr(p, ':') : p + strlen(p);

				if (!e || e == p || (i == 3 && strchr(p, ':')))
					return bad_arg("--oauth", optarg);
				free(o->oauth[i]);
				o->oauth[i] = strndup(p, (size_t)(e - p));
				p = e + 1;
			}
			break;
		}
		case O_NO_AUTH:
			no_auth = 1;
			break;
		case O_FAIL_RATE:
			if (parse_rate(optarg, &o->faults.fail_rate) < 0)
				return bad_arg("--fail-rate", optarg);
			break;
		case O_FAIL_STATUS:
			if (parse_long(optarg, 500, 503, &v) < 0 ||
			    (v != 500 && v != 503))
				return bad_arg("--fail-status", optarg);
			o->faults.fail_status = (int)v;
			break;
		case O_LATENCY:
			if (parse_long(optarg, 0, 3600000, &v) < 0)
				return bad_arg("--latency-ms", optarg);
			o->faults.latency_ms = (int)v;
			break;
		case O_DROP:
			if (parse_rate(optarg, &o->faults.drop_rate) < 0)
				return bad_arg("--drop-rate", optarg);
			break;
		case O_RATE_LIMIT:
			if (parse_long(optarg, 0, INT_MAX, &v) < 0)
				return bad_arg("--rate-limit", optarg);
			o->faults.rate_limit = (int)v;
			break;
		case O_RETRY_AFTER:
			if (parse_long(optarg, 0, 86400, &v) < 0)
				return bad_arg("--retry-after", optarg);
			o->faults.retry_after = (int)v;
			break;
		case O_OUTAGE:
			o->faults.outage = 1;
			break;
		case O_SEED:
			if (parse_long(optarg, 0, LONG_MAX, &v) < 0)
				return bad_arg("--seed", optarg);
			o->seed = (uint64_t)v;
			break;
		case O_PHP_WORKERS:
			if (parse_long(optarg, 0, FK_PHP_MAX, &o->php_workers) < 0)
				return bad_arg("--php-workers", optarg);
			break;
		case O_STOREFRONT_MS:
			if (parse_long(optarg, 0, 3600000, &v) < 0)
				return bad_arg("--storefront-ms", optarg);
			o->storefront_ms = (int)v;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fake-magento: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	o->no_auth = no_auth || (!o->token && !o->admin_user && !o->oauth[0]);
	return 0;
}

static void opts_free(struct fk_opts *o)
{
	int i;

	free(o->admin_user);
	free(o->admin_pass);
	for (i = 0; i < 4; i++)
		free(o->oauth[i]);
}

/* ---- per-request context */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct fk_req *rq = calloc(1, sizeof *rq);

	(void)cls;
	(void)c;
	if (!rq)
		abort();
	rq->raw_uri = fk_xstrdup(uri ? uri : "/");
	return rq;
}

static void req_free(struct fk_req *rq)
{
	if (!rq)
		return;
	free(rq->raw_uri);
	free(rq->body);
	free(rq->raw_path);
	fk_query_free(rq->query, rq->nquery);
	free(rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	req_free(*con_cls);
	*con_cls = NULL;
}

static void body_append(struct fk_req *rq, const char *data, size_t n)
{
	if (rq->too_big || rq->len + n > FK_BODY_MAX) {
		rq->too_big = 1;
		return;
	}
	if (rq->len + n + 1 > rq->cap) {
		rq->cap = 2 * (rq->len + n + 1);
		rq->body = fk_xrealloc(rq->body, rq->cap);
	}
	memcpy(rq->body + rq->len, data, n);
	rq->len += n;
	rq->body[rq->len] = '\0';
}

static void log_request(const struct fk_req *rq, const struct fk_resp *resp)
{
	struct timespec t1;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (long)(t1.tv_sec - rq->t0.tv_sec) * 1000 +
	     (t1.tv_nsec - rq->t0.tv_nsec) / 1000000;
	if (resp->drop)
		fprintf(stderr, "fake-magento: %s %s -> dropped (%ld ms)\n",
			rq->method, rq->raw_uri, ms);
	else
		fprintf(stderr, "fake-magento: %s %s -> %d (%ld ms)\n",
			rq->method, rq->raw_uri, resp->status, ms);
}

static fk_mhd_ret on_request(void *cls, struct MHD_Connection *c,
			     const char *url, const char *method,
			     const char *version, const char *upload_data,
			     size_t *upload_size, void **con_cls)
{
	struct fk_server *srv = cls;
	struct fk_req *rq = *con_cls;
	struct fk_resp resp = { .status = 500 };
	struct MHD_Response *r;
	const char *q;
	fk_mhd_ret ret;

	(void)version;
	if (!rq) {
		rq = on_uri(NULL, url, c);
		*con_cls = rq;
	}
	if (!rq->started) {
		rq->started = 1;
		clock_gettime(CLOCK_MONOTONIC, &rq->t0);
		return MHD_YES;
	}
	if (*upload_size) {
		body_append(rq, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (!rq->body) {
		rq->body = fk_xstrdup("");
		rq->cap = 1;
	}
	rq->method = method;
	rq->url = url;
	rq->content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_CONTENT_TYPE);
	rq->authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						MHD_HTTP_HEADER_AUTHORIZATION);
	rq->host = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					       MHD_HTTP_HEADER_HOST);
	q = strchr(rq->raw_uri, '?');
	rq->raw_path = q ? strndup(rq->raw_uri, (size_t)(q - rq->raw_uri))
			 : fk_xstrdup(rq->raw_uri);
	if (!rq->raw_path)
		abort();
	fk_query_parse(q ? q + 1 : "", &rq->query, &rq->nquery);

	if (rq->too_big)
		fk_resp_error(&resp, 413, "Request body too large", NULL);
	else if (strncmp(url, "/_fake/", 7) == 0)
		fk_control_handle(srv, rq, &resp);
	else if (strncmp(url, "/rest/", 6) == 0)
		fk_php_serve(srv, rq, &resp, FK_PHP_API);
	else if (strcmp(url, "/storefront") == 0 && strcmp(method, "GET") == 0)
		fk_php_serve(srv, rq, &resp, FK_PHP_STOREFRONT);
	else
		fk_resp_route_404(&resp);

	if (srv->opts->verbose)
		log_request(rq, &resp);
	if (resp.drop) {
		free(resp.body);
		return MHD_NO;
	}
#if MHD_VERSION >= 0x00097701
	r = MHD_create_response_from_buffer_copy(
		resp.body ? strlen(resp.body) : 0, resp.body ? resp.body : "");
#else
	r = MHD_create_response_from_buffer(resp.body ? strlen(resp.body) : 0,
					    resp.body ? resp.body : (char *)"",
					    MHD_RESPMEM_MUST_COPY);
#endif
	free(resp.body);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				resp.content_type ? resp.content_type :
				"application/json");
	if (resp.retry_after > 0) {
		char ra[24];

		snprintf(ra, sizeof ra, "%d", resp.retry_after);
		MHD_add_response_header(r, "Retry-After", ra);
	}
	ret = MHD_queue_response(c, (unsigned int)resp.status, r);
	MHD_destroy_response(r);
	return ret;
}

static int write_port_file(const char *path, int port)
{
	size_t n = strlen(path) + 5;
	char *tmp = malloc(n);
	FILE *f;
	int rc = -1;

	if (!tmp)
		return -1;
	snprintf(tmp, n, "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f) {
		fprintf(f, "%d\n", port);
		if (fclose(f) == 0 && rename(tmp, path) == 0)
			rc = 0;
	}
	if (rc < 0)
		fprintf(stderr, "fake-magento: cannot write %s: %s\n", path,
			strerror(errno));
	free(tmp);
	return rc;
}

int main(int argc, char **argv)
{
	struct fk_opts o;
	struct fk_server srv;
	struct MHD_Daemon *d;
	struct sockaddr_in sa;
	socklen_t salen = sizeof sa;
	const union MHD_DaemonInfo *info;
	unsigned int flags;
	sigset_t set;
	int sig = 0, port;

	if (parse_args(argc, argv, &o) < 0) {
		opts_free(&o);
		return 2;
	}
	fk_state_init(&srv, &o);

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)o.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	flags = MHD_USE_THREAD_PER_CONNECTION | FK_MHD_INTERNAL;
	if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
		flags |= MHD_USE_POLL;
	if (o.verbose)
		flags |= FK_MHD_LOG;
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &srv,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
			     MHD_OPTION_URI_LOG_CALLBACK, on_uri, (void *)NULL,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)NULL,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
			     MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "fake-magento: cannot listen on 127.0.0.1:%d\n",
			o.port);
		fk_state_free(&srv);
		opts_free(&o);
		return 1;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
	if (!info || getsockname(info->listen_fd, (struct sockaddr *)&sa,
				 &salen) < 0) {
		fprintf(stderr, "fake-magento: cannot read the port\n");
		MHD_stop_daemon(d);
		fk_state_free(&srv);
		opts_free(&o);
		return 1;
	}
	port = ntohs(sa.sin_port);
	if (o.port_file && write_port_file(o.port_file, port) < 0) {
		MHD_stop_daemon(d);
		fk_state_free(&srv);
		opts_free(&o);
		return 1;
	}
	printf("fake-magento listening on 127.0.0.1:%d\n", port);
	fflush(stdout);

	while (sigwait(&set, &sig) != 0 || (sig != SIGINT && sig != SIGTERM))
		;
	if (o.verbose)
		fprintf(stderr, "fake-magento: signal %d, stopping\n", sig);
	__atomic_store_n(&srv.stopping, 1, __ATOMIC_SEQ_CST);
	fk_php_stop(&srv);
	MHD_stop_daemon(d);
	fk_state_free(&srv);
	opts_free(&o);
	return 0;
}
