/*
 * seg_format.c - the byte layout of a segment (format version 1): encoders,
 * validating parsers, and the object key.
 *
 * Layout.  All integers little-endian; every "rsv" byte is written 0 and
 * must read 0.  crc is crc32c (Castagnoli, cairn/codec.h).
 *
 *   header, 64 bytes at offset 0
 *     0  magic "CAIRNSEG"          8  u16 version (1)   10 u8 kind (1 p, 2 s)
 *     11 u8 rsv   12 u32 rsv       16 uuid[16] of the volume
 *     32 u64 epoch                 40 u64 seq           48 rsv[12]
 *     60 u32 crc of bytes 0..59
 *
 *   frame, at offset 64 and then each right after the previous one
 *     0  u32 magic "CFRM"          4  u8 codec (0 raw, 1 zstd)  5 rsv[3]
 *     8  u64 chunk id              16 u32 raw length    20 u32 stored length
 *     24 u32 crc of the stored bytes
 *     28 u32 crc of bytes 0..27 (the frame header)
 *     32 stored bytes (raw: the chunk; zstd: one zstd frame stating its
 *        content size)
 *
 *   index, at index_off = end of the last frame: frame_count entries of
 *     0  u64 chunk id              8  u64 offset of the frame header
 *     16 u32 stored length         20 u32 raw length
 *     24 u8 codec   25 rsv[3]      28 u32 crc of the stored bytes
 *
 *   footer, the last 64 bytes of the object
 *     0  magic "CAIRNEND"          8  u16 version (1)   10 u8 kind
 *     11 u8 rsv                    12 u32 frame count
 *     16 u64 index offset          24 u64 index length (= count * 32)
 *     32 u64 raw total (sum of raw lengths)
 *     40 u64 epoch                 48 u64 seq
 *     56 u32 crc of the index bytes
 *     60 u32 crc of bytes 0..59
 *
 * Invariants a valid segment satisfies (each checked by the parsers):
 *   1. Every byte of the object is covered by exactly one crc: header,
 *      frame headers, stored bytes, index, footer.
 *   2. Frames tile [64, index_off) exactly, in index order: no gap, no
 *      overlap.  index_off + index_len + 64 = object size.
 *   3. raw codec: stored length = raw length; zstd: 0 < stored length <=
 *      zstd's bound for the raw length; raw length <= SEG_FRAME_MAX_RAW.
 *   4. A frame header agrees with its index entry field by field.
 *   5. At most SEG_MAX_FRAMES frames, raw total <= frames * max raw.
 *   6. A future format version keeps the magic, the version at offset 8 and
 *      a crc of the preceding bytes in the last 4 bytes of header and
 *      footer, so that an unknown version is told apart from corruption.
 *
 * The key is "v/<uuid>/seg/<epoch %016x>/<seq %016x>.<p|s>": the volume's
 * UUID and the writer's epoch in every key make a key never reused, even
 * after a second format of the same prefix.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seg_int.h"

#define MOD "segments"

/* ---- helpers ---- */

