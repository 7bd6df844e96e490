/*
 * seg_writer.c - the staging writer: a segment being filled in a local file
 * through the I/O engine, made durable in steps (the high-water mark),
 * sealed into a complete segment object, and recovered after a crash.
 *
 * States (see cairn/segment.h for the diagram):
 *
 *   OPEN --append/sync--> OPEN --seal--> SEALED
 *     \--I/O error--> FAILED (sticky: every call returns the first error)
 *
 * Guarantees
 *   1. The file always starts with a valid header, durable once create
 *      returns (file data and directory entry fsynced).
 *   2. Frames are written back to back after the header, each in one write
 *      of frame header + stored bytes, at the offset seg_writer_size had
 *      before the append; what the append returns is what the index will
 *      say about the frame.
 *   3. hwm <= size, and every byte below hwm was covered by an fdatasync
 *      that succeeded.  The volume commits metadata pointing below hwm only.
 *   4. After an I/O error nothing more is written: the file's state past hwm
 *      is unknown (a write may have half-happened), so the writer refuses
 *      further use and recovery cuts the file back to the committed hwm.
 *   5. Recovery never keeps a byte it has not verified: every frame below
 *      the cut passes its header and data checksums.
 *
 * Direct mode (opts.direct, a stream spool that nobody reads back soon):
 * appends are copied into an aligned buffer (the bytes [ab_base, size),
 * ab_base a multiple of W_DIO_ALIGN) and written as whole W_DIO_BUF blocks
 * with O_DIRECT through a second descriptor: no copy into the page cache,
 * which dominates a buffered write's CPU.  A sync or flush writes the
 * whole aligned blocks direct and the partial last block through the
 * buffered descriptor, keeps that block in the buffer, and the next
 * direct write rewrites it (the same bytes before the end, so a torn
 * rewrite cannot damage them).  A full buffer is written asynchronously
 * (a queue of the engine held while writes are in flight; at most
 * W_DIO_ASYNC_MAX writers at a time, the others write synchronously)
 * while appends fill a spare buffer: up to W_DIO_NBUF - 1 writes in
 * flight (one until the first direct write succeeded), so the disk works
 * on several requests while the caller hashes; a full buffer with no
 * spare left waits for one write, and a sync, a flush, a read, the seal
 * and close wait for all of them first.  Everything below ab_base is in
 * the file or in those writes in flight; seg_writer_read and
 * seg_writer_flush write the buffer out first.  Where O_DIRECT is refused (open or the
 * first write: EINVAL) the same blocks go through the buffered descriptor.
 * seg_writer_written (the part trigger of a multipart upload from the
 * spool) is the lowest of ab_base and the offsets of the writes in
 * flight, raised to the size by a flush: bytes a read of the file sees.
 * It only grows, and stops for good at the first failed write.
 *
 * The tap (opts.tap) sees every byte of the file once, in file order, as
 * it is appended (header, frames, index and footer), whatever the mode:
 * what a multipart upload of the spool needs to know of its bytes (each
 * part's payload hash) without reading them back.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "seg_int.h"

#define MOD "segments"

enum { W_OPEN = 0, W_SEALED = 1, W_FAILED = 2 };

#define W_DIO_ALIGN 4096u
#define W_DIO_BUF (4u << 20)
#define W_DIO_NBUF 4           /* one filling, up to three in flight */
#define W_DIO_ASYNC_MAX 32u

static unsigned w_async_held;  /* queues held by direct writers (atomic) */

struct seg_writer {
	pthread_mutex_t mu;
	cairn_uring *u;
	int fd;
	char *path;
	seg_id id;
	int level;
	int state;
	int err_rc;             /* FAILED: the sticky error */
	char err_msg[256];
	uint64_t size, hwm, raw_total;
	seg_frame *frames;
	uint32_t n, cap;
	uint8_t *buf;           /* frame header + stored bytes of one append */
	size_t bufcap;
	/* direct mode: ab != NULL */
	uint8_t *ab;            /* bytes [ab_base, size); W_DIO_BUF bytes, aligned */
	size_t ab_len;
	uint64_t ab_base;       /* multiple of W_DIO_ALIGN; below it: in the file */
	int dfd;                /* O_DIRECT descriptor, -1: buffered writes */
	int dio_done;           /* a direct write succeeded (no fallback later) */
	uint8_t *spare[W_DIO_NBUF];  /* buffers neither filling nor in flight */
	unsigned nspare;
	struct {                /* asynchronous writes of full buffers */
		uring_op op;
		uint8_t *buf;   /* NULL: slot unused */
	} fl[W_DIO_NBUF];
	unsigned nfl;           /* writes in flight */
	cairn_uring_q *wq;      /* held while nfl > 0 */
	uint64_t done;          /* bytes [0, done) are in the file: every write
				   covering them completed (atomic; only grows,
				   never past a failed write) */
	int werr;               /* a write failed: done stays where it is */
	struct timespec first;  /* first frame (or recovery) */
	void (*tap)(void *arg, const void *p, size_t n);  /* opts.tap */
	void *tap_arg;
};

