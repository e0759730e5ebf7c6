/*
 * bench.c - throughput and latency numbers for m2worker's queue store.
 *
 * Usage: bench [-d DIR] [-n N] [-q] [--only NAME[,NAME...]]
 *
 * This program prints numbers; it never passes or fails on them (it exits 1
 * only when a call it makes fails). Every measurement runs in the same
 * process, on the same disk, one after the other, each in a fresh store
 * directory under one temporary directory (./bench.XXXXXX by default, or
 * DIR/bench.XXXXXX with -d), which is removed at the end.
 *
 * What is measured, and why:
 *
 *   raw-single   Raw LMDB, one 200-byte put per fsync'd commit. The floor
 *                cost of one durable commit on this disk: nothing built on
 *                LMDB can do one durable change faster.
 *   raw-batch    Raw LMDB, 1000 puts per commit. The ceiling for bulk
 *                writes when the fsync is amortised.
 *   m2w-single   m2w_queue_enqueue of one task per call (one thread). Its
 *                ratio to raw-single is the library's own overhead per
 *                durable commit (encoding, indexes, JSON validation). Target:
 *                >= 0.80 of raw-single. The two run interleaved, 50 commits
 *                at a time, so that disk drift hits both alike.
 *   m2w-batch    m2w_queue_enqueue of 1000 tasks per call: the bulk import
 *                path (3PL files). Target: >= 100,000 tasks/s.
 *   lease-ack    Drain a pre-filled store with 1, 4 and 16 worker threads,
 *                each looping lease(max 16) + one settle(ACK) for all it got.
 *                Shows that group commit merges the threads' fsyncs. Target
 *                at 16 threads: >= 20,000 tasks/s and >= 3x beanstalkd.
 *   lease-depth  Time of a lease(max 1) call on a shallow and on a deep
 *                queue (only the lease calls are timed). Leasing must find
 *                the next ready task through an index, not by scanning:
 *                target deep/shallow <= 2.0.
 *   beanstalkd   When beanstalkd is in PATH: the same single put and drain
 *                (reserve + delete) against beanstalkd with a binlog and
 *                fsync after every write (-f 0), as a reference point for a
 *                well-known durable queue on the same machine.
 *
 * All times come from clock_gettime(CLOCK_MONOTONIC). Filling a store before
 * a measurement is never timed. Numbers on tmpfs (or with a disk cache that
 * ignores flushes) say nothing about fsync cost; the header line shows the
 * filesystem so the reader can judge.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "m2worker/admin.h"
#include "m2worker/error.h"
#include "m2worker/queue.h"
#include "net.h"

#define VALUE_SIZE 200          /* bytes of a raw LMDB value / beanstalk job */
#define BATCH 1000              /* records or tasks per batched commit */
#define LEASE_MAX 16            /* tasks per lease call in lease-ack */
#define LEASE_MS 60000
#define MIB ((size_t)1 << 20)

/* ------------------------------------------------------------ settings */

struct config {
	const char *dir;        /* -d: parent of the temporary directory */
	long n_single;          /* commits / calls / puts one at a time */
	long n_batches;         /* batched commits of BATCH records */
	long lease_fill;        /* tasks drained by lease-ack */
	long depth_shallow;     /* ready tasks in the shallow store */
	long depth_deep;        /* ready tasks in the deep store */
	long depth_cycles;      /* timed lease+ack cycles per store */
	long bs_fill;           /* jobs drained from beanstalkd */
	int quick;
	const char *only;       /* comma list of measurement names, or NULL */
};

static const char *const names[] = {
	"raw-single", "raw-batch", "m2w-single", "m2w-batch",
	"lease-ack", "lease-depth", "beanstalkd", NULL
};

/* Results for the ratios section; < 0 means "not measured". */
struct results {
	double raw_single, raw_batch, m2w_single, m2w_batch;
	double lease_ack[3];            /* 1, 4, 16 threads, tasks/s */
	double us_shallow, us_deep;     /* µs per lease call */
	double us_shallow_ns, us_deep_ns; /* the same without fsync */
	double bs_put, bs_drain1, bs_drain4;
};

static const int lease_threads[3] = { 1, 4, 16 };

static void results_init(struct results *r)
{
	int i;

	r->raw_single = r->raw_batch = r->m2w_single = r->m2w_batch = -1;
	for (i = 0; i < 3; i++)
		r->lease_ack[i] = -1;
	r->us_shallow = r->us_deep = -1;
	r->us_shallow_ns = r->us_deep_ns = -1;
	r->bs_put = r->bs_drain1 = r->bs_drain4 = -1;
}

/* ------------------------------------------------- cleanup and dying */

static char g_base[PATH_MAX];     /* our temporary directory, "" if none */
static volatile pid_t g_child;    /* beanstalkd, 0 if none */

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb; (void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void stop_child(void)
{
	pid_t pid = g_child;

	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		g_child = 0;
	}
}

static void cleanup(void)
{
	stop_child();
	if (g_base[0]) {
		rm_rf(g_base);
		g_base[0] = '\0';
	}
}

