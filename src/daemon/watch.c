/*
 * watch.c - CSV directories (see watch.h): one thread, every [watch]
 * section.
 *
 * The thread sleeps in poll() on the inotify descriptor and a stop pipe.
 * Each directory has a small table of candidates (name, size, mtime,
 * inode, since when unchanged); inotify events and the periodic scan fill
 * it, and a candidate is taken once it was renamed in or stayed unchanged
 * for the settle time (re-checked with a last stat just before). The
 * poll() timeout is the next scan or the next candidate due, whichever is
 * first.
 *
 * A file is taken on this thread, start to end: fingerprint, progress
 * record, m2w_ingest_stream with opts.progress (each batch and the record
 * in one transaction), the last record (finished_ms), then the moves. The
 * order makes every crash safe: before the last record the file resumes
 * from its recorded row; after it, the file is "seen before" and only
 * moved. The stream reads through a stdio cookie that fails once stop is
 * asked, so a stop ends a large file at its next 64 KiB read: what was
 * committed is recorded, the rest is read at the next start.
 *
 * Rejected rows are appended (one write() per record) to
 * failed/.FINGERPRINT.errors.part while the file is read; a resumed file
 * first reads the highest line already there and does not write those
 * again. At the end the part becomes failed/NAME.errors.csv.
 *
 * Moves never overwrite: link() to a free name then unlink(); where links
 * do not work, rename() after checking the name is free, and across file
 * systems a copy opened O_EXCL. A move fsyncs the target directory before
 * the source name goes and the source directory after, and the errors
 * part is fsync'd before the file's last record: after a power cut the
 * file is in one place at least, and a file done has its rejected rows
 * listed (tests/powerloss.sh).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <csv.h>

#include "m2worker/buf.h"
#include "m2worker/clock.h"
#include "m2worker/ingest.h"
#include "m2worker/log.h"
#include "watch.h"

#define SUFFIX_MAX 10000         /* name.1.csv ... name.9999.csv */
#define SCAN_MAX_MS 60000        /* sleep at most this long */

struct cand {
	char *name;
	off_t size;
	int64_t mtime_ns;
	ino_t ino;
	int64_t since;           /* monotonic ms: unchanged since */
	int64_t retry_at;        /* monotonic ms: not before (0 = now) */
	int moved;               /* renamed in: complete */
	int seen;                /* found by the current scan */
};

struct wdir {
	const struct m2w_watch_cfg *c;
	char *path, *processed, *failed;
	int is_re;
	regex_t re;
	int wd;                  /* inotify watch, -1 = none */
	int scan_failed;         /* the last scan failed (logged once) */
	struct cand *cand;
	size_t ncand, cap;
	/* the last files taken, a ring (m2w_watch_recent); under mu */
	pthread_mutex_t mu;
	struct m2w_watch_file recent[M2W_WATCH_RECENT];
	size_t nrecent;          /* files ever remembered */
};

struct m2w_watcher {
	struct m2w_queue *q;
	const struct m2w_config *cfg;
	struct wdir *d;
	size_t nd;
	int ifd;                 /* inotify, -1 = none */
	int pfd[2];              /* stop pipe */
	pthread_t th;
	int started;
	int stop;                /* __sync access */
};

/* ----------------------------------------------------------- helpers */

static int stopping(struct m2w_watcher *w)
{
	return __sync_fetch_and_add(&w->stop, 0);
}

static char *path_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);

	if (p) {
		memcpy(p, dir, a);
		p[a] = '/';
		memcpy(p + a + 1, name, b + 1);
	}
	return p;
}

