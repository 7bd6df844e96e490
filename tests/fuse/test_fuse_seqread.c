/*
 * test_fuse_seqread - sequential reads of a large file through a real mount
 * fetch and decode each chunk about once (issue #8).
 *
 * A file of 64 MiB (CAIRN_TEST_SCALE) of pseudo-random bytes is written
 * through the mount (a stream segment of content-defined ~4 MiB chunks),
 * uploaded (durability remote + fsync), and the local copy and window
 * cache are dropped, so that reads go to the store.  Then, each time after
 * a fresh mount (no page cache, no readahead state):
 *
 *   A. one reader, read(2) in 1 MiB pieces (what `cp` or a loader does:
 *      the kernel's readahead sends several 1 MiB READs at once, served by
 *      several daemon threads, possibly out of order);
 *   B. two threads of one process sharing one descriptor, each taking the
 *      next 1 MiB piece (pread), so requests overlap and arrive out of
 *      order;
 *   C. random 4 KiB reads (POSIX_FADV_RANDOM: no kernel readahead) far
 *      apart: no readahead of whole chunks beyond the chunk touched.
 *
 * Every byte is verified, and the mount's counter chunk_bytes_read (bytes
 * of whole chunks fetched or decoded for reads, readahead included) must
 * stay at most 1.3x the file size in A and B (before the fix: 1.3-2.2x in
 * A and 1.8-3.5x in B, from out-of-order requests resetting the readahead
 * window, partial-chunk reads then decoding a whole chunk each, and
 * readahead slots evicted before use; after: 1.00x in most runs), and at
 * most one maximum chunk (16 MiB) per read in C.  In A, at least half
 * the file's bytes must be replied straight from the readahead's chunks
 * (counter read_nocopy_bytes, volume_file_read_to; all of them in most
 * runs), not copied into a buffer first.
 */
#include <pthread.h>

#include "fuse_t.h"

#define MIB (1u << 20)

static uint64_t g_seed;
static unsigned g_mib;
static char g_path[800];

static void fill(uint8_t *b, unsigned i)
{
	t_fill(b, MIB, g_seed ^ ((uint64_t)i * 0x9e3779b97f4a7c15ULL));
}

/* Unmount, drop the volume's local copies and window cache, mount. */
static void cold_remount(void)
{
	cairn_volume *vol;
	REQUIRE(ft_umount() == 0);
	REQUIRE_OK(volume_open(ft_vol, NULL, &vol));
	REQUIRE_OK(volume_drop_cache(vol));
	REQUIRE_OK(volume_close(vol));
	REQUIRE(ft_mount(NULL) == 0);
}

static int g_fd;
static unsigned g_next;
static _Atomic long g_bad;

static void *reader(void *arg)
{
	uint8_t *b = malloc(MIB), *want = malloc(MIB);
	(void)arg;
	if (!b || !want) {
		g_bad++;
		goto out;
	}
	for (;;) {
		unsigned i = __atomic_fetch_add(&g_next, 1, __ATOMIC_RELAXED);
		if (i >= g_mib)
			break;
		ssize_t r = pread(g_fd, b, MIB, (off_t)i * MIB);
		fill(want, i);
		if (r != (ssize_t)MIB || memcmp(b, want, MIB) != 0) {
			fprintf(stderr, "MiB %u: got %zd bytes or wrong bytes\n", i, r);
			g_bad++;
		}
	}
out:
	free(b);
	free(want);
	return NULL;
}

