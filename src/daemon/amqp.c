/*
 * amqp.c - the AMQP source (amqp.h): one consumer thread per [amqp]
 * section, rabbitmq-c underneath.
 *
 * A consumer's life: connect (amqp:// or amqps://, login, channel 1),
 * declare the queue durable with its arguments (or only check it when
 * declare = no), bind it, basic.qos(prefetch), basic.consume without
 * auto-ack; then batches. A batch takes the deliveries that arrive until
 * `prefetch` of them are in hand or the queue is quiet for a moment; each
 * delivery is read by the ingest collector (m2w_ingest_parse_body: all or
 * none, the job's checks); a bad one is rejected at once (requeue off);
 * the good ones' tasks go into the store in one m2w_queue_enqueue (one
 * fsync'd commit, merged further with the other producers' by the store's
 * group commit), and only then one basic.ack with `multiple` settles them
 * all. A crash before the ack loses nothing: the broker delivers the
 * messages again, and their keys (the job's template, key_field, or the
 * message_id) make the second copy a duplicate.
 *
 * The intake window: before each batch the consumer asks the store for
 * its backlog (tasks of the section's type, or of every type, not ended:
 * m2w_queue_backlog). At `window` it stops committing and acknowledging:
 * the deliveries in hand (prefetch at most) wait, the broker sends no
 * more, and the rest waits in the queue, where other daemons can take it;
 * at half the window the batch in hand is committed and acknowledged and
 * the stream goes on. A lost VM strands at most its window plus one
 * batch. The consumer is not cancelled: on a queue with a single active
 * consumer the partition stays with this daemon while it still holds
 * tasks of it (a cancel would hand it to another daemon, which would then
 * run the same orders beside this one).
 *
 * Store full or disk full: the batch stays in hand, unacknowledged, and
 * the commit is retried each second; the prefetch bounds what else the
 * broker sends meanwhile. Any other failure (the connection, the channel
 * closed by the broker, a protocol error) closes the connection; what was
 * not acknowledged goes back to the queue, and the consumer reconnects
 * after a backoff with jitter (1 s doubling to 30 s), logging each change
 * of state once.
 *
 * Threads: one per section; the only shared state is the stop flag (read
 * with __atomic loads) and the store handle (thread-safe).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <json-c/json.h>

#include "amqp.h"
#include "amqp_link.h"
#include "m2worker/admin.h"
#include "m2worker/buf.h"
#include "m2worker/clock.h"
#include "m2worker/ingest.h"
#include "m2worker/log.h"

#define CHANNEL M2W_LINK_CHANNEL
#define QUIET_MS 20           /* a batch ends after this without a delivery */
#define BATCH_MS 250          /* ... or after this */
#define ROWS_MAX 100000       /* rows in one message */
#define HEARTBEAT_S 30

/* One delivery in hand, read. */
struct delivery {
	uint64_t tag;
	struct m2w_body body;     /* its tasks (keys filled in) */
};

struct consumer {
	struct m2w_amqp *owner;
	const struct m2w_amqp_cfg *c;
	pthread_t th;
	int started;
	struct m2w_link link;     /* link.conn: NULL while down */
	int pause;                /* at the intake window: nothing acked */
	struct delivery *d;       /* the batch: d[0..n) */
	size_t n, cap;
	/* for /metrics and /healthz (other threads read them) */
	int held;                 /* __atomic: a batch waits for room */
	int paused;               /* __atomic: at the intake window */
	uint64_t backlog;         /* __atomic: the store's, last asked */
	uint64_t accepted, rejected; /* __atomic */
};

struct m2w_amqp {
	struct m2w_queue *q;
	struct consumer *c;
	size_t n;
	int stopping;
};

