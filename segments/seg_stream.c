/*
 * seg_stream.c - the stream segment writer: one large file's bytes, fed in
 * arbitrary pieces, cut into content-defined chunks (FastCDC) and appended
 * as raw frames to a stream segment (SEG_KIND_STREAM) through a seg_writer.
 * The SHA-256 of every chunk is computed while its bytes stream through
 * (from the chunk buffer, never a second read of the file), for
 * deduplication by the space layer.
 *
 *   seg_stream_create --> [OPEN] --write--> [OPEN] (bytes go to the chunk
 *                            |                      buffer; every cut appends
 *                            |                      one frame to the file)
 *                            +--cut------> [OPEN]   (force a chunk end: fsync)
 *                            +--seg_stream_writer: sync, seal via seg_writer
 *   seg_stream_close from any state.
 *
 * Chunking (FastCDC, normalized): a gear hash over the bytes of the current
 * chunk; no cut before min_chunk bytes; between min and avg a cut needs
 * (bits+1) zero bits of the hash, after avg only (bits-1), so chunk sizes
 * cluster around avg; a chunk never exceeds max_chunk.  The gear hash only
 * depends on the last 64 bytes, and it starts 64 bytes before min_chunk, so
 * boundaries depend only on content, never on how the writes were split:
 * an insertion early in a file shifts bytes but the later boundaries (and
 * hashes) come back.
 *
 * Invariants:
 *   1. Memory is two chunk buffers of max_chunk bytes and the list of
 *      chunks not yet taken by the caller, whatever the stream's length.
 *      While the caller chunks the next bytes into one buffer (gear scan,
 *      copy, crc32c), a worker thread hashes them as they are published
 *      (fill[]) and, once the chunk is cut, appends it; meanwhile the
 *      caller fills the other buffer.  When the caller had to wait for
 *      the worker, it hashes the next chunk itself (hash_by, auto).
 *      Whoever hashes, the SHA-256 is of exactly the chunk's bytes.
 *      seg_stream_cut and
 *      seg_stream_drain wait for the worker: after them every fed byte up
 *      to the last cut is in the file and in the ready list.
 *   2. Chunk k's first byte is stream byte sum(len of chunks < k); chunks
 *      tile the stream; the buffered bytes are the tail after the last cut.
 *   3. Every frame is raw (never compressed), so the frame's stored bytes
 *      are the file's bytes: a reader may fetch a sub-range of a chunk.
 *   4. A chunk the dedup hook claims (opts.dedup returns 1) gets no frame:
 *      it is in the ready list with dedup = the stored chunk's id, and
 *      the segment holds only the chunks that were not found elsewhere.
 *      The hook runs before the append, with the chunk buffer still
 *      held, so a hit it cannot confirm is appended as usual.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/codec.h"
#include "cairn/err.h"
#include "seg_int.h"

static uint64_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;

static void gear_init(void)
{
	/* splitmix64 from a fixed seed: the table (and so every boundary)
	 * is the same in every build and on every machine. */
	uint64_t x = 0x63616972 /* "cair" */;
	for (int i = 0; i < 256; i++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		gear[i] = z ^ (z >> 31);
	}
}

struct seg_stream {
	seg_writer *w;
	seg_stream_opts o;
	uint64_t mask_s, mask_l;
	uint8_t *buf[2];        /* chunk buffers: one filled by the caller, */
	int cur;                /* the other (maybe) hashed and written */
	size_t cl;              /* bytes in buf[cur] */
	uint64_t h;             /* gear hash of the current chunk */
	uint64_t pos;           /* stream bytes fed */
	pthread_t thr;
	int thr_ok;
	pthread_mutex_t mu;     /* guards everything below */
	pthread_cond_t cv;
	uint32_t crc;           /* crc32c of buf[cur][0..cl), as copied in */
	cairn_sha256_ctx *csha; /* the caller's SHA-256 (inl) */
	int inl;                /* the caller hashes buf[cur]'s chunk itself */
	int job_hashed;         /* job_hash is the job's SHA-256 */
	uint8_t job_hash[32];
	int job;                /* buffer handed to the worker, -1: none */
	size_t job_len;
	uint64_t job_pos;
	uint32_t job_crc;
	size_t fill[2];         /* bytes of a buffer being filled published to
				 * the worker (it hashes them as they come) */
	int busy[2];            /* buffer queued or being written */
	int stop;
	int err;                /* sticky error of the worker */
	char errmsg[256];
	seg_stream_chunk *ch;   /* appended chunks not yet taken */
	size_t nch, cch;
};

