/*
 * test_seg_format.c - the segment byte layout: round trip of many chunks
 * through the writer and the parsers, raw vs zstd choice, every byte of a
 * small segment flipped in turn, truncation at every length, hand-made
 * inconsistencies with their messages, unknown versions, and keys.
 */
#include "seg_int.h"
#include "seg_test.h"

static cairn_uring *U;
static const char *DIR_;

/* Write chunks (sizes[i], kinds[i]) into a sealed segment; return its bytes
 * and the frames the writer reported. */
static uint8_t *build(const char *file, const seg_id *id, size_t n,
		      const size_t *sizes, const int *kinds, uint64_t seed,
		      seg_frame *frames, size_t *len)
{
	char path[600];
	seg_writer *w;
	uint8_t *chunk = malloc(1 << 20);
	uint64_t size;

	REQUIRE(chunk != NULL);
	snprintf(path, sizeof path, "%s/%s", DIR_, file);
	unlink(path);
	REQUIRE_OK(seg_writer_create(U, path, id, NULL, &w));
	for (size_t i = 0; i < n; i++) {
		st_chunk(chunk, sizes[i], kinds[i], seed + i);
		REQUIRE_OK(seg_writer_append(w, 1000 + i, chunk, sizes[i],
					     &frames[i]));
	}
	REQUIRE_OK(seg_writer_seal(w, &size));
	seg_writer_close(w);
	free(chunk);
	uint8_t *buf = st_slurp(path, len);
	CHECK(*len == size);
	return buf;
}

/* Read every chunk the way the volume does (footer, index, ranged frame)
 * and compare with what was written.  Returns 0 when every step succeeded
 * and the bytes matched, the error code otherwise; wrong bytes fail the
 * test outright. */
static int read_all(const uint8_t *buf, size_t len, const seg_id *id,
		    size_t n, const size_t *sizes, const int *kinds,
		    uint64_t seed)
{
	seg_footer f;
	seg_index *ix = NULL;
	uint8_t *want = malloc(1 << 20), *got = malloc(1 << 20);
	int rc;

	REQUIRE(want && got);
	rc = seg_footer_parse("t", buf, len, len, id, &f);
	if (rc)
		goto out;
	rc = seg_index_parse("t", &f, buf + f.index_off, f.index_len, &ix);
	if (rc)
		goto out;
	if (seg_index_count(ix) != n) {
		rc = CAIRN_E_INTERNAL;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		seg_frame e;
		size_t rl = 0;

		REQUIRE_OK(seg_index_get(ix, i, &e));
		rc = seg_frame_decode("t", &e, buf + e.off, seg_frame_span(&e),
				      got, 1 << 20, &rl);
		if (rc)
			goto out;
		st_chunk(want, sizes[i], kinds[i], seed + i);
		/* Invariant: a decode that succeeds gives the written bytes. */
		REQUIRE(rl == sizes[i]);
		REQUIRE(memcmp(want, got, rl) == 0);
	}
out:
	seg_index_free(ix);
	free(want);
	free(got);
	return rc;
}

