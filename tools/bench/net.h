/*
 * net.h - what the bench programs (bench.c, push.c, probe.c) share: a TCP
 * connection to 127.0.0.1 (or another IPv4 address), without Nagle's
 * delay. Header-only, static inline.
 */
#ifndef M2W_BENCH_NET_H
#define M2W_BENCH_NET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A socket connected to addr:port (addr in network order), or -1 (errno
 * says why). */
static inline int bench_connect_addr(struct in_addr addr, int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr = addr;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* A socket connected to 127.0.0.1:port, or -1 (errno says why). */
static inline int bench_connect(int port)
{
	struct in_addr lo;

	lo.s_addr = htonl(INADDR_LOOPBACK);
	return bench_connect_addr(lo, port);
}

#endif
