/*
 * bench_ship.c - log shipping (bench/run.py "ship", docs/log-shipping.md).
 * Prints one JSON object.
 *
 *   bench_ship recover DIR NFILES
 *   bench_ship follow DIR SECONDS RATE
 *
 * recover: a volume (default file:// store) with NFILES small files (64..
 * 1024 bytes, 1,000 per directory), its log shipped (volume_ship_flush),
 * closed, its directory deleted.  Timed: volume_recover_store into a new
 * directory (newest image, every later log object, fsck), and, as the
 * transfer floor it cannot beat, a plain GET of every object under the
 * volume's meta/ prefix into memory.  Also reported: the time to write
 * the files and the shipped bytes.
 *
 * follow: a writer volume and a follower of it (volume_open_follower, its
 * own directory) in one process.  The writer creates RATE small files per
 * second for SECONDS seconds (one relaxed commit each, as a data loader
 * writing samples would); a follower thread looks each file up until it
 * appears.  Reported: the lag from the writer's create returning to the
 * follower seeing the file (p50, p90, p99, max, in ms), beside the bound
 * the defaults promise (commit interval + seal age + ship interval + poll
 * interval, docs/log-shipping.md "Followers"; the upload comes on top).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/volume.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_ship: %s: %s\n", what, cairn_errmsg());
	exit(1);
}

static void put_small(cairn_volume *v, uint64_t dir, const char *name,
		      uint64_t seed)
{
	uint8_t buf[1024];
	size_t len = 64 + (size_t)(seed * 2654435761u % 961);
	cairn_attr a;
	cairn_file *f;

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 31 + i);
	if (volume_create(v, dir, name, 0100644, 0, 0, &a) ||
	    volume_file_open(v, a.ino, &f))
		die(name);
	int rc = volume_file_write(f, buf, len, 0);
	if (volume_file_close(f) || rc)
		die(name);
}

/* Bytes and seconds of a plain GET of every object under prefix. */
static int fetch_all(cairn_objstore *os, const char *prefix, uint64_t *bytes,
		     uint64_t *objects, double *secs)
{
	char *token = NULL;
	double t0 = now_s();
	*bytes = *objects = 0;
	do {
		cairn_obj_list l;
		memset(&l, 0, sizeof l);
		int rc = objstore_list(os, prefix, token, 0, &l);
		free(token);
		token = NULL;
		if (rc)
			return rc;
		for (size_t i = 0; i < l.n; i++) {
			uint64_t got = 0;
			void *p = malloc(l.v[i].size ? l.v[i].size : 1);
			if (!p) {
				objstore_list_free(&l);
				return CAIRN_E_NOMEM;
			}
			rc = objstore_get(os, l.v[i].key, 0, p, l.v[i].size, &got);
			free(p);
			if (rc) {
				objstore_list_free(&l);
				return rc;
			}
			*bytes += got;
			(*objects)++;
		}
		if (l.next)
			token = strdup(l.next);
		objstore_list_free(&l);
	} while (token);
	*secs = now_s() - t0;
	return 0;
}

