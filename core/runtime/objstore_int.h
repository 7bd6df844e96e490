/*
 * objstore_int.h - what a backend implements (private to core/runtime).
 *
 * A backend is one file (os_file.c, os_s3.c, os_fault.c, os_latency.c) that
 * exports one const struct objstore_backend, like curl's struct Curl_ssl.
 * objstore.c owns everything common: URL dispatch, key validation (so a
 * backend never sees an invalid key), S3's multipart limits, request
 * statistics, and the worker pool that runs batches.  Backend functions are
 * synchronous and must be thread-safe; they report failures with cairn_errf()
 * (the context need not repeat the key: objstore.c prefixes "<op> '<key>'").
 *
 * To add a backend: write os_NAME.c with a `const struct objstore_backend
 * objstore_NAME`, add it to the table in objstore.c and to
 * core/runtime/CMakeLists.txt, and run tests/objstore/conformance against it.
 */
#ifndef CAIRN_OBJSTORE_INT_H
#define CAIRN_OBJSTORE_INT_H

#include "cairn/objstore.h"

struct objstore_backend {
	const char *scheme; /* "file", "s3"; NULL for wrappers */

	/* url is the whole URL; opts never NULL. *impl is the backend's state. */
	int (*open)(const char *url, const cairn_objstore_opts *opts,
		    void **impl);
	void (*close)(void *impl);
	void (*limits)(void *impl, cairn_objstore_limits *out);

	int (*put)(void *impl, const char *key, const cairn_obj_src *src);
	/* optional: create key only if absent, atomically (objstore.h); 0 or
	 * CAIRN_E_EXISTS (nothing written).  NULL: limits.put_if_absent is 0
	 * and objstore_put_if_absent answers CAIRN_E_UNSUPPORTED.  A backend
	 * with it sets limits.put_if_absent (a wrapper copies its inner
	 * store's). */
	int (*put_if_absent)(void *impl, const char *key, const void *buf,
			     size_t len);
	int (*get)(void *impl, const char *key, uint64_t off, void *buf,
		   uint64_t len, uint64_t *got);
	int (*head)(void *impl, const char *key, cairn_obj_info *out);
	int (*del)(void *impl, const char *key);
	/* optional: NULL means objstore.c deletes one by one */
	int (*del_batch)(void *impl, const char *const *keys, size_t n,
			 int *rcs);
	int (*list)(void *impl, const char *prefix, const char *token,
		    unsigned max_keys, cairn_obj_list *out);

	int (*mpu_create)(void *impl, const char *key,
			  char upload_id[CAIRN_UPLOAD_ID_MAX]);
	int (*mpu_part)(void *impl, const char *key, const char *upload_id,
			unsigned part_no, const cairn_obj_src *src,
			cairn_mpu_part *out);
	int (*mpu_complete)(void *impl, const char *key, const char *upload_id,
			    const cairn_mpu_part *parts, size_t n);
	int (*mpu_abort)(void *impl, const char *key, const char *upload_id);
};

extern const struct objstore_backend objstore_file;
extern const struct objstore_backend objstore_s3;

/* Build a store around a backend instance that is already open (wrappers
 * use this; the store then owns impl and calls be->close on it). */
int objstore_from_backend(const struct objstore_backend *be, void *impl,
			  const char *url, const cairn_objstore_opts *opts,
			  cairn_objstore **out);

/* The backend instance behind a store (wrappers check be to find theirs). */
void *objstore_impl(const cairn_objstore *os,
		    const struct objstore_backend *be);

/* Read len bytes of a source into buf (memory copy, or pread through the
 * engine for a file range).  Used by backends that need the bytes in memory.
 * Errors: CAIRN_E_IO, CAIRN_E_INVAL (file range shorter than len). */
int objstore_src_read(cairn_uring *u, const cairn_obj_src *src, uint64_t off,
		      void *buf, uint64_t len);

/* The key for a message: control bytes, quotes, backslashes (and every
 * byte >= 0x80 when the key is not valid UTF-8) as \xNN, cut to about 96
 * bytes with "...(N bytes)" after it.  out is always NUL-terminated. */
void objstore_key_escape(const char *key, char *out, size_t size);

/* Accounting of a store made by objstore_latency_wrap (tests check it
 * instead of the wall clock).  Errors: CAIRN_E_INVAL (not such a store). */
typedef struct objstore_latency_stats {
	uint64_t requests;       /* requests delayed */
	uint64_t first_byte_us;  /* sum of first-byte waits asked for */
	uint64_t slept_us;       /* time actually slept (>= what was asked) */
	uint64_t bytes;          /* bytes charged to the shared link */
	uint64_t link_busy_us;   /* link time those bytes reserved */
} objstore_latency_stats;
int objstore_latency_get_stats(const cairn_objstore *os,
			       objstore_latency_stats *out);

#endif
