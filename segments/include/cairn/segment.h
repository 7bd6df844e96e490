/*
 * cairn/segment.h - segments (library cairn_segments): the byte layout of a
 * segment object, its key, the staging writer, the readers and the local
 * segment cache.
 *
 * A segment is an immutable object in the object store.  A *packed* segment
 * holds the data of many small files, a *stream* segment the data of one
 * large file.  Either is a sequence of frames, one per chunk:
 *
 *   +--------+---------+---------+-----+---------+-------+--------+
 *   | header | frame 0 | frame 1 | ... | frame n | index | footer |
 *   +--------+---------+---------+-----+---------+-------+--------+
 *     64 B    32 B frame header + stored bytes     32 B/   64 B
 *                                                  entry
 *
 * The byte layout is documented in docs/format-segments.md and at the top of
 * segments/seg_format.c.  Every part carries its own crc32c, so that
 *   (a) the footer and index locate any frame without a scan,
 *   (b) one frame fetched by a ranged GET verifies on its own,
 *   (c) a staging file (no index, no footer yet) is recovered by scanning.
 *
 * Every parser here works on caller-provided bytes and validates every
 * length, offset and count against the object size and fixed limits before
 * using it.  A malformed object gives CAIRN_E_CORRUPT whose context names the
 * segment and what is wrong ("segment v/../1.p: index entry 17 points past
 * the end of the data (offset 900 + 200 > 1000)"); a well-formed part of an
 * unknown format version gives CAIRN_E_VERSION.  No parser ever returns bytes
 * it did not verify against a checksum written with them.
 *
 * The `name` arguments are used only in messages (the object key or the
 * local path); `expect` arguments, when not NULL, are checked against what
 * the object says about itself.
 */
#ifndef CAIRN_SEGMENT_H
#define CAIRN_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- constants of format version 1 ---- */

#define SEG_VERSION 1
#define SEG_HEADER_SIZE 64
#define SEG_FRAME_HDR_SIZE 32
#define SEG_INDEX_ENTRY_SIZE 32
#define SEG_FOOTER_SIZE 64
/* Largest raw (uncompressed) chunk a frame may hold. */
#define SEG_FRAME_MAX_RAW (64u << 20)
/* Largest segment object the readers accept (stream segments of big files
 * are split into several segments long before this). */
#define SEG_MAX_SIZE (1ull << 40)
/* Most frames one segment may hold (bounds the index a reader allocates:
 * 128 MiB at most). */
#define SEG_MAX_FRAMES (1u << 22)
/* Longest key seg_key_format produces, with its NUL. */
#define SEG_KEY_MAX 96

enum seg_kind {
	SEG_KIND_PACKED = 1,
	SEG_KIND_STREAM = 2,
};

enum seg_codec {
	SEG_CODEC_RAW = 0,
	SEG_CODEC_ZSTD = 1,
};

/* The identity of a segment: what its header states and its key encodes. */
typedef struct seg_id {
	uint8_t uuid[16];  /* the volume's UUID */
	uint64_t epoch;    /* the writer's epoch (bumped at every open) */
	uint64_t seq;      /* segment sequence number within the epoch */
	int kind;          /* SEG_KIND_* */
} seg_id;

/* Where a chunk's frame lies in a segment: an index entry, and what the
 * writer returns for each append (the chunk table's row, minus the ids). */
typedef struct seg_frame {
	uint64_t chunk_id;
	uint64_t off;        /* offset of the frame header in the segment */
	uint32_t stored_len; /* bytes after the frame header */
	uint32_t raw_len;    /* bytes after decompression */
	int codec;           /* SEG_CODEC_* */
	uint32_t crc;        /* crc32c of the stored bytes */
} seg_frame;

/* The bytes a ranged GET must fetch to read frame f on its own. */
static inline uint64_t seg_frame_span(const seg_frame *f)
{
	return (uint64_t)SEG_FRAME_HDR_SIZE + f->stored_len;
}

/* ---- keys ---- */

/* Format the object key of a segment:
 *   "v/<uuid 8-4-4-4-12 lower hex>/seg/<epoch 16 hex>/<seq 16 hex>.<p|s>"
 * (.p packed, .s stream).  Fixed width, so keys sort by epoch then seq.
 * Errors: CAIRN_E_INVAL (bad kind), CAIRN_E_RANGE (buffer too small). */
