/*
 * check_queue.c - the task store (queue.h, admin.h): open, enqueue, lease,
 * settle, reap, history, ordering groups, listing (by time too), stats,
 * repair (requeue and delete of dead tasks by selection), dead-letter
 * groups and their JSON, map growth, several processes and threads,
 * damaged stores.
 *
 * Every test runs in its own forked process with its own store in a fresh
 * temporary directory (the fixture below), opened with a fake clock that
 * starts at TU_T0 and moves only when the test moves it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr, nftw */
#endif

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <lmdb.h>

#include "m2worker/admin.h"
#include "m2worker/queue.h"
#include "m2worker/report.h"
#include "testutil.h"

static struct tu_env E;
static struct m2w_queue *Q;

#define NOW (E.clock.now)

static void setup(void)
{
	tu_env_init(&E);
	Q = tu_open(&E);
}

static void teardown(void)
{
	tu_env_done(&E);
	Q = NULL;
}

/* One field of task `id` as get reports it (GNU statement expression). */
#define TASK(id, field)                                                  \
	({                                                               \
		struct m2w_task *task_ = tu_get(Q, id);                  \
		__typeof__(task_->field) value_ = task_->field;          \
		m2w_task_free(task_);                                    \
		value_;                                                  \
	})

static void advance(int64_t ms)
{
	E.clock.now += ms;
}

static void reopen(void)
{
	Q = tu_reopen(&E);
}

static void set_policy(const char *type, unsigned max_attempts, int64_t base,
		       int64_t cap, unsigned jitter)
{
	struct m2w_policy p;

	m2w_policy_default(&p);
	p.max_attempts = max_attempts;
	p.backoff_base_ms = base;
	p.backoff_cap_ms = cap;
	p.jitter_pct = jitter;
	CK_OK(m2w_queue_set_policy(Q, type, &p, EB));
}

/* base 1 s, cap 8 s, jitter 20 %, 10 attempts */
static void fast_policy(const char *type)
{
	set_policy(type, 10, 1000, 8000, 20);
}

static uint64_t enq(const char *type)
{
	return tu_enqueue(Q, type, "{\"a\":1}");
}

static uint64_t enq_group(const char *type, const char *group, int supersede)
{
	struct m2w_new_task t = tu_task(type, "{\"v\":1}");

	t.group_key = group;
	t.supersede = supersede;
	return tu_enqueue_task(Q, &t);
}

static uint64_t enq_max(const char *type, unsigned max_attempts)
{
	struct m2w_new_task t = tu_task(type, "{\"a\":1}");

	t.max_attempts = max_attempts;
	return tu_enqueue_task(Q, &t);
}

/* Leases exactly one task and asserts it is `id`; returns its token. */
static uint64_t lease_expect(uint64_t id, int64_t lease_ms)
{
	struct m2w_task *t = tu_lease1(Q, lease_ms);
	uint64_t tok = t->lease_token;

	ck_assert_msg(t->id == id, "leased task %" PRIu64 ", expected %" PRIu64,
		      t->id, id);
	ck_assert_int_eq(t->state, M2W_LEASED);
	ck_assert_msg(tok != 0, "lease token is 0");
	m2w_task_free(t);
	return tok;
}

/* Leases up to max and returns how many. */
static size_t lease_count(size_t max)
{
	size_t n;
	struct m2w_task **ts = tu_lease(Q, max, 0, &n);

	tu_tasks_free(ts, n);
	return n;
}

/* Enqueues, leases and fails one task permanently: a dead task. */
static uint64_t make_dead(const char *type, const char *msg)
{
	uint64_t id = enq(type);
	uint64_t tok = lease_expect(id, 0);

	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_PERMANENT, msg, 422, 0, EB));
	ck_assert_state(Q, id, M2W_DEAD);
	return id;
}

/* Enqueues, leases and acks one task: a done task. */
static uint64_t make_done(const char *type)
{
	uint64_t id = enq(type);
	uint64_t tok = lease_expect(id, 0);

	CK_OK(m2w_task_ack(Q, id, tok, 5, EB));
	return id;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts and asserts no duplicates. */
static void assert_distinct(uint64_t *ids, size_t n)
{
	size_t i;

	qsort(ids, n, sizeof(*ids), u64_cmp);
	for (i = 1; i < n; i++)
		ck_assert_msg(ids[i] != ids[i - 1], "id %" PRIu64 " repeated",
			      ids[i]);
}

static int has_id(const uint64_t *ids, size_t n, uint64_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

/* Lists every task of `state` (all pages); returns a malloc'd id array. */
static uint64_t *list_all(int state, const char *type, const char *grep,
			  size_t *count)
{
	struct m2w_list_opts o;
	char cursor[M2W_CURSOR_MAX] = "";
	uint64_t *ids = NULL;
	size_t n = 0, pages = 0;

	do {
		struct m2w_task **ts = NULL;
		char next[M2W_CURSOR_MAX];
		size_t k, i;

		memset(&o, 0, sizeof(o));
		memset(next, 'x', sizeof(next));
		o.state = state;
		o.type = type;
		o.grep = grep;
		o.limit = 7;
		o.after = pages ? cursor : NULL;
		CK_OK(m2w_queue_list(Q, &o, &ts, &k, next, EB));
		ck_assert_msg(memchr(next, '\0', sizeof(next)) != NULL,
			      "cursor not terminated");
		ids = realloc(ids, (n + k + 1) * sizeof(*ids));
		ck_assert_ptr_nonnull(ids);
		for (i = 0; i < k; i++) {
			ck_assert_msg(ts[i]->state == state,
				      "list %s returned task %" PRIu64
				      " in state %s",
				      tu_sname(state), ts[i]->id,
				      tu_sname(ts[i]->state));
			if (type)
				ck_assert_str_eq(ts[i]->type, type);
			ids[n++] = ts[i]->id;
		}
		tu_tasks_free(ts, k);
		snprintf(cursor, sizeof(cursor), "%s", next);
		ck_assert_msg(++pages < 10000, "list never ends");
	} while (cursor[0]);
	*count = n;
	return ids;
}

static size_t list_count(int state, const char *type, const char *grep)
{
	size_t n;
	uint64_t *ids = list_all(state, type, grep, &n);

	free(ids);
	return n;
}

static const struct m2w_type_stats *find_type(const struct m2w_stats *st,
					      const char *type)
{
	size_t i;

	for (i = 0; i < st->ntypes; i++)
		if (strcmp(st->types[i].type, type) == 0)
			return &st->types[i];
	ck_abort_msg("stats: no type %s", type);
	return NULL;
}

/* ------------------------------------------------------------- raw LMDB */

struct raw {
	MDB_env *env;
	MDB_txn *txn;
};

static void raw_begin(struct raw *r, const char *path)
{
	int rc;

	ck_assert_int_eq(mdb_env_create(&r->env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(r->env, 16), 0);
	rc = mdb_env_open(r->env, path, 0, 0640);
	ck_assert_msg(rc == 0, "mdb_env_open %s: %s", path, mdb_strerror(rc));
	rc = mdb_txn_begin(r->env, NULL, 0, &r->txn);
	ck_assert_msg(rc == 0, "mdb_txn_begin: %s", mdb_strerror(rc));
}

static MDB_dbi raw_dbi(struct raw *r, const char *name)
{
	MDB_dbi dbi;
	int rc = mdb_dbi_open(r->txn, name, 0, &dbi);

	ck_assert_msg(rc == 0, "mdb_dbi_open %s: %s", name, mdb_strerror(rc));
	return dbi;
}

static void raw_end(struct raw *r)
{
	int rc = mdb_txn_commit(r->txn);

	ck_assert_msg(rc == 0, "mdb_txn_commit: %s", mdb_strerror(rc));
	mdb_env_close(r->env);
}

static void be64(unsigned char k[8], uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		k[i] = (unsigned char)v;
}

/* ======================================================== open / close */

START_TEST(test_open_create_new_dir)
{
	struct m2w_stats st;
	struct stat sb;
	int i;

	/* the fixture created E.path, which did not exist before */
	ck_assert_int_eq(stat(E.path, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	tu_stats(Q, &st);
	for (i = 0; i < M2W_NSTATES; i++)
		ck_assert_uint_eq(st.count[i], 0);
	ck_assert_uint_gt(st.map_size, 0);
	ck_assert_int_eq(st.oldest_ready_ms, 0);
	m2w_stats_free(&st);
	ck_assert_store_ok(Q);
	ck_assert_int_eq(m2w_queue_now(Q), TU_T0);

	/* create in a directory that exists and is empty */
	tu_close(&E);
	tu_env_path(&E, "existing");
	ck_assert_int_eq(mkdir(E.path, 0750), 0);
	CK_OK(tu_open_ex(&E, 0, 0, 1, EB));
	Q = E.q;
	enq("price");
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 1);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_open_missing)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	struct stat sb;

	tu_close(&E);
	Q = NULL;
	tu_env_path(&E, "missing");
	ck_assert_int_eq(tu_open_ex(&E, 0, 0, 0, eb), M2W_ENOTFOUND);
	ck_assert_msg(eb[0] != '\0', "errbuf empty on ENOTFOUND");
	ck_assert_msg(stat(E.path, &sb) != 0, "open without create made %s",
		      E.path);
}
END_TEST

START_TEST(test_open_reopen_keeps_tasks)
{
	uint64_t ids[4];
	struct m2w_new_task t;
	struct m2w_task *g;
	int i;

	for (i = 0; i < 3; i++) {
		t = tu_task(i == 1 ? "stock" : "price", "{\"a\":1}");
		t.source = "file.csv:7";
		t.idem_key = i == 0 ? "keep-0" : NULL;
		ids[i] = tu_enqueue_task(Q, &t);
	}
	reopen();
	for (i = 0; i < 3; i++) {
		g = tu_get(Q, ids[i]);
		ck_assert_str_eq(g->type, i == 1 ? "stock" : "price");
		ck_assert_str_eq(g->payload, "{\"a\":1}");
		ck_assert_str_eq(g->source, "file.csv:7");
		ck_assert_int_eq(g->state, M2W_READY);
		m2w_task_free(g);
	}
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 3);

	/* the idempotency key survived, and new ids do not repeat old ones */
	t = tu_task("price", "{\"a\":2}");
	t.idem_key = "keep-0";
	tu_enqueue_task(Q, &t);
	ck_assert_int_eq(t.duplicate, 1);
	ck_assert_uint_eq(t.id, ids[0]);
	ids[3] = enq("price");
	assert_distinct(ids, 4);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_strerror_all_codes)
{
	int i;

	for (i = 0; i < M2W_ERR_COUNT; i++) {
		const char *s = m2w_strerror(i);

		ck_assert_msg(s != NULL, "m2w_strerror(%d) is NULL", i);
		ck_assert_msg(s[0] != '\0', "m2w_strerror(%d) is empty", i);
	}
	for (i = -3; i < 0; i++)
		ck_assert_ptr_nonnull(m2w_strerror(i));
	for (i = M2W_ERR_COUNT; i < M2W_ERR_COUNT + 3; i++)
		ck_assert_ptr_nonnull(m2w_strerror(i));
	ck_assert_ptr_nonnull(m2w_strerror(1000000));
	ck_assert_ptr_nonnull(m2w_strerror(-1000000));
}
END_TEST

START_TEST(test_state_names)
{
	int i, j;

	for (i = 0; i < M2W_NSTATES; i++) {
		const char *n = m2w_state_name(i);

		ck_assert_msg(n != NULL && n[0], "state %d has no name", i);
		ck_assert_int_eq(m2w_state_parse(n), i);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(n, m2w_state_name(j));
	}
	ck_assert_str_eq(m2w_state_name(M2W_READY), "ready");
	ck_assert_str_eq(m2w_state_name(M2W_SCHEDULED), "scheduled");
	ck_assert_ptr_null(m2w_state_name(-1));
	ck_assert_ptr_null(m2w_state_name(M2W_NSTATES));
	ck_assert_int_eq(m2w_state_parse("no-such-state"), -1);
	ck_assert_int_eq(m2w_state_parse(""), -1);
}
END_TEST

START_TEST(test_schema_mismatch)
{
	struct raw r;
	MDB_val k = { 6, (void *)"schema" }, v;
	unsigned char ver[4] = { 0, 0, 0, 99 };
	char eb[M2W_ERRBUF_SIZE] = "";
	const unsigned char *p;
	MDB_dbi meta;

	enq("price");
	tu_close(&E);
	Q = NULL;

	raw_begin(&r, E.path);
	meta = raw_dbi(&r, "meta");
	ck_assert_int_eq(mdb_get(r.txn, meta, &k, &v), 0);
	ck_assert_uint_eq(v.mv_size, 4);
	p = v.mv_data;
	ck_assert_uint_eq(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
				  ((uint32_t)p[2] << 8) | p[3],
			  M2W_SCHEMA_VERSION);
	v.mv_size = 4;
	v.mv_data = ver;
	ck_assert_int_eq(mdb_put(r.txn, meta, &k, &v, 0), 0);
	raw_end(&r);

	ck_assert_int_eq(tu_open_ex(&E, 0, 0, 0, eb), M2W_ESCHEMA);
	ck_assert_msg(strstr(eb, "99") != NULL,
		      "errbuf does not name version 99: \"%s\"", eb);
	/* create must not paper over it either */
	eb[0] = '\0';
	ck_assert_int_eq(tu_open_ex(&E, 0, 0, 1, eb), M2W_ESCHEMA);
	ck_assert_msg(eb[0] != '\0', "errbuf empty on ESCHEMA");
}
END_TEST

/* ============================================================= enqueue */

START_TEST(test_enqueue_one)
{
	char payload[] = "{\"a\":1}";
	struct m2w_new_task t = tu_task("price", payload);
	struct m2w_task *g;
	struct m2w_stats st;

	t.source = "file.csv:12";
	t.duplicate = -1;
	t.err = -1;
	CK_OK(m2w_queue_enqueue(Q, &t, 1, EB));
	ck_assert_uint_gt(t.id, 0);
	ck_assert_int_eq(t.duplicate, 0);
	ck_assert_int_eq(t.err, M2W_OK);
	payload[5] = '2'; /* the store copied it */

	g = tu_get(Q, t.id);
	ck_assert_str_eq(g->type, "price");
	ck_assert_str_eq(g->payload, "{\"a\":1}");
	ck_assert_uint_eq(g->payload_len, 7);
	ck_assert_str_eq(g->source, "file.csv:12");
	ck_assert_int_eq(g->state, M2W_READY);
	ck_assert_uint_eq(g->attempts, 0);
	ck_assert_uint_eq(g->max_attempts, 0);
	ck_assert_int_eq(g->supersede, 0);
	ck_assert_ptr_null(g->idem_key);
	ck_assert_ptr_null(g->group_key);
	ck_assert_int_eq(g->created_ms, TU_T0);
	ck_assert_int_eq(g->next_run_ms, TU_T0);
	ck_assert_int_eq(g->last_status, 0);
	m2w_task_free(g);

	tu_stats(Q, &st);
	ck_assert_uint_eq(st.count[M2W_READY], 1);
	ck_assert_uint_eq(find_type(&st, "price")->count[M2W_READY], 1);
	ck_assert_int_eq(st.oldest_ready_ms, TU_T0);
	m2w_stats_free(&st);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_enqueue_invalid_json)
{
	static const char *const bad[] = {
		"{not json", "", "{\"a\":1", "{\"a\":}", "[1,2,", "42",
		"\"text\"", "null", "true", "{\"a\":1} x", "{\"a\":1}{}",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct m2w_new_task t = tu_task("price", bad[i]);
		char eb[M2W_ERRBUF_SIZE] = "";
		int rc = m2w_queue_enqueue(Q, &t, 1, eb);

		ck_assert_msg(rc == M2W_EINVAL && t.err == M2W_EINVAL,
			      "payload '%s': rc %d, err %d (want EINVAL)",
			      bad[i], rc, t.err);
		ck_assert_msg(eb[0] != '\0', "payload '%s': errbuf empty",
			      bad[i]);
	}
	{
		struct m2w_new_task t = tu_task("price", NULL);

		CK_RC(M2W_EINVAL, m2w_queue_enqueue(Q, &t, 1, EB));
		ck_assert_int_eq(t.err, M2W_EINVAL);
	}
	ck_assert_uint_eq(tu_total(Q), 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_enqueue_valid_json_forms)
{
	static const char *const good[] = {
		"{}", "[]", "[1,2]", "{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}",
		" {\"a\":1} ", "[1,2]\n",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t id = tu_enqueue(Q, "price", good[i]);
		struct m2w_task *g = tu_get(Q, id);

		ck_assert_str_eq(g->payload, good[i]);
		m2w_task_free(g);
	}
	ck_assert_uint_eq(tu_count(Q, M2W_READY),
			  sizeof(good) / sizeof(good[0]));
}
END_TEST

START_TEST(test_enqueue_payload_len)
{
	struct m2w_new_task t = tu_task("price", "{\"a\":1}GARBAGE");
	struct m2w_task *g;

	t.payload_len = 7;
	tu_enqueue_task(Q, &t);
	g = tu_get(Q, t.id);
	ck_assert_uint_eq(g->payload_len, 7);
	ck_assert_str_eq(g->payload, "{\"a\":1}");
	m2w_task_free(g);

	/* the whole string is not JSON */
	t = tu_task("price", "{\"a\":1}GARBAGE");
	CK_RC(M2W_EINVAL, m2w_queue_enqueue(Q, &t, 1, EB));
	ck_assert_uint_eq(tu_total(Q), 1);
}
END_TEST

START_TEST(test_enqueue_payload_max)
{
	/* "[0,0,...,0,10]": exactly M2W_PAYLOAD_MAX bytes, then one more */
	size_t len = M2W_PAYLOAD_MAX, i;
	char *buf = malloc(len + 3);
	struct m2w_new_task t;
	struct m2w_task *g;

	ck_assert_ptr_nonnull(buf);
	buf[0] = '[';
	for (i = 1; i + 3 < len; i += 2) {
		buf[i] = '0';
		buf[i + 1] = ',';
	}
	ck_assert_uint_eq(i, len - 3);
	memcpy(buf + i, "10]", 4);
	ck_assert_uint_eq(strlen(buf), len);

	t = tu_task("big", buf);
	tu_enqueue_task(Q, &t);
	g = tu_get(Q, t.id);
	ck_assert_uint_eq(g->payload_len, len);
	ck_assert(memcmp(g->payload, buf, len) == 0);
	m2w_task_free(g);

	memcpy(buf + i, "100]", 5); /* one byte too many */
	ck_assert_uint_eq(strlen(buf), len + 1);
	t = tu_task("big", buf);
	CK_RC(M2W_EINVAL, m2w_queue_enqueue(Q, &t, 1, EB));
	ck_assert_int_eq(t.err, M2W_EINVAL);
	ck_assert_uint_eq(tu_total(Q), 1);
	free(buf);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_enqueue_batch_one_bad)
{
	struct m2w_new_task t[3];
	char eb[M2W_ERRBUF_SIZE] = "";
	int rc;

	t[0] = tu_task("price", "{\"a\":1}");
	t[0].idem_key = "batch-k1";
	t[1] = tu_task("price", "{broken");
	t[2] = tu_task("stock", "[1]");
	t[2].idem_key = "batch-k3";
	rc = m2w_queue_enqueue(Q, t, 3, eb);
	ck_assert_int_eq(rc, M2W_EINVAL);
	ck_assert_int_eq(t[0].err, M2W_OK);
	ck_assert_int_eq(t[1].err, M2W_EINVAL);
	ck_assert_int_eq(t[2].err, M2W_OK);
	ck_assert_msg(eb[0] != '\0', "errbuf empty");
	ck_assert_uint_eq(tu_total(Q), 0);

	/* a bad type name spoils a batch the same way */
	t[0] = tu_task("price", "{\"a\":1}");
	t[1] = tu_task("Bad Type", "{\"a\":1}");
	CK_RC(M2W_EINVAL, m2w_queue_enqueue(Q, t, 2, EB));
	ck_assert_int_eq(t[0].err, M2W_OK);
	ck_assert_int_eq(t[1].err, M2W_EINVAL);
	ck_assert_uint_eq(tu_total(Q), 0);

	/* nothing was written: the keys are still free */
	t[0] = tu_task("price", "{\"a\":1}");
	t[0].idem_key = "batch-k1";
	tu_enqueue_task(Q, &t[0]);
	ck_assert_int_eq(t[0].duplicate, 0);
	t[2] = tu_task("stock", "[1]");
	t[2].idem_key = "batch-k3";
	tu_enqueue_task(Q, &t[2]);
	ck_assert_int_eq(t[2].duplicate, 0);
	ck_assert_uint_eq(tu_total(Q), 2);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_enqueue_bad_type)
{
	char t33[34], t40[41], t32[33];
	const char *bad[] = {
		"Bad Type", "", "UPPER", "a/b", "a b", "caf\xc3\xa9", "tab\t",
		"a:b", t33, t40, NULL,
	};
	const char *good[] = { "a", "0", "price.v2-x_1", t32 };
	size_t i;

	memset(t33, 'a', 33);
	t33[33] = '\0';
	memset(t40, 'b', 40);
	t40[40] = '\0';
	memset(t32, 'c', 32);
	t32[32] = '\0';
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct m2w_new_task t = tu_task(bad[i], "{\"a\":1}");
		int rc = m2w_queue_enqueue(Q, &t, 1, NULL);

		ck_assert_msg(rc == M2W_EINVAL && t.err == M2W_EINVAL,
			      "type \"%s\": rc %d err %d, want EINVAL",
			      bad[i] ? bad[i] : "(null)", rc, t.err);
	}
	ck_assert_uint_eq(tu_total(Q), 0);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t id = enq(good[i]);
		struct m2w_task *g = tu_get(Q, id);

		ck_assert_str_eq(g->type, good[i]);
		m2w_task_free(g);
	}
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_idem_key_separate_calls)
{
	struct m2w_new_task a = tu_task("price", "{\"v\":1}");
	struct m2w_new_task b = tu_task("price", "{\"v\":2}");
	struct m2w_task *g;

	a.idem_key = "order-1";
	b.idem_key = "order-1";
	tu_enqueue_task(Q, &a);
	ck_assert_int_eq(a.duplicate, 0);
	tu_enqueue_task(Q, &b);
	ck_assert_int_eq(b.duplicate, 1);
	ck_assert_uint_eq(b.id, a.id);
	ck_assert_uint_eq(tu_total(Q), 1);
	g = tu_get(Q, a.id);
	ck_assert_str_eq(g->payload, "{\"v\":1}");
	ck_assert_str_eq(g->idem_key, "order-1");
	m2w_task_free(g);

	/* still a duplicate once the task is done */
	lease_expect(a.id, 0);
	b.duplicate = 0;
	b.id = 0;
	tu_enqueue_task(Q, &b);
	ck_assert_int_eq(b.duplicate, 1);
	ck_assert_uint_eq(b.id, a.id);
	ck_assert_uint_eq(tu_total(Q), 1);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_idem_key_same_batch)
{
	struct m2w_new_task t[3];

	t[0] = tu_task("price", "{\"v\":1}");
	t[0].idem_key = "dup-in-batch";
	t[1] = tu_task("price", "{\"v\":2}");
	t[1].idem_key = "dup-in-batch";
	t[2] = tu_task("price", "{\"v\":3}");
	t[2].idem_key = "other";
	CK_OK(m2w_queue_enqueue(Q, t, 3, EB));
	ck_assert_int_eq(t[0].err, M2W_OK);
	ck_assert_int_eq(t[1].err, M2W_OK);
	ck_assert_int_eq(t[0].duplicate, 0);
	ck_assert_int_eq(t[1].duplicate, 1);
	ck_assert_uint_eq(t[1].id, t[0].id);
	ck_assert_int_eq(t[2].duplicate, 0);
	ck_assert_uint_ne(t[2].id, t[0].id);
	ck_assert_uint_eq(tu_total(Q), 2);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_key_length_limits)
{
	char k400[M2W_KEY_MAX + 1], k401[M2W_KEY_MAX + 2];
	struct m2w_new_task t;
	struct m2w_task *g;

	memset(k400, 'k', M2W_KEY_MAX);
	k400[M2W_KEY_MAX] = '\0';
	memset(k401, 'k', M2W_KEY_MAX + 1);
	k401[M2W_KEY_MAX + 1] = '\0';

	t = tu_task("price", "{\"a\":1}");
	t.idem_key = k401;
	CK_RC(M2W_EINVAL, m2w_queue_enqueue(Q, &t, 1, EB));
	ck_assert_int_eq(t.err, M2W_EINVAL);
	t = tu_task("price", "{\"a\":1}");
	t.group_key = k401;
	CK_RC(M2W_EINVAL, m2w_queue_enqueue(Q, &t, 1, EB));
	ck_assert_int_eq(t.err, M2W_EINVAL);
	ck_assert_uint_eq(tu_total(Q), 0);

	t = tu_task("price", "{\"a\":1}");
	t.idem_key = k400;
	t.group_key = k400;
	tu_enqueue_task(Q, &t);
	g = tu_get(Q, t.id);
	ck_assert_str_eq(g->idem_key, k400);
	ck_assert_str_eq(g->group_key, k400);
	m2w_task_free(g);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_not_before_scheduled)
{
	struct m2w_new_task t = tu_task("price", "{\"a\":1}");
	struct m2w_task *g;
	uint64_t now_id;

	t.not_before_ms = TU_T0 + 5000;
	tu_enqueue_task(Q, &t);
	g = tu_get(Q, t.id);
	ck_assert_int_eq(g->state, M2W_SCHEDULED);
	ck_assert_int_eq(g->next_run_ms, TU_T0 + 5000);
	m2w_task_free(g);
	ck_assert_uint_eq(tu_count(Q, M2W_SCHEDULED), 1);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 0);

	now_id = enq("price");
	lease_expect(now_id, 0); /* only the due one */
	ck_assert_uint_eq(lease_count(10), 0);
	advance(4999);
	ck_assert_uint_eq(lease_count(10), 0);
	ck_assert_state(Q, t.id, M2W_SCHEDULED);
	advance(1);
	ck_assert_state(Q, t.id, M2W_READY);
	lease_expect(t.id, 0);

	/* not_before in the past: ready at once */
	t = tu_task("price", "{\"a\":1}");
	t.not_before_ms = NOW - 1000;
	tu_enqueue_task(Q, &t);
	ck_assert_state(Q, t.id, M2W_READY);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_max_attempts_stored)
{
	uint64_t a = enq_max("price", 3), b = enq("price");
	struct m2w_task *g;

	g = tu_get(Q, a);
	ck_assert_uint_eq(g->max_attempts, 3);
	m2w_task_free(g);
	g = tu_get(Q, b);
	ck_assert_uint_eq(g->max_attempts, 0);
	m2w_task_free(g);
}
END_TEST

