#include "config.h"
/*
 * php.c - what costs one of Magento's PHP workers: the pool, the service
 * time, and the storefront page.
 *
 * In production every request Magento serves, a REST call as much as a
 * shopper's page view, holds one PHP-FPM worker for its whole service
 * time, and requests beyond the pool's size wait in the listen queue,
 * first come first served. --php-workers N models that: a counting
 * semaphore of N slots whose waiters are admitted strictly in arrival
 * order. N = 0 means no limit (nobody ever waits), the default.
 *
 * The FIFO: a waiter puts a struct fk_php_waiter (on its own stack, with
 * its own condition variable) at the tail of a list and sleeps on it.
 * Whoever frees a slot (a leaving request, a larger N) admits from the
 * head while there is room: it takes the slot on the waiter's behalf and
 * wakes exactly that waiter, so there is no thundering herd and nobody
 * overtakes. A request that finds the list empty and a slot free takes it
 * without waiting. fk_php_stop() (main.c, on SIGTERM) wakes every waiter;
 * one not yet admitted leaves the queue and its request answers 503, so
 * stopping never waits on the queue.
 *
 * What takes a slot (fk_php_serve, from main.c's dispatch): every request
 * under /rest (routes.c: faults and the --latency-ms sleep included, and
 * the work under srv->mu) and GET /storefront (--storefront-ms of sleep,
 * then a small HTML page). The /_fake/ control endpoints never do.
 *
 * Locking: the pool has its own mutex, p->mu. It is taken after srv->mu
 * when both are held (fk_state_json, fk_state_reset, the control
 * endpoint), never before; nothing here takes srv->mu.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake.h"

struct fk_php_waiter {
	pthread_cond_t cv;
	struct fk_php_waiter *next;
	int admitted;               /* the slot is ours (set by the admitter) */
};

static const char storefront_html[] =
	"<!DOCTYPE html>\n"
	"<html><head><meta charset=\"utf-8\"><title>Product page</title></head>\n"
	"<body><h1>A product</h1><p>fake-magento storefront: this page cost "
	"one PHP worker.</p></body></html>\n";

void fk_php_init(struct fk_php *p, long workers)
{
	memset(p, 0, sizeof *p);
	pthread_mutex_init(&p->mu, NULL);
	p->workers = workers;
}

void fk_php_destroy(struct fk_php *p)
{
	pthread_mutex_destroy(&p->mu);
}

static int has_room(const struct fk_php *p)
{
	return p->workers == 0 || p->busy < p->workers;
}

static void take(struct fk_php *p)
{
	p->busy++;
	if (p->busy > p->busy_max)
		p->busy_max = p->busy;
}

/* Hands free slots to the waiters at the head, in order. p->mu held. */
static void admit(struct fk_php *p)
{
	while (p->head && has_room(p)) {
		struct fk_php_waiter *w = p->head;

		p->head = w->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		take(p);
		w->admitted = 1;
		pthread_cond_signal(&w->cv);   /* w is not touched after this */
	}
}

static void link_waiter(struct fk_php *p, struct fk_php_waiter *w)
{
	if (p->tail)
		p->tail->next = w;
	else
		p->head = w;
	p->tail = w;
	p->queued++;
	if (p->queued > p->queued_max)
		p->queued_max = p->queued;
}

static void unlink_waiter(struct fk_php *p, struct fk_php_waiter *w)
{
	struct fk_php_waiter **pp, *prev = NULL;

	for (pp = &p->head; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp != w)
			continue;
		*pp = w->next;
		if (p->tail == w)
			p->tail = prev;
		p->queued--;
		return;
	}
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* 0: a slot is ours (give it back with php_leave); -1: the server is
 * stopping and none was taken. */