int seg_key_format(const seg_id *id, char *buf, size_t size);

/* Parse a key made by seg_key_format back, strictly (exact length, lower
 * hex, known suffix).  Errors: CAIRN_E_INVAL naming what is wrong. */
int seg_key_parse(const char *key, seg_id *out);

/* ---- parsers of bytes (all fuzzed) ---- */

/* Parse the 64-byte header at the start of a segment (len >= 64).
 * Errors: CAIRN_E_CORRUPT (short, bad magic, bad crc, bad field),
 * CAIRN_E_VERSION, and CAIRN_E_CORRUPT when expect differs. */
int seg_header_parse(const char *name, const void *buf, size_t len,
		     const seg_id *expect, seg_id *out);

/* A parsed footer. */
typedef struct seg_footer {
	int version;
	int kind;
	uint32_t frame_count;
	uint64_t index_off;
	uint64_t index_len;
	uint64_t raw_total;   /* sum of the frames' raw lengths */
	uint64_t epoch, seq;
	uint32_t index_crc;
	uint64_t obj_size;    /* the size it was validated against */
} seg_footer;

/* Parse the footer: buf holds the last len bytes of an object of obj_size
 * bytes (len >= SEG_FOOTER_SIZE; only the last 64 are used).  Checks every
 * field against obj_size.  expect may be NULL (else epoch, seq and kind are
 * compared).  Errors: CAIRN_E_CORRUPT, CAIRN_E_VERSION. */
int seg_footer_parse(const char *name, const void *buf, size_t len,
		     uint64_t obj_size, const seg_id *expect, seg_footer *out);

/* A parsed, validated index (opaque). */
typedef struct seg_index seg_index;

/* Parse the index described by f: buf holds exactly f->index_len bytes
 * (bytes [f->index_off, f->index_off + f->index_len) of the object).
 * Validates the crc and that the frames tile the data area exactly: the
 * first starts right after the header, each starts where the previous one
 * ended, the last ends at the index; codecs and lengths are sane; the raw
 * lengths sum to f->raw_total.
 * Errors: CAIRN_E_CORRUPT, CAIRN_E_NOMEM. */
int seg_index_parse(const char *name, const seg_footer *f, const void *buf,
		    size_t len, seg_index **out);
void seg_index_free(seg_index *ix);
size_t seg_index_count(const seg_index *ix);
/* Entry i (i < count).  Errors: CAIRN_E_RANGE. */
int seg_index_get(const seg_index *ix, size_t i, seg_frame *out);
/* The entry of chunk_id.  Errors: CAIRN_E_NOTFOUND. */
int seg_index_find(const seg_index *ix, uint64_t chunk_id, seg_frame *out);

/* Parse the 32-byte frame header at buf (len >= 32) into out (off is left
 * 0: the caller knows it).  Errors: CAIRN_E_CORRUPT. */
int seg_frame_hdr_parse(const char *name, const void *buf, size_t len,
			seg_frame *out);

/* Verify and decode one frame: buf holds the frame header and its stored
 * bytes (len >= 32 + stored length; more is ignored).  If expect is not
 * NULL, the frame header must agree with it (chunk id, lengths, codec,
 * crc).  The raw bytes go to dst (dstcap >= raw length); *raw_len gets
 * their length.  A checksum mismatch is logged (naming the segment and the
 * offset) and returned as CAIRN_E_CORRUPT; dst then holds no usable data.
 * Errors: CAIRN_E_CORRUPT, CAIRN_E_RANGE (dstcap too small). */
int seg_frame_decode(const char *name, const seg_frame *expect,
		     const void *buf, size_t len, void *dst, size_t dstcap,
		     size_t *raw_len);

/* Verify a whole segment object held in memory: header, every frame,
 * index and footer, all cross-checked.  expect may be NULL.  Used by fsck
 * and the tests.  Errors: CAIRN_E_CORRUPT, CAIRN_E_VERSION,
 * CAIRN_E_NOMEM. */
int seg_verify_buf(const char *name, const void *buf, size_t len,
		   const seg_id *expect);

/* ---- the staging writer ---- */