static unsigned log2u(uint32_t v)
{
	unsigned b = 0;
	while (v > 1) {
		v >>= 1;
		b++;
	}
	return b;
}

int seg_stream_opts_check(seg_stream_opts *o)
{
	if (!o->avg_chunk)
		o->avg_chunk = SEG_STREAM_AVG_CHUNK;
	if (!o->min_chunk)
		o->min_chunk = o->avg_chunk / 4;
	if (!o->max_chunk)
		o->max_chunk = o->avg_chunk * 4 < SEG_FRAME_MAX_RAW ? o->avg_chunk * 4
								     : SEG_FRAME_MAX_RAW;
	if (o->avg_chunk < 256 || o->min_chunk < 64 || o->min_chunk > o->avg_chunk ||
	    o->avg_chunk > o->max_chunk || o->max_chunk > SEG_FRAME_MAX_RAW)
		return cairn_errf(CAIRN_E_INVAL,
				  "stream chunk sizes min %u avg %u max %u: need 64 <= min <= "
				  "avg <= max <= %u and avg >= 256", o->min_chunk,
				  o->avg_chunk, o->max_chunk, SEG_FRAME_MAX_RAW);
	return 0;
}

size_t seg_cdc_next(const seg_stream_opts *o, const void *buf, size_t len)
{
	seg_stream_opts oo = *o;
	const uint8_t *p = buf;
	uint64_t h = 0, ms, ml;
	size_t i, start;
	unsigned bits;

	pthread_once(&gear_once, gear_init);
	if (seg_stream_opts_check(&oo)) {
		cairn_err_clear();
		return len;
	}
	bits = log2u(oo.avg_chunk);
	ms = ~0ULL << (64 - (bits + 1));
	ml = ~0ULL << (64 - (bits - 1));
	if (len <= oo.min_chunk)
		return len;
	start = oo.min_chunk > 64 ? oo.min_chunk - 64 : 0;
	for (i = start; i < len && i < oo.max_chunk; i++) {
		h = (h << 1) + gear[p[i]];
		if (i + 1 >= oo.min_chunk && !(h & (i + 1 < oo.avg_chunk ? ms : ml)))
			return i + 1;
	}
	return i;
}

static void *worker(void *arg);

