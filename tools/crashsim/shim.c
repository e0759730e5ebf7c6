/*
 * shim.c - libcrashsim.so, an LD_PRELOAD library that records what a
 * process does to the files under $CRASHSIM_DIRS (colon-separated), so
 * that tools/crashsim/replay can build what a power cut at any point could
 * leave on disk (tests/powerloss.sh; the model is in replay.c).
 *
 * Intercepted: open, open64, __open_2, __open64_2, openat, openat64,
 * creat (the fd's file identity, whether it is O_DSYNC/O_SYNC and traced),
 * write, pwrite, pwrite64, writev, pwritev, pwritev64 (the bytes and where
 * they went: lseek(fd, 0, SEEK_CUR) or the size for O_APPEND), ftruncate,
 * fsync, fdatasync, rename, renameat, renameat2, link, linkat, unlink,
 * unlinkat, mkdir, mkdirat, rmdir, close, dup, dup2, dup3 (not fcntl's
 * F_DUPFD: nothing traced here uses it). sync_file_range and msync are not
 * syncs in this model (they flush no metadata, no disk cache; LMDB without
 * MDB_WRITEMAP uses neither). lock.mdb is never traced: LMDB rebuilds its
 * reader table at open. glibc's stdio writes with an internal write that
 * no preload sees; nothing of ours writes a traced file through stdio.
 *
 * Each record is one write to $CRASHSIM_TRACE/t.PID (trace.h). Seqs come
 * from the shared counter $CRASHSIM_SEQ: a write takes its seq before the
 * real call (from then on its bytes may be on disk), a sync after it
 * returns (a cut may fall while it runs). A mutex per process keeps the
 * offset of a write and its record together.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "trace.h"

#define MAXFD 65536
#define MAXDIRS 16

struct fdinfo {
	unsigned char traced, dsync, append;
	uint64_t dev, ino;
};

static struct {
	int (*open)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
	int (*ftruncate)(int, off_t);
	int (*fsync)(int);
	int (*fdatasync)(int);
	int (*renameat2)(int, const char *, int, const char *, unsigned);
	int (*renameat)(int, const char *, int, const char *);
	int (*linkat)(int, const char *, int, const char *, int);
	int (*unlinkat)(int, const char *, int);
	int (*mkdirat)(int, const char *, mode_t);
	int (*close)(int);
} real;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct fdinfo *fds;
static char dirs[MAXDIRS][PATH_MAX];
static int ndirs;
static char trace_dir[PATH_MAX];
static volatile uint64_t *ctr;
static int tfd = -1;
static pid_t tpid;

static void init(void)
{
	const char *d = getenv("CRASHSIM_DIRS"), *t = getenv("CRASHSIM_TRACE");
	const char *s = getenv("CRASHSIM_SEQ");
	char buf[PATH_MAX], *p, *save = NULL;

#define SYM(n) real.n = dlsym(RTLD_NEXT, #n)
	SYM(open); SYM(openat); SYM(write); SYM(pwrite); SYM(writev);
	SYM(pwritev); SYM(ftruncate); SYM(fsync); SYM(fdatasync);
	SYM(renameat2); SYM(renameat); SYM(linkat); SYM(unlinkat);
	SYM(mkdirat); SYM(close);
#undef SYM
	if (!d || !t || !s)
		return;
	snprintf(buf, sizeof(buf), "%s", d);
	for (p = strtok_r(buf, ":", &save); p && ndirs < MAXDIRS;
	     p = strtok_r(NULL, ":", &save))
		if (realpath(p, dirs[ndirs]))
			ndirs++;
	snprintf(trace_dir, sizeof(trace_dir), "%s", t);
	int fd = real.open(s, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
			       fd, 0);
		if (m != MAP_FAILED)
			ctr = m;
		real.close(fd);
	}
	fds = calloc(MAXFD, sizeof(*fds));
	if (!ctr || !fds)
		ndirs = 0;
}

static int on(void)
{
	pthread_once(&once, init);
	return ndirs > 0;
}

/* dirfd/path -> the canonical directory it is in (out) and its last name
 * (*base). 0 when under a traced dir (lock.mdb never is), else -1. */
