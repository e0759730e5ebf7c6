/*
 * backoff.c - retry policies and backoff delays.
 *
 * Delay before retry n: d = min(cap, base * 2^(n-1)), then "jitter down":
 * a uniform draw from [d * (100 - jitter) / 100, d]. Jitter spreads the
 * retries of tasks that failed together (an outage) so they do not come
 * back in one wave; drawing below d keeps the cap a true upper bound.
 * Policies live in the handle (set at start by the daemon from its config),
 * not in the store: producers and qctl never need them.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

void m2w_policy_default(struct m2w_policy *p)
{
	p->max_attempts = 10;
	p->backoff_base_ms = 10000;
	p->backoff_cap_ms = 3600000;
	p->jitter_pct = 20;
}

int64_t m2w_backoff_delay(const struct m2w_policy *p, unsigned attempt,
			  uint32_t rnd)
{
	int64_t d = p->backoff_base_ms > 0 ? p->backoff_base_ms : 1;
	int64_t cap = p->backoff_cap_ms > 0 ? p->backoff_cap_ms : d;
	unsigned j = p->jitter_pct > 100 ? 100 : p->jitter_pct;
	int64_t span;

	while (attempt-- > 1 && d < cap)
		d *= 2;
	if (d > cap)
		d = cap;
	span = d * (int64_t)j / 100;
	/* rnd / 2^32 in [0, 1): subtract that share of the span */
	return d - (int64_t)(((uint64_t)span * rnd) >> 32);
}

int m2w_queue_set_policy(struct m2w_queue *q, const char *type,
			 const struct m2w_policy *p, char *errbuf)
{
	struct policy_entry *e;
	size_t i;

	if (!m2s_valid_type_name(type))
		return m2w_fail(errbuf, M2W_EINVAL, "bad type name \"%s\"",
				type ? type : "");
	if (p->max_attempts < 1 || p->backoff_base_ms < 0 ||
	    p->backoff_cap_ms < p->backoff_base_ms || p->jitter_pct > 100)
		return m2w_fail(errbuf, M2W_EINVAL,
				"policy of %s: need max_attempts >= 1, "
				"0 <= base <= cap, jitter <= 100", type);
	for (i = 0; i < q->npolicies; i++)
		if (strcmp(q->policies[i].type, type) == 0) {
			q->policies[i].p = *p;
			return M2W_OK;
		}
	e = realloc(q->policies, (q->npolicies + 1) * sizeof(*e));
	if (!e)
		return m2w_fail(errbuf, M2W_ENOMEM, "out of memory");
	q->policies = e;
	e += q->npolicies++;
	strcpy(e->type, type);
	e->p = *p;
	return M2W_OK;
}

const struct m2w_policy *m2s_policy(struct m2w_queue *q, const char *type)
{
	static const struct m2w_policy def = { 10, 10000, 3600000, 20 };
	size_t i;

	for (i = 0; i < q->npolicies; i++)
		if (strcmp(q->policies[i].type, type) == 0)
			return &q->policies[i].p;
	return &def;
}
