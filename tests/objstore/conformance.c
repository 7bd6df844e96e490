/*
 * conformance.c - the object-store contract (cairn/objstore.h), run against
 * any store: every backend and wrapper must pass it unchanged.
 *
 *   conformance [URL [WRAP]]
 *
 * URL is argv[1] or $CAIRN_TEST_STORE_URL; without either, a fresh file://
 * store in a scratch directory.  WRAP (argv[2] or $CAIRN_TEST_WRAP) is
 * "fault" (a fault wrapper with no rule armed) or "latency" (a latency
 * wrapper with a small first-byte delay), to check that wrappers forward the
 * contract faithfully.
 *
 * Every key lives under a fresh prefix "conf-<random>/", and the prefix is
 * emptied at the end, so the suite can run against a shared bucket.
 *
 * The suite holds no backend-specific expectations: limits come from
 * objstore_limits(), and a case the store cannot run prints
 * "SKIP: <case>: <reason>" (never a silent pass).  A case is skipped when
 *   - its name is listed in $CAIRN_CONFORMANCE_SKIP (comma-separated), or
 *   - a capability check says so (e.g. multipart cases need parts of
 *     min_part_size bytes in memory; more than 64 MiB is skipped).
 * Case names: roundtrip range get_crc overwrite keys badkeys list delete_batch
 * multipart mpu_errors file_src inflight part_size stats put_if_absent.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/codec.h"
#include "cairn/runtime.h"
#include "t.h"

#define MIB (1024ULL * 1024ULL)

static cairn_objstore *os;
static cairn_objstore *inner; /* when wrapped */
static cairn_objstore_limits lim;
static char pfx[64];
static uint64_t seed;
static int skipped;

/* Key under the run's prefix; 8 rotating buffers. */
static const char *K(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *K(const char *fmt, ...)
{
	static char bufs[8][2048];
	static int i;
	char *b = bufs[i++ % 8];
	size_t n = (size_t)snprintf(b, 2048, "%s", pfx);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b + n, 2048 - n, fmt, ap);
	va_end(ap);
	return b;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	REQUIRE(p != NULL);
	return p;
}

static void *rnd_buf(size_t n, uint64_t s)
{
	void *p = xmalloc(n);
	t_fill(p, n, s);
	return p;
}

/* Get the whole object and compare with want. */
static void check_obj(const char *key, const void *want, uint64_t len)
{
	char *got = xmalloc(len + 16);
	uint64_t n = 0;
	cairn_obj_info info;

	CHECK_OK(objstore_head(os, key, &info));
	CHECK(info.size == len);
	CHECK_OK(objstore_get(os, key, 0, got, len + 16, &n));
	CHECK(n == len);
	CHECK(n != len || memcmp(got, want, len) == 0);
	free(got);
}

static void check_absent(const char *key)
{
	cairn_obj_info info;
	char c;
	uint64_t n = 99;

	CHECK_RC(objstore_head(os, key, &info), CAIRN_E_NOTFOUND);
	CHECK_RC(objstore_get(os, key, 0, &c, 1, &n), CAIRN_E_NOTFOUND);
	CHECK(n == 0);
}

/* All keys under prefix, paging with max_keys; checks order. */
static size_t list_all(const char *prefix, unsigned max_keys, char ***keys,
		       uint64_t **sizes)
{
	char *token = NULL;
	size_t n = 0, cap = 0;
	int pages = 0;

	*keys = NULL;
	if (sizes)
		*sizes = NULL;
	for (;;) {
		cairn_obj_list l;
		int rc = objstore_list(os, prefix, token, max_keys, &l);
		CHECK_OK(rc);
		if (rc)
			break;
		pages++;
		CHECK(l.n <= (max_keys ? max_keys : 1000));
		CHECK(l.next == NULL || l.n > 0);
		for (size_t i = 0; i < l.n; i++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				*keys = realloc(*keys, cap * sizeof **keys);
				REQUIRE(*keys);
				if (sizes) {
					*sizes = realloc(*sizes, cap * sizeof **sizes);
					REQUIRE(*sizes);
				}
			}
			CHECK(strncmp(l.v[i].key, prefix, strlen(prefix)) == 0);
			if (n > 0 && strcmp((*keys)[n - 1], l.v[i].key) >= 0)
				T_FAIL_("list not in byte order: '%s' then '%s'",
					(*keys)[n - 1], l.v[i].key);
			(*keys)[n] = strdup(l.v[i].key);
			REQUIRE((*keys)[n]);
			if (sizes)
				(*sizes)[n] = l.v[i].size;
			n++;
		}
		free(token);
		token = l.next ? strdup(l.next) : NULL;
		objstore_list_free(&l);
		if (!token)
			break;
		REQUIRE(pages < 100000);
	}
	return n;
}

static void free_keys(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

/* ------------------------------------------------------------ cases */

static void c_roundtrip(void)
{
	size_t n = 3 * MIB + 17;
	char *a = rnd_buf(n, seed + 1);
	cairn_obj_info info;
	uint64_t got = 7;
	char c;

	CHECK_OK(objstore_put_buf(os, K("rt/a"), a, 1000));
	check_obj(K("rt/a"), a, 1000);
	CHECK_OK(objstore_put_buf(os, K("rt/big"), a, n));
	check_obj(K("rt/big"), a, n);

	CHECK_OK(objstore_put_buf(os, K("rt/empty"), NULL, 0));
	CHECK_OK(objstore_head(os, K("rt/empty"), &info));
	CHECK(info.size == 0);
	CHECK_OK(objstore_get(os, K("rt/empty"), 0, &c, 1, &got));
	CHECK(got == 0);

	CHECK_RC(objstore_get(os, K("rt/missing"), 0, &c, 1, &got),
		 CAIRN_E_NOTFOUND);
	CHECK_MSG("get '");
	CHECK_MSG("rt/missing");
	CHECK_MSG(objstore_url(os));
	CHECK_RC(objstore_head(os, K("rt/missing"), &info), CAIRN_E_NOTFOUND);
	CHECK_MSG("head '");
	CHECK_OK(objstore_delete(os, K("rt/missing")));

	CHECK_OK(objstore_delete(os, K("rt/a")));
	check_absent(K("rt/a"));
	CHECK_OK(objstore_delete(os, K("rt/a")));
	CHECK_OK(objstore_delete(os, K("rt/big")));
	CHECK_OK(objstore_delete(os, K("rt/empty")));
	check_absent(K("rt/empty"));
	free(a);
}

static void c_range(void)
{
	size_t n = 100000;
	char *a = rnd_buf(n, seed + 2), *b = xmalloc(n + 100);
	static const struct { uint64_t off, len, want; } r[] = {
		{0, 10, 10},        {99990, 100, 10}, {100000, 10, 0},
		{200000, 10, 0},    {5, 0, 0},        {12345, 54321, 54321},
		{0, 100000, 100000}, {1, 100000, 99999}, {99999, 1, 1},
	};

	CHECK_OK(objstore_put_buf(os, K("range/o"), a, n));
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
		uint64_t got = 12345678;
		CHECK_OK(objstore_get(os, K("range/o"), r[i].off, b, r[i].len,
				      &got));
		if (got != r[i].want)
			T_FAIL_("range %zu: got %llu want %llu", i,
				(unsigned long long)got,
				(unsigned long long)r[i].want);
		else if (got && memcmp(b, a + r[i].off, got) != 0)
			T_FAIL_("range %zu: wrong bytes", i);
	}
	CHECK_OK(objstore_delete(os, K("range/o")));
	free(a);
	free(b);
}

