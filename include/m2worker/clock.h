/*
 * clock.h - the process's clocks, read in one place.
 *
 * Wall clock (CLOCK_REALTIME) for what is stored or shown: task times,
 * file times, ages; it may jump when the host's time is set. Monotonic
 * clock (CLOCK_MONOTONIC) for what is measured or waited for: durations,
 * deadlines, timeouts; it never jumps, and means nothing across processes
 * or reboots. The store reads the wall clock through its own hook
 * (queue.h: a test may give it a fake one); these are the real ones.
 *
 * Thread-safety: all are safe from any thread; no state.
 */
#ifndef M2WORKER_CLOCK_H
#define M2WORKER_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Wall clock: milliseconds since the epoch (1970-01-01 UTC). */
int64_t m2w_clock_ms(void);
/* Monotonic clock in milliseconds (from an unspecified start). */
int64_t m2w_clock_mono_ms(void);
/* The same in microseconds (the Magento client's rate limit: its slots
 * may be shorter than a millisecond). */
int64_t m2w_clock_mono_us(void);

#ifdef __cplusplus
}
#endif
#endif
