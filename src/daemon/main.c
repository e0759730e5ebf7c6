/*
 * main.c - m2worker, the daemon: configuration, store, Magento client and
 * worker pool wired together, then signals.
 *
 *   m2worker [-c FILE] [--check-config] [--version] [--hash-password]
 *
 * Thin by design: everything it does lives in libm2worker. Signals are
 * blocked in every thread and taken synchronously here with sigwait():
 * SIGTERM/SIGINT stop leasing, let calls in flight finish within
 * [workers] shutdown_grace, release the rest without counting an attempt,
 * and close the store; SIGHUP reopens the log file (logrotate) and forgets
 * a rejected admin password (after the operator unlocked the admin or set
 * its password back in Magento), and re-reads nothing: a changed
 * configuration or secret needs a restart.
 *
 * The store is opened exclusive (one daemon a store), so every lease in
 * it at start is a dead process's: recover() hands them all back before
 * the workers start, rather than a lease later; retention.h purges ended
 * tasks in the background.
 *
 * systemd (notify.h; no-ops when built without libsystemd): READY=1 once
 * the store is open and its leases handed back, and the
 * workers, HTTP push and watched directories run; RELOADING=1 ... READY=1
 * around SIGHUP; STOPPING=1 when the drain starts. With WatchdogSec= the
 * same main loop that takes the signals pings WATCHDOG=1 at half the
 * interval, each ping only after a reap went through the store's commit
 * thread: a wedged main thread or a wedged store (the commit thread, a
 * hung fsync) stops the pings and systemd restarts the daemon. Workers
 * stuck in a Magento call are not wedged (curl's timeouts end the call)
 * and the keeper extends their leases, so they do not hold pings back.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "amqp.h"
#include "events.h"
#include "m2worker/clock.h"
#include "m2worker/config.h"
#ifdef HAVE_MHD
#include "console.h"
#include "http.h"
#endif
#include "m2worker/log.h"
#include "m2worker/magento.h"
#include "notify.h"
#include "m2worker/queue.h"
#include "retention.h"
#include "watch.h"
#include "worker.h"

#define REPORT_MAX 16384

static void usage(FILE *f)
{
	fprintf(f, "usage: m2worker [-c FILE] [--check-config] [--version] "
		   "[--hash-password]\n"
		   "  -c, --config FILE   configuration (default %s)\n"
		   "  --check-config      check the configuration, report every "
		   "mistake as FILE:LINE, and exit\n"
		   "  --hash-password     read a password on stdin, print its "
		   "hash for [http] console_users\n", M2W_CONFIG_PATH);
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

#ifdef HAVE_MHD
#define HTTP_BUILT 1
#else
#define HTTP_BUILT 0
#endif
#ifdef HAVE_AMQP
#define AMQP_BUILT 1
#else
#define AMQP_BUILT 0
#endif

#ifdef HAVE_MHD
/* --hash-password: a line from stdin (not echoed on a terminal) to a
 * crypt(3) SHA-512 hash on stdout, for [http] console_users. */
