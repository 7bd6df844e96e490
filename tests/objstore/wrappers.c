/*
 * wrappers.c - the fault-injection wrapper (every fault kind, nth, sticky,
 * op_mask, release, through batches) and the latency wrapper (first-byte
 * delay and the shared bandwidth cap, checked through the wrapper's own
 * accounting, never against the wall clock).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/runtime.h"
#include "objstore_int.h"
#include "t.h"

#define MIB (1024ULL * 1024ULL)

static cairn_objstore *base;

static void arm(cairn_objstore *fw, int kind, uint64_t nth, int mask, int rc,
		int sticky)
{
	cairn_obj_fault f = {.kind = kind, .nth = nth, .op_mask = mask,
			     .rc = rc, .sticky = sticky};
	REQUIRE_OK(objstore_fault_arm(fw, &f));
}

static void t_fail(cairn_objstore *fw)
{
	cairn_obj_info info;
	char buf[8];
	uint64_t got;

	/* the 2nd put fails; gets are not counted */
	arm(fw, OBJ_FAULT_FAIL, 2, 1 << OBJ_OP_PUT, 0, 0);
	CHECK_OK(objstore_put_buf(fw, "f/1", "one", 3));
	CHECK_OK(objstore_get(fw, "f/1", 0, buf, 8, &got));
	CHECK_RC(objstore_put_buf(fw, "f/2", "two", 3), CAIRN_E_STORE);
	CHECK_MSG("injected fault on request 2");
	CHECK_MSG("put 'f/2' on file://"); /* named once, by the generic layer */
	{
		const char *m = strstr(cairn_errmsg(), "put 'f/2'");
		CHECK(m && strstr(m + 1, "put 'f/2'") == NULL);
	}
	CHECK_RC(objstore_head(base, "f/2", &info), CAIRN_E_NOTFOUND);
	CHECK_OK(objstore_put_buf(fw, "f/3", "three", 5));
	CHECK(objstore_fault_count(fw) == 3);

	/* every request, with a chosen code */
	arm(fw, OBJ_FAULT_FAIL, 0, 0, CAIRN_E_NET, 0);
	CHECK_RC(objstore_head(fw, "f/1", &info), CAIRN_E_NET);
	CHECK_RC(objstore_delete(fw, "f/1"), CAIRN_E_NET);
	{
		cairn_obj_list l;
		CHECK_RC(objstore_list(fw, "f/", NULL, 0, &l), CAIRN_E_NET);
		CHECK(l.n == 0 && l.v == NULL);
	}
	CHECK(objstore_fault_count(fw) == 3);

	/* sticky from the 2nd matching request on */
	arm(fw, OBJ_FAULT_FAIL, 2, 1 << OBJ_OP_HEAD, 0, 1);
	CHECK_OK(objstore_head(fw, "f/1", &info));
	CHECK_RC(objstore_head(fw, "f/1", &info), CAIRN_E_STORE);
	CHECK_OK(objstore_get(fw, "f/1", 0, buf, 8, &got));
	CHECK_RC(objstore_head(fw, "f/3", &info), CAIRN_E_STORE);
	/* not sticky: only the 2nd */
	arm(fw, OBJ_FAULT_FAIL, 2, 1 << OBJ_OP_HEAD, 0, 0);
	CHECK_OK(objstore_head(fw, "f/1", &info));
	CHECK_RC(objstore_head(fw, "f/1", &info), CAIRN_E_STORE);
	CHECK_OK(objstore_head(fw, "f/1", &info));

	/* multipart ops by mask */
	{
		char up[CAIRN_UPLOAD_ID_MAX];
		cairn_mpu_part p;
		arm(fw, OBJ_FAULT_FAIL, 1, 1 << OBJ_OP_MPU_COMPLETE, 0, 0);
		CHECK_OK(objstore_mpu_create(fw, "f/m", up));
		CHECK_OK(objstore_mpu_part(fw, "f/m", up, 1,
					   &(cairn_obj_src){.buf = "x", .fd = -1,
							    .len = 1}, &p));
		CHECK_RC(objstore_mpu_complete(fw, "f/m", up, &p, 1),
			 CAIRN_E_STORE);
		CHECK_RC(objstore_head(fw, "f/m", &info), CAIRN_E_NOTFOUND);
		CHECK_OK(objstore_mpu_complete(fw, "f/m", up, &p, 1));
		CHECK_OK(objstore_head(fw, "f/m", &info));
		arm(fw, OBJ_FAULT_FAIL, 1, 1 << OBJ_OP_DELETE_BATCH, 0, 0);
		const char *keys[1] = {"f/m"};
		CHECK_RC(objstore_delete_batch(fw, keys, 1, NULL), CAIRN_E_STORE);
		CHECK_OK(objstore_delete_batch(fw, keys, 1, NULL));
	}
	arm(fw, OBJ_FAULT_NONE, 0, 0, 0, 0);
	CHECK_OK(objstore_delete(fw, "f/1"));
	CHECK_OK(objstore_delete(fw, "f/3"));
	/* arming a store that is not a fault wrapper */
	CHECK_RC(objstore_fault_arm(base, &(cairn_obj_fault){.kind = 1}),
		 CAIRN_E_INVAL);
	CHECK_MSG("not a fault wrapper");
	CHECK_RC(objstore_fault_arm(fw, &(cairn_obj_fault){.kind = 42}),
		 CAIRN_E_INVAL);
}