static void bump(uint64_t *c, uint64_t n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

static void set_flag(int *f, int v)
{
	__atomic_store_n(f, v, __ATOMIC_RELAXED);
}

static int stopping(const struct consumer *k)
{
	return __atomic_load_n(&k->owner->stopping, __ATOMIC_ACQUIRE);
}

/* ---------------------------------------------------------------- config */

/* "[amqp \"NAME\"]", how errors name a section. */
static const char *section(const struct m2w_amqp_cfg *c, char *buf,
			   size_t size)
{
	snprintf(buf, size, "[amqp \"%s\"]", c->name);
	return buf;
}

/* The item of a "a, b, c" list at p, cut out in place and trimmed; *next
 * is where the next one starts (NULL after the last). */
static char *list_item(char *p, char **next)
{
	char *end;

	*next = strchr(p, ',');
	if (*next)
		*(*next)++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return p;
}

/* "x-queue-type=quorum, x-max-length=1000" into a table (entries point
 * into buf, which must outlive it). 0, or -1 with errbuf. */
static int args_read(const struct m2w_amqp_cfg *c, char *buf,
		     amqp_table_entry_t *e, int max, amqp_table_t *t,
		     char *errbuf)
{
	char *p = buf, *next, *eq;
	int n = 0;

	t->num_entries = 0;
	t->entries = e;
	for (; p && *p; p = next) {
		p = list_item(p, &next);
		if (!*p)
			continue;
		if (!(eq = strchr(p, '=')) || eq == p || n == max) {
			m2w_fail(errbuf, M2W_EINVAL, "[amqp \"%s\"]: arguments: "
				 "\"%s\" is not name=value", c->name, p);
			return -1;
		}
		*eq++ = '\0';
		while (*eq == ' ')
			eq++;
		e[n].key = amqp_cstring_bytes(p);
		if (*eq && strspn(eq, "0123456789") == strlen(eq)) {
			e[n].value.kind = AMQP_FIELD_KIND_I64;
			e[n].value.value.i64 = strtoll(eq, NULL, 10);
		} else if (strcmp(eq, "true") == 0 ||
			   strcmp(eq, "false") == 0) {
			e[n].value.kind = AMQP_FIELD_KIND_BOOLEAN;
			e[n].value.value.boolean = eq[0] == 't';
		} else {
			e[n].value.kind = AMQP_FIELD_KIND_UTF8;
			e[n].value.value.bytes = amqp_cstring_bytes(eq);
		}
		n++;
	}
	t->num_entries = n;
	return 0;
}

int m2w_amqp_cfg_check(const struct m2w_amqp_cfg *c, char *errbuf)
{
	amqp_table_entry_t e[32];
	amqp_table_t t;
	char *buf;
	int rc;

	struct m2w_link l;
	char sec[300];

	if (m2w_link_init(&l, &c->broker, section(c, sec, sizeof(sec)),
			  errbuf))
		return M2W_EINVAL;
	m2w_link_destroy(&l);
	if (!(buf = strdup(c->arguments ? c->arguments : "")))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	rc = args_read(c, buf, e, 32, &t, errbuf);
	free(buf);
	if (rc)
		return M2W_EINVAL;
	if (c->routing_keys && !c->exchange)
		return m2w_fail(errbuf, M2W_EINVAL, "[amqp \"%s\"]: "
				"routing_keys need an exchange", c->name);
	return M2W_OK;
}

/* ------------------------------------------------------------ connection */

static void disconnect(struct consumer *k)
{
	m2w_link_close(&k->link);
	k->pause = 0;
	set_flag(&k->paused, 0);
}

/* queue.bind to the exchange with each routing key (default: the queue's
 * name); 0, or -1 with why. */
static int bind_keys(struct consumer *k, char *why, size_t size)
{
	const struct m2w_amqp_cfg *c = k->c;
	char *keys = strdup(c->routing_keys ? c->routing_keys : c->queue);
	char *p, *next;
	int rc = 0;

	if (!keys)
		return m2w_link_fail(why, size, "out of memory");
	for (p = keys; !rc && p && *p; p = next) {
		p = list_item(p, &next);
		if (!*p)
			continue;
		amqp_queue_bind(k->link.conn, CHANNEL, amqp_cstring_bytes(c->queue),
				amqp_cstring_bytes(c->exchange),
				amqp_cstring_bytes(p), amqp_empty_table);
		rc = m2w_link_ok(&k->link, "queue.bind", why, size);
	}
	free(keys);
	return rc;
}

/* Connect, declare, bind, qos, consume; 0, or -1 with why. */
static int connect_consume(struct consumer *k, char *why, size_t size)
{
	const struct m2w_amqp_cfg *c = k->c;
	amqp_table_entry_t e[32];
	amqp_table_t args;
	char *abuf, eb[M2W_ERRBUF_SIZE];

	if (m2w_link_open(&k->link, HEARTBEAT_S, why, size))
		return -1;
	if (!(abuf = strdup(c->arguments ? c->arguments : "")))
		return m2w_link_fail(why, size, "out of memory");
	if (args_read(c, abuf, e, 32, &args, eb)) {
		free(abuf);
		return m2w_link_fail(why, size, "%s", eb);
	}
	amqp_queue_declare(k->link.conn, CHANNEL, amqp_cstring_bytes(c->queue),
			   !c->declare, 1, 0, 0, args);
	free(abuf);
	if (m2w_link_ok(&k->link, c->declare ? "queue.declare" : "queue (declare = no)",
		   why, size))
		return -1;
	if (c->exchange && bind_keys(k, why, size))
		return -1;
	amqp_basic_qos(k->link.conn, CHANNEL, 0, (uint16_t)c->prefetch, 0);
	if (m2w_link_ok(&k->link, "basic.qos", why, size))
		return -1;
	amqp_basic_consume(k->link.conn, CHANNEL, amqp_cstring_bytes(c->queue),
			   amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	return m2w_link_ok(&k->link, "basic.consume", why, size);
}

/* ----------------------------------------------------------------- batch */

/* The body format of a content type (JSON when none is given). */
static int format_of(const amqp_basic_properties_t *p)
{
	char ct[64];
	size_t n;

	if (!(p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG))
		return M2W_INGEST_JSON;
	n = p->content_type.len < sizeof(ct) - 1 ? p->content_type.len
						 : sizeof(ct) - 1;
	memcpy(ct, p->content_type.bytes, n);
	ct[n] = '\0';
	if (strchr(ct, ';'))
		*strchr(ct, ';') = '\0';
	if (strcasecmp(ct, "text/csv") == 0)
		return M2W_INGEST_CSV;
	if (strcasecmp(ct, "application/x-ndjson") == 0 ||
	    strcasecmp(ct, "application/ndjson") == 0 ||
	    strcasecmp(ct, "application/jsonl") == 0)
		return M2W_INGEST_NDJSON;
	if (strcasecmp(ct, "application/json") == 0)
		return M2W_INGEST_JSON;
	return -1;
}

/* Tasks without an idempotency key of their own get one from the
 * message_id: "<type>:amqp:<id>" (":<n>" after it for the n-th task of a
 * message of several). -1 out of memory. */
static int message_keys(struct m2w_body *b, const amqp_bytes_t *id)
{
	size_t i;

	for (i = 0; i < b->ntasks; i++) {
		struct m2w_new_task *t = &b->tasks[i];
		char key[M2W_KEY_MAX + 1];
		int n;

		if (t->idem_key)
			continue;
		n = snprintf(key, sizeof(key), "%s:amqp:%.*s", t->type,
			     (int)id->len, (const char *)id->bytes);
		if (b->ntasks > 1 && n > 0 && (size_t)n < sizeof(key))
			n += snprintf(key + n, sizeof(key) - (size_t)n, ":%zu",
				      i + 1);
		if (n < 0 || (size_t)n >= sizeof(key))
			continue; /* too long for a key: the job's rules */
		if (!(t->idem_key = strdup(key)))
			return -1;
	}
	return 0;
}

static void batch_clear(struct consumer *k)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		m2w_body_free(&k->d[i].body);
	k->n = 0;
}

/* A delivery that cannot become tasks: rejected, not requeued (to the
 * queue's dead-letter exchange when it has one), logged. */
static void reject(struct consumer *k, const amqp_envelope_t *env,
		   const char *why)
{
	char q[M2W_ERRBUF_SIZE];
	const amqp_basic_properties_t *p = &env->message.properties;

	amqp_basic_reject(k->link.conn, CHANNEL, env->delivery_tag, 0);
	bump(&k->rejected, 1);
	m2w_log(M2W_LOG_WARN, "amqp.reject", "amqp=%s message_id=%.*s "
		"reason=%s", k->c->name,
		p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG ?
			(int)p->message_id.len : 1,
		p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG ?
			(const char *)p->message_id.bytes : "-",
		m2w_log_quote(q, sizeof(q), why));
}

/* One delivery read into the batch, or rejected. 0, or -1 out of memory
 * (the delivery stays unacknowledged: the broker keeps it). */
static int take(struct consumer *k, const amqp_envelope_t *env)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	struct m2w_ingest_opts o;
	struct delivery *d;
	char source[300];
	int fmt = format_of(p), rc;

	if (fmt < 0) {
		reject(k, env, "content_type is not application/json, "
		       "application/x-ndjson or text/csv");
		return 0;
	}
	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 64;
		struct delivery *nd = realloc(k->d, cap * sizeof(*nd));

		if (!nd)
			return -1;
		k->d = nd;
		k->cap = cap;
	}
	d = &k->d[k->n];
	memset(d, 0, sizeof(*d));
	d->tag = env->delivery_tag;
	snprintf(source, sizeof(source), "amqp:%.200s", k->c->name);
	memset(&o, 0, sizeof(o));
	o.format = fmt;
	o.type = k->c->type[0] ? k->c->type : NULL;
	o.key_field = k->c->key_field;
	o.source = source;
	o.rows_max = ROWS_MAX;
	rc = m2w_ingest_parse_body(env->message.body.bytes,
				   env->message.body.len, &o, &d->body);
	if (rc == M2W_ENOMEM) {
		m2w_body_free(&d->body);
		return -1;
	}
	if (rc != M2W_OK) {
		char why[M2W_ERRBUF_SIZE + 512];

		if (d->body.nerrors)
			snprintf(why, sizeof(why), "%.100s: row %" PRIu64
				 "%s%.64s: %.300s", d->body.error,
				 d->body.errors[0].row,
				 d->body.errors[0].field[0] ? " field " : "",
				 d->body.errors[0].field,
				 d->body.errors[0].reason);
		else
			snprintf(why, sizeof(why), "%.500s", d->body.error);
		reject(k, env, why);
		m2w_body_free(&d->body);
		return 0;
	}
	if ((p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && p->message_id.len &&
	    message_keys(&d->body, &p->message_id)) {
		m2w_body_free(&d->body);
		return -1;
	}
	k->n++;
	return 0;
}