static int mkdir_p(const char *path, char *errbuf)
{
	char *p = strdup(path), *s;
	struct stat st;
	int rc = M2W_OK;

	if (!p)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			rc = m2w_fail(errbuf, M2W_EINVAL, "cannot create %s: %s",
				      p, strerror(errno));
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	if (rc == M2W_OK && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
		rc = m2w_fail(errbuf, M2W_EINVAL, "%s is not a directory",
			      path);
	free(p);
	return rc;
}

/* "a/b/incoming/" -> "a/b"; "incoming" -> "."; "/in" -> "/" */
static char *parent_dir(const char *path)
{
	char *p = strdup(path), *s;
	size_t n;

	if (!p)
		return NULL;
	n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	s = strrchr(p, '/');
	if (!s) {
		free(p);
		return strdup(".");
	}
	while (s > p && s[-1] == '/')
		s--;
	if (s == p)
		s[1] = '\0';
	else
		*s = '\0';
	return p;
}

/*
 * tracking-updater's file_pattern is a Go regexp: \d \w \s and their
 * capitals are no POSIX ERE. Rewritten to classes; other escapes stay.
 */
static int regex_translate(const char *in, char *out, size_t size)
{
	size_t o = 0;
	int br = 0;
	const char *rep;

	for (; *in; in++) {
		rep = NULL;
		if (*in == '\\' && in[1]) {
			char c = in[1];

			if (c == 'd')
				rep = br ? "0-9" : "[0-9]";
			else if (c == 'w')
				rep = br ? "[:alnum:]_" : "[[:alnum:]_]";
			else if (c == 's')
				rep = br ? "[:space:]" : "[[:space:]]";
			else if (!br && c == 'D')
				rep = "[^0-9]";
			else if (!br && c == 'W')
				rep = "[^[:alnum:]_]";
			else if (!br && c == 'S')
				rep = "[^[:space:]]";
			if (rep) {
				in++;
			} else {
				if (o + 2 >= size)
					return -1;
				out[o++] = *in++;
				out[o++] = *in;
				continue;
			}
		} else if (!br && *in == '[') {
			br = 1;
			if (o + 1 >= size)
				return -1;
			out[o++] = *in;
			if (in[1] == '^') {
				if (o + 1 >= size)
					return -1;
				out[o++] = *++in;
			}
			if (in[1] == ']') {
				if (o + 1 >= size)
					return -1;
				out[o++] = *++in;
			}
			continue;
		} else if (br && in[0] == '[' && in[1] == ':') {
			const char *e = strstr(in + 2, ":]");
			size_t n = e ? (size_t)(e + 2 - in) : strlen(in);

			if (o + n >= size)
				return -1;
			memcpy(out + o, in, n);
			o += n;
			in += n - 1;
			continue;
		} else if (br && *in == ']') {
			br = 0;
		}
		if (rep) {
			size_t n = strlen(rep);

			if (o + n >= size)
				return -1;
			memcpy(out + o, rep, n);
			o += n;
		} else {
			if (o + 1 >= size)
				return -1;
			out[o++] = *in;
		}
	}
	out[o] = '\0';
	return 0;
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

static int is_candidate(const struct wdir *d, const char *name)
{
	if (name[0] == '.' || ends_with(name, ".tmp") ||
	    ends_with(name, ".part") || ends_with(name, ".swp") ||
	    ends_with(name, "~"))
		return 0;
	if (d->is_re)
		return regexec(&d->re, name, 0, NULL, 0) == 0;
	return fnmatch(d->c->pattern ? d->c->pattern : "*.csv", name, 0) == 0;
}

/* ---------------------------------------------------------------- moves */

/* name, or with ".k" before its extension ("a.csv" -> "a.2.csv"). */
static void suffixed(const char *name, unsigned k, char *out, size_t size)
{
	const char *dot = strrchr(name, '.');

	if (!k)
		snprintf(out, size, "%s", name);
	else if (!dot || dot == name)
		snprintf(out, size, "%s.%u", name, k);
	else
		snprintf(out, size, "%.*s.%u%s", (int)(dot - name), name, k,
			 dot);
}

/* fsync of a file or a directory by name: 0, or -1 with errno */
static int sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc, e;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* fsync of the directory `path` is in */
static int sync_dir_of(const char *path)
{
	char dir[PATH_MAX], *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if (!(slash = strrchr(dir, '/')))
		return sync_path(".");
	slash[slash == dir] = '\0';
	return sync_path(dir);
}

static int copy_excl(const char *src, const char *dst)
{
	char buf[65536];
	int in, out, e = 0;
	ssize_t n;

	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0644)) < 0) {
		e = errno;
		close(in);
		errno = e;
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		char *p = buf;

		while (n > 0) {
			ssize_t m = write(out, p, (size_t)n);

			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0) {
				e = errno;
				break;
			}
			p += m;
			n -= m;
		}
		if (e)
			break;
	}
	if (n < 0 && !e)
		e = errno;
	if (!e && fsync(out) != 0)
		e = errno;
	if (close(out) != 0 && !e)
		e = errno;
	close(in);
	if (e) {
		unlink(dst);
		errno = e;
		return -1;
	}
	return 0;
}

/*
 * Moves `src` into `dir` as `name`, or the first free suffixed name; never
 * overwrites. The name given is put in final[size]. 0, or -1 with errno.
 */
static int move_noclobber(const char *src, const char *dir, const char *name,
			  char *final, size_t size)
{
	char nm[NAME_MAX + 16], *dst;
	struct stat st;
	unsigned k;
	int e, links = 1;

	for (k = 0; k < SUFFIX_MAX; k++) {
		suffixed(name, k, nm, sizeof(nm));
		if (!(dst = path_join(dir, nm))) {
			errno = ENOMEM;
			return -1;
		}
		if (links && link(src, dst) == 0) {
			/* the new name durable before the old one goes */
			if (sync_path(dir) != 0) {
				e = errno;
				unlink(dst);
				free(dst);
				errno = e;
				return -1;
			}
			unlink(src);
			goto done;
		}
		e = errno;
		if (links && e == EEXIST) {
			free(dst);
			continue;
		}
		if (links && e != EXDEV && e != EPERM && e != EMLINK &&
		    e != ENOTSUP && e != ENOSYS &&
		    e != EACCES) {
			free(dst);
			errno = e;
			return -1;
		}
		links = 0;   /* no links here: rename or copy */
		if (lstat(dst, &st) == 0) {
			free(dst);
			continue;
		}
		if (rename(src, dst) == 0) {
			sync_path(dir);
			goto done;
		}
		if (errno == EXDEV) {
			if (copy_excl(src, dst) == 0 && sync_path(dir) == 0) {
				unlink(src);
				goto done;
			}
			if (errno == EEXIST) {
				free(dst);
				continue;
			}
		}
		e = errno;
		free(dst);
		errno = e;
		return -1;
	}
	errno = EEXIST;
	return -1;
done:
	sync_dir_of(src);
	free(dst);
	snprintf(final, size, "%s", nm);
	return 0;
}

/* Writes `text` to dir/name (or a suffixed name), never overwriting. */
static int write_noclobber(const char *dir, const char *name,
			   const char *text)
{
	char nm[NAME_MAX + 16], *dst;
	size_t n = strlen(text);
	unsigned k;
	int fd;

	for (k = 0; k < SUFFIX_MAX; k++) {
		suffixed(name, k, nm, sizeof(nm));
		if (!(dst = path_join(dir, nm)))
			return -1;
		fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		free(dst);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0)
			return -1;
		/* the text and then its name: an operator reading failed/
		 * after a power cut finds the reason beside the file */
		if (write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) {
			close(fd);
			return -1;
		}
		return close(fd) != 0 ? -1 : sync_path(dir);
	}
	return -1;
}

/* -------------------------------------------------------- errors file */

struct errs {
	const struct wdir *d;
	char *part;              /* failed/.FP.errors.part */
	int fd;                  /* -1 until the first row */
	uint64_t done_line;      /* lines up to this one are in the part */
	int failed;              /* could not write: logged once */
	struct m2w_buf text;     /* the row being written */
};

