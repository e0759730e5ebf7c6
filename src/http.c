/*
 * http.c - the daemon's HTTP endpoint (see http.h): libmicrohttpd with a
 * thread per connection.
 *
 * A request: the first call of the access handler sees only the headers.
 * Routing, the token, the content type, draining and Content-Length are
 * decided there, so a refused push is answered before any of its body is
 * read. The body is then gathered (never past body_max) and the last call
 * parses it into rows through ingest.h (m2w_ingest_json_row for JSON, the
 * header map and m2w_ingest_csv_row for CSV, exactly like files), checks
 * them all, and only then enqueues them in one m2w_queue_enqueue: one
 * fsync'd, all-or-none commit, after which 202 goes out.
 *
 * Slow clients: MHD's connection timeout closes idle connections, but a
 * client that trickles a byte now and then is never idle. So every
 * connection carries a deadline (socket context, from the connection
 * notification): the request must arrive whole within [http] timeout of
 * the connection opening, or of the previous response. A sweeper thread
 * shuts down the socket of a connection past its deadline; MHD then sees
 * the end of the stream and closes it. The deadline is cleared while a
 * request is being answered. The list is under `mu`; MHD reports a
 * connection closed before it closes its socket, so a shut down socket is
 * always still ours.
 *
 * Tokens are hashed (SHA-256) at start; a presented token is hashed and
 * compared with every digest by CRYPTO_memcmp, all of them each time.
 *
 * State: everything lives in struct m2w_http; counters are bumped with
 * atomic adds from the connection threads.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <csv.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "m2worker/http.h"
#include "m2worker/report.h"
#include "m2worker/ingest.h"
#include "m2worker/jobs.h"
#include "m2worker/log.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_ret;
#else
typedef int mhd_ret;
#endif

#if MHD_VERSION >= 0x00095400
#define HTTP_MHD_INTERNAL MHD_USE_INTERNAL_POLLING_THREAD
#else
#define HTTP_MHD_INTERNAL MHD_USE_SELECT_INTERNALLY
#endif

#define DIGEST 32            /* SHA-256 */
#define ERRORS_MAX 1000      /* row errors listed in a 400 */
#define ITEMS_MAX 1000       /* items of one merged tracking parcel */
#define SWEEP_MS 200

/* Status codes counted for /metrics. */
static const int codes[] = { 200, 202, 400, 401, 404, 405, 413, 415, 500,
			     503, 507 };
#define NCODES (sizeof(codes) / sizeof(codes[0]))

/* One TCP connection (MHD's socket context). */
struct conn {
	struct conn *prev, *next;
	int fd;
	int64_t deadline;        /* monotonic ms; 0 = none (answering) */
};

/* One request (MHD's con_cls). */
struct req {
	int64_t t0;              /* monotonic ms */
	char method[8];
	char path[128];
	int push;                /* POST /v1/tasks, accepted so far */
	int kind;                /* body format, enum fmt */
	char *body;
	size_t len, cap;
	int too_big;
	int answered;            /* a response is queued */
};

enum fmt { F_JSON = 1, F_NDJSON, F_CSV };

struct m2w_http {
	struct MHD_Daemon *d;
	struct m2w_queue *q;
	const struct m2w_config *cfg;
	struct m2w_pool *pool;
	struct m2w_metrics nometrics;  /* when there is no pool */
	unsigned char (*tok)[DIGEST];
	size_t ntok;
	int draining;                  /* atomic */
	int64_t timeout_ms;
	/* the sweeper */
	pthread_t sweeper;
	int sweeper_ok;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	struct conn *conns;
	/* counters */
	uint64_t responses[NCODES];
	uint64_t pushed, duplicates;
};

/* ------------------------------------------------------------- helpers */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sha256(const void *s, size_t n, unsigned char *md)
{
	unsigned int len = 0;

	if (!EVP_Digest(s, n, md, &len, EVP_sha256(), NULL))
		memset(md, 0, DIGEST);
}

static char *json_text(json_object *o)
{
	int flags = JSON_C_TO_STRING_PLAIN;
	const char *s;

#ifdef JSON_C_TO_STRING_NOSLASHESCAPE
	flags |= JSON_C_TO_STRING_NOSLASHESCAPE;
#endif
	s = json_object_to_json_string_ext(o, flags);
	return s ? strdup(s) : NULL;
}

/* {"error": msg} as text. */
static char *error_body(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static char *error_body(const char *fmt, ...)
{
	char msg[M2W_ERRBUF_SIZE * 2];
	json_object *o = json_object_new_object();
	va_list ap;
	char *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "error", json_object_new_string(msg));
	s = json_text(o);
	json_object_put(o);
	return s;
}

/* A response being prepared. */
struct reply {
	int status;
	char *body;              /* malloc'd */
	const char *ctype;       /* NULL: application/json */
	const char *allow;       /* 405 */
	int retry_after;         /* seconds, 0 = none */
	int close;               /* Connection: close */
};

static void set_error(struct reply *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_error(struct reply *r, int status, const char *fmt, ...)
{
	char msg[M2W_ERRBUF_SIZE * 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(r->body);
	r->status = status;
	r->body = error_body("%s", msg);
	r->ctype = NULL;
}

static void set_text(struct reply *r, int status, const char *ctype,
		     const char *text)
{
	free(r->body);
	r->status = status;
	r->ctype = ctype;
	r->body = strdup(text);
}

static void set_json(struct reply *r, int status, json_object *o)
{
	free(r->body);
	r->status = status;
	r->ctype = NULL;
	r->body = json_text(o);
	json_object_put(o);
}

/* --------------------------------------------------------- connections */

static void conn_deadline(struct m2w_http *h, struct MHD_Connection *c,
			  int64_t deadline)
{
	const union MHD_ConnectionInfo *ci;
	struct conn *k;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (!ci || !(k = ci->socket_context))
		return;
	pthread_mutex_lock(&h->mu);
	k->deadline = deadline;
	pthread_mutex_unlock(&h->mu);
}

static void on_connection(void *cls, struct MHD_Connection *c,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct m2w_http *h = cls;
	const union MHD_ConnectionInfo *ci;
	struct conn *k;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!ci || !(k = calloc(1, sizeof(*k))))
			return;
		k->fd = ci->connect_fd;
		k->deadline = mono_ms() + h->timeout_ms;
		pthread_mutex_lock(&h->mu);
		k->next = h->conns;
		if (h->conns)
			h->conns->prev = k;
		h->conns = k;
		pthread_mutex_unlock(&h->mu);
		*socket_context = k;
		return;
	}
	if (!(k = *socket_context))
		return;
	pthread_mutex_lock(&h->mu);
	if (k->prev)
		k->prev->next = k->next;
	else
		h->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&h->mu);
	free(k);
	*socket_context = NULL;
}

