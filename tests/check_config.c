/*
 * check_config.c - the configuration file (config.h).
 *
 * Each test writes its file(s) into the run's temporary directory and loads
 * them. Mistakes are asserted by their "FILE:LINE: " prefix and a piece of
 * the message; a report with several mistakes must list each of them.
 */
#define _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "m2worker/config.h"
#include "testutil.h"

#define REPORT_MAX 8192

static char rep[REPORT_MAX];
static char cpath[PATH_MAX];

/* "<run directory>/<name>" into out. */
static void path_in(char *out, size_t size, const char *name)
{
	int n = snprintf(out, size, "%s/%s", tu_base, name);

	ck_assert_msg(n > 0 && (size_t)n < size, "path too long");
}

/* Writes `text` to a fresh file under the run's directory; its path in
 * cpath. */
static const char *write_conf(const char *text, size_t len)
{
	static unsigned seq;
	char name[32];
	FILE *f;

	snprintf(name, sizeof(name), "c%u.conf", seq++);
	path_in(cpath, sizeof(cpath), name);
	f = fopen(cpath, "w");
	ck_assert_msg(f != NULL, "fopen %s", cpath);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return cpath;
}

static int load_text(const char *text, struct m2w_config *cfg)
{
	rep[0] = 'X';
	m2w_config_defaults(cfg);
	return m2w_config_load(write_conf(text, strlen(text)), cfg, rep,
			       sizeof(rep));
}

/* The report has a line "cpath:LINE: ...what..." (LINE 0: "cpath: "). */
static int has_at(int line, const char *what)
{
	char pre[PATH_MAX + 32];
	const char *l = rep, *nl;
	size_t n;

	if (line > 0)
		snprintf(pre, sizeof(pre), "%s:%d: ", cpath, line);
	else
		snprintf(pre, sizeof(pre), "%s: ", cpath);
	n = strlen(pre);
	for (; *l; l = nl + 1) {
		char one[1024];
		size_t len;

		nl = strchr(l, '\n');
		if (!nl)
			return 0;
		len = (size_t)(nl - l) < sizeof(one) - 1 ? (size_t)(nl - l) :
			sizeof(one) - 1;
		memcpy(one, l, len);
		one[len] = '\0';
		if (strncmp(one, pre, n) == 0 && strstr(one + n, what))
			return 1;
	}
	return 0;
}

#define CK_AT(line, what)                                                     \
	ck_assert_msg(has_at(line, what), "expected %d: \"%s\" in:\n%s",      \
		      (int)(line), what, rep)

/* One mistake, at `line`, containing `what`. */
#define CK_ONE(text, line, what)                                              \
	do {                                                                  \
		struct m2w_config c1;                                         \
		int n1 = load_text(text, &c1);                                \
		ck_assert_msg(n1 == 1, "%d mistakes, expected 1:\n%s", n1,    \
			      rep);                                           \
		CK_AT(line, what);                                            \
		m2w_config_release(&c1);                                      \
	} while (0)

#define OK_HEAD "[magento]\nbase_url = https://shop.example.com\n"

/* ---------------------------------------------------------------- helpers */

