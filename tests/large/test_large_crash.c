/*
 * test_large_crash.c - SIGKILL during the multipart upload of large files.
 * A child writes file A (fsynced, durability local) and then streams file
 * B, with a store slowed down (latency wrapper) so that parts are in
 * flight; the parent kills it mid-stream and reopens: A reads back
 * exactly, B reads back as a prefix of what was written (what its last
 * commit named), the interrupted uploads are aborted and redone from the
 * local files, and after that every byte reads back from the store.
 * Rounds: t_scaled(2), each killed at a different point.
 */
#include <signal.h>
#include <sys/wait.h>

#include "large_t.h"

#define ASIZE (24 * MIB)
#define BSIZE (48 * MIB)

static void child(const char *dir, int fd, uint64_t seed)
{
	char url[800];
	cairn_objstore *inner, *slow;
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_file *f;
	uint64_t rng = seed;

	snprintf(url, sizeof url, "file://%s/store", dir);
	if (objstore_open(url, NULL, &inner) ||
	    objstore_latency_wrap(inner, 20, 16ull << 20, &slow))
		_exit(2);
	lt_opts(&o);
	o.store = slow;
	if (volume_open(dir, &o, &v))
		_exit(3);
	if (volume_file_open(v, lt_ino(v, "a"), &f) || lt_write(f, 0, ASIZE, seed, &rng) ||
	    volume_file_fsync(f) || volume_file_close(f))
		_exit(4);
	if (write(fd, "A", 1) != 1)
		_exit(5);
	if (volume_file_open(v, lt_ino(v, "b"), &f))
		_exit(6);
	for (uint64_t pos = 0; pos < BSIZE; pos += MIB) {
		if (lt_write(f, pos, pos + MIB, seed + 1, &rng))
			_exit(7);
		if (write(fd, "b", 1) != 1)
			_exit(8);
	}
	volume_file_close(f);
	pause();
	_exit(0);
}

int main(void)
{
	const char *tmp = t_tmpdir("large_crash");
	uint64_t rng = t_seed();
	uint64_t rounds = t_scaled(2);

	for (uint64_t r = 0; r < rounds; r++) {
		char dir[700];
		int p[2];
		uint64_t seed = t_rand(&rng);
		unsigned kill_at = 10 + (unsigned)(t_rand(&rng) % 30);  /* MiB of B */
		snprintf(dir, sizeof dir, "%s/vol%" PRIu64, tmp, r);
		lt_format(dir);
		REQUIRE(pipe(p) == 0);
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child(dir, p[1], seed);
		}
		close(p[1]);
		unsigned b = 0;
		int got_a = 0;
		char c;
		while (read(p[0], &c, 1) == 1) {
			if (c == 'A')
				got_a = 1;
			else if (++b >= kill_at)
				break;
		}
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		close(p[0]);
		REQUIRE(got_a);
		printf("round %" PRIu64 ": killed after %u MiB of B\n", r, b);

		cairn_volume_opts o;
		cairn_volume *v;
		cairn_file *f;
		cairn_attr a;
		lt_opts(&o);
		REQUIRE_OK(volume_open(dir, &o, &v));
		REQUIRE_OK(volume_lookup(v, CAIRN_ROOT_INO, "a", &a));
		CHECK(a.size == ASIZE);
		REQUIRE_OK(volume_file_open(v, a.ino, &f));
		CHECK(lt_verify(f, ASIZE, seed, 4 << 20, 0, 0) == 0);
		CHECK_OK(volume_file_close(f));
		uint64_t bsize = 0, bino = 0;
		if (volume_lookup(v, CAIRN_ROOT_INO, "b", &a) == 0) {
			bsize = a.size;
			bino = a.ino;
			CHECK(bsize <= (uint64_t)b * MIB);
			REQUIRE_OK(volume_file_open(v, bino, &f));
			CHECK(lt_verify(f, bsize, seed + 1, 4 << 20, 0, 0) == 0);
			CHECK_OK(volume_file_close(f));
		}
		cairn_err_clear();
		printf("round %" PRIu64 ": B recovered at %" PRIu64 " bytes\n", r, bsize);
		/* The uploads are redone; then everything reads from the store. */
		REQUIRE(lt_wait_uploaded(v) == 0);
		CHECK_OK(volume_drop_cache(v));
		REQUIRE_OK(volume_lookup(v, CAIRN_ROOT_INO, "a", &a));
		REQUIRE_OK(volume_file_open(v, a.ino, &f));
		CHECK(lt_verify(f, ASIZE, seed, 8 << 20, 0, 0) == 0);
		CHECK_OK(volume_file_close(f));
		if (bino) {
			REQUIRE_OK(volume_file_open(v, bino, &f));
			CHECK(lt_verify(f, bsize, seed + 1, 8 << 20, 0, 0) == 0);
			CHECK_OK(volume_file_close(f));
		}
		cairn_volume_stats st;
		volume_stats(v, &st);
		CHECK(st.segments_uploaded >= 1);
		CHECK_OK(volume_close(v));
	}
	t_rmtree(tmp);
	return t_done();
}
