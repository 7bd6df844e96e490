/*
 * cairn/codec.h - checksums, content hashes and compression.
 *
 *   crc32c   integrity checksum of every stored byte range (segment frames,
 *            chunks, footers, WAL records).  SSE4.2 hardware instruction when
 *            the CPU has it (checked once at run time), a slicing-by-8 table
 *            otherwise; both give the same values (Castagnoli polynomial,
 *            reflected, init and final xor 0xffffffff, as iSCSI and ext4).
 *   sha256   content hash of chunks, for deduplication (OpenSSL EVP).
 *   zstd     compression of data frames.  Decompression refuses output
 *            larger than the caller's buffer and malformed frames with an
 *            error, never a crash or a partial success.
 */
#ifndef CAIRN_CODEC_H
#define CAIRN_CODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Extend crc (start with 0) over len bytes. */
uint32_t cairn_crc32c(uint32_t crc, const void *buf, size_t len);
/* "sse4.2" or "table". */
const char *cairn_crc32c_impl(void);
/* Force the table implementation (tests compare both). */
uint32_t cairn_crc32c_sw(uint32_t crc, const void *buf, size_t len);

#define CAIRN_SHA256_LEN 32

/* One-shot SHA-256. Errors: CAIRN_E_INTERNAL (OpenSSL failed; context has
 * OpenSSL's error string). */
int cairn_sha256(const void *buf, size_t len, uint8_t out[CAIRN_SHA256_LEN]);

/* Streaming SHA-256, for hashing a chunk while it streams. */
typedef struct cairn_sha256_ctx cairn_sha256_ctx;
int cairn_sha256_new(cairn_sha256_ctx **out);
int cairn_sha256_update(cairn_sha256_ctx *h, const void *buf, size_t len);
/* Writes the digest and resets h for reuse. */
int cairn_sha256_final(cairn_sha256_ctx *h, uint8_t out[CAIRN_SHA256_LEN]);
void cairn_sha256_free(cairn_sha256_ctx *h);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void cairn_hex(const uint8_t *in, size_t len, char *out);

/* Worst-case compressed size of srclen bytes. */
size_t cairn_zstd_bound(size_t srclen);

/* Compress src into dst (dstcap bytes) at level (0: default 3).
 * Errors: CAIRN_E_RANGE (dst too small), CAIRN_E_INVAL (bad level). */
int cairn_zstd_compress(const void *src, size_t srclen, void *dst,
			size_t dstcap, size_t *dstlen, int level);

/* Decompress one frame.  The frame must state its content size and that
 * size must equal expect (the length recorded beside it) and fit dstcap.
 * Errors: CAIRN_E_CORRUPT (malformed, truncated, size mismatch),
 * CAIRN_E_RANGE (content larger than dstcap). */
int cairn_zstd_decompress(const void *src, size_t srclen, void *dst,
			  size_t dstcap, size_t expect);

#ifdef __cplusplus
}
#endif
#endif
