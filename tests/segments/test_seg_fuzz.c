/*
 * test_seg_fuzz.c - replays the fuzz entry point (fuzz_segment.c) in every
 * normal test run: seed segments made by the real writer, the files of a
 * corpus directory given as arguments, and thousands of random mutations:
 * byte flips, truncations, splices, and structure-aware edits of footer,
 * index and frame header fields with their checksums fixed up, so that
 * the deeper checks (lengths, offsets, counts) are reached, not only the
 * crcs.
 */
#include <dirent.h>

#include "seg_int.h"
#include "seg_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *make_seed(cairn_uring *u, const char *dir, int n, uint64_t seed,
			  size_t *len)
{
	char path[600];
	seg_writer *w;
	seg_id id;
	uint8_t chunk[3000];
	uint64_t s = seed;
	uint8_t *buf;

	st_id(&id, 1, (uint64_t)n);
	snprintf(path, sizeof path, "%s/seed%d.seg", dir, n);
	unlink(path);
	REQUIRE_OK(seg_writer_create(u, path, &id, NULL, &w));
	for (int i = 0; i < n; i++) {
		size_t l = (size_t)(t_rand(&s) % sizeof chunk);
		st_chunk(chunk, l, (int)(t_rand(&s) % 3), t_rand(&s));
		REQUIRE_OK(seg_writer_append(w, (uint64_t)i, chunk, l, NULL));
	}
	REQUIRE_OK(seg_writer_seal(w, NULL));
	seg_writer_close(w);
	buf = st_slurp(path, len);
	REQUIRE_OK(seg_verify_buf("seed", buf, *len, &id));
	return buf;
}

/* Recompute the crcs that cover a valid segment's footer and index, and
 * of frame headers, so that a field edit is checked on its merits. */
static void fix_crcs(uint8_t *b, size_t len)
{
	uint64_t ioff, ilen;

	if (len < SEG_HEADER_SIZE + SEG_FOOTER_SIZE)
		return;
	seg_put32(b + 60, cairn_crc32c(0, b, 60));
	ioff = seg_get64(b + len - 48);
	ilen = seg_get64(b + len - 40);
	if (ioff <= len && ilen <= len - ioff)
		seg_put32(b + len - 8, cairn_crc32c(0, b + ioff, ilen));
	seg_put32(b + len - 4, cairn_crc32c(0, b + len - 64, 60));
	if (len >= SEG_HEADER_SIZE + 32)
		seg_put32(b + 64 + 28, cairn_crc32c(0, b + 64, 28));
}

static size_t mutate(uint8_t *b, size_t len, size_t cap, uint64_t *s)
{
	uint64_t r = t_rand(s);
	size_t at = len ? (size_t)(t_rand(s) % len) : 0;

	switch (r % 7) {
	case 0: /* flip bits */
		for (int i = 0, n = 1 + (int)(r >> 8) % 4; i < n && len; i++)
			b[t_rand(s) % len] ^= (uint8_t)(1u << (t_rand(s) % 8));
		break;
	case 1: /* truncate */
		return at;
	case 2: /* duplicate a range (splice) */
		if (len && len < cap) {
			size_t n = (size_t)(t_rand(s) % (cap - len));
			if (n > len - at)
				n = len - at;
			memmove(b + at + n, b + at, len - at);
			return len + n;
		}
		break;
	case 3: /* an interesting value into a footer field, crcs fixed */
	case 4: /* ... into an index entry or frame header, crcs fixed */
	case 5: {
		static const uint64_t vals[] = {0, 1, 31, 32, 63, 64, 65, 0x7f,
						0xff, 0xffff, 0x10000, 0x7fffffff,
						0xffffffff, 0x100000000ull,
						UINT64_MAX, UINT64_MAX - 63};
		uint64_t v = vals[t_rand(s) % 16];
		size_t w = (size_t)1 << (t_rand(s) % 4);
		size_t pos;

		if (len < SEG_HEADER_SIZE + SEG_FOOTER_SIZE)
			break;
		if (r % 7 == 3)
			pos = len - SEG_FOOTER_SIZE + 8 + (size_t)(t_rand(s) % 48);
		else if (r % 7 == 4)
			pos = SEG_HEADER_SIZE + (size_t)(t_rand(s) % 28);
		else
			pos = (size_t)(t_rand(s) % len);
		if (pos + w > len)
			break;
		for (size_t i = 0; i < w; i++)
			b[pos + i] = (uint8_t)(v >> (8 * i));
		if (r % 7 != 5 || (r >> 20) % 2)
			fix_crcs(b, len);
		break;
	}
	default: /* random bytes over a range */
		for (size_t i = at, n = 0; i < len && n < 16; i++, n++)
			b[i] = (uint8_t)t_rand(s);
		break;
	}
	return len;
}