static uint64_t now_ms_since(const struct timespec *t)
{
	struct timespec n;

	clock_gettime(CLOCK_MONOTONIC, &n);
	return (uint64_t)(n.tv_sec - t->tv_sec) * 1000 +
	       (uint64_t)((n.tv_nsec - t->tv_nsec) / 1000000);
}

/* Enter FAILED with the current context message; returns rc. */
static int w_fail(seg_writer *w, int rc)
{
	w->state = W_FAILED;
	w->err_rc = rc;
	cairn_err_copy(w->err_msg, sizeof w->err_msg);
	CAIRN_ERROR(MOD, "staging segment %s failed: %s", w->path, w->err_msg);
	return rc;
}

static int w_usable(seg_writer *w)
{
	if (w->state == W_FAILED)
		return cairn_err_set(w->err_rc, w->err_msg);
	if (w->state == W_SEALED)
		return cairn_errf(CAIRN_E_INVAL, "staging segment %s is sealed",
				  w->path);
	return CAIRN_OK;
}

/* Every byte of the file once, in order, as it is appended (opts.tap). */
static void w_tap(seg_writer *w, const void *p, size_t n)
{
	if (w->tap && n)
		w->tap(w->tap_arg, p, n);
}

static int w_grow(seg_writer *w, size_t need)
{
	uint8_t *nb;

	if (need <= w->bufcap)
		return CAIRN_OK;
	nb = realloc(w->buf, need);
	if (!nb)
		return cairn_errf(CAIRN_E_NOMEM, "staging segment %s: buffer of %zu bytes",
				  w->path, need);
	w->buf = nb;
	w->bufcap = need;
	return CAIRN_OK;
}

static int w_push(seg_writer *w, const seg_frame *f)
{
	if (w->n == w->cap) {
		uint32_t ncap = w->cap ? w->cap * 2 : 256;
		seg_frame *nv;

		if (ncap < w->cap)
			return cairn_errf(CAIRN_E_RANGE, "staging segment %s: too many frames",
					  w->path);
		nv = realloc(w->frames, (size_t)ncap * sizeof *nv);
		if (!nv)
			return cairn_errf(CAIRN_E_NOMEM,
					  "staging segment %s: frame list", w->path);
		w->frames = nv;
		w->cap = ncap;
	}
	if (w->n == 0)
		clock_gettime(CLOCK_MONOTONIC, &w->first);
	w->frames[w->n++] = *f;
	w->raw_total += f->raw_len;
	return CAIRN_OK;
}

/* Raise the completed-bytes mark to v (never lowers it; never after an
 * I/O error: past that the file's state is unknown). */
static void done_raise(seg_writer *w, uint64_t v)
{
	if (w->werr || w->state == W_FAILED || v <= w->done)
		return;
	__atomic_store_n(&w->done, v, __ATOMIC_RELEASE);
}

/* Direct mode: everything below ab_base and below the lowest write still
 * in flight is in the file. */
static void done_update(seg_writer *w)
{
	uint64_t v = w->ab_base;

	for (unsigned i = 0; i < W_DIO_NBUF; i++)
		if (w->fl[i].buf && w->fl[i].op.off < v)
			v = w->fl[i].op.off;
	done_raise(w, v);
}

/* Direct mode: write the first n bytes of the buffer (n a multiple of
 * W_DIO_ALIGN unless buffered) at ab_base. */
static int ab_write(seg_writer *w, size_t n)
{
	int rc;

	if (w->dfd >= 0) {
		rc = uring_write(w->u, w->dfd, w->ab, n, w->ab_base);
		if (rc == CAIRN_E_INVAL && !w->dio_done) {
			/* The file system refuses O_DIRECT here: buffered. */
			CAIRN_DEBUG(MOD, "staging segment %s: O_DIRECT refused (%s), "
				    "buffered writes", w->path, cairn_errmsg());
			cairn_err_clear();
			close(w->dfd);
			w->dfd = -1;
		} else {
			if (!rc)
				w->dio_done = 1;
			else
				w->werr = 1;
			return rc;
		}
	}
	if ((rc = uring_write(w->u, w->fd, w->ab, n, w->ab_base)))
		w->werr = 1;
	return rc;
}

