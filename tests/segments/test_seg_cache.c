/*
 * test_seg_cache.c - the local segment cache: put/get of whole and partial
 * ranges, misses, LRU eviction within the limit, reuse after reopen (with
 * partial and garbage files dropped), a flipped byte detected and the piece
 * dropped, and concurrent readers and writers never seeing wrong bytes.
 */
#include <dirent.h>
#include <pthread.h>

#include "seg_test.h"

static cairn_uring *U;
static const char *DIR_;

/* Content of byte range [off, off+len) of segment key k: a function of the
 * absolute offset, so any sub-range can be checked. */
static void content(int k, uint64_t off, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) * 2654435761u + (uint64_t)k * 97;
		buf[i] = (uint8_t)(x >> 13);
	}
}

static void key_of(int k, char *buf, size_t size)
{
	seg_id id;

	st_id(&id, 9, (uint64_t)k);
	REQUIRE_OK(seg_key_format(&id, buf, size));
}

static void put(seg_cache *c, int k, uint64_t off, size_t len)
{
	char key[SEG_KEY_MAX];
	uint8_t *buf = malloc(len);

	REQUIRE(buf);
	key_of(k, key, sizeof key);
	content(k, off, buf, len);
	REQUIRE_OK(seg_cache_put(c, key, off, buf, len));
	free(buf);
}

/* 0 and the right bytes, or the error code. */
static int get(seg_cache *c, int k, uint64_t off, size_t len)
{
	char key[SEG_KEY_MAX];
	uint8_t *buf = malloc(len), *want = malloc(len);
	int rc;

	REQUIRE(buf && want);
	key_of(k, key, sizeof key);
	rc = seg_cache_get(c, key, off, buf, len);
	if (rc == 0) {
		content(k, off, want, len);
		REQUIRE(memcmp(buf, want, len) == 0);
	}
	free(buf);
	free(want);
	return rc;
}

static int count_files(const char *prefix)
{
	DIR *d = opendir(DIR_);
	struct dirent *de;
	int n = 0;

	REQUIRE(d);
	while ((de = readdir(d)))
		n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

/* The file name of the single piece file (c-*). */
static void one_piece_path(char *out, size_t size)
{
	DIR *d = opendir(DIR_);
	struct dirent *de;

	REQUIRE(d);
	out[0] = 0;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "c-", 2) == 0)
			snprintf(out, size, "%s/%s", DIR_, de->d_name);
	closedir(d);
	REQUIRE(out[0]);
}

static void test_basic(void)
{
	seg_cache *c;
	seg_cache_stats st;
	char key[SEG_KEY_MAX];

	REQUIRE_OK(seg_cache_open(U, DIR_, 64 << 20, &c));
	put(c, 1, 1000, 300000);
	CHECK_OK(get(c, 1, 1000, 300000));
	CHECK_OK(get(c, 1, 1000, 1));
	CHECK_OK(get(c, 1, 1000 + 65535, 2)); /* across a block boundary */
	CHECK_OK(get(c, 1, 1000 + 299999, 1));
	CHECK_OK(get(c, 1, 5000, 200000));
	CHECK_RC(get(c, 1, 999, 10), CAIRN_E_NOTFOUND);
	CHECK_MSG("not cached");
	CHECK_RC(get(c, 1, 1000 + 299999, 2), CAIRN_E_NOTFOUND);
	CHECK_RC(get(c, 2, 1000, 10), CAIRN_E_NOTFOUND);
	/* Replacing a piece at the same offset. */
	put(c, 1, 1000, 5000);
	CHECK_OK(get(c, 1, 1000, 5000));
	CHECK_RC(get(c, 1, 1000, 6000), CAIRN_E_NOTFOUND);
	seg_cache_stats_get(c, &st);
	CHECK(st.pieces == 1 && st.hits == 6 && st.misses == 4);
	CHECK(count_files("c-") == 1 && count_files("tmp-") == 0);
	/* Drop. */
	key_of(1, key, sizeof key);
	CHECK_OK(seg_cache_drop(c, key));
	CHECK_RC(get(c, 1, 1000, 10), CAIRN_E_NOTFOUND);
	CHECK(count_files("c-") == 0);
	/* Bad arguments. */
	CHECK_RC(seg_cache_put(c, key, 0, "x", 0), CAIRN_E_INVAL);
	CHECK_RC(seg_cache_put(c, "", 0, "x", 1), CAIRN_E_INVAL);
	seg_cache_close(c);

	REQUIRE_OK(seg_cache_open(U, DIR_, 100000, &c));
	uint8_t *big = calloc(1, 200000);
	CHECK_RC(seg_cache_put(c, key, 0, big, 200000), CAIRN_E_RANGE);
	CHECK_MSG("exceeds the limit");
	free(big);
	seg_cache_close(c);
	CHECK_RC(seg_cache_open(U, DIR_, 0, &c), CAIRN_E_INVAL);
	CHECK_RC(seg_cache_open(U, "/proc/nonexistent/x", 10, &c), CAIRN_E_IO);
}

