/*
 * cairn/err.h - the one error enum of the project, and error context.
 *
 * Every fallible function in cairn returns an int that is either CAIRN_OK (0)
 * or one of the cairn_rc codes below (always positive).  Codes are never
 * renumbered or reused: new codes are appended before CAIRN_E__COUNT.
 *
 * Context.  A code says *what kind* of failure; the context message says
 * what failed, on which object or file, and why ("objstore put 'seg/1': open
 * /var/x/tmp/ab12: No space left on device").  The message lives in a
 * thread-local buffer:
 *
 *     return cairn_errf(CAIRN_E_IO, "open %s: %s", path, strerror(errno));
 *
 * sets it and returns the code in one step, and a caller that adds context
 * on the way up prepends to it:
 *
 *     if (rc) return cairn_err_wrap(rc, "segment %s", id);
 *
 * The CLI prints cairn_errmsg() as its one line.  Functions that complete on
 * another thread (asynchronous requests) copy the message into their request
 * structure with cairn_err_copy(), so it is never lost across threads.
 *
 * Sign conventions at the boundaries:
 *   - liburing and raw syscalls wrapped by cairn return -errno; translate with
 *     cairn_rc_from_errno(positive errno).
 *   - cairn_rc_to_errno() gives the positive errno FUSE's fuse_reply_err takes.
 */
#ifndef CAIRN_ERR_H
#define CAIRN_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cairn_rc {
	CAIRN_OK = 0,
	CAIRN_E_NOMEM = 1,        /* out of memory */
	CAIRN_E_INVAL = 2,        /* invalid argument or flag */
	CAIRN_E_IO = 3,           /* local I/O error */
	CAIRN_E_NOTFOUND = 4,     /* no such object, file or entry */
	CAIRN_E_EXISTS = 5,       /* already exists */
	CAIRN_E_CORRUPT = 6,      /* checksum mismatch or malformed data */
	CAIRN_E_UNSUPPORTED = 7,  /* operation or feature not supported */
	CAIRN_E_STORE = 8,        /* object store answered with an error */
	CAIRN_E_TIMEOUT = 9,      /* operation timed out */
	CAIRN_E_NOSPC = 10,       /* no space left (disk, map, cap) */
	CAIRN_E_PERM = 11,        /* permission denied */
	CAIRN_E_BUSY = 12,        /* resource held by another owner */
	CAIRN_E_RANGE = 13,       /* value out of range, too large */
	CAIRN_E_AUTH = 14,        /* bad or missing credentials */
	CAIRN_E_NET = 15,         /* network unreachable, connection failed */
	CAIRN_E_VERSION = 16,     /* record or format of an unknown version */
	CAIRN_E_CANCELED = 17,    /* canceled, e.g. by an earlier failure */
	CAIRN_E_INTERNAL = 18,    /* a bug: an invariant did not hold */
	CAIRN_E_NOTDIR = 19,      /* not a directory */
	CAIRN_E_ISDIR = 20,       /* is a directory */
	CAIRN_E_NOTEMPTY = 21,    /* directory not empty */
	CAIRN_E_NAMETOOLONG = 22, /* name or key too long */
	CAIRN_E_NODATA = 23,      /* no such attribute */
	CAIRN_E_XDEV = 24,        /* cross-volume or cross-tree link */
	CAIRN_E_LOOP = 25,        /* too many symbolic links */
	CAIRN_E_ROFS = 26,        /* read-only file system or snapshot */
	CAIRN_E_AGAIN = 27,       /* try again (transient) */
	CAIRN_E_BADF = 28,        /* bad handle */
	CAIRN_E_FBIG = 29,        /* file too large */
	CAIRN_E_MLINK = 30,       /* too many links */
	CAIRN_E_NXIO = 31,        /* no such offset (SEEK_DATA/SEEK_HOLE past
	                             the data or the end of file) */
	CAIRN_E_FENCED = 32,      /* another writer holds the volume now:
	                             this one may no longer publish */
	CAIRN_E__COUNT            /* keep last; never a return value */
} cairn_rc;

/* Static, one-line description of a code ("object store error"). Never NULL. */
const char *cairn_strerror(int rc);

/* Stable identifier of a code ("CAIRN_E_STORE"), for --json output. */
const char *cairn_rc_name(int rc);

/* Set the thread's context message and return rc (printf-style). */
int cairn_errf(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prepend "<context>: " to the thread's message and return rc.  If no
 * message was set for rc, the code's cairn_strerror() text is used. */
int cairn_err_wrap(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The thread's context message, or "" when none is set. */
const char *cairn_errmsg(void);

/* Clear the thread's context message. */
void cairn_err_clear(void);

/* Copy the thread's context message into buf (always NUL-terminated). */
void cairn_err_copy(char *buf, size_t size);

/* Set the thread's context message verbatim (carrying a message from a
 * request completed on another thread back to the waiting thread). */
int cairn_err_set(int rc, const char *msg);

/* errno (positive) -> cairn code, and back (positive errno, for FUSE). */
int cairn_rc_from_errno(int err);
int cairn_rc_to_errno(int rc);

#ifdef __cplusplus
}
#endif
#endif
