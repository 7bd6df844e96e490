/*
 * test_recover_crash.c - recovery after a writer is killed (SIGKILL) at a
 * random moment.  A child process runs a random workload on a live tree
 * (creates, overwrites, deletes, renames); after each round it snapshots
 * the tree as r<K>, calls volume_ship_flush and then writes to a pipe what
 * r<K> holds (path, size, content seed).  The parent kills it at a random
 * moment, rebuilds the volume from the store alone (force: the dead
 * writer's lease is still fresh) and checks that every snapshot reported
 * shipped is there, byte for byte, and that fsck is clean.  Rounds:
 * 3 x CAIRN_TEST_SCALE, each on a new volume and store: on file://, and
 * with argument "s3" on s3rver (recover_crash_s3: 2 x CAIRN_TEST_SCALE
 * rounds, each on a new prefix of one server).
 */
#include <signal.h>
#include <sys/wait.h>

#include "recover_t.h"
#include "t_store.h"

static t_store store;

#define MAX_REPORTS 64

static void child(const char *vol, int fd, uint64_t seed)
{
	cairn_volume_opts vo;
	cairn_volume *v;
	rt_model m = { 0 };
	char path[RT_PATH_MAX], line[400];

	memset(&vo, 0, sizeof vo);
	vo.ship_interval_ms = 50;
	vo.segment_size = 1u << 20;
	vo.seal_age_ms = 50;
	vo.stream_threshold = 2u << 20;
	vo.stream_part_size = 5u << 20;
	vo.stream_chunk_avg = 256u << 10;
	if (volume_open(vol, &vo, &v)) {
		fprintf(stderr, "child: open: %s\n", cairn_errmsg());
		_exit(2);
	}
	for (int k = 1; k < MAX_REPORTS; k++) {
		int ops = 5 + (int)(t_rand(&seed) % 30);
		for (int i = 0; i < ops; i++) {
			unsigned what = (unsigned)(t_rand(&seed) % 10);
			snprintf(path, sizeof path, "w/d%d/f%d", (int)(t_rand(&seed) % 4),
				 (int)(t_rand(&seed) % 40));
			rt_file *f = rt_find(&m, path);
			if (what < 6 || !f) {
				uint64_t size = t_rand(&seed) % 50000, s = t_rand(&seed);
				if (t_rand(&seed) % 40 == 0)
					size = (3u << 20) + t_rand(&seed) % (2u << 20);  /* streamed */
				rt_write(v, path, size, s);
				rt_set(&m, path, size, s);
			} else if (what < 8) {
				uint64_t d;
				char leaf[256];
				REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, path, 0, 1, &d, leaf));
				REQUIRE_OK(volume_unlink(v, d, leaf));
				rt_del(&m, path);
			} else {
				char dst[RT_PATH_MAX], sl[256], dl[256];
				uint64_t sd, dd;
				snprintf(dst, sizeof dst, "w/moved/m%d", (int)(t_rand(&seed) % 30));
				if (rt_find(&m, dst))
					continue;
				uint64_t size = f->size, s = f->seed;
				REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, path, 0, 1, &sd, sl));
				REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, dst, 1, 1, &dd, dl));
				REQUIRE_OK(volume_rename(v, sd, sl, dd, dl, 0));
				rt_del(&m, path);
				rt_set(&m, dst, size, s);
			}
		}
		uint64_t w;
		char leaf[256], name[32];
		if (rt_walk(v, CAIRN_ROOT_INO, "w", 1, 0, &w, leaf))
			_exit(2);
		snprintf(name, sizeof name, "r%d", k);
		REQUIRE_OK(volume_snapshot_create(v, w, name, NULL));
		REQUIRE_OK(volume_ship_flush(v));
		/* shipped: say what r<k> holds */
		int n = snprintf(line, sizeof line, "SNAP %d %zu\n", k, m.n);
		if (write(fd, line, (size_t)n) != n)
			_exit(2);
		for (size_t i = 0; i < m.n; i++) {
			n = snprintf(line, sizeof line, "%s %llu %llu\n", m.f[i].path + 2,
				     (unsigned long long)m.f[i].size,
				     (unsigned long long)m.f[i].seed);
			if (write(fd, line, (size_t)n) != n)
				_exit(2);
		}
		if (write(fd, "END\n", 4) != 4)
			_exit(2);
	}
	/* not killed: finish cleanly */
	if (volume_close(v))
		_exit(2);
	_exit(0);
}

