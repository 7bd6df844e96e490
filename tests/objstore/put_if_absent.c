/*
 * put_if_absent.c - objstore_put_if_absent beyond the conformance case:
 *   - file://: forked processes, each with its own store handle, race to
 *     create one key: exactly one wins, the others get CAIRN_E_EXISTS, the
 *     object is the winner's bytes, and tmp/ keeps no temporaries;
 *   - file://: a key that is a directory (a prefix of other keys) or has an
 *     object as a prefix is CAIRN_E_EXISTS with the conflict named;
 *   - the fault wrapper applies its rules to it as to a put (FAIL: nothing
 *     written; FAIL_AFTER: written, answer lost, a retry gets EXISTS), the
 *     latency wrapper charges it like a put, both forward it;
 *   - a backend without the op: limits.put_if_absent is 0 and the call is
 *     CAIRN_E_UNSUPPORTED (wrapped or not), nothing written.
 * Rounds scale with CAIRN_TEST_SCALE.
 */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairn/runtime.h"
#include "objstore_int.h"
#include "t.h"

#define NPROC 8

static char root[600], url[700];
static uint64_t seed;

static cairn_objstore *open_store(void)
{
	cairn_objstore *os;
	REQUIRE_OK(objstore_open(url, NULL, &os));
	return os;
}

static void check_exact(cairn_objstore *os, const char *key, const void *want,
			size_t len)
{
	char *got = malloc(len + 16);
	uint64_t n = 0;

	REQUIRE(got != NULL);
	CHECK_OK(objstore_get(os, key, 0, got, len + 16, &n));
	CHECK(n == len);
	CHECK(n != len || memcmp(got, want, len) == 0);
	free(got);
}

/* Entries in <root>/tmp (no "." and ".."). */
static int tmp_entries(void)
{
	char p[700];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(p, sizeof p, "%s/tmp", root);
	d = opendir(p);
	REQUIRE(d != NULL);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static size_t racer_len(int i)
{
	return 4096 + 333 * (size_t)i;
}

static char *racer_data(int i, uint64_t s)
{
	char *p = malloc(racer_len(i));
	REQUIRE(p != NULL);
	t_fill(p, racer_len(i), s + (uint64_t)i);
	return p;
}

/* Child: own store handle, wait for the start pipe to close, race.
 * Exit 0: won, 10: EXISTS, 1: anything else. */
static void racer_child(int go_fd, const char *key, int i, uint64_t s)
{
	cairn_objstore *os;
	char *data = racer_data(i, s), c;
	int rc;

	if (objstore_open(url, NULL, &os) != 0) {
		fprintf(stderr, "child %d: open: %s\n", i, cairn_errmsg());
		_exit(1);
	}
	while (read(go_fd, &c, 1) < 0 && errno == EINTR)
		;
	rc = objstore_put_if_absent(os, key, data, racer_len(i));
	if (rc && rc != CAIRN_E_EXISTS)
		fprintf(stderr, "child %d: %s: %s\n", i, cairn_rc_name(rc),
			cairn_errmsg());
	objstore_close(os);
	free(data);
	_exit(rc == 0 ? 0 : rc == CAIRN_E_EXISTS ? 10 : 1);
}

static void t_process_race(void)
{
	cairn_objstore *os = open_store(); /* held: no child sweeps tmp/ */
	unsigned rounds = (unsigned)t_scaled(8);

	for (unsigned r = 0; r < rounds; r++) {
		pid_t pids[NPROC];
		int go[2], winner = -1, wins = 0, exists = 0;
		char key[64];
		uint64_t s = seed + 100 * (r + 1);

		snprintf(key, sizeof key, "proc/r%u/obj", r);
		REQUIRE(pipe(go) == 0);
		fflush(NULL);
		for (int i = 0; i < NPROC; i++) {
			pids[i] = fork();
			REQUIRE(pids[i] >= 0);
			if (pids[i] == 0) {
				close(go[1]);
				racer_child(go[0], key, i, s);
			}
		}
		close(go[0]);
		close(go[1]); /* every child reads EOF at once: go */
		for (int i = 0; i < NPROC; i++) {
			int st = 0;
			REQUIRE(waitpid(pids[i], &st, 0) == pids[i]);
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
				winner = i;
				wins++;
			} else if (WIFEXITED(st) && WEXITSTATUS(st) == 10) {
				exists++;
			} else {
				T_FAIL_("round %u child %d: status 0x%x", r, i, st);
			}
		}
		if (wins != 1 || exists != NPROC - 1)
			T_FAIL_("round %u: %d winners, %d EXISTS of %d "
				"processes", r, wins, exists, NPROC);
		if (winner >= 0) {
			char *want = racer_data(winner, s);
			check_exact(os, key, want, racer_len(winner));
			free(want);
		}
	}
	CHECK(tmp_entries() == 0);
	objstore_close(os);
}

