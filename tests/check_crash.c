/*
 * check_crash.c - a worker process killed at random moments loses nothing.
 *
 * ROUNDS times: fork a child that opens the store and loops enqueue one,
 * lease up to 4, ack them, reporting on a pipe each enqueue ("E <id>
 * <seq>"), lease ("L <id>") and ack ("A <id>") only after the call
 * returned OK. In odd rounds the child waits 2 ms between lease and ack,
 * so that some kills land while it holds leases. The
 * parent reads for a random 20-150 ms, SIGKILLs the child, keeps the
 * complete lines, then opens the store and checks that every reported
 * enqueue exists with its payload and key, every reported ack is DONE, and
 * m2w_queue_check passes. At the end the leases the killed children held
 * must expire: with the clock moved 2 minutes on, reap, lease and ack
 * everything; nothing may stay ready or leased.
 *
 * The seed is printed; set M2W_CRASH_SEED to repeat a run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "m2worker/admin.h"
#include "m2worker/queue.h"
#include "testutil.h"

#define ROUNDS 35
#define CHILD_LEASE_MS 60000 /* the default lease */

/* ------------------------------------------------------------ the child */

static void child_say(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void child_say(int fd, const char *fmt, ...)
{
	char line[M2W_ERRBUF_SIZE + 64];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(line))
		len = (int)strlen(line);
	/* one write of < PIPE_BUF bytes: the line arrives whole or not at all */
	if (write(fd, line, (size_t)len) != len)
		_exit(4);
}

/* Runs until killed. Exits (with an "X" line) only on an error. */
static void child_run(const char *path, int round, int fd)
{
	struct m2w_queue_opts o;
	struct m2w_queue *q = NULL;
	struct m2w_lease_opts lo;
	char eb[M2W_ERRBUF_SIZE] = "", payload[64], key[64];
	unsigned seq;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	memset(&o, 0, sizeof(o));
	o.path = path;
	rc = m2w_queue_open(&o, &q, eb);
	if (rc != M2W_OK) {
		child_say(fd, "X %d open: %s\n", rc, eb);
		_exit(2);
	}
	memset(&lo, 0, sizeof(lo));
	lo.max = 4;
	lo.lease_ms = CHILD_LEASE_MS;
	for (seq = 0;; seq++) {
		struct m2w_new_task t;
		struct m2w_task **ts = NULL;
		size_t n = 0, i;

		snprintf(payload, sizeof(payload), "{\"n\":%u}", seq);
		snprintf(key, sizeof(key), "crash-%d-%u", round, seq);
		memset(&t, 0, sizeof(t));
		t.type = "crash";
		t.payload = payload;
		t.idem_key = key;
		rc = m2w_queue_enqueue(q, &t, 1, eb);
		if (rc != M2W_OK || t.err != M2W_OK || t.id == 0 ||
		    t.duplicate) {
			child_say(fd, "X %d enqueue %s (dup %d): %s\n", rc, key,
				  t.duplicate, eb);
			_exit(2);
		}
		child_say(fd, "E %" PRIu64 " %u\n", t.id, seq);

		rc = m2w_queue_lease(q, &lo, &ts, &n, eb);
		if (rc != M2W_OK) {
			child_say(fd, "X %d lease: %s\n", rc, eb);
			_exit(2);
		}
		for (i = 0; i < n; i++)
			child_say(fd, "L %" PRIu64 "\n", ts[i]->id);
		if (n && (round & 1))
			usleep(2000);
		for (i = 0; i < n; i++) {
			rc = m2w_task_ack(q, ts[i]->id, ts[i]->lease_token, 1,
					  eb);
			if (rc != M2W_OK) {
				child_say(fd, "X %d ack %" PRIu64 ": %s\n", rc,
					  ts[i]->id, eb);
				_exit(2);
			}
			child_say(fd, "A %" PRIu64 "\n", ts[i]->id);
		}
		if (ts)
			m2w_task_list_free(ts, n);
	}
}

/* ----------------------------------------------------------- the parent */

struct enq {
	uint64_t id;
	int round;
	unsigned seq;
};

struct log {
	struct enq *enq;
	size_t nenq, capenq;
	uint64_t *ack;
	size_t nack, capack;
	uint64_t *lease;
	size_t nlease, caplease;
	char err[M2W_ERRBUF_SIZE + 64]; /* the child's "X" line, if any */
	/* the partial line read so far */
	char buf[8192];
	size_t blen;
};

