/* test_codec - crc32c against published check values, both
 * implementations against each other, SHA-256 against FIPS 180-2 vectors,
 * and zstd refusing every kind of bad frame. */
#include <zstd.h>

#include "t.h"
#include "cairn/codec.h"

static void test_crc(void)
{
	uint8_t buf[32];

	/* Standard check value of CRC-32C. */
	CHECK(cairn_crc32c(0, "123456789", 9) == 0xe3069283u);
	CHECK(cairn_crc32c_sw(0, "123456789", 9) == 0xe3069283u);
	/* RFC 3720 (iSCSI) appendix B.4 vectors. */
	memset(buf, 0, sizeof buf);
	CHECK(cairn_crc32c(0, buf, 32) == 0x8a9136aau);
	memset(buf, 0xff, sizeof buf);
	CHECK(cairn_crc32c(0, buf, 32) == 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	CHECK(cairn_crc32c(0, buf, 32) == 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	CHECK(cairn_crc32c(0, buf, 32) == 0x113fdb5cu);
	CHECK(cairn_crc32c(0, "", 0) == 0);

	/* Hardware and table agree on every length and alignment, and
	 * extending in pieces equals one pass. */
	size_t n = 70000;
	uint8_t *big = malloc(n + 16);
	REQUIRE(big);
	t_fill(big, n + 16, 7);
	for (size_t off = 0; off < 9; off++) {
		for (size_t len = 0; len < 300; len += 7)
			CHECK(cairn_crc32c(0, big + off, len) ==
			      cairn_crc32c_sw(0, big + off, len));
	}
	/* Around the three-stream block sizes (3 x 256, 3 x 8192). */
	static const size_t edge[] = { 767, 768, 769, 1536, 24575, 24576, 24577,
				       24576 + 768, 49151, 49152, 49153 };
	for (size_t off = 0; off < 9; off += 4)
		for (size_t k = 0; k < sizeof edge / sizeof *edge; k++)
			CHECK(cairn_crc32c(5, big + off, edge[k]) ==
			      cairn_crc32c_sw(5, big + off, edge[k]));
	uint32_t whole = cairn_crc32c(0, big, n);
	uint32_t part = cairn_crc32c(cairn_crc32c(0, big, 12345), big + 12345, n - 12345);
	CHECK(whole == part);
	CHECK(whole == cairn_crc32c_sw(0, big, n));
	big[5000] ^= 1; /* one flipped bit changes the sum */
	CHECK(cairn_crc32c(0, big, n) != whole);
	printf("crc32c implementation: %s\n", cairn_crc32c_impl());
	free(big);
}

static void test_sha(void)
{
	uint8_t d[CAIRN_SHA256_LEN];
	char hex[65];
	cairn_sha256_ctx *h;

	CHECK_OK(cairn_sha256("abc", 3, d));
	cairn_hex(d, sizeof d, hex);
	CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
	CHECK_OK(cairn_sha256("", 0, d));
	cairn_hex(d, sizeof d, hex);
	CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);

	/* Streaming in pieces: FIPS 180-2's two-block message. */
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	REQUIRE_OK(cairn_sha256_new(&h));
	for (size_t i = 0; i < strlen(m); i += 5)
		CHECK_OK(cairn_sha256_update(h, m + i, strlen(m) - i < 5 ? strlen(m) - i : 5));
	CHECK_OK(cairn_sha256_final(h, d));
	cairn_hex(d, sizeof d, hex);
	CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
	/* final resets: the context is reusable. */
	CHECK_OK(cairn_sha256_update(h, "abc", 3));
	CHECK_OK(cairn_sha256_final(h, d));
	cairn_hex(d, sizeof d, hex);
	CHECK(strncmp(hex, "ba7816bf", 8) == 0);
	cairn_sha256_free(h);
}

static void test_zstd(void)
{
	size_t n = 1 << 20, clen = 0;
	uint8_t *src = malloc(n), *dst = malloc(cairn_zstd_bound(n)), *out = malloc(n);
	REQUIRE(src && dst && out);

	/* Compressible data: half random, half zeros. */
	t_fill(src, n / 2, 11);
	memset(src + n / 2, 0, n / 2);
	REQUIRE_OK(cairn_zstd_compress(src, n, dst, cairn_zstd_bound(n), &clen, 0));
	CHECK(clen < n);
	CHECK_OK(cairn_zstd_decompress(dst, clen, out, n, n));
	CHECK(memcmp(src, out, n) == 0);

	CHECK_RC(cairn_zstd_compress(src, n, dst, 10, &clen, 3), CAIRN_E_RANGE);
	CHECK_MSG("too small");
	CHECK_RC(cairn_zstd_compress(src, n, dst, cairn_zstd_bound(n), &clen, 99), CAIRN_E_INVAL);
	CHECK_MSG("zstd level 99");

	REQUIRE_OK(cairn_zstd_compress(src, n, dst, cairn_zstd_bound(n), &clen, 1));
	/* Recorded length disagrees with the frame. */
	CHECK_RC(cairn_zstd_decompress(dst, clen, out, n, n - 1), CAIRN_E_CORRUPT);
	CHECK_MSG("recorded");
	/* Destination too small. */
	CHECK_RC(cairn_zstd_decompress(dst, clen, out, n / 2, n), CAIRN_E_RANGE);
	/* Truncated frame. */
	CHECK_RC(cairn_zstd_decompress(dst, clen - 10, out, n, n), CAIRN_E_CORRUPT);
	/* Garbage. */
	CHECK_RC(cairn_zstd_decompress("not a zstd frame", 16, out, n, 16), CAIRN_E_CORRUPT);
	CHECK_MSG("no valid header");
	CHECK_RC(cairn_zstd_decompress(dst, 0, out, n, 0), CAIRN_E_CORRUPT);
	/* A damaged frame header is caught by zstd itself. */
	dst[0] ^= 0xff;
	CHECK_RC(cairn_zstd_decompress(dst, clen, out, n, n), CAIRN_E_CORRUPT);
	dst[0] ^= 0xff;
	/* Damaged body bytes: zstd frames carry no checksum here (cairn's
	 * crc32c over each frame is what catches them), so the promise is only
	 * memory safety: an error or exactly n bytes, never a write past the
	 * buffer.  The canary after out must survive every attempt. */
	uint8_t *guarded = malloc(n + 64);
	REQUIRE(guarded);
	memset(guarded + n, 0xa5, 64);
	for (size_t i = 20; i < clen; i += clen / 16) {
		uint8_t save = dst[i];
		dst[i] ^= 0x5a;
		int r = cairn_zstd_decompress(dst, clen, guarded, n, n);
		CHECK(r == CAIRN_OK || r == CAIRN_E_CORRUPT);
		dst[i] = save;
	}
	int canary_ok = 1;
	for (int i = 0; i < 64; i++)
		canary_ok &= guarded[n + (size_t)i] == 0xa5;
	CHECK(canary_ok);
	free(guarded);
	/* A frame that does not state its size is refused. */
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	REQUIRE(cc);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
	ZSTD_inBuffer in = {src, 4096, 0};
	ZSTD_outBuffer o = {dst, cairn_zstd_bound(n), 0};
	size_t left = ZSTD_compressStream2(cc, &o, &in, ZSTD_e_end);
	REQUIRE(left == 0);
	ZSTD_freeCCtx(cc);
	CHECK_RC(cairn_zstd_decompress(dst, o.pos, out, n, 4096), CAIRN_E_CORRUPT);
	CHECK_MSG("does not state its content size");
	free(src);
	free(dst);
	free(out);
}

int main(void)
{
	test_crc();
	test_sha();
	test_zstd();
	return t_done();
}
