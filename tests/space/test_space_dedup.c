/*
 * test_space_dedup.c - chunk deduplication of large files (issue 7).
 *
 * A 1 GiB pseudo-random file A (256 MiB under ASan) is written and
 * uploaded; then B = A with 10% of its bytes rewritten in four regions,
 * and C = A with 4 KiB inserted near the start (everything after it
 * shifted), and E = B exactly (no chunk stored at all).  The bytes the volume puts to the store (objstore_stats of the
 * store it was given: parts and puts) for B and for C must each be at most
 * 15% of the file.  B is read back while it streams (uncommitted dedup
 * hits come from the stored chunks).  Then clone, snapshot, overwrite,
 * truncate and unlink go over the shared chunks; A is deleted, gc runs
 * (grace none), the cache is dropped, and B, C, the clone and the snapshot
 * read back exactly from the store; the metadata fsck is clean (exact
 * chunk refcounts) and no dedup pin inode is left.
 */
#include <time.h>

#include "dedup_t.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t bytes_up(cairn_objstore *os)
{
	cairn_objstore_stats s;
	objstore_stats(os, &s);
	return s.bytes_up;
}

/* Write f as a new file name, close it, wait until it is in the store;
 * returns the bytes put to the store meanwhile. */
static uint64_t put_file(cairn_volume *v, cairn_objstore *os, const char *name,
			 const dd_file *f, uint64_t *ino, int check_early)
{
	cairn_file *fh;
	uint64_t before = bytes_up(os);
	double t0 = now_s();
	*ino = dd_create(v, name);
	REQUIRE_OK(volume_file_open(v, *ino, &fh));
	for (uint64_t pos = 0; pos < f->size;) {
		uint64_t n = f->size - pos < 64 * MIB ? f->size - pos : 64 * MIB;
		REQUIRE_OK(dd_write(fh, f, pos, pos + n, 8 << 20));
		/* Read-after-write while streaming: before the stream's
		 * commit, dedup hits are served from the stored chunks. */
		if (check_early && pos < 128 * MIB)
			CHECK(dd_verify(fh, f, pos, pos + n, 3 << 20) == 0);
		pos += n;
	}
	REQUIRE_OK(volume_file_close(fh));
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	uint64_t up = bytes_up(os) - before;
	printf("%s: %" PRIu64 " MiB written, %.2f MiB put to the store, %.2f s\n", name,
	       (uint64_t)(f->size / MIB), (double)up / MIB, now_s() - t0);
	return up;
}