int seg_stream_create(cairn_uring *u, const char *path, const seg_id *id,
		      const seg_stream_opts *opts, seg_stream **out)
{
	seg_writer_opts wo = { .zstd_level = -1 };
	seg_stream *s;
	unsigned bits;
	int rc;

	*out = NULL;
	if (id->kind != SEG_KIND_STREAM)
		return cairn_errf(CAIRN_E_INVAL, "stream segment %s: kind %d is not stream",
				  path, id->kind);
	s = calloc(1, sizeof *s);
	if (!s)
		return cairn_errf(CAIRN_E_NOMEM, "stream segment %s", path);
	s->job = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (opts)
		s->o = *opts;
	if ((rc = seg_stream_opts_check(&s->o)))
		goto fail;
	pthread_once(&gear_once, gear_init);
	bits = log2u(s->o.avg_chunk);
	s->mask_s = ~0ULL << (64 - (bits + 1));
	s->mask_l = ~0ULL << (64 - (bits - 1));
	s->buf[0] = malloc(s->o.max_chunk);
	s->buf[1] = malloc(s->o.max_chunk);
	if (!s->buf[0] || !s->buf[1]) {
		rc = cairn_errf(CAIRN_E_NOMEM, "stream segment %s: chunk buffers of %u bytes",
				path, s->o.max_chunk);
		goto fail;
	}
	if ((rc = cairn_sha256_new(&s->csha)))
		goto fail;
	s->inl = s->o.hash_by == SEG_STREAM_HASH_CALLER;
	wo.direct = s->o.direct;
	wo.tap = s->o.tap;
	wo.tap_arg = s->o.tap_arg;
	if ((rc = seg_writer_create(u, path, id, &wo, &s->w)))
		goto fail;
	if (pthread_create(&s->thr, NULL, worker, s) != 0) {
		rc = cairn_errf(CAIRN_E_NOMEM, "stream segment %s: writer thread", path);
		goto fail;
	}
	s->thr_ok = 1;
	*out = s;
	return 0;
fail:
	seg_stream_close(s);
	return rc;
}

/* The worker: hash each chunk as its bytes arrive (the part of the
 * buffer the caller has published in fill[], then the rest at the cut),
 * then offer it to the dedup hook and append it as one frame with the
 * crc32c the caller computed while copying it in (tagged with its segment
 * offset, as the volume tags packed frames), and record it.  Chunks come
 * in stream order, alternating between the two buffers: hb is the buffer
 * of the next chunk.  The caller refills a buffer only after the worker
 * released it (busy[b] = 0, fill[b] = 0, both here under the mutex), so
 * the bytes the worker reads never change under it. */
