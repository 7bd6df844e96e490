/*
 * test_seg_reader.c - reading segments from a file:// object store: open
 * (tail GET, separate index GET for a large index), frame reads, reads
 * through the cache (a hit costs no request; a corrupt cached copy is
 * refetched), and corrupt, truncated and missing objects.
 */
#include <pthread.h>

#include "seg_test.h"

static cairn_uring *U;
static const char *DIR_;

/* Chunk i's content. */
static size_t chunk_len(uint64_t i, int tiny)
{
	return tiny ? 1 + i % 30 : 500 + (size_t)(i * 7919 % 20000);
}

static void chunk_fill(uint64_t i, uint8_t *buf, size_t len)
{
	st_chunk(buf, len, (int)(i % 3), i);
}

/* Build a segment of n chunks, put it at key; return its bytes. */
static uint8_t *put_segment(cairn_objstore *os, const seg_id *id, int n,
			    int tiny, char *key, size_t *len)
{
	char path[600];
	seg_writer *w;
	uint8_t buf[20500];
	uint8_t *obj;

	REQUIRE_OK(seg_key_format(id, key, SEG_KEY_MAX));
	snprintf(path, sizeof path, "%s/staging-%" PRIu64 ".seg", DIR_, id->seq);
	unlink(path);
	REQUIRE_OK(seg_writer_create(U, path, id, NULL, &w));
	for (int i = 0; i < n; i++) {
		size_t l = chunk_len((uint64_t)i, tiny);
		chunk_fill((uint64_t)i, buf, l);
		REQUIRE_OK(seg_writer_append(w, (uint64_t)i, buf, l, NULL));
	}
	REQUIRE_OK(seg_writer_seal(w, NULL));
	seg_writer_close(w);
	obj = st_slurp(path, len);
	REQUIRE_OK(objstore_put_buf(os, key, obj, *len));
	return obj;
}

static void read_every(seg_reader *r, seg_cache *c, int tiny, int expect_ok)
{
	const seg_index *ix = seg_reader_index(r);
	uint8_t got[20500], want[20500];

	for (size_t i = 0; i < seg_index_count(ix); i++) {
		seg_frame f;
		size_t rl = 0;
		int rc;

		REQUIRE_OK(seg_index_get(ix, i, &f));
		rc = c ? seg_reader_read_cached(r, c, 256 << 10, &f, got,
						sizeof got, &rl)
		       : seg_reader_read(r, &f, got, sizeof got, &rl);
		if (!expect_ok)
			continue;
		CHECK_OK(rc);
		if (rc)
			return;
		CHECK(rl == chunk_len(i, tiny));
		chunk_fill(i, want, rl);
		CHECK(memcmp(got, want, rl) == 0);
	}
}

/* ---- windows: each fetched and stored once ---- */

typedef struct wreader {
	seg_reader *r;
	seg_cache *c;
	uint64_t window;
	int fails;
} wreader;

static void *wreader_run(void *arg)
{
	wreader *w = arg;
	const seg_index *ix = seg_reader_index(w->r);
	size_t n = seg_index_count(ix);
	uint8_t got[20500], want[20500];

	for (size_t k = 0; k < n; k++) {
		/* Every thread walks the frames in order, so they all miss
		 * the same windows at the same time. */
		size_t i = k;
		seg_frame f;
		size_t rl = 0;
		if (seg_index_get(ix, i, &f) ||
		    seg_reader_read_cached(w->r, w->c, w->window, &f, got, sizeof got, &rl)) {
			w->fails++;
			continue;
		}
		chunk_fill(i, want, rl);
		if (rl != chunk_len(i, 0) || memcmp(got, want, rl))
			w->fails++;
	}
	return NULL;
}

/* Aligned windows of `window` bytes that frames [first, last] overlap,
 * counted from the frames' offsets (not from the reader's code). */
static uint64_t windows_touched(const seg_index *ix, uint64_t window)
{
	uint64_t n = 0, prev = UINT64_MAX;
	for (size_t i = 0; i < seg_index_count(ix); i++) {
		seg_frame f;
		REQUIRE_OK(seg_index_get(ix, i, &f));
		for (uint64_t w = f.off / window; w <= (f.off + seg_frame_span(&f) - 1) / window; w++)
			if (w != prev && (prev == UINT64_MAX || w > prev)) {
				n++;
				prev = w;
			}
	}
	return n;
}

