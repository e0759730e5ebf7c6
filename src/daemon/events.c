/*
 * events.c - the result publisher (events.h): the store's outbox to an
 * exchange, confirmed by the broker before anything is deleted.
 *
 * One thread: connect (amqp_link), confirm.select, exchange.declare (a
 * durable topic exchange; only checked with declare = no); then rounds.
 * A round reads the oldest BATCH events of the outbox, publishes each
 * (persistent, content_type application/json, message_id = the event's
 * event_id, routing key from the template), then reads the broker's
 * basic.ack / basic.nack frames until every delivery tag of the round is
 * settled or CONFIRM_MS passed. The acknowledged prefix of the round is
 * deleted from the outbox in one store commit; a nack or a timeout ends
 * the round there, and the rest is published again in the next one (a
 * timeout also drops the connection). Between rounds with nothing to
 * publish the thread waits for frames for IDLE_MS, which keeps the
 * heartbeats going.
 *
 * Publisher confirms need the broker to have the message: routed to a
 * queue and, for a durable queue, written. An exchange without a bound
 * queue confirms and drops; binding a queue is the consumer's part.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp.h>
#include <json-c/json.h>

#include "amqp_link.h"
#include "events.h"
#include "m2worker/clock.h"
#include "m2worker/log.h"

#define BATCH 500
#define CONFIRM_MS 10000
#define IDLE_MS 200
#define HEARTBEAT_S 30
#define ROUTE_MAX 255

struct m2w_events {
	struct m2w_queue *q;
	const struct m2w_events_cfg *c;
	struct m2w_link link;
	pthread_t th;
	int started;
	int stopping;             /* __atomic */
	uint64_t published;       /* __atomic: confirmed */
};

static int stopping(struct m2w_events *e)
{
	return __atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE);
}

/* The routing key of an event from the template: {type} and {state}
 * replaced. 0, or -1 (an unknown {name}, or too long) with why. */
static int route(const char *tpl, const char *type, const char *state,
		 char *out, size_t size, char *why, size_t wsize)
{
	size_t n = 0, len;
	const char *v;

	while (*tpl) {
		if (*tpl != '{') {
			if (n + 1 >= size)
				return m2w_link_fail(why, wsize, "routing_key "
						     "too long");
			out[n++] = *tpl++;
			continue;
		}
		if (strncmp(tpl, "{type}", 6) == 0)
			v = type, tpl += 6;
		else if (strncmp(tpl, "{state}", 7) == 0)
			v = state, tpl += 7;
		else
			return m2w_link_fail(why, wsize, "routing_key: %.40s: "
					     "only {type} and {state} are "
					     "known", tpl);
		len = strlen(v);
		if (n + len >= size)
			return m2w_link_fail(why, wsize, "routing_key too "
					     "long");
		memcpy(out + n, v, len);
		n += len;
	}
	out[n] = '\0';
	return 0;
}

int m2w_events_cfg_check(const struct m2w_events_cfg *c, char *errbuf)
{
	struct m2w_link l;
	char key[ROUTE_MAX + 1], why[M2W_ERRBUF_SIZE];

	if (m2w_link_init(&l, &c->broker, "[events]", errbuf))
		return M2W_EINVAL;
	m2w_link_destroy(&l);
	if (route(c->routing_key, "t", "s", key, sizeof(key), why,
		  sizeof(why)))
		return m2w_fail(errbuf, M2W_EINVAL, "[events]: %s", why);
	return M2W_OK;
}

/* Connect, confirm.select, declare the exchange. 0, or -1 with why. */
static int connect_confirm(struct m2w_events *e, char *why, size_t size)
{
	const struct m2w_events_cfg *c = e->c;

	if (m2w_link_open(&e->link, HEARTBEAT_S, why, size))
		return -1;
	amqp_confirm_select(e->link.conn, M2W_LINK_CHANNEL);
	if (m2w_link_ok(&e->link, "confirm.select", why, size))
		return -1;
	amqp_exchange_declare(e->link.conn, M2W_LINK_CHANNEL,
			      amqp_cstring_bytes(c->exchange),
			      amqp_cstring_bytes("topic"), !c->declare, 1, 0,
			      0, amqp_empty_table);
	return m2w_link_ok(&e->link, c->declare ? "exchange.declare"
						: "exchange (declare = no)",
			   why, size);
}

/* Publishes one event with delivery tag `tag`. 0, or -1 with why. */
static int publish(struct m2w_events *e, const struct m2w_event *ev,
		   char *why, size_t size)
{
	struct json_object *o = json_tokener_parse(ev->json), *v;
	amqp_basic_properties_t p;
	const char *type = "?", *state = "?", *id = "";
	char key[ROUTE_MAX + 1];
	int rc;

	if (o && json_object_object_get_ex(o, "type", &v))
		type = json_object_get_string(v);
	if (o && json_object_object_get_ex(o, "state", &v))
		state = json_object_get_string(v);
	if (o && json_object_object_get_ex(o, "event_id", &v))
		id = json_object_get_string(v);
	if (route(e->c->routing_key, type, state, key, sizeof(key), why,
		  size)) {
		json_object_put(o);
		return -1;
	}
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
		   AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
	p.content_type = amqp_cstring_bytes("application/json");
	p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	p.message_id = amqp_cstring_bytes(id);
	rc = amqp_basic_publish(e->link.conn, M2W_LINK_CHANNEL,
				amqp_cstring_bytes(e->c->exchange),
				amqp_cstring_bytes(key), 0, 0, &p,
				(amqp_bytes_t){ ev->len, ev->json });
	json_object_put(o);
	if (rc != AMQP_STATUS_OK)
		return m2w_link_fail(why, size, "publish: %s",
				     amqp_error_string2(rc));
	return 0;
}