typedef struct report {
	int k;
	rt_model m;
} report;

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

static void one_round(const char *tmp, int round, uint64_t *seed)
{
	char base[700], vol[800], rec[800], url[900];
	cairn_format_opts fo = { 0 };
	report rep[MAX_REPORTS];
	int nrep = 0, p[2];

	snprintf(base, sizeof base, "%s/r%d", tmp, round);
	REQUIRE(mkdir(base, 0755) == 0);
	snprintf(vol, sizeof vol, "%s/vol", base);
	snprintf(rec, sizeof rec, "%s/rec", base);
	t_store_new_url(&store, base, "store", url, sizeof url);
	fo.store_url = url;
	REQUIRE_OK(volume_format(vol, &fo));
	REQUIRE(pipe(p) == 0);
	uint64_t cseed = t_rand(seed);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		child(vol, p[1], cseed);
	}
	close(p[1]);
	FILE *in = fdopen(p[0], "r");
	REQUIRE(in != NULL);
	int target = 1 + (int)(t_rand(seed) % 4), killed = 0;
	char line[400];
	report cur;
	int in_rep = 0;
	memset(&cur, 0, sizeof cur);
	while (fgets(line, sizeof line, in)) {
		int k;
		size_t n;
		char pth[RT_PATH_MAX];
		unsigned long long size, s;
		if (sscanf(line, "SNAP %d %zu", &k, &n) == 2) {
			rt_free(&cur.m);
			cur.k = k;
			in_rep = 1;
		} else if (strcmp(line, "END\n") == 0 && in_rep) {
			REQUIRE(nrep < MAX_REPORTS);
			rep[nrep++] = cur;
			memset(&cur, 0, sizeof cur);
			in_rep = 0;
			if (!killed && nrep >= target) {
				/* at a random moment of the next round */
				sleep_ms((int)(t_rand(seed) % 400));
				kill(pid, SIGKILL);
				killed = 1;
			}
		} else if (in_rep && sscanf(line, "%199s %llu %llu", pth, &size, &s) == 3) {
			rt_set(&cur.m, pth, size, s);
		}
	}
	rt_free(&cur.m);
	fclose(in);
	int st = 0;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));
	printf("round %d: %d snapshots reported shipped, writer %s\n", round, nrep,
	       WIFSIGNALED(st) ? "killed" : "exited");
	REQUIRE(nrep > 0);

	cairn_recover_opts ro = { .store_url = url, .force = 1 };
	cairn_recover_result rr;
	REQUIRE_OK(volume_recover_store(rec, &ro, &rr));
	printf("round %d: recovered to LSN %llu (image %llu + %llu objects)\n", round,
	       (unsigned long long)rr.lsn, (unsigned long long)rr.image_lsn,
	       (unsigned long long)rr.log_objects);
	CHECK(rr.fsck_problems == 0);
	cairn_volume_opts vo;
	cairn_volume *v;
	memset(&vo, 0, sizeof vo);
	/* no takeover needed: recovery fenced the dead writer's lease */
	REQUIRE_OK(volume_open(rec, &vo, &v));
	for (int i = 0; i < nrep; i++) {
		char name[32];
		cairn_snap sn;
		snprintf(name, sizeof name, "r%d", rep[i].k);
		CHECK_OK(volume_snapshot_get(v, name, &sn));
		if (!t_failures_)
			CHECK(rt_check_tree(v, sn.root, &rep[i].m, name) == 0);
		rt_free(&rep[i].m);
	}
	CHECK(rt_fsck(v) == 0);
	REQUIRE_OK(volume_close(v));
}

int main(int argc, char **argv)
{
	char tmp[600], url[800];
	uint64_t seed = t_seed();
	snprintf(tmp, sizeof tmp, "%s", t_tmpdir("recover_crash"));
	int s3 = t_store_s3(&store, argc, argv, "crash", url, sizeof url);
	int rounds = (int)t_scaled(s3 ? 2 : 3);
	for (int r = 0; r < rounds; r++)
		one_round(tmp, r, &seed);
	t_store_stop(&store);
	if (!getenv("CAIRN_TEST_KEEP") && !t_failures_)
		t_rmtree(tmp);
	return t_done();
}
