/*
 * testutil.h - helpers shared by the Check unit tests of the queue.
 *
 * Every test gets its own store under a fresh temporary directory, removed
 * at teardown. Under CK_FORK a failing assertion ends the test process
 * without its teardown, so main() makes one base directory for the run
 * (tu_base_init) that holds every test's directory and removes it at the
 * end (tu_base_cleanup). Set M2W_TEST_KEEP=1 to keep the directories.
 *
 * Time: stores opened here use a fake clock (struct tu_clock) that starts
 * at TU_T0 and only moves when a test moves it.
 *
 * Assertions: CK_OK(call) / CK_RC(code, call) run `call`, which may use
 * EB as its error buffer, and report the call, the code and the buffer.
 */
#ifndef M2W_TESTUTIL_H
#define M2W_TESTUTIL_H

/* strcasestr() and nftw() need _GNU_SOURCE: test files define it before
 * their first include; this covers a file that includes us first. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "m2worker/admin.h"
#include "m2worker/queue.h"

/* A fixed, realistic start time: 2023-11-14 22:13:20 UTC. */
#define TU_T0 INT64_C(1700000000000)

#define TU_MIB ((size_t)1 << 20)

/* ------------------------------------------------------------ assertions */

#define EB tu_eb

#define CK_RC(want, call)                                                     \
	do {                                                                  \
		char tu_eb[M2W_ERRBUF_SIZE] = "";                             \
		int tu_rc = (call);                                           \
		ck_assert_msg(tu_rc == (want),                                \
			      "%s\n  returned %d (%s), expected %d (%s); "    \
			      "errbuf: \"%s\"",                               \
			      #call, tu_rc, m2w_strerror(tu_rc), (int)(want), \
			      m2w_strerror(want), tu_eb);                     \
	} while (0)

#define CK_OK(call) CK_RC(M2W_OK, call)

/* --------------------------------------------------------------- clock */

struct tu_clock {
	int64_t now;
};

static inline int64_t tu_clock_now(void *arg)
{
	return ((struct tu_clock *)arg)->now;
}

/* The real wall clock, in ms since the epoch. */
static inline int64_t tu_realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -------------------------------------------------------- temp directory */