/* The batch's tasks into the store, then one ack for all. Holds on while
 * the store is full (retrying each second). 0, or -1 when the connection
 * must go (a store error other than full: the broker keeps the batch). */
static int commit(struct consumer *k)
{
	struct m2w_new_task *t;
	char eb[M2W_ERRBUF_SIZE] = "", q[M2W_ERRBUF_SIZE];
	size_t i, j, n = 0, dup = 0;
	int rc, said = 0;

	if (!k->n)
		return 0;
	for (i = 0; i < k->n; i++)
		n += k->d[i].body.ntasks;
	if (!(t = calloc(n ? n : 1, sizeof(*t))))
		return -1;
	for (i = 0, n = 0; i < k->n; i++)
		for (j = 0; j < k->d[i].body.ntasks; j++)
			t[n++] = k->d[i].body.tasks[j];
	for (;;) {
		rc = n ? m2w_queue_enqueue(k->owner->q, t, n, eb) : M2W_OK;
		if ((rc != M2W_EFULL && rc != M2W_ENOSPC) || stopping(k))
			break;
		set_flag(&k->held, 1);
		if (!said++)
			m2w_log(M2W_LOG_WARN, "amqp.hold", "amqp=%s tasks=%zu "
				"error=%s (not acknowledged; retried each "
				"second)", k->c->name, n,
				m2w_log_quote(q, sizeof(q), eb));
		sleep(1);
	}
	set_flag(&k->held, 0);
	for (i = 0; i < n; i++)
		dup += t[i].duplicate;
	free(t);
	if (rc != M2W_OK) {
		m2w_log(M2W_LOG_ERROR, "amqp.commit", "amqp=%s tasks=%zu "
			"error=%s (left with the broker)", k->c->name, n,
			m2w_log_quote(q, sizeof(q), eb[0] ? eb :
				      m2w_strerror(rc)));
		batch_clear(k);
		return -1;
	}
	rc = amqp_basic_ack(k->link.conn, CHANNEL, k->d[k->n - 1].tag, 1);
	bump(&k->accepted, k->n);
	m2w_log(M2W_LOG_DEBUG, "amqp.batch", "amqp=%s messages=%zu tasks=%zu "
		"duplicates=%zu", k->c->name, k->n, n, dup);
	batch_clear(k);
	return rc == AMQP_STATUS_OK ? 0 : -1;
}