static int php_enter(struct fk_php *p)
{
	struct fk_php_waiter w;
	uint64_t t0;
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	if (!p->head && has_room(p)) {
		take(p);
		pthread_mutex_unlock(&p->mu);
		return 0;
	}
	if (p->stopping) {
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	t0 = mono_us();
	pthread_cond_init(&w.cv, NULL);
	w.next = NULL;
	w.admitted = 0;
	/* w lives on this stack while it is in the list: it leaves it (popped
	 * by admit(), or unlink_waiter() below) before this function returns */
	link_waiter(p, &w);
	while (!w.admitted && !p->stopping)
		pthread_cond_wait(&w.cv, &p->mu);
	if (w.admitted) {
		p->wait_us_total += mono_us() - t0;
	} else {
		unlink_waiter(p, &w);
		rc = -1;
	}
	pthread_mutex_unlock(&p->mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

static void php_leave(struct fk_php *p, enum fk_php_kind kind)
{
	pthread_mutex_lock(&p->mu);
	p->busy--;
	p->served[kind]++;
	admit(p);
	pthread_mutex_unlock(&p->mu);
}

void fk_php_set_workers(struct fk_server *srv, long n)
{
	struct fk_php *p = &srv->php;

	pthread_mutex_lock(&p->mu);
	p->workers = n;
	admit(p);                   /* more room, or none: never fewer busy */
	pthread_mutex_unlock(&p->mu);
}

long fk_php_workers(struct fk_server *srv)
{
	long n;

	pthread_mutex_lock(&srv->php.mu);
	n = srv->php.workers;
	pthread_mutex_unlock(&srv->php.mu);
	return n;
}

void fk_php_stop(struct fk_server *srv)
{
	struct fk_php *p = &srv->php;
	struct fk_php_waiter *w;

	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	for (w = p->head; w; w = w->next)
		pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&p->mu);
}

/* /_fake/reset: the command line's size again, the counters from now. */
void fk_php_reset(struct fk_server *srv)
{
	struct fk_php *p = &srv->php;

	pthread_mutex_lock(&p->mu);
	p->workers = srv->opts->php_workers;
	p->queued_max = p->queued;
	p->busy_max = p->busy;
	p->wait_us_total = 0;
	memset(p->served, 0, sizeof p->served);
	admit(p);
	pthread_mutex_unlock(&p->mu);
}

void fk_php_json(struct fk_server *srv, json_object *st)
{
	struct fk_php *p = &srv->php;

	pthread_mutex_lock(&p->mu);
	json_object_object_add(st, "php_workers",
			       json_object_new_int64(p->workers));
	json_object_object_add(st, "php_busy", json_object_new_int64(p->busy));
	json_object_object_add(st, "php_busy_max",
			       json_object_new_int64(p->busy_max));
	json_object_object_add(st, "php_queued",
			       json_object_new_int64(p->queued));
	json_object_object_add(st, "php_queued_max",
			       json_object_new_int64(p->queued_max));
	json_object_object_add(st, "php_wait_ms_total",
			       json_object_new_int64((int64_t)(p->wait_us_total /
							       1000u)));
	json_object_object_add(st, "php_served_api", json_object_new_int64(
		(int64_t)p->served[FK_PHP_API]));
	json_object_object_add(st, "php_served_storefront",
		json_object_new_int64((int64_t)p->served[FK_PHP_STOREFRONT]));
	pthread_mutex_unlock(&p->mu);
}

void fk_service_sleep(struct fk_server *srv, int ms)
{
	/* in slices, so that shutting down never waits for a long sleep */
	while (ms > 0 && !__atomic_load_n(&srv->stopping, __ATOMIC_SEQ_CST)) {
		int s = ms < 50 ? ms : 50;
		struct timespec ts;

		ts.tv_sec = 0;
		ts.tv_nsec = (long)s * 1000000L;
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		ms -= s;
	}
}

static void storefront(struct fk_server *srv, struct fk_resp *resp)
{
	fk_service_sleep(srv, srv->opts->storefront_ms);
	free(resp->body);
	resp->status = 200;
	resp->body = fk_xstrdup(storefront_html);
	resp->content_type = "text/html; charset=UTF-8";
}

void fk_php_serve(struct fk_server *srv, struct fk_req *rq,
		  struct fk_resp *resp, enum fk_php_kind kind)
{
	if (php_enter(&srv->php) < 0) {
		fk_resp_error(resp, 503, "Service Temporarily Unavailable", NULL);
		return;
	}
	if (kind == FK_PHP_API)
		fk_api_handle(srv, rq, resp);
	else
		storefront(srv, resp);
	php_leave(&srv->php, kind);
}
