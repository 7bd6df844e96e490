/*
 * large_rt.h - the round trip of large files, shared by the file:// test
 * (test_large_roundtrip.c) and the s3rver one (test_large_s3.c): files
 * from empty to large around the threshold, part and chunk sizes, read
 * back while streaming, after close (spool), after the upload from the
 * store (parallel ranged GETs and the cached path), after reopen; random
 * overwrites after the upload; sparse regions; chunk hashes in the chunk
 * table equal the SHA-256 of the file's bytes.
 */
#ifndef CAIRN_LARGE_RT_H
#define CAIRN_LARGE_RT_H

#include "cairn/codec.h"
#include "cairn/meta.h"
#include "large_t.h"

typedef struct lt_file {
	char name[32];
	uint64_t ino, size, seed;
} lt_file;

static inline int lt_verify_all(cairn_volume *v, lt_file *fs, size_t n, size_t piece)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		cairn_file *f;
		REQUIRE_OK(volume_file_open(v, fs[i].ino, &f));
		cairn_attr a;
		CHECK_OK(volume_getattr(v, fs[i].ino, &a));
		CHECK(a.size == fs[i].size);
		int b = lt_verify(f, fs[i].size, fs[i].seed, piece, 0, 0);
		if (b)
			fprintf(stderr, "file %s (%" PRIu64 " bytes) differs, piece %zu\n",
				fs[i].name, fs[i].size, piece);
		bad += b;
		CHECK_OK(volume_file_close(f));
	}
	return bad;
}

/* Chunk records of ino: sha256 of the bytes, sizes within the bounds. */
static inline void lt_check_hashes(const char *voldir, uint64_t ino, uint64_t size,
				   uint64_t seed, uint32_t avg)
{
	char mdir[700];
	cairn_meta *m;
	meta_txn *t;
	meta_extent ex[256];
	size_t n = 0;
	snprintf(mdir, sizeof mdir, "%s/meta", voldir);
	REQUIRE_OK(meta_open(mdir, NULL, &m));
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_extent_lookup(t, ino, 0, size, ex, 256, &n));
	CHECK(n > 2);
	uint64_t covered = 0;
	int hash_ok = 1, size_ok = 1;
	for (size_t i = 0; i < n; i++) {
		meta_chunk c;
		meta_seg s;
		if (!ex[i].chunk)
			continue;
		CHECK_OK(meta_chunk_get(t, ex[i].chunk, &c));
		CHECK_OK(meta_seg_get(t, c.seg, &s));
		CHECK(s.kind == 1);
		CHECK(ex[i].chunk_off == 0 && ex[i].len == c.raw_len);
		uint8_t *b = malloc(c.raw_len), h[32];
		REQUIRE(b);
		lt_fill(b, c.raw_len, ex[i].off, seed);
		CHECK_OK(cairn_sha256(b, c.raw_len, h));
		if (memcmp(h, c.hash, 32))
			hash_ok = 0;
		if (c.raw_len > avg * 4 || (c.raw_len < avg / 4 && i + 1 < n))
			size_ok = 0;
		free(b);
		covered += c.raw_len;
	}
	CHECK(hash_ok);
	CHECK(size_ok);
	CHECK(covered == size);
	meta_read_end(t);
	CHECK_OK(meta_close(m));
}