static int hash_password(void)
{
	struct termios old, quiet;
	char pw[1024], hash[256];
	int tty = isatty(STDIN_FILENO), rc;
	size_t n;

	if (tty) {
		fprintf(stderr, "password: ");
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	if (!fgets(pw, sizeof(pw), stdin))
		pw[0] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	n = strcspn(pw, "\r\n");
	pw[n] = '\0';
	if (!n) {
		fprintf(stderr, "m2worker: no password on stdin\n");
		return 1;
	}
	rc = m2w_console_hash(pw, hash, sizeof(hash));
	memset(pw, 0, sizeof(pw));
	if (rc) {
		fprintf(stderr, "m2worker: crypt(3) failed\n");
		return 1;
	}
	printf("%s\n", hash);
	return 0;
}
#else
static int hash_password(void)
{
	fprintf(stderr, "m2worker: built without HTTP (libmicrohttpd): "
		"there is no console to log in to\n");
	return 1;
}
#endif

static void version(void)
{
	printf("m2worker %s\n", PACKAGE_VERSION);
	printf("features: http-push=%s amqp=%s sd-notify=%s\n",
	       HTTP_BUILT ? "yes" : "no", AMQP_BUILT ? "yes" : "no",
	       m2w_notify_built() ? "yes" : "no");
}

/* [http] enabled = yes in a build without libmicrohttpd: said, and refused
 * (a producer pushing to a port nobody listens on loses nothing but would
 * retry forever; better the operator learns it at the first start). */
static int http_missing(const struct m2w_config *cfg)
{
	return cfg->http && !HTTP_BUILT;
}

#define HTTP_MISSING_TEXT "[http] enabled = yes, but this m2worker is " \
	"built without HTTP push (configure found no libmicrohttpd, or " \
	"--without-http): set enabled = no, or rebuild with libmicrohttpd"

static void log_start(const struct m2w_config *cfg)
{
	char store[512], base[512];

	m2w_log(M2W_LOG_INFO, "start", "version=%s store=%s magento=%s "
		"threads=%u http=%s sd_notify=%s", PACKAGE_VERSION,
		m2w_log_quote(store, sizeof(store), cfg->store_path),
		m2w_log_quote(base, sizeof(base), cfg->magento.base_url),
		cfg->threads,
		!HTTP_BUILT ? "not-built" : cfg->http ? "on" : "off",
		m2w_notify_built() ? "built" : "not-built");
	if (!HTTP_BUILT)
		m2w_log(M2W_LOG_INFO, "start", "HTTP push is OFF: built "
			"without libmicrohttpd");
	if (cfg->nosync)
		m2w_log(M2W_LOG_WARN, "start", "nosync=yes: commits are not "
			"fsync'd; a power loss can lose the last accepted tasks");
	if (cfg->magento.insecure)
		m2w_log(M2W_LOG_WARN, "start", "insecure=yes: Magento's TLS "
			"certificate is NOT verified; for staging only");
}

/* One of `sigs`, or -1 when ms passed first (or on EINTR). */
static int wait_signal(const sigset_t *sigs, int64_t ms)
{
	struct timespec ts;

	if (ms < 0)
		ms = 0;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	return sigtimedwait(sigs, NULL, &ts);
}

/* Expired leases back to ready, said in the log under `event`. A failure
 * is said but not fatal: the keeper retries every reap_interval, and qctl
 * can inspect the store. */
static void reap_expired(struct m2w_queue *q, const char *event,
			 const char *why)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	size_t reaped = 0;

	if (m2w_queue_reap(q, &reaped, errbuf) != M2W_OK)
		m2w_log(M2W_LOG_ERROR, event, "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
	else if (reaped)
		m2w_log(M2W_LOG_WARN, event, "tasks=%zu (%s)", reaped, why);
}

/* Every lease back to ready (or dead when its attempts are used up), at
 * once rather than when the lease would run out. */
static void recover(struct m2w_queue *q)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	size_t n = 0;

	if (m2w_queue_release_stale(q, &n, errbuf) != M2W_OK)
		m2w_log(M2W_LOG_ERROR, "recovery", "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
	else if (n)
		m2w_log(M2W_LOG_WARN, "recovery", "tasks=%zu (leased by a "
			"stopped or crashed daemon; they run again now)", n);
}

/* WATCHDOG=1, after a round trip through the store's commit thread (a
 * reap, as the keeper does): the call returning is the proof of life,
 * whatever it returned (a full store is no reason to be restarted). */
static void watchdog_ping(struct m2w_queue *q)
{
	reap_expired(q, "lease.reaped", "their worker died or hung; they run "
		     "again");
	m2w_notify("WATCHDOG=1");
}

/* READY=1 (or what `state` says) with a STATUS= line for systemctl. */
static void notify_ready(const struct m2w_config *cfg, const char *state)
{
	char http[300];

	if (cfg->http && HTTP_BUILT)
		snprintf(http, sizeof(http), "HTTP on %s:%u", cfg->http_listen,
			 cfg->http_port);
	else
		snprintf(http, sizeof(http), "HTTP push %s",
			 HTTP_BUILT ? "off" : "not built");
	m2w_notifyf("%s\nSTATUS=ready: %u worker%s, %s, %zu watched "
		    "director%s", state, cfg->threads ? cfg->threads : 1,
		    cfg->threads == 1 ? "" : "s", http, cfg->nwatches,
		    cfg->nwatches == 1 ? "y" : "ies");
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
	struct m2w_amqp *amqp = NULL;
	struct m2w_events *events = NULL;
	struct m2w_retention *retention = NULL;
	char errbuf[M2W_ERRBUF_SIZE] = "";
	sigset_t sigs;
	int sig, rc, ready = 0;
	int64_t wd_ms, next_ping = 0;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread */
	signal(SIGPIPE, SIG_IGN);

	if (http_missing(cfg)) { /* before anything is opened */
		snprintf(errbuf, sizeof(errbuf), "%s", HTTP_MISSING_TEXT);
		m2w_log(M2W_LOG_ERROR, "start", "error=\"%s\"",
			HTTP_MISSING_TEXT);
		rc = M2W_EINVAL;
		goto out;
	}
	memset(&qo, 0, sizeof(qo));
	qo.path = cfg->store_path;
	qo.map_initial = cfg->map_initial;
	qo.map_max = cfg->map_max;
	qo.create = 1;
	qo.nosync = cfg->nosync;
	qo.outbox = cfg->events.enabled ? M2W_OUTBOX_ON : M2W_OUTBOX_OFF;
	qo.exclusive = 1;
	if ((rc = m2_global_init(errbuf)) ||
	    (rc = m2w_queue_open(&qo, &q, errbuf)) ||
	    (rc = m2_client_new(&cfg->magento, &client, errbuf))) {
		m2w_log(M2W_LOG_ERROR, "start", "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		goto out;
	}
	/* a crashed daemon's tasks, before READY=1: the store is ours alone,
	 * so every lease in it is a dead process's, expired or not; counted
	 * against each type's own max_attempts, so the policies first */
	if ((rc = m2w_pool_set_policies(q, cfg, errbuf))) {
		m2w_log(M2W_LOG_ERROR, "start", "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		goto out;
	}
	recover(q);
	/* partitions shared with other daemons: what this one took before
	 * goes back to the broker, before a worker can run it */
	m2w_amqp_handback(q, cfg);
	/* the result publisher: the outbox from earlier runs goes out too */
	if ((rc = m2w_retention_start(q, cfg, &retention, errbuf)) ||
	    (rc = m2w_events_start(q, cfg, &events, errbuf))) {
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
	/* the AMQP consumers before HTTP, which reports their state */
	if ((rc = m2w_amqp_start(q, cfg, &amqp, errbuf))) {
		m2w_log(M2W_LOG_ERROR, "start", "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		m2w_pool_stop(pool, cfg->grace_ms);
		goto out;
	}
	if (cfg->nwatches &&
	    (rc = m2w_watch_start(q, cfg, &watcher, errbuf))) {
		m2w_log(M2W_LOG_ERROR, "start", "error=%s",
			m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
		m2w_amqp_free(amqp);
		amqp = NULL;
		m2w_pool_stop(pool, cfg->grace_ms);
		goto out;
	}
#ifdef HAVE_MHD
	if (cfg->http) {
		struct m2w_http_opts ho = { q, cfg, pool, amqp, events,
					     watcher };
		char addr[256];

		if ((rc = m2w_http_start(&ho, &http, errbuf))) {
			m2w_log(M2W_LOG_ERROR, "start", "error=%s",
				m2w_log_quote(errbuf, sizeof(errbuf), errbuf));
			m2w_watch_halt(watcher);
			m2w_amqp_free(amqp);
			amqp = NULL;
			m2w_pool_stop(pool, cfg->grace_ms);
			goto out;
		}
		m2w_log(M2W_LOG_INFO, "http.listen", "addr=%s port=%u",
			m2w_log_quote(addr, sizeof(addr), cfg->http_listen),
			cfg->http_port);
	}
#endif
	ready = 1;
	m2w_log(M2W_LOG_INFO, "ready", "workers=%u watches=%zu amqp=%zu "
		"events=%s http=%s", cfg->threads, cfg->nwatches, cfg->namqps,
		cfg->events.enabled ? "on" : "off", cfg->http ? "on" : "off");
	notify_ready(cfg, "READY=1");
	if ((wd_ms = m2w_notify_watchdog_ms()) > 0) {
		m2w_log(M2W_LOG_INFO, "watchdog", "interval_ms=%lld "
			"ping_ms=%lld", (long long)wd_ms,
			(long long)(wd_ms / 2 > 0 ? wd_ms / 2 : 1));
		next_ping = m2w_clock_mono_ms();
	}
	for (;;) {
		if (wd_ms > 0) {
			/* a deadline, so a storm of signals cannot starve it */
			int64_t now = m2w_clock_mono_ms();

			if (now >= next_ping) {
				watchdog_ping(q);
				next_ping = now + (wd_ms / 2 > 0 ? wd_ms / 2 : 1);
			}
			if ((sig = wait_signal(&sigs, next_ping -
					       m2w_clock_mono_ms())) < 0)
				continue;
		} else if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			/* MONOTONIC_USEC: systemd >= 253 wants it with RELOADING */
			m2w_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu",
				    (unsigned long long)m2w_clock_mono_us());
			m2w_log_reopen();
			m2_client_reset_auth(client);
			m2w_log(M2W_LOG_INFO, "reload", "log reopened, "
				"admin login state cleared");
			notify_ready(cfg, "READY=1");
			continue;
		}
		m2w_notifyf("STOPPING=1\nSTATUS=draining: SIG%s, up to %lld ms "
			    "for calls in flight",
			    sig == SIGTERM ? "TERM" : "INT",
			    (long long)cfg->grace_ms);
		m2w_log(M2W_LOG_INFO, "stop", "signal=%s grace_ms=%lld",
			sig == SIGTERM ? "TERM" : "INT",
			(long long)cfg->grace_ms);
		break;
	}
#ifdef HAVE_MHD
	m2w_http_draining(http);
#endif
	m2w_amqp_stop(amqp);  /* no more intake: the broker keeps the rest */
	m2w_watch_halt(watcher);
	m2w_pool_stop(pool, cfg->grace_ms);
	m2w_events_stop(events); /* what is left waits in the outbox */
out:
	if (!ready)
		m2w_notifyf("STATUS=start failed: %s", errbuf[0] ? errbuf :
			    m2w_strerror(rc));
#ifdef HAVE_MHD
	m2w_http_stop(http); /* before the pool and the store go */
#endif
	m2w_watch_stop(watcher); /* after HTTP: the console reads it */
	m2w_amqp_free(amqp); /* after HTTP, which reads their state */
	m2w_events_free(events);
	m2w_retention_stop(retention);
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
		{ "hash-password", no_argument, NULL, 'P' },
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
			version();
			return 0;
		case 'P':
			return hash_password();
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
	if (check && http_missing(&cfg)) {
		/* the start would refuse it (run()): say it here already */
		fprintf(stderr, "m2worker: %s: %s\n", path, HTTP_MISSING_TEXT);
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
