/*
 * vol_stream.c - large files: a file written sequentially from offset 0
 * past stream_threshold bytes gets its own stream segment.  Its bytes go
 * to a local spool (the stream segment file itself, written through the
 * I/O engine by seg_stream: content-defined chunks, SHA-256 per chunk) and
 * from there to the object store as a parallel multipart upload while the
 * writer goes on.  docs/large-files.md explains the design.
 *
 *  write (candidate: one dirty buffer [0, size), size >= threshold)
 *    |
 *    v
 *  STREAMING --sequential write--> STREAMING (seg_stream_write; every
 *    |  \                                     part_size bytes of spool: one
 *    |   \                                    MPU part submitted, at most
 *    |    \                                   stream_inflight in flight;
 *    |     \                                  every commit_bytes: commit)
 *    |      \--write elsewhere, close, fsync, truncate, sync--> END
 *    v
 *  END: cut the last chunk, fdatasync, commit chunks + extents (one
 *       meta_write), seal (index + footer), segment SEALED, send the tail
 *       part, hand the upload (parts still in flight) to the uploader
 *       thread, which completes the upload, then marks the segment
 *       UPLOADED.  Later writes take the small-file path (newer extents
 *       supersede the stream's).
 *
 * Invariants:
 *   1. The upload id is recorded in the segment record (synced) before the
 *      first part is sent; recovery aborts any recorded upload of a segment
 *      not UPLOADED and redoes the upload from the local file, which is
 *      the committed spool cut to its committed size and sealed.
 *   2. Committed chunk records point only below the spool's high-water
 *      mark (seg_writer_sync before every commit), as for packed segments.
 *   3. A part covers spool bytes already in the file (seg_writer_written:
 *      the spool is written with O_DIRECT from an aligned buffer, and
 *      bytes in that buffer or in a write in flight are not), which never
 *      change again; the object becomes visible only at complete, and the segment
 *      is marked UPLOADED only after that, so nothing half-uploaded is ever
 *      read: until then reads use the spool.
 *   4. Memory per stream: one chunk buffer (max chunk size), the part
 *      slots, and the uncommitted chunk list; never the file.
 *   5. Spool bytes not yet uploaded count in vol->sp_bytes (the upload
 *      cap); they move to q_bytes when the stream is handed over.
 *   6. A part that fails is retried (VOL_PART_TRIES times, with backoff);
 *      when it still fails the upload is aborted, logged, and the segment
 *      is uploaded whole by the uploader after the file ends (its usual
 *      retry with backoff, and the cap's NOSPC naming the store's error).
 *   7. Reads of uploaded stream chunks (no local copy): whole chunks by
 *      parallel ranged GETs into the caller's buffer, each verified by its
 *      crc32c; a sequential reader's readahead fetches the next chunks
 *      (window doubling up to stream_readahead), a random reader only what
 *      it touches.  No byte is returned unverified.
 *   8. Deduplication (unless no_dedup): a chunk whose SHA-256, length and
 *      crc32c match a live chunk of an UPLOADED segment gets no frame; its
 *      reference is committed at once in the stream's pin inode (an
 *      orphan, freed by meta_open after a crash) by a transaction that
 *      re-checks the chunk, and moves to the file's extent in the stream
 *      commit.  A pending hit always holds a committed reference, so gc
 *      cannot delete its bytes; a hit that fails the re-check is appended
 *      (the writer thread still holds the bytes).
 *   9. A part's payload SHA-256 (what S3 checks over plain HTTP) is
 *      computed from the spool's bytes as they are appended (the seg_writer
 *      tap), part by part on mpu_pump's boundaries, so the S3 client reads
 *      a part from the spool once, to send it.  A part is sent with a
 *      digest only when the digest covers exactly its bytes (same number,
 *      same length); else, and for uploads not started by the stream
 *      (recovery, the whole-file upload after a failure), the client
 *      hashes the part itself.  The store checks the digest against the
 *      bytes it receives either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/codec.h"
#include "vol_int.h"

#define VOL_PART_TRIES 4
#define VOL_FEED_PIECE (8u << 20)

typedef struct vpart {
	cairn_obj_req r;
	unsigned tries;
	int busy;
	uint8_t sha[32];        /* r.src.sha256 when the digest was known */
	uint8_t *mem;           /* r.src.buf: the part's copy, owned */
	uint64_t memcap;        /* its size in the budget */
} vpart;

/* Payload hashes of a stream's parts (invariant 9), computed from the
 * spool's bytes as they are appended (seg_writer_opts.tap, on whichever
 * thread appends, one at a time under the writer's lock), so that the S3
 * client reads a part once, to send it, instead of once more for its
 * signed SHA-256.  Part boundaries are mpu_pump's: part n has
 * objstore_part_size(os, 0, n, part_size) bytes, the last one what is
 * left after the seal (vdigest_finish).  Only done[] and ndone are shared
 * (under mu); the hash state is the appender's alone.
 *
 * The tap also copies each part into memory while vol->pm_bytes stays
 * within vol->pm_cap (the parts in flight and two more, at most
 * VOL_PART_MEM), and the part is sent from that copy: the direct spool
 * leaves nothing in the page cache, so reading a part back cost a disk
 * read and the kernel's copy of every byte (38% of the client's CPU in a
 * 512 MiB upload to s3rver, perf), against one memcpy here.  A part the
 * budget has no room for is read from the spool as before. */
typedef struct vdigest {
	pthread_mutex_t mu;
	cairn_volume *vol;
	const cairn_objstore *os;
	uint64_t part_size;
	cairn_sha256_ctx *h;
	uint64_t pos;           /* bytes hashed */
	uint64_t start, end;    /* the part being hashed: [start, end) */
	unsigned no;            /* its number */
	uint8_t *cur;           /* its copy, NULL: none kept */
	struct {
		uint8_t d[32];
		uint64_t len;
		uint8_t *mem;   /* the copy until mpu_pump takes it */
		uint64_t memcap;
	} *done;                /* done[i]: part i + 1 */
	unsigned ndone, cap;
	int bad;                /* a hash or allocation failed, or nobody
				   wants the digests: no more (atomic) */
} vdigest;

struct vmpu {
	cairn_volume *vol;
	uint64_t seg;
	char key[SEG_KEY_MAX];
	char upload_id[CAIRN_UPLOAD_ID_MAX];
	int fd;
	cairn_obj_batch *b;
	vpart *slots;
	unsigned nslots, busy;
	cairn_mpu_part *parts;
	size_t nparts, cparts;
	uint64_t next;          /* next spool byte to send */
	unsigned next_no;
	uint64_t *counted;      /* writer-owned: the stream's sp_bytes share */
	vdigest *dg;            /* part digests, NULL: the client hashes */
	int dg_own;             /* dg is freed with this upload */
	/* the registry of uploads in flight (mpu_limit) */
	uint64_t reg_seq;       /* 0: not registered */
	struct vmpu *reg_prev, *reg_next;
};

/* Deduplication state of a stream (see "deduplication" below): the hook
 * runs on the stream's writer thread; the caller reads it only after
 * seg_stream_drain (the stream's mutex orders the two). */
typedef struct vdedup {
	cairn_volume *vol;
	uint64_t pin;           /* pin inode, 0 until the first hit */
	int pin_open;           /* meta_ino_open'ed: ours to close */
	int off;                /* no more lookups (pin could not be opened) */
	uint64_t hits, hit_bytes, misses;
} vdedup;

typedef struct vstream {
	uint64_t seg;
	char key[SEG_KEY_MAX];
	char path[4096];
	seg_stream *ss;
	int rfd;                /* spool, for reads of uncommitted chunks */
	struct vmpu *m;         /* NULL: no upload in flight */
	uint64_t counted;       /* spool bytes in vol->sp_bytes */
	uint64_t seen;          /* spool size accounted so far */
	int link;               /* the store links the sealed spool in one put:
				   no parts, and the spool is not counted
				   against the upload cap (it costs no upload) */
	uint64_t flushed;       /* spool bytes whose writeback was started */
	uint64_t since_commit;
	vdedup dd;
	vdigest *dg;            /* owned until handed to the upload at the end */
} vstream;

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int stream_broken(cairn_volume *vol, int rc)
{
	pthread_mutex_lock(&vol->st_mu);
	if (!vol->broken) {
		vol->broken = rc;
		cairn_err_copy(vol->broken_msg, sizeof vol->broken_msg);
		CAIRN_ERROR(VOL_MOD, "volume %s: writes stopped after: %s", vol->dir,
			    vol->broken_msg);
	}
	pthread_mutex_unlock(&vol->st_mu);
	return rc;
}

static void sp_sub(cairn_volume *vol, uint64_t *counted, uint64_t n)
{
	if (n > *counted)
		n = *counted;
	*counted -= n;
	__atomic_sub_fetch(&vol->sp_bytes, n, __ATOMIC_RELAXED);
	pthread_mutex_lock(&vol->up_mu);
	pthread_cond_broadcast(&vol->done_cv);
	pthread_mutex_unlock(&vol->up_mu);
}

/* ---- part digests (invariant 9) ---- */

/* A copy of len bytes within the volume's budget, or NULL. */
static uint8_t *pm_get(cairn_volume *vol, uint64_t len)
{
	uint8_t *b;
	if (__atomic_add_fetch(&vol->pm_bytes, len, __ATOMIC_RELAXED) <= vol->pm_cap &&
	    (b = malloc(len)))
		return b;
	__atomic_sub_fetch(&vol->pm_bytes, len, __ATOMIC_RELAXED);
	return NULL;
}

static void pm_put(cairn_volume *vol, uint8_t *b, uint64_t len)
{
	if (!b)
		return;
	free(b);
	__atomic_sub_fetch(&vol->pm_bytes, len, __ATOMIC_RELAXED);
}

/* No more hashing (from any thread): the digests known stay usable, the
 * copies not taken yet go back to the budget now (the tap never touches
 * a published copy; the one it is filling it frees when it sees bad). */
