/*
 * t_store.h - the object store of a test that runs on file:// and, with
 * the argument "s3", on the s3rver test server (tests/s3/s3_harness.h).
 * The _s3 variant of such a test is the same source built with
 * CAIRN_S3_SERVER_DIR and tests/s3 on its include path, run with ARGS s3
 * (see tests/ship/CMakeLists.txt).  Also store-neutral helpers that work
 * through the objstore API on both: copy a whole store, flip a byte of an
 * object, delete every object under a prefix.
 *
 *   t_store ts;
 *   if (t_store_s3(&ts, argc, argv, "name", url, sizeof url)) ... s3://
 *   else ... file:// as before
 *   ...
 *   t_store_stop(&ts);
 */
#ifndef CAIRN_T_STORE_H
#define CAIRN_T_STORE_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/objstore.h"
#include "t.h"
#ifdef CAIRN_S3_SERVER_DIR
#include "s3_harness.h"
#endif

typedef struct t_store {
	int s3;
	int seq;        /* for t_store_new_url */
} t_store;

#ifdef CAIRN_S3_SERVER_DIR
static s3h t_store_h_;
static pid_t t_store_owner_;

/* A test that fails with REQUIRE exits at once: the server goes too (only
 * from the process that started it, not from a forked child). */
static void t_store_atexit_(void)
{
	if (t_store_owner_ && getpid() == t_store_owner_)
		s3h_stop(&t_store_h_);
}
#endif

/* With argument "s3": start s3rver (the test is skipped when it is not
 * installed or the build has no S3 backend), put a fresh store URL
 * s3://bucket/<name><pid> in url and return 1.  Otherwise return 0 and
 * leave url alone. */
static inline int t_store_s3(t_store *s, int argc, char **argv, const char *name, char *url,
			     size_t size)
{
	memset(s, 0, sizeof *s);
	if (argc < 2 || strcmp(argv[1], "s3") != 0)
		return 0;
#ifdef CAIRN_S3_SERVER_DIR
	if (!s3h_installed())
		t_skip("s3rver is not installed (tests/s3/server/install.sh)");
	memset(&t_store_h_, 0, sizeof t_store_h_);
	s3h_start(&t_store_h_, 0);
	s3h_env(&t_store_h_, t_store_h_.port);
	t_store_owner_ = getpid();
	REQUIRE(atexit(t_store_atexit_) == 0);
	s->s3 = 1;
	snprintf(url, size, "s3://" S3H_BUCKET "/%s%d", name, (int)getpid());
	return 1;
#else
	(void)name;
	(void)url;
	(void)size;
	t_skip("built without the S3 backend");
	return 0;
#endif
}

/* Another store on the same server (s3) or under dir (file://): a URL no
 * other call returned. */
static inline void t_store_new_url(t_store *s, const char *dir, const char *name, char *url,
				   size_t size)
{
	s->seq++;
#ifdef CAIRN_S3_SERVER_DIR
	if (s->s3) {
		snprintf(url, size, "s3://" S3H_BUCKET "/%s%d.%d", name, (int)getpid(), s->seq);
		return;
	}
#endif
	snprintf(url, size, "file://%s/%s", dir, name);
}

static inline void t_store_stop(t_store *s)
{
#ifdef CAIRN_S3_SERVER_DIR
	if (s->s3 && t_store_owner_ == getpid()) {
		s3h_stop(&t_store_h_);
		t_store_owner_ = 0;
	}
#endif
	s->s3 = 0;
}

/* Every key under prefix (sorted, as the store lists them); *n of them.
 * Free with t_store_keys_free. */
static inline char **t_store_keys(cairn_objstore *os, const char *prefix, size_t *n)
{
	char *token = NULL, **k = NULL;
	*n = 0;
	do {
		cairn_obj_list l;
		memset(&l, 0, sizeof l);
		REQUIRE_OK(objstore_list(os, prefix, token, 0, &l));
		free(token);
		token = NULL;
		for (size_t i = 0; i < l.n; i++) {
			k = realloc(k, (*n + 1) * sizeof *k);
			REQUIRE(k != NULL);
			k[*n] = strdup(l.v[i].key);
			REQUIRE(k[*n] != NULL);
			(*n)++;
		}
		if (l.next) {
			token = strdup(l.next);
			REQUIRE(token != NULL);
		}
		objstore_list_free(&l);
	} while (token);
	return k;
}

static inline void t_store_keys_free(char **k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(k[i]);
	free(k);
}

/* The whole object key (NUL-terminated past its end); *len its size. */
static inline uint8_t *t_store_get(cairn_objstore *os, const char *key, size_t *len)
{
	cairn_obj_info info;
	uint64_t got = 0;
	REQUIRE_OK(objstore_head(os, key, &info));
	REQUIRE(info.size < ((uint64_t)1 << 34));
	uint8_t *buf = malloc(info.size + 1);
	REQUIRE(buf != NULL);
	if (info.size)
		REQUIRE_OK(objstore_get(os, key, 0, buf, info.size, &got));
	REQUIRE(got == info.size);
	buf[info.size] = 0;
	*len = (size_t)info.size;
	return buf;
}

/* Copy every object of src to the store at dst_url (get + put). */
static inline void t_store_copy(cairn_objstore *src, const char *dst_url)
{
	cairn_objstore *dst;
	size_t n;
	char **k = t_store_keys(src, "", &n);
	REQUIRE_OK(objstore_open(dst_url, NULL, &dst));
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *buf = t_store_get(src, k[i], &len);
		REQUIRE_OK(objstore_put_buf(dst, k[i], buf, len));
		free(buf);
	}
	objstore_close(dst);
	t_store_keys_free(k, n);
}

/* Flip a byte of object key at offset at (negative: from the end). */
static inline void t_store_flip(cairn_objstore *os, const char *key, long at)
{
	size_t len;
	uint8_t *buf = t_store_get(os, key, &len);
	REQUIRE(len > 0);
	long off = at < 0 ? (long)len + at : at;
	REQUIRE(off >= 0 && (size_t)off < len);
	buf[off] ^= 0x5a;
	REQUIRE_OK(objstore_put_buf(os, key, buf, len));
	free(buf);
}

/* Delete every object under prefix. */
static inline void t_store_delete_all(cairn_objstore *os, const char *prefix)
{
	size_t n;
	char **k = t_store_keys(os, prefix, &n);
	for (size_t i = 0; i < n; i++)
		REQUIRE_OK(objstore_delete(os, k[i]));
	t_store_keys_free(k, n);
}

#endif
