/*
 * t_meta_group.c - group commit under more writers than cores: every
 * caller gets its own result (success, a failure before any change, a
 * failure after changes that the batch must undo, a no-op), a success is
 * visible to a new read transaction the moment meta_write returns, every
 * logged transaction has exactly one LSN and the LSNs are dense, and the
 * WAL record under each LSN is the one its caller wrote.  A ninth thread
 * keeps taking leadership for checkpoints (meta_sync) meanwhile.  Lost
 * wake-ups hang (the test's timeout fails it); a result posted before
 * its batch committed fails the visibility check.
 *
 * Two phases check the protocol's corners directly: a leader whose batch
 * ends in a sync hands leadership to the caller that queued meanwhile
 * (without the hand-over that caller sleeps forever: alarm() fails the
 * test), and a failed commit releases every caller of its batch with the
 * error while the others go on.
 *
 * CAIRN_TEST_SCALE multiplies the operations per thread (default 5,000).
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "t.h"
#include "meta_t.h"
#include "meta_int.h"

#define NTHR 8

static cairn_meta *m;
static int writers_done;

enum { K_CREATE, K_SYNCED, K_FAIL_EARLY, K_FAIL_LATE, K_NOOP, K_NKIND };

typedef struct res { uint64_t lsn; int kind; int rc; } res;

typedef struct thr_arg {
	int id;
	uint64_t n, seed;
	res *r;
	int bad;
	char first[24];
	char why[160];
} thr_arg;

static const unsigned kind_op[K_NKIND] = {
	[K_CREATE] = META_OP_CREATE, [K_SYNCED] = META_OP_CREATE,
	[K_FAIL_EARLY] = META_OP_CREATE, [K_FAIL_LATE] = META_OP_MKDIR,
	[K_NOOP] = META_OP_OTHER,
};

static void *writer(void *arg)
{
	thr_arg *a = arg;
	uint64_t s = a->seed ^ (uint64_t)a->id * 0x9e3779b97f4a7c15ULL;
	for (uint64_t i = 0; i < a->n && !a->bad; i++) {
		int kind = (int)(t_rand(&s) % K_NKIND);
		char name[24];
		snprintf(name, sizeof name, "w%d-%llu", a->id, (unsigned long long)i);
		uint64_t lsn = 1;
		int rc, want = 0;
		if (kind == K_CREATE || kind == K_SYNCED || kind == K_FAIL_EARLY) {
			/* a failing create names the thread's first file again */
			t_op o = { .kind = TO_CREATE, .a = META_ROOT_INO, .mode = 0644,
				   .s1 = kind == K_FAIL_EARLY ? a->first : name };
			want = kind == K_FAIL_EARLY ? CAIRN_E_EXISTS : 0;
			rc = meta_write(m, kind == K_SYNCED ? META_SYNCED : META_RELAXED,
					kind_op[kind], t_op_fn, &o, &lsn);
		} else if (kind == K_FAIL_LATE) {
			t_two x;
			snprintf(x.a, sizeof x.a, "d%d-%llu", a->id, (unsigned long long)i);
			memcpy(x.b, x.a, sizeof x.b);
			want = CAIRN_E_EXISTS;
			rc = meta_write(m, META_RELAXED, kind_op[kind], t_two_fn, &x, &lsn);
		} else {
			rc = meta_write(m, META_RELAXED, kind_op[kind], t_noop_fn, NULL, &lsn);
		}
		a->r[i] = (res){ lsn, kind, rc };
		if (rc != want) {
			snprintf(a->why, sizeof a->why, "thread %d op %llu kind %d: rc %d, want %d (%s)",
				 a->id, (unsigned long long)i, kind, rc, want, cairn_errmsg());
			a->bad = 1;
			break;
		}
		/* logged: an LSN; failed or read-only: none */
		int logged = !rc && kind != K_NOOP;
		if (logged != (lsn != 0)) {
			snprintf(a->why, sizeof a->why, "thread %d op %llu kind %d: LSN %llu",
				 a->id, (unsigned long long)i, kind, (unsigned long long)lsn);
			a->bad = 1;
			break;
		}
		/* returned means committed: a new reader sees it now */
		if (kind == K_CREATE || kind == K_SYNCED || kind == K_FAIL_LATE) {
			char d[24];
			snprintf(d, sizeof d, "d%d-%llu", a->id, (unsigned long long)i);
			int lrc = r_lookup(m, META_ROOT_INO, kind == K_FAIL_LATE ? d : name, NULL);
			if (lrc != (kind == K_FAIL_LATE ? CAIRN_E_NOTFOUND : 0)) {
				snprintf(a->why, sizeof a->why,
					 "thread %d op %llu kind %d: lookup after return: rc %d",
					 a->id, (unsigned long long)i, kind, lrc);
				a->bad = 1;
			}
		}
	}
	return NULL;
}