static void vdigest_stop(vdigest *g)
{
	if (!g)
		return;
	__atomic_store_n(&g->bad, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&g->mu);
	for (unsigned i = 0; i < g->ndone; i++) {
		pm_put(g->vol, g->done[i].mem, g->done[i].memcap);
		g->done[i].mem = NULL;
	}
	pthread_mutex_unlock(&g->mu);
}

/* The tap's own copy of the part it is filling, given back (appending
 * thread only). */
static void vdigest_drop_cur(vdigest *g)
{
	pm_put(g->vol, g->cur, g->end - g->start);
	g->cur = NULL;
}

static void vdigest_free(vdigest *g)
{
	if (!g)
		return;
	cairn_sha256_free(g->h);
	pthread_mutex_destroy(&g->mu);
	pm_put(g->vol, g->cur, g->end - g->start);
	for (unsigned i = 0; i < g->ndone; i++)
		pm_put(g->vol, g->done[i].mem, g->done[i].memcap);
	free(g->done);
	free(g);
}

/* NULL when there is no memory: the parts are then hashed by the client. */
static vdigest *vdigest_new(cairn_volume *vol)
{
	vdigest *g = calloc(1, sizeof *g);

	if (!g)
		return NULL;
	if (pthread_mutex_init(&g->mu, NULL) != 0) {
		free(g);
		return NULL;
	}
	if (cairn_sha256_new(&g->h)) {
		cairn_err_clear();
		pthread_mutex_destroy(&g->mu);
		free(g);
		return NULL;
	}
	g->vol = vol;
	g->os = vol->os;
	g->part_size = vol->o.stream_part_size;
	g->no = 1;
	g->end = objstore_part_size(g->os, 0, 1, g->part_size);
	g->cur = pm_get(vol, g->end);
	return g;
}

/* The part being hashed is complete: publish its digest, start the next. */
static void vdigest_close(vdigest *g)
{
	uint8_t d[32];

	if (cairn_sha256_final(g->h, d)) {
		cairn_err_clear();
		vdigest_stop(g);
		return;
	}
	pthread_mutex_lock(&g->mu);
	if (g->ndone == g->cap) {
		unsigned nc = g->cap ? g->cap * 2 : 64;
		__typeof__(g->done) nd = realloc(g->done, (size_t)nc * sizeof *nd);
		if (!nd) {
			pthread_mutex_unlock(&g->mu);
			vdigest_stop(g);
			return;
		}
		g->done = nd;
		g->cap = nc;
	}
	memcpy(g->done[g->ndone].d, d, sizeof d);
	g->done[g->ndone].len = g->pos - g->start;
	g->done[g->ndone].memcap = g->end - g->start;  /* the last part's
							  copy is larger */
	g->done[g->ndone++].mem = g->cur;
	pthread_mutex_unlock(&g->mu);
	g->cur = NULL;
	g->no++;
	g->start = g->end;
	g->end += objstore_part_size(g->os, 0, g->no, g->part_size);
	if (!__atomic_load_n(&g->bad, __ATOMIC_RELAXED))
		g->cur = pm_get(g->vol, g->end - g->start);
}

/* seg_writer_opts.tap: every spool byte once, in order. */
static void vdigest_tap(void *arg, const void *p, size_t n)
{
	vdigest *g = arg;
	const uint8_t *b = p;

	while (n && !__atomic_load_n(&g->bad, __ATOMIC_RELAXED)) {
		size_t k = g->end - g->pos < n ? (size_t)(g->end - g->pos) : n;
		if (cairn_sha256_update(g->h, b, k)) {
			cairn_err_clear();
			vdigest_stop(g);
			break;
		}
		if (g->cur)
			memcpy(g->cur + (g->pos - g->start), b, k);
		g->pos += k;
		b += k;
		n -= k;
		if (g->pos == g->end)
			vdigest_close(g);
	}
	if (g->cur && __atomic_load_n(&g->bad, __ATOMIC_RELAXED))
		vdigest_drop_cur(g);
}

/* After the seal: the rest is the last part, and no part follows it
 * (vdigest_close took a copy for one). */
static void vdigest_finish(vdigest *g)
{
	if (!g)
		return;
	if (!__atomic_load_n(&g->bad, __ATOMIC_RELAXED) && g->pos > g->start)
		vdigest_close(g);
	vdigest_drop_cur(g);
}

/* The digest of part no, if known, and its copy if one was kept (*mem,
 * the caller's to pm_put from then on). */
static int vdigest_get(vdigest *g, unsigned no, uint64_t len, uint8_t out[32],
		       uint8_t **mem, uint64_t *memcap)
{
	int ok = 0;

	*mem = NULL;
	if (!g)
		return 0;
	pthread_mutex_lock(&g->mu);
	/* The lengths agree unless mpu_pump and the tap disagree on the
	 * parts: then the client hashes, as without a digest. */
	if (no >= 1 && no <= g->ndone && g->done[no - 1].len == len) {
		memcpy(out, g->done[no - 1].d, 32);
		*mem = g->done[no - 1].mem;
		*memcap = g->done[no - 1].memcap;
		g->done[no - 1].mem = NULL;
		ok = 1;
	}
	pthread_mutex_unlock(&g->mu);
	return ok;
}

/* ---- multipart upload of a (growing) segment file ---- */

/*
 * Several files streaming at once (a checkpoint saved by several threads)
 * share the store's bandwidth.  With equal shares they would all finish at
 * the end, together, and every one of their completions (on some stores a
 * copy of the whole object: s3rver concatenates the parts) would wait
 * until then, with nothing else to overlap.  So the oldest upload of a
 * volume in flight may have stream_inflight parts in flight, every younger
 * one a quarter of that (at least one): uploads finish roughly in the
 * order they started, a finished file is remote (and its completion done)
 * while the next ones still upload, and a single file keeps the whole
 * stream_inflight.  Registered from mpu_open until all its parts are in
 * (mpu_finish: then it only completes, on one of the VOL_UPLOADERS
 * workers, while the next upload has the whole stream_inflight) or
 * vol_mpu_free.
 */
static pthread_mutex_t mpu_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct vmpu *mpu_reg;
static uint64_t mpu_reg_seq;

static void mpu_reg_add(struct vmpu *m)
{
	pthread_mutex_lock(&mpu_reg_mu);
	m->reg_seq = ++mpu_reg_seq;
	m->reg_prev = NULL;
	m->reg_next = mpu_reg;
	if (mpu_reg)
		mpu_reg->reg_prev = m;
	mpu_reg = m;
	pthread_mutex_unlock(&mpu_reg_mu);
}

static void mpu_reg_del(struct vmpu *m)
{
	if (!m->reg_seq)
		return;
	pthread_mutex_lock(&mpu_reg_mu);
	if (m->reg_prev)
		m->reg_prev->reg_next = m->reg_next;
	else
		mpu_reg = m->reg_next;
	if (m->reg_next)
		m->reg_next->reg_prev = m->reg_prev;
	m->reg_seq = 0;
	pthread_mutex_unlock(&mpu_reg_mu);
}

/* How many parts m may have in flight now. */
static unsigned mpu_limit(const struct vmpu *m)
{
	int older = 0;

	pthread_mutex_lock(&mpu_reg_mu);
	for (const struct vmpu *x = mpu_reg; x && !older; x = x->reg_next)
		older = x->vol == m->vol && x->reg_seq < m->reg_seq;
	pthread_mutex_unlock(&mpu_reg_mu);
	if (!older || !m->reg_seq)
		return m->nslots;
	return m->nslots / 4 ? m->nslots / 4 : 1;
}

typedef struct intentop {
	uint64_t seg;
	const char *upload_id;
} intentop;

static int intent_fn(meta_txn *t, void *arg)
{
	intentop *p = arg;
	meta_seg s;
	int rc = meta_seg_get(t, p->seg, &s);
	if (rc)
		return rc;
	snprintf(s.upload_id, sizeof s.upload_id, "%s", p->upload_id);
	return meta_seg_update(t, &s);
}

void vol_mpu_free(struct vmpu *m)
{
	if (!m)
		return;
	mpu_reg_del(m);
	objstore_batch_free(m->b);  /* waits for parts in flight */
	if (m->fd >= 0)
		close(m->fd);
	for (unsigned i = 0; m->slots && i < m->nslots; i++)
		pm_put(m->vol, m->slots[i].mem, m->slots[i].memcap);
	free(m->slots);
	free(m->parts);
	if (m->dg_own)
		vdigest_free(m->dg);
	free(m);
}

static void mpu_abort(struct vmpu *m)
{
	cairn_volume *vol = m->vol;
	objstore_batch_free(m->b);
	m->b = NULL;
	if (m->upload_id[0] && objstore_mpu_abort(vol->os, m->key, m->upload_id))
		CAIRN_WARN(VOL_MOD, "abort of the upload of %s (left for GC): %s", m->key,
			   cairn_errmsg());
	vol_mpu_free(m);
}

static int mpu_open(cairn_volume *vol, uint64_t seg, const char *key,
		    struct vmpu **out)
{
	char path[4096];
	intentop ip;
	struct vmpu *m;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof *m);
	if (!m)
		return cairn_errf(CAIRN_E_NOMEM, "upload of %s", key);
	m->vol = vol;
	m->seg = seg;
	m->fd = -1;
	m->next_no = 1;
	snprintf(m->key, sizeof m->key, "%s", key);
	m->nslots = vol->o.stream_inflight;
	m->slots = calloc(m->nslots, sizeof *m->slots);
	if (!m->slots) {
		rc = cairn_errf(CAIRN_E_NOMEM, "upload of %s: part slots", key);
		goto fail;
	}
	vol_seg_path(vol, seg, path, sizeof path);
	m->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (m->fd < 0) {
		rc = cairn_errf(CAIRN_E_IO, "upload of %s: open %s: %s", key, path,
				strerror(errno));
		goto fail;
	}
	if ((rc = objstore_batch_new(vol->os, &m->b)))
		goto fail;
	if ((rc = objstore_mpu_create(vol->os, key, m->upload_id)))
		goto fail;
	mpu_reg_add(m);
	/* Invariant 1: the id is durable before any part goes out. */
	ip.seg = seg;
	ip.upload_id = m->upload_id;
	rc = meta_write(vol->meta, META_SYNCED, META_OP_SEGMENT, intent_fn, &ip, NULL);
	if (rc) {
		rc = cairn_err_wrap(rc, "record the upload intent of %s", key);
		goto fail;
	}
	*out = m;
	return 0;
