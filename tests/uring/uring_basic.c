/*
 * uring_basic.c - the I/O engine's contract on good input: many ops in
 * flight with every byte verified, short reads at end of file, ops larger
 * than one SQE, several threads at once, O_DIRECT, and the sync helpers.
 * Runs on whichever engine CAIRN_IO_ENGINE (or AUTO) selects.
 */
#include <fcntl.h>
#include <pthread.h>

#include "cairn/uring.h"
#include "t.h"
#include "uring_int.h"

static char dir[512];
static uint64_t seed;

static int open_file(const char *name, int flags)
{
	char path[700];
	int fd;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | flags, 0644);
	return fd;
}

/* Many ops in flight through the streaming API, the queue kept full. */
static void test_queue_full_pipeline(cairn_uring *u)
{
	enum { BLK = 65536, NBLK = 96 };
	uint8_t *data = malloc((size_t)BLK * NBLK);
	uint8_t *back = malloc((size_t)BLK * NBLK);
	uring_op ops[NBLK];
	cairn_uring_q *q;
	unsigned maxin = 0;
	size_t next = 0, reaped = 0;
	int fd = open_file("pipe", O_TRUNC);

	REQUIRE(data && back && fd >= 0);
	t_fill(data, (size_t)BLK * NBLK, seed);
	memset(back, 0, (size_t)BLK * NBLK);
	REQUIRE_OK(uring_q_get(u, &q));
	CHECK(uring_q_depth(q) == 16);
	memset(ops, 0, sizeof ops);
	for (int i = 0; i < NBLK; i++) {
		ops[i].op = URING_OP_WRITE;
		ops[i].fd = fd;
		ops[i].buf = data + (size_t)i * BLK;
		ops[i].len = BLK;
		/* out of order on purpose: ops have no order among them */
		ops[i].off = (uint64_t)((i * 37) % NBLK) * BLK;
		ops[i].buf = data + ops[i].off;
		ops[i].user = &ops[i];
	}
	while (next < NBLK || uring_q_inflight(q)) {
		uring_op *done;
		while (next < NBLK && uring_q_inflight(q) < uring_q_depth(q))
			CHECK_OK(uring_q_submit(q, &ops[next++]));
		if (uring_q_inflight(q) > maxin)
			maxin = uring_q_inflight(q);
		CHECK_OK(uring_q_reap(q, &done));
		REQUIRE(done != NULL);
		CHECK(done->user == done);
		CHECK(done->done == BLK && done->err == 0 && done->rc == 0);
		reaped++;
	}
	CHECK(reaped == NBLK);
	CHECK(maxin == 16);

	/* read it back, again with the queue full, into a second buffer */
	for (int i = 0; i < NBLK; i++) {
		ops[i].op = URING_OP_READ;
		ops[i].buf = back + ops[i].off;
	}
	next = 0;
	while (next < NBLK || uring_q_inflight(q)) {
		uring_op *done;
		while (next < NBLK && uring_q_inflight(q) < uring_q_depth(q))
			CHECK_OK(uring_q_submit(q, &ops[next++]));
		CHECK_OK(uring_q_reap(q, &done));
		CHECK(done && done->done == BLK);
	}
	uring_q_put(q);
	CHECK(memcmp(data, back, (size_t)BLK * NBLK) == 0);
	CHECK_OK(uring_fsync(u, fd));
	CHECK_OK(uring_fdatasync(u, fd));
	close(fd);
	free(data);
	free(back);
}

/* uring_run with more ops than the queue depth. */
static void test_run_many(cairn_uring *u)
{
	enum { N = 300, SZ = 4096 };
	uint8_t *data = malloc((size_t)N * SZ), *back = malloc((size_t)N * SZ);
	uring_op *ops = calloc(N, sizeof *ops);
	int fd = open_file("run", O_TRUNC);

	REQUIRE(data && back && ops && fd >= 0);
	t_fill(data, (size_t)N * SZ, seed + 1);
	for (int i = 0; i < N; i++)
		ops[i] = (uring_op){.op = URING_OP_WRITE, .fd = fd,
				    .buf = data + (size_t)i * SZ, .len = SZ,
				    .off = (uint64_t)i * SZ};
	CHECK_OK(uring_run(u, ops, N));
	for (int i = 0; i < N; i++) {
		CHECK(ops[i].done == SZ);
		ops[i].op = URING_OP_READ;
		ops[i].buf = back + (size_t)i * SZ;
	}
	CHECK_OK(uring_run(u, ops, N));
	CHECK(memcmp(data, back, (size_t)N * SZ) == 0);
	CHECK_OK(uring_run(u, ops, 0));

	/* the same through the helpers */
	memset(back, 0, SZ);
	CHECK_OK(uring_read(u, fd, back, SZ, (uint64_t)7 * SZ, NULL));
	CHECK(memcmp(back, data + (size_t)7 * SZ, SZ) == 0);
	close(fd);
	free(data);
	free(back);
	free(ops);
}

/* Short reads stop at end of file with rc 0; a helper without *got calls
 * that an error. */
