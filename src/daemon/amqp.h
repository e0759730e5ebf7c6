/*
 * amqp.h - the AMQP source: RabbitMQ queues whose messages become tasks.
 *
 * Each [amqp "NAME"] section is one consumer thread with its own broker
 * connection (rabbitmq-c). A message is a request body as HTTP push takes
 * it (application/json, application/x-ndjson, text/csv by its
 * content_type; bare payloads of the section's `type`, or envelopes that
 * name their type), read all or none by the ingest pipeline's collector.
 *
 * Nothing lost, nothing twice: deliveries are acknowledged only after the
 * tasks they carry are committed (fsync'd) in the store, many deliveries
 * in one commit and one basic.ack with `multiple`. A task without an
 * idempotency key of its own (stock, price, rest) gets one from the
 * message_id, so a redelivery after a crash or a lost ack is a duplicate.
 * A message that cannot be read is rejected without requeue (to the
 * queue's dead-letter exchange, when it has one) and logged with the
 * reason; the stream goes on. Store or disk full: the batch is held, not
 * acknowledged and not rejected, and retried until there is room. A lost
 * connection is reconnected with backoff and jitter; what was not
 * acknowledged the broker delivers again.
 *
 * Built without rabbitmq-c (configure --without-amqp, or no
 * librabbitmq-dev): m2w_amqp_cfg_check refuses every [amqp] section with
 * that reason, so `--check-config` and a start refuse alike.
 *
 * Threads: start and stop from one thread (main); each section's consumer
 * runs in its own thread and touches the store only through the queue API.
 */
#ifndef M2W_DAEMON_AMQP_H
#define M2W_DAEMON_AMQP_H

#include "m2worker/buf.h"
#include "m2worker/config.h"
#include "m2worker/error.h"
#include "m2worker/queue.h"

struct m2w_amqp;

#ifdef HAVE_AMQP
/* What the AMQP source refuses in a section: a URL it cannot read, bad
 * queue arguments; every section when built without AMQP. M2W_OK, or
 * M2W_EINVAL with errbuf "[amqp \"NAME\"]: ...". */
int m2w_amqp_cfg_check(const struct m2w_amqp_cfg *c, char *errbuf);

/*
 * Hand-back, for the sections with `handback = yes`; call it after the
 * store is open and before the workers start. The tasks such a section
 * brought in that are not finished (ready, scheduled, waiting, and leased
 * by the process that ran before) are published back to its queue as
 * envelopes with their idempotency keys, and deleted here once the broker
 * confirmed them. With partitions consumed by one daemon at a time
 * (single active consumer), a partition moves to another daemon while
 * this one is down; what this one had taken then runs there, in turn,
 * instead of here at the same time as the new owner's tasks of the same
 * order. A broker that cannot be reached leaves them here (logged). Their
 * attempts start again from 0.
 */
void m2w_amqp_handback(struct m2w_queue *q, const struct m2w_config *cfg);

/*
 * Starts a consumer for each [amqp] section of cfg (none: *out NULL, ok).
 * A broker that is down is no error: the consumer keeps trying. q and cfg
 * are borrowed until m2w_amqp_stop. M2W_OK, M2W_EINVAL, M2W_ENOMEM.
 */
int m2w_amqp_start(struct m2w_queue *q, const struct m2w_config *cfg,
		   struct m2w_amqp **out, char *errbuf);

/* Stops the consumers: a batch being committed finishes and is
 * acknowledged, the rest stays with the broker. Their state stays
 * readable (metrics, health) until m2w_amqp_free. NULL is ok. */
void m2w_amqp_stop(struct m2w_amqp *a);
/* Stops (if still running) and frees. NULL is ok. */
void m2w_amqp_free(struct m2w_amqp *a);

/* Appends the consumers' state in Prometheus text to o: up, messages by
 * outcome, reconnects, held (store full). Any thread; NULL: nothing. */
void m2w_amqp_metrics(struct m2w_amqp *a, struct m2w_buf *o);

/* Appends one line per consumer for /healthz: "amqp NAME: up" or
 * "amqp NAME: down: <why>". Any thread; NULL: nothing. */
void m2w_amqp_health(struct m2w_amqp *a, struct m2w_buf *o);

#else /* built without rabbitmq-c */
static inline int m2w_amqp_cfg_check(const struct m2w_amqp_cfg *c,
				     char *errbuf)
{
	return m2w_fail(errbuf, M2W_EINVAL, "[amqp \"%s\"]: this m2worker is "
			"built without AMQP (configure found no rabbitmq-c: "
			"install librabbitmq-dev)", c->name);
}

static inline int m2w_amqp_start(struct m2w_queue *q,
				 const struct m2w_config *cfg,
				 struct m2w_amqp **out, char *errbuf)
{
	(void)q;
	*out = NULL;
	return cfg->namqps ? m2w_amqp_cfg_check(&cfg->amqps[0], errbuf)
			   : M2W_OK;
}

static inline void m2w_amqp_handback(struct m2w_queue *q,
				     const struct m2w_config *cfg)
{
	(void)q;
	(void)cfg;
}

static inline void m2w_amqp_stop(struct m2w_amqp *a)
{
	(void)a;
}

static inline void m2w_amqp_free(struct m2w_amqp *a)
{
	(void)a;
}

static inline void m2w_amqp_metrics(struct m2w_amqp *a, struct m2w_buf *o)
{
	(void)a;
	(void)o;
}

static inline void m2w_amqp_health(struct m2w_amqp *a, struct m2w_buf *o)
{
	(void)a;
	(void)o;
}
#endif

#endif
