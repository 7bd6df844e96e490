/*
 * uring.c - the local I/O engine (cairn/uring.h): batched asynchronous
 * reads, writes, fsync and fdatasync on io_uring, or on a pool of threads
 * where io_uring is unavailable; plus two testing hooks (fault injection and
 * crash simulation).
 *
 * Structure
 *   An engine (struct cairn_uring) owns a pool of queues.  A queue
 *   (struct cairn_uring_q) is handed to one thread at a time by uring_q_get()
 *   and returned by uring_q_put(); queues are created lazily, up to
 *   URING_MAX_QUEUES, and reused.  On io_uring one queue is one ring, so
 *   threads never share a ring and no ring needs a lock.  On the thread pool a
 *   queue hands its ops to the engine's worker threads and collects their
 *   completions on its own ready list.
 *
 *   Each queue has queue_depth slots.  A slot carries one submitted op and the
 *   engine's private state for it (retry count, crash-sim sequence number); on
 *   io_uring its address is the SQE's user_data.
 *
 * Sign conventions (see also cairn/err.h)
 *   - liburing functions and cqe->res return -errno on failure; cqe->res is
 *     a byte count (>= 0) on success.  They are negated once, where they are
 *     read, into a positive errno.
 *   - uring_op.err and everything inside this file after that point hold
 *     positive errnos; cairn_rc_from_errno() takes a positive errno.
 *   - pread/pwrite/fsync on the thread pool return -1 and set errno
 *     (positive), which is stored as is.
 *
 * Guarantees (beyond those of cairn/uring.h)
 *   1. An op in flight is in exactly one place: an SQE/CQE of its queue's
 *      ring, the engine's job list, a worker's hands, or its queue's ready
 *      list.  Only the thread holding the queue reaps it.
 *   2. Error messages ("pwrite fd 5 off 4096 len 1048576: No space left on
 *      device") are formatted by the reaping thread, so they land in that
 *      thread's cairn_errmsg() whichever thread did the I/O.
 *   3. A read stops early only on a 0-byte read (end of file); a write that
 *      makes no progress repeatedly fails with EIO rather than spinning.
 *
 * Invariants
 *   1. q->inflight == slots not on q->free == ops submitted and not reaped.
 *   2. On io_uring, q->unsubmitted <= q->inflight <= depth <= ring entries,
 *      so io_uring_get_sqe() never runs out and every resubmission of a
 *      short read/write finds an SQE (one op holds at most one SQE/CQE).
 *   3. After uring_crash() (u->crashed) no new op is accepted; only draining
 *      ops already in flight, uring_q_put() and uring_close() work.
 *
 * Op life cycle (per op):
 *
 *     uring_q_submit()          cqe / worker done       uring_q_reap()
 *   new ---------------> in flight -----------------> ready -----------> done
 *          |                ^    |  short read/write,
 *          | injected fault |    |  EINTR, EAGAIN
 *          |                +----+  (resubmit rest)
 *          +-----------------------------------------> ready
 *
 * Engine states:
 *
 *   uring_open() --> running --uring_crash()--> crashed --uring_close()--> gone
 *                       |                                     ^
 *                       +------------ uring_close() ----------+
 *
 * Crash simulation (a test tool; memory grows with the bytes tests write)
 *   With opts.crash_sim every write is preceded by an undo entry: the file's
 *   identity (dev, ino), the offset and length, the bytes the write is about
 *   to overwrite (read with pread) and the file size before it.  The file is
 *   reopened through /proc/self/fd (read-write, without O_DIRECT) and that
 *   descriptor is kept until the file has no undo entries, so the entries can
 *   be applied even after the caller closed or unlinked the file and whatever
 *   its open flags were (falls back to dup() if the reopen fails).  A
 *   successful fsync/fdatasync of a file forgets the entries recorded before
 *   it was submitted: they are durable.  uring_crash() applies the rest
 *   newest first (DROP: old bytes back, then truncate to the size before the
 *   first unsynced write; GARBLE: random bytes over the written ranges; KEEP:
 *   nothing; RANDOM: one of the three per write), and leaves the engine
 *   crashed.  Like SQLite's test6.c, it models a power loss at whole-write
 *   granularity.
 *   Limits: only writes made through this engine are recorded; write(2),
 *   ftruncate, LMDB's own I/O and directory operations (create, rename,
 *   unlink: the directory fsync question) are not modelled, so a file
 *   created by an unsynced write is left empty, not removed.  Call
 *   uring_crash() with no op in flight.
 *
 * Resources: one ring per queue in use.  Before Linux 5.12 rings count
 * against RLIMIT_MEMLOCK; a ring that cannot be created after the first
 * makes uring_q_get() fail with the errno's code (no silent fallback in
 * mid-run: the engine never mixes io_uring and the thread pool).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "cairn/err.h"
#include "cairn/log.h"
#include "cairn/uring.h"
#include "uring_int.h"

#define URING_DEFAULT_DEPTH 64u
#define URING_MAX_DEPTH 4096u
#define URING_DEFAULT_THREADS 8u
#define URING_MAX_THREADS 256u
/* Rings are created lazily; past this many, uring_q_get() waits for one to
 * be returned.  Generous: a ring of 64 entries costs a few pages. */
#define URING_MAX_QUEUES 256u
/* One SQE moves at most this much; longer ops continue as "short" I/O.
 * Linux caps a single read/write at 0x7ffff000 bytes anyway. */
#define URING_MAX_CHUNK ((size_t)1 << 30)
/* EAGAIN and zero-progress writes are retried this many times in a row
 * before the op fails, so a stuck device cannot spin a thread forever. */
#define URING_MAX_RETRIES 1000u

