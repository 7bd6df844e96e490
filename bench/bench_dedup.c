/*
 * bench_dedup.c - chunk deduplication of large files (issue 7): what an
 * incremental checkpoint uploads, and how fast a deduplicating write goes
 * against a fresh one.
 *
 *   bench_dedup VOLDIR [MIB] [CHUNK_KIB]
 *       format VOLDIR (file://VOLDIR/store), write a pseudo-random file of
 *       MIB MiB (default 1024) in 8 MiB writes, upload it; then a copy with
 *       10% of its bytes rewritten in 4 regions; then a copy with 4 KiB
 *       inserted near the start; then the same bytes with deduplication
 *       off (no_dedup) as the control.  CHUNK_KIB: the stream's average
 *       chunk (default the volume's, 4096).  Prints JSON per file:
 *       bytes changed, bytes put to the store, write time (the volume's
 *       write calls and close: the data generation is not timed), time to
 *       the store (until the upload is complete).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/volume.h"

#define MIB ((uint64_t)1 << 20)
#define PIECE (8u << 20)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void noise(uint8_t *p, size_t len, uint64_t off, uint64_t seed)
{
	for (size_t i = 0; i < len;) {
		uint64_t o = off + i, w = o / 8;
		uint64_t z = (w ^ seed) * 0x9e3779b97f4a7c15ULL + seed;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z ^= z >> 27;
		for (size_t k = (size_t)(o % 8); k < 8 && i < len; k++, i++)
			p[i] = (uint8_t)(z >> (8 * k));
	}
}

enum { BASE, EDIT, SHIFT };

/* Bytes [off, off+len) of a file of this kind over a base of `size`. */
static void fill(int kind, uint8_t *p, size_t len, uint64_t off, uint64_t size)
{
	uint64_t end = off + len, ins = 100000, rlen = size / 40;
	if (kind == SHIFT) {
		if (end <= ins) {
			noise(p, len, off, 1);
		} else if (off >= ins + 4096) {
			noise(p, len, off - 4096, 1);
		} else {
			/* the piece around the insertion, byte ranges by hand */
			for (uint64_t o = off; o < end; o++) {
				uint8_t b;
				if (o < ins)
					noise(&b, 1, o, 1);
				else if (o < ins + 4096)
					noise(&b, 1, o, 2);
				else
					noise(&b, 1, o - 4096, 1);
				p[o - off] = b;
			}
		}
		return;
	}
	noise(p, len, off, 1);
	if (kind != EDIT)
		return;
	for (int r = 0; r < 4; r++) {
		uint64_t lo = r * (size / 4) + size / 9, hi = lo + rlen;
		lo = lo > off ? lo : off;
		hi = hi < end ? hi : end;
		if (lo < hi)
			noise(p + (lo - off), hi - lo, lo, 3);
	}
}

static int die(const char *what)
{
	fprintf(stderr, "bench_dedup: %s: %s\n", what, cairn_errmsg());
	return 1;
}

static int one(cairn_volume *v, cairn_objstore *os, const char *name, int kind,
	       uint64_t size, uint8_t *buf, const char *sep)
{
	cairn_file *f;
	cairn_attr a;
	cairn_objstore_stats s0, s1;
	uint64_t fsize = kind == SHIFT ? size + 4096 : size;
	double tw = 0, t0;

	objstore_stats(os, &s0);
	if (volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a) ||
	    volume_file_open(v, a.ino, &f))
		return die("create");
	double start = now_s();
	for (uint64_t pos = 0; pos < fsize; pos += PIECE) {
		size_t n = fsize - pos < PIECE ? (size_t)(fsize - pos) : PIECE;
		fill(kind, buf, n, pos, size);
		t0 = now_s();
		if (volume_file_write(f, buf, n, pos))
			return die("write");
		tw += now_s() - t0;
	}
	t0 = now_s();
	if (volume_file_close(f))
		return die("close");
	tw += now_s() - t0;
	t0 = now_s();
	if (volume_sync_durable(v, CAIRN_DUR_REMOTE))
		return die("sync");
	double tr = tw + (now_s() - t0);
	objstore_stats(os, &s1);
	uint64_t changed = kind == EDIT ? 4 * (size / 40) : kind == SHIFT ? 4096 : size;
	printf("%s\"%s\": {\"bytes\": %" PRIu64 ", \"changed\": %" PRIu64 ", \"put\": %"
	       PRIu64 ", \"write_s\": %.3f, \"write_mib_s\": %.1f, \"remote_s\": %.3f, "
	       "\"wall_s\": %.3f}", sep, name, fsize, changed, s1.bytes_up - s0.bytes_up, tw,
	       (double)fsize / MIB / tw, tr, now_s() - start);
	fflush(stdout);
	return 0;
}

static int run(const char *dir, uint64_t size, uint32_t chunk, int no_dedup,
	       uint8_t *buf, const char *sep)
{
	char url[4200];
	cairn_objstore *os;
	cairn_volume *v;
	cairn_volume_opts o;
	cairn_format_opts fo = { 0 };

	snprintf(url, sizeof url, "file://%s/store", dir);
	fo.store_url = url;
	if (volume_format(dir, &fo))
		return die("format");
	if (objstore_open(url, NULL, &os))
		return die("store");
	memset(&o, 0, sizeof o);
	o.store = os;
	o.stream_chunk_avg = chunk;
	o.no_dedup = no_dedup;
	if (volume_open(dir, &o, &v))
		return die("open");
	printf("%s\"%s\": {", sep, no_dedup ? "no_dedup" : "dedup");
	int rc = one(v, os, "base", BASE, size, buf, "") ||
		 one(v, os, "edit10", EDIT, size, buf, ", ") ||
		 one(v, os, "shift4k", SHIFT, size, buf, ", ");
	printf("}");
	if (volume_close(v))
		rc = die("close");
	objstore_close(os);
	return rc;
}

int main(int argc, char **argv)
{
	char d1[4096], d2[4096];
	if (argc < 2) {
		fprintf(stderr, "usage: bench_dedup VOLDIR [MIB] [CHUNK_KIB]\n");
		return 2;
	}
	uint64_t size = (argc > 2 ? strtoull(argv[2], NULL, 10) : 1024) * MIB;
	uint32_t chunk = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) << 10 : 0;
	uint8_t *buf = malloc(PIECE);
	if (!buf || size < 64 * MIB) {
		fprintf(stderr, "bench_dedup: at least 64 MiB\n");
		return 1;
	}
	snprintf(d1, sizeof d1, "%s/dedup", argv[1]);
	snprintf(d2, sizeof d2, "%s/nodedup", argv[1]);
	printf("{\"chunk_avg\": %u, ", chunk ? chunk : 4u << 20);
	int rc = run(d1, size, chunk, 0, buf, "") || run(d2, size, chunk, 1, buf, ", ");
	printf("}\n");
	free(buf);
	return rc;
}
