/*
 * bench_s3.c - the cairn side of bench/bench_s3.py: move files between a
 * local directory and an object store the way `aws s3 cp` does, and print
 * one JSON line with the bytes and seconds.
 *
 *   bench_s3 put-big  URL FILE KEY      one file, multipart, parts in parallel
 *   bench_s3 get-big  URL KEY FILE      one object, parallel ranged GETs
 *   bench_s3 put-many URL DIR PREFIX    every file of DIR, PUTs in parallel
 *   bench_s3 get-many URL PREFIX DIR    every object under PREFIX, in parallel
 *
 * Concurrency is the store's worker pool (CAIRN_BENCH_INFLIGHT, default 16);
 * the part size is objstore_part_size()'s (CAIRN_BENCH_PART_MIB to force).
 * Local files are read and written through the io_uring engine.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/runtime.h"

#define MIB (1024ull * 1024ull)

static cairn_uring *u;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "bench_s3: %s: %s (%s)\n", what, cairn_errmsg(),
		cairn_rc_name(rc));
	exit(1);
}

static unsigned env_u(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long x;

	if (!v || !*v)
		return dflt;
	x = strtoul(v, &end, 10);
	return *end || x == 0 ? dflt : (unsigned)x;
}

static void put_big(cairn_objstore *os, const char *file, const char *key,
		    uint64_t *bytes)
{
	int fd = open(file, O_RDONLY);
	struct stat st;
	char upid[CAIRN_UPLOAD_ID_MAX];
	uint64_t psz, n, pref = (uint64_t)env_u("CAIRN_BENCH_PART_MIB", 0) * MIB;
	cairn_obj_batch *b;
	cairn_obj_req *r;
	cairn_mpu_part *parts;
	int rc;

	if (fd < 0 || fstat(fd, &st) != 0) {
		perror(file);
		exit(1);
	}
	*bytes = (uint64_t)st.st_size;
	psz = objstore_part_size(os, *bytes, 1, pref);
	n = (*bytes + psz - 1) / psz;
	r = calloc(n, sizeof *r);
	parts = calloc(n, sizeof *parts);
	if (!r || !parts)
		exit(1);
	if ((rc = objstore_mpu_create(os, key, upid)))
		die("mpu create", rc);
	if ((rc = objstore_batch_new(os, &b)))
		die("batch", rc);
	for (uint64_t i = 0; i < n; i++) {
		r[i].op = OBJ_OP_MPU_PART;
		r[i].key = key;
		r[i].upload_id = upid;
		r[i].part_no = (unsigned)i + 1;
		r[i].src = (cairn_obj_src){.buf = NULL, .fd = fd, .off = i * psz,
					   .len = *bytes - i * psz < psz ? *bytes - i * psz : psz};
		if ((rc = objstore_submit(b, &r[i])))
			die("submit", rc);
	}
	if ((rc = objstore_batch_wait(b))) {
		objstore_mpu_abort(os, key, upid);
		die("upload parts", rc);
	}
	for (uint64_t i = 0; i < n; i++)
		parts[i] = r[i].part;
	if ((rc = objstore_mpu_complete(os, key, upid, parts, n)))
		die("complete", rc);
	objstore_batch_free(b);
	close(fd);
	free(r);
	free(parts);
}

static void get_big(cairn_objstore *os, const char *key, const char *file,
		    uint64_t *bytes)
{
	cairn_obj_info info;
	uint64_t chunk = 8 * MIB, n;
	unsigned depth = env_u("CAIRN_BENCH_INFLIGHT", 16);
	cairn_obj_batch *b;
	cairn_obj_req *r, *done;
	char **bufs;
	int fd, rc;

	if ((rc = objstore_head(os, key, &info)))
		die("head", rc);
	*bytes = info.size;
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(file);
		exit(1);
	}
	n = (info.size + chunk - 1) / chunk;
	r = calloc(depth, sizeof *r);
	bufs = calloc(depth, sizeof *bufs);
	if (!r || !bufs)
		exit(1);
	for (unsigned i = 0; i < depth; i++)
		if (!(bufs[i] = malloc(chunk)))
			exit(1);
	if ((rc = objstore_batch_new(os, &b)))
		die("batch", rc);
	/* A window of depth GETs; each completed one is written, then its
	 * slot takes the next range (bounded memory: depth * chunk). */
	uint64_t next = 0;
	for (unsigned i = 0; i < depth && next < n; i++, next++) {
		r[i] = (cairn_obj_req){.op = OBJ_OP_GET, .key = key,
				       .off = next * chunk, .len = chunk,
				       .buf = bufs[i], .user = bufs[i]};
		if ((rc = objstore_submit(b, &r[i])))
			die("submit", rc);
	}
	while (objstore_batch_outstanding(b)) {
		if ((rc = objstore_batch_reap(b, &done)))
			die("get", rc);
		if ((rc = uring_write(u, fd, done->buf, done->got, done->off)))
			die("write", rc);
		if (next < n) {
			void *buf = done->user;
			*done = (cairn_obj_req){.op = OBJ_OP_GET, .key = key,
						.off = next * chunk, .len = chunk,
						.buf = buf, .user = buf};
			next++;
			if ((rc = objstore_submit(b, done)))
				die("submit", rc);
		}
	}
	objstore_batch_free(b);
	/* No fsync: `aws s3 cp` does not sync either. */
	close(fd);
	for (unsigned i = 0; i < depth; i++)
		free(bufs[i]);
	free(bufs);
	free(r);
}