static void test_windows_once(cairn_objstore *os, int nthreads)
{
	char key[SEG_KEY_MAX], cdir[700];
	cairn_objstore_stats s0, s1;
	seg_cache_stats cs;
	seg_reader *r;
	seg_cache *c;
	seg_id id;
	size_t len;
	const uint64_t window = 64 << 10; /* frames of 0.5-20 KiB straddle often */
	wreader w[8];
	pthread_t th[8];

	st_id(&id, 3, 40 + (uint64_t)nthreads);
	uint8_t *obj = put_segment(os, &id, 400, 0, key, &len);
	REQUIRE_OK(seg_reader_open(os, key, &id, &r));
	snprintf(cdir, sizeof cdir, "%s/wcache%d", DIR_, nthreads);
	REQUIRE_OK(seg_cache_open(U, cdir, 1ull << 30, &c));
	uint64_t want = windows_touched(seg_reader_index(r), window);
	objstore_stats(os, &s0);
	for (int t = 0; t < nthreads; t++) {
		w[t] = (wreader){ .r = r, .c = c, .window = window };
		REQUIRE(pthread_create(&th[t], NULL, wreader_run, &w[t]) == 0);
	}
	for (int t = 0; t < nthreads; t++) {
		pthread_join(th[t], NULL);
		CHECK(w[t].fails == 0);
	}
	objstore_stats(os, &s1);
	seg_cache_stats_get(c, &cs);
	/* One GET and one piece per window, however many readers missed it
	 * at once and however many frames straddle a boundary. */
	CHECK(s1.requests[OBJ_OP_GET] - s0.requests[OBJ_OP_GET] == want);
	CHECK(cs.pieces == want);
	/* No byte stored twice: pieces hold at most the object plus the
	 * per-piece header and crcs (a 4 KiB page each, rounded). */
	CHECK(cs.bytes <= len + want * 8192);
	seg_cache_close(c);
	seg_reader_close(r);
	free(obj);
}

/* Shuffled reads fetch a sub-window around each frame, not a whole
 * window; reading in order still costs about one GET per window. */
static void test_fetch_sizes(cairn_objstore *os)
{
	char key[SEG_KEY_MAX], cdir[700];
	cairn_objstore_stats s0, s1;
	const uint64_t window = 256 << 10, sub = 64 << 10;
	uint8_t got[20500], want[20500];
	seg_reader *r;
	seg_cache *c;
	seg_id id;
	size_t len, rl;
	seg_frame f;

	st_id(&id, 3, 60);
	uint8_t *obj = put_segment(os, &id, 1500, 0, key, &len);
	REQUIRE(len > 8 * window);
	REQUIRE_OK(seg_reader_open(os, key, &id, &r));
	const seg_index *ix = seg_reader_index(r);
	size_t n = seg_index_count(ix);

	/* Every 97th frame, backwards: no frame's predecessor is cached. */
	snprintf(cdir, sizeof cdir, "%s/fcache-rand", DIR_);
	REQUIRE_OK(seg_cache_open(U, cdir, 1ull << 30, &c));
	objstore_stats(os, &s0);
	uint64_t nread = 0, bytes = 0;
	for (size_t k = n - 1; k < n; k -= 97) {
		REQUIRE_OK(seg_index_get(ix, k, &f));
		CHECK_OK(seg_reader_read_cached(r, c, window, &f, got, sizeof got, &rl));
		chunk_fill(k, want, rl);
		CHECK(rl == chunk_len(k, 0) && memcmp(got, want, rl) == 0);
		nread++;
		bytes += seg_frame_span(&f);
		if (k < 97)
			break;
	}
	objstore_stats(os, &s1);
	/* At most the frame plus a sub-window on each side per read. */
	CHECK(s1.bytes_down - s0.bytes_down <= bytes + nread * 2 * sub);
	CHECK(s1.requests[OBJ_OP_GET] - s0.requests[OBJ_OP_GET] <= nread);
	seg_cache_close(c);

	/* In order: one GET per window the frames touch, plus the first
	 * sub-window (before the walk is seen to be sequential). */
	snprintf(cdir, sizeof cdir, "%s/fcache-seq", DIR_);
	REQUIRE_OK(seg_cache_open(U, cdir, 1ull << 30, &c));
	objstore_stats(os, &s0);
	for (size_t k = 0; k < n; k++) {
		REQUIRE_OK(seg_index_get(ix, k, &f));
		CHECK_OK(seg_reader_read_cached(r, c, window, &f, got, sizeof got, &rl));
	}
	objstore_stats(os, &s1);
	CHECK(s1.requests[OBJ_OP_GET] - s0.requests[OBJ_OP_GET] <=
	      windows_touched(ix, window) + 1);
	CHECK(s1.bytes_down - s0.bytes_down <= len + sub);
	seg_cache_close(c);
	seg_reader_close(r);
	free(obj);
}