fail:
	if (m->upload_id[0])
		mpu_abort(m);
	else
		vol_mpu_free(m);
	return rc;
}

/* Part p is no longer in flight (sent, or given up): its slot and its
 * copy are free. */
static void part_done(struct vmpu *m, vpart *p)
{
	pm_put(m->vol, p->mem, p->memcap);
	p->mem = NULL;
	p->busy = 0;
	m->busy--;
}

/* Reap one finished part: record it, or resubmit a failed one, or give up
 * after VOL_PART_TRIES tries. */
static int mpu_reap(struct vmpu *m)
{
	cairn_volume *vol = m->vol;
	cairn_obj_req *done = NULL;
	int rc = objstore_batch_reap(m->b, &done);
	if (!done)
		return cairn_err_wrap(rc ? rc : CAIRN_E_INTERNAL, "upload of %s: reap", m->key);
	vpart *p = done->user;
	if (done->rc) {
		/* What writers at the cap and remote fsyncs will name. */
		pthread_mutex_lock(&vol->up_mu);
		snprintf(vol->last_err, sizeof vol->last_err, "%s", done->msg);
		if (!vol->fail_since_ms)
			vol->fail_since_ms = vol_now_ms();
		pthread_mutex_unlock(&vol->up_mu);
		p->tries++;
		__atomic_add_fetch(&vol->st.stream_part_retries, 1, __ATOMIC_RELAXED);
		if (p->tries < VOL_PART_TRIES) {
			CAIRN_WARN(VOL_MOD, "upload of %s: part %u failed (try %u), retrying: %s",
				   m->key, p->r.part_no, p->tries, done->msg);
			sleep_ms(20u << p->tries);
			done->rc = 0;
			done->msg[0] = 0;
			rc = objstore_submit(m->b, done);
			if (!rc)
				return 0;
		} else {
			rc = cairn_errf(done->rc, "part %u failed %u times: %s",
					p->r.part_no, p->tries, done->msg);
		}
		part_done(m, p);
		return rc;
	}
	if (m->nparts == m->cparts) {
		size_t nc = m->cparts ? m->cparts * 2 : 64;
		cairn_mpu_part *np = realloc(m->parts, nc * sizeof *np);
		if (!np) {
			part_done(m, p);
			return cairn_errf(CAIRN_E_NOMEM, "upload of %s: part list", m->key);
		}
		m->parts = np;
		m->cparts = nc;
	}
	m->parts[m->nparts] = done->part;
	m->parts[m->nparts].number = done->part_no;
	m->parts[m->nparts].size = done->src.len;
	m->nparts++;
	uint64_t len = done->src.len;
	part_done(m, p);
	__atomic_add_fetch(&vol->st.stream_parts, 1, __ATOMIC_RELAXED);
	if (m->counted)
		sp_sub(vol, m->counted, len);
	return 0;
}

/* Send the parts that the first avail bytes of the file allow: whole parts
 * only, unless final (then the rest as the last part). */
static int mpu_pump(struct vmpu *m, uint64_t avail, int final)
{
	cairn_volume *vol = m->vol;
	int rc;

	while (m->next < avail) {
		uint64_t ps = objstore_part_size(vol->os, 0, m->next_no, vol->o.stream_part_size);
		uint64_t left = avail - m->next, len = left < ps ? left : ps;
		unsigned i;
		if (left < ps && !final)
			break;
		if (m->next_no > CAIRN_MPU_MAX_PARTS)
			return cairn_errf(CAIRN_E_RANGE, "upload of %s: more than %u parts",
					  m->key, CAIRN_MPU_MAX_PARTS);
		while (m->busy >= mpu_limit(m))
			if ((rc = mpu_reap(m)))
				return rc;
		for (i = 0; m->slots[i].busy; i++)
			;
		vpart *p = &m->slots[i];
		memset(p, 0, sizeof *p);
		p->busy = 1;
		p->r.op = OBJ_OP_MPU_PART;
		p->r.key = m->key;
		p->r.upload_id = m->upload_id;
		p->r.part_no = m->next_no;
		p->r.src.buf = NULL;
		p->r.src.fd = m->fd;
		p->r.src.off = m->next;
		p->r.src.len = len;
		p->r.src.sha256 = NULL;
		if (vdigest_get(m->dg, m->next_no, len, p->sha, &p->mem, &p->memcap)) {
			p->r.src.sha256 = p->sha;
			__atomic_add_fetch(&vol->st.stream_part_digests, 1, __ATOMIC_RELAXED);
		}
		if (p->mem) {
			p->r.src.buf = p->mem;
			p->r.src.fd = -1;
			p->r.src.off = 0;
			__atomic_add_fetch(&vol->st.stream_parts_mem, 1, __ATOMIC_RELAXED);
		}
		p->r.user = p;
		if ((rc = objstore_submit(m->b, &p->r))) {
			m->busy++;
			part_done(m, p);
			return cairn_err_wrap(rc, "upload of %s: part %u", m->key, m->next_no);
		}
		m->busy++;
		m->next += len;
		m->next_no++;
	}
	return 0;
}

static int part_cmp(const void *a, const void *b)
{
	const cairn_mpu_part *x = a, *y = b;
	return x->number < y->number ? -1 : x->number > y->number;
}

static int mpu_finish(struct vmpu *m, uint64_t size)
{
	int rc;
	struct stat st;

	if (fstat(m->fd, &st) != 0 || (uint64_t)st.st_size != size)
		return cairn_errf(CAIRN_E_CORRUPT, "upload of %s: local file has %lld bytes, "
				  "sealed size %" PRIu64, m->key, (long long)st.st_size, size);
	if ((rc = mpu_pump(m, size, 1)))
		return rc;
	while (m->busy)
		if ((rc = mpu_reap(m)))
			return rc;
	/* Every part is in: only the completion is left (on some stores a
	 * copy of the whole object), which takes no part slot, so the next
	 * upload becomes the oldest and gets stream_inflight parts now. */
	mpu_reg_del(m);
	qsort(m->parts, m->nparts, sizeof *m->parts, part_cmp);
	rc = objstore_mpu_complete(m->vol->os, m->key, m->upload_id, m->parts, m->nparts);
	if (rc)
		return cairn_err_wrap(rc, "complete the upload of %s (%zu parts)", m->key,
				      m->nparts);
	return 0;
}

int vol_stream_upload(cairn_volume *vol, vseg *s)
{
	struct vmpu *m = s->job;
	int rc;

	if (!m && (rc = mpu_open(vol, s->id, s->key, &m)))
		return rc;  /* the store's message names the key */
	m->counted = NULL;
	if ((rc = mpu_finish(m, s->size))) {
		char msg[256];
		cairn_err_copy(msg, sizeof msg);
		mpu_abort(m);
		return cairn_errf(rc, "%s", msg);
	}
	vol_mpu_free(m);
	if ((rc = vol_seg_set_state(vol, s->id, META_SEG_UPLOADED, s->size, NULL, META_RELAXED)))
		return cairn_err_wrap(rc, "record upload of %s", s->key);
	CAIRN_DEBUG(VOL_MOD, "stream segment %s uploaded (%" PRIu64 " bytes)", s->key, s->size);
	return 0;
}

void vol_mpu_abort_recorded(cairn_volume *vol, const meta_seg *s)
{
	if (!s->upload_id[0] || !s->key[0])
		return;
	/* Parts of an upload that was never completed; the upload is redone
	 * from the local file.  A failure here leaves parts for GC. */
	if (objstore_mpu_abort(vol->os, s->key, s->upload_id) != 0) {
		CAIRN_WARN(VOL_MOD, "recovery: abort of the upload of %s: %s", s->key,
			   cairn_errmsg());
		cairn_err_clear();
	}
}

/* ---- deduplication ---- */

/*
 * A chunk whose SHA-256 is in the chunk table is not appended to the spool
 * (seg_stream's hook, on the writer thread, while the chunk buffer is still
 * held): the stream references the stored chunk instead.
 *
 *  hook: lookup (read txn): hash -> chunk -> segment; cheap checks (same
 *        raw length, raw codec, segment UPLOADED, crc32c of our bytes ==
 *        the stored crc32c)
 *    |        fails: 0 (append the frame as usual)
 *    v
 *  pin_fn (one relaxed meta_write): re-check the same in the transaction;
 *        extent [pos, pos+len) of the stream's pin inode -> the chunk
 *        (its reference; the pin is created here at the first hit)
 *    |        fails (chunk gone, moved, segment dying): 0 (append)
 *    v
 *  1: ready list entry with dedup = chunk id; no frame
 *    |
 *  stream_commit (scommit_fn, one transaction): the file's extent takes
 *        its own reference, then pin_drop truncates the pin to 0
 *
 * The pin is an inode with no name in the orphan table (meta_pin_create),
 * open while the stream lives: vol_stream_end / vol_stream_free close it
 * (meta frees it with any extent left), and meta_open frees it after a
 * crash.  So between the hook and the commit a pending hit always holds a
 * committed reference: gc (which deletes a chunk only at 0 references and
 * a segment only with no chunk) cannot take the bytes away.
 */

static int dedup_usable(const meta_chunk *c, const meta_seg *s, size_t len)
{
	return c->refs > 0 && c->codec == SEG_CODEC_RAW && c->raw_len == len &&
	       c->stored_len == c->raw_len && s->state == META_SEG_UPLOADED && s->key[0];
}

typedef struct pinop {
	uint64_t pin;           /* in: the stream's pin, 0: create one */
	uint64_t created;       /* out: the pin created (0: none) */
	uint64_t chunk, pos;
	size_t len;
	uint32_t crc;
	const uint8_t *hash;
} pinop;