/* =============================================================== lease */

START_TEST(test_lease_basic)
{
	uint64_t ids[5], toks[5], seen[5];
	struct m2w_task **ts;
	size_t n, i, nseen = 0;

	for (i = 0; i < 5; i++)
		ids[i] = enq("price");
	ts = tu_lease(Q, 3, 30000, &n);
	ck_assert_uint_eq(n, 3);
	for (i = 0; i < n; i++) {
		struct m2w_task *g;

		ck_assert_int_eq(ts[i]->state, M2W_LEASED);
		ck_assert_uint_eq(ts[i]->attempts, 1);
		ck_assert_uint_ne(ts[i]->lease_token, 0);
		ck_assert_int_eq(ts[i]->lease_expiry_ms, TU_T0 + 30000);
		ck_assert_str_eq(ts[i]->payload, "{\"a\":1}");
		ck_assert(has_id(ids, 5, ts[i]->id));
		toks[nseen] = ts[i]->lease_token;
		seen[nseen++] = ts[i]->id;
		g = tu_get(Q, ts[i]->id);
		ck_assert_int_eq(g->state, M2W_LEASED);
		ck_assert_uint_eq(g->lease_token, ts[i]->lease_token);
		ck_assert_int_eq(g->lease_expiry_ms, TU_T0 + 30000);
		ck_assert_uint_eq(g->attempts, 1);
		m2w_task_free(g);
	}
	tu_tasks_free(ts, n);

	ts = tu_lease(Q, 10, 30000, &n);
	ck_assert_uint_eq(n, 2);
	for (i = 0; i < n; i++) {
		toks[nseen] = ts[i]->lease_token;
		seen[nseen++] = ts[i]->id;
	}
	tu_tasks_free(ts, n);
	assert_distinct(seen, 5);
	assert_distinct(toks, 5);
	ck_assert_uint_ne(toks[0], 0);

	ts = tu_lease(Q, 10, 30000, &n);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(ts);
	ck_assert_uint_eq(tu_count(Q, M2W_LEASED), 5);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_lease_default_duration)
{
	uint64_t id = enq("price");
	struct m2w_task *t = tu_lease1(Q, 0);

	ck_assert_uint_eq(t->id, id);
	ck_assert_int_eq(t->lease_expiry_ms, TU_T0 + 60000);
	m2w_task_free(t);
}
END_TEST

START_TEST(test_lease_fresh_tokens)
{
	/* a re-lease after expiry gets a new token */
	uint64_t id = enq("price"), t1, t2;

	t1 = lease_expect(id, 1000);
	advance(1001);
	t2 = lease_expect(id, 1000);
	ck_assert_uint_ne(t1, t2);
	ck_assert_uint_ne(t2, 0);
	ck_assert_uint_eq(TASK(id, attempts), 2);
}
END_TEST

START_TEST(test_lease_empty_store)
{
	struct m2w_task **ts = NULL;
	size_t n = 99;
	struct m2w_lease_opts o;

	memset(&o, 0, sizeof(o));
	o.max = 10;
	CK_OK(m2w_queue_lease(Q, &o, &ts, &n, EB));
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(ts);
}
END_TEST

START_TEST(test_lease_max_zero)
{
	struct m2w_task **ts = NULL;
	size_t n = 0;
	struct m2w_lease_opts o;

	enq("price");
	memset(&o, 0, sizeof(o));
	o.max = 0;
	CK_RC(M2W_EINVAL, m2w_queue_lease(Q, &o, &ts, &n, EB));
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 1);
}
END_TEST

START_TEST(test_lease_skips_paused_type)
{
	uint64_t p1 = enq("price"), s1 = enq("stock"), p2 = enq("price"),
		 s2 = enq("stock");
	struct m2w_task **ts;
	struct m2w_stats st;
	size_t n, i;

	CK_OK(m2w_queue_pause(Q, "price", 1, EB));
	tu_stats(Q, &st);
	ck_assert_int_eq(find_type(&st, "price")->paused, 1);
	ck_assert_int_eq(find_type(&st, "stock")->paused, 0);
	ck_assert_int_eq(st.paused_all, 0);
	m2w_stats_free(&st);

	ts = tu_lease(Q, 10, 0, &n);
	ck_assert_uint_eq(n, 2);
	for (i = 0; i < n; i++) {
		ck_assert_str_eq(ts[i]->type, "stock");
		ck_assert(ts[i]->id == s1 || ts[i]->id == s2);
	}
	tu_tasks_free(ts, n);
	ck_assert_uint_eq(lease_count(10), 0);

	/* the pause is persisted */
	reopen();
	ck_assert_uint_eq(lease_count(10), 0);

	CK_OK(m2w_queue_pause(Q, "price", 0, EB));
	ts = tu_lease(Q, 10, 0, &n);
	ck_assert_uint_eq(n, 2);
	for (i = 0; i < n; i++)
		ck_assert(ts[i]->id == p1 || ts[i]->id == p2);
	tu_tasks_free(ts, n);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_lease_pause_all)
{
	struct m2w_stats st;

	enq("price");
	enq("stock");
	CK_OK(m2w_queue_pause(Q, NULL, 1, EB));
	ck_assert_uint_eq(lease_count(10), 0);
	/* a type first seen after the pause is paused too */
	enq("newtype");
	ck_assert_uint_eq(lease_count(10), 0);
	tu_stats(Q, &st);
	ck_assert_int_eq(st.paused_all, 1);
	m2w_stats_free(&st);

	CK_OK(m2w_queue_pause(Q, NULL, 0, EB));
	tu_stats(Q, &st);
	ck_assert_int_eq(st.paused_all, 0);
	m2w_stats_free(&st);
	ck_assert_uint_eq(lease_count(10), 3);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_lease_types_filter)
{
	const char *only_stock[] = { "stock" };
	const char *a_and_c[] = { "a", "c" };
	struct m2w_task **ts;
	size_t n, i;

	enq("price");
	enq("stock");
	enq("stock");
	enq("a");
	enq("b");
	enq("c");

	ts = tu_lease_types(Q, 10, 0, only_stock, 1, &n);
	ck_assert_uint_eq(n, 2);
	for (i = 0; i < n; i++)
		ck_assert_str_eq(ts[i]->type, "stock");
	tu_tasks_free(ts, n);

	ts = tu_lease_types(Q, 10, 0, a_and_c, 2, &n);
	ck_assert_uint_eq(n, 2);
	for (i = 0; i < n; i++)
		ck_assert(strcmp(ts[i]->type, "a") == 0 ||
			  strcmp(ts[i]->type, "c") == 0);
	tu_tasks_free(ts, n);

	ts = tu_lease_types(Q, 10, 0, only_stock, 1, &n);
	ck_assert_uint_eq(n, 0);
	tu_tasks_free(ts, n);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 2); /* price and b */
}
END_TEST

START_TEST(test_lease_fairness)
{
	struct m2w_task **ts;
	size_t n, i, na = 0, nb = 0;

	for (i = 0; i < 50; i++)
		enq("a");
	for (i = 0; i < 50; i++)
		enq("b");
	ts = tu_lease(Q, 10, 0, &n);
	ck_assert_uint_eq(n, 10);
	for (i = 0; i < n; i++) {
		if (strcmp(ts[i]->type, "a") == 0)
			na++;
		else if (strcmp(ts[i]->type, "b") == 0)
			nb++;
	}
	tu_tasks_free(ts, n);
	ck_assert_msg(na > 0 && nb > 0,
		      "lease of 10 gave %zu of type a and %zu of type b", na,
		      nb);
}
END_TEST

/* ================================================================= ack */

START_TEST(test_ack_done)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 0);
	struct m2w_task *g;

	advance(250);
	CK_OK(m2w_task_ack(Q, id, tok, 250, EB));
	g = tu_get(Q, id);
	ck_assert_int_eq(g->state, M2W_DONE);
	ck_assert_uint_eq(g->attempts, 1);
	m2w_task_free(g);
	ck_assert_uint_eq(tu_count(Q, M2W_DONE), 1);
	ck_assert_uint_eq(tu_count(Q, M2W_LEASED), 0);
	ck_assert_uint_eq(lease_count(10), 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_ack_twice_stale)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 0);

	CK_OK(m2w_task_ack(Q, id, tok, 0, EB));
	CK_RC(M2W_ESTALE, m2w_task_ack(Q, id, tok, 0, EB));
	ck_assert_state(Q, id, M2W_DONE);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_ack_wrong_token)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 0);

	CK_RC(M2W_ESTALE, m2w_task_ack(Q, id, tok + 1, 0, EB));
	CK_RC(M2W_ESTALE, m2w_task_ack(Q, id, 0, 0, EB));
	ck_assert_state(Q, id, M2W_LEASED);
	CK_OK(m2w_task_ack(Q, id, tok, 0, EB));
	ck_assert_state(Q, id, M2W_DONE);
}
END_TEST

START_TEST(test_ack_not_leased)
{
	uint64_t id = enq("price");

	CK_RC(M2W_ESTALE, m2w_task_ack(Q, id, 12345, 0, EB));
	ck_assert_state(Q, id, M2W_READY);
}
END_TEST

START_TEST(test_ack_unknown_id)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 0);

	CK_RC(M2W_ENOTFOUND, m2w_task_ack(Q, id + 1000, tok, 0, EB));
	CK_RC(M2W_ENOTFOUND, m2w_task_ack(Q, 0, tok, 0, EB));
	ck_assert_state(Q, id, M2W_LEASED);
}
END_TEST

START_TEST(test_ack_after_reap_stale)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 1000);
	size_t reaped = 99;

	advance(1001);
	CK_OK(m2w_queue_reap(Q, &reaped, EB));
	ck_assert_uint_eq(reaped, 1);
	ck_assert_state(Q, id, M2W_READY);
	CK_RC(M2W_ESTALE, m2w_task_ack(Q, id, tok, 0, EB));
	ck_assert_state(Q, id, M2W_READY);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_ack_old_token_after_release)
{
	uint64_t id = enq("price"), t1, t2;
	size_t reaped;

	t1 = lease_expect(id, 1000);
	advance(1001);
	CK_OK(m2w_queue_reap(Q, &reaped, EB));
	t2 = lease_expect(id, 1000);
	ck_assert_uint_ne(t1, t2);
	CK_RC(M2W_ESTALE, m2w_task_ack(Q, id, t1, 0, EB));
	ck_assert_state(Q, id, M2W_LEASED);
	CK_OK(m2w_task_ack(Q, id, t2, 0, EB));
	ck_assert_state(Q, id, M2W_DONE);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_settle_batch_independent)
{
	uint64_t a = enq("price"), b = enq("price"), c = enq("price");
	struct m2w_task **ts;
	struct m2w_settle s[4];
	uint64_t tok[3] = { 0, 0, 0 };
	size_t n, i;

	ts = tu_lease(Q, 3, 0, &n);
	ck_assert_uint_eq(n, 3);
	for (i = 0; i < n; i++)
		tok[ts[i]->id == a ? 0 : ts[i]->id == b ? 1 : 2] =
			ts[i]->lease_token;
	tu_tasks_free(ts, n);

	memset(s, 0, sizeof(s));
	s[0].id = a; /* fine */
	s[0].token = tok[0];
	s[0].kind = M2W_ACK;
	s[1].id = b; /* stale token */
	s[1].token = tok[1] ^ 0x5555;
	s[1].kind = M2W_ACK;
	s[2].id = c + 100; /* unknown */
	s[2].token = tok[2];
	s[2].kind = M2W_ACK;
	s[3].id = c; /* fine, permanent failure */
	s[3].token = tok[2];
	s[3].kind = M2W_FAIL;
	s[3].cls = M2W_CLASS_PERMANENT;
	s[3].http_status = 400;
	s[3].message = "bad request";
	for (i = 0; i < 4; i++)
		s[i].err = -1;
	CK_OK(m2w_queue_settle(Q, s, 4, EB));
	ck_assert_int_eq(s[0].err, M2W_OK);
	ck_assert_int_eq(s[0].state, M2W_DONE);
	ck_assert_int_eq(s[1].err, M2W_ESTALE);
	ck_assert_int_eq(s[2].err, M2W_ENOTFOUND);
	ck_assert_int_eq(s[3].err, M2W_OK);
	ck_assert_int_eq(s[3].state, M2W_DEAD);
	ck_assert_state(Q, a, M2W_DONE);
	ck_assert_state(Q, b, M2W_LEASED);
	ck_assert_state(Q, c, M2W_DEAD);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_settle_errors_other_kinds)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 0);

	CK_RC(M2W_ESTALE, m2w_task_fail(Q, id, tok + 1, M2W_CLASS_TRANSIENT,
					"x", 500, 0, EB));
	CK_RC(M2W_ESTALE, m2w_task_snooze(Q, id, tok + 1, 1000, EB));
	CK_RC(M2W_ESTALE, m2w_task_extend(Q, id, tok + 1, 1000, EB));
	CK_RC(M2W_ESTALE, m2w_task_release(Q, id, tok + 1, EB));
	CK_RC(M2W_ENOTFOUND, m2w_task_fail(Q, id + 9, tok,
					   M2W_CLASS_TRANSIENT, "x", 500, 0,
					   EB));
	CK_RC(M2W_ENOTFOUND, m2w_task_snooze(Q, id + 9, tok, 1000, EB));
	CK_RC(M2W_ENOTFOUND, m2w_task_extend(Q, id + 9, tok, 1000, EB));
	CK_RC(M2W_ENOTFOUND, m2w_task_release(Q, id + 9, tok, EB));
	ck_assert_state(Q, id, M2W_LEASED);
	ck_assert_uint_eq(TASK(id, lease_expiry_ms), TU_T0 + 60000);
	ck_assert_store_ok(Q);
}
END_TEST

