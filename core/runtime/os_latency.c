/*
 * os_latency.c - a latency and bandwidth model of a remote object store,
 * wrapped around any store, for benchmarks (a local file:// store behaving
 * like S3 seen from a training node).
 *
 * Model.  Every request first waits first_byte_ms (the round trip and the
 * store's time to first byte), independently of other requests, as S3's
 * latency does not grow with concurrency.  Then its bytes (a put's or part's
 * bytes before forwarding, a get's bytes after) cross one shared link of
 * bandwidth_bps bytes/s: the link is a virtual clock, link_free, the time at
 * which everything reserved so far has crossed.  A transfer reserves its
 * bytes in slices of SLICE bytes (so concurrent transfers interleave, as TCP
 * streams share a link):
 *
 *     start = max(now, link_free);  link_free = start + slice / bps;
 *     sleep until link_free
 *
 * This is a token bucket whose burst is one slice: however many requests
 * run, the bytes of all of them together never cross faster than
 * bandwidth_bps.
 *
 * Invariants
 *   1. link_free only moves forward, under the mutex.
 *   2. stats.link_busy_us is exactly the sum of slice/bps over all slices
 *      (rounded down to the nanosecond per slice), stats.first_byte_us is
 *      requests * first_byte_ms * 1000: tests check these, not the clock.
 *   3. slept_us >= the time asked for: sleeps are resumed after EINTR.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/err.h"
#include "objstore_int.h"

#define SLICE (256 * 1024ULL)

struct lat_impl {
	cairn_objstore *inner;
	uint64_t first_byte_ns;
	uint64_t bps;
	pthread_mutex_t mu;
	uint64_t link_free_ns; /* CLOCK_MONOTONIC */
	objstore_latency_stats st;
	uint64_t link_busy_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Sleep until the monotonic time `until`; returns the time slept. */
static uint64_t sleep_until(uint64_t until)
{
	uint64_t start = now_ns(), t;
	struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ULL),
			      .tv_nsec = (long)(until % 1000000000ULL)};

	if (until <= start)
		return 0;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
	t = now_ns();
	return t - start;
}

static void lat_first_byte(struct lat_impl *l)
{
	uint64_t slept = l->first_byte_ns ? sleep_until(now_ns() +
							l->first_byte_ns)
					  : 0;

	pthread_mutex_lock(&l->mu);
	l->st.requests++;
	l->st.first_byte_us += l->first_byte_ns / 1000;
	l->st.slept_us += slept / 1000;
	pthread_mutex_unlock(&l->mu);
}

static void lat_transfer(struct lat_impl *l, uint64_t bytes)
{
	if (!l->bps || !bytes)
		return;
	while (bytes) {
		uint64_t n = bytes < SLICE ? bytes : SLICE;
		uint64_t cost = n * 1000000000ULL / l->bps, t, until, slept;

		pthread_mutex_lock(&l->mu);
		t = now_ns();
		if (l->link_free_ns < t)
			l->link_free_ns = t;
		l->link_free_ns += cost;
		until = l->link_free_ns;
		l->st.bytes += n;
		l->link_busy_ns += cost;
		pthread_mutex_unlock(&l->mu);

		slept = sleep_until(until);
		pthread_mutex_lock(&l->mu);
		l->st.slept_us += slept / 1000;
		pthread_mutex_unlock(&l->mu);
		bytes -= n;
	}
}

static int lat_open(const char *url, const cairn_objstore_opts *opts,
		    void **impl)
{
	(void)url;
	(void)opts;
	*impl = NULL;
	return cairn_errf(CAIRN_E_INVAL, "the latency wrapper is made by "
			  "objstore_latency_wrap, not by URL");
}

static void lat_close(void *impl)
{
	struct lat_impl *l = impl;

	pthread_mutex_destroy(&l->mu);
	free(l);
}

static void lat_limits(void *impl, cairn_objstore_limits *out)
{
	struct lat_impl *l = impl;
	objstore_limits(l->inner, out);
}

static int lat_put(void *impl, const char *key, const cairn_obj_src *src)
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	lat_transfer(l, src->len);
	return objstore_put(l->inner, key, src);
}

