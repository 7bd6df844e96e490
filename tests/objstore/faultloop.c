/*
 * faultloop.c - fault injection for every N (SQLite's do_faultsim_test):
 * make the Nth step of a multi-step operation fail, for N = 1, 2, ... until
 * the operation succeeds, and check each time that
 *   - the object is either complete and exact, or not visible at all (for an
 *     overwrite: the old object, exact), never partial;
 *   - after reopening the store no temporary is left in tmp/, and no upload
 *     is left once the caller aborted it.
 *
 *   A. a file:// put, failing the Nth local I/O op of the engine
 *      (uring_fault_set: writes, fsyncs of the file and of directories);
 *      a fresh key with new parent directories, and an overwrite;
 *   B. a multipart upload (create, 3 parts, complete), same engine faults;
 *   C. deleting a composite object, and overwriting it with a put (the
 *      upload must be retired, never leaving a visible broken object);
 *   D. the same multipart upload through the fault wrapper: the Nth request
 *      fails (FAIL: never happened; FAIL_AFTER: happened, answer lost).
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/runtime.h"
#include "objstore_int.h"
#include "t.h"

#define MIB (1024ULL * 1024ULL)

static char root[600], url[700];
static cairn_uring *u;
static uint64_t seed;

static int count_dir(const char *sub)
{
	char path[800];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof path, "%s/%s", root, sub);
	if (!(d = opendir(path)))
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static cairn_objstore *open_store(void)
{
	cairn_objstore_opts o = {.uring = u};
	cairn_objstore *os;

	REQUIRE_OK(objstore_open(url, &o, &os));
	return os;
}

/* 0 absent, 1 equals a, 2 equals b, -1 anything else (a failure). */
static int state_of(cairn_objstore *os, const char *key, const char *a,
		    uint64_t alen, const char *b, uint64_t blen)
{
	uint64_t cap = (alen > blen ? alen : blen) + 1, got = 0;
	char *buf = malloc(cap);
	int rc, st = -1;

	REQUIRE(buf);
	rc = objstore_get(os, key, 0, buf, cap, &got);
	if (rc == CAIRN_E_NOTFOUND)
		st = 0;
	else if (rc)
		fprintf(stderr, "get %s: %s\n", key, cairn_errmsg());
	else if (a && got == alen && memcmp(buf, a, alen) == 0)
		st = 1;
	else if (b && got == blen && memcmp(buf, b, blen) == 0)
		st = 2;
	free(buf);
	return st;
}

/* Reopen the store and check that no debris is left. */
static cairn_objstore *reopen(cairn_objstore *os, uint64_t n)
{
	objstore_close(os);
	os = open_store();
	if (count_dir("tmp") != 0)
		T_FAIL_("step %llu: %d entries left in tmp/ after reopen",
			(unsigned long long)n, count_dir("tmp"));
	return os;
}

static void loop_put(const char *key, int overwrite)
{
	size_t nlen = 3 * MIB + 5, olen = 1000;
	char *nd = malloc(nlen), *od = malloc(olen);
	cairn_objstore *os = open_store();
	uint64_t n;
	int rc = -1;

	REQUIRE(nd && od);
	t_fill(nd, nlen, seed + 1);
	t_fill(od, olen, seed + 2);
	for (n = 1; n < 1000 && rc != 0; n++) {
		int st;

		if (overwrite)
			REQUIRE_OK(objstore_put_buf(os, key, od, olen));
		uring_fault_set(u, n, EIO);
		rc = objstore_put_buf(os, key, nd, nlen);
		uring_fault_set(u, 0, 0);
		if (rc) {
			CHECK_MSG("injected");
			CHECK_MSG(key);
		}
		st = state_of(os, key, nd, nlen, overwrite ? od : NULL, olen);
		if (rc == 0)
			CHECK(st == 1);
		else if (overwrite)
			CHECK(st == 1 || st == 2);
		else
			CHECK(st == 0 || st == 1);
		os = reopen(os, n);
		CHECK(state_of(os, key, nd, nlen, overwrite ? od : NULL, olen) == st);
		if (rc)
			CHECK_OK(objstore_delete(os, key));
	}
	printf("put %s%s: succeeded at engine op %llu\n", key,
	       overwrite ? " (overwrite)" : "", (unsigned long long)(n - 1));
	CHECK(rc == 0);
	CHECK(n > 5); /* the loop really went through the steps */
	CHECK_OK(objstore_delete(os, key));
	CHECK(count_dir("o") == 0);
	objstore_close(os);
	free(nd);
	free(od);
}

/* create + parts (5 MiB, 5 MiB, 1 MiB) + complete.  Returns 0 or the rc
 * of the failed step; *created says whether up holds an upload id. */
static int do_mpu(cairn_objstore *os, const char *key, const char *data,
		  char up[CAIRN_UPLOAD_ID_MAX], int *created)
{
	static const uint64_t sz[3] = {5 * MIB, 5 * MIB, MIB};
	cairn_mpu_part parts[3];
	uint64_t off = 0;
	int rc;

	*created = 0;
	up[0] = '\0';
	rc = objstore_mpu_create(os, key, up);
	if (up[0])
		*created = 1; /* even on failure: FAIL_AFTER made it */
	if (rc)
		return rc;
	for (unsigned i = 0; i < 3; i++) {
		cairn_obj_src src = {.buf = data + off, .fd = -1, .len = sz[i]};
		if ((rc = objstore_mpu_part(os, key, up, i + 1, &src, &parts[i])))
			return rc;
		off += sz[i];
	}
	return objstore_mpu_complete(os, key, up, parts, 3);
}

