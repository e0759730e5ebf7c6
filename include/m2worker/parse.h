/*
 * parse.h - the value forms every front end shares: the config file,
 * qctl's options and the HTTP API's query parameters read durations,
 * sizes, booleans and CSV delimiters with these, so "30s" or "tab" mean
 * the same wherever they are written.
 *
 *   durations  "500ms" "30s" "5m" "2h" "1d", a sum "1m30s", a bare number
 *              (seconds); white space around it is fine
 *   sizes      "512KiB" "64MiB" "4GiB" "1TiB" (K/KB/M/MB/... are binary
 *              too, any case), "100B" or a bare number (bytes)
 *   booleans   yes/no, true/false, on/off, 1/0 (any case)
 *   delimiters auto, "," (comma), ";" (semicolon), tab (or a tab itself,
 *               or the two characters \t as a shell passes them)
 *
 * Pure functions: no state, safe from any thread; the strings are the
 * caller's and only read.
 */
#ifndef M2WORKER_PARSE_H
#define M2WORKER_PARSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "30s" -> 30000 etc.; -1 when it does not parse (or overflows). */
int64_t m2w_parse_duration_ms(const char *s);
/* "64MiB" -> bytes; 0 when it does not parse (0 itself is no size). */
size_t m2w_parse_size(const char *s);
/* yes/no...: 1, 0, or -1. */
int m2w_parse_bool(const char *s);
/* "auto" -> 0 (detect), ",", ";", a tab -> that character in *out:
 * 0, or -1 (*out untouched) when s is none of them. */
int m2w_parse_delimiter(const char *s, char *out);
/* Decimal digits only (no sign, no space) into *out: 0, or -1 when s is
 * empty, holds anything else, or overflows 64 bits. */
int m2w_parse_uint(const char *s, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
