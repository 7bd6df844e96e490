/*
 * vol_file.c - open files: the per-inode write buffer, read, write,
 * append, truncate, fsync and close.
 *
 * Every inode with an open handle or with data not yet committed has one
 * vinode in the volume's table.  Its buffer is a list of vbufs, oldest
 * first; a read takes the committed bytes from the metadata and the
 * segments, then lays the vbufs over them in order, so the newest write
 * wins.  All handles of the inode share the vinode, so they see each
 * other's writes.
 *
 *   write --> [dirty vbuf, gen 0] --vol_inode_stage--> [staged, gen g]
 *                 (close, fsync,      (appended to the staging segment)
 *                  inode_dirty_max)            |
 *                                  vol_commit (committed_gen >= g)
 *                                              |
 *                                  vol_inode_prune --> (freed: the bytes
 *                                   (background)        are read from the
 *                                                       segment from now on)
 *
 * Invariants:
 *   1. Dirty vbufs (gen 0) are pairwise disjoint and not adjacent, and all
 *      of them are newer than every staged vbuf of the inode (staging takes
 *      every dirty vbuf at once), so merging dirty vbufs keeps write order.
 *   2. A vbuf is freed only after the commit that made its bytes readable
 *      from the metadata (committed_gen >= gen), under the inode's write
 *      lock, so a reader (holding the read lock) sees every byte either in
 *      memory or through the metadata.
 *   3. vi->size is the file's size including buffered data; a truncation
 *      commits the inode's data first (vol_ns.c), then cuts in the metadata.
 *   4. A vinode is freed only with no pin and an empty buffer, under it_mu.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "vol_int.h"

#define VOL_FILE_MAX (1ull << 50)

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t ibucket(const cairn_volume *vol, uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 20) % vol->ibuckets;
}

static vinode *it_find_locked(cairn_volume *vol, uint64_t ino)
{
	for (vinode *vi = vol->itab[ibucket(vol, ino)]; vi; vi = vi->hnext)
		if (vi->ino == ino)
			return vi;
	return NULL;
}

vinode *vol_vinode_find(cairn_volume *vol, uint64_t ino)
{
	pthread_mutex_lock(&vol->it_mu);
	vinode *vi = it_find_locked(vol, ino);
	if (vi)
		vi->pins++;
	pthread_mutex_unlock(&vol->it_mu);
	return vi;
}

int vol_vinode_get(cairn_volume *vol, uint64_t ino, uint64_t size, vinode **out)
{
	pthread_mutex_lock(&vol->it_mu);
	vinode *vi = it_find_locked(vol, ino);
	if (!vi) {
		vi = calloc(1, sizeof *vi);
		if (!vi) {
			pthread_mutex_unlock(&vol->it_mu);
			return cairn_errf(CAIRN_E_NOMEM, "inode %" PRIu64, ino);
		}
		vi->ino = ino;
		vi->size = size;
		/* Re-read the size under it_mu: a vinode of this inode may have
		 * been freed since the caller read it, after committing a
		 * longer file (a vinode is freed only once all is committed). */
		meta_txn *t;
		meta_attr a;
		if (meta_read_begin(vol->meta, &t) == 0) {
			if (meta_getattr(t, ino, &a) == 0)
				vi->size = a.size;
			meta_read_end(t);
		}
		cairn_err_clear();
		pthread_rwlock_init(&vi->lk, NULL);
		size_t b = ibucket(vol, ino);
		vi->hnext = vol->itab[b];
		vol->itab[b] = vi;
	}
	vi->pins++;
	pthread_mutex_unlock(&vol->it_mu);
	*out = vi;
	return 0;
}

void vol_vinode_unpin(cairn_volume *vol, vinode *vi)
{
	pthread_mutex_lock(&vol->it_mu);
	/* With no pin nobody holds vi->lk, and nobody can take it without
	 * it_mu, so head can be read here. */
	if (--vi->pins == 0 && !vi->head) {
		vinode **pp = &vol->itab[ibucket(vol, vi->ino)];
		while (*pp != vi)
			pp = &(*pp)->hnext;
		*pp = vi->hnext;
		vol_ra_free(vol, vi);
		pthread_rwlock_destroy(&vi->lk);
		free(vi);
	}
	pthread_mutex_unlock(&vol->it_mu);
}