/* GETs in a batch with a checksum range: the worker's crc32c is that of
 * the bytes that arrived; 0 when the range was not read whole (the object
 * ends first) or the GET failed. */
static void c_get_crc(void)
{
	size_t n = 300000;
	char *a = rnd_buf(n, seed + 21);
	static const struct { uint64_t off, len, coff, clen; int whole; } r[] = {
		{0, 300000, 0, 300000, 1},   {4096, 200000, 13, 150000, 1},
		{299000, 8192, 0, 1000, 1},   {299000, 8192, 0, 1001, 0},
		{299000, 8192, 500, 2000, 0}, {0, 100, 50, 51, 0},
		{0, 100, 101, 0, 0},
	};
	enum { N = sizeof r / sizeof r[0] };
	cairn_obj_req q[N + 1];
	char *bufs[N];
	cairn_obj_batch *b;

	CHECK_OK(objstore_put_buf(os, K("crc/o"), a, n));
	REQUIRE_OK(objstore_batch_new(os, &b));
	for (size_t i = 0; i < N; i++) {
		bufs[i] = xmalloc(r[i].len);
		memset(&q[i], 0, sizeof q[i]);
		q[i].op = OBJ_OP_GET;
		q[i].key = K("crc/o");
		q[i].buf = bufs[i];
		q[i].off = r[i].off;
		q[i].len = r[i].len;
		q[i].crc_off = r[i].coff;
		q[i].crc_len = r[i].clen;
		q[i].crc = 0xdeadbeef;
		CHECK_OK(objstore_submit(b, &q[i]));
	}
	memset(&q[N], 0, sizeof q[N]);  /* a GET that fails */
	q[N].op = OBJ_OP_GET;
	q[N].key = K("crc/missing");
	q[N].buf = bufs[0];
	q[N].len = 10;
	q[N].crc_len = 10;
	q[N].crc = 0xdeadbeef;
	CHECK_OK(objstore_submit(b, &q[N]));
	CHECK_RC(objstore_batch_wait(b), CAIRN_E_NOTFOUND);
	objstore_batch_free(b);
	for (size_t i = 0; i < N; i++) {
		uint32_t want = r[i].whole ? cairn_crc32c(0, (const uint8_t *)a + r[i].off + r[i].coff,
							  r[i].clen) : 0;
		if (q[i].rc || q[i].crc != want)
			T_FAIL_("GET %zu: rc %d crc %08x want %08x", i, q[i].rc,
				q[i].crc, want);
		free(bufs[i]);
	}
	CHECK(q[N].rc == CAIRN_E_NOTFOUND && q[N].crc == 0);
	CHECK_OK(objstore_delete(os, K("crc/o")));
	free(a);
}

static void c_overwrite(void)
{
	char *a = rnd_buf(5000, seed + 3), *b = rnd_buf(300, seed + 4);
	char *c = rnd_buf(70000, seed + 5);

	CHECK_OK(objstore_put_buf(os, K("ow/x"), a, 5000));
	CHECK_OK(objstore_put_buf(os, K("ow/x"), b, 300));
	check_obj(K("ow/x"), b, 300);
	CHECK_OK(objstore_put_buf(os, K("ow/x"), c, 70000));
	check_obj(K("ow/x"), c, 70000);
	CHECK_OK(objstore_put_buf(os, K("ow/x"), NULL, 0));
	check_obj(K("ow/x"), "", 0);
	CHECK_OK(objstore_delete(os, K("ow/x")));
	free(a);
	free(b);
	free(c);
}

static void c_keys(void)
{
	char longkey[CAIRN_KEY_MAX + 1];
	const char *names[] = {
		"keys/unicode/日本語/ファイル.txt",
		"keys/sp ace/with  two  spaces ",
		"keys/sym/!-_.*'()&$@=;:+,?#[]{}^~`|\"<>",
		"keys/deep/a/b/c/d/e/f/g/h/i/j/k",
		"keys/emoji/\xf0\x9f\x98\x80",
		"keys/pct/%41%2F%00",
		"keys/dots/.../.hidden/a.",
		"keys/back\\slash",
		"keys/order/a-b",
		"keys/order/a.b",
		"keys/order/a/b",
		"keys/order/a0",
		NULL, /* the 1024-byte key */
	};
	size_t nn = sizeof names / sizeof names[0];
	char **keys;
	size_t n;

	/* A key of exactly CAIRN_KEY_MAX bytes, in segments of 100. */
	{
		size_t o = (size_t)snprintf(longkey, sizeof longkey,
					    "%skeys/long/", pfx);
		size_t start = o;
		for (; o < CAIRN_KEY_MAX; o++)
			longkey[o] = (o - start) % 101 == 100 ? '/' : 'k';
		if (longkey[CAIRN_KEY_MAX - 1] == '/')
			longkey[CAIRN_KEY_MAX - 1] = 'k';
		longkey[CAIRN_KEY_MAX] = '\0';
	}

	for (size_t i = 0; i < nn; i++) {
		const char *k = names[i] ? K("%s", names[i]) : longkey;
		char *want = (char *)k; /* content: the key itself */
		CHECK_OK(objstore_put_buf(os, k, want, strlen(want)));
		check_obj(k, want, strlen(want));
	}
	n = list_all(K("keys/"), 0, &keys, NULL);
	CHECK(n == nn);
	free_keys(keys, n);
	/* byte order across the '/' boundary: '-' < '.' < '/' < '0' */
	n = list_all(K("keys/order/"), 2, &keys, NULL);
	CHECK(n == 4);
	if (n == 4) {
		CHECK(!strcmp(keys[0], K("keys/order/a-b")));
		CHECK(!strcmp(keys[1], K("keys/order/a.b")));
		CHECK(!strcmp(keys[2], K("keys/order/a/b")));
		CHECK(!strcmp(keys[3], K("keys/order/a0")));
	}
	free_keys(keys, n);
	for (size_t i = 0; i < nn; i++) {
		const char *k = names[i] ? K("%s", names[i]) : longkey;
		CHECK_OK(objstore_delete(os, k));
		check_absent(k);
	}
}