/* Direct mode: reap one asynchronous write; its buffer becomes spare.  A
 * refused O_DIRECT (only the first direct write can meet it: until one
 * succeeded, one write at a time is in flight) is redone buffered. */
static int ab_reap(seg_writer *w)
{
	uring_op *done = NULL;
	unsigned i;
	int rc;

	rc = uring_q_reap(w->wq, &done);
	for (i = 0; done && i < W_DIO_NBUF; i++)
		if (w->fl[i].buf && &w->fl[i].op == done)
			break;
	if (!done || i == W_DIO_NBUF) {
		/* Nothing reaped (or not ours): the engine lost track of the
		 * writes; their buffers are never reused (ab_free leaks them
		 * rather than free memory the kernel may still write from). */
		w->werr = 1;
		return rc ? rc : cairn_errf(CAIRN_E_IO, "staging segment %s: lost write", w->path);
	}
	if (rc == CAIRN_E_INVAL && !w->dio_done && w->dfd >= 0) {
		CAIRN_DEBUG(MOD, "staging segment %s: O_DIRECT refused (%s), "
			    "buffered writes", w->path, cairn_errmsg());
		cairn_err_clear();
		close(w->dfd);
		w->dfd = -1;
		rc = uring_write(w->u, w->fd, w->fl[i].buf, w->fl[i].op.len, w->fl[i].op.off);
	} else if (!rc) {
		w->dio_done = 1;
	}
	if (rc)
		w->werr = 1;
	w->spare[w->nspare++] = w->fl[i].buf;
	w->fl[i].buf = NULL;
	if (--w->nfl == 0) {
		uring_q_put(w->wq);
		w->wq = NULL;
		__atomic_sub_fetch(&w_async_held, 1, __ATOMIC_RELAXED);
	}
	done_update(w);
	return rc;
}

/* Direct mode: wait for every asynchronous write; the first error. */
static int ab_wait(seg_writer *w)
{
	int rc = CAIRN_OK, r;

	while (w->nfl) {
		unsigned before = w->nfl;
		if ((r = ab_reap(w)) && !rc)
			rc = r;
		if (w->nfl == before)
			break;  /* lost writes: nothing more to reap */
	}
	return rc;
}

/* Direct mode: the buffer is full; write it out (asynchronously when a
 * queue is to be had, up to W_DIO_NBUF - 1 writes in flight, so that the
 * disk has several requests at once as it has under the kernel's own
 * writeback) and go on in a spare buffer. */
static int ab_full(seg_writer *w)
{
	int rc;

	/* A spare buffer for what comes next; one write at a time until
	 * O_DIRECT proved itself (see ab_reap). */
	while (w->nfl && (!w->nspare || !w->dio_done))
		if ((rc = ab_reap(w)))
			return rc;
	if (w->dfd >= 0 && w->nspare && !w->wq) {
		if (__atomic_add_fetch(&w_async_held, 1, __ATOMIC_RELAXED) > W_DIO_ASYNC_MAX ||
		    uring_q_get(w->u, &w->wq) != 0) {
			__atomic_sub_fetch(&w_async_held, 1, __ATOMIC_RELAXED);
			w->wq = NULL;
			cairn_err_clear();  /* no queue: synchronously */
		}
	}
	if (w->dfd >= 0 && w->nspare && w->wq) {
		unsigned i = 0;
		while (w->fl[i].buf)
			i++;  /* a free slot: fewer than W_DIO_NBUF in flight */
		memset(&w->fl[i].op, 0, sizeof w->fl[i].op);
		w->fl[i].op.op = URING_OP_WRITE;
		w->fl[i].op.fd = w->dfd;
		w->fl[i].op.buf = w->ab;
		w->fl[i].op.len = W_DIO_BUF;
		w->fl[i].op.off = w->ab_base;
		if (uring_q_submit(w->wq, &w->fl[i].op) == 0) {
			w->fl[i].buf = w->ab;
			w->nfl++;
			w->ab = w->spare[--w->nspare];
			w->ab_base += W_DIO_BUF;
			w->ab_len = 0;
			done_update(w);
			return CAIRN_OK;
		}
		cairn_err_clear();  /* no submit: synchronously */
		if (!w->nfl) {
			uring_q_put(w->wq);
			w->wq = NULL;
			__atomic_sub_fetch(&w_async_held, 1, __ATOMIC_RELAXED);
		}
	}
	if ((rc = ab_write(w, W_DIO_BUF)))
		return rc;
	w->ab_base += W_DIO_BUF;
	w->ab_len = 0;
	done_update(w);
	return CAIRN_OK;
}