static void test_evict(void)
{
	seg_cache *c;
	seg_cache_stats st;
	const size_t piece = 100000;
	/* Room for about 10 pieces (each is piece + a 4 KiB header). */
	const uint64_t limit = 10 * (piece + 4096) + 1000;

	REQUIRE_OK(seg_cache_open(U, DIR_, limit, &c));
	for (int k = 0; k < 10; k++)
		put(c, k, 64, piece);
	seg_cache_stats_get(c, &st);
	CHECK(st.pieces == 10 && st.evictions == 0 && st.bytes <= limit);
	/* Touch piece 0: it becomes the most recent, so 1 goes first. */
	CHECK_OK(get(c, 0, 64, 10));
	put(c, 10, 64, piece);
	CHECK_OK(get(c, 0, 64, 10));
	CHECK_RC(get(c, 1, 64, 10), CAIRN_E_NOTFOUND);
	CHECK_OK(get(c, 2, 64, 10));
	for (int k = 11; k < 40; k++) {
		put(c, k, 64, piece);
		seg_cache_stats_get(c, &st);
		CHECK(st.bytes <= limit);
	}
	seg_cache_stats_get(c, &st);
	CHECK(st.pieces == 10 && st.evictions == 30);
	CHECK(count_files("c-") == 10);
	for (int k = 30; k < 40; k++)
		CHECK_OK(get(c, k, 64, piece));
	seg_cache_close(c);

	/* Reopen with a smaller limit: the oldest go. */
	REQUIRE_OK(seg_cache_open(U, DIR_, 5 * (piece + 4096), &c));
	seg_cache_stats_get(c, &st);
	CHECK(st.pieces == 5);
	CHECK(count_files("c-") == 5);
	/* Which five is up to the file times (coarse): any five of 30..39. */
	int found = 0;
	for (int k = 30; k < 40; k++)
		found += get(c, k, 64, piece) == 0;
	CHECK(found == 5);
	for (int k = 0; k < 40; k++) {
		char key[SEG_KEY_MAX];
		key_of(k, key, sizeof key);
		CHECK_OK(seg_cache_drop(c, key));
	}
	seg_cache_close(c);
}

static void test_reopen(void)
{
	seg_cache *c;
	seg_cache_stats st;
	char path[700], p2[700];

	REQUIRE_OK(seg_cache_open(U, DIR_, 64 << 20, &c));
	put(c, 1, 0, 70000);
	put(c, 2, 4096, 1000);
	put(c, 3, 0, 200000);
	seg_cache_close(c);
	/* Debris of a crash: a half-written tmp file, a truncated piece, a
	 * piece of garbage, a piece renamed to the wrong name. */
	snprintf(path, sizeof path, "%s/tmp-1-1", DIR_);
	st_spit(path, "partial", 7);
	snprintf(path, sizeof path, "%s/c-0000", DIR_);
	st_spit(path, "garbage garbage garbage", 23);
	{
		char key[SEG_KEY_MAX];
		uint8_t h[32];
		char hex[65];
		key_of(3, key, sizeof key);
		REQUIRE_OK(cairn_sha256(key, strlen(key), h));
		cairn_hex(h, 32, hex);
		snprintf(path, sizeof path, "%s/c-%.32s-%016x", DIR_, hex, 0);
		REQUIRE(truncate(path, 100000) == 0);
		key_of(2, key, sizeof key);
		REQUIRE_OK(cairn_sha256(key, strlen(key), h));
		cairn_hex(h, 32, hex);
		snprintf(path, sizeof path, "%s/c-%.32s-%016x", DIR_, hex, 4096);
		snprintf(p2, sizeof p2, "%s/c-%.32s-%016x", DIR_, hex, 8192);
		REQUIRE(link(path, p2) == 0);
	}
	REQUIRE_OK(seg_cache_open(U, DIR_, 64 << 20, &c));
	seg_cache_stats_get(c, &st);
	CHECK(st.pieces == 2);
	CHECK_OK(get(c, 1, 0, 70000));
	CHECK_OK(get(c, 2, 4096, 1000));
	CHECK_RC(get(c, 3, 0, 10), CAIRN_E_NOTFOUND);
	CHECK_RC(get(c, 2, 8192, 10), CAIRN_E_NOTFOUND);
	CHECK(count_files("c-") == 2 && count_files("tmp-") == 0);
	for (int k = 1; k <= 3; k++) {
		char key[SEG_KEY_MAX];
		key_of(k, key, sizeof key);
		CHECK_OK(seg_cache_drop(c, key));
	}
	CHECK(count_files("c-") == 0);
	seg_cache_close(c);
}