static void *sweep(void *arg)
{
	struct m2w_http *h = arg;
	struct timespec ts;
	struct conn *k;
	int64_t now;

	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		now = mono_ms();
		for (k = h->conns; k; k = k->next) {
			if (!k->deadline || now < k->deadline)
				continue;
			k->deadline = 0;
			shutdown(k->fd, SHUT_RDWR);
			m2w_log(M2W_LOG_DEBUG, "http.timeout", "fd=%d "
				"timeout_ms=%lld", k->fd,
				(long long)h->timeout_ms);
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += SWEEP_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* ---------------------------------------------------------------- auth */

/* Does the Authorization header carry one of the tokens? Every digest is
 * compared, whatever the outcome. */
static int authorized(const struct m2w_http *h, struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION);
	unsigned char md[DIGEST];
	size_t i, n;
	int ok = 0;

	if (!a)
		return 0;
	while (*a == ' ' || *a == '\t')
		a++;
	if (strncasecmp(a, "Bearer", 6) != 0 || (a[6] != ' ' && a[6] != '\t'))
		return 0;
	a += 6;
	while (*a == ' ' || *a == '\t')
		a++;
	n = strlen(a);
	while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
		n--;
	if (!n)
		return 0;
	sha256(a, n, md);
	for (i = 0; i < h->ntok; i++)
		ok |= CRYPTO_memcmp(md, h->tok[i], DIGEST) == 0;
	OPENSSL_cleanse(md, sizeof(md));
	return ok;
}

/* ---------------------------------------------------------------- rows */

/* A checked row, waiting for the commit. */
struct item {
	char type[M2W_TYPE_MAX + 1];
	char *payload;
	size_t len;
	char idem[M2W_KEY_MAX + 1];
	char group[M2W_KEY_MAX + 1];
	int supersede;
	int64_t not_before;
	uint64_t row, line;
};

/* The rows of one push. */
struct batch {
	struct item *it;
	size_t n, cap;
	uint64_t rows;           /* rows seen (items, CSV data rows) */
	json_object *errors;     /* row errors, or NULL */
	size_t nerrors;
	int status;              /* != 0: the whole body is refused */
	char why[M2W_ERRBUF_SIZE * 2];
	int oom;
};

static void batch_release(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		free(b->it[i].payload);
	free(b->it);
	if (b->errors)
		json_object_put(b->errors);
	memset(b, 0, sizeof(*b));
}

static void body_fail(struct batch *b, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void body_fail(struct batch *b, int status, const char *fmt, ...)
{
	va_list ap;

	if (b->status)
		return;
	b->status = status;
	va_start(ap, fmt);
	vsnprintf(b->why, sizeof(b->why), fmt, ap);
	va_end(ap);
}

/* Counts a row; 0, or -1 past M2W_HTTP_ROWS_MAX (413). */
static int count_row(struct batch *b)
{
	if (++b->rows > M2W_HTTP_ROWS_MAX) {
		body_fail(b, 413, "more than %u rows in one request: split it",
			  (unsigned)M2W_HTTP_ROWS_MAX);
		return -1;
	}
	return 0;
}

static void row_error(struct batch *b, uint64_t row, uint64_t line,
		      const char *field, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void row_error(struct batch *b, uint64_t row, uint64_t line,
		      const char *field, const char *fmt, ...)
{
	char reason[M2W_INGEST_REASON_MAX + 64];
	json_object *e;
	va_list ap;

	if (b->nerrors++ >= ERRORS_MAX)
		return;
	if (!b->errors && !(b->errors = json_object_new_array())) {
		b->oom = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	e = json_object_new_object();
	json_object_object_add(e, "row", json_object_new_int64((int64_t)row));
	json_object_object_add(e, "line", line
			       ? json_object_new_int64((int64_t)line) : NULL);
	json_object_object_add(e, "field", field && *field
			       ? json_object_new_string(field) : NULL);
	json_object_object_add(e, "reason", json_object_new_string(reason));
	json_object_array_add(b->errors, e);
}

/* Takes r's payload and keys as the next item. */
static void add_item(struct batch *b, const char *type,
		     struct m2w_ingest_row *r, int64_t not_before,
		     uint64_t row, uint64_t line)
{
	struct item *t;

	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		struct item *it = realloc(b->it, cap * sizeof(*it));

		if (!it) {
			b->oom = 1;
			return;
		}
		b->it = it;
		b->cap = cap;
	}
	t = &b->it[b->n++];
	memset(t, 0, sizeof(*t));
	snprintf(t->type, sizeof(t->type), "%s", type);
	t->payload = r->payload;
	t->len = r->payload_len;
	r->payload = NULL;
	memcpy(t->idem, r->idem, sizeof(t->idem));
	memcpy(t->group, r->group, sizeof(t->group));
	t->supersede = r->supersede;
	t->not_before = not_before;
	t->row = row;
	t->line = line;
}

/* Payload text through the job's check and keys (ingest.h); a bad one is
 * a row error. */
static void json_payload(struct batch *b, const struct m2w_ingest_opts *o,
			 const char *text, size_t len, int64_t not_before,
			 const char *key, uint64_t row, uint64_t line)
{
	struct m2w_ingest_row r;
	int rc, n;

	rc = m2w_ingest_json_row(o, text, len, row, &r);
	if (rc == M2W_EINVAL) {
		row_error(b, row, line, r.column, "%s", r.reason);
	} else if (rc != M2W_OK) {
		b->oom = 1;
	} else if (!r.payload) {
		row_error(b, row, line, NULL, "empty payload");
	} else if (key) {
		n = snprintf(r.idem, sizeof(r.idem), "%s:%s", o->type, key);
		if (n < 0 || n > M2W_KEY_MAX)
			row_error(b, row, line, "key", "key is longer than %d "
				  "bytes with its type", M2W_KEY_MAX);
		else
			add_item(b, o->type, &r, not_before, row, line);
	} else {
		add_item(b, o->type, &r, not_before, row, line);
	}
	m2w_ingest_row_release(&r);
}

/* One item {"type","payload","key","not_before"}. */
static void envelope(struct batch *b, json_object *v, uint64_t row,
		     uint64_t line)
{
	struct m2w_ingest_opts o;
	json_object *t = NULL, *p = NULL, *k = NULL, *nb = NULL;
	char key[M2W_KEY_MAX + 1], *text;
	int64_t not_before = 0;
	int bad = 0;

	if (!json_object_is_type(v, json_type_object)) {
		row_error(b, row, line, NULL, "an item must be a JSON object "
			  "{\"type\":..,\"payload\":{..}} (or send bare "
			  "payloads with ?type=T)");
		return;
	}
	json_object_object_foreach(v, name, val) {
		if (strcmp(name, "type") == 0)
			t = val;
		else if (strcmp(name, "payload") == 0)
			p = val;
		else if (strcmp(name, "key") == 0)
			k = val;
		else if (strcmp(name, "not_before") == 0)
			nb = val;
		else {
			row_error(b, row, line, name, "unknown key \"%s\": an "
				  "item has type, payload, key, not_before "
				  "(payload fields go in \"payload\", or send "
				  "bare payloads with ?type=T)", name);
			bad = 1;
		}
	}
	if (bad)
		return;
	if (!t || !json_object_is_type(t, json_type_string) ||
	    !m2w_job_find(json_object_get_string(t))) {
		row_error(b, row, line, "type", t ? "unknown type: tracking, "
			  "stock, price or rest" : "missing \"type\"");
		return;
	}
	if (!p || !json_object_is_type(p, json_type_object)) {
		row_error(b, row, line, "payload", p ? "payload must be a JSON "
			  "object" : "missing \"payload\"");
		return;
	}
	if (k) {
		if (json_object_is_type(k, json_type_int))
			snprintf(key, sizeof(key), "%" PRId64,
				 json_object_get_int64(k));
		else if (json_object_is_type(k, json_type_string) &&
			 json_object_get_string_len(k) > 0 &&
			 (size_t)json_object_get_string_len(k) < sizeof(key) &&
			 !memchr(json_object_get_string(k), '\0',
				 (size_t)json_object_get_string_len(k)))
			snprintf(key, sizeof(key), "%s",
				 json_object_get_string(k));
		else {
			row_error(b, row, line, "key", "key must be a non-empty "
				  "string (at most %d bytes) or an integer",
				  M2W_KEY_MAX);
			return;
		}
	}
	if (nb) {
		if (!json_object_is_type(nb, json_type_int) ||
		    (not_before = json_object_get_int64(nb)) < 0) {
			row_error(b, row, line, "not_before", "not_before must "
				  "be unix time in milliseconds");
			return;
		}
	}
	m2w_ingest_opts_init(&o, json_object_get_string(t));
	o.source = "http";
	if (!(text = json_text(p))) {
		b->oom = 1;
		return;
	}
	json_payload(b, &o, text, strlen(text), not_before, k ? key : NULL,
		     row, line);
	free(text);
}

/* One item: an envelope, or (with ?type=) a bare payload. */
static void json_item(struct batch *b, const struct m2w_ingest_opts *o,
		      json_object *v, uint64_t row, uint64_t line)
{
	char *text;

	if (count_row(b))
		return;
	if (!o->type) {
		envelope(b, v, row, line);
		return;
	}
	if (!json_object_is_type(v, json_type_object)) {
		row_error(b, row, line, NULL, "a payload must be a JSON object");
		return;
	}
	if (!(text = json_text(v))) {
		b->oom = 1;
		return;
	}
	json_payload(b, o, text, strlen(text), 0, NULL, row, line);
	free(text);
}

/* Strict JSON text, or NULL with why. */
static json_object *parse_json(const char *s, size_t n, char *why,
			       size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	enum json_tokener_error err;
	json_object *o;
	size_t end;

	if (!tok) {
		snprintf(why, len, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)n);
	err = json_tokener_get_error(tok);
	end = (size_t)tok->char_offset;
	json_tokener_free(tok);
	if (!o) {
		snprintf(why, len, "not valid JSON at byte %zu: %s", end + 1,
			 err == json_tokener_continue ||
					 err == json_tokener_success
				 ? "it ends early"
				 : json_tokener_error_desc(err));
		return NULL;
	}
	while (end < n && isspace((unsigned char)s[end]))
		end++;
	if (end < n) {
		json_object_put(o);
		snprintf(why, len, "not valid JSON: extra data at byte %zu",
			 end + 1);
		return NULL;
	}
	return o;
}

static void parse_json_body(struct batch *b, const struct m2w_ingest_opts *o,
			    const char *s, size_t n)
{
	char why[M2W_ERRBUF_SIZE];
	json_object *v;
	size_t i, k;

	if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		n -= 3;
	}
	if (n > (size_t)INT32_MAX || memchr(s, '\0', n)) {
		body_fail(b, 400, "body is not valid JSON: a NUL byte");
		return;
	}
	if (!(v = parse_json(s, n, why, sizeof(why)))) {
		body_fail(b, 400, "body is %s", why);
		return;
	}
	if (json_object_is_type(v, json_type_array)) {
		k = json_object_array_length(v);
		for (i = 0; i < k && !b->status && !b->oom; i++)
			json_item(b, o, json_object_array_get_idx(v, i), i + 1,
				  0);
	} else if (json_object_is_type(v, json_type_object)) {
		json_item(b, o, v, 1, 0);
	} else {
		body_fail(b, 400, "body must be a JSON object or an array of "
			  "them");
	}
	json_object_put(v);
}

static void parse_ndjson_body(struct batch *b,
			      const struct m2w_ingest_opts *o, const char *s,
			      size_t n)
{
	char why[M2W_ERRBUF_SIZE];
	uint64_t line = 0;
	const char *e;
	size_t len;
	json_object *v;

	if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		n -= 3;
	}
	while (n && !b->status && !b->oom) {
		line++;
		e = memchr(s, '\n', n);
		len = e ? (size_t)(e - s) : n;
		{
			const char *t = s;
			size_t tn = len;

			while (tn && isspace((unsigned char)*t)) {
				t++;
				tn--;
			}
			while (tn && isspace((unsigned char)t[tn - 1]))
				tn--;
			if (!tn) {
				/* an empty line is no item */
			} else if (count_row(b)) {
				break;
			} else if (o->type) {
				json_payload(b, o, t, tn, 0, NULL, b->rows,
					     line);
			} else if (memchr(t, '\0', tn)) {
				row_error(b, b->rows, line, NULL, "not valid "
					  "JSON: a NUL byte");
			} else if (!(v = parse_json(t, tn, why, sizeof(why)))) {
				row_error(b, b->rows, line, NULL, "%s", why);
			} else {
				envelope(b, v, b->rows, line);
				json_object_put(v);
			}
		}
		if (!e)
			break;
		n -= len + 1;
		s = e + 1;
	}
}

/* --------------------------------------------------------------- CSV */

/* Adjacent tracking rows of one parcel with an item each: one task. */
struct parcel {
	int open;
	json_object *head;       /* the payload without items */
	json_object *items;      /* the items so far */
	char *head_text;
	struct m2w_ingest_row first; /* the first row, as mapped */
	uint64_t row, line, nrows;
};

struct csvp {
	struct batch *b;
	const struct m2w_ingest_opts *o;
	struct m2w_ingest_map *map;
	struct csv_parser p;
	int p_ok;
	unsigned char delim;
	uint64_t line, rec_start;
	int rec_open;
	/* fields of the record, each NUL-terminated in buf */
	char *buf;
	size_t bn, bcap;
	size_t *off, *len;
	const char **ptr;
	size_t nf, fcap;
	int oom;
	struct parcel pc;
};

static void cb_field(void *data, size_t n, void *arg)
{
	struct csvp *s = arg;

	if (s->oom)
		return;
	if (s->nf == s->fcap) {
		size_t cap = s->fcap ? 2 * s->fcap : 32;
		size_t *off = realloc(s->off, cap * sizeof(*off));
		size_t *len = off ? realloc(s->len, cap * sizeof(*len)) : NULL;
		const char **ptr = len ? realloc((void *)s->ptr,
						 cap * sizeof(*ptr)) : NULL;

		if (off)
			s->off = off;
		if (len)
			s->len = len;
		if (!ptr) {
			s->oom = 1;
			return;
		}
		s->ptr = ptr;
		s->fcap = cap;
	}
	if (!data)
		n = 0;
	if (s->bn + n + 1 > s->bcap) {
		size_t cap = s->bcap ? s->bcap : 256;
		char *buf;

		while (cap < s->bn + n + 1)
			cap *= 2;
		if (!(buf = realloc(s->buf, cap))) {
			s->oom = 1;
			return;
		}
		s->buf = buf;
		s->bcap = cap;
	}
	s->off[s->nf] = s->bn;
	s->len[s->nf] = n;
	if (n)
		memcpy(s->buf + s->bn, data, n);
	s->bn += n;
	s->buf[s->bn++] = '\0';
	s->nf++;
}

static void parcel_release(struct parcel *pc)
{
	if (pc->head)
		json_object_put(pc->head);
	if (pc->items)
		json_object_put(pc->items);
	free(pc->head_text);
	m2w_ingest_row_release(&pc->first);
	memset(pc, 0, sizeof(*pc));
}

/* The open parcel into the batch. */
static void parcel_flush(struct csvp *s)
{
	struct parcel *pc = &s->pc;
	struct m2w_ingest_opts o;
	struct m2w_ingest_row r;
	char *text;
	int rc;

	if (!pc->open)
		return;
	if (pc->nrows == 1) {
		add_item(s->b, s->o->type, &pc->first, 0, pc->row, pc->line);
		parcel_release(pc);
		return;
	}
	json_object_object_add(pc->head, "items", json_object_get(pc->items));
	if (!(text = json_text(pc->head))) {
		s->b->oom = 1;
		parcel_release(pc);
		return;
	}
	/* the merged payload is checked again, as files' merged rows are */
	m2w_ingest_opts_init(&o, s->o->type);
	o.source = "http";
	rc = m2w_ingest_json_row(&o, text, strlen(text), pc->row, &r);
	if (rc == M2W_EINVAL) {
		row_error(s->b, pc->row, pc->line, r.column, "%s", r.reason);
	} else if (rc != M2W_OK || !r.payload) {
		s->b->oom = 1;
	} else {
		memcpy(r.idem, pc->first.idem, sizeof(r.idem));
		add_item(s->b, s->o->type, &r, 0, pc->row, pc->line);
	}
	m2w_ingest_row_release(&r);
	free(text);
	parcel_release(pc);
}

/* A mapped tracking row with one item: merge it into the open parcel, or
 * open one. Takes r. */
static void parcel_add(struct csvp *s, struct m2w_ingest_row *r, uint64_t row,
		       uint64_t line)
{
	struct parcel *pc = &s->pc;
	json_object *head, *items = NULL;
	char *text;

	if (!(head = json_tokener_parse(r->payload)) ||
	    !json_object_object_get_ex(head, "items", &items) ||
	    !json_object_is_type(items, json_type_array)) {
		if (head)
			json_object_put(head);
		parcel_flush(s);
		add_item(s->b, s->o->type, r, 0, row, line);
		return;
	}
	json_object_get(items);
	json_object_object_del(head, "items");
	if (!(text = json_text(head))) {
		json_object_put(head);
		json_object_put(items);
		s->b->oom = 1;
		return;
	}
	if (pc->open && strcmp(text, pc->head_text) == 0 &&
	    strcmp(r->idem, pc->first.idem) == 0) {
		if (json_object_array_length(pc->items) +
			    json_object_array_length(items) > ITEMS_MAX) {
			row_error(s->b, row, line, "sku", "more than %d items "
				  "for one tracking number", ITEMS_MAX);
		} else {
			size_t i;

			for (i = 0; i < json_object_array_length(items); i++)
				json_object_array_add(pc->items,
					json_object_get(json_object_array_get_idx(
						items, i)));
			pc->nrows++;
		}
		json_object_put(head);
		json_object_put(items);
		free(text);
		return;
	}
	parcel_flush(s);
	pc->open = 1;
	pc->head = head;
	pc->items = items;
	pc->head_text = text;
	pc->first = *r;
	r->payload = NULL;
	pc->row = row;
	pc->line = line;
	pc->nrows = 1;
}

static void cb_record(int c, void *arg)
{
	struct csvp *s = arg;
	struct batch *b = s->b;
	struct m2w_ingest_row r;
	char eb[M2W_ERRBUF_SIZE] = "";
	size_t i;
	int rc;

	(void)c;
	s->rec_open = 0;
	if (s->oom || b->status || b->oom) {
		s->nf = s->bn = 0;
		return;
	}
	for (i = 0; i < s->nf; i++)
		s->ptr[i] = s->buf + s->off[i];
	for (i = 0; i < s->nf; i++) {
		const char *f = s->ptr[i];
		size_t k;

		for (k = 0; k < s->len[i] && isspace((unsigned char)f[k]); k++)
			;
		if (k < s->len[i])
			break;
	}
	if (i == s->nf) {
		/* every field empty: like an empty line, no row */
	} else if (!s->map) {
		rc = m2w_ingest_map_new(s->o, s->ptr, s->nf, &s->map, eb);
		if (rc == M2W_ENOMEM)
			b->oom = 1;
		else if (rc != M2W_OK)
			body_fail(b, 400, "line %llu: %s",
				  (unsigned long long)s->rec_start, eb);
	} else if (!count_row(b)) {
		rc = m2w_ingest_csv_row(s->map, s->ptr, s->len, s->nf,
					s->rec_start, &r);
		if (rc == M2W_EINVAL) {
			row_error(b, b->rows, s->rec_start, r.column, "%s",
				  r.reason);
		} else if (rc != M2W_OK) {
			b->oom = 1;
		} else if (r.payload && strcmp(s->o->type, "tracking") == 0 &&
			   strstr(r.payload, "\"items\":")) {
			parcel_add(s, &r, b->rows, s->rec_start);
		} else if (r.payload) {
			parcel_flush(s);
			add_item(b, s->o->type, &r, 0, b->rows, s->rec_start);
		}
		m2w_ingest_row_release(&r);
	}
	s->nf = s->bn = 0;
}

static int parser_start(struct csvp *s)
{
	int opts = CSV_STRICT;

#ifdef CSV_STRICT_FINI
	opts |= CSV_STRICT_FINI;
#endif
	if (s->p_ok)
		csv_free(&s->p);
	s->p_ok = 0;
	if (csv_init(&s->p, (unsigned char)opts) != 0)
		return -1;
	csv_set_delim(&s->p, s->delim);
	s->p_ok = 1;
	return 0;
}

static int has_content(const char *p, size_t n, unsigned char delim)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == ' ' || c == '\r' || c == '\n' ||
		    (c == '\t' && delim != '\t'))
			continue;
		return 1;
	}
	return 0;
}

