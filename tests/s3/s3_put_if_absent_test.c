/*
 * s3_put_if_absent_test.c - objstore_put_if_absent on the s3:// backend
 * against s3rver (If-None-Match: *, made atomic by cairn's server patch):
 *   - create, EXISTS with the object untouched, EXISTS after a plain put,
 *     free again after a delete, bad keys refused before any request;
 *   - 16 racers, each with its own store (own connection pool, so 16
 *     connections), create one key at once: exactly one wins, the others
 *     get CAIRN_E_EXISTS, the object is the winner's bytes; repeated
 *     (CAIRN_TEST_SCALE);
 *   - through the fault proxy: 409 ConditionalRequestConflict is retried
 *     (the store did not take the write), 503 too; a 412 answered to the
 *     first attempt is EXISTS at once (no retry); 501 is
 *     CAIRN_E_UNSUPPORTED, not retried.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/runtime.h"
#include "s3_harness.h"

#define RACERS 16

static cairn_objstore *open_store(const char *url)
{
	cairn_objstore *os = NULL;
	REQUIRE_OK(objstore_open(url, NULL, &os));
	return os;
}

static void check_exact(cairn_objstore *os, const char *key, const void *want,
			size_t len)
{
	char *got = malloc(len + 16);
	uint64_t n = 0;

	REQUIRE(got != NULL);
	CHECK_OK(objstore_get(os, key, 0, got, len + 16, &n));
	CHECK(n == len);
	CHECK(n != len || memcmp(got, want, len) == 0);
	free(got);
}

static void basics(cairn_objstore *os)
{
	cairn_objstore_limits lim;
	cairn_obj_info info;

	objstore_limits(os, &lim);
	CHECK(lim.put_if_absent == 1);
	CHECK_OK(objstore_put_if_absent(os, "b/a", "first", 5));
	check_exact(os, "b/a", "first", 5);
	CHECK_RC(objstore_put_if_absent(os, "b/a", "second", 6), CAIRN_E_EXISTS);
	CHECK_MSG("put-if-absent 'b/a'");
	CHECK_MSG("PreconditionFailed");
	check_exact(os, "b/a", "first", 5);
	CHECK_OK(objstore_put_buf(os, "b/a", "third", 5));
	CHECK_RC(objstore_put_if_absent(os, "b/a", "fourth", 6), CAIRN_E_EXISTS);
	check_exact(os, "b/a", "third", 5);
	CHECK_OK(objstore_delete(os, "b/a"));
	CHECK_OK(objstore_put_if_absent(os, "b/a", "fifth", 5));
	check_exact(os, "b/a", "fifth", 5);
	CHECK_OK(objstore_put_if_absent(os, "b/empty", NULL, 0));
	CHECK_OK(objstore_head(os, "b/empty", &info));
	CHECK(info.size == 0);
	CHECK_RC(objstore_put_if_absent(os, "b/empty", "x", 1), CAIRN_E_EXISTS);
	CHECK_RC(objstore_put_if_absent(os, "b//x", "x", 1), CAIRN_E_INVAL);
	CHECK_RC(objstore_put_if_absent(os, "/b", "x", 1), CAIRN_E_INVAL);
}

struct racer {
	pthread_barrier_t *go;
	cairn_objstore *os;
	const char *key;
	char *data;
	size_t len;
	int rc;
	char msg[256];
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->go);
	r->rc = objstore_put_if_absent(r->os, r->key, r->data, r->len);
	if (r->rc)
		cairn_err_copy(r->msg, sizeof r->msg);
	return NULL;
}

static void race(cairn_objstore **stores, cairn_objstore *check, unsigned round,
		 uint64_t seed)
{
	struct racer rs[RACERS];
	pthread_t th[RACERS];
	pthread_barrier_t go;
	char key[64];
	int wins = 0, exists = 0, winner = -1;

	snprintf(key, sizeof key, "race/%u", round);
	REQUIRE(pthread_barrier_init(&go, NULL, RACERS) == 0);
	for (int i = 0; i < RACERS; i++) {
		rs[i] = (struct racer){.go = &go, .os = stores[i], .key = key,
				       .len = 200000 + 101 * (size_t)i};
		rs[i].data = malloc(rs[i].len);
		REQUIRE(rs[i].data != NULL);
		t_fill(rs[i].data, rs[i].len, seed + (uint64_t)i);
		REQUIRE(pthread_create(&th[i], NULL, racer_main, &rs[i]) == 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < RACERS; i++) {
		if (rs[i].rc == 0) {
			wins++;
			winner = i;
		} else if (rs[i].rc == CAIRN_E_EXISTS) {
			exists++;
		} else {
			T_FAIL_("round %u racer %d: %s: %s", round, i,
				cairn_rc_name(rs[i].rc), rs[i].msg);
		}
	}
	if (wins != 1 || exists != RACERS - 1)
		T_FAIL_("round %u: %d winners and %d EXISTS of %d racers, want "
			"1 and %d", round, wins, exists, RACERS, RACERS - 1);
	if (winner >= 0)
		check_exact(check, key, rs[winner].data, rs[winner].len);
	for (int i = 0; i < RACERS; i++)
		free(rs[i].data);
	pthread_barrier_destroy(&go);
}

static void proxy_faults(s3h *h)
{
	cairn_objstore *os;
	cairn_obj_info info;

	s3h_env(h, h->proxy_port);
	os = open_store("s3://" S3H_BUCKET "/px");
	/* a concurrent conditional write: retried, then created */
	s3h_fault(h, "mode=status&code=409&s3code=ConditionalRequestConflict"
		  "&count=2&method=PUT");
	CHECK_OK(objstore_put_if_absent(os, "c/409", "abc", 3));
	check_exact(os, "c/409", "abc", 3);
	/* throttled: retried too */
	s3h_fault(h, "mode=status&code=503&count=1&method=PUT");
	CHECK_OK(objstore_put_if_absent(os, "c/503", "abc", 3));
	check_exact(os, "c/503", "abc", 3);
	/* a 412 on the first attempt is the answer: EXISTS, no retry, and
	 * the (injected) answer means nothing was written */
	s3h_fault(h, "mode=status&code=412&s3code=PreconditionFailed"
		  "&count=1&method=PUT");
	CHECK_RC(objstore_put_if_absent(os, "c/412", "abc", 3), CAIRN_E_EXISTS);
	CHECK_RC(objstore_head(os, "c/412", &info), CAIRN_E_NOTFOUND);
	/* a store that does not implement the condition */
	s3h_fault(h, "mode=status&code=501&s3code=NotImplemented&count=0"
		  "&method=PUT");
	CHECK_RC(objstore_put_if_absent(os, "c/501", "abc", 3),
		 CAIRN_E_UNSUPPORTED);
	CHECK_MSG("If-None-Match");
	s3h_fault(h, "mode=none");
	CHECK_RC(objstore_head(os, "c/501", &info), CAIRN_E_NOTFOUND);
	objstore_close(os);
	s3h_env(h, h->port);
}

int main(void)
{
	uint64_t seed = t_seed();
	cairn_objstore *os, *stores[RACERS];
	unsigned rounds = (unsigned)t_scaled(8);
	s3h h;

	s3h_start(&h, 1);
	s3h_env(&h, h.port);
	os = open_store("s3://" S3H_BUCKET "/pia");
	basics(os);
	for (int i = 0; i < RACERS; i++)
		stores[i] = open_store("s3://" S3H_BUCKET "/pia");
	for (unsigned r = 0; r < rounds; r++)
		race(stores, os, r, seed + 1000 * (r + 1));
	for (int i = 0; i < RACERS; i++)
		objstore_close(stores[i]);
	objstore_close(os);
	proxy_faults(&h);
	s3h_stop(&h);
	return t_done();
}
