/*
 * test_fuse_wdirect.c - write-only creates (docs/fuse.md "Write-only
 * creates"): a new file created O_WRONLY (torch.save's "wb") is written
 * past the page cache (FOPEN_DIRECT_IO on its CREATE reply), any other
 * create or open keeps the cache, and readers through cached handles
 * never keep stale bytes.  Checks:
 *   - the daemon's direct_creates counter moves for O_WRONLY|O_CREAT of a
 *     new name only (not O_RDWR, not an existing file);
 *   - a writer overwrites 16 blocks of 1 MiB in random order, 6 versions
 *     each, through its direct handle while a thread reads random blocks
 *     through a cached handle: afterwards that same cached handle, a new
 *     open, and a remount all read the last version of every block;
 *   - no block read during the writes is ever a version that was never
 *     written (bytes from nowhere).
 */
#include <pthread.h>

#include "fuse_t.h"

#define BS (1 << 20)
#define NB 16
#define NV 6

static char path[800];
static int ver[NB];
static _Atomic int done, bogus;
static _Atomic long reads;

static void fill(uint8_t *p, int b, int v)
{
	uint64_t x = ((uint64_t)b << 32) | (uint64_t)v;
	for (size_t i = 0; i < BS; i += 8)
		memcpy(p + i, &x, 8);
}

/* Every 8-byte word of block b read from fd names block b and a version
 * written so far; returns the first word's version, -1 if wrong. */
static int block_version(int fd, int b, uint8_t *p)
{
	if (pread(fd, p, BS, (off_t)b * BS) != BS)
		return -1;
	int v0 = -1;
	for (size_t i = 0; i < BS; i += 8) {
		uint64_t x;
		memcpy(&x, p + i, 8);
		if ((int)(x >> 32) != b || (int)(uint32_t)x > NV)
			return -1;
		if (!i)
			v0 = (int)(uint32_t)x;
	}
	return v0;
}

static void *reader(void *arg)
{
	int fd = *(int *)arg;
	uint8_t *p = malloc(BS);
	unsigned r = 12345;
	while (p && !done) {
		int b = (int)((r = r * 1103515245u + 12345u) >> 16) % NB;
		if (block_version(fd, b, p) < 0)
			bogus++;
		reads++;
	}
	free(p);
	return NULL;
}

static int all_last(int fd, uint8_t *p)
{
	int stale = 0;
	for (int b = 0; b < NB; b++)
		if (block_version(fd, b, p) != ver[b])
			stale++;
	return stale;
}

int main(void)
{
	uint64_t rng = t_seed();
	uint8_t *p = malloc(BS);
	char q[800];
	int fd;

	REQUIRE(p);
	ft_setup("fuse_wdirect");
	REQUIRE(ft_mount(NULL) == 0);

	/* Which creates go direct. */
	uint64_t d0 = ft_stat("direct_creates");
	REQUIRE(d0 != UINT64_MAX);
	ft_path(q, sizeof q, "rw.bin");
	REQUIRE((fd = open(q, O_RDWR | O_CREAT, 0644)) >= 0);
	close(fd);
	CHECK(ft_stat("direct_creates") == d0);
	ft_path(q, sizeof q, "wo.bin");
	REQUIRE((fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
	close(fd);
	CHECK(ft_stat("direct_creates") == d0 + 1);
	REQUIRE((fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);  /* exists */
	close(fd);
	CHECK(ft_stat("direct_creates") == d0 + 1);

	/* A direct writer and a cached reader of the same file. */
	ft_path(path, sizeof path, "ckpt.bin");
	int wfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	REQUIRE(wfd >= 0);
	CHECK(ft_stat("direct_creates") == d0 + 2);
	for (int b = 0; b < NB; b++) {
		fill(p, b, 0);
		REQUIRE(pwrite(wfd, p, BS, (off_t)b * BS) == BS);
	}
	int rfd = open(path, O_RDONLY);
	REQUIRE(rfd >= 0);
	CHECK(all_last(rfd, p) == 0);  /* every page now cached by rfd */
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, reader, &rfd) == 0);
	for (int k = 0; k < NB * NV; k++) {
		int b = (int)(t_rand(&rng) % NB);
		if (ver[b] == NV)
			continue;
		fill(p, b, ++ver[b]);
		REQUIRE(pwrite(wfd, p, BS, (off_t)b * BS) == BS);
	}
	done = 1;
	pthread_join(th, NULL);
	CHECK(close(wfd) == 0);
	printf("%ld reads during the writes, %d with bytes never written\n", (long)reads,
	       (int)bogus);
	CHECK(bogus == 0);
	CHECK(all_last(rfd, p) == 0);  /* the cached handle */
	close(rfd);
	REQUIRE((rfd = open(path, O_RDONLY)) >= 0);
	CHECK(all_last(rfd, p) == 0);
	close(rfd);
	REQUIRE(ft_umount() == 0);
	REQUIRE(ft_mount(NULL) == 0);
	REQUIRE((rfd = open(path, O_RDONLY)) >= 0);
	CHECK(all_last(rfd, p) == 0);  /* what the volume kept */
	close(rfd);
	REQUIRE(ft_umount() == 0);
	ft_check_log();
	free(p);
	return t_done();
}