/*
 * A staging segment is a local file written through the I/O engine:
 *
 *   seg_writer_create / seg_writer_recover
 *        |
 *        v
 *     [OPEN] --seg_writer_append--> [OPEN]   (bytes past the high-water mark)
 *        |   --seg_writer_sync----> [OPEN]   (high-water mark = size)
 *        |   --I/O error----------> [FAILED] (every call: the sticky error)
 *        |
 *        +--seg_writer_seal-------> [SEALED] (index + footer written, fsynced;
 *                                             the file is the object to PUT)
 *   seg_writer_close from any state.
 *
 * The high-water mark (hwm) is how many bytes of the file are durable (an
 * fdatasync covered them).  The volume commits extents that point into a
 * staging segment only below its hwm, and after a crash reopens the file
 * with seg_writer_recover(hwm), which cuts off everything past it.
 *
 * A writer may be used from several threads; calls are serialized inside.
 */
typedef struct seg_writer seg_writer;

typedef struct seg_writer_opts {
	int zstd_level;     /* 0: default (3); < 0: never compress */
	int direct;         /* write whole aligned blocks with O_DIRECT (no
			       copy into the page cache) from a buffer of
			       appended bytes; for a file nobody reads back
			       soon.  Bytes not yet synced or flushed may be
			       only in that buffer.  Falls back to buffered
			       writes where O_DIRECT is refused. */
	/* Optional: called with every byte of the file exactly once, in
	 * file order, as it is appended (the header at create, each frame,
	 * the index and footer at seal), under the writer's lock, on the
	 * appending thread.  p is valid during the call only.  What an
	 * upload of the file wants to know of its bytes (a multipart
	 * upload's payload hashes, vol_stream.c) without reading them back.
	 * After a failed append the bytes it saw may not all be in the file
	 * (the writer is FAILED then). */
	void (*tap)(void *arg, const void *p, size_t n);
	void *tap_arg;
} seg_writer_opts;

/* Create a new staging file at path (must not exist) and write its header.
 * Errors: CAIRN_E_EXISTS, CAIRN_E_IO, CAIRN_E_INVAL, CAIRN_E_NOMEM. */
int seg_writer_create(cairn_uring *u, const char *path, const seg_id *id,
		      const seg_writer_opts *opts, seg_writer **out);

/* Append one chunk as a frame.  Compressed with zstd when that saves at
 * least 1/16 of the bytes, stored raw otherwise.  *out (may be NULL) gets
 * the frame's location.  The frame is not durable until seg_writer_sync.
 * Errors: CAIRN_E_RANGE (len > SEG_FRAME_MAX_RAW, or the segment would pass
 * SEG_MAX_SIZE or SEG_MAX_FRAMES), CAIRN_E_INVAL (sealed), CAIRN_E_IO, CAIRN_E_NOMEM; after
 * an I/O error the writer is FAILED and every later call returns it. */
int seg_writer_append(seg_writer *w, uint64_t chunk_id, const void *buf,
		      size_t len, seg_frame *out);

/* Make every appended frame durable (fdatasync); *hwm (may be NULL) gets
 * the new high-water mark.  Errors: CAIRN_E_IO (then FAILED). */
int seg_writer_sync(seg_writer *w, uint64_t *hwm);

/* Write the index and the footer and fsync.  The file is then a complete
 * segment of *size bytes (size may be NULL).  Errors: CAIRN_E_IO,
 * CAIRN_E_INVAL (already sealed), CAIRN_E_NOMEM. */
int seg_writer_seal(seg_writer *w, uint64_t *size);

/* Write every appended byte to the file (not durable), so that a read of
 * the file sees it: needed with opts.direct only (else a no-op).
 * Errors: CAIRN_E_IO (then FAILED). */
int seg_writer_flush(seg_writer *w);

/* Bytes written so far (header and frames, synced or not). */
uint64_t seg_writer_size(const seg_writer *w);
/* Bytes known to be in the file: [0, written) was written by writes that
 * completed (not durable), so a read of the file sees them; <= size.
 * Without opts.direct every append completes its write: the size.  With
 * it, bytes still in the aligned buffer or in a write in flight are not
 * counted (the mark moves as writes are reaped, and to the size at a sync,
 * flush or read); it never passes a write that failed.  Lock-free: for a
 * part trigger (a multipart upload sending ranges of the spool file). */
