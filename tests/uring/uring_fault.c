/*
 * uring_fault.c - the engine's errors: injected faults (the Nth op fails
 * with a chosen errno, with a clear message, and the file is untouched),
 * and bad input (bad op code, bad fd, NULL buffer, offset out of range,
 * full queue, reap with nothing in flight, bad options and environment).
 */
#include <fcntl.h>

#include "cairn/uring.h"
#include "t.h"

static char dir[512];
static uint64_t seed;

static int open_file(const char *name, int flags)
{
	char path[700];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return open(path, flags | O_CREAT, 0644);
}

static void check_file(int fd, const uint8_t *want, size_t len)
{
	uint8_t *back = malloc(len + 1);
	ssize_t r;
	REQUIRE(back);
	r = pread(fd, back, len + 1, 0);
	CHECK(r == (ssize_t)len);
	CHECK(r >= 0 && memcmp(back, want, len) == 0);
	free(back);
}

static void test_fault_single(cairn_uring *u)
{
	enum { SZ = 16384 };
	uint8_t data[SZ], other[8192];
	char want[128];
	uint64_t before;
	int fd = open_file("single", O_RDWR | O_TRUNC);

	REQUIRE(fd >= 0);
	t_fill(data, SZ, seed);
	t_fill(other, sizeof other, seed + 1);
	REQUIRE_OK(uring_write(u, fd, data, SZ, 0));

	before = uring_op_count(u);
	uring_fault_set(u, 1, ENOSPC);
	CHECK_RC(uring_write(u, fd, other, sizeof other, 4096), CAIRN_E_NOSPC);
	snprintf(want, sizeof want,
		 "pwrite fd %d off 4096 len 8192: No space left on device", fd);
	CHECK_MSG(want);
	CHECK_MSG("injected");
	CHECK(uring_op_count(u) == before + 1);
	check_file(fd, data, SZ);

	/* one fault only: the next op goes through */
	CHECK_OK(uring_write(u, fd, data, SZ, 0));
	check_file(fd, data, SZ);

	/* a sync op and a read, with their own messages */
	uring_fault_set(u, 1, EIO);
	CHECK_RC(uring_fsync(u, fd), CAIRN_E_IO);
	snprintf(want, sizeof want, "fsync fd %d: Input/output error", fd);
	CHECK_MSG(want);
	uring_fault_set(u, 1, EIO);
	CHECK_RC(uring_fdatasync(u, fd), CAIRN_E_IO);
	CHECK_MSG("fdatasync fd");
	uring_fault_set(u, 2, EACCES);
	CHECK_OK(uring_read(u, fd, other, 100, 0, NULL));
	CHECK_RC(uring_read(u, fd, other, 100, 0, NULL), CAIRN_E_PERM);
	CHECK_MSG("pread fd");
	CHECK_MSG("Permission denied");

	/* nth 0 disables an armed fault */
	uring_fault_set(u, 1, EIO);
	uring_fault_set(u, 0, EIO);
	CHECK_OK(uring_fsync(u, fd));
	close(fd);
}

