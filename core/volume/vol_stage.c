/*
 * vol_stage.c - the write and commit protocol: the staging segment, the
 * commit of chunks and extents, sealing, the uploader, recovery at open,
 * and reading a chunk back from wherever it lives.
 *
 * Protocol of one commit (vol_commit_locked), in this order:
 *   1. chunks were appended to the staging file (seg_writer_append, through
 *      the I/O engine) as files were closed, fsynced or filled their buffer;
 *   2. seg_writer_sync: fdatasync, the high-water mark (hwm) moves;
 *   3. ONE meta_write: the segment's size := hwm, a chunk record per
 *      appended chunk, an extent per chunk (superseding older ones; meta
 *      keeps the chunk refcounts exact).
 * No metadata transaction is open during 1-2, and 3 does no I/O of its own
 * beyond LMDB's commit.  So committed metadata never names bytes that are
 * not durable (brief invariant 1): after a crash the staging file is cut
 * back to the committed size (seg_writer_recover), which drops only chunks
 * nobody references.
 *
 * Life of a segment (meta state in capitals):
 *
 *   new_segment      vol_seal_locked        upload_one             upload_one
 *   ---> STAGING ----------------> SEALED --------> UPLOADING -------> UPLOADED
 *        (appends, commits)  (index+footer,  (intent: key      (PUT done; the
 *                             fsync)          recorded first)   local file
 *                                                               stays as cache
 *                                                               up to local_keep)
 *
 * Recovery (vol_recover, at open, before any new write): STAGING with
 * chunks -> cut to its committed size, sealed, queued; STAGING without
 * chunks -> DEAD; SEALED and UPLOADING -> queued (a PUT of an immutable key
 * is idempotent).  Objects put but never recorded are left to GC.  Stream
 * segments (large files, vol_stream.c) are uploaded by multipart upload
 * instead of one PUT; recovery aborts their recorded upload and uploads
 * them again from the local file.
 *
 * Frames are tagged with their offset in the segment (the chunk id field of
 * the frame header), so a chunk record (segment, offset) alone rebuilds the
 * expected frame header; compaction that moves a chunk writes its new
 * offset as the tag.
 *
 * Uploads: VOL_UPLOADERS workers (uploader_main) take queue entries in
 * order, several at a time, and take each off when IT is done, so uploads
 * finish in any order; nothing may wait for a queue position, only for ids
 * (vol_wait_uploaded, gc's in_upload_queue) or segment states.
 *
 * Back-pressure: bytes not yet uploaded (queued segments + the staging
 * segment) are capped by upload_cap.  Writers wait at the cap; after
 * upload_wait_ms of a failing store they get CAIRN_E_NOSPC naming the last
 * store error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vol_int.h"

int vol_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_cond_timedwait(cv, mu, &ts);
}

/* Sticky failure (st_mu held): the staging writer or the metadata can no
 * longer be trusted; every later write fails until the volume is reopened. */
static int set_broken(cairn_volume *vol, int rc)
{
	if (!vol->broken) {
		vol->broken = rc;
		cairn_err_copy(vol->broken_msg, sizeof vol->broken_msg);
		CAIRN_ERROR(VOL_MOD, "volume %s: writes stopped after: %s", vol->dir,
			    vol->broken_msg);
	}
	return rc;
}

/* ---- segments in meta ---- */

typedef struct segop {
	cairn_volume *vol;
	meta_seg s;
	uint32_t state;
	uint64_t size;
	const char *key;
} segop;

/* p->state carries the kind: 0 packed, 1 stream (the meta record's kind). */
static int seg_new_fn(meta_txn *t, void *arg)
{
	segop *p = arg;
	seg_id id;
	int rc;
	memset(&p->s, 0, sizeof p->s);
	p->s.kind = p->state;
	if ((rc = meta_seg_create(t, &p->s)))
		return rc;
	memcpy(id.uuid, p->vol->uuid, 16);
	id.epoch = p->vol->epoch;
	id.seq = p->s.id;
	id.kind = p->state ? SEG_KIND_STREAM : SEG_KIND_PACKED;
	if ((rc = seg_key_format(&id, p->s.key, sizeof p->s.key)))
		return rc;
	return meta_seg_update(t, &p->s);
}

int vol_seg_new(cairn_volume *vol, int stream, meta_seg *out, seg_id *id)
{
	segop p = { .vol = vol, .state = stream ? 1 : 0 };
	int rc = meta_write(vol->meta, META_RELAXED, META_OP_SEGMENT, seg_new_fn, &p, NULL);
	if (rc)
		return cairn_err_wrap(rc, "new %s segment", stream ? "stream" : "staging");
	*out = p.s;
	return seg_key_parse(p.s.key, id);
}

static int seg_state_fn(meta_txn *t, void *arg)
{
	segop *p = arg;
	int rc = meta_seg_get(t, p->s.id, &p->s);
	if (rc)
		return rc;
	if (p->s.state == META_SEG_UPLOADED && p->state != META_SEG_UPLOADED)
		return 0;  /* already done (a repeated upload after recovery) */
	p->s.state = p->state;
	if (p->size > p->s.size)
		p->s.size = p->size;
	if (p->key)
		snprintf(p->s.key, sizeof p->s.key, "%s", p->key);
	return meta_seg_update(t, &p->s);
}