uint64_t seg_writer_written(const seg_writer *w);
/* The high-water mark: bytes known durable. */
uint64_t seg_writer_hwm(const seg_writer *w);
uint32_t seg_writer_frames(const seg_writer *w);
/* Milliseconds since the first frame was appended (or since recovery, if
 * recovered frames exist); 0 while empty.  Seal policy is the caller's. */
uint64_t seg_writer_age_ms(const seg_writer *w);
/* The frames appended so far (n = seg_writer_frames). */
int seg_writer_frame(const seg_writer *w, uint32_t i, seg_frame *out);
const char *seg_writer_path(const seg_writer *w);

/* Read back and verify frame f of this staging file (read-after-write before
 * the segment is uploaded), through the engine.  f must be a frame this
 * writer appended (as seg_writer_append or seg_writer_frame gave it).
 * Errors: CAIRN_E_RANGE (f is not inside the written frames), as
 * seg_frame_decode, CAIRN_E_IO, CAIRN_E_NOMEM. */
int seg_writer_read(seg_writer *w, const seg_frame *f, void *dst,
		    size_t dstcap, size_t *raw_len);

/* Close the file and free.  Unsealed data stays in the file (recoverable
 * up to the hwm).  NULL is a no-op. */
void seg_writer_close(seg_writer *w);

/* Ask seg_writer_recover to scan as far as whole, valid frames go. */
#define SEG_HWM_SCAN UINT64_MAX

/* Reopen an unsealed staging file after a crash: check its header against
 * id, cut the file to hwm bytes (durably), and rebuild the frame list by
 * scanning and verifying every frame below hwm.  With SEG_HWM_SCAN the scan
 * stops at the first torn or invalid frame and the file is cut there.
 * A file that is shorter than hwm, or a frame below an explicit hwm that
 * does not verify, is CAIRN_E_CORRUPT: committed data was lost.
 * Errors: CAIRN_E_NOTFOUND, CAIRN_E_CORRUPT, CAIRN_E_VERSION, CAIRN_E_IO,
 * CAIRN_E_NOMEM. */
int seg_writer_recover(cairn_uring *u, const char *path, const seg_id *id,
		       uint64_t hwm, const seg_writer_opts *opts,
		       seg_writer **out);

/* ---- the stream writer (segments/seg_stream.c) ---- */

/*
 * One large file's bytes, fed in any pieces, cut into content-defined
 * chunks (FastCDC) and appended as raw frames to a stream segment through
 * a seg_writer; the SHA-256 of each chunk is computed as it streams.
 * Memory: two chunk buffers of max_chunk bytes plus the untaken chunk
 * list.  A writer thread per stream hashes a chunk's bytes as the caller
 * copies them in and appends the chunk once cut, while the caller chunks
 * the next one (the caller hashes a chunk itself when the writer thread
 * is the slower, see hash_by).  Boundaries depend only on the content
 * (never on the write sizes).  One caller at a time.
 */
#define SEG_STREAM_AVG_CHUNK (4u << 20)

/* Deduplication hook (optional), called on the writer thread for every
 * cut chunk after its SHA-256 and before its frame is appended; buf holds
 * the chunk's len bytes (stream offset pos) during the call only.  Return
 * 1 with *chunk_id (nonzero) and *crc (crc32c of the bytes) set when the
 * chunk is already stored elsewhere and must not be appended: it is then
 * reported with dedup = *chunk_id.  Return 0 to append it as usual.  The
 * hook cannot fail: on any error of its own it returns 0 (the bytes are
 * always kept). */
typedef int (*seg_stream_dedup_fn)(void *arg, const uint8_t *buf, size_t len,
				   uint64_t pos, const uint8_t hash[32],
				   uint64_t *chunk_id, uint32_t *crc);

typedef struct seg_stream_opts {
	uint32_t min_chunk;  /* 0: avg / 4 */
	uint32_t avg_chunk;  /* power of two is best; 0: 4 MiB */
	uint32_t max_chunk;  /* 0: avg * 4 (at most SEG_FRAME_MAX_RAW) */
	seg_stream_dedup_fn dedup;  /* NULL: append every chunk */
	void *dedup_arg;
	int direct;          /* the writer's opts.direct (see seg_writer_opts) */
	int hash_by;         /* who computes a chunk's SHA-256: SEG_STREAM_HASH_* */
	void (*tap)(void *arg, const void *p, size_t n);  /* the writer's */
	void *tap_arg;       /* opts.tap (see seg_writer_opts) */
} seg_stream_opts;