/* Direct mode: append n bytes to the buffer, writing it out each time it
 * is full. */
static int ab_put(seg_writer *w, const void *p, size_t n)
{
	const uint8_t *src = p;
	int rc;

	while (n) {
		size_t k = W_DIO_BUF - w->ab_len < n ? W_DIO_BUF - w->ab_len : n;
		memcpy(w->ab + w->ab_len, src, k);
		w->ab_len += k;
		src += k;
		n -= k;
		if (w->ab_len == W_DIO_BUF && (rc = ab_full(w)))
			return rc;
	}
	return CAIRN_OK;
}

/* Direct mode: every buffered byte into the file (whole blocks direct, the
 * partial last block buffered; that block stays in the buffer). */
static int ab_flush(seg_writer *w)
{
	size_t whole = w->ab_len & ~(size_t)(W_DIO_ALIGN - 1);
	size_t rest = w->ab_len - whole;
	int rc;

	if (!w->ab)
		return CAIRN_OK;
	if ((rc = ab_wait(w)))
		return rc;
	if (whole) {
		if ((rc = ab_write(w, whole)))
			return rc;
		memmove(w->ab, w->ab + whole, rest);
		w->ab_base += whole;
		w->ab_len = rest;
	}
	if (rest && (rc = uring_write(w->u, w->fd, w->ab, rest, w->ab_base))) {
		w->werr = 1;
		return rc;
	}
	done_raise(w, w->ab_base + w->ab_len);
	return CAIRN_OK;
}

static void ab_free(seg_writer *w)
{
	if (w->nfl && ab_wait(w))  /* the kernel must be done with them */
		cairn_err_clear();
	if (w->wq) {  /* writes the engine lost: their buffers are leaked */
		uring_q_put(w->wq);
		w->wq = NULL;
		__atomic_sub_fetch(&w_async_held, 1, __ATOMIC_RELAXED);
	}
	if (w->dfd >= 0)
		close(w->dfd);
	w->dfd = -1;
	free(w->ab);
	w->ab = NULL;
	while (w->nspare)
		free(w->spare[--w->nspare]);
	w->ab_len = 0;
}

static int w_new(cairn_uring *u, const char *path, const seg_id *id,
		 const seg_writer_opts *opts, seg_writer **out)
{
	seg_writer *w = calloc(1, sizeof *w);

	if (!w || !(w->path = strdup(path))) {
		free(w);
		return cairn_errf(CAIRN_E_NOMEM, "staging segment %s", path);
	}
	if (pthread_mutex_init(&w->mu, NULL) != 0) {
		free(w->path);
		free(w);
		return cairn_errf(CAIRN_E_NOMEM, "staging segment %s: mutex", path);
	}
	w->u = u;
	w->fd = -1;
	w->dfd = -1;
	w->id = *id;
	w->level = opts ? opts->zstd_level : 0;
	*out = w;
	return CAIRN_OK;
}

/* fsync the directory holding path, so that a new file's name is durable. */
static int fsync_parent(cairn_uring *u, const char *path)
{
	char *copy = strdup(path);
	int dfd, rc;

	if (!copy)
		return cairn_errf(CAIRN_E_NOMEM, "path %s", path);
	dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = cairn_errf(CAIRN_E_IO, "open directory of %s: %s", path,
				strerror(errno));
		free(copy);
		return rc;
	}
	rc = uring_fsync(u, dfd);
	if (rc)
		rc = cairn_err_wrap(rc, "fsync directory of %s", path);
	close(dfd);
	free(copy);
	return rc;
}

