/*
 * test_seg_writer.c - the staging writer: append/sync/seal, the high-water
 * mark, recovery (cut to the hwm, scan rebuild, torn last frame dropped,
 * a lost committed frame reported), sticky failure after an injected I/O
 * error, and simulated power loss through the engine's crash simulation;
 * the direct mode (O_DIRECT from an aligned buffer, buffered fallback)
 * and its completed-bytes mark (seg_writer_written, the part trigger).
 */
#include "seg_int.h"
#include "seg_test.h"

static const char *DIR_;

static void path_of(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", DIR_, name);
}

static off_t file_size(const char *path)
{
	struct stat st;

	REQUIRE(stat(path, &st) == 0);
	return st.st_size;
}

/* Append n chunks with ids base.. and contents seeded by id. */
static void append_n(seg_writer *w, uint64_t base, int n, seg_frame *out)
{
	uint8_t buf[8192];

	for (int i = 0; i < n; i++) {
		size_t len = 100 + (size_t)((base + i) * 37 % 8000);
		st_chunk(buf, len, (int)((base + i) % 2), base + i);
		REQUIRE_OK(seg_writer_append(w, base + i, buf, len,
					     out ? &out[i] : NULL));
	}
}

/* Every frame of w decodes to the content append_n wrote. */
static void check_frames(cairn_uring *u, seg_writer *w, uint64_t base,
			 uint32_t n)
{
	uint8_t want[8192], got[8192], *fb = malloc(16384);
	int fd = open(seg_writer_path(w), O_RDONLY);

	REQUIRE(fd >= 0 && fb);
	CHECK(seg_writer_frames(w) == n);
	for (uint32_t i = 0; i < n; i++) {
		seg_frame f;
		size_t rl = 0, g = 0;

		REQUIRE_OK(seg_writer_frame(w, i, &f));
		CHECK(f.chunk_id == base + i);
		REQUIRE(seg_frame_span(&f) <= 16384);
		REQUIRE_OK(uring_read(u, fd, fb, seg_frame_span(&f), f.off, &g));
		CHECK_OK(seg_frame_decode("w", &f, fb, g, got, sizeof got, &rl));
		st_chunk(want, rl, (int)((base + i) % 2), base + i);
		CHECK(rl == 100 + (size_t)((base + i) * 37 % 8000));
		CHECK(memcmp(want, got, rl) == 0);
	}
	close(fd);
	free(fb);
}

static void seal_and_verify(seg_writer *w, const seg_id *id)
{
	uint64_t size;
	size_t len;
	uint8_t *buf;

	REQUIRE_OK(seg_writer_seal(w, &size));
	buf = st_slurp(seg_writer_path(w), &len);
	CHECK(len == size);
	CHECK_OK(seg_verify_buf("sealed", buf, len, id));
	free(buf);
	/* Sealed: no more appends. */
	CHECK_RC(seg_writer_append(w, 1, "x", 1, NULL), CAIRN_E_INVAL);
	CHECK_MSG("is sealed");
	CHECK_RC(seg_writer_seal(w, NULL), CAIRN_E_INVAL);
}

