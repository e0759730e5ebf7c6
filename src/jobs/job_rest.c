/*
 * job_rest.c - any Magento call: {"method", "path", "body"?}.
 *
 * The escape hatch for everything the typed jobs do not cover (ERP
 * pushes, catalog updates): one m2_request, the outcome classified like
 * every other call (5xx/429/timeouts transient, 4xx permanent with
 * Magento's message filled in). The body is re-serialized compactly.
 *
 * No keys: nothing about an arbitrary call says whether it is the same
 * work or what it must be ordered with. Whether a retry is safe is the
 * producer's business (a PUT of a value is; a POST that creates may not
 * be): the worker retries a transient failure like any other.
 *
 * Threads: run() uses only the caller's connection; no state is kept.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobs_internal.h"

static const struct m2w_field fields[] = {
	{ "method", M2W_FIELD_STRING, 1, 0, 8, NULL, { NULL }, NULL },
	{ "path", M2W_FIELD_STRING, 1, 0, JF_PATH_MAX, NULL, { NULL }, NULL },
	{ "body", M2W_FIELD_ANY, 0, 0, 0, NULL, { NULL }, NULL },
	{ NULL, 0, 0, 0, 0, NULL, { NULL }, NULL }
};

static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", NULL };

/* A payload, read. */
struct req {
	const char *method;      /* one of methods[] */
	char path[JF_PATH_MAX + 1];
	char *body;              /* malloc'd compact JSON, or NULL */
};

/* ------------------------------------------------------------- payload */

/* The method named m (any case), or NULL. */
static const char *method_of(const char *m)
{
	size_t i;

	for (i = 0; methods[i]; i++)
		if (strcasecmp(methods[i], m) == 0)
			return methods[i];
	return NULL;
}

static int bad(char *why, size_t len, const char *what)
{
	if (why && len)
		snprintf(why, len, "%s", what);
	return -1;
}

/* What the table cannot say: the method and the path's form. */
static int check(struct json_object *o, char *why, size_t len)
{
	char m[16], path[JF_PATH_MAX + 1];
	size_t i;

	jf_str(o, "method", m, sizeof(m));
	if (!method_of(m))
		return bad(why, len, "\"method\" must be GET, POST, PUT or "
			   "DELETE");
	jf_str(o, "path", path, sizeof(path));
	if (path[0] != '/')
		return bad(why, len, "\"path\" must start with \"/\"");
	for (i = 0; path[i]; i++)
		if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f)
			return bad(why, len, "\"path\" must not contain "
				   "spaces or control characters");
	return 0;
}

/* The loaded payload into r; 0, or -1 out of memory. */
static int req_read(struct json_object *o, struct req *r)
{
	struct json_object *body;
	char m[16];

	memset(r, 0, sizeof(*r));
	jf_str(o, "method", m, sizeof(m));
	r->method = method_of(m);
	jf_str(o, "path", r->path, sizeof(r->path));
	body = jf_get(o, "body");
	if (body && !(r->body = strdup(json_object_to_json_string_ext(
			      body, JSON_C_TO_STRING_PLAIN))))
		return -1;
	return 0;
}

/* ---------------------------------------------------------------- run */

static void call(const struct m2w_job_env *env, struct json_object *p,
		 struct m2w_outcome *o)
{
	struct m2_response resp;
	struct m2_result res;
	struct req r;
	int rc;

	if (req_read(p, &r)) {
		jf_outcome(o, M2W_ENOMEM, M2W_CLASS_TRANSIENT, "out of memory");
		return;
	}
	memset(&resp, 0, sizeof(resp));
	memset(&res, 0, sizeof(res));
	rc = m2_request(env->conn, r.method, r.path, r.body, &resp, &res);
	o->calls++;
	m2w_outcome_set(o, rc, &res);
	if (rc == M2W_OK)
		snprintf(o->message, sizeof(o->message), "HTTP %d",
			 res.http_status ? res.http_status : resp.status);
	m2_response_free(&resp);
	free(r.body);
}

const struct m2w_job m2w_job_rest = {
	.name = "rest",
	.summary = "any Magento REST call: {\"method\", \"path\", \"body\"}",
	.fields = fields,
	.inputs = M2W_IN_NDJSON | M2W_IN_JSON,
	.check = check,
	.run_one = call,
};