/* ================================================================ fail */

START_TEST(test_fail_transient_backoff)
{
	uint64_t id;
	unsigned k;

	fast_policy("price");
	id = enq("price");
	for (k = 1; k <= 7; k++) {
		int64_t d = (int64_t)1000 << (k - 1), now;
		struct m2w_task *g;
		uint64_t tok;

		if (d > 8000)
			d = 8000;
		tok = lease_expect(id, 0);
		ck_assert_uint_eq(TASK(id, attempts), k);
		advance(100);
		now = NOW;
		CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_TRANSIENT, "boom",
				    503, 0, EB));
		g = tu_get(Q, id);
		ck_assert_int_eq(g->state, M2W_SCHEDULED);
		ck_assert_msg(g->next_run_ms >= now + d * 80 / 100 &&
				      g->next_run_ms <= now + d,
			      "failure %u: next_run now+%lld, expected in "
			      "[now+%lld, now+%lld]",
			      k, (long long)(g->next_run_ms - now),
			      (long long)(d * 80 / 100), (long long)d);
		ck_assert_str_eq(g->last_error, "boom");
		ck_assert_int_eq(g->last_status, 503);
		ck_assert_uint_eq(g->attempts, k);
		/* not leasable before next_run, leasable at it */
		E.clock.now = g->next_run_ms - 1;
		ck_assert_uint_eq(lease_count(10), 0);
		E.clock.now = g->next_run_ms;
		m2w_task_free(g);
	}
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_fail_retry_after)
{
	uint64_t id, tok;
	struct m2w_task *g;

	fast_policy("price");
	id = enq("price");
	tok = lease_expect(id, 0);
	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_TRANSIENT, "slow down", 429,
			    7000, EB));
	g = tu_get(Q, id);
	ck_assert_int_eq(g->state, M2W_SCHEDULED);
	ck_assert_int_eq(g->next_run_ms, TU_T0 + 7000);
	ck_assert_int_eq(g->last_status, 429);
	m2w_task_free(g);

	/* Retry-After beyond the cap still wins */
	E.clock.now = TU_T0 + 7000;
	tok = lease_expect(id, 0);
	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_TRANSIENT, "slow down", 503,
			    20000, EB));
	g = tu_get(Q, id);
	ck_assert_int_eq(g->next_run_ms, TU_T0 + 27000);
	m2w_task_free(g);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_fail_permanent)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 0);
	struct m2w_task *g;

	advance(10);
	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_PERMANENT,
			    "The SKU \"X-1\" was not found", 404, 0, EB));
	g = tu_get(Q, id);
	ck_assert_int_eq(g->state, M2W_DEAD);
	ck_assert_str_eq(g->last_error, "The SKU \"X-1\" was not found");
	ck_assert_int_eq(g->last_status, 404);
	ck_assert_uint_eq(g->attempts, 1);
	m2w_task_free(g);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 1);
	ck_assert_uint_eq(tu_count(Q, M2W_LEASED), 0);
	advance(3600000);
	ck_assert_uint_eq(lease_count(10), 0);
	CK_RC(M2W_ESTALE, m2w_task_ack(Q, id, tok, 0, EB));
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_fail_settle_outputs_match_get)
{
	static const int cls[] = {
		M2W_CLASS_TRANSIENT, M2W_CLASS_AUTH, M2W_CLASS_TRANSIENT,
		M2W_CLASS_PERMANENT,
	};
	static const int64_t retry_after[] = { 0, 0, 3000, 0 };
	uint64_t id;
	size_t i;

	fast_policy("price");
	id = enq("price");
	for (i = 0; i < 4; i++) {
		struct m2w_settle s;
		struct m2w_task *g;

		memset(&s, 0, sizeof(s));
		s.id = id;
		s.token = lease_expect(id, 0);
		s.kind = M2W_FAIL;
		s.cls = cls[i];
		s.http_status = 500 + (int)i;
		s.message = "failed";
		s.retry_after_ms = retry_after[i];
		s.duration_ms = 10;
		s.err = -1;
		s.state = -1;
		CK_OK(m2w_queue_settle(Q, &s, 1, EB));
		ck_assert_int_eq(s.err, M2W_OK);
		g = tu_get(Q, id);
		ck_assert_msg(s.state == g->state,
			      "settle %zu: state %d (%s), get says %d (%s)", i,
			      s.state, tu_sname(s.state), g->state,
			      tu_sname(g->state));
		if (cls[i] != M2W_CLASS_PERMANENT) {
			ck_assert_int_eq(g->state, M2W_SCHEDULED);
			ck_assert_int_eq(s.next_run_ms, g->next_run_ms);
			ck_assert_int_gt(s.next_run_ms, NOW);
			if (retry_after[i])
				ck_assert_int_eq(s.next_run_ms,
						 NOW + retry_after[i]);
			E.clock.now = g->next_run_ms;
		} else {
			ck_assert_int_eq(g->state, M2W_DEAD);
		}
		m2w_task_free(g);
	}
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_fail_attempts_used_up)
{
	uint64_t id, tok;
	struct m2w_task *g;

	fast_policy("price");
	id = enq_max("price", 2);
	tok = lease_expect(id, 0);
	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_TRANSIENT, "first", 502, 0,
			    EB));
	ck_assert_state(Q, id, M2W_SCHEDULED);
	advance(1000);
	tok = lease_expect(id, 0);
	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_TRANSIENT, "second", 504, 0,
			    EB));
	g = tu_get(Q, id);
	ck_assert_int_eq(g->state, M2W_DEAD);
	ck_assert_uint_eq(g->attempts, 2);
	ck_assert_str_eq(g->last_error, "second");
	ck_assert_int_eq(g->last_status, 504);
	m2w_task_free(g);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_fail_policy_max_attempts)
{
	/* no per-task max: the type's policy (3) decides */
	uint64_t id;
	int i;

	set_policy("price", 3, 1000, 8000, 20);
	id = enq("price");
	for (i = 1; i <= 3; i++) {
		uint64_t tok = lease_expect(id, 0);

		CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_TRANSIENT, "again",
				    500, 0, EB));
		ck_assert_state(Q, id, i < 3 ? M2W_SCHEDULED : M2W_DEAD);
		advance(8000);
	}
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_fail_auth_retried)
{
	uint64_t id, tok;
	struct m2w_attempt *h = NULL;
	size_t n = 0;

	fast_policy("price");
	id = enq("price");
	tok = lease_expect(id, 0);
	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_AUTH, "token expired", 401,
			    0, EB));
	ck_assert_state(Q, id, M2W_SCHEDULED);
	CK_OK(m2w_queue_history(Q, id, &h, &n, EB));
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(h[0].outcome, M2W_CLASS_AUTH);
	ck_assert_int_eq(h[0].http_status, 401);
	free(h);
}
END_TEST

START_TEST(test_fail_message_cut)
{
	char *msg = malloc(3001);
	uint64_t id, tok;
	struct m2w_task *g;
	struct m2w_attempt *h = NULL;
	size_t n = 0, len;

	ck_assert_ptr_nonnull(msg);
	memset(msg, 'x', 3000);
	msg[3000] = '\0';
	id = enq("price");
	tok = lease_expect(id, 0);
	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_PERMANENT, msg, 500, 0, EB));
	g = tu_get(Q, id);
	len = strlen(g->last_error);
	ck_assert_msg(len > 0 && len <= M2W_MESSAGE_MAX,
		      "stored error of %zu bytes", len);
	ck_assert(strncmp(g->last_error, "xxxxxxxxxx", 10) == 0);
	m2w_task_free(g);
	CK_OK(m2w_queue_history(Q, id, &h, &n, EB));
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_le(strlen(h[0].message), M2W_MESSAGE_MAX);
	free(h);
	free(msg);
	ck_assert_store_ok(Q);
}
END_TEST

/* =================================================== snooze, release, extend */

START_TEST(test_snooze)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 0);
	struct m2w_task *g;

	ck_assert_uint_eq(TASK(id, attempts), 1);
	CK_OK(m2w_task_snooze(Q, id, tok, 5000, EB));
	g = tu_get(Q, id);
	ck_assert_int_eq(g->state, M2W_SCHEDULED);
	ck_assert_int_eq(g->next_run_ms, TU_T0 + 5000);
	ck_assert_uint_eq(g->attempts, 0);
	m2w_task_free(g);
	CK_RC(M2W_ESTALE, m2w_task_ack(Q, id, tok, 0, EB));
	ck_assert_uint_eq(lease_count(10), 0);
	advance(5000);
	lease_expect(id, 0);
	ck_assert_uint_eq(TASK(id, attempts), 1);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_snooze_does_not_use_attempts)
{
	/* max_attempts 1: snoozing many times never kills the task */
	uint64_t id = enq_max("price", 1), tok;
	int i;

	for (i = 0; i < 5; i++) {
		tok = lease_expect(id, 0);
		CK_OK(m2w_task_snooze(Q, id, tok, 100, EB));
		advance(100);
	}
	tok = lease_expect(id, 0);
	CK_OK(m2w_task_ack(Q, id, tok, 0, EB));
	ck_assert_state(Q, id, M2W_DONE);
}
END_TEST

START_TEST(test_release)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 0);
	struct m2w_task *g;

	advance(300);
	CK_OK(m2w_task_release(Q, id, tok, EB));
	g = tu_get(Q, id);
	ck_assert_int_eq(g->state, M2W_READY);
	ck_assert_int_eq(g->next_run_ms, TU_T0 + 300);
	ck_assert_uint_eq(g->attempts, 0);
	m2w_task_free(g);
	CK_RC(M2W_ESTALE, m2w_task_ack(Q, id, tok, 0, EB));
	lease_expect(id, 0);
	ck_assert_uint_eq(TASK(id, attempts), 1);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_extend)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 10000);
	struct m2w_task *g;
	size_t reaped = 99;

	advance(5000);
	CK_OK(m2w_task_extend(Q, id, tok, 20000, EB));
	g = tu_get(Q, id);
	ck_assert_int_eq(g->state, M2W_LEASED);
	ck_assert_int_eq(g->lease_expiry_ms, TU_T0 + 25000);
	ck_assert_uint_eq(g->lease_token, tok);
	ck_assert_uint_eq(g->attempts, 1);
	m2w_task_free(g);

	E.clock.now = TU_T0 + 15000; /* past the first expiry */
	CK_OK(m2w_queue_reap(Q, &reaped, EB));
	ck_assert_uint_eq(reaped, 0);
	ck_assert_state(Q, id, M2W_LEASED);
	ck_assert_uint_eq(lease_count(10), 0);

	/* 0 = 60 s */
	CK_OK(m2w_task_extend(Q, id, tok, 0, EB));
	ck_assert_int_eq(TASK(id, lease_expiry_ms), TU_T0 + 75000);
	E.clock.now = TU_T0 + 74000;
	CK_OK(m2w_queue_reap(Q, &reaped, EB));
	ck_assert_uint_eq(reaped, 0);
	CK_OK(m2w_task_ack(Q, id, tok, 0, EB));
	ck_assert_state(Q, id, M2W_DONE);
	ck_assert_store_ok(Q);
}
END_TEST

/* ================================================================ reap */

START_TEST(test_reap_to_ready)
{
	uint64_t id = enq("price");
	struct m2w_attempt *h = NULL;
	struct m2w_task *g;
	size_t reaped = 99, n = 0;

	lease_expect(id, 1000);
	advance(999);
	CK_OK(m2w_queue_reap(Q, &reaped, EB));
	ck_assert_uint_eq(reaped, 0);
	advance(2);
	CK_OK(m2w_queue_reap(Q, &reaped, EB));
	ck_assert_uint_eq(reaped, 1);
	g = tu_get(Q, id);
	ck_assert_int_eq(g->state, M2W_READY);
	ck_assert_uint_eq(g->attempts, 1);
	m2w_task_free(g);
	CK_OK(m2w_queue_reap(Q, NULL, EB));
	CK_OK(m2w_queue_history(Q, id, &h, &n, EB));
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(h[0].outcome, M2W_OUTCOME_EXPIRED);
	free(h);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 1);
	ck_assert_uint_eq(tu_count(Q, M2W_LEASED), 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_reap_exhausted_dead)
{
	uint64_t id = enq_max("price", 1);
	struct m2w_task *g;
	size_t reaped = 0;

	lease_expect(id, 1000);
	advance(1001);
	CK_OK(m2w_queue_reap(Q, &reaped, EB));
	ck_assert_uint_eq(reaped, 1);
	g = tu_get(Q, id);
	ck_assert_int_eq(g->state, M2W_DEAD);
	ck_assert_msg(g->last_error && (strcasestr(g->last_error, "lease") ||
					strcasestr(g->last_error, "expir")),
		      "last_error \"%s\" does not mention the lease",
		      g->last_error ? g->last_error : "(null)");
	m2w_task_free(g);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 1);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_lease_reaps_expired_first)
{
	uint64_t id = enq("price"), t1, t2;

	t1 = lease_expect(id, 1000);
	advance(2000);
	t2 = lease_expect(id, 1000);
	ck_assert_uint_ne(t1, t2);
	ck_assert_uint_eq(TASK(id, attempts), 2);
	ck_assert_store_ok(Q);
}
END_TEST

/* ============================================================= history */

START_TEST(test_history_order)
{
	struct m2w_settle s;
	struct m2w_attempt *h = NULL;
	uint64_t id, tok;
	int64_t t_fail1, t_fail2, t_ack;
	size_t n = 0;

	fast_policy("price");
	id = enq("price");

	memset(&s, 0, sizeof(s));
	s.id = id;
	s.token = lease_expect(id, 0);
	s.kind = M2W_FAIL;
	s.cls = M2W_CLASS_TRANSIENT;
	s.http_status = 500;
	s.message = "e1";
	s.duration_ms = 250;
	advance(250);
	t_fail1 = NOW;
	CK_OK(m2w_queue_settle(Q, &s, 1, EB));
	ck_assert_int_eq(s.err, M2W_OK);

	E.clock.now = TASK(id, next_run_ms);
	tok = lease_expect(id, 0);
	advance(10);
	t_fail2 = NOW;
	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_TRANSIENT, "e2", 502, 0,
			    EB));

	E.clock.now = TASK(id, next_run_ms);
	tok = lease_expect(id, 0);
	advance(123);
	t_ack = NOW;
	CK_OK(m2w_task_ack(Q, id, tok, 123, EB));

	CK_OK(m2w_queue_history(Q, id, &h, &n, EB));
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(h[0].attempt, 1);
	ck_assert_uint_eq(h[1].attempt, 2);
	ck_assert_uint_eq(h[2].attempt, 3);
	ck_assert_int_eq(h[0].outcome, M2W_CLASS_TRANSIENT);
	ck_assert_int_eq(h[1].outcome, M2W_CLASS_TRANSIENT);
	ck_assert_int_eq(h[2].outcome, M2W_CLASS_OK);
	ck_assert_int_eq(h[0].http_status, 500);
	ck_assert_int_eq(h[1].http_status, 502);
	ck_assert_str_eq(h[0].message, "e1");
	ck_assert_str_eq(h[1].message, "e2");
	ck_assert_int_eq(h[0].duration_ms, 250);
	ck_assert_int_eq(h[2].duration_ms, 123);
	ck_assert_int_eq(h[0].at_ms, t_fail1);
	ck_assert_int_eq(h[1].at_ms, t_fail2);
	ck_assert_int_eq(h[2].at_ms, t_ack);
	free(h);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_history_capped)
{
	struct m2w_attempt *h = NULL;
	uint64_t id;
	size_t n = 0, i;
	char msg[16];
	int k;

	set_policy("price", 100, 1, 1, 0);
	id = enq_max("price", 100);
	for (k = 1; k <= M2W_HISTORY_MAX + 4; k++) {
		uint64_t tok = lease_expect(id, 0);

		snprintf(msg, sizeof(msg), "f%d", k);
		CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_TRANSIENT, msg, 500,
				    1, EB));
		advance(1);
	}
	CK_OK(m2w_queue_history(Q, id, &h, &n, EB));
	ck_assert_uint_eq(n, M2W_HISTORY_MAX);
	for (i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "f%zu", i + 5);
		ck_assert_uint_eq(h[i].attempt, i + 5);
		ck_assert_str_eq(h[i].message, msg);
	}
	free(h);
	ck_assert_store_ok(Q);
}
END_TEST

/* ============================================================== groups */

START_TEST(test_group_fifo)
{
	uint64_t a = enq_group("stock", "stock:SKU-1", 0);
	uint64_t b = enq_group("stock", "stock:SKU-1", 0);
	struct m2w_task *g;
	uint64_t tok;

	ck_assert_state(Q, a, M2W_READY);
	ck_assert_state(Q, b, M2W_WAITING);
	g = tu_get(Q, b);
	ck_assert_str_eq(g->group_key, "stock:SKU-1");
	m2w_task_free(g);
	ck_assert_uint_eq(tu_count(Q, M2W_WAITING), 1);

	tok = lease_expect(a, 0);
	ck_assert_uint_eq(lease_count(10), 0);
	ck_assert_state(Q, b, M2W_WAITING);
	CK_OK(m2w_task_ack(Q, a, tok, 0, EB));
	ck_assert_state(Q, b, M2W_READY);
	tok = lease_expect(b, 0);
	CK_OK(m2w_task_ack(Q, b, tok, 0, EB));
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_fifo_on_max10)
{
	uint64_t a = enq_group("stock", "g", 0);
	struct m2w_task **ts;
	size_t n;

	enq_group("stock", "g", 0);
	ts = tu_lease(Q, 10, 0, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ts[0]->id, a);
	tu_tasks_free(ts, n);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_independent)
{
	uint64_t a = enq_group("stock", "g1", 0), b = enq_group("stock", "g2", 0);
	uint64_t c = enq_group("stock", "g1", 0), d = enq("stock");
	struct m2w_task **ts;
	size_t n, i;
	uint64_t got[4];

	ts = tu_lease(Q, 10, 0, &n);
	ck_assert_uint_eq(n, 3);
	for (i = 0; i < n; i++)
		got[i] = ts[i]->id;
	tu_tasks_free(ts, n);
	ck_assert(has_id(got, 3, a) && has_id(got, 3, b) && has_id(got, 3, d));
	ck_assert_state(Q, c, M2W_WAITING);
}
END_TEST