static void c_badkeys(void)
{
	char toolong[CAIRN_KEY_MAX + 2];
	static const struct { const char *key, *why, *shown; } bad[] = {
		{"", "empty", NULL},
		{"/lead", "starts with '/'", "/lead"},
		{"trail/", "ends with '/'", "trail/"},
		{"a//b", "empty path segment", "a//b"},
		{"./a", "'.' or '..'", "./a"},
		{"a/./b", "'.' or '..'", "a/./b"},
		{"a/..", "'.' or '..'", "a/.."},
		{"..", "'.' or '..'", ".."},
		{"ctl\x01x", "control byte", "ctl\\x01x"},
		{"nl\nx", "control byte", "nl\\x0ax"},
		{"del\x7f", "control byte", "del\\x7f"},
		{"bad\xff\xfe", "UTF-8", "bad\\xff\\xfe"},
		{"overlong\xc0\xaf", "UTF-8", "overlong\\xc0\\xaf"},
		{"surrogate\xed\xa0\x80", "UTF-8", "surrogate\\xed"},
	};
	char upload[CAIRN_UPLOAD_ID_MAX];
	cairn_obj_info info;
	char c;
	uint64_t got;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_RC(objstore_key_check(bad[i].key), CAIRN_E_INVAL);
		CHECK_MSG(bad[i].why);
		if (bad[i].shown)
			CHECK_MSG(bad[i].shown);
		CHECK_RC(objstore_put_buf(os, bad[i].key, "x", 1), CAIRN_E_INVAL);
		CHECK_MSG("put '");
		CHECK_MSG(bad[i].why);
		CHECK_MSG(objstore_url(os));
		CHECK_RC(objstore_get(os, bad[i].key, 0, &c, 1, &got),
			 CAIRN_E_INVAL);
		CHECK_RC(objstore_head(os, bad[i].key, &info), CAIRN_E_INVAL);
		CHECK_RC(objstore_delete(os, bad[i].key), CAIRN_E_INVAL);
		CHECK_RC(objstore_mpu_create(os, bad[i].key, upload),
			 CAIRN_E_INVAL);
		CHECK_MSG("multipart create '");
	}
	memset(toolong, 'x', CAIRN_KEY_MAX + 1);
	toolong[CAIRN_KEY_MAX + 1] = '\0';
	CHECK_RC(objstore_key_check(toolong), CAIRN_E_NAMETOOLONG);
	CHECK_MSG("longer than 1024");
	CHECK_MSG("(1025 bytes)"); /* shown cut, with its length */
	CHECK(strlen(cairn_errmsg()) < 600);
	CHECK_RC(objstore_put_buf(os, toolong, "x", 1), CAIRN_E_NAMETOOLONG);
	CHECK_RC(objstore_key_check(NULL), CAIRN_E_INVAL);
	/* Edge cases that are valid */
	CHECK_OK(objstore_key_check("..."));
	CHECK_OK(objstore_key_check(".a/b."));
	CHECK_OK(objstore_key_check("a/..b/c"));
	CHECK_OK(objstore_key_check("\xe6\x97\xa5"));
	/* A bad key in a delete batch deletes nothing. */
	{
		const char *keys[2] = {K("bk/ok"), "bad//key"};
		int rcs[2] = {-1, -1};
		CHECK_OK(objstore_put_buf(os, keys[0], "y", 1));
		CHECK_RC(objstore_delete_batch(os, keys, 2, rcs), CAIRN_E_INVAL);
		CHECK(rcs[1] == CAIRN_E_INVAL);
		CHECK_MSG("bad//key");
		CHECK_OK(objstore_head(os, keys[0], &info));
		CHECK_OK(objstore_delete(os, keys[0]));
	}
}

