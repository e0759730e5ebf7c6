/*
 * limiter.h - how many Magento calls may be in flight at once.
 *
 * Magento's PHP workers are shared with the storefront: background work
 * should take what is idle and give it back when shoppers need it. The
 * limiter is a counting semaphore whose count (the limit) is either fixed
 * or adaptive: it climbs while calls come back as fast as they do on an
 * idle Magento and falls when they queue there (their round-trip time
 * grows) or when Magento says it is overloaded (5xx, 429, timeouts). The
 * algorithm and its constants are explained at the top of limiter.c.
 *
 * Use: m2w_limiter_acquire before a call (it may wait for a slot), then
 * exactly one m2w_limiter_release after it with the call's round trip and
 * how it went. The limiter does not read a clock for its estimate: it is
 * driven by the releases alone, so a test can feed it synthetic RTTs.
 *
 * Ownership: the caller owns the limiter (m2w_limiter_new/free); free it
 * only when no thread is in or can still enter acquire.
 *
 * Threads: every call is thread-safe (one mutex, one condition variable);
 * m2w_limiter_limit and m2w_limiter_inflight take no lock (atomic loads)
 * and may be called from anywhere, e.g. a metrics scrape.
 */
#ifndef M2WORKER_LIMITER_H
#define M2WORKER_LIMITER_H

#include <stdint.h>

#include "m2worker/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How a call ended, for m2w_limiter_release. What the caller should pass:
 *   M2W_LIMIT_OK        a response came (2xx; also a 2xx Magento's body we
 *                       cannot read): its RTT is a sample of Magento's load.
 *   M2W_LIMIT_OVERLOAD  Magento or its proxy could not take the call: 429,
 *                       502, 503, 504, a timeout, a refused connection.
 *                       The limit is cut (at most once per round trip);
 *                       the RTT is not used (a fast 503 says nothing of
 *                       how long a real call takes).
 *   M2W_LIMIT_IGNORE    the call says nothing about Magento's load: 4xx
 *                       other than 429 (validation, auth, not found: often
 *                       answered before the real work), a call aborted at
 *                       shutdown, a DNS or TLS failure, a body too large.
 *                       The slot is freed, nothing else.
 */
enum m2w_limit_outcome {
	M2W_LIMIT_OK = 0,
	M2W_LIMIT_OVERLOAD = 1,
	M2W_LIMIT_IGNORE = 2
};

struct m2w_limiter_cfg {
	int adaptive;      /* 0: a plain semaphore of `fixed` slots */
	unsigned fixed;    /* fixed mode: the limit (>= 1) */
	unsigned min;      /* adaptive: the limit stays in [min, max] */
	unsigned max;      /*   (1 <= min <= max) */
	unsigned initial;  /* adaptive: the first limit; 0 = min */
};

struct m2w_limiter;

/* What the limiter holds now, for /metrics and the log. */
struct m2w_limiter_stats {
	int adaptive;
	unsigned limit;       /* what acquire lets in now */
	unsigned target;      /* the estimate's limit (differs from `limit`
			       * only while probing: see limiter.c) */
	unsigned inflight;    /* acquired and not yet released */
	unsigned waiting;     /* threads blocked in acquire */
	const char *phase;    /* "fixed", "start" (slow start), "steady",
			       * "recover" (after a cut), "probe" */
	int64_t rtt_base_us;  /* the no-load RTT estimate; 0 = none yet */
	int64_t rtt_us;       /* the last round's RTT (its lower quartile),
			       * compared with rtt_base_us; 0 = none */
	uint64_t rounds;      /* rounds (about one RTT each) evaluated */
	uint64_t changes;     /* times `target` changed */
	uint64_t drops;       /* cuts for overload */
	uint64_t overloads;   /* M2W_LIMIT_OVERLOAD releases (cut or not) */
	uint64_t probes;      /* no-load RTT measurements */
};

/*
 * A new limiter. M2W_OK; M2W_EINVAL when c is out of range (fixed 0, min
 * 0, max < min, initial outside [min, max]), said in errbuf; M2W_ENOMEM.
 * c is copied.
 */
int m2w_limiter_new(const struct m2w_limiter_cfg *c, struct m2w_limiter **out,
		    char *errbuf);
void m2w_limiter_free(struct m2w_limiter *l);

/*
 * Waits for a slot: returns 0 when the call may start (inflight + 1), -1
 * when none came within timeout_ms (0: do not wait; -1: wait without
 * limit) or the limiter was woken for a stop (m2w_limiter_wake).
 */
int m2w_limiter_acquire(struct m2w_limiter *l, int64_t timeout_ms);

/*
 * The call of one successful acquire ended: rtt_us is its round trip
 * (from just before the request was sent to its answer, without the
 * time spent waiting in acquire or for a rate-limit slot), outcome an
 * enum m2w_limit_outcome. Exactly once per successful acquire.
 */
void m2w_limiter_release(struct m2w_limiter *l, int64_t rtt_us, int outcome);

unsigned m2w_limiter_limit(const struct m2w_limiter *l);
unsigned m2w_limiter_inflight(const struct m2w_limiter *l);

/*
 * Stop: every thread waiting in acquire returns -1, and so does every
 * later acquire (the limiter stays stopped). Releases still count.
 */
void m2w_limiter_wake(struct m2w_limiter *l);

void m2w_limiter_stats(struct m2w_limiter *l, struct m2w_limiter_stats *st);

#ifdef __cplusplus
}
#endif
#endif
