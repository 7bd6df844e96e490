/*
 * test_recover_basic.c - a volume rebuilt from its store alone
 * (volume_recover_store, docs/log-shipping.md "Recovery"): a workload of
 * checkpoint-like trees with snapshots, many small files, renames,
 * overwrites, deletes, a deleted snapshot and a large streamed file;
 * volume_ship_flush; close; the volume directory removed (the store kept);
 * recovered into a new directory.  Every file must be byte for byte the
 * model's, the snapshots present (the deleted one absent), fsck clean, and
 * the volume must open as a writer and take writes.
 *
 * Built twice: on file:// (recover_basic) and, with RT_S3, on s3rver
 * (recover_basic_s3; skipped when the server is not installed).
 */
#include "recover_t.h"
#ifdef RT_S3
#include "s3_harness.h"
#endif

static void checkpoint(cairn_volume *v, rt_model *m, int step, uint64_t *seed)
{
	char path[RT_PATH_MAX];
	for (int r = 0; r < 4; r++) {
		snprintf(path, sizeof path, "ckpt/step%d/rank%d.pt", step, r);
		uint64_t size = (256u << 10) + t_rand(seed) % (768u << 10);
		uint64_t s = t_rand(seed);
		rt_write(v, path, size, s);
		rt_set(m, path, size, s);
	}
	snprintf(path, sizeof path, "ckpt/step%d/meta.json", step);
	rt_write(v, path, 300, step);
	rt_set(m, path, 300, step);
}

static void snap(cairn_volume *v, const char *dir, const char *name)
{
	uint64_t ino;
	char leaf[256];
	REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, dir, 0, 0, &ino, leaf));
	REQUIRE_OK(volume_snapshot_create(v, ino, name, NULL));
}

static void check_snap(cairn_volume *v, const rt_model *m, const char *prefix, const char *name)
{
	cairn_snap s;
	rt_model sub;
	CHECK_OK(volume_snapshot_get(v, name, &s));
	rt_subtree(m, prefix, &sub);
	CHECK(rt_check_tree(v, s.root, &sub, name) == 0);
	rt_free(&sub);
}