static void check_mpu_outcome(cairn_objstore **osp, const char *key,
			      const char *data, uint64_t len, int rc,
			      const char *up, int created, uint64_t n,
			      cairn_objstore *abort_via)
{
	int st = state_of(*osp, key, data, len, NULL, 0);

	if (rc == 0)
		CHECK(st == 1);
	else
		CHECK(st == 0 || st == 1);
	if (rc && created) {
		/* The caller's clean-up after a failed upload.  An upload
		 * that did complete (answer lost) is no upload any more. */
		int a = objstore_mpu_abort(abort_via, key, up);
		CHECK(a == 0 || (a == CAIRN_E_NOTFOUND && st == 1));
	}
	*osp = reopen(*osp, n);
	CHECK(state_of(*osp, key, data, len, NULL, 0) == st);
	if (st == 1) {
		CHECK(count_dir("mpu") == 1);
		CHECK_OK(objstore_delete(*osp, key));
	}
	if (count_dir("mpu") != 0)
		T_FAIL_("step %llu: %d uploads left in mpu/",
			(unsigned long long)n, count_dir("mpu"));
}

static void loop_mpu_engine(void)
{
	uint64_t len = 11 * MIB, n;
	char *data = malloc(len), up[CAIRN_UPLOAD_ID_MAX];
	cairn_objstore *os = open_store();
	const char *key = "mpu/e/obj";
	int rc = -1, created;

	REQUIRE(data);
	t_fill(data, len, seed + 3);
	for (n = 1; n < 2000 && rc != 0; n++) {
		uring_fault_set(u, n, EIO);
		rc = do_mpu(os, key, data, up, &created);
		uring_fault_set(u, 0, 0);
		if (rc)
			CHECK_MSG("injected");
		check_mpu_outcome(&os, key, data, len, rc, up, created, n, os);
	}
	printf("multipart (engine faults): succeeded at op %llu\n",
	       (unsigned long long)(n - 1));
	CHECK(rc == 0);
	CHECK(n > 10);
	objstore_close(os);
	free(data);
}

/* Retiring a composite object (delete, or overwrite by a put) takes
 * several steps (hide the link, sync, move the upload away, remove it): a
 * failure at any of them must leave the object whole or gone. */
static void loop_retire(int by_put)
{
	uint64_t len = 11 * MIB, n;
	char *data = malloc(len), up[CAIRN_UPLOAD_ID_MAX];
	cairn_objstore *os = open_store();
	const char *key = "ret/a/obj";
	int rc = -1, created;

	REQUIRE(data);
	t_fill(data, len, seed + 5);
	for (n = 1; n < 1000 && rc != 0; n++) {
		int st;
		REQUIRE_OK(do_mpu(os, key, data, up, &created));
		uring_fault_set(u, n, EIO);
		rc = by_put ? objstore_put_buf(os, key, "new", 3)
			    : objstore_delete(os, key);
		uring_fault_set(u, 0, 0);
		st = state_of(os, key, data, len, "new", 3);
		if (rc == 0)
			CHECK(st == (by_put ? 2 : 0));
		else
			CHECK(st == 0 || st == 1 || (by_put && st == 2));
		os = reopen(os, n);
		CHECK(state_of(os, key, data, len, "new", 3) == st);
		CHECK(count_dir("mpu") == (st == 1 ? 1 : 0));
		CHECK_OK(objstore_delete(os, key));
		CHECK(count_dir("mpu") == 0);
	}
	printf("%s of a composite object: succeeded at op %llu\n",
	       by_put ? "overwrite" : "delete", (unsigned long long)(n - 1));
	CHECK(rc == 0);
	CHECK(n > 2);
	objstore_close(os);
	free(data);
}

static void loop_mpu_wrapper(int kind)
{
	uint64_t len = 11 * MIB, n;
	char *data = malloc(len), up[CAIRN_UPLOAD_ID_MAX];
	cairn_objstore *os = open_store(), *fw;
	const char *key = "mpu/w/obj";
	int rc = -1, created;
	cairn_obj_fault none = {.kind = OBJ_FAULT_NONE};

	REQUIRE(data);
	t_fill(data, len, seed + 4);
	for (n = 1; n < 100 && rc != 0; n++) {
		cairn_obj_fault f = {.kind = kind, .nth = n};
		REQUIRE_OK(objstore_fault_wrap(os, &fw));
		REQUIRE_OK(objstore_fault_arm(fw, &f));
		rc = do_mpu(fw, key, data, up, &created);
		if (rc) {
			CHECK(rc == CAIRN_E_STORE);
			CHECK_MSG("injected");
		}
		REQUIRE_OK(objstore_fault_arm(fw, &none));
		check_mpu_outcome(&os, key, data, len, rc, up, created, n, os);
		objstore_close(fw);
	}
	printf("multipart (wrapper, kind %d): succeeded at request %llu\n",
	       kind, (unsigned long long)(n - 1));
	CHECK(rc == 0);
	CHECK(n - 1 == 6); /* create, 3 parts, complete; the 6th is past */
	objstore_close(os);
	free(data);
}

int main(void)
{
	const char *dir;

	seed = t_seed();
	dir = t_tmpdir("objstore_faultloop");
	snprintf(root, sizeof root, "%s/store", dir);
	snprintf(url, sizeof url, "file://%s", root);
	REQUIRE_OK(uring_open(NULL, &u));
	printf("engine: %s\n", uring_engine_name(u));

	loop_put("fresh/a/b/key", 0);
	loop_put("top", 0);
	loop_put("ow/key", 1);
	loop_mpu_engine();
	loop_retire(0);
	loop_retire(1);
	loop_mpu_wrapper(OBJ_FAULT_FAIL);
	loop_mpu_wrapper(OBJ_FAULT_FAIL_AFTER);

	uring_close(u);
	if (t_failures_ == 0)
		t_rmtree(dir);
	return t_done();
}