int seg_writer_create(cairn_uring *u, const char *path, const seg_id *id,
		      const seg_writer_opts *opts, seg_writer **out)
{
	uint8_t hdr[SEG_HEADER_SIZE];
	seg_writer *w = NULL;
	int rc;

	*out = NULL;
	if (id->kind != SEG_KIND_PACKED && id->kind != SEG_KIND_STREAM)
		return cairn_errf(CAIRN_E_INVAL, "staging segment %s: unknown kind %d",
				  path, id->kind);
	rc = w_new(u, path, id, opts, &w);
	if (rc)
		return rc;
	if (opts) {
		w->tap = opts->tap;
		w->tap_arg = opts->tap_arg;
	}
	w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		rc = cairn_errf(errno == EEXIST ? CAIRN_E_EXISTS : CAIRN_E_IO,
				"create staging segment %s: %s", path,
				strerror(errno));
		goto fail;
	}
	seg_header_encode(id, hdr);
	rc = uring_write(u, w->fd, hdr, sizeof hdr, 0);
	if (!rc)
		rc = uring_fdatasync(u, w->fd);
	if (!rc)
		rc = fsync_parent(u, path);
	if (rc) {
		rc = cairn_err_wrap(rc, "create staging segment %s", path);
		unlink(path);
		goto fail;
	}
	w->size = w->hwm = w->done = SEG_HEADER_SIZE;
	w_tap(w, hdr, sizeof hdr);
	if (opts && opts->direct) {
		/* Block 0 (the header) is rewritten, unchanged, by the first
		 * direct write.  No O_DIRECT or no memory: buffered, as
		 * without the option. */
		void *ab = NULL, *sp = NULL;
		if (posix_memalign(&ab, W_DIO_ALIGN, W_DIO_BUF) == 0) {
			/* Fewer spare buffers: fewer writes in flight; none:
			 * synchronous writes. */
			for (int i = 1; i < W_DIO_NBUF; i++, sp = NULL)
				if (posix_memalign(&sp, W_DIO_ALIGN, W_DIO_BUF) == 0)
					w->spare[w->nspare++] = sp;
			w->ab = ab;
			memcpy(w->ab, hdr, sizeof hdr);
			w->ab_len = sizeof hdr;
			w->ab_base = 0;
			w->dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
		}
	}
	*out = w;
	return CAIRN_OK;
fail:
	seg_writer_close(w);
	return rc;
}

/* seg_writer_append; crc != NULL: a raw frame whose crc32c the caller
 * computed (seg_writer_append_raw). */
