/*
 * test_large_fault.c - store faults during the multipart upload of large
 * files (objstore_fault_wrap): a part that fails is retried and the file
 * is uploaded; a store that fails for good aborts the upload, the writer
 * still gets its data (local durability), a remote fsync fails clearly
 * naming the store's error, and once the store is back the segment is
 * uploaded whole and reads back from the store.
 */
#include "large_t.h"

#define FSIZE (30 * MIB)

static void verify(cairn_volume *v, uint64_t ino, uint64_t seed)
{
	cairn_file *f;
	REQUIRE_OK(volume_file_open(v, ino, &f));
	CHECK(lt_verify(f, FSIZE, seed, 8 << 20, 0, 0) == 0);
	CHECK_OK(volume_file_close(f));
}

int main(void)
{
	const char *tmp = t_tmpdir("large_fault");
	char dir[700], url[800];
	uint64_t rng = t_seed();
	cairn_objstore *inner, *os;
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_volume_stats st;
	cairn_file *f;

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	lt_format(dir);
	snprintf(url, sizeof url, "file://%s/store", dir);
	REQUIRE_OK(objstore_open(url, NULL, &inner));
	REQUIRE_OK(objstore_fault_wrap(inner, &os));
	lt_opts(&o);
	o.store = os;
	o.upload_wait_ms = 1500;
	o.durability = CAIRN_DUR_REMOTE;
	REQUIRE_OK(volume_open(dir, &o, &v));

	/* 1. The second part fails once: retried, the upload completes. */
	cairn_obj_fault once = { .kind = OBJ_FAULT_FAIL, .nth = 2,
				 .op_mask = 1 << OBJ_OP_MPU_PART };
	REQUIRE_OK(objstore_fault_arm(os, &once));
	uint64_t ino1 = lt_ino(v, "retried"), seed1 = t_rand(&rng);
	REQUIRE_OK(volume_file_open(v, ino1, &f));
	CHECK_OK(lt_write(f, 0, FSIZE, seed1, &rng));
	CHECK_OK(volume_file_fsync(f));   /* remote: waits for the upload */
	CHECK_OK(volume_file_close(f));
	volume_stats(v, &st);
	CHECK(st.stream_part_retries >= 1);
	CHECK(st.streams == 1);
	CHECK_OK(volume_drop_cache(v));
	verify(v, ino1, seed1);

	/* 2. The store fails for good: the upload is aborted, the data stays
	 * readable locally, the remote fsync reports the store's error. */
	cairn_obj_fault down = { .kind = OBJ_FAULT_FAIL, .nth = 1, .sticky = 1,
				 .rc = CAIRN_E_NET };
	uint64_t ino2 = lt_ino(v, "down"), seed2 = t_rand(&rng);
	REQUIRE_OK(volume_file_open(v, ino2, &f));
	CHECK_OK(lt_write(f, 0, 6 * MIB, seed2, &rng));   /* stream started */
	REQUIRE_OK(objstore_fault_arm(os, &down));
	CHECK_OK(lt_write(f, 6 * MIB, FSIZE, seed2, &rng));
	CHECK_RC(volume_file_fsync(f), CAIRN_E_IO);
	CHECK_MSG("not uploaded");
	CHECK_MSG("injected fault");
	printf("fsync with the store down: %s\n", cairn_errmsg());
	CHECK(lt_verify(f, FSIZE, seed2, 8 << 20, 0, 0) == 0);
	CHECK_OK(volume_file_close(f));
	volume_stats(v, &st);
	CHECK(st.upload_failures >= 1);

	/* 3. The store is back: the segment goes up whole. */
	cairn_obj_fault none = { .kind = OBJ_FAULT_NONE };
	REQUIRE_OK(objstore_fault_arm(os, &none));
	CHECK_OK(volume_sync(v));
	CHECK(lt_wait_uploaded(v) == 0);
	CHECK_OK(volume_drop_cache(v));
	verify(v, ino2, seed2);
	verify(v, ino1, seed1);
	CHECK_OK(volume_close(v));

	/* 4. Reopen over the plain store: all reads from the store. */
	o.store = inner;
	o.durability = CAIRN_DUR_LOCAL;
	REQUIRE_OK(volume_open(dir, &o, &v));
	CHECK_OK(volume_drop_cache(v));
	verify(v, ino1, seed1);
	verify(v, ino2, seed2);
	CHECK_OK(volume_close(v));
	objstore_close(os);
	objstore_close(inner);
	t_rmtree(tmp);
	return t_done();
}
