/*
 * test_large_dspool.c - the multipart upload from a direct (O_DIRECT)
 * spool on file:// (stream_multipart = 1, the path S3 takes): parts of the
 * store's 5 MiB minimum, far less than what the spool writer holds in its
 * aligned buffer and writes in flight (4 MiB + three 4 MiB writes), while
 * the file is written in small pieces.  A part sent before its bytes were
 * in the spool file would upload a hole or fail its read: so every part
 * must succeed the first time (no retry, no failed upload, no whole-file
 * fallback), parts must go out while the file is still being written, and
 * the object read back from the store (local copies dropped) must be the
 * file.  Reads while streaming (the last bytes written, still in the
 * writer's buffer) see every byte.  An upload cap below what the spool
 * holds back does not stall the stream.  CAIRN_TEST_SCALE >= 4: 256 MiB.
 */
#include "large_t.h"

int main(void)
{
	const char *tmp = t_tmpdir("large_dspool");
	char dir[700];
	uint64_t rng = t_seed(), seed = t_rand(&rng);
	uint64_t fsize = t_scale() >= 4 ? 256 * MIB : 64 * MIB;
	uint64_t mid = fsize - 4 * MIB;
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_volume_stats st;
	cairn_file *f;
	uint8_t *buf = malloc(256 << 10), *got = malloc(256 << 10);
	REQUIRE(buf && got);

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	lt_format(dir);
	lt_opts(&o);
	o.no_dedup = 1;
	REQUIRE_OK(volume_open(dir, &o, &v));
	uint64_t ino = lt_ino(v, "spooled");
	REQUIRE_OK(volume_file_open(v, ino, &f));
	for (uint64_t pos = 0, k = 0; pos < fsize; k++) {
		size_t n = (size_t)(1 + t_rand(&rng) % (256 << 10));
		if (n > fsize - pos)
			n = (size_t)(fsize - pos);
		lt_fill(buf, n, pos, seed);
		REQUIRE_OK(volume_file_write(f, buf, n, pos));
		pos += n;
		if (k % 16 == 0 && pos > 4096) {
			/* The newest bytes: in the chunk buffer or the spool
			 * writer's aligned buffer. */
			size_t rn = pos < (200 << 10) ? (size_t)pos : (200 << 10), gn = 0;
			CHECK_OK(volume_file_read(f, got, rn, pos - rn, &gn));
			lt_fill(buf, rn, pos - rn, seed);
			CHECK(gn == rn && memcmp(got, buf, rn) == 0);
		}
		if (pos - n < mid && pos >= mid) {
			volume_stats(v, &st);
			printf("at %" PRIu64 " MiB: %" PRIu64 " parts done\n", pos >> 20,
			       st.stream_parts);
			CHECK(st.streams == 1);
			CHECK(st.stream_parts >= 1);  /* parts went while streaming */
		}
	}
	CHECK(lt_verify(f, fsize, seed, (1 << 20) + 5, 0, 0) == 0);
	CHECK_OK(volume_file_close(f));
	REQUIRE(lt_wait_uploaded(v) == 0);
	volume_stats(v, &st);
	printf("parts %" PRIu64 ", retries %" PRIu64 ", upload failures %" PRIu64 "\n",
	       st.stream_parts, st.stream_part_retries, st.upload_failures);
	CHECK(st.stream_parts >= fsize / (8 * MIB));  /* parts of 5-6 MiB */
	CHECK(st.stream_part_retries == 0);
	CHECK(st.upload_failures == 0);
	CHECK_OK(volume_drop_cache(v));
	REQUIRE_OK(volume_file_open(v, ino, &f));
	CHECK(lt_verify(f, fsize, seed, 8 << 20, 0, 0) == 0);
	CHECK_OK(volume_file_close(f));
	volume_stats(v, &st);
	CHECK(st.reads_parallel > 0);  /* from the store, not the spool */
	CHECK_OK(volume_close(v));

	/* An upload cap smaller than what the direct spool holds back (its
	 * buffer and writes in flight: whole parts): with no part of its own
	 * in flight the stream flushes the spool and sends them, instead of
	 * waiting out upload_wait_ms for a cap nothing else would free. */
	lt_opts(&o);
	o.no_dedup = 1;
	o.segment_size = 5 * MIB;
	o.upload_cap = 10 * MIB;
	o.stream_commit_bytes = 256 * MIB;  /* no commit (sync) flushes the spool */
	o.upload_wait_ms = 3000;
	REQUIRE_OK(volume_open(dir, &o, &v));
	uint64_t ino2 = lt_ino(v, "capped"), seed2 = t_rand(&rng);
	REQUIRE_OK(volume_file_open(v, ino2, &f));
	CHECK_OK(lt_write(f, 0, 40 * MIB, seed2, &rng));
	CHECK_OK(volume_file_close(f));
	REQUIRE(lt_wait_uploaded(v) == 0);
	volume_stats(v, &st);
	CHECK(st.upload_failures == 0);
	CHECK_OK(volume_drop_cache(v));
	REQUIRE_OK(volume_file_open(v, ino2, &f));
	CHECK(lt_verify(f, 40 * MIB, seed2, 8 << 20, 0, 0) == 0);
	CHECK_OK(volume_file_close(f));
	CHECK_OK(volume_close(v));
	free(buf);
	free(got);
	t_rmtree(tmp);
	return t_done();
}