static void parse_csv_body(struct batch *b, const struct m2w_ingest_opts *o,
			   const char *s, size_t n)
{
	struct csvp c;
	size_t i, start;

	memset(&c, 0, sizeof(c));
	c.b = b;
	c.o = o;
	if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		n -= 3;
	}
	c.delim = (unsigned char)(o->delimiter ? o->delimiter : m2w_ingest_detect_delimiter(s, n));
	if (parser_start(&c)) {
		b->oom = 1;
		return;
	}
	c.line = 1;
	/* one physical line at a time, so records know their line */
	for (i = 0; i < n && !b->status && !b->oom && !c.oom; c.line++) {
		size_t got;

		start = i;
		while (i < n && s[i] != '\n' &&
		       !(s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n')))
			i++;
		if (i < n)
			i++;
		if (!c.rec_open && has_content(s + start, i - start, c.delim)) {
			c.rec_open = 1;
			c.rec_start = c.line;
		}
		got = csv_parse(&c.p, s + start, i - start, cb_field, cb_record,
				&c);
		if (got != i - start) {
			c.rec_open = 0;
			c.nf = c.bn = 0;
			if (!c.map)
				body_fail(b, 400, "line %llu: header: bad "
					  "quoting", (unsigned long long)c.line);
			else if (!count_row(b))
				row_error(b, b->rows, c.rec_start, NULL, "bad "
					  "quoting on line %llu: a quote inside "
					  "an unquoted field, or text after a "
					  "closing quote (quote the field, "
					  "double its quotes)",
					  (unsigned long long)c.line);
			if (parser_start(&c))
				b->oom = 1;
		}
	}
	if (!b->status && !b->oom && !c.oom &&
	    csv_fini(&c.p, cb_field, cb_record, &c) != 0 && c.rec_open &&
	    !count_row(b))
		row_error(b, b->rows, c.rec_start, NULL, "a quoted field opened "
			  "on line %llu is not closed at the end of the body",
			  (unsigned long long)c.rec_start);
	if (!b->status && !b->oom && !c.oom)
		parcel_flush(&c);
	if (c.oom)
		b->oom = 1;
	if (!b->status && !b->oom && !c.map)
		body_fail(b, 400, "the CSV body has no header");
	parcel_release(&c.pc);
	if (c.p_ok)
		csv_free(&c.p);
	free(c.buf);
	free(c.off);
	free(c.len);
	free((void *)c.ptr);
	m2w_ingest_map_free(c.map);
}

/* ---------------------------------------------------------------- push */

/* Is `type` paused (or everything)? */
static int paused(const struct m2w_stats *st, const char *type)
{
	size_t i;

	if (st->paused_all)
		return 1;
	for (i = 0; i < st->ntypes; i++)
		if (strcmp(st->types[i].type, type) == 0)
			return st->types[i].paused;
	return 0;
}

static void push(struct m2w_http *h, struct MHD_Connection *c,
		 struct req *rq, struct reply *out)
{
	struct m2w_ingest_opts o;
	struct m2w_stats st;
	struct m2w_new_task *nt = NULL;
	struct batch b;
	const char *type, *kf, *delim, *mixed = NULL;
	char eb[M2W_ERRBUF_SIZE] = "", q1[M2W_ERRBUF_SIZE * 2];
	char (*src)[32] = NULL;
	json_object *acc, *dup, *res;
	size_t i, ndup = 0;
	int rc, all;

	memset(&b, 0, sizeof(b));
	type = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type");
	kf = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key_field");
	delim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
					    "delimiter");
	if (type && !*type)
		type = NULL;
	if (type && !m2w_job_find(type)) {
		set_error(out, 400, "unknown type \"%.40s\": tracking, stock, "
			  "price or rest", type);
		return;
	}
	if (rq->kind == F_CSV && !type) {
		set_error(out, 400, "text/csv needs ?type=tracking|stock|price");
		return;
	}
	if (rq->kind == F_CSV && strcmp(type, "rest") == 0) {
		set_error(out, 400, "type rest takes JSON, not CSV");
		return;
	}
	if (kf && !type) {
		set_error(out, 400, "?key_field needs ?type (with items, use "
			  "their \"key\")");
		return;
	}
	m2w_ingest_opts_init(&o, type);
	o.source = "http";
	o.key_field = kf && *kf ? kf : NULL;
	if (delim && *delim) {
		if (strcmp(delim, ",") == 0 || strcmp(delim, ";") == 0)
			o.delimiter = delim[0];
		else if (strcmp(delim, "tab") == 0 || strcmp(delim, "\t") == 0)
			o.delimiter = '\t';
		else {
			set_error(out, 400, "?delimiter must be , ; or tab");
			return;
		}
	}
	if (!rq->len) {
		set_error(out, 400, "empty body");
		return;
	}
	if (rq->kind == F_CSV)
		parse_csv_body(&b, &o, rq->body, rq->len);
	else if (rq->kind == F_NDJSON)
		parse_ndjson_body(&b, &o, rq->body, rq->len);
	else
		parse_json_body(&b, &o, rq->body, rq->len);
	if (b.oom) {
		set_error(out, 500, "out of memory");
		goto out;
	}
	if (b.status == 400) {
		/* the body as a whole: {"error":..,"errors":[]} */
		res = json_object_new_object();
		json_object_object_add(res, "error", json_object_new_string(b.why));
		json_object_object_add(res, "errors", json_object_new_array());
		set_json(out, 400, res);
	} else if (b.status) {
		set_error(out, b.status, "%s", b.why);
	}
	if (b.status) {
		m2w_log(M2W_LOG_DEBUG, "push.rejected", "status=%d error=%s",
			b.status, m2w_log_quote(q1, sizeof(q1), b.why));
		goto out;
	}
	if (b.nerrors) {
		char msg[160];

		snprintf(msg, sizeof(msg), "%zu of %llu row%s rejected: nothing "
			 "enqueued", b.nerrors, (unsigned long long)b.rows,
			 b.rows == 1 ? "" : "s");
		res = json_object_new_object();
		json_object_object_add(res, "error", json_object_new_string(msg));
		json_object_object_add(res, "rejected",
				       json_object_new_int64((int64_t)b.nerrors));
		json_object_object_add(res, "errors", b.errors);
		b.errors = NULL;
		set_json(out, 400, res);
		m2w_log(M2W_LOG_INFO, "push.rejected", "rows=%llu rejected=%zu",
			(unsigned long long)b.rows, b.nerrors);
		goto out;
	}
	if (__atomic_load_n(&h->draining, __ATOMIC_SEQ_CST)) {
		set_error(out, 503, "shutting down: push again later");
		out->retry_after = 5;
		out->close = 1;
		goto out;
	}
	if (b.n) {
		if ((rc = m2w_queue_stats(h->q, &st, eb))) {
			set_error(out, 500, "%s", eb[0] ? eb : m2w_strerror(rc));
			goto out;
		}
		for (i = 0; i < b.n; i++)
			if (paused(&st, b.it[i].type))
				break;
		all = st.paused_all;
		m2w_stats_free(&st);
		if (i < b.n) {
			set_error(out, 503, "%s paused: push again after "
				  "`qctl resume`", all ? "everything is" :
				  b.it[i].type);
			out->retry_after = 30;
			goto out;
		}
	}
	if (b.n && (!(nt = calloc(b.n, sizeof(*nt))) ||
		    !(src = calloc(b.n, sizeof(*src))))) {
		set_error(out, 500, "out of memory");
		goto out;
	}
	for (i = 0; i < b.n; i++) {
		struct item *t = &b.it[i];

		snprintf(src[i], sizeof(src[i]), "http:%llu",
			 (unsigned long long)(t->line ? t->line : t->row));
		nt[i].type = t->type;
		nt[i].payload = t->payload;
		nt[i].payload_len = t->len;
		nt[i].source = src[i];
		nt[i].idem_key = t->idem[0] ? t->idem : NULL;
		nt[i].group_key = t->group[0] ? t->group : NULL;
		nt[i].supersede = t->supersede;
		nt[i].not_before_ms = t->not_before;
		if (i && strcmp(t->type, b.it[0].type) != 0)
			mixed = "mixed";
	}
	rc = b.n ? m2w_queue_enqueue(h->q, nt, b.n, eb) : M2W_OK;
	if (rc == M2W_EFULL || rc == M2W_ENOSPC) {
		set_error(out, 507, "%s: nothing enqueued (%s)",
			  rc == M2W_EFULL ? "the store is full" : "the disk is full",
			  eb[0] ? eb : m2w_strerror(rc));
		m2w_log(M2W_LOG_ERROR, "push.refused", "status=507 tasks=%zu "
			"error=%s", b.n, m2w_log_quote(q1, sizeof(q1),
						       eb[0] ? eb : m2w_strerror(rc)));
		goto out;
	}
	if (rc == M2W_EINVAL) {
		res = json_object_new_object();
		for (i = 0; i < b.n; i++)
			if (nt[i].err)
				row_error(&b, b.it[i].row, b.it[i].line, NULL,
					  "refused by the store: %s",
					  m2w_strerror(nt[i].err));
		json_object_object_add(res, "error", json_object_new_string(
					       eb[0] ? eb : "refused by the store"));
		json_object_object_add(res, "errors", b.errors
				       ? b.errors : json_object_new_array());
		b.errors = NULL;
		set_json(out, 400, res);
		goto out;
	}
	if (rc != M2W_OK) {
		set_error(out, 500, "%s", eb[0] ? eb : m2w_strerror(rc));
		m2w_log(M2W_LOG_ERROR, "push.refused", "status=500 tasks=%zu "
			"error=%s", b.n, m2w_log_quote(q1, sizeof(q1),
						       eb[0] ? eb : m2w_strerror(rc)));
		goto out;
	}
	res = json_object_new_object();
	acc = json_object_new_array();
	dup = json_object_new_array();
	for (i = 0; i < b.n; i++) {
		json_object_array_add(nt[i].duplicate ? dup : acc,
				      json_object_new_int64((int64_t)nt[i].id));
		ndup += nt[i].duplicate != 0;
	}
	json_object_object_add(res, "accepted", acc);
	json_object_object_add(res, "duplicates", dup);
	set_json(out, 202, res);
	__sync_fetch_and_add(&h->pushed, (uint64_t)(b.n - ndup));
	__sync_fetch_and_add(&h->duplicates, (uint64_t)ndup);
	m2w_log(M2W_LOG_INFO, "push.accepted", "tasks=%zu duplicates=%zu "
		"type=%s rows=%llu ms=%lld", b.n - ndup, ndup,
		mixed ? mixed : b.n ? b.it[0].type : type ? type : "-",
		(unsigned long long)b.rows, (long long)(mono_ms() - rq->t0));
out:
	free(nt);
	free(src);
	batch_release(&b);
}