static int pin_fn(meta_txn *t, void *arg)
{
	pinop *p = arg;
	meta_chunk c;
	meta_seg s;
	meta_attr a;
	uint64_t pin = p->pin;
	int rc;

	p->created = 0;
	if ((rc = meta_chunk_get(t, p->chunk, &c)) || (rc = meta_seg_get(t, c.seg, &s)))
		return rc;
	if (memcmp(c.hash, p->hash, META_HASH_LEN) || c.crc != p->crc ||
	    !dedup_usable(&c, &s, p->len))
		return cairn_errf(CAIRN_E_NOTFOUND, "chunk %" PRIu64 " changed since the lookup",
				  p->chunk);
	if (!pin) {
		if ((rc = meta_pin_create(t, &a)))
			return rc;
		pin = p->created = a.ino;
	}
	return meta_extent_write(t, pin, p->pos, p->len, p->chunk, 0);
}

/* In the commit's transaction: the pin's references are now the file's. */
static int pin_drop(meta_txn *t, uint64_t pin)
{
	meta_sattr sa = { .mask = META_SET_SIZE, .size = 0 };
	if (!pin)
		return 0;
	int rc = meta_setattr(t, pin, &sa, NULL);
	return rc ? cairn_err_wrap(rc, "release dedup pin %" PRIu64, pin) : 0;
}

static int dedup_hook(void *arg, const uint8_t *buf, size_t len, uint64_t pos,
		      const uint8_t hash[32], uint64_t *chunk_id, uint32_t *crc)
{
	vdedup *d = arg;
	cairn_volume *vol = d->vol;
	meta_txn *t;
	meta_chunk c;
	meta_seg s;
	pinop p = { .pin = d->pin, .pos = pos, .len = len, .hash = hash };
	int rc;

	if (d->off || meta_read_begin(vol->meta, &t)) {
		cairn_err_clear();
		return 0;
	}
	rc = meta_chunk_find(t, hash, &p.chunk);
	if (!rc)
		rc = meta_chunk_get(t, p.chunk, &c);
	if (!rc)
		rc = meta_seg_get(t, c.seg, &s);
	meta_read_end(t);
	if (rc || !dedup_usable(&c, &s, len)) {
		cairn_err_clear();
		d->misses++;
		return 0;
	}
	/* The cheap confirmation of the hash: the stored crc32c. */
	p.crc = cairn_crc32c(0, buf, len);
	if (p.crc != c.crc) {
		CAIRN_WARN(VOL_MOD, "chunk %" PRIu64 " has our SHA-256 but another crc32c: "
			   "not deduplicated", p.chunk);
		d->misses++;
		return 0;
	}
	rc = meta_write(vol->meta, META_RELAXED, META_OP_EXTENT, pin_fn, &p, NULL);
	if (rc) {
		CAIRN_DEBUG(VOL_MOD, "dedup of chunk %" PRIu64 " declined: %s", p.chunk,
			    cairn_errmsg());
		cairn_err_clear();
		d->misses++;
		return 0;
	}
	if (p.created) {
		d->pin = p.created;
		if (meta_ino_open(vol->meta, d->pin) == 0) {
			d->pin_open = 1;
		} else {
			/* Without an open count nothing frees the pin before the
			 * next meta_open: stop adding to it (the commit still
			 * empties it). */
			CAIRN_WARN(VOL_MOD, "dedup pin %" PRIu64 ": %s (dedup off for this "
				   "file)", d->pin, cairn_errmsg());
			cairn_err_clear();
			d->off = 1;
		}
	}
	d->hits++;
	d->hit_bytes += len;
	*chunk_id = p.chunk;
	*crc = p.crc;
	return 1;
}

/* Close the stream's pin: meta frees it, and whatever it still holds. */
static void pin_close(cairn_volume *vol, vdedup *d)
{
	if (d->pin_open && meta_ino_close(vol->meta, d->pin)) {
		CAIRN_WARN(VOL_MOD, "dedup pin %" PRIu64 " (freed at the next open): %s", d->pin,
			   cairn_errmsg());
		cairn_err_clear();
	}
	d->pin = 0;
	d->pin_open = 0;
}

/* Bytes [coff, coff+n) of stored chunk id (a dedup hit not yet committed,
 * held by the pin) into dst. */
static int read_stored(cairn_volume *vol, uint64_t id, uint64_t coff, uint64_t n,
		       uint8_t *dst)
{
	meta_txn *t;
	meta_chunk c;
	meta_seg s;
	uint8_t *raw;
	int rc;

	if ((rc = meta_read_begin(vol->meta, &t)))
		return rc;
	rc = meta_chunk_get(t, id, &c);
	if (!rc)
		rc = meta_seg_get(t, c.seg, &s);
	meta_read_end(t);
	if (rc)
		return cairn_err_wrap(rc, "stored chunk %" PRIu64 " of a stream", id);
	if (coff > c.raw_len || n > c.raw_len - coff)
		return cairn_errf(CAIRN_E_CORRUPT, "stored chunk %" PRIu64 " has %u bytes, "
				  "the stream wants %" PRIu64 "+%" PRIu64, id, c.raw_len, coff, n);
	if (coff == 0 && n == c.raw_len)
		return vol_chunk_read(vol, &c, &s, dst);
	if (!(raw = malloc(c.raw_len)))
		return cairn_errf(CAIRN_E_NOMEM, "chunk of %u bytes", c.raw_len);
	rc = vol_chunk_read(vol, &c, &s, raw);
	if (!rc)
		memcpy(dst, raw + coff, n);
	free(raw);
	return rc;
}

/* ---- the stream of one inode ---- */

typedef struct scommit {
	uint64_t ino, seg, hwm;
	uint64_t pin;           /* the stream's pin inode, 0: none */
	const seg_stream_chunk *ch;
	size_t n;
} scommit;

static int scommit_fn(meta_txn *t, void *arg)
{
	scommit *p = arg;
	meta_seg s;
	meta_attr a;
	int rc;

	if ((rc = meta_seg_get(t, p->seg, &s)))
		return rc;
	if (s.size < p->hwm) {
		s.size = p->hwm;
		if ((rc = meta_seg_update(t, &s)))
			return rc;
	}
	rc = meta_getattr(t, p->ino, &a);
	if (rc == CAIRN_E_NOTFOUND) {
		cairn_err_clear();  /* removed: its bytes are garbage for GC */
		return pin_drop(t, p->pin);
	}
	if (rc)
		return rc;
	for (size_t i = 0; i < p->n; i++) {
		const seg_stream_chunk *sc = &p->ch[i];
		meta_chunk c;
		if (sc->dedup) {
			/* A dedup hit: the pin holds its reference until the
			 * extent below takes one of its own (pin_drop). */
			if ((rc = meta_extent_write(t, p->ino, sc->pos, sc->fr.raw_len, sc->dedup,
						    0)))
				return cairn_err_wrap(rc, "extent of inode %" PRIu64
						      " (stored chunk %" PRIu64 ")", p->ino,
						      sc->dedup);
			continue;
		}
		memset(&c, 0, sizeof c);
		c.seg = p->seg;
		c.seg_off = sc->fr.off;
		c.stored_len = sc->fr.stored_len;
		c.raw_len = sc->fr.raw_len;
		c.codec = (uint8_t)sc->fr.codec;
		c.crc = sc->fr.crc;
		memcpy(c.hash, sc->hash, sizeof c.hash);
		if ((rc = meta_chunk_add(t, &c)))
			return rc;
		if ((rc = meta_extent_write(t, p->ino, sc->pos, sc->fr.raw_len, c.id, 0)))
			return cairn_err_wrap(rc, "extent of inode %" PRIu64, p->ino);
	}
	return pin_drop(t, p->pin);
}

/* Make the stream's appended chunks durable and committed (invariant 2). */
static int stream_commit(cairn_volume *vol, vinode *vi, vstream *st)
{
	seg_writer *w = seg_stream_writer(st->ss);
	scommit p = { .ino = vi->ino, .seg = st->seg };
	seg_stream_chunk *ch;
	int rc;

	st->since_commit = 0;
	if ((rc = seg_stream_drain(st->ss)))
		return stream_broken(vol, rc);
	p.n = seg_stream_ready(st->ss);
	if (!p.n)
		return 0;
	/* Every hit so far is in the ready list (drained): the pin's extents
	 * are exactly those of the chunks committed here. */
	p.pin = st->dd.pin;
	/* The meta_write callback must not block: copy the list first. */
	ch = malloc(p.n * sizeof *ch);
	if (!ch)
		return cairn_errf(CAIRN_E_NOMEM, "commit of %zu chunks", p.n);
	for (size_t i = 0; i < p.n; i++)
		if ((rc = seg_stream_chunk_get(st->ss, i, &ch[i]))) {
			free(ch);
			return rc;
		}
	p.ch = ch;
	if ((rc = seg_writer_sync(w, &p.hwm))) {
		free(ch);
		return stream_broken(vol, rc);
	}
	rc = meta_write(vol->meta, META_RELAXED, META_OP_EXTENT, scommit_fn, &p, NULL);
	free(ch);
	if (rc) {
		rc = cairn_err_wrap(rc, "commit %zu chunks of stream segment %s", p.n, st->key);
		if (rc == CAIRN_E_IO)
			stream_broken(vol, rc);
		return rc;
	}
	seg_stream_take(st->ss, p.n);
	__atomic_add_fetch(&vol->st.commits, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&vol->st.chunks_staged, p.n, __ATOMIC_RELAXED);
	return 0;
}

/* The store failed for good: abort the upload, the segment goes whole
 * after the file ends (invariant 6). */
static void upload_failed(cairn_volume *vol, vstream *st)
{
	char msg[256];
	cairn_err_copy(msg, sizeof msg);
	CAIRN_ERROR(VOL_MOD, "stream segment %s: multipart upload aborted (it is uploaded "
		    "whole once the file is closed): %s", st->key, msg);
	pthread_mutex_lock(&vol->up_mu);
	if (!vol->last_err[0])
		snprintf(vol->last_err, sizeof vol->last_err, "%s", msg);
	vol->st.upload_failures++;
	if (!vol->fail_since_ms)
		vol->fail_since_ms = vol_now_ms();
	pthread_mutex_unlock(&vol->up_mu);
	cairn_err_clear();
	mpu_abort(st->m);
	st->m = NULL;
	vdigest_stop(st->dg);  /* the whole-file upload hashes */
}