static void t_file_conflicts(void)
{
	cairn_objstore *os = open_store();

	CHECK_OK(objstore_put_buf(os, "dir/below", "x", 1));
	/* "dir" is a directory in o/: no object may take its name */
	CHECK_RC(objstore_put_if_absent(os, "dir", "y", 1), CAIRN_E_EXISTS);
	CHECK_MSG("prefix of other keys");
	/* "dir/below" is an object: no key may live below it */
	CHECK_RC(objstore_put_if_absent(os, "dir/below/deeper", "y", 1),
		 CAIRN_E_EXISTS);
	CHECK_MSG("is an object");
	check_exact(os, "dir/below", "x", 1);
	/* a composite (multipart) object counts as present */
	{
		char id[CAIRN_UPLOAD_ID_MAX];
		cairn_mpu_part part;
		cairn_obj_src src = {.buf = "composite", .fd = -1, .len = 9};

		REQUIRE_OK(objstore_mpu_create(os, "mpu/obj", id));
		REQUIRE_OK(objstore_mpu_part(os, "mpu/obj", id, 1, &src, &part));
		REQUIRE_OK(objstore_mpu_complete(os, "mpu/obj", id, &part, 1));
		CHECK_RC(objstore_put_if_absent(os, "mpu/obj", "y", 1),
			 CAIRN_E_EXISTS);
		check_exact(os, "mpu/obj", "composite", 9);
	}
	CHECK(tmp_entries() == 0);
	objstore_close(os);
}

static void t_fault_wrapper(void)
{
	cairn_objstore *os = open_store(), *fw;
	cairn_objstore_limits lim;
	cairn_obj_fault rule = {.kind = OBJ_FAULT_FAIL, .nth = 1,
				.op_mask = 1 << OBJ_OP_PUT};
	cairn_obj_info info;

	REQUIRE_OK(objstore_fault_wrap(os, &fw));
	objstore_limits(fw, &lim);
	CHECK(lim.put_if_absent == 1);

	/* FAIL: counted as a put, inner store not called */
	REQUIRE_OK(objstore_fault_arm(fw, &rule));
	CHECK_RC(objstore_put_if_absent(fw, "fw/a", "aaa", 3), CAIRN_E_STORE);
	CHECK_MSG("injected fault on request 1");
	CHECK_MSG("put-if-absent 'fw/a'");
	CHECK(objstore_fault_count(fw) == 1);
	CHECK_RC(objstore_head(os, "fw/a", &info), CAIRN_E_NOTFOUND);
	/* the rule was for the 1st only: the 2nd goes through */
	CHECK_OK(objstore_put_if_absent(fw, "fw/a", "aaa", 3));
	check_exact(os, "fw/a", "aaa", 3);
	CHECK_RC(objstore_put_if_absent(fw, "fw/a", "bbb", 3), CAIRN_E_EXISTS);
	check_exact(os, "fw/a", "aaa", 3);

	/* FAIL_AFTER: it took effect, the answer was lost; the caller's
	 * retry finds its own object (objstore.h: EXISTS, compare) */
	rule.kind = OBJ_FAULT_FAIL_AFTER;
	rule.rc = CAIRN_E_NET;
	REQUIRE_OK(objstore_fault_arm(fw, &rule));
	CHECK_RC(objstore_put_if_absent(fw, "fw/b", "bbb", 3), CAIRN_E_NET);
	check_exact(os, "fw/b", "bbb", 3);
	CHECK_RC(objstore_put_if_absent(fw, "fw/b", "bbb", 3), CAIRN_E_EXISTS);

	/* a rule for gets does not count or hit it */
	rule.kind = OBJ_FAULT_FAIL;
	rule.nth = 0;
	rule.op_mask = 1 << OBJ_OP_GET;
	REQUIRE_OK(objstore_fault_arm(fw, &rule));
	CHECK_OK(objstore_put_if_absent(fw, "fw/c", "c", 1));
	CHECK(objstore_fault_count(fw) == 0);
	check_exact(os, "fw/c", "c", 1);
	objstore_close(fw);
	objstore_close(os);
}

