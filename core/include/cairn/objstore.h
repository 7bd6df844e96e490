/*
 * cairn/objstore.h - the object-store contract.
 *
 * Every backend (file://, s3://) and every wrapper (fault injection, latency
 * model) implements this contract, and every upper layer uses only it.
 * Semantics follow S3, the strictest store cairn targets:
 *
 *   1. A put is atomic: a reader sees the whole new object or nothing (or
 *      the old object).  An interrupted put or multipart upload leaves no
 *      visible object.
 *   2. Keys are validated here, before any backend sees them: not empty, at
 *      most CAIRN_KEY_MAX bytes, no leading or trailing '/', no empty, "." or
 *      ".." segment, no control bytes, valid UTF-8 (S3 requires it).  A bad
 *      key is CAIRN_E_INVAL (CAIRN_E_NAMETOOLONG when too long) with the
 *      key (escaped) in the context.
 *   3. get of a range past the end of the object returns what exists (got
 *      may be 0; the bytes of buf past got, up to len, are undefined: a
 *      direct read may fill the object's last block); get of a missing key
 *      is CAIRN_E_NOTFOUND.
 *   4. delete of a missing key succeeds (S3 semantics).
 *   5. list returns keys in byte order, in pages, with an opaque token.
 *   6. Multipart: parts are numbered 1..10000; every part but the last is at
 *      least limits.min_part_size; complete makes the object visible at once
 *      and atomically; abort discards the parts.
 *
 * Many requests in flight.  All calls are synchronous and thread-safe.  To
 * keep many requests in flight, submit cairn_obj_req's to a batch: the
 * store's worker pool (opts.max_inflight threads) runs them concurrently, and
 * the caller reaps them one by one or all at once.
 *
 * Errors: CAIRN_E_NOTFOUND (no such key / upload), CAIRN_E_INVAL (bad key,
 * bad argument, S3 limit broken), CAIRN_E_STORE (store refused), CAIRN_E_AUTH,
 * CAIRN_E_PERM, CAIRN_E_NET, CAIRN_E_TIMEOUT, CAIRN_E_IO (local I/O),
 * CAIRN_E_NOMEM, CAIRN_E_CORRUPT (malformed answer, integrity check failed).
 * The context always names the operation and the key.
 */
#ifndef CAIRN_OBJSTORE_H
#define CAIRN_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/uring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_KEY_MAX 1024        /* bytes, as S3 */
#define CAIRN_UPLOAD_ID_MAX 512   /* bytes incl. NUL */
#define CAIRN_ETAG_MAX 128        /* bytes incl. NUL */
#define CAIRN_MPU_MAX_PARTS 10000

typedef struct cairn_objstore cairn_objstore;

/* Options for objstore_open.  Zeroed fields take defaults. */
typedef struct cairn_s3_opts {
	const char *endpoint;      /* https://host[:port]; default AWS, or
				      $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL */
	const char *region;        /* default $AWS_REGION, profile, us-east-1 */
	const char *profile;       /* default $AWS_PROFILE or "default" */
	const char *access_key;    /* override credentials (flags) */
	const char *secret_key;
	const char *session_token;
	const char *ca_bundle;     /* default $AWS_CA_BUNDLE, system store */
	int addressing;            /* 0 auto, 1 path-style, 2 virtual-hosted */
	int allow_http;            /* plain http:// endpoints only if set */
	unsigned connect_timeout_ms; /* default 5000 */
	unsigned stall_timeout_ms;   /* no progress for this long: retry; 30000 */
	unsigned max_retries;        /* default 8 */
} cairn_s3_opts;

typedef struct cairn_objstore_opts {
	cairn_uring *uring;     /* engine for local I/O; NULL: store opens one */
	unsigned max_inflight;  /* worker threads for batches; default 16 */
	cairn_s3_opts s3;
} cairn_objstore_opts;