static int seg_set_state(cairn_volume *vol, uint64_t id, uint32_t state,
			 uint64_t size, const char *key, meta_durability d)
{
	segop p = { .vol = vol, .state = state, .size = size, .key = key };
	p.s.id = id;
	return meta_write(vol->meta, d, META_OP_SEGMENT, seg_state_fn, &p, NULL);
}

int vol_seg_set_state(cairn_volume *vol, uint64_t id, uint32_t state,
		      uint64_t size, const char *key, meta_durability d)
{
	return seg_set_state(vol, id, state, size, key, d);
}

static int new_segment(cairn_volume *vol)
{
	meta_seg s;
	char path[4096];
	seg_id id;
	seg_writer_opts wo = { .zstd_level = vol->zstd_level };
	int rc;

	if ((rc = vol_seg_new(vol, 0, &s, &id)))
		return rc;
	vol_seg_path(vol, s.id, path, sizeof path);
	/* A file of this id can only be left from a run whose segment record
	 * never became durable: nothing references it. */
	if (unlink(path) == 0)
		CAIRN_WARN(VOL_MOD, "removed stale staging file %s", path);
	if ((rc = seg_writer_create(vol->u, path, &id, &wo, &vol->w)))
		return rc;
	vol->w_seg = s.id;
	snprintf(vol->w_key, sizeof vol->w_key, "%s", s.key);
	__atomic_store_n(&vol->cur_size, seg_writer_size(vol->w), __ATOMIC_RELAXED);
	return 0;
}

/* ---- commit ---- */

typedef struct commitop {
	cairn_volume *vol;
	uint64_t seg, hwm;
} commitop;

static int commit_fn(meta_txn *t, void *arg)
{
	commitop *p = arg;
	cairn_volume *vol = p->vol;
	meta_seg s;
	int rc;

	if ((rc = meta_seg_get(t, p->seg, &s)))
		return rc;
	if (s.size < p->hwm) {
		s.size = p->hwm;
		if ((rc = meta_seg_update(t, &s)))
			return rc;
	}
	for (size_t i = 0; i < vol->npend; i++) {
		vpend *e = &vol->pend[i];
		meta_attr a;
		meta_chunk c;
		rc = meta_getattr(t, e->ino, &a);
		if (rc == CAIRN_E_NOTFOUND) {
			/* Removed (and its last handle closed) before this
			 * commit: its bytes are garbage for GC. */
			cairn_err_clear();
			e->chunk_id = 0;
			continue;
		}
		if (rc)
			return rc;
		memset(&c, 0, sizeof c);
		c.seg = p->seg;
		c.seg_off = e->fr.off;
		c.stored_len = e->fr.stored_len;
		c.raw_len = e->fr.raw_len;
		c.codec = (uint8_t)e->fr.codec;
		c.crc = e->fr.crc;
		if ((rc = meta_chunk_add(t, &c)))
			return rc;
		e->chunk_id = c.id;
		if ((rc = meta_extent_write_at(t, e->ino, e->off, e->len, c.id, 0, e->wtime_ns)))
			return cairn_err_wrap(rc, "extent of inode %" PRIu64, e->ino);
	}
	return 0;
}

int vol_commit_locked(cairn_volume *vol, int synced)
{
	commitop p = { .vol = vol };
	int rc;

	if (vol->broken)
		return cairn_errf(vol->broken, "volume %s failed earlier (%s); reopen it",
				  vol->dir, vol->broken_msg);
	if (!vol->npend) {
		if (synced && (rc = meta_sync(vol->meta)))
			return set_broken(vol, rc);
		return 0;
	}
	if ((rc = seg_writer_sync(vol->w, &p.hwm)))
		return set_broken(vol, rc);
	p.seg = vol->w_seg;
	rc = meta_write(vol->meta, synced ? META_SYNCED : META_RELAXED, META_OP_EXTENT,
			commit_fn, &p, NULL);
	if (rc) {
		rc = cairn_err_wrap(rc, "commit %zu chunks of segment %s", vol->npend,
				    vol->w_key);
		/* The staged chunks stay pending; an I/O failure of the
		 * metadata is sticky (meta refuses writes after it). */
		if (rc == CAIRN_E_IO)
			set_broken(vol, rc);
		return rc;
	}
	/* Queue the committed inodes for pruning of their buffers. */
	if (vol->nprune + vol->npend > vol->cprune) {
		size_t nc = (vol->nprune + vol->npend) * 2;
		uint64_t *nl = realloc(vol->prune, nc * sizeof *nl);
		if (nl) {
			vol->prune = nl;
			vol->cprune = nc;
		}
	}
	for (size_t i = 0; i < vol->npend && vol->nprune < vol->cprune; i++)
		vol->prune[vol->nprune++] = vol->pend[i].ino;
	__atomic_store_n(&vol->committed_gen, vol->gen, __ATOMIC_RELEASE);
	vol->gen++;
	vol->npend = 0;
	vol->pend_bytes = 0;
	__atomic_add_fetch(&vol->st.commits, 1, __ATOMIC_RELAXED);
	return 0;
}

int vol_commit(cairn_volume *vol, int synced)
{
	pthread_mutex_lock(&vol->st_mu);
	int rc = vol_commit_locked(vol, synced);
	pthread_mutex_unlock(&vol->st_mu);
	return rc;
}