static void push_id(uint64_t **a, size_t *n, size_t *cap, uint64_t id)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 1024;
		*a = realloc(*a, *cap * sizeof(**a));
		ck_assert_ptr_nonnull(*a);
	}
	(*a)[(*n)++] = id;
}

static void log_line(struct log *lg, int round, const char *line)
{
	uint64_t id;
	unsigned seq;

	if (sscanf(line, "E %" SCNu64 " %u", &id, &seq) == 2) {
		if (lg->nenq == lg->capenq) {
			lg->capenq = lg->capenq ? 2 * lg->capenq : 1024;
			lg->enq = realloc(lg->enq,
					  lg->capenq * sizeof(*lg->enq));
			ck_assert_ptr_nonnull(lg->enq);
		}
		lg->enq[lg->nenq].id = id;
		lg->enq[lg->nenq].round = round;
		lg->enq[lg->nenq].seq = seq;
		lg->nenq++;
	} else if (sscanf(line, "A %" SCNu64, &id) == 1) {
		push_id(&lg->ack, &lg->nack, &lg->capack, id);
	} else if (sscanf(line, "L %" SCNu64, &id) == 1) {
		push_id(&lg->lease, &lg->nlease, &lg->caplease, id);
	} else if (line[0] == 'X') {
		if (!lg->err[0]) {
			size_t len = strlen(line);

			if (len >= sizeof(lg->err))
				len = sizeof(lg->err) - 1;
			memcpy(lg->err, line, len);
			lg->err[len] = '\0';
		}
	} else {
		ck_abort_msg("round %d: unexpected line from child: \"%s\"",
			     round, line);
	}
}

/* Reads what is there (or waits up to timeout_ms); keeps complete lines.
 * Returns 0 at end of file. */
static int log_read(struct log *lg, int round, int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t got;
	char *nl, *start;

	if (timeout_ms >= 0) {
		int rc = poll(&p, 1, timeout_ms);

		if (rc < 0 && errno == EINTR)
			return 1;
		ck_assert_msg(rc >= 0, "poll: %s", strerror(errno));
		if (rc == 0)
			return 1;
	}
	got = read(fd, lg->buf + lg->blen, sizeof(lg->buf) - 1 - lg->blen);
	if (got < 0 && errno == EINTR)
		return 1;
	ck_assert_msg(got >= 0, "read: %s", strerror(errno));
	if (got == 0)
		return 0;
	lg->blen += (size_t)got;
	lg->buf[lg->blen] = '\0';
	start = lg->buf;
	while ((nl = strchr(start, '\n')) != NULL) {
		*nl = '\0';
		log_line(lg, round, start);
		start = nl + 1;
	}
	lg->blen -= (size_t)(start - lg->buf);
	memmove(lg->buf, start, lg->blen);
	ck_assert_msg(lg->blen < sizeof(lg->buf) - 1, "line too long");
	return 1;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One round: run a child for run_ms, kill it, collect its lines. */
static void run_round(struct tu_env *e, struct log *lg, int round, int run_ms)
{
	int fds[2], status;
	int64_t deadline;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[0]);
		child_run(e->path, round, fds[1]);
		_exit(3);
	}
	close(fds[1]);
	deadline = mono_ms() + run_ms;
	for (;;) {
		int64_t left = deadline - mono_ms();

		if (left <= 0)
			break;
		if (!log_read(lg, round, fds[0], (int)left))
			break; /* the child died by itself */
	}
	kill(pid, SIGKILL);
	while (log_read(lg, round, fds[0], -1))
		;
	lg->blen = 0; /* a partial last line is dropped */
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(!lg->err[0], "round %d: child reported: %s", round,
		      lg->err);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "round %d: child ended by itself (status 0x%x)", round,
		      status);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A sorted copy of the acked ids, for lookups. */
static uint64_t *sorted_acks(const struct log *lg)
{
	uint64_t *a = malloc((lg->nack + 1) * sizeof(*a));

	ck_assert_ptr_nonnull(a);
	if (lg->nack)
		memcpy(a, lg->ack, lg->nack * sizeof(*a));
	qsort(a, lg->nack, sizeof(*a), u64_cmp);
	return a;
}

static int acked(const uint64_t *sorted, size_t n, uint64_t id)
{
	return bsearch(&id, sorted, n, sizeof(id), u64_cmp) != NULL;
}