static inline int tu_rmrf_cb(const char *path, const struct stat *sb,
			     int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		fprintf(stderr, "testutil: cannot remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

/* Removes `path` and everything under it; a missing path is fine. */
static inline void tu_rmrf(const char *path)
{
	struct stat st;

	if (!path || !*path || lstat(path, &st) != 0)
		return;
	nftw(path, tu_rmrf_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline int tu_keep_dirs(void)
{
	const char *k = getenv("M2W_TEST_KEEP");

	return k && *k && strcmp(k, "0") != 0;
}

/* The run's base directory: every test directory is made inside it, so
 * that main() can remove whatever a failed or timed-out test left. */
static char tu_base[PATH_MAX];

/* Creates a fresh directory "<parent>/<prefix>XXXXXX" in out. */
static inline void tu_mkdtemp_in(char *out, size_t size, const char *parent,
				 const char *prefix)
{
	int len = snprintf(out, size, "%s/%sXXXXXX", parent, prefix);

	ck_assert_msg(len > 0 && (size_t)len < size, "temp path too long");
	ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp(%s): %s", out,
		      strerror(errno));
}

/* A fresh directory for one test, inside the base directory when there
 * is one, else in $TMPDIR or /tmp. */
static inline void tu_mkdtemp(char *out, size_t size)
{
	const char *parent = getenv("TMPDIR");

	if (tu_base[0])
		parent = tu_base;
	else if (!parent || !*parent)
		parent = "/tmp";
	tu_mkdtemp_in(out, size, parent, "m2w-test-");
}

/* Call in main() before running the suite: "<$TMPDIR or /tmp>/<name>-XXXXXX". */
static inline void tu_base_init(const char *name)
{
	const char *parent = getenv("TMPDIR");
	char prefix[64];
	int len;

	if (!parent || !*parent)
		parent = "/tmp";
	snprintf(prefix, sizeof(prefix), "%s-", name);
	len = snprintf(tu_base, sizeof(tu_base), "%s/%sXXXXXX", parent, prefix);
	if (len <= 0 || (size_t)len >= sizeof(tu_base) || !mkdtemp(tu_base)) {
		fprintf(stderr, "cannot make a directory under %s: %s\n",
			parent, strerror(errno));
		exit(EXIT_FAILURE);
	}
}

/* Call in main() after the suite ran: removes the base directory. */
static inline void tu_base_cleanup(void)
{
	if (!tu_base[0])
		return;
	if (tu_keep_dirs())
		fprintf(stderr, "testutil: kept %s\n", tu_base);
	else
		tu_rmrf(tu_base);
	tu_base[0] = '\0';
}

/* A unit test's main(): the suite run under a base directory named after
 * `name` (see tu_base_init); EXIT_SUCCESS when every test passed. */
static inline int tu_run(const char *name, Suite *s)
{
	SRunner *sr;
	int failed;

	tu_base_init(name);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	tu_base_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---------------------------------------------------- test environment */

struct tu_env {
	char dir[PATH_MAX];   /* the temporary directory */
	char path[PATH_MAX];  /* the store: dir/store */
	struct m2w_queue *q;  /* open store, or NULL */
	struct tu_clock clock;
};

/* Points e->path at dir/name (another store in the same directory). */
static inline void tu_env_path(struct tu_env *e, const char *name)
{
	int n = snprintf(e->path, sizeof(e->path), "%s/%s", e->dir, name);

	ck_assert_msg(n > 0 && (size_t)n < sizeof(e->path), "path too long");
}

/* Makes the temporary directory; the store path inside does not exist yet. */
static inline void tu_env_init(struct tu_env *e)
{
	memset(e, 0, sizeof(*e));
	tu_mkdtemp(e->dir, sizeof(e->dir));
	tu_env_path(e, "store");
	e->clock.now = TU_T0;
}

/* Opens e->path (see struct m2w_queue_opts) and installs the fake clock.
 * Returns the open's code; errbuf may be NULL. */
static inline int tu_open_ex(struct tu_env *e, size_t map_initial,
			     size_t map_max, int create, char *errbuf)
{
	struct m2w_queue_opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.path = e->path;
	o.map_initial = map_initial;
	o.map_max = map_max;
	o.create = create;
	e->q = NULL;
	rc = m2w_queue_open(&o, &e->q, errbuf);
	if (rc == M2W_OK) {
		ck_assert_msg(e->q != NULL, "m2w_queue_open: OK but no handle");
		m2w_queue_set_clock(e->q, tu_clock_now, &e->clock);
	} else {
		e->q = NULL;
	}
	return rc;
}

/* Opens (creating) with default sizes; asserts success. */
static inline struct m2w_queue *tu_open(struct tu_env *e)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc = tu_open_ex(e, 0, 0, 1, eb);

	ck_assert_msg(rc == M2W_OK, "open %s: %d (%s): %s", e->path, rc,
		      m2w_strerror(rc), eb);
	return e->q;
}

static inline void tu_close(struct tu_env *e)
{
	m2w_queue_close(e->q);
	e->q = NULL;
}

/* Closes and reopens (without create); asserts success. */
static inline struct m2w_queue *tu_reopen(struct tu_env *e)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc;

	tu_close(e);
	rc = tu_open_ex(e, 0, 0, 0, eb);
	ck_assert_msg(rc == M2W_OK, "reopen %s: %d (%s): %s", e->path, rc,
		      m2w_strerror(rc), eb);
	return e->q;
}

static inline void tu_env_done(struct tu_env *e)
{
	tu_close(e);
	if (e->dir[0]) {
		if (tu_keep_dirs())
			fprintf(stderr, "testutil: kept %s\n", e->dir);
		else
			tu_rmrf(e->dir);
		e->dir[0] = '\0';
	}
}

/* ------------------------------------------------------- queue helpers */

/* A zeroed new task of `type` with `payload`. */
static inline struct m2w_new_task tu_task(const char *type,
					  const char *payload)
{
	struct m2w_new_task t;

	memset(&t, 0, sizeof(t));
	t.type = type;
	t.payload = payload;
	return t;
}

/* Enqueues one prepared task; asserts success, returns its id. */
static inline uint64_t tu_enqueue_task_at(const char *file, int line,
					  struct m2w_queue *q,
					  struct m2w_new_task *t)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc = m2w_queue_enqueue(q, t, 1, eb);

	ck_assert_msg(rc == M2W_OK && t->err == M2W_OK,
		      "%s:%d: enqueue %s %s: rc %d (%s), entry err %d: %s",
		      file, line, t->type ? t->type : "(null)",
		      t->payload ? t->payload : "(null)", rc, m2w_strerror(rc),
		      t->err, eb);
	ck_assert_msg(t->id > 0, "%s:%d: enqueue gave id 0", file, line);
	return t->id;
}

static inline uint64_t tu_enqueue_at(const char *file, int line,
				     struct m2w_queue *q, const char *type,
				     const char *payload)
{
	struct m2w_new_task t = tu_task(type, payload);

	return tu_enqueue_task_at(file, line, q, &t);
}

#define tu_enqueue_task(q, t) tu_enqueue_task_at(__FILE__, __LINE__, q, t)
#define tu_enqueue(q, type, payload) \
	tu_enqueue_at(__FILE__, __LINE__, q, type, payload)

/* Leases up to `max` (types may be NULL); asserts success. *n gets the
 * count; the array (NULL when none) is freed with m2w_task_list_free. */
static inline struct m2w_task **tu_lease_at(const char *file, int line,
					    struct m2w_queue *q, size_t max,
					    int64_t lease_ms,
					    const char *const *types,
					    size_t ntypes, size_t *n)
{
	struct m2w_lease_opts o;
	struct m2w_task **ts = NULL;
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc;

	memset(&o, 0, sizeof(o));
	o.max = max;
	o.lease_ms = lease_ms;
	o.types = types;
	o.ntypes = ntypes;
	*n = (size_t)-1;
	rc = m2w_queue_lease(q, &o, &ts, n, eb);
	ck_assert_msg(rc == M2W_OK, "%s:%d: lease: %d (%s): %s", file, line,
		      rc, m2w_strerror(rc), eb);
	ck_assert_msg(*n <= max, "%s:%d: lease returned %zu > max %zu", file,
		      line, *n, max);
	ck_assert_msg(*n == 0 || ts != NULL, "%s:%d: lease: n %zu, no array",
		      file, line, *n);
	return ts;
}

#define tu_lease(q, max, lease_ms, n) \
	tu_lease_at(__FILE__, __LINE__, q, max, lease_ms, NULL, 0, n)
#define tu_lease_types(q, max, lease_ms, types, ntypes, n) \
	tu_lease_at(__FILE__, __LINE__, q, max, lease_ms, types, ntypes, n)

static inline void tu_tasks_free(struct m2w_task **ts, size_t n)
{
	if (ts)
		m2w_task_list_free(ts, n);
}

/* Leases exactly one task; asserts so. Returns it (free with
 * m2w_task_free). */
static inline struct m2w_task *tu_lease1_at(const char *file, int line,
					    struct m2w_queue *q,
					    int64_t lease_ms)
{
	size_t n;
	struct m2w_task **ts = tu_lease_at(file, line, q, 1, lease_ms, NULL, 0,
					   &n);
	struct m2w_task *t;

	ck_assert_msg(n == 1, "%s:%d: expected to lease 1 task, got %zu",
		      file, line, n);
	t = ts[0];
	ts[0] = NULL;
	free(ts);
	return t;
}

#define tu_lease1(q, lease_ms) tu_lease1_at(__FILE__, __LINE__, q, lease_ms)

/* Reads task `id`; asserts success. Free with m2w_task_free. */
static inline struct m2w_task *tu_get_at(const char *file, int line,
					 struct m2w_queue *q, uint64_t id)
{
	struct m2w_task *t = NULL;
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc = m2w_queue_get(q, id, &t, eb);

	ck_assert_msg(rc == M2W_OK && t != NULL,
		      "%s:%d: get %llu: %d (%s): %s", file, line,
		      (unsigned long long)id, rc, m2w_strerror(rc), eb);
	ck_assert_msg(t->id == id, "%s:%d: get %llu returned task %llu", file,
		      line, (unsigned long long)id, (unsigned long long)t->id);
	return t;
}

#define tu_get(q, id) tu_get_at(__FILE__, __LINE__, q, id)

/* The state of task `id` as get reports it. */
static inline int tu_state_at(const char *file, int line, struct m2w_queue *q,
			      uint64_t id)
{
	struct m2w_task *t = tu_get_at(file, line, q, id);
	int s = t->state;

	m2w_task_free(t);
	return s;
}

#define tu_state(q, id) tu_state_at(__FILE__, __LINE__, q, id)

static inline const char *tu_sname(int s)
{
	const char *n = m2w_state_name(s);

	return n ? n : "?";
}

#define ck_assert_state(q, id, want)                                        \
	do {                                                                \
		int tu_s = tu_state(q, id);                                 \
		ck_assert_msg(tu_s == (want),                               \
			      "task %llu: state %d (%s), expected %d (%s)", \
			      (unsigned long long)(id), tu_s, tu_sname(tu_s), \
			      (int)(want), tu_sname(want));                 \
	} while (0)

/* Stats; asserts success. Free with m2w_stats_free. */
static inline void tu_stats_at(const char *file, int line,
			       struct m2w_queue *q, struct m2w_stats *st)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc;

	memset(st, 0, sizeof(*st));
	rc = m2w_queue_stats(q, st, eb);
	ck_assert_msg(rc == M2W_OK, "%s:%d: stats: %d (%s): %s", file, line,
		      rc, m2w_strerror(rc), eb);
}

#define tu_stats(q, st) tu_stats_at(__FILE__, __LINE__, q, st)

/* The store-wide count of `state`. */
static inline uint64_t tu_count_at(const char *file, int line,
				   struct m2w_queue *q, int state)
{
	struct m2w_stats st;
	uint64_t c;

	tu_stats_at(file, line, q, &st);
	c = st.count[state];
	m2w_stats_free(&st);
	return c;
}

#define tu_count(q, state) tu_count_at(__FILE__, __LINE__, q, state)

/* The sum of all state counts. */
static inline uint64_t tu_total_at(const char *file, int line,
				   struct m2w_queue *q)
{
	struct m2w_stats st;
	uint64_t c = 0;
	int i;

	tu_stats_at(file, line, q, &st);
	for (i = 0; i < M2W_NSTATES; i++)
		c += st.count[i];
	m2w_stats_free(&st);
	return c;
}

#define tu_total(q) tu_total_at(__FILE__, __LINE__, q)

/* m2w_queue_check must say OK. */
#define ck_assert_store_ok(q) CK_OK(m2w_queue_check(q, EB))

#endif
