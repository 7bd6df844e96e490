/*
 * test_fuse_copy - copy_file_range and lseek SEEK_DATA / SEEK_HOLE through
 * a real mount.
 *
 *   - copy_file_range (unaligned, across a hole, past the source's end)
 *     returns the source's bytes, and the mount's statistics show that no
 *     byte went through read/write and no chunk was staged for it (an
 *     extent-sharing copy); overwriting the source or the copy leaves the
 *     other alone; everything survives an unmount and remount.
 *   - SEEK_DATA / SEEK_HOLE on a sparse file answer like the same calls on
 *     a native file with the same block-aligned holes (result and errno),
 *     and like the expected layout; the control file is all data.
 */
#include <sys/vfs.h>

#include "fuse_t.h"

#define BLK 4096

static int open_in(const char *dir, const char *name, int flags)
{
	char p[800];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return open(p, flags, 0644);
}

static void pwrite_all(int fd, const void *b, size_t n, off_t off)
{
	REQUIRE(pwrite(fd, b, n, off) == (ssize_t)n);
}

/* Same sparse layout on both sides: data [0,1M), hole, data [2M,2M+64K),
 * hole up to 3M (extending truncate). */
static void make_sparse(int fd, const uint8_t *d)
{
	pwrite_all(fd, d, 1 << 20, 0);
	pwrite_all(fd, d + (2 << 20), 64 << 10, 2 << 20);
	REQUIRE(ftruncate(fd, 3 << 20) == 0);
}

static void seek_compare(int fm, int fn, const char *what)
{
	static const off_t offs[] = { 0, 1, BLK - 1, BLK, (1 << 20) - 1, 1 << 20,
				      (1 << 20) + 12345, 2 << 20, (2 << 20) + 100,
				      (2 << 20) + (64 << 10) - 1, (2 << 20) + (64 << 10),
				      (3 << 20) - 1, 3 << 20, (3 << 20) + 5 };
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		for (int w = SEEK_DATA; w <= SEEK_HOLE; w++) {
			errno = 0;
			off_t rm = lseek(fm, offs[i], w);
			int em = rm < 0 ? errno : 0;
			errno = 0;
			off_t rn = lseek(fn, offs[i], w);
			int en = rn < 0 ? errno : 0;
			if (rm != rn || em != en) {
				CHECK(rm == rn && em == en);
				fprintf(stderr, "%s: lseek(%lld, %s): mount %lld (%s), native "
					"%lld (%s)\n", what, (long long)offs[i],
					w == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE",
					(long long)rm, strerror(em), (long long)rn, strerror(en));
			}
		}
	}
}

/* Expected answers of the layout above (independent of the native fs). */
static void seek_expect(int fd)
{
	CHECK(lseek(fd, 0, SEEK_HOLE) == 1 << 20);
	CHECK(lseek(fd, 1 << 20, SEEK_DATA) == 2 << 20);
	CHECK(lseek(fd, (2 << 20) + 5, SEEK_HOLE) == (2 << 20) + (64 << 10));
	CHECK(lseek(fd, (2 << 20) + (64 << 10), SEEK_HOLE) == (2 << 20) + (64 << 10));
	errno = 0;
	CHECK(lseek(fd, (2 << 20) + (64 << 10), SEEK_DATA) == -1 && errno == ENXIO);
	errno = 0;
	CHECK(lseek(fd, 3 << 20, SEEK_HOLE) == -1 && errno == ENXIO);
}

/* Whether the native file system reports holes (ext4, xfs, tmpfs do). */
static int native_has_holes(int fn)
{
	return lseek(fn, 0, SEEK_HOLE) == 1 << 20;
}

static void check_bytes(int fd, const uint8_t *want, size_t n, const char *what)
{
	uint8_t *b = malloc(n + 1);
	REQUIRE(b);
	ssize_t got = pread(fd, b, n + 1, 0);
	CHECK(got == (ssize_t)n);
	if (got == (ssize_t)n && memcmp(b, want, n) != 0) {
		size_t i = 0;
		while (b[i] == want[i])
			i++;
		CHECK(!"bytes differ");
		fprintf(stderr, "%s: first difference at %zu\n", what, i);
	}
	free(b);
}

