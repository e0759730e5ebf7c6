/*
 * notify.h - telling the service manager (systemd) how the daemon is doing.
 *
 * A thin layer over sd_notify(3) so that main.c carries no #ifdef: built
 * with libsystemd (configure --with-systemd, HAVE_SYSTEMD) these send
 * datagrams to $NOTIFY_SOCKET; built without, every call is a no-op that
 * returns 0. Outside systemd (no NOTIFY_SOCKET) they return 0 as well.
 *
 * The states the daemon sends (see m2worker(8), "SYSTEMD"):
 *   READY=1       store open, recovery done, workers and ingest started
 *   STATUS=...    one line for "systemctl status"
 *   RELOADING=1   SIGHUP taken; READY=1 follows when it is handled
 *   STOPPING=1    SIGTERM/SIGINT: the drain starts
 *   WATCHDOG=1    a liveness ping, sent by the main loop only after a
 *                 round trip through the store's commit thread
 *
 * Threads: call from the main thread (sd_notify itself is thread-safe, but
 * the order of states means something only from one thread).
 */
#ifndef M2WORKER_NOTIFY_H
#define M2WORKER_NOTIFY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when built with libsystemd (sd_notify), else 0. */
int m2w_notify_built(void);

/*
 * Sends `state` (one or more "KEY=value" lines separated by '\n').
 * Returns >0 when sent, 0 when there is no service manager to tell (no
 * NOTIFY_SOCKET, or built without libsystemd), <0 (a negative errno) when
 * sending failed. The daemon ignores failures: systemd is told, or not.
 */
int m2w_notify(const char *state);

/* As m2w_notify, printf-style; states longer than 1 KiB are cut. */
int m2w_notifyf(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2)))
#endif
	;

/*
 * The watchdog interval systemd expects pings within (WatchdogSec=, as
 * $WATCHDOG_USEC for this process), in milliseconds; 0 when there is none
 * or when built without libsystemd. Ping at half of it.
 */
int64_t m2w_notify_watchdog_ms(void);

#ifdef __cplusplus
}
#endif
#endif