static void t_fail_after(cairn_objstore *fw)
{
	cairn_obj_info info;

	arm(fw, OBJ_FAULT_FAIL_AFTER, 1, 0, CAIRN_E_TIMEOUT, 0);
	CHECK_RC(objstore_put_buf(fw, "fa/x", "data", 4), CAIRN_E_TIMEOUT);
	CHECK_MSG("took effect");
	CHECK_OK(objstore_head(base, "fa/x", &info)); /* it happened */
	CHECK(info.size == 4);
	arm(fw, OBJ_FAULT_FAIL_AFTER, 1, 0, 0, 0);
	CHECK_RC(objstore_delete(fw, "fa/x"), CAIRN_E_STORE);
	CHECK_RC(objstore_head(base, "fa/x", &info), CAIRN_E_NOTFOUND);
}

static void t_truncate(cairn_objstore *fw)
{
	char data[1000], buf[1000];
	uint64_t got = 0;

	t_fill(data, sizeof data, 7);
	CHECK_OK(objstore_put_buf(base, "tr/x", data, sizeof data));
	arm(fw, OBJ_FAULT_TRUNCATE, 1, 0, 0, 0);
	CHECK_OK(objstore_get(fw, "tr/x", 0, buf, sizeof buf, &got));
	CHECK(got == 500 && memcmp(buf, data, 500) == 0);
	CHECK_OK(objstore_get(fw, "tr/x", 0, buf, sizeof buf, &got));
	CHECK(got == 1000);
	CHECK_OK(objstore_delete(base, "tr/x"));
}

static void *release_later(void *arg)
{
	cairn_objstore *fw = arg;
	/* The request is counted when it arrives, under the same lock that
	 * records the release generation it waits on: releasing after the
	 * count moved always wakes it. */
	while (objstore_fault_count(fw) < 1) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	objstore_fault_release(fw);
	return NULL;
}

static void t_hang(cairn_objstore *fw)
{
	cairn_obj_info info;
	pthread_t th;

	/* a bounded hang */
	CHECK_OK(objstore_put_buf(base, "h/x", "h", 1));
	{
		cairn_obj_fault f = {.kind = OBJ_FAULT_HANG, .nth = 1,
				     .hang_ms = 30};
		REQUIRE_OK(objstore_fault_arm(fw, &f));
	}
	CHECK_RC(objstore_head(fw, "h/x", &info), CAIRN_E_TIMEOUT);
	CHECK_MSG("injected hang");
	/* an unbounded hang, released by another thread */
	arm(fw, OBJ_FAULT_HANG, 1, 0, 0, 0);
	REQUIRE(pthread_create(&th, NULL, release_later, fw) == 0);
	CHECK_RC(objstore_head(fw, "h/x", &info), CAIRN_E_TIMEOUT);
	pthread_join(th, NULL);
	CHECK_OK(objstore_head(fw, "h/x", &info));
	/* latency kind forwards */
	{
		cairn_obj_fault f = {.kind = OBJ_FAULT_LATENCY, .latency_ms = 5};
		REQUIRE_OK(objstore_fault_arm(fw, &f));
	}
	CHECK_OK(objstore_head(fw, "h/x", &info));
	CHECK(info.size == 1);
	CHECK_OK(objstore_delete(base, "h/x"));
}

/* Faults inside a batch: each request carries its own rc and message. */
static void t_batch(cairn_objstore *fw)
{
	enum { N = 20 };
	cairn_obj_req reqs[N];
	char keys[N][16];
	cairn_obj_batch *b;
	int failed = 0;

	arm(fw, OBJ_FAULT_FAIL, 7, 1 << OBJ_OP_PUT, 0, 0);
	REQUIRE_OK(objstore_batch_new(fw, &b));
	memset(reqs, 0, sizeof reqs);
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof keys[i], "b/%02d", i);
		reqs[i].op = OBJ_OP_PUT;
		reqs[i].key = keys[i];
		reqs[i].src = (cairn_obj_src){.buf = "v", .fd = -1, .len = 1};
		CHECK_OK(objstore_submit(b, &reqs[i]));
	}
	CHECK_RC(objstore_batch_wait(b), CAIRN_E_STORE);
	CHECK_MSG("injected fault on request 7");
	for (int i = 0; i < N; i++) {
		if (reqs[i].rc) {
			failed++;
			CHECK(strstr(reqs[i].msg, "injected") != NULL);
			CHECK(strstr(reqs[i].msg, keys[i]) != NULL);
		}
		CHECK_OK(objstore_delete(base, keys[i]));
	}
	CHECK(failed == 1);
	objstore_batch_free(b);
}