static void c_list(void)
{
	enum { N = 2500 };
	cairn_obj_batch *b;
	cairn_obj_req *reqs = calloc(N, sizeof *reqs);
	char (*names)[64] = calloc(N, sizeof *names);
	const char **dk = calloc(N, sizeof *dk);
	int *rcs = calloc(N, sizeof *rcs);
	static const char data[8] = "abcdefg";
	char **keys;
	uint64_t *sizes;
	size_t n;

	REQUIRE(reqs && names && dk && rcs);
	REQUIRE_OK(objstore_batch_new(os, &b));
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "%s", K("many/k%05d", i));
		reqs[i].op = OBJ_OP_PUT;
		reqs[i].key = names[i];
		reqs[i].src = (cairn_obj_src){.buf = data, .fd = -1,
					      .len = (uint64_t)(i % 7)};
		CHECK_OK(objstore_submit(b, &reqs[i]));
		dk[i] = names[i];
	}
	CHECK_OK(objstore_batch_wait(b));

	/* pages of 1000 */
	{
		cairn_obj_list l;
		char *tok;
		CHECK_OK(objstore_list(os, K("many/"), NULL, 1000, &l));
		CHECK(l.n == 1000 && l.next != NULL);
		CHECK(l.n > 0 && !strcmp(l.v[0].key, names[0]));
		tok = l.next ? strdup(l.next) : NULL;
		objstore_list_free(&l);
		CHECK_OK(objstore_list(os, K("many/"), tok, 1000, &l));
		CHECK(l.n == 1000 && l.next != NULL);
		CHECK(l.n > 0 && !strcmp(l.v[0].key, names[1000]));
		free(tok);
		tok = l.next ? strdup(l.next) : NULL;
		objstore_list_free(&l);
		CHECK_OK(objstore_list(os, K("many/"), tok, 0, &l));
		CHECK(l.n == 500 && l.next == NULL);
		CHECK(l.n == 500 && !strcmp(l.v[499].key, names[N - 1]));
		free(tok);
		objstore_list_free(&l);
	}
	n = list_all(K("many/"), 1000, &keys, &sizes);
	CHECK(n == N);
	for (size_t i = 0; i < n && i < N; i++) {
		if (strcmp(keys[i], names[i]) || sizes[i] != i % 7) {
			T_FAIL_("list entry %zu: '%s' size %llu", i, keys[i],
				(unsigned long long)sizes[i]);
			break;
		}
	}
	free_keys(keys, n);
	free(sizes);
	n = list_all(K("many/"), 7, &keys, NULL);
	CHECK(n == N);
	free_keys(keys, n);
	n = list_all(K("many/k012"), 3, &keys, NULL);
	CHECK(n == 100);
	free_keys(keys, n);
	n = list_all(K("many/k02499"), 0, &keys, NULL);
	CHECK(n == 1);
	free_keys(keys, n);
	n = list_all(K("many/x"), 0, &keys, NULL);
	CHECK(n == 0);
	free_keys(keys, n);
	n = list_all(K("many"), 0, &keys, NULL);
	CHECK(n == N);
	free_keys(keys, n);

	/* a small tree, paged one key at a time */
	{
		static const char *tree[] = {"tree/a-b", "tree/a/1", "tree/a/2",
					     "tree/a/c/d", "tree/b"};
		for (int i = 0; i < 5; i++)
			CHECK_OK(objstore_put_buf(os, K("%s", tree[i]), "t", 1));
		n = list_all(K("tree/"), 1, &keys, NULL);
		CHECK(n == 5);
		for (size_t i = 0; i < n && i < 5; i++)
			CHECK(!strcmp(keys[i], K("%s", tree[i])));
		free_keys(keys, n);
		n = list_all(K("tree/a"), 2, &keys, NULL);
		CHECK(n == 4);
		free_keys(keys, n);
		n = list_all(K("tree/a/"), 0, &keys, NULL);
		CHECK(n == 3);
		free_keys(keys, n);
		for (int i = 0; i < 5; i++)
			CHECK_OK(objstore_delete(os, K("%s", tree[i])));
	}

	CHECK_OK(objstore_delete_batch(os, dk, N, rcs));
	for (int i = 0; i < N; i++)
		if (rcs[i])
			T_FAIL_("delete batch rc[%d] = %d", i, rcs[i]);
	n = list_all(K("many/"), 0, &keys, NULL);
	CHECK(n == 0);
	free_keys(keys, n);
	objstore_batch_free(b);
	free(reqs);
	free(names);
	free(dk);
	free(rcs);
}

static void c_delete_batch(void)
{
	const char *keys[15];
	char names[15][64];
	int rcs[15];
	char **l;
	size_t n;

	for (int i = 0; i < 15; i++) {
		snprintf(names[i], sizeof names[i], "%s", K("db/%02d", i));
		keys[i] = names[i];
		rcs[i] = -1;
		if (i < 10)
			CHECK_OK(objstore_put_buf(os, keys[i], "z", 1));
	}
	CHECK_OK(objstore_delete_batch(os, keys, 15, rcs));
	for (int i = 0; i < 15; i++)
		CHECK(rcs[i] == 0);
	n = list_all(K("db/"), 0, &l, NULL);
	CHECK(n == 0);
	free_keys(l, n);
	CHECK_OK(objstore_delete_batch(os, keys, 15, NULL));
	CHECK_OK(objstore_delete_batch(os, keys, 0, NULL));
}

static uint64_t part_size_for_tests(void)
{
	uint64_t ps = lim.min_part_size < 5 * MIB ? 5 * MIB : lim.min_part_size;
	return ps;
}

static int cmp_part(const void *a, const void *b)
{
	const cairn_mpu_part *x = a, *y = b;
	return (x->number > y->number) - (x->number < y->number);
}

static void c_multipart(void)
{
	uint64_t ps = part_size_for_tests();
	uint64_t last = ps / 3 + 7, total = 3 * ps + last;
	char *data = rnd_buf(total, seed + 6), *buf = xmalloc(total + 10);
	char upload[CAIRN_UPLOAD_ID_MAX];
	cairn_mpu_part parts[4];
	cairn_obj_req reqs[4];
	cairn_obj_batch *b;
	uint64_t got;
	char **keys;
	uint64_t *sizes;
	size_t n;
	const char *key = K("mpu/obj");

	REQUIRE_OK(objstore_mpu_create(os, key, upload));
	CHECK(upload[0] != '\0');
	check_absent(key);
	REQUIRE_OK(objstore_batch_new(os, &b));
	memset(reqs, 0, sizeof reqs);
	for (int i = 3; i >= 0; i--) { /* out of order */
		reqs[i].op = OBJ_OP_MPU_PART;
		reqs[i].key = key;
		reqs[i].upload_id = upload;
		reqs[i].part_no = (unsigned)i + 1;
		reqs[i].src = (cairn_obj_src){.buf = data + (uint64_t)i * ps,
					      .fd = -1,
					      .len = i == 3 ? last : ps};
		CHECK_OK(objstore_submit(b, &reqs[i]));
	}
	for (int i = 0; i < 4; i++) {
		cairn_obj_req *r;
		CHECK_OK(objstore_batch_reap(b, &r));
		REQUIRE(r != NULL);
		parts[i] = r->part;
		CHECK(r->part.number == r->part_no);
		CHECK(r->part.size == r->src.len);
	}
	objstore_batch_free(b);
	qsort(parts, 4, sizeof parts[0], cmp_part);
	check_absent(key); /* not visible before complete */
	CHECK_OK(objstore_mpu_complete(os, key, upload, parts, 4));
	check_obj(key, data, total);
	/* ranges across part boundaries */
	{
		static const struct { int k; int64_t d; uint64_t len; } r[] = {
			{1, -10, 20}, {2, -1, 0}, {1, 0, 1}, {3, -5, 12},
		};
		for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
			uint64_t off = (uint64_t)((int64_t)(r[i].k * ps) + r[i].d);
			uint64_t len = r[i].len ? r[i].len : ps + 2;
			uint64_t want = off + len > total ? total - off : len;
			CHECK_OK(objstore_get(os, key, off, buf, len, &got));
			CHECK(got == want);
			CHECK(got != want || memcmp(buf, data + off, got) == 0);
		}
		CHECK_OK(objstore_get(os, key, total - 5, buf, 100, &got));
		CHECK(got == 5 && memcmp(buf, data + total - 5, 5) == 0);
		CHECK_OK(objstore_get(os, key, total, buf, 100, &got));
		CHECK(got == 0);
		CHECK_OK(objstore_get(os, key, total + 1000, buf, 100, &got));
		CHECK(got == 0);
	}
	n = list_all(K("mpu/"), 0, &keys, &sizes);
	CHECK(n == 1 && sizes[0] == total);
	free_keys(keys, n);
	free(sizes);

	/* overwrite a composite object with a plain one, and back */
	CHECK_OK(objstore_put_buf(os, key, "plain", 5));
	check_obj(key, "plain", 5);
	CHECK_OK(objstore_delete(os, key));
	check_absent(key);

	/* a single part may be small (it is the last) */
	REQUIRE_OK(objstore_mpu_create(os, key, upload));
	CHECK_OK(objstore_mpu_part(os, key, upload, 1,
				   &(cairn_obj_src){.buf = data, .fd = -1,
						    .len = 100},
				   &parts[0]));
	CHECK_OK(objstore_mpu_complete(os, key, upload, parts, 1));
	check_obj(key, data, 100);

	/* complete over an existing composite object */
	REQUIRE_OK(objstore_mpu_create(os, key, upload));
	CHECK_OK(objstore_mpu_part(os, key, upload, 7,
				   &(cairn_obj_src){.buf = data + 1, .fd = -1,
						    .len = ps},
				   &parts[0]));
	CHECK_OK(objstore_mpu_part(os, key, upload, 9,
				   &(cairn_obj_src){.buf = data + 5, .fd = -1,
						    .len = 10},
				   &parts[1]));
	CHECK_OK(objstore_mpu_complete(os, key, upload, parts, 2));
	memcpy(buf, data + 1, ps);
	memcpy(buf + ps, data + 5, 10);
	check_obj(key, buf, ps + 10);
	CHECK_OK(objstore_delete(os, key));
	check_absent(key);
	free(data);
	free(buf);
}