static void on_signal(int sig)
{
	/* Only async-signal-safe calls: the temp dir is left behind. */
	if (g_child > 0)
		kill(g_child, SIGTERM);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void check_m2w(int rc, const char *what, const char *errbuf)
{
	if (rc != M2W_OK)
		die("%s: %s: %s", what, m2w_strerror(rc), errbuf);
}

static void check_mdb(int rc, const char *what)
{
	if (rc != MDB_SUCCESS)
		die("%s: %s", what, mdb_strerror(rc));
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* ------------------------------------------------------------- helpers */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int selected(const struct config *c, const char *name)
{
	size_t len = strlen(name);
	const char *p = c->only;

	if (!p)
		return 1;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n == len && strncmp(p, name, len) == 0)
			return 1;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* A fresh, not yet existing path under the temp dir: g_base/NAME. */
static void store_path(char *out, size_t cap, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", g_base, name);

	if (n < 0 || (size_t)n >= cap)
		die("path too long: %s/%s", g_base, name);
	rm_rf(out);
}

/* Fill progress on stderr: updated in place on a terminal, else one line. */
static void progress(const char *what, long done, long total)
{
	static int tty = -1;

	if (tty < 0)
		tty = isatty(STDERR_FILENO);
	if (tty)
		fprintf(stderr, "\r  %s: %ld/%ld%s", what, done, total,
			done == total ? "\n" : "");
	else if (done == total)
		fprintf(stderr, "  %s: %ld done\n", what, total);
	fflush(stderr);
}

/* ------------------------------------------------------------ the table */

static void print_header(void)
{
	printf("%-30s %12s %10s %14s %12s\n", "name", "operations", "seconds",
	       "ops/s", "us/op");
	printf("%-30s %12s %10s %14s %12s\n", "----", "----------", "-------",
	       "-----", "-----");
	fflush(stdout);
}

/* Prints one row and returns ops/s. */
static double print_row(const char *name, double ops, double secs)
{
	double rate = secs > 0 ? ops / secs : 0;
	double us = ops > 0 ? secs * 1e6 / ops : 0;

	printf("%-30s %12.0f %10.3f %14.0f %12.1f\n", name, ops, secs, rate, us);
	fflush(stdout);
	return rate;
}

/* ----------------------------------------------------------- machine */

static const char *fs_name(unsigned long type)
{
	switch (type) {
	case 0xEF53: return "ext2/3/4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x01021994: return "tmpfs";
	case 0x794c7630: return "overlayfs";
	case 0x2fc12fc1: return "zfs";
	case 0x6969: return "nfs";
	case 0xF15F: return "ecryptfs";
	case 0x65735546: return "fuse";
	default: return "?";
	}
}

/* Longest mount point of /proc/mounts that is a prefix of `path`. */
static void mount_of(const char *path, char *dev, char *type, size_t cap)
{
	FILE *f = fopen("/proc/mounts", "r");
	char line[4096], d[1024], m[1024], t[128];
	size_t best = 0;

	snprintf(dev, cap, "?");
	snprintf(type, cap, "?");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		size_t ml;

		if (sscanf(line, "%1023s %1023s %127s", d, m, t) != 3)
			continue;
		ml = strlen(m);
		if (strncmp(path, m, ml) != 0)
			continue;
		if (!(path[ml] == '/' || path[ml] == '\0' || ml == 1))
			continue;
		if (ml >= best) {
			best = ml;
			snprintf(dev, cap, "%s", d);
			snprintf(type, cap, "%s", t);
		}
	}
	fclose(f);
}

static void print_beanstalkd_version(void)
{
	FILE *p = popen("beanstalkd -v 2>&1", "r");
	char line[256];

	if (!p)
		return;
	if (fgets(line, sizeof line, p)) {
		line[strcspn(line, "\r\n")] = '\0';
		printf("beanstalkd: %s\n", line);
	}
	pclose(p);
}

static int in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n > 0 && n + strlen(prog) + 2 < sizeof buf) {
			memcpy(buf, path, n);
			buf[n] = '/';
			strcpy(buf + n + 1, prog);
			if (access(buf, X_OK) == 0)
				return 1;
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return 0;
}

static void print_machine(const struct config *c, int have_bs)
{
	struct utsname u;
	struct statfs sf;
	char real[PATH_MAX], dev[1024], type[1024];

	if (uname(&u) == 0)
		printf("machine: %s %s %s\n", u.sysname, u.release, u.machine);
	printf("cpus: %ld online\n", sysconf(_SC_NPROCESSORS_ONLN));
	if (!realpath(g_base, real))
		snprintf(real, sizeof real, "%s", g_base);
	mount_of(real, dev, type, sizeof dev);
	if (statfs(g_base, &sf) == 0)
		printf("dir: %s (f_type 0x%lx %s; mount %s %s)\n", real,
		       (unsigned long)sf.f_type,
		       fs_name((unsigned long)sf.f_type), type, dev);
	else
		printf("dir: %s (mount %s %s)\n", real, type, dev);
	if (statfs(g_base, &sf) == 0 && (unsigned long)sf.f_type == 0x01021994)
		printf("WARNING: tmpfs: fsync costs nothing here; these numbers "
		       "do not predict a real disk\n");
	printf("mode: %s; N=%ld, batches=%ld, lease fill=%ld, depth %ld vs %ld "
	       "(%ld cycles), beanstalkd fill=%ld\n",
	       c->quick ? "quick" : "full", c->n_single, c->n_batches,
	       c->lease_fill, c->depth_shallow, c->depth_deep, c->depth_cycles,
	       c->bs_fill);
	if (have_bs)
		print_beanstalkd_version();
	printf("\n");
}