/* The intake window (see the top): paused at it, going on at half of it.
 * A backlog that cannot be read leaves things as they are. */
static void gate(struct consumer *k)
{
	const struct m2w_amqp_cfg *c = k->c;
	char eb[M2W_ERRBUF_SIZE];
	uint64_t n;
	int was = k->pause;

	if (!c->window || m2w_queue_backlog(k->owner->q, c->type[0] ? c->type
								     : NULL,
					     &n, eb) != M2W_OK)
		return;
	__atomic_store_n(&k->backlog, n, __ATOMIC_RELAXED);
	if (n >= c->window)
		k->pause = 1;
	else if (n <= c->window / 2)
		k->pause = 0;
	if (k->pause == was)
		return;
	set_flag(&k->paused, k->pause);
	m2w_log(M2W_LOG_DEBUG, k->pause ? "amqp.pause" : "amqp.resume",
		"amqp=%s backlog=%" PRIu64 " window=%u held=%zu", c->name, n,
		c->window, k->n);
}

/* Deliveries into a batch until prefetch of them, a quiet moment or
 * BATCH_MS; then the commit, unless the window holds it. 0, or -1 when
 * the connection is gone. */
static int one_batch(struct consumer *k, char *why, size_t size)
{
	int64_t start = m2w_clock_mono_ms();
	amqp_envelope_t env;
	amqp_rpc_reply_t r;
	struct timeval tv;

	gate(k);
	while (!stopping(k)) {
		int64_t quiet = k->n && !k->pause ? QUIET_MS : 200;

		if (!k->pause && (k->n >= k->c->prefetch ||
				  (k->n && m2w_clock_mono_ms() - start >
						   BATCH_MS)))
			break;
		tv.tv_sec = 0;
		tv.tv_usec = (suseconds_t)(quiet * 1000);
		amqp_maybe_release_buffers(k->link.conn);
		r = amqp_consume_message(k->link.conn, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT) {
			if (k->n || k->pause)
				break; /* paused: back to the gate */
			start = m2w_clock_mono_ms();
			continue;
		}
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			m2w_link_reply_text(r, "consume", why, size);
			return -1;
		}
		if (take(k, &env)) {
			amqp_destroy_envelope(&env);
			snprintf(why, size, "out of memory");
			return -1;
		}
		amqp_destroy_envelope(&env);
	}
	if (k->pause)
		return 0; /* held in hand, not acknowledged */
	if (commit(k)) {
		snprintf(why, size, "commit or ack failed");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- hand-back */

#define HANDBACK_PAGE 1000
#define HANDBACK_CONFIRM_MS 10000

/* The unfinished tasks of source `src` ("amqp:NAME", and the ingest's
 * ":<row>" after it) added to *ts and *n. 0, or -1. */
static int handback_list(struct m2w_queue *q, const char *src,
			 struct m2w_task ***ts, size_t *n, char *eb)
{
	static const int states[] = { M2W_READY, M2W_SCHEDULED, M2W_LEASED,
				      M2W_WAITING };
	struct m2w_list_opts o;
	struct m2w_task **page, **grown;
	char next[M2W_CURSOR_MAX];
	size_t s, i, got, len = strlen(src);

	for (s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		memset(&o, 0, sizeof(o));
		o.state = states[s];
		o.limit = HANDBACK_PAGE;
		next[0] = '\0';
		do {
			o.after = next[0] ? next : NULL;
			if (m2w_queue_list(q, &o, &page, &got, next, eb))
				return -1;
			if (!(grown = realloc(*ts, (*n + got + 1) *
						  sizeof(*grown)))) {
				m2w_task_list_free(page, got);
				return -1;
			}
			*ts = grown;
			for (i = 0; i < got; i++) {
				if (page[i]->source &&
				    strncmp(page[i]->source, src, len) == 0 &&
				    (!page[i]->source[len] ||
				     page[i]->source[len] == ':')) {
					(*ts)[(*n)++] = page[i];
					page[i] = NULL;
				} else {
					m2w_task_free(page[i]);
				}
			}
			free(page);
		} while (next[0]);
	}
	return 0;
}

/*
 * Task t as the message section c reads back into the same task, and its
 * message_id into id[size]. With a type: the bare payload (the key comes
 * back from the job's template or key_field, or from the message_id when
 * it was one). Without: an envelope with the payload, the key less the
 * "TYPE:" the store adds, and the next run of a task waiting for a retry.
 */
static char *handback_body(const struct m2w_amqp_cfg *c,
			   const struct m2w_task *t, int64_t now, char *id,
			   size_t size)
{
	struct json_object *o, *p = NULL;
	size_t tl = strlen(t->type);
	const char *key = t->idem_key, *text;
	char *out = NULL;

	snprintf(id, size, "handback:%" PRIu64 ":%" PRId64, t->id,
		 t->created_ms);
	if (key && strncmp(key, t->type, tl) == 0 && key[tl] == ':')
		key += tl + 1;
	if (c->type[0]) {
		if (key && strncmp(key, "amqp:", 5) == 0)
			snprintf(id, size, "%s", key + 5);
		return strdup(t->payload);
	}
	if (!(o = json_object_new_object()) ||
	    !(p = json_tokener_parse(t->payload))) {
		json_object_put(o);
		return NULL;
	}
	json_object_object_add(o, "type", json_object_new_string(t->type));
	json_object_object_add(o, "payload", p);
	if (key)
		json_object_object_add(o, "key", json_object_new_string(key));
	if (t->state == M2W_SCHEDULED && t->next_run_ms > now)
		json_object_object_add(o, "not_before",
				       json_object_new_int64(t->next_run_ms));
	if ((text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)))
		out = strdup(text);
	json_object_put(o);
	return out;
}

