/*
 * test_space_dedup_seg.c - the dedup hook of the stream segment writer
 * (segments/seg_stream.c, seg_stream_opts.dedup), without the volume: a
 * hook that claims some chunks gets, for each cut chunk, its stream
 * offset, its bytes and their SHA-256; a claimed chunk gets no frame and
 * is reported with dedup = the id the hook gave (its crc and length set);
 * the other chunks are appended as usual; the chunks still tile the
 * stream; the sealed segment verifies and holds exactly the unclaimed
 * frames, whose bytes are the stream's.  A hook answering 1 without an id
 * keeps the chunk.
 */
#include <fcntl.h>

#include "cairn/codec.h"
#include "cairn/segment.h"
#include "dedup_t.h"

typedef struct hookst {
	const uint8_t *data;
	size_t len;
	unsigned calls, claimed, bad;
} hookst;

static int hook(void *arg, const uint8_t *buf, size_t len, uint64_t pos,
		const uint8_t hash[32], uint64_t *chunk_id, uint32_t *crc)
{
	hookst *h = arg;
	uint8_t want[32];
	unsigned k = h->calls++;
	if (pos + len > h->len || memcmp(buf, h->data + pos, len) ||
	    cairn_sha256(buf, len, want) || memcmp(want, hash, 32))
		h->bad++;
	if (k % 3 == 2) {  /* answers 1 without an id: must be kept */
		*chunk_id = 0;
		return 1;
	}
	if (k % 3 == 1) {
		*chunk_id = 1000 + k;
		*crc = cairn_crc32c(0, buf, len);
		h->claimed++;
		return 1;
	}
	return 0;
}

int main(void)
{
	const char *tmp = t_tmpdir("space_dedup_seg");
	char path[700];
	uint64_t rng = t_seed();
	size_t len = 6 << 20;
	uint8_t *data = malloc(len);
	cairn_uring *u;
	seg_stream *s;
	seg_id id = { .epoch = 1, .seq = 3, .kind = SEG_KIND_STREAM };
	hookst h = { 0 };
	REQUIRE(data);
	REQUIRE_OK(uring_open(NULL, &u));
	snprintf(path, sizeof path, "%s/s.seg", tmp);
	lt_fill(data, len, 0, t_rand(&rng));
	h.data = data;
	h.len = len;
	seg_stream_opts so = { .avg_chunk = 64 << 10, .dedup = hook, .dedup_arg = &h };
	REQUIRE_OK(seg_stream_create(u, path, &id, &so, &s));
	for (size_t pos = 0; pos < len;) {
		size_t n = 1 + t_rand(&rng) % 200000;
		n = n > len - pos ? len - pos : n;
		REQUIRE_OK(seg_stream_write(s, data + pos, n));
		pos += n;
	}
	REQUIRE_OK(seg_stream_cut(s));
	size_t n = seg_stream_ready(s);
	CHECK(n == h.calls && n > 40);
	CHECK(h.bad == 0);
	uint64_t at = 0;
	unsigned claimed = 0, frames = 0, ok = 1;
	int fd = open(path, O_RDONLY);
	REQUIRE(fd >= 0);
	uint8_t *buf = malloc(SEG_FRAME_MAX_RAW > (1u << 20) ? 1u << 20 : SEG_FRAME_MAX_RAW);
	REQUIRE(buf);
	for (size_t i = 0; i < n; i++) {
		seg_stream_chunk c;
		REQUIRE_OK(seg_stream_chunk_get(s, i, &c));
		ok &= c.pos == at;
		if (i % 3 == 1) {
			claimed++;
			ok &= c.dedup == 1000 + i && c.fr.raw_len == c.fr.stored_len &&
			      c.fr.crc == cairn_crc32c(0, data + c.pos, c.fr.raw_len);
		} else {
			frames++;
			/* A raw frame: the stream's bytes after the frame header. */
			ok &= c.dedup == 0 && c.fr.raw_len <= (1u << 20) &&
			      pread(fd, buf, c.fr.raw_len, (off_t)(c.fr.off + SEG_FRAME_HDR_SIZE)) ==
				      (ssize_t)c.fr.raw_len &&
			      !memcmp(buf, data + c.pos, c.fr.raw_len);
		}
		at += c.fr.raw_len;
	}
	CHECK(ok);
	CHECK(at == len);
	CHECK(claimed == h.claimed && claimed > 10);
	seg_stream_take(s, n);
	uint64_t size = 0;
	REQUIRE_OK(seg_writer_seal(seg_stream_writer(s), &size));
	seg_stream_close(s);
	uint8_t *all = malloc(size);
	REQUIRE(all);
	REQUIRE(pread(fd, all, size, 0) == (ssize_t)size);
	close(fd);
	CHECK_OK(seg_verify_buf(path, all, size, &id));
	seg_footer ft;
	CHECK_OK(seg_footer_parse(path, all + size - SEG_FOOTER_SIZE, SEG_FOOTER_SIZE, size, &id,
				  &ft));
	CHECK(ft.frame_count == frames);
	CHECK(size < len - (uint64_t)claimed * (16u << 10));  /* claimed bytes not stored */
	free(all);
	free(buf);
	free(data);
	uring_close(u);
	t_rmtree(tmp);
	return t_done();
}