static int w_append(seg_writer *w, uint64_t chunk_id, const void *buf, size_t len,
		    const uint32_t *crc, seg_frame *out)
{
	seg_frame f = {0};
	uint64_t span, tail;
	int raw = crc || w->level < 0;
	int rc;

	pthread_mutex_lock(&w->mu);
	rc = w_usable(w);
	if (rc)
		goto out;
	if (len > SEG_FRAME_MAX_RAW) {
		rc = cairn_errf(CAIRN_E_RANGE,
				"staging segment %s: chunk of %zu bytes exceeds the frame limit %u",
				w->path, len, SEG_FRAME_MAX_RAW);
		goto out;
	}
	memset(&f, 0, sizeof f);
	if (w->ab && raw) {
		/* Raw, as seg_frame_build makes it, but copied once: into
		 * the direct buffer, below. */
		f.raw_len = f.stored_len = (uint32_t)len;
		f.codec = SEG_CODEC_RAW;
		f.crc = crc ? *crc : cairn_crc32c(0, buf, len);
	} else if (crc) {
		rc = w_grow(w, SEG_FRAME_HDR_SIZE + len);
		if (rc)
			goto out;
		memcpy(w->buf + SEG_FRAME_HDR_SIZE, buf, len);
		f.raw_len = f.stored_len = (uint32_t)len;
		f.codec = SEG_CODEC_RAW;
		f.crc = *crc;
	} else {
		rc = w_grow(w, SEG_FRAME_HDR_SIZE + seg_stored_max(len));
		if (rc)
			goto out;
		rc = seg_frame_build(buf, len, w->level, w->buf + SEG_FRAME_HDR_SIZE,
				     w->bufcap - SEG_FRAME_HDR_SIZE, &f);
		if (rc) {
			rc = cairn_err_wrap(rc, "staging segment %s", w->path);
			goto out;
		}
	}
	f.chunk_id = chunk_id;
	f.off = w->size;
	span = seg_frame_span(&f);
	/* Room must remain for the index entry of every frame and the footer. */
	tail = (uint64_t)(w->n + 1) * SEG_INDEX_ENTRY_SIZE + SEG_FOOTER_SIZE;
	if (w->size + span + tail > SEG_MAX_SIZE || w->n >= SEG_MAX_FRAMES) {
		rc = cairn_errf(CAIRN_E_RANGE,
				"staging segment %s: full (%" PRIu64 " bytes, %u frames)",
				w->path, w->size, w->n);
		goto out;
	}
	rc = w_push(w, &f);
	if (rc)
		goto out;
	if (w->ab && raw) {
		uint8_t hdr[SEG_FRAME_HDR_SIZE];
		seg_frame_hdr_encode(&f, hdr);
		rc = ab_put(w, hdr, sizeof hdr);
		if (!rc)
			rc = ab_put(w, buf, len);
	} else if (w->ab) {
		seg_frame_hdr_encode(&f, w->buf);
		rc = ab_put(w, w->buf, span);
	} else {
		seg_frame_hdr_encode(&f, w->buf);
		rc = uring_write(w->u, w->fd, w->buf, span, f.off);
		if (rc)
			w->werr = 1;
		else
			done_raise(w, f.off + span);
	}
	if (rc) {
		w->n--;
		w->raw_total -= f.raw_len;
		rc = w_fail(w, cairn_err_wrap(rc, "append to staging segment %s",
					      w->path));
		goto out;
	}
	if (w->tap) {
		if (w->ab && raw) {
			uint8_t hdr[SEG_FRAME_HDR_SIZE];
			seg_frame_hdr_encode(&f, hdr);
			w_tap(w, hdr, sizeof hdr);
			w_tap(w, buf, len);
		} else {
			w_tap(w, w->buf, span);
		}
	}
	/* Atomic: seg_writer_size reads it without the mutex. */
	__atomic_store_n(&w->size, w->size + span, __ATOMIC_RELEASE);
	if (out)
		*out = f;
out:
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int seg_writer_append(seg_writer *w, uint64_t chunk_id, const void *buf,
		      size_t len, seg_frame *out)
{
	return w_append(w, chunk_id, buf, len, NULL, out);
}

int seg_writer_append_raw(seg_writer *w, uint64_t chunk_id, const void *buf,
			  size_t len, uint32_t crc, seg_frame *out)
{
	return w_append(w, chunk_id, buf, len, &crc, out);
}

int seg_writer_sync(seg_writer *w, uint64_t *hwm)
{
	uint64_t size;
	int rc;

	pthread_mutex_lock(&w->mu);
	rc = w_usable(w);
	if (rc)
		goto out;
	size = w->size;
	if (size != w->hwm) {
		rc = ab_flush(w);
		if (!rc)
			rc = uring_fdatasync(w->u, w->fd);
		if (rc) {
			rc = w_fail(w, cairn_err_wrap(rc, "sync staging segment %s",
						      w->path));
			goto out;
		}
		w->hwm = size;
	}
	if (hwm)
		*hwm = w->hwm;
out:
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int seg_writer_seal(seg_writer *w, uint64_t *size)
{
	seg_footer f;
	uint8_t *tail = NULL;
	size_t ilen, tlen;
	int rc;

	pthread_mutex_lock(&w->mu);
	rc = w_usable(w);
	if (rc)
		goto out;
	ilen = (size_t)w->n * SEG_INDEX_ENTRY_SIZE;
	tlen = ilen + SEG_FOOTER_SIZE;
	tail = malloc(tlen);
	if (!tail) {
		rc = cairn_errf(CAIRN_E_NOMEM, "seal %s: index of %u frames",
				w->path, w->n);
		goto out;
	}
	for (uint32_t i = 0; i < w->n; i++)
		seg_index_entry_encode(&w->frames[i],
				       tail + (size_t)i * SEG_INDEX_ENTRY_SIZE);
	memset(&f, 0, sizeof f);
	f.kind = w->id.kind;
	f.frame_count = w->n;
	f.index_off = w->size;
	f.index_len = ilen;
	f.raw_total = w->raw_total;
	f.epoch = w->id.epoch;
	f.seq = w->id.seq;
	f.index_crc = cairn_crc32c(0, tail, ilen);
	seg_footer_encode(&f, tail + ilen);
	if (w->ab) {
		rc = ab_put(w, tail, tlen);
		if (!rc)
			rc = ab_flush(w);
	} else {
		rc = uring_write(w->u, w->fd, tail, tlen, w->size);
	}
	if (!rc)
		rc = uring_fsync(w->u, w->fd);
	if (rc) {
		rc = w_fail(w, cairn_err_wrap(rc, "seal staging segment %s",
					      w->path));
		goto out;
	}
	w_tap(w, tail, tlen);
	__atomic_store_n(&w->size, w->size + tlen, __ATOMIC_RELEASE);
	w->hwm = w->size;
	done_raise(w, w->size);
	w->state = W_SEALED;
	ab_free(w);  /* nothing more is written */
	if (size)
		*size = w->size;
out:
	free(tail);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int seg_writer_flush(seg_writer *w)
{
	int rc;

	pthread_mutex_lock(&w->mu);
	rc = w_usable(w);
	if (rc == CAIRN_E_INVAL && w->state == W_SEALED) {
		cairn_err_clear();  /* sealed: all in the file */
		rc = CAIRN_OK;
	} else if (!rc && (rc = ab_flush(w))) {
		rc = w_fail(w, cairn_err_wrap(rc, "flush staging segment %s", w->path));
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

uint64_t seg_writer_size(const seg_writer *w)
{
	/* Without the mutex: an append holds it while it copies (and may
	 * wait for a write), and a stream's feeder asks for the size after
	 * every piece; the size only grows, under the mutex. */
	return __atomic_load_n(&w->size, __ATOMIC_ACQUIRE);
}

uint64_t seg_writer_written(const seg_writer *w)
{
	/* Without the mutex, as seg_writer_size. */
	return __atomic_load_n(&w->done, __ATOMIC_ACQUIRE);
}

uint64_t seg_writer_hwm(const seg_writer *w)
{
	seg_writer *m = (seg_writer *)w;
	uint64_t v;

	pthread_mutex_lock(&m->mu);
	v = w->hwm;
	pthread_mutex_unlock(&m->mu);
	return v;
}

uint32_t seg_writer_frames(const seg_writer *w)
{
	seg_writer *m = (seg_writer *)w;
	uint32_t v;

	pthread_mutex_lock(&m->mu);
	v = w->n;
	pthread_mutex_unlock(&m->mu);
	return v;
}

uint64_t seg_writer_age_ms(const seg_writer *w)
{
	seg_writer *m = (seg_writer *)w;
	uint64_t v = 0;

	pthread_mutex_lock(&m->mu);
	if (w->n)
		v = now_ms_since(&w->first);
	pthread_mutex_unlock(&m->mu);
	return v;
}

int seg_writer_frame(const seg_writer *w, uint32_t i, seg_frame *out)
{
	seg_writer *m = (seg_writer *)w;
	int rc = CAIRN_OK;

	pthread_mutex_lock(&m->mu);
	if (i >= w->n)
		rc = cairn_errf(CAIRN_E_RANGE, "staging segment %s: frame %u of %u",
				w->path, i, w->n);
	else
		*out = w->frames[i];
	pthread_mutex_unlock(&m->mu);
	return rc;
}

const char *seg_writer_path(const seg_writer *w)
{
	return w->path;
}

int seg_writer_read(seg_writer *w, const seg_frame *f, void *dst,
		    size_t dstcap, size_t *raw_len)
{
	uint64_t span = seg_frame_span(f), end;
	uint8_t *buf;
	size_t got = 0;
	int fd, rc;

	pthread_mutex_lock(&w->mu);
	end = w->n ? w->frames[w->n - 1].off + seg_frame_span(&w->frames[w->n - 1])
		   : SEG_HEADER_SIZE;
	fd = w->fd;
	/* Direct mode: the frame may still be only in the buffer. */
	rc = CAIRN_OK;
	if (w->ab && w->state == W_OPEN && (w->wq || f->off + span > w->ab_base) &&
	    (rc = ab_flush(w)))
		rc = w_fail(w, cairn_err_wrap(rc, "flush staging segment %s", w->path));
	pthread_mutex_unlock(&w->mu);
	if (rc)
		return rc;
	/* Written frames never change, so the read needs no lock. */
	if (f->off < SEG_HEADER_SIZE || f->off > end || span > end - f->off)
		return cairn_errf(CAIRN_E_RANGE,
				  "staging segment %s: frame at %" PRIu64 " + %" PRIu64
				  " is not inside the %" PRIu64 " bytes written",
				  w->path, f->off, span, end);
	buf = malloc(span);
	if (!buf)
		return cairn_errf(CAIRN_E_NOMEM, "staging segment %s: frame of %" PRIu64
				  " bytes", w->path, span);
	rc = uring_read(w->u, fd, buf, span, f->off, &got);
	if (rc)
		rc = cairn_err_wrap(rc, "read staging segment %s", w->path);
	else
		rc = seg_frame_decode(w->path, f, buf, got, dst, dstcap, raw_len);
	free(buf);
	return rc;
}

void seg_writer_close(seg_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	ab_free(w);
	pthread_mutex_destroy(&w->mu);
	free(w->frames);
	free(w->buf);
	free(w->path);
	free(w);
}

/* ---- recovery ---- */

/* Read and verify the frame at pos; *span gets its length.  Returns
 * CAIRN_E_CORRUPT (context says why) for a torn or invalid frame. */
static int scan_frame(seg_writer *w, uint64_t pos, uint64_t limit,
		      seg_frame *f, uint64_t *span)
{
	uint8_t hdr[SEG_FRAME_HDR_SIZE];
	size_t got = 0;
	uint32_t crc;
	int rc;

	if (limit - pos < SEG_FRAME_HDR_SIZE)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "segment %s: torn frame header at offset %" PRIu64
				  " (%" PRIu64 " bytes before the end)",
				  w->path, pos, limit - pos);
	rc = uring_read(w->u, w->fd, hdr, sizeof hdr, pos, &got);
	if (rc)
		return rc;
	if (got != sizeof hdr)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "segment %s: short read of the frame header at %" PRIu64,
				  w->path, pos);
	rc = seg_frame_hdr_parse(w->path, hdr, sizeof hdr, f);
	if (rc)
		return cairn_err_wrap(rc, "frame at offset %" PRIu64, pos);
	f->off = pos;
	*span = seg_frame_span(f);
	if (limit - pos < *span)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "segment %s: torn frame at offset %" PRIu64
				  ": %" PRIu64 " of %" PRIu64 " bytes",
				  w->path, pos, limit - pos, *span);
	rc = w_grow(w, f->stored_len ? f->stored_len : 1);
	if (rc)
		return rc;
	rc = uring_read(w->u, w->fd, w->buf, f->stored_len,
			pos + SEG_FRAME_HDR_SIZE, &got);
	if (rc)
		return rc;
	if (got != f->stored_len)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "segment %s: short read of the frame at %" PRIu64,
				  w->path, pos);
	crc = cairn_crc32c(0, w->buf, f->stored_len);
	if (crc != f->crc)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "segment %s: checksum mismatch in frame at offset %" PRIu64
				  " (chunk %" PRIu64 ")",
				  w->path, pos, f->chunk_id);
	return CAIRN_OK;
}