typedef struct cairn_objstore_limits {
	uint64_t min_part_size;  /* every part but the last: >= this */
	uint64_t max_part_size;
	unsigned max_parts;
	uint64_t max_object_size;
	uint64_t max_put_size;   /* largest single put */
	int link_puts;           /* a put of a whole local file may take it by
				    a hard link (file:// on the same file
				    system): no bytes copied, so callers with
				    an immutable file should prefer one put
				    to a multipart upload */
	int put_if_absent;       /* objstore_put_if_absent is atomic here
				    (file://, S3 and stores that honour
				    If-None-Match); 0: it fails with
				    CAIRN_E_UNSUPPORTED */
} cairn_objstore_limits;

typedef struct cairn_obj_info {
	uint64_t size;
	int64_t mtime;                /* seconds since the epoch */
	char etag[CAIRN_ETAG_MAX];
} cairn_obj_info;

/* Where a put or a part takes its bytes from: memory (buf != NULL) or a
 * range of a local file (buf == NULL, fd >= 0).  sha256 (optional, NULL:
 * unknown) is the SHA-256 of those len bytes when the caller already knows
 * it: a backend that sends a payload hash the store verifies (s3:// over
 * plain HTTP, x-amz-content-sha256) uses it instead of reading the bytes
 * once more to compute it.  The store still checks it against the bytes
 * it receives, so a wrong one fails the request with CAIRN_E_CORRUPT
 * ("the store received different bytes than were sent"); it must stay
 * valid until the request is done. */
typedef struct cairn_obj_src {
	const void *buf;
	int fd;
	uint64_t off;
	uint64_t len;
	const uint8_t *sha256;
} cairn_obj_src;

typedef struct cairn_obj_entry {
	char *key;
	uint64_t size;
	int64_t mtime;
} cairn_obj_entry;

typedef struct cairn_obj_list {
	cairn_obj_entry *v;
	size_t n;
	char *next;   /* token for the next page; NULL when this was the last */
} cairn_obj_list;

typedef struct cairn_mpu_part {
	unsigned number;
	uint64_t size;
	char etag[CAIRN_ETAG_MAX];
} cairn_mpu_part;

/* Open a store by URL: "file:///abs/dir" or "s3://bucket[/prefix]".
 * Errors: CAIRN_E_INVAL (unknown scheme, malformed URL), backend errors. */
int objstore_open(const char *url, const cairn_objstore_opts *opts,
		  cairn_objstore **out);

/* Waits for the worker pool to drain. NULL is a no-op. */
void objstore_close(cairn_objstore *os);

/* The URL the store was opened with (for messages). Never a secret. */
const char *objstore_url(const cairn_objstore *os);
const char *objstore_scheme(const cairn_objstore *os);
void objstore_limits(const cairn_objstore *os, cairn_objstore_limits *out);

/* Validate a key as rule 2 says. Errors: CAIRN_E_INVAL,
 * CAIRN_E_NAMETOOLONG. */
int objstore_key_check(const char *key);

/* From a file (src->fd): the file's bytes in the range must not change
 * after the put returns (a store with limits.link_puts may keep the file
 * itself, by a hard link, when the source is the whole file). */
int objstore_put(cairn_objstore *os, const char *key, const cairn_obj_src *src);
int objstore_put_buf(cairn_objstore *os, const char *key, const void *buf,
		     size_t len);
/* Create key with buf only if no object has that key yet: S3's PUT with
 * If-None-Match: *, file:// by link(2) of a complete temporary file.  Of
 * any number of racing creators (threads, processes, hosts) exactly one
 * succeeds; the others get CAIRN_E_EXISTS and wrote nothing.  A retried
 * request whose first attempt did land also gets CAIRN_E_EXISTS: callers
 * that care read the object and compare (the log shipper does).
 * It counts as a put (objstore_stats, the fault wrapper's op_mask) and is
 * not a batch op.  On file:// a key that is a prefix of other keys, or
 * lies below an object, is CAIRN_E_EXISTS as for a put.
 * Errors: CAIRN_E_EXISTS, CAIRN_E_UNSUPPORTED (limits.put_if_absent is 0,
 * or an S3-compatible store answered 501 to If-None-Match), and those of
 * objstore_put. */