int main(void)
{
	uint8_t *b = malloc(MIB), *want = malloc(MIB);
	REQUIRE(b && want);
	g_seed = t_seed();
	g_mib = (unsigned)t_scaled(64);
	if (g_mib < 32)
		g_mib = 32;
	uint64_t size = (uint64_t)g_mib * MIB, lim = size / 10 * 13;

	ft_setup("fuse_seqread");
	REQUIRE(ft_mount("durability=remote") == 0);
	snprintf(g_path, sizeof g_path, "%s/big", ft_mnt);
	int fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0);
	for (unsigned i = 0; i < g_mib; i++) {
		fill(b, i);
		REQUIRE(write(fd, b, MIB) == (ssize_t)MIB);
	}
	REQUIRE(fsync(fd) == 0);  /* remote: returns once uploaded */
	REQUIRE(close(fd) == 0);
	CHECK(ft_stat("segments_uploaded") >= 1);
	CHECK(ft_stat("pending_upload_bytes") == 0);

	/* A: one reader, 1 MiB read(2) calls. */
	cold_remount();
	uint64_t c0 = ft_stat("chunk_bytes_read"), s0 = ft_stat("chunk_reads_local");
	uint64_t z0 = ft_stat("read_nocopy_bytes");
	REQUIRE(c0 != UINT64_MAX);
	REQUIRE(z0 != UINT64_MAX);
	fd = open(g_path, O_RDONLY);
	REQUIRE(fd >= 0);
	for (unsigned i = 0; i < g_mib; i++) {
		ssize_t r = read(fd, b, MIB);
		fill(want, i);
		REQUIRE(r == (ssize_t)MIB);
		REQUIRE(memcmp(b, want, MIB) == 0);
	}
	CHECK(read(fd, b, MIB) == 0);
	CHECK(close(fd) == 0);
	uint64_t a = ft_stat("chunk_bytes_read") - c0;
	printf("A: one reader: %" PRIu64 " chunk bytes for %" PRIu64 " file bytes (%.2fx), "
	       "%" PRIu64 " READs\n", a, size, (double)a / (double)size, ft_stat("ops_read"));
	CHECK(ft_stat("chunk_reads_local") == s0);  /* from the store indeed */
	CHECK(a >= size);
	CHECK(a <= lim);
	/* The replies came from the readahead's chunks, not a copy of them. */
	uint64_t z = ft_stat("read_nocopy_bytes") - z0;
	printf("A: %" PRIu64 " bytes replied from readahead memory (%.2f of the file)\n", z,
	       (double)z / (double)size);
	CHECK(z >= size / 2);

	/* B: two threads, one descriptor, interleaved 1 MiB pieces. */
	cold_remount();
	c0 = ft_stat("chunk_bytes_read");
	g_fd = open(g_path, O_RDONLY);
	REQUIRE(g_fd >= 0);
	pthread_t th[2];
	for (int k = 0; k < 2; k++)
		REQUIRE(pthread_create(&th[k], NULL, reader, NULL) == 0);
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	CHECK(close(g_fd) == 0);
	CHECK(g_bad == 0);
	uint64_t bb = ft_stat("chunk_bytes_read") - c0;
	printf("B: two threads: %" PRIu64 " chunk bytes for %" PRIu64 " file bytes (%.2fx)\n",
	       bb, size, (double)bb / (double)size);
	CHECK(bb >= size);
	CHECK(bb <= lim);

	/* C: random 4 KiB reads, 8 MiB apart, shuffled: each costs at most
	 * the chunk it touches (max chunk 16 MiB), no readahead. */
	cold_remount();
	c0 = ft_stat("chunk_bytes_read");
	fd = open(g_path, O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM) == 0);
	unsigned nr = g_mib / 8, idx[64];
	if (nr > 64)
		nr = 64;
	for (unsigned k = 0; k < nr; k++)
		idx[k] = k;
	uint64_t rs = g_seed;
	for (unsigned k = nr; k > 1; k--) {
		unsigned j = (unsigned)(t_rand(&rs) % k), x = idx[k - 1];
		idx[k - 1] = idx[j];
		idx[j] = x;
	}
	for (unsigned k = 0; k < nr; k++) {
		unsigned mi = idx[k] * 8 + 3;
		uint64_t o = (uint64_t)mi * MIB + 12345;
		REQUIRE(pread(fd, b, 4096, (off_t)o) == 4096);
		fill(want, mi);
		CHECK(memcmp(b, want + 12345, 4096) == 0);
	}
	CHECK(close(fd) == 0);
	uint64_t c = ft_stat("chunk_bytes_read") - c0;
	printf("C: %u random 4 KiB reads: %" PRIu64 " chunk bytes (%.1f MiB per read)\n", nr,
	       c, (double)c / nr / MIB);
	CHECK(c <= (uint64_t)nr * 16 * MIB);

	REQUIRE(ft_umount() == 0);
	ft_check_log();
	free(b);
	free(want);
	return t_done();
}
