/*
 * test_space_sweep_fault.c - a gc sweep whose object deletes fail keeps
 * the segment records (DELETING), so the next pass deletes the objects:
 * a record never goes before its object (docs/space.md, invariant 2 of
 * vol_gc.c).  Checked with orphan collection off, so only the records can
 * lead the next pass to the objects.
 *
 * Two failures: the whole delete request fails before reaching the store
 * (no per-key answers), and it fails after taking effect (answer lost).
 */
#include "space_t.h"

static void round_with(const char *dir, cairn_objstore *fs, cairn_objstore *os, int kind,
		       uint64_t seed)
{
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_gc_opts g;
	cairn_gc_result r;
	cairn_space sp;
	cairn_obj_fault fault;
	char prefix[128];
	sp_objs before, after;

	sp_opts(&o);
	o.store = fs;
	REQUIRE_OK(volume_open(dir, &o, &v));
	sp_prefix(v, prefix, sizeof prefix);
	sp_put_files(v, 12, 200 << 10, seed, NULL);
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	for (int i = 0; i < 12; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%d", i);
		CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, name));
	}
	CHECK_OK(volume_sync(v));
	CHECK_OK(sp_list(os, prefix, &before));
	CHECK(before.n >= 2);

	/* Every delete request fails. */
	memset(&fault, 0, sizeof fault);
	fault.kind = kind;
	fault.op_mask = 1 << OBJ_OP_DELETE_BATCH;
	fault.sticky = 1;
	fault.nth = 1;
	REQUIRE_OK(objstore_fault_arm(fs, &fault));
	volume_gc_opts_init(&g);
	g.grace_ms = 0;
	g.compact_below = 0;
	g.no_orphans = 1;
	CHECK(volume_gc(v, &g, &r) != 0);
	CHECK(objstore_fault_count(fs) >= 1);
	CHECK(r.segments_marked_dead >= 2);
	CHECK(r.segments_deleted == 0);
	/* The records are still there (DELETING). */
	CHECK_OK(volume_space(v, &sp));
	CHECK(sp.segments >= r.segments_marked_dead);

	/* The store works again: the next pass, orphans off, finds them by
	 * their records and deletes every object. */
	memset(&fault, 0, sizeof fault);
	REQUIRE_OK(objstore_fault_arm(fs, &fault));
	CHECK_OK(volume_gc(v, &g, &r));
	CHECK(r.segments_deleted >= 2);
	CHECK_OK(volume_space(v, &sp));
	CHECK_OK(sp_list(os, prefix, &after));
	CHECK(after.n == sp.segments);
	if (after.n != sp.segments)
		fprintf(stderr, "fault kind %d: %" PRIu64 " objects in the store, %" PRIu64
			" segment records: objects lost their records\n", kind, after.n,
			sp.segments);
	sp_check_accounting(v);
	CHECK_OK(volume_close(v));
}

int main(void)
{
	const char *tmp = t_tmpdir("space_sweep_fault");
	uint64_t seed = t_seed();
	char dir[700];
	cairn_objstore *inner, *fs, *os;

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	sp_format(dir);
	REQUIRE_OK(sp_store_open(dir, &inner));
	REQUIRE_OK(objstore_fault_wrap(inner, &fs));
	REQUIRE_OK(sp_store_open(dir, &os));
	round_with(dir, fs, os, OBJ_FAULT_FAIL, seed);
	round_with(dir, fs, os, OBJ_FAULT_FAIL_AFTER, seed + 100);
	objstore_close(os);
	objstore_close(fs);
	objstore_close(inner);
	return t_done();
}
