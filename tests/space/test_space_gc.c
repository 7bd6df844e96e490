/*
 * test_space_gc.c - the rules of a gc pass, one at a time:
 *   - dry run: reports what a pass would free and changes nothing (the
 *     store listing, volume_space and a second dry run agree);
 *   - grace: a segment that died inside the grace period is not deleted
 *     (segments_waiting), nor are objects; with no grace it goes; the
 *     volume's default grace (1 hour) applies when the pass does not say;
 *   - orphans: an object under the segment prefix that no record names is
 *     reported, deleted only past the grace; objects outside the prefix
 *     are never touched;
 *   - compaction: a half-dead segment is rewritten, the old one dies;
 *   - the background thread (gc_interval_ms) reclaims on its own.
 */
#include "space_t.h"

static int same_space(const cairn_space *a, const cairn_space *b)
{
	return a->logical_bytes == b->logical_bytes && a->live_bytes == b->live_bytes &&
	       a->stored_bytes == b->stored_bytes && a->segments == b->segments &&
	       a->segments_dead == b->segments_dead && a->chunks == b->chunks &&
	       a->referenced_bytes == b->referenced_bytes;
}

int main(void)
{
	const char *tmp = t_tmpdir("space_gc");
	uint64_t seed = t_seed();
	char dir[700], prefix[128], orphan[256];
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_objstore *os;
	cairn_gc_opts g;
	cairn_gc_result r1, r2;
	cairn_space s0, s1;
	sp_objs ob0, ob1;

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	sp_format(dir);
	sp_opts(&o);
	o.gc_grace_ms = 0;  /* the default: 1 hour */
	REQUIRE_OK(volume_open(dir, &o, &v));
	REQUIRE_OK(sp_store_open(dir, &os));
	sp_prefix(v, prefix, sizeof prefix);

	/* 24 files of 200 KiB in 1 MiB segments: ~5 files per segment. */
	sp_put_files(v, 24, 200 << 10, seed, NULL);
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	CHECK_OK(volume_space(v, &s0));
	CHECK(s0.segments >= 4 && s0.segments_dead == 0);
	/* Whole segments' worth of files go: f0..f11 (the first segments),
	 * and every other file of the rest (half-dead segments). */
	for (int i = 0; i < 24; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%d", i);
		if (i < 12 || i % 2)
			CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, name));
	}
	CHECK_OK(volume_sync(v));
	CHECK_OK(volume_space(v, &s0));
	CHECK_OK(sp_list(os, prefix, &ob0));
	CHECK(ob0.n == s0.segments);

	/* ---- dry run ---- */
	volume_gc_opts_init(&g);
	g.dry_run = 1;
	g.grace_ms = 0;
	g.compact_below = 0.9;
	CHECK_OK(volume_gc(v, &g, &r1));
	CHECK(r1.segments_examined == s0.segments);
	CHECK(r1.segments_marked_dead >= 2);
	CHECK(r1.segments_deleted == r1.segments_marked_dead);
	CHECK(r1.bytes_deleted > 0);
	CHECK(r1.segments_compacted >= 1 && r1.bytes_rewritten > 0 && r1.chunks_moved > 0);
	CHECK(r1.orphans_found == 0);
	CHECK_OK(volume_space(v, &s1));
	CHECK(same_space(&s0, &s1));
	CHECK_OK(sp_list(os, prefix, &ob1));
	CHECK(ob1.n == ob0.n && ob1.bytes == ob0.bytes);
	CHECK_OK(volume_gc(v, &g, &r2));
	CHECK(memcmp(&r1, &r2, sizeof r1) == 0);
	/* a dry run with the grace: the dead would wait */
	g.grace_ms = -1;
	CHECK_OK(volume_gc(v, &g, &r2));
	CHECK(r2.segments_deleted == 0 && r2.segments_waiting == r1.segments_marked_dead);
	CHECK_OK(volume_space(v, &s1));
	CHECK(same_space(&s0, &s1));

	/* ---- grace (the volume's default, 1 hour) ---- */
	volume_gc_opts_init(&g);
	g.compact_below = 0;  /* compaction is checked below */
	CHECK_OK(volume_gc(v, &g, &r1));
	CHECK(r1.segments_marked_dead >= 2);
	CHECK(r1.segments_deleted == 0);
	CHECK(r1.segments_waiting == r1.segments_marked_dead);
	CHECK(r1.bytes_waiting > 0);
	CHECK_OK(sp_list(os, prefix, &ob1));
	CHECK(ob1.n == ob0.n);
	CHECK_OK(volume_space(v, &s1));
	CHECK(s1.segments_dead == r1.segments_marked_dead && s1.segments == s0.segments);
	/* again: nothing new dies, the same wait; also across a reopen */
	CHECK_OK(volume_close(v));
	REQUIRE_OK(volume_open(dir, &o, &v));
	CHECK_OK(volume_gc(v, &g, &r2));
	CHECK(r2.segments_marked_dead == 0 && r2.segments_deleted == 0);
	CHECK(r2.segments_waiting == r1.segments_waiting);
	g.grace_ms = 3600 * 1000;
	CHECK_OK(volume_gc(v, &g, &r2));
	CHECK(r2.segments_deleted == 0 && r2.segments_waiting == r1.segments_waiting);
	sp_check_accounting(v);

	/* ---- no grace: they go ---- */
	g.grace_ms = 0;
	CHECK_OK(volume_gc(v, &g, &r2));
	CHECK(r2.segments_deleted == r1.segments_waiting);
	CHECK(r2.bytes_deleted == r1.bytes_waiting);
	CHECK(r2.segments_waiting == 0);
	CHECK_OK(sp_list(os, prefix, &ob1));
	CHECK(ob1.n == ob0.n - r2.segments_deleted);
	CHECK(ob1.bytes == ob0.bytes - r2.bytes_deleted);
	sp_check_store_matches(v, os);
	sp_check_accounting(v);

	/* ---- orphans ---- */
	snprintf(orphan, sizeof orphan, "%sffffffffffffffff/0000000000000001.p", prefix);
	CHECK_OK(objstore_put_buf(os, orphan, "orphan bytes", 12));
	CHECK_OK(objstore_put_buf(os, "other/not-ours", "x", 1));
	volume_gc_opts_init(&g);
	g.compact_below = 0;
	CHECK_OK(volume_gc(v, &g, &r1));  /* the default grace */
	CHECK(r1.orphans_found == 1 && r1.orphan_bytes == 12 && r1.orphans_deleted == 0);
	g.no_orphans = 1;
	g.grace_ms = 0;
	CHECK_OK(volume_gc(v, &g, &r1));
	CHECK(r1.orphans_found == 0);
	g.no_orphans = 0;
	g.dry_run = 1;
	CHECK_OK(volume_gc(v, &g, &r1));
	CHECK(r1.orphans_found == 1 && r1.orphans_deleted == 1);  /* would be */
	cairn_obj_info info;
	CHECK_OK(objstore_head(os, orphan, &info));
	g.dry_run = 0;
	CHECK_OK(volume_gc(v, &g, &r1));
	CHECK(r1.orphans_found == 1 && r1.orphans_deleted == 1);
	CHECK_RC(objstore_head(os, orphan, &info), CAIRN_E_NOTFOUND);
	CHECK_OK(objstore_head(os, "other/not-ours", &info));
	sp_check_store_matches(v, os);

	/* ---- compaction of the half-dead segments ---- */
	sp_model m = { 0 };
	{
		uint8_t *buf = malloc(200 << 10);
		REQUIRE(buf != NULL);
		for (int i = 12; i < 24; i += 2) {
			char name[32];
			snprintf(name, sizeof name, "f%d", i);
			sp_file *f = sp_add(&m, name);
			sp_reserve(f, 200 << 10);
			t_fill(f->data, 200 << 10, seed + (uint64_t)i);
			f->size = 200 << 10;
		}
		free(buf);
	}
	CHECK_OK(volume_space(v, &s0));
	CHECK(s0.live_fraction < 0.75);
	volume_gc_opts_init(&g);
	g.grace_ms = 0;
	g.compact_below = 0.9;  /* they are half live, framing included */
	g.compact_max_bytes = 1;  /* at least one segment per pass */
	CHECK_OK(volume_gc(v, &g, &r1));
	CHECK(r1.segments_compacted == 1);
	CHECK(r1.chunks_moved >= 1 && r1.bytes_rewritten >= r1.chunks_moved * (200 << 10) / 2);
	CHECK(r1.segments_deleted == 1);  /* the old one, at once (no grace) */
	g.compact_max_bytes = 0;
	CHECK_OK(volume_gc(v, &g, &r2));
	CHECK(r2.segments_compacted >= 1);
	CHECK_OK(volume_space(v, &s1));
	CHECK(s1.live_fraction > s0.live_fraction);
	CHECK(s1.stored_bytes < s0.stored_bytes);
	CHECK(s1.live_bytes == s0.live_bytes);
	/* nothing left to compact at the default threshold */
	CHECK_OK(volume_gc(v, &g, &r2));
	CHECK(r2.segments_compacted == 0 && r2.segments_deleted == 0);
	CHECK_OK(volume_drop_cache(v));
	CHECK(sp_verify(v, CAIRN_ROOT_INO, &m, "root") == 0);
	sp_check_store_matches(v, os);
	sp_check_accounting(v);
	CHECK_OK(volume_close(v));

	/* ---- the background thread ---- */
	o.gc_grace_ms = CAIRN_GC_GRACE_NONE;
	o.gc_interval_ms = 20;
	REQUIRE_OK(volume_open(dir, &o, &v));
	/* the first compacted segment holds f12, f14, f16: it dies whole */
	CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "f12"));
	CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "f14"));
	CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "f16"));
	CHECK_OK(volume_sync(v));
	CHECK_OK(volume_space(v, &s0));
	CHECK(s0.reclaimable_bytes > 0);
	/* Liveness, not speed: wait (generously) until it has run. */
	int done = 0;
	for (int i = 0; i < 3000 && !done; i++) {
		usleep(10000);
		CHECK_OK(volume_space(v, &s1));
		done = s1.stored_bytes < s0.stored_bytes && s1.segments_dead == 0;
	}
	CHECK(done);
	sp_del(&m, sp_find(&m, "f12"));
	sp_del(&m, sp_find(&m, "f14"));
	sp_del(&m, sp_find(&m, "f16"));
	CHECK(sp_verify(v, CAIRN_ROOT_INO, &m, "root") == 0);
	CHECK_OK(volume_close(v));  /* stops the thread */
	REQUIRE_OK(volume_open(dir, &o, &v));
	CHECK(sp_verify(v, CAIRN_ROOT_INO, &m, "root") == 0);
	sp_check_accounting(v);

	/* ---- fsck sees a segment object lost or changed in the store ---- */
	{
		cairn_obj_list l;
		cairn_fsck_result fr;
		memset(&l, 0, sizeof l);
		REQUIRE_OK(objstore_list(os, prefix, NULL, 0, &l));
		REQUIRE(l.n >= 1);
		uint8_t *obj = malloc(l.v[0].size);
		uint64_t got = 0;
		REQUIRE(obj != NULL);
		CHECK_OK(objstore_get(os, l.v[0].key, 0, obj, l.v[0].size, &got));
		CHECK_OK(objstore_put_buf(os, l.v[0].key, obj, (size_t)got - 1));
		CHECK_OK(volume_fsck(v, 0, NULL, &fr));
		CHECK(fr.problems == 1);
		CHECK_OK(objstore_delete(os, l.v[0].key));
		CHECK_OK(volume_fsck(v, 0, NULL, &fr));
		CHECK(fr.problems == 1);
		CHECK_OK(objstore_put_buf(os, l.v[0].key, obj, (size_t)got));
		CHECK_OK(volume_fsck(v, 0, NULL, &fr));
		CHECK(fr.problems == 0);
		free(obj);
		objstore_list_free(&l);
	}
	CHECK_OK(volume_close(v));
	objstore_close(os);
	sp_model_free(&m);
	return t_done();
}
