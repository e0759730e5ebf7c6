#include "config.h"
/*
 * control.c - the /_fake/ endpoints tests use to look at and steer the
 * fake. No auth, no faults, not counted in "requests". Bodies are JSON
 * (Content-Type is not checked).
 *
 *   GET  /_fake/state              what the store holds now (see README.md)
 *   POST /_fake/faults             change any subset of the fault settings
 *                                  and php_workers (the PHP pool's size)
 *   POST /_fake/orders/<inc_id>    {"state": "canceled"|"closed"|"processing"|..}
 *   POST /_fake/expire-tokens      every admin token issued so far expires
 *   POST /_fake/reset              generated data again, counters zeroed,
 *                                  faults off, admin lock cleared
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"

static json_object *parse_body(const struct fk_req *rq, struct fk_resp *resp)
{
	json_object *o;
	size_t i;

	for (i = 0; i < rq->len; i++)
		if (!isspace((unsigned char)rq->body[i]))
			break;
	if (i == rq->len)
		return json_object_new_object();
	o = json_tokener_parse(rq->body);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		fk_resp_error(resp, 400, "body must be a JSON object", NULL);
		return NULL;
	}
	return o;
}

static int faults_update(struct fk_faults *f, json_object *body,
			 struct fk_resp *resp)
{
	struct fk_faults n = *f;
	char msg[160];

	json_object_object_foreach(body, key, val) {
		double d;
		int ok = fk_json_number(val, &d);

		if (strcmp(key, "fail_rate") == 0 && ok && d >= 0 && d <= 1)
			n.fail_rate = d;
		else if (strcmp(key, "drop_rate") == 0 && ok && d >= 0 && d <= 1)
			n.drop_rate = d;
		else if (strcmp(key, "fail_status") == 0 && ok && d >= 500 &&
			 d <= 599)
			n.fail_status = (int)d;
		else if (strcmp(key, "latency_ms") == 0 && ok && d >= 0 &&
			 d <= 3600000)
			n.latency_ms = (int)d;
		else if (strcmp(key, "rate_limit") == 0 && ok && d >= 0)
			n.rate_limit = (int)d;
		else if (strcmp(key, "retry_after") == 0 && ok && d >= 0)
			n.retry_after = (int)d;
		else if (strcmp(key, "outage") == 0 && ok)
			n.outage = d != 0;
		else {
			snprintf(msg, sizeof msg,
				 "unknown fault setting or bad value: %s", key);
			fk_resp_error(resp, 400, msg, NULL);
			return -1;
		}
	}
	*f = n;
	return 0;
}

/* Takes "php_workers" out of the faults body (it sizes the PHP pool, which
 * is not a fault setting). *n: the new size, or -1 when not given. */
static int php_workers_take(json_object *body, long *n, struct fk_resp *resp)
{
	json_object *v;
	double d;

	*n = -1;
	if (!json_object_object_get_ex(body, "php_workers", &v))
		return 0;
	if (!fk_json_number(v, &d) || d < 0 || d > FK_PHP_MAX ||
	    d != (double)(long)d) {
		fk_resp_error(resp, 400,
			      "unknown fault setting or bad value: php_workers",
			      NULL);
		return -1;
	}
	*n = (long)d;
	json_object_object_del(body, "php_workers");
	return 0;
}

void fk_control_handle(struct fk_server *srv, struct fk_req *rq,
		       struct fk_resp *resp)
{
	const char *p = rq->url + strlen("/_fake");
	int get = strcmp(rq->method, "GET") == 0;
	int post = strcmp(rq->method, "POST") == 0;
	json_object *body = NULL, *o;

	if (post && !(body = parse_body(rq, resp)))
		return;
	pthread_mutex_lock(&srv->mu);
	if (get && strcmp(p, "/state") == 0) {
		fk_resp_json(resp, 200, fk_state_json(srv));
	} else if (post && strcmp(p, "/faults") == 0) {
		long php;

		if (php_workers_take(body, &php, resp) == 0 &&
		    faults_update(&srv->faults, body, resp) == 0) {
			if (php >= 0)
				fk_php_set_workers(srv, php);
			o = fk_faults_json(&srv->faults);
			json_object_object_add(o, "php_workers",
				json_object_new_int64(fk_php_workers(srv)));
			fk_resp_json(resp, 200, o);
		}
	} else if (post && strncmp(p, "/orders/", 8) == 0) {
		struct fk_order *ord = fk_order_by_increment(srv, p + 8);
		json_object *v;
		const char *st = NULL;

		if (json_object_object_get_ex(body, "state", &v) && v &&
		    json_object_is_type(v, json_type_string))
			st = json_object_get_string(v);
		if (!ord) {
			fk_resp_error(resp, 404, "no such order", NULL);
		} else if (!st || !*st || strlen(st) >= sizeof ord->state) {
			fk_resp_error(resp, 400, "body needs {\"state\": \"...\"}",
				      NULL);
		} else {
			snprintf(ord->state, sizeof ord->state, "%s", st);
			snprintf(ord->status, sizeof ord->status, "%s", st);
			fk_resp_json(resp, 200, fk_order_json(ord));
		}
	} else if (post && strcmp(p, "/expire-tokens") == 0) {
		o = json_object_new_object();
		json_object_object_add(o, "expired",
			json_object_new_int64((int64_t)fk_expire_tokens(srv)));
		fk_resp_json(resp, 200, o);
	} else if (post && strcmp(p, "/reset") == 0) {
		fk_state_reset(srv);
		o = json_object_new_object();
		json_object_object_add(o, "reset", json_object_new_boolean(1));
		fk_resp_json(resp, 200, o);
	} else {
		fk_resp_error(resp, 404, "unknown control endpoint", NULL);
	}
	pthread_mutex_unlock(&srv->mu);
	json_object_put(body);
}
