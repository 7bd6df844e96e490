/*
 * meta_extent.c - extent maps: which chunk bytes hold each range of a file.
 *
 * An inode with data names an extent map (emap).  Extents are keyed by
 * (emap, file offset) and say (length, chunk, offset in chunk); ranges with
 * no extent are holes.  An emap may be shared by several inodes (snapshots
 * and clones share the map of the file they copy, counted in the emap's
 * refs); the first change through one of them copies the map
 * (copy-on-write), bumping the references of every chunk it names.
 *
 * Reference counting (docs/metadata.md): a chunk's refs is the number of
 * extent records, in all emaps, that name it.  Every insert, split, copy or
 * delete of an extent record adjusts it in the same transaction; at 0 the
 * chunk record is deleted and its stored bytes leave its segment's live
 * bytes.
 *
 * Invariants:
 *   1. The extents of one emap never overlap and have len > 0.
 *   2. No extent of an inode's emap reaches past the inode's size after a
 *      truncate (writes grow the size to cover what they map).
 *   3. An emap's refs equals the number of inodes naming it; at 0 the emap
 *      and all its extents are gone.
 */
#include <stdlib.h>
#include <sys/stat.h>

#include "meta_int.h"

#define MX_FILE_MAX (1ULL << 60)

static int mx_emap_get(meta_txn *t, uint64_t emap, uint64_t *refs)
{
	uint8_t k[8];
	MDB_val v;
	be64(k, emap);
	int rc = mt_get(t, MT_EMAP, k, 8, &v);
	if (rc == CAIRN_E_NOTFOUND)
		return cairn_errf(CAIRN_E_CORRUPT, "extent map %llu does not exist",
				  (unsigned long long)emap);
	if (rc || (rc = mr_version(&v, "extent map", emap)))
		return rc;
	if (v.mv_size != MM_VLEN)
		return cairn_errf(CAIRN_E_CORRUPT, "extent map %llu: bad record", (unsigned long long)emap);
	*refs = rle64((uint8_t *)v.mv_data + 1);
	return 0;
}

static int mx_emap_put(meta_txn *t, uint64_t emap, uint64_t refs)
{
	uint8_t k[8], v[MM_VLEN];
	be64(k, emap);
	v[0] = META_REC_V1;
	le64(v + 1, refs);
	return mt_put(t, MT_EMAP, k, 8, v, MM_VLEN);
}

int mx_chunk_ref(meta_txn *t, uint64_t chunk, int64_t delta)
{
	meta_chunk c;
	int rc = mch_get(t, chunk, &c);
	if (rc)
		return rc;
	if (delta < 0 && c.refs < (uint64_t)-delta)
		return cairn_errf(CAIRN_E_CORRUPT, "chunk %llu: refs %llu would go below 0",
				  (unsigned long long)chunk, (unsigned long long)c.refs);
	c.refs += (uint64_t)delta;
	if (c.refs || delta >= 0)
		return mch_put(t, &c);
	/* last reference gone: the chunk dies, its bytes stop being live */
	meta_seg s;
	uint8_t k[16];
	MDB_val v;
	be64(k, chunk);
	if ((rc = mt_del(t, MT_CHUNK, k, 8)))
		return rc;
	rc = mt_get(t, MT_CHASH, c.hash, META_HASH_LEN, &v);
	if (!rc && v.mv_size == 8 && rle64(v.mv_data) == chunk)
		rc = mt_del(t, MT_CHASH, c.hash, META_HASH_LEN);
	else if (rc == CAIRN_E_NOTFOUND)
		rc = 0;
	if (rc)
		return rc;
	be64(k, c.seg);
	be64(k + 8, chunk);
	if ((rc = mt_del(t, MT_SEGCHUNK, k, 16)))
		return rc;
	if ((rc = ms_get(t, c.seg, &s)))
		return rc;
	s.live_bytes -= c.stored_len;
	s.nchunks--;
	if ((rc = ms_put(t, &s)))
		return rc;
	if ((rc = mt_counter_add(t, MC_STORED_BYTES, -(int64_t)c.stored_len)))
		return rc;
	return mt_counter_add(t, MC_CHUNKS, -1);
}

