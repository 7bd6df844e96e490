/*
 * vol_fuse.c - extent-level file operations the FUSE mount serves without
 * moving data: copy_file_range as an extent-sharing copy
 * (volume_copy_range) and lseek SEEK_DATA / SEEK_HOLE (volume_seek_data).
 *
 * Both work on the committed extent map only, so they first bring the
 * inode's buffer into it, the way a truncation does (vol_ns.c):
 *
 *   [dirty / staged vbufs, stream] --vol_inode_stage + vol_commit(relaxed)
 *        --> [extent map complete] --vol_inode_prune--> (buffer empty)
 *        --> one meta_write (copy) or one read transaction (seek)
 *
 * all under the inodes' write locks, so that no write slips in between
 * and no staged vbuf of dst outlives the remapping (a vbuf is laid over
 * the extent map on reads: a stale one would hide the copied bytes).
 *
 * Guarantees:
 *   1. A copy creates no chunk and moves no byte: dst's extents name the
 *      same chunks (and chunk offsets) as src's; meta_extent_write counts
 *      every new reference, so each chunk lives until the last file
 *      naming it lets go.  Holes of src are punched in dst.
 *   2. The remapping, dst's growth and its mtime/ctime commit together in
 *      one metadata transaction: a crash leaves all of the copy or none.
 *   3. Later writes to src or dst go through the normal write path, which
 *      remaps only the written file's range (copy-on-write at extent
 *      level): the other file keeps its bytes.
 *
 * Invariants:
 *   1. Two inode locks are taken in increasing inode order (the only place
 *      holding two; everything else takes one), then st_mu inside
 *      vol_commit, keeping vol_int.h's lock order.
 *   2. When a copy's meta_write starts, neither inode has a vbuf or a
 *      stream: every byte of both is in the extent map.
 */
#include <inttypes.h>
#include <time.h>
#include <unistd.h>

#include "vol_int.h"

#define VF_FILE_MAX (1ull << 50)   /* as vol_file.c */
#define VF_BATCH 64

/* With vi->lk held for writing: commit the inode's buffer and stream so
 * that the extent map holds all of its bytes (invariant 2). */
static int vf_flush_locked(cairn_volume *vol, vinode *vi)
{
	int rc;

	vol_inode_prune(vol, vi);
	if (!vi->head && !vi->st)
		return 0;
	if ((rc = vol_inode_stage(vol, vi)) || (rc = vol_commit(vol, 0)))
		return cairn_err_wrap(rc, "commit inode %" PRIu64, vi->ino);
	vol_inode_prune(vol, vi);
	if (vi->head || vi->st)
		return cairn_errf(CAIRN_E_INTERNAL, "inode %" PRIu64
				  ": buffer left after its commit", vi->ino);
	return 0;
}

typedef struct vf_copy {
	uint64_t src, dst, src_off, dst_off, len;
	int64_t now_ns;
	uint64_t copied;    /* out */
	uint64_t dst_size;  /* out */
} vf_copy;

/* Runs in the write transaction (maybe more than once: only writes p's
 * outputs). */
static int vf_copy_fn(meta_txn *t, void *arg)
{
	vf_copy *p = arg;
	meta_extent ex[VF_BATCH];
	meta_attr sa, da;
	uint64_t n, pos, end;
	int rc;

	p->copied = 0;
	if ((rc = meta_getattr(t, p->src, &sa)) || (rc = meta_getattr(t, p->dst, &da)))
		return rc;
	p->dst_size = da.size;
	if (p->src_off >= sa.size)
		return 0;
	n = sa.size - p->src_off < p->len ? sa.size - p->src_off : p->len;
	if (p->src == p->dst && p->src_off < p->dst_off + n && p->dst_off < p->src_off + n)
		return cairn_errf(CAIRN_E_INVAL, "copy of inode %" PRIu64 " %" PRIu64 "+%"
				  PRIu64 " onto itself at %" PRIu64 ": the ranges overlap",
				  p->src, p->src_off, n, p->dst_off);
	pos = p->src_off;
	end = p->src_off + n;
	while (pos < end) {
		size_t cnt = 0;
		if ((rc = meta_extent_lookup(t, p->src, pos, end - pos, ex, VF_BATCH, &cnt)))
			return rc;
		if (!cnt)
			break;
		for (size_t i = 0; i < cnt; i++) {
			const meta_extent *e = &ex[i];
			uint64_t d = p->dst_off + (e->off - p->src_off);
			if (e->off < pos || e->off + e->len > end || !e->len)
				return cairn_errf(CAIRN_E_CORRUPT, "inode %" PRIu64 ": extent %"
						  PRIu64 "+%" PRIu64 " outside the asked range",
						  p->src, e->off, e->len);
			rc = e->chunk ? meta_extent_write(t, p->dst, d, e->len, e->chunk, e->chunk_off)
				      : meta_extent_punch(t, p->dst, d, e->len);
			if (rc)
				return rc;
		}
		pos = ex[cnt - 1].off + ex[cnt - 1].len;
	}
	/* A hole at the end of the range does not grow dst by itself. */
	meta_sattr s = { .mask = META_SET_MTIME | META_SET_CTIME,
			 .mtime_ns = p->now_ns, .ctime_ns = p->now_ns };
	if ((rc = meta_getattr(t, p->dst, &da)))
		return rc;
	if (da.size < p->dst_off + n) {
		s.mask |= META_SET_SIZE;
		s.size = p->dst_off + n;
	}
	if ((rc = meta_setattr(t, p->dst, &s, &da)))
		return rc;
	p->copied = n;
	p->dst_size = da.size;
	return 0;
}

