/*
 * err.c - the project's error codes and the thread-local context message.
 *
 * Invariants
 *   1. Every code below CAIRN_E__COUNT has a name and a message; the tables
 *      are indexed by code, so a new code appended to the enum without a
 *      table entry fails the static assertion below.
 *   2. The context buffer is per thread and bounded (CAIRN_ERRMSG_MAX); a
 *      longer message is cut, never overflows.
 *   3. Messages are scrubbed of registered secrets (log.c) before they are
 *      stored, so printing cairn_errmsg() can never leak a secret.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cairn/err.h"
#include "cairn/log.h"

#define CAIRN_ERRMSG_MAX 1024

static const struct {
	const char *name;
	const char *msg;
} rc_table[] = {
	[CAIRN_OK] = {"CAIRN_OK", "success"},
	[CAIRN_E_NOMEM] = {"CAIRN_E_NOMEM", "out of memory"},
	[CAIRN_E_INVAL] = {"CAIRN_E_INVAL", "invalid argument"},
	[CAIRN_E_IO] = {"CAIRN_E_IO", "I/O error"},
	[CAIRN_E_NOTFOUND] = {"CAIRN_E_NOTFOUND", "not found"},
	[CAIRN_E_EXISTS] = {"CAIRN_E_EXISTS", "already exists"},
	[CAIRN_E_CORRUPT] = {"CAIRN_E_CORRUPT", "data is corrupt (checksum mismatch or malformed)"},
	[CAIRN_E_UNSUPPORTED] = {"CAIRN_E_UNSUPPORTED", "not supported"},
	[CAIRN_E_STORE] = {"CAIRN_E_STORE", "object store error"},
	[CAIRN_E_TIMEOUT] = {"CAIRN_E_TIMEOUT", "timed out"},
	[CAIRN_E_NOSPC] = {"CAIRN_E_NOSPC", "no space left"},
	[CAIRN_E_PERM] = {"CAIRN_E_PERM", "permission denied"},
	[CAIRN_E_BUSY] = {"CAIRN_E_BUSY", "in use by another owner"},
	[CAIRN_E_RANGE] = {"CAIRN_E_RANGE", "value out of range"},
	[CAIRN_E_AUTH] = {"CAIRN_E_AUTH", "authentication failed"},
	[CAIRN_E_NET] = {"CAIRN_E_NET", "network error"},
	[CAIRN_E_VERSION] = {"CAIRN_E_VERSION", "unknown format version"},
	[CAIRN_E_CANCELED] = {"CAIRN_E_CANCELED", "canceled"},
	[CAIRN_E_INTERNAL] = {"CAIRN_E_INTERNAL", "internal error"},
	[CAIRN_E_NOTDIR] = {"CAIRN_E_NOTDIR", "not a directory"},
	[CAIRN_E_ISDIR] = {"CAIRN_E_ISDIR", "is a directory"},
	[CAIRN_E_NOTEMPTY] = {"CAIRN_E_NOTEMPTY", "directory not empty"},
	[CAIRN_E_NAMETOOLONG] = {"CAIRN_E_NAMETOOLONG", "name too long"},
	[CAIRN_E_NODATA] = {"CAIRN_E_NODATA", "no such attribute"},
	[CAIRN_E_XDEV] = {"CAIRN_E_XDEV", "cross-tree link not allowed"},
	[CAIRN_E_LOOP] = {"CAIRN_E_LOOP", "too many levels of symbolic links"},
	[CAIRN_E_ROFS] = {"CAIRN_E_ROFS", "read-only"},
	[CAIRN_E_AGAIN] = {"CAIRN_E_AGAIN", "resource temporarily unavailable"},
	[CAIRN_E_BADF] = {"CAIRN_E_BADF", "bad handle"},
	[CAIRN_E_FBIG] = {"CAIRN_E_FBIG", "file too large"},
	[CAIRN_E_MLINK] = {"CAIRN_E_MLINK", "too many links"},
	[CAIRN_E_NXIO] = {"CAIRN_E_NXIO", "no such device or address"},
	[CAIRN_E_FENCED] = {"CAIRN_E_FENCED", "fenced: another writer took over the volume"},
};

_Static_assert(sizeof rc_table / sizeof rc_table[0] == CAIRN_E__COUNT,
	       "every cairn_rc needs a name and a message");

static _Thread_local char errmsg[CAIRN_ERRMSG_MAX];

static int rc_valid(int rc)
{
	return rc >= 0 && rc < CAIRN_E__COUNT;
}

const char *cairn_strerror(int rc)
{
	return rc_valid(rc) ? rc_table[rc].msg : "unknown error code";
}

const char *cairn_rc_name(int rc)
{
	return rc_valid(rc) ? rc_table[rc].name : "CAIRN_E_UNKNOWN";
}

int cairn_errf(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof errmsg, fmt, ap);
	va_end(ap);
	cairn_log_scrub(errmsg, sizeof errmsg);
	return rc;
}

int cairn_err_wrap(int rc, const char *fmt, ...)
{
	char prefix[CAIRN_ERRMSG_MAX];
	char old[CAIRN_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	if (errmsg[0])
		memcpy(old, errmsg, sizeof old);
	else
		snprintf(old, sizeof old, "%s", cairn_strerror(rc));
	snprintf(errmsg, sizeof errmsg, "%s: %s", prefix, old);
	cairn_log_scrub(errmsg, sizeof errmsg);
	return rc;
}

const char *cairn_errmsg(void)
{
	return errmsg;
}

void cairn_err_clear(void)
{
	errmsg[0] = '\0';
}

void cairn_err_copy(char *buf, size_t size)
{
	if (size == 0)
		return;
	snprintf(buf, size, "%s", errmsg);
}

int cairn_err_set(int rc, const char *msg)
{
	snprintf(errmsg, sizeof errmsg, "%s", msg ? msg : "");
	cairn_log_scrub(errmsg, sizeof errmsg);
	return rc;
}

int cairn_rc_from_errno(int err)
{
	switch (err) {
	case 0: return CAIRN_OK;
	case ENOMEM: return CAIRN_E_NOMEM;
	case EINVAL: return CAIRN_E_INVAL;
	case ENOENT: return CAIRN_E_NOTFOUND;
	case EEXIST: return CAIRN_E_EXISTS;
	case ENOSPC: case EDQUOT: return CAIRN_E_NOSPC;
	case EACCES: case EPERM: return CAIRN_E_PERM;
	case EBUSY: return CAIRN_E_BUSY;
	case ERANGE: case E2BIG: case EOVERFLOW: return CAIRN_E_RANGE;
	case ETIMEDOUT: return CAIRN_E_TIMEOUT;
	case ENOSYS: case EOPNOTSUPP: return CAIRN_E_UNSUPPORTED;
	case ECANCELED: return CAIRN_E_CANCELED;
	case ENOTDIR: return CAIRN_E_NOTDIR;
	case EISDIR: return CAIRN_E_ISDIR;
	case ENOTEMPTY: return CAIRN_E_NOTEMPTY;
	case ENAMETOOLONG: return CAIRN_E_NAMETOOLONG;
	case ENODATA: return CAIRN_E_NODATA;
	case EXDEV: return CAIRN_E_XDEV;
	case ELOOP: return CAIRN_E_LOOP;
	case EROFS: return CAIRN_E_ROFS;
	case EAGAIN: case EINTR: return CAIRN_E_AGAIN;
	case EBADF: return CAIRN_E_BADF;
	case EFBIG: return CAIRN_E_FBIG;
	case EMLINK: return CAIRN_E_MLINK;
	case ENXIO: return CAIRN_E_NXIO;
	case ECONNREFUSED: case ECONNRESET: case EHOSTUNREACH:
	case ENETUNREACH: case EPIPE: return CAIRN_E_NET;
	default: return CAIRN_E_IO;
	}
}

int cairn_rc_to_errno(int rc)
{
	switch (rc) {
	case CAIRN_OK: return 0;
	case CAIRN_E_NOMEM: return ENOMEM;
	case CAIRN_E_INVAL: return EINVAL;
	case CAIRN_E_NOTFOUND: return ENOENT;
	case CAIRN_E_EXISTS: return EEXIST;
	case CAIRN_E_UNSUPPORTED: return EOPNOTSUPP;
	case CAIRN_E_TIMEOUT: return ETIMEDOUT;
	case CAIRN_E_NOSPC: return ENOSPC;
	case CAIRN_E_PERM: case CAIRN_E_AUTH: return EACCES;
	case CAIRN_E_BUSY: return EBUSY;
	case CAIRN_E_RANGE: return ERANGE;
	case CAIRN_E_CANCELED: return ECANCELED;
	case CAIRN_E_NOTDIR: return ENOTDIR;
	case CAIRN_E_ISDIR: return EISDIR;
	case CAIRN_E_NOTEMPTY: return ENOTEMPTY;
	case CAIRN_E_NAMETOOLONG: return ENAMETOOLONG;
	case CAIRN_E_NODATA: return ENODATA;
	case CAIRN_E_XDEV: return EXDEV;
	case CAIRN_E_LOOP: return ELOOP;
	case CAIRN_E_ROFS: return EROFS;
	case CAIRN_E_AGAIN: return EAGAIN;
	case CAIRN_E_BADF: return EBADF;
	case CAIRN_E_FBIG: return EFBIG;
	case CAIRN_E_MLINK: return EMLINK;
	case CAIRN_E_NXIO: return ENXIO;
	case CAIRN_E_FENCED: return EROFS;
	default: return EIO; /* IO, CORRUPT, STORE, NET, VERSION, INTERNAL */
	}
}