static int mx_ext_put(meta_txn *t, uint64_t emap, const meta_extent *e)
{
	uint8_t k[16], v[ME_VLEN];
	be64(k, emap);
	be64(k + 8, e->off);
	me_enc(v, e);
	return mt_put(t, MT_EXTENT, k, 16, v, ME_VLEN);
}

static int mx_ext_del(meta_txn *t, uint64_t emap, uint64_t off)
{
	uint8_t k[16];
	be64(k, emap);
	be64(k + 8, off);
	return mt_del(t, MT_EXTENT, k, 16);
}

typedef struct mx_list {
	meta_extent *e;
	size_t n, cap;
} mx_list;

static int mx_list_add(mx_list *l, const meta_extent *e)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		meta_extent *ne = realloc(l->e, nc * sizeof *ne);
		if (!ne)
			return cairn_errf(CAIRN_E_NOMEM, "extent list");
		l->e = ne;
		l->cap = nc;
	}
	l->e[l->n++] = *e;
	return 0;
}

/* The extents of emap that overlap [start, end), in order. */
static int mx_collect(meta_txn *t, uint64_t emap, uint64_t start, uint64_t end, mx_list *l)
{
	MDB_cursor *c;
	uint8_t kb[16];
	meta_extent e;
	int rc = mt_cursor(t, MT_EXTENT, &c);
	if (rc)
		return rc;
	be64(kb, emap);
	be64(kb + 8, start);
	MDB_val k = { 16, kb }, v;
	int err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	/* the extent starting before `start` may reach into the range */
	int perr = err == MDB_NOTFOUND ? mdb_cursor_get(c, &k, &v, MDB_LAST)
				       : mdb_cursor_get(c, &k, &v, MDB_PREV);
	if (!perr && k.mv_size == 16 && rbe64(k.mv_data) == emap) {
		e.off = rbe64((uint8_t *)k.mv_data + 8);
		if ((rc = me_dec(&v, &e)))
			goto out;
		if (e.off < start && e.off + e.len > start && (rc = mx_list_add(l, &e)))
			goto out;
	}
	k.mv_size = 16;
	k.mv_data = kb;
	err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (!err && k.mv_size == 16 && rbe64(k.mv_data) == emap) {
		e.off = rbe64((uint8_t *)k.mv_data + 8);
		if (e.off >= end)
			break;
		if ((rc = me_dec(&v, &e)) || (rc = mx_list_add(l, &e)))
			goto out;
		err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	if (err && err != MDB_NOTFOUND)
		rc = meta_lmdb_err(err, "scan extents");
out:
	mdb_cursor_close(c);
	return rc;
}

/* Unmap [start, end) of emap, splitting and trimming extents at the edges. */
static int mx_cut(meta_txn *t, uint64_t emap, uint64_t start, uint64_t end)
{
	mx_list l = { 0 };
	int rc = mx_collect(t, emap, start, end, &l);
	for (size_t i = 0; i < l.n && !rc; i++) {
		meta_extent e = l.e[i];
		uint64_t eend = e.off + e.len;
		if (e.off < start) {
			meta_extent head = e;
			head.len = start - e.off;
			if ((rc = mx_ext_put(t, emap, &head)))
				break;
			if (eend > end) {
				meta_extent tail = e;
				tail.off = end;
				tail.len = eend - end;
				tail.chunk_off = e.chunk_off + (end - e.off);
				if ((rc = mx_ext_put(t, emap, &tail)) ||
				    (rc = mx_chunk_ref(t, e.chunk, 1)))
					break;
			}
			continue;
		}
		if ((rc = mx_ext_del(t, emap, e.off)))
			break;
		if (eend > end) {
			meta_extent tail = e;
			tail.off = end;
			tail.len = eend - end;
			tail.chunk_off = e.chunk_off + (end - e.off);
			rc = mx_ext_put(t, emap, &tail);
		} else {
			rc = mx_chunk_ref(t, e.chunk, -1);
		}
	}
	free(l.e);
	return rc;
}

int mx_emap_share(meta_txn *t, uint64_t emap)
{
	uint64_t refs;
	int rc = mx_emap_get(t, emap, &refs);
	if (!rc)
		rc = mx_emap_put(t, emap, refs + 1);
	return rc;
}

int mx_emap_release(meta_txn *t, uint64_t emap)
{
	uint64_t refs;
	int rc = mx_emap_get(t, emap, &refs);
	if (rc)
		return rc;
	if (refs > 1)
		return mx_emap_put(t, emap, refs - 1);
	if ((rc = mx_cut(t, emap, 0, UINT64_MAX)))
		return rc;
	uint8_t k[8];
	be64(k, emap);
	return mt_del(t, MT_EMAP, k, 8);
}

/* Make in->emap private to this inode (allocating or copying it). */
static int mx_emap_own(meta_txn *t, mi_inode *in)
{
	uint64_t refs, nid;
	int rc;
	if (in->emap) {
		if ((rc = mx_emap_get(t, in->emap, &refs)))
			return rc;
		if (refs == 1)
			return 0;
	}
	if ((rc = mt_counter_next(t, MC_NEXT_EMAP, &nid)) || (rc = mx_emap_put(t, nid, 1)))
		return rc;
	if (in->emap) {
		mx_list l = { 0 };
		rc = mx_collect(t, in->emap, 0, UINT64_MAX, &l);
		for (size_t i = 0; i < l.n && !rc; i++) {
			rc = mx_ext_put(t, nid, &l.e[i]);
			if (!rc)
				rc = mx_chunk_ref(t, l.e[i].chunk, 1);
		}
		free(l.e);
		if (!rc)
			rc = mx_emap_put(t, in->emap, refs - 1);
		if (rc)
			return rc;
	}
	in->emap = nid;
	return 0;
}

int mx_truncate(meta_txn *t, mi_inode *in, uint64_t size)
{
	int rc = 0;
	if (in->emap && size < in->a.size) {
		if ((rc = mx_emap_own(t, in)) || (rc = mx_cut(t, in->emap, size, UINT64_MAX)))
			return rc;
	}
	in->a.size = size;
	return 0;
}

static int mx_file(meta_txn *t, uint64_t ino, mi_inode *in, int write)
{
	int rc = mi_inode_get(t, ino, in);
	if (rc)
		return rc;
	if (S_ISDIR(in->a.mode))
		return cairn_errf(CAIRN_E_ISDIR, "inode %llu is a directory", (unsigned long long)ino);
	if (!S_ISREG(in->a.mode))
		return cairn_errf(CAIRN_E_INVAL, "inode %llu is not a regular file",
				  (unsigned long long)ino);
	if (write && (in->a.flags & META_INO_F_RDONLY))
		return cairn_errf(CAIRN_E_ROFS, "inode %llu belongs to a snapshot (read-only)",
				  (unsigned long long)ino);
	return 0;
}

static int mx_range(uint64_t off, uint64_t len)
{
	if (len == 0)
		return cairn_errf(CAIRN_E_INVAL, "extent of length 0");
	if (off > MX_FILE_MAX || len > MX_FILE_MAX - off)
		return cairn_errf(CAIRN_E_FBIG, "range %llu+%llu is past the file size limit",
				  (unsigned long long)off, (unsigned long long)len);
	return 0;
}

int meta_extent_write(meta_txn *t, uint64_t ino, uint64_t off, uint64_t len,
		      uint64_t chunk, uint64_t chunk_off)
{
	return meta_extent_write_at(t, ino, off, len, chunk, chunk_off, t->now);
}

int meta_extent_write_at(meta_txn *t, uint64_t ino, uint64_t off, uint64_t len,
			 uint64_t chunk, uint64_t chunk_off, int64_t mtime_ns)
{
	mi_inode in;
	meta_chunk c;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = mx_range(off, len)))
		return rc;
	if ((rc = mx_file(t, ino, &in, 1)) || (rc = mch_get(t, chunk, &c)))
		return rc;
	if (chunk_off > c.raw_len || len > c.raw_len - chunk_off)
		return cairn_errf(CAIRN_E_RANGE, "extent %llu+%llu of chunk %llu is past its %u bytes",
				  (unsigned long long)chunk_off, (unsigned long long)len,
				  (unsigned long long)chunk, c.raw_len);
	mi_inode old = in;
	/* take the new reference first: the cut may drop the chunk's last one
	 * (rewriting a range with the chunk already there) */
	if ((rc = mx_chunk_ref(t, chunk, 1)))
		return rc;
	if ((rc = mx_emap_own(t, &in)) || (rc = mx_cut(t, in.emap, off, off + len)))
		return rc;
	meta_extent e = { off, len, chunk, chunk_off };
	if ((rc = mx_ext_put(t, in.emap, &e)))
		return rc;
	if (off + len > in.a.size)
		in.a.size = off + len;
	if (mtime_ns > 0)
		in.a.mtime_ns = in.a.ctime_ns = mtime_ns;
	return mi_inode_put(t, &old, &in);
}

