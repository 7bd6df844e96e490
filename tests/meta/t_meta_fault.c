/*
 * t_meta_fault.c - fault injection: map full (growth, then the cap), disk
 * full at commit for every N, failed fsync (sticky failure), reader slots
 * exhausted and stale readers of a killed process.  Each fault must give a
 * clear error and leave the environment consistent (fsck clean).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include "t.h"
#include "meta_t.h"
#include "meta_int.h"

static void fsck_clean(cairn_meta *m)
{
	meta_fsck_result r;
	CHECK_OK(meta_fsck(m, 0, stderr, &r));
	CHECK(r.problems == 0);
}

static volatile int reader_stop;
static void *reader_main(void *arg)
{
	cairn_meta *m = arg;
	long n = 0;
	while (!reader_stop) {
		meta_txn *t;
		meta_attr a;
		if (meta_read_begin(m, &t)) {
			fprintf(stderr, "reader: %s\n", cairn_errmsg());
			return (void *)1;
		}
		int rc = meta_getattr(t, META_ROOT_INO, &a);
		meta_read_end(t);
		if (rc) {
			fprintf(stderr, "reader getattr: %s\n", cairn_errmsg());
			return (void *)2;
		}
		n++;
	}
	return n > 0 ? NULL : (void *)3;
}

static void test_map_full(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/mapfull", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	o.map_size = 1 << 20;
	o.map_max = 3 << 20;
	cairn_meta *m;
	REQUIRE_OK(meta_open(dir, &o, &m));
	/* readers run while the map grows under them */
	pthread_t rt;
	reader_stop = 0;
	REQUIRE(pthread_create(&rt, NULL, reader_main, m) == 0);
	int rc = 0, n = 0;
	char name[64];
	while (n < 200000) {
		snprintf(name, sizeof name, "file-with-a-longish-name-%06d", n);
		rc = w_create(m, META_ROOT_INO, name, NULL);
		if (rc)
			break;
		n++;
	}
	reader_stop = 1;
	void *rret;
	pthread_join(rt, &rret);
	CHECK(rret == NULL);
	CHECK_RC(rc, CAIRN_E_NOSPC);
	CHECK_MSG("metadata map full at 3 MiB (map_max)");
	CHECK(n > 100 && m->map_size == 3 << 20);  /* grew from 1 MiB to the cap */
	fsck_clean(m);
	CHECK_OK(r_lookup(m, META_ROOT_INO, "file-with-a-longish-name-000000", NULL));
	CHECK_OK(meta_close(m));
	/* reopen with a larger cap: work goes on */
	o.map_max = 64 << 20;
	REQUIRE_OK(meta_open(dir, &o, &m));
	CHECK_OK(w_create(m, META_ROOT_INO, "after", NULL));
	snprintf(name, sizeof name, "file-with-a-longish-name-%06d", n - 1);
	CHECK_OK(r_lookup(m, META_ROOT_INO, name, NULL));
	fsck_clean(m);
	CHECK_OK(meta_close(m));
}