/* ------------------------------------------------------------ raw LMDB */

static void raw_open(const char *path, MDB_env **env, MDB_dbi *dbi)
{
	MDB_txn *txn;

	if (mkdir(path, 0755) != 0)
		die("mkdir %s: %s", path, strerror(errno));
	check_mdb(mdb_env_create(env), "mdb_env_create");
	check_mdb(mdb_env_set_mapsize(*env, (size_t)1024 * MIB),
		  "mdb_env_set_mapsize");
	check_mdb(mdb_env_set_maxdbs(*env, 4), "mdb_env_set_maxdbs");
	check_mdb(mdb_env_open(*env, path, 0, 0644), "mdb_env_open");
	check_mdb(mdb_txn_begin(*env, NULL, 0, &txn), "mdb_txn_begin");
	check_mdb(mdb_dbi_open(txn, "bench", MDB_CREATE, dbi), "mdb_dbi_open");
	check_mdb(mdb_txn_commit(txn), "mdb_txn_commit");
}

static void be64(unsigned char *out, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		out[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

struct raw {
	MDB_env *env;
	MDB_dbi dbi;
	uint64_t key;                   /* next key, increasing */
	char path[PATH_MAX];
};

static void raw_begin(struct raw *w, const char *name)
{
	store_path(w->path, sizeof w->path, name);
	raw_open(w->path, &w->env, &w->dbi);
	w->key = 1;
}

static void raw_end(struct raw *w)
{
	mdb_env_close(w->env);
	rm_rf(w->path);
}

/* Puts `per_txn` records per committed transaction, `ntxn` times; secs. */
static double raw_commits(struct raw *w, long ntxn, long per_txn)
{
	unsigned char kbuf[8], vbuf[VALUE_SIZE];
	double t0, t1;
	long i, j;

	memset(vbuf, 'v', sizeof vbuf);
	t0 = now_s();
	for (i = 0; i < ntxn; i++) {
		MDB_txn *txn;

		check_mdb(mdb_txn_begin(w->env, NULL, 0, &txn),
			  "mdb_txn_begin");
		for (j = 0; j < per_txn; j++) {
			MDB_val k = { sizeof kbuf, kbuf };
			MDB_val v = { sizeof vbuf, vbuf };

			be64(kbuf, w->key++);
			check_mdb(mdb_put(txn, w->dbi, &k, &v, 0), "mdb_put");
		}
		check_mdb(mdb_txn_commit(txn), "mdb_txn_commit");
	}
	t1 = now_s();
	return t1 - t0;
}

static void bench_raw_batch(const struct config *c, struct results *r)
{
	struct raw w;
	double secs;

	raw_begin(&w, "raw-batch");
	secs = raw_commits(&w, c->n_batches, BATCH);
	raw_end(&w);
	r->raw_batch = print_row("raw-batch (records)",
				 (double)c->n_batches * BATCH, secs);
}

/* ------------------------------------------------------------- m2worker */

#define PAYLOAD_CAP 256

static struct m2w_queue *store_open_ex(const char *path, int nosync)
{
	struct m2w_queue_opts o;
	struct m2w_queue *q = NULL;
	char errbuf[M2W_ERRBUF_SIZE] = "";

	memset(&o, 0, sizeof o);
	o.path = path;
	o.create = 1;
	o.nosync = nosync;
	o.map_initial = 256 * MIB;
#if SIZE_MAX > 0xffffffffu
	o.map_max = (size_t)8192 * MIB;
#else
	o.map_max = (size_t)3072 * MIB;
#endif
	check_m2w(m2w_queue_open(&o, &q, errbuf), "m2w_queue_open", errbuf);
	return q;
}

static struct m2w_queue *store_open(const char *path)
{
	return store_open_ex(path, 0);
}

static void store_close(struct m2w_queue *q, const char *path)
{
	m2w_queue_close(q);
	rm_rf(path);
}

/* A ~200-byte JSON object, shaped like a 3PL tracking line; returns length. */
static size_t make_payload(char *buf, uint64_t seq)
{
	int n = snprintf(buf, PAYLOAD_CAP,
			 "{\"order\":\"%010" PRIu64 "\",\"track\":\"1Z999AA1%010"
			 PRIu64 "\",\"carrier\":\"ups\",\"title\":\"UPS\","
			 "\"pad\":\"", 1000000000u + seq, seq);
	size_t len = (size_t)n;

	while (len < VALUE_SIZE - 2)
		buf[len++] = 'x';
	buf[len++] = '"';
	buf[len++] = '}';
	buf[len] = '\0';
	return len;
}

/* Enqueue buffers for one batch; payloads are copied by the library. */
struct batch {
	struct m2w_new_task *tasks;
	char *payloads;                 /* BATCH * PAYLOAD_CAP */
};

static void batch_init(struct batch *b)
{
	b->tasks = xmalloc(sizeof *b->tasks * BATCH);
	b->payloads = xmalloc((size_t)PAYLOAD_CAP * BATCH);
}

static void batch_free(struct batch *b)
{
	free(b->tasks);
	free(b->payloads);
}

/* Fills b with n tasks numbered from *seq, and enqueues them. */
static void enqueue_batch(struct m2w_queue *q, struct batch *b, size_t n,
			  uint64_t *seq)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	size_t i;

	memset(b->tasks, 0, sizeof *b->tasks * n);
	for (i = 0; i < n; i++) {
		char *p = b->payloads + i * PAYLOAD_CAP;

		b->tasks[i].type = "bench";
		b->tasks[i].payload = p;
		b->tasks[i].payload_len = make_payload(p, (*seq)++);
	}
	check_m2w(m2w_queue_enqueue(q, b->tasks, n, errbuf),
		  "m2w_queue_enqueue", errbuf);
}

/* Not timed: puts `total` ready tasks into q in batches of BATCH. */
static void fill_store(struct m2w_queue *q, long total, const char *label)
{
	struct batch b;
	uint64_t seq = 0;
	long done = 0;

	batch_init(&b);
	while (done < total) {
		size_t n = (size_t)(total - done < BATCH ? total - done : BATCH);

		enqueue_batch(q, &b, n, &seq);
		done += (long)n;
		if (done % 50000 == 0 || done == total)
			progress(label, done, total);
	}
	batch_free(&b);
}

/*
 * raw-single and m2w-single, interleaved in chunks of SINGLE_CHUNK commits
 * when both are selected, so that a disk whose speed drifts during the run
 * (cloud volumes, writeback of an earlier test) weighs on both sides alike:
 * their ratio is the number that matters. Each has its own fresh store;
 * only its own chunks count towards its time.
 */
#define SINGLE_CHUNK 50

static void bench_singles(const struct config *c, struct results *r,
			  int do_raw, int do_m2w)
{
	char path[PATH_MAX];
	struct m2w_queue *q = NULL;
	struct raw w;
	struct batch b;
	uint64_t seq = 0;
	double raw_secs = 0, m2w_secs = 0;
	long done = 0, i;

	if (do_raw)
		raw_begin(&w, "raw-single");
	if (do_m2w) {
		store_path(path, sizeof path, "m2w-single");
		q = store_open(path);
		batch_init(&b);
	}
	while (done < c->n_single) {
		long k = c->n_single - done < SINGLE_CHUNK ?
			 c->n_single - done : SINGLE_CHUNK;

		if (do_raw)
			raw_secs += raw_commits(&w, k, 1);
		if (do_m2w) {
			double t0 = now_s();

			for (i = 0; i < k; i++)
				enqueue_batch(q, &b, 1, &seq);
			m2w_secs += now_s() - t0;
		}
		done += k;
	}
	if (do_raw) {
		raw_end(&w);
		r->raw_single = print_row("raw-single (commits)",
					  (double)c->n_single, raw_secs);
	}
	if (do_m2w) {
		batch_free(&b);
		store_close(q, path);
		r->m2w_single = print_row("m2w-single (tasks)",
					  (double)c->n_single, m2w_secs);
	}
}

static void bench_m2w_batch(const struct config *c, struct results *r)
{
	char path[PATH_MAX];
	struct m2w_queue *q;
	struct batch b;
	uint64_t seq = 0;
	double t0, t1;
	long i;

	store_path(path, sizeof path, "m2w-batch");
	q = store_open(path);
	batch_init(&b);
	t0 = now_s();
	for (i = 0; i < c->n_batches; i++)
		enqueue_batch(q, &b, BATCH, &seq);
	t1 = now_s();
	batch_free(&b);
	store_close(q, path);
	r->m2w_batch = print_row("m2w-batch (tasks)",
				 (double)c->n_batches * BATCH, t1 - t0);
}

/* Acks every task of ts[0..n) in one settle call; returns entries refused. */
static size_t ack_all(struct m2w_queue *q, struct m2w_task **ts, size_t n,
		      struct m2w_settle *s)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	size_t i, bad = 0;

	memset(s, 0, sizeof *s * n);
	for (i = 0; i < n; i++) {
		s[i].id = ts[i]->id;
		s[i].token = ts[i]->lease_token;
		s[i].kind = M2W_ACK;
	}
	check_m2w(m2w_queue_settle(q, s, n, errbuf), "m2w_queue_settle",
		  errbuf);
	for (i = 0; i < n; i++)
		if (s[i].err != M2W_OK) {
			if (bad == 0)
				fprintf(stderr, "bench: ack of task %" PRIu64
					": %s\n", s[i].id,
					m2w_strerror(s[i].err));
			bad++;
		}
	return bad;
}

