/*
 * test_ship_offline.c - a store that does not answer at open
 * (docs/log-shipping.md "One writer"): the open succeeds without the
 * lease, nothing is shipped and gc deletes nothing (not even an orphan);
 * once the store answers, the lease is claimed in the background, the log
 * ships from a bootstrap image, and gc deletes again.  Last, a copy of the
 * directory goes on at the epoch the original takes when it opens without
 * the store: the original uploads nothing under it (the copy's segments
 * stay intact) and is stale once the store answers.
 */
#include <time.h>

#include "ship_t.h"
#include "t_store.h"

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

	/* A copy of the directory (b) goes on while this one (a) is away:
	 * b's epoch is a's volume.conf epoch + 1, the very epoch a takes when
	 * it opens without an answer from the store.  a must not upload
	 * under that epoch (it would replace b's segments, which b's log
	 * names) before it holds the lease: it never does, it is stale. */
	{
		char bdir[700], cmd[1600], segp[200];
		uint64_t eb, ua;
		size_t nb, blen;
		snprintf(bdir, sizeof bdir, "%s/copy", base);
		snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", dir, bdir);
		REQUIRE(system(cmd) == 0);
		sh_opts(&o);
		o.store = os;
		REQUIRE_OK(volume_open(bdir, &o, &v));
		volume_stats(v, &st);
		eb = st.epoch;
		CHECK(st.lease_epoch == eb);
		REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, "b", 0100644, 0, 0, &a));
		sh_write(v, a.ino, 20000, 7);
		CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
		CHECK_OK(volume_close(v));
		snprintf(segp, sizeof segp, "v/%s/seg/%016" PRIx64 "/", uuid, eb);
		char **bk = t_store_keys(os, segp, &nb);
		REQUIRE(nb >= 1);
		uint8_t *bobj = t_store_get(os, bk[0], &blen);

		/* a: listing fails (no lease, no check), everything else works */
		memset(&fault, 0, sizeof fault);
		fault.kind = OBJ_FAULT_FAIL;
		fault.op_mask = 1 << OBJ_OP_LIST;
		fault.sticky = 1;
		fault.nth = 1;
		REQUIRE_OK(objstore_fault_arm(fs, &fault));
		sh_opts(&o);
		o.store = fs;
		o.upload_wait_ms = 300;
		REQUIRE_OK(volume_open(dir, &o, &v));
		volume_stats(v, &st);
		CHECK(st.epoch == eb);
		CHECK(st.lease_epoch == 0);
		ua = st.segments_uploaded;
		REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, "a2", 0100644, 0, 0, &a));
		sh_write(v, a.ino, 20000, 8);
		CHECK_OK(volume_sync_durable(v, CAIRN_DUR_LOCAL));
		CHECK(volume_ship_flush(v) != 0);   /* seals; cannot ship */
		for (int i = 0; i < 50; i++) {
			struct timespec d = { 0, 20 * 1000000 };
			nanosleep(&d, NULL);
			volume_stats(v, &st);
			if (st.segments_uploaded > ua)
				break;
		}
		CHECK(st.segments_uploaded == ua);
		/* the store answers: a is stale and still uploads nothing */
		memset(&fault, 0, sizeof fault);
		REQUIRE_OK(objstore_fault_arm(fs, &fault));
		CHECK_RC(volume_ship_flush(v), CAIRN_E_FENCED);
		volume_stats(v, &st);
		CHECK(st.fenced == 1);
		CHECK(st.segments_uploaded == ua);
		CHECK_OK(volume_close(v));
		size_t len2;
		uint8_t *now = t_store_get(os, bk[0], &len2);
		CHECK(len2 == blen && memcmp(now, bobj, blen) == 0);
		free(now);
		free(bobj);
		t_store_keys_free(bk, nb);
	}

	objstore_close(fs);
	objstore_close(os);
	if (!t_failures_)
		t_rmtree(base);
	return t_done();
}