struct uring_slot {
	uring_op *op;
	struct cairn_uring_q *q;
	struct uring_slot *next; /* free list, job list or ready list */
	unsigned retries;
	uint64_t seq; /* crash sim: undo entries older than this are synced */
};

struct cairn_uring_q {
	cairn_uring *u;
	struct io_uring ring;
	int has_ring;
	unsigned depth;
	unsigned inflight;
	unsigned unsubmitted; /* SQEs prepared but not yet given to the kernel */
	struct uring_slot *slots;
	struct uring_slot *free;
	/* ops completed but not reaped: injected faults, pool completions */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct uring_slot *ready_head, *ready_tail;
	struct cairn_uring_q *pool_next; /* engine's list of idle queues */
};

struct crash_file {
	dev_t dev;
	ino_t ino;
	int fd; /* our own descriptor of the file, O_RDWR if we could */
	unsigned nent; /* undo entries of this file */
};

struct crash_ent {
	size_t file; /* index into u->cfiles */
	uint64_t seq;
	uint64_t off;
	size_t len;
	uint8_t *old; /* the bytes [off, off+oldlen) before the write */
	size_t oldlen;
	uint64_t size_before;
};

struct cairn_uring {
	cairn_io_engine engine; /* CAIRN_IO_URING or CAIRN_IO_THREADS, resolved */
	unsigned depth;
	unsigned nthreads;
	int crash_sim;
	size_t chunk; /* max bytes per SQE / syscall (uring_test_set_chunk) */
	char reason[256];

	atomic_uint_fast64_t ops;
	atomic_uint_fast64_t fault_at; /* op number that fails; 0 none */
	atomic_int fault_err;
	atomic_int crashed;

	/* queue pool */
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct cairn_uring_q *idle;
	struct cairn_uring_q **all;
	unsigned nqueues;

	/* thread pool (CAIRN_IO_THREADS) */
	pthread_mutex_t pmu;
	pthread_cond_t pcv;
	struct uring_slot *job_head, *job_tail;
	int stop;
	pthread_t *workers;
	unsigned nworkers;

	/* crash simulation */
	pthread_mutex_t cmu;
	struct crash_file *cfiles;
	size_t ncfiles, capcfiles;
	struct crash_ent *cents;
	size_t ncents, capcents;
	uint64_t cseq;
};

static int uring_fallback_logged;

static const char *op_name(int op)
{
	switch (op) {
	case URING_OP_READ: return "pread";
	case URING_OP_WRITE: return "pwrite";
	case URING_OP_FSYNC: return "fsync";
	case URING_OP_FDATASYNC: return "fdatasync";
	default: return "op";
	}
}

static int op_is_sync(int op)
{
	return op == URING_OP_FSYNC || op == URING_OP_FDATASYNC;
}

/* Set the calling thread's message for a failed op and return its rc. */
static int op_errmsg(const uring_op *op, const char *extra)
{
	const char *why = op->err ? strerror(op->err) : cairn_strerror(op->rc);
	if (op_is_sync(op->op))
		return cairn_errf(op->rc, "%s fd %d: %s%s", op_name(op->op),
				  op->fd, why, extra);
	if (op->done)
		return cairn_errf(op->rc,
				  "%s fd %d off %" PRIu64 " len %zu: %s "
				  "(after %zu bytes)%s",
				  op_name(op->op), op->fd, op->off, op->len,
				  why, op->done, extra);
	return cairn_errf(op->rc, "%s fd %d off %" PRIu64 " len %zu: %s%s",
			  op_name(op->op), op->fd, op->off, op->len, why,
			  extra);
}

static void op_fail(uring_op *op, int err)
{
	op->err = err;
	op->rc = cairn_rc_from_errno(err);
	if (!op->rc)
		op->rc = CAIRN_E_IO;
}

static int crashed_err(void)
{
	return cairn_errf(CAIRN_E_CANCELED,
			  "uring: the engine was crashed by uring_crash(); "
			  "close it and open a new one");
}

/* ------------------------------------------------------------------ */
/* crash simulation                                                    */

static void crash_file_drop(cairn_uring *u, size_t i)
{
	struct crash_file *f = &u->cfiles[i];
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	f->nent = 0;
}

/* Find or add the file record for (dev, ino); opens our own descriptor. */
static int crash_file_get(cairn_uring *u, int fd, const struct stat *st,
			  size_t *out)
{
	size_t i, slot = SIZE_MAX;
	char path[64];
	int nfd;

	for (i = 0; i < u->ncfiles; i++) {
		struct crash_file *f = &u->cfiles[i];
		if (f->fd < 0) {
			if (slot == SIZE_MAX)
				slot = i;
			continue;
		}
		if (f->dev == st->st_dev && f->ino == st->st_ino) {
			*out = i;
			return 0;
		}
	}
	/* A fresh open file description: our pread must work on an O_WRONLY
	 * fd, and our unaligned restore must not inherit O_DIRECT. */
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	nfd = open(path, O_RDWR | O_CLOEXEC);
	if (nfd < 0)
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (nfd < 0)
		return cairn_errf(CAIRN_E_IO, "uring crash sim: dup fd %d: %s",
				  fd, strerror(errno));
	if (slot == SIZE_MAX) {
		if (u->ncfiles == u->capcfiles) {
			size_t cap = u->capcfiles ? u->capcfiles * 2 : 16;
			struct crash_file *nf =
				realloc(u->cfiles, cap * sizeof *nf);
			if (!nf) {
				close(nfd);
				return cairn_errf(CAIRN_E_NOMEM,
						  "uring crash sim: out of memory");
			}
			u->cfiles = nf;
			u->capcfiles = cap;
		}
		slot = u->ncfiles++;
	}
	u->cfiles[slot].dev = st->st_dev;
	u->cfiles[slot].ino = st->st_ino;
	u->cfiles[slot].fd = nfd;
	u->cfiles[slot].nent = 0;
	*out = slot;
	return 0;
}