static inline void lt_roundtrip(const char *name, cairn_objstore *os, int s3)
{
	const char *tmp = t_tmpdir(name);
	char dir[700];
	cairn_volume_opts o;
	cairn_volume *v;
	uint64_t rng = t_seed();
	double sc = t_scale();
	uint64_t sizes[] = { 0, 1, 2 * MIB - 1, 2 * MIB, 2 * MIB + 1, 5 * MIB - 1, 5 * MIB,
			     5 * MIB + 1, 10 * MIB + 12345, 33 * MIB,
			     s3 ? 64 * MIB : 128 * MIB, 0 };
	size_t nsz = sizeof sizes / sizeof sizes[0] - 1;
	if (sc >= 2)
		sizes[nsz++] = 256 * MIB;
	if (sc >= 8)
		sizes[nsz - 1] = 3ull << 30;
	lt_file fs[16];

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	lt_format(dir);
	lt_opts(&o);
	o.store = os;
	REQUIRE_OK(volume_open(dir, &o, &v));

	/* Write, reading back while streaming (spool and chunk buffer). */
	for (size_t i = 0; i < nsz; i++) {
		cairn_file *f;
		lt_file *x = &fs[i];
		snprintf(x->name, sizeof x->name, "f%zu", i);
		x->ino = lt_ino(v, x->name);
		x->size = sizes[i];
		x->seed = t_rand(&rng);
		REQUIRE_OK(volume_file_open(v, x->ino, &f));
		uint64_t half = x->size / 2 + 3;
		if (half > x->size)
			half = x->size;
		CHECK_OK(lt_write(f, 0, half, x->seed, &rng));
		CHECK(lt_verify(f, half, x->seed, (1 << 20) + 7, 0, 0) == 0);
		CHECK_OK(lt_write(f, half, x->size, x->seed, &rng));
		CHECK(lt_verify(f, x->size, x->seed, 3 << 20, 0, 0) == 0);
		CHECK_OK(volume_file_close(f));
	}
	CHECK(lt_verify_all(v, fs, nsz, 5 << 20) == 0);

	cairn_volume_stats st;
	volume_stats(v, &st);
	printf("streams %" PRIu64 ", parts so far %" PRIu64 "\n", st.streams, st.stream_parts);
	CHECK(st.streams >= nsz - 3);  /* 0, 1 and threshold-1 stay packed */

	/* From the store: whole chunks by parallel GETs, parts of chunks
	 * through the window cache. */
	REQUIRE(lt_wait_uploaded(v) == 0);
	CHECK_OK(volume_drop_cache(v));
	CHECK(lt_verify_all(v, fs, nsz, 64 << 20) == 0);
	CHECK_OK(volume_drop_cache(v));
	CHECK(lt_verify_all(v, fs, nsz, (1 << 20) + 3) == 0);
	volume_stats(v, &st);
	printf("parts %" PRIu64 ", parallel chunk reads %" PRIu64 ", store reads %" PRIu64 "\n",
	       st.stream_parts, st.reads_parallel, st.reads_store);
	CHECK(st.reads_parallel > 0);
	CHECK(st.stream_parts > 0);
	/* Every part went with the payload hash computed as the spool was
	 * written (vol_stream.c invariant 9); s3rver checks it against the
	 * bytes it received, so a wrong one would have been refused and
	 * retried. */
	printf("parts with a spool-time digest %" PRIu64 ", part retries %" PRIu64 "\n",
	       st.stream_part_digests, st.stream_part_retries);
	CHECK(st.stream_part_digests == st.stream_parts);
	CHECK(st.stream_part_retries == 0);
	/* Parts go from the copy the spool's tap kept (every whole part
	 * while the budget of parts in flight + 2 has room), not read back
	 * from the spool; the round trip above checked their bytes. */
	printf("parts sent from memory %" PRIu64 " of %" PRIu64 "\n",
	       st.stream_parts_mem, st.stream_parts);
	CHECK(st.stream_parts_mem >= st.stream_parts / 2);

	/* Small sequential reads (as FUSE issues them) of an uploaded stream:
	 * the readahead fetches whole chunks ahead in parallel; the window
	 * cache path is hardly used. */
	{
		lt_file *x = &fs[10];
		cairn_volume_stats s0, s1;
		cairn_file *f;
		CHECK_OK(volume_drop_cache(v));
		volume_stats(v, &s0);
		REQUIRE_OK(volume_file_open(v, x->ino, &f));
		CHECK(lt_verify(f, x->size, x->seed, 128 << 10, 0, 0) == 0);
		CHECK_OK(volume_file_close(f));
		volume_stats(v, &s1);
		uint64_t par = s1.reads_parallel - s0.reads_parallel;
		uint64_t win = s1.reads_store - s0.reads_store;
		printf("128 KiB sequential reads of %" PRIu64 " MiB: %" PRIu64 " chunks read "
		       "ahead, %" PRIu64 " chunk reads through the window cache\n",
		       x->size >> 20, par, win);
		CHECK(par >= x->size / (4 * MIB));
		CHECK(win <= 4);
	}

	/* Random overwrites of an uploaded large file: new extents win. */
	{
		lt_file *x = &fs[9];  /* 33 MiB */
		uint64_t offs[24], lens[24], seeds[24];
		cairn_file *f;
		REQUIRE_OK(volume_file_open(v, x->ino, &f));
		for (int k = 0; k < 24; k++) {
			lens[k] = 1 + t_rand(&rng) % (3 * MIB);
			offs[k] = t_rand(&rng) % (x->size - lens[k]);
			seeds[k] = t_rand(&rng);
			uint8_t *b = malloc(lens[k]);
			REQUIRE(b);
			lt_fill(b, lens[k], offs[k], seeds[k]);
			CHECK_OK(volume_file_write(f, b, lens[k], offs[k]));
			free(b);
		}
		CHECK_OK(volume_file_fsync(f));
		uint8_t *got = malloc(x->size), *want = malloc(x->size);
		REQUIRE(got && want);
		lt_fill(want, x->size, 0, x->seed);
		for (int k = 0; k < 24; k++)
			lt_fill(want + offs[k], lens[k], offs[k], seeds[k]);
		size_t n = 0;
		CHECK_OK(volume_file_read(f, got, x->size, 0, &n));
		CHECK(n == x->size && memcmp(got, want, x->size) == 0);
		CHECK_OK(volume_file_close(f));
		REQUIRE(lt_wait_uploaded(v) == 0);
		CHECK_OK(volume_drop_cache(v));
		REQUIRE_OK(volume_file_open(v, x->ino, &f));
		memset(got, 0, x->size);
		CHECK_OK(volume_file_read(f, got, x->size, 0, &n));
		CHECK(n == x->size && memcmp(got, want, x->size) == 0);
		CHECK_OK(volume_file_close(f));
		free(got);
		free(want);
	}

	/* Sparse: a streamed head, a hole, a tail written elsewhere, and a
	 * hole left by extending the size. */
	{
		uint64_t ino = lt_ino(v, "sparse"), seed = t_rand(&rng);
		cairn_file *f;
		REQUIRE_OK(volume_file_open(v, ino, &f));
		CHECK_OK(lt_write(f, 0, 6 * MIB, seed, &rng));
		CHECK_OK(lt_write(f, 10 * MIB, 14 * MIB, seed, &rng));
		CHECK_OK(volume_file_truncate(f, 20 * MIB));
		CHECK(lt_verify(f, 14 * MIB, seed, 3 << 20, 6 * MIB, 10 * MIB) == 0);
		uint8_t *b = malloc(6 * MIB);
		size_t n = 0;
		REQUIRE(b);
		CHECK_OK(volume_file_read(f, b, 6 * MIB, 14 * MIB, &n));
		int zero = n == 6 * MIB;
		for (size_t i = 0; i < n; i++)
			zero &= b[i] == 0;
		CHECK(zero);
		free(b);
		CHECK_OK(volume_file_close(f));
	}

	/* Reopen: everything reads back from the metadata and the store. */
	CHECK_OK(volume_close(v));
	REQUIRE_OK(volume_open(dir, &o, &v));
	CHECK_OK(volume_drop_cache(v));
	CHECK(lt_verify_all(v, fs, 9, 4 << 20) == 0);
	CHECK(lt_verify_all(v, fs + 10, nsz - 10, 32 << 20) == 0);
	CHECK_OK(volume_close(v));
	lt_check_hashes(dir, fs[10].ino, fs[10].size, fs[10].seed, 1u << 20);
	t_rmtree(tmp);
}

#endif