static int lat_put_if_absent(void *impl, const char *key, const void *buf,
			     size_t len)
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	lat_transfer(l, len);
	return objstore_put_if_absent(l->inner, key, buf, len);
}

static int lat_get(void *impl, const char *key, uint64_t off, void *buf,
		   uint64_t len, uint64_t *got)
{
	struct lat_impl *l = impl;
	int rc;

	lat_first_byte(l);
	rc = objstore_get(l->inner, key, off, buf, len, got);
	if (!rc)
		lat_transfer(l, *got);
	return rc;
}

static int lat_head(void *impl, const char *key, cairn_obj_info *out)
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	return objstore_head(l->inner, key, out);
}

static int lat_del(void *impl, const char *key)
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	return objstore_delete(l->inner, key);
}

static int lat_del_batch(void *impl, const char *const *keys, size_t n,
			 int *rcs)
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	return objstore_delete_batch(l->inner, keys, n, rcs);
}

static int lat_list(void *impl, const char *prefix, const char *token,
		    unsigned max_keys, cairn_obj_list *out)
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	return objstore_list(l->inner, prefix, token, max_keys, out);
}

static int lat_mpu_create(void *impl, const char *key,
			  char upload_id[CAIRN_UPLOAD_ID_MAX])
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	return objstore_mpu_create(l->inner, key, upload_id);
}

static int lat_mpu_part(void *impl, const char *key, const char *upload_id,
			unsigned part_no, const cairn_obj_src *src,
			cairn_mpu_part *out)
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	lat_transfer(l, src->len);
	return objstore_mpu_part(l->inner, key, upload_id, part_no, src, out);
}

static int lat_mpu_complete(void *impl, const char *key, const char *upload_id,
			    const cairn_mpu_part *parts, size_t n)
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	return objstore_mpu_complete(l->inner, key, upload_id, parts, n);
}

static int lat_mpu_abort(void *impl, const char *key, const char *upload_id)
{
	struct lat_impl *l = impl;

	lat_first_byte(l);
	return objstore_mpu_abort(l->inner, key, upload_id);
}

static const struct objstore_backend objstore_latency_be = {
	.scheme = NULL,
	.open = lat_open,
	.close = lat_close,
	.limits = lat_limits,
	.put = lat_put,
	.put_if_absent = lat_put_if_absent,
	.get = lat_get,
	.head = lat_head,
	.del = lat_del,
	.del_batch = lat_del_batch,
	.list = lat_list,
	.mpu_create = lat_mpu_create,
	.mpu_part = lat_mpu_part,
	.mpu_complete = lat_mpu_complete,
	.mpu_abort = lat_mpu_abort,
};

int objstore_latency_wrap(cairn_objstore *inner, unsigned first_byte_ms,
			  uint64_t bandwidth_bps, cairn_objstore **out)
{
	struct lat_impl *l;
	int rc;

	*out = NULL;
	if (!inner)
		return cairn_errf(CAIRN_E_INVAL, "latency wrap: no inner store");
	l = calloc(1, sizeof *l);
	if (!l)
		return cairn_errf(CAIRN_E_NOMEM, "latency wrap: out of memory");
	l->inner = inner;
	l->first_byte_ns = (uint64_t)first_byte_ms * 1000000ULL;
	l->bps = bandwidth_bps;
	if (pthread_mutex_init(&l->mu, NULL) != 0) {
		free(l);
		return cairn_errf(CAIRN_E_NOMEM, "latency wrap: mutex");
	}
	rc = objstore_from_backend(&objstore_latency_be, l, objstore_url(inner),
				   NULL, out);
	if (rc)
		lat_close(l);
	return rc;
}

int objstore_latency_get_stats(const cairn_objstore *os,
			       objstore_latency_stats *out)
{
	struct lat_impl *l = objstore_impl(os, &objstore_latency_be);

	memset(out, 0, sizeof *out);
	if (!l)
		return cairn_errf(CAIRN_E_INVAL, "%s is not a latency wrapper",
				  os ? objstore_url(os) : "(null)");
	pthread_mutex_lock(&l->mu);
	*out = l->st;
	out->link_busy_us = l->link_busy_ns / 1000;
	pthread_mutex_unlock(&l->mu);
	return 0;
}
