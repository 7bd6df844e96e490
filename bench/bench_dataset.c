/*
 * bench_dataset - the small-file workload of the bench suite (bench/suite.py):
 * a generated dataset of files whose sizes follow an image-dataset-like
 * distribution, written and read through any directory (a cairn FUSE mount,
 * a native ext4 directory, an s3fs or rclone mount) or through the volume API
 * of a cairn volume.  Every mode prints one JSON object on stdout.
 *
 *   bench_dataset gen      DIR    N SEED THREADS DEADLINE_S
 *   bench_dataset read     DIR    N SEED THREADS order|shuffle DEADLINE_S
 *   bench_dataset api-gen  VOLDIR N SEED THREADS DEADLINE_S
 *   bench_dataset api-read VOLDIR N SEED THREADS order|shuffle DEADLINE_S cold|warm
 *
 * Files: <root>/d<k>/f<i>, 1000 per directory (root is DIR, or the volume's
 * directory "data").  The size of file i is a function of (SEED, i): a
 * log-normal with median 64 KiB and sigma 1.0, clamped to 4 KiB .. 1 MiB
 * (mean about 100 KiB; ImageNet's JPEGs average about 110 KB).  Contents are
 * a function of i, half random and half text-like bytes; every read checks
 * the size and the first 8 bytes, so a wrong or short file is an error.
 *
 * gen creates, writes and closes the files (THREADS workers taking indexes
 * in order), then makes them durable on the local disk (syncfs(2) of DIR;
 * volume_sync for the API) inside the timing.  read reads each whole file
 * with 256 KiB read(2) calls, in index order ("order") or a shuffled order.
 * api-read cold empties the volume's cache (volume_drop_cache) first.
 *
 * BENCH_LIMIT=K in the environment makes read/api-read take only the first
 * K files of the order (the suite's warm pass after a timed-out cold one).
 *
 * DEADLINE_S bounds the timed phase: the workers stop taking files when it
 * passes and the JSON says "complete": false with the work finished (files,
 * bytes); the rates are over that finished work.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/volume.h"

#define PER_DIR 1000u
#define MIN_SIZE 4096u
#define MAX_SIZE (1u << 20)
#define IO_SIZE (256u << 10)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t g_seed;

/* Size of file i: log-normal (median 64 KiB, sigma 1), clamped. */
static size_t file_size(uint32_t i)
{
	uint64_t a = mix(g_seed * 1000003u + i), b = mix(a);
	double u1 = ((double)(a >> 11) + 1.0) / 9007199254740993.0;
	double u2 = (double)(b >> 11) / 9007199254740992.0;
	double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
	double s = 65536.0 * exp(z);
	if (s < MIN_SIZE)
		s = MIN_SIZE;
	if (s > MAX_SIZE)
		s = MAX_SIZE;
	return (size_t)s;
}

static void fill(uint8_t *b, size_t n, uint32_t i)
{
	uint64_t s = mix(g_seed ^ ((uint64_t)i << 32));
	for (size_t k = 0; k < n; k += 8) {
		uint64_t v = mix(s + k);
		if ((k / 512) % 2)
			v &= 0x3f3f3f3f3f3f3f3fULL;
		memcpy(b + k, &v, n - k < 8 ? n - k : 8);
	}
}

static uint64_t head8(uint32_t i)
{
	return mix(mix(g_seed ^ ((uint64_t)i << 32)));
}

/* ---- shared state of the workers ---- */

static const char *g_root;
static cairn_volume *g_vol;
static uint64_t *g_dir_ino; /* API: inode of each d<k> */
static uint32_t g_n, g_lim, *g_order;
static unsigned g_next;
static double g_deadline;
static uint64_t g_done, g_bytes;
static long g_errors;
static pthread_mutex_t g_errlock = PTHREAD_MUTEX_INITIALIZER;
static char g_errmsg[512];

static void error(uint32_t i, const char *what, const char *why)
{
	__atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&g_errlock);
	if (!g_errmsg[0])
		snprintf(g_errmsg, sizeof g_errmsg, "file %u: %s: %s", i, what, why);
	pthread_mutex_unlock(&g_errlock);
}

static int take(uint32_t *out)
{
	unsigned k = __atomic_fetch_add(&g_next, 1, __ATOMIC_RELAXED);
	if (k >= g_lim || now_s() > g_deadline)
		return 0;
	*out = g_order ? g_order[k] : k;
	return 1;
}

static void done(size_t bytes)
{
	__atomic_add_fetch(&g_done, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&g_bytes, bytes, __ATOMIC_RELAXED);
}