static void test_round_trip(uint64_t seed)
{
	enum { N = 300 };
	static size_t sizes[N];
	static int kinds[N];
	static seg_frame frames[N];
	uint64_t s = seed;
	seg_id id;
	size_t len, nraw = 0, nzstd = 0;
	uint8_t *buf;

	st_id(&id, 7, 42);
	for (size_t i = 0; i < N; i++) {
		uint64_t r = t_rand(&s);
		sizes[i] = r % 5 == 0 ? r % 64 : (r >> 8) % (256 << 10);
		kinds[i] = (int)((r >> 40) % 3);
	}
	sizes[0] = 0;
	sizes[1] = 1 << 20; /* one big compressible chunk */
	kinds[1] = 1;
	buf = build("rt.seg", &id, N, sizes, kinds, seed, frames, &len);
	CHECK_OK(seg_verify_buf("rt", buf, len, &id));
	CHECK_OK(read_all(buf, len, &id, N, sizes, kinds, seed));

	/* The index says what the writer said; codec choice is sane. */
	seg_footer f;
	seg_index *ix;
	REQUIRE_OK(seg_footer_parse("rt", buf, len, len, &id, &f));
	REQUIRE_OK(seg_index_parse("rt", &f, buf + f.index_off, f.index_len, &ix));
	REQUIRE(seg_index_count(ix) == N);
	for (size_t i = 0; i < N; i++) {
		seg_frame e, g;
		REQUIRE_OK(seg_index_get(ix, i, &e));
		CHECK(memcmp(&e, &frames[i], sizeof e) == 0);
		CHECK_OK(seg_index_find(ix, 1000 + i, &g));
		CHECK(g.off == e.off);
		if (kinds[i] == 0 && sizes[i] > 0)
			CHECK(e.codec == SEG_CODEC_RAW);
		if (kinds[i] != 0 && sizes[i] >= 1024)
			CHECK(e.codec == SEG_CODEC_ZSTD);
		if (e.codec == SEG_CODEC_ZSTD)
			CHECK(e.stored_len <= e.raw_len - e.raw_len / 16);
		nraw += e.codec == SEG_CODEC_RAW;
		nzstd += e.codec == SEG_CODEC_ZSTD;
	}
	CHECK(nraw > 10 && nzstd > 10);
	CHECK(frames[1].codec == SEG_CODEC_ZSTD &&
	      frames[1].stored_len < (1 << 20) / 4);
	printf("1 MiB of text stored in %u bytes\n", frames[1].stored_len);
	CHECK_RC(seg_index_find(ix, 5, &(seg_frame){0}), CAIRN_E_NOTFOUND);
	CHECK_RC(seg_index_get(ix, N, &(seg_frame){0}), CAIRN_E_RANGE);

	/* A destination one byte too small is refused, not overrun. */
	seg_frame e;
	uint8_t *small = malloc(sizes[1]);
	REQUIRE_OK(seg_index_get(ix, 1, &e));
	CHECK_RC(seg_frame_decode("rt", &e, buf + e.off, seg_frame_span(&e),
				  small, sizes[1] - 1, NULL),
		 CAIRN_E_RANGE);
	CHECK_MSG("buffer has");
	/* A frame given less than its span is truncated. */
	CHECK_RC(seg_frame_decode("rt", &e, buf + e.off, seg_frame_span(&e) - 1,
				  small, sizes[1], NULL),
		 CAIRN_E_CORRUPT);
	CHECK_MSG("truncated");
	/* The wrong index entry for a frame is caught. */
	seg_frame other;
	REQUIRE_OK(seg_index_get(ix, 2, &other));
	other.off = e.off;
	CHECK_RC(seg_frame_decode("rt", &other, buf + e.off, seg_frame_span(&e),
				  small, sizes[1], NULL),
		 CAIRN_E_CORRUPT);
	CHECK_MSG("disagrees with its index entry");
	/* Wrong segment. */
	seg_id id2 = id;
	id2.seq = 43;
	CHECK_RC(seg_verify_buf("rt", buf, len, &id2), CAIRN_E_CORRUPT);
	CHECK_MSG("expected packed epoch 7 seq 2b");
	CHECK_RC(seg_footer_parse("rt", buf, len, len, &id2, &f), CAIRN_E_CORRUPT);
	id2 = id;
	id2.uuid[3] ^= 1;
	CHECK_RC(seg_verify_buf("rt", buf, len, &id2), CAIRN_E_CORRUPT);
	CHECK_MSG("another volume");
	free(small);
	seg_index_free(ix);
	free(buf);
}

/* A small segment with raw, zstd and empty frames. */
static size_t small_sizes[] = {0, 40, 300, 200, 1, 500};
static int small_kinds[] = {0, 0, 1, 0, 1, 2};
#define SMALL_N 6