/* Every reported enqueue and ack is in the store. */
static void verify(struct tu_env *e, const struct log *lg, int round)
{
	struct m2w_queue *q;
	char eb[M2W_ERRBUF_SIZE] = "", want[64];
	uint64_t *sorted;
	size_t i;
	int rc;

	rc = tu_open_ex(e, 0, 0, 0, eb);
	ck_assert_msg(rc == M2W_OK, "round %d: open: %d (%s): %s", round, rc,
		      m2w_strerror(rc), eb);
	q = e->q;
	e->clock.now = tu_realtime_ms();
	for (i = 0; i < lg->nenq; i++) {
		const struct enq *x = &lg->enq[i];
		struct m2w_task *t = NULL;

		rc = m2w_queue_get(q, x->id, &t, eb);
		ck_assert_msg(rc == M2W_OK,
			      "round %d: enqueued task %" PRIu64
			      " (round %d seq %u): get %d (%s): %s",
			      round, x->id, x->round, x->seq, rc,
			      m2w_strerror(rc), eb);
		snprintf(want, sizeof(want), "{\"n\":%u}", x->seq);
		ck_assert_msg(strcmp(t->payload, want) == 0,
			      "task %" PRIu64 ": payload %s, expected %s",
			      x->id, t->payload, want);
		snprintf(want, sizeof(want), "crash-%d-%u", x->round, x->seq);
		ck_assert_msg(t->idem_key && strcmp(t->idem_key, want) == 0,
			      "task %" PRIu64 ": key %s, expected %s", x->id,
			      t->idem_key ? t->idem_key : "(null)", want);
		m2w_task_free(t);
	}
	for (i = 0; i < lg->nack; i++) {
		struct m2w_task *t = NULL;

		rc = m2w_queue_get(q, lg->ack[i], &t, eb);
		ck_assert_msg(rc == M2W_OK,
			      "round %d: acked task %" PRIu64
			      ": get %d (%s): %s",
			      round, lg->ack[i], rc, m2w_strerror(rc), eb);
		ck_assert_msg(t->state == M2W_DONE,
			      "round %d: acked task %" PRIu64 " is %s", round,
			      lg->ack[i], m2w_state_name(t->state));
		m2w_task_free(t);
	}
	/* leased, never reported acked: still leased, or acked unreported */
	sorted = sorted_acks(lg);
	for (i = 0; i < lg->nlease; i++) {
		struct m2w_task *t = NULL;

		if (acked(sorted, lg->nack, lg->lease[i]))
			continue;
		rc = m2w_queue_get(q, lg->lease[i], &t, eb);
		ck_assert_msg(rc == M2W_OK,
			      "round %d: leased task %" PRIu64
			      ": get %d (%s): %s",
			      round, lg->lease[i], rc, m2w_strerror(rc), eb);
		ck_assert_msg(t->state == M2W_LEASED || t->state == M2W_DONE,
			      "round %d: leased, unacked task %" PRIu64
			      " is %s", round, lg->lease[i],
			      m2w_state_name(t->state));
		m2w_task_free(t);
	}
	free(sorted);
	rc = m2w_queue_check(q, eb);
	ck_assert_msg(rc == M2W_OK, "round %d: check: %d (%s): %s", round, rc,
		      m2w_strerror(rc), eb);
	tu_close(e);
}