struct maxline {
	size_t field;
	uint64_t max;
	int header;
};

static void ml_field(void *s, size_t n, void *arg)
{
	struct maxline *m = arg;
	char num[24];

	if (m->field++ == 0 && !m->header && n && n < sizeof(num)) {
		uint64_t v;

		memcpy(num, s, n);
		num[n] = '\0';
		v = strtoull(num, NULL, 10);
		if (v > m->max)
			m->max = v;
	}
}

static void ml_record(int c, void *arg)
{
	struct maxline *m = arg;

	(void)c;
	m->field = 0;
	m->header = 0;
}

/* The highest line already in a part file (0: none). */
static uint64_t part_max_line(const char *part)
{
	struct csv_parser p;
	struct maxline m = { 0, 0, 1 };
	char buf[65536];
	ssize_t n;
	int fd = open(part, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (csv_init(&p, 0) != 0) {
		close(fd);
		return 0;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		csv_parse(&p, buf, (size_t)n, ml_field, ml_record, &m);
	csv_fini(&p, ml_field, ml_record, &m);
	csv_free(&p);
	close(fd);
	return m.max;
}

/* Appends s as a CSV field, then `end`. */
static void csv_field(struct m2w_buf *b, const char *s, char end)
{
	size_t i, n = strlen(s);
	int q = n && (s[0] == ' ' || s[n - 1] == ' ');

	for (i = 0; i < n && !q; i++)
		q = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
	if (!q) {
		m2w_buf_add(b, s, n);
	} else {
		m2w_buf_addc(b, '"');
		for (i = 0; i < n; i++) {
			if (s[i] == '"')
				m2w_buf_addc(b, '"');
			m2w_buf_addc(b, s[i]);
		}
		m2w_buf_addc(b, '"');
	}
	m2w_buf_addc(b, end);
}

static void on_error(void *arg, uint64_t line, const char *column,
		     const char *reason, const char *row)
{
	static const char head[] = "line,column,reason,row\n";
	struct errs *e = arg;
	char num[24];
	struct stat st;

	if (line <= e->done_line || e->failed)
		return;
	if (e->fd < 0) {
		e->fd = open(e->part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			     0644);
		if (e->fd < 0 || fstat(e->fd, &st) != 0 ||
		    (st.st_size == 0 &&
		     write(e->fd, head, sizeof(head) - 1) !=
			     (ssize_t)sizeof(head) - 1))
			goto fail;
	}
	if (!column)
		column = "";
	snprintf(num, sizeof(num), "%llu", (unsigned long long)line);
	m2w_buf_reset(&e->text);
	csv_field(&e->text, num, ',');
	csv_field(&e->text, column, ',');
	csv_field(&e->text, reason, ',');
	csv_field(&e->text, row, '\n');
	if (!e->text.failed && write(e->fd, e->text.buf, e->text.len) ==
				       (ssize_t)e->text.len)
		return;
fail:
	{
		char q[PATH_MAX + 8];

		m2w_log(M2W_LOG_ERROR, "file.errors_report", "file=%s "
			"error=\"%s\" (rejected rows are counted but not "
			"all listed)", m2w_log_quote(q, sizeof(q), e->part),
			strerror(errno));
		e->failed = 1;
	}
}

/* ---------------------------------------------------------- reading */

/* A FILE over fd that fails once stop is asked (w may be NULL). */
struct rd {
	int fd;
	off_t off;
	struct m2w_watcher *w;
};

static ssize_t rd_read(void *c, char *buf, size_t n)
{
	struct rd *r = c;
	ssize_t got;

	if (r->w && stopping(r->w)) {
		errno = ECANCELED;
		return -1;
	}
	do
		got = pread(r->fd, buf, n, r->off);
	while (got < 0 && errno == EINTR);
	if (got > 0)
		r->off += got;
	return got;
}

static int rd_close(void *c)
{
	(void)c;
	return 0;
}

/* ------------------------------------------------------------ a file */

/* Remembers what became of a file for the console (m2w_watch_recent):
 * `final` in `dir`, `errors` (NULL: none) in failed/. */
static void remember(struct wdir *d, int outcome, const char *name,
		     const char *dir, const char *final, const char *errors,
		     const char *reason, const struct m2w_file_info *info)
{
	struct m2w_watch_file *f;

	pthread_mutex_lock(&d->mu);
	f = &d->recent[d->nrecent++ % M2W_WATCH_RECENT];
	memset(f, 0, sizeof(*f));
	f->outcome = outcome;
	f->at_ms = m2w_clock_ms();
	snprintf(f->name, sizeof(f->name), "%s", name);
	if (final && *final)
		snprintf(f->moved_to, sizeof(f->moved_to), "%s/%s", dir, final);
	if (errors && *errors)
		snprintf(f->errors, sizeof(f->errors), "%s/%s", d->failed,
			 errors);
	snprintf(f->reason, sizeof(f->reason), "%s", reason ? reason : "");
	if (info) {
		f->rows = info->rows;
		f->accepted = info->accepted;
		f->duplicates = info->duplicates;
		f->rejected = info->rejected;
	}
	pthread_mutex_unlock(&d->mu);
}

/* Moves the file to failed/ with a reason file; logs. */
static void to_failed(struct wdir *d, const char *name, const char *reason)
{
	char final[NAME_MAX + 16] = "", rname[NAME_MAX + 32], *src, *text;
	char qf[PATH_MAX], qr[1024];
	size_t n;

	src = path_join(d->path, name);
	if (!src || move_noclobber(src, d->failed, name, final,
				   sizeof(final)) != 0) {
		m2w_log(M2W_LOG_ERROR, "file.failed", "watch=%s file=%s "
			"reason=%s move_error=\"%s\" (left in place)",
			d->c->name, m2w_log_quote(qf, sizeof(qf), name),
			m2w_log_quote(qr, sizeof(qr), reason),
			strerror(errno));
		free(src);
		return;
	}
	free(src);
	snprintf(rname, sizeof(rname), "%s.reason.txt", final);
	n = strlen(name) + strlen(reason) + 64;
	if ((text = malloc(n)) != NULL) {
		snprintf(text, n, "%s: %s\n", name, reason);
		if (write_noclobber(d->failed, rname, text) != 0)
			m2w_log(M2W_LOG_ERROR, "file.failed", "watch=%s "
				"file=%s error=\"cannot write the reason "
				"file: %s\"", d->c->name,
				m2w_log_quote(qf, sizeof(qf), rname),
				strerror(errno));
		free(text);
	}
	m2w_log(M2W_LOG_ERROR, "file.failed", "watch=%s file=%s moved_to=%s "
		"reason=%s", d->c->name, m2w_log_quote(qf, sizeof(qf), name),
		final, m2w_log_quote(qr, sizeof(qr), reason));
	remember(d, M2W_FILE_FAILED, name, d->failed, final, rname, reason,
		 NULL);
}

/* The part file of rejected rows, if any, to failed/FINAL.errors.csv;
 * its name there into got (GOT_MAX bytes; "" when none). */
#define GOT_MAX (NAME_MAX + 48)
static void errors_finish(const struct wdir *d, const char *part,
			  const char *final, const struct m2w_file_info *info,
			  char *got)
{
	char ename[NAME_MAX + 32], qf[PATH_MAX];
	struct stat st;

	got[0] = '\0';
	if (stat(part, &st) != 0)
		return;
	snprintf(ename, sizeof(ename), "%s.errors.csv", final);
	if (move_noclobber(part, d->failed, ename, got, GOT_MAX) != 0) {
		m2w_log(M2W_LOG_ERROR, "file.rejected_rows", "watch=%s file=%s "
			"rejected=%llu error=\"cannot move %s: %s\"",
			d->c->name, m2w_log_quote(qf, sizeof(qf), final),
			(unsigned long long)info->rejected, part,
			strerror(errno));
		got[0] = '\0';
		return;
	}
	m2w_log(M2W_LOG_WARN, "file.rejected_rows", "watch=%s file=%s "
		"rejected=%llu errors=%s/%s", d->c->name,
		m2w_log_quote(qf, sizeof(qf), final),
		(unsigned long long)info->rejected, d->failed, got);
}

static void fmt_time(int64_t ms, char *out, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * Takes d/name. M2W_OK: the file left incoming/ (processed/ or failed/);
 * M2W_ENOTFOUND: it is gone; else it stays, to be retried (M2W_EBUSY:
 * stopped).
 */
static int take(struct m2w_watcher *w, struct wdir *d, const char *name)
{
	char eb[M2W_ERRBUF_SIZE] = "", fp[M2W_FINGERPRINT_HEX + 1];
	char why[M2W_ERRBUF_SIZE + 64], final[NAME_MAX + 16] = "";
	char qf[PATH_MAX], qe[M2W_ERRBUF_SIZE + 64], when[32], got[GOT_MAX] = "";
	struct m2w_file_info info, base;
	struct m2w_ingest_result res;
	struct m2w_ingest_opts o;
	struct errs e;
	struct rd rd;
	struct stat st;
	char *src = NULL, *part_name = NULL;
	FILE *raw = NULL, *in = NULL;
	cookie_io_functions_t io;
	int64_t t0 = m2w_clock_mono_ms();
	int fd = -1, rc, resumed = 0;

	memset(&e, 0, sizeof(e));
	e.fd = -1;
	e.d = d;
	m2w_log_quote(qf, sizeof(qf), name);
	if (!(src = path_join(d->path, name))) {
		rc = M2W_ENOMEM;
		goto out;
	}
	fd = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		rc = M2W_ENOTFOUND;
		goto out;
	}
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(why, sizeof(why), "cannot open the file: %s",
			 strerror(errno));
		to_failed(d, name, why);
		rc = M2W_OK;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = M2W_ENOTFOUND;
		goto out;
	}
	if (st.st_size == 0) {
		to_failed(d, name, "the file is empty (no header)");
		rc = M2W_OK;
		goto out;
	}
	if (!(raw = fdopen(fd, "rb"))) {
		rc = M2W_ENOMEM;
		goto out;
	}
	fd = -1;
	rc = m2w_ingest_fingerprint(raw, fp, eb);
	if (rc == M2W_EIO || rc == M2W_EINVAL) {
		snprintf(why, sizeof(why), "cannot read the file: %s", eb);
		to_failed(d, name, why);
		rc = M2W_OK;
		goto out;
	}
	if (rc != M2W_OK)
		goto out;
	rc = m2w_queue_file_get(w->q, fp, &info, eb);
	if (rc == M2W_OK && info.finished_ms) {
		fmt_time(info.finished_ms, when, sizeof(when));
		if (move_noclobber(src, d->processed, name, final,
				   sizeof(final)) != 0) {
			m2w_log(M2W_LOG_ERROR, "file.seen_before", "watch=%s "
				"file=%s error=\"cannot move it to %s: %s\"",
				d->c->name, qf, d->processed, strerror(errno));
			rc = M2W_EIO;
			goto out;
		}
		m2w_log(M2W_LOG_WARN, "file.seen_before", "watch=%s file=%s "
			"fingerprint=%.16s first_name=%s finished=%s "
			"moved_to=%s msg=\"same content seen before: not "
			"enqueued again\"", d->c->name, qf, fp,
			m2w_log_quote(qe, sizeof(qe), info.name), when, final);
		/* a crash between the last record and the moves */
		if ((part_name = malloc(strlen(fp) + 32)) != NULL) {
			snprintf(part_name, strlen(fp) + 32, ".%s.errors.part",
				 fp);
			if ((e.part = path_join(d->failed, part_name)))
				errors_finish(d, e.part, final, &info, got);
		}
		remember(d, M2W_FILE_SEEN_BEFORE, name, d->processed, final,
			 got, NULL, NULL);
		rc = M2W_OK;
		goto out;
	}
	if (rc == M2W_ENOTFOUND) {
		memset(&info, 0, sizeof(info));
		snprintf(info.fingerprint, sizeof(info.fingerprint), "%s", fp);
		snprintf(info.name, sizeof(info.name), "%s", name);
		info.first_ms = m2w_clock_ms();
	} else if (rc != M2W_OK) {
		m2w_log(M2W_LOG_WARN, "file.retry", "watch=%s file=%s "
			"error=%s", d->c->name, qf,
			m2w_log_quote(qe, sizeof(qe), eb));
		goto out;
	} else {
		resumed = 1;
		m2w_log(M2W_LOG_INFO, "file.resume", "watch=%s file=%s "
			"from_row=%llu", d->c->name, qf,
			(unsigned long long)info.rows);
	}
	base = info;
	if (!(part_name = malloc(strlen(fp) + 32))) {
		rc = M2W_ENOMEM;
		goto out;
	}
	snprintf(part_name, strlen(fp) + 32, ".%s.errors.part", fp);
	if (!(e.part = path_join(d->failed, part_name))) {
		rc = M2W_ENOMEM;
		goto out;
	}
	e.done_line = part_max_line(e.part);

	memset(&rd, 0, sizeof(rd));
	rd.fd = fileno(raw);
	rd.w = w;
	memset(&io, 0, sizeof(io));
	io.read = rd_read;
	io.close = rd_close;
	if (!(in = fopencookie(&rd, "r", io))) {
		rc = M2W_ENOMEM;
		goto out;
	}
	m2w_ingest_opts_init(&o, d->c->type);
	o.delimiter = d->c->delimiter;
	o.source = name;
	o.fingerprint = fp;
	o.key_field = d->c->key_field;
	o.columns = d->c->columns;
	o.skip_rows = info.rows;
	o.progress = &info;
	rc = m2w_ingest_stream(w->q, in, &o, &res, on_error, &e, eb);
	if (e.fd >= 0) {
		close(e.fd);
		e.fd = -1;
	}
	if (rc != M2W_OK && stopping(w)) {
		m2w_log(M2W_LOG_INFO, "file.interrupted", "watch=%s file=%s "
			"rows_in=%llu (resumed at the next start)",
			d->c->name, qf,
			(unsigned long long)res.committed_rows);
		rc = M2W_EBUSY;
		goto out;
	}
	if (rc == M2W_EINVAL || rc == M2W_EIO) {
		to_failed(d, name, eb);
		rc = M2W_OK;
		goto out;
	}
	if (rc != M2W_OK) {
		m2w_log(M2W_LOG_WARN, "file.retry", "watch=%s file=%s "
			"rows_in=%llu error=%s (left in place, retried later)",
			d->c->name, qf, (unsigned long long)res.committed_rows,
			m2w_log_quote(qe, sizeof(qe), eb));
		goto out;
	}
	info.rows = res.rows;
	info.accepted = base.accepted + res.accepted;
	info.duplicates = base.duplicates + res.duplicates;
	info.rejected = base.rejected + res.rejected;
	info.finished_ms = m2w_clock_ms();
	/* the rejected rows on disk before the record that ends the file:
	 * after it the file is only moved, its part never written again */
	if (stat(e.part, &st) == 0 && (sync_path(e.part) != 0 ||
				       sync_path(d->failed) != 0)) {
		m2w_log(M2W_LOG_WARN, "file.retry", "watch=%s file=%s "
			"error=\"cannot sync %s: %s\" (left in place, retried "
			"later)", d->c->name, qf, e.part, strerror(errno));
		rc = M2W_EIO;
		goto out;
	}
	if ((rc = m2w_queue_enqueue_file(w->q, NULL, 0, &info, eb)) != M2W_OK) {
		m2w_log(M2W_LOG_WARN, "file.retry", "watch=%s file=%s "
			"error=%s (left in place, retried later)", d->c->name,
			qf, m2w_log_quote(qe, sizeof(qe), eb));
		goto out;
	}
	if (move_noclobber(src, d->processed, name, final, sizeof(final))) {
		m2w_log(M2W_LOG_ERROR, "file.done", "watch=%s file=%s "
			"error=\"cannot move it to %s: %s\" (its rows are in)",
			d->c->name, qf, d->processed, strerror(errno));
		rc = M2W_EIO;
		goto out;
	}
	errors_finish(d, e.part, final, &info, got);
	remember(d, M2W_FILE_DONE, name, d->processed, final, got, NULL, &info);
	m2w_log(info.rejected ? M2W_LOG_WARN : M2W_LOG_INFO, "file.done",
		"watch=%s file=%s rows=%llu accepted=%llu duplicates=%llu "
		"rejected=%llu ms=%lld%s moved_to=%s", d->c->name, qf,
		(unsigned long long)info.rows,
		(unsigned long long)info.accepted,
		(unsigned long long)info.duplicates,
		(unsigned long long)info.rejected,
		(long long)(m2w_clock_mono_ms() - t0),
		resumed ? " resumed=yes" : "", final);
	rc = M2W_OK;
out:
	if (in)
		fclose(in);
	if (raw)
		fclose(raw);
	if (fd >= 0)
		close(fd);
	if (e.fd >= 0)
		close(e.fd);
	m2w_buf_release(&e.text);
	free(e.part);
	free(part_name);
	free(src);
	return rc;
}

/* ------------------------------------------------------- candidates */

static struct cand *cand_find(struct wdir *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->ncand; i++)
		if (strcmp(d->cand[i].name, name) == 0)
			return &d->cand[i];
	return NULL;
}