typedef struct item {
	char *key;
	char *path;
	char *buf;
	uint64_t len;
} item;

static void run_items(cairn_objstore *os, item *it, size_t n, int op,
		      const char *outdir)
{
	unsigned depth = env_u("CAIRN_BENCH_INFLIGHT", 16) * 2;
	cairn_obj_req *r = calloc(depth, sizeof *r), *done;
	cairn_obj_batch *b;
	size_t next = 0;
	int rc;

	if (!r)
		exit(1);
	if ((rc = objstore_batch_new(os, &b)))
		die("batch", rc);
	for (unsigned i = 0; i < depth && next < n; i++, next++) {
		item *x = &it[next];
		r[i] = (cairn_obj_req){.op = op, .key = x->key, .user = x,
				       .src = {x->buf, -1, 0, x->len},
				       .buf = x->buf, .len = x->len};
		if ((rc = objstore_submit(b, &r[i])))
			die("submit", rc);
	}
	while (objstore_batch_outstanding(b)) {
		if ((rc = objstore_batch_reap(b, &done)))
			die(op == OBJ_OP_PUT ? "put" : "get", rc);
		if (op == OBJ_OP_GET) {
			item *x = done->user;
			char path[1200];
			int fd;
			snprintf(path, sizeof path, "%s/%s", outdir,
				 strrchr(x->key, '/') ? strrchr(x->key, '/') + 1
						      : x->key);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || (rc = uring_write(u, fd, x->buf, done->got, 0)))
				die("write", fd < 0 ? CAIRN_E_IO : rc);
			close(fd);
		}
		if (next < n) {
			item *x = &it[next++];
			*done = (cairn_obj_req){.op = op, .key = x->key, .user = x,
						.src = {x->buf, -1, 0, x->len},
						.buf = x->buf, .len = x->len};
			if ((rc = objstore_submit(b, done)))
				die("submit", rc);
		}
	}
	objstore_batch_free(b);
	free(r);
}