/* Wait below the upload cap (invariant 5): reap own parts first, they are
 * only ever reaped here. */
static int stream_cap(cairn_volume *vol, vstream *st)
{
	for (;;) {
		pthread_mutex_lock(&vol->up_mu);
		uint64_t total = vol->q_bytes + __atomic_load_n(&vol->cur_size, __ATOMIC_RELAXED) +
				 __atomic_load_n(&vol->sp_bytes, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&vol->up_mu);
		if (total < vol->o.upload_cap)
			return 0;
		if (st->m && st->m->busy) {
			if (mpu_reap(st->m))
				upload_failed(vol, st);
			continue;
		}
		/* No part of ours in flight, yet spool bytes count: whole
		 * parts may be held back in the direct spool's buffer and
		 * writes in flight only (invariant 3); flush them into the
		 * file and send what that allows before waiting. */
		seg_writer *w = seg_stream_writer(st->ss);
		if (st->m && seg_writer_written(w) < seg_writer_size(w)) {
			int rc = seg_writer_flush(w);
			if (rc)
				return stream_broken(vol, cairn_err_wrap(rc, "spool %s", st->path));
			if (mpu_pump(st->m, seg_writer_written(w), 0))
				upload_failed(vol, st);
			if (st->m && st->m->busy)
				continue;
		}
		return vol_cap_wait(vol);
	}
}

static int feed(cairn_volume *vol, vinode *vi, vstream *st, const uint8_t *buf,
		uint64_t len)
{
	seg_writer *w = seg_stream_writer(st->ss);
	int rc;

	while (len) {
		size_t n = len < VOL_FEED_PIECE ? (size_t)len : VOL_FEED_PIECE;
		if ((rc = stream_cap(vol, st)))
			return rc;
		if ((rc = seg_stream_write(st->ss, buf, n)))
			return stream_broken(vol, cairn_err_wrap(rc, "inode %" PRIu64, vi->ino));
		/* The writer thread appends in the background: account for
		 * whatever the file grew by since last time. */
		uint64_t now = seg_writer_size(w), grew = now - st->seen;
		st->seen = now;
		if (!st->link) {
			st->counted += grew;
			__atomic_add_fetch(&vol->sp_bytes, grew, __ATOMIC_RELAXED);
		}
		st->since_commit += n;
		buf += n;
		len -= n;
		/* Start the writeback of what the writer thread has written, so
		 * that the disk works while we chunk and hash (as the kernel
		 * would for dd), and the commit's fdatasync finds little left.
		 * A hint: its failure is ignored, the fdatasync decides. */
		if (now - st->flushed >= VOL_FEED_PIECE) {
			(void)sync_file_range(st->rfd, (off64_t)st->flushed,
					      (off64_t)(now - st->flushed), SYNC_FILE_RANGE_WRITE);
			st->flushed = now;
		}
		if (st->since_commit >= vol->o.stream_commit_bytes &&
		    (rc = stream_commit(vol, vi, st)))
			return rc;
		/* Parts cover only bytes already in the file (invariant 3):
		 * a direct spool's buffer and its writes in flight are not. */
		if (st->m && mpu_pump(st->m, seg_writer_written(w), 0))
			upload_failed(vol, st);
	}
	return 0;
}

int vol_stream_candidate(const cairn_volume *vol, const vinode *vi)
{
	const vbuf *h = vi->head;
	return !vi->st && vol->o.stream_threshold != UINT64_MAX && h && h == vi->tail &&
	       !h->gen && h->off == 0 && h->len == vi->size;
}

static int stream_start(cairn_volume *vol, vinode *vi)
{
	seg_stream_opts so = { .avg_chunk = vol->o.stream_chunk_avg };
	meta_seg ns;
	vstream *st;
	seg_id id;
	int rc;

	st = calloc(1, sizeof *st);
	if (!st)
		return cairn_errf(CAIRN_E_NOMEM, "stream of inode %" PRIu64, vi->ino);
	st->rfd = -1;
	st->dd.vol = vol;
	if (!vol->o.no_dedup) {
		so.dedup = dedup_hook;
		so.dedup_arg = &st->dd;
	}
	rc = vol_seg_new(vol, 1, &ns, &id);
	if (rc) {
		free(st);
		return cairn_err_wrap(rc, "inode %" PRIu64, vi->ino);
	}
	st->seg = ns.id;
	snprintf(st->key, sizeof st->key, "%s", ns.key);
	vol_seg_path(vol, st->seg, st->path, sizeof st->path);
	if (unlink(st->path) == 0)
		CAIRN_WARN(VOL_MOD, "removed stale spool %s", st->path);
	/* A store that takes a whole file by a link gets the sealed spool in
	 * one put (vol_stage.c): parts would copy every byte.  Every spool is
	 * written with O_DIRECT (no copy into the page cache: the dominant
	 * cost of a buffered write); parts follow the bytes whose writes
	 * completed (seg_writer_written), and reads of the spool flush the
	 * writer's buffer first (vol_stream_overlay). */
	st->link = !vol->o.stream_multipart && vol_store_links(vol, 0);
	so.direct = 1;
	if (!vol->o.no_upload && !st->link && (st->dg = vdigest_new(vol))) {
		so.tap = vdigest_tap;
		so.tap_arg = st->dg;
	}
	if ((rc = seg_stream_create(vol->u, st->path, &id, &so, &st->ss)))
		goto fail;
	st->rfd = open(st->path, O_RDONLY | O_CLOEXEC);
	if (st->rfd < 0) {
		rc = cairn_errf(CAIRN_E_IO, "open %s: %s", st->path, strerror(errno));
		goto fail;
	}
	if (!vol->o.no_upload && !st->link &&
	    mpu_open(vol, st->seg, st->key, &st->m)) {
		CAIRN_WARN(VOL_MOD, "stream segment %s: cannot start its upload now (it is "
			   "uploaded once the file ends): %s", st->key, cairn_errmsg());
		cairn_err_clear();
		st->m = NULL;
		vdigest_stop(st->dg);  /* the whole-file upload hashes */
	}
	if (st->m) {
		st->m->counted = &st->counted;
		st->m->dg = st->dg;
	}
	__atomic_add_fetch(&vol->st.streams, 1, __ATOMIC_RELAXED);
	CAIRN_DEBUG(VOL_MOD, "inode %" PRIu64 ": streaming to %s", vi->ino, st->key);
	vi->st = st;
	/* The buffered head of the file is the stream's first bytes. */
	vbuf *x = vi->head;
	rc = feed(vol, vi, st, x->data, x->len);
	vi->head = vi->tail = NULL;
	vi->dirty_bytes = 0;
	free(x->data);
	free(x);
	return rc;
fail:
	seg_stream_close(st->ss);
	if (st->rfd >= 0)
		close(st->rfd);
	unlink(st->path);
	vdigest_free(st->dg);
	free(st);
	return rc;
}

int vol_stream_maybe_start(cairn_volume *vol, vinode *vi)
{
	if (!vol_stream_candidate(vol, vi) || vi->dirty_bytes < vol->o.stream_threshold)
		return 0;
	return stream_start(vol, vi);
}

int vol_stream_write(cairn_volume *vol, vinode *vi, const uint8_t *buf,
		     uint64_t len, uint64_t off, int *taken)
{
	vstream *st = vi->st;
	*taken = 0;
	if (!st)
		return 0;
	if (off == seg_stream_pos(st->ss)) {
		*taken = 1;
		return feed(vol, vi, st, buf, len);
	}
	/* Out of order: the stream ends here, the write takes the small-file
	 * path and its extents supersede the stream's. */
	return vol_stream_end(vol, vi);
}

static void stream_free(vstream *st)
{
	seg_stream_close(st->ss);  /* no more taps */
	if (st->rfd >= 0)
		close(st->rfd);
	vdigest_free(st->dg);
	free(st);
}

void vol_stream_free(cairn_volume *vol, vinode *vi)
{
	vstream *st = vi->st;
	if (!st)
		return;
	if (st->m) {
		st->m->counted = NULL;
		vol_mpu_free(st->m);  /* recovery aborts the recorded upload */
	}
	__atomic_sub_fetch(&vol->sp_bytes, st->counted, __ATOMIC_RELAXED);
	seg_stream_drain(st->ss);  /* the hook may still be using the pin */
	cairn_err_clear();
	pin_close(vol, &st->dd);
	stream_free(st);
	vi->st = NULL;
}

int vol_stream_end(cairn_volume *vol, vinode *vi)
{
	vstream *st = vi->st;
	seg_writer *w;
	uint64_t size = 0, before;
	int rc;

	if (!st)
		return 0;
	w = seg_stream_writer(st->ss);
	if ((rc = seg_stream_cut(st->ss)))
		return stream_broken(vol, rc);
	if ((rc = stream_commit(vol, vi, st)))
		return rc;
	pin_close(vol, &st->dd);  /* empty after the commit */
	before = st->seen;
	if ((rc = seg_writer_seal(w, &size)))
		return stream_broken(vol, cairn_err_wrap(rc, "seal stream segment %s", st->key));
	if ((rc = vol_seg_set_state(vol, st->seg, META_SEG_SEALED, size, NULL, META_RELAXED)))
		return stream_broken(vol, cairn_err_wrap(rc, "seal stream segment %s", st->key));
	vdigest_finish(st->dg);  /* the tail part's */
	/* The tail goes out now, not when an uploader worker (uploads
	 * start in queue order) gets to this one: files that end together
	 * have their last parts in flight together, and their completions
	 * follow one another sooner. */
	if (st->m && mpu_pump(st->m, size, 1))
		upload_failed(vol, st);
	/* Hand over: the uploader reaps the parts and completes; the
	 * stream's share of the cap moves to the upload queue. */
	uint64_t acct = st->counted + (st->link ? 0 : size - before);
	if (st->m) {
		st->m->counted = NULL;  /* the uploader reaps its parts now */
		if (st->m->dg == st->dg) {
			st->m->dg_own = st->dg != NULL;
			st->dg = NULL;  /* sealed: nothing more is tapped */
		}
	}
	__atomic_sub_fetch(&vol->sp_bytes, st->counted, __ATOMIC_RELAXED);
	st->counted = 0;
	rc = vol_upload_enqueue_stream(vol, st->seg, size, st->key, acct, st->m);
	if (rc) {
		vol_mpu_free(st->m);  /* recovery uploads it */
	}
	st->m = NULL;
	__atomic_add_fetch(&vol->st.segments_sealed, 1, __ATOMIC_RELAXED);
	CAIRN_DEBUG(VOL_MOD, "inode %" PRIu64 ": stream %s ended at %" PRIu64 " bytes; "
		    "dedup: %" PRIu64 " chunks (%" PRIu64 " bytes) referenced, %" PRIu64
		    " stored", vi->ino, st->key, size, st->dd.hits, st->dd.hit_bytes,
		    st->dd.misses);
	stream_free(st);
	vi->st = NULL;
	return rc;
}

