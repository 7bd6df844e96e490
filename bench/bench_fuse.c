/*
 * bench_fuse - the C side of bench/bench_fuse.py: tree creation and reads
 * with the same thread count on any directory (a cairn mount or a native
 * one), and the volume-API side of the sequential comparison.  Every mode
 * prints one JSON object on stdout.
 *
 *   bench_fuse format VOLDIR
 *   bench_fuse mktree DIR FILES SIZE THREADS    create+write+close FILES files
 *   bench_fuse readtree DIR FILES THREADS       read every file of mktree
 *   bench_fuse api-write VOLDIR MIB             1 MiB writes, fsync, close
 *   bench_fuse api-read VOLDIR                  read that file back
 *   bench_fuse file-write PATH MIB              the same bytes with write(2)
 *   bench_fuse file-read PATH                   read(2) in 1 MiB pieces
 *   bench_fuse drop-cache VOLDIR                volume_drop_cache (cold reads)
 *
 * Files of mktree: DIR/d<k>/f<i>, 1000 per directory, contents a function
 * of i (readtree checks the first byte, so a wrong file is an error).
 *
 * The sequential files are pseudo-random bytes (xorshift, a different
 * stream for api-* and file-*): a periodic pattern would make every chunk
 * of the volume's content-defined chunking identical (16 MiB maximum-size
 * chunks) and the API file a dedup copy of the mount's, whose reads then
 * come from one chunk held in memory - not a sequential read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/volume.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* MiB number i of the sequential file of one side (salt). */
static void fill_mib(uint8_t *buf, uint64_t salt, uint64_t i)
{
	uint64_t x = (salt ^ (i * 0x9e3779b97f4a7c15ULL)) | 1;
	for (size_t k = 0; k < (1u << 20); k += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + k, &x, 8);
	}
}

static const char *g_dir;
static unsigned g_files, g_threads;
static size_t g_size;
static int g_read;
static unsigned g_next;
static long g_errors;

