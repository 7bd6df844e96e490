/*
 * bench_gc.c - garbage collection and compaction throughput (bench/run.py
 * "gc", docs/space.md).  Prints one JSON object.
 *
 *   bench_gc DIR NSEG COMPACT_MIB
 *
 * gc: a volume (file:// store, 1 MiB segments) with NSEG segments, one
 * 4 KiB file each (a remote sync per file seals and uploads it); every
 * other file is deleted.  Timed: a dry-run pass (examine only), then a
 * pass that marks the dead half and deletes its objects (no grace, no
 * compaction).  Baselines: listing the objects from the store, which every
 * pass does anyway (orphans), and deleting as many objects directly, 64 per
 * batch, which the deleting pass does besides its metadata.
 *
 * compaction: a volume with COMPACT_MIB MiB of incompressible files of
 * 64 KiB..1 MiB in 64 MiB segments, every other file deleted (segments
 * about half live), local copies and caches dropped.  Timed: one pass
 * compacting everything below 0.9 live; MiB/s of live bytes rewritten.
 * Baseline: a plain copy of the same live bytes through the store (GET of
 * each live file's bytes, PUT of them as objects of the same segment size).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/volume.h"

#define MIB (1ull << 20)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_gc: %s: %s\n", what, cairn_errmsg());
	exit(1);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
	for (size_t i = 0; i < n; i += 8) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		memcpy(p + i, &s, n - i < 8 ? n - i : 8);
	}
}

static void put_file(cairn_volume *v, const char *name, const uint8_t *buf, size_t len)
{
	cairn_attr a;
	cairn_file *f;
	if (volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a) ||
	    volume_file_open(v, a.ino, &f) || volume_file_write(f, buf, len, 0) ||
	    volume_file_close(f))
		die(name);
}

static void opts(cairn_volume_opts *o)
{
	memset(o, 0, sizeof *o);
	o->gc_grace_ms = CAIRN_GC_GRACE_NONE;
	o->stream_threshold = UINT64_MAX;
}

static int list_count(cairn_objstore *os, const char *prefix, uint64_t *n)
{
	char *token = NULL;
	*n = 0;
	do {
		cairn_obj_list l;
		memset(&l, 0, sizeof l);
		int rc = objstore_list(os, prefix, token, 0, &l);
		free(token);
		token = NULL;
		if (rc)
			return rc;
		*n += l.n;
		if (l.next)
			token = strdup(l.next);
		objstore_list_free(&l);
	} while (token);
	return 0;
}

int main(int argc, char **argv)
{
	char dir[4096], url[4200], prefix[128], uuid[37];
	cairn_format_opts fo = { 0 };
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_gc_opts g;
	cairn_gc_result r;
	uint8_t *buf;

	if (argc != 4) {
		fprintf(stderr, "usage: bench_gc DIR NSEG COMPACT_MIB\n");
		return 2;
	}
	uint64_t nseg = strtoull(argv[2], NULL, 10);
	uint64_t cmib = strtoull(argv[3], NULL, 10);
	buf = malloc(MIB);
	if (!buf || nseg < 2 || cmib < 1)
		return 2;

	/* ---- gc: many segments ---- */
	snprintf(dir, sizeof dir, "%s/gcvol", argv[1]);
	fo.segment_size = MIB;
	if (volume_format(dir, &fo))
		die("format");
	opts(&o);
	if (volume_open(dir, &o, &v))
		die("open");
	for (uint64_t i = 0; i < nseg; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%" PRIu64, i);
		fill(buf, 4096, i);
		put_file(v, name, buf, 4096);
		if (volume_sync_durable(v, CAIRN_DUR_REMOTE))
			die("sync");
	}
	for (uint64_t i = 0; i < nseg; i += 2) {
		char name[32];
		snprintf(name, sizeof name, "f%" PRIu64, i);
		if (volume_unlink(v, CAIRN_ROOT_INO, name))
			die("unlink");
	}
	if (volume_sync(v))
		die("sync");
	volume_gc_opts_init(&g);
	g.compact_below = 0;
	g.grace_ms = 0;
	g.dry_run = 1;
	double t0 = now_s();
	if (volume_gc(v, &g, &r))
		die("gc dry run");
	double dry_s = now_s() - t0;
	uint64_t examined = r.segments_examined;
	g.dry_run = 0;
	t0 = now_s();
	if (volume_gc(v, &g, &r))
		die("gc");
	double gc_s = now_s() - t0;
	uint64_t deleted = r.segments_deleted;
	/* baseline: list what is left, twice the count (what was examined) */
	cairn_objstore *os;
	snprintf(url, sizeof url, "file://%s/store", dir);
	if (objstore_open(url, NULL, &os))
		die("store");
	volume_uuid(v, uuid);
	snprintf(prefix, sizeof prefix, "v/%s/seg/", uuid);
	uint64_t listed = 0;
	t0 = now_s();
	if (list_count(os, prefix, &listed))
		die("list");
	double list_s = now_s() - t0;
	/* baseline of the deleting pass: deleting as many objects directly,
	 * 64 per batch */
	char (*dkeys)[48] = calloc(deleted + 1, sizeof *dkeys);
	const char **dk = calloc(deleted + 1, sizeof *dk);
	if (!dkeys || !dk)
		return 2;
	for (uint64_t i = 0; i < deleted; i++) {
		snprintf(dkeys[i], sizeof dkeys[i], "baseline/d/%" PRIu64, i);
		dk[i] = dkeys[i];
		if (objstore_put_buf(os, dkeys[i], buf, 4096))
			die("baseline put");
	}
	t0 = now_s();
	for (uint64_t i = 0; i < deleted; i += 64)
		if (objstore_delete_batch(os, dk + i, deleted - i < 64 ? deleted - i : 64, NULL))
			die("baseline delete");
	double del_s = now_s() - t0;
	free(dkeys);
	free(dk);
	objstore_close(os);
	if (volume_close(v))
		die("close");

	/* ---- compaction ---- */
	snprintf(dir, sizeof dir, "%s/cvol", argv[1]);
	fo.segment_size = 64 * MIB;
	if (volume_format(dir, &fo))
		die("format");
	if (volume_open(dir, &o, &v))
		die("open");
	uint64_t total = 0, live = 0, nfiles = 0;
	uint64_t *sizes = NULL;
	while (total < cmib * MIB) {
		char name[32];
		uint64_t len = (64u << 10) + (uint64_t)(rand() % (int)(MIB - (64u << 10)));
		uint64_t *ns = realloc(sizes, (nfiles + 1) * sizeof *ns);
		if (!ns)
			return 2;
		sizes = ns;
		sizes[nfiles] = len;
		snprintf(name, sizeof name, "c%" PRIu64, nfiles);
		fill(buf, len, 1000 + nfiles);
		put_file(v, name, buf, len);
		total += len;
		nfiles++;
	}
	for (uint64_t i = 0; i < nfiles; i++) {
		char name[32];
		snprintf(name, sizeof name, "c%" PRIu64, i);
		if (i % 2 == 0) {
			if (volume_unlink(v, CAIRN_ROOT_INO, name))
				die("unlink");
		} else {
			live += sizes[i];
		}
	}
	if (volume_sync_durable(v, CAIRN_DUR_REMOTE) || volume_drop_cache(v))
		die("sync");
	volume_gc_opts_init(&g);
	g.grace_ms = 0;
	g.compact_below = 0.9;
	g.compact_max_bytes = UINT64_MAX / 2;
	t0 = now_s();
	if (volume_gc(v, &g, &r))
		die("compaction");
	double c_s = now_s() - t0;
	uint64_t rewritten = r.bytes_rewritten;
	/* baseline: read the live files' bytes from the store (cold) and put
	 * them back as segment-sized objects */
	if (volume_close(v) || volume_open(dir, &o, &v) || volume_drop_cache(v))
		die("reopen");
	snprintf(url, sizeof url, "file://%s/store", dir);
	if (objstore_open(url, NULL, &os))
		die("store");
	uint8_t *seg = malloc(64 * MIB);
	if (!seg)
		return 2;
	uint64_t fill_at = 0, copied = 0, nput = 0;
	t0 = now_s();
	for (uint64_t i = 1; i < nfiles; i += 2) {
		char name[32], key[64];
		cairn_attr a;
		cairn_file *f;
		size_t got = 0;
		snprintf(name, sizeof name, "c%" PRIu64, i);
		if (volume_lookup(v, CAIRN_ROOT_INO, name, &a) || volume_file_open(v, a.ino, &f) ||
		    volume_file_read(f, seg + fill_at, sizes[i], 0, &got) || got != sizes[i])
			die("baseline read");
		volume_file_close(f);
		fill_at += got;
		copied += got;
		if (fill_at + MIB > 64 * MIB || i + 2 >= nfiles) {
			snprintf(key, sizeof key, "baseline/%" PRIu64, nput++);
			if (objstore_put_buf(os, key, seg, fill_at))
				die("baseline put");
			fill_at = 0;
		}
	}
	double copy_s = now_s() - t0;
	objstore_close(os);
	if (volume_close(v))
		die("close");
	printf("{\"gc_segments\": %" PRIu64 ", \"gc_deleted\": %" PRIu64 ", \"gc_s\": %.6f, "
	       "\"dry_s\": %.6f, \"list_keys\": %" PRIu64 ", \"list_s\": %.6f, \"del_s\": %.6f, "
	       "\"compact_bytes\": %" PRIu64 ", \"compact_live\": %" PRIu64 ", \"compact_s\": %.6f, "
	       "\"copy_bytes\": %" PRIu64 ", \"copy_s\": %.6f}\n",
	       examined, deleted, gc_s, dry_s, listed, list_s, del_s, rewritten, live, c_s, copied,
	       copy_s);
	free(seg);
	free(sizes);
	free(buf);
	return 0;
}
