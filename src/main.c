/*
 * main.c - m2worker, the daemon: configuration, store, Magento client and
 * worker pool wired together, then signals.
 *
 *   m2worker [-c FILE] [--check-config] [--version]
 *
 * Thin by design: everything it does lives in libm2worker. Signals are
 * blocked in every thread and taken synchronously here with sigwait():
 * SIGTERM/SIGINT stop leasing, let calls in flight finish within
 * [workers] shutdown_grace, release the rest without counting an attempt,
 * and close the store; SIGHUP reopens the log file (logrotate) and forgets
 * a rejected admin password (after the operator fixed it).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m2worker/config.h"
#ifdef HAVE_MHD
#include "m2worker/http.h"
#endif
#include "m2worker/log.h"
#include "m2worker/magento.h"
#include "m2worker/queue.h"
#include "m2worker/watch.h"
#include "m2worker/worker.h"

#define REPORT_MAX 16384

static void usage(FILE *f)
{
	fprintf(f, "usage: m2worker [-c FILE] [--check-config] [--version]\n"
		   "  -c, --config FILE   configuration (default %s)\n"
		   "  --check-config      check the configuration, report every "
		   "mistake as FILE:LINE, and exit\n", M2W_CONFIG_PATH);
}

static int load(const char *path, struct m2w_config *cfg)
{
	char *report = malloc(REPORT_MAX);
	int n;

	m2w_config_defaults(cfg);
	n = m2w_config_load(path, cfg, report, report ? REPORT_MAX : 0);
	if (n && report)
		fputs(report, stderr);
	if (n)
		fprintf(stderr, "m2worker: %d mistake%s in %s\n", n,
			n == 1 ? "" : "s", path);
	free(report);
	return n;
}

static void log_start(const struct m2w_config *cfg)
{
	char store[512], base[512];

	m2w_log(M2W_LOG_INFO, "start", "version=%s store=%s magento=%s "
		"threads=%u", PACKAGE_VERSION,
		m2w_log_quote(store, sizeof(store), cfg->store_path),
		m2w_log_quote(base, sizeof(base), cfg->magento.base_url),
		cfg->threads);
	if (cfg->nosync)
		m2w_log(M2W_LOG_WARN, "start", "nosync=yes: commits are not "
			"fsync'd; a power loss can lose the last accepted tasks");
	if (cfg->magento.insecure)
		m2w_log(M2W_LOG_WARN, "start", "insecure=yes: Magento's TLS "
			"certificate is NOT verified; for staging only");
}

static int run(const struct m2w_config *cfg)
{
	struct m2w_queue_opts qo;
	struct m2w_pool_opts po;
	struct m2w_queue *q = NULL;
	struct m2_client *client = NULL;
	struct m2w_pool *pool = NULL;
#ifdef HAVE_MHD
	struct m2w_http *http = NULL;
#endif
	struct m2w_watcher *watcher = NULL;
	char errbuf[M2W_ERRBUF_SIZE] = "";
	sigset_t sigs;
	int sig, rc;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread */
	signal(SIGPIPE, SIG_IGN);

	memset(&qo, 0, sizeof(qo));
	qo.path = cfg->store_path;
	qo.map_initial = cfg->map_initial;
	qo.map_max = cfg->map_max;
	qo.create = 1;
	qo.nosync = cfg->nosync;
	if ((rc = m2_global_init(errbuf)) ||
	    (rc = m2w_queue_open(&qo, &q, errbuf)) ||
	    (rc = m2_client_new(&cfg->magento, &client, errbuf))) {
		m2w_log(M2W_LOG_ERROR, "start", "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		goto out;
	}
	memset(&po, 0, sizeof(po));
	po.q = q;
	po.client = client;
	po.cfg = cfg;
	if ((rc = m2w_pool_start(&po, &pool, errbuf))) {
		m2w_log(M2W_LOG_ERROR, "start", "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		goto out;
	}
#ifdef HAVE_MHD
	if (cfg->http) {
		struct m2w_http_opts ho = { q, cfg, pool };
		char addr[256];

		if ((rc = m2w_http_start(&ho, &http, errbuf))) {
			m2w_log(M2W_LOG_ERROR, "start", "error=%s",
				m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
			m2w_pool_stop(pool, cfg->grace_ms);
			goto out;
		}
		m2w_log(M2W_LOG_INFO, "http.listen", "addr=%s port=%u",
			m2w_log_quote(addr, sizeof(addr), cfg->http_listen),
			cfg->http_port);
	}
#else
	if (cfg->http) {
		m2w_log(M2W_LOG_ERROR, "start", "error=\"HTTP push is not built "
			"in: configure found no libmicrohttpd\"");
		rc = M2W_EINVAL;
		m2w_pool_stop(pool, cfg->grace_ms);
		goto out;
	}
#endif
	if (cfg->nwatches &&
	    (rc = m2w_watch_start(q, cfg, &watcher, errbuf))) {
		m2w_log(M2W_LOG_ERROR, "start", "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		m2w_pool_stop(pool, cfg->grace_ms);
		goto out;
	}
	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			m2w_log_reopen();
			m2_client_reset_auth(client);
			m2w_log(M2W_LOG_INFO, "reload", "log reopened, "
				"admin login state cleared");
			continue;
		}
		m2w_log(M2W_LOG_INFO, "stop", "signal=%s grace_ms=%lld",
			sig == SIGTERM ? "TERM" : "INT",
			(long long)cfg->grace_ms);
		break;
	}
#ifdef HAVE_MHD
	m2w_http_draining(http);
#endif
	m2w_watch_stop(watcher);
	m2w_pool_stop(pool, cfg->grace_ms);
out:
#ifdef HAVE_MHD
	m2w_http_stop(http); /* before the pool and the store go */
#endif
	m2w_pool_free(pool);
	m2_client_free(client);
	m2w_queue_close(q);
	m2_global_cleanup();
	m2w_log(M2W_LOG_INFO, "exit", "status=%d", rc ? 1 : 0);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = M2W_CONFIG_PATH;
	struct m2w_config cfg;
	int ch, check = 0, rc;

	while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'C':
			check = 1;
			break;
		case 'V':
			printf("m2worker %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (load(path, &cfg)) {
		m2w_config_release(&cfg);
		return 1;
	}
	if (check) {
		printf("%s: configuration OK\n", path);
		m2w_config_release(&cfg);
		return 0;
	}
	if (m2w_log_open(cfg.log_file, cfg.log_level) != 0) {
		fprintf(stderr, "m2worker: log file %s: %s\n", cfg.log_file,
			strerror(errno));
		m2w_config_release(&cfg);
		return 1;
	}
	log_start(&cfg);
	rc = run(&cfg);
	m2w_log_close();
	m2w_config_release(&cfg);
	return rc;
}
