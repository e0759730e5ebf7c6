/*
 * error.h - the one error enum of m2worker.
 *
 * Every library call returns an enum m2w_err (M2W_OK == 0). The numbers
 * never change: new codes are added at the end. Codes of the libraries we
 * sit on (MDB_*, errno, later CURLE_*) are translated at the module
 * boundary; the original code and text go to the caller's error buffer.
 *
 * Error buffers (curl's CURLOPT_ERRORBUFFER habit): calls that can fail take
 * `char *errbuf`, either NULL or M2W_ERRBUF_SIZE bytes owned by the caller.
 * On failure the library writes one human line there ("task 42: lease token
 * is stale"); on success it is left untouched.
 */
#ifndef M2WORKER_ERROR_H
#define M2WORKER_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define M2W_ERRBUF_SIZE 256

enum m2w_err {
	M2W_OK = 0,
	M2W_EINVAL = 1,    /* bad argument or bad input (detail says which) */
	M2W_ENOTFOUND = 2, /* no such task, store or type */
	M2W_ESTALE = 3,    /* lease token stale or unknown: task re-leased or ended */
	M2W_ESTATE = 4,    /* task is not in a state that allows this */
	M2W_EFULL = 5,     /* store full: the map reached its configured maximum */
	M2W_ENOSPC = 6,    /* the disk under the store is full */
	M2W_ESCHEMA = 7,   /* store written by another schema version */
	M2W_ECORRUPT = 8,  /* a record or index that cannot be decoded */
	M2W_ESTORE = 9,    /* any other LMDB failure (detail has MDB's text) */
	M2W_ENOMEM = 10,   /* out of memory */
	M2W_EIO = 11,      /* a system call failed (detail has strerror) */
	M2W_EBUSY = 12,    /* the store is locked or shutting down */
	/* Magento calls (magento.h); the m2_result has status and message */
	M2W_ETRANSIENT = 13, /* connect error, timeout, 5xx, 429: retry later */
	M2W_EPERMANENT = 14, /* 400, 404, other 4xx: this payload will not work */
	M2W_EAUTH = 15,      /* credentials rejected (after one renewal) */
	M2W_EPROTO = 16,     /* a response we cannot read (not JSON, bad shape) */
	M2W_ERR_COUNT
};

/*
 * How a failed attempt counts (the store's fail() and the client's results).
 */
enum m2w_class {
	M2W_CLASS_OK = 0,
	M2W_CLASS_TRANSIENT = 1,  /* retry with backoff */
	M2W_CLASS_PERMANENT = 2,  /* dead at once */
	M2W_CLASS_AUTH = 3        /* retried like transient; kept apart in history */
};

/* A static, never-NULL description of `err` ("lease token is stale"). */
const char *m2w_strerror(int err);

/*
 * Formats "fmt ..." into errbuf (when not NULL) and returns err, so that a
 * failing path stays one line: `return m2w_fail(errbuf, M2W_EINVAL, "...")`.
 */
int m2w_fail(char *errbuf, int err, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

#ifdef __cplusplus
}
#endif
#endif
