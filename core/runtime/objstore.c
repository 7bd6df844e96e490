/*
 * objstore.c - the generic object-store layer: URL dispatch, key validation,
 * S3's multipart limits, request statistics and the worker pool that keeps
 * many requests in flight.
 *
 * Every public objstore_* call goes through here before it reaches a backend
 * (os_file.c, os_s3.c) or a wrapper (os_fault.c, os_latency.c), so a backend
 * never sees an invalid key or a multipart request that S3 would refuse, and
 * every client bug shows up the same way on every store.
 *
 * Invariants
 *   1. A backend function is only called with keys that passed
 *      objstore_key_check() (rule 2 of cairn/objstore.h).
 *   2. Multipart limits are enforced here for every backend: part numbers
 *      1..limits.max_parts, parts <= max_part_size, and at complete time
 *      every part but the last >= min_part_size, numbers strictly ascending.
 *      A single put is <= max_put_size.
 *   3. Every failure's context starts with "<op> '<key>' on <url>: " (key
 *      escaped and cut), added once: a wrapper forwarding to an inner store
 *      with the same URL does not get the prefix twice.
 *   4. A request submitted to a batch runs on exactly one worker; its rc and
 *      msg are filled on the worker before it is put on the batch's done list,
 *      and the waiting thread only reads them after taking it off that list
 *      (under the store's mutex).  Requests are reaped in completion order.
 *   5. objstore_close() returns only after every queued request has run and
 *      every worker has exited.
 *
 * Request life cycle (batch):
 *
 *   objstore_submit      worker picks it        run() returns
 *   ----------------> QUEUED ------------> RUNNING -----------> DONE
 *                                                                 |
 *                          objstore_batch_reap / batch_wait       v
 *                                                               REAPED
 *
 * The pool is created lazily on the first submit (max_inflight threads,
 * default 16) and shared by all batches of the store; the queue is FIFO.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/codec.h"
#include "cairn/err.h"
#include "cairn/log.h"
#include "objstore_int.h"

#define MIB (1024ULL * 1024ULL)
#define DEFAULT_INFLIGHT 16
#define MAX_INFLIGHT 1024
#define KEY_SHOW_MAX 96 /* escaped key bytes shown in a message */

struct cairn_objstore {
	const struct objstore_backend *be;
	void *impl;
	char *url;
	char scheme[16];
	cairn_objstore_limits limits;
	unsigned max_inflight;

	/* statistics, updated with atomic builtins */
	uint64_t requests[11];
	uint64_t bytes_up, bytes_down;

	/* worker pool; mu guards everything below and every batch's lists */
	pthread_mutex_t mu;
	pthread_cond_t work_cv;
	cairn_obj_req *q_head, *q_tail;
	pthread_t *threads;
	unsigned nthreads;
	int stopping;
};

struct cairn_obj_batch {
	cairn_objstore *os;
	pthread_cond_t done_cv;
	cairn_obj_req *done_head, *done_tail;
	unsigned outstanding; /* submitted and not yet reaped */
};

/* ------------------------------------------------------------------ keys */

/* Length of the UTF-8 sequence at p (1..4), or 0 if it is malformed
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned c = p[0];
	size_t n;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static int utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);
		if (!n)
			return 0;
		i += n;
	}
	return 1;
}

void objstore_key_escape(const char *key, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)(key ? key : "");
	size_t len = strlen((const char *)p), o = 0, i;
	/* Invalid UTF-8 is shown byte by byte; valid multi-byte characters are
	 * printable and shown as they are. */
	int utf8 = utf8_valid((const char *)p, len);
	size_t show = size > 24 ? size - 24 : 0;

	if (show > KEY_SHOW_MAX)
		show = KEY_SHOW_MAX;
	if (size == 0)
		return;
	for (i = 0; i < len && o + 5 < show; i++) {
		unsigned c = p[i];
		if (c < 0x20 || c == 0x7f || c == '\\' || c == '\'' ||
		    (c >= 0x80 && !utf8))
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	if (i < len)
		snprintf(out + o, size - o, "...(%zu bytes)", len);
}

/* NULL when key is valid, else why not; *nametoolong set for length. */
static const char *key_problem(const char *key, int *toolong)
{
	size_t len, seg;

	*toolong = 0;
	if (!key)
		return "key is NULL";
	len = strlen(key);
	if (len == 0)
		return "key is empty";
	if (len > CAIRN_KEY_MAX) {
		*toolong = 1;
		return "key is longer than 1024 bytes";
	}
	if (key[0] == '/')
		return "key starts with '/'";
	if (key[len - 1] == '/')
		return "key ends with '/'";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c < 0x20 || c == 0x7f)
			return "key contains a control byte";
	}
	if (!utf8_valid(key, len))
		return "key is not valid UTF-8";
	for (size_t i = 0; i < len; i += seg + 1) {
		const char *s = key + i;
		const char *e = memchr(s, '/', len - i);
		seg = e ? (size_t)(e - s) : len - i;
		if (seg == 0)
			return "key has an empty path segment ('//')";
		if ((seg == 1 && s[0] == '.') ||
		    (seg == 2 && s[0] == '.' && s[1] == '.'))
			return "key has a '.' or '..' path segment";
	}
	return NULL;
}