static void test_basic(cairn_uring *u)
{
	char path[600];
	seg_writer *w, *w2;
	seg_frame fr[10];
	seg_id id;
	uint64_t hwm;

	st_id(&id, 3, 1);
	path_of(path, sizeof path, "basic.seg");
	REQUIRE_OK(seg_writer_create(u, path, &id, NULL, &w));
	CHECK(seg_writer_size(w) == SEG_HEADER_SIZE);
	CHECK(seg_writer_hwm(w) == SEG_HEADER_SIZE);
	CHECK(seg_writer_age_ms(w) == 0);
	CHECK_RC(seg_writer_create(u, path, &id, NULL, &w2), CAIRN_E_EXISTS);
	CHECK_MSG("basic.seg");
	append_n(w, 1, 10, fr);
	CHECK(fr[0].off == SEG_HEADER_SIZE);
	for (int i = 1; i < 10; i++)
		CHECK(fr[i].off == fr[i - 1].off + seg_frame_span(&fr[i - 1]));
	CHECK(seg_writer_size(w) == fr[9].off + seg_frame_span(&fr[9]));
	CHECK(seg_writer_hwm(w) == SEG_HEADER_SIZE);
	REQUIRE_OK(seg_writer_sync(w, &hwm));
	CHECK(hwm == seg_writer_size(w) && seg_writer_hwm(w) == hwm);
	check_frames(u, w, 1, 10);
	/* Read-after-write from the staging file. */
	{
		uint8_t got[8192], want[8192];
		size_t rl = 0;
		seg_frame bad = fr[3];

		CHECK_OK(seg_writer_read(w, &fr[3], got, sizeof got, &rl));
		st_chunk(want, rl, 0, 4);
		CHECK(rl == fr[3].raw_len && memcmp(got, want, rl) == 0);
		bad.off += 1;
		CHECK_RC(seg_writer_read(w, &bad, got, sizeof got, &rl),
			 CAIRN_E_CORRUPT);
		bad = fr[9];
		bad.stored_len += 1;
		CHECK_RC(seg_writer_read(w, &bad, got, sizeof got, &rl),
			 CAIRN_E_RANGE);
		CHECK_MSG("is not inside the");
	}
	CHECK_RC(seg_writer_append(w, 99, "x", (size_t)SEG_FRAME_MAX_RAW + 1, NULL),
		 CAIRN_E_RANGE);
	CHECK_MSG("exceeds the frame limit");
	seal_and_verify(w, &id);
	seg_writer_close(w);

	/* Never compress when asked. */
	seg_writer_opts o = {.zstd_level = -1};
	path_of(path, sizeof path, "raw.seg");
	REQUIRE_OK(seg_writer_create(u, path, &id, &o, &w));
	append_n(w, 1, 4, fr);
	for (int i = 0; i < 4; i++)
		CHECK(fr[i].codec == SEG_CODEC_RAW);
	seal_and_verify(w, &id);
	seg_writer_close(w);

	id.kind = 9;
	path_of(path, sizeof path, "kind.seg");
	CHECK_RC(seg_writer_create(u, path, &id, NULL, &w), CAIRN_E_INVAL);
	path_of(path, sizeof path, "nodir/x.seg");
	id.kind = SEG_KIND_STREAM;
	CHECK_RC(seg_writer_create(u, path, &id, NULL, &w), CAIRN_E_IO);
	CHECK_MSG("nodir/x.seg");
}

