/*
 * test_fuse_noopen.c - zero-message opens (docs/fuse.md "Zero-message
 * opens"): the kernel sends no OPEN or RELEASE for regular files, the
 * daemon serves data through one handle per inode, opened on demand and
 * closed when idle or forgotten.  Checks:
 *   - a warm re-read (open, read, close) reaches the daemon with no OPEN,
 *     READ or RELEASE (counters of the control file);
 *   - bytes written through an open of an existing file (no CREATE, so
 *     no RELEASE) are seen by `cairn cat` through the control socket, and
 *     the idle handle is closed (its data staged) within a few seconds;
 *   - a large file's handle stays open across a writer's pause longer
 *     than the idle period (its stream goes on), a small file's closes;
 *   - O_TRUNC of an existing file truncates (a SETATTR now);
 *   - a file unlinked or renamed over while open stays readable and
 *     writable through its descriptor past the idle period;
 *   - the control file shows fresh counters at every open;
 *   - such writes survive a clean `cairn umount` and a SIGTERM of the
 *     daemon, both right after close, without fsync.
 */
#include <inttypes.h>
#include <signal.h>
#include <time.h>

#include "fuse_t.h"

#define SZ 20000
#define CFS_IDLE_MS_T 500   /* fuse_priv.h CFS_IDLE_MS */

static uint64_t seed;

/* The whole file at path == buf[0..len) (len <= SZ). */
static int file_is(const char *path, const uint8_t *buf, size_t len)
{
	uint8_t got[SZ + 1];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, got, sizeof got);
	close(fd);
	return n == (ssize_t)len && memcmp(got, buf, len) == 0;
}

/* Whole file name (in the mount) == buf[0..len). */
static int same(const char *name, const uint8_t *buf, size_t len)
{
	char p[800];
	ft_path(p, sizeof p, name);
	return file_is(p, buf, len);
}

/* `cairn cat /name` through the mount's control socket == buf[0..len). */
static int cat_is(const char *name, const uint8_t *buf, size_t len)
{
	char out[800];
	snprintf(out, sizeof out, "%s/cat.out", ft_root);
	if (ft_sh(NULL, 0, "'%s' --volume '%s' cat /%s > '%s'", CAIRN_BIN, ft_vol, name, out))
		return 0;
	return file_is(out, buf, len);
}

static void put_new(const char *name, const uint8_t *buf, size_t len)
{
	char p[800];
	ft_path(p, sizeof p, name);
	int fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
	REQUIRE(fd >= 0);
	CHECK(write(fd, buf, len) == (ssize_t)len);
	CHECK(close(fd) == 0);
}

/* Overwrite an existing file through open(2) without O_CREAT: no
 * CREATE, so no RELEASE will come for it. */
static void put_existing(const char *name, const uint8_t *buf, size_t len)
{
	char p[800];
	ft_path(p, sizeof p, name);
	int fd = open(p, O_WRONLY);
	REQUIRE(fd >= 0);
	CHECK(pwrite(fd, buf, len, 0) == (ssize_t)len);
	CHECK(close(fd) == 0);
}

static void warm_reads(void)
{
	uint8_t a[SZ];
	t_fill(a, sizeof a, seed + 1);
	put_new("warm", a, sizeof a);
	CHECK(same("warm", a, sizeof a));   /* maybe from the daemon */
	uint64_t o0 = ft_stat("ops_open"), b0 = ft_stat("bytes_read");
	uint64_t r0 = ft_stat("ops_release");
	REQUIRE(o0 != UINT64_MAX && b0 != UINT64_MAX && r0 != UINT64_MAX);
	for (int i = 0; i < 20; i++)
		CHECK(same("warm", a, sizeof a));
	/* the control file's reads count in ops_read, not in bytes_read */
	CHECK(ft_stat("ops_open") == o0);
	CHECK(ft_stat("bytes_read") == b0);
	CHECK(ft_stat("ops_release") == r0);
	/* at most the first open of the mount was sent (answered ENOSYS) */
	CHECK(o0 <= 1);
	/* the control file is fresh at every open: each read looks it up */
	uint64_t l0 = ft_stat("ops_lookup"), l1 = ft_stat("ops_lookup");
	CHECK(l1 > l0 && l1 != UINT64_MAX);
}

