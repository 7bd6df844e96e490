/*
 * codec.c - crc32c, SHA-256 and zstd helpers.
 *
 * crc32c: the Castagnoli CRC (reflected polynomial 0x82f63b78), init and
 * final xor 0xffffffff, so cairn_crc32c(0, "123456789", 9) == 0xe3069283
 * (the standard check value).  On x86-64 with SSE4.2 the crc32 instruction
 * does 8 bytes a step, on three interleaved streams for long buffers (the
 * instruction's latency is three times its throughput) whose CRCs are
 * combined with shift tables; elsewhere a slicing-by-8 table.  The choice
 * is made once (pthread_once) and both must agree bit for bit
 * (tests/runtime).
 *
 * zstd: decompression trusts nothing in the frame.  The caller states the
 * length it recorded beside the frame (expect); the frame's own content
 * size must be present and equal to it, and fit the destination, before a
 * byte is decompressed.  This is what makes a malformed or hostile object
 * an error instead of an overflow.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "cairn/codec.h"
#include "cairn/err.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#define HAVE_X86_CRC 1
#endif

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw;

#ifdef HAVE_X86_CRC
static void crc_shift_tables(void);
#endif

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
#ifdef HAVE_X86_CRC
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
	if (crc_hw)
		crc_shift_tables();
#endif
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= crc; /* little-endian: the low 4 bytes take the crc */
		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		      crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		      crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#ifdef HAVE_X86_CRC
/* Three streams of CRC_LONG (then CRC_SHORT) bytes each: the CRC register
 * is linear, so reg(A B) = shift_|B|(reg(A)) ^ reg_from_0(B), and shift_n
 * (n zero bytes through the register) is a table lookup per byte of the
 * register. */
#define CRC_LONG 8192u
#define CRC_SHORT 256u
static uint32_t crc_shl[4][256], crc_shs[4][256];

__attribute__((target("sse4.2")))
static uint32_t crc_zeros(uint32_t c, size_t n)
{
	uint64_t r = c;
	for (size_t i = 0; i < n / 8; i++)
		r = _mm_crc32_u64(r, 0);
	return (uint32_t)r;
}

static void crc_shift_table(uint32_t t[4][256], size_t n)
{
	uint32_t basis[32];
	for (int b = 0; b < 32; b++)
		basis[b] = crc_zeros(1u << b, n);
	for (int k = 0; k < 4; k++)
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t x = 0;
			for (int j = 0; j < 8; j++)
				if (v & (1u << j))
					x ^= basis[8 * k + j];
			t[k][v] = x;
		}
}

static void crc_shift_tables(void)
{
	crc_shift_table(crc_shl, CRC_LONG);
	crc_shift_table(crc_shs, CRC_SHORT);
}

static inline uint32_t crc_shift(uint32_t t[4][256], uint32_t c)
{
	return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^
	       t[3][c >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw_run(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	for (size_t blk = CRC_LONG; blk >= CRC_SHORT; blk = blk == CRC_LONG ? CRC_SHORT : 0) {
		uint32_t (*t)[256] = blk == CRC_LONG ? crc_shl : crc_shs;
		while (len >= 3 * blk) {
			uint64_t c1 = 0, c2 = 0;
			for (size_t i = 0; i < blk; i += 8) {
				uint64_t w0, w1, w2;
				memcpy(&w0, p + i, 8);
				memcpy(&w1, p + blk + i, 8);
				memcpy(&w2, p + 2 * blk + i, 8);
				c = _mm_crc32_u64(c, w0);
				c1 = _mm_crc32_u64(c1, w1);
				c2 = _mm_crc32_u64(c2, w2);
			}
			c = crc_shift(t, (uint32_t)c) ^ (uint32_t)c1;
			c = crc_shift(t, (uint32_t)c) ^ (uint32_t)c2;
			p += 3 * blk;
			len -= 3 * blk;
		}
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

uint32_t cairn_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	crc = ~crc;
#ifdef HAVE_X86_CRC
	if (crc_hw)
		return ~crc_hw_run(crc, buf, len);
#endif
	return ~crc_sw(crc, buf, len);
}

uint32_t cairn_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_sw(~crc, buf, len);
}

const char *cairn_crc32c_impl(void)
{
	pthread_once(&crc_once, crc_init);
	return crc_hw ? "sse4.2" : "table";
}

/* ---- SHA-256 ---- */

struct cairn_sha256_ctx {
	EVP_MD_CTX *ctx;
};

static int ssl_err(const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return cairn_errf(CAIRN_E_INTERNAL, "sha256 %s: %s", what,
			  e ? buf : "OpenSSL failed without a reason");
}

int cairn_sha256_new(cairn_sha256_ctx **out)
{
	cairn_sha256_ctx *h = calloc(1, sizeof *h);

	*out = NULL;
	if (!h)
		return cairn_errf(CAIRN_E_NOMEM, "sha256: out of memory");
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx) {
		free(h);
		return cairn_errf(CAIRN_E_NOMEM, "sha256: out of memory");
	}
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		int rc = ssl_err("init");
		cairn_sha256_free(h);
		return rc;
	}
	*out = h;
	return CAIRN_OK;
}