static void vbuf_unlink(vinode *vi, vbuf *prev, vbuf *x)
{
	if (prev)
		prev->next = x->next;
	else
		vi->head = x->next;
	if (vi->tail == x)
		vi->tail = prev;
	free(x->data);
	free(x);
}

void vol_inode_prune(cairn_volume *vol, vinode *vi)
{
	uint64_t cg = __atomic_load_n(&vol->committed_gen, __ATOMIC_ACQUIRE);
	vbuf *prev = NULL, *x = vi->head;
	while (x) {
		vbuf *nx = x->next;
		if (x->gen && x->gen <= cg)
			vbuf_unlink(vi, prev, x);
		else
			prev = x;
		x = nx;
	}
}

void vol_prune_queued(cairn_volume *vol)
{
	uint64_t *list;
	size_t n;

	pthread_mutex_lock(&vol->st_mu);
	list = vol->prune;
	n = vol->nprune;
	vol->prune = NULL;
	vol->nprune = vol->cprune = 0;
	pthread_mutex_unlock(&vol->st_mu);
	for (size_t i = 0; i < n; i++) {
		if (i && list[i] == list[i - 1])
			continue;
		vinode *vi = vol_vinode_find(vol, list[i]);
		if (!vi)
			continue;
		/* A writer waiting at the upload cap holds its inode lock;
		 * never wait for it here, the inode is pruned at its next
		 * staging or by the next commit. */
		if (pthread_rwlock_trywrlock(&vi->lk) == 0) {
			vol_inode_prune(vol, vi);
			pthread_rwlock_unlock(&vi->lk);
		}
		vol_vinode_unpin(vol, vi);
	}
	free(list);
}

int vol_inode_stage(cairn_volume *vol, vinode *vi)
{
	int rc = 0;
	if (vi->st && (rc = vol_stream_end(vol, vi)))
		return rc;
	if (!vi->dirty_bytes)
		return 0;
	vol_inode_prune(vol, vi);
	if ((rc = vol_cap_wait(vol)))
		return rc;
	for (vbuf *x = vi->head; x; x = x->next) {
		uint64_t g = 0, gen;
		if (x->gen)
			continue;
		for (uint64_t p = 0; p < x->len; p += VOL_CHUNK_MAX) {
			uint64_t n = x->len - p < VOL_CHUNK_MAX ? x->len - p : VOL_CHUNK_MAX;
			rc = vol_stage_append(vol, vi->ino, x->off + p, x->data + p, n,
					      vi->mtime_set ? 0 : vi->mtime_ns, &gen);
			if (rc)
				return rc;
			if (gen > g)
				g = gen;
		}
		x->gen = g;
		vi->dirty_bytes -= x->len;
	}
	return 0;
}

