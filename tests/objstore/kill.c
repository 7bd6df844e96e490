/*
 * kill.c - kill -9 at a random moment.  A child process puts, overwrites,
 * uploads (multipart), and deletes objects in a loop on a file:// store;
 * the parent SIGKILLs it after a random delay, reopens the store and checks:
 *   - each key is absent or holds exactly one of the versions ever written
 *     to it (never a torn or partial object);
 *   - tmp/ is empty after the reopen (the sweep);
 *   - every upload left in mpu/ can be aborted, after which mpu/ is empty
 *     (an upload the child completed is not an upload any more).
 * Iterations: t_scaled(8); the seed is printed.
 */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "cairn/runtime.h"
#include "t.h"

#define MIB (1024ULL * 1024ULL)
#define BIG (12 * MIB + 3)
#define MPU (11 * MIB)

static char root[600], url[700];
static char *va, *vb, *vm;

static void child(void)
{
	static const uint64_t sz[3] = {5 * MIB, 5 * MIB, MIB};
	cairn_objstore *os;

	if (objstore_open(url, NULL, &os))
		_exit(3);
	for (;;) {
		char up[CAIRN_UPLOAD_ID_MAX];
		cairn_mpu_part parts[3];
		uint64_t off = 0;

		if (objstore_put_buf(os, "k/big", va, BIG) ||
		    objstore_put_buf(os, "k/big", vb, BIG / 2) ||
		    objstore_mpu_create(os, "k/m/mpu", up))
			_exit(4);
		for (unsigned i = 0; i < 3; i++) {
			if (objstore_mpu_part(os, "k/m/mpu", up, i + 1,
					      &(cairn_obj_src){.buf = vm + off,
							       .fd = -1,
							       .len = sz[i]},
					      &parts[i]))
				_exit(5);
			off += sz[i];
		}
		if (objstore_mpu_complete(os, "k/m/mpu", up, parts, 3) ||
		    objstore_delete(os, "k/big") ||
		    objstore_delete(os, "k/m/mpu"))
			_exit(6);
	}
}

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

static void abort_leftovers(cairn_objstore *os)
{
	char path[800];
	DIR *d;
	struct dirent *de;
	char ids[16][64];
	int n = 0;

	snprintf(path, sizeof path, "%s/mpu", root);
	d = opendir(path);
	REQUIRE(d);
	while ((de = readdir(d)) != NULL && n < 16)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			snprintf(ids[n++], sizeof ids[0], "%s", de->d_name);
	closedir(d);
	for (int i = 0; i < n; i++) {
		int rc = objstore_mpu_abort(os, "k/m/mpu", ids[i]);
		/* NOTFOUND: the upload completed, it is the object now. */
		if (rc && rc != CAIRN_E_NOTFOUND)
			T_FAIL_("abort %s: %s", ids[i], cairn_errmsg());
	}
}

/* 0 absent, 1..3 which version, -1 torn. */
static int version_of(cairn_objstore *os, const char *key)
{
	static char buf[BIG + 1];
	uint64_t got = 0;
	int rc = objstore_get(os, key, 0, buf, sizeof buf, &got);

	if (rc == CAIRN_E_NOTFOUND)
		return 0;
	if (rc) {
		fprintf(stderr, "get %s: %s\n", key, cairn_errmsg());
		return -1;
	}
	if (got == BIG && !memcmp(buf, va, BIG))
		return 1;
	if (got == BIG / 2 && !memcmp(buf, vb, BIG / 2))
		return 2;
	if (got == MPU && !memcmp(buf, vm, MPU))
		return 3;
	fprintf(stderr, "%s: %llu bytes of no version written\n", key,
		(unsigned long long)got);
	return -1;
}

int main(void)
{
	uint64_t seed = t_seed(), s = seed;
	uint64_t iters = t_scaled(8);
	const char *dir = t_tmpdir("objstore_kill");
	int seen[4] = {0};

	snprintf(root, sizeof root, "%s/store", dir);
	snprintf(url, sizeof url, "file://%s", root);
	va = malloc(BIG);
	vb = malloc(BIG);
	vm = malloc(MPU);
	REQUIRE(va && vb && vm);
	t_fill(va, BIG, seed + 1);
	t_fill(vb, BIG, seed + 2);
	t_fill(vm, MPU, seed + 3);

	for (uint64_t it = 0; it < iters; it++) {
		cairn_objstore *os;
		unsigned ms = 20 + (unsigned)(t_rand(&s) % 400);
		struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
		int status = 0, vbig, vmpu;
		pid_t pid;

		fflush(stdout);
		fflush(stderr);
		pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0)
			child();
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		REQUIRE(waitpid(pid, &status, 0) == pid);
		if (!WIFSIGNALED(status))
			T_FAIL_("child exited with %d before the kill",
				WEXITSTATUS(status));

		REQUIRE_OK(objstore_open(url, NULL, &os));
		CHECK(count_dir("tmp") == 0);
		vbig = version_of(os, "k/big");
		vmpu = version_of(os, "k/m/mpu");
		CHECK(vbig == 0 || vbig == 1 || vbig == 2);
		CHECK(vmpu == 0 || vmpu == 3);
		printf("kill after %u ms: big v%d, mpu v%d\n", ms, vbig, vmpu);
		if (vbig >= 0)
			seen[vbig]++;
		abort_leftovers(os);
		CHECK(count_dir("mpu") == (vmpu == 3 ? 1 : 0));
		CHECK_OK(objstore_delete(os, "k/big"));
		CHECK_OK(objstore_delete(os, "k/m/mpu"));
		CHECK(count_dir("mpu") == 0);
		objstore_close(os);
	}
	printf("states seen: absent %d, v1 %d, v2 %d\n", seen[0], seen[1],
	       seen[2]);
	free(va);
	free(vb);
	free(vm);
	if (t_failures_ == 0)
		t_rmtree(dir);
	return t_done();
}