static int64_t vf_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int volume_copy_range(cairn_volume *vol, cairn_file *src, uint64_t src_off,
		      cairn_file *dst, uint64_t dst_off, uint64_t len,
		      uint64_t *copied)
{
	VOL_RO_CHECK(vol);
	vinode *a, *b;
	vf_copy p;
	int rc;

	*copied = 0;
	if (!src || !dst || src->vol != vol || dst->vol != vol)
		return cairn_errf(CAIRN_E_INVAL, "copy range: a handle of another volume");
	if (dst_off > VF_FILE_MAX || len > VF_FILE_MAX - dst_off ||
	    src_off > VF_FILE_MAX || len > VF_FILE_MAX - src_off)
		return cairn_errf(CAIRN_E_FBIG, "copy of %" PRIu64 " bytes from %" PRIu64
				  " to %" PRIu64 ": past the size limit", len, src_off, dst_off);
	if (!len)
		return 0;
	/* Invariant 1: lower inode first. */
	a = src->vi;
	b = dst->vi;
	if (b->ino < a->ino) {
		vinode *x = a;
		a = b;
		b = x;
	}
	pthread_rwlock_wrlock(&a->lk);
	if (b != a)
		pthread_rwlock_wrlock(&b->lk);
	if ((rc = vf_flush_locked(vol, a)) || (b != a && (rc = vf_flush_locked(vol, b))))
		goto out;
	p = (vf_copy){ .src = src->vi->ino, .dst = dst->vi->ino, .src_off = src_off,
		       .dst_off = dst_off, .len = len, .now_ns = vf_now_ns() };
	rc = meta_write(vol->meta, META_RELAXED, META_OP_EXTENT, vf_copy_fn, &p, NULL);
	if (rc) {
		rc = cairn_err_wrap(rc, "copy inode %" PRIu64 " to inode %" PRIu64,
				    p.src, p.dst);
		goto out;
	}
	/* The buffer is empty (invariant 2): the metadata's size is the
	 * file's size. */
	dst->vi->size = p.dst_size;
	*copied = p.copied;
out:
	if (b != a)
		pthread_rwlock_unlock(&b->lk);
	pthread_rwlock_unlock(&a->lk);
	return rc;
}

int volume_seek_data(cairn_file *f, uint64_t off, int whence, uint64_t *out)
{
	cairn_volume *vol = f->vol;
	vinode *vi = f->vi;
	meta_extent ex[VF_BATCH];
	meta_txn *t = NULL;
	meta_attr a;
	uint64_t pos;
	int rc;

	*out = 0;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return cairn_errf(CAIRN_E_INVAL, "seek: whence %d is neither SEEK_DATA nor"
				  " SEEK_HOLE", whence);
	/* Holes are read from the extent map: commit the buffer first, and
	 * keep the lock so the answer matches the file as of this call. */
	pthread_rwlock_wrlock(&vi->lk);
	if ((rc = vf_flush_locked(vol, vi)))
		goto out;
	if ((rc = meta_read_begin(vol->meta, &t)))
		goto out;
	if ((rc = meta_getattr(t, vi->ino, &a)))
		goto out;
	if (off >= a.size) {
		rc = cairn_errf(CAIRN_E_NXIO, "seek inode %" PRIu64 " to %s from %" PRIu64
				": at or past the end (%" PRIu64 ")", vi->ino,
				whence == SEEK_DATA ? "data" : "a hole", off, a.size);
		goto out;
	}
	pos = off;
	while (pos < a.size) {
		size_t cnt = 0;
		if ((rc = meta_extent_lookup(t, vi->ino, pos, a.size - pos, ex, VF_BATCH, &cnt)))
			goto out;
		if (!cnt)
			break;
		for (size_t i = 0; i < cnt; i++) {
			if ((whence == SEEK_DATA) == (ex[i].chunk != 0)) {
				*out = ex[i].off > off ? ex[i].off : off;
				goto out;
			}
		}
		pos = ex[cnt - 1].off + ex[cnt - 1].len;
	}
	if (whence == SEEK_HOLE) {
		*out = a.size;  /* the implicit hole at the end of the file */
	} else {
		rc = cairn_errf(CAIRN_E_NXIO, "seek inode %" PRIu64 " to data from %" PRIu64
				": only holes up to the end (%" PRIu64 ")", vi->ino, off, a.size);
	}
out:
	if (t)
		meta_read_end(t);
	pthread_rwlock_unlock(&vi->lk);
	return rc;
}