static int do_recover(const char *base, uint64_t nfiles)
{
	char wdir[4096], rdir[4096], url[4200], prefix[128], uuid[37], cmd[8300];
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_volume_stats st;
	cairn_recover_opts ro;
	cairn_recover_result rr;
	cairn_objstore *os;
	double t0, t_write, t_ship, t_rec, t_get;
	uint64_t get_bytes, get_objects;

	snprintf(wdir, sizeof wdir, "%s/writer", base);
	snprintf(rdir, sizeof rdir, "%s/recovered", base);
	snprintf(url, sizeof url, "file://%s/store", base);
	cairn_format_opts fo = { 0 };
	fo.store_url = url;
	if (volume_format(wdir, &fo))
		die("format");
	memset(&o, 0, sizeof o);
	o.stream_threshold = UINT64_MAX;
	if (volume_open(wdir, &o, &v))
		die("open");
	volume_uuid(v, uuid);
	t0 = now_s();
	uint64_t d = 0;
	for (uint64_t i = 0; i < nfiles; i++) {
		char name[32];
		if (i % 1000 == 0) {
			cairn_attr a;
			snprintf(name, sizeof name, "d%" PRIu64, i / 1000);
			if (volume_mkdir(v, CAIRN_ROOT_INO, name, 040755, 0, 0, &a))
				die(name);
			d = a.ino;
		}
		snprintf(name, sizeof name, "f%" PRIu64, i);
		put_small(v, d, name, i);
	}
	if (volume_sync_durable(v, CAIRN_DUR_REMOTE))
		die("sync");
	t_write = now_s() - t0;
	t0 = now_s();
	if (volume_ship_flush(v))
		die("ship flush");
	t_ship = now_s() - t0;
	volume_stats(v, &st);
	if (volume_close(v))
		die("close");
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", wdir);
	if (system(cmd) != 0)
		die("rm writer dir");

	/* The transfer floor: every metadata object, fetched once. */
	if (objstore_open(url, NULL, &os))
		die("open store");
	snprintf(prefix, sizeof prefix, "v/%s/meta/", uuid);
	if (fetch_all(os, prefix, &get_bytes, &get_objects, &t_get))
		die("fetch");
	objstore_close(os);

	memset(&ro, 0, sizeof ro);
	ro.store_url = url;
	t0 = now_s();
	if (volume_recover_store(rdir, &ro, &rr))
		die("recover");
	t_rec = now_s() - t0;
	/* Prove it: the recovered volume opens and holds the last file. */
	memset(&o, 0, sizeof o);
	o.no_ship = 1;
	if (volume_open(rdir, &o, &v))
		die("open recovered");
	{
		char name[32];
		cairn_attr a, f;
		snprintf(name, sizeof name, "d%" PRIu64, (nfiles - 1) / 1000);
		if (volume_lookup(v, CAIRN_ROOT_INO, name, &a))
			die("lookup dir");
		snprintf(name, sizeof name, "f%" PRIu64, nfiles - 1);
		if (volume_lookup(v, a.ino, name, &f))
			die("lookup last file");
	}
	if (volume_close(v))
		die("close recovered");
	printf("{\"files\": %" PRIu64 ", \"write_s\": %.3f, \"ship_flush_s\": %.3f, "
	       "\"shipped_lsn\": %" PRIu64 ", \"ship_bytes\": %" PRIu64
	       ", \"ship_objects\": %" PRIu64 ", \"images\": %" PRIu64
	       ", \"recover_s\": %.3f, \"recovered_lsn\": %" PRIu64
	       ", \"image_lsn\": %" PRIu64 ", \"log_objects\": %" PRIu64
	       ", \"records\": %" PRIu64 ", \"fsck_problems\": %" PRIu64
	       ", \"get_s\": %.3f, \"get_bytes\": %" PRIu64 ", \"get_objects\": %" PRIu64 "}\n",
	       nfiles, t_write, t_ship, st.shipped_lsn, st.ship_bytes,
	       st.ship_objects, st.images, t_rec, rr.lsn, rr.image_lsn,
	       rr.log_objects, rr.records, rr.fsck_problems, t_get, get_bytes,
	       get_objects);
	return 0;
}

typedef struct follow_ctx {
	cairn_volume *fol;
	double *created;         /* created[i]: when the writer's create returned */
	double *seen;
	volatile uint64_t written;
	volatile int done;
	uint64_t n;
} follow_ctx;

