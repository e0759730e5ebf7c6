/*
 * notify-listen.c - a stand-in for systemd's notification socket, for
 * tests/notify.sh (no systemd needed).
 *
 *   notify-listen SOCKET OUT [SECONDS]
 *
 * Binds a unix datagram socket at SOCKET (the test points $NOTIFY_SOCKET
 * at it) and appends every state the daemon sends to OUT, one
 * "KEY=value" per line, in the order received, each line written with one
 * write() as it arrives so the test can poll OUT. Exits on SIGTERM/SIGINT
 * or after SECONDS (default 60), removing SOCKET. No credentials are
 * checked: this is a test fixture, not a service manager.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t done;

static void on_signal(int sig)
{
	(void)sig;
	done = 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa;
	struct sigaction act;
	char buf[4096];
	time_t end;
	int s, out;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: notify-listen SOCKET OUT [SECONDS]\n");
		return 2;
	}
	end = time(NULL) + (argc == 4 ? atoi(argv[3]) : 60);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify-listen: socket path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	memset(&act, 0, sizeof(act));
	act.sa_handler = on_signal;
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);

	out = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (out < 0) {
		perror(argv[2]);
		return 1;
	}
	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (s < 0) {
		perror("socket");
		return 1;
	}
	unlink(argv[1]);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror(argv[1]);
		return 1;
	}
	while (!done && time(NULL) < end) {
		struct pollfd p = { s, POLLIN, 0 };
		char *line, *nl;
		ssize_t n;

		if (poll(&p, 1, 200) <= 0)
			continue;
		n = recv(s, buf, sizeof(buf) - 2, 0);
		if (n <= 0)
			continue;
		if (buf[n - 1] != '\n')
			buf[n++] = '\n';
		buf[n] = '\0';
		for (line = buf; (nl = strchr(line, '\n')) != NULL;
		     line = nl + 1) {
			if (nl != line &&
			    write(out, line, (size_t)(nl - line + 1)) < 0)
				perror(argv[2]);
		}
	}
	close(s);
	unlink(argv[1]);
	return 0;
}