/* ------------------------------------------------------------- the GETs */

/* The shape of `qctl stats --json`. */
static void get_stats(struct m2w_http *h, struct reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "";
	int64_t now = m2w_queue_now(h->q);
	json_object *o;
	struct m2w_stats st;
	int rc;

	if ((rc = m2w_queue_stats(h->q, &st, eb))) {
		set_error(out, 500, "%s", eb[0] ? eb : m2w_strerror(rc));
		return;
	}
	o = m2w_stats_json(&st, now);
	m2w_stats_free(&st);
	set_json(out, 200, o);
}

/* As `qctl show --json`, without the history. */
static void get_task(struct m2w_http *h, const char *id, struct reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "", *end;
	struct m2w_task *t;
	unsigned long long v;
	json_object *o;
	int rc;

	errno = 0;
	v = strtoull(id, &end, 10);
	if (!isdigit((unsigned char)id[0]) || *end || errno || !v) {
		set_error(out, 404, "no task %.40s", id);
		return;
	}
	rc = m2w_queue_get(h->q, (uint64_t)v, &t, eb);
	if (rc == M2W_ENOTFOUND) {
		set_error(out, 404, "no task %llu", v);
		return;
	}
	if (rc) {
		set_error(out, 500, "%s", eb[0] ? eb : m2w_strerror(rc));
		return;
	}
	o = m2w_task_json(t, 1);
	m2w_task_free(t);
	set_json(out, 200, o);
}

