/*
 * test_ship_basic.c - log shipping end to end (docs/log-shipping.md): a
 * workload (creates, writes, renames, snapshots, clones, deletes), then
 * volume_ship_flush; the store holds meta/volume, a lease, log objects and
 * the bootstrap image; a replica built from the bootstrap image and every
 * record of every log object has the writer's digest.  A reopen ships on
 * (the fence record) and the replica follows.  On file://, and on s3rver
 * with argument "s3" (skipped when s3rver is not installed).
 */
#include "ship_t.h"
#ifdef CAIRN_S3_SERVER_DIR
#include "s3_harness.h"
#endif

static void run(const char *base, const char *url, cairn_objstore *os)
{
	char dir[600], work[600], uuid[37], pfx[128];
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_volume_stats st;
	uint8_t dw[32], dr[32];
	uint64_t lw, lr, imgs[64];
	sh_keys l;

	snprintf(dir, sizeof dir, "%s/vol", base);
	snprintf(work, sizeof work, "%s/replica", base);
	sh_format(dir, url);
	sh_opts(&o);
	REQUIRE_OK(volume_open(dir, &o, &v));
	volume_uuid(v, uuid);
	volume_stats(v, &st);
	CHECK(st.lease_epoch == st.epoch && st.epoch == 1);
	sh_workload(v, 1, 12);
	volume_stats(v, &st);
	uint64_t target = st.last_lsn;
	CHECK_OK(volume_ship_flush(v));
	volume_stats(v, &st);
	CHECK(st.shipped_lsn >= target);
	CHECK(st.images >= 1);
	CHECK(st.fenced == 0);
	fprintf(stderr, "shipped %" PRIu64 " of %" PRIu64 ", %" PRIu64 " objects, %" PRIu64
		" bytes, image at %" PRIu64 "\n", st.shipped_lsn, st.last_lsn, st.ship_objects,
		st.ship_bytes, st.image_lsn);
	/* What the store holds (the log may start after this work: the
	 * bootstrap image may hold all of it). */
	snprintf(pfx, sizeof pfx, "v/%s/meta/lease/", uuid);
	sh_list(os, pfx, &l);
	CHECK(l.n == 1);
	sh_keys_free(&l);
	snprintf(pfx, sizeof pfx, "v/%s/meta/volume", uuid);
	sh_list(os, pfx, &l);
	CHECK(l.n == 1);
	sh_keys_free(&l);
	size_t ni = sh_images(os, uuid, imgs, 64);
	CHECK(ni == 1);
	/* More work after the image, then close: everything uploaded is
	 * shipped by the last round. */
	sh_workload(v, 2, 9);
	volume_stats(v, &st);
	target = st.last_lsn;
	CHECK_OK(volume_ship_flush(v));
	snprintf(pfx, sizeof pfx, "v/%s/meta/wal/", uuid);
	sh_list(os, pfx, &l);
	CHECK(l.n >= 1);
	sh_keys_free(&l);
	volume_stats(v, &st);
	CHECK(st.ship_objects >= 1 && st.ship_bytes > 0);
	CHECK(st.shipped_lsn >= target);
	CHECK_OK(volume_close(v));
	sh_writer_digest(dir, dw, &lw);
	sh_replica(os, uuid, work, imgs[0], dr, &lr);
	CHECK(lr == lw);
	CHECK(memcmp(dw, dr, 32) == 0);
	fprintf(stderr, "writer last LSN %" PRIu64 ", replica %" PRIu64 "\n", lw, lr);

	/* A reopen: the fence record of the new epoch is shipped at once;
	 * still one continuous log from the bootstrap image. */
	REQUIRE_OK(volume_open(dir, &o, &v));
	volume_stats(v, &st);
	CHECK(st.epoch == 2 && st.lease_epoch == 2);
	sh_workload(v, 3, 5);
	CHECK_OK(volume_ship_flush(v));
	CHECK_OK(volume_close(v));
	sh_writer_digest(dir, dw, &lw);
	sh_replica(os, uuid, work, imgs[0], dr, &lr);
	CHECK(lr == lw);
	CHECK(memcmp(dw, dr, 32) == 0);
	/* A released lease is not fresh: the lease text says ttl_ms = 0. */
	char key[200];
	size_t len;
	snprintf(key, sizeof key, "v/%s/meta/lease/%016x", uuid, 2);
	uint8_t *lt = sh_get(os, key, &len);
	CHECK(strstr((char *)lt, "ttl_ms = 0\n") != NULL);
	CHECK(strstr((char *)lt, "epoch = 2\n") != NULL);
	free(lt);

	/* A volume.conf of before log shipping (no instance line) opens and
	 * gets an instance. */
	char conf[700], text[4096];
	snprintf(conf, sizeof conf, "%s/volume.conf", dir);
	FILE *fp = fopen(conf, "r");
	REQUIRE(fp != NULL);
	size_t n = fread(text, 1, sizeof text - 1, fp);
	fclose(fp);
	text[n] = 0;
	char *ip = strstr(text, "instance = ");
	REQUIRE(ip != NULL);
	*ip = 0;
	fp = fopen(conf, "w");
	REQUIRE(fp != NULL && fputs(text, fp) >= 0 && fclose(fp) == 0);
	REQUIRE_OK(volume_open(dir, &o, &v));
	volume_stats(v, &st);
	CHECK(st.lease_epoch == 3);
	CHECK_OK(volume_close(v));
	fp = fopen(conf, "r");
	REQUIRE(fp != NULL);
	n = fread(text, 1, sizeof text - 1, fp);
	fclose(fp);
	text[n] = 0;
	CHECK(strstr(text, "instance = ") != NULL);
}

int main(int argc, char **argv)
{
	const char *base = t_tmpdir("ship_basic");
	char url[1024], dir[700];
	cairn_objstore *os;

	if (argc > 1 && !strcmp(argv[1], "s3")) {
#ifdef CAIRN_S3_SERVER_DIR
		s3h h;
		if (!s3h_installed())
			t_skip("s3rver is not installed (tests/s3/server/install.sh)");
		memset(&h, 0, sizeof h);
		s3h_start(&h, 0);
		s3h_env(&h, h.port);
		snprintf(url, sizeof url, "s3://" S3H_BUCKET "/ship%d", (int)getpid());
		REQUIRE_OK(objstore_open(url, NULL, &os));
		run(base, url, os);
		objstore_close(os);
		s3h_stop(&h);
#else
		t_skip("built without the S3 backend");
#endif
	} else {
		snprintf(dir, sizeof dir, "%s/store", base);
		REQUIRE(mkdir(dir, 0755) == 0);
		snprintf(url, sizeof url, "file://%s", dir);
		REQUIRE_OK(objstore_open(url, NULL, &os));
		run(base, url, os);
		objstore_close(os);
	}
	if (!t_failures_)
		t_rmtree(base);
	return t_done();
}