int meta_extent_punch(meta_txn *t, uint64_t ino, uint64_t off, uint64_t len)
{
	mi_inode in;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = mx_range(off, len)) || (rc = mx_file(t, ino, &in, 1)))
		return rc;
	mi_inode old = in;
	if (in.emap && ((rc = mx_emap_own(t, &in)) || (rc = mx_cut(t, in.emap, off, off + len))))
		return rc;
	in.a.mtime_ns = in.a.ctime_ns = t->now;
	return mi_inode_put(t, &old, &in);
}

int meta_extent_lookup(meta_txn *t, uint64_t ino, uint64_t off, uint64_t len,
		       meta_extent *out, size_t max, size_t *n)
{
	mi_inode in;
	int rc = mx_file(t, ino, &in, 0);
	*n = 0;
	if (rc)
		return rc;
	uint64_t end = off + len < off ? UINT64_MAX : off + len;
	if (end > in.a.size)
		end = in.a.size;
	if (off >= end)
		return 0;
	mx_list l = { 0 };
	if (in.emap && (rc = mx_collect(t, in.emap, off, end, &l)))
		return rc;
	uint64_t pos = off;
	for (size_t i = 0; i <= l.n && *n < max; i++) {
		uint64_t next = i < l.n ? l.e[i].off : end;
		if (next > end)
			next = end;
		if (next > pos) {  /* hole */
			out[(*n)++] = (meta_extent){ pos, next - pos, 0, 0 };
			pos = next;
			if (*n >= max)
				break;
		}
		if (i == l.n)
			break;
		meta_extent e = l.e[i];
		if (e.off < pos) {
			e.chunk_off += pos - e.off;
			e.len -= pos - e.off;
			e.off = pos;
		}
		if (e.off + e.len > end)
			e.len = end - e.off;
		if (e.len) {
			out[(*n)++] = e;
			pos = e.off + e.len;
		}
	}
	free(l.e);
	return 0;
}

int meta_extent_totals(meta_txn *t, uint64_t *bytes, uint64_t *records)
{
	MDB_cursor *c;
	MDB_val k, v;
	meta_extent e;
	int rc = mt_cursor(t, MT_EXTENT, &c);
	*bytes = *records = 0;
	if (rc)
		return rc;
	int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	for (; !err; err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 16 || (rc = me_dec(&v, &e))) {
			rc = rc ? rc : cairn_errf(CAIRN_E_CORRUPT, "extent table: bad key");
			break;
		}
		*bytes += e.len;
		(*records)++;
	}
	mdb_cursor_close(c);
	if (!rc && err != MDB_NOTFOUND)
		rc = meta_lmdb_err(err, "scan extents");
	return rc;
}