static void get_metrics(struct m2w_http *h, struct reply *out)
{
	char eb[M2W_ERRBUF_SIZE] = "", *text = NULL, *all;
	struct m2w_stats st;
	const struct m2w_metrics *m = h->pool ? m2w_pool_metrics(h->pool)
					      : &h->nometrics;
	int have = m2w_queue_stats(h->q, &st, eb) == M2W_OK;
	size_t i, n, len, cap;
	int rc;

	rc = m2w_metrics_render(m, h->cfg, have ? &st : NULL,
				h->pool ? m2w_pool_breaker_state(h->pool)
					: M2W_BREAKER_CLOSED, &text);
	if (have)
		m2w_stats_free(&st);
	if (rc) {
		set_error(out, 500, "%s", m2w_strerror(rc));
		return;
	}
	len = strlen(text);
	cap = len + 1024 + NCODES * 64;
	if (!(all = realloc(text, cap))) {
		free(text);
		set_error(out, 500, "out of memory");
		return;
	}
	n = (size_t)snprintf(all + len, cap - len, "# HELP "
		"m2worker_http_requests_total HTTP requests by status.\n"
		"# TYPE m2worker_http_requests_total counter\n");
	len += n;
	for (i = 0; i < NCODES; i++) {
		n = (size_t)snprintf(all + len, cap - len,
			"m2worker_http_requests_total{code=\"%d\"} %llu\n",
			codes[i], (unsigned long long)__atomic_load_n(
				&h->responses[i], __ATOMIC_RELAXED));
		len += n;
	}
	snprintf(all + len, cap - len, "# HELP m2worker_http_pushed_tasks_total "
		 "Tasks pushed over HTTP (new, or duplicates of known ones).\n"
		 "# TYPE m2worker_http_pushed_tasks_total counter\n"
		 "m2worker_http_pushed_tasks_total{result=\"accepted\"} %llu\n"
		 "m2worker_http_pushed_tasks_total{result=\"duplicate\"} %llu\n",
		 (unsigned long long)__atomic_load_n(&h->pushed, __ATOMIC_RELAXED),
		 (unsigned long long)__atomic_load_n(&h->duplicates,
						     __ATOMIC_RELAXED));
	free(out->body);
	out->status = 200;
	out->ctype = "text/plain; version=0.0.4; charset=utf-8";
	out->body = all;
}

