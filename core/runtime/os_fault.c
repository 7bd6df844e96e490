/*
 * os_fault.c - a fault-injection wrapper around any object store, for tests
 * (SQLite's faultsim, curl's torture mode, applied to the object store).
 *
 * The wrapper forwards every request to an inner store (which it does not
 * own) through the public API, so the inner store's own checks and counters
 * still apply.  One rule is armed at a time (objstore_fault_arm).  Requests
 * whose op is in the rule's op_mask are counted from 1 since the arm; the
 * request numbered rule.nth (every request when nth is 0, and every later
 * one too when sticky) is hit:
 *
 *   FAIL        answer rule.rc, inner store not called
 *   HANG        block hang_ms (0: until objstore_fault_release), then answer
 *               CAIRN_E_TIMEOUT, inner store not called
 *   TRUNCATE    GET only: forward, then report only the first half of the
 *               bytes as read, silently (a broken store or proxy)
 *   LATENCY     sleep latency_ms, then forward
 *   FAIL_AFTER  forward, then answer rule.rc although the request took
 *               effect (the answer was lost on the way back)
 *
 * Invariants
 *   1. The counter and the rule change only under the mutex; a request's hit
 *      decision is taken once, on arrival.
 *   2. objstore_fault_release wakes every HANG request counted before the
 *      call, whether or not it has started waiting yet: each request takes
 *      the release generation together with its count, under the mutex, so
 *      a later HANG is not released by an earlier call.
 *   3. A request that is not hit behaves exactly as on the inner store.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/err.h"
#include "objstore_int.h"

struct fault_impl {
	cairn_objstore *inner;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	cairn_obj_fault rule;
	uint64_t count;
	uint64_t release_gen;
};

static void fault_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Count the request and decide whether the rule hits it; returns the rule
 * to apply in *rule (kind NONE when not hit). */
static void fault_decide(struct fault_impl *f, int op, cairn_obj_fault *rule,
			 uint64_t *seq, uint64_t *gen)
{
	pthread_mutex_lock(&f->mu);
	memset(rule, 0, sizeof *rule);
	*seq = 0;
	/* Taken with the count: a release once the count moved wakes us. */
	*gen = f->release_gen;
	if (!f->rule.op_mask || (f->rule.op_mask & (1 << op))) {
		uint64_t n = ++f->count;
		const cairn_obj_fault *r = &f->rule;
		if (r->kind != OBJ_FAULT_NONE &&
		    (r->nth == 0 || n == r->nth || (r->sticky && n >= r->nth)))
			*rule = *r;
		*seq = n;
	}
	pthread_mutex_unlock(&f->mu);
}

static int fault_rc(const cairn_obj_fault *r)
{
	return r->rc ? r->rc : CAIRN_E_STORE;
}

/* Apply the pre-request part of a hit.  Returns 1 when the request must
 * not be forwarded (*rc holds the answer). */
static int fault_before(struct fault_impl *f, const cairn_obj_fault *r,
			uint64_t seq, uint64_t gen, int *rc)
{
	switch (r->kind) {
	case OBJ_FAULT_FAIL:
		*rc = cairn_errf(fault_rc(r), "injected fault on request %llu",
				 (unsigned long long)seq);
		return 1;
	case OBJ_FAULT_HANG: {
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += r->hang_ms / 1000;
		dl.tv_nsec += (long)(r->hang_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&f->mu);
		while (f->release_gen == gen) {
			int err = r->hang_ms
				  ? pthread_cond_timedwait(&f->cv, &f->mu, &dl)
				  : pthread_cond_wait(&f->cv, &f->mu);
			if (err == ETIMEDOUT)
				break;
		}
		pthread_mutex_unlock(&f->mu);
		*rc = cairn_errf(CAIRN_E_TIMEOUT, "injected hang on request %llu "
				 "(store did not answer)",
				 (unsigned long long)seq);
		return 1;
	}
	case OBJ_FAULT_LATENCY:
		fault_sleep_ms(r->latency_ms);
		return 0;
	default:
		return 0;
	}
}