void vol_stage_keep_times(cairn_volume *vol, uint64_t ino)
{
	/* Under st_mu: a commit in progress holds it, so it either ran before
	 * (the explicit time, committed after, wins) or sees the mark. */
	pthread_mutex_lock(&vol->st_mu);
	for (size_t i = 0; i < vol->npend; i++)
		if (vol->pend[i].ino == ino)
			vol->pend[i].wtime_ns = 0;
	pthread_mutex_unlock(&vol->st_mu);
}

int vol_stage_append(cairn_volume *vol, uint64_t ino, uint64_t off,
		     const uint8_t *data, uint64_t len, int64_t wtime_ns,
		     uint64_t *gen)
{
	seg_frame fr;
	int rc = 0;

	pthread_mutex_lock(&vol->st_mu);
	if (vol->broken) {
		rc = cairn_errf(vol->broken, "volume %s failed earlier (%s); reopen it",
				vol->dir, vol->broken_msg);
		goto out;
	}
	if (!vol->w && (rc = new_segment(vol)))
		goto out;
	if (vol->npend == vol->cpend) {
		size_t nc = vol->cpend ? vol->cpend * 2 : 256;
		vpend *np = realloc(vol->pend, nc * sizeof *np);
		if (!np) {
			rc = cairn_errf(CAIRN_E_NOMEM, "staging: pending list");
			goto out;
		}
		vol->pend = np;
		vol->cpend = nc;
	}
	rc = seg_writer_append(vol->w, seg_writer_size(vol->w), data, (size_t)len, &fr);
	if (rc) {
		set_broken(vol, rc);
		goto out;
	}
	vpend *e = &vol->pend[vol->npend++];
	e->ino = ino;
	e->off = off;
	e->len = len;
	e->fr = fr;
	e->wtime_ns = wtime_ns;
	e->chunk_id = 0;
	vol->pend_bytes += len;
	*gen = vol->gen;
	__atomic_store_n(&vol->cur_size, seg_writer_size(vol->w), __ATOMIC_RELAXED);
	__atomic_add_fetch(&vol->st.chunks_staged, 1, __ATOMIC_RELAXED);
	if (seg_writer_size(vol->w) >= vol->o.segment_size)
		rc = vol_seal_locked(vol);
	else if (vol->pend_bytes >= vol->o.pending_max)
		rc = vol_commit_locked(vol, 0);
out:
	pthread_mutex_unlock(&vol->st_mu);
	return rc;
}

/* ---- seal and upload queue ---- */

static int enqueue(cairn_volume *vol, uint64_t id, uint64_t size, const char *key,
		   uint64_t acct, int stream, struct vmpu *job)
{
	pthread_mutex_lock(&vol->up_mu);
	if (vol->nq == vol->cq) {
		size_t nc = vol->cq ? vol->cq * 2 : 16;
		vseg *nq = realloc(vol->q, nc * sizeof *nq);
		if (!nq) {
			pthread_mutex_unlock(&vol->up_mu);
			return cairn_errf(CAIRN_E_NOMEM, "upload queue");
		}
		vol->q = nq;
		vol->cq = nc;
	}
	vseg *s = &vol->q[vol->nq++];
	memset(s, 0, sizeof *s);
	s->id = id;
	s->size = size;
	snprintf(s->key, sizeof s->key, "%s", key);
	s->acct = acct;
	s->stream = stream;
	s->job = job;
	vol->q_bytes += acct;
	pthread_cond_broadcast(&vol->up_cv);
	pthread_mutex_unlock(&vol->up_mu);
	return 0;
}

int vol_upload_enqueue(cairn_volume *vol, uint64_t id, uint64_t size, const char *key)
{
	return enqueue(vol, id, size, key, size, 0, NULL);
}

/* A stream segment (vol_stream.c): acct is what it still counts against
 * the cap; job its multipart upload begun while it was written (or NULL:
 * the uploader starts one). */
int vol_upload_enqueue_stream(cairn_volume *vol, uint64_t id, uint64_t size,
			      const char *key, uint64_t acct, struct vmpu *job)
{
	return enqueue(vol, id, size, key, acct, 1, job);
}

int vol_seal_locked(cairn_volume *vol)
{
	char path[4096];
	uint64_t size = 0, id = vol->w_seg;
	int rc;

	if (!vol->w)
		return 0;
	if ((rc = vol_commit_locked(vol, 0)))
		return rc;
	vol_seg_path(vol, id, path, sizeof path);
	if (seg_writer_frames(vol->w) == 0) {
		seg_writer_close(vol->w);
		vol->w = NULL;
		__atomic_store_n(&vol->cur_size, 0, __ATOMIC_RELAXED);
		if (unlink(path) != 0)
			CAIRN_WARN(VOL_MOD, "unlink %s: %s", path, strerror(errno));
		if ((rc = seg_set_state(vol, id, META_SEG_DEAD, 0, NULL, META_RELAXED)))
			return rc;
		return 0;
	}
	if ((rc = seg_writer_seal(vol->w, &size)))
		return set_broken(vol, rc);
	if ((rc = seg_set_state(vol, id, META_SEG_SEALED, size, NULL, META_SYNCED)))
		return set_broken(vol, cairn_err_wrap(rc, "seal segment %s", vol->w_key));
	seg_writer_close(vol->w);
	vol->w = NULL;
	/* q_bytes takes over the accounting from cur_size. */
	rc = vol_upload_enqueue(vol, id, size, vol->w_key);
	__atomic_store_n(&vol->cur_size, 0, __ATOMIC_RELAXED);
	__atomic_add_fetch(&vol->st.segments_sealed, 1, __ATOMIC_RELAXED);
	CAIRN_DEBUG(VOL_MOD, "sealed segment %s (%" PRIu64 " bytes)", vol->w_key, size);
	return rc;
}