static ssize_t copy_all(int fi, off_t oi, int fo, off_t oo, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = copy_file_range(fi, &oi, fo, &oo, len - done, 0);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int main(void)
{
	uint64_t seed = t_seed();
	size_t sz = 3 << 20;
	uint8_t *d = malloc(sz), *src = calloc(1, sz), *dst = calloc(1, 8 << 20);
	REQUIRE(d && src && dst);
	t_fill(d, sz, seed);

	ft_setup("fuse_copy");
	REQUIRE(ft_mount(NULL) == 0);

	/* ---- SEEK_DATA / SEEK_HOLE ---- */
	int fm = open_in(ft_mnt, "sparse", O_RDWR | O_CREAT);
	int fn = open_in(ft_nat, "sparse", O_RDWR | O_CREAT);
	REQUIRE(fm >= 0 && fn >= 0);
	make_sparse(fm, d);
	make_sparse(fn, d);
	memcpy(src, d, 1 << 20);
	memcpy(src + (2 << 20), d + (2 << 20), 64 << 10);
	seek_expect(fm);
	if (native_has_holes(fn)) {
		REQUIRE(fsync(fn) == 0);
		seek_compare(fm, fn, "sparse");
	} else {
		printf("native file system reports no holes: compared to the layout only\n");
	}
	check_bytes(fm, src, sz, "sparse");

	/* ---- copy_file_range: an instant copy ---- */
	REQUIRE(fsync(fm) == 0);
	int fo = open_in(ft_mnt, "copy", O_RDWR | O_CREAT);
	REQUIRE(fo >= 0);
	pwrite_all(fo, d, 5000, 0);
	REQUIRE(fsync(fo) == 0);
	memcpy(dst, d, 5000);
	uint64_t br = ft_stat("bytes_read"), bw = ft_stat("bytes_written");
	uint64_t cs = ft_stat("chunks_staged");
	REQUIRE(br != UINT64_MAX && bw != UINT64_MAX && cs != UINT64_MAX);
	/* Unaligned, across the hole, asking past the source's end. */
	ssize_t r = copy_all(fm, 4096 + 3, fo, 7, 4 << 20);
	CHECK(r == (ssize_t)(sz - 4096 - 3));
	memcpy(dst + 7, src + 4096 + 3, sz - 4096 - 3);
	size_t dsize = 7 + sz - 4096 - 3;
	r = copy_all(fm, 100, fo, 5 << 20, 1000);
	CHECK(r == 1000);
	memcpy(dst + (5 << 20), src + 100, 1000);
	size_t dsize2 = (5 << 20) + 1000;
	CHECK(ft_stat("bytes_read") == br);
	CHECK(ft_stat("bytes_written") == bw);
	CHECK(ft_stat("chunks_staged") == cs);
	(void)dsize;
	check_bytes(fo, dst, dsize2, "copy");
	/* The copied hole is a hole of the copy. */
	CHECK(lseek(fo, 7, SEEK_HOLE) == (off_t)(7 + (1 << 20) - 4096 - 3));

	/* Copy-on-write: each file keeps its own bytes. */
	uint8_t x[3000];
	t_fill(x, sizeof x, seed + 1);
	pwrite_all(fm, x, sizeof x, 50000);
	memcpy(src + 50000, x, sizeof x);
	t_fill(x, sizeof x, seed + 2);
	pwrite_all(fo, x, sizeof x, 100000);
	memcpy(dst + 100000, x, sizeof x);
	check_bytes(fm, src, sz, "source after overwrite");
	check_bytes(fo, dst, dsize2, "copy after overwrite");
	/* Overlapping ranges of one file: EINVAL (the kernel's rule). */
	off_t oi = 0, oo = 1000;
	errno = 0;
	CHECK(copy_file_range(fm, &oi, fm, &oo, 5000, 0) == -1 && errno == EINVAL);
	close(fm);
	close(fo);
	close(fn);
	/* The control file is all data (and lseek stays on for the mount). */
	int fs = open_in(ft_mnt, ".cairn-stats", O_RDONLY);
	REQUIRE(fs >= 0);
	CHECK(lseek(fs, 0, SEEK_DATA) == 0);
	CHECK(lseek(fs, 0, SEEK_HOLE) > 0);
	close(fs);
	REQUIRE(ft_umount() == 0);

	/* Remount: both files as they were. */
	REQUIRE(ft_mount(NULL) == 0);
	fm = open_in(ft_mnt, "sparse", O_RDONLY);
	fo = open_in(ft_mnt, "copy", O_RDONLY);
	REQUIRE(fm >= 0 && fo >= 0);
	check_bytes(fm, src, sz, "source after remount");
	check_bytes(fo, dst, dsize2, "copy after remount");
	seek_expect(fm);
	close(fm);
	close(fo);

	/* A re-read after close and open comes from the kernel's page cache
	 * (FOPEN_KEEP_CACHE): no READ reaches the daemon. */
	/* (bytes_read: ops_read also counts this control file's own READs) */
	uint64_t rd = ft_stat("bytes_read");
	REQUIRE(rd != UINT64_MAX);
	fo = open_in(ft_mnt, "copy", O_RDONLY);
	REQUIRE(fo >= 0);
	check_bytes(fo, dst, dsize2, "copy, warm");
	close(fo);
	uint64_t rd2 = ft_stat("bytes_read");
	if (rd2 != rd)
		fprintf(stderr, "warm re-read: %" PRIu64 " bytes read by the daemon\n",
			rd2 - rd);
	CHECK(rd2 == rd);
	/* When the kernel evicts its inodes (and their pages with them), the
	 * mount counts the FORGETs: the counter that tells a warm read that
	 * went to the daemon because someone dropped the caches. */
	uint64_t fg = ft_stat("inodes_forgotten");
	REQUIRE(fg != UINT64_MAX);
	FILE *dc = fopen("/proc/sys/vm/drop_caches", "w");
	if (dc) {
		CHECK(fputs("2", dc) >= 0);
		CHECK(fclose(dc) == 0);
		uint64_t now = fg;
		for (int i = 0; i < 100 && now == fg; i++) {
			usleep(50000);
			now = ft_stat("inodes_forgotten");
		}
		CHECK(now != UINT64_MAX && now > fg);
	}
	REQUIRE(ft_umount() == 0);
	ft_check_log();
	free(d);
	free(src);
	free(dst);
	return t_done();
}
