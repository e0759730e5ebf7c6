/*
 * notify.c - sd_notify(3) for the daemon, or nothing (see notify.h).
 *
 * With HAVE_SYSTEMD the calls go to libsystemd, which finds $NOTIFY_SOCKET
 * and $WATCHDOG_USEC/$WATCHDOG_PID itself; the environment is left as it
 * is (unset_environment = 0) so that later states still reach systemd.
 * Without it every function compiles to a constant, and the daemon runs as
 * a Type=simple service (the unit is generated to match, see configure).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "notify.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define STATE_MAX 1024

int m2w_notify_built(void)
{
#ifdef HAVE_SYSTEMD
	return 1;
#else
	return 0;
#endif
}

int m2w_notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	return sd_notify(0, state);
#else
	(void)state;
	return 0;
#endif
}

int m2w_notifyf(const char *fmt, ...)
{
#ifdef HAVE_SYSTEMD
	char buf[STATE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return sd_notify(0, buf);
#else
	(void)fmt;
	return 0;
#endif
}

int64_t m2w_notify_watchdog_ms(void)
{
#ifdef HAVE_SYSTEMD
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	return usec < 1000 ? 1 : (int64_t)(usec / 1000);
#else
	return 0;
#endif
}
