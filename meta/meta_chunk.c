/*
 * meta_chunk.c - the chunk table and the segment table.
 *
 * A chunk is a stored run of bytes: (chunk id) -> (segment, offset, stored
 * length, codec, crc32c, sha256 of the raw bytes, refs).  Extents name
 * chunks, never segments, so compaction moves a chunk by rewriting this one
 * record (meta_chunk_move, or meta_chunk_relocate when compaction wrote it
 * in another stored form).  The chash table maps a content hash to a live
 * chunk (deduplication); segchunk lists the chunks of each segment so that
 * compaction can find them without scanning every chunk.
 *
 * A segment record carries what GC and compaction decide from: state, size,
 * live bytes (sum of stored_len of its live chunks), live chunk count, and
 * the upload intent fields (object key, multipart upload id).
 *
 *   STAGING --seal--> SEALED --intent--> UPLOADING --done--> UPLOADED
 *      |                 |  ^---abort-------'                    |
 *      '-----------------+--------> DEAD (live_bytes == 0) <-----'
 *                                     |
 *                                     v
 *                                 DELETING --meta_seg_delete--> (gone)
 *
 * Invariants:
 *   1. seg.live_bytes = sum of stored_len, and seg.nchunks = count, of the
 *      chunk records naming the segment; MC_STORED_BYTES/MC_CHUNKS are the
 *      sums over all segments.
 *   2. A chunk lies inside its segment: seg_off + stored_len <= seg.size.
 *   3. A segment in DEAD or DELETING has no live chunk, and gets none.
 */
#include <sys/stat.h>

#include "meta_int.h"

static int mc_seg_usable(const meta_seg *s)
{
	if (s->state == META_SEG_DEAD || s->state == META_SEG_DELETING)
		return cairn_errf(CAIRN_E_INVAL, "segment %llu is %s", (unsigned long long)s->id,
				  s->state == META_SEG_DEAD ? "dead" : "being deleted");
	return 0;
}

/* Place `len` bytes at `off` in segment s, growing a staging segment. */
static int mc_seg_fit(meta_seg *s, uint64_t off, uint64_t len)
{
	if (off + len < off)
		return cairn_errf(CAIRN_E_INVAL, "chunk range overflows");
	if (off + len <= s->size)
		return 0;
	if (s->state != META_SEG_STAGING)
		return cairn_errf(CAIRN_E_INVAL, "chunk %llu+%llu past the end (%llu) of sealed segment %llu",
				  (unsigned long long)off, (unsigned long long)len,
				  (unsigned long long)s->size, (unsigned long long)s->id);
	s->size = off + len;
	return 0;
}

static int mc_segchunk(meta_txn *t, uint64_t seg, uint64_t chunk, int add)
{
	uint8_t k[16];
	be64(k, seg);
	be64(k + 8, chunk);
	if (add)
		return mt_put(t, MT_SEGCHUNK, k, 16, "", 0);
	return mt_del(t, MT_SEGCHUNK, k, 16);
}

static int hash_zero(const uint8_t *h)
{
	for (int i = 0; i < META_HASH_LEN; i++)
		if (h[i])
			return 0;
	return 1;
}

int meta_chunk_add(meta_txn *t, meta_chunk *c)
{
	meta_seg s;
	MDB_val v;
	int rc;
	if ((rc = mt_need_write(t)))
		return rc;
	if (c->stored_len == 0 || c->raw_len == 0)
		return cairn_errf(CAIRN_E_INVAL, "chunk of length 0");
	if (c->codec > 1)
		return cairn_errf(CAIRN_E_INVAL, "chunk codec %u unknown", c->codec);
	if ((rc = ms_get(t, c->seg, &s)) || (rc = mc_seg_usable(&s)))
		return rc;
	if ((rc = mc_seg_fit(&s, c->seg_off, c->stored_len)))
		return rc;
	if ((rc = mt_counter_next(t, MC_NEXT_CHUNK, &c->id)))
		return rc;
	c->refs = 0;
	if ((rc = mch_put(t, c)) || (rc = mc_segchunk(t, c->seg, c->id, 1)))
		return rc;
	if (!hash_zero(c->hash)) {
		rc = mt_get(t, MT_CHASH, c->hash, META_HASH_LEN, &v);
		if (rc == CAIRN_E_NOTFOUND) {
			uint8_t idb[8];
			le64(idb, c->id);
			rc = mt_put(t, MT_CHASH, c->hash, META_HASH_LEN, idb, 8);
		}
		if (rc)
			return rc;
	}
	s.live_bytes += c->stored_len;
	s.nchunks++;
	s.mtime_ns = t->now;
	if ((rc = ms_put(t, &s)) || (rc = mt_counter_add(t, MC_STORED_BYTES, c->stored_len)))
		return rc;
	return mt_counter_add(t, MC_CHUNKS, 1);
}

