/*
 * record.c - the versioned binary task record, and the index keys.
 *
 * Layout (all integers big-endian, 64-byte header, then the strings
 * back to back without NULs, the JSON payload last):
 *
 *    0 u8  version (1)        1 u8  state        2 u16 type id
 *    4 u8  flags              5 u8  reserved     6 u16 attempts
 *    8 u16 max_attempts      10 u16 last HTTP status
 *   12 u32 reserved
 *   16 i64 created  24 i64 updated  32 i64 next_run  40 i64 lease expiry
 *   48 u64 lease token
 *   56 u16 idem len  58 u16 group len  60 u16 source len  62 u16 error len
 *   64 ...strings..., payload (the rest of the value)
 *
 * Decoding checks every length against the value's size, so a damaged
 * record is an M2W_ECORRUPT error and never a read out of bounds. A future
 * layout bumps the version byte; the schema version in meta covers the
 * indexes.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

void m2s_ready_key(unsigned char k[READY_KEY_LEN], uint16_t type, int64_t at,
		   uint64_t id)
{
	put_be16(k, type);
	put_be64(k + 2, (uint64_t)(at < 0 ? 0 : at));
	put_be64(k + 10, id);
}

void m2s_time_key(unsigned char k[TIME_KEY_LEN], int64_t at, uint64_t id)
{
	put_be64(k, (uint64_t)(at < 0 ? 0 : at));
	put_be64(k + 8, id);
}

int m2s_rec_view(uint64_t id, const void *data, size_t len, struct rec *r,
		 char *errbuf)
{
	const unsigned char *p = data;
	size_t need;

	if (len < REC_HEADER || p[0] != REC_VERSION)
		return m2w_fail(errbuf, M2W_ECORRUPT,
				"task %llu: record of %zu bytes, version %d, "
				"cannot be decoded", (unsigned long long)id,
				len, len ? p[0] : -1);
	r->id = id;
	r->state = p[1];
	r->type_id = get_be16(p + 2);
	r->flags = p[4];
	r->attempts = get_be16(p + 6);
	r->max_attempts = get_be16(p + 8);
	r->last_status = get_be16(p + 10);
	r->created = (int64_t)get_be64(p + 16);
	r->updated = (int64_t)get_be64(p + 24);
	r->next_run = (int64_t)get_be64(p + 32);
	r->lease_expiry = (int64_t)get_be64(p + 40);
	r->token = get_be64(p + 48);
	r->idem_len = get_be16(p + 56);
	r->group_len = get_be16(p + 58);
	r->source_len = get_be16(p + 60);
	r->error_len = get_be16(p + 62);
	need = REC_HEADER + r->idem_len + r->group_len + r->source_len +
	       r->error_len;
	if (need > len || r->state == M2W_SCHEDULED ||
	    r->state >= M2W_NSTATES || r->idem_len > M2W_KEY_MAX ||
	    r->group_len > M2W_KEY_MAX || r->source_len > REC_SOURCE_MAX ||
	    r->error_len > M2W_MESSAGE_MAX)
		return m2w_fail(errbuf, M2W_ECORRUPT,
				"task %llu: record fields do not fit its %zu "
				"bytes (state %d)", (unsigned long long)id,
				len, r->state);
	r->idem = (const char *)p + REC_HEADER;
	r->group = r->idem + r->idem_len;
	r->source = r->group + r->group_len;
	r->error = r->source + r->source_len;
	r->payload = r->error + r->error_len;
	r->payload_len = len - need;
	return M2W_OK;
}

int m2s_rec_decode(uint64_t id, const void *data, size_t len, struct rec *r,
		   char *errbuf)
{
	size_t n;
	int rc;

	memset(r, 0, offsetof(struct rec, strs));
	if ((rc = m2s_rec_view(id, data, len, r, errbuf)))
		return rc;
	n = (size_t)(r->payload - r->idem);
	memcpy(r->strs, r->idem, n);
	r->idem = r->strs;
	r->group = r->idem + r->idem_len;
	r->source = r->group + r->group_len;
	r->error = r->source + r->source_len;
	return M2W_OK;
}

size_t m2s_rec_size(const struct rec *r)
{
	return REC_HEADER + r->idem_len + r->group_len + r->source_len +
	       r->error_len + r->payload_len;
}

static unsigned char *put_str(unsigned char *p, const char *s, size_t n)
{
	if (n)
		memmove(p, s, n);
	return p + n;
}

void m2s_rec_encode(const struct rec *r, unsigned char *buf)
{
	unsigned char *p = buf;

	memset(p, 0, REC_HEADER);
	p[0] = REC_VERSION;
	p[1] = (unsigned char)r->state;
	put_be16(p + 2, r->type_id);
	p[4] = (unsigned char)r->flags;
	put_be16(p + 6, (uint16_t)r->attempts);
	put_be16(p + 8, (uint16_t)r->max_attempts);
	put_be16(p + 10, (uint16_t)r->last_status);
	put_be64(p + 16, (uint64_t)r->created);
	put_be64(p + 24, (uint64_t)r->updated);
	put_be64(p + 32, (uint64_t)r->next_run);
	put_be64(p + 40, (uint64_t)r->lease_expiry);
	put_be64(p + 48, r->token);
	put_be16(p + 56, (uint16_t)r->idem_len);
	put_be16(p + 58, (uint16_t)r->group_len);
	put_be16(p + 60, (uint16_t)r->source_len);
	put_be16(p + 62, (uint16_t)r->error_len);
	p += REC_HEADER;
	p = put_str(p, r->idem, r->idem_len);
	p = put_str(p, r->group, r->group_len);
	p = put_str(p, r->source, r->source_len);
	p = put_str(p, r->error, r->error_len);
	put_str(p, r->payload, r->payload_len);
}

static const char *copy_str(char **dst, const char *s, size_t n)
{
	char *out = *dst;

	memcpy(out, s, n);
	out[n] = '\0';
	*dst += n + 1;
	return out;
}

struct m2w_task *m2s_rec_to_task(const struct rec *r, const char *type_name,
				 int64_t now)
{
	struct m2w_task *t;
	char *s;

	t = malloc(sizeof(*t) + r->idem_len + r->group_len + r->source_len +
		   r->error_len + r->payload_len + 5);
	if (!t)
		return NULL;
	memset(t, 0, sizeof(*t));
	s = (char *)(t + 1);
	t->id = r->id;
	snprintf(t->type, sizeof(t->type), "%s", type_name);
	t->state = r->state;
	if (t->state == M2W_READY && r->next_run > now)
		t->state = M2W_SCHEDULED;
	t->attempts = r->attempts;
	t->max_attempts = r->max_attempts;
	t->supersede = r->flags & REC_SUPERSEDE ? M2W_GROUP_NEWEST
		       : r->flags & REC_EXCLUSIVE ? M2W_GROUP_EXCLUSIVE
		       : M2W_GROUP_FIFO;
	t->created_ms = r->created;
	t->updated_ms = r->updated;
	t->next_run_ms = r->next_run;
	t->lease_expiry_ms = r->lease_expiry;
	t->lease_token = r->state == M2W_LEASED ? r->token : 0;
	t->last_status = r->last_status;
	t->idem_key = copy_str(&s, r->idem, r->idem_len);
	t->group_key = copy_str(&s, r->group, r->group_len);
	t->source = copy_str(&s, r->source, r->source_len);
	t->last_error = copy_str(&s, r->error, r->error_len);
	t->payload = copy_str(&s, r->payload, r->payload_len);
	t->payload_len = r->payload_len;
	if (!r->idem_len)
		t->idem_key = NULL;
	if (!r->group_len)
		t->group_key = NULL;
	if (!r->source_len)
		t->source = NULL;
	if (!r->error_len)
		t->last_error = NULL;
	return t;
}

void m2w_task_free(struct m2w_task *t)
{
	free(t);
}

void m2w_task_list_free(struct m2w_task **ts, size_t n)
{
	size_t i;

	if (!ts)
		return;
	for (i = 0; i < n; i++)
		free(ts[i]);
	free(ts);
}
