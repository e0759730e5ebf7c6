/*
 * amqp-pub.c - publishes stdin to RabbitMQ, one message per line, with
 * publisher confirms: the tests' and the bench's producer.
 *
 *   amqp-pub -u amqp://127.0.0.1:5672 -q QUEUE [-t CONTENT-TYPE]
 *            [-i ID-PREFIX] [-e EXCHANGE [-x TYPE] -r ROUTING-KEY | -K FIELD]
 *   amqp-pub -u URL -q QUEUE -b EXCHANGE:KEY     (bind, publish nothing)
 *   amqp-pub -u URL -q QUEUE -D                  (drain: print, ack)
 *
 * Each message is persistent; with -i it carries message_id
 * "ID-PREFIX-<line>" (line numbers from 1). The queue is declared durable
 * when it does not exist yet (-q, the default exchange); with -e the
 * message goes to that exchange under -r, or under the value of the
 * line's JSON string member FIELD with -K (the ordering key, for a
 * consistent-hash exchange); -x declares the exchange (durable) of that
 * type first. Exits 0 once the broker has confirmed every message, 1 on
 * any failure (said on stderr), and prints "published N, confirmed N, S s,
 * R msg/s".
 *
 * -b binds QUEUE (declared durable when absent) to EXCHANGE with KEY. -D
 * takes every message of QUEUE until it stays empty for a second and
 * prints "message_id<TAB>routing_key<TAB>body" for each (the tests' event
 * counter).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

static void die(const char *what, const char *why)
{
	fprintf(stderr, "amqp-pub: %s: %s\n", what, why);
	exit(1);
}

static void rpc(amqp_connection_state_t c, const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);

	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
		die(what, amqp_error_string2(r.library_error));
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die(what, "refused by the broker");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The value of the JSON string member "field" in line (its first
 * occurrence, no escapes), into out; "" when absent. */
static void member(const char *line, const char *field, char *out,
		   size_t size)
{
	char pat[128];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\":\"", field);
	out[0] = '\0';
	if (!(p = strstr(line, pat)))
		return;
	p += strlen(pat);
	if (!(e = strchr(p, '"')) || (size_t)(e - p) >= size)
		return;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
}

/* -D: every message of queue, printed and acked, until a second passes
 * with the queue empty. */
static void drain(amqp_connection_state_t c, amqp_channel_t chan,
		  const char *queue)
{
	double quiet = now_s();
	unsigned long n = 0;

	while (now_s() - quiet < 1.0) {
		amqp_rpc_reply_t r = amqp_basic_get(c, chan,
						    amqp_cstring_bytes(queue),
						    0);
		amqp_message_t m;
		amqp_basic_get_ok_t *ok;

		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			die("basic.get", "failed");
		if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) {
			usleep(50000);
			continue;
		}
		ok = r.reply.decoded;
		if (amqp_read_message(c, chan, &m, 0).reply_type !=
		    AMQP_RESPONSE_NORMAL)
			die("read", "failed");
		printf("%.*s\t%.*s\t%.*s\n",
		       m.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG ?
			       (int)m.properties.message_id.len : 1,
		       m.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG ?
			       (const char *)m.properties.message_id.bytes : "-",
		       (int)ok->routing_key.len,
		       (const char *)ok->routing_key.bytes,
		       (int)m.body.len, (const char *)m.body.bytes);
		amqp_basic_ack(c, chan, ok->delivery_tag, 0);
		amqp_destroy_message(&m);
		amqp_maybe_release_buffers(c);
		quiet = now_s();
		n++;
	}
	fprintf(stderr, "drained %lu\n", n);
}


/* Confirmed delivery tags (they may come out of order, single or
 * "multiple" up to a tag, when the messages go to several queues). */
static unsigned char *acked;
static uint64_t acked_cap, low = 1, have;

static void ack(uint64_t tag, int multiple)
{
	uint64_t t;

	if (tag >= acked_cap) {
		uint64_t cap = (tag + 1) * 2;
		unsigned char *grown = realloc(acked, cap);

		if (!grown)
			die("confirm", "out of memory");
		acked = grown;
		memset(acked + acked_cap, 0, cap - acked_cap);
		acked_cap = cap;
	}
	for (t = multiple ? low : tag; t <= tag; t++)
		if (!acked[t]) {
			acked[t] = 1;
			have++;
		}
	while (low < acked_cap && acked[low])
		low++;
}

/* Reads confirms until `want` are in; a nack is a failure. */
static uint64_t confirms(amqp_connection_state_t c, uint64_t want)
{
	amqp_frame_t f;

	while (have < want) {
		if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
			die("confirm", "connection lost");
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;

			ack(a->delivery_tag, a->multiple);
		} else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
			die("confirm", "the broker refused a message (nack)");
		} else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
			die("confirm", "the broker closed the channel");
		}
	}
	return have;
}