static void t_latency_wrapper(void)
{
	cairn_objstore *os = open_store(), *lw;
	cairn_objstore_limits lim;
	objstore_latency_stats a, b;

	REQUIRE_OK(objstore_latency_wrap(os, 1, 1ULL << 30, &lw));
	objstore_limits(lw, &lim);
	CHECK(lim.put_if_absent == 1);
	REQUIRE_OK(objstore_latency_get_stats(lw, &a));
	CHECK_OK(objstore_put_if_absent(lw, "lat/a", "hello", 5));
	CHECK_RC(objstore_put_if_absent(lw, "lat/a", "world", 5),
		 CAIRN_E_EXISTS);
	REQUIRE_OK(objstore_latency_get_stats(lw, &b));
	CHECK(b.requests == a.requests + 2);
	CHECK(b.bytes == a.bytes + 10);
	CHECK(b.first_byte_us == a.first_byte_us + 2000);
	check_exact(os, "lat/a", "hello", 5);
	objstore_close(lw);
	objstore_close(os);
}

/* A backend without the op (a store that cannot do it atomically). */
static void t_unsupported(void)
{
	static struct objstore_backend nopia;
	cairn_objstore_opts opts = {0};
	cairn_objstore *os, *fw;
	cairn_objstore_limits lim;
	cairn_obj_info info;
	void *impl = NULL;

	nopia = objstore_file;
	nopia.put_if_absent = NULL;
	REQUIRE_OK(objstore_file.open(url, &opts, &impl));
	REQUIRE_OK(objstore_from_backend(&nopia, impl, url, &opts, &os));
	objstore_limits(os, &lim);
	CHECK(lim.put_if_absent == 0);
	CHECK_RC(objstore_put_if_absent(os, "nope/a", "x", 1),
		 CAIRN_E_UNSUPPORTED);
	CHECK_MSG("limits.put_if_absent");
	CHECK_RC(objstore_head(os, "nope/a", &info), CAIRN_E_NOTFOUND);
	/* the key is still checked first */
	CHECK_RC(objstore_put_if_absent(os, "/bad", "x", 1), CAIRN_E_INVAL);

	REQUIRE_OK(objstore_fault_wrap(os, &fw));
	objstore_limits(fw, &lim);
	CHECK(lim.put_if_absent == 0);
	CHECK_RC(objstore_put_if_absent(fw, "nope/a", "x", 1),
		 CAIRN_E_UNSUPPORTED);
	CHECK_RC(objstore_head(os, "nope/a", &info), CAIRN_E_NOTFOUND);
	objstore_close(fw);
	objstore_close(os);
}

int main(void)
{
	seed = t_seed();
	snprintf(root, sizeof root, "%s/store", t_tmpdir("put_if_absent"));
	snprintf(url, sizeof url, "file://%s", root);
	t_process_race();
	t_file_conflicts();
	t_fault_wrapper();
	t_latency_wrapper();
	t_unsupported();
	return t_done();
}