/* Put [off, off+len) into the dirty buffer (invariant 1). */
static int buf_write(vinode *vi, const uint8_t *data, uint64_t len, uint64_t off)
{
	uint64_t lo = off, hi = off + len, old = 0;
	vbuf *x, *prev;

	/* Fast paths: inside one dirty vbuf, or appending right after it. */
	for (x = vi->head; x; x = x->next) {
		if (x->gen)
			continue;
		if (off >= x->off && hi <= x->off + x->len) {
			memcpy(x->data + (off - x->off), data, len);
			return 0;
		}
	}
	/* A stream of writes extending one dirty vbuf at its end (appends,
	 * sequential writes): grow it geometrically instead of copying it
	 * into a new buffer each time. */
	for (x = vi->head; x; x = x->next) {
		if (x->gen || off < x->off || off > x->off + x->len || hi <= x->off + x->len)
			continue;
		int alone = 1;
		for (vbuf *y = vi->head; y; y = y->next)
			if (y != x && !y->gen && !(y->off > hi || y->off + y->len < x->off))
				alone = 0;
		if (!alone)
			break;
		uint64_t nlen = hi - x->off;
		if (nlen > x->cap) {
			uint64_t ncap = x->cap * 2 > nlen ? x->cap * 2 : nlen;
			uint8_t *nd = realloc(x->data, ncap);
			if (!nd)
				return cairn_errf(CAIRN_E_NOMEM, "write buffer of %" PRIu64
						  " bytes", ncap);
			x->data = nd;
			x->cap = ncap;
		}
		memcpy(x->data + (off - x->off), data, len);
		vi->dirty_bytes += nlen - x->len;
		x->len = nlen;
		return 0;
	}
	/* General case: merge every dirty vbuf overlapping or touching. */
	for (x = vi->head; x; x = x->next) {
		if (x->gen || x->off > hi || x->off + x->len < lo)
			continue;
		if (x->off < lo)
			lo = x->off;
		if (x->off + x->len > hi)
			hi = x->off + x->len;
	}
	vbuf *nb = calloc(1, sizeof *nb);
	if (!nb)
		return cairn_errf(CAIRN_E_NOMEM, "write buffer of %" PRIu64 " bytes", hi - lo);
	nb->off = lo;
	nb->len = hi - lo;
	nb->cap = hi - lo;
	nb->data = malloc(hi - lo);
	if (!nb->data) {
		free(nb);
		return cairn_errf(CAIRN_E_NOMEM, "write buffer of %" PRIu64 " bytes", hi - lo);
	}
	memset(nb->data, 0, hi - lo);
	prev = NULL;
	x = vi->head;
	while (x) {
		vbuf *nx = x->next;
		if (!x->gen && !(x->off > hi || x->off + x->len < lo)) {
			memcpy(nb->data + (x->off - lo), x->data, x->len);
			old += x->len;
			vbuf_unlink(vi, prev, x);
		} else {
			prev = x;
		}
		x = nx;
	}
	memcpy(nb->data + (off - lo), data, len);
	if (vi->tail)
		vi->tail->next = nb;
	else
		vi->head = nb;
	vi->tail = nb;
	vi->dirty_bytes += nb->len - old;
	return 0;
}

static int vol_usable(cairn_volume *vol)
{
	int rc = 0;
	pthread_mutex_lock(&vol->st_mu);
	if (vol->broken)
		rc = cairn_errf(vol->broken, "volume %s failed earlier (%s); reopen it",
				vol->dir, vol->broken_msg);
	pthread_mutex_unlock(&vol->st_mu);
	return rc;
}

static int write_locked(cairn_file *f, const void *buf, size_t len, uint64_t off)
{
	cairn_volume *vol = f->vol;
	vinode *vi = f->vi;
	int rc;

	if (off > VOL_FILE_MAX || len > VOL_FILE_MAX - off)
		return cairn_errf(CAIRN_E_FBIG, "write of %zu bytes at %" PRIu64
				  " to inode %" PRIu64 ": past the size limit", len, off, vi->ino);
	if ((rc = vol_usable(vol)))
		return rc;
	if (!len)
		return 0;
	if (vi->st) {
		/* A large file being streamed (vol_stream.c). */
		int taken = 0;
		if ((rc = vol_stream_write(vol, vi, buf, len, off, &taken)))
			return rc;
		if (taken) {
			if (off + len > vi->size)
				vi->size = off + len;
			vi->mtime_ns = now_ns();
			vi->mtime_set = 0;
			return 0;
		}
	}
	/* A single write larger than a chunk goes through the buffer in
	 * pieces; each piece is staged whole. */
	if ((rc = buf_write(vi, buf, len, off)))
		return rc;
	if (off + len > vi->size)
		vi->size = off + len;
	vi->mtime_ns = now_ns();
	vi->mtime_set = 0;
	/* A new file written in order keeps its buffer up to the stream
	 * threshold, then becomes a stream. */
	if (vol_stream_candidate(vol, vi) && vi->dirty_bytes < vol->o.stream_threshold)
		return 0;
	if (vol_stream_candidate(vol, vi))
		return vol_stream_maybe_start(vol, vi);
	if (vi->dirty_bytes >= vol->o.inode_dirty_max)
		rc = vol_inode_stage(vol, vi);
	return rc;
}