static void cand_drop(struct wdir *d, struct cand *c)
{
	free(c->name);
	*c = d->cand[--d->ncand];
}

static void cand_update(struct wdir *d, const char *name,
			const struct stat *st, int moved, int64_t now)
{
	struct cand *c = cand_find(d, name);
	int64_t mt = (int64_t)st->st_mtim.tv_sec * 1000000000 +
		     st->st_mtim.tv_nsec;

	if (!c) {
		if (d->ncand == d->cap) {
			size_t cap = d->cap ? 2 * d->cap : 16;
			struct cand *nc = realloc(d->cand, cap * sizeof(*nc));

			if (!nc)
				return;  /* the next scan tries again */
			d->cand = nc;
			d->cap = cap;
		}
		c = &d->cand[d->ncand];
		memset(c, 0, sizeof(*c));
		if (!(c->name = strdup(name)))
			return;
		d->ncand++;
		c->since = now;
	} else if (c->size != st->st_size || c->mtime_ns != mt ||
		   c->ino != st->st_ino) {
		c->since = now;
		c->moved = 0;
	}
	c->size = st->st_size;
	c->mtime_ns = mt;
	c->ino = st->st_ino;
	c->seen = 1;
	if (moved)
		c->moved = 1;
}

static void scan(struct wdir *d, int64_t now)
{
	DIR *dir = opendir(d->path);
	struct dirent *de;
	struct stat st;
	size_t i;

	if (!dir) {
		if (!d->scan_failed)
			m2w_log(M2W_LOG_ERROR, "watch.scan", "watch=%s path=%s "
				"error=\"%s\"", d->c->name, d->path,
				strerror(errno));
		d->scan_failed = 1;
		return;
	}
	if (d->scan_failed)
		m2w_log(M2W_LOG_INFO, "watch.scan", "watch=%s path=%s "
			"readable again", d->c->name, d->path);
	d->scan_failed = 0;
	for (i = 0; i < d->ncand; i++)
		d->cand[i].seen = 0;
	while ((de = readdir(dir)) != NULL) {
		if (!is_candidate(d, de->d_name))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, 0) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		cand_update(d, de->d_name, &st, 0, now);
	}
	closedir(dir);
	for (i = 0; i < d->ncand;) {
		if (!d->cand[i].seen)
			cand_drop(d, &d->cand[i]);
		else
			i++;
	}
}