/* seg_stream_opts.hash_by.  AUTO (default): the writer thread, as the
 * bytes arrive, except that the caller hashes the next chunk itself
 * whenever it had to wait for the writer thread (the busier one).  The
 * others force one side (tests). */
#define SEG_STREAM_HASH_AUTO 0
#define SEG_STREAM_HASH_WORKER 1
#define SEG_STREAM_HASH_CALLER 2

typedef struct seg_stream_chunk {
	seg_frame fr;        /* where its raw frame lies in the segment; for a
				dedup hit only raw_len, stored_len and crc
				are set (no frame was appended) */
	uint64_t pos;        /* offset of its first byte in the stream */
	uint8_t hash[32];    /* sha256 of its bytes */
	uint64_t dedup;      /* 0: appended here; else the stored chunk's id
				(the dedup hook said so) */
} seg_stream_chunk;

typedef struct seg_stream seg_stream;

/* Fill the zero fields of o with defaults and check them.
 * Errors: CAIRN_E_INVAL naming the bad sizes. */
int seg_stream_opts_check(seg_stream_opts *o);
/* The length of the first content-defined chunk of buf (len if no
 * boundary is found before len and len < max_chunk): tests and tools. */
size_t seg_cdc_next(const seg_stream_opts *o, const void *buf, size_t len);
/* Create the stream segment file at path (id->kind must be STREAM).
 * Errors: as seg_writer_create, CAIRN_E_INVAL (opts). */
int seg_stream_create(cairn_uring *u, const char *path, const seg_id *id,
		      const seg_stream_opts *opts, seg_stream **out);
/* Feed len bytes; every completed chunk is appended as a frame.
 * Errors: as seg_writer_append, CAIRN_E_INTERNAL (sha256). */
int seg_stream_write(seg_stream *s, const void *buf, size_t len);
/* End the current chunk here (fsync, end of file); no-op when empty. */
int seg_stream_cut(seg_stream *s);
/* Wait until every chunk handed to the writer thread is in the file and
 * the ready list.  Errors: the writer thread's (sticky). */
int seg_stream_drain(seg_stream *s);
/* Chunks appended and not yet taken, oldest first (drain first to include
 * every cut chunk). */
size_t seg_stream_ready(seg_stream *s);
/* Copy ready chunk i.  Errors: CAIRN_E_RANGE. */
int seg_stream_chunk_get(seg_stream *s, size_t i, seg_stream_chunk *out);
/* Forget the first n ready chunks (the caller recorded them). */
void seg_stream_take(seg_stream *s, size_t n);
/* Stream bytes fed so far. */
uint64_t seg_stream_pos(const seg_stream *s);
/* The bytes after the last cut (stream offsets pos - *len .. pos); with
 * the ready chunks after seg_stream_drain, every byte fed. */
const uint8_t *seg_stream_pending(const seg_stream *s, size_t *len);
/* The underlying writer: sync, size, seal (after a final cut). */
seg_writer *seg_stream_writer(seg_stream *s);
/* Close the file and free (the file stays). NULL is a no-op. */
void seg_stream_close(seg_stream *s);

/* ---- reading from an object store ---- */

/* An open segment object: its footer and index, read with ranged GETs
 * (the tail first, the index separately only when it is larger).
 * Thread-safe after open (read-only). */
typedef struct seg_reader seg_reader;

/* Errors: CAIRN_E_NOTFOUND, CAIRN_E_CORRUPT, CAIRN_E_VERSION, object store
 * errors, CAIRN_E_NOMEM.  expect may be NULL (else it is checked against
 * the footer; the key is parsed for it when it is a segment key). */
int seg_reader_open(cairn_objstore *os, const char *key, const seg_id *expect,
		    seg_reader **out);
void seg_reader_close(seg_reader *r);
const seg_index *seg_reader_index(const seg_reader *r);
uint64_t seg_reader_size(const seg_reader *r);

/* Fetch frame f with one ranged GET, verify and decode it into dst.
 * Errors: as seg_frame_decode, object store errors, CAIRN_E_CORRUPT for
 * a short object. */