int main(void)
{
	cairn_objstore *os;
	seg_reader *r;
	seg_cache *c;
	cairn_objstore_stats s0, s1;
	char url[700], key[SEG_KEY_MAX], key2[SEG_KEY_MAX], cdir[700];
	seg_id id;
	size_t len, len2;
	uint8_t *obj, *obj2;
	int rc;

	t_seed();
	DIR_ = t_tmpdir("seg_reader");
	REQUIRE_OK(uring_open(NULL, &U));
	snprintf(url, sizeof url, "file://%s/bucket", DIR_);
	{
		char b[700];
		snprintf(b, sizeof b, "%s/bucket", DIR_);
		REQUIRE(mkdir(b, 0755) == 0);
	}
	cairn_objstore_opts oo = {.uring = U};
	rc = objstore_open(url, &oo, &os);
	if (rc == CAIRN_E_UNSUPPORTED || rc == CAIRN_E_INVAL) {
		printf("file:// store not available: %s\n", cairn_errmsg());
		t_skip("file:// object store not available");
	}
	REQUIRE_OK(rc);
	REQUIRE_OK(cairn_log_set_file("/dev/null"));

	/* Plain reads. */
	st_id(&id, 2, 1);
	obj = put_segment(os, &id, 60, 0, key, &len);
	REQUIRE_OK(seg_reader_open(os, key, NULL, &r));
	CHECK(seg_reader_size(r) == len);
	CHECK(seg_index_count(seg_reader_index(r)) == 60);
	read_every(r, NULL, 0, 1);

	/* Through the cache: the second pass makes no request. */
	snprintf(cdir, sizeof cdir, "%s/cache", DIR_);
	REQUIRE_OK(seg_cache_open(U, cdir, 64 << 20, &c));
	read_every(r, c, 0, 1);
	objstore_stats(os, &s0);
	read_every(r, c, 0, 1);
	objstore_stats(os, &s1);
	CHECK(s1.requests[OBJ_OP_GET] == s0.requests[OBJ_OP_GET]);
	seg_cache_stats st;
	seg_cache_stats_get(c, &st);
	CHECK(st.hits >= 60);

	/* A frame that is not in the data area is refused before any GET. */
	seg_frame f;
	uint8_t buf[64];
	REQUIRE_OK(seg_index_get(seg_reader_index(r), 0, &f));
	f.off = len - 10;
	CHECK_RC(seg_reader_read(r, &f, buf, sizeof buf, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("outside the data area");
	seg_reader_close(r);

	/* The object is replaced by a corrupted copy (same key, as a broken
	 * store would): the cache still serves its verified copy; a direct
	 * read reports the corruption, naming the segment. */
	REQUIRE_OK(seg_key_format(&id, key, sizeof key));
	obj2 = malloc(len);
	memcpy(obj2, obj, len);
	REQUIRE_OK(seg_reader_open(os, key, NULL, &r));
	REQUIRE_OK(seg_index_get(seg_reader_index(r), 5, &f));
	obj2[f.off + SEG_FRAME_HDR_SIZE + 1] ^= 0x20;
	REQUIRE_OK(objstore_put_buf(os, key, obj2, len));
	uint8_t out[20500];
	CHECK_RC(seg_reader_read(r, &f, out, sizeof out, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG(key);
	CHECK_MSG("checksum mismatch in frame");
	CHECK_OK(seg_reader_read_cached(r, c, 256 << 10, &f, out, sizeof out, NULL));
	/* After the cache lost it, the corruption surfaces. */
	CHECK_OK(seg_cache_drop(c, key));
	CHECK_RC(seg_reader_read_cached(r, c, 256 << 10, &f, out, sizeof out, NULL),
		 CAIRN_E_CORRUPT);
	seg_reader_close(r);
	free(obj2);

	/* A large index (more than the 64 KiB tail read) is fetched apart. */
	st_id(&id, 2, 2);
	obj2 = put_segment(os, &id, 3000, 1, key2, &len2);
	objstore_stats(os, &s0);
	REQUIRE_OK(seg_reader_open(os, key2, &id, &r));
	objstore_stats(os, &s1);
	CHECK(s1.requests[OBJ_OP_GET] - s0.requests[OBJ_OP_GET] == 2);
	CHECK(seg_index_count(seg_reader_index(r)) == 3000);
	read_every(r, c, 1, 1);
	seg_reader_close(r);
	/* The wrong expectation. */
	id.seq = 3;
	CHECK_RC(seg_reader_open(os, key2, &id, &r), CAIRN_E_CORRUPT);
	CHECK_MSG("expected packed epoch 2 seq 3");

	/* Truncated objects: every length fails with CAIRN_E_CORRUPT. */
	for (size_t l = 0; l < len; l += 1 + l / 8) {
		REQUIRE_OK(objstore_put_buf(os, "v/t/seg/trunc", obj, l));
		rc = seg_reader_open(os, "v/t/seg/trunc", NULL, &r);
		if (rc != CAIRN_E_CORRUPT) {
			T_FAIL_("truncated to %zu: rc %d %s", l, rc, cairn_errmsg());
			seg_reader_close(rc ? NULL : r);
		}
	}
	t_checks_++;
	REQUIRE_OK(objstore_put_buf(os, "v/t/seg/trunc", obj, 50));
	CHECK_RC(seg_reader_open(os, "v/t/seg/trunc", NULL, &r), CAIRN_E_CORRUPT);
	CHECK_MSG("segment v/t/seg/trunc: object of 50 bytes cannot be a segment");
	/* Missing. */
	CHECK_RC(seg_reader_open(os, "v/t/seg/none", NULL, &r), CAIRN_E_NOTFOUND);
	CHECK_MSG("v/t/seg/none");

	/* A store that answers with half the bytes, or fails. */
	{
		cairn_objstore *fos;
		cairn_obj_fault rule = {.kind = OBJ_FAULT_TRUNCATE,
					.op_mask = 1 << OBJ_OP_GET};
		REQUIRE_OK(objstore_fault_wrap(os, &fos));
		REQUIRE_OK(objstore_fault_arm(fos, &rule));
		CHECK_RC(seg_reader_open(fos, key2, NULL, &r), CAIRN_E_CORRUPT);
		CHECK_MSG("object ends early");
		rule.kind = OBJ_FAULT_NONE;
		REQUIRE_OK(objstore_fault_arm(fos, &rule));
		REQUIRE_OK(seg_reader_open(fos, key2, NULL, &r));
		rule.kind = OBJ_FAULT_TRUNCATE;
		REQUIRE_OK(objstore_fault_arm(fos, &rule));
		REQUIRE_OK(seg_index_get(seg_reader_index(r), 7, &f));
		CHECK_RC(seg_reader_read(r, &f, out, sizeof out, NULL), CAIRN_E_CORRUPT);
		rule.kind = OBJ_FAULT_FAIL;
		rule.rc = CAIRN_E_STORE;
		REQUIRE_OK(objstore_fault_arm(fos, &rule));
		CHECK_RC(seg_reader_read(r, &f, out, sizeof out, NULL), CAIRN_E_STORE);
		CHECK_MSG(key2);
		seg_reader_close(r);
		objstore_close(fos);
	}

	test_windows_once(os, 1);
	test_windows_once(os, 8);
	test_fetch_sizes(os);

	REQUIRE_OK(cairn_log_set_file(NULL));
	seg_cache_close(c);
	free(obj);
	free(obj2);
	objstore_close(os);
	uring_close(U);
	t_rmtree(DIR_);
	return t_done();
}
