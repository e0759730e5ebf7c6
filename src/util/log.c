/*
 * log.c - the logger: one line per event, one write() per line.
 *
 * State (fd, level, path) is the process's one piece of global state
 * outside main(); it is set by m2w_log_open before threads start. Writers
 * take no lock: each line is one write() to an O_APPEND file (or stderr).
 * Reopen (SIGHUP) opens the file anew and dup2()s it onto the same fd
 * number, atomically, so a writer never sees a closed or reused fd.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "m2worker/log.h"

#define LINE_MAX_BYTES 4096

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static int log_fd = 2;
static int log_level = M2W_LOG_INFO;
static char *log_path;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

int m2w_log_level_parse(const char *s)
{
	int i;

	for (i = 0; s && i < 4; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (s && strcasecmp(s, "warning") == 0)
		return M2W_LOG_WARN;
	return -1;
}

static int open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int m2w_log_open(const char *file, int level)
{
	int fd = 2;

	if (file && (fd = open_file(file)) < 0)
		return -1;
	pthread_mutex_lock(&log_mu);
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	log_level = level;
	free(log_path);
	log_path = file ? strdup(file) : NULL;
	pthread_mutex_unlock(&log_mu);
	return 0;
}

int m2w_log_reopen(void)
{
	int fd, rc = 0;

	pthread_mutex_lock(&log_mu);
	if (log_path) {
		fd = open_file(log_path);
		if (fd < 0 || dup2(fd, log_fd) < 0)
			rc = -1;
		if (fd >= 0)
			close(fd);
	}
	pthread_mutex_unlock(&log_mu);
	return rc;
}

void m2w_log_close(void)
{
	pthread_mutex_lock(&log_mu);
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
	free(log_path);
	log_path = NULL;
	pthread_mutex_unlock(&log_mu);
}

int m2w_log_enabled(int level)
{
	return level <= log_level;
}

void m2w_log(int level, const char *event, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;
	int k, saved = errno;

	if (level > log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s ",
		     (long)(tv.tv_usec / 1000),
		     level_names[level < 0 ? 0 : level > 3 ? 3 : level], event);
	n += k > 0 ? (size_t)k : 0;
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		n += k > 0 ? (size_t)k : 0;
	}
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	while (n > 0 && line[n - 1] == ' ')
		n--;
	line[n++] = '\n';
	if (write(log_fd, line, n) < 0) {
		/* nowhere left to say it */
	}
	errno = saved;
}

char *m2w_log_quote(char *out, size_t len, const char *s)
{
	size_t i, n = 0;
	int plain = 1;

	if (!len)
		return out;
	if (!s)
		s = "";
	/* quoting a buffer into itself: work from a copy */
	if (s >= out && s < out + len) {
		char *copy = strdup(s);

		if (!copy) {
			snprintf(out, len, "\"?\"");
			return out;
		}
		m2w_log_quote(out, len, copy);
		free(copy);
		return out;
	}
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == '"' || s[i] == '\\' ||
		    s[i] == '=' || (unsigned char)s[i] == 0x7f)
			plain = 0;
	if (plain && *s) {
		snprintf(out, len, "%s", s);
		return out;
	}
	out[n++] = '"';
	for (i = 0; s[i] && n + 3 < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c == '\n' || c == '\t' || c == '\r') {
			out[n++] = '\\';
			out[n++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
		} else if (c < ' ' || c == 0x7f) {
			out[n++] = '?';
		} else {
			out[n++] = (char)c;
		}
	}
	if (n < len)
		out[n++] = '"';
	out[n < len ? n : len - 1] = '\0';
	return out;
}