int vol_stream_overlay(cairn_volume *vol, vinode *vi, uint8_t *buf, uint64_t off,
		       uint64_t n)
{
	vstream *st = vi->st;
	uint64_t end = off + n;
	int rc;

	if (!st)
		return 0;
	/* Chunks still with the writer thread are in neither list. */
	if ((rc = seg_stream_drain(st->ss)))
		return rc;
	size_t nready = seg_stream_ready(st->ss);
	/* A direct spool may hold appended chunks in its buffer only. */
	if (nready && (rc = seg_writer_flush(seg_stream_writer(st->ss))))
		return cairn_err_wrap(rc, "read spool %s", st->path);
	for (size_t i = 0; i < nready; i++) {
		seg_stream_chunk cc;
		const seg_stream_chunk *c = &cc;
		if ((rc = seg_stream_chunk_get(st->ss, i, &cc)))
			return rc;
		uint64_t lo = c->pos > off ? c->pos : off;
		uint64_t ce = c->pos + c->fr.raw_len;
		uint64_t hi = ce < end ? ce : end;
		size_t got = 0;
		if (lo >= hi)
			continue;
		if (c->dedup) {
			/* A dedup hit: the stored chunk, held by the pin. */
			if ((rc = read_stored(vol, c->dedup, lo - c->pos, hi - lo, buf + (lo - off))))
				return cairn_err_wrap(rc, "read inode %" PRIu64 " at %" PRIu64,
						      vi->ino, lo);
			continue;
		}
		/* Raw frames: the file's bytes follow the frame header. */
		rc = uring_read(vol->u, st->rfd, buf + (lo - off), hi - lo,
				c->fr.off + SEG_FRAME_HDR_SIZE + (lo - c->pos), &got);
		if (!rc && got != hi - lo)
			rc = cairn_errf(CAIRN_E_IO, "spool %s: short read at %" PRIu64, st->path,
					c->fr.off);
		if (rc)
			return cairn_err_wrap(rc, "read spool %s", st->path);
	}
	size_t plen;
	const uint8_t *p = seg_stream_pending(st->ss, &plen);
	uint64_t base = seg_stream_pos(st->ss) - plen;
	uint64_t lo = base > off ? base : off;
	uint64_t pe = base + plen, hi = pe < end ? pe : end;
	if (lo < hi)
		memcpy(buf + (lo - off), p + (lo - base), hi - lo);
	return 0;
}

/* ---- parallel reads of uploaded stream segments ---- */

/*
 * Readahead (per inode, under ra->mu, a leaf lock): whole chunks of
 * uploaded stream segments fetched ahead of a sequential reader into a few
 * slots.  Each read is classified when it arrives (vol_stream_ra_note,
 * before the read, so that concurrent reads see each other):
 *   - sequential: it is the first read of the file and starts at its
 *     beginning, or it starts where the previous read ended (give or take
 *     VOL_RA_SLACK), or exactly where one of the last VOL_RA_HIST reads
 *     ended, or ends exactly where one of them started (requests of one
 *     sequential reader arriving out of order: the kernel's readahead
 *     sends several at once, served by several daemon threads).  The
 *     window doubles, up to stream_readahead chunks;
 *   - inside the run: the window is open and the read lies within
 *     (win + 2) average chunks of the furthest end read so far (a late or
 *     early request of the same reader): the window is kept;
 *   - anything else resets it to 0 (random reads fetch only what they
 *     touch).
 * While the window is open, a read of a chunk that no slot holds starts
 * a slot for the whole chunk (a read of part of it: so that the other
 * requests for the same chunk wait for that one GET instead of each
 * decoding the chunk; a read of all of it: so that it is read straight
 * into reused slot memory instead of through a bounce buffer); a read of
 * part of a chunk in the file's first stream_chunk_avg bytes does too (the
 * window is still closed when the first requests of a sequential reader
 * that did not start at 0 arrive).
 * Readahead after a read fetches the window's chunks after the run's
 * front (ra->hi), not after a late request.  Up to win + VOL_RA_EXTRA
 * slots are live; a new one reuses the best victim (ra_victim): slots
 * already read from, the furthest behind first, before slots fetched
 * ahead and not read yet.  Slots are verified (crc32c of the chunk) when
 * their GET completes; a slot that failed is dropped and the chunk read
 * again the ordinary way.
 */
#define VOL_RA_MAX 64
#define VOL_RA_SLACK (1u << 20)
#define VOL_RA_HIST 8
#define VOL_RA_EXTRA 4  /* slots beyond the window: the chunks being read */
#define VOL_RA_BIG (128u << 20)  /* most bytes ahead for a large-piece reader */
/* Slots fetch their chunk's range widened to RA_ALIGN on both sides into
 * RA_ALIGN-aligned memory, so that a file:// store reads it straight into
 * the slot with O_DIRECT (no bounce copy; at most 2 * RA_ALIGN bytes more
 * from any store).  Slot memory grows in RA_GROW steps and is reused by
 * the next chunks: the first touch of fresh memory (the kernel zeroes
 * every page) was most of a cold read's CPU time, so a new chunk goes to a
 * slot that already holds enough memory where the victim order allows. */
#define RA_ALIGN 4096u
#define RA_GROW (1u << 20)

enum { RA_FREE = 0, RA_BUSY = 1, RA_READY = 2, RA_FAILED = 3 };

typedef struct raslot {
	uint64_t chunk;
	uint8_t *data;          /* the chunk's first byte, in mem */
	uint8_t *mem;           /* RA_ALIGN-aligned, cap bytes */
	uint32_t len, crc;
	uint32_t cap;           /* bytes allocated at mem */
	uint32_t doff;          /* data - mem: the GET starts aligned */
	unsigned pins;          /* volume_file_read_to calls using data:
				 * the slot is not reused while any */
	int state;
	int hit;                /* a read took bytes from it */
	uint64_t foff;          /* file offset of the chunk's first byte */
	uint64_t used;
	char key[SEG_KEY_MAX];
	cairn_obj_req r;
} raslot;

struct vra {
	pthread_mutex_t mu;
	cairn_obj_batch *b;
	raslot s[VOL_RA_MAX];
	uint64_t next_off, clock;
	uint64_t hi;            /* furthest end of the current sequential run */
	uint64_t h_off[VOL_RA_HIST], h_end[VOL_RA_HIST];  /* the last reads */
	unsigned h_i;
	unsigned win;
};

static struct vra *ra_get(cairn_volume *vol, vinode *vi)
{
	struct vra *ra = __atomic_load_n(&vi->ra, __ATOMIC_ACQUIRE);
	if (ra || !vi)
		return ra;
	pthread_mutex_lock(&vol->rd_mu);
	if (!vi->ra) {
		ra = calloc(1, sizeof *ra);
		if (ra && objstore_batch_new(vol->os, &ra->b) == 0) {
			pthread_mutex_init(&ra->mu, NULL);
			ra->next_off = UINT64_MAX;
			for (int i = 0; i < VOL_RA_HIST; i++)
				ra->h_off[i] = ra->h_end[i] = UINT64_MAX;
			__atomic_store_n(&vi->ra, ra, __ATOMIC_RELEASE);
		} else {
			cairn_err_clear();
			free(ra);
		}
	}
	ra = vi->ra;
	pthread_mutex_unlock(&vol->rd_mu);
	return ra;
}

/* Readahead memory of the whole volume (opts.readahead_mem): take n
 * bytes of it, 0 when that would pass the bound. */