int seg_reader_read(seg_reader *r, const seg_frame *f, void *dst,
		    size_t dstcap, size_t *raw_len);

/* Read frame f through cache c.  A hit is served from local disk.  A
 * miss fetches with one ranged GET, sized by the access pattern:
 *   - sequential (the byte just before the frame is cached: the reader
 *     is walking the segment): the aligned windows of `window` bytes that
 *     the frame overlaps (the first window starts after the header, the
 *     last ends at the index), each kept as one piece, so a dataset read
 *     in write order costs one GET per window;
 *   - otherwise (a shuffled read): only the frame, widened to the aligned
 *     sub-window of window/16 bytes (at least 64 KiB) around it, so a
 *     random read of a small file does not pay for a whole window.
 * A window or sub-window missed by several readers at once is fetched
 * once (seg_cache_claim); none is stored twice when frames straddle a
 * boundary.  If the frame fails to verify from cached bytes, the segment
 * is dropped from the cache and the frame read from the store once.
 * Errors: as seg_reader_read. */
struct seg_cache;
int seg_reader_read_cached(seg_reader *r, struct seg_cache *c,
			   uint64_t window, const seg_frame *f, void *dst,
			   size_t dstcap, size_t *raw_len);

/* ---- the local segment cache ---- */

/*
 * Ranges ("pieces") of segment objects kept on local disk under one
 * directory, within a size limit, least recently used evicted first.
 * Every piece carries a crc32c per 64 KiB block, checked on every read; a
 * piece that fails is logged, deleted and reported as CAIRN_E_CORRUPT.
 * Pieces survive a restart: seg_cache_open rebuilds the index from the
 * directory and deletes whatever is partial or unreadable.  Thread-safe.
 */
typedef struct seg_cache seg_cache;

typedef struct seg_cache_stats {
	uint64_t bytes;      /* disk bytes of all pieces */
	uint64_t limit;
	uint64_t pieces;
	uint64_t hits, misses, evictions, corrupt;
} seg_cache_stats;

/* Open (creating dir if needed) with a limit in bytes (> 0).
 * Errors: CAIRN_E_IO, CAIRN_E_INVAL, CAIRN_E_NOMEM. */
int seg_cache_open(cairn_uring *u, const char *dir, uint64_t limit,
		   seg_cache **out);
void seg_cache_close(seg_cache *c);

/* Store bytes [off, off + len) of segment key.  Replaces a piece at the
 * same offset.  Evicts least recently used pieces to stay in the limit.
 * Errors: CAIRN_E_RANGE (larger than the whole cache), CAIRN_E_IO,
 * CAIRN_E_NOMEM, CAIRN_E_INVAL (empty, key too long). */
int seg_cache_put(seg_cache *c, const char *key, uint64_t off,
		  const void *buf, size_t len);

/* Copy bytes [off, off + len) of segment key into buf if one cached piece
 * holds all of them, after verifying the blocks read.
 * Errors: CAIRN_E_NOTFOUND (miss), CAIRN_E_CORRUPT (piece failed its
 * checksum: logged and dropped), CAIRN_E_IO. */
int seg_cache_get(seg_cache *c, const char *key, uint64_t off, void *buf,
		  size_t len);

/* 1 if one cached piece holds bytes [off, off + len) of key (no read, no
 * verification: a hint for the reader's fetch size). */
int seg_cache_has(seg_cache *c, const char *key, uint64_t off, uint64_t len);

/* Fetch claims, so that concurrent misses on one piece fetch it once.
 * seg_cache_claim returns 1 when the caller should fetch piece (key, off)
 * (it must then call seg_cache_unclaim, whether the fetch worked or not),
 * or 0 after waiting for another caller's claim on it to end: look in the
 * cache again (and fetch without a claim if it is still missing). */
int seg_cache_claim(seg_cache *c, const char *key, uint64_t off);
void seg_cache_unclaim(seg_cache *c, const char *key, uint64_t off);

/* Drop every piece of key (the segment was deleted). */
int seg_cache_drop(seg_cache *c, const char *key);

void seg_cache_stats_get(seg_cache *c, seg_cache_stats *out);

#ifdef __cplusplus
}
#endif
#endif