static void written_seen(void)
{
	uint8_t a[SZ], b[SZ];
	t_fill(a, sizeof a, seed + 2);
	t_fill(b, sizeof b, seed + 3);
	put_new("seen", a, sizeof a);
	put_existing("seen", b, sizeof b);
	CHECK(same("seen", b, sizeof b));
	/* a command through the control socket reads the volume, not the
	 * kernel's pages: the daemon's handle must hold the bytes */
	CHECK(cat_is("seen", b, sizeof b));
	/* the idle handles are closed (data staged) soon */
	int idle = 0;
	for (int i = 0; i < 100 && !idle; i++) {
		ft_sleep_ms(50);
		idle = ft_stat("open_files") == 0;
	}
	if (!idle)
		fprintf(stderr, "open_files %" PRIu64 " after 5 s\n", ft_stat("open_files"));
	CHECK(idle);
	CHECK(ft_stat("idle_closes") > 0 && ft_stat("idle_closes") != UINT64_MAX);
	CHECK(same("seen", b, sizeof b));
}

/* A large file written with a pause longer than CFS_IDLE_MS keeps its
 * handle (a close would end its stream: fuse_priv.h CFS_STREAM_BYTES),
 * while a small file's handle closes after the same pause; both read
 * back exactly, also through the control socket after the close. */