static void c_mpu_errors(void)
{
	uint64_t ps = part_size_for_tests();
	char *data = rnd_buf(ps, seed + 7);
	char upload[CAIRN_UPLOAD_ID_MAX], upload2[CAIRN_UPLOAD_ID_MAX];
	cairn_mpu_part parts[3], bogus;
	cairn_obj_src small = {.buf = data, .fd = -1, .len = MIB};
	cairn_obj_src full = {.buf = data, .fd = -1, .len = ps};
	const char *key = K("mpuerr/obj");
	int fd;

	/* abort, then complete / part of the aborted upload */
	REQUIRE_OK(objstore_mpu_create(os, key, upload));
	CHECK_OK(objstore_mpu_part(os, key, upload, 1, &full, &parts[0]));
	CHECK_OK(objstore_mpu_abort(os, key, upload));
	CHECK_RC(objstore_mpu_complete(os, key, upload, parts, 1),
		 CAIRN_E_NOTFOUND);
	CHECK_MSG("multipart complete '");
	CHECK_RC(objstore_mpu_part(os, key, upload, 2, &full, &parts[1]),
		 CAIRN_E_NOTFOUND);
	check_absent(key);

	/* every part but the last must be >= min_part_size */
	REQUIRE_OK(objstore_mpu_create(os, key, upload));
	CHECK_OK(objstore_mpu_part(os, key, upload, 1, &small, &parts[0]));
	CHECK_OK(objstore_mpu_part(os, key, upload, 2, &small, &parts[1]));
	CHECK_RC(objstore_mpu_complete(os, key, upload, parts, 2),
		 CAIRN_E_INVAL);
	CHECK_MSG("min_part_size");
	CHECK_MSG("part 1");
	check_absent(key);

	/* part numbers 1..10000 */
	CHECK_RC(objstore_mpu_part(os, key, upload, 0, &small, &parts[2]),
		 CAIRN_E_INVAL);
	CHECK_MSG("part number 0 is out of range");
	CHECK_RC(objstore_mpu_part(os, key, upload, CAIRN_MPU_MAX_PARTS + 1,
				   &small, &parts[2]),
		 CAIRN_E_INVAL);
	CHECK_MSG("out of range");
	CHECK_OK(objstore_mpu_part(os, key, upload, CAIRN_MPU_MAX_PARTS,
				   &small, &parts[2]));
	/* parts larger than max_part_size: refused before any byte moves */
	fd = open("/dev/zero", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_RC(objstore_mpu_part(os, key, upload, 3,
				   &(cairn_obj_src){.fd = fd,
						    .len = lim.max_part_size + 1},
				   &bogus),
		 CAIRN_E_INVAL);
	CHECK_MSG("max_part_size");
	CHECK_RC(objstore_put(os, key,
			      &(cairn_obj_src){.fd = fd,
					       .len = lim.max_put_size + 1}),
		 CAIRN_E_INVAL);
	CHECK_MSG("multipart");
	close(fd);
	/* list problems */
	CHECK_RC(objstore_mpu_complete(os, key, upload, parts, 0), CAIRN_E_INVAL);
	CHECK_MSG("at least one part");
	{
		cairn_mpu_part rev[2] = {parts[1], parts[0]};
		CHECK_RC(objstore_mpu_complete(os, key, upload, rev, 2),
			 CAIRN_E_INVAL);
		CHECK_MSG("sorted");
	}
	/* a part that was never uploaded */
	bogus = parts[1];
	bogus.number = 5;
	CHECK(objstore_mpu_complete(os, key, upload, &bogus, 1) != 0);
	check_absent(key);
	CHECK_OK(objstore_mpu_abort(os, key, upload));

	/* unknown upload ids; an upload is tied to its key */
	REQUIRE_OK(objstore_mpu_create(os, key, upload2));
	CHECK_RC(objstore_mpu_complete(os, K("mpuerr/other"), upload2, parts, 1),
		 CAIRN_E_NOTFOUND);
	CHECK_OK(objstore_mpu_abort(os, key, upload2));
	CHECK_RC(objstore_mpu_abort(os, key, upload2), CAIRN_E_NOTFOUND);
	CHECK_RC(objstore_mpu_complete(os, key, "no-such-upload", parts, 1),
		 CAIRN_E_NOTFOUND);
	CHECK_RC(objstore_mpu_part(os, key, "", 1, &small, &parts[0]),
		 CAIRN_E_INVAL);
	check_absent(key);
	free(data);
}

static void c_file_src(void)
{
	const char *dir = getenv("CAIRN_TEST_TMP");
	char path[512];
	size_t n = 3 * MIB + 5000;
	char *data = rnd_buf(n, seed + 8);
	uint64_t ps = part_size_for_tests();
	char *big = rnd_buf(ps, seed + 9), *both = xmalloc(ps + 10);
	char upload[CAIRN_UPLOAD_ID_MAX];
	cairn_mpu_part parts[2];
	int fd;

	snprintf(path, sizeof path, "%s/conf-src.%d", dir && *dir ? dir : "/tmp",
		 (int)getpid());
	mkdir(dir && *dir ? dir : "/tmp", 0755);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(write(fd, data, n) == (ssize_t)n);
	REQUIRE(pwrite(fd, big, ps, (off_t)n) == (ssize_t)ps);

	CHECK_OK(objstore_put(os, K("fsrc/a"),
			      &(cairn_obj_src){.fd = fd, .off = 4096,
					       .len = 3 * MIB + 100}));
	check_obj(K("fsrc/a"), data + 4096, 3 * MIB + 100);
	CHECK_OK(objstore_put(os, K("fsrc/empty"),
			      &(cairn_obj_src){.fd = fd, .off = 7, .len = 0}));
	check_obj(K("fsrc/empty"), "", 0);
	/* a range past the end of the file: an error, and no object */
	CHECK(objstore_put(os, K("fsrc/short"),
			   &(cairn_obj_src){.fd = fd, .off = n + ps - 10,
					    .len = 100}) != 0);
	check_absent(K("fsrc/short"));
	/* a part from a file range */
	REQUIRE_OK(objstore_mpu_create(os, K("fsrc/mpu"), upload));
	CHECK_OK(objstore_mpu_part(os, K("fsrc/mpu"), upload, 1,
				   &(cairn_obj_src){.fd = fd, .off = n,
						    .len = ps},
				   &parts[0]));
	CHECK_OK(objstore_mpu_part(os, K("fsrc/mpu"), upload, 2,
				   &(cairn_obj_src){.buf = data, .fd = -1,
						    .len = 10},
				   &parts[1]));
	CHECK_OK(objstore_mpu_complete(os, K("fsrc/mpu"), upload, parts, 2));
	memcpy(both, big, ps);
	memcpy(both + ps, data, 10);
	check_obj(K("fsrc/mpu"), both, ps + 10);
	CHECK_OK(objstore_delete(os, K("fsrc/a")));
	CHECK_OK(objstore_delete(os, K("fsrc/empty")));
	CHECK_OK(objstore_delete(os, K("fsrc/mpu")));
	close(fd);
	unlink(path);
	free(data);
	free(big);
	free(both);
}

static void c_inflight(void)
{
	enum { N = 200 };
	static cairn_obj_req reqs[N];
	static char names[N][64];
	static char *bufs[N];
	static int seen[N];
	cairn_obj_batch *b;
	char *data = rnd_buf(40000, seed + 10);
	cairn_obj_req *r;
	int reaped = 0;
	char missing[64];

	snprintf(missing, sizeof missing, "%s", K("fly/missing"));

	REQUIRE_OK(objstore_batch_new(os, &b));
	CHECK_RC(objstore_batch_reap(b, &r), CAIRN_E_INVAL);
	memset(&reqs[0], 0, sizeof reqs[0]);
	reqs[0].op = 99;
	CHECK_RC(objstore_submit(b, &reqs[0]), CAIRN_E_INVAL);
	CHECK_MSG("bad op");

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "%s", K("fly/%03d", i));
		memset(&reqs[i], 0, sizeof reqs[i]);
		reqs[i].op = OBJ_OP_PUT;
		reqs[i].key = names[i];
		reqs[i].src = (cairn_obj_src){.buf = data + i, .fd = -1,
					      .len = (uint64_t)(i * 197) % 39000};
		reqs[i].user = &seen[i];
		seen[i] = 0;
		CHECK_OK(objstore_submit(b, &reqs[i]));
	}
	CHECK(objstore_batch_outstanding(b) <= N);
	while (objstore_batch_outstanding(b) > 0) {
		CHECK_OK(objstore_batch_reap(b, &r));
		REQUIRE(r != NULL);
		CHECK(*(int *)r->user == 0);
		(*(int *)r->user)++;
		reaped++;
	}
	CHECK(reaped == N);
	for (int i = 0; i < N; i++) {
		CHECK(seen[i] == 1);
		bufs[i] = xmalloc(40000);
		memset(&reqs[i], 0, sizeof reqs[i]);
		reqs[i].op = OBJ_OP_GET;
		reqs[i].key = names[i];
		reqs[i].buf = bufs[i];
		reqs[i].off = 0;
		reqs[i].len = 40000;
		reqs[i].user = (void *)(intptr_t)i;
		CHECK_OK(objstore_submit(b, &reqs[i]));
	}
	for (reaped = 0; objstore_batch_outstanding(b) > 0; reaped++) {
		int i;
		CHECK_OK(objstore_batch_reap(b, &r));
		REQUIRE(r != NULL);
		i = (int)(intptr_t)r->user;
		if (r->got != (uint64_t)(i * 197) % 39000 ||
		    memcmp(r->buf, data + i, r->got) != 0)
			T_FAIL_("get %d: wrong bytes (%llu)", i,
				(unsigned long long)r->got);
	}
	CHECK(reaped == N);
	/* heads, with one failure: batch_wait returns it with its message */
	for (int i = 0; i < N; i++) {
		memset(&reqs[i], 0, sizeof reqs[i]);
		reqs[i].op = OBJ_OP_HEAD;
		reqs[i].key = i == 77 ? missing : names[i];
		CHECK_OK(objstore_submit(b, &reqs[i]));
	}
	CHECK_RC(objstore_batch_wait(b), CAIRN_E_NOTFOUND);
	CHECK_MSG("fly/missing");
	CHECK_MSG("head '");
	CHECK(reqs[77].rc == CAIRN_E_NOTFOUND && strstr(reqs[77].msg, "missing"));
	CHECK(reqs[5].info.size == (uint64_t)(5 * 197) % 39000);
	for (int i = 0; i < N; i++) {
		memset(&reqs[i], 0, sizeof reqs[i]);
		reqs[i].op = OBJ_OP_DELETE;
		reqs[i].key = names[i];
		CHECK_OK(objstore_submit(b, &reqs[i]));
		free(bufs[i]);
	}
	CHECK_OK(objstore_batch_wait(b));
	check_absent(names[0]);
	check_absent(names[N - 1]);
	objstore_batch_free(b);
	free(data);
}