int vol_seal(cairn_volume *vol)
{
	pthread_mutex_lock(&vol->st_mu);
	int rc = vol_seal_locked(vol);
	pthread_mutex_unlock(&vol->st_mu);
	return rc;
}

int vol_cap_wait(cairn_volume *vol)
{
	int64_t t0 = vol_now_ms();
	int rc = 0;

	int kicked = 0;
	uint64_t last_q = UINT64_MAX;

	pthread_mutex_lock(&vol->up_mu);
	for (;;) {
		uint64_t cur = __atomic_load_n(&vol->cur_size, __ATOMIC_RELAXED);
		uint64_t sp = __atomic_load_n(&vol->sp_bytes, __ATOMIC_RELAXED);
		if (vol->q_bytes + cur + sp < vol->o.upload_cap)
			break;
		/* The wait is for a store that makes no progress: every
		 * finished upload starts it again. */
		if (vol->q_bytes < last_q)
			t0 = vol_now_ms();
		last_q = vol->q_bytes;
		if (!kicked) {
			/* A writer is blocked: cut the uploader's backoff short
			 * (once per wait), the store may be back. */
			pthread_cond_broadcast(&vol->up_cv);
			kicked = 1;
		}
		if (vol->nq == 0 && cur > 0) {
			/* The staging segment alone fills the cap: seal it so
			 * that it can go. */
			pthread_mutex_unlock(&vol->up_mu);
			rc = vol_seal(vol);
			pthread_mutex_lock(&vol->up_mu);
			if (rc)
				break;
			continue;
		}
		int64_t waited = vol_now_ms() - t0;
		if (waited >= vol->o.upload_wait_ms) {
			rc = cairn_errf(CAIRN_E_NOSPC,
					"volume %s: %" PRIu64 " bytes wait for upload (cap %" PRIu64
					"); waited %" PRId64 " ms; last store error: %s",
					vol->dir, vol->q_bytes + cur + sp, vol->o.upload_cap, waited,
					vol->last_err[0] ? vol->last_err : "(none)");
			CAIRN_ERROR(VOL_MOD, "%s", cairn_errmsg());
			break;
		}
		vol_cond_wait_ms(&vol->done_cv, &vol->up_mu, 100);
	}
	pthread_mutex_unlock(&vol->up_mu);
	return rc;
}

int vol_wait_uploaded(cairn_volume *vol, uint64_t seg)
{
	int64_t t0;
	int rc = 0;

	/* seg 0: everything committed so far.  Seal the staging segment so
	 * that its data can be uploaded now, not at its age limit. */
	pthread_mutex_lock(&vol->st_mu);
	if (!seg)
		seg = vol->w ? vol->w_seg : 0;
	rc = vol_seal_locked(vol);
	pthread_mutex_unlock(&vol->st_mu);
	if (rc)
		return rc;
	t0 = vol_now_ms();
	pthread_mutex_lock(&vol->up_mu);
	pthread_cond_broadcast(&vol->up_cv);  /* retry now, not after the backoff */
	if (!seg)
		for (size_t i = 0; i < vol->nq; i++)
			if (vol->q[i].id > seg)
				seg = vol->q[i].id;
	size_t last_nq = vol->nq;
	for (;;) {
		size_t i;
		for (i = 0; i < vol->nq && vol->q[i].id > seg; i++)
			;
		if (i == vol->nq)
			break;
		/* Give up only when no upload finished for upload_wait_ms: a
		 * large checkpoint on a slow store takes longer in all. */
		if (vol->nq < last_nq)
			t0 = vol_now_ms();
		last_nq = vol->nq;
		int64_t waited = vol_now_ms() - t0;
		if (waited >= vol->o.upload_wait_ms) {
			rc = cairn_errf(CAIRN_E_IO,
					"volume %s: segment %s not uploaded after %" PRId64
					" ms; last store error: %s", vol->dir, vol->q[i].key,
					waited, vol->last_err[0] ? vol->last_err : "(none)");
			CAIRN_ERROR(VOL_MOD, "%s", cairn_errmsg());
			break;
		}
		vol_cond_wait_ms(&vol->done_cv, &vol->up_mu, 100);
	}
	pthread_mutex_unlock(&vol->up_mu);
	return rc;
}

