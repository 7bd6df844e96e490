/*
 * test_large_readto.c - volume_file_read_to (the FUSE mount's READ path,
 * issue #8): a large file's bytes handed out from the readahead's verified
 * chunks, without the copy into the caller's buffer, and exactly the bytes
 * volume_file_read would give in every other case.
 *
 *   A. 32 MiB (CAIRN_TEST_SCALE) uploaded, local copy dropped: read
 *      sequentially in 256 KiB, 1 MiB and 3,000,001-byte pieces (inside
 *      chunks and across chunk boundaries): every byte right, and most
 *      pieces served from the readahead (counter read_nocopy_bytes; 0
 *      before the change, when every read copied).
 *   B. four threads taking interleaved 1 MiB pieces of one handle: slots
 *      pinned by one reply are not reused under it (every byte checked).
 *   C. fn's error is returned; the pins are released (the file reads on).
 *   D. a buffered write inside a chunk: the range comes from the caller's
 *      buffer with the written bytes over the chunk's.
 *   E. end of file: a short last piece, then an empty one (niov 0).
 */
#include <pthread.h>

#include "large_t.h"

typedef struct rd {
	uint8_t *buf;       /* the caller's buffer given to read_to */
	uint8_t *out;       /* where fn gathers the pieces */
	size_t cap;
	size_t len;
	int niov;
	int direct;         /* the pieces were not buf */
	int fail;           /* fn returns CAIRN_E_IO */
} rd;

