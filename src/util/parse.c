/*
 * parse.c - durations, sizes, booleans and delimiters (parse.h), moved
 * here from the config parser so that qctl and the HTTP API read the
 * same forms as the config file.
 *
 * Strict on purpose: a value is all digits and a known unit, nothing else
 * ("5 s", "1.5s", "-5s", "5sec" are mistakes, not guesses), and anything
 * that would overflow is refused rather than wrapped. No state, no locks.
 */
#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "m2worker/parse.h"

#define KIB ((uint64_t)1 << 10)
#define MS_S INT64_C(1000)
#define MS_M INT64_C(60000)
#define MS_H INT64_C(3600000)
#define MS_D INT64_C(86400000)

static const char *skip_space(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	return s;
}

/* Digits at *sp into *out; 0, or -1 when there are none or they overflow. */
static int take_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return 0;
}

/*
 * "500ms" "30s" "5m" "2h" "1d", a bare number (seconds), or a sum in Go's
 * way ("1m30s", as tracking-updater's YAML may hold).
 */
int64_t m2w_parse_duration_ms(const char *s)
{
	const char *p;
	int64_t total = 0, mul, v;
	uint64_t n;
	int parts = 0;

	if (!s)
		return -1;
	p = skip_space(s);
	if (!*p)
		return -1;
	while (*p && !isspace((unsigned char)*p)) {
		if (take_digits(&p, &n) < 0)
			return -1;
		if (!*p || isspace((unsigned char)*p)) {
			if (parts)
				return -1;      /* "1m30": 30 what? */
			mul = MS_S;
		} else if (p[0] == 'm' && p[1] == 's') {
			mul = 1;
			p += 2;
		} else if (*p == 's' || *p == 'm' || *p == 'h' || *p == 'd') {
			mul = *p == 's' ? MS_S : *p == 'm' ? MS_M :
			      *p == 'h' ? MS_H : MS_D;
			p++;
		} else {
			return -1;
		}
		if (n > (uint64_t)(INT64_MAX / mul))
			return -1;
		v = (int64_t)n * mul;
		if (v > INT64_MAX - total)
			return -1;
		total += v;
		parts++;
	}
	return *skip_space(p) ? -1 : total;
}

/* "512KiB" "64MiB" "4GiB" "1TiB"; K/KB/M/MB/G/GB/T/TB are binary too. */
size_t m2w_parse_size(const char *s)
{
	static const char units[] = "kmgt";
	const char *p, *u;
	uint64_t n, mul = 1;
	size_t ulen;
	int i;

	if (!s)
		return 0;
	p = skip_space(s);
	if (take_digits(&p, &n) < 0)
		return 0;
	p = skip_space(p);
	for (ulen = 0; p[ulen] && !isspace((unsigned char)p[ulen]); ulen++)
		;
	if (*skip_space(p + ulen))
		return 0;
	if (ulen == 1 && (p[0] == 'b' || p[0] == 'B')) {
		mul = 1;
	} else if (ulen > 0) {
		u = strchr(units, tolower((unsigned char)p[0]));
		if (!u || !*u)
			return 0;
		if (!(ulen == 1 ||
		      (ulen == 2 && tolower((unsigned char)p[1]) == 'b') ||
		      (ulen == 3 && tolower((unsigned char)p[1]) == 'i' &&
		       tolower((unsigned char)p[2]) == 'b')))
			return 0;
		for (i = 0; i <= u - units; i++)
			mul *= KIB;
	}
	if (n == 0 || n > UINT64_MAX / mul || n * mul > SIZE_MAX)
		return 0;
	return (size_t)(n * mul);
}

int m2w_parse_bool(const char *s)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	if (!s)
		return -1;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

int m2w_parse_delimiter(const char *s, char *out)
{
	if (!s)
		return -1;
	if (strcmp(s, "auto") == 0)
		*out = 0;
	else if (strcmp(s, ",") == 0 || strcmp(s, "comma") == 0)
		*out = ',';
	else if (strcmp(s, ";") == 0 || strcmp(s, "semicolon") == 0)
		*out = ';';
	else if (strcmp(s, "tab") == 0 || strcmp(s, "\t") == 0 ||
		 strcmp(s, "\\t") == 0)
		*out = '\t';
	else
		return -1;
	return 0;
}

int m2w_parse_uint(const char *s, uint64_t *out)
{
	const char *p = s;

	if (!s || take_digits(&p, out) < 0 || *p)
		return -1;
	return 0;
}