/*
 * Starts n threads of fn, the i-th on arg (char *)args + i * size, lets
 * them go at once (each waits on the barrier whose pointer this puts at
 * offset `start` of its arg), joins them: the seconds from the go to the
 * last join.
 */
static double run_together(void *(*fn)(void *), void *args, size_t size,
			   int n, size_t start)
{
	pthread_t *th = xmalloc(sizeof *th * (size_t)n);
	pthread_barrier_t go;
	double t0;
	int i, rc;

	pthread_barrier_init(&go, NULL, (unsigned)n + 1);
	for (i = 0; i < n; i++) {
		char *arg = (char *)args + (size_t)i * size;

		*(pthread_barrier_t **)(void *)(arg + start) = &go;
		rc = pthread_create(&th[i], NULL, fn, arg);
		if (rc != 0)
			die("pthread_create: %s", strerror(rc));
	}
	pthread_barrier_wait(&go);
	t0 = now_s();
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	free(th);
	return now_s() - t0;
}

struct lease_worker {
	struct m2w_queue *q;
	pthread_barrier_t *start;
	size_t acked, refused;
};

static void *lease_worker_run(void *arg)
{
	struct lease_worker *w = arg;
	struct m2w_lease_opts lo;
	struct m2w_settle s[LEASE_MAX];

	memset(&lo, 0, sizeof lo);
	lo.max = LEASE_MAX;
	lo.lease_ms = LEASE_MS;
	pthread_barrier_wait(w->start);
	for (;;) {
		char errbuf[M2W_ERRBUF_SIZE] = "";
		struct m2w_task **ts = NULL;
		size_t n = 0, bad;

		check_m2w(m2w_queue_lease(w->q, &lo, &ts, &n, errbuf),
			  "m2w_queue_lease", errbuf);
		if (n == 0)
			break;
		if (n > LEASE_MAX)
			die("m2w_queue_lease returned %zu tasks, max was %d",
			    n, LEASE_MAX);
		bad = ack_all(w->q, ts, n, s);
		w->acked += n - bad;
		w->refused += bad;
		m2w_task_list_free(ts, n);
	}
	return NULL;
}