int volume_file_open(cairn_volume *vol, uint64_t ino, cairn_file **out)
{
	meta_txn *t;
	meta_attr a;
	cairn_file *f;
	int rc;

	*out = NULL;
	if ((rc = meta_read_begin(vol->meta, &t)))
		return rc;
	rc = meta_getattr(t, ino, &a);
	meta_read_end(t);
	if (rc)
		return rc;
	if (S_ISDIR(a.mode))
		return cairn_errf(CAIRN_E_ISDIR, "open of inode %" PRIu64 ": a directory", ino);
	if (!S_ISREG(a.mode))
		return cairn_errf(CAIRN_E_INVAL, "open of inode %" PRIu64
				  ": not a regular file", ino);
	f = calloc(1, sizeof *f);
	if (!f)
		return cairn_errf(CAIRN_E_NOMEM, "open of inode %" PRIu64, ino);
	f->vol = vol;
	if ((rc = vol_vinode_get(vol, ino, a.size, &f->vi))) {
		free(f);
		return rc;
	}
	/* a follower's replica takes no writes: no orphan accounting */
	if (!vol->fl && (rc = meta_ino_open(vol->meta, ino))) {
		vol_vinode_unpin(vol, f->vi);
		free(f);
		return rc;
	}
	__atomic_add_fetch(&vol->nfiles, 1, __ATOMIC_RELAXED);
	*out = f;
	return 0;
}

uint64_t volume_file_ino(const cairn_file *f)
{
	return f->vi->ino;
}

int volume_file_write(cairn_file *f, const void *buf, size_t len, uint64_t off)
{
	VOL_RO_CHECK(f->vol);
	pthread_rwlock_wrlock(&f->vi->lk);
	int rc = write_locked(f, buf, len, off);
	pthread_rwlock_unlock(&f->vi->lk);
	return rc;
}

int volume_file_append(cairn_file *f, const void *buf, size_t len, uint64_t *off)
{
	VOL_RO_CHECK(f->vol);
	pthread_rwlock_wrlock(&f->vi->lk);
	uint64_t at = f->vi->size;
	int rc = write_locked(f, buf, len, at);
	pthread_rwlock_unlock(&f->vi->lk);
	if (!rc && off)
		*off = at;
	return rc;
}

int volume_file_truncate(cairn_file *f, uint64_t size)
{
	cairn_sattr sa = { .mask = CAIRN_SET_SIZE, .size = size };
	return volume_setattr(f->vol, f->vi->ino, &sa, NULL);
}

/* Bytes of the committed file from the metadata and the segments: every
 * byte of buf[0, n) is written, holes and bytes past the committed size
 * as zeros (the caller's buffer is not cleared first: a memset of every
 * read was a tenth of a cold 1 GiB read's CPU). */