static int ra_mem_take(cairn_volume *vol, uint64_t n)
{
	uint64_t *m = &vol->st.readahead_bytes;
	uint64_t cur = __atomic_load_n(m, __ATOMIC_RELAXED);
	do {
		if (cur + n > vol->o.readahead_mem)
			return 0;
	} while (!__atomic_compare_exchange_n(m, &cur, cur + n, 1, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return 1;
}

/* Give back slot x's memory (ra->mu held, x not busy nor pinned). */
static void ra_mem_drop(cairn_volume *vol, raslot *x)
{
	__atomic_sub_fetch(&vol->st.readahead_bytes, x->cap, __ATOMIC_RELAXED);
	free(x->mem);
	x->mem = x->data = NULL;
	x->cap = 0;
}

void vol_ra_free(cairn_volume *vol, vinode *vi)
{
	struct vra *ra = vi->ra;
	if (!ra)
		return;
	objstore_batch_free(ra->b);  /* waits for GETs in flight */
	for (int i = 0; i < VOL_RA_MAX; i++)
		ra_mem_drop(vol, &ra->s[i]);
	pthread_mutex_destroy(&ra->mu);
	free(ra);
	vi->ra = NULL;
}

/* Reap GETs until slot x is no longer busy (ra->mu held). */
static void ra_wait(cairn_volume *vol, struct vra *ra, raslot *x)
{
	while (x->state == RA_BUSY) {
		cairn_obj_req *done = NULL;
		objstore_batch_reap(ra->b, &done);
		if (!done)
			break;
		raslot *y = done->user;
		if (done->rc || done->got < (uint64_t)y->doff + y->len || done->crc != y->crc) {
			if (!done->rc)
				CAIRN_ERROR(VOL_MOD, "segment %s: chunk at %" PRIu64 " fails its "
					    "checksum (readahead; read again)", y->key, done->off);
			y->state = RA_FAILED;
		} else {
			y->state = RA_READY;
			__atomic_add_fetch(&vol->st.reads_parallel, 1, __ATOMIC_RELAXED);
		}
	}
	cairn_err_clear();
	if (x->state == RA_BUSY)  /* the batch failed: give up on it */
		x->state = RA_FAILED;
}

static raslot *ra_find(struct vra *ra, uint64_t chunk)
{
	for (int i = 0; i < VOL_RA_MAX; i++)
		if (ra->s[i].state != RA_FREE && ra->s[i].chunk == chunk)
			return &ra->s[i];
	return NULL;
}

/* How good a victim the finished slot x is (ra->mu held; higher is
 * better): a failed slot; one read from that lies past the run's furthest
 * end (an earlier run); one read from, the further behind the run the
 * better (the slot holding the run's end, or a lagging reader's chunk, is
 * the last of these); one fetched ahead and not read yet, the further
 * ahead the better; last, one not read yet that lies behind the run's end
 * (a lagging reader may still want it). */
static uint64_t ra_victim(const struct vra *ra, const raslot *x)
{
	const uint64_t C = 1ull << 60;
	uint64_t end = x->foff + x->len;
	if (x->state == RA_FAILED)
		return 4 * C;
	if (x->hit && x->foff >= ra->hi)
		return 3 * C;
	if (x->hit)
		return 2 * C + (end < ra->hi && ra->hi - end < C ? ra->hi - end : 0);
	if (x->foff >= ra->hi)
		return C + (x->foff - ra->hi < C ? x->foff - ra->hi : C - 1);
	return 0;
}

/* File offset of the first byte of e's chunk (0 for a chunk shared from
 * further into it, e.g. by a copy: only the victim order uses it). */
static uint64_t ra_foff(const meta_extent *e)
{
	return e->off >= e->chunk_off ? e->off - e->chunk_off : 0;
}

/* Start fetching chunk c of segment key (at file offset foff) into a slot
 * (ra->mu held); when limit slots are live, the best victim among the
 * finished ones is reused (ra_victim).  NULL when none is free. */
static raslot *ra_start(cairn_volume *vol, struct vra *ra, const meta_chunk *c,
			uint64_t foff, const char *key, unsigned limit)
{
	const uint64_t C = 1ull << 60;
	uint64_t from = c->seg_off + SEG_FRAME_HDR_SIZE;
	uint64_t a0 = from & ~(uint64_t)(RA_ALIGN - 1);
	uint64_t a1 = (from + c->raw_len + RA_ALIGN - 1) & ~(uint64_t)(RA_ALIGN - 1);
	uint64_t need = a1 - a0, vk = 0;
	raslot *v = NULL;
	unsigned live = 0;

	if (need > UINT32_MAX - RA_GROW)
		return NULL;
	/* Pinned slots (volume_file_read_to) are not counted: they cannot
	 * be reused, and the window must not shrink while replies go out. */
	for (int i = 0; i < VOL_RA_MAX; i++)
		if (ra->s[i].state != RA_FREE && !ra->s[i].pins)
			live++;
	if (live < limit) {
		/* A free slot, the one whose memory fits best. */
		for (int i = 0; i < VOL_RA_MAX; i++) {
			raslot *x = &ra->s[i];
			if (x->state != RA_FREE)
				continue;
			if (!v || (v->cap < need ? x->cap > v->cap
						 : x->cap >= need && x->cap < v->cap))
				v = x;
		}
	}
	int free_v = v != NULL;
	for (int i = 0; i < VOL_RA_MAX && !free_v; i++) {
		raslot *x = &ra->s[i];
		if ((x->state != RA_READY && x->state != RA_FAILED) || x->pins)
			continue;
		uint64_t k = ra_victim(ra, x);
		if (!v || k > vk || (k == vk && x->used < v->used)) {
			v = x;
			vk = k;
		}
	}
	if (!v)
		return NULL;
	if (!free_v && v->cap < need && vk >= 2 * C) {
		/* The victim's class holds slots no reader needs (failed, of an
		 * earlier run, read and behind the run; not the one at the
		 * run's end): one of them with enough memory will do. */
		raslot *f = NULL;
		uint64_t fk = 0;
		for (int i = 0; i < VOL_RA_MAX; i++) {
			raslot *x = &ra->s[i];
			if ((x->state != RA_READY && x->state != RA_FAILED) || x->pins ||
			    x->cap < need)
				continue;
			uint64_t k = ra_victim(ra, x);
			if (k / C == vk / C && k > 2 * C && (!f || k > fk)) {
				f = x;
				fk = k;
			}
		}
		if (f)
			v = f;
	}
	/* Grown only, never shrunk to the chunk: memory given back and taken
	 * again is re-faulted and zeroed.  At the volume's bound, this
	 * inode's free slots give theirs back first; then the chunk is not
	 * fetched ahead (a read fetches it the ordinary way). */
	if (v->cap < need || !v->mem) {
		uint32_t cap = (uint32_t)((need + RA_GROW - 1) & ~(uint64_t)(RA_GROW - 1));
		void *nm = NULL;
		if (!ra_mem_take(vol, cap - v->cap)) {
			for (int i = 0; i < VOL_RA_MAX; i++)
				if (&ra->s[i] != v && ra->s[i].state == RA_FREE &&
				    !ra->s[i].pins && ra->s[i].mem)
					ra_mem_drop(vol, &ra->s[i]);
			if (!ra_mem_take(vol, cap - v->cap)) {
				__atomic_add_fetch(&vol->st.readahead_refused, 1, __ATOMIC_RELAXED);
				return NULL;
			}
		}
		if (posix_memalign(&nm, RA_ALIGN, cap) != 0) {
			__atomic_sub_fetch(&vol->st.readahead_bytes, cap - v->cap,
					   __ATOMIC_RELAXED);
			return NULL;
		}
		free(v->mem);
		v->mem = nm;
		v->cap = cap;
	}
	v->doff = (uint32_t)(from - a0);
	v->data = v->mem + v->doff;
	v->chunk = c->id;
	v->len = c->raw_len;
	v->crc = c->crc;
	v->used = ++ra->clock;
	v->hit = 0;
	v->foff = foff;
	snprintf(v->key, sizeof v->key, "%s", key);
	memset(&v->r, 0, sizeof v->r);
	v->r.op = OBJ_OP_GET;
	v->r.key = v->key;
	v->r.buf = v->mem;
	v->r.off = a0;
	v->r.len = a1 - a0;
	v->r.crc_off = v->doff;
	v->r.crc_len = c->raw_len;
	v->r.user = v;
	v->state = RA_BUSY;
	if (objstore_submit(ra->b, &v->r)) {
		cairn_err_clear();
		v->state = RA_FAILED;
		return NULL;
	}
	__atomic_add_fetch(&vol->st.read_chunk_bytes, c->raw_len, __ATOMIC_RELAXED);
	return v;
}

static int remote_ok(cairn_volume *vol, const meta_chunk *c, const meta_seg *s,
		     uint64_t *local_seg, int *local)
{
	char path[4096];
	struct stat st;
	if (s->kind != 1 || s->state != META_SEG_UPLOADED || c->codec != SEG_CODEC_RAW ||
	    c->stored_len != c->raw_len)
		return 0;
	/* A kept local copy is cheaper than the store. */
	if (s->id != *local_seg) {
		vol_seg_path(vol, s->id, path, sizeof path);
		*local = stat(path, &st) == 0;
		*local_seg = s->id;
	}
	return !*local;
}

typedef struct rget {
	cairn_obj_req r;
	size_t i;
	uint8_t *dst;
} rget;

/* The slot of chunk c for a read at file offset off (ra->mu held): the
 * one that holds or fetches it, else a new one when the read is
 * sequential (or in the file's first average chunk: a sequential
 * reader's first requests arrive together, in any order, before the
 * window opens) and takes part of the chunk: a slot costs the same one
 * GET of the chunk as the window path would.  NULL: read it directly. */
static raslot *ra_slot_for(cairn_volume *vol, struct vra *ra, const meta_extent *e,
			   const meta_chunk *c, const meta_seg *sg, uint64_t off)
{
	raslot *x = ra_find(ra, c->id);
	if (!x && (ra->win || off < vol->o.stream_chunk_avg) &&
	    (ra->win || e->chunk_off || e->len != c->raw_len))
		x = ra_start(vol, ra, c, ra_foff(e), sg->key,
			     (ra->win > vol->o.stream_readahead ? ra->win
					: vol->o.stream_readahead) + VOL_RA_EXTRA);
	return x;
}

int vol_stream_read_remote(cairn_volume *vol, vinode *vi, const meta_extent *ex,
			   const meta_chunk *ch, const meta_seg *sg, size_t n,
			   uint8_t *buf, uint64_t off, uint64_t end, uint8_t *done)
{
	cairn_obj_batch *b = NULL;
	struct vra *ra = vi ? ra_get(vol, vi) : NULL;
	rget *g = NULL;
	size_t ng = 0;
	uint64_t local_seg = 0;
	int local = 0, rc = 0;
	uint8_t want[64] = { 0 };

	(void)end;  /* the extents are clipped to the read already */
	for (size_t i = 0; i < n && i < sizeof want; i++)
		want[i] = ex[i].chunk && remote_ok(vol, &ch[i], &sg[i], &local_seg, &local);

	/* 1. Chunks the readahead holds (or is fetching). */
	if (ra) {
		pthread_mutex_lock(&ra->mu);
		for (size_t i = 0; i < n && i < sizeof want; i++) {
			if (!want[i])
				continue;
			raslot *x = ra_slot_for(vol, ra, &ex[i], &ch[i], &sg[i], off);
			if (!x)
				continue;
			ra_wait(vol, ra, x);
			if (x->state != RA_READY) {
				x->state = RA_FREE;
				continue;
			}
			x->used = ++ra->clock;
			x->hit = 1;
			memcpy(buf + (ex[i].off - off), x->data + ex[i].chunk_off, ex[i].len);
			done[i] = 1;
		}
		pthread_mutex_unlock(&ra->mu);
	}

	/* 2. Whole chunks: parallel GETs straight into the caller's buffer.
	 * Part of a chunk (random reads) takes the cached window path
	 * (vol_chunk_read), so that neighbouring small reads hit the cache. */
	for (size_t i = 0; i < n && i < sizeof want; i++) {
		const meta_extent *e = &ex[i];
		if (!want[i] || done[i] || e->chunk_off != 0 || e->len != ch[i].raw_len)
			continue;
		if (!g && !(g = calloc(n, sizeof *g))) {
			rc = cairn_errf(CAIRN_E_NOMEM, "read: %zu requests", n);
			goto out;
		}
		rget *q = &g[ng++];
		q->i = i;
		q->dst = buf + (e->off - off);
		q->r.op = OBJ_OP_GET;
		q->r.key = sg[i].key;
		q->r.buf = q->dst;
		q->r.off = ch[i].seg_off + SEG_FRAME_HDR_SIZE;
		q->r.len = ch[i].raw_len;
		q->r.user = q;
	}
	if (!ng)
		goto out;
	if ((rc = objstore_batch_new(vol->os, &b)))
		goto out;
	for (size_t k = 0; k < ng; k++)
		if ((rc = objstore_submit(b, &g[k].r)))
			goto out;
	if ((rc = objstore_batch_wait(b)))
		goto out;
	for (size_t k = 0; k < ng; k++) {
		rget *q = &g[k];
		size_t i = q->i;
		if (q->r.got != ch[i].raw_len) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "segment %s: chunk at %" PRIu64
					" is short (%" PRIu64 " of %u bytes)", sg[i].key,
					ch[i].seg_off, q->r.got, ch[i].raw_len);
			goto out;
		}
		if (cairn_crc32c(0, q->dst, ch[i].raw_len) != ch[i].crc) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "segment %s: chunk at %" PRIu64
					" fails its checksum", sg[i].key, ch[i].seg_off);
			CAIRN_ERROR(VOL_MOD, "%s", cairn_errmsg());
			goto out;
		}
		done[i] = 1;
		__atomic_add_fetch(&vol->st.read_chunk_bytes, ch[i].raw_len, __ATOMIC_RELAXED);
	}
	__atomic_add_fetch(&vol->st.reads_parallel, ng, __ATOMIC_RELAXED);
	__atomic_add_fetch(&vol->st.reads_demand, ng, __ATOMIC_RELAXED);
