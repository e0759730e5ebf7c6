/*
 * config.h - the daemon's configuration file (INI), parsed into one struct.
 *
 * Format: `[section]` headers, `key = value` lines, `#` or `;` comments on
 * their own line, blank lines. Sections with a name use git's form:
 * `[watch "3pl"]` (the ingest issue's CSV directories). Unknown sections and
 * keys are errors, and so is a value that does not parse: every mistake is
 * reported as "FILE:LINE: ..." (all of them, not just the first) so that
 * `m2worker --check-config` can list them at once.
 *
 * Value forms (parse.h): durations "500ms" "30s" "5m" "2h" "1d" (a bare
 * number is seconds); sizes "512KiB" "64MiB" "4GiB" (bare: bytes); booleans
 * yes/no/true/false/on/off/1/0; secrets "env:NAME", "file:/path" or the
 * value itself (resolved at load with m2_secret_resolve; never logged).
 *
 * Ownership: m2w_config_load fills a struct the caller owns; every string
 * in it is malloc'd and freed by m2w_config_release.
 */
#ifndef M2WORKER_CONFIG_H
#define M2WORKER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "m2worker/jobs.h"
#include "m2worker/log.h"
#include "m2worker/magento.h"
#include "m2worker/parse.h"  /* the value forms, m2w_parse_* */
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M2W_CONFIG_PATH "/etc/m2worker/m2worker.conf"
#define M2W_MAX_TYPES 8

/* One job type of the table (jobs.h): its section [NAME]. */
struct m2w_type_cfg {
	char name[M2W_TYPE_MAX + 1];
	const struct m2w_job *job;
	struct m2w_policy policy;  /* max_attempts, backoff_base, backoff_cap,
				    * jitter_percent */
	unsigned concurrency;      /* workers on this type at once; 0 = all */
	unsigned batch;            /* tasks per Magento call (stock, price) */
	int64_t lease_ms;          /* lease; extended while a call runs */
	void *settings;            /* the job's own keys (job->settings), a
				    * struct of job->settings_size bytes */
};

/* [watch "NAME"]: a directory of CSV files for one job type. */
struct m2w_watch_cfg {
	char *name;                /* the section's name */
	char *path;                /* path = (required) the incoming directory */
	char type[M2W_TYPE_MAX + 1]; /* type = (required) a type read from CSV */
	char *processed;           /* processed = PATH/../processed */
	char *failed;              /* failed = PATH/../failed */
	char *pattern;             /* pattern = *.csv (a glob; ^...$ is an
				    * extended regex, as tracking-updater's
				    * file_pattern) */
	char delimiter;            /* delimiter = auto | , | ; | tab (0 = auto) */
	int poll;                  /* mode = inotify | poll (network file
				    * systems) */
	int64_t poll_interval_ms;  /* poll_interval = 2s */
	int64_t settle_ms;         /* settle = 2s: a file unchanged this long
				    * is complete */
	char *columns;             /* columns = (extra aliases) e.g.
				    * "order=Order No, track=AWB" */
	char *key_field;           /* key_field = (a column whose value is the
				    * idempotency key; default: per type) */
};

/* A RabbitMQ broker: the keys [amqp "NAME"] and [events] share. */
struct m2w_broker {
	char *url;                 /* url = (required) amqp://host[:port][/vhost]
				    * or amqps://...; a secret (env:, file:)
				    * when it holds a password */
	char *user;                /* user = (the URL's, else guest); secret */
	char *password;            /* password = (the URL's); secret */
	char *vhost;               /* vhost = (the URL's, else /) */
	char *ca_file;             /* ca_file = (system CAs), amqps */
	int verify;                /* verify = yes: the broker's certificate
				    * and host name, amqps */
};

/* [amqp "NAME"]: a RabbitMQ queue whose messages become tasks (the
 * daemon's AMQP source, src/daemon/amqp.c). */
struct m2w_amqp_cfg {
	char *name;                /* the section's name */
	struct m2w_broker broker;
	char *queue;               /* queue = (required) */
	int declare;               /* declare = yes: declared (durable) with
				    * `arguments`; no: only checked */
	char *arguments;           /* arguments = "x-queue-type=quorum,
				    * x-dead-letter-exchange=dlx" */
	char *exchange;            /* exchange = (none): bind the queue to it */
	char *routing_keys;        /* routing_keys = the queue's name: "a, b" */
	unsigned prefetch;         /* prefetch = 200 (unacked deliveries) */
	unsigned window;           /* window = 5000: consume only while the
				    * store's backlog of `type` (of every
				    * type without one) is below; 0 = none */
	char type[M2W_TYPE_MAX + 1]; /* type = (none: each item names its
				    * type, as HTTP push envelopes) */
	char *key_field;           /* key_field = (none): a payload field as
				    * the idempotency key; else message_id */
	int64_t standby_ms;        /* standby = 0s: consume only this long after
				    * start (single active consumer: the
				    * daemons whose own partition it is come
				    * first) */
	int handback;              /* handback = no: at start, the tasks this
				    * section brought in and not finished go
				    * back to its queue (partitions shared by
				    * daemons, src/daemon/amqp.c) */
};