static void flip_at(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	REQUIRE(fd >= 0 && pread(fd, &b, 1, at) == 1);
	b ^= 0x10;
	REQUIRE(pwrite(fd, &b, 1, at) == 1);
	close(fd);
}

static void test_corrupt(void)
{
	seg_cache *c;
	seg_cache_stats st;
	char path[700];

	/* A flipped data byte: detected on read, logged, dropped. */
	REQUIRE_OK(seg_cache_open(U, DIR_, 64 << 20, &c));
	put(c, 5, 0, 200000);
	one_piece_path(path, sizeof path);
	flip_at(path, 4096 + 150000);
	CHECK_OK(get(c, 5, 0, 1000)); /* other blocks still verify */
	CHECK_RC(get(c, 5, 140000, 20000), CAIRN_E_CORRUPT);
	CHECK_MSG("is corrupt (block 2)");
	CHECK(access(path, F_OK) != 0);
	CHECK_RC(get(c, 5, 0, 1000), CAIRN_E_NOTFOUND);
	seg_cache_stats_get(c, &st);
	CHECK(st.corrupt == 1 && st.pieces == 0);

	/* A flipped header byte: the piece is dropped at the next open. */
	put(c, 6, 0, 5000);
	seg_cache_close(c);
	one_piece_path(path, sizeof path);
	flip_at(path, 70);
	REQUIRE_OK(seg_cache_open(U, DIR_, 64 << 20, &c));
	CHECK_RC(get(c, 6, 0, 10), CAIRN_E_NOTFOUND);
	CHECK(count_files("c-") == 0);

	/* A piece truncated behind the cache's back. */
	put(c, 7, 0, 200000);
	one_piece_path(path, sizeof path);
	REQUIRE(truncate(path, 4096 + 100000) == 0);
	CHECK_RC(get(c, 7, 150000, 10), CAIRN_E_CORRUPT);
	CHECK_MSG("corrupt");
	CHECK(count_files("c-") == 0);
	seg_cache_close(c);
}

/* Fail the Nth engine op of a put or a get: a clean error, no debris, and
 * the cache goes on working. */
static void test_faults(void)
{
	seg_cache *c;
	seg_cache_stats st;
	char key[SEG_KEY_MAX];
	uint8_t buf[1000];

	REQUIRE_OK(seg_cache_open(U, DIR_, 64 << 20, &c));
	content(8, 0, buf, sizeof buf);
	key_of(8, key, sizeof key);
	uring_fault_set(U, 1, EIO);
	CHECK_RC(seg_cache_put(c, key, 0, buf, sizeof buf), CAIRN_E_IO);
	CHECK_MSG("cache");
	CHECK(count_files("tmp-") == 0 && count_files("c-") == 0);
	seg_cache_stats_get(c, &st);
	CHECK(st.pieces == 0 && st.bytes == 0);
	uring_fault_set(U, 2, ENOSPC);
	CHECK_RC(seg_cache_put(c, key, 0, buf, sizeof buf), CAIRN_E_NOSPC);
	CHECK(count_files("tmp-") == 0 && count_files("c-") == 0);
	uring_fault_set(U, 0, 0);
	put(c, 8, 0, sizeof buf);
	uring_fault_set(U, 1, EIO);
	CHECK_RC(get(c, 8, 0, 100), CAIRN_E_IO);
	uring_fault_set(U, 0, 0);
	CHECK_OK(get(c, 8, 0, 100)); /* an I/O error is not corruption */
	CHECK_OK(seg_cache_drop(c, key));
	seg_cache_close(c);
}

