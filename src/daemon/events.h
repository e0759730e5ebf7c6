/*
 * events.h - the result publisher ([events]): the store's outbox to a
 * RabbitMQ exchange, with publisher confirms.
 *
 * The store writes one JSON event for every task that ends (done, dead,
 * superseded) in the transaction that ends it (src/store/outbox.c); this
 * thread publishes the oldest ones, persistent, routed by the section's
 * routing_key template ("{type}.{state}" by default: tracking.done), with
 * the event's "event_id" as message_id, waits for the broker's confirms,
 * and only then deletes them from the store. A crash or an outage of the
 * broker loses none: they wait in the store (counted in `qctl stats` and
 * /metrics as m2worker_events_waiting); one published again after a crash
 * carries the same message_id, so a consumer can drop it.
 *
 * Built without rabbitmq-c: m2w_events_cfg_check refuses [events].
 *
 * Threads: start and stop from main; the publisher is one thread with its
 * own connection, touching the store only through the outbox API.
 */
#ifndef M2W_DAEMON_EVENTS_H
#define M2W_DAEMON_EVENTS_H

#include "m2worker/buf.h"
#include "m2worker/config.h"
#include "m2worker/error.h"
#include "m2worker/queue.h"

struct m2w_events;

#ifdef HAVE_AMQP
/* What the publisher refuses in [events] (a URL it cannot read, an
 * unknown {name} in routing_key). M2W_OK or M2W_EINVAL with errbuf. */
int m2w_events_cfg_check(const struct m2w_events_cfg *c, char *errbuf);

/* Starts the publisher when [events] is on (else *out NULL, ok). A broker
 * that is down is no error: it keeps trying. q and cfg are borrowed until
 * m2w_events_free. */
int m2w_events_start(struct m2w_queue *q, const struct m2w_config *cfg,
		     struct m2w_events **out, char *errbuf);
/* Stops after the batch in flight (confirmed, or left in the outbox). */
void m2w_events_stop(struct m2w_events *e);
void m2w_events_free(struct m2w_events *e);

/* Prometheus text: m2worker_events_up, _published_total,
 * _reconnects_total. Any thread; NULL: nothing. */
void m2w_events_metrics(struct m2w_events *e, struct m2w_buf *o);
/* "events: up" or "events: down: <why>" for /healthz. NULL: nothing. */
void m2w_events_health(struct m2w_events *e, struct m2w_buf *o);

#else /* built without rabbitmq-c */
static inline int m2w_events_cfg_check(const struct m2w_events_cfg *c,
				       char *errbuf)
{
	(void)c;
	return m2w_fail(errbuf, M2W_EINVAL, "[events]: this m2worker is built "
			"without AMQP (configure found no rabbitmq-c: install "
			"librabbitmq-dev)");
}

static inline int m2w_events_start(struct m2w_queue *q,
				   const struct m2w_config *cfg,
				   struct m2w_events **out, char *errbuf)
{
	(void)q;
	*out = NULL;
	return cfg->events.enabled ? m2w_events_cfg_check(&cfg->events, errbuf)
				   : M2W_OK;
}

static inline void m2w_events_stop(struct m2w_events *e)
{
	(void)e;
}

static inline void m2w_events_free(struct m2w_events *e)
{
	(void)e;
}

static inline void m2w_events_metrics(struct m2w_events *e,
				      struct m2w_buf *o)
{
	(void)e;
	(void)o;
}

static inline void m2w_events_health(struct m2w_events *e, struct m2w_buf *o)
{
	(void)e;
	(void)o;
}
#endif

#endif