static void verify_done(struct m2w_queue *q, long expect, const char *what)
{
	char errbuf[M2W_ERRBUF_SIZE] = "";
	struct m2w_stats st;

	memset(&st, 0, sizeof st);
	check_m2w(m2w_queue_stats(q, &st, errbuf), "m2w_queue_stats", errbuf);
	if (st.count[M2W_DONE] != (uint64_t)expect)
		printf("WARNING: %s: %" PRIu64 " tasks done, expected %ld "
		       "(ready %" PRIu64 ", leased %" PRIu64 ")\n", what,
		       st.count[M2W_DONE], expect, st.count[M2W_READY],
		       st.count[M2W_LEASED]);
	m2w_stats_free(&st);
}

static double lease_ack_run(const struct config *c, int nthreads)
{
	char path[PATH_MAX], name[64], label[80];
	struct m2w_queue *q;
	struct lease_worker *w;
	size_t acked = 0, refused = 0;
	double secs;
	int i;

	snprintf(name, sizeof name, "lease-ack-%d", nthreads);
	snprintf(label, sizeof label, "fill %s", name);
	store_path(path, sizeof path, name);
	q = store_open(path);
	fill_store(q, c->lease_fill, label);

	w = xmalloc(sizeof *w * (size_t)nthreads);
	memset(w, 0, sizeof *w * (size_t)nthreads);
	for (i = 0; i < nthreads; i++)
		w[i].q = q;
	secs = run_together(lease_worker_run, w, sizeof *w, nthreads,
			    offsetof(struct lease_worker, start));
	for (i = 0; i < nthreads; i++) {
		acked += w[i].acked;
		refused += w[i].refused;
	}
	free(w);

	if (refused)
		printf("WARNING: %s: %zu acks refused\n", name, refused);
	verify_done(q, c->lease_fill, name);
	store_close(q, path);
	snprintf(name, sizeof name, "lease+ack %2d thr (tasks)", nthreads);
	return print_row(name, (double)acked, secs);
}

static void bench_lease_ack(const struct config *c, struct results *r)
{
	int i;

	for (i = 0; i < 3; i++)
		r->lease_ack[i] = lease_ack_run(c, lease_threads[i]);
}

/* Times `cycles` lease(max 1) calls on q; µs per lease. */
static double lease_cycles(const struct config *c, struct m2w_queue *q,
			   const char *name)
{
	struct m2w_lease_opts lo;
	struct m2w_settle s;
	double spent = 0;
	long i;

	memset(&lo, 0, sizeof lo);
	lo.max = 1;
	lo.lease_ms = LEASE_MS;
	for (i = 0; i < c->depth_cycles; i++) {
		char errbuf[M2W_ERRBUF_SIZE] = "";
		struct m2w_task **ts = NULL;
		size_t n = 0;
		double t0, t1;
		int rc;

		t0 = now_s();
		rc = m2w_queue_lease(q, &lo, &ts, &n, errbuf);
		t1 = now_s();
		check_m2w(rc, "m2w_queue_lease", errbuf);
		spent += t1 - t0;
		if (n != 1)
			die("%s: lease %ld returned %zu tasks, expected 1",
			    name, i, n);
		ack_all(q, ts, n, &s);
		m2w_task_list_free(ts, n);
	}
	return spent;
}

/*
 * Lease cost on a store of `depth` ready tasks: durable (each lease is an
 * fsync'd commit, which dominates), then the same store reopened with
 * nosync, which leaves the index work alone. *us_nosync gets the latter.
 */