/* Publishes ts[0..n) to section c's queue with confirms; the confirmed
 * ones are deleted from the store. How many went back; why on failure. */
static size_t handback_send(struct m2w_queue *q, const struct m2w_amqp_cfg *c,
			    struct m2w_task **ts, size_t n, char *why,
			    size_t size)
{
	struct m2w_link l;
	amqp_basic_properties_t p;
	signed char *ok = calloc(n, 1);
	uint64_t *ids = calloc(n, sizeof(*ids));
	char eb[M2W_ERRBUF_SIZE], id[M2W_KEY_MAX + 1], *body;
	size_t i, done = 0, sent = 0;
	int failed = 0;

	if (!ok || !ids || m2w_link_init(&l, &c->broker, c->name, eb)) {
		snprintf(why, size, "%s", ok && ids ? eb : "out of memory");
		free(ok);
		free(ids);
		return 0;
	}
	if (m2w_link_open(&l, 0, why, size))
		goto out;
	amqp_confirm_select(l.conn, CHANNEL);
	if (m2w_link_ok(&l, "confirm.select", why, size))
		goto out;
	for (i = 0; i < n; i++, sent++) {
		if (!(body = handback_body(c, ts[i], m2w_queue_now(q), id,
					   sizeof(id)))) {
			snprintf(why, size, "task %" PRIu64 ": cannot be "
				 "read back", ts[i]->id);
			break;
		}
		memset(&p, 0, sizeof(p));
		p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
			   AMQP_BASIC_DELIVERY_MODE_FLAG |
			   AMQP_BASIC_MESSAGE_ID_FLAG;
		p.content_type = amqp_cstring_bytes("application/json");
		p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
		p.message_id = amqp_cstring_bytes(id);
		failed = amqp_basic_publish(l.conn, CHANNEL, amqp_empty_bytes,
					    amqp_cstring_bytes(c->queue), 0, 0,
					    &p, amqp_cstring_bytes(body));
		free(body);
		if (failed) {
			snprintf(why, size, "publish: %s",
				 amqp_error_string2(failed));
			break;
		}
	}
	done = m2w_link_confirms(&l, 1, sent, ok, HANDBACK_CONFIRM_MS, &failed,
				 why, size);
	if (done < n && !why[0])
		snprintf(why, size, "%s", done < sent ? "not confirmed"
						      : "not sent");
	for (i = 0; i < done; i++)
		ids[i] = ts[i]->id;
	if (m2w_queue_delete_many(q, ids, done, eb) != M2W_OK)
		m2w_log(M2W_LOG_ERROR, "amqp.handback", "amqp=%s tasks=%zu "
			"error=%s (handed back and still here: handed back "
			"again at the next start, their keys make the copies "
			"duplicates)", c->name, done, eb);
out:
	m2w_link_destroy(&l);
	free(ok);
	free(ids);
	return done;
}