#define KEY_RULES                                                        \
	"keys are 1..1024 bytes of UTF-8 without control bytes, without a " \
	"leading or trailing '/', and without empty, '.' or '..' segments"

int objstore_key_check(const char *key)
{
	int toolong;
	const char *why = key_problem(key, &toolong);
	char esc[160];

	if (!why)
		return 0;
	objstore_key_escape(key, esc, sizeof esc);
	return cairn_errf(toolong ? CAIRN_E_NAMETOOLONG : CAIRN_E_INVAL,
			  "invalid key '%s': %s (%s)", esc, why, KEY_RULES);
}

/* ------------------------------------------------------------ contexts */

/* Only a name for messages: put-if-absent is counted as a put (stats, the
 * fault wrapper's op_mask), as S3 bills it. */
#define OP_PUT_IF_ABSENT 11

static const char *const op_names[] = {
	[0] = "request",
	[OBJ_OP_PUT] = "put",
	[OBJ_OP_GET] = "get",
	[OBJ_OP_HEAD] = "head",
	[OBJ_OP_DELETE] = "delete",
	[OBJ_OP_MPU_PART] = "multipart part",
	[OBJ_OP_LIST] = "list",
	[OBJ_OP_MPU_CREATE] = "multipart create",
	[OBJ_OP_MPU_COMPLETE] = "multipart complete",
	[OBJ_OP_MPU_ABORT] = "multipart abort",
	[OBJ_OP_DELETE_BATCH] = "delete batch",
	[OP_PUT_IF_ABSENT] = "put-if-absent",
};

/* Prefix the thread's message with "<op> '<key>' on <url>", unless an
 * inner store (same URL) already did. */
static int ctx_wrap(const cairn_objstore *os, int op, const char *key, int rc)
{
	char esc[160], prefix[CAIRN_KEY_MAX];
	int n;

	if (!rc)
		return 0;
	objstore_key_escape(key, esc, sizeof esc);
	n = snprintf(prefix, sizeof prefix, "%s '%s' on %s", op_names[op], esc,
		     os->url);
	if (n > 0 && (size_t)n < sizeof prefix &&
	    strncmp(cairn_errmsg(), prefix, (size_t)n) == 0)
		return rc;
	return cairn_err_wrap(rc, "%s", prefix);
}

/* Validate a key for op; on failure the message is complete. */
static int ctx_key(const cairn_objstore *os, int op, const char *key)
{
	int toolong;
	const char *why = key_problem(key, &toolong);

	if (!why)
		return 0;
	cairn_errf(toolong ? CAIRN_E_NAMETOOLONG : CAIRN_E_INVAL,
		   "invalid key: %s (%s)", why, KEY_RULES);
	return ctx_wrap(os, op, key, toolong ? CAIRN_E_NAMETOOLONG
					     : CAIRN_E_INVAL);
}