/* ------------------------------------------------------------- requests */

static mhd_ret send_reply(struct m2w_http *h, struct MHD_Connection *c,
			  struct req *rq, struct reply *r)
{
	struct MHD_Response *resp;
	const char *body = r->body ? r->body : "";
	char q1[200], ra[16];
	mhd_ret ret;
	size_t i;

	if (!r->body && r->status != 200)
		body = "{\"error\":\"out of memory\"}";
#if MHD_VERSION >= 0x00097701
	resp = MHD_create_response_from_buffer_copy(strlen(body), body);
#else
	resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
					       MHD_RESPMEM_MUST_COPY);
#endif
	free(r->body);
	r->body = NULL;
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				r->ctype ? r->ctype : "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (r->status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"m2worker\"");
	if (r->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->retry_after) {
		snprintf(ra, sizeof(ra), "%d", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (r->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					"close");
	ret = MHD_queue_response(c, (unsigned int)r->status, resp);
	MHD_destroy_response(resp);
	if (ret != MHD_YES)
		return ret;
	rq->answered = 1;
	conn_deadline(h, c, 0);
	for (i = 0; i < NCODES; i++)
		if (codes[i] == r->status)
			__sync_fetch_and_add(&h->responses[i], 1);
	if (m2w_log_enabled(M2W_LOG_DEBUG)) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		char peer[INET6_ADDRSTRLEN] = "-";

		if (ci && ci->client_addr &&
		    ci->client_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)
					     (const void *)ci->client_addr)->sin_addr,
				  peer, sizeof(peer));
		else if (ci && ci->client_addr &&
			 ci->client_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
					      (const void *)ci->client_addr)->sin6_addr,
				  peer, sizeof(peer));
		m2w_log(M2W_LOG_DEBUG, "http.request", "method=%s path=%s "
			"status=%d bytes=%zu ms=%lld peer=%s", rq->method,
			m2w_log_quote(q1, sizeof(q1), rq->path), r->status,
			rq->len, (long long)(mono_ms() - rq->t0), peer);
	}
	return ret;
}

