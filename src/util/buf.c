/*
 * buf.c - the growable byte buffer (buf.h).
 *
 * Growth doubles the allocation (from BUF_MIN), so n appends cost O(n)
 * copies in all; with a cap the allocation stops at max + 1, so a buffer
 * fed by a client (an HTTP body, a Magento response) never holds more
 * than its cap. Every append goes through m2w_buf_grow, the one place that
 * checks the sticky flag, the cap and size_t overflow.
 *
 * No state outside the struct; no locks.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m2worker/buf.h"

#define BUF_MIN 64

void m2w_buf_init(struct m2w_buf *b, size_t max)
{
	b->buf = NULL;
	b->len = b->alloc = 0;
	b->max = max;
	b->failed = 0;
}

void m2w_buf_release(struct m2w_buf *b)
{
	free(b->buf);
	m2w_buf_init(b, b->max);
}

void m2w_buf_reset(struct m2w_buf *b)
{
	b->len = 0;
	if (b->buf)
		b->buf[0] = '\0';
}

static int failed(struct m2w_buf *b)
{
	b->failed = 1;
	return -1;
}

int m2w_buf_grow(struct m2w_buf *b, size_t extra)
{
	size_t want, cap;
	char *p;

	if (b->failed)
		return -1;
	if (extra >= SIZE_MAX - b->len || (b->max && b->len + extra > b->max))
		return failed(b);
	want = b->len + extra + 1;
	if (want <= b->alloc)
		return 0;
	cap = b->alloc ? b->alloc : BUF_MIN;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	if (b->max && cap - 1 > b->max)
		cap = b->max + 1;
	p = realloc(b->buf, cap);
	if (!p) {
		errno = ENOMEM;
		return failed(b);
	}
	p[b->len] = '\0';
	b->buf = p;
	b->alloc = cap;
	return 0;
}

int m2w_buf_add(struct m2w_buf *b, const void *p, size_t n)
{
	if (m2w_buf_grow(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return 0;
}

int m2w_buf_adds(struct m2w_buf *b, const char *s)
{
	return m2w_buf_add(b, s, strlen(s));
}

int m2w_buf_addc(struct m2w_buf *b, int c)
{
	char ch = (char)c;

	return m2w_buf_add(b, &ch, 1);
}

int m2w_buf_vaddf(struct m2w_buf *b, const char *fmt, va_list ap)
{
	size_t room;
	va_list cp;
	int n;

	if (b->failed)
		return -1;
	/* first into the room there is: most appends fit, one pass */
	room = b->buf ? b->alloc - b->len : 0;
	va_copy(cp, ap);
	n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, cp);
	va_end(cp);
	if (n >= 0 && (size_t)n < room &&
	    !(b->max && b->len + (size_t)n > b->max)) {
		b->len += (size_t)n;
		return 0;
	}
	if (b->buf)
		b->buf[b->len] = '\0';  /* a cut-short try undone */
	if (n < 0 || m2w_buf_grow(b, (size_t)n) < 0)
		return failed(b);
	vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int m2w_buf_addf(struct m2w_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = m2w_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *m2w_buf_str(const struct m2w_buf *b)
{
	return b->buf ? b->buf : "";
}

char *m2w_buf_detach(struct m2w_buf *b)
{
	char *s = b->buf;

	if (!s && (s = malloc(1)) != NULL)
		s[0] = '\0';
	m2w_buf_init(b, b->max);
	return s;
}