static void replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d) {
		T_FAIL_("cannot open corpus %s", dir);
		return;
	}
	while ((de = readdir(d))) {
		char path[1200];
		size_t len;
		uint8_t *buf;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		buf = st_slurp(path, &len);
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		n++;
	}
	closedir(d);
	printf("replayed %d corpus files from %s\n", n, dir);
	t_checks_++;
}

int main(int argc, char **argv)
{
	uint64_t seed = t_seed(), s = seed;
	cairn_uring *u;
	const char *dir = t_tmpdir("seg_fuzz");
	enum { NSEEDS = 5 };
	uint8_t *seeds[NSEEDS];
	size_t lens[NSEEDS];
	uint64_t iters = t_scaled(20000), accepted = 0;

	REQUIRE_OK(uring_open(NULL, &u));
	REQUIRE_OK(cairn_log_set_file("/dev/null"));
	for (int i = 0; i < NSEEDS; i++) {
		seeds[i] = make_seed(u, dir, i * 3, seed + (uint64_t)i, &lens[i]);
		LLVMFuzzerTestOneInput(seeds[i], lens[i]);
		/* CAIRN_SEG_FUZZ_DUMP=dir writes the seeds out: how the
		 * checked-in corpus (tests/segments/corpus) was made. */
		if (getenv("CAIRN_SEG_FUZZ_DUMP")) {
			char p[700];
			snprintf(p, sizeof p, "%s/seed-%d.seg",
				 getenv("CAIRN_SEG_FUZZ_DUMP"), i * 3);
			st_spit(p, seeds[i], lens[i]);
		}
	}
	for (int i = 1; i < argc; i++)
		replay_dir(argv[i]);
	/* Keys and frames on their own, too. */
	LLVMFuzzerTestOneInput((const uint8_t *)"v/10171e25-2c33-3a41-484f-565d646b7279/seg/"
			       "000000000000001f/000000000000002a.p", 78);
	LLVMFuzzerTestOneInput(seeds[1] + SEG_HEADER_SIZE, lens[1] - SEG_HEADER_SIZE);

	for (uint64_t it = 0; it < iters; it++) {
		int k = (int)(t_rand(&s) % NSEEDS);
		size_t cap = lens[k] * 2 + 64, len = lens[k];
		uint8_t *b = malloc(cap);

		REQUIRE(b);
		memcpy(b, seeds[k], len);
		for (int m = 0, nm = 1 + (int)(t_rand(&s) % 3); m < nm; m++)
			len = mutate(b, len, cap, &s);
		LLVMFuzzerTestOneInput(b, len);
		accepted += seg_verify_buf("m", b, len, NULL) == 0;
		free(b);
	}
	REQUIRE_OK(cairn_log_set_file(NULL));
	printf("%" PRIu64 " mutations, %" PRIu64 " still valid\n", iters, accepted);
	/* Most mutations must be rejected; some (e.g. a flip in an unused
	 * truncation) may survive only by being no change at all. */
	CHECK(accepted < iters / 2);
	for (int i = 0; i < NSEEDS; i++)
		free(seeds[i]);
	uring_close(u);
	t_rmtree(dir);
	return t_done();
}