static void stream_pause(void)
{
	enum { MB = 1 << 20, BIG = 24 * MB, PAUSE_AT = 20 * MB };
	uint8_t *a = malloc(BIG), *got = malloc(BIG);
	char p[800];
	REQUIRE(a && got);
	t_fill(a, BIG, seed + 9);
	for (int i = 0; i < 100 && ft_stat("open_files") != 0; i++)
		ft_sleep_ms(50);
	REQUIRE(ft_stat("open_files") == 0);
	ft_path(p, sizeof p, "big");
	int fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
	REQUIRE(fd >= 0);
	for (size_t off = 0; off < PAUSE_AT; off += MB)
		CHECK(pwrite(fd, a + off, MB, (off_t)off) == MB);
	uint64_t c0 = ft_stat("idle_closes");
	ft_sleep_ms(3 * CFS_IDLE_MS_T);
	CHECK(ft_stat("idle_closes") == c0);
	CHECK(ft_stat("open_files") == 1);
	for (size_t off = PAUSE_AT; off < BIG; off += MB)
		CHECK(pwrite(fd, a + off, MB, (off_t)off) == MB);
	CHECK(close(fd) == 0);
	fd = open(p, O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK(read(fd, got, BIG) == BIG && memcmp(got, a, BIG) == 0);
	close(fd);
	/* the same pause after a small write does close that handle */
	uint8_t b[SZ];
	t_fill(b, sizeof b, seed + 10);
	ft_path(p, sizeof p, "small-paused");
	fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
	REQUIRE(fd >= 0);
	CHECK(write(fd, b, sizeof b) == (ssize_t)sizeof b);
	c0 = ft_stat("idle_closes");
	ft_sleep_ms(3 * CFS_IDLE_MS_T);
	CHECK(ft_stat("idle_closes") > c0 && ft_stat("idle_closes") != UINT64_MAX);
	CHECK(close(fd) == 0);
	CHECK(same("small-paused", b, sizeof b));
	free(a);
	free(got);
}

static void o_trunc(void)
{
	uint8_t a[SZ];
	char p[800];
	struct stat st;
	t_fill(a, sizeof a, seed + 4);
	put_new("trunc", a, sizeof a);
	CHECK(same("trunc", a, sizeof a));
	ft_path(p, sizeof p, "trunc");
	int fd = open(p, O_WRONLY | O_TRUNC);
	REQUIRE(fd >= 0);
	CHECK(fstat(fd, &st) == 0 && st.st_size == 0);
	CHECK(write(fd, "abc", 3) == 3);
	CHECK(close(fd) == 0);
	CHECK(stat(p, &st) == 0 && st.st_size == 3);
	CHECK(same("trunc", (const uint8_t *)"abc", 3));
	CHECK(cat_is("trunc", (const uint8_t *)"abc", 3));
	/* O_TRUNC to nothing, read back empty */
	fd = open(p, O_RDWR | O_TRUNC);
	REQUIRE(fd >= 0);
	char c;
	CHECK(read(fd, &c, 1) == 0);
	close(fd);
	CHECK(stat(p, &st) == 0 && st.st_size == 0);
}

static void unlinked_open(void)
{
	uint8_t a[SZ], b[SZ], got[SZ];
	char p[800], q[800];
	t_fill(a, sizeof a, seed + 5);
	t_fill(b, sizeof b, seed + 6);
	put_new("gone", a, sizeof a);
	put_new("over", b, sizeof b);
	put_new("new", b + 500, 100);
	ft_path(p, sizeof p, "gone");
	int fd = open(p, O_RDWR);
	REQUIRE(fd >= 0);
	ft_path(q, sizeof q, "over");
	int fd2 = open(q, O_RDONLY);
	REQUIRE(fd2 >= 0);
	CHECK(unlink(p) == 0);
	char n[800];
	ft_path(n, sizeof n, "new");
	CHECK(rename(n, q) == 0);
	/* past the idle period: the daemon's data handles are closed, the
	 * pins keep both inodes */
	ft_sleep_ms(3 * CFS_IDLE_MS_T);
	/* drop the kernel's pages so the reads reach the daemon */
	CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
	CHECK(posix_fadvise(fd2, 0, 0, POSIX_FADV_DONTNEED) == 0);
	CHECK(pread(fd, got, sizeof got, 0) == (ssize_t)sizeof a && memcmp(got, a, sizeof a) == 0);
	CHECK(pread(fd2, got, sizeof got, 0) == (ssize_t)sizeof b && memcmp(got, b, sizeof b) == 0);
	CHECK(pwrite(fd, b, 1000, 5) == 1000);
	ft_sleep_ms(3 * CFS_IDLE_MS_T);
	CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
	memcpy(a + 5, b, 1000);
	CHECK(pread(fd, got, sizeof got, 0) == (ssize_t)sizeof a && memcmp(got, a, sizeof a) == 0);
	close(fd);
	close(fd2);
	CHECK(access(p, F_OK) == -1 && errno == ENOENT);
	CHECK(same("over", b + 500, 100));
}

/* Written through an open of an existing file, closed, then at once a
 * clean umount (how == 0) or a SIGTERM (how == 1); then remounted. */
static void survives(int how)
{
	uint8_t a[SZ], b[SZ];
	char name[32];
	snprintf(name, sizeof name, "keep%d", how);
	t_fill(a, sizeof a, seed + 10 + (uint64_t)how);
	t_fill(b, sizeof b, seed + 20 + (uint64_t)how);
	put_new(name, a, sizeof a);
	put_existing(name, b, sizeof b);
	if (how == 0) {
		REQUIRE(ft_umount() == 0);
	} else {
		long pid = ft_daemon_pid();
		REQUIRE(pid > 0);
		REQUIRE(kill((pid_t)pid, SIGTERM) == 0);
		for (int i = 0; i < 3000 && ft_pid_alive(pid); i++)
			ft_sleep_ms(10);
		CHECK(!ft_pid_alive(pid));
		ft_mounted = 0;
	}
	REQUIRE(ft_mount(NULL) == 0);
	CHECK(same(name, b, sizeof b));
}

int main(void)
{
	ft_setup("fuse_noopen");
	seed = t_seed();
	REQUIRE(ft_mount(NULL) == 0);
	warm_reads();
	written_seen();
	stream_pause();
	o_trunc();
	unlinked_open();
	survives(0);
	survives(1);
	REQUIRE(ft_umount() == 0);
	ft_check_log();
	return t_done();
}