static int read_committed(cairn_volume *vol, vinode *vi, uint64_t ino, uint8_t *buf,
			  uint64_t off, uint64_t n)
{
	enum { MAXE = 64 };
	meta_extent ex[MAXE];
	meta_chunk ch[MAXE];
	meta_seg sg[MAXE];
	uint8_t done[MAXE];
	uint64_t pos = off, end = off + n, zeroed = off;  /* buf is final below zeroed */
	uint8_t *raw = NULL;
	size_t rawcap = 0;
	int rc = 0;

	while (pos < end) {
		meta_txn *t;
		size_t cnt = 0;
		if ((rc = meta_read_begin(vol->meta, &t)))
			break;
		rc = meta_extent_lookup(t, ino, pos, end - pos, ex, MAXE, &cnt);
		for (size_t i = 0; !rc && i < cnt; i++) {
			if (!ex[i].chunk)
				continue;
			rc = meta_chunk_get(t, ex[i].chunk, &ch[i]);
			if (!rc)
				rc = meta_seg_get(t, ch[i].seg, &sg[i]);
		}
		meta_read_end(t);
		if (rc)
			break;
		/* Whole chunks of uploaded stream segments: parallel ranged
		 * GETs straight into buf. */
		memset(done, 0, sizeof done);
		if ((rc = vol_stream_read_remote(vol, vi, ex, ch, sg, cnt, buf, off, end, done))) {
			if (vol->fl)
				rc = vol_follow_read_error(vol, rc);
			goto out;
		}
		for (size_t i = 0; i < cnt; i++) {
			meta_extent *e = &ex[i];
			if (e->off < pos || e->off + e->len > end) {
				rc = cairn_errf(CAIRN_E_CORRUPT, "inode %" PRIu64 ": extent %" PRIu64
						"+%" PRIu64 " outside the asked range", ino,
						e->off, e->len);
				goto out;
			}
			if (e->off > zeroed)
				memset(buf + (zeroed - off), 0, e->off - zeroed);
			if (e->off + e->len > zeroed)
				zeroed = e->off + e->len;
			if (!e->chunk)
				memset(buf + (e->off - off), 0, e->len);
			if (!e->chunk || done[i])
				continue;
			if (e->chunk_off > ch[i].raw_len || e->len > ch[i].raw_len - e->chunk_off) {
				rc = cairn_errf(CAIRN_E_CORRUPT, "inode %" PRIu64 ": extent at %" PRIu64
						" reaches past chunk %" PRIu64 " (%u bytes)", ino,
						e->off, e->chunk, ch[i].raw_len);
				goto out;
			}
			if (ch[i].raw_len > rawcap) {
				free(raw);
				rawcap = ch[i].raw_len;
				raw = malloc(rawcap);
				if (!raw) {
					rawcap = 0;
					rc = cairn_errf(CAIRN_E_NOMEM, "chunk of %u bytes", ch[i].raw_len);
					goto out;
				}
			}
			rc = vol_chunk_read(vol, &ch[i], &sg[i], raw);
			if (!rc)
				__atomic_add_fetch(&vol->st.read_chunk_bytes, ch[i].raw_len,
						   __ATOMIC_RELAXED);
			if (rc && vol->fl)
				rc = vol_follow_read_error(vol, rc);
			if (rc) {
				rc = cairn_err_wrap(rc, "read inode %" PRIu64 " at %" PRIu64, ino, e->off);
				goto out;
			}
			memcpy(buf + (e->off - off), raw + e->chunk_off, e->len);
		}
		if (cnt < MAXE)
			break;
		pos = ex[cnt - 1].off + ex[cnt - 1].len;
	}
	/* Past the committed size (a size set by truncate, or bytes only in
	 * the dirty buffers and the stream, which the caller copies over). */
	if (!rc && zeroed < end)
		memset(buf + (zeroed - off), 0, end - zeroed);
out:
	free(raw);
	return rc;
}

/* File bytes [off, off+n) into buf, after vol_stream_ra_note (vi->lk
 * held for reading): committed extents, the stream's uncommitted bytes,
 * then the dirty buffers over them. */
static int read_noted(cairn_volume *vol, vinode *vi, uint8_t *buf, uint64_t off, uint64_t n)
{
	uint64_t end = off + n;
	int rc;

	if ((rc = read_committed(vol, vi, vi->ino, buf, off, n)))
		return rc;
	if (vi->st && (rc = vol_stream_overlay(vol, vi, buf, off, n)))
		return rc;
	vol_stream_readahead(vol, vi, off, n);
	for (vbuf *x = vi->head; x; x = x->next) {
		uint64_t lo = x->off > off ? x->off : off;
		uint64_t hi = x->off + x->len < end ? x->off + x->len : end;
		if (lo < hi)
			memcpy(buf + (lo - off), x->data + (lo - x->off), hi - lo);
	}
	return 0;
}

int volume_file_read(cairn_file *f, void *buf, size_t len, uint64_t off,
		     size_t *got)
{
	cairn_volume *vol = f->vol;
	vinode *vi = f->vi;
	uint64_t n;
	int rc = 0;

	*got = 0;
	pthread_rwlock_rdlock(&vi->lk);
	if (off >= vi->size || !len)
		goto out;
	n = vi->size - off < len ? vi->size - off : len;
	vol_stream_ra_note(vol, vi, off, n);
	if (!(rc = read_noted(vol, vi, buf, off, n)))
		*got = n;
out:
	pthread_rwlock_unlock(&vi->lk);
	return rc;
}

#define VOL_READ_PIECES 8

