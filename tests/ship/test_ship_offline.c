/*
 * test_ship_offline.c - a store that does not answer at open
 * (docs/log-shipping.md "One writer"): the open succeeds without the
 * lease, nothing is shipped and gc deletes nothing (not even an orphan);
 * once the store answers, the lease is claimed in the background, the log
 * ships from a bootstrap image, and gc deletes again.
 */
#include "ship_t.h"

int main(void)
{
	const char *base = t_tmpdir("ship_offline");
	char dir[600], work[600], uuid[37], url[700], orphan[200], key[200];
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_volume_stats st;
	cairn_objstore *os, *fs;
	cairn_obj_fault fault;
	cairn_obj_info info;
	cairn_gc_opts g;
	cairn_gc_result r;
	cairn_attr a;
	uint8_t dw[32], dr[32];
	uint64_t lw, lr;

	snprintf(dir, sizeof dir, "%s/vol", base);
	snprintf(work, sizeof work, "%s/replica", base);
	sh_format(dir, NULL);
	snprintf(url, sizeof url, "file://%s/store", dir);
	REQUIRE_OK(objstore_open(url, NULL, &os));
	REQUIRE_OK(objstore_fault_wrap(os, &fs));
	memset(&fault, 0, sizeof fault);
	fault.kind = OBJ_FAULT_FAIL;
	fault.sticky = 1;
	fault.nth = 1;
	REQUIRE_OK(objstore_fault_arm(fs, &fault));

	sh_opts(&o);
	o.store = fs;
	o.upload_wait_ms = 300;
	REQUIRE_OK(volume_open(dir, &o, &v));
	volume_uuid(v, uuid);
	volume_stats(v, &st);
	CHECK(st.epoch == 1);
	CHECK(st.lease_epoch == 0);
	REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, "f", 0100644, 0, 0, &a));
	sh_write(v, a.ino, 20000, 1);
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_LOCAL));
	CHECK(volume_ship_flush(v) != 0);
	volume_stats(v, &st);
	CHECK(st.shipped_lsn == 0 && st.images == 0 && st.lease_epoch == 0);

	/* An orphan older than the grace: not deleted without the lease. */
	snprintf(orphan, sizeof orphan, "v/%s/seg/0000000000000001/00000000000000ff.p", uuid);
	REQUIRE_OK(objstore_put_buf(os, orphan, "x", 1));
	volume_gc_opts_init(&g);
	g.grace_ms = 0;
	CHECK_OK(volume_gc(v, &g, &r));
	CHECK(r.orphans_deleted == 0);
	CHECK_OK(objstore_head(os, orphan, &info));

	/* The store answers again. */
	memset(&fault, 0, sizeof fault);
	REQUIRE_OK(objstore_fault_arm(fs, &fault));
	CHECK_OK(volume_ship_flush(v));
	volume_stats(v, &st);
	CHECK(st.lease_epoch == 1);
	CHECK(st.images >= 1);
	CHECK(st.fenced == 0);
	snprintf(key, sizeof key, "v/%s/meta/lease/%016x", uuid, 1);
	CHECK_OK(objstore_head(os, key, &info));
	CHECK_OK(volume_gc(v, &g, &r));
	CHECK(r.orphans_deleted == 1);
	CHECK_RC(objstore_head(os, orphan, &info), CAIRN_E_NOTFOUND);
	sh_workload(v, 1, 4);
	CHECK_OK(volume_ship_flush(v));
	CHECK_OK(volume_close(v));

	sh_writer_digest(dir, dw, &lw);
	sh_replica(os, uuid, work, 0, dr, &lr);
	CHECK(lr == lw);
	CHECK(memcmp(dw, dr, 32) == 0);

	objstore_close(fs);
	objstore_close(os);
	if (!t_failures_)
		t_rmtree(base);
	return t_done();
}
