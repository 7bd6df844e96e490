/*
 * dedup_t.h - helpers of the chunk deduplication tests (tests/space/
 * test_space_dedup*.c): file contents computed from (kind, offset) so that
 * GiB-sized files and their edited copies are written and checked without
 * keeping a copy, a volume on a file:// store whose byte counters
 * (objstore_stats) measure what a write uploads, and the metadata-level
 * fsck run on a closed volume.
 */
#ifndef CAIRN_DEDUP_T_H
#define CAIRN_DEDUP_T_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/meta.h"
#include "cairn/volume.h"
#include "large/large_t.h"
#include "t.h"

#if defined(__SANITIZE_ADDRESS__)
#define DD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DD_ASAN 1
#endif
#endif
#ifndef DD_ASAN
#define DD_ASAN 0
#endif

/* The base content: noise from (seed, offset), as the large-file tests. */
#define dd_noise lt_fill

enum { DD_BASE = 0, DD_EDIT = 1, DD_SHIFT = 2 };
#define DD_REGIONS 4
#define DD_INSERT 4096

/* A file: the base (seed), the base with regions rewritten (other seed),
 * or the base with DD_INSERT bytes inserted at ins. */
typedef struct dd_file {
	int kind;
	uint64_t size, seed, other;
	uint64_t reg[DD_REGIONS][2];  /* DD_EDIT: [lo, hi) rewritten */
	uint64_t ins;                 /* DD_SHIFT: where the bytes go */
} dd_file;

static inline void dd_fill(const dd_file *f, uint8_t *p, size_t len, uint64_t off)
{
	uint64_t end = off + len;
	if (f->kind == DD_SHIFT) {
		uint64_t a = f->ins, b = f->ins + DD_INSERT;
		for (uint64_t o = off; o < end;) {
			uint64_t n;
			if (o < a) {
				n = (end < a ? end : a) - o;
				dd_noise(p + (o - off), n, o, f->seed);
			} else if (o < b) {
				n = (end < b ? end : b) - o;
				dd_noise(p + (o - off), n, o, f->other);
			} else {
				n = end - o;
				dd_noise(p + (o - off), n, o - DD_INSERT, f->seed);
			}
			o += n;
		}
		return;
	}
	dd_noise(p, len, off, f->seed);
	if (f->kind != DD_EDIT)
		return;
	for (int r = 0; r < DD_REGIONS; r++) {
		uint64_t lo = f->reg[r][0] > off ? f->reg[r][0] : off;
		uint64_t hi = f->reg[r][1] < end ? f->reg[r][1] : end;
		if (lo < hi)
			dd_noise(p + (lo - off), hi - lo, lo, f->other);
	}
}

static inline uint64_t dd_create(cairn_volume *v, const char *name)
{
	cairn_attr a;
	REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a));
	return a.ino;
}

/* Write the file's bytes [from, to) in pieces of `piece` bytes. */
static inline int dd_write(cairn_file *fh, const dd_file *f, uint64_t from, uint64_t to,
			   size_t piece)
{
	uint8_t *buf = malloc(piece);
	int rc = 0;
	if (!buf)
		return CAIRN_E_NOMEM;
	for (uint64_t pos = from; pos < to && !rc;) {
		size_t n = to - pos < piece ? (size_t)(to - pos) : piece;
		dd_fill(f, buf, n, pos);
		rc = volume_file_write(fh, buf, n, pos);
		pos += n;
	}
	free(buf);
	return rc;
}

/* Compare [from, to) with the expected bytes; returns 0 when equal. */
static inline int dd_verify(cairn_file *fh, const dd_file *f, uint64_t from, uint64_t to,
			    size_t piece)
{
	uint8_t *buf = malloc(piece), *want = malloc(piece);
	int bad = 0;
	if (!buf || !want) {
		free(buf);
		free(want);
		return 1;
	}
	for (uint64_t pos = from; pos < to && !bad;) {
		size_t got = 0, n = to - pos < piece ? (size_t)(to - pos) : piece;
		int rc = volume_file_read(fh, buf, n, pos, &got);
		if (rc || got != n) {
			fprintf(stderr, "read at %" PRIu64 ": rc %d (%s), got %zu of %zu\n", pos, rc,
				rc ? cairn_errmsg() : "", got, n);
			bad = 1;
			break;
		}
		dd_fill(f, want, n, pos);
		if (memcmp(buf, want, n)) {
			size_t i = 0;
			while (buf[i] == want[i])
				i++;
			fprintf(stderr, "mismatch at %" PRIu64 "\n", pos + i);
			bad = 1;
		}
		pos += n;
	}
	free(buf);
	free(want);
	return bad;
}

/* Open file ino and check it holds exactly f (size and bytes). */
static inline int dd_check_file(cairn_volume *v, uint64_t ino, const dd_file *f)
{
	cairn_file *fh;
	cairn_attr a;
	int bad;
	if (volume_getattr(v, ino, &a) || a.size != f->size) {
		fprintf(stderr, "inode %" PRIu64 ": size %" PRIu64 ", want %" PRIu64 "\n", ino,
			a.size, f->size);
		return 1;
	}
	if (volume_file_open(v, ino, &fh))
		return 1;
	bad = dd_verify(fh, f, 0, f->size, 8 << 20);
	if (volume_file_close(fh))
		bad = 1;
	return bad;
}

/* meta_fsck of the closed volume in dir: problems found (or -1), and
 * the live inode count in *inodes. */
static inline int64_t dd_meta_fsck(const char *dir, uint64_t *inodes)
{
	char path[1024];
	cairn_meta *m;
	meta_fsck_result res;
	meta_statfs sf;
	meta_txn *t;
	snprintf(path, sizeof path, "%s/meta", dir);
	if (meta_open(path, NULL, &m)) {
		fprintf(stderr, "meta_open %s: %s\n", path, cairn_errmsg());
		return -1;
	}
	memset(&res, 0, sizeof res);
	int rc = meta_fsck(m, 0, stderr, &res);
	if (!rc && inodes && !(rc = meta_read_begin(m, &t))) {
		rc = meta_statfs_get(t, &sf);
		meta_read_end(t);
		*inodes = sf.inodes;
	}
	if (meta_close(m) || rc)
		return -1;
	return (int64_t)res.problems;
}

#endif
