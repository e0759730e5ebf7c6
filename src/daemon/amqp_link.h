/*
 * amqp_link.h - one connection to a RabbitMQ broker (rabbitmq-c), as the
 * AMQP source (amqp.c) and the result publisher (events.c) both need it:
 * the URL and the section's keys read, a socket (TCP or TLS), the login,
 * channel 1; broker and library failures as one line of text; the
 * reconnect backoff.
 *
 * A link is used by one thread (rabbitmq-c connections are not shared).
 * Only built with HAVE_AMQP.
 */
#ifndef M2W_DAEMON_AMQP_LINK_H
#define M2W_DAEMON_AMQP_LINK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "m2worker/config.h"

#define M2W_LINK_CHANNEL 1

struct m2w_link {
	const struct m2w_broker *b;   /* borrowed */
	amqp_connection_state_t conn; /* NULL while closed */
	int open;                     /* channel open: close it politely */
	char host[256];
	int port, ssl;
	char vhost[256], user[256], password[256];
	int64_t backoff_ms;           /* the next reconnect's wait */
	unsigned seed;                /* its jitter */
	char last[256];               /* the last reason logged */
	/* for /metrics and /healthz: other threads read them */
	int up;                       /* __atomic */
	uint64_t reconnects;          /* __atomic */
	pthread_mutex_t mu;           /* guards why */
	char why[256];                /* why it is down */
};

/* Reads b's URL and keys into l (closed). `section` names it in errbuf:
 * "[amqp \"orders\"]". 0 (then m2w_link_destroy frees it), or -1 with
 * errbuf (M2W_EINVAL). */
int m2w_link_init(struct m2w_link *l, const struct m2w_broker *b,
		  const char *section, char *errbuf);

/* Connects, logs in (heartbeat_s), opens channel 1. 0, or -1 with why
 * (the link is then closed again by m2w_link_close). */
int m2w_link_open(struct m2w_link *l, int heartbeat_s, char *why,
		  size_t size);
void m2w_link_close(struct m2w_link *l);
void m2w_link_destroy(struct m2w_link *l);

/* The thread's link is up: the state readers see, the backoff reset. */
void m2w_link_up(struct m2w_link *l);
/* It is lost or was refused (why): closed, counted, the reason kept for
 * m2w_link_state and logged as `event` (warn, with `who`: "amqp=orders")
 * once per new reason. Returns how long to wait before the next try. */
int64_t m2w_link_down(struct m2w_link *l, const char *event, const char *who,
		      const char *why);
/* Any thread: 1 when up; else 0 and why (size bytes). */
int m2w_link_state(struct m2w_link *l, char *why, size_t size);

/* The last RPC's reply: 0, or -1 with why "what: <reason>". */
int m2w_link_ok(struct m2w_link *l, const char *what, char *why,
		size_t size);
/* Any reply as text "what: <reason>". */
void m2w_link_reply_text(amqp_rpc_reply_t r, const char *what, char *out,
			 size_t size);

/* Waits up to ms for one frame on a channel in confirm mode: a basic.ack
 * or basic.nack settles ok[] (1 acked, -1 nacked) for the delivery tags
 * first..first+n-1 it covers; other frames are ignored, a channel or
 * connection closed by the broker is an error. 0 (also after a timeout),
 * or -1 with why. */
int m2w_link_confirm_wait(struct m2w_link *l, uint64_t first, size_t n,
			  signed char *ok, int64_t ms, char *why, size_t size);

/* After publishing n messages with delivery tags first..first+n-1: waits
 * up to ms until the broker settled them all. Returns how many, from the
 * first, it acknowledged (ok[] tells the rest: -1 nacked, 0 not yet);
 * *failed = 1 (why says how) when the connection failed meanwhile. */
size_t m2w_link_confirms(struct m2w_link *l, uint64_t first, size_t n,
			 signed char *ok, int64_t ms, int *failed, char *why,
			 size_t size);


/* Says why into why[size]; -1, so a failure is one line. */
int m2w_link_fail(char *why, size_t size, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

#endif
