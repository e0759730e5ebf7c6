/*
 * trace.h - the record format shared by the crashsim shim (shim.c), the
 * marker tool (mark.c) and the replayer (replay.c).
 *
 * Every process under the shim appends records to its own file
 * $CRASHSIM_TRACE/t.PID, one write per record: a struct cs_rec, then
 * name1 (n1 bytes), name2 (n2 bytes), then len bytes of data. Records of
 * all processes are ordered by seq, drawn from one counter shared by
 * every process ($CRASHSIM_SEQ, an 8-byte file mmap'd MAP_SHARED). A write
 * takes its seq before the real call, a sync after it returns.
 *
 * Files and directories are named by (dev, ino); namespace records name
 * the directory by its (dev, ino) and the entry by its name in it.
 */
#ifndef CRASHSIM_TRACE_H
#define CRASHSIM_TRACE_H

#include <stdint.h>

enum cs_type {
	CS_CREATE = 1,  /* new inode ino as dir/name1 (flags CS_DIR: mkdir) */
	CS_WRITE,       /* ino: len bytes at off (flags CS_DSYNC: O_DSYNC fd) */
	CS_TRUNC,       /* ino: size becomes off */
	CS_SYNC,        /* ino fsync'd/fdatasync'd (a file or a directory) */
	CS_DSYNC_DONE,  /* the O_DSYNC write of seq `off` has returned */
	CS_LINK,        /* ino gets a new name dir2/name2 */
	CS_UNLINK,      /* dir/name1 (of ino) removed */
	CS_RENAME,      /* dir/name1 -> dir2/name2 (ino), replacing a target */
	CS_MARK,        /* an acknowledgement seen by the harness: name1 */
};

#define CS_DIR   1u
#define CS_DSYNC 2u

struct cs_rec {
	uint64_t seq;
	uint32_t type, pid;
	uint64_t dev, ino;       /* the object */
	uint64_t ddev, dino;     /* the (first) directory */
	uint64_t ddev2, dino2;   /* the second directory (link, rename) */
	int64_t off;
	uint64_t len;            /* data bytes after the names */
	uint32_t n1, n2;         /* name lengths */
	uint32_t flags, pad;
};

/* The counter file: seq is the first 8 bytes; the next seq is fetch-add+1. */
static inline uint64_t cs_next_seq(volatile uint64_t *ctr)
{
	return __atomic_add_fetch(ctr, 1, __ATOMIC_SEQ_CST);
}

#endif