int objstore_put_if_absent(cairn_objstore *os, const char *key,
			   const void *buf, size_t len);
/* Read up to len bytes at off into buf; *got is how many were read. */
int objstore_get(cairn_objstore *os, const char *key, uint64_t off,
		 void *buf, uint64_t len, uint64_t *got);
int objstore_head(cairn_objstore *os, const char *key, cairn_obj_info *out);
int objstore_delete(cairn_objstore *os, const char *key);
/* Delete n keys (backends batch them, S3 by 1000).  rcs (may be NULL)
 * receives each key's result; returns the first failure or 0. */
int objstore_delete_batch(cairn_objstore *os, const char *const *keys,
			  size_t n, int *rcs);
/* One page of keys starting with prefix ("" for all), after the position
 * named by token (NULL for the first page).  max_keys 0 means 1000. */
int objstore_list(cairn_objstore *os, const char *prefix, const char *token,
		  unsigned max_keys, cairn_obj_list *out);
void objstore_list_free(cairn_obj_list *l);

int objstore_mpu_create(cairn_objstore *os, const char *key,
			char upload_id[CAIRN_UPLOAD_ID_MAX]);
int objstore_mpu_part(cairn_objstore *os, const char *key,
		      const char *upload_id, unsigned part_no,
		      const cairn_obj_src *src, cairn_mpu_part *out);
/* parts must be sorted by number, without gaps is not required (S3). */
int objstore_mpu_complete(cairn_objstore *os, const char *key,
			  const char *upload_id, const cairn_mpu_part *parts,
			  size_t n);
int objstore_mpu_abort(cairn_objstore *os, const char *key,
		       const char *upload_id);

/* Part size for part number part_no (1-based) of an object of total_len
 * bytes, or of unknown length when total_len is 0: constant when the length
 * is known (at least min_part_size, large enough that max_parts suffice),
 * and growing with part_no when it is not, so that max_parts parts reach
 * max_object_size.  preferred is the caller's wish (0: 8 MiB). */
uint64_t objstore_part_size(const cairn_objstore *os, uint64_t total_len,
			    unsigned part_no, uint64_t preferred);

/* --- many requests in flight --- */

enum {
	OBJ_OP_PUT = 1,
	OBJ_OP_GET = 2,
	OBJ_OP_HEAD = 3,
	OBJ_OP_DELETE = 4,
	OBJ_OP_MPU_PART = 5,
};

typedef struct cairn_obj_req {
	/* in */
	int op;                 /* OBJ_OP_* */
	const char *key;
	cairn_obj_src src;      /* PUT, MPU_PART */
	void *buf;              /* GET: destination */
	uint64_t off, len;      /* GET: range */
	const char *upload_id;  /* MPU_PART */
	unsigned part_no;       /* MPU_PART */
	void *user;             /* caller's cookie */
	uint64_t crc_off, crc_len; /* GET: when crc_len, the worker computes
				 * crc32c of buf[crc_off, crc_off + crc_len)
				 * after the read, while the caller waits for
				 * others (0 when fewer bytes arrived) */
	/* out */
	int rc;
	char msg[256];          /* context of a failure */
	uint64_t got;           /* GET */
	uint32_t crc;           /* GET with crc_len */
	cairn_obj_info info;    /* HEAD */
	cairn_mpu_part part;    /* MPU_PART */
	/* private */
	struct cairn_obj_req *next_;
	struct cairn_obj_batch *batch_;
} cairn_obj_req;

typedef struct cairn_obj_batch cairn_obj_batch;

