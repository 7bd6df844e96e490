/*
 * test_large_cdc_ref.c - the stream writer's chunking (seg_stream_write's
 * multi-lane gear scan, the chunk's crc32c computed while it is copied in,
 * its SHA-256 computed while the bytes arrive) against the reference:
 * seg_cdc_next applied chunk after chunk, cairn_sha256 and cairn_crc32c
 * of each reference chunk, with the SHA-256 computed by the writer
 * thread, by the caller, or by either as the load goes (hash_by).
 * Random, structured and degenerate data
 * (zeros: only forced cuts at max), several chunk sizes, bytes fed in
 * random pieces from 1 byte to several MiB, forced cuts (seg_stream_cut,
 * as an fsync does) at random points.  Every chunk must match exactly;
 * the sealed segment must verify.  CAIRN_TEST_SCALE scales the rounds.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "cairn/codec.h"
#include "cairn/segment.h"
#include "large_t.h"

static cairn_uring *u;

typedef struct ref {
	size_t n, cap;
	uint64_t *pos;
	uint32_t *len;
} ref;

static void ref_add(ref *r, uint64_t pos, uint32_t len)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->pos = realloc(r->pos, r->cap * sizeof *r->pos);
		r->len = realloc(r->len, r->cap * sizeof *r->len);
		REQUIRE(r->pos && r->len);
	}
	r->pos[r->n] = pos;
	r->len[r->n++] = len;
}

/* Feed data in random pieces with forced cuts; compare with the
 * reference chunking of each cut-delimited section. */
static void one(const char *path, const uint8_t *data, size_t len, uint32_t avg,
		uint64_t *rng, int verify)
{
	seg_id id = { .epoch = 1, .seq = 7, .kind = SEG_KIND_STREAM };
	static int calls;
	seg_stream_opts so = { .avg_chunk = avg, .hash_by = calls++ % 3 };
	seg_stream *s;
	ref r = { 0 };
	size_t got = 0, bad = 0;
	uint64_t sect = 0;

	unlink(path);
	REQUIRE_OK(seg_stream_create(u, path, &id, &so, &s));
	for (size_t pos = 0; pos < len;) {
		uint64_t k = t_rand(rng);
		size_t n;
		switch (k % 4) {
		case 0: n = 1 + (k >> 8) % 100; break;
		case 1: n = 1 + (k >> 8) % 70000; break;
		case 2: n = (size_t)1 << (12 + (k >> 8) % 12); break;  /* 4 KiB .. 8 MiB */
		default: n = 1 + (k >> 8) % (8u << 20); break;
		}
		if (n > len - pos)
			n = len - pos;
		REQUIRE_OK(seg_stream_write(s, data + pos, n));
		pos += n;
		/* A forced cut now and then (an fsync), or at the end. */
		if (pos == len || t_rand(rng) % 64 == 0) {
			REQUIRE_OK(seg_stream_cut(s));
			for (uint64_t at = sect; at < pos;) {
				size_t c = seg_cdc_next(&so, data + at, pos - at);
				ref_add(&r, at, (uint32_t)c);
				at += c;
			}
			sect = pos;
			size_t nr = seg_stream_ready(s);
			for (size_t i = 0; i < nr; i++, got++) {
				seg_stream_chunk c;
				uint8_t h[32];
				REQUIRE_OK(seg_stream_chunk_get(s, i, &c));
				if (got >= r.n || c.pos != r.pos[got] || c.fr.raw_len != r.len[got]) {
					if (bad++ < 5)
						printf("avg %u chunk %zu: at %" PRIu64 " + %u, reference "
						       "%" PRIu64 " + %u\n", avg, got, c.pos, c.fr.raw_len,
						       got < r.n ? r.pos[got] : 0,
						       got < r.n ? r.len[got] : 0);
					continue;
				}
				REQUIRE_OK(cairn_sha256(data + c.pos, c.fr.raw_len, h));
				if (memcmp(h, c.hash, 32) ||
				    c.fr.crc != cairn_crc32c(0, data + c.pos, c.fr.raw_len) ||
				    c.fr.codec != SEG_CODEC_RAW || c.fr.stored_len != c.fr.raw_len) {
					if (bad++ < 5)
						printf("avg %u hash_by %d chunk %zu at %" PRIu64
						       ": hash/crc/frame differ\n", avg, so.hash_by, got,
						       c.pos);
				}
			}
			seg_stream_take(s, nr);
		}
	}
	CHECK(bad == 0);
	CHECK(got == r.n);
	CHECK(seg_stream_pos(s) == len);
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
	printf("avg %u hash_by %d: %zu bytes, %zu chunks match the reference\n", avg,
	       so.hash_by, len, got);
	free(r.pos);
	free(r.len);
}

int main(void)
{
	const char *tmp = t_tmpdir("large_cdc_ref");
	char path[700];
	uint64_t rng = t_seed();
	size_t len = 24u << 20;
	uint8_t *data = malloc(len);
	uint64_t rounds = t_scaled(2);

	REQUIRE(data);
	REQUIRE_OK(uring_open(NULL, &u));
	snprintf(path, sizeof path, "%s/s.seg", tmp);
	for (uint64_t round = 0; round < rounds; round++) {
		/* Random bytes. */
		for (size_t i = 0; i < len; i += 8) {
			uint64_t z = t_rand(&rng);
			memcpy(data + i, &z, 8);
		}
		one(path, data, len, 16u << 10, &rng, round == 0);
		one(path, data, len, 1u << 20, &rng, 0);
		one(path, data, len, 4u << 20, &rng, 0);
		/* Structured: runs and noise. */
		lt_fill(data, len, 0, t_rand(&rng));
		one(path, data, len, 64u << 10, &rng, 0);
		/* Degenerate: zeros with a few random patches (cuts at max
		 * and wherever a patch makes one). */
		memset(data, 0, len);
		for (int i = 0; i < 16; i++) {
			size_t at = t_rand(&rng) % (len - 8192);
			for (size_t j = 0; j < 8192; j += 8) {
				uint64_t z = t_rand(&rng);
				memcpy(data + at + j, &z, 8);
			}
		}
		one(path, data, len, 256u << 10, &rng, round == 0);
		one(path, data, 100000, 256, &rng, 0);  /* smallest chunks */
	}
	uring_close(u);
	free(data);
	t_rmtree(tmp);
	return t_done();
}