static void c_part_size(void)
{
	static const uint64_t totals[] = {
		1, 100 * MIB, 1ULL << 30, 50ULL << 30, 1ULL << 40,
	};
	uint64_t sum = 0, prev = 0;

	for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++) {
		uint64_t t = totals[i];
		if (t > lim.max_object_size)
			continue;
		for (uint64_t pref = 0; pref <= 64 * MIB; pref += 16 * MIB) {
			uint64_t s = objstore_part_size(os, t, 1, pref);
			CHECK(s >= lim.min_part_size);
			CHECK(s <= lim.max_part_size);
			CHECK(s % MIB == 0);
			CHECK((t + s - 1) / s <= lim.max_parts);
			CHECK(s >= pref || s == lim.max_part_size);
			CHECK(objstore_part_size(os, t, 77, pref) == s);
		}
	}
	/* unknown length, with the default and with the smallest wish */
	for (unsigned p = 1; p <= 2 * lim.max_parts; p++) {
		uint64_t s = objstore_part_size(os, 0,
						(p - 1) % lim.max_parts + 1,
						p > lim.max_parts
							? lim.min_part_size
							: 0);
		if (p == lim.max_parts + 1) {
			CHECK(sum >= lim.max_object_size);
			sum = 0;
			prev = 0;
		}
		if (s < lim.min_part_size || s > lim.max_part_size || s < prev) {
			T_FAIL_("unknown-length part %u has size %llu", p,
				(unsigned long long)s);
			break;
		}
		prev = s;
		sum += s;
	}
	CHECK(sum >= lim.max_object_size);
}