static double lease_depth_run(const struct config *c, long depth,
			      const char *name, double *us_nosync)
{
	char path[PATH_MAX], label[64];
	struct m2w_queue *q;
	double spent;

	store_path(path, sizeof path, name);
	q = store_open(path);
	snprintf(label, sizeof label, "fill %s", name);
	fill_store(q, depth, label);
	spent = lease_cycles(c, q, name);
	snprintf(label, sizeof label, "lease @%ld (leases)", depth);
	print_row(label, (double)c->depth_cycles, spent);

	m2w_queue_close(q);
	q = store_open_ex(path, 1);
	*us_nosync = lease_cycles(c, q, name);
	snprintf(label, sizeof label, "lease @%ld nosync", depth);
	print_row(label, (double)c->depth_cycles, *us_nosync);
	*us_nosync = *us_nosync * 1e6 / (double)c->depth_cycles;
	store_close(q, path);
	return spent * 1e6 / (double)c->depth_cycles;
}

static void bench_lease_depth(const struct config *c, struct results *r)
{
	r->us_shallow = lease_depth_run(c, c->depth_shallow, "depth-shallow",
					&r->us_shallow_ns);
	r->us_deep = lease_depth_run(c, c->depth_deep, "depth-deep",
				     &r->us_deep_ns);
}

/* ----------------------------------------------------------- beanstalkd */

struct conn {
	int fd;
	size_t off, len;
	char buf[16384];
};

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("beanstalkd: write: %s",
			    w < 0 ? strerror(errno) : "short write");
		p += w;
		n -= (size_t)w;
	}
}

/* Refills the buffer; dies on EOF or error. */
static void conn_fill(struct conn *c)
{
	ssize_t r;

	if (c->off > 0) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof c->buf)
		die("beanstalkd: reply line too long");
	do
		r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("beanstalkd: read: %s", strerror(errno));
	if (r == 0)
		die("beanstalkd: connection closed");
	c->len += (size_t)r;
}

/* One "\r\n"-terminated line into out (without the CRLF). */
static void conn_line(struct conn *c, char *out, size_t cap)
{
	for (;;) {
		char *start = c->buf + c->off;
		char *nl = memchr(start, '\n', c->len - c->off);

		if (nl) {
			size_t n = (size_t)(nl - start);

			if (n > 0 && start[n - 1] == '\r')
				n--;
			if (n >= cap)
				die("beanstalkd: reply line too long");
			memcpy(out, start, n);
			out[n] = '\0';
			c->off += (size_t)(nl - start) + 1;
			return;
		}
		conn_fill(c);
	}
}

/* Skips exactly n bytes of body (data plus its CRLF). */
static void conn_skip(struct conn *c, size_t n)
{
	while (n > 0) {
		size_t have = c->len - c->off;

		if (have == 0) {
			conn_fill(c);
			continue;
		}
		if (have > n)
			have = n;
		c->off += have;
		n -= have;
	}
}

static struct conn *conn_open(int port)
{
	struct conn *c = xmalloc(sizeof *c);

	c->fd = bench_connect(port);
	if (c->fd < 0)
		die("beanstalkd: connect 127.0.0.1:%d: %s", port,
		    strerror(errno));
	c->off = c->len = 0;
	return c;
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c);
}

static int free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0)
		die("socket: %s", strerror(errno));
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		die("finding a free port: %s", strerror(errno));
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Starts beanstalkd with its binlog in `dir`; returns when connectable. */
static void bs_start(const char *dir, int port)
{
	char portstr[16];
	pid_t pid;
	int i;

	if (mkdir(dir, 0755) != 0)
		die("mkdir %s: %s", dir, strerror(errno));
	snprintf(portstr, sizeof portstr, "%d", port);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execlp("beanstalkd", "beanstalkd", "-l", "127.0.0.1", "-p",
		       portstr, "-b", dir, "-f", "0", (char *)NULL);
		fprintf(stderr, "bench: exec beanstalkd: %s\n",
			strerror(errno));
		_exit(127);
	}
	g_child = pid;
	for (i = 0; i < 150; i++) {         /* 150 * 20 ms = 3 s */
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		int fd = bench_connect(port);

		if (fd >= 0) {
			close(fd);
			return;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			g_child = 0;
			die("beanstalkd exited at start");
		}
		nanosleep(&ts, NULL);
	}
	die("beanstalkd: not connectable on 127.0.0.1:%d after 3 s", port);
}

static void bs_expect_inserted(struct conn *c)
{
	char line[256];

	conn_line(c, line, sizeof line);
	if (strncmp(line, "INSERTED ", 9) != 0)
		die("beanstalkd: put: unexpected reply \"%s\"", line);
}

/* One put, waiting for its reply. */
static void bs_put(struct conn *c, const char *job)
{
	static const char cmd[] = "put 0 0 60 200\r\n";
	char msg[sizeof cmd - 1 + VALUE_SIZE + 2];

	memcpy(msg, cmd, sizeof cmd - 1);
	memcpy(msg + sizeof cmd - 1, job, VALUE_SIZE);
	memcpy(msg + sizeof cmd - 1 + VALUE_SIZE, "\r\n", 2);
	write_all(c->fd, msg, sizeof msg);
	bs_expect_inserted(c);
}

