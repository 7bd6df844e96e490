/*
 * bench_uring.c - sequential O_DIRECT throughput of the local I/O engine,
 * for bench/run.py, which runs fio on the same file at the same queue depth
 * as the baseline.
 *
 *   bench_uring --mode read|write --file PATH --size BYTES [--bs BYTES]
 *               [--qd N] [--engine auto|io_uring|threads] [--threads N]
 *
 * Reads or writes [0, size) in bs-sized ops through the streaming API
 * (uring_q_get/submit/reap), keeping qd ops in flight, like fio's
 * --rw=read|write --iodepth=qd --direct=1.  No fsync at the end (fio's
 * default, end_fsync=0).  Prints one JSON object on stdout:
 *
 *   {"mode":"read","engine":"io_uring","bytes":...,"seconds":...,
 *    "mib_s":...,"qd":32,"bs":1048576,"threads":0}
 *
 * Exit 0 on success; 1 with a message on stderr otherwise.  Not a test:
 * figures only mean something beside their baseline.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/err.h"
#include "cairn/uring.h"

struct bench_args {
	const char *mode;
	const char *file;
	const char *engine;
	uint64_t size;
	uint64_t bs;
	unsigned qd;
	unsigned threads;
};

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end == 'K' || *end == 'k')
		mul = 1024, end++;
	else if (*end == 'M' || *end == 'm')
		mul = 1024 * 1024, end++;
	else if (*end == 'G' || *end == 'g')
		mul = 1024ull * 1024 * 1024, end++;
	if (*end)
		return -1;
	*out = (uint64_t)v * mul;
	return 0;
}

static int parse_args(int argc, char **argv, struct bench_args *a)
{
	uint64_t v;

	*a = (struct bench_args){.mode = NULL, .file = NULL, .engine = "auto",
				 .size = 0, .bs = 1 << 20, .qd = 32,
				 .threads = 0};
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!val) {
			fprintf(stderr, "bench_uring: %s needs a value\n", k);
			return -1;
		}
		i++;
		if (strcmp(k, "--mode") == 0) {
			a->mode = val;
		} else if (strcmp(k, "--file") == 0) {
			a->file = val;
		} else if (strcmp(k, "--engine") == 0) {
			a->engine = val;
		} else if (strcmp(k, "--size") == 0 || strcmp(k, "--bs") == 0 ||
			   strcmp(k, "--qd") == 0 ||
			   strcmp(k, "--threads") == 0) {
			if (parse_u64(val, &v) != 0) {
				fprintf(stderr, "bench_uring: %s '%s': not a "
						"number\n", k, val);
				return -1;
			}
			if (strcmp(k, "--size") == 0)
				a->size = v;
			else if (strcmp(k, "--bs") == 0)
				a->bs = v;
			else if (v > 4096) {
				fprintf(stderr, "bench_uring: %s %" PRIu64
						" too large\n", k, v);
				return -1;
			} else if (strcmp(k, "--qd") == 0)
				a->qd = (unsigned)v;
			else
				a->threads = (unsigned)v;
		} else {
			fprintf(stderr, "bench_uring: unknown option %s\n", k);
			return -1;
		}
	}
	if (!a->mode || !a->file || !a->size ||
	    (strcmp(a->mode, "read") && strcmp(a->mode, "write"))) {
		fprintf(stderr, "usage: bench_uring --mode read|write --file "
				"PATH --size BYTES [--bs BYTES] [--qd N] "
				"[--engine auto|io_uring|threads] "
				"[--threads N]\n");
		return -1;
	}
	if (!a->qd || !a->bs || a->bs % 4096 || a->size % a->bs ||
	    a->bs > (1u << 30)) {
		fprintf(stderr, "bench_uring: need qd >= 1, bs a multiple of "
				"4096 up to 1 GiB, size a multiple of bs\n");
		return -1;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct bench_args a;
	cairn_uring_opts o = {0};
	cairn_uring *u = NULL;
	cairn_uring_q *q = NULL;
	uring_op *ops = NULL;
	uint8_t *bufs = NULL;
	uint64_t next_off = 0, bytes = 0;
	int writing, fd = -1, rc = 1;
	double t0, t1;
	void *mem = NULL;

	if (parse_args(argc, argv, &a) != 0)
		return 1;
	writing = strcmp(a.mode, "write") == 0;
	if (strcmp(a.engine, "auto") == 0)
		o.engine = CAIRN_IO_AUTO;
	else if (strcmp(a.engine, "io_uring") == 0)
		o.engine = CAIRN_IO_URING;
	else if (strcmp(a.engine, "threads") == 0)
		o.engine = CAIRN_IO_THREADS;
	else {
		fprintf(stderr, "bench_uring: --engine '%s': expected auto, "
				"io_uring or threads\n", a.engine);
		return 1;
	}
	o.queue_depth = a.qd;
	o.threads = a.threads;

	fd = open(a.file, (writing ? O_RDWR | O_CREAT : O_RDONLY) | O_DIRECT,
		  0644);
	if (fd < 0) {
		fprintf(stderr, "bench_uring: open %s: %s\n", a.file,
			strerror(errno));
		goto out;
	}
	if (!writing) {
		struct stat st;
		if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < a.size) {
			fprintf(stderr, "bench_uring: %s is smaller than "
					"--size %" PRIu64 "; write it first\n",
				a.file, a.size);
			goto out;
		}
	}
	if (uring_open(&o, &u) != 0) {
		fprintf(stderr, "bench_uring: %s\n", cairn_errmsg());
		goto out;
	}
	if (posix_memalign(&mem, 4096, (size_t)a.bs * a.qd) != 0) {
		fprintf(stderr, "bench_uring: out of memory\n");
		goto out;
	}
	bufs = mem;
	/* incompressible data, in case the device or host compresses */
	for (size_t i = 0; i < (size_t)a.bs * a.qd; i += 8) {
		uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL;
		x ^= x >> 29;
		memcpy(bufs + i, &x, 8);
	}
	ops = calloc(a.qd, sizeof *ops);
	if (!ops) {
		fprintf(stderr, "bench_uring: out of memory\n");
		goto out;
	}
	if (uring_q_get(u, &q) != 0) {
		fprintf(stderr, "bench_uring: %s\n", cairn_errmsg());
		goto out;
	}

	t0 = now_s();
	/* ops[i] always uses buffer i: a reaped op's slot is refilled at once,
	 * so the queue stays full until the end of the file. */
	for (unsigned i = 0; i < a.qd && next_off < a.size; i++) {
		ops[i] = (uring_op){.op = writing ? URING_OP_WRITE : URING_OP_READ,
				    .fd = fd, .buf = bufs + (size_t)i * a.bs,
				    .len = a.bs, .off = next_off};
		next_off += a.bs;
		if (uring_q_submit(q, &ops[i]) != 0) {
			fprintf(stderr, "bench_uring: %s\n", cairn_errmsg());
			goto out;
		}
	}
	while (uring_q_inflight(q)) {
		uring_op *done;
		if (uring_q_reap(q, &done) != 0) {
			fprintf(stderr, "bench_uring: %s\n", cairn_errmsg());
			goto out;
		}
		if (done->done != done->len) {
			fprintf(stderr, "bench_uring: short %s at %" PRIu64 "\n",
				a.mode, done->off);
			goto out;
		}
		bytes += done->done;
		if (next_off < a.size) {
			done->off = next_off;
			next_off += a.bs;
			if (uring_q_submit(q, done) != 0) {
				fprintf(stderr, "bench_uring: %s\n",
					cairn_errmsg());
				goto out;
			}
		}
	}
	t1 = now_s();

	printf("{\"mode\":\"%s\",\"engine\":\"%s\",\"bytes\":%" PRIu64
	       ",\"seconds\":%.6f,\"mib_s\":%.2f,\"qd\":%u,\"bs\":%" PRIu64
	       ",\"threads\":%u}\n",
	       a.mode, uring_engine_name(u), bytes, t1 - t0,
	       (double)bytes / (1024.0 * 1024.0) / (t1 - t0), a.qd, a.bs,
	       a.threads);
	rc = 0;
out:
	if (q)
		uring_q_put(q);
	uring_close(u);
	free(ops);
	free(mem);
	if (fd >= 0)
		close(fd);
	return rc;
}