/* Record the undo entry for a write about to be submitted. */
static int crash_record(cairn_uring *u, const uring_op *op)
{
	struct stat st;
	struct crash_ent *e;
	size_t fi = 0;
	int rc = 0;

	/* A bad fd: let the write itself fail with the engine's message. */
	if (fstat(op->fd, &st) != 0 || !S_ISREG(st.st_mode) || op->len == 0)
		return 0;
	pthread_mutex_lock(&u->cmu);
	rc = crash_file_get(u, op->fd, &st, &fi);
	if (rc)
		goto out;
	if (u->ncents == u->capcents) {
		size_t cap = u->capcents ? u->capcents * 2 : 64;
		struct crash_ent *ne = realloc(u->cents, cap * sizeof *ne);
		if (!ne) {
			rc = cairn_errf(CAIRN_E_NOMEM,
					"uring crash sim: out of memory");
			goto out_file;
		}
		u->cents = ne;
		u->capcents = cap;
	}
	e = &u->cents[u->ncents];
	memset(e, 0, sizeof *e);
	e->file = fi;
	e->seq = ++u->cseq;
	e->off = op->off;
	e->len = op->len;
	e->size_before = (uint64_t)st.st_size;
	if (op->off < (uint64_t)st.st_size) {
		uint64_t avail = (uint64_t)st.st_size - op->off;
		size_t want = avail < op->len ? (size_t)avail : op->len;
		e->old = malloc(want);
		if (!e->old) {
			rc = cairn_errf(CAIRN_E_NOMEM,
					"uring crash sim: out of memory");
			goto out_file;
		}
		while (e->oldlen < want) {
			ssize_t r = pread(u->cfiles[fi].fd, e->old + e->oldlen,
					  want - e->oldlen,
					  (off_t)(op->off + e->oldlen));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				rc = cairn_errf(CAIRN_E_IO,
						"uring crash sim: pread fd %d "
						"off %" PRIu64 ": %s",
						op->fd, op->off, strerror(errno));
				free(e->old);
				goto out_file;
			}
			if (r == 0)
				break;
			e->oldlen += (size_t)r;
		}
	}
	u->cfiles[fi].nent++;
	u->ncents++;
	goto out;
out_file:
	if (u->cfiles[fi].nent == 0)
		crash_file_drop(u, fi);
out:
	pthread_mutex_unlock(&u->cmu);
	return rc;
}

/* A sync op submitted at seq completed: older entries of its file are
 * durable. */
static void crash_synced(cairn_uring *u, int fd, uint64_t seq)
{
	struct stat st;
	size_t i, j, fi = SIZE_MAX;

	if (fstat(fd, &st) != 0)
		return;
	pthread_mutex_lock(&u->cmu);
	for (i = 0; i < u->ncfiles; i++)
		if (u->cfiles[i].fd >= 0 && u->cfiles[i].dev == st.st_dev &&
		    u->cfiles[i].ino == st.st_ino)
			fi = i;
	if (fi == SIZE_MAX)
		goto out;
	for (i = 0, j = 0; i < u->ncents; i++) {
		struct crash_ent *e = &u->cents[i];
		if (e->file == fi && e->seq < seq) {
			free(e->old);
			u->cfiles[fi].nent--;
			continue;
		}
		u->cents[j++] = *e;
	}
	u->ncents = j;
	if (u->cfiles[fi].nent == 0)
		crash_file_drop(u, fi);
out:
	pthread_mutex_unlock(&u->cmu);
}

static uint64_t crash_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int crash_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pwrite(fd, (const uint8_t *)buf + done, len - done,
				   (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return cairn_errf(CAIRN_E_IO,
					  "uring crash: pwrite off %" PRIu64
					  " len %zu: %s",
					  off + done, len - done,
					  r < 0 ? strerror(errno) : "no progress");
		done += (size_t)r;
	}
	return 0;
}