/* Not timed: puts `total` jobs, pipelined 128 at a time. */
static void bs_fill(int port, long total, const char *job)
{
	static const char cmd[] = "put 0 0 60 200\r\n";
	enum { PIPE = 128, ONE = sizeof cmd - 1 + VALUE_SIZE + 2 };
	struct conn *c = conn_open(port);
	char *msg = xmalloc((size_t)PIPE * ONE);
	long done = 0;
	int i;

	for (i = 0; i < PIPE; i++) {
		char *p = msg + (size_t)i * ONE;

		memcpy(p, cmd, sizeof cmd - 1);
		memcpy(p + sizeof cmd - 1, job, VALUE_SIZE);
		memcpy(p + sizeof cmd - 1 + VALUE_SIZE, "\r\n", 2);
	}
	while (done < total) {
		long n = total - done < PIPE ? total - done : PIPE;

		write_all(c->fd, msg, (size_t)n * ONE);
		for (i = 0; i < n; i++)
			bs_expect_inserted(c);
		done += n;
		if (done % 5000 == 0 || done == total)
			progress("fill beanstalkd", done, total);
	}
	free(msg);
	conn_close(c);
}

struct bs_worker {
	int port;
	pthread_barrier_t *start;
	long deleted;
};

/* reserve-with-timeout 0 + delete until TIMED_OUT. */
static void *bs_drain_run(void *arg)
{
	struct bs_worker *w = arg;
	struct conn *c = conn_open(w->port);
	static const char reserve[] = "reserve-with-timeout 0\r\n";

	pthread_barrier_wait(w->start);
	for (;;) {
		char line[256], del[64];
		unsigned long long id;
		size_t bytes;
		int n;

		write_all(c->fd, reserve, sizeof reserve - 1);
		conn_line(c, line, sizeof line);
		if (strcmp(line, "TIMED_OUT") == 0)
			break;
		if (sscanf(line, "RESERVED %llu %zu", &id, &bytes) != 2)
			die("beanstalkd: reserve: unexpected reply \"%s\"",
			    line);
		conn_skip(c, bytes + 2);
		n = snprintf(del, sizeof del, "delete %llu\r\n", id);
		write_all(c->fd, del, (size_t)n);
		conn_line(c, line, sizeof line);
		if (strcmp(line, "DELETED") != 0)
			die("beanstalkd: delete %llu: unexpected reply \"%s\"",
			    id, line);
		w->deleted++;
	}
	conn_close(c);
	return NULL;
}

/* Not timed: deletes every ready job (the ones the put test left). */
static void bs_clear(int port)
{
	struct bs_worker w;
	pthread_barrier_t b;

	memset(&w, 0, sizeof w);
	w.port = port;
	w.start = &b;
	pthread_barrier_init(&b, NULL, 1);
	bs_drain_run(&w);
	pthread_barrier_destroy(&b);
}

static double bs_drain(int port, int nthreads, long expect)
{
	struct bs_worker w[4];
	char name[64];
	long deleted = 0;
	double secs;
	int i;

	memset(w, 0, sizeof w);
	for (i = 0; i < nthreads; i++)
		w[i].port = port;
	secs = run_together(bs_drain_run, w, sizeof *w, nthreads,
			    offsetof(struct bs_worker, start));
	for (i = 0; i < nthreads; i++)
		deleted += w[i].deleted;
	if (deleted != expect)
		printf("WARNING: beanstalkd drain: %ld jobs deleted, "
		       "expected %ld\n", deleted, expect);
	snprintf(name, sizeof name, "beanstalkd drain %d cli (jobs)",
		 nthreads);
	return print_row(name, (double)deleted, secs);
}

static void bench_beanstalkd(const struct config *c, struct results *r)
{
	char dir[PATH_MAX], job[VALUE_SIZE];
	struct conn *cn;
	int port = free_port();
	double t0, t1;
	long i;

	store_path(dir, sizeof dir, "beanstalkd");
	memset(job, 'j', sizeof job);
	bs_start(dir, port);

	cn = conn_open(port);
	t0 = now_s();
	for (i = 0; i < c->n_single; i++)
		bs_put(cn, job);
	t1 = now_s();
	r->bs_put = print_row("beanstalkd put 1 cli (jobs)",
			      (double)c->n_single, t1 - t0);
	conn_close(cn);
	bs_clear(port);     /* the drains below see exactly bs_fill jobs */

	bs_fill(port, c->bs_fill, job);
	r->bs_drain1 = bs_drain(port, 1, c->bs_fill);
	bs_fill(port, c->bs_fill, job);
	r->bs_drain4 = bs_drain(port, 4, c->bs_fill);

	stop_child();
	rm_rf(dir);
}

/* --------------------------------------------------------------- ratios */

static void ratio_line(const char *what, double value, int have,
		       const char *fmt_target, double target, int at_least)
{
	char v[32];
	int ok = at_least ? value >= target : value <= target;

	if (!have) {
		printf("  %-46s %12s   target %-12s n/a\n", what, "n/a",
		       fmt_target);
		return;
	}
	if (value >= 1000)
		snprintf(v, sizeof v, "%.0f", value);
	else
		snprintf(v, sizeof v, "%.2f", value);
	printf("  %-46s %12s   target %-12s %s\n", what, v, fmt_target,
	       ok ? "ok" : "below target");
}