/* ---- concurrency ---- */

struct worker {
	seg_cache *c;
	uint64_t seed;
	int bad;
};

#define CK 12           /* keys */
#define CPIECE 90000    /* bytes per piece */

/* The workers' put and get: no CHECK/REQUIRE (t.h's counters are not
 * thread-safe), a failure is counted in wk->bad instead. */
static int worker_key(int k, char *key, size_t size)
{
	seg_id id;

	st_id(&id, 9, (uint64_t)k);
	return seg_key_format(&id, key, size);
}

static void worker_put(struct worker *wk, int k, size_t len)
{
	char key[SEG_KEY_MAX];
	uint8_t *buf = malloc(len);

	if (!buf || worker_key(k, key, sizeof key) != 0) {
		wk->bad++;
	} else {
		content(k, 0, buf, len);
		if (seg_cache_put(wk->c, key, 0, buf, len) != 0) {
			fprintf(stderr, "worker: put: %s\n", cairn_errmsg());
			wk->bad++;
		}
	}
	free(buf);
}

static void worker_get(struct worker *wk, int k, uint64_t off, size_t len)
{
	char key[SEG_KEY_MAX];
	uint8_t *buf = malloc(len), *want = malloc(len);
	int rc;

	if (!buf || !want || worker_key(k, key, sizeof key) != 0) {
		wk->bad++;
		goto out;
	}
	rc = seg_cache_get(wk->c, key, off, buf, len);
	if (rc == 0) {
		content(k, off, want, len);
		if (memcmp(buf, want, len) != 0) {
			fprintf(stderr, "worker: get returned wrong bytes\n");
			wk->bad++;
		}
	} else if (rc != CAIRN_E_NOTFOUND) {
		fprintf(stderr, "worker: get rc %d: %s\n", rc, cairn_errmsg());
		wk->bad++;
	}
out:
	free(buf);
	free(want);
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	uint64_t s = wk->seed;
	uint64_t iters = t_scaled(400);

	for (uint64_t i = 0; i < iters; i++) {
		int k = (int)(t_rand(&s) % CK);
		uint64_t r = t_rand(&s);

		if (r % 4 == 0) {
			worker_put(wk, k, CPIECE);
		} else {
			uint64_t off = (r >> 8) % CPIECE;
			size_t len = 1 + (size_t)((r >> 32) % (CPIECE - off));
			worker_get(wk, k, off, len);
		}
	}
	return NULL;
}

static void test_concurrent(uint64_t seed)
{
	enum { NT = 4 };
	pthread_t th[NT];
	struct worker wk[NT];
	seg_cache *c;
	seg_cache_stats st;

	/* Room for about half the keys: evictions race with reads. */
	REQUIRE_OK(seg_cache_open(U, DIR_, (CK / 2) * (CPIECE + 4096), &c));
	for (int i = 0; i < NT; i++) {
		wk[i] = (struct worker){.c = c, .seed = seed + 1000 * i};
		REQUIRE(pthread_create(&th[i], NULL, worker_main, &wk[i]) == 0);
	}
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		CHECK(wk[i].bad == 0);
	}
	seg_cache_stats_get(c, &st);
	printf("concurrent: hits %" PRIu64 " misses %" PRIu64 " evictions %" PRIu64 "\n",
	       st.hits, st.misses, st.evictions);
	CHECK(st.bytes <= st.limit && st.corrupt == 0);
	CHECK(st.hits > 0 && st.evictions > 0);
	CHECK((int)st.pieces == count_files("c-"));
	seg_cache_close(c);
}

int main(void)
{
	uint64_t seed = t_seed();

	DIR_ = t_tmpdir("seg_cache");
	REQUIRE_OK(uring_open(NULL, &U));
	REQUIRE_OK(cairn_log_set_file("/dev/null"));
	test_basic();
	test_evict();
	test_reopen();
	test_corrupt();
	test_faults();
	test_concurrent(seed);
	REQUIRE_OK(cairn_log_set_file(NULL));
	uring_close(U);
	t_rmtree(DIR_);
	return t_done();
}