static int64_t retry_ms(const struct wdir *d)
{
	return d->c->poll_interval_ms > M2W_WATCH_RETRY_MS ?
		       d->c->poll_interval_ms : M2W_WATCH_RETRY_MS;
}

/* Takes the candidates that are due. */
static void due(struct m2w_watcher *w, struct wdir *d)
{
	size_t i;

	for (i = 0; i < d->ncand && !stopping(w);) {
		struct cand *c = &d->cand[i];
		int64_t now = m2w_clock_mono_ms(), mt;
		struct stat st;
		char *p;
		int rc;

		if (c->retry_at > now ||
		    (!c->moved && now - c->since < d->c->settle_ms)) {
			i++;
			continue;
		}
		/* the last look: unchanged? */
		if (!(p = path_join(d->path, c->name))) {
			i++;
			continue;
		}
		rc = stat(p, &st);
		free(p);
		if (rc != 0 || !S_ISREG(st.st_mode)) {
			cand_drop(d, c);
			continue;
		}
		mt = (int64_t)st.st_mtim.tv_sec * 1000000000 +
		     st.st_mtim.tv_nsec;
		if (st.st_size != c->size || mt != c->mtime_ns ||
		    st.st_ino != c->ino) {
			cand_update(d, c->name, &st, 0, now);
			i++;
			continue;
		}
		rc = take(w, d, c->name);
		if (rc == M2W_OK || rc == M2W_ENOTFOUND) {
			cand_drop(d, c);
			continue;
		}
		c->retry_at = m2w_clock_mono_ms() + retry_ms(d);
		i++;
	}
}