static int resolve(int dirfd, const char *path, char *out, const char **base)
{
	char full[PATH_MAX * 2], dirp[PATH_MAX * 2], lnk[64];
	size_t n;
	char *slash;
	int i;

	if (!path || !*path)
		return -1;
	if (path[0] == '/') {
		snprintf(full, sizeof(full), "%s", path);
	} else {
		char cwd[PATH_MAX];
		ssize_t r;

		if (dirfd == AT_FDCWD) {
			if (!getcwd(cwd, sizeof(cwd)))
				return -1;
		} else {
			snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", dirfd);
			if ((r = readlink(lnk, cwd, sizeof(cwd) - 1)) < 0)
				return -1;
			cwd[r] = '\0';
		}
		snprintf(full, sizeof(full), "%s/%s", cwd, path);
	}
	n = strlen(full);
	while (n > 1 && full[n - 1] == '/')
		full[--n] = '\0';
	slash = strrchr(full, '/');
	snprintf(dirp, sizeof(dirp), "%.*s", slash == full ? 1 :
		 (int)(slash - full), full);
	if (!realpath(dirp, out))
		return -1;
	/* the base name as given, without trailing slashes */
	static __thread char b[NAME_MAX + 1];
	snprintf(b, sizeof(b), "%s", slash + 1);
	*base = b;
	if (strcmp(b, "lock.mdb") == 0 || !strcmp(b, ".") || !strcmp(b, ".."))
		return -1;
	for (i = 0; i < ndirs; i++) {
		size_t l = strlen(dirs[i]);
		char whole[PATH_MAX * 2 + 2];

		snprintf(whole, sizeof(whole), "%s/%s", out, b);
		if (strncmp(whole, dirs[i], l) == 0 &&
		    (whole[l] == '/' || whole[l] == '\0'))
			return 0;
	}
	return -1;
}

static void emit(struct cs_rec *r, const char *n1, const char *n2,
		 const struct iovec *data, int ndata)
{
	struct iovec v[3 + 64];
	int k = 0, i;
	pid_t pid = getpid();

	if (tfd < 0 || tpid != pid) {
		char p[PATH_MAX + 32];

		snprintf(p, sizeof(p), "%s/t.%ld", trace_dir, (long)pid);
		tfd = real.open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				0644);
		tpid = pid;
		if (tfd < 0)
			return;
	}
	r->pid = (uint32_t)pid;
	r->n1 = n1 ? (uint32_t)strlen(n1) : 0;
	r->n2 = n2 ? (uint32_t)strlen(n2) : 0;
	v[k].iov_base = r; v[k++].iov_len = sizeof(*r);
	if (r->n1) { v[k].iov_base = (void *)n1; v[k++].iov_len = r->n1; }
	if (r->n2) { v[k].iov_base = (void *)n2; v[k++].iov_len = r->n2; }
	for (i = 0; i < ndata && i < 64; i++)
		v[k++] = data[i];
	size_t want = 0;
	for (i = 0; i < k; i++)
		want += v[i].iov_len;
	if (real.writev(tfd, v, k) != (ssize_t)want) {
		static const char msg[] = "crashsim: cannot write the trace\n";
		real.write(2, msg, sizeof(msg) - 1);
		abort();
	}
}

static int dir_ids(const char *dir, uint64_t *dev, uint64_t *ino)
{
	struct stat st;

	if (stat(dir, &st) != 0)
		return -1;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

/* ----------------------------------------------------------- open */

static int after_open(int fd, int dirfd, const char *path, int flags,
		      int existed, const char *dir, const char *base)
{
	struct stat st;
	struct cs_rec r;

	if (fd < 0 || fd >= MAXFD || fstat(fd, &st) != 0)
		return fd;
	memset(&fds[fd], 0, sizeof(fds[fd]));
	fds[fd].traced = 1;
	fds[fd].dsync = (flags & (O_DSYNC | O_SYNC)) != 0;
	fds[fd].append = (flags & O_APPEND) != 0;
	fds[fd].dev = st.st_dev;
	fds[fd].ino = st.st_ino;
	(void)dirfd; (void)path;
	memset(&r, 0, sizeof(r));
	r.dev = st.st_dev;
	r.ino = st.st_ino;
	if (!existed) {
		r.type = CS_CREATE;
		if (dir_ids(dir, &r.ddev, &r.dino) != 0)
			return fd;
		pthread_mutex_lock(&mu);
		r.seq = cs_next_seq(ctr);
		emit(&r, base, NULL, NULL, 0);
		pthread_mutex_unlock(&mu);
	} else if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
		r.type = CS_TRUNC;
		r.off = 0;
		pthread_mutex_lock(&mu);
		r.seq = cs_next_seq(ctr);
		emit(&r, NULL, NULL, NULL, 0);
		pthread_mutex_unlock(&mu);
	}
	return fd;
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode)
{
	char dir[PATH_MAX];
	const char *base;
	struct stat st;
	int traced, existed, fd;

	if (!on())
		return real.openat(dirfd, path, flags, mode);
	traced = resolve(dirfd, path, dir, &base) == 0;
	existed = !traced || fstatat(dirfd, path, &st, 0) == 0;
	fd = real.openat(dirfd, path, flags, mode);
	if (fd >= 0 && fd < MAXFD)
		fds[fd].traced = 0;
	if (traced)
		fd = after_open(fd, dirfd, path, flags, existed, dir, base);
	return fd;
}