static void *follower(void *arg)
{
	follow_ctx *c = arg;
	uint64_t next = 0, dino = 0;
	while (next < c->n) {
		uint64_t w = __atomic_load_n(&c->written, __ATOMIC_ACQUIRE);
		if (next >= w) {
			if (c->done && next >= w)
				break;
			usleep(1000);
			continue;
		}
		cairn_attr a;
		char name[32];
		if (!dino) {
			if (volume_lookup(c->fol, CAIRN_ROOT_INO, "w", &a)) {
				usleep(2000);
				continue;
			}
			dino = a.ino;
		}
		snprintf(name, sizeof name, "f%" PRIu64, next);
		if (volume_lookup(c->fol, dino, name, &a) == 0) {
			double t = now_s();
			/* Everything up to next is visible now too (LSN order). */
			c->seen[next++] = t;
			continue;
		}
		usleep(2000);
	}
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int do_follow(const char *base, unsigned secs, unsigned rate)
{
	char wdir[4096], fdir[4096], url[4200];
	cairn_volume_opts o, fo;
	cairn_volume *w, *f;
	cairn_attr d;
	follow_ctx c;
	pthread_t th;

	snprintf(wdir, sizeof wdir, "%s/writer", base);
	snprintf(fdir, sizeof fdir, "%s/follower", base);
	snprintf(url, sizeof url, "file://%s/store", base);
	cairn_format_opts fmt = { 0 };
	fmt.store_url = url;
	if (volume_format(wdir, &fmt))
		die("format");
	memset(&o, 0, sizeof o);
	o.stream_threshold = UINT64_MAX;
	if (volume_open(wdir, &o, &w))
		die("open writer");
	if (volume_mkdir(w, CAIRN_ROOT_INO, "w", 040755, 0, 0, &d))
		die("mkdir");
	if (volume_ship_flush(w))
		die("first ship");
	memset(&fo, 0, sizeof fo);
	if (volume_open_follower(fdir, url, &fo, &f))
		die("open follower");

	memset(&c, 0, sizeof c);
	c.n = (uint64_t)secs * rate;
	c.fol = f;
	c.created = calloc(c.n, sizeof *c.created);
	c.seen = calloc(c.n, sizeof *c.seen);
	if (!c.created || !c.seen || pthread_create(&th, NULL, follower, &c))
		die("setup");
	double t0 = now_s();
	for (uint64_t i = 0; i < c.n; i++) {
		double due = t0 + (double)i / rate;
		double t = now_s();
		if (due > t)
			usleep((useconds_t)((due - t) * 1e6));
		char name[32];
		snprintf(name, sizeof name, "f%" PRIu64, i);
		put_small(w, d.ino, name, i);
		c.created[i] = now_s();
		__atomic_store_n(&c.written, i + 1, __ATOMIC_RELEASE);
	}
	c.done = 1;
	pthread_join(th, NULL);
	cairn_volume_stats ws, fs;
	volume_stats(w, &ws);
	volume_stats(f, &fs);
	uint64_t n = 0;
	double *lag = calloc(c.n ? c.n : 1, sizeof *lag);
	for (uint64_t i = 0; i < c.n; i++)
		if (c.seen[i] > 0)
			lag[n++] = (c.seen[i] - c.created[i]) * 1000.0;
	qsort(lag, n, sizeof *lag, cmp_d);
#define PCT(p) (n ? lag[(size_t)((n - 1) * (p))] : -1.0)
	/* docs/log-shipping.md "Followers": a new small file waits for the
	 * commit of closed files (1 s), the seal of its staging segment (3 s)
	 * and its upload, then for the shipper (5 s) and the poll (1 s). */
	unsigned bound = (o.commit_interval_ms ? o.commit_interval_ms : 1000) +
			 (o.seal_age_ms ? o.seal_age_ms : 3000) +
			 (o.ship_interval_ms ? o.ship_interval_ms : 5000) +
			 (fo.follow_poll_ms ? fo.follow_poll_ms : 1000);
	printf("{\"files\": %" PRIu64 ", \"seen\": %" PRIu64 ", \"rate\": %u, "
	       "\"lag_p50_ms\": %.1f, \"lag_p90_ms\": %.1f, \"lag_p99_ms\": %.1f, "
	       "\"lag_max_ms\": %.1f, \"bound_ms\": %u, \"ship_objects\": %" PRIu64
	       ", \"follower_objects\": %" PRIu64 ", \"resyncs\": %" PRIu64 "}\n",
	       c.n, n, rate, PCT(0.5), PCT(0.9), PCT(0.99), n ? lag[n - 1] : -1.0,
	       bound, ws.ship_objects, fs.follow_applied_objects, fs.follow_resyncs);
	if (volume_close(f) || volume_close(w))
		die("close");
	free(lag);
	free(c.created);
	free(c.seen);
	return n == c.n ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "recover")) {
		uint64_t n = strtoull(argv[3], NULL, 10);
		if (n < 1)
			return 2;
		return do_recover(argv[2], n);
	}
	if (argc == 5 && !strcmp(argv[1], "follow")) {
		unsigned s = (unsigned)strtoul(argv[3], NULL, 10);
		unsigned r = (unsigned)strtoul(argv[4], NULL, 10);
		if (s < 1 || r < 1)
			return 2;
		return do_follow(argv[2], s, r);
	}
	fprintf(stderr, "usage: bench_ship recover DIR NFILES\n"
			"       bench_ship follow DIR SECONDS RATE\n");
	return 2;
}