static void *syncer(void *arg)
{
	int *fails = arg;
	while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE)) {
		if (meta_sync(m))
			(*fails)++;
		usleep(200);
	}
	return NULL;
}

typedef struct walchk { uint64_t base, n, seen, bad_op; const unsigned *op; } walchk;

static int wal_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	walchk *w = arg;
	uint64_t hl;
	unsigned op;
	uint32_t ne;
	if (meta_wal_decode(rec, len, &hl, &op, &ne) || hl != lsn || lsn <= w->base ||
	    lsn > w->base + w->n)
		return 1;
	if (w->op[lsn - w->base - 1] != op)
		w->bad_op++;
	w->seen++;
	return 0;
}


/* A fresh environment in base/name. */
static void open_sub(const char *base, const char *name, const meta_opts *o, cairn_meta **out)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/%s", base, name);
	REQUIRE(mkdir(dir, 0755) == 0);
	REQUIRE_OK(meta_open(dir, o, out));
}

/* ---- hand-over after a synced batch ---- */

static cairn_meta *hm;
static int h_in_cb;

/* runs inside the leader's batch until a second caller has queued */
static int wait_queued_fn(meta_txn *t, void *arg)
{
	__atomic_store_n(&h_in_cb, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 100000; i++) {
		pthread_mutex_lock(&hm->q_lock);
		int queued = hm->q_head != NULL;
		pthread_mutex_unlock(&hm->q_lock);
		if (queued)
			break;
		usleep(100);
	}
	return t_op_fn(t, arg);
}

static void *h_first(void *arg)
{
	t_op o = { .kind = TO_CREATE, .a = META_ROOT_INO, .s1 = "h1", .mode = 0644 };
	*(int *)arg = meta_write(hm, META_SYNCED, META_OP_CREATE, wait_queued_fn, &o, NULL);
	return NULL;
}

static void *h_second(void *arg)
{
	t_op o = { .kind = TO_CREATE, .a = META_ROOT_INO, .s1 = "h2", .mode = 0644 };
	*(int *)arg = meta_write(hm, META_RELAXED, META_OP_CREATE, t_op_fn, &o, NULL);
	return NULL;
}