START_TEST(test_group_retry_keeps_order)
{
	/* a head that fails transiently stays head: the next one waits */
	uint64_t a, b, tok;

	fast_policy("stock");
	a = enq_group("stock", "g", 0);
	b = enq_group("stock", "g", 0);
	tok = lease_expect(a, 0);
	CK_OK(m2w_task_fail(Q, a, tok, M2W_CLASS_TRANSIENT, "busy", 503, 0,
			    EB));
	ck_assert_state(Q, a, M2W_SCHEDULED);
	ck_assert_state(Q, b, M2W_WAITING);
	ck_assert_uint_eq(lease_count(10), 0);
	advance(1000);
	tok = lease_expect(a, 0);
	CK_OK(m2w_task_ack(Q, a, tok, 0, EB));
	lease_expect(b, 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_exclusive_no_head_of_line)
{
	/* an exclusive group (tracking's orders): a head in backoff steps
	 * aside, the others run; never two at once; the task due first is
	 * promoted, the one in backoff when its time comes */
	uint64_t a, b, c, tok, tb;

	set_policy("tracking", 10, 60000, 60000, 0);
	a = enq_group("tracking", "order:1", M2W_GROUP_EXCLUSIVE);
	b = enq_group("tracking", "order:1", M2W_GROUP_EXCLUSIVE);
	c = enq_group("tracking", "order:1", M2W_GROUP_EXCLUSIVE);
	ck_assert_int_eq(TASK(a, supersede), M2W_GROUP_EXCLUSIVE);
	tok = lease_expect(a, 0);
	ck_assert_uint_eq(lease_count(10), 0);          /* one at a time */
	CK_OK(m2w_task_fail(Q, a, tok, M2W_CLASS_TRANSIENT, "busy", 503, 0,
			    EB));
	ck_assert_state(Q, a, M2W_WAITING);
	ck_assert_int_eq(TASK(a, next_run_ms), E.clock.now + 60000);
	ck_assert_state(Q, b, M2W_READY);
	ck_assert_state(Q, c, M2W_WAITING);
	ck_assert_store_ok(Q);
	tb = lease_expect(b, 0);
	ck_assert_uint_eq(lease_count(10), 0);          /* still one */
	CK_OK(m2w_task_ack(Q, b, tb, 0, EB));
	/* c is due now, a in a minute: c first */
	ck_assert_state(Q, c, M2W_READY);
	ck_assert_state(Q, a, M2W_WAITING);
	tok = lease_expect(c, 0);
	CK_OK(m2w_task_ack(Q, c, tok, 0, EB));
	ck_assert_state(Q, a, M2W_SCHEDULED);
	ck_assert_uint_eq(lease_count(10), 0);
	advance(60000);
	tok = lease_expect(a, 0);
	/* alone in its group: a failure keeps it head, scheduled */
	CK_OK(m2w_task_fail(Q, a, tok, M2W_CLASS_TRANSIENT, "busy", 503, 0,
			    EB));
	ck_assert_state(Q, a, M2W_SCHEDULED);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_supersede_before_lease)
{
	uint64_t a = enq_group("stock", "g", 0);
	uint64_t b = enq_group("stock", "g", 1);
	struct m2w_task *g;

	ck_assert_state(Q, a, M2W_SUPERSEDED);
	ck_assert_state(Q, b, M2W_READY);
	g = tu_get(Q, b);
	ck_assert_int_eq(g->supersede, 1);
	m2w_task_free(g);
	ck_assert_uint_eq(tu_count(Q, M2W_SUPERSEDED), 1);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 1);
	lease_expect(b, 0);
	ck_assert_uint_eq(lease_count(10), 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_supersede_while_leased)
{
	uint64_t a = enq_group("stock", "g", 0), c, d, tok;

	tok = lease_expect(a, 0);
	c = enq_group("stock", "g", 1);
	ck_assert_state(Q, a, M2W_LEASED); /* started: not replaced */
	ck_assert_state(Q, c, M2W_WAITING);
	d = enq_group("stock", "g", 1);
	ck_assert_state(Q, c, M2W_SUPERSEDED);
	ck_assert_state(Q, d, M2W_WAITING);
	ck_assert_uint_eq(lease_count(10), 0);
	CK_OK(m2w_task_ack(Q, a, tok, 0, EB));
	ck_assert_state(Q, a, M2W_DONE);
	ck_assert_state(Q, d, M2W_READY);
	tok = lease_expect(d, 0);
	CK_OK(m2w_task_ack(Q, d, tok, 0, EB));
	ck_assert_uint_eq(tu_count(Q, M2W_DONE), 2);
	ck_assert_uint_eq(tu_count(Q, M2W_SUPERSEDED), 1);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_supersede_replaces_plain_waiting)
{
	uint64_t a = enq_group("stock", "g", 0), b, c, tok;

	tok = lease_expect(a, 0);
	b = enq_group("stock", "g", 0);
	c = enq_group("stock", "g", 1);
	ck_assert_state(Q, b, M2W_SUPERSEDED);
	ck_assert_state(Q, c, M2W_WAITING);
	CK_OK(m2w_task_ack(Q, a, tok, 0, EB));
	lease_expect(c, 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_head_fail_superseded)
{
	struct m2w_settle s;
	uint64_t a, b;

	fast_policy("stock");
	a = enq_group("stock", "g", 0);
	memset(&s, 0, sizeof(s));
	s.id = a;
	s.token = lease_expect(a, 0);
	b = enq_group("stock", "g", 1);
	ck_assert_state(Q, b, M2W_WAITING);
	s.kind = M2W_FAIL;
	s.cls = M2W_CLASS_TRANSIENT;
	s.http_status = 503;
	s.message = "unavailable";
	CK_OK(m2w_queue_settle(Q, &s, 1, EB));
	ck_assert_int_eq(s.err, M2W_OK);
	ck_assert_int_eq(s.state, M2W_SUPERSEDED);
	ck_assert_state(Q, a, M2W_SUPERSEDED);
	ck_assert_state(Q, b, M2W_READY);
	lease_expect(b, 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_head_release_reap_superseded)
{
	uint64_t a1, b1, a2, b2, tok;
	size_t reaped = 0;

	a1 = enq_group("stock", "g1", 0);
	tok = lease_expect(a1, 60000);
	b1 = enq_group("stock", "g1", 1);
	CK_OK(m2w_task_release(Q, a1, tok, EB));
	ck_assert_state(Q, a1, M2W_SUPERSEDED);
	ck_assert_state(Q, b1, M2W_READY);
	tok = lease_expect(b1, 0);
	CK_OK(m2w_task_ack(Q, b1, tok, 0, EB));

	a2 = enq_group("stock", "g2", 0);
	lease_expect(a2, 1000);
	b2 = enq_group("stock", "g2", 1);
	advance(1001);
	CK_OK(m2w_queue_reap(Q, &reaped, EB));
	ck_assert_uint_eq(reaped, 1);
	ck_assert_state(Q, a2, M2W_SUPERSEDED);
	ck_assert_state(Q, b2, M2W_READY);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_dead_head_advances)
{
	uint64_t a = enq_group("stock", "g", 0);
	uint64_t b = enq_group("stock", "g", 0);
	uint64_t tok = lease_expect(a, 0);

	CK_OK(m2w_task_fail(Q, a, tok, M2W_CLASS_PERMANENT, "no such SKU", 404,
			    0, EB));
	ck_assert_state(Q, a, M2W_DEAD);
	ck_assert_state(Q, b, M2W_READY);
	lease_expect(b, 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_group_delete_head_advances)
{
	uint64_t a = enq_group("stock", "g", 0);
	uint64_t b = enq_group("stock", "g", 0);
	uint64_t c = enq_group("stock", "g", 0);
	uint64_t tok = lease_expect(a, 0);

	/* deleting a waiting one leaves the order of the rest */
	CK_OK(m2w_queue_delete(Q, b, 0, EB));
	CK_OK(m2w_queue_delete(Q, a, 1, EB));
	CK_RC(M2W_ENOTFOUND, m2w_task_ack(Q, a, tok, 0, EB));
	ck_assert_state(Q, c, M2W_READY);
	lease_expect(c, 0);
	ck_assert_store_ok(Q);
}
END_TEST

/* ================================================================ list */

START_TEST(test_list_paging)
{
	struct m2w_list_opts o;
	char cursor[M2W_CURSOR_MAX] = "", next[M2W_CURSOR_MAX];
	uint64_t ids[25], seen[25];
	static const size_t want[] = { 10, 10, 5 };
	size_t nseen = 0, page, i;

	for (i = 0; i < 25; i++) {
		ids[i] = enq("price");
		advance(1);
	}
	for (page = 0; page < 3; page++) {
		struct m2w_task **ts = NULL;
		size_t n = 0;

		memset(&o, 0, sizeof(o));
		o.state = M2W_READY;
		o.limit = 10;
		o.after = page ? cursor : NULL;
		memset(next, 'x', sizeof(next));
		CK_OK(m2w_queue_list(Q, &o, &ts, &n, next, EB));
		ck_assert_uint_eq(n, want[page]);
		ck_assert(memchr(next, '\0', sizeof(next)) != NULL);
		if (page < 2)
			ck_assert_msg(next[0] != '\0',
				      "page %zu: empty cursor", page);
		else
			ck_assert_msg(next[0] == '\0',
				      "last page: cursor \"%s\"", next);
		for (i = 0; i < n; i++) {
			ck_assert_int_eq(ts[i]->state, M2W_READY);
			ck_assert(has_id(ids, 25, ts[i]->id));
			seen[nseen++] = ts[i]->id;
		}
		tu_tasks_free(ts, n);
		snprintf(cursor, sizeof(cursor), "%s", next);
	}
	ck_assert_uint_eq(nseen, 25);
	assert_distinct(seen, 25);
}
END_TEST

START_TEST(test_list_default_limit)
{
	struct m2w_list_opts o;
	struct m2w_task **ts = NULL;
	char next[M2W_CURSOR_MAX];
	size_t n = 0, i;

	for (i = 0; i < 120; i++)
		enq("price");
	memset(&o, 0, sizeof(o));
	o.state = M2W_READY;
	CK_OK(m2w_queue_list(Q, &o, &ts, &n, next, EB));
	ck_assert_uint_eq(n, 100);
	ck_assert(next[0] != '\0');
	tu_tasks_free(ts, n);
	ck_assert_uint_eq(list_count(M2W_READY, NULL, NULL), 120);
}
END_TEST

START_TEST(test_list_type_filter)
{
	size_t i, n;
	uint64_t *ids;

	for (i = 0; i < 5; i++)
		enq("alpha");
	for (i = 0; i < 7; i++)
		enq("beta");
	ids = list_all(M2W_READY, "beta", NULL, &n);
	ck_assert_uint_eq(n, 7);
	assert_distinct(ids, n);
	free(ids);
	ck_assert_uint_eq(list_count(M2W_READY, "alpha", NULL), 5);
	ck_assert_uint_eq(list_count(M2W_READY, "gamma", NULL), 0);
	ck_assert_uint_eq(list_count(M2W_READY, NULL, NULL), 12);
}
END_TEST

START_TEST(test_list_each_state)
{
	uint64_t ready[3], sched, leased, done, dead, waiting, superseded;
	uint64_t *ids;
	struct m2w_new_task t;
	size_t n, i;

	/* made first: they lease the only ready task */
	dead = make_dead("other", "x");
	done = make_done("other");
	leased = enq_group("grp", "g", 0);
	lease_expect(leased, 0);
	superseded = enq_group("grp", "g", 0);
	waiting = enq_group("grp", "g", 1);
	for (i = 0; i < 3; i++)
		ready[i] = enq("price");
	t = tu_task("price", "{\"a\":1}");
	t.not_before_ms = TU_T0 + 100000;
	sched = tu_enqueue_task(Q, &t);

	ids = list_all(M2W_READY, NULL, NULL, &n);
	ck_assert_uint_eq(n, 3);
	for (i = 0; i < 3; i++)
		ck_assert(has_id(ids, n, ready[i]));
	free(ids);
	ids = list_all(M2W_SCHEDULED, NULL, NULL, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], sched);
	free(ids);
	ids = list_all(M2W_LEASED, NULL, NULL, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], leased);
	free(ids);
	ids = list_all(M2W_DONE, NULL, NULL, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], done);
	free(ids);
	ids = list_all(M2W_DEAD, NULL, NULL, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], dead);
	free(ids);
	ids = list_all(M2W_WAITING, NULL, NULL, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], waiting);
	free(ids);
	ids = list_all(M2W_SUPERSEDED, NULL, NULL, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], superseded);
	free(ids);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_list_dead)
{
	uint64_t ids[10], *dead;
	size_t i, n;

	for (i = 0; i < 10; i++)
		ids[i] = enq("price");
	for (i = 0; i < 10; i++) {
		struct m2w_task *t = tu_lease1(Q, 0);

		if (i % 3 == 0)
			CK_OK(m2w_task_fail(Q, t->id, t->lease_token,
					    M2W_CLASS_PERMANENT, "gone", 410, 0,
					    EB));
		else
			CK_OK(m2w_task_ack(Q, t->id, t->lease_token, 0, EB));
		m2w_task_free(t);
		advance(1);
	}
	dead = list_all(M2W_DEAD, NULL, NULL, &n);
	ck_assert_uint_eq(n, 4);
	for (i = 0; i < n; i++)
		ck_assert(has_id(ids, 10, dead[i]));
	assert_distinct(dead, n);
	free(dead);
	ck_assert_uint_eq(list_count(M2W_DONE, NULL, NULL), 6);
	ck_assert_uint_eq(list_count(M2W_READY, NULL, NULL), 0);
}
END_TEST

START_TEST(test_list_grep)
{
	uint64_t t1, t2, s1, s2, *ids;
	size_t n;

	t1 = make_dead("price", "timeout talking to magento");
	s1 = make_dead("price", "The SKU \"A-1\" does not exist");
	t2 = make_dead("price", "timeout again");
	s2 = make_dead("price", "The SKU \"B-2\" does not exist");
	ids = list_all(M2W_DEAD, NULL, "SKU", &n);
	ck_assert_uint_eq(n, 2);
	ck_assert(has_id(ids, n, s1) && has_id(ids, n, s2));
	free(ids);
	ids = list_all(M2W_DEAD, NULL, "timeout", &n);
	ck_assert_uint_eq(n, 2);
	ck_assert(has_id(ids, n, t1) && has_id(ids, n, t2));
	free(ids);
	ck_assert_uint_eq(list_count(M2W_DEAD, NULL, "B-2"), 1);
	ck_assert_uint_eq(list_count(M2W_DEAD, NULL, "no such text"), 0);
	ck_assert_uint_eq(list_count(M2W_DEAD, "stock", "SKU"), 0);

	/* grep looks at the payload too */
	tu_enqueue(Q, "price", "{\"sku\":\"XYZ-77\"}");
	tu_enqueue(Q, "price", "{\"sku\":\"ABC-1\"}");
	ck_assert_uint_eq(list_count(M2W_READY, NULL, "XYZ-77"), 1);
	ck_assert_uint_eq(list_count(M2W_DEAD, NULL, "\"a\":1"), 4);
}
END_TEST

/* A done task of `type` that ends at `at` (the clock goes there). */
static uint64_t done_at(const char *type, int64_t at)
{
	uint64_t id = enq(type), tok = lease_expect(id, 0);

	E.clock.now = at;
	CK_OK(m2w_task_ack(Q, id, tok, 5, EB));
	return id;
}

/*
 * Lists state with since/until (0: none) page by page, `limit` a page,
 * into ids; asserts every page but the last is full and each task's
 * updated_ms is in range. Between two pages `between` (may be NULL) runs.
 */
static size_t list_range(int state, int64_t since, int64_t until,
			 size_t limit, uint64_t *ids, size_t max,
			 void (*between)(size_t page))
{
	char cursor[M2W_CURSOR_MAX] = "", next[M2W_CURSOR_MAX];
	struct m2w_list_opts o;
	size_t n = 0, page = 0, k, i;

	do {
		struct m2w_task **ts = NULL;

		memset(&o, 0, sizeof(o));
		o.state = state;
		o.since_ms = since;
		o.until_ms = until;
		o.limit = limit;
		o.after = page ? cursor : NULL;
		CK_OK(m2w_queue_list(Q, &o, &ts, &k, next, EB));
		if (next[0])
			ck_assert_msg(k == limit, "page %zu: %zu tasks of %zu, "
				      "and a next page", page, k, limit);
		for (i = 0; i < k; i++) {
			ck_assert_int_eq(ts[i]->state, state);
			ck_assert_msg((!since || ts[i]->updated_ms >= since) &&
				      (!until || ts[i]->updated_ms < until),
				      "task %" PRIu64 " updated %" PRId64
				      " outside [%" PRId64 ", %" PRId64 ")",
				      ts[i]->id, ts[i]->updated_ms, since,
				      until);
			ck_assert(n < max);
			ids[n++] = ts[i]->id;
		}
		tu_tasks_free(ts, k);
		snprintf(cursor, sizeof(cursor), "%s", next);
		if (between && cursor[0])
			between(page);
		ck_assert_msg(++page < 1000, "list never ends");
	} while (cursor[0]);
	return n;
}

/* Between pages: two more tasks end, now (after every one listed). */
static void end_two_more(size_t page)
{
	(void)page;
	advance(1000);
	done_at("price", NOW);
	done_at("stock", NOW);
}

