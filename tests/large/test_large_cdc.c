/*
 * test_large_cdc.c - the stream segment writer (segments/seg_stream.c):
 * content-defined boundaries independent of how the bytes were fed, chunk
 * sizes within bounds, boundaries that come back after an insertion near
 * the start (so unchanged chunks keep their hash), SHA-256 of each chunk
 * computed while streaming, and the sealed file is a valid stream segment.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "cairn/codec.h"
#include "cairn/segment.h"
#include "large_t.h"

typedef struct run {
	size_t n;
	uint64_t pos[256];
	uint32_t len[256];
	uint8_t hash[256][32];
} run;

static cairn_uring *u;

/* Stream data through a stream segment in pieces drawn from rng (0: all
 * at once) and record the chunks. */
static void stream_it(const char *path, const uint8_t *data, size_t len,
		      uint64_t *rng, run *out, int verify)
{
	seg_id id = { .epoch = 1, .seq = 2, .kind = SEG_KIND_STREAM };
	seg_stream_opts so = { .avg_chunk = 64 << 10 };
	seg_stream *s;
	unlink(path);
	REQUIRE_OK(seg_stream_create(u, path, &id, &so, &s));
	for (size_t pos = 0; pos < len;) {
		size_t n = rng ? 1 + t_rand(rng) % 100000 : len;
		if (n > len - pos)
			n = len - pos;
		REQUIRE_OK(seg_stream_write(s, data + pos, n));
		pos += n;
	}
	REQUIRE_OK(seg_stream_cut(s));
	CHECK(seg_stream_pos(s) == len);
	out->n = seg_stream_ready(s);
	REQUIRE(out->n <= 256);
	for (size_t i = 0; i < out->n; i++) {
		seg_stream_chunk cc;
		const seg_stream_chunk *c = &cc;
		REQUIRE_OK(seg_stream_chunk_get(s, i, &cc));
		out->pos[i] = c->pos;
		out->len[i] = c->fr.raw_len;
		memcpy(out->hash[i], c->hash, 32);
		CHECK(c->fr.codec == SEG_CODEC_RAW);
	}
	seg_stream_take(s, out->n);
	CHECK(seg_stream_ready(s) == 0);
	uint64_t size = 0;
	REQUIRE_OK(seg_writer_seal(seg_stream_writer(s), &size));
	seg_stream_close(s);
	if (verify) {
		uint8_t *buf = malloc(size);
		int fd = open(path, O_RDONLY);
		REQUIRE(buf && fd >= 0);
		REQUIRE(pread(fd, buf, size, 0) == (ssize_t)size);
		close(fd);
		CHECK_OK(seg_verify_buf(path, buf, size, &id));
		free(buf);
	}
}

int main(void)
{
	const char *tmp = t_tmpdir("large_cdc");
	char path[700];
	uint64_t rng = t_seed();
	size_t len = 6 << 20;
	uint8_t *data = malloc(len + 4096);
	run a, b, c;
	REQUIRE(data);
	REQUIRE_OK(uring_open(NULL, &u));
	snprintf(path, sizeof path, "%s/s.seg", tmp);
	lt_fill(data, len, 0, t_rand(&rng));

	/* Same bytes, fed in different pieces: same chunks. */
	stream_it(path, data, len, NULL, &a, 1);
	stream_it(path, data, len, &rng, &b, 0);
	CHECK(a.n == b.n);
	CHECK(a.n > 40 && a.n < 400);
	int same = a.n == b.n;
	for (size_t i = 0; same && i < a.n; i++)
		same = a.pos[i] == b.pos[i] && a.len[i] == b.len[i] &&
		       !memcmp(a.hash[i], b.hash[i], 32);
	CHECK(same);

	/* Sizes within [min, max] (the last may be short); hashes right;
	 * the chunks tile the stream. */
	uint64_t at = 0;
	int sizes_ok = 1, hashes_ok = 1;
	for (size_t i = 0; i < a.n; i++) {
		uint8_t h[32];
		if (a.pos[i] != at || a.len[i] > (256u << 10) ||
		    (a.len[i] < (16u << 10) && i + 1 < a.n))
			sizes_ok = 0;
		CHECK_OK(cairn_sha256(data + a.pos[i], a.len[i], h));
		hashes_ok &= !memcmp(h, a.hash[i], 32);
		at += a.len[i];
	}
	CHECK(sizes_ok && hashes_ok && at == len);
	CHECK(seg_cdc_next(&(seg_stream_opts){ .avg_chunk = 64 << 10 }, data, len) == a.len[0]);

	/* Insert 1000 bytes near the start: after the first chunks the
	 * boundaries come back, so most chunk hashes recur. */
	memmove(data + 5000 + 1000, data + 5000, len - 5000);
	memset(data + 5000, 0x5a, 1000);
	stream_it(path, data, len + 1000, &rng, &c, 0);
	size_t common = 0;
	for (size_t i = 0; i < c.n; i++)
		for (size_t j = 0; j < a.n; j++)
			if (!memcmp(c.hash[i], a.hash[j], 32)) {
				common++;
				break;
			}
	printf("%zu chunks, %zu after the insertion, %zu in common\n", a.n, c.n, common);
	CHECK(common + 3 >= a.n);

	/* Bad sizes are refused with a clear message. */
	seg_stream_opts bad = { .min_chunk = 1 << 20, .avg_chunk = 64 << 10, .max_chunk = 2 << 20 };
	CHECK_RC(seg_stream_opts_check(&bad), CAIRN_E_INVAL);
	CHECK_MSG("min <= avg");
	seg_id packed = { .epoch = 1, .seq = 3, .kind = SEG_KIND_PACKED };
	seg_stream *s = NULL;
	CHECK_RC(seg_stream_create(u, path, &packed, NULL, &s), CAIRN_E_INVAL);
	CHECK_MSG("not stream");

	uring_close(u);
	free(data);
	t_rmtree(tmp);
	return t_done();
}
