/*
 * seg_reader.c - reading segment objects from an object store with ranged
 * GETs: the tail (footer, and the index when it fits), then single frames,
 * directly or through the local segment cache.
 *
 * Guarantees
 *   1. Nothing is used before seg_footer_parse / seg_index_parse validated
 *      it against the object size from HEAD.
 *   2. A frame is returned only after seg_frame_decode verified it; a frame
 *      the caller names must lie inside the data area of the object.
 *   3. Through the cache: a cached copy that fails any checksum is dropped
 *      and the frame fetched from the store once more; only a store copy
 *      that fails too is reported (CAIRN_E_CORRUPT, logged).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "seg_int.h"

#define MOD "segments"
/* First GET of an object: the footer and, usually, the whole index. */
#define SEG_TAIL_READ (64u << 10)
/* Smallest fetch of a random (non-sequential) read miss. */
#define SEG_SUBWINDOW_MIN (64u << 10)

struct seg_reader {
	cairn_objstore *os;
	char *key;
	uint64_t size;
	seg_footer footer;
	seg_index *ix;
};

static int get_exact(seg_reader *r, uint64_t off, void *buf, uint64_t len)
{
	uint64_t got = 0;
	int rc = objstore_get(r->os, r->key, off, buf, len, &got);

	if (rc)
		return cairn_err_wrap(rc, "segment %s", r->key);
	if (got != len)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "segment %s: object ends early: got %" PRIu64
				  " of %" PRIu64 " bytes at offset %" PRIu64,
				  r->key, got, len, off);
	return CAIRN_OK;
}

int seg_reader_open(cairn_objstore *os, const char *key, const seg_id *expect,
		    seg_reader **out)
{
	seg_reader *r = NULL;
	cairn_obj_info info;
	uint8_t *tail = NULL, *ixbuf = NULL;
	uint64_t tlen, tstart;
	seg_id kid;
	int rc;

	*out = NULL;
	if (!expect && seg_key_parse(key, &kid) == CAIRN_OK)
		expect = &kid;
	cairn_err_clear();
	r = calloc(1, sizeof *r);
	if (!r || !(r->key = strdup(key))) {
		rc = cairn_errf(CAIRN_E_NOMEM, "segment %s", key);
		goto fail;
	}
	r->os = os;
	rc = objstore_head(os, key, &info);
	if (rc) {
		rc = cairn_err_wrap(rc, "segment %s", key);
		goto fail;
	}
	r->size = info.size;
	if (r->size < SEG_HEADER_SIZE + SEG_FOOTER_SIZE || r->size > SEG_MAX_SIZE) {
		rc = cairn_errf(CAIRN_E_CORRUPT,
				"segment %s: object of %" PRIu64 " bytes cannot be a segment",
				key, r->size);
		goto fail;
	}
	tlen = r->size < SEG_TAIL_READ ? r->size : SEG_TAIL_READ;
	tstart = r->size - tlen;
	tail = malloc(tlen);
	if (!tail) {
		rc = cairn_errf(CAIRN_E_NOMEM, "segment %s: tail buffer", key);
		goto fail;
	}
	rc = get_exact(r, tstart, tail, tlen);
	if (rc)
		goto fail;
	rc = seg_footer_parse(key, tail, tlen, r->size, expect, &r->footer);
	if (rc)
		goto fail;
	if (r->footer.index_off >= tstart) {
		rc = seg_index_parse(key, &r->footer,
				     tail + (r->footer.index_off - tstart),
				     r->footer.index_len, &r->ix);
	} else {
		ixbuf = malloc(r->footer.index_len);
		if (!ixbuf) {
			rc = cairn_errf(CAIRN_E_NOMEM, "segment %s: index of %" PRIu64 " bytes",
					key, r->footer.index_len);
			goto fail;
		}
		rc = get_exact(r, r->footer.index_off, ixbuf, r->footer.index_len);
		if (!rc)
			rc = seg_index_parse(key, &r->footer, ixbuf,
					     r->footer.index_len, &r->ix);
	}
	if (rc)
		goto fail;
	free(tail);
	free(ixbuf);
	*out = r;
	return CAIRN_OK;
fail:
	free(tail);
	free(ixbuf);
	seg_reader_close(r);
	return rc;
}

void seg_reader_close(seg_reader *r)
{
	if (!r)
		return;
	seg_index_free(r->ix);
	free(r->key);
	free(r);
}

const seg_index *seg_reader_index(const seg_reader *r)
{
	return r->ix;
}

uint64_t seg_reader_size(const seg_reader *r)
{
	return r->size;
}

static int check_inside(seg_reader *r, const seg_frame *f)
{
	if (f->off < SEG_HEADER_SIZE || f->off > r->footer.index_off ||
	    seg_frame_span(f) > r->footer.index_off - f->off)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "segment %s: frame at offset %" PRIu64 " + %" PRIu64
				  " is outside the data area (%d..%" PRIu64 ")",
				  r->key, f->off, seg_frame_span(f),
				  SEG_HEADER_SIZE, r->footer.index_off);
	return CAIRN_OK;
}