static int fault_after(const cairn_obj_fault *r, uint64_t seq, int rc)
{
	if (rc || r->kind != OBJ_FAULT_FAIL_AFTER)
		return rc;
	return cairn_errf(fault_rc(r), "injected fault after request %llu took "
			  "effect (answer lost)", (unsigned long long)seq);
}

#define FAULT_PROLOGUE(op)                                               \
	struct fault_impl *f = impl;                                     \
	cairn_obj_fault r;                                               \
	uint64_t seq, gen;                                               \
	int rc = 0;                                                      \
	fault_decide(f, (op), &r, &seq, &gen);                           \
	if (fault_before(f, &r, seq, gen, &rc))                          \
		return rc;

static int fault_open(const char *url, const cairn_objstore_opts *opts,
		      void **impl)
{
	(void)url;
	(void)opts;
	*impl = NULL;
	return cairn_errf(CAIRN_E_INVAL, "the fault wrapper is made by "
			  "objstore_fault_wrap, not by URL");
}

static void fault_close(void *impl)
{
	struct fault_impl *f = impl;

	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static void fault_limits(void *impl, cairn_objstore_limits *out)
{
	struct fault_impl *f = impl;
	objstore_limits(f->inner, out);
}

static int fault_put(void *impl, const char *key, const cairn_obj_src *src)
{
	FAULT_PROLOGUE(OBJ_OP_PUT);
	rc = objstore_put(f->inner, key, src);
	return fault_after(&r, seq, rc);
}

/* Counted as a put (OBJ_OP_PUT in op_mask), as objstore.c counts it. */
static int fault_put_if_absent(void *impl, const char *key, const void *buf,
			       size_t len)
{
	FAULT_PROLOGUE(OBJ_OP_PUT);
	rc = objstore_put_if_absent(f->inner, key, buf, len);
	return fault_after(&r, seq, rc);
}

static int fault_get(void *impl, const char *key, uint64_t off, void *buf,
		     uint64_t len, uint64_t *got)
{
	FAULT_PROLOGUE(OBJ_OP_GET);
	rc = objstore_get(f->inner, key, off, buf, len, got);
	if (!rc && r.kind == OBJ_FAULT_TRUNCATE)
		*got /= 2;
	return fault_after(&r, seq, rc);
}

static int fault_head(void *impl, const char *key, cairn_obj_info *out)
{
	FAULT_PROLOGUE(OBJ_OP_HEAD);
	rc = objstore_head(f->inner, key, out);
	return fault_after(&r, seq, rc);
}

static int fault_del(void *impl, const char *key)
{
	FAULT_PROLOGUE(OBJ_OP_DELETE);
	rc = objstore_delete(f->inner, key);
	return fault_after(&r, seq, rc);
}

static int fault_del_batch(void *impl, const char *const *keys, size_t n,
			   int *rcs)
{
	FAULT_PROLOGUE(OBJ_OP_DELETE_BATCH);
	rc = objstore_delete_batch(f->inner, keys, n, rcs);
	return fault_after(&r, seq, rc);
}

static int fault_list(void *impl, const char *prefix, const char *token,
		      unsigned max_keys, cairn_obj_list *out)
{
	FAULT_PROLOGUE(OBJ_OP_LIST);
	rc = objstore_list(f->inner, prefix, token, max_keys, out);
	rc = fault_after(&r, seq, rc);
	if (rc)
		objstore_list_free(out);
	return rc;
}

static int fault_mpu_create(void *impl, const char *key,
			    char upload_id[CAIRN_UPLOAD_ID_MAX])
{
	FAULT_PROLOGUE(OBJ_OP_MPU_CREATE);
	rc = objstore_mpu_create(f->inner, key, upload_id);
	return fault_after(&r, seq, rc);
}

static int fault_mpu_part(void *impl, const char *key, const char *upload_id,
			  unsigned part_no, const cairn_obj_src *src,
			  cairn_mpu_part *out)
{
	FAULT_PROLOGUE(OBJ_OP_MPU_PART);
	rc = objstore_mpu_part(f->inner, key, upload_id, part_no, src, out);
	return fault_after(&r, seq, rc);
}

static int fault_mpu_complete(void *impl, const char *key,
			      const char *upload_id,
			      const cairn_mpu_part *parts, size_t n)
{
	FAULT_PROLOGUE(OBJ_OP_MPU_COMPLETE);
	rc = objstore_mpu_complete(f->inner, key, upload_id, parts, n);
	return fault_after(&r, seq, rc);
}

static int fault_mpu_abort(void *impl, const char *key, const char *upload_id)
{
	FAULT_PROLOGUE(OBJ_OP_MPU_ABORT);
	rc = objstore_mpu_abort(f->inner, key, upload_id);
	return fault_after(&r, seq, rc);
}

static const struct objstore_backend objstore_fault_be = {
	.scheme = NULL,
	.open = fault_open,
	.close = fault_close,
	.limits = fault_limits,
	.put = fault_put,
	.put_if_absent = fault_put_if_absent,
	.get = fault_get,
	.head = fault_head,
	.del = fault_del,
	.del_batch = fault_del_batch,
	.list = fault_list,
	.mpu_create = fault_mpu_create,
	.mpu_part = fault_mpu_part,
	.mpu_complete = fault_mpu_complete,
	.mpu_abort = fault_mpu_abort,
};

int objstore_fault_wrap(cairn_objstore *inner, cairn_objstore **out)
{
	struct fault_impl *f;
	int rc;

	*out = NULL;
	if (!inner)
		return cairn_errf(CAIRN_E_INVAL, "fault wrap: no inner store");
	f = calloc(1, sizeof *f);
	if (!f)
		return cairn_errf(CAIRN_E_NOMEM, "fault wrap: out of memory");
	f->inner = inner;
	if (pthread_mutex_init(&f->mu, NULL) != 0) {
		free(f);
		return cairn_errf(CAIRN_E_NOMEM, "fault wrap: mutex");
	}
	if (pthread_cond_init(&f->cv, NULL) != 0) {
		pthread_mutex_destroy(&f->mu);
		free(f);
		return cairn_errf(CAIRN_E_NOMEM, "fault wrap: cond");
	}
	/* Same URL as the inner store, so messages name the real store and
	 * the generic layer does not prefix them twice. */
	rc = objstore_from_backend(&objstore_fault_be, f, objstore_url(inner),
				   NULL, out);
	if (rc)
		fault_close(f);
	return rc;
}

int objstore_fault_arm(cairn_objstore *os, const cairn_obj_fault *rule)
{
	struct fault_impl *f = objstore_impl(os, &objstore_fault_be);

	if (!f)
		return cairn_errf(CAIRN_E_INVAL, "fault arm: %s is not a fault "
				  "wrapper", os ? objstore_url(os) : "(null)");
	if (!rule || rule->kind < OBJ_FAULT_NONE ||
	    rule->kind > OBJ_FAULT_FAIL_AFTER)
		return cairn_errf(CAIRN_E_INVAL, "fault arm: unknown fault kind "
				  "%d", rule ? rule->kind : -1);
	pthread_mutex_lock(&f->mu);
	f->rule = *rule;
	f->count = 0;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

uint64_t objstore_fault_count(const cairn_objstore *os)
{
	struct fault_impl *f = objstore_impl(os, &objstore_fault_be);
	uint64_t n;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->mu);
	n = f->count;
	pthread_mutex_unlock(&f->mu);
	return n;
}

void objstore_fault_release(cairn_objstore *os)
{
	struct fault_impl *f = objstore_impl(os, &objstore_fault_be);

	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->release_gen++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}
