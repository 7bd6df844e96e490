/*
 * test_fuse_stress - concurrency and data integrity through a mount:
 *   - threads creating, writing and verifying distinct files, and writing
 *     disjoint regions of one shared file;
 *   - processes creating files and appending records to one O_APPEND log
 *     (every record whole, none lost);
 *   - a reader re-reading a file while a writer appends to it (every byte
 *     it sees is a byte that was written);
 *   - a large file written with dd and read back, compared by checksum;
 *   - thousands of small files;
 *   - all of it again after unmount and remount.
 * Sizes scale with CAIRN_TEST_SCALE.
 */
#include <pthread.h>

#include "fuse_t.h"

#define NTHREADS 6
#define REGION (64u << 10)

static uint64_t seed;
static unsigned nfiles_thread, nsmall;

static size_t fsize(uint64_t id)
{
	uint64_t s = seed ^ (id * 0x9e37);
	return 1 + (size_t)(t_rand(&s) % (48u << 10));
}

static int write_file(const char *path, uint64_t id, size_t size)
{
	uint8_t *b = malloc(size);
	if (!b)
		return -1;
	t_fill(b, size, seed + id);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0) {
		free(b);
		return -1;
	}
	/* uneven pieces, so requests straddle pages */
	size_t off = 0;
	int rc = 0;
	while (off < size) {
		size_t n = size - off < 7777 ? size - off : 7777;
		if (write(fd, b + off, n) != (ssize_t)n) {
			rc = -1;
			break;
		}
		off += n;
	}
	if (close(fd))
		rc = -1;
	free(b);
	return rc;
}

