/*
 * t_meta_read.c - the read path: the key comparison of every table, and
 * read transactions from many threads at once (the reader shards of
 * meta_env.c: a count and a cached transaction per CPU).
 *
 *   - key order: meta_key_cmp orders every pair of keys as LMDB's default
 *     comparison (mdb_cmp on a table of a plain LMDB environment) does,
 *     on random keys with shared prefixes, high bytes and all lengths; and
 *     every entry of a grown directory table is found by lookup with the
 *     value a cursor walk (which compares nothing) sees;
 *   - visibility: every lookup in a transaction begun after a commit
 *     returned sees that commit, while a writer commits and the map grows
 *     (small map), from more threads than CPUs;
 *   - same answers as the slow path: a lookup through a pooled (possibly
 *     live, reused) transaction returns what a fresh LMDB read transaction
 *     of the same snapshot returns, field by field;
 *   - growth excludes readers: meta_env_grow waits for a reader that holds
 *     a transaction, and a reader that begins meanwhile gets its
 *     transaction only after the map has grown;
 *   - a thread that moved to another CPU finds the idle transaction cached
 *     in the first CPU's shard (max_readers 4: four begins succeed, the
 *     fifth is refused);
 *   - a sync (modes other than PINNED: outside leadership, so at any time
 *     of a growth) works while the map is unmapped, as it is for a moment
 *     inside mdb_env_set_mapsize.
 *
 * Rounds: t_scaled(3000) creates by the writer, t_scaled(200000) key pairs.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include "t.h"
#include "meta_t.h"
#include "meta_int.h"

#define NREADERS 6

static cairn_meta *m;
static uint64_t dir_ino;
static uint64_t done_n;     /* files v0..v(done_n-1) are committed (atomic) */
static int stop;            /* atomic */
static _Atomic long bad, reads, compared;

/* The lookup of name as a fresh LMDB read transaction sees it (the slow
 * path: no pool, no shard), if its snapshot is the one t reads. */
static void compare_fresh(meta_txn *t, const char *name, int rc, const meta_attr *a)
{
	MDB_txn *raw;
	if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &raw)) {
		bad++;
		return;
	}
	if (mdb_txn_id(raw) == mdb_txn_id(t->txn)) {
		meta_txn f;
		memset(&f, 0, sizeof f);
		f.m = m;
		f.txn = raw;
		meta_attr b;
		int rc2 = meta_lookup(&f, dir_ino, name, &b);
		if (rc2 != rc || (!rc && memcmp(a, &b, sizeof b) != 0)) {
			fprintf(stderr, "%s: pooled %d, fresh %d\n", name, rc, rc2);
			bad++;
		}
		compared++;
	}
	mdb_txn_abort(raw);
}

static void *reader(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		/* read before the begin: that commit returned before it */
		uint64_t n = __atomic_load_n(&done_n, __ATOMIC_ACQUIRE);
		meta_txn *t;
		if (meta_read_begin(m, &t)) {
			fprintf(stderr, "begin: %s\n", cairn_errmsg());
			bad++;
			return NULL;
		}
		char name[32];
		meta_attr a;
		if (n) {
			snprintf(name, sizeof name, "v%llu", (unsigned long long)(n - 1));
			int rc = meta_lookup(t, dir_ino, name, &a);
			if (rc || a.nlink != 1) {
				fprintf(stderr, "%s (committed before the begin): rc %d\n", name, rc);
				bad++;
			}
			/* and one at random, compared with the slow path */
			snprintf(name, sizeof name, "v%llu",
				 (unsigned long long)(t_rand(&seed) % (n + 8)));
			rc = meta_lookup(t, dir_ino, name, &a);
			if (rc && rc != CAIRN_E_NOTFOUND) {
				fprintf(stderr, "%s: %s\n", name, cairn_errmsg());
				bad++;
			}
			if (t_rand(&seed) % 16 == 0)
				compare_fresh(t, name, rc, &a);
		}
		meta_read_end(t);
		reads++;
		if (t_rand(&seed) % 64 == 0)
			sched_yield();  /* move between CPUs now and then */
	}
	return NULL;
}

