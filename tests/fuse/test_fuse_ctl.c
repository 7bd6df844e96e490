/*
 * test_fuse_ctl.c - commands run through the mount daemon's control
 * socket keep the mount coherent (docs/fuse.md "Commands through the
 * control socket"):
 *   - `cairn rm` of a file a process holds open through the mount: the
 *     name is gone from the mount at once (well inside the 10 s entry
 *     timeout), and the process keeps reading the old bytes past the
 *     idle period, its cached pages dropped (the file is pinned until
 *     the kernel forgets it; then the pin closes: open_files back to 0);
 *   - `cairn rm` of a file the kernel never saw leaves no pin;
 *   - `cairn mv`: the old name is gone and the new one (cached as a
 *     negative entry before) shows at once; `cairn mkdir` likewise;
 *   - `cairn put -f` rewriting a file at the same size: reads through
 *     the mount give the new bytes right after;
 *   - on `-o ro`, `cairn rm` fails with exit 6 and one line saying the
 *     mount is read-only, and the file stays; `ls`/`cat` still work.
 */
#include <inttypes.h>
#include <time.h>

#include "fuse_t.h"

#define SZ 8192
#define IDLE_WAIT_MS 1500   /* past fuse_priv.h CFS_IDLE_MS (500) + a tick */

static int write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, buf, len);
	int r = close(fd);
	return w == (ssize_t)len && r == 0 ? 0 : -1;
}

/* Whole file at path == buf[0..len). */
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

static int exists(const char *name)
{
	char p[800];
	struct stat st;
	ft_path(p, sizeof p, name);
	return stat(p, &st) == 0;
}

/* `cairn --volume V ARGS` with stderr into out; its exit status. */
static int cairn(char *out, size_t size, const char *args)
{
	return ft_sh(out, size, "'%s' --volume '%s' %s 2>&1", CAIRN_BIN, ft_vol, args);
}

/* open_files of the mount reaches want within 10 s (the kernel forgets
 * an inode some time after its last holder lets go). */
static int open_files_reach(uint64_t want)
{
	for (int i = 0; i < 100; i++) {
		if (ft_stat("open_files") == want)
			return 1;
		ft_sleep_ms(100);
	}
	fprintf(stderr, "open_files %" PRIu64 ", expected %" PRIu64 "\n",
		ft_stat("open_files"), want);
	return 0;
}

static void rm_while_open(void)
{
	uint8_t a[SZ], got[SZ];
	char p[800], out[2048];
	t_fill(a, sizeof a, 1);
	ft_path(p, sizeof p, "held");
	REQUIRE(write_file(p, a, sizeof a) == 0);
	int fd = open(p, O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK(pread(fd, got, sizeof got, 0) == (ssize_t)sizeof got);
	CHECK(memcmp(got, a, sizeof a) == 0);
	CHECK(exists("held"));

	CHECK(cairn(out, sizeof out, "rm /held") == 0);
	/* gone from the mount at once (the entry timeout is 10 s) */
	CHECK(!exists("held"));
	CHECK(cairn(out, sizeof out, "stat /held") == 3);

	/* the holder reads the old bytes from the daemon: its pages dropped,
	 * the data handle closed by the idle-closer */
	ft_sleep_ms(IDLE_WAIT_MS);
	CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
	memset(got, 0, sizeof got);
	CHECK(pread(fd, got, sizeof got, 0) == (ssize_t)sizeof got);
	CHECK(memcmp(got, a, sizeof a) == 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)sizeof a);
	CHECK(ft_stat("open_files") >= 1);   /* the pin */
	close(fd);
	/* last holder gone: FORGET closes the pin */
	CHECK(open_files_reach(0));

	/* a file the kernel never saw: no pin is left behind */
	snprintf(p, sizeof p, "%s/unseen", ft_nat);
	REQUIRE(write_file(p, a, 100) == 0);
	snprintf(out, sizeof out, "put '%s' /unseen", p);
	CHECK(cairn(NULL, 0, out) == 0);
	CHECK(cairn(out, sizeof out, "rm /unseen") == 0);
	CHECK(!exists("unseen"));
	CHECK(open_files_reach(0));
}

