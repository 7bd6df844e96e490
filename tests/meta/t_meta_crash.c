/*
 * t_meta_crash.c - kill -9 at random moments.  A child process opens the
 * environment and, from three threads (two META_SYNCED, one META_RELAXED),
 * commits a stream of transactions (create + extent write + rename, a
 * directory now and then); after each acknowledgement it reports the
 * operation on a pipe.  The parent SIGKILLs it after a random delay,
 * reopens, and checks that fsck is clean and that every acknowledged
 * operation is present, synced and relaxed alike (a process crash never
 * loses a committed transaction; only an OS crash may lose relaxed ones).
 * Rounds: t_scaled(15).
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "t.h"
#include "meta_t.h"

#define NTH 3

typedef struct ack { uint32_t round, th, i; } ack;

static const char *dir;
static int pfd[2];
static cairn_meta *m;
static uint64_t chunk_id;

typedef struct cop {
	char tmp[64], fin[64];
	uint64_t size, chunk;
	int mkdir;
} cop;

static int cop_fn(meta_txn *t, void *arg)
{
	cop *o = arg;
	meta_attr a;
	int rc;
	if (o->mkdir)
		return meta_mkdir(t, META_ROOT_INO, o->fin, 0755, 0, 0, &a);
	if ((rc = meta_create(t, META_ROOT_INO, o->tmp, 0644, 0, 0, &a)))
		return rc;
	if ((rc = meta_extent_write(t, a.ino, 0, o->size, o->chunk, 0)))
		return rc;
	return meta_rename(t, META_ROOT_INO, o->tmp, META_ROOT_INO, o->fin, 0);
}

static uint32_t round_no;

static int count_tmp(const char *name, size_t nl, uint64_t ino, uint32_t type, uint64_t cookie,
		     void *arg)
{
	(void)ino; (void)type; (void)cookie;
	if (nl > 4 && !memcmp(name, "tmp.", 4))
		(*(size_t *)arg)++;
	return 0;
}

static void *child_thread(void *arg)
{
	uint32_t th = (uint32_t)(uintptr_t)arg;
	meta_durability d = th == NTH - 1 ? META_RELAXED : META_SYNCED;
	for (uint32_t i = 0;; i++) {
		cop o;
		memset(&o, 0, sizeof o);
		snprintf(o.tmp, sizeof o.tmp, "tmp.%u.%u.%u", round_no, th, i);
		snprintf(o.fin, sizeof o.fin, "f.%u.%u.%u", round_no, th, i);
		o.size = 1 + i % 4000;
		o.chunk = chunk_id;
		o.mkdir = i % 17 == 5;
		int rc = meta_write(m, d, META_OP_CREATE, cop_fn, &o, NULL);
		if (rc) {
			fprintf(stderr, "child: %s\n", cairn_errmsg());
			_exit(3);
		}
		ack a = { round_no, th, i };
		if (write(pfd[1], &a, sizeof a) != (ssize_t)sizeof a)
			_exit(4);
	}
	return NULL;
}

static void child_main(void)
{
	meta_opts o = t_opts();
	o.map_size = 4ULL << 20;  /* small: growth happens under the kills too */
	if (meta_open(dir, &o, &m)) {
		fprintf(stderr, "child open: %s\n", cairn_errmsg());
		_exit(2);
	}
	meta_txn *t;
	meta_attr a;
	if (meta_read_begin(m, &t) == 0) {
		if (meta_lookup(t, META_ROOT_INO, "chunkfile", &a) == 0) {
			meta_extent e;
			size_t n;
			if (meta_extent_lookup(t, a.ino, 0, 1, &e, 1, &n) == 0 && n == 1)
				chunk_id = e.chunk;
		}
		meta_read_end(t);
	}
	if (!chunk_id)
		_exit(5);
	pthread_t th[NTH];
	for (uintptr_t i = 0; i < NTH; i++)
		pthread_create(&th[i], NULL, child_thread, (void *)i);
	for (;;)
		pause();
}