/* After the children: expired leases come back, everything drains. */
static void drain_all(struct tu_env *e, const struct log *lg,
		      size_t *drained)
{
	struct m2w_queue *q;
	struct m2w_lease_opts lo;
	struct m2w_stats st;
	char eb[M2W_ERRBUF_SIZE] = "";
	uint64_t total = 0, *sorted;
	size_t reaped = 0, held = 0, k;
	int i, rc, rounds = 0;

	rc = tu_open_ex(e, 0, 0, 0, eb);
	ck_assert_msg(rc == M2W_OK, "final open: %d: %s", rc, eb);
	q = e->q;
	e->clock.now = tu_realtime_ms();

	/* the leases the killed children still hold */
	sorted = sorted_acks(lg);
	for (k = 0; k < lg->nlease; k++) {
		struct m2w_task *t = NULL;

		if (acked(sorted, lg->nack, lg->lease[k]))
			continue;
		rc = m2w_queue_get(q, lg->lease[k], &t, eb);
		ck_assert_msg(rc == M2W_OK, "get %" PRIu64 ": %d: %s",
			      lg->lease[k], rc, eb);
		held += t->state == M2W_LEASED;
		m2w_task_free(t);
	}
	free(sorted);

	e->clock.now = tu_realtime_ms() + 2 * CHILD_LEASE_MS;
	rc = m2w_queue_reap(q, &reaped, eb);
	ck_assert_msg(rc == M2W_OK, "reap: %d: %s", rc, eb);
	ck_assert_msg(reaped >= held,
		      "reap returned %zu expired leases, children held %zu",
		      reaped, held);

	memset(&lo, 0, sizeof(lo));
	lo.max = 100;
	*drained = 0;
	for (;;) {
		struct m2w_task **ts = NULL;
		size_t n = 0, j;

		rc = m2w_queue_lease(q, &lo, &ts, &n, eb);
		ck_assert_msg(rc == M2W_OK, "final lease: %d: %s", rc, eb);
		if (n == 0)
			break;
		for (j = 0; j < n; j++) {
			rc = m2w_task_ack(q, ts[j]->id, ts[j]->lease_token, 0,
					  eb);
			ck_assert_msg(rc == M2W_OK, "final ack %" PRIu64
				      ": %d: %s", ts[j]->id, rc, eb);
		}
		*drained += n;
		m2w_task_list_free(ts, n);
		ck_assert_msg(++rounds < 100000, "drain never ends");
	}

	tu_stats(q, &st);
	for (i = 0; i < M2W_NSTATES; i++)
		total += st.count[i];
	ck_assert_msg(st.count[M2W_READY] == 0 && st.count[M2W_LEASED] == 0 &&
			      st.count[M2W_SCHEDULED] == 0 &&
			      st.count[M2W_WAITING] == 0,
		      "after drain: %" PRIu64 " ready, %" PRIu64
		      " leased, %" PRIu64 " scheduled, %" PRIu64 " waiting",
		      st.count[M2W_READY], st.count[M2W_LEASED],
		      st.count[M2W_SCHEDULED], st.count[M2W_WAITING]);
	ck_assert_msg(st.count[M2W_DONE] == total,
		      "after drain: %" PRIu64 " done of %" PRIu64
		      " (%" PRIu64 " dead)",
		      st.count[M2W_DONE], total, st.count[M2W_DEAD]);
	m2w_stats_free(&st);
	rc = m2w_queue_check(q, eb);
	ck_assert_msg(rc == M2W_OK, "final check: %d: %s", rc, eb);
	printf("check_crash: killed children held %zu leases; reaped %zu, "
	       "drained %zu tasks; %" PRIu64 " tasks in the store, all done\n",
	       held, reaped, *drained, total);
	tu_close(e);
}

START_TEST(test_crash_rounds)
{
	struct tu_env e;
	struct log *lg = calloc(1, sizeof(*lg));
	const char *seed_env = getenv("M2W_CRASH_SEED");
	unsigned seed, rnd;
	size_t drained, i;
	uint64_t *ids;
	int round;

	ck_assert_ptr_nonnull(lg);
	seed = seed_env && *seed_env ? (unsigned)strtoul(seed_env, NULL, 0)
				     : (unsigned)time(NULL) ^
					       ((unsigned)getpid() << 16);
	rnd = seed;
	printf("check_crash: seed %u (set M2W_CRASH_SEED=%u to repeat)\n",
	       seed, seed);
	fflush(stdout);

	tu_env_init(&e);
	tu_open(&e);
	tu_close(&e); /* never across fork */

	for (round = 0; round < ROUNDS; round++) {
		int run_ms = 20 + (int)(rand_r(&rnd) % 131);

		run_round(&e, lg, round, run_ms);
		verify(&e, lg, round);
	}

	/* ids never repeat */
	ids = malloc((lg->nenq + 1) * sizeof(*ids));
	ck_assert_ptr_nonnull(ids);
	for (i = 0; i < lg->nenq; i++)
		ids[i] = lg->enq[i].id;
	qsort(ids, lg->nenq, sizeof(*ids), u64_cmp);
	for (i = 1; i < lg->nenq; i++)
		ck_assert_msg(ids[i] != ids[i - 1],
			      "id %" PRIu64 " reported enqueued twice", ids[i]);
	free(ids);
	ck_assert_msg(lg->nenq > 0, "no child ever reported an enqueue");

	printf("check_crash: %d rounds verified %zu enqueues, %zu leases and "
	       "%zu acks\n", ROUNDS, lg->nenq, lg->nlease, lg->nack);
	drain_all(&e, lg, &drained);
	fflush(stdout);

	tu_env_done(&e);
	free(lg->enq);
	free(lg->ack);
	free(lg->lease);
	free(lg);
}
END_TEST

static Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("kill9");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_crash_rounds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run("m2w-check-crash", crash_suite());
}