static void test_concurrent(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/conc", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	o.map_size = 1 << 20;  /* grows a few times during the run */
	REQUIRE_OK(meta_open(dir, &o, &m));
	meta_attr d;
	REQUIRE_OK(w_mkdir(m, META_ROOT_INO, "d", &d));
	dir_ino = d.ino;
	uint64_t seed = t_seed();
	pthread_t th[NREADERS];
	for (int i = 0; i < NREADERS; i++)
		REQUIRE(pthread_create(&th[i], NULL, reader,
				       (void *)(uintptr_t)(seed + (uint64_t)i)) == 0);
	uint64_t rounds = t_scaled(3000);
	uint64_t size0 = m->map_size;
	for (uint64_t i = 0; i < rounds; i++) {
		char name[32];
		snprintf(name, sizeof name, "v%llu", (unsigned long long)i);
		CHECK_OK(w_create(m, dir_ino, name, NULL));
		__atomic_store_n(&done_n, i + 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NREADERS; i++)
		pthread_join(th[i], NULL);
	printf("reads %ld, compared with fresh transactions %ld, map %llu -> %llu MiB\n",
	       (long)reads, (long)compared, (unsigned long long)(size0 >> 20),
	       (unsigned long long)(m->map_size >> 20));
	CHECK(bad == 0);
	CHECK(reads > 0);
	CHECK(compared > 0);
	CHECK(m->map_size > size0);  /* the readers ran across growths */
	for (unsigned i = 0; i < META_RSHARDS; i++)
		CHECK(__atomic_load_n(&m->rshard[i].active, __ATOMIC_ACQUIRE) == 0);
	meta_fsck_result r;
	CHECK_OK(meta_fsck(m, 0, stderr, &r));
	CHECK(r.problems == 0);
	CHECK_OK(meta_close(m));
	m = NULL;
}

/* ---- key order ---- */

static int sign(int v) { return (v > 0) - (v < 0); }

static void test_key_order(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/plain", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	/* LMDB's own comparison: a table with no comparator set */
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	REQUIRE(mdb_env_create(&env) == 0);
	REQUIRE(mdb_env_set_maxdbs(env, 2) == 0);
	REQUIRE(mdb_env_open(env, dir, 0, 0644) == 0);
	REQUIRE(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	REQUIRE(mdb_dbi_open(txn, "t", MDB_CREATE, &dbi) == 0);
	uint64_t seed = t_seed(), pairs = t_scaled(200000), differ = 0;
	uint8_t ka[48], kb[48];
	for (uint64_t i = 0; i < pairs; i++) {
		size_t la = t_rand(&seed) % 41, lb, common;
		t_fill(ka, sizeof ka, t_rand(&seed));
		/* kb shares a prefix of random length with ka, then differs
		 * (or not) in one byte, and has a length of its own */
		lb = (i % 8 == 0) ? la : t_rand(&seed) % 41;
		common = t_rand(&seed) % 41;
		t_fill(kb, sizeof kb, t_rand(&seed));
		memcpy(kb, ka, common);
		if (i % 4 == 0 && common < 40)
			kb[common] = (uint8_t)(ka[common] ^ (1u << (t_rand(&seed) % 8)));
		MDB_val a = { la, ka }, b = { lb, kb };
		int want = sign(mdb_cmp(txn, dbi, &a, &b));
		int got = sign(meta_key_cmp(&a, &b));
		if (got != want) {
			fprintf(stderr, "pair %llu: lengths %zu/%zu, LMDB %d, meta_key_cmp %d\n",
				(unsigned long long)i, la, lb, want, got);
			CHECK(got == want);
			break;
		}
		CHECK(sign(meta_key_cmp(&b, &a)) == -want);
		differ += want != 0;
	}
	CHECK(differ > pairs / 2);
	mdb_txn_abort(txn);
	mdb_env_close(env);

	/* A grown directory table: every entry a cursor walk sees (in
	 * order, nothing compared) is found by lookup, with its inode. */
	snprintf(dir, sizeof dir, "%s/order", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	REQUIRE_OK(meta_open(dir, &o, &m));
	meta_attr d;
	REQUIRE_OK(w_mkdir(m, META_ROOT_INO, "d", &d));
	for (int i = 0; i < 3000; i++) {
		char name[64];
		/* names of many lengths, bytes above 0x7f, common prefixes */
		snprintf(name, sizeof name, "%s%x\xc3\xa9%d", i % 3 ? "f" : "longer-prefix-", i, i % 7);
		CHECK_OK(w_create(m, d.ino, name, NULL));
	}
	meta_txn *t;
	REQUIRE_OK(meta_read_begin(m, &t));
	MDB_cursor *c;
	REQUIRE_OK(mt_cursor(t, MT_DIRENT, &c));
	MDB_val k, v, pk = { 0, NULL };
	uint8_t prev[8 + META_NAME_MAX];
	int n = 0, err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	for (; !err; err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		REQUIRE(k.mv_size >= 8 && k.mv_size <= sizeof prev);
		if (pk.mv_data) {
			size_t l = pk.mv_size < k.mv_size ? pk.mv_size : k.mv_size;
			int r = memcmp(prev, k.mv_data, l);
			CHECK(r < 0 || (r == 0 && pk.mv_size < k.mv_size));
		}
		memcpy(prev, k.mv_data, k.mv_size);
		pk.mv_size = k.mv_size;
		pk.mv_data = prev;
		uint64_t parent = 0;
		for (int i = 0; i < 8; i++)
			parent = parent << 8 | ((const uint8_t *)k.mv_data)[i];
		char name[META_NAME_MAX + 1];
		memcpy(name, (const uint8_t *)k.mv_data + 8, k.mv_size - 8);
		name[k.mv_size - 8] = 0;
		uint64_t ino = 0;
		for (int i = 9; i >= 2; i--)
			ino = ino << 8 | ((const uint8_t *)v.mv_data)[i];
		meta_attr a;
		int rc = meta_lookup(t, parent, name, &a);
		if (rc || a.ino != ino) {
			fprintf(stderr, "%s in %llu: rc %d, inode %llu, want %llu\n", name,
				(unsigned long long)parent, rc, (unsigned long long)a.ino,
				(unsigned long long)ino);
			CHECK(rc == 0 && a.ino == ino);
		}
		n++;
	}
	CHECK(err == MDB_NOTFOUND);
	CHECK(n == 3001);  /* "d" and its files */
	mdb_cursor_close(c);
	meta_read_end(t);
	CHECK_OK(meta_close(m));
	m = NULL;
}

/* ---- growth waits for readers; readers wait for growth ---- */

static int grow_rc = -1, grown;  /* atomic */
static void *grower(void *arg)
{
	(void)arg;
	int rc = meta_env_grow(m);
	__atomic_store_n(&grow_rc, rc, __ATOMIC_RELEASE);
	__atomic_store_n(&grown, 1, __ATOMIC_RELEASE);
	return NULL;
}

static uint64_t late_size;
static void *late_reader(void *arg)
{
	(void)arg;
	meta_txn *t;
	if (meta_read_begin(m, &t))
		return (void *)1;
	/* only after the growth: the map size is the new one */
	late_size = m->map_size;
	meta_attr a;
	int rc = meta_getattr(t, META_ROOT_INO, &a);
	meta_read_end(t);
	return rc ? (void *)2 : NULL;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
}

static void test_grow_excludes(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/grow", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	o.map_size = 1 << 20;
	REQUIRE_OK(meta_open(dir, &o, &m));
	uint64_t size0 = m->map_size;
	meta_txn *held;
	REQUIRE_OK(meta_read_begin(m, &held));
	pthread_t g, r;
	REQUIRE(pthread_create(&g, NULL, grower, NULL) == 0);
	/* the grower announces itself, then waits for `held` */
	for (int i = 0; i < 10000 && !__atomic_load_n(&m->rs_growing, __ATOMIC_ACQUIRE); i++)
		sleep_ms(1);
	CHECK(__atomic_load_n(&m->rs_growing, __ATOMIC_ACQUIRE) == 1);
	REQUIRE(pthread_create(&r, NULL, late_reader, NULL) == 0);
	sleep_ms(50);
	/* a correct growth cannot have finished: a reader is in */
	CHECK(__atomic_load_n(&grown, __ATOMIC_ACQUIRE) == 0);
	CHECK(m->map_size == size0);
	meta_attr a;
	CHECK_OK(meta_getattr(held, META_ROOT_INO, &a));
	meta_read_end(held);
	void *rr;
	pthread_join(g, NULL);
	pthread_join(r, &rr);
	CHECK(rr == NULL);
	CHECK_OK(__atomic_load_n(&grow_rc, __ATOMIC_ACQUIRE));
	CHECK(m->map_size == 2 * size0);
	CHECK(late_size == 2 * size0);
	CHECK(__atomic_load_n(&m->rs_growing, __ATOMIC_ACQUIRE) == 0);
	CHECK_OK(r_getattr(m, META_ROOT_INO, &a));
	CHECK_OK(meta_close(m));
	m = NULL;
}

/* ---- a transaction cached by another CPU's shard is found ---- */

static void run_on(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	REQUIRE(pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0);
}

/* With max_readers 4, a thread that ended a transaction on one CPU and
 * moved to another still gets four: the idle one cached in the first
 * CPU's shard is taken, not counted against the limit as a fifth. */
static void test_other_shard(const char *base)
{
	cpu_set_t all;
	REQUIRE(pthread_getaffinity_np(pthread_self(), sizeof all, &all) == 0);
	int a = -1, b = -1;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &all)) {
			if (a < 0)
				a = c;
			else if (b < 0 && c % META_RSHARDS != a % META_RSHARDS)
				b = c;
		}
	CHECK(a >= 0);
	if (b < 0) {
		printf("one CPU usable: the other-shard case is not run\n");
		return;
	}
	char dir[600];
	snprintf(dir, sizeof dir, "%s/steal", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	o.max_readers = 4;
	REQUIRE_OK(meta_open(dir, &o, &m));
	meta_txn *t[5];
	run_on(a);
	REQUIRE_OK(meta_read_begin(m, &t[0]));
	meta_read_end(t[0]);
	CHECK(__atomic_load_n(&m->rshard[a % META_RSHARDS].slot, __ATOMIC_ACQUIRE) != 0);
	run_on(b);
	for (int i = 0; i < 4; i++)
		REQUIRE_OK(meta_read_begin(m, &t[i]));
	CHECK_RC(meta_read_begin(m, &t[4]), CAIRN_E_BUSY);
	for (int i = 0; i < 4; i++)
		meta_read_end(t[i]);
	REQUIRE(pthread_setaffinity_np(pthread_self(), sizeof all, &all) == 0);
	CHECK_OK(meta_close(m));
	m = NULL;
}

/* ---- a sync while growth has the map unmapped ----
 *
 * mdb_env_set_mapsize unmaps the map, then maps it again (bigger, maybe
 * elsewhere).  In the modes other than PINNED, meta_sync_upto runs outside
 * leadership (the flusher, a synced caller after its commit), so it may run
 * right then: it must not touch the map (mdb_env_sync msyncs it, which
 * fails with ENOMEM there, and the failure is sticky).  Here the map is
 * unmapped as growth does, meta_sync runs, and the file is mapped again at
 * the same address before anything else looks. */

/* The address range of dir/data.mdb's writable shared map, from
 * /proc/self/maps. */
static int find_map(const char *dir, uintptr_t *lo, uintptr_t *hi)
{
	char want[700], line[1024];
	snprintf(want, sizeof want, "%s/data.mdb", dir);
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	int found = 0;
	while (!found && fgets(line, sizeof line, f)) {
		unsigned long a, b;
		char perm[8];
		int off = 0;
		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &a, &b, perm, &off) != 3 || !off)
			continue;
		const char *path = line + off;
		size_t pl = strlen(path), wl = strlen(want);
		if (strcmp(perm, "rw-s") == 0 && pl >= wl && strcmp(path + pl - wl, want) == 0) {
			*lo = a;
			*hi = b;
			found = 1;
		}
	}
	fclose(f);
	return found ? 0 : -1;
}