/* 0 if path holds exactly the bytes of id */
static int check_file(const char *path, uint64_t id, size_t size)
{
	uint8_t *want = malloc(size), *got = malloc(size + 1);
	int rc = -1;
	if (!want || !got)
		goto out;
	t_fill(want, size, seed + id);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		goto out;
	size_t n = 0;
	ssize_t r;
	while ((r = read(fd, got + n, size + 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (n == size && memcmp(want, got, size) == 0)
		rc = 0;
	else
		fprintf(stderr, "%s: %zu bytes, want %zu%s\n", path, n, size,
			n == size ? " (content differs)" : "");
out:
	free(want);
	free(got);
	return rc;
}

static void *thread_main(void *arg)
{
	long k = (long)(intptr_t)arg;
	char path[800];
	long bad = 0;
	snprintf(path, sizeof path, "%s/t%ld", ft_mnt, k);
	if (mkdir(path, 0755))
		return (void *)1;
	for (unsigned i = 0; i < nfiles_thread; i++) {
		uint64_t id = (uint64_t)k * 100000 + i;
		snprintf(path, sizeof path, "%s/t%ld/f%u", ft_mnt, k, i);
		if (write_file(path, id, fsize(id)))
			bad++;
	}
	/* its region of the shared file, rewritten a few times */
	snprintf(path, sizeof path, "%s/shared", ft_mnt);
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return (void *)(intptr_t)(bad + 1);
	uint8_t *b = malloc(REGION);
	for (int round = 0; b && round < 4; round++) {
		t_fill(b, REGION, seed + 777 + (uint64_t)k * 10 + (uint64_t)round);
		if (pwrite(fd, b, REGION, (off_t)k * REGION) != REGION)
			bad++;
	}
	free(b);
	close(fd);
	for (unsigned i = 0; i < nfiles_thread; i++) {
		uint64_t id = (uint64_t)k * 100000 + i;
		snprintf(path, sizeof path, "%s/t%ld/f%u", ft_mnt, k, i);
		if (check_file(path, id, fsize(id)))
			bad++;
	}
	return (void *)(intptr_t)bad;
}

static void verify_threads(void)
{
	char path[800];
	long bad = 0;
	for (long k = 0; k < NTHREADS; k++)
		for (unsigned i = 0; i < nfiles_thread; i++) {
			uint64_t id = (uint64_t)k * 100000 + i;
			snprintf(path, sizeof path, "%s/t%ld/f%u", ft_mnt, k, i);
			bad += check_file(path, id, fsize(id)) != 0;
		}
	CHECK(bad == 0);
	snprintf(path, sizeof path, "%s/shared", ft_mnt);
	int fd = open(path, O_RDONLY);
	REQUIRE(fd >= 0);
	uint8_t *b = malloc(REGION), *w = malloc(REGION);
	REQUIRE(b && w);
	for (long k = 0; k < NTHREADS; k++) {
		t_fill(w, REGION, seed + 777 + (uint64_t)k * 10 + 3);
		CHECK(pread(fd, b, REGION, (off_t)k * REGION) == REGION && memcmp(b, w, REGION) == 0);
	}
	free(b);
	free(w);
	close(fd);
}

#define NPROC 4
#define REC 64

static void processes(unsigned per)
{
	char path[800];
	pid_t pids[NPROC];
	snprintf(path, sizeof path, "%s/log", ft_mnt);
	int lfd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	REQUIRE(lfd >= 0);
	close(lfd);
	for (int p = 0; p < NPROC; p++) {
		pids[p] = fork();
		REQUIRE(pids[p] >= 0);
		if (pids[p])
			continue;
		int bad = 0;
		snprintf(path, sizeof path, "%s/p%d", ft_mnt, p);
		bad |= mkdir(path, 0755);
		snprintf(path, sizeof path, "%s/log", ft_mnt);
		int fd = open(path, O_WRONLY | O_APPEND);
		bad |= fd < 0;
		for (unsigned i = 0; i < per && !bad; i++) {
			char rec[REC + 1];
			uint64_t id = 500000 + (uint64_t)p * 10000 + i;
			snprintf(path, sizeof path, "%s/p%d/f%u", ft_mnt, p, i);
			bad |= write_file(path, id, fsize(id));
			snprintf(rec, sizeof rec, "%d:%06u:%-*s\n", p, i, REC - 10, "record");
			bad |= write(fd, rec, REC) != REC;
		}
		close(fd);
		_exit(bad ? 1 : 0);
	}
	for (int p = 0; p < NPROC; p++) {
		int st;
		REQUIRE(waitpid(pids[p], &st, 0) == pids[p]);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

static void verify_processes(unsigned per)
{
	char path[800];
	int bad = 0;
	for (int p = 0; p < NPROC; p++)
		for (unsigned i = 0; i < per; i++) {
			uint64_t id = 500000 + (uint64_t)p * 10000 + i;
			snprintf(path, sizeof path, "%s/p%d/f%u", ft_mnt, p, i);
			bad += check_file(path, id, fsize(id)) != 0;
		}
	CHECK(bad == 0);
	/* every record whole, each (p, i) exactly once */
	snprintf(path, sizeof path, "%s/log", ft_mnt);
	FILE *f = fopen(path, "r");
	REQUIRE(f);
	unsigned char *seen = calloc(NPROC * per, 1);
	REQUIRE(seen);
	char rec[REC + 1];
	size_t recs = 0;
	int malformed = 0;
	while (fread(rec, 1, REC, f) == REC) {
		int p = -1;
		unsigned i = 0;
		rec[REC] = 0;
		if (sscanf(rec, "%d:%u:", &p, &i) != 2 || p < 0 || p >= NPROC || i >= per ||
		    rec[REC - 1] != '\n' || seen[(unsigned)p * per + i]++)
			malformed++;
		recs++;
	}
	fclose(f);
	CHECK(recs == NPROC * per);
	CHECK(malformed == 0);
	free(seen);
}

/* ---- a reader while a writer appends ---- */

#define BLK 4096
static volatile int app_done;
static unsigned app_blocks;

static uint8_t blk_byte(uint64_t blk, size_t i)
{
	return (uint8_t)(blk * 31 + i * 7 + (seed & 0xff));
}

static void *appender(void *arg)
{
	char path[800];
	uint8_t b[BLK];
	long bad = 0;
	(void)arg;
	snprintf(path, sizeof path, "%s/appended", ft_mnt);
	int fd = open(path, O_WRONLY | O_APPEND);
	if (fd < 0)
		bad = 1;
	for (unsigned k = 0; k < app_blocks && !bad; k++) {
		for (size_t i = 0; i < BLK; i++)
			b[i] = blk_byte(k, i);
		/* half blocks, so readers meet partial tails */
		bad |= write(fd, b, BLK / 2) != BLK / 2;
		bad |= write(fd, b + BLK / 2, BLK / 2) != BLK / 2;
	}
	if (fd >= 0)
		close(fd);
	app_done = 1;
	return (void *)bad;
}

static void *reader(void *arg)
{
	char path[800];
	long bad = 0, rounds = 0;
	uint8_t *b = malloc((size_t)app_blocks * BLK);
	(void)arg;
	if (!b)
		return (void *)1;
	snprintf(path, sizeof path, "%s/appended", ft_mnt);
	while (!bad && (!app_done || rounds < 2)) {
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return (void *)2;
		ssize_t n = 0, r;
		while ((r = read(fd, b + n, (size_t)app_blocks * BLK - (size_t)n)) > 0)
			n += r;
		close(fd);
		for (ssize_t i = 0; i < n && !bad; i++)
			if (b[i] != blk_byte((uint64_t)i / BLK, (size_t)i % BLK)) {
				fprintf(stderr, "reader: byte %zd of %zd is wrong\n", i, n);
				bad = 3;
			}
		if (app_done)
			rounds++;
	}
	free(b);
	return (void *)bad;
}

static void small_files(int verify)
{
	char path[800];
	int bad = 0;
	for (unsigned i = 0; i < nsmall; i++) {
		uint64_t id = 900000 + i;
		size_t sz = 1 + (size_t)((id * 2654435761u) % 8192);
		if (!verify && i % 100 == 0) {
			snprintf(path, sizeof path, "%s/small%u", ft_mnt, i / 100);
			REQUIRE(mkdir(path, 0755) == 0);
		}
		snprintf(path, sizeof path, "%s/small%u/%u.bin", ft_mnt, i / 100, i);
		bad += (verify ? check_file(path, id, sz) : write_file(path, id, sz)) != 0;
	}
	CHECK(bad == 0);
}

static void big_checksum(const char *what, const char *path, char *out)
{
	char buf[256];
	REQUIRE(ft_sh(buf, sizeof buf, "sha256sum '%s'", path) == 0);
	REQUIRE(strlen(buf) > 64);
	memcpy(out, buf, 64);
	out[64] = 0;
	printf("%s sha256 %s\n", what, out);
}

int main(void)
{
	char path[800], want[65], got[65];
	pthread_t th[NTHREADS], ta, tr;
	void *res;

	ft_setup("fuse_stress");
	seed = t_seed();
	nfiles_thread = (unsigned)t_scaled(120);
	nsmall = (unsigned)t_scaled(3000);
	app_blocks = (unsigned)t_scaled(1500);
	unsigned per = (unsigned)t_scaled(150);
	unsigned big_mb = (unsigned)t_scaled(160);
	REQUIRE(ft_mount(NULL) == 0);

	/* threads */
	snprintf(path, sizeof path, "%s/shared", ft_mnt);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	REQUIRE(fd >= 0);
	close(fd);
	for (long k = 0; k < NTHREADS; k++)
		REQUIRE(pthread_create(&th[k], NULL, thread_main, (void *)(intptr_t)k) == 0);
	for (long k = 0; k < NTHREADS; k++) {
		REQUIRE(pthread_join(th[k], &res) == 0);
		CHECK(res == NULL);
	}
	verify_threads();

	/* processes */
	processes(per);
	verify_processes(per);

	/* readers while a writer appends */
	snprintf(path, sizeof path, "%s/appended", ft_mnt);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	REQUIRE(fd >= 0);
	close(fd);
	REQUIRE(pthread_create(&ta, NULL, appender, NULL) == 0);
	REQUIRE(pthread_create(&tr, NULL, reader, NULL) == 0);
	REQUIRE(pthread_join(ta, &res) == 0);
	CHECK(res == NULL);
	REQUIRE(pthread_join(tr, &res) == 0);
	CHECK(res == NULL);

	/* a large file through dd */
	char src[700];
	snprintf(src, sizeof src, "%s/big.src", ft_nat);
	REQUIRE(ft_sh(NULL, 0, "dd if=/dev/urandom of='%s' bs=1M count=%u status=none", src,
		      big_mb) == 0);
	REQUIRE(ft_sh(NULL, 0, "dd if='%s' of='%s/big' bs=1M conv=fsync status=none", src,
		      ft_mnt) == 0);
	big_checksum("source", src, want);
	snprintf(path, sizeof path, "%s/big", ft_mnt);
	big_checksum("mount", path, got);
	CHECK(strcmp(want, got) == 0);

	/* small files */
	small_files(0);
	small_files(1);

	/* all of it again after unmount and remount (cold kernel caches) */
	REQUIRE(ft_umount() == 0);
	REQUIRE(ft_mount(NULL) == 0);
	verify_threads();
	verify_processes(per);
	small_files(1);
	big_checksum("remounted", path, got);
	CHECK(strcmp(want, got) == 0);
	REQUIRE(ft_umount() == 0);
	ft_check_log();
	return t_done();
}
