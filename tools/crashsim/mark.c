/*
 * mark.c - crashsim-mark LABEL...: appends a marker record (trace.h) with
 * the next seq to $CRASHSIM_TRACE/t.PID. The harness runs it right after
 * it saw an acknowledgement, so every cut after the marker must hold what
 * was acknowledged (tests/powerloss.sh).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#include <stdlib.h>

#include "trace.h"

int main(int argc, char **argv)
{
	const char *t = getenv("CRASHSIM_TRACE"), *s = getenv("CRASHSIM_SEQ");
	char label[4096] = "", path[4096];
	struct cs_rec r;
	struct iovec v[2];
	void *m;
	int i, fd;

	if (argc < 2 || !t || !s) {
		fprintf(stderr, "usage: CRASHSIM_TRACE=DIR CRASHSIM_SEQ=FILE "
			"crashsim-mark LABEL...\n");
		return 2;
	}
	for (i = 1; i < argc; i++)
		snprintf(label + strlen(label), sizeof(label) - strlen(label),
			 "%s%s", i > 1 ? " " : "", argv[i]);
	if ((fd = open(s, O_RDWR)) < 0 ||
	    (m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))
		    == MAP_FAILED) {
		perror(s);
		return 1;
	}
	close(fd);
	memset(&r, 0, sizeof(r));
	r.type = CS_MARK;
	r.pid = (uint32_t)getpid();
	r.n1 = (uint32_t)strlen(label);
	r.seq = cs_next_seq(m);
	snprintf(path, sizeof(path), "%s/t.%ld", t, (long)getpid());
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644)) < 0) {
		perror(path);
		return 1;
	}
	v[0].iov_base = &r;
	v[0].iov_len = sizeof(r);
	v[1].iov_base = label;
	v[1].iov_len = r.n1;
	if (writev(fd, v, 2) != (ssize_t)(sizeof(r) + r.n1)) {
		perror(path);
		return 1;
	}
	return close(fd) != 0;
}
