/*
 * log.h - one line per event, key=value fields, levels.
 *
 *   2026-11-25T14:03:05.123Z info task.done task=42 type=tracking ms=310
 *
 * The logger is the one piece of process-wide state outside main(): it is
 * opened once, then used from every thread. A line is formatted into a
 * buffer and written with one write(), so lines of different threads never
 * interleave. Values that may hold spaces, quotes or newlines (Magento's
 * messages, file names) go through m2w_log_quote. Never pass a secret.
 */
#ifndef M2WORKER_LOG_H
#define M2WORKER_LOG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum m2w_log_level {
	M2W_LOG_ERROR = 0,
	M2W_LOG_WARN = 1,
	M2W_LOG_INFO = 2,
	M2W_LOG_DEBUG = 3
};

/* "error" "warn" "info" "debug" -> level, or -1. */
int m2w_log_level_parse(const char *s);

/*
 * Logs to `file` (appending; NULL: stderr) at `level` and above. Call once
 * in main() before threads start. Returns 0, or -1 with errno set.
 */
int m2w_log_open(const char *file, int level);
/* Reopens the file (SIGHUP, after logrotate moved it). Thread-safe. */
int m2w_log_reopen(void);
void m2w_log_close(void);
/* Cheap check, so callers can skip building expensive fields. */
int m2w_log_enabled(int level);

/* `event` like "task.dead"; fmt/... are the key=value fields. */
void m2w_log(int level, const char *event, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/*
 * Quotes s for a key=value field into out: as is when it has no space,
 * quote, backslash or control character; else in double quotes with \" \\
 * \n \t escaped. Cut to len. Returns out.
 */
char *m2w_log_quote(char *out, size_t len, const char *s);

#ifdef __cplusplus
}
#endif
#endif
