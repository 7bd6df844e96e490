/*
 * test_ship_gc.c - gc and log shipping (docs/log-shipping.md "Garbage
 * collection", docs/space.md): a segment that died and is past its grace
 * is not deleted while the record of its death is not shipped (the
 * shipper's puts fail, by the fault wrapper), and is deleted once it is.
 * A replica from the store then names no deleted segment with chunks.
 * On file://, and on s3rver with argument "s3" (ship_gc_s3).
 */
#include "ship_t.h"
#include "t_store.h"

static uint64_t count(cairn_objstore *os, const char *prefix)
{
	sh_keys l;
	sh_list(os, prefix, &l);
	uint64_t n = l.n;
	sh_keys_free(&l);
	return n;
}

int main(int argc, char **argv)
{
	const char *base = t_tmpdir("ship_gc");
	char dir[600], work[600], uuid[37], segp[128], url[1024];
	t_store ts;
	int s3 = t_store_s3(&ts, argc, argv, "gc", url, sizeof url);
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_volume_stats st;
	cairn_objstore *os, *fs;
	cairn_obj_fault fault;
	cairn_gc_opts g;
	cairn_gc_result r;
	cairn_attr a;
	uint8_t dw[32], dr[32];
	uint64_t lw, lr;

	snprintf(dir, sizeof dir, "%s/vol", base);
	snprintf(work, sizeof work, "%s/replica", base);
	sh_format(dir, s3 ? url : NULL);
	if (!s3)
		snprintf(url, sizeof url, "file://%s/store", dir);
	REQUIRE_OK(objstore_open(url, NULL, &os));
	REQUIRE_OK(objstore_fault_wrap(os, &fs));
	sh_opts(&o);
	o.store = fs;
	o.gc_grace_ms = CAIRN_GC_GRACE_NONE;
	REQUIRE_OK(volume_open(dir, &o, &v));
	volume_uuid(v, uuid);
	snprintf(segp, sizeof segp, "v/%s/seg/", uuid);

	/* Files in their own segments, uploaded and shipped. */
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof name, "f%d", i);
		REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a));
		sh_write(v, a.ino, 600000, (uint64_t)i);
		CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	}
	REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, "keep", 0100644, 0, 0, &a));
	sh_write(v, a.ino, 5000, 99);
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	uint64_t nseg = count(os, segp);
	CHECK(nseg >= 3);

	/* The shipper's puts fail from now on; the files die. */
	memset(&fault, 0, sizeof fault);
	fault.kind = OBJ_FAULT_FAIL;
	fault.op_mask = 1 << OBJ_OP_PUT;
	fault.sticky = 1;
	fault.nth = 1;
	REQUIRE_OK(objstore_fault_arm(fs, &fault));
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof name, "f%d", i);
		CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, name));
	}
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_LOCAL));
	volume_gc_opts_init(&g);
	g.grace_ms = 0;
	g.compact_below = 0;
	CHECK_OK(volume_gc(v, &g, &r));
	fprintf(stderr, "blocked: marked %" PRIu64 ", deleted %" PRIu64 ", waiting %" PRIu64
		"\n", r.segments_marked_dead, r.segments_deleted, r.segments_waiting);
	CHECK(r.segments_marked_dead >= 3);
	CHECK(r.segments_deleted == 0);
	CHECK(r.segments_waiting >= 3);
	CHECK(count(os, segp) == nseg);
	CHECK(objstore_fault_count(fs) >= 1);   /* the shipper tried */
	volume_stats(v, &st);
	CHECK(st.ship_failures >= 1);
	/* Again: still blocked. */
	CHECK_OK(volume_gc(v, &g, &r));
	CHECK(r.segments_deleted == 0);
	CHECK(count(os, segp) == nseg);

	/* The store works again: the deaths ship, the objects go. */
	memset(&fault, 0, sizeof fault);
	REQUIRE_OK(objstore_fault_arm(fs, &fault));
	CHECK_OK(volume_gc(v, &g, &r));
	fprintf(stderr, "unblocked: deleted %" PRIu64 ", waiting %" PRIu64 "\n",
		r.segments_deleted, r.segments_waiting);
	CHECK(r.segments_deleted >= 3);
	CHECK(count(os, segp) <= nseg - 3);
	CHECK_OK(volume_ship_flush(v));
	CHECK_OK(volume_close(v));

	/* The store's log agrees with the writer. */
	sh_writer_digest(dir, dw, &lw);
	sh_replica(os, uuid, work, 0, dr, &lr);
	CHECK(lr == lw);
	CHECK(memcmp(dw, dr, 32) == 0);

	objstore_close(fs);
	objstore_close(os);
	t_store_stop(&ts);
	if (!t_failures_)
		t_rmtree(base);
	return t_done();
}
