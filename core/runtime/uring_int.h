/*
 * uring_int.h - internals of the local I/O engine that tests reach for
 * (private to core/runtime and tests/uring; nothing else includes it).
 */
#ifndef CAIRN_URING_INT_H
#define CAIRN_URING_INT_H

#include <stddef.h>

#include "cairn/uring.h"

/* Cap what one read/write SQE (or one pread/pwrite of the thread pool) moves
 * to bytes (>= 1; 0 restores the default, 1 GiB), so that every op of more
 * than `bytes` completes as a series of short transfers.  Lets tests drive
 * the resubmission of short reads and writes, which regular files almost
 * never produce on their own.  Call before any op is in flight. */
void uring_test_set_chunk(cairn_uring *u, size_t bytes);

#endif