/* Apply one undo entry under mode (KEEP/DROP/GARBLE). */
static int crash_apply(cairn_uring *u, const struct crash_ent *e, int mode,
		       uint64_t *rng)
{
	int fd = u->cfiles[e->file].fd;
	uint8_t buf[65536];
	size_t done;
	int rc;

	if (mode == URING_CRASH_KEEP)
		return 0;
	if (mode == URING_CRASH_DROP && e->oldlen) {
		rc = crash_pwrite_all(fd, e->old, e->oldlen, e->off);
		if (rc)
			return rc;
	}
	/* DROP: zeros past the old end of file (truncated later if nothing
	 * kept extends the file); GARBLE: random bytes everywhere. */
	done = mode == URING_CRASH_DROP ? e->oldlen : 0;
	while (done < e->len) {
		size_t n = e->len - done < sizeof buf ? e->len - done : sizeof buf;
		if (mode == URING_CRASH_DROP) {
			memset(buf, 0, n);
		} else {
			for (size_t i = 0; i < n; i += 8) {
				uint64_t r = crash_rand(rng);
				memcpy(buf + i, &r, n - i < 8 ? n - i : 8);
			}
		}
		rc = crash_pwrite_all(fd, buf, n, e->off + done);
		if (rc)
			return rc;
		done += n;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* thread pool                                                         */

/* Run one op to completion with blocking syscalls (on a worker thread). */
static void pool_exec(const cairn_uring *u, uring_op *op)
{
	unsigned retries = 0;

	if (op_is_sync(op->op)) {
		for (;;) {
			int r = op->op == URING_OP_FSYNC ? fsync(op->fd)
							 : fdatasync(op->fd);
			if (r == 0)
				return;
			if (errno == EINTR ||
			    (errno == EAGAIN && ++retries < URING_MAX_RETRIES))
				continue;
			op_fail(op, errno);
			return;
		}
	}
	while (op->done < op->len) {
		size_t n = op->len - op->done;
		uint8_t *p = (uint8_t *)op->buf + op->done;
		off_t off = (off_t)(op->off + op->done);
		ssize_t r;

		if (n > u->chunk)
			n = u->chunk;
		r = op->op == URING_OP_READ ? pread(op->fd, p, n, off)
					    : pwrite(op->fd, p, n, off);
		if (r < 0) {
			if (errno == EINTR ||
			    (errno == EAGAIN && ++retries < URING_MAX_RETRIES))
				continue;
			op_fail(op, errno);
			return;
		}
		if (r == 0) {
			if (op->op == URING_OP_READ)
				return; /* end of file */
			if (++retries < URING_MAX_RETRIES)
				continue;
			op_fail(op, EIO);
			return;
		}
		retries = 0;
		op->done += (size_t)r;
	}
}

static void q_ready_push(struct cairn_uring_q *q, struct uring_slot *s)
{
	pthread_mutex_lock(&q->mu);
	s->next = NULL;
	if (q->ready_tail)
		q->ready_tail->next = s;
	else
		q->ready_head = s;
	q->ready_tail = s;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

static void *pool_worker(void *arg)
{
	cairn_uring *u = arg;

	pthread_mutex_lock(&u->pmu);
	for (;;) {
		struct uring_slot *s;
		while (!u->job_head && !u->stop)
			pthread_cond_wait(&u->pcv, &u->pmu);
		if (!u->job_head)
			break;
		s = u->job_head;
		u->job_head = s->next;
		if (!u->job_head)
			u->job_tail = NULL;
		pthread_mutex_unlock(&u->pmu);
		pool_exec(u, s->op);
		q_ready_push(s->q, s);
		pthread_mutex_lock(&u->pmu);
	}
	pthread_mutex_unlock(&u->pmu);
	return NULL;
}

static void pool_enqueue(cairn_uring *u, struct uring_slot *s)
{
	pthread_mutex_lock(&u->pmu);
	s->next = NULL;
	if (u->job_tail)
		u->job_tail->next = s;
	else
		u->job_head = s;
	u->job_tail = s;
	pthread_cond_signal(&u->pcv);
	pthread_mutex_unlock(&u->pmu);
}

static void pool_stop(cairn_uring *u)
{
	pthread_mutex_lock(&u->pmu);
	u->stop = 1;
	pthread_cond_broadcast(&u->pcv);
	pthread_mutex_unlock(&u->pmu);
	for (unsigned i = 0; i < u->nworkers; i++)
		pthread_join(u->workers[i], NULL);
	u->nworkers = 0;
}

static int pool_start(cairn_uring *u)
{
	u->workers = calloc(u->nthreads, sizeof *u->workers);
	if (!u->workers)
		return cairn_errf(CAIRN_E_NOMEM, "uring: out of memory");
	for (unsigned i = 0; i < u->nthreads; i++) {
		int r = pthread_create(&u->workers[i], NULL, pool_worker, u);
		if (r) {
			pool_stop(u);
			return cairn_errf(CAIRN_E_NOMEM,
					  "uring: pthread_create: %s",
					  strerror(r));
		}
		u->nworkers++;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* queues                                                              */

static void q_destroy(struct cairn_uring_q *q)
{
	if (!q)
		return;
	if (q->has_ring)
		io_uring_queue_exit(&q->ring);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q->slots);
	free(q);
}

/* Make a queue; on io_uring, *ring_err gets the positive errno of a failed
 * ring setup (rc CAIRN_E_UNSUPPORTED) so uring_open can fall back. */
static int q_create(cairn_uring *u, struct cairn_uring_q **out, int *ring_err)
{
	struct cairn_uring_q *q = calloc(1, sizeof *q);
	int r;

	*ring_err = 0;
	if (!q)
		return cairn_errf(CAIRN_E_NOMEM, "uring: out of memory");
	q->u = u;
	q->depth = u->depth;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->slots = calloc(q->depth, sizeof *q->slots);
	if (!q->slots) {
		q_destroy(q);
		return cairn_errf(CAIRN_E_NOMEM, "uring: out of memory");
	}
	for (unsigned i = 0; i < q->depth; i++) {
		q->slots[i].q = q;
		q->slots[i].next = i + 1 < q->depth ? &q->slots[i + 1] : NULL;
	}
	q->free = &q->slots[0];
	if (u->engine == CAIRN_IO_URING) {
		/* liburing: returns -errno. */
		r = io_uring_queue_init(q->depth, &q->ring, 0);
		if (r < 0) {
			*ring_err = -r;
			q_destroy(q);
			return cairn_errf(CAIRN_E_UNSUPPORTED,
					  "io_uring_queue_init(%u): %s",
					  u->depth, strerror(-r));
		}
		q->has_ring = 1;
	}
	*out = q;
	return 0;
}

static int q_register(cairn_uring *u, struct cairn_uring_q *q)
{
	struct cairn_uring_q **na =
		realloc(u->all, (u->nqueues + 1) * sizeof *na);
	if (!na)
		return cairn_errf(CAIRN_E_NOMEM, "uring: out of memory");
	u->all = na;
	u->all[u->nqueues++] = q;
	return 0;
}

/* Prepare the SQE for what remains of the op in slot s (io_uring). */
static void q_prep(struct cairn_uring_q *q, struct uring_slot *s)
{
	uring_op *op = s->op;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	/* Invariant 2: cannot happen; submitting makes room if it ever does. */
	if (!sqe) {
		int r = io_uring_submit(&q->ring);
		if (r > 0)
			q->unsubmitted -= (unsigned)r < q->unsubmitted
						  ? (unsigned)r
						  : q->unsubmitted;
		sqe = io_uring_get_sqe(&q->ring);
		if (!sqe) {
			op_fail(op, EAGAIN);
			q_ready_push(q, s);
			return;
		}
	}
	switch (op->op) {
	case URING_OP_READ:
	case URING_OP_WRITE: {
		size_t n = op->len - op->done;
		if (n > q->u->chunk)
			n = q->u->chunk;
		if (op->op == URING_OP_READ)
			io_uring_prep_read(sqe, op->fd,
					   (uint8_t *)op->buf + op->done,
					   (unsigned)n, op->off + op->done);
		else
			io_uring_prep_write(sqe, op->fd,
					    (uint8_t *)op->buf + op->done,
					    (unsigned)n, op->off + op->done);
		break;
	}
	case URING_OP_FSYNC:
		io_uring_prep_fsync(sqe, op->fd, 0);
		break;
	default:
		io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data(sqe, s);
	q->unsubmitted++;
}

/* Handle one CQE: 1 if its op is complete, 0 if it was resubmitted. */
static int q_complete_cqe(struct cairn_uring_q *q, struct uring_slot *s,
			  int res)
{
	uring_op *op = s->op;

	/* liburing/kernel: res is -errno on failure, bytes on success. */
	if (res < 0) {
		int err = -res;
		if (err == EINTR ||
		    (err == EAGAIN && ++s->retries < URING_MAX_RETRIES)) {
			q_prep(q, s);
			return 0;
		}
		op_fail(op, err);
		return 1;
	}
	if (op_is_sync(op->op))
		return 1;
	if (res == 0) {
		if (op->op == URING_OP_READ || op->done == op->len)
			return 1; /* end of file, or a zero-length op */
		if (++s->retries < URING_MAX_RETRIES) {
			q_prep(q, s);
			return 0;
		}
		op_fail(op, EIO);
		return 1;
	}
	s->retries = 0;
	op->done += (size_t)res;
	if (op->done > op->len)
		op->done = op->len; /* never trust a count past what we asked */
	if (op->done < op->len) {
		q_prep(q, s); /* short read/write: the rest */
		return 0;
	}
	return 1;
}

int uring_q_get(cairn_uring *u, cairn_uring_q **out)
{
	struct cairn_uring_q *q = NULL;
	int rc = 0, ring_err;

	*out = NULL;
	if (atomic_load(&u->crashed))
		return crashed_err();
	pthread_mutex_lock(&u->qmu);
	while (!u->idle && u->nqueues >= URING_MAX_QUEUES)
		pthread_cond_wait(&u->qcv, &u->qmu);
	if (u->idle) {
		q = u->idle;
		u->idle = q->pool_next;
		q->pool_next = NULL;
	} else {
		rc = q_create(u, &q, &ring_err);
		/* io_uring worked at open; a later ring failing is a resource
		 * limit (memlock on kernels before 5.12, ENOMEM), not a
		 * missing feature. */
		if (rc && ring_err)
			rc = cairn_errf(cairn_rc_from_errno(ring_err),
					"io_uring_queue_init(%u): %s",
					u->depth, strerror(ring_err));
		if (rc == 0) {
			rc = q_register(u, q);
			if (rc) {
				q_destroy(q);
				q = NULL;
			}
		}
		if (rc)
			rc = cairn_err_wrap(rc, "uring: new queue");
	}
	pthread_mutex_unlock(&u->qmu);
	*out = q;
	return rc;
}

void uring_q_put(cairn_uring_q *q)
{
	cairn_uring *u;

	if (!q)
		return;
	u = q->u;
	/* Ops still in flight would write into memory the caller is about to
	 * free, and the next holder would reap them: drain them here. */
	while (q->inflight) {
		uring_op *done;
		(void)uring_q_reap(q, &done);
		if (!done)
			break; /* the ring itself failed */
	}
	if (q->inflight) {
		/* A failed ring still holds ops the next holder would reap
		 * into freed memory: retire the queue (uring_close frees it
		 * with the others) instead of pooling it. */
		CAIRN_ERROR("uring", "retiring a failed queue with %u ops in flight",
			    q->inflight);
		return;
	}
	pthread_mutex_lock(&u->qmu);
	q->pool_next = u->idle;
	u->idle = q;
	pthread_cond_signal(&u->qcv);
	pthread_mutex_unlock(&u->qmu);
}

unsigned uring_q_inflight(const cairn_uring_q *q)
{
	return q->inflight;
}

unsigned uring_q_depth(const cairn_uring_q *q)
{
	return q->depth;
}

static int op_validate(const uring_op *op)
{
	if (op->op < URING_OP_READ || op->op > URING_OP_FDATASYNC)
		return cairn_errf(CAIRN_E_INVAL, "uring: bad op code %d",
				  op->op);
	if (op_is_sync(op->op))
		return 0;
	if (!op->buf && op->len)
		return cairn_errf(CAIRN_E_INVAL,
				  "uring: %s fd %d len %zu with a NULL buffer",
				  op_name(op->op), op->fd, op->len);
	/* io_uring reads offset -1 as "the file position"; pread takes off_t. */
	if (op->off > (uint64_t)INT64_MAX ||
	    op->len > (uint64_t)INT64_MAX - op->off)
		return cairn_errf(CAIRN_E_INVAL,
				  "uring: %s fd %d off %" PRIu64
				  " len %zu: offset out of range",
				  op_name(op->op), op->fd, op->off, op->len);
	return 0;
}

int uring_q_submit(cairn_uring_q *q, uring_op *op)
{
	cairn_uring *u = q->u;
	struct uring_slot *s;
	uint64_t n, at;
	int rc;

	op->done = 0;
	op->err = 0;
	op->rc = 0;
	op->sub_ = 0;
	if (atomic_load(&u->crashed)) {
		op->rc = CAIRN_E_CANCELED;
		return crashed_err();
	}
	rc = op_validate(op);
	if (rc) {
		op->rc = rc;
		return rc;
	}
	if (q->inflight >= q->depth) {
		op->rc = CAIRN_E_AGAIN;
		return cairn_errf(CAIRN_E_AGAIN,
				  "uring: queue full (%u ops in flight)",
				  q->depth);
	}
	if (u->crash_sim && op->op == URING_OP_WRITE) {
		rc = crash_record(u, op);
		if (rc) {
			op->rc = rc;
			return rc;
		}
	}
	s = q->free;
	q->free = s->next;
	s->next = NULL;
	s->op = op;
	s->retries = 0;
	s->seq = 0;
	q->inflight++;
	if (u->crash_sim && op_is_sync(op->op)) {
		pthread_mutex_lock(&u->cmu);
		s->seq = u->cseq + 1;
		pthread_mutex_unlock(&u->cmu);
	}

	n = atomic_fetch_add(&u->ops, 1) + 1;
	at = atomic_load(&u->fault_at);
	if (at && n == at) {
		/* Injected: completes at once, the file is never touched. */
		op_fail(op, atomic_load(&u->fault_err));
		op->sub_ = 1;
		q_ready_push(q, s);
		return 0;
	}
	if (u->engine == CAIRN_IO_URING)
		q_prep(q, s);
	else
		pool_enqueue(u, s);
	return 0;
}

static int q_finish(struct cairn_uring_q *q, struct uring_slot *s,
		    uring_op **done)
{
	cairn_uring *u = q->u;
	uring_op *op = s->op;
	uint64_t seq = s->seq;

	s->op = NULL;
	s->next = q->free;
	q->free = s;
	q->inflight--;
	*done = op;
	if (op->rc)
		return op_errmsg(op, op->sub_ ? " (injected fault)" : "");
	/* An op that completes after a simulated power loss did not happen
	 * as far as the disk is concerned: above all, an fsync still in flight
	 * at the crash must not report as durable bytes the crash dropped. */
	if (atomic_load(&u->crashed)) {
		op->rc = CAIRN_E_CANCELED;
		op->err = ECANCELED;
		return crashed_err();
	}
	if (seq && op_is_sync(op->op))
		crash_synced(u, op->fd, seq);
	return 0;
}

int uring_q_reap(cairn_uring_q *q, uring_op **done)
{
	*done = NULL;
	if (!q->inflight)
		return cairn_errf(CAIRN_E_INVAL,
				  "uring: reap with nothing in flight");
	for (;;) {
		struct uring_slot *s = NULL;
		struct io_uring_cqe *cqe;
		int r;

		pthread_mutex_lock(&q->mu);
		if (!q->ready_head && !q->has_ring) {
			while (!q->ready_head)
				pthread_cond_wait(&q->cv, &q->mu);
		}
		if (q->ready_head) {
			s = q->ready_head;
			q->ready_head = s->next;
			if (!q->ready_head)
				q->ready_tail = NULL;
		}
		pthread_mutex_unlock(&q->mu);
		if (s)
			return q_finish(q, s, done);

		/* io_uring: hand the kernel what is pending and wait for one
		 * completion in the same syscall.  liburing returns -errno. */
		if (q->unsubmitted) {
			r = io_uring_submit_and_wait(&q->ring, 1);
			if (r > 0)
				q->unsubmitted -= (unsigned)r < q->unsubmitted
							  ? (unsigned)r
							  : q->unsubmitted;
			else if (r < 0 && r != -EINTR && r != -EAGAIN &&
				 r != -EBUSY)
				return cairn_errf(CAIRN_E_IO,
						  "io_uring_submit: %s",
						  strerror(-r));
		}
		r = io_uring_wait_cqe(&q->ring, &cqe);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r < 0)
			return cairn_errf(CAIRN_E_IO, "io_uring_wait_cqe: %s",
					  strerror(-r));
		s = io_uring_cqe_get_data(cqe);
		r = cqe->res;
		io_uring_cqe_seen(&q->ring, cqe);
		if (q_complete_cqe(q, s, r))
			return q_finish(q, s, done);
	}
}

/* ------------------------------------------------------------------ */
/* engine                                                              */

static int engine_from_env(cairn_io_engine *e)
{
	const char *v = getenv("CAIRN_IO_ENGINE");
	if (!v || !*v || strcmp(v, "auto") == 0)
		return 0;
	if (strcmp(v, "io_uring") == 0) {
		*e = CAIRN_IO_URING;
		return 0;
	}
	if (strcmp(v, "threads") == 0) {
		*e = CAIRN_IO_THREADS;
		return 0;
	}
	return cairn_errf(CAIRN_E_INVAL,
			  "CAIRN_IO_ENGINE='%.64s': expected auto, io_uring "
			  "or threads", v);
}

static void explain_ring_err(int err, char *buf, size_t size)
{
	const char *hint = "";
	char dis[32] = "";
	FILE *f;

	if (err == ENOSYS) {
		hint = " (kernel without io_uring, or blocked by seccomp)";
	} else if (err == EPERM) {
		f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
		if (f) {
			if (!fgets(dis, sizeof dis, f))
				dis[0] = 0;
			fclose(f);
			dis[strcspn(dis, "\n")] = 0;
		}
		hint = dis[0] && strcmp(dis, "0") != 0
			       ? " (sysctl kernel.io_uring_disabled is set)"
			       : " (blocked by seccomp or a security policy)";
	} else if (err == ENOMEM) {
		hint = " (locked-memory limit too low?)";
	}
	snprintf(buf, size, "io_uring_setup: %s%s", strerror(err), hint);
}

int uring_open(const cairn_uring_opts *opts, cairn_uring **out)
{
	cairn_uring_opts o = {0};
	cairn_uring *u;
	struct cairn_uring_q *q = NULL;
	const char *why_threads = "thread pool requested (opts.engine)";
	int rc, ring_err = 0;

	*out = NULL;
	if (opts)
		o = *opts;
	if (o.engine == CAIRN_IO_AUTO) {
		rc = engine_from_env(&o.engine);
		if (rc)
			return rc;
		why_threads = "thread pool requested (CAIRN_IO_ENGINE=threads)";
	}
	if (o.engine != CAIRN_IO_AUTO && o.engine != CAIRN_IO_URING &&
	    o.engine != CAIRN_IO_THREADS)
		return cairn_errf(CAIRN_E_INVAL, "uring_open: bad engine %d",
				  (int)o.engine);
	if (!o.queue_depth)
		o.queue_depth = URING_DEFAULT_DEPTH;
	if (!o.threads)
		o.threads = URING_DEFAULT_THREADS;
	if (o.queue_depth > URING_MAX_DEPTH)
		return cairn_errf(CAIRN_E_RANGE,
				  "uring_open: queue_depth %u > %u",
				  o.queue_depth, URING_MAX_DEPTH);
	if (o.threads > URING_MAX_THREADS)
		return cairn_errf(CAIRN_E_RANGE, "uring_open: threads %u > %u",
				  o.threads, URING_MAX_THREADS);

	u = calloc(1, sizeof *u);
	if (!u)
		return cairn_errf(CAIRN_E_NOMEM, "uring_open: out of memory");
	u->depth = o.queue_depth;
	u->nthreads = o.threads;
	u->crash_sim = o.crash_sim;
	u->chunk = URING_MAX_CHUNK;
	atomic_init(&u->ops, 0);
	atomic_init(&u->fault_at, 0);
	atomic_init(&u->fault_err, 0);
	atomic_init(&u->crashed, 0);
	pthread_mutex_init(&u->qmu, NULL);
	pthread_cond_init(&u->qcv, NULL);
	pthread_mutex_init(&u->pmu, NULL);
	pthread_cond_init(&u->pcv, NULL);
	pthread_mutex_init(&u->cmu, NULL);

	if (o.engine != CAIRN_IO_THREADS) {
		/* Probe with the first ring; it becomes the first pooled
		 * queue. */
		u->engine = CAIRN_IO_URING;
		rc = q_create(u, &q, &ring_err);
		if (rc && !ring_err)
			goto fail;
		if (rc) {
			explain_ring_err(ring_err, u->reason, sizeof u->reason);
			if (o.engine == CAIRN_IO_URING) {
				rc = cairn_errf(CAIRN_E_UNSUPPORTED,
						"io_uring engine requested but "
						"unavailable: %s",
						u->reason);
				goto fail;
			}
			cairn_log_once(&uring_fallback_logged, CAIRN_LOG_WARN,
				       "uring",
				       "io_uring unavailable (%s); using a "
				       "pool of %u threads",
				       u->reason, u->nthreads);
			u->engine = CAIRN_IO_THREADS;
			q = NULL;
		}
	} else {
		u->engine = CAIRN_IO_THREADS;
		snprintf(u->reason, sizeof u->reason, "%s", why_threads);
	}
	if (u->engine == CAIRN_IO_THREADS) {
		rc = pool_start(u);
		if (rc)
			goto fail;
	}
	if (q) {
		rc = q_register(u, q);
		if (rc)
			goto fail;
		u->idle = q;
		q = NULL;
	}
	*out = u;
	return 0;
fail:
	q_destroy(q);
	uring_close(u);
	return rc;
}

void uring_close(cairn_uring *u)
{
	if (!u)
		return;
	if (u->nworkers)
		pool_stop(u);
	for (unsigned i = 0; i < u->nqueues; i++)
		q_destroy(u->all[i]);
	free(u->all);
	free(u->workers);
	for (size_t i = 0; i < u->ncents; i++)
		free(u->cents[i].old);
	for (size_t i = 0; i < u->ncfiles; i++)
		if (u->cfiles[i].fd >= 0)
			close(u->cfiles[i].fd);
	free(u->cents);
	free(u->cfiles);
	pthread_mutex_destroy(&u->qmu);
	pthread_cond_destroy(&u->qcv);
	pthread_mutex_destroy(&u->pmu);
	pthread_cond_destroy(&u->pcv);
	pthread_mutex_destroy(&u->cmu);
	free(u);
}

const char *uring_engine_name(const cairn_uring *u)
{
	return u->engine == CAIRN_IO_URING ? "io_uring" : "threads";
}

const char *uring_fallback_reason(const cairn_uring *u)
{
	return u->engine == CAIRN_IO_URING ? "" : u->reason;
}

int uring_run(cairn_uring *u, uring_op *ops, size_t n)
{
	cairn_uring_q *q;
	char first_msg[1024] = "";
	int first = 0, rc;
	size_t next = 0;

	if (n == 0 && !atomic_load(&u->crashed))
		return 0;
	rc = uring_q_get(u, &q); /* CAIRN_E_CANCELED after uring_crash() */
	if (rc) {
		for (size_t i = 0; i < n; i++) {
			ops[i].rc = rc;
			ops[i].err = 0;
			ops[i].done = 0;
		}
		return rc;
	}
	while (next < n || uring_q_inflight(q)) {
		uring_op *done;
		while (next < n && uring_q_inflight(q) < uring_q_depth(q)) {
			rc = uring_q_submit(q, &ops[next]);
			next++;
			if (rc && !first) {
				first = rc;
				cairn_err_copy(first_msg, sizeof first_msg);
			}
		}
		if (!uring_q_inflight(q))
			continue;
		rc = uring_q_reap(q, &done);
		if (rc && !first) {
			first = rc;
			cairn_err_copy(first_msg, sizeof first_msg);
		}
		if (!done)
			break; /* the ring itself failed: nothing will complete */
	}
	uring_q_put(q);
	if (first)
		return cairn_err_set(first, first_msg);
	return 0;
}

int uring_read(cairn_uring *u, int fd, void *buf, size_t len, uint64_t off,
	       size_t *got)
{
	uring_op op = {.op = URING_OP_READ, .fd = fd, .buf = buf, .len = len,
		       .off = off};
	int rc = uring_run(u, &op, 1);

	if (got)
		*got = op.done;
	if (rc)
		return rc;
	if (!got && op.done < len)
		return cairn_errf(CAIRN_E_IO,
				  "pread fd %d off %" PRIu64 " len %zu: short "
				  "read, end of file after %zu bytes",
				  fd, off, len, op.done);
	return 0;
}

static pthread_mutex_t tbuf_mu = PTHREAD_MUTEX_INITIALIZER;

void *uring_tbuf_get(uring_tbuf *t)
{
	void *b;

	if (__atomic_load_n(&t->state, __ATOMIC_ACQUIRE) == 0) {
		pthread_mutex_lock(&tbuf_mu);
		if (t->state == 0)
			__atomic_store_n(&t->state, pthread_key_create(&t->key, free)
					 ? -1 : 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&tbuf_mu);
	}
	if (t->state < 0)
		return NULL;
	if ((b = pthread_getspecific(t->key)))
		return b;
	if (posix_memalign(&b, t->align, t->size))
		return NULL;
	if (pthread_setspecific(t->key, b)) {
		free(b);
		return NULL;
	}
	return b;
}

int uring_write(cairn_uring *u, int fd, const void *buf, size_t len,
		uint64_t off)
{
	/* The engine never writes into buf; the cast only fits uring_op. */
	uring_op op = {.op = URING_OP_WRITE, .fd = fd, .buf = (void *)buf,
		       .len = len, .off = off};
	return uring_run(u, &op, 1);
}

int uring_fsync(cairn_uring *u, int fd)
{
	uring_op op = {.op = URING_OP_FSYNC, .fd = fd};
	return uring_run(u, &op, 1);
}

int uring_fdatasync(cairn_uring *u, int fd)
{
	uring_op op = {.op = URING_OP_FDATASYNC, .fd = fd};
	return uring_run(u, &op, 1);
}

void uring_test_set_chunk(cairn_uring *u, size_t bytes)
{
	u->chunk = bytes && bytes < URING_MAX_CHUNK ? bytes : URING_MAX_CHUNK;
}

void uring_fault_set(cairn_uring *u, uint64_t nth, int err)
{
	atomic_store(&u->fault_err, err > 0 ? err : EIO);
	atomic_store(&u->fault_at, nth ? atomic_load(&u->ops) + nth : 0);
}

uint64_t uring_op_count(const cairn_uring *u)
{
	return atomic_load(&((cairn_uring *)u)->ops);
}

int uring_crash(cairn_uring *u, int mode, uint64_t seed)
{
	uint64_t rng = seed;
	uint64_t *final = NULL;
	int rc = 0;

	if (!u->crash_sim)
		return cairn_errf(CAIRN_E_INVAL,
				  "uring_crash: the engine was opened without "
				  "crash_sim");
	if (mode < URING_CRASH_KEEP || mode > URING_CRASH_RANDOM)
		return cairn_errf(CAIRN_E_INVAL, "uring_crash: bad mode %d",
				  mode);
	if (atomic_exchange(&u->crashed, 1))
		return crashed_err();

	pthread_mutex_lock(&u->cmu);
	/* final[i]: the size file i is left with = its size before its first
	 * unsynced write, or the end of a later write that survives. */
	final = calloc(u->ncfiles ? u->ncfiles : 1, sizeof *final);
	if (!final) {
		rc = cairn_errf(CAIRN_E_NOMEM, "uring_crash: out of memory");
		goto out;
	}
	for (size_t i = 0; i < u->ncfiles; i++)
		final[i] = UINT64_MAX;
	for (size_t i = u->ncents; i-- > 0;) {
		struct crash_ent *e = &u->cents[i];
		int m = mode;
		int r;
		if (m == URING_CRASH_RANDOM)
			m = (int)(crash_rand(&rng) % 3);
		/* Walking newest first, the last assignment wins: the size
		 * before the oldest unsynced write of the file. */
		final[e->file] = e->size_before;
		r = crash_apply(u, e, m, &rng);
		if (r && !rc)
			rc = r;
		if (m != URING_CRASH_DROP)
			e->size_before = UINT64_MAX - 1; /* mark survivor */
	}
	for (size_t i = 0; i < u->ncents; i++) {
		struct crash_ent *e = &u->cents[i];
		if (e->size_before == UINT64_MAX - 1 &&
		    e->off + e->len > final[e->file])
			final[e->file] = e->off + e->len;
	}
	for (size_t i = 0; i < u->ncfiles; i++) {
		struct stat st;
		struct crash_file *f = &u->cfiles[i];
		if (f->fd < 0 || final[i] == UINT64_MAX)
			continue;
		if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size > final[i] &&
		    ftruncate(f->fd, (off_t)final[i]) != 0 && !rc)
			rc = cairn_errf(CAIRN_E_IO,
					"uring_crash: ftruncate: %s",
					strerror(errno));
	}
out:
	for (size_t i = 0; i < u->ncents; i++)
		free(u->cents[i].old);
	u->ncents = 0;
	for (size_t i = 0; i < u->ncfiles; i++)
		crash_file_drop(u, i);
	pthread_mutex_unlock(&u->cmu);
	free(final);
	return rc;
}
