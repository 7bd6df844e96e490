/*
 * test_ship_rule.c - the data rule of log shipping (docs/log-shipping.md
 * "Shipping"): with uploads held back (opts.no_upload), records up to the
 * first one that puts a chunk in an un-uploaded segment are shipped, that
 * one and everything after it are not; once uploads resume (the next
 * open uploads the sealed segments), the whole log is shipped, and a
 * replica built from the store has no chunk in a segment that is not
 * UPLOADED in the replica, at every log object boundary.  Last, a
 * segment whose STAGING put was shipped in an earlier round than its
 * chunks and whose upload ends only after the next staging segment got a
 * chunk: no object ends between its chunks and its UPLOADED put.
 */
#include <time.h>

#include "ship_t.h"

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Wait (bounded, not a timing assertion) until the shipped LSN is at least
 * lsn; returns the shipped LSN. */
static uint64_t wait_shipped(cairn_volume *v, uint64_t lsn)
{
	cairn_volume_stats st;
	for (int i = 0; i < 2000; i++) {
		volume_stats(v, &st);
		if (st.shipped_lsn >= lsn)
			break;
		sleep_ms(10);
	}
	return st.shipped_lsn;
}

typedef struct segchk {
	uint64_t bad, segs, chunks;
} segchk;

static int seg_cb(const meta_seg *s, void *arg)
{
	segchk *c = arg;
	c->segs++;
	c->chunks += s->nchunks;
	if (s->nchunks && s->state != META_SEG_UPLOADED) {
		fprintf(stderr, "segment %" PRIu64 " state %u holds %" PRIu64 " chunks\n", s->id,
			s->state, s->nchunks);
		c->bad++;
	}
	return 0;
}

/* Apply the store's log object by object to a replica, checking the
 * segment states at every object boundary. */
static uint64_t check_prefixes(cairn_objstore *os, const char *uuid, const char *work,
			       uint64_t *chunks)
{
	char key[256], path[4096], rdir[4096], pfx[128];
	uint64_t imgs[64], bad = 0;
	size_t n = sh_images(os, uuid, imgs, 64), len;
	cairn_meta *m;
	meta_opts mo;
	meta_txn *t;
	sh_keys l;

	REQUIRE(n > 0);
	snprintf(key, sizeof key, "v/%s/meta/image/%016" PRIx64 ".mdb", uuid, imgs[0]);
	uint8_t *img = sh_get(os, key, &len);
	t_rmtree(work);
	REQUIRE(mkdir(work, 0755) == 0);
	snprintf(path, sizeof path, "%s/image.mdb", work);
	FILE *fp = fopen(path, "wb");
	REQUIRE(fp && fwrite(img, 1, len, fp) == len && fclose(fp) == 0);
	free(img);
	snprintf(rdir, sizeof rdir, "%s/rep", work);
	REQUIRE_OK(meta_image_install(path, rdir));
	meta_opts_init(&mo);
	mo.replica = 1;
	REQUIRE_OK(meta_open(rdir, &mo, &m));
	sh_apply a = { .m = m, .next = imgs[0] + 1 };
	snprintf(pfx, sizeof pfx, "v/%s/meta/wal/", uuid);
	sh_list(os, pfx, &l);
	for (size_t i = 0; i < l.n; i++) {
		meta_logobj_hdr h;
		uint8_t *buf = sh_get(os, l.k[i], &len);
		CHECK_OK(meta_logobj_decode(buf, len, &h, sh_apply_cb, &a));
		CHECK_OK(a.rc);
		free(buf);
		segchk c = { 0 };
		REQUIRE_OK(meta_read_begin(m, &t));
		CHECK_OK(meta_seg_list(t, 0, seg_cb, &c));
		meta_read_end(t);
		bad += c.bad;
		*chunks = c.chunks;
	}
	sh_keys_free(&l);
	REQUIRE_OK(meta_close(m));
	return bad;
}

/* The first record after lsn (in the writer's log) that puts a chunk. */
typedef struct first_chunk {
	uint64_t after, found;
} first_chunk;

static int fc_ref(uint64_t seg, uint32_t state, void *arg)
{
	(void)seg;
	(void)arg;
	return state == 0 ? 1 : 0;
}

static int fc_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	first_chunk *f = arg;
	if (lsn <= f->after)
		return 0;
	if (meta_wal_segrefs(rec, len, fc_ref, NULL) == 1) {
		f->found = lsn;
		return 1;
	}
	return 0;
}

