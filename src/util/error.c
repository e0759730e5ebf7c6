/*
 * error.c - the error enum's texts and the report-and-return helper.
 *
 * Texts are indexed by code; codes never change (error.h), so this table
 * only ever grows at its end.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "m2worker/error.h"

static const char *const texts[M2W_ERR_COUNT] = {
	[M2W_OK] = "success",
	[M2W_EINVAL] = "invalid argument or input",
	[M2W_ENOTFOUND] = "not found",
	[M2W_ESTALE] = "lease token is stale or unknown",
	[M2W_ESTATE] = "task is not in a state that allows this",
	[M2W_EFULL] = "store full",
	[M2W_ENOSPC] = "disk full",
	[M2W_ESCHEMA] = "store schema version mismatch",
	[M2W_ECORRUPT] = "store data is corrupt",
	[M2W_ESTORE] = "store (LMDB) error",
	[M2W_ENOMEM] = "out of memory",
	[M2W_EIO] = "system call failed",
	[M2W_EBUSY] = "busy",
	[M2W_ETRANSIENT] = "Magento is unavailable for now",
	[M2W_EPERMANENT] = "Magento refused the request",
	[M2W_EAUTH] = "Magento refused the credentials",
	[M2W_EPROTO] = "unreadable response from Magento",
};

const char *m2w_strerror(int err)
{
	if (err < 0 || err >= M2W_ERR_COUNT || !texts[err])
		return "unknown error";
	return texts[err];
}

int m2w_fail(char *errbuf, int err, const char *fmt, ...)
{
	va_list ap;

	if (errbuf) {
		va_start(ap, fmt);
		vsnprintf(errbuf, M2W_ERRBUF_SIZE, fmt, ap);
		va_end(ap);
	}
	return err;
}