static void t_latency(void)
{
	cairn_objstore *lw;
	objstore_latency_stats st;
	uint64_t bps = 20 * MIB, got;
	char *buf = malloc(MIB);
	enum { N = 8 };
	cairn_obj_req reqs[N];
	cairn_obj_batch *b;

	REQUIRE(buf);
	t_fill(buf, MIB, 3);
	REQUIRE_OK(objstore_latency_wrap(base, 5, bps, &lw));
	CHECK_OK(objstore_latency_get_stats(lw, &st));
	CHECK(st.requests == 0 && st.bytes == 0);
	CHECK_OK(objstore_put_buf(lw, "lat/x", buf, MIB));
	CHECK_OK(objstore_get(lw, "lat/x", 0, buf, MIB, &got));
	CHECK(got == MIB);
	CHECK_OK(objstore_latency_get_stats(lw, &st));
	CHECK(st.requests == 2);
	CHECK(st.first_byte_us == 2 * 5000);
	CHECK(st.bytes == 2 * MIB);
	/* each byte costs 1/bps seconds of the link */
	CHECK(st.link_busy_us + 10 >= 2 * MIB * 1000000 / bps &&
	      st.link_busy_us <= 2 * MIB * 1000000 / bps);
	/* sleeping never returns early: what was asked was slept */
	CHECK(st.slept_us + 50 >= st.first_byte_us + st.link_busy_us);

	/* concurrent gets share the one link */
	REQUIRE_OK(objstore_batch_new(lw, &b));
	memset(reqs, 0, sizeof reqs);
	for (int i = 0; i < N; i++) {
		reqs[i].op = OBJ_OP_GET;
		reqs[i].key = "lat/x";
		reqs[i].buf = malloc(MIB / 4);
		REQUIRE(reqs[i].buf);
		reqs[i].len = MIB / 4;
		reqs[i].off = (uint64_t)i * 1000;
		CHECK_OK(objstore_submit(b, &reqs[i]));
	}
	CHECK_OK(objstore_batch_wait(b));
	for (int i = 0; i < N; i++)
		free(reqs[i].buf);
	objstore_batch_free(b);
	CHECK_OK(objstore_latency_get_stats(lw, &st));
	CHECK(st.requests == 2 + N);
	CHECK(st.bytes == 2 * MIB + N * (MIB / 4));
	CHECK(st.link_busy_us + 20 >= st.bytes * 1000000 / bps &&
	      st.link_busy_us <= st.bytes * 1000000 / bps);
	/* head/list/delete cost a first byte, no bandwidth */
	CHECK_OK(objstore_delete(lw, "lat/x"));
	CHECK_OK(objstore_latency_get_stats(lw, &st));
	CHECK(st.requests == 3 + N && st.bytes == 2 * MIB + N * (MIB / 4));
	CHECK_RC(objstore_latency_get_stats(base, &st), CAIRN_E_INVAL);
	objstore_close(lw);

	/* unlimited bandwidth: no link time */
	REQUIRE_OK(objstore_latency_wrap(base, 0, 0, &lw));
	CHECK_OK(objstore_put_buf(lw, "lat/y", "y", 1));
	CHECK_OK(objstore_latency_get_stats(lw, &st));
	CHECK(st.requests == 1 && st.first_byte_us == 0 && st.link_busy_us == 0);
	CHECK_OK(objstore_delete(lw, "lat/y"));
	objstore_close(lw);
	free(buf);
}

int main(void)
{
	const char *dir = t_tmpdir("objstore_wrappers");
	char url[700];
	cairn_objstore *fw;

	snprintf(url, sizeof url, "file://%s/store", dir);
	REQUIRE_OK(objstore_open(url, NULL, &base));
	REQUIRE_OK(objstore_fault_wrap(base, &fw));
	CHECK(!strcmp(objstore_url(fw), url));
	CHECK(!strcmp(objstore_scheme(fw), "file"));
	t_fail(fw);
	t_fail_after(fw);
	t_truncate(fw);
	t_hang(fw);
	t_batch(fw);
	objstore_close(fw);
	t_latency();
	objstore_close(base);
	if (t_failures_ == 0)
		t_rmtree(dir);
	return t_done();
}