START_TEST(test_parse_duration)
{
	ck_assert_int_eq(m2w_parse_duration_ms("500ms"), 500);
	ck_assert_int_eq(m2w_parse_duration_ms("30s"), 30000);
	ck_assert_int_eq(m2w_parse_duration_ms("5m"), 300000);
	ck_assert_int_eq(m2w_parse_duration_ms("2h"), 7200000);
	ck_assert_int_eq(m2w_parse_duration_ms("1d"), 86400000);
	ck_assert_int_eq(m2w_parse_duration_ms("45"), 45000);
	ck_assert_int_eq(m2w_parse_duration_ms("0"), 0);
	ck_assert_int_eq(m2w_parse_duration_ms("1m30s"), 90000);
	ck_assert_int_eq(m2w_parse_duration_ms("1h1m1s1ms"), 3661001);
	ck_assert_int_eq(m2w_parse_duration_ms(" 10s "), 10000);
	ck_assert_int_eq(m2w_parse_duration_ms("99999999999999999999s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("9223372036854775807ms"),
			 INT64_MAX);
	ck_assert_int_eq(m2w_parse_duration_ms("9223372036854775807s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("106751991167d"),
			 INT64_C(106751991167) * 86400000);
	ck_assert_int_eq(m2w_parse_duration_ms("106751991168d"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("5x"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms(""), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("   "), -1);
	ck_assert_int_eq(m2w_parse_duration_ms(NULL), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("-5s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("+5s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("1.5s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("1m30"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("5 s"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("5S"), -1);
	ck_assert_int_eq(m2w_parse_duration_ms("5sec"), -1);
}
END_TEST

START_TEST(test_parse_size)
{
	ck_assert_uint_eq(m2w_parse_size("4096"), 4096);
	ck_assert_uint_eq(m2w_parse_size("512KiB"), 512 * 1024);
	ck_assert_uint_eq(m2w_parse_size("64MiB"), (size_t)64 << 20);
	ck_assert_uint_eq(m2w_parse_size("64M"), (size_t)64 << 20);
	ck_assert_uint_eq(m2w_parse_size("64mb"), (size_t)64 << 20);
	ck_assert_uint_eq(m2w_parse_size("1K"), 1024);
	ck_assert_uint_eq(m2w_parse_size("10 B"), 10);
	if (sizeof(size_t) >= 8) {
		ck_assert_uint_eq(m2w_parse_size("4GiB"), (size_t)4 << 30);
		ck_assert_uint_eq(m2w_parse_size("4G"), (size_t)4 << 30);
		ck_assert_uint_eq(m2w_parse_size("1TiB"), (size_t)1 << 40);
	}
	ck_assert_uint_eq(m2w_parse_size("99999999999999999999"), 0);
	ck_assert_uint_eq(m2w_parse_size("16777216TiB"), 0);
	ck_assert_uint_eq(m2w_parse_size("0"), 0);
	ck_assert_uint_eq(m2w_parse_size(""), 0);
	ck_assert_uint_eq(m2w_parse_size(NULL), 0);
	ck_assert_uint_eq(m2w_parse_size("MiB"), 0);
	ck_assert_uint_eq(m2w_parse_size("5x"), 0);
	ck_assert_uint_eq(m2w_parse_size("5PiB"), 0);
	ck_assert_uint_eq(m2w_parse_size("5MiBs"), 0);
	ck_assert_uint_eq(m2w_parse_size("-5"), 0);
	ck_assert_uint_eq(m2w_parse_size("1.5G"), 0);
}
END_TEST

START_TEST(test_parse_bool)
{
	const char *yes[] = { "yes", "YES", "true", "True", "on", "ON", "1" };
	const char *no[] = { "no", "No", "false", "FALSE", "off", "Off", "0" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		ck_assert_int_eq(m2w_parse_bool(yes[i]), 1);
		ck_assert_int_eq(m2w_parse_bool(no[i]), 0);
	}
	ck_assert_int_eq(m2w_parse_bool(""), -1);
	ck_assert_int_eq(m2w_parse_bool("y"), -1);
	ck_assert_int_eq(m2w_parse_bool("2"), -1);
	ck_assert_int_eq(m2w_parse_bool("yess"), -1);
	ck_assert_int_eq(m2w_parse_bool(NULL), -1);
}
END_TEST

/* --------------------------------------------------------------- defaults */

static void check_defaults(const struct m2w_config *c, int all)
{
	static const char *const names[] = { "tracking", "stock", "price",
					     "rest" };
	static const unsigned batch[] = { 50, 50, 50, 1 };
	struct m2w_policy pol;
	size_t i;

	m2w_policy_default(&pol);
	ck_assert_str_eq(c->store_path, "/var/lib/m2worker");
	ck_assert_uint_eq(c->map_initial, (size_t)64 << 20);
	if (sizeof(size_t) >= 8)
		ck_assert_uint_eq(c->map_max, (size_t)4 << 30);
	ck_assert_int_eq(c->nosync, 0);
	if (all)
		ck_assert_ptr_null(c->magento.base_url);
	ck_assert_str_eq(c->magento.store_code, "default");
	ck_assert_int_eq(c->magento.auth, M2_AUTH_NONE);
	ck_assert_ptr_null(c->magento.token);
	ck_assert_ptr_null(c->magento.username);
	ck_assert_ptr_null(c->magento.password);
	ck_assert_int_eq(c->magento.admin_token_ttl_s, 3600);
	ck_assert_int_eq(c->magento.timeout_ms, 30000);
	ck_assert_int_eq(c->magento.connect_timeout_ms, 5000);
	ck_assert_ptr_null(c->magento.ca_file);
	ck_assert_ptr_null(c->magento.proxy);
	ck_assert_int_eq(c->magento.insecure, 0);
	ck_assert_ptr_null(c->magento.user_agent);
	ck_assert(c->rate_limit == 0);
	ck_assert_uint_eq(c->threads, 8);
	ck_assert_int_eq(c->grace_ms, 20000);
	ck_assert_int_eq(c->reap_interval_ms, 1000);
	ck_assert_uint_eq(c->breaker_failures, 5);
	ck_assert_int_eq(c->breaker_cooldown_ms, 30000);
	ck_assert_int_eq(c->log_level, M2W_LOG_INFO);
	ck_assert_ptr_null(c->log_file);
	ck_assert_str_eq(m2w_config_setting(c, "tracking", "notify"), "yes");
	ck_assert_ptr_null(m2w_config_setting(c, "tracking", "comment"));
	ck_assert_ptr_null(m2w_config_setting(c, "tracking", "source_code"));
	ck_assert_str_eq(m2w_config_setting(c, "stock", "mode"), "msi");
	ck_assert_str_eq(m2w_config_setting(c, "stock", "source_code"), "default");
	ck_assert_uint_eq(c->ntypes, 4);
	for (i = 0; i < 4; i++) {
		const struct m2w_type_cfg *t = &c->types[i];

		ck_assert_str_eq(t->name, names[i]);
		ck_assert_ptr_eq(m2w_config_type(c, names[i]), t);
		ck_assert_uint_eq(t->policy.max_attempts, pol.max_attempts);
		ck_assert_int_eq(t->policy.backoff_base_ms,
				 pol.backoff_base_ms);
		ck_assert_int_eq(t->policy.backoff_cap_ms, pol.backoff_cap_ms);
		ck_assert_uint_eq(t->policy.jitter_pct, pol.jitter_pct);
		ck_assert_uint_eq(t->concurrency, 0);
		ck_assert_uint_eq(t->batch, batch[i]);
		ck_assert_int_eq(t->lease_ms, 60000);
	}
	ck_assert_ptr_null(m2w_config_type(c, "ingest"));
	ck_assert_ptr_null(m2w_config_type(c, NULL));
}

START_TEST(test_defaults)
{
	struct m2w_config c;

	m2w_config_defaults(&c);
	check_defaults(&c, 1);
	ck_assert_uint_eq(m2w_config_map(&c, "carriers")->n, 0);
	ck_assert_ptr_null(c.path);
	m2w_config_release(&c);
}
END_TEST

START_TEST(test_minimal)
{
	struct m2w_config c;

	ck_assert_int_eq(load_text(OK_HEAD, &c), 0);
	ck_assert_str_eq(rep, "");
	ck_assert_str_eq(c.path, cpath);
	ck_assert_str_eq(c.magento.base_url, "https://shop.example.com");
	check_defaults(&c, 0);
	ck_assert_uint_eq(m2w_config_map(&c, "carriers")->n, 0);
	m2w_config_release(&c);
}
END_TEST

/* ------------------------------------------------------------- full file */

START_TEST(test_full)
{
	char secret_file[PATH_MAX], text[PATH_MAX + 8192];
	struct m2w_config c;
	const struct m2w_type_cfg *t;
	FILE *f;
	int n;

	path_in(secret_file, sizeof(secret_file), "full-secret");
	f = fopen(secret_file, "w");
	ck_assert_ptr_nonnull(f);
	fputs("pa#ss word\nsecond line\n", f);
	fclose(f);
	setenv("M2W_TEST_TOKEN", "tok-from-env", 1);
	setenv("M2W_TEST_CS", "cs-from-env", 1);

	n = snprintf(text, sizeof(text),
		 "# every key\n"
		 "; another comment\n"
		 "\n"
		 "[store]\n"
		 "path = /srv/m2w store\n"
		 "map_initial = 1MiB\n"
		 "map_max=2GiB\n"
		 "nosync = YES\n"
		 "[magento]\n"
		 "  base_url = https://shop.example.com/rest/V1  \n"
		 "store_code = de_store\n"
		 "auth = oauth\n"
		 "token = env:M2W_TEST_TOKEN\n"
		 "username = admin\n"
		 "password = file:%s\n"
		 "admin_token_ttl = 2h\n"
		 "consumer_key = ck-literal\n"
		 "consumer_secret = env:M2W_TEST_CS\n"
		 "access_token = \"at \\\"quoted\\\" \\\\x\"\n"
		 "access_token_secret = ats#1\n"
		 "timeout = 1m30s\n"
		 "connect_timeout = 750ms\n"
		 "ca_file = /etc/ssl/shop.pem\n"
		 "proxy = http://proxy:3128\n"
		 "insecure = on\n"
		 "rate_limit = 2.5\n"
		 "[workers]\n"
		 "threads = 32\n"
		 "shutdown_grace = 1m\n"
		 "reap_interval = 500ms\n"
		 "[breaker]\n"
		 "failures = 3\n"
		 "cooldown = 2m\n"
		 "[log]\n"
		 "level = debug\n"
		 "file = /var/log/m2worker.log\n"
		 "[tracking]\n"
		 "max_attempts = 4\n"
		 "backoff_base = 1s\n"
		 "backoff_cap = 10m\n"
		 "jitter_percent = 0\n"
		 "concurrency = 2\n"
		 "lease = 2m\n"
		 "notify = off\n"
		 "comment = Shipped by the 3PL # see portal\n"
		 "source_code = warehouse_1\n"
		 "[stock]\n"
		 "max_attempts = 65535\n"
		 "backoff_base = 5s\n"
		 "backoff_cap = 5s\n"
		 "jitter_percent = 100\n"
		 "concurrency = 1\n"
		 "lease = 1s\n"
		 "batch = 500\n"
		 "mode = legacy\n"
		 "source_code = eu\n"
		 "[price]\n"
		 "max_attempts = 1\n"
		 "backoff_base = 2s\n"
		 "backoff_cap = 1d\n"
		 "jitter_percent = 50\n"
		 "concurrency = 0\n"
		 "lease = 30s\n"
		 "batch = 1\n"
		 "[rest]\n"
		 "max_attempts = 7\n"
		 "backoff_base = 3\n"
		 "backoff_cap = 1h\n"
		 "jitter_percent = 10\n"
		 "concurrency = 4\n"
		 "lease = 5m\n"
		 "[carriers]\n"
		 "UPS Ground = ups\n"
		 "  Deutsche Post DHL=dhl\n"
		 "Hermes = hermes_de\n",
		 secret_file);
	ck_assert(n > 0 && (size_t)n < sizeof(text));
	n = load_text(text, &c);
	ck_assert_msg(n == 0, "%d mistakes:\n%s", n, rep);
	ck_assert_str_eq(rep, "");

	ck_assert_str_eq(c.store_path, "/srv/m2w store");
	ck_assert_uint_eq(c.map_initial, (size_t)1 << 20);
	if (sizeof(size_t) >= 8)
		ck_assert_uint_eq(c.map_max, (size_t)2 << 30);
	ck_assert_int_eq(c.nosync, 1);

	ck_assert_str_eq(c.magento.base_url,
			 "https://shop.example.com/rest/V1");
	ck_assert_str_eq(c.magento.store_code, "de_store");
	ck_assert_int_eq(c.magento.auth, M2_AUTH_OAUTH);
	ck_assert_str_eq(c.magento.token, "tok-from-env");
	ck_assert_str_eq(c.magento.username, "admin");
	ck_assert_str_eq(c.magento.password, "pa#ss word");
	ck_assert_int_eq(c.magento.admin_token_ttl_s, 7200);
	ck_assert_str_eq(c.magento.consumer_key, "ck-literal");
	ck_assert_str_eq(c.magento.consumer_secret, "cs-from-env");
	ck_assert_str_eq(c.magento.access_token, "at \"quoted\" \\x");
	ck_assert_str_eq(c.magento.access_token_secret, "ats#1");
	ck_assert_int_eq(c.magento.timeout_ms, 90000);
	ck_assert_int_eq(c.magento.connect_timeout_ms, 750);
	ck_assert_str_eq(c.magento.ca_file, "/etc/ssl/shop.pem");
	ck_assert_str_eq(c.magento.proxy, "http://proxy:3128");
	ck_assert_int_eq(c.magento.insecure, 1);
	ck_assert(c.rate_limit == 2.5);

	ck_assert_uint_eq(c.threads, 32);
	ck_assert_int_eq(c.grace_ms, 60000);
	ck_assert_int_eq(c.reap_interval_ms, 500);
	ck_assert_uint_eq(c.breaker_failures, 3);
	ck_assert_int_eq(c.breaker_cooldown_ms, 120000);
	ck_assert_int_eq(c.log_level, M2W_LOG_DEBUG);
	ck_assert_str_eq(c.log_file, "/var/log/m2worker.log");

	ck_assert_str_eq(m2w_config_setting(&c, "tracking", "notify"), "no");
	ck_assert_str_eq(m2w_config_setting(&c, "tracking", "comment"), "Shipped by the 3PL # see portal");
	ck_assert_str_eq(m2w_config_setting(&c, "tracking", "source_code"), "warehouse_1");
	ck_assert_str_eq(m2w_config_setting(&c, "stock", "mode"), "legacy");
	ck_assert_str_eq(m2w_config_setting(&c, "stock", "source_code"), "eu");

	ck_assert_uint_eq(c.ntypes, 4);
	t = m2w_config_type(&c, "tracking");
	ck_assert_ptr_eq(t, &c.types[0]);
	ck_assert_uint_eq(t->policy.max_attempts, 4);
	ck_assert_int_eq(t->policy.backoff_base_ms, 1000);
	ck_assert_int_eq(t->policy.backoff_cap_ms, 600000);
	ck_assert_uint_eq(t->policy.jitter_pct, 0);
	ck_assert_uint_eq(t->concurrency, 2);
	ck_assert_uint_eq(t->batch, 50);
	ck_assert_int_eq(t->lease_ms, 120000);
	t = m2w_config_type(&c, "stock");
	ck_assert_ptr_eq(t, &c.types[1]);
	ck_assert_uint_eq(t->policy.max_attempts, 65535);
	ck_assert_int_eq(t->policy.backoff_base_ms, 5000);
	ck_assert_int_eq(t->policy.backoff_cap_ms, 5000);
	ck_assert_uint_eq(t->policy.jitter_pct, 100);
	ck_assert_uint_eq(t->concurrency, 1);
	ck_assert_uint_eq(t->batch, 500);
	ck_assert_int_eq(t->lease_ms, 1000);
	t = m2w_config_type(&c, "price");
	ck_assert_ptr_eq(t, &c.types[2]);
	ck_assert_uint_eq(t->policy.max_attempts, 1);
	ck_assert_int_eq(t->policy.backoff_base_ms, 2000);
	ck_assert_int_eq(t->policy.backoff_cap_ms, 86400000);
	ck_assert_uint_eq(t->policy.jitter_pct, 50);
	ck_assert_uint_eq(t->concurrency, 0);
	ck_assert_uint_eq(t->batch, 1);
	ck_assert_int_eq(t->lease_ms, 30000);
	t = m2w_config_type(&c, "rest");
	ck_assert_ptr_eq(t, &c.types[3]);
	ck_assert_uint_eq(t->policy.max_attempts, 7);
	ck_assert_int_eq(t->policy.backoff_base_ms, 3000);
	ck_assert_int_eq(t->policy.backoff_cap_ms, 3600000);
	ck_assert_uint_eq(t->policy.jitter_pct, 10);
	ck_assert_uint_eq(t->concurrency, 4);
	ck_assert_uint_eq(t->batch, 1);
	ck_assert_int_eq(t->lease_ms, 300000);

	ck_assert_uint_eq(m2w_config_map(&c, "carriers")->n, 3);
	ck_assert_str_eq(m2w_config_map(&c, "carriers")->v[0].name, "UPS Ground");
	ck_assert_str_eq(m2w_config_map(&c, "carriers")->v[0].value, "ups");
	ck_assert_str_eq(m2w_config_map(&c, "carriers")->v[1].name, "Deutsche Post DHL");
	ck_assert_str_eq(m2w_config_map(&c, "carriers")->v[1].value, "dhl");
	ck_assert_str_eq(m2w_config_map(&c, "carriers")->v[2].name, "Hermes");
	ck_assert_str_eq(m2w_config_map(&c, "carriers")->v[2].value, "hermes_de");

	m2w_config_release(&c);
	unsetenv("M2W_TEST_TOKEN");
	unsetenv("M2W_TEST_CS");
}
END_TEST

START_TEST(test_auth_modes)
{
	struct m2w_config c;

	ck_assert_int_eq(load_text(OK_HEAD "auth = token\ntoken = abc\n", &c),
			 0);
	ck_assert_int_eq(c.magento.auth, M2_AUTH_TOKEN);
	ck_assert_str_eq(c.magento.token, "abc");
	m2w_config_release(&c);

	ck_assert_int_eq(load_text(OK_HEAD "auth = admin\nusername = u\n"
				   "password = p\n", &c), 0);
	ck_assert_int_eq(c.magento.auth, M2_AUTH_ADMIN);
	m2w_config_release(&c);

	ck_assert_int_eq(load_text(OK_HEAD "auth = none\n", &c), 0);
	ck_assert_int_eq(c.magento.auth, M2_AUTH_NONE);
	m2w_config_release(&c);

	/* http:// too, any case of the scheme */
	ck_assert_int_eq(load_text("[magento]\nbase_url = HTTP://10.0.0.1:8080"
				   "\n", &c), 0);
	m2w_config_release(&c);
}
END_TEST

/* ------------------------------------------------------------- mistakes */

START_TEST(test_unknown_key)
{
	CK_ONE(OK_HEAD "\n[workers]\nthread = 4\n", 5,
	       "unknown key \"thread\" in [workers]");
	/* keys are not case-folded */
	CK_ONE(OK_HEAD "Base_URL = https://x\n", 3,
	       "unknown key \"Base_URL\" in [magento]");
}
END_TEST

START_TEST(test_unknown_section)
{
	/* one mistake for the header; its keys are not reported again */
	CK_ONE(OK_HEAD "[wokers]\nthreads = 4\nfoo = bar\n", 3,
	       "unknown section [wokers]");
	CK_ONE(OK_HEAD "[wotch \"3pl\"]\npath = /x\n", 3,
	       "unknown section [wotch \"3pl\"]");
	CK_ONE(OK_HEAD "[store \"x\"]\npath = /x\n", 3,
	       "section [store] takes no name");
	CK_ONE(OK_HEAD "[store\n", 3, "bad section header");
	CK_ONE(OK_HEAD "[]\n", 3, "bad section header");
	CK_ONE(OK_HEAD "[Store]\n", 3, "unknown section [Store]");
	CK_ONE(OK_HEAD "[watch \"3pl]\n", 3, "bad section header");
	/* a section given twice is fine */
	{
		struct m2w_config c;

		ck_assert_int_eq(load_text(OK_HEAD "[workers]\nthreads = 2\n"
					   "[magento]\ntimeout = 9s\n", &c),
				 0);
		ck_assert_uint_eq(c.threads, 2);
		ck_assert_int_eq(c.magento.timeout_ms, 9000);
		m2w_config_release(&c);
	}
}
END_TEST

START_TEST(test_bad_values)
{
	CK_ONE(OK_HEAD "timeout = 5x\n", 3, "timeout: bad duration \"5x\"");
	CK_ONE(OK_HEAD "timeout = 0\n", 3, "timeout: \"0\" is too short");
	CK_ONE(OK_HEAD "timeout = 99999999999999999999s\n", 3,
	       "timeout: bad duration");
	CK_ONE(OK_HEAD "insecure = maybe\n", 3,
	       "insecure: \"maybe\" is not a boolean");
	CK_ONE(OK_HEAD "[store]\nnosync = \n", 4, "nosync: \"\" is not a "
	       "boolean");
	CK_ONE(OK_HEAD "[workers]\nthreads = 0\n", 4,
	       "threads: \"0\" is not a whole number from 1 to 256");
	CK_ONE(OK_HEAD "[workers]\nthreads = 257\n", 4,
	       "threads: \"257\" is not a whole number from 1 to 256");
	CK_ONE(OK_HEAD "[workers]\nthreads = -1\n", 4, "threads:");
	CK_ONE(OK_HEAD "[workers]\nthreads = 4 \"x\"\n", 4, "threads:");
	CK_ONE(OK_HEAD "[tracking]\njitter_percent = 101\n", 4,
	       "jitter_percent:");
	CK_ONE(OK_HEAD "[tracking]\nmax_attempts = 0\n", 4, "max_attempts:");
	CK_ONE(OK_HEAD "[tracking]\nmax_attempts = 65536\n", 4,
	       "max_attempts:");
	CK_ONE(OK_HEAD "[tracking]\nlease = 999ms\n", 4,
	       "lease: \"999ms\" is too short");
	CK_ONE(OK_HEAD "[stock]\nbatch = 501\n", 4, "batch:");
	CK_ONE(OK_HEAD "[stock]\nbatch = 0\n", 4, "batch:");
	CK_ONE(OK_HEAD "[stock]\nmode = multi\n", 4, "mode:");
	CK_ONE(OK_HEAD "[stock]\nsource_code =\n", 4,
	       "source_code: must not be empty");
	CK_ONE(OK_HEAD "[breaker]\nfailures = 0\n", 4, "failures:");
	CK_ONE(OK_HEAD "[log]\nlevel = verbose\n", 4, "level:");
	CK_ONE(OK_HEAD "[store]\nmap_max = 4 GB extra\n", 4,
	       "map_max: bad size");
	CK_ONE(OK_HEAD "[store]\npath =\n", 4, "path: must not be empty");
	CK_ONE(OK_HEAD "auth = bearer\n", 3, "auth: \"bearer\" is not one of");
	CK_ONE(OK_HEAD "rate_limit = -1\n", 3, "rate_limit:");
	CK_ONE(OK_HEAD "rate_limit = nan\n", 3, "rate_limit:");
	CK_ONE(OK_HEAD "rate_limit = 1e999\n", 3, "rate_limit:");
	CK_ONE(OK_HEAD "rate_limit = 5/s\n", 3, "rate_limit:");
	CK_ONE(OK_HEAD "store_code = de store\n", 3, "store_code:");
	CK_ONE(OK_HEAD "admin_token_ttl = 500ms\n", 3, "admin_token_ttl:");
	CK_ONE("[magento]\nbase_url = shop.example.com\n", 2,
	       "base_url: \"shop.example.com\" must start with http:// or "
	       "https://");
	CK_ONE(OK_HEAD "[carriers]\nUPS = UPS\n", 4,
	       "carrier \"UPS\": \"UPS\" is not a carrier code");
	CK_ONE(OK_HEAD "[carriers]\nUPS = \n", 4, "is not a carrier code");
	CK_ONE(OK_HEAD "[carriers]\nUPS Ground = ups\nups ground = dhl\n", 5,
	       "carrier \"ups ground\" is already mapped");
	CK_ONE(OK_HEAD "[tracking]\ncomment = \"open\n", 4,
	       "comment: the quoted value");
	CK_ONE(OK_HEAD "[tracking]\ncomment = \"a\" b\n", 4,
	       "comment: the quoted value");
}
END_TEST

START_TEST(test_value_kept_default)
{
	struct m2w_config c;

	/* a value that does not parse leaves the default; the rest holds */
	ck_assert_int_eq(load_text(OK_HEAD "timeout = soon\nconnect_timeout = "
				   "2s\n", &c), 1);
	ck_assert_int_eq(c.magento.timeout_ms, 30000);
	ck_assert_int_eq(c.magento.connect_timeout_ms, 2000);
	m2w_config_release(&c);
}
END_TEST

START_TEST(test_duplicate)
{
	struct m2w_config c;

	CK_ONE(OK_HEAD "timeout = 5s\ntimeout = 6s\n", 4,
	       "duplicate key timeout in [magento] (first at line 3)");
	/* across two headers of the same section too */
	CK_ONE(OK_HEAD "[workers]\nthreads = 2\n[workers]\nthreads = 3\n", 6,
	       "duplicate key threads in [workers] (first at line 4)");
	/* the first value stays */
	ck_assert_int_eq(load_text(OK_HEAD "timeout = 5s\ntimeout = 6s\n", &c),
			 1);
	ck_assert_int_eq(c.magento.timeout_ms, 5000);
	m2w_config_release(&c);
	/* the same key in two sections is no duplicate */
	ck_assert_int_eq(load_text(OK_HEAD "[stock]\nbatch = 5\n[price]\n"
				   "batch = 6\n", &c), 0);
	ck_assert_uint_eq(c.types[1].batch, 5);
	ck_assert_uint_eq(c.types[2].batch, 6);
	m2w_config_release(&c);
}
END_TEST

START_TEST(test_syntax)
{
	CK_ONE("threads = 4\n" OK_HEAD, 1,
	       "key \"threads\" is outside any section");
	CK_ONE(OK_HEAD "just some words\n", 3, "expected key = value");
	CK_ONE(OK_HEAD "= value\n", 3, "expected key = value");
	CK_ONE(OK_HEAD "[tracking]\nbatch = 501\n", 4, "batch");
	/* an inline comment is no comment: it is part of the value */
	CK_ONE(OK_HEAD "[workers]\nthreads = 4 # four\n", 4, "threads:");
}
END_TEST

START_TEST(test_long_line)
{
	char *text = malloc(16384), *p;
	struct m2w_config c;
	int k;

	ck_assert_ptr_nonnull(text);
	p = text + sprintf(text, OK_HEAD "[tracking]\ncomment = ");
	memset(p, 'a', 4096 - 10);   /* this line: exactly 4096 bytes */
	p += 4096 - 10;
	p += sprintf(p, "\n[log]\nfile = ");
	memset(p, 'b', 4097 - 7);    /* this one: 4097 */
	p += 4097 - 7;
	strcpy(p, "\n");
	k = load_text(text, &c);
	ck_assert_msg(k == 1, "%d mistakes:\n%s", k, rep);
	CK_AT(6, "line is longer than 4096 bytes");
	ck_assert_uint_eq(strlen(m2w_config_setting(&c, "tracking", "comment")), 4096 - 10);
	ck_assert_ptr_null(c.log_file);
	m2w_config_release(&c);
	free(text);
}
END_TEST

START_TEST(test_missing_base_url)
{
	CK_ONE("[magento]\nstore_code = x\n", 0,
	       "[magento] base_url is required");
	CK_ONE("", 0, "[magento] base_url is required");
	/* an empty value is no value */
	CK_ONE("[magento]\nbase_url =\n", 2, "base_url");
}
END_TEST

START_TEST(test_auth_needs)
{
	struct m2w_config c;
	int n;

	CK_ONE(OK_HEAD "auth = token\n", 3, "auth = token needs token");
	CK_ONE(OK_HEAD "auth = token\ntoken =\n", 3,
	       "auth = token needs token");
	CK_ONE(OK_HEAD "auth = admin\nusername = u\n", 3,
	       "auth = admin needs password");
	n = load_text(OK_HEAD "auth = oauth\nconsumer_key = k\n", &c);
	ck_assert_msg(n == 3, "%d:\n%s", n, rep);
	CK_AT(3, "auth = oauth needs consumer_secret");
	CK_AT(3, "auth = oauth needs access_token");
	CK_AT(3, "auth = oauth needs access_token_secret");
	m2w_config_release(&c);
	/* credentials but no auth: they would silently not be sent */
	CK_ONE(OK_HEAD "token = abc\n", 3, "token is set but auth is not "
	       "(add auth = token");
}
END_TEST

START_TEST(test_cap_below_base)
{
	CK_ONE(OK_HEAD "[rest]\nbackoff_base = 10s\nbackoff_cap = 5s\n", 5,
	       "[rest] backoff_cap (5000ms) is below backoff_base (10000ms)");
	/* only the base given: its line (the default cap is 1h) */
	CK_ONE(OK_HEAD "[price]\nbackoff_base = 2h\n", 4,
	       "[price] backoff_cap");
	CK_ONE(OK_HEAD "[store]\nmap_initial = 8GiB\nmap_max = 1GiB\n", 4,
	       "map_initial");
	CK_ONE(OK_HEAD "[store]\nmap_max = 1MiB\n", 4, "map_initial");
}
END_TEST

START_TEST(test_secrets)
{
	char sf[PATH_MAX], text[PATH_MAX + 512];
	struct m2w_config c;
	int n;

	unsetenv("M2W_TEST_UNSET");
	CK_ONE(OK_HEAD "auth = token\ntoken = env:M2W_TEST_UNSET\n", 4,
	       "token: ");
	ck_assert_ptr_nonnull(strstr(rep, "M2W_TEST_UNSET"));
	/* the token is missing now, but that is said once, on its line */
	ck_assert_ptr_null(strstr(rep, "needs token"));

	/* no secret value in the report, whatever goes wrong around it */
	path_in(sf, sizeof(sf), "no-such-dir/secret");
	n = snprintf(text, sizeof(text), OK_HEAD
		 "auth = admin\n"
		 "username = u\n"
		 "password = Hunter2-SeCrEt\n"
		 "password = Other-SeCrEt\n"
		 "Hunter3-SeCrEt\n"
		 "consumer_secret = file:%s\n"
		 "passwd = Hunter4-SeCrEt\n", sf);
	ck_assert(n > 0 && (size_t)n < sizeof(text));
	n = load_text(text, &c);
	ck_assert_msg(n == 4, "%d:\n%s", n, rep);
	CK_AT(6, "duplicate key password");
	CK_AT(7, "expected key = value");
	CK_AT(8, "consumer_secret: ");
	CK_AT(9, "unknown key \"passwd\"");
	ck_assert_ptr_null(strcasestr(rep, "secret-"));
	ck_assert_ptr_null(strcasestr(rep, "hunter"));
	ck_assert_str_eq(c.magento.password, "Hunter2-SeCrEt");
	ck_assert_ptr_null(c.magento.consumer_secret);
	m2w_config_release(&c);
}
END_TEST

START_TEST(test_many_mistakes)
{
	struct m2w_config c;
	int n;

	n = load_text("orphan = 1\n"              /* 1 */
		      "[magento]\n"               /* 2 */
		      "timeout = forever\n"       /* 3 */
		      "[workers]\n"               /* 4 */
		      "threads = 1000\n"          /* 5 */
		      "reap_interval = 2s\n"      /* 6 good */
		      "garbage\n"                 /* 7 */
		      "[nope]\n"                  /* 8 */
		      "x = 1\n"                   /* 9 ignored */
		      "[tracking]\n"              /* 10 */
		      "batch = 0\n"               /* 11 */
		      "notify = nah\n"            /* 12 */
		      "backoff_cap = 1s\n",       /* 13 */
		      &c);
	ck_assert_msg(n == 9, "%d mistakes:\n%s", n, rep);
	CK_AT(1, "outside any section");
	CK_AT(3, "timeout: bad duration");
	CK_AT(5, "threads:");
	CK_AT(7, "expected key = value");
	CK_AT(8, "unknown section [nope]");
	CK_AT(11, "batch");
	CK_AT(12, "notify:");
	CK_AT(13, "[tracking] backoff_cap (1000ms) is below");
	CK_AT(0, "[magento] base_url is required");
	/* what did parse is kept */
	ck_assert_int_eq(c.reap_interval_ms, 2000);
	ck_assert_int_eq(c.types[0].policy.backoff_cap_ms, 1000);
	m2w_config_release(&c);
}
END_TEST

START_TEST(test_report_cut)
{
	struct m2w_config c;
	char small[40];
	int n;

	memset(small, 'Z', sizeof(small));
	m2w_config_defaults(&c);
	n = m2w_config_load(write_conf("a\nb\nc\n", 6), &c, small,
			    sizeof(small));
	ck_assert_int_eq(n, 4);     /* 3 lines + base_url */
	ck_assert_uint_lt(strlen(small), sizeof(small));
	m2w_config_release(&c);
	/* NULL report */
	m2w_config_defaults(&c);
	n = m2w_config_load(cpath, &c, NULL, 0);
	ck_assert_int_eq(n, 4);
	m2w_config_release(&c);
}
END_TEST

START_TEST(test_unreadable)
{
	struct m2w_config c;
	int n;

	path_in(cpath, sizeof(cpath), "does-not-exist.conf");
	m2w_config_defaults(&c);
	n = m2w_config_load(cpath, &c, rep, sizeof(rep));
	ck_assert_int_eq(n, 1);
	CK_AT(0, "cannot open");
	check_defaults(&c, 1);
	m2w_config_release(&c);
}
END_TEST

START_TEST(test_bom_crlf_quotes_comments)
{
	static const char text[] =
		"\xef\xbb\xbf[magento]\r\n"
		"base_url = \"https://shop.example.com\"\r\n"
		"   # indented comment\r\n"
		"\t; another = not a key\r\n"
		"\r\n"
		"[tracking]\r\n"
		"comment = \"  spaced \\\"and\\\" quoted \\\\ # kept  \"\r\n"
		"source_code = a\"b\r\n"
		"[ log ]\n"
		"file=/tmp/x.log\n";
	struct m2w_config c;
	int n;

	m2w_config_defaults(&c);
	n = m2w_config_load(write_conf(text, sizeof(text) - 1), &c, rep,
			    sizeof(rep));
	ck_assert_msg(n == 0, "%d:\n%s", n, rep);
	ck_assert_str_eq(c.magento.base_url, "https://shop.example.com");
	ck_assert_str_eq(m2w_config_setting(&c, "tracking", "comment"),
			 "  spaced \"and\" quoted \\ # kept  ");
	ck_assert_str_eq(m2w_config_setting(&c, "tracking", "source_code"), "a\"b");
	ck_assert_str_eq(c.log_file, "/tmp/x.log");
	m2w_config_release(&c);

	/* a BOM later in the file is not skipped */
	CK_ONE(OK_HEAD "\xef\xbb\xbf[log]\n", 3, "expected key = value");
}
END_TEST

START_TEST(test_sample)
{
	const char *top = getenv("top_srcdir");
	char path[PATH_MAX];
	struct m2w_config c;
	int n;

	n = snprintf(path, sizeof(path), "%s/contrib/m2worker.conf",
		     top && *top ? top : ".");
	ck_assert(n > 0 && (size_t)n < sizeof(path));
	m2w_config_defaults(&c);
	n = m2w_config_load(path, &c, rep, sizeof(rep));
	ck_assert_msg(n == 0, "%s: %d mistakes:\n%s", path, n, rep);
	/* it shows the defaults */
	ck_assert_str_eq(c.magento.base_url, "https://shop.example.com");
	check_defaults(&c, 0);
	ck_assert_str_eq(m2w_map_get(m2w_config_map(&c, "carriers"),
				     "ups ground"), "ups");
	m2w_config_release(&c);
}
END_TEST

START_TEST(test_carrier)
{
	struct m2w_config c;
	const struct m2w_map *m;

	/* the map only: the known codes and "custom" are the tracking job's
	 * (check_jobs) */
	ck_assert_int_eq(load_text(OK_HEAD "[carriers]\nUPS Ground = ups\n"
				   "Post = dhl\nFedEx = usps\n", &c), 0);
	m = m2w_config_map(&c, "carriers");
	ck_assert_str_eq(m2w_map_get(m, "UPS Ground"), "ups");
	ck_assert_str_eq(m2w_map_get(m, "  ups ground "), "ups");
	ck_assert_ptr_null(m2w_map_get(m, "UPS  Ground"));
	ck_assert_str_eq(m2w_map_get(m, "post"), "dhl");
	ck_assert_str_eq(m2w_map_get(m, "fedex"), "usps");
	ck_assert_ptr_null(m2w_map_get(m, "UPS"));
	ck_assert_ptr_null(m2w_map_get(m, ""));
	ck_assert_ptr_null(m2w_map_get(m, NULL));
	m2w_config_release(&c);

	m2w_config_defaults(&c);
	ck_assert_uint_eq(m2w_config_map(&c, "carriers")->n, 0);
	ck_assert_ptr_null(m2w_config_map(&c, "nope"));
	m2w_config_release(&c);
}
END_TEST

/* A second file read over the first (as over the defaults). */
START_TEST(test_layered)
{
	static const char second[] = "[workers]\nthreads = 4\n"
				     "[log]\nfile = /x.log\n"
				     "[carriers]\nB = dhl\n";
	struct m2w_config c;
	char first[PATH_MAX];
	int n;

	ck_assert_int_eq(load_text(OK_HEAD "[workers]\nthreads = 3\n"
				   "[carriers]\nA = ups\n", &c), 0);
	strcpy(first, cpath);
	n = m2w_config_load(write_conf(second, strlen(second)), &c, rep,
			    sizeof(rep));
	ck_assert_msg(n == 0, "%d:\n%s", n, rep);
	ck_assert_str_eq(c.path, cpath);
	ck_assert_str_ne(c.path, first);
	ck_assert_str_eq(c.magento.base_url, "https://shop.example.com");
	ck_assert_uint_eq(c.threads, 4);
	ck_assert_str_eq(c.log_file, "/x.log");
	ck_assert_uint_eq(m2w_config_map(&c, "carriers")->n, 2);
	m2w_config_release(&c);
}
END_TEST

START_TEST(test_release_twice)
{
	struct m2w_config c;

	ck_assert_int_eq(load_text(OK_HEAD "auth = token\ntoken = t\n", &c),
			 0);
	m2w_config_release(&c);
	m2w_config_release(&c);   /* zeroed: harmless */
}
END_TEST

START_TEST(test_http_and_watch)
{
	struct m2w_config c;

	ck_assert_int_eq(load_text(OK_HEAD "[http]\nenabled = yes\n"
				   "tokens = t1,t2\nport = 9000\n"
				   "body_max = 1MiB\n"
				   "[watch \"3pl\"]\npath = /in\ntype = tracking\n"
				   "pattern = ^\\d{8}_\\d{6}\\.csv$\n"
				   "delimiter = ;\nmode = poll\nsettle = 500ms\n"
				   "[watch \"stock\"]\npath = /stock\n"
				   "type = stock\n", &c), 0);
	ck_assert_int_eq(c.http, 1);
	ck_assert_str_eq(c.http_tokens, "t1,t2");
	ck_assert_uint_eq(c.http_port, 9000);
	ck_assert_uint_eq(c.http_body_max, 1 << 20);
	ck_assert_str_eq(c.http_listen, "127.0.0.1");
	ck_assert_uint_eq(c.nwatches, 2);
	ck_assert_str_eq(c.watches[0].name, "3pl");
	ck_assert_str_eq(c.watches[0].path, "/in");
	ck_assert_str_eq(c.watches[0].type, "tracking");
	ck_assert_str_eq(c.watches[0].pattern, "^\\d{8}_\\d{6}\\.csv$");
	ck_assert_int_eq(c.watches[0].delimiter, ';');
	ck_assert_int_eq(c.watches[0].poll, 1);
	ck_assert_int_eq(c.watches[0].settle_ms, 500);
	ck_assert_str_eq(c.watches[1].pattern, "*.csv");
	ck_assert_int_eq(c.watches[1].delimiter, 0);
	ck_assert_int_eq(c.watches[1].poll, 0);
	ck_assert_int_eq(c.watches[1].settle_ms, 2000);
	m2w_config_release(&c);

	CK_ONE(OK_HEAD "[http]\nenabled = yes\n", 4, "needs tokens");
	CK_ONE(OK_HEAD "[watch \"a\"]\npath = /in\ntype = nope\n", 5,
	       "not a job type");
	CK_ONE(OK_HEAD "[watch \"a\"]\npath = /in\ntype = stock\n"
	       "delimiter = |\n", 6, "not auto");
	CK_ONE(OK_HEAD "[watch \"a\"]\ntype = stock\n", 0, "needs path");
	CK_ONE(OK_HEAD "[watch \"a\"]\npath = /in\ntype = stock\n"
	       "[watch \"a\"]\n", 6, "already defined");
	CK_ONE(OK_HEAD "[watch \"a\"]\npath = /in\ntype = stock\n"
	       "[watch \"b\"]\npath = /in\ntype = price\n", 0,
	       "watch the same path");
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_parse_bool);
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_minimal);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_auth_modes);
	tcase_add_test(tc, test_value_kept_default);
	tcase_add_test(tc, test_bom_crlf_quotes_comments);
	tcase_add_test(tc, test_sample);
	tcase_add_test(tc, test_http_and_watch);
	tcase_add_test(tc, test_carrier);
	tcase_add_test(tc, test_layered);
	tcase_add_test(tc, test_release_twice);
	suite_add_tcase(s, tc);

	tc = tcase_create("mistakes");
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_unknown_section);
	tcase_add_test(tc, test_bad_values);
	tcase_add_test(tc, test_duplicate);
	tcase_add_test(tc, test_syntax);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_missing_base_url);
	tcase_add_test(tc, test_auth_needs);
	tcase_add_test(tc, test_cap_below_base);
	tcase_add_test(tc, test_secrets);
	tcase_add_test(tc, test_many_mistakes);
	tcase_add_test(tc, test_report_cut);
	tcase_add_test(tc, test_unreadable);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run("check_config", config_suite());
}
