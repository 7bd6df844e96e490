/*
 * test_ship_lease.c - one writer (docs/log-shipping.md "One writer: the
 * lease and fencing").  A copy of a shipping volume's directory with
 * another instance id (a second writer on the same store) is refused with
 * CAIRN_E_BUSY naming the first writer's host, pid and epoch; with
 * takeover it opens at a higher epoch, and the first writer is fenced:
 * volume_ship_flush and volume_sync_durable(REMOTE) (what a checkpoint
 * publish waits for) return CAIRN_E_FENCED, gc deletes nothing, and the
 * store's log after the fence is exactly the second writer's.  A stale
 * directory (the store's log went past it) cannot open.  On file://, and
 * on s3rver with argument "s3" (ship_lease_s3: put-if-absent of the lease
 * and of the log objects by S3's If-None-Match).
 */
#include "ship_t.h"
#include "t_store.h"

/* A copy of src at dst whose volume.conf names another instance. */
static void copy_volume(const char *src, const char *dst)
{
	char cmd[2000], path[700];
	snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", src, dst);
	REQUIRE(system(cmd) == 0);
	snprintf(path, sizeof path, "%s/volume.conf", dst);
	FILE *fp = fopen(path, "r");
	REQUIRE(fp != NULL);
	char text[4096];
	size_t n = fread(text, 1, sizeof text - 1, fp);
	fclose(fp);
	text[n] = 0;
	char *p = strstr(text, "instance = ");
	REQUIRE(p != NULL);
	p += strlen("instance = ");
	p[0] = p[0] == 'a' ? 'b' : 'a';   /* another instance */
	fp = fopen(path, "w");
	REQUIRE(fp != NULL);
	REQUIRE(fwrite(text, 1, n, fp) == n);
	REQUIRE(fclose(fp) == 0);
}

typedef struct epochs {
	uint64_t fence;         /* objects with first > fence ... */
	uint64_t want;          /* ... must carry this epoch */
	uint64_t bad, objs;
} epochs;

int main(int argc, char **argv)
{
	const char *base = t_tmpdir("ship_lease");
	char url[1024];
	t_store ts;
	int s3 = t_store_s3(&ts, argc, argv, "lease", url, sizeof url);
	char a_dir[600], b_dir[600], c_dir[600], work[600], uuid[37], pfx[128], want[64];
	cairn_volume_opts o, ot;
	cairn_volume *a, *b, *c;
	cairn_volume_stats st;
	cairn_objstore *os;
	uint8_t dw[32], dr[32];
	uint64_t lw, lr;

	snprintf(a_dir, sizeof a_dir, "%s/a", base);
	snprintf(b_dir, sizeof b_dir, "%s/b", base);
	snprintf(c_dir, sizeof c_dir, "%s/c", base);
	snprintf(work, sizeof work, "%s/replica", base);
	sh_format(a_dir, s3 ? url : NULL);
	if (s3)
		REQUIRE_OK(objstore_open(url, NULL, &os));
	else
		sh_store_open(a_dir, &os);
	sh_opts(&o);
	o.lease_ttl_ms = 60000;   /* fresh for the whole test */

	REQUIRE_OK(volume_open(a_dir, &o, &a));
	volume_uuid(a, uuid);
	sh_workload(a, 1, 6);
	CHECK_OK(volume_ship_flush(a));
	volume_stats(a, &st);
	uint64_t a_epoch = st.epoch;
	/* b: a consistent copy of a's directory (a is idle, its metadata
	 * synced and shipped), c: an older copy for the stale check below. */
	copy_volume(a_dir, b_dir);
	copy_volume(a_dir, c_dir);

	/* A second writer is refused while a's lease is fresh. */
	CHECK_RC(volume_open(b_dir, &o, &b), CAIRN_E_BUSY);
	snprintf(want, sizeof want, "pid %ld", (long)getpid());
	CHECK_MSG(want);
	snprintf(want, sizeof want, "epoch %" PRIu64, a_epoch);
	CHECK_MSG(want);
	CHECK_MSG("--takeover");
	CHECK_MSG("host ");

	/* With takeover it opens above a's epoch; its fence record ships. */
	ot = o;
	ot.takeover = 1;
	REQUIRE_OK(volume_open(b_dir, &ot, &b));
	volume_stats(b, &st);
	CHECK(st.epoch > a_epoch);
	CHECK(st.lease_epoch == st.epoch);
	uint64_t b_epoch = st.epoch;
	CHECK_OK(volume_ship_flush(b));
	volume_stats(b, &st);
	uint64_t fence_lsn = st.shipped_lsn;

	/* a goes on locally and is fenced when it ships. */
	sh_workload(a, 2, 3);
	CHECK_RC(volume_ship_flush(a), CAIRN_E_FENCED);
	CHECK_MSG("another writer");
	CHECK_RC(volume_sync_durable(a, CAIRN_DUR_REMOTE), CAIRN_E_FENCED);
	volume_stats(a, &st);
	CHECK(st.fenced == 1);
	/* gc of a fenced writer deletes nothing. */
	cairn_gc_opts g;
	cairn_gc_result gr;
	volume_gc_opts_init(&g);
	g.grace_ms = 0;
	CHECK_OK(volume_gc(a, &g, &gr));
	CHECK(gr.segments_deleted == 0 && gr.orphans_deleted == 0);
	CHECK_OK(volume_close(a));

	/* b goes on; its log is the store's. */
	sh_workload(b, 3, 4);
	CHECK_OK(volume_ship_flush(b));
	CHECK_OK(volume_close(b));
	sh_writer_digest(b_dir, dw, &lw);
	sh_replica(os, uuid, work, 0, dr, &lr);
	CHECK(lr == lw);
	CHECK(memcmp(dw, dr, 32) == 0);
	/* Every object past the fence was written by b's epoch. */
	sh_keys l;
	snprintf(pfx, sizeof pfx, "v/%s/meta/wal/", uuid);
	sh_list(os, pfx, &l);
	uint64_t after = 0;
	for (size_t i = 0; i < l.n; i++) {
		size_t len;
		meta_logobj_hdr h;
		uint8_t *buf = sh_get(os, l.k[i], &len);
		CHECK_OK(meta_logobj_decode(buf, len, &h, NULL, NULL));
		if (h.last >= fence_lsn && h.first > 0) {
			if (h.last > fence_lsn || h.first >= fence_lsn) {
				CHECK(h.epoch == b_epoch);
				after++;
			}
		}
		free(buf);
	}
	CHECK(after >= 1);
	sh_keys_free(&l);

	/* a's directory is stale now: its log diverged from the store's. */
	CHECK_RC(volume_open(a_dir, &o, &a), CAIRN_E_FENCED);
	CHECK_MSG("stale");
	CHECK_MSG("cairn recover");
	/* c (an older copy, another instance) is behind the store: stale. */
	CHECK_RC(volume_open(c_dir, &ot, &c), CAIRN_E_FENCED);
	CHECK_MSG("stale");

	objstore_close(os);
	t_store_stop(&ts);
	if (!t_failures_)
		t_rmtree(base);
	return t_done();
}
