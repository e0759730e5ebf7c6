/*
 * watch.h - CSV directories: files dropped in a watched directory become
 * tasks ([watch "NAME"] sections of the configuration).
 *
 * One thread watches every [watch] directory: inotify (IN_CLOSE_WRITE,
 * IN_MOVED_TO), or polling (mode = poll, for network file systems), and in
 * both modes a scan every poll_interval, so that files already there at
 * start, or missed by an overflowing inotify queue, are taken too.
 *
 * A file is a candidate when it is a regular file whose name matches the
 * pattern (a glob, default *.csv; ^...$ is an extended regex where \d \w \s
 * mean [0-9] [[:alnum:]_] [[:space:]], as tracking-updater's file_pattern)
 * and is not a dot file, *.tmp, *.part, *.swp or *~. It is taken when it is
 * complete: renamed in (IN_MOVED_TO), or its size and mtime unchanged for
 * `settle`.
 *
 * Taking a file: its fingerprint (SHA-256 of the content) is looked up in
 * the store (m2w_queue_file_get).
 *   - finished before: "file.seen_before", nothing enqueued, the file moves
 *     to processed/.
 *   - in progress (a crash or stop in the middle): resumed after the rows
 *     the record says are in, with its counters carried on.
 *   - new: streamed from the start (m2w_ingest_stream, libcsv: a file larger
 *     than memory works), each batch committed with the file's progress
 *     record in the same transaction, so a crash never enqueues a row twice.
 * Then the last record (finished) is written and the file moves to
 * processed/ ("file.done", one line per file). Rejected rows go to
 * failed/NAME.errors.csv (line,column,reason,row; written as they come to a
 * hidden failed/.FINGERPRINT.errors.part, which a resumed file continues).
 * A file that cannot be read, or whose header will not do, moves to failed/
 * with failed/NAME.reason.txt. A full store or disk leaves the file in
 * incoming/ (warning); it is retried 30 s later (or poll_interval, if
 * longer), from the recorded row. Moves never overwrite: a name already
 * taken gets ".1", ".2" ... before its extension.
 *
 * Threads: m2w_watch_start and m2w_watch_stop from one thread (main); the
 * watcher thread uses the queue like any other producer. Signals: the
 * thread inherits the caller's mask (main blocks them all).
 */
#ifndef M2WORKER_WATCH_H
#define M2WORKER_WATCH_H

#include "m2worker/config.h"
#include "m2worker/error.h"
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

#define M2W_WATCH_RETRY_MS 30000 /* a file left by a full store: retried */
#define M2W_WATCH_RECENT 10      /* files remembered per directory */

struct m2w_watcher;

/*
 * Checks every [watch] section of cfg (pattern, columns, directories),
 * creates the incoming, processed and failed directories that are missing
 * (mkdir -p, logged) and starts the watcher thread on `q`. `q` and `cfg`
 * are borrowed until m2w_watch_stop. With no [watch] section, *out is
 * NULL and M2W_OK is returned. Errors: M2W_EINVAL (a pattern or columns
 * that will not do, a directory that cannot be made; errbuf names the
 * section), M2W_EIO (inotify), M2W_ENOMEM.
 */
int m2w_watch_start(struct m2w_queue *q, const struct m2w_config *cfg,
		    struct m2w_watcher **out, char *errbuf);

/*
 * Stops the thread and frees w (NULL is fine). A file being read stops at
 * the end of the batch being committed; it is resumed from its progress
 * record at the next start.
 */
void m2w_watch_stop(struct m2w_watcher *w);
/* Stops the thread only: what it took stays readable (m2w_watch_recent)
 * until m2w_watch_stop. */
void m2w_watch_halt(struct m2w_watcher *w);

/* What became of a file taken (the console's "last files"). */
enum m2w_file_outcome {
	M2W_FILE_DONE,           /* read to the end, moved to processed/ */
	M2W_FILE_SEEN_BEFORE,    /* same content as a finished file */
	M2W_FILE_FAILED          /* unreadable or bad header: in failed/ */
};

struct m2w_watch_file {
	char name[256];          /* as it was dropped */
	char moved_to[512];      /* where it is now */
	char errors[512];        /* its rejected rows (NAME.errors.csv) or
				  * reason (NAME.reason.txt), "" for none */
	char reason[256];        /* FAILED: why */
	int outcome;             /* enum m2w_file_outcome */
	int64_t at_ms;
	uint64_t rows, accepted, duplicates, rejected;
};

/*
 * The last files taken from watched directory `i` (0 .. m2w_watch_dirs()
 * - 1), newest first, since the daemon started (kept in memory only; the
 * logs hold them all): up to M2W_WATCH_RECENT into `out`, their count
 * returned. *name and *path (may be NULL) get the section's name and its
 * incoming directory, borrowed from the config. Any thread.
 */
size_t m2w_watch_dirs(const struct m2w_watcher *w);
size_t m2w_watch_recent(struct m2w_watcher *w, size_t i,
			struct m2w_watch_file *out, const char **name,
			const char **path);

/*
 * What a [watch] section must hold for m2w_watch_start to take it: a
 * path, a type read from CSV, good `columns`, a pattern that compiles.
 * The config's own check calls it too, so `--check-config` and a start
 * never disagree. M2W_OK, or M2W_EINVAL with errbuf "[watch \"NAME\"]: ...".
 */
int m2w_watch_cfg_check(const struct m2w_watch_cfg *c, char *errbuf);

/*
 * Synchronously takes every candidate file now in the directory of `wc`,
 * without waiting for it to settle (tests, and tools that know the files
 * are complete). Returns M2W_OK, or the first error that left a file in
 * place (M2W_EFULL, M2W_ENOSPC, M2W_ENOMEM...) or that stopped the setup
 * (M2W_EINVAL). `cfg` may be NULL.
 */
int m2w_watch_run_once(struct m2w_queue *q, const struct m2w_config *cfg,
		       const struct m2w_watch_cfg *wc, char *errbuf);

#ifdef __cplusplus
}
#endif
#endif