static void *worker(void *arg)
{
	seg_stream *s = arg;
	cairn_sha256_ctx *sha = NULL;
	int hb = 0;
	size_t hashed = 0;      /* bytes of buf[hb] in sha */
	int hrc = cairn_sha256_new(&sha);
	char hmsg[256] = "";

	if (hrc)
		cairn_err_copy(hmsg, sizeof hmsg);
	pthread_mutex_lock(&s->mu);
	for (;;) {
		size_t avail = s->job != hb ? s->fill[hb] : s->job_hashed ? 0 : s->job_len;
		if (avail > hashed && !hrc && !s->err) {
			pthread_mutex_unlock(&s->mu);
			hrc = cairn_sha256_update(sha, s->buf[hb] + hashed, avail - hashed);
			if (hrc)
				cairn_err_copy(hmsg, sizeof hmsg);
			pthread_mutex_lock(&s->mu);
			hashed = avail;
			continue;
		}
		if (s->job != hb) {
			if (s->stop)
				break;
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		int b = s->job;
		size_t len = s->job_len;
		uint64_t pos = s->job_pos;
		uint32_t crc = s->job_crc;
		int hashed_by_caller = s->job_hashed;
		int failed = s->err != 0;
		seg_stream_chunk c;
		memset(&c, 0, sizeof c);
		if (hashed_by_caller)
			memcpy(c.hash, s->job_hash, sizeof c.hash);
		s->job = -1;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);

		int rc = 0;
		c.pos = pos;
		if (!failed && hrc) {
			rc = cairn_err_set(hrc, hmsg);
		} else if (!failed) {
			if (!hashed_by_caller)
				rc = cairn_sha256_final(sha, c.hash);
			/* Dedup: while the bytes are still here, so that a hit
			 * the hook cannot confirm falls back to the append. */
			if (!rc && s->o.dedup &&
			    s->o.dedup(s->o.dedup_arg, s->buf[b], len, pos, c.hash, &c.dedup,
				       &c.fr.crc) == 1 && c.dedup) {
				c.fr.raw_len = c.fr.stored_len = (uint32_t)len;
				c.fr.codec = SEG_CODEC_RAW;
			} else if (!rc) {
				c.dedup = 0;
				rc = seg_writer_append_raw(s->w, seg_writer_size(s->w), s->buf[b],
							   len, crc, &c.fr);
			}
		}
		pthread_mutex_lock(&s->mu);
		if (!failed && !rc && s->nch == s->cch) {
			size_t nc = s->cch ? s->cch * 2 : 64;
			seg_stream_chunk *nv = realloc(s->ch, nc * sizeof *nv);
			if (!nv) {
				rc = cairn_errf(CAIRN_E_NOMEM, "stream segment %s: chunk list",
						seg_writer_path(s->w));
			} else {
				s->ch = nv;
				s->cch = nc;
			}
		}
		if (rc && !s->err) {
			s->err = rc;
			cairn_err_copy(s->errmsg, sizeof s->errmsg);
		} else if (!failed && !rc) {
			s->ch[s->nch++] = c;
		}
		s->busy[b] = 0;
		s->fill[b] = 0;
		hb ^= 1;
		hashed = 0;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	cairn_sha256_free(sha);
	return NULL;
}

/* Hand the current chunk to the worker and switch buffers. */
static int emit(seg_stream *s)
{
	uint8_t hash[32];
	int rc = 0, waited = 0;

	if (!s->cl)
		return 0;
	if (s->inl && (rc = cairn_sha256_final(s->csha, hash))) {
		pthread_mutex_lock(&s->mu);  /* sticky, like a failure of the worker */
		if (!s->err) {
			s->err = rc;
			cairn_err_copy(s->errmsg, sizeof s->errmsg);
		}
		pthread_mutex_unlock(&s->mu);
		return rc;
	}
	pthread_mutex_lock(&s->mu);
	while (s->job >= 0 && !s->err) {
		waited = 1;
		pthread_cond_wait(&s->cv, &s->mu);
	}
	if (s->err) {
		rc = cairn_err_set(s->err, s->errmsg);
		pthread_mutex_unlock(&s->mu);
		return rc;
	}
	s->job = s->cur;
	s->job_len = s->cl;
	s->job_pos = s->pos - s->cl;
	s->job_crc = s->crc;
	s->job_hashed = s->inl;
	if (s->inl)
		memcpy(s->job_hash, hash, sizeof hash);
	s->busy[s->cur] = 1;
	pthread_cond_broadcast(&s->cv);
	s->cur ^= 1;
	/* Balance the two threads: when the caller must wait for the worker
	 * (to take the chunk, or to free the other buffer), the worker is the
	 * slower one, and the caller hashes the next chunk itself (from the
	 * cache its copy just filled) instead of handing it over.  Whoever
	 * hashes a chunk, the hash is of the same bytes. */
	s->inl = s->o.hash_by == SEG_STREAM_HASH_CALLER ||
		 (s->o.hash_by == SEG_STREAM_HASH_AUTO && (waited || s->busy[s->cur]));
	while (s->busy[s->cur])
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->err)
		rc = cairn_err_set(s->err, s->errmsg);
	pthread_mutex_unlock(&s->mu);
	s->cl = 0;
	s->crc = 0;
	s->h = 0;
	return rc;
}

int seg_stream_drain(seg_stream *s)
{
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	while (s->job >= 0 || s->busy[0] || s->busy[1])
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->err)
		rc = cairn_err_set(s->err, s->errmsg);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* The gear hash of the 64 bytes before q: the hash at q[-1] of any run
 * that has hashed at least those 64 bytes (older bytes are shifted out). */
static inline uint64_t gear_warm(const uint8_t *q)
{
	uint64_t h = 0;

	for (int k = 64; k > 0; k--)
		h = (h << 1) + gear[q[-k]];
	return h;
}