static int gather(void *arg, const struct iovec *iov, int niov, size_t len)
{
	rd *r = arg;
	size_t n = 0;
	r->niov = niov;
	r->direct = niov > 0 && iov[0].iov_base != r->buf;
	for (int i = 0; i < niov; i++) {
		if (n + iov[i].iov_len > r->cap)
			return cairn_errf(CAIRN_E_INVAL, "pieces overflow the buffer");
		memcpy(r->out + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	r->len = n;
	if (n != len)
		return cairn_errf(CAIRN_E_INVAL, "pieces hold %zu bytes, len says %zu", n, len);
	return r->fail ? cairn_errf(CAIRN_E_IO, "fn failed on purpose") : 0;
}

/* Read [off, off+n) with read_to and check it against the seeded bytes
 * (patch: optional bytes written over [poff, poff+plen)). */
static int check_range(cairn_file *f, uint64_t off, size_t n, uint64_t seed, uint64_t size,
		       int *direct, const uint8_t *patch, uint64_t poff, size_t plen)
{
	uint8_t *buf = malloc(n ? n : 1), *out = malloc(n ? n : 1), *want = malloc(n ? n : 1);
	rd r = { .buf = buf, .out = out, .cap = n };
	int bad = 0;
	if (!buf || !out || !want) {
		bad = 1;
		goto out;
	}
	int rc = volume_file_read_to(f, buf, n, off, gather, &r);
	size_t exp = off >= size ? 0 : (size - off < n ? (size_t)(size - off) : n);
	if (rc || r.len != exp) {
		fprintf(stderr, "read_to at %" PRIu64 "+%zu: rc %d (%s), %zu bytes, %zu expected\n",
			off, n, rc, rc ? cairn_errmsg() : "", r.len, exp);
		bad = 1;
		goto out;
	}
	lt_fill(want, exp, off, seed);
	for (size_t i = 0; patch && i < plen; i++)
		if (poff + i >= off && poff + i < off + exp)
			want[poff + i - off] = patch[i];
	if (memcmp(out, want, exp)) {
		size_t i = 0;
		while (out[i] == want[i])
			i++;
		fprintf(stderr, "read_to at %" PRIu64 "+%zu: wrong byte at %" PRIu64 "\n", off, n,
			off + i);
		bad = 1;
	}
	if (direct)
		*direct = r.direct;
out:
	free(buf);
	free(out);
	free(want);
	return bad;
}

static cairn_file *g_f;
static uint64_t g_seed, g_size;
static unsigned g_next;
static _Atomic int g_bad;

static void *reader(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t off = (uint64_t)__atomic_fetch_add(&g_next, 1, __ATOMIC_RELAXED) * MIB;
		if (off >= g_size)
			break;
		if (check_range(g_f, off, MIB, g_seed, g_size, NULL, NULL, 0, 0))
			g_bad++;
	}
	return NULL;
}

int main(void)
{
	const char *tmp = t_tmpdir("large_readto");
	char dir[700];
	uint64_t rng = t_seed(), seed = t_rand(&rng);
	uint64_t fsize = t_scaled(32) * MIB + 12345;
	cairn_volume_opts o;
	cairn_volume_stats st;
	cairn_volume *v;
	cairn_file *f;

	snprintf(dir, sizeof dir, "%s/vol", tmp);
	lt_format(dir);
	lt_opts(&o);
	o.no_dedup = 1;
	REQUIRE_OK(volume_open(dir, &o, &v));
	uint64_t ino = lt_uploaded_file(v, "big", fsize, seed, &rng);

	/* A: sequential pieces of three sizes, each pass from a fresh handle. */
	static const size_t pieces[] = { 256 << 10, 1 << 20, 3000001 };
	for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
		volume_stats(v, &st);
		uint64_t nc0 = st.read_nocopy_bytes;
		unsigned direct = 0, calls = 0;
		REQUIRE_OK(volume_file_open(v, ino, &f));
		for (uint64_t off = 0; off < fsize; off += pieces[p], calls++) {
			int d = 0;
			if (check_range(f, off, pieces[p], seed, fsize, &d, NULL, 0, 0)) {
				CHECK(0);
				break;
			}
			direct += d;
		}
		CHECK_OK(volume_file_close(f));
		volume_stats(v, &st);
		uint64_t nc = st.read_nocopy_bytes - nc0;
		printf("A: %zu-byte pieces: %u of %u calls from the readahead, %" PRIu64
		       " of %" PRIu64 " bytes uncopied\n", pieces[p], direct, calls, nc, fsize);
		CHECK(nc >= fsize / 2);
		CHECK(direct >= calls / 2);
	}

	/* B: four threads, interleaved 1 MiB pieces of one handle. */
	REQUIRE_OK(volume_file_open(v, ino, &g_f));
	g_seed = seed;
	g_size = fsize;
	pthread_t th[4];
	for (int k = 0; k < 4; k++)
		REQUIRE(pthread_create(&th[k], NULL, reader, NULL) == 0);
	for (int k = 0; k < 4; k++)
		pthread_join(th[k], NULL);
	CHECK(g_bad == 0);
	CHECK_OK(volume_file_close(g_f));

	/* C: fn's error comes back; then the file reads on from those slots. */
	REQUIRE_OK(volume_file_open(v, ino, &f));
	{
		uint8_t *buf = malloc(MIB), *out = malloc(MIB);
		REQUIRE(buf && out);
		for (uint64_t off = 0; off < 8 * MIB; off += MIB) {
			rd r = { .buf = buf, .out = out, .cap = MIB, .fail = 1 };
			CHECK(volume_file_read_to(f, buf, MIB, off, gather, &r) == CAIRN_E_IO);
			CHECK(r.len == MIB);
		}
		free(buf);
		free(out);
	}
	for (uint64_t off = 0; off < fsize; off += MIB)
		if (check_range(f, off, MIB, seed, fsize, NULL, NULL, 0, 0)) {
			CHECK(0);
			break;
		}

	/* D: a buffered write inside a chunk, read before it is staged. */
	uint8_t patch[4096];
	uint64_t poff = 5 * MIB + 777;
	for (size_t i = 0; i < sizeof patch; i++)
		patch[i] = (uint8_t)(i * 7 + 1);
	REQUIRE_OK(volume_file_write(f, patch, sizeof patch, poff));
	int d = 1;
	CHECK(check_range(f, 5 * MIB, MIB, seed, fsize, &d, patch, poff, sizeof patch) == 0);
	CHECK(d == 0);  /* from the caller's buffer */
	CHECK(check_range(f, 4 * MIB, 3 * MIB, seed, fsize, NULL, patch, poff,
			  sizeof patch) == 0);

	/* E: the last piece is short, past the end nothing. */
	CHECK(check_range(f, fsize - 1000, MIB, seed, fsize, NULL, NULL, 0, 0) == 0);
	{
		uint8_t b1[16], o1[16];
		rd r = { .buf = b1, .out = o1, .cap = sizeof o1, .niov = -1 };
		CHECK_OK(volume_file_read_to(f, b1, sizeof b1, fsize, gather, &r));
		CHECK(r.niov == 0 && r.len == 0);
	}
	CHECK_OK(volume_file_close(f));
	CHECK_OK(volume_close(v));
	return t_done();
}
