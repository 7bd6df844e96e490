/*
 * uring_fallback.c - engine selection.  A forked child installs a seccomp
 * filter that makes io_uring_setup fail (EPERM, as Docker's default profile
 * or kernel.io_uring_disabled do; then ENOSYS, as an old kernel does) and
 * checks that AUTO falls back to the thread pool, says why (engine name,
 * reason, one WARN log line), still does correct I/O, and that asking for
 * io_uring explicitly fails with CAIRN_E_UNSUPPORTED and a clear message.
 * The parent checks the unfiltered choice and the CAIRN_IO_ENGINE override.
 */
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "cairn/log.h"
#include "cairn/uring.h"
#include "t.h"

#if defined(__x86_64__)
#define T_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define T_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static char dir[512];
static uint64_t seed;

#ifdef T_AUDIT_ARCH
/* io_uring_setup -> -err; everything else allowed.  A foreign arch (the
 * filter cannot know its syscall numbers) is allowed too. */
static int block_io_uring(int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, T_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}
#endif

static int file_contains(const char *path, const char *needle)
{
	char buf[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		return 0;
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

/* Correct I/O on whatever engine u is. */
static void io_works(cairn_uring *u, const char *name)
{
	enum { SZ = 65536, N = 16 };
	uint8_t *data = malloc((size_t)SZ * N), *back = malloc((size_t)SZ * N);
	uring_op ops[N];
	char path[700];
	int fd;

	REQUIRE(data && back);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0);
	t_fill(data, (size_t)SZ * N, seed);
	for (int i = 0; i < N; i++)
		ops[i] = (uring_op){.op = URING_OP_WRITE, .fd = fd,
				    .buf = data + (size_t)i * SZ, .len = SZ,
				    .off = (uint64_t)i * SZ};
	CHECK_OK(uring_run(u, ops, N));
	CHECK_OK(uring_fsync(u, fd));
	CHECK_OK(uring_read(u, fd, back, (size_t)SZ * N, 0, NULL));
	CHECK(memcmp(data, back, (size_t)SZ * N) == 0);
	close(fd);
	free(data);
	free(back);
}

#ifdef T_AUDIT_ARCH
static void child_main(int err, const char *errtext)
{
	cairn_uring_opts o = {0};
	cairn_uring *u;
	char logpath[700];

	unsetenv("CAIRN_IO_ENGINE");
	snprintf(logpath, sizeof logpath, "%s/log.%d", dir, err);
	REQUIRE_OK(cairn_log_set_file(logpath));
	if (block_io_uring(err) != 0) {
		printf("seccomp unavailable: %s\n", strerror(errno));
		exit(77);
	}

	REQUIRE_OK(uring_open(&o, &u));
	CHECK(strcmp(uring_engine_name(u), "threads") == 0);
	printf("fallback reason: %s\n", uring_fallback_reason(u));
	CHECK(strstr(uring_fallback_reason(u), "io_uring_setup") != NULL);
	CHECK(strstr(uring_fallback_reason(u), errtext) != NULL);
	if (err == EPERM)
		CHECK(strstr(uring_fallback_reason(u), "seccomp") != NULL);
	io_works(u, "child");
	uring_close(u);
	/* logged once: a second engine does not repeat the warning */
	REQUIRE_OK(uring_open(&o, &u));
	uring_close(u);
	CHECK_OK(cairn_log_set_file(NULL));
	CHECK(file_contains(logpath, "io_uring unavailable"));
	CHECK(file_contains(logpath, errtext));
	CHECK(file_contains(logpath, " W uring"));

	o.engine = CAIRN_IO_URING;
	u = (cairn_uring *)1;
	CHECK_RC(uring_open(&o, &u), CAIRN_E_UNSUPPORTED);
	CHECK(u == NULL);
	CHECK_MSG("io_uring engine requested but unavailable");
	CHECK_MSG(errtext);

	o.engine = CAIRN_IO_AUTO;
	setenv("CAIRN_IO_ENGINE", "io_uring", 1);
	CHECK_RC(uring_open(&o, &u), CAIRN_E_UNSUPPORTED);
	setenv("CAIRN_IO_ENGINE", "threads", 1);
	REQUIRE_OK(uring_open(&o, &u));
	CHECK(strcmp(uring_engine_name(u), "threads") == 0);
	uring_close(u);
	exit(t_done());
}

static void run_child(int err, const char *errtext)
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		child_main(err, errtext);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
		t_skip("seccomp filters unavailable");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
#endif

int main(void)
{
	cairn_uring_opts o = {0};
	cairn_uring *u;
	const char *env = getenv("CAIRN_IO_ENGINE");

	seed = t_seed();
	snprintf(dir, sizeof dir, "%s", t_tmpdir("uring_fallback"));

	/* the unfiltered choice */
	REQUIRE_OK(uring_open(&o, &u));
	printf("engine here: %s (%s)\n", uring_engine_name(u),
	       uring_fallback_reason(u));
	if (env && strcmp(env, "threads") == 0) {
		CHECK(strcmp(uring_engine_name(u), "threads") == 0);
		CHECK(strstr(uring_fallback_reason(u), "CAIRN_IO_ENGINE") != NULL);
	}
	io_works(u, "parent");
	uring_close(u);
	o.engine = CAIRN_IO_THREADS;
	REQUIRE_OK(uring_open(&o, &u));
	CHECK(strcmp(uring_engine_name(u), "threads") == 0);
	CHECK(strstr(uring_fallback_reason(u), "requested") != NULL);
	uring_close(u);
	o.engine = CAIRN_IO_URING;
	if (uring_open(&o, &u) == 0) {
		/* an explicit engine is not overridden by the environment */
		CHECK(strcmp(uring_engine_name(u), "io_uring") == 0);
		CHECK(strcmp(uring_fallback_reason(u), "") == 0);
		uring_close(u);
	} else {
		printf("io_uring unavailable on this machine: %s\n",
		       cairn_errmsg());
		CHECK_MSG("io_uring engine requested but unavailable");
	}

#ifdef T_AUDIT_ARCH
	run_child(EPERM, "Operation not permitted");
	run_child(ENOSYS, "Function not implemented");
#else
	t_skip("no seccomp filter for this architecture in the test");
#endif
	t_rmtree(dir);
	return t_done();
}