START_TEST(test_list_since_until_pages)
{
	uint64_t done[40], ids[200], more[200];
	int64_t at[40];
	size_t i, n;

	/* 40 done tasks of two types, one ending every 10 s */
	for (i = 0; i < 40; i++) {
		at[i] = TU_T0 + 10000 * (int64_t)(i + 1);
		done[i] = done_at(i % 2 ? "stock" : "price", at[i]);
	}
	make_dead("price", "x"); /* not done: never listed */

	/* [at[10], at[30]): tasks 10..29, in pages of 3 */
	n = list_range(M2W_DONE, at[10], at[30], 3, ids, 200, NULL);
	ck_assert_uint_eq(n, 20);
	for (i = 0; i < 20; i++)
		ck_assert_uint_eq(ids[i], done[10 + i]); /* in time order */
	/* since alone, until alone, a range with nothing in it */
	ck_assert_uint_eq(list_range(M2W_DONE, at[35], 0, 3, ids, 200, NULL),
			  5);
	ck_assert_uint_eq(ids[0], done[35]);
	ck_assert_uint_eq(list_range(M2W_DONE, 0, at[2], 3, ids, 200, NULL),
			  2);
	ck_assert_uint_eq(list_range(M2W_DONE, at[5] + 1, at[6], 3, ids, 200,
				     NULL), 0);
	/* until is exclusive, since inclusive, to the millisecond */
	ck_assert_uint_eq(list_range(M2W_DONE, at[7], at[7] + 1, 3, ids, 200,
				     NULL), 1);
	ck_assert_uint_eq(ids[0], done[7]);

	/* paging stays stable while tasks end between pages: every task
	 * from since on once, those that ended meanwhile after them, and
	 * at the end all there are */
	n = list_range(M2W_DONE, at[30], 0, 4, ids, 200, end_two_more);
	for (i = 0; i < 10; i++)
		ck_assert_uint_eq(ids[i], done[30 + i]);
	ck_assert_uint_gt(n, 10);
	memcpy(more, ids, n * sizeof(*more));
	assert_distinct(more, n);
	ck_assert_uint_eq(list_range(M2W_DONE, at[30], 0, 1000, more, 200,
				     NULL), n);

	/* a cursor from before since: the walk goes on at since */
	{
		struct m2w_list_opts o;
		struct m2w_task **ts = NULL;
		char next[M2W_CURSOR_MAX];
		size_t k;

		memset(&o, 0, sizeof(o));
		o.state = M2W_DONE;
		o.limit = 2;
		CK_OK(m2w_queue_list(Q, &o, &ts, &k, next, EB));
		ck_assert_uint_eq(ts[1]->id, done[1]);
		tu_tasks_free(ts, k);
		o.after = next;
		o.since_ms = at[20];
		CK_OK(m2w_queue_list(Q, &o, &ts, &k, next, EB));
		ck_assert_uint_eq(k, 2);
		ck_assert_uint_eq(ts[0]->id, done[20]);
		ck_assert_uint_eq(ts[1]->id, done[21]);
		tu_tasks_free(ts, k);
	}
	ck_assert_store_ok(Q);
}
END_TEST

/* States without a time index are filtered task by task: still full
 * pages, in their own order. */
START_TEST(test_list_since_until_ready)
{
	uint64_t ready[30], ids[60];
	size_t i, n;

	for (i = 0; i < 30; i++) {
		ready[i] = enq(i % 3 ? "price" : "stock");
		advance(1000);
	}
	/* [T0 + 5 s, T0 + 25 s): tasks 5..24 */
	n = list_range(M2W_READY, TU_T0 + 5000, TU_T0 + 25000, 4, ids, 60,
		       NULL);
	ck_assert_uint_eq(n, 20);
	for (i = 5; i < 25; i++)
		ck_assert(has_id(ids, n, ready[i]));
	assert_distinct(ids, n);
	ck_assert_uint_eq(list_range(M2W_READY, TU_T0 + 29000, 0, 4, ids, 60,
				     NULL), 1);
	ck_assert_uint_eq(ids[0], ready[29]);
}
END_TEST

START_TEST(test_list_grep_key_source)
{
	struct m2w_new_task t = tu_task("tracking", "{\"order\":\"1\"}");
	uint64_t a, b, c, *ids;
	size_t n;

	t.idem_key = "tracking:000000101:1ZKEY";
	t.source = "/var/3pl/incoming/20250326_120000.csv:17";
	a = tu_enqueue_task(Q, &t);
	t = tu_task("stock", "{\"sku\":\"A\"}");
	t.group_key = "stock:SKU-GROUPED:default";
	t.source = "http";
	b = tu_enqueue_task(Q, &t);
	c = enq("price");

	ids = list_all(M2W_READY, NULL, "1ZKEY", &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], a);
	free(ids);
	ids = list_all(M2W_READY, NULL, "20250326_120000.csv:17", &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], a);
	free(ids);
	ids = list_all(M2W_READY, NULL, "SKU-GROUPED", &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], b);
	free(ids);
	ck_assert_uint_eq(list_count(M2W_READY, NULL, "http"), 1);
	ck_assert_uint_eq(list_count(M2W_READY, NULL, "20250326_120000.csv:18"),
			  0);
	ck_assert_uint_eq(list_count(M2W_READY, "stock", "1ZKEY"), 0);
	ck_assert_uint_eq(list_count(M2W_READY, NULL, "1zkey"), 0); /* case */
	(void)c;
}
END_TEST

/* =============================================================== stats */

START_TEST(test_stats_mix)
{
	const char *only_a[] = { "a" };
	struct m2w_new_task t;
	struct m2w_task **ts;
	struct m2w_stats st;
	const struct m2w_type_stats *ta, *tb;
	uint64_t maxid = 0;
	size_t n, i;

	for (i = 0; i < 6; i++)
		maxid = enq("a");
	t = tu_task("a", "{\"a\":1}");
	t.not_before_ms = TU_T0 + 100000;
	tu_enqueue_task(Q, &t);
	ts = tu_lease_types(Q, 3, 0, only_a, 1, &n);
	ck_assert_uint_eq(n, 3);
	CK_OK(m2w_task_ack(Q, ts[0]->id, ts[0]->lease_token, 0, EB));
	CK_OK(m2w_task_fail(Q, ts[1]->id, ts[1]->lease_token,
			    M2W_CLASS_PERMANENT, "no", 400, 0, EB));
	tu_tasks_free(ts, n);
	advance(1000);
	enq("b");
	maxid = enq("b");
	CK_OK(m2w_queue_pause(Q, "b", 1, EB));

	tu_stats(Q, &st);
	ck_assert_uint_eq(st.count[M2W_READY], 5);
	ck_assert_uint_eq(st.count[M2W_SCHEDULED], 1);
	ck_assert_uint_eq(st.count[M2W_LEASED], 1);
	ck_assert_uint_eq(st.count[M2W_DONE], 1);
	ck_assert_uint_eq(st.count[M2W_DEAD], 1);
	ck_assert_uint_eq(st.count[M2W_WAITING], 0);
	ck_assert_uint_eq(st.count[M2W_SUPERSEDED], 0);
	ck_assert_uint_eq(st.ntypes, 2);
	ta = find_type(&st, "a");
	tb = find_type(&st, "b");
	ck_assert_uint_eq(ta->count[M2W_READY], 3);
	ck_assert_uint_eq(ta->count[M2W_SCHEDULED], 1);
	ck_assert_uint_eq(ta->count[M2W_LEASED], 1);
	ck_assert_uint_eq(ta->count[M2W_DONE], 1);
	ck_assert_uint_eq(ta->count[M2W_DEAD], 1);
	ck_assert_uint_eq(tb->count[M2W_READY], 2);
	ck_assert_uint_eq(tb->count[M2W_DONE], 0);
	ck_assert_int_eq(ta->oldest_ready_ms, TU_T0);
	ck_assert_int_eq(tb->oldest_ready_ms, TU_T0 + 1000);
	ck_assert_int_eq(st.oldest_ready_ms, TU_T0);
	ck_assert_int_eq(ta->paused, 0);
	ck_assert_int_eq(tb->paused, 1);
	ck_assert_int_eq(st.paused_all, 0);
	ck_assert_uint_gt(st.map_size, 0);
	ck_assert_uint_gt(st.map_used, 0);
	ck_assert_uint_le(st.map_used, st.map_size);
	ck_assert_uint_eq(st.map_max, (uint64_t)4 << 30);
	ck_assert_uint_le(st.map_size, st.map_max);
	ck_assert_uint_gt(st.next_id, maxid);
	m2w_stats_free(&st);
	ck_assert_store_ok(Q);
}
END_TEST

/* ============================================================= requeue */

static size_t requeue(const struct m2w_requeue_opts *o, uint64_t **ids)
{
	size_t count = 9999;

	if (ids)
		*ids = NULL;
	CK_OK(m2w_queue_requeue(Q, o, &count, ids, EB));
	return count;
}

START_TEST(test_requeue_by_id)
{
	uint64_t d1 = make_dead("price", "x"), d2 = make_dead("price", "y");
	uint64_t d3 = make_dead("price", "z"), *out;
	struct m2w_requeue_opts o;
	struct m2w_task *g;

	advance(500);
	memset(&o, 0, sizeof(o));
	o.ids = &d1;
	o.nids = 1;
	ck_assert_uint_eq(requeue(&o, &out), 1);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(out[0], d1);
	free(out);
	g = tu_get(Q, d1);
	ck_assert_int_eq(g->state, M2W_READY);
	ck_assert_uint_eq(g->attempts, 0);
	ck_assert_int_le(g->next_run_ms, NOW);
	m2w_task_free(g);

	o.ids = &d2;
	o.keep_attempts = 1;
	ck_assert_uint_eq(requeue(&o, NULL), 1);
	g = tu_get(Q, d2);
	ck_assert_int_eq(g->state, M2W_READY);
	ck_assert_uint_eq(g->attempts, 1);
	m2w_task_free(g);

	ck_assert_state(Q, d3, M2W_DEAD);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 1);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 2);
	ck_assert_uint_eq(lease_count(10), 2);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_requeue_by_type)
{
	uint64_t a1 = make_dead("a", "x"), a2 = make_dead("a", "x");
	uint64_t b1 = make_dead("b", "x"), *out;
	struct m2w_requeue_opts o;

	memset(&o, 0, sizeof(o));
	o.type = "a";
	ck_assert_uint_eq(requeue(&o, &out), 2);
	ck_assert(has_id(out, 2, a1) && has_id(out, 2, a2));
	free(out);
	ck_assert_state(Q, a1, M2W_READY);
	ck_assert_state(Q, a2, M2W_READY);
	ck_assert_state(Q, b1, M2W_DEAD);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_requeue_by_grep)
{
	uint64_t t1 = make_dead("a", "timeout after 30 s");
	uint64_t s1 = make_dead("a", "bad SKU");
	uint64_t t2 = make_dead("b", "read timeout");
	struct m2w_requeue_opts o;

	memset(&o, 0, sizeof(o));
	o.grep = "timeout";
	o.type = "a";
	ck_assert_uint_eq(requeue(&o, NULL), 1);
	ck_assert_state(Q, t1, M2W_READY);
	ck_assert_state(Q, t2, M2W_DEAD);
	o.type = NULL;
	ck_assert_uint_eq(requeue(&o, NULL), 1);
	ck_assert_state(Q, t2, M2W_READY);
	ck_assert_state(Q, s1, M2W_DEAD);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_requeue_all)
{
	uint64_t d[3], *out;
	struct m2w_requeue_opts o;
	int i;

	d[0] = make_dead("a", "x");
	d[1] = make_dead("b", "y");
	d[2] = make_dead("c", "z");
	enq("c"); /* a live task is not touched */
	memset(&o, 0, sizeof(o));
	ck_assert_uint_eq(requeue(&o, &out), 3);
	for (i = 0; i < 3; i++) {
		ck_assert(has_id(out, 3, d[i]));
		ck_assert_state(Q, d[i], M2W_READY);
	}
	free(out);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 0);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 4);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_requeue_dry_run)
{
	uint64_t d[3], *out;
	struct m2w_requeue_opts o;
	int i;

	for (i = 0; i < 3; i++)
		d[i] = make_dead("a", "x");
	memset(&o, 0, sizeof(o));
	o.dry_run = 1;
	ck_assert_uint_eq(requeue(&o, &out), 3);
	for (i = 0; i < 3; i++) {
		ck_assert(has_id(out, 3, d[i]));
		ck_assert_state(Q, d[i], M2W_DEAD);
	}
	free(out);
	o.ids = d;
	o.nids = 2;
	ck_assert_uint_eq(requeue(&o, NULL), 2);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 3);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_requeue_not_dead)
{
	uint64_t leased = enq("a"), done, ready;
	struct m2w_requeue_opts o;
	size_t count;

	lease_expect(leased, 0);
	done = make_done("b");
	ready = enq("c");
	memset(&o, 0, sizeof(o));
	o.ids = &leased;
	o.nids = 1;
	CK_RC(M2W_ESTATE, m2w_queue_requeue(Q, &o, &count, NULL, EB));
	o.force = 1; /* a leased task is never requeued */
	CK_RC(M2W_ESTATE, m2w_queue_requeue(Q, &o, &count, NULL, EB));
	ck_assert_state(Q, leased, M2W_LEASED);

	o.force = 0;
	o.ids = &done;
	CK_RC(M2W_ESTATE, m2w_queue_requeue(Q, &o, &count, NULL, EB));
	ck_assert_state(Q, done, M2W_DONE);
	o.force = 1;
	CK_OK(m2w_queue_requeue(Q, &o, &count, NULL, EB));
	ck_assert_uint_eq(count, 1);
	ck_assert_state(Q, done, M2W_READY);
	(void)ready;

	/* without ids only dead tasks move: the leased one stays */
	memset(&o, 0, sizeof(o));
	ck_assert_uint_eq(requeue(&o, NULL), 0);
	ck_assert_state(Q, leased, M2W_LEASED);
	ck_assert_store_ok(Q);
}
END_TEST

/* A dead task of `type` that died of `msg` with HTTP `status`. */
static uint64_t dead_of(const char *type, const char *msg, int status)
{
	uint64_t id = enq(type), tok = lease_expect(id, 0);

	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_PERMANENT, msg, status, 0,
			    EB));
	ck_assert_state(Q, id, M2W_DEAD);
	return id;
}

START_TEST(test_requeue_by_error)
{
	uint64_t su1, su2, longer, shorter, other, none, su3, *out;
	struct m2w_requeue_opts o;

	su1 = dead_of("tracking", "Service Unavailable", 503);
	longer = dead_of("tracking", "503 Service Unavailable (upstream)", 503);
	shorter = dead_of("tracking", "Service Unavailabl", 503);
	su2 = dead_of("stock", "Service Unavailable", 503);
	other = dead_of("tracking", "The order \"1\" does not allow a shipment.",
			400);
	none = dead_of("tracking", "", 0);
	advance(10000);
	su3 = dead_of("tracking", "Service Unavailable", 503);

	/* exact, with a type: su1 and su3, not the longer or shorter text */
	memset(&o, 0, sizeof(o));
	o.error = "Service Unavailable";
	o.type = "tracking";
	o.dry_run = 1;
	ck_assert_uint_eq(requeue(&o, &out), 2);
	ck_assert(has_id(out, 2, su1) && has_id(out, 2, su3));
	free(out);
	/* before_ms: only what died before it */
	o.before_ms = TU_T0 + 5000;
	ck_assert_uint_eq(requeue(&o, &out), 1);
	ck_assert_uint_eq(out[0], su1);
	free(out);
	/* with grep too: both must hold */
	o.before_ms = 0;
	o.grep = "Unavail";
	ck_assert_uint_eq(requeue(&o, NULL), 2);
	o.grep = "upstream";
	ck_assert_uint_eq(requeue(&o, NULL), 0);
	/* for real, every type */
	o.grep = NULL;
	o.type = NULL;
	o.dry_run = 0;
	ck_assert_uint_eq(requeue(&o, &out), 3);
	ck_assert(has_id(out, 3, su1) && has_id(out, 3, su2) &&
		  has_id(out, 3, su3));
	free(out);
	ck_assert_state(Q, su1, M2W_READY);
	ck_assert_state(Q, su2, M2W_READY);
	ck_assert_state(Q, longer, M2W_DEAD);
	ck_assert_state(Q, shorter, M2W_DEAD);
	ck_assert_state(Q, other, M2W_DEAD);
	ck_assert_state(Q, none, M2W_DEAD);
	/* "" is the tasks without an error */
	o.error = "";
	ck_assert_uint_eq(requeue(&o, &out), 1);
	ck_assert_uint_eq(out[0], none);
	free(out);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 3);
	ck_assert_store_ok(Q);
}
END_TEST

/* Deletes dead tasks by sel; asserts it worked; returns the count. */
static size_t delete_dead(const struct m2w_requeue_opts *sel)
{
	size_t count = 9999;

	CK_OK(m2w_queue_delete_dead(Q, sel, &count, EB));
	return count;
}

static int gone(uint64_t id)
{
	struct m2w_task *t = NULL;
	char eb[M2W_ERRBUF_SIZE];
	int rc = m2w_queue_get(Q, id, &t, eb);

	m2w_task_free(t);
	return rc == M2W_ENOTFOUND;
}

START_TEST(test_delete_dead_selections)
{
	struct m2w_new_task t = tu_task("price", "{\"a\":1}");
	struct m2w_requeue_opts o;
	uint64_t keyed, a1, a2, b1, b2, c1, c2, old, live, done, *rq;
	size_t n;

	t.idem_key = "price:keyed";
	keyed = tu_enqueue_task(Q, &t);
	CK_OK(m2w_task_fail(Q, keyed, lease_expect(keyed, 0),
			    M2W_CLASS_PERMANENT, "Requested store is not found",
			    404, 0, EB));
	old = dead_of("stock", "Service Unavailable", 503);
	advance(60000);
	a1 = dead_of("price", "Requested store is not found", 404);
	a2 = dead_of("price", "Requested store is not found (again)", 404);
	b1 = dead_of("stock", "Service Unavailable", 503);
	b2 = dead_of("tracking", "Service Unavailable", 503);
	c1 = dead_of("tracking", "The order \"7\" does not allow a shipment.",
		     400);
	c2 = dead_of("tracking", "The order \"8\" does not allow a shipment.",
		     400);
	done = make_done("price");
	live = enq("price");

	/* dry run: the count requeue would give, nothing goes */
	memset(&o, 0, sizeof(o));
	o.error = "Requested store is not found";
	o.dry_run = 1;
	ck_assert_uint_eq(delete_dead(&o), 2);
	ck_assert_uint_eq(requeue(&o, NULL), 2);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 8);

	/* exact error, with a type */
	o.dry_run = 0;
	o.type = "price";
	ck_assert_uint_eq(delete_dead(&o), 2);
	ck_assert(gone(keyed) && gone(a1));
	ck_assert_state(Q, a2, M2W_DEAD);
	/* its key went with it: the same key is new work */
	t = tu_task("price", "{\"a\":2}");
	t.idem_key = "price:keyed";
	tu_enqueue_task(Q, &t);
	ck_assert_int_eq(t.duplicate, 0);

	/* died before: only the old one of the 503s */
	memset(&o, 0, sizeof(o));
	o.error = "Service Unavailable";
	o.before_ms = TU_T0 + 30000;
	ck_assert_uint_eq(delete_dead(&o), 1);
	ck_assert(gone(old));
	ck_assert_state(Q, b1, M2W_DEAD);

	/* grep and type */
	memset(&o, 0, sizeof(o));
	o.grep = "does not allow";
	o.type = "stock";
	ck_assert_uint_eq(delete_dead(&o), 0);
	o.type = "tracking";
	ck_assert_uint_eq(delete_dead(&o), 2);
	ck_assert(gone(c1) && gone(c2));
	o.type = "nosuchtype";
	ck_assert_uint_eq(delete_dead(&o), 0);

	/* by id: one not dead and nothing goes, the dead one included */
	{
		uint64_t ids[2] = { b1, live };

		memset(&o, 0, sizeof(o));
		o.ids = ids;
		o.nids = 2;
		CK_RC(M2W_ESTATE, m2w_queue_delete_dead(Q, &o, &n, EB));
		ck_assert_uint_eq(n, 0);
		ck_assert_state(Q, b1, M2W_DEAD);
		ck_assert_state(Q, live, M2W_READY);
		ids[1] = done;
		o.force = 1; /* means nothing here */
		CK_RC(M2W_ESTATE, m2w_queue_delete_dead(Q, &o, &n, EB));
		ck_assert_state(Q, done, M2W_DONE);
		ids[1] = done + 1000;
		CK_RC(M2W_ENOTFOUND, m2w_queue_delete_dead(Q, &o, &n, EB));
		ck_assert_state(Q, b1, M2W_DEAD);
		/* named twice, deleted once; dry run first */
		ids[1] = b1;
		o.force = 0;
		o.dry_run = 1;
		ck_assert_uint_eq(delete_dead(&o), 1);
		ck_assert_state(Q, b1, M2W_DEAD);
		o.dry_run = 0;
		o.type = "price"; /* filters mean nothing with ids */
		ck_assert_uint_eq(delete_dead(&o), 1);
		ck_assert(gone(b1));
	}

	/* no filter: every dead task; requeue would have taken the same */
	memset(&o, 0, sizeof(o));
	o.dry_run = 1;
	ck_assert_uint_eq(requeue(&o, &rq), 2);
	ck_assert(has_id(rq, 2, a2) && has_id(rq, 2, b2));
	free(rq);
	o.dry_run = 0;
	ck_assert_uint_eq(delete_dead(&o), 2);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 0);
	ck_assert_state(Q, live, M2W_READY);
	ck_assert_state(Q, done, M2W_DONE);
	ck_assert_store_ok(Q);
}
END_TEST