/* The gear hash over p[i..end) from *hp; the length up to and including
 * the first byte whose hash has no bit of mask set (*cut = 1), else end.
 * mask 0: no test (the bytes before min_chunk).  With a mask, *hp must
 * already cover 64 bytes (true past min_chunk - 1: the window starts 64
 * bytes before min), so the hash at any byte is that of its 64-byte
 * window.  The per-byte loop is one dependency chain (shift, add); a
 * block of GEAR_LANES * GEAR_LANE bytes is scanned as GEAR_LANES
 * independent chains instead, each started from the 64 bytes before its
 * lane (gear_warm), which the CPU runs side by side.  A block where any
 * lane sees a cut is rescanned byte by byte from its start, so the cut
 * found is the first, exactly as seg_cdc_next finds it. */
#define GEAR_LANES 4
#define GEAR_LANE 2048u

static size_t gear_run(const uint8_t *p, size_t i, size_t end, uint64_t *hp,
		       uint64_t mask, int *cut)
{
	uint64_t h = *hp;

	if (!mask) {
		for (; i < end; i++)
			h = (h << 1) + gear[p[i]];
		*hp = h;
		return end;
	}
	while (end - i >= GEAR_LANES * GEAR_LANE) {
		const uint8_t *q0 = p + i, *q1 = q0 + GEAR_LANE, *q2 = q1 + GEAR_LANE,
			      *q3 = q2 + GEAR_LANE;
		uint64_t h0 = h, h1 = gear_warm(q1), h2 = gear_warm(q2), h3 = gear_warm(q3);
		size_t j;

		for (j = 0; j < GEAR_LANE; j++) {
			h0 = (h0 << 1) + gear[q0[j]];
			h1 = (h1 << 1) + gear[q1[j]];
			h2 = (h2 << 1) + gear[q2[j]];
			h3 = (h3 << 1) + gear[q3[j]];
			if (!(h0 & mask) | !(h1 & mask) | !(h2 & mask) | !(h3 & mask))
				break;
		}
		if (j < GEAR_LANE)
			break;  /* a cut in this block: the loop below finds the first */
		h = h3;
		i += GEAR_LANES * GEAR_LANE;
	}
	for (; i + 4 <= end; i += 4) {
		h = (h << 1) + gear[p[i]];
		if (!(h & mask)) {
			i += 1;
			goto found;
		}
		h = (h << 1) + gear[p[i + 1]];
		if (!(h & mask)) {
			i += 2;
			goto found;
		}
		h = (h << 1) + gear[p[i + 2]];
		if (!(h & mask)) {
			i += 3;
			goto found;
		}
		h = (h << 1) + gear[p[i + 3]];
		if (!(h & mask)) {
			i += 4;
			goto found;
		}
	}
	for (; i < end; i++) {
		h = (h << 1) + gear[p[i]];
		if (!(h & mask)) {
			i += 1;
			goto found;
		}
	}
	*hp = h;
	return end;
found:
	*hp = h;
	*cut = 1;
	return i;
}

/* Scan p[0..n) (chunk bytes cl.. cl+n) for a boundary: the bytes to take
 * (*cut = 1 when the last of them ends the chunk).  The same boundaries as
 * seg_cdc_next, in three runs: the hash window before min_chunk (no test),
 * up to avg_chunk (mask_s), after it (mask_l). */
static size_t cdc_scan(seg_stream *s, const uint8_t *p, size_t n, int *cut)
{
	size_t cl = s->cl, min = s->o.min_chunk, avg = s->o.avg_chunk;
	size_t hstart = min > 64 ? min - 64 : 0;
	size_t i, e;

	*cut = 0;
	if (cl + n <= hstart)
		return n;
	/* Chunk byte j (= cl + i) may end the chunk when j + 1 >= min, with
	 * mask_s while j + 1 < avg. */
	i = cl < hstart ? hstart - cl : 0;
	e = min - 1 > cl ? min - 1 - cl : 0;  /* first i with j + 1 >= min */
	if (i < e) {
		size_t stop = e < n ? e : n;
		i = gear_run(p, i, stop, &s->h, 0, cut);
		if (i == n)
			return n;
	}
	e = avg - 1 > cl ? avg - 1 - cl : 0;  /* first i with j + 1 >= avg */
	if (i < e) {
		size_t stop = e < n ? e : n;
		i = gear_run(p, i, stop, &s->h, s->mask_s, cut);
		if (*cut || i == n)
			return i;
	}
	return gear_run(p, i, n, &s->h, s->mask_l, cut);
}