static void stat_req(cairn_objstore *os, int op)
{
	__atomic_fetch_add(&os->requests[op], 1, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------- open/close */

#ifdef CAIRN_HAVE_S3
#define HAVE_S3 1
#else
#define HAVE_S3 0
#endif

int objstore_from_backend(const struct objstore_backend *be, void *impl,
			  const char *url, const cairn_objstore_opts *opts,
			  cairn_objstore **out)
{
	cairn_objstore *os;
	const char *sep;
	int rc;

	*out = NULL;
	os = calloc(1, sizeof *os);
	if (!os)
		return cairn_errf(CAIRN_E_NOMEM, "objstore: out of memory");
	os->url = strdup(url);
	if (!os->url) {
		free(os);
		return cairn_errf(CAIRN_E_NOMEM, "objstore: out of memory");
	}
	sep = strstr(url, "://");
	snprintf(os->scheme, sizeof os->scheme, "%.*s",
		 sep ? (int)(sep - url) : 0, url);
	os->be = be;
	os->impl = impl;
	os->max_inflight = opts && opts->max_inflight ? opts->max_inflight
						      : DEFAULT_INFLIGHT;
	if (os->max_inflight > MAX_INFLIGHT)
		os->max_inflight = MAX_INFLIGHT;
	be->limits(impl, &os->limits);
	/* Only a backend that has the op can claim it (objstore.h). */
	if (!be->put_if_absent)
		os->limits.put_if_absent = 0;
	if (os->limits.max_parts == 0 ||
	    os->limits.max_parts > CAIRN_MPU_MAX_PARTS)
		os->limits.max_parts = CAIRN_MPU_MAX_PARTS;
	if ((rc = pthread_mutex_init(&os->mu, NULL)) != 0) {
		free(os->url);
		free(os);
		return cairn_errf(CAIRN_E_NOMEM, "objstore: mutex: %s",
				  strerror(rc));
	}
	if ((rc = pthread_cond_init(&os->work_cv, NULL)) != 0) {
		pthread_mutex_destroy(&os->mu);
		free(os->url);
		free(os);
		return cairn_errf(CAIRN_E_NOMEM, "objstore: cond: %s",
				  strerror(rc));
	}
	*out = os;
	return 0;
}

void *objstore_impl(const cairn_objstore *os, const struct objstore_backend *be)
{
	return os && os->be == be ? os->impl : NULL;
}

int objstore_open(const char *url, const cairn_objstore_opts *opts,
		  cairn_objstore **out)
{
	static const cairn_objstore_opts zero;
	const struct objstore_backend *be = NULL;
	void *impl = NULL;
	int rc;

	*out = NULL;
	if (!opts)
		opts = &zero;
	if (!url)
		return cairn_errf(CAIRN_E_INVAL, "objstore: no URL given "
				  "(accepted: file:///abs/dir, s3://bucket[/prefix])");
	if (strncmp(url, "file://", 7) == 0) {
		if (url[7] != '/')
			return cairn_errf(CAIRN_E_INVAL,
					  "objstore URL '%s': a file:// URL needs an "
					  "absolute path, as file:///abs/dir", url);
		be = &objstore_file;
	} else if (strncmp(url, "s3://", 5) == 0) {
		if (!HAVE_S3)
			return cairn_errf(CAIRN_E_UNSUPPORTED,
					  "objstore URL '%s': s3:// support not built "
					  "(configure with -DCAIRN_S3=ON)", url);
#ifdef CAIRN_HAVE_S3
		be = &objstore_s3;
#endif
	} else {
		return cairn_errf(CAIRN_E_INVAL,
				  "objstore URL '%s': unknown scheme or relative "
				  "path (accepted: file:///abs/dir, "
				  "s3://bucket[/prefix])", url);
	}
	rc = be->open(url, opts, &impl);
	if (rc)
		return cairn_err_wrap(rc, "open object store %s", url);
	rc = objstore_from_backend(be, impl, url, opts, out);
	if (rc)
		be->close(impl);
	return rc;
}

void objstore_close(cairn_objstore *os)
{
	if (!os)
		return;
	pthread_mutex_lock(&os->mu);
	os->stopping = 1;
	pthread_cond_broadcast(&os->work_cv);
	pthread_mutex_unlock(&os->mu);
	/* Workers exit only once the queue is empty: the queue drains. */
	for (unsigned i = 0; i < os->nthreads; i++)
		pthread_join(os->threads[i], NULL);
	free(os->threads);
	os->be->close(os->impl);
	pthread_cond_destroy(&os->work_cv);
	pthread_mutex_destroy(&os->mu);
	free(os->url);
	free(os);
}

const char *objstore_url(const cairn_objstore *os)
{
	return os->url;
}

const char *objstore_scheme(const cairn_objstore *os)
{
	return os->scheme;
}

void objstore_limits(const cairn_objstore *os, cairn_objstore_limits *out)
{
	*out = os->limits;
}

void objstore_stats(const cairn_objstore *os, cairn_objstore_stats *out)
{
	for (int i = 0; i < 11; i++)
		out->requests[i] = __atomic_load_n(&os->requests[i],
						   __ATOMIC_RELAXED);
	out->bytes_up = __atomic_load_n(&os->bytes_up, __ATOMIC_RELAXED);
	out->bytes_down = __atomic_load_n(&os->bytes_down, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ requests */

static int src_check(const cairn_obj_src *src)
{
	if (!src)
		return cairn_errf(CAIRN_E_INVAL, "no source given");
	if (!src->buf && src->fd < 0 && src->len > 0)
		return cairn_errf(CAIRN_E_INVAL,
				  "source has neither a buffer nor a file");
	return 0;
}

int objstore_put(cairn_objstore *os, const char *key, const cairn_obj_src *src)
{
	int rc;

	stat_req(os, OBJ_OP_PUT);
	if ((rc = ctx_key(os, OBJ_OP_PUT, key)) != 0)
		return rc;
	cairn_err_clear();
	if ((rc = src_check(src)) != 0)
		return ctx_wrap(os, OBJ_OP_PUT, key, rc);
	if (src->len > os->limits.max_put_size) {
		rc = cairn_errf(CAIRN_E_INVAL,
				"%llu bytes is more than the largest single put "
				"(%llu bytes); use a multipart upload",
				(unsigned long long)src->len,
				(unsigned long long)os->limits.max_put_size);
		return ctx_wrap(os, OBJ_OP_PUT, key, rc);
	}
	rc = os->be->put(os->impl, key, src);
	if (!rc)
		__atomic_fetch_add(&os->bytes_up, src->len, __ATOMIC_RELAXED);
	return ctx_wrap(os, OBJ_OP_PUT, key, rc);
}

int objstore_put_buf(cairn_objstore *os, const char *key, const void *buf,
		     size_t len)
{
	cairn_obj_src src = {.buf = buf ? buf : "", .fd = -1, .off = 0,
			     .len = len};
	return objstore_put(os, key, &src);
}

int objstore_put_if_absent(cairn_objstore *os, const char *key,
			   const void *buf, size_t len)
{
	int rc;

	stat_req(os, OBJ_OP_PUT);
	if ((rc = ctx_key(os, OP_PUT_IF_ABSENT, key)) != 0)
		return rc;
	cairn_err_clear();
	if (!buf && len > 0) {
		rc = cairn_errf(CAIRN_E_INVAL, "no buffer given");
		return ctx_wrap(os, OP_PUT_IF_ABSENT, key, rc);
	}
	if (!os->be->put_if_absent || !os->limits.put_if_absent) {
		rc = cairn_errf(CAIRN_E_UNSUPPORTED, "this store cannot create "
				"an object only if it is absent, atomically "
				"(limits.put_if_absent is 0)");
		return ctx_wrap(os, OP_PUT_IF_ABSENT, key, rc);
	}
	if (len > os->limits.max_put_size) {
		rc = cairn_errf(CAIRN_E_INVAL,
				"%zu bytes is more than the largest single put "
				"(%llu bytes)", len,
				(unsigned long long)os->limits.max_put_size);
		return ctx_wrap(os, OP_PUT_IF_ABSENT, key, rc);
	}
	rc = os->be->put_if_absent(os->impl, key, buf ? buf : "", len);
	if (!rc)
		__atomic_fetch_add(&os->bytes_up, (uint64_t)len, __ATOMIC_RELAXED);
	return ctx_wrap(os, OP_PUT_IF_ABSENT, key, rc);
}

int objstore_get(cairn_objstore *os, const char *key, uint64_t off, void *buf,
		 uint64_t len, uint64_t *got)
{
	uint64_t dummy = 0;
	int rc;

	if (!got)
		got = &dummy;
	*got = 0;
	stat_req(os, OBJ_OP_GET);
	if ((rc = ctx_key(os, OBJ_OP_GET, key)) != 0)
		return rc;
	cairn_err_clear();
	if (!buf && len > 0) {
		rc = cairn_errf(CAIRN_E_INVAL, "no buffer given");
		return ctx_wrap(os, OBJ_OP_GET, key, rc);
	}
	if (off > UINT64_MAX - len) {
		rc = cairn_errf(CAIRN_E_INVAL, "range %llu+%llu overflows",
				(unsigned long long)off,
				(unsigned long long)len);
		return ctx_wrap(os, OBJ_OP_GET, key, rc);
	}
	rc = os->be->get(os->impl, key, off, buf, len, got);
	if (!rc && *got > len)
		rc = cairn_errf(CAIRN_E_INTERNAL, "backend returned %llu bytes "
				"for a %llu-byte read",
				(unsigned long long)*got,
				(unsigned long long)len);
	if (!rc)
		__atomic_fetch_add(&os->bytes_down, *got, __ATOMIC_RELAXED);
	else
		*got = 0;
	return ctx_wrap(os, OBJ_OP_GET, key, rc);
}

int objstore_head(cairn_objstore *os, const char *key, cairn_obj_info *out)
{
	int rc;

	stat_req(os, OBJ_OP_HEAD);
	memset(out, 0, sizeof *out);
	if ((rc = ctx_key(os, OBJ_OP_HEAD, key)) != 0)
		return rc;
	cairn_err_clear();
	rc = os->be->head(os->impl, key, out);
	return ctx_wrap(os, OBJ_OP_HEAD, key, rc);
}

int objstore_delete(cairn_objstore *os, const char *key)
{
	int rc;

	stat_req(os, OBJ_OP_DELETE);
	if ((rc = ctx_key(os, OBJ_OP_DELETE, key)) != 0)
		return rc;
	cairn_err_clear();
	rc = os->be->del(os->impl, key);
	return ctx_wrap(os, OBJ_OP_DELETE, key, rc);
}

int objstore_delete_batch(cairn_objstore *os, const char *const *keys,
			  size_t n, int *rcs)
{
	int rc = 0, first = 0;
	size_t bad = 0;
	char msg[1024];

	stat_req(os, OBJ_OP_DELETE_BATCH);
	if (n == 0)
		return 0;
	if (!keys)
		return cairn_errf(CAIRN_E_INVAL, "delete batch on %s: no keys",
				  os->url);
	/* Validate every key first so that a bad key deletes nothing. */
	for (size_t i = 0; i < n; i++) {
		if ((rc = ctx_key(os, OBJ_OP_DELETE, keys[i])) != 0) {
			if (rcs) {
				for (size_t j = 0; j < n; j++)
					rcs[j] = j == i ? rc : CAIRN_E_CANCELED;
			}
			return rc;
		}
	}
	cairn_err_clear();
	if (os->be->del_batch) {
		int *tmp = rcs;
		if (!tmp && !(tmp = calloc(n, sizeof *tmp)))
			return cairn_errf(CAIRN_E_NOMEM, "delete batch on %s: "
					  "out of memory", os->url);
		for (size_t i = 0; i < n; i++)
			tmp[i] = 0;
		rc = os->be->del_batch(os->impl, keys, n, tmp);
		if (rc) {
			/* Name the key that failed when the backend says. */
			for (bad = 0; bad < n && !tmp[bad]; bad++)
				;
			if (bad < n)
				rc = ctx_wrap(os, OBJ_OP_DELETE, keys[bad], rc);
			else
				rc = cairn_err_wrap(rc, "delete batch of %zu keys "
						    "on %s", n, os->url);
		}
		if (tmp != rcs)
			free(tmp);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		cairn_err_clear();
		rc = os->be->del(os->impl, keys[i]);
		if (rcs)
			rcs[i] = rc;
		if (rc && !first) {
			/* Keep the first failure's message and go on with the
			 * rest (S3's multi-delete reports per key too). */
			first = ctx_wrap(os, OBJ_OP_DELETE, keys[i], rc);
			cairn_err_copy(msg, sizeof msg);
		}
	}
	if (first)
		return cairn_err_set(first, msg);
	return 0;
}

int objstore_list(cairn_objstore *os, const char *prefix, const char *token,
		  unsigned max_keys, cairn_obj_list *out)
{
	int rc;

	memset(out, 0, sizeof *out);
	stat_req(os, OBJ_OP_LIST);
	if (!prefix)
		prefix = "";
	if (strlen(prefix) > CAIRN_KEY_MAX) {
		rc = cairn_errf(CAIRN_E_NAMETOOLONG, "prefix is longer than "
				"1024 bytes");
		return ctx_wrap(os, OBJ_OP_LIST, prefix, rc);
	}
	if (token && (!*token || strlen(token) > CAIRN_KEY_MAX)) {
		rc = cairn_errf(CAIRN_E_INVAL, "malformed page token");
		return ctx_wrap(os, OBJ_OP_LIST, prefix, rc);
	}
	if (max_keys == 0 || max_keys > 1000)
		max_keys = 1000;
	cairn_err_clear();
	rc = os->be->list(os->impl, prefix, token, max_keys, out);
	if (rc) {
		objstore_list_free(out);
		return ctx_wrap(os, OBJ_OP_LIST, prefix, rc);
	}
	return 0;
}

void objstore_list_free(cairn_obj_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	free(l->next);
	memset(l, 0, sizeof *l);
}

/* ----------------------------------------------------------- multipart */

int objstore_mpu_create(cairn_objstore *os, const char *key,
			char upload_id[CAIRN_UPLOAD_ID_MAX])
{
	int rc;

	upload_id[0] = '\0';
	stat_req(os, OBJ_OP_MPU_CREATE);
	if ((rc = ctx_key(os, OBJ_OP_MPU_CREATE, key)) != 0)
		return rc;
	cairn_err_clear();
	rc = os->be->mpu_create(os->impl, key, upload_id);
	if (!rc && (!upload_id[0] ||
		    !memchr(upload_id, '\0', CAIRN_UPLOAD_ID_MAX)))
		rc = cairn_errf(CAIRN_E_INTERNAL, "backend gave a bad upload id");
	return ctx_wrap(os, OBJ_OP_MPU_CREATE, key, rc);
}

static int upload_id_check(const char *upload_id)
{
	if (!upload_id || !*upload_id ||
	    strnlen(upload_id, CAIRN_UPLOAD_ID_MAX) >= CAIRN_UPLOAD_ID_MAX)
		return cairn_errf(CAIRN_E_INVAL, "missing or malformed upload id");
	return 0;
}

int objstore_mpu_part(cairn_objstore *os, const char *key,
		      const char *upload_id, unsigned part_no,
		      const cairn_obj_src *src, cairn_mpu_part *out)
{
	int rc;

	memset(out, 0, sizeof *out);
	stat_req(os, OBJ_OP_MPU_PART);
	if ((rc = ctx_key(os, OBJ_OP_MPU_PART, key)) != 0)
		return rc;
	cairn_err_clear();
	if ((rc = upload_id_check(upload_id)) != 0 ||
	    (rc = src_check(src)) != 0)
		return ctx_wrap(os, OBJ_OP_MPU_PART, key, rc);
	if (part_no < 1 || part_no > os->limits.max_parts) {
		rc = cairn_errf(CAIRN_E_INVAL, "part number %u is out of range "
				"(parts are numbered 1..%u)", part_no,
				os->limits.max_parts);
		return ctx_wrap(os, OBJ_OP_MPU_PART, key, rc);
	}
	if (src->len > os->limits.max_part_size) {
		rc = cairn_errf(CAIRN_E_INVAL, "part %u is %llu bytes, more than "
				"the largest part (max_part_size %llu bytes)",
				part_no, (unsigned long long)src->len,
				(unsigned long long)os->limits.max_part_size);
		return ctx_wrap(os, OBJ_OP_MPU_PART, key, rc);
	}
	rc = os->be->mpu_part(os->impl, key, upload_id, part_no, src, out);
	if (!rc) {
		out->number = part_no;
		out->size = src->len;
		__atomic_fetch_add(&os->bytes_up, src->len, __ATOMIC_RELAXED);
	}
	return ctx_wrap(os, OBJ_OP_MPU_PART, key, rc);
}

static int parts_check(const cairn_objstore *os, const cairn_mpu_part *parts,
		       size_t n)
{
	uint64_t total = 0;

	if (n == 0 || !parts)
		return cairn_errf(CAIRN_E_INVAL, "a multipart upload needs at "
				  "least one part");
	if (n > os->limits.max_parts)
		return cairn_errf(CAIRN_E_INVAL, "%zu parts, more than the "
				  "limit of %u", n, os->limits.max_parts);
	/* Order first: a shuffled list would otherwise be reported as a
	 * too-small part. */
	for (size_t i = 0; i < n; i++) {
		const cairn_mpu_part *p = &parts[i];
		if (p->number < 1 || p->number > os->limits.max_parts)
			return cairn_errf(CAIRN_E_INVAL, "part number %u is out "
					  "of range (1..%u)", p->number,
					  os->limits.max_parts);
		if (i > 0 && p->number <= parts[i - 1].number)
			return cairn_errf(CAIRN_E_INVAL, "parts must be sorted "
					  "by number without duplicates "
					  "(part %u follows part %u)",
					  p->number, parts[i - 1].number);
	}
	for (size_t i = 0; i < n; i++) {
		const cairn_mpu_part *p = &parts[i];
		if (p->size > os->limits.max_part_size)
			return cairn_errf(CAIRN_E_INVAL, "part %u is %llu bytes, "
					  "more than max_part_size %llu",
					  p->number,
					  (unsigned long long)p->size,
					  (unsigned long long)os->limits.max_part_size);
		if (i + 1 < n && p->size < os->limits.min_part_size)
			return cairn_errf(CAIRN_E_INVAL, "part %u is %llu bytes, "
					  "less than min_part_size %llu (only "
					  "the last part may be smaller)",
					  p->number,
					  (unsigned long long)p->size,
					  (unsigned long long)os->limits.min_part_size);
		total += p->size;
	}
	if (total > os->limits.max_object_size)
		return cairn_errf(CAIRN_E_INVAL, "object of %llu bytes is larger "
				  "than max_object_size %llu",
				  (unsigned long long)total,
				  (unsigned long long)os->limits.max_object_size);
	return 0;
}

int objstore_mpu_complete(cairn_objstore *os, const char *key,
			  const char *upload_id, const cairn_mpu_part *parts,
			  size_t n)
{
	int rc;

	stat_req(os, OBJ_OP_MPU_COMPLETE);
	if ((rc = ctx_key(os, OBJ_OP_MPU_COMPLETE, key)) != 0)
		return rc;
	cairn_err_clear();
	if ((rc = upload_id_check(upload_id)) != 0 ||
	    (rc = parts_check(os, parts, n)) != 0)
		return ctx_wrap(os, OBJ_OP_MPU_COMPLETE, key, rc);
	rc = os->be->mpu_complete(os->impl, key, upload_id, parts, n);
	return ctx_wrap(os, OBJ_OP_MPU_COMPLETE, key, rc);
}

int objstore_mpu_abort(cairn_objstore *os, const char *key,
		       const char *upload_id)
{
	int rc;

	stat_req(os, OBJ_OP_MPU_ABORT);
	if ((rc = ctx_key(os, OBJ_OP_MPU_ABORT, key)) != 0)
		return rc;
	cairn_err_clear();
	if ((rc = upload_id_check(upload_id)) != 0)
		return ctx_wrap(os, OBJ_OP_MPU_ABORT, key, rc);
	rc = os->be->mpu_abort(os->impl, key, upload_id);
	return ctx_wrap(os, OBJ_OP_MPU_ABORT, key, rc);
}

static uint64_t round_mib(uint64_t v)
{
	return (v + MIB - 1) / MIB * MIB;
}

uint64_t objstore_part_size(const cairn_objstore *os, uint64_t total_len,
			    unsigned part_no, uint64_t preferred)
{
	const cairn_objstore_limits *l = &os->limits;
	uint64_t size = preferred ? preferred : 8 * MIB;
	unsigned max_parts = l->max_parts ? l->max_parts : CAIRN_MPU_MAX_PARTS;

	if (size < l->min_part_size)
		size = l->min_part_size;
	if (total_len) {
		uint64_t need = total_len / max_parts +
				(total_len % max_parts != 0);
		if (size < need)
			size = need;
	} else {
		/* Unknown length: the size doubles every tier (a tenth of
		 * max_parts), so the tiers sum to base * tier * (2^10 - 1);
		 * base is raised until that reaches max_object_size. */
		unsigned tier = max_parts / 10 ? max_parts / 10 : 1;
		unsigned shift;
		uint64_t need = l->max_object_size / ((uint64_t)tier * 1023) + 1;

		if (size < need)
			size = need;
		size = round_mib(size);
		if (part_no < 1)
			part_no = 1;
		shift = (part_no - 1) / tier;
		if (shift > 20)
			shift = 20;
		if (size > (l->max_part_size >> shift))
			return l->max_part_size;
		size <<= shift;
	}
	size = round_mib(size);
	if (l->max_part_size && size > l->max_part_size)
		size = l->max_part_size;
	return size;
}

/* -------------------------------------------------------------- batches */

static void req_run(cairn_objstore *os, cairn_obj_req *r)
{
	switch (r->op) {
	case OBJ_OP_PUT:
		r->rc = objstore_put(os, r->key, &r->src);
		break;
	case OBJ_OP_GET:
		r->rc = objstore_get(os, r->key, r->off, r->buf, r->len, &r->got);
		r->crc = 0;
		if (!r->rc && r->crc_len && r->crc_off <= r->len &&
		    r->crc_len <= r->len - r->crc_off &&
		    r->got >= r->crc_off + r->crc_len)
			r->crc = cairn_crc32c(0, (const uint8_t *)r->buf + r->crc_off,
					      r->crc_len);
		break;
	case OBJ_OP_HEAD:
		r->rc = objstore_head(os, r->key, &r->info);
		break;
	case OBJ_OP_DELETE:
		r->rc = objstore_delete(os, r->key);
		break;
	case OBJ_OP_MPU_PART:
		r->rc = objstore_mpu_part(os, r->key, r->upload_id, r->part_no,
					  &r->src, &r->part);
		break;
	default:
		r->rc = cairn_errf(CAIRN_E_INTERNAL, "bad op %d", r->op);
		break;
	}
	if (r->rc)
		cairn_err_copy(r->msg, sizeof r->msg);
}

static void *worker_main(void *arg)
{
	cairn_objstore *os = arg;

	pthread_mutex_lock(&os->mu);
	for (;;) {
		cairn_obj_req *r;
		cairn_obj_batch *b;

		while (!os->q_head && !os->stopping)
			pthread_cond_wait(&os->work_cv, &os->mu);
		if (!os->q_head)
			break; /* stopping and drained */
		r = os->q_head;
		os->q_head = r->next_;
		if (!os->q_head)
			os->q_tail = NULL;
		pthread_mutex_unlock(&os->mu);

		req_run(os, r);

		pthread_mutex_lock(&os->mu);
		b = r->batch_;
		r->next_ = NULL;
		if (b->done_tail)
			b->done_tail->next_ = r;
		else
			b->done_head = r;
		b->done_tail = r;
		pthread_cond_broadcast(&b->done_cv);
	}
	pthread_mutex_unlock(&os->mu);
	return NULL;
}

/* Called with os->mu held. */
static int pool_start(cairn_objstore *os)
{
	if (os->threads)
		return 0;
	os->threads = calloc(os->max_inflight, sizeof *os->threads);
	if (!os->threads)
		return cairn_errf(CAIRN_E_NOMEM, "objstore %s: out of memory",
				  os->url);
	for (unsigned i = 0; i < os->max_inflight; i++) {
		int err = pthread_create(&os->threads[i], NULL, worker_main, os);
		if (err) {
			/* Fewer workers still work; none does not. */
			if (os->nthreads == 0) {
				free(os->threads);
				os->threads = NULL;
				return cairn_errf(CAIRN_E_NOMEM, "objstore %s: "
						  "cannot start a worker: %s",
						  os->url, strerror(err));
			}
			CAIRN_WARN("objstore", "%s: started %u of %u workers: %s",
				   os->url, os->nthreads, os->max_inflight,
				   strerror(err));
			break;
		}
		os->nthreads++;
	}
	return 0;
}

int objstore_batch_new(cairn_objstore *os, cairn_obj_batch **out)
{
	cairn_obj_batch *b = calloc(1, sizeof *b);
	int err;

	*out = NULL;
	if (!b)
		return cairn_errf(CAIRN_E_NOMEM, "objstore batch: out of memory");
	if ((err = pthread_cond_init(&b->done_cv, NULL)) != 0) {
		free(b);
		return cairn_errf(CAIRN_E_NOMEM, "objstore batch: %s",
				  strerror(err));
	}
	b->os = os;
	*out = b;
	return 0;
}

int objstore_submit(cairn_obj_batch *b, cairn_obj_req *req)
{
	cairn_objstore *os = b->os;
	int rc;

	if (!req || req->op < OBJ_OP_PUT || req->op > OBJ_OP_MPU_PART)
		return cairn_errf(CAIRN_E_INVAL, "objstore submit on %s: bad op "
				  "%d (batches run put, get, head, delete and "
				  "multipart part)", os->url, req ? req->op : -1);
	req->rc = 0;
	req->msg[0] = '\0';
	req->got = 0;
	memset(&req->info, 0, sizeof req->info);
	memset(&req->part, 0, sizeof req->part);
	req->next_ = NULL;
	req->batch_ = b;
	pthread_mutex_lock(&os->mu);
	if (os->stopping) {
		pthread_mutex_unlock(&os->mu);
		return cairn_errf(CAIRN_E_CANCELED, "objstore %s is closing",
				  os->url);
	}
	if ((rc = pool_start(os)) != 0) {
		pthread_mutex_unlock(&os->mu);
		return rc;
	}
	if (os->q_tail)
		os->q_tail->next_ = req;
	else
		os->q_head = req;
	os->q_tail = req;
	b->outstanding++;
	pthread_cond_signal(&os->work_cv);
	pthread_mutex_unlock(&os->mu);
	return 0;
}

int objstore_batch_reap(cairn_obj_batch *b, cairn_obj_req **done)
{
	cairn_objstore *os = b->os;
	cairn_obj_req *r;

	*done = NULL;
	pthread_mutex_lock(&os->mu);
	if (b->outstanding == 0) {
		pthread_mutex_unlock(&os->mu);
		return cairn_errf(CAIRN_E_INVAL, "objstore batch on %s: nothing "
				  "to reap", os->url);
	}
	while (!b->done_head)
		pthread_cond_wait(&b->done_cv, &os->mu);
	r = b->done_head;
	b->done_head = r->next_;
	if (!b->done_head)
		b->done_tail = NULL;
	b->outstanding--;
	pthread_mutex_unlock(&os->mu);
	r->next_ = NULL;
	*done = r;
	if (r->rc)
		cairn_err_set(r->rc, r->msg);
	return r->rc;
}

int objstore_batch_wait(cairn_obj_batch *b)
{
	char msg[sizeof ((cairn_obj_req *)0)->msg];
	int first = 0;

	msg[0] = '\0';
	while (objstore_batch_outstanding(b) > 0) {
		cairn_obj_req *r;
		objstore_batch_reap(b, &r);
		if (r->rc && !first) {
			first = r->rc;
			memcpy(msg, r->msg, sizeof msg);
		}
	}
	if (first)
		return cairn_err_set(first, msg);
	return 0;
}

unsigned objstore_batch_outstanding(const cairn_obj_batch *b)
{
	cairn_objstore *os = b->os;
	unsigned n;

	pthread_mutex_lock(&os->mu);
	n = b->outstanding;
	pthread_mutex_unlock(&os->mu);
	return n;
}

void objstore_batch_free(cairn_obj_batch *b)
{
	if (!b)
		return;
	(void)objstore_batch_wait(b);
	pthread_cond_destroy(&b->done_cv);
	free(b);
}

/* ------------------------------------------------------------- helpers */

int objstore_src_read(cairn_uring *u, const cairn_obj_src *src, uint64_t off,
		      void *buf, uint64_t len)
{
	size_t got = 0;
	int rc;

	if (off > src->len || len > src->len - off)
		return cairn_errf(CAIRN_E_INVAL, "read of %llu+%llu is past the "
				  "end of a %llu-byte source",
				  (unsigned long long)off,
				  (unsigned long long)len,
				  (unsigned long long)src->len);
	if (len == 0)
		return 0;
	if (src->buf) {
		memcpy(buf, (const char *)src->buf + off, len);
		return 0;
	}
	if (src->fd < 0)
		return cairn_errf(CAIRN_E_INVAL, "source has no file");
	if (!u)
		return cairn_errf(CAIRN_E_INTERNAL, "reading a file source needs "
				  "an I/O engine");
	rc = uring_read(u, src->fd, buf, len, src->off + off, &got);
	if (rc)
		return cairn_err_wrap(rc, "read source fd %d", src->fd);
	if (got < len)
		return cairn_errf(CAIRN_E_INVAL, "source file (fd %d) ends at "
				  "%llu, before the %llu bytes the source names",
				  src->fd, (unsigned long long)(src->off + off + got),
				  (unsigned long long)(src->off + src->len));
	return 0;
}