static void c_stats(void)
{
	cairn_objstore_stats a, b;
	char c;
	uint64_t got;

	objstore_stats(os, &a);
	CHECK_OK(objstore_put_buf(os, K("st/x"), "hello", 5));
	CHECK_OK(objstore_get(os, K("st/x"), 0, &c, 1, &got));
	CHECK_OK(objstore_delete(os, K("st/x")));
	objstore_stats(os, &b);
	CHECK(b.requests[OBJ_OP_PUT] == a.requests[OBJ_OP_PUT] + 1);
	CHECK(b.requests[OBJ_OP_GET] == a.requests[OBJ_OP_GET] + 1);
	CHECK(b.requests[OBJ_OP_DELETE] == a.requests[OBJ_OP_DELETE] + 1);
	CHECK(b.bytes_up == a.bytes_up + 5);
	CHECK(b.bytes_down == a.bytes_down + 1);
}

/* put_if_absent: create only; of racing creators exactly one wins. */
#define PIA_THREADS 16

struct pia_racer {
	pthread_barrier_t *go;
	const char *key;
	char *data;
	size_t len;
	int rc;
	char msg[256];
};

static void *pia_race_main(void *arg)
{
	struct pia_racer *r = arg;

	pthread_barrier_wait(r->go);
	r->rc = objstore_put_if_absent(os, r->key, r->data, r->len);
	if (r->rc)
		cairn_err_copy(r->msg, sizeof r->msg);
	return NULL;
}

static void pia_race(const char *key, uint64_t s)
{
	struct pia_racer rs[PIA_THREADS];
	pthread_t th[PIA_THREADS];
	pthread_barrier_t go;
	int winner = -1, wins = 0, exists = 0;

	REQUIRE(pthread_barrier_init(&go, NULL, PIA_THREADS) == 0);
	for (int i = 0; i < PIA_THREADS; i++) {
		/* distinct lengths and bytes: the object names its writer */
		rs[i] = (struct pia_racer){.go = &go, .key = key,
					   .len = 3000 + 17 * (size_t)i};
		rs[i].data = rnd_buf(rs[i].len, s + (uint64_t)i);
		REQUIRE(pthread_create(&th[i], NULL, pia_race_main, &rs[i]) == 0);
	}
	for (int i = 0; i < PIA_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < PIA_THREADS; i++) {
		if (rs[i].rc == 0) {
			winner = i;
			wins++;
		} else if (rs[i].rc == CAIRN_E_EXISTS) {
			exists++;
		} else {
			T_FAIL_("racer %d: %s: %s", i, cairn_rc_name(rs[i].rc),
				rs[i].msg);
		}
	}
	if (wins != 1 || exists != PIA_THREADS - 1)
		T_FAIL_("%s: %d winners and %d EXISTS of %d racers, want 1 "
			"and %d", key, wins, exists, PIA_THREADS,
			PIA_THREADS - 1);
	if (winner >= 0)
		check_obj(key, rs[winner].data, rs[winner].len);
	for (int i = 0; i < PIA_THREADS; i++)
		free(rs[i].data);
	pthread_barrier_destroy(&go);
}