/* A real full disk: a small tmpfs (needs root to mount; skipped otherwise). */
static void test_disk_full(const char *base)
{
	char dir[600], cmd[1300];
	snprintf(dir, sizeof dir, "%s/small", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=6m tmpfs '%s' 2>/dev/null", dir);
	if (system(cmd) != 0) {
		printf("note: cannot mount a small tmpfs here; real disk-full case not run\n");
		return;
	}
	for (int writemap = 1; writemap >= 0; writemap--) {
		char sub[700];
		snprintf(sub, sizeof sub, "%s/w%d", dir, writemap);
		REQUIRE(mkdir(sub, 0755) == 0);
		meta_opts o = t_opts();
		o.writemap = writemap;
		o.map_size = writemap ? 2 << 20 : 32 << 20;
		cairn_meta *m;
		REQUIRE_OK(meta_open(sub, &o, &m));
		int rc = 0, n = 0;
		char name[64];
		while (n < 100000) {
			snprintf(name, sizeof name, "file-with-a-longish-name-%06d", n);
			if ((rc = w_create(m, META_ROOT_INO, name, NULL)))
				break;
			n++;
		}
		CHECK_RC(rc, CAIRN_E_NOSPC);
		CHECK_MSG("No space left on device");
		if (writemap)
			CHECK_MSG("allocate 8 MiB for metadata");
		else
			CHECK_MSG("commit metadata");
		/* w0 gets what w1 left of the 6 MiB (about 2 MiB), and pages
		 * freed in the first 20 ms after a checkpoint are not reusable
		 * (the pin of meta_ckpt.c moves only then), so only some
		 * dozens of creates fit (50 here) */
		if (n <= 20)
			fprintf(stderr, "writemap %d: only %d creates\n", writemap, n);
		CHECK(n > 20);
		fsck_clean(m);
		CHECK_OK(r_lookup(m, META_ROOT_INO, "file-with-a-longish-name-000000", NULL));
		CHECK_OK(meta_close(m));
		/* free space, reopen: everything committed is there */
		snprintf(cmd, sizeof cmd, "rm -rf '%s/w1'", dir);
		if (!writemap && system(cmd) != 0)
			CHECK(0);
		if (!writemap) {
			REQUIRE_OK(meta_open(sub, &o, &m));
			snprintf(name, sizeof name, "file-with-a-longish-name-%06d", n - 1);
			CHECK_OK(r_lookup(m, META_ROOT_INO, name, NULL));
			CHECK_OK(w_create(m, META_ROOT_INO, "after", NULL));
			fsck_clean(m);
			CHECK_OK(meta_close(m));
		}
	}
	snprintf(cmd, sizeof cmd, "umount '%s'", dir);
	CHECK(system(cmd) == 0);
}

static void test_commit_faults(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/commit", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	cairn_meta *m;
	REQUIRE_OK(meta_open(dir, &o, &m));
	uint64_t seg, c;
	REQUIRE_OK(w_seg_new(m, &seg));
	REQUIRE_OK(w_chunk(m, seg, 0, 100, 1, &c));
	/* the Nth commit of a 12-step sequence fails, for every N */
	for (int nth = 1; nth <= 12; nth++) {
		char dn[32];
		meta_attr d, f;
		snprintf(dn, sizeof dn, "d%d", nth);
		REQUIRE_OK(w_mkdir(m, META_ROOT_INO, dn, &d));
		meta_fault_set(m, MF_COMMIT, nth, ENOSPC);
		int failed_at = 0, failed_create = 0;
		for (int step = 1; step <= 12; step++) {
			char fn[32];
			snprintf(fn, sizeof fn, "f%d", step);
			int rc = w_create(m, d.ino, fn, &f), created = !rc;
			if (!rc)
				rc = w_extw(m, f.ino, 0, 100, c, 0);
			if (rc) {
				CHECK_RC(rc, CAIRN_E_NOSPC);
				CHECK_MSG("commit metadata: No space left on device (injected)");
				CHECK(!failed_at);
				failed_at = step;
				failed_create = !created;
			}
			/* the failed transaction left nothing behind */
			meta_attr x;
			rc = r_lookup(m, d.ino, fn, &x);
			if (failed_at == step && failed_create)
				CHECK_RC(rc, CAIRN_E_NOTFOUND);
			else
				CHECK(rc == 0 && x.size == (failed_at == step ? 0u : 100u));
		}
		CHECK(failed_at > 0);
		meta_fault_set(m, MF_COMMIT, 0, 0);
		fsck_clean(m);
	}
	CHECK_OK(meta_close(m));
}

static void test_fsync_fail(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/fsync", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	cairn_meta *m;
	REQUIRE_OK(meta_open(dir, &o, &m));
	REQUIRE_OK(w_create(m, META_ROOT_INO, "before", NULL));
	meta_fault_set(m, MF_SYNC, 1, EIO);
	mt_dur = META_SYNCED;
	CHECK_RC(w_create(m, META_ROOT_INO, "x", NULL), CAIRN_E_IO);
	CHECK_MSG("fdatasync of metadata");
	CHECK_MSG("Input/output error");
	/* sticky: no further write is accepted */
	CHECK_RC(w_create(m, META_ROOT_INO, "y", NULL), CAIRN_E_IO);
	CHECK_MSG("reopen");
	mt_dur = META_RELAXED;
	CHECK_RC(w_create(m, META_ROOT_INO, "z", NULL), CAIRN_E_IO);
	CHECK_RC(meta_sync(m), CAIRN_E_IO);
	/* reads still work */
	CHECK_OK(r_lookup(m, META_ROOT_INO, "before", NULL));
	meta_close(m);
	REQUIRE_OK(meta_open(dir, &o, &m));
	CHECK_OK(r_lookup(m, META_ROOT_INO, "before", NULL));
	CHECK_RC(r_lookup(m, META_ROOT_INO, "y", NULL), CAIRN_E_NOTFOUND);
	CHECK_OK(w_create(m, META_ROOT_INO, "y", NULL));
	fsck_clean(m);
	CHECK_OK(meta_close(m));
}

static void test_readers(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/readers", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	o.max_readers = 4;
	cairn_meta *m;
	REQUIRE_OK(meta_open(dir, &o, &m));
	meta_txn *t[5];
	for (int i = 0; i < 4; i++)
		REQUIRE_OK(meta_read_begin(m, &t[i]));
	CHECK_RC(meta_read_begin(m, &t[4]), CAIRN_E_BUSY);
	CHECK_MSG("begin read transaction");
	for (int i = 0; i < 4; i++)
		meta_read_end(t[i]);
	CHECK_OK(meta_close(m));
	/* a killed process leaves its reader slots behind */
	int p[2];
	REQUIRE(pipe(p) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		meta_txn *ct[4];
		if (meta_open(dir, &o, &m))
			_exit(2);
		for (int i = 0; i < 4; i++)
			if (meta_read_begin(m, &ct[i]))
				_exit(3);
		if (write(p[1], "x", 1) != 1)
			_exit(4);
		for (;;)
			pause();
	}
	char c;
	REQUIRE(read(p[0], &c, 1) == 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(p[0]);
	close(p[1]);
	REQUIRE_OK(meta_open(dir, &o, &m));
	for (int i = 0; i < 4; i++)
		CHECK_OK(meta_read_begin(m, &t[i]));
	for (int i = 0; i < 4; i++)
		meta_read_end(t[i]);
	CHECK_OK(meta_close(m));
}

/* Live pooled read transactions: in the pool array (nlive) and in the
 * reader shards' slots (bit 0 of a slot). */
static unsigned live_count(cairn_meta *m)
{
	unsigned n = __atomic_load_n(&m->nlive, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < META_RSHARDS; i++)
		n += (unsigned)(__atomic_load_n(&m->rshard[i].slot, __ATOMIC_ACQUIRE) & 1);
	return n;
}

/* Run the calling thread on one CPU: then a transaction given back is
 * cached in that CPU's shard and the next begin takes that very one. */
static void pin_to_one_cpu(void)
{
	cpu_set_t set;
	REQUIRE(pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set)) {
			CPU_ZERO(&set);
			CPU_SET(c, &set);
			REQUIRE(pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0);
			return;
		}
}

/* Read transactions given back while their snapshot is the newest are
 * pooled live (not reset) and reused as they are by the next begin.  A
 * commit must reset them (or they would hold back page reuse), and a begin
 * after a commit must never hand out the older snapshot. */
static void test_live_pool(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/live", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	cairn_meta *m;
	cpu_set_t all;
	REQUIRE(pthread_getaffinity_np(pthread_self(), sizeof all, &all) == 0);
	pin_to_one_cpu();
	REQUIRE_OK(meta_open(dir, &o, &m));
	CHECK_RC(r_lookup(m, META_ROOT_INO, "lp", NULL), CAIRN_E_NOTFOUND);
	CHECK(live_count(m) == 1);
	CHECK_OK(w_create(m, META_ROOT_INO, "lp", NULL));
	CHECK(live_count(m) == 0);
	CHECK_OK(r_lookup(m, META_ROOT_INO, "lp", NULL));
	/* a transaction that began before a commit and ends after it is
	 * pooled reset, and the next begin sees the commit */
	meta_txn *a, *b;
	REQUIRE_OK(meta_read_begin(m, &a));
	REQUIRE_OK(meta_read_begin(m, &b));
	meta_read_end(a);
	CHECK(live_count(m) == 1);
	CHECK_OK(w_create(m, META_ROOT_INO, "lp2", NULL));
	CHECK(live_count(m) == 0);
	meta_attr at;
	CHECK_RC(meta_lookup(b, META_ROOT_INO, "lp2", &at), CAIRN_E_NOTFOUND);
	meta_read_end(b);
	CHECK(live_count(m) == 0);
	for (int i = 0; i < 4; i++)
		CHECK_OK(r_lookup(m, META_ROOT_INO, "lp2", NULL));
	/* the race meta_pool_stale allows: a live one pooled after the
	 * commit it missed is still never used for a later read.  The
	 * thread stays on one CPU, so the begin below takes that very
	 * transaction from the shard's slot. */
	REQUIRE_OK(meta_read_begin(m, &a));
	meta_read_end(a);
	CHECK(live_count(m) == 1);
	/* as if it had been pooled after the leader looked */
	unsigned nl = __atomic_load_n(&m->nlive, __ATOMIC_ACQUIRE);
	__atomic_store_n(&m->nlive, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&m->rs_live, 0, __ATOMIC_SEQ_CST);
	CHECK_OK(w_create(m, META_ROOT_INO, "lp3", NULL));
	CHECK(live_count(m) == 1 + nl);  /* the leader did not reset it */
	__atomic_store_n(&m->nlive, nl, __ATOMIC_RELEASE);
	__atomic_store_n(&m->rs_live, 1, __ATOMIC_SEQ_CST);
	REQUIRE_OK(meta_read_begin(m, &b));
	CHECK(b == a);  /* the stale live one, renewed */
	CHECK_OK(meta_lookup(b, META_ROOT_INO, "lp3", &at));
	meta_read_end(b);
	CHECK_OK(r_lookup(m, META_ROOT_INO, "lp3", NULL));
	/* map growth resets live ones (no transaction may be active) */
	CHECK_OK(r_lookup(m, META_ROOT_INO, "lp3", NULL));
	CHECK(live_count(m) == 1);
	CHECK_OK(meta_env_grow(m));
	CHECK(live_count(m) == 0);
	CHECK_OK(r_lookup(m, META_ROOT_INO, "lp3", NULL));
	fsck_clean(m);
	CHECK_OK(meta_close(m));
	REQUIRE(pthread_setaffinity_np(pthread_self(), sizeof all, &all) == 0);
}

int main(void)
{
	const char *base = t_tmpdir("meta_fault");
	test_map_full(base);
	test_disk_full(base);
	test_commit_faults(base);
	test_fsync_fail(base);
	test_readers(base);
	test_live_pool(base);
	t_rmtree(base);
	return t_done();
}