static int bad(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* CAIRN_E_CORRUPT with "segment <name>: <what>". */
static int bad(const char *name, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return cairn_errf(CAIRN_E_CORRUPT, "segment %s: %s", name ? name : "?",
			  what);
}

/* A checksum mismatch: CAIRN_E_CORRUPT as bad(), and an error log line
 * naming the segment (invariant 3 of the brief: EIO with a clear log line,
 * never silent bad data). */
static int crc_bad(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int crc_bad(const char *name, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	CAIRN_ERROR(MOD, "segment %s: %s", name ? name : "?", what);
	return cairn_errf(CAIRN_E_CORRUPT, "segment %s: %s", name ? name : "?",
			  what);
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static const char *kind_name(int kind)
{
	return kind == SEG_KIND_PACKED ? "packed" :
	       kind == SEG_KIND_STREAM ? "stream" : "unknown";
}

size_t seg_stored_max(size_t raw)
{
	return cairn_zstd_bound(raw);
}

/* ---- keys ---- */

int seg_key_format(const seg_id *id, char *buf, size_t size)
{
	const uint8_t *u = id->uuid;
	int n;

	if (id->kind != SEG_KIND_PACKED && id->kind != SEG_KIND_STREAM)
		return cairn_errf(CAIRN_E_INVAL, "segment kind %d is unknown",
				  id->kind);
	n = snprintf(buf, size,
		     "v/%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		     "%02x%02x%02x%02x%02x%02x/seg/%016" PRIx64 "/%016" PRIx64
		     ".%c",
		     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		     u[10], u[11], u[12], u[13], u[14], u[15], id->epoch,
		     id->seq, id->kind == SEG_KIND_PACKED ? 'p' : 's');
	if (n < 0 || (size_t)n >= size)
		return cairn_errf(CAIRN_E_RANGE,
				  "segment key needs %d bytes, buffer has %zu",
				  n + 1, size);
	return CAIRN_OK;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parse exactly n lower-hex digits. */
static int parse_hex(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		int d = hexval(s[i]);
		if (d < 0)
			return -1;
		v = (v << 4) | (uint64_t)d;
	}
	*out = v;
	return 0;
}

int seg_key_parse(const char *key, seg_id *out)
{
	/* v/ + 36 + /seg/ + 16 + / + 16 + .p */
	static const size_t klen = 2 + 36 + 5 + 16 + 1 + 16 + 2;
	static const int dash[] = {8, 13, 18, 23};
	seg_id id;
	const char *u;
	size_t len = key ? strlen(key) : 0;
	int j = 0;

	memset(&id, 0, sizeof id);
	if (!key || len != klen)
		return cairn_errf(CAIRN_E_INVAL,
				  "'%.80s' is not a segment key: length %zu, want %zu",
				  key ? key : "(null)", len, klen);
	if (strncmp(key, "v/", 2) != 0 || strncmp(key + 38, "/seg/", 5) != 0 ||
	    key[59] != '/' || key[76] != '.')
		return cairn_errf(CAIRN_E_INVAL,
				  "'%s' is not a segment key: want v/<uuid>/seg/<epoch>/<seq>.<p|s>",
				  key);
	u = key + 2;
	for (int i = 0; i < 36; i++) {
		if (j < 4 && i == dash[j]) {
			if (u[i] != '-')
				return cairn_errf(CAIRN_E_INVAL,
						  "segment key '%s': malformed volume uuid",
						  key);
			j++;
			continue;
		}
		if (hexval(u[i]) < 0)
			return cairn_errf(CAIRN_E_INVAL,
					  "segment key '%s': volume uuid is not lower-case hex",
					  key);
	}
	for (int i = 0, b = 0; i < 36; i++) {
		if (u[i] == '-')
			continue;
		id.uuid[b / 2] = (uint8_t)(id.uuid[b / 2] << 4 | hexval(u[i]));
		b++;
	}
	if (parse_hex(key + 43, 16, &id.epoch) != 0)
		return cairn_errf(CAIRN_E_INVAL,
				  "segment key '%s': epoch is not 16 lower-case hex digits",
				  key);
	if (parse_hex(key + 60, 16, &id.seq) != 0)
		return cairn_errf(CAIRN_E_INVAL,
				  "segment key '%s': sequence number is not 16 lower-case hex digits",
				  key);
	if (key[77] == 'p')
		id.kind = SEG_KIND_PACKED;
	else if (key[77] == 's')
		id.kind = SEG_KIND_STREAM;
	else
		return cairn_errf(CAIRN_E_INVAL,
				  "segment key '%s': suffix must be .p or .s", key);
	*out = id;
	return CAIRN_OK;
}

/* ---- header ---- */

void seg_header_encode(const seg_id *id, uint8_t out[SEG_HEADER_SIZE])
{
	memset(out, 0, SEG_HEADER_SIZE);
	memcpy(out, SEG_HDR_MAGIC, 8);
	seg_put16(out + 8, SEG_VERSION);
	out[10] = (uint8_t)id->kind;
	memcpy(out + 16, id->uuid, 16);
	seg_put64(out + 32, id->epoch);
	seg_put64(out + 40, id->seq);
	seg_put32(out + 60, cairn_crc32c(0, out, 60));
}

/* Magic, then version (told apart from corruption by the crc, invariant
 * 6), then crc. */
static int check_versioned(const char *name, const char *part,
			   const uint8_t *p, size_t size, const char *magic)
{
	uint16_t ver = seg_get16(p + 8);
	int crc_ok = seg_get32(p + size - 4) == cairn_crc32c(0, p, size - 4);

	if (memcmp(p, magic, 8) != 0)
		return bad(name, "%s has a bad magic (not a cairn segment, or corrupt)",
			   part);
	if (ver != SEG_VERSION) {
		if (crc_ok)
			return cairn_errf(CAIRN_E_VERSION,
					  "segment %s: %s is format version %u; this build reads version %d",
					  name, part, ver, SEG_VERSION);
		return bad(name, "%s has an unknown format version %u and a bad checksum",
			   part, ver);
	}
	if (!crc_ok)
		return crc_bad(name, "%s checksum mismatch", part);
	return CAIRN_OK;
}

static int check_expect(const char *name, const char *part, int kind,
			uint64_t epoch, uint64_t seq, const seg_id *expect)
{
	if (!expect)
		return CAIRN_OK;
	if (kind != expect->kind || epoch != expect->epoch ||
	    seq != expect->seq)
		return bad(name,
			   "%s names %s segment epoch %" PRIx64 " seq %" PRIx64
			   ", expected %s epoch %" PRIx64 " seq %" PRIx64,
			   part, kind_name(kind), epoch, seq,
			   kind_name(expect->kind), expect->epoch, expect->seq);
	return CAIRN_OK;
}

int seg_header_parse(const char *name, const void *buf, size_t len,
		     const seg_id *expect, seg_id *out)
{
	const uint8_t *p = buf;
	seg_id id;
	int rc;

	if (len < SEG_HEADER_SIZE)
		return bad(name, "truncated: %zu bytes, a header needs %d", len,
			   SEG_HEADER_SIZE);
	rc = check_versioned(name, "header", p, SEG_HEADER_SIZE, SEG_HDR_MAGIC);
	if (rc)
		return rc;
	memset(&id, 0, sizeof id);
	id.kind = p[10];
	if (id.kind != SEG_KIND_PACKED && id.kind != SEG_KIND_STREAM)
		return bad(name, "header has unknown segment kind %d", id.kind);
	if (p[11] || !all_zero(p + 12, 4) || !all_zero(p + 48, 12))
		return bad(name, "header has non-zero reserved bytes");
	memcpy(id.uuid, p + 16, 16);
	id.epoch = seg_get64(p + 32);
	id.seq = seg_get64(p + 40);
	rc = check_expect(name, "header", id.kind, id.epoch, id.seq, expect);
	if (rc)
		return rc;
	if (expect && memcmp(expect->uuid, id.uuid, 16) != 0)
		return bad(name, "header names another volume's uuid");
	if (out)
		*out = id;
	return CAIRN_OK;
}

/* ---- frames ---- */

void seg_frame_hdr_encode(const seg_frame *f, uint8_t out[SEG_FRAME_HDR_SIZE])
{
	memset(out, 0, SEG_FRAME_HDR_SIZE);
	seg_put32(out, SEG_FRAME_MAGIC);
	out[4] = (uint8_t)f->codec;
	seg_put64(out + 8, f->chunk_id);
	seg_put32(out + 16, f->raw_len);
	seg_put32(out + 20, f->stored_len);
	seg_put32(out + 24, f->crc);
	seg_put32(out + 28, cairn_crc32c(0, out, 28));
}

int seg_frame_check(const char *name, const char *what, const seg_frame *f)
{
	if (f->raw_len > SEG_FRAME_MAX_RAW)
		return bad(name, "%s: raw length %u exceeds the limit %u", what,
			   f->raw_len, SEG_FRAME_MAX_RAW);
	switch (f->codec) {
	case SEG_CODEC_RAW:
		if (f->stored_len != f->raw_len)
			return bad(name, "%s: raw frame stores %u bytes but holds %u",
				   what, f->stored_len, f->raw_len);
		break;
	case SEG_CODEC_ZSTD:
		if (f->raw_len == 0 || f->stored_len == 0 ||
		    f->stored_len > seg_stored_max(f->raw_len))
			return bad(name,
				   "%s: zstd frame of %u stored bytes cannot hold %u raw bytes",
				   what, f->stored_len, f->raw_len);
		break;
	default:
		return bad(name, "%s: unknown codec %d", what, f->codec);
	}
	return CAIRN_OK;
}

int seg_frame_hdr_parse(const char *name, const void *buf, size_t len,
			seg_frame *out)
{
	const uint8_t *p = buf;
	seg_frame f = {0};

	if (len < SEG_FRAME_HDR_SIZE)
		return bad(name, "truncated frame header: %zu bytes of %d", len,
			   SEG_FRAME_HDR_SIZE);
	if (seg_get32(p) != SEG_FRAME_MAGIC)
		return bad(name, "frame header has a bad magic");
	if (seg_get32(p + 28) != cairn_crc32c(0, p, 28))
		return crc_bad(name, "frame header checksum mismatch");
	if (p[5] || p[6] || p[7])
		return bad(name, "frame header has non-zero reserved bytes");
	memset(&f, 0, sizeof f);
	f.codec = p[4];
	f.chunk_id = seg_get64(p + 8);
	f.raw_len = seg_get32(p + 16);
	f.stored_len = seg_get32(p + 20);
	f.crc = seg_get32(p + 24);
	if (seg_frame_check(name, "frame header", &f))
		return CAIRN_E_CORRUPT;
	*out = f;
	return CAIRN_OK;
}

int seg_frame_build(const void *src, size_t len, int level, uint8_t *dst,
		    size_t dstcap, seg_frame *f)
{
	size_t clen = 0;
	int rc;

	if (len > SEG_FRAME_MAX_RAW)
		return cairn_errf(CAIRN_E_RANGE,
				  "chunk of %zu bytes exceeds the frame limit %u",
				  len, SEG_FRAME_MAX_RAW);
	if (dstcap < len)
		return cairn_errf(CAIRN_E_INTERNAL, "frame buffer too small");
	f->raw_len = (uint32_t)len;
	/* Tiny chunks never pay back zstd's frame header. */
	if (level >= 0 && len >= 64) {
		rc = cairn_zstd_compress(src, len, dst, dstcap, &clen, level);
		if (rc == CAIRN_E_RANGE)
			clen = len; /* did not fit: incompressible */
		else if (rc)
			return rc;
		if (clen <= len - len / 16) {
			f->codec = SEG_CODEC_ZSTD;
			f->stored_len = (uint32_t)clen;
			f->crc = cairn_crc32c(0, dst, clen);
			return CAIRN_OK;
		}
	}
	memcpy(dst, src, len);
	f->codec = SEG_CODEC_RAW;
	f->stored_len = (uint32_t)len;
	f->crc = cairn_crc32c(0, dst, len);
	return CAIRN_OK;
}

int seg_frame_decode(const char *name, const seg_frame *expect,
		     const void *buf, size_t len, void *dst, size_t dstcap,
		     size_t *raw_len)
{
	const uint8_t *p = buf;
	seg_frame f = {0};
	uint64_t at = expect ? expect->off : 0;
	uint32_t crc;
	int rc;

	rc = seg_frame_hdr_parse(name, buf, len, &f);
	if (rc)
		return cairn_err_wrap(rc, "frame at offset %" PRIu64, at);
	if (expect && (f.chunk_id != expect->chunk_id ||
		       f.codec != expect->codec ||
		       f.raw_len != expect->raw_len ||
		       f.stored_len != expect->stored_len ||
		       f.crc != expect->crc))
		return bad(name,
			   "frame at offset %" PRIu64 " (chunk %" PRIu64
			   ") disagrees with its index entry (chunk %" PRIu64 ")",
			   at, f.chunk_id, expect->chunk_id);
	if (len - SEG_FRAME_HDR_SIZE < f.stored_len)
		return bad(name,
			   "frame at offset %" PRIu64 " is truncated: %zu of %u stored bytes",
			   at, len - SEG_FRAME_HDR_SIZE, f.stored_len);
	if (dstcap < f.raw_len)
		return cairn_errf(CAIRN_E_RANGE,
				  "segment %s: frame at offset %" PRIu64
				  " holds %u bytes, buffer has %zu",
				  name, at, f.raw_len, dstcap);
	crc = cairn_crc32c(0, p + SEG_FRAME_HDR_SIZE, f.stored_len);
	if (crc != f.crc) {
		return crc_bad(name,
			       "checksum mismatch in frame at offset %" PRIu64
			       " (chunk %" PRIu64 "): stored %08x, computed %08x",
			       at, f.chunk_id, f.crc, crc);
	}
	if (f.codec == SEG_CODEC_RAW) {
		memcpy(dst, p + SEG_FRAME_HDR_SIZE, f.raw_len);
	} else {
		rc = cairn_zstd_decompress(p + SEG_FRAME_HDR_SIZE, f.stored_len,
					   dst, dstcap, f.raw_len);
		if (rc) {
			/* The crc matched, so the writer stored a bad frame. */
			CAIRN_ERROR(MOD,
				    "segment %s: frame at offset %" PRIu64
				    " does not decompress: %s",
				    name, at, cairn_errmsg());
			return cairn_err_wrap(CAIRN_E_CORRUPT,
					      "segment %s: frame at offset %" PRIu64,
					      name, at);
		}
	}
	if (raw_len)
		*raw_len = f.raw_len;
	return CAIRN_OK;
}

/* ---- footer ---- */

void seg_footer_encode(const seg_footer *f, uint8_t out[SEG_FOOTER_SIZE])
{
	memset(out, 0, SEG_FOOTER_SIZE);
	memcpy(out, SEG_FTR_MAGIC, 8);
	seg_put16(out + 8, SEG_VERSION);
	out[10] = (uint8_t)f->kind;
	seg_put32(out + 12, f->frame_count);
	seg_put64(out + 16, f->index_off);
	seg_put64(out + 24, f->index_len);
	seg_put64(out + 32, f->raw_total);
	seg_put64(out + 40, f->epoch);
	seg_put64(out + 48, f->seq);
	seg_put32(out + 56, f->index_crc);
	seg_put32(out + 60, cairn_crc32c(0, out, 60));
}

int seg_footer_parse(const char *name, const void *buf, size_t len,
		     uint64_t obj_size, const seg_id *expect, seg_footer *out)
{
	const uint8_t *p;
	seg_footer f;
	uint64_t min_frames_end;
	int rc;

	if (obj_size < SEG_HEADER_SIZE + SEG_FOOTER_SIZE)
		return bad(name,
			   "truncated: %" PRIu64 " bytes is less than a header and a footer (%d)",
			   obj_size, SEG_HEADER_SIZE + SEG_FOOTER_SIZE);
	if (obj_size > SEG_MAX_SIZE)
		return bad(name, "object of %" PRIu64 " bytes exceeds the segment limit",
			   obj_size);
	if (len < SEG_FOOTER_SIZE || len > obj_size)
		return cairn_errf(CAIRN_E_INVAL,
				  "segment %s: footer buffer of %zu bytes (object %" PRIu64 ")",
				  name, len, obj_size);
	p = (const uint8_t *)buf + len - SEG_FOOTER_SIZE;
	rc = check_versioned(name, "footer", p, SEG_FOOTER_SIZE, SEG_FTR_MAGIC);
	if (rc)
		return rc;
	memset(&f, 0, sizeof f);
	f.version = seg_get16(p + 8);
	f.kind = p[10];
	f.frame_count = seg_get32(p + 12);
	f.index_off = seg_get64(p + 16);
	f.index_len = seg_get64(p + 24);
	f.raw_total = seg_get64(p + 32);
	f.epoch = seg_get64(p + 40);
	f.seq = seg_get64(p + 48);
	f.index_crc = seg_get32(p + 56);
	f.obj_size = obj_size;
	if (f.kind != SEG_KIND_PACKED && f.kind != SEG_KIND_STREAM)
		return bad(name, "footer has unknown segment kind %d", f.kind);
	if (p[11])
		return bad(name, "footer has non-zero reserved bytes");
	if (f.frame_count > SEG_MAX_FRAMES)
		return bad(name, "footer: %u frames exceed the limit %u",
			   f.frame_count, SEG_MAX_FRAMES);
	if (f.index_len != (uint64_t)f.frame_count * SEG_INDEX_ENTRY_SIZE)
		return bad(name, "footer: index length %" PRIu64
			   " does not match %u frames of %d bytes",
			   f.index_len, f.frame_count, SEG_INDEX_ENTRY_SIZE);
	/* Both are below 2^40 here, so the sums cannot overflow. */
	if (f.index_off > obj_size || f.index_len > obj_size ||
	    f.index_off + f.index_len + SEG_FOOTER_SIZE != obj_size)
		return bad(name, "footer: index at %" PRIu64 " + %" PRIu64
			   " + footer %d does not end at the object size %" PRIu64,
			   f.index_off, f.index_len, SEG_FOOTER_SIZE, obj_size);
	min_frames_end = SEG_HEADER_SIZE +
			 (uint64_t)f.frame_count * SEG_FRAME_HDR_SIZE;
	if (f.index_off < min_frames_end)
		return bad(name, "footer: index offset %" PRIu64
			   " leaves no room for the header and %u frames",
			   f.index_off, f.frame_count);
	if (f.raw_total > (uint64_t)f.frame_count * SEG_FRAME_MAX_RAW)
		return bad(name, "footer: raw total %" PRIu64
			   " is more than %u frames can hold",
			   f.raw_total, f.frame_count);
	rc = check_expect(name, "footer", f.kind, f.epoch, f.seq, expect);
	if (rc)
		return rc;
	*out = f;
	return CAIRN_OK;
}

/* ---- index ---- */

struct seg_index {
	size_t n;
	seg_frame *v;
};

void seg_index_entry_encode(const seg_frame *f,
			    uint8_t out[SEG_INDEX_ENTRY_SIZE])
{
	memset(out, 0, SEG_INDEX_ENTRY_SIZE);
	seg_put64(out, f->chunk_id);
	seg_put64(out + 8, f->off);
	seg_put32(out + 16, f->stored_len);
	seg_put32(out + 20, f->raw_len);
	out[24] = (uint8_t)f->codec;
	seg_put32(out + 28, f->crc);
}

int seg_index_parse(const char *name, const seg_footer *f, const void *buf,
		    size_t len, seg_index **out)
{
	const uint8_t *p = buf;
	seg_index *ix = NULL;
	uint64_t at = SEG_HEADER_SIZE, raw = 0;
	char what[64];
	int rc;

	*out = NULL;
	if (len != f->index_len)
		return cairn_errf(CAIRN_E_INVAL,
				  "segment %s: index buffer of %zu bytes, footer says %" PRIu64,
				  name, len, f->index_len);
	if (cairn_crc32c(0, buf, len) != f->index_crc)
		return crc_bad(name, "index checksum mismatch (%u entries at offset %" PRIu64 ")",
			   f->frame_count, f->index_off);
	ix = calloc(1, sizeof *ix);
	if (!ix || (f->frame_count &&
		    !(ix->v = calloc(f->frame_count, sizeof *ix->v)))) {
		rc = cairn_errf(CAIRN_E_NOMEM, "segment %s: index of %u entries",
				name, f->frame_count);
		goto fail;
	}
	for (uint32_t i = 0; i < f->frame_count; i++) {
		const uint8_t *e = p + (size_t)i * SEG_INDEX_ENTRY_SIZE;
		seg_frame *x = &ix->v[i];

		x->chunk_id = seg_get64(e);
		x->off = seg_get64(e + 8);
		x->stored_len = seg_get32(e + 16);
		x->raw_len = seg_get32(e + 20);
		x->codec = e[24];
		x->crc = seg_get32(e + 28);
		snprintf(what, sizeof what, "index entry %u", i);
		if (e[25] || e[26] || e[27]) {
			rc = bad(name, "%s has non-zero reserved bytes", what);
			goto fail;
		}
		if (seg_frame_check(name, what, x)) {
			rc = CAIRN_E_CORRUPT;
			goto fail;
		}
		if (x->off != at) {
			rc = bad(name, "%s starts at offset %" PRIu64
				 ", the previous frame ends at %" PRIu64,
				 what, x->off, at);
			goto fail;
		}
		/* at <= index_off < 2^40 and stored_len < 2^32: no overflow. */
		at += seg_frame_span(x);
		if (at > f->index_off) {
			rc = bad(name, "%s points past the end of the data (offset %" PRIu64
				 " + %" PRIu64 " > %" PRIu64 ")",
				 what, x->off, seg_frame_span(x), f->index_off);
			goto fail;
		}
		raw += x->raw_len;
	}
	if (at != f->index_off) {
		rc = bad(name, "frames end at %" PRIu64 " but the index starts at %" PRIu64,
			 at, f->index_off);
		goto fail;
	}
	if (raw != f->raw_total) {
		rc = bad(name, "frames hold %" PRIu64 " raw bytes, footer says %" PRIu64,
			 raw, f->raw_total);
		goto fail;
	}
	ix->n = f->frame_count;
	*out = ix;
	return CAIRN_OK;
fail:
	seg_index_free(ix);
	return rc;
}

void seg_index_free(seg_index *ix)
{
	if (!ix)
		return;
	free(ix->v);
	free(ix);
}

size_t seg_index_count(const seg_index *ix)
{
	return ix->n;
}

int seg_index_get(const seg_index *ix, size_t i, seg_frame *out)
{
	if (i >= ix->n)
		return cairn_errf(CAIRN_E_RANGE, "index entry %zu of %zu", i,
				  ix->n);
	*out = ix->v[i];
	return CAIRN_OK;
}

int seg_index_find(const seg_index *ix, uint64_t chunk_id, seg_frame *out)
{
	/* Last written wins; chunk ids are unique in practice. */
	for (size_t i = ix->n; i-- > 0;)
		if (ix->v[i].chunk_id == chunk_id) {
			*out = ix->v[i];
			return CAIRN_OK;
		}
	return cairn_errf(CAIRN_E_NOTFOUND, "chunk %" PRIu64 " is not in the segment",
			  chunk_id);
}

/* ---- whole object ---- */

int seg_verify_buf(const char *name, const void *buf, size_t len,
		   const seg_id *expect)
{
	const uint8_t *p = buf;
	seg_footer f;
	seg_index *ix = NULL;
	seg_id hid;
	uint8_t *scratch = NULL;
	uint32_t maxraw = 0;
	int rc;

	rc = seg_header_parse(name, buf, len, expect, &hid);
	if (rc)
		goto out;
	rc = seg_footer_parse(name, buf, len, len, expect, &f);
	if (rc)
		goto out;
	if (f.kind != hid.kind || f.epoch != hid.epoch || f.seq != hid.seq) {
		rc = bad(name, "header and footer name different segments");
		goto out;
	}
	rc = seg_index_parse(name, &f, p + f.index_off, f.index_len, &ix);
	if (rc)
		goto out;
	for (size_t i = 0; i < ix->n; i++)
		if (ix->v[i].raw_len > maxraw)
			maxraw = ix->v[i].raw_len;
	scratch = malloc(maxraw ? maxraw : 1);
	if (!scratch) {
		rc = cairn_errf(CAIRN_E_NOMEM, "segment %s: frame buffer", name);
		goto out;
	}
	for (size_t i = 0; i < ix->n; i++) {
		const seg_frame *x = &ix->v[i];
		size_t got;

		rc = seg_frame_decode(name, x, p + x->off, seg_frame_span(x),
				      scratch, x->raw_len, &got);
		if (rc)
			goto out;
	}
out:
	free(scratch);
	seg_index_free(ix);
	return rc;
}