/* The body format of a Content-Type, 0 for none we take. */
static int body_kind(const char *ct)
{
	char mt[64];
	size_t n = 0;

	if (!ct)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	while (ct[n] && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t' &&
	       n + 1 < sizeof(mt)) {
		mt[n] = (char)tolower((unsigned char)ct[n]);
		n++;
	}
	mt[n] = '\0';
	if (strcmp(mt, "application/json") == 0)
		return F_JSON;
	if (strcmp(mt, "application/x-ndjson") == 0 ||
	    strcmp(mt, "application/ndjson") == 0 ||
	    strcmp(mt, "application/jsonl") == 0 ||
	    strcmp(mt, "application/x-jsonlines") == 0)
		return F_NDJSON;
	if (strcmp(mt, "text/csv") == 0)
		return F_CSV;
	return 0;
}

static int is_get(const char *m)
{
	return strcmp(m, MHD_HTTP_METHOD_GET) == 0 ||
	       strcmp(m, MHD_HTTP_METHOD_HEAD) == 0;
}

/* The first call of a request (headers only): everything that needs no
 * body. Returns 1 with `out` set when the request is answered now. */
static int route(struct m2w_http *h, struct MHD_Connection *c,
		 struct req *rq, struct reply *out)
{
	const char *p = rq->path, *m = rq->method, *cl;
	int draining = __atomic_load_n(&h->draining, __ATOMIC_SEQ_CST);

	if (strcmp(p, "/healthz") == 0) {
		if (!is_get(m)) {
			set_error(out, 405, "use GET");
			out->allow = "GET, HEAD";
		} else if (draining) {
			set_text(out, 503, "text/plain", "draining\n");
		} else {
			set_text(out, 200, "text/plain", "ok\n");
		}
		return 1;
	}
	if (strcmp(p, "/metrics") == 0) {
		if (!is_get(m)) {
			set_error(out, 405, "use GET");
			out->allow = "GET, HEAD";
		} else {
			get_metrics(h, out);
		}
		return 1;
	}
	if (strcmp(p, "/v1/tasks") != 0 && strcmp(p, "/v1/stats") != 0 &&
	    strncmp(p, "/v1/tasks/", 10) != 0) {
		set_error(out, 404, "no such endpoint: POST /v1/tasks, GET "
			  "/v1/tasks/{id}, /v1/stats, /metrics, /healthz");
		return 1;
	}
	if (strcmp(p, "/v1/tasks") == 0 ? strcmp(m, MHD_HTTP_METHOD_POST) != 0
					: !is_get(m)) {
		set_error(out, 405, "use %s", strcmp(p, "/v1/tasks") == 0
			  ? "POST" : "GET");
		out->allow = strcmp(p, "/v1/tasks") == 0 ? "POST" : "GET, HEAD";
		return 1;
	}
	if (!authorized(h, c)) {
		set_error(out, 401, "a valid \"Authorization: Bearer TOKEN\" "
			  "header is required");
		return 1;
	}
	if (strcmp(p, "/v1/stats") == 0) {
		get_stats(h, out);
		return 1;
	}
	if (strncmp(p, "/v1/tasks/", 10) == 0) {
		get_task(h, p + 10, out);
		return 1;
	}
	/* POST /v1/tasks */
	if (draining) {
		set_error(out, 503, "shutting down: push again later");
		out->retry_after = 5;
		out->close = 1;
		return 1;
	}
	rq->kind = body_kind(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_CONTENT_TYPE));
	if (!rq->kind) {
		set_error(out, 415, "Content-Type must be application/json, "
			  "application/x-ndjson or text/csv");
		return 1;
	}
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > h->cfg->http_body_max) {
		set_error(out, 413, "body is larger than %zu bytes",
			  h->cfg->http_body_max);
		out->close = 1;
		return 1;
	}
	rq->push = 1;
	return 0;
}

