/*
 * amqp_link.c - one broker connection (amqp_link.h): URL, socket, login,
 * channel 1, failures as text, confirms, the reconnect backoff and the
 * up/down state the reporters read.
 *
 * The section's own user, password and vhost win over the URL's. TLS
 * (amqps://) verifies the broker's certificate and host name unless
 * `verify = no`, against ca_file or the system's CAs.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "amqp_link.h"
#include "m2worker/clock.h"
#include "m2worker/error.h"
#include "m2worker/log.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define FRAME_MAX 131072
#define CONNECT_TIMEOUT_S 10

int m2w_link_fail(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return -1;
}

int m2w_link_init(struct m2w_link *l, const struct m2w_broker *b,
		  const char *section, char *errbuf)
{
	struct amqp_connection_info ci;
	char *u = strdup(b->url ? b->url : "");

	memset(l, 0, sizeof(*l));
	l->b = b;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->seed = (unsigned)m2w_clock_mono_us();
	if (!u) {
		m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
		return -1;
	}
	amqp_default_connection_info(&ci);
	if (amqp_parse_url(u, &ci) != AMQP_STATUS_OK) {
		free(u);
		m2w_fail(errbuf, M2W_EINVAL, "%s: url is not "
			 "amqp://[user:password@]host[:port][/vhost] (or "
			 "amqps://)", section);
		return -1;
	}
	snprintf(l->host, sizeof(l->host), "%s", ci.host);
	l->port = ci.port;
	l->ssl = ci.ssl;
	/* "amqp://host/" names the vhost "" (the URI spec), which no
	 * RabbitMQ has: it means the default, "/" */
	snprintf(l->vhost, sizeof(l->vhost), "%s", b->vhost ? b->vhost :
		 *ci.vhost ? ci.vhost : "/");
	snprintf(l->user, sizeof(l->user), "%s", b->user ? b->user : ci.user);
	snprintf(l->password, sizeof(l->password), "%s",
		 b->password ? b->password : ci.password);
	free(u);
	pthread_mutex_init(&l->mu, NULL);
	snprintf(l->why, sizeof(l->why), "connecting");
	return 0;
}

void m2w_link_reply_text(amqp_rpc_reply_t r, const char *what, char *out,
			 size_t size)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		snprintf(out, size, "%s: ok", what);
		break;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		snprintf(out, size, "%s: %s", what,
			 amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;

			snprintf(out, size, "%s: the broker closed the "
				 "connection: %u %.*s", what, m->reply_code,
				 (int)m->reply_text.len,
				 (const char *)m->reply_text.bytes);
		} else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;

			snprintf(out, size, "%s: the broker closed the "
				 "channel: %u %.*s", what, m->reply_code,
				 (int)m->reply_text.len,
				 (const char *)m->reply_text.bytes);
		} else {
			snprintf(out, size, "%s: broker error (method 0x%08x)",
				 what, r.reply.id);
		}
		break;
	default:
		snprintf(out, size, "%s: no reply", what);
	}
}

int m2w_link_ok(struct m2w_link *l, const char *what, char *why, size_t size)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(l->conn);

	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	m2w_link_reply_text(r, what, why, size);
	return -1;
}

int m2w_link_open(struct m2w_link *l, int heartbeat_s, char *why,
		  size_t size)
{
	const struct m2w_broker *b = l->b;
	struct timeval tv = { CONNECT_TIMEOUT_S, 0 };
	amqp_socket_t *sock;
	amqp_rpc_reply_t r;
	int rc;

	if (!(l->conn = amqp_new_connection()))
		return m2w_link_fail(why, size, "out of memory");
	sock = l->ssl ? amqp_ssl_socket_new(l->conn)
		      : amqp_tcp_socket_new(l->conn);
	if (!sock)
		return m2w_link_fail(why, size, "cannot make a socket");
	if (l->ssl) {
		if (b->ca_file && amqp_ssl_socket_set_cacert(sock, b->ca_file))
			return m2w_link_fail(why, size, "ca_file %s: cannot "
					     "be read", b->ca_file);
		amqp_ssl_socket_set_verify_peer(sock, b->verify);
		amqp_ssl_socket_set_verify_hostname(sock, b->verify);
	}
	rc = amqp_socket_open_noblock(sock, l->host, l->port, &tv);
	if (rc != AMQP_STATUS_OK)
		return m2w_link_fail(why, size, "connect %.100s:%d: %.100s",
				     l->host, l->port, amqp_error_string2(rc));
	r = amqp_login(l->conn, l->vhost, 0, FRAME_MAX, heartbeat_s,
		       AMQP_SASL_METHOD_PLAIN, l->user, l->password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		m2w_link_reply_text(r, "login", why, size);
		return -1;
	}
	amqp_channel_open(l->conn, M2W_LINK_CHANNEL);
	if (m2w_link_ok(l, "channel", why, size))
		return -1;
	l->open = 1;
	return 0;
}