static void test_eof(cairn_uring *u)
{
	uint8_t data[10000], back[16384];
	size_t got = 12345;
	int fd = open_file("eof", O_TRUNC);

	REQUIRE(fd >= 0);
	t_fill(data, sizeof data, seed + 2);
	CHECK_OK(uring_write(u, fd, data, sizeof data, 0));
	CHECK_OK(uring_read(u, fd, back, 8192, 8192, &got));
	CHECK(got == 10000 - 8192);
	CHECK(memcmp(back, data + 8192, got) == 0);
	CHECK_OK(uring_read(u, fd, back, sizeof back, 0, &got));
	CHECK(got == sizeof data);
	CHECK(memcmp(back, data, sizeof data) == 0);
	CHECK_OK(uring_read(u, fd, back, 100, 20000, &got));
	CHECK(got == 0);
	CHECK_OK(uring_read(u, fd, back, 0, 0, &got));
	CHECK(got == 0);
	CHECK_RC(uring_read(u, fd, back, 4096, 8192, NULL), CAIRN_E_IO);
	CHECK_MSG("short read");
	CHECK_MSG("off 8192 len 4096");

	{
		uring_op op = {.op = URING_OP_READ, .fd = fd, .buf = back,
			       .len = 4096, .off = 9000};
		CHECK_OK(uring_run(u, &op, 1));
		CHECK(op.done == 1000 && op.rc == 0 && op.err == 0);
	}
	close(fd);
}

/* One op far larger than a typical SQE. */
static void test_big_op(cairn_uring *u)
{
	size_t len = (size_t)24 << 20;
	uint8_t *data = malloc(len), *back = malloc(len);
	int fd = open_file("big", O_TRUNC);

	REQUIRE(data && back && fd >= 0);
	t_fill(data, len, seed + 3);
	CHECK_OK(uring_write(u, fd, data, len, 4096));
	CHECK_OK(uring_read(u, fd, back, len, 4096, NULL));
	CHECK(memcmp(data, back, len) == 0);
	close(fd);
	free(data);
	free(back);
}

/* Every transfer cut short (uring_test_set_chunk): the engine resubmits
 * the rest until the op is whole, and still stops at end of file. */
static void test_short_io(cairn_uring *u)
{
	size_t len = 100017;
	uint8_t *data = malloc(len), *back = malloc(len + 20000);
	uring_op ops[3];
	size_t got = 0;
	int fd = open_file("short", O_TRUNC);

	REQUIRE(data && back && fd >= 0);
	t_fill(data, len, seed + 5);
	uring_test_set_chunk(u, 4093);
	CHECK_OK(uring_write(u, fd, data, len, 3));
	CHECK_OK(uring_read(u, fd, back, len + 20000, 3, &got));
	CHECK(got == len);
	CHECK(memcmp(back, data, len) == 0);
	for (int i = 0; i < 3; i++)
		ops[i] = (uring_op){.op = URING_OP_READ, .fd = fd,
				    .buf = back + (size_t)i * 40000,
				    .len = 40000,
				    .off = 3 + (uint64_t)i * 40000};
	memset(back, 0, len);
	CHECK_OK(uring_run(u, ops, 3));
	CHECK(ops[0].done == 40000 && ops[1].done == 40000);
	CHECK(ops[2].done == len - 80000);
	CHECK(memcmp(back, data, len) == 0);
	uring_test_set_chunk(u, 0);
	close(fd);
	free(data);
	free(back);
}

struct thr {
	cairn_uring *u;
	int fd;
	int id;
	int fails;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	enum { SZ = 32768, ITERS = 40 };
	uint8_t *buf = malloc(SZ), *back = malloc(SZ);

	if (!buf || !back) {
		t->fails++;
		goto out;
	}
	for (int i = 0; i < ITERS; i++) {
		uint64_t off = ((uint64_t)t->id * ITERS + (uint64_t)i) * SZ;
		cairn_uring_q *q;
		uring_op op = {.op = URING_OP_WRITE, .fd = t->fd, .buf = buf,
			       .len = SZ, .off = off}, *done;

		t_fill(buf, SZ, seed ^ off);
		/* alternate the helper and a private queue */
		if (i % 2) {
			if (uring_write(t->u, t->fd, buf, SZ, off))
				t->fails++;
		} else {
			if (uring_q_get(t->u, &q)) {
				t->fails++;
				continue;
			}
			if (uring_q_submit(q, &op) || uring_q_reap(q, &done) ||
			    done != &op)
				t->fails++;
			uring_q_put(q);
		}
		if (uring_read(t->u, t->fd, back, SZ, off, NULL) ||
		    memcmp(buf, back, SZ) != 0)
			t->fails++;
	}
out:
	free(buf);
	free(back);
	return NULL;
}