static void inotify_events(struct m2w_watcher *w, int *rescan)
{
	char buf[64 * 1024]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	size_t i, k;

	while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
		for (i = 0; i + sizeof(struct inotify_event) <= (size_t)n;) {
			const struct inotify_event *ev =
				(const struct inotify_event *)(buf + i);
			struct stat st;

			i += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				*rescan = 1;
				continue;
			}
			for (k = 0; k < w->nd; k++)
				if (w->d[k].wd == ev->wd)
					break;
			if (k == w->nd || !ev->len)
				continue;
			if (ev->mask & IN_IGNORED) {
				w->d[k].wd = -1;
				continue;
			}
			if (!is_candidate(&w->d[k], ev->name))
				continue;
			{
				char *p = path_join(w->d[k].path, ev->name);

				if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode))
					cand_update(&w->d[k], ev->name, &st,
						    (ev->mask & IN_MOVED_TO) != 0,
						    m2w_clock_mono_ms());
				free(p);
			}
		}
	}
}

static void *watch_main(void *arg)
{
	struct m2w_watcher *w = arg;
	int64_t next_scan = 0, interval = SCAN_MAX_MS;
	size_t i, k;

	for (i = 0; i < w->nd; i++)
		if (w->d[i].c->poll_interval_ms < interval)
			interval = w->d[i].c->poll_interval_ms;
	if (interval < 10)
		interval = 10;
	while (!stopping(w)) {
		struct pollfd pf[2];
		int64_t now = m2w_clock_mono_ms(), next;
		int nf = 0, rescan = 0;

		if (now >= next_scan) {
			for (i = 0; i < w->nd; i++)
				scan(&w->d[i], now);
			next_scan = now + interval;
		}
		for (i = 0; i < w->nd && !stopping(w); i++)
			due(w, &w->d[i]);
		now = m2w_clock_mono_ms();
		next = next_scan;
		for (i = 0; i < w->nd; i++) {
			const struct wdir *d = &w->d[i];

			for (k = 0; k < d->ncand; k++) {
				const struct cand *c = &d->cand[k];
				int64_t at = c->retry_at;

				if (!c->moved && c->since + d->c->settle_ms > at)
					at = c->since + d->c->settle_ms;
				if (at < next)
					next = at;
			}
		}
		pf[nf].fd = w->pfd[0];
		pf[nf++].events = POLLIN;
		if (w->ifd >= 0) {
			pf[nf].fd = w->ifd;
			pf[nf++].events = POLLIN;
		}
		if (poll(pf, (nfds_t)nf, next > now ? (int)(next - now) : 0) >
			    0 &&
		    w->ifd >= 0 && (pf[1].revents & POLLIN))
			inotify_events(w, &rescan);
		if (rescan)
			next_scan = 0;
	}
	return NULL;
}