void m2w_amqp_handback(struct m2w_queue *q, const struct m2w_config *cfg)
{
	char src[300], why[M2W_ERRBUF_SIZE], eb[M2W_ERRBUF_SIZE];
	char qq[M2W_ERRBUF_SIZE];
	struct m2w_task **ts;
	size_t i, n, sent;

	for (i = 0; i < cfg->namqps; i++) {
		const struct m2w_amqp_cfg *c = &cfg->amqps[i];

		if (!c->handback)
			continue;
		snprintf(src, sizeof(src), "amqp:%s", c->name);
		ts = NULL;
		n = 0;
		why[0] = '\0';
		if (handback_list(q, src, &ts, &n, eb)) {
			m2w_log(M2W_LOG_ERROR, "amqp.handback", "amqp=%s "
				"error=%s (the tasks run here)", c->name,
				m2w_log_quote(qq, sizeof(qq), eb));
		} else if (n) {
			sent = handback_send(q, c, ts, n, why, sizeof(why));
			m2w_log(sent == n ? M2W_LOG_INFO : M2W_LOG_WARN,
				"amqp.handback", "amqp=%s queue=%s tasks=%zu "
				"handed_back=%zu%s%s", c->name, c->queue, n,
				sent, why[0] ? " error=" : "",
				why[0] ? m2w_log_quote(qq, sizeof(qq), why)
				       : "");
		}
		m2w_task_list_free(ts, n);
	}
}