/* For every N, a batch where exactly op N fails and the rest complete. */
static void test_fault_every_n(cairn_uring *u)
{
	enum { N = 12, SZ = 4096 };
	uint8_t *base = malloc((size_t)N * SZ), *newd = malloc((size_t)N * SZ);
	uint8_t *expect = malloc((size_t)N * SZ);
	uring_op ops[N];
	int fd = open_file("every", O_RDWR | O_TRUNC);

	REQUIRE(base && newd && expect && fd >= 0);
	t_fill(base, (size_t)N * SZ, seed + 2);
	for (int nth = 1; nth <= N; nth++) {
		int nfail = 0;
		REQUIRE_OK(uring_write(u, fd, base, (size_t)N * SZ, 0));
		t_fill(newd, (size_t)N * SZ, seed + 100 + (uint64_t)nth);
		for (int i = 0; i < N; i++)
			ops[i] = (uring_op){.op = URING_OP_WRITE, .fd = fd,
					    .buf = newd + (size_t)i * SZ,
					    .len = SZ, .off = (uint64_t)i * SZ};
		uring_fault_set(u, (uint64_t)nth, EDQUOT);
		CHECK_RC(uring_run(u, ops, N), CAIRN_E_NOSPC);
		CHECK_MSG("Disk quota exceeded");
		memcpy(expect, newd, (size_t)N * SZ);
		for (int i = 0; i < N; i++) {
			if (ops[i].rc) {
				nfail++;
				/* uring_run submits in order */
				CHECK(i == nth - 1);
				CHECK(ops[i].err == EDQUOT);
				CHECK(ops[i].rc == CAIRN_E_NOSPC);
				CHECK(ops[i].done == 0);
				memcpy(expect + (size_t)i * SZ,
				       base + (size_t)i * SZ, SZ);
			} else {
				CHECK(ops[i].done == SZ && ops[i].err == 0);
			}
		}
		CHECK(nfail == 1);
		check_file(fd, expect, (size_t)N * SZ);
	}
	close(fd);
	free(base);
	free(newd);
	free(expect);
}

static void test_bad_input(cairn_uring *u)
{
	uint8_t buf[4096] = {0};
	cairn_uring_q *q;
	uring_op op, *done = (uring_op *)1;
	uring_op ops[4];
	int fd = open_file("bad", O_RDWR | O_TRUNC);
	int rfd;
	char path[700];

	REQUIRE(fd >= 0);
	REQUIRE_OK(uring_q_get(u, &q));

	op = (uring_op){.op = 99, .fd = fd, .buf = buf, .len = 1};
	CHECK_RC(uring_q_submit(q, &op), CAIRN_E_INVAL);
	CHECK_MSG("bad op code 99");
	CHECK(op.rc == CAIRN_E_INVAL);
	CHECK(uring_q_inflight(q) == 0);
	op.op = 0;
	CHECK_RC(uring_q_submit(q, &op), CAIRN_E_INVAL);

	op = (uring_op){.op = URING_OP_WRITE, .fd = fd, .buf = NULL,
			.len = 10};
	CHECK_RC(uring_q_submit(q, &op), CAIRN_E_INVAL);
	CHECK_MSG("NULL buffer");
	op = (uring_op){.op = URING_OP_READ, .fd = fd, .buf = buf, .len = 10,
			.off = UINT64_MAX};
	CHECK_RC(uring_q_submit(q, &op), CAIRN_E_INVAL);
	CHECK_MSG("offset out of range");
	op.off = (uint64_t)INT64_MAX - 5;
	CHECK_RC(uring_q_submit(q, &op), CAIRN_E_INVAL);

	CHECK_RC(uring_q_reap(q, &done), CAIRN_E_INVAL);
	CHECK_MSG("nothing in flight");
	CHECK(done == NULL);

	/* bad fd: the kernel's EBADF, named with the op */
	op = (uring_op){.op = URING_OP_READ, .fd = -1, .buf = buf,
			.len = sizeof buf, .off = 0};
	CHECK_OK(uring_q_submit(q, &op));
	CHECK_RC(uring_q_reap(q, &done), CAIRN_E_BADF);
	CHECK(done == &op && op.err == EBADF && op.rc == CAIRN_E_BADF);
	CHECK_MSG("pread fd -1 off 0 len 4096: Bad file descriptor");
	CHECK_RC(uring_fsync(u, 1000000), CAIRN_E_BADF);
	CHECK_MSG("fsync fd 1000000: Bad file descriptor");

	/* queue full */
	for (int i = 0; i < 4; i++)
		ops[i] = (uring_op){.op = URING_OP_WRITE, .fd = fd, .buf = buf,
				    .len = sizeof buf,
				    .off = (uint64_t)i * sizeof buf};
	for (unsigned i = 0; i < uring_q_depth(q); i++)
		CHECK_OK(uring_q_submit(q, &ops[i]));
	op = (uring_op){.op = URING_OP_FSYNC, .fd = fd};
	CHECK_RC(uring_q_submit(q, &op), CAIRN_E_AGAIN);
	CHECK_MSG("queue full");
	while (uring_q_inflight(q))
		CHECK_OK(uring_q_reap(q, &done));
	uring_q_put(q);

	/* write on a read-only descriptor, read of a directory */
	snprintf(path, sizeof path, "%s/bad", dir);
	rfd = open(path, O_RDONLY);
	REQUIRE(rfd >= 0);
	CHECK_RC(uring_write(u, rfd, buf, 10, 0), CAIRN_E_BADF);
	CHECK_MSG("pwrite fd");
	close(rfd);
	rfd = open(dir, O_RDONLY | O_DIRECTORY);
	REQUIRE(rfd >= 0);
	CHECK_RC(uring_read(u, rfd, buf, 10, 0, NULL), CAIRN_E_ISDIR);
	CHECK_MSG("Is a directory");
	close(rfd);

	/* a batch with one bad op: the others still run, every rc filled */
	ops[0] = (uring_op){.op = URING_OP_WRITE, .fd = fd, .buf = buf,
			    .len = 100, .off = 0};
	ops[1] = (uring_op){.op = 42, .fd = fd};
	ops[2] = (uring_op){.op = URING_OP_READ, .fd = fd, .buf = buf,
			    .len = 100, .off = 0};
	CHECK_RC(uring_run(u, ops, 3), CAIRN_E_INVAL);
	CHECK_MSG("bad op code 42");
	CHECK(ops[0].rc == 0 && ops[0].done == 100);
	CHECK(ops[1].rc == CAIRN_E_INVAL);
	CHECK(ops[2].rc == 0);

	CHECK_RC(uring_crash(u, URING_CRASH_DROP, 1), CAIRN_E_INVAL);
	CHECK_MSG("without crash_sim");
	close(fd);
}