/* Bytes scanned and copied at a time: the copy then reads them from the
 * cache the scan just filled. */
#define SCAN_BLOCK (128u << 10)

int seg_stream_write(seg_stream *s, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int rc;

	while (len) {
		size_t room = s->o.max_chunk - s->cl, n = len < room ? len : room;
		int cut = 0;

		if (n > SCAN_BLOCK)
			n = SCAN_BLOCK;
		/* Skip the bytes before the hash window (FastCDC's skip of the
		 * minimum size), then look for a boundary. */
		size_t take = cdc_scan(s, p, n, &cut);
		uint8_t *dst = s->buf[s->cur] + s->cl;
		memcpy(dst, p, take);
		/* The frame's crc32c here, from the cache the copy just
		 * filled: the worker (SHA-256, append) is the busier thread. */
		s->crc = cairn_crc32c(s->crc, dst, take);
		if (s->inl && (rc = cairn_sha256_update(s->csha, dst, take))) {
			pthread_mutex_lock(&s->mu);  /* sticky, as in emit */
			if (!s->err) {
				s->err = rc;
				cairn_err_copy(s->errmsg, sizeof s->errmsg);
			}
			pthread_mutex_unlock(&s->mu);
			return rc;
		}
		s->cl += take;
		s->pos += take;
		p += take;
		len -= take;
		if (cut || s->cl == s->o.max_chunk) {
			if ((rc = emit(s)))
				return rc;
		} else if (!s->inl && s->cl - s->fill[s->cur] >= SCAN_BLOCK) {
			/* Publish the bytes so far: the worker hashes them
			 * while the scan goes on. */
			pthread_mutex_lock(&s->mu);
			s->fill[s->cur] = s->cl;
			pthread_cond_broadcast(&s->cv);
			pthread_mutex_unlock(&s->mu);
		}
	}
	return 0;
}

int seg_stream_cut(seg_stream *s)
{
	int rc = emit(s);
	return rc ? rc : seg_stream_drain(s);
}

size_t seg_stream_ready(seg_stream *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->nch;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int seg_stream_chunk_get(seg_stream *s, size_t i, seg_stream_chunk *out)
{
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (i < s->nch)
		*out = s->ch[i];
	else
		rc = cairn_errf(CAIRN_E_RANGE, "stream chunk %zu of %zu", i, s->nch);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void seg_stream_take(seg_stream *s, size_t n)
{
	pthread_mutex_lock(&s->mu);
	if (n > s->nch)
		n = s->nch;
	memmove(s->ch, s->ch + n, (s->nch - n) * sizeof *s->ch);
	s->nch -= n;
	pthread_mutex_unlock(&s->mu);
}

uint64_t seg_stream_pos(const seg_stream *s)
{
	return s->pos;
}

const uint8_t *seg_stream_pending(const seg_stream *s, size_t *len)
{
	*len = s->cl;
	return s->buf[s->cur];
}

seg_writer *seg_stream_writer(seg_stream *s)
{
	return s->w;
}

void seg_stream_close(seg_stream *s)
{
	if (!s)
		return;
	if (s->thr_ok) {
		pthread_mutex_lock(&s->mu);
		while (s->job >= 0 || s->busy[0] || s->busy[1])
			pthread_cond_wait(&s->cv, &s->mu);
		s->stop = 1;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thr, NULL);
	}
	seg_writer_close(s->w);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->buf[0]);
	free(s->buf[1]);
	free(s->ch);
	cairn_sha256_free(s->csha);
	free(s);
}