int seg_writer_recover(cairn_uring *u, const char *path, const seg_id *id,
		       uint64_t hwm, const seg_writer_opts *opts,
		       seg_writer **out)
{
	uint8_t hdr[SEG_HEADER_SIZE];
	seg_writer *w = NULL;
	struct stat st;
	uint64_t pos, limit, span = 0;
	size_t got = 0;
	seg_frame f = {0};
	int rc;

	*out = NULL;
	rc = w_new(u, path, id, opts, &w);
	if (rc)
		return rc;
	w->fd = open(path, O_RDWR | O_CLOEXEC);
	if (w->fd < 0) {
		rc = cairn_errf(errno == ENOENT ? CAIRN_E_NOTFOUND : CAIRN_E_IO,
				"open staging segment %s: %s", path,
				strerror(errno));
		goto fail;
	}
	if (fstat(w->fd, &st) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "stat staging segment %s: %s", path,
				strerror(errno));
		goto fail;
	}
	if (hwm != SEG_HWM_SCAN && hwm < SEG_HEADER_SIZE) {
		rc = cairn_errf(CAIRN_E_INVAL,
				"staging segment %s: high-water mark %" PRIu64
				" is inside the header",
				path, hwm);
		goto fail;
	}
	if (hwm != SEG_HWM_SCAN && (uint64_t)st.st_size < hwm) {
		rc = cairn_errf(CAIRN_E_CORRUPT,
				"staging segment %s is %" PRIu64
				" bytes, shorter than its committed high-water mark %" PRIu64,
				path, (uint64_t)st.st_size, hwm);
		goto fail;
	}
	rc = uring_read(u, w->fd, hdr, sizeof hdr, 0, &got);
	if (rc)
		goto fail;
	rc = seg_header_parse(path, hdr, got, id, NULL);
	if (rc)
		goto fail;
	limit = hwm == SEG_HWM_SCAN ? (uint64_t)st.st_size : hwm;
	for (pos = SEG_HEADER_SIZE; pos < limit; pos += span) {
		rc = scan_frame(w, pos, limit, &f, &span);
		if (rc == CAIRN_E_CORRUPT && hwm == SEG_HWM_SCAN) {
			/* Past the last durable frame: what a crash left. */
			CAIRN_WARN(MOD, "staging segment %s: cut at %" PRIu64 ": %s",
				   path, pos, cairn_errmsg());
			rc = CAIRN_OK;
			break;
		}
		if (rc == CAIRN_E_CORRUPT)
			CAIRN_ERROR(MOD, "staging segment %s: committed data below "
				    "the high-water mark %" PRIu64 " is lost: %s",
				    path, hwm, cairn_errmsg());
		if (rc)
			goto fail;
		rc = w_push(w, &f);
		if (rc)
			goto fail;
	}
	if (pos < limit || (uint64_t)st.st_size != pos) {
		if (ftruncate(w->fd, (off_t)pos) != 0) {
			rc = cairn_errf(CAIRN_E_IO, "truncate staging segment %s to %" PRIu64
					": %s", path, pos, strerror(errno));
			goto fail;
		}
	}
	rc = uring_fsync(u, w->fd);
	if (rc) {
		rc = cairn_err_wrap(rc, "recover staging segment %s", path);
		goto fail;
	}
	w->size = w->hwm = w->done = pos;
	*out = w;
	return CAIRN_OK;
fail:
	seg_writer_close(w);
	return rc;
}