/* up_mu held. */
void vol_kept_add(cairn_volume *vol, uint64_t id, uint64_t size, const char *key)
{
	char path[4096];
	if (vol->nkept == vol->ckept) {
		size_t nc = vol->ckept ? vol->ckept * 2 : 16;
		vseg *nk = realloc(vol->kept, nc * sizeof *nk);
		if (!nk) {
			/* Cannot track it: drop the local copy instead. */
			vol_seg_path(vol, id, path, sizeof path);
			unlink(path);
			return;
		}
		vol->kept = nk;
		vol->ckept = nc;
	}
	vseg *s = &vol->kept[vol->nkept++];
	s->id = id;
	s->size = size;
	snprintf(s->key, sizeof s->key, "%s", key);
	vol->kept_bytes += size;
	while (vol->kept_bytes > vol->o.local_keep && vol->nkept > 0) {
		vol_seg_path(vol, vol->kept[0].id, path, sizeof path);
		if (unlink(path) != 0 && errno != ENOENT)
			CAIRN_WARN(VOL_MOD, "unlink %s: %s", path, strerror(errno));
		vol->kept_bytes -= vol->kept[0].size;
		memmove(vol->kept, vol->kept + 1, (vol->nkept - 1) * sizeof *vol->kept);
		vol->nkept--;
	}
}

int vol_store_links(cairn_volume *vol, uint64_t size)
{
	cairn_objstore_limits l;
	memset(&l, 0, sizeof l);
	objstore_limits(vol->os, &l);
	return l.link_puts && (size == 0 || size <= l.max_put_size);
}

static int upload_one(cairn_volume *vol, const vseg *s)
{
	char path[4096];
	struct stat st;
	int fd, rc;

	/* The intent is durable before the first byte goes out. */
	if ((rc = seg_set_state(vol, s->id, META_SEG_UPLOADING, s->size, s->key, META_SYNCED)))
		return cairn_err_wrap(rc, "upload intent of %s", s->key);
	vol_seg_path(vol, s->id, path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "upload %s: open %s: %s", s->key, path,
				  strerror(errno));
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != s->size) {
		close(fd);
		return cairn_errf(CAIRN_E_CORRUPT, "upload %s: %s has %lld bytes, sealed size %" PRIu64,
				  s->key, path, (long long)st.st_size, s->size);
	}
	cairn_obj_src src = { .buf = NULL, .fd = fd, .off = 0, .len = s->size };
	rc = objstore_put(vol->os, s->key, &src);
	close(fd);
	if (rc)
		return cairn_err_wrap(rc, "upload %s", s->key);
	if ((rc = seg_set_state(vol, s->id, META_SEG_UPLOADED, s->size, NULL, META_RELAXED)))
		return cairn_err_wrap(rc, "record upload of %s", s->key);
	return 0;
}

/* The oldest queue entry no worker has (up_mu held), or SIZE_MAX. */
static size_t queue_pick(cairn_volume *vol)
{
	for (size_t i = 0; i < vol->nq; i++)
		if (!vol->q[i].busy)
			return i;
	return SIZE_MAX;
}

/* Where entry id is now (up_mu held): entries before it may have been
 * taken off by other workers meanwhile.  Only the worker that set busy
 * removes an entry, so it is still there. */
static size_t queue_find(cairn_volume *vol, uint64_t id)
{
	for (size_t i = 0; i < vol->nq; i++)
		if (vol->q[i].id == id && vol->q[i].busy)
			return i;
	return SIZE_MAX;
}

/* One of VOL_UPLOADERS workers: each takes the oldest entry nobody works
 * on, uploads it with up_mu released, and on success takes THAT entry
 * off; on failure it leaves the entry for any worker and backs off.  So
 * uploads start in queue order but finish in any order: everything that
 * waits for uploads (vol_wait_uploaded, gc's in_upload_queue, the
 * shipper's data rule, which reads segment states) looks for ids, never
 * at positions. */