static mhd_ret on_request(void *cls, struct MHD_Connection *c,
			  const char *url, const char *method,
			  const char *version, const char *upload_data,
			  size_t *upload_size, void **con_cls)
{
	struct m2w_http *h = cls;
	struct req *rq = *con_cls;
	struct reply out;

	(void)version;
	memset(&out, 0, sizeof(out));
	if (!rq) {
		if (!(rq = calloc(1, sizeof(*rq))))
			return MHD_NO;
		*con_cls = rq;
		rq->t0 = mono_ms();
		snprintf(rq->method, sizeof(rq->method), "%s", method);
		snprintf(rq->path, sizeof(rq->path), "%s", url);
		if (route(h, c, rq, &out))
			return send_reply(h, c, rq, &out);
		return MHD_YES;
	}
	if (rq->answered) {
		*upload_size = 0; /* a body after an early answer: dropped */
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (rq->too_big || rq->len + n > h->cfg->http_body_max) {
			if (rq->too_big)
				return MHD_YES; /* dropped */
			rq->too_big = 1;
			free(rq->body);
			rq->body = NULL;
			rq->len = rq->cap = 0;
			/* answer now where MHD allows it (newer MHD); else
			 * the rest is dropped and 413 goes out at its end */
			set_error(&out, 413, "body is larger than %zu bytes",
				  h->cfg->http_body_max);
			out.close = 1;
			send_reply(h, c, rq, &out);
			return MHD_YES;
		}
		if (rq->len + n + 1 > rq->cap) {
			size_t cap = rq->cap ? rq->cap : 4096;
			char *b;

			while (cap < rq->len + n + 1)
				cap *= 2;
			if (cap > h->cfg->http_body_max + 1)
				cap = h->cfg->http_body_max + 1;
			if (!(b = realloc(rq->body, cap)))
				return MHD_NO;
			rq->body = b;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload_data, n);
		rq->len += n;
		rq->body[rq->len] = '\0';
		return MHD_YES;
	}
	/* the whole request is in */
	conn_deadline(h, c, 0);
	if (rq->too_big) {
		set_error(&out, 413, "body is larger than %zu bytes",
			  h->cfg->http_body_max);
		out.close = 1;
	} else {
		push(h, c, rq, &out);
	}
	return send_reply(h, c, rq, &out);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct m2w_http *h = cls;
	struct req *rq = *con_cls;

	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
	/* the next request of a kept-alive connection gets its own time */
	conn_deadline(h, c, mono_ms() + h->timeout_ms);
}

/* --------------------------------------------------------------- start */

static int tokens(struct m2w_http *h, const char *list, char *errbuf)
{
	const char *p = list, *e;
	size_t n = 1, a, z;

	for (e = list; *e; e++)
		n += *e == ',';
	if (!(h->tok = calloc(n, DIGEST)))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	while (*p) {
		e = strchr(p, ',');
		z = e ? (size_t)(e - p) : strlen(p);
		for (a = 0; a < z && isspace((unsigned char)p[a]); a++)
			;
		while (z > a && isspace((unsigned char)p[z - 1]))
			z--;
		if (z > a)
			sha256(p + a, z - a, h->tok[h->ntok++]);
		if (!e)
			break;
		p = e + 1;
	}
	if (!h->ntok)
		return m2w_fail(errbuf, M2W_EINVAL, "[http] tokens: no token "
				"given (HTTP push needs at least one)");
	return M2W_OK;
}

int m2w_http_start(const struct m2w_http_opts *o, struct m2w_http **out,
		   char *errbuf)
{
	const struct m2w_config *cfg;
	struct addrinfo hints, *ai = NULL;
	struct m2w_http *h;
	pthread_condattr_t ca;
	unsigned int flags, secs, limit;
	char port[16];
	int rc;

	*out = NULL;
	if (!o || !o->q || !o->cfg)
		return m2w_fail(errbuf, M2W_EINVAL, "http: no store or config");
	cfg = o->cfg;
	if (!(h = calloc(1, sizeof(*h))))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	h->q = o->q;
	h->cfg = cfg;
	h->pool = o->pool;
	h->timeout_ms = cfg->http_timeout_ms > 0 ? cfg->http_timeout_ms : 10000;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = tokens(h, cfg->http_tokens ? cfg->http_tokens : "", errbuf)))
		goto fail;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", cfg->http_port);
	rc = getaddrinfo(cfg->http_listen && *cfg->http_listen
			 ? cfg->http_listen : "127.0.0.1", port, &hints, &ai);
	if (rc != 0 || !ai) {
		rc = m2w_fail(errbuf, M2W_EINVAL, "[http] listen %s: %s",
			      cfg->http_listen ? cfg->http_listen : "",
			      gai_strerror(rc));
		goto fail;
	}
	flags = HTTP_MHD_INTERNAL | MHD_USE_THREAD_PER_CONNECTION;
#if MHD_VERSION >= 0x00095400
	flags |= MHD_USE_AUTO;
#else
	if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
		flags |= MHD_USE_POLL;
#endif
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	secs = (unsigned int)((h->timeout_ms + 999) / 1000);
	limit = cfg->http_connections ? cfg->http_connections : 64;
	if (pthread_create(&h->sweeper, NULL, sweep, h) != 0) {
		rc = m2w_fail(errbuf, M2W_EIO, "http: cannot start a thread");
		goto fail;
	}
	h->sweeper_ok = 1;
	errno = 0;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
				MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				MHD_OPTION_CONNECTION_LIMIT, limit,
				MHD_OPTION_CONNECTION_TIMEOUT, secs,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
				MHD_OPTION_END);
	if (!h->d) {
		rc = m2w_fail(errbuf, M2W_EIO, "http: cannot listen on %s:%u%s%s",
			      cfg->http_listen, cfg->http_port,
			      errno ? ": " : "", errno ? strerror(errno) : "");
		goto fail;
	}
	freeaddrinfo(ai);
	*out = h;
	return M2W_OK;
fail:
	if (ai)
		freeaddrinfo(ai);
	m2w_http_stop(h);
	return rc;
}

void m2w_http_draining(struct m2w_http *h)
{
	if (h)
		__atomic_store_n(&h->draining, 1, __ATOMIC_SEQ_CST);
}

void m2w_http_stop(struct m2w_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	if (h->sweeper_ok) {
		pthread_mutex_lock(&h->mu);
		h->stop = 1;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->sweeper, NULL);
	}
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	if (h->tok)
		OPENSSL_cleanse(h->tok, h->ntok * DIGEST);
	free(h->tok);
	free(h);
}