int main(int argc, char **argv)
{
	const char *url = NULL, *queue = NULL, *ctype = "application/json";
	const char *prefix = NULL, *exchange = "", *rkey = NULL;
	const char *xtype = NULL, *kfield = NULL, *bind = NULL;
	char key[256];
	int dump = 0;
	struct amqp_connection_info ci;
	amqp_connection_state_t c;
	amqp_socket_t *s;
	char *line = NULL, *u, id[256];
	size_t cap = 0;
	ssize_t n;
	uint64_t sent = 0, acked_n = 0;
	double t0;
	int ch;

	while ((ch = getopt(argc, argv, "u:q:t:i:e:r:x:K:b:D")) != -1) {
		switch (ch) {
		case 'u': url = optarg; break;
		case 'q': queue = optarg; break;
		case 't': ctype = optarg; break;
		case 'i': prefix = optarg; break;
		case 'e': exchange = optarg; break;
		case 'r': rkey = optarg; break;
		case 'x': xtype = optarg; break;
		case 'K': kfield = optarg; break;
		case 'b': bind = optarg; break;
		case 'D': dump = 1; break;
		default:
			fprintf(stderr, "usage: amqp-pub -u URL -q QUEUE [-t "
				"TYPE] [-i ID-PREFIX] [-e EXCHANGE [-x TYPE] "
				"-r KEY | -K FIELD] | -b EXCHANGE:KEY | -D\n");
			return 2;
		}
	}
	if (!url || (!queue && !rkey && !kfield))
		die("usage", "-u URL and -q QUEUE (or -e and -r) are needed");
	if (!(u = strdup(url)))
		die("url", "out of memory");
	amqp_default_connection_info(&ci);
	if (amqp_parse_url(u, &ci) != AMQP_STATUS_OK)
		die("url", "not amqp://[user:password@]host[:port][/vhost]");
	c = amqp_new_connection();
	if (!(s = amqp_tcp_socket_new(c)) ||
	    amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK)
		die("connect", ci.host);
	if (amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
		       ci.user, ci.password).reply_type != AMQP_RESPONSE_NORMAL)
		die("login", "refused");
	amqp_channel_open(c, 1);
	rpc(c, "channel");
	{
		amqp_channel_t chan = 1;
		amqp_basic_properties_t p;

		if (xtype) {
			amqp_exchange_declare(c, chan,
					      amqp_cstring_bytes(exchange),
					      amqp_cstring_bytes(xtype), 0, 1,
					      0, 0, amqp_empty_table);
			rpc(c, "exchange.declare");
		}
		if (queue && !*exchange) {
			amqp_queue_declare(c, chan, amqp_cstring_bytes(queue),
					   1, 1, 0, 0, amqp_empty_table);
			if (amqp_get_rpc_reply(c).reply_type !=
			    AMQP_RESPONSE_NORMAL) {
				/* absent: the passive declare closed the
				 * channel; declare it on another */
				chan = 2;
				amqp_channel_open(c, chan);
				rpc(c, "channel");
				amqp_queue_declare(c, chan,
						   amqp_cstring_bytes(queue), 0,
						   1, 0, 0, amqp_empty_table);
				rpc(c, "queue.declare");
			}
		}
		if (bind) {
			char *colon = strchr(bind, ':');

			if (!colon)
				die("-b", "EXCHANGE:KEY");
			*colon = '\0';
			amqp_queue_bind(c, chan, amqp_cstring_bytes(queue),
					amqp_cstring_bytes(bind),
					amqp_cstring_bytes(colon + 1),
					amqp_empty_table);
			rpc(c, "queue.bind");
			amqp_connection_close(c, AMQP_REPLY_SUCCESS);
			amqp_destroy_connection(c);
			free(u);
			return 0;
		}
		if (dump) {
			drain(c, chan, queue);
			amqp_connection_close(c, AMQP_REPLY_SUCCESS);
			amqp_destroy_connection(c);
			free(u);
			return 0;
		}
		amqp_confirm_select(c, chan);
		rpc(c, "confirm.select");
		t0 = now_s();
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			if (n && line[n - 1] == '\n')
				line[--n] = '\0';
			memset(&p, 0, sizeof(p));
			p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
				   AMQP_BASIC_DELIVERY_MODE_FLAG;
			p.content_type = amqp_cstring_bytes(ctype);
			p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
			if (prefix) {
				snprintf(id, sizeof(id), "%s-%llu", prefix,
					 (unsigned long long)sent + 1);
				p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
				p.message_id = amqp_cstring_bytes(id);
			}
			if (kfield)
				member(line, kfield, key, sizeof(key));
			if (amqp_basic_publish(c, chan,
					       amqp_cstring_bytes(exchange),
					       amqp_cstring_bytes(kfield ? key :
								  rkey ? rkey
								       : queue),
					       0, 0, &p,
					       (amqp_bytes_t){ (size_t)n, line })
			    != AMQP_STATUS_OK)
				die("publish", "failed");
			sent++;
			if (sent - acked_n >= 1000)
				acked_n = confirms(c, sent - 500);
		}
		acked_n = confirms(c, sent);
		amqp_channel_close(c, chan, AMQP_REPLY_SUCCESS);
	}
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	printf("published %llu, confirmed %llu, %.2f s, %.0f msg/s\n",
	       (unsigned long long)sent, (unsigned long long)acked_n,
	       now_s() - t0, (double)sent / (now_s() - t0 + 1e-9));
	free(line);
	free(u);
	free(acked);
	return 0;
}
