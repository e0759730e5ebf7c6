/*
 * buf.h - a growable byte buffer (git's strbuf), the one string builder of
 * m2worker: URLs and bodies of the Magento client, the /metrics text, HTTP
 * request bodies, error rows, ingest payloads.
 *
 *   struct m2w_buf b = M2W_BUF_INIT;
 *
 *   m2w_buf_adds(&b, "/products/");
 *   m2w_buf_addf(&b, "%lld/stockItems", (long long)id);
 *   if (b.failed) {
 *           m2w_buf_release(&b);
 *           return M2W_ENOMEM;
 *   }
 *   ... b.buf, b.len ...
 *   m2w_buf_release(&b);
 *
 * Appends never need checking one by one: a failed one (out of memory, or
 * past the cap) sets `failed`, which stays set until m2w_buf_release, and
 * every later append does nothing. Check once, at the end. A failed append
 * adds nothing at all (never half of its bytes).
 *
 * Readable fields: `buf` is NULL until the first byte is added (all zero,
 * M2W_BUF_INIT, is an empty buffer), then always NUL-terminated, also
 * after a failed append and after m2w_buf_reset; `len` is the length
 * without the NUL; `failed` as above. Callers may write into
 * buf[len .. len + n] after m2w_buf_grow(b, n) succeeded, and must then
 * set len and buf[len] = '\0' themselves. `alloc` and `max` are the
 * buffer's own.
 *
 * Ownership: the buffer owns `buf` until m2w_buf_release or
 * m2w_buf_detach. Thread-safety: none; a buffer belongs to one thread at
 * a time.
 */
#ifndef M2WORKER_BUF_H
#define M2WORKER_BUF_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct m2w_buf {
	char *buf;     /* NULL while empty and never grown; else NUL-ended */
	size_t len;    /* bytes in buf, the NUL not counted */
	size_t alloc;  /* bytes allocated at buf */
	size_t max;    /* len never grows past this; 0: no cap */
	int failed;    /* sticky: an append ran out of memory or past max */
};

#define M2W_BUF_INIT { NULL, 0, 0, 0, 0 }

/* An empty buffer whose len may never exceed max (0: no cap). */
void m2w_buf_init(struct m2w_buf *b, size_t max);
/* Frees the bytes; b is empty again (same max, `failed` cleared). */
void m2w_buf_release(struct m2w_buf *b);
/* Empties b, keeping its memory (and `failed`: only release clears it). */
void m2w_buf_reset(struct m2w_buf *b);

/*
 * Makes room for `extra` more bytes and the NUL: 0, or -1 (b->failed set)
 * when out of memory or when len + extra would pass max. The memory is
 * never grown past max + 1.
 */
int m2w_buf_grow(struct m2w_buf *b, size_t extra);

/* Appends: 0, or -1 with b->failed set (and nothing appended). */
int m2w_buf_add(struct m2w_buf *b, const void *p, size_t n);
int m2w_buf_adds(struct m2w_buf *b, const char *s);
int m2w_buf_addc(struct m2w_buf *b, int c);
int m2w_buf_addf(struct m2w_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;
int m2w_buf_vaddf(struct m2w_buf *b, const char *fmt, va_list ap)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 0)))
#endif
	;

/* The text: b->buf, or "" while b->buf is NULL. */
const char *m2w_buf_str(const struct m2w_buf *b);

/*
 * Hands the bytes to the caller (free() them): NUL-terminated, "" when b
 * is empty, NULL only when even that could not be allocated. b is left
 * empty (as after m2w_buf_release); `failed` is not looked at, so check it
 * first when a cut-short text is no use.
 */
char *m2w_buf_detach(struct m2w_buf *b);

#ifdef __cplusplus
}
#endif
#endif