/* n dead tasks of `type`, in three transactions: task k of them (in id
 * order) dies of why(k0 + k). */
static void dead_batch(const char *type, size_t n, size_t k0,
		       const char *(*why)(size_t k))
{
	struct m2w_new_task *t = calloc(n, sizeof(*t));
	struct m2w_settle *s = calloc(n, sizeof(*s));
	const char *types[1] = { type };
	struct m2w_task **ts;
	size_t i, got;

	ck_assert(t && s);
	for (i = 0; i < n; i++)
		t[i] = tu_task(type, "{\"a\":1}");
	CK_OK(m2w_queue_enqueue(Q, t, n, EB));
	ts = tu_lease_types(Q, n, 0, types, 1, &got);
	ck_assert_uint_eq(got, n);
	for (i = 0; i < n; i++) {
		s[i].id = ts[i]->id;
		s[i].token = ts[i]->lease_token;
		s[i].kind = M2W_FAIL;
		s[i].cls = M2W_CLASS_PERMANENT;
		s[i].message = why(k0 + (size_t)(ts[i]->id - t[0].id));
		s[i].http_status = 400;
	}
	CK_OK(m2w_queue_settle(Q, s, n, EB));
	for (i = 0; i < n; i++)
		ck_assert_int_eq(s[i].err, M2W_OK);
	tu_tasks_free(ts, got);
	free(t);
	free(s);
}

static const char *one_in_997(size_t k)
{
	return k % 997 ? "other" : "rare";
}

/* 17,000 dead tasks, 18 of them "rare" and spread out: a bulk change
 * looks at 16,000 keys a transaction at most and takes 1,000 at most;
 * however the chunks fall, every match and only they. */
START_TEST(test_delete_dead_chunks)
{
	struct m2w_requeue_opts o;
	size_t k;

	for (k = 0; k < 17000; k += 1000) {
		dead_batch("price", 1000, k, one_in_997);
		advance(1);
	}
	memset(&o, 0, sizeof(o));
	o.error = "rare";
	o.dry_run = 1;
	ck_assert_uint_eq(delete_dead(&o), 18);
	ck_assert_uint_eq(requeue(&o, NULL), 18);
	o.dry_run = 0;
	ck_assert_uint_eq(delete_dead(&o), 18);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 16982);
	o.error = "other";
	ck_assert_uint_eq(requeue(&o, NULL), 16982);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 0);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 16982);
	ck_assert_store_ok(Q);
}
END_TEST

/* ========================================================= dead groups */

/* Groups the dead tasks; asserts it worked. */
static struct m2w_dead_group *groups(const char *type, int64_t since,
				     size_t limit, size_t *n,
				     uint64_t *scanned)
{
	struct m2w_group_opts o;
	struct m2w_dead_group *g = NULL;

	memset(&o, 0, sizeof(o));
	o.type = type;
	o.since_ms = since;
	o.limit = limit;
	*n = 9999;
	CK_OK(m2w_queue_dead_groups(Q, &o, &g, n, scanned, EB));
	ck_assert_msg(*n == 0 || g != NULL, "groups: n %zu, no array", *n);
	return g;
}

static void ck_group(const struct m2w_dead_group *g, const char *type,
		     const char *error, uint64_t count)
{
	ck_assert_str_eq(g->type, type);
	ck_assert_str_eq(g->error, error);
	ck_assert_uint_eq(g->count, count);
}

START_TEST(test_dead_groups)
{
	static const char su[] = "Service Unavailable";
	static const char xss[] = "<img src=x onerror=alert(1)>";
	struct m2w_dead_group *g;
	uint64_t scanned = 0, first_su, last_su, last_x, id;
	int64_t t_su0, t_mid;
	size_t n, i;

	/* an empty store: no groups */
	g = groups(NULL, 0, 0, &n, &scanned);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(g);
	ck_assert_uint_eq(scanned, 0);

	t_su0 = NOW;
	first_su = dead_of("tracking", su, 503);
	for (i = 0; i < 3; i++) {
		advance(1000);
		dead_of("tracking", su, 503);
	}
	advance(1000);
	dead_of("stock", su, 503);           /* same text, another type */
	dead_of("tracking", "Service Unavailable.", 503); /* another text */
	advance(1000);
	t_mid = NOW;
	for (i = 0; i < 3; i++) {
		advance(1000);
		id = dead_of("price", xss, 400);
	}
	last_x = id;
	advance(1000);
	dead_of("price", "", 0);
	last_su = dead_of("tracking", su, 502);
	make_done("tracking");               /* not dead: never counted */
	enq("tracking");

	/* all: by count, then the newest death first */
	g = groups(NULL, 0, 0, &n, &scanned);
	ck_assert_uint_eq(n, 5);
	ck_assert_uint_eq(scanned, 11);
	ck_group(&g[0], "tracking", su, 5);
	ck_assert_int_eq(g[0].first_ms, t_su0);
	ck_assert_int_eq(g[0].last_ms, NOW);
	ck_assert_uint_eq(g[0].example_id, last_su);  /* the newest task */
	ck_assert_int_eq(g[0].last_status, 502);      /* and its status */
	ck_group(&g[1], "price", xss, 3);
	ck_assert_uint_eq(g[1].example_id, last_x);
	ck_assert_int_eq(g[1].last_status, 400);
	ck_assert_int_eq(g[1].first_ms, t_mid + 1000);
	/* three groups of one: the newest death first */
	ck_group(&g[2], "price", "", 1);
	ck_assert_int_eq(g[2].last_status, 0);
	ck_assert(g[3].count == 1 && g[4].count == 1);
	ck_assert_int_ge(g[3].last_ms, g[4].last_ms);
	ck_assert(strcmp(g[3].type, "tracking") == 0 ||
		  strcmp(g[3].type, "stock") == 0);
	m2w_dead_groups_free(g, n);

	/* a type */
	g = groups("price", 0, 0, &n, &scanned);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(scanned, 4);
	ck_group(&g[0], "price", xss, 3);
	ck_group(&g[1], "price", "", 1);
	m2w_dead_groups_free(g, n);
	g = groups("nosuchtype", 0, 0, &n, &scanned);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(scanned, 0);

	/* since: deaths from t_mid on */
	g = groups(NULL, t_mid, 0, &n, &scanned);
	ck_assert_uint_eq(scanned, 5);
	ck_assert_uint_eq(n, 3);
	ck_group(&g[0], "price", xss, 3);
	ck_assert_uint_eq(g[1].count + g[2].count, 2);
	m2w_dead_groups_free(g, n);

	/* limit: the largest groups, scanned still all */
	g = groups(NULL, 0, 2, &n, &scanned);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(scanned, 11);
	ck_group(&g[0], "tracking", su, 5);
	ck_group(&g[1], "price", xss, 3);
	m2w_dead_groups_free(g, n);

	/* a group's type and error requeue exactly that group */
	{
		struct m2w_requeue_opts o;

		memset(&o, 0, sizeof(o));
		o.type = "tracking";
		o.error = su;
		ck_assert_uint_eq(requeue(&o, NULL), 5);
		ck_assert_state(Q, first_su, M2W_READY);
		g = groups(NULL, 0, 0, &n, &scanned);
		ck_assert_uint_eq(n, 4);
		ck_assert_uint_eq(scanned, 6);
		for (i = 0; i < n; i++)
			ck_assert(strcmp(g[i].type, "tracking") != 0 ||
				  strcmp(g[i].error, su) != 0);
		m2w_dead_groups_free(g, n);
	}
	ck_assert_store_ok(Q);
}
END_TEST

/* Equal counts: the group that died last first, though its task is the
 * older one (it died again after a requeue). */
START_TEST(test_dead_groups_order)
{
	struct m2w_requeue_opts o;
	struct m2w_dead_group *g;
	uint64_t a, b, scanned;
	size_t n;

	a = dead_of("a", "x", 500);
	advance(1000);
	b = dead_of("a", "y", 500);
	advance(1000);
	memset(&o, 0, sizeof(o));
	o.ids = &a;
	o.nids = 1;
	ck_assert_uint_eq(requeue(&o, NULL), 1);
	CK_OK(m2w_task_fail(Q, a, lease_expect(a, 0), M2W_CLASS_PERMANENT,
			    "x", 409, 0, EB));
	g = groups(NULL, 0, 0, &n, &scanned);
	ck_assert_uint_eq(n, 2);
	ck_group(&g[0], "a", "x", 1);
	ck_assert_uint_eq(g[0].example_id, a);
	ck_assert_int_eq(g[0].last_status, 409);
	ck_assert_int_eq(g[0].last_ms, NOW);
	ck_group(&g[1], "a", "y", 1);
	ck_assert_uint_eq(g[1].example_id, b);
	m2w_dead_groups_free(g, n);
}
END_TEST

static const char *of_300(size_t k)
{
	static char msgs[300][16];

	snprintf(msgs[k % 300], sizeof(msgs[0]), "error %zu", k % 300);
	return msgs[k % 300];
}

/* Many distinct errors: the table grows past its first size. */
START_TEST(test_dead_groups_many)
{
	struct m2w_dead_group *g;
	uint64_t scanned;
	size_t i, n, sum = 0;

	/* texts 0..299 of type a, again of b, then 0..99 of a again */
	dead_batch("a", 300, 0, of_300);
	dead_batch("b", 300, 0, of_300);
	dead_batch("a", 100, 0, of_300);
	g = groups(NULL, 0, 100000, &n, &scanned);
	ck_assert_uint_eq(scanned, 700);
	ck_assert_uint_eq(n, 600); /* 300 texts, each in both types */
	for (i = 0; i < n; i++) {
		sum += g[i].count;
		if (i)
			ck_assert_uint_le(g[i].count, g[i - 1].count);
	}
	ck_assert_uint_eq(sum, 700);
	ck_group(&g[0], "a", "error 99", 2); /* the newest of the twos */
	ck_assert_uint_eq(g[99].count, 2);
	ck_assert_uint_eq(g[100].count, 1);
	m2w_dead_groups_free(g, n);
	g = groups(NULL, 0, 0, &n, &scanned);
	ck_assert_uint_eq(n, 100); /* the default limit */
	m2w_dead_groups_free(g, n);
}
END_TEST

START_TEST(test_dead_groups_json)
{
	struct m2w_dead_group *g;
	json_object *o, *a, *e, *v;
	uint64_t scanned;
	size_t n;

	dead_of("price", "<img src=x onerror=alert(1)>", 400);
	dead_of("price", "", 0);
	g = groups(NULL, 0, 1, &n, &scanned);
	o = m2w_dead_groups_json(g, n, scanned);
	ck_assert(json_object_object_get_ex(o, "scanned", &v));
	ck_assert_int_eq(json_object_get_int64(v), 2);
	ck_assert(json_object_object_get_ex(o, "groups", &a));
	ck_assert_uint_eq(json_object_array_length(a), 1);
	e = json_object_array_get_idx(a, 0);
	ck_assert(json_object_object_get_ex(e, "type", &v));
	ck_assert_str_eq(json_object_get_string(v), "price");
	ck_assert(json_object_object_get_ex(e, "error", &v));
	ck_assert(json_object_object_get_ex(e, "count", &v));
	ck_assert_int_eq(json_object_get_int64(v), 1);
	ck_assert(json_object_object_get_ex(e, "first_ms", &v));
	ck_assert(json_object_object_get_ex(e, "last_ms", &v));
	ck_assert(json_object_object_get_ex(e, "example_id", &v));
	ck_assert_int_eq(json_object_get_int64(v), (int64_t)g[0].example_id);
	ck_assert(json_object_object_get_ex(e, "last_status", &v));
	json_object_put(o);
	m2w_dead_groups_free(g, n);
	/* the group without an error: "" and a null status */
	g = groups("price", 0, 0, &n, &scanned);
	ck_assert_uint_eq(n, 2);
	o = m2w_dead_groups_json(g, n, scanned);
	ck_assert(json_object_object_get_ex(o, "groups", &a));
	e = json_object_array_get_idx(a, 0); /* the newest of two groups of one */
	ck_assert(json_object_object_get_ex(e, "error", &v));
	ck_assert_str_eq(json_object_get_string(v), "");
	ck_assert(json_object_object_get_ex(e, "last_status", &v));
	ck_assert_ptr_null(v);
	json_object_put(o);
	m2w_dead_groups_free(g, n);
}
END_TEST

/* ========================================================== retry_now */

START_TEST(test_retry_now)
{
	struct m2w_new_task t = tu_task("price", "{\"a\":1}");
	uint64_t id, tok, done;

	fast_policy("price");
	id = enq("price");
	tok = lease_expect(id, 0);
	CK_OK(m2w_task_fail(Q, id, tok, M2W_CLASS_TRANSIENT, "x", 500, 0, EB));
	ck_assert_state(Q, id, M2W_SCHEDULED);
	ck_assert_uint_eq(lease_count(10), 0);
	CK_OK(m2w_queue_retry_now(Q, id, EB));
	ck_assert_state(Q, id, M2W_READY);
	tok = lease_expect(id, 0);
	CK_OK(m2w_task_ack(Q, id, tok, 0, EB));

	t.not_before_ms = TU_T0 + 3600000;
	tu_enqueue_task(Q, &t);
	CK_OK(m2w_queue_retry_now(Q, t.id, EB));
	lease_expect(t.id, 0);

	done = make_done("price");
	CK_RC(M2W_ESTATE, m2w_queue_retry_now(Q, done, EB));
	CK_RC(M2W_ENOTFOUND, m2w_queue_retry_now(Q, done + 1000, EB));
	ck_assert_store_ok(Q);
}
END_TEST

/* ============================================================== delete */

START_TEST(test_delete)
{
	struct m2w_new_task t = tu_task("price", "{\"a\":1}");
	struct m2w_task *g = NULL;
	uint64_t old;

	t.idem_key = "del-key";
	old = tu_enqueue_task(Q, &t);
	CK_OK(m2w_queue_delete(Q, old, 0, EB));
	CK_RC(M2W_ENOTFOUND, m2w_queue_get(Q, old, &g, EB));
	ck_assert_uint_eq(tu_total(Q), 0);
	CK_RC(M2W_ENOTFOUND, m2w_queue_delete(Q, old, 0, EB));

	t = tu_task("price", "{\"a\":2}");
	t.idem_key = "del-key";
	tu_enqueue_task(Q, &t);
	ck_assert_int_eq(t.duplicate, 0);
	ck_assert_uint_ne(t.id, old);
	ck_assert_uint_eq(tu_total(Q), 1);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_delete_leased)
{
	uint64_t id = enq("price"), tok = lease_expect(id, 0);
	uint64_t dead = make_dead("price", "x"), done = make_done("price");

	CK_RC(M2W_ESTATE, m2w_queue_delete(Q, id, 0, EB));
	ck_assert_state(Q, id, M2W_LEASED);
	CK_OK(m2w_queue_delete(Q, id, 1, EB));
	CK_RC(M2W_ENOTFOUND, m2w_task_ack(Q, id, tok, 0, EB));
	CK_OK(m2w_queue_delete(Q, dead, 0, EB));
	CK_OK(m2w_queue_delete(Q, done, 0, EB));
	ck_assert_uint_eq(tu_total(Q), 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_delete_with_history)
{
	/* the only task, with history: its entries are the last ones */
	uint64_t done = make_done("price");
	struct m2w_task *g = NULL;

	CK_OK(m2w_queue_delete(Q, done, 0, EB));
	CK_RC(M2W_ENOTFOUND, m2w_queue_get(Q, done, &g, EB));
	ck_assert_uint_eq(tu_total(Q), 0);
	ck_assert_store_ok(Q);
}
END_TEST

/* =============================================================== purge */

START_TEST(test_purge_done)
{
	struct m2w_new_task t1 = tu_task("price", "{\"a\":1}");
	struct m2w_new_task t2 = tu_task("price", "{\"a\":2}");
	struct m2w_task *g = NULL;
	size_t count = 99;
	uint64_t tok;

	t1.idem_key = "purge-1";
	t2.idem_key = "purge-2";
	tu_enqueue_task(Q, &t1);
	tu_enqueue_task(Q, &t2);
	advance(1000);
	tok = lease_expect(t1.id, 0);
	CK_OK(m2w_task_ack(Q, t1.id, tok, 0, EB));
	advance(4000);
	tok = lease_expect(t2.id, 0);
	CK_OK(m2w_task_ack(Q, t2.id, tok, 0, EB));
	advance(1000);

	CK_OK(m2w_queue_purge(Q, M2W_DONE, TU_T0 + 3000, &count, EB));
	ck_assert_uint_eq(count, 1);
	CK_RC(M2W_ENOTFOUND, m2w_queue_get(Q, t1.id, &g, EB));
	ck_assert_state(Q, t2.id, M2W_DONE);
	ck_assert_uint_eq(tu_count(Q, M2W_DONE), 1);

	t1.id = 0;
	tu_enqueue_task(Q, &t1);
	ck_assert_int_eq(t1.duplicate, 0);
	tu_enqueue_task(Q, &t2);
	ck_assert_int_eq(t2.duplicate, 1);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_purge_all_done)
{
	uint64_t ids[3];
	size_t count = 0, i;

	for (i = 0; i < 3; i++)
		ids[i] = make_done("price");
	advance(1);
	CK_OK(m2w_queue_purge(Q, M2W_DONE, NOW, &count, EB));
	ck_assert_uint_eq(count, 3);
	for (i = 0; i < 3; i++) {
		struct m2w_task *g = NULL;

		CK_RC(M2W_ENOTFOUND, m2w_queue_get(Q, ids[i], &g, EB));
	}
	ck_assert_uint_eq(tu_total(Q), 0);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_purge_dead_and_superseded)
{
	uint64_t d1, d2, s1, b;
	size_t count = 99;

	d1 = make_dead("price", "x");
	advance(1000);
	d2 = make_dead("price", "y");
	s1 = enq_group("stock", "g", 0);
	b = enq_group("stock", "g", 1);
	ck_assert_state(Q, s1, M2W_SUPERSEDED);

	CK_OK(m2w_queue_purge(Q, M2W_DEAD, TU_T0 + 500, &count, EB));
	ck_assert_uint_eq(count, 1);
	ck_assert_uint_eq(tu_count(Q, M2W_DEAD), 1);
	ck_assert_state(Q, d2, M2W_DEAD);
	CK_OK(m2w_queue_purge(Q, M2W_SUPERSEDED, NOW + 1, &count, EB));
	ck_assert_uint_eq(count, 1);
	ck_assert_uint_eq(tu_count(Q, M2W_SUPERSEDED), 0);
	ck_assert_state(Q, b, M2W_READY);
	CK_RC(M2W_EINVAL, m2w_queue_purge(Q, M2W_READY, NOW + 1, &count, EB));
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 1);
	(void)d1;
	ck_assert_store_ok(Q);
}
END_TEST