static void phase_handover(const char *base)
{
	meta_opts o = t_opts();
	/* no flusher, no checkpoint threads: nobody else hands over */
	o.flush_interval_ms = 0;
	o.safe_relaxed = META_RELAXED_SYNC_EACH;
	open_sub(base, "handover", &o, &hm);
	int r1 = -1, r2 = -1;
	pthread_t a, b;
	alarm(60);  /* a lost hand-over hangs: fail instead */
	REQUIRE(pthread_create(&a, NULL, h_first, &r1) == 0);
	while (!__atomic_load_n(&h_in_cb, __ATOMIC_ACQUIRE))
		usleep(100);
	REQUIRE(pthread_create(&b, NULL, h_second, &r2) == 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	alarm(0);
	CHECK(r1 == 0 && r2 == 0);
	CHECK_OK(r_lookup(hm, META_ROOT_INO, "h1", NULL));
	CHECK_OK(r_lookup(hm, META_ROOT_INO, "h2", NULL));
	CHECK_OK(meta_close(hm));
}

/* ---- a failed commit in the middle of concurrent batches ---- */

typedef struct fthr { int id, ok, io, other; } fthr;

static void *f_writer(void *arg)
{
	fthr *f = arg;
	for (int i = 0; i < 50; i++) {
		char name[24];
		snprintf(name, sizeof name, "f%d-%d", f->id, i);
		t_op o = { .kind = TO_CREATE, .a = META_ROOT_INO, .s1 = name, .mode = 0644 };
		int rc = meta_write(hm, META_RELAXED, META_OP_CREATE, t_op_fn, &o, NULL);
		int seen = r_lookup(hm, META_ROOT_INO, name, NULL);
		if (rc == 0 && seen == 0)
			f->ok++;
		else if (rc == CAIRN_E_IO && seen == CAIRN_E_NOTFOUND)
			f->io++;
		else
			f->other++;
	}
	return NULL;
}

static void phase_commit_fault(const char *base)
{
	meta_opts o = t_opts();
	open_sub(base, "fault", &o, &hm);
	meta_fault_set(hm, MF_COMMIT, 40, EIO);
	fthr f[NTHR];
	pthread_t th[NTHR];
	alarm(120);
	for (int i = 0; i < NTHR; i++) {
		f[i] = (fthr){ .id = i };
		REQUIRE(pthread_create(&th[i], NULL, f_writer, &f[i]) == 0);
	}
	int ok = 0, io = 0, other = 0;
	for (int i = 0; i < NTHR; i++) {
		pthread_join(th[i], NULL);
		ok += f[i].ok;
		io += f[i].io;
		other += f[i].other;
	}
	alarm(0);
	/* one batch failed: at least its leader's write, at most all */
	printf("commit fault: %d written, %d failed with the batch\n", ok, io);
	CHECK(other == 0 && io >= 1 && io <= NTHR && ok + io == 50 * NTHR);
	CHECK_OK(meta_close(hm));
}

int main(void)
{
	const char *base = t_tmpdir("meta_group");
	phase_handover(base);
	phase_commit_fault(base);
	meta_opts o = t_opts();
	o.wal_keep = 100000000;  /* the check reads every record back */
	open_sub(base, "stress", &o, &m);

	uint64_t n = t_scaled(5000), seed = t_seed();
	thr_arg a[NTHR];
	pthread_t th[NTHR], sy;
	int sync_fails = 0;
	for (int i = 0; i < NTHR; i++) {
		a[i] = (thr_arg){ .id = i, .n = n, .seed = seed };
		snprintf(a[i].first, sizeof a[i].first, "first%d", i);
		REQUIRE_OK(w_create(m, META_ROOT_INO, a[i].first, NULL));
		a[i].r = calloc(n, sizeof *a[i].r);
		REQUIRE(a[i].r);
	}
	uint64_t f0, l0;
	REQUIRE_OK(meta_wal_bounds(m, &f0, &l0));
	REQUIRE(pthread_create(&sy, NULL, syncer, &sync_fails) == 0);
	for (int i = 0; i < NTHR; i++)
		REQUIRE(pthread_create(&th[i], NULL, writer, &a[i]) == 0);
	for (int i = 0; i < NTHR; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
	pthread_join(sy, NULL);
	CHECK(sync_fails == 0);
	int bad = 0;
	for (int i = 0; i < NTHR; i++)
		if (a[i].bad) {
			printf("FAIL: %s\n", a[i].why);
			bad = 1;
		}
	REQUIRE(!bad);

	/* every logged transaction has one LSN, and they are dense after l0 */
	uint64_t logged = 0, dup = 0, out = 0;
	for (int i = 0; i < NTHR; i++)
		for (uint64_t j = 0; j < n; j++)
			logged += a[i].r[j].lsn != 0;
	unsigned *op = calloc(logged, sizeof *op);
	REQUIRE(op);
	for (int i = 0; i < NTHR; i++)
		for (uint64_t j = 0; j < n; j++) {
			uint64_t l = a[i].r[j].lsn;
			if (!l)
				continue;
			if (l <= l0 || l > l0 + logged) {
				out++;
				continue;
			}
			if (op[l - l0 - 1])
				dup++;
			op[l - l0 - 1] = kind_op[a[i].r[j].kind];
		}
	CHECK(out == 0 && dup == 0);
	uint64_t f1, l1;
	CHECK_OK(meta_wal_bounds(m, &f1, &l1));
	CHECK(l1 == l0 + logged);
	walchk w = { l0, logged, 0, 0, op };
	CHECK_OK(meta_wal_read(m, l0 + 1, wal_cb, &w));
	CHECK(w.seen == logged && w.bad_op == 0);
	printf("%llu writes by %d threads, %llu logged, in %llu LMDB commits\n",
	       (unsigned long long)(n * NTHR), NTHR, (unsigned long long)logged,
	       (unsigned long long)meta_commits(m));

	/* what each thread created is there; what failed late left nothing */
	for (int i = 0; i < NTHR; i++)
		for (uint64_t j = 0; j < n; j++) {
			char name[24];
			int k = a[i].r[j].kind;
			if (k == K_NOOP || k == K_FAIL_EARLY)
				continue;
			snprintf(name, sizeof name, k == K_FAIL_LATE ? "d%d-%llu" : "w%d-%llu", i,
				 (unsigned long long)j);
			int rc = r_lookup(m, META_ROOT_INO, name, NULL);
			if (rc != (k == K_FAIL_LATE ? CAIRN_E_NOTFOUND : 0)) {
				printf("FAIL: %s: rc %d\n", name, rc);
				bad = 1;
			}
		}
	CHECK(!bad);
	meta_fsck_result fr;
	CHECK_OK(meta_fsck(m, 0, stdout, &fr));
	CHECK(fr.problems == 0);
	CHECK_OK(meta_close(m));
	for (int i = 0; i < NTHR; i++)
		free(a[i].r);
	free(op);
	return t_done();
}
