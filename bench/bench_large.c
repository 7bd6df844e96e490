/*
 * bench_large.c - one large file through the volume API (bench/run.py
 * "large", driven by bench/bench_large.py).
 *
 *   bench_large write VOLDIR SRC [STORE_URL]
 *       format VOLDIR (store: STORE_URL, default file://VOLDIR/store), copy
 *       SRC into /big in 8 MiB writes, fsync (durability local), then wait
 *       until the upload is complete.  Prints JSON:
 *       {"bytes": N, "write_local_s": t1, "write_remote_s": t2, ...}
 *       t1: open to fsync returned (the data is on local stable storage,
 *       as `dd conv=fsync`); t2: open to the object in the store.
 *   bench_large read VOLDIR OUT
 *       drop the local copies and the cache, read /big in 64 MiB reads
 *       (parallel ranged GETs) and write it to OUT ("-": discard).
 *       Prints JSON: {"bytes": N, "read_s": t}
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/volume.h"

#define WPIECE (8u << 20)
#define RPIECE (64u << 20)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
	fprintf(stderr, "bench_large: %s: %s\n", what, cairn_errmsg());
	return 1;
}

static int do_write(const char *dir, const char *src, const char *url)
{
	cairn_format_opts fo = { .store_url = url };
	cairn_volume *v;
	cairn_file *f;
	cairn_attr a;
	cairn_volume_stats st;
	uint8_t *buf = malloc(WPIECE);
	int fd = open(src, O_RDONLY);
	uint64_t total = 0;

	if (!buf || fd < 0) {
		perror(src);
		return 1;
	}
	if (volume_format(dir, &fo))
		return die("format");
	cairn_volume_opts o;
	memset(&o, 0, sizeof o);
	/* Diagnosis only: the write path without the upload competing. */
	o.no_upload = getenv("BENCH_LARGE_NO_UPLOAD") != NULL;
	if (getenv("BENCH_LARGE_COMMIT_MIB"))
		o.stream_commit_bytes = strtoull(getenv("BENCH_LARGE_COMMIT_MIB"), NULL, 10) << 20;
	if (volume_open(dir, &o, &v))
		return die("open");
	if (volume_create(v, CAIRN_ROOT_INO, "big", 0100644, 0, 0, &a))
		return die("create");
	double t0 = now_s();
	if (volume_file_open(v, a.ino, &f))
		return die("file open");
	for (;;) {
		ssize_t n = read(fd, buf, WPIECE);
		if (n < 0) {
			perror("read");
			return 1;
		}
		if (n == 0)
			break;
		if (volume_file_write(f, buf, (size_t)n, total))
			return die("write");
		total += (uint64_t)n;
	}
	if (volume_file_fsync(f))
		return die("fsync");
	double t1 = now_s();
	if (volume_file_close(f))
		return die("close");
	for (; !o.no_upload;) {
		volume_stats(v, &st);
		if (st.upload_queue == 0 && st.unuploaded_bytes == 0)
			break;
		usleep(2000);
	}
	double t2 = now_s();
	volume_stats(v, &st);
	if (volume_close(v))
		return die("close volume");
	printf("{\"bytes\": %" PRIu64 ", \"write_local_s\": %.4f, \"write_remote_s\": %.4f, "
	       "\"streams\": %" PRIu64 ", \"parts\": %" PRIu64 ", \"part_retries\": %" PRIu64 "}\n",
	       total, t1 - t0, t2 - t0, st.streams, st.stream_parts, st.stream_part_retries);
	close(fd);
	free(buf);
	return 0;
}

static int do_read(const char *dir, const char *out)
{
	cairn_volume *v;
	cairn_file *f;
	cairn_attr a;
	cairn_volume_stats st;
	uint8_t *buf = malloc(RPIECE);
	int fd = -1;
	uint64_t total = 0;

	if (!buf)
		return 1;
	if (strcmp(out, "-") && (fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
		perror(out);
		return 1;
	}
	if (volume_open(dir, NULL, &v))
		return die("open");
	if (volume_drop_cache(v))
		return die("drop cache");
	if (volume_lookup(v, CAIRN_ROOT_INO, "big", &a))
		return die("lookup");
	double t0 = now_s();
	if (volume_file_open(v, a.ino, &f))
		return die("file open");
	for (;;) {
		size_t got = 0;
		if (volume_file_read(f, buf, RPIECE, total, &got))
			return die("read");
		if (!got)
			break;
		if (fd >= 0 && write(fd, buf, got) != (ssize_t)got) {
			perror("write");
			return 1;
		}
		total += got;
	}
	double t1 = now_s();
	volume_stats(v, &st);
	volume_file_close(f);
	if (volume_close(v))
		return die("close volume");
	printf("{\"bytes\": %" PRIu64 ", \"read_s\": %.4f, \"parallel_chunks\": %" PRIu64 "}\n",
	       total, t1 - t0, st.reads_parallel);
	if (fd >= 0)
		close(fd);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "write"))
		return do_write(argv[2], argv[3], argc > 4 ? argv[4] : NULL);
	if (argc == 4 && !strcmp(argv[1], "read"))
		return do_read(argv[2], argv[3]);
	fprintf(stderr, "usage: bench_large write VOLDIR SRC [STORE_URL]\n"
			"       bench_large read VOLDIR OUT\n");
	return 2;
}