static int replay_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	(void)lsn;
	int *rc = ((void **)arg)[1];
	*rc = meta_wal_apply((cairn_meta *)((void **)arg)[0], rec, len);
	return *rc;
}

int main(void)
{
	uint64_t seed = t_seed(), rng = seed;
	dir = t_tmpdir("meta_crash");
	/* the chunk every file points at */
	{
		meta_opts o = t_opts();
		uint64_t seg, c;
		meta_attr a;
		REQUIRE_OK(meta_open(dir, &o, &m));
		REQUIRE_OK(w_seg_new(m, &seg));
		REQUIRE_OK(w_chunk(m, seg, 0, 4096, 1, &c));
		REQUIRE_OK(w_create(m, META_ROOT_INO, "chunkfile", &a));
		REQUIRE_OK(w_extw(m, a.ino, 0, 4096, c, 0));
		REQUIRE_OK(meta_close(m));
	}
	uint32_t rounds = (uint32_t)t_scaled(15);
	uint64_t total = 0;
	for (round_no = 0; round_no < rounds; round_no++) {
		REQUIRE(pipe(pfd) == 0);
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			child_main();
		}
		close(pfd[1]);
		struct timespec ts = { 0, (long)(20 + t_rand(&rng) % 150) * 1000000L };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		/* every acknowledged op, then verify */
		static ack acks[1 << 20];
		size_t na = 0;
		ssize_t r;
		while (na < sizeof acks / sizeof acks[0] &&
		       (r = read(pfd[0], &acks[na], sizeof acks[0])) == (ssize_t)sizeof acks[0])
			na++;
		close(pfd[0]);
		meta_opts o = t_opts();
		REQUIRE_OK(meta_open(dir, &o, &m));
		meta_fsck_result fr;
		CHECK_OK(meta_fsck(m, 0, stderr, &fr));
		CHECK(fr.problems == 0);
		size_t missing = 0;
		for (size_t i = 0; i < na; i++) {
			char name[64];
			meta_attr a;
			snprintf(name, sizeof name, "f.%u.%u.%u", acks[i].round, acks[i].th, acks[i].i);
			int rc = r_lookup(m, META_ROOT_INO, name, &a);
			if (rc) {
				if (!missing++)
					fprintf(stderr, "round %u: acknowledged '%s' lost: %s\n", round_no, name,
						cairn_errmsg());
				continue;
			}
			if (acks[i].i % 17 != 5 && a.size != 1 + acks[i].i % 4000)
				missing++;
		}
		CHECK(missing == 0);
		/* no temporary name may survive: each op is all or nothing */
		size_t ntmp = 0;
		meta_txn *t;
		REQUIRE_OK(meta_read_begin(m, &t));
		CHECK_OK(meta_readdir(t, META_ROOT_INO, 0, count_tmp, &ntmp));
		meta_read_end(t);
		CHECK(ntmp == 0);
		total += na;
		REQUIRE_OK(meta_close(m));
	}
	printf("%llu acknowledged transactions over %u kills\n", (unsigned long long)total, rounds);
	/* the log survived every kill without a gap: replaying it from LSN 1
	 * rebuilds the same metadata */
	{
		char rdir[700];
		snprintf(rdir, sizeof rdir, "%s/replica", dir);
		REQUIRE(mkdir(rdir, 0755) == 0);
		meta_opts o = t_opts(), ro = t_opts();
		ro.replica = 1;
		cairn_meta *r;
		REQUIRE_OK(meta_open(dir, &o, &m));
		REQUIRE_OK(meta_open(rdir, &ro, &r));
		int arc = 0;
		void *args[2] = { r, &arc };
		CHECK_OK(meta_wal_read(m, 1, replay_cb, args));
		CHECK_OK(arc);
		uint8_t d1[32], d2[32];
		CHECK_OK(meta_digest(m, d1));
		CHECK_OK(meta_digest(r, d2));
		CHECK(!memcmp(d1, d2, 32));
		CHECK_OK(meta_close(r));
		CHECK_OK(meta_close(m));
	}
	CHECK(total > 0);
	t_rmtree(dir);
	return t_done();
}