/* ---------------------------------------------------------------- thread */

/* Sleeps ms (in short steps, so a stop is seen). */
static void nap(struct consumer *k, int64_t ms)
{
	int64_t end = m2w_clock_mono_ms() + ms;

	while (!stopping(k) && m2w_clock_mono_ms() < end)
		usleep(50000);
}

static void *consume(void *arg)
{
	struct consumer *k = arg;
	char why[M2W_ERRBUF_SIZE], who[300];

	snprintf(who, sizeof(who), "amqp=%s", k->c->name);
	nap(k, k->c->standby_ms); /* others' partitions: theirs come first */
	while (!stopping(k)) {
		why[0] = '\0';
		if (connect_consume(k, why, sizeof(why)) == 0) {
			m2w_log(M2W_LOG_INFO, "amqp.up", "%s host=%s port=%d "
				"queue=%s prefetch=%u window=%u", who,
				k->link.host, k->link.port, k->c->queue,
				k->c->prefetch, k->c->window);
			m2w_link_up(&k->link);
			while (!stopping(k) && one_batch(k, why,
							 sizeof(why)) == 0)
				;
			batch_clear(k);
			if (stopping(k))
				break;
		}
		disconnect(k);
		nap(k, m2w_link_down(&k->link, "amqp.down", who, why));
	}
	disconnect(k);
	batch_clear(k);
	free(k->d);
	k->d = NULL;
	return NULL;
}

int m2w_amqp_start(struct m2w_queue *q, const struct m2w_config *cfg,
		   struct m2w_amqp **out, char *errbuf)
{
	struct m2w_amqp *a;
	size_t i;
	int rc;

	*out = NULL;
	if (!cfg->namqps)
		return M2W_OK;
	for (i = 0; i < cfg->namqps; i++)
		if ((rc = m2w_amqp_cfg_check(&cfg->amqps[i], errbuf)))
			return rc;
	if (!(a = calloc(1, sizeof(*a))) ||
	    !(a->c = calloc(cfg->namqps, sizeof(*a->c)))) {
		free(a);
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	}
	a->q = q;
	a->n = cfg->namqps;
	for (i = 0; i < a->n; i++) {
		struct consumer *k = &a->c[i];

		k->owner = a;
		k->c = &cfg->amqps[i];
		m2w_link_init(&k->link, &k->c->broker, k->c->name, errbuf);
		k->link.seed ^= (unsigned)i;
		if (pthread_create(&k->th, NULL, consume, k) != 0) {
			m2w_amqp_free(a);
			return m2w_fail(errbuf, M2W_ENOMEM, "cannot start the "
					"consumer of [amqp \"%s\"]", k->c->name);
		}
		k->started = 1;
	}
	*out = a;
	return M2W_OK;
}