int objstore_batch_new(cairn_objstore *os, cairn_obj_batch **out);
/* Queue req; it runs on the store's worker pool.  req must stay valid until
 * it is reaped.  Errors: CAIRN_E_INVAL (bad op). */
int objstore_submit(cairn_obj_batch *b, cairn_obj_req *req);
/* Block until one submitted request completes and return it in *done
 * (its rc is returned too).  CAIRN_E_INVAL when none is outstanding. */
int objstore_batch_reap(cairn_obj_batch *b, cairn_obj_req **done);
/* Wait for every outstanding request; returns the first failure (its
 * message becomes the thread's context) or 0. */
int objstore_batch_wait(cairn_obj_batch *b);
unsigned objstore_batch_outstanding(const cairn_obj_batch *b);
/* Waits for outstanding requests, then frees. NULL is a no-op. */
void objstore_batch_free(cairn_obj_batch *b);

/* --- wrappers for tests and benchmarks --- */

/* Fault injection.  The wrapper forwards to inner (which it does not own)
 * and applies the armed rule to requests as they arrive. */
enum {
	OBJ_FAULT_NONE = 0,
	OBJ_FAULT_FAIL = 1,     /* fail with rule.rc, inner not called */
	OBJ_FAULT_HANG = 2,     /* block hang_ms (or until released), then fail
				   with CAIRN_E_TIMEOUT */
	OBJ_FAULT_TRUNCATE = 3, /* GET returns only the first half of the bytes,
				   silently, as a broken store might */
	OBJ_FAULT_LATENCY = 4,  /* sleep latency_ms, then forward */
	OBJ_FAULT_FAIL_AFTER = 5, /* forward, then report rule.rc anyway (the
				   request took effect but the answer was lost) */
};

typedef struct cairn_obj_fault {
	int kind;          /* OBJ_FAULT_* */
	uint64_t nth;      /* 1-based index of the request to hit (counted from
			      objstore_fault_arm); 0 = every request */
	int op_mask;       /* bit (1 << OBJ_OP_*) of ops counted; 0 = all, where
			      list is op 6, mpu create 7, complete 8, abort 9,
			      delete_batch 10 */
	int rc;            /* code for FAIL / FAIL_AFTER; default CAIRN_E_STORE */
	unsigned hang_ms;
	unsigned latency_ms;
	int sticky;        /* keep failing every matching request from nth on */
} cairn_obj_fault;

#define OBJ_OP_LIST 6
#define OBJ_OP_MPU_CREATE 7
#define OBJ_OP_MPU_COMPLETE 8
#define OBJ_OP_MPU_ABORT 9
#define OBJ_OP_DELETE_BATCH 10

int objstore_fault_wrap(cairn_objstore *inner, cairn_objstore **out);
/* Arm a rule on a store made by objstore_fault_wrap; resets the counter. */
int objstore_fault_arm(cairn_objstore *os, const cairn_obj_fault *rule);
/* Requests seen since the last arm (matching op_mask). */
uint64_t objstore_fault_count(const cairn_objstore *os);
/* Wake any request blocked by OBJ_FAULT_HANG. */
void objstore_fault_release(cairn_objstore *os);

/* Latency and bandwidth model of a remote store, for benchmarks: every
 * request waits first_byte_ms before its first byte, and the bytes of all
 * requests share one link of bandwidth_bps bytes/s (0: unlimited). */
int objstore_latency_wrap(cairn_objstore *inner, unsigned first_byte_ms,
			  uint64_t bandwidth_bps, cairn_objstore **out);

/* Requests and bytes that went through a store since open (all ops). */
typedef struct cairn_objstore_stats {
	uint64_t requests[11];   /* by OBJ_OP_* */
	uint64_t bytes_up, bytes_down;
} cairn_objstore_stats;
void objstore_stats(const cairn_objstore *os, cairn_objstore_stats *out);

#ifdef __cplusplus
}
#endif
#endif