/* ------------------------------------------------------------- setup */

static void dir_release(struct wdir *d)
{
	size_t i;

	for (i = 0; i < d->ncand; i++)
		free(d->cand[i].name);
	free(d->cand);
	if (d->is_re)
		regfree(&d->re);
	free(d->path);
	free(d->processed);
	free(d->failed);
	pthread_mutex_destroy(&d->mu);
	memset(d, 0, sizeof(*d));
}

/* A `^...$` pattern compiled into *re (*is_re 1), or a glob (0). */
static int pattern_compile(const struct m2w_watch_cfg *c, regex_t *re,
			   int *is_re, char *errbuf)
{
	char *text, msg[160];
	size_t n;
	int e;

	*is_re = 0;
	if (!c->pattern || c->pattern[0] != '^')
		return M2W_OK;
	n = 4 * strlen(c->pattern) + 16;
	if (!(text = malloc(n)))
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	if (regex_translate(c->pattern, text, n) != 0) {
		free(text);
		return m2w_fail(errbuf, M2W_EINVAL, "[watch \"%s\"]: pattern "
				"too long", c->name);
	}
	e = regcomp(re, text, REG_EXTENDED | REG_NOSUB);
	free(text);
	if (e) {
		regerror(e, re, msg, sizeof(msg));
		return m2w_fail(errbuf, M2W_EINVAL, "[watch \"%s\"]: pattern "
				"%s: %s", c->name, c->pattern, msg);
	}
	*is_re = 1;
	return M2W_OK;
}

int m2w_watch_cfg_check(const struct m2w_watch_cfg *c, char *errbuf)
{
	const struct m2w_job *job = m2w_job_find(c->type);
	char eb[M2W_ERRBUF_SIZE] = "", names[128];
	regex_t re;
	int rc, is_re;

	if (!c->path || !*c->path)
		return m2w_fail(errbuf, M2W_EINVAL, "[watch \"%s\"]: no path",
				c->name);
	if (!job || !(job->inputs & M2W_IN_CSV))
		return m2w_fail(errbuf, M2W_EINVAL, "[watch \"%s\"]: type %s "
				"cannot be read from CSV (%s)", c->name, c->type,
				m2w_job_names(M2W_IN_CSV, names, sizeof(names)));
	if (m2w_ingest_columns_check(c->type, c->columns, eb) != M2W_OK)
		return m2w_fail(errbuf, M2W_EINVAL, "[watch \"%s\"]: %s",
				c->name, eb);
	if ((rc = pattern_compile(c, &re, &is_re, errbuf)) != M2W_OK)
		return rc;
	if (is_re)
		regfree(&re);
	return M2W_OK;
}

static int dir_init(struct wdir *d, const struct m2w_watch_cfg *c,
		    char *errbuf)
{
	char eb[M2W_ERRBUF_SIZE] = "", *parent = NULL;
	size_t n;
	int rc;

	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->mu, NULL);
	d->c = c;
	d->wd = -1;
	if ((rc = m2w_watch_cfg_check(c, errbuf)) != M2W_OK ||
	    (rc = pattern_compile(c, &d->re, &d->is_re, errbuf)) != M2W_OK)
		return rc;
	d->path = strdup(c->path);
	if (!d->path || !(parent = parent_dir(c->path)) ||
	    !(d->processed = c->processed ? strdup(c->processed) :
					    path_join(parent, "processed")) ||
	    !(d->failed = c->failed ? strdup(c->failed) :
				      path_join(parent, "failed"))) {
		free(parent);
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	}
	free(parent);
	n = strlen(d->path);
	while (n > 1 && d->path[n - 1] == '/')
		d->path[--n] = '\0';
	{
		const char *dirs[3];
		size_t i;

		dirs[0] = d->path;
		dirs[1] = d->processed;
		dirs[2] = d->failed;
		for (i = 0; i < 3; i++) {
			struct stat st;

			if (stat(dirs[i], &st) == 0 && S_ISDIR(st.st_mode))
				continue;
			if ((rc = mkdir_p(dirs[i], eb)) != M2W_OK)
				return m2w_fail(errbuf, rc, "[watch \"%s\"]: %s",
						c->name, eb);
			m2w_log(M2W_LOG_INFO, "watch.mkdir", "watch=%s path=%s",
				c->name, dirs[i]);
		}
	}
	return M2W_OK;
}

static void watcher_free(struct m2w_watcher *w)
{
	size_t i;

	if (!w)
		return;
	for (i = 0; i < w->nd; i++)
		dir_release(&w->d[i]);
	free(w->d);
	if (w->ifd >= 0)
		close(w->ifd);
	if (w->pfd[0] >= 0)
		close(w->pfd[0]);
	if (w->pfd[1] >= 0)
		close(w->pfd[1]);
	free(w);
}

