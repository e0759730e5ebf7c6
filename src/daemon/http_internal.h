/*
 * http_internal.h - what the HTTP server (http.c) shares with the web
 * console (console.c): the response being prepared and its helpers.
 *
 * A handler fills a struct m2w_reply; http.c turns it into one MHD
 * response (headers, counters, the debug log line) and frees what it owns.
 * Not a public header: only src/daemon includes it.
 */
#ifndef M2WORKER_HTTP_INTERNAL_H
#define M2WORKER_HTTP_INTERNAL_H

#include <stddef.h>

#include <json-c/json.h>
#include <microhttpd.h>

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_ret;
#else
typedef int mhd_ret;
#endif

#define M2W_REPLY_HEADERS 4

struct m2w_reply {
	int status;
	char *body;              /* malloc'd, or NULL */
	const void *fixed;       /* a static body (an asset), not freed; wins */
	size_t fixed_len;
	const char *ctype;       /* NULL: application/json */
	const char *allow;       /* 405 */
	const char *cache;       /* Cache-Control; NULL: no-store */
	int retry_after;         /* seconds, 0 = none */
	int close;               /* Connection: close */
	int ui;                  /* the console's security headers */
	char *hdr[M2W_REPLY_HEADERS]; /* more "Name: value" lines, malloc'd */
	size_t nhdr;
};

/* {"error": msg} with `status`. */
void m2w_reply_error(struct m2w_reply *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* `o` as JSON (the reply takes o's reference). */
void m2w_reply_json(struct m2w_reply *r, int status, json_object *o);
void m2w_reply_text(struct m2w_reply *r, int status, const char *ctype,
		    const char *text);
/* One more header, "Name: value" (ignored when full or out of memory). */
void m2w_reply_header(struct m2w_reply *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* JSON text without escaped slashes; malloc'd, NULL when out of memory. */
char *m2w_json_text(json_object *o);

/* The client's address as text ("-" when unknown). */
void m2w_http_peer(struct MHD_Connection *c, char *out, size_t size);

#endif
