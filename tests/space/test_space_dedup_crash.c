/*
 * test_space_dedup_crash.c - SIGKILL in the middle of a deduplicating
 * stream write.  A child writes base file A (uploaded, durability remote),
 * then streams file B = A with a few regions rewritten, in 1 MiB steps
 * (the stream commits every 8 MiB; an fsync would end the stream); between
 * two commits the dedup pin holds references to A's chunks that no file
 * names yet.  The parent kills it at a random point and reopens: the
 * metadata fsck is clean (exact refcounts), no pin inode is left (the
 * orphan was freed at open), A reads back exactly, B reads back as a
 * prefix of what was written (what its last commit named), also from the
 * store, and once both are deleted no inode is left.
 * Rounds: t_scaled(3), each killed at a different point.
 */
#include <signal.h>
#include <sys/wait.h>

#include "dedup_t.h"

#define SIZE (64 * MIB)

static void opts(cairn_volume_opts *o)
{
	memset(o, 0, sizeof *o);
	o->stream_threshold = 2 * MIB;
	o->stream_part_size = 5 * MIB;
	o->stream_chunk_avg = 256u << 10;
	o->stream_commit_bytes = 8 * MIB;
}

static void child(const char *dir, int fd, const dd_file *a, const dd_file *b)
{
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_file *f;
	uint64_t ia, ib;

	opts(&o);
	if (volume_open(dir, &o, &v))
		_exit(3);
	ia = dd_create(v, "a");
	if (volume_file_open(v, ia, &f) || dd_write(f, a, 0, a->size, 4 << 20) ||
	    volume_file_close(f) || volume_sync_durable(v, CAIRN_DUR_REMOTE))
		_exit(4);
	ib = dd_create(v, "b");
	if (write(fd, "A", 1) != 1 || volume_file_open(v, ib, &f))
		_exit(5);
	for (uint64_t pos = 0; pos < b->size; pos += MIB) {
		if (dd_write(f, b, pos, pos + MIB, 1 << 20))
			_exit(6);
		if (write(fd, "b", 1) != 1)
			_exit(8);
	}
	volume_file_close(f);
	if (write(fd, "E", 1) != 1)
		_exit(9);
	pause();
	_exit(0);
}

int main(void)
{
	const char *tmp = t_tmpdir("space_dedup_crash");
	uint64_t rng = t_seed();
	uint64_t rounds = t_scaled(3);

	for (uint64_t r = 0; r < rounds; r++) {
		char dir[700];
		int p[2];
		dd_file a = { .kind = DD_BASE, .size = SIZE, .seed = t_rand(&rng) };
		dd_file b = a;
		b.kind = DD_EDIT;
		b.other = t_rand(&rng);
		for (int i = 0; i < DD_REGIONS; i++) {
			b.reg[i][0] = i * (SIZE / DD_REGIONS) + t_rand(&rng) % (SIZE / 8);
			b.reg[i][1] = b.reg[i][0] + MIB;
		}
		unsigned kill_at = 3 + (unsigned)(t_rand(&rng) % 56);  /* MiB of B */
		snprintf(dir, sizeof dir, "%s/vol%" PRIu64, tmp, r);
		REQUIRE_OK(volume_format(dir, NULL));
		REQUIRE(pipe(p) == 0);
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child(dir, p[1], &a, &b);
		}
		close(p[1]);
		unsigned mib = 0;
		int got_a = 0;
		char ch;
		while (read(p[0], &ch, 1) == 1) {
			if (ch == 'A')
				got_a = 1;
			if (ch == 'b')
				mib++;
			if (mib >= kill_at || ch == 'E')
				break;
		}
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		close(p[0]);
		REQUIRE(got_a);
		printf("round %" PRIu64 ": killed after %u MiB of b\n", r, mib);

		/* Reopen: the pin was an orphan and is gone; refcounts exact. */
		uint64_t inodes = 0;
		CHECK(dd_meta_fsck(dir, &inodes) == 0);
		CHECK(inodes == 3);  /* root, a, b */

		cairn_volume_opts o;
		cairn_volume *v;
		cairn_attr at;
		opts(&o);
		REQUIRE_OK(volume_open(dir, &o, &v));
		REQUIRE_OK(volume_lookup(v, CAIRN_ROOT_INO, "a", &at));
		CHECK(dd_check_file(v, at.ino, &a) == 0);
		REQUIRE_OK(volume_lookup(v, CAIRN_ROOT_INO, "b", &at));
		/* A prefix of B: what its last commit named. */
		printf("round %" PRIu64 ": b has %" PRIu64 " bytes after reopen\n", r, at.size);
		CHECK(at.size <= SIZE);
		dd_file bp = b;
		bp.size = at.size;
		CHECK(dd_check_file(v, at.ino, &bp) == 0);
		REQUIRE_OK(volume_drop_cache(v));
		CHECK(dd_check_file(v, at.ino, &bp) == 0);
		REQUIRE_OK(volume_unlink(v, CAIRN_ROOT_INO, "a"));
		REQUIRE_OK(volume_unlink(v, CAIRN_ROOT_INO, "b"));
		REQUIRE_OK(volume_close(v));
		CHECK(dd_meta_fsck(dir, &inodes) == 0);
		CHECK(inodes == 1);
	}
	t_rmtree(tmp);
	return t_done();
}
