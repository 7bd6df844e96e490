/*
 * bench_smallfiles - small-file writes and cold reads through the volume
 * API, against a baseline that stores one object per file, both on the
 * same file:// store behind objstore_latency_wrap (a remote store's
 * first-byte latency).  Driven by bench/run.py ("smallfiles"); prints one
 * JSON object.
 *
 *   bench_smallfiles --mode cairn|baseline --dir D [--files N]
 *                    [--size BYTES] [--latency-ms MS] [--seed S]
 *
 * cairn:    create + write + close of N files with durability local, then
 *           one volume_sync (so every file is durable on local disk) is
 *           timed; then the volume is closed (segments uploaded), reopened
 *           with its caches dropped, and the files read in write order, and
 *           again (caches dropped) in a shuffled order.
 * baseline: one PUT per file (what an object-per-file system does at
 *           close), then one GET per file in write order and shuffled.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/volume.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Half random, half text-like bytes: compressible like real samples. */
static void fill(uint8_t *b, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = rnd(&seed);
		if ((i / 512) % 2)
			v &= 0x3f3f3f3f3f3f3f3fULL;
		memcpy(b + i, &v, n - i < 8 ? n - i : 8);
	}
}

static int die(const char *what)
{
	fprintf(stderr, "bench_smallfiles: %s: %s\n", what, cairn_errmsg());
	return 1;
}

static void shuffle(uint32_t *v, uint32_t n, uint64_t seed)
{
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = (uint32_t)(rnd(&seed) % i);
		uint32_t t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

static uint64_t store_requests(cairn_objstore *os)
{
	cairn_objstore_stats st;
	uint64_t n = 0;
	objstore_stats(os, &st);
	for (int i = 0; i < 11; i++)
		n += st.requests[i];
	return n;
}

int main(int argc, char **argv)
{
	const char *mode = "cairn", *dir = NULL;
	uint32_t nfiles = 2000;
	size_t size = 16384;
	unsigned lat = 20;
	uint64_t seed = 1;
	char path[4096], url[4200];
	cairn_objstore *inner = NULL, *os = NULL;
	uint8_t *buf, *got;
	uint32_t *order;
	double t0, tw = 0, tr = 0, ts = 0;
	uint64_t rq_w = 0, rq_r = 0, rq_s = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mode"))
			mode = argv[i + 1];
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--files"))
			nfiles = (uint32_t)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--size"))
			size = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--latency-ms"))
			lat = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[i + 1], NULL, 10);
		else {
			fprintf(stderr, "bench_smallfiles: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!dir || !nfiles || !size || size > (64u << 20) ||
	    (strcmp(mode, "cairn") && strcmp(mode, "baseline"))) {
		fprintf(stderr, "usage: bench_smallfiles --mode cairn|baseline --dir D "
			"[--files N] [--size B] [--latency-ms MS]\n");
		return 2;
	}
	buf = malloc(size);
	got = malloc(size + 1);
	order = malloc(nfiles * sizeof *order);
	if (!buf || !got || !order)
		return 1;
	for (uint32_t i = 0; i < nfiles; i++)
		order[i] = i;

	if (!strcmp(mode, "baseline")) {
		snprintf(path, sizeof path, "%s/base-store", dir);
		mkdir(path, 0755);
		snprintf(url, sizeof url, "file://%s", path);
		if (objstore_open(url, NULL, &inner) ||
		    objstore_latency_wrap(inner, lat, 0, &os))
			return die("open store");
		t0 = now_s();
		for (uint32_t i = 0; i < nfiles; i++) {
			char key[64];
			snprintf(key, sizeof key, "files/f%06u", i);
			fill(buf, size, seed + i);
			if (objstore_put_buf(os, key, buf, size))
				return die("put");
		}
		tw = now_s() - t0;
		rq_w = store_requests(os);
		for (int pass = 0; pass < 2; pass++) {
			if (pass)
				shuffle(order, nfiles, seed);
			t0 = now_s();
			for (uint32_t k = 0; k < nfiles; k++) {
				char key[64];
				uint64_t n = 0;
				snprintf(key, sizeof key, "files/f%06u", order[k]);
				if (objstore_get(os, key, 0, got, size, &n) || n != size)
					return die("get");
			}
			if (pass)
				ts = now_s() - t0;
			else
				tr = now_s() - t0;
			if (!pass)
				rq_r = store_requests(os) - rq_w;
		}
		rq_s = store_requests(os) - rq_w - rq_r;
	} else {
		cairn_volume *v;
		cairn_volume_opts o;
		cairn_format_opts fo = { 0 };
		uint64_t *inos = malloc(nfiles * sizeof *inos);
		if (!inos)
			return 1;
		snprintf(path, sizeof path, "%s/vol", dir);
		if (volume_format(path, &fo))
			return die("format");
		snprintf(url, sizeof url, "file://%s/vol/store", dir);
		if (objstore_open(url, NULL, &inner) ||
		    objstore_latency_wrap(inner, lat, 0, &os))
			return die("open store");
		memset(&o, 0, sizeof o);
		o.store = os;
		o.durability = CAIRN_DUR_LOCAL;
		if (volume_open(path, &o, &v))
			return die("open volume");
		t0 = now_s();
		for (uint32_t i = 0; i < nfiles; i++) {
			char name[64];
			cairn_attr a;
			cairn_file *f;
			snprintf(name, sizeof name, "f%06u", i);
			fill(buf, size, seed + i);
			if (volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a) ||
			    volume_file_open(v, a.ino, &f) ||
			    volume_file_write(f, buf, size, 0) || volume_file_close(f))
				return die("write");
			inos[i] = a.ino;
		}
		if (volume_sync(v))
			return die("sync");
		tw = now_s() - t0;
		rq_w = store_requests(os);
		if (volume_close(v))
			return die("close");
		for (int pass = 0; pass < 2; pass++) {
			uint64_t rq0;
			if (volume_open(path, &o, &v) || volume_drop_cache(v))
				return die("reopen");
			if (pass)
				shuffle(order, nfiles, seed);
			rq0 = store_requests(os);
			t0 = now_s();
			for (uint32_t k = 0; k < nfiles; k++) {
				cairn_file *f;
				size_t n = 0;
				if (volume_file_open(v, inos[order[k]], &f) ||
				    volume_file_read(f, got, size + 1, 0, &n) ||
				    volume_file_close(f) || n != size)
					return die("read");
			}
			if (pass) {
				ts = now_s() - t0;
				rq_s = store_requests(os) - rq0;
			} else {
				tr = now_s() - t0;
				rq_r = store_requests(os) - rq0;
			}
			/* Spot-check the bytes of the last file read. */
			fill(buf, size, seed + order[nfiles - 1]);
			if (memcmp(buf, got, size)) {
				fprintf(stderr, "bench_smallfiles: wrong bytes read\n");
				return 1;
			}
			if (volume_close(v))
				return die("close");
		}
		free(inos);
	}
	printf("{\"mode\": \"%s\", \"files\": %u, \"size\": %zu, \"latency_ms\": %u, "
	       "\"write_files_s\": %.1f, \"read_ordered_files_s\": %.1f, "
	       "\"read_shuffled_files_s\": %.1f, \"write_requests\": %" PRIu64 ", "
	       "\"read_ordered_requests\": %" PRIu64 ", \"read_shuffled_requests\": %" PRIu64 "}\n",
	       mode, nfiles, size, lat, nfiles / tw, nfiles / tr, nfiles / ts, rq_w, rq_r, rq_s);
	objstore_close(os);
	objstore_close(inner);
	free(buf);
	free(got);
	free(order);
	return 0;
}