void m2w_link_close(struct m2w_link *l)
{
	if (!l->conn)
		return;
	if (l->open) {
		amqp_channel_close(l->conn, M2W_LINK_CHANNEL,
				   AMQP_REPLY_SUCCESS);
		amqp_connection_close(l->conn, AMQP_REPLY_SUCCESS);
	}
	amqp_destroy_connection(l->conn);
	l->conn = NULL;
	l->open = 0;
}

int m2w_link_confirm_wait(struct m2w_link *l, uint64_t first, size_t n,
			  signed char *ok, int64_t ms, char *why, size_t size)
{
	amqp_frame_t f;
	struct timeval tv;
	uint64_t tag, t;
	int rc, mult, val;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	rc = amqp_simple_wait_frame_noblock(l->conn, &f, &tv);
	if (rc == AMQP_STATUS_TIMEOUT)
		return 0;
	if (rc != AMQP_STATUS_OK)
		return m2w_link_fail(why, size, "connection: %s",
				     amqp_error_string2(rc));
	if (f.frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f.payload.method.id) {
	case AMQP_BASIC_ACK_METHOD:
		tag = ((amqp_basic_ack_t *)f.payload.method.decoded)
			      ->delivery_tag;
		mult = ((amqp_basic_ack_t *)f.payload.method.decoded)->multiple;
		val = 1;
		break;
	case AMQP_BASIC_NACK_METHOD:
		tag = ((amqp_basic_nack_t *)f.payload.method.decoded)
			      ->delivery_tag;
		mult = ((amqp_basic_nack_t *)f.payload.method.decoded)
			       ->multiple;
		val = -1;
		break;
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *m = f.payload.method.decoded;

		return m2w_link_fail(why, size, "the broker closed the "
				     "channel: %u %.*s", m->reply_code,
				     (int)m->reply_text.len,
				     (const char *)m->reply_text.bytes);
	}
	case AMQP_CONNECTION_CLOSE_METHOD:
		return m2w_link_fail(why, size, "the broker closed the "
				     "connection");
	default:
		return 0;
	}
	for (t = mult ? first : tag; t <= tag; t++)
		if (t >= first && t < first + n && !ok[t - first])
			ok[t - first] = (signed char)val;
	return 0;
}

size_t m2w_link_confirms(struct m2w_link *l, uint64_t first, size_t n,
			 signed char *ok, int64_t ms, int *failed, char *why,
			 size_t size)
{
	int64_t end = m2w_clock_mono_ms() + ms, left;
	size_t done, i;

	*failed = 0;
	for (;;) {
		for (done = 0; done < n && ok[done] == 1; done++)
			;
		for (i = done; i < n && ok[i]; i++)
			;
		left = end - m2w_clock_mono_ms();
		if (i == n || left <= 0)
			return done;
		if (m2w_link_confirm_wait(l, first, n, ok, left, why, size)) {
			*failed = 1;
			return done;
		}
	}
}

void m2w_link_destroy(struct m2w_link *l)
{
	m2w_link_close(l);
	pthread_mutex_destroy(&l->mu);
}

void m2w_link_up(struct m2w_link *l)
{
	l->backoff_ms = BACKOFF_MIN_MS;
	l->last[0] = '\0';
	__atomic_store_n(&l->up, 1, __ATOMIC_RELAXED);
}

int64_t m2w_link_down(struct m2w_link *l, const char *event, const char *who,
		      const char *why)
{
	int64_t wait = l->backoff_ms, fifth = wait / 5;
	char q[M2W_ERRBUF_SIZE];

	m2w_link_close(l);
	__atomic_store_n(&l->up, 0, __ATOMIC_RELAXED);
	__atomic_add_fetch(&l->reconnects, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&l->mu);
	snprintf(l->why, sizeof(l->why), "%s", why);
	pthread_mutex_unlock(&l->mu);
	if (fifth)
		wait -= (int64_t)(rand_r(&l->seed) % (unsigned)fifth);
	l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							   : l->backoff_ms * 2;
	if (strncmp(why, l->last, sizeof(l->last) - 1) != 0) {
		m2w_log(M2W_LOG_WARN, event, "%s%serror=%s retry_ms=%" PRId64,
			who, *who ? " " : "", m2w_log_quote(q, sizeof(q), why),
			wait);
		snprintf(l->last, sizeof(l->last), "%s", why);
	}
	return wait;
}

int m2w_link_state(struct m2w_link *l, char *why, size_t size)
{
	if (__atomic_load_n(&l->up, __ATOMIC_RELAXED))
		return 1;
	pthread_mutex_lock(&l->mu);
	snprintf(why, size, "%s", l->why);
	pthread_mutex_unlock(&l->mu);
	return 0;
}