static mode_t va_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE
		       ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = va_mode(flags, ap);
	va_end(ap);
	return do_open(AT_FDCWD, path, flags, m);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = va_mode(flags, ap);
	va_end(ap);
	return do_open(AT_FDCWD, path, flags, m);
}

int __open_2(const char *path, int flags)
{
	return do_open(AT_FDCWD, path, flags, 0);
}

int __open64_2(const char *path, int flags)
{
	return do_open(AT_FDCWD, path, flags, 0);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = va_mode(flags, ap);
	va_end(ap);
	return do_open(dirfd, path, flags, m);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = va_mode(flags, ap);
	va_end(ap);
	return do_open(dirfd, path, flags, m);
}

int creat(const char *path, mode_t mode)
{
	return do_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode)
{
	return do_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

int close(int fd)
{
	if (on() && fd >= 0 && fd < MAXFD)
		fds[fd].traced = 0;
	return real.close(fd);
}

/* ---------------------------------------------------------- writes */

static int traced_fd(int fd)
{
	return on() && fd >= 0 && fd < MAXFD && fds[fd].traced;
}

/* A write of iov at off (-1: the fd's position, or its end for
 * O_APPEND). The real call runs under mu, after the seq is taken. */
static ssize_t rec_write(int fd, const struct iovec *iov, int n, off_t off,
			 ssize_t (*call)(int, const struct iovec *, int, off_t))
{
	struct cs_rec r;
	struct stat st;
	ssize_t got;
	int dsync = fds[fd].dsync;

	if (n > 64) {   /* LMDB writes at most 64 pages a call */
		static const char msg[] = "crashsim: writev of over 64 iovecs\n";

		real.write(2, msg, sizeof(msg) - 1);
		abort();
	}
	pthread_mutex_lock(&mu);
	memset(&r, 0, sizeof(r));
	r.type = CS_WRITE;
	r.dev = fds[fd].dev;
	r.ino = fds[fd].ino;
	r.flags = dsync ? CS_DSYNC : 0;
	if (off >= 0)
		r.off = off;
	else if (fds[fd].append && fstat(fd, &st) == 0)
		r.off = st.st_size;
	else
		r.off = lseek(fd, 0, SEEK_CUR);
	r.seq = cs_next_seq(ctr);
	got = call(fd, iov, n, off);
	if (got > 0) {
		/* only the bytes written */
		struct iovec v[64];
		size_t left = (size_t)got;
		int k;

		for (k = 0; k < n && k < 64 && left; k++) {
			v[k] = iov[k];
			if (v[k].iov_len > left)
				v[k].iov_len = left;
			left -= v[k].iov_len;
		}
		r.len = (uint64_t)got - left;
		emit(&r, NULL, NULL, v, k);
		if (dsync) {
			struct cs_rec d = r;

			d.type = CS_DSYNC_DONE;
			d.off = (int64_t)r.seq;
			d.len = 0;
			d.flags = 0;
			d.seq = cs_next_seq(ctr);
			emit(&d, NULL, NULL, NULL, 0);
		}
	}
	pthread_mutex_unlock(&mu);
	return got;
}

static ssize_t c_write(int fd, const struct iovec *v, int n, off_t off)
{
	(void)n; (void)off;
	return real.write(fd, v[0].iov_base, v[0].iov_len);
}

static ssize_t c_pwrite(int fd, const struct iovec *v, int n, off_t off)
{
	(void)n;
	return real.pwrite(fd, v[0].iov_base, v[0].iov_len, off);
}

static ssize_t c_writev(int fd, const struct iovec *v, int n, off_t off)
{
	(void)off;
	return real.writev(fd, v, n);
}

static ssize_t c_pwritev(int fd, const struct iovec *v, int n, off_t off)
{
	return real.pwritev(fd, v, n, off);
}

ssize_t write(int fd, const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };

	if (!traced_fd(fd))
		return real.write(fd, buf, len);
	return rec_write(fd, &v, 1, -1, c_write);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	struct iovec v = { (void *)buf, len };

	if (!traced_fd(fd))
		return real.pwrite(fd, buf, len, off);
	return rec_write(fd, &v, 1, off, c_pwrite);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	return pwrite(fd, buf, len, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	if (!traced_fd(fd))
		return real.writev(fd, iov, n);
	return rec_write(fd, iov, n, -1, c_writev);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	if (!traced_fd(fd))
		return real.pwritev(fd, iov, n, off);
	return rec_write(fd, iov, n, off, c_pwritev);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	return pwritev(fd, iov, n, off);
}

int ftruncate(int fd, off_t len)
{
	struct cs_rec r;
	int rc;

	if (!traced_fd(fd))
		return real.ftruncate(fd, len);
	pthread_mutex_lock(&mu);
	memset(&r, 0, sizeof(r));
	r.type = CS_TRUNC;
	r.dev = fds[fd].dev;
	r.ino = fds[fd].ino;
	r.off = len;
	r.seq = cs_next_seq(ctr);
	rc = real.ftruncate(fd, len);
	if (rc == 0)
		emit(&r, NULL, NULL, NULL, 0);
	pthread_mutex_unlock(&mu);
	return rc;
}

int ftruncate64(int fd, off_t len)
{
	return ftruncate(fd, len);
}

static int rec_sync(int fd, int (*call)(int))
{
	struct cs_rec r;
	int rc = call(fd);

	if (rc != 0)
		return rc;
	memset(&r, 0, sizeof(r));
	r.type = CS_SYNC;
	r.dev = fds[fd].dev;
	r.ino = fds[fd].ino;
	pthread_mutex_lock(&mu);
	r.seq = cs_next_seq(ctr);
	emit(&r, NULL, NULL, NULL, 0);
	pthread_mutex_unlock(&mu);
	return 0;
}

int fsync(int fd)
{
	if (!traced_fd(fd))
		return real.fsync(fd);
	return rec_sync(fd, real.fsync);
}

int fdatasync(int fd)
{
	if (!traced_fd(fd))
		return real.fdatasync(fd);
	return rec_sync(fd, real.fdatasync);
}

/* ------------------------------------------------------- namespace */

/* The seq of a namespace change is taken before the real call; the
 * record is written only when it succeeded. */
static int ns_op(int type, int fd1, const char *p1, int fd2, const char *p2,
		 unsigned flags, int (*call)(void *), void *arg)
{
	char d1[PATH_MAX], d2[PATH_MAX];
	const char *b1 = NULL, *b2 = NULL;
	char n1[NAME_MAX + 1], n2[NAME_MAX + 1] = "";
	struct cs_rec r;
	struct stat st;
	int t1, t2 = -1, rc;

	if (!on())
		return call(arg);
	t1 = resolve(fd1, p1, d1, &b1) == 0;
	if (b1)
		snprintf(n1, sizeof(n1), "%s", b1);
	if (p2) {
		t2 = resolve(fd2, p2, d2, &b2) == 0;
		if (b2)
			snprintf(n2, sizeof(n2), "%s", b2);
	}
	if (!t1 && t2 != 1)
		return call(arg);
	memset(&r, 0, sizeof(r));
	r.type = type;
	r.flags = flags;
	if (type != CS_CREATE) {
		if (fstatat(fd1, p1, &st, AT_SYMLINK_NOFOLLOW) != 0)
			return call(arg);
		r.dev = st.st_dev;
		r.ino = st.st_ino;
	}
	if (t1)
		dir_ids(d1, &r.ddev, &r.dino);
	if (t2 == 1)
		dir_ids(d2, &r.ddev2, &r.dino2);
	pthread_mutex_lock(&mu);
	r.seq = cs_next_seq(ctr);
	rc = call(arg);
	if (rc == 0) {
		if (type == CS_CREATE && fstatat(fd1, p1, &st,
						 AT_SYMLINK_NOFOLLOW) == 0) {
			r.dev = st.st_dev;
			r.ino = st.st_ino;
		}
		emit(&r, t1 ? n1 : NULL, t2 == 1 ? n2 : NULL, NULL, 0);
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

struct args {
	int fd1, fd2, flags;
	const char *p1, *p2;
	mode_t mode;
};

static int c_rename(void *x)
{
	struct args *a = x;

	if (a->flags)
		return real.renameat2(a->fd1, a->p1, a->fd2, a->p2,
				      (unsigned)a->flags);
	return real.renameat(a->fd1, a->p1, a->fd2, a->p2);
}

static int c_link(void *x)
{
	struct args *a = x;

	return real.linkat(a->fd1, a->p1, a->fd2, a->p2, a->flags);
}

static int c_unlink(void *x)
{
	struct args *a = x;

	return real.unlinkat(a->fd1, a->p1, a->flags);
}

static int c_mkdir(void *x)
{
	struct args *a = x;

	return real.mkdirat(a->fd1, a->p1, a->mode);
}

int renameat2(int fd1, const char *p1, int fd2, const char *p2,
	      unsigned flags)
{
	struct args a = { fd1, fd2, (int)flags, p1, p2, 0 };

	return ns_op(CS_RENAME, fd1, p1, fd2, p2, 0, c_rename, &a);
}

int renameat(int fd1, const char *p1, int fd2, const char *p2)
{
	return renameat2(fd1, p1, fd2, p2, 0);
}

int rename(const char *p1, const char *p2)
{
	return renameat2(AT_FDCWD, p1, AT_FDCWD, p2, 0);
}

int linkat(int fd1, const char *p1, int fd2, const char *p2, int flags)
{
	struct args a = { fd1, fd2, flags, p1, p2, 0 };

	return ns_op(CS_LINK, fd1, p1, fd2, p2, 0, c_link, &a);
}

int link(const char *p1, const char *p2)
{
	return linkat(AT_FDCWD, p1, AT_FDCWD, p2, 0);
}

int unlinkat(int fd, const char *p, int flags)
{
	struct args a = { fd, 0, flags, p, NULL, 0 };

	return ns_op(CS_UNLINK, fd, p, 0, NULL, 0, c_unlink, &a);
}

int unlink(const char *p)
{
	return unlinkat(AT_FDCWD, p, 0);
}

int rmdir(const char *p)
{
	return unlinkat(AT_FDCWD, p, AT_REMOVEDIR);
}

int mkdirat(int fd, const char *p, mode_t mode)
{
	struct args a = { fd, 0, 0, p, NULL, mode };

	return ns_op(CS_CREATE, fd, p, 0, NULL, CS_DIR, c_mkdir, &a);
}

int mkdir(const char *p, mode_t mode)
{
	return mkdirat(AT_FDCWD, p, mode);
}

/* ------------------------------------------------------------- dup */

static int dup_to(int from, int to)
{
	if (to >= 0 && to < MAXFD)
		fds[to] = from >= 0 && from < MAXFD ? fds[from]
						    : (struct fdinfo){ 0 };
	return to;
}

int dup(int fd)
{
	static int (*r)(int);

	r = r ? r : dlsym(RTLD_NEXT, "dup");
	if (!on())
		return r(fd);
	return dup_to(fd, r(fd));
}

int dup2(int fd, int to)
{
	static int (*r)(int, int);

	r = r ? r : dlsym(RTLD_NEXT, "dup2");
	if (!on())
		return r(fd, to);
	return dup_to(fd, r(fd, to));
}

int dup3(int fd, int to, int flags)
{
	static int (*r)(int, int, int);

	r = r ? r : dlsym(RTLD_NEXT, "dup3");
	if (!on())
		return r(fd, to, flags);
	return dup_to(fd, r(fd, to, flags));
}