/* One round (see the top). *tag is the channel's last delivery tag.
 * 1 when events went out, 0 when there were none, -1 with why. */
static int round_trip(struct m2w_events *e, uint64_t *tag, char *why,
		      size_t size)
{
	char eb[M2W_ERRBUF_SIZE], q[M2W_ERRBUF_SIZE];
	struct m2w_event *ev;
	signed char *ok;
	size_t n, i, done;
	uint64_t first = *tag + 1;
	int rc = 0;

	if (m2w_outbox_read(e->q, BATCH, &ev, &n, eb) != M2W_OK)
		return m2w_link_fail(why, size, "outbox: %s", eb);
	if (!n)
		return m2w_link_confirm_wait(&e->link, 0, 0, NULL, IDLE_MS, why,
					     size);
	if (!(ok = calloc(n, 1))) {
		m2w_outbox_free(ev, n);
		return m2w_link_fail(why, size, "out of memory");
	}
	for (i = 0; i < n && !rc; i++, (*tag)++)
		rc = publish(e, &ev[i], why, size);
	done = rc ? 0 : m2w_link_confirms(&e->link, first, n, ok, CONFIRM_MS,
					  &rc, why, size);
	if (done && m2w_outbox_delete(e->q, ev[done - 1].seq, eb) != M2W_OK)
		m2w_log(M2W_LOG_ERROR, "events.delete", "error=%s (published "
			"again later)", m2w_log_quote(q, sizeof(q), eb));
	__atomic_add_fetch(&e->published, done, __ATOMIC_RELAXED);
	if (!rc && done < n) {
		if (ok[done] == -1) {
			m2w_log(M2W_LOG_WARN, "events.nack", "confirmed=%zu "
				"nacked_from=%" PRIu64 " (published again)",
				done, ev[done].seq);
			usleep(200000);
		} else {
			rc = m2w_link_fail(why, size, "no confirm in %d s",
					   CONFIRM_MS / 1000);
		}
	}
	free(ok);
	m2w_outbox_free(ev, n);
	return rc ? -1 : 1;
}

static void nap(struct m2w_events *e, int64_t ms)
{
	int64_t end = m2w_clock_mono_ms() + ms;

	while (!stopping(e) && m2w_clock_mono_ms() < end)
		usleep(50000);
}

static void *run(void *arg)
{
	struct m2w_events *e = arg;
	char why[M2W_ERRBUF_SIZE];
	uint64_t tag;

	while (!stopping(e)) {
		why[0] = '\0';
		tag = 0;
		if (connect_confirm(e, why, sizeof(why)) == 0) {
			m2w_log(M2W_LOG_INFO, "events.up", "host=%s port=%d "
				"exchange=%s", e->link.host, e->link.port,
				e->c->exchange);
			m2w_link_up(&e->link);
			while (!stopping(e) &&
			       round_trip(e, &tag, why, sizeof(why)) >= 0)
				;
			if (stopping(e))
				break;
		}
		nap(e, m2w_link_down(&e->link, "events.down", "", why));
	}
	m2w_link_close(&e->link);
	return NULL;
}

int m2w_events_start(struct m2w_queue *q, const struct m2w_config *cfg,
		     struct m2w_events **out, char *errbuf)
{
	struct m2w_events *e;
	int rc;

	*out = NULL;
	if (!cfg->events.enabled)
		return M2W_OK;
	if ((rc = m2w_events_cfg_check(&cfg->events, errbuf)))
		return rc;
	if (!(e = calloc(1, sizeof(*e))))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	e->q = q;
	e->c = &cfg->events;
	m2w_link_init(&e->link, &e->c->broker, "[events]", errbuf);
	if (pthread_create(&e->th, NULL, run, e) != 0) {
		m2w_events_free(e);
		return m2w_fail(errbuf, M2W_ENOMEM, "cannot start the "
				"[events] publisher");
	}
	e->started = 1;
	*out = e;
	return M2W_OK;
}

void m2w_events_stop(struct m2w_events *e)
{
	if (!e)
		return;
	__atomic_store_n(&e->stopping, 1, __ATOMIC_RELEASE);
	if (e->started) {
		pthread_join(e->th, NULL);
		e->started = 0;
	}
}

void m2w_events_free(struct m2w_events *e)
{
	if (!e)
		return;
	m2w_events_stop(e);
	m2w_link_destroy(&e->link);
	free(e);
}

void m2w_events_metrics(struct m2w_events *e, struct m2w_buf *o)
{
	if (!e)
		return;
	m2w_buf_addf(o, "# HELP m2worker_events_up 1 while the [events] "
		     "publisher is connected.\n# TYPE m2worker_events_up "
		     "gauge\nm2worker_events_up %d\n"
		     "# HELP m2worker_events_published_total Result events "
		     "published and confirmed by the broker.\n# TYPE "
		     "m2worker_events_published_total counter\n"
		     "m2worker_events_published_total %" PRIu64 "\n"
		     "# HELP m2worker_events_reconnects_total Publisher "
		     "connections lost or refused.\n# TYPE "
		     "m2worker_events_reconnects_total counter\n"
		     "m2worker_events_reconnects_total %" PRIu64 "\n",
		     __atomic_load_n(&e->link.up, __ATOMIC_RELAXED),
		     __atomic_load_n(&e->published, __ATOMIC_RELAXED),
		     __atomic_load_n(&e->link.reconnects, __ATOMIC_RELAXED));
}

void m2w_events_health(struct m2w_events *e, struct m2w_buf *o)
{
	char why[sizeof(e->link.why)];

	if (!e)
		return;
	if (m2w_link_state(&e->link, why, sizeof(why)))
		m2w_buf_adds(o, "events: up\n");
	else
		m2w_buf_addf(o, "events: down: %s\n", why);
}