static void test_threads(cairn_uring *u)
{
	enum { NT = 6 };
	pthread_t th[NT];
	struct thr ts[NT];
	int fd = open_file("threads", O_TRUNC);

	REQUIRE(fd >= 0);
	for (int i = 0; i < NT; i++) {
		ts[i] = (struct thr){.u = u, .fd = fd, .id = i};
		REQUIRE(pthread_create(&th[i], NULL, thr_main, &ts[i]) == 0);
	}
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		CHECK(ts[i].fails == 0);
	}
	CHECK_OK(uring_fsync(u, fd));
	close(fd);
}

static void test_direct(cairn_uring *u)
{
	size_t len = (size_t)1 << 20;
	void *data = NULL, *back = NULL;
	uring_op ops[4];
	int fd = open_file("direct", O_TRUNC | O_DIRECT);

	if (fd < 0 && errno == EINVAL) {
		printf("O_DIRECT unsupported on %s, part skipped\n", dir);
		CHECK(1);
		return;
	}
	REQUIRE(fd >= 0);
	REQUIRE(posix_memalign(&data, 4096, 4 * len) == 0);
	REQUIRE(posix_memalign(&back, 4096, 4 * len) == 0);
	t_fill(data, 4 * len, seed + 4);
	memset(back, 0, 4 * len);
	for (int i = 0; i < 4; i++)
		ops[i] = (uring_op){.op = URING_OP_WRITE, .fd = fd,
				    .buf = (uint8_t *)data + i * len,
				    .len = len, .off = (uint64_t)i * len};
	CHECK_OK(uring_run(u, ops, 4));
	CHECK_OK(uring_fdatasync(u, fd));
	for (int i = 0; i < 4; i++) {
		ops[i].op = URING_OP_READ;
		ops[i].buf = (uint8_t *)back + i * len;
	}
	CHECK_OK(uring_run(u, ops, 4));
	for (int i = 0; i < 4; i++)
		CHECK(ops[i].done == len);
	CHECK(memcmp(data, back, 4 * len) == 0);
	/* an aligned read past the end stops at EOF */
	CHECK_OK(uring_read(u, fd, back, 2 * len, 3 * len, &ops[0].done));
	CHECK(ops[0].done == len);
	close(fd);
	free(data);
	free(back);
}

/* Queues are pooled: distinct while held, reused once returned; several
 * held by one thread work independently. */
static void test_queue_pool(cairn_uring *u)
{
	enum { NQ = 5 };
	cairn_uring_q *q[NQ], *again;
	uint8_t buf[NQ][512], back[512];
	uring_op ops[NQ], *done;
	int fd = open_file("pool", O_TRUNC);

	REQUIRE(fd >= 0);
	for (int i = 0; i < NQ; i++) {
		REQUIRE_OK(uring_q_get(u, &q[i]));
		for (int j = 0; j < i; j++)
			CHECK(q[i] != q[j]);
		memset(buf[i], 'a' + i, sizeof buf[i]);
		ops[i] = (uring_op){.op = URING_OP_WRITE, .fd = fd,
				    .buf = buf[i], .len = 512,
				    .off = (uint64_t)i * 512};
		CHECK_OK(uring_q_submit(q[i], &ops[i]));
	}
	for (int i = NQ; i-- > 0;) {
		CHECK(uring_q_inflight(q[i]) == 1);
		CHECK_OK(uring_q_reap(q[i], &done));
		CHECK(done == &ops[i] && done->done == 512);
		CHECK(uring_q_inflight(q[i]) == 0);
	}
	for (int i = 0; i < NQ; i++)
		uring_q_put(q[i]);
	REQUIRE_OK(uring_q_get(u, &again));
	{
		int found = 0;
		for (int i = 0; i < NQ; i++)
			found |= again == q[i];
		CHECK(found);
	}
	/* returned with an op still in flight: put drains it */
	ops[0].op = URING_OP_READ;
	ops[0].buf = back;
	CHECK_OK(uring_q_submit(again, &ops[0]));
	uring_q_put(again);
	CHECK(ops[0].done == 512 && ops[0].rc == 0);
	CHECK(memcmp(back, buf[0], 512) == 0);
	close(fd);
}

int main(void)
{
	cairn_uring_opts o = {.queue_depth = 16, .threads = 4};
	cairn_uring *u;
	const char *env = getenv("CAIRN_IO_ENGINE");

	seed = t_seed();
	snprintf(dir, sizeof dir, "%s", t_tmpdir("uring_basic"));
	REQUIRE_OK(uring_open(&o, &u));
	printf("engine: %s %s\n", uring_engine_name(u),
	       uring_fallback_reason(u));
	if (env && strcmp(env, "threads") == 0)
		CHECK(strcmp(uring_engine_name(u), "threads") == 0);
	if (strcmp(uring_engine_name(u), "io_uring") == 0)
		CHECK(strcmp(uring_fallback_reason(u), "") == 0);

	test_queue_full_pipeline(u);
	test_run_many(u);
	test_eof(u);
	test_big_op(u);
	test_short_io(u);
	test_threads(u);
	test_direct(u);
	test_queue_pool(u);
	CHECK(uring_op_count(u) > 500);
	uring_close(u);
	uring_close(NULL);
	t_rmtree(dir);
	return t_done();
}