static void print_ratios(const struct results *r)
{
	double l16 = r->lease_ack[2];

	printf("\nratios (project targets)\n");
	ratio_line("m2w single enqueue / raw single commit",
		   r->m2w_single / r->raw_single,
		   r->m2w_single >= 0 && r->raw_single > 0, ">= 0.80", 0.80, 1);
	ratio_line("m2w batch enqueue, tasks/s", r->m2w_batch,
		   r->m2w_batch >= 0, ">= 100000", 100000, 1);
	ratio_line("lease+ack 16 threads, tasks/s", l16, l16 >= 0,
		   ">= 20000", 20000, 1);
	ratio_line("lease+ack 16 threads / beanstalkd drain 1 cli",
		   l16 / r->bs_drain1, l16 >= 0 && r->bs_drain1 > 0,
		   ">= 3x", 3.0, 1);
	ratio_line("lease us at deep / at shallow",
		   r->us_deep / r->us_shallow,
		   r->us_deep >= 0 && r->us_shallow > 0, "<= 2.0", 2.0, 0);
	ratio_line("  the same without fsync (index cost)",
		   r->us_deep_ns / r->us_shallow_ns,
		   r->us_deep_ns >= 0 && r->us_shallow_ns > 0, "<= 2.0", 2.0, 0);
}

/* ----------------------------------------------------------------- main */

static void usage(FILE *f)
{
	int i;

	fprintf(f, "usage: bench [-d DIR] [-n N] [-q] [--only NAME[,NAME...]]\n"
		"  -d DIR   make the temporary stores under DIR (default: .)\n"
		"  -n N     single-operation count (default 2000, quick 300)\n"
		"  -q       quick mode: small counts, a smoke run\n"
		"  --only   run only these measurements:");
	for (i = 0; names[i]; i++)
		fprintf(f, " %s", names[i]);
	fputc('\n', f);
}

static void check_only(const char *only)
{
	const char *p = only;

	while (*p) {
		size_t n = strcspn(p, ",");
		int i, found = 0;

		for (i = 0; names[i]; i++)
			if (strlen(names[i]) == n && !strncmp(names[i], p, n))
				found = 1;
		if (!found) {
			fprintf(stderr, "bench: unknown measurement \"%.*s\"\n",
				(int)n, p);
			usage(stderr);
			exit(2);
		}
		p += n;
		if (*p == ',')
			p++;
	}
}

static void parse_args(int argc, char **argv, struct config *c)
{
	static const struct option longopts[] = {
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	long n = -1;
	int opt;

	memset(c, 0, sizeof *c);
	c->dir = ".";
	while ((opt = getopt_long(argc, argv, "d:n:qh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			c->dir = optarg;
			break;
		case 'n': {
			char *end;

			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || *end || n < 1) {
				fprintf(stderr, "bench: bad -n \"%s\"\n",
					optarg);
				exit(2);
			}
			break;
		}
		case 'q':
			c->quick = 1;
			break;
		case 'o':
			c->only = optarg;
			check_only(optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	c->n_single = c->quick ? 300 : 2000;
	c->n_batches = c->quick ? 20 : 200;
	c->lease_fill = c->quick ? 20000 : 100000;
	c->depth_shallow = 10000;
	c->depth_deep = c->quick ? 200000 : 1000000;
	c->depth_cycles = c->quick ? 500 : 2000;
	c->bs_fill = c->quick ? 3000 : 20000;
	if (n > 0)
		c->n_single = n;
}

static void make_base(const char *dir)
{
	int n = snprintf(g_base, sizeof g_base, "%s/bench.XXXXXX", dir);

	if (n < 0 || (size_t)n >= sizeof g_base)
		die("path too long: %s", dir);
	if (!mkdtemp(g_base)) {
		int e = errno;

		g_base[0] = '\0';
		die("mkdtemp under %s: %s", dir, strerror(e));
	}
}

int main(int argc, char **argv)
{
	struct config c;
	struct results r;
	int have_bs;

	parse_args(argc, argv, &c);
	results_init(&r);

	make_base(c.dir);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	have_bs = in_path("beanstalkd");
	print_machine(&c, have_bs && selected(&c, "beanstalkd"));
	print_header();

	if (selected(&c, "raw-single") || selected(&c, "m2w-single"))
		bench_singles(&c, &r, selected(&c, "raw-single"),
			      selected(&c, "m2w-single"));
	if (selected(&c, "raw-batch"))
		bench_raw_batch(&c, &r);
	if (selected(&c, "m2w-batch"))
		bench_m2w_batch(&c, &r);
	if (selected(&c, "lease-ack"))
		bench_lease_ack(&c, &r);
	if (selected(&c, "lease-depth"))
		bench_lease_depth(&c, &r);
	if (selected(&c, "beanstalkd")) {
		if (have_bs)
			bench_beanstalkd(&c, &r);
		else
			printf("beanstalkd: not installed, skipped\n");
	}

	print_ratios(&r);
	return 0;
}