static void *tree_worker(void *arg)
{
	char path[4096];
	uint8_t *buf = malloc(g_size > 65536 ? g_size : 65536);
	(void)arg;
	if (!buf) {
		__atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	for (;;) {
		unsigned i = __atomic_fetch_add(&g_next, 1, __ATOMIC_RELAXED);
		if (i >= g_files)
			break;
		snprintf(path, sizeof path, "%s/d%u/f%u", g_dir, i / 1000, i);
		int ok;
		if (g_read) {
			int fd = open(path, O_RDONLY);
			ssize_t n = fd >= 0 ? read(fd, buf, 65536) : -1;
			ok = fd >= 0 && n > 0 && buf[0] == (uint8_t)i;
			if (fd >= 0)
				close(fd);
		} else {
			memset(buf, (uint8_t)i, g_size);
			int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
			ok = fd >= 0 && write(fd, buf, g_size) == (ssize_t)g_size;
			if (fd >= 0 && close(fd))
				ok = 0;
		}
		if (!ok)
			__atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
	}
	free(buf);
	return NULL;
}

static int tree(int rd)
{
	char path[4096];
	pthread_t th[256];
	if (!rd) {
		for (unsigned d = 0; d * 1000 < g_files; d++) {
			snprintf(path, sizeof path, "%s/d%u", g_dir, d);
			if (mkdir(path, 0755) && errno != EEXIST) {
				fprintf(stderr, "mkdir %s: %s\n", path, strerror(errno));
				return 1;
			}
		}
	}
	g_read = rd;
	double t0 = now_s();
	for (unsigned k = 0; k < g_threads; k++)
		if (pthread_create(&th[k], NULL, tree_worker, NULL)) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	for (unsigned k = 0; k < g_threads; k++)
		pthread_join(th[k], NULL);
	double s = now_s() - t0;
	printf("{\"files\": %u, \"threads\": %u, \"secs\": %.6f, \"files_per_s\": %.1f, "
	       "\"errors\": %ld}\n", g_files, g_threads, s, g_files / s, g_errors);
	return g_errors ? 1 : 0;
}

static int fail(const char *what)
{
	fprintf(stderr, "bench_fuse: %s: %s\n", what, cairn_errmsg());
	return 1;
}

static int api(const char *voldir, int write_mode, unsigned mib)
{
	cairn_volume *vol;
	cairn_attr a;
	cairn_file *f;
	uint8_t *buf = malloc(1 << 20);
	uint64_t bytes = 0;
	double t0;

	if (!buf)
		return 1;
	if (volume_open(voldir, NULL, &vol))
		return fail("open");
	if (write_mode) {
		if (volume_create(vol, CAIRN_ROOT_INO, "api-big", 0644, 0, 0, &a))
			return fail("create");
	} else if (volume_lookup(vol, CAIRN_ROOT_INO, "api-big", &a)) {
		return fail("lookup");
	}
	if (volume_file_open(vol, a.ino, &f))
		return fail("file open");
	t0 = now_s();
	if (write_mode) {
		for (unsigned i = 0; i < mib; i++, bytes += 1 << 20) {
			fill_mib(buf, 0xa91, i);
			if (volume_file_write(f, buf, 1 << 20, bytes))
				return fail("write");
		}
		if (volume_file_fsync(f))
			return fail("fsync");
	} else {
		size_t got;
		do {
			if (volume_file_read(f, buf, 1 << 20, bytes, &got))
				return fail("read");
			bytes += got;
		} while (got == 1 << 20);
	}
	double s = now_s() - t0;
	if (volume_file_close(f) || volume_close(vol))
		return fail("close");
	free(buf);
	printf("{\"bytes\": %" PRIu64 ", \"secs\": %.6f, \"mib_per_s\": %.1f}\n", bytes, s,
	       (double)bytes / (1 << 20) / s);
	return 0;
}

/* The api-* modes' counterpart through a file system (the mount). */
static int file_io(const char *path, int write_mode, unsigned mib)
{
	uint8_t *buf = malloc(1 << 20);
	uint64_t bytes = 0;
	int fd;
	if (!buf)
		return 1;
	fd = open(path, write_mode ? O_CREAT | O_WRONLY | O_TRUNC : O_RDONLY, 0644);
	if (fd < 0) {
		fprintf(stderr, "bench_fuse: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	double t0 = now_s();
	if (write_mode) {
		for (unsigned i = 0; i < mib; i++, bytes += 1 << 20) {
			fill_mib(buf, 0xf11e, i);
			if (write(fd, buf, 1 << 20) != 1 << 20) {
				fprintf(stderr, "bench_fuse: write: %s\n", strerror(errno));
				return 1;
			}
		}
		if (fsync(fd)) {
			fprintf(stderr, "bench_fuse: fsync: %s\n", strerror(errno));
			return 1;
		}
	} else {
		ssize_t r;
		while ((r = read(fd, buf, 1 << 20)) > 0)
			bytes += (uint64_t)r;
		if (r < 0) {
			fprintf(stderr, "bench_fuse: read: %s\n", strerror(errno));
			return 1;
		}
	}
	double s = now_s() - t0;
	close(fd);
	free(buf);
	printf("{\"bytes\": %" PRIu64 ", \"secs\": %.6f, \"mib_per_s\": %.1f}\n", bytes, s,
	       (double)bytes / (1 << 20) / s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "format") == 0)
		return volume_format(argv[2], NULL) ? fail("format") : 0;
	if (argc == 3 && strcmp(argv[1], "drop-cache") == 0) {
		cairn_volume *vol;
		if (volume_open(argv[2], NULL, &vol))
			return fail("open");
		if (volume_drop_cache(vol))
			return fail("drop cache");
		return volume_close(vol) ? fail("close") : 0;
	}
	if ((argc == 6 && strcmp(argv[1], "mktree") == 0) ||
	    (argc == 5 && strcmp(argv[1], "readtree") == 0)) {
		int rd = argv[1][0] == 'r';
		g_dir = argv[2];
		g_files = (unsigned)strtoul(argv[3], NULL, 10);
		g_size = rd ? 0 : (size_t)strtoul(argv[4], NULL, 10);
		g_threads = (unsigned)strtoul(argv[rd ? 4 : 5], NULL, 10);
		if (!g_files || g_threads < 1 || g_threads > 256 || (!rd && !g_size)) {
			fprintf(stderr, "bench_fuse: bad counts\n");
			return 2;
		}
		return tree(rd);
	}
	if (argc == 4 && strcmp(argv[1], "api-write") == 0)
		return api(argv[2], 1, (unsigned)strtoul(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "api-read") == 0)
		return api(argv[2], 0, 0);
	if (argc == 4 && strcmp(argv[1], "file-write") == 0)
		return file_io(argv[2], 1, (unsigned)strtoul(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "file-read") == 0)
		return file_io(argv[2], 0, 0);
	fprintf(stderr, "usage: bench_fuse format|drop-cache VOLDIR | mktree DIR FILES SIZE "
		"THREADS | readtree DIR FILES THREADS | api-write VOLDIR MIB | api-read VOLDIR | "
		"file-write PATH MIB | file-read PATH\n");
	return 2;
}