/* [events]: every task that ends is published to a RabbitMQ exchange
 * (src/daemon/events.c), from the store's outbox. */
struct m2w_events_cfg {
	int enabled;               /* the section is present */
	struct m2w_broker broker;
	char *exchange;            /* exchange = m2worker.events */
	int declare;               /* declare = yes: a durable topic exchange */
	char *routing_key;         /* routing_key = {type}.{state} */
};

struct m2w_config {
	char *path;                /* the file it came from */

	/* [store] */
	char *store_path;          /* path = /var/lib/m2worker */
	size_t map_initial;        /* map_initial = 64MiB */
	size_t map_max;            /* map_max = 4GiB */
	int nosync;                /* nosync = no (loud in the log) */
	/* retention: ended tasks older than this are purged in the
	 * background (0 = kept forever) */
	int64_t keep_done_ms;      /* keep_done = 7d */
	int64_t keep_superseded_ms;/* keep_superseded = 1d */
	int64_t keep_dead_ms;      /* keep_dead = 30d */
	int64_t purge_interval_ms; /* purge_interval = 1m: between rounds */

	/* [magento]: base_url, store_code, auth = token|admin|oauth|none,
	 * token, username, password, admin_token_ttl, consumer_key,
	 * consumer_secret, access_token, access_token_secret, timeout,
	 * connect_timeout, ca_file, proxy, insecure, rate_limit (requests
	 * per second toward Magento, all workers; 0 = none). The strings of
	 * `magento` point into this struct. */
	struct m2_client_opts magento;
	double rate_limit;

	/* [magento] calls in flight at once (src/daemon/limiter.h) */
	char *concurrency;         /* concurrency = (one per thread): auto,
				    * or a number of calls */
	unsigned concurrency_min;  /* concurrency_min = 2 (auto) */
	unsigned concurrency_max;  /* concurrency_max = (threads) (auto) */

	/* [workers] */
	unsigned threads;          /* threads = 8 */
	int64_t grace_ms;          /* shutdown_grace = 20s */
	int64_t reap_interval_ms;  /* reap_interval = 1s */

	/* [breaker] */
	unsigned breaker_failures; /* failures = 5 (consecutive transient) */
	int64_t breaker_cooldown_ms; /* cooldown = 30s */

	/* [log] */
	int log_level;             /* level = error|warn|info|debug (info) */
	char *log_file;            /* file = (stderr) */

	/* job types, in the order of the job table (m2w_job_at) */
	struct m2w_type_cfg types[M2W_MAX_TYPES];
	size_t ntypes;

	/* [http]: HTTP push, /healthz and /metrics (libmicrohttpd) */
	int http;                  /* enabled = no */
	char *http_listen;         /* listen = 127.0.0.1 */
	unsigned http_port;        /* port = 8480 */
	char *http_tokens;         /* tokens = (secret: one token, or several
				    * separated by commas; required when
				    * enabled) */
	size_t http_body_max;      /* body_max = 16MiB */
	unsigned http_connections; /* connections = 64 */
	int64_t http_timeout_ms;   /* timeout = 10s (a slow client is cut) */
	int http_console;          /* console = no: the web console, /ui/ */
	char *http_console_users;  /* console_users = (secret: NAME:ROLE:HASH,
				    * ... ROLE viewer|operator, HASH crypt(3)
				    * "$6$..."; required with console) */
	int64_t http_console_idle_ms; /* console_idle = 30m: a session unused
				       * this long ends */

	struct m2w_watch_cfg *watches;
	size_t nwatches;

	struct m2w_amqp_cfg *amqps;
	size_t namqps;

	struct m2w_events_cfg events;
};

/* The defaults above (no file read). */
void m2w_config_defaults(struct m2w_config *cfg);

/*
 * Reads `path` over what cfg holds: call m2w_config_defaults first (a
 * second file may then be read over the first). Returns the number of
 * mistakes (0 = ok);
 * `report` (may be NULL) receives them, one "FILE:LINE: what" per line, cut
 * to `len` bytes. A file that cannot be read is one mistake.
 */
int m2w_config_load(const char *path, struct m2w_config *cfg, char *report,
		    size_t len);

void m2w_config_release(struct m2w_config *cfg);

/* The type's settings, or NULL for a type the config does not know. */
const struct m2w_type_cfg *m2w_config_type(const struct m2w_config *cfg,
					   const char *name);

/*
 * A job's own setting `key` of section [type] as text: a string (NULL when
 * unset), "yes"/"no", or the enum's choice. NULL for an unknown type or
 * key, and for a map (m2w_config_map).
 */
const char *m2w_config_setting(const struct m2w_config *cfg,
			       const char *type, const char *key);
/* The map section `section` ([carriers]) of a job's settings, or NULL. */
const struct m2w_map *m2w_config_map(const struct m2w_config *cfg,
				     const char *section);

#ifdef __cplusplus
}
#endif
#endif