static void mv_and_mkdir(void)
{
	uint8_t a[SZ];
	char p[800], out[2048];
	t_fill(a, sizeof a, 2);
	ft_path(p, sizeof p, "src");
	REQUIRE(write_file(p, a, sizeof a) == 0);
	CHECK(exists("src"));
	CHECK(!exists("dst"));     /* a negative entry, cached 10 s */
	CHECK(!exists("newdir"));

	CHECK(cairn(out, sizeof out, "mv /src /dst") == 0);
	CHECK(!exists("src"));
	CHECK(exists("dst"));
	ft_path(p, sizeof p, "dst");
	CHECK(file_is(p, a, sizeof a));

	CHECK(cairn(out, sizeof out, "mkdir /newdir") == 0);
	CHECK(exists("newdir"));

	/* mv over a file the mount holds open: replaced, still readable */
	uint8_t b[SZ], got[SZ];
	t_fill(b, sizeof b, 3);
	ft_path(p, sizeof p, "victim");
	REQUIRE(write_file(p, b, sizeof b) == 0);
	int fd = open(p, O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK(cairn(out, sizeof out, "mv /dst /victim") == 0);
	CHECK(!exists("dst"));
	CHECK(file_is(p, a, sizeof a));   /* the name shows the moved file */
	ft_sleep_ms(IDLE_WAIT_MS);
	CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
	CHECK(pread(fd, got, sizeof got, 0) == (ssize_t)sizeof got);
	CHECK(memcmp(got, b, sizeof b) == 0);
	close(fd);
}

static void put_same_size(void)
{
	uint8_t a[SZ], b[SZ];
	char p[800], loc[800], out[2048];
	t_fill(a, sizeof a, 4);
	t_fill(b, sizeof b, 5);
	ft_path(p, sizeof p, "data");
	REQUIRE(write_file(p, a, sizeof a) == 0);
	CHECK(file_is(p, a, sizeof a));   /* cached by the kernel */
	snprintf(loc, sizeof loc, "%s/data.new", ft_nat);
	REQUIRE(write_file(loc, b, sizeof b) == 0);
	snprintf(out, sizeof out, "put -f '%s' /data", loc);
	CHECK(cairn(NULL, 0, out) == 0);
	CHECK(file_is(p, b, sizeof b));
}

static void read_only(void)
{
	char out[2048];
	REQUIRE(ft_umount() == 0);
	REQUIRE(ft_mount("ro") == 0);
	CHECK(exists("victim"));
	CHECK(cairn(out, sizeof out, "rm /victim") == 6);
	CHECK(strstr(out, "cairn: rm: ") == out);
	CHECK(strstr(out, "read-only") != NULL);
	CHECK(strchr(out, '\n') == out + strlen(out) - 1);   /* one line */
	CHECK(exists("victim"));
	CHECK(cairn(out, sizeof out, "mv /victim /x") == 6);
	CHECK(cairn(out, sizeof out, "mkdir /y") == 6);
	CHECK(cairn(out, sizeof out, "gc") == 6);
	CHECK(cairn(out, sizeof out, "snapshot create / s1") == 6);
	CHECK(!exists("x") && !exists("y"));
	CHECK(cairn(out, sizeof out, "ls /") == 0);
	CHECK(strstr(out, "victim") != NULL);
	CHECK(cairn(out, sizeof out, "cat /victim > /dev/null") == 0);
	CHECK(cairn(out, sizeof out, "gc --dry-run") == 0);
	CHECK(cairn(out, sizeof out, "status") == 0);
	REQUIRE(ft_umount() == 0);
	/* the volume itself still holds it */
	REQUIRE(ft_mount(NULL) == 0);
	CHECK(exists("victim"));
}

int main(void)
{
	ft_setup("fuse_ctl");
	REQUIRE(ft_mount(NULL) == 0);
	rm_while_open();
	mv_and_mkdir();
	put_same_size();
	read_only();
	REQUIRE(ft_umount() == 0);
	ft_check_log();
	return t_done();
}