static void test_bad_opts(void)
{
	cairn_uring_opts o = {0};
	cairn_uring *u = (cairn_uring *)1;
	char *saved = getenv("CAIRN_IO_ENGINE");

	saved = saved ? strdup(saved) : NULL;
	setenv("CAIRN_IO_ENGINE", "iouring", 1);
	CHECK_RC(uring_open(NULL, &u), CAIRN_E_INVAL);
	CHECK_MSG("CAIRN_IO_ENGINE='iouring': expected auto, io_uring or threads");
	CHECK(u == NULL);
	/* an explicit engine ignores the environment */
	o.engine = CAIRN_IO_THREADS;
	REQUIRE_OK(uring_open(&o, &u));
	CHECK(strcmp(uring_engine_name(u), "threads") == 0);
	uring_close(u);
	if (saved) {
		setenv("CAIRN_IO_ENGINE", saved, 1);
		free(saved);
	} else {
		unsetenv("CAIRN_IO_ENGINE");
	}

	o = (cairn_uring_opts){.queue_depth = 100000};
	CHECK_RC(uring_open(&o, &u), CAIRN_E_RANGE);
	CHECK_MSG("queue_depth 100000");
	o = (cairn_uring_opts){.threads = 100000};
	CHECK_RC(uring_open(&o, &u), CAIRN_E_RANGE);
	CHECK_MSG("threads 100000");
	o = (cairn_uring_opts){.engine = (cairn_io_engine)7};
	CHECK_RC(uring_open(&o, &u), CAIRN_E_INVAL);
	CHECK_MSG("bad engine 7");
}

int main(void)
{
	cairn_uring_opts o = {.queue_depth = 4, .threads = 3};
	cairn_uring *u;

	seed = t_seed();
	snprintf(dir, sizeof dir, "%s", t_tmpdir("uring_fault"));
	REQUIRE_OK(uring_open(&o, &u));
	printf("engine: %s\n", uring_engine_name(u));
	test_fault_single(u);
	test_fault_every_n(u);
	test_bad_input(u);
	uring_close(u);
	test_bad_opts();
	t_rmtree(dir);
	return t_done();
}