int meta_chunk_get(meta_txn *t, uint64_t id, meta_chunk *out)
{
	return mch_get(t, id, out);
}

int meta_chunk_find(meta_txn *t, const uint8_t hash[META_HASH_LEN], uint64_t *id)
{
	MDB_val v;
	int rc = mt_get(t, MT_CHASH, hash, META_HASH_LEN, &v);
	if (rc == CAIRN_E_NOTFOUND)
		return cairn_errf(rc, "no chunk with this content hash");
	if (rc)
		return rc;
	if (v.mv_size != 8)
		return cairn_errf(CAIRN_E_CORRUPT, "content hash index: bad record");
	*id = rle64(v.mv_data);
	return 0;
}

/* Move chunk w->id to (w->seg, w->seg_off) with the stored form of w
 * (stored_len, codec, crc); the raw bytes must be the same. */
static int mc_move(meta_txn *t, const meta_chunk *w)
{
	meta_chunk c;
	meta_seg from, to;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = mch_get(t, w->id, &c)))
		return rc;
	if (c.seg == w->seg)
		return cairn_errf(CAIRN_E_INVAL, "chunk %llu is already in segment %llu",
				  (unsigned long long)w->id, (unsigned long long)w->seg);
	if (w->stored_len == 0 || w->codec > 1 || w->raw_len != c.raw_len ||
	    memcmp(w->hash, c.hash, META_HASH_LEN))
		return cairn_errf(CAIRN_E_INVAL, "chunk %llu: relocation changes its raw bytes "
				  "or has a bad stored form", (unsigned long long)w->id);
	if ((rc = ms_get(t, c.seg, &from)) || (rc = ms_get(t, w->seg, &to)) ||
	    (rc = mc_seg_usable(&to)) || (rc = mc_seg_fit(&to, w->seg_off, w->stored_len)))
		return rc;
	from.live_bytes -= c.stored_len;
	from.nchunks--;
	from.mtime_ns = t->now;
	to.live_bytes += w->stored_len;
	to.nchunks++;
	to.mtime_ns = t->now;
	if ((rc = mc_segchunk(t, c.seg, w->id, 0)) || (rc = mc_segchunk(t, w->seg, w->id, 1)))
		return rc;
	int64_t delta = (int64_t)w->stored_len - (int64_t)c.stored_len;
	c.seg = w->seg;
	c.seg_off = w->seg_off;
	c.stored_len = w->stored_len;
	c.codec = w->codec;
	c.crc = w->crc;
	if ((rc = mch_put(t, &c)) || (rc = ms_put(t, &from)) || (rc = ms_put(t, &to)))
		return rc;
	return delta ? mt_counter_add(t, MC_STORED_BYTES, delta) : 0;
}

int meta_chunk_move(meta_txn *t, uint64_t id, uint64_t seg, uint64_t seg_off)
{
	meta_chunk c;
	int rc = mch_get(t, id, &c);
	if (rc)
		return rc;
	c.seg = seg;
	c.seg_off = seg_off;
	return mc_move(t, &c);
}

int meta_chunk_relocate(meta_txn *t, const meta_chunk *c)
{
	return mc_move(t, c);
}

int meta_seg_chunks(meta_txn *t, uint64_t seg, meta_chunk_fn cb, void *arg)
{
	MDB_cursor *cur;
	uint8_t kb[16];
	meta_chunk c;
	int rc = mt_cursor(t, MT_SEGCHUNK, &cur);
	if (rc)
		return rc;
	be64(kb, seg);
	be64(kb + 8, 0);
	MDB_val k = { 16, kb }, v;
	int err = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (!err && k.mv_size == 16 && rbe64(k.mv_data) == seg) {
		uint64_t id = rbe64((uint8_t *)k.mv_data + 8);
		if ((rc = mch_get(t, id, &c)))
			break;
		if (c.seg != seg) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "segment index: chunk %llu is listed in "
					"segment %llu but lies in %llu", (unsigned long long)id,
					(unsigned long long)seg, (unsigned long long)c.seg);
			break;
		}
		if (cb(&c, arg))
			break;
		err = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (!rc && err && err != MDB_NOTFOUND)
		rc = meta_lmdb_err(err, "list the chunks of a segment");
	return rc;
}

int meta_seg_create(meta_txn *t, meta_seg *s)
{
	int rc;
	if ((rc = mt_need_write(t)))
		return rc;
	if (s->kind > 1)
		return cairn_errf(CAIRN_E_INVAL, "segment kind %u unknown", s->kind);
	if ((rc = mt_counter_next(t, MC_NEXT_SEG, &s->id)))
		return rc;
	s->state = META_SEG_STAGING;
	s->live_bytes = 0;
	s->nchunks = 0;
	s->ctime_ns = s->mtime_ns = t->now;
	s->key[META_SEG_KEY_MAX - 1] = 0;
	s->upload_id[META_SEG_UPLOAD_ID_MAX - 1] = 0;
	if ((rc = ms_put(t, s)))
		return rc;
	return mt_counter_add(t, MC_SEGMENTS, 1);
}