/* Create, write and close file i from buf; 0 or -1 (error recorded). */
static int gen_one(uint32_t i, uint8_t *buf, size_t *bytes)
{
	char path[4096];
	size_t n = file_size(i);
	fill(buf, n, i);
	*bytes = n;
	if (g_vol) {
		char name[32];
		cairn_attr a;
		cairn_file *f;
		snprintf(name, sizeof name, "f%u", i);
		if (volume_create(g_vol, g_dir_ino[i / PER_DIR], name, 0100644, 0, 0, &a) ||
		    volume_file_open(g_vol, a.ino, &f)) {
			error(i, "create", cairn_errmsg());
			return -1;
		}
		int bad = volume_file_write(f, buf, n, 0) != 0;
		if (volume_file_close(f) || bad) {
			error(i, "write", cairn_errmsg());
			return -1;
		}
		return 0;
	}
	snprintf(path, sizeof path, "%s/d%u/f%u", g_root, i / PER_DIR, i);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0) {
		error(i, "open", strerror(errno));
		return -1;
	}
	ssize_t w = write(fd, buf, n);
	int e = errno;
	if (close(fd) || w != (ssize_t)n) {
		error(i, "write", strerror(w < 0 ? e : errno ? errno : EIO));
		return -1;
	}
	return 0;
}

/* Read file i whole (IO_SIZE at a time) and check its size and first
 * bytes; 0 or -1 (error recorded). */
static int read_one(uint32_t i, uint8_t *buf, size_t *bytes)
{
	char path[4096];
	size_t want = file_size(i), got = 0;
	uint64_t h = 0;
	int ok = 1;
	if (g_vol) {
		char name[32];
		cairn_attr a;
		cairn_file *f;
		snprintf(name, sizeof name, "f%u", i);
		if (volume_lookup(g_vol, g_dir_ino[i / PER_DIR], name, &a) ||
		    volume_file_open(g_vol, a.ino, &f)) {
			error(i, "open", cairn_errmsg());
			return -1;
		}
		for (;;) {
			size_t n = 0;
			if (volume_file_read(f, buf, IO_SIZE, got, &n)) {
				error(i, "read", cairn_errmsg());
				ok = 0;
				break;
			}
			if (got == 0 && n >= 8)
				memcpy(&h, buf, 8);
			got += n;
			if (n < IO_SIZE)
				break;
		}
		if (volume_file_close(f) && ok) {
			error(i, "close", cairn_errmsg());
			ok = 0;
		}
	} else {
		snprintf(path, sizeof path, "%s/d%u/f%u", g_root, i / PER_DIR, i);
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			error(i, "open", strerror(errno));
			return -1;
		}
		for (;;) {
			ssize_t n = read(fd, buf, IO_SIZE);
			if (n < 0) {
				error(i, "read", strerror(errno));
				ok = 0;
				break;
			}
			if (got == 0 && n >= 8)
				memcpy(&h, buf, 8);
			got += (size_t)n;
			if (n == 0)
				break;
		}
		close(fd);
	}
	if (!ok)
		return -1;
	if (got != want || h != head8(i)) {
		error(i, "check", got != want ? "wrong size" : "wrong bytes");
		return -1;
	}
	*bytes = got;
	return 0;
}

/* A worker: takes file indexes until none (or no time) is left. */
static void *worker(void *arg)
{
	int (*one)(uint32_t, uint8_t *, size_t *) = *(int (**)(uint32_t, uint8_t *,
							      size_t *))arg;
	uint8_t *buf = malloc(MAX_SIZE);
	uint32_t i;
	if (!buf) {
		error(0, "malloc", strerror(ENOMEM));
		return NULL;
	}
	while (take(&i)) {
		size_t bytes = 0;
		if (one(i, buf, &bytes) == 0)
			done(bytes);
	}
	free(buf);
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_dataset gen|api-gen DIR N SEED THREADS DEADLINE_S\n"
		"       bench_dataset read DIR N SEED THREADS order|shuffle DEADLINE_S\n"
		"       bench_dataset api-read VOLDIR N SEED THREADS order|shuffle DEADLINE_S "
		"cold|warm\n");
	return 2;
}

static int fail(const char *what)
{
	fprintf(stderr, "bench_dataset: %s: %s\n", what, cairn_errmsg());
	return 1;
}

/* Directories d<k>: made by gen, looked up by read (API only; through a
 * directory the path walk is part of each open). */