out:
	objstore_batch_free(b);
	free(g);
	return rc;
}

int vol_stream_ra_pin(cairn_volume *vol, vinode *vi, uint64_t off, uint64_t n,
		      struct iovec *iov, void **pins, int max, int *cnt)
{
	enum { MAXE = 8 };
	meta_extent ex[MAXE];
	meta_chunk ch[MAXE];
	meta_seg sg[MAXE];
	struct vra *ra = ra_get(vol, vi);
	size_t ne = 0;
	meta_txn *t;
	uint64_t local_seg = 0, pos = off, end = off + n;
	int local = 0, k = 0, rc;

	*cnt = 0;
	if (!ra || vol->o.no_upload || !n)
		return 0;
	if (meta_read_begin(vol->meta, &t)) {
		cairn_err_clear();
		return 0;
	}
	rc = meta_extent_lookup(t, vi->ino, off, n, ex, MAXE, &ne);
	for (size_t i = 0; !rc && i < ne && ex[i].chunk; i++) {
		rc = meta_chunk_get(t, ex[i].chunk, &ch[i]);
		if (!rc)
			rc = meta_seg_get(t, ch[i].seg, &sg[i]);
	}
	meta_read_end(t);
	if (rc) {
		cairn_err_clear();
		return 0;
	}
	/* Every byte in a chunk of an uploaded stream, no hole, no gap; the
	 * ordinary read reports whatever is wrong with the extents. */
	if ((int)ne > max)
		return 0;
	for (size_t i = 0; i < ne; i++) {
		const meta_extent *e = &ex[i];
		if (!e->chunk || e->off != pos || !e->len || e->chunk_off > ch[i].raw_len ||
		    e->len > ch[i].raw_len - e->chunk_off ||
		    !remote_ok(vol, &ch[i], &sg[i], &local_seg, &local))
			return 0;
		pos += e->len;
	}
	if (pos != end)
		return 0;
	pthread_mutex_lock(&ra->mu);
	for (size_t i = 0; i < ne; i++) {
		/* a whole chunk without a slot is read the ordinary way */
		raslot *x = ra_slot_for(vol, ra, &ex[i], &ch[i], &sg[i], off);
		if (!x)
			goto undo;
		ra_wait(vol, ra, x);
		if (x->state != RA_READY) {
			if (!x->pins)
				x->state = RA_FREE;
			goto undo;
		}
		x->pins++;
		x->used = ++ra->clock;
		x->hit = 1;
		iov[k].iov_base = x->data + ex[i].chunk_off;
		iov[k].iov_len = ex[i].len;
		pins[k++] = x;
	}
	pthread_mutex_unlock(&ra->mu);
	*cnt = k;
	__atomic_add_fetch(&vol->st.read_nocopy_bytes, n, __ATOMIC_RELAXED);
	return 1;
undo:
	while (k > 0)
		((raslot *)pins[--k])->pins--;
	pthread_mutex_unlock(&ra->mu);
	return 0;
}

void vol_stream_ra_unpin(vinode *vi, void **pins, int cnt)
{
	struct vra *ra = __atomic_load_n(&vi->ra, __ATOMIC_ACQUIRE);
	if (!ra || !cnt)
		return;
	pthread_mutex_lock(&ra->mu);
	for (int i = 0; i < cnt; i++)
		((raslot *)pins[i])->pins--;
	pthread_mutex_unlock(&ra->mu);
}

void vol_stream_ra_note(cairn_volume *vol, vinode *vi, uint64_t off, uint64_t n)
{
	struct vra *ra = ra_get(vol, vi);
	uint64_t end = off + n;

	if (!ra || vol->o.no_upload || !n)
		return;
	pthread_mutex_lock(&ra->mu);
	uint64_t exp = ra->next_off;
	int seq = exp != UINT64_MAX ? off + VOL_RA_SLACK >= exp && off <= exp + VOL_RA_SLACK
				    : off == 0;
	for (int i = 0; i < VOL_RA_HIST && !seq; i++)
		seq = ra->h_end[i] == off || ra->h_off[i] == end;
	uint64_t tol = (uint64_t)(ra->win + 2) * vol->o.stream_chunk_avg;
	int inrun = ra->win && off + tol >= ra->hi && off <= ra->hi + tol;
	if (seq) {
		/* A reader of large pieces gets a window of two of them,
		 * at most VOL_RA_BIG bytes of chunks. */
		uint64_t avg = vol->o.stream_chunk_avg, per = (n + avg - 1) / avg;
		uint64_t big = VOL_RA_BIG / avg < VOL_RA_MAX - VOL_RA_EXTRA
				       ? VOL_RA_BIG / avg : VOL_RA_MAX - VOL_RA_EXTRA;
		unsigned cap = vol->o.stream_readahead;
		if (2 * per > cap && big > cap)
			cap = (unsigned)(2 * per < big ? 2 * per : big);
		ra->win = ra->win ? ra->win * 2 : 2;
		if (ra->win < per)
			ra->win = (unsigned)per;
		if (ra->win > cap)
			ra->win = cap;
	} else if (!inrun) {
		ra->win = 0;
		ra->hi = 0;
	}
	if (end > ra->hi)
		ra->hi = end;
	ra->next_off = end;
	ra->h_off[ra->h_i] = off;
	ra->h_end[ra->h_i] = end;
	ra->h_i = (ra->h_i + 1) % VOL_RA_HIST;
	pthread_mutex_unlock(&ra->mu);
}

void vol_stream_readahead(cairn_volume *vol, vinode *vi, uint64_t off, uint64_t n)
{
	struct vra *ra = ra_get(vol, vi);
	enum { MAXE = 64 };
	meta_extent ex[MAXE];
	meta_chunk ch[MAXE];
	meta_seg sg[MAXE];
	size_t cnt = 0;
	meta_txn *t;
	uint64_t local_seg = 0, end = off + n;
	int local = 0;

	if (!ra || vol->o.no_upload)
		return;
	pthread_mutex_lock(&ra->mu);
	unsigned win = ra->win;  /* as vol_stream_ra_note left it */
	/* Ahead of the run's front, not of a late request: what lies behind
	 * the front was read already (or is being read, each request fetching
	 * its chunk if no slot holds it). */
	if (win && ra->hi > end)
		end = ra->hi;
	pthread_mutex_unlock(&ra->mu);
	if (!win || end >= vi->size)
		return;
	/* The chunks of the next win * average bytes (at most MAXE). */
	uint64_t span = (uint64_t)win * vol->o.stream_chunk_avg * 2;
	if (meta_read_begin(vol->meta, &t)) {
		cairn_err_clear();
		return;
	}
	int rc = meta_extent_lookup(t, vi->ino, end, span, ex, MAXE, &cnt);
	for (size_t i = 0; !rc && i < cnt; i++) {
		if (!ex[i].chunk)
			continue;
		rc = meta_chunk_get(t, ex[i].chunk, &ch[i]);
		if (!rc)
			rc = meta_seg_get(t, ch[i].seg, &sg[i]);
	}
	meta_read_end(t);
	if (rc) {
		cairn_err_clear();
		return;
	}
	pthread_mutex_lock(&ra->mu);
	unsigned started = 0;
	for (size_t i = 0; i < cnt && started < win; i++) {
		if (!ex[i].chunk || !remote_ok(vol, &ch[i], &sg[i], &local_seg, &local))
			continue;
		if (i > 0 && ex[i].chunk == ex[i - 1].chunk)
			continue;
		started++;
		if (ra_find(ra, ch[i].id))
			continue;
		if (!ra_start(vol, ra, &ch[i], ra_foff(&ex[i]), sg[i].key, win + VOL_RA_EXTRA))
			break;
	}
	pthread_mutex_unlock(&ra->mu);
}