int seg_reader_read(seg_reader *r, const seg_frame *f, void *dst,
		    size_t dstcap, size_t *raw_len)
{
	uint64_t span = seg_frame_span(f);
	uint8_t *buf = NULL;
	int rc;

	rc = check_inside(r, f);
	if (rc)
		return rc;
	buf = malloc(span);
	if (!buf)
		return cairn_errf(CAIRN_E_NOMEM, "segment %s: frame of %" PRIu64 " bytes",
				  r->key, span);
	rc = get_exact(r, f->off, buf, span);
	if (!rc)
		rc = seg_frame_decode(r->key, f, buf, span, dst, dstcap, raw_len);
	free(buf);
	return rc;
}

/* Bytes [a, a + len) of the frame's object into dst, from the cached
 * window piece [ws, we) that holds them, fetching the piece on a miss. */
static int window_part(seg_reader *r, seg_cache *c, uint64_t ws, uint64_t we,
		       uint64_t a, uint64_t len, uint8_t *dst)
{
	uint8_t *w;
	int rc, claimed, waited = 0;

	for (;;) {
		rc = seg_cache_get(c, r->key, a, dst, len);
		if (rc == CAIRN_OK)
			return CAIRN_OK;
		if (rc != CAIRN_E_NOTFOUND && rc != CAIRN_E_CORRUPT)
			CAIRN_WARN(MOD, "segment %s: cache read failed, reading the store: %s",
				   r->key, cairn_errmsg());
		if (waited)
			break;
		claimed = seg_cache_claim(c, r->key, ws);
		if (claimed) {
			/* Another reader may have put it between our miss
			 * and our claim. */
			if (seg_cache_get(c, r->key, a, dst, len) == CAIRN_OK) {
				seg_cache_unclaim(c, r->key, ws);
				return CAIRN_OK;
			}
			break;
		}
		waited = 1; /* another reader fetched it: look again */
	}
	w = malloc(we - ws);
	if (!w) {
		rc = cairn_errf(CAIRN_E_NOMEM, "segment %s: window of %" PRIu64 " bytes",
				r->key, we - ws);
	} else if ((rc = get_exact(r, ws, w, we - ws)) == CAIRN_OK) {
		memcpy(dst, w + (a - ws), len);
		/* A failure to cache costs a refetch later, not this read. */
		if (seg_cache_put(c, r->key, ws, w, we - ws))
			CAIRN_WARN(MOD, "segment %s: not cached: %s", r->key,
				   cairn_errmsg());
		cairn_err_clear();
	}
	if (!waited)
		seg_cache_unclaim(c, r->key, ws);
	free(w);
	return rc;
}

int seg_reader_read_cached(seg_reader *r, seg_cache *c, uint64_t window,
			   const seg_frame *f, void *dst, size_t dstcap,
			   size_t *raw_len)
{
	uint64_t span = seg_frame_span(f), fend, ws, we, a, b, sub;
	uint8_t *buf = NULL;
	int rc;

	rc = check_inside(r, f);
	if (rc)
		return rc;
	buf = malloc(span);
	if (!buf)
		return cairn_errf(CAIRN_E_NOMEM, "segment %s: frame of %" PRIu64 " bytes",
				  r->key, span);
	fend = f->off + span;
	/* Cached already (in a window or a sub-window)? */
	rc = seg_cache_get(c, r->key, f->off, buf, span);
	if (rc == CAIRN_OK)
		goto decode;
	sub = window / 16 < SEG_SUBWINDOW_MIN ? SEG_SUBWINDOW_MIN : window / 16;
	ws = f->off / sub * sub;
	if (window < span) {
		/* A frame larger than a window: its own aligned span. */
		window = span;
		ws = f->off / window * window;
		we = (fend + window - 1) / window * window;
		if (ws < SEG_HEADER_SIZE)
			ws = SEG_HEADER_SIZE;
		if (we > r->footer.index_off)
			we = r->footer.index_off;
		rc = window_part(r, c, ws, we, f->off, span, buf);
	} else if (f->off > SEG_HEADER_SIZE && seg_cache_has(c, r->key, f->off - 1, 1)) {
		/* Sequential (what lies just before is cached): windows. */
		rc = 0;
		for (uint64_t w0 = f->off / window * window; !rc && w0 < fend;
		     w0 += window) {
			ws = w0 < SEG_HEADER_SIZE ? SEG_HEADER_SIZE : w0;
			we = w0 + window > r->footer.index_off ? r->footer.index_off
							       : w0 + window;
			a = f->off > ws ? f->off : ws;
			b = fend < we ? fend : we;
			rc = window_part(r, c, ws, we, a, b - a, buf + (a - f->off));
		}
	} else {
		/* Random: the sub-windows around the frame, one GET. */
		we = (fend + sub - 1) / sub * sub;
		if (ws < SEG_HEADER_SIZE)
			ws = SEG_HEADER_SIZE;
		if (we > r->footer.index_off)
			we = r->footer.index_off;
		rc = window_part(r, c, ws, we, f->off, span, buf);
	}
	if (rc)
		goto out;
decode:
	rc = seg_frame_decode(r->key, f, buf, span, dst, dstcap, raw_len);
	if (rc == CAIRN_E_CORRUPT) {
		/* The cache's block crcs held, yet the frame is bad: the window
		 * was fetched bad.  Forget the segment's pieces, ask the store. */
		if (seg_cache_drop(c, r->key))
			CAIRN_WARN(MOD, "segment %s: drop from cache: %s", r->key,
				   cairn_errmsg());
		rc = seg_reader_read(r, f, dst, dstcap, raw_len);
	}
out:
	free(buf);
	return rc;
}