static int api_dirs(int make)
{
	cairn_attr a;
	uint64_t top;
	unsigned ndirs = (g_n + PER_DIR - 1) / PER_DIR;
	if (make) {
		if (volume_mkdir(g_vol, CAIRN_ROOT_INO, "data", 040755, 0, 0, &a))
			return fail("mkdir data");
	} else if (volume_lookup(g_vol, CAIRN_ROOT_INO, "data", &a)) {
		return fail("lookup data");
	}
	top = a.ino;
	g_dir_ino = calloc(ndirs, sizeof *g_dir_ino);
	if (!g_dir_ino)
		return 1;
	for (unsigned d = 0; d < ndirs; d++) {
		char name[32];
		snprintf(name, sizeof name, "d%u", d);
		if (make ? volume_mkdir(g_vol, top, name, 040755, 0, 0, &a)
			 : volume_lookup(g_vol, top, name, &a))
			return fail(make ? "mkdir" : "lookup dir");
		g_dir_ino[d] = a.ino;
	}
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t th[64];
	unsigned threads;
	double budget, t0, secs;
	int gen, api, complete;

	if (argc < 7)
		return usage();
	gen = !strcmp(argv[1], "gen") || !strcmp(argv[1], "api-gen");
	api = !strncmp(argv[1], "api-", 4);
	if ((gen && argc != 7) || (!gen && argc != 8 + api) ||
	    (!gen && strcmp(argv[1], "read") && strcmp(argv[1], "api-read")))
		return usage();
	g_root = argv[2];
	g_n = (uint32_t)strtoul(argv[3], NULL, 10);
	g_seed = strtoull(argv[4], NULL, 10);
	threads = (unsigned)strtoul(argv[5], NULL, 10);
	budget = strtod(argv[gen ? 6 : 7], NULL);
	if (!g_n || g_n > 10000000 || threads < 1 || threads > 64 || !(budget > 0))
		return usage();
	if (!gen) {
		if (strcmp(argv[6], "order") && strcmp(argv[6], "shuffle"))
			return usage();
		if (!strcmp(argv[6], "shuffle")) {
			uint64_t s = g_seed * 7919u + 1;
			g_order = malloc((size_t)g_n * sizeof *g_order);
			if (!g_order)
				return 1;
			for (uint32_t i = 0; i < g_n; i++)
				g_order[i] = i;
			for (uint32_t i = g_n; i > 1; i--) {
				uint32_t j = (uint32_t)(mix(s++) % i), t = g_order[i - 1];
				g_order[i - 1] = g_order[j];
				g_order[j] = t;
			}
		}
	}
	/* BENCH_LIMIT=K (read only): the first K files of the order, e.g.
	 * the files a timed-out cold pass finished, so that a warm pass
	 * reads exactly what the cold one left in the caches. */
	g_lim = g_n;
	if (!gen && getenv("BENCH_LIMIT")) {
		unsigned long k = strtoul(getenv("BENCH_LIMIT"), NULL, 10);
		if (k < 1 || k > g_n)
			return usage();
		g_lim = (uint32_t)k;
	}
	if (api) {
		if (volume_open(g_root, NULL, &g_vol))
			return fail("open volume");
		if (api_dirs(gen))
			return 1;
		if (!gen && !strcmp(argv[8], "cold") && volume_drop_cache(g_vol))
			return fail("drop cache");
		if (!gen && strcmp(argv[8], "cold") && strcmp(argv[8], "warm"))
			return usage();
	} else if (gen) {
		char path[4096];
		for (unsigned d = 0; d * PER_DIR < g_n; d++) {
			snprintf(path, sizeof path, "%s/d%u", g_root, d);
			if (mkdir(path, 0755) && errno != EEXIST) {
				fprintf(stderr, "bench_dataset: mkdir %s: %s\n", path,
					strerror(errno));
				return 1;
			}
		}
	}

	t0 = now_s();
	g_deadline = t0 + budget;
	int (*one)(uint32_t, uint8_t *, size_t *) = gen ? gen_one : read_one;
	for (unsigned k = 0; k < threads; k++)
		if (pthread_create(&th[k], NULL, worker, &one)) {
			fprintf(stderr, "bench_dataset: pthread_create failed\n");
			return 1;
		}
	for (unsigned k = 0; k < threads; k++)
		pthread_join(th[k], NULL);
	if (gen && !g_errors) { /* durable on the local disk, inside the timing */
		if (g_vol) {
			if (volume_sync(g_vol))
				return fail("sync");
		} else {
			int fd = open(g_root, O_RDONLY | O_DIRECTORY);
			if (fd < 0 || syncfs(fd)) {
				fprintf(stderr, "bench_dataset: syncfs %s: %s\n", g_root,
					strerror(errno));
				return 1;
			}
			close(fd);
		}
	}
	secs = now_s() - t0;
	complete = g_done == g_lim;
	cairn_volume_stats st;
	memset(&st, 0, sizeof st);
	if (g_vol)
		volume_stats(g_vol, &st);
	if (g_vol && volume_close(g_vol))
		return fail("close volume");
	if (g_errors) {
		fprintf(stderr, "bench_dataset: %ld errors, first: %s\n", g_errors, g_errmsg);
		return 1;
	}
	printf("{\"mode\": \"%s\", \"files\": %u, \"files_done\": %" PRIu64
	       ", \"bytes_done\": %" PRIu64 ", \"threads\": %u, \"secs\": %.6f, "
	       "\"files_per_s\": %.1f, \"mib_per_s\": %.2f, \"complete\": %s, "
	       "\"chunks_read_local\": %" PRIu64 ", \"chunks_read_store\": %" PRIu64 "}\n",
	       argv[1], g_lim, g_done, g_bytes, threads, secs, (double)g_done / secs,
	       (double)g_bytes / 1048576.0 / secs, complete ? "true" : "false",
	       st.reads_local, st.reads_store);
	free(g_order);
	free(g_dir_ino);
	return 0;
}
