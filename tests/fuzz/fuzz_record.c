/*
 * fuzz_record.c - libFuzzer target: the binary task record (src/record.c).
 *
 * The input is one stored value of the tasks index, as LMDB would hand it
 * to m2s_rec_decode. A value that does not decode must be refused with
 * M2W_ECORRUPT and an error text (never read out of bounds: ASan watches
 * the exact-size copy the input is put in). A value that decodes must
 * survive the round trip:
 *   - m2s_rec_size() is the input's size, and m2s_rec_encode() gives back the
 *     input byte for byte, except the reserved header bytes (5, 12..15),
 *     which the encoder writes as zeros;
 *   - decoding that encoding gives the same fields and strings;
 *   - m2s_rec_to_task() copies every string NUL-terminated, maps READY with a
 *     future next_run to SCHEDULED and keeps the lease token only while
 *     LEASED.
 * Any difference aborts (a crash for libFuzzer). The index keys
 * (m2s_ready_key, m2s_time_key) are built from the decoded times and
 * checked for their big-endian order too.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define CHECK(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "fuzz_record: %s:%d: %s\n", __FILE__, \
				__LINE__, #c); \
			abort(); \
		} \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_str(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static void check_same(const struct rec *a, const struct rec *b)
{
	CHECK(a->id == b->id);
	CHECK(a->state == b->state);
	CHECK(a->type_id == b->type_id);
	CHECK(a->flags == b->flags);
	CHECK(a->attempts == b->attempts);
	CHECK(a->max_attempts == b->max_attempts);
	CHECK(a->last_status == b->last_status);
	CHECK(a->created == b->created);
	CHECK(a->updated == b->updated);
	CHECK(a->next_run == b->next_run);
	CHECK(a->lease_expiry == b->lease_expiry);
	CHECK(a->token == b->token);
	CHECK(same_str(a->idem, a->idem_len, b->idem, b->idem_len));
	CHECK(same_str(a->group, a->group_len, b->group, b->group_len));
	CHECK(same_str(a->source, a->source_len, b->source, b->source_len));
	CHECK(same_str(a->error, a->error_len, b->error, b->error_len));
	CHECK(same_str(a->payload, a->payload_len, b->payload,
		       b->payload_len));
}

/* A task string: NULL exactly when the record's is empty, else a
 * NUL-terminated copy. */
static void check_task_str(const char *t, const char *s, size_t n)
{
	if (n == 0) {
		CHECK(t == NULL);
		return;
	}
	CHECK(t != NULL);
	CHECK(memcmp(t, s, n) == 0 && t[n] == '\0');
}

static void check_task(const struct rec *r, int64_t now)
{
	struct m2w_task *t = m2s_rec_to_task(r, "tracking", now);

	CHECK(t != NULL);
	CHECK(t->id == r->id);
	CHECK(strcmp(t->type, "tracking") == 0);
	if (r->state == M2W_READY && r->next_run > now)
		CHECK(t->state == M2W_SCHEDULED);
	else
		CHECK(t->state == r->state);
	CHECK(t->lease_token == (r->state == M2W_LEASED ? r->token : 0));
	CHECK(t->supersede == (r->flags & REC_SUPERSEDE ? M2W_GROUP_NEWEST
			       : r->flags & REC_EXCLUSIVE ? M2W_GROUP_EXCLUSIVE
							  : M2W_GROUP_FIFO));
	check_task_str(t->idem_key, r->idem, r->idem_len);
	check_task_str(t->group_key, r->group, r->group_len);
	check_task_str(t->source, r->source, r->source_len);
	check_task_str(t->last_error, r->error, r->error_len);
	CHECK(t->payload != NULL && t->payload_len == r->payload_len);
	CHECK(memcmp(t->payload, r->payload, r->payload_len) == 0 &&
	      t->payload[r->payload_len] == '\0');
	m2w_task_free(t);
}

static void check_keys(const struct rec *r)
{
	unsigned char rk[READY_KEY_LEN], tk[TIME_KEY_LEN];
	uint64_t at = (uint64_t)(r->next_run < 0 ? 0 : r->next_run);

	m2s_ready_key(rk, r->type_id, r->next_run, r->id);
	CHECK(get_be16(rk) == r->type_id);
	CHECK(get_be64(rk + 2) == at);
	CHECK(get_be64(rk + 10) == r->id);
	m2s_time_key(tk, r->lease_expiry, r->id);
	CHECK(get_be64(tk) ==
	      (uint64_t)(r->lease_expiry < 0 ? 0 : r->lease_expiry));
	CHECK(get_be64(tk + 8) == r->id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rec r1, r2; /* large (strs); static keeps them off
				   * the stack */
	char errbuf[M2W_ERRBUF_SIZE];
	unsigned char *copy, *enc;
	uint64_t id = 42;
	size_t i, n;
	int rc;

	/* an exact-size copy: any read past the value is an ASan report */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (size >= 8)
		id = get_be64(data + size - 8) | 1; /* any id, never 0 */

	errbuf[0] = '\0';
	rc = m2s_rec_decode(id, copy, size, &r1, errbuf);
	if (rc != M2W_OK) {
		CHECK(rc == M2W_ECORRUPT);
		CHECK(errbuf[0] != '\0' && strlen(errbuf) < sizeof(errbuf));
		free(copy);
		return 0;
	}
	CHECK(r1.id == id);
	CHECK(r1.state != M2W_SCHEDULED && r1.state < M2W_NSTATES);
	n = m2s_rec_size(&r1);
	CHECK(n == size);

	enc = malloc(n);
	CHECK(enc != NULL);
	m2s_rec_encode(&r1, enc);
	for (i = 0; i < n; i++) {
		int reserved = i == 5 || (i >= 12 && i < 16);

		CHECK(enc[i] == (reserved ? 0 : data[i]));
	}

	/* the payload points into the value: decode the encoding from a
	 * buffer of its own, then compare */
	rc = m2s_rec_decode(id, enc, n, &r2, errbuf);
	CHECK(rc == M2W_OK);
	check_same(&r1, &r2);
	CHECK(r2.payload >= (const char *)enc &&
	      r2.payload + r2.payload_len == (const char *)enc + n);

	check_task(&r2, r2.next_run);     /* due now */
	if (r2.next_run > INT64_MIN)
		check_task(&r2, r2.next_run - 1); /* not yet due */
	check_keys(&r2);

	free(enc);
	free(copy);
	return 0;
}
