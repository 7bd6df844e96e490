/*
 * test_space_snapshot.c - a snapshot taken before a delete keeps the data
 * through gc (read back from the store after the caches are dropped);
 * deleting the snapshot lets gc reclaim it: its objects leave the store
 * and the stored bytes drop.  volume_tree_usage follows: the snapshot's
 * bytes are shared while the live files exist, unique once they are gone,
 * and a clone shares everything with its source.
 */
#include "space_t.h"

static uint64_t mkfile(cairn_volume *v, uint64_t dir, const char *name, size_t len,
		       uint64_t seed, sp_model *m)
{
	cairn_attr a;
	cairn_file *f;
	sp_file *mf = sp_add(m, name);
	sp_reserve(mf, len);
	t_fill(mf->data, len, seed);
	mf->size = len;
	REQUIRE_OK(volume_create(v, dir, name, 0100644, 0, 0, &a));
	REQUIRE_OK(volume_file_open(v, a.ino, &f));
	for (size_t off = 0; off < len; off += 100000) {
		size_t n = len - off < 100000 ? len - off : 100000;
		CHECK_OK(volume_file_write(f, mf->data + off, n, off));
	}
	CHECK_OK(volume_file_close(f));
	return a.ino;
}

int main(void)
{
	const char *dir = t_tmpdir("space_snapshot");
	uint64_t seed = t_seed();
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_objstore *os;
	cairn_gc_opts g;
	cairn_gc_result res;
	cairn_space sp0, sp1, sp2;
	cairn_tree_usage tu;
	cairn_snap sn;
	cairn_attr a;
	sp_model m = { 0 }, empty = { 0 };
	char prefix[128];
	sp_objs ob0, ob1, ob2;

	sp_format(dir);
	sp_opts(&o);
	REQUIRE_OK(volume_open(dir, &o, &v));
	REQUIRE_OK(sp_store_open(dir, &os));
	sp_prefix(v, prefix, sizeof prefix);
	sp_gc_opts(&g);

	/* /d holds three files (one a stream); /keep stays throughout. */
	REQUIRE_OK(volume_mkdir(v, CAIRN_ROOT_INO, "d", 040755, 0, 0, &a));
	uint64_t d = a.ino;
	mkfile(v, d, "a", 700000, seed, &m);
	mkfile(v, d, "b", 3 * SP_MIB / 2, seed + 1, &m);
	mkfile(v, d, "c", 5000, seed + 2, &m);
	sp_model keep = { 0 };
	uint64_t keep_ino = mkfile(v, CAIRN_ROOT_INO, "keep", 300000, seed + 3, &keep);
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));

	/* Shared with the live tree: nothing unique to the snapshot. */
	CHECK_OK(volume_snapshot_create(v, d, "before", &sn));
	CHECK_OK(volume_tree_usage(v, sn.root, &tu));
	CHECK(tu.files == 3 && tu.dirs == 1);
	CHECK(tu.logical_bytes == 700000 + 3 * SP_MIB / 2 + 5000);
	CHECK(tu.stored_bytes > 0);
	CHECK(tu.unique_bytes == 0);
	cairn_tree_usage tl;
	CHECK_OK(volume_tree_usage(v, d, &tl));
	CHECK(tl.stored_bytes == tu.stored_bytes && tl.unique_bytes == 0);
	/* A clone shares everything with its source... */
	CHECK_OK(volume_clone(v, d, CAIRN_ROOT_INO, "dclone", &a));
	uint64_t dclone = a.ino;
	CHECK_OK(volume_tree_usage(v, dclone, &tl));
	CHECK(tl.files == 3 && tl.unique_bytes == 0 && tl.stored_bytes == tu.stored_bytes);
	/* ... and a cloned file written over owns its new bytes */
	cairn_attr ca;
	CHECK_OK(volume_clone(v, keep_ino, CAIRN_ROOT_INO, "kclone", &ca));
	{
		uint8_t buf[4096];
		cairn_file *f;
		t_fill(buf, sizeof buf, seed + 9);
		CHECK_OK(volume_file_open(v, ca.ino, &f));
		CHECK_OK(volume_file_write(f, buf, sizeof buf, 0));
		CHECK_OK(volume_file_close(f));
		CHECK_OK(volume_sync(v));
		CHECK_OK(volume_tree_usage(v, ca.ino, &tl));
		CHECK(tl.files == 1 && tl.unique_bytes > 0 && tl.unique_bytes < tl.stored_bytes);
		CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "kclone"));
	}
	/* a hard link out of the tree makes its file shared */
	CHECK_OK(volume_lookup(v, d, "c", &a));
	CHECK_OK(volume_link(v, a.ino, CAIRN_ROOT_INO, "c-link", &a));
	CHECK_OK(volume_unlink(v, d, "c"));
	CHECK_OK(volume_tree_usage(v, CAIRN_ROOT_INO, &tl));
	cairn_tree_usage tlink;
	CHECK_OK(volume_tree_usage(v, a.ino, &tlink));
	CHECK(tlink.files == 1 && tlink.logical_bytes == 5000);
	CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "c-link"));

	/* Delete the live files: the snapshot alone holds their data. */
	CHECK_OK(volume_unlink(v, d, "a"));
	CHECK_OK(volume_unlink(v, d, "b"));
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	CHECK_OK(volume_gc(v, &g, &res));
	CHECK_OK(volume_drop_cache(v));
	CHECK(sp_verify(v, sn.root, &m, "before") == 0);
	CHECK(sp_verify(v, d, &empty, "d") == 0);
	CHECK(sp_verify(v, CAIRN_ROOT_INO, &keep, "root") == 0);
	sp_check_accounting(v);
	sp_check_store_matches(v, os);

	/* The clone of d holds its data too: remove it, so that the
	 * snapshot is the last holder. */
	CHECK(sp_verify(v, dclone, &m, "dclone") == 0);
	CHECK_OK(volume_tree_usage(v, sn.root, &tu));
	CHECK(tu.unique_bytes == 0);
	CHECK_OK(volume_unlink(v, dclone, "a"));
	CHECK_OK(volume_unlink(v, dclone, "b"));
	CHECK_OK(volume_unlink(v, dclone, "c"));
	CHECK_OK(volume_rmdir(v, CAIRN_ROOT_INO, "dclone"));
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	CHECK_OK(volume_gc(v, &g, &res));
	CHECK_OK(volume_tree_usage(v, sn.root, &tu));
	CHECK(tu.unique_bytes > 0 && tu.unique_bytes == tu.stored_bytes);
	CHECK_OK(volume_space(v, &sp0));
	CHECK_OK(sp_list(os, prefix, &ob0));
	CHECK_OK(volume_drop_cache(v));
	CHECK(sp_verify(v, sn.root, &m, "before") == 0);
	sp_check_accounting(v);

	/* Snapshot deleted: gc reclaims what it alone held. */
	CHECK_OK(volume_snapshot_delete(v, "before"));
	CHECK_OK(volume_space(v, &sp1));
	CHECK(sp1.live_bytes + tu.unique_bytes == sp0.live_bytes);
	CHECK_OK(volume_gc(v, &g, &res));
	CHECK(res.segments_deleted > 0 || res.segments_compacted > 0);
	CHECK_OK(volume_gc(v, &g, &res));  /* what compaction left dies now */
	CHECK_OK(volume_space(v, &sp2));
	CHECK_OK(sp_list(os, prefix, &ob1));
	CHECK(sp2.stored_bytes < sp0.stored_bytes);
	CHECK(sp0.stored_bytes - sp2.stored_bytes >= tu.unique_bytes);
	CHECK(ob1.bytes < ob0.bytes);
	CHECK(sp2.live_bytes == sp1.live_bytes);
	CHECK(sp2.live_fraction > 0.5);
	sp_check_store_matches(v, os);
	sp_check_accounting(v);
	CHECK_OK(volume_drop_cache(v));
	CHECK(sp_verify(v, CAIRN_ROOT_INO, &keep, "root") == 0);

	/* Everything gone: the store is empty. */
	CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "keep"));
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	CHECK_OK(volume_gc(v, &g, &res));
	CHECK_OK(sp_list(os, prefix, &ob2));
	CHECK(ob2.n == 0);
	CHECK_OK(volume_space(v, &sp2));
	CHECK(sp2.live_bytes == 0 && sp2.stored_bytes == 0 && sp2.segments == 0);
	sp_check_accounting(v);
	CHECK_OK(volume_close(v));
	objstore_close(os);
	sp_model_free(&m);
	sp_model_free(&keep);
	return t_done();
}
