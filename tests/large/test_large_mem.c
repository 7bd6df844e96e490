/*
 * test_large_mem.c - memory stays bounded while a file much larger than
 * every buffer limit is written: a child writes FSIZE bytes (default
 * 256 MiB; 1 GiB at CAIRN_TEST_SCALE >= 4) through the volume API in 1 MiB
 * writes, fsyncs and closes; its peak RSS (getrusage) must stay below a
 * bound independent of the file size (and well below the file size).
 * A resource bound, not a timing assertion.
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include "large_t.h"

#define RSS_BOUND_MIB 160

/* AddressSanitizer keeps freed memory in quarantine (256 MiB) and adds
 * shadow memory: the bound is meaningless there and checked only in
 * normal builds (the data is checked in every build). */
#if defined(__SANITIZE_ADDRESS__)
#define LT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LT_ASAN 1
#endif
#endif
#ifndef LT_ASAN
#define LT_ASAN 0
#endif

int main(void)
{
	const char *tmp = t_tmpdir("large_mem");
	char dir[700];
	uint64_t fsize = t_scale() >= 4 ? (1ull << 30) : 256 * MIB;
	int p[2];

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	lt_format(dir);
	REQUIRE(pipe(p) == 0);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		cairn_volume_opts o;
		cairn_volume *v;
		cairn_file *f;
		struct rusage ru;
		long rss;
		uint8_t *buf = malloc(MIB);
		close(p[0]);
		memset(&o, 0, sizeof o);       /* the defaults: 16 MiB parts, 8 in flight */
		o.upload_cap = 256 * MIB;
		if (!buf || volume_open(dir, &o, &v))
			_exit(2);
		if (volume_file_open(v, lt_ino(v, "big"), &f))
			_exit(3);
		for (uint64_t pos = 0; pos < fsize; pos += MIB) {
			lt_fill(buf, MIB, pos, 42);
			if (volume_file_write(f, buf, MIB, pos))
				_exit(4);
		}
		if (volume_file_fsync(f) || volume_file_close(f) || volume_close(v))
			_exit(5);
		getrusage(RUSAGE_SELF, &ru);
		rss = ru.ru_maxrss;  /* KiB */
		if (write(p[1], &rss, sizeof rss) != sizeof rss)
			_exit(6);
		_exit(0);
	}
	close(p[1]);
	long rss = 0;
	CHECK(read(p[0], &rss, sizeof rss) == sizeof rss);
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	printf("file %" PRIu64 " MiB, peak RSS %ld MiB (bound %d MiB)\n", fsize >> 20,
	       rss >> 10, RSS_BOUND_MIB);
	CHECK(rss > 0);
	if (LT_ASAN) {
		printf("AddressSanitizer build: the RSS bound is not checked\n");
	} else {
		CHECK(rss < RSS_BOUND_MIB * 1024L);
		CHECK((uint64_t)rss * 1024 < fsize / 2);
	}

	/* And the file is all there. */
	cairn_volume *v;
	cairn_file *f;
	REQUIRE_OK(volume_open(dir, NULL, &v));
	REQUIRE_OK(volume_file_open(v, lt_ino(v, "big"), &f));
	CHECK(lt_verify(f, fsize, 42, 16 << 20, 0, 0) == 0);
	CHECK_OK(volume_file_close(f));
	CHECK_OK(volume_close(v));
	t_rmtree(tmp);
	return t_done();
}
