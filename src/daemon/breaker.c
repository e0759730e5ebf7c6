/*
 * breaker.c - the circuit breaker in front of Magento (see worker.h).
 *
 *   closed --(threshold consecutive failures)--> open
 *   open --(cooldown over: one worker is let through)--> half-open
 *   half-open --(probe ok)--> closed;  --(probe failed)--> open again
 *
 * While open or half-open every other worker is told to wait; the pool
 * snoozes what it had leased, so no attempt is burnt during an outage.
 *
 * A change reports what made it (struct m2w_breaker_change): the failures
 * in a row that opened it, or the probe and how long the breaker had been
 * open since it left closed, so its log line says what happened, never a
 * count that is no longer current.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "worker.h"

static const char *const names[] = { "closed", "open", "half-open" };

const char *m2w_breaker_name(int state)
{
	return state >= 0 && state <= 2 ? names[state] : "?";
}

void m2w_breaker_init(struct m2w_breaker *b, unsigned threshold,
		      int64_t cooldown_ms)
{
	pthread_mutex_init(&b->mu, NULL);
	b->state = M2W_BREAKER_CLOSED;
	b->failures = 0;
	b->threshold = threshold ? threshold : 1;
	b->cooldown_ms = cooldown_ms > 0 ? cooldown_ms : 1000;
	b->open_until = 0;
}

void m2w_breaker_destroy(struct m2w_breaker *b)
{
	pthread_mutex_destroy(&b->mu);
}

int m2w_breaker_allow(struct m2w_breaker *b, int64_t now, int *probe,
		      int64_t *wait_ms)
{
	int ok = 1;

	*probe = 0;
	*wait_ms = 0;
	pthread_mutex_lock(&b->mu);
	if (b->state == M2W_BREAKER_OPEN && now >= b->open_until) {
		b->state = M2W_BREAKER_HALF_OPEN; /* this caller probes */
		*probe = 1;
	} else if (b->state == M2W_BREAKER_OPEN) {
		ok = 0;
		*wait_ms = b->open_until - now;
	} else if (b->state == M2W_BREAKER_HALF_OPEN) {
		ok = 0; /* the probe is out */
		*wait_ms = 200;
	}
	pthread_mutex_unlock(&b->mu);
	return ok;
}

int m2w_breaker_result(struct m2w_breaker *b, int64_t now, int probe,
		       int failed, struct m2w_breaker_change *ch)
{
	struct m2w_breaker_change c;
	int before;

	memset(&c, 0, sizeof(c));
	pthread_mutex_lock(&b->mu);
	before = b->state;
	if (probe) {
		b->state = failed ? M2W_BREAKER_OPEN : M2W_BREAKER_CLOSED;
		b->failures = 0;
		c.probe = 1;
		c.open_ms = now - b->opened_at;
	} else if (b->state == M2W_BREAKER_CLOSED) {
		b->failures = failed ? b->failures + 1 : 0;
		if (b->failures >= b->threshold) {
			b->state = M2W_BREAKER_OPEN;
			c.failures = b->failures;
			b->failures = 0;
			b->opened_at = now;
		}
	}
	if (b->state == M2W_BREAKER_OPEN && before != M2W_BREAKER_OPEN)
		b->open_until = now + b->cooldown_ms;
	c.state = b->state;
	c.cooldown_ms = b->cooldown_ms;
	pthread_mutex_unlock(&b->mu);
	if (c.state == before)
		return -1;
	if (ch)
		*ch = c;
	return c.state;
}

char *m2w_breaker_describe(const struct m2w_breaker_change *ch, char *out,
			   size_t len)
{
	if (ch->state == M2W_BREAKER_OPEN && !ch->probe)
		snprintf(out, len, "state=open failures_in_a_row=%u "
			 "cooldown_ms=%lld", ch->failures,
			 (long long)ch->cooldown_ms);
	else if (ch->state == M2W_BREAKER_OPEN)
		snprintf(out, len, "state=open probe=failed open_ms=%lld "
			 "cooldown_ms=%lld", (long long)ch->open_ms,
			 (long long)ch->cooldown_ms);
	else   /* closed: only a probe closes it */
		snprintf(out, len, "state=closed probe=ok open_ms=%lld",
			 (long long)ch->open_ms);
	return out;
}

void m2w_breaker_unprobe(struct m2w_breaker *b)
{
	pthread_mutex_lock(&b->mu);
	if (b->state == M2W_BREAKER_HALF_OPEN) {
		b->state = M2W_BREAKER_OPEN;
		b->open_until = 0;
	}
	pthread_mutex_unlock(&b->mu);
}

int m2w_breaker_state(struct m2w_breaker *b)
{
	int s;

	pthread_mutex_lock(&b->mu);
	s = b->state;
	pthread_mutex_unlock(&b->mu);
	return s;
}