int main(void)
{
	const char *tmp = t_tmpdir("space_dedup");
	uint64_t rng = t_seed();
	uint64_t size = (DD_ASAN ? 256 : 1024) * MIB;
	char dir[700], url[800];
	cairn_objstore *os;
	cairn_volume *v;
	cairn_volume_opts o;
	uint64_t ia, ib, ic, id, inodes = 0;
	dd_file a = { .kind = DD_BASE, .size = size, .seed = t_rand(&rng) };
	dd_file b = a, c = a;

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	REQUIRE_OK(volume_format(dir, NULL));
	snprintf(url, sizeof url, "file://%s/store", dir);
	REQUIRE_OK(objstore_open(url, NULL, &os));
	memset(&o, 0, sizeof o);
	o.store = os;
	o.stream_threshold = 2 * MIB;
	/* Chunks scale with the file (1 MiB at 1 GiB, 256 KiB under ASan)
	 * so the bound below means the same at both sizes: B uploads its
	 * 10% plus the chunks around 8 region edges (about two average
	 * chunks each, at most a few max-size 4 x avg ones): ~1.6% of the
	 * file, 3-6% at worst.  With 1 MiB chunks on the 256 MiB ASan file
	 * the edges alone were 4x that and one seed crossed 15%. */
	o.stream_chunk_avg = (uint32_t)(size / 1024);
	o.gc_grace_ms = CAIRN_GC_GRACE_NONE;
	REQUIRE_OK(volume_open(dir, &o, &v));

	/* B: four regions of 2.5% each, one in each quarter. */
	b.kind = DD_EDIT;
	b.other = t_rand(&rng);
	uint64_t rlen = size / 40, changed = 0;
	for (int r = 0; r < DD_REGIONS; r++) {
		uint64_t q = size / DD_REGIONS;
		b.reg[r][0] = r * q + t_rand(&rng) % (q - rlen);
		b.reg[r][1] = b.reg[r][0] + rlen;
		changed += rlen;
	}
	/* C: 4 KiB inserted in the first MiB. */
	c.kind = DD_SHIFT;
	c.other = t_rand(&rng);
	c.ins = 4096 + t_rand(&rng) % MIB;
	c.size = size + DD_INSERT;

	uint64_t up_a = put_file(v, os, "a", &a, &ia, 0);
	CHECK(up_a >= size);  /* the control: a fresh file is uploaded whole */
	uint64_t up_b = put_file(v, os, "b", &b, &ib, 1);
	printf("edit: %" PRIu64 " MiB changed in %d regions, %.2f MiB uploaded (%.1f%% of "
	       "the file)\n", (uint64_t)(changed / MIB), DD_REGIONS, (double)up_b / MIB,
	       100.0 * (double)up_b / (double)size);
	CHECK(up_b <= size * 15 / 100);
	uint64_t up_c = put_file(v, os, "c", &c, &ic, 0);
	printf("shift: 4 KiB inserted at %" PRIu64 ", %.2f MiB uploaded (%.1f%% of the "
	       "file)\n", c.ins, (double)up_c / MIB, 100.0 * (double)up_c / (double)size);
	CHECK(up_c <= size * 15 / 100);
	/* An exact copy: every chunk a hit, the stream segment holds none. */
	uint64_t ie;
	uint64_t up_e = put_file(v, os, "e", &b, &ie, 0);
	CHECK(up_e <= MIB);

	/* Refcounts through clone, snapshot, overwrite, truncate, unlink. */
	cairn_attr da;
	cairn_snap sn;
	REQUIRE_OK(volume_clone(v, ib, CAIRN_ROOT_INO, "d", &da));
	id = da.ino;
	REQUIRE_OK(volume_snapshot_create(v, CAIRN_ROOT_INO, "s1", &sn));
	cairn_file *fh;
	uint8_t *junk = malloc(MIB);
	REQUIRE(junk);
	memset(junk, 0x5a, MIB);
	REQUIRE_OK(volume_file_open(v, id, &fh));
	REQUIRE_OK(volume_file_write(fh, junk, MIB, size / 3));  /* overwrite in the clone */
	REQUIRE_OK(volume_file_truncate(fh, size / 2));
	REQUIRE_OK(volume_file_close(fh));
	free(junk);
	REQUIRE_OK(volume_unlink(v, CAIRN_ROOT_INO, "a"));

	/* The snapshot still has A as it was. */
	cairn_attr sa;
	REQUIRE_OK(volume_lookup(v, sn.root, "a", &sa));
	CHECK(dd_check_file(v, sa.ino, &a) == 0);
	REQUIRE_OK(volume_snapshot_delete(v, "s1"));
	/* A is gone for good now: gc deletes what only A held. */
	cairn_gc_result gr;
	cairn_gc_opts go;
	volume_gc_opts_init(&go);
	go.grace_ms = CAIRN_GC_GRACE_NONE;
	int grc = volume_gc(v, &go, &gr);
	if (grc == CAIRN_E_UNSUPPORTED) {
		/* TODO(space): volume_gc is not implemented yet; this test runs
		 * it once it is. */
		printf("TODO: volume_gc not implemented yet: %s\n", cairn_errmsg());
	} else {
		CHECK_OK(grc);
		printf("gc: %" PRIu64 " segments examined, %" PRIu64 " deleted (%.1f MiB), %"
		       PRIu64 " compacted\n", gr.segments_examined, gr.segments_deleted,
		       (double)gr.bytes_deleted / MIB, gr.segments_compacted);
	}
	REQUIRE_OK(volume_drop_cache(v));
	CHECK(dd_check_file(v, ib, &b) == 0);
	CHECK(dd_check_file(v, ic, &c) == 0);
	CHECK(dd_check_file(v, ie, &b) == 0);
	/* The clone: B's first half with 1 MiB overwritten (around the
	 * overwrite and at the cut; the rest is B's chunks again). */
	REQUIRE_OK(volume_file_open(v, id, &fh));
	cairn_attr dst;
	REQUIRE_OK(volume_getattr(v, id, &dst));
	CHECK(dst.size == size / 2);
	CHECK(dd_verify(fh, &b, 0, 8 * MIB, 8 << 20) == 0);
	CHECK(dd_verify(fh, &b, size / 3 - 8 * MIB, size / 3, 8 << 20) == 0);
	CHECK(dd_verify(fh, &b, size / 3 + MIB, size / 3 + 16 * MIB, 8 << 20) == 0);
	CHECK(dd_verify(fh, &b, size / 2 - 8 * MIB, size / 2, 8 << 20) == 0);
	uint8_t *back = malloc(MIB);
	size_t got = 0;
	REQUIRE(back);
	CHECK_OK(volume_file_read(fh, back, MIB, size / 3, &got));
	CHECK(got == MIB && back[0] == 0x5a && back[MIB - 1] == 0x5a);
	free(back);
	REQUIRE_OK(volume_file_close(fh));
	cairn_fsck_result fr;
	int frc = volume_fsck(v, 0, stderr, &fr);
	if (frc != CAIRN_E_UNSUPPORTED) {
		CHECK_OK(frc);
		CHECK(fr.problems == 0);
	}
	REQUIRE_OK(volume_close(v));

	/* root, b, c, d, e: no dedup pin is left. */
	CHECK(dd_meta_fsck(dir, &inodes) == 0);
	CHECK(inodes == 5);
	objstore_close(os);
	t_rmtree(tmp);
	return t_done();
}