static void put_many(cairn_objstore *os, const char *dir, const char *prefix,
		     uint64_t *bytes, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	item *it = NULL;
	size_t n = 0, cap = 0;

	if (!d) {
		perror(dir);
		exit(1);
	}
	*bytes = 0;
	while ((de = readdir(d))) {
		char path[1200], key[1200];
		struct stat st;
		int fd, rc;
		size_t got;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		snprintf(key, sizeof key, "%s/%s", prefix, de->d_name);
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			it = realloc(it, cap * sizeof *it);
			if (!it)
				exit(1);
		}
		fd = open(path, O_RDONLY);
		if (fd < 0 || fstat(fd, &st) != 0)
			exit(1);
		it[n].len = (uint64_t)st.st_size;
		it[n].buf = malloc(it[n].len + 1);
		it[n].key = strdup(key);
		if (!it[n].buf || !it[n].key)
			exit(1);
		/* Reading the files is part of the job, as for aws s3 cp. */
		if ((rc = uring_read(u, fd, it[n].buf, it[n].len, 0, &got)) ||
		    got != it[n].len)
			die("read", rc ? rc : CAIRN_E_IO);
		close(fd);
		*bytes += it[n].len;
		n++;
	}
	closedir(d);
	run_items(os, it, n, OBJ_OP_PUT, NULL);
	*count = n;
	for (size_t i = 0; i < n; i++) {
		free(it[i].key);
		free(it[i].buf);
	}
	free(it);
}

static void get_many(cairn_objstore *os, const char *prefix, const char *dir,
		     uint64_t *bytes, size_t *count)
{
	char *token = NULL, pfx[1100];
	item *it = NULL;
	size_t n = 0, cap = 0;
	int rc;

	snprintf(pfx, sizeof pfx, "%s/", prefix);
	*bytes = 0;
	do {
		cairn_obj_list l;
		if ((rc = objstore_list(os, pfx, token, 0, &l)))
			die("list", rc);
		free(token);
		token = l.next ? strdup(l.next) : NULL;
		for (size_t i = 0; i < l.n; i++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				it = realloc(it, cap * sizeof *it);
				if (!it)
					exit(1);
			}
			it[n].key = strdup(l.v[i].key);
			it[n].len = l.v[i].size;
			it[n].buf = malloc(l.v[i].size + 1);
			if (!it[n].key || !it[n].buf)
				exit(1);
			*bytes += l.v[i].size;
			n++;
		}
		objstore_list_free(&l);
	} while (token);
	mkdir(dir, 0755);
	run_items(os, it, n, OBJ_OP_GET, dir);
	*count = n;
	for (size_t i = 0; i < n; i++) {
		free(it[i].key);
		free(it[i].buf);
	}
	free(it);
}

int main(int argc, char **argv)
{
	cairn_objstore_opts o = {0};
	cairn_objstore *os;
	uint64_t bytes = 0;
	size_t count = 1;
	double t0, t;
	int rc;

	if (argc != 5) {
		fprintf(stderr, "usage: bench_s3 put-big|get-big|put-many|get-many "
			"URL A B\n");
		return 2;
	}
	if ((rc = uring_open(NULL, &u)))
		die("uring", rc);
	o.uring = u;
	o.max_inflight = env_u("CAIRN_BENCH_INFLIGHT", 16);
	t0 = now();
	if ((rc = objstore_open(argv[2], &o, &os)))
		die("open", rc);
	if (!strcmp(argv[1], "put-big"))
		put_big(os, argv[3], argv[4], &bytes);
	else if (!strcmp(argv[1], "get-big"))
		get_big(os, argv[3], argv[4], &bytes);
	else if (!strcmp(argv[1], "put-many"))
		put_many(os, argv[3], argv[4], &bytes, &count);
	else if (!strcmp(argv[1], "get-many"))
		get_many(os, argv[3], argv[4], &bytes, &count);
	else
		return 2;
	t = now() - t0;
	objstore_close(os);
	uring_close(u);
	printf("{\"op\": \"%s\", \"bytes\": %" PRIu64 ", \"objects\": %zu, "
	       "\"seconds\": %.3f, \"MBps\": %.1f}\n", argv[1], bytes, count, t,
	       (double)bytes / 1e6 / t);
	return 0;
}