static void test_recover(cairn_uring *u)
{
	char path[600];
	seg_writer *w;
	seg_id id, other;
	uint64_t hwm, full;
	seg_frame fr[20];

	st_id(&id, 4, 1);
	path_of(path, sizeof path, "rec.seg");
	REQUIRE_OK(seg_writer_create(u, path, &id, NULL, &w));
	append_n(w, 1, 8, fr);
	REQUIRE_OK(seg_writer_sync(w, &hwm));
	append_n(w, 9, 5, NULL); /* past the hwm: not committed */
	full = seg_writer_size(w);
	seg_writer_close(w);
	CHECK((uint64_t)file_size(path) == full);

	/* Cut back to the committed hwm. */
	REQUIRE_OK(seg_writer_recover(u, path, &id, hwm, NULL, &w));
	CHECK((uint64_t)file_size(path) == hwm);
	CHECK(seg_writer_size(w) == hwm && seg_writer_hwm(w) == hwm);
	check_frames(u, w, 1, 8);
	/* And go on writing after it. */
	append_n(w, 9, 3, NULL);
	REQUIRE_OK(seg_writer_sync(w, &hwm));
	check_frames(u, w, 1, 11);
	seg_writer_close(w);

	/* Scan mode keeps every whole frame; a torn last frame is dropped. */
	REQUIRE_OK(seg_writer_recover(u, path, &id, SEG_HWM_SCAN, NULL, &w));
	CHECK(seg_writer_frames(w) == 11);
	append_n(w, 12, 2, fr);
	seg_writer_close(w);
	REQUIRE(truncate(path, (off_t)(fr[1].off + seg_frame_span(&fr[1]) - 7)) == 0);
	REQUIRE_OK(seg_writer_recover(u, path, &id, SEG_HWM_SCAN, NULL, &w));
	CHECK(seg_writer_frames(w) == 12);
	CHECK((uint64_t)file_size(path) == fr[1].off);
	CHECK(seg_writer_size(w) == fr[1].off);
	check_frames(u, w, 1, 12);
	seg_writer_close(w);
	/* A torn frame header (a few bytes past the last frame). */
	{
		int fd = open(path, O_WRONLY | O_APPEND);
		REQUIRE(fd >= 0);
		REQUIRE(write(fd, "CFRM\0\0\0", 7) == 7);
		close(fd);
	}
	REQUIRE_OK(seg_writer_recover(u, path, &id, SEG_HWM_SCAN, NULL, &w));
	CHECK(seg_writer_frames(w) == 12);
	CHECK((uint64_t)file_size(path) == fr[1].off);
	/* Garbage after the last frame (a garbled unsynced write). */
	seg_writer_close(w);
	{
		uint8_t junk[3000];
		int fd = open(path, O_WRONLY | O_APPEND);
		t_fill(junk, sizeof junk, 5);
		REQUIRE(fd >= 0);
		REQUIRE(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
		close(fd);
	}
	REQUIRE_OK(seg_writer_recover(u, path, &id, SEG_HWM_SCAN, NULL, &w));
	CHECK(seg_writer_frames(w) == 12);
	seal_and_verify(w, &id);
	seg_writer_close(w);

	/* A sealed file recovered in scan mode loses only its index+footer. */
	REQUIRE_OK(seg_writer_recover(u, path, &id, SEG_HWM_SCAN, NULL, &w));
	CHECK(seg_writer_frames(w) == 12);
	hwm = seg_writer_hwm(w);
	seg_writer_close(w);

	/* The committed hwm is past the end of the file: data was lost. */
	CHECK_RC(seg_writer_recover(u, path, &id, hwm + 100, NULL, &w),
		 CAIRN_E_CORRUPT);
	CHECK_MSG("shorter than its committed high-water mark");
	/* A hwm that is not a frame boundary. */
	CHECK_RC(seg_writer_recover(u, path, &id, hwm - 5, NULL, &w),
		 CAIRN_E_CORRUPT);
	CHECK_MSG("torn frame");
	CHECK_RC(seg_writer_recover(u, path, &id, 10, NULL, &w), CAIRN_E_INVAL);
	CHECK_MSG("inside the header");
	/* A committed frame that does not verify. */
	{
		int fd = open(path, O_RDWR);
		uint8_t b;
		off_t at = (off_t)fr[0].off + SEG_FRAME_HDR_SIZE + 3;
		REQUIRE(fd >= 0 && pread(fd, &b, 1, at) == 1);
		b ^= 0x40;
		REQUIRE(pwrite(fd, &b, 1, at) == 1);
		close(fd);
	}
	CHECK_RC(seg_writer_recover(u, path, &id, hwm, NULL, &w), CAIRN_E_CORRUPT);
	CHECK_MSG("checksum mismatch in frame at offset");
	CHECK((uint64_t)file_size(path) == hwm); /* nothing cut on failure */
	/* Another segment's file. */
	other = id;
	other.seq = 77;
	CHECK_RC(seg_writer_recover(u, path, &other, SEG_HWM_SCAN, NULL, &w),
		 CAIRN_E_CORRUPT);
	CHECK_MSG("expected packed epoch 4 seq 4d");
	path_of(path, sizeof path, "missing.seg");
	CHECK_RC(seg_writer_recover(u, path, &id, SEG_HWM_SCAN, NULL, &w),
		 CAIRN_E_NOTFOUND);
}

static void test_sticky(cairn_uring *u)
{
	char path[600];
	seg_writer *w;
	seg_id id;
	uint64_t hwm;

	st_id(&id, 5, 1);
	path_of(path, sizeof path, "sticky.seg");
	REQUIRE_OK(seg_writer_create(u, path, &id, NULL, &w));
	append_n(w, 1, 3, NULL);
	REQUIRE_OK(seg_writer_sync(w, &hwm));
	uring_fault_set(u, 1, EIO);
	CHECK_RC(seg_writer_append(w, 4, "abcdef", 6, NULL), CAIRN_E_IO);
	/* Every later call returns the first failure. */
	CHECK_RC(seg_writer_append(w, 5, "abcdef", 6, NULL), CAIRN_E_IO);
	CHECK_MSG("append to staging segment");
	CHECK_RC(seg_writer_sync(w, NULL), CAIRN_E_IO);
	CHECK_RC(seg_writer_seal(w, NULL), CAIRN_E_IO);
	CHECK(seg_writer_frames(w) == 3);
	seg_writer_close(w);
	REQUIRE_OK(seg_writer_recover(u, path, &id, hwm, NULL, &w));
	check_frames(u, w, 1, 3);
	/* A failed fdatasync also sticks. */
	append_n(w, 4, 1, NULL);
	uring_fault_set(u, 1, EIO);
	CHECK_RC(seg_writer_sync(w, NULL), CAIRN_E_IO);
	CHECK(seg_writer_hwm(w) == hwm);
	CHECK_RC(seg_writer_append(w, 5, "abcdef", 6, NULL), CAIRN_E_IO);
	seg_writer_close(w);
	uring_fault_set(u, 0, 0);
}

/* Fail the Nth engine op, for every N: each call either succeeds or fails
 * cleanly, and recovery to the last hwm a sync returned finds every frame
 * committed by then. */
static void test_fault_loop(cairn_uring *u)
{
	for (uint64_t nth = 1; nth < 40; nth++) {
		char path[600], name[64];
		seg_writer *w = NULL;
		seg_id id;
		uint64_t hwm = 0;
		uint32_t committed = 0;
		int rc = 0, failed = 0;

		st_id(&id, 8, nth);
		snprintf(name, sizeof name, "fault%" PRIu64 ".seg", nth);
		path_of(path, sizeof path, name);
		uring_fault_set(u, nth, EIO);
		rc = seg_writer_create(u, path, &id, NULL, &w);
		if (rc) {
			CHECK(rc == CAIRN_E_IO && w == NULL);
			CHECK(access(path, F_OK) != 0); /* no half-made file */
			continue;
		}
		hwm = seg_writer_hwm(w);
		for (int i = 0; i < 6 && !failed; i++) {
			uint8_t buf[3000];
			st_chunk(buf, 1000 + (size_t)i * 300, i % 2, (uint64_t)i + 1);
			rc = seg_writer_append(w, (uint64_t)i + 1, buf,
					       1000 + (size_t)i * 300, NULL);
			if (!rc && i % 2)
				rc = seg_writer_sync(w, &hwm);
			if (!rc && i % 2)
				committed = seg_writer_frames(w);
			if (rc) {
				CHECK(rc == CAIRN_E_IO);
				failed = 1;
			}
		}
		if (!failed) {
			rc = seg_writer_seal(w, NULL);
			CHECK(rc == 0 || rc == CAIRN_E_IO);
		}
		seg_writer_close(w);
		uring_fault_set(u, 0, 0);
		REQUIRE_OK(seg_writer_recover(u, path, &id, hwm, NULL, &w));
		CHECK(seg_writer_frames(w) == committed);
		for (uint32_t i = 0; i < committed; i++) {
			uint8_t got[3000], want[3000];
			seg_frame f;
			size_t rl = 0;
			REQUIRE_OK(seg_writer_frame(w, i, &f));
			CHECK_OK(seg_writer_read(w, &f, got, sizeof got, &rl));
			st_chunk(want, rl, (int)(i % 2), (uint64_t)i + 1);
			CHECK(rl == 1000 + (size_t)i * 300 && memcmp(got, want, rl) == 0);
		}
		seg_writer_close(w);
	}
	uring_fault_set(u, 0, 0);
}

/* opts.direct: frames of 1 KiB to 3 MiB (the 4 MiB buffers fill and are
 * written out many times, several at once), every other one appended
 * with seg_writer_append_raw (crc given); a frame still in the buffer
 * reads back (the
 * read flushes); a sync leaves the file exactly size bytes; recovery to
 * the hwm and the seal see every frame; an injected EINVAL on the first
 * direct write falls back to buffered writes with the same result. */
static size_t direct_len(uint64_t i)
{
	return i % 3 == 0 ? (3u << 20) - (size_t)i * 13 : 1000 + (size_t)(i * 7919 % 400000);
}

static void direct_check(seg_writer *w, uint32_t n, uint8_t *got, uint8_t *want)
{
	CHECK(seg_writer_frames(w) == n);
	for (uint32_t i = 0; i < n; i++) {
		seg_frame f;
		size_t rl = 0;
		REQUIRE_OK(seg_writer_frame(w, i, &f));
		CHECK_OK(seg_writer_read(w, &f, got, 3u << 20, &rl));
		st_chunk(want, direct_len(i + 1), (int)(i % 2), (uint64_t)i + 1);
		CHECK(rl == direct_len(i + 1) && memcmp(got, want, rl) == 0);
	}
}

static void test_direct(cairn_uring *u)
{
	seg_writer_opts o = {.zstd_level = -1, .direct = 1};
	uint8_t *buf = malloc(3u << 20), *got = malloc(3u << 20);
	REQUIRE(buf && got);

	for (int inval = 0; inval < 2; inval++) {
		char path[600], name[64];
		seg_writer *w;
		seg_id id;
		uint64_t hwm, size;

		st_id(&id, 9, (uint64_t)inval + 1);
		id.kind = SEG_KIND_STREAM;
		snprintf(name, sizeof name, "direct%d.seg", inval);
		path_of(path, sizeof path, name);
		REQUIRE_OK(seg_writer_create(u, path, &id, &o, &w));
		if (inval)
			uring_fault_set(u, 1, EINVAL);  /* the first direct write */
		uint64_t i = 1;
		for (; i <= 12; i++) {
			st_chunk(buf, direct_len(i), (int)((i - 1) % 2), i);
			if (i % 2)
				REQUIRE_OK(seg_writer_append_raw(w, i, buf, direct_len(i),
								 cairn_crc32c(0, buf, direct_len(i)),
								 NULL));
			else
				REQUIRE_OK(seg_writer_append(w, i, buf, direct_len(i), NULL));
		}
		uring_fault_set(u, 0, 0);
		/* The last frame is (at least partly) only in the buffer. */
		direct_check(w, 12, got, buf);
		REQUIRE_OK(seg_writer_sync(w, &hwm));
		CHECK(hwm == seg_writer_size(w));
		CHECK((uint64_t)file_size(path) == hwm);
		for (; i <= 20; i++) {
			st_chunk(buf, direct_len(i), (int)((i - 1) % 2), i);
			REQUIRE_OK(seg_writer_append(w, i, buf, direct_len(i), NULL));
		}
		REQUIRE_OK(seg_writer_flush(w));
		CHECK((uint64_t)file_size(path) == seg_writer_size(w));
		REQUIRE_OK(seg_writer_sync(w, &hwm));
		for (; i <= 23; i++) {
			st_chunk(buf, direct_len(i), (int)((i - 1) % 2), i);
			REQUIRE_OK(seg_writer_append(w, i, buf, direct_len(i), NULL));
		}
		seg_writer_close(w);  /* the unsynced tail is lost */
		REQUIRE_OK(seg_writer_recover(u, path, &id, hwm, NULL, &w));
		direct_check(w, 20, got, buf);
		seg_writer_close(w);

		/* A sealed direct segment is complete and verifies. */
		snprintf(name, sizeof name, "direct%d-seal.seg", inval);
		path_of(path, sizeof path, name);
		st_id(&id, 9, (uint64_t)inval + 10);
		id.kind = SEG_KIND_STREAM;
		REQUIRE_OK(seg_writer_create(u, path, &id, &o, &w));
		for (i = 1; i <= 7; i++) {
			st_chunk(buf, direct_len(i), (int)((i - 1) % 2), i);
			REQUIRE_OK(seg_writer_append(w, i, buf, direct_len(i), NULL));
			if (i == 4)
				REQUIRE_OK(seg_writer_sync(w, NULL));
		}
		REQUIRE_OK(seg_writer_seal(w, &size));
		CHECK_OK(seg_writer_flush(w));  /* sealed: nothing to do */
		direct_check(w, 7, got, buf);
		{
			size_t len;
			uint8_t *all = st_slurp(path, &len);
			CHECK(len == size);
			CHECK_OK(seg_verify_buf("sealed direct", all, len, &id));
			free(all);
		}
		seg_writer_close(w);
	}
	free(buf);
	free(got);
}

/* The reference image of appends 1..n of direct_len frames (raw, crc
 * given), as a plain buffered writer lays them out: *len bytes. */
static uint8_t *written_ref(cairn_uring *u, const seg_id *id, uint32_t n,
			    uint8_t *buf, size_t *len)
{
	char path[600], name[64];
	seg_writer *w;

	snprintf(name, sizeof name, "wref%" PRIu64 ".seg", id->seq);
	path_of(path, sizeof path, name);
	REQUIRE_OK(seg_writer_create(u, path, id, NULL, &w));
	for (uint32_t i = 1; i <= n; i++) {
		st_chunk(buf, direct_len(i), (int)((i - 1) % 2), i);
		REQUIRE_OK(seg_writer_append_raw(w, i, buf, direct_len(i),
						 cairn_crc32c(0, buf, direct_len(i)), NULL));
	}
	CHECK(seg_writer_written(w) == seg_writer_size(w));  /* buffered */
	seg_writer_close(w);
	uint8_t *ref = st_slurp(path, len);
	REQUIRE(ref);
	unlink(path);
	return ref;
}

/* Bytes [from, to) of the file at path equal ref's (what a part upload
 * reading the spool file would send); 0 on a match. */
static int written_match(const char *path, const uint8_t *ref, size_t reflen,
			 uint64_t from, uint64_t to)
{
	int fd = open(path, O_RDONLY), bad = 0;
	uint8_t *b = to > from ? malloc((size_t)(to - from)) : NULL;

	REQUIRE(fd >= 0);
	if (to > reflen)
		bad = 1;
	else if (to > from) {
		REQUIRE(b);
		ssize_t got = pread(fd, b, (size_t)(to - from), (off_t)from);
		bad = got != (ssize_t)(to - from) || memcmp(b, ref + from, (size_t)(to - from));
	}
	if (bad)
		fprintf(stderr, "%s: bytes [%" PRIu64 ", %" PRIu64 ") not as written\n",
			path, from, to);
	free(b);
	close(fd);
	return bad;
}

/* opts.direct with the Nth engine op failing, for every N over a run of
 * several buffers written at once: the call that meets it (or a later
 * one) fails, the writer sticks, nothing hangs, and recovery to the last
 * hwm a sync returned finds every frame synced by then. */
static void test_direct_faults(cairn_uring *u)
{
	seg_writer_opts o = {.zstd_level = -1, .direct = 1};
	uint8_t *buf = malloc(3u << 20), *got = malloc(3u << 20);
	REQUIRE(buf && got);

	for (uint64_t nth = 2; nth < 16; nth++) {
		char path[600], name[64];
		seg_writer *w;
		seg_id id;
		uint64_t hwm = SEG_HEADER_SIZE;
		uint32_t synced = 0, i;
		int rc = 0;

		st_id(&id, 11, nth);
		id.kind = SEG_KIND_STREAM;
		snprintf(name, sizeof name, "dfault%" PRIu64 ".seg", nth);
		path_of(path, sizeof path, name);
		size_t reflen;
		uint8_t *ref = written_ref(u, &id, 16, buf, &reflen);
		REQUIRE_OK(seg_writer_create(u, path, &id, &o, &w));
		uring_fault_set(u, nth, EIO);
		for (i = 1; i <= 16 && !rc; i++) {
			st_chunk(buf, direct_len(i), (int)((i - 1) % 2), i);
			rc = seg_writer_append_raw(w, i, buf, direct_len(i),
						   cairn_crc32c(0, buf, direct_len(i)), NULL);
			if (!rc && i % 5 == 0 && !(rc = seg_writer_sync(w, &hwm)))
				synced = i;
		}
		if (!rc)
			rc = seg_writer_sync(w, &hwm);
		if (!rc)
			synced = 16;
		uring_fault_set(u, 0, 0);
		CHECK(rc == 0 || rc == CAIRN_E_IO);
		/* What the part trigger saw is in the file, failure or not. */
		CHECK(seg_writer_written(w) >= hwm && seg_writer_written(w) <= seg_writer_size(w));
		CHECK(written_match(path, ref, reflen, 0, seg_writer_written(w)) == 0);
		if (rc)  /* sticky */
			CHECK_RC(seg_writer_append(w, 99, "x", 1, NULL), CAIRN_E_IO);
		cairn_err_clear();
		seg_writer_close(w);
		REQUIRE_OK(seg_writer_recover(u, path, &id, hwm, NULL, &w));
		direct_check(w, synced, got, buf);
		seg_writer_close(w);
		free(ref);
	}
	free(buf);
	free(got);
}

/* seg_writer_written, the part trigger of a multipart upload from the
 * spool: on a direct writer (and after the EINVAL fallback) it stays
 * below the size while bytes sit in the aligned buffer or in writes in
 * flight, never moves back, and every byte below it reads back from the
 * file as appended (a part sent at seg_writer_size would find a hole);
 * a flush, a sync and the seal bring it to the size.  Frames from 1 KiB
 * (far smaller than a part or the 4 MiB buffer) to 3 MiB. */
static void test_written(cairn_uring *u)
{
	seg_writer_opts o = {.zstd_level = -1, .direct = 1};
	uint8_t *buf = malloc(3u << 20);
	REQUIRE(buf);

	for (int inval = 0; inval < 2; inval++) {
		char path[600], name[64];
		seg_writer *w;
		seg_id id;
		size_t reflen;
		uint64_t prev = SEG_HEADER_SIZE, size = 0, lag = 0;
		const uint32_t n = 24;

		st_id(&id, 13, (uint64_t)inval + 1);
		id.kind = SEG_KIND_STREAM;
		uint8_t *ref = written_ref(u, &id, n, buf, &reflen);
		snprintf(name, sizeof name, "written%d.seg", inval);
		path_of(path, sizeof path, name);
		REQUIRE_OK(seg_writer_create(u, path, &id, &o, &w));
		CHECK(seg_writer_written(w) == SEG_HEADER_SIZE);
		if (inval)
			uring_fault_set(u, 1, EINVAL);  /* the first direct write */
		for (uint32_t i = 1; i <= n; i++) {
			st_chunk(buf, direct_len(i), (int)((i - 1) % 2), i);
			REQUIRE_OK(seg_writer_append_raw(w, i, buf, direct_len(i),
							 cairn_crc32c(0, buf, direct_len(i)),
							 NULL));
			uint64_t wr = seg_writer_written(w);
			size = seg_writer_size(w);
			CHECK(wr >= prev && wr <= size);
			if (wr < size)
				lag++;
			CHECK(written_match(path, ref, reflen, prev, wr) == 0);
			prev = wr;
			if (i == 10) {
				REQUIRE_OK(seg_writer_flush(w));
				CHECK(seg_writer_written(w) == seg_writer_size(w));
				CHECK(written_match(path, ref, reflen, prev, seg_writer_size(w)) == 0);
				prev = seg_writer_written(w);
			} else if (i == 17) {
				REQUIRE_OK(seg_writer_sync(w, NULL));
				CHECK(seg_writer_written(w) == seg_writer_size(w));
				CHECK(written_match(path, ref, reflen, prev, seg_writer_size(w)) == 0);
				prev = seg_writer_written(w);
			}
		}
		uring_fault_set(u, 0, 0);
		/* Small frames after a buffer was written out: bytes in the
		 * buffer only, not counted. */
		CHECK(lag >= n / 2);
		CHECK(seg_writer_written(w) < seg_writer_size(w));
		REQUIRE_OK(seg_writer_seal(w, &size));
		CHECK(seg_writer_written(w) == size);
		CHECK(written_match(path, ref, reflen, 0, reflen) == 0);
		seg_writer_close(w);
		free(ref);
	}
	free(buf);
}

/* seg_writer_append_raw on a buffered writer, also one that compresses:
 * the frame is raw with the given crc, reads back, and the sealed
 * segment verifies; a wrong crc is stored as given (and caught). */
static void test_append_raw(cairn_uring *u)
{
	static const char text[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	for (int level = -1; level <= 3; level += 4) {
		seg_writer_opts o = {.zstd_level = level};
		char path[600], name[64];
		seg_writer *w;
		seg_id id;
		seg_frame f;
		uint8_t got[sizeof text];
		size_t rl = 0, len;
		uint64_t size;

		st_id(&id, 12, (uint64_t)level + 2);
		snprintf(name, sizeof name, "raw%d.seg", level);
		path_of(path, sizeof path, name);
		REQUIRE_OK(seg_writer_create(u, path, &id, &o, &w));
		REQUIRE_OK(seg_writer_append_raw(w, 1, text, sizeof text,
						 cairn_crc32c(0, text, sizeof text), &f));
		CHECK(f.codec == SEG_CODEC_RAW && f.stored_len == sizeof text);
		CHECK_OK(seg_writer_read(w, &f, got, sizeof got, &rl));
		CHECK(rl == sizeof text && !memcmp(got, text, rl));
		REQUIRE_OK(seg_writer_seal(w, &size));
		uint8_t *all = st_slurp(path, &len);
		CHECK(len == size);
		CHECK_OK(seg_verify_buf("raw", all, len, &id));
		free(all);
		seg_writer_close(w);
	}
	char path[600];
	seg_writer *w;
	seg_id id;
	seg_frame f;
	uint8_t got[sizeof text];
	size_t rl = 0;
	st_id(&id, 12, 9);
	path_of(path, sizeof path, "rawbad.seg");
	REQUIRE_OK(seg_writer_create(u, path, &id, NULL, &w));
	REQUIRE_OK(seg_writer_append_raw(w, 1, text, sizeof text, 12345, &f));
	CHECK(f.crc == 12345);
	CHECK_RC(seg_writer_read(w, &f, got, sizeof got, &rl), CAIRN_E_CORRUPT);
	seg_writer_close(w);
}

/* Power loss at random moments: recovery to the committed hwm always
 * finds every committed frame intact. */
static void test_crash(uint64_t seed)
{
	uint64_t s = seed;
	uint64_t rounds = t_scaled(100);

	for (uint64_t r = 0; r < rounds; r++) {
		cairn_uring_opts o = {.crash_sim = 1};
		cairn_uring *u;
		char path[600], name[64];
		seg_writer *w;
		seg_id id;
		uint64_t hwm = SEG_HEADER_SIZE;
		uint32_t committed = 0;
		int mode = (int)(t_rand(&s) % 4);

		st_id(&id, 6, r);
		snprintf(name, sizeof name, "crash%" PRIu64 ".seg", r);
		path_of(path, sizeof path, name);
		REQUIRE_OK(uring_open(&o, &u));
		/* Odd rounds: a direct writer (unsynced bytes may be only in
		 * its buffer, or written past a buffered tail block). */
		seg_writer_opts wo = {.zstd_level = -1, .direct = 1};
		REQUIRE_OK(seg_writer_create(u, path, &id, r % 2 ? &wo : NULL, &w));
		int steps = 1 + (int)(t_rand(&s) % 12);
		for (int i = 0; i < steps; i++) {
			append_n(w, seg_writer_frames(w) + 1, 1 + (int)(t_rand(&s) % 3),
				 NULL);
			if (t_rand(&s) % 2) {
				REQUIRE_OK(seg_writer_sync(w, &hwm));
				committed = seg_writer_frames(w);
			}
		}
		REQUIRE_OK(uring_crash(u, mode, t_rand(&s)));
		seg_writer_close(w);
		uring_close(u);

		REQUIRE_OK(uring_open(NULL, &u));
		CHECK_OK(seg_writer_recover(u, path, &id, hwm, NULL, &w));
		if (w) {
			check_frames(u, w, 1, committed);
			seg_writer_close(w);
		}
		/* Scan mode keeps at least the committed frames. */
		CHECK_OK(seg_writer_recover(u, path, &id, SEG_HWM_SCAN, NULL, &w));
		if (w) {
			CHECK(seg_writer_frames(w) >= committed);
			check_frames(u, w, 1, seg_writer_frames(w));
			seg_writer_close(w);
		}
		uring_close(u);
	}
}

int main(void)
{
	uint64_t seed = t_seed();
	cairn_uring *u;

	DIR_ = t_tmpdir("seg_writer");
	REQUIRE_OK(uring_open(NULL, &u));
	REQUIRE_OK(cairn_log_set_file("/dev/null"));
	test_basic(u);
	test_recover(u);
	test_sticky(u);
	test_fault_loop(u);
	test_direct(u);
	test_direct_faults(u);
	test_written(u);
	test_append_raw(u);
	uring_close(u);
	test_crash(seed);
	REQUIRE_OK(cairn_log_set_file(NULL));
	t_rmtree(DIR_);
	return t_done();
}