int main(void)
{
	const char *base = t_tmpdir("ship_rule");
	char dir[600], work[600], uuid[37], path[700];
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_volume_stats st;
	cairn_objstore *os;
	cairn_attr a;
	uint8_t dw[32], dr[32];
	uint64_t lw, lr, chunks = 0;

	snprintf(dir, sizeof dir, "%s/vol", base);
	snprintf(work, sizeof work, "%s/replica", base);
	sh_format(dir, NULL);
	sh_store_open(dir, &os);
	sh_opts(&o);

	/* 1. A shipped volume with an image. */
	REQUIRE_OK(volume_open(dir, &o, &v));
	volume_uuid(v, uuid);
	sh_workload(v, 1, 6);
	CHECK_OK(volume_ship_flush(v));
	CHECK_OK(volume_close(v));

	/* 2. Uploads held back: metadata-only records ship, the first
	 * record with a chunk in a new segment does not. */
	o.no_upload = 1;
	o.upload_wait_ms = 200;
	REQUIRE_OK(volume_open(dir, &o, &v));
	CHECK_OK(volume_mkdir(v, CAIRN_ROOT_INO, "m1", 040755, 0, 0, &a));
	CHECK_OK(volume_mkdir(v, CAIRN_ROOT_INO, "m2", 040755, 0, 0, &a));
	volume_stats(v, &st);
	uint64_t before_data = st.last_lsn;
	CHECK(wait_shipped(v, before_data) >= before_data);
	REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, "data", 0100644, 0, 0, &a));
	sh_write(v, a.ino, 300000, 77);
	CHECK_OK(volume_sync_durable(v, CAIRN_DUR_LOCAL));
	CHECK_OK(volume_mkdir(v, CAIRN_ROOT_INO, "m3", 040755, 0, 0, &a));
	volume_stats(v, &st);
	uint64_t after_data = st.last_lsn;
	/* A flush cannot finish: the segment is never uploaded. */
	CHECK(volume_ship_flush(v) != 0);
	for (int i = 0; i < 20; i++)
		sleep_ms(20);   /* rounds go by */
	volume_stats(v, &st);
	uint64_t held = st.shipped_lsn;
	CHECK(held >= before_data);
	CHECK(held < after_data);
	CHECK(st.fenced == 0);
	fprintf(stderr, "before data %" PRIu64 ", after %" PRIu64 ", shipped %" PRIu64 "\n",
		before_data, after_data, held);
	CHECK(check_prefixes(os, uuid, work, &chunks) == 0);
	CHECK_OK(volume_close(v));

	/* Where the first chunk record is, in the writer's own log. */
	{
		cairn_meta *m;
		first_chunk fc = { .after = before_data };
		snprintf(path, sizeof path, "%s/meta", dir);
		REQUIRE_OK(meta_open(path, NULL, &m));
		CHECK_OK(meta_wal_read(m, before_data + 1, fc_cb, &fc));
		REQUIRE_OK(meta_close(m));
		CHECK(fc.found > before_data);
		CHECK(held < fc.found);
		fprintf(stderr, "first chunk record %" PRIu64 "\n", fc.found);
	}

	/* 3. Uploads resume: recovery uploads the sealed segment, the log
	 * ships on, and every prefix keeps the rule. */
	o.no_upload = 0;
	o.upload_wait_ms = 20000;
	REQUIRE_OK(volume_open(dir, &o, &v));
	CHECK_OK(volume_ship_flush(v));
	volume_stats(v, &st);
	CHECK(st.shipped_lsn >= after_data);
	CHECK_OK(volume_close(v));
	CHECK(check_prefixes(os, uuid, work, &chunks) == 0);
	CHECK(chunks > 0);
	sh_writer_digest(dir, dw, &lw);
	sh_replica(os, uuid, work, 0, dr, &lr);
	CHECK(lr == lw);
	CHECK(memcmp(dw, dr, 32) == 0);

	/* 4. A segment whose STAGING put was shipped in an earlier round
	 * than its chunks, uploaded (UPLOADED put) only after a chunk of the
	 * next staging segment was committed; the round after it stops at
	 * that chunk (its segment is not uploaded).  The object must not end
	 * between the first segment's chunks and its UPLOADED put, although
	 * that segment is no longer in the not-uploaded set when the round
	 * begins. */
	{
		cairn_objstore *fs;
		cairn_obj_fault fault;
		uint64_t sealed, uploaded, prev;

		REQUIRE_OK(objstore_fault_wrap(os, &fs));
		sh_opts(&o);
		o.store = fs;
		o.seal_age_ms = 600000;
		o.commit_interval_ms = 600000;
		o.pending_max = 64 << 20;
		REQUIRE_OK(volume_open(dir, &o, &v));
		volume_stats(v, &st);
		CHECK(wait_shipped(v, st.last_lsn) >= st.last_lsn);
		/* S: created and its chunk committed; the rounds ship its
		 * STAGING put and stop at the chunk */
		REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, "s1", 0100644, 0, 0, &a));
		sh_write(v, a.ino, 10000, 41);
		CHECK_OK(volume_sync_durable(v, CAIRN_DUR_LOCAL));
		volume_stats(v, &st);
		prev = st.shipped_lsn;
		for (int i = 0, still = 0; i < 400 && still < 15; i++) {
			sleep_ms(20);
			volume_stats(v, &st);
			still = st.shipped_lsn == prev ? still + 1 : 0;
			prev = st.shipped_lsn;
		}
		sealed = st.segments_sealed;
		uploaded = st.segments_uploaded;
		/* uploads hang; a file of a segment's size fills S, which is
		 * sealed on the way (its upload hangs), and goes on in S2 */
		memset(&fault, 0, sizeof fault);
		fault.kind = OBJ_FAULT_HANG;
		fault.op_mask = 1 << OBJ_OP_PUT | 1 << OBJ_OP_MPU_PART | 1 << OBJ_OP_MPU_CREATE |
				1 << OBJ_OP_MPU_COMPLETE;
		fault.sticky = 1;
		fault.nth = 1;
		fault.hang_ms = 60000;
		REQUIRE_OK(objstore_fault_arm(fs, &fault));
		REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, "s2", 0100644, 0, 0, &a));
		sh_write(v, a.ino, 1000000, 42);
		REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, "s3", 0100644, 0, 0, &a));
		sh_write(v, a.ino, 100000, 43);
		CHECK_OK(volume_sync_durable(v, CAIRN_DUR_LOCAL));
		volume_stats(v, &st);
		fprintf(stderr, "phase 4: sealed %" PRIu64 " -> %" PRIu64 ", queue %" PRIu64 "\n",
			sealed, st.segments_sealed, st.upload_queue);
		CHECK(st.segments_sealed == sealed + 1);
		/* S2: a chunk in the next staging segment (never sealed here) */
		REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, "s4", 0100644, 0, 0, &a));
		sh_write(v, a.ino, 10000, 44);
		CHECK_OK(volume_sync_durable(v, CAIRN_DUR_LOCAL));
		/* S is uploaded (after S2's chunks were committed) */
		memset(&fault, 0, sizeof fault);
		REQUIRE_OK(objstore_fault_arm(fs, &fault));
		objstore_fault_release(fs);
		for (int i = 0; i < 2000; i++) {
			volume_stats(v, &st);
			if (st.segments_uploaded > uploaded)
				break;
			sleep_ms(10);
		}
		CHECK(st.segments_uploaded > uploaded);
		/* rounds go by; a shipper with the bug ships past prev */
		for (int i = 0; i < 100; i++) {
			volume_stats(v, &st);
			if (st.shipped_lsn > prev)
				break;
			sleep_ms(20);
		}
		fprintf(stderr, "phase 4: shipped %" PRIu64 " before, %" PRIu64 " after S's "
			"upload (last %" PRIu64 ")\n", prev, st.shipped_lsn, st.last_lsn);
		CHECK(st.fenced == 0);
		CHECK(check_prefixes(os, uuid, work, &chunks) == 0);
		CHECK_OK(volume_ship_flush(v));
		CHECK_OK(volume_close(v));
		CHECK(check_prefixes(os, uuid, work, &chunks) == 0);
		sh_writer_digest(dir, dw, &lw);
		sh_replica(os, uuid, work, 0, dr, &lr);
		CHECK(lr == lw);
		CHECK(memcmp(dw, dr, 32) == 0);
		objstore_close(fs);
	}

	objstore_close(os);
	if (!t_failures_)
		t_rmtree(base);
	return t_done();
}
