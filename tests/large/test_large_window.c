/*
 * test_large_window.c - the readahead window of a reader of large pieces
 * (issue #6, docs/large-files.md "Read path"): a checkpoint loader reading
 * 8-chunk pieces sequentially gets a window of two pieces, so its chunks
 * come from the readahead (fetched while it was busy with the previous
 * piece), not from GETs it waits for.  With the
 * window capped at stream_readahead (4 here) half of every piece was
 * fetched on demand.  A reader that starts at the beginning of the file
 * is sequential from its first read, and while the window is open every
 * chunk it reads comes through a readahead slot (straight into reused,
 * aligned memory), so none is fetched on demand: with the window opening
 * on the second read, the first two pieces were (15 chunks of 96).  Every
 * byte is checked, and each chunk is fetched about once.
 */
#include "large_t.h"

int main(void)
{
	const char *tmp = t_tmpdir("large_window");
	char dir[700];
	uint64_t rng = t_seed(), seed = t_rand(&rng);
	uint64_t fsize = t_scaled(96) * MIB + 4321;
	const size_t piece = 8 * MIB;  /* 8 average chunks */
	cairn_volume_opts o;
	cairn_volume_stats st;
	cairn_volume *v;
	cairn_file *f;

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	lt_format(dir);
	lt_opts(&o);
	o.no_dedup = 1;
	o.stream_readahead = 4;
	REQUIRE_OK(volume_open(dir, &o, &v));
	uint64_t ino = lt_uploaded_file(v, "ckpt", fsize, seed, &rng);

	volume_stats(v, &st);
	uint64_t par0 = st.reads_demand, rb0 = st.read_chunk_bytes;
	REQUIRE_OK(volume_file_open(v, ino, &f));
	CHECK(lt_verify(f, fsize, seed, piece, 0, 0) == 0);
	CHECK_OK(volume_file_close(f));
	volume_stats(v, &st);
	uint64_t par = st.reads_demand - par0, rb = st.read_chunk_bytes - rb0;
	uint64_t chunks = fsize / MIB;
	printf("%" PRIu64 " MiB in %zu MiB pieces: %" PRIu64 " of ~%" PRIu64
	       " chunks fetched on demand, %.2fx the file fetched\n",
	       (uint64_t)(fsize / MIB), (size_t)(piece / MIB), par, chunks,
	       (double)rb / (double)fsize);
	/* None on demand; about 16 (the first two pieces) when the window
	 * opened on the second read, 4 of every 8 with the old cap. */
	CHECK(par <= 2);
	CHECK(rb <= fsize + fsize / 5);
	CHECK_OK(volume_close(v));
	if (t_failures_ == 0)
		t_rmtree(tmp);
	return t_done();
}
