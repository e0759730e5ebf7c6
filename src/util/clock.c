/*
 * clock.c - the wall and monotonic clocks (clock.h).
 *
 * clock_gettime() with CLOCK_REALTIME and CLOCK_MONOTONIC (POSIX, every
 * Linux since 2.6); neither can fail with these ids and a valid pointer.
 * No state, no locks.
 */
#include "config.h"

#include <stdint.h>
#include <time.h>

#include "m2worker/clock.h"

int64_t m2w_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t m2w_clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t m2w_clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