void m2w_amqp_stop(struct m2w_amqp *a)
{
	size_t i;

	if (!a)
		return;
	__atomic_store_n(&a->stopping, 1, __ATOMIC_RELEASE);
	for (i = 0; i < a->n; i++)
		if (a->c[i].started) {
			pthread_join(a->c[i].th, NULL);
			a->c[i].started = 0;
		}
}

void m2w_amqp_free(struct m2w_amqp *a)
{
	size_t i;

	if (!a)
		return;
	m2w_amqp_stop(a);
	for (i = 0; i < a->n; i++)
		m2w_link_destroy(&a->c[i].link);
	free(a->c);
	free(a);
}

/* -------------------------------------------------------------- reports */

void m2w_amqp_metrics(struct m2w_amqp *a, struct m2w_buf *o)
{
	static const char *const help[][3] = {
		{ "up", "gauge",
		  "1 while the consumer is connected and consuming." },
		{ "held", "gauge",
		  "1 while a batch waits for room in the store (not acked)." },
		{ "paused", "gauge",
		  "1 while the store's backlog is at the intake window." },
		{ "backlog", "gauge",
		  "The store's backlog the intake window counts (last asked)." },
		{ "messages_total", "counter",
		  "Messages taken (accepted: committed and acked; rejected: "
		  "to the dead-letter exchange)." },
		{ "reconnects_total", "counter",
		  "Connections lost or refused." },
	};
	size_t i, h;

	for (h = 0; a && h < sizeof(help) / sizeof(help[0]); h++) {
		m2w_buf_addf(o, "# HELP m2worker_amqp_%s %s\n# TYPE "
			     "m2worker_amqp_%s %s\n", help[h][0], help[h][2],
			     help[h][0], help[h][1]);
		for (i = 0; i < a->n; i++) {
			struct consumer *k = &a->c[i];
			uint64_t v[] = {
				(uint64_t)__atomic_load_n(&k->link.up,
							  __ATOMIC_RELAXED),
				(uint64_t)__atomic_load_n(&k->held,
							  __ATOMIC_RELAXED),
				(uint64_t)__atomic_load_n(&k->paused,
							  __ATOMIC_RELAXED),
				__atomic_load_n(&k->backlog, __ATOMIC_RELAXED),
				__atomic_load_n(&k->accepted, __ATOMIC_RELAXED),
				__atomic_load_n(&k->link.reconnects,
						__ATOMIC_RELAXED),
			};
			const char *n = k->c->name;

			if (h == 4)
				m2w_buf_addf(o, "m2worker_amqp_%s{amqp=\"%s\","
					     "outcome=\"rejected\"} %" PRIu64
					     "\n", help[h][0], n,
					     __atomic_load_n(&k->rejected,
							     __ATOMIC_RELAXED));
			m2w_buf_addf(o, "m2worker_amqp_%s{amqp=\"%s\"%s} %"
				     PRIu64 "\n", help[h][0], n,
				     h == 4 ? ",outcome=\"accepted\"" : "",
				     v[h]);
		}
	}
}

void m2w_amqp_health(struct m2w_amqp *a, struct m2w_buf *o)
{
	size_t i;

	for (i = 0; a && i < a->n; i++) {
		struct consumer *k = &a->c[i];
		char why[sizeof(k->link.why)];

		if (m2w_link_state(&k->link, why, sizeof(why))) {
			m2w_buf_addf(o, "amqp %s: up%s\n", k->c->name,
				     __atomic_load_n(&k->held, __ATOMIC_RELAXED)
				     ? " (held: the store is full)" :
				     __atomic_load_n(&k->paused,
						     __ATOMIC_RELAXED)
				     ? " (paused: the backlog is at the "
				       "window)" : "");
			continue;
		}
		m2w_buf_addf(o, "amqp %s: down: %s\n", k->c->name, why);
	}
}
