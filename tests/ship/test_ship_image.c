/*
 * test_ship_image.c - images and trimming (docs/log-shipping.md "Images"):
 * with a small image_log_bytes the shipper makes several images; with a
 * short ship_retention_ms the log objects and images older than the newest
 * image are trimmed, never the newest image nor a log object after it; the
 * newest image and the log after it rebuild a replica with the writer's
 * digest.  On file://, and on s3rver with argument "s3" (ship_image_s3).
 */
#include <time.h>

#include "ship_t.h"
#include "t_store.h"

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	const char *base = t_tmpdir("ship_image");
	char url[1024];
	t_store ts;
	int s3 = t_store_s3(&ts, argc, argv, "image", url, sizeof url);
	char dir[600], work[600], uuid[37], pfx[128];
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_volume_stats st;
	cairn_objstore *os;
	uint8_t dw[32], dr[32];
	uint64_t lw, lr, imgs[256];
	size_t ni = 0;
	int rounds = (int)t_scaled(6);

	snprintf(dir, sizeof dir, "%s/vol", base);
	snprintf(work, sizeof work, "%s/replica", base);
	sh_format(dir, s3 ? url : NULL);
	if (s3)
		REQUIRE_OK(objstore_open(url, NULL, &os));
	else
		sh_store_open(dir, &os);
	sh_opts(&o);
	o.image_log_bytes = 2048;
	o.ship_retention_ms = 1;
	REQUIRE_OK(volume_open(dir, &o, &v));
	volume_uuid(v, uuid);
	snprintf(pfx, sizeof pfx, "v/%s/meta/wal/", uuid);
	/* Each round ships more than image_log_bytes: an image is written
	 * after it, and uploaded once the log reaches the image's LSN. */
	for (int i = 0; i < rounds; i++) {
		sh_workload(v, i, 6);
		CHECK_OK(volume_ship_flush(v));
		sleep_ms(2 * (int)o.ship_interval_ms);
		CHECK_OK(volume_ship_flush(v));
	}
	volume_stats(v, &st);
	for (int k = 0; k < 2000 && st.images < 3; k++) {
		CHECK_OK(volume_ship_flush(v));
		sleep_ms(5);
		volume_stats(v, &st);
	}
	fprintf(stderr, "%" PRIu64 " images, newest at %" PRIu64 ", shipped %" PRIu64 "\n",
		st.images, st.image_lsn, st.shipped_lsn);
	CHECK(st.images >= 3);
	/* Trimming: only the newest image stays (bounded wait). */
	for (int k = 0; k < 1000; k++) {
		ni = sh_images(os, uuid, imgs, 256);
		if (ni == 1)
			break;
		CHECK_OK(volume_ship_flush(v));
		sleep_ms(10);
	}
	volume_stats(v, &st);
	CHECK(ni == 1);
	CHECK(imgs[0] == st.image_lsn);
	char ipfx[128];
	sh_keys l;
	snprintf(ipfx, sizeof ipfx, "v/%s/meta/image/", uuid);

	sh_workload(v, 100, 4);
	CHECK_OK(volume_ship_flush(v));
	CHECK_OK(volume_close(v));
	/* At rest: every manifest has its .mdb and every .mdb its manifest. */
	sh_list(os, ipfx, &l);
	CHECK(l.n % 2 == 0);
	for (size_t i = 0; i + 1 < l.n; i += 2) {
		CHECK(strlen(l.k[i]) == strlen(ipfx) + 16);
		CHECK(strncmp(l.k[i], l.k[i + 1], strlen(l.k[i])) == 0);
		CHECK(strcmp(l.k[i + 1] + strlen(l.k[i]), ".mdb") == 0);
	}
	sh_keys_free(&l);
	sh_writer_digest(dir, dw, &lw);
	ni = sh_images(os, uuid, imgs, 256);
	REQUIRE(ni >= 1);
	/* The oldest log object left starts at or before the oldest image
	 * + 1, and the next one after it: nothing older is left. */
	sh_list(os, pfx, &l);
	REQUIRE(l.n >= 1);
	CHECK(sh_hex(l.k[0] + strlen(pfx)) <= imgs[0] + 1);
	if (l.n >= 2)
		CHECK(sh_hex(l.k[1] + strlen(pfx)) > imgs[0]);
	sh_keys_free(&l);
	sh_replica(os, uuid, work, imgs[ni - 1], dr, &lr);
	CHECK(lr == lw);
	CHECK(memcmp(dw, dr, 32) == 0);

	objstore_close(os);
	t_store_stop(&ts);
	if (!t_failures_)
		t_rmtree(base);
	return t_done();
}
