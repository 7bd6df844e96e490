/*
 * test_volume_fault - object-store faults through objstore_fault_wrap:
 *   - a failed PUT is retried, and a PUT whose answer was lost (it took
 *     effect) is repeated harmlessly;
 *   - a store that stays down: writers wait at the upload cap and then
 *     fail with CAIRN_E_NOSPC naming the store's error; a remote fsync
 *     fails with CAIRN_E_IO; reads of uploaded data fail, never return
 *     wrong bytes; when the store comes back everything written before
 *     reads back intact, also from the store alone;
 *   - a GET silently cut short is an error, never wrong bytes.
 */
#include "vol_test.h"

#define FSZ (16u << 10)

static uint8_t data[FSZ], got[FSZ + 10];

static void fill_file(int i)
{
	t_fill(data, FSZ, 1000 + (uint64_t)i);
}

static int check_file(cairn_volume *v, uint64_t ino, int i)
{
	size_t n = 0;
	int rc = vt_read(v, ino, got, sizeof got, 0, &n);
	if (rc)
		return rc;
	fill_file(i);
	if (n != FSZ || memcmp(got, data, FSZ))
		return CAIRN_E_INTERNAL;
	return 0;
}

int main(void)
{
	const char *base = t_tmpdir("volume_fault");
	char dir[1024], url[1100];
	cairn_objstore *inner, *os;
	cairn_volume *v;
	cairn_volume_opts o;
	cairn_volume_stats st;
	cairn_obj_fault rule;
	static uint64_t inos[400];
	int nfiles = 0;

	snprintf(dir, sizeof dir, "%s/vol", base);
	vt_format(dir, 0);
	snprintf(url, sizeof url, "file://%s/store", dir);
	REQUIRE_OK(objstore_open(url, NULL, &inner));
	REQUIRE_OK(objstore_fault_wrap(inner, &os));
	vt_opts(&o);
	o.store = os;
	o.durability = CAIRN_DUR_REMOTE;
	o.segment_size = 256u << 10;
	o.upload_cap = 512u << 10;
	o.upload_wait_ms = 1500;
	REQUIRE_OK(volume_open(dir, &o, &v));

	/* 1. One failed PUT, then one whose answer is lost. */
	memset(&rule, 0, sizeof rule);
	rule.kind = OBJ_FAULT_FAIL;
	rule.nth = 1;
	rule.op_mask = 1 << OBJ_OP_PUT;
	REQUIRE_OK(objstore_fault_arm(os, &rule));
	for (int k = 0; k < 20; k++, nfiles++) {
		char name[16];
		snprintf(name, sizeof name, "a%03d", nfiles);
		inos[nfiles] = vt_file(v, name);
		fill_file(nfiles);
		CHECK_OK(vt_write(v, inos[nfiles], data, FSZ, 0));
	}
	CHECK_OK(volume_sync(v));
	volume_stats(v, &st);
	CHECK(st.upload_failures >= 1);
	CHECK(st.unuploaded_bytes == 0);
	rule.kind = OBJ_FAULT_FAIL_AFTER;
	REQUIRE_OK(objstore_fault_arm(os, &rule));
	for (int k = 0; k < 20; k++, nfiles++) {
		char name[16];
		snprintf(name, sizeof name, "a%03d", nfiles);
		inos[nfiles] = vt_file(v, name);
		fill_file(nfiles);
		CHECK_OK(vt_write(v, inos[nfiles], data, FSZ, 0));
	}
	CHECK_OK(volume_sync(v));
	volume_stats(v, &st);
	CHECK(st.upload_failures >= 2);
	CHECK_OK(volume_drop_cache(v));
	for (int i = 0; i < nfiles; i++)
		CHECK_OK(check_file(v, inos[i], i));

	/* 2. The store goes down for good. */
	memset(&rule, 0, sizeof rule);
	rule.kind = OBJ_FAULT_FAIL;
	rule.nth = 1;
	rule.sticky = 1;
	rule.rc = CAIRN_E_NET;
	REQUIRE_OK(objstore_fault_arm(os, &rule));
	int before = nfiles, rc = 0;
	for (int k = 0; k < 200 && !rc; k++) {
		char name[16];
		snprintf(name, sizeof name, "b%03d", nfiles);
		inos[nfiles] = vt_file(v, name);
		fill_file(nfiles);
		rc = vt_write(v, inos[nfiles], data, FSZ, 0);
		if (!rc)
			nfiles++;
	}
	CHECK_RC(rc, CAIRN_E_NOSPC);
	CHECK_MSG("last store error");
	CHECK(nfiles > before);
	/* Uploaded data cannot be read from a dead store: an error. */
	CHECK_OK(volume_drop_cache(v));
	rc = check_file(v, inos[0], 0);
	CHECK(rc != 0 && rc != CAIRN_E_INTERNAL);
	/* A remote fsync cannot complete. */
	cairn_file *f;
	REQUIRE_OK(volume_file_open(v, inos[0], &f));
	CHECK_RC(volume_file_fsync(f), CAIRN_E_IO);
	CHECK_MSG("not uploaded");
	CHECK_OK(volume_file_close(f));

	/* 3. The store comes back: all is there, also from the store. */
	memset(&rule, 0, sizeof rule);
	REQUIRE_OK(objstore_fault_arm(os, &rule));
	CHECK_OK(volume_sync(v));
	for (int i = 0; i < nfiles; i++)
		CHECK_OK(check_file(v, inos[i], i));
	CHECK_OK(volume_close(v));
	REQUIRE_OK(volume_open(dir, &o, &v));
	CHECK_OK(volume_drop_cache(v));
	for (int i = 0; i < nfiles; i++)
		CHECK_OK(check_file(v, inos[i], i));

	/* 4. GETs cut short: an error, never wrong bytes. */
	CHECK_OK(volume_drop_cache(v));
	memset(&rule, 0, sizeof rule);
	rule.kind = OBJ_FAULT_TRUNCATE;
	rule.op_mask = 1 << OBJ_OP_GET;
	REQUIRE_OK(objstore_fault_arm(os, &rule));
	rc = check_file(v, inos[5], 5);
	CHECK(rc != 0 && rc != CAIRN_E_INTERNAL);
	memset(&rule, 0, sizeof rule);
	REQUIRE_OK(objstore_fault_arm(os, &rule));
	CHECK_OK(check_file(v, inos[5], 5));
	volume_stats(v, &st);
	printf("%d files; upload failures %llu\n", nfiles,
	       (unsigned long long)st.upload_failures);
	CHECK_OK(volume_close(v));
	objstore_close(os);
	objstore_close(inner);
	t_rmtree(base);
	return t_done();
}
