/*
 * seg_int.h - private helpers of segments/: little-endian field access and
 * the encoders of the parts of a segment (the decoders are public, in
 * cairn/segment.h).  See seg_format.c for the byte layout.
 */
#ifndef CAIRN_SEG_INT_H
#define CAIRN_SEG_INT_H

#include <stdint.h>
#include <string.h>

#include "cairn/segment.h"

#define SEG_HDR_MAGIC "CAIRNSEG"
#define SEG_FTR_MAGIC "CAIRNEND"
#define SEG_FRAME_MAGIC 0x4d524643u /* "CFRM" little-endian */

static inline void seg_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void seg_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void seg_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t seg_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t seg_get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t seg_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Encoders: write exactly the part's fixed size. */
void seg_header_encode(const seg_id *id, uint8_t out[SEG_HEADER_SIZE]);
void seg_frame_hdr_encode(const seg_frame *f, uint8_t out[SEG_FRAME_HDR_SIZE]);
void seg_index_entry_encode(const seg_frame *f,
			    uint8_t out[SEG_INDEX_ENTRY_SIZE]);
void seg_footer_encode(const seg_footer *f, uint8_t out[SEG_FOOTER_SIZE]);

/* Stored bytes of a frame whose raw length is raw: the most a frame may
 * hold (zstd's worst case). */
size_t seg_stored_max(size_t raw);

/* Compress src into dst (dstcap >= seg_stored_max(len)) when it pays (saves
 * at least 1/16), else copy it: fills f's codec, stored_len, raw_len, crc.
 * level < 0: never compress. */
int seg_frame_build(const void *src, size_t len, int level, uint8_t *dst,
		    size_t dstcap, seg_frame *f);

/* Validate frame header fields that do not depend on the object (codec,
 * lengths).  Returns CAIRN_E_CORRUPT with what (a phrase) filled. */
int seg_frame_check(const char *name, const char *what, const seg_frame *f);

/* seg_writer_append of a raw frame whose crc32c (of buf[0..len)) the
 * caller already computed, e.g. while copying the bytes in (seg_stream):
 * one pass less over them.  Same errors as seg_writer_append. */
int seg_writer_append_raw(seg_writer *w, uint64_t chunk_id, const void *buf,
			  size_t len, uint32_t crc, seg_frame *out);

#endif