static int watcher_new(struct m2w_queue *q, const struct m2w_config *cfg,
		       const struct m2w_watch_cfg *wc, size_t n,
		       struct m2w_watcher **out, char *errbuf)
{
	struct m2w_watcher *w = calloc(1, sizeof(*w));
	size_t i;
	int rc;

	*out = NULL;
	if (!w || !(w->d = calloc(n ? n : 1, sizeof(*w->d)))) {
		free(w);
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	}
	w->q = q;
	w->cfg = cfg;
	w->ifd = w->pfd[0] = w->pfd[1] = -1;
	for (i = 0; i < n; i++) {
		if ((rc = dir_init(&w->d[i], &wc[i], errbuf)) != M2W_OK) {
			dir_release(&w->d[i]);
			watcher_free(w);
			return rc;
		}
		w->nd++;
	}
	*out = w;
	return M2W_OK;
}

int m2w_watch_start(struct m2w_queue *q, const struct m2w_config *cfg,
		    struct m2w_watcher **out, char *errbuf)
{
	struct m2w_watcher *w;
	size_t i;
	int rc, need_inotify = 0;

	*out = NULL;
	if (!cfg || !cfg->nwatches)
		return M2W_OK;
	if (!q)
		return m2w_fail(errbuf, M2W_EINVAL, "no store");
	if ((rc = watcher_new(q, cfg, cfg->watches, cfg->nwatches, &w,
			      errbuf)) != M2W_OK)
		return rc;
	if (pipe2(w->pfd, O_CLOEXEC | O_NONBLOCK) != 0) {
		rc = m2w_fail(errbuf, M2W_EIO, "pipe: %s", strerror(errno));
		watcher_free(w);
		return rc;
	}
	for (i = 0; i < w->nd; i++)
		if (!w->d[i].c->poll)
			need_inotify = 1;
	if (need_inotify &&
	    (w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		rc = m2w_fail(errbuf, M2W_EIO, "inotify: %s", strerror(errno));
		watcher_free(w);
		return rc;
	}
	for (i = 0; i < w->nd; i++) {
		struct wdir *d = &w->d[i];
		char pat[PATH_MAX];

		if (!d->c->poll) {
			d->wd = inotify_add_watch(w->ifd, d->path, IN_CLOSE_WRITE |
						  IN_MOVED_TO | IN_ONLYDIR);
			if (d->wd < 0) {
				rc = m2w_fail(errbuf, M2W_EIO, "[watch \"%s\"]: "
					      "inotify on %s: %s", d->c->name,
					      d->path, strerror(errno));
				watcher_free(w);
				return rc;
			}
		}
		m2w_log(M2W_LOG_INFO, "watch.start", "watch=%s type=%s path=%s "
			"processed=%s failed=%s pattern=%s mode=%s "
			"settle_ms=%lld poll_interval_ms=%lld", d->c->name,
			d->c->type, d->path, d->processed, d->failed,
			m2w_log_quote(pat, sizeof(pat), d->c->pattern ?
				      d->c->pattern : "*.csv"),
			d->c->poll ? "poll" : "inotify",
			(long long)d->c->settle_ms,
			(long long)d->c->poll_interval_ms);
	}
	if ((rc = pthread_create(&w->th, NULL, watch_main, w)) != 0) {
		rc = m2w_fail(errbuf, M2W_ENOMEM, "cannot start the watcher "
			      "thread: %s", strerror(rc));
		watcher_free(w);
		return rc;
	}
	w->started = 1;
	*out = w;
	return M2W_OK;
}

size_t m2w_watch_dirs(const struct m2w_watcher *w)
{
	return w ? w->nd : 0;
}

size_t m2w_watch_recent(struct m2w_watcher *w, size_t i,
			struct m2w_watch_file *out, const char **name,
			const char **path)
{
	struct wdir *d;
	size_t n, k;

	if (!w || i >= w->nd)
		return 0;
	d = &w->d[i];
	if (name)
		*name = d->c->name;
	if (path)
		*path = d->path;
	pthread_mutex_lock(&d->mu);
	n = d->nrecent < M2W_WATCH_RECENT ? d->nrecent : M2W_WATCH_RECENT;
	for (k = 0; k < n; k++)
		out[k] = d->recent[(d->nrecent - 1 - k) % M2W_WATCH_RECENT];
	pthread_mutex_unlock(&d->mu);
	return n;
}

void m2w_watch_halt(struct m2w_watcher *w)
{
	if (!w)
		return;
	__sync_fetch_and_add(&w->stop, 1);
	if (w->started) {
		ssize_t r = write(w->pfd[1], "x", 1);

		(void)r;
		pthread_join(w->th, NULL);
		w->started = 0;
	}
}

void m2w_watch_stop(struct m2w_watcher *w)
{
	m2w_watch_halt(w);
	if (w)
		watcher_free(w);
}

int m2w_watch_run_once(struct m2w_queue *q, const struct m2w_config *cfg,
		       const struct m2w_watch_cfg *wc, char *errbuf)
{
	struct m2w_watcher *w;
	struct wdir *d;
	size_t i;
	int rc, first = M2W_OK;

	if (!q || !wc)
		return m2w_fail(errbuf, M2W_EINVAL, "no store or section");
	if ((rc = watcher_new(q, cfg, wc, 1, &w, errbuf)) != M2W_OK)
		return rc;
	d = &w->d[0];
	scan(d, m2w_clock_mono_ms());
	for (i = 0; i < d->ncand; i++) {
		rc = take(w, d, d->cand[i].name);
		if (rc != M2W_OK && rc != M2W_ENOTFOUND && first == M2W_OK)
			first = m2w_fail(errbuf, rc, "%s: not taken (%s)",
					 d->cand[i].name, m2w_strerror(rc));
	}
	watcher_free(w);
	return first;
}