static void test_sync_unmapped(const char *base)
{
	char made[600], dir[4096];
	snprintf(made, sizeof made, "%s/syncgrow", base);
	REQUIRE(mkdir(made, 0755) == 0);
	REQUIRE(realpath(made, dir) != NULL);  /* as /proc/self/maps names it */
	meta_opts o = t_opts();
	o.safe_relaxed = META_RELAXED_UNSAFE;
	o.writemap = 1;
	o.flush_interval_ms = 3600 * 1000;  /* no background pass meanwhile */
	REQUIRE_OK(meta_open(dir, &o, &m));
	CHECK_OK(w_create(m, META_ROOT_INO, "s", NULL));  /* relaxed: not synced */
	uintptr_t lo = 0, hi = 0;
	int fd;
	REQUIRE(find_map(dir, &lo, &hi) == 0);
	REQUIRE(mdb_env_get_fd(m->env, &fd) == 0);
	REQUIRE(munmap((void *)lo, hi - lo) == 0);
	int rc = meta_sync(m);
	void *p = mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	REQUIRE(p == (void *)lo);
	if (rc)
		fprintf(stderr, "sync with the map unmapped: %s\n", cairn_errmsg());
	CHECK_OK(rc);
	CHECK_OK(r_lookup(m, META_ROOT_INO, "s", NULL));
	CHECK_OK(w_create(m, META_ROOT_INO, "s2", NULL));
	CHECK_OK(meta_sync(m));
	CHECK_OK(meta_close(m));
	m = NULL;
}

int main(void)
{
	const char *base = t_tmpdir("meta_read");
	test_key_order(base);
	test_concurrent(base);
	test_grow_excludes(base);
	test_other_shard(base);
	test_sync_unmapped(base);
	t_rmtree(base);
	return t_done();
}