int main(void)
{
	const char *tmp = t_tmpdir(
#ifdef RT_S3
		"recover_basic_s3"
#else
		"recover_basic"
#endif
	);
	char vol[600], rec[600], url[700];
	cairn_format_opts fo = { 0 };
	cairn_volume_opts vo;
	cairn_volume *v;
	rt_model m = { 0 }, snap1 = { 0 }, snapd = { 0 };
	uint64_t seed = t_seed();
	char path[RT_PATH_MAX];

#ifdef RT_S3
	s3h h;
	if (!s3h_installed())
		t_skip("s3rver is not installed (tests/s3/server/install.sh)");
	memset(&h, 0, sizeof h);
	s3h_start(&h, 0);
	s3h_env(&h, h.port);
	snprintf(url, sizeof url, "s3://" S3H_BUCKET "/recover%d", (int)getpid());
#else
	snprintf(url, sizeof url, "file://%s/store", tmp);
#endif
	snprintf(vol, sizeof vol, "%s/vol", tmp);
	snprintf(rec, sizeof rec, "%s/recovered", tmp);
	fo.store_url = url;
	REQUIRE_OK(volume_format(vol, &fo));
	memset(&vo, 0, sizeof vo);
	vo.stream_threshold = 4u << 20;   /* the large file streams */
	vo.stream_part_size = 5u << 20;
	vo.stream_chunk_avg = 1u << 20;
	vo.segment_size = 1u << 20;       /* many packed segments */
	vo.ship_interval_ms = 200;
	REQUIRE_OK(volume_open(vol, &vo, &v));

	/* a checkpoint, published as a snapshot */
	checkpoint(v, &m, 1, &seed);
	snap(v, "ckpt/step1", "ckpt-1");
	rt_subtree(&m, "ckpt/step1/", &snap1);
	/* many small files */
	int nsmall = (int)t_scaled(300);
	for (int i = 0; i < nsmall; i++) {
		snprintf(path, sizeof path, "data/d%02d/f%04d", i % 17, i);
		uint64_t size = 1 + t_rand(&seed) % (48u << 10), s = t_rand(&seed);
		rt_write(v, path, size, s);
		rt_set(&m, path, size, s);
		if (i % 97 == 0)
			CHECK_OK(volume_ship_flush(v));  /* several log objects */
	}
	/* renames, overwrites, deletes */
	for (int i = 0; i < nsmall; i += 7) {
		char src[RT_PATH_MAX], dst[RT_PATH_MAX], leaf[256];
		uint64_t sd, dd;
		snprintf(src, sizeof src, "data/d%02d/f%04d", i % 17, i);
		snprintf(dst, sizeof dst, "data/renamed/r%04d", i);
		rt_file *f = rt_find(&m, src);
		REQUIRE(f != NULL);
		uint64_t size = f->size, s = f->seed;
		REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, src, 0, 1, &sd, leaf));
		char sleaf[256];
		snprintf(sleaf, sizeof sleaf, "%s", leaf);
		REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, dst, 1, 1, &dd, leaf));
		REQUIRE_OK(volume_rename(v, sd, sleaf, dd, leaf, 0));
		rt_del(&m, src);
		rt_set(&m, dst, size, s);
	}
	for (int i = 3; i < nsmall; i += 11) {
		snprintf(path, sizeof path, "data/d%02d/f%04d", i % 17, i);
		if (!rt_find(&m, path))
			continue;
		if (i % 2) {
			uint64_t size = t_rand(&seed) % (20u << 10), s = t_rand(&seed);
			rt_write(v, path, size, s);
			rt_set(&m, path, size, s);
		} else {
			uint64_t d;
			char leaf[256];
			REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, path, 0, 1, &d, leaf));
			REQUIRE_OK(volume_unlink(v, d, leaf));
			rt_del(&m, path);
		}
	}
	snap(v, "data", "data-snap");
	rt_subtree(&m, "data/", &snapd);
	/* a large file, streamed (stream segments, multipart) */
	uint64_t big = (uint64_t)t_scaled(14) << 20, bigseed = t_rand(&seed);
	rt_write(v, "big/blob.bin", big, bigseed);
	rt_set(&m, "big/blob.bin", big, bigseed);
	/* a second checkpoint; the first snapshot is deleted, the files of
	 * the first checkpoint stay in the live tree */
	checkpoint(v, &m, 2, &seed);
	snap(v, "ckpt/step2", "ckpt-2");
	REQUIRE_OK(volume_snapshot_delete(v, "ckpt-1"));
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	REQUIRE_OK(volume_ship_flush(v));
	char uuid[37];
	volume_uuid(v, uuid);
	CHECK(rt_check_tree(v, CAIRN_ROOT_INO, &m, "writer") == 0);
	REQUIRE_OK(volume_close(v));
	t_rmtree(vol);

	/* rebuild from the store alone */
	cairn_recover_opts ro = { .store_url = url };
	cairn_recover_result rr;
	REQUIRE_OK(volume_recover_store(rec, &ro, &rr));
	printf("recovered %s to LSN %llu from image %llu + %llu objects (%llu records), "
	       "epoch %llu\n", rr.uuid, (unsigned long long)rr.lsn,
	       (unsigned long long)rr.image_lsn, (unsigned long long)rr.log_objects,
	       (unsigned long long)rr.records, (unsigned long long)rr.epoch);
	CHECK(strcmp(rr.uuid, uuid) == 0);
	CHECK(rr.lsn >= rr.image_lsn && rr.lsn > 0);
	CHECK(rr.fsck_problems == 0);
	CHECK(rr.time_ns > 0);
	/* a second recovery into the same directory is refused */
	cairn_recover_result rr2;
	CHECK_RC(volume_recover_store(rec, &ro, &rr2), CAIRN_E_EXISTS);

	memset(&vo, 0, sizeof vo);
	REQUIRE_OK(volume_open(rec, &vo, &v));
	char uuid2[37];
	volume_uuid(v, uuid2);
	CHECK(strcmp(uuid, uuid2) == 0);
	CHECK(rt_check_tree(v, CAIRN_ROOT_INO, &m, "recovered") == 0);
	check_snap(v, &m, "ckpt/step2/", "ckpt-2");
	{
		cairn_snap s;
		CHECK_OK(volume_snapshot_get(v, "data-snap", &s));
		CHECK(rt_check_tree(v, s.root, &snapd, "data-snap") == 0);
		CHECK_RC(volume_snapshot_get(v, "ckpt-1", &s), CAIRN_E_NOTFOUND);
	}
	CHECK(rt_fsck(v) == 0);
	/* writable: a new file, committed and shipped by the new writer */
	rt_write(v, "after/recovery.txt", 5000, 77);
	rt_set(&m, "after/recovery.txt", 5000, 77);
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	CHECK_OK(volume_ship_flush(v));
	cairn_volume_stats st;
	volume_stats(v, &st);
	printf("epoch after recovery: %llu (conf said %llu)\n", (unsigned long long)st.epoch,
	       (unsigned long long)rr.epoch);
	CHECK(st.epoch > rr.epoch);
	CHECK(st.follower == 0);
	CHECK(rt_check_tree(v, CAIRN_ROOT_INO, &m, "after") == 0);
	REQUIRE_OK(volume_close(v));

	rt_free(&m);
	rt_free(&snap1);
	rt_free(&snapd);
#ifdef RT_S3
	s3h_stop(&h);
#endif
	if (!getenv("CAIRN_TEST_KEEP"))
		t_rmtree(tmp);
	return t_done();
}