int meta_seg_get(meta_txn *t, uint64_t id, meta_seg *out)
{
	return ms_get(t, id, out);
}

static int mc_transition_ok(uint32_t from, uint32_t to)
{
	if (to == from)
		return 1;
	if (from == META_SEG_UPLOADING && to == META_SEG_SEALED)
		return 1;  /* upload aborted, to be retried */
	return to > from;
}

int meta_seg_update(meta_txn *t, const meta_seg *s)
{
	meta_seg cur;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = ms_get(t, s->id, &cur)))
		return rc;
	if (s->state < META_SEG_STAGING || s->state > META_SEG_DELETING)
		return cairn_errf(CAIRN_E_INVAL, "segment state %u unknown", s->state);
	if (!mc_transition_ok(cur.state, s->state))
		return cairn_errf(CAIRN_E_INVAL, "segment %llu cannot go from state %u to %u",
				  (unsigned long long)s->id, cur.state, s->state);
	if ((s->state == META_SEG_DEAD || s->state == META_SEG_DELETING) && cur.nchunks)
		return cairn_errf(CAIRN_E_BUSY, "segment %llu still has %llu live chunks",
				  (unsigned long long)s->id, (unsigned long long)cur.nchunks);
	if (s->size < cur.size)
		return cairn_errf(CAIRN_E_INVAL, "segment %llu size cannot shrink (%llu < %llu)",
				  (unsigned long long)s->id, (unsigned long long)s->size,
				  (unsigned long long)cur.size);
	if (strnlen(s->key, META_SEG_KEY_MAX) >= META_SEG_KEY_MAX ||
	    strnlen(s->upload_id, META_SEG_UPLOAD_ID_MAX) >= META_SEG_UPLOAD_ID_MAX)
		return cairn_errf(CAIRN_E_NAMETOOLONG, "segment key or upload id too long");
	cur.state = s->state;
	cur.size = s->size;
	memcpy(cur.key, s->key, sizeof cur.key);
	memcpy(cur.upload_id, s->upload_id, sizeof cur.upload_id);
	cur.mtime_ns = t->now;
	return ms_put(t, &cur);
}

int meta_seg_delete(meta_txn *t, uint64_t id)
{
	meta_seg cur;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = ms_get(t, id, &cur)))
		return rc;
	if ((cur.state != META_SEG_DEAD && cur.state != META_SEG_DELETING) || cur.nchunks)
		return cairn_errf(CAIRN_E_BUSY, "segment %llu is not dead (state %u, %llu chunks)",
				  (unsigned long long)id, cur.state, (unsigned long long)cur.nchunks);
	uint8_t k[8];
	be64(k, id);
	if ((rc = mt_del(t, MT_SEG, k, 8)))
		return rc;
	return mt_counter_add(t, MC_SEGMENTS, -1);
}

int meta_seg_list(meta_txn *t, uint64_t from, meta_seg_fn cb, void *arg)
{
	MDB_cursor *c;
	uint8_t kb[8];
	meta_seg s;
	int rc = mt_cursor(t, MT_SEG, &c);
	if (rc)
		return rc;
	be64(kb, from);
	MDB_val k = { 8, kb }, v;
	int err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (!err && k.mv_size == 8) {
		if ((rc = ms_dec(rbe64(k.mv_data), &v, &s)))
			break;
		if (cb(&s, arg))
			break;
		err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (!rc && err && err != MDB_NOTFOUND)
		rc = meta_lmdb_err(err, "list segments");
	return rc;
}

/* ---- deduplication pins (chunk deduplication; vol_stream.c) ----------- */

int meta_pin_create(meta_txn *t, meta_attr *out)
{
	mi_inode in;
	uint8_t k[8], v[9];
	int rc;
	if ((rc = mt_need_write(t)))
		return rc;
	memset(&in, 0, sizeof in);
	if ((rc = mt_counter_next(t, MC_NEXT_INO, &in.a.ino)))
		return rc;
	in.a.mode = S_IFREG | 0600;
	in.a.nlink = 0;
	in.a.atime_ns = in.a.mtime_ns = in.a.ctime_ns = in.a.btime_ns = t->now;
	if ((rc = mi_inode_put(t, NULL, &in)))
		return rc;
	/* The orphan record is what frees it after a crash (meta_open). */
	be64(k, in.a.ino);
	v[0] = META_REC_V1;
	le64(v + 1, (uint64_t)t->now);
	if ((rc = mt_put(t, MT_ORPHAN, k, 8, v, 9)))
		return rc;
	if (out)
		*out = in.a;
	return 0;
}
