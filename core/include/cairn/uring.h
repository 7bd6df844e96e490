/*
 * cairn/uring.h - the local I/O engine: batched asynchronous reads, writes,
 * fsync and fdatasync of local files.
 *
 * All local file I/O in cairn (staging segments, the cache, spools, the
 * file:// object store) goes through this engine.  It runs on io_uring when
 * the kernel allows it, and otherwise on a pool of threads doing
 * pread/pwrite/fsync (kernel too old, io_uring_disabled sysctl, a container's
 * seccomp profile); the fallback is announced once in the log and named by
 * uring_engine_name().
 *
 * Guarantees
 *   1. A read completes with every byte asked for, or stops early only at end
 *      of file (op->done < op->len, rc 0).  Short reads are resubmitted.
 *   2. A write completes with every byte written, or fails.  Short writes,
 *      EINTR and EAGAIN are retried inside the engine.
 *   3. Operations within one uring_run() or queued on one uring_q have no
 *      order among them.  To order (write, then fsync), wait in between.
 *   4. The engine is thread-safe: each thread takes a queue from the engine's
 *      pool (uring_q_get), so threads never share a ring.
 *
 * Errors are cairn codes; the context names the op, fd, offset and length.
 * Callers wrap it with the path they know.
 *
 * Testing hooks (not for production paths):
 *   - fault injection: uring_fault_set() makes the Nth operation from now
 *     fail with a chosen errno;
 *   - crash simulation (opts.crash_sim): the engine remembers, per file, the
 *     writes not yet covered by an fsync/fdatasync of that file, with the
 *     bytes they overwrote.  uring_crash() then keeps, drops (restores the
 *     old bytes and size) or garbles them, as SQLite's crash VFS does: the
 *     state a power loss could leave.  A real SIGKILL keeps the page cache,
 *     so only this catches a missing fsync.
 */
#ifndef CAIRN_URING_H
#define CAIRN_URING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cairn_uring cairn_uring;
typedef struct cairn_uring_q cairn_uring_q;

typedef enum cairn_io_engine {
	CAIRN_IO_AUTO = 0,    /* io_uring, or the thread pool where unavailable */
	CAIRN_IO_URING = 1,   /* io_uring only: open fails if unavailable */
	CAIRN_IO_THREADS = 2, /* the thread pool, always */
} cairn_io_engine;

typedef struct cairn_uring_opts {
	cairn_io_engine engine; /* default CAIRN_IO_AUTO; env CAIRN_IO_ENGINE=
				   auto|io_uring|threads overrides AUTO */
	unsigned queue_depth;   /* max ops in flight per queue; default 64 */
	unsigned threads;       /* thread-pool size (fallback); default 8 */
	int crash_sim;          /* record unsynced writes for uring_crash() */
} cairn_uring_opts;

enum {
	URING_OP_READ = 1,
	URING_OP_WRITE = 2,
	URING_OP_FSYNC = 3,
	URING_OP_FDATASYNC = 4,
};

typedef struct uring_op {
	/* in */
	int op;        /* URING_OP_* */
	int fd;
	void *buf;     /* read into / write from; unused for sync ops */
	size_t len;
	uint64_t off;
	void *user;    /* caller's cookie, untouched */
	/* out */
	size_t done;   /* bytes transferred */
	int rc;        /* cairn code; 0 on success */
	int err;       /* positive errno of the failure, 0 if none */
	/* private to the engine */
	size_t sub_;
} uring_op;

/* Create an engine. opts may be NULL for defaults.
 * Errors: CAIRN_E_NOMEM; CAIRN_E_UNSUPPORTED when CAIRN_IO_URING was asked
 * for and io_uring is unavailable (context says why). */
int uring_open(const cairn_uring_opts *opts, cairn_uring **out);

/* Wait for nothing: all queues must have been returned. NULL is a no-op. */
void uring_close(cairn_uring *u);

/* "io_uring" or "threads". */
const char *uring_engine_name(const cairn_uring *u);

/* Why the fallback was taken ("" when running io_uring). */
const char *uring_fallback_reason(const cairn_uring *u);

