/*
 * commit.c - group commit.
 *
 * Every change to the store is an op (internal.h) handed to m2s_commit_run(),
 * which returns once the op's transaction is durable. Ops from all threads
 * queue up; the first thread that finds no round in progress becomes the
 * leader: it takes every pending op, applies them one after another in ONE
 * write transaction, commits (one fsync), marks them done and wakes their
 * threads. While it fsyncs, new ops pile up for the next round, so under
 * load each fsync carries many acks, fails, leases and enqueues, and no
 * thread queues on LMDB's writer mutex holding a half-built transaction.
 *
 * Failure isolation: an op that fails with a semantic error before writing
 * anything leaves the round going on. Any other error, or one after the op
 * wrote, poisons the transaction: it is aborted, and when the map was full
 * it is grown and the round replayed; otherwise each op is replayed alone,
 * so the error stays with the op (or ops) that caused it. New work (enqueue)
 * may grow the map only to map_soft; an op replayed alone that drains the
 * store may use the rest, up to map_max.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ROUND_MAX 256

int m2s_commit_init(struct m2w_queue *q)
{
	return pthread_mutex_init(&q->mu, NULL) ? M2W_EIO : M2W_OK;
}

void m2s_commit_destroy(struct m2w_queue *q)
{
	pthread_mutex_destroy(&q->mu);
}

/* An error that leaves the transaction usable (when the op wrote nothing):
 * a refusal, not an LMDB failure. EFULL counts when it was our policy
 * (room_for_new_work), not LMDB's MAP_FULL. */
static int semantic(int rc, const struct wctx *c)
{
	return (rc == M2W_EFULL && !c->mapfull) || rc == M2W_ENOSPC ||
	       rc == M2W_EINVAL || rc == M2W_ENOTFOUND ||
	       rc == M2W_ESTALE || rc == M2W_ESTATE;
}

static void run_round(struct m2w_queue *q, struct op **ops, size_t n,
		      struct wctx *c)
{
	size_t i;
	int rc;

	for (;;) {
		rc = m2s_write_begin(q, c);
		if (rc != M2W_OK) {
			for (i = 0; i < n; i++)
				ops[i]->rc = m2w_fail(ops[i]->errbuf, rc,
						      "cannot begin a write: %s",
						      m2w_strerror(rc));
			return;
		}
		for (i = 0; i < n; i++) {
			unsigned long w0 = c->writes;

			c->errbuf = ops[i]->errbuf;
			ops[i]->rc = ops[i]->apply(c, ops[i]->arg);
			if (ops[i]->rc &&
			    (!semantic(ops[i]->rc, c) || c->writes != w0))
				break;
		}
		if (i < n) {
			rc = ops[i]->rc;
			m2s_write_abort(c);
		} else {
			c->errbuf = ops[n - 1]->errbuf;
			rc = m2s_write_commit(c);
		}
		if (rc == M2W_OK)
			return;
		if (c->mapfull) {
			size_t limit = n == 1 && !ops[0]->new_work ? q->map_max
								    : q->map_soft;

			if (m2s_map_grow(q, limit, NULL) == M2W_OK)
				continue;
			if (n == 1) {
				ops[0]->rc = m2s_map_grow(q, limit,
							  ops[0]->errbuf);
				return;
			}
		}
		if (n == 1) {
			ops[0]->rc = rc;
			return;
		}
		for (i = 0; i < n; i++)
			run_round(q, &ops[i], 1, c);
		return;
	}
}

int m2s_commit_run(struct m2w_queue *q, struct op *op)
{
	struct op *batch[ROUND_MAX];
	struct wctx c;
	size_t n, i;

	op->done = 0;
	op->next = NULL;
	pthread_cond_init(&op->cv, NULL);
	pthread_mutex_lock(&q->mu);
	*q->pending_tail = op;
	q->pending_tail = &op->next;
	while (!op->done) {
		if (q->leading) {
			pthread_cond_wait(&op->cv, &q->mu);
			continue;
		}
		q->leading = 1;
		for (n = 0; n < ROUND_MAX && q->pending; n++) {
			batch[n] = q->pending;
			q->pending = q->pending->next;
		}
		if (!q->pending)
			q->pending_tail = &q->pending;
		pthread_mutex_unlock(&q->mu);

		memset(&c, 0, sizeof(c));
		run_round(q, batch, n, &c);
		free(c.buf);

		pthread_mutex_lock(&q->mu);
		q->leading = 0;
		for (i = 0; i < n; i++) {
			batch[i]->done = 1;
			if (batch[i] != op)
				pthread_cond_signal(&batch[i]->cv);
		}
		/* the next round's leader: the oldest op still waiting */
		if (q->pending)
			pthread_cond_signal(&q->pending->cv);
	}
	pthread_mutex_unlock(&q->mu);
	pthread_cond_destroy(&op->cv);
	return op->rc;
}