static void *uploader_main(void *arg)
{
	cairn_volume *vol = arg;
	unsigned backoff = 50;

	pthread_mutex_lock(&vol->up_mu);
	for (;;) {
		size_t i = vol->o.no_upload ? SIZE_MAX : queue_pick(vol);
		if (i == SIZE_MAX || !vol_ship_upload_ok(vol)) {
			if (vol->stop)
				break;
			vol_cond_wait_ms(&vol->up_cv, &vol->up_mu, 200);
			continue;
		}
		vol->q[i].busy = 1;
		vseg s = vol->q[i];
		if (++vol->up_active > vol->up_active_max)
			vol->up_active_max = vol->up_active;
		pthread_mutex_unlock(&vol->up_mu);
		/* A stream whose upload did not begin while it was written
		 * (a store that links whole files, or a failed start) goes
		 * up in one put when the store takes it without a copy. */
		int whole = s.stream && !s.job && vol_store_links(vol, s.size);
		int rc = s.stream && !whole ? vol_stream_upload(vol, &s) : upload_one(vol, &s);
		char msg[512];
		if (rc)
			cairn_err_copy(msg, sizeof msg);
		pthread_mutex_lock(&vol->up_mu);
		vol->up_active--;
		i = queue_find(vol, s.id);
		if (i == SIZE_MAX) {
			/* cannot happen: only the worker that has an entry
			 * removes it */
			CAIRN_ERROR(VOL_MOD, "uploader: %s left the queue while uploaded", s.key);
			pthread_cond_broadcast(&vol->done_cv);
			continue;
		}
		/* A stream's upload job was consumed either way. */
		vol->q[i].job = NULL;
		if (!rc) {
			memmove(vol->q + i, vol->q + i + 1, (vol->nq - i - 1) * sizeof *vol->q);
			vol->nq--;
			vol->q_bytes -= s.acct;
			vol->fail_since_ms = 0;
			vol->last_err[0] = 0;
			backoff = 50;
			vol->st.segments_uploaded++;
			vol_kept_add(vol, s.id, s.size, s.key);
			pthread_cond_broadcast(&vol->done_cv);
			continue;
		}
		vol->q[i].busy = 0;
		vol->st.upload_failures++;
		snprintf(vol->last_err, sizeof vol->last_err, "%s", msg);
		if (!vol->fail_since_ms || vol->st.upload_failures % 20 == 1)
			CAIRN_WARN(VOL_MOD, "upload failed, will retry: %s", msg);
		if (!vol->fail_since_ms)
			vol->fail_since_ms = vol_now_ms();
		pthread_cond_broadcast(&vol->done_cv);
		if (vol->stop)
			break;  /* closing: the next open uploads it */
		vol_cond_wait_ms(&vol->up_cv, &vol->up_mu, backoff);
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
	pthread_mutex_unlock(&vol->up_mu);
	return NULL;
}

static void *bg_main(void *arg)
{
	cairn_volume *vol = arg;
	int64_t last_commit = vol_now_ms();

	pthread_mutex_lock(&vol->up_mu);
	while (!vol->stop) {
		vol_cond_wait_ms(&vol->up_cv, &vol->up_mu, 100);
		if (vol->stop)
			break;
		pthread_mutex_unlock(&vol->up_mu);
		vol_prune_queued(vol);
		pthread_mutex_lock(&vol->st_mu);
		int rc = 0;
		if (vol->broken) {
			/* nothing to do: writes are stopped */
		} else if (vol->w && seg_writer_frames(vol->w) &&
			   seg_writer_age_ms(vol->w) >= vol->o.seal_age_ms) {
			rc = vol_seal_locked(vol);
			last_commit = vol_now_ms();
		} else if (vol->npend && vol_now_ms() - last_commit >= vol->o.commit_interval_ms) {
			rc = vol_commit_locked(vol, 0);
			last_commit = vol_now_ms();
		}
		if (rc)
			CAIRN_WARN(VOL_MOD, "background commit: %s", cairn_errmsg());
		pthread_mutex_unlock(&vol->st_mu);
		pthread_mutex_lock(&vol->up_mu);
	}
	pthread_mutex_unlock(&vol->up_mu);
	return NULL;
}

static void uploaders_join(cairn_volume *vol)
{
	for (unsigned i = 0; i < vol->nup_thr; i++)
		pthread_join(vol->up_thr[i], NULL);
	vol->nup_thr = 0;
}

int vol_threads_start(cairn_volume *vol)
{
	for (unsigned i = 0; i < VOL_UPLOADERS; i++) {
		if (pthread_create(&vol->up_thr[i], NULL, uploader_main, vol) != 0) {
			if (i > 0)
				break;  /* fewer workers still upload everything */
			return cairn_errf(CAIRN_E_NOMEM, "start the uploader thread");
		}
		vol->nup_thr = i + 1;
	}
	if (pthread_create(&vol->bg_thr, NULL, bg_main, vol) != 0) {
		pthread_mutex_lock(&vol->up_mu);
		vol->stop = 1;
		pthread_cond_broadcast(&vol->up_cv);
		pthread_mutex_unlock(&vol->up_mu);
		uploaders_join(vol);
		return cairn_errf(CAIRN_E_NOMEM, "start the background thread");
	}
	vol->threads = 1;
	return 0;
}

void vol_threads_stop(cairn_volume *vol)
{
	if (!vol->threads)
		return;
	pthread_mutex_lock(&vol->up_mu);
	vol->stop = 1;
	pthread_cond_broadcast(&vol->up_cv);
	pthread_mutex_unlock(&vol->up_mu);
	pthread_join(vol->bg_thr, NULL);
	uploaders_join(vol);
	vol->threads = 0;
}

/* ---- reading chunks ---- */

static seg_reader *reader_get(cairn_volume *vol, const meta_seg *s, int *rc)
{
	seg_reader *r = NULL;
	size_t i, victim = VOL_READERS;

	pthread_mutex_lock(&vol->rd_mu);
	for (i = 0; i < VOL_READERS; i++) {
		if (vol->rd[i].r && vol->rd[i].seg == s->id) {
			vol->rd[i].refs++;
			vol->rd[i].used = ++vol->rd_clock;
			r = vol->rd[i].r;
			pthread_mutex_unlock(&vol->rd_mu);
			*rc = 0;
			return r;
		}
	}
	pthread_mutex_unlock(&vol->rd_mu);
	*rc = seg_reader_open(vol->os, s->key, NULL, &r);
	if (*rc)
		return NULL;
	pthread_mutex_lock(&vol->rd_mu);
	for (i = 0; i < VOL_READERS; i++) {
		if (!vol->rd[i].r) {
			victim = i;
			break;
		}
		if (vol->rd[i].refs == 0 &&
		    (victim == VOL_READERS || vol->rd[i].used < vol->rd[victim].used))
			victim = i;
	}
	if (victim < VOL_READERS) {
		if (vol->rd[victim].r)
			seg_reader_close(vol->rd[victim].r);
		vol->rd[victim].r = r;
		vol->rd[victim].seg = s->id;
		vol->rd[victim].refs = 1;
		vol->rd[victim].used = ++vol->rd_clock;
	} else {
		r = NULL;  /* every slot busy: caller uses a private reader */
	}
	pthread_mutex_unlock(&vol->rd_mu);
	if (!r) {
		*rc = seg_reader_open(vol->os, s->key, NULL, &r);
		if (!*rc)
			return (seg_reader *)((uintptr_t)r | 1);
	}
	return r;
}

static void reader_put(cairn_volume *vol, seg_reader *r)
{
	if ((uintptr_t)r & 1) {
		seg_reader_close((seg_reader *)((uintptr_t)r & ~(uintptr_t)1));
		return;
	}
	pthread_mutex_lock(&vol->rd_mu);
	for (size_t i = 0; i < VOL_READERS; i++)
		if (vol->rd[i].r == r)
			vol->rd[i].refs--;
	pthread_mutex_unlock(&vol->rd_mu);
}

void vol_readers_close(cairn_volume *vol)
{
	pthread_mutex_lock(&vol->rd_mu);
	for (size_t i = 0; i < VOL_READERS; i++) {
		if (vol->rd[i].r && vol->rd[i].refs == 0) {
			seg_reader_close(vol->rd[i].r);
			vol->rd[i].r = NULL;
		}
	}
	pthread_mutex_unlock(&vol->rd_mu);
}

static int read_local(cairn_volume *vol, const char *path, int fd,
		      const meta_seg *s, const seg_frame *fr, uint8_t *dst)
{
	uint64_t span = seg_frame_span(fr);
	size_t got = 0, raw = 0;
	uint8_t *buf = malloc(span);
	int rc;
	if (!buf)
		return cairn_errf(CAIRN_E_NOMEM, "frame of %" PRIu64 " bytes", span);
	rc = uring_read(vol->u, fd, buf, span, fr->off, &got);
	if (rc)
		rc = cairn_err_wrap(rc, "read %s", path);
	else
		rc = seg_frame_decode(s->key, fr, buf, got, dst, fr->raw_len, &raw);
	if (!rc && raw != fr->raw_len)
		rc = cairn_errf(CAIRN_E_CORRUPT, "segment %s: frame at %" PRIu64
				" decoded to %zu bytes, expected %u", s->key, fr->off,
				raw, fr->raw_len);
	free(buf);
	return rc;
}

int vol_chunk_read(cairn_volume *vol, const meta_chunk *c, const meta_seg *s,
		   uint8_t *dst)
{
	seg_frame fr = { .chunk_id = c->seg_off, .off = c->seg_off,
			 .stored_len = c->stored_len, .raw_len = c->raw_len,
			 .codec = c->codec, .crc = c->crc };
	char path[4096];
	size_t raw = 0;
	meta_seg fresh;
	int fd, rc;

	vol_seg_path(vol, s->id, path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		rc = read_local(vol, path, fd, s, &fr, dst);
		close(fd);
		if (!rc) {
			__atomic_add_fetch(&vol->st.reads_local, 1, __ATOMIC_RELAXED);
			return 0;
		}
		if (s->state != META_SEG_UPLOADED || rc != CAIRN_E_CORRUPT)
			return rc;
		/* The store holds a verified copy: the local one is only a
		 * cache.  Drop it and read the store. */
		CAIRN_WARN(VOL_MOD, "local copy %s of %s is corrupt, removed: %s", path,
			   s->key, cairn_errmsg());
		unlink(path);
	} else if (s->state != META_SEG_UPLOADED && !vol->fl) {
		/* (A follower applies a log object record by record: a chunk
		 * may show before its segment's UPLOADED put, which the same
		 * object carries; by the data rule the store holds it.)
		 * The caller's record may predate the upload: the uploader may
		 * have finished and the local copy been dropped (local_keep,
		 * drop_cache) since.  Look again before calling it lost. */
		int err = errno;
		meta_txn *t;
		if (err == ENOENT && meta_read_begin(vol->meta, &t) == 0) {
			rc = meta_seg_get(t, s->id, &fresh);
			meta_read_end(t);
			if (!rc && fresh.state == META_SEG_UPLOADED)
				s = &fresh;
			cairn_err_clear();
		}
		if (s->state != META_SEG_UPLOADED)
			return cairn_errf(err == ENOENT ? CAIRN_E_CORRUPT : CAIRN_E_IO,
					  "segment %s is not uploaded and its local file %s "
					  "cannot be opened: %s", s->key, path, strerror(err));
	}
	seg_reader *r = reader_get(vol, s, &rc);
	if (!r)
		return cairn_err_wrap(rc, "open segment %s", s->key);
	seg_reader *rr = (seg_reader *)((uintptr_t)r & ~(uintptr_t)1);
	rc = seg_reader_read_cached(rr, vol->cache, vol->o.read_window, &fr, dst,
				    c->raw_len, &raw);
	reader_put(vol, r);
	if (!rc && raw != c->raw_len)
		rc = cairn_errf(CAIRN_E_CORRUPT, "segment %s: chunk at %" PRIu64
				" decoded to %zu bytes, expected %u", s->key, c->seg_off,
				raw, c->raw_len);
	if (!rc)
		__atomic_add_fetch(&vol->st.reads_store, 1, __ATOMIC_RELAXED);
	return rc;
}

/* ---- recovery and cache control ---- */

typedef vseglist seglist;

typedef struct seglist_ctx {
	vseglist *l;
	int (*keep)(const meta_seg *s);
} seglist_ctx;

static int seglist_cb(const meta_seg *s, void *arg)
{
	seglist_ctx *c = arg;
	vseglist *l = c->l;
	if (c->keep && !c->keep(s))
		return 0;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		meta_seg *nv = realloc(l->v, nc * sizeof *nv);
		if (!nv) {
			l->rc = cairn_errf(CAIRN_E_NOMEM, "segment list");
			return 1;
		}
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = *s;
	return 0;
}

int vol_seglist_load(cairn_meta *m, int (*keep)(const meta_seg *s), vseglist *l)
{
	seglist_ctx c = { l, keep };
	meta_txn *t;
	int rc;
	memset(l, 0, sizeof *l);
	if ((rc = meta_read_begin(m, &t)))
		return rc;
	rc = meta_seg_list(t, 0, seglist_cb, &c);
	meta_read_end(t);
	if (!rc)
		rc = l->rc;
	if (rc) {
		free(l->v);
		memset(l, 0, sizeof *l);
	}
	return rc;
}

static int seglist_load(cairn_volume *vol, seglist *l)
{
	return vol_seglist_load(vol->meta, NULL, l);
}

static int recover_staging(cairn_volume *vol, const meta_seg *s)
{
	char path[4096];
	seg_writer_opts wo = { .zstd_level = vol->zstd_level };
	seg_writer *w = NULL;
	seg_id id;
	uint64_t size = 0;
	int rc;

	vol_seg_path(vol, s->id, path, sizeof path);
	if (s->kind == 1)
		vol_mpu_abort_recorded(vol, s);  /* the upload is redone whole */
	if (s->nchunks == 0) {
		/* Nothing committed points into it. */
		unlink(path);
		return seg_set_state(vol, s->id, META_SEG_DEAD, 0, NULL, META_RELAXED);
	}
	if ((rc = seg_key_parse(s->key, &id)))
		return cairn_err_wrap(rc, "segment %" PRIu64, s->id);
	rc = seg_writer_recover(vol->u, path, &id, s->size, &wo, &w);
	if (rc)
		return cairn_err_wrap(rc, "recover staging segment %s (committed size %" PRIu64 ")",
				      s->key, s->size);
	rc = seg_writer_seal(w, &size);
	seg_writer_close(w);
	if (rc)
		return rc;
	if ((rc = seg_set_state(vol, s->id, META_SEG_SEALED, size, NULL, META_SYNCED)))
		return rc;
	CAIRN_INFO(VOL_MOD, "recovered staging segment %s at %" PRIu64 " bytes, sealed",
		   s->key, s->size);
	if (s->kind == 1)
		return vol_upload_enqueue_stream(vol, s->id, size, s->key, size, NULL);
	return vol_upload_enqueue(vol, s->id, size, s->key);
}

int vol_recover(cairn_volume *vol)
{
	seglist l;
	char path[4096];
	struct stat st;
	int rc = seglist_load(vol, &l);

	for (size_t i = 0; !rc && i < l.n; i++) {
		meta_seg *s = &l.v[i];
		switch (s->state) {
		case META_SEG_STAGING:
			rc = recover_staging(vol, s);
			break;
		case META_SEG_SEALED:
		case META_SEG_UPLOADING:
			vol_seg_path(vol, s->id, path, sizeof path);
			if (stat(path, &st) != 0) {
				CAIRN_ERROR(VOL_MOD, "segment %s (state %u) has no local file %s: "
					    "its data is lost", s->key, s->state, path);
				break;
			}
			if (s->kind == 1) {
				/* A stream whose upload did not complete: its
				 * parts are discarded, the file uploaded again. */
				vol_mpu_abort_recorded(vol, s);
				rc = vol_upload_enqueue_stream(vol, s->id, s->size, s->key,
							       s->size, NULL);
				break;
			}
			rc = vol_upload_enqueue(vol, s->id, s->size, s->key);
			break;
		case META_SEG_UPLOADED:
			vol_seg_path(vol, s->id, path, sizeof path);
			if (stat(path, &st) == 0) {
				pthread_mutex_lock(&vol->up_mu);
				vol_kept_add(vol, s->id, (uint64_t)st.st_size, s->key);
				pthread_mutex_unlock(&vol->up_mu);
			}
			break;
		default:
			break;
		}
	}
	free(l.v);
	return rc;
}

int volume_drop_cache(cairn_volume *vol)
{
	seglist l;
	char path[4096];
	int rc;

	pthread_mutex_lock(&vol->up_mu);
	for (size_t i = 0; i < vol->nkept; i++) {
		vol_seg_path(vol, vol->kept[i].id, path, sizeof path);
		if (unlink(path) != 0 && errno != ENOENT)
			CAIRN_WARN(VOL_MOD, "unlink %s: %s", path, strerror(errno));
	}
	vol->nkept = 0;
	vol->kept_bytes = 0;
	pthread_mutex_unlock(&vol->up_mu);
	if ((rc = seglist_load(vol, &l)))
		return rc;
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].state != META_SEG_UPLOADED || !l.v[i].key[0])
			continue;
		int r = seg_cache_drop(vol->cache, l.v[i].key);
		if (r && !rc)
			rc = r;
	}
	free(l.v);
	vol_readers_close(vol);
	return rc;
}