/* Run n independent ops concurrently and wait for all of them.  Every op's
 * rc/err/done is filled.  Returns the first failure's code (context names
 * the op) or 0. */
int uring_run(cairn_uring *u, uring_op *ops, size_t n);

/* Synchronous helpers built on uring_run. *got may be NULL for uring_read
 * only if a short read (EOF) is to be treated as CAIRN_E_IO. */
int uring_read(cairn_uring *u, int fd, void *buf, size_t len, uint64_t off,
	       size_t *got);
int uring_write(cairn_uring *u, int fd, const void *buf, size_t len,
		uint64_t off);
int uring_fsync(cairn_uring *u, int fd);
int uring_fdatasync(cairn_uring *u, int fd);

/* A per-thread I/O buffer: size bytes aligned to align (a power of two,
 * at least sizeof(void *); 4096 suits O_DIRECT), allocated on a thread's
 * first call and kept until the thread ends (the key's destructor frees
 * it), so that a hot path neither allocates nor faults its pages in again
 * per call.  Declare at file scope:
 *
 *     static uring_tbuf buf = URING_TBUF_INIT(8u << 20, 4096);
 *     void *b = uring_tbuf_get(&buf);   // NULL: out of memory
 */
typedef struct uring_tbuf {
	size_t size, align;
	pthread_key_t key;
	int state;  /* 0: no key yet, 1: key made, -1: pthread_key_create failed */
} uring_tbuf;
#define URING_TBUF_INIT(sz, al) {(sz), (al), 0, 0}
void *uring_tbuf_get(uring_tbuf *t);

/* Streaming interface: a private queue keeps up to queue_depth ops in
 * flight; ops complete in any order.  One thread uses a queue at a time.
 *
 *   uring_q_get(u, &q);
 *   while (more or uring_q_inflight(q)) {
 *       while (more && uring_q_inflight(q) < depth) uring_q_submit(q, op);
 *       uring_q_reap(q, &done);   // blocks for one completed op
 *   }
 *   uring_q_put(q);
 */
int uring_q_get(cairn_uring *u, cairn_uring_q **out);
void uring_q_put(cairn_uring_q *q);
/* Errors: CAIRN_E_AGAIN when queue_depth ops are already in flight. The op
 * memory must stay valid until it is reaped. */
int uring_q_submit(cairn_uring_q *q, uring_op *op);
/* Block until one submitted op has completed (fully, short I/O resubmitted)
 * and return it in *done.  Returns the op's rc; CAIRN_E_INVAL when nothing is
 * in flight.  *done is NULL only when nothing was reaped: nothing in flight,
 * or the ring itself failed (CAIRN_E_IO, "io_uring_wait_cqe: ..."). */
int uring_q_reap(cairn_uring_q *q, uring_op **done);
unsigned uring_q_inflight(const cairn_uring_q *q);
unsigned uring_q_depth(const cairn_uring_q *q);

/* --- testing hooks --- */

/* The nth op submitted from now on (1-based, counted engine-wide) fails
 * with errno err (positive; <= 0 means EIO), without touching the file, as
 * if the kernel had returned it; an injected EINTR/EAGAIN is not retried.
 * The message ends in "(injected fault)".  nth 0 disables. */
void uring_fault_set(cairn_uring *u, uint64_t nth, int err);

/* Ops submitted since the engine opened. */
uint64_t uring_op_count(const cairn_uring *u);

enum {
	URING_CRASH_KEEP = 0,   /* unsynced writes all survive */
	URING_CRASH_DROP = 1,   /* unsynced writes all vanish (old bytes, old size) */
	URING_CRASH_GARBLE = 2, /* unsynced ranges hold random bytes */
	URING_CRASH_RANDOM = 3, /* each unsynced write kept, dropped or garbled */
};

/* Simulate a power loss (needs opts.crash_sim).  Afterwards every call on
 * the engine fails with CAIRN_E_CANCELED; close it and open a new one, as a
 * restarted process would.  Errors: CAIRN_E_INVAL without crash_sim. */
int uring_crash(cairn_uring *u, int mode, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
