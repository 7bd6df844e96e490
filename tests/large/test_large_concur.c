/*
 * test_large_concur.c - uploads complete concurrently (the VOL_UPLOADERS
 * workers of vol_stage.c): four streamed files closed one after another,
 * on a store whose every CompleteMultipartUpload takes 400 ms (like
 * s3rver's copy of the whole object), have their completions in flight
 * together: the volume's uploads_active_max exceeds 1 (it is 1 with one
 * worker, which completes them back to back).  Every file then reads back
 * byte for byte from the store, and nothing stays queued.
 */
#include "large_t.h"

#define NFILES 4
#define FSIZE (8 * MIB)

int main(void)
{
	const char *tmp = t_tmpdir("large_concur");
	char dir[700], url[800], name[32];
	uint64_t rng = t_seed();
	cairn_objstore *inner, *os;
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_volume_stats st;
	cairn_file *f[NFILES];
	uint64_t ino[NFILES], seed[NFILES];

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	lt_format(dir);
	snprintf(url, sizeof url, "file://%s/store", dir);
	REQUIRE_OK(objstore_open(url, NULL, &inner));
	REQUIRE_OK(objstore_fault_wrap(inner, &os));
	lt_opts(&o);
	o.store = os;
	REQUIRE_OK(volume_open(dir, &o, &v));

	cairn_obj_fault slow = { .kind = OBJ_FAULT_LATENCY, .nth = 0,
				 .op_mask = 1 << OBJ_OP_MPU_COMPLETE, .latency_ms = 400 };
	REQUIRE_OK(objstore_fault_arm(os, &slow));
	/* All written first (each a stream with its parts sent), then closed
	 * together: the four uploads are queued within the 400 ms. */
	for (int i = 0; i < NFILES; i++) {
		snprintf(name, sizeof name, "rank%d", i);
		ino[i] = lt_ino(v, name);
		seed[i] = t_rand(&rng);
		REQUIRE_OK(volume_file_open(v, ino[i], &f[i]));
		CHECK_OK(lt_write(f[i], 0, FSIZE, seed[i], &rng));
	}
	for (int i = 0; i < NFILES; i++)
		CHECK_OK(volume_file_close(f[i]));
	CHECK_OK(volume_sync(v));
	CHECK(lt_wait_uploaded(v) == 0);
	volume_stats(v, &st);
	printf("streams %" PRIu64 ", completions %" PRIu64 ", uploads at once: max %" PRIu64
	       ", now %" PRIu64 ", failures %" PRIu64 "\n", st.streams,
	       objstore_fault_count(os), st.uploads_active_max, st.uploads_active,
	       st.upload_failures);
	CHECK(st.streams == NFILES);
	CHECK(objstore_fault_count(os) == NFILES);
	CHECK(st.uploads_active_max > 1);
	CHECK(st.uploads_active == 0);
	CHECK(st.upload_failures == 0);

	/* Completed out of queue order or not, every file is in the store. */
	cairn_obj_fault none = { .kind = OBJ_FAULT_NONE };
	REQUIRE_OK(objstore_fault_arm(os, &none));
	CHECK_OK(volume_drop_cache(v));
	for (int i = 0; i < NFILES; i++) {
		cairn_file *r;
		REQUIRE_OK(volume_file_open(v, ino[i], &r));
		CHECK(lt_verify(r, FSIZE, seed[i], 8 << 20, 0, 0) == 0);
		CHECK_OK(volume_file_close(r));
	}
	volume_stats(v, &st);
	CHECK(st.reads_parallel > 0);  /* fetched from the store */
	CHECK_OK(volume_close(v));
	objstore_close(os);
	objstore_close(inner);
	return t_done();
}
