/*
 * test_large_ramem.c - the volume-wide bound on readahead memory
 * (opts.readahead_mem, docs/large-files.md "Read path"): two checkpoint
 * loaders read two uploaded files at once in 32 MiB pieces, each wanting a
 * window of 60 chunks (about 150 MiB of slots).  With the bound at its
 * minimum, 64 MiB, the memory the volume reports never passes it, chunks
 * that did not fit are counted as refused and read the ordinary way, every
 * byte is right, and closing the files gives all of it back.  The same
 * reads with the default bound (1 GiB) refuse nothing and do hold more
 * than 64 MiB at some point, so the first half has something to bound.
 */
#include "large_t.h"

#define PIECE (32u * MIB)

struct run {
	uint64_t peak, refused, after;
	int bad;
};

/* Read files a and b (fsize bytes each, seeds sa and sb) alternately in
 * PIECE-byte pieces, sampling the readahead memory after each. */
static void read_both(cairn_volume *v, const uint64_t ino[2], const uint64_t seed[2],
		      uint64_t fsize, struct run *r)
{
	cairn_file *f[2];
	uint8_t *buf = malloc(PIECE), *want = malloc(PIECE);
	cairn_volume_stats st;

	REQUIRE(buf && want);
	memset(r, 0, sizeof *r);
	volume_stats(v, &st);
	uint64_t refused0 = st.readahead_refused;
	REQUIRE_OK(volume_file_open(v, ino[0], &f[0]));
	REQUIRE_OK(volume_file_open(v, ino[1], &f[1]));
	for (uint64_t pos = 0; pos < fsize && !r->bad; pos += PIECE) {
		size_t n = fsize - pos < PIECE ? (size_t)(fsize - pos) : PIECE;
		for (int k = 0; k < 2 && !r->bad; k++) {
			size_t got = 0;
			int rc = volume_file_read(f[k], buf, n, pos, &got);
			lt_fill(want, n, pos, seed[k]);
			if (rc || got != n || memcmp(buf, want, n)) {
				T_FAIL_("file %d at %" PRIu64 ": rc %d (%s), got %zu of %zu%s", k,
					pos, rc, rc ? cairn_errmsg() : "", got, n,
					!rc && got == n ? ", wrong bytes" : "");
				r->bad = 1;
			}
			volume_stats(v, &st);
			if (st.readahead_bytes > r->peak)
				r->peak = st.readahead_bytes;
		}
	}
	CHECK_OK(volume_file_close(f[0]));
	CHECK_OK(volume_file_close(f[1]));
	volume_stats(v, &st);
	r->refused = st.readahead_refused - refused0;
	r->after = st.readahead_bytes;
	free(buf);
	free(want);
}

int main(void)
{
	const char *tmp = t_tmpdir("large_ramem");
	char dir[700];
	uint64_t rng = t_seed(), seed[2] = { t_rand(&rng), t_rand(&rng) };
	uint64_t fsize = t_scaled(96) * MIB + 12345, ino[2];
	cairn_volume_opts o;
	cairn_volume *v;
	struct run r;

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	lt_format(dir);
	lt_opts(&o);
	o.no_dedup = 1;
	REQUIRE_OK(volume_open(dir, &o, &v));
	ino[0] = lt_uploaded_file(v, "a", fsize, seed[0], &rng);
	ino[1] = lt_uploaded_file(v, "b", fsize, seed[1], &rng);
	CHECK_OK(volume_close(v));

	/* Bounded: at most 64 MiB (a smaller setting is raised to it). */
	o.readahead_mem = 1;
	REQUIRE_OK(volume_open(dir, &o, &v));
	read_both(v, ino, seed, fsize, &r);
	printf("bound 64 MiB: peak %" PRIu64 " MiB, %" PRIu64 " chunks refused, %" PRIu64
	       " bytes held after close\n", (uint64_t)(r.peak / MIB), r.refused, r.after);
	CHECK(r.peak <= 64 * MIB);
	CHECK(r.refused > 0);
	CHECK(r.after == 0);
	CHECK_OK(volume_close(v));

	/* The default bound: the same reads want more than 64 MiB. */
	o.readahead_mem = 0;
	REQUIRE_OK(volume_open(dir, &o, &v));
	CHECK_OK(volume_drop_cache(v));
	read_both(v, ino, seed, fsize, &r);
	printf("default bound: peak %" PRIu64 " MiB, %" PRIu64 " chunks refused\n",
	       (uint64_t)(r.peak / MIB), r.refused);
	CHECK(r.peak > 64 * MIB);
	CHECK(r.refused == 0);
	CHECK(r.after == 0);
	CHECK_OK(volume_close(v));
	if (t_failures_ == 0)
		t_rmtree(tmp);
	return t_done();
}