int volume_file_read_to(cairn_file *f, void *buf, size_t len, uint64_t off,
			cairn_read_fn fn, void *arg)
{
	cairn_volume *vol = f->vol;
	vinode *vi = f->vi;
	struct iovec iov[VOL_READ_PIECES];
	void *pins[VOL_READ_PIECES];
	uint64_t n = 0;
	int np = 0, rc = 0;

	pthread_rwlock_rdlock(&vi->lk);
	if (off >= vi->size || !len)
		goto out;
	n = vi->size - off < len ? vi->size - off : len;
	vol_stream_ra_note(vol, vi, off, n);
	/* Only committed bytes can come from the readahead's chunks: no
	 * dirty buffer and no stream to lay over them.  Only files large
	 * enough to have streamed are tried (a small file's read would look
	 * its extents up twice). */
	if (!vi->head && !vi->st && vi->size >= vol->o.stream_threshold &&
	    vol_stream_ra_pin(vol, vi, off, n, iov, pins, VOL_READ_PIECES, &np)) {
		vol_stream_readahead(vol, vi, off, n);
		/* The pins keep the slots, and chunks never change: fn may
		 * run while writers go on. */
		pthread_rwlock_unlock(&vi->lk);
		rc = fn(arg, iov, np, (size_t)n);
		vol_stream_ra_unpin(vi, pins, np);
		return rc;
	}
	rc = read_noted(vol, vi, buf, off, n);
	iov[0].iov_base = buf;
	iov[0].iov_len = (size_t)n;
	np = 1;
out:
	pthread_rwlock_unlock(&vi->lk);
	if (rc)
		return rc;
	return fn(arg, iov, n ? np : 0, (size_t)n);
}

int volume_file_fsync(cairn_file *f)
{
	cairn_volume *vol = f->vol;
	int rc;

	pthread_rwlock_wrlock(&f->vi->lk);
	rc = vol_inode_stage(vol, f->vi);
	pthread_rwlock_unlock(&f->vi->lk);
	if (rc)
		return rc;
	/* One synced commit covers every staged chunk (of this file and of
	 * others): group commit for free. */
	if ((rc = vol_commit(vol, 1)))
		return rc;
	if (vol->o.durability == CAIRN_DUR_REMOTE && !(rc = vol_wait_uploaded(vol, 0)))
		rc = vol_ship_flush_if_on(vol);  /* the metadata in the store too */
	return rc;
}

int volume_file_close(cairn_file *f)
{
	int rc;
	if (!f)
		return 0;
	cairn_volume *vol = f->vol;
	pthread_rwlock_wrlock(&f->vi->lk);
	rc = vol_inode_stage(vol, f->vi);
	pthread_rwlock_unlock(&f->vi->lk);
	int r = vol->fl ? 0 : meta_ino_close(vol->meta, f->vi->ino);
	if (r && !rc)
		rc = r;
	vol_vinode_unpin(vol, f->vi);
	__atomic_sub_fetch(&vol->nfiles, 1, __ATOMIC_RELAXED);
	free(f);
	return rc;
}

int vol_sync_all(cairn_volume *vol, int remote)
{
	vinode **list = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	pthread_mutex_lock(&vol->it_mu);
	for (size_t b = 0; b < vol->ibuckets; b++) {
		for (vinode *vi = vol->itab[b]; vi; vi = vi->hnext) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				vinode **nl = realloc(list, nc * sizeof *nl);
				if (!nl) {
					pthread_mutex_unlock(&vol->it_mu);
					rc = cairn_errf(CAIRN_E_NOMEM, "sync: inode list");
					goto out;
				}
				list = nl;
				cap = nc;
			}
			vi->pins++;
			list[n++] = vi;
		}
	}
	pthread_mutex_unlock(&vol->it_mu);
	for (size_t i = 0; i < n; i++) {
		pthread_rwlock_wrlock(&list[i]->lk);
		int r = vol_inode_stage(vol, list[i]);
		pthread_rwlock_unlock(&list[i]->lk);
		if (r && !rc)
			rc = r;
	}
	if (!rc)
		rc = vol_commit(vol, 1);
	if (!rc && remote)
		rc = vol_wait_uploaded(vol, 0);
	if (!rc && remote)
		rc = vol_ship_flush_if_on(vol);  /* the metadata in the store too */
out:
	for (size_t i = 0; i < n; i++)
		vol_vinode_unpin(vol, list[i]);
	free(list);
	vol_prune_queued(vol);
	return rc;
}

int volume_sync(cairn_volume *vol)
{
	return vol_sync_all(vol, vol->o.durability == CAIRN_DUR_REMOTE);
}
