/*
 * large_t.h - helpers of the large-file tests: volume options with small
 * stream sizes (parts at the store's 5 MiB minimum, 1 MiB chunks), file
 * contents computed from (seed, offset) so that files of any size are
 * checked without keeping a copy, and write/verify loops over the volume
 * API with varied piece sizes.
 */
#ifndef CAIRN_LARGE_T_H
#define CAIRN_LARGE_T_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/volume.h"
#include "t.h"

#define MIB (1ull << 20)

static inline void lt_opts(cairn_volume_opts *o)
{
	memset(o, 0, sizeof *o);
	o->seal_age_ms = 200;
	o->commit_interval_ms = 100;
	o->upload_wait_ms = 20000;
	o->stream_threshold = 2 * MIB;
	o->stream_part_size = 5 * MIB;
	o->stream_inflight = 4;
	o->stream_chunk_avg = 1u << 20;
	o->stream_commit_bytes = 8 * MIB;
	o->stream_multipart = 1;  /* parts on file:// too (the path S3 takes) */
}

static inline void lt_format(const char *dir)
{
	cairn_format_opts fo = { 0 };
	if (volume_format(dir, &fo) != 0) {
		fprintf(stderr, "format %s: %s\n", dir, cairn_errmsg());
		exit(1);
	}
}

/* The byte at file offset o of a file with this seed: a mix of runs (so
 * that content-defined boundaries find structure) and noise. */
static inline void lt_fill(uint8_t *p, size_t len, uint64_t off, uint64_t seed)
{
	for (size_t i = 0; i < len;) {
		uint64_t o = off + i, w = o / 8;
		uint64_t z = (w ^ seed) * 0x9e3779b97f4a7c15ULL + seed;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z ^= z >> 27;
		size_t k = (size_t)(o % 8);
		for (; k < 8 && i < len; k++, i++)
			p[i] = (uint8_t)(z >> (8 * k));
	}
}

static inline uint64_t lt_ino(cairn_volume *v, const char *name)
{
	cairn_attr a;
	int rc = volume_lookup(v, CAIRN_ROOT_INO, name, &a);
	if (rc == CAIRN_E_NOTFOUND)
		rc = volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a);
	if (rc) {
		fprintf(stderr, "create %s: %s\n", name, cairn_errmsg());
		exit(1);
	}
	return a.ino;
}

/* Write [from, to) of the seeded content in pieces of varied sizes. */
static inline int lt_write(cairn_file *f, uint64_t from, uint64_t to,
			   uint64_t seed, uint64_t *rng)
{
	static const size_t sizes[] = { 1, 4096, 65536, 131072, 1 << 20, 3000001, 8 << 20 };
	size_t cap = 8 << 20;
	uint8_t *buf = malloc(cap);
	int rc = 0;
	if (!buf)
		return CAIRN_E_NOMEM;
	for (uint64_t pos = from; pos < to;) {
		size_t n = sizes[t_rand(rng) % (sizeof sizes / sizeof sizes[0])];
		if (n > to - pos)
			n = (size_t)(to - pos);
		lt_fill(buf, n, pos, seed);
		if ((rc = volume_file_write(f, buf, n, pos)))
			break;
		pos += n;
	}
	free(buf);
	return rc;
}

/* Check [0, size) against the seeded content (holes [hole_lo, hole_hi)
 * read as zeros), reading pieces of piece bytes; returns mismatches. */
static inline int lt_verify(cairn_file *f, uint64_t size, uint64_t seed,
			    size_t piece, uint64_t hole_lo, uint64_t hole_hi)
{
	uint8_t *buf = malloc(piece), *want = malloc(piece);
	int bad = 0;
	if (!buf || !want) {
		free(buf);
		free(want);
		return 1;
	}
	for (uint64_t pos = 0; pos < size && !bad;) {
		size_t got = 0, n = piece < size - pos ? piece : (size_t)(size - pos);
		int rc = volume_file_read(f, buf, n, pos, &got);
		if (rc || got != n) {
			fprintf(stderr, "read at %" PRIu64 ": rc %d (%s), got %zu of %zu\n", pos,
				rc, rc ? cairn_errmsg() : "", got, n);
			bad++;
			break;
		}
		lt_fill(want, n, pos, seed);
		for (size_t i = 0; i < n; i++)
			if (pos + i >= hole_lo && pos + i < hole_hi)
				want[i] = 0;
		if (memcmp(buf, want, n)) {
			size_t i = 0;
			while (buf[i] == want[i])
				i++;
			fprintf(stderr, "mismatch at %" PRIu64 " (size %" PRIu64 ")\n", pos + i,
				size);
			bad++;
		}
		pos += n;
	}
	free(buf);
	free(want);
	return bad;
}

/* Wait (bounded) until nothing waits for upload. */
static inline int lt_wait_uploaded(cairn_volume *v)
{
	for (int i = 0; i < 6000; i++) {
		cairn_volume_stats st;
		volume_stats(v, &st);
		if (st.upload_queue == 0 && st.unuploaded_bytes == 0)
			return 0;
		usleep(10000);
	}
	return 1;
}

/* A file name of fsize seeded bytes written, fsynced, closed and
 * uploaded, its local copies dropped: what a cold read starts from. */
static inline uint64_t lt_uploaded_file(cairn_volume *v, const char *name, uint64_t fsize,
					uint64_t seed, uint64_t *rng)
{
	cairn_file *f;
	uint64_t ino = lt_ino(v, name);
	REQUIRE_OK(volume_file_open(v, ino, &f));
	REQUIRE_OK(lt_write(f, 0, fsize, seed, rng));
	REQUIRE_OK(volume_file_fsync(f));
	CHECK_OK(volume_file_close(f));
	REQUIRE(lt_wait_uploaded(v) == 0);
	CHECK_OK(volume_drop_cache(v));
	return ino;
}

#endif