/* Purged counts as m2w_queue_stats reports them. */
static uint64_t purged(int state)
{
	struct m2w_stats st;
	uint64_t n;

	CK_OK(m2w_queue_stats(Q, &st, EB));
	n = st.purged[state];
	m2w_stats_free(&st);
	return n;
}

/* The retention's walks: steps of at most `max`, a walk that goes on from
 * where it stopped (past the done tasks kept while superseded ones go),
 * keys freed, counts kept in the store across a reopen. */
START_TEST(test_purge_step_walks_on)
{
	struct m2w_purge_walk wd, ws;
	struct m2w_new_task t = tu_task("price", "{\"a\":1}");
	uint64_t ids[5], sup, tok;
	size_t n, i;
	int more;

	for (i = 0; i < 5; i++) {
		ids[i] = make_done("price");
		advance(10);
	}
	enq_group("stock", "sku:1", 1);
	sup = enq_group("stock", "sku:1", 1);
	ck_assert_state(Q, sup - 1, M2W_SUPERSEDED);
	CK_OK(m2w_queue_pause(Q, "stock", 1, EB)); /* leases take price only */
	advance(10);
	memset(&wd, 0, sizeof(wd));
	wd.state = M2W_DONE;
	memset(&ws, 0, sizeof(ws));
	ws.state = M2W_SUPERSEDED;

	/* two a step: 2, 2, 1 and then the walk met the boundary */
	CK_OK(m2w_queue_purge_step(Q, &wd, NOW, 2, &n, &more, EB));
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(more, 1);
	CK_OK(m2w_queue_purge_step(Q, &wd, NOW, 2, &n, &more, EB));
	ck_assert_uint_eq(n, 2);
	CK_OK(m2w_queue_purge_step(Q, &wd, NOW, 2, &n, &more, EB));
	ck_assert_uint_eq(n, 1);
	CK_OK(m2w_queue_purge_step(Q, &wd, NOW, 2, &n, &more, EB));
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(more, 0);
	ck_assert_uint_eq(tu_count(Q, M2W_DONE), 0);
	ck_assert_uint_eq(tu_count(Q, M2W_SUPERSEDED), 1);

	/* a done task that ends later is found from where the walk stopped */
	t.idem_key = "walk-1";
	tu_enqueue_task(Q, &t);
	tok = lease_expect(t.id, 0);
	CK_OK(m2w_task_ack(Q, t.id, tok, 0, EB));
	advance(10);
	CK_OK(m2w_queue_purge_step(Q, &ws, NOW, 0, &n, &more, EB));
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(tu_count(Q, M2W_DONE), 1);   /* not superseded */
	CK_OK(m2w_queue_purge_step(Q, &wd, NOW, 0, &n, &more, EB));
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(more, 0);

	/* its key is free again */
	t.id = 0;
	tu_enqueue_task(Q, &t);
	ck_assert_int_eq(t.duplicate, 0);

	ck_assert_uint_eq(purged(M2W_DONE), 6);
	ck_assert_uint_eq(purged(M2W_SUPERSEDED), 1);
	ck_assert_uint_eq(purged(M2W_DEAD), 0);
	reopen();
	ck_assert_uint_eq(purged(M2W_DONE), 6);
	memset(&wd, 0, sizeof(wd));
	wd.state = M2W_READY;
	CK_RC(M2W_EINVAL, m2w_queue_purge_step(Q, &wd, NOW, 0, &n, &more, EB));
	(void)ids;
	ck_assert_store_ok(Q);
}
END_TEST

/* The pages a purge frees are on LMDB's free list (map_free), and new
 * tasks use them before the file grows. */
START_TEST(test_purge_frees_pages_for_reuse)
{
	struct m2w_queue_opts o;
	struct m2w_stats st;
	uint64_t used, freed;
	size_t i, n;

	/* nosync: 10,000 commits in seconds; pages are freed the same way */
	m2w_queue_close(Q);
	memset(&o, 0, sizeof(o));
	o.path = E.path;
	o.nosync = 1;
	CK_OK(m2w_queue_open(&o, &E.q, EB));
	Q = E.q;
	m2w_queue_set_clock(Q, tu_clock_now, &E.clock);
	for (i = 0; i < 2000; i++)
		make_done("price");
	advance(1);
	CK_OK(m2w_queue_purge(Q, M2W_DONE, NOW, &n, EB));
	ck_assert_uint_eq(n, 2000);
	make_done("price");     /* a commit or two for the free list to settle */
	make_done("price");
	CK_OK(m2w_queue_stats(Q, &st, EB));
	used = st.map_used;
	freed = st.map_free;
	m2w_stats_free(&st);
	ck_assert_msg(freed > used / 2, "map_free %llu of %llu used",
		      (unsigned long long)freed, (unsigned long long)used);
	for (i = 0; i < 1500; i++)
		make_done("price");
	CK_OK(m2w_queue_stats(Q, &st, EB));
	ck_assert_msg(st.map_used == used, "the file grew from %llu to %llu "
		      "with %llu free", (unsigned long long)used,
		      (unsigned long long)st.map_used,
		      (unsigned long long)freed);
	m2w_stats_free(&st);
	ck_assert_store_ok(Q);
}
END_TEST

/* ================================================================ lock */

static int open_exclusive(struct m2w_queue **q, char *eb)
{
	struct m2w_queue_opts o;

	memset(&o, 0, sizeof(o));
	o.path = E.path;
	o.exclusive = 1;
	return m2w_queue_open(&o, q, eb);
}

/* One exclusive open at a time, named in the refusal; other opens are
 * not held up; closing lets the next one in. */
START_TEST(test_exclusive_lock)
{
	struct m2w_queue *a = NULL, *b = NULL;
	char eb[M2W_ERRBUF_SIZE] = "", pid[32];

	CK_OK(open_exclusive(&a, EB));
	ck_assert_int_eq(open_exclusive(&b, eb), M2W_EBUSY);
	ck_assert_ptr_null(b);
	snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
	ck_assert_msg(strstr(eb, pid) && strstr(eb, "in use"),
		      "refusal \"%s\" does not name %s", eb, pid);
	enq("price");          /* Q, not exclusive, works beside it */
	m2w_queue_close(a);
	CK_OK(open_exclusive(&b, EB));
	m2w_queue_close(b);
}
END_TEST

/* At start every lease goes back at once, expired or not, its attempt
 * counted; one on its last attempt dies. Only with the store exclusive. */
START_TEST(test_release_stale)
{
	struct m2w_queue *x = NULL;
	uint64_t a = enq("price"), b = enq_max("price", 1), c = enq("price");
	struct m2w_attempt *h = NULL;
	size_t n = 99;

	lease_expect(a, 60000);
	lease_expect(b, 60000);
	CK_RC(M2W_ESTATE, m2w_queue_release_stale(Q, &n, EB));
	ck_assert_uint_eq(n, 0);
	CK_OK(open_exclusive(&x, EB));
	m2w_queue_set_clock(x, tu_clock_now, &E.clock);
	CK_OK(m2w_queue_release_stale(x, &n, EB));
	ck_assert_uint_eq(n, 2);
	m2w_queue_close(x);
	ck_assert_state(Q, a, M2W_READY);
	ck_assert_uint_eq(TASK(a, attempts), 1);
	ck_assert_int_eq(TASK(a, next_run_ms), NOW);
	ck_assert_state(Q, b, M2W_DEAD);
	ck_assert_state(Q, c, M2W_READY);
	CK_OK(m2w_queue_history(Q, a, &h, &n, EB));
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(h[0].outcome, M2W_OUTCOME_EXPIRED);
	ck_assert_ptr_nonnull(strstr(h[0].message, "released at start"));
	free(h);
	ck_assert_uint_eq(tu_count(Q, M2W_LEASED), 0);
	ck_assert_store_ok(Q);
}
END_TEST

/* ======================================================= map growth, full */

START_TEST(test_map_growth_then_full)
{
	char payload[1100];
	struct m2w_new_task t[100];
	struct m2w_stats st;
	char eb[M2W_ERRBUF_SIZE];
	uint64_t max_map = 0, first_id = 0;
	size_t batches = 0, i;
	int rc = M2W_OK, round;
	struct m2w_task *lt;

	tu_close(&E);
	tu_env_path(&E, "small");
	CK_OK(tu_open_ex(&E, TU_MIB, 8 * TU_MIB, 1, EB));
	Q = E.q;

	memset(payload, 0, sizeof(payload));
	strcpy(payload, "{\"pad\":\"");
	memset(payload + 8, 'p', 1000);
	strcpy(payload + 1008, "\"}");
	for (round = 0; round < 400; round++) {
		for (i = 0; i < 100; i++)
			t[i] = tu_task("bulk", payload);
		eb[0] = '\0';
		rc = m2w_queue_enqueue(Q, t, 100, eb);
		if (rc != M2W_OK)
			break;
		if (!first_id)
			first_id = t[0].id;
		batches++;
		tu_stats(Q, &st);
		if (st.map_size > max_map)
			max_map = st.map_size;
		ck_assert_uint_le(st.map_size, 8 * TU_MIB);
		ck_assert_uint_eq(st.map_max, 8 * TU_MIB);
		m2w_stats_free(&st);
	}
	ck_assert_msg(rc == M2W_EFULL,
		      "after %zu batches: rc %d (%s), expected EFULL: %s",
		      batches, rc, m2w_strerror(rc), eb);
	ck_assert_msg(strcasestr(eb, "full") != NULL,
		      "errbuf does not say full: \"%s\"", eb);
	ck_assert_uint_gt(batches, 0);
	ck_assert_msg(max_map > TU_MIB, "map never grew: %llu",
		      (unsigned long long)max_map);
	/* all or none: the failed batch left nothing behind */
	ck_assert_uint_eq(tu_count(Q, M2W_READY), batches * 100);

	/* the store still drains */
	lt = tu_lease1(Q, 0);
	CK_OK(m2w_task_ack(Q, lt->id, lt->lease_token, 0, EB));
	ck_assert_state(Q, lt->id, M2W_DONE);
	m2w_task_free(lt);
	lt = tu_lease1(Q, 0);
	CK_OK(m2w_task_fail(Q, lt->id, lt->lease_token, M2W_CLASS_TRANSIENT,
			    "retry me", 503, 0, EB));
	m2w_task_free(lt);
	ck_assert_store_ok(Q);
	(void)first_id;

}
END_TEST

/* Enqueues batches of 10 ~1 KiB tasks until the store refuses; how many
 * went in. */
static size_t fill(void)
{
	char payload[1100], eb[M2W_ERRBUF_SIZE];
	struct m2w_new_task t[10];
	size_t i, stored = 0;
	int rc;

	strcpy(payload, "{\"pad\":\"");
	memset(payload + 8, 'p', 1000);
	strcpy(payload + 1008, "\"}");
	do {
		for (i = 0; i < 10; i++)
			t[i] = tu_task("bulk", payload);
		if ((rc = m2w_queue_enqueue(Q, t, 10, eb)) == M2W_OK)
			stored += 10;
	} while (rc == M2W_OK && stored < 100000);
	ck_assert_msg(rc == M2W_EFULL || (rc == M2W_OK && stored), "fill: %s",
		      eb);
	return stored;
}

/* Leases and acks every ready task. */
static void drain(void)
{
	struct m2w_task **ts;
	size_t i, n;

	while ((ts = tu_lease(Q, 10, 0, &n)) && n) {
		for (i = 0; i < n; i++)
			CK_OK(m2w_task_ack(Q, ts[i]->id, ts[i]->lease_token, 0,
					   EB));
		tu_tasks_free(ts, n);
	}
	tu_tasks_free(ts, 0);
}

/* A full store, drained and purged, takes as much new work again: the
 * freed pages count (a write txn cannot read the freelist itself; the room
 * check once read 0 free pages there and stayed full for good). The map
 * starts at its maximum, so every enqueue counts what is in use. */
START_TEST(test_full_purged_takes_work)
{
	size_t purged = 0, first, got, total, rounds = 0;

	tu_close(&E);
	tu_env_path(&E, "full");
	CK_OK(tu_open_ex(&E, 4 * TU_MIB, 4 * TU_MIB, 1, EB));
	Q = E.q;
	/* filled with done tasks until no new one fits */
	total = first = fill();
	do {
		drain();
		total += got = fill();
	} while (got && ++rounds < 50);
	ck_assert_uint_eq(got, 0);
	drain();
	CK_OK(m2w_queue_purge(Q, M2W_DONE, INT64_MAX, &purged, EB));
	ck_assert_uint_eq(purged, total);
	got = fill();
	ck_assert_msg(got * 2 >= first, "first fill %zu tasks, after the "
		      "purge only %zu", first, got);
}
END_TEST

/* =================================================== several processes */

static void child_enqueue(const char *path, int child, int count)
{
	struct m2w_queue_opts o;
	struct m2w_queue *q = NULL;
	char eb[M2W_ERRBUF_SIZE] = "", payload[64];
	int i, rc;

	memset(&o, 0, sizeof(o));
	o.path = path;
	rc = m2w_queue_open(&o, &q, eb);
	if (rc != M2W_OK) {
		fprintf(stderr, "child %d: open: %d %s\n", child, rc, eb);
		_exit(10);
	}
	for (i = 0; i < count; i++) {
		struct m2w_new_task t;

		snprintf(payload, sizeof(payload), "{\"c\":%d,\"i\":%d}", child,
			 i);
		memset(&t, 0, sizeof(t));
		t.type = "multi";
		t.payload = payload;
		rc = m2w_queue_enqueue(q, &t, 1, eb);
		if (rc != M2W_OK || t.err != M2W_OK || t.id == 0 ||
		    t.duplicate) {
			fprintf(stderr, "child %d: enqueue %d: %d %s\n", child,
				i, rc, eb);
			_exit(11);
		}
	}
	m2w_queue_close(q);
	_exit(0);
}

/* A batch and its file's progress are one transaction; progress alone too. */
START_TEST(test_file_progress)
{
	struct m2w_new_task t[2];
	struct m2w_file_info f, got;

	memset(&f, 0, sizeof(f));
	strcpy(f.fingerprint, "ab12");
	strcpy(f.name, "20250326_120000.csv");
	f.rows = 2;
	f.accepted = 2;
	f.first_ms = 1000;
	t[0] = tu_task("tracking", "{\"a\":1}");
	t[1] = tu_task("tracking", "{\"a\":2}");
	CK_RC(M2W_ENOTFOUND, m2w_queue_file_get(Q, "ab12", &got, EB));
	CK_OK(m2w_queue_enqueue_file(Q, t, 2, &f, EB));
	CK_OK(m2w_queue_file_get(Q, "ab12", &got, EB));
	ck_assert_str_eq(got.name, "20250326_120000.csv");
	ck_assert_uint_eq(got.rows, 2);
	ck_assert_uint_eq(got.accepted, 2);
	ck_assert(got.first_ms == 1000 && got.finished_ms == 0);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 2);
	/* a bad batch writes neither tasks nor progress */
	f.rows = 3;
	t[0] = tu_task("tracking", "{not json");
	CK_RC(M2W_EINVAL, m2w_queue_enqueue_file(Q, t, 1, &f, EB));
	CK_OK(m2w_queue_file_get(Q, "ab12", &got, EB));
	ck_assert_uint_eq(got.rows, 2);
	/* the end of the file: progress alone */
	f.rejected = 1;
	f.finished_ms = 2000;
	CK_OK(m2w_queue_enqueue_file(Q, NULL, 0, &f, EB));
	CK_OK(m2w_queue_file_get(Q, "ab12", &got, EB));
	ck_assert(got.rows == 3 && got.rejected == 1 && got.finished_ms == 2000);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 2);
	ck_assert_store_ok(Q);
}
END_TEST

START_TEST(test_two_processes_enqueue)
{
	pid_t pid[2];
	uint64_t *ids;
	size_t n, i;
	int c, status, per_child[2] = { 0, 0 };

	tu_close(&E); /* never across fork */
	Q = NULL;
	fflush(NULL);
	for (c = 0; c < 2; c++) {
		pid[c] = fork();
		ck_assert_msg(pid[c] >= 0, "fork failed");
		if (pid[c] == 0)
			child_enqueue(E.path, c, 300);
	}
	for (c = 0; c < 2; c++) {
		ck_assert_int_eq(waitpid(pid[c], &status, 0), pid[c]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "child %d: status 0x%x", c, status);
	}
	CK_OK(tu_open_ex(&E, 0, 0, 0, EB));
	Q = E.q;
	E.clock.now = tu_realtime_ms() + 3600000; /* children used real time */
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 600);
	ids = list_all(M2W_READY, NULL, NULL, &n);
	ck_assert_uint_eq(n, 600);
	assert_distinct(ids, n);
	free(ids);
	for (i = 0; i < 600; i++) {
		struct m2w_task *t = tu_lease1(Q, 0);

		ck_assert(strncmp(t->payload, "{\"c\":", 5) == 0);
		per_child[t->payload[5] == '1']++;
		CK_OK(m2w_task_ack(Q, t->id, t->lease_token, 0, EB));
		m2w_task_free(t);
	}
	ck_assert_int_eq(per_child[0], 300);
	ck_assert_int_eq(per_child[1], 300);
	ck_assert_store_ok(Q);
}
END_TEST

/* ============================================================= threads */

#define NTHREADS 8
#define PER_THREAD 200
#define NTASKS (NTHREADS * PER_THREAD)

struct thr {
	int idx;
	uint64_t *ids;          /* enqueue: this thread's ids */
	const uint64_t *sorted; /* lease: all ids, sorted */
	int *acked;             /* lease: per id index */
	int errors;
	int ok;
	char eb[M2W_ERRBUF_SIZE];
};

static void *thr_enqueue(void *arg)
{
	struct thr *t = arg;
	char payload[64];
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		struct m2w_new_task nt;
		int rc;

		snprintf(payload, sizeof(payload), "{\"t\":%d,\"i\":%d}",
			 t->idx, i);
		nt = tu_task("conc", payload);
		rc = m2w_queue_enqueue(Q, &nt, 1, t->eb);
		if (rc != M2W_OK || nt.err || nt.id == 0 || nt.duplicate)
			t->errors++;
		t->ids[i] = nt.id;
	}
	return NULL;
}