static void test_flips(uint64_t seed)
{
	seg_frame frames[SMALL_N];
	seg_id id;
	size_t len, caught = 0, header_only = 0;
	uint8_t *buf, *copy;

	st_id(&id, 1, 2);
	buf = build("small.seg", &id, SMALL_N, small_sizes, small_kinds, seed,
		    frames, &len);
	REQUIRE_OK(seg_verify_buf("small", buf, len, &id));
	REQUIRE_OK(read_all(buf, len, &id, SMALL_N, small_sizes, small_kinds, seed));
	CHECK(frames[2].codec == SEG_CODEC_ZSTD && frames[3].codec == SEG_CODEC_RAW);
	copy = malloc(len);
	REQUIRE(copy != NULL);
	printf("flipping each of %zu bytes\n", len);
	for (size_t i = 0; i < len; i++) {
		static const uint8_t masks[] = {0x01, 0x80, 0xff};
		for (int m = 0; m < 3; m++) {
			int rc, rc2;

			memcpy(copy, buf, len);
			copy[i] ^= masks[m];
			rc = seg_verify_buf("small", copy, len, &id);
			if (rc != CAIRN_E_CORRUPT && rc != CAIRN_E_VERSION) {
				T_FAIL_("flip 0x%02x at byte %zu: rc %d (%s)",
					masks[m], i, rc, cairn_errmsg());
				continue;
			}
			/* The volume's path (no header read) must fail too,
			 * unless the flip is in the header, and must never
			 * hand back wrong bytes (read_all REQUIREs it). */
			rc2 = read_all(copy, len, &id, SMALL_N, small_sizes,
				       small_kinds, seed);
			if (i < SEG_HEADER_SIZE) {
				header_only += rc2 == 0;
			} else if (rc2 != CAIRN_E_CORRUPT && rc2 != CAIRN_E_VERSION) {
				T_FAIL_("flip 0x%02x at byte %zu: read path rc %d",
					masks[m], i, rc2);
				continue;
			}
			caught++;
		}
	}
	t_checks_++;
	CHECK(caught == 3 * len);
	CHECK(header_only == 3 * SEG_HEADER_SIZE);

	/* Messages of some flips. */
	memcpy(copy, buf, len);
	copy[5] ^= 1;
	CHECK_RC(seg_verify_buf("small", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("segment small: header has a bad magic");
	memcpy(copy, buf, len);
	copy[20] ^= 1;
	CHECK_RC(seg_verify_buf("small", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("header checksum mismatch");
	memcpy(copy, buf, len);
	copy[frames[2].off + 40] ^= 1;
	CHECK_RC(seg_verify_buf("small", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("checksum mismatch in frame at offset");
	memcpy(copy, buf, len);
	copy[frames[3].off + 17] ^= 1;
	CHECK_RC(seg_verify_buf("small", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("frame header checksum mismatch");
	memcpy(copy, buf, len);
	copy[len - SEG_FOOTER_SIZE - 3] ^= 1;
	CHECK_RC(seg_verify_buf("small", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("index checksum mismatch");
	memcpy(copy, buf, len);
	copy[len - 20] ^= 1;
	CHECK_RC(seg_verify_buf("small", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("footer checksum mismatch");
	free(copy);
	free(buf);
}

static void test_truncation(uint64_t seed)
{
	seg_frame frames[SMALL_N];
	seg_id id;
	seg_footer f;
	size_t len;
	uint8_t *buf;

	st_id(&id, 1, 3);
	buf = build("trunc.seg", &id, SMALL_N, small_sizes, small_kinds, seed,
		    frames, &len);
	for (size_t l = 0; l < len; l++) {
		int rc = seg_verify_buf("trunc", buf, l, &id);
		int rc2 = l >= SEG_FOOTER_SIZE ?
			  seg_footer_parse("trunc", buf, l, l, &id, &f) :
			  CAIRN_E_CORRUPT;
		if (rc != CAIRN_E_CORRUPT || rc2 != CAIRN_E_CORRUPT)
			T_FAIL_("truncated to %zu: rc %d / %d (%s)", l, rc, rc2,
				cairn_errmsg());
		if (rc == CAIRN_E_CORRUPT && !strstr(cairn_errmsg(), "segment trunc: "))
			T_FAIL_("truncated to %zu: message '%s'", l, cairn_errmsg());
	}
	t_checks_++;
	CHECK_RC(seg_verify_buf("trunc", buf, 10, &id), CAIRN_E_CORRUPT);
	CHECK_MSG("truncated: 10 bytes, a header needs 64");
	CHECK_RC(seg_footer_parse("trunc", buf, 100, 100, &id, &f), CAIRN_E_CORRUPT);
	CHECK_MSG("truncated: 100 bytes is less than a header and a footer");
	CHECK_RC(seg_verify_buf("trunc", buf, len - 1, &id), CAIRN_E_CORRUPT);
	CHECK_MSG("footer has a bad magic");
	/* The object is bigger than the footer says (extra bytes after a
	 * valid footer's position are the same as a truncated tail). */
	uint8_t *big = malloc(len + 64);
	memcpy(big, buf, len);
	memcpy(big + len, buf + len - 64, 64);
	CHECK_RC(seg_footer_parse("trunc", big, len + 64, len + 64, &id, &f),
		 CAIRN_E_CORRUPT);
	CHECK_MSG("does not end at the object size");
	free(big);
	free(buf);
}

/* Rewrite the footer of buf (after editing it) with correct crcs. */
static void refooter(uint8_t *buf, size_t len, const seg_footer *f)
{
	seg_footer g = *f;
	g.index_crc = cairn_crc32c(0, buf + f->index_off, f->index_len);
	seg_footer_encode(&g, buf + len - SEG_FOOTER_SIZE);
}

static void test_crafted(uint64_t seed)
{
	seg_frame frames[SMALL_N];
	seg_id id;
	seg_footer f, g;
	seg_index *ix;
	size_t len;
	uint8_t *buf, *copy;

	st_id(&id, 1, 4);
	buf = build("craft.seg", &id, SMALL_N, small_sizes, small_kinds, seed,
		    frames, &len);
	copy = malloc(len);
	REQUIRE_OK(seg_footer_parse("c", buf, len, len, &id, &f));

	/* The last entry points past the end of the data. */
	memcpy(copy, buf, len);
	seg_frame e = frames[SMALL_N - 1];
	e.stored_len += 200;
	e.raw_len = e.stored_len;
	e.codec = SEG_CODEC_RAW;
	seg_index_entry_encode(&e, copy + f.index_off + (SMALL_N - 1) * 32);
	refooter(copy, len, &f);
	REQUIRE_OK(seg_footer_parse("c", copy, len, len, NULL, &g));
	CHECK_RC(seg_index_parse("c", &g, copy + g.index_off, g.index_len, &ix),
		 CAIRN_E_CORRUPT);
	char want[200];
	snprintf(want, sizeof want,
		 "segment c: index entry 5 points past the end of the data (offset %" PRIu64
		 " + %" PRIu64 " > %" PRIu64 ")",
		 e.off, seg_frame_span(&e), f.index_off);
	CHECK_MSG(want);

	/* A gap between frames. */
	memcpy(copy, buf, len);
	e = frames[2];
	e.off += 1;
	seg_index_entry_encode(&e, copy + f.index_off + 2 * 32);
	refooter(copy, len, &f);
	CHECK_RC(seg_verify_buf("c", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("index entry 2 starts at offset");

	/* An unknown codec. */
	memcpy(copy, buf, len);
	e = frames[1];
	e.codec = 9;
	seg_index_entry_encode(&e, copy + f.index_off + 32);
	refooter(copy, len, &f);
	CHECK_RC(seg_verify_buf("c", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("index entry 1: unknown codec 9");

	/* A raw frame whose stored and raw lengths differ. */
	memcpy(copy, buf, len);
	e = frames[3];
	e.raw_len += 1;
	seg_index_entry_encode(&e, copy + f.index_off + 3 * 32);
	refooter(copy, len, &f);
	CHECK_RC(seg_verify_buf("c", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("raw frame stores");

	/* Footer counts that disagree with the sizes. */
	memcpy(copy, buf, len);
	g = f;
	g.frame_count += 1;
	refooter(copy, len, &g);
	CHECK_RC(seg_verify_buf("c", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("does not match");
	memcpy(copy, buf, len);
	g = f;
	g.raw_total += 1;
	refooter(copy, len, &g);
	CHECK_RC(seg_verify_buf("c", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("raw bytes, footer says");
	memcpy(copy, buf, len);
	g = f;
	g.index_off -= 32;
	g.index_len += 32;
	g.frame_count += 1;
	seg_footer_encode(&g, copy + len - SEG_FOOTER_SIZE);
	CHECK_RC(seg_verify_buf("c", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("index checksum mismatch");
	/* A frame count far beyond what the object can hold. */
	memcpy(copy, buf, len);
	g = f;
	g.frame_count = 0x7fffffff;
	g.index_len = (uint64_t)g.frame_count * 32;
	seg_footer_encode(&g, copy + len - SEG_FOOTER_SIZE);
	CHECK_RC(seg_footer_parse("c", copy, len, len, NULL, &g), CAIRN_E_CORRUPT);
	CHECK_MSG("frames exceed the limit");
	memcpy(copy, buf, len);
	g = f;
	g.frame_count = 1000;
	g.index_len = (uint64_t)g.frame_count * 32;
	seg_footer_encode(&g, copy + len - SEG_FOOTER_SIZE);
	CHECK_RC(seg_footer_parse("c", copy, len, len, NULL, &g), CAIRN_E_CORRUPT);
	CHECK_MSG("does not end at the object size");

	/* Unknown versions: a well-formed newer part is CAIRN_E_VERSION. */
	memcpy(copy, buf, len);
	seg_put16(copy + len - SEG_FOOTER_SIZE + 8, 2);
	seg_put32(copy + len - 4, cairn_crc32c(0, copy + len - SEG_FOOTER_SIZE, 60));
	CHECK_RC(seg_footer_parse("c", copy, len, len, NULL, &g), CAIRN_E_VERSION);
	CHECK_MSG("segment c: footer is format version 2; this build reads version 1");
	memcpy(copy, buf, len);
	seg_put16(copy + 8, 3);
	seg_put32(copy + 60, cairn_crc32c(0, copy, 60));
	CHECK_RC(seg_verify_buf("c", copy, len, NULL), CAIRN_E_VERSION);
	CHECK_MSG("header is format version 3");
	memcpy(copy, buf, len);
	seg_put16(copy + 8, 3);
	CHECK_RC(seg_verify_buf("c", copy, len, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("unknown format version 3 and a bad checksum");

	/* Frame header parser on its own. */
	CHECK_RC(seg_frame_hdr_parse("c", buf + 64, 31, &e), CAIRN_E_CORRUPT);
	CHECK_MSG("truncated frame header: 31 bytes of 32");
	CHECK_OK(seg_frame_hdr_parse("c", buf + 64, 32, &e));
	CHECK(e.chunk_id == 1000 && e.raw_len == 0);
	free(copy);
	free(buf);
}

static void test_keys(uint64_t seed)
{
	uint64_t s = seed;
	char key[SEG_KEY_MAX], bad[SEG_KEY_MAX + 8];
	seg_id id, back;

	for (int i = 0; i < 200; i++) {
		t_fill(id.uuid, 16, t_rand(&s));
		id.epoch = t_rand(&s) >> (t_rand(&s) % 64);
		id.seq = t_rand(&s) >> (t_rand(&s) % 64);
		id.kind = i % 2 ? SEG_KIND_PACKED : SEG_KIND_STREAM;
		REQUIRE_OK(seg_key_format(&id, key, sizeof key));
		REQUIRE_OK(seg_key_parse(key, &back));
		CHECK(memcmp(id.uuid, back.uuid, 16) == 0 && id.epoch == back.epoch &&
		      id.seq == back.seq && id.kind == back.kind);
		CHECK_OK(objstore_key_check(key));
	}
	st_id(&id, 0x1f, 0x2a);
	REQUIRE_OK(seg_key_format(&id, key, sizeof key));
	CHECK(strcmp(key, "v/10171e25-2c33-3a41-484f-565d646b7279/seg/"
			  "000000000000001f/000000000000002a.p") == 0);
	/* Keys sort by epoch, then seq. */
	char k2[SEG_KEY_MAX];
	id.seq = 0x100;
	REQUIRE_OK(seg_key_format(&id, k2, sizeof k2));
	CHECK(strcmp(key, k2) < 0);
	CHECK_RC(seg_key_format(&id, k2, 20), CAIRN_E_RANGE);
	id.kind = 7;
	CHECK_RC(seg_key_format(&id, k2, sizeof k2), CAIRN_E_INVAL);

	CHECK_RC(seg_key_parse("", &back), CAIRN_E_INVAL);
	CHECK_MSG("is not a segment key: length 0");
	CHECK_RC(seg_key_parse(NULL, &back), CAIRN_E_INVAL);
	snprintf(bad, sizeof bad, "%s", key);
	bad[strlen(bad) - 1] = 'x';
	CHECK_RC(seg_key_parse(bad, &back), CAIRN_E_INVAL);
	CHECK_MSG("suffix must be .p or .s");
	snprintf(bad, sizeof bad, "%s", key);
	bad[3] = 'A';
	CHECK_RC(seg_key_parse(bad, &back), CAIRN_E_INVAL);
	CHECK_MSG("not lower-case hex");
	snprintf(bad, sizeof bad, "%s", key);
	bad[10] = 'f';
	CHECK_RC(seg_key_parse(bad, &back), CAIRN_E_INVAL);
	CHECK_MSG("malformed volume uuid");
	snprintf(bad, sizeof bad, "%s", key);
	bad[50] = 'g';
	CHECK_RC(seg_key_parse(bad, &back), CAIRN_E_INVAL);
	CHECK_MSG("epoch is not 16 lower-case hex digits");
	snprintf(bad, sizeof bad, "%s", key);
	bad[70] = '-';
	CHECK_RC(seg_key_parse(bad, &back), CAIRN_E_INVAL);
	CHECK_MSG("sequence number");
	snprintf(bad, sizeof bad, "%s", key);
	memcpy(bad + 38, "/sag/", 5);
	CHECK_RC(seg_key_parse(bad, &back), CAIRN_E_INVAL);
	CHECK_MSG("want v/<uuid>/seg/<epoch>/<seq>.<p|s>");
	snprintf(bad, sizeof bad, "%sp", key);
	CHECK_RC(seg_key_parse(bad, &back), CAIRN_E_INVAL);
	CHECK_MSG("length 79, want 78");
}

int main(void)
{
	uint64_t seed = t_seed();

	DIR_ = t_tmpdir("seg_format");
	REQUIRE_OK(uring_open(NULL, &U));
	/* The flip test logs a line per checksum mismatch: keep it quiet. */
	REQUIRE_OK(cairn_log_set_file("/dev/null"));
	test_round_trip(seed);
	test_flips(seed);
	test_truncation(seed);
	test_crafted(seed);
	test_keys(seed);
	REQUIRE_OK(cairn_log_set_file(NULL));
	uring_close(U);
	t_rmtree(DIR_);
	return t_done();
}