int cairn_sha256_update(cairn_sha256_ctx *h, const void *buf, size_t len)
{
	if (EVP_DigestUpdate(h->ctx, buf, len) != 1)
		return ssl_err("update");
	return CAIRN_OK;
}

int cairn_sha256_final(cairn_sha256_ctx *h, uint8_t out[CAIRN_SHA256_LEN])
{
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != CAIRN_SHA256_LEN)
		return ssl_err("final");
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		return ssl_err("reset");
	return CAIRN_OK;
}

void cairn_sha256_free(cairn_sha256_ctx *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int cairn_sha256(const void *buf, size_t len, uint8_t out[CAIRN_SHA256_LEN])
{
	unsigned int n = 0;

	if (EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != CAIRN_SHA256_LEN)
		return ssl_err("digest");
	return CAIRN_OK;
}

void cairn_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* ---- zstd ---- */

size_t cairn_zstd_bound(size_t srclen)
{
	return ZSTD_compressBound(srclen);
}

int cairn_zstd_compress(const void *src, size_t srclen, void *dst,
			size_t dstcap, size_t *dstlen, int level)
{
	size_t n;

	if (level == 0)
		level = 3;
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
		return cairn_errf(CAIRN_E_INVAL,
				  "zstd level %d is outside %d..%d", level,
				  ZSTD_minCLevel(), ZSTD_maxCLevel());
	n = ZSTD_compress(dst, dstcap, src, srclen, level);
	if (ZSTD_isError(n)) {
		if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
			return cairn_errf(CAIRN_E_RANGE,
					  "zstd compress %zu bytes: output buffer of %zu bytes too small",
					  srclen, dstcap);
		return cairn_errf(CAIRN_E_INTERNAL, "zstd compress: %s",
				  ZSTD_getErrorName(n));
	}
	*dstlen = n;
	return CAIRN_OK;
}

int cairn_zstd_decompress(const void *src, size_t srclen, void *dst,
			  size_t dstcap, size_t expect)
{
	unsigned long long content;
	size_t n;

	if (srclen == 0)
		return cairn_errf(CAIRN_E_CORRUPT, "zstd frame is empty");
	content = ZSTD_getFrameContentSize(src, srclen);
	if (content == ZSTD_CONTENTSIZE_ERROR)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "zstd frame of %zu bytes has no valid header",
				  srclen);
	if (content == ZSTD_CONTENTSIZE_UNKNOWN)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "zstd frame does not state its content size");
	if (content != expect)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "zstd frame holds %llu bytes, %zu recorded",
				  content, expect);
	if (content > dstcap)
		return cairn_errf(CAIRN_E_RANGE,
				  "zstd frame holds %llu bytes, buffer has %zu",
				  content, dstcap);
	n = ZSTD_decompress(dst, (size_t)content, src, srclen);
	if (ZSTD_isError(n))
		return cairn_errf(CAIRN_E_CORRUPT, "zstd decompress: %s",
				  ZSTD_getErrorName(n));
	if (n != expect)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "zstd frame decompressed to %zu bytes, %zu recorded",
				  n, expect);
	return CAIRN_OK;
}