static void *thr_lease_ack(void *arg)
{
	struct thr *t = arg;
	struct m2w_lease_opts o;

	memset(&o, 0, sizeof(o));
	o.max = 1;
	o.lease_ms = 3600000;
	for (;;) {
		struct m2w_task **ts = NULL;
		const uint64_t *hit;
		size_t n = 0;
		int rc = m2w_queue_lease(Q, &o, &ts, &n, t->eb);

		if (rc != M2W_OK || n > 1) {
			t->errors++;
			tu_tasks_free(ts, n);
			break;
		}
		if (n == 0)
			break;
		rc = m2w_task_ack(Q, ts[0]->id, ts[0]->lease_token, 0, t->eb);
		if (rc == M2W_OK) {
			hit = bsearch(&ts[0]->id, t->sorted, NTASKS,
				      sizeof(uint64_t), u64_cmp);
			if (hit)
				__sync_fetch_and_add(&t->acked[hit - t->sorted],
						     1);
			else
				t->errors++;
			t->ok++;
		} else {
			t->errors++;
		}
		tu_tasks_free(ts, n);
	}
	return NULL;
}

START_TEST(test_threads_enqueue_lease_ack)
{
	static uint64_t ids[NTASKS];
	static int acked[NTASKS];
	struct thr th[NTHREADS];
	pthread_t tid[NTHREADS];
	int i, total = 0;

	memset(th, 0, sizeof(th));
	for (i = 0; i < NTHREADS; i++) {
		th[i].idx = i;
		th[i].ids = ids + i * PER_THREAD;
		ck_assert_int_eq(pthread_create(&tid[i], NULL, thr_enqueue,
						&th[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		ck_assert_msg(th[i].errors == 0, "enqueue thread %d: %d errors: %s",
			      i, th[i].errors, th[i].eb);
	}
	assert_distinct(ids, NTASKS); /* sorts them too */
	ck_assert_uint_eq(tu_count(Q, M2W_READY), NTASKS);

	for (i = 0; i < NTHREADS; i++) {
		th[i].sorted = ids;
		th[i].acked = acked;
		ck_assert_int_eq(pthread_create(&tid[i], NULL, thr_lease_ack,
						&th[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		ck_assert_msg(th[i].errors == 0, "lease thread %d: %d errors: %s",
			      i, th[i].errors, th[i].eb);
		total += th[i].ok;
	}
	ck_assert_int_eq(total, NTASKS);
	for (i = 0; i < NTASKS; i++)
		ck_assert_msg(acked[i] == 1, "task %" PRIu64 " acked %d times",
			      ids[i], acked[i]);
	ck_assert_uint_eq(tu_count(Q, M2W_DONE), NTASKS);
	ck_assert_uint_eq(tu_count(Q, M2W_READY), 0);
	ck_assert_uint_eq(tu_count(Q, M2W_LEASED), 0);
	ck_assert_store_ok(Q);
}
END_TEST

/* ========================================================== corruption */

/* Enqueues `n` tasks, closes, lets `edit` change their records, reopens. */
static void corrupt_tasks(uint64_t *ids, size_t n,
			  void (*edit)(struct raw *, MDB_dbi, uint64_t *,
				       size_t))
{
	struct raw r;
	size_t i;

	for (i = 0; i < n; i++) {
		struct m2w_new_task t = tu_task("price", "{\"a\":1}");

		/* long fields before the payload: a cut lands in them */
		t.idem_key = NULL;
		t.source = "some-rather-long-source-name-for-the-record.csv:"
			   "1234567890";
		ids[i] = tu_enqueue_task(Q, &t);
	}
	tu_close(&E);
	Q = NULL;
	raw_begin(&r, E.path);
	edit(&r, raw_dbi(&r, "tasks"), ids, n);
	raw_end(&r);
	CK_OK(tu_open_ex(&E, 0, 0, 0, EB));
	Q = E.q;
}

/* Everything that reads the damaged task fails cleanly, never crashes. */
static void assert_damage_contained(uint64_t bad, uint64_t good)
{
	struct m2w_task *g = NULL, **ts = NULL;
	char eb[M2W_ERRBUF_SIZE] = "";
	struct m2w_lease_opts o;
	struct m2w_stats st;
	size_t n = 0, i, reaped;
	int rc;

	ck_assert_int_eq(m2w_queue_get(Q, bad, &g, eb), M2W_ECORRUPT);
	ck_assert_msg(eb[0] != '\0', "errbuf empty on ECORRUPT");
	g = tu_get(Q, good);
	m2w_task_free(g);
	eb[0] = '\0';
	ck_assert_int_eq(m2w_queue_check(Q, eb), M2W_ECORRUPT);
	ck_assert_msg(eb[0] != '\0', "check: errbuf empty on ECORRUPT");

	/* these may fail, but must not crash */
	memset(&o, 0, sizeof(o));
	o.max = 10;
	rc = m2w_queue_lease(Q, &o, &ts, &n, NULL);
	if (rc == M2W_OK) {
		for (i = 0; i < n; i++) {
			ck_assert_uint_ne(ts[i]->id, bad);
			m2w_task_ack(Q, ts[i]->id, ts[i]->lease_token, 0, NULL);
		}
		tu_tasks_free(ts, n);
	}
	m2w_task_ack(Q, bad, 1, 0, NULL);
	m2w_queue_retry_now(Q, bad, NULL);
	m2w_queue_reap(Q, &reaped, NULL);
	if (m2w_queue_stats(Q, &st, NULL) == M2W_OK)
		m2w_stats_free(&st);
	if (m2w_queue_list(Q, &(struct m2w_list_opts){ .state = M2W_READY },
			   &ts, &n, (char[M2W_CURSOR_MAX]){ 0 },
			   NULL) == M2W_OK)
		tu_tasks_free(ts, n);
}

static void edit_garbage(struct raw *r, MDB_dbi dbi, uint64_t *ids, size_t n)
{
	unsigned char k[8], junk[5] = { 0xde, 0xad, 0xbe, 0xef, 0x42 };
	MDB_val kv = { 8, k }, v = { sizeof(junk), junk };

	(void)n;
	be64(k, ids[0]);
	ck_assert_int_eq(mdb_put(r->txn, dbi, &kv, &v, 0), 0);
}

START_TEST(test_corrupt_record_garbage)
{
	uint64_t ids[2];

	corrupt_tasks(ids, 2, edit_garbage);
	assert_damage_contained(ids[0], ids[1]);
}
END_TEST

/* Truncations: cut into the strings, half, tiny, one byte, empty. */
static size_t cut_len(size_t i, size_t len)
{
	switch (i) {
	case 0: return len - 40;
	case 1: return len / 2;
	case 2: return 8;
	case 3: return 1;
	default: return 0;
	}
}

#define NCUTS 5

static void edit_truncate(struct raw *r, MDB_dbi dbi, uint64_t *ids, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < NCUTS; i++) {
		unsigned char k[8], *copy;
		MDB_val kv = { 8, k }, v;

		be64(k, ids[i]);
		ck_assert_int_eq(mdb_get(r->txn, dbi, &kv, &v), 0);
		ck_assert_uint_gt(v.mv_size, 60);
		copy = malloc(v.mv_size);
		ck_assert_ptr_nonnull(copy);
		memcpy(copy, v.mv_data, v.mv_size);
		v.mv_size = cut_len(i, v.mv_size);
		v.mv_data = copy;
		ck_assert_int_eq(mdb_put(r->txn, dbi, &kv, &v, 0), 0);
		free(copy);
	}
}

START_TEST(test_corrupt_record_truncated)
{
	uint64_t ids[NCUTS + 1];
	struct m2w_task *g = NULL;
	size_t i;

	corrupt_tasks(ids, NCUTS + 1, edit_truncate);
	for (i = 0; i < NCUTS; i++) {
		char eb[M2W_ERRBUF_SIZE] = "";
		int rc = m2w_queue_get(Q, ids[i], &g, eb);

		ck_assert_msg(rc == M2W_ECORRUPT,
			      "cut %zu: get returned %d (%s), want ECORRUPT", i,
			      rc, m2w_strerror(rc));
		if (rc == M2W_OK)
			m2w_task_free(g);
	}
	assert_damage_contained(ids[0], ids[NCUTS]);
}
END_TEST

START_TEST(test_check_detects_missing_index)
{
	struct raw r;
	char eb[M2W_ERRBUF_SIZE] = "";

	enq("price");
	enq("price");
	tu_close(&E);
	Q = NULL;
	raw_begin(&r, E.path);
	ck_assert_int_eq(mdb_drop(r.txn, raw_dbi(&r, "ready"), 0), 0);
	raw_end(&r);
	CK_OK(tu_open_ex(&E, 0, 0, 0, EB));
	Q = E.q;
	ck_assert_int_eq(m2w_queue_check(Q, eb), M2W_ECORRUPT);
	ck_assert_msg(eb[0] != '\0', "check: errbuf empty");
}
END_TEST

/* ================================================================ suite */

static TCase *tcase(Suite *s, const char *name, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

/* ---------------------------------------------------------------- outbox */

/* Reopens the store with the outbox in `mode`. */
static void reopen_outbox(int mode)
{
	struct m2w_queue_opts o;

	m2w_queue_close(Q);
	memset(&o, 0, sizeof(o));
	o.path = E.path;
	o.outbox = mode;
	CK_OK(m2w_queue_open(&o, &E.q, EB));
	Q = E.q;
	m2w_queue_set_clock(Q, tu_clock_now, &E.clock);
}

static uint64_t events_waiting(void)
{
	struct m2w_stats st;
	uint64_t n;

	CK_OK(m2w_queue_stats(Q, &st, EB));
	n = st.events_waiting;
	m2w_stats_free(&st);
	return n;
}

START_TEST(test_outbox_events_with_ends)
{
	struct m2w_settle s;
	struct m2w_event *ev;
	uint64_t a, b, tok;
	size_t n;

	make_done("t");             /* outbox off: no event */
	ck_assert_uint_eq(events_waiting(), 0);
	reopen_outbox(M2W_OUTBOX_ON);
	a = enq("t");
	tok = lease_expect(a, 0);
	memset(&s, 0, sizeof(s));
	s.id = a;
	s.token = tok;
	s.kind = M2W_ACK;
	s.message = "shipment 12 created";
	s.result = "{\"shipment_id\":12}";
	CK_OK(m2w_queue_settle(Q, &s, 1, EB));
	CK_OK(s.err);
	b = make_dead("t", "Order is <b>closed</b>");
	enq_group("s", "sku:1", 1);
	enq_group("s", "sku:1", 1);  /* supersedes the first */
	ck_assert_uint_eq(events_waiting(), 3);

	CK_OK(m2w_outbox_read(Q, 10, &ev, &n, EB));
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_lt(ev[0].seq, ev[1].seq);
	ck_assert_ptr_nonnull(strstr(ev[0].json, "\"state\":\"done\""));
	ck_assert_ptr_nonnull(strstr(ev[0].json, "\"result\":{\"shipment_id\":12}"));
	ck_assert_ptr_nonnull(strstr(ev[0].json, "\"note\":\"shipment 12 created\""));
	ck_assert_ptr_nonnull(strstr(ev[1].json, "\"state\":\"dead\""));
	ck_assert_ptr_nonnull(strstr(ev[1].json, "\"error\":\"Order is <b>closed<\\/b>\""));
	ck_assert_ptr_nonnull(strstr(ev[1].json, "\"status\":422"));
	ck_assert_ptr_nonnull(strstr(ev[2].json, "\"state\":\"superseded\""));
	(void)b;

	/* deleted up to the first: two left, numbering goes on */
	CK_OK(m2w_outbox_delete(Q, ev[0].seq, EB));
	ck_assert_uint_eq(events_waiting(), 2);
	m2w_outbox_free(ev, n);
	CK_OK(m2w_outbox_delete(Q, UINT64_MAX, EB));
	ck_assert_uint_eq(events_waiting(), 0);
	make_done("t");
	CK_OK(m2w_outbox_read(Q, 10, &ev, &n, EB));
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ev[0].seq, 4);
	m2w_outbox_free(ev, n);

	/* kept by a process that keeps the mode (qctl), off when turned off */
	reopen_outbox(M2W_OUTBOX_KEEP);
	make_done("t");
	ck_assert_uint_eq(events_waiting(), 2);
	reopen_outbox(M2W_OUTBOX_OFF);
	make_done("t");
	ck_assert_uint_eq(events_waiting(), 2);
}
END_TEST

static Suite *queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc;

	tc = tcase(s, "open", 30);
	tcase_add_test(tc, test_open_create_new_dir);
	tcase_add_test(tc, test_open_missing);
	tcase_add_test(tc, test_open_reopen_keeps_tasks);
	tcase_add_test(tc, test_strerror_all_codes);
	tcase_add_test(tc, test_state_names);
	tcase_add_test(tc, test_schema_mismatch);

	tc = tcase(s, "enqueue", 30);
	tcase_add_test(tc, test_enqueue_one);
	tcase_add_test(tc, test_enqueue_invalid_json);
	tcase_add_test(tc, test_enqueue_valid_json_forms);
	tcase_add_test(tc, test_enqueue_payload_len);
	tcase_add_test(tc, test_enqueue_payload_max);
	tcase_add_test(tc, test_enqueue_batch_one_bad);
	tcase_add_test(tc, test_enqueue_bad_type);
	tcase_add_test(tc, test_idem_key_separate_calls);
	tcase_add_test(tc, test_idem_key_same_batch);
	tcase_add_test(tc, test_key_length_limits);
	tcase_add_test(tc, test_not_before_scheduled);
	tcase_add_test(tc, test_max_attempts_stored);

	tc = tcase(s, "lease", 30);
	tcase_add_test(tc, test_lease_basic);
	tcase_add_test(tc, test_lease_default_duration);
	tcase_add_test(tc, test_lease_fresh_tokens);
	tcase_add_test(tc, test_lease_empty_store);
	tcase_add_test(tc, test_lease_max_zero);
	tcase_add_test(tc, test_lease_skips_paused_type);
	tcase_add_test(tc, test_lease_pause_all);
	tcase_add_test(tc, test_lease_types_filter);
	tcase_add_test(tc, test_lease_fairness);

	tc = tcase(s, "ack", 30);
	tcase_add_test(tc, test_ack_done);
	tcase_add_test(tc, test_ack_twice_stale);
	tcase_add_test(tc, test_ack_wrong_token);
	tcase_add_test(tc, test_ack_not_leased);
	tcase_add_test(tc, test_ack_unknown_id);
	tcase_add_test(tc, test_ack_after_reap_stale);
	tcase_add_test(tc, test_ack_old_token_after_release);
	tcase_add_test(tc, test_settle_batch_independent);
	tcase_add_test(tc, test_settle_errors_other_kinds);

	tc = tcase(s, "fail", 30);
	tcase_add_test(tc, test_fail_transient_backoff);
	tcase_add_test(tc, test_fail_retry_after);
	tcase_add_test(tc, test_fail_permanent);
	tcase_add_test(tc, test_fail_settle_outputs_match_get);
	tcase_add_test(tc, test_fail_attempts_used_up);
	tcase_add_test(tc, test_fail_policy_max_attempts);
	tcase_add_test(tc, test_fail_auth_retried);
	tcase_add_test(tc, test_fail_message_cut);

	tc = tcase(s, "snooze_release_extend", 30);
	tcase_add_test(tc, test_snooze);
	tcase_add_test(tc, test_snooze_does_not_use_attempts);
	tcase_add_test(tc, test_release);
	tcase_add_test(tc, test_extend);

	tc = tcase(s, "reap", 30);
	tcase_add_test(tc, test_reap_to_ready);
	tcase_add_test(tc, test_reap_exhausted_dead);
	tcase_add_test(tc, test_lease_reaps_expired_first);

	tc = tcase(s, "history", 30);
	tcase_add_test(tc, test_history_order);
	tcase_add_test(tc, test_history_capped);

	tc = tcase(s, "groups", 30);
	tcase_add_test(tc, test_group_fifo);
	tcase_add_test(tc, test_group_fifo_on_max10);
	tcase_add_test(tc, test_group_independent);
	tcase_add_test(tc, test_group_retry_keeps_order);
	tcase_add_test(tc, test_group_exclusive_no_head_of_line);
	tcase_add_test(tc, test_group_supersede_before_lease);
	tcase_add_test(tc, test_group_supersede_while_leased);
	tcase_add_test(tc, test_group_supersede_replaces_plain_waiting);
	tcase_add_test(tc, test_group_head_fail_superseded);
	tcase_add_test(tc, test_group_head_release_reap_superseded);
	tcase_add_test(tc, test_group_dead_head_advances);
	tcase_add_test(tc, test_group_delete_head_advances);

	tc = tcase(s, "list", 30);
	tcase_add_test(tc, test_list_paging);
	tcase_add_test(tc, test_list_default_limit);
	tcase_add_test(tc, test_list_type_filter);
	tcase_add_test(tc, test_list_each_state);
	tcase_add_test(tc, test_list_dead);
	tcase_add_test(tc, test_list_grep);
	tcase_add_test(tc, test_list_since_until_pages);
	tcase_add_test(tc, test_list_since_until_ready);
	tcase_add_test(tc, test_list_grep_key_source);

	tc = tcase(s, "stats", 30);
	tcase_add_test(tc, test_stats_mix);

	tc = tcase(s, "repair", 30);
	tcase_add_test(tc, test_requeue_by_id);
	tcase_add_test(tc, test_requeue_by_type);
	tcase_add_test(tc, test_requeue_by_grep);
	tcase_add_test(tc, test_requeue_all);
	tcase_add_test(tc, test_requeue_dry_run);
	tcase_add_test(tc, test_requeue_not_dead);
	tcase_add_test(tc, test_requeue_by_error);
	tcase_add_test(tc, test_delete_dead_selections);
	tcase_add_test(tc, test_delete_dead_chunks);
	tcase_add_test(tc, test_retry_now);
	tcase_add_test(tc, test_delete);
	tcase_add_test(tc, test_delete_leased);
	tcase_add_test(tc, test_delete_with_history);
	tcase_add_test(tc, test_purge_done);
	tcase_add_test(tc, test_purge_all_done);
	tcase_add_test(tc, test_purge_dead_and_superseded);
	tcase_add_test(tc, test_purge_step_walks_on);
	tcase_add_test(tc, test_purge_frees_pages_for_reuse);
	tcase_add_test(tc, test_exclusive_lock);
	tcase_add_test(tc, test_release_stale);

	tc = tcase(s, "dead_groups", 30);
	tcase_add_test(tc, test_dead_groups);
	tcase_add_test(tc, test_dead_groups_order);
	tcase_add_test(tc, test_dead_groups_many);
	tcase_add_test(tc, test_dead_groups_json);

	tc = tcase(s, "outbox", 30);
	tcase_add_test(tc, test_outbox_events_with_ends);

	tc = tcase(s, "full", 120);
	tcase_add_test(tc, test_map_growth_then_full);
	tcase_add_test(tc, test_full_purged_takes_work);

	tc = tcase(s, "concurrency", 120);
	tcase_add_test(tc, test_two_processes_enqueue);
	tcase_add_test(tc, test_file_progress);
	tcase_add_test(tc, test_threads_enqueue_lease_ack);

	tc = tcase(s, "damage", 30);
	tcase_add_test(tc, test_corrupt_record_garbage);
	tcase_add_test(tc, test_corrupt_record_truncated);
	tcase_add_test(tc, test_check_detects_missing_index);
	return s;
}

int main(void)
{
	return tu_run("m2w-check-queue", queue_suite());
}