static void c_put_if_absent(void)
{
	char *a = rnd_buf(5000, seed + 20), *b = rnd_buf(6000, seed + 21);
	char *longkey = xmalloc(CAIRN_KEY_MAX + 2);
	cairn_objstore_stats s0, s1;
	unsigned rounds = (unsigned)t_scaled(4);

	if (!lim.put_if_absent) {
		CHECK_RC(objstore_put_if_absent(os, K("pia/x"), "x", 1),
			 CAIRN_E_UNSUPPORTED);
		check_absent(K("pia/x"));
		goto out;
	}
	objstore_stats(os, &s0);
	CHECK_OK(objstore_put_if_absent(os, K("pia/a"), a, 5000));
	check_obj(K("pia/a"), a, 5000);
	/* present: EXISTS, and the object is untouched */
	CHECK_RC(objstore_put_if_absent(os, K("pia/a"), b, 6000),
		 CAIRN_E_EXISTS);
	CHECK_MSG("put-if-absent '");
	CHECK_MSG("pia/a");
	check_obj(K("pia/a"), a, 5000);
	objstore_stats(os, &s1);
	CHECK(s1.requests[OBJ_OP_PUT] == s0.requests[OBJ_OP_PUT] + 2);
	CHECK(s1.bytes_up == s0.bytes_up + 5000);
	/* a plain put still replaces it; put-if-absent still refuses */
	CHECK_OK(objstore_put_buf(os, K("pia/a"), b, 6000));
	CHECK_RC(objstore_put_if_absent(os, K("pia/a"), a, 10),
		 CAIRN_E_EXISTS);
	check_obj(K("pia/a"), b, 6000);
	/* deleted: free again */
	CHECK_OK(objstore_delete(os, K("pia/a")));
	CHECK_OK(objstore_put_if_absent(os, K("pia/a"), a, 100));
	check_obj(K("pia/a"), a, 100);
	/* empty objects, NULL buffer with no bytes */
	CHECK_OK(objstore_put_if_absent(os, K("pia/empty"), NULL, 0));
	check_obj(K("pia/empty"), "", 0);
	CHECK_RC(objstore_put_if_absent(os, K("pia/empty"), "z", 1),
		 CAIRN_E_EXISTS);
	check_obj(K("pia/empty"), "", 0);
	CHECK_RC(objstore_put_if_absent(os, K("pia/nobuf"), NULL, 5),
		 CAIRN_E_INVAL);
	check_absent(K("pia/nobuf"));
	/* bad keys, checked before any backend sees them */
	CHECK_RC(objstore_put_if_absent(os, "", "x", 1), CAIRN_E_INVAL);
	CHECK_RC(objstore_put_if_absent(os, NULL, "x", 1), CAIRN_E_INVAL);
	CHECK_RC(objstore_put_if_absent(os, K("pia//x"), "x", 1),
		 CAIRN_E_INVAL);
	CHECK_MSG("put-if-absent '");
	CHECK_RC(objstore_put_if_absent(os, K("pia/../x"), "x", 1),
		 CAIRN_E_INVAL);
	CHECK_RC(objstore_put_if_absent(os, K("pia/x/"), "x", 1),
		 CAIRN_E_INVAL);
	memset(longkey, 'k', CAIRN_KEY_MAX + 1);
	longkey[CAIRN_KEY_MAX + 1] = '\0';
	CHECK_RC(objstore_put_if_absent(os, longkey, "x", 1),
		 CAIRN_E_NAMETOOLONG);
	/* racing creators: exactly one wins, the object is the winner's */
	for (unsigned i = 0; i < rounds; i++)
		pia_race(K("pia/race-%u", i), seed + 1000 * (i + 1));
	for (unsigned i = 0; i < rounds; i++)
		CHECK_OK(objstore_delete(os, K("pia/race-%u", i)));
	CHECK_OK(objstore_delete(os, K("pia/a")));
	CHECK_OK(objstore_delete(os, K("pia/empty")));
out:
	free(longkey);
	free(a);
	free(b);
}

/* ------------------------------------------------------------- driver */

static const char *skip_reason(const char *name)
{
	const char *env = getenv("CAIRN_CONFORMANCE_SKIP");
	int mpu = !strcmp(name, "multipart") || !strcmp(name, "mpu_errors") ||
		  !strcmp(name, "file_src");

	if (env) {
		size_t nl = strlen(name);
		for (const char *p = env; (p = strstr(p, name)) != NULL; p += nl)
			if ((p == env || p[-1] == ',') &&
			    (p[nl] == ',' || p[nl] == '\0'))
				return "listed in CAIRN_CONFORMANCE_SKIP";
	}
	if (mpu && lim.min_part_size > 64 * MIB)
		return "min_part_size is over 64 MiB, too large to hold parts "
		       "in memory";
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct { const char *name; void (*fn)(void); } cases[] = {
		{"roundtrip", c_roundtrip}, {"range", c_range},
		{"get_crc", c_get_crc},
		{"overwrite", c_overwrite}, {"keys", c_keys},
		{"badkeys", c_badkeys},     {"list", c_list},
		{"delete_batch", c_delete_batch},
		{"multipart", c_multipart}, {"mpu_errors", c_mpu_errors},
		{"file_src", c_file_src},   {"inflight", c_inflight},
		{"part_size", c_part_size}, {"stats", c_stats},
		{"put_if_absent", c_put_if_absent},
	};
	const char *url = argc > 1 ? argv[1] : getenv("CAIRN_TEST_STORE_URL");
	const char *wrap = argc > 2 ? argv[2] : getenv("CAIRN_TEST_WRAP");
	const char *only = getenv("CAIRN_CONFORMANCE_ONLY");
	char urlbuf[600], *dir = NULL;
	char rnd[20];
	char **left;
	size_t n;

	seed = t_seed();
	if (!url || !*url) {
		dir = strdup(t_tmpdir("conformance"));
		REQUIRE(dir);
		snprintf(urlbuf, sizeof urlbuf, "file://%s/store", dir);
		url = urlbuf;
	}
	printf("store: %s%s%s\n", url, wrap ? " wrapped by " : "",
	       wrap ? wrap : "");
	REQUIRE_OK(objstore_open(url, NULL, &os));
	if (wrap && *wrap) {
		inner = os;
		if (!strcmp(wrap, "fault")) {
			cairn_obj_fault none = {.kind = OBJ_FAULT_NONE};
			REQUIRE_OK(objstore_fault_wrap(inner, &os));
			REQUIRE_OK(objstore_fault_arm(os, &none));
		} else if (!strcmp(wrap, "latency")) {
			REQUIRE_OK(objstore_latency_wrap(inner, 1, 4ULL << 30, &os));
		} else {
			fprintf(stderr, "unknown wrapper '%s' (fault|latency)\n",
				wrap);
			return 2;
		}
	}
	objstore_limits(os, &lim);
	{
		uint64_t s = seed;
		snprintf(rnd, sizeof rnd, "%08llx",
			 (unsigned long long)(t_rand(&s) & 0xffffffffULL));
	}
	snprintf(pfx, sizeof pfx, "conf-%s/", rnd);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *why = skip_reason(cases[i].name);
		int before = t_failures_;
		if (only && !strstr(only, cases[i].name))
			continue;
		if (why) {
			printf("SKIP: %s: %s\n", cases[i].name, why);
			skipped++;
			continue;
		}
		printf("case %s\n", cases[i].name);
		fflush(stdout);
		cases[i].fn();
		printf("case %s: %s\n", cases[i].name,
		       t_failures_ == before ? "ok" : "FAILED");
		fflush(stdout);
	}

	/* Leave nothing behind under the run's prefix. */
	n = list_all(pfx, 0, &left, NULL);
	for (size_t i = 0; i < n; i++) {
		T_FAIL_("left behind: '%s'", left[i]);
		CHECK_OK(objstore_delete(os, left[i]));
	}
	free_keys(left, n);
	if (skipped)
		printf("%d case(s) skipped\n", skipped);
	if (inner)
		objstore_close(os);
	objstore_close(inner ? inner : os);
	if (dir) {
		if (t_failures_ == 0)
			t_rmtree(dir);
		free(dir);
	}
	return t_done();
}
